"""Frame augmentation that moves the boxes with the pixels, and the box ablations of the paper.

Image ops return (or take) the parameters they sampled; box ops consume the same parameters:
a crop window is normalised `[ymin, xmin, ymax, xmax]` of the original frame, a flip is a bool
applied after the crop. Every random op is stateless (`seed` is a `[2]` int tensor), so a
pipeline with a fixed seed is reproducible and the same parameters can be re-derived anywhere.

Geometry convention: pixel `i` of an `H`-pixel axis covers `[i, i+1)`, i.e. normalised
`[i/H, (i+1)/H)`, and resizing samples at pixel centres (TF's `half_pixel_centers`). A crop that
falls on whole pixels and is resized to its own size is exact slicing.
"""

import math

import numpy as np
import tensorflow as tf

ABLATIONS = ("none", "random_boxes", "random_boxes_and_labels")
# Philox by name: "auto_select" lets each device pick, and an XLA-compiled step (as on TPUs) then
# draws other numbers than the host for one seed.
_ALGORITHM = "philox"


def _uniform(shape, seed, minval=0, maxval=None, dtype=tf.float32):
  return tf.random.stateless_uniform(shape, seed, minval, maxval, dtype, alg=_ALGORITHM)


def split_seed(seed, num):
  """`num` independent `[2]` seeds from one `[2]` seed (a list of tensors)."""
  return tf.unstack(tf.random.experimental.stateless_split(seed, num, alg=_ALGORITHM))


def _size(size):
  if isinstance(size, int):
    return size, size
  height, width = size
  return int(height), int(width)


def _check_range(name, values, low=0.0):
  values = tuple(float(v) for v in values)
  if len(values) != 2 or not low < values[0] <= values[1]:
    raise ValueError(f"{name} must be (min, max) with {low} < min <= max, got {values!r}.")
  return values


def sample_crop(shape, area_range=(0.08, 1.0), aspect_range=(3 / 4, 4 / 3), seed=(0, 0),
                batch_shape=(), max_attempts=10):
  """Inception-style random crop windows, on whole pixels of a `shape` image.

  Like `tf.image.sample_distorted_bounding_box` without objects to cover: up to `max_attempts`
  draws of (area fraction uniform in `area_range`, width/height ratio log-uniform in
  `aspect_range`); the first that fits is placed uniformly; if none fits, the largest centred
  window whose ratio is clipped into `aspect_range` is used.

  Args:
    shape: `[H, W]` or `[H, W, C]` of the image (a tensor or a list).
    area_range: fraction of the image area, `0 < min <= max`.
    aspect_range: crop width / height in pixels, `0 < min <= max`.
    seed: `[2]` int seed.
    batch_shape: leading shape of independent windows to draw.
    max_attempts: draws before falling back.

  Returns:
    float32 `[*batch_shape, 4]` normalised `[ymin, xmin, ymax, xmax]`.
  """
  area_range = _check_range("area_range", area_range)
  aspect_range = _check_range("aspect_range", aspect_range)
  shape = tf.cast(tf.convert_to_tensor(shape)[:2], tf.float32)
  height, width = shape[0], shape[1]
  batch_shape = tf.TensorShape(batch_shape).as_list()
  seeds = split_seed(tf.convert_to_tensor(seed), 4)
  attempts = batch_shape + [max_attempts]
  area = _uniform(attempts, seeds[0], *area_range) * height * width
  log_ratio = _uniform(attempts, seeds[1], math.log(aspect_range[0]),
                                          math.log(aspect_range[1]))
  ratio = tf.exp(log_ratio)
  w = tf.round(tf.sqrt(area * ratio))
  h = tf.round(tf.sqrt(area / ratio))
  fits = (w >= 1) & (h >= 1) & (w <= width) & (h <= height)
  first = tf.argmax(tf.cast(fits, tf.int32), axis=-1)  # the first fitting attempt, 0 if none
  h = tf.gather(h, first, batch_dims=len(batch_shape))
  w = tf.gather(w, first, batch_dims=len(batch_shape))
  any_fits = tf.reduce_any(fits, axis=-1)

  # Fallback: the whole image, narrowed along one axis if its ratio is outside the range.
  image_ratio = width / height
  fallback_w = tf.where(image_ratio > aspect_range[1], tf.round(height * aspect_range[1]), width)
  fallback_h = tf.where(image_ratio < aspect_range[0], tf.round(width / aspect_range[0]), height)
  fallback_w = tf.clip_by_value(fallback_w, 1.0, width)
  fallback_h = tf.clip_by_value(fallback_h, 1.0, height)
  h = tf.where(any_fits, h, fallback_h)
  w = tf.where(any_fits, w, fallback_w)
  offset = _uniform(batch_shape + [2], seeds[2])
  top = tf.where(any_fits, tf.floor(offset[..., 0] * (height - h + 1)),
                 tf.floor((height - h) / 2))
  left = tf.where(any_fits, tf.floor(offset[..., 1] * (width - w + 1)), tf.floor((width - w) / 2))
  top = tf.minimum(top, height - h)  # offset == 1.0 is excluded, but stay safe
  left = tf.minimum(left, width - w)
  return tf.stack([top / height, left / width, (top + h) / height, (left + w) / width], axis=-1)


