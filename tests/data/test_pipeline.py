"""The training input on ramp-valued synthetic records and on records `prepare` made from the real
sample videos: sampling, crop/flip against NumPy, boxes that move with the pixels, masks,
ablations, determinism, sharding, inline-detection elements, the labelled-image input."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from keras_vivi.configs import DataConfig
from keras_vivi.data import pipeline, prepare, records, sample_videos, schema
from tests.helpers.records import SIZE, digits_tfrecord, synthetic_video
from tests.helpers.references import np_crop_resize, np_transform_boxes

# video id -> frames per shot (context lists one shot per entry; 0 = a shot without frames).
SYNTHETIC = {
    "long": [1, 3, 8, 12, 2, 5],
    "objects": [6, 6, 6, 6],
    "gap": [3, 0, 2, 4],
    "short": [2, 1],
    "single": [4],
    "empty": [],
}
BASE = DataConfig(shots_per_video=4, frames_per_shot=4, max_objects=5, image_size=24,
                  batch_size=2, color_distortion=0.0, seed=3, raw_image_size=SIZE,
                  shuffle_buffer=8)


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
  """Six videos in three shards (two per shard)."""
  out = tmp_path_factory.mktemp("synthetic")
  items = list(SYNTHETIC.items())
  for shard in range(3):
    with tf.io.TFRecordWriter(prepare.shard_path(str(out), shard, 3)) as writer:
      for j in (2 * shard, 2 * shard + 1):
        writer.write(synthetic_video(items[j][0], items[j][1], seed=j))
  return str(out)


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory, mediapipe_detector):
  out = tmp_path_factory.mktemp("prepared")
  prepare.prepare([str(p) for p in sample_videos.sample_video_paths().values()], str(out),
                  prepare.PrepareConfig(videos_per_shard=1, frame_short_side=96), progress=False)
  return str(out)


def read_records(directory):
  """video id -> decoded frames uint8 [S, H, W, 3], shot index, boxes [S][n, 4], ids, scores."""
  videos = {}
  for serialized in tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(f"{directory}/*.tfrecord"))):
    context, seq = schema.parse_video(serialized)
    videos[context[schema.VIDEO_ID].numpy().decode()] = {
        "frames": [tf.io.decode_jpeg(j, channels=3).numpy() for j in seq[schema.FRAME_JPEG]],
        "shot": seq[schema.FRAME_SHOT].numpy(),
        "boxes": [b.reshape(-1, 4) for b in seq[schema.OBJECT_BOXES].numpy()],
        "class_ids": list(seq[schema.OBJECT_CLASS_IDS].numpy()),
        "scores": list(seq[schema.OBJECT_SCORES].numpy())}
  return videos


def build_dataset(config, *args, **kwargs):
  """The training input with each video's id, to check elements against their records."""
  return pipeline.build_dataset(config, *args, video_ids=True, **kwargs)


def elements(dataset, batches):
  """The first `batches` batches, unbatched: a list of dicts of NumPy values."""
  out = []
  for batch in dataset.take(batches):
    batch = {k: v.numpy() for k, v in batch.items()}
    out += [{k: v[i] for k, v in batch.items()} for i in range(len(batch["video_id"]))]
  return out


