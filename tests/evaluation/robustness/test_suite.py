"""The whole robustness study on small stand-ins: every dataset, resumption, the result files,
and the ImageNet classifiers (fine-tuned on mock ImageNet, and a co-training head)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
import tensorflow_hub as hub
import tf_keras

from keras_vivi import configs
from keras_vivi import models
from keras_vivi.evaluation.robustness import classifier as classifier_lib
from keras_vivi.evaluation.robustness import data as data_lib
from keras_vivi.evaluation.robustness import suite as robustness_suite
from tests.helpers import robustness_folders as folders


def write_releases(root, classifier, rng):
  """Release folders of every set but ImageNet (tfds only) under `root`; expected values."""
  expected = {"imagenet_a": folders.write_imagenet_a(os.path.join(root, "imagenet-a"),
                                                     classifier, rng) / 6}
  expected["imagenet_v2"] = folders.write_imagenet_v2(
      os.path.join(root, "imagenetv2-matched-frequency-format-val"), classifier, rng)
  corrupted = folders.write_imagenet_c(os.path.join(root, "imagenet-c"), classifier, rng,
                                       [("fog", 3), ("fog", 5), ("snow", 1)])
  expected["imagenet_c"] = corrupted
  correct, scored = folders.write_objectnet(os.path.join(root, "objectnet-1.0"), classifier, rng)
  expected["objectnet"] = correct / scored
  for name, folder in (("imagenet_vid_robust", "imagenet-vid-robust"),
                       ("ytbb_robust", "ytbb-robust")):
    expected[name] = folders.write_video_set(
        os.path.join(root, "imagenet_vid_ytbb_robust", folder), classifier, rng)
  return expected


class Counting:
  """Counts the images a classifier sees."""

  def __init__(self, logits_fn):
    self.logits_fn, self.images = logits_fn, 0

  def __call__(self, images):
    self.images += int(images.shape[0])
    return self.logits_fn(images)


def test_whole_run_resumes_and_writes_table5(tmp_path):
  rng = np.random.default_rng(7)
  colours = folders.ColourClassifier()
  root = str(tmp_path / "releases")
  expected = write_releases(root, colours, rng)
  counting = Counting(colours)
  classifier = classifier_lib.Classifier(counting, folders.SIZE, {"source": "colours"})
  output = str(tmp_path / "out")
  names = data_lib.resolve_datasets("all")
  # shape_bias is left to tfds (not prepared here): missing too.
  results = robustness_suite.run_robustness(classifier, names, output,
                                            data_dir=str(tmp_path / "tfds"), data_root=root,
                                            progress=False)
  datasets = results["datasets"]
  assert set(results["missing"]) == {"imagenet", "imagenet_c", "shape_bias"}
  assert "tfds build geirhos_conflict_stimuli" in results["missing"]["shape_bias"]
  assert "72 of 75 parts missing" in results["missing"]["imagenet_c"]
  for name in ("imagenet_a", "imagenet_v2", "objectnet"):
    assert datasets[name]["accuracy"] == pytest.approx(expected[name]), name
  c = datasets["imagenet_c"]
  assert c["accuracy"] == pytest.approx(np.mean(list(expected["imagenet_c"].values())))
  assert c["per_corruption"] == {
      "fog": pytest.approx((expected["imagenet_c"]["fog_3"] + expected["imagenet_c"]["fog_5"]) / 2),
      "snow": pytest.approx(expected["imagenet_c"]["snow_1"])}
  for name in ("imagenet_vid_robust", "ytbb_robust"):
    anchor, pmk = expected[name]
    assert (datasets[name]["anchor_accuracy"], datasets[name]["pmk_accuracy"]) == (
        pytest.approx(anchor), pytest.approx(pmk))

  files = sorted(os.listdir(output))
  assert files == ["results.csv", "results.json", "results.md", "results.png", "table5.md"]
  with open(os.path.join(output, "results.json")) as f:
    assert json.load(f)["datasets"].keys() == datasets.keys()
  table5 = open(os.path.join(output, "table5.md")).read().splitlines()
  assert table5[2].startswith("| model | ImageNet | ImageNet-A | ImageNet-C |")
  cells = [c.strip() for c in table5[4].strip("|").split("|")]
  assert cells[:4] == ["**this run**", "–", f"{100 * expected['imagenet_a']:.1f}",
                       f"{100 * c['accuracy']:.1f}*"]
  anchor, pmk = expected["imagenet_vid_robust"]
  assert cells[10] == f"{100 * (anchor - pmk):.1f}"
  assert table5[6] == ("| paper: Ours, fine tuning | 65.2 | 0.6 | 9.5 | 53.4 | 18.4 | 61.7 | "
                       "43.4 | 60.8 | 42.3 | 18.3 | 18.6 | 24.0 |")
  markdown = open(os.path.join(output, "results.md")).read()
  assert "| fog | – | – |" in markdown and "## Missing" in markdown
  csv_rows = open(os.path.join(output, "results.csv")).read().splitlines()
  assert "imagenet_c,accuracy/fog," + f"{c['per_corruption']['fog']:.6f}" in csv_rows

  # A re-run evaluates nothing new; one more ImageNet-C part present → only that part.
  seen = counting.images
  robustness_suite.run_robustness(classifier, names, output, data_dir=str(tmp_path / "tfds"),
                                  data_root=root, progress=False)
  assert counting.images == seen
  more = folders.write_imagenet_c(os.path.join(root, "imagenet-c"), colours, rng, [("snow", 2)])
  results = robustness_suite.run_robustness(classifier, ["imagenet_c"], output,
                                            data_root=root, progress=False)
  assert counting.images == seen + 3
  assert results["datasets"]["imagenet_c"]["evaluated"] == 4
  assert results["datasets"]["imagenet_c"]["per_corruption"]["snow"] == pytest.approx(
      (expected["imagenet_c"]["snow_1"] + more["snow_2"]) / 2)
  other = classifier_lib.Classifier(colours, folders.SIZE, {"source": "another"})
  with pytest.raises(ValueError, match="choose another output directory"):
    robustness_suite.run_robustness(other, names, output, progress=False)


@pytest.fixture(scope="module")
def imagenet_classifier(small_export, tmp_path_factory, mirrored_strategy):
  """A linear probe on the small export trained 3 steps on mock imagenet2012, on 2 replicas."""
  recipe = classifier_lib.ImageNetRecipe(mode="linear", steps=3, batch_size=4, decay_every=2,
                                         warmup_steps=0, image_size=32)
  output = str(tmp_path_factory.mktemp("classifiers") / "linear")
  with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
    classifier_lib.train_imagenet_classifier(small_export, output, recipe, verbose=0,
                                             strategy=mirrored_strategy)
  return output, recipe


def test_linear_probe_keeps_the_module_and_trains_the_head(imagenet_classifier, small_export,
                                                           tmp_path):
  output, recipe = imagenet_classifier
  classifier = classifier_lib.load_classifier(output)
  assert classifier.image_size == 32 and classifier.info["kind"] == "linear"
  images = tf.random.stateless_uniform([3, 32, 32, 3], seed=[1, 2])
  features = hub.load(small_export)(images, training=False).numpy()
  saved = tf.saved_model.load(output)
  head = {v.name.split("/")[-1].split(":")[0]: v.numpy() for v in saved.model_variables
          if "head" in v.name}
  assert np.abs(head["kernel"]).max() > 0          # trained from its zero initialisation
  np.testing.assert_allclose(classifier.logits(images).numpy(),
                             features @ head["kernel"] + head["bias"], rtol=1e-4, atol=1e-4)
  # A finished classifier is kept; a foreign directory is refused.
  mtime = os.path.getmtime(os.path.join(output, classifier_lib.MARKER))
  assert classifier_lib.train_imagenet_classifier(small_export, output, recipe) == output
  assert os.path.getmtime(os.path.join(output, classifier_lib.MARKER)) == mtime
  with pytest.raises(ValueError, match="classifier of"):
    classifier_lib.train_imagenet_classifier("/elsewhere/export", output, recipe)
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match="not written by keras_vivi"):
    classifier_lib.save_classifier(tf_keras.Sequential(), str(foreign),
                                   {"source": "x", "image_size": 32})
  assert os.listdir(foreign) == ["notes.txt"]


def test_cotraining_head_is_the_classifier(tmp_path):
  config = configs.apply_overrides(configs.get_experiment("vivi_objects_cotrain"),
                                   ["model.depth=14"])
  tf_keras.utils.set_random_seed(4)
  backbone = models.build_backbone(config.model)
  head = tf_keras.layers.Dense(1000, name="supervised_head")
  images = tf.random.stateless_uniform([2, 32, 32, 3], seed=[3, 4])
  reference = head(backbone(images)["pre_logits"]).numpy()
  model_dir = str(tmp_path / "run")
  os.makedirs(model_dir)
  configs.save_run_config(config, model_dir)
  tf.train.Checkpoint(model=tf.train.Checkpoint(backbone=backbone, supervised_head=head)).save(
      os.path.join(model_dir, "ckpt"))
  output = classifier_lib.cotrain_classifier(model_dir, str(tmp_path / "cls"), image_size=32)
  classifier = classifier_lib.load_classifier(output)
  assert classifier.info["kind"] == "cotraining"
  np.testing.assert_allclose(classifier.logits(images).numpy(), reference, rtol=1e-4, atol=1e-4)

  plain = configs.apply_overrides(configs.get_experiment("vivi_objects"), ["model.depth=14"])
  os.makedirs(tmp_path / "plain")
  configs.save_run_config(plain, str(tmp_path / "plain"))
  tf.train.Checkpoint(step=tf.Variable(1)).save(str(tmp_path / "plain" / "ckpt"))
  with pytest.raises(ValueError, match="no supervised head"):
    classifier_lib.cotrain_classifier(str(tmp_path / "plain"), str(tmp_path / "cls2"))
  assert not os.path.exists(tmp_path / "cls2")


def test_paper_table5_deltas_are_anchor_minus_pmk():
  """The transcribed rows agree with themselves: Δ = anchor − pm-k (to the paper's rounding)."""
  for row, values in robustness_suite.PAPER_TABLE5.items():
    cells = dict(zip([h for h, _, _ in robustness_suite.TABLE5], values))
    for anchor, pmk, delta in (("ImageNet-Vid", "ImageNet-Vid-pm-k", "Δ ImageNet-Vid ↓"),
                               ("YT-BB", "YT-BB-pm-k", "Δ YT-BB ↓")):
      assert abs(cells[anchor] - cells[pmk] - cells[delta]) <= 0.15, (row, delta)


def test_video_set_class_without_imagenet_classes_is_skipped_for_that_class_only(tmp_path):
  """YT-BB's real class list has classes without ImageNet classes: their pm-sets are left out
  and counted, the set's other classes are scored and the later sets still run."""
  rng = np.random.default_rng(5)
  colours = folders.ColourClassifier()
  root = tmp_path / "releases"
  video = root / "imagenet_vid_ytbb_robust" / "ytbb-robust"
  folders.write_video_set(str(video), colours, rng)
  rev_map = json.loads((video / "misc" / "rev_wnid_map.json").read_text())
  rev_map["n02131653"] = []  # set class 2, bear
  (video / "misc" / "rev_wnid_map.json").write_text(json.dumps(rev_map))
  expected_a = folders.write_imagenet_a(str(root / "imagenet-a"), colours, rng) / 6
  output = tmp_path / "out"
  results = robustness_suite.run_robustness(colours.as_classifier(), ["ytbb_robust", "imagenet_a"],
                                            str(output), data_dir=str(tmp_path / "tfds"),
                                            data_root=str(root), progress=False)

  # Reference: the arg-max over the two classes left, by a loop over the frames' logits.
  groups = {0: folders.VID_MEMBERS["n02691156"], 1: folders.VID_MEMBERS["n02419796"]}
  pmsets = json.loads((video / "metadata" / "pmsets.json").read_text())
  labels = json.loads((video / "metadata" / "labels.json").read_text())

  def right(key):
    image = tf.io.decode_image(tf.io.read_file(str(video / key)), 3)
    row = colours(robustness_suite.preprocess(image, folders.SIZE)[None])[0]
    return max(groups, key=lambda g: max(row[c] for c in groups[g])) in labels[key]

  judged = {a: ns for a, ns in pmsets.items()
            if all(any(c in groups for c in labels[f]) for f in [a, *ns])}
  assert len(judged) == 2  # v2 is all bear; v1 (bear or antelope) stays
  entry = results["datasets"]["ytbb_robust"]
  assert entry["num_anchors"] == 2 and entry["skipped_class_anchors"] == 1
  assert entry["skipped_classes"] == {"2": "n02131653 bear"}
  assert entry["anchor_accuracy"] == pytest.approx(np.mean([right(a) for a in judged]))
  assert entry["pmk_accuracy"] == pytest.approx(
      np.mean([all(right(f) for f in [a, *ns]) for a, ns in judged.items()]))
  assert results["datasets"]["imagenet_a"]["accuracy"] == pytest.approx(expected_a)
  assert "ytbb_robust" not in results["missing"]
  assert ("YT-BB: 1 set class(es) without ImageNet classes skipped (n02131653 bear): "
          "1 pm-set(s) left out." in (output / "results.md").read_text())
