"""The object diagnostic of the paper's Table 2: does an object's nearest neighbour share its class?"""

import tensorflow as tf

from keras_vivi import models
from keras_vivi.data import pipeline
from keras_vivi.data import schema


def nearest_neighbour_same_class(features, labels, mask=None, groups=None):
  """Fraction of objects whose nearest other object (cosine similarity) has the same class.

  Args:
    features: `[N, C]` object representations.
    labels: `[N]` int class of each object.
    mask: optional `[N]` bool; masked objects are neither queries nor neighbours.
    groups: optional `[N]` int (e.g. the video of each object); neighbours are then sought
      in other groups only.

  Returns:
    `(fraction, hits, queries)`: float32 fraction and the two int32 counts behind it (for a
    Fisher exact test between two models). Queries need at least one other valid object.
  """
  x = tf.math.l2_normalize(tf.cast(features, tf.float32), axis=-1)
  n = tf.shape(x)[0]
  valid = tf.ones([n], tf.bool) if mask is None else tf.cast(mask, tf.bool)
  sim = tf.matmul(x, x, transpose_b=True)
  allowed = valid[None, :] & ~tf.eye(n, dtype=tf.bool)
  if groups is not None:
    allowed &= tf.not_equal(groups[:, None], groups[None, :])
  neighbour = tf.argmax(tf.where(allowed, sim, -2.0), axis=1, output_type=tf.int32)
  queries = valid & tf.reduce_any(allowed, axis=1)
  hit = queries & tf.equal(tf.gather(labels, neighbour), labels)
  hits = tf.reduce_sum(tf.cast(hit, tf.int32))
  total = tf.reduce_sum(tf.cast(queries, tf.int32))
  return tf.cast(hits, tf.float32) / tf.cast(tf.maximum(total, 1), tf.float32), hits, total


def record_frames(records, image_size, min_score=0.05, max_objects=5):
  """Every stored frame of prepared records, once, with its detections.

  Args:
    records: a directory of `vivi-prepare` shards or a glob of them.
    image_size: frames are resized (aspect ratio not kept) to `image_size²`.
    min_score, max_objects: detections kept, as in training.

  Returns:
    A `tf.data.Dataset` of `{image float32 [S, S, 3] in [0, 1], boxes [M, 4] (normalised yxyx),
    class_ids int32 [M], mask bool [M], shot int64}`; `shot` numbers the shots of all videos
    in record order.
  """
  def frames(video, serialized):
    _, seq = schema.parse_video(serialized)
    # Unique across videos: shots of one video are far fewer than 2^20.
    shot = video * (1 << 20) + seq[schema.FRAME_SHOT]
    parsed = {"boxes": seq[schema.OBJECT_BOXES], "class_ids": seq[schema.OBJECT_CLASS_IDS],
              "scores": seq[schema.OBJECT_SCORES]}
    positions = tf.range(tf.shape(seq[schema.FRAME_JPEG])[0])
    boxes, ids, valid = pipeline.frame_objects(parsed, positions, max_objects, min_score)
    return tf.data.Dataset.from_tensor_slices(
        {"jpeg": seq[schema.FRAME_JPEG], "boxes": boxes, "class_ids": ids, "mask": valid,
         "shot": shot})

  def decode(frame):
    image = tf.io.decode_jpeg(frame.pop("jpeg"), channels=3)
    frame["image"] = tf.image.resize(tf.cast(image, tf.float32) / 255.0, [image_size] * 2)
    return frame

  return (tf.data.TFRecordDataset(pipeline.shard_files(records))
          .enumerate()
          .flat_map(frames)
          .map(decode, num_parallel_calls=tf.data.AUTOTUNE))


def record_object_features(feature_fn, records, image_size, min_score=0.05, max_objects=5,
                           batch_size=32):
  """Features at the centre of every stored object of prepared records.

  Args:
    feature_fn: images float32 `[B, S, S, 3]` in [0, 1] → the block-4 grid `[B, h, w, C]`
      (e.g. `lambda x: hub.load(path).feature_maps(x)['5']`).
    records, image_size, min_score, max_objects: as in `record_frames`.

  Returns:
    `(features float32 [N, C], labels int32 [N], shots int64 [N])` over the N valid objects.
  """
  features, labels, shots = [], [], []
  for batch in record_frames(records, image_size, min_score, max_objects).batch(batch_size):
    grid = feature_fn(batch["image"])
    r = models.gather_box_features(grid, batch["boxes"], (image_size, image_size))
    features.append(tf.boolean_mask(tf.cast(r, tf.float32), batch["mask"]))
    labels.append(tf.boolean_mask(batch["class_ids"], batch["mask"]))
    shots.append(tf.boolean_mask(
        tf.broadcast_to(batch["shot"][:, None], tf.shape(batch["mask"])), batch["mask"]))
  if not features:
    raise ValueError(f"No frames in the records at {records!r}.")
  return tf.concat(features, 0), tf.concat(labels, 0), tf.concat(shots, 0)


def diagnose_records(feature_fn, records, image_size, min_score=0.05, max_objects=5,
                     batch_size=32):
  """Table 2's diagnostic over every object of prepared records.

  See `record_object_features` for the arguments. Each stored frame counts once (training
  batches repeat frames, and a duplicated object would be its own nearest neighbour).

  Returns:
    `{"all": (fraction, hits, queries), "other_shots": (…)}` as `nearest_neighbour_same_class`
    gives them, with neighbours among all other objects, and among objects of other shots only:
    on few videos sampled densely, an object's nearest neighbour is otherwise mostly the same
    object a frame later, whatever the representation.
  """
  features, labels, shots = record_object_features(feature_fn, records, image_size, min_score,
                                                   max_objects, batch_size)
  return {"all": nearest_neighbour_same_class(features, labels),
          "other_shots": nearest_neighbour_same_class(features, labels, groups=shots)}