def check_against_records(element, inline, video, config, training=True):
  """Every frame, box and mask of `element` from the stored record, with the crop and flip that
  the same-seed inline element reports. Returns the number of valid boxes checked."""
  checked = [0]
  k, f, m = config.shots_per_video, config.frames_per_shot, config.max_objects
  np.testing.assert_array_equal(element["frames"], inline["frames"])
  np.testing.assert_array_equal(element["frame_position"], inline["frame_position"])
  shot_mask = element["shot_mask"]
  num_shots = shot_mask.sum()
  assert np.array_equal(shot_mask, np.arange(k) < num_shots)  # a valid prefix
  np.testing.assert_array_equal(element["frame_mask"], np.repeat(shot_mask[:, None], f, 1))
  usable = np.unique(video["shot"])
  assert num_shots == min(k, len(usable))
  window = element["shot_index"][:num_shots]
  start = np.searchsorted(usable, window[0])
  np.testing.assert_array_equal(window, usable[start:start + num_shots])  # consecutive shots
  assert np.all(element["shot_index"][num_shots:] == -1)
  for s in range(k):
    positions = element["frame_position"][s]
    if not shot_mask[s]:
      assert np.all(positions == -1) and not element["box_mask"][s].any()
      assert not element["frames"][s].any() and not element["boxes"][s].any()
      continue
    in_shot = np.flatnonzero(video["shot"] == element["shot_index"][s])
    assert set(positions) <= set(in_shot) and np.all(np.diff(positions) >= 0)
    if len(in_shot) >= f:
      assert len(set(positions)) == f  # without replacement
    for j, pos in enumerate(positions):
      crop, flip = inline["crop"][s, j], inline["flip"][s, j]
      if not training:
        assert not flip
      expected = np_crop_resize(video["frames"][pos], crop, flip, config.image_size) / 255.0
      np.testing.assert_allclose(element["frames"][s, j], expected, atol=2e-4)
      stored = video["boxes"][pos][:m]
      n = len(stored)
      boxes, inside = (np_transform_boxes(stored, crop, flip) if n else
                       (np.zeros([0, 4]), np.zeros(0, bool)))
      valid = np.zeros(m, bool)
      valid[:n] = inside & (video["scores"][pos][:m] >= config.min_score)
      # A centre on the crop's edge (boxes and crops share the pixel grid) is inside or not by
      # float rounding: accept either there.
      centres = np.full([m, 2], 0.5)
      centres[:n] = ((stored[:, :2] + stored[:, 2:]) / 2 - crop[:2]) / (crop[2:] - crop[:2])
      on_edge = np.any(np.isclose(centres, 0, atol=1e-5) | np.isclose(centres, 1, atol=1e-5), -1)
      valid = np.where(on_edge, element["box_mask"][s, j], valid)
      np.testing.assert_array_equal(element["box_mask"][s, j], valid)
      np.testing.assert_allclose(element["boxes"][s, j][valid], boxes[valid[:n]], atol=1e-5)
      checked[0] += valid.sum()
      np.testing.assert_array_equal(element["class_ids"][s, j][valid],
                                    video["class_ids"][pos][:m][valid[:n]])
      assert not element["boxes"][s, j][~valid].any()
      assert not element["class_ids"][s, j][~valid].any()
  return checked[0]


def build_pair(config, batches, training=True):
  """Same-seed elements without and with inline detection (the latter reports crop and flip)."""
  plain = elements(build_dataset(config, training=training), batches)
  inline = elements(build_dataset(dataclasses.replace(config, inline_detection=True),
                                           training=training), batches)
  return plain, inline


def test_element_spec(synthetic_dir):
  config = dataclasses.replace(BASE, path=synthetic_dir)
  b, k, f, m, s = 2, 4, 4, 5, 24
  expected = {
      "frames": ([b, k, f, s, s, 3], tf.float32), "boxes": ([b, k, f, m, 4], tf.float32),
      "class_ids": ([b, k, f, m], tf.int32), "box_mask": ([b, k, f, m], tf.bool),
      "frame_mask": ([b, k, f], tf.bool), "shot_mask": ([b, k], tf.bool),
      "shot_index": ([b, k], tf.int32), "frame_position": ([b, k, f], tf.int32)}
  # No strings by default: an XLA (TPU) step takes none.
  spec = pipeline.build_dataset(config).element_spec
  assert {key: (v.shape.as_list(), v.dtype) for key, v in spec.items()} == expected
  with_ids = build_dataset(config).element_spec
  assert {key: (v.shape.as_list(), v.dtype) for key, v in with_ids.items()} == {
      **expected, "video_id": ([b], tf.string)}
  inline = pipeline.build_dataset(dataclasses.replace(config, inline_detection=True)).element_spec
  assert {key: (v.shape.as_list(), v.dtype) for key, v in inline.items()} == {
      **expected, "raw_frames": ([b, k, f, SIZE, SIZE, 3], tf.float32),
      "crop": ([b, k, f, 4], tf.float32), "flip": ([b, k, f], tf.bool)}


