"""Statistics of the paper's comparisons: Welch's t-test, bootstrapped CIs, Fisher's exact test.

  t, dof, p = welch_t_test(runs_b, runs_a)                # VTAB: 12 runs a side, p < 0.05
  low, high = bootstrap_ci(runs_a)                       # the error bars (95 %, percentile)
  verdict = compare_runs(runs_a, runs_b)                 # per task: better / worse / n.s.
  q = adjust_p_values(p_per_task, "bh")                  # Benjamini–Hochberg across tasks
  odds, p = fisher_exact(hits_a, total_a, hits_b, total_b)  # Table 2, p < 0.001
  fig = plot_relative_increase(rows, "relative_increase.png")  # Figure 4 (also written)

Everything is NumPy / SciPy on host values; TensorFlow is imported only to write the figure.
SciPy is imported where used: its constants (`CORRECTIONS`) are `vivi-compare --help`'s.
"""

import dataclasses
import math

import numpy as np

# The colours of the VTAB groups in every plot (here and `vtab`'s results.png): Figure 4's blue
# Natural, orange Specialized, green Structured (matplotlib's C0, C1, C2); gray for the rest.
GROUP_COLOURS = {"natural": "#1f77b4", "specialized": "#ff7f0e", "structured": "#2ca02c"}
OTHER_COLOUR = "#7f7f7f"

BETTER = "better"
WORSE = "worse"
NOT_SIGNIFICANT = "not significant"
TOO_FEW_RUNS = "too few runs"
# Multiple-comparison corrections across tasks; the paper's is none (§4.2: per task, Welch's
# two-sided p < 0.05 over 12 runs a side).
CORRECTIONS = ("none", "bh")
CORRECTION_NAMES = {"none": "none (uncorrected per-task Welch p, as the paper)",
                    "bh": "Benjamini–Hochberg"}
# Fewer runs a side than this gives Welch's test little power and unreliable p-values.
MIN_RUNS = 3


def too_few_runs(label, n):
  """The warning for `n` < `MIN_RUNS` runs of side `label`."""
  return (f"{label} has {n} run(s), fewer than {MIN_RUNS}: Welch's test on so few runs has "
          f"little power and unreliable p-values (the paper used 12 runs a side).")


def _sample(values, name):
  x = np.asarray(values, np.float64).ravel()
  if x.size == 0 or not np.all(np.isfinite(x)):
    raise ValueError(f"{name} must be a non-empty sequence of finite numbers, got {values!r}.")
  return x


def welch_t_test(a, b):
  """Welch's two-sided t-test of equal means without assuming equal variances.

  SciPy's `ttest_ind(a, b, equal_var=False)`. When both samples are constant (e.g. deterministic
  reruns) SciPy returns NaN; we return `t = 0, p = 1` for equal constants (no evidence of a
  difference) and `t = ±inf, p = 0` for different ones, with `dof = n_a + n_b - 2`, so that a
  table never shows NaN.

  Args:
    a: `[n_a]` values, `n_a >= 2`.
    b: `[n_b]` values, `n_b >= 2`.

  Returns:
    `(t, dof, p)` floats; `t > 0` when `a` has the larger mean.
  """
  a, b = _sample(a, "a"), _sample(b, "b")
  if a.size < 2 or b.size < 2:
    raise ValueError(f"Welch's t-test needs at least 2 values a side, got {a.size} and {b.size}.")
  if np.ptp(a) == 0.0 and np.ptp(b) == 0.0:
    dof = float(a.size + b.size - 2)
    diff = a[0] - b[0]
    if diff == 0.0:
      return 0.0, dof, 1.0
    return math.copysign(math.inf, diff), dof, 0.0
  from scipy import stats
  result = stats.ttest_ind(a, b, equal_var=False)
  return float(result.statistic), float(result.df), float(result.pvalue)


