"""`--help` of every `vivi-*` command: wall time of the whole process, and whether it imported
TensorFlow; `import tensorflow` alone for comparison (what a command's start costs before it)."""

import os
import subprocess
import sys
import time

from keras_vivi import __main__ as main_lib

TITLE = "Wall time of `vivi-* --help` (no TensorFlow import) vs `import tensorflow`"
REPEATS = 3
QUICK_REPEATS = 1
_HEAVY_CHECK = ("import importlib, sys\nsys.argv = [{name!r}, '--help']\ntry:\n"
                "  importlib.import_module({module!r}).run()\nfinally:\n"
                "  sys.stderr.write('TF ' + str('tensorflow' in sys.modules))\n")


def _command(name, module):
  """The console script beside this interpreter, else `python -m MODULE`."""
  script = os.path.join(os.path.dirname(sys.executable), name)
  return [script] if os.path.exists(script) else [sys.executable, "-m", module]


def _best_wall(argv, repeats):
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True, timeout=300)
    best = min(best, time.perf_counter() - start)
  return best


def run(quick=False):
  repeats = QUICK_REPEATS if quick else REPEATS
  load = os.getloadavg()[0]
  rows = ["| command | `--help` s (best of %d) | imports TensorFlow |" % repeats, "|---|---|---|"]
  for name, module in main_lib.COMMANDS.items():
    seconds = _best_wall(_command(name, module) + ["--help"], repeats)
    check = subprocess.run([sys.executable, "-c", _HEAVY_CHECK.format(name=name, module=module)],
                           capture_output=True, text=True, timeout=300)
    imported = check.stderr.rsplit("TF ", 1)[-1].strip() == "True"
    rows.append(f"| {name} | {seconds:.2f} | {'yes' if imported else 'no'} |")
    print(rows[-1], flush=True)
  seconds = _best_wall([sys.executable, "-c", "import tensorflow"], repeats)
  rows.append(f"| `python -c 'import tensorflow'` (for comparison) | {seconds:.2f} | yes |")
  print(rows[-1], flush=True)
  note = (f"Each a fresh process, console script from the venv's bin; machine load average "
          f"{load:.1f} before. Target: well under 3 s, no TensorFlow import.")
  return note + "\n\n" + "\n".join(rows)
