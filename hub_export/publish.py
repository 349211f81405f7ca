"""`publish`: an export as a versioned, self-describing module ready for Kaggle Models / TF-Hub.

  PUBLISH_DIR/NAME/VERSION/
    saved_model/           the SavedModel (+ its README.md, vivi_export.json, MODEL_CARD.md)
    MODEL_CARD.md          training data, config, evaluation, intended use, input contract
    NAME-VERSION.tar.gz    saved_model/'s contents at the archive's top level (what Kaggle
                           Models and TF-Hub serve as `?tf-hub-format=compressed`)
    NAME-VERSION.tar.gz.sha256   `sha256sum -c` format
    preset.json            the zoo entry {NAME: fields} (keras_vivi.zoo presets-file format)

The version is written into `NAME/.VERSION.<uuid>.tmp` and renamed into place when complete;
a version is published when its preset.json exists.

The archive is byte-for-byte reproducible from saved_model/ (sorted members, zeroed owners and
times), so its sha256 identifies the weights.
"""

import dataclasses
import gzip
import json
import os
import posixpath
import re
import tarfile
import uuid

from absl import logging
import tensorflow as tf

from hub_export import exporter
from keras_vivi import configs
from keras_vivi import files
from keras_vivi.data import manifest as manifest_lib
from keras_vivi.zoo import presets as presets_lib

SAVED_MODEL_DIR = "saved_model"
MODEL_CARD_FILE = "MODEL_CARD.md"
PRESET_FILE = "preset.json"
_TOP_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Publication:
  """What `publish` wrote."""
  directory: str      # PUBLISH_DIR/NAME/VERSION
  saved_model: str
  model_card: str
  archive: str
  sha256: str
  preset: presets_lib.Preset

  def preset_json(self) -> str:
    """The presets-file entry `{name: fields}` as indented JSON."""
    return json.dumps({self.preset.name: self.preset.to_dict()}, indent=2, ensure_ascii=False)


def _format_override(value):
  if value is None:
    return "none"
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, (list, tuple)):
    return ",".join(str(v) for v in value)
  return str(value)


def _json_ready(value):
  return json.loads(json.dumps(value))


def config_overrides(config_dict) -> tuple[str, tuple[str, ...] | None]:
  """`(experiment, overrides)` that rebuild `config_dict` from a registered experiment.

  Returns `(name, None)` when the experiment is not registered or the overrides would not
  rebuild the config exactly.
  """
  name = config_dict["name"]
  try:
    base = configs.get_experiment(name)
  except KeyError:
    return name, None
  base_dict = _json_ready(configs.to_dict(base))
  target = _json_ready(config_dict)
  overrides = [f"{section}.{field}={_format_override(value)}"
               for section, fields in target.items() if isinstance(fields, dict)
               for field, value in fields.items()
               if base_dict.get(section, {}).get(field) != value]
  try:
    rebuilt = _json_ready(configs.to_dict(configs.apply_overrides(base, overrides)))
  except ValueError:
    return name, None
  return (name, tuple(overrides)) if rebuilt == target else (name, None)


def read_results(path) -> dict:
  """VTAB results `{"tasks": {task: {"group", "test_accuracy"}}, "means": {...}}` from `path`."""
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"Results file {path!r} does not exist.")
  with tf.io.gfile.GFile(path) as f:
    try:
      results = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"Results file {path!r} is not valid JSON: {e}.") from None
  tasks = results.get("tasks", {}) if isinstance(results, dict) else None
  ok = (isinstance(tasks, dict) and isinstance(results.get("means", {}), dict) and
        all(isinstance(t, dict) and "test_accuracy" in t for t in tasks.values()) and
        (tasks or results.get("means")))
  if not ok:
    raise ValueError(
        f"Results file {path!r} must look like {{'tasks': {{NAME: {{'group': ..., "
        f"'test_accuracy': ...}}}}, 'means': {{GROUP: ...}}}} (VTAB results), got "
        f"{json.dumps(results)[:200]}.")
  return results


def read_manifest(data_path) -> tuple[str | None, dict | None]:
  """`(manifest_path, manifest or None)` of the prepared data a run trained on."""
  if not data_path:
    return None, None
  path = manifest_lib.manifest_path(data_path)
  return path, manifest_lib.read_manifest_file(path)


def _percent(value):
  """Accuracies are fractions (vivi-vtab); anything else is shown as it is."""
  if value is None:
    return "—"
  return f"{100 * value:.1f}" if isinstance(value, (int, float)) and value <= 1 else str(value)


