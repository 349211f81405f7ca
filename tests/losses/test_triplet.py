import numpy as np
import pytest
import tensorflow as tf

from keras_vivi.losses import semi_hard_triplet_loss, semi_hard_triplet_terms
from keras_vivi.losses.triplet import semi_hard_triplet_loss_and_pairs
from tests.helpers.references import reference_semi_hard


def random_case(rng, n, d, num_labels, masked_fraction=0.0):
  emb = rng.normal(size=(n, d))
  emb /= np.linalg.norm(emb, axis=1, keepdims=True)
  labels = rng.integers(0, num_labels, size=n)
  mask = rng.random(n) >= masked_fraction
  return emb.astype(np.float32), labels.astype(np.int32), mask


@pytest.mark.parametrize("n,d,num_labels,masked", [
    (2, 3, 2, 0.0), (7, 4, 2, 0.0), (16, 8, 3, 0.0), (33, 5, 5, 0.3), (64, 16, 10, 0.2),
    (48, 2, 24, 0.0)])
def test_matches_numpy_loop(n, d, num_labels, masked):
  rng = np.random.default_rng(n * 100 + d)
  emb, labels, mask = random_case(rng, n, d, num_labels, masked)
  for margin in (0.2, 1.0):
    want, want_pairs = reference_semi_hard(emb, labels, margin, mask)
    got, got_pairs = semi_hard_triplet_loss_and_pairs(emb, labels, margin, mask)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    assert got_pairs.numpy() == want_pairs


def test_ties_with_the_positive_are_not_semi_hard():
  # One-dimensional points: anchor 0, positive at distance 1, negatives at exactly 1 and 2.
  emb = np.array([[0.0], [1.0], [1.0], [-np.sqrt(2.0)]], np.float32)
  labels = np.array([0, 0, 1, 1])
  want, _ = reference_semi_hard(emb, labels, 0.5)
  got = semi_hard_triplet_loss(emb, labels, 0.5)
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
  # Anchor 0, positive 1 (d=1): the tie at d=1 is not farther, so n* is the one at d=2:
  # max(1 - 2 + 0.5, 0) = 0. Hand-check the full mean too.
  d = lambda i, j: float(np.sum((emb[i] - emb[j]) ** 2))
  pairs = []
  for a, p in ((0, 1), (1, 0), (2, 3), (3, 2)):
    negs = [j for j in range(4) if labels[j] != labels[a]]
    farther = [d(a, j) for j in negs if d(a, j) > d(a, p)]
    pairs.append(max(d(a, p) - (min(farther) if farther else max(d(a, j) for j in negs)) + 0.5,
                     0))
  np.testing.assert_allclose(got.numpy(), np.mean(pairs), rtol=1e-5)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype):
  rng = np.random.default_rng(3)
  emb, labels, mask = random_case(rng, 40, 8, 4, 0.1)
  half = tf.cast(emb, dtype)
  want, _ = reference_semi_hard(tf.cast(half, tf.float32).numpy(), labels, 0.2, mask)
  got = semi_hard_triplet_loss(half, labels, 0.2, mask)
  assert got.dtype == tf.float32
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("labels,mask", [
    ([0, 1, 2, 3], None),              # no positives
    ([5, 5, 5, 5], None),              # no negatives: all one class
    ([0, 0, 1, 1], [False] * 4),       # everything masked
    ([0, 0, 1, 1], [True, True, False, False]),  # positives left but no negative
])
def test_no_valid_pair_gives_zero_loss_and_zero_gradient(labels, mask):
  emb = tf.Variable(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
  with tf.GradientTape() as tape:
    loss = semi_hard_triplet_loss(emb, tf.constant(labels), 0.2, mask)
  grad = tape.gradient(loss, emb)
  assert loss.numpy() == 0.0
  np.testing.assert_array_equal(grad.numpy(), 0.0)


def test_gradient_matches_finite_differences_and_is_finite():
  rng = np.random.default_rng(7)
  emb, labels, mask = random_case(rng, 20, 4, 3, 0.2)
  x = tf.Variable(emb.astype(np.float64))
  with tf.GradientTape() as tape:
    loss = semi_hard_triplet_loss(x, labels, 0.5, mask)
  grad = tape.gradient(loss, x).numpy()
  assert np.all(np.isfinite(grad))
  # Central differences on the float64 reference (the loss is piecewise smooth; a small step
  # stays inside one piece for random points).
  eps = 1e-4
  for i, j in [(0, 0), (3, 1), (11, 2), (19, 3)]:
    plus, minus = emb.astype(np.float64).copy(), emb.astype(np.float64).copy()
    plus[i, j] += eps
    minus[i, j] -= eps
    numeric = (reference_semi_hard(plus, labels, 0.5, mask)[0]
               - reference_semi_hard(minus, labels, 0.5, mask)[0]) / (2 * eps)
    np.testing.assert_allclose(grad[i, j], numeric, rtol=1e-3, atol=1e-4)


def test_masked_entries_do_not_change_the_loss():
  rng = np.random.default_rng(11)
  emb, labels, _ = random_case(rng, 30, 6, 4)
  mask = np.arange(30) < 20
  padded = emb.copy()
  padded[20:] = 1e3  # garbage in padding must be ignored
  np.testing.assert_allclose(semi_hard_triplet_loss(padded, labels, 0.2, mask).numpy(),
                             semi_hard_triplet_loss(emb[:20], labels[:20], 0.2).numpy(),
                             rtol=1e-6)


def test_runs_inside_tf_function_with_dynamic_batch():
  fn = tf.function(semi_hard_triplet_loss, input_signature=[
      tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)])
  rng = np.random.default_rng(5)
  for n in (9, 17):
    emb, labels, _ = random_case(rng, n, 3, 3)
    np.testing.assert_allclose(fn(emb, labels).numpy(), reference_semi_hard(emb, labels, 0.2)[0],
                               rtol=1e-5, atol=1e-6)


