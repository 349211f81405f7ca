"""Video decoding with PyAV: RGB frames with stream timestamps, metadata, and errors that say why.

`VideoReader` decodes the first video stream of a file once, front to back. Opening problems (missing,
empty, not a video, no video stream, an mp4 cut before its index) raise `VideoDecodeError`. A stream
that is incomplete (cut short, or with packets that fail to decode, which are skipped) yields every
frame that decoded and then sets `reader.truncated` and `reader.problem`, so a long job can keep the
frames and list the file.
"""

import dataclasses
import fractions
import math
import os
import stat
from typing import Iterator, Optional, Tuple, Union

import av
import numpy as np

PathLike = Union[str, os.PathLike]

# Videos whose shorter side has fewer pixels (1×1 placeholders) are skipped by `prepare`.
MIN_VIDEO_SIDE = 16

# 8-bit planar YUV layouts whose planes can be subsampled in place (no swscale call).
_PLANAR_YUV8 = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                          "yuv440p", "yuvj440p", "yuv411p", "yuv410p"})
_AVCOL_RANGE_JPEG = 2
# A stream that stops this much before the duration its container announces counts as truncated.
_TRUNCATION_TOLERANCE_SECONDS = 0.5


class VideoDecodeError(Exception):
  """A file that cannot be decoded as a video; `path` and `reason` say which and why."""

  def __init__(self, path: PathLike, reason: str):
    self.path = os.fspath(path)
    self.reason = reason
    super().__init__(f"cannot decode video {self.path!r}: {reason}")

  def __reduce__(self):  # pickled by the decoder process (`decoder_process`)
    return type(self), (self.path, self.reason)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """What the container says about the first video stream.

  `num_frames` comes from the container's index when it has one (`num_frames_exact`), otherwise it is
  `duration · fps` rounded. `duration` is in seconds (0.0 when the container does not say).
  """
  path: str
  width: int
  height: int
  fps: float
  num_frames: int
  num_frames_exact: bool
  duration: float
  codec: str
  pixel_format: str


@dataclasses.dataclass(frozen=True)
class Frame:
  """One decoded frame: `image` uint8 RGB `[H, W, 3]`, `time` in seconds on the stream's clock."""
  index: int
  time: float
  image: np.ndarray


@dataclasses.dataclass(frozen=True)
class DecodedVideo:
  """Every frame of a video: `images` uint8 `[N, H, W, 3]`, `times` float64 `[N]` seconds."""
  info: VideoInfo
  images: np.ndarray
  times: np.ndarray
  end_time: float
  truncated: bool
  problem: Optional[str]


def _stream_info(path: str, container, stream) -> VideoInfo:
  rate = stream.average_rate or stream.guessed_rate or stream.base_rate
  fps = float(rate) if rate else 0.0
  if stream.duration is not None and stream.time_base is not None:
    duration = float(stream.duration * stream.time_base)
  elif container.duration is not None and len(container.streams) == 1:
    # The container's duration covers every stream; trust it only when video is all there is.
    duration = container.duration / av.time_base
  else:
    duration = 0.0
  exact = bool(stream.frames)
  num_frames = int(stream.frames) if exact else int(round(duration * fps))
  ctx = stream.codec_context
  return VideoInfo(path=path, width=int(ctx.width), height=int(ctx.height), fps=fps,
                   num_frames=num_frames, num_frames_exact=exact, duration=duration,
                   codec=ctx.name, pixel_format=str(ctx.format.name if ctx.format else ""))


