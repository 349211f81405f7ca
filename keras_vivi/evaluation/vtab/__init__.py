"""VTAB-1k natively in TF2: the 19 tasks and their splits (`tasks`), the fine-tuning of a module
with a linear head (`finetune`) and the protocol's sweep, selection and reports (`run`)."""

from keras_vivi.evaluation.vtab.finetune import build_classifier
from keras_vivi.evaluation.vtab.run import run_vtab
from keras_vivi.evaluation.vtab.run import VtabConfig
from keras_vivi.evaluation.vtab.tasks import get_task
from keras_vivi.evaluation.vtab.tasks import list_tasks

__all__ = ["build_classifier", "run_vtab", "VtabConfig", "get_task", "list_tasks"]
