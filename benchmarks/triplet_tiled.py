"""The N²×N-tiling formulation of the semi-hard triplet loss, kept only as a benchmark baseline.

Every (anchor, positive) pair gets its own row of N negative distances, so memory is O(N³).
Same semantics as `keras_vivi.losses.semi_hard_triplet_loss`.
"""

import tensorflow as tf

from keras_vivi.losses import pairwise_squared_distances


def tiled_semi_hard_triplet_loss(embeddings, labels, margin=0.2):
  n = tf.shape(labels)[0]
  d = pairwise_squared_distances(embeddings)
  same = tf.equal(labels[:, None], labels[None, :])
  positives = same & ~tf.eye(n, dtype=tf.bool)
  negatives = ~same
  # Row p·N + a holds d(a, ·); it is compared with d(a, p).
  d_rows = tf.tile(d, [n, 1])                                       # [N², N]
  d_ap = tf.reshape(tf.transpose(d), [-1, 1])                      # [N², 1]
  neg_rows = tf.tile(negatives, [n, 1])
  farther = neg_rows & (d_rows > d_ap)
  big = tf.reduce_max(d) + 1.0
  smallest_farther = tf.reduce_min(tf.where(farther, d_rows, big), axis=1)
  has_farther = tf.reduce_any(farther, axis=1)
  largest = tf.reduce_max(tf.where(negatives, d, -1.0), axis=1)    # per anchor
  largest_rows = tf.tile(largest, [n])
  d_an = tf.where(has_farther, smallest_farther, largest_rows)
  d_an = tf.transpose(tf.reshape(d_an, [n, n]))                     # back to [anchor, positive]
  pairs = positives & tf.reduce_any(negatives, axis=1)[:, None]
  per_pair = tf.maximum(d - d_an + margin, 0.0)
  num = tf.reduce_sum(tf.cast(pairs, tf.float32))
  return tf.reduce_sum(tf.where(pairs, per_pair, 0.0)) / tf.maximum(num, 1.0)
