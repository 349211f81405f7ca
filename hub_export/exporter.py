"""`export_backbone`: a keras_vivi backbone as a TF2 reusable SavedModel (TF-Hub format).

The export, for float32 images `[B, H, W, 3]` in [0, 1] of any size:
  obj(images, training=False)               -> [B, 2048·width] pre-logits
  obj.feature_maps(images, training=False)  -> {'2','3','4','5'}: [B, ⌈H/2^l⌉, ⌈W/2^l⌉, C_l]
  obj.variables, obj.trainable_variables, obj.regularization_losses (also on obj.feature_maps)
  signatures['serving_default'](images=...) -> {'default': [B, 2048·width]}
  signatures['feature_maps'](images=...)    -> {'2','3','4','5'}
`training=True` uses batch statistics and updates the batch-norm moving averages.

An export is written into a temporary sibling and renamed into place when complete; its
`vivi_export.json` marks it as ours, and only such a directory is ever replaced (`overwrite`).
"""

import datetime
import json
import os
import posixpath
import uuid

import tensorflow as tf
import tf_keras

from keras_vivi import configs
from keras_vivi import files
from keras_vivi import models
from keras_vivi.training import runs as checkpoint_lib

LEVELS = ("2", "3", "4", "5")
METADATA_FILE = "vivi_export.json"
README_FILE = "README.md"
_IMAGES = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")


class _Reusable(tf.Module):
  """A callable with the attributes the reusable-SavedModel convention asks for."""

  # Plain attributes, saved with the object, in place of `tf.Module`'s computed properties.
  variables = ()
  trainable_variables = ()

  def __init__(self, function, variables, trainable_variables, regularization_losses):
    super().__init__()
    self.__call__ = function
    self.variables = list(variables)
    self.trainable_variables = list(trainable_variables)
    self.regularization_losses = list(regularization_losses)


def _check_backbone(model):
  if not isinstance(model, tf_keras.Model):
    raise TypeError(f"export_backbone expects a tf_keras.Model such as keras_vivi's ResNetV2, "
                    f"got {type(model).__name__}.")
  outputs = model.output if isinstance(model.output, dict) else None
  wanted = set(LEVELS) | {"pre_logits"}
  if outputs is None or not wanted <= set(outputs):
    found = sorted(outputs) if outputs is not None else type(model.output).__name__
    raise ValueError(f"export_backbone expects a model returning a dict with {sorted(wanted)} "
                     f"(keras_vivi.models.ResNetV2), got outputs {found}.")
  dtypes = {layer.compute_dtype for layer in model.layers if layer.compute_dtype}
  if dtypes - {"float32"}:
    raise ValueError(
        f"export_backbone expects a float32 model, got layers computing in {sorted(dtypes)}: "
        "rebuild the backbone under the 'float32' policy and copy the weights.")


def _describe(model, metadata):
  levels = {k: {"stride": 2 ** int(k), "channels": int(model.output[k].shape[-1])}
            for k in LEVELS}
  dim = int(model.output["pre_logits"].shape[-1])
  if isinstance(model, models.ResNetV2):
    config = model.get_config()
    architecture = {"family": "ResNet v2 (pre-activation)",
                    **{k: config[k] for k in ("depth", "width", "normalization", "groups")}}
  else:
    architecture = {"family": type(model).__name__}
  info = {
      "format": "TF2 reusable SavedModel (TF-Hub); load with hub.load or hub.KerasLayer",
      "architecture": architecture,
      "input": {"dtype": "float32", "shape": "[batch, height, width, 3]", "range": [0.0, 1.0],
                "size": "any (VTAB resizes to 224x224)"},
      "output": {"dim": dim, "default": f"[batch, {dim}] pre-logits (global average pool)",
                 "feature_maps": levels},
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "tensorflow": tf.__version__,
  }
  if any(isinstance(m, tf_keras.layers.BatchNormalization) for m in model.submodules):
    info["batch_norm"] = ("training=True normalises with batch statistics and updates the "
                          "moving averages; training=False uses the moving averages")
  return {**info, **(metadata or {})}


