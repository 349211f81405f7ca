"""`load_feature_extractor`: a zoo preset or hub handle as a `hub.KerasLayer`, through the cache.

Handles resolve the way tensorflow_hub resolves them, into the same cache: a module fetched
for `handle` lives in `$TFHUB_CACHE_DIR/<sha1(handle)>/` (tensorflow_hub's
compressed-module layout), so a cache filled by either is used by both. On top of that:
  - the cache is looked at first, so a cached module loads without any network access;
  - archives (local or remote `.tar.gz`) are checked against the preset's sha256 before they
    are unpacked, and the digest of what was unpacked is kept in `<sha1(handle)>.sha256`
    (written before the module appears), with the sha256 of every unpacked file; a cached
    module whose digest is not the expected one, or unknown, or one of whose files no longer
    matches its record, is fetched (or unpacked) again (offline it is an error naming the
    file and the directory to delete);
  - several threads or processes may fill the cache at once: each unpacks into its own
    temporary sibling and renames it into place only if no verified copy is there; a copy in
    place is never deleted (a stale one is renamed aside), and leftovers (of killed
    processes, set-aside copies) older than an hour are swept;
  - downloads time out after `$KERAS_VIVI_DOWNLOAD_TIMEOUT` seconds (default 60) and are
    tried 3 times;
  - with `$KERAS_VIVI_OFFLINE=1` (or `offline=True`) nothing is fetched: a module that is not
    cached is an error saying how to put it there.

This is the one resolver of remote handles: importing this module registers `ZooResolver` with
tensorflow_hub, so `hub.load(handle)` / `hub.KerasLayer(handle)` anywhere in the process (the
detector and the distillation teacher included) gets the same cache, checks and errors, with a
preset's sha256 when the handle is a preset's.
"""

import contextlib
import glob
import hashlib
import os
import socket
import shutil
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib

from absl import logging
import tensorflow as tf
import tensorflow_hub as hub
from tensorflow_hub import registry as hub_registry
from tensorflow_hub import resolver as hub_resolver

from keras_vivi import files
from keras_vivi.zoo import presets as presets_lib

OFFLINE_ENV = "KERAS_VIVI_OFFLINE"
DIGEST_SUFFIX = ".sha256"
SAVED_MODEL_FILE = "saved_model.pb"
DOWNLOAD_TIMEOUT_ENV = "KERAS_VIVI_DOWNLOAD_TIMEOUT"
DOWNLOAD_ATTEMPTS = 3
STALE_SECONDS = 3600  # leftovers of killed loaders are swept after this long


class ModuleNotCachedError(FileNotFoundError):
  """A handle that is neither cached nor fetchable (offline, or the fetch failed)."""


class ChecksumMismatchError(ValueError):
  """An archive (or the cached copy of one) whose sha256 is not the expected one."""


class CorruptArchiveError(ValueError):
  """An archive that cannot be unpacked into a SavedModel."""


def offline_mode(offline=None) -> bool:
  """`offline` if given, else whether `$KERAS_VIVI_OFFLINE` is set to a true value."""
  if offline is not None:
    return bool(offline)
  return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir() -> str:
  """The module cache: `$TFHUB_CACHE_DIR` or `--tfhub_cache_dir` as tensorflow_hub reads them,
  else `tfhub_modules` in `files.cache_root()` (not tensorflow_hub's shared temp directory,
  which anyone on the machine can write and a reboot empties)."""
  return hub_resolver.tfhub_cache_dir(
      default_cache_dir=os.path.join(files.cache_root(), "tfhub_modules"))


def _cache_key(handle):
  """The handle string tensorflow_hub hashes; local paths count by their absolute form."""
  if files.is_remote(handle):
    return handle
  return os.path.abspath(os.path.expanduser(_strip_file_scheme(handle)))


