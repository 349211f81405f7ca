"""Package attributes that import their module on first use (PEP 562).

A package whose names need TensorFlow declares them here, so that importing the package (or a
light module in it, as every `vivi-*` command's `--help` does) does not load TensorFlow.
"""

import importlib
import importlib.util


def attributes(package: str, names: dict):
  """`(__getattr__, __dir__)` for `package`: `names` maps an attribute to the module defining it;
  any submodule of the package is an attribute too."""

  def __getattr__(name):
    if name in names:
      return getattr(importlib.import_module(names[name]), name)
    if importlib.util.find_spec(f"{package}.{name}") is not None:
      return importlib.import_module(f"{package}.{name}")
    raise AttributeError(f"module {package!r} has no attribute {name!r}")

  def __dir__():
    return sorted(set(importlib.import_module(package).__dict__) | set(names))

  return __getattr__, __dir__
