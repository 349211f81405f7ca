"""Model B against baseline A on VTAB-1k from repeated `vivi-vtab` runs (Table 1, Figure 4).

  result = compare(["runs/vivi_1", ...], ["runs/ours_1", ...], names=("VIVI", "Ours"))
  write(result, "comparison/")   # comparison.json, comparison.md, relative_increase.png

Each run directory holds the `results.json` that `keras_vivi.evaluation.vtab` writes; several
per side are independent repetitions of the protocol (the paper uses 12). Robustness runs
(`robustness.suite`) compare their Table 5 cells, Δ aside, as tasks.
"""

import json
import math
import os

import tensorflow as tf

from keras_vivi import files
from keras_vivi.evaluation import outputs
from keras_vivi.evaluation.robustness import suite as robustness_suite
from keras_vivi.evaluation import statistics
from keras_vivi.evaluation.vtab import run as vtab
from keras_vivi.evaluation.vtab import tasks as vtab_tasks

RESULTS = vtab.RESULTS_JSON
GROUPS = vtab_tasks.GROUPS


def load_results(run_dir):
  """Reads and checks `run_dir/results.json`.

  Returns:
    `(tasks {name: (group, test accuracy)}, the whole results dict)`.
  """
  path = os.path.join(run_dir, RESULTS)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"No {RESULTS} in {run_dir!r}: expected a vivi-vtab --output "
                            "directory.")
  with tf.io.gfile.GFile(path) as f:
    try:
      results = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path} is not valid JSON: {e}.") from e
  if isinstance(results, dict) and results.get("kind") == robustness_suite.KIND:
    results = {**results, "hub": results["classifier"],
               "tasks": robustness_suite.as_tasks(results)}  # Table 5's cells as tasks
  if not isinstance(results, dict) or not isinstance(results.get("tasks"), dict):
    raise ValueError(f"{path} has no 'tasks' mapping (keys: "
                     f"{sorted(results) if isinstance(results, dict) else type(results)}).")
  tasks = {}
  for task, entry in results["tasks"].items():
    accuracy = entry.get("test_accuracy") if isinstance(entry, dict) else None
    if (isinstance(accuracy, bool) or not isinstance(accuracy, (int, float))
        or not 0.0 <= accuracy <= 1.0):
      raise ValueError(f"{path}: task {task!r} needs a 'test_accuracy' in [0, 1], got "
                       f"{accuracy!r}.")
    tasks[task] = (entry.get("group", "other"), float(accuracy))
  return tasks, results


def _location(run_dir):
  """One spelling per directory: local paths resolved, remote ones without a trailing slash."""
  if files.has_url_scheme(run_dir):
    return run_dir.rstrip("/")
  return os.path.realpath(os.path.expanduser(run_dir))


def _check_distinct_dirs(a_dirs, b_dirs):
  """Every run directory is given once, over both sides."""
  seen = {}
  for run_dir in list(a_dirs) + list(b_dirs):
    first = seen.get(_location(run_dir))
    seen[_location(run_dir)] = run_dir
    if first is not None:
      raise ValueError(f"Run directory {run_dir!r} is given twice (also as {first!r}): each "
                       "run counts once; pass every vivi-vtab --output directory once.")


def _fingerprint(results):
  """What two copies of one run share: every task's test accuracy and sweep accuracies."""
  return json.dumps({task: [entry.get("test_accuracy"),
                            [p.get("val_accuracy") for p in entry.get("sweep") or []]]
                     for task, entry in results["tasks"].items()}, sort_keys=True)


def _seed(results):
  config = results.get("config")
  return config.get("seed") if isinstance(config, dict) else None


