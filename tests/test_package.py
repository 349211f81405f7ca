"""The package's shape: public names, the import layers, no private TF APIs, short functions."""

import ast
import importlib
import json
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ("keras_vivi", "hub_export")
PACKAGES = sorted({".".join(p.relative_to(REPO).parent.parts)
                   for root in SOURCES for p in (REPO / root).rglob("__init__.py")})

# Lowest first. A module may import its own layer and those below it, never one above. The
# longest matching prefix gives a module's layer.
LAYERS = (
    ("keras_vivi.files", "keras_vivi.configs", "keras_vivi.plotting", "keras_vivi.lazy"),  # no keras_vivi imports
    ("keras_vivi.zoo",),  # named modules and the TF-Hub cache
    ("keras_vivi.data", "keras_vivi.detector", "keras_vivi.losses", "keras_vivi.models"),
    # Table 2's measure of object features: evaluation reports it, and training logs it as it goes.
    ("keras_vivi.evaluation.object_diagnostic",),
    ("keras_vivi.training",),
    ("keras_vivi.evaluation",),
    ("hub_export",),  # exporter, publishing, Model Garden plug-ins
    ("keras_vivi.cli", "hub_export.cli", "keras_vivi.demo", "keras_vivi.__main__",
     "keras_vivi"),  # commands and the top-level facade
)
# Imports that run against the layers and are still to be turned around.
KNOWN_UPWARD: set = set()

MAX_FUNCTION_LINES = 60  # from the `def` line to the last line: signature, docstring and body
KNOWN_LONG: set = set()


def _modules():
  """{dotted module name: path} of every module of the package sources."""
  found = {}
  for root in SOURCES:
    for path in sorted((REPO / root).rglob("*.py")):
      parts = path.relative_to(REPO).with_suffix("").parts
      found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  return found


MODULES = _modules()


def _imported(tree, module, is_package):
  """Dotted names `tree` imports, at any depth (function-level imports count too)."""
  package = module if is_package else module.rpartition(".")[0]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        base = f"{anchor}.{base}" if base else anchor
      for alias in node.names:
        yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def _layer(module):
  best = max((prefix for layer in LAYERS for prefix in layer
              if module == prefix or module.startswith(prefix + ".")), key=len, default=None)
  assert best is not None, f"{module} is in no layer of LAYERS"
  return next(i for i, layer in enumerate(LAYERS) if best in layer)


def upward_imports(sources=None):
  """(importer, imported) pairs where a module imports one of a higher layer.

  `sources`: {module: (source, is_package)}, by default every module of the package sources.
  """
  if sources is None:
    sources = {m: (p.read_text(), p.name == "__init__.py") for m, p in MODULES.items()}
  pairs = set()
  for module, (source, is_package) in sources.items():
    for name in _imported(ast.parse(source), module, is_package):
      while name and name not in MODULES:
        name = name.rpartition(".")[0]
      if name and _layer(name) > _layer(module):
        pairs.add((module, name))
  return pairs


def test_layer_of_a_module():
  assert _layer("keras_vivi.configs") == 0
  assert _layer("keras_vivi.evaluation.vtab.run") == 5
  assert _layer("hub_export.cli") == 7 and _layer("hub_export.exporter") == 6
  assert _layer("keras_vivi") == 7 and _layer("keras_vivi.zoo.loader") == 1
  assert _layer("keras_vivi.evaluation.object_diagnostic") == 3 < _layer("keras_vivi.training")


def test_no_import_runs_up_the_layers():
  assert upward_imports() == KNOWN_UPWARD


def test_upward_imports_are_found():
  source = ("import numpy as np\n"
            "from keras_vivi import configs\n"
            "from . import contrastive\n"
            "def f():\n"
            "  from keras_vivi.evaluation.vtab import run as vtab\n"
            "  from ..training import trainer\n")
  assert upward_imports({"keras_vivi.losses.hierarchy": (source, False)}) == {
      ("keras_vivi.losses.hierarchy", "keras_vivi.evaluation.vtab.run"),
      ("keras_vivi.losses.hierarchy", "keras_vivi.training.trainer")}


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves(package):
  module = importlib.import_module(package)
  names = list(getattr(module, "__all__", None) or [])
  assert len(set(names)) == len(names), f"{package}.__all__ repeats a name"
  missing = [n for n in names if not hasattr(module, n)]
  assert not missing, f"{package}.__all__ names {missing}, which it does not define"
  # A public name that is also a submodule would hide it (`from package import module`).
  shadowed = [n for n in names if f"{package}.{n}" in MODULES]
  assert not shadowed, f"{package}.__all__ names submodules {shadowed}"


