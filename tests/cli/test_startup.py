"""How every `vivi-*` command starts: `--help` lists its own flags without importing TensorFlow;
a run says it is loading TensorFlow and keeps TensorFlow's C++ log quiet unless asked."""

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from keras_vivi import __main__ as main_lib
from tests.helpers.cli import REPO

HEAVY = ("tensorflow", "tf_keras", "tensorflow_hub", "official")
# As the console script's wrapper does it: import the module, call `run`; then which of the heavy
# packages got imported.
_AS_CONSOLE_SCRIPT = """
import importlib, json, sys
sys.argv = [{name!r}] + {args!r}
try:
  importlib.import_module({module!r}).run()
finally:
  heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
  sys.stderr.write("\\nHEAVY " + json.dumps(heavy) + "\\n")
"""
# A stand-in command: prints what its `main` sees.
_FAKE_COMMAND = """
import os, sys
from keras_vivi.cli import errors
def main(argv):
  print("main", argv[1:], os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
sys.argv = ["vivi-fake"] + {args!r}
errors.run(main)
"""


def _python(code, env=None):
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                        timeout=120, env=env)


def _defined_flags(module):
  """The flag names the module's source defines (read from the file, not from absl)."""
  with open(importlib.util.find_spec(module).origin, encoding="utf-8") as f:
    return set(re.findall(r"flags\.DEFINE_\w+\(\s*\"(\w+)\"", f.read()))


def _listed_flags(help_text):
  return set(re.findall(r"^  --(?:\[no\])?(\w+):", help_text, flags=re.M))


@pytest.mark.parametrize("name", list(main_lib.COMMANDS))
def test_help_lists_own_flags_without_tensorflow(name):
  module = main_lib.COMMANDS[name]
  expected = _defined_flags(module) | {"debug"}
  assert len(expected) > 3  # the regex found the module's definitions
  proc = _python(_AS_CONSOLE_SCRIPT.format(name=name, args=["--help"], module=module,
                                           heavy=HEAVY))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert _listed_flags(proc.stdout) == expected
  assert proc.stdout.startswith(f"`{name}`")  # the command's description comes first
  assert json.loads(proc.stderr.rsplit("HEAVY ", 1)[1]) == []
  # `python -m MODULE` files its flags under another module name: the same list.
  proc = subprocess.run([sys.executable, "-m", module, "-h"], cwd=REPO, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert _listed_flags(proc.stdout) == expected


def test_help_through_python_m_keras_vivi():
  proc = subprocess.run([sys.executable, "-m", "keras_vivi", "compare", "--helpshort"],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert _listed_flags(proc.stdout) == _defined_flags("keras_vivi.cli.compare") | {"debug"}


def _env(**values):
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  return {**env, **values}


def test_start_up_line_and_quiet_tensorflow_log():
  proc = _python(_FAKE_COMMAND.format(args=["extra"]), env=_env())
  assert proc.returncode == 0, proc.stderr
  assert proc.stderr == "vivi-fake: loading TensorFlow…\n"
  assert proc.stdout == "main ['extra'] 3\n"
  # A level the user set is kept; --debug leaves the variable alone.
  proc = _python(_FAKE_COMMAND.format(args=[]), env=_env(TF_CPP_MIN_LOG_LEVEL="1"))
  assert proc.stdout == "main [] 1\n"
  proc = _python(_FAKE_COMMAND.format(args=["--debug"]), env=_env())
  assert proc.stdout == "main [] None\n"
  assert proc.stderr == "vivi-fake: loading TensorFlow…\n"


def test_help_after_double_dash_is_an_argument():
  proc = _python(_FAKE_COMMAND.format(args=["--", "--help"]), env=_env())
  assert proc.stdout == "main ['--help'] 3\n"
  proc = _python(_FAKE_COMMAND.format(args=["--help"]), env=_env())
  assert proc.returncode == 0 and "main" not in proc.stdout
  assert _listed_flags(proc.stdout) == {"debug"}


def test_a_real_command_says_so_before_loading_tensorflow():
  # Refused by its first check, before TensorFlow is imported.
  proc = _python(_AS_CONSOLE_SCRIPT.format(
      name="vivi-compare", args=["--a=x", "--b=y", "--output=z", "stray"],
      module="keras_vivi.cli.compare", heavy=HEAVY), env=_env())
  assert proc.returncode == 2
  lines = proc.stderr.splitlines()
  assert lines[0] == "vivi-compare: loading TensorFlow…"
  assert lines[1] == "Error: Unexpected arguments: ['stray']"
  assert json.loads(proc.stderr.rsplit("HEAVY ", 1)[1]) == []


def test_bad_flag_is_refused_before_the_start_up_line():
  proc = _python(_FAKE_COMMAND.format(args=["--nope"]), env=_env())
  assert proc.returncode == 2
  assert "loading" not in proc.stderr and "Unknown command line flag 'nope'" in proc.stderr


def test_package_names_load_on_first_use():
  import hub_export
  from hub_export import exporter
  from keras_vivi import evaluation
  from keras_vivi.evaluation import object_diagnostic
  assert hub_export.read_metadata is exporter.read_metadata
  assert hub_export.exporter is exporter  # a submodule, imported on first use too
  assert evaluation.diagnose_records is object_diagnostic.diagnose_records
  assert set(hub_export.__all__) <= set(dir(hub_export))
  assert set(evaluation.__all__) <= set(dir(evaluation))
  with pytest.raises(AttributeError, match="no attribute 'nope'"):
    evaluation.nope  # noqa: B018


def test_robustness_description_names_every_dataset():
  # --datasets' help refers to the description for the names.
  from keras_vivi.evaluation.robustness import data as robustness_data
  with open(importlib.util.find_spec("keras_vivi.cli.robustness").origin, encoding="utf-8") as f:
    description = " ".join(ast.get_docstring(ast.parse(f.read())).split())
  assert all(f" {name}," in description or f" {name}." in description
             for name in robustness_data.list_datasets())
