"""Statistics of the paper's comparisons: Welch's t-test, bootstrapped CIs, Fisher's exact test.

  t, dof, p = welch_t_test(runs_b, runs_a)                # VTAB: 12 runs a side, p < 0.05
  low, high = bootstrap_ci(runs_a)                       # the error bars (95 %, percentile)
  verdict = compare_runs(runs_a, runs_b)                 # per task: better / worse / n.s.
  odds, p = fisher_exact(hits_a, total_a, hits_b, total_b)  # Table 2, p < 0.001
  plot_relative_increase(rows, "relative_increase.png")  # Figure 4

Everything is NumPy / SciPy on host values; no TensorFlow.
"""

import dataclasses
import math

import numpy as np
from scipy import special
from scipy import stats

# The colours of the VTAB groups in every plot (here and `vtab`'s results.png): Figure 4's blue
# Natural, orange Specialized, green Structured (matplotlib's C0, C1, C2); gray for the rest.
GROUP_COLOURS = {"natural": "#1f77b4", "specialized": "#ff7f0e", "structured": "#2ca02c"}
OTHER_COLOUR = "#7f7f7f"

BETTER = "better"
WORSE = "worse"
NOT_SIGNIFICANT = "not significant"
TOO_FEW_RUNS = "too few runs"


def _sample(values, name):
  x = np.asarray(values, np.float64).ravel()
  if x.size == 0 or not np.all(np.isfinite(x)):
    raise ValueError(f"{name} must be a non-empty sequence of finite numbers, got {values!r}.")
  return x


def welch_t_test(a, b):
  """Welch's two-sided t-test of equal means without assuming equal variances.

  `t = (mean(a) - mean(b)) / sqrt(var(a)/n_a + var(b)/n_b)` with unbiased variances, and
  Welch–Satterthwaite degrees of freedom; the p-value is `2 * P(T_dof <= -|t|)`.

  When both samples are constant (e.g. deterministic reruns) the statistic is undefined; we
  return `t = 0, p = 1` for equal constants (no evidence of a difference) and `t = ±inf, p = 0`
  for different ones, with `dof = n_a + n_b - 2`, rather than NaNs that would break a table.

  Args:
    a: `[n_a]` values, `n_a >= 2`.
    b: `[n_b]` values, `n_b >= 2`.

  Returns:
    `(t, dof, p)` floats; `t > 0` when `a` has the larger mean.
  """
  a, b = _sample(a, "a"), _sample(b, "b")
  if a.size < 2 or b.size < 2:
    raise ValueError(f"Welch's t-test needs at least 2 values a side, got {a.size} and {b.size}.")
  va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
  diff = a.mean() - b.mean()
  se2 = va + vb
  if se2 == 0.0:
    dof = float(a.size + b.size - 2)
    if diff == 0.0:
      return 0.0, dof, 1.0
    return math.copysign(math.inf, diff), dof, 0.0
  t = diff / math.sqrt(se2)
  dof = se2 ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
  # stdtr is the Student-t CDF; the two tails are symmetric.
  p = 2.0 * special.stdtr(dof, -abs(t))
  return float(t), float(dof), float(min(p, 1.0))


