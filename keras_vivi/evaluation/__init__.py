"""Judging representations: the object nearest-neighbour diagnostic, VTAB-1k (`vtab`),
robustness (`robustness`) and the comparison of runs.

Its names import TensorFlow on first use (`keras_vivi.lazy`), so light modules (`statistics`,
`vtab.config`, `robustness.config`) load without it, as the `vivi-*` commands' `--help` needs.
"""

from keras_vivi import lazy

_NAMES = {
    "compare": "keras_vivi.evaluation.comparison",
    "diagnose": "keras_vivi.evaluation.object_comparison",
    "diagnose_records": "keras_vivi.evaluation.object_diagnostic",
    "nearest_neighbour_same_class": "keras_vivi.evaluation.object_diagnostic",
    "object_groups": "keras_vivi.evaluation.object_diagnostic",
    "record_frames": "keras_vivi.evaluation.object_diagnostic",
    "record_object_features": "keras_vivi.evaluation.object_diagnostic",
    "run_robustness": "keras_vivi.evaluation.robustness.suite",
    "run_vtab": "keras_vivi.evaluation.vtab.run",
}
__all__ = list(_NAMES)
__getattr__, __dir__ = lazy.attributes(__name__, _NAMES)
