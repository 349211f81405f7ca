"""Shared detector fixtures: skimage images and a tiny TF-Hub-style SavedModel."""

import numpy as np
import pytest

from tests.helpers import detectors


@pytest.fixture(scope="session")
def fake_detections():
  """image mean → the fake SavedModel's raw outputs (NumPy reference)."""
  return detectors.fake_detections


@pytest.fixture(scope="session")
def fake_saved_model_dir(tmp_path_factory):
  return detectors.save_fake_hub_detector(tmp_path_factory.mktemp("fake_hub_detector"))


@pytest.fixture(scope="session")
def skimage_images():
  """name → float32 [H, W, 3] in [0, 1]."""
  import skimage.data as data
  return {name: getattr(data, name)().astype(np.float32) / 255.0
          for name in ("chelsea", "coffee", "astronaut")}