def test_synthetic_elements_match_numpy_crops_flips_boxes_and_masks(synthetic_dir):
  config = dataclasses.replace(BASE, path=synthetic_dir, crop_area=(0.2, 1.0))
  videos = read_records(synthetic_dir)
  plain, inline = build_pair(config, batches=8)
  seen = set()
  for element, other in zip(plain, inline):
    video_id = element["video_id"].decode()
    seen.add(video_id)
    check_against_records(element, other, videos[video_id], config)
    # The inline element's raw frames are the stored frames (SIZE×SIZE, not resized).
    for s, j in zip(*np.nonzero(other["frame_mask"])):
      np.testing.assert_allclose(other["raw_frames"][s, j],
                                 videos[video_id]["frames"][other["frame_position"][s, j]] / 255.0,
                                 atol=1e-5)
    assert not other["box_mask"].any() and not other["boxes"].any()
    assert not other["raw_frames"][~other["frame_mask"]].any()
  assert seen == set(SYNTHETIC) - {"empty"}  # the frameless video is skipped
  flips = np.concatenate([e["flip"][e["frame_mask"]] for e in inline])
  assert 0.2 < flips.mean() < 0.8
  crops = np.concatenate([e["crop"][e["frame_mask"]] for e in inline])
  assert len(np.unique(crops, axis=0)) > 0.9 * len(crops)  # a crop per frame


def test_the_drawn_box_is_where_the_boxes_say(synthetic_dir):
  config = dataclasses.replace(BASE, path=synthetic_dir, image_size=48, crop_area=(0.3, 1.0))
  found = 0
  for element in elements(build_dataset(config), 6):
    for s, j in zip(*np.nonzero(element["box_mask"][..., 0])):
      # Only the first detection of a frame is drawn; other boxes may cover part of it.
      bright = element["frames"][s, j].min(-1) > 0.6
      rows, cols = np.nonzero(bright.any(1))[0], np.nonzero(bright.any(0))[0]
      drawn = np.array([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]) / 48
      np.testing.assert_allclose(drawn, element["boxes"][s, j, 0], atol=2.5 / 48)
      found += 1
  assert found >= 20


def test_eval_mode_is_the_whole_square_frame_without_flip(synthetic_dir):
  config = dataclasses.replace(BASE, path=synthetic_dir, image_size=SIZE, color_distortion=1.0)
  videos = read_records(synthetic_dir)
  plain, inline = build_pair(config, batches=2, training=False)
  for element, other in zip(plain, inline):
    assert not other["flip"].any()
    np.testing.assert_allclose(other["crop"][other["frame_mask"]], [[0, 0, 1, 1]] * int(
        other["frame_mask"].sum()))
    check_against_records(element, other, videos[element["video_id"].decode()], config,
                          training=False)
  # One pass: every usable video once, then the end.
  ids = [e["video_id"].decode() for e in elements(
      build_dataset(dataclasses.replace(config, batch_size=1), training=False), 100)]
  assert sorted(ids) == ["gap", "long", "objects", "short", "single"]


def test_short_videos_are_padded_or_dropped(synthetic_dir):
  config = dataclasses.replace(BASE, path=synthetic_dir, batch_size=1)
  padded = {e["video_id"].decode(): e for e in elements(
      build_dataset(config, training=False), 100)}
  assert padded["short"]["shot_mask"].tolist() == [True, True, False, False]
  assert padded["single"]["shot_mask"].tolist() == [True, False, False, False]
  assert padded["gap"]["shot_mask"].tolist() == [True, True, True, False]
  assert padded["gap"]["shot_index"].tolist() == [0, 2, 3, -1]  # shot 1 has no frame
  dropped = [e["video_id"].decode() for e in elements(build_dataset(
      dataclasses.replace(config, short_videos="drop"), training=False), 100)]
  assert sorted(dropped) == ["long", "objects"]
  for element in padded.values():
    for key in ("frames", "boxes"):
      assert np.all(np.isfinite(element[key]))


