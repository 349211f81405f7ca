"""vivi-compare and its library (evaluation.comparison) on results.json files, against SciPy."""

import json
import os
import shutil

import numpy as np
import pytest
from scipy import stats

from keras_vivi.evaluation import comparison
from keras_vivi.evaluation.vtab import run as vtab
from tests.helpers.cli import run_module

GROUPS = {"caltech101": "natural", "cifar100": "natural", "eurosat": "specialized",
          "dmlab": "structured", "digits": "local"}


def write_run(folder, hub, accuracies, missing=None, seed=None):
  """A results.json in the vivi-vtab format (with a seed: vivi-vtab's config of that seed)."""
  os.makedirs(folder, exist_ok=True)
  tasks = {t: {"group": GROUPS[t], "test_accuracy": acc, "selected": {"learning_rate": 0.01},
               "sweep": []} for t, acc in accuracies.items()}
  config = {} if seed is None else vtab.config_to_dict(vtab.VtabConfig(seed=seed))
  results = {"hub": hub, "config": config, "tasks": tasks, "missing": missing or {},
             "means": {"natural": None, "specialized": None, "structured": None,
                       "overall": None}}
  with open(os.path.join(folder, "results.json"), "w") as f:
    json.dump(results, f)
  return str(folder)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Four runs of A and three of B; B is clearly better on caltech101, equal on cifar100, worse
  on dmlab; eurosat only in A, digits only in B, and one B run lacks cifar100."""
  root = tmp_path_factory.mktemp("runs")
  rng = np.random.default_rng(0)
  base = {"caltech101": 0.60, "cifar100": 0.40, "eurosat": 0.9, "dmlab": 0.45}
  shift = {"caltech101": 0.05, "cifar100": 0.0, "dmlab": -0.04, "digits": 0.0}
  a = [write_run(root / f"a{i}", "/hub/vivi", {t: float(v + rng.normal(0, 0.005))
                                               for t, v in base.items()}) for i in range(4)]
  b = []
  for i in range(3):
    acc = {t: float(base.get(t, 0.8) + s + rng.normal(0, 0.005)) for t, s in shift.items()}
    if i == 2:
      del acc["cifar100"]
    b.append(write_run(root / f"b{i}", "/hub/ours", acc,
                       missing={"eurosat": "tfds data not prepared"}))
  return a, b


def accuracies(dirs, task):
  out = []
  for d in dirs:
    with open(os.path.join(d, "results.json")) as f:
      tasks = json.load(f)["tasks"]
    if task in tasks:
      out.append(tasks[task]["test_accuracy"])
  return out


def test_compare_tasks_against_scipy(runs):
  a, b = runs
  result = comparison.compare(a, b, names=("VIVI", "Ours"))
  assert list(result["tasks"]) == ["caltech101", "cifar100", "dmlab"]
  assert result["only_a"] == ["eurosat"] and result["only_b"] == ["digits"]
  assert result["missing"]["b"] == {"eurosat": "tfds data not prepared"}
  for task, verdict in [("caltech101", "better"), ("cifar100", "not significant"),
                        ("dmlab", "worse")]:
    row = result["tasks"][task]
    ra, rb = accuracies(a, task), accuracies(b, task)
    ref = stats.ttest_ind(rb, ra, equal_var=False)
    assert row["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert row["verdict"] == verdict
    assert row["mean_a"] == pytest.approx(np.mean(ra)) and row["n_b"] == len(rb)
    assert row["ci_a"][0] <= row["mean_a"] <= row["ci_a"][1]
  assert result["tasks"]["cifar100"]["n_b"] == 2


def bh_loop(p):
  """Benjamini–Hochberg by its definition: q_i = min over ranks j >= rank(i) of p_(j)·m/j."""
  ranked = sorted(p)
  return [min(ranked[j] * len(p) / (j + 1) for j in range(ranked.index(x), len(p))) for x in p]


def test_p_values_uncorrected_by_default_as_the_paper_bh_by_name(runs, tmp_path):
  a, b = runs
  result = comparison.compare(a, b, names=("VIVI", "Ours"))
  rows = result["tasks"].values()
  # The paper (§4.2): "statistical significance at the p=0.05 level on a Welch's two sided
  # t-test", per task, with no correction for the number of tasks.
  assert result["correction"] == "none"
  assert [r["p_adjusted"] for r in rows] == [r["p"] for r in rows]
  bh = comparison.compare(a, b, names=("VIVI", "Ours"), correction="bh")
  assert bh["correction"] == "bh"
  np.testing.assert_allclose([r["p_adjusted"] for r in bh["tasks"].values()],
                             bh_loop([r["p"] for r in rows]), rtol=1e-12)
  # At an alpha between caltech101's raw and adjusted p, only the raw verdict is "better".
  p, q = result["tasks"]["caltech101"]["p"], bh["tasks"]["caltech101"]["p_adjusted"]
  assert p < q
  alpha = (p + q) / 2
  assert comparison.compare(a, b, alpha=alpha)["tasks"]["caltech101"]["verdict"] == "better"
  assert comparison.compare(a, b, alpha=alpha, correction="bh")["tasks"]["caltech101"][
      "verdict"] == "not significant"
  # The correction is named in the table and in the figure.
  for name, run, words in (("none", result, "none (uncorrected per-task Welch p"),
                           ("bh", bh, "Benjamini–Hochberg")):
    figure = comparison.write(run, str(tmp_path / name))
    assert f"Multiple-comparison correction: {words}" in (tmp_path / name /
                                                          "comparison.md").read_text()
    assert f"correction: {words}" in figure.axes[0].get_title()
  with pytest.raises(ValueError, match=r"correction must be one of \('none', 'bh'\), got 'holm'"):
    comparison.compare(a, b, correction="holm")


def test_refuses_a_directory_twice_and_copies_of_one_run(runs, tmp_path):
  a, b = runs
  for a_dirs, b_dirs in ((a + [a[0]], b), (a, b + [a[1]]),
                         (a + [os.path.join(a[0], ".") + "/"], b)):
    with pytest.raises(ValueError, match=r"is given twice .*pass every vivi-vtab --output "
                                         r"directory once"):
      comparison.compare(a_dirs, b_dirs)
  # A copy of a run under another name: identical results.
  copy = write_run(tmp_path / "copy", "/hub/vivi", {t: acc for t, (acc,) in
                                                     ((t, accuracies([a[0]], t)) for t in
                                                      ("caltech101", "cifar100", "eurosat",
                                                       "dmlab"))})
  with pytest.raises(ValueError, match=r"of A have identical results on every task and no "
                                       r"different seeds.*--seed"):
    comparison.compare(a + [copy], b)
  # Two runs of one module with one config and seed repeat one run, even if reported apart.
  seeded = [write_run(tmp_path / f"seeded{i}", "/hub/ours", {"dmlab": 0.4 + 0.01 * i}, seed=seed)
            for i, seed in enumerate((3, 3, 4))]
  with pytest.raises(ValueError, match=r"evaluated '/hub/ours' with the same config and seed 3"):
    comparison.compare(a, seeded)
  assert comparison.compare(a, seeded[1:])["tasks"]["dmlab"]["n_b"] == 2
  # Different seeds that happen to score the same (a degenerate model) are two runs.
  same_score = [write_run(tmp_path / f"same_score{seed}", "/hub/ours", {"dmlab": 0.25}, seed=seed)
                for seed in (5, 6)]
  assert comparison.compare(a, same_score)["tasks"]["dmlab"]["runs_b"] == [0.25, 0.25]


def test_says_when_fewer_than_three_runs_a_side(runs, tmp_path):
  a, b = runs
  assert comparison.compare(a, b)["warnings"] == []
  result = comparison.compare(a, b[:2], names=("VIVI", "Ours"))
  assert result["warnings"] == [
      "Ours has 2 run(s), fewer than 3: Welch's test on so few runs has little power and "
      "unreliable p-values (the paper used 12 runs a side)."]
  comparison.write(result, str(tmp_path))
  assert f"**Warning:** {result['warnings'][0]}" in (tmp_path / "comparison.md").read_text()


def test_category_means_use_tasks_of_every_run(runs):
  a, b = runs
  means = comparison.compare(a, b)["means"]
  # cifar100 is missing from one B run, so Natural is caltech101 alone; digits is no VTAB group.
  assert means["natural"]["tasks"] == ["caltech101"]
  assert means["partial"]["tasks"] == ["caltech101", "dmlab"]  # 2 of the 19: no VTAB-1k score
  assert "specialized" not in means and "local" not in means and "overall" not in means
  expected = [np.mean([x, y]) for x, y in zip(accuracies(a, "caltech101"), accuracies(a, "dmlab"))]
  np.testing.assert_allclose(means["partial"]["runs_a"], expected)


def test_errors_name_the_problem(runs, tmp_path):
  a, b = runs
  with pytest.raises(FileNotFoundError, match="No results.json in .*nowhere"):
    comparison.compare(a + [str(tmp_path / "nowhere")], b)
  bad = write_run(tmp_path / "bad", "/hub/x", {"dmlab": 1.5})
  with pytest.raises(ValueError, match="'dmlab' needs a 'test_accuracy' in \\[0, 1\\], got 1.5"):
    comparison.compare([bad], b)
  only = write_run(tmp_path / "only", "/hub/x", {"eurosat": 0.9})
  with pytest.raises(ValueError, match="No task in common"):
    comparison.compare([only], b)


def test_markdown_and_figure(runs, tmp_path):
  a, b = runs
  result = comparison.compare(a, b, names=("VIVI", "Ours"))
  figure = comparison.write(result, str(tmp_path))
  assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == list(result["tasks"])
  assert {bar.get_hatch() for bar in figure.axes[0].patches} == {None}  # 4 and 3 runs
  text = (tmp_path / "comparison.md").read_text()
  assert text.startswith("# VTAB-1k: Ours against VIVI\n")
  assert "| caltech101 | natural |" in text and "better *" in text
  assert "Only in VIVI (not compared): eurosat." in text
  assert json.loads((tmp_path / "comparison.json").read_text())["tasks"].keys() == \
      result["tasks"].keys()
  assert (tmp_path / "relative_increase.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_single_runs_give_no_p_value(tmp_path):
  a = write_run(tmp_path / "a", "/hub/a", {"dmlab": 0.4})
  b = write_run(tmp_path / "b", "/hub/b", {"dmlab": 0.5})
  single = comparison.compare([a], [b])
  row = single["tasks"]["dmlab"]
  # The figure writes the relative increase (0.5 / 0.4 − 1) on the bar, hatched: one run a side.
  (axis,) = comparison.write(single, str(tmp_path / "single")).axes
  assert [t.get_text() for t in axis.texts] == ["+25.0"]
  assert [bar.get_hatch() for bar in axis.patches] == ["//"]
  local_a = write_run(tmp_path / "la", "/hub/a", {"digits": 0.8})
  local_b = write_run(tmp_path / "lb", "/hub/b", {"digits": 0.9})
  local_a2 = write_run(tmp_path / "la2", "/hub/a", {"digits": 0.82})
  local_b2 = write_run(tmp_path / "lb2", "/hub/b", {"digits": 0.91})
  means = comparison.compare([local_a, local_a2], [local_b, local_b2])["means"]
  assert means["local"]["tasks"] == ["digits"] and "overall" not in means
  assert row["verdict"] == "too few runs" and row["p"] is None
  assert row["relative_increase"] == pytest.approx(0.25)


def run_cli(*args):
  return run_module("keras_vivi.cli.compare", *args, timeout=300)


def test_cli(runs, tmp_path):
  a, b = runs
  out = tmp_path / "out"
  proc = run_cli(f"--a={','.join(a)}", f"--b={','.join(b)}", f"--output={out}",
                 "--names=VIVI,Ours")
  assert proc.returncode == 0, proc.stderr
  assert "1 significantly better, 1 worse, 1 not significant" in proc.stdout
  assert "Multiple-comparison correction: none (uncorrected per-task Welch p" in proc.stdout
  assert "Warning:" not in proc.stdout
  assert {p.name for p in out.iterdir()} == {"comparison.json", "comparison.md",
                                             "relative_increase.png"}
  proc = run_cli(f"--a={tmp_path / 'nowhere'}", f"--b={b[0]}", f"--output={out}")
  assert proc.returncode != 0 and "No results.json in" in proc.stderr
  proc = run_cli(f"--a={a[0]},{a[0]}", f"--b={','.join(b)}", f"--output={tmp_path / 'twice'}")
  assert proc.returncode != 0 and "is given twice" in proc.stderr
  assert not (tmp_path / "twice").exists()
  proc = run_cli(f"--a={a[0]}", f"--b={b[0]}", f"--output={tmp_path / 'one'}",
                 "--correction=bh")
  assert proc.returncode == 0, proc.stderr
  assert "Warning: A has 1 run(s), fewer than 3" in proc.stdout
  assert "Warning: B has 1 run(s), fewer than 3" in proc.stdout
  assert "Multiple-comparison correction: Benjamini–Hochberg." in proc.stdout


def test_reads_what_vivi_vtab_writes(tmp_path):
  """Runs written by the VTAB runner's own writer; category means agree with its group means."""
  dirs = []
  for i, (caltech, dmlab, digits) in enumerate([(0.5, 0.3, 0.9), (0.52, 0.31, 0.8)]):
    tasks = {name: {"group": group, "test_accuracy": acc,
                    "selected": {"learning_rate": 0.01, "steps": 10, "decay_every": 5},
                    "sweep": [{"learning_rate": 0.01, "steps": 10, "decay_every": 5,
                               "val_accuracy": acc}]}
             for name, group, acc in [("cifar100", "natural", caltech),
                                      ("dmlab", "structured", dmlab), ("digits", "local", digits)]}
    results = {"hub": "/hub/x", "config": {}, "tasks": tasks, "missing": {"dtd": "not prepared"},
               "means": vtab.group_means(tasks)}
    vtab.write_results(results, str(tmp_path / f"run{i}"))
    dirs.append(str(tmp_path / f"run{i}"))
  copies = []
  for i, run_dir in enumerate(dirs[::-1]):
    shutil.copytree(run_dir, tmp_path / f"copy{i}")
    copies.append(str(tmp_path / f"copy{i}"))
  result = comparison.compare(dirs, copies)
  assert list(result["tasks"]) == ["cifar100", "dmlab", "digits"]
  for key in ("natural", "structured", "local", "partial"):
    expected = [json.load(open(os.path.join(d, "results.json")))["means"][key] for d in dirs]
    np.testing.assert_allclose(result["means"][key]["runs_a"], expected)
