"""How an export becomes an ImageNet classifier for the robustness study, importable without
TensorFlow (the `vivi-robustness` flags' defaults)."""

import dataclasses
from typing import Tuple


@dataclasses.dataclass(frozen=True)
class ImageNetRecipe:
  """How an export becomes an ImageNet classifier (our choice; the paper states none).

  Attributes:
    mode: 'finetune' (module and head trained, the paper's "fine tuning") or 'linear' (frozen
      module, a linear probe).
    steps: SGD steps (default 25k at batch 512: 10 epochs of ImageNet's 1.28M images).
    batch_size: training batch.
    learning_rate: initial rate (linear warm-up, then ×0.1 every `decay_every` steps).
    decay_every: steps between decays (default: at 30 %, 60 % and 90 % of training).
    warmup_steps: linear warm-up (default: half an epoch).
    momentum: SGD momentum.
    image_size: training and evaluation resolution.
    crop_area: inception crop's area range (the co-training preprocessing; random flip too).
    seed: shuffling and crop seed.
    split: tfds imagenet2012 split trained on.
  """
  mode: str = "finetune"
  steps: int = 25_000
  batch_size: int = 512
  learning_rate: float = 0.1
  decay_every: int = 7_500
  warmup_steps: int = 1_250
  momentum: float = 0.9
  image_size: int = 224
  crop_area: Tuple[float, float] = (0.08, 1.0)
  seed: int = 0
  split: str = "train"

  def __post_init__(self):
    if self.mode not in ("finetune", "linear"):
      raise ValueError(f"mode must be 'finetune' or 'linear', got {self.mode!r}.")
    for field in ("steps", "batch_size", "decay_every", "image_size"):
      if getattr(self, field) < 1:
        raise ValueError(f"{field} must be >= 1, got {getattr(self, field)!r}.")
    if self.learning_rate <= 0 or self.warmup_steps < 0:
      raise ValueError(f"learning_rate must be > 0 and warmup_steps >= 0, got "
                       f"{self.learning_rate!r} and {self.warmup_steps!r}.")