def cached_module_dir(handle) -> str:
  """Where the module of `handle` is (or would be) cached: `CACHE/<sha1(handle)>`."""
  digest = hashlib.sha1(_cache_key(handle).encode("utf8")).hexdigest()
  return os.path.join(cache_dir(), digest)


def _strip_file_scheme(handle):
  return handle[len("file://"):] if handle.startswith("file://") else handle


def _is_cached(module_dir):
  # tensorflow_hub's own test: the directory exists and is not empty.
  return os.path.isdir(module_dir) and bool(os.listdir(module_dir))


def _read_digest(module_dir):
  try:
    with open(module_dir + DIGEST_SUFFIX, encoding="utf-8") as f:
      return f.read().split()[0]
  except (OSError, IndexError):
    return None


def _recorded_files(module_dir) -> dict[str, str]:
  """{path relative to `module_dir`: sha256} recorded when its archive was unpacked ({} for a
  copy cached without a record of its files)."""
  try:
    with open(module_dir + DIGEST_SUFFIX, encoding="utf-8") as f:
      lines = f.read().splitlines()[1:]
  except OSError:
    return {}
  return {name: digest for digest, _, name in (line.partition("  ") for line in lines) if name}


def _file_digests(directory) -> dict[str, str]:
  return {os.path.relpath(os.path.join(root, name), directory):
          files.file_sha256(os.path.join(root, name))
          for root, _, names in os.walk(directory) for name in names}


def _damaged_file(module_dir) -> str | None:
  """The first file of the cached `module_dir` that is missing or differs from its record."""
  for name, digest in sorted(_recorded_files(module_dir).items()):
    path = os.path.join(module_dir, name)
    if not os.path.isfile(path):
      return f"{path} is missing"
    if files.file_sha256(path) != digest:
      return f"{path} differs from the file unpacked (sha256 {digest})"
  return None


def _populate_hint(handle, module_dir):
  return (f"To pre-populate the cache, fetch the module's archive on a machine with network "
          f"access and run keras_vivi.zoo.cache_archive({handle!r}, 'ARCHIVE.tar.gz') with "
          f"the same TFHUB_CACHE_DIR, or unpack it with `mkdir -p {module_dir} && tar -xzf "
          f"ARCHIVE.tar.gz -C {module_dir}`; or load it once online and copy the cache "
          f"directory.")


def _not_cached(handle, module_dir, reason):
  return ModuleNotCachedError(
      f"Cannot resolve handle {handle!r}: {reason}. It is not in the TF-Hub cache "
      f"{cache_dir()!r} (expected at {module_dir!r}; set TFHUB_CACHE_DIR to use another "
      f"cache). {_populate_hint(handle, module_dir)}")


def _check_digest(actual, expected, what, handle):
  if expected is not None and actual != expected:
    raise ChecksumMismatchError(
        f"{what} of handle {handle!r} has sha256 {actual}, expected {expected}: it is not the "
        "published archive (corrupted or a different version). Fetch it again, or fix the "
        "preset's sha256 if the archive was republished on purpose.")


