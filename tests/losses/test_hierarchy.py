import numpy as np
import pytest

from keras_vivi.losses import (box_classifier_loss, distillation_loss, frame_loss, object_loss,
                               supervised_loss, total_loss)
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
  want, want_pairs = reference_semi_hard(emb.reshape(-1, d), labels, 0.2, mask.reshape(-1))
  got, pairs = frame_loss(emb, mask, 0.2)
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
  assert pairs.numpy() == want_pairs


def test_object_loss_uses_class_and_box_mask():
  rng = np.random.default_rng(1)
  emb = unit(rng, 2, 3, 4, 5, 6)  # [B, K, F, M, D]
  classes = rng.integers(0, 4, size=(2, 3, 4, 5))
  mask = rng.random((2, 3, 4, 5)) > 0.5
  want, _ = reference_semi_hard(emb.reshape(-1, 6), classes.reshape(-1), 0.3, mask.reshape(-1))
  got, _ = object_loss(emb, classes, mask, 0.3)
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


def test_object_loss_with_one_class_is_zero():
  rng = np.random.default_rng(2)
  got, pairs = object_loss(unit(rng, 10, 4), np.full(10, 7), np.ones(10, bool))
  assert got.numpy() == 0.0 and pairs.numpy() == 0


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


def test_total_loss_weights():
  got = total_loss({"object": 2.0, "frame": 3.0, "shot": 10.0, "supervised": 1.5},
                   omega=5.0, beta=0.04, gamma=2.0)
  assert got.numpy() == pytest.approx(5 * 2 + 3 + 0.04 * 10 + 2 * 1.5)
  assert total_loss({"frame": 1.0, "shot": 1.0}).numpy() == pytest.approx(1.04)
  with pytest.raises(ValueError, match="objects"):
    total_loss({"objects": 1.0})
