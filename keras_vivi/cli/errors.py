"""How every `vivi-*` command starts, and ends on an error it expects.

Start: `--help` (also `-h`, `--helpshort`) prints the command's description and its own flags and
exits 0 before anything heavy is imported (`--helpfull` lists every flag defined). Otherwise, once
the flags parse, one line on stderr ("vivi-train: loading TensorFlow…") comes before `main`
imports TensorFlow, and TF_CPP_MIN_LOG_LEVEL defaults to 3 (TensorFlow's C++ log off: no CUDA /
oneDNN start-up lines) unless it is set already or `--debug` is given.

End: bad flags, missing or damaged inputs, a full disk, a path it may not write, a directory
another run holds. Such an error is one line on stderr naming the path or value and the fix, with
exit code 2; `--debug` shows its traceback (and TensorFlow's log). Any other error keeps Python's
traceback.

  def main(argv): ...   # imports TensorFlow (and modules that do) inside
  def run(): errors.run(main)
"""

import errno
import math
import os
import sys
import traceback

from absl import app
from absl import flags

from keras_vivi import files

EXIT_CODE = 2
_DEBUG = flags.DEFINE_bool("debug", False, "Show the traceback of an error instead of the one "
                           "line that names the path or value and the fix, and TensorFlow's "
                           "C++ log (TF_CPP_MIN_LOG_LEVEL is left as it is).")
_HELP = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")
LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LOG_LEVEL = "3"  # errors too: `cuInit` failing on a machine without a GPU is one

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


def _module_name(main) -> str:
  """The module defining `main`, by its import name also when it runs as `python -m`."""
  if main.__module__ != "__main__":
    return main.__module__
  spec = getattr(sys.modules["__main__"], "__spec__", None)
  return spec.name if spec else "__main__"


def command_name(main) -> str:
  """The console script of `main`'s module (vivi-train, ...), else the program's file name."""
  from keras_vivi.__main__ import COMMANDS
  name = _module_name(main)
  return next((c for c, m in COMMANDS.items() if m == name), os.path.basename(sys.argv[0]))


def help_text(main) -> str:
  """The command's description and its own flags (absl's short help lists the script's only)."""
  # absl files a flag under the module that defined it; a module run as `python -m` is argv[0].
  key = sys.argv[0] if main.__module__ == "__main__" else main.__module__
  own = [flags.FLAGS.module_help(module).lstrip("\n").split("\n", 1)[-1]
         for module in (key, __name__) if flags.FLAGS.get_key_flags_for_module(module)]
  doc = (sys.modules[main.__module__].__doc__ or "").strip("\n")
  return (f"{doc}\n\nflags:\n" + "\n".join(own) +
          "\n\nTry --helpfull to get a list of all flags.\n")


def _wants_help(argv) -> bool:
  args = argv[1:argv.index("--")] if "--" in argv else argv[1:]
  return any(a in _HELP for a in args)


def start_up(command: str, debug: bool, environ=os.environ) -> None:
  """Quiets TensorFlow's C++ log unless asked not to, and says what the pause is for."""
  if not debug:
    environ.setdefault(LOG_LEVEL_ENV, QUIET_LOG_LEVEL)
  sys.stderr.write(f"{command}: loading TensorFlow…\n")
  sys.stderr.flush()


def run(main) -> None:
  """`app.run(main)` with the start and the expected errors of the module doc."""
  if _wants_help(sys.argv):
    sys.stdout.write(help_text(main))
    sys.exit(0)

  def guarded(argv):
    start_up(command_name(main), _DEBUG.value)
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