def cache_archive(handle, archive, sha256=None) -> str:
  """Unpacks the SavedModel archive `archive` into the cache as the module of `handle`.

  This is how a machine without network access is given a remote module: copy its archive
  over and call this with the handle users will load. The archive must hold the contents of
  a SavedModel directory (`saved_model.pb`, `variables/`, ...) at its top level.

  Args:
    handle: the handle the module is known by (URL or path).
    archive: local path (or any tf.io.gfile path) of the `.tar.gz`.
    sha256: expected hex digest of `archive`; checked before anything is unpacked.

  Returns:
    The cached module directory.
  """
  actual = files.file_sha256(archive)
  _check_digest(actual, sha256, f"Archive {archive!r}", handle)
  module_dir = cached_module_dir(handle)
  os.makedirs(os.path.dirname(module_dir), exist_ok=True)
  _sweep_leftovers(module_dir)
  # Unpack beside the destination and rename: a killed process leaves no half module.
  tmp_dir = f"{module_dir}.{uuid.uuid4().hex}.tmp"
  try:
    try:
      with tf.io.gfile.GFile(archive, "rb") as f, tarfile.open(fileobj=f, mode="r:*") as tar:
        tar.extractall(tmp_dir, filter="data")
      unpacked = _file_digests(tmp_dir)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
      raise CorruptArchiveError(
          f"Archive {archive!r} of handle {handle!r} cannot be unpacked ({type(e).__name__}: "
          f"{e}); expected a tar.gz of a SavedModel directory's contents. Fetch it again.") \
          from None
    if not os.path.isfile(os.path.join(tmp_dir, SAVED_MODEL_FILE)):
      found = sorted(os.listdir(tmp_dir)) if os.path.isdir(tmp_dir) else []
      raise CorruptArchiveError(
          f"Archive {archive!r} of handle {handle!r} has no {SAVED_MODEL_FILE} at its top level "
          f"(found {found[:10]}); expected the contents of a SavedModel directory.")
    _move_into_cache(tmp_dir, module_dir, actual, archive, unpacked)
  finally:
    shutil.rmtree(tmp_dir, ignore_errors=True)
  return module_dir


def _move_into_cache(tmp_dir, module_dir, digest, archive, unpacked):
  """Renames `tmp_dir` to `module_dir` unless an intact copy with `digest` is already there.

  A copy with another digest (or none), or a damaged one, is renamed aside, never deleted: a
  loader may be reading it. The digest record (with `unpacked`, {file: sha256}) is written
  while `module_dir` is absent, before the rename.
  """
  for _ in range(100):
    if _is_cached(module_dir):
      if _read_digest(module_dir) == digest and not _damaged_file(module_dir):
        return  # Another loader put the same module there.
      try:
        os.rename(module_dir, f"{module_dir}.{uuid.uuid4().hex}.old")
      except FileNotFoundError:
        pass
      continue
    _write_digest(module_dir, digest, archive, unpacked)
    try:
      os.rename(tmp_dir, module_dir)
      return
    except OSError:
      if not os.path.isdir(module_dir):
        raise  # Not a peer's copy in the way.
  raise RuntimeError(f"Could not move a module into {module_dir!r}: other loaders keep "
                     "replacing it with other archives of the same handle.")


def _write_digest(module_dir, digest, archive, unpacked):
  files.write_atomically(module_dir + DIGEST_SUFFIX, "".join(
      [f"{digest}  {archive}\n"] + [f"{d}  {name}\n" for name, d in sorted(unpacked.items())]))


def _sweep_leftovers(module_dir):
  """Removes temporary and set-aside copies of `module_dir` older than `STALE_SECONDS`."""
  for path in glob.glob(f"{glob.escape(module_dir)}.*.tmp") + \
      glob.glob(f"{glob.escape(module_dir)}.*.old"):
    try:
      if time.time() - os.path.getmtime(path) < STALE_SECONDS:
        continue
      if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
      else:
        os.remove(path)
    except OSError:
      pass  # Swept by another loader meanwhile.


def download_timeout() -> float:
  """Seconds a download may stall: `$KERAS_VIVI_DOWNLOAD_TIMEOUT` (default 60)."""
  text = os.environ.get(DOWNLOAD_TIMEOUT_ENV, "").strip()
  try:
    value = float(text) if text else 60.0
  except ValueError:
    value = -1.0
  if not value > 0:
    raise ValueError(f"${DOWNLOAD_TIMEOUT_ENV} must be a positive number of seconds, got "
                     f"{text!r}.")
  return value


def _download(url, path):
  """Copies `url` (gs:// through tf.io.gfile, http(s) through urllib) to the local `path`."""
  if url.startswith("gs://"):
    tf.io.gfile.copy(url, path, overwrite=True)
    return
  with urllib.request.urlopen(url, timeout=download_timeout()) as response, \
      open(path, "wb") as f:
    shutil.copyfileobj(response, f)


