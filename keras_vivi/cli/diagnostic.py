"""`vivi-diagnostic`: the object diagnostic of the paper's Table 2 for hub exports.

  vivi-diagnostic --hub=EXPORT_A[,EXPORT_B] --data=RECORDS_DIR --output=DIR [--image_size=224]
                  [--names=VIVI,Ours] [--videos_per_batch=8 --num_batches=50 | --every_object]
                  [--frames=training_sampler --shots_per_video=4 --frames_per_shot=8 |
                   --frames=every_stored_frame]

For the objects of the prepared records (`vivi-prepare --output`), is an object's nearest
neighbour (cosine similarity of the backbone's block-4 features at the box centre) an object of
the same detector class? By the paper's protocol, neighbours are sought within batches of 8
consecutive videos and the counts of 50 batches are summed; `--every_object` searches among every
object of the records (blockwise, features of all objects in memory). A video's frames are
those training samples from it (K shots × F frames, central crop, no flip or colour), or with
`--frames=every_stored_frame` all its stored frames. Reported over all other
objects and over objects of other shots only (on few, densely sampled videos the nearest
neighbour is otherwise mostly the same object a frame later).
With two or more exports, each later one is compared with the first by Fisher's exact test
(the paper: p < 0.001). Writes `diagnostic.json`, `diagnostic.md` and `diagnostic.png`; the
work is `keras_vivi.evaluation.object_comparison`'s.
"""

import os

from absl import app
from absl import flags

from keras_vivi import configs
from keras_vivi.cli import errors

_SAMPLER = configs.DataConfig()

_HUB = flags.DEFINE_list("hub", None, "Hub exports (vivi-export --export_dir, handles or zoo "
                         "preset names), baseline first.",
                         required=True)
_DATA = flags.DEFINE_string("data", None, "Directory (or glob) of prepared records.",
                            required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Directory for the diagnostic files.",
                              required=True)
_NAMES = flags.DEFINE_list("names", None, "Display names, one per export (default: basenames).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Frames are resized to this square size.",
                                   lower_bound=16)
_MIN_SCORE = flags.DEFINE_float("min_score", 0.05, "Detections below this score are ignored.",
                                lower_bound=0.0, upper_bound=1.0)
_MAX_OBJECTS = flags.DEFINE_integer("max_objects", 5, "Objects kept per frame (highest scores).",
                                    lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Frames per feature batch.", lower_bound=1)
_ALPHA = flags.DEFINE_float("alpha", 0.001, "Significance level of Fisher's test (the paper's).",
                            lower_bound=0.0, upper_bound=1.0)
_VIDEOS_PER_BATCH = flags.DEFINE_integer("videos_per_batch", 8, "Neighbours are sought among the "
                                         "objects of this many consecutive videos (the paper's).",
                                         lower_bound=1)
_NUM_BATCHES = flags.DEFINE_integer("num_batches", 50, "Batches of videos counted (the paper's).",
                                    lower_bound=1)
_FRAMES = flags.DEFINE_enum("frames", configs.TRAINING_SAMPLER, configs.FRAME_SOURCES,
                            "A video's frames: those the training sampler takes (K shots × F "
                            "frames, un-augmented), or every stored frame.")
_SHOTS = flags.DEFINE_integer("shots_per_video", _SAMPLER.shots_per_video,
                              "K of --frames=training_sampler.", lower_bound=1)
_FRAMES_PER_SHOT = flags.DEFINE_integer("frames_per_shot", _SAMPLER.frames_per_shot,
                                        "F of --frames=training_sampler.", lower_bound=1)
_EVERY_OBJECT = flags.DEFINE_bool("every_object", False, "Seek neighbours among every object of "
                                  "the records instead of within batches of videos.")

def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from keras_vivi.evaluation import object_comparison
  try:
    result = object_comparison.diagnose(
        _HUB.value, _DATA.value, _IMAGE_SIZE.value, _NAMES.value, _MIN_SCORE.value,
        _MAX_OBJECTS.value, _BATCH_SIZE.value, _ALPHA.value,
        videos_per_batch=None if _EVERY_OBJECT.value else _VIDEOS_PER_BATCH.value,
        num_batches=_NUM_BATCHES.value, frames=_FRAMES.value,
        sampler=configs.DataConfig(shots_per_video=_SHOTS.value,
                                   frames_per_shot=_FRAMES_PER_SHOT.value))
  except (FileNotFoundError, ValueError, OSError) as e:
    raise app.UsageError(str(e)) from e
  object_comparison.write(result, _OUTPUT.value)
  print(f"Frames: {object_comparison.frames_text(result)}")
  for name, m in result["models"].items():
    print(f"{name}: {100 * m['all']['fraction']:.1f} % of {m['all']['queries']} objects "
          f"(other shots only: {100 * m['other_shots']['fraction']:.1f} % of "
          f"{m['other_shots']['queries']})")
  print(object_comparison.chance_text(result))
  for name, test in result["tests"].items():
    said = {f: f"{test[f]['p']:.3g}" + (f", {test[f]['direction']}" if test[f]["direction"]
                                         else "") for f in ("all", "other_shots")}
    print(f"{name} vs {result['baseline']}: Fisher p = {said['all']} (other shots only: "
          f"{said['other_shots']})")
  print(f"Wrote {os.path.join(_OUTPUT.value, 'diagnostic.md')}")


def run():
  errors.run(main)


if __name__ == "__main__":
  run()
