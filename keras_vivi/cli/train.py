"""`vivi-train`: train a named experiment with `model.fit` on a `tf.distribute` strategy.

  vivi-train --experiment=vivi_objects --data=DIR --model_dir=DIR [--strategy=mirrored]
             [--config_file=small.yaml] [--params_override=train.steps=300,data.image_size=96]

As in Model Garden, the config is the experiment, then each `--config_file` (YAML
`{section: {field: value}}`, repeatable, in order), then `--params_override` (comma-separated
`section.field=value`, or a YAML mapping inline or in a file); `--data` is `data.path`. A killed
run restarted with the same flags resumes from its last checkpoint; a larger train.steps extends
it. A restart that changes anything else of the run's config.json (architecture, losses, data
shapes; only train.steps, train.keep_checkpoints, data.path and diagnostic.* may change) is
refused.
"""

from absl import app
from absl import flags
import yaml

from keras_vivi.cli import errors
from keras_vivi import configs
from keras_vivi import files

_EXPERIMENT = flags.DEFINE_enum("experiment", None, configs.list_experiments(),
                                "Named experiment (a row of the paper's tables).", required=True)
_DATA = flags.DEFINE_string("data", None, "Directory of prepared records (vivi-prepare --output).")
_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Checkpoints, config.json, run_info.json and "
                                 "TensorBoard logs.", required=True)
_STRATEGY = flags.DEFINE_enum("strategy", "default", configs.STRATEGIES,
                              "tf.distribute strategy; multi_worker reads TF_CONFIG.")
_TPU = flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu.")
_CONFIG_FILE = flags.DEFINE_multi_string(
    "config_file", [], "YAML file(s) of {section: {field: value}} applied over the experiment, "
    "in order (Model Garden's --config_file).")
_PARAMS_OVERRIDE = flags.DEFINE_string(
    "params_override", "", "Applied last: comma-separated section.field=value "
    "(train.steps=300,train.decay_steps=200,250,diagnostic.every_epochs=0), or a YAML mapping, "
    "inline or a file (Model Garden's --params_override).")
_EVERY = flags.DEFINE_integer("steps_per_epoch", 1000,
                              "Steps between checkpoints (one Keras epoch).", lower_bound=1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  import tensorflow as tf
  from keras_vivi.data import pipeline
  from keras_vivi.training import trainer
  for path in _CONFIG_FILE.value:
    if not files.filesystem().exists(path) or files.filesystem().isdir(path):
      raise app.UsageError(f"--config_file={path} is not a file: give a YAML file of "
                           "{section: {field: value}}.")
  try:
    config = configs.build_config(_EXPERIMENT.value, _DATA.value, _CONFIG_FILE.value,
                                  _PARAMS_OVERRIDE.value)
    if not config.data.path:
      raise app.UsageError("Give --data=DIR (the records of vivi-prepare --output).")
    if not config.data.inline_detection:
      pipeline.shard_files(config.data.path)
    trainer.check_restart(config, _MODEL_DIR.value)
  except (ValueError, TypeError, yaml.YAMLError, tf.errors.NotFoundError) as e:
    # Before any model is built or file written.
    raise app.UsageError(str(e)) from None
  strategy = trainer.build_strategy(_STRATEGY.value, _TPU.value)
  _, history = trainer.train(config, _MODEL_DIR.value, strategy,
                             steps_per_epoch=min(_EVERY.value, config.train.steps))
  final = {k: round(float(v[-1]), 4) for k, v in history.history.items()} if history.history else {}
  print(f"Trained {config.name} in {_MODEL_DIR.value}: {final}")


def run():
  errors.run(main)


if __name__ == "__main__":
  run()
