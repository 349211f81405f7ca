"""Judging representations: the object nearest-neighbour diagnostic, VTAB-1k (`vtab`),
robustness (`robustness`) and the comparison of runs."""

from keras_vivi.evaluation.comparison import compare
from keras_vivi.evaluation.object_comparison import diagnose
from keras_vivi.evaluation.object_diagnostic import diagnose_records
from keras_vivi.evaluation.object_diagnostic import nearest_neighbour_same_class
from keras_vivi.evaluation.object_diagnostic import object_groups
from keras_vivi.evaluation.object_diagnostic import record_frames
from keras_vivi.evaluation.object_diagnostic import record_object_features
from keras_vivi.evaluation.robustness import run_robustness
from keras_vivi.evaluation.vtab import run_vtab

__all__ = ["compare", "diagnose", "diagnose_records", "nearest_neighbour_same_class",
           "object_groups", "record_frames", "record_object_features", "run_robustness",
           "run_vtab"]
