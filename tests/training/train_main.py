"""A training process for the kill/resume and multi-worker tests: synthetic batches, small model.

usage: python -m tests.training.train_main MODEL_DIR STEPS STRATEGY
Prints the final logs as JSON on its last line.
"""

import json
import sys

import tensorflow as tf
import tf_keras

from keras_vivi.training import trainer
from tests.training.conftest import dataset_fn_for, small_config


def main(model_dir, steps, strategy_name):
  tf_keras.utils.set_random_seed(0)
  tf.config.experimental.enable_op_determinism()
  config = small_config("vivi_objects", "model.normalization=group", f"train.steps={steps}",
                        f"train.decay_steps={steps}", "train.base_learning_rate=10.0")
  strategy = trainer.build_strategy(strategy_name)
  model, history = trainer.train(config, model_dir, strategy, steps_per_epoch=1,
                                 dataset_fn=dataset_fn_for(config, seed=7), verbose=2)
  logs = {k: float(v[-1]) for k, v in history.history.items()}
  logs["iterations"] = int(model.optimizer.iterations.numpy())
  logs["stem_sum"] = float(tf.reduce_sum(model.backbone.get_layer("stem_conv").kernel))
  print(json.dumps(logs), flush=True)


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
