"""A reusable SavedModel small enough to save fast, and its NumPy reference."""

import numpy as np
import tensorflow as tf


def _weights(scale):
  return scale * np.arange(12, dtype=np.float32).reshape(3, 4) / 10.0


def _tiny(scale):
  """features = mean over pixels of images @ w."""
  root = tf.__internal__.tracking.AutoTrackable()
  w = tf.Variable(_weights(scale))

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
  def call(images):
    return tf.reduce_mean(images, axis=[1, 2]) @ w

  root.__call__ = call
  root.variables = [w]
  root.trainable_variables = [w]
  return root


def tiny_features(images, scale):
  """NumPy reference of the module `save_tiny(path, scale)` saves."""
  return np.asarray(images).mean(axis=(1, 2)) @ _weights(scale)


def save_tiny(path, scale=1.0):
  tf.saved_model.save(_tiny(scale), str(path))
  return str(path)
