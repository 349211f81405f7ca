"""The object diagnostic of the paper's Table 2: does an object's nearest neighbour share its class?

The paper counts "all objects in 50 batches of 8 videos" without saying which frames a batch
holds. By default (`TRAINING_SAMPLER`) a video contributes the frames training samples from it,
K shots × F frames (`pipeline.build_dataset(training=False)`: the training sampler with a
central square crop, no flip or colour distortion); `EVERY_STORED_FRAME` takes every stored
frame of each video instead (hundreds for a long video, so an object's nearest neighbour is
then mostly the same object a frame later).
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_vivi import configs
from keras_vivi import models
from keras_vivi.data import pipeline
from keras_vivi.data import records as records_lib
from keras_vivi.data import schema

FRAME_SOURCES = configs.FRAME_SOURCES
TRAINING_SAMPLER, EVERY_STORED_FRAME = FRAME_SOURCES


def nearest_neighbour_same_class(features, labels, mask=None, groups=None, block_size=1024):
  """Fraction of objects whose nearest other object (cosine similarity) has the same class.

  Computed over blocks of `block_size` query objects, so memory is O(block_size × N), never
  N × N.

  Args:
    features: `[N, C]` object representations.
    labels: `[N]` int class of each object.
    mask: optional `[N]` bool; masked objects are neither queries nor neighbours.
    groups: optional `[N]` int (e.g. the shot of each object); neighbours are then sought
      in other groups only.
    block_size: query objects compared with all N at once.

  Returns:
    `(fraction, hits, queries)`: float32 fraction and the two int32 counts behind it (for a
    Fisher exact test between two models). Queries need at least one other valid object.
  """
  x = tf.math.l2_normalize(tf.cast(features, tf.float32), axis=-1)
  labels = tf.convert_to_tensor(labels)
  n = int(x.shape[0])
  valid = tf.ones([n], tf.bool) if mask is None else tf.cast(mask, tf.bool)
  hits = total = tf.constant(0, tf.int32)
  for start in range(0, n, block_size):
    stop = min(start + block_size, n)
    sim = tf.matmul(x[start:stop], x, transpose_b=True)                # [b, N]
    allowed = valid[None, :] & tf.not_equal(tf.range(start, stop)[:, None], tf.range(n)[None, :])
    if groups is not None:
      allowed &= tf.not_equal(groups[start:stop, None], groups[None, :])
    neighbour = tf.argmax(tf.where(allowed, sim, -2.0), axis=1, output_type=tf.int32)
    queries = valid[start:stop] & tf.reduce_any(allowed, axis=1)
    hit = queries & tf.equal(tf.gather(labels, neighbour), labels[start:stop])
    hits += tf.reduce_sum(tf.cast(hit, tf.int32))
    total += tf.reduce_sum(tf.cast(queries, tf.int32))
  return tf.cast(hits, tf.float32) / tf.cast(tf.maximum(total, 1), tf.float32), hits, total


def chance_counts(labels, groups=None):
  """What a random neighbour would score on one batch: each query's chance that a random other
  object (of another group, when `groups` is given) has its class.

  Args:
    labels: `[N]` int class of each object.
    groups: optional `[N]` int, as in `nearest_neighbour_same_class`.

  Returns:
    `(expected hits, their variance, {class: queries of that class})` over the queries of
    `nearest_neighbour_same_class` (objects with at least one allowed neighbour): expected hits
    Σ_i p_i (without groups Σ_c n_c(n_c − 1)/(N − 1)) and variance Σ_i p_i(1 − p_i).
  """
  labels = np.asarray(labels).reshape(-1)
  _, label_ix, per_class = np.unique(labels, return_inverse=True, return_counts=True)
  label_ix = label_ix.reshape(-1)
  if groups is None:
    allowed = np.full(len(labels), len(labels) - 1)      # every other object
    same = per_class[label_ix] - 1
  else:
    _, group_ix, per_group = np.unique(np.asarray(groups).reshape(-1), return_inverse=True,
                                       return_counts=True)
    group_ix = group_ix.reshape(-1)
    _, pair_ix, per_pair = np.unique(np.stack([group_ix, label_ix]), axis=1,
                                     return_inverse=True, return_counts=True)
    allowed = len(labels) - per_group[group_ix]           # objects of other groups
    same = per_class[label_ix] - per_pair[pair_ix.reshape(-1)]
  queries = allowed > 0
  p = same[queries] / allowed[queries]
  classes, counts = np.unique(labels[queries], return_counts=True)
  return (float(p.sum()), float((p * (1 - p)).sum()),
          {int(c): int(n) for c, n in zip(classes, counts)})


def record_frames(records, image_size, min_score=0.05, max_objects=5, max_videos=None,
                  reader=None):
  """Every stored frame of prepared records (of the first `max_videos` videos), once.

  Damaged shards are skipped from their first bad record on and named (see
  `records.ShardReader`; pass `reader` to see which afterwards).

  Args:
    records: a directory of `vivi-prepare` shards or a glob of them.
    image_size: frames are resized (aspect ratio not kept) to `image_size²`.
    min_score, max_objects: detections kept, as in training.
    max_videos: read no further than this many videos (default: all).

  Returns:
    A `tf.data.Dataset` of `{image float32 [S, S, 3] in [0, 1], boxes [M, 4] (normalised yxyx),
    class_ids int32 [M], mask bool [M], shot int64, video int64}`; `video` numbers the videos in
    record order and `shot` the shots of all videos.
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
         "shot": shot, "video": tf.fill(tf.shape(shot), video)})

  def decode(frame):
    image = tf.io.decode_jpeg(frame.pop("jpeg"), channels=3)
    frame["image"] = tf.image.resize(tf.cast(image, tf.float32) / 255.0, [image_size] * 2)
    return frame

  reader = reader or records_lib.ShardReader(pipeline.shard_files(records))
  videos = reader.dataset().enumerate()
  if max_videos is not None:
    videos = videos.take(max_videos)
  return (videos
          .flat_map(frames)
          .map(decode, num_parallel_calls=tf.data.AUTOTUNE))


