"""The VTAB-1k protocol's settings, importable without TensorFlow (the `vivi-vtab` flags' defaults)."""

import dataclasses
from typing import Tuple


@dataclasses.dataclass(frozen=True)
class SweepPoint:
  """One hyper-parameter setting: SGD learning rate and piecewise schedule."""
  learning_rate: float
  steps: int
  decay_every: int


# The VTAB-1k "lightweight" sweep: {0.1, 0.01} × {10k steps decaying every 3k, 2.5k / 750}.
DEFAULT_SWEEP = (SweepPoint(0.1, 10000, 3000), SweepPoint(0.01, 10000, 3000),
                 SweepPoint(0.1, 2500, 750), SweepPoint(0.01, 2500, 750))


@dataclasses.dataclass(frozen=True)
class VtabConfig:
  """How each task is fine-tuned and scored.

  Attributes:
    sweep: the `SweepPoint`s tried on train800 / val200.
    steps_scale: multiplies every point's steps and decay_every (rounded, at least 1), for
      smoke runs; 1.0 is the protocol.
    batch_size: training batch (VTAB: 64).
    eval_batch_size: evaluation batch (does not change accuracy: inference mode).
    image_size: images are resized to image_size × image_size (VTAB: 224).
    momentum: SGD momentum (VTAB: 0.9).
    warmup_steps: linear learning-rate warm-up (VTAB-1k: none).
    seed: seeds every fine-tuning run (shuffling, dropout, initialisers); repetitions of the
      protocol (`vivi-compare`) need distinct seeds.
  """
  sweep: Tuple[SweepPoint, ...] = DEFAULT_SWEEP
  steps_scale: float = 1.0
  batch_size: int = 64
  eval_batch_size: int = 100
  image_size: int = 224
  momentum: float = 0.9
  warmup_steps: int = 0
  seed: int = 0

  def points(self):
    """The sweep with `steps_scale` applied."""
    return tuple(SweepPoint(p.learning_rate, max(1, round(p.steps * self.steps_scale)),
                            max(1, round(p.decay_every * self.steps_scale)))
                 for p in self.sweep)
