"""Fetching and caching MediaPipe's model: checksums, re-fetch of corrupt files, npm errors, cache dirs."""

import io
import os
import pathlib
import socket
import stat
import tarfile

import pytest
import tensorflow as tf

from keras_vivi import files
from keras_vivi.detector import ChecksumError, DetectorLoadError, default_cache_dir, fetch_mediapipe_oidv4
from keras_vivi.detector import mediapipe_assets as ma


@pytest.fixture(scope="module")
def cached(mediapipe_detector):
  """The user-cache assets (the detector fixture fetched them)."""
  return fetch_mediapipe_oidv4()


def _package_tgz(path: pathlib.Path, packed: bytes) -> pathlib.Path:
  """A tarball laid out like `npm pack @mediapipe/objectron`, holding only the packed data."""
  with tarfile.open(path, "w") as tar:  # uncompressed: fast, and "r:*" reads both
    info = tarfile.TarInfo(ma.PACKED_MEMBER)
    info.size = len(packed)
    tar.addfile(info, io.BytesIO(packed))
  return path


def _packed_bytes(cached) -> bytes:
  return cached.labels_path.read_bytes() + cached.model_path.read_bytes()


def test_cached_files_are_verified(cached):
  assert files.file_sha256(cached.model_path) == ma.MODEL_SHA256
  assert cached.model_path.stat().st_size == ma.MODEL_BYTES[1] - ma.MODEL_BYTES[0]
  names = ma.read_label_map(cached.labels_path)
  assert len(names) == 24 and names[0] == "???" and names[8] == "Cat" and names[13] == "Coffee cup"


def test_corrupt_cache_is_refetched(cached, tmp_path):
  tgz = _package_tgz(tmp_path / "objectron.tar", _packed_bytes(cached))
  cache = tmp_path / "cache"
  (cache / ma.SUBDIR).mkdir(parents=True)
  (cache / ma.SUBDIR / ma.MODEL_FILENAME).write_bytes(b"truncated")
  (cache / ma.SUBDIR / ma.LABELS_FILENAME).write_bytes(cached.labels_path.read_bytes())
  assets = fetch_mediapipe_oidv4(cache, package_tgz=tgz)
  assert files.file_sha256(assets.model_path) == ma.MODEL_SHA256
  assert sorted(p.name for p in (cache / ma.SUBDIR).iterdir()) == sorted(
      [ma.MODEL_FILENAME, ma.LABELS_FILENAME])  # no temporary files left behind


def test_checksum_mismatch_raises_and_writes_nothing(cached, tmp_path):
  packed = bytearray(_packed_bytes(cached))
  packed[5000] ^= 0xFF
  tgz = _package_tgz(tmp_path / "bad.tar", bytes(packed))
  with pytest.raises(ChecksumError, match=rf"model from .*bad.tar has sha256 [0-9a-f]{{64}}, "
                                          rf"expected {ma.MODEL_SHA256}"):
    fetch_mediapipe_oidv4(tmp_path / "cache", package_tgz=tgz)
  assert not (tmp_path / "cache" / ma.SUBDIR / ma.MODEL_FILENAME).exists()


def test_tarball_without_packed_data(tmp_path):
  with tarfile.open(tmp_path / "empty.tgz", "w:gz"):
    pass
  with pytest.raises(DetectorLoadError, match=r"cannot read 'package/objectron_solution_packed"):
    fetch_mediapipe_oidv4(tmp_path / "cache", package_tgz=tmp_path / "empty.tgz")


def test_without_npm_the_package_comes_from_the_registry_over_http(tmp_path, monkeypatch):
  monkeypatch.setenv("PATH", str(tmp_path / "empty_bin"))  # no npm CLI, as on cluster workers
  assets = fetch_mediapipe_oidv4(tmp_path / "cache")
  assert files.file_sha256(assets.model_path) == ma.MODEL_SHA256
  assert files.file_sha256(assets.labels_path) == ma.LABELS_SHA256


def test_a_silent_registry_times_out_with_a_clear_error(tmp_path, monkeypatch):
  with socket.socket() as server:  # accepts connections, never answers
    server.bind(("127.0.0.1", 0))
    server.listen()
    monkeypatch.setenv("PATH", str(tmp_path / "empty_bin"))
    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{server.getsockname()[1]}/")
    monkeypatch.setattr(ma, "HTTP_TIMEOUT_S", 0.5)
    with pytest.raises(DetectorLoadError, match=r"cannot fetch http://127\.0\.0\.1:\d+/@mediapipe%2fobjectron/"
                                                r".*timeout 0\.5 s.*--detector_package"):
      fetch_mediapipe_oidv4(tmp_path / "cache")
  assert not (tmp_path / "cache" / ma.SUBDIR / ma.MODEL_FILENAME).exists()


def test_a_staged_copy_on_a_gfile_path_is_accepted_and_checked(cached, tmp_path):
  staged = "ram://staged_detector/objectron.tgz"
  local = _package_tgz(tmp_path / "objectron.tar", _packed_bytes(cached))
  tf.io.gfile.makedirs("ram://staged_detector")
  tf.io.gfile.copy(str(local), staged, overwrite=True)
  assets = fetch_mediapipe_oidv4(tmp_path / "cache", package_tgz=staged)
  assert files.file_sha256(assets.model_path) == ma.MODEL_SHA256
  packed = bytearray(_packed_bytes(cached))
  packed[-100] ^= 0xFF
  bad = "ram://staged_detector/corrupt.tgz"
  tf.io.gfile.copy(str(_package_tgz(tmp_path / "bad.tar", bytes(packed))), bad)
  with pytest.raises(ChecksumError, match=r"model from ram://staged_detector/corrupt.tgz has sha256"):
    fetch_mediapipe_oidv4(tmp_path / "other_cache", package_tgz=bad)
  with pytest.raises(DetectorLoadError, match=r"cannot read the staged detector package 'ram://nowhere"):
    fetch_mediapipe_oidv4(tmp_path / "other_cache", package_tgz="ram://nowhere/objectron.tgz")


def test_npm_failure_is_reported(tmp_path, monkeypatch):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  npm = bin_dir / "npm"
  npm.write_text("#!/bin/sh\necho 'npm ERR! 404 Not Found' >&2\nexit 1\n")
  npm.chmod(npm.stat().st_mode | stat.S_IXUSR)
  monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ["PATH"])
  with pytest.raises(DetectorLoadError, match=r"(?s)npm pack @mediapipe/objectron@.*exit code 1.*"
                     r"--detector_package=PATH.*404"):
    fetch_mediapipe_oidv4(tmp_path / "cache")


def test_default_cache_dir_precedence(tmp_path, monkeypatch):
  monkeypatch.setenv("KERAS_VIVI_CACHE", str(tmp_path / "a"))
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
  assert default_cache_dir() == tmp_path / "a"
  monkeypatch.delenv("KERAS_VIVI_CACHE")
  assert default_cache_dir() == tmp_path / "b" / "keras_vivi"
  monkeypatch.delenv("XDG_CACHE_HOME")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert default_cache_dir() == tmp_path / "home" / ".cache" / "keras_vivi"
