"""Records to read in tests: synthetic videos as `prepare` stores them, real labelled images."""

import numpy as np
import tensorflow as tf

from keras_vivi.data import records

SIZE = 48          # synthetic frames are SIZE×SIZE, so the eval (central square) crop is the frame
MAX_DETECTIONS = 7


def synthetic_video(video_id, shot_counts, seed):
  """A SequenceExample of ramp frames, each with a bright filled rectangle at its first box."""
  rng = np.random.default_rng(seed)
  shot_index = np.repeat(np.arange(len(shot_counts)), shot_counts).astype(np.int64)
  num = len(shot_index)
  yy, xx = np.mgrid[0:SIZE, 0:SIZE]
  frames, boxes = [], np.zeros([num, MAX_DETECTIONS, 4], np.float32)
  scores = np.zeros([num, MAX_DETECTIONS], np.float32)
  counts = np.zeros([num], np.int64)
  for i in range(num):
    n = counts[i] = (i + seed) % (MAX_DETECTIONS + 1)
    corner = rng.integers(0, SIZE - 12, size=(n, 2))
    extent = rng.integers(10, 30, size=(n, 2))
    far = np.minimum(corner + extent, SIZE)
    boxes[i, :n] = np.concatenate([corner, far], -1) / SIZE
    scores[i, :n] = np.linspace(0.95, 0.01, MAX_DETECTIONS)[:n]  # the last ones below 0.05
    frame = np.stack([xx * 80 // SIZE, yy * 80 // SIZE, np.full_like(xx, (7 * i) % 80)], -1)
    if n:
      frame[corner[0, 0]:far[0, 0], corner[0, 1]:far[0, 1]] = 230
    frames.append(frame.astype(np.uint8))
  detections = {"detection_boxes": boxes, "detection_scores": scores,
                "detection_class_labels": rng.integers(1, 20, [num, MAX_DETECTIONS]),
                "detection_class_entities": np.full([num, MAX_DETECTIONS], b"Thing")}
  k = len(shot_counts)
  return records.video_example(
      video_id=video_id, source=video_id, duration=float(num), fps=1.0, truncated=False,
      shot_starts=np.arange(k, dtype=float), shot_ends=np.arange(1, k + 1, dtype=float),
      jpegs=[records.encode_jpeg(f, 95) for f in frames], shot_index=shot_index,
      timestamps=np.arange(num, dtype=float), frame_index=np.arange(num),
      detections=detections, num_detections=counts).SerializeToString()


def digits_tfrecord(path):
  """scikit-learn's 8×8 digits as PNG-encoded {image, label} examples (real images)."""
  from sklearn.datasets import load_digits
  digits = load_digits()
  images = np.round(digits.images * (255 / 16)).astype(np.uint8)
  with tf.io.TFRecordWriter(str(path)) as writer:
    for image, label in zip(images[:200], digits.target[:200]):
      features = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[tf.io.encode_png(image[..., None]).numpy()])),
          "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))}
      writer.write(tf.train.Example(features=tf.train.Features(feature=features))
                   .SerializeToString())
  return images[:200], digits.target[:200]
