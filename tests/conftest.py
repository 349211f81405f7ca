import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# XLA reads its flags once, at its first compilation. Tests count the compilations of train
# steps by the modules XLA dumps (`xla_compilations`).
XLA_DUMP_DIR = tempfile.mkdtemp(prefix="vivi_xla_dump_")
os.environ["XLA_FLAGS"] = " ".join([
    os.environ.get("XLA_FLAGS", ""), f"--xla_dump_to={XLA_DUMP_DIR}",
    "--xla_dump_hlo_module_re=.*run_step.*"]).strip()

import tensorflow as tf  # noqa: E402

# Two logical CPUs so MirroredStrategy tests have two replicas; must precede any TF op.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import pytest  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  import shutil
  shutil.rmtree(XLA_DUMP_DIR, ignore_errors=True)


def xla_compilations():
  """Train steps (`run_step`) that XLA has compiled in this process so far."""
  return {name.split(".")[0] for name in os.listdir(XLA_DUMP_DIR)
          if name.startswith("module_") and "run_step" in name}


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


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
  """A stand-in `vivi_objects` run after one training step, and its backbone in memory."""
  import types
  import tf_keras
  from keras_vivi import configs
  from keras_vivi import models
  from tests.helpers.training import write_run
  config = configs.get_experiment("vivi_objects")
  model_dir = tmp_path_factory.mktemp("run")
  tf_keras.utils.set_random_seed(1)
  backbone = models.build_backbone(config.model)
  latest = write_run(model_dir, config, backbone)
  return types.SimpleNamespace(model_dir=str(model_dir), checkpoint=latest, config=config,
                               backbone=backbone)
