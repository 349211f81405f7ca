"""Tests for keras_vivi.data.sampling: the sampling rule against a loop reference, and the one-pass decode."""

import weakref

import numpy as np
import pytest

from keras_vivi.data import sampling
from keras_vivi.data import shots as shots_lib
from keras_vivi.data import video
from tests.helpers.videos import BIKES_CUTS, SHORT_SHOTS


def _reference(shots, times, end_time, rate):
  """The documented rule, one grid instant and one shot at a time."""
  picks = {}
  j = 0
  while times[0] + (j + 0.5) / rate < end_time:
    t = times[0] + (j + 0.5) / rate
    frame = max(i for i in range(len(times)) if times[i] <= t)
    shot = next(k for k, s in enumerate(shots) if s.start <= frame < s.end)
    picks[frame] = shot
    j += 1
  for k, s in enumerate(shots):
    if k not in picks.values():
      picks[(s.start + s.end - 1) // 2] = k
  frames = sorted(picks)
  return frames, [picks[f] for f in frames]


def _frames_at(path, indices, size=None):
  wanted = set(int(i) for i in indices)
  return np.stack([f.image for f in video.iter_frames(path, size) if f.index in wanted])


def test_rule_on_a_hand_made_example():
  times = np.arange(100) / 25.0  # 4 s at 25 fps
  shots = shots_lib.shots_from_cuts(np.array([10, 60, 70]), times, 4.0)
  sample = sampling.sample_frames(shots, times, 4.0, rate=1.0)
  # Grid instants 0.5, 1.5, 2.5, 3.5 s show frames 12, 37, 62, 87; shot 0 (0.4 s) gets its middle, 4.
  np.testing.assert_array_equal(sample.frame_indices, [4, 12, 37, 62, 87])
  np.testing.assert_array_equal(sample.shot_ids, [0, 1, 1, 2, 3])
  np.testing.assert_allclose(sample.times, times[[4, 12, 37, 62, 87]])


@pytest.mark.parametrize("rate", [1.0, 2.0, 0.4, 30.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rule_matches_loop_reference(rate, seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(20, 200))
  times = 3.0 + np.cumsum(rng.uniform(0.02, 0.06, n))  # jittered variable frame rate, not starting at 0
  end_time = times[-1] + 0.04
  cuts = np.unique(rng.integers(1, n, int(rng.integers(0, 12))))
  shots = shots_lib.shots_from_cuts(cuts, times, end_time)
  sample = sampling.sample_frames(shots, times, end_time, rate)
  frames, shot_ids = _reference(shots, times, end_time, rate)
  np.testing.assert_array_equal(sample.frame_indices, frames)
  np.testing.assert_array_equal(sample.shot_ids, shot_ids)
  assert set(sample.shot_ids.tolist()) == set(range(len(shots)))  # every shot gets a frame


def test_rate_above_frame_rate_takes_each_frame_once():
  times = np.arange(10) / 5.0
  shots = shots_lib.shots_from_cuts(np.array([4]), times, 2.0)
  sample = sampling.sample_frames(shots, times, 2.0, rate=12.0)
  np.testing.assert_array_equal(sample.frame_indices, np.arange(10))


def test_sample_frames_validation():
  times = np.arange(10) / 5.0
  shots = shots_lib.shots_from_cuts(np.array([4]), times, 2.0)
  with pytest.raises(ValueError, match="rate must be > 0 frames per second, got 0"):
    sampling.sample_frames(shots, times, 2.0, rate=0)
  with pytest.raises(ValueError, match=r"shots must be consecutive non-empty ranges covering \[0, 10\)"):
    sampling.sample_frames(shots[:1], times, 2.0)
  with pytest.raises(ValueError, match="no shots given for 10 frames"):
    sampling.sample_frames([], times, 2.0)
  assert len(sampling.sample_frames([], np.zeros(0), 0.0)) == 0


def test_decode_and_sample_bikes(sample_paths, detections):
  path = sample_paths["bikes.mp4"]
  result = sampling.decode_and_sample(path)
  assert result.shots == detections["bikes.mp4"].shots
  assert [s.start for s in result.shots[1:]] == list(BIKES_CUTS)
  # 10 s at 1 Hz: instants 0.5 … 9.5 s, plus the middle of the last shot (0.32 s, between instants).
  np.testing.assert_array_equal(result.frame_indices, [12, 37, 62, 87, 112, 137, 162, 187, 212, 237, 245])
  np.testing.assert_array_equal(result.shot_ids, [0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 5])
  np.testing.assert_allclose(result.times, result.frame_indices / 25.0)
  assert result.frames.shape == (11, 272, 640, 3) and result.frames.dtype == np.uint8
  np.testing.assert_array_equal(result.frames, _frames_at(path, result.frame_indices))
  assert not result.second_pass and not result.truncated and result.num_decoded == 250


@pytest.mark.parametrize("rate", [1.0, 3.0])
def test_one_pass_equals_detect_then_sample(short_shot_video, rate):
  detection = shots_lib.detect_shots_in_video(short_shot_video)
  np.testing.assert_array_equal(detection.cuts, np.cumsum(SHORT_SHOTS)[:-1])
  expected = sampling.sample_frames(detection.shots, detection.times, detection.end_time, rate)
  result = sampling.decode_and_sample(short_shot_video, rate=rate, size=(32, 48))
  assert result.shots == detection.shots
  np.testing.assert_array_equal(result.frame_indices, expected.frame_indices)
  np.testing.assert_array_equal(result.shot_ids, expected.shot_ids)
  np.testing.assert_array_equal(result.frames, _frames_at(short_shot_video, expected.frame_indices, (32, 48)))
  # The short shots' middle frames came from the decode buffer, not from decoding again.
  assert not result.second_pass


def test_on_frame_gets_every_sampled_frame_once_and_nothing_keeps_them(short_shot_video):
  expected = sampling.decode_and_sample(short_shot_video, size=(32, 48))
  got, handed, held = [], [], []

  def on_frame(index, image):
    # How many frames handed over before are still referenced by someone (the test keeps copies).
    held.append(sum(ref() is not None for ref in handed))
    got.append((index, image.copy()))
    handed.append(weakref.ref(image))

  result = sampling.decode_and_sample(short_shot_video, size=(32, 48), on_frame=on_frame)
  n = sum(SHORT_SHOTS)
  grid = sampling.grid_frames(np.arange(n) / 25.0, n / 25.0).tolist()
  others = sorted(set(expected.frame_indices.tolist()) - set(grid))
  assert others  # the short shots' middle frames come after the shots are known
  assert [i for i, _ in got] == grid + others
  by_index = dict(got)
  np.testing.assert_array_equal(np.stack([by_index[i] for i in expected.frame_indices.tolist()]),
                                expected.frames)
  assert result.frames.shape == (0, 32, 48, 3)
  np.testing.assert_array_equal(result.frame_indices, expected.frame_indices)
  assert result.shots == expected.shots
  # Once handed over, a frame is the consumer's alone: while decoding went on, no earlier one was held.
  assert held == [0] * len(got)


def test_missing_frames_fall_back_to_a_second_decode(short_shot_video, monkeypatch):
  expected = sampling.decode_and_sample(short_shot_video)
  # Hide every candidate cut from the streaming pass: the short shots' middle frames are then not kept
  # while decoding, and must be fetched by decoding again.
  add = shots_lib.FeatureCollector.add_counts
  monkeypatch.setattr(shots_lib.FeatureCollector, "add_counts", lambda self, counts: add(self, counts) and 0.0)
  result = sampling.decode_and_sample(short_shot_video)
  assert result.second_pass
  np.testing.assert_array_equal(result.frame_indices, expected.frame_indices)
  np.testing.assert_array_equal(result.frames, expected.frames)


def test_decode_and_sample_truncated_and_broken(broken_files):
  result = sampling.decode_and_sample(broken_files["half_faststart_mp4"])
  assert result.truncated and "250 frames" in result.problem
  assert [s.start for s in result.shots] == [0, 30, 76]
  assert len(result.frames) == len(result.frame_indices) > 0
  assert result.shots[-1].end == result.num_decoded
  corrupt = sampling.decode_and_sample(broken_files["corrupt_middle_mp4"])
  assert corrupt.truncated and "failed to decode" in corrupt.problem
  assert len(corrupt.shots) >= 5 and len(corrupt.frames) >= 10
  for name in ("empty", "text", "half_mp4", "audio_only"):
    with pytest.raises(video.VideoDecodeError):
      sampling.decode_and_sample(broken_files[name])


def test_short_side_shrinks_to_even_sides_and_never_enlarges(short_shot_video, sample_paths):
  # 64×96 at a shorter side of 32 → 32×48; bigbuckbunny.mp4 (1280×720) at 256 → 256×455.1 → 256×456;
  # bikes.mp4 (640×272) at 255 → 255×600 → 256×600 (255 = 2 × 127.5, and round(127.5) == 128).
  by_size = sampling.decode_and_sample(short_shot_video, size=(32, 48))
  np.testing.assert_array_equal(sampling.decode_and_sample(short_shot_video, short_side=32).frames,
                                by_size.frames)
  assert sampling.decode_and_sample(sample_paths["bigbuckbunny.mp4"], short_side=256).frames.shape[1:] == (
      256, 456, 3)
  assert sampling.decode_and_sample(sample_paths["bikes.mp4"], short_side=255).frames.shape[1:] == (
      256, 600, 3)
  assert sampling.decode_and_sample(short_shot_video, short_side=200).frames.shape[1:] == (64, 96, 3)
  with pytest.raises(ValueError, match="size or short_side, not both"):
    sampling.decode_and_sample(short_shot_video, size=(32, 48), short_side=32)
