"""Convolution with weight standardisation (Qiao et al., 2019), used with group norm."""

import tensorflow as tf
import tf_keras


@tf_keras.utils.register_keras_serializable(package="keras_vivi")
class StandardizedConv2D(tf_keras.layers.Conv2D):
  """`Conv2D` whose kernel is standardised per output channel before every use.

  Each output filter is shifted to zero mean and scaled to unit variance over
  its (height, width, input channel) weights; the stored variable is unchanged.
  """

  def __init__(self, *args, epsilon=1e-5, **kwargs):
    super().__init__(*args, **kwargs)
    self.epsilon = epsilon

  def convolution_op(self, inputs, kernel) -> tf.Tensor:
    # Statistics in float32: under mixed precision the kernel arrives in half precision.
    kernel32 = tf.cast(kernel, tf.float32)
    mean, var = tf.nn.moments(kernel32, axes=[0, 1, 2], keepdims=True)
    kernel32 = (kernel32 - mean) * tf.math.rsqrt(var + self.epsilon)
    return super().convolution_op(inputs, tf.cast(kernel32, kernel.dtype))

  def get_config(self) -> dict:
    return {**super().get_config(), "epsilon": self.epsilon}
