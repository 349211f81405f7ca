"""Gathering shot representations across replicas for the shot-level negatives."""

import tensorflow as tf


def gather_shots(shots, shot_mask):
  """All replicas' shots, for use as InfoNCE candidates inside `strategy.run`.

  Args:
    shots: `[B, K, D]` local shot representations.
    shot_mask: `[B, K]` bool.

  Returns:
    `(candidates [G, K, D], candidate_mask [G, K], batch_offset)` with `G` the global batch and
    `batch_offset` the position of the local videos in the global batch. Outside a strategy
    (or with one replica) the local tensors are returned with offset 0. Gradients flow back
    to every replica's shots.
  """
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return shots, shot_mask, 0
  candidates = context.all_gather(shots, axis=0)
  candidate_mask = context.all_gather(tf.cast(shot_mask, tf.int32), axis=0) > 0
  # Offsets from the gathered sizes, so an uneven final batch still lines up.
  sizes = context.all_gather(tf.shape(shots)[:1], axis=0)
  replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32)
  return candidates, candidate_mask, tf.reduce_sum(sizes[:replica_id])