def _data_section(data_path, manifest_path, manifest):
  if not data_path:
    return "Not recorded: the run config names no data path."
  if manifest is None:
    return f"Prepared records at `{data_path}`; no manifest at `{manifest_path}`."
  counts = manifest.get("counts", {})
  detector = manifest.get("detector", {})
  lines = [f"Prepared with `vivi-prepare` (manifest `{manifest_path}`):", "",
           "| videos | skipped | shots | frames | objects | shards |", "|---|---|---|---|---|---|",
           "| " + " | ".join(str(counts.get(k, "?")) for k in
                            ("videos", "skipped", "shots", "frames", "objects")) +
           f" | {len(manifest.get('shards', []))} |", ""]
  if detector:
    described = ", ".join(f"{k} {v}" for k, v in detector.items())
    lines += [f"Detector: {described}.", ""]
  classes = list(manifest.get("class_histogram", {}).items())
  if classes:
    top = ", ".join(f"{name} {count}" for name, count in classes[:_TOP_CLASSES])
    lines += [f"Most frequent detected classes ({len(classes)} in all): {top}.", ""]
  flagged = {k: len(v) for k, v in manifest.get("flagged", {}).items() if v}
  if flagged:
    lines += ["Flagged videos: " + ", ".join(f"{k} {v}" for k, v in flagged.items()) + ".", ""]
  return "\n".join(lines).rstrip()


def _vtab_split(results):
  """`(vtab, local)`: {task: test accuracy} of the 19 VTAB-1k tasks and of the others that ran."""
  from keras_vivi.evaluation.vtab import tasks as vtab_tasks  # pylint: disable=g-import-not-at-top
  names = vtab_tasks.list_tasks()
  tasks = {n: t for n, t in ((results or {}).get("tasks") or {}).items()
           if t.get("test_accuracy") is not None}
  vtab = {n: tasks[n]["test_accuracy"] for n in names if n in tasks}
  local = {n: t["test_accuracy"] for n, t in tasks.items() if n not in vtab}
  return vtab, local


def vtab_means(results) -> dict[str, float]:
  """VTAB-1k means of `results` from its VTAB tasks only (never local ones): the means of the
  groups that ran and "overall" when all 19 ran (`vtab_tasks.mean_members`)."""
  from keras_vivi.evaluation.vtab import tasks as vtab_tasks  # pylint: disable=g-import-not-at-top
  results = results or {}
  vtab, _ = _vtab_split(results)
  if not results.get("tasks"):
    # Means without per-task results: the group means can be taken, "overall" cannot be
    # checked to cover the 19 tasks.
    return {g: v for g, v in (results.get("means") or {}).items()
            if g in vtab_tasks.GROUPS and v is not None}
  groups = {name: vtab_tasks.get_task(name).group for name in vtab}
  return {key: mean for key, mean in vtab_tasks.means(vtab, groups).items()
          if key in vtab_tasks.GROUPS + ("overall",) and mean is not None}


def _evaluation_section(results, results_path):
  if results is None:
    return ("Not evaluated yet. Run the VTAB-1k protocol on this module and publish a new "
            "version with `--results=results.json`.")
  from keras_vivi.evaluation.vtab import tasks as vtab_tasks  # pylint: disable=g-import-not-at-top
  names = vtab_tasks.list_tasks()
  vtab, local = _vtab_split(results)
  tasks = results.get("tasks") or {}
  missing = results.get("missing") or {}
  module = f" of `{results['hub']}`" if results.get("hub") else ""
  lines = [f"VTAB-1k (`{os.path.basename(results_path)}`{module}), test accuracy (%): "
           f"{len(vtab)} of the {len(names)} tasks ran.", ""]
  means = vtab_means(results)
  if means:
    keys = list(vtab_tasks.GROUPS) + ["overall"]
    lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
              "| " + " | ".join(_percent(means.get(k)) for k in keys) + " |", ""]
    if "overall" not in means:
      lines += [f"No overall VTAB-1k score: it is the mean of all {len(names)} tasks. Group "
                "means average the tasks of the group that ran.", ""]
  if vtab:
    lines += ["| task | group | accuracy |", "|---|---|---|"]
    lines += [f"| {n} | {tasks[n].get('group', '')} | {_percent(vtab[n])} |" for n in vtab]
    lines += [""]
  not_run = [n for n in names if n not in vtab]
  if not_run:
    lines += [f"Missing VTAB-1k tasks ({len(not_run)}): " +
              ", ".join(f"{n} ({missing[n]})" if n in missing else n for n in not_run) + ".", ""]
  if local:
    lines += ["Local tasks (not part of VTAB-1k), test accuracy (%):", "",
              "| task | accuracy |", "|---|---|"]
    lines += [f"| {n} | {_percent(a)} |" for n, a in local.items()]
    lines += [""]
  other_missing = {n: r for n, r in missing.items() if n not in names}
  if other_missing:
    lines += ["Local tasks not run: " + "; ".join(f"{n} ({r})" for n, r in
                                                  other_missing.items()) + "."]
  return "\n".join(lines).rstrip()