def _python_of_notebook(path):
  cells = json.loads(path.read_text())["cells"]
  lines = [line for c in cells if c["cell_type"] == "code" for line in "".join(c["source"]).split(
      "\n")]
  return "\n".join(line for line in lines if not line.lstrip().startswith(("!", "%")))


def _user_code():
  """(where, python source) of the notebooks, the README's python blocks and the tests."""
  for path in sorted((REPO / "examples").glob("*.ipynb")):
    yield path.name, _python_of_notebook(path)
  readme = (REPO / "README.md").read_text()
  for i, block in enumerate(re.findall(r"```python\n(.*?)```", readme, re.S)):
    yield f"README.md block {i}", block
  for path in sorted((REPO / "tests").rglob("*.py")):
    yield str(path.relative_to(REPO)), path.read_text()


def package_level_imports(source):
  """(package, name) of every `from PACKAGE import NAME` where NAME is no submodule."""
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.ImportFrom) and node.module in PACKAGES and not node.level:
      for alias in node.names:
        if f"{node.module}.{alias.name}" not in MODULES:
          yield node.module, alias.name


def test_package_level_imports_use_public_names():
  private = []
  for where, source in _user_code():
    for package, name in package_level_imports(source):
      if name not in getattr(importlib.import_module(package), "__all__", ()):
        private.append(f"{where}: from {package} import {name}")
  assert not private, "\n".join(private)


def test_package_level_imports_are_told_from_submodules():
  source = ("from keras_vivi.detector import ssd, load_detector\n"
            "from keras_vivi.detector.detector import PAD_LABEL\n")
  assert list(package_level_imports(source)) == [("keras_vivi.detector", "load_detector")]


PRIVATE_TF = re.compile(r"__internal__|\b(tf|tensorflow|keras|tf_keras)\.(src|python)\b")


def test_no_private_tensorflow_apis():
  found = [f"{path.relative_to(REPO)}:{i}: {line.strip()}"
           for path in MODULES.values()
           for i, line in enumerate(path.read_text().splitlines(), 1) if PRIVATE_TF.search(line)]
  assert not found, "\n".join(found)
  assert PRIVATE_TF.search("from tf_keras.src.utils import dataset_utils")
  assert PRIVATE_TF.search("class A(tf.__internal__.tracking.AutoTrackable):")
  assert not PRIVATE_TF.search("tf.saved_model.save(obj, path)  # src.py")


def long_functions(source, module):
  """Qualified names of the functions of `source` longer than MAX_FUNCTION_LINES."""
  long = []

  def visit(node, prefix):
    for child in ast.iter_child_nodes(node):
      name = prefix
      if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        name = f"{prefix}.{child.name}"
        if not isinstance(child, ast.ClassDef) and \
            child.end_lineno - child.lineno + 1 > MAX_FUNCTION_LINES:
          long.append(name)
      visit(child, name)

  visit(ast.parse(source), module)
  return long


def test_no_function_is_longer_than_60_lines():
  found = {name for module, path in MODULES.items()
           for name in long_functions(path.read_text(), module)}
  assert found == KNOWN_LONG


def test_function_length_counts_signature_docstring_and_body():
  body = "".join(f"  x{i} = {i}\n" for i in range(57))
  at_limit = 'def f(a,\n      b):\n  """Doc."""\n' + body  # 3 + 57 = 60 lines
  assert long_functions(at_limit, "m") == []
  assert long_functions("@decorator\n" + at_limit + "  x = 0\n", "m") == ["m.f"]
  assert long_functions("class C:\n" + "\n".join("  " + line for line in
                                                  (at_limit + "  x = 0").split("\n")),
                        "m") == ["m.C.f"]
