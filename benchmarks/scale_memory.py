"""Peak memory at the paper's sizes: one train step per replica, and the training callbacks.

- step: one full `vivi_objects` train step (ω·object + frame + β·shot, L2 weight decay) on CPU at
  the paper's per-replica shapes: a 512-video batch on 128 replicas is 4 videos × 4 shots × 8
  frames = 128 frames at 224², 640 boxes.
- callbacks: the object diagnostic (Table 2's protocol: neighbours within 50 batches of 8
  videos) and the TensorBoard frames, on a synthetic record set of ≥ 200k objects. Their memory
  must not grow with the records; the former whole-set diagnostic held an N × N similarity
  matrix (200k² float32 = 160 GB).

Each measurement runs in its own process so its peak resident memory is its own.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

TITLE = "Peak memory at the paper's sizes (train step per replica; callbacks at ≥ 200k objects)"
STEP_VIDEOS, STEP_SIZE = 4, 224
FRAMES_PER_VIDEO, OBJECTS_PER_FRAME, SHOTS = 20, 5, 4
CALLBACK_SIZE = 64  # frames embedded by the diagnostic, as stored at this size


def _rss_mib():
  import psutil  # pylint: disable=g-import-not-at-top
  return psutil.Process().memory_info().rss / 2**20


def _peak_mib():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _step(repeats):
  """Child: one compiled vivi_objects train step at the per-replica shapes."""
  from benchmarks import train_step  # pylint: disable=g-import-not-at-top
  step, frames = train_step.vivi_step(STEP_SIZE, videos=STEP_VIDEOS)
  before = _rss_mib()
  start = time.perf_counter()
  step()  # builds, traces and runs once
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return {"frames": frames, "before_mib": before, "peak_mib": _peak_mib(),
          "first_s": first, "step_s": float(np.median(times))}


def write_records(folder, videos, seed=0):
  """`videos` synthetic videos of SHOTS shots, FRAMES_PER_VIDEO frames and OBJECTS_PER_FRAME
  boxes each, one shard per 500 videos; returns the number of objects."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from keras_vivi.data import records, schema  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  s, m = FRAMES_PER_VIDEO, OBJECTS_PER_FRAME
  jpegs = [records.encode_jpeg(rng.integers(0, 255, (CALLBACK_SIZE, CALLBACK_SIZE, 3), np.uint8))
           for _ in range(64)]
  count = -(-videos // 500)
  for shard in range(count):
    path = os.path.join(folder, schema.SHARD_PATTERN.format(index=shard, count=count))
    with tf.io.TFRecordWriter(path) as writer:
      for v in range(shard * 500, min(videos, (shard + 1) * 500)):
        centre = rng.uniform(0.2, 0.8, (s, m, 2))
        labels = rng.integers(1, 24, (s, m))
        example = records.video_example(
            f"v{v}", f"v{v}.mp4", float(s), 1.0, False, np.arange(SHOTS) * s / SHOTS,
            (np.arange(SHOTS) + 1) * s / SHOTS, [jpegs[i % 64] for i in range(v, v + s)],
            np.arange(s) * SHOTS // s, np.arange(s, dtype=np.float32), np.arange(s),
            {"detection_boxes": np.concatenate([centre - 0.1, centre + 0.1], -1),
             "detection_class_labels": labels,
             "detection_class_entities": labels.astype(str).astype(object),
             "detection_scores": rng.uniform(0.1, 1.0, (s, m)).astype(np.float32)}, [m] * s)
        writer.write(example.SerializeToString())
  return videos * s * m


def _callbacks(records_dir):
  """Child: the trainer's callbacks' work on the records, after the model is built."""
  from keras_vivi import configs  # pylint: disable=g-import-not-at-top
  from keras_vivi.training import callbacks, trainer  # pylint: disable=g-import-not-at-top
  config = configs.apply_overrides(configs.get_experiment("vivi_objects"), [
      f"data.path={records_dir}", f"data.image_size={CALLBACK_SIZE}"])
  model = trainer.build_model(config)
  model(np.zeros((1, CALLBACK_SIZE, CALLBACK_SIZE, 3), np.float32))
  before = _rss_mib()
  start = time.perf_counter()
  diagnostic = callbacks.ObjectNeighbourCallback(config.data, config.diagnostic)
  diagnostic.set_model(model)
  figures = diagnostic.compute()
  summary = callbacks.FrameSummaryCallback(trainer.summary_batch(config), tempfile.mkdtemp())
  return {"before_mib": before, "peak_mib": _peak_mib(), "seconds": time.perf_counter() - start,
          "figure": figures["object_nn_same_class"], "summary_images": int(len(summary.images))}


def _child(*args, timeout=3600):
  proc = subprocess.run([sys.executable, "-m", "benchmarks.scale_memory", *args],
                        capture_output=True, text=True, timeout=timeout,
                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  if proc.returncode != 0:
    reason = ("killed (out of memory)" if proc.returncode in (-9, 137) else
              (proc.stderr.strip().splitlines() or ["no output"])[-1][:160])
    raise RuntimeError(f"benchmarks.scale_memory {' '.join(args)}: {reason}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick=False):
  """Returns the markdown section for RESULTS.md."""
  step = _child("step", "1" if quick else "2")
  videos = 400 if quick else 2000
  with tempfile.TemporaryDirectory() as folder:
    objects = write_records(folder, videos)
    cb = _child("callbacks", folder)
  gib = lambda mib: f"{mib / 1024:.2f}"
  lines = [
      f"One `vivi_objects` train step (SGD, L2 weight decay) at the per-replica shapes "
      f"{STEP_VIDEOS} videos × 4 × 8 = {step['frames']} frames at {STEP_SIZE}², 5 boxes a frame:",
      "", "| process peak GiB | before the first step GiB | first step s (trace) | step s |",
      "|---|---|---|---|",
      f"| {gib(step['peak_mib'])} | {gib(step['before_mib'])} | {step['first_s']:.1f} | "
      f"{step['step_s']:.1f} |", "",
      f"Callbacks (object diagnostic by Table 2's protocol, 50 batches of 8 videos, and the "
      f"TensorBoard frames of one video) on {videos} synthetic videos, {objects:,} objects, frames "
      f"at {CALLBACK_SIZE}², ResNet-50 v2:", "",
      "| objects in the records | callbacks' peak above the built model GiB | process peak GiB | "
      "seconds | target |", "|---|---|---|---|---|",
      f"| {objects:,} | {gib(cb['peak_mib'] - cb['before_mib'])} | {gib(cb['peak_mib'])} | "
      f"{cb['seconds']:.0f} | < 1 GiB |", "",
      f"The diagnostic reads only the first 50 × 8 = 400 videos, whatever the size of the records; "
      f"the former whole-set version needed an N × N similarity matrix "
      f"({objects:,}² float32 = {objects ** 2 * 4 / 2 ** 30:,.0f} GiB)."]
  print("\n".join(lines), flush=True)
  return "\n".join(lines)


if __name__ == "__main__":
  if sys.argv[1] == "step":
    print(json.dumps(_step(int(sys.argv[2]))))
  else:
    print(json.dumps(_callbacks(sys.argv[2])))
