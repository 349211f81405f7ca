import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_vivi.models import ResNetV2, StandardizedConv2D


@pytest.fixture(scope="module")
def resnet50():
  return ResNetV2()


def test_parameter_count_matches_keras_resnet50v2(resnet50):
  reference = tf_keras.applications.ResNet50V2(include_top=False, weights=None)
  assert resnet50.count_params() == reference.count_params()
  assert 23_500_000 <= resnet50.count_params() < 23_600_000


def test_endpoints_are_at_strides_4_to_32(resnet50):
  out = resnet50(tf.zeros([2, 64, 96, 3]))
  for level, channels in zip((2, 3, 4, 5), (256, 512, 1024, 2048)):
    assert out[str(level)].shape == (2, 64 // 2**level, 96 // 2**level, channels)
  assert out["pre_logits"].shape == (2, 2048)
  # Odd sizes round up at every stride-2 step, like 'same' padding.
  odd = resnet50(tf.zeros([1, 65, 33, 3]))
  assert odd["5"].shape == (1, 3, 2, 2048)


def test_output_specs_follow_model_garden_contract(resnet50):
  specs = resnet50.output_specs
  assert sorted(specs) == ["2", "3", "4", "5"]
  for level, shape in specs.items():
    assert shape.rank == 4 and shape[0] is None
    assert shape[-1] == 256 * 2 ** (int(level) - 2)


def test_pre_logits_is_mean_of_normalised_last_grid(resnet50):
  images = tf.random.stateless_uniform([2, 64, 64, 3], seed=(1, 2))
  out = resnet50(images, training=False)
  np.testing.assert_allclose(out["pre_logits"].numpy(),
                             out["5"].numpy().mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
  assert np.all(out["5"].numpy() >= 0)  # after the final ReLU


def test_config_round_trip(resnet50):
  clone = ResNetV2.from_config(resnet50.get_config())
  assert clone.get_config() == resnet50.get_config()
  clone.set_weights(resnet50.get_weights())
  images = tf.random.stateless_uniform([1, 32, 32, 3], seed=(3, 4))
  np.testing.assert_allclose(clone(images)["pre_logits"].numpy(),
                             resnet50(images)["pre_logits"].numpy(), rtol=1e-5, atol=1e-6)


def test_group_norm_weight_standardised_variant():
  model = ResNetV2(normalization="group", groups=32)
  convs = [l for l in model.layers if isinstance(l, tf_keras.layers.Conv2D)]
  assert convs and all(isinstance(l, StandardizedConv2D) for l in convs)
  assert not any(isinstance(l, tf_keras.layers.BatchNormalization) for l in model.layers)
  assert any(isinstance(l, tf_keras.layers.GroupNormalization) for l in model.layers)
  # GN has the same parameters as BN minus the two moving statistics per channel.
  bn_stats = sum(int(np.prod(w.shape)) for w in ResNetV2().non_trainable_weights)
  assert model.count_params() == ResNetV2().count_params() - bn_stats
  out = model(tf.random.stateless_uniform([2, 32, 32, 3], seed=(5, 6)))
  assert np.all(np.isfinite(out["pre_logits"].numpy()))
  clone = ResNetV2.from_config(model.get_config())
  assert isinstance(clone.get_layer("stem_conv"), StandardizedConv2D)


def test_width_multiplier():
  model = ResNetV2(width=3)
  assert model.output_specs["5"][-1] == 6144
  assert model.representation_dim == 6144
  # Conv weights scale ~9× with width: a 3× ResNet-50 has about 211M parameters.
  assert 205e6 < model.count_params() < 215e6


def test_standardized_conv_matches_numpy():
  layer = StandardizedConv2D(4, 3, padding="valid", use_bias=False)
  x = tf.random.stateless_normal([1, 5, 5, 2], seed=(7, 8))
  y = layer(x)
  w = layer.kernel.numpy().astype(np.float64)
  w = (w - w.mean(axis=(0, 1, 2))) / np.sqrt(w.var(axis=(0, 1, 2)) + 1e-5)
  want = tf.nn.conv2d(x, w.astype(np.float32), 1, "VALID")
  np.testing.assert_allclose(y.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    ({"depth": 34}, "depth"), ({"normalization": "layer"}, "normalization"),
    ({"width": 1.5}, "width")])
def test_bad_arguments_name_the_value(kwargs, match):
  with pytest.raises(ValueError, match=match):
    ResNetV2(**kwargs)


def test_preactivation_unit_on_its_own():
  from keras_vivi.models.resnet_v2 import LayerSettings, preactivation_unit
  x = tf_keras.Input([8, 8, 16])
  projected = tf_keras.Model(x, preactivation_unit(x, 4, 2, True, "u"))
  assert projected.output_shape == (None, 4, 4, 16)
  names = {layer.name for layer in projected.layers}
  assert {"u_preact_bn", "u_shortcut", "u_1_conv", "u_2_conv_pad", "u_3_conv", "u_out"} <= names
  # Identity shortcut: with the last convolution zeroed, the unit passes its input through.
  identity = tf_keras.Model(x, preactivation_unit(x, 4, 1, False, "v",
                                                  LayerSettings(normalization="group", groups=2)))
  assert "v_preact_gn" in {layer.name for layer in identity.layers}
  last = identity.get_layer("v_3_conv")
  last.set_weights([np.zeros_like(w) for w in last.get_weights()])
  images = np.random.default_rng(0).normal(size=(2, 8, 8, 16)).astype(np.float32)
  np.testing.assert_array_equal(identity(images).numpy(), images)


def test_masked_out_images_change_neither_the_real_features_nor_the_moving_statistics():
  net = ResNetV2(depth=14)
  rng = np.random.default_rng(0)
  real = rng.random((3, 32, 32, 3)).astype(np.float32)
  initial = net.get_weights()
  alone = net(real, training=True, sample_mask=tf.ones([3], tf.bool))
  statistics_alone = net.get_weights()
  net.set_weights(initial)
  padding = rng.random((2, 32, 32, 3)).astype(np.float32)  # anything: it must not count
  padded = net(np.concatenate([real, padding]), training=True,
               sample_mask=tf.constant([True, True, True, False, False]))
  for key in alone:
    np.testing.assert_allclose(padded[key].numpy()[:3], alone[key].numpy(), rtol=1e-4,
                               atol=1e-4, err_msg=key)
  for a, b in zip(net.get_weights(), statistics_alone):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # The same padding without the mask does move them.
  net.set_weights(initial)
  unmasked = net(np.concatenate([real, padding]), training=True)
  assert np.abs(unmasked["pre_logits"].numpy()[:3] - alone["pre_logits"].numpy()).max() > 1e-2
