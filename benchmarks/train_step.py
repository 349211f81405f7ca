"""One full `VIVIModel.train_step` (frame + shot + object losses) vs a plain supervised step.

Both train a ResNet-50 v2 with SGD on the same number of frames at the same resolution
(1 video × K = 4 shots × F = 8 frames = 32 frames, 5 boxes per frame); the plain step is a
softmax classifier on the pooled features. Target (DESIGN §6): ≤ 1.15×.
"""

import time

import numpy as np
import tensorflow as tf
import tf_keras

from keras_vivi import configs
from keras_vivi.data import synthetic
from keras_vivi.models import ResNetV2
from keras_vivi.training import VIVIModel

TITLE = "Train step with all three losses vs a plain supervised ResNet50V2 step (32 frames)"
K, F, M = 4, 8, 5


def vivi_step(image_size, videos=1, experiment="vivi_objects", jit_compile=False):
  """A compiled `train_step` of `experiment` on one fixed batch (through XLA on request);
  returns `(step_fn, frames)`."""
  config = configs.apply_overrides(configs.get_experiment(experiment), [
      f"data.image_size={image_size}", f"data.batch_size={videos}",
      f"data.frames_per_shot={F}", f"data.shots_per_video={K}"])
  model = VIVIModel(config)
  model.compile(optimizer=tf_keras.optimizers.SGD(0.01, momentum=0.9))
  batch = {k: tf.constant(v) for k, v in synthetic.video_batch(
      config.data, raw_frames=config.loss.detector_crops).items()}
  step = tf.function(model.train_step, jit_compile=jit_compile)
  return (lambda: step(batch)["total_loss"].numpy()), videos * K * F


def plain_step(image_size, frames):
  backbone = ResNetV2()
  head = tf_keras.layers.Dense(1000)
  optimizer = tf_keras.optimizers.SGD(0.01, momentum=0.9)
  images = tf.random.uniform([frames, image_size, image_size, 3])
  labels = tf.random.uniform([frames], 0, 1000, tf.int32)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      logits = head(backbone(images, training=True)["pre_logits"])
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    variables = backbone.trainable_variables + head.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss
  return lambda: step().numpy()


def _median_seconds(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def compare(image_size, repeats=5):
  """Median seconds per step of both, measured alternately: `(vivi, plain, frames)`."""
  vivi, frames = vivi_step(image_size)
  plain = plain_step(image_size, frames)
  vivi(), plain()  # trace and warm up
  vivi_t, plain_t = [], []
  for _ in range(repeats):
    vivi_t.append(_median_seconds(vivi, 1))
    plain_t.append(_median_seconds(plain, 1))
  return float(np.median(vivi_t)), float(np.median(plain_t)), frames


def compare_xla(image_size, experiment, repeats=5):
  """Median seconds per step without and with XLA, alternating, and the first (compiling)
  step's seconds with XLA: `(plain, xla, xla_first)`."""
  plain, _ = vivi_step(image_size, experiment=experiment)
  xla, _ = vivi_step(image_size, experiment=experiment, jit_compile=True)
  plain()
  start = time.perf_counter()
  xla()
  first = time.perf_counter() - start
  plain_t, xla_t = [], []
  for _ in range(repeats):
    plain_t.append(_median_seconds(plain, 1))
    xla_t.append(_median_seconds(xla, 1))
  return float(np.median(plain_t)), float(np.median(xla_t)), first


def xla_rows(quick=False):
  """Markdown lines: the step with and without XLA (the TPU compiler path) on this CPU."""
  lines = ["", "The same step compiled with XLA (`train.jit_compile=true`, as TPUs compile it) "
           "vs without, on this CPU; first = the step that compiles:", "",
           "| experiment | image size | frames | step s | XLA step s | XLA / step | XLA first s |",
           "|---|---|---|---|---|---|---|"]
  for experiment in (("vivi_objects",) if quick else ("vivi", "vivi_objects")):
    plain, xla, first = compare_xla(128, experiment, repeats=3 if quick else 5)
    lines.append(f"| {experiment} | 128 | {K * F} | {plain:.3f} | {xla:.3f} | "
                 f"{xla / plain:.2f}× | {first:.1f} |")
    print(lines[-1], flush=True)
  return lines


def run(quick=False):
  rows = []
  for size in ((128,) if quick else (128, 224)):
    vivi, plain, frames = compare(size, repeats=3 if quick else 7)
    rows.append(f"| {size} | {frames} | {vivi:.3f} | {plain:.3f} | {vivi / plain:.2f}× |")
    print(rows[-1], flush=True)
  return "\n".join([
      "Median of alternating steps, after tracing; `vivi_objects` (ω·object + frame + β·shot).",
      "", "| image size | frames | train_step s | plain step s | ratio |",
      "|---|---|---|---|---|", *rows, *xla_rows(quick)])
