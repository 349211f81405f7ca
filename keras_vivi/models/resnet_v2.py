"""ResNet v2 (pre-activation) backbone with endpoints at strides 4..32."""

import contextlib
import dataclasses
import threading
import typing

import tensorflow as tf
import tf_keras

from keras_vivi.models.standardized_conv2d import StandardizedConv2D

# Bottleneck units per stage, by depth (14 and 26 are small variants for quick experiments).
BLOCKS_BY_DEPTH = {14: (1, 1, 1, 1), 26: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
                   152: (3, 8, 36, 3)}
NORMALIZATIONS = ("batch", "group")
ENDPOINT_LEVELS = (2, 3, 4, 5)


class _StatisticsMask(threading.local):
  value = None  # [B] bool tensor while a `ResNetV2` call with `sample_mask` is traced


_STATISTICS_MASK = _StatisticsMask()


@contextlib.contextmanager
def _statistics_over(sample_mask):
  """Within the block, `MaskedBatchNormalization` takes its moments over `sample_mask` only.

  Thread-local, because `tf.distribute` traces each replica's step in its own thread.
  """
  previous, _STATISTICS_MASK.value = _STATISTICS_MASK.value, sample_mask
  try:
    yield
  finally:
    _STATISTICS_MASK.value = previous


class MaskedBatchNormalization(tf_keras.layers.BatchNormalization):
  """Batch norm whose training-mode moments (and moving averages) skip masked-out examples.

  The mask comes from `ResNetV2(images, sample_mask=…)`: padding frames then change neither the
  normalisation of the real ones nor the moving statistics. Without a mask it is plain batch norm.
  """

  def call(self, inputs, training=None, mask=None):
    sample_mask = _STATISTICS_MASK.value
    if sample_mask is None or mask is not None:
      return super().call(inputs, training=training, mask=mask)
    mask = tf.cast(sample_mask, self.compute_dtype)[:, None, None]   # [B, 1, 1]
    # The fused kernel ignores masks: take the composite path for this call.
    fused, self.fused = self.fused, False
    try:
      return super().call(inputs, training=training, mask=mask)
    finally:
      self.fused = fused


