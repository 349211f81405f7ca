"""InfoNCE (eq. 1 of the paper) and the shot-prediction loss built on it."""

import tensorflow as tf

from keras_vivi.losses.cross_replica import (LossTerm, gather_across_replicas, global_mean,
                                             replica_offset)


def info_nce(scores, positive_index, candidate_mask=None, query_mask=None) -> tf.Tensor:
  """Mean over queries of `−s_pos + logsumexp(s) − log K` (eq. 1).

  Args:
    scores: `[Q, K]` critic scores of every query against its K candidates.
    positive_index: `[Q]` int, column of the true candidate.
    candidate_mask: optional `[Q, K]` or `[K]` bool; masked candidates are left out of the
      log-sum-exp and K counts only valid ones.
    query_mask: optional `[Q]` bool; masked queries contribute nothing.

  Returns:
    Scalar float32; 0 when no query is valid.
  """
  total, count = info_nce_terms(scores, positive_index, candidate_mask, query_mask)
  return total / tf.maximum(count, 1.0)


def info_nce_terms(scores, positive_index, candidate_mask=None,
                   query_mask=None) -> tuple[tf.Tensor, tf.Tensor]:
  """Sum of the per-query terms of `info_nce` and the number of valid queries (float32)."""
  scores = tf.cast(scores, tf.float32)
  q, k = tf.shape(scores)[0], tf.shape(scores)[1]
  if candidate_mask is None:
    candidate_mask = tf.ones([q, k], tf.bool)
  candidate_mask = tf.broadcast_to(tf.cast(candidate_mask, tf.bool), [q, k])
  valid = tf.ones([q], tf.bool) if query_mask is None else tf.cast(query_mask, tf.bool)
  positive = tf.gather(scores, positive_index, batch_dims=1)
  # The positive always counts as a candidate, so every term stays finite.
  candidate_mask |= tf.one_hot(positive_index, k, on_value=True, off_value=False)
  masked = tf.where(candidate_mask, scores, tf.constant(-1e9, tf.float32))
  count = tf.reduce_sum(tf.cast(candidate_mask, tf.float32), axis=1)
  per_query = -positive + tf.reduce_logsumexp(masked, axis=1) - tf.math.log(count)
  return (tf.reduce_sum(tf.where(valid, per_query, 0.0)),
          tf.reduce_sum(tf.cast(valid, tf.float32)))


def info_nce_accuracy(scores, positive_index, candidate_mask=None, query_mask=None) -> tf.Tensor:
  """Fraction of valid queries whose best-scoring valid candidate is the positive.

  Shapes as in `info_nce`; returns a scalar float32 (0 when no query is valid).
  """
  scores = tf.cast(scores, tf.float32)
  if candidate_mask is not None:
    scores = tf.where(tf.broadcast_to(tf.cast(candidate_mask, tf.bool), tf.shape(scores)),
                      scores, -float("inf"))
  hit = tf.equal(tf.argmax(scores, axis=1, output_type=tf.int32),
                 tf.cast(positive_index, tf.int32))
  valid = (tf.ones_like(hit) if query_mask is None else tf.cast(query_mask, tf.bool))
  num = tf.reduce_sum(tf.cast(valid, tf.float32))
  return tf.reduce_sum(tf.cast(hit & valid, tf.float32)) / tf.maximum(num, 1.0)


