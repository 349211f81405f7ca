"""Fetches and caches MediaPipe's OIDv4 SSD-MobileNetV2 (.tflite + label map) from its npm package.

MediaPipe ships the model inside `@mediapipe/objectron` (Apache-2.0), packed together with its label map
in one data file. The package tarball comes from `npm pack` where the npm CLI is installed, otherwise
straight from the registry over HTTP (its `dist.tarball` URL), or from a staged copy on any
`tf.io.gfile` path (e.g. `gs://` for cluster workers); the extracted files are sha256-checked either way.
"""

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile
from typing import Optional, Union
import urllib.error
import urllib.request

import tensorflow as tf

from keras_vivi import files
from keras_vivi.detector.detector import DetectorLoadError

NPM_PACKAGE = "@mediapipe/objectron@0.4.1675468480"
PACKED_MEMBER = "package/objectron_solution_packed_assets.data"
LABELS_BYTES = (0, 184)  # [start, stop) in the packed data
MODEL_BYTES = (184, 9987912)
MODEL_SHA256 = "d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6"
LABELS_SHA256 = "c148336a65f673013609a923fdcbdeec0f49df935045029c3746a3828a0e80e0"
MODEL_FILENAME = "object_detection_ssd_mobilenetv2_oidv4_fp16.tflite"
LABELS_FILENAME = "object_detection_oidv4_labelmap.txt"
SUBDIR = "mediapipe_oidv4"
NPM_TIMEOUT_S = 900
HTTP_TIMEOUT_S = 60  # per connection and per read
DEFAULT_REGISTRY = "https://registry.npmjs.org"

PathLike = Union[str, os.PathLike]


class ChecksumError(DetectorLoadError):
  """A file's sha256 is not the expected one."""


@dataclasses.dataclass(frozen=True)
class MediaPipeAssets:
  model_path: pathlib.Path
  labels_path: pathlib.Path


def default_cache_dir() -> pathlib.Path:
  """`$KERAS_VIVI_CACHE`, else `$XDG_CACHE_HOME/keras_vivi`, else `~/.cache/keras_vivi`."""
  return pathlib.Path(files.cache_root())


def _has_sha256(path: pathlib.Path, expected: str) -> bool:
  return path.is_file() and files.file_sha256(str(path)) == expected


# Where the registry is out of reach (cluster workers), the tarball is staged once and named instead.
STAGE_HINT = (f"Or stage the tarball of `npm pack {NPM_PACKAGE}` (made where the registry is reachable) "
              "and pass it with vivi-prepare --detector_package=PATH (any tf.io.gfile path, e.g. gs://).")


def _npm_pack(dest_dir: pathlib.Path) -> pathlib.Path:
  """Runs `npm pack NPM_PACKAGE` in `dest_dir`; returns the tarball's path."""
  npm = shutil.which("npm") or "npm"  # callers check that npm is installed
  cmd = [npm, "pack", NPM_PACKAGE, "--silent"]
  try:
    proc = subprocess.run(cmd, cwd=dest_dir, capture_output=True, text=True, timeout=NPM_TIMEOUT_S,
                          check=False)
  except subprocess.TimeoutExpired as e:
    raise DetectorLoadError(f"`{' '.join(cmd[1:])}` did not finish within {NPM_TIMEOUT_S} s; {STAGE_HINT}"
                            ) from e
  tarballs = sorted(dest_dir.glob("*.tgz"))
  if proc.returncode != 0 or len(tarballs) != 1:
    tail = (proc.stderr or proc.stdout or "").strip()[-2000:]
    raise DetectorLoadError(
        f"`npm pack {NPM_PACKAGE}` failed (exit code {proc.returncode}, {len(tarballs)} tarball(s) "
        f"written); is the npm registry reachable (see `npm config get registry`)? {STAGE_HINT} "
        f"npm said:\n{tail}")
  return tarballs[0]


def registry_url() -> str:
  """The npm registry: `$npm_config_registry` (as npm itself reads it), else the public one."""
  return (os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY")
          or DEFAULT_REGISTRY).rstrip("/")


def _http_get(url: str) -> bytes:
  try:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
      return response.read()
  except (urllib.error.URLError, OSError) as e:  # timeouts are OSErrors
    raise DetectorLoadError(
        f"cannot fetch {url} (timeout {HTTP_TIMEOUT_S} s per read): {e}. Is the npm registry "
        f"reachable (set $npm_config_registry for a mirror)? {STAGE_HINT}") from e