def bootstrap_ci(values, confidence=0.95, num_resamples=10000, seed=0):
  """Percentile-bootstrap confidence interval of the mean.

  Draws `num_resamples` samples of `n` values with replacement (NumPy `default_rng(seed)`, so
  the interval is reproducible) and returns the `(1 - confidence) / 2` and `(1 + confidence) / 2`
  quantiles of their means (linear interpolation).

  Args:
    values: `[n]` values, `n >= 1` (one value gives a zero-width interval).
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
  rng = np.random.default_rng(seed)
  means = np.empty(num_resamples)
  # Chunks keep the index matrix small for long samples.
  chunk = max(1, 2 ** 22 // x.size)
  for start in range(0, num_resamples, chunk):
    stop = min(start + chunk, num_resamples)
    means[start:stop] = x[rng.integers(0, x.size, size=(stop - start, x.size))].mean(axis=1)
  tail = (1.0 - confidence) / 2.0
  low, high = np.quantile(means, [tail, 1.0 - tail])
  return float(low), float(high)


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
    verdict = NOT_SIGNIFICANT if p >= alpha else (BETTER if t > 0 else WORSE)
  mean_a, mean_b = float(a.mean()), float(b.mean())
  return RunComparison(mean_a=mean_a, mean_b=mean_b, ci_a=bootstrap_ci(a, **ci),
                       ci_b=bootstrap_ci(b, **ci), n_a=int(a.size), n_b=int(b.size),
                       delta=mean_b - mean_a, relative_increase=relative_increase(mean_a, mean_b),
                       t=t, dof=dof, p=p, verdict=verdict)


def fisher_exact(hits_a, total_a, hits_b, total_b):
  """Fisher's exact two-sided test of equal hit rates in two samples (Table 2's test).

  The 2×2 table `[[hits_a, total_a - hits_a], [hits_b, total_b - hits_b]]` with fixed margins
  makes `hits_a` hypergeometric; the p-value sums the probabilities of all tables no more
  likely than the observed one (relative tolerance 1e-7 against rounding, as R and SciPy do).

  Args:
    hits_a, total_a: successes and trials of model A (`0 <= hits <= total`).
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
  miss_a, miss_b = total_a - hits_a, total_b - hits_b
  numerator, denominator = hits_a * miss_b, miss_a * hits_b
  if denominator:
    odds = numerator / denominator
  else:
    odds = math.inf if numerator else math.nan
  population, successes = total_a + total_b, hits_a + hits_b
  low, high = max(0, total_a - (population - successes)), min(successes, total_a)
  if low == high:
    return odds, 1.0
  support = np.arange(low, high + 1)
  # Log probabilities: counts in the thousands underflow the plain pmf's factorials.
  log_pmf = stats.hypergeom.logpmf(support, population, successes, total_a)
  observed = log_pmf[hits_a - low]
  extreme = log_pmf <= observed + math.log1p(1e-7)
  p = float(np.exp(special.logsumexp(log_pmf[extreme])))
  return odds, min(p, 1.0)


def plot_relative_increase(rows, path, title="Relative increase of B over A", label_b="B",
                           label_a="A"):
  """Figure 4: a bar per task of B's relative increase over A, stars on significant bars.

  Args:
    rows: sequence of dicts with 'task', 'group' (natural / specialized / structured / other),
      'relative_increase' (a fraction; drawn in percent) and 'significant' (bool).
    path: PNG file to write.
    title: figure title.
    label_b, label_a: model names for the axis label.

  Returns:
    `path`.
  """
  from keras_vivi import plotting  # pylint: disable=g-import-not-at-top
  from matplotlib import patches  # pylint: disable=g-import-not-at-top

  rows = list(rows)
  values = [100.0 * r["relative_increase"] if np.isfinite(r["relative_increase"]) else 0.0
            for r in rows]
  colours = [GROUP_COLOURS.get(r["group"], OTHER_COLOUR) for r in rows]
  fig, ax = plotting.subplots(figsize=(max(4.5, 0.45 * len(rows) + 1.5), 3.6))
  x = np.arange(len(rows))
  ax.bar(x, values, color=colours)
  ax.axhline(0.0, color="black", linewidth=0.8)
  span = max([abs(v) for v in values] + [1e-9])
  for i, (row, v) in enumerate(zip(rows, values)):
    if row["significant"]:
      offset = 0.03 * span
      ax.text(i, v + offset if v >= 0 else v - offset, "*", ha="center",
              va="bottom" if v >= 0 else "top", fontsize=12)
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
  if handles:
    ax.legend(handles=handles, fontsize=7, loc="best")
  fig.tight_layout()
  fig.savefig(path)
  return path
