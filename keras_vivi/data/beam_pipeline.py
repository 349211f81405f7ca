"""`prepare_video` inside an Apache Beam pipeline, for preparing millions of videos.

The same per-video function as the local job (decoding overlapped with detection); Beam
(DirectRunner here, Dataflow, Flink or Spark at scale) distributes the work, retries failed bundles
and writes the shards atomically. Every file, inputs and outputs, goes through Beam's `FileSystems`
(`files.BeamFileSystems`): what a worker reaches, gs:// included. Per-video stats become sharded
row files (`video_rows-*.jsonl`) and are merged by a `CombineFn` into counts and histograms: the
manifest holds aggregates only, never a row per video on one worker. The detector is described by
the workers that used it, once their videos are done (a SavedModel detector learns its labels from
its detections). `beam_plan.json` records what the output holds: a rerun of the same plan replaces
its shards, a different one is refused before anything is written.

Launching on Dataflow (the package is staged to the workers as a wheel):

  pip wheel --no-deps -w dist .
  vivi-prepare --videos=gs://B/videos --output=gs://B/prepared --runner=DataflowRunner \\
      --beam_options="--project=P --region=R --temp_location=gs://B/tmp \\
                      --extra_package=dist/keras_vivi-0.1.0-py3-none-any.whl"

or with the container of `dataflow/Dockerfile` (`--sdk_container_image=IMAGE`).
"""

import hashlib
import json
import os
import posixpath

import apache_beam as beam
from apache_beam.transforms import window

from keras_vivi import files
from keras_vivi.data import decoder_process
from keras_vivi.data import manifest as manifest_lib
from keras_vivi.data import prepare as prepare_lib
from keras_vivi.data import schema

DETECTOR_TAG = "detector"
ROWS_PREFIX, ROWS_SUFFIX = "video_rows", ".jsonl"
ROWS_GLOB = ROWS_PREFIX + "-*-of-*" + ROWS_SUFFIX
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"


class PrepareVideoFn(beam.DoFn):
  """`(path, video_id)` → `(serialized record or None, stats)`; one detector and one pool of decoder
  processes per DoFn instance, made in `setup`. A bundle that prepared videos then emits
  `describe_detector` once, on the `DETECTOR_TAG` output.

  `processes_per_machine`: the worker processes that share a machine's cores (each gets its share
  of detector threads); None: one per core, as Dataflow runs Python workers."""

  def __init__(self, config, processes_per_machine=None):
    super().__init__()
    self._config = config
    self._processes = processes_per_machine

  def setup(self):
    threads = prepare_lib.threads_per_worker(
        self._config, workers=self._processes or prepare_lib.available_cores())
    self._detector = prepare_lib.build_detector(self._config, threads)
    self._decoders = decoder_process.DecoderPool()
    self._files = files.BeamFileSystems()

  def teardown(self):
    self._decoders.close()

  def start_bundle(self):
    self._prepared = False

  def process(self, item):
    self._prepared = True
    with files.using(self._files):  # a remote video is copied through Beam's FileSystems
      yield prepare_lib._prepare_or_report(item, self._detector, self._config, self._decoders)

  def finish_bundle(self):
    if self._prepared:
      yield beam.pvalue.TaggedOutput(DETECTOR_TAG, window.GlobalWindows.windowed_value(
          prepare_lib.describe_detector(self._detector)))


class SummarizeStatsFn(beam.CombineFn):
  """Per-video stats → one `manifest.new_summary(rows=False)`, merged across workers."""

  def create_accumulator(self):
    return manifest_lib.new_summary(rows=False)

  def add_input(self, summary, stats):
    return manifest_lib.add_stats(summary, stats)

  def merge_accumulators(self, summaries):
    return manifest_lib.merge_summaries(summaries, rows=False)

  def extract_output(self, summary):
    return summary


def merge_descriptions(descriptions):
  """One detector description of several workers': the union of the labels each one saw; None if
  there is none."""
  merged = None
  for d in descriptions:
    if d is not None:
      merged = merged or {"detector": d["detector"], "label_map": {}}
      merged["label_map"].update(d["label_map"])
  if merged is not None:
    merged["label_map"] = dict(sorted(merged["label_map"].items(), key=lambda kv: int(kv[0])))
  return merged


def _finish(summary, shard_paths, detector_info, samples, output_dir, config):
  if detector_info is None:  # no video reached a worker
    detector_info = {"detector": None, "label_map": {}}
  with files.using(files.BeamFileSystems()):
    prepare_lib.finish(output_dir, summary, shard_paths, detector_info, config,
                       sample_records=[serialized for _, serialized in samples], rows=ROWS_GLOB)


def beam_plan(paths, ids, config, num_shards):
  """What `beam_plan.json` records: the settings, the shard count and a digest of the videos (their
  number and sha256 of their sources and ids), not the list itself."""
  digest = hashlib.sha256()
  for path, video_id in zip(paths, ids):
    digest.update(f"{path}\t{video_id}\n".encode("utf-8"))
  return {"videos": {"count": len(paths), "sha256": digest.hexdigest()}, "num_shards": num_shards,
          "config": prepare_lib.plan_settings(config)}


