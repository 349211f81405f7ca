"""Semi-hard triplet loss (Schroff et al., 2015) in O(N²) memory."""

import collections

import tensorflow as tf

TripletTerms = collections.namedtuple("TripletTerms", ["sum", "count", "active"])


def squared_distances(a, b):
  """`[A, D], [N, D] -> [A, N]` squared Euclidean distances in float32, clamped at 0."""
  a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
  d = (tf.reduce_sum(tf.square(a), 1)[:, None] + tf.reduce_sum(tf.square(b), 1)[None, :]
       - 2.0 * tf.matmul(a, b, transpose_b=True))
  return tf.maximum(d, 0.0)


def pairwise_squared_distances(embeddings):
  """`[N, D] -> [N, N]` squared Euclidean distances, float32, clamped at 0, exact 0 diagonal."""
  d = squared_distances(embeddings, embeddings)
  return tf.linalg.set_diag(d, tf.zeros_like(d[:, 0]))


def semi_hard_triplet_terms(anchors, anchor_labels, candidates, candidate_labels, margin=0.2,
                            anchor_mask=None, candidate_mask=None, anchor_positions=None):
  """Sum and number of semi-hard triplet terms for `anchors` against a candidate set.

  Positives and negatives of each anchor are taken from the candidates; `anchor_positions`
  says where each anchor itself sits among the candidates so it is not its own positive. Used
  with the anchors of one replica and the candidates of the global batch, the sums and counts of
  all replicas add up to the single-device values.

  Args:
    anchors: `[A, D]`; anchor_labels: `[A]` int; anchor_mask: optional `[A]` bool.
    candidates: `[N, D]`; candidate_labels: `[N]` int; candidate_mask: optional `[N]` bool.
    margin: scalar α.
    anchor_positions: optional `[A]` int index of each anchor in `candidates` (default: none of
      the anchors is among the candidates).

  Returns:
    `TripletTerms(sum, count, active)` float32 scalars: the summed `max(d(a,p) − d(a,n*) + α, 0)`,
    the number of anchor–positive pairs (see `semi_hard_triplet_loss`) and how many of them
    have a non-zero loss.
  """
  anchor_labels = tf.convert_to_tensor(anchor_labels)
  candidate_labels = tf.convert_to_tensor(candidate_labels)
  a, n = tf.shape(anchor_labels)[0], tf.shape(candidate_labels)[0]
  anchor_valid = tf.ones([a], tf.bool) if anchor_mask is None else tf.cast(anchor_mask, tf.bool)
  cand_valid = tf.ones([n], tf.bool) if candidate_mask is None else tf.cast(candidate_mask,
                                                                            tf.bool)
  d = squared_distances(anchors, candidates)  # [A, N]
  same = tf.equal(anchor_labels[:, None], candidate_labels[None, :])
  both_valid = anchor_valid[:, None] & cand_valid[None, :]
  positives = same & both_valid
  if anchor_positions is not None:
    positives &= ~tf.one_hot(anchor_positions, n, on_value=True, off_value=False)
  negatives = ~same & both_valid

  # Each anchor's negatives in ascending distance; non-negatives sort last as +inf.
  neg_d = tf.where(negatives, tf.stop_gradient(d), float("inf"))
  order = tf.argsort(neg_d, axis=1, stable=True)
  sorted_neg = tf.gather(neg_d, order, batch_dims=1)
  num_neg = tf.reduce_sum(tf.cast(negatives, tf.int32), axis=1)  # [A]
  # Number of negatives with d(a, n) <= d(a, p): the first farther one sits at that rank.
  rank = tf.searchsorted(sorted_neg, tf.stop_gradient(d), side="right")  # [A, N]
  rank = tf.where(rank < num_neg[:, None], rank, tf.maximum(num_neg - 1, 0)[:, None])
  d_an = tf.gather(d, tf.gather(order, rank, batch_dims=1), batch_dims=1)

  pairs = positives & (num_neg > 0)[:, None]
  per_pair = tf.maximum(d - d_an + margin, 0.0)
  return TripletTerms(tf.reduce_sum(tf.where(pairs, per_pair, 0.0)),
                      tf.reduce_sum(tf.cast(pairs, tf.float32)),
                      tf.reduce_sum(tf.cast(pairs & (per_pair > 0), tf.float32)))


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
  terms = semi_hard_triplet_terms(embeddings, labels, embeddings, labels, margin, mask, mask,
                                  anchor_positions=tf.range(tf.shape(labels)[0]))
  return terms.sum / tf.maximum(terms.count, 1.0), terms.count
