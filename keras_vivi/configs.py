"""Frozen configuration dataclasses and the registry of named experiments.

Every experiment of the paper is a named `ExperimentConfig`; `get_experiment(name)` returns it
and `apply_overrides(config, ["train.steps=100"])` derives a variant.
"""

import dataclasses
import json
import os
import typing

import tensorflow as tf

RUN_CONFIG_FILE = "config.json"  # beside a training run's checkpoints
# The detector of the paper's experiments: TF-Hub's SSD-MobileNetV2 on all 600 Open Images V4
# classes. The MediaPipe detector (23 of those classes) is the offline default of demos and tests.
PAPER_DETECTOR = "https://tfhub.dev/google/openimages_v4/ssd/mobilenet_v2/1"


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """What a training example holds (paper §4.1) and how it is augmented."""
  path: str = ""                 # directory of prepared shards (or a glob of them)
  shots_per_video: int = 4       # K consecutive shots (a random window)
  frames_per_shot: int = 8       # F, sampled with replacement when a shot has fewer
  max_objects: int = 5           # M boxes per frame
  image_size: int = 224
  batch_size: int = 512          # videos per global batch
  min_score: float = 0.05        # detections below are dropped
  short_videos: str = "pad"      # videos with fewer than K shots: "pad" (masked) or "drop"
  crop_area: tuple = (0.08, 1.0)           # inception crop: fraction of the frame area
  crop_aspect_ratio: tuple = (0.75, 1.333)  # inception crop: width / height
  flip: bool = True
  color_distortion: float = 0.5  # strength of brightness/contrast/saturation/hue jitter; 0 is off
  box_ablation: str = "none"     # "none", "random_boxes" (labels kept), "random_boxes_and_labels"
  num_classes: int = 602         # random labels are drawn from 1..num_classes-1 (OIDv4 ids 1..601)
  inline_detection: bool = False  # ignore stored boxes; train_step runs the detector
  detector: str = ""             # detector spec for inline detection ("" = MediaPipe OIDv4)
  paper_detector: str = PAPER_DETECTOR  # what the paper's experiments used (declared, not loaded)
  # The label space the boxes came from: set by the trainer from the records' manifest.json (or
  # the inline detector) and saved in the run's config.json.
  label_space: str = ""
  raw_image_size: int = 300      # un-augmented frames handed to an inline detector
  shuffle_buffer: int = 256      # videos
  seed: typing.Optional[int] = None  # deterministic order and augmentation when set
  # Labelled images for co-training: a tfds name or a TFRecord glob of {image, label}.
  labelled_images: str = ""
  labelled_batch_size: int = 2048


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Backbone and heads."""
  depth: int = 50
  width: int = 1                 # 1× or 3× ResNet
  normalization: str = "batch"   # "batch", or "group" (with weight standardisation)
  groups: int = 32
  embedding_dim: int = 128       # frame and object embeddings
  projection_hidden_dims: tuple = (512,)
  shot_dim: int = 512            # projected shot representation
  lstm_units: int = 256
  prediction_steps: int = 1      # shots predicted ahead from each context
  num_box_classes: int = 602     # box / crop classifiers, indexed by Open Images V4 id (1..601)
  num_supervised_classes: int = 1000  # co-training labels
  num_teacher_classes: int = 1001     # outputs of the distillation teacher


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Which levels are trained and how they are weighted: ω·L_object + L_frame + β·L_shot."""
  frame: bool = True
  shot: bool = True
  object: bool = False
  box_classifier: bool = False   # the 600-way sigmoid classifier on r_b ("also predict CE")
  supervised: bool = False       # co-training on labelled images
  distillation: bool = False     # soft frame labels from a teacher classifier
  teacher: str = ""              # teacher hub handle or SavedModel path (images in [0, 1] → logits)
  detector_crops: bool = False   # softmax classifier on object crops labelled by the detector
  omega: float = 5.0
  beta: float = 0.04
  gamma: float = 1.0
  box_classifier_weight: float = 1.0
  distillation_weight: float = 1.0
  margin: float = 0.2
  shot_negatives: str = "batch"  # "batch" (whole global batch) or "same_position" (strict eq. 1)
  # "per_video": eq. 1 as written (terms summed over positions and steps, mean over videos);
  # "per_query": mean over prediction queries (1/(K−1) of that weight for one step).
  shot_normalization: str = "per_video"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimiser and schedule (paper: SGD momentum 0.9, batch 512, lr 0.8, ×0.1 at 90k and 110k)."""
  steps: int = 120_000
  base_learning_rate: float = 0.8
  base_batch_size: int = 512     # lr = base_learning_rate · batch_size / base_batch_size
  decay_steps: tuple = (90_000, 110_000)
  decay_factor: float = 0.1
  momentum: float = 0.9
  weight_decay: float = 1e-4
  # "l2": weight_decay·Σ‖w‖²/2 over conv, dense and recurrent kernels added to the loss, as the
  # official TF ResNet and S4L do (the paper states none); "decoupled": SGD(weight_decay=…),
  # which multiplies by the learning rate and is about 10× weaker at momentum 0.9.
  weight_decay_type: str = "l2"
  mixed_precision: typing.Optional[str] = None  # None, "mixed_float16" or "mixed_bfloat16"
  jit_compile: bool = False      # XLA is slower for ResNet training on CPU


@dataclasses.dataclass(frozen=True)
class DiagnosticConfig:
  """Table 2's object diagnostic during training: nearest neighbours within each batch of
  `videos_per_batch` videos, counts summed over `num_batches` batches (the paper: 50 × 8)."""
  every_epochs: int = 1          # computed before training and every N epochs; 0 turns it off
  num_batches: int = 50
  videos_per_batch: int = 8

  def __post_init__(self):
    for name in ("every_epochs", "num_batches", "videos_per_batch"):
      value, low = getattr(self, name), 0 if name == "every_epochs" else 1
      if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"diagnostic.{name} must be an int >= {low}, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  name: str
  description: str
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  loss: LossConfig = LossConfig()
  train: TrainConfig = TrainConfig()
  diagnostic: DiagnosticConfig = DiagnosticConfig()


_EXPERIMENTS = {}


def save_run_config(config, model_dir):
  """Writes `config` as `model_dir/config.json` (local or remote paths)."""
  with tf.io.gfile.GFile(os.path.join(model_dir, RUN_CONFIG_FILE), "w") as f:
    json.dump(to_dict(config), f, indent=1)


def load_run_config(model_dir):
  """The `ExperimentConfig` saved in `model_dir`, or None when there is none."""
  path = os.path.join(model_dir, RUN_CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return from_dict(json.load(f))


def to_dict(config):
  """JSON-ready dict of an `ExperimentConfig` (tuples become lists)."""
  return dataclasses.asdict(config)


def from_dict(values):
  """`ExperimentConfig` from `to_dict` output; unknown keys are an error naming them."""
  def build(cls, data):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
      raise ValueError(f"Unknown {cls.__name__} fields {sorted(unknown)}; known: {sorted(fields)}.")
    kwargs = {}
    for name, value in data.items():
      default = fields[name].default
      if dataclasses.is_dataclass(default):
        value = build(type(default), value)
      elif isinstance(default, tuple):
        value = tuple(value)
      kwargs[name] = value
    return cls(**kwargs)
  return build(ExperimentConfig, values)


def register_experiment(config):
  """Adds `config` to the registry under `config.name`; returns it."""
  if config.name in _EXPERIMENTS:
    raise ValueError(f"Experiment {config.name!r} is already registered.")
  _EXPERIMENTS[config.name] = config
  return config


def get_experiment(name):
  """The registered `ExperimentConfig` called `name`."""
  try:
    return _EXPERIMENTS[name]
  except KeyError:
    raise KeyError(f"Unknown experiment {name!r}; known: {', '.join(sorted(_EXPERIMENTS))}.")


def list_experiments():
  return sorted(_EXPERIMENTS)


def _parse_value(text, kind, where):
  """`text` as a value of the field type `kind` (bool, int, float, str, tuple, Optional[...])."""
  if typing.get_origin(kind) is typing.Union:  # Optional[X]
    if text.lower() == "none":
      return None
    kind = next(k for k in typing.get_args(kind) if k is not type(None))
  if kind is bool:
    if text.lower() in ("true", "1", "yes"):
      return True
    if text.lower() in ("false", "0", "no"):
      return False
    raise ValueError(f"{where} expects true/false, got {text!r}.")
  if kind is tuple:
    items = [t.strip() for t in text.strip("()[] ").split(",") if t.strip()]
    return tuple(_parse_number(t, int if t.lstrip("-").isdigit() else float, where)
                 for t in items)
  if kind is str:
    return text
  return _parse_number(text, kind, where)


def _parse_number(text, kind, where):
  try:
    value = float(text)
  except ValueError:
    value = None
  if value is None or (kind is int and not value.is_integer()):
    raise ValueError(f"{where} expects a {kind.__name__}, got {text!r}.")
  return kind(value)


def apply_overrides(config, overrides):
  """Returns `config` with `section.field=value` strings applied (e.g. `train.steps=100`)."""
  for item in overrides:
    key, sep, text = item.partition("=")
    section, _, field = key.strip().partition(".")
    sub = getattr(config, section, None) if sep else None
    if not dataclasses.is_dataclass(sub) or field not in {f.name for f in
                                                          dataclasses.fields(sub)}:
      raise ValueError(f"Override {item!r} must look like section.field=value with a field of "
                       f"{[f.name for f in dataclasses.fields(config) if f.name not in ('name', 'description')]}.")
    kind = {f.name: f.type for f in dataclasses.fields(sub)}[field]
    value = _parse_value(text.strip(), kind, key)
    config = dataclasses.replace(config, **{section: dataclasses.replace(sub, **{field: value})})
  return config


def _variant(base, name, description, **sections):
  """Registers `base` with some sections' fields replaced: `_variant(b, n, d, loss={...})`."""
  changes = {k: dataclasses.replace(getattr(base, k), **v) for k, v in sections.items()}
  return register_experiment(dataclasses.replace(base, name=name, description=description,
                                                 **changes))


