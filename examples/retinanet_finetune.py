"""Fine-tune RetinaNet (FPN, levels 3-7) on COCO with a keras_vivi backbone, via Model Garden.

The paper's detection protocol (§4.3) is the registered experiment `retinanet_vivi_fpn_coco`:
640×640 random-scale crops, batch 256, learning rate 0.08, 60 epochs. This script is Model
Garden's training driver with that experiment as default and two shortcuts:

  python examples/retinanet_finetune.py --mode=train_and_eval --model_dir=runs/retinanet \
      --backbone=exports/vivi_objects --coco_dir=data/coco

  --backbone   a vivi-export directory (or hub handle) or a keras_vivi training run / checkpoint
  --coco_dir   COCO TFRecords as written by Model Garden's create_coco_tf_record
               (train-*, val-*) and instances_val2017.json

Everything else is Model Garden's usual flags: --params_override="task.train_data.
global_batch_size=64,runtime.distribution_strategy=mirrored", --config_file=..., --mode=eval,
--experiment=...; an explicit --params_override wins over the shortcuts.
"""

import os

from absl import app
from absl import flags
from absl import logging

from hub_export import model_garden
import hub_export.registry_imports  # noqa: F401  (registers the 'vivi' backbone and the experiment)
from official.common import distribute_utils
from official.common import flags as tfm_flags
from official.core import task_factory
from official.core import train_lib
from official.core import train_utils
from official.modeling import performance

_BACKBONE = flags.DEFINE_string(
    "backbone", None, "A vivi-export directory or hub handle, or a keras_vivi training run "
    "(model_dir) or checkpoint; sets task.model.backbone.vivi.handle or .checkpoint.")
_COCO_DIR = flags.DEFINE_string(
    "coco_dir", None, "Directory with COCO TFRecords train-* and val-* and "
    "instances_val2017.json; sets the input paths and the annotation file.")


def shortcut_overrides(backbone=None, coco_dir=None):
  """The `ExperimentConfig.override` dict for --backbone and --coco_dir."""
  task = {}
  if backbone:
    task["model"] = {"backbone": {"vivi": model_garden.backbone_source(backbone)}}
  if coco_dir:
    task["train_data"] = {"input_path": os.path.join(coco_dir, "train*")}
    task["validation_data"] = {"input_path": os.path.join(coco_dir, "val*")}
    task["annotation_file"] = os.path.join(coco_dir, "instances_val2017.json")
  return {"task": task} if task else {}


class _Parser(train_utils.ExperimentParser):
  """Model Garden's flag parsing; the shortcuts go under --config_file and --params_override."""

  def base_experiment(self):
    params = super().base_experiment()
    params.override(shortcut_overrides(_BACKBONE.value, _COCO_DIR.value), is_strict=True)
    return params


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  flags_obj = flags.FLAGS
  params = _Parser(flags_obj).parse()
  params.validate()
  params.lock()
  logging.info("Experiment:\n%s", params.as_dict())

  model_dir = flags_obj.model_dir
  if "train" in flags_obj.mode:
    train_utils.serialize_config(params, model_dir)
  if params.runtime.mixed_precision_dtype:
    performance.set_mixed_precision_policy(params.runtime.mixed_precision_dtype)
  strategy = distribute_utils.get_distribution_strategy(
      distribution_strategy=params.runtime.distribution_strategy,
      all_reduce_alg=params.runtime.all_reduce_alg, num_gpus=params.runtime.num_gpus,
      tpu_address=params.runtime.tpu)
  with strategy.scope():
    task = task_factory.get_task(params.task, logging_dir=model_dir)
  train_lib.run_experiment(distribution_strategy=strategy, task=task, mode=flags_obj.mode,
                           params=params, model_dir=model_dir)


if __name__ == "__main__":
  tfm_flags.define_flags()
  flags.FLAGS.set_default("experiment", model_garden.EXPERIMENT)
  flags.mark_flags_as_required(["mode", "model_dir"])
  app.run(main)
