"""`vivi-export`: a keras_vivi backbone as a TF-Hub SavedModel.

  vivi-export --model_dir=RUN_DIR --export_dir=DIR             # latest checkpoint of a run
  vivi-export --checkpoint=RUN_DIR/ckpt-1000 --export_dir=DIR   # one checkpoint
  vivi-export --experiment=NAME --init=random --export_dir=DIR  # from-scratch baseline
"""

from absl import app
from absl import flags
from absl import logging

import hub_export
from hub_export import exporter

_MODEL_DIR = flags.DEFINE_string("model_dir", None,
                                 "A keras_vivi training run: its latest checkpoint is exported.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A checkpoint prefix (e.g. RUN/ckpt-1000).")
_EXPERIMENT = flags.DEFINE_string(
    "experiment", None, "Registered experiment giving the architecture: required with "
    "--init=random, and for checkpoints without a config.json next to them.")
_INIT = flags.DEFINE_enum("init", "checkpoint", ["checkpoint", "random"],
                          "'random' exports a freshly initialised backbone of --experiment.")
_SEED = flags.DEFINE_integer("seed", 0, "Initialisation seed for --init=random.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Output directory of the SavedModel.",
                                  required=True)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a non-empty --export_dir.")


def export(model_dir=None, checkpoint=None, experiment=None, init="checkpoint", seed=0,
           export_dir=None, overwrite=False):
  """Validates the flag combination and exports; returns the metadata of the export."""
  if init == "random":
    if model_dir or checkpoint:
      raise app.UsageError("--init=random takes no --model_dir or --checkpoint.")
    if not experiment:
      raise app.UsageError("--init=random needs --experiment=NAME for the architecture.")
    exporter.export_random_init(experiment, export_dir, seed=seed, overwrite=overwrite)
  else:
    if bool(model_dir) == bool(checkpoint):
      raise app.UsageError("Give exactly one of --model_dir or --checkpoint (or --experiment "
                           f"with --init=random); got model_dir={model_dir!r}, "
                           f"checkpoint={checkpoint!r}.")
    exporter.export_checkpoint(model_dir or checkpoint, export_dir, experiment=experiment,
                               overwrite=overwrite)
  return hub_export.read_metadata(export_dir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    # SavedModel writing logs every captured variable at INFO.
    logging.set_verbosity(logging.WARNING)
  info = export(_MODEL_DIR.value, _CHECKPOINT.value, _EXPERIMENT.value, _INIT.value,
                _SEED.value, _EXPORT_DIR.value, _OVERWRITE.value)
  source = info["source"]
  origin = source.get("checkpoint") or f"random init (seed {source.get('seed')})"
  print(f"Exported the {source['experiment']} backbone ({origin}, {info['output']['dim']}-d "
        f"features) to {_EXPORT_DIR.value}.\n"
        f"Use: hub.KerasLayer({_EXPORT_DIR.value!r}, trainable=True)")


def run():
  app.run(main)


if __name__ == "__main__":
  run()
