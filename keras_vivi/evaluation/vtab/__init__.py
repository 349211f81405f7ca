"""VTAB-1k natively in TF2: the 19 tasks and their splits (`tasks`), the fine-tuning of a module
with a linear head (`finetune`), the protocol's settings (`config`) and its sweep, selection and
reports (`run`). Names import TensorFlow on first use (`keras_vivi.lazy`)."""

from keras_vivi import lazy

_NAMES = {
    "build_classifier": "keras_vivi.evaluation.vtab.finetune",
    "run_vtab": "keras_vivi.evaluation.vtab.run",
    "VtabConfig": "keras_vivi.evaluation.vtab.config",
    "get_task": "keras_vivi.evaluation.vtab.tasks",
    "list_tasks": "keras_vivi.evaluation.vtab.tasks",
}
__all__ = list(_NAMES)
__getattr__, __dir__ = lazy.attributes(__name__, _NAMES)
