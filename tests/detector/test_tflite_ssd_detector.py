"""MediaPipe's OIDv4 SSD-MobileNetV2 on real images, plus decoding checks on crafted raw outputs."""

import json

import numpy as np
import pytest
import tensorflow as tf

from keras_vivi.detector import DETECTION_KEYS, load_detector, mediapipe_oidv4_detector
from keras_vivi.detector.detector import NUM_DETECTIONS, PAD_LABEL
from keras_vivi.detector import ssd
from tests.helpers.references import greedy_loop

CAT, PERSON, COFFEE_CUP = 122, 69, 179  # Open Images V4 label ids


@pytest.fixture(scope="module")
def outputs(mediapipe_detector, skimage_images):
  return {name: mediapipe_detector(image[None]) for name, image in skimage_images.items()}


def _top(out):
  return (out["detection_class_entities"][0, 0].decode(), int(out["detection_class_labels"][0, 0]),
          float(out["detection_scores"][0, 0]), out["detection_boxes"][0, 0])


def test_chelsea_cat(outputs):
  # The cat's head fills the frame: the box spans (almost) the whole image.
  entity, label, score, (ymin, xmin, ymax, xmax) = _top(outputs["chelsea"])
  assert (entity, label) == ("Cat", CAT)
  assert 0.7 < score < 0.95
  assert ymin < 0.1 and xmin < 0.1 and ymax > 0.9 and xmax > 0.85
  assert outputs["chelsea"]["detection_class_names"][0, 0] == b"/m/01yrx"


def test_coffee_cup(outputs):
  # The cup (rim to base, with its handle) sits in rows 0.05-0.8, columns 0.29-0.7; the saucer is wider.
  entity, label, score, (ymin, xmin, ymax, xmax) = _top(outputs["coffee"])
  assert (entity, label) == ("Coffee cup", COFFEE_CUP)
  assert score > 0.4
  assert 0.0 <= ymin < 0.15 and 0.2 < xmin < 0.4 and 0.65 < ymax < 0.9 and 0.6 < xmax < 0.8


def test_astronaut_person(outputs):
  # The astronaut spans the left 0.03-0.71 of the width, head (0.03) to the bottom; the shuttle model
  # at the right (x > 0.72) is not part of the person box.
  entity, label, score, (ymin, xmin, ymax, xmax) = _top(outputs["astronaut"])
  assert (entity, label) == ("Person", PERSON)
  assert score > 0.4
  assert ymin < 0.15 and xmin < 0.15 and ymax > 0.9 and 0.6 < xmax < 0.8


def test_nms_keeps_what_a_greedy_loop_keeps_on_real_outputs(mediapipe_detector, skimage_images):
  # 100 outputs without a score threshold reach the low scores where TensorFlow's padded NMS
  # kernel orders one box wrongly on chelsea.
  for image in skimage_images.values():
    encodings, logits = mediapipe_detector.raw_outputs(mediapipe_detector.preprocess(image[None]))
    boxes = np.clip(ssd.decode_boxes(encodings, mediapipe_detector.anchors), 0.0, 1.0)
    scores = ssd.sigmoid(logits[..., 1:].max(-1))  # class 0 is the background
    indices, counts = ssd.non_max_suppression(boxes, scores, 100, 0.5, score_threshold=0.0)
    reference = greedy_loop(boxes[0].astype(np.float64), scores[0], 100, 0.5, 0.0)
    assert counts[0] == len(reference) == 100
    np.testing.assert_array_equal(indices[0], reference)


def test_output_contract(outputs):
  for out in outputs.values():
    assert out["detection_boxes"].shape == (1, 5, 4) and out["detection_boxes"].dtype == np.float32
    assert out["detection_scores"].dtype == np.float32
    assert out["detection_class_labels"].dtype == np.int64
    assert out[NUM_DETECTIONS].dtype == np.int32
    n = out[NUM_DETECTIONS][0]
    scores = out["detection_scores"][0, :n]
    assert np.all(np.diff(scores) <= 0) and np.all(scores >= 0.05)
    boxes = out["detection_boxes"][0, :n]
    assert np.all((boxes >= 0) & (boxes <= 1))
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])


