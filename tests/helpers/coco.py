"""COCO-style TFRecords as Model Garden's create_coco_tf_record writes them."""

import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from tests.helpers.images import ramp_images


def coco_example(image, boxes, classes, source_id):
  """A tf.Example with the keys of Model Garden's COCO TFRecords (create_coco_tf_record)."""
  height, width = image.shape[:2]
  encoded = io.BytesIO()
  Image.fromarray(image).save(encoded, format="JPEG")
  boxes = np.asarray(boxes, np.float32)

  def floats(v):
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(v)))

  def ints(v):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(v)))

  def strings(v):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(v)))

  area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) * height * width
  feature = {
      "image/encoded": strings([encoded.getvalue()]),
      "image/format": strings([b"jpeg"]),
      "image/height": ints([height]),
      "image/width": ints([width]),
      "image/source_id": strings([str(source_id).encode()]),
      "image/object/bbox/ymin": floats(boxes[:, 0]),
      "image/object/bbox/xmin": floats(boxes[:, 1]),
      "image/object/bbox/ymax": floats(boxes[:, 2]),
      "image/object/bbox/xmax": floats(boxes[:, 3]),
      "image/object/class/label": ints(classes),
      "image/object/class/text": strings([f"class{c}".encode() for c in classes]),
      "image/object/is_crowd": ints([0] * len(classes)),
      "image/object/area": floats(area),
  }
  return tf.train.Example(features=tf.train.Features(feature=feature))


def write_coco(directory, count=4):
  """`count` ramp images with one box each as `train-*` / `val-*` COCO TFRecords in `directory`
  (the layout Model Garden's create_coco_tf_record writes)."""
  os.makedirs(directory, exist_ok=True)
  for split in ("train", "val"):
    with tf.io.TFRecordWriter(os.path.join(directory, f"{split}-00000-of-00001.tfrecord")) as w:
      for i in range(count):
        image = (ramp_images(1, 128, offset=0.1 * i)[0] * 255).astype(np.uint8)
        w.write(coco_example(image, [[0.1, 0.1, 0.6, 0.5]], [1 + i], i).SerializeToString())
