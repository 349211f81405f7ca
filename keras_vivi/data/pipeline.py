"""The `tf.data` input of training: videos → K shots × F frames × M objects, augmented.

`build_dataset(config, input_context)` reads the shards written by `prepare` (one
`SequenceExample` per video, keys in `schema`) and yields batches of dicts (B videos per replica):

  frames          float32 [B, K, F, S, S, 3]  in [0, 1], augmented; zeros in padded shots
  boxes           float32 [B, K, F, M, 4]     normalised yxyx in the augmented frame, clipped
  class_ids       int32   [B, K, F, M]        detector class ids; 0 where masked
  box_mask        bool    [B, K, F, M]        stored box, score >= min_score, centre in the crop
  frame_mask      bool    [B, K, F]           false only in padded shots
  shot_mask       bool    [B, K]              true for real shots, a prefix
  shot_index      int32   [B, K]              the shot's index in its video; -1 when padded
  frame_position  int32   [B, K, F]           the frame's index in its record; -1 when padded
  video_id        string  [B]                 only with `video_ids=True` (for inspection: strings
                                              cannot enter an XLA/TPU step)
With `raw_frames=True` (for detector crops):
  raw_frames      float32 [B, K, F, R, R, 3]  the un-augmented frame stretched to R×R
  raw_boxes       float32 [B, K, F, M, 4]     the stored boxes in it (normalised yxyx)
  raw_class_ids   int32   [B, K, F, M]        their classes; 0 where masked
  raw_box_mask    bool    [B, K, F, M]        stored box with score >= min_score, real frame
  raw_box_flip    bool    [B, K, F, M]        flip of the box's crop (training only)
  raw_box_color   float32 [B, K, F, M, 4]     colour parameters of the crop (`augment.apply_color`)
With `inline_detection` the stored boxes are not read (boxes, class_ids, box_mask all zero) and:
  raw_frames      as above
  crop            float32 [B, K, F, 4]        the crop window (yxyx of the original frame) and
  flip            bool    [B, K, F]           flip that made `frames`: feed them with the
                                              detector's boxes to `augment.transform_boxes`.

Sampling per video: a window of K consecutive shots (among the shots that have frames) at a
random start; F frames of each, without replacement (in time order) when the shot has at least
F, else with replacement (sorted). Videos with fewer than K shots are padded and masked, or
dropped (`short_videos`); videos without frames, and videos whose record cannot be decoded, are
skipped (the latter with a logged warning). Every random choice is a stateless op seeded by
(seed, input pipeline, element index), so with `config.seed` set two iterations give identical
batches and a stream started at element n (`start`, for a resumed run) is the full stream's
continuation. Training datasets repeat forever; evaluation datasets make one pass.
"""

import os
import secrets

import tensorflow as tf

from keras_vivi.data import augment
from keras_vivi.data import schema

AUTOTUNE = tf.data.AUTOTUNE
SHORT_VIDEOS = ("pad", "drop")
LABELLED_FILE_FEATURES = {"image": tf.io.FixedLenFeature([], tf.string),
                          "label": tf.io.FixedLenFeature([], tf.int64)}


def _check(config):
  if config.short_videos not in SHORT_VIDEOS:
    raise ValueError(f"short_videos must be one of {SHORT_VIDEOS}, got {config.short_videos!r}.")
  if config.box_ablation not in augment.ABLATIONS:
    raise ValueError(f"box_ablation must be one of {augment.ABLATIONS}, got "
                     f"{config.box_ablation!r}.")
  for name in ("shots_per_video", "frames_per_shot", "max_objects", "image_size", "batch_size",
               "raw_image_size", "shuffle_buffer"):
    if int(getattr(config, name)) < 1:
      raise ValueError(f"DataConfig.{name} must be >= 1, got {getattr(config, name)!r}.")
  if config.box_ablation == "random_boxes_and_labels" and config.num_classes < 2:
    raise ValueError(f"num_classes must be >= 2 for random labels, got {config.num_classes!r}.")


