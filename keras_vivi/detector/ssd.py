"""SSD anchors and box decoding in vectorised NumPy; NMS through `tf.image`.

Conventions follow MediaPipe's `SsdAnchorsCalculator` and `TensorsToDetectionsCalculator`, which in
turn follow the TF Object Detection API models they run: anchors are `(yc, xc, h, w)` normalised to the
input, raw box encodings are `(ty, tx, th, tw)`, decoded boxes are normalised `[ymin, xmin, ymax, xmax]`.
"""

import dataclasses
from typing import Tuple

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class SSDConfig:
  """Anchor and decoding options of an SSD model with raw (pre-NMS) outputs.

  Defaults are MediaPipe's objectron OIDv4 SSD-MobileNetV2 graph (300×300 input, 1917 anchors).
  """
  input_size: Tuple[int, int] = (300, 300)  # (height, width)
  min_scale: float = 0.2
  max_scale: float = 0.95
  strides: Tuple[int, ...] = (16, 32, 64, 128, 256, 512)
  # 0.3333 (not 1/3) is what MediaPipe's graph and the TF OD API training config write.
  aspect_ratios: Tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 0.3333)
  interpolated_scale_aspect_ratio: float = 1.0
  reduce_boxes_in_lowest_layer: bool = True
  anchor_offset: float = 0.5
  box_scales: Tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)  # (y, x, h, w)
  iou_threshold: float = 0.5

  def __post_init__(self):
    if len(self.input_size) != 2 or min(self.input_size) <= 0:
      raise ValueError(f"input_size must be (height, width) > 0, got {self.input_size!r}")
    if not self.strides or min(self.strides) <= 0:
      raise ValueError(f"strides must be a non-empty tuple of positive ints, got {self.strides!r}")
    if not 0.0 < self.min_scale <= self.max_scale:
      raise ValueError(f"need 0 < min_scale <= max_scale, got {self.min_scale!r}, {self.max_scale!r}")
    if not self.aspect_ratios or min(self.aspect_ratios) <= 0:
      raise ValueError(f"aspect_ratios must be positive, got {self.aspect_ratios!r}")
    if len(self.box_scales) != 4 or min(self.box_scales) <= 0:
      raise ValueError(f"box_scales must be 4 positive floats (y, x, h, w), got {self.box_scales!r}")
    if not 0.0 < self.iou_threshold <= 1.0:
      raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold!r}")


def _layer_scale(config: SSDConfig, index: int) -> float:
  n = len(config.strides)
  if n == 1:
    return 0.5 * (config.min_scale + config.max_scale)
  return config.min_scale + (config.max_scale - config.min_scale) * index / (n - 1.0)


def ssd_anchors(config: SSDConfig = SSDConfig()) -> np.ndarray:
  """Anchors as float32 `[N, 4]` rows `(yc, xc, h, w)`, in MediaPipe's order.

  Order: layer, then grid row, grid column, then anchor shape — the order the model's outputs use.
  Consecutive layers with the same stride share one grid, their shapes concatenated (as MediaPipe does).
  """
  height, width = config.input_size
  strides = config.strides
  blocks = []
  layer = 0
  while layer < len(strides):
    scales, ratios = [], []
    last = layer
    while last < len(strides) and strides[last] == strides[layer]:
      scale = _layer_scale(config, last)
      if last == 0 and config.reduce_boxes_in_lowest_layer:
        # The lowest layer uses three fixed shapes, the square one at scale 0.1.
        ratios += [1.0, 2.0, 0.5]
        scales += [0.1, scale, scale]
      else:
        ratios += list(config.aspect_ratios)
        scales += [scale] * len(config.aspect_ratios)
        if config.interpolated_scale_aspect_ratio > 0.0:
          scale_next = 1.0 if last == len(strides) - 1 else _layer_scale(config, last + 1)
          ratios.append(config.interpolated_scale_aspect_ratio)
          scales.append(np.sqrt(scale * scale_next))
      last += 1
    sqrt_ratios = np.sqrt(np.asarray(ratios, np.float64))
    shape_h = np.asarray(scales, np.float64) / sqrt_ratios  # [A]
    shape_w = np.asarray(scales, np.float64) * sqrt_ratios
    grid_h = int(np.ceil(height / strides[layer]))
    grid_w = int(np.ceil(width / strides[layer]))
    yc = (np.arange(grid_h) + config.anchor_offset) / grid_h
    xc = (np.arange(grid_w) + config.anchor_offset) / grid_w
    num_shapes = len(ratios)
    block = np.empty((grid_h, grid_w, num_shapes, 4), np.float64)
    block[..., 0] = yc[:, None, None]
    block[..., 1] = xc[None, :, None]
    block[..., 2] = shape_h
    block[..., 3] = shape_w
    blocks.append(block.reshape(-1, 4))
    layer = last
  return np.concatenate(blocks, axis=0).astype(np.float32)


def decode_boxes(encodings, anchors, box_scales=SSDConfig.box_scales) -> np.ndarray:
  """Raw encodings `[..., N, 4]` (ty, tx, th, tw) + anchors `[N, 4]` → boxes `[..., N, 4]` yxyx.

  `yc = ty / sy · ha + ya`, `xc = tx / sx · wa + xa`, `h = exp(th / sh) · ha`, `w = exp(tw / sw) · wa`.
  Boxes are not clipped.
  """
  encodings = np.asarray(encodings, np.float32)
  anchors = np.asarray(anchors, np.float32)
  sy, sx, sh, sw = box_scales
  ya, xa, ha, wa = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
  yc = encodings[..., 0] / sy * ha + ya
  xc = encodings[..., 1] / sx * wa + xa
  h = np.exp(encodings[..., 2] / sh) * ha
  w = np.exp(encodings[..., 3] / sw) * wa
  return np.stack([yc - 0.5 * h, xc - 0.5 * w, yc + 0.5 * h, xc + 0.5 * w], axis=-1)


def sigmoid(x) -> np.ndarray:
  # tanh form: no overflow warnings for large negative logits.
  return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float32)))


def non_max_suppression(boxes, scores, max_outputs: int, iou_threshold: float,
                        score_threshold: float = -np.inf):
  """Class-agnostic greedy NMS of each image of a batch: `tf.image.non_max_suppression`, padded.

  A box is suppressed when its IoU with a kept box is > `iou_threshold`; boxes with score
  >= `score_threshold` are candidates (TensorFlow keeps those strictly above its threshold, so it
  gets the next float32 below ours: the detector's "drop scores < 0.05" keeps 0.05 itself).
  Not `non_max_suppression_padded`: on the real detector's outputs its kernel can return a
  lower-scored box before a higher one (checked on skimage's chelsea with 100 outputs).

  Args:
    boxes: `[B, N, 4]` yxyx.
    scores: `[B, N]`.
  Returns:
    `indices` int64 `[B, max_outputs]` into N, in decreasing score order, padded with -1, and
    `counts` int32 `[B]`.
  """
  boxes = np.asarray(boxes, np.float32)
  scores = np.asarray(scores, np.float32)
  below = float(np.nextafter(np.float32(score_threshold), np.float32(-np.inf)))
  indices = np.full((scores.shape[0], max_outputs), -1, np.int64)
  for b in range(scores.shape[0]):
    selected = tf.image.non_max_suppression(boxes[b], scores[b], max_outputs,
                                            iou_threshold=iou_threshold,
                                            score_threshold=below).numpy()
    indices[b, :len(selected)] = selected
  return indices, (indices >= 0).sum(axis=1).astype(np.int32)
