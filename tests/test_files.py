"""keras_vivi.files: atomic writes (local and ram://), sha256, damaged JSON, settings checks."""

import os

import pytest
import tensorflow as tf

from keras_vivi import files


@pytest.mark.parametrize("root", ["local", "ram://files_test"])
def test_write_atomically_replaces_whole_files_and_leaves_no_temporary(tmp_path, root):
  directory = str(tmp_path) if root == "local" else root
  tf.io.gfile.makedirs(directory)
  path = os.path.join(directory, "result.json")
  files.write_atomically(path, "old")
  files.write_atomically(path, b"\x00new")
  with tf.io.gfile.GFile(path, "rb") as f:
    assert f.read() == b"\x00new"
  with pytest.raises(TypeError):
    files.write_atomically(path, 12345)  # neither bytes nor str: the write fails midway
  with tf.io.gfile.GFile(path, "rb") as f:
    assert f.read() == b"\x00new"
  assert tf.io.gfile.listdir(directory) == ["result.json"]


def test_final_name_of_recognises_only_its_own_temporaries():
  temporary = os.path.basename(files.temporary_path("/x/shard-0-of-2.tfrecord"))
  assert files.final_name_of(temporary) == "shard-0-of-2.tfrecord"
  assert files.final_name_of("plan.json.tmp") == "plan.json"  # what earlier versions wrote
  assert files.final_name_of("plan.json") is None
  assert files.final_name_of("notes.tmp.txt") is None
  assert files.final_name_of("plan.json.notahexname.tmp") == "plan.json.notahexname"
  assert files.temporary_path("a") != files.temporary_path("a")


def test_file_sha256_against_the_standard_vector(tmp_path):
  path = tmp_path / "abc"
  path.write_bytes(b"abc")
  # FIPS 180-2, appendix B.1.
  assert files.file_sha256(str(path)) == (
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_read_json_names_the_damaged_file_and_the_way_out(tmp_path):
  path = tmp_path / "plan.json"
  path.write_text('{"videos": [')
  with pytest.raises(ValueError, match=f"{path} is damaged \\(not valid JSON: .*\\); restore it"):
    files.read_json(str(path), "restore it")
  path.write_text("[1, 2]")
  with pytest.raises(ValueError, match=f"{path} is damaged \\(it holds a list, not an object\\)"):
    files.read_json(str(path), "restore it")
  path.write_text('{"a": 1}')
  assert files.read_json(str(path), "restore it") == {"a": 1}


def test_check_same_settings_names_every_differing_field():
  recorded = {"hub": "a", "config": {"steps": 5, "sweep": [1, 2]}}
  files.check_same_settings(recorded, {"hub": "a", "config": {"steps": 5, "sweep": [1, 2]}},
                            "out", "results", "choose another")
  with pytest.raises(ValueError) as error:
    files.check_same_settings(recorded, {"hub": "b", "config": {"steps": 5, "seed": 0}},
                              "out", "results of another run", "choose another")
  assert str(error.value) == ("'out' holds results of another run (config.seed: None → 0, "
                              "config.sweep: [1, 2] → None, hub: 'a' → 'b'); choose another")


def test_url_schemes():
  assert files.is_remote("gs://b/m") and files.is_remote("https://h/m.tar.gz")
  assert not files.is_remote("file:///m") and files.has_url_scheme("file:///m")
  assert not files.has_url_scheme("/local/m") and not files.is_remote("exports/m")


def test_cache_root(monkeypatch, tmp_path):
  monkeypatch.setenv("KERAS_VIVI_CACHE", str(tmp_path / "cache"))
  assert files.cache_root() == str(tmp_path / "cache")
  monkeypatch.delenv("KERAS_VIVI_CACHE")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert files.cache_root() == str(tmp_path / "xdg" / "keras_vivi")
  monkeypatch.delenv("XDG_CACHE_HOME")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert files.cache_root() == str(tmp_path / "home" / ".cache" / "keras_vivi")
