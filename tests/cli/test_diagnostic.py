"""vivi-diagnostic and its library (evaluation.object_comparison) on records prepared from two
real sample videos, with two small exports."""

import json
import os

import numpy as np
import pytest
import tensorflow_hub as hub
import tf_keras
from scipy import stats

from hub_export import exporter
from keras_vivi import configs
from keras_vivi import models
from keras_vivi.data import prepare
from keras_vivi.data import sample_videos
from keras_vivi.evaluation import object_comparison
from keras_vivi.evaluation import object_diagnostic
from keras_vivi.zoo import loader
from keras_vivi.zoo import presets as presets_lib
from tests.helpers.cli import run_module

SIZE = 64


@pytest.fixture(scope="module")
def records(tmp_path_factory, mediapipe_detector):
  """bikes.mp4 (six shots) and carphone_pristine.mp4 at 1 Hz, detected by MediaPipe's SSD."""
  out = tmp_path_factory.mktemp("records")
  paths = sample_videos.sample_video_paths()
  prepare.prepare([str(paths["bikes.mp4"]), str(paths["carphone_pristine.mp4"])], str(out),
                  prepare.PrepareConfig(videos_per_shard=1, frame_short_side=96), progress=False)
  return str(out)


@pytest.fixture(scope="module")
def exports(small_export, tmp_path_factory):
  """The session's depth-14 export and another random initialisation of it."""
  config = configs.apply_overrides(configs.get_experiment("vivi"), ["model.depth=14"])
  tf_keras.utils.set_random_seed(11)
  path = str(tmp_path_factory.mktemp("exports") / "other_d14")
  exporter.export_backbone(models.build_backbone(config.model), path)
  return [small_export, path]


def numpy_nearest_neighbour(features, labels, groups=None):
  """`(fewest hits, most hits, queries)`: boxes whose centres fall in one cell of the 2×2 grid
  have the same feature, so a nearest neighbour is often tied (within float rounding) between
  objects of different classes."""
  x = features.astype(np.float64)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  low = high = queries = 0
  for i in range(len(x)):
    others = [j for j in range(len(x)) if j != i and (groups is None or groups[j] != groups[i])]
    if others:
      sims = np.array([x[i] @ x[j] for j in others])
      tied = {labels[j] == labels[i] for j, s in zip(others, sims) if s >= sims.max() - 1e-5}
      queries += 1
      low += all(tied)
      high += any(tied)
  return low, high, queries


@pytest.mark.parametrize("videos_per_batch", [None, 1])
def test_diagnose_against_numpy_and_scipy(records, exports, videos_per_batch):
  result = object_comparison.diagnose(exports, records, image_size=SIZE, names=["VIVI", "Ours"],
                                      videos_per_batch=videos_per_batch,
                                      frames="every_stored_frame")
  assert result["frames"] == "every_stored_frame" and result["frames_per_shot"] is None
  assert list(result["models"]) == ["VIVI", "Ours"] and result["baseline"] == "VIVI"
  for name, path in zip(["VIVI", "Ours"], exports):
    obj = hub.load(path)
    features, labels, shots = object_diagnostic.record_object_features(
        lambda x: obj.feature_maps(x, training=False)["5"], records, SIZE)
    features, labels, shots = features.numpy(), labels.numpy(), shots.numpy()
    # Shots are numbered video · 2^20 + shot: a batch of one video is one value of shots >> 20.
    batches = np.zeros_like(shots) if videos_per_batch is None else shots >> 20
    m = result["models"][name]
    for figure, groups in (("all", None), ("other_shots", shots)):
      low = high = queries = 0
      for b in np.unique(batches):
        inside = batches == b
        counts = numpy_nearest_neighbour(features[inside], labels[inside],
                                         None if groups is None else groups[inside])
        low, high, queries = low + counts[0], high + counts[1], queries + counts[2]
      assert m[figure]["queries"] == queries and low <= m[figure]["hits"] <= high
      assert m[figure]["fraction"] == pytest.approx(m[figure]["hits"] / queries)
    assert m["objects"] == m["all"]["queries"] > 20
  for figure in ("all", "other_shots"):
    a, b = result["models"]["VIVI"][figure], result["models"]["Ours"][figure]
    ref = stats.fisher_exact([[a["hits"], a["queries"] - a["hits"]],
                              [b["hits"], b["queries"] - b["hits"]]])
    assert result["tests"]["Ours"][figure]["p"] == pytest.approx(ref.pvalue)
    assert result["tests"]["Ours"][figure]["significant"] == (ref.pvalue < 0.001)


def test_diagnose_errors(records, exports, tmp_path):
  with pytest.raises(ValueError, match=r"at least one hub export .*got hubs=\(\)"):
    object_comparison.diagnose((), records, image_size=SIZE)
  with pytest.raises(FileNotFoundError, match="No shards match"):
    object_comparison.diagnose(exports, str(tmp_path), image_size=SIZE)
  with pytest.raises(ValueError, match="one distinct name per export"):
    object_comparison.diagnose(exports, records, image_size=SIZE, names=["A", "A"])


def test_hub_feature_fn_resolves_preset_names(small_preset, small_export, tmp_path):
  """A preset name loads its archive through the zoo's cache (sha256-checked, offline)."""
  path = loader.resolve("small_d14")
  assert path == loader.cached_module_dir(small_preset.handle) and os.listdir(path)
  assert loader.resolve(small_export) == small_export
  images = np.random.default_rng(0).uniform(0, 1, [2, SIZE, SIZE, 3]).astype(np.float32)
  expected = hub.load(small_export).feature_maps(images, training=False)["5"].numpy()
  got = object_comparison.hub_feature_fn("small_d14")(images).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  with pytest.raises(presets_lib.UnknownPresetError, match="Unknown preset 'nope'.*small_d14"):
    loader.resolve("nope")
  with pytest.raises(loader.PresetNotAvailableError, match="'vivi' .*no published weights"):
    loader.resolve("vivi")
  with pytest.raises(loader.ModuleNotCachedError, match="offline"):
    loader.resolve("https://example.invalid/module.tar.gz")
  with pytest.raises(loader.ModuleNotCachedError, match="does not exist"):
    loader.resolve(str(tmp_path / "missing.tar.gz"))


def test_cli(records, exports, tmp_path):
  out = tmp_path / "out"
  proc = run_module("keras_vivi.cli.diagnostic", f"--hub={','.join(exports)}", f"--data={records}",
                    f"--output={out}", f"--image_size={SIZE}", "--names=VIVI,Ours",
                    "--every_object", "--shots_per_video=2", "--frames_per_shot=3",
                    timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert "Ours vs VIVI: Fisher p =" in proc.stdout
  assert {p.name for p in out.iterdir()} == {"diagnostic.json", "diagnostic.md",
                                             "diagnostic.png"}
  result = json.loads((out / "diagnostic.json").read_text())
  assert set(result["models"]) == {"VIVI", "Ours"} and "Ours" in result["tests"]
  assert result["videos_per_batch"] is None and result["num_batches"] is None
  # The default frames, and the output says which: the training sampler's K × F a video.
  assert (result["frames"], result["shots_per_video"], result["frames_per_shot"]) == (
      "training_sampler", 2, 3)
  words = "training_sampler: 2 shots × 3 frames a video as training samples them"
  assert f"Frames: {words}" in proc.stdout
  assert words in (out / "diagnostic.md").read_text()
  assert "| Ours |" in (out / "diagnostic.md").read_text()