def central_crop(shape, aspect_ratio=1.0, batch_shape=()):
  """The largest centred window of width/height `aspect_ratio` (pixels), on whole pixels.

  Returns:
    float32 `[*batch_shape, 4]` normalised `[ymin, xmin, ymax, xmax]`.
  """
  shape = tf.cast(tf.convert_to_tensor(shape)[:2], tf.float32)
  height, width = shape[0], shape[1]
  w = tf.clip_by_value(tf.round(tf.minimum(width, height * aspect_ratio)), 1.0, width)
  h = tf.clip_by_value(tf.round(tf.minimum(height, width / aspect_ratio)), 1.0, height)
  top, left = tf.floor((height - h) / 2), tf.floor((width - w) / 2)
  crop = tf.stack([top / height, left / width, (top + h) / height, (left + w) / width])
  return tf.broadcast_to(crop, tf.TensorShape(batch_shape).as_list() + [4])


def sample_flip(batch_shape, seed, probability=0.5):
  """bool `batch_shape`: true with `probability` (left-right flip after the crop)."""
  return _uniform(tf.TensorShape(batch_shape).as_list(), seed) < probability


def crop_and_resize(image, crop, flip, size, image_index=None):
  """Crops `crop` out of `image`, flips it left-right where `flip`, resizes it to `size`.

  Bilinear sampling at pixel centres of the output mapped into the window; samples that fall
  (by at most half a pixel) outside the image take the edge pixel, as `tf.image.resize` does.
  For a whole-pixel window resized to its own size the result is exact slicing.

  Args:
    image: `[H, W, C]` or `[N, H, W, C]`; uint8 is scaled to [0, 1], floats are kept as they are.
    crop: `[4]` (single image) or `[P, 4]` normalised `[ymin, xmin, ymax, xmax]`.
    flip: bool `[]` or `[P]`.
    size: int or `(height, width)` of the output.
    image_index: optional int `[P]`: which of the `N` images each crop is taken from (several
      crops of one image without copying it); defaults to `range(N)` (`P == N`).

  Returns:
    float32 `[h, w, C]` or `[P, h, w, C]`.
  """
  out_h, out_w = _size(size)
  image = tf.convert_to_tensor(image)
  single = image.shape.rank == 3
  if single:
    image, crop, flip = image[None], tf.reshape(crop, [1, 4]), tf.reshape(flip, [1])
  scale = 1.0 / 255.0 if image.dtype == tf.uint8 else 1.0
  crop = tf.cast(crop, tf.float32)
  shape = tf.shape(image)
  height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
  # One replicated pixel around the image makes bilinear sampling up to half a pixel outside it
  # return the edge value (crop_and_resize would return its extrapolation value instead).
  padded = tf.pad(image, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")

  def axis(start, stop, extent, out):
    # crop_and_resize samples start·(E-1) + i·(stop-start)·(E-1)/(out-1) in the padded image;
    # choose start/stop so sample i lands at the centre of output pixel i within the window.
    pixels = (stop - start) * extent
    step = pixels / out
    first = start * extent + 0.5 * step - 0.5 + 1.0
    last = first + (out - 1) * step
    return first / (extent + 1.0), last / (extent + 1.0)

  y0, y1 = axis(crop[:, 0], crop[:, 2], height, out_h)
  x0, x1 = axis(crop[:, 1], crop[:, 3], width, out_w)
  x0, x1 = tf.where(flip, x1, x0), tf.where(flip, x0, x1)
  if image_index is None:
    image_index = tf.range(tf.shape(crop)[0])
  out = tf.image.crop_and_resize(padded, tf.stack([y0, x0, y1, x1], axis=-1),
                                 tf.cast(image_index, tf.int32), [out_h, out_w])
  out = out * scale
  return out[0] if single else out


def transform_boxes(boxes, crop, flip):
  """Boxes in the coordinates of the cropped (then flipped) frame.

  Works on any leading shape, e.g. boxes `[B, K, F, M, 4]` with crop `[B, K, F, 4]` and flip
  `[B, K, F]`, inside or outside `tf.function`.

  Args:
    boxes: `[..., M, 4]` normalised `[ymin, xmin, ymax, xmax]` of the original frame.
    crop: `[..., 4]` the window the frame was cropped to (as from `sample_crop`).
    flip: bool `[...]`, whether the crop was flipped left-right.

  Returns:
    `(boxes, valid)`: float32 `[..., M, 4]` clipped to [0, 1], and bool `[..., M]`, true where the
    box centre lies inside the crop (a box whose centre left the crop is to be masked out).
  """
  boxes = tf.cast(boxes, tf.float32)
  crop = tf.cast(crop, tf.float32)[..., None, :]
  flip = tf.convert_to_tensor(flip)[..., None]
  height = tf.maximum(crop[..., 2] - crop[..., 0], 1e-8)
  width = tf.maximum(crop[..., 3] - crop[..., 1], 1e-8)
  ymin = (boxes[..., 0] - crop[..., 0]) / height
  ymax = (boxes[..., 2] - crop[..., 0]) / height
  xmin = (boxes[..., 1] - crop[..., 1]) / width
  xmax = (boxes[..., 3] - crop[..., 1]) / width
  xmin, xmax = tf.where(flip, 1.0 - xmax, xmin), tf.where(flip, 1.0 - xmin, xmax)
  cy, cx = (ymin + ymax) / 2, (xmin + xmax) / 2
  valid = (cy >= 0) & (cy <= 1) & (cx >= 0) & (cx <= 1)
  out = tf.clip_by_value(tf.stack([ymin, xmin, ymax, xmax], axis=-1), 0.0, 1.0)
  return out, valid


_LUMA = (0.299, 0.587, 0.114)  # also the Y row of YIQ
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.595716, -0.274453, -0.321263),
               (0.211456, -0.522591, 0.311135))