_VIVI = ExperimentConfig(
    name="vivi",
    description="VIVI baseline: frame triplet loss + β·shot InfoNCE (Tschannen et al., 2020).",
    loss=LossConfig(frame=True, shot=True, object=False))
register_experiment(_VIVI)
_OURS = _variant(_VIVI, "vivi_objects",
                 "Ours: ω·object triplet loss + frame triplet loss + β·shot InfoNCE (eq. 3).",
                 loss={"object": True})

# Table 1 ablations.
_variant(_OURS, "random_boxes_and_labels", "Ours with boxes and labels at random.",
         data={"box_ablation": "random_boxes_and_labels"})
_variant(_OURS, "random_boxes", "Ours with boxes at random coordinates (detector labels kept).",
         data={"box_ablation": "random_boxes"})
_variant(_VIVI, "distill_imagenet",
         "VIVI + distilling soft frame labels from an ImageNet classifier (teacher handle in "
         "loss.teacher).",
         loss={"distillation": True,
               "teacher": "https://tfhub.dev/google/imagenet/resnet_v2_50/classification/5"})
_variant(_OURS, "objects_plus_cross_entropy",
         "Ours + a 600-way sigmoid classifier on the box representations (also predict CE).",
         loss={"box_classifier": True})
_variant(_VIVI, "cross_entropy_only",
         "VIVI + the box classifier's cross-entropy instead of the object triplet loss.",
         loss={"box_classifier": True})
_variant(_VIVI, "objects_only", "Only the object-level triplet loss.",
         loss={"frame": False, "shot": False, "object": True})
_variant(_VIVI, "detector_distill",
         "Detector distillation: a ResNet trained to classify object crops labelled by the "
         "detector.", loss={"frame": False, "shot": False, "detector_crops": True})

# Co-training with labelled images (GN + WS), and 3× wider ResNets.
for _base in (_VIVI, _OURS):
  _cotrain = _variant(
      _base, f"{_base.name}_cotrain",
      f"{_base.description} Co-trained with γ·softmax cross-entropy on ImageNet (GN + WS).",
      model={"normalization": "group"},
      loss={"supervised": True},
      data={"labelled_images": "imagenet2012"},
      train={"steps": 100_000, "decay_steps": (70_000, 85_000, 95_000)})
  for _cfg in (_base, _cotrain):
    _variant(_cfg, f"{_cfg.name}_3x", f"{_cfg.description} 3× wider ResNet-50.",
             model={"width": 3})
