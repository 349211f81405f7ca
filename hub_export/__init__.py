"""Exporters of keras_vivi backbones as TF-Hub SavedModels, and their consumer-side plug-ins.

Importing the package registers the Model Garden backbone builder 'vivi', its config types
and the experiment 'retinanet_vivi_fpn_coco' (see `hub_export.model_garden`).
"""

from hub_export.checkpoint import backbone_from_checkpoint
from hub_export.checkpoint import find_checkpoint
from hub_export.checkpoint import restore_backbone
from hub_export.exporter import export_backbone
from hub_export.exporter import export_checkpoint
from hub_export.exporter import export_random_init
from hub_export.exporter import read_metadata
from hub_export import model_garden  # noqa: F401  (registers with official.vision)
