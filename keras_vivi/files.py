"""How keras_vivi writes and checks files, on local disks and every `tf.io.gfile` filesystem
(gs://, ram://, ...), defined once for every stage.

  write_atomically(path, data)  bytes or str: a reader sees the old file or the new one, never a part
  save_figure(figure, path)     a PNG, written the same way
  file_sha256(path)
  read_json(path, recovery)     a damaged file is an error naming it and how to recover
  check_same_settings(...)      a resumable output made with other settings is refused, naming them
  is_remote(handle)             http(s):// and gs:// handles
  cache_root()                  where downloads are cached
  DirectoryLock(path, what)     one process at a time writes a run or output directory
  glob(pattern)                 files matching a glob (`**` spans folders) or under a folder
  local_copy(path, max_bytes)   a bounded local copy of a remote file, for readers that need one
  copy_tree(source, dest)       a folder copied file by file, across filesystems
  join, parent, absolute        path arithmetic that keeps gs://, ram://, ... intact
  using(filesystem)             the calls above go through another filesystem, e.g. `BeamFileSystems`

Everything goes through tf.io.gfile unless `using` names another filesystem: Beam pipelines use
`BeamFileSystems`, which reaches gs:// through google-cloud-storage (and so an emulator named by
STORAGE_EMULATOR_HOST, which TensorFlow's own GCS client cannot be pointed at).
"""

import contextlib
import contextvars
import fnmatch
import hashlib
import errno
import io
import json
import os
import posixpath
import re
import socket
import sys
import tempfile
import time
import uuid
from typing import Any, Dict, Mapping, Optional, Tuple

HTTP_SCHEMES = ("http://", "https://")
REMOTE_SCHEMES = HTTP_SCHEMES + ("gs://",)
URL_SCHEMES = REMOTE_SCHEMES + ("file://",)
_TEMPORARY = re.compile(r"(\.[0-9a-f]{32})?\.tmp$")


def cache_root() -> str:
  """Where keras_vivi caches downloads: `$KERAS_VIVI_CACHE`, else `$XDG_CACHE_HOME/keras_vivi`,
  else `~/.cache/keras_vivi`."""
  if os.environ.get("KERAS_VIVI_CACHE"):
    return os.path.expanduser(os.environ["KERAS_VIVI_CACHE"])
  xdg = os.environ.get("XDG_CACHE_HOME")
  return os.path.join(os.path.expanduser(xdg) if xdg else os.path.expanduser("~/.cache"),
                      "keras_vivi")


_FILESYSTEM: contextvars.ContextVar = contextvars.ContextVar("keras_vivi_filesystem", default=None)


def _gfile():
  override = _FILESYSTEM.get()
  if override is not None:
    return override
  # Imported on first use: the light zoo registry (`import keras_vivi`) needs the URL rules only.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def filesystem():
  """The filesystem this module's calls go through here: tf.io.gfile unless `using` names another.
  It answers tf.io.gfile's calls (GFile, exists, isdir, glob, walk, rename, remove, makedirs)."""
  return _gfile()


@contextlib.contextmanager
def using(filesystem_):
  """Within the block (and this context: threads started with `contextvars.copy_context()`), this
  module's calls go through `filesystem_` instead of tf.io.gfile."""
  token = _FILESYSTEM.set(filesystem_)
  try:
    yield filesystem_
  finally:
    _FILESYSTEM.reset(token)