def _interface_section(name, info):
  """The model card's "Input and output": the call contract and a loading snippet."""
  dim = info["output"]["dim"]
  maps = ", ".join(f"`'{k}'` stride {v['stride']}, {v['channels']} ch"
                   for k, v in info["output"].get("feature_maps", {}).items())
  size = info.get("trained_image_size", "?")
  return f"""## Input and output

- Input: float32 RGB images `[batch, height, width, 3]` with values in [0, 1], any size
  (trained at {size}×{size}; VTAB-1k resizes to 224×224).
- `module(images, training=False)` → `[batch, {dim}]` features (global-average-pooled
  pre-logits); `training=True` uses batch statistics and updates the batch-norm moving
  averages.
- `module.feature_maps(images)` → {maps}.
- Signatures: `serving_default` → `{{'default': [batch, {dim}]}}`, `feature_maps`.

```python
import keras_vivi, tf_keras
features = keras_vivi.load_feature_extractor("{name}", trainable=True)  # or hub.KerasLayer(HANDLE)
model = tf_keras.Sequential([features, tf_keras.layers.Dense(NUM_CLASSES)])
```"""


def model_card(name, version, info, results=None, results_path=None) -> str:
  """The MODEL_CARD.md text of a module described by its `vivi_export.json` dict `info`."""
  config = info.get("experiment_config") or {}
  source = info.get("source", {})
  data_path = config.get("data", {}).get("path", "")
  manifest_path, manifest = read_manifest(data_path)
  arch = info.get("architecture", {})
  backbone = (f"{arch['depth']}-layer ResNet v2, width {arch['width']}×, "
              f"{arch['normalization']} norm" if "depth" in arch else arch.get("family", "?"))
  origin = ", ".join(f"{k} {v}" for k, v in source.items()) or "not recorded"
  return f"""# {name} (version {version})

{config.get('description', 'A keras_vivi image feature extractor.')}

An image feature extractor ({backbone}) trained with keras_vivi on videos — shots, frames
and detected objects ("Representation learning from videos in-the-wild: an object-centric
approach"). A TF2 reusable SavedModel for TF-Hub / Kaggle Models. Source: {origin}.

{_interface_section(name, info)}

## Intended use

Transfer to image classification (linear probes, fine-tuning; the VTAB-1k protocol) and as a
detection backbone (Model Garden RetinaNet via `feature_maps`). It was trained without human
labels on uncurated video and inherits the biases of those videos and of the object
detector's classes; it is not a classifier on its own and is not meant for decisions about
people.

## Training data

{_data_section(data_path, manifest_path, manifest)}

## Evaluation

{_evaluation_section(results, results_path)}

## Training configuration

Experiment `{config.get('name', source.get('experiment', '?'))}` (`vivi_export.json` in the
module holds the same record):

```json
{json.dumps(config, indent=1, ensure_ascii=False)}
```
"""


def _reset(tarinfo):
  # Reproducible archives: the bytes depend on the files' contents and names only.
  tarinfo.uid = tarinfo.gid = 0
  tarinfo.uname = tarinfo.gname = ""
  tarinfo.mtime = 0
  tarinfo.mode = 0o755 if tarinfo.isdir() else 0o644
  return tarinfo


def write_archive(directory, archive) -> str:
  """Writes `directory`'s contents (at the top level) to the `.tar.gz` `archive` (both on any
  tf.io.gfile filesystem); its sha256."""
  directory = directory.rstrip("/")
  members = []  # (name in the archive, path, is a folder)
  for root, dirs, names in tf.io.gfile.walk(directory):
    relative = root[len(directory):].lstrip("/")
    members += [(posixpath.join(relative, d.rstrip("/")), files.join(root, d.rstrip("/")), True)
                for d in dirs]
    members += [(posixpath.join(relative, f), files.join(root, f), False) for f in names]
  with tf.io.gfile.GFile(archive, "wb") as raw, \
      gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
      tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
    for name, path, is_folder in sorted(members):
      info = tarfile.TarInfo(name)
      if is_folder:
        info.type = tarfile.DIRTYPE
        tar.addfile(_reset(info))
      else:
        info.size = tf.io.gfile.stat(path).length
        with tf.io.gfile.GFile(path, "rb") as f:
          tar.addfile(_reset(info), f)
  return files.file_sha256(archive)


