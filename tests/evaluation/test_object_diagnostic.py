import numpy as np
import pytest
import tensorflow as tf

from keras_vivi.evaluation import nearest_neighbour_same_class


def reference(features, labels, mask, groups=None):
  x = features / np.linalg.norm(features, axis=1, keepdims=True)
  groups = np.arange(len(x)) if groups is None else groups
  hits = queries = 0
  for i in range(len(x)):
    if not mask[i]:
      continue
    others = [j for j in range(len(x)) if j != i and mask[j] and groups[j] != groups[i]]
    if not others:
      continue
    j = max(others, key=lambda j: x[i] @ x[j])
    queries += 1
    hits += labels[j] == labels[i]
  return hits / max(queries, 1), hits, queries


def test_matches_a_loop_for_any_block_size():
  rng = np.random.default_rng(0)
  for n, c in ((12, 3), (40, 5)):
    features = rng.normal(size=(n, 6)).astype(np.float32)
    labels = rng.integers(0, c, n)
    mask = rng.random(n) > 0.2
    groups = rng.integers(0, 4, n)
    for g in (None, groups):
      want = reference(features, labels, mask, g)
      # Blocks of 1, blocks that do not divide n, one block of all.
      for block_size in (1, 7, n, 1024):
        frac, hits, queries = nearest_neighbour_same_class(features, labels, mask, g,
                                                           block_size=block_size)
        assert (hits.numpy(), queries.numpy()) == want[1:]
        np.testing.assert_allclose(frac.numpy(), want[0], rtol=1e-6)


def test_separated_classes_score_one_and_single_object_is_no_query():
  features = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
  frac, hits, queries = nearest_neighbour_same_class(features, [0, 0, 1, 1])
  assert frac.numpy() == 1.0 and queries.numpy() == 4
  frac, _, queries = nearest_neighbour_same_class(features, [0, 0, 1, 1], [True, False, False, False])
  assert queries.numpy() == 0 and frac.numpy() == 0.0


# Quadrant colours of the 16×16 test frames: top-left, top-right, bottom-left, bottom-right.
QUADRANTS = {"tl": (250, 20, 20), "tr": (20, 250, 20), "bl": (20, 20, 250), "br": (240, 240, 30)}
CENTRES = {"tl": (0.25, 0.25), "tr": (0.25, 0.75), "bl": (0.75, 0.25), "br": (0.75, 0.75)}


def quadrant_frame(order):
  """16×16 frame whose quadrants take the colours of `order` (tl, tr, bl, br keys)."""
  frame = np.zeros((16, 16, 3), np.uint8)
  for (y, x), key in zip(((0, 0), (0, 8), (8, 0), (8, 8)), order):
    frame[y:y + 8, x:x + 8] = QUADRANTS[key]
  return frame


def write_records(path, videos):
  """`videos`: list of frames, each `(order, [(quadrant, class, score), ...])`."""
  from keras_vivi.data import records, schema
  with tf.io.TFRecordWriter(str(path / schema.SHARD_PATTERN.format(index=0, count=1))) as w:
    for v, frames in enumerate(videos):
      m = max(len(objs) for _, objs in frames)
      s = len(frames)
      boxes = np.zeros((s, m, 4), np.float32)
      labels = np.zeros((s, m), np.int64)
      scores = np.zeros((s, m), np.float32)
      for i, (_, objs) in enumerate(frames):
        for j, (quadrant, label, score) in enumerate(objs):
          cy, cx = CENTRES[quadrant]
          boxes[i, j] = (cy - 0.1, cx - 0.1, cy + 0.1, cx + 0.1)
          labels[i, j], scores[i, j] = label, score
      example = records.video_example(
          f"v{v}", f"v{v}.mp4", float(s), 25.0, False, [0.0], [float(s)],
          [records.encode_jpeg(quadrant_frame(order)) for order, _ in frames], [0] * s,
          np.arange(s, dtype=np.float32), np.arange(s) * 25,
          {"detection_boxes": boxes, "detection_class_labels": labels,
           "detection_class_entities": labels.astype(str).astype(object), "detection_scores": scores},
          [len(objs) for _, objs in frames])
      w.write(example.SerializeToString())


