"""Turning videos into training data (`prepare`) and feeding it to the model (`pipeline`)."""

from keras_vivi.data.pipeline import build_dataset
from keras_vivi.data.pipeline import build_labelled_dataset
from keras_vivi.data.prepare import PrepareConfig
from keras_vivi.data.sample_videos import sample_video_dir
from keras_vivi.data.sample_videos import sample_video_paths

# `prepare.prepare` stays in its module: the name would hide the module `keras_vivi.data.prepare`.
__all__ = ["build_dataset", "build_labelled_dataset", "PrepareConfig", "sample_video_dir",
           "sample_video_paths"]
