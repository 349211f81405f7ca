import numpy as np

from keras_vivi.evaluation import nearest_neighbour_same_class


def reference(features, labels, mask):
  x = features / np.linalg.norm(features, axis=1, keepdims=True)
  hits = queries = 0
  for i in range(len(x)):
    if not mask[i]:
      continue
    others = [j for j in range(len(x)) if j != i and mask[j]]
    if not others:
      continue
    j = max(others, key=lambda j: x[i] @ x[j])
    queries += 1
    hits += labels[j] == labels[i]
  return hits / max(queries, 1), hits, queries


def test_matches_a_loop():
  rng = np.random.default_rng(0)
  for n, c in ((12, 3), (40, 5)):
    features = rng.normal(size=(n, 6)).astype(np.float32)
    labels = rng.integers(0, c, n)
    mask = rng.random(n) > 0.2
    frac, hits, queries = nearest_neighbour_same_class(features, labels, mask)
    want = reference(features, labels, mask)
    assert (hits.numpy(), queries.numpy()) == want[1:]
    np.testing.assert_allclose(frac.numpy(), want[0], rtol=1e-6)


def test_separated_classes_score_one_and_single_object_is_no_query():
  features = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
  frac, hits, queries = nearest_neighbour_same_class(features, [0, 0, 1, 1])
  assert frac.numpy() == 1.0 and queries.numpy() == 4
  frac, _, queries = nearest_neighbour_same_class(features, [0, 0, 1, 1], [True, False, False, False])
  assert queries.numpy() == 0 and frac.numpy() == 0.0
