"""Turning videos into training data (`prepare`) and feeding it to the model (`pipeline`).

Names import their module (and TensorFlow) on first use (`keras_vivi.lazy`).
"""

from keras_vivi import lazy

# `prepare.prepare` stays in its module: the name would hide the module `keras_vivi.data.prepare`.
_NAMES = {
    "build_dataset": "keras_vivi.data.pipeline",
    "build_labelled_dataset": "keras_vivi.data.pipeline",
    "PrepareConfig": "keras_vivi.data.prepare",
    "sample_video_dir": "keras_vivi.data.sample_videos",
    "sample_video_paths": "keras_vivi.data.sample_videos",
}
__all__ = list(_NAMES)
__getattr__, __dir__ = lazy.attributes(__name__, _NAMES)