def test_colour_distortion_changes_pixels_only(synthetic_dir):
  config = dataclasses.replace(BASE, path=synthetic_dir)
  plain = elements(build_dataset(config), 3)
  coloured = elements(build_dataset(dataclasses.replace(config, color_distortion=0.5)), 3)
  for a, b in zip(plain, coloured):
    for key in a:
      if key != "frames":
        np.testing.assert_array_equal(a[key], b[key])
    real = a["frame_mask"]
    assert not np.allclose(a["frames"][real], b["frames"][real], atol=0.02)
    assert b["frames"].min() >= 0 and b["frames"].max() <= 1
    assert not b["frames"][~real].any()


@pytest.mark.parametrize("mode", ["random_boxes", "random_boxes_and_labels"])
def test_ablations_change_what_they_should_and_nothing_else(synthetic_dir, mode):
  config = dataclasses.replace(BASE, path=synthetic_dir, num_classes=50)
  plain = elements(build_dataset(config), 4)
  ablated = elements(build_dataset(dataclasses.replace(config, box_ablation=mode)), 4)
  changed_labels = []
  for a, b in zip(plain, ablated):
    for key in a:
      if key not in ("boxes", "class_ids"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    mask = a["box_mask"]
    assert np.all(np.any(a["boxes"][mask] != b["boxes"][mask], -1))
    assert not b["boxes"][~mask].any() and not b["class_ids"][~mask].any()
    assert np.all((b["boxes"] >= 0) & (b["boxes"] <= 1))
    if mode == "random_boxes":
      np.testing.assert_array_equal(a["class_ids"], b["class_ids"])
    else:
      assert np.all((b["class_ids"][mask] >= 1) & (b["class_ids"][mask] < 50))
      changed_labels += list(a["class_ids"][mask] != b["class_ids"][mask])
  if mode == "random_boxes_and_labels":
    assert np.mean(changed_labels) > 0.8
  # Seeded: the same ablation again.
  again = elements(build_dataset(dataclasses.replace(config, box_ablation=mode)), 4)
  for a, b in zip(ablated, again):
    np.testing.assert_array_equal(a["boxes"], b["boxes"])
    np.testing.assert_array_equal(a["class_ids"], b["class_ids"])


def test_a_seed_makes_iterations_identical(synthetic_dir):
  config = dataclasses.replace(BASE, path=synthetic_dir, color_distortion=0.5)
  dataset = build_dataset(config)
  first, second = elements(dataset, 5), elements(dataset, 5)
  rebuilt = elements(build_dataset(config), 5)
  other = elements(build_dataset(dataclasses.replace(config, seed=4)), 5)
  for a, b, c in zip(first, second, rebuilt):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
      np.testing.assert_array_equal(a[key], c[key], err_msg=key)
  assert any(not np.array_equal(a["frames"], d["frames"]) for a, d in zip(first, other))
  # Repeats forever, with fresh augmentation after the first pass over the videos.
  long_run = elements(dataset, 12)
  assert len(long_run) == 24
  by_video = {}
  for e in long_run:
    by_video.setdefault(e["video_id"].decode(), []).append(e["frames"])
  assert all(not np.array_equal(v[0], v[1]) for v in by_video.values() if len(v) > 1)


def test_start_continues_the_stream(synthetic_dir):
  """A resumed run's input: `start` videos passed over, the rest identical to the full stream,
  across epochs and past videos the filter drops ("empty"; "short" and "single" with drop)."""
  config = dataclasses.replace(BASE, path=synthetic_dir, color_distortion=0.5,
                               short_videos="drop")
  full = elements(build_dataset(config), 6)
  for start in (2, 5):
    resumed = elements(build_dataset(config, start=start), 6 - (start + 1) // 2)
    tail = full[start:start + len(resumed)]
    assert len(tail) == len(resumed) >= 6
    for a, b in zip(tail, resumed):
      for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_shards_split_per_input_pipeline(synthetic_dir):
  config = dataclasses.replace(BASE, path=synthetic_dir, batch_size=2)
  seen = []
  for pipeline_id in range(3):
    context = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=2)
    dataset = build_dataset(config, context, training=False)
    assert dataset.element_spec["frames"].shape[0] == 1  # per-replica batch
    seen.append({e["video_id"].decode() for e in elements(dataset, 100)})
  assert seen == [{"long", "objects"}, {"gap", "short"}, {"single"}]
  with pytest.raises(ValueError, match="3 shard.*4 input pipelines"):
    build_dataset(dataclasses.replace(config, batch_size=4),
                           tf.distribute.InputContext(4, 0, 4))


def test_distribute_datasets_from_function_on_two_replicas(synthetic_dir, mirrored_strategy):
  config = dataclasses.replace(BASE, path=synthetic_dir, batch_size=4)
  strategy = mirrored_strategy
  dataset = strategy.distribute_datasets_from_function(
      lambda context: build_dataset(config, context))
  batch = next(iter(dataset))
  parts = strategy.experimental_local_results(batch["frames"])
  assert len(parts) == 2 and all(p.shape == (2, 4, 4, 24, 24, 3) for p in parts)


def test_bad_records_are_skipped_and_odd_ones_kept(tmp_path):
  """A corrupt JPEG skips its video (with a logged warning) instead of ending the job; frames of
  mixed sizes in one video are resized to the first frame's size."""
  def video(video_id, frames):
    n = len(frames)
    none = {"detection_boxes": np.zeros([n, 0, 4]), "detection_scores": np.zeros([n, 0]),
            "detection_class_labels": np.zeros([n, 0], np.int64),
            "detection_class_entities": np.zeros([n, 0], object)}
    jpegs = [f if isinstance(f, bytes) else records.encode_jpeg(f) for f in frames]
    return records.video_example(video_id, video_id, 1.0, 1.0, False, [0.0], [1.0], jpegs,
                                 np.zeros(n, np.int64), np.arange(n, dtype=float), np.arange(n),
                                 none, np.zeros(n, np.int64)).SerializeToString()

  grey = np.full([20, 30, 3], 128, np.uint8)
  with tf.io.TFRecordWriter(prepare.shard_path(str(tmp_path), 0, 1)) as writer:
    writer.write(video("corrupt", [grey, b"\xff\xd8 not really a jpeg"]))
    writer.write(video("mixed", [grey, np.full([40, 24, 3], 200, np.uint8)]))
    writer.write(video("fine", [grey]))
  config = dataclasses.replace(BASE, path=str(tmp_path), batch_size=1, frames_per_shot=8)
  found = {e["video_id"].decode(): e for e in elements(
      build_dataset(config, training=False), 10)}
  assert set(found) == {"mixed", "fine"}
  frames = found["mixed"]["frames"][0]
  positions = found["mixed"]["frame_position"][0]
  assert set(positions) == {0, 1}
  np.testing.assert_allclose(frames[positions == 1], 200 / 255, atol=2 / 255)
  np.testing.assert_allclose(frames[positions == 0], 128 / 255, atol=2 / 255)
  assert not found["fine"]["box_mask"].any()


@pytest.mark.parametrize("field,value,message", [
    ("short_videos", "skip", "short_videos.*'skip'"),
    ("box_ablation", "random", "box_ablation.*'random'"),
    ("frames_per_shot", 0, "frames_per_shot must be >= 1, got 0"),
    ("path", "", "path is empty"),
    ("path", "/nonexistent/shards", "No shards match '/nonexistent/shards"),
])
def test_bad_configs_name_the_value(synthetic_dir, field, value, message):
  with pytest.raises((ValueError, FileNotFoundError), match=message):
    build_dataset(dataclasses.replace(BASE, **{"path": synthetic_dir, field: value}))


def test_real_prepared_records(real_dir):
  """bikes.mp4 has six shots, the other sample videos one each; boxes come from MediaPipe."""
  config = dataclasses.replace(BASE, path=real_dir, frames_per_shot=8, image_size=32,
                               crop_area=(0.08, 1.0), raw_image_size=64)
  videos = read_records(real_dir)
  plain, inline = build_pair(config, batches=4)
  boxes_checked = 0
  for element, other in zip(plain, inline):
    video = videos[element["video_id"].decode()]
    boxes_checked += check_against_records(element, other, video, config)
    assert other["raw_frames"].shape == (4, 8, 64, 64, 3)
  assert boxes_checked > 0
  one_pass = elements(build_dataset(dataclasses.replace(config, batch_size=1),
                                             training=False), 100)
  assert {e["video_id"].decode(): e["shot_mask"].sum() for e in one_pass} == {
      "bikes.mp4": 4, "bigbuckbunny.mp4": 1, "carphone_pristine.mp4": 1,
      "carphone_distorted.mp4": 1}
  # Real colour distortion stays finite and in range.
  coloured = next(iter(build_dataset(dataclasses.replace(config, color_distortion=1.0))))
  assert np.all(np.isfinite(coloured["frames"])) and coloured["frames"].numpy().max() <= 1


def test_labelled_images_from_tfrecords(tmp_path):
  images, labels = digits_tfrecord(tmp_path / "digits.tfrecord")
  config = DataConfig(labelled_images=str(tmp_path / "*.tfrecord"), labelled_batch_size=16,
                      image_size=16, seed=0, shuffle_buffer=1, crop_area=(1.0, 1.0),
                      crop_aspect_ratio=(1.0, 1.0), flip=False)
  dataset = pipeline.build_labelled_dataset(config)
  assert {k: (v.shape.as_list(), v.dtype) for k, v in dataset.element_spec.items()} == {
      "image": ([16, 16, 16, 3], tf.float32), "label": ([16], tf.int32)}
  batch = next(iter(dataset))
  # Without shuffling, cropping or flipping: the digits in order, grey → RGB, resized.
  np.testing.assert_array_equal(batch["label"], labels[:16])
  for i in range(16):
    expected = np_crop_resize(np.repeat(images[i][..., None], 3, -1), [0, 0, 1, 1], False, 16)
    np.testing.assert_allclose(batch["image"][i], expected / 255.0, atol=1e-4)

  augmented = dataclasses.replace(config, crop_area=(0.08, 1.0), crop_aspect_ratio=(0.75, 1.33),
                                  flip=True, shuffle_buffer=64, labelled_batch_size=32)
  first = [b for b in pipeline.build_labelled_dataset(augmented).take(3)]
  again = [b for b in pipeline.build_labelled_dataset(augmented).take(3)]
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a["image"], b["image"])
  assert set(np.concatenate([b["label"] for b in first])) == set(range(10))
  context = tf.distribute.InputContext(1, 0, 2)
  assert pipeline.build_labelled_dataset(augmented, context).element_spec["image"].shape[0] == 16


