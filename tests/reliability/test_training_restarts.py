"""Bad starts and diverging runs of `vivi-train` / `trainer.train`, as a user meets them."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_vivi import configs
from keras_vivi.data import synthetic
from keras_vivi.training import callbacks
from keras_vivi.training import trainer
from tests.helpers.cli import run_module
from tests.helpers.training import small_config


def batches(config, nan=False):
  """A repeated batch, with NaN frames (an input that makes training diverge) when `nan`."""
  batch = synthetic.video_batch(config.data, seed=0)
  if nan:
    batch["frames"] = np.full_like(batch["frames"], np.nan)
  def fn(input_context=None):
    return tf.data.Dataset.from_tensors(batch).repeat()
  return fn


def committed(model_dir):
  latest = tf.train.latest_checkpoint(model_dir)
  return int(latest.rsplit("-", 1)[-1]) if latest else 0


def test_restarts_refuse_other_runs_and_nan_never_reaches_a_checkpoint(tmp_path):
  run = str(tmp_path / "run")
  # A start that fails (its teacher does not exist) leaves nothing behind.
  failing = small_config("distill_imagenet", f"loss.teacher={tmp_path / 'no_teacher'}",
                         "train.steps=1")
  with pytest.raises(Exception):
    trainer.train(failing, run, steps_per_epoch=1, dataset_fn=batches(failing),
                  verbose=0)
  assert not os.path.exists(run)

  config = small_config("vivi_objects", "train.steps=1", "train.decay_steps=")
  trainer.train(config, run, steps_per_epoch=1, dataset_fn=batches(config),
                verbose=0)
  saved = open(os.path.join(run, "config.json")).read()
  assert committed(run) == 1

  # Another objective or architecture: refused before anything is built, naming the fields.
  other = small_config("vivi", "train.steps=1", "train.decay_steps=", "model.depth=26")
  with pytest.raises(ValueError, match=r"loss.object: True -> False; model.depth: 14 -> 26"):
    trainer.train(other, run, steps_per_epoch=1, verbose=0)
  assert open(os.path.join(run, "config.json")).read() == saved

  # A larger train.steps extends the run; step 2 diverges: the run stops, step 1 stays the last
  # checkpoint and holds finite weights.
  longer = small_config("vivi_objects", "train.steps=3", "train.decay_steps=")
  with pytest.raises(callbacks.NonFiniteLossError, match=r"step 2.*ckpt-1"):
    trainer.train(longer, run, steps_per_epoch=1, dataset_fn=batches(longer, nan=True),
                  verbose=0)
  assert committed(run) == 1
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(run))
  values = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map()]
  assert all(np.isfinite(v).all() for v in values if np.issubdtype(np.asarray(v).dtype,
                                                                   np.floating))
  assert json.load(open(os.path.join(run, "config.json")))["train"]["steps"] == 3


def test_cli_refuses_a_bad_value_before_touching_the_run(tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  config = small_config("vivi_objects", "train.steps=300")
  configs.save_run_config(config, str(run))
  before = (run / "config.json").read_bytes()
  proc = run_module("keras_vivi.cli.train", "--experiment=vivi", f"--model_dir={run}",
                    f"--data={tmp_path}",
                    "--params_override=train.steps=0,loss.shot_negatives=same_positon")
  assert proc.returncode != 0
  assert "shot_negatives expects one of batch, same_position, got 'same_positon'" in proc.stderr
  assert (run / "config.json").read_bytes() == before
  assert sorted(os.listdir(run)) == ["config.json"]


def test_a_run_saved_before_the_objective_fields_keeps_its_objective(tmp_path):
  config = configs.get_experiment("vivi")
  values = configs.to_dict(config)
  del values["loss"]["shot_normalization"], values["train"]["weight_decay_type"]
  del values["loss"]["cross_entropy_normalization"], values["data"]["color_policy"]
  (tmp_path / configs.RUN_CONFIG_FILE).write_text(json.dumps(values))
  saved = configs.load_run_config(str(tmp_path))
  assert (saved.loss.shot_normalization, saved.train.weight_decay_type) == ("per_query",
                                                                            "decoupled")
  assert (saved.loss.cross_entropy_normalization, saved.data.color_policy) == ("none", "simclr")
  with pytest.raises(ValueError, match=r"loss.shot_normalization: 'per_query' -> 'per_video'; "
                     r"train.weight_decay_type: 'decoupled' -> 'l2'"):
    trainer.check_restart(config, str(tmp_path))
  trainer.check_restart(configs.apply_overrides(config, [
      "loss.shot_normalization=per_query", "train.weight_decay_type=decoupled",
      "loss.cross_entropy_normalization=none", "data.color_policy=simclr"]), str(tmp_path))


def test_a_run_saved_before_keep_checkpoints_loads_and_may_change_it(tmp_path):
  config = configs.get_experiment("vivi")
  values = configs.to_dict(config)
  del values["train"]["keep_checkpoints"]
  (tmp_path / configs.RUN_CONFIG_FILE).write_text(json.dumps(values))
  assert configs.load_run_config(str(tmp_path)).train.keep_checkpoints == 3  # max_to_keep it ran with
  trainer.check_restart(configs.apply_overrides(config, ["train.keep_checkpoints=5"]),
                        str(tmp_path))
