"""`prepare_video` inside an Apache Beam pipeline, for preparing millions of videos.

The same per-video function as the local job (decoding overlapped with detection); Beam
(DirectRunner here, Dataflow, Flink or Spark at scale) distributes the work, retries failed bundles
and writes the shards atomically. Everything else goes through `tf.io.gfile`, so `gs://` works end to
end: per-video stats are merged by a `CombineFn` (counts and histograms, never a list of every
video's stats on one worker), and the detector is described by the workers that loaded it.
"""

import json
import os

import apache_beam as beam
import tensorflow as tf

from keras_vivi.data import decoder_process
from keras_vivi.data import manifest as manifest_lib
from keras_vivi.data import prepare as prepare_lib
from keras_vivi.data import schema

DETECTOR_TAG = "detector"


class PrepareVideoFn(beam.DoFn):
  """`(path, video_id)` → `(serialized record or None, stats)`; one detector and one pool of decoder
  processes per worker, made in `setup`. Each bundle also emits `describe_detector` once, on the
  `DETECTOR_TAG` output."""

  def __init__(self, config):
    super().__init__()
    self._config = config

  def setup(self):
    self._detector = prepare_lib.build_detector(self._config,
                                                prepare_lib.threads_per_worker(self._config))
    self._decoders = decoder_process.DecoderPool()

  def teardown(self):
    self._decoders.close()

  def start_bundle(self):
    self._described = False

  def process(self, item):
    if not self._described:
      self._described = True
      yield beam.pvalue.TaggedOutput(DETECTOR_TAG, prepare_lib.describe_detector(self._detector))
    yield prepare_lib._prepare_or_report(item, self._detector, self._config, self._decoders)


class SummarizeStatsFn(beam.CombineFn):
  """Per-video stats → one `manifest.new_summary()`, merged across workers."""

  def create_accumulator(self):
    return manifest_lib.new_summary()

  def add_input(self, summary, stats):
    return manifest_lib.add_stats(summary, stats)

  def merge_accumulators(self, summaries):
    return manifest_lib.merge_summaries(summaries)

  def extract_output(self, summary):
    return summary


def _any(values):
  """Any one of `values` (every worker describes the same detector); None if there is none."""
  return next((v for v in values if v is not None), None)


def _finish(summary, shard_paths, detector_info, output_dir, config):
  if detector_info is None:  # no video reached a worker
    detector_info = {"detector": None, "label_map": {}}
  prepare_lib.finish(output_dir, summary, shard_paths, detector_info, config)


def run(videos, output_dir, config=prepare_lib.PrepareConfig(), num_shards=None,
        pipeline_options=None, shard_dir=None):
  """Prepares `videos` (directory, glob or list of paths) into `output_dir` with Beam.

  Args:
    num_shards: output shards; default one per `config.videos_per_shard` videos.
    pipeline_options: a `beam.options.pipeline_options.PipelineOptions` (runner, project, …);
      default the DirectRunner.
    shard_dir: where Beam's sink writes the shards (a filesystem Beam knows); default `output_dir`.
      The manifest, plots and contact sheet go to `output_dir` through `tf.io.gfile`.

  Returns:
    The manifest dict.
  """
  paths = (prepare_lib.find_videos(videos) if isinstance(videos, (str, os.PathLike))
           else sorted(os.fspath(p) for p in videos))
  ids = prepare_lib.video_ids(paths)
  num_shards = num_shards or -(-len(paths) // config.videos_per_shard)
  shard_dir = shard_dir or output_dir
  with beam.Pipeline(options=pipeline_options) as pipeline:
    prepared = (pipeline
                | "Videos" >> beam.Create(list(zip(paths, ids)))
                | "Reshuffle" >> beam.Reshuffle()
                | "Prepare" >> beam.ParDo(PrepareVideoFn(config)).with_outputs(
                    DETECTOR_TAG, main="results"))
    results = prepared.results
    detector_info = prepared[DETECTOR_TAG] | "Detector" >> beam.CombineGlobally(_any)
    shards = (results
              | "Records" >> beam.FlatMap(lambda r: [r[0]] if r[0] is not None else [])
              | "Write" >> beam.io.WriteToTFRecord(
                  os.path.join(shard_dir, schema.SHARD_PREFIX), file_name_suffix=schema.SHARD_SUFFIX,
                  num_shards=num_shards, shard_name_template="-SSSSS-of-NNNNN"))
    (results
     | "Stats" >> beam.Map(lambda r: r[1])
     | "Summary" >> beam.CombineGlobally(SummarizeStatsFn())
     | "Manifest" >> beam.Map(_finish, beam.pvalue.AsList(shards),
                              beam.pvalue.AsSingleton(detector_info), output_dir, config))
  with tf.io.gfile.GFile(os.path.join(output_dir, manifest_lib.MANIFEST_FILE)) as f:
    return json.load(f)
