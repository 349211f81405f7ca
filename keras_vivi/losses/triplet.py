"""Semi-hard triplet loss (Schroff et al., 2015), blockwise over anchors: O(block × N) memory."""

import collections

import tensorflow as tf

TripletTerms = collections.namedtuple("TripletTerms", ["sum", "count", "active"])

DEFAULT_BLOCK_SIZE = 512


def squared_distances(a, b) -> tf.Tensor:
  """`[A, D], [N, D] -> [A, N]` squared Euclidean distances in float32, clamped at 0."""
  return tf.maximum(_unclamped_squared_distances(a, b), 0.0)


def _unclamped_squared_distances(a, b):
  a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
  return (tf.reduce_sum(tf.square(a), 1)[:, None] + tf.reduce_sum(tf.square(b), 1)[None, :]
          - 2.0 * tf.matmul(a, b, transpose_b=True))


def pairwise_squared_distances(embeddings) -> tf.Tensor:
  """`[N, D] -> [N, N]` squared Euclidean distances, float32, clamped at 0, exact 0 diagonal."""
  d = squared_distances(embeddings, embeddings)
  return tf.linalg.set_diag(d, tf.zeros_like(d[:, 0]))


_EMPTY = tf.int64.max
_POSITIVE_BIT = 1 << 31    # set in the keys of positives: at equal distance they sort after negatives
_INDEX_BITS = _POSITIVE_BIT - 1


def _keys(d, positives):
  """`[B, N]` int64 keys ordering (distance, negatives before positives, candidate index).

  `d >= 0`, so its float32 bits order like the values as int32; candidate indices stay below
  2³¹.
  """
  index = tf.cast(tf.range(tf.shape(d)[1]), tf.int64)
  bits = tf.bitwise.left_shift(tf.cast(tf.bitcast(d, tf.int32), tf.int64), 32)
  return bits + tf.where(positives, tf.constant(_POSITIVE_BIT, tf.int64), 0) + index[None, :]


def _decode(keys):
  """`_keys` back to (distance, candidate index)."""
  d = tf.bitcast(tf.cast(tf.bitwise.right_shift(keys, 32), tf.int32), tf.float32)
  return d, tf.cast(tf.bitwise.bitwise_and(keys, _INDEX_BITS), tf.int32)


def _select(anchors, anchor_labels, anchor_valid, anchor_positions, candidates,
            candidate_labels, candidate_valid, margin):
  """Semi-hard selection for a block of `B` anchors against all `N` candidates, static shapes.

  Each anchor's positives and negatives are sorted together by distance, a negative before a
  positive at equal distance. The semi-hard negative of a positive is then the first negative
  after it, found by counting the negatives up to the positive's place; without one it is the
  farthest negative. Ties between negatives resolve to the lower index for the nearest and the
  higher for the farthest, as a stable sort of the negatives would.

  Returns the `[B, N]` unclamped distances and `[B, N]` tensors, one entry per sorted place: the
  candidate index of the positive there and of its `n*`, the pair mask (a real positive of an
  anchor that has a negative) and `d(a,p) − d(a,n*) + α`.
  """
  b, n = tf.shape(anchor_labels)[0], tf.shape(candidate_labels)[0]
  raw = _unclamped_squared_distances(anchors, candidates)
  d = tf.maximum(raw, 0.0)
  same = tf.equal(anchor_labels[:, None], candidate_labels[None, :])
  both_valid = anchor_valid[:, None] & candidate_valid[None, :]
  # An anchor position of -1 (not among the candidates) gives an all-false one-hot row.
  positives = same & both_valid & ~tf.one_hot(anchor_positions, n, on_value=True,
                                              off_value=False)
  negatives = ~same & both_valid
  ordered = tf.sort(tf.where(positives | negatives, _keys(d, positives), _EMPTY), axis=1)
  real = ordered != _EMPTY
  is_positive = real & (tf.bitwise.bitwise_and(ordered, _POSITIVE_BIT) != 0)
  is_negative = real & ~is_positive
  # Negatives at or before each place, i.e. nearer than (or tied with) the positive there.
  nearer = tf.cumsum(tf.cast(is_negative, tf.int32), axis=1)
  # The negatives in order, compacted to the front of each row (one EMPTY column past the end).
  row = tf.range(b)[:, None] * (n + 1)
  compact = tf.reshape(tf.math.unsorted_segment_min(
      tf.reshape(tf.where(is_negative, ordered, _EMPTY), [-1]),
      tf.reshape(row + tf.where(is_negative, nearer - 1, n), [-1]), b * (n + 1)), [b, n + 1])
  beyond = tf.gather(compact, nearer, batch_dims=1)  # nearest negative strictly farther
  farthest = tf.reduce_max(tf.where(is_negative, ordered, -1), 1)
  pairs = is_positive & (farthest >= 0)[:, None]
  d_ap, positive = _decode(ordered)
  d_an, hardest = _decode(tf.where(beyond == _EMPTY, farthest[:, None], beyond))
  excess = tf.where(pairs, d_ap - d_an + margin, 0.0)
  return raw, tf.where(pairs, positive, 0), tf.where(pairs, hardest, 0), pairs, excess


