import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPUs so MirroredStrategy tests have two replicas; must precede any TF op.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mediapipe_detector():
  """The real MediaPipe OIDv4 detector, fetched through npm once per machine and cached."""
  from keras_vivi.detector import mediapipe_oidv4_detector
  return mediapipe_oidv4_detector()


@pytest.fixture(scope="session")
def mirrored_strategy():
  """One two-replica strategy for the whole run: several instances in one process would hand
  out the same collective keys and their all-gathers would collide."""
  return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def small_export(tmp_path_factory):
  """A randomly initialised depth-14 vivi_objects backbone exported as a reusable SavedModel
  (`obj(images, training)` → [B, 2048]); returns its directory."""
  import tf_keras
  from hub_export import exporter
  from keras_vivi import configs
  from keras_vivi import models
  config = configs.apply_overrides(configs.get_experiment("vivi_objects"), ["model.depth=14"])
  tf_keras.utils.set_random_seed(3)
  backbone = models.build_backbone(config.model)
  path = str(tmp_path_factory.mktemp("exports") / "vivi_objects_d14")
  exporter.export_backbone(backbone, path, metadata={"source": {"test": "random init, depth 14"}})
  return path


@pytest.fixture(scope="session")
def small_archive(small_export, tmp_path_factory):
  """`small_export`'s contents as a `.tar` archive (unpacked by the zoo) and its sha256."""
  from tests.helpers.archives import make_archive
  archive = str(tmp_path_factory.mktemp("archives") / "vivi_objects_d14.tar")
  return archive, make_archive(small_export, archive)


@pytest.fixture
def small_preset(small_archive, tmp_path, monkeypatch):
  """Preset 'small_d14' (the archive of `small_export` with its sha256), registered for this
  test only, with an empty TF-Hub cache and `$KERAS_VIVI_OFFLINE=1`."""
  from keras_vivi.zoo import presets as presets_lib
  monkeypatch.setattr(presets_lib, "_registry", dict(presets_lib.BACKBONE_PRESETS))
  monkeypatch.setattr(presets_lib, "_loaded_files", set())
  monkeypatch.delenv(presets_lib.PRESETS_ENV, raising=False)
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub_cache"))
  monkeypatch.setenv("KERAS_VIVI_OFFLINE", "1")
  archive, sha256 = small_archive
  return presets_lib.register_preset(presets_lib.Preset(
      name="small_d14", experiment="vivi_objects", description="test export, depth 14",
      handle=archive, sha256=sha256, image_size=32))
