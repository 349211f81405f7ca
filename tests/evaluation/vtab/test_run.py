import csv
import dataclasses
import json
import os

import matplotlib.collections
import matplotlib.image as mpimg
import numpy as np
import pytest
import tensorflow as tf

from keras_vivi.evaluation import statistics
from keras_vivi.evaluation.vtab import run as vtab
from keras_vivi.evaluation.vtab import tasks as vtab_tasks
from tests.helpers.cli import run_module

SP = vtab.SweepPoint


def test_default_sweep_is_vtab_lightweight():
  assert set(vtab.VtabConfig().points()) == {SP(0.1, 10000, 3000), SP(0.01, 10000, 3000),
                                             SP(0.1, 2500, 750), SP(0.01, 2500, 750)}
  config = vtab.VtabConfig()
  assert (config.batch_size, config.image_size, config.momentum) == (64, 224, 0.9)


def test_steps_scale_and_parse_sweep():
  config = vtab.VtabConfig(sweep=(SP(0.1, 10000, 3000), SP(0.01, 2500, 750)), steps_scale=0.01)
  assert config.points() == (SP(0.1, 100, 30), SP(0.01, 25, 8))  # 7.5 rounds to 8
  assert vtab.VtabConfig(sweep=(SP(0.1, 10, 3),), steps_scale=0.01).points() == (SP(0.1, 1, 1),)
  assert vtab.parse_sweep("0.1:10000:3000, 0.01:2500:750") == (SP(0.1, 10000, 3000),
                                                                SP(0.01, 2500, 750))
  for bad in ("0.1:100", "a:1:1", "0.1:0:1", ""):
    with pytest.raises(ValueError, match="LEARNING_RATE:STEPS:DECAY_EVERY|positive|Empty"):
      vtab.parse_sweep(bad)


def test_resolve_tasks():
  assert len(vtab.resolve_tasks("all")) == 19
  assert vtab.resolve_tasks("specialized") == ["patch_camelyon", "eurosat", "resisc45",
                                               "diabetic_retinopathy"]
  assert vtab.resolve_tasks("digits, dtd") == ["digits", "dtd"]
  with pytest.raises(ValueError, match="Unknown VTAB task 'imagenet'"):
    vtab.resolve_tasks("dtd,imagenet")


def test_group_means_by_hand():
  tasks = {"a": {"group": "natural", "test_accuracy": 0.5},
           "b": {"group": "natural", "test_accuracy": 0.7},
           "c": {"group": "structured", "test_accuracy": 0.3},
           "d": {"group": "local", "test_accuracy": 0.9}}
  means = vtab.group_means(tasks)
  assert means["natural"] == pytest.approx(0.6) and means["structured"] == pytest.approx(0.3)
  assert means["specialized"] is None and means["local"] == pytest.approx(0.9)
  # Not all 19 VTAB tasks ran: no VTAB-1k score, the mean of those that ran is "partial".
  assert means["overall"] is None
  assert means["partial"] == pytest.approx(0.5)  # (0.5 + 0.7 + 0.3) / 3: local not in VTAB's
  local_only = vtab.group_means({"d": tasks["d"]})
  assert local_only["overall"] is None and local_only["partial"] is None
  assert vtab.group_means({}) == dict.fromkeys(vtab.MEAN_KEYS)
  all_19 = {n: {"group": vtab_tasks.get_task(n).group, "test_accuracy": 0.01 * i}
            for i, n in enumerate(vtab_tasks.list_tasks())}
  means = vtab.group_means(all_19)
  assert means["overall"] == pytest.approx(0.01 * sum(range(19)) / 19)
  assert means["partial"] is None


def test_normalize_hub(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "exports" / "x").mkdir(parents=True)
  (tmp_path / "vivi_objects").mkdir()  # a directory named like a preset: the preset wins
  absolute = str(tmp_path / "exports" / "x")
  for given in ("exports/x", "./exports/x", "exports/x/", absolute, f"file://{absolute}"):
    assert vtab.normalize_hub(given) == absolute, given
  for given in ("vivi_objects", "https://example.com/m.tar.gz", "gs://bucket/m",
                "missing/dir"):
    assert vtab.normalize_hub(given) == given


def _entry(group, accuracy):
  selected = {"learning_rate": 0.01, "steps": 10, "decay_every": 5}
  return {"group": group, "test_accuracy": accuracy, "selected": selected,
          "sweep": [{**selected, "val_accuracy": accuracy}]}