def test_records_diagnostic_counts_every_stored_object_once(tmp_path):
  from keras_vivi.evaluation import diagnose_records, record_object_features
  order = ("tl", "tr", "bl", "br")
  videos = [
      [(order, [("tl", 3, 0.9), ("br", 7, 0.8), ("tr", 5, 0.01)]),   # score 0.01 is dropped
       (order, [("tl", 3, 0.6)])],
      [(("br", "tr", "bl", "tl"), [("tl", 7, 0.9), ("bl", 4, 0.5), ("tr", 5, 0.7),
                                   ("br", 3, 0.4)])],                  # max_objects=3 drops br
  ]
  write_records(tmp_path, videos)
  # The identity "backbone": the grid is the image, so an object's feature is its quadrant colour.
  features, labels, shots = record_object_features(lambda x: x, str(tmp_path), 8,
                                                   min_score=0.05, max_objects=3, batch_size=2)
  colours = [QUADRANTS["tl"], QUADRANTS["br"], QUADRANTS["tl"],
             QUADRANTS["br"], QUADRANTS["bl"], QUADRANTS["tr"]]
  np.testing.assert_array_equal(labels.numpy(), [3, 7, 3, 7, 4, 5])
  np.testing.assert_array_equal(shots.numpy(), [0, 0, 0, 1 << 20, 1 << 20, 1 << 20])
  np.testing.assert_allclose(features.numpy(), np.array(colours) / 255.0, atol=0.06)
  # Objects of class 3 and 7 each find a same-coloured twin of their class; 4 and 5 do not.
  figures = diagnose_records(lambda x: x, str(tmp_path), 8, max_objects=3,
                             videos_per_batch=None, frames="every_stored_frame")
  frac, hits, queries = figures["all"]
  assert (int(hits), int(queries)) == (4, 6)
  np.testing.assert_allclose(frac, 4 / 6)
  # The paper's protocol with both videos in one batch is the same search.
  assert diagnose_records(lambda x: x, str(tmp_path), 8, max_objects=3,
                          frames="every_stored_frame") == figures
  # In other shots only, the two red class-3 objects lose their twin (their nearest is yellow);
  # only the yellow class-7 pair still match.
  _, hits, queries = figures["other_shots"]
  assert (int(hits), int(queries)) == (2, 6)


def test_records_diagnostic_by_batches_of_videos(tmp_path):
  from keras_vivi.evaluation import diagnose_records
  order = ("tl", "tr", "bl", "br")
  videos = [
      [(order, [("tl", 3, 0.9), ("br", 7, 0.8)]), (order, [("tl", 3, 0.6)])],
      [(("br", "tr", "bl", "tl"), [("tl", 7, 0.9), ("bl", 4, 0.5), ("tr", 5, 0.7)])],
      [(order, [("br", 7, 0.9), ("bl", 4, 0.8)])],
  ]
  write_records(tmp_path, videos)
  run = lambda **kw: diagnose_records(lambda x: x, str(tmp_path), 8, max_objects=3,
                                      batch_size=2, frames="every_stored_frame", **kw)
  # One video a batch: video 0 has its red class-3 pair (2 hits of 3: yellow 7 finds red);
  # video 1 has three classes (0 of 3); video 2: yellow 7 and blue 4 (0 of 2).
  assert run(videos_per_batch=1)["all"] == (2 / 8, 2, 8)
  assert run(videos_per_batch=1, num_batches=2)["all"] == (2 / 6, 2, 6)
  # Videos 0 and 1 in one batch: the yellow 7s of both videos now find each other (4 of 6);
  # video 2 alone stays at 0 of 2.
  assert run(videos_per_batch=2)["all"] == (4 / 8, 4, 8)
  # All three together: video 2's yellow 7 and blue 4 find twins in video 1 as well.
  assert run(videos_per_batch=3)["all"] == run(videos_per_batch=None)["all"] == (7 / 8, 7, 8)
  # Every video is one shot, so within one video no object has a neighbour in another shot.
  assert run(videos_per_batch=1)["other_shots"] == (0, 0, 0)
  # Chance, a random neighbour of the batch: Σ_c n_c(n_c − 1)/(N − 1) per batch, over queries.
  # One video a batch: classes [3, 7, 3] give 2/2, [7, 4, 5] and [7, 4] give 0.
  one = run(videos_per_batch=1)["chance"]
  assert one["all"]["fraction"] == pytest.approx(1 / 8)
  assert (one["all"]["majority_class"], one["all"]["majority_share"]) == (7, 3 / 8)
  assert one["other_shots"]["fraction"] is None
  # Videos 0 and 1: [3, 7, 3, 7, 4, 5] give (2 + 2)/5; video 2 gives 0.
  assert run(videos_per_batch=2)["chance"]["all"]["fraction"] == pytest.approx(0.8 / 8)
  # All together: 3 ×2, 7 ×3, 4 ×2, 5 ×1 give (2 + 6 + 2)/7. Other shots (a video is a shot):
  # 7s of video 0 and 1 find 2 of 5, the 4 of video 1 1 of 5, the 7 and 4 of video 2 2 and 1
  # of 6, the 3s and the 5 none.
  every = run(videos_per_batch=None)["chance"]
  assert every["all"]["fraction"] == pytest.approx(10 / 7 / 8)
  assert every["other_shots"]["fraction"] == pytest.approx((0.4 + 0.4 + 0.2 + 2 / 6 + 1 / 6) / 8)


