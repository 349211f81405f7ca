"""Tests for keras_vivi.data.shots: real videos with verified cuts, synthetic sequences, NumPy references."""

import dataclasses

import numpy as np
import pytest

from keras_vivi.data import shots as shots_lib
from tests.helpers.videos import BIKES_CUTS, flat_segments, ramp_frames

# Single shots, checked the same way as BIKES_CUTS (overview sheets, largest pixel difference 5.3,
# 6.8 and 4.4): a rabbit climbing out of its burrow with a slow camera move; a man talking in a car
# (twice: the pristine and a heavily compressed copy).
SINGLE_SHOT = ("bigbuckbunny.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")
FPS = 25.0


def _detect(frames, config=shots_lib.ShotConfig()):
  times = np.arange(len(frames)) / FPS
  features = shots_lib.frame_features_rgb(frames, config.bins)
  return shots_lib.detect_shots(features, times, len(frames) / FPS, config)


def test_finds_every_hard_cut_in_bikes(detections):
  result = detections["bikes.mp4"]
  assert len(result.times) == 250 and not result.truncated
  assert len(result.cuts) == len(BIKES_CUTS), result.cuts
  for truth, found in zip(BIKES_CUTS, result.cuts):
    assert abs(int(found) - truth) <= 1, (truth, result.cuts)
  # Margins: every cut well above the threshold, everything else well below it.
  cut_distances = result.distances[np.array(BIKES_CUTS) - 1]
  others = np.delete(result.distances, np.array(BIKES_CUTS) - 1)
  assert cut_distances.min() >= 2.0 * result.threshold, cut_distances
  assert others.max() <= 0.6 * result.threshold, others.max()


@pytest.mark.parametrize("name", SINGLE_SHOT)
def test_single_shot_videos_have_no_cut(detections, name):
  result = detections[name]
  assert result.cuts.size == 0
  assert [(s.start, s.end) for s in result.shots] == [(0, len(result.times))]
  assert result.distances.max() <= 0.5 * result.threshold


def test_shots_tile_the_video(detections):
  result = detections["bikes.mp4"]
  shots = result.shots
  assert [s.start for s in shots] == [0, *BIKES_CUTS]
  assert [s.end for s in shots] == [*BIKES_CUTS, 250]
  assert shots[0].start_time == result.times[0] and shots[-1].end_time == result.end_time == 10.0
  for shot in shots:
    assert shot.start_time == pytest.approx(shot.start / FPS)
    assert shot.duration == pytest.approx(shot.num_frames / FPS)


def test_flat_colour_segments_give_exact_cuts():
  lengths = (12, 7, 20, 9, 15)
  colours = ((200, 40, 40), (40, 180, 60), (50, 60, 200), (230, 230, 230), (120, 120, 40))
  shots, cuts, distances, threshold = _detect(flat_segments(lengths, colours))
  np.testing.assert_array_equal(cuts, np.cumsum(lengths)[:-1])
  assert [s.num_frames for s in shots] == list(lengths)
  assert distances[cuts - 1].min() > 5 * threshold


def test_textured_motion_with_cuts():
  # Sliding ramps (motion in every frame) with different tints and phases: only the tint changes cut.
  a = ramp_frames(30, tint=(1.0, 0.8, 0.6), seed=1)
  b = ramp_frames(25, tint=(0.5, 0.8, 1.0), phase=2.0, speed=3.0, seed=2)
  c = ramp_frames(30, tint=(0.9, 1.0, 0.5), phase=4.0, seed=3)
  _, cuts, _, _ = _detect(np.concatenate([a, b, c]))
  np.testing.assert_array_equal(cuts, [30, 55])


def _fade(frame, n, out=True):
  alphas = np.linspace(1.0, 0.0, n + 2)[1:-1]
  alphas = alphas if out else alphas[::-1]
  return (frame[None].astype(np.float32) * alphas[:, None, None, None]).round().astype(np.uint8)


@pytest.mark.parametrize("fade_frames", [5, 12, 25])
def test_no_cut_inside_a_fade_to_black(fade_frames):
  a = ramp_frames(30, seed=1)
  b = ramp_frames(30, tint=(0.5, 0.8, 1.0), phase=2.0, seed=2)
  black = np.zeros((10,) + a.shape[1:], np.uint8)
  # Shot a fades out to black; after the black frames shot b fades in: no hard cut anywhere.
  frames = np.concatenate([a, _fade(a[-1], fade_frames), black, _fade(b[0], fade_frames, out=False), b])
  _, cuts, distances, threshold = _detect(frames)
  assert cuts.size == 0, cuts
  assert distances.max() > threshold  # the fades do move the histograms past the threshold
  # The luminance-ramp guard alone suffices; with it off as well as the black-frame guard and the
  # local-peak test, the fade would cut.
  config = shots_lib.ShotConfig()
  ramp_only = dataclasses.replace(config, dark_luma=0.0, peak_ratio=1.0)
  assert _detect(frames, ramp_only)[1].size == 0
  assert _detect(frames, dataclasses.replace(ramp_only, ramp_min_step=1.0))[1].size > 0