def shard_files(path):
  """Sorted shard files of a prepared directory (`videos-*-of-*.tfrecord`) or of a glob."""
  if not path:
    raise ValueError("DataConfig.path is empty: expected a directory of prepared shards or a glob.")
  pattern = os.path.join(path, schema.SHARD_GLOB) if tf.io.gfile.isdir(path) else path
  files = sorted(tf.io.gfile.glob(pattern))
  if files == [path] and ".tfrecord" not in os.path.basename(path):
    raise ValueError(f"{path!r} is a file, not prepared records: expected the --output "
                     f"directory of `vivi-prepare` (or a glob of its {schema.SHARD_GLOB!r} "
                     "shards); prepare the videos first.")
  if not files:
    raise FileNotFoundError(f"No shards match {pattern!r}: expected files named like "
                            f"{schema.SHARD_GLOB!r} written by `vivi-prepare`.")
  return files


def _seeds(config, input_context, training=True):
  """`(base, pipeline_seed)`: the dataset's int seed and the `[2]` seed of this input pipeline
  that every element's randomness is folded from.

  Without `config.seed` a training input is still stateless, from a seed drawn once per dataset;
  an evaluation input uses seed 0.
  """
  if config.seed is not None:
    base = config.seed
  else:
    base = secrets.randbits(31) if training else 0
  pipeline_id = input_context.input_pipeline_id if input_context is not None else 0
  return base, tf.constant([base, pipeline_id], tf.int64)


def _pipeline_files(files, input_context, what, advice=""):
  """Dataset of the names in `files` (of `what`) this input pipeline reads: a 1/N share for N
  pipelines."""
  dataset = tf.data.Dataset.from_tensor_slices(files)
  if input_context is not None and input_context.num_input_pipelines > 1:
    if len(files) < input_context.num_input_pipelines:
      raise ValueError(f"{len(files)} {what}(s) cannot be split over "
                       f"{input_context.num_input_pipelines} input pipelines{advice}.")
    dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  return dataset


def _shuffled_epochs(files, seed):
  """Dataset of file names repeated forever, each epoch in its own order drawn from (seed, epoch).

  Drawn statelessly rather than with `shuffle(reshuffle_each_iteration=True)`, whose orders
  differ between two iterators of one dataset even with a seed.
  """
  all_names = files.batch(2 ** 31 - 1)  # one element: every name of this input pipeline

  def epoch(index):
    def permuted(names):
      keys = tf.random.stateless_uniform(tf.shape(names),
                                         tf.stack([tf.constant(seed, tf.int64), index]))
      return tf.data.Dataset.from_tensor_slices(tf.gather(names, tf.argsort(keys)))
    return all_names.flat_map(permuted)

  return tf.data.Dataset.range(2 ** 62).flat_map(epoch)


def _parse(serialized, config):
  """Serialized video → the tensors the sampler needs, and whether the video is usable."""
  context, seq = schema.parse_video(serialized)
  frame_shot = tf.cast(seq[schema.FRAME_SHOT], tf.int32)
  num_shots = tf.maximum(tf.size(context[schema.SHOT_START]),
                         tf.reduce_max(tf.concat([frame_shot + 1, [0]], 0)))
  counts = tf.math.bincount(frame_shot, minlength=num_shots, maxlength=num_shots,
                            dtype=tf.int32)
  usable = tf.reduce_sum(tf.cast(counts > 0, tf.int32))
  needed = config.shots_per_video if config.short_videos == "drop" else 1
  return {
      "video_id": context[schema.VIDEO_ID],
      "jpeg": seq[schema.FRAME_JPEG],
      "frame_shot": frame_shot,
      "shot_counts": counts,
      "boxes": seq[schema.OBJECT_BOXES],
      "class_ids": seq[schema.OBJECT_CLASS_IDS],
      "scores": seq[schema.OBJECT_SCORES],
  }, usable >= needed


