"""Judging representations: the object nearest-neighbour diagnostic, VTAB-1k, robustness."""

from keras_vivi.evaluation.object_diagnostic import diagnose_records
from keras_vivi.evaluation.object_diagnostic import nearest_neighbour_same_class
from keras_vivi.evaluation.object_diagnostic import object_groups
from keras_vivi.evaluation.object_diagnostic import record_frames
from keras_vivi.evaluation.object_diagnostic import record_object_features

__all__ = ["diagnose_records", "nearest_neighbour_same_class", "object_groups", "record_frames",
           "record_object_features"]
