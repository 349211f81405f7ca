"""`vivi-vtab`: the VTAB-1k protocol on an exported hub module.

  vivi-vtab --hub=EXPORT_DIR_OR_HANDLE --tasks=all --output=DIR [--data_dir=TFDS_DIR]
            [--image_size=224] [--sweep=0.1:10000:3000,0.01:2500:750] [--steps_scale=1.0]
            [--seed=0]

--tasks: 'all' (the 19 tasks), 'natural' / 'specialized' / 'structured', or NAME,NAME (local
tasks 'digits', 'lfw_subset' and 'folder:DIR' need no tfds data). Results go to
DIR/results.{json,csv,md,png}, updated after every task; a re-run with the same flags skips
finished tasks. Tasks whose tfds data is not prepared are listed with the command to prepare it.
Repetitions of the protocol (for vivi-compare) each take their own --seed and --output.
"""

from absl import app
from absl import flags

from keras_vivi.cli import errors
from keras_vivi.evaluation.vtab import config as vtab_config

_DEFAULT = vtab_config.VtabConfig()

_HUB = flags.DEFINE_string("hub", None, "Hub module: SavedModel directory (vivi-export), TF-Hub "
                           "handle, archive or zoo preset name; obj(images [B,H,W,3] in [0,1], "
                           "training) -> [B, D].",
                           required=True)
_TASKS = flags.DEFINE_string("tasks", "all", "all | natural | specialized | structured | "
                             "NAME,NAME (e.g. cifar100,dtd or digits).")
_OUTPUT = flags.DEFINE_string("output", None, "Results directory.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "tfds data directory (default: tfds's).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", _DEFAULT.image_size, "Input resolution.",
                                   lower_bound=16)
_SWEEP = flags.DEFINE_string("sweep", None, "LR:STEPS:DECAY_EVERY,... (default: the VTAB-1k "
                             "sweep 0.1 and 0.01 × 10000:3000 and 2500:750).")
_STEPS_SCALE = flags.DEFINE_float("steps_scale", 1.0, "Multiplies the sweep's steps and decay "
                                  "intervals (smoke runs).")
_BATCH = flags.DEFINE_integer("batch_size", _DEFAULT.batch_size, "Training batch size.",
                              lower_bound=1)
_EVAL_BATCH = flags.DEFINE_integer("eval_batch_size", _DEFAULT.eval_batch_size,
                                   "Evaluation batch size.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", _DEFAULT.seed, "Seed of every fine-tuning run (shuffling, "
                             "initialisation); give each repetition of the protocol its own.",
                             lower_bound=0)
_VERBOSE = flags.DEFINE_integer("keras_verbose", 1, "Keras progress of each fine-tuning run "
                                "(0 silent, 1 bar, 2 one line).", lower_bound=0, upper_bound=2)
errors.positive_finite(_STEPS_SCALE)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from keras_vivi.evaluation.vtab import run as vtab
  try:
    names = vtab.resolve_tasks(_TASKS.value)
    sweep = vtab.parse_sweep(_SWEEP.value) if _SWEEP.value else _DEFAULT.sweep
  except ValueError as error:
    raise app.UsageError(str(error)) from None
  config = vtab.VtabConfig(sweep=sweep, steps_scale=_STEPS_SCALE.value, batch_size=_BATCH.value,
                           eval_batch_size=_EVAL_BATCH.value, image_size=_IMAGE_SIZE.value,
                           seed=_SEED.value)
  results = vtab.run_vtab(_HUB.value, names, _OUTPUT.value, config, data_dir=_DATA_DIR.value,
                          verbose=_VERBOSE.value)
  for name, task in results["tasks"].items():
    print(f"{name}: test accuracy {100 * task['test_accuracy']:.1f}%")
  means = {k: round(100 * v, 1) for k, v in results["means"].items() if v is not None}
  print(f"Means (%): {means}")
  for name, reason in results["missing"].items():
    print(f"Missing {name}: {reason}")
  print(f"Wrote {_OUTPUT.value}/results.{{json,csv,md,png}}")


def run():
  errors.run(main)


if __name__ == "__main__":
  run()
