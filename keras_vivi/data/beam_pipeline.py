"""`prepare_video` inside an Apache Beam pipeline, for preparing millions of videos.

The same per-video function as the local job; Beam (DirectRunner here, Dataflow, Flink or Spark
at scale) distributes the work, retries failed bundles and writes the shards atomically.
"""

import json
import os

import apache_beam as beam

from keras_vivi.data import prepare as prepare_lib
from keras_vivi.data import schema


class PrepareVideoFn(beam.DoFn):
  """`(path, video_id)` → `(serialized record or None, stats)`; one detector per worker."""

  def __init__(self, config):
    super().__init__()
    self._config = config

  def setup(self):
    self._detector = prepare_lib.build_detector(self._config)

  def process(self, item):
    yield prepare_lib._prepare_or_report(item, self._detector, self._config)


def _finish(stats, shard_paths, output_dir, config):
  return prepare_lib.finish(output_dir, stats, shard_paths, prepare_lib.build_detector(config),
                            config)


def run(videos, output_dir, config=prepare_lib.PrepareConfig(), num_shards=None,
        pipeline_options=None):
  """Prepares `videos` (directory, glob or list of paths) into `output_dir` with Beam.

  Args:
    num_shards: output shards; default one per `config.videos_per_shard` videos.
    pipeline_options: a `beam.options.pipeline_options.PipelineOptions` (runner, project, …);
      default the DirectRunner.

  Returns:
    The manifest dict.
  """
  paths = (prepare_lib.find_videos(videos) if isinstance(videos, (str, os.PathLike))
           else sorted(os.fspath(p) for p in videos))
  ids = prepare_lib.video_ids(paths)
  num_shards = num_shards or -(-len(paths) // config.videos_per_shard)
  with beam.Pipeline(options=pipeline_options) as pipeline:
    results = (pipeline
               | "Videos" >> beam.Create(list(zip(paths, ids)))
               | "Reshuffle" >> beam.Reshuffle()
               | "Prepare" >> beam.ParDo(PrepareVideoFn(config)))
    shards = (results
              | "Records" >> beam.FlatMap(lambda r: [r[0]] if r[0] is not None else [])
              | "Write" >> beam.io.WriteToTFRecord(
                  os.path.join(output_dir, schema.SHARD_PREFIX), file_name_suffix=schema.SHARD_SUFFIX,
                  num_shards=num_shards, shard_name_template="-SSSSS-of-NNNNN"))
    (results
     | "Stats" >> beam.Map(lambda r: r[1])
     | "AllStats" >> beam.combiners.ToList()
     | "Manifest" >> beam.Map(_finish, beam.pvalue.AsList(shards), output_dir, config))
  with open(os.path.join(output_dir, prepare_lib.manifest_lib.MANIFEST_FILE)) as f:
    return json.load(f)