_socket_lock = threading.Lock()
_socket_state = {"users": 0, "previous": None}


@contextlib.contextmanager
def _socket_timeout():
  """A default socket timeout while tensorflow_hub downloads (it sets none itself)."""
  with _socket_lock:
    if _socket_state["users"] == 0:
      _socket_state["previous"] = socket.getdefaulttimeout()
      if _socket_state["previous"] is None:
        socket.setdefaulttimeout(download_timeout())
    _socket_state["users"] += 1
  try:
    yield
  finally:
    with _socket_lock:
      _socket_state["users"] -= 1
      if _socket_state["users"] == 0:
        socket.setdefaulttimeout(_socket_state["previous"])


def _with_retries(fetch, handle):
  """`fetch()`, tried `DOWNLOAD_ATTEMPTS` times unless the server refused for good (4xx)."""
  for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
    try:
      return fetch()
    except (ChecksumMismatchError, CorruptArchiveError):
      raise
    except Exception as e:  # pylint: disable=broad-except
      final = isinstance(e, urllib.error.HTTPError) and e.code < 500
      if final or attempt == DOWNLOAD_ATTEMPTS:
        raise
      logging.warning("Fetching %s failed (%s: %s); attempt %d of %d in %d s.", handle,
                      type(e).__name__, e, attempt + 1, DOWNLOAD_ATTEMPTS, attempt)
      time.sleep(attempt)


def _resolve_local(handle, path, sha256):
  if os.path.isdir(path):
    return path
  module_dir = cached_module_dir(handle)
  if os.path.isfile(path):
    if not presets_lib.is_archive(path):
      raise ValueError(f"Handle {handle!r} is a file but not an archive "
                       f"({', '.join(presets_lib.ARCHIVE_SUFFIXES)}) or a SavedModel directory.")
    actual = files.file_sha256(path)
    _check_digest(actual, sha256, f"Archive {path!r}", handle)
    if _is_cached(module_dir) and _read_digest(module_dir) == actual:
      damaged = _damaged_file(module_dir)
      if not damaged:
        return module_dir
      logging.warning("Cached module %s of %s is damaged (%s); unpacking %s again.",
                      module_dir, handle, damaged, path)
    return cache_archive(handle, path, sha256=actual)
  if _is_cached(module_dir):
    # The archive is gone but its unpacked copy is still cached.
    return _verified_cache(module_dir, sha256, handle,
                           f"its archive {path!r} no longer exists to unpack again")
  raise _not_cached(handle, module_dir, f"{path!r} does not exist")


def _stale_cache(module_dir, cached, sha256, handle, reason):
  found = (f"has sha256 {cached}, expected {sha256}: it is not the published archive (stale "
           "or another version)" if cached else
           f"has no record of its archive's sha256 (cached by tensorflow_hub or by hand), "
           f"expected {sha256}: it cannot be verified")
  return ChecksumMismatchError(
      f"Cached module {module_dir!r} of handle {handle!r} {found}, and {reason}. "
      f"Delete it (`rm -rf {module_dir} {module_dir}{DIGEST_SUFFIX}`) and load the handle "
      f"once online (a mismatched cached module is then fetched again by itself). "
      f"{_populate_hint(handle, module_dir)} Or fix the preset's sha256 if the archive was "
      "republished on purpose.")


def _cache_matches(module_dir, sha256, handle):
  """Whether the cached `module_dir` may be used: no `sha256` is expected, or it is recorded;
  and its files are those recorded when it was unpacked."""
  del handle
  return (sha256 is None or _read_digest(module_dir) == sha256) and not _damaged_file(module_dir)


