import ast
import pathlib
import types

import numpy as np
import pytest
import tensorflow as tf

import keras_vivi.losses
from keras_vivi.losses import (LossTerm, box_classifier_loss, distillation_loss, frame_loss,
                               loss_weights, mean_term, object_loss, supervised_loss, total_loss)
from tests.helpers.references import reference_semi_hard


def unit(rng, *shape):
  x = rng.normal(size=shape)
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_frame_loss_uses_video_and_shot_as_label():
  rng = np.random.default_rng(0)
  b, k, f, d = 2, 3, 4, 5
  emb = unit(rng, b, k, f, d)
  mask = rng.random((b, k, f)) > 0.2
  labels = np.array([[[i * k + j] * f for j in range(k)] for i in range(b)]).reshape(-1)
  want, _ = reference_semi_hard(emb.reshape(-1, d), labels, 0.2, mask.reshape(-1))
  got = frame_loss(emb, mask, 0.2)
  np.testing.assert_allclose(got.value.numpy(), want, rtol=1e-5)
  # One replica: its share is the whole loss.
  assert got.share.numpy() == got.value.numpy()
  # Unit vectors are at most 4 apart: with α = 10 every pair is active.
  assert frame_loss(emb, mask, 10.0).stats["frame_active_triplets"].numpy() == 1.0


def test_object_loss_uses_class_and_box_mask():
  rng = np.random.default_rng(1)
  emb = unit(rng, 2, 3, 4, 5, 6)  # [B, K, F, M, D]
  classes = rng.integers(0, 4, size=(2, 3, 4, 5))
  mask = rng.random((2, 3, 4, 5)) > 0.5
  want, _ = reference_semi_hard(emb.reshape(-1, 6), classes.reshape(-1), 0.3, mask.reshape(-1))
  got = object_loss(emb, classes, mask, 0.3)
  np.testing.assert_allclose(got.value.numpy(), want, rtol=1e-5)
  assert got.share.numpy() == got.value.numpy()


def test_object_loss_with_one_class_is_zero():
  rng = np.random.default_rng(2)
  got = object_loss(unit(rng, 10, 4), np.full(10, 7), np.ones(10, bool))
  assert got.value.numpy() == 0.0 and got.stats["object_active_triplets"].numpy() == 0.0


def test_separated_classes_have_no_active_triplet():
  # Two classes at opposite poles: d(a,p) = 0 < d(a,n) = 4 − α for α = 0.5.
  emb = np.array([[1, 0], [1, 0], [-1, 0], [-1, 0]], np.float32)
  got = object_loss(emb, [0, 0, 1, 1], np.ones(4, bool), 0.5)
  assert got.value.numpy() == 0.0 and got.stats["object_active_triplets"].numpy() == 0.0


def global_batch_on_two_replicas(strategy, fn, *arrays):
  """`fn` on each replica's half of `arrays`: the replicas' `LossTerm`s."""
  batch = next(iter(strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensor_slices(arrays).batch(len(arrays[0])))))
  terms = strategy.run(tf.function(fn), args=batch)
  return [LossTerm(*(strategy.experimental_local_results(x)[r] for x in terms[:2]),
                   {k: strategy.experimental_local_results(v)[r] for k, v in terms.stats.items()})
          for r in range(2)]


def test_frame_loss_on_two_replicas_is_the_global_batch_loss(mirrored_strategy):
  rng = np.random.default_rng(5)
  b, k, f, d = 4, 2, 3, 4  # global batch; two videos per replica
  emb = unit(rng, b, k, f, d)
  mask = rng.random((b, k, f)) > 0.2
  want = frame_loss(emb, mask, 0.2)
  # Labels stay unique across replicas: video 0 of replica 1 is not video 0 of replica 0.
  labels = np.repeat(np.arange(b * k), f)
  np.testing.assert_allclose(
      want.value.numpy(), reference_semi_hard(emb.reshape(-1, d), labels, 0.2, mask.reshape(-1))[0],
      rtol=1e-5)
  replicas = global_batch_on_two_replicas(mirrored_strategy, frame_loss, emb, mask)
  for term in replicas:
    np.testing.assert_allclose(term.value.numpy(), want.value.numpy(), rtol=1e-5)
    np.testing.assert_allclose(term.stats["frame_active_triplets"].numpy(),
                               want.stats["frame_active_triplets"].numpy(), rtol=1e-5)
  np.testing.assert_allclose(sum(t.share.numpy() for t in replicas), want.value.numpy(),
                             rtol=1e-5)


def test_mean_term_on_two_replicas_is_the_global_mean(mirrored_strategy):
  # Replica 0: mean 1 over 3 entries; replica 1: mean 5 over 1 entry. (3 + 5) / 4 = 2.
  means = np.array([1.0, 1.0, 5.0, 5.0], np.float32)
  masks = np.array([[1, 1, 1], [0, 0, 0], [1, 0, 0], [0, 0, 0]], bool)

  def fn(mean, mask):
    return mean_term(mean[0], mask)

  replicas = global_batch_on_two_replicas(mirrored_strategy, fn, means, masks)
  assert [t.value.numpy() for t in replicas] == [2.0, 2.0]
  assert [t.share.numpy() for t in replicas] == [0.75, 1.25]
  one = mean_term(tf.constant(3.0), masks[:1])
  assert one.share.numpy() == one.value.numpy() == 3.0 and one.stats == {}


