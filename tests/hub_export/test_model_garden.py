"""Model Garden consumer: the 'vivi' backbone builder, its configs and RetinaNet on top."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from hub_export import model_garden
from official.core import exp_factory
from official.core import task_factory
from official.vision.modeling.backbones import factory as backbone_factory
from official.vision.ops import preprocess_ops
from tests.helpers.coco import coco_example
from tests.helpers.images import ramp_images

SIZE = 128  # the smallest input with a 1×1 map at level 7
NUM_CLASSES = 5


@pytest.fixture(scope="module")
def coco_records(tmp_path_factory):
  """Four ramp images (different sizes) with one or two boxes each, as one TFRecord file."""
  path = str(tmp_path_factory.mktemp("coco") / "train-00000-of-00001.tfrecord")
  boxes = [[[0.1, 0.1, 0.6, 0.5]], [[0.2, 0.3, 0.9, 0.8], [0.0, 0.0, 0.4, 0.4]],
           [[0.5, 0.5, 1.0, 1.0]], [[0.3, 0.1, 0.7, 0.9]]]
  with tf.io.TFRecordWriter(path) as writer:
    for i, (size, box) in enumerate(zip((96, 128, 160, 112), boxes)):
      image = (ramp_images(1, size, size + 16, offset=0.1 * i)[0] * 255).astype(np.uint8)
      classes = [1 + (i + j) % NUM_CLASSES for j in range(len(box))]
      writer.write(coco_example(image, box, classes, i + 1).SerializeToString())
  return path


def _experiment(records, **vivi):
  config = exp_factory.get_exp_config(model_garden.EXPERIMENT)
  config.override({
      "task": {
          "model": {"input_size": [SIZE, SIZE, 3], "num_classes": NUM_CLASSES + 1,
                    "backbone": {"vivi": vivi},
                    "detection_generator": {"nms_version": "batched"}},
          "train_data": {"input_path": records, "global_batch_size": 2,
                         "shuffle_buffer_size": 4},
      },
      "trainer": {"optimizer_config": {"warmup": {"linear": {"warmup_steps": 1}}}},
  }, is_strict=True)
  config.validate()
  return config


def test_experiment_follows_the_paper():
  config = exp_factory.get_exp_config("retinanet_vivi_fpn_coco")
  task = config.task
  assert isinstance(task, model_garden.RetinaNetTask)
  assert task.model.input_size == [640, 640, 3]
  assert (task.model.min_level, task.model.max_level) == (3, 7)
  assert task.model.decoder.type == "fpn"
  assert task.model.backbone.type == "vivi"
  assert task.train_data.global_batch_size == 256
  steps_per_epoch = 118287 // 256
  assert config.trainer.train_steps == 60 * steps_per_epoch
  schedule = config.trainer.optimizer_config.learning_rate.stepwise
  assert schedule.values[0] == pytest.approx(0.08)
  assert schedule.boundaries == [48 * steps_per_epoch, 56 * steps_per_epoch]
  # The subclassed configs survive a dict round trip, as when Model Garden re-reads params.
  again = model_garden.RetinaNetTask(task.as_dict())
  assert again.model.backbone.get().input_normalization == "mean_std"


def test_builder_needs_exactly_one_source():
  config = model_garden.Backbone(type="vivi", vivi=model_garden.ViviBackbone(
      handle="somewhere", random_init=True))
  with pytest.raises(ValueError, match=r"exactly one of .*\['handle', 'random_init'\]"):
    backbone_factory.build_backbone(tf_keras.layers.InputSpec(shape=[None, 64, 64, 3]),
                                    config, None)


def test_random_init_backbone_returns_only_levels():
  config = model_garden.Backbone(type="vivi", vivi=model_garden.ViviBackbone(
      random_init=True, experiment="vivi", input_normalization="unit"))
  backbone = backbone_factory.build_backbone(
      tf_keras.layers.InputSpec(shape=[None, SIZE, SIZE, 3]), config, None,
      l2_regularizer=tf_keras.regularizers.l2(1e-4))
  # No 'pre_logits': Model Garden's FPN reads max(keys) as the top level.
  assert sorted(backbone.output_specs) == sorted(backbone.output) == ["2", "3", "4", "5"]
  assert backbone.output_specs["5"].as_list() == [None, 4, 4, 2048]
  assert len(backbone.losses) == sum("kernel" in w.name for w in backbone.trainable_weights)
  with pytest.raises(ValueError, match="input_normalization must be one of .* got 'imagenet'"):
    model_garden.ViviFeatureMaps(backbone, tf_keras.layers.InputSpec(shape=[None, 8, 8, 3]),
                                 "imagenet")


def test_backbone_on_export_matches_native_levels(export_dir, trained_run):
  """The builder's model on normalised images gives the native backbone's endpoints."""
  config = model_garden.Backbone(type="vivi", vivi=model_garden.ViviBackbone(handle=export_dir))
  backbone = backbone_factory.build_backbone(
      tf_keras.layers.InputSpec(shape=[None, 96, 64, 3]), config, None)
  assert sorted(backbone.output_specs) == ["2", "3", "4", "5"]
  for level, shape in backbone.output_specs.items():
    stride = 2 ** int(level)
    assert shape.as_list() == [None, 96 // stride, 64 // stride, 256 * stride // 4]
  images = ramp_images(2, 96, 64)
  normalised = preprocess_ops.normalize_image(tf.constant(images))
  got = backbone(normalised, training=False)
  want = trained_run.backbone(images, training=False)
  for level in "2345":
    # Undoing the mean/std normalisation rounds the input at float32 precision.
    scale = np.abs(want[level].numpy()).max()
    np.testing.assert_allclose(got[level].numpy(), want[level].numpy(), rtol=0, atol=1e-5 * scale)


def _train_and_predict(config):
  task = task_factory.get_task(config.task)
  model = task.build_model()
  task.initialize(model)
  features, labels = next(iter(task.build_inputs(config.task.train_data)))
  assert features.shape == (2, SIZE, SIZE, 3)
  outputs = model(features, anchor_boxes=labels["anchor_boxes"],
                  image_shape=labels["image_info"][:, 1, :], training=False)
  assert outputs["detection_boxes"].shape[:2] == (2, 100)
  assert sorted(outputs["cls_outputs"]) == ["3", "4", "5", "6", "7"]
  optimizer = task.create_optimizer(config.trainer.optimizer_config, config.runtime)
  backbone_weight = model.backbone.trainable_weights[0]
  moving_mean = next(w for w in model.backbone.non_trainable_weights if "moving_mean" in w.name)
  before = backbone_weight.numpy().copy(), moving_mean.numpy().copy()
  logs = task.train_step((features, labels), model, optimizer,
                         metrics=task.build_metrics(training=True))
  assert np.isfinite(logs["loss"].numpy())
  assert not np.allclose(backbone_weight.numpy(), before[0])
  assert not np.allclose(moving_mean.numpy(), before[1])
  return model


def test_retinanet_on_export(export_dir, coco_records):
  model = _train_and_predict(_experiment(coco_records, handle=export_dir))
  assert isinstance(model.backbone, model_garden.ViviFeatureMaps)
  # Weight decay reaches the exported conv kernels (one term per kernel), as for native ones.
  assert len(model.backbone.losses) == sum(
      "kernel" in w.name for w in model.backbone.trainable_weights) > 50


def test_retinanet_on_native_checkpoint(trained_run, coco_records):
  config = _experiment(coco_records, checkpoint=trained_run.model_dir)
  model = _train_and_predict(config)
  assert len(model.backbone.losses) > 50


def test_backbone_source_tells_exports_from_runs(export_dir, trained_run, tmp_path):
  assert model_garden.backbone_source(export_dir) == {"handle": export_dir}
  assert model_garden.backbone_source(trained_run.model_dir) == {
      "checkpoint": trained_run.model_dir}
  assert model_garden.backbone_source(trained_run.checkpoint) == {
      "checkpoint": trained_run.checkpoint}
  url = "https://www.kaggle.com/models/someone/vivi/TensorFlow2/resnet50/1"
  assert model_garden.backbone_source(url) == {"handle": url}
  with pytest.raises(FileNotFoundError, match="neither a vivi-export directory"):
    model_garden.backbone_source(str(tmp_path / "nothing"))


def test_registration_is_an_explicit_import():
  """`hub_export` alone leaves Model Garden unimported; `hub_export.registry_imports` registers."""
  import subprocess
  import sys
  code = ("import sys, hub_export, hub_export.exporter\n"
          "assert not [m for m in sys.modules if m.split('.')[0] == 'official'], 'official imported'\n"
          "import hub_export.registry_imports\n"
          "from official.core import exp_factory\n"
          "from official.vision.modeling.backbones import factory\n"
          "print(exp_factory.get_exp_config('retinanet_vivi_fpn_coco').task.model.backbone.type,\n"
          "      'vivi' in factory._REGISTERED_BACKBONE_CLS)\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.split() == ["vivi", "True"]
