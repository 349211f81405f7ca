"""Frame-, object- and supervised-level losses and their weighted total (eq. 3)."""

import math

import tensorflow as tf

from keras_vivi.losses.cross_replica import (LossTerm, gather_across_replicas, global_mean,
                                             replica_offset)
from keras_vivi.losses.triplet import DEFAULT_BLOCK_SIZE, semi_hard_triplet_terms


def frame_loss(frame_embeddings, frame_mask, margin=0.2, block_size=DEFAULT_BLOCK_SIZE
               ) -> LossTerm:
  """Semi-hard triplet loss over the frames of the global batch; frames of one (video, shot) are
  positives.

  Per replica: called in the replica context of any `tf.distribute` strategy (or outside one),
  this replica's frames are the anchors and every replica's frames the candidates.

  Args:
    frame_embeddings: `[B, K, F, D]` L2-normalised frame embeddings of this replica's videos.
    frame_mask: `[B, K, F]` bool, true for real frames.
    margin: triplet margin α.
    block_size: anchors per block (`semi_hard_triplet_terms`); the loss does not depend on it.

  Returns:
    `LossTerm` with stats `frame_active_triplets`: the fraction of anchor–positive pairs with a
    non-zero loss.
  """
  shape = tf.shape(frame_embeddings)
  b, k, f = shape[0], shape[1], shape[2]
  # Global video indices keep the (video, shot) labels unique across replicas.
  video = replica_offset(b) + tf.range(b)
  labels = tf.repeat(tf.reshape(video[:, None] * k + tf.range(k)[None, :], [-1]), f)
  return _triplet_term(_flatten(frame_embeddings), labels, tf.reshape(frame_mask, [-1]), margin,
                       block_size, "frame_active_triplets")


def object_loss(object_embeddings, class_ids, box_mask, margin=0.2,
                block_size=DEFAULT_BLOCK_SIZE) -> LossTerm:
  """Semi-hard triplet loss over the valid boxes of the global batch; boxes of the same detector
  class are positives. Per replica, as `frame_loss`.

  Args:
    object_embeddings: `[..., M, D]` L2-normalised box embeddings (any leading dims).
    class_ids: `[..., M]` int detector class of each box.
    box_mask: `[..., M]` bool, true for real boxes.
    margin: triplet margin α.
    block_size: anchors per block.

  Returns:
    `LossTerm` with stats `object_active_triplets`.
  """
  return _triplet_term(_flatten(object_embeddings), tf.reshape(class_ids, [-1]),
                       tf.reshape(box_mask, [-1]), margin, block_size, "object_active_triplets")


def _flatten(embeddings):
  """`[..., D] -> [N, D]`, D static when known (the blockwise loop's blocks need it under XLA)."""
  dim = embeddings.shape[-1]
  return tf.reshape(embeddings, [-1, tf.shape(embeddings)[-1] if dim is None else dim])


def _triplet_term(embeddings, labels, mask, margin, block_size, active_name):
  """This replica's anchors `[A, D]` against the candidates of all replicas."""
  (all_embeddings, all_labels, all_mask), offset = gather_across_replicas(
      embeddings, labels, mask)
  terms = semi_hard_triplet_terms(
      embeddings, labels, all_embeddings, all_labels, margin, mask, all_mask,
      anchor_positions=offset + tf.range(tf.shape(labels)[0]), block_size=block_size)
  share, value = global_mean(terms.sum, terms.count)
  return LossTerm(share, value, {active_name: global_mean(terms.active, terms.count)[1]})


def _masked_mean(values, mask):
  values = tf.reshape(tf.cast(values, tf.float32), [-1])
  if mask is None:
    return tf.reduce_mean(values)
  mask = tf.reshape(tf.cast(mask, tf.bool), [-1])
  num = tf.reduce_sum(tf.cast(mask, tf.float32))
  return tf.reduce_sum(tf.where(mask, values, 0.0)) / tf.maximum(num, 1.0)


CROSS_ENTROPY_NORMALIZATIONS = ("chance", "none")


def _check_normalization(normalization):
  if normalization not in CROSS_ENTROPY_NORMALIZATIONS:
    raise ValueError(f"cross-entropy normalization must be one of "
                     f"{CROSS_ENTROPY_NORMALIZATIONS}, got {normalization!r}.")


