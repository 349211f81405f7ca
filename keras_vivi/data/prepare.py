"""From a folder of videos to sharded TFRecords: shots, 1 Hz frames, detections (paper §4.1).

`prepare_video` turns one video into one serialized record; `prepare` runs it over many videos
with resumable shards, and the Beam pipeline (`keras_vivi.data.beam_pipeline`) runs the same
function at scale.
"""

import dataclasses
import glob
import json
import math
import multiprocessing
import os
from typing import Optional

import numpy as np
import tensorflow as tf
import tqdm

from keras_vivi.data import manifest as manifest_lib
from keras_vivi.data import records
from keras_vivi.data import sampling
from keras_vivi.data import schema
from keras_vivi.data import shots as shots_lib
from keras_vivi.data import video as video_lib
from keras_vivi.detector import load_detector

PLAN_FILE = "plan.json"


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
  """How videos become records."""
  fps: float = 1.0                     # frames sampled per second inside each shot
  frame_short_side: Optional[int] = 256  # stored frames are resized to this shorter side
  jpeg_quality: int = 90
  detector: Optional[str] = None       # `load_detector` spec; None is MediaPipe OIDv4
  score_threshold: float = 0.05        # the paper drops detections below 0.05 ...
  max_objects: int = 5                 # ... and keeps at most 5 per frame
  detector_batch: int = 16             # frames per detector call
  videos_per_shard: int = 16
  workers: int = 1                     # processes decoding and detecting in parallel
  shot: shots_lib.ShotConfig = shots_lib.ShotConfig()

  def __post_init__(self):
    for name in ("videos_per_shard", "workers", "detector_batch", "max_objects"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}.")
    if not self.fps > 0:
      raise ValueError(f"fps must be > 0, got {self.fps!r}.")
    if self.frame_short_side is not None and self.frame_short_side < 16:
      raise ValueError(f"frame_short_side must be >= 16 or None, got {self.frame_short_side!r}.")


class SkippedVideo(Exception):
  """A video that yields no training data; the message says why."""


def find_videos(pattern):
  """Sorted files under a directory (recursively) or matching a glob; hidden files are left out."""
  if os.path.isdir(pattern):
    paths = [os.path.join(root, name) for root, _, names in os.walk(pattern) for name in names]
  else:
    paths = glob.glob(pattern, recursive=True)
  paths = sorted(p for p in paths if os.path.isfile(p) and not os.path.basename(p).startswith("."))
  if not paths:
    raise FileNotFoundError(f"No files found at {pattern!r}: expected a directory of videos or a "
                            "glob such as 'videos/**/*.mp4'.")
  return paths


def video_ids(paths):
  """Ids unique within a dataset: each path relative to the common directory of all paths."""
  absolute = [os.path.abspath(p) for p in paths]
  root = os.path.commonpath([os.path.dirname(p) for p in absolute])
  return [os.path.relpath(p, root) for p in absolute]


def _decode_size(path, short_side):
  if short_side is None:
    return None
  info = video_lib.probe_video(path)
  scale = short_side / min(info.height, info.width)
  if scale >= 1:
    return None
  # Even sizes keep chroma-subsampled frames exact.
  return (max(2, round(info.height * scale / 2) * 2), max(2, round(info.width * scale / 2) * 2))


def detect_in_batches(detector, frames, batch_size):
  """Runs `detector` on uint8 frames `[S, H, W, 3]` in chunks; returns the concatenated dict."""
  chunks = [detector(frames[i:i + batch_size].astype(np.float32) / 255.0)
            for i in range(0, len(frames), batch_size)]
  return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def prepare_video(path, video_id, detector, config):
  """One video → `(serialized SequenceExample, stats)`.

  Raises:
    SkippedVideo or video_lib.VideoDecodeError when the file yields no frame.
  """
  samples = sampling.decode_and_sample(path, rate=config.fps, shot_config=config.shot,
                                       size=_decode_size(path, config.frame_short_side))
  if len(samples.frames) == 0:
    raise SkippedVideo(samples.problem or "no frame could be decoded")
  detections = detect_in_batches(detector, samples.frames, config.detector_batch)
  counts = detections["num_detections"]
  example = records.video_example(
      video_id=video_id, source=os.fspath(path), duration=samples.info.duration,
      fps=samples.info.fps, truncated=samples.truncated,
      shot_starts=[s.start_time for s in samples.shots],
      shot_ends=[s.end_time for s in samples.shots],
      jpegs=[records.encode_jpeg(f, config.jpeg_quality) for f in samples.frames],
      shot_index=samples.shot_ids, timestamps=samples.times, frame_index=samples.frame_indices,
      detections=detections, num_detections=counts)
  valid = np.arange(detections["detection_scores"].shape[1])[None, :] < counts[:, None]
  stats = manifest_lib.video_stats(
      video_id=video_id, source=os.fspath(path), num_shots=len(samples.shots),
      num_frames=len(samples.frames), class_names=detections["detection_class_entities"][valid],
      scores=detections["detection_scores"][valid], truncated=samples.truncated,
      problem=samples.problem)
  # Deterministic: map order would otherwise differ between processes, and so would the shards.
  return example.SerializeToString(deterministic=True), stats


def _prepare_or_report(item, detector, config):
  """`prepare_video` that never raises, so one bad file cannot stop the job."""
  path, video_id = item
  try:
    return prepare_video(path, video_id, detector, config)
  except Exception as e:  # noqa: BLE001 — reported per video in the manifest
    return None, {"video_id": video_id, "source": os.fspath(path),
                  "reason": f"{type(e).__name__}: {e}"}