class BeamFileSystems:
  """tf.io.gfile's calls answered by Apache Beam's `FileSystems`: what a Beam worker reaches (local,
  gs:// through google-cloud-storage, s3://, hdfs://), with no compression guessed from names."""

  def __init__(self):
    from apache_beam.io.filesystem import CompressionTypes  # pylint: disable=g-import-not-at-top
    from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
    self._fs, self._raw = FileSystems, CompressionTypes.UNCOMPRESSED

  def GFile(self, path: str, mode: str = "r"):  # noqa: N802 — tf.io.gfile's name
    if mode not in ("r", "rb", "w", "wb"):
      raise ValueError(f"mode must be one of r, rb, w, wb, got {mode!r}")
    path = os.fspath(path)
    if mode.startswith("r"):
      raw = self._fs.open(path, compression_type=self._raw)
    else:
      raw = self._fs.create(path, compression_type=self._raw)
    return raw if "b" in mode else io.TextIOWrapper(raw, encoding="utf-8")

  def exists(self, path: str) -> bool:
    return self._fs.exists(os.fspath(path))

  def glob(self, pattern: str):
    from apache_beam.io.filesystem import BeamIOError  # pylint: disable=g-import-not-at-top
    try:
      (result,) = self._fs.match([os.fspath(pattern)])
    except BeamIOError:  # a bucket or folder that does not exist
      return []
    return [m.path for m in result.metadata_list]

  def isdir(self, path: str) -> bool:
    path = os.fspath(path)
    if is_local(path):
      return os.path.isdir(path)
    # Object stores have no folders: a prefix with objects under it is one.
    return bool(self.glob(path.rstrip("/") + "/**"))

  def walk(self, top: str):
    """Yields `(folder, [], names)` for every file under `top` (object stores list by prefix)."""
    by_folder: Dict[str, list] = {}
    for path in self.glob(os.fspath(top).rstrip("/") + "/**"):
      folder, name = path.rsplit("/", 1)
      by_folder.setdefault(folder, []).append(name)
    for folder in sorted(by_folder):
      yield folder, [], sorted(by_folder[folder])

  def rename(self, source: str, destination: str, overwrite: bool = False) -> None:
    if not overwrite and self.exists(destination):
      raise FileExistsError(errno.EEXIST, "file exists", destination)
    if overwrite and self.exists(destination):
      self.remove(destination)
    self._fs.rename([os.fspath(source)], [os.fspath(destination)])

  def remove(self, path: str) -> None:
    self._fs.delete([os.fspath(path)])

  def makedirs(self, path: str) -> None:
    path = os.fspath(path)
    if is_local(path):
      os.makedirs(path, exist_ok=True)
    # Object stores need no folder before a file is written under it.


_GLOB_CHARS = re.compile(r"[*?\[]")


def join(directory: str, *names: str) -> str:
  """`os.path.join` for local paths; '/'-joined for paths with a scheme (gs://, ram://)."""
  directory = os.fspath(directory)
  return posixpath.join(directory, *names) if "://" in directory else os.path.join(directory, *names)


def parent(path: str) -> str:
  """The folder holding `path`; for paths with a scheme, `gs://b/x/y` → `gs://b/x` and a top-level
  `ram://x` → `ram://` (never the bare scheme `ram:`, which is a local relative name)."""
  path = os.fspath(path).rstrip("/")
  if "://" not in path:
    return os.path.dirname(path)
  scheme, rest = path.split("://", 1)
  return f"{scheme}://{posixpath.dirname(rest)}"


def absolute(path: str) -> str:
  """A local path made absolute; a path with a scheme as it is."""
  path = os.fspath(path)
  return path if "://" in path else os.path.abspath(path)


def is_local(path: str) -> bool:
  """Whether `path` is a plain local path (no scheme: file:// goes through tf.io.gfile too)."""
  return "://" not in os.fspath(path)


def glob(pattern: str):
  """Sorted files (not folders) matching `pattern`, through `filesystem()`: a folder means every
  file under it; `**` spans any number of folders (`videos/**/*.mp4` matches `videos/a.mp4` too);
  `*`, `?` and `[…]` stay within one folder name."""
  fs, pattern = _gfile(), os.fspath(pattern)
  if not _GLOB_CHARS.search(pattern):
    if fs.isdir(pattern):
      pattern = join(pattern.rstrip("/"), "**")
    else:
      return [pattern] if fs.exists(pattern) else []
  parts = pattern.split("/")
  fixed = next(i for i, part in enumerate(parts) if _GLOB_CHARS.search(part))
  if "**" not in pattern:
    return sorted(p for p in fs.glob(pattern) if not fs.isdir(p))
  top = "/".join(parts[:fixed]) or "."
  regex = re.compile(_translate("/".join(parts[fixed:])))
  found = []
  for folder, _, names in fs.walk(top):
    for name in names:
      path = join(folder, name)
      relative = (path[len(top.rstrip("/")):].lstrip("/") if "://" in top
                  else os.path.relpath(path, top))
      if regex.fullmatch(relative):
        found.append(path)
  return sorted(found)


