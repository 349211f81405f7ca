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


def crop_boxes(images, boxes, image_index, size) -> tf.Tensor:
  """Bilinear crops resized to `size`, as `tf.image.crop_and_resize` samples them (extrapolation
  value 0), from gathers only, so it compiles under XLA (crop_and_resize has no XLA kernel).

  Sample `i` of an output axis of length `n > 1` lies at `start·(E−1) + i·(stop−start)·(E−1)/(n−1)`
  of the `E`-pixel input axis (the window's centre when `n == 1`); rows or columns outside the
  image are 0.

  Args:
    images: `[N, H, W, C]`.
    boxes: `[P, 4]` normalised `[ymin, xmin, ymax, xmax]`.
    image_index: int `[P]`, the image each box is cut from.
    size: `(h, w)` ints of the output.

  Returns:
    float32 `[P, h, w, C]`.
  """
  images = tf.cast(images, tf.float32)
  boxes = tf.cast(boxes, tf.float32)
  shape = tf.shape(images)

  def axis(start, stop, extent, out):
    last = tf.cast(extent - 1, tf.float32)
    if out > 1:
      t = (start[:, None] * last
           + tf.range(out, dtype=tf.float32)[None, :] * ((stop - start) * last / (out - 1))[:, None])
    else:
      t = (0.5 * (start + stop) * last)[:, None]
    inside = (t >= 0.0) & (t <= last)
    low = tf.clip_by_value(tf.floor(t), 0.0, last)
    frac = tf.where(inside, t - low, 0.0)
    high = tf.minimum(low + 1.0, last)
    return tf.cast(low, tf.int32), tf.cast(high, tf.int32), frac, inside

  h, w = size
  y0, y1, fy, y_in = axis(boxes[:, 0], boxes[:, 2], shape[1], h)   # [P, h]
  x0, x1, fx, x_in = axis(boxes[:, 1], boxes[:, 3], shape[2], w)   # [P, w]
  index = tf.broadcast_to(tf.cast(image_index, tf.int32)[:, None, None], tf.shape(y0[:, :, None] + x0[:, None, :]))

  def pixels(y, x):
    points = tf.stack([index, tf.broadcast_to(y[:, :, None], tf.shape(index)),
                       tf.broadcast_to(x[:, None, :], tf.shape(index))], -1)
    return tf.gather_nd(images, points)                           # [P, h, w, C]

  fx = fx[:, None, :, None]
  top = pixels(y0, x0) + (pixels(y0, x1) - pixels(y0, x0)) * fx
  bottom = pixels(y1, x0) + (pixels(y1, x1) - pixels(y1, x0)) * fx
  out = top + (bottom - top) * fy[:, :, None, None]
  inside = y_in[:, :, None, None] & x_in[:, None, :, None]
  return tf.where(inside, out, 0.0)