def _verified_cache(module_dir, sha256, handle, reason):
  """`module_dir` after checking the digests recorded when its archive was unpacked."""
  if sha256 is not None and _read_digest(module_dir) != sha256:
    raise _stale_cache(module_dir, _read_digest(module_dir), sha256, handle, reason)
  damaged = _damaged_file(module_dir)
  if damaged:
    raise ChecksumMismatchError(
        f"Cached module {module_dir!r} of handle {handle!r} is damaged ({damaged}), and "
        f"{reason}. Delete it (`rm -rf {module_dir} {module_dir}{DIGEST_SUFFIX}`) and load the "
        f"handle once online. {_populate_hint(handle, module_dir)}")
  return module_dir


def _resolve_remote(handle, sha256, offline):
  module_dir = cached_module_dir(handle)
  if _is_cached(module_dir):
    if offline:
      return _verified_cache(module_dir, sha256, handle,
                             f"it cannot be fetched again offline (${OFFLINE_ENV} is set)")
    if _cache_matches(module_dir, sha256, handle):
      return module_dir
    # Replaced (set aside, not deleted) once the new archive is verified and unpacked.
    damaged = _damaged_file(module_dir)
    logging.warning("Cached module %s of %s %s; fetching it again.", module_dir, handle,
                    f"is damaged ({damaged})" if damaged else
                    f"has sha256 {_read_digest(module_dir)}, expected {sha256}")
    if sha256 is None:  # tensorflow_hub's fetch would take the damaged copy as cached
      os.rename(module_dir, f"{module_dir}.{uuid.uuid4().hex}.old")
  elif offline:
    raise _not_cached(handle, module_dir, f"offline (${OFFLINE_ENV} is set)")
  try:
    if sha256 is not None:
      # Fetch the archive ourselves: tensorflow_hub unpacks while downloading and keeps no
      # bytes to check.
      with tempfile.TemporaryDirectory() as tmp:
        archive = os.path.join(tmp, "module.tar.gz")
        _with_retries(lambda: _download(handle, archive), handle)
        return cache_archive(handle, archive, sha256=sha256)
    with _socket_timeout(), _tensorflow_hub_resolvers():
      return _with_retries(lambda: hub.resolve(handle), handle)
  except (ChecksumMismatchError, CorruptArchiveError):
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise _not_cached(handle, module_dir,
                      f"fetching it failed ({type(e).__name__}: {str(e)[:300]})") from e


def resolve_handle(handle, sha256=None, offline=None) -> str:
  """Local SavedModel directory for `handle`, fetching and caching it when needed.

  Args:
    handle: a TF-Hub / Kaggle Models URL, an http(s):// or gs:// URL of a `.tar.gz` (or a
      SavedModel directory on gs:// or another tf.io.gfile filesystem such as ram://, read in
      place), a local SavedModel directory or `.tar.gz`, or `file://` of either.
    sha256: expected hex digest of the archive `handle` points to.
    offline: never fetch; default `$KERAS_VIVI_OFFLINE`.

  Returns:
    A path `hub.load` reads.

  Raises:
    ModuleNotCachedError: not cached and not fetchable (names the cache and how to fill it).
    ChecksumMismatchError: the archive or its cached copy has another sha256.
    CorruptArchiveError: the archive cannot be unpacked into a SavedModel.
  """
  if not isinstance(handle, str) or not handle:
    raise ValueError(f"handle must be a non-empty URL or path, got {handle!r}.")
  other_filesystem = "://" in handle and not files.has_url_scheme(handle)  # ram://, s3://, ...
  if (handle.startswith("gs://") or other_filesystem) and not presets_lib.is_archive(handle):
    # A SavedModel directory on GCS (or another tf.io.gfile filesystem) is read in place, as
    # tensorflow_hub does.
    if handle.startswith("gs://") and offline_mode(offline):
      raise _not_cached(handle, cached_module_dir(handle),
                        "a gs:// directory is read in place, which needs network access")
    return handle
  if files.is_remote(handle):
    return _resolve_remote(handle, sha256, offline_mode(offline))
  return _resolve_local(handle, os.path.expanduser(_strip_file_scheme(handle)), sha256)


