"""From a folder of videos to sharded TFRecords: shots, 1 Hz frames, detections (paper §4.1).

`prepare_video` turns one video into one serialized record; `prepare` runs it over many videos
with resumable shards, and the Beam pipeline (`keras_vivi.data.beam_pipeline`) runs the same
function at scale.
"""

import collections
import concurrent.futures
import contextvars
import dataclasses
import json
import math
import multiprocessing
import multiprocessing.util
import os
import posixpath
import threading
from typing import Optional

import numpy as np
import tensorflow as tf
import tqdm

from keras_vivi import files
from keras_vivi.data import decoder_process
from keras_vivi.data import manifest as manifest_lib
from keras_vivi.data import records
from keras_vivi.data import schema
from keras_vivi.data import shots as shots_lib
from keras_vivi.data import video as video_lib
from keras_vivi.detector import load_detector
from keras_vivi.detector import mediapipe_assets
from keras_vivi.detector.loader import MEDIAPIPE_OIDV4, mediapipe_oidv4_detector

PLAN_FILE = "plan.json"
BEAM_PLAN_FILE = "beam_plan.json"  # the Beam pipeline's plan (`beam_pipeline`)
MAX_FPS = 240.0  # no video has more frames per second to sample
# A remote video is decoded from a local copy of at most this size (more is skipped and listed).
MAX_COPY_BYTES = 64 << 30


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
  min_video_side: int = video_lib.MIN_VIDEO_SIDE
  # How the job runs, not what it writes (left out of the plan):
  threads: Optional[int] = None        # detector (TFLite, TF) threads per worker; None: cores / workers
  time_limit: Optional[float] = 1800.0  # seconds of decoding one video may take, then it is skipped
  detector_package: Optional[str] = None  # staged `npm pack` tarball of the default detector (gs://…)
  max_skipped_share: float = 1.0       # a run skipping a larger share of its videos (or all) fails

  def __post_init__(self):
    for name in ("videos_per_shard", "workers", "detector_batch", "max_objects", "min_video_side"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}.")
    if not 0 < self.fps <= MAX_FPS:
      raise ValueError(f"fps must be > 0 and at most {MAX_FPS} (frames sampled per second), got "
                       f"{self.fps!r}.")
    if self.frame_short_side is not None and self.frame_short_side < 16:
      raise ValueError(f"frame_short_side must be >= 16 or None, got {self.frame_short_side!r}.")
    if self.threads is not None and (isinstance(self.threads, bool) or int(self.threads) < 1):
      raise ValueError(f"threads must be None or an int >= 1, got {self.threads!r}.")
    if not 0 <= self.max_skipped_share <= 1:
      raise ValueError(f"max_skipped_share must be in [0, 1] (a share of the videos), got "
                       f"{self.max_skipped_share!r}.")
    if self.time_limit is not None and not 0 < self.time_limit < math.inf:
      raise ValueError(f"time_limit must be None (no limit) or > 0 seconds, got {self.time_limit!r}.")


RUNTIME_FIELDS = ("threads", "time_limit", "detector_package", "max_skipped_share")

# FFmpeg threads of the decoder, whatever the machine: frame-threaded decoding of a stream cut short
# ends at a frame that depends on the thread count (bikes.mp4 cut in half decodes 116 frames on 1
# thread, 114 on 2 or 3), and the records must depend neither on the cores nor on `workers`. One thread
# also spends the least CPU per frame (benchmarks/RESULTS.md): the other cores go to the detector.
DECODER_THREADS = 1


