"""Two jobs on one directory: the second fails fast naming the first; a lock left by a killed
process is taken over; prepare's start-up sweep never touches a live job's shard."""

import os
import subprocess
import sys

import pytest

from keras_vivi import files
from keras_vivi.data import prepare
from keras_vivi.training import trainer
from tests.helpers.cli import REPO
from tests.helpers.training import small_config
from tests.reliability.test_training_restarts import batches, committed

HOLD = ("import sys, time\n"
        "from keras_vivi import files\n"
        "files.DirectoryLock(sys.argv[1], sys.argv[2]).acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n")


def hold(directory, what):
  """A live process holding `directory`'s lock, as a running job does."""
  proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), what], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == "held", proc.stderr.read()
  return proc


def kill(proc):
  proc.kill()
  proc.wait()
  proc.stdout.close()
  proc.stderr.close()


def test_a_second_training_run_fails_fast_and_a_dead_owner_lock_is_taken_over(tmp_path):
  run = tmp_path / "run"
  config = small_config("vivi_objects", "train.steps=1", "train.decay_steps=")
  owner = hold(run, "vivi-train")
  try:
    with pytest.raises(files.DirectoryLockedError,
                       match=rf"{run} is in use by another vivi-train \(pid {owner.pid} "):
      trainer.train(config, str(run), steps_per_epoch=1, dataset_fn=batches(config), verbose=0)
    assert os.listdir(run) == [files.LOCK_FILE]
  finally:
    kill(owner)
  # Killed: its lock file is still there, and taken over.
  assert (run / files.LOCK_FILE).read_text().startswith(f"pid {owner.pid} ")
  trainer.train(config, str(run), steps_per_epoch=1, dataset_fn=batches(config), verbose=0)
  assert committed(str(run)) == 1 and not (run / files.LOCK_FILE).exists()


def test_a_second_prepare_leaves_the_running_jobs_shard_alone(tmp_path):
  videos = tmp_path / "videos"
  videos.mkdir()
  (videos / "a.mp4").write_bytes(b"not a video")
  out = tmp_path / "out"
  out.mkdir()
  in_progress = files.temporary_path(prepare.shard_path(str(out), 0, 1))
  open(in_progress, "wb").close()
  owner = hold(out, "vivi-prepare")
  try:
    with pytest.raises(files.DirectoryLockedError,
                       match=rf"{out} is in use by another vivi-prepare \(pid {owner.pid} "):
      prepare.prepare(str(videos), str(out), progress=False)
  finally:
    kill(owner)
  assert sorted(os.listdir(out)) == sorted([os.path.basename(in_progress), files.LOCK_FILE])


def test_a_lock_that_created_its_directory_leaves_nothing_behind(tmp_path):
  with files.DirectoryLock(str(tmp_path / "new"), "vivi-train"):
    assert os.listdir(tmp_path / "new") == [files.LOCK_FILE]
  assert os.listdir(tmp_path) == []