_YIQ_TO_RGB = np.linalg.inv(np.array(_RGB_TO_YIQ)).astype(np.float32)


COLOR_POLICIES = ("inception", "simclr")
COLOR_PARAMETERS = ("brightness", "saturation", "hue", "contrast")
# The four orders of TF-slim's Inception colour distortion, by operation (0 brightness,
# 1 saturation, 2 hue, 3 contrast); see `apply_color_ops` for why none is drawn here.
INCEPTION_ORDERS = ((0, 1, 2, 3), (1, 0, 3, 2), (3, 2, 0, 1), (2, 1, 3, 0))


def color_distortion(image, strength, seed, policy="inception"):
  """Random colour distortion, drawn independently per image.

  `policy="inception"` (the paper's, via [66]): brightness, saturation, hue and contrast with
  TF-slim's ranges at `strength` 1 (see `sample_inception_color` and `apply_color_ops`).
  `policy="simclr"`: brightness, contrast and saturation factors uniform in [1 - 0.8s, 1 + 0.8s]
  and a hue rotation in [-0.2s, 0.2s] turns, in that order. Saturation and hue act in YIQ.
  `strength == 0` returns the images unchanged.

  Args:
    image: float `[..., H, W, 3]` in [0, 1]; every leading index is one image.
    strength: python float >= 0, scaling the ranges.
    seed: `[2]` int seed.
    policy: one of `COLOR_POLICIES`.

  Returns:
    float32 `[..., H, W, 3]` in [0, 1].
  """
  _check_color(strength, policy)
  image = tf.cast(image, tf.float32)
  if strength == 0:
    return image
  return apply_color(image, sample_color_parameters(tf.shape(image)[:-3], strength, seed, policy),
                     policy)


def _check_color(strength, policy):
  if strength < 0:
    raise ValueError(f"color distortion strength must be >= 0, got {strength!r}.")
  if policy not in COLOR_POLICIES:
    raise ValueError(f"color policy must be one of {COLOR_POLICIES}, got {policy!r}.")


def sample_color_parameters(batch_shape, strength, seed, policy="inception"):
  """float32 `batch_shape + [4]`: `policy`'s parameters for each image, in `COLOR_PARAMETERS`
  order (drawn where convenient, e.g. on the host, and applied by `apply_color` elsewhere)."""
  _check_color(strength, policy)
  sample = sample_inception_color if policy == "inception" else sample_color
  values = sample(batch_shape, strength, seed)
  return tf.stack([values[name] for name in COLOR_PARAMETERS], -1)


