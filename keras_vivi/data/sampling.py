"""Frames sampled at a fixed rate within shots, and the one-pass decode that `prepare` runs per video.

Sampling rule (`sample_frames`): the video's clock is divided into a grid of instants
`t_j = t_0 + (j + ½) / rate` (t_0 = first frame's time, j = 0, 1, … while t_j < end_time); each instant
takes the frame on screen at that moment, i.e. the last frame whose time ≤ t_j, and belongs to that
frame's shot. A shot that no instant falls in (possible only if it lasts less than 1/rate) gets its
middle frame `(start + end − 1) // 2`. A frame is never taken twice (when fps < rate).

Why a global grid rather than one restarted at every shot start: the frames it needs are known before
the shots are, so `decode_and_sample` can decode once, keep full-resolution frames only at grid
instants and around candidate cuts, and never hold the whole video. It also keeps a spurious cut from
shifting every later sample. Every shot still gets about `rate · duration` frames, at least one.
"""

import collections
import dataclasses
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from keras_vivi.data import shots as shots_lib
from keras_vivi.data import video as video_lib


@dataclasses.dataclass(frozen=True)
class FrameSample:
  """Which frames to keep: `frame_indices` int64 `[S]` increasing, `shot_ids` int32 `[S]` (index into
  the shot list), `times` float64 `[S]` seconds on the stream's clock."""
  frame_indices: np.ndarray
  shot_ids: np.ndarray
  times: np.ndarray

  def __len__(self) -> int:
    return len(self.frame_indices)


@dataclasses.dataclass(frozen=True)
class VideoSamples:
  """What `decode_and_sample` returns for one video.

  `frames` uint8 RGB `[S, H, W, 3]` (full resolution unless `size` was given; none if they went to
  `on_frame`), with `frame_indices`, `shot_ids` and `times` `[S]` as in `FrameSample`.
  `truncated`/`problem` report a stream that broke off; the shots and frames then cover what decoded.
  `second_pass` is True if some frame had to be decoded again (never expected; kept as a safety net).
  """
  info: video_lib.VideoInfo
  shots: List[shots_lib.Shot]
  frames: np.ndarray
  frame_indices: np.ndarray
  shot_ids: np.ndarray
  times: np.ndarray
  num_decoded: int
  truncated: bool
  problem: Optional[str]
  second_pass: bool = False


def _check_rate(rate: float) -> float:
  if not rate > 0:
    raise ValueError(f"rate must be > 0 frames per second, got {rate!r}")
  return float(rate)


def grid_times(first_time: float, end_time: float, rate: float = 1.0) -> np.ndarray:
  """Sampling instants `first_time + (j + ½)/rate` strictly before `end_time`, float64 `[J]`."""
  rate = _check_rate(rate)
  count = max(0, int(np.ceil((end_time - first_time) * rate - 0.5)))
  grid = first_time + (np.arange(count + 1, dtype=np.float64) + 0.5) / rate
  return grid[grid < end_time]


def grid_frames(times: np.ndarray, end_time: float, rate: float = 1.0) -> np.ndarray:
  """Indices of the frames on screen at the grid instants (deduplicated), int64 increasing."""
  times = np.asarray(times, np.float64)
  if times.size == 0:
    return np.zeros((0,), np.int64)
  grid = grid_times(times[0], end_time, rate)
  return np.unique(np.searchsorted(times, grid, side="right") - 1).astype(np.int64)


def sample_frames(shots: Sequence[shots_lib.Shot], times: np.ndarray, end_time: float,
                  rate: float = 1.0) -> FrameSample:
  """The frames to keep at `rate` per second within `shots` (see the module docstring for the rule).

  Args:
    shots: consecutive shots covering frames `[0, N)`, e.g. from `shots_from_cuts`.
    times: float64 `[N]` increasing frame times in seconds.
    end_time: when the last frame ends (its time + one frame period).
    rate: samples per second.
  """
  times = np.asarray(times, np.float64)
  n = times.size
  if not shots:
    if n:
      raise ValueError(f"no shots given for {n} frames; expected shots covering frames [0, {n})")
    return FrameSample(np.zeros((0,), np.int64), np.zeros((0,), np.int32), np.zeros((0,), np.float64))
  starts = np.array([s.start for s in shots], np.int64)
  ends = np.array([s.end for s in shots], np.int64)
  if starts[0] != 0 or ends[-1] != n or np.any(starts[1:] != ends[:-1]) or np.any(ends <= starts):
    raise ValueError(f"shots must be consecutive non-empty ranges covering [0, {n}), got "
                     f"{list(zip(starts.tolist(), ends.tolist()))}")
  picked = grid_frames(times, end_time, rate)
  shot_of_pick = np.searchsorted(starts, picked, side="right") - 1
  empty = np.setdiff1d(np.arange(len(shots)), shot_of_pick)
  middles = (starts[empty] + ends[empty] - 1) // 2
  indices = np.concatenate([picked, middles])
  shot_ids = np.concatenate([shot_of_pick, empty])
  order = np.argsort(indices, kind="stable")
  indices = indices[order]
  return FrameSample(indices.astype(np.int64), shot_ids[order].astype(np.int32), times[indices])


