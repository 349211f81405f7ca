"""Learning-rate schedule and optimiser from a `TrainConfig` (small pure rules)."""

import tf_keras


def scaled_learning_rate(train, batch_size):
  """The base learning rate scaled linearly with the global batch size."""
  return train.base_learning_rate * batch_size / train.base_batch_size


def learning_rate_schedule(train, batch_size):
  """Piecewise constant: ×`decay_factor` after each of `decay_steps` (paper: 90k and 110k)."""
  if list(train.decay_steps) != sorted(train.decay_steps):
    raise ValueError(f"decay_steps must be increasing, got {train.decay_steps!r}.")
  base = scaled_learning_rate(train, batch_size)
  values = [base * train.decay_factor ** i for i in range(len(train.decay_steps) + 1)]
  if not train.decay_steps:
    return tf_keras.optimizers.schedules.PiecewiseConstantDecay([train.steps], values * 2)
  return tf_keras.optimizers.schedules.PiecewiseConstantDecay(list(train.decay_steps), values)


def build_optimizer(train, batch_size):
  """SGD with momentum and decoupled weight decay (not on biases and normalisation scales)."""
  optimizer = tf_keras.optimizers.SGD(learning_rate_schedule(train, batch_size),
                                      momentum=train.momentum,
                                      weight_decay=train.weight_decay or None)
  if train.weight_decay:
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
  return optimizer