def _chance_scaled(per_example, chance, normalization):
  """`per_example` in units of its value at chance ("chance"), or in nats ("none")."""
  _check_normalization(normalization)
  return per_example / chance if normalization == "chance" else per_example


def box_classifier_loss(logits, class_ids, box_mask=None, normalization="chance") -> tf.Tensor:
  """Sigmoid cross-entropy of a C-way (600 in the paper) box classifier on one-hot targets.

  Summed over the C classes, averaged over valid boxes; with `normalization="chance"` divided by
  `C·log 2`, its value for all-zero logits (so 1 at chance whatever C), with `"none"` in nats.

  Args:
    logits: `[..., C]` per-box logits.
    class_ids: `[...]` int target class.
    box_mask: optional `[...]` bool.
    normalization: "chance" or "none".

  Returns:
    Scalar float32.
  """
  logits = tf.cast(logits, tf.float32)
  classes = logits.shape[-1]
  targets = tf.one_hot(class_ids, classes, dtype=tf.float32)
  per_box = tf.reduce_sum(
      tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits), axis=-1)
  return _masked_mean(_chance_scaled(per_box, classes * math.log(2.0), normalization), box_mask)


def supervised_loss(logits, labels, mask=None, normalization="chance") -> tf.Tensor:
  """Softmax cross-entropy, `logits [N, C]`, `labels [N]` int, optional `mask [N]`. Scalar.

  With `normalization="chance"` divided by `log C`, its value for a uniform prediction.
  """
  per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=labels, logits=tf.cast(logits, tf.float32))
  return _masked_mean(_chance_scaled(per_example, math.log(logits.shape[-1]), normalization),
                      mask)


def distillation_loss(student_logits, teacher_probs, mask=None, normalization="chance"
                      ) -> tf.Tensor:
  """Cross-entropy against soft teacher labels.

  Args:
    student_logits: `[..., C]`.
    teacher_probs: `[..., C]` probabilities (rows sum to 1).
    mask: optional `[...]` bool.
    normalization: "chance" divides by `log C`, the value of a uniform student; "none": nats.

  Returns:
    Scalar float32 `mean(−Σ_c t_c log softmax(z)_c)` (÷ log C).
  """
  per_example = tf.nn.softmax_cross_entropy_with_logits(
      labels=tf.cast(teacher_probs, tf.float32), logits=tf.cast(student_logits, tf.float32))
  return _masked_mean(
      _chance_scaled(per_example, math.log(student_logits.shape[-1]), normalization), mask)


def loss_weights(loss_config) -> dict[str, float]:
  """The weight of every loss term, by metric name: `ω·L_object + L_frame + β·L_shot`, plus
  `γ·L_supervised` and the weights of the ablations' terms.

  Args:
    loss_config: anything with the attributes `omega`, `beta`, `gamma`, `box_classifier_weight`
      and `distillation_weight`, such as `keras_vivi.configs.LossConfig`.
  """
  l = loss_config
  return {"object_loss": l.omega, "frame_loss": 1.0, "shot_loss": l.beta,
          "supervised_loss": l.gamma, "box_classifier_loss": l.box_classifier_weight,
          "distillation_loss": l.distillation_weight, "crop_loss": 1.0}


def total_loss(terms, weights) -> LossTerm:
  """The weighted sum of loss terms, e.g. `L = ω·L_object + L_frame + β·L_shot` (eq. 3).

  Args:
    terms: `{name: LossTerm}`, e.g. `{"frame_loss": frame_loss(...), ...}`.
    weights: `{name: float}` with a weight for every name of `terms` (`loss_weights`).

  Returns:
    `LossTerm` of the weighted shares and values, with the stats of all terms.
  """
  if not terms:
    raise ValueError("total_loss needs at least one loss term, got none.")
  missing = sorted(set(terms) - set(weights))
  if missing:
    raise ValueError(f"No weight for the loss terms {missing}; weights are given for "
                     f"{sorted(weights)}.")
  stats = {}
  for term in terms.values():
    stats.update(term.stats)
  return LossTerm(tf.add_n([weights[n] * t.share for n, t in terms.items()]),
                  tf.add_n([weights[n] * t.value for n, t in terms.items()]), stats)
