"""SavedModel / TF-Hub detector against a small local SavedModel with the openimages_v4 signature."""

import hashlib
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from keras_vivi.detector import DETECTION_KEYS, DetectorLoadError, SavedModelDetector, load_detector
from keras_vivi.detector.detector import NUM_DETECTIONS, PAD_LABEL, pack_detections

MEANS = (1.0, 0.2, 0.1, 0.04)


def _images(h=6, w=7):
  return np.stack([np.full((h, w, 3), m, np.float32) for m in MEANS])


@pytest.fixture(scope="module")
def detector(fake_saved_model_dir):
  return load_detector(str(fake_saved_model_dir))


def test_values_flow_through_with_threshold_and_top_m(detector, fake_detections):
  out = detector(_images())
  assert isinstance(detector, SavedModelDetector)
  # 1.0: six scores >= 0.05, top 5 kept; 0.2: six, top 5; 0.1: four (0.09..0.06); 0.04: none.
  np.testing.assert_array_equal(out[NUM_DETECTIONS], [5, 5, 4, 0])
  for b, m in enumerate(MEANS):
    ref = fake_detections(m)
    order = np.argsort(-ref["detection_scores"], kind="stable")
    order = order[ref["detection_scores"][order] >= 0.05][:5]
    n = len(order)
    np.testing.assert_allclose(out["detection_boxes"][b, :n], ref["detection_boxes"][order], rtol=1e-6)
    np.testing.assert_allclose(out["detection_scores"][b, :n], ref["detection_scores"][order], rtol=1e-6)
    np.testing.assert_array_equal(out["detection_class_labels"][b, :n], ref["detection_class_labels"][order])
    assert list(out["detection_class_entities"][b, :n]) == list(ref["detection_class_entities"][order])
    assert list(out["detection_class_names"][b, :n]) == list(ref["detection_class_names"][order])
    assert np.all(out["detection_class_labels"][b, n:] == PAD_LABEL)
    assert np.all(out["detection_boxes"][b, n:] == 0)
  # The image mean reaches the boxes: ymin = 0.1 · mean.
  np.testing.assert_allclose(out["detection_boxes"][:3, 0, 0], [0.1, 0.02, 0.01], rtol=1e-6)
  np.testing.assert_array_equal(out["detection_class_labels"][0], [2, 7, 8, 4, 5])


def test_batched_equals_single(detector):
  images = _images()
  batched = detector(images)
  singles = [detector(images[i:i + 1]) for i in range(len(images))]
  for key in DETECTION_KEYS + (NUM_DETECTIONS,):
    np.testing.assert_array_equal(batched[key], np.concatenate([s[key] for s in singles]))


def test_label_map_collects_seen_classes(detector):
  detector(_images())
  assert detector.label_map[2] == "class2"
  assert detector.spec.endswith("fake_hub_detector0")
  assert detector.describe()["max_detections"] == 5


def test_max_detections_and_threshold_arguments(fake_saved_model_dir):
  det = load_detector(f"file://{fake_saved_model_dir}", score_threshold=0.5, max_detections=8)
  out = det(_images()[:1])
  np.testing.assert_allclose(out["detection_scores"][0], [0.9, 0.8, 0.7, 0.6, 0, 0, 0, 0], atol=1e-6)
  assert out["detection_boxes"].shape == (1, 8, 4)


def test_empty_batch(detector):
  out = detector(np.zeros((0, 5, 5, 3), np.float32))
  assert out["detection_boxes"].shape == (0, 5, 4) and out[NUM_DETECTIONS].shape == (0,)


def test_tf_call_inside_tf_function(detector):
  images = _images()
  out = tf.function(detector.tf_call)(tf.constant(images))
  assert out["detection_boxes"].shape == (4, 5, 4)
  ref = detector(images)
  for key in DETECTION_KEYS + (NUM_DETECTIONS,):
    np.testing.assert_array_equal(out[key].numpy(), ref[key])


@pytest.mark.parametrize("max_detections", [5, 12])  # fewer and more slots than detections
def test_tf_call_runs_in_the_graph_and_compiles_with_xla(fake_saved_model_dir, max_detections):
  # XLA takes no host call (numpy_function): compiling shows the detector is TensorFlow ops.
  det = load_detector(str(fake_saved_model_dir), max_detections=max_detections)
  assert det.runs_in_graph
  numeric = ("detection_boxes", "detection_scores", "detection_class_labels", NUM_DETECTIONS)
  out = tf.function(lambda x: det.tf_call(x, numbers_only=True), jit_compile=True)(
      tf.constant(_images()))
  assert sorted(out) == sorted(numeric)
  ref = det(_images())
  for key in numeric:
    np.testing.assert_allclose(out[key].numpy(), ref[key], rtol=1e-6, err_msg=key)


def test_missing_signature(tmp_path):
  module = tf.Module()
  module.f = tf.function(lambda x: {"y": x}, input_signature=[tf.TensorSpec([None], tf.float32)])
  tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.f})
  with pytest.raises(DetectorLoadError, match=r"no signature 'default'.*serving_default"):
    load_detector(str(tmp_path))


def test_hub_cache_is_used_for_url_handles(fake_saved_model_dir, tmp_path, monkeypatch):
  # Pre-populating the cache as the error message says makes a URL handle load with no network.
  handle = "https://tfhub.dev/google/openimages_v4/ssd/mobilenet_v2/1"
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
  shutil.copytree(fake_saved_model_dir, tmp_path / hashlib.sha1(handle.encode()).hexdigest())
  det = load_detector(handle)
  assert det.spec == handle
  assert det(_images()[:1])[NUM_DETECTIONS][0] == 5


def test_unresolvable_handle_error_names_handle_cache_and_fix(tmp_path, monkeypatch):
  handle = "https://tfhub.dev/google/openimages_v4/ssd/mobilenet_v2/1"
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))

  def offline(_):
    raise OSError("network unreachable")

  monkeypatch.setattr(hub, "resolve", offline)
  with pytest.raises(DetectorLoadError) as info:
    load_detector(handle)
  message = str(info.value)
  assert handle in message and str(tmp_path) in message and "TFHUB_CACHE_DIR" in message
  assert hashlib.sha1(handle.encode()).hexdigest() in message and "saved_model.pb" in message
  assert "network unreachable" in message


def test_pack_is_what_the_detector_applies(detector, fake_detections):
  raw = [fake_detections(0.3)]
  np.testing.assert_array_equal(
      detector(_images()[:1] * 0 + 0.3)["detection_class_labels"],
      pack_detections(raw, 0.05, 5)["detection_class_labels"])
