"""Learning-rate schedule and optimiser from a `TrainConfig` (small pure rules)."""

import tensorflow as tf
import tf_keras


def scaled_learning_rate(train, batch_size) -> float:
  """The base learning rate scaled linearly with the global batch size."""
  return train.base_learning_rate * batch_size / train.base_batch_size


def learning_rate_schedule(train, batch_size) -> tf_keras.optimizers.schedules.LearningRateSchedule:
  """Piecewise constant: ×`decay_factor` after each of `decay_steps` (paper: 90k and 110k)."""
  if list(train.decay_steps) != sorted(train.decay_steps):
    raise ValueError(f"decay_steps must be increasing, got {train.decay_steps!r}.")
  base = scaled_learning_rate(train, batch_size)
  values = [base * train.decay_factor ** i for i in range(len(train.decay_steps) + 1)]
  if not train.decay_steps:
    return tf_keras.optimizers.schedules.PiecewiseConstantDecay([train.steps], values * 2)
  return tf_keras.optimizers.schedules.PiecewiseConstantDecay(list(train.decay_steps), values)


def build_optimizer(train, batch_size) -> tf_keras.optimizers.Optimizer:
  """SGD with momentum; with `weight_decay_type="decoupled"` also decoupled weight decay (not on
  biases and normalisation parameters). The "l2" penalty is added to the loss by the model."""
  decoupled = train.weight_decay if train.weight_decay_type == "decoupled" else 0.0
  optimizer = tf_keras.optimizers.SGD(learning_rate_schedule(train, batch_size),
                                      momentum=train.momentum, weight_decay=decoupled or None)
  if decoupled:
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
  return optimizer


def decayed_weights(variables) -> list[tf.Variable]:
  """The variables an L2 penalty covers: kernels (rank ≥ 2: conv, dense, LSTM, critic), not
  biases or normalisation parameters."""
  return [v for v in variables if v.shape.rank is not None and v.shape.rank >= 2]


def l2_penalty(train, variables) -> tf.Tensor:
  """`weight_decay · Σ‖w‖²/2` over `decayed_weights(variables)` when `weight_decay_type="l2"`,
  else 0. Scalar float32."""
  weights = decayed_weights(variables)
  if train.weight_decay_type != "l2" or not train.weight_decay or not weights:
    return tf.constant(0.0)
  return train.weight_decay * tf.add_n([tf.nn.l2_loss(tf.cast(w, tf.float32)) for w in weights])
