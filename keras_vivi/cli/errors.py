"""How every `vivi-*` command ends on an error it expects: bad flags, missing or damaged inputs, a
full disk, a path it may not write, a directory another run holds. Such an error is one line on
stderr naming the path or value and the fix, with exit code 2; `--debug` shows its traceback.
Any other error keeps Python's traceback.

  def main(argv): ...
  def run(): errors.run(main)
"""

import errno
import math
import sys
import traceback

from absl import app
from absl import flags

from keras_vivi import files

EXIT_CODE = 2
_DEBUG = flags.DEFINE_bool("debug", False, "Show the traceback of an error instead of the one "
                           "line that names the path or value and the fix.")

# Errors of keras_vivi's own modules that a user's input causes (checked once those are loaded).
_EXPECTED_IN = (("keras_vivi.detector.detector", "DetectorLoadError"),
                ("keras_vivi.zoo.loader", "PresetNotAvailableError"),
                ("keras_vivi.data.video", "VideoDecodeError"))
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)


def _os_message(error: OSError) -> str:
  if error.errno is None:  # raised by keras_vivi itself: its message says it all
    return " ".join(str(error).split())
  where = " → ".join(str(p) for p in (error.filename, error.filename2) if p) or "a file"
  if error.errno in _DISK_FULL:
    return (f"{where}: no space left on the device; free some space (or choose another output) "
            f"and run the same command again: finished work is kept.")
  if error.errno in _NOT_ALLOWED:
    return (f"{where}: {error.strerror or 'not allowed'}; choose a path this user may write "
            f"(or change its permissions) and run again.")
  if isinstance(error, FileNotFoundError):
    return f"{where}: no such file or directory; check the path."
  return str(error)


def _tf_message(error) -> str | None:
  """The line of a `tf.errors` error of a user path (TensorFlow's file system), else None."""
  tf = sys.modules.get("tensorflow")
  if tf is None or not isinstance(error, tf.errors.OpError):
    return None
  text = " ".join(str(error.message).split())
  if "No space left on device" in text:
    return (f"{text}: no space left on the device; free some space (or choose another output) "
            f"and run the same command again: finished work is kept.")
  if isinstance(error, tf.errors.PermissionDeniedError):
    return f"{text}; choose a path this user may write (or change its permissions)."
  if isinstance(error, (tf.errors.NotFoundError, tf.errors.DataLossError,
                        tf.errors.AlreadyExistsError, tf.errors.FailedPreconditionError)):
    return text
  return None


def message(error: BaseException) -> str | None:
  """The one line for an error a command expects; None for any other."""
  if isinstance(error, OSError):
    return _os_message(error)
  if isinstance(error, (app.UsageError, ValueError, files.DirectoryLockedError,
                        flags.Error)):
    return " ".join(str(error).split())
  for module, name in _EXPECTED_IN:
    if module in sys.modules and isinstance(error, getattr(sys.modules[module], name)):
      return " ".join(str(error).split())
  yaml = sys.modules.get("yaml")
  if yaml is not None and isinstance(error, yaml.YAMLError):
    return f"not valid YAML: {' '.join(str(error).split())}"
  return _tf_message(error)


def positive_finite(*holders) -> None:
  """Validates float flags: a finite number > 0 (inf, nan and 0 are refused at parse time)."""
  for holder in holders:
    flags.register_validator(holder.name, lambda v: v is None or (math.isfinite(v) and v > 0),
                             message="expected a finite number > 0")


def fail(line: str) -> None:
  sys.stderr.write(f"Error: {line}\n")
  sys.stderr.flush()
  sys.exit(EXIT_CODE)


def _parse_flags(argv):
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(f"{e} (see --helpshort)")


def run(main) -> None:
  """`app.run(main)` with expected errors as one line and exit code 2 (see the module doc)."""
  def guarded(argv):
    try:
      return main(argv)
    except Exception as e:  # noqa: BLE001 — sorted into expected and unexpected just below
      line = message(e)
      if line is None:
        raise
      if _DEBUG.value:
        traceback.print_exc()
      fail(line)
  app.run(guarded, flags_parser=_parse_flags)
