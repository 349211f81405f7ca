"""Resolving presets and handles through the TF-Hub cache, offline, with sha256 checks."""

import hashlib
import os
import shutil
import urllib.error

import numpy as np
import pytest
import tensorflow_hub as hub
import tf_keras

import keras_vivi
from keras_vivi import files
from keras_vivi.zoo import loader
from keras_vivi.zoo import presets as presets_lib
from keras_vivi.zoo.presets import Preset
from tests.helpers.archives import make_archive
from tests.helpers.images import ramp_images
from tests.helpers.tiny_modules import tiny_features

KAGGLE = "https://www.kaggle.com/models/someone/vivi-objects/TensorFlow2/default/1"


def sha1_dir(cache, key):
  """tensorflow_hub's cache folder for `key`, computed here by hashlib."""
  return os.path.join(cache, hashlib.sha1(key.encode("utf8")).hexdigest())


def outputs(layer):
  return layer(ramp_images(2, 8)).numpy()


def test_local_directory(tiny_saved_models, cache):
  directory = tiny_saved_models[1.0][0]
  assert loader.resolve_handle(directory) == directory
  layer = keras_vivi.load_feature_extractor("file://" + directory)
  assert isinstance(layer, hub.KerasLayer) and not layer.trainable
  np.testing.assert_allclose(outputs(layer), tiny_features(ramp_images(2, 8), 1.0), rtol=1e-6)
  assert not os.path.exists(cache)  # A directory is read in place.


def test_directory_on_another_filesystem_is_read_in_place(tiny_saved_models, cache):
  """ram:// stands for any tf.io.gfile filesystem (gs:// included) that holds an export."""
  handle = "ram://zoo_loader/tiny"
  files.copy_tree(tiny_saved_models[1.0][0], handle)
  assert loader.resolve_handle(handle, offline=True) == handle
  layer = keras_vivi.load_feature_extractor(handle)
  np.testing.assert_allclose(outputs(layer), tiny_features(ramp_images(2, 8), 1.0), rtol=1e-6)
  assert not os.path.exists(cache)


def test_local_archive_is_verified_and_unpacked_into_the_cache(tiny_saved_models, cache,
                                                               tmp_path):
  _, source, digest = tiny_saved_models[1.0]
  archive = str(tmp_path / "m.tar.gz")
  shutil.copy(source, archive)
  path = loader.resolve_handle(archive, sha256=digest)
  assert path == sha1_dir(cache, archive)
  assert {"saved_model.pb", "variables"} <= set(os.listdir(path))
  with open(path + ".sha256") as f:
    assert f.readline().split() == [digest, archive]  # then each unpacked file's sha256
  # A second resolution uses the cached copy as it is.
  open(os.path.join(path, "marker"), "w").close()
  assert loader.resolve_handle("file://" + archive, sha256=digest) == path
  assert os.path.exists(os.path.join(path, "marker"))
  # Another archive at the same path (republished) replaces the cached copy.
  shutil.copy(tiny_saved_models[2.0][1], archive)
  path = loader.resolve_handle(archive)
  assert not os.path.exists(os.path.join(path, "marker"))
  np.testing.assert_allclose(outputs(hub.KerasLayer(path)), tiny_features(ramp_images(2, 8), 2.0),
                             rtol=1e-6)
  # Gone from disk: its cached copy still loads (offline), checked against the recorded digest.
  os.remove(archive)
  assert loader.resolve_handle(archive, sha256=tiny_saved_models[2.0][2], offline=True) == path
  with pytest.raises(loader.ChecksumMismatchError, match="Cached module"):
    loader.resolve_handle(archive, sha256=digest, offline=True)


def test_wrong_checksum(tiny_saved_models, cache):
  _, archive, digest = tiny_saved_models[1.0]
  wrong = "0" * 64
  with pytest.raises(loader.ChecksumMismatchError) as error:
    loader.resolve_handle(archive, sha256=wrong)
  message = str(error.value)
  assert archive in message and f"has sha256 {digest}, expected {wrong}" in message
  assert not os.path.exists(sha1_dir(cache, archive))


