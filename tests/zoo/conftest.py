"""Zoo fixtures: an isolated registry, an empty TF-Hub cache, tiny SavedModels and archives."""

import hashlib
import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from keras_vivi.zoo import presets as presets_lib


@pytest.fixture(autouse=True)
def registry(monkeypatch):
  """The built-in registry only, restored after the test; no presets files from the env."""
  monkeypatch.setattr(presets_lib, "_registry", dict(presets_lib.BACKBONE_PRESETS))
  monkeypatch.setattr(presets_lib, "_loaded_files", set())
  monkeypatch.delenv(presets_lib.PRESETS_ENV, raising=False)
  return presets_lib._registry


@pytest.fixture
def cache(tmp_path, monkeypatch):
  """An empty `$TFHUB_CACHE_DIR`; `$KERAS_VIVI_OFFLINE` unset."""
  path = tmp_path / "tfhub_cache"
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(path))
  monkeypatch.delenv("KERAS_VIVI_OFFLINE", raising=False)
  return str(path)


@pytest.fixture
def no_network(monkeypatch):
  """Fails the test on any attempt to open a URL."""
  import urllib.request

  def refuse(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args[:1]}")
  monkeypatch.setattr(urllib.request, "urlopen", refuse)


def _tiny(scale):
  """features = mean over pixels of images @ w: a reusable SavedModel small enough to save fast."""
  root = tf.__internal__.tracking.AutoTrackable()
  w = tf.Variable(scale * np.arange(12, dtype=np.float32).reshape(3, 4) / 10.0)

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
  def call(images):
    return tf.reduce_mean(images, axis=[1, 2]) @ w

  root.__call__ = call
  root.variables = [w]
  root.trainable_variables = [w]
  return root


def tiny_features(images, scale):
  """NumPy reference of `_Tiny(scale)`."""
  w = scale * np.arange(12, dtype=np.float32).reshape(3, 4) / 10.0
  return np.asarray(images).mean(axis=(1, 2)) @ w


def save_tiny(path, scale=1.0):
  tf.saved_model.save(_tiny(scale), str(path))
  return str(path)


def make_archive(saved_model_dir, archive, prefix=""):
  """`.tar.gz` of the directory's contents (under `prefix/` if given); its sha256 by hashlib."""
  with tarfile.open(archive, "w:gz") as tar:
    for name in sorted(os.listdir(saved_model_dir)):
      tar.add(os.path.join(saved_model_dir, name), arcname=os.path.join(prefix, name))
  with open(archive, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="session")
def tiny_saved_models(tmp_path_factory):
  """Two tiny SavedModels (scales 1 and 2) and archives of them."""
  root = tmp_path_factory.mktemp("tiny")
  out = {}
  for scale in (1.0, 2.0):
    directory = save_tiny(root / f"model{scale:g}", scale)
    archive = str(root / f"model{scale:g}.tar.gz")
    out[scale] = (directory, archive, make_archive(directory, archive))
  return out


def ramp(batch=2, size=8):
  y = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
  x = np.linspace(0.0, 1.0, size, dtype=np.float32)[None, :, None]
  c = np.array([0.2, 0.5, 0.8], np.float32)
  return np.stack([np.mod(0.6 * y + 0.3 * x * (i + 1) + c + 0.1 * i, 1.0)
                   for i in range(batch)]).astype(np.float32)