def test_chance_counts_by_hand():
  from keras_vivi.evaluation.object_diagnostic import chance_counts
  labels = [0, 0, 0, 1, 1, 2]
  # p = 2/5 for the three 0s, 1/5 for the two 1s, 0 for the 2.
  expected, variance, classes = chance_counts(labels)
  assert expected == pytest.approx(3 * 2 / 5 + 2 * 1 / 5)
  assert variance == pytest.approx(3 * 0.4 * 0.6 + 2 * 0.2 * 0.8)
  assert classes == {0: 3, 1: 2, 2: 1}
  # Groups [a, a, b, b, c, c]: 4 objects of other groups each; same class among them:
  # 1, 1, 2 (0s), 1, 1 (1s), 0 (the 2).
  expected, _, _ = chance_counts(labels, groups=[0, 0, 1, 1, 2, 2])
  assert expected == pytest.approx((1 + 1 + 2 + 1 + 1) / 4)
  # A lone object is no query.
  assert chance_counts([5]) == (0.0, 0.0, {})


def test_records_diagnostic_takes_the_training_samplers_frames_by_default(tmp_path):
  """By default a video brings the K × F frames training samples from it (un-augmented), each
  stored frame once, not every stored frame."""
  import dataclasses
  from keras_vivi import configs
  from keras_vivi.data import pipeline
  from keras_vivi.evaluation import diagnose_records
  order = ("tl", "tr", "bl", "br")
  quadrant = {1: "tl", 2: "tr", 3: "bl", 4: "br"}  # a class's objects share one colour
  classes = [[[1, 2], [3], [2, 4], [4], [1], [3, 4]],  # video 0: six frames of one shot
             [[1, 4]]]                                  # video 1: one frame
  write_records(tmp_path, [[(order, [(quadrant[c], c, 0.9) for c in frame]) for frame in video]
                           for video in classes])
  sampler = configs.DataConfig(shots_per_video=1, frames_per_shot=3, seed=5)
  # The frames training's sampler takes from each video, without augmentation.
  positions = [sorted(set(batch["frame_position"].numpy().ravel().tolist()))
               for batch in pipeline.build_dataset(
                   dataclasses.replace(sampler, path=str(tmp_path), image_size=8, batch_size=1),
                   training=False)]
  assert len(positions[0]) == 3 and positions[1] == [0]  # video 1's frame, drawn 3×, counts once
  objects = [(v, c) for v, kept in enumerate(positions) for p in kept for c in classes[v][p]]
  # Identity features: an object's nearest neighbour has its colour, so its class, whenever
  # another object of its class is searched.
  hits = sum(sum(c == d for _, d in objects) > 1 for _, c in objects)
  other_shots = sum(any(c == d and w != v for w, d in objects) for v, c in objects)
  n = len(objects)
  figures = diagnose_records(lambda x: x, str(tmp_path), 8, videos_per_batch=2,
                             sampler=sampler)
  figures.pop("chance")
  assert figures == {"all": (hits / n, hits, n), "other_shots": (other_shots / n, other_shots, n)}
  every = diagnose_records(lambda x: x, str(tmp_path), 8, videos_per_batch=2,
                           frames="every_stored_frame")
  assert every["all"][2] == 11 and n < 11
  with pytest.raises(ValueError, match=r"frames must be one of \('training_sampler', "
                                       r"'every_stored_frame'\), got 'all'"):
    diagnose_records(lambda x: x, str(tmp_path), 8, frames="all")