def semi_hard_triplet_terms(anchors, anchor_labels, candidates, candidate_labels, margin=0.2,
                            anchor_mask=None, candidate_mask=None, anchor_positions=None,
                            block_size=DEFAULT_BLOCK_SIZE) -> TripletTerms:
  """Sum and number of semi-hard triplet terms for `anchors` against a candidate set.

  Positives and negatives of each anchor are taken from the candidates; `anchor_positions`
  says where each anchor itself sits among the candidates so it is not its own positive. Used
  with the anchors of one replica and the candidates of the global batch, the sums and counts of
  all replicas add up to the single-device values.

  Anchors are processed `block_size` at a time, forward and backward (the backward pass
  recomputes each block's selection instead of keeping it), so memory is O(block_size × N)
  rather than O(A × N); the result does not depend on `block_size`.

  Args:
    anchors: `[A, D]`; anchor_labels: `[A]` int; anchor_mask: optional `[A]` bool.
    candidates: `[N, D]`; candidate_labels: `[N]` int; candidate_mask: optional `[N]` bool.
    margin: scalar α.
    anchor_positions: optional `[A]` int index of each anchor in `candidates` (default: none of
      the anchors is among the candidates).
    block_size: positive int, anchors per block. A step peaks at ~70 bytes per anchor–candidate
      pair of a block: 2.7 GB at N = 81,920 with the default 512 (`benchmarks/RESULTS.md`).

  Returns:
    `TripletTerms(sum, count, active)` float32 scalars: the summed `max(d(a,p) − d(a,n*) + α, 0)`,
    the number of anchor–positive pairs (see `semi_hard_triplet_loss`) and how many of them
    have a non-zero loss. Only `sum` has a gradient.
  """
  if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
    raise ValueError(f"block_size must be a positive int (anchors per block), got {block_size!r}.")
  anchors = tf.cast(tf.convert_to_tensor(anchors), tf.float32)
  candidates = tf.cast(tf.convert_to_tensor(candidates), tf.float32)
  anchor_labels = tf.convert_to_tensor(anchor_labels)
  candidate_labels = tf.convert_to_tensor(candidate_labels)
  a, n = tf.shape(anchor_labels)[0], tf.shape(candidate_labels)[0]
  anchor_valid = tf.ones([a], tf.bool) if anchor_mask is None else tf.cast(anchor_mask, tf.bool)
  candidate_valid = (tf.ones([n], tf.bool) if candidate_mask is None
                     else tf.cast(candidate_mask, tf.bool))
  positions = (tf.fill([a], -1) if anchor_positions is None
               else tf.cast(anchor_positions, tf.int32))
  run = _blockwise_terms_in_graph if tf.executing_eagerly() else _blockwise_terms
  return TripletTerms(*run(
      anchors, candidates, anchor_labels, anchor_valid, positions, candidate_labels,
      candidate_valid, tf.cast(margin, tf.float32), block_size))


def _to_blocks(x, padding, num_blocks, block_size):
  """`x` `[A, ...]` padded with `padding` to `[num_blocks, block_size, ...]`."""
  x = tf.pad(x, [[0, num_blocks * block_size - tf.shape(x)[0]]] + [[0, 0]] * (x.shape.rank - 1),
             constant_values=padding)
  return tf.reshape(x, tf.concat([[num_blocks, block_size], tf.shape(x)[1:]], 0))


def _block_gradients(upstream, raw, positive, hardest, pairs, excess, block, candidates,
                     block_size, n):
  """`upstream` times the gradient of one block's hinge sum: (∂/∂block, ∂/∂candidates)."""
  # Each pair on the hinge (tf.maximum passes the gradient at 0 too) weighs d(a,p) with +1
  # and d(a,n*) with −1, where the clamp of d at 0 passes it (raw >= 0).
  on_hinge = pairs & (excess >= 0)
  sign = lambda index, s: s * tf.cast(
      on_hinge & (tf.gather(raw, index, batch_dims=1) >= 0), tf.float32)
  row = tf.range(block_size)[:, None] * n
  weight = upstream * tf.reshape(tf.math.unsorted_segment_sum(
      tf.reshape(tf.stack([sign(positive, 1.0), sign(hardest, -1.0)]), [-1]),
      tf.reshape(tf.stack([row + positive, row + hardest]), [-1]), block_size * n),
                                 [block_size, n])
  # d = |a|² + |c|² − 2 a·c, so ∂/∂a = 2 Σ_c w (a − c) and ∂/∂c = 2 Σ_a w (c − a).
  return (2.0 * (tf.reduce_sum(weight, 1)[:, None] * block - tf.matmul(weight, candidates)),
          2.0 * (tf.reduce_sum(weight, 0)[:, None] * candidates
                 - tf.matmul(weight, block, transpose_a=True)))


