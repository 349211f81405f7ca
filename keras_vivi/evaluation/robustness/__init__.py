"""Robustness of classifiers built on a representation: the metrics (`metrics`), the shifted
datasets (`data`), the ImageNet classifiers (`classifier`) and the paper's Table 5 (`suite`)."""

from keras_vivi.evaluation.robustness.classifier import load_classifier
from keras_vivi.evaluation.robustness.classifier import train_imagenet_classifier
from keras_vivi.evaluation.robustness.suite import RobustnessConfig
from keras_vivi.evaluation.robustness.suite import run_robustness

__all__ = ["load_classifier", "train_imagenet_classifier", "RobustnessConfig", "run_robustness"]
