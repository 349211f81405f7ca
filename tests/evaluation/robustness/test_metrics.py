"""Video robustness, shape bias and shifted-set accuracy on hand-built cases and real digits."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import ndimage
from sklearn import datasets as sk_datasets

from keras_vivi.evaluation.vtab import finetune
from keras_vivi.evaluation.robustness import metrics as robustness


def brute_force(predictions, labels, anchors, k):
  anchor, pmk = [], []
  for frames, label, ids in zip(predictions, labels, anchors):
    for a in np.atleast_1d(ids):
      anchor.append(frames[a] == label)
      pmk.append(all(frames[j] == label for j in range(len(frames)) if abs(j - a) <= k))
  return np.mean(anchor), np.mean(pmk)


def test_video_robustness_hand_built():
  right = np.full(21, 3)
  edge_wrong = right.copy()
  edge_wrong[0] = 5            # 10 frames before the anchor (index 10): inside the window
  far_wrong = np.full(23, 3)
  far_wrong[0] = 5             # 11 frames before the anchor (index 11): outside
  anchor_wrong = right.copy()
  anchor_wrong[10] = 1
  result = robustness.video_robustness([right, edge_wrong, far_wrong, anchor_wrong], [3] * 4)
  assert result.anchor_accuracy == 0.75 and result.pmk_accuracy == 0.5
  assert result.delta == 0.25 and result.num_anchors == 4
  np.testing.assert_array_equal(result.pmk_correct, [True, False, True, False])


def test_video_robustness_clips_windows_labels_sets_and_scores():
  short = np.array([2, 2, 2, 2, 7])
  # Anchor 0 of a 5-frame clip with k=10: the window is the whole clip, frame 4 is wrong.
  assert robustness.video_robustness([short], [2], anchors=[0]).pmk_accuracy == 0.0
  assert robustness.video_robustness([short], [2], k=3, anchors=[0]).pmk_accuracy == 1.0
  # A label set accepts any of its classes; [T, C] scores are arg-maxed.
  assert robustness.video_robustness([short], [{2, 7}], anchors=[0]).pmk_accuracy == 1.0
  scores = np.eye(8)[short]
  assert robustness.video_robustness([scores], [2], k=1).as_dict() == dict(
      anchor_accuracy=1.0, pmk_accuracy=1.0, delta=0.0, k=1, num_anchors=1)
  with pytest.raises(ValueError, match=r"anchors must be frame indices in \[0, 5\), got 5"):
    robustness.video_robustness([short], [2], anchors=[5])
  with pytest.raises(ValueError, match="one label per video"):
    robustness.video_robustness([short, short], [2])


@pytest.mark.parametrize("k", [0, 1, 4, 10])
def test_video_robustness_against_brute_force(k):
  rng = np.random.default_rng(k)
  lengths = rng.integers(1, 40, 30)
  predictions = [np.where(rng.random(n) < 0.9, 1, rng.integers(0, 3, n)) for n in lengths]
  labels = np.ones(30, int)
  anchors = [rng.integers(0, n, rng.integers(1, 4)) for n in lengths]
  result = robustness.video_robustness(predictions, labels, k=k, anchors=anchors)
  assert (result.anchor_accuracy, result.pmk_accuracy) == pytest.approx(
      brute_force(predictions, labels, anchors, k))
  assert result.pmk_accuracy <= result.anchor_accuracy


def test_shape_bias_hand_built():
  shapes = ["cat", "cat", "dog", "car", "bird", "knife", "cat"]
  textures = ["dog", "car", "cat", "bird", "car", "knife", "clock"]
  predicted = ["cat", "car", "dog", "boat", "bird", "knife", "cat"]
  # Scored: 6 conflicts (knife/knife excluded); shape: 0, 2, 4, 6; texture: 1; neither: 3.
  result = robustness.shape_bias(predicted, shapes, textures)
  assert result.shape_decisions == 4 and result.texture_decisions == 1
  assert result.shape_bias == pytest.approx(0.8)
  assert result.num_images == 6 and result.excluded == 1
  assert result.shape_accuracy == pytest.approx(4 / 6)
  assert result.texture_accuracy == pytest.approx(1 / 6)
  assert math.isnan(robustness.shape_bias([1], [2], [3]).shape_bias)
  with pytest.raises(ValueError, match="one length"):
    robustness.shape_bias([1, 2], [1], [2])


def test_evaluate_shifts_reads_class_folders(tmp_path):
  """A stand-in classifier (logits = mean colour) on class folders, against NumPy."""
  import tf_keras
  rng = np.random.default_rng(0)
  expected = {}
  for root, classes in (("numeric", {"0": 0, "2": 2}), ("named", {"blue": 0, "red": 1})):
    hits = total = 0
    for name, label in classes.items():
      os.makedirs(tmp_path / root / name)
      for i in range(3):
        colour = rng.permutation([30, 120, 220])  # one colour: resizing keeps the mean
        Image.new("RGB", (7, 5 + i), tuple(int(c) for c in colour)).save(
            tmp_path / root / name / f"{i}.PNG")
        hits += int(colour.argmax() == label)
        total += 1
    (tmp_path / root / name / "notes.txt").write_text("not an image")
    expected[root] = (hits, total)
  inputs = tf_keras.Input([4, 4, 3])
  classifier = tf_keras.Model(inputs, tf_keras.layers.GlobalAveragePooling2D()(inputs))
  results = robustness.evaluate_shifts(
      classifier, {r: str(tmp_path / r) for r in expected}, batch_size=4, progress=False)
  assert results["missing"] == {}
  for root, (hits, total) in expected.items():
    r = results["sets"][root]
    assert (r["correct"], r["examples"]) == (hits, total), root
    assert r["accuracy"] == pytest.approx(hits / total)


SIZE = 32


def digits_images():
  """scikit-learn digits as uint8 RGB [N, 32, 32, 3] and labels."""
  digits = sk_datasets.load_digits()
  images = np.repeat(np.repeat(digits.images, 4, axis=1), 4, axis=2) * (255 / 16)
  return np.repeat(images[..., None], 3, axis=-1).round().astype(np.uint8), digits.target


def save_class_folders(images, labels, folder):
  for i, (image, label) in enumerate(zip(images, labels)):
    os.makedirs(folder / str(label), exist_ok=True)
    Image.fromarray(image).save(folder / str(label) / f"{i:04d}.png")
  return str(folder)


def shift(images, rng):
  """Blur, halve the contrast and add Gaussian noise (an ImageNet-C-like corruption)."""
  x = ndimage.gaussian_filter(images.astype(np.float32), sigma=(0, 1.0, 1.0, 0))
  x = 0.6 * (x - 128) + 128 + rng.normal(0, 20, x.shape)
  return np.clip(x, 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def digits_shift(small_export, tmp_path_factory):
  images, labels = digits_images()
  train, test = slice(0, 1200), slice(1200, 1500)
  classifier = finetune.build_classifier(small_export, 10, trainable=True, image_size=SIZE)
  batches = (tf.data.Dataset.from_tensor_slices((images[train].astype(np.float32) / 255,
                                                 labels[train]))
             .shuffle(1200, seed=0).repeat().batch(32))
  finetune.finetune(classifier, batches, steps=120, learning_rate=0.05, decay_every=80, verbose=0)
  root = tmp_path_factory.mktemp("shifts")
  clean = save_class_folders(images[test], labels[test], root / "clean")
  shifted_images = shift(images[test], np.random.default_rng(0))
  shifted = save_class_folders(shifted_images, labels[test], root / "shifted")
  return classifier, clean, shifted, (images[test], shifted_images, labels[test])


def reference_accuracy(classifier, images, labels):
  logits = classifier.predict(images.astype(np.float32) / 255, batch_size=50, verbose=0)
  return float(np.mean(logits.argmax(-1) == labels))


@pytest.mark.slow
def test_evaluate_shifts_on_digits(digits_shift, tmp_path):
  classifier, clean, shifted, (clean_images, shifted_images, labels) = digits_shift
  empty = tmp_path / "empty"
  empty.mkdir()
  sets = {"digits": clean, "digits-C": shifted, "ImageNet-A": "imagenet_a",
          "ObjectNet": "objectnet", "typo": "no_such_dataset_xyz", "empty": str(empty)}
  results = robustness.evaluate_shifts(classifier, sets, batch_size=64,
                                       data_dir=str(tmp_path / "tfds"),
                                       output_dir=str(tmp_path / "out"), progress=False)
  assert set(results["sets"]) == {"digits", "digits-C"}
  for name, images in (("digits", clean_images), ("digits-C", shifted_images)):
    r = results["sets"][name]
    assert r["examples"] == 300
    assert r["accuracy"] == pytest.approx(reference_accuracy(classifier, images, labels))
  # The fine-tuned classifier learned the digits, and the corruption costs accuracy.
  assert results["sets"]["digits"]["accuracy"] > 0.5
  assert results["sets"]["digits-C"]["accuracy"] < results["sets"]["digits"]["accuracy"]
  missing = results["missing"]
  assert "tfds build imagenet_a" in missing["ImageNet-A"]["reason"]
  assert "not prepared" in missing["ImageNet-A"]["reason"]
  assert "objectnet.dev" in missing["ObjectNet"]["reason"]
  assert "neither a directory of class folders nor a tfds dataset" in missing["typo"]["reason"]
  assert "no class folders" in missing["empty"]["reason"]
  out = tmp_path / "out"
  assert {p.name for p in out.iterdir()} == {"shifts.json", "shifts.md", "shifts.png"}
  assert "| digits-C |" in (out / "shifts.md").read_text()
