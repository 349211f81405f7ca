"""The TFRecord layout of prepared videos: every key, in one place.

One `tf.train.SequenceExample` per video. The context holds the video and its shots; each
feature-list entry is one sampled frame (in time order) with its detections. Boxes are
normalised `[ymin, xmin, ymax, xmax]`, flattened to `4·n` floats for a frame with `n` objects.
"""

import tensorflow as tf

# Context: one value per video.
VIDEO_ID = "video/id"                      # bytes, unique within a dataset
VIDEO_SOURCE = "video/source"              # bytes, the path the video was read from
VIDEO_DURATION = "video/duration"          # float, seconds
VIDEO_FPS = "video/fps"                    # float, decoded stream frame rate
VIDEO_TRUNCATED = "video/truncated"        # int, 1 when the stream broke off before its end
# Context: one value per shot, in time order.
SHOT_START = "shot/start_time"             # float seconds
SHOT_END = "shot/end_time"                 # float seconds (exclusive)
SHOT_NUM_FRAMES = "shot/num_frames"        # int, sampled frames in the shot

# Sequence: one entry per sampled frame.
FRAME_JPEG = "frame/jpeg"                  # bytes, RGB JPEG
FRAME_SHOT = "frame/shot_index"            # int, index into the shot lists
FRAME_TIME = "frame/timestamp"             # float seconds on the stream's clock
FRAME_INDEX = "frame/index"                # int, decoded frame number in the video
OBJECT_BOXES = "frame/object/boxes"        # float [4·n], yxyx normalised
OBJECT_CLASS_IDS = "frame/object/class_ids"        # int [n], detector label id
OBJECT_CLASS_NAMES = "frame/object/class_names"    # bytes [n], detector label name
OBJECT_SCORES = "frame/object/scores"      # float [n], detector score

CONTEXT_FEATURES = {
    VIDEO_ID: tf.io.FixedLenFeature([], tf.string),
    VIDEO_SOURCE: tf.io.FixedLenFeature([], tf.string),
    VIDEO_DURATION: tf.io.FixedLenFeature([], tf.float32),
    VIDEO_FPS: tf.io.FixedLenFeature([], tf.float32),
    VIDEO_TRUNCATED: tf.io.FixedLenFeature([], tf.int64),
    SHOT_START: tf.io.RaggedFeature(tf.float32),
    SHOT_END: tf.io.RaggedFeature(tf.float32),
    SHOT_NUM_FRAMES: tf.io.RaggedFeature(tf.int64),
}
SEQUENCE_FEATURES = {
    FRAME_JPEG: tf.io.FixedLenSequenceFeature([], tf.string),
    FRAME_SHOT: tf.io.FixedLenSequenceFeature([], tf.int64),
    FRAME_TIME: tf.io.FixedLenSequenceFeature([], tf.float32),
    FRAME_INDEX: tf.io.FixedLenSequenceFeature([], tf.int64),
    OBJECT_BOXES: tf.io.RaggedFeature(tf.float32),
    OBJECT_CLASS_IDS: tf.io.RaggedFeature(tf.int64),
    OBJECT_CLASS_NAMES: tf.io.RaggedFeature(tf.string),
    OBJECT_SCORES: tf.io.RaggedFeature(tf.float32),
}

SHARD_PREFIX, SHARD_SUFFIX = "videos", ".tfrecord"
SHARD_PATTERN = SHARD_PREFIX + "-{index:05d}-of-{count:05d}" + SHARD_SUFFIX
SHARD_GLOB = SHARD_PREFIX + "-*-of-*" + SHARD_SUFFIX


def parse_video(serialized):
  """Parses one serialized video: `(context dict, sequence dict)` of tensors.

  Sequence values are `[S]` per frame, or ragged `[S, None]` for the object lists (boxes
  `[S, None]` holding `4·n` values per frame: reshape to `[S, None, 4]`).
  """
  return tf.io.parse_single_sequence_example(
      serialized, context_features=CONTEXT_FEATURES, sequence_features=SEQUENCE_FEATURES)[:2]
