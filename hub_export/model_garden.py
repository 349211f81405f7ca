"""TF Model Garden plug-ins: the 'vivi' backbone builder, its config and `retinanet_vivi_fpn_coco`.

Importing this module registers, with `official.vision`:
  - backbone builder 'vivi' (`build_vivi_backbone`): a keras_vivi ResNet v2 from a hub export
    (`handle`), from a keras_vivi training run (`checkpoint`), or freshly initialised
    (`random_init`, the from-scratch baseline);
  - config types `Backbone` (Model Garden's backbone `OneOfConfig` plus the `vivi` field),
    `RetinaNet` and `RetinaNetTask` using it (the task runs Model Garden's RetinaNet task);
  - experiment 'retinanet_vivi_fpn_coco': RetinaNet with FPN (levels 3-7) on COCO as in the
    paper (640×640, batch 256, learning rate 0.08, 60 epochs).
"""

import dataclasses
import math
import os

from absl import logging
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.core import task_factory
from official.modeling import hyperparams
from official.modeling import optimization
from official.vision.configs import backbones as backbones_cfg
from official.vision.configs import common
from official.vision.configs import decoders as decoders_cfg
from official.vision.configs import retinanet as retinanet_cfg
from official.vision.modeling.backbones import factory as backbone_factory
from official.vision.ops import preprocess_ops
from official.vision.tasks import retinanet as retinanet_task

from hub_export import exporter
from keras_vivi import configs
from keras_vivi import files
from keras_vivi import models
from keras_vivi.training import runs as checkpoint_lib

BACKBONE_TYPE = "vivi"
EXPERIMENT = "retinanet_vivi_fpn_coco"
INPUT_NORMALIZATIONS = ("mean_std", "unit")


@dataclasses.dataclass
class ViviBackbone(hyperparams.Config):
  """Where the backbone's weights come from: exactly one of `handle`, `checkpoint`, `random_init`.

  Attributes:
    handle: a directory written by vivi-export, or a TF-Hub handle of such an export.
    checkpoint: a keras_vivi training model_dir (latest checkpoint) or checkpoint prefix.
    random_init: no weights: the from-scratch baseline.
    experiment: keras_vivi experiment giving the architecture for `random_init` (default
      'vivi_objects'), or for a `checkpoint` without config.json.
    input_normalization: 'mean_std' when images arrive normalised by Model Garden's parsers
      (ImageNet mean and standard deviation; undone inside), 'unit' when already in [0, 1].
  """
  handle: str = ""
  checkpoint: str = ""
  random_init: bool = False
  experiment: str = ""
  input_normalization: str = "mean_std"


@dataclasses.dataclass
class Backbone(backbones_cfg.Backbone):
  """Model Garden's backbone `OneOfConfig` with the 'vivi' choice (field name = builder key)."""
  vivi: ViviBackbone = dataclasses.field(default_factory=ViviBackbone)


@dataclasses.dataclass
class RetinaNet(retinanet_cfg.RetinaNet):
  backbone: Backbone = dataclasses.field(
      default_factory=lambda: Backbone(type=BACKBONE_TYPE, vivi=ViviBackbone()))


@dataclasses.dataclass
class RetinaNetTask(retinanet_cfg.RetinaNetTask):
  model: RetinaNet = dataclasses.field(default_factory=RetinaNet)


# The task itself is Model Garden's; only the config class is ours.
task_factory.register_task_cls(RetinaNetTask)(retinanet_task.RetinaNetTask)


