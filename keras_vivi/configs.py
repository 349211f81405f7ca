"""Frozen configuration dataclasses and the registry of named experiments.

Every experiment of the paper is a named `ExperimentConfig`; `get_experiment(name)` returns it
and `apply_overrides(config, ["train.steps=100"])` derives a variant. `build_config` is the one
path of `vivi-train`: the experiment, then YAML `--config_file`s, then `--params_override`; every
value, from a `section.field=value` string or from YAML, is parsed by its field's type
(`_parse_value`) and the merged result is validated once by the dataclasses.
"""

import dataclasses
import json
import math
import os
import re
import typing

import yaml

from keras_vivi import files

RUN_CONFIG_FILE = "config.json"  # beside a training run's checkpoints
# The `tf.distribute` strategies training and fine-tuning run on (`trainer.build_strategy`).
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def _expected_type(value, kind):
  """None if `value` fits the field annotation `kind`, else what was expected."""
  if typing.get_origin(kind) is typing.Union:  # Optional[X]
    if value is None:
      return None
    inner = next(k for k in typing.get_args(kind) if k is not type(None))
    problem = _expected_type(value, inner)
    return problem and f"None or {problem}"
  if typing.get_origin(kind) is typing.Literal:
    choices = typing.get_args(kind)
    if any(value == c and type(value) is type(c) for c in choices):
      return None
    return f"one of {', '.join(repr(c) for c in choices)}"
  if kind is float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return None if ok else "a finite number"
  if kind is tuple:
    ok = isinstance(value, tuple) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in value)
    return None if ok else "a tuple of finite numbers"
  if kind is int and isinstance(value, bool):
    return "an int"
  if isinstance(kind, type) and not isinstance(value, kind):
    return f"a {kind.__name__}"
  return None


def _validate(config, rules=None, checks=()):
  """Raises ValueError naming the field, its value and what is allowed.

  Every field must fit its annotation (choices are `typing.Literal`, floats are finite);
  `rules` maps field names to `(test, what is allowed)`; `checks` are `(test, message)` pairs
  over several fields.
  """
  name = type(config).__name__
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    expected = _expected_type(value, field.type)
    if expected is None and field.name in (rules or {}) and value is not None:
      test, allowed = rules[field.name]
      expected = None if test(value) else allowed
    if expected is not None:
      raise ValueError(f"{name}.{field.name} must be {expected}, got {value!r}.")
  for test, message in checks:
    if not test(config):
      raise ValueError(f"{name}: {message}")


def _at_least(low):
  return lambda v: v >= low, f">= {low}"


def _range(low, high, low_open=False, high_open=False):
  """`(test, text)` of the interval low..high, closed unless said."""
  def test(v):
    return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
  return test, f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def _pair(low, high):
  """A `(min, max)` tuple with low < min <= max <= high."""
  return (lambda v: len(v) == 2 and low < v[0] <= v[1] <= high,
          f"a pair (min, max) with {low} < min <= max <= {high}")


_POSITIVE = _at_least(1)
_NON_NEGATIVE = _at_least(0)
_DATA_RULES = {
    **{k: _POSITIVE for k in ("shots_per_video", "frames_per_shot", "max_objects", "image_size",
                              "batch_size", "raw_image_size", "shuffle_buffer",
                              "labelled_batch_size")},
    "min_score": _range(0, 1), "crop_area": _pair(0, 1), "crop_aspect_ratio": _pair(0, math.inf),
    "color_distortion": _NON_NEGATIVE, "num_classes": _at_least(2), "seed": _NON_NEGATIVE}
_MODEL_RULES = {
    **{k: _POSITIVE for k in ("width", "groups", "embedding_dim", "shot_dim", "lstm_units",
                              "prediction_steps", "num_supervised_classes",
                              "num_teacher_classes")},
    "num_box_classes": _at_least(2),
    "projection_hidden_dims": (lambda v: all(isinstance(d, int) and d >= 1 for d in v),
                               "a tuple of ints >= 1")}
_LOSS_RULES = {k: _NON_NEGATIVE for k in ("omega", "beta", "gamma", "box_classifier_weight",
                                          "distillation_weight", "margin", "max_crops")}
_LOSS_TERMS = ("frame", "shot", "object", "box_classifier", "supervised", "distillation",
               "detector_crops")
