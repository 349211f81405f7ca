"""A frozen teacher and a stand-in detector as SavedModels."""

import pytest
import tensorflow as tf

from tests.helpers.detectors import save_fake_hub_detector
from tests.helpers.training import TinyTeacher


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("teacher"))
  tf.saved_model.save(TinyTeacher(6), path)
  return path


@pytest.fixture(scope="session")
def detector_dir(tmp_path_factory):
  """A local SavedModel with the openimages_v4 detector signature (DESIGN.md §4)."""
  return str(save_fake_hub_detector(tmp_path_factory.mktemp("hub_detector")))


@pytest.fixture(scope="session")
def prepared_records(tmp_path_factory, mediapipe_detector):
  """The sample videos prepared with the MediaPipe detector (one shard per video, 96 px)."""
  from keras_vivi.data import prepare, sample_videos
  out = str(tmp_path_factory.mktemp("records"))
  prepare.prepare([str(p) for p in sample_videos.sample_video_paths().values()], out,
                  prepare.PrepareConfig(videos_per_shard=1, frame_short_side=96), progress=False)
  return out
