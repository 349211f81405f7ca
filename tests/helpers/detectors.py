"""A stand-in for TF-Hub's openimages_v4 detectors: the real `default` signature, outputs computed
from the pixels, and their NumPy reference."""

import numpy as np
import tensorflow as tf

# Unsorted on purpose: the detector must sort. Scores are image_mean * weight.
FAKE_WEIGHTS = np.array([0.3, 0.9, 0.01, 0.6, 0.45, 0.02, 0.8, 0.7], np.float32)


def fake_detections(image_mean: float):
  """NumPy reference of what the fake SavedModel returns for an image with this mean."""
  k = np.arange(len(FAKE_WEIGHTS), dtype=np.float32)
  m = np.float32(image_mean)
  boxes = np.stack([np.full_like(k, 0.1 * m), k / 10, np.full_like(k, 0.1 * m + 0.5),
                    k / 10 + 0.1], 1)
  labels = np.arange(1, len(k) + 1, dtype=np.int64)
  return {
      "detection_boxes": boxes,
      "detection_scores": m * FAKE_WEIGHTS,
      "detection_class_labels": labels,
      "detection_class_entities": np.array([f"class{i}".encode() for i in labels], object),
      "detection_class_names": np.array([f"/m/{i}".encode() for i in labels], object),
  }


class FakeHubDetector(tf.Module):
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


def save_fake_hub_detector(path):
  """Saves a `FakeHubDetector` as a SavedModel at `path`; returns `path`."""
  module = FakeHubDetector()
  tf.saved_model.save(module, str(path), signatures={"default": module.default})
  return path
