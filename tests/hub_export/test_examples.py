"""examples/retinanet_finetune.py: Model Garden's trainer on a vivi export, a few steps."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.hub_export.conftest import REPO
from tests.hub_export.conftest import ramp_images
from tests.hub_export.test_model_garden import _coco_example

TINY = """\
runtime: {distribution_strategy: one_device, num_gpus: 0}
task:
  use_coco_metrics: false
  model:
    input_size: [128, 128, 3]
    num_classes: 6
    detection_generator: {nms_version: batched}
  train_data: {global_batch_size: 2, shuffle_buffer_size: 4}
  validation_data: {global_batch_size: 2}
trainer:
  train_steps: 2
  steps_per_loop: 1
  summary_interval: 1
  checkpoint_interval: 2
  validation_steps: 1
  validation_interval: 2
  optimizer_config: {learning_rate: {stepwise: {values: [0.001, 0.0001, 0.00001]}},
                     warmup: {linear: {warmup_steps: 1, warmup_learning_rate: 0.0001}}}
"""


@pytest.mark.slow
def test_retinanet_finetune_runs_train_and_eval(export_dir, tmp_path):
  coco = tmp_path / "coco"
  coco.mkdir()
  for split in ("train", "val"):
    with tf.io.TFRecordWriter(str(coco / f"{split}-00000-of-00001.tfrecord")) as writer:
      for i in range(4):
        image = (ramp_images(1, 128, offset=0.1 * i)[0] * 255).astype(np.uint8)
        writer.write(_coco_example(image, [[0.1, 0.1, 0.6, 0.5]], [1 + i], i).SerializeToString())
  (tmp_path / "tiny.yaml").write_text(TINY)
  model_dir = tmp_path / "retinanet"
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "examples", "retinanet_finetune.py"),
       "--mode=train_and_eval", f"--model_dir={model_dir}", f"--backbone={export_dir}",
       f"--coco_dir={coco}", f"--config_file={tmp_path / 'tiny.yaml'}"],
      cwd=REPO, capture_output=True, text=True, timeout=900,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(
          p for p in (REPO, os.environ.get("PYTHONPATH")) if p)})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-2")
  params = (model_dir / "params.yaml").read_text()
  assert f"handle: {export_dir}" in params and "type: vivi" in params
  assert "validation_loss" in proc.stdout + proc.stderr
