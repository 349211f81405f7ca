"""Small experiment configs, fixed input pipelines, a frozen teacher, and a stand-in training run
on disk."""

import json
import os

import numpy as np
import tensorflow as tf
import tf_keras

from keras_vivi import configs
from keras_vivi.data import synthetic
from tests.helpers.images import ramp_images

SMALL = ["model.depth=14", "data.image_size=32", "data.shots_per_video=3", "data.frames_per_shot=2",
         "data.max_objects=3", "data.batch_size=4", "model.embedding_dim=16",
         "model.projection_hidden_dims=32", "model.shot_dim=16", "model.lstm_units=8",
         "model.num_box_classes=8", "model.num_supervised_classes=5",
         "model.num_teacher_classes=6", "data.labelled_batch_size=4", "data.num_classes=8",
         "train.base_learning_rate=0.01", "train.steps=4", "train.decay_steps=2,3"]


def small_config(name, *overrides):
  return configs.apply_overrides(configs.get_experiment(name), SMALL + list(overrides))


def labelled_batch(config, seed=1):
  rng = np.random.default_rng(seed)
  n, s = config.data.labelled_batch_size, config.data.image_size
  return {"image": rng.random((n, s, s, 3)).astype(np.float32),
          "label": rng.integers(0, config.model.num_supervised_classes, n).astype(np.int32)}


def dataset_fn_for(config, seed=0):
  """`input_context → dataset` of one fixed global batch, split per replica."""
  def fn(input_context=None):
    per_replica = (input_context.get_per_replica_batch_size(config.data.batch_size)
                   if input_context else config.data.batch_size)
    batch = synthetic.video_batch(config.data, seed, raw_frames=config.loss.detector_crops)
    videos = tf.data.Dataset.from_tensor_slices(batch)
    if input_context:
      videos = videos.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    videos = videos.batch(per_replica, drop_remainder=True).repeat()
    if not config.loss.supervised:
      return videos
    images = tf.data.Dataset.from_tensor_slices(labelled_batch(config)).batch(
        per_replica, drop_remainder=True).repeat()
    return tf.data.Dataset.zip((videos, images))
  return fn


class TinyTeacher(tf.Module):
  """A frozen 'classifier' SavedModel: images in [0, 1] → logits from colour means."""

  def __init__(self, classes):
    super().__init__()
    self.w = tf.Variable(tf.random.stateless_normal([3, classes], seed=(1, 2)), trainable=False)

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
  def __call__(self, images):
    return tf.matmul(tf.reduce_mean(images, axis=[1, 2]), self.w) * 10.0


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