def test_no_cut_between_near_black_frames():
  # Grainy night-time frames (mean luma < 0.05, textured, so not "flat") that change in darkness.
  frames = flat_segments((15, 15, 15), ((3, 3, 3), (10, 10, 10), (3, 3, 3)), noise=12.0)
  _, cuts, distances, threshold = _detect(frames)
  assert cuts.size == 0 and distances.max() > threshold
  without_guard = dataclasses.replace(shots_lib.ShotConfig(), dark_luma=0.0)
  np.testing.assert_array_equal(_detect(frames, without_guard)[1], [15, 30])


def test_hard_cut_out_of_black_after_a_fade_is_kept():
  a = ramp_frames(30, seed=1)
  b = ramp_frames(30, tint=(0.5, 0.8, 1.0), phase=2.0, seed=2)
  black = np.zeros((10,) + a.shape[1:], np.uint8)
  frames = np.concatenate([a, _fade(a[-1], 12), black, b])
  _, cuts, _, _ = _detect(frames)
  np.testing.assert_array_equal(cuts, [30 + 12 + 10])


def test_minimum_shot_length():
  lengths = (20, 3, 20)  # the middle shot lasts 0.12 s
  frames = flat_segments(lengths, ((200, 40, 40), (40, 180, 60), (50, 60, 200)))
  config = shots_lib.ShotConfig()
  shots, cuts, distances, _ = _detect(frames, config)
  assert len(cuts) == 1 and cuts[0] in (20, 23)
  assert distances[cuts[0] - 1] == distances[[19, 22]].max()  # the stronger boundary survives
  assert min(s.duration for s in shots) >= config.min_shot_seconds
  _, all_cuts, _, _ = _detect(frames, dataclasses.replace(config, min_shot_seconds=0.0))
  np.testing.assert_array_equal(all_cuts, [20, 23])


def test_flicker_between_flat_frames_is_not_a_cut():
  # Uniform grey straddling a histogram bin edge (128): tiny luma changes move all the mass.
  frames = flat_segments((10, 10, 10), ((127, 127, 127), (129, 129, 129), (127, 127, 127)), noise=0.3)
  _, cuts, distances, threshold = _detect(frames)
  assert distances.max() > threshold and cuts.size == 0
  without_guard = dataclasses.replace(shots_lib.ShotConfig(), flat_luma_std=0.0)
  np.testing.assert_array_equal(_detect(frames, without_guard)[1], [10, 20])


def test_histogram_distances_match_numpy_loop():
  rng = np.random.default_rng(0)
  h = rng.random((6, 3, 16)).astype(np.float32)
  h[2, 1, :8] = 0.0  # empty bins on both sides of some pairs
  h[3, 1, :8] = 0.0
  h /= h.sum(axis=-1, keepdims=True)
  weights = (0.5, 0.25, 0.25)
  expected = []
  for i in range(5):
    total = 0.0
    for c in range(3):
      chi = 0.0
      for p, q in zip(h[i, c], h[i + 1, c]):
        chi += 0.0 if p + q == 0 else 0.5 * (p - q) ** 2 / (p + q)
      total += weights[c] * chi
    expected.append(total)
  np.testing.assert_allclose(shots_lib.histogram_distances(h, 0.5), expected, rtol=1e-5)


def test_histogram_distance_bounds():
  same = np.full((2, 3, 4), 0.25, np.float32)
  disjoint = np.zeros((2, 3, 4), np.float32)
  disjoint[0, :, 0] = 1.0
  disjoint[1, :, 3] = 1.0
  assert shots_lib.histogram_distances(same)[0] == 0.0
  assert shots_lib.histogram_distances(disjoint)[0] == pytest.approx(1.0)


def test_frame_features_match_numpy_histogram():
  frames = ramp_frames(3, seed=4)
  features = shots_lib.frame_features_rgb(frames, bins=8)
  yuv = shots_lib.rgb_to_yuv(frames)
  for i in range(3):
    for c in range(3):
      counts, _ = np.histogram(yuv[i, ..., c], bins=8, range=(0, 256))
      np.testing.assert_allclose(features.histograms[i, c], counts / counts.sum(), atol=1e-6)
  np.testing.assert_allclose(features.luma_mean, yuv[..., 0].reshape(3, -1).mean(axis=1) / 255, rtol=1e-5)
  np.testing.assert_allclose(features.luma_std, yuv[..., 0].reshape(3, -1).std(axis=1) / 255, rtol=1e-4)


