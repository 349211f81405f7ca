"""Shared detector fixtures: the real MediaPipe detector, skimage images, a tiny TF-Hub-style SavedModel."""


import numpy as np
import pytest
import tensorflow as tf


# Unsorted on purpose: the detector must sort. Scores are image_mean * weight.
FAKE_WEIGHTS = np.array([0.3, 0.9, 0.01, 0.6, 0.45, 0.02, 0.8, 0.7], np.float32)


def _fake_detections(image_mean: float):
  """NumPy reference of what the fake SavedModel returns for an image with this mean."""
  k = np.arange(len(FAKE_WEIGHTS), dtype=np.float32)
  m = np.float32(image_mean)
  boxes = np.stack([np.full_like(k, 0.1 * m), k / 10, np.full_like(k, 0.1 * m + 0.5), k / 10 + 0.1], 1)
  labels = np.arange(1, len(k) + 1, dtype=np.int64)
  return {
      "detection_boxes": boxes,
      "detection_scores": m * FAKE_WEIGHTS,
      "detection_class_labels": labels,
      "detection_class_entities": np.array([f"class{i}".encode() for i in labels], object),
      "detection_class_names": np.array([f"/m/{i}".encode() for i in labels], object),
  }


class _FakeHubDetector(tf.Module):
  """The `default` signature of TF-Hub's openimages_v4 detectors, with outputs computed from pixels."""

  def __init__(self):
    super().__init__()
    self.weights = tf.constant(FAKE_WEIGHTS)

  @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
  def default(self, images):
    m = tf.reduce_mean(images)
    k = tf.range(tf.size(self.weights), dtype=tf.float32)
    ones = tf.ones_like(k)
    boxes = tf.stack([0.1 * m * ones, k / 10, (0.1 * m + 0.5) * ones, k / 10 + 0.1], axis=1)
    labels = tf.range(1, tf.size(self.weights) + 1, dtype=tf.int64)
    label_str = tf.strings.as_string(labels)
    return {
        "detection_boxes": boxes,
        "detection_scores": m * self.weights,
        "detection_class_labels": labels,
        "detection_class_entities": tf.strings.join(["class", label_str]),
        "detection_class_names": tf.strings.join(["/m/", label_str]),
    }


@pytest.fixture(scope="session")
def fake_detections():
  """image mean → the fake SavedModel's raw outputs (NumPy reference)."""
  return _fake_detections


@pytest.fixture(scope="session")
def fake_saved_model_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("fake_hub_detector")
  module = _FakeHubDetector()
  tf.saved_model.save(module, str(path), signatures={"default": module.default})
  return path


@pytest.fixture(scope="session")
def skimage_images():
  """name → float32 [H, W, 3] in [0, 1]."""
  import skimage.data as data
  return {name: getattr(data, name)().astype(np.float32) / 255.0
          for name in ("chelsea", "coffee", "astronaut")}


def greedy_loop(boxes, scores, max_outputs, iou_threshold, score_threshold=-np.inf):
  """Greedy NMS by its definition, one box at a time: the highest remaining score is kept unless
  its IoU with a kept box exceeds the threshold."""
  def iou(a, b):
    h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - h * w
    return h * w / union if union > 0 else 0.0
  kept = []
  for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
    if len(kept) == max_outputs or scores[i] < score_threshold:
      break
    if all(iou(boxes[i], boxes[k]) <= iou_threshold for k in kept):
      kept.append(i)
  return kept
