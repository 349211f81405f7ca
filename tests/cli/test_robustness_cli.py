"""`vivi-robustness` end to end on a saved classifier and hand-built release folders, and
`vivi-compare` on robustness runs."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from scipy import stats

from keras_vivi.evaluation import comparison
from keras_vivi.evaluation.robustness import classifier as classifier_lib
from keras_vivi.evaluation.robustness import data as data_lib
from keras_vivi.evaluation.robustness import suite as robustness_suite
from tests.helpers import robustness_folders as folders
from tests.helpers.cli import run_module

SIZE = folders.SIZE


def test_cli_runs_present_sets_and_lists_missing(tmp_path):
  tf_keras.utils.set_random_seed(0)
  images = tf_keras.Input([SIZE, SIZE, 3])
  flat = tf_keras.layers.Flatten()(images)
  model = tf_keras.Model(images, tf_keras.layers.Dense(1000)(flat))
  classifier_dir = classifier_lib.save_classifier(
      model, str(tmp_path / "classifier"), {"source": "test", "kind": "test", "image_size": SIZE})
  root = tmp_path / "releases"
  folders.write_imagenet_a(str(root / "imagenet-a"), folders.ColourClassifier(),
                           np.random.default_rng(0))
  output = str(tmp_path / "out")
  proc = run_module("keras_vivi.cli.robustness", f"--classifier={classifier_dir}",
                    "--datasets=imagenet,imagenet_a,ytbb_robust", f"--output={output}",
                    f"--data_root={root}", f"--data_dir={tmp_path / 'tfds'}",
                    "--eval_batch_size=4")
  assert proc.returncode == 0, proc.stderr[-3000:]

  # Reference: the saved function on each image, arg-max over ImageNet-A's classes by a loop.
  logits_fn = classifier_lib.load_classifier(classifier_dir).logits
  hits = []
  for wnid in sorted(os.listdir(root / "imagenet-a")):
    for name in sorted(os.listdir(root / "imagenet-a" / wnid)):
      image = tf.io.decode_image(tf.io.read_file(str(root / "imagenet-a" / wnid / name)), 3)
      row = logits_fn(robustness_suite.preprocess(image, SIZE)[None]).numpy()[0]
      best = max(data_lib.IMAGENET_A_CLASSES, key=lambda c, row=row: row[c])
      hits.append(data_lib.imagenet_wnids()[best] == wnid)
  with open(os.path.join(output, "results.json")) as f:
    results = json.load(f)
  assert results["datasets"]["imagenet_a"]["accuracy"] == pytest.approx(np.mean(hits))
  assert set(results["missing"]) == {"imagenet", "ytbb_robust"}
  assert f"ImageNet-A: {100 * np.mean(hits):.1f}" in proc.stdout
  assert "Missing ytbb_robust: YT-BB-Robust: not in tfds" in proc.stdout
  assert f"looked for: {root}/imagenet_vid_ytbb_robust/ytbb-robust" in proc.stdout
  assert "Missing imagenet: tfds 'imagenet2012' is not prepared" in proc.stdout


def test_compare_takes_robustness_runs(tmp_path):
  """Two runs a side in vivi-robustness's format: per Table 5 cell, Welch's test as SciPy's."""
  def write(name, a_acc, vid):
    os.makedirs(tmp_path / name)
    results = {"kind": robustness_suite.KIND, "classifier": f"/cls/{name[:-1]}", "config": {},
               "missing": {}, "datasets": {
                   "imagenet_a": {"accuracy": a_acc},
                   "imagenet_vid_robust": {"anchor_accuracy": vid[0], "pmk_accuracy": vid[1],
                                           "delta": vid[0] - vid[1]}}}
    with open(tmp_path / name / "results.json", "w") as f:
      json.dump(results, f)
    return str(tmp_path / name)

  a = [write("vivi1", 0.010, (0.60, 0.40)), write("vivi2", 0.012, (0.61, 0.42))]
  b = [write("ours1", 0.020, (0.62, 0.45)), write("ours2", 0.021, (0.63, 0.47))]
  result = comparison.compare(a, b, names=("VIVI", "Ours"))
  assert set(result["tasks"]) == {"ImageNet-A", "ImageNet-Vid", "ImageNet-Vid-pm-k"}
  p = stats.ttest_ind([0.020, 0.021], [0.010, 0.012], equal_var=False).pvalue
  assert result["tasks"]["ImageNet-A"]["p"] == pytest.approx(p)
  assert result["tasks"]["ImageNet-Vid-pm-k"]["delta"] == pytest.approx(0.05)
  comparison.write(result, str(tmp_path / "cmp"))
  markdown = (tmp_path / "cmp" / "comparison.md").read_text()
  assert "| ImageNet-A | robustness |" in markdown
  assert markdown.startswith("# Robustness (Table 5): Ours against VIVI\n")
  shutil.rmtree(tmp_path / "cmp")
