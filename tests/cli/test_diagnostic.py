"""vivi-diagnostic and its library (evaluation.object_comparison) on records prepared from two
real sample videos, with two small exports."""

import json
import os
import subprocess
import sys

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

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
  x = features / np.linalg.norm(features, axis=1, keepdims=True)
  hits = queries = 0
  for i in range(len(x)):
    others = [j for j in range(len(x)) if j != i and (groups is None or groups[j] != groups[i])]
    if others:
      queries += 1
      hits += labels[max(others, key=lambda j: x[i] @ x[j])] == labels[i]
  return hits, queries


def test_diagnose_against_numpy_and_scipy(records, exports):
  result = object_comparison.diagnose(exports, records, image_size=SIZE, names=["VIVI", "Ours"])
  assert list(result["models"]) == ["VIVI", "Ours"] and result["baseline"] == "VIVI"
  for name, path in zip(["VIVI", "Ours"], exports):
    obj = hub.load(path)
    features, labels, shots = object_diagnostic.record_object_features(
        lambda x: obj.feature_maps(x, training=False)["5"], records, SIZE)
    m = result["models"][name]
    assert m["objects"] == len(labels) > 20
    for figure, groups in (("all", None), ("other_shots", shots.numpy())):
      hits, queries = numpy_nearest_neighbour(features.numpy(), labels.numpy(), groups)
      assert (m[figure]["hits"], m[figure]["queries"]) == (hits, queries)
      assert m[figure]["fraction"] == pytest.approx(hits / queries)
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
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  out = tmp_path / "out"
  proc = subprocess.run([sys.executable, "-m", "keras_vivi.cli.diagnostic",
                         f"--hub={','.join(exports)}", f"--data={records}", f"--output={out}",
                         f"--image_size={SIZE}", "--names=VIVI,Ours"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert "Ours vs VIVI: Fisher p =" in proc.stdout
  assert {p.name for p in out.iterdir()} == {"diagnostic.json", "diagnostic.md",
                                             "diagnostic.png"}
  result = json.loads((out / "diagnostic.json").read_text())
  assert set(result["models"]) == {"VIVI", "Ours"} and "Ours" in result["tests"]
  assert "| Ours |" in (out / "diagnostic.md").read_text()
