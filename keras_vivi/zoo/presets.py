"""The model zoo's registry: named feature extractors, in the style of keras-hub's presets.

`BACKBONE_PRESETS` maps a preset name to a `Preset`: where the weights live (`handle`), the
experiment they were trained with, the input and output contract, the archive's sha256 and
evaluation results. The built-in entries describe every experiment of the paper; no weights of
them are published, so their `handle` is None and `produce` gives the commands that train and
publish them.

Your own presets (e.g. what `vivi-export --publish` printed) go in a JSON file
`{"NAME": {field: value, ...}, ...}`, registered with `load_presets_file(path)` or, for every
process, by naming the file in `$KERAS_VIVI_PRESETS` (several joined by `os.pathsep`).
`register_preset(Preset(...))` does the same from Python. This module does not import
TensorFlow.
"""

import dataclasses
import json
import os
import re
import types
import typing

from keras_vivi import files

if typing.TYPE_CHECKING:  # configs imports TensorFlow; this registry stays light
  from keras_vivi import configs

PRESETS_ENV = "KERAS_VIVI_PRESETS"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _freeze(value):
  """Read-only view of nested JSON-ready mappings and lists."""
  if isinstance(value, typing.Mapping):
    return types.MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
  if isinstance(value, (list, tuple)):
    return tuple(_freeze(v) for v in value)
  return value


def _thaw(value):
  if isinstance(value, typing.Mapping):
    return {k: _thaw(v) for k, v in value.items()}
  if isinstance(value, tuple):
    return [_thaw(v) for v in value]
  return value


@dataclasses.dataclass(frozen=True)
class Preset:
  """One zoo entry.

  Attributes:
    name: registry key, e.g. `"vivi_objects"`.
    experiment: the registered experiment (`keras_vivi.configs`) the weights come from.
    description: one line for tables and error messages.
    handle: where the weights live: a TF-Hub / Kaggle Models URL, an `https://` or `gs://`
      URL of a `.tar.gz`, a local SavedModel directory or archive, or `file://` of either.
      None when no weights are published.
    sha256: hex digest of the archive `handle` points to, when known (archive handles only).
    version: the published version of `name`.
    overrides: `section.field=value` strings turning `experiment` into the exact training
      config (`config()`).
    image_size: the side of the square training images; any size works at inference.
    input_range: the range of the float32 RGB values the model expects.
    output_dim: size of the `[batch, output_dim]` features.
    evaluation: results measured on these weights, as fractions: `{"vtab_1k": MEANS}` with
      the group means of `vivi-vtab`'s results.json ("natural", ..., "overall").
    paper_results: what the paper reports for `experiment` (not a measurement of `handle`),
      in the same form, plus "coco_retinanet_map".
    produce: shell commands that train and publish the weights of an unpublished entry.
  """
  name: str
  experiment: str
  description: str = ""
  handle: typing.Optional[str] = None
  sha256: typing.Optional[str] = None
  version: typing.Optional[int] = None
  overrides: typing.Tuple[str, ...] = ()
  image_size: int = 224
  input_range: typing.Tuple[float, float] = (0.0, 1.0)
  output_dim: int = 2048
  evaluation: typing.Mapping[str, typing.Any] = dataclasses.field(default_factory=dict)
  paper_results: typing.Mapping[str, typing.Any] = dataclasses.field(default_factory=dict)
  produce: typing.Tuple[str, ...] = ()

  def __post_init__(self):
    def fail(field, expected):
      raise ValueError(f"Preset {self.name!r}: {field} must be {expected}, got "
                       f"{getattr(self, field)!r}.")
    if not isinstance(self.name, str) or not _NAME.match(self.name):
      fail("name", "letters, digits, '_', '.' or '-', starting with a letter or digit")
    if not isinstance(self.experiment, str) or not self.experiment:
      fail("experiment", "the name of a registered experiment")
    if self.handle is not None and (not isinstance(self.handle, str) or not self.handle):
      fail("handle", "None or a non-empty URL or path")
    if self.sha256 is not None:
      if not isinstance(self.sha256, str) or not _SHA256.match(self.sha256):
        fail("sha256", "64 lowercase hex digits")
      # Only an archive has bytes we can hash before unpacking; TF-Hub / Kaggle handles are
      # served as archives packed on their side.
      if self.handle is None or not is_archive(self.handle):
        fail("handle", f"an archive ({', '.join(ARCHIVE_SUFFIXES)}) when sha256 is given")
    if self.version is not None and (isinstance(self.version, bool)
                                     or not isinstance(self.version, int) or self.version < 1):
      fail("version", "None or a positive int")
    for field in ("image_size", "output_dim"):
      value = getattr(self, field)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        fail(field, "a positive int")
    low_high = tuple(self.input_range)
    if len(low_high) != 2 or not all(isinstance(v, (int, float)) for v in low_high) or \
        not low_high[0] < low_high[1]:
      fail("input_range", "(low, high) with low < high")
    object.__setattr__(self, "input_range", tuple(float(v) for v in low_high))
    for field in ("overrides", "produce"):
      value = getattr(self, field)
      if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        fail(field, "a sequence of strings")
      object.__setattr__(self, field, tuple(value))
    for field in ("evaluation", "paper_results"):
      if not isinstance(getattr(self, field), typing.Mapping):
        fail(field, "a mapping")
      object.__setattr__(self, field, _freeze(getattr(self, field)))

  @property
  def available(self) -> bool:
    """Whether weights are published for this entry."""
    return self.handle is not None

  def config(self) -> "configs.ExperimentConfig":
    """The `ExperimentConfig` the weights were trained with (imports TensorFlow)."""
    from keras_vivi import configs  # pylint: disable=g-import-not-at-top
    return configs.apply_overrides(configs.get_experiment(self.experiment), self.overrides)

  def to_dict(self) -> dict:
    """JSON-ready fields without `name`: the value of a presets-file entry."""
    values = {f.name: _thaw(getattr(self, f.name)) for f in dataclasses.fields(self)}
    del values["name"]
    values["input_range"] = list(self.input_range)
    return values

  @classmethod
  def from_dict(cls, name, values) -> "Preset":
    """The `Preset` of a presets-file entry; unknown fields are an error naming them."""
    if not isinstance(values, typing.Mapping):
      raise ValueError(f"Preset {name!r} must be a JSON object of fields, got "
                       f"{type(values).__name__}.")
    fields = {f.name for f in dataclasses.fields(cls)} - {"name"}
    unknown = sorted(set(values) - fields)
    if unknown:
      raise ValueError(f"Preset {name!r} has unknown fields {unknown}; known: {sorted(fields)}.")
    return cls(name=name, **values)