@pytest.mark.parametrize("bins", [16, 7])
def test_streaming_features_agree_with_the_batch_features(bins):
  """The per-frame features the decoder computes (from value counts) against `frame_features`:
  identical histograms, means and luma std equal to float32 rounding, on 4:2:0 planes."""
  rng = np.random.default_rng(bins)
  y = rng.integers(0, 256, (5, 24, 32), dtype=np.uint8)
  u, v = y[:, ::2, ::2] // 2 + 40, 255 - y[:, ::2, ::2]
  batch = shots_lib.frame_features(y, u, v, bins)
  collector = shots_lib.FeatureCollector(shots_lib.ShotConfig(bins=bins))
  for i in range(5):
    collector.add(y[i], u[i], v[i])
  streamed = collector.features()
  np.testing.assert_array_equal(streamed.histograms, batch.histograms)
  np.testing.assert_allclose(streamed.means, batch.means, rtol=0, atol=2e-7)
  np.testing.assert_allclose(streamed.luma_std, y.reshape(5, -1).std(axis=1) / 255, rtol=1e-6)


def test_rgb_to_yuv_reference_colours():
  rgb = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]], np.uint8)
  np.testing.assert_array_equal(shots_lib.rgb_to_yuv(rgb),
                                [[0, 128, 128], [255, 128, 128], [76, 85, 255], [29, 255, 107]])


def test_adaptive_threshold():
  config = shots_lib.ShotConfig(mad_factor=10.0, min_threshold=0.02)
  d = np.array([0.01, 0.02, 0.03, 0.04, 0.05])  # median 0.03, MAD 0.01
  assert shots_lib.adaptive_threshold(d, config) == pytest.approx(0.03 + 10 * 1.4826 * 0.01)
  assert shots_lib.adaptive_threshold(np.zeros(5), config) == 0.02
  assert shots_lib.adaptive_threshold(np.zeros(0), config) == 0.02


def test_sustained_change_is_not_a_cut():
  # Every frame very different from the previous one (noise): no frame stands out from its neighbours.
  rng = np.random.default_rng(5)
  frames = rng.integers(0, 256, (40, 1, 1, 3), np.uint8) * np.ones((1, 24, 32, 1), np.uint8)
  frames = np.clip(frames + rng.normal(0, 20, frames.shape), 0, 255).astype(np.uint8)
  config = dataclasses.replace(shots_lib.ShotConfig(), mad_factor=0.0)  # threshold at the median
  _, cuts, distances, _ = _detect(frames, config)
  assert np.all(distances > config.min_threshold)
  assert cuts.size == 0
  assert _detect(frames, dataclasses.replace(config, peak_ratio=1.0))[1].size > 0


def test_shots_from_cuts_and_validation():
  times = np.arange(10) / 5.0
  shots = shots_lib.shots_from_cuts(np.array([3, 7]), times, 2.0)
  assert [(s.start, s.end, s.start_time, s.end_time) for s in shots] == [
      (0, 3, 0.0, 0.6), (3, 7, 0.6, 1.4), (7, 10, 1.4, 2.0)]
  assert shots_lib.shots_from_cuts(np.array([], np.int64), np.zeros(0), 0.0) == []
  for bad in ([0, 3], [3, 3], [10]):
    with pytest.raises(ValueError, match=r"cuts must be increasing frame indices in \[1, 9\]"):
      shots_lib.shots_from_cuts(np.array(bad), times, 2.0)


def test_detect_cuts_validates_shapes():
  features = shots_lib.frame_features_rgb(ramp_frames(5))
  with pytest.raises(ValueError, match="4 distances need features and times for 5 frames"):
    shots_lib.detect_cuts(np.zeros(4), features, np.arange(4.0), 1.0)
  with pytest.raises(ValueError, match="strictly increasing"):
    shots_lib.detect_cuts(np.zeros(4), features, np.array([0, 1, 1, 2, 3.0]), 4.0)


@pytest.mark.parametrize("field, value", [("bins", 1), ("min_threshold", 0.0), ("peak_ratio", 0.5),
                                          ("luma_weight", 1.5), ("min_shot_seconds", -1.0)])
def test_config_validation_names_field_and_value(field, value):
  with pytest.raises(ValueError, match=f"ShotConfig.{field} must be .*got {value!r}"):
    shots_lib.ShotConfig(**{field: value})


def test_truncated_video_gives_shots_of_what_decoded(broken_files):
  result = shots_lib.detect_shots_in_video(broken_files["half_mkv"])
  assert result.truncated
  np.testing.assert_array_equal(result.cuts, [30, 76])
  assert result.shots[-1].end == len(result.times)