def _readme(info):
  out = info["output"]
  levels = ", ".join(f"'{k}' (stride {v['stride']}, {v['channels']} ch)"
                     for k, v in out["feature_maps"].items())
  source = info.get("source", {})
  origin = ", ".join(f"{k}: {v}" for k, v in source.items()) or "not recorded"
  arch = info["architecture"]
  name = (f"{arch['depth']}-layer ResNet v2, width {arch['width']}, {arch['normalization']} norm"
          if "depth" in arch else arch["family"])
  batch_norm = ("; `training=True` updates the batch-norm moving averages"
                if "batch_norm" in info else "")
  return f"""# keras_vivi backbone ({name}, {out['dim']}-d features)

An image feature extractor trained with keras_vivi (videos → shots, frames, objects), as a TF2
reusable SavedModel for TF-Hub. Source: {origin}.

Input: float32 images `[batch, height, width, 3]` with values in [0, 1], any size (VTAB resizes
to 224×224).

- `obj(images, training=False)` → `[batch, {out['dim']}]` pre-logits.
- `obj.feature_maps(images, training=False)` → dict of feature maps {levels}.
- signatures `serving_default` → `{{'default': [batch, {out['dim']}]}}` and `feature_maps`.
- `variables`, `trainable_variables`, `regularization_losses` for fine-tuning{batch_norm}.

```python
import tensorflow_hub as hub
features = hub.KerasLayer("THIS_DIRECTORY", trainable=True)       # [batch, {out['dim']}]
maps = hub.KerasLayer(hub.load("THIS_DIRECTORY").feature_maps)    # {{'2'..'5'}}
```

Machine-readable details: `{METADATA_FILE}`.
"""


def sibling(directory, suffix) -> str:
  """A hidden, unique path beside `directory`: `PARENT/.NAME.<uuid>.SUFFIX`."""
  directory = directory.rstrip("/")
  return files.join(files.parent(directory),
                    f".{posixpath.basename(directory)}.{uuid.uuid4().hex}.{suffix}")


def swap_in(new_dir, directory, marker=METADATA_FILE) -> None:
  """Renames the complete `new_dir` to `directory`; what was there is removed only once replaced.

  Object stores (gs://, ram://, ...) rename a folder object by object, or not at all: there the old
  folder loses its `marker` (the file that says it is complete) first and is removed, then `new_dir`
  is copied in with its `marker` last, so an interrupted swap leaves no complete-looking folder (the
  same command run again writes it)."""
  if not files.is_local(directory):
    if tf.io.gfile.exists(files.join(directory, marker)):
      tf.io.gfile.remove(files.join(directory, marker))
    files.remove_tree(directory)
    files.copy_tree(new_dir, directory, last=marker)
    files.remove_tree(new_dir)
    return
  old = None
  if tf.io.gfile.exists(directory):
    old = sibling(directory, "old")
    tf.io.gfile.rename(directory, old)
  try:
    tf.io.gfile.rename(new_dir, directory)
  except Exception:
    if old is not None and not tf.io.gfile.exists(directory):
      tf.io.gfile.rename(old, directory)
    raise
  if old is not None:
    tf.io.gfile.rmtree(old)


def check_replaceable(export_dir, overwrite=False) -> None:
  """Raises FileExistsError unless `export_dir` is absent, empty, or an export and `overwrite`."""
  if not (tf.io.gfile.isdir(export_dir) and tf.io.gfile.listdir(export_dir)):
    if tf.io.gfile.exists(export_dir) and not tf.io.gfile.isdir(export_dir):
      raise FileExistsError(f"Export directory {export_dir!r} is a file.")
    return
  if not tf.io.gfile.exists(os.path.join(export_dir, METADATA_FILE)):
    raise FileExistsError(
        f"Export directory {export_dir!r} is not empty and was not written by vivi-export (it "
        f"has no {METADATA_FILE}): it is never replaced, even with overwrite=True "
        "(--overwrite). Choose a new directory.")
  if not overwrite:
    raise FileExistsError(f"Export directory {export_dir!r} is not empty; choose a new one "
                          "or pass overwrite=True (--overwrite) to replace that export.")