def is_archive(handle) -> bool:
  """Whether `handle` names a tar archive (by its suffix, as tensorflow_hub does)."""
  return handle.split("?", 1)[0].endswith(ARCHIVE_SUFFIXES)


def looks_like_handle(text) -> bool:
  """Whether `text` is a URL or a path rather than a preset name."""
  return (files.has_url_scheme(text) or os.sep in text or "/" in text
          or text.startswith(("~", ".")) or is_archive(text) or os.path.exists(text))


def _paper(name, description, vtab=None, coco_map=None, width=1):
  """A paper experiment's entry: no weights, the commands that make them.

  `vtab` is (overall, natural, specialized, structured) and `coco_map` the RetinaNet mAP, in
  percent as the paper's tables print them.
  """
  # Fractions, as vivi-vtab and COCO evaluation write them; the paper prints percentages.
  results = {}
  if vtab:
    keys = ("overall", "natural", "specialized", "structured")
    results["vtab_1k"] = {k: round(v / 100, 4) for k, v in zip(keys, vtab)}
  if coco_map is not None:
    results["coco_retinanet_map"] = round(coco_map / 100, 4)
  produce = (
      "vivi-prepare --videos=VIDEOS --output=data/videos",
      f"vivi-train --experiment={name} --data=data/videos --model_dir=runs/{name}",
      f"vivi-export --model_dir=runs/{name} --export_dir=exports/{name}",
      f"vivi-vtab --hub=exports/{name} --tasks=all --output=vtab/{name}",
      f"vivi-export --model_dir=runs/{name} --publish=zoo --name={name} --version=1 "
      f"--results=vtab/{name}/results.json",
  )
  return Preset(name=name, experiment=name, description=description, output_dim=2048 * width,
                paper_results=results, produce=produce)


