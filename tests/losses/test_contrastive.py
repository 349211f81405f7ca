import numpy as np
import pytest
import tensorflow as tf

from keras_vivi.losses import (gather_across_replicas, info_nce, info_nce_accuracy,
                               info_nce_terms, shot_loss, shot_loss_denominator,
                               shot_prediction_scores)
from tests.helpers.references import np_shot_loss


def np_info_nce(scores, pos, cmask=None, qmask=None):
  q, k = scores.shape
  cmask = np.ones((q, k), bool) if cmask is None else np.broadcast_to(cmask, (q, k))
  qmask = np.ones(q, bool) if qmask is None else qmask
  terms = []
  for i in range(q):
    if not qmask[i]:
      continue
    s = scores[i][cmask[i]].astype(np.float64)
    terms.append(-scores[i, pos[i]] + np.log(np.sum(np.exp(s))) - np.log(len(s)))
  return np.mean(terms) if terms else 0.0


def test_info_nce_matches_equation_1():
  rng = np.random.default_rng(0)
  scores = rng.normal(size=(6, 9)).astype(np.float32) * 3
  pos = rng.integers(0, 9, size=6)
  np.testing.assert_allclose(info_nce(scores, pos).numpy(), np_info_nce(scores, pos), rtol=1e-5)


def test_info_nce_hand_computed():
  # Two candidates with equal scores: −s + log(2 e^s) − log 2 = 0.
  assert abs(info_nce(np.array([[1.5, 1.5]]), np.array([0])).numpy()) < 1e-6
  # Scores (2, 0), positive 0: −2 + log(e² + 1) − log 2.
  want = -2 + np.log(np.exp(2) + 1) - np.log(2)
  np.testing.assert_allclose(info_nce(np.array([[2.0, 0.0]]), np.array([0])).numpy(), want,
                             rtol=1e-6)


def test_info_nce_masks():
  rng = np.random.default_rng(1)
  scores = rng.normal(size=(5, 7)).astype(np.float32)
  pos = np.array([0, 3, 6, 2, 1])
  cmask = rng.random((5, 7)) > 0.3
  cmask[np.arange(5), pos] = True
  qmask = np.array([True, False, True, True, False])
  np.testing.assert_allclose(info_nce(scores, pos, cmask, qmask).numpy(),
                             np_info_nce(scores, pos, cmask, qmask), rtol=1e-5)
  assert info_nce(scores, pos, cmask, np.zeros(5, bool)).numpy() == 0.0


def test_info_nce_accuracy():
  scores = np.array([[3.0, 1.0, 0.0], [0.0, 1.0, 2.0], [5.0, 4.0, 0.0]])
  pos = np.array([0, 1, 1])
  assert info_nce_accuracy(scores, pos).numpy() == pytest.approx(1 / 3)
  # Masking the stronger wrong candidate of the last query makes it a hit.
  cmask = np.array([[1, 1, 1], [1, 1, 1], [0, 1, 1]], bool)
  assert info_nce_accuracy(scores, pos, cmask).numpy() == pytest.approx(2 / 3)


@pytest.mark.parametrize("normalization", ["per_video", "per_query"])
@pytest.mark.parametrize("same_position", [False, True])
@pytest.mark.parametrize("steps", [1, 2])
def test_shot_loss_matches_numpy(same_position, steps, normalization):
  rng = np.random.default_rng(steps + 10 * same_position)
  b, g, k, d = 2, 5, 4, 6
  cands = rng.normal(size=(g, k, d)).astype(np.float32)
  cand_mask = np.ones((g, k), bool)
  cand_mask[1, 3:] = False   # a video with 3 shots
  cand_mask[4, 1:] = False   # a video with one shot
  offset = 1
  shots_mask = cand_mask[offset:offset + b]
  pred = rng.normal(size=(g, k, steps, d)).astype(np.float32)
  local = pred[offset:offset + b]
  # The building blocks: local queries of videos 1..2 against the candidates of all five.
  total, queries = info_nce_terms(*shot_prediction_scores(local, shots_mask, cands, cand_mask,
                                                          offset, same_position))
  got = total / max(shot_loss_denominator(shots_mask, queries, normalization), 1.0)
  want = np_shot_loss(local, shots_mask, cands, cand_mask, offset, same_position, normalization)
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
  # The loss of the whole batch: every video's queries against every video's shots.
  got = shot_loss(pred, cands, cand_mask, same_position, normalization)
  want = np_shot_loss(pred, cand_mask, cands, cand_mask, 0, same_position, normalization)
  np.testing.assert_allclose(got.value.numpy(), want, rtol=1e-5)
  assert got.share.numpy() == got.value.numpy()