def _check_independent(run_dirs, runs, label):
  """Refuses two runs of one side that are copies: the same module with the same config and
  seed (the protocol is deterministic given its seed), or identical results on every task
  unless they record different seeds (a degenerate model can score the same under two seeds)."""
  seeded, outcomes = {}, {}
  for run_dir, (_, results) in zip(run_dirs, runs):
    if _seed(results) is not None:
      key = json.dumps([results.get("hub"), results["config"]], sort_keys=True)
      other = seeded.setdefault(key, run_dir)
      if other != run_dir:
        raise ValueError(
            f"Runs {other!r} and {run_dir!r} of {label} evaluated {results.get('hub')!r} with "
            f"the same config and seed {_seed(results)}: they repeat one run, which Welch's "
            "test would count as independent. Give each repetition its own vivi-vtab --seed.")
    other, other_seed = outcomes.setdefault(_fingerprint(results), (run_dir, _seed(results)))
    if other != run_dir and (other_seed is None or other_seed == _seed(results)):
      raise ValueError(f"Runs {other!r} and {run_dir!r} of {label} have identical results on "
                       "every task and no different seeds: they are copies of one run, which "
                       "Welch's test would count as independent. Give each repetition its own "
                       "vivi-vtab --seed.")


def _side(run_dirs, label):
  if not run_dirs:
    raise ValueError(f"Side {label} needs at least one run directory, got {run_dirs!r}.")
  runs = [load_results(d) for d in run_dirs]
  _check_independent(run_dirs, runs, label)
  accuracies, groups, missing = {}, {}, {}
  for run_dir, (tasks, results) in zip(run_dirs, runs):
    for task, (group, accuracy) in tasks.items():
      if groups.setdefault(task, group) != group:
        raise ValueError(f"Task {task!r} is in group {group!r} in {run_dir!r} but "
                         f"{groups[task]!r} in another run of side {label}.")
      accuracies.setdefault(task, []).append(accuracy)
    for task, reason in (results.get("missing") or {}).items():
      missing.setdefault(task, str(reason))
  hubs = sorted({str(results.get("hub")) for _, results in runs})
  in_every_run = {t for t in accuracies if len(accuracies[t]) == len(runs)}
  return dict(accuracies=accuracies, groups=groups, missing=missing, hubs=hubs,
              in_every_run=in_every_run, num_runs=len(runs))


def _ordered(tasks, groups):
  """Figure 4's order: by group, then the paper's task order, then by name."""
  rank = {g: i for i, g in enumerate(GROUPS)}
  order = {t: i for i, t in enumerate(vtab_tasks.list_tasks())}
  return sorted(tasks, key=lambda t: (rank.get(groups[t], len(GROUPS)), order.get(t, len(order)),
                                      t))


def _as_dict(comparison):
  out = {k: getattr(comparison, k) for k in comparison.__dataclass_fields__}
  out["ci_a"], out["ci_b"] = list(comparison.ci_a), list(comparison.ci_b)
  # JSON has no NaN or infinity.
  return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def _task_comparisons(a, b, ordered, groups, correction, options):
  """Per task: both sides' runs, Welch's test and the verdict at the corrected p."""
  tasks = {}
  for task in ordered:
    result = statistics.compare_runs(a["accuracies"][task], b["accuracies"][task], **options)
    tasks[task] = dict(group=groups[task], runs_a=a["accuracies"][task],
                       runs_b=b["accuracies"][task], **_as_dict(result), p_adjusted=None)
  tested = [t for t, c in tasks.items() if c["p"] is not None]
  adjusted = statistics.adjust_p_values([tasks[t]["p"] for t in tested], correction)
  for task, q in zip(tested, adjusted):
    tasks[task].update(p_adjusted=q,
                       verdict=statistics.significance(tasks[task]["delta"], q, options["alpha"]))
  return tasks


def _mean_comparisons(a, b, groups, options):
  """Per category mean (computed per run over the tasks every run of both sides has)."""
  everywhere = _ordered(a["in_every_run"] & b["in_every_run"], groups)
  # Per run, as vivi-vtab computes its means (vtab_tasks.mean_members).
  run_means = {side: [vtab.group_means({t: {"group": groups[t],
                                            "test_accuracy": s["accuracies"][t][r]}
                                        for t in everywhere})
                      for r in range(s["num_runs"])] for side, s in (("a", a), ("b", b))}
  means = {}
  for group, tasks_in in vtab_tasks.mean_members({t: groups[t] for t in everywhere}).items():
    if not tasks_in:
      continue
    per_run = {side: [m[group] for m in run_means[side]] for side in ("a", "b")}
    result = statistics.compare_runs(per_run["a"], per_run["b"], **options)
    means[group] = dict(tasks=tasks_in, runs_a=per_run["a"], runs_b=per_run["b"],
                        **_as_dict(result))
  return means