def _translate(pattern: str) -> str:
  """A `glob` pattern relative to its fixed folder, as a regular expression."""
  out, i = [], 0
  while i < len(pattern):
    if pattern.startswith("**/", i):
      out.append("(?:.*/)?")
      i += 3
    elif pattern.startswith("**", i):
      out.append(".*")
      i += 2
    elif pattern[i] == "*":
      out.append("[^/]*")
      i += 1
    elif pattern[i] == "?":
      out.append("[^/]")
      i += 1
    elif pattern[i] == "[" and "]" in pattern[i + 1:]:
      end = pattern.index("]", i + 2 if pattern[i + 1:i + 2] == "]" else i + 1)
      out.append(fnmatch.translate(pattern[i:end + 1])[4:-3])  # the class alone, as fnmatch reads it
      i = end + 1
    else:
      out.append(re.escape(pattern[i]))
      i += 1
  return "".join(out)


def copy_tree(source: str, destination: str, last: Optional[str] = None) -> None:
  """Copies the folder `source` to `destination` (not yet there), file by file through
  `filesystem()`: from and to any filesystem it reaches. The file `last` of the top folder (the
  marker that says the folder is complete) is copied after all others. Symbolic links are copied as
  what they point to; callers that must not follow them check first."""
  fs, source = _gfile(), os.fspath(source).rstrip("/")
  for folder, _, names in fs.walk(source):
    relative = folder[len(source):].lstrip("/")
    target = join(destination, relative) if relative else destination
    fs.makedirs(target)
    for name in names:
      if not (name == last and not relative):
        fs.copy(join(folder, name), join(target, name), overwrite=False)
  if last is not None and fs.exists(join(source, last)):
    fs.copy(join(source, last), join(destination, last), overwrite=False)


def remove_tree(path: str) -> None:
  """Removes the folder `path` and everything in it, if it exists (through `filesystem()`)."""
  fs = _gfile()
  if not fs.exists(path):
    return
  try:
    fs.rmtree(path)
  except Exception:  # noqa: BLE001 — a filesystem without recursive removal (ram://)
    for folder, _, names in list(fs.walk(path))[::-1]:
      for name in names:
        fs.remove(join(folder, name))
      fs.remove(folder)


@contextlib.contextmanager
def local_copy(path: str, max_bytes: int):
  """A local file (in the system's temporary folder) with the bytes of `path`, read through
  `filesystem()`, for readers that need a local file; removed after the block. A file of more than
  `max_bytes` raises ValueError naming it, and nothing of it is kept."""
  suffix = posixpath.splitext(os.fspath(path))[1][:16]
  fd, local = tempfile.mkstemp(prefix="keras_vivi_copy_", suffix=suffix)
  try:
    with os.fdopen(fd, "wb") as out, _gfile().GFile(path, "rb") as f:
      copied = 0
      for block in iter(lambda: f.read(1 << 22), b""):
        copied += len(block)
        if copied > max_bytes:
          raise ValueError(f"{path} has more than {max_bytes} bytes, the most a local copy may hold")
        out.write(block)
    yield local
  finally:
    os.remove(local)


def is_remote(handle: str) -> bool:
  """Whether `handle` names a module or file behind http(s):// or gs://."""
  return handle.startswith(REMOTE_SCHEMES)


def has_url_scheme(text: str) -> bool:
  """Whether `text` starts with one of `URL_SCHEMES` (file:// included)."""
  return text.startswith(URL_SCHEMES)


def temporary_path(path: str) -> str:
  """A sibling of `path` that holds it while it is written: unique, so two writers of one path
  never write into each other's file."""
  return f"{path}.{uuid.uuid4().hex}.tmp"


def final_name_of(name: str) -> Optional[str]:
  """The file name whose `temporary_path` (or a plain `NAME.tmp`) `name` is,
  or None: how a rerun finds what a killed writer left behind."""
  match = _TEMPORARY.search(name)
  return name[:match.start()] if match else None


def write_atomically(path: str, data) -> None:
  """Writes `data` (bytes or str) to `path` through a `temporary_path` renamed when complete."""
  temporary = temporary_path(path)
  try:
    with _gfile().GFile(temporary, "wb" if isinstance(data, bytes) else "w") as f:
      f.write(data)
    _gfile().rename(temporary, path, overwrite=True)
  except BaseException:
    if _gfile().exists(temporary):
      _gfile().remove(temporary)
    raise


def write_json(path: str, value: Any, indent: int = 1) -> None:
  write_atomically(path, json.dumps(value, indent=indent) + "\n")


def save_figure(figure, path: str, dpi: int = 100):
  """Writes `figure` as a PNG to `path` (atomically); returns `figure`."""
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=dpi)
  write_atomically(path, buffer.getvalue())
  return figure