def available_cores():
  """The cores this process may run on."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def threads_per_worker(config, workers=None):
  """Threads each worker gives its detector (TFLite and TF): the available cores divided among the
  workers of this machine (`workers`, default `config.workers`; the decoder runs on
  `DECODER_THREADS` in a process of its own beside them)."""
  if config.threads is not None:
    return int(config.threads)
  return max(1, available_cores() // (workers or config.workers))


class SkippedVideo(Exception):
  """A video that yields no training data; the message says why."""


class TooManySkipped(ValueError):
  """A run skipped every video, or more than `max_skipped_share` of them; the message sums it up.
  Its output (shards, manifest listing the reasons) is kept."""


def check_skipped(manifest, config, output_dir):
  """Raises `TooManySkipped` when `manifest` counts every video skipped, or a share of skipped
  videos above `config.max_skipped_share`."""
  counts = manifest["counts"]
  total = counts["videos"] + counts["skipped"]
  if total == 0 or not (counts["skipped"] == total
                        or counts["skipped"] / total > config.max_skipped_share):
    return
  listed = manifest["skipped"] if isinstance(manifest["skipped"], list) else []
  reasons = "; ".join(f"{s['source']}: {s['reason']}" for s in listed[:3])
  more = f" (first: {reasons}{'; …' if len(listed) > 3 else ''})" if listed else ""
  raise TooManySkipped(
      f"{counts['skipped']} of {total} videos were skipped{more}, more than "
      f"max_skipped_share={config.max_skipped_share}; every reason is listed in {output_dir} "
      f"(manifest.json, per-video rows). Check the inputs, or raise --max_skipped_share.")


def find_videos(pattern):
  """Sorted files under a directory (recursively) or matching a glob, on any filesystem
  `files.filesystem()` reaches (gs:// too); hidden files are left out."""
  paths = [p for p in files.glob(pattern) if not posixpath.basename(p).startswith(".")]
  if not paths:
    raise FileNotFoundError(f"No files found at {pattern!r}: expected a directory of videos or a "
                            "glob such as 'videos/**/*.mp4'.")
  return paths


def read_videos_list(path):
  """The video paths listed in the text file `path`, one a line (blank lines and lines starting
  with '#' are left out), sorted; for inputs too many to list by glob."""
  with files.filesystem().GFile(path) as f:
    paths = sorted({line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")})
  if not paths:
    raise ValueError(f"--videos_list={path!r} lists no video: expected one path a line.")
  return paths


def list_inputs(videos=None, videos_list=None):
  """The sorted video paths of `videos` (a directory, a glob or a list of paths) or of the list file
  `videos_list`: exactly one of the two."""
  if (videos is None) == (videos_list is None):
    raise ValueError(f"Give exactly one of videos ({videos!r}) and videos_list ({videos_list!r}).")
  if videos_list is not None:
    return read_videos_list(videos_list)
  if isinstance(videos, (str, os.PathLike)):
    return find_videos(os.fspath(videos))
  return sorted(os.fspath(p) for p in videos)


def video_ids(paths):
  """Ids unique within a dataset: each path relative to the common directory of all paths (paths
  with a scheme, such as gs://, are compared as they are written)."""
  absolute = [files.absolute(os.fspath(p)) for p in paths]
  split = [p.split("://", 1) if "://" in p else ["", p] for p in absolute]
  if len({scheme for scheme, _ in split}) > 1:
    raise ValueError("All videos must be on one filesystem, got paths with schemes "
                     f"{sorted({scheme + '://' for scheme, _ in split})}.")
  root = posixpath.commonpath([posixpath.dirname(rest) for _, rest in split])
  return [posixpath.relpath(rest, root) for _, rest in split]


def detect_in_batches(detector, frames, batch_size):
  """Runs `detector` on uint8 frames `[S, H, W, 3]` in chunks; returns the concatenated dict."""
  chunks = [detector(frames[i:i + batch_size].astype(np.float32) / 255.0)
            for i in range(0, len(frames), batch_size)]
  return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def prepare_video(path, video_id, detector, config, decoders=None):
  """One video → `(serialized SequenceExample, stats)`.

  Decoding and shot detection run in a decoder process (`decoders`, a `DecoderPool`; None: one for
  this call) while the detector and the JPEG encoder work on the frames already sampled (grid frames
  are known as soon as they decode; the few middle frames of short shots once the shots are): frames
  go to the detector as soon as the decoder has none waiting, at most `config.detector_batch` at a
  time. The record is the same as running the steps one after the other.

  Raises:
    SkippedVideo or VideoDecodeError when the file yields no frame, or when decoding runs
    past `config.time_limit`.
  """
  if decoders is None:
    with decoder_process.DecoderPool() as pool:
      return prepare_video(path, video_id, detector, config, pool)
  if "://" in os.fspath(path):  # decoded from a bounded local copy: PyAV reads local files
    with files.local_copy(path, MAX_COPY_BYTES) as local:
      try:
        return _prepare_local_video(path, local, video_id, detector, config, decoders)
      except video_lib.VideoDecodeError as e:  # named by the path the user gave, not the copy's
        raise video_lib.VideoDecodeError(path, e.reason) from None
  return _prepare_local_video(path, path, video_id, detector, config, decoders)


def _prepare_local_video(path, local, video_id, detector, config, decoders):
  """`prepare_video` of the local file `local`, recorded as `path`."""
  detected, jpegs, pending = {}, {}, []

  def flush():
    if pending:
      out = detector(np.stack([image for _, image in pending]).astype(np.float32) / 255.0)
      for k, (index, image) in enumerate(pending):
        detected[index] = {key: value[k:k + 1] for key, value in out.items()}
        jpegs[index] = records.encode_jpeg(image, config.jpeg_quality)
      pending.clear()

  decoding = decoders.decode(local, queue_size=config.detector_batch, rate=config.fps,
                             shot_config=config.shot, short_side=config.frame_short_side,
                             threads=DECODER_THREADS)
  try:
    for message in decoding.messages(config.time_limit):
      if message[0] == "frame":
        pending.append(message[1:])
        if len(pending) >= config.detector_batch or decoding.idle():
          flush()
      else:
        samples = message[1]
  except decoder_process.TimeLimitExceeded as e:
    raise SkippedVideo(str(e)) from None
  finally:
    decoding.close()
  # Per image, detections do not depend on the batch an image was run in.
  flush()
  if len(samples.frame_indices) == 0:
    raise SkippedVideo(samples.problem or "no frame could be decoded")
  width, height = samples.info.width, samples.info.height
  if min(width, height) < config.min_video_side:
    raise SkippedVideo(f"the video is {width}×{height} pixels, smaller than "
                       f"min_video_side={config.min_video_side} (--min_video_side=1 accepts it)")
  order = samples.frame_indices.tolist()
  detections = {key: np.concatenate([detected[i][key] for i in order]) for key in detected[order[0]]}
  counts = detections["num_detections"]
  example = records.video_example(
      video_id=video_id, source=os.fspath(path), duration=samples.info.duration,
      fps=samples.info.fps, truncated=samples.truncated,
      shot_starts=[s.start_time for s in samples.shots],
      shot_ends=[s.end_time for s in samples.shots],
      jpegs=[jpegs[i] for i in order],
      shot_index=samples.shot_ids, timestamps=samples.times, frame_index=samples.frame_indices,
      detections=detections, num_detections=counts)
  valid = np.arange(detections["detection_scores"].shape[1])[None, :] < counts[:, None]
  stats = manifest_lib.video_stats(
      video_id=video_id, source=os.fspath(path), num_shots=len(samples.shots),
      num_frames=len(samples.frame_indices), class_names=detections["detection_class_entities"][valid],
      scores=detections["detection_scores"][valid], truncated=samples.truncated,
      problem=samples.problem)
  # Deterministic: map order would otherwise differ between processes, and so would the shards.
  return example.SerializeToString(deterministic=True), stats


def _prepare_or_report(item, detector, config, decoders):
  """`prepare_video` that raises only if the detector could not be built, so one bad file cannot
  stop the job."""
  path, video_id = item
  try:
    return prepare_video(path, video_id, detector, config, decoders)
  except _DetectorFailed:
    raise
  except Exception as e:  # noqa: BLE001 — reported per video in the manifest
    return None, {"video_id": video_id, "source": os.fspath(path),
                  "reason": f"{type(e).__name__}: {e}"}


def build_detector(config, num_threads=None):
  """The detector `config` names; the default one with `num_threads` TFLite threads (None: all
  cores), fetched from `config.detector_package` if given (sha256-checked)."""
  if config.detector in (None, MEDIAPIPE_OIDV4):
    mediapipe_assets.fetch_mediapipe_oidv4(package_tgz=config.detector_package)
    return mediapipe_oidv4_detector(score_threshold=config.score_threshold,
                                    max_detections=config.max_objects, num_threads=num_threads)
  return load_detector(config.detector, score_threshold=config.score_threshold,
                       max_detections=config.max_objects)


class _DetectorFailed(Exception):
  """Building the detector failed (the cause says why): the job stops, no video is to blame."""


class _LoadingDetector:
  """The detector, built on a thread of its own so the first videos decode meanwhile; a call waits
  for it. A failed build raises `_DetectorFailed` from every call."""

  def __init__(self, config, num_threads):
    self._result = concurrent.futures.Future()
    threading.Thread(target=self._build, args=(config, num_threads), daemon=True,
                     name="build detector").start()

  def _build(self, config, num_threads):
    try:
      self._result.set_result(build_detector(config, num_threads))
    except BaseException as e:  # noqa: BLE001 — handed to whoever waits
      self._result.set_exception(e)

  def get(self):
    """The detector, once built."""
    try:
      return self._result.result()
    except Exception as e:
      raise _DetectorFailed() from e

  def __call__(self, images):
    return self.get()(images)


def describe_detector(detector):
  """What the manifest records of the detector: `{"detector": …, "label_map": …}` (JSON-ready)."""
  return {"detector": detector.describe(),
          "label_map": dict(sorted(detector.label_map.items()))}


_WORKER: dict = {}  # the detector of a pool worker process


def _init_worker(config):
  threads = threads_per_worker(config)
  try:  # TensorFlow's own pools (the detector's resize), before its runtime starts
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
  except RuntimeError:
    pass
  decoders = decoder_process.DecoderPool()
  # Run as the worker exits after `Pool.close`; a killed worker's decoders end when their input does.
  multiprocessing.util.Finalize(decoders, decoders.close, exitpriority=10)
  _WORKER.update(config=config, detector=build_detector(config, threads), decoders=decoders)


def _worker_process(item):
  return _prepare_or_report(item, _WORKER["detector"], _WORKER["config"], _WORKER["decoders"])


def plan_settings(config):
  """The settings of `config` that change what is written (JSON-ready); the number of workers and
  the other `RUNTIME_FIELDS` do not."""
  settings = dataclasses.asdict(dataclasses.replace(config, workers=1, detector_batch=1))
  for name in RUNTIME_FIELDS:
    del settings[name]
  if config.min_video_side == PrepareConfig.min_video_side:
    del settings["min_video_side"]  # the default is left out: plans that do not name it resume
  return json.loads(json.dumps(settings))


def refuse_other_kind(output_dir, plan_file):
  """Raises ValueError if `output_dir` holds `plan_file`: the plan of the other kind of run (the local
  job's or the Beam pipeline's), whose shards a run of this kind must not mix with its own."""
  path = files.join(output_dir, plan_file)
  if files.filesystem().exists(path):
    raise ValueError(f"{output_dir!r} holds a preparation made by the other kind of run ({path}: "
                     "the local job writes plan.json, the Beam pipeline beam_plan.json); prepare "
                     "into a new --output.")


def _load_or_write_plan(output_dir, paths, ids, config):
  refuse_other_kind(output_dir, BEAM_PLAN_FILE)
  plan = {"videos": [{"source": files.absolute(p), "id": i} for p, i in zip(paths, ids)],
          "videos_per_shard": config.videos_per_shard,
          "config": plan_settings(config)}
  path = os.path.join(output_dir, PLAN_FILE)
  old = None
  if tf.io.gfile.exists(path):
    old = files.read_json(path, f"it records which videos and settings the shards of "
                          f"{output_dir!r} were made with. Restore it from a copy, or prepare "
                          "into a new --output.")
  # A plan without a finished shard holds no work (its start was refused or stopped early):
  # the corrected command replaces it.
  if old is not None and tf.io.gfile.glob(os.path.join(output_dir, schema.SHARD_GLOB)):
    files.check_same_settings(old, plan, output_dir, "a preparation of other videos or settings",
                              f"see {path}; resume with the same --videos and options, or "
                              "choose a new --output.")
  elif old != plan:
    files.write_json(path, plan)
  return plan


def shard_path(output_dir, index, count):
  return os.path.join(output_dir, schema.SHARD_PATTERN.format(index=index, count=count))


def _own_temporary_files(output_dir, count):
  """The temporary files of this job's outputs in `output_dir` (a killed run may have left them)."""
  finals = {PLAN_FILE, *manifest_lib.OUTPUT_FILES}
  for i in range(count):
    shard = os.path.basename(shard_path(output_dir, i, count))
    finals |= {shard, shard + ".stats.json"}
  return [os.path.join(output_dir, name) for name in tf.io.gfile.listdir(output_dir)
          if files.final_name_of(name) in finals]


def prepare(videos, output_dir, config=PrepareConfig(), progress=True, videos_list=None):
  """Prepares every video of `videos` (a directory, a glob or a list of paths), or of the list file
  `videos_list`, into `output_dir` (any filesystem tf.io.gfile reaches).

  Videos go to shards in sorted order, `videos_per_shard` each. A shard is written under a
  temporary name and renamed when complete, next to a `.stats.json` of its videos, so a killed
  run restarted with the same arguments redoes only incomplete shards and ends with the same
  records. Files that cannot be used, or whose decoding runs past `config.time_limit`, are
  skipped and listed in the manifest with their reason. Decoding, detection and writing overlap
  (see `prepare_video`; the next video starts while one finishes); `config.workers` processes
  share the cores.

  Returns:
    The manifest dict (also written to `output_dir/manifest.json`, with plots beside it).

  Raises:
    TooManySkipped: every video, or more than `config.max_skipped_share` of them, was skipped.
  """
  paths = list_inputs(videos, videos_list)
  ids = video_ids(paths)
  # One job at a time in `output_dir`: the start-up sweep below removes only its own leftovers.
  with files.DirectoryLock(output_dir, "vivi-prepare"):
    manifest = _prepare(paths, ids, output_dir, config, progress)
  check_skipped(manifest, config, output_dir)
  return manifest


def _prepare(paths, ids, output_dir, config, progress):
  tf.io.gfile.makedirs(output_dir)
  _load_or_write_plan(output_dir, paths, ids, config)

  per_shard = config.videos_per_shard
  count = math.ceil(len(paths) / per_shard)
  for stale in _own_temporary_files(output_dir, count):
    tf.io.gfile.remove(stale)  # left by a killed run
  shards = [list(zip(paths[i * per_shard:(i + 1) * per_shard], ids[i * per_shard:(i + 1) * per_shard]))
            for i in range(count)]
  done = [tf.io.gfile.exists(shard_path(output_dir, i, count)) and
          tf.io.gfile.exists(shard_path(output_dir, i, count) + ".stats.json")
          for i in range(count)]
  todo = [item for i, shard in enumerate(shards) if not done[i] for item in shard]

  bar = tqdm.tqdm(total=len(paths), initial=len(paths) - len(todo), unit="video",
                  desc="prepare", disable=not progress)
  detector = _LoadingDetector(config, threads_per_worker(config))
  results = _run_items(todo, detector, config)
  skipped = 0
  temporary = None
  try:
    for i, shard in enumerate(shards):
      if done[i]:
        continue
      final = shard_path(output_dir, i, count)
      stats = []
      temporary = files.temporary_path(final)
      with tf.io.TFRecordWriter(temporary) as writer:
        for _ in shard:
          serialized, item_stats = next(results)
          if serialized is not None:
            writer.write(serialized)
          else:
            skipped += 1
          stats.append(item_stats)
          bar.update()
          bar.set_postfix(skipped=skipped)
      detector.get()  # no shard is committed unless the detector loads: a failed start leaves none
      # Stats first, shard last: a shard under its final name always has its stats.
      files.write_atomically(final + ".stats.json", json.dumps(stats))
      tf.io.gfile.rename(temporary, final, overwrite=True)
    for _ in results:  # none is left: lets the worker and decoder processes end on their own
      pass
    detector_info = describe_detector(detector.get())
  except _DetectorFailed as e:
    if temporary is not None and tf.io.gfile.exists(temporary):
      tf.io.gfile.remove(temporary)
    raise e.__cause__ from None
  finally:
    bar.close()
  return write_manifest(output_dir, count, detector_info, config)


IN_FLIGHT = 2  # videos one worker has in progress: the next one decodes while one finishes


def _run_items(items, detector, config):
  """Yields `(serialized or None, stats)` for `items` in order, on `config.workers` processes."""
  if config.workers == 1 or len(items) <= 1:
    with decoder_process.DecoderPool() as decoders:
      yield from _in_order(lambda item: _prepare_or_report(item, detector, config, decoders), items,
                           IN_FLIGHT)
    return
  detector.get()  # workers build their own; a detector that fails to build must not start them
  # Spawned, not forked: TensorFlow's runtime does not survive a fork.
  with multiprocessing.get_context("spawn").Pool(
      config.workers, initializer=_init_worker, initargs=(config,)) as pool:
    yield from pool.imap(_worker_process, items)
    pool.close()  # workers exit on their own, ending their decoder processes
    pool.join()


def _in_order(fn, items, window):
  """`fn` over `items` on `window` threads, results in order, at most `window` in progress."""
  with concurrent.futures.ThreadPoolExecutor(window, thread_name_prefix="prepare") as pool:
    running = collections.deque()
    for item in items:
      running.append(pool.submit(fn, item))
      if len(running) >= window:
        yield running.popleft().result()
    while running:
      yield running.popleft().result()


def write_manifest(output_dir, count, detector_info, config):
  """Collects the shards' stats into `manifest.json` and its plots."""
  summary = manifest_lib.new_summary()
  for i in range(count):
    with tf.io.gfile.GFile(shard_path(output_dir, i, count) + ".stats.json") as f:
      for stats in json.load(f):
        manifest_lib.add_stats(summary, stats)
  return finish(output_dir, summary, [shard_path(output_dir, i, count) for i in range(count)],
                detector_info, config)


def finish(output_dir, summary, shard_paths, detector_info, config, sample_records=None,
           rows=None):
  """Writes `manifest.json`, its plots and the contact sheet (all through `files.filesystem()`);
  returns the manifest. `detector_info` is `describe_detector(detector)`; `sample_records`: the
  serialized records the contact sheet draws (default: the first ones of `shard_paths`, read with
  TensorFlow); `rows`: the glob of the per-video row files, if the videos are listed there."""
  manifest = manifest_lib.build_manifest(
      summary, shards=sorted(posixpath.basename(p) for p in shard_paths),
      detector=detector_info["detector"], label_map=detector_info["label_map"],
      config=json.loads(json.dumps(dataclasses.asdict(config))), rows=rows)
  files.write_json(files.join(output_dir, manifest_lib.MANIFEST_FILE), manifest)
  if sample_records is None:
    sample_records = tf.data.TFRecordDataset(sorted(shard_paths)).as_numpy_iterator()
  # The sheet is drawn beside the plots: TensorFlow's JPEG decoder and PIL's PNG encoder leave the
  # interpreter to matplotlib. The thread writes through this context's filesystem.
  with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="contact sheet") as pool:
    sheet = pool.submit(contextvars.copy_context().run, manifest_lib.contact_sheet, sample_records,
                        files.join(output_dir, manifest_lib.CONTACT_SHEET))
    manifest_lib.plot_manifest(manifest, output_dir)
    sheet.result()
  return manifest