def check_or_write_plan(output_dir, plan):
  """Writes `plan` to `output_dir/beam_plan.json`, or refuses (ValueError naming the differences)
  when the output holds shards of another plan, or shards without a Beam plan."""
  prepare_lib.refuse_other_kind(output_dir, prepare_lib.PLAN_FILE)
  fs = files.filesystem()
  path = posixpath.join(output_dir, prepare_lib.BEAM_PLAN_FILE)
  old = None
  if fs.exists(path):
    old = files.read_json(path, "it records which videos and settings the shards of "
                          f"{output_dir!r} were made with. Prepare into a new --output.")
  written = fs.glob(posixpath.join(output_dir, schema.SHARD_GLOB)) + fs.glob(
      posixpath.join(output_dir, ROWS_GLOB))
  if written and old is None:
    raise ValueError(f"{output_dir!r} holds shards without {prepare_lib.BEAM_PLAN_FILE} (written by "
                     "something else); prepare into a new --output.")
  if written:
    files.check_same_settings(old, plan, output_dir, "a preparation of other videos or settings",
                              f"see {path}; rerun with the same videos and options (its shards "
                              "are replaced), or choose a new --output.")
  if old != plan:
    fs.makedirs(output_dir)
    files.write_json(path, plan)


def _processes_per_machine(options):
  """The worker processes of a DirectRunner run (they share this machine); None for other runners."""
  from apache_beam.options import pipeline_options as po  # pylint: disable=g-import-not-at-top
  runner = options.view_as(po.StandardOptions).runner
  if runner not in (None, "DirectRunner", "direct"):
    return None
  direct = options.view_as(po.DirectOptions)
  if direct.direct_running_mode == "multi_processing":
    return direct.direct_num_workers or prepare_lib.available_cores()
  return 1


def run(videos, output_dir, config=prepare_lib.PrepareConfig(), num_shards=None,
        pipeline_options=None, videos_list=None):
  """Prepares `videos` (directory, glob or list of paths), or the videos of the list file
  `videos_list`, into `output_dir` with Beam; every path may be on any filesystem Beam reaches.

  Args:
    num_shards: output shards; default one per `config.videos_per_shard` videos.
    pipeline_options: a `beam.options.pipeline_options.PipelineOptions` (runner, project, …);
      default the DirectRunner.

  Returns:
    The manifest dict.

  Raises:
    prepare.TooManySkipped: every video, or more than `config.max_skipped_share`, was skipped.
  """
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top
  pipeline_options = pipeline_options or PipelineOptions([])
  output_dir = os.fspath(output_dir)
  with files.using(files.BeamFileSystems()):
    paths = prepare_lib.list_inputs(videos, videos_list)
    ids = prepare_lib.video_ids(paths)
    num_shards = num_shards or -(-len(paths) // config.videos_per_shard)
    check_or_write_plan(output_dir, beam_plan(paths, ids, config, num_shards))
  with beam.Pipeline(options=pipeline_options) as pipeline:
    prepared = (pipeline
                | "Videos" >> beam.Create(list(zip(paths, ids)))
                | "Reshuffle" >> beam.Reshuffle()
                | "Prepare" >> beam.ParDo(PrepareVideoFn(
                    config, _processes_per_machine(pipeline_options))).with_outputs(
                        DETECTOR_TAG, main="results"))
    results = prepared.results
    detector_info = prepared[DETECTOR_TAG] | "Detector" >> beam.CombineGlobally(merge_descriptions)
    shards = (results
              | "Records" >> beam.FlatMap(lambda r: [r[0]] if r[0] is not None else [])
              | "Write" >> beam.io.WriteToTFRecord(
                  posixpath.join(output_dir, schema.SHARD_PREFIX),
                  file_name_suffix=schema.SHARD_SUFFIX, num_shards=num_shards,
                  shard_name_template=SHARD_TEMPLATE))
    _ = (results
         | "Rows" >> beam.Map(lambda r: json.dumps(r[1], sort_keys=True))
         | "WriteRows" >> beam.io.WriteToText(
             posixpath.join(output_dir, ROWS_PREFIX), file_name_suffix=ROWS_SUFFIX,
             num_shards=num_shards, shard_name_template=SHARD_TEMPLATE))
    samples = (results
               | "Prepared" >> beam.FlatMap(
                   lambda r: [(r[1]["video_id"], r[0])] if r[0] is not None else [])
               | "Sample" >> beam.combiners.Top.Smallest(manifest_lib.CONTACT_SHEET_VIDEOS))
    (results
     | "Stats" >> beam.Map(lambda r: r[1])
     | "Summary" >> beam.CombineGlobally(SummarizeStatsFn())
     | "Manifest" >> beam.Map(_finish, beam.pvalue.AsList(shards),
                              beam.pvalue.AsSingleton(detector_info),
                              beam.pvalue.AsSingleton(samples), output_dir, config))
  with files.using(files.BeamFileSystems()):
    manifest = files.read_json(posixpath.join(output_dir, manifest_lib.MANIFEST_FILE),
                               "run the same command again.")
  prepare_lib.check_skipped(manifest, config, output_dir)
  return manifest