def build_detector(config):
  return load_detector(config.detector, score_threshold=config.score_threshold,
                       max_detections=config.max_objects)


_WORKER = {}  # the detector of a pool worker process


def _init_worker(config):
  _WORKER.update(config=config, detector=build_detector(config))


def _worker_process(item):
  return _prepare_or_report(item, _WORKER["detector"], _WORKER["config"])


def _atomic_write_text(path, text):
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(text)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def _load_or_write_plan(output_dir, paths, ids, config):
  # Settings that change what is written; the number of workers does not.
  settings = dataclasses.replace(config, workers=1, detector_batch=1)
  plan = {"videos": [{"source": os.path.abspath(p), "id": i} for p, i in zip(paths, ids)],
          "videos_per_shard": config.videos_per_shard,
          "config": json.loads(json.dumps(dataclasses.asdict(settings)))}
  path = os.path.join(output_dir, PLAN_FILE)
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      old = json.load(f)
    if old != plan:
      raise ValueError(f"{output_dir!r} holds a preparation of other videos or settings "
                       f"(see {path}); resume with the same --videos and options, or choose a new "
                       "--output.")
  else:
    _atomic_write_text(path, json.dumps(plan, indent=1))
  return plan


def shard_path(output_dir, index, count):
  return os.path.join(output_dir, schema.SHARD_PATTERN.format(index=index, count=count))


def prepare(videos, output_dir, config=PrepareConfig(), progress=True):
  """Prepares every video of `videos` (a directory, a glob or a list of paths) into `output_dir`.

  Videos go to shards in sorted order, `videos_per_shard` each. A shard is written under a
  temporary name and renamed when complete, next to a `.stats.json` of its videos, so a killed
  run restarted with the same arguments redoes only incomplete shards and ends with the same
  records. Files that cannot be used are skipped and listed in the manifest with their reason.

  Returns:
    The manifest dict (also written to `output_dir/manifest.json`, with plots beside it).
  """
  paths = find_videos(videos) if isinstance(videos, (str, os.PathLike)) else sorted(
      os.fspath(p) for p in videos)
  ids = video_ids(paths)
  tf.io.gfile.makedirs(output_dir)
  _load_or_write_plan(output_dir, paths, ids, config)
  for stale in tf.io.gfile.glob(os.path.join(output_dir, "*.tmp")):
    tf.io.gfile.remove(stale)  # left by a killed run

  per_shard = config.videos_per_shard
  count = math.ceil(len(paths) / per_shard)
  shards = [list(zip(paths[i * per_shard:(i + 1) * per_shard], ids[i * per_shard:(i + 1) * per_shard]))
            for i in range(count)]
  done = [tf.io.gfile.exists(shard_path(output_dir, i, count)) and
          tf.io.gfile.exists(shard_path(output_dir, i, count) + ".stats.json")
          for i in range(count)]
  todo = [item for i, shard in enumerate(shards) if not done[i] for item in shard]

  bar = tqdm.tqdm(total=len(paths), initial=len(paths) - len(todo), unit="video",
                  desc="prepare", disable=not progress)
  detector = build_detector(config)
  results = _run_items(todo, detector, config)
  skipped = 0
  for i, shard in enumerate(shards):
    if done[i]:
      continue
    final = shard_path(output_dir, i, count)
    stats = []
    with tf.io.TFRecordWriter(final + ".tmp") as writer:
      for _ in shard:
        serialized, item_stats = next(results)
        if serialized is not None:
          writer.write(serialized)
        else:
          skipped += 1
        stats.append(item_stats)
        bar.update()
        bar.set_postfix(skipped=skipped)
    # Stats first, shard last: a shard under its final name always has its stats.
    _atomic_write_text(final + ".stats.json", json.dumps(stats))
    tf.io.gfile.rename(final + ".tmp", final, overwrite=True)
  bar.close()
  return write_manifest(output_dir, count, detector, config)


def _run_items(items, detector, config):
  """Yields `(serialized or None, stats)` for `items` in order, on `config.workers` processes."""
  if config.workers == 1 or len(items) <= 1:
    yield from (_prepare_or_report(item, detector, config) for item in items)
    return
  # Spawned, not forked: TensorFlow's runtime does not survive a fork.
  with multiprocessing.get_context("spawn").Pool(
      config.workers, initializer=_init_worker, initargs=(config,)) as pool:
    yield from pool.imap(_worker_process, items)


def write_manifest(output_dir, count, detector, config):
  """Collects the shards' stats into `manifest.json` and its plots."""
  stats = []
  for i in range(count):
    with tf.io.gfile.GFile(shard_path(output_dir, i, count) + ".stats.json") as f:
      stats.extend(json.load(f))
  return finish(output_dir, stats, [shard_path(output_dir, i, count) for i in range(count)],
                detector, config)


def finish(output_dir, stats, shard_paths, detector, config):
  """Writes `manifest.json`, its plots and the contact sheet; returns the manifest."""
  manifest = manifest_lib.build_manifest(
      stats, shards=sorted(os.path.basename(p) for p in shard_paths),
      detector=detector.describe(), label_map=detector.label_map,
      config=json.loads(json.dumps(dataclasses.asdict(config))))
  _atomic_write_text(os.path.join(output_dir, manifest_lib.MANIFEST_FILE),
                     json.dumps(manifest, indent=1))
  manifest_lib.plot_manifest(manifest, output_dir)
  manifest_lib.contact_sheet(shard_paths, os.path.join(output_dir, manifest_lib.CONTACT_SHEET))
  return manifest