def test_resume_counts_spellings_of_one_path_as_one_hub(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "exports" / "x").mkdir(parents=True)
  monkeypatch.setattr(vtab, "run_task", lambda *args: _entry("local", 0.5))
  config = vtab.VtabConfig(image_size=32)
  vtab.run_vtab("exports/x", ["digits"], "out", config, progress=False)
  with open(tmp_path / "out" / "results.json") as f:
    assert json.load(f)["hub"] == str(tmp_path / "exports" / "x")

  def fail(*args, **kwargs):
    raise AssertionError("finished task trained again")
  monkeypatch.setattr(vtab, "run_task", fail)
  for spelling in ("./exports/x", str(tmp_path / "exports" / "x")):
    assert vtab.run_vtab(spelling, ["digits"], "out", config, progress=False)["tasks"] == {
        "digits": _entry("local", 0.5)}
  with pytest.raises(ValueError, match="choose another output directory"):
    vtab.run_vtab("exports", ["digits"], "out", config, progress=False)


def test_write_results_tables_and_group_colours(tmp_path):
  tasks = {"dtd": {**_entry("natural", 0.4), "num_classes": 50},
           "eurosat": _entry("specialized", 0.9), "dmlab": _entry("structured", 0.3),
           "digits": _entry("local", 0.8)}
  results = {"hub": "h", "config": {}, "tasks": tasks, "missing": {"svhn": "not prepared"},
             "means": vtab.group_means(tasks)}
  figure = vtab.write_results(results, str(tmp_path))
  # The returned Figure is the one written: a bar per task and per group mean, in percent.
  heights = [round(bar.get_height(), 6) for bar in figure.axes[0].patches]
  assert heights == [40.0, 40.0, 90.0, 90.0, 30.0, 30.0, 80.0, 80.0]
  # Values on the bars; chance 1/classes over each task's bar (dtd's 50 recorded in its entry, the
  # others' from the task registry: eurosat 10, dmlab 6, digits 10), none over the means;
  # every bar hatched as one run.
  axis = figure.axes[0]
  assert [t.get_text() for t in axis.texts] == ["40.0", "40.0", "90.0", "90.0", "30.0", "30.0",
                                                "80.0", "80.0"]
  (chance,) = [c for c in axis.collections if isinstance(c, matplotlib.collections.LineCollection)]
  segments = chance.get_segments()
  assert [round(float(s[0][1]), 4) for s in segments] == [2.0, 10.0,
                                                          round(100 / 6, 4), 10.0]
  task_bars = [b for i, b in enumerate(axis.patches) if i % 2 == 0]
  assert [(s[0][0], s[1][0]) for s in segments] == [
      (b.get_x(), b.get_x() + b.get_width()) for b in task_bars]
  assert {b.get_hatch() for b in axis.patches} == {"//"}
  assert {t.get_text() for t in axis.get_legend().get_texts()} >= {
      "chance (1 / classes)", "single run, no error bar"}
  assert sorted(os.listdir(tmp_path)) == ["results.csv", "results.json", "results.md",
                                          "results.png"]
  with open(tmp_path / "results.csv", newline="") as f:
    rows = {r["task"]: r for r in csv.DictReader(f)}
  assert rows["eurosat"]["test_accuracy"] == "0.9000" and rows["svhn"]["group"] == "missing"
  assert rows["mean_partial"]["test_accuracy"] == f"{(0.4 + 0.9 + 0.3) / 3:.4f}"
  assert "mean_overall" not in rows
  # results.png draws each group in the colour of every other plot (statistics.GROUP_COLOURS).
  rgb = (mpimg.imread(str(tmp_path / "results.png"))[..., :3] * 255).round().astype(int)
  rgb = rgb.reshape(-1, 3)
  for colour in list(statistics.GROUP_COLOURS.values()) + [statistics.OTHER_COLOUR]:
    target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    assert np.any(np.all(np.abs(rgb - target) <= 2, axis=1)), colour