def test_labelled_images_start_continues_the_stream(tmp_path):
  digits_tfrecord(tmp_path / "digits.tfrecord")
  config = DataConfig(labelled_images=str(tmp_path / "*.tfrecord"), labelled_batch_size=8,
                      image_size=16, seed=5, shuffle_buffer=16)
  with pytest.raises(ValueError, match=r"start must be >= 0 .*, got -8\."):
    pipeline.build_labelled_dataset(config, start=-8)
  full = [b for b in pipeline.build_labelled_dataset(config).take(30)]
  resumed = [b for b in pipeline.build_labelled_dataset(config, start=8 * 23).take(7)]
  for a, b in zip(full[23:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])


def test_labelled_images_from_tfds():
  import tensorflow_datasets as tfds
  config = DataConfig(labelled_images="mnist", labelled_batch_size=4, image_size=20, seed=0)
  with tfds.testing.mock_data(num_examples=8):
    batch = next(iter(pipeline.build_labelled_dataset(config)))
  assert batch["image"].shape == (4, 20, 20, 3) and batch["label"].dtype == tf.int32
  with pytest.raises(FileNotFoundError, match="labelled_images='/no/such/\\*.tfrecord'"):
    pipeline.build_labelled_dataset(
        dataclasses.replace(config, labelled_images="/no/such/*.tfrecord"))


