import numpy as np
import pytest

from keras_vivi.detector import ssd
from tests.helpers.references import greedy_loop


def test_anchor_count_and_layout():
  anchors = ssd.ssd_anchors(ssd.SSDConfig())
  # 19×19 grid × 3 shapes (reduced lowest layer) + (10² + 5² + 3² + 2² + 1²) × 6 shapes.
  assert anchors.shape == (1917, 4)
  assert anchors.dtype == np.float32
  assert 19 * 19 * 3 + (100 + 25 + 9 + 4 + 1) * 6 == 1917


def test_anchor_values_by_hand():
  a = ssd.ssd_anchors()
  r2 = np.sqrt(2.0)
  c0 = 0.5 / 19
  # Lowest layer, first cell: square at scale 0.1, then 0.2 at ratios 2 and 0.5 (h = s/√r, w = s·√r).
  np.testing.assert_allclose(a[0], [c0, c0, 0.1, 0.1], rtol=1e-6)
  np.testing.assert_allclose(a[1], [c0, c0, 0.2 / r2, 0.2 * r2], rtol=1e-6)
  np.testing.assert_allclose(a[2], [c0, c0, 0.2 * r2, 0.2 / r2], rtol=1e-6)
  # Next anchor cell moves along x first.
  np.testing.assert_allclose(a[3][:2], [c0, 1.5 / 19], rtol=1e-6)
  # Layer 1 (10×10 grid) starts at 1083 with scale 0.2 + 0.75 / 5 = 0.35.
  np.testing.assert_allclose(a[1083], [0.05, 0.05, 0.35, 0.35], rtol=1e-6)
  # Its 6th shape: interpolated sqrt(0.35 · 0.5) at ratio 1.
  np.testing.assert_allclose(a[1083 + 5, 2:], [np.sqrt(0.35 * 0.5)] * 2, rtol=1e-6)
  # Last anchor: 1×1 grid, interpolated scale sqrt(0.95 · 1.0).
  np.testing.assert_allclose(a[-1], [0.5, 0.5, np.sqrt(0.95), np.sqrt(0.95)], rtol=1e-6)


def test_equal_strides_share_a_grid():
  config = ssd.SSDConfig(input_size=(64, 64), strides=(32, 32), aspect_ratios=(1.0,),
                         reduce_boxes_in_lowest_layer=False)
  # One 2×2 grid carrying both layers' 2 shapes each: 2·2·4 anchors.
  assert ssd.ssd_anchors(config).shape == (16, 4)


def test_config_validation_names_value():
  with pytest.raises(ValueError, match=r"iou_threshold.*1.5"):
    ssd.SSDConfig(iou_threshold=1.5)
  with pytest.raises(ValueError, match=r"strides"):
    ssd.SSDConfig(strides=())


def test_decode_one_anchor_by_hand():
  anchor = np.array([[0.5, 0.4, 0.2, 0.1]], np.float32)  # yc, xc, h, w
  enc = np.array([[[1.0, -2.0, 5 * np.log(2.0), 0.0]]], np.float32)  # ty, tx, th, tw
  # yc = 1/10·0.2 + 0.5 = 0.52; xc = -2/10·0.1 + 0.4 = 0.38; h = e^(ln 2)·0.2 = 0.4; w = 0.1.
  box = ssd.decode_boxes(enc, anchor)
  np.testing.assert_allclose(box, [[[0.32, 0.33, 0.72, 0.43]]], atol=1e-6)


def test_sigmoid_is_stable():
  np.testing.assert_allclose(ssd.sigmoid([-1000.0, 0.0, 2.0, 1000.0]),
                             [0.0, 0.5, 1 / (1 + np.exp(-2.0)), 1.0], atol=1e-6)


def _random_boxes(rng, batch, n):
  yx = rng.uniform(0, 0.8, (batch, n, 2))
  hw = rng.uniform(0.05, 0.4, (batch, n, 2))
  return np.concatenate([yx, yx + hw], -1).astype(np.float32)


@pytest.mark.parametrize("iou", [0.3, 0.5, 0.7])
def test_nms_against_a_greedy_loop(iou):
  rng = np.random.default_rng(0)
  boxes = _random_boxes(rng, 4, 300)
  scores = rng.uniform(0, 1, (4, 300)).astype(np.float32)
  indices, counts = ssd.non_max_suppression(boxes, scores, max_outputs=20, iou_threshold=iou)
  for b in range(4):
    ref = greedy_loop(boxes[b].astype(np.float64), scores[b], 20, iou)
    assert counts[b] == len(ref)
    np.testing.assert_array_equal(indices[b, :counts[b]], ref)
    assert np.all(indices[b, counts[b]:] == -1)


def test_nms_score_threshold_and_padding():
  boxes = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0.1, 0.1], [0.5, 0.5, 0.6, 0.6]]], np.float32)
  scores = np.array([[0.9, 0.8, 0.04, 0.05]], np.float32)
  indices, counts = ssd.non_max_suppression(boxes, scores, max_outputs=4, iou_threshold=0.5,
                                            score_threshold=0.05)
  # Box 1 overlaps box 0 entirely; box 2 is under the threshold; 0.05 itself is kept.
  np.testing.assert_array_equal(indices, [[0, 3, -1, -1]])
  np.testing.assert_array_equal(counts, [2])
