"""Shared evaluation fixtures: one small exported backbone for the whole session."""

import os
import subprocess
import sys

import pytest
import tf_keras

from hub_export import exporter
from keras_vivi import configs
from keras_vivi import models

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_module(module, *args, timeout=600):
  """`python -m MODULE ARGS` from the repository root; returns the finished process."""
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def small_export(tmp_path_factory):
  """A randomly initialised depth-14 vivi_objects backbone exported as a reusable SavedModel
  (`obj(images, training)` → [B, 2048]); returns its directory."""
  config = configs.apply_overrides(configs.get_experiment("vivi_objects"), ["model.depth=14"])
  tf_keras.utils.set_random_seed(3)
  backbone = models.build_backbone(config.model)
  path = str(tmp_path_factory.mktemp("exports") / "vivi_objects_d14")
  exporter.export_backbone(backbone, path, metadata={"source": {"test": "random init, depth 14"}})
  return path
