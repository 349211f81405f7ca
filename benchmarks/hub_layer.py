"""Training step through `hub.KerasLayer(export, trainable=True)` vs the native backbone.

Both models are ResNet-50 v2 → linear head with the same weights, batch and resolution; steps
are compiled `tf.function`s (SGD with momentum) and timed alternately so noise hits both.
"""

import os
import sys
import tempfile
import time

TITLE = "Training step through hub.KerasLayer(export, trainable=True) vs the native backbone"
SETTINGS = ((32, 128), (16, 224))   # (batch, image size)
QUICK_SETTINGS = ((8, 128),)
NUM_CLASSES = 10


def _train_step(model):
  import tensorflow as tf
  import tf_keras
  optimizer = tf_keras.optimizers.SGD(0.01, momentum=0.9)
  loss_fn = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function
  def step(images, labels):
    with tf.GradientTape() as tape:
      loss = loss_fn(labels, model(images, training=True))
    variables = model.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  return step


def _models(export_dir):
  """(native, hub) classifiers sharing initial weights; the export is written to export_dir."""
  import tensorflow_hub as hub
  import tf_keras
  import hub_export
  from keras_vivi import models
  tf_keras.utils.set_random_seed(0)
  backbone = models.ResNetV2()
  hub_export.export_backbone(backbone, export_dir)
  inputs = tf_keras.Input([None, None, 3])
  native_head = tf_keras.layers.Dense(NUM_CLASSES)
  native = tf_keras.Model(inputs, native_head(backbone(inputs)["pre_logits"]))
  hub_head = tf_keras.layers.Dense(NUM_CLASSES)
  via_hub = tf_keras.Sequential([tf_keras.Input([None, None, 3]),
                                 hub.KerasLayer(export_dir, trainable=True), hub_head])
  hub_head.set_weights(native_head.get_weights())
  return native, via_hub


def _measure(step, images, labels):
  start = time.perf_counter()
  step(images, labels).numpy()
  return time.perf_counter() - start


def run(quick=False):
  """Returns the markdown section for RESULTS.md."""
  import numpy as np
  import tensorflow as tf
  settings = QUICK_SETTINGS if quick else SETTINGS
  repeats = 3 if quick else 10
  lines = ["| batch × size | native s/step | hub.KerasLayer s/step | ratio | same first loss |",
           "|---|---|---|---|---|"]
  rng = np.random.default_rng(0)
  for batch, size in settings:
    with tempfile.TemporaryDirectory() as tmp:
      native, via_hub = _models(os.path.join(tmp, "export"))
      steps = {"native": _train_step(native), "hub": _train_step(via_hub)}
      images = tf.constant(rng.uniform(size=(batch, size, size, 3)).astype(np.float32))
      labels = tf.constant(rng.integers(0, NUM_CLASSES, size=batch))
      # The first step traces; from identical weights both give the same loss.
      first = {name: float(step(images, labels)) for name, step in steps.items()}
      times = {name: [] for name in steps}
      for i in range(repeats):
        order = ("native", "hub") if i % 2 == 0 else ("hub", "native")
        for name in order:
          times[name].append(_measure(steps[name], images, labels))
      native_s, hub_s = (float(np.median(times[k])) for k in ("native", "hub"))
      same = abs(first["native"] - first["hub"]) <= 1e-4 * max(1.0, abs(first["native"]))
      lines.append(f"| {batch} × {size}² | {native_s:.3f} | {hub_s:.3f} | "
                   f"{hub_s / native_s:.2f}× | {'yes' if same else 'NO'} "
                   f"({first['native']:.4f} / {first['hub']:.4f}) |")
      print(lines[-1], flush=True)
  lines += ["", f"Median of {repeats} alternating steps each after one tracing step; target "
            "≤ 1.10×. The export is written from the native backbone, so both start from the "
            "same weights."]
  return "\n".join(lines)


if __name__ == "__main__":
  print(run(quick="--quick" in sys.argv))