@pytest.mark.slow
def test_feeds_the_backbone_and_losses_for_a_few_steps(real_dir):
  """Real prepared records through a ResNet-50 v2 with the frame and object triplet losses."""
  import tf_keras
  from keras_vivi.losses import hierarchy
  from keras_vivi.models import ProjectionHead, ResNetV2, gather_box_features
  config = dataclasses.replace(BASE, path=real_dir, frames_per_shot=2, image_size=64,
                               color_distortion=0.5)
  backbone = ResNetV2(depth=50)
  frame_head, object_head = ProjectionHead(16), ProjectionHead(16)
  optimizer = tf_keras.optimizers.SGD(0.01, momentum=0.9)

  @tf.function
  def step(batch):
    b, k, f, m = batch["box_mask"].shape
    images = tf.reshape(batch["frames"], [-1, 64, 64, 3])
    with tf.GradientTape() as tape:
      out = backbone(images, training=True)
      frames = tf.reshape(frame_head(out["pre_logits"]), [b, k, f, -1])
      boxes = tf.reshape(batch["boxes"], [-1, m, 4])
      objects = object_head(gather_box_features(out["4"], boxes, (64, 64)))
      frame_loss = hierarchy.frame_loss(frames, batch["frame_mask"]).share
      object_loss = hierarchy.object_loss(objects, tf.reshape(batch["class_ids"], [-1, m]),
                                          tf.reshape(batch["box_mask"], [-1, m])).share
      loss = frame_loss + 5.0 * object_loss
    variables = (backbone.trainable_variables + frame_head.trainable_variables +
                 object_head.trainable_variables)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  for batch in build_dataset(config).take(3):
    assert np.isfinite(step(batch).numpy())


