"""examples/retinanet_finetune.py: Model Garden's trainer on a vivi export, a few steps."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.helpers.cli import REPO
from tests.helpers.coco import write_coco


@pytest.mark.slow
def test_retinanet_finetune_runs_train_and_eval(export_dir, tmp_path):
  coco = tmp_path / "coco"
  write_coco(coco)
  model_dir = tmp_path / "retinanet"
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "examples", "retinanet_finetune.py"),
       "--mode=train_and_eval", f"--model_dir={model_dir}", f"--backbone={export_dir}",
       f"--coco_dir={coco}",
       f"--config_file={os.path.join(REPO, 'examples', 'retinanet_smoke.yaml')}"],
      cwd=REPO, capture_output=True, text=True, timeout=900,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(
          p for p in (REPO, os.environ.get("PYTHONPATH")) if p)})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-2")
  params = (model_dir / "params.yaml").read_text()
  assert f"handle: {export_dir}" in params and "type: vivi" in params
  assert "validation_loss" in proc.stdout + proc.stderr
