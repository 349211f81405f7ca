"""Sharing candidates and counts across replicas, so losses see the global batch."""

from typing import NamedTuple

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


class LossTerm(NamedTuple):
  """One loss of the global batch as one replica sees it; every field is float32.

  Fields:
    share: scalar, this replica's part of the global-batch loss. The shares of all replicas add
      up to `value`; gradients are summed over replicas, so training on the share trains on the
      global loss. Outside a strategy it equals `value`.
    value: scalar, the global-batch loss, the same on every replica (no gradient).
    stats: `{metric name: scalar}` global statistics of the term (no gradient).
  """
  share: tf.Tensor
  value: tf.Tensor
  stats: dict[str, tf.Tensor]


def global_mean(local_sum, local_count) -> tuple[tf.Tensor, tf.Tensor]:
  """`(share, value)` of a mean over the global batch: `value = Σ sums / Σ counts` (0 when every
  count is 0) and this replica's share `local_sum / Σ counts` of it."""
  count = sum_across_replicas(tf.cast(local_count, tf.float32))
  share = tf.cast(local_sum, tf.float32) / tf.maximum(count, 1.0)
  return share, sum_across_replicas(tf.stop_gradient(share))


def mean_term(local_mean, mask) -> LossTerm:
  """A loss that is a mean over the true entries of `mask` (this replica's `[...]` bool), given
  its local mean, as a term of the global batch: its share and global value, no statistics."""
  count = tf.reduce_sum(tf.cast(mask, tf.float32))
  return LossTerm(*global_mean(local_mean * count, count), {})