def sample_positions(frame_shot, shot_counts, num_shots, num_frames, seed):
  """Which stored frames make the example.

  Args:
    frame_shot: int32 `[S]` shot index of each stored frame.
    shot_counts: int32 `[num_shots_in_video]` frames per shot.
    num_shots, num_frames: K and F.
    seed: `[2]` int seed.

  Returns:
    `(positions int32 [K, F] into the stored frames (0 in padded shots), shot_index int32 [K]
    (-1 when padded), shot_mask bool [K])`.
  """
  window_seed, frame_seed, replace_seed = augment.split_seed(seed, 3)
  usable = tf.cast(tf.where(shot_counts > 0)[:, 0], tf.int32)
  num_usable = tf.size(usable)
  span = tf.maximum(num_usable - num_shots + 1, 1)
  start = tf.cast(tf.floor(tf.random.stateless_uniform([], window_seed) *
                           tf.cast(span, tf.float32)), tf.int32)
  start = tf.minimum(start, span - 1)
  slot = start + tf.range(num_shots)
  shot_mask = slot < num_usable
  last = tf.maximum(num_usable - 1, 0)
  shot_index = tf.where(shot_mask, tf.gather(usable, tf.minimum(slot, last)), -1)

  count = tf.where(shot_mask, tf.gather(shot_counts, tf.maximum(shot_index, 0)), 1)  # [K]
  # Stored frames grouped by shot, in time order within each shot.
  by_shot = tf.argsort(frame_shot, stable=True)
  offsets = tf.cumsum(shot_counts, exclusive=True)
  offset = tf.where(shot_mask, tf.gather(offsets, tf.maximum(shot_index, 0)), 0)

  width = tf.maximum(tf.reduce_max(count), num_frames)
  keys = tf.random.stateless_uniform([num_shots, width], frame_seed)
  keys = tf.where(tf.range(width)[None, :] < count[:, None], keys, 2.0)
  without = tf.sort(tf.argsort(keys, axis=1)[:, :num_frames], axis=1)
  draws = tf.random.stateless_uniform([num_shots, num_frames], replace_seed)
  draws = tf.cast(tf.floor(draws * tf.cast(count[:, None], tf.float32)), tf.int32)
  with_replacement = tf.sort(tf.minimum(draws, count[:, None] - 1), axis=1)
  local = tf.where(count[:, None] >= num_frames, without, with_replacement)
  positions = tf.gather(by_shot, tf.minimum(offset[:, None] + local, tf.size(by_shot) - 1))
  positions = tf.where(shot_mask[:, None], positions, 0)
  return positions, shot_index, shot_mask


def _decode_frames(jpegs):
  """JPEGs `[U]` → uint8 `[U, H, W, 3]`; a frame of another size is resized to the first's."""
  first = tf.image.extract_jpeg_shape(jpegs[0])[:2]

  def decode(jpeg):
    image = tf.io.decode_jpeg(jpeg, channels=3)
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], first))
    return tf.cond(same, lambda: image,
                   lambda: tf.cast(tf.round(tf.image.resize(image, first)), tf.uint8))

  return tf.map_fn(decode, jpegs, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))


