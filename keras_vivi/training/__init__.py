"""Training: the model whose train_step computes the hierarchy losses, schedules, strategies."""

from keras_vivi.training.optimization import (build_optimizer, learning_rate_schedule,
                                              scaled_learning_rate)
from keras_vivi.training.vivi_model import VIVIModel

__all__ = ["build_optimizer", "learning_rate_schedule", "scaled_learning_rate", "VIVIModel"]