_TRAIN_RULES = {
    "steps": _POSITIVE, "steps_per_execution": _POSITIVE, "base_learning_rate": _range(0, math.inf, low_open=True),
    "base_batch_size": _POSITIVE, "decay_factor": _range(0, 1, low_open=True),
    "momentum": _range(0, 1, high_open=True), "weight_decay": _NON_NEGATIVE,
    "keep_checkpoints": (lambda v: v >= 2, ">= 2 (the one before the newest is the fallback when "
                         "the newest is damaged) or None to keep every checkpoint"),
    "decay_steps": (lambda v: all(isinstance(s, int) and s >= 0 for s in v) and
                    list(v) == sorted(v), "increasing step numbers (ints >= 0)")}


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
  # Videos with fewer than K shots (the paper samples "a sequence of four shots" per video and
  # does not say): "pad" keeps them, the padding masked out of batch norm and every loss.
  short_videos: typing.Literal["pad", "drop"] = "pad"
  crop_area: tuple = (0.08, 1.0)           # inception crop: fraction of the frame area
  crop_aspect_ratio: tuple = (0.75, 1.333)  # inception crop: width / height
  flip: bool = True
  # Colour distortion: "inception" (the paper's policy, via its [66]: TF-slim's ranges) or
  # "simclr" (multiplicative brightness, larger ranges); the strength scales the ranges, 1 = the
  # policy's own, 0 = off (`keras_vivi.data.augment.color_distortion`).
  color_policy: typing.Literal["inception", "simclr"] = "inception"
  color_distortion: float = 1.0
  # "random_boxes" keeps the detector's labels.
  box_ablation: typing.Literal["none", "random_boxes", "random_boxes_and_labels"] = "none"
  num_classes: int = 602         # random labels are drawn from 1..num_classes-1 (OIDv4 ids 1..601)
  inline_detection: bool = False  # ignore stored boxes; train_step runs the detector
  detector: str = ""             # detector spec for inline detection ("" = MediaPipe OIDv4)
  raw_image_size: int = 300      # un-augmented frames handed to an inline detector
  shuffle_buffer: int = 256      # videos
  seed: typing.Optional[int] = None  # deterministic order and augmentation when set
  # Labelled images for co-training: a tfds name or a TFRecord glob of {image, label}.
  labelled_images: str = ""
  labelled_batch_size: int = 2048

  def __post_init__(self):
    _validate(self, _DATA_RULES)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Backbone and heads."""
  depth: typing.Literal[14, 26, 50, 101, 152] = 50
  width: int = 1                 # 1× or 3× ResNet
  normalization: typing.Literal["batch", "group"] = "batch"  # group: with weight standardisation
  groups: int = 32
  embedding_dim: int = 128       # frame and object embeddings
  projection_hidden_dims: tuple = (512,)
  shot_dim: int = 512            # projected shot representation
  lstm_units: int = 256
  prediction_steps: int = 1      # shots predicted ahead from each context
  num_box_classes: int = 602     # box / crop classifiers, indexed by Open Images V4 id (1..601)
  num_supervised_classes: int = 1000  # co-training labels
  num_teacher_classes: int = 1001     # outputs of the distillation teacher

  def __post_init__(self):
    _validate(self, _MODEL_RULES)


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
  # Crops per replica and step for `detector_crops` (a static number, as XLA/TPUs need): the real
  # boxes fill them in batch order, repeated when fewer, so batch norm sees real crops only;
  # 0 = one per box slot (frames × data.max_objects), which never leaves a real box out.
  max_crops: int = 0
  omega: float = 5.0
  beta: float = 0.04
  gamma: float = 1.0
  # The scale of every cross-entropy term (box classifier, crops, distillation, co-training).
  # The paper gives no value for γ, and "a binary cross-entropy loss" over 600 classes may be a
  # sum or a mean over them. "chance": each term divided by its value at chance (C·log 2 for
  # the summed sigmoid CE, log C for a softmax CE), so 1 means chance and a weight of 1 puts it
  # beside the triplet and shot terms; "none": nats (the sigmoid CE summed over classes, about
  # 400 at the start with 602 classes, dwarfs every other term).
  cross_entropy_normalization: typing.Literal["chance", "none"] = "chance"
  box_classifier_weight: float = 1.0
  distillation_weight: float = 1.0
  margin: float = 0.2
  # "batch" (whole global batch) or "same_position" (strict eq. 1)
  shot_negatives: typing.Literal["batch", "same_position"] = "batch"
  # "per_video": eq. 1 as written (terms summed over positions and steps, mean over videos);
  # "per_query": mean over prediction queries (1/(K−1) of that weight for one step).
  shot_normalization: typing.Literal["per_video", "per_query"] = "per_video"

  def __post_init__(self):
    _validate(self, _LOSS_RULES, [(
        lambda c: any(getattr(c, t) for t in _LOSS_TERMS),
        f"no loss is switched on; set at least one of {', '.join(_LOSS_TERMS)} to true.")])


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
  weight_decay_type: typing.Literal["l2", "decoupled"] = "l2"
  # None: mixed_bfloat16 on a TPU strategy (as the paper's TPUs trained), float32 elsewhere.
  mixed_precision: typing.Optional[typing.Literal["float32", "mixed_float16",
                                                  "mixed_bfloat16"]] = None
  jit_compile: bool = False      # XLA, as TPUs compile; slower for ResNet training on CPU
  steps_per_execution: int = 1   # train steps per call of the compiled function (TPU host loop)
  # The newest checkpoints kept in model_dir (older ones the run wrote are deleted once a newer
  # one is committed); at least 2, so a damaged newest one falls back to the one before; None
  # keeps all.
  keep_checkpoints: typing.Optional[int] = 3

  def __post_init__(self):
    _validate(self, _TRAIN_RULES)


@dataclasses.dataclass(frozen=True)
class DiagnosticConfig:
  """Table 2's object diagnostic during training: nearest neighbours within each batch of
  `videos_per_batch` videos, counts summed over `num_batches` batches (the paper: 50 × 8)."""
  every_epochs: int = 1          # computed before training and every N epochs; 0 turns it off
  num_batches: int = 50
  videos_per_batch: int = 8
  # A video's frames in a batch (the paper does not say): "training_sampler", K shots × F frames
  # as training samples them, un-augmented; "every_stored_frame", all of the video's frames.
  frames: typing.Literal["training_sampler", "every_stored_frame"] = "training_sampler"

  def __post_init__(self):
    _validate(self, {"every_epochs": _NON_NEGATIVE, "num_batches": _POSITIVE,
                     "videos_per_batch": _POSITIVE})


FRAME_SOURCES = typing.get_args(DiagnosticConfig.__dataclass_fields__["frames"].type)
TRAINING_SAMPLER, EVERY_STORED_FRAME = FRAME_SOURCES


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  name: str
  description: str
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  loss: LossConfig = LossConfig()
  train: TrainConfig = TrainConfig()
  diagnostic: DiagnosticConfig = DiagnosticConfig()

  def __post_init__(self):
    _validate(self, checks=[(
        lambda c: not c.loss.shot or c.data.shots_per_video > c.model.prediction_steps,
        f"the shot loss predicts model.prediction_steps={self.model.prediction_steps} shots "
        f"ahead, so data.shots_per_video={self.data.shots_per_video} must be larger.")])


_EXPERIMENTS: typing.Dict[str, ExperimentConfig] = {}


def save_run_config(config, model_dir):
  """Writes `config` as `model_dir/config.json` (local or remote paths), atomically."""
  files.write_json(os.path.join(model_dir, RUN_CONFIG_FILE), to_dict(config))


# What runs saved before a field existed trained with: a restart then keeps their objective
# (or is refused naming the field) instead of silently taking today's default.
_BEFORE_FIELD_EXISTED = {("loss", "shot_normalization"): "per_query",
                         ("train", "weight_decay_type"): "decoupled",
                         ("data", "color_policy"): "simclr",
                         ("loss", "cross_entropy_normalization"): "none",
                         ("train", "keep_checkpoints"): 3}
# Values once stored as fields that were never choices (the label space of the boxes is in the
# run's run_info.json; the paper's detector is `detector.loader.PAPER_DETECTOR`).
_NO_LONGER_SETTINGS = (("data", "label_space"), ("data", "paper_detector"))


def load_run_config(model_dir):
  """The `ExperimentConfig` saved in `model_dir`, or None when there is none."""
  path = os.path.join(model_dir, RUN_CONFIG_FILE)
  if not files.filesystem().exists(path):
    return None
  with files.filesystem().GFile(path) as f:
    text = f.read()
  try:
    values = json.loads(text)
    for (section, field), value in _BEFORE_FIELD_EXISTED.items():
      if isinstance(values.get(section), dict):
        values[section].setdefault(field, value)
    for section, field in _NO_LONGER_SETTINGS:
      if isinstance(values.get(section), dict):
        values[section].pop(field, None)
    return from_dict(values)
  except (ValueError, TypeError, AttributeError) as e:
    raise ValueError(
        f"Run config {path!r} is not a valid keras_vivi config ({type(e).__name__}: {e}). "
        f"It records the experiment the checkpoints in {model_dir!r} were trained with: "
        f"restore it, or delete it to restart with the flags given (they must describe the "
        f"same architecture as the checkpoints).") from None


def differing_fields(old, new):
  """Sorted `section.field` names whose values differ between two `ExperimentConfig`s."""
  return sorted(files.differing_settings(json.loads(json.dumps(to_dict(old))),
                                         json.loads(json.dumps(to_dict(new)))))


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
    raise KeyError(f"Unknown experiment {name!r}; known: {', '.join(sorted(_EXPERIMENTS))}.") from None


def list_experiments():
  return sorted(_EXPERIMENTS)


def _parse_value(text, kind, where):
  """`text` as a value of the field type `kind` (bool, int, float, str, tuple, Optional[...])."""
  if typing.get_origin(kind) is typing.Union:  # Optional[X]
    if text.lower() in ("none", "null", "~"):
      return None
    kind = next(k for k in typing.get_args(kind) if k is not type(None))
  if typing.get_origin(kind) is typing.Literal:
    choices = typing.get_args(kind)
    for choice in choices:
      if str(choice) == text:
        return choice
    raise ValueError(f"{where} expects one of {', '.join(map(str, choices))}, got {text!r}.")
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


def _as_text(value, where):
  """A YAML value as the text `section.field=value` would give, so both forms parse alike."""
  if isinstance(value, bool):
    return "true" if value else "false"
  if value is None:
    return "None"
  if isinstance(value, (list, tuple)) and not any(isinstance(v, (list, tuple, dict))
                                                  for v in value):
    return ",".join(_as_text(v, where) for v in value)
  if isinstance(value, (str, int, float)):
    return str(value)
  raise ValueError(f"{where} expects a single value or a list of numbers, got {value!r}.")


def _split_items(items, source):
  """`section.field=value` strings → `(section.field, text)` pairs."""
  pairs = []
  for item in items:
    key, sep, text = item.partition("=")
    if not sep:
      raise ValueError(f"{source}: {item!r} must look like section.field=value.")
    pairs.append((key.strip(), text.strip()))
  return pairs


def _flatten(values, source):
  """A YAML `{section: {field: value}}` mapping → `(section.field, text)` pairs."""
  if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
    raise ValueError(f"{source} must be a mapping of {{section: {{field: value}}}}, got "
                     f"{values!r}.")
  return [(f"{section}.{field}", _as_text(value, f"{section}.{field}"))
          for section, fields in values.items() for field, value in fields.items()]


def _sections(config):
  return [f.name for f in dataclasses.fields(config) if dataclasses.is_dataclass(f.default)]


def _apply(config, pairs, source):
  """`config` with the `(section.field, text)` pairs applied in order, validated once."""
  merged = to_dict(config)
  for key, text in pairs:
    section, _, field = key.partition(".")
    sub = getattr(config, section, None) if section in _sections(config) else None
    kinds = {f.name: f.type for f in dataclasses.fields(sub)} if sub is not None else {}
    if field not in kinds:
      raise ValueError(f"{source}: {key!r} is not a setting; give section.field=value with a "
                       f"section of {_sections(config)} and one of its fields"
                       + (f" ({sorted(kinds)})." if kinds else "."))
    merged[section][field] = _parse_value(text, kinds[field], key)
  try:
    return from_dict(merged)
  except ValueError as e:
    raise ValueError(f"{e} (from {source})") from None


def apply_overrides(config, overrides):
  """Returns `config` with `section.field=value` strings applied (e.g. `train.steps=100`).

  All overrides are applied before the result is validated, so their order does not matter.
  """
  overrides = list(overrides)
  return _apply(config, _split_items(overrides, "overrides"), f"overrides {', '.join(overrides)}")


# A comma that starts the next `section.field=`: values may hold commas (tuples).
_NEXT_OVERRIDE = re.compile(r",(?=\s*[A-Za-z_]\w*\.[A-Za-z_]\w*\s*=)")


def _read_yaml(path, source):
  with files.filesystem().GFile(path) as f:
    return _flatten(yaml.safe_load(f), f"{source} {path!r}")


def params_override_pairs(text):
  """`--params_override` → `(section.field, text)` pairs: comma-separated `section.field=value`,
  or a YAML mapping inline or in a file (Model Garden's forms)."""
  text = text.strip()
  if not text:
    return []
  if re.match(r"[A-Za-z_][\w.]*\s*=", text):
    return _split_items(_NEXT_OVERRIDE.split(text), "--params_override")
  if files.filesystem().exists(text):
    return _read_yaml(text, "--params_override file")
  return _flatten(yaml.safe_load(text), "--params_override")


def build_config(experiment, data=None, config_files=(), params_override=""):
  """The named experiment with the YAML `config_files` (`{section: {field: value}}`, in order)
  and then `params_override` applied, as Model Garden's `--config_file` / `--params_override`.

  `data` is the `--data` shortcut for `data.path`; a file or override setting `data.path` to
  something else is an error.
  """
  config = get_experiment(experiment)
  pairs = [p for path in config_files for p in _read_yaml(path, "--config_file")]
  pairs += params_override_pairs(params_override)
  if data:
    clash = [text for key, text in pairs if key == "data.path" and text != data]
    if clash:
      raise ValueError(f"--data={data} and data.path={clash[-1]} (from --config_file or "
                       "--params_override) disagree: give the records once.")
    pairs.append(("data.path", data))
  return _apply(config, pairs, "--config_file/--params_override")


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
