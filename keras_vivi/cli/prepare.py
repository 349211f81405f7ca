"""`vivi-prepare`: videos → shots, 1 Hz frames and detections, as sharded TFRecords.

  vivi-prepare (--videos=DIR_OR_GLOB | --videos_list=FILE) --output=DIR [--detector=SPEC] [--fps=1] [--workers=2]
               [--time_limit=SECONDS] [--detector_package=gs://…/objectron.tgz]
  vivi-prepare ... --runner=DataflowRunner --beam_options="--project=P --region=R ..."
"""

import shlex

from absl import app
from absl import flags

from keras_vivi.cli import errors
from keras_vivi.data import video

_VIDEOS = flags.DEFINE_string(
    "videos", None, "Directory of videos (recursive) or a glob ('**' spans folders), on any "
    "filesystem tf.io.gfile reaches (gs:// too).")
_VIDEOS_LIST = flags.DEFINE_string(
    "videos_list", None, "A text file listing the videos, one path a line (instead of --videos, "
    "for more videos than a glob should list).")
_MAX_SKIPPED = flags.DEFINE_float(
    "max_skipped_share", 1.0, "The run fails (exit code 2, outputs kept) when it skips every "
    "video or more than this share of them.", lower_bound=0.0, upper_bound=1.0)
_OUTPUT = flags.DEFINE_string("output", None, "Output directory for shards and manifest.",
                              required=True)
_DETECTOR = flags.DEFINE_string(
    "detector", None, "Detector: 'mediapipe_oidv4' (default), a SavedModel directory or a "
    "TF-Hub handle with the openimages_v4/ssd/mobilenet_v2 signature.")
_FPS = flags.DEFINE_float("fps", 1.0, "Frames sampled per second inside each shot.")
_SHORT_SIDE = flags.DEFINE_integer("frame_short_side", 256,
                                   "Stored frames are resized to this shorter side (0: keep).",
                                   lower_bound=0)
_SCORE = flags.DEFINE_float("score_threshold", 0.05, "Detections below this score are dropped.",
                            lower_bound=0.0, upper_bound=1.0)
_MAX_OBJECTS = flags.DEFINE_integer("max_objects", 5, "At most this many objects per frame.",
                                    lower_bound=1)
_MIN_SIDE = flags.DEFINE_integer(
    "min_video_side", video.MIN_VIDEO_SIDE, "Videos whose shorter side has fewer pixels are "
    "skipped and listed (1×1 placeholders); 1 accepts every size.",
    lower_bound=1)
_PER_SHARD = flags.DEFINE_integer("videos_per_shard", 16, "Videos per TFRecord shard.",
                                  lower_bound=1)
_WORKERS = flags.DEFINE_integer(
    "workers", 1, "Parallel processes (local runs); the cores are divided among them.",
                                lower_bound=1)
_THREADS = flags.DEFINE_integer(
    "threads", None, "Detector threads per worker (TFLite, TF); default: cores / workers.",
                                lower_bound=1)
_TIME_LIMIT = flags.DEFINE_float(
    "time_limit", 1800.0, "Seconds decoding one video may take (waits for the detector not "
    "counted); a video past it is skipped and listed. 0: no limit.", lower_bound=0.0)
_DETECTOR_PACKAGE = flags.DEFINE_string(
    "detector_package", None, "A staged copy of `npm pack @mediapipe/objectron@0.4.1675468480` "
    "(any tf.io.gfile path, e.g. gs://) for the default detector, sha256-checked; default: npm, "
    "else the registry over HTTP.")
_RUNNER = flags.DEFINE_string(
    "runner", None, "Run as an Apache Beam pipeline on this runner (DirectRunner, "
    "DataflowRunner, FlinkRunner, SparkRunner); default: the local resumable job.")
_BEAM_OPTIONS = flags.DEFINE_string("beam_options", "",
                                    "Further Beam pipeline options, as one quoted string.")

errors.positive_finite(_FPS)
flags.mark_flags_as_mutual_exclusive(["videos", "videos_list"], required=True)

def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from keras_vivi.data import prepare as prepare_lib
  config = prepare_lib.PrepareConfig(
      fps=_FPS.value, frame_short_side=_SHORT_SIDE.value or None, detector=_DETECTOR.value,
      score_threshold=_SCORE.value, max_objects=_MAX_OBJECTS.value,
      videos_per_shard=_PER_SHARD.value, workers=_WORKERS.value,
      min_video_side=_MIN_SIDE.value, threads=_THREADS.value,
      time_limit=_TIME_LIMIT.value or None, detector_package=_DETECTOR_PACKAGE.value,
      max_skipped_share=_MAX_SKIPPED.value)
  if _RUNNER.value:
    from apache_beam.options.pipeline_options import PipelineOptions
    from keras_vivi.data import beam_pipeline
    options = PipelineOptions([f"--runner={_RUNNER.value}", *shlex.split(_BEAM_OPTIONS.value)])
    manifest = beam_pipeline.run(_VIDEOS.value, _OUTPUT.value, config, pipeline_options=options,
                                 videos_list=_VIDEOS_LIST.value)
  else:
    manifest = prepare_lib.prepare(_VIDEOS.value, _OUTPUT.value, config,
                                   videos_list=_VIDEOS_LIST.value)
  print(summary(manifest, _OUTPUT.value))


def summary(manifest, output_dir):
  """The closing lines a person reads after a run."""
  from keras_vivi.detector import loader
  counts = manifest["counts"]
  space = loader.label_space_of(manifest.get("detector", {}))
  lines = [f"Prepared {counts['videos']} videos into {output_dir}: {counts['shots']} shots, "
           f"{counts['frames']} frames, {counts['objects']} objects in "
           f"{len(manifest['shards'])} shards.",
           f"Labels: {space}, {loader.label_space_description(space)}."]
  top = list(manifest["class_histogram"].items())[:5]
  if top:
    lines.append("Most detected: " + ", ".join(f"{k} ({v})" for k, v in top) + ".")
  # Lists of ids and files, or their counts where per-video rows went to files (`rows`).
  for flag, ids in manifest["flagged"].items():
    if ids:
      lines.append(f"Flagged {flag.replace('_', ' ')}: {_count(ids)} video(s).")
  if isinstance(manifest["skipped"], list) and manifest["skipped"]:
    lines.append(f"Skipped {len(manifest['skipped'])} file(s):")
    lines += [f"  {s['source']}: {s['reason']}" for s in manifest["skipped"]]
  elif manifest["skipped"]:
    lines.append(f"Skipped {manifest['skipped']} file(s), listed with their reasons in "
                 f"{manifest.get('rows')}.")
  lines.append("Manifest, plots and contact sheet: manifest.json, class_histogram.png, "
               "score_histogram.png, contact_sheet.png.")
  return "\n".join(lines)


def _count(ids):
  return len(ids) if isinstance(ids, list) else ids


def run():
  errors.run(main)


if __name__ == "__main__":
  run()
