"""Projection of backbone representations to L2-normalised embeddings."""

import tensorflow as tf
import tf_keras


@tf_keras.utils.register_keras_serializable(package="keras_vivi")
class ProjectionHead(tf_keras.layers.Layer):
  """MLP `[..., D] -> [..., output_dim]` with an L2-normalised output (P_f and P_o of the paper).

  Args:
    output_dim: embedding size.
    hidden_dims: sizes of the ReLU hidden layers before the final linear map; `()` is linear.
    normalize: L2-normalise the output (the frame and object triplet losses expect it).
  """

  def __init__(self, output_dim, hidden_dims=(), normalize=True, **kwargs):
    super().__init__(**kwargs)
    if int(output_dim) < 1:
      raise ValueError(f"output_dim must be a positive integer, got {output_dim!r}.")
    self.output_dim = int(output_dim)
    self.hidden_dims = tuple(int(d) for d in hidden_dims)
    self.normalize = normalize
    self._layers = [tf_keras.layers.Dense(d, activation="relu", name=f"hidden_{i}")
                    for i, d in enumerate(self.hidden_dims)]
    self._layers.append(tf_keras.layers.Dense(self.output_dim, name="embedding"))

  def call(self, inputs) -> tf.Tensor:
    x = inputs
    for layer in self._layers:
      x = layer(x)
    if self.normalize:
      x = tf.math.l2_normalize(tf.cast(x, tf.float32), axis=-1)
    return x

  def get_config(self) -> dict:
    return {**super().get_config(), "output_dim": self.output_dim,
            "hidden_dims": self.hidden_dims, "normalize": self.normalize}
