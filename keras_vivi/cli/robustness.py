"""`vivi-robustness`: the paper's robustness study (Table 5, shape fraction) for one model.

  vivi-robustness --classifier=DIR [--hub=EXPORT | --cotrain_run=MODEL_DIR] --datasets=all
                  --output=OUT [--data_dir=TFDS_DIR] [--data_root=RELEASES_DIR]

--classifier is an ImageNet classifier directory. When it holds none yet, it is made first:
from --hub (an export, hub handle or preset) by fine-tuning on tfds imagenet2012 (--mode=linear:
a linear probe; recipe flags below, defaults in `robustness.config.ImageNetRecipe`), or from
--cotrain_run (a co-training run's own supervised head). --datasets: 'all' or NAME,NAME of
imagenet, imagenet_a, imagenet_c, imagenet_v2, objectnet, imagenet_vid_robust, ytbb_robust,
shape_bias. Sets come from tfds, or from their release folders under --data_root (or
--folders=NAME=DIR,...); missing ones are listed with how to get them and the rest still run.
OUT/results.{json,csv,md,png} and OUT/table5.md are rewritten after every dataset; a re-run with
the same flags skips finished work.
"""

from absl import app
from absl import flags

from keras_vivi import configs
from keras_vivi.cli import errors
from keras_vivi.evaluation.robustness import config as robustness_config

_RECIPE = robustness_config.ImageNetRecipe()

_CLASSIFIER = flags.DEFINE_string("classifier", None, "ImageNet classifier directory (made "
                                  "from --hub or --cotrain_run when absent).", required=True)
_HUB = flags.DEFINE_string("hub", None, "Export / hub handle / preset to fine-tune on ImageNet "
                           "when --classifier does not exist yet.")
_COTRAIN_RUN = flags.DEFINE_string("cotrain_run", None, "Co-training run (model_dir) whose "
                                   "supervised head is the classifier.")
_DATASETS = flags.DEFINE_string("datasets", "all", "all | NAME,NAME of the datasets named in "
                                "the description above (imagenet, imagenet_a, ...).")
_OUTPUT = flags.DEFINE_string("output", None, "Results directory.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "tfds data directory (default: tfds's).")
_DATA_ROOT = flags.DEFINE_string("data_root", None, "Directory holding release folders "
                                 "(objectnet-1.0, imagenet-a, ...), read instead of tfds.")
_FOLDERS = flags.DEFINE_list("folders", [], "NAME=DIR,...: a dataset's release folder.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", _RECIPE.image_size, "Input resolution of the "
                                   "classifier made from --hub or --cotrain_run (evaluation "
                                   "uses the classifier's own).", lower_bound=16)
_EVAL_BATCH = flags.DEFINE_integer("eval_batch_size", 64, "Evaluation batch size.", lower_bound=1)
_MODE = flags.DEFINE_enum("mode", _RECIPE.mode, ["finetune", "linear"], "With --hub: fine-tune "
                          "the module and head, or train a linear probe.")
_STEPS = flags.DEFINE_integer("steps", _RECIPE.steps, "With --hub: SGD steps on ImageNet.",
                              lower_bound=1)
_BATCH = flags.DEFINE_integer("batch_size", _RECIPE.batch_size, "With --hub: training batch.",
                              lower_bound=1)
_LR = flags.DEFINE_float("learning_rate", _RECIPE.learning_rate, "With --hub: initial rate.")
_DECAY = flags.DEFINE_integer("decay_every", _RECIPE.decay_every, "With --hub: ×0.1 every N "
                              "steps.", lower_bound=1)
_WARMUP = flags.DEFINE_integer("warmup_steps", _RECIPE.warmup_steps, "With --hub: warm-up.",
                               lower_bound=0)
_VERBOSE = flags.DEFINE_integer("keras_verbose", 1, "Keras progress of the fine-tuning.",
                                lower_bound=0, upper_bound=2)
_STRATEGY = flags.DEFINE_enum("strategy", "default", configs.STRATEGIES, "With --hub: "
                              "tf.distribute strategy of the fine-tuning.")
_TPU = flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu.")

errors.positive_finite(_LR)

def _folders(items):
  from keras_vivi.evaluation.robustness import data as robustness_data
  folders = {}
  for item in items:
    name, sep, path = item.partition("=")
    if not sep or not path:
      raise ValueError(f"--folders item {item!r} is not NAME=DIR.")
    robustness_data.get_dataset(name)
    folders[name] = path
  return folders


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _HUB.value and _COTRAIN_RUN.value:
    raise app.UsageError("Give --hub or --cotrain_run, not both.")
  from keras_vivi.evaluation.robustness import classifier as classifier_lib
  from keras_vivi.evaluation.robustness import data as robustness_data
  from keras_vivi.evaluation.robustness import suite as robustness_suite
  from keras_vivi.training import trainer
  try:
    names = robustness_data.resolve_datasets(_DATASETS.value)
    folders = _folders(_FOLDERS.value)
    if _HUB.value:
      recipe = classifier_lib.ImageNetRecipe(
          mode=_MODE.value, steps=_STEPS.value, batch_size=_BATCH.value,
          learning_rate=_LR.value, decay_every=_DECAY.value, warmup_steps=_WARMUP.value,
          image_size=_IMAGE_SIZE.value)
      classifier_lib.train_imagenet_classifier(
          _HUB.value, _CLASSIFIER.value, recipe, data_dir=_DATA_DIR.value,
          verbose=_VERBOSE.value, strategy=trainer.build_strategy(_STRATEGY.value, _TPU.value))
    elif _COTRAIN_RUN.value:
      classifier_lib.cotrain_classifier(_COTRAIN_RUN.value, _CLASSIFIER.value,
                                        image_size=_IMAGE_SIZE.value)
    config = robustness_suite.RobustnessConfig(batch_size=_EVAL_BATCH.value)
    results = robustness_suite.run_robustness(
        _CLASSIFIER.value, names, _OUTPUT.value, config, data_dir=_DATA_DIR.value,
        data_root=_DATA_ROOT.value, folders=folders)
  except (ValueError, FileNotFoundError) as error:
    raise app.UsageError(str(error)) from None
  for heading, value in robustness_suite.table5_cells(results).items():
    if value is not None:
      print(f"{heading}: {100 * value:.1f}")
  for name, entry in results["datasets"].items():
    if entry.get("skipped_classes"):
      print(f"Skipped in {name}: {len(entry['skipped_classes'])} class(es) without ImageNet "
            f"classes ({'; '.join(entry['skipped_classes'].values())}), "
            f"{entry['skipped_class_anchors']} pm-set(s) left out")
  for name, how in results["missing"].items():
    print(f"Missing {name}: {how}")
  print(f"Wrote {_OUTPUT.value}/results.{{json,csv,md,png}} and table5.md")


def run():
  errors.run(main)


if __name__ == "__main__":
  run()