def apply_color(image, parameters, policy="inception"):
  """`image` `[..., H, W, 3]` distorted by `parameters` `[..., 4]` of `sample_color_parameters`."""
  values = dict(zip(COLOR_PARAMETERS, tf.unstack(tf.cast(parameters, tf.float32), axis=-1)))
  return (apply_color_ops if policy == "inception" else adjust_color)(image, **values)


def sample_inception_color(batch_shape, strength, seed):
  """The parameters of the Inception policy: slim's ranges scaled by `strength` s.

  brightness: a delta added, uniform in ±32/255·s; saturation and contrast: factors uniform in
  [1 - 0.5s, 1 + 0.5s]; hue: uniform in ±0.2s turns.
  """
  seeds = split_seed(tf.convert_to_tensor(seed), 5)

  def uniform(s, spread, centre=0.0):
    return _uniform(batch_shape, s, centre - spread, centre + spread)

  return {"brightness": uniform(seeds[0], 32 / 255 * strength),
          "saturation": uniform(seeds[1], 0.5 * strength, 1.0),
          "hue": uniform(seeds[2], 0.2 * strength),
          "contrast": uniform(seeds[3], 0.5 * strength, 1.0)}


def sample_color(batch_shape, strength, seed):
  """The parameters of the SimCLR policy: a dict of float32 `batch_shape` tensors."""
  seeds = split_seed(tf.convert_to_tensor(seed), 4)
  spread = 0.8 * strength

  def uniform(s, low, high):
    return _uniform(batch_shape, s, low, high)

  return {"brightness": uniform(seeds[0], 1 - spread, 1 + spread),
          "contrast": uniform(seeds[1], 1 - spread, 1 + spread),
          "saturation": uniform(seeds[2], 1 - spread, 1 + spread),
          "hue": uniform(seeds[3], -0.2 * strength, 0.2 * strength)}


def _colour_matrices(saturation, hue):
  """`[..., 3, 3]` saturation (blend with the luma grey) and hue (rotation of YIQ's chroma plane
  by `hue` turns) matrices, from `[...]` parameters."""
  luma = tf.constant([_LUMA] * 3)  # every output channel takes the grey value
  saturate = saturation[..., None, None] * tf.eye(3) + (1.0 - saturation[..., None, None]) * luma
  angle = 2 * math.pi * hue
  cos, sin = tf.cos(angle), tf.sin(angle)
  zero, one = tf.zeros_like(cos), tf.ones_like(cos)
  rotate = tf.stack([tf.stack([one, zero, zero], -1), tf.stack([zero, cos, -sin], -1),
                     tf.stack([zero, sin, cos], -1)], -2)
  return saturate, tf.constant(_YIQ_TO_RGB) @ rotate @ tf.constant(_RGB_TO_YIQ)


def apply_color_ops(image, brightness, saturation, hue, contrast):
  """The Inception policy's four operations with given per-image parameters, clipped once.

  brightness adds a delta; saturation blends with the luma grey (1 keeps, 0 greys out); hue
  rotates YIQ's chroma plane by `hue` turns (keeping luma and chroma magnitude: a linear stand-in
  for slim's HSV shift); contrast scales about each channel's mean, as `tf.image.adjust_contrast`.
  Slim applies them in one of four orders per image (`INCEPTION_ORDERS`); these linear versions
  commute (a grey shift passes through the other three, and contrast commutes with any linear
  colour map), so every order gives this one affine map and no order is drawn.

  Args:
    image: float `[..., H, W, 3]`.
    brightness, saturation, hue, contrast: float `[...]` (or broadcastable).

  Returns:
    float32 `[..., H, W, 3]` in [0, 1].
  """
  return _colour_map(image, 1.0, brightness, contrast, saturation, hue)


def adjust_color(image, brightness, contrast, saturation, hue):
  """The SimCLR policy's operations with given per-image parameters, in that order.

  brightness scales the pixels; contrast scales them about each channel's mean (as
  `tf.image.adjust_contrast`); saturation and hue as in `apply_color_ops`. All four are linear,
  so they compose into one affine colour map per image, much cheaper than going through HSV; the
  result is clipped to [0, 1] once.

  Args:
    image: float `[..., H, W, 3]`.
    brightness, contrast, saturation, hue: float `[...]` (or broadcastable).

  Returns:
    float32 `[..., H, W, 3]` in [0, 1].
  """
  return _colour_map(image, brightness, 0.0, contrast, saturation, hue)