def _open(path: PathLike):
  """Opens `path` and returns (container, first video stream); raises `VideoDecodeError`."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise VideoDecodeError(path, "no such file")
  if os.path.isdir(path):
    raise VideoDecodeError(path, "is a directory, expected a video file")
  # Only a regular file can be told empty up front; a pipe or device streams its video.
  if stat.S_ISREG(os.stat(path).st_mode) and os.path.getsize(path) == 0:
    raise VideoDecodeError(path, "file is empty (0 bytes)")
  try:
    container = av.open(path, mode="r")
  except (av.FFmpegError, OSError) as e:
    reason = _describe(e)
    if isinstance(e, av.InvalidDataError):
      reason += " (not a video container, or a file cut before its index, e.g. an mp4 without 'moov')"
    raise VideoDecodeError(path, reason) from e
  if not container.streams.video:
    kinds = sorted({s.type for s in container.streams}) or ["none"]
    container.close()
    raise VideoDecodeError(path, f"no video stream (streams found: {', '.join(kinds)})")
  return container, container.streams.video[0]


def probe_video(path: PathLike) -> VideoInfo:
  """Metadata of the first video stream of `path`, without decoding; raises `VideoDecodeError`."""
  container, stream = _open(path)
  try:
    return _stream_info(os.fspath(path), container, stream)
  finally:
    container.close()


def to_rgb(frame: av.VideoFrame, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
  """uint8 RGB `[H, W, 3]` of a PyAV frame, resized by swscale to `size=(height, width)` if given."""
  if size is None:
    return frame.to_ndarray(format="rgb24")
  height, width = check_size(size)
  return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")


def check_size(size) -> Tuple[int, int]:
  """`size` as `(height, width)` ints; raises ValueError naming the bad value."""
  if len(size) != 2 or any(int(s) != s or s <= 0 for s in size):
    raise ValueError(f"size must be (height, width) with positive integers, got {size!r}")
  return int(size[0]), int(size[1])


def yuv_thumbnail(frame: av.VideoFrame, min_side: int = 64) -> Tuple[np.ndarray, ...]:
  """Full-range Y, U, V planes of `frame` subsampled so the shorter side keeps ≥ `min_side` pixels.

  For 8-bit planar YUV (what nearly every camera and codec produces) the decoder's planes are strided
  in place, about 3× cheaper than an swscale resize of a 720p frame; other formats go through swscale.
  Limited-range ("TV") values are stretched to [0, 255] so thresholds mean the same for every video.
  Returns uint8 arrays `[h, w]` (U and V may be smaller than Y with chroma subsampling).
  """
  planes, full_range = _thumbnail_planes(frame, min_side)
  if full_range:
    return tuple(np.ascontiguousarray(p) for p in planes)
  return tuple(table[p] for table, p in zip(_LIMITED_TO_FULL, planes))


def yuv_counts(frame: av.VideoFrame, min_side: int = 64) -> np.ndarray:
  """float64 `[3, 256]`: row c counts the pixels of `yuv_thumbnail(frame, min_side)[c]` of each value.

  Shot detection needs nothing else; counting the raw planes and stretching the 256 counts, rather than
  every pixel, gives the same integers for less work.
  """
  planes, full_range = _thumbnail_planes(frame, min_side)
  counts = value_counts(planes)
  if full_range:
    return counts
  return np.stack([np.bincount(table, weights=c, minlength=256)
                   for table, c in zip(_LIMITED_TO_FULL, counts)])


def value_counts(planes) -> np.ndarray:
  """float64 `[len(planes), 256]`: how many pixels of each uint8 plane take each value."""
  return np.stack([np.bincount(p.reshape(-1), minlength=256) for p in planes]).astype(np.float64)


def _thumbnail_planes(frame: av.VideoFrame, min_side: int):
  """`yuv_thumbnail`'s planes before the range stretch, and whether they are full range already."""
  step = max(1, min(frame.width, frame.height) // min_side)
  name = frame.format.name
  if name not in _PLANAR_YUV8:
    h, w = max(1, frame.height // step), max(1, frame.width // step)
    # swscale writes limited range for yuv444p.
    return tuple(frame.to_ndarray(format="yuv444p", width=w, height=h, interpolation="AREA")), False
  planes = []
  for plane in frame.planes[:3]:
    data = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]
    sy = max(1, round(step * plane.height / frame.height))
    sx = max(1, round(step * plane.width / frame.width))
    planes.append(data[::sy, ::sx])
  return tuple(planes), name.startswith("yuvj") or frame.color_range == _AVCOL_RANGE_JPEG


def _stretch_table(low: float, span: float) -> np.ndarray:
  return np.clip((np.arange(256) - low) * (255.0 / span) + 0.5, 0, 255).astype(np.uint8)


_LIMITED_TO_FULL_LUMA = _stretch_table(16.0, 219.0)
_LIMITED_TO_FULL_CHROMA = _stretch_table(16.0, 224.0)
_LIMITED_TO_FULL = (_LIMITED_TO_FULL_LUMA, _LIMITED_TO_FULL_CHROMA, _LIMITED_TO_FULL_CHROMA)


class VideoReader:
  """Decodes the first video stream of a file front to back, once.

  Usage:
    with VideoReader(path) as reader:
      for frame in reader.frames(size=(72, 128)):
        ...
      if reader.truncated:
        log(reader.problem)

  Timestamps are `pts × time_base` in seconds on the stream's clock (the first frame need not be at
  0). A frame without a timestamp, or one not after its predecessor (broken muxing), gets the previous
  time plus one frame period so times always increase. `threads=0` lets FFmpeg pick the thread count;
  frame and slice threading are enabled where the codec supports them.
  """

  def __init__(self, path: PathLike, *, threads: int = 0):
    if int(threads) != threads or threads < 0:
      raise ValueError(f"threads must be an integer ≥ 0 (0 = automatic), got {threads!r}")
    self.path = os.fspath(path)
    self._container, self._stream = _open(self.path)
    self.info = _stream_info(self.path, self._container, self._stream)
    self._stream.thread_type = "AUTO"
    self._stream.codec_context.thread_count = int(threads)
    self.frame_period = frame_period(self.info.fps)
    self.num_decoded = 0
    self.truncated = False
    self.problem: Optional[str] = None
    self.first_time: Optional[float] = None
    self.end_time: Optional[float] = None  # last frame's time + its duration, once decoding ended
    self._started = False

  def close(self) -> None:
    self._container.close()

  def decoded_end_time(self) -> float:
    """`end_time` once decoding has ended (a RuntimeError before)."""
    if self.end_time is None:
      raise RuntimeError(f"{self.path!r}: end_time is known once decoding has ended")
    return self.end_time

  def __enter__(self) -> "VideoReader":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def av_frames(self) -> Iterator[Tuple[int, float, av.VideoFrame]]:
    """Yields `(index, time_seconds, av.VideoFrame)`; the frames stay valid after the next one."""
    if self._started:
      raise RuntimeError(f"{self.path!r} is already being decoded; a VideoReader decodes once, "
                         "open a new one to decode again")
    self._started = True
    index, last_time, last_duration = 0, None, self.frame_period
    for frame in self._decode():
      time = frame.time
      if time is None or (last_time is not None and time <= last_time):
        time = (last_time + self.frame_period) if last_time is not None else 0.0
      if frame.duration and frame.time_base is not None:
        last_duration = float(frame.duration * frame.time_base)
      if last_time is None:
        self.first_time = time
      last_time = time
      yield index, time, frame
      index += 1
    self.num_decoded = index
    self.end_time = (last_time + last_duration) if last_time is not None else 0.0
    self._check_complete()

  def frames(self, size: Optional[Tuple[int, int]] = None) -> Iterator[Frame]:
    """Yields `Frame`s with RGB images, resized on decode to `size=(height, width)` if given."""
    if size is not None:
      size = check_size(size)
    for index, time, frame in self.av_frames():
      yield Frame(index, time, to_rgb(frame, size))

  def _decode(self) -> Iterator[av.VideoFrame]:
    # Packet by packet rather than container.decode(): a packet that fails to decode is skipped (the
    # decoder resumes at the next keyframe) instead of ending the video; a demuxing error ends it,
    # keeping what decoded so far.
    failed, first_error = 0, None
    packets = self._container.demux(self._stream)
    while True:
      try:
        packet = next(packets)
      except StopIteration:
        break
      except (av.FFmpegError, OSError, EOFError) as e:
        self._fail(f"reading stopped after an error: {_describe(e)}")
        break
      try:
        frames = packet.decode()
      except (av.FFmpegError, OSError, EOFError) as e:
        failed += 1
        first_error = first_error or _describe(e)
        continue
      yield from frames
    if failed:
      self._fail(f"{failed} packet(s) failed to decode (first: {first_error})")

  def _fail(self, problem: str) -> None:
    self.truncated = True
    self.problem = f"{self.problem}; {problem}" if self.problem else problem

  def _check_complete(self) -> None:
    info = self.info
    # Tolerances keep edit lists that drop a few leading frames from counting as truncation.
    missing_frames = info.num_frames - self.num_decoded
    if info.num_frames_exact and missing_frames > _TRUNCATION_TOLERANCE_SECONDS / self.frame_period:
      self._fail(f"decoded {self.num_decoded} of the {info.num_frames} frames the container lists")
    elif self.num_decoded == 0 or self.first_time is None or self.end_time is None:
      self._fail("no frame decoded")  # the first frame sets first_time, the end end_time
    elif (info.duration > 0
          and self.end_time - self.first_time < info.duration - _TRUNCATION_TOLERANCE_SECONDS):
      self._fail(f"decoded {self.end_time - self.first_time:.2f} s of the {info.duration:.2f} s "
                 "the container announces")


def _describe(error: Exception) -> str:
  return getattr(error, "strerror", None) or str(error) or type(error).__name__


def iter_frames(path: PathLike, size: Optional[Tuple[int, int]] = None, *,
                threads: int = 0) -> Iterator[Frame]:
  """Yields the `Frame`s of `path` (see `VideoReader`); use `VideoReader` to learn of truncation."""
  with VideoReader(path, threads=threads) as reader:
    yield from reader.frames(size)


def read_video(path: PathLike, size: Optional[Tuple[int, int]] = None, *,
               threads: int = 0) -> DecodedVideo:
  """Decodes every frame of `path` into memory (small videos, tests; use `VideoReader` otherwise)."""
  with VideoReader(path, threads=threads) as reader:
    frames = list(reader.frames(size))
  if frames:
    images = np.stack([f.image for f in frames])
  else:
    h, w = size if size is not None else (reader.info.height, reader.info.width)
    images = np.zeros((0, h, w, 3), np.uint8)
  times = np.array([f.time for f in frames], np.float64)
  return DecodedVideo(info=reader.info, images=images, times=times, end_time=float(reader.decoded_end_time()),
                      truncated=reader.truncated, problem=reader.problem)


def frame_period(fps: Union[float, fractions.Fraction]) -> float:
  """Seconds per frame, 1/25 when the rate is unknown."""
  fps = float(fps)
  return 1.0 / fps if fps > 0 and math.isfinite(fps) else 1.0 / 25.0
