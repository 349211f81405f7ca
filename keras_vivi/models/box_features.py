"""Object representations read from a backbone feature grid at box centres."""

import tensorflow as tf


def box_centre_cells(boxes, image_size, grid_size) -> tf.Tensor:
  """Grid cell of each box centre: `(floor(i·H'/H), floor(j·W'/W))` for centre pixel `(i, j)`.

  Args:
    boxes: `[..., 4]` normalised `[ymin, xmin, ymax, xmax]`.
    image_size: `(H, W)` of the network input.
    grid_size: `(H', W')` of the feature grid.

  Returns:
    `[..., 2]` int32 `(row, col)`, clamped to the grid.
  """
  boxes = tf.cast(boxes, tf.float32)
  size = tf.cast(tf.stack(image_size), tf.int32)
  grid = tf.cast(tf.stack(grid_size), tf.int32)
  centre = (boxes[..., :2] + boxes[..., 2:]) / 2.0
  pixel = tf.clip_by_value(tf.cast(tf.floor(centre * tf.cast(size, tf.float32)), tf.int32),
                           0, size - 1)
  # Integer arithmetic so the floor is exact.
  return tf.clip_by_value((pixel * grid) // size, 0, grid - 1)


def gather_box_features(feature_map, boxes, image_size) -> tf.Tensor:
  """Feature column at each box centre (the paper's `r = x'[⌊i·H'/H⌋, ⌊j·W'/W⌋]`).

  Args:
    feature_map: `[B, H', W', C]` backbone feature grid.
    boxes: `[B, M, 4]` normalised `[ymin, xmin, ymax, xmax]`.
    image_size: `(H, W)` of the images the grid was computed from.

  Returns:
    `[B, M, C]` in the dtype of `feature_map`.
  """
  grid = tf.shape(feature_map)[1:3]
  cells = box_centre_cells(boxes, image_size, grid)
  return tf.gather_nd(feature_map, cells, batch_dims=1)
