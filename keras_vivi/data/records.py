"""Encoding one prepared video as a `tf.train.SequenceExample` (keys in `schema`), and reading
shards that may be damaged."""

import io

from absl import logging
import numpy as np
import PIL.Image
import tensorflow as tf

from keras_vivi.data import schema


def encode_jpeg(frame, quality=90):
  """uint8 RGB `[H, W, 3]` -> JPEG bytes."""
  buffer = io.BytesIO()
  PIL.Image.fromarray(np.asarray(frame, np.uint8)).save(buffer, format="JPEG", quality=quality)
  return buffer.getvalue()


def _bytes(values):
  return tf.train.Feature(bytes_list=tf.train.BytesList(
      value=[v if isinstance(v, bytes) else str(v).encode() for v in values]))


def _floats(values):
  return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32)
                                                        .reshape(-1)))


def _ints(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values, np.int64)
                                                        .reshape(-1)))


def video_example(video_id, source, duration, fps, truncated, shot_starts, shot_ends, jpegs,
                  shot_index, timestamps, frame_index, detections, num_detections):
  """Builds the `SequenceExample` of one video.

  Args:
    video_id, source: strings.
    duration, fps: floats; truncated: bool.
    shot_starts, shot_ends: `[K]` seconds.
    jpegs: `S` JPEG byte strings; shot_index, timestamps, frame_index: `[S]`.
    detections: dict of `[S, M, ...]` arrays with the detector keys (`detection_boxes`,
      `detection_scores`, `detection_class_labels`, `detection_class_entities`), padded to M.
    num_detections: `[S]` valid entries per frame.

  Returns:
    `tf.train.SequenceExample`.
  """
  shot_index = np.asarray(shot_index)
  counts = np.bincount(shot_index, minlength=len(shot_starts)) if len(shot_index) else \
      np.zeros(len(shot_starts), np.int64)
  context = {
      schema.VIDEO_ID: _bytes([video_id]),
      schema.VIDEO_SOURCE: _bytes([source]),
      schema.VIDEO_DURATION: _floats([duration]),
      schema.VIDEO_FPS: _floats([fps]),
      schema.VIDEO_TRUNCATED: _ints([int(bool(truncated))]),
      schema.SHOT_START: _floats(shot_starts),
      schema.SHOT_END: _floats(shot_ends),
      schema.SHOT_NUM_FRAMES: _ints(counts),
  }
  lists = {key: [] for key in schema.SEQUENCE_FEATURES}
  for s, jpeg in enumerate(jpegs):
    n = int(num_detections[s])
    lists[schema.FRAME_JPEG].append(_bytes([jpeg]))
    lists[schema.FRAME_SHOT].append(_ints([shot_index[s]]))
    lists[schema.FRAME_TIME].append(_floats([timestamps[s]]))
    lists[schema.FRAME_INDEX].append(_ints([frame_index[s]]))
    lists[schema.OBJECT_BOXES].append(_floats(detections["detection_boxes"][s, :n]))
    lists[schema.OBJECT_CLASS_IDS].append(_ints(detections["detection_class_labels"][s, :n]))
    lists[schema.OBJECT_CLASS_NAMES].append(_bytes(detections["detection_class_entities"][s, :n]))
    lists[schema.OBJECT_SCORES].append(_floats(detections["detection_scores"][s, :n]))
  return tf.train.SequenceExample(
      context=tf.train.Features(feature=context),
      feature_lists=tf.train.FeatureLists(feature_list={
          k: tf.train.FeatureList(feature=v) for k, v in lists.items()}))


class ShardReader:
  """The serialized records of `paths` in order, read in Python: a shard that cannot be read
  (truncated, corrupted, unreadable) is skipped from its first bad record on, with a warning
  naming it, and listed in `damaged` ({path: what went wrong}).

  `dataset()` is the same as a `tf.data.Dataset` of scalar strings; `check()` after reading
  raises ValueError, naming the shards, when none of them yielded a record.
  """

  def __init__(self, paths):
    self.paths = list(paths)
    self.damaged: dict[str, str] = {}
    self.records = 0

  def __iter__(self):
    for path in self.paths:
      read = 0
      try:
        for record in tf.data.TFRecordDataset(path):
          read += 1
          self.records += 1
          yield record.numpy()
      except tf.errors.OpError as e:
        detail = " ".join(str(e.message).split())[:200]
        self.damaged[path] = f"record {read + 1} cannot be read ({detail})"
        logging.warning("Skipped the shard %s from record %d on (%d damaged shard(s) so far): "
                        "it cannot be read (%s).", path, read + 1, len(self.damaged), detail)

  def dataset(self) -> tf.data.Dataset:
    return tf.data.Dataset.from_generator(self.__iter__,
                                          output_signature=tf.TensorSpec([], tf.string))

  def check(self) -> None:
    if self.records == 0 and self.damaged:
      listed = "; ".join(f"{path}: {why}" for path, why in self.damaged.items())
      raise ValueError(f"None of the {len(self.paths)} shard(s) can be read ({listed}); "
                       "prepare the videos again (vivi-prepare into a new --output) or restore "
                       "the shards from a copy.")