_ENTRIES = (
    _paper("vivi", "VIVI baseline: frame triplet + shot InfoNCE", (60.9, 55.0, 79.5, 56.7),
           coco_map=35.1),
    _paper("vivi_objects", "Ours: object + frame triplet + shot InfoNCE",
           (64.1, 59.0, 81.6, 59.8), coco_map=40.4),
    _paper("random_boxes_and_labels", "Ours, boxes and labels at random",
           (60.3, 55.2, 78.0, 55.0)),
    _paper("random_boxes", "Ours, boxes at random coordinates", (63.4, 57.5, 81.1, 59.7)),
    _paper("distill_imagenet", "VIVI + distilling an ImageNet classifier",
           (63.1, 59.6, 81.6, 57.0)),
    _paper("objects_plus_cross_entropy", "Ours + 600-way box cross-entropy",
           (64.9, 60.5, 81.3, 60.5)),
    _paper("cross_entropy_only", "VIVI + box cross-entropy instead of the object loss",
           (63.7,)),
    _paper("objects_only", "Only the object-level triplet loss", coco_map=39.3),
    _paper("detector_distill", "ResNet on object crops labelled by the detector", (57.1,)),
    _paper("vivi_cotrain", "VIVI co-trained with ImageNet (GN + WS)", (69.0, 70.3, 82.7, 60.9)),
    _paper("vivi_objects_cotrain", "Ours co-trained with ImageNet (GN + WS)",
           (69.4, 70.8, 82.9, 61.4)),
    _paper("vivi_3x", "VIVI, 3x wider ResNet-50", width=3),
    _paper("vivi_objects_3x", "Ours, 3x wider ResNet-50", width=3),
    _paper("vivi_cotrain_3x", "VIVI co-trained with ImageNet, 3x wider",
           (70.2, 71.4, 83.7, 62.2), width=3),
    _paper("vivi_objects_cotrain_3x", "Ours co-trained with ImageNet, 3x wider",
           (70.5, 71.6, 83.6, 63.0), width=3),
)

# The built-in zoo (what the README's table shows). Extend it through `register_preset`.
BACKBONE_PRESETS = types.MappingProxyType({p.name: p for p in _ENTRIES})

_registry = dict(BACKBONE_PRESETS)
_loaded_files: typing.Set[str] = set()


def register_preset(preset, overwrite=False) -> Preset:
  """Adds `preset` to the registry and returns it.

  An entry with a handle may take the place of a built-in entry without weights (you trained
  and published it); replacing an entry that has weights needs `overwrite=True`.
  """
  if not isinstance(preset, Preset):
    raise TypeError(f"register_preset expects a keras_vivi.zoo.Preset, got "
                    f"{type(preset).__name__}.")
  old = _registry.get(preset.name)
  if old is not None and old != preset and old.available and not overwrite:
    raise ValueError(f"Preset {preset.name!r} is already registered with handle "
                     f"{old.handle!r}; pass overwrite=True to replace it with {preset.handle!r}.")
  _registry[preset.name] = preset
  return preset


def load_presets_file(path, overwrite=False) -> list[Preset]:
  """Registers every entry of the JSON presets file `path`; returns their `Preset`s."""
  path = os.fspath(path)
  try:
    with open(os.path.expanduser(path), encoding="utf-8") as f:
      entries = json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError(f"Presets file {path!r} does not exist.") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"Presets file {path!r} is not valid JSON: {e}.") from None
  if not isinstance(entries, dict):
    raise ValueError(f"Presets file {path!r} must hold a JSON object {{name: fields}}, got "
                     f"{type(entries).__name__}.")
  presets = [Preset.from_dict(name, values) for name, values in entries.items()]
  return [register_preset(p, overwrite=overwrite) for p in presets]


def _load_env_files():
  """Registers the files of `$KERAS_VIVI_PRESETS` not registered yet."""
  for path in filter(None, os.environ.get(PRESETS_ENV, "").split(os.pathsep)):
    if path not in _loaded_files:
      try:
        load_presets_file(path)
      except (OSError, ValueError) as e:
        raise type(e)(f"${PRESETS_ENV}: {e}") from None
      _loaded_files.add(path)


class UnknownPresetError(KeyError):
  """A preset name that is not registered."""

  def __str__(self):
    return str(self.args[0])


def get_preset(name) -> Preset:
  """The registered `Preset` called `name`; the error lists the known names."""
  _load_env_files()
  try:
    return _registry[name]
  except (KeyError, TypeError):
    available = [n for n in sorted(_registry) if _registry[n].available]
    raise UnknownPresetError(
        f"Unknown preset {name!r}. Known presets: {', '.join(sorted(_registry))} (with "
        f"weights: {', '.join(available) or 'none'}). Register your own with "
        f"keras_vivi.zoo.load_presets_file(PATH) or ${PRESETS_ENV}=PATH.") from None


def list_presets(available_only=False) -> list[str]:
  """Sorted names of the registered presets (only those with weights if `available_only`)."""
  _load_env_files()
  return sorted(n for n, p in _registry.items() if p.available or not available_only)
