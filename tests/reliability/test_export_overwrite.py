"""`--overwrite` of vivi-export / publish: only what the tool wrote is replaced, and only once
the new copy is complete; links are never followed into a publication."""

import os

import pytest
import tensorflow as tf

import hub_export
from hub_export import publish as publish_lib
from keras_vivi import configs
from tests.helpers.cli import run_module

TINY = configs.apply_overrides(configs.get_experiment("vivi"),
                               ["model.depth=14", "data.image_size=32"])


def seed_of(export_dir):
  return hub_export.read_metadata(export_dir)["source"]["seed"]


def test_overwrite_replaces_only_its_own_exports_and_only_once_complete(tmp_path, monkeypatch):
  mine = tmp_path / "thesis"
  mine.mkdir()
  (mine / "thesis.txt").write_text("three years of work")
  for overwrite in (False, True):
    with pytest.raises(FileExistsError, match=f"{mine}' is not empty and was not written by "
                       "vivi-export.*never replaced"):
      hub_export.export_random_init(TINY, str(mine), overwrite=overwrite)
  assert os.listdir(mine) == ["thesis.txt"]

  export = str(tmp_path / "export")
  hub_export.export_random_init(TINY, export, seed=1)
  before = sorted(os.listdir(export))

  # A save that dies half-way leaves the previous export as it was, and no partial copy.
  real_save = tf.saved_model.save
  def dying_save(obj, path, **kwargs):
    real_save(obj, path, **kwargs)
    raise OSError("disk full")
  monkeypatch.setattr(tf.saved_model, "save", dying_save)
  with pytest.raises(OSError, match="disk full"):
    hub_export.export_random_init(TINY, export, seed=2, overwrite=True)
  monkeypatch.undo()
  assert seed_of(export) == 1 and sorted(os.listdir(export)) == before
  assert sorted(os.listdir(tmp_path)) == ["export", "thesis"]

  hub_export.export_random_init(TINY, export, seed=2, overwrite=True)
  assert seed_of(export) == 2 and sorted(os.listdir(tmp_path)) == ["export", "thesis"]

  # publish never follows a link out of the export.
  secret = tmp_path / "thesis" / "thesis.txt"
  os.symlink(secret, os.path.join(export, "assets", "notes.txt"))
  zoo = tmp_path / "zoo"
  with pytest.raises(ValueError, match=r"symbolic link .*notes.txt' -> .*thesis.txt"):
    publish_lib.publish(export, str(zoo), "tiny", 1)
  assert not os.path.exists(zoo / "tiny" / "1")


def test_leftovers_of_killed_publications_are_swept_by_the_next_one(tmp_path):
  zoo = tmp_path / "zoo"
  # What a kill during `vivi-export --publish` leaves: its export, its version being written.
  leftovers = [zoo / ".export-k1ll3d_x", zoo / "tiny" / f".1.{'ab' * 16}.tmp"]
  # Look-alikes that vivi-export did not write, kept.
  kept = [zoo / ".export-notes", zoo / "tiny" / ".1.draft.tmp", zoo / "mine.tmp"]
  for path in leftovers + kept:
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.data-00000-of-00001").write_bytes(b"x" * 1000)
  proc = run_module("hub_export.cli", "--experiment=vivi", "--init=random",
                    "--params_override=model.depth=14", f"--publish={zoo}", "--name=tiny")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert [p for p in leftovers if p.exists()] == [] and all(p.is_dir() for p in kept)
  assert publish_lib.is_published(str(zoo / "tiny" / "1"))
  assert sorted(os.listdir(zoo)) == [".export-notes", "mine.tmp", "tiny"]
