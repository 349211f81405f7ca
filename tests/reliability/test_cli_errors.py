"""Expected errors of every `vivi-*` command, as a user meets them: one line naming the value or
path and the fix, exit code 2, no traceback (`--debug` shows it); refused before any work."""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_vivi.cli import errors
from keras_vivi.data import prepare
from tests.helpers.cli import REPO, run_module
from tests.helpers.videos import write_video


def refused(proc, *expected):
  """Asserts the one-line refusal; returns its line."""
  assert proc.returncode == errors.EXIT_CODE, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  line = proc.stderr.strip().splitlines()[-1]
  assert line.startswith("Error: ") and [e for e in expected if e not in line] == [], line
  return line


@pytest.fixture
def video(tmp_path):
  path = tmp_path / "clip.mp4"
  path.write_bytes(b"\x00\x00\x00\x18ftypmp42 a video, as far as the name goes")
  return path


slow = pytest.mark.slow  # more cases of the same kind: each is a process importing TensorFlow


@pytest.mark.parametrize("flags,expected", [
    (["--steps_per_epoch=0"], ["--steps_per_epoch=0", "not a positive integer"]),
    pytest.param(["--steps_per_epoch=-3"], ["--steps_per_epoch=-3", "not a positive integer"],
                 marks=slow),
    (["--config_file={tmp}"], ["--config_file={tmp} is not a file"]),
    pytest.param(["--data={tmp}/missing"], ["{tmp}/missing", "vivi-prepare"], marks=slow),
    (["--data={video}"], ["'{video}' is a file, not prepared records", "vivi-prepare"]),
    (["--params_override=data.path={tmp}/other"], ["--data={tmp} and data.path={tmp}/other",
                                                   "disagree"]),
])
def test_train_refuses_bad_flags_before_touching_the_run(tmp_path, video, flags, expected):
  run = tmp_path / "run"
  fill = lambda text: text.format(tmp=tmp_path, video=video)
  args = ["keras_vivi.cli.train", "--experiment=vivi_objects", f"--model_dir={run}",
          f"--data={tmp_path}", *map(fill, flags)]
  refused(run_module(*args), *map(fill, expected))
  assert not run.exists()


def test_debug_shows_the_traceback(tmp_path, video):
  proc = run_module("keras_vivi.cli.train", "--experiment=vivi", f"--model_dir={tmp_path}/run",
                    f"--data={video}", "--debug")
  assert proc.returncode == errors.EXIT_CODE and "Traceback" in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith(f"Error: '{video}' is a file")


@pytest.mark.parametrize("flags,expected", [
    (["--fps=inf"], ["--fps=inf", "finite number > 0"]),
    pytest.param(["--workers=0"], ["--workers=0", "not a positive integer"], marks=slow),
    pytest.param(["--videos={tmp}/none"], ["{tmp}/none"], marks=slow),
])
def test_prepare_refuses_bad_flags_before_writing(tmp_path, video, flags, expected):
  fill = lambda text: text.format(tmp=tmp_path)
  refused(run_module("keras_vivi.cli.prepare", f"--videos={video.parent}",
                     f"--output={tmp_path / 'out'}", *map(fill, flags)), *map(fill, expected))
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fps", [0.0, -1.0, float("inf"), float("nan"), 5000.0])
def test_absurd_frame_rates_are_refused(fps):
  with pytest.raises(ValueError, match=f"fps must be > 0 and at most .*got {fps!r}"):
    prepare.PrepareConfig(fps=fps)


def test_a_refused_prepare_start_blocks_nothing(tmp_path, video):
  out = tmp_path / "out"
  # A start refused after its plan was written (here: a detector that does not exist) does not
  # block the corrected command: the plan holds no finished shard.
  refused(run_module("keras_vivi.cli.prepare", f"--videos={video.parent}", f"--output={out}",
                     f"--detector={tmp_path / 'no_detector'}"), str(tmp_path / "no_detector"))
  assert json.loads((out / prepare.PLAN_FILE).read_text())["config"]["detector"]
  prepare._load_or_write_plan(str(out), [str(video)], ["clip.mp4"], prepare.PrepareConfig())
  assert json.loads((out / prepare.PLAN_FILE).read_text())["config"]["detector"] is None


@pytest.mark.parametrize("flag", [
    "--image_size=0", "--steps_scale=-0.5",
    *(pytest.param(f, marks=slow) for f in ("--steps_scale=nan", "--batch_size=0",
                                             "--eval_batch_size=-1", "--keras_verbose=7"))])
def test_vtab_refuses_every_bad_number(tmp_path, flag):
  refused(run_module("keras_vivi.cli.vtab", f"--hub={tmp_path}", "--tasks=digits",
                     f"--output={tmp_path / 'out'}", flag), flag)
  assert not (tmp_path / "out").exists()


# `vivi-export` whose SavedModel write meets a full disk or a read-only output.
FULL_DISK = ("import errno, os, sys\n"
             "import tensorflow as tf\n"
             "code = getattr(errno, sys.argv[1])\n"
             "def save(obj, path, **kwargs):\n"
             "  raise OSError(code, os.strerror(code), path)\n"
             "tf.saved_model.save = save\n"
             "from hub_export import cli\n"
             "sys.argv = ['vivi-export', *sys.argv[2:]]\n"
             "cli.run()\n")


@pytest.mark.parametrize("code,expected", [
    ("ENOSPC", "no space left on the device"),
    pytest.param("EROFS", "Read-only file system", marks=slow)])
def test_export_on_a_full_or_read_only_disk_is_one_line(tmp_path, code, expected):
  export_dir = tmp_path / "export"
  proc = subprocess.run(
      [sys.executable, "-c", FULL_DISK, code, "--experiment=vivi", "--init=random",
       "--params_override=model.depth=14", f"--export_dir={export_dir}"], cwd=REPO,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True,
      timeout=600)
  line = refused(proc, expected)
  assert str(tmp_path) in line
  assert not export_dir.exists() and os.listdir(tmp_path) == []


def test_os_errors_name_the_path_and_the_fix():
  full = errors.message(OSError(errno.ENOSPC, "No space left on device", "/data/out/x.tfrecord"))
  assert full.startswith("/data/out/x.tfrecord: no space left") and "finished work is kept" in full
  denied = errors.message(PermissionError(errno.EACCES, "Permission denied", "/data/out"))
  assert denied.startswith("/data/out: Permission denied; choose a path this user may write")
  assert errors.message(KeyError("a bug")) is None


def test_degenerate_videos_are_skipped_unless_allowed(tmp_path, mediapipe_detector):
  tiny = write_video(tmp_path / "tiny.mp4", np.full([30, 2, 2, 3], 120, np.uint8))
  with pytest.raises(prepare.SkippedVideo, match="2×2 pixels, smaller than min_video_side=16 "
                     r"\(--min_video_side=1 accepts it\)"):
    prepare.prepare_video(tiny, "tiny.mp4", mediapipe_detector, prepare.PrepareConfig())
  serialized, stats = prepare.prepare_video(tiny, "tiny.mp4", mediapipe_detector,
                                            prepare.PrepareConfig(min_video_side=1))
  assert serialized and stats["num_frames"] >= 1
