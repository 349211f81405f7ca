"""Welch, bootstrap and Fisher against SciPy, textbook numbers and NumPy loops."""

import fractions
import math

import numpy as np
import pytest
from matplotlib import image as mpimg
from scipy import stats

from keras_vivi.evaluation import statistics


# The values of the hand-written implementations (NumPy resampling, Student-t CDF, hypergeometric
# log-pmf sums) that SciPy replaced, computed with them before the change: the results people
# already have must not move (bootstrap: same resamples from the same seed; others to rounding).
def test_unchanged_from_the_hand_written_versions():
  x = np.random.default_rng(5).normal(0.7, 0.05, 12)
  np.testing.assert_allclose(statistics.bootstrap_ci(x, num_resamples=20000, seed=1),
                             [0.6724830418694784, 0.7231604124229527], rtol=1e-12)
  np.testing.assert_allclose(statistics.bootstrap_ci([0.61, 0.64, 0.6, 0.66, 0.63, 0.62]),
                             [0.6116666666666667, 0.6433333333333334], rtol=1e-12)
  np.testing.assert_allclose(
      statistics.welch_t_test([0.61, 0.64, 0.6, 0.66, 0.63, 0.62], [0.58, 0.6, 0.59, 0.61, 0.57]),
      [3.24372303540774, 8.898233809924307, 0.010250167485553501], rtol=1e-9)
  np.testing.assert_allclose(statistics.fisher_exact(2384, 4000, 2640, 4000),
                             [0.75997599759976, 3.6087476542408707e-09], rtol=1e-9)
  np.testing.assert_allclose(statistics.fisher_exact(12, 40, 30, 45),
                             [0.21428571428571427, 0.001058091120750328], rtol=1e-9)


def test_welch_hand_computed():
  # a: mean 2, var 1; b: mean 5, var 20/3 → se² = 1/3 + 5/3 = 2, t = -3/√2,
  # dof = 2² / ((1/3)²/2 + (5/3)²/3) = 216/53.
  t, dof, p = statistics.welch_t_test([1, 2, 3], [2, 4, 6, 8])
  assert t == pytest.approx(-3 / math.sqrt(2), rel=1e-12)
  assert dof == pytest.approx(216 / 53, rel=1e-12)
  assert p == pytest.approx(2 * stats.t.cdf(-3 / math.sqrt(2), 216 / 53), rel=1e-9)


def test_welch_textbook_example():
  # Wikipedia, "Welch's t-test", example 1: t = -2.46, dof ≈ 25.0, p = 0.021.
  a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
  a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
  t, dof, p = statistics.welch_t_test(a1, a2)
  assert round(t, 2) == -2.46 and round(dof, 1) == 25.0 and round(p, 3) == 0.021


def test_welch_degenerate_and_invalid():
  assert statistics.welch_t_test([0.5, 0.5], [0.5, 0.5, 0.5]) == (0.0, 3.0, 1.0)
  assert statistics.welch_t_test([0.1] * 3, [0.1] * 4) == (0.0, 5.0, 1.0)
  t, _, p = statistics.welch_t_test([0.6, 0.6], [0.5, 0.5])
  assert t == math.inf and p == 0.0
  with pytest.raises(ValueError, match="at least 2"):
    statistics.welch_t_test([0.5], [0.1, 0.2])
  with pytest.raises(ValueError, match="finite"):
    statistics.welch_t_test([0.5, math.nan], [0.1, 0.2])


def numpy_loop_bootstrap(x, confidence, num_resamples, seed):
  rng = np.random.default_rng(seed)
  means = []
  for _ in range(num_resamples):
    sample = [x[rng.integers(len(x))] for _ in range(len(x))]
    means.append(sum(sample) / len(sample))
  means = np.sort(means)
  tail = (1 - confidence) / 2
  return np.quantile(means, tail), np.quantile(means, 1 - tail)


def test_bootstrap_against_numpy_loop():
  x = np.random.default_rng(5).normal(0.7, 0.05, 12)
  low, high = statistics.bootstrap_ci(x, num_resamples=20000, seed=1)
  # Independent resamples of the same distribution: agreement up to Monte-Carlo error.
  loop = numpy_loop_bootstrap(x, 0.95, 5000, seed=7)
  np.testing.assert_allclose([low, high], loop, atol=0.03 * (high - low))
  assert low < x.mean() < high


def test_bootstrap_is_deterministic_and_handles_one_value():
  x = np.random.default_rng(2).uniform(0.5, 0.7, 12)
  assert statistics.bootstrap_ci(x, seed=4) == statistics.bootstrap_ci(x, seed=4)
  assert statistics.bootstrap_ci(x, num_resamples=500, seed=4) != statistics.bootstrap_ci(
      x, num_resamples=500, seed=5)
  assert statistics.bootstrap_ci([0.3]) == (0.3, 0.3)
  with pytest.raises(ValueError, match="confidence"):
    statistics.bootstrap_ci(x, confidence=95)


def test_bootstrap_coverage():
  # The percentile interval of a mean of 20 normal values covers the true mean ~93-95 % of times.
  rng = np.random.default_rng(0)
  covered = [low <= 1.0 <= high for low, high in
             (statistics.bootstrap_ci(rng.normal(1.0, 2.0, 20), num_resamples=1000, seed=i)
              for i in range(300))]
  assert 0.88 <= np.mean(covered) <= 0.98


