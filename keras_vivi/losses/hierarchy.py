"""Frame-, object- and supervised-level losses and their weighted total (eq. 3)."""

import math

import tensorflow as tf

from keras_vivi import configs
from keras_vivi.losses.triplet import semi_hard_triplet_loss_and_pairs


def frame_loss(frame_embeddings, frame_mask, margin=0.2) -> tuple[tf.Tensor, tf.Tensor]:
  """Semi-hard triplet loss over all frames; frames of the same (video, shot) are positives.

  Args:
    frame_embeddings: `[B, K, F, D]` L2-normalised frame embeddings.
    frame_mask: `[B, K, F]` bool, true for real frames.
    margin: triplet margin α.

  Returns:
    `(loss, num_pairs)`, scalars float32.
  """
  shape = tf.shape(frame_embeddings)
  shot_ids = tf.range(shape[0] * shape[1])
  labels = tf.repeat(shot_ids, shape[2])
  return semi_hard_triplet_loss_and_pairs(
      tf.reshape(frame_embeddings, [-1, shape[-1]]), labels, margin,
      tf.reshape(frame_mask, [-1]))


def object_loss(object_embeddings, class_ids, box_mask, margin=0.2) -> tuple[tf.Tensor, tf.Tensor]:
  """Semi-hard triplet loss over all valid boxes; boxes of the same detector class are positives.

  Args:
    object_embeddings: `[..., M, D]` L2-normalised box embeddings (any leading dims).
    class_ids: `[..., M]` int detector class of each box.
    box_mask: `[..., M]` bool, true for real boxes.
    margin: triplet margin α.

  Returns:
    `(loss, num_pairs)`, scalars float32.
  """
  dim = tf.shape(object_embeddings)[-1]
  return semi_hard_triplet_loss_and_pairs(
      tf.reshape(object_embeddings, [-1, dim]), tf.reshape(class_ids, [-1]), margin,
      tf.reshape(box_mask, [-1]))


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
  `γ·L_supervised` and the weights of the ablations' terms (`keras_vivi.configs.LossConfig`)."""
  l = loss_config
  return {"object_loss": l.omega, "frame_loss": 1.0, "shot_loss": l.beta,
          "supervised_loss": l.gamma, "box_classifier_loss": l.box_classifier_weight,
          "distillation_loss": l.distillation_weight, "crop_loss": 1.0}


def total_loss(losses, omega=5.0, beta=0.04, gamma=1.0) -> tf.Tensor:
  """`ω·L_object + L_frame + β·L_shot + γ·L_supervised` over the terms present in `losses`.

  Args:
    losses: dict with any of the scalar keys `object`, `frame`, `shot`, `supervised`.
    omega, beta, gamma: weights (paper: ω = 5, β = 0.04).

  Returns:
    Scalar float32.
  """
  unknown = set(losses) - {"object", "frame", "shot", "supervised"}
  if unknown:
    raise ValueError(f"Unknown loss terms {sorted(unknown)}; expected object, frame, shot, "
                     "supervised.")
  weights = loss_weights(configs.LossConfig(omega=omega, beta=beta, gamma=gamma))
  return tf.add_n([weights[f"{k}_loss"] * tf.cast(v, tf.float32) for k, v in losses.items()]
                  or [tf.constant(0.0)])