def test_per_video_weighs_k_minus_1_queries_per_video():
  # One step, K = 4, every shot real: 3 queries per video, so eq. 1 is 3× the per-query mean.
  rng = np.random.default_rng(7)
  pred = rng.normal(size=(2, 4, 1, 5)).astype(np.float32)
  cands = rng.normal(size=(2, 4, 5)).astype(np.float32)
  mask = np.ones((2, 4), bool)
  per_video = shot_loss(pred, cands, mask).value.numpy()
  per_query = shot_loss(pred, cands, mask, normalization="per_query").value.numpy()
  np.testing.assert_allclose(per_video, 3 * per_query, rtol=1e-5)
  with pytest.raises(ValueError, match="per_video"):
    shot_loss(pred, cands, mask, normalization="per_shot")


def test_shot_scores_shapes_and_positive_is_the_target_shot():
  b, k, s, d = 3, 4, 2, 5
  pred = np.zeros((b, k, s, d), np.float32)
  cands = np.eye(b * k, d * 3)[:, :d].reshape(b, k, d).astype(np.float32)
  scores, pos, cmask, qmask = shot_prediction_scores(pred, np.ones((b, k), bool), cands,
                                                     np.ones((b, k), bool))
  assert scores.shape == (b * k * s, b * k)
  # Query (i=1, l=0, m=2) targets shot 2 of video 1: flat candidate 1·4 + 2.
  assert pos.numpy()[(1 * k + 0) * s + 1] == 6
  # Queries whose target runs past the last shot are masked: l + m >= K.
  assert qmask.numpy().reshape(b, k, s)[:, 3].sum() == 0
  assert qmask.numpy().reshape(b, k, s)[:, 2, 1].sum() == 0


def test_video_with_single_shot_gives_zero_finite_loss():
  pred = tf.Variable(np.ones((1, 4, 1, 3), np.float32))
  mask = np.array([[True, False, False, False]])
  with tf.GradientTape() as tape:
    term = shot_loss(pred, np.ones((1, 4, 3), np.float32), mask)
    loss = term.share
  assert loss.numpy() == 0.0 and term.stats["shot_accuracy"].numpy() == 0.0
  np.testing.assert_array_equal(tape.gradient(loss, pred).numpy(), 0.0)


def test_cross_replica_negatives_equal_the_global_batch(mirrored_strategy):
  strategy = mirrored_strategy
  rng = np.random.default_rng(4)
  b, k, d = 2, 3, 4  # per replica
  shots = rng.normal(size=(2 * b, k, d)).astype(np.float32)
  pred = rng.normal(size=(2 * b, k, 1, d)).astype(np.float32)
  mask = np.ones((2 * b, k), bool)
  mask[3, 2] = False  # replica 1's last video has two shots
  scale = tf.Variable(tf.ones([d]))
  with tf.GradientTape() as tape:
    want = shot_loss(pred, shots * scale, mask)
  want_grad = tape.gradient(want.share, scale)
  np.testing.assert_allclose(want.value.numpy(),
                             np_shot_loss(pred, mask, shots, mask, 0, False), rtol=1e-5)
  with strategy.scope():
    mirrored_scale = tf.Variable(tf.ones([d]))

  def replica_fn(s, p, m):
    with tf.GradientTape() as tape:
      term = shot_loss(p, s * mirrored_scale, m)
    return term, tape.gradient(term.share, mirrored_scale)

  ds = tf.data.Dataset.from_tensor_slices((shots, pred, mask)).batch(2 * b)
  batch = next(iter(strategy.experimental_distribute_dataset(ds)))
  term, grad = strategy.run(tf.function(replica_fn), args=batch)
  local = strategy.experimental_local_results
  for value, accuracy in zip(local(term.value), local(term.stats["shot_accuracy"])):
    np.testing.assert_allclose(value.numpy(), want.value.numpy(), rtol=1e-5)
    np.testing.assert_allclose(accuracy.numpy(), want.stats["shot_accuracy"].numpy(), rtol=1e-6)
  # The shares add up to the global loss; gradients flow back through the gather to every
  # replica's shots.
  np.testing.assert_allclose(sum(s.numpy() for s in local(term.share)), want.value.numpy(),
                             rtol=1e-5)
  np.testing.assert_allclose(strategy.reduce("SUM", grad, axis=None).numpy(),
                             want_grad.numpy(), rtol=1e-4)


def test_gather_outside_a_strategy_is_identity():
  shots = tf.ones((2, 3, 4))
  (cands, _), offset = gather_across_replicas(shots, tf.ones((2, 3), tf.bool))
  assert cands is shots and offset == 0
