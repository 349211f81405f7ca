import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_vivi.models import (ProjectionHead, ShotPredictor, aggregate_shots,
                               gather_box_features)


def np_gather(feature_map, boxes, image_size):
  """The paper's rule with explicit loops: centre pixel (i, j), then floor(i·H'/H)."""
  b, gh, gw, _ = feature_map.shape
  h, w = image_size
  out = np.zeros(boxes.shape[:2] + feature_map.shape[-1:], feature_map.dtype)
  for n in range(b):
    for m in range(boxes.shape[1]):
      ymin, xmin, ymax, xmax = boxes[n, m]
      i = min(max(math.floor((ymin + ymax) / 2 * h), 0), h - 1)
      j = min(max(math.floor((xmin + xmax) / 2 * w), 0), w - 1)
      out[n, m] = feature_map[n, min(i * gh // h, gh - 1), min(j * gw // w, gw - 1)]
  return out


def ramp_map(b, gh, gw, c):
  # Every cell holds a distinct value that encodes (batch, row, col, channel).
  return np.arange(b * gh * gw * c, dtype=np.float32).reshape(b, gh, gw, c)


@pytest.mark.parametrize("image_size,grid", [((224, 224), (7, 7)), ((96, 160), (3, 5)),
                                             ((65, 33), (3, 2))])
def test_gather_box_features_matches_numpy_indexing(image_size, grid):
  rng = np.random.default_rng(sum(image_size))
  fmap = ramp_map(2, *grid, 3)
  corners = rng.random((2, 6, 2, 2))
  boxes = np.concatenate([corners.min(2), corners.max(2)], -1).astype(np.float32)
  boxes[0, 0] = [0.0, 0.0, 0.0, 0.0]       # centre on the top-left pixel
  boxes[0, 1] = [1.0, 1.0, 1.0, 1.0]       # centre past the last pixel: clamped
  boxes[1, 0] = [-0.5, 0.9, -0.1, 1.5]     # outside the image: clamped
  got = gather_box_features(fmap, boxes, image_size).numpy()
  np.testing.assert_array_equal(got, np_gather(fmap, boxes, image_size))


def test_gather_box_features_hand_computed_cell():
  fmap = ramp_map(1, 7, 7, 1)
  # Centre (0.5, 0.25) in 224×224 → pixel (112, 56) → cell (112·7//224, 56·7//224) = (3, 1).
  boxes = np.array([[[0.4, 0.2, 0.6, 0.3]]], np.float32)
  assert gather_box_features(fmap, boxes, (224, 224)).numpy()[0, 0, 0] == 3 * 7 + 1


def test_projection_head_outputs_unit_vectors():
  head = ProjectionHead(16, hidden_dims=(32,))
  out = head(tf.random.stateless_normal([3, 5, 64], seed=(1, 1)))
  assert out.shape == (3, 5, 16)
  np.testing.assert_allclose(np.linalg.norm(out.numpy(), axis=-1), 1.0, rtol=1e-5)
  clone = ProjectionHead.from_config(head.get_config())
  assert clone.hidden_dims == (32,) and clone.output_dim == 16
  with pytest.raises(ValueError, match="output_dim"):
    ProjectionHead(0)


def test_aggregate_shots_is_masked_mean():
  x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4, 1)
  mask = np.ones((2, 3, 4), bool)
  mask[0, 1, 2:] = False
  mask[1, 2] = False
  got = aggregate_shots(x, mask).numpy()
  assert got[0, 1, 0] == np.mean(x[0, 1, :2, 0])
  assert got[1, 2, 0] == 0.0
  np.testing.assert_allclose(got[0, 0], x[0, 0].mean(0))
  np.testing.assert_allclose(aggregate_shots(x).numpy(), x.mean(2))


def test_shot_predictor_is_a_bilinear_critic_on_lstm_states():
  predictor = ShotPredictor(prediction_steps=2, lstm_units=8)
  shots = tf.random.stateless_normal([3, 4, 5], seed=(2, 3))
  pred = predictor(shots)
  assert pred.shape == (3, 4, 2, 5)
  h = predictor.lstm(shots).numpy()
  w = predictor.critics.numpy()
  assert w.shape == (2, 8, 5)
  # Score of (video 1, context 2, step 2) against shot 0 of video 0: hᵀ W_2 s.
  s = shots.numpy()[0, 0]
  np.testing.assert_allclose(pred.numpy()[1, 2, 1] @ s, h[1, 2] @ w[1] @ s, rtol=1e-5)
  # Causal: the prediction from context 1 ignores later shots.
  changed = shots.numpy().copy()
  changed[:, 2:] += 10
  np.testing.assert_allclose(predictor(changed).numpy()[:, :2], pred.numpy()[:, :2], rtol=1e-6)
  assert isinstance(predictor.lstm, tf_keras.layers.LSTM) and predictor.lstm.units == 8
