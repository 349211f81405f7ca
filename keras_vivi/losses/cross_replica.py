"""Sharing candidates and counts across replicas, so losses see the global batch."""

import tensorflow as tf


def gather_across_replicas(*tensors) -> tuple[list[tf.Tensor], tf.Tensor | int]:
  """All replicas' values of `tensors`, concatenated on axis 0, inside `strategy.run`.

  Args:
    *tensors: each `[B, ...]` with the same local batch size B.

  Returns:
    `(gathered, offset)`: a list with each tensor gathered to `[G, ...]` (G the global batch)
    and the position of this replica's first element in it. Outside a strategy, or with one
    replica, the tensors are returned as they are with offset 0. Gradients flow back to every
    replica's values; bool tensors are gathered too.
  """
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return list(tensors), 0
  gathered = []
  for t in tensors:
    if t.dtype == tf.bool:  # all_gather has no bool kernel
      gathered.append(context.all_gather(tf.cast(t, tf.int32), axis=0) > 0)
    else:
      gathered.append(context.all_gather(t, axis=0))
  return gathered, replica_offset(tf.shape(tensors[0])[0])


def replica_offset(local_size) -> tf.Tensor | int:
  """Position of this replica's first element in the global batch (0 outside a strategy).

  Computed from every replica's `local_size`, so an uneven final batch still lines up.
  """
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return 0
  sizes = context.all_gather(tf.reshape(tf.cast(local_size, tf.int32), [1]), axis=0)
  replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32)
  return tf.reduce_sum(sizes[:replica_id])


def sum_across_replicas(value) -> tf.Tensor:
  """`value` summed over replicas inside `strategy.run` (itself outside a strategy)."""
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return value
  return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
