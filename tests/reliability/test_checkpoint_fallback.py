"""Damaged checkpoints and kills around them: a restart resumes from the newest intact checkpoint,
never from step 0 over them, and loses or repeats no epoch's log rows."""

import csv
import dataclasses
import logging
import os

import pytest
import tensorflow as tf

from keras_vivi.training import callbacks
from keras_vivi.training import runs as checkpoint_lib
from keras_vivi.training import trainer
from tests.helpers.training import small_config
from tests.reliability.test_training_restarts import batches, committed


def train(run, steps, **kwargs):
  config = small_config("vivi_objects", f"train.steps={steps}", "train.decay_steps=")
  return trainer.train(config, str(run), steps_per_epoch=1, dataset_fn=batches(config),
                       verbose=0, **kwargs)


def file_bytes(run, prefix):
  return {name: (run / name).read_bytes() for name in os.listdir(run) if name.startswith(prefix)}


def history_epochs(run):
  with open(run / trainer.HISTORY_FILE) as f:
    return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, damage,
                                                                          caplog):
  run = tmp_path / "run"
  train(run, 2)
  assert committed(str(run)) == 2
  (data,) = [run / n for n in os.listdir(run) if n.startswith("ckpt-2.data")]
  if damage == "missing":
    data.unlink()
  else:
    data.write_bytes(data.read_bytes()[:len(data.read_bytes()) // 2])
  intact = file_bytes(run, "ckpt-1.")
  # What a save killed before its shards were merged leaves; a folder of another name is kept.
  leftover, other = run / "ckpt-3_temp", run / "ckpt-notes_temp"
  for folder in (leftover, other):
    folder.mkdir()
  (leftover / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x" * 100)

  # Export names the damaged file and the intact checkpoint to export instead.
  with pytest.raises(ValueError, match=rf"{run / 'ckpt-2'}.*--checkpoint={run / 'ckpt-1'}"):
    checkpoint_lib.find_checkpoint(str(run))

  caplog.set_level(logging.WARNING)
  _, history = train(run, 3)
  # Resumed after step 1 (two epochs trained), not from step 0 (three).
  assert history.epoch == [1, 2]
  assert committed(str(run)) == 3
  assert file_bytes(run, "ckpt-1.") == intact
  assert f"Resuming from {run / 'ckpt-1'}" in caplog.text and str(run / "ckpt-2") in caplog.text
  assert checkpoint_lib.find_checkpoint(str(run)) == str(run / "ckpt-3")
  assert not leftover.exists() and other.is_dir()


def test_every_checkpoint_damaged_is_an_error_naming_them_not_a_run_from_step_0(tmp_path):
  run = tmp_path / "run"
  train(run, 1)
  for name in os.listdir(run):
    if name.startswith("ckpt-1.data"):
      os.remove(run / name)
  before = sorted(os.listdir(run))
  with pytest.raises(ValueError, match=rf"Every checkpoint of {run} is damaged.*ckpt-1"):
    train(run, 2)
  assert sorted(os.listdir(run)) == before


class Killed(Exception):
  """Stands for a kill -9 at one moment of an epoch's end."""


@pytest.mark.parametrize("moment", ["after_checkpoint", "before_checkpoint"])
def test_a_kill_around_the_checkpoint_neither_loses_nor_repeats_log_rows(tmp_path, monkeypatch,
                                                                         moment):
  run = tmp_path / "run"
  save = callbacks.CheckpointCallback.on_epoch_end

  def dying(self, epoch, logs=None):
    if moment == "before_checkpoint":
      raise Killed()
    save(self, epoch, logs)
    raise Killed()
  monkeypatch.setattr(callbacks.CheckpointCallback, "on_epoch_end", dying)
  with pytest.raises(Killed):
    train(run, 2)
  monkeypatch.undo()
  assert committed(str(run)) == (1 if moment == "after_checkpoint" else 0)
  train(run, 2)
  assert committed(str(run)) == 2
  assert history_epochs(run) == [0, 1]


def test_a_torn_last_line_of_the_diagnostic_log_does_not_block_a_restart(tmp_path):
  from keras_vivi import configs
  config = configs.get_experiment("vivi")
  log = tmp_path / trainer.DIAGNOSTIC_FILE
  log.write_text('{"step": 0, "object_nn_same_class": 0.5}\n{"step": 10, "object_nn_sa')
  callback = callbacks.ObjectNeighbourCallback(config.data, config.diagnostic, str(log))
  assert callback.history == [{"step": 0, "object_nn_same_class": 0.5}]
  log.write_text('{"step": 0}\n{"step": 1\n{"step": 2}\n')
  with pytest.raises(ValueError, match=rf"{log}, line 2, is damaged"):
    callbacks.ObjectNeighbourCallback(config.data, config.diagnostic, str(log))
  tf.io.gfile.remove(str(log))


def checkpoint_steps(run):
  return sorted(int(n[len("ckpt-"):-len(".index")]) for n in os.listdir(run)
                if n.startswith("ckpt-") and n.endswith(".index"))


def test_keep_checkpoints_keeps_the_newest_ones_and_a_restart_resumes(tmp_path):
  run = tmp_path / "run"
  config = small_config("vivi_objects", "train.steps=4", "train.decay_steps=",
                        "train.keep_checkpoints=2")
  trainer.train(config, str(run), steps_per_epoch=1, dataset_fn=batches(config), verbose=0)
  assert checkpoint_steps(run) == [3, 4]
  # The newest is damaged: the restart falls back to the one before, trains step 4 again, and
  # (keep_checkpoints=None) keeps every checkpoint from then on.
  for name in os.listdir(run):
    if name.startswith("ckpt-4.data"):
      os.remove(run / name)
  longer = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=6,
                                                                 keep_checkpoints=None))
  _, history = trainer.train(longer, str(run), steps_per_epoch=1, dataset_fn=batches(longer),
                             verbose=0)
  assert history.epoch == [3, 4, 5]
  assert checkpoint_steps(run) == [3, 4, 5, 6]
  assert committed(str(run)) == 6


@pytest.mark.parametrize("value", [0, 1, -3])
def test_keep_checkpoints_below_two_is_refused(value):
  with pytest.raises(ValueError, match=rf"keep_checkpoints must be >= 2.*got {value}"):
    small_config("vivi_objects", f"train.keep_checkpoints={value}")