def test_batched_equals_single(mediapipe_detector, skimage_images):
  # One batch needs one size: crop all three to a common 300×300 window.
  batch = np.stack([image[:300, :300] for image in skimage_images.values()])
  batched = mediapipe_detector(batch)
  singles = [mediapipe_detector(batch[i:i + 1]) for i in range(len(batch))]
  for key in DETECTION_KEYS + (NUM_DETECTIONS,):
    np.testing.assert_array_equal(batched[key], np.concatenate([s[key] for s in singles]))


def test_tf_input_and_tf_call(mediapipe_detector, skimage_images):
  image = skimage_images["chelsea"][None]
  ref = mediapipe_detector(image)
  from_tensor = mediapipe_detector(tf.constant(image))
  in_graph = tf.function(mediapipe_detector.tf_call)(tf.constant(image))
  for key in DETECTION_KEYS + (NUM_DETECTIONS,):
    np.testing.assert_array_equal(from_tensor[key], ref[key])
    np.testing.assert_array_equal(in_graph[key].numpy(), ref[key])


def test_threshold_top_m_and_padding(skimage_images):
  det = mediapipe_oidv4_detector(score_threshold=0.5, max_detections=8)
  out = det(np.stack([skimage_images["chelsea"], np.zeros_like(skimage_images["chelsea"])]))
  assert out["detection_boxes"].shape == (2, 8, 4)
  np.testing.assert_array_equal(out[NUM_DETECTIONS], [1, 0])  # only the cat is >= 0.5; black: nothing
  assert out["detection_class_labels"][0, 0] == CAT
  assert np.all(out["detection_class_labels"][0, 1:] == PAD_LABEL)
  assert np.all(out["detection_scores"][0, 1:] == 0) and np.all(out["detection_boxes"][1] == 0)
  assert set(out["detection_class_entities"][:, 1:].ravel()) == {b""}
  top2 = mediapipe_oidv4_detector(max_detections=2)(skimage_images["astronaut"][None])
  np.testing.assert_array_equal(top2[NUM_DETECTIONS], [2])
  assert top2["detection_scores"].shape == (1, 2)


def test_decode_crafted_outputs(mediapipe_detector):
  det = mediapipe_detector
  n = len(det.anchors)
  enc = np.zeros((1, n, 4), np.float32)  # boxes = anchors
  logits = np.full((1, n, 24), -10.0, np.float32)
  cat, cup, background = 8, 13, 0  # model output indices
  a = 1083 + 6 * 55  # layer 1 (10×10), cell (5, 5), square anchor: centre (0.55, 0.55), side 0.35
  logits[0, a, cat] = 3.0
  logits[0, a + 5, cup] = 2.0  # same cell, side sqrt(0.35·0.5): IoU > 0.5 with `a`, suppressed
  far = 1083 + 6 * 0  # cell (0, 0): centre (0.05, 0.05)
  logits[0, far, cup] = 0.0  # score 0.5
  logits[0, far + 6, background] = 20.0  # background is never reported
  out = det.decode(enc, logits)
  np.testing.assert_array_equal(out[NUM_DETECTIONS], [2])
  np.testing.assert_array_equal(out["detection_class_labels"][0, :2], [CAT, COFFEE_CUP])
  np.testing.assert_allclose(out["detection_scores"][0, :2], [1 / (1 + np.exp(-3.0)), 0.5], rtol=1e-6)
  # Decoded with zero encodings, the box is the anchor; the far one is clipped at 0.
  np.testing.assert_allclose(out["detection_boxes"][0, 0], [0.375, 0.375, 0.725, 0.725], atol=1e-6)
  np.testing.assert_allclose(out["detection_boxes"][0, 1], [0.0, 0.0, 0.225, 0.225], atol=1e-6)


def test_identity(mediapipe_detector):
  det = mediapipe_detector
  assert det.spec == "mediapipe_oidv4" and "d0a5255bf8c4" in det.name
  assert len(det.label_map) == 23 and det.label_map[CAT] == "Cat" and 0 not in det.label_map
  json.dumps(det.describe())
  assert isinstance(load_detector(None, max_detections=3), type(det))


def test_bad_arguments_name_the_value(mediapipe_detector):
  with pytest.raises(ValueError, match=r"logits \[B, 1917, 24\], got \(1, 1917, 4\) and \(1, 1917, 3\)"):
    mediapipe_detector.decode(np.zeros((1, 1917, 4)), np.zeros((1, 1917, 3)))
  with pytest.raises(ValueError, match=r"num_threads .* got 0"):
    mediapipe_oidv4_detector(num_threads=0)