def read_scalars(run_dir):
  """{tag: [(step, value)]} of the TensorBoard event files in `run_dir`."""
  scalars = {}
  for path in sorted(tf.io.gfile.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append((event.step,
                                                  float(tf.make_ndarray(value.tensor))))
  return scalars


def _digits_test_share_of_zero():
  """Accuracy of the zero-initialised head: uniform logits → argmax 0 → share of label 0."""
  labels = np.array([int(l) for _, l in vtab_tasks.load_split(
      vtab_tasks.get_task("digits"), "test")])
  return float(np.mean(labels == 0))


def test_protocol_end_to_end_on_digits(small_export, tmp_path, monkeypatch):
  config = vtab.VtabConfig(sweep=(SP(0.01, 200, 150), SP(1e-6, 200, 150)), steps_scale=0.1,
                           batch_size=32, eval_batch_size=128, image_size=32)
  output = str(tmp_path / "out")
  results = vtab.run_vtab(small_export, ["cifar100", "digits"], output, config,
                          data_dir=str(tmp_path / "no_tfds"), progress=False)

  digits = results["tasks"]["digits"]
  assert (digits["group"], digits["num_classes"]) == ("local", 10)
  assert [(p["learning_rate"], p["steps"], p["decay_every"]) for p in digits["sweep"]] == [
      (0.01, 20, 15), (1e-6, 20, 15)]
  # A learning rate of 1e-6 hardly moves the zero head: the usable rate wins on val200.
  assert digits["sweep"][0]["val_accuracy"] > digits["sweep"][1]["val_accuracy"]
  assert digits["selected"] == {"learning_rate": 0.01, "steps": 20, "decay_every": 15}
  chance = _digits_test_share_of_zero()
  assert 0.05 < chance < 0.15
  assert digits["test_accuracy"] > chance + 0.25, (digits, chance)

  # TensorBoard: one run directory per sweep point and for the selected point's retraining,
  # whose final accuracy is the one results.json reports.
  logs = os.path.join(output, vtab.LOGS, "digits")
  assert sorted(os.listdir(logs)) == ["selected_lr0.01_steps20_decay15",
                                      "sweep_lr0.01_steps20_decay15", "sweep_lr1e-06_steps20_decay15"]
  for point, name, metric, value in [
      (digits["sweep"][0], "sweep_lr0.01_steps20_decay15", "val_accuracy", None),
      (digits["sweep"][1], "sweep_lr1e-06_steps20_decay15", "val_accuracy", None),
      (digits["sweep"][0], "selected_lr0.01_steps20_decay15", "test_accuracy",
       digits["test_accuracy"])]:
    scalars = read_scalars(os.path.join(logs, name))
    expected = point["val_accuracy"] if value is None else value
    assert scalars[metric] == [(20, pytest.approx(expected, abs=1e-6))]
    assert [step for step, _ in scalars["train_loss"]] == list(range(1, 21))
    # The schedule: the sweep point's rate, ×0.1 after decay_every = 15 steps.
    rates = dict(scalars["learning_rate"])
    assert rates[1] == pytest.approx(point["learning_rate"])
    assert rates[20] == pytest.approx(point["learning_rate"] / 10)

  assert list(results["missing"]) == ["cifar100"]
  assert f"tfds build cifar100:3.0.2 --data_dir={tmp_path / 'no_tfds'}" in \
      results["missing"]["cifar100"]
  assert results["means"] == {"natural": None, "specialized": None, "structured": None,
                              "local": digits["test_accuracy"],
                              "overall": None, "partial": None}

  with open(os.path.join(output, "results.json")) as f:
    stored = json.load(f)
  assert set(stored) == {"hub", "config", "tasks", "missing", "means"}
  assert stored["hub"] == small_export
  assert stored["config"]["sweep"][0] == {"learning_rate": 0.01, "steps": 200,
                                          "decay_every": 150}
  assert stored["config"]["image_size"] == 32 and stored["config"]["batch_size"] == 32
  assert set(stored["tasks"]["digits"]) == {"group", "num_classes", "test_accuracy",
                                            "selected", "sweep", "seed"}
  assert stored["tasks"]["digits"]["seed"] == 0
  assert [p["seed"] for p in stored["tasks"]["digits"]["sweep"]] == [0, 0]
  assert stored["tasks"] == results["tasks"]
  with open(os.path.join(output, "results.csv")) as f:
    rows = {r["task"]: r for r in csv.DictReader(f)}
  assert float(rows["digits"]["test_accuracy"]) == pytest.approx(digits["test_accuracy"],
                                                                 abs=1e-4)
  assert rows["cifar100"]["group"] == "missing"
  markdown = open(os.path.join(output, "results.md")).read()
  assert f"| digits | local | {100 * digits['test_accuracy']:.1f} |" in markdown
  assert "cifar100: VTAB task 'cifar100'" in markdown
  with open(os.path.join(output, "results.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"

  # A re-run skips the finished task and retries the missing one.
  def fail(*args, **kwargs):
    raise AssertionError("finished task trained again")
  monkeypatch.setattr(vtab, "run_task", fail)
  again = vtab.run_vtab(small_export, ["digits"], output, config, progress=False)
  assert again["tasks"] == results["tasks"] and again["missing"] == {}
  with pytest.raises(ValueError, match="choose another output directory"):
    vtab.run_vtab(small_export, ["digits"], output, vtab.VtabConfig(image_size=48),
                  progress=False)


@pytest.mark.slow
def test_seeds_make_repetitions_differ_and_are_recorded(small_export, tmp_path):
  """Two seeds give two different repetitions of the protocol (what vivi-compare needs); one
  seed gives the same results again."""
  config = vtab.VtabConfig(sweep=(SP(0.05, 30, 20),), batch_size=16, eval_batch_size=128,
                           image_size=16)
  runs = {}
  for name, seed in (("s1", 1), ("s2", 2), ("s1_again", 1)):
    results = vtab.run_vtab(small_export, ["digits"], str(tmp_path / name),
                            dataclasses.replace(config, seed=seed), progress=False,
                            tensorboard=False)
    digits = results["tasks"]["digits"]
    assert digits["seed"] == seed and [p["seed"] for p in digits["sweep"]] == [seed]
    assert results["config"]["seed"] == seed
    runs[name] = (digits["sweep"][0]["val_accuracy"], digits["test_accuracy"])
  assert runs["s1"] != runs["s2"]
  assert runs["s1_again"] == runs["s1"]


def test_cli_reports_missing_task(small_export, tmp_path):
  output = tmp_path / "cli"
  proc = run_module("keras_vivi.cli.vtab", f"--hub={small_export}", "--tasks=dmlab",
                    f"--output={output}", f"--data_dir={tmp_path / 'no_tfds'}", "--seed=7")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Missing dmlab:" in proc.stdout
  assert f"tfds build dmlab:2.0.1 --data_dir={tmp_path / 'no_tfds'}" in proc.stdout
  results = json.loads((output / "results.json").read_text())
  assert results["tasks"] == {} and list(results["missing"]) == ["dmlab"]
  assert results["config"] == vtab.config_to_dict(vtab.VtabConfig(seed=7))
  assert sorted(os.listdir(output)) == ["results.csv", "results.json", "results.md",
                                        "results.png"]


@pytest.mark.slow
def test_cli_trains(small_export, tmp_path):
  output = tmp_path / "cli"
  proc = run_module("keras_vivi.cli.vtab", f"--hub={small_export}", "--tasks=lfw_subset",
                    f"--output={output}", "--image_size=16", "--sweep=0.01:4:2,0.1:4:2",
                    "--batch_size=16", "--keras_verbose=0")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "lfw_subset: test accuracy" in proc.stdout
  results = json.loads((output / "results.json").read_text())
  assert len(results["tasks"]["lfw_subset"]["sweep"]) == 2
  assert results["config"]["image_size"] == 16
  bad = run_module("keras_vivi.cli.vtab", f"--hub={small_export}", "--tasks=nope",
                   f"--output={output}")
  assert bad.returncode != 0 and "Unknown VTAB task 'nope'" in bad.stderr


def test_a_module_and_outputs_on_another_filesystem(small_export, tmp_path, monkeypatch):
  """ram:// stands for gs:// (TensorFlow's GCS client cannot be pointed at an emulator): the module
  loads from there in place and every output is written there, none on the local disk."""
  import keras_vivi
  from keras_vivi import files
  monkeypatch.chdir(tmp_path)  # a path taken for a local one would appear here ("ram:/…")
  hub = "ram://vtab_remote/module"
  files.copy_tree(small_export, hub)
  images = tf.random.stateless_uniform([2, 32, 32, 3], seed=[1, 2])
  np.testing.assert_allclose(keras_vivi.load_feature_extractor(hub)(images).numpy(),
                             keras_vivi.load_feature_extractor(small_export)(images).numpy(),
                             rtol=1e-5, atol=1e-5)
  results = vtab.run_vtab(hub, ["dmlab"], "ram://vtab_remote/out", vtab.VtabConfig(seed=7),
                          data_dir=str(tmp_path / "no_tfds"), progress=False)
  assert results["hub"] == hub and list(results["missing"]) == ["dmlab"]
  assert sorted(tf.io.gfile.listdir("ram://vtab_remote/out")) == [
      "results.csv", "results.json", "results.md", "results.png"]
  assert json.loads(tf.io.gfile.GFile("ram://vtab_remote/out/results.json").read()) == results
  assert os.listdir(tmp_path) == []