def _size_for_short_side(info: video_lib.VideoInfo, short_side: int) -> Optional[Tuple[int, int]]:
  """`(height, width)` that shrinks `info`'s frames to `short_side` on the shorter side, both even so
  chroma-subsampled frames stay exact; None (full resolution) if the frames are not larger."""
  scale = short_side / min(info.height, info.width)
  if scale >= 1:
    return None
  return (max(2, round(info.height * scale / 2) * 2), max(2, round(info.width * scale / 2) * 2))


def decode_and_sample(path: Union[str, os.PathLike], *, rate: float = 1.0,
                      shot_config: shots_lib.ShotConfig = shots_lib.ShotConfig(),
                      size: Optional[Tuple[int, int]] = None, short_side: Optional[int] = None,
                      threads: int = 0, on_frame: Optional[Callable[[int, np.ndarray], None]] = None
                      ) -> VideoSamples:
  """Decodes `path` once: detects shots at full frame rate and returns the frames sampled in them.

  Same result as `detect_shots_in_video` followed by `sample_frames` and decoding the chosen frames,
  without a second decode. While decoding it converts to RGB (at `size=(height, width)` if given, or
  shrunk to `short_side` on the shorter side with even sides, otherwise full resolution) only the
  frames that can still be chosen: the grid frames, and the middle
  frames of every stretch shorter than 1/rate between two candidate cuts (distance ≥
  `shot_config.min_threshold`), taken from a buffer of the last 1/rate seconds of decoded frames.

  Memory: the returned frames (with `on_frame`, only the short stretches' middle frames, until the
  shots are known), plus the buffer (decoded YUV frames of the last 1/rate seconds).

  With `on_frame`, every sampled frame goes to `on_frame(index, image)` instead of the result (whose
  `frames` is then empty): the grid frames as soon as they decode (they are always sampled), the others
  once the shots are known, in that order. A consumer starts on them while the rest decodes, and the
  decoder holds no grid frame after handing it over, however long the video; an exception `on_frame`
  raises stops decoding and propagates.

  Raises `VideoDecodeError` if the file cannot be opened; a stream that breaks off gives the shots and
  frames of what decoded, with `truncated` and `problem` set.
  """
  rate = _check_rate(rate)
  if size is not None and short_side is not None:
    raise ValueError(f"give size or short_side, not both (got {size!r} and {short_side!r})")
  if size is not None:
    size = video_lib.check_size(size)
  with video_lib.VideoReader(path, threads=threads) as reader:
    if short_side is not None:
      size = _size_for_short_side(reader.info, short_side)
    keeper = _FrameKeeper(rate, shot_config, size, on_frame)
    for index, time, frame in reader.av_frames():
      keeper.add(index, time, frame)
    end_time = reader.decoded_end_time()
    keeper.finish(end_time)
    times = np.array(keeper.times, np.float64)
    shots, _, _, _ = shots_lib.detect_shots(keeper.collector.features(), times, end_time,
                                            shot_config)
    sample = sample_frames(shots, times, end_time, rate)
  kept = keeper.kept
  handed_over = set(keeper.grid_hits) if on_frame is not None else set()
  returned = sample.frame_indices.tolist()
  missing = [i for i in returned if i not in kept and i not in handed_over]
  if missing:
    kept.update(_decode_again(path, missing, size, threads))
  if on_frame is not None:
    for i in returned:
      if i not in handed_over:
        on_frame(i, kept.pop(i))
    returned = []
  return VideoSamples(info=reader.info, shots=shots, frames=_stack(kept, returned, size, reader.info),
                      frame_indices=sample.frame_indices, shot_ids=sample.shot_ids, times=sample.times,
                      num_decoded=reader.num_decoded, truncated=reader.truncated,
                      problem=reader.problem, second_pass=bool(missing))


