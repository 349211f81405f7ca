"""Zoo fixtures: an isolated registry, an empty TF-Hub cache, tiny SavedModels and archives."""

import pytest

from keras_vivi.zoo import presets as presets_lib
from tests.helpers.archives import make_archive
from tests.helpers.tiny_modules import save_tiny


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
