"""The trainer's compact progress line."""

import re

import numpy as np
import tensorflow as tf
import tf_keras

from keras_vivi.training import callbacks, trainer


class FixedLogs(tf_keras.Model):
  """A model whose training step reports fixed logs."""

  def train_step(self, data):
    return {"total_loss": tf.constant(1.5), "frame_loss": tf.constant(0.25),
            "object_active_triplets": tf.constant(0.5), "weight_decay_loss": tf.constant(0.125)}


def test_progress_shows_only_the_named_logs_and_history_keeps_every_one(capsys):
  model = FixedLogs()
  model.compile(optimizer="sgd")
  data = tf.data.Dataset.from_tensor_slices(np.zeros([3, 1], np.float32)).batch(1)
  history = model.fit(data, epochs=2, verbose=1,
                      callbacks=[callbacks.CompactProgbarLogger(("total_loss", "frame_loss"))])
  out = capsys.readouterr().out
  assert set(re.findall(r"(\w+): -?\d+\.\d", out)) == {"total_loss", "frame_loss"}
  assert "total_loss: 1.5000" in out and "frame_loss: 0.2500" in out
  assert "Epoch 2/2" in out
  assert set(history.history) == {"total_loss", "frame_loss", "object_active_triplets",
                                  "weight_decay_loss"}


def test_the_trainers_progress_names_the_total_and_each_level_loss():
  assert trainer.PROGRESS_LOGS == ("total_loss", "frame_loss", "shot_loss", "object_loss",
                                   "box_classifier_loss", "distillation_loss", "crop_loss",
                                   "supervised_loss")
