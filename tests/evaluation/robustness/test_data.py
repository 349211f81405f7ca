"""Every robustness loader on hand-built release folders (and tfds mocks) with known answers.

The stand-in classifier (`ColourClassifier`, tests/helpers) gives each solid colour a fixed logits
row, so the expected result of every protocol is computed by plain Python loops over those rows; an
image that reaches the classifier altered (e.g. ObjectNet's frame not cut off) has no row.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_vivi.evaluation.robustness import metrics as robustness
from keras_vivi.evaluation.robustness import data as data_lib
from keras_vivi.evaluation.robustness import suite as robustness_suite
from tests.helpers.robustness_folders import SIZE, ColourClassifier, save_image
from tests.helpers.robustness_folders import write_imagenet_a, write_imagenet_c, write_imagenet_v2
from tests.helpers.robustness_folders import write_objectnet, write_video_set


def evaluate(spec_name, folder, classifier, data_dir=None):
  parts = data_lib.get_dataset(spec_name).parts(data_dir, folder)
  config = robustness_suite.RobustnessConfig(batch_size=3)
  return [robustness_suite.evaluate_part(classifier, getattr(p, "open", lambda p=p: p)(),
                                         config, SIZE, progress=False) for p in parts]


def test_imagenet_a_masks_to_its_200_classes(tmp_path):
  rng = np.random.default_rng(0)
  classifier = ColourClassifier()
  expected = write_imagenet_a(tmp_path / "imagenet-a", classifier, rng)
  (result,) = evaluate("imagenet_a", str(tmp_path / "imagenet-a"), classifier)
  assert expected == 3
  assert (result["correct"], result["examples"]) == (3, 6)
  assert result["accuracy"] == pytest.approx(0.5)
  # Without the masking every arg-max lies outside the set: nothing would be right.
  assert robustness.restricted_argmax(np.eye(3)[[2, 0]], [0, 1]).tolist() == [0, 0]


def test_restricted_and_grouped_argmax_by_hand():
  logits = np.array([[5.0, 1.0, 3.0, 2.0], [0.0, 4.0, 1.0, 9.0]])
  np.testing.assert_array_equal(robustness.restricted_argmax(logits, [1, 2]), [2, 1])
  scores, decision = robustness.grouped_argmax(logits, [[0, 1], [2, 3]], reduce="max")
  np.testing.assert_array_equal(scores, [[5, 3], [4, 9]])
  np.testing.assert_array_equal(decision, [0, 1])
  with pytest.raises(ValueError, match=r"classes must lie in \[0, 4\)"):
    robustness.restricted_argmax(logits, [4])


def test_sixteen_category_aggregation_by_hand():
  """Geirhos et al. average the probabilities of a category's classes: one confident knife
  class beats 109 dog classes whose sum is larger but mean smaller."""
  probabilities = np.zeros([2, 1000])
  dogs = data_lib.CUE_CONFLICT_CATEGORIES["dog"]
  probabilities[0, list(dogs)] = 0.005            # dog: sum 0.545, mean 0.005
  probabilities[0, 499] = 0.3                     # knife: one class
  probabilities[0, 0] = 1 - probabilities[0].sum()  # a class of no category
  probabilities[1, [294, 295]] = 0.2              # bear: mean (0.2+0.2+0+0)/4 = 0.1
  probabilities[1, 404] = 0.09                    # airplane: 0.09
  scores, decision = robustness.grouped_argmax(probabilities,
                                               data_lib.CUE_CONFLICT_CATEGORIES.values())
  cats = data_lib.CATEGORIES
  assert [cats[d] for d in decision] == ["knife", "bear"]
  assert scores[0, cats.index("dog")] == pytest.approx(0.005)
  assert scores[1, cats.index("bear")] == pytest.approx(0.1)
  assert len(dogs) == 109 and sorted(cats) == list(cats)


def test_shape_bias_folder(tmp_path):
  rng = np.random.default_rng(1)
  classifier = ColourClassifier()
  cats = data_lib.CATEGORIES
  groups = [list(data_lib.CUE_CONFLICT_CATEGORIES[c]) for c in cats]
  shape_hits = texture_hits = scored = 0
  for i, (shape, texture) in enumerate([("cat", "dog"), ("cat", "cat"), ("knife", "bear"),
                                        ("car", "clock"), ("boat", "oven"), ("bird", "truck")]):
    target = [shape, texture, "chair"][i % 3]
    row = rng.normal(0, 1, 1000)
    row[groups[cats.index(target)]] += 8
    probabilities = np.exp(row) / np.exp(row).sum()
    decision = cats[int(np.argmax([probabilities[g].mean() for g in groups]))]
    if shape != texture:
      scored += 1
      shape_hits += decision == shape
      texture_hits += decision == texture
    save_image(os.path.join(tmp_path, shape, f"{shape}{i}-{texture}{i + 1}.png"),
               classifier.add(row))
  (result,) = evaluate("shape_bias", str(tmp_path), classifier)
  # Shape decisions: images 0 and 3; texture: 4; 'chair': 2 and 5; 1 agrees (excluded).
  assert (shape_hits, texture_hits, scored) == (2, 1, 5)
  assert result["shape_decisions"] == shape_hits
  assert result["texture_decisions"] == texture_hits
  assert result["num_images"] == scored and result["excluded"] == 1
  assert result["shape_bias"] == pytest.approx(2 / 3)


def test_objectnet_many_to_one_and_frame(tmp_path):
  rng = np.random.default_rng(2)
  classifier = ColourClassifier()
  correct, scored = write_objectnet(str(tmp_path / "objectnet-1.0"), classifier, rng)
  (result,) = evaluate("objectnet", str(tmp_path / "objectnet-1.0"), classifier)
  assert (correct, scored) == (3, 5)
  assert (result["correct"], result["examples"]) == (correct, scored)
  folders, maps_to = data_lib.objectnet_classes(str(tmp_path / "objectnet-1.0"))
  assert folders == ["alarm_clock", "banana"]
  assert sorted(zip(*np.nonzero(maps_to))) == [(409, 0), (530, 0), (954, 1)]


def test_video_robustness_folder(tmp_path):
  rng = np.random.default_rng(3)
  classifier = ColourClassifier()
  anchor, pmk = write_video_set(str(tmp_path / "vid"), classifier, rng)
  (result,) = evaluate("imagenet_vid_robust", str(tmp_path / "vid"), classifier)
  assert (anchor, pmk) == (pytest.approx(2 / 3), pytest.approx(1 / 3))
  assert result["anchor_accuracy"] == pytest.approx(anchor)
  assert result["pmk_accuracy"] == pytest.approx(pmk)
  assert result["delta"] == pytest.approx(1 / 3) and result["num_anchors"] == 3
  # An unreadable neighbour frame: its pm-set (v1) is left out and counted.
  (tmp_path / "vid" / "val" / "v1" / "000002.png").write_bytes(b"not a png")
  (result,) = evaluate("imagenet_vid_robust", str(tmp_path / "vid"), classifier)
  assert (result["anchor_accuracy"], result["pmk_accuracy"]) == (0.5, 0.5)
  assert result["skipped_anchors"] == 1 and result["skipped"] == 1


def test_pmset_robustness_by_hand():
  correct = {"a": True, "a1": True, "a2": False, "b": True, "b1": True, "c": False}
  result = robustness.pmset_robustness(correct, {"a": ["a1", "a2"], "b": ["b1"], "c": []})
  assert (result.anchor_accuracy, result.pmk_accuracy) == (pytest.approx(2 / 3),
                                                            pytest.approx(1 / 3))
  with pytest.raises(ValueError, match="no prediction"):
    robustness.pmset_robustness(correct, {"a": ["zz"]})


def test_imagenet_v2_and_c_folders(tmp_path):
  rng = np.random.default_rng(4)
  classifier = ColourClassifier()
  expected_v2 = write_imagenet_v2(str(tmp_path / "v2"), classifier, rng)
  assert expected_v2 == 0.75
  (tmp_path / "v2" / "5" / "broken.jpeg").write_bytes(b"\xff\xd8 truncated")
  (result,) = evaluate("imagenet_v2", str(tmp_path / "v2"), classifier)
  assert (result["accuracy"], result["examples"], result["skipped"]) == (0.75, 4, 1)
  expected = write_imagenet_c(str(tmp_path / "c"), classifier, rng, [("fog", 3), ("snow", 1)])
  parts = data_lib.get_dataset("imagenet_c").parts(None, str(tmp_path / "c"))
  assert len(parts) == 75
  opened = {p.name: p for p in parts}
  for name, accuracy in expected.items():
    result = robustness_suite.evaluate_part(classifier, opened[name].open(),
                                            robustness_suite.RobustnessConfig(), SIZE, False)
    assert result["accuracy"] == pytest.approx(accuracy), name
  with pytest.raises(data_lib.DatasetMissing, match="ImageNet-C"):
    opened["fog_4"].open()


def test_missing_folders_say_how_to_get_them(tmp_path):
  for name, hint in (("objectnet", "objectnet.dev"), ("imagenet_vid_robust",
                                                          "imagenet_vid_ytbb_robust.tar.gz")):
    with pytest.raises(data_lib.DatasetMissing, match=hint):
      data_lib.get_dataset(name).parts(None, None)
  with pytest.raises(data_lib.DatasetMissing, match="tfds build imagenet_a"):
    data_lib.get_dataset("imagenet_a").parts(str(tmp_path / "tfds"), None)
  with pytest.raises(ValueError, match="Unknown robustness dataset 'imagenet_b'"):
    data_lib.resolve_datasets("imagenet_a,imagenet_b")


def test_preprocess_cuts_border_resizes_shorter_side_and_crops_centre():
  """A ramp image against a NumPy reference of the same geometry (no resampling: the shorter
  side is already S / 0.875)."""
  height, width, border = 16 + 4, 24 + 4, 2
  ramp = (np.arange(height * width).reshape(height, width) % 251).astype(np.uint8)
  image = np.repeat(ramp[..., None], 3, axis=-1)
  out = robustness_suite.preprocess(tf.constant(image), 14, crop_fraction=14 / 16,
                                    border=border).numpy()
  inner = image[border:-border, border:-border]          # 16 × 24, shorter side 16 = 14 / 0.875
  top, left = (16 - 14) // 2, (24 - 14) // 2
  np.testing.assert_allclose(out, inner[top:top + 14, left:left + 14] / 255.0, atol=1e-6)


@pytest.mark.parametrize("name", ["imagenet", "imagenet_a", "imagenet_v2", "shape_bias"])
def test_tfds_sources_on_mock_data(name, monkeypatch):
  """tfds sources through `tfds.testing.mock_data`: the examples, read directly, get logits
  rows (every other one peaked at its label) that the loader's result must reproduce."""
  from tensorflow_datasets.testing import mocking
  init = mocking.RandomFakeGenerator.__init__
  monkeypatch.setattr(mocking.RandomFakeGenerator, "__init__",
                      lambda self, *a, **k: init(self, *a, **{**k, "constant_dynamic_shape": True}))
  builder, split, key = {"imagenet": ("imagenet2012", "validation", "label"),
                         "imagenet_a": ("imagenet_a", "test", "label"),
                         "imagenet_v2": ("imagenet_v2/matched-frequency", "test", "label"),
                         "shape_bias": ("geirhos_conflict_stimuli", "test", None)}[name]
  rng = np.random.default_rng(5)
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    examples = list(tfds.builder(builder).as_dataset(split=split, shuffle_files=False))
    images = [robustness_suite.preprocess(x["image"], SIZE).numpy() for x in examples]
    rows = rng.normal(0, 1, [len(examples), 1000])
    for i, x in enumerate(examples[::2]):
      target = (int(x[key]) if key else
                data_lib.CUE_CONFLICT_CATEGORIES[data_lib.CATEGORIES[int(x["shape_label"])]][0])
      rows[2 * i, target] += 20
    by_image = {image.tobytes(): row for image, row in zip(images, rows)}
    logits_fn = lambda batch: np.stack([by_image[image.tobytes()] for image in np.asarray(batch)])
    (result,) = evaluate(name, None, logits_fn, data_dir="/nonexistent")
  if name == "shape_bias":
    shapes = [int(x["shape_label"]) for x in examples]
    textures = [int(x["texture_label"]) for x in examples]
    p = np.exp(rows - rows.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    groups = list(data_lib.CUE_CONFLICT_CATEGORIES.values())
    decisions = [int(np.argmax([row[list(g)].mean() for g in groups])) for row in p]
    conflict = [s != t for s, t in zip(shapes, textures)]
    hits = sum(c and d == s for c, d, s in zip(conflict, decisions, shapes))
    assert result["shape_decisions"] == hits and result["num_images"] == sum(conflict)
    assert hits >= sum(conflict[::2])
    return
  labels = [int(x[key]) for x in examples]
  if name == "imagenet_a":
    predicted = [max(data_lib.IMAGENET_A_CLASSES, key=lambda c, r=r: r[c]) for r in rows]
  else:
    predicted = list(rows.argmax(1))
    assert sum(p == l for p, l in zip(predicted, labels)) >= 3
  assert result["examples"] == 6
  assert result["correct"] == sum(p == l for p, l in zip(predicted, labels))
