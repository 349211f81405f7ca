"""Semi-hard triplet loss (Schroff et al., 2015) in O(N²) memory."""

import tensorflow as tf


def pairwise_squared_distances(embeddings):
  """`[N, D] -> [N, N]` squared Euclidean distances, float32, clamped at 0, exact 0 diagonal."""
  x = tf.cast(embeddings, tf.float32)
  sq = tf.reduce_sum(tf.square(x), axis=1)
  d = sq[:, None] + sq[None, :] - 2.0 * tf.matmul(x, x, transpose_b=True)
  return tf.linalg.set_diag(tf.maximum(d, 0.0), tf.zeros_like(sq))


def semi_hard_triplet_loss(embeddings, labels, margin=0.2, mask=None):
  """Semi-hard triplet loss over all anchor–positive pairs of a batch.

  For each anchor `a` and positive `p ≠ a` (same label), the negative is the one with the
  smallest `d(a, n) > d(a, p)`, or, if none is farther than the positive, the one with the
  largest `d(a, n)`; `d` is the squared Euclidean distance. The loss is the mean over pairs of
  `max(d(a, p) − d(a, n) + margin, 0)`. Anchors without negatives contribute no pair; with no
  pair at all the loss is 0 with zero gradient.

  Sorting every anchor's negative distances and binary-searching each positive distance keeps
  memory at O(N²) (the tiled formulation needs N²×N).

  Args:
    embeddings: `[N, D]`, any float dtype (computed in float32).
    labels: `[N]` integer class of each embedding.
    margin: scalar α.
    mask: optional `[N]` bool, false for padding, which takes part in no pair.

  Returns:
    Scalar float32 loss.
  """
  loss, _ = semi_hard_triplet_loss_and_pairs(embeddings, labels, margin, mask)
  return loss


def semi_hard_triplet_loss_and_pairs(embeddings, labels, margin=0.2, mask=None):
  """`semi_hard_triplet_loss` and the number of anchor–positive pairs it averaged over."""
  labels = tf.convert_to_tensor(labels)
  n = tf.shape(labels)[0]
  valid = tf.ones([n], tf.bool) if mask is None else tf.cast(mask, tf.bool)
  d = pairwise_squared_distances(embeddings)
  same = tf.equal(labels[:, None], labels[None, :])
  both_valid = valid[:, None] & valid[None, :]
  positives = same & both_valid & ~tf.eye(n, dtype=tf.bool)
  negatives = ~same & both_valid

  # Each anchor's negatives in ascending distance; non-negatives sort last as +inf.
  inf = tf.constant(float("inf"))
  order = tf.argsort(tf.where(negatives, tf.stop_gradient(d), inf), axis=1, stable=True)
  sorted_neg = tf.gather(tf.where(negatives, tf.stop_gradient(d), inf), order, batch_dims=1)
  num_neg = tf.reduce_sum(tf.cast(negatives, tf.int32), axis=1)  # [N]
  # Number of negatives with d(a, n) <= d(a, p): the first farther one sits at that rank.
  rank = tf.searchsorted(sorted_neg, tf.stop_gradient(d), side="right")  # [N, N]
  farthest = tf.maximum(num_neg - 1, 0)[:, None]
  rank = tf.where(rank < num_neg[:, None], rank, farthest)
  chosen = tf.gather(order, rank, batch_dims=1)  # [N, N] index of n* for each (a, p)
  d_an = tf.gather(d, chosen, batch_dims=1)

  pairs = positives & (num_neg > 0)[:, None]
  per_pair = tf.maximum(d - d_an + margin, 0.0)
  num_pairs = tf.reduce_sum(tf.cast(pairs, tf.float32))
  loss = tf.reduce_sum(tf.where(pairs, per_pair, 0.0)) / tf.maximum(num_pairs, 1.0)
  return loss, num_pairs
