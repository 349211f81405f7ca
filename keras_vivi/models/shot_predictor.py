"""Prediction of future shot representations: LSTM context and bilinear critics."""

import tensorflow as tf
import tf_keras


def aggregate_shots(frame_features, frame_mask=None) -> tf.Tensor:
  """Mean of the valid frame representations of each shot.

  Args:
    frame_features: `[..., F, D]` frame representations.
    frame_mask: optional `[..., F]`, true for real frames.

  Returns:
    `[..., D]` float32; a shot with no valid frame gets zeros.
  """
  frame_features = tf.cast(frame_features, tf.float32)
  if frame_mask is None:
    return tf.reduce_mean(frame_features, axis=-2)
  weights = tf.cast(frame_mask, tf.float32)[..., None]
  total = tf.reduce_sum(frame_features * weights, axis=-2)
  return total / tf.maximum(tf.reduce_sum(weights, axis=-2), 1.0)


@tf_keras.utils.register_keras_serializable(package="keras_vivi")
class ShotPredictor(tf_keras.layers.Layer):
  """LSTM over shots `s_1..s_K` and one bilinear critic `g_m(h, s) = hᵀ W_m s` per step m.

  Call on shots `[B, K, D]`; returns predictions `[B, K, S, D]` where entry `[:, l, m-1]` is
  `W_mᵀ h_l`, so the critic score against any shot `s` is the dot product with `s`.
  A prediction from context `l` (0-based) targets shot `l + m`.
  """

  def __init__(self, prediction_steps=1, lstm_units=256, **kwargs):
    super().__init__(**kwargs)
    if int(prediction_steps) < 1:
      raise ValueError(f"prediction_steps must be >= 1, got {prediction_steps!r}.")
    self.prediction_steps = int(prediction_steps)
    self.lstm_units = int(lstm_units)
    # Unrolled over the few shots: a symbolic loop makes XLA recompile the step every time.
    self.lstm = tf_keras.layers.LSTM(self.lstm_units, return_sequences=True, unroll=True,
                                     name="lstm")

  def build(self, input_shape) -> None:
    dim = int(input_shape[-1])
    self.critics = self.add_weight(
        name="critics", shape=[self.prediction_steps, self.lstm_units, dim],
        initializer="glorot_uniform")
    super().build(input_shape)

  def call(self, shots) -> tf.Tensor:
    context = self.lstm(shots)  # [B, K, U]
    return tf.einsum("bku,sud->bksd", context, tf.cast(self.critics, context.dtype))

  def get_config(self) -> dict:
    return {**super().get_config(), "prediction_steps": self.prediction_steps,
            "lstm_units": self.lstm_units}
