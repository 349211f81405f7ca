"""Damaged shards of prepared records: skipped, counted and named; none readable is an error
naming them, not a bare StopIteration."""

import dataclasses
import logging

import pytest
import tensorflow as tf

from keras_vivi import configs
from keras_vivi import evaluation
from keras_vivi.data import prepare
from keras_vivi.data import records
from keras_vivi.training import trainer
from tests.data.test_pipeline import synthetic_video


def write_shards(directory, videos_per_shard=(3, 3)):
  paths = []
  for index, count in enumerate(videos_per_shard):
    path = prepare.shard_path(str(directory), index, len(videos_per_shard))
    with tf.io.TFRecordWriter(path) as writer:
      for j in range(count):
        writer.write(synthetic_video(f"v{index}_{j}", [3, 3, 3], seed=j + 1))
    paths.append(path)
  return paths


def truncate(path):
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2 + 7])


def colours(images):
  """A stand-in backbone: the 4×4 grid of mean colours."""
  return tf.image.resize(images, [4, 4], method="area")


def test_the_diagnostic_skips_a_damaged_shard_and_names_it(tmp_path, caplog):
  good, bad = write_shards(tmp_path)
  clean = evaluation.diagnose_records(colours, str(tmp_path), 16, videos_per_batch=None)
  truncate(bad)
  caplog.set_level(logging.WARNING)
  reader = records.ShardReader([good, bad])
  read = list(reader)
  assert 3 <= len(read) < 6 and list(reader.damaged) == [bad]
  assert f"Skipped the shard {bad} from record" in caplog.text

  damaged = evaluation.diagnose_records(colours, str(tmp_path), 16, videos_per_batch=None)
  assert 0 < damaged["all"][2] < clean["all"][2]  # fewer objects, and no error


def test_no_readable_shard_is_an_error_naming_every_one(tmp_path):
  paths = write_shards(tmp_path, (2, 2))
  for path in paths:
    with open(path, "r+b") as f:
      f.write(b"\xff" * 16)  # the first record's length and its checksum
  with pytest.raises(ValueError, match=rf"None of the 2 shard\(s\) can be read \({paths[0]}: .*"
                     rf"{paths[1]}: "):
    evaluation.diagnose_records(colours, str(tmp_path), 16)
  config = configs.get_experiment("vivi_objects")
  config = dataclasses.replace(config, data=dataclasses.replace(
      config.data, path=str(tmp_path), image_size=16, shots_per_video=2, frames_per_shot=2))
  with pytest.raises(ValueError, match=rf"None of the 2 shard\(s\) can be read \({paths[0]}"):
    trainer.summary_batch(config)