def _check_choice(name, value, choices):
  if value not in choices:
    raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class LayerSettings:
  """How the network's convolutions and normalisations are built.

  `normalization="group"` pairs group norm with weight-standardised convolutions (BiT, the
  paper's co-training); `"batch"` is batch norm with plain convolutions.
  """
  normalization: str = "batch"
  groups: int = 32
  norm_momentum: float = 0.9
  norm_epsilon: float = 1e-5
  kernel_regularizer: typing.Any = None

  def conv(self, filters, kernel_size, strides=1, use_bias=False,
           name=None) -> tf_keras.layers.Layer:
    cls = StandardizedConv2D if self.normalization == "group" else tf_keras.layers.Conv2D
    return cls(filters, kernel_size, strides=strides, use_bias=use_bias,
               padding="same" if strides == 1 else "valid", kernel_initializer="he_normal",
               kernel_regularizer=self.kernel_regularizer, name=name)

  def norm_relu(self, x, name) -> tf.Tensor:
    if self.normalization == "batch":
      x = MaskedBatchNormalization(momentum=self.norm_momentum, epsilon=self.norm_epsilon,
                                   name=name + "_bn")(x)
    else:
      x = tf_keras.layers.GroupNormalization(groups=self.groups, epsilon=self.norm_epsilon,
                                             name=name + "_gn")(x)
    return tf_keras.layers.Activation("relu", name=name + "_relu")(x)

  def strided_conv(self, x, filters, kernel_size, strides, name, use_bias=False) -> tf.Tensor:
    # Explicit symmetric padding: TF's 'same' pads asymmetrically for even inputs.
    if strides > 1 and kernel_size > 1:
      x = tf_keras.layers.ZeroPadding2D(kernel_size // 2, name=name + "_pad")(x)
    return self.conv(filters, kernel_size, strides=strides, use_bias=use_bias, name=name)(x)


def preactivation_unit(x, filters, strides, project, name, settings=LayerSettings()) -> tf.Tensor:
  """One bottleneck unit of ResNet v2: `x + F(norm_relu(x))`.

  `F` is 1×1 (`filters`) → 3×3 (`filters`, stride `strides`) → 1×1 (`4·filters`) convolutions with
  a normalisation and ReLU before each of the last two. With `project`, the shortcut is a
  (biased) 1×1 convolution of the pre-activation at stride `strides`, as in Keras' ResNet50V2;
  otherwise it is `x` itself (then `x` must have `4·filters` channels and `strides` must be 1).

  Args:
    x: symbolic `[B, H, W, C]`.
    filters, strides, project: as above.
    name: prefix of the unit's layer names (checkpoints and exports rely on them).
    settings: `LayerSettings`.

  Returns:
    Symbolic `[B, ⌈H/strides⌉, ⌈W/strides⌉, 4·filters]`.
  """
  preact = settings.norm_relu(x, name + "_preact")
  shortcut = (settings.strided_conv(preact, 4 * filters, 1, strides, name + "_shortcut",
                                    use_bias=True) if project else x)
  y = settings.conv(filters, 1, name=name + "_1_conv")(preact)
  y = settings.norm_relu(y, name + "_1")
  y = settings.strided_conv(y, filters, 3, strides, name + "_2_conv")
  y = settings.norm_relu(y, name + "_2")
  y = settings.conv(4 * filters, 1, use_bias=True, name=name + "_3_conv")(y)
  return tf_keras.layers.Add(name=name + "_out")([shortcut, y])


@tf_keras.utils.register_keras_serializable(package="keras_vivi")
class ResNetV2(tf_keras.Model):
  """Pre-activation ResNet (He et al., 2016, "Identity mappings") as a functional model.

  Input: float images `[B, H, W, 3]` in [0, 1] (mapped to [-1, 1] inside); optionally
  `sample_mask` `[B]` bool: in training, batch-norm statistics come from those images only
  (padding stays out of them; at least one must be true).
  Output: a dict with endpoints `'2'..'5'` (`[B, H/2^l, W/2^l, C_l]`, C_l = 256·2^(l-2)·width)
  and `'pre_logits'` (`[B, 2048·width]`, the global average of the normalised endpoint '5').

  Stages downsample in their first unit, so endpoint l sits at stride 2^l as Model Garden's
  FPN expects. Endpoints '2'..'4' are the raw residual streams; '5' carries the final
  normalisation and ReLU that pre-activation networks apply before pooling.
  """

  def __init__(self,
               depth=50,
               width=1,
               normalization="batch",
               groups=32,
               norm_momentum=0.9,
               norm_epsilon=1e-5,
               kernel_regularizer=None,
               input_specs=None,
               **kwargs):
    _check_choice("depth", depth, BLOCKS_BY_DEPTH)
    _check_choice("normalization", normalization, NORMALIZATIONS)
    if not isinstance(width, int) or width < 1:
      raise ValueError(f"width must be a positive integer multiplier, got {width!r}.")
    if input_specs is None:
      input_specs = tf_keras.layers.InputSpec(shape=[None, None, None, 3])
    regularizer = tf_keras.regularizers.get(kernel_regularizer)
    self._config = dict(depth=depth, width=width, normalization=normalization, groups=groups,
                        norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                        kernel_regularizer=tf_keras.regularizers.serialize(regularizer)
                        if regularizer is not None else None,
                        input_specs=input_specs.shape)

    settings = LayerSettings(normalization, groups, norm_momentum, norm_epsilon, regularizer)
    inputs = tf_keras.Input(shape=input_specs.shape[1:], name="images")
    x = tf_keras.layers.Rescaling(2.0, offset=-1.0, name="to_symmetric_range")(inputs)
    # The stem conv carries a bias, as in Keras' ResNet50V2.
    x = settings.strided_conv(x, 64 * width, 7, 2, "stem_conv", use_bias=True)
    x = tf_keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = tf_keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    endpoints = {}
    for level, num_units in zip(ENDPOINT_LEVELS, BLOCKS_BY_DEPTH[depth]):
      filters = 64 * width * 2 ** (level - 2)
      for i in range(num_units):
        strides = 2 if (i == 0 and level > 2) else 1
        x = preactivation_unit(x, filters, strides, i == 0, f"stage{level}_unit{i + 1}",
                               settings)
      endpoints[str(level)] = x
    endpoints["5"] = settings.norm_relu(x, "post")
    endpoints["pre_logits"] = tf_keras.layers.GlobalAveragePooling2D(name="pre_logits")(
        endpoints["5"])
    # Endpoints leave in float32 whatever the mixed-precision policy.
    outputs = {k: tf_keras.layers.Activation("linear", dtype="float32", name=f"endpoint_{k}")(v)
               for k, v in endpoints.items()}
    super().__init__(inputs=inputs, outputs=outputs, **kwargs)
    self._output_specs = {k: v.get_shape() for k, v in outputs.items() if k != "pre_logits"}

  def call(self, inputs, training=None, mask=None, sample_mask=None):
    with _statistics_over(sample_mask):
      return super().call(inputs, training=training, mask=mask)

  @property
  def output_specs(self) -> dict[str, tf.TensorShape]:
    """`{str(level): TensorShape}` of the feature maps (Model Garden's backbone contract)."""
    return self._output_specs

  @property
  def representation_dim(self) -> int:
    return 2048 * self._config["width"]

  def get_config(self) -> dict:
    # The base Layer's name and trainable flag, not the functional graph: the model is rebuilt
    # from its arguments.
    base = tf_keras.layers.Layer.get_config(self)
    return {"name": base["name"], "trainable": base["trainable"], **self._config}

  @classmethod
  def from_config(cls, config, custom_objects=None) -> "ResNetV2":
    config = dict(config)
    shape = config.pop("input_specs", None)
    if shape is not None:
      config["input_specs"] = tf_keras.layers.InputSpec(shape=shape)
    return cls(**config)
