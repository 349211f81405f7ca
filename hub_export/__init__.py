"""Exporters of keras_vivi backbones as TF-Hub SavedModels, and their consumer-side plug-ins.

Importing it does not import Model Garden: `import hub_export.registry_imports` registers the
backbone builder 'vivi', its config types and the experiment 'retinanet_vivi_fpn_coco' with
`official.vision` (see `hub_export.model_garden`), as Model Garden's own `registry_imports` do.
"""

from hub_export.exporter import export_backbone
from hub_export.exporter import export_checkpoint
from hub_export.exporter import export_random_init
from hub_export.exporter import read_metadata
from keras_vivi.training.runs import backbone_from_checkpoint
from keras_vivi.training.runs import find_checkpoint
from keras_vivi.training.runs import restore_backbone

__all__ = ["backbone_from_checkpoint", "find_checkpoint", "restore_backbone", "export_backbone",
           "export_checkpoint", "export_random_init", "read_metadata"]
