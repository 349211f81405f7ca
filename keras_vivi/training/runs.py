"""Backbones from keras_vivi training runs: find the checkpoint and config, restore strictly.

A training run writes `model_dir/config.json` (`configs.to_dict` of its `ExperimentConfig`) and
checkpoints of `tf.train.Checkpoint(model=vivi_model, optimizer=...)` through a
`tf.train.CheckpointManager`; `vivi_model.backbone` is the `ResNetV2` of
`keras_vivi.models.build_backbone(config.model)`.
"""

import os

import numpy as np
import tensorflow as tf

from keras_vivi import configs
from keras_vivi import models
from keras_vivi.training import checkpoints as checkpoints_lib



def find_checkpoint(path) -> str:
  """Checkpoint prefix for `path`: a run's model_dir (its latest checkpoint) or a prefix.

  A damaged latest checkpoint is an error naming its files and the newest intact one.
  """
  if tf.io.gfile.isdir(path):
    intact, damaged = checkpoints_lib.newest_intact(path)
    if damaged:
      way_out = (f"export the newest intact one with --checkpoint={intact}" if intact else
                 "no intact checkpoint is left: restore the files from a copy")
      raise ValueError(f"The latest checkpoint of {path!r} is damaged "
                       f"({checkpoints_lib.describe(damaged)}); {way_out}.")
    if intact is None:
      raise FileNotFoundError(
          f"No checkpoint in model_dir {path!r}: expected the 'checkpoint' index and "
          "ckpt-N.index files written by tf.train.CheckpointManager.")
    return intact
  if tf.io.gfile.exists(path + ".index"):
    problem = checkpoints_lib.damage(path)
    if problem:
      raise ValueError(f"Checkpoint {path!r} is damaged: {problem}.")
    return path
  raise FileNotFoundError(
      f"{path!r} is neither a model_dir holding checkpoints nor a checkpoint prefix "
      f"(no {path + '.index'!r}).")


def read_run_config(checkpoint_path) -> configs.ExperimentConfig | None:
  """The `ExperimentConfig` saved next to `checkpoint_path`, or None when there is none."""
  return configs.load_run_config(os.path.dirname(checkpoint_path))


def unrestored_variables(variables) -> list[str]:
  """Names of `variables` still holding the NaN sentinel of `restore_backbone`."""
  return [v.name for v in variables if not np.all(np.isfinite(v.numpy()))]


def restore_backbone(backbone, checkpoint_path) -> models.ResNetV2:
  """Loads `backbone`'s weights from a training checkpoint; every variable must match.

  Only `model.backbone` is read (heads and optimizer slots are ignored). Raises ValueError,
  naming the checkpoint, when the checkpoint lacks any backbone variable or holds a
  different architecture.
  """
  # Every variable starts as NaN, so one the checkpoint does not cover is caught below even
  # where the object-graph assertion is silent.
  for v in backbone.variables:
    v.assign(tf.fill(v.shape, tf.constant(np.nan, v.dtype)))
  checkpoint = tf.train.Checkpoint(model=tf.train.Checkpoint(backbone=backbone))
  hint = ("Is it a keras_vivi checkpoint (tf.train.Checkpoint(model=...) with "
          "model.backbone) of the same depth, width and normalization?")
  try:
    status = checkpoint.restore(checkpoint_path)
    status.expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    # TF's messages print whole tensors; the names of what stayed unrestored say more.
    missing = unrestored_variables(backbone.variables)
    detail = (f"{len(missing)} of {len(backbone.variables)} backbone variables found no value, "
              f"e.g. {missing[:5]}" if missing else str(e).splitlines()[0][:500])
    raise ValueError(f"Checkpoint {checkpoint_path!r} does not match the backbone: {detail}. "
                     f"{hint}") from None
  missing = unrestored_variables(backbone.variables)
  if missing:
    raise ValueError(f"Checkpoint {checkpoint_path!r} left {len(missing)} of "
                     f"{len(backbone.variables)} backbone variables unrestored (or NaN), e.g. "
                     f"{missing[:5]}. {hint}")
  return backbone


def resolve_run(path, experiment=None) -> tuple[str, configs.ExperimentConfig]:
  """`(checkpoint_path, experiment_config)` of a run's model_dir or a checkpoint prefix.

  The config is the run's config.json; `experiment` (a registered name or an
  `ExperimentConfig`) is needed only when there is none, and must agree when there is.
  """
  checkpoint_path = find_checkpoint(path)
  config = read_run_config(checkpoint_path)
  if isinstance(experiment, str) and experiment:
    experiment = configs.get_experiment(experiment)
  if config is None:
    if not experiment:
      raise ValueError(
          f"No {configs.RUN_CONFIG_FILE} next to checkpoint {checkpoint_path!r}: name the "
          "experiment it was trained with (vivi-export --experiment=NAME, or backbone.vivi.experiment in "
          "Model Garden) so the backbone can be built.")
    config = experiment
  elif experiment and experiment.model != config.model:
    raise ValueError(
        f"Experiment {experiment.name!r} describes model {experiment.model}, but the run's "
        f"{configs.RUN_CONFIG_FILE} says {config.model}; drop --experiment to use the run's own "
        "config.")
  return checkpoint_path, config


def backbone_from_checkpoint(path, experiment=None
                             ) -> tuple[models.ResNetV2, configs.ExperimentConfig, str]:
  """`(backbone, experiment_config, checkpoint_path)` restored from a run or checkpoint.

  See `resolve_run` for where the architecture comes from.
  """
  checkpoint_path, config = resolve_run(path, experiment)
  backbone = models.build_backbone(config.model)
  restore_backbone(backbone, checkpoint_path)
  return backbone, config, checkpoint_path
