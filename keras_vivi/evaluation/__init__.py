"""Judging representations: the object nearest-neighbour diagnostic, VTAB-1k, robustness.

Its names import TensorFlow on first use (PEP 562), so the light modules (`statistics`, the
`*_config` dataclasses) load without it, as the `vivi-*` commands' `--help` needs.
"""

import importlib
import importlib.util

_NAMES = {
    "diagnose_records": "keras_vivi.evaluation.object_diagnostic",
    "nearest_neighbour_same_class": "keras_vivi.evaluation.object_diagnostic",
    "object_groups": "keras_vivi.evaluation.object_diagnostic",
    "record_frames": "keras_vivi.evaluation.object_diagnostic",
    "record_object_features": "keras_vivi.evaluation.object_diagnostic",
}

__all__ = ["diagnose_records", "nearest_neighbour_same_class", "object_groups", "record_frames",
           "record_object_features"]


def __getattr__(name):
  if name in _NAMES:
    return getattr(importlib.import_module(_NAMES[name]), name)
  if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # `package.submodule`
    return importlib.import_module(f"{__name__}.{name}")
  raise AttributeError(f"module 'keras_vivi.evaluation' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_NAMES))