def export_backbone(model, export_dir, metadata=None, overwrite=False) -> str:
  """Writes `model` (a keras_vivi `ResNetV2`) to `export_dir` as a reusable SavedModel.

  Args:
    model: float32 tf_keras model mapping images in [0, 1] to a dict with endpoints
      '2'..'5' and 'pre_logits'.
    export_dir: output directory; it must not exist or be empty, or hold an earlier export
      and `overwrite`.
    metadata: optional JSON-ready dict merged into `vivi_export.json` (e.g. the source
      checkpoint and experiment).
    overwrite: replace an earlier export in `export_dir` (once the new one is complete).

  Returns:
    `export_dir`.
  """
  _check_backbone(model)
  check_replaceable(export_dir, overwrite)
  tmp_dir = sibling(export_dir, "tmp")
  try:
    _save(model, tmp_dir, metadata)
    check_replaceable(export_dir, overwrite)  # Again: another process may have written it.
    swap_in(tmp_dir, export_dir)
  finally:
    files.remove_tree(tmp_dir)
  return export_dir


def _save(model, export_dir, metadata):
  """Writes the SavedModel, README and (last, marking it complete) `vivi_export.json`."""

  @tf.function
  def pre_logits(images, training=False):
    return model(images, training=training)["pre_logits"]

  @tf.function
  def feature_maps(images, training=False):
    outputs = model(images, training=training)
    return {k: outputs[k] for k in LEVELS}

  # Both modes are traced before saving: a SavedModel keeps only the traces that exist when it is saved.
  for training in (False, True):
    pre_logits.get_concrete_function(_IMAGES, training=training)
    feature_maps.get_concrete_function(_IMAGES, training=training)

  regularization_losses = []
  if model.losses:
    # Re-evaluated on every call, so it follows the current weights during fine-tuning.
    regularization_losses.append(
        tf.function(lambda: tf.add_n(model.losses), input_signature=[]))

  root = _Reusable(pre_logits, model.variables, model.trainable_variables,
                   regularization_losses)
  root.feature_maps = _Reusable(feature_maps, model.variables, model.trainable_variables,
                                regularization_losses)

  @tf.function(input_signature=[_IMAGES])
  def serving_default(images):
    return {"default": pre_logits(images, training=False)}

  @tf.function(input_signature=[_IMAGES])
  def feature_maps_signature(images):
    return feature_maps(images, training=False)

  signatures = {"serving_default": serving_default.get_concrete_function(),
                "feature_maps": feature_maps_signature.get_concrete_function()}
  tf.saved_model.save(root, export_dir, signatures=signatures)

  info = _describe(model, metadata)
  with tf.io.gfile.GFile(os.path.join(export_dir, README_FILE), "w") as f:
    f.write(_readme(info))
  with tf.io.gfile.GFile(os.path.join(export_dir, METADATA_FILE), "w") as f:
    json.dump(info, f, indent=2)


def read_metadata(export_dir) -> dict:
  """The `vivi_export.json` dict of an export written by `export_backbone`."""
  path = os.path.join(export_dir, METADATA_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{export_dir!r} has no {METADATA_FILE}: not written by "
                            "hub_export.export_backbone.")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def _experiment_metadata(config, **source):
  return {"source": {"experiment": config.name, **source},
          "trained_image_size": config.data.image_size,
          "experiment_config": configs.to_dict(config)}


def export_checkpoint(path, export_dir, experiment=None, overwrite=False) -> str:
  """Exports the backbone of a keras_vivi training run (model_dir) or checkpoint prefix.

  `experiment` names the architecture only when the run has no config.json.
  """
  backbone, config, checkpoint_path = checkpoint_lib.backbone_from_checkpoint(path, experiment)
  metadata = _experiment_metadata(config, init="checkpoint",
                                  checkpoint=os.path.basename(checkpoint_path))
  return export_backbone(backbone, export_dir, metadata=metadata, overwrite=overwrite)


def export_random_init(experiment, export_dir, seed=0, overwrite=False) -> str:
  """Exports a freshly initialised backbone of `experiment`: the from-scratch baseline."""
  config = configs.get_experiment(experiment) if isinstance(experiment, str) else experiment
  tf_keras.utils.set_random_seed(seed)
  backbone = models.build_backbone(config.model)
  metadata = _experiment_metadata(config, init="random", seed=seed)
  return export_backbone(backbone, export_dir, metadata=metadata, overwrite=overwrite)