def _evaluation(results):
  """The preset's `evaluation`: `{"vtab_1k": vtab_means, "local_tasks": {task: accuracy}}`.

  Each key only when it has figures.
  """
  evaluation = {}
  means = vtab_means(results)
  if means:
    evaluation["vtab_1k"] = means
  _, local = _vtab_split(results)
  if local:
    evaluation["local_tasks"] = local
  return evaluation


# Temporaries of a publication killed before its end, recognised by their names: exports made
# for it (`export_temporary`: PUBLISH_DIR/.export-XXXXXXXX) and versions being written
# (NAME/.VERSION.<uuid>.tmp).
EXPORT_PREFIX = ".export-"
_EXPORT_TEMPORARY = re.compile(rf"^{re.escape(EXPORT_PREFIX)}[a-z0-9_]{{8}}$")


def export_temporary(publish_dir) -> str:
  """A new, empty folder in `publish_dir` (on any tf.io.gfile filesystem) for an export that
  `publish` then copies; `sweep_leftovers` recognises it by its name."""
  while True:
    path = files.join(publish_dir, EXPORT_PREFIX + uuid.uuid4().hex[:8])
    if not tf.io.gfile.exists(path):
      tf.io.gfile.makedirs(path)
      return path
_VERSION_TEMPORARY = re.compile(r"^\.\d+\.[0-9a-f]{32}\.tmp$")


def sweep_leftovers(publish_dir) -> list[str]:
  """Removes what killed publications left in `publish_dir` (see above); returns the paths.
  Only while holding `publish_dir`'s lock: a running publication's temporaries look the same."""
  found = []
  for name, path in _folders(publish_dir):
    if _EXPORT_TEMPORARY.match(name):
      found.append(path)
    else:
      found += [inner for inner_name, inner in _folders(path)
                if _VERSION_TEMPORARY.match(inner_name)]
  for path in found:
    files.remove_tree(path)
  return found


def _folders(directory):
  """`(name, path)` of the folders in `directory` (none if it is not one); a local symbolic link
  is not a folder here (what it points to was not written by publish)."""
  if not tf.io.gfile.isdir(directory):
    return []
  paths = ((name.rstrip("/"), files.join(directory, name.rstrip("/")))
           for name in tf.io.gfile.listdir(directory))
  return [(name, path) for name, path in paths
          if tf.io.gfile.isdir(path) and not (files.is_local(path) and os.path.islink(path))]


def _is_export(path):
  return tf.io.gfile.exists(files.join(path, exporter.METADATA_FILE))


def is_published(directory) -> bool:
  """Whether `directory` (PUBLISH_DIR/NAME/VERSION) holds a complete publication."""
  return tf.io.gfile.exists(files.join(directory, PRESET_FILE))


def check_version_free(publish_dir, name, version, overwrite=False) -> str:
  """`PUBLISH_DIR/NAME/VERSION`; FileExistsError if it is published and not `overwrite`.

  A version counts as published when its preset.json exists (`publish` writes it into a temp
  sibling and renames that into place last). Any other directory there was not written by
  `publish` and is never replaced.
  """
  directory = files.join(files.absolute(publish_dir), name, str(version))
  if is_published(directory) and not overwrite:
    raise FileExistsError(f"{name} version {version} is already published in {directory!r}; "
                          "publish a new --version (or pass overwrite=True, --overwrite).")
  there = (os.path.lexists(directory) if files.is_local(directory)
           else tf.io.gfile.exists(directory))
  if there and not is_published(directory):
    raise FileExistsError(
        f"{directory!r} exists but is not a publication (it has no {PRESET_FILE}): it was not "
        f"written by publish and is never replaced, even with --overwrite. Move it away or "
        "publish another --version.")
  return directory


def _move_into_place(tmp_dir, directory, name, version, overwrite):
  """Renames `tmp_dir` to `directory`; an old publication is removed only once it is replaced."""
  # Checked again: another run may have written it meanwhile.
  check_version_free(files.parent(files.parent(directory)), name, version, overwrite)
  exporter.swap_in(tmp_dir, directory, marker=PRESET_FILE)


