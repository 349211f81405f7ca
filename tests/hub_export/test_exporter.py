"""The export's contract (DESIGN.md §4) and the exporter's entry points."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras
from absl import app

import hub_export
from hub_export import cli
from keras_vivi import configs
from keras_vivi import models
from tests.helpers.images import ramp_images


def test_layout_metadata_and_readme(export_dir, trained_run):
  files = set(os.listdir(export_dir))
  assert {"saved_model.pb", "variables", "README.md", "vivi_export.json"} <= files
  info = hub_export.read_metadata(export_dir)
  assert info["input"]["range"] == [0.0, 1.0] and info["input"]["dtype"] == "float32"
  assert info["output"]["dim"] == 2048
  assert info["output"]["feature_maps"]["3"] == {"stride": 8, "channels": 512}
  assert info["architecture"]["depth"] == 50 and info["architecture"]["normalization"] == "batch"
  assert info["source"] == {"experiment": "vivi_objects", "init": "checkpoint",
                            "checkpoint": "ckpt-2"}
  assert configs.from_dict(info["experiment_config"]) == trained_run.config
  assert info["trained_image_size"] == 224 and "moving averages" in info["batch_norm"]
  readme = open(os.path.join(export_dir, "README.md")).read()
  assert readme.startswith("# keras_vivi backbone (50-layer ResNet v2, width 1, batch norm, "
                           "2048-d features)")
  assert "[0, 1]" in readme and "[batch, 2048]" in readme and "hub.KerasLayer" in readme
  assert "checkpoint: ckpt-2" in readme and "batch-norm moving averages" in readme


def test_signatures(export_dir):
  loaded = tf.saved_model.load(export_dir)
  assert sorted(loaded.signatures) == ["feature_maps", "serving_default"]
  for name in loaded.signatures:
    args, kwargs = loaded.signatures[name].structured_input_signature
    assert args == () and kwargs["images"].shape.as_list() == [None, None, None, 3]
  serving = loaded.signatures["serving_default"].structured_outputs
  assert list(serving) == ["default"] and serving["default"].shape.as_list() == [None, 2048]
  maps = loaded.signatures["feature_maps"].structured_outputs
  assert {k: v.shape.as_list() for k, v in maps.items()} == {
      "2": [None, None, None, 256], "3": [None, None, None, 512],
      "4": [None, None, None, 1024], "5": [None, None, None, 2048]}


@pytest.mark.parametrize("height,width", [(37, 53), (96, 64)])
def test_any_image_size_matches_native(export_dir, trained_run, height, width):
  loaded = hub.load(export_dir)
  images = ramp_images(2, height, width)
  want = trained_run.backbone(images, training=False)
  outputs = {"default": loaded(images), **loaded.feature_maps(images),
             "signature": loaded.signatures["serving_default"](images=images)["default"]}
  for key, got in outputs.items():
    reference = want["pre_logits" if key in ("default", "signature") else key].numpy()
    if key in "2345":
      stride = 2 ** int(key)
      assert got.shape[1:3] == (math.ceil(height / stride), math.ceil(width / stride))
    np.testing.assert_allclose(got.numpy(), reference, rtol=0,
                               atol=1e-5 * max(1.0, np.abs(reference).max()), err_msg=key)


def _tiny_backbone(kernel_regularizer):
  """A small stand-in with ResNetV2's output structure (levels at strides 4..32)."""
  inputs = tf_keras.Input([None, None, 3])
  x, outputs = inputs, {}
  for level, strides in zip("2345", (4, 2, 2, 2)):
    x = tf_keras.layers.Conv2D(8, 3, strides=strides, padding="same",
                               kernel_regularizer=kernel_regularizer)(x)
    x = tf_keras.layers.BatchNormalization()(x)
    outputs[level] = x
  outputs["pre_logits"] = tf_keras.layers.GlobalAveragePooling2D()(x)
  return tf_keras.Model(inputs, outputs)


def test_regularization_losses_follow_the_weights(tmp_path):
  model = _tiny_backbone(tf_keras.regularizers.l2(1e-2))
  path = hub_export.export_backbone(model, str(tmp_path / "export"))
  loaded = hub.load(path)
  assert len(loaded.regularization_losses) == 1
  np.testing.assert_allclose(loaded.regularization_losses[0]().numpy(),
                             tf.add_n(model.losses).numpy(), rtol=1e-6)
  layer = hub.KerasLayer(loaded, trainable=True)
  assert len(layer.losses) == 1
  before = layer.losses[0].numpy()
  kernel = next(v for v in loaded.trainable_variables if "kernel" in v.name)
  kernel.assign(kernel * 2.0)
  assert layer.losses[0].numpy() > before
  # Without regularizers the list is there and empty.
  plain = hub.load(hub_export.export_backbone(_tiny_backbone(None), str(tmp_path / "plain")))
  assert list(plain.regularization_losses) == []


def test_export_refuses_wrong_models_and_non_empty_directories(tmp_path):
  inputs = tf_keras.Input([8, 8, 3])
  with pytest.raises(ValueError, match=r"returning a dict with \['2', '3', '4', '5', "
                                       r"'pre_logits'\].*got outputs KerasTensor"):
    hub_export.export_backbone(tf_keras.Model(inputs, inputs), str(tmp_path / "a"))
  with pytest.raises(TypeError, match="tf_keras.Model .* got str"):
    hub_export.export_backbone("resnet", str(tmp_path / "b"))
  half = tf_keras.layers.Dense(4, dtype="mixed_float16")(inputs)
  outputs = {k: half for k in ("2", "3", "4", "5", "pre_logits")}
  with pytest.raises(ValueError, match=r"float32 model, got .*float16"):
    hub_export.export_backbone(tf_keras.Model(inputs, outputs), str(tmp_path / "c"))
  (tmp_path / "d").mkdir()
  (tmp_path / "d" / "keep.txt").write_text("x")
  with pytest.raises(FileExistsError, match="is not empty.*overwrite"):
    hub_export.export_backbone(_tiny_backbone(None), str(tmp_path / "d"))


def test_cli_random_init_export(tmp_path):
  """The from-scratch baseline: same seed, same weights as a backbone built with that seed."""
  path = str(tmp_path / "random")
  info = cli.export(experiment="vivi", init="random", seed=3, export_dir=path,
                    params_override="model.depth=14")
  assert info["source"] == {"experiment": "vivi", "init": "random", "seed": 3}
  assert info["experiment_config"]["model"]["depth"] == 14
  tf_keras.utils.set_random_seed(3)
  reference = models.build_backbone(
      configs.apply_overrides(configs.get_experiment("vivi"), ["model.depth=14"]).model)
  images = ramp_images(1, 32)
  np.testing.assert_allclose(hub.load(path)(images).numpy(),
                             reference(images)["pre_logits"].numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs,message", [
    (dict(model_dir="a", checkpoint="b"), "exactly one of --model_dir or --checkpoint"),
    (dict(), "exactly one of --model_dir or --checkpoint"),
    (dict(init="random"), "--init=random needs --experiment"),
    (dict(init="random", experiment="vivi", model_dir="a"), "takes no --model_dir"),
    (dict(init="random", experiment="vivi", params_override="model.depht=14"), "depht"),
    (dict(model_dir="a", params_override="model.depth=14"), "applies to --init=random only"),
])
def test_cli_flag_combinations(kwargs, message, tmp_path):
  with pytest.raises(app.UsageError, match=message):
    cli.export(export_dir=str(tmp_path / "x"), **kwargs)