class ViviFeatureMaps(tf_keras.Model):
  """Model Garden backbone: images → `{'2','3','4','5'}` feature maps at strides 4..32.

  `features` maps images in [0, 1] to a dict holding at least those levels (a keras_vivi
  `ResNetV2`, or a `hub.KerasLayer` of an export's `feature_maps`). Only the levels leave
  the model: Model Garden's FPN takes `max(output_specs)` as the top backbone level.
  """

  def __init__(self, features, input_specs, input_normalization="mean_std", **kwargs):
    if input_normalization not in INPUT_NORMALIZATIONS:
      raise ValueError(f"input_normalization must be one of {INPUT_NORMALIZATIONS}, got "
                       f"{input_normalization!r}.")
    inputs = tf_keras.Input(shape=input_specs.shape[1:], name="images")
    # float32 whatever the data pipeline's dtype: the exported functions take float32.
    if input_normalization == "mean_std":
      x = tf_keras.layers.Rescaling(preprocess_ops.STDDEV_NORM, preprocess_ops.MEAN_NORM,
                                    dtype="float32", name="to_unit_range")(inputs)
    else:
      x = tf_keras.layers.Activation("linear", dtype="float32", name="to_float32")(inputs)
    outputs = features(x)
    levels = {k: tf_keras.layers.Activation("linear", dtype="float32", name=f"level_{k}")(
        outputs[k]) for k in exporter.LEVELS}
    super().__init__(inputs=inputs, outputs=levels, **kwargs)
    self._output_specs = {k: v.get_shape() for k, v in levels.items()}

  @property
  def output_specs(self) -> dict[str, tf.TensorShape]:
    """`{str(level): TensorShape}` with batch dimension, levels 2..5."""
    return self._output_specs


def _hub_features(handle, l2_regularizer):
  """A trainable `hub.KerasLayer` of the export's `feature_maps`, with weight decay on kernels."""
  loaded = hub.load(handle)
  if not hasattr(loaded, "feature_maps"):
    raise ValueError(f"Hub module {handle!r} has no `feature_maps`: expected an export written "
                     "by vivi-export (hub_export.export_backbone).")
  layer = hub.KerasLayer(loaded.feature_maps, trainable=True, dtype="float32",
                         name="vivi_hub_features")
  if l2_regularizer is not None:
    # The export carries no regularizer, so the fine-tuning one goes on the conv kernels,
    # as Model Garden's own backbones do.
    for weight in layer.trainable_weights:
      if "kernel" in weight.name:
        layer.add_loss(lambda w=weight: l2_regularizer(w) if layer.trainable else 0.0)
  return layer


def _native_features(vivi_config, l2_regularizer):
  """A keras_vivi `ResNetV2` restored from a run, or fresh for `random_init`."""
  if vivi_config.checkpoint:
    checkpoint_path, experiment = checkpoint_lib.resolve_run(vivi_config.checkpoint,
                                                             vivi_config.experiment)
  else:
    checkpoint_path = None
    experiment = configs.get_experiment(vivi_config.experiment or "vivi_objects")
  # Plus the fine-tuning weight decay on conv kernels.
  backbone = models.build_backbone(experiment.model, kernel_regularizer=l2_regularizer,
                                   name="vivi_resnet_v2")
  if checkpoint_path:
    checkpoint_lib.restore_backbone(backbone, checkpoint_path)
    logging.info("vivi backbone restored from %s", checkpoint_path)
  else:
    logging.warning("vivi backbone randomly initialised (%s architecture).", experiment.name)
  return backbone


@backbone_factory.register_backbone_builder(BACKBONE_TYPE)
def build_vivi_backbone(input_specs, backbone_config, norm_activation_config=None,
                        l2_regularizer=None, **unused_kwargs) -> "ViviFeatureMaps":
  """Model Garden builder for `backbone.type='vivi'`; returns a `ViviFeatureMaps`.

  The backbone keeps its own normalisation settings (those it was trained with);
  `norm_activation_config` applies to the decoder and head only.
  """
  if backbone_config.type != BACKBONE_TYPE:
    raise ValueError(f"build_vivi_backbone expects backbone.type={BACKBONE_TYPE!r}, got "
                     f"{backbone_config.type!r}.")
  vivi_config = backbone_config.get()
  sources = [name for name, given in (("handle", vivi_config.handle),
                                      ("checkpoint", vivi_config.checkpoint),
                                      ("random_init", vivi_config.random_init)) if given]
  if len(sources) != 1:
    raise ValueError(
        "backbone.vivi needs exactly one of handle (a vivi-export directory or hub handle), "
        f"checkpoint (a keras_vivi model_dir or checkpoint) or random_init=True; got {sources}.")
  if vivi_config.handle:
    features = _hub_features(vivi_config.handle, l2_regularizer)
  else:
    features = _native_features(vivi_config, l2_regularizer)
  return ViviFeatureMaps(features, input_specs, vivi_config.input_normalization,
                         name="vivi_backbone")


