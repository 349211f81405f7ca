"""`python -m keras_vivi` lists every console script of setup.cfg."""

import configparser
import os
import subprocess
import sys

from keras_vivi import __main__ as main_lib
from tests.helpers.cli import REPO, run_module


def test_lists_the_console_scripts_of_setup_cfg():
  parser = configparser.ConfigParser()
  parser.read(os.path.join(REPO, "setup.cfg"))
  scripts = dict(line.split(" = ") for line in
                 parser["options.entry_points"]["console_scripts"].strip().splitlines())
  assert {name: target.split(":")[0] for name, target in scripts.items()} == main_lib.COMMANDS
  # As `python -m keras_vivi`, then whether listing imported TensorFlow (it reads docstrings only).
  code = ("import runpy, sys\ntry:\n  runpy.run_module('keras_vivi', run_name='__main__')\n"
          "except SystemExit:\n  pass\nprint('tensorflow' in sys.modules)")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=120, cwd=REPO)
  assert proc.returncode == 0, proc.stderr
  *lines, imported_tf = proc.stdout.splitlines()[1:]
  assert imported_tf == "False"
  assert [line.split()[0] for line in lines] == list(scripts)
  assert "the VTAB-1k protocol on an exported hub module." in proc.stdout
  proc = run_module("keras_vivi", "nope", timeout=120)
  assert proc.returncode == 2 and "Unknown command 'nope'" in proc.stderr