def test_anchor_subsets_add_up_to_the_whole_batch():
  # What each replica computes: its own anchors against the global candidates.
  from keras_vivi.losses import semi_hard_triplet_terms
  rng = np.random.default_rng(21)
  emb, labels, mask = random_case(rng, 24, 5, 4, 0.2)
  want, want_pairs = reference_semi_hard(emb, labels, 0.2, mask)
  total, count = 0.0, 0.0
  for part in (slice(0, 10), slice(10, 24)):
    s, c, _ = semi_hard_triplet_terms(emb[part], labels[part], emb, labels, 0.2, mask[part],
                                      mask, anchor_positions=np.arange(24)[part])
    total, count = total + s.numpy(), count + c.numpy()
  assert count == want_pairs
  np.testing.assert_allclose(total / count, want, rtol=1e-5)


def reference_terms(anchor_index, emb, labels, margin, mask):
  """NumPy loop: sum, pair count, active count and the gradient of the sum with respect to the
  anchors (`emb[anchor_index]`) and to the candidates (`emb`), each anchor at its own index."""
  x = emb.astype(np.float64)
  n = len(labels)
  grad_anchor, grad_cand = np.zeros((len(anchor_index), x.shape[1])), np.zeros_like(x)
  total, count, active = 0.0, 0, 0
  for i, a in enumerate(anchor_index):
    negs = [j for j in range(n) if mask[a] and mask[j] and labels[j] != labels[a]]
    if not negs:
      continue
    for p in range(n):
      if p == a or not mask[p] or labels[p] != labels[a]:
        continue
      d = lambda j: np.sum((x[a] - x[j]) ** 2)
      farther = [j for j in negs if d(j) > d(p)]
      neg = min(farther, key=d) if farther else max(negs, key=d)
      value = d(p) - d(neg) + margin
      count += 1
      if value > 0:
        total, active = total + value, active + 1
        grad_anchor[i] += 2 * (x[neg] - x[p])
        grad_cand[p] += 2 * (x[p] - x[a])
        grad_cand[neg] += 2 * (x[a] - x[neg])
  return total, count, active, grad_anchor, grad_cand


def terms_and_gradients(emb, labels, mask, part, margin, block_size, jit_compile=False):
  """`semi_hard_triplet_terms` of the anchors `emb[part]` against all of `emb` and the gradient of
  its sum, traced with dynamic shapes as in a train step (compiled with XLA on request: static
  shapes)."""
  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)] * 2
               + [tf.TensorSpec([None], tf.int32)], jit_compile=jit_compile)
  def run(anchors, candidates, positions):
    with tf.GradientTape() as tape:
      tape.watch([anchors, candidates])
      terms = semi_hard_triplet_terms(anchors, tf.gather(labels, positions), candidates, labels,
                                      margin, tf.gather(mask, positions), mask,
                                      anchor_positions=positions, block_size=block_size)
    return list(terms), tape.gradient(terms.sum, [anchors, candidates])

  terms, grads = run(emb[part], emb, part.astype(np.int32))
  return [t.numpy() for t in terms], [g.numpy() for g in grads]


@pytest.fixture(scope="module")
def replica_case():
  rng = np.random.default_rng(31)
  emb, labels, mask = random_case(rng, 37, 6, 5, 0.25)
  part = np.arange(4, 29)  # 25 anchors, as one replica's share of the global candidates
  unblocked = terms_and_gradients(emb, labels, mask, part, 0.3, block_size=len(part))
  return emb, labels, mask, part, unblocked