def test_raw_frames_carry_the_stored_frames_and_their_stored_boxes(synthetic_dir):
  config = dataclasses.replace(BASE, path=synthetic_dir, min_score=0.3, color_distortion=1.0)
  videos = read_records(synthetic_dir)
  plain = elements(build_dataset(config), 6)
  raw = elements(build_dataset(config, raw_frames=True), 6)
  for element, other in zip(plain, raw):
    video = videos[element["video_id"].decode()]
    for key in element:  # the training example itself is unchanged
      np.testing.assert_array_equal(other[key], element[key], err_msg=key)
    for s, j in np.ndindex(*other["frame_mask"].shape):
      if not other["frame_mask"][s, j]:
        assert not other["raw_box_mask"][s, j].any() and not other["raw_frames"][s, j].any()
        continue
      position = other["frame_position"][s, j]
      np.testing.assert_allclose(other["raw_frames"][s, j], video["frames"][position] / 255.0,
                                 atol=1e-5)
      # Every stored box with score >= min_score, in stored coordinates, whatever the crop.
      keep = np.flatnonzero(np.asarray(video["scores"][position]) >= 0.3)[:config.max_objects]
      n = len(keep)
      assert other["raw_box_mask"][s, j].tolist() == [i in keep for i in range(5)]
      np.testing.assert_allclose(other["raw_boxes"][s, j][keep],
                                 video["boxes"][position][keep], atol=1e-6)
      np.testing.assert_array_equal(other["raw_class_ids"][s, j][keep],
                                    np.asarray(video["class_ids"][position])[keep])
      assert n == 0 or not other["raw_boxes"][s, j][~other["raw_box_mask"][s, j]].any()
  # Each box's crop gets its own flip and Inception colour parameters (slim's ranges).
  flips = np.concatenate([e["raw_box_flip"].ravel() for e in raw])
  assert 0.2 < flips.mean() < 0.8
  color = np.concatenate([e["raw_box_color"].reshape(-1, 4) for e in raw])
  low, high = np.array([-32 / 255, 0.5, -0.2, 0.5]), np.array([32 / 255, 1.5, 0.2, 1.5])
  assert (color >= low).all() and (color <= high).all() and color.std(axis=0).min() > 0.05
  plain_eval = elements(build_dataset(config, training=False, raw_frames=True), 1)[0]
  assert not plain_eval["raw_box_flip"].any()
  np.testing.assert_array_equal(plain_eval["raw_box_color"].reshape(-1, 4),
                                np.tile([0.0, 1.0, 0.0, 1.0], (plain_eval["raw_box_flip"].size, 1)))