def sampled_frames(records, sampler, image_size, min_score=0.05, max_objects=5,
                   max_videos=None):
  """The frames training samples from each video of prepared records, un-augmented, each once.

  Per video, K shots × F frames as `pipeline.build_dataset(training=False)` samples them (the
  training sampler; central square crop, no flip or colour distortion; deterministic, from
  `sampler.seed` or 0); a stored frame drawn twice (a shot with fewer than F frames) counts
  once, since a copy of an object would be its own nearest neighbour.

  Args:
    records: a directory of `vivi-prepare` shards or a glob of them.
    sampler: `configs.DataConfig` whose `shots_per_video`, `frames_per_shot`, `short_videos`
      and `seed` are used.
    image_size, min_score, max_objects, max_videos: as in `record_frames`.

  Returns:
    A `tf.data.Dataset` of frames as `record_frames` yields them (`video` numbers the videos
    the sampler keeps).
  """
  config = dataclasses.replace(sampler, path=records, image_size=image_size, min_score=min_score,
                               max_objects=max_objects, batch_size=1, inline_detection=False,
                               box_ablation="none")
  videos = pipeline.build_dataset(config, training=False)
  if max_videos is not None:
    videos = videos.take(max_videos)
  k, f, s = config.shots_per_video, config.frames_per_shot, image_size

  def frames(video, batch):
    n = k * f
    position = tf.reshape(batch["frame_position"], [n])
    _, which = tf.unique(position, out_idx=tf.int32)
    first = tf.math.unsorted_segment_min(tf.range(n), which, tf.reduce_max(which) + 1)
    keep = tf.reshape(batch["frame_mask"], [n]) & tf.equal(tf.range(n), tf.gather(first, which))
    shot = video * (1 << 20) + tf.cast(batch["shot_index"][0], tf.int64)      # [K]
    per_frame = {
        "image": tf.reshape(batch["frames"], [n, s, s, 3]),
        "boxes": tf.reshape(batch["boxes"], [n, max_objects, 4]),
        "class_ids": tf.reshape(batch["class_ids"], [n, max_objects]),
        "mask": tf.reshape(batch["box_mask"], [n, max_objects]),
        "shot": tf.reshape(tf.broadcast_to(shot[:, None], [k, f]), [n]),
        "video": tf.fill([n], video)}
    return tf.data.Dataset.from_tensor_slices(
        {key: tf.boolean_mask(value, keep) for key, value in per_frame.items()})

  return videos.enumerate().flat_map(frames)


