"""The object diagnostic of the paper's Table 2: does an object's nearest neighbour share its class?"""

import tensorflow as tf


def nearest_neighbour_same_class(features, labels, mask=None):
  """Fraction of objects whose nearest other object (cosine similarity) has the same class.

  Args:
    features: `[N, C]` object representations.
    labels: `[N]` int class of each object.
    mask: optional `[N]` bool; masked objects are neither queries nor neighbours.

  Returns:
    `(fraction, hits, queries)`: float32 fraction and the two int32 counts behind it (for a
    Fisher exact test between two models). Queries need at least one other valid object.
  """
  x = tf.math.l2_normalize(tf.cast(features, tf.float32), axis=-1)
  n = tf.shape(x)[0]
  valid = tf.ones([n], tf.bool) if mask is None else tf.cast(mask, tf.bool)
  sim = tf.matmul(x, x, transpose_b=True)
  allowed = valid[None, :] & ~tf.eye(n, dtype=tf.bool)
  neighbour = tf.argmax(tf.where(allowed, sim, -2.0), axis=1, output_type=tf.int32)
  queries = valid & tf.reduce_any(allowed, axis=1)
  hit = queries & tf.equal(tf.gather(labels, neighbour), labels)
  hits = tf.reduce_sum(tf.cast(hit, tf.int32))
  total = tf.reduce_sum(tf.cast(queries, tf.int32))
  return tf.cast(hits, tf.float32) / tf.cast(tf.maximum(total, 1), tf.float32), hits, total