def bootstrap_ci(values, confidence=0.95, num_resamples=10000, seed=0):
  """Percentile-bootstrap confidence interval of the mean.

  SciPy's `bootstrap(method="percentile")` with `rng=default_rng(seed)`, so the interval is
  reproducible; resampling runs in batches that keep the index matrix small for long samples.
  One value gives a zero-width interval (SciPy needs two).

  Args:
    values: `[n]` values, `n >= 1`.
    confidence: coverage in (0, 1).
    num_resamples: bootstrap samples (> 0).
    seed: integer seed.

  Returns:
    `(low, high)` floats.
  """
  x = _sample(values, "values")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
  if num_resamples < 1:
    raise ValueError(f"num_resamples must be positive, got {num_resamples}.")
  if x.size == 1:
    return float(x[0]), float(x[0])
  from scipy import stats
  interval = stats.bootstrap((x,), np.mean, n_resamples=num_resamples,
                             batch=max(1, 2 ** 22 // x.size), confidence_level=confidence,
                             method="percentile", rng=np.random.default_rng(seed)
                             ).confidence_interval
  return float(interval.low), float(interval.high)


@dataclasses.dataclass(frozen=True)
class RunComparison:
  """Model B against model A on one task from repeated runs.

  Attributes:
    mean_a, mean_b: means of the runs.
    ci_a, ci_b: bootstrapped 95 % intervals of those means.
    n_a, n_b: numbers of runs.
    delta: `mean_b - mean_a`.
    relative_increase: `delta / mean_a` (Figure 4; NaN when `mean_a == 0`).
    t, dof, p: Welch's test of B against A (None with fewer than 2 runs a side).
    verdict: `BETTER` / `WORSE` (B significantly better / worse than A at `alpha`),
      `NOT_SIGNIFICANT`, or `TOO_FEW_RUNS`.
  """
  mean_a: float
  mean_b: float
  ci_a: tuple
  ci_b: tuple
  n_a: int
  n_b: int
  delta: float
  relative_increase: float
  t: float | None
  dof: float | None
  p: float | None
  verdict: str

  @property
  def significant(self):
    return self.verdict in (BETTER, WORSE)


def relative_increase(mean_a, mean_b):
  """`(mean_b - mean_a) / mean_a`: Figure 4's increase of B over the baseline A (NaN if A is 0)."""
  return (mean_b - mean_a) / mean_a if mean_a else math.nan


def compare_runs(runs_a, runs_b, alpha=0.05, confidence=0.95, num_resamples=10000, seed=0):
  """Compares model B with baseline A on one task (the paper: 12 runs a side, p = 0.05).

  Args:
    runs_a, runs_b: `[n]` accuracies of independent runs of each model.
    alpha: two-sided significance level of Welch's test.
    confidence, num_resamples, seed: of the bootstrapped intervals (see `bootstrap_ci`).

  Returns:
    A `RunComparison`.
  """
  a, b = _sample(runs_a, "runs_a"), _sample(runs_b, "runs_b")
  if not 0.0 < alpha < 1.0:
    raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
  ci = dict(confidence=confidence, num_resamples=num_resamples, seed=seed)
  t = dof = p = None
  if a.size < 2 or b.size < 2:
    verdict = TOO_FEW_RUNS
  else:
    t, dof, p = welch_t_test(b, a)
    verdict = significance(t, p, alpha)
  mean_a, mean_b = float(a.mean()), float(b.mean())
  return RunComparison(mean_a=mean_a, mean_b=mean_b, ci_a=bootstrap_ci(a, **ci),
                       ci_b=bootstrap_ci(b, **ci), n_a=int(a.size), n_b=int(b.size),
                       delta=mean_b - mean_a, relative_increase=relative_increase(mean_a, mean_b),
                       t=t, dof=dof, p=p, verdict=verdict)


def significance(t, p, alpha):
  """The verdict for B from Welch's `t` of B against A (or Δ, of the same sign) and a p-value."""
  return NOT_SIGNIFICANT if p >= alpha else (BETTER if t > 0 else WORSE)


def adjust_p_values(p_values, method="bh"):
  """Adjusts p-values of a family of tests (e.g. the VTAB tasks) for multiple comparisons.

  Args:
    p_values: `[m]` p-values in [0, 1].
    method: "bh" (Benjamini–Hochberg, SciPy's `false_discovery_control`: controls the false
      discovery rate) or "none".

  Returns:
    `[m]` adjusted p-values (a list of floats).
  """
  if method not in CORRECTIONS:
    raise ValueError(f"method must be one of {CORRECTIONS}, got {method!r}.")
  p_values = [float(p) for p in p_values]
  if method == "none" or not p_values:
    return p_values
  from scipy import stats
  return [float(q) for q in stats.false_discovery_control(p_values, method=method)]


def fisher_exact(hits_a, total_a, hits_b, total_b):
  """Fisher's exact two-sided test of equal hit rates in two samples (Table 2's test).

  SciPy's `fisher_exact` on the 2×2 table `[[hits_a, total_a - hits_a], [hits_b, total_b -
  hits_b]]`, after checking that the counts are integers with `0 <= hits <= total`.

  Args:
    hits_a, total_a: successes and trials of model A.
    hits_b, total_b: the same for model B.

  Returns:
    `(odds_ratio, p)`: the sample odds ratio `hits_a·misses_b / (misses_a·hits_b)` (inf when the
    denominator is 0, NaN when both are) and the two-sided p-value.
  """
  counts = (hits_a, total_a, hits_b, total_b)
  if any(int(c) != c for c in counts) or not (0 <= hits_a <= total_a and 0 <= hits_b <= total_b):
    raise ValueError("fisher_exact needs integer counts with 0 <= hits <= total, got "
                     f"hits_a={hits_a}, total_a={total_a}, hits_b={hits_b}, total_b={total_b}.")
  hits_a, total_a, hits_b, total_b = map(int, counts)
  from scipy import stats
  result = stats.fisher_exact([[hits_a, total_a - hits_a], [hits_b, total_b - hits_b]])
  return float(result.statistic), float(result.pvalue)


def plot_relative_increase(rows, path, title="Relative increase of B over A", label_b="B",
                           label_a="A", single_run=False):
  """Figure 4: a bar per task of B's relative increase over A, its value written on it (with a
  star when significant); hatched bars when `single_run` (a side has one run: no error bar).

  Args:
    rows: sequence of dicts with 'task', 'group' (natural / specialized / structured / other),
      'relative_increase' (a fraction; drawn in percent) and 'significant' (bool).
    path: PNG file to write.
    title: figure title.
    label_b, label_a: model names for the axis label.
    single_run: whether a side has a single run.

  Returns:
    The matplotlib `Figure` (also written to `path`).
  """
  from keras_vivi import files  # pylint: disable=g-import-not-at-top
  from keras_vivi import plotting  # pylint: disable=g-import-not-at-top
  from matplotlib import patches  # pylint: disable=g-import-not-at-top

  rows = list(rows)
  values = [100.0 * r["relative_increase"] if np.isfinite(r["relative_increase"]) else 0.0
            for r in rows]
  colours = [GROUP_COLOURS.get(r["group"], OTHER_COLOUR) for r in rows]
  fig, ax = plotting.subplots(figsize=(max(4.5, 0.45 * len(rows) + 1.5), 3.6))
  x = np.arange(len(rows))
  bars = ax.bar(x, values, color=colours)
  ax.axhline(0.0, color="black", linewidth=0.8)
  span = max([abs(v) for v in values] + [1e-9])
  plotting.label_bars(ax, bars, [
      ("–" if not np.isfinite(r["relative_increase"]) else f"{v:+.1f}")
      + ("*" if r["significant"] else "") for r, v in zip(rows, values)])
  if single_run:
    plotting.mark_single_run(bars)
  ax.set_xticks(x)
  ax.set_xticklabels([r["task"] for r in rows], rotation=60, ha="right", fontsize=8)
  ax.set_ylabel(f"({label_b} − {label_a}) / {label_a} [%]")
  ax.set_ylim(min(0.0, min(values, default=0.0)) - 0.2 * span,
              max(0.0, max(values, default=0.0)) + 0.2 * span)
  ax.set_title(title, fontsize=10)
  present = [g for g in GROUP_COLOURS if any(r["group"] == g for r in rows)]
  handles = [patches.Patch(color=GROUP_COLOURS[g], label=g.capitalize()) for g in present]
  if any(r["group"] not in GROUP_COLOURS for r in rows):
    handles.append(patches.Patch(color=OTHER_COLOUR, label="Other"))
  if single_run:
    handles.append(plotting.single_run_handle())
  if handles:
    ax.legend(handles=handles, fontsize=7, loc="best")
  fig.tight_layout()
  return files.save_figure(fig, path)