def test_corrupted_archives(tiny_saved_models, cache, tmp_path):
  _, source, digest = tiny_saved_models[1.0]
  truncated = str(tmp_path / "truncated.tar.gz")
  with open(source, "rb") as f:
    data = f.read()
  with open(truncated, "wb") as f:
    f.write(data[:len(data) // 2])
  with pytest.raises(loader.CorruptArchiveError, match="truncated.tar.gz' of handle .* cannot "
                     "be unpacked"):
    loader.resolve_handle(truncated)
  # With the published digest the damage is caught before unpacking.
  with pytest.raises(loader.ChecksumMismatchError, match=f"expected {digest}"):
    loader.resolve_handle(truncated, sha256=digest)
  nested = str(tmp_path / "nested.tar.gz")
  make_archive(tiny_saved_models[1.0][0], nested, prefix="model")
  with pytest.raises(loader.CorruptArchiveError,
                     match=r"no saved_model.pb at its top level \(found \['model'\]\)"):
    loader.resolve_handle(nested)
  assert sorted(os.listdir(cache)) == []  # No half-unpacked leftovers.


def test_remote_handle_not_cached_offline_fails_fast(cache, no_network, monkeypatch):
  monkeypatch.setenv(loader.OFFLINE_ENV, "1")
  with pytest.raises(loader.ModuleNotCachedError) as error:
    keras_vivi.load_feature_extractor(KAGGLE)
  message = str(error.value)
  assert f"Cannot resolve handle {KAGGLE!r}: offline" in message
  assert f"TF-Hub cache {cache!r}" in message and sha1_dir(cache, KAGGLE) in message
  assert "keras_vivi.zoo.cache_archive(" in message and "tar -xzf" in message


def test_remote_handle_online_goes_to_tensorflow_hub(cache, tiny_saved_models, monkeypatch):
  """With network access an uncached handle is downloaded by hub.resolve; failures explain."""
  calls = []

  def fake_resolve(handle):
    calls.append(handle)
    return tiny_saved_models[1.0][0]
  monkeypatch.setattr(loader.hub, "resolve", fake_resolve)
  layer = keras_vivi.load_feature_extractor(KAGGLE)
  assert calls == [KAGGLE]
  np.testing.assert_allclose(outputs(layer), tiny_features(ramp_images(2, 8), 1.0), rtol=1e-6)

  def unreachable(handle):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
  monkeypatch.setattr(loader.hub, "resolve", unreachable)
  with pytest.raises(loader.ModuleNotCachedError, match="fetching it failed \\(URLError.*"
                     "not in the TF-Hub cache"):
    keras_vivi.load_feature_extractor(KAGGLE)


def test_cached_remote_handle_loads_offline_like_tensorflow_hub(tiny_saved_models, cache,
                                                                no_network, monkeypatch):
  _, archive, digest = tiny_saved_models[2.0]
  path = loader.cache_archive(KAGGLE, archive, sha256=digest)
  assert path == sha1_dir(cache, KAGGLE)
  # tensorflow_hub itself finds it there, without a download.
  assert hub.resolve(KAGGLE) == path
  monkeypatch.setenv(loader.OFFLINE_ENV, "true")
  layer = keras_vivi.load_feature_extractor(KAGGLE)
  np.testing.assert_allclose(outputs(layer), tiny_features(ramp_images(2, 8), 2.0), rtol=1e-6)


def serve_archive(monkeypatch, archive):
  """Downloads answered with `archive`; returns the list of handles fetched."""
  fetched = []

  def fake_download(handle, path):
    fetched.append(handle)
    shutil.copy(archive, path)
  monkeypatch.setattr(loader, "_download", fake_download)
  return fetched


def test_remote_archive_with_checksum(tiny_saved_models, cache, monkeypatch):
  _, archive, digest = tiny_saved_models[1.0]
  url = "https://example.org/zoo/tiny-1.tar.gz"
  fetched = serve_archive(monkeypatch, archive)
  with pytest.raises(loader.ChecksumMismatchError, match="expected " + "1" * 64):
    loader.resolve_handle(url, sha256="1" * 64)
  assert loader.resolve_handle(url, sha256=digest) == sha1_dir(cache, url)
  assert loader.resolve_handle(url, sha256=digest) == sha1_dir(cache, url)
  assert fetched == [url, url]  # The cached copy is not fetched again.
  with pytest.raises(loader.ChecksumMismatchError, match="Cached module"):
    loader.resolve_handle(url, sha256="2" * 64, offline=True)


def test_stale_cached_remote_module_is_fetched_again_online(tiny_saved_models, cache,
                                                             monkeypatch):
  url = "https://example.org/zoo/tiny-1.tar.gz"
  _, old_archive, old_digest = tiny_saved_models[2.0]
  _, new_archive, new_digest = tiny_saved_models[1.0]
  module_dir = loader.cache_archive(url, old_archive, sha256=old_digest)
  open(os.path.join(module_dir, "marker"), "w").close()
  served, fetched = [new_archive], []

  def fake_download(handle, path):
    fetched.append(handle)
    shutil.copy(served[0], path)
  monkeypatch.setattr(loader, "_download", fake_download)
  assert loader.resolve_handle(url, sha256=new_digest) == module_dir == sha1_dir(cache, url)
  assert fetched == [url] and not os.path.exists(os.path.join(module_dir, "marker"))
  with open(module_dir + ".sha256") as f:
    assert f.read().split()[0] == new_digest
  np.testing.assert_allclose(outputs(hub.KerasLayer(module_dir)),
                             tiny_features(ramp_images(2, 8), 1.0), rtol=1e-6)
  assert loader.resolve_handle(url, sha256=new_digest) == module_dir
  assert fetched == [url]  # Now it matches: used from the cache.
  # The server still has another archive: the error is about the fetched archive, the copy in
  # the cache (which another loader may use) stays, and the next call fetches again.
  wrong = "3" * 64
  with pytest.raises(loader.ChecksumMismatchError,
                     match=f"Archive .* has sha256 {new_digest}, expected {wrong}"):
    loader.resolve_handle(url, sha256=wrong)
  assert fetched == [url, url]
  assert loader._read_digest(module_dir) == new_digest
  with pytest.raises(loader.ChecksumMismatchError, match=f"expected {wrong}"):
    loader.resolve_handle(url, sha256=wrong)
  assert fetched == [url, url, url]


def test_stale_cached_remote_module_offline_names_what_to_delete(tiny_saved_models, cache,
                                                                 no_network):
  url = "https://example.org/zoo/tiny-1.tar.gz"
  _, old_archive, old_digest = tiny_saved_models[2.0]
  _, new_archive, new_digest = tiny_saved_models[1.0]
  module_dir = loader.cache_archive(url, old_archive, sha256=old_digest)
  assert module_dir == sha1_dir(cache, url)
  with pytest.raises(loader.ChecksumMismatchError) as error:
    loader.resolve_handle(url, sha256=new_digest, offline=True)
  message = str(error.value)
  assert f"Cached module {module_dir!r}" in message
  assert f"has sha256 {old_digest}, expected {new_digest}" in message
  assert "cannot be fetched again offline" in message
  assert f"`rm -rf {module_dir} {module_dir}.sha256`" in message
  assert f"keras_vivi.zoo.cache_archive({url!r}, 'ARCHIVE.tar.gz')" in message
  assert "Fetch it again" not in message
  assert sorted(os.listdir(cache)) == sorted([os.path.basename(module_dir),
                                              os.path.basename(module_dir) + ".sha256"])
  # Doing what it says works.
  shutil.rmtree(module_dir)
  os.remove(module_dir + ".sha256")
  loader.cache_archive(url, new_archive, sha256=new_digest)
  path = loader.resolve_handle(url, sha256=new_digest, offline=True)
  np.testing.assert_allclose(outputs(hub.KerasLayer(path)), tiny_features(ramp_images(2, 8), 1.0),
                             rtol=1e-6)


def test_gcs_directory_needs_network(cache):
  with pytest.raises(loader.ModuleNotCachedError, match="gs://bucket/model.*read in place"):
    loader.resolve_handle("gs://bucket/model", offline=True)


def test_presets_by_name(tiny_saved_models, cache, tmp_path):
  _, archive, digest = tiny_saved_models[2.0]
  presets_lib.register_preset(Preset("tiny", "vivi", handle=archive, sha256=digest, version=1))
  layer = keras_vivi.load_feature_extractor("tiny", trainable=True, offline=True)
  assert layer.trainable and len(layer.trainable_weights) == 1
  np.testing.assert_allclose(outputs(layer), tiny_features(ramp_images(2, 8), 2.0), rtol=1e-6)

  presets_lib.register_preset(Preset("tiny_bad", "vivi", handle=archive, sha256="f" * 64))
  with pytest.raises(loader.ChecksumMismatchError, match=f"handle {archive!r} has sha256 {digest}"):
    keras_vivi.load_feature_extractor("tiny_bad")

  with pytest.raises(loader.PresetNotAvailableError) as error:
    keras_vivi.load_feature_extractor("vivi_objects")
  message = str(error.value)
  assert "'vivi_objects'" in message and "no published weights" in message
  assert "vivi-train --experiment=vivi_objects" in message
  assert "Presets with weights: tiny, tiny_bad." in message

  with pytest.raises(presets_lib.UnknownPresetError, match="Unknown preset 'tiyn'.*tiny"):
    keras_vivi.load_feature_extractor("tiyn")


def test_fine_tune_step_changes_the_weights(tiny_saved_models, cache):
  layer = keras_vivi.load_feature_extractor(tiny_saved_models[1.0][1], trainable=True)
  model = tf_keras.Sequential([layer, tf_keras.layers.Dense(2)])
  model.compile(tf_keras.optimizers.SGD(0.5),
                tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  before = layer.trainable_weights[0].numpy().copy()
  model.train_on_batch(ramp_images(2, 8), np.array([0, 1]))
  assert np.abs(layer.trainable_weights[0].numpy() - before).max() > 1e-4


def test_plain_tensorflow_hub_calls_go_through_the_zoo_resolver(tiny_saved_models, cache,
                                                                monkeypatch):
  """`hub.KerasLayer(handle)` of a preset's handle gets its sha256 check, cache and offline
  mode, like `load_feature_extractor`; so do the detector and the teacher (same resolver)."""
  _, archive, digest = tiny_saved_models[1.0]
  url = "https://example.org/zoo/tiny-1.tar.gz"
  fetched = serve_archive(monkeypatch, archive)
  presets_lib.register_preset(Preset("tiny_remote", "vivi", "a tiny module", handle=url,
                                     sha256="3" * 64, output_dim=4))
  with pytest.raises(loader.ChecksumMismatchError, match="expected " + "3" * 64):
    hub.KerasLayer(url)
  presets_lib.register_preset(Preset("tiny_remote", "vivi", "a tiny module", handle=url,
                                     sha256=digest, output_dim=4), overwrite=True)
  np.testing.assert_allclose(outputs(hub.KerasLayer(url)), tiny_features(ramp_images(2, 8), 1.0),
                             rtol=1e-6)
  assert hub.resolve(url) == sha1_dir(cache, url) and fetched == [url, url]
  # Offline, a handle that is not cached is the zoo's error naming the cache, not a hang.
  monkeypatch.setenv("KERAS_VIVI_OFFLINE", "1")
  with pytest.raises(loader.ModuleNotCachedError, match="offline.*TFHUB_CACHE_DIR"):
    hub.load("https://example.org/zoo/other-1.tar.gz")


def test_the_default_cache_is_keras_vivis_not_a_shared_temp_dir(monkeypatch, tmp_path):
  monkeypatch.delenv("TFHUB_CACHE_DIR", raising=False)
  monkeypatch.setenv("KERAS_VIVI_CACHE", str(tmp_path / "cache"))
  assert loader.cache_dir() == str(tmp_path / "cache" / "tfhub_modules")
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub"))  # tensorflow_hub's setting first
  assert loader.cache_dir() == str(tmp_path / "hub")