def test_one_block_matches_the_numpy_loop_with_gradients(replica_case):
  emb, labels, mask, part, ((total, count, active), (ga, gc)) = replica_case
  want_sum, want_count, want_active, want_ga, want_gc = reference_terms(part, emb, labels, 0.3,
                                                                        mask)
  np.testing.assert_allclose(total, want_sum, rtol=1e-5)
  assert (count, active) == (want_count, want_active)
  assert want_active > 10
  np.testing.assert_allclose(ga, want_ga, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(gc, want_gc, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("block_size", [1, 4, 7, 24, 1024])  # 4, 7, 24 do not divide 25 anchors
def test_blocks_give_the_unblocked_terms_and_gradients(replica_case, block_size):
  emb, labels, mask, part, (want_terms, want_grads) = replica_case
  terms, grads = terms_and_gradients(emb, labels, mask, part, 0.3, block_size)
  np.testing.assert_allclose(terms, want_terms, rtol=1e-6)
  for got, want in zip(grads, want_grads):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("block_size", [1, 7, 1024])
def test_compiles_with_xla_to_the_same_terms_and_gradients(replica_case, block_size):
  emb, labels, mask, part, (want_terms, want_grads) = replica_case
  terms, grads = terms_and_gradients(emb, labels, mask, part, 0.3, block_size, jit_compile=True)
  np.testing.assert_allclose(terms, want_terms, rtol=1e-6)
  for got, want in zip(grads, want_grads):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_skewed_labels_match_the_numpy_loop_under_xla():
  # Object labels are detector classes: one class holds most boxes (Person ≈ 2/3 on real video).
  rng = np.random.default_rng(43)
  emb, _, mask = random_case(rng, 60, 4, 2, 0.1)
  labels = np.where(rng.random(60) < 0.7, 0, rng.integers(1, 6, 60)).astype(np.int32)
  want, want_pairs = reference_semi_hard(emb, labels, 0.3, mask)
  got, pairs = tf.function(semi_hard_triplet_loss_and_pairs, jit_compile=True)(
      emb, labels, 0.3, mask, block_size=16)
  assert pairs.numpy() == want_pairs
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


@pytest.mark.parametrize("block_size", [5, 80])
def test_many_positives_per_anchor(block_size):
  # ~40 positives per anchor.
  rng = np.random.default_rng(41)
  emb, labels, mask = random_case(rng, 80, 3, 2, 0.1)
  want, want_pairs = reference_semi_hard(emb, labels, 0.4, mask)
  x = tf.Variable(emb)
  with tf.GradientTape() as tape:
    got, pairs = semi_hard_triplet_loss_and_pairs(x, labels, 0.4, mask, block_size=block_size)
  assert pairs.numpy() == want_pairs
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
  _, count, _, ga, gc = reference_terms(np.arange(80), emb, labels, 0.4, mask)
  np.testing.assert_allclose(tape.gradient(got, x).numpy(), (ga + gc) / count, rtol=1e-4,
                             atol=1e-5)
  # Equal embeddings tie distances (gradients at ties are a choice, the loss is not).
  emb[10:14] = emb[3]
  emb[20:23] = emb[60]
  np.testing.assert_allclose(semi_hard_triplet_loss(emb, labels, 0.4, mask,
                                                    block_size=block_size).numpy(),
                             reference_semi_hard(emb, labels, 0.4, mask)[0], rtol=1e-5)


@pytest.mark.parametrize("block_size", [0, -3, 2.5, True, None])
def test_bad_block_size_is_a_clear_error(block_size):
  with pytest.raises(ValueError, match=f"block_size must be a positive int.*{block_size!r}"):
    semi_hard_triplet_loss(np.zeros((4, 2), np.float32), [0, 0, 1, 1], block_size=block_size)


def test_no_anchors_give_zero_terms_and_gradients():
  candidates = tf.constant(np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32))
  anchors = tf.zeros([0, 3])
  with tf.GradientTape() as tape:
    tape.watch([anchors, candidates])
    terms = semi_hard_triplet_terms(anchors, tf.zeros([0], tf.int32), candidates,
                                    [0, 0, 1, 1, 2], block_size=2)
  assert [t.numpy() for t in terms] == [0.0, 0.0, 0.0]
  ga, gc = tape.gradient(terms.sum, [anchors, candidates])
  assert ga.shape == (0, 3)
  np.testing.assert_array_equal(gc.numpy(), 0.0)