def _common_tasks(a, b, names):
  """The tasks both sides ran, each in the same group on both sides."""
  common = set(a["accuracies"]) & set(b["accuracies"])
  if not common:
    raise ValueError(f"No task in common: {names[0]} has {sorted(a['accuracies'])}, {names[1]} "
                     f"has {sorted(b['accuracies'])}.")
  for task in common:
    if a["groups"][task] != b["groups"][task]:
      raise ValueError(f"Task {task!r} is in group {a['groups'][task]!r} for {names[0]} but "
                       f"{b['groups'][task]!r} for {names[1]}.")
  return common


def compare(a_dirs, b_dirs, names=("A", "B"), alpha=0.05, seed=0, correction="none"):
  """Per-task and per-category comparison of B against A.

  Per task, every run that has the task counts; the verdicts are taken at `p_adjusted`, the
  tasks' p-values after `correction` across tasks: "none" by default, the paper's per-task
  Welch p < 0.05 (§4.2: "We report statistical significance at the p=0.05 level on a Welch's
  two sided t-test based on 12 independent runs"), or "bh" (Benjamini–Hochberg: 19 tasks at
  0.05 find about one difference by chance without it). A directory given twice, and two runs
  of one side that are copies (same module, config and seed, or identical results without
  different seeds), are refused; fewer than `statistics.MIN_RUNS` runs a side is said in `warnings`. The category
  means (`vtab_tasks.MEAN_KEYS`, as `vivi-vtab` computes them: "overall" only when all 19 VTAB
  tasks are compared, else "partial") are computed per run over the tasks that every run of
  both sides has, then compared across runs.

  Args:
    a_dirs, b_dirs: run directories of the baseline A and the compared model B.
    names: display names `(A, B)`.
    alpha: significance level of Welch's test.
    seed: bootstrap seed.
    correction: "none" or "bh" (`statistics.adjust_p_values`).

  Returns:
    The comparison as a JSON-ready dict (see `comparison.json`).
  """
  if len(names) != 2:
    raise ValueError(f"names must be two display names, got {names!r}.")
  if correction not in statistics.CORRECTIONS:
    raise ValueError(f"correction must be one of {statistics.CORRECTIONS}, got {correction!r}.")
  _check_distinct_dirs(a_dirs, b_dirs)
  a, b = _side(a_dirs, names[0]), _side(b_dirs, names[1])
  common = _common_tasks(a, b, names)
  groups = a["groups"]
  options = dict(alpha=alpha, seed=seed)
  tasks = _task_comparisons(a, b, _ordered(common, groups), groups, correction, options)
  means = _mean_comparisons(a, b, groups, options)
  benchmark = ("Robustness (Table 5)" if all(g == robustness_suite.KIND for g in groups.values())
               else "VTAB-1k")
  return {
      "benchmark": benchmark,
      "names": {"a": names[0], "b": names[1]},
      "runs": {"a": list(a_dirs), "b": list(b_dirs)},
      "hubs": {"a": a["hubs"], "b": b["hubs"]},
      "alpha": alpha,
      "correction": correction,
      "correction_name": statistics.CORRECTION_NAMES[correction],
      "warnings": [statistics.too_few_runs(label, len(dirs))
                   for label, dirs in zip(names, (a_dirs, b_dirs))
                   if len(dirs) < statistics.MIN_RUNS],
      "test": "Welch's two-sided t-test; 95% percentile-bootstrap intervals of the mean",
      "tasks": tasks,
      "means": means,
      "only_a": sorted(set(a["accuracies"]) - common),
      "only_b": sorted(set(b["accuracies"]) - common),
      "missing": {"a": a["missing"], "b": b["missing"]},
  }