_BYPASS = threading.local()


@contextlib.contextmanager
def _tensorflow_hub_resolvers():
  """Within: `hub.resolve` uses tensorflow_hub's own resolvers (the fetch behind ours)."""
  previous, _BYPASS.on = getattr(_BYPASS, "on", False), True
  try:
    yield
  finally:
    _BYPASS.on = previous


def _preset_sha256(handle):
  """The sha256 a registered preset gives for `handle`, if any."""
  for name in presets_lib.list_presets(available_only=True):
    preset = presets_lib.get_preset(name)
    if preset.handle == handle and preset.sha256:
      return preset.sha256
  return None


class ZooResolver(hub_resolver.Resolver):
  """tensorflow_hub resolver of remote handles through `resolve_handle` (cache first, sha256
  of presets, offline mode, timeouts and retries, errors naming the cache)."""

  def is_supported(self, handle) -> bool:
    return (isinstance(handle, str) and files.is_remote(handle)
            and not getattr(_BYPASS, "on", False))

  def __call__(self, handle):
    return resolve_handle(handle, sha256=_preset_sha256(handle))


# tensorflow_hub asks its resolvers newest first: this one before its defaults.
hub_registry.resolver.add_implementation(ZooResolver())


class PresetNotAvailableError(LookupError):
  """A preset that describes weights nobody has published yet."""


def load_feature_extractor(name_or_handle, trainable=False, offline=None,
                           **kwargs) -> hub.KerasLayer:
  """An image feature extractor from the zoo, as a tf_keras layer.

  ```python
  features = keras_vivi.load_feature_extractor("vivi_objects", trainable=True)
  model = tf_keras.Sequential([features, tf_keras.layers.Dense(10)])
  ```

  Args:
    name_or_handle: a preset name (`keras_vivi.zoo.list_presets()`) or a handle (see
      `resolve_handle`).
    trainable: fine-tune the weights (batch-norm statistics update in training mode).
    offline: never fetch, use only `$TFHUB_CACHE_DIR`; default `$KERAS_VIVI_OFFLINE`.
    **kwargs: passed to `hub.KerasLayer` (e.g. `name`).

  Returns:
    A `hub.KerasLayer` mapping float32 images `[batch, height, width, 3]` with values in
    the preset's input range ([0, 1]) to features `[batch, output_dim]`.

  Raises:
    UnknownPresetError: neither a registered name nor a handle (lists the known names).
    PresetNotAvailableError: the preset has no published weights (says how to make them).
    and the errors of `resolve_handle`.
  """
  return hub.KerasLayer(resolve(name_or_handle, offline), trainable=trainable, **kwargs)


def resolve(name_or_handle, offline=None) -> str:
  """The local module directory of a preset name or a handle (see `load_feature_extractor`)."""
  if not isinstance(name_or_handle, str) or not name_or_handle:
    raise ValueError(f"name_or_handle must be a preset name or a handle, got "
                     f"{name_or_handle!r}.")
  if name_or_handle not in presets_lib.list_presets() and \
      presets_lib.looks_like_handle(name_or_handle):
    return resolve_handle(name_or_handle, offline=offline)
  preset = presets_lib.get_preset(name_or_handle)  # Unknown names fail here.
  if not preset.available:
    steps = "\n  ".join(preset.produce)
    raise PresetNotAvailableError(
        f"Preset {preset.name!r} ({preset.description}) has no published weights. Train and "
        f"publish them:\n  {steps}\nthen register the printed entry (a presets JSON file in "
        f"${presets_lib.PRESETS_ENV}). Presets with weights: "
        f"{', '.join(presets_lib.list_presets(available_only=True)) or 'none'}.")
  return resolve_handle(preset.handle, sha256=preset.sha256, offline=offline)