def backbone_source(path) -> dict[str, str]:
  """`backbone.vivi` overrides for `path`: an export (handle) or a training run (checkpoint)."""
  if path.startswith(files.HTTP_SCHEMES):
    return {"handle": path}
  if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
    return {"handle": path}
  if tf.io.gfile.isdir(path) or tf.io.gfile.exists(path + ".index"):
    return {"checkpoint": path}
  raise FileNotFoundError(f"Backbone source {path!r} is neither a vivi-export directory, a "
                          "keras_vivi model_dir or checkpoint, nor a hub handle URL.")


def _stepwise_schedule(base_learning_rate, batch_size, steps_per_epoch, epochs):
  """Learning rate ×0.1 at 80 % and 93 % of training (Model Garden's RetinaNet proportions)."""
  rate = base_learning_rate * batch_size / 256
  boundaries = [math.ceil(f * epochs) * steps_per_epoch for f in (0.8, 0.93)]
  return {"type": "stepwise",
          "stepwise": {"boundaries": boundaries, "values": [rate, rate / 10, rate / 100]}}


@exp_factory.register_config_factory(EXPERIMENT)
def retinanet_vivi_fpn_coco() -> cfg.ExperimentConfig:
  """COCO RetinaNet (FPN, levels 3-7) on a keras_vivi backbone, as in the paper (§4.3).

  Images rescaled and randomly cropped to 640×640, 60 epochs, batch 256, learning rate 0.08
  (SGD momentum 0.9, 500 warm-up steps, ×0.1 at epochs 48 and 56). Set
  `task.model.backbone.vivi.handle` (an export) or `.checkpoint` (a training run).
  """
  batch_size, eval_batch_size, epochs = 256, 8, 60
  steps_per_epoch = retinanet_cfg.COCO_TRAIN_EXAMPLES // batch_size
  coco = retinanet_cfg.COCO_INPUT_PATH_BASE
  return cfg.ExperimentConfig(
      task=RetinaNetTask(
          annotation_file=f"{coco}/instances_val2017.json",
          model=RetinaNet(
              num_classes=91,
              input_size=[640, 640, 3],
              min_level=3,
              max_level=7,
              backbone=Backbone(type=BACKBONE_TYPE, vivi=ViviBackbone()),
              decoder=decoders_cfg.Decoder(type="fpn", fpn=decoders_cfg.FPN()),
              norm_activation=common.NormActivation(use_sync_bn=False)),
          losses=retinanet_cfg.Losses(l2_weight_decay=1e-4),
          train_data=retinanet_cfg.DataConfig(
              input_path=f"{coco}/train*", is_training=True, global_batch_size=batch_size,
              dtype="float32",
              parser=retinanet_cfg.Parser(aug_rand_hflip=True, aug_scale_min=0.8,
                                          aug_scale_max=1.2)),
          validation_data=retinanet_cfg.DataConfig(
              input_path=f"{coco}/val*", is_training=False, global_batch_size=eval_batch_size,
              dtype="float32")),
      trainer=cfg.TrainerConfig(
          train_steps=epochs * steps_per_epoch,
          validation_steps=retinanet_cfg.COCO_VAL_EXAMPLES // eval_batch_size,
          validation_interval=steps_per_epoch,
          steps_per_loop=steps_per_epoch,
          summary_interval=steps_per_epoch,
          checkpoint_interval=steps_per_epoch,
          optimizer_config=optimization.OptimizationConfig({
              "optimizer": {"type": "sgd", "sgd": {"momentum": 0.9}},
              "learning_rate": _stepwise_schedule(0.08, batch_size, steps_per_epoch, epochs),
              "warmup": {"type": "linear",
                         "linear": {"warmup_steps": 500, "warmup_learning_rate": 0.0067}},
          })),
      restrictions=["task.train_data.is_training != None",
                    "task.validation_data.is_training != None"])
