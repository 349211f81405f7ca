"""Small synthetic batches in the pipeline's element spec, and small experiment configs."""

import numpy as np
import pytest
import tensorflow as tf

from keras_vivi import configs
from keras_vivi.data import synthetic

SMALL = ["model.depth=14", "data.image_size=32", "data.shots_per_video=3", "data.frames_per_shot=2",
         "data.max_objects=3", "data.batch_size=4", "model.embedding_dim=16",
         "model.projection_hidden_dims=32", "model.shot_dim=16", "model.lstm_units=8",
         "model.num_box_classes=8", "model.num_supervised_classes=5",
         "model.num_teacher_classes=6", "data.labelled_batch_size=4", "data.num_classes=8",
         "train.base_learning_rate=0.01", "train.steps=4", "train.decay_steps=2,3"]


def small_config(name, *overrides):
  return configs.apply_overrides(configs.get_experiment(name), SMALL + list(overrides))


def video_batch(config, seed=0, batch_size=None):
  return synthetic.video_batch(config.data, seed, batch_size)


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
    batch = video_batch(config, seed)
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


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("teacher"))
  tf.saved_model.save(TinyTeacher(6), path)
  return path


@pytest.fixture(scope="session")
def detector_dir(tmp_path_factory):
  """A local SavedModel with the openimages_v4 detector signature (DESIGN.md §4)."""
  from tests.detector.conftest import _FakeHubDetector
  path = str(tmp_path_factory.mktemp("hub_detector"))
  module = _FakeHubDetector()
  tf.saved_model.save(module, path, signatures={"default": module.default})
  return path
