"""Robustness of classifiers built on a representation: the metrics (`metrics`), the shifted
datasets (`data`), the ImageNet classifiers (`classifier`, recipe in `config`) and the paper's
Table 5 (`suite`). Names import TensorFlow on first use (`keras_vivi.lazy`)."""

from keras_vivi import lazy

_NAMES = {
    "load_classifier": "keras_vivi.evaluation.robustness.classifier",
    "train_imagenet_classifier": "keras_vivi.evaluation.robustness.classifier",
    "RobustnessConfig": "keras_vivi.evaluation.robustness.suite",
    "run_robustness": "keras_vivi.evaluation.robustness.suite",
}
__all__ = list(_NAMES)
__getattr__, __dir__ = lazy.attributes(__name__, _NAMES)