def _blockwise_terms(anchors, candidates, anchor_labels, anchor_valid, positions,
                     candidate_labels, candidate_valid, margin, block_size):
  """`(sum, count, active)` accumulated over blocks of anchors, with a blockwise gradient of sum.

  Every block has one static size (the last one padded with invalid anchors), so the loop
  compiles under XLA.
  """
  if anchors.shape[0] is not None:  # no block larger than the anchors
    block_size = max(1, min(block_size, anchors.shape[0]))
  a, dim = tf.shape(anchors)[0], anchors.shape[1]
  num_blocks = (a + block_size - 1) // block_size

  blocks = lambda x, padding: _to_blocks(x, padding, num_blocks, block_size)
  anchor_labels, anchor_valid, positions = (blocks(anchor_labels, 0), blocks(anchor_valid, False),
                                            blocks(positions, -1))

  @tf.custom_gradient
  def terms(anchors, candidates):
    anchor_blocks = blocks(anchors, 0.0)

    def select(i):
      return _select(anchor_blocks[i], anchor_labels[i], anchor_valid[i], positions[i],
                     candidates, candidate_labels, candidate_valid, margin)

    def body(i, total, count, active):
      _, _, _, pairs, excess = select(i)
      return (i + 1, total + tf.reduce_sum(tf.maximum(excess, 0.0)),
              count + tf.reduce_sum(tf.cast(pairs, tf.float32)),
              active + tf.reduce_sum(tf.cast(excess > 0, tf.float32)))

    zero = tf.constant(0.0)
    # parallel_iterations=1: concurrent iterations would each hold their [block, N] tensors.
    _, total, count, active = tf.while_loop(lambda i, *_: i < num_blocks, body,
                                            (tf.constant(0), zero, zero, zero),
                                            parallel_iterations=1)

    def grad(upstream, *_):
      n = tf.shape(candidates)[0]

      def body(i, anchor_grads, candidate_grad):
        anchor_grad, block_candidate_grad = _block_gradients(
            upstream, *select(i), anchor_blocks[i], candidates, block_size, n)
        return i + 1, anchor_grads.write(i, anchor_grad), candidate_grad + block_candidate_grad

      _, anchor_grads, candidate_grad = tf.while_loop(
          lambda i, *_: i < num_blocks, body,
          (tf.constant(0), tf.TensorArray(tf.float32, size=num_blocks,
                                          element_shape=tf.TensorShape([block_size, dim])),
           tf.zeros_like(candidates)), parallel_iterations=1)
      return tf.reshape(anchor_grads.stack(), [-1, tf.shape(anchors)[1]])[:a], candidate_grad

    return (total, count, active), grad

  return terms(anchors, candidates)


# Called eagerly, the blocks run in a graph: eager ops under a tape would keep every block's
# [block, N] intermediates until the gradient, O(A × N) in all.
_blockwise_terms_in_graph = tf.function(_blockwise_terms, reduce_retracing=True, autograph=False)


def semi_hard_triplet_loss(embeddings, labels, margin=0.2, mask=None,
                           block_size=DEFAULT_BLOCK_SIZE) -> tf.Tensor:
  """Semi-hard triplet loss over all anchor–positive pairs of a batch.

  For each anchor `a` and positive `p ≠ a` (same label), the negative is the one with the
  smallest `d(a, n) > d(a, p)`, or, if none is farther than the positive, the one with the
  largest `d(a, n)`; `d` is the squared Euclidean distance. The loss is the mean over pairs of
  `max(d(a, p) − d(a, n) + margin, 0)`. Anchors without negatives contribute no pair; with no
  pair at all the loss is 0 with zero gradient.

  A block of anchors at a time, each anchor's positives are sorted by distance and its negatives
  bucketed by how many positives are nearer: memory O(block_size × N) forward and backward (the
  tiled formulation needs N²×N).

  Args:
    embeddings: `[N, D]`, any float dtype (computed in float32).
    labels: `[N]` integer class of each embedding.
    margin: scalar α.
    mask: optional `[N]` bool, false for padding, which takes part in no pair.
    block_size: anchors per block (see `semi_hard_triplet_terms`); the loss does not depend on it.

  Returns:
    Scalar float32 loss.
  """
  loss, _ = semi_hard_triplet_loss_and_pairs(embeddings, labels, margin, mask, block_size)
  return loss


def semi_hard_triplet_loss_and_pairs(embeddings, labels, margin=0.2, mask=None,
                                     block_size=DEFAULT_BLOCK_SIZE) -> tuple[tf.Tensor, tf.Tensor]:
  """`semi_hard_triplet_loss` and the number of anchor–positive pairs it averaged over."""
  terms = semi_hard_triplet_terms(embeddings, labels, embeddings, labels, margin, mask, mask,
                                  anchor_positions=tf.range(tf.shape(labels)[0]),
                                  block_size=block_size)
  return terms.sum / tf.maximum(terms.count, 1.0), terms.count