def test_box_classifier_loss():
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(4, 6)).astype(np.float32)
  classes = np.array([0, 5, 2, 2])
  mask = np.array([True, True, False, True])
  sig = 1 / (1 + np.exp(-logits.astype(np.float64)))
  onehot = np.eye(6)[classes]
  per_box = -(onehot * np.log(sig) + (1 - onehot) * np.log(1 - sig)).sum(-1)
  np.testing.assert_allclose(box_classifier_loss(logits, classes, mask, "none").numpy(),
                             per_box[mask].mean(), rtol=1e-5)
  # In units of chance: 6·log 2 for six classes at zero logits.
  np.testing.assert_allclose(box_classifier_loss(logits, classes, mask).numpy(),
                             per_box[mask].mean() / (6 * np.log(2)), rtol=1e-5)
  np.testing.assert_allclose(box_classifier_loss(np.zeros((2, 602)), [1, 9]).numpy(), 1.0,
                             rtol=1e-6)
  with pytest.raises(ValueError, match="normalization must be one of"):
    box_classifier_loss(logits, classes, mask, "mean")


@pytest.mark.parametrize("normalization, unit", [("none", 1.0), ("chance", np.log(3))])
def test_supervised_and_distillation_losses(normalization, unit):
  rng = np.random.default_rng(4)
  logits = rng.normal(size=(5, 3)).astype(np.float32)
  labels = np.array([0, 2, 1, 1, 0])
  logp = logits - np.log(np.exp(logits.astype(np.float64)).sum(-1, keepdims=True))
  np.testing.assert_allclose(supervised_loss(logits, labels, normalization=normalization).numpy(),
                             -logp[np.arange(5), labels].mean() / unit, rtol=1e-5)
  teacher = rng.dirichlet(np.ones(3), size=5)
  mask = np.array([1, 1, 0, 1, 0], bool)
  np.testing.assert_allclose(distillation_loss(logits, teacher, mask, normalization).numpy(),
                             -(teacher * logp).sum(-1)[mask].mean() / unit, rtol=1e-5)
  # One-hot teacher labels reduce distillation to the supervised loss.
  np.testing.assert_allclose(
      distillation_loss(logits, np.eye(3)[labels], normalization=normalization).numpy(),
      supervised_loss(logits, labels, normalization=normalization).numpy(), rtol=1e-6)
  # A uniform prediction scores 1 in units of chance.
  if normalization == "chance":
    np.testing.assert_allclose(supervised_loss(np.zeros((2, 1000)), [3, 7]).numpy(), 1.0,
                               rtol=1e-6)


def test_loss_weights_read_any_config_like_object():
  config = types.SimpleNamespace(omega=5.0, beta=0.04, gamma=2.0, box_classifier_weight=0.5,
                                 distillation_weight=3.0)
  assert loss_weights(config) == {
      "object_loss": 5.0, "frame_loss": 1.0, "shot_loss": 0.04, "supervised_loss": 2.0,
      "box_classifier_loss": 0.5, "distillation_loss": 3.0, "crop_loss": 1.0}


def test_losses_do_not_depend_on_configs():
  package = pathlib.Path(keras_vivi.losses.__file__).parent
  for source in package.glob("*.py"):
    names = set()
    for node in ast.walk(ast.parse(source.read_text())):
      if isinstance(node, ast.Import):
        names.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom):
        names.update(f"{node.module}.{alias.name}" for alias in node.names)
    assert not [n for n in names if n.startswith("keras_vivi.configs")], source


def term(share, value, **stats):
  return LossTerm(tf.constant(share), tf.constant(value), stats)


def test_total_loss_weighs_shares_and_values():
  weights = {"object_loss": 5.0, "frame_loss": 1.0, "shot_loss": 0.04, "supervised_loss": 2.0}
  got = total_loss({"object_loss": term(1.0, 2.0, object_active_triplets=0.5),
                    "frame_loss": term(2.0, 3.0), "shot_loss": term(4.0, 10.0, shot_accuracy=0.25),
                    "supervised_loss": term(0.5, 1.5)}, weights)
  assert got.value.numpy() == pytest.approx(5 * 2 + 3 + 0.04 * 10 + 2 * 1.5)
  assert got.share.numpy() == pytest.approx(5 * 1 + 2 + 0.04 * 4 + 2 * 0.5)
  assert got.stats == {"object_active_triplets": 0.5, "shot_accuracy": 0.25}
  with pytest.raises(ValueError, match=r"No weight for the loss terms \['objects'\]"):
    total_loss({"objects": term(1.0, 1.0)}, weights)
  with pytest.raises(ValueError, match="at least one loss term"):
    total_loss({}, weights)
