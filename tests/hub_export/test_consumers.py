"""The export in the hands of its consumers: tf_keras + hub.KerasLayer, VTAB's TF2 path, Keras 3."""

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

from tests.helpers.images import ramp_images

SIZE = 64


def _tolerance(reference):
  return 1e-5 * max(1.0, float(np.abs(reference).max()))


def _moving_mean(layer):
  return next(w for w in layer.non_trainable_weights if "moving_mean" in w.name)


def _fit_and_check(model, layer):
  """Compiles and fits `model` for two steps; the hub layer's weights and BN statistics move."""
  model.compile(tf_keras.optimizers.SGD(0.01, momentum=0.9),
                tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  kernel, moving_mean = layer.trainable_weights[0], _moving_mean(layer)
  before = kernel.numpy().copy(), moving_mean.numpy().copy()
  history = model.fit(ramp_images(4, SIZE), np.array([0, 1, 2, 1]), batch_size=2, epochs=1,
                      verbose=0)
  assert np.isfinite(history.history["loss"][0])
  assert not np.allclose(kernel.numpy(), before[0])
  assert not np.allclose(moving_mean.numpy(), before[1])


def test_keras_layer_matches_native_backbone(export_dir, trained_run):
  layer = hub.KerasLayer(export_dir, trainable=True)
  images = ramp_images(2, SIZE)
  want = trained_run.backbone(images, training=False)["pre_logits"].numpy()
  got = layer(images, training=False).numpy()
  assert got.shape == (2, 2048)
  np.testing.assert_allclose(got, want, rtol=0, atol=_tolerance(want))
  # Every backbone variable is exposed; only the batch-norm statistics are non-trainable.
  assert len(layer.trainable_weights) == len(trained_run.backbone.trainable_weights)
  assert len(layer.non_trainable_weights) == len(trained_run.backbone.non_trainable_weights)
  # A layer that is not trainable stays in inference mode even when the model trains.
  frozen = hub.KerasLayer(export_dir, trainable=False)
  np.testing.assert_allclose(frozen(images, training=True).numpy(), want, rtol=0,
                             atol=_tolerance(want))


def test_fine_tune_in_sequential_model(export_dir):
  layer = hub.KerasLayer(export_dir, trainable=True)
  model = tf_keras.Sequential([tf_keras.Input([SIZE, SIZE, 3]), layer,
                               tf_keras.layers.Dense(3)])
  assert model.output_shape == (None, 3)
  _fit_and_check(model, layer)


def test_fine_tune_in_functional_model_on_feature_maps(export_dir):
  """Functional model using both the pooled output and the feature maps of one export."""
  loaded = hub.load(export_dir)
  pooled = hub.KerasLayer(loaded, trainable=True)
  maps = hub.KerasLayer(loaded.feature_maps, trainable=True)
  inputs = tf_keras.Input([SIZE, SIZE, 3])
  levels = maps(inputs)
  assert {k: v.shape.as_list() for k, v in levels.items()} == {
      "2": [None, 16, 16, 256], "3": [None, 8, 8, 512], "4": [None, 4, 4, 1024],
      "5": [None, 2, 2, 2048]}
  x = tf_keras.layers.Concatenate()([pooled(inputs),
                                     tf_keras.layers.GlobalAveragePooling2D()(levels["3"])])
  model = tf_keras.Model(inputs, tf_keras.layers.Dense(3)(x))
  _fit_and_check(model, pooled)
  # Both layers share the loaded variables, so the feature maps see the fine-tuned weights.
  assert maps.trainable_weights[0] is pooled.trainable_weights[0]


def test_vtab_tf2_call(export_dir, trained_run):
  """As task_adaptation calls a TF2 module: hub.load, resize to 224, [0, 1], module(x, training)."""
  module = hub.load(export_dir)
  raw = (ramp_images(2, 200, 150) * 255).astype(np.uint8)
  images = tf.cast(tf.image.resize(raw, [224, 224]), tf.float32) / 255.0
  want = trained_run.backbone(images, training=False)["pre_logits"].numpy()
  features = module(images, training=False)
  assert features.shape.rank == 2 and features.shape == (2, 2048)
  np.testing.assert_allclose(features.numpy(), want, rtol=0, atol=_tolerance(want))
  assert len(module.trainable_variables) == len(trained_run.backbone.trainable_variables)
  assert list(module.regularization_losses) == []
  # A training call normalises with batch statistics and moves the moving averages.
  moving_mean = next(v for v in module.variables if "moving_mean" in v.name)
  before = moving_mean.numpy().copy()
  assert module(images, training=True).shape == (2, 2048)
  assert not np.allclose(moving_mean.numpy(), before)


def test_keras3_tfsm_layer_gives_same_features(export_dir, trained_run):
  import keras  # Keras 3, installed with TensorFlow
  assert keras.__version__.startswith("3.")
  images = ramp_images(2, SIZE)
  want = trained_run.backbone(images, training=False)
  default = keras.layers.TFSMLayer(export_dir, call_endpoint="serving_default")
  got = default(images)["default"]
  np.testing.assert_allclose(np.asarray(got), want["pre_logits"].numpy(), rtol=0,
                             atol=_tolerance(want["pre_logits"]))
  maps = keras.layers.TFSMLayer(export_dir, call_endpoint="feature_maps")
  inputs = keras.Input([SIZE, SIZE, 3])
  model = keras.Model(inputs, maps(inputs))
  got = model.predict(images, verbose=0)
  for level in "2345":
    np.testing.assert_allclose(got[level], want[level].numpy(), rtol=0,
                               atol=_tolerance(want[level]))
