"""A training process for the kill/resume and multi-worker tests: synthetic batches, small model.

usage: python -m tests.training.train_main MODEL_DIR STEPS STRATEGY [HANG_AT_STEP]
Prints the final logs as JSON on its last line. With HANG_AT_STEP the process stops moving once
that step is trained but before its checkpoint is written, for a test to kill it there.
"""

import json
import sys
import time

import tensorflow as tf
import tf_keras

from keras_vivi.training import trainer
from tests.helpers.training import dataset_fn_for, small_config


class HangAt(tf_keras.callbacks.Callback):

  def __init__(self, step):
    super().__init__()
    self.step = step

  def on_train_batch_end(self, batch, logs=None):
    if int(self.model.optimizer.iterations.numpy()) >= self.step:
      while True:
        time.sleep(1)


def main(model_dir, steps, strategy_name, hang_at=None):
  tf_keras.utils.set_random_seed(0)
  tf.config.experimental.enable_op_determinism()
  # One data.seed for every run: the initial weights follow it, so runs in other directories
  # start alike.
  config = small_config("vivi_objects", "model.normalization=group", f"train.steps={steps}",
                        f"train.decay_steps={steps}", "train.base_learning_rate=10.0",
                        "data.seed=5")
  strategy = trainer.build_strategy(strategy_name)
  model, history = trainer.train(config, model_dir, strategy, steps_per_epoch=1,
                                 dataset_fn=dataset_fn_for(config, seed=7), verbose=2,
                                 callbacks=[HangAt(hang_at)] if hang_at else [])
  logs = {k: float(v[-1]) for k, v in history.history.items()}
  logs["iterations"] = int(model.optimizer.iterations.numpy())
  logs["stem_sum"] = float(tf.reduce_sum(model.backbone.get_layer("stem_conv").kernel))
  print(json.dumps(logs), flush=True)


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]), sys.argv[3], *map(int, sys.argv[4:]))
