"""The shared interface: input validation, packing (sort, threshold, top-M, padding), load_detector specs."""

import numpy as np
import pytest
import tensorflow as tf

from keras_vivi.detector import DETECTION_KEYS, Detector, DetectorLoadError, load_detector
from keras_vivi.detector.detector import NUM_DETECTIONS, PAD_LABEL, pack_detections
from keras_vivi.detector.detector import as_image_batch


def _dets(scores):
  n = len(scores)
  return {
      "detection_boxes": np.arange(n * 4, dtype=np.float32).reshape(n, 4),
      "detection_scores": np.asarray(scores, np.float32),
      "detection_class_labels": np.arange(10, 10 + n, dtype=np.int64),
      "detection_class_entities": np.array([f"e{i}".encode() for i in range(n)], object),
      "detection_class_names": [f"n{i}" for i in range(n)],  # str is accepted too
  }


def test_pack_sorts_thresholds_keeps_top_m_and_pads():
  out = pack_detections([_dets([0.1, 0.9, 0.04, 0.5, 0.05]), _dets([]), _dets([0.01])],
                        score_threshold=0.05, max_detections=3)
  np.testing.assert_array_equal(out[NUM_DETECTIONS], [3, 0, 0])
  np.testing.assert_allclose(out["detection_scores"][0], [0.9, 0.5, 0.1])
  np.testing.assert_array_equal(out["detection_class_labels"][0], [11, 13, 10])
  np.testing.assert_array_equal(out["detection_boxes"][0, 0], [4, 5, 6, 7])
  assert list(out["detection_class_entities"][0]) == [b"e1", b"e3", b"e0"]
  assert list(out["detection_class_names"][0]) == [b"n1", b"n3", b"n0"]
  # Padding: zeros, PAD_LABEL, empty strings.
  assert np.all(out["detection_scores"][1:] == 0) and np.all(out["detection_boxes"][1:] == 0)
  assert np.all(out["detection_class_labels"][1:] == PAD_LABEL)
  assert set(out["detection_class_entities"][1:].ravel()) == {b""}
  assert out["detection_boxes"].dtype == np.float32 and out["detection_class_labels"].dtype == np.int64
  assert out[NUM_DETECTIONS].dtype == np.int32


def test_pack_names_missing_keys():
  with pytest.raises(ValueError, match=r"image 0 lack keys \['detection_boxes'\]"):
    pack_detections([{k: v for k, v in _dets([0.5]).items() if k != "detection_boxes"}], 0.05, 5)


def test_as_image_batch_validation():
  ok = np.zeros((2, 4, 5, 3), np.float64)
  assert as_image_batch(ok).dtype == np.float32
  assert as_image_batch(tf.zeros((1, 4, 5, 3))).shape == (1, 4, 5, 3)
  with pytest.raises(ValueError, match=r"\[B, H, W, 3\], got \(4, 5, 3\)"):
    as_image_batch(np.zeros((4, 5, 3), np.float32))
  with pytest.raises(ValueError, match=r"dtype uint8"):
    as_image_batch(np.zeros((1, 4, 5, 3), np.uint8))
  with pytest.raises(ValueError, match=r"in \[0, 1\], got values in \[0, 255\]"):
    as_image_batch(np.linspace(0, 255, 60, dtype=np.float32).reshape(1, 4, 5, 3))


def test_detector_argument_validation():
  with pytest.raises(ValueError, match=r"score_threshold.*1\.5"):
    Detector(score_threshold=1.5)
  with pytest.raises(ValueError, match=r"max_detections.*0"):
    Detector(max_detections=0)


def test_bad_specs():
  with pytest.raises(ValueError, match=r"unknown detector spec 'mediapipe'"):
    load_detector("mediapipe")
  with pytest.raises(ValueError, match=r"got 3"):
    load_detector(3)
  with pytest.raises(DetectorLoadError, match=r"SavedModel directory not found: .*no_such_dir"):
    load_detector("./no_such_dir")


def test_directory_without_saved_model(tmp_path):
  with pytest.raises(DetectorLoadError, match=r"not a SavedModel directory"):
    load_detector(str(tmp_path))


def test_output_keys_contract():
  assert DETECTION_KEYS == ("detection_boxes", "detection_scores", "detection_class_labels",
                            "detection_class_entities", "detection_class_names")


def test_label_space_is_an_id_told_from_the_detector_description():
  from keras_vivi.detector import loader
  assert loader.label_space_of({"spec": "mediapipe_oidv4", "label_space": "oidv4-mediapipe-23"}) \
      == loader.MEDIAPIPE_LABEL_SPACE == "oidv4-mediapipe-23"
  # Manifests written before the key existed are told from the spec.
  assert loader.label_space_of({"spec": "", "name": "x"}) == "oidv4-mediapipe-23"
  assert loader.label_space_of({"spec": "mediapipe_oidv4"}) == "oidv4-mediapipe-23"
  assert loader.label_space_of({"spec": loader.PAPER_DETECTOR}) == "oidv4-600"
  assert loader.label_space_of({"spec": "/models/det"}) == "detector:/models/det"
  assert loader.label_space_of({"spec": "x", "label_space": "coco-80"}) == "coco-80"


@pytest.mark.parametrize("sentence,space", [
    ("MediaPipe OIDv4 subset: 23 of the 600 Open Images V4 classes (not the paper's detector)",
     "oidv4-mediapipe-23"),
    ("Open Images V4, 600 classes (TF-Hub openimages_v4/ssd/mobilenet_v2, the paper's detector)",
     "oidv4-600"),
    ("the classes of the detector '/models/det'", "detector:/models/det"),
    ("unknown", "oidv4-mediapipe-23")])  # no spec either: the default detector
def test_manifests_with_the_label_space_in_words_map_to_its_id(sentence, space):
  from keras_vivi.detector import loader
  assert loader.label_space_of({"spec": "", "label_space": sentence}) == space


def test_label_space_ids_are_said_in_words():
  from keras_vivi.detector import loader
  assert "23 of the 600" in loader.label_space_description("oidv4-mediapipe-23")
  assert "the paper's detector" in loader.label_space_description("oidv4-600")
  assert loader.label_space_description("detector:/m") == "the classes of the detector '/m'"