def test_compare_runs_verdicts():
  rng = np.random.default_rng(0)
  a = rng.normal(0.60, 0.005, 12)
  better = statistics.compare_runs(a, rng.normal(0.62, 0.005, 12))
  assert better.verdict == statistics.BETTER and better.significant and better.p < 1e-6
  assert better.relative_increase == pytest.approx((better.mean_b - better.mean_a) / better.mean_a)
  worse = statistics.compare_runs(a, rng.normal(0.58, 0.005, 12))
  assert worse.verdict == statistics.WORSE and worse.t < 0
  same = statistics.compare_runs(a, a + rng.normal(0, 1e-4, 12))
  assert same.verdict == statistics.NOT_SIGNIFICANT and same.p > 0.05
  ref = stats.ttest_ind(a, a + 0.001, equal_var=False)
  assert statistics.compare_runs(a, a + 0.001).p == pytest.approx(ref.pvalue)
  single = statistics.compare_runs([0.6], [0.7])
  assert single.verdict == statistics.TOO_FEW_RUNS and single.p is None
  assert single.ci_a == (0.6, 0.6) and single.delta == pytest.approx(0.1)


TABLES = [(3, 10, 7, 10), (0, 5, 5, 5), (12, 40, 30, 45), (1, 1, 0, 1), (0, 0, 3, 7),
          (391, 1000, 398, 1000), (490, 1000, 545, 1000), (2, 9, 7, 8), (5, 5, 0, 5),
          (0, 5, 3, 5)]


def exact_fisher(hits_a, total_a, hits_b, total_b):
  """Two-sided p in exact rational arithmetic: the hypergeometric tables no likelier than seen."""
  n, k = total_a + total_b, hits_a + hits_b
  pmf = {x: fractions.Fraction(math.comb(k, x) * math.comb(n - k, total_a - x), math.comb(n, total_a))
         for x in range(max(0, total_a - (n - k)), min(k, total_a) + 1)}
  return float(sum(q for q in pmf.values() if q <= pmf[hits_a] * (1 + fractions.Fraction(1, 10**7))))


@pytest.mark.parametrize("hits_a,total_a,hits_b,total_b", TABLES)
def test_fisher_against_exact_arithmetic(hits_a, total_a, hits_b, total_b):
  odds, p = statistics.fisher_exact(hits_a, total_a, hits_b, total_b)
  np.testing.assert_allclose(p, exact_fisher(hits_a, total_a, hits_b, total_b), rtol=1e-9)
  miss_a, miss_b = total_a - hits_a, total_b - hits_b
  if miss_a * hits_b:
    assert odds == pytest.approx(hits_a * miss_b / (miss_a * hits_b))
  elif hits_a * miss_b:
    assert odds == math.inf
  else:
    assert math.isnan(odds)


def test_fisher_table2_scale():
  # Table 2 at 120k steps: 59.6 % vs 66.0 % of a few thousand objects is significant at 0.001.
  _, p = statistics.fisher_exact(2384, 4000, 2640, 4000)
  assert p < 1e-3
  with pytest.raises(ValueError, match="hits_a=5, total_a=4"):
    statistics.fisher_exact(5, 4, 1, 2)


def test_relative_increase_plot(tmp_path):
  rows = [dict(task="caltech101", group="natural", relative_increase=0.05, significant=True),
          dict(task="eurosat", group="specialized", relative_increase=-0.02, significant=False),
          dict(task="dmlab", group="structured", relative_increase=0.1, significant=True),
          dict(task="digits", group="local", relative_increase=math.nan, significant=False)]
  path = str(tmp_path / "fig.png")
  figure = statistics.plot_relative_increase(rows, path)
  assert [bar.get_height() for bar in figure.axes[0].patches] == pytest.approx([5, -2, 10, 0])
  # Each bar's value written on it, a star where significant; no hatching for repeated runs.
  assert [t.get_text() for t in figure.axes[0].texts] == ["+5.0*", "-2.0", "+10.0*", "–"]
  assert {bar.get_hatch() for bar in figure.axes[0].patches} == {None}
  single = statistics.plot_relative_increase(rows, str(tmp_path / "single.png"), single_run=True)
  assert {bar.get_hatch() for bar in single.axes[0].patches} == {"//"}
  assert "single run, no error bar" in [t.get_text() for t in single.axes[0].get_legend().get_texts()]
  pixels = mpimg.imread(path)
  assert pixels.ndim == 3 and pixels.shape[0] > 100
  # The three group colours are drawn.
  rgb = (pixels[..., :3] * 255).round().astype(int).reshape(-1, 3)
  for colour in statistics.GROUP_COLOURS.values():
    target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    assert np.any(np.all(np.abs(rgb - target) <= 2, axis=1)), colour
  assert statistics.relative_increase(0.5, 0.6) == pytest.approx(0.2)
  assert math.isnan(statistics.relative_increase(0.0, 0.6))


def test_benjamini_hochberg_hand_computed():
  # Sorted p 0.01, 0.03, 0.04, 0.5 (m = 4): p·m/rank = 0.04, 0.06, 0.0533, 0.5, then the running
  # minimum from the largest rank down: 0.04, 0.0533, 0.0533, 0.5.
  q = statistics.adjust_p_values([0.04, 0.01, 0.5, 0.03], "bh")
  np.testing.assert_allclose(q, [0.16 / 3, 0.04, 0.5, 0.16 / 3], rtol=1e-12)
  assert [statistics.significance(1.0, x, 0.05) for x in q] == [
      statistics.NOT_SIGNIFICANT, statistics.BETTER, statistics.NOT_SIGNIFICANT,
      statistics.NOT_SIGNIFICANT]
  assert statistics.adjust_p_values([0.04, 0.01], "none") == [0.04, 0.01]
  assert statistics.adjust_p_values([], "bh") == []
  with pytest.raises(ValueError, match="'holm'"):
    statistics.adjust_p_values([0.1], "holm")