def object_groups(feature_fn, records, image_size, min_score=0.05, max_objects=5,
                  batch_size=32, videos_per_group=None, max_groups=None,
                  frames=TRAINING_SAMPLER, sampler=None):
  """Features at the centre of the stored objects, one group of consecutive videos at a time.

  Only one group's objects are held at once: memory grows with `videos_per_group`, not with the
  records.

  Args:
    feature_fn: images float32 `[B, S, S, 3]` in [0, 1] → the block-4 grid `[B, h, w, C]`
      (e.g. `lambda x: hub.load(path).feature_maps(x)['5']`).
    records, image_size, min_score, max_objects: as in `record_frames`.
    batch_size: frames per `feature_fn` call.
    videos_per_group: videos of one group (the paper: 8); None puts every video in one group.
    max_groups: stop after this many groups (the paper: 50); None reads every video.
    frames: `TRAINING_SAMPLER` (`sampled_frames`) or `EVERY_STORED_FRAME` (`record_frames`).
    sampler: the `configs.DataConfig` of `sampled_frames` (default: the training defaults,
      4 shots × 8 frames).

  Yields:
    `(features float32 [n, C], labels int32 [n], shots int64 [n])` of the n valid objects of
    each group of videos that has any.
  """
  if frames not in FRAME_SOURCES:
    raise ValueError(f"frames must be one of {FRAME_SOURCES}, got {frames!r}.")
  max_videos = (videos_per_group * max_groups
                if videos_per_group is not None and max_groups is not None else None)
  pending, current = [], None
  reader = None
  if frames == TRAINING_SAMPLER:
    source = sampled_frames(records, sampler or configs.DataConfig(), image_size, min_score,
                            max_objects, max_videos)
  else:
    reader = records_lib.ShardReader(pipeline.shard_files(records))
    source = record_frames(records, image_size, min_score, max_objects, max_videos, reader)
  read_any = False
  for batch in source.batch(batch_size):
    read_any = True
    grid = feature_fn(batch["image"])
    r = models.gather_box_features(grid, batch["boxes"], (image_size, image_size))
    mask = batch["mask"].numpy()
    per_object = tf.broadcast_to(batch["video"][:, None], mask.shape).numpy()[mask]
    group = per_object // videos_per_group if videos_per_group else 0 * per_object
    objects = (tf.cast(r, tf.float32).numpy()[mask], batch["class_ids"].numpy()[mask],
               tf.broadcast_to(batch["shot"][:, None], mask.shape).numpy()[mask])
    for g in dict.fromkeys(group.tolist()):  # groups in record order
      if current is not None and g != current:
        yield tuple(np.concatenate(parts) for parts in zip(*pending))
        pending = []
      current = g
      pending.append(tuple(a[group == g] for a in objects))
  if reader is None and not read_any:
    # The sampler's input passes over unreadable records silently: name them when nothing came.
    reader = records_lib.ShardReader(pipeline.shard_files(records))
    for _ in reader:
      pass
  if reader is not None:
    reader.check()
  if pending:
    yield tuple(np.concatenate(parts) for parts in zip(*pending))