def frame_objects(parsed, positions, max_objects, min_score):
  """Stored detections of the frames at `positions` `[P]`: boxes `[P, M, 4]`, ids, valid.

  `parsed` holds the ragged per-frame `boxes`, `class_ids` and `scores` of one video.
  """
  boxes = tf.gather(parsed["boxes"], positions)
  ids = tf.gather(parsed["class_ids"], positions)
  scores = tf.gather(parsed["scores"], positions)
  count = tf.minimum(boxes.row_lengths() // 4, ids.row_lengths())
  points = tf.shape(positions)[0]
  boxes = tf.reshape(boxes.to_tensor(0.0, shape=[points, 4 * max_objects]),
                     [points, max_objects, 4])
  ids = tf.cast(ids.to_tensor(0, shape=[points, max_objects]), tf.int32)
  # Frames stored without scores count as confident.
  scores = scores.to_tensor(1.0, shape=[points, max_objects])
  valid = (tf.range(max_objects, dtype=count.dtype)[None, :] < count[:, None]) & \
      (scores >= min_score)
  return boxes, ids, valid


def _crop_augmentation(config, seed, shape, training):
  """Flip and colour parameters of each box's crop, drawn here so that the step (compiled with
  XLA or not, whose random ops draw different numbers) only applies them."""
  flip_seed, color_seed = augment.split_seed(tf.random.experimental.stateless_fold_in(seed, 1), 2)
  flip = (augment.sample_flip(shape, flip_seed) if training and config.flip
          else tf.zeros(shape, tf.bool))
  strength = config.color_distortion if training else 0.0
  return {"raw_box_flip": flip, "raw_box_color": augment.sample_color_parameters(
      shape, strength, color_seed, config.color_policy)}


def _frame_crops(config, shape, real, crop_seed, flip_seed, training):
  """Crop boxes `[n, 4]` and flips `[n]` of the sampled frames; padded frames (not `real`) get
  the whole image, unflipped."""
  n = real.shape[0]
  if training:
    crop = augment.sample_crop(shape, config.crop_area, config.crop_aspect_ratio, crop_seed,
                               batch_shape=[n])
    flip = augment.sample_flip([n], flip_seed) if config.flip else tf.zeros([n], tf.bool)
  else:
    crop = augment.central_crop(shape, 1.0, batch_shape=[n])
    flip = tf.zeros([n], tf.bool)
  crop = tf.where(real[:, None], crop, tf.constant([0.0, 0.0, 1.0, 1.0]))
  return crop, flip & real


def _make_example(index, parsed, config, base_seed, training, video_ids, raw_frames):
  k, f, m, s = (config.shots_per_video, config.frames_per_shot, config.max_objects,
                config.image_size)
  seed = tf.random.experimental.stateless_fold_in(base_seed, index)
  (sample_seed, crop_seed, flip_seed, color_seed, ablation_seed) = augment.split_seed(seed, 5)
  positions, shot_index, shot_mask = sample_positions(
      parsed["frame_shot"], parsed["shot_counts"], k, f, sample_seed)
  frame_mask = tf.broadcast_to(shot_mask[:, None], [k, f])
  flat = tf.reshape(positions, [-1])
  unique, which = tf.unique(flat, out_idx=tf.int32)
  images = _decode_frames(tf.gather(parsed["jpeg"], unique))
  shape = tf.shape(images)[1:3]

  n = k * f
  real = tf.reshape(frame_mask, [n])
  crop, flip = _frame_crops(config, shape, real, crop_seed, flip_seed, training)
  frames = augment.crop_and_resize(images, crop, flip, s, image_index=which)
  if training and config.color_distortion > 0:
    frames = augment.color_distortion(frames, config.color_distortion, color_seed,
                                      config.color_policy)
  frames = frames * tf.cast(real, tf.float32)[:, None, None, None]

  example = {"frames": tf.reshape(frames, [k, f, s, s, 3]), "frame_mask": frame_mask,
             "shot_mask": shot_mask, "shot_index": shot_index,
             "frame_position": tf.where(frame_mask, positions, -1)}
  if video_ids:
    example["video_id"] = parsed["video_id"]
  if config.inline_detection or raw_frames:
    r = config.raw_image_size
    raw = augment.crop_and_resize(images, tf.tile([[0.0, 0.0, 1.0, 1.0]], [n, 1]),
                                  tf.zeros([n], tf.bool), r, image_index=which)
    raw = raw * tf.cast(real, tf.float32)[:, None, None, None]
    example["raw_frames"] = tf.reshape(raw, [k, f, r, r, 3])
  if raw_frames:
    example.update(_crop_augmentation(config, seed, [k, f, m], training))
  if config.inline_detection:
    example.update(crop=tf.reshape(crop, [k, f, 4]),
                   flip=tf.reshape(flip, [k, f]), boxes=tf.zeros([k, f, m, 4]),
                   class_ids=tf.zeros([k, f, m], tf.int32), box_mask=tf.zeros([k, f, m], tf.bool))
    return example

  boxes, ids, valid = frame_objects(parsed, flat, m, config.min_score)
  if raw_frames:
    stored = valid & real[:, None]
    example.update(raw_boxes=tf.reshape(tf.where(stored[..., None], boxes, 0.0), [k, f, m, 4]),
                   raw_class_ids=tf.reshape(tf.where(stored, ids, 0), [k, f, m]),
                   raw_box_mask=tf.reshape(stored, [k, f, m]))
  boxes, inside = augment.transform_boxes(boxes, crop, flip)
  valid = valid & inside & real[:, None]
  boxes, ids = augment.ablate(boxes, ids, valid, config.box_ablation, config.num_classes,
                              ablation_seed)
  # Masked entries hold zeros, so nothing downstream can read a stale box or class.
  boxes = tf.where(valid[..., None], boxes, 0.0)
  ids = tf.where(valid, ids, 0)
  example.update(boxes=tf.reshape(boxes, [k, f, m, 4]), class_ids=tf.reshape(ids, [k, f, m]),
                 box_mask=tf.reshape(valid, [k, f, m]))
  return example


def _keep(parsed, keep):
  del parsed
  return keep


def _drop_flag(parsed, keep):
  del keep
  return parsed


def _check_start(start):
  if int(start) < 0:
    raise ValueError(f"start must be >= 0 (elements already trained on), got {start!r}.")


def _per_replica_batch(batch_size, input_context):
  if input_context is None:
    return batch_size
  return input_context.get_per_replica_batch_size(batch_size)


def _options(deterministic):
  options = tf.data.Options()
  options.deterministic = deterministic
  return options


def build_dataset(config, input_context=None, *, training=True, video_ids=False, start=0,
                  raw_frames=False):
  """The training input: batches of K shots × F frames × M objects per video.

  Args:
    config: `keras_vivi.configs.DataConfig`.
    input_context: `tf.distribute.InputContext` (from `distribute_datasets_from_function`): shards
      are split per input pipeline and batches are per replica.
    training: random crop, flip and colour, shuffled and repeated forever; when False a central
      square crop, no flip or colour, one pass in file order.
    video_ids: add each video's `video_id` string (never for `fit`: a step compiled with XLA, as
      on TPUs, takes no strings).
    start: how many videos of this input pipeline's stream to pass over (those a resumed run
      has trained on): read and parsed, never decoded. With `config.seed` set the result is
      the stream's continuation, the same videos with the same augmentation.
    raw_frames: add the un-augmented frames and their stored detections (`raw_frames`,
      `raw_boxes`, `raw_class_ids`, `raw_box_mask`), which detector crops are cut from.

  Returns:
    `tf.data.Dataset` of dicts (see the module docstring), batched with `drop_remainder=True`.
  """
  _check(config)
  _check_start(start)
  files = shard_files(config.path)
  base, base_seed = _seeds(config, input_context, training)
  batch = _per_replica_batch(config.batch_size, input_context)

  dataset = _pipeline_files(files, input_context, "shard", ": prepare with more shards (a "
                            "smaller videos_per_shard) or use fewer workers")
  if training:
    dataset = _shuffled_epochs(dataset, base)
  dataset = dataset.interleave(
      tf.data.TFRecordDataset, cycle_length=min(len(files), 16), block_length=1,
      num_parallel_calls=AUTOTUNE, deterministic=True)
  if training:
    # The stream is already endless: one shuffle order, the same for every iterator.
    dataset = dataset.shuffle(config.shuffle_buffer, seed=base, reshuffle_each_iteration=False)
  dataset = dataset.map(lambda x: _parse(x, config), num_parallel_calls=AUTOTUNE)
  dataset = dataset.filter(_keep).map(_drop_flag)
  # A record that cannot be read or parsed (truncated shard, damaged proto) or decoded (corrupt
  # JPEG) is skipped with a warning rather than ending a long job. Read and parse errors are
  # dropped before the videos are numbered, so `start` passes over them as a full run does.
  dataset = dataset.ignore_errors(log_warning=True)
  # Each video's randomness is keyed on its index in this stream, so skipping keeps it.
  dataset = dataset.enumerate().skip(start)
  dataset = dataset.map(lambda i, parsed: _make_example(i, parsed, config, base_seed, training,
                                                      video_ids, raw_frames),
                        num_parallel_calls=AUTOTUNE)
  dataset = dataset.ignore_errors(log_warning=True)
  dataset = dataset.batch(batch, drop_remainder=True)
  dataset = dataset.prefetch(AUTOTUNE)
  return dataset.with_options(_options(config.seed is not None or not training))


def _labelled_files(name):
  """Files of a TFRecord glob/path, [] for a tfds name; a path that matches nothing is an error."""
  is_glob = any(c in name for c in "*?[")
  if is_glob or tf.io.gfile.exists(name):
    files = sorted(tf.io.gfile.glob(name))
    if files:
      return files
  if is_glob or name.endswith((".tfrecord", ".tfrecords")) or name.count("/") > 1:
    raise FileNotFoundError(f"No files match labelled_images={name!r}: expected a TFRecord glob "
                            "of {image, label} examples or a tfds name such as 'imagenet2012' "
                            "or 'cifar10:train'.")
  return []


def _labelled_source(name, input_context, seed):
  """Dataset of `(image, label)` from a TFRecord glob or a tfds name, repeated.

  Images stay encoded (a string) so that passing over them (`start`) costs no decoding; a tfds
  dataset that stores pixels gives uint8 `[H, W, C]`.
  """
  files = _labelled_files(name)
  if not files:
    import tensorflow_datasets as tfds  # only needed for tfds sources
    dataset_name, _, split = name.partition(":")
    info = tfds.builder(dataset_name).info
    image_key = info.supervised_keys[0]
    encoded = isinstance(info.features[image_key], tfds.features.Image)
    read_config = tfds.ReadConfig(input_context=input_context, shuffle_seed=seed)
    return tfds.load(dataset_name, split=split or "train", shuffle_files=True,
                     read_config=read_config, as_supervised=True,
                     decoders={image_key: tfds.decode.SkipDecoding()} if encoded else None
                     ).repeat()
  dataset = _shuffled_epochs(_pipeline_files(files, input_context, "labelled-image file"), seed)
  dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 16),
                               num_parallel_calls=AUTOTUNE, deterministic=True)

  def parse(serialized):
    features = tf.io.parse_single_example(serialized, LABELLED_FILE_FEATURES)
    return features["image"], features["label"]

  return dataset.map(parse, num_parallel_calls=AUTOTUNE)


