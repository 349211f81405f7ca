"""Restoring backbones from keras_vivi training runs: right weights, and loud failures."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from tensorflow.python.checkpoint import checkpoint as checkpoint_internal

from keras_vivi import configs
from keras_vivi import models
from keras_vivi.training import runs as checkpoint_lib
from tests.helpers.training import write_run


@pytest.fixture
def without_object_graph_assertion(monkeypatch):
  """Disables TF's matching assertion, leaving the NaN-sentinel check on its own."""
  monkeypatch.setattr(checkpoint_internal.CheckpointLoadStatus,
                      "assert_existing_objects_matched", lambda self: self)


@pytest.fixture(scope="module")
def bn_backbone():
  return models.build_backbone(configs.get_experiment("vivi_objects").model)


@pytest.fixture(scope="module")
def group_norm_run(tmp_path_factory):
  """A run whose backbone uses group norm: same conv shapes, no moving statistics."""
  base = configs.get_experiment("vivi_objects")
  config = dataclasses.replace(base, name="vivi_objects_gn",
                               model=dataclasses.replace(base.model, normalization="group"))
  model_dir = tmp_path_factory.mktemp("gn_run")
  return write_run(model_dir, config, models.build_backbone(config.model), steps=0)


@pytest.fixture(scope="module")
def head_only_checkpoint(tmp_path_factory):
  head = tf_keras.layers.Dense(4)
  head.build([None, 2048])
  prefix = str(tmp_path_factory.mktemp("head_only") / "ckpt")
  return tf.train.Checkpoint(model=tf.train.Checkpoint(head=head)).write(prefix)


def test_model_dir_restores_latest_checkpoint_exactly(trained_run, bn_backbone):
  backbone, config, path = checkpoint_lib.backbone_from_checkpoint(trained_run.model_dir)
  assert os.path.basename(path) == "ckpt-2" and config == trained_run.config
  for got, want in zip(backbone.variables, trained_run.backbone.variables):
    np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.name)
  # ckpt-1 holds the weights before the training step.
  checkpoint_lib.restore_backbone(bn_backbone, os.path.join(trained_run.model_dir, "ckpt-1"))
  moving = [i for i, v in enumerate(bn_backbone.variables) if "moving_mean" in v.name][0]
  assert not np.allclose(bn_backbone.variables[moving].numpy(),
                         trained_run.backbone.variables[moving].numpy())


def test_other_architecture_is_rejected(bn_backbone, group_norm_run):
  # Group norm has every conv and scale of batch norm but none of its moving statistics.
  with pytest.raises(ValueError, match=r"does not match the backbone: 98 of 270 .*moving_mean"):
    checkpoint_lib.restore_backbone(bn_backbone, group_norm_run)


def test_missing_backbone_is_rejected(bn_backbone, head_only_checkpoint):
  with pytest.raises(ValueError, match="does not match the backbone: 270 of 270"):
    checkpoint_lib.restore_backbone(bn_backbone, head_only_checkpoint)


@pytest.mark.parametrize("source", ["group_norm_run", "head_only_checkpoint"])
def test_sentinel_check_alone_catches_unrestored_variables(
    source, request, bn_backbone, without_object_graph_assertion):
  checkpoint = request.getfixturevalue(source)
  with pytest.raises(ValueError, match=r"left \d+ of 270 backbone variables unrestored"):
    checkpoint_lib.restore_backbone(bn_backbone, checkpoint)


def test_unrestored_variables_names_nan_variables():
  variables = [tf.Variable([1.0, 2.0], name="fine"), tf.Variable([0.0, np.nan], name="left")]
  assert checkpoint_lib.unrestored_variables(variables) == ["left:0"]


def test_checkpoint_without_config_needs_matching_experiment(trained_run, tmp_path):
  for name in os.listdir(trained_run.model_dir):
    if name.startswith("ckpt-2"):
      shutil.copy(os.path.join(trained_run.model_dir, name), tmp_path)
  prefix = str(tmp_path / "ckpt-2")
  with pytest.raises(ValueError, match="No config.json next to checkpoint .*--experiment"):
    checkpoint_lib.backbone_from_checkpoint(prefix)
  wider = dataclasses.replace(trained_run.config,
                              model=dataclasses.replace(trained_run.config.model, width=3))
  with open(tmp_path / "config.json", "w") as f:
    json.dump(configs.to_dict(trained_run.config), f)
  with pytest.raises(ValueError, match="describes model .*width=3"):
    checkpoint_lib.backbone_from_checkpoint(prefix, experiment=wider)


def test_find_checkpoint_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="No checkpoint in model_dir"):
    checkpoint_lib.find_checkpoint(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="neither a model_dir .* nor a checkpoint prefix"):
    checkpoint_lib.find_checkpoint(str(tmp_path / "ckpt-7"))


def test_exports_a_real_trainer_run(tmp_path):
  """`vivi-train`'s own checkpoint layout: `Checkpoint(model=VIVIModel, optimizer=…)`."""
  import numpy as np
  import tensorflow as tf
  import tensorflow_hub as hub

  import hub_export
  from keras_vivi.training import trainer
  from tests.helpers.training import dataset_fn_for, small_config

  config = small_config("vivi_objects", "train.steps=1")
  model, _ = trainer.train(config, str(tmp_path / "run"), steps_per_epoch=1,
                           dataset_fn=dataset_fn_for(config), verbose=0)
  hub_export.export_checkpoint(str(tmp_path / "run"), str(tmp_path / "export"))
  images = tf.random.stateless_uniform([2, 32, 32, 3], seed=(4, 2))
  np.testing.assert_allclose(hub.load(str(tmp_path / "export"))(images, training=False).numpy(),
                             model(images).numpy(), rtol=1e-5, atol=1e-5)