def record_object_features(feature_fn, records, image_size, min_score=0.05, max_objects=5,
                           batch_size=32):
  """Features at the centre of every object of every stored frame of prepared records, all
  at once.

  Arguments as in `object_groups`. For small record sets (tests, inspection): this holds every
  object; the diagnostic itself goes through `object_groups`.

  Returns:
    `(features float32 [N, C], labels int32 [N], shots int64 [N])` over the N valid objects.
  """
  for group in object_groups(feature_fn, records, image_size, min_score, max_objects,
                             batch_size, frames=EVERY_STORED_FRAME):
    return tuple(tf.constant(a) for a in group)
  raise ValueError(f"No objects in the records at {records!r}.")


def diagnose_records(feature_fn, records, image_size, min_score=0.05, max_objects=5,
                     batch_size=32, videos_per_batch=8, num_batches=50, block_size=1024,
                     frames=TRAINING_SAMPLER, sampler=None):
  """Table 2's diagnostic on prepared records, by the paper's protocol by default.

  The paper counts "all objects in 50 batches of 8 videos": neighbours are sought among the
  objects of the same batch of `videos_per_batch` consecutive videos and the counts of
  `num_batches` batches are summed. A video's frames are those training samples from it
  (`frames=TRAINING_SAMPLER`, K × F) or every stored frame (`EVERY_STORED_FRAME`); either way
  each stored frame counts once (a duplicated object would be its own nearest neighbour).
  `videos_per_batch=None` searches among the objects of every video instead (memory O(N·C)
  for the features, nearest neighbours blockwise).

  Args:
    feature_fn, records, image_size, min_score, max_objects, batch_size, frames, sampler: as
      in `object_groups`.
    videos_per_batch, num_batches: the protocol (the paper's: 8 and 50).
    block_size: as in `nearest_neighbour_same_class`.

  Returns:
    `{"all": (fraction, hits, queries), "other_shots": (…)}` (float, int, int; 0 queries when
    no object has a neighbour) with neighbours
    among all other objects of the batch, and among objects of other shots only: on few videos
    sampled densely an object's nearest neighbour is otherwise mostly the same object a frame
    later, whatever the representation. `"chance"` maps each of the two to what a random
    neighbour scores on the same objects (`chance_counts`, summed as the hits are): `{fraction:
    expected hits / queries, variance: of the hits, majority_class, majority_share: the
    largest class's share of the queries}` (fraction and share None without queries).
  """
  counts = {"all": [0, 0], "other_shots": [0, 0]}
  chance = {figure: [0.0, 0.0, {}] for figure in counts}
  for features, labels, shots in object_groups(
      feature_fn, records, image_size, min_score, max_objects, batch_size, videos_per_batch,
      num_batches if videos_per_batch else None, frames, sampler):
    for figure, groups in (("all", None), ("other_shots", shots)):
      _, hits, queries = nearest_neighbour_same_class(features, labels, groups=groups,
                                                      block_size=block_size)
      counts[figure][0] += int(hits)
      counts[figure][1] += int(queries)
      expected, variance, classes = chance_counts(labels, groups)
      chance[figure][0] += expected
      chance[figure][1] += variance
      for c, n in classes.items():
        chance[figure][2][c] = chance[figure][2].get(c, 0) + n
  figures = {figure: (hits / max(queries, 1), hits, queries)
             for figure, (hits, queries) in counts.items()}
  figures["chance"] = {}
  for figure, (expected, variance, classes) in chance.items():
    queries = counts[figure][1]
    majority = max(classes, key=lambda c: (classes[c], -c)) if classes else None
    figures["chance"][figure] = {
        "fraction": expected / queries if queries else None, "variance": variance,
        "majority_class": majority,
        "majority_share": classes[majority] / queries if queries else None}
  return figures