def build_labelled_dataset(config, input_context=None, *, start=0):
  """Labelled images for co-training: `{image float32 [b, S, S, 3] in [0, 1], label int32 [b]}`.

  Source `config.labelled_images`: a glob of TFRecords holding `image` (encoded PNG/JPEG bytes)
  and `label` (int64), or a tfds name (`"name"` or `"name:split"`, default split train).
  Preprocessing: inception crop (`crop_area`, `crop_aspect_ratio`), flip if `config.flip`,
  resize to `image_size`. Shuffled and repeated; `b` is `labelled_batch_size` per replica.
  `start` images of this input pipeline's stream are passed over undecoded (see `build_dataset`).
  """
  if not config.labelled_images:
    raise ValueError("DataConfig.labelled_images is empty: expected a tfds name or a TFRecord "
                     "glob.")
  if config.labelled_batch_size < 1:
    raise ValueError(f"labelled_batch_size must be >= 1, got {config.labelled_batch_size!r}.")
  _check_start(start)
  base, base_seed = _seeds(config, input_context)
  dataset = _labelled_source(config.labelled_images, input_context, base)
  dataset = dataset.shuffle(max(config.shuffle_buffer, 1), seed=base,
                            reshuffle_each_iteration=False)

  def preprocess(index, image, label):
    seed = tf.random.experimental.stateless_fold_in(base_seed, index)
    if image.dtype == tf.string:
      image = tf.io.decode_image(image, channels=3, expand_animations=False)
    image = tf.cond(tf.shape(image)[-1] < 3, lambda: tf.image.grayscale_to_rgb(image[..., :1]),
                    lambda: image[..., :3])
    image, _, _ = augment.inception_crop(image, config.image_size, seed, config.crop_area,
                                         config.crop_aspect_ratio, config.flip)
    return {"image": tf.ensure_shape(image, [config.image_size, config.image_size, 3]),
            "label": tf.cast(label, tf.int32)}

  dataset = dataset.enumerate().skip(start).map(lambda i, item: preprocess(i, *item),
                                                num_parallel_calls=AUTOTUNE)
  dataset = dataset.batch(_per_replica_batch(config.labelled_batch_size, input_context),
                          drop_remainder=True)
  return dataset.prefetch(AUTOTUNE).with_options(_options(config.seed is not None))
