"""Shared evaluation fixtures: one small exported backbone for the whole session."""

import hashlib
import os
import subprocess
import sys
import tarfile

import pytest
import tf_keras

from hub_export import exporter
from keras_vivi import configs
from keras_vivi import models
from keras_vivi.zoo import presets as presets_lib

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


@pytest.fixture(scope="session")
def small_archive(small_export, tmp_path_factory):
  """`small_export`'s contents as a `.tar` archive (unpacked by the zoo) and its sha256."""
  archive = str(tmp_path_factory.mktemp("archives") / "vivi_objects_d14.tar")
  with tarfile.open(archive, "w") as tar:
    for name in sorted(os.listdir(small_export)):
      tar.add(os.path.join(small_export, name), arcname=name)
  with open(archive, "rb") as f:
    return archive, hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def small_preset(small_archive, tmp_path, monkeypatch):
  """Preset 'small_d14' (the archive of `small_export` with its sha256), registered for this
  test only, with an empty TF-Hub cache and `$KERAS_VIVI_OFFLINE=1`."""
  monkeypatch.setattr(presets_lib, "_registry", dict(presets_lib.BACKBONE_PRESETS))
  monkeypatch.setattr(presets_lib, "_loaded_files", set())
  monkeypatch.delenv(presets_lib.PRESETS_ENV, raising=False)
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub_cache"))
  monkeypatch.setenv("KERAS_VIVI_OFFLINE", "1")
  archive, sha256 = small_archive
  return presets_lib.register_preset(presets_lib.Preset(
      name="small_d14", experiment="vivi_objects", description="test export, depth 14",
      handle=archive, sha256=sha256, image_size=32))