def _registry_tarball() -> bytes:
  """The package tarball from the registry over HTTP: its metadata's `dist.tarball` URL."""
  name, version = NPM_PACKAGE.rsplit("@", 1)
  metadata_url = f"{registry_url()}/{name.replace('/', '%2f')}/{version}"
  try:
    tarball_url = json.loads(_http_get(metadata_url))["dist"]["tarball"]
  except (ValueError, KeyError, TypeError) as e:
    raise DetectorLoadError(f"{metadata_url} is not npm package metadata with dist.tarball: {e!r}") from e
  return _http_get(tarball_url)


def package_tarball() -> bytes:
  """The bytes of `npm pack NPM_PACKAGE`: through the npm CLI if installed, else over HTTP."""
  if shutil.which("npm") is None:
    return _registry_tarball()
  with tempfile.TemporaryDirectory(prefix="keras_vivi_npm_") as tmp:
    return _npm_pack(pathlib.Path(tmp)).read_bytes()


def _read_packed_assets(tarball: bytes, source: str) -> bytes:
  try:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:*") as tar:
      member = tar.extractfile(PACKED_MEMBER)
      if member is None:
        raise KeyError(PACKED_MEMBER)
      return member.read()
  except (KeyError, tarfile.TarError, OSError) as e:
    raise DetectorLoadError(
        f"cannot read {PACKED_MEMBER!r} from {source!r} (expected the tarball of "
        f"`npm pack {NPM_PACKAGE}`): {e}") from e


def fetch_mediapipe_oidv4(cache_dir: Optional[PathLike] = None, *,
                          package_tgz: Optional[PathLike] = None) -> MediaPipeAssets:
  """Returns the cached model and label map, fetching them first when missing or corrupt.

  Files live in `<cache_dir>/mediapipe_oidv4/` (`cache_dir` defaults to `default_cache_dir()`). A file
  whose sha256 differs from the pinned one is fetched again: from `package_tgz` if given (the tarball
  of `npm pack`, staged on any `tf.io.gfile` path such as `gs://`), else with `npm pack` in a
  temporary directory when the npm CLI is on PATH, else from the registry over HTTP.

  Raises:
    DetectorLoadError: npm or the registry fails or times out, or the tarball is unreadable.
    ChecksumError: the fetched bytes do not have the pinned sha256.
  """
  root = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
  assets = MediaPipeAssets(model_path=root / SUBDIR / MODEL_FILENAME,
                           labels_path=root / SUBDIR / LABELS_FILENAME)
  if _has_sha256(assets.model_path, MODEL_SHA256) and _has_sha256(assets.labels_path, LABELS_SHA256):
    return assets

  if package_tgz is not None:
    source = os.fspath(package_tgz)
    try:
      with tf.io.gfile.GFile(source, "rb") as f:
        tarball = f.read()
    except tf.errors.OpError as e:
      raise DetectorLoadError(f"cannot read the staged detector package {source!r}: {e.message}") from e
  else:
    source = f"npm pack {NPM_PACKAGE}" if shutil.which("npm") else f"{registry_url()} ({NPM_PACKAGE})"
    tarball = package_tarball()
  packed = _read_packed_assets(tarball, source)

  labels = packed[LABELS_BYTES[0]:LABELS_BYTES[1]]
  model = packed[MODEL_BYTES[0]:MODEL_BYTES[1]]
  for what, data, expected in (("model", model, MODEL_SHA256), ("label map", labels, LABELS_SHA256)):
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
      raise ChecksumError(
          f"the {what} from {source} has sha256 {got}, expected {expected} (packed data of "
          f"{len(packed)} bytes, expected {MODEL_BYTES[1]}); the package content is not the pinned one")
  assets.model_path.parent.mkdir(parents=True, exist_ok=True)
  files.write_atomically(str(assets.model_path), model)
  files.write_atomically(str(assets.labels_path), labels)
  return assets


def read_label_map(path: PathLike) -> list:
  """Class names by model output index: one per line, line 0 the background (`???`)."""
  text = pathlib.Path(path).read_text(encoding="utf-8")
  return [line.strip() for line in text.rstrip("\n").split("\n")]
