"""Registers keras_vivi's plug-ins with TF Model Garden: import this module for its side effect.

  import hub_export.registry_imports  # noqa: F401

registers, as Model Garden's own `official.vision.registry_imports` does for its models, the
backbone type 'vivi' (`task.model.backbone.vivi.handle|checkpoint|random_init`), its config types
and the experiment 'retinanet_vivi_fpn_coco' (see `hub_export.model_garden`). Nothing else in
`hub_export` imports Model Garden.
"""
# pylint: disable=unused-import
from hub_export import model_garden  # noqa: F401
