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