def pct(x):
  """A fraction as a percentage with one decimal ('–' for None)."""
  return "–" if x is None else f"{100 * x:.1f}"


def _row(label, group, c):
  ci = lambda lo_hi: f"[{pct(lo_hi[0])}, {pct(lo_hi[1])}]"
  rel = "–" if c["relative_increase"] is None else f"{100 * c['relative_increase']:+.1f} %"
  p = "–" if c["p"] is None else f"{c['p']:.2g}"
  if c.get("p_adjusted") is not None and c["p_adjusted"] != c["p"]:
    p += f" (q {c['p_adjusted']:.2g})"
  mark = " *" if c["verdict"] in (statistics.BETTER, statistics.WORSE) else ""
  return (f"| {label} | {group} | {pct(c['mean_a'])} {ci(c['ci_a'])} | "
          f"{pct(c['mean_b'])} {ci(c['ci_b'])} | {100 * c['delta']:+.1f} | {rel} | {p} | "
          f"{c['verdict']}{mark} |")


_CORRECTED = {"bh": " (q: Benjamini–Hochberg-adjusted across the tasks, which the tasks' verdicts "
                     "use)", "none": ""}


def to_markdown(comparison):
  """`comparison.md`: the per-task table, the category means and what was left out."""
  a, b = comparison["names"]["a"], comparison["names"]["b"]
  runs = comparison["runs"]
  lines = [f"# {comparison['benchmark']}: {b} against {a}", "",
           f"{len(runs['a'])} run(s) of {a} ({', '.join(comparison['hubs']['a'])}), "
           f"{len(runs['b'])} run(s) of {b} ({', '.join(comparison['hubs']['b'])}). "
           f"Accuracy in %, mean [95 % bootstrap interval]; Δ = {b} − {a} in points; "
           f"p of Welch's two-sided t-test{_CORRECTED[comparison['correction']]}; verdict for "
           f"{b} at p < {comparison['alpha']} (* significant). Multiple-comparison "
           f"correction: {comparison['correction_name']}.", ""]
  for warning in comparison["warnings"]:
    lines += [f"**Warning:** {warning}", ""]
  lines += [f"| task | group | {a} | {b} | Δ | relative | p | verdict |",
           "|---|---|---|---|---|---|---|---|"]
  lines += [_row(task, c["group"], c) for task, c in comparison["tasks"].items()]
  if comparison["means"]:
    lines += ["", "Category means (per run, over the tasks every run of both models has):", "",
              f"| mean | tasks | {a} | {b} | Δ | relative | p | verdict |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [_row(group, len(c["tasks"]), c) for group, c in comparison["means"].items()]
  for side, label in (("only_a", a), ("only_b", b)):
    if comparison[side]:
      lines += ["", f"Only in {label} (not compared): {', '.join(comparison[side])}."]
  for side, label in (("a", a), ("b", b)):
    missing = comparison["missing"][side]
    if missing:
      lines += ["", f"Missing in runs of {label}:"] + [f"- {t}: {r}" for t, r in missing.items()]
  return "\n".join(lines) + "\n"


def write(comparison, output):
  """Writes `comparison.json`, `comparison.md` and `relative_increase.png` into `output`; returns
  the `Figure` of relative_increase.png."""
  outputs.write_report(output, "comparison", comparison, to_markdown(comparison))
  a, b = comparison["names"]["a"], comparison["names"]["b"]
  rows = [dict(task=task, group=c["group"],
               relative_increase=math.nan if c["relative_increase"] is None
               else c["relative_increase"],
               significant=c["verdict"] in (statistics.BETTER, statistics.WORSE))
          for task, c in comparison["tasks"].items()]
  title = (f"{comparison['benchmark']} accuracy of {b} relative to {a}\n"
           f"(* Welch p < {comparison['alpha']}; correction: {comparison['correction_name']})")
  single_run = min(len(comparison["runs"]["a"]), len(comparison["runs"]["b"])) == 1
  return statistics.plot_relative_increase(
      rows, os.path.join(output, "relative_increase.png"), title=title, label_a=a, label_b=b,
      single_run=single_run)