def file_sha256(path: str) -> str:
  """Hex sha256 of the file at `path`."""
  digest = hashlib.sha256()
  with _gfile().GFile(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def read_json(path: str, recovery: str) -> dict:
  """The JSON object in `path`; a file that does not hold one raises ValueError naming it, what
  is wrong and `recovery` (what the user can do)."""
  with _gfile().GFile(path) as f:
    text = f.read()
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is damaged (not valid JSON: {e}); {recovery}") from None
  if not isinstance(value, dict):
    raise ValueError(f"{path} is damaged (it holds a {type(value).__name__}, not an object); "
                     f"{recovery}")
  return value


def _flatten(value, prefix="") -> Dict[str, Any]:
  if isinstance(value, Mapping) and value:
    return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
  return {prefix[:-1]: value}


def _short(value, limit=60) -> str:
  text = repr(value)
  return text if len(text) <= limit else text[:limit - 1] + "…"


def differing_settings(recorded: Mapping, wanted: Mapping) -> Dict[str, Tuple[Any, Any]]:
  """{dotted field: (recorded value, wanted value)} of the fields where two settings dicts differ."""
  old, new = _flatten(recorded), _flatten(wanted)
  return {key: (old.get(key), new.get(key)) for key in sorted(set(old) | set(new))
          if old.get(key) != new.get(key)}


def check_same_settings(recorded: Mapping, wanted: Mapping, where: str, what: str,
                        remedy: str) -> None:
  """Raises ValueError, naming the differing fields, when an output's `recorded` settings are not
  the `wanted` ones: `"{where} holds {what} (field: old → new, ...); {remedy}"`."""
  differences = differing_settings(recorded, wanted)
  if differences:
    fields = ", ".join(f"{key}: {_short(a)} → {_short(b)}" for key, (a, b) in differences.items())
    raise ValueError(f"{where!r} holds {what} ({fields}); {remedy}")


LOCK_FILE = ".vivi.lock"


class DirectoryLockedError(RuntimeError):
  """Another live process holds the directory's lock; the message names it."""


class DirectoryLock:
  """An exclusive lock of a directory that one process writes (a run's model_dir, a prepare
  output), held from `acquire` to `release` (or as a context manager).

  Local directories: `DIR/.vivi.lock` holds the owner's pid, host and command, under an
  `fcntl.flock` that the kernel drops when the owner dies, so a lock left by a killed process is
  taken over. The file is removed on release, and a directory the lock created is removed again
  if nothing else was written to it: a failed start changes nothing. Directories with a scheme
  (gs://, ram://) have no such lock; they are written without one.
  """

  def __init__(self, directory: str, what: str):
    self.directory, self.what = os.fspath(directory), what
    self.path = os.path.join(self.directory, LOCK_FILE)
    self._fd: Optional[int] = None
    self._created = False

  def acquire(self) -> "DirectoryLock":
    """Takes the lock; raises `DirectoryLockedError` naming the owner if another process has it."""
    if not is_local(self.directory) or self._fd is not None:
      return self
    import fcntl  # pylint: disable=g-import-not-at-top  # POSIX only
    if not os.path.isdir(self.directory):
      os.makedirs(self.directory)
      self._created = True
    try:
      while True:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
          fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
          owner = os.read(fd, 4096).decode("utf-8", "replace").strip()
          os.close(fd)
          if e.errno not in (errno.EAGAIN, errno.EACCES):
            raise
          raise DirectoryLockedError(
              f"{self.directory} is in use by another {self.what} ({owner or 'owner unknown'}); "
              f"wait for it to end (or stop it), or use another directory.") from None
        # The owner before us may have removed the file between our open and our lock.
        try:
          same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
          same = False
        if same:
          break
        os.close(fd)
      os.ftruncate(fd, 0)
      os.write(fd, (f"pid {os.getpid()} on {socket.gethostname()} since "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)[:500]}\n"
                    ).encode("utf-8"))
    except BaseException:
      self._remove_created()
      raise
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is None:
      return
    try:
      os.remove(self.path)
    except FileNotFoundError:
      pass
    os.close(self._fd)
    self._fd = None
    self._remove_created()

  def _remove_created(self) -> None:
    if self._created:
      self._created = False
      try:
        os.rmdir(self.directory)  # only if nothing else was written to it
      except OSError:
        pass

  def __enter__(self) -> "DirectoryLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()