def _check_no_symlinks(export_dir):
  """Raises ValueError at the first symbolic link under `export_dir` (never followed)."""
  for root, dirs, names in os.walk(export_dir):
    for entry in dirs + names:
      path = os.path.join(root, entry)
      if os.path.islink(path):
        raise ValueError(f"Export {export_dir!r} holds a symbolic link {path!r} -> "
                         f"{os.readlink(path)!r}: publish copies only regular files written by "
                         "vivi-export. Export again into a new directory.")


def publish(source, publish_dir, name, version=1, results=None, experiment=None,
            overwrite=False) -> Publication:
  """Writes `PUBLISH_DIR/NAME/VERSION/` from an export or a training run.

  The module is built in `NAME/.VERSION.<uuid>.tmp` and renamed into place at the end, so a
  failed or killed run leaves no (partial) `NAME/VERSION` and never touches an existing one.

  Args:
    source: an export directory (`vivi-export --export_dir`), or a training run's model_dir
      or checkpoint prefix (exported here).
    publish_dir: root of the published modules.
    name: the module (and preset) name.
    version: positive int; a published version is never replaced unless `overwrite`.
    results: optional path of VTAB `results.json` for the card and the preset.
    experiment: the architecture of a run without config.json (see `export_checkpoint`).
    overwrite: replace an existing `NAME/VERSION` (once the new one is complete).

  Returns:
    A `Publication`.
  """
  presets_lib.Preset(name=name, experiment="-")  # Validates the name before any work.
  if isinstance(version, bool) or not isinstance(version, int) or version < 1:
    raise ValueError(f"version must be a positive int (Kaggle Models / TF-Hub numbering), "
                     f"got {version!r}.")
  results_dict = read_results(results) if results else None
  directory = check_version_free(publish_dir, name, version, overwrite)
  tf.io.gfile.makedirs(files.parent(directory))
  tmp_dir = files.join(files.parent(directory), f".{version}.{uuid.uuid4().hex}.tmp")
  try:
    preset = _write(source, tmp_dir, directory, name, version, results_dict, results,
                    experiment)
    _move_into_place(tmp_dir, directory, name, version, overwrite)
  finally:
    files.remove_tree(tmp_dir)
  return Publication(directory, files.join(directory, SAVED_MODEL_DIR),
                     files.join(directory, MODEL_CARD_FILE), preset.handle, preset.sha256,
                     preset)


def _write(source, tmp_dir, directory, name, version, results_dict, results, experiment):
  """Fills `tmp_dir` with the publication that will live at `directory`; its preset."""
  tf.io.gfile.makedirs(tmp_dir)
  saved_model = files.join(tmp_dir, SAVED_MODEL_DIR)
  if _is_export(source):
    if files.is_local(source):  # other filesystems have no symbolic links
      _check_no_symlinks(source)
    files.copy_tree(source, saved_model)
  else:
    exporter.export_checkpoint(source, saved_model, experiment=experiment)
  info = exporter.read_metadata(saved_model)

  card = model_card(name, version, info, results_dict, results)
  for path in (files.join(tmp_dir, MODEL_CARD_FILE), files.join(saved_model, MODEL_CARD_FILE)):
    files.write_atomically(path, card)
  archive_name = f"{name}-{version}.tar.gz"
  sha256 = write_archive(saved_model, files.join(tmp_dir, archive_name))
  files.write_atomically(files.join(tmp_dir, archive_name + ".sha256"),
                         f"{sha256}  {archive_name}\n")

  config = info.get("experiment_config")
  experiment_name, overrides = (config_overrides(config) if config else
                                (info.get("source", {}).get("experiment", "unknown"), None))
  if overrides is None:
    logging.warning("The training config of %s is not a registered experiment plus overrides; "
                    "the preset names %r and the full config is in vivi_export.json.", name,
                    experiment_name)
  description = (config or {}).get("description", "") or f"keras_vivi {experiment_name}"
  preset = presets_lib.Preset(
      name=name, experiment=experiment_name, description=description,
      handle=files.join(directory, archive_name), sha256=sha256, version=version,
      overrides=overrides or (), image_size=int(info.get("trained_image_size") or 224),
      output_dim=int(info["output"]["dim"]), evaluation=_evaluation(results_dict))
  entry = json.dumps({name: preset.to_dict()}, indent=2, ensure_ascii=False)
  # preset.json last: its presence marks the publication complete.
  files.write_atomically(files.join(tmp_dir, PRESET_FILE), entry + "\n")
  return preset
