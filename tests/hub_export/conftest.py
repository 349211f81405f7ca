"""Shared fixtures: one stand-in training run and one export of it for the whole session."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_vivi import configs
from keras_vivi import models

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ramp_images(batch, height, width=None, offset=0.0):
  """Deterministic images in [0, 1]: ramps along rows, columns and channels."""
  width = width or height
  y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
  x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
  c = np.array([0.2, 0.5, 0.8], np.float32)[None, None, :]
  images = [np.mod(0.6 * y + 0.3 * x * (i + 1) + c + offset + 0.17 * i, 1.0)
            for i in range(batch)]
  return np.stack(images).astype(np.float32)


def run_cli(*args):
  """`python -m hub_export.cli ARGS` from the repository root; returns the finished process."""
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  return subprocess.run([sys.executable, "-m", "hub_export.cli", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)


def write_run(model_dir, config, backbone, steps=1):
  """A run as the trainer writes it: config.json and CheckpointManager checkpoints of
  `Checkpoint(model=<backbone + head>, optimizer)`; ckpt-1 holds the initial weights and the
  latest one the weights after `steps` SGD steps (which also move the batch-norm statistics)."""
  head = tf_keras.layers.Dense(4, name="head")
  optimizer = tf_keras.optimizers.SGD(0.05, momentum=0.9)
  head.build([None, backbone.representation_dim])
  checkpoint = tf.train.Checkpoint(model=tf.train.Checkpoint(backbone=backbone, head=head),
                                   optimizer=optimizer)
  manager = tf.train.CheckpointManager(checkpoint, str(model_dir), max_to_keep=3)
  manager.save()
  images = tf.constant(ramp_images(2, 64))
  labels = tf.constant([1, 3])
  for _ in range(steps):
    with tf.GradientTape() as tape:
      logits = head(backbone(images, training=True)["pre_logits"])
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    variables = backbone.trainable_variables + head.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
  manager.save()
  with open(os.path.join(model_dir, "config.json"), "w") as f:
    json.dump(configs.to_dict(config), f)
  return manager.latest_checkpoint


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
  """A stand-in `vivi_objects` run after one training step, and its backbone in memory."""
  config = configs.get_experiment("vivi_objects")
  model_dir = tmp_path_factory.mktemp("run")
  tf_keras.utils.set_random_seed(1)
  backbone = models.build_backbone(config.model)
  latest = write_run(model_dir, config, backbone)
  return types.SimpleNamespace(model_dir=str(model_dir), checkpoint=latest, config=config,
                               backbone=backbone)


@pytest.fixture(scope="session")
def export_dir(trained_run, tmp_path_factory):
  """`vivi-export --model_dir=RUN --export_dir=DIR`, run as a user would."""
  path = str(tmp_path_factory.mktemp("exports") / "vivi_objects")
  proc = run_cli(f"--model_dir={trained_run.model_dir}", f"--export_dir={path}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Exported the vivi_objects backbone (ckpt-2" in proc.stdout
  return path
