import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

from keras_vivi.evaluation.vtab import finetune
from keras_vivi.zoo import loader
from keras_vivi.zoo import presets as presets_lib


def test_schedule_boundaries_by_hand():
  b, v = finetune.schedule_boundaries(10000, 0.1, 3000)
  assert b == [3000, 6000, 9000]
  np.testing.assert_allclose(v, [0.1, 0.01, 0.001, 0.0001])
  b, v = finetune.schedule_boundaries(2500, 0.01, 750)
  assert b == [750, 1500, 2250]
  np.testing.assert_allclose(v, [0.01, 0.001, 1e-4, 1e-5])
  assert finetune.schedule_boundaries(3000, 0.1, 3000) == ([], [0.1])
  b, v = finetune.schedule_boundaries(7, 1.0, 2, decay_factor=0.5)
  assert b == [2, 4, 6] and v == [1.0, 0.5, 0.25, 0.125]
  with pytest.raises(ValueError, match="decay_every=0"):
    finetune.schedule_boundaries(10, 0.1, 0)


def test_schedule_values_with_warmup():
  schedule = finetune.WarmupPiecewiseSchedule([4, 8], [1.0, 0.1, 0.01], warmup_steps=2)
  # Boundaries are inclusive (step <= 4 is still the first value), as tf.train.piecewise_constant.
  got = [float(schedule(step)) for step in (0, 1, 2, 3, 4, 5, 8, 9, 100)]
  np.testing.assert_allclose(got, [0.0, 0.5, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)
  flat = finetune.WarmupPiecewiseSchedule([], [0.3])
  np.testing.assert_allclose([float(flat(s)) for s in (0, 10 ** 6)], [0.3, 0.3], rtol=1e-6)


def _separable(n, size, seed):
  """Class 0: dark images, class 1: bright ones (linearly separable on any pooled features)."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, n)
  base = np.where(labels[:, None, None, None] == 1, 0.8, 0.2)
  images = np.clip(base + rng.normal(0, 0.05, (n, size, size, 3)), 0, 1).astype(np.float32)
  return images, labels.astype(np.int64)


def test_classifier_zero_head_then_learns(small_export):
  classifier = finetune.build_classifier(small_export, 2, image_size=32)
  images, labels = _separable(64, 32, 0)
  logits = classifier(images[:4], training=False).numpy()
  assert logits.shape == (4, 2) and not logits.any()  # zero head: uniform logits
  # Zero logits predict class 0, so before training accuracy is the share of class 0.
  test = tf.data.Dataset.from_tensor_slices(_separable(64, 32, 1)).batch(16)
  share_of_zero = float(np.mean(_separable(64, 32, 1)[1] == 0))
  assert finetune.evaluate_accuracy(classifier, test) == pytest.approx(share_of_zero)
  train = tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(16)
  before = [v.numpy().copy() for v in classifier.non_trainable_variables]
  history = finetune.finetune(classifier, train, steps=30, learning_rate=0.01, decay_every=20,
                              verbose=0)
  assert len(history.history["loss"]) == 1
  assert finetune.evaluate_accuracy(classifier, test) >= 0.9
  # Fine-tuning runs the module in training mode: batch-norm moving statistics move.
  after = classifier.non_trainable_variables
  assert any(not np.allclose(b, a.numpy()) for b, a in zip(before, after))
  assert int(classifier.optimizer.iterations) == 30


def test_errors():
  with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
    finetune.build_classifier("unused", 0)
  with pytest.raises(ValueError, match="empty dataset"):
    empty = tf.data.Dataset.from_tensor_slices((np.zeros([0, 2, 2, 3], np.float32), [0][:0]))
    finetune.evaluate_accuracy(lambda x, training: tf.zeros([0, 2]), empty.batch(2))


class _Pool(tf.Module):
  """A stand-in module: mean colour per image, as [B, 3] or [B, 1, 1, 3] or [B, 2, 2, 3]."""

  def __init__(self, size):
    super().__init__()
    self.size = size
    self.scale = tf.Variable(1.0)

  @tf.function
  def __call__(self, images, training=False):
    if self.size is None:
      return self.scale * tf.reduce_mean(images, axis=[1, 2])
    return self.scale * tf.image.resize(images, [self.size, self.size], method="area")


def test_module_output_shapes():
  images = np.full([2, 8, 8, 3], 0.5, np.float32)
  for size in (None, 1):
    classifier = finetune.build_classifier(_Pool(size), 4, image_size=8)
    assert classifier(images).shape == (2, 4)
  with pytest.raises(ValueError, match=r"1, 1, dim\] features, got .*\(None, 2, 2, 3\)"):
    finetune.build_classifier(_Pool(2), 4, image_size=8)


def test_classifier_from_a_preset_name(small_preset, small_export):
  """A registered preset by name: its archive is checked, unpacked into the cache and loaded."""
  classifier = finetune.build_classifier("small_d14", 3, image_size=32)
  assert os.listdir(loader.cached_module_dir(small_preset.handle))
  images = np.random.default_rng(0).uniform(0, 1, [2, 32, 32, 3]).astype(np.float32)
  features = tf_keras.Model(classifier.input, classifier.get_layer("module").output)
  expected = hub.load(small_export)(images, training=False).numpy()
  np.testing.assert_allclose(features(images, training=False).numpy(), expected, rtol=1e-5,
                             atol=1e-5)
  assert classifier.get_layer("module").trainable
  # The preset's sha256 is checked; offline, a remote handle is not fetched.
  presets_lib.register_preset(dataclasses.replace(small_preset, name="bad", sha256="0" * 64))
  with pytest.raises(loader.ChecksumMismatchError, match="expected 0000"):
    finetune.build_classifier("bad", 3, image_size=32)
  with pytest.raises(loader.ModuleNotCachedError, match="offline"):
    finetune.build_classifier("https://example.invalid/module.tar.gz", 3, image_size=32)
