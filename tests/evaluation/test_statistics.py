"""Welch, bootstrap and Fisher against SciPy, textbook numbers and NumPy loops."""

import math

import numpy as np
import pytest
from matplotlib import image as mpimg
from scipy import stats

from keras_vivi.evaluation import statistics


@pytest.mark.parametrize("seed,n_a,n_b,scale_b", [(0, 12, 12, 1.0), (1, 5, 9, 3.0),
                                                  (2, 2, 2, 0.1), (3, 30, 4, 10.0)])
def test_welch_matches_scipy(seed, n_a, n_b, scale_b):
  rng = np.random.default_rng(seed)
  a = rng.normal(0.6, 0.02, n_a)
  b = rng.normal(0.61, 0.02 * scale_b, n_b)
  t, dof, p = statistics.welch_t_test(a, b)
  ref = stats.ttest_ind(a, b, equal_var=False)
  np.testing.assert_allclose([t, p], [ref.statistic, ref.pvalue], rtol=1e-10)
  np.testing.assert_allclose(dof, ref.df, rtol=1e-10)


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


def test_bootstrap_against_numpy_loop_and_scipy():
  x = np.random.default_rng(5).normal(0.7, 0.05, 12)
  low, high = statistics.bootstrap_ci(x, num_resamples=20000, seed=1)
  # Independent resamples of the same distribution: agreement up to Monte-Carlo error.
  loop = numpy_loop_bootstrap(x, 0.95, 5000, seed=7)
  ref = stats.bootstrap((x,), np.mean, method="percentile", n_resamples=20000,
                        random_state=np.random.default_rng(3)).confidence_interval
  width = high - low
  np.testing.assert_allclose([low, high], loop, atol=0.03 * width)
  np.testing.assert_allclose([low, high], [ref.low, ref.high], atol=0.02 * width)
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
          (3000, 7500, 3300, 7600), (0, 5, 3, 5)]


@pytest.mark.parametrize("hits_a,total_a,hits_b,total_b", TABLES)
def test_fisher_matches_scipy(hits_a, total_a, hits_b, total_b):
  table = [[hits_a, total_a - hits_a], [hits_b, total_b - hits_b]]
  ref = stats.fisher_exact(table, alternative="two-sided")
  odds, p = statistics.fisher_exact(hits_a, total_a, hits_b, total_b)
  np.testing.assert_allclose(p, ref.pvalue, rtol=1e-9, atol=1e-300)
  if math.isnan(ref.statistic):
    assert math.isnan(odds)
  else:
    assert odds == pytest.approx(ref.statistic)


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
  path = statistics.plot_relative_increase(rows, str(tmp_path / "fig.png"))
  pixels = mpimg.imread(path)
  assert pixels.ndim == 3 and pixels.shape[0] > 100
  # The three group colours are drawn.
  rgb = (pixels[..., :3] * 255).round().astype(int).reshape(-1, 3)
  for colour in statistics.GROUP_COLOURS.values():
    target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    assert np.any(np.all(np.abs(rgb - target) <= 2, axis=1)), colour
  assert statistics.relative_increase(0.5, 0.6) == pytest.approx(0.2)
  assert math.isnan(statistics.relative_increase(0.0, 0.6))
