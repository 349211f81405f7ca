"""Exporters of keras_vivi backbones as TF-Hub SavedModels, and their consumer-side plug-ins.

Importing it does not import Model Garden: `import hub_export.registry_imports` registers the
backbone builder 'vivi', its config types and the experiment 'retinanet_vivi_fpn_coco' with
`official.vision` (see `hub_export.model_garden`), as Model Garden's own `registry_imports` do.
Nor TensorFlow: its names import it on first use (`keras_vivi.lazy`), so `vivi-export --help`
stays light.
"""

from keras_vivi import lazy

_NAMES = {
    "backbone_from_checkpoint": "keras_vivi.training.runs",
    "find_checkpoint": "keras_vivi.training.runs",
    "restore_backbone": "keras_vivi.training.runs",
    "export_backbone": "hub_export.exporter",
    "export_checkpoint": "hub_export.exporter",
    "export_random_init": "hub_export.exporter",
    "read_metadata": "hub_export.exporter",
}
__all__ = list(_NAMES)
__getattr__, __dir__ = lazy.attributes(__name__, _NAMES)