def _colour_map(image, scale, shift, contrast, saturation, hue):
  """`c·(C·(s·x) − C·(s·μ)) + C·(s·μ) + t`, clipped to [0, 1]: pixels scaled by `s`, contrast `c`
  about the per-channel mean `μ`, the colour matrix `C` (saturation, then hue), shifted by `t`.

  Every argument but `image` is float `[...]` (or broadcastable); as one affine map per image it
  costs one pass over the pixels.
  """
  image = tf.cast(image, tf.float32)
  batch = tf.shape(image)[:-3]

  def param(value):
    return tf.broadcast_to(tf.cast(value, tf.float32), batch)[..., None]  # [..., 1]

  scale, shift, contrast = param(scale), param(shift), param(contrast)
  saturate, rotate = _colour_matrices(param(saturation)[..., 0], param(hue)[..., 0])
  colour = rotate @ saturate  # [..., 3, 3]
  mean = tf.reduce_mean(image, axis=[-3, -2])  # [..., 3]
  offset = (1.0 - contrast) * scale * tf.linalg.matvec(colour, mean) + shift
  out = tf.einsum("...hwc,...dc->...hwd", image, (contrast * scale)[..., None] * colour)
  return tf.clip_by_value(out + offset[..., None, None, :], 0.0, 1.0)


def random_boxes(boxes, box_mask, seed, size_range=(0.05, 1.0)):
  """Ablation: every valid box replaced by a random one (centre uniform in the frame, height and
  width uniform in `size_range`, clipped to [0, 1]); invalid entries are left as they are.

  Args:
    boxes: `[..., 4]` normalised yxyx.
    box_mask: bool `[...]`.
    seed: `[2]` int seed.

  Returns:
    float32 `[..., 4]`.
  """
  size_range = _check_range("size_range", size_range)
  boxes = tf.cast(boxes, tf.float32)
  shape = tf.shape(boxes)
  seeds = split_seed(tf.convert_to_tensor(seed), 2)
  centre = _uniform(shape, seeds[0])[..., :2]
  extent = _uniform(shape, seeds[1], *size_range)[..., :2]
  fake = tf.clip_by_value(tf.concat([centre - extent / 2, centre + extent / 2], axis=-1), 0.0, 1.0)
  return tf.where(tf.convert_to_tensor(box_mask)[..., None], fake, boxes)


def random_labels(class_ids, box_mask, num_classes, seed):
  """Ablation: every valid label replaced by a class uniform in `[1, num_classes)` (0 is the
  detector's background); invalid entries are left as they are. Returns int32 like `class_ids`."""
  if num_classes < 2:
    raise ValueError(f"num_classes must be >= 2 to draw labels in [1, num_classes), got "
                     f"{num_classes!r}.")
  class_ids = tf.cast(class_ids, tf.int32)
  fake = _uniform(tf.shape(class_ids), seed, 1, num_classes, dtype=tf.int32)
  return tf.where(box_mask, fake, class_ids)


def ablate(boxes, class_ids, box_mask, mode, num_classes, seed):
  """The box ablations of the paper (`mode` one of `ABLATIONS`); masks are never changed.

  Args:
    boxes: `[..., M, 4]`; class_ids: `[..., M]`; box_mask: bool `[..., M]`.
    mode: "none", "random_boxes" (labels kept) or "random_boxes_and_labels".
    num_classes: labels are drawn in `[1, num_classes)`.
    seed: `[2]` int seed.

  Returns:
    `(boxes float32 [..., M, 4], class_ids int32 [..., M])`.
  """
  if mode not in ABLATIONS:
    raise ValueError(f"box_ablation must be one of {ABLATIONS}, got {mode!r}.")
  boxes, class_ids = tf.cast(boxes, tf.float32), tf.cast(class_ids, tf.int32)
  if mode == "none":
    return boxes, class_ids
  box_seed, label_seed = split_seed(tf.convert_to_tensor(seed), 2)
  boxes = random_boxes(boxes, box_mask, box_seed)
  if mode == "random_boxes_and_labels":
    class_ids = random_labels(class_ids, box_mask, num_classes, label_seed)
  return boxes, class_ids


def inception_crop(image, size, seed, area_range=(0.08, 1.0), aspect_range=(3 / 4, 4 / 3),
                   flip=True):
  """One image → random crop, optional random flip, resize: the co-training preprocessing.

  Args:
    image: `[H, W, C]` (uint8 is scaled to [0, 1]).
    size: int or `(height, width)`.
    seed: `[2]` int seed.

  Returns:
    `(image float32 [h, w, C], crop [4], flip bool [])`.
  """
  crop_seed, flip_seed = split_seed(tf.convert_to_tensor(seed), 2)
  crop = sample_crop(tf.shape(image), area_range, aspect_range, crop_seed)
  flipped = sample_flip([], flip_seed) if flip else tf.constant(False)
  return crop_and_resize(image, crop, flipped, size), crop, flipped