class _FrameKeeper:
  """The streaming half of `decode_and_sample`: shot features of every frame, and RGB copies of the
  frames the sampling may still choose (`kept`; grid frames go to `on_frame` instead if given),
  decided as frames arrive.

  A frame is kept when a grid instant falls while it is on screen (`_grid_reached`), or when it is the
  middle of a stretch shorter than 1/rate between two candidate cuts that holds no grid frame
  (`_boundary_reached`); the latter are taken from `_recent`, the decoded frames of the last 1/rate s.
  """

  def __init__(self, rate, shot_config, size, on_frame):
    self._rate, self._period, self._size = rate, 1.0 / rate, size
    self._thumbnail_side = shot_config.thumbnail_side
    self._on_frame = on_frame
    # The streaming candidate test must not miss a cut the final detector accepts, whatever the float
    # rounding of a 2-row versus an N-row distance computation: loosen it slightly (extras are harmless).
    self._floor = shot_config.min_threshold * (1.0 - 1e-4)
    self.collector = shots_lib.FeatureCollector(shot_config)
    self.times: List[float] = []
    self.kept: Dict[int, np.ndarray] = {}
    self._recent: collections.deque = collections.deque()  # (index, time, av frame)
    self._boundaries: List[int] = [0]                      # frame 0 and every candidate cut so far
    self._grid_j = 0                                       # next grid instant
    self.grid_hits: List[int] = []                         # frames a grid instant fell in

  def add(self, index: int, time: float, frame) -> None:
    self.times.append(time)
    if index > 0:
      self._grid_reached(index - 1, time)
    distance = self.collector.add_counts(video_lib.yuv_counts(frame, self._thumbnail_side))
    if distance is not None and distance >= self._floor:
      self._boundary_reached(index, time)
      self._boundaries.append(index)
    self._recent.append((index, time, frame))
    # Wider than `_boundary_reached`'s test, so the frames it may want are still here.
    while self._recent and self._recent[0][1] < time - self._period * (1 + 1e-5):
      self._recent.popleft()

  def finish(self, end_time: float) -> None:
    """Decides on the last frame, once the stream's end is known; releases the buffered frames."""
    if self.times:
      self._grid_reached(len(self.times) - 1, end_time)
      self._boundary_reached(len(self.times), end_time)
    self._recent.clear()

  def _grid_reached(self, index: int, until: float) -> None:
    """Keeps frame `index` (on screen from its time until `until`) if a grid instant falls in it."""
    times, rate = self.times, self._rate
    hit = False
    # Same expression as `grid_times`, so both agree to the last bit.
    while times[0] + (self._grid_j + 0.5) / rate < until:
      hit = hit or times[0] + (self._grid_j + 0.5) / rate >= times[index]
      self._grid_j += 1
    if hit:
      self.grid_hits.append(index)
      image = video_lib.to_rgb(_find(self._recent, index), self._size)
      if self._on_frame is None:
        self.kept[index] = image
      else:
        self._on_frame(index, image)

  def _boundary_reached(self, end: int, end_time: float) -> None:
    """Keeps the middle frame of every short stretch [s, end) between candidates without a grid frame."""
    for s in reversed(self._boundaries):
      if end_time - self.times[s] >= self._period * (1 + 1e-6):  # such a stretch holds a grid instant
        break
      if not (self.grid_hits and self.grid_hits[-1] >= s):
        middle = (s + end - 1) // 2
        frame = _find(self._recent, middle)
        if middle not in self.kept and frame is not None:  # if ever not buffered, a second pass gets it
          self.kept[middle] = video_lib.to_rgb(frame, self._size)


def _stack(kept: Dict[int, np.ndarray], indices: List[int], size, info) -> np.ndarray:
  """Frames `indices`, uint8 `[S, H, W, 3]`, from `kept`."""
  if indices:
    return np.stack([kept[i] for i in indices])
  h, w = size if size is not None else (info.height, info.width)
  return np.zeros((0, h, w, 3), np.uint8)


def _find(recent: collections.deque, index: int):
  for i, _, frame in reversed(recent):
    if i == index:
      return frame
  return None


def _decode_again(path, indices: Sequence[int], size, threads: int) -> Dict[int, np.ndarray]:
  """RGB frames `indices` of `path` from a second decode (the safety net; never expected)."""
  wanted = set(indices)
  out: Dict[int, np.ndarray] = {}
  with video_lib.VideoReader(path, threads=threads) as reader:
    for index, _, frame in reader.av_frames():
      if index in wanted:
        out[index] = video_lib.to_rgb(frame, size)
        if len(out) == len(wanted):
          break
  lost = sorted(wanted - set(out))
  if lost:
    raise video_lib.VideoDecodeError(path, f"frames {lost} decoded once but not on a second pass")
  return out