def shot_prediction_scores(predictions, shot_mask, candidates=None, candidate_mask=None,
                           batch_offset=0, same_position=False
                           ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
  """Critic scores of every shot prediction against the candidate shots.

  Query `(i, l, m)` predicts shot `l + m` of local video `i` from the context up to `l`; it is
  valid when both shots exist. By default the candidates are all shots of all videos (the
  paper's "contrasting against the entire batch"); `same_position=True` is the strict eq. 1,
  contrasting only against shot `l + m` of every video.

  Args:
    predictions: `[B, K, S, D]` from `ShotPredictor` (S prediction steps).
    shot_mask: `[B, K]` bool, true for real shots (a valid prefix per video).
    candidates: `[G, K, D]` shot representations of the global batch (G ≥ B videos); the local
      shots when not distributed.
    candidate_mask: `[G, K]` bool for `candidates`.
    batch_offset: index in `candidates` of local video 0 (replica id × B under a strategy).
    same_position: use the strict same-position negatives of eq. 1.

  Returns:
    `(scores [Q, C], positive_index [Q], candidate_mask [Q, C] or [C], query_mask [Q])` with
    `Q = B·K·S` and `C = G·K` (or `G` with `same_position`); feed them to `info_nce`.
  """
  predictions = tf.cast(predictions, tf.float32)
  candidates = tf.cast(candidates, tf.float32)
  b, k, s = tf.shape(predictions)[0], tf.shape(predictions)[1], tf.shape(predictions)[2]
  g = tf.shape(candidates)[0]
  shot_mask = tf.cast(shot_mask, tf.bool)
  candidate_mask = tf.cast(candidate_mask, tf.bool)

  target = tf.range(k)[:, None] + tf.range(1, s + 1)[None, :]  # [K, S]
  target_c = tf.minimum(target, k - 1)
  query_mask = (shot_mask[:, :, None] & (target < k)[None]
                & tf.gather(shot_mask, target_c, axis=1))           # [B, K, S]
  video = tf.broadcast_to(tf.range(b)[:, None, None] + batch_offset, [b, k, s])
  target_c = tf.broadcast_to(target_c[None], [b, k, s])
  flat_pred = tf.reshape(predictions, [-1, tf.shape(predictions)[-1]])

  if same_position:
    # Candidates for target position t: shot t of every video.
    per_target = tf.gather(candidates, target_c, axis=1)  # [G, B, K, S, D]
    scores = tf.einsum("qd,gqd->qg", flat_pred,
                       tf.reshape(per_target, [g, -1, tf.shape(candidates)[-1]]))
    positive = tf.reshape(video, [-1])
    cmask = tf.transpose(tf.reshape(tf.gather(candidate_mask, target_c, axis=1), [g, -1]))
  else:
    scores = tf.matmul(flat_pred, tf.reshape(candidates, [-1, tf.shape(candidates)[-1]]),
                       transpose_b=True)
    positive = tf.reshape(video * k + target_c, [-1])
    cmask = tf.reshape(candidate_mask, [-1])
  return scores, positive, cmask, tf.reshape(query_mask, [-1])


SHOT_NORMALIZATIONS = ("per_video", "per_query")


def shot_loss_denominator(shot_mask, num_queries, normalization="per_video") -> tf.Tensor:
  """What the summed shot-loss terms are divided by.

  `"per_video"` is eq. 1 as written: the terms of all positions ℓ and steps m are summed per
  video and averaged over the N videos (those with at least one real shot). `"per_query"`
  averages over the valid (i, ℓ, m) queries instead: for one prediction step, 1/(K−1) of
  eq. 1's weight.

  Args:
    shot_mask: `[B, K]` bool, true for real shots.
    num_queries: scalar float32, the number of valid queries (from `info_nce_terms`).
    normalization: one of `SHOT_NORMALIZATIONS`.

  Returns:
    Scalar float32.
  """
  if normalization not in SHOT_NORMALIZATIONS:
    raise ValueError(f"normalization must be one of {SHOT_NORMALIZATIONS}, got "
                     f"{normalization!r}.")
  if normalization == "per_query":
    return tf.cast(num_queries, tf.float32)
  return tf.reduce_sum(tf.cast(tf.reduce_any(tf.cast(shot_mask, tf.bool), axis=1), tf.float32))


def shot_loss(predictions, shots, shot_mask, same_position=False, normalization="per_video"
              ) -> LossTerm:
  """Shot-level InfoNCE loss (eq. 1) over the global batch.

  Per replica: called in the replica context of any `tf.distribute` strategy (or outside one),
  this replica's predictions are the queries and the shots of every replica the candidates.

  Args:
    predictions: `[B, K, S, D]` from `ShotPredictor` for this replica's videos.
    shots: `[B, K, D]` this replica's shot representations, the candidates.
    shot_mask: `[B, K]` bool, true for real shots (a valid prefix per video).
    same_position: use the strict same-position negatives (see `shot_prediction_scores`).
    normalization: as in `shot_loss_denominator`.

  Returns:
    `LossTerm` with stats `shot_accuracy`: the fraction of valid queries whose best-scoring
    candidate is the true next shot.
  """
  (candidates, candidate_mask), _ = gather_across_replicas(tf.cast(shots, tf.float32), shot_mask)
  scores = shot_prediction_scores(predictions, shot_mask, candidates, candidate_mask,
                                  replica_offset(tf.shape(shot_mask)[0]), same_position)
  total, queries = info_nce_terms(*scores)
  share, value = global_mean(total, shot_loss_denominator(shot_mask, queries, normalization))
  accuracy = info_nce_accuracy(*scores)
  return LossTerm(share, value, {"shot_accuracy": global_mean(accuracy * queries, queries)[1]})
