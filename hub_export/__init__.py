"""Exporters of keras_vivi backbones as TF-Hub SavedModels, and their consumer-side plug-ins.

Importing it does not import Model Garden: `import hub_export.registry_imports` registers the
backbone builder 'vivi', its config types and the experiment 'retinanet_vivi_fpn_coco' with
`official.vision` (see `hub_export.model_garden`), as Model Garden's own `registry_imports` do.
Nor TensorFlow: its names import it on first use (PEP 562), so `vivi-export --help` stays light.
"""

import importlib
import importlib.util

_NAMES = {
    "backbone_from_checkpoint": "hub_export.checkpoint",
    "find_checkpoint": "hub_export.checkpoint",
    "restore_backbone": "hub_export.checkpoint",
    "export_backbone": "hub_export.exporter",
    "export_checkpoint": "hub_export.exporter",
    "export_random_init": "hub_export.exporter",
    "read_metadata": "hub_export.exporter",
}

__all__ = ["backbone_from_checkpoint", "find_checkpoint", "restore_backbone", "export_backbone",
           "export_checkpoint", "export_random_init", "read_metadata"]


def __getattr__(name):
  if name in _NAMES:
    return getattr(importlib.import_module(_NAMES[name]), name)
  if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # `package.submodule`
    return importlib.import_module(f"{__name__}.{name}")
  raise AttributeError(f"module 'hub_export' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_NAMES))
