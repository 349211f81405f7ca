"""Crop/flip/resize against NumPy slicing and a NumPy bilinear reference; boxes that move with the
pixels; colour distortion; the box ablations."""

import numpy as np
import pytest
import tensorflow as tf

from keras_vivi.data import augment
from tests.helpers.references import np_crop_resize, np_transform_boxes


def ramp_image(height, width, seed=0):
  """uint8 `[H, W, 3]`: a ramp along x, one along y, and noise, so every pixel is distinct-ish."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:height, 0:width]
  image = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                    rng.integers(0, 256, (height, width))], axis=-1)
  return image.astype(np.uint8)


def seed(i):
  return tf.constant([i, 17], tf.int64)


def test_sample_crop_is_on_whole_pixels_within_ranges_and_seeded():
  height, width = 60, 90
  crops = augment.sample_crop([height, width, 3], (0.1, 0.9), (0.5, 2.0), seed(0),
                              batch_shape=[200]).numpy()
  assert crops.shape == (200, 4)
  pixels = crops * [height, width, height, width]
  np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-4)
  assert np.all(crops >= 0) and np.all(crops <= 1)
  h, w = np.round(pixels[:, 2] - pixels[:, 0]), np.round(pixels[:, 3] - pixels[:, 1])
  area = h * w / (height * width)
  # Whole-pixel rounding moves area and ratio a little outside the sampled ranges.
  assert area.min() > 0.08 and area.max() < 0.95
  assert (w / h).min() > 0.45 and (w / h).max() < 2.2
  assert len(np.unique(crops, axis=0)) > 150  # independent draws
  np.testing.assert_array_equal(
      crops, augment.sample_crop([height, width], (0.1, 0.9), (0.5, 2.0), seed(0), [200]))
  assert not np.array_equal(
      crops, augment.sample_crop([height, width], (0.1, 0.9), (0.5, 2.0), seed(1), [200]))


def test_sample_crop_falls_back_to_a_centred_window_when_nothing_fits():
  # A whole square image cannot have width/height >= 2: the fallback narrows the height.
  crops = augment.sample_crop([40, 40], (1.0, 1.0), (2.0, 3.0), seed(0), [5]).numpy()
  np.testing.assert_allclose(crops, np.tile([[10 / 40, 0, 30 / 40, 1]], [5, 1]))


@pytest.mark.parametrize("area_range", [(0.0, 1.0), (0.9, 0.5), (0.5,)])
def test_sample_crop_rejects_bad_ranges(area_range):
  with pytest.raises(ValueError, match=r"area_range .*got"):
    augment.sample_crop([10, 10], area_range, (0.75, 1.33), seed(0))


def test_central_crop_is_the_largest_centred_square():
  np.testing.assert_allclose(augment.central_crop([40, 60]), [0, 10 / 60, 1, 50 / 60])
  np.testing.assert_allclose(augment.central_crop([61, 40], batch_shape=[2]),
                             [[10 / 61, 0, 50 / 61, 1]] * 2)


@pytest.mark.parametrize("flip", [False, True])
def test_whole_pixel_crop_at_its_own_size_is_numpy_slicing(flip):
  image = ramp_image(30, 50)
  top, left, size = 7, 12, 16
  crop = np.array([top / 30, left / 50, (top + size) / 30, (left + size) / 50], np.float32)
  out = augment.crop_and_resize(image, crop, flip, size).numpy()
  expected = image[top:top + size, left:left + size] / 255.0
  if flip:
    expected = expected[:, ::-1]
  np.testing.assert_allclose(out, expected, atol=1e-5)


def test_halving_a_whole_pixel_crop_matches_tf_image_resize_of_the_slice():
  image = ramp_image(40, 40).astype(np.float32)
  crop = np.array([4 / 40, 8 / 40, 36 / 40, 40 / 40], np.float32)  # 32×32 pixels
  out = augment.crop_and_resize(image, crop, False, 16).numpy()
  expected = tf.image.resize(image[4:36, 8:40], [16, 16], antialias=False).numpy()
  np.testing.assert_allclose(out, expected, atol=1e-3)


def test_crop_and_resize_matches_the_numpy_reference_on_a_batch_with_shared_images():
  images = np.stack([ramp_image(24, 36, seed=0), ramp_image(24, 36, seed=1)])
  crops = augment.sample_crop([24, 36], (0.05, 1.0), (0.5, 2.0), seed(3), [6]).numpy()
  crops[0] = [0.0, 0.0, 1.0, 1.0]
  crops[1] = [0.123, 0.31, 0.77, 0.9]  # not on whole pixels
  flips = np.array([False, True, True, False, True, False])
  index = np.array([0, 0, 1, 1, 0, 1])
  for size in (7, 20, 48):  # downsampling and upsampling
    out = augment.crop_and_resize(images, crops, flips, size, image_index=index).numpy()
    assert out.shape == (6, size, size, 3) and out.dtype == np.float32
    for i in range(6):
      np.testing.assert_allclose(out[i], np_crop_resize(images[index[i]], crops[i], flips[i], size)
                                 / 255.0, atol=1e-4, err_msg=f"crop {i} at size {size}")


def test_transform_boxes_matches_numpy_and_runs_batched_in_tf_function():
  rng = np.random.default_rng(0)
  b, k, f, m = 2, 3, 4, 5
  corners = np.sort(rng.uniform(size=(b, k, f, m, 2, 2)), axis=-2)
  boxes = np.concatenate([corners[..., 0, :], corners[..., 1, :]], -1).astype(np.float32)
  crops = augment.sample_crop([50, 70], (0.1, 1.0), (0.75, 1.33), seed(0), [b, k, f]).numpy()
  flips = rng.uniform(size=(b, k, f)) < 0.5

  out, valid = tf.function(augment.transform_boxes)(tf.constant(boxes), tf.constant(crops),
                                                    tf.constant(flips))
  assert out.shape == (b, k, f, m, 4) and valid.shape == (b, k, f, m)
  for idx in np.ndindex(b, k, f):
    ref, ref_valid = np_transform_boxes(boxes[idx], crops[idx], flips[idx])
    np.testing.assert_allclose(out.numpy()[idx], ref, atol=1e-5)
    np.testing.assert_array_equal(valid.numpy()[idx], ref_valid)
  assert 0 < valid.numpy().mean() < 1


@pytest.mark.parametrize("flip", [False, True])
def test_a_drawn_box_is_found_where_the_transformed_coordinates_say(flip):
  height, width, size = 64, 96, 48
  box_px = (20, 30, 44, 70)  # rows [20, 44), columns [30, 70)
  image = np.full((height, width, 3), 30, np.uint8)
  image[box_px[0]:box_px[2], box_px[1]:box_px[3]] = 230
  box = np.array([[box_px[0] / height, box_px[1] / width, box_px[2] / height, box_px[3] / width]],
                 np.float32)
  crops = augment.sample_crop([height, width], (0.2, 1.0), (0.75, 1.33), seed(5), [30]).numpy()
  found = 0
  for crop in crops:
    out = augment.crop_and_resize(image, crop, flip, size).numpy()
    moved, valid = augment.transform_boxes(box, crop, flip)
    bright = out.mean(-1) > 0.5
    if not valid.numpy()[0]:
      continue
    rows, cols = np.nonzero(bright.any(1))[0], np.nonzero(bright.any(0))[0]
    drawn = np.array([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]) / size
    # Bilinear edges blur by up to one output pixel, plus the input-to-output pixel scale.
    np.testing.assert_allclose(drawn, moved.numpy()[0], atol=1.5 / size + 1.0 / 20)
    found += 1
  assert found >= 10


def test_color_distortion_is_per_image_seeded_in_range_and_off_at_zero():
  image = np.tile(ramp_image(16, 16)[None] / 255.0, [4, 1, 1, 1]).astype(np.float32)
  np.testing.assert_array_equal(augment.color_distortion(image, 0.0, seed(0)), image)
  out = augment.color_distortion(image, 1.0, seed(0)).numpy()
  assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
  assert not np.allclose(out[0], out[1])  # factors drawn per image
  np.testing.assert_array_equal(out, augment.color_distortion(image, 1.0, seed(0)))
  assert not np.allclose(out, augment.color_distortion(image, 1.0, seed(1)))
  grey = np.full((3, 8, 8, 3), 0.4, np.float32)
  grey_out = augment.color_distortion(grey, 1.0, seed(2)).numpy()
  np.testing.assert_allclose(grey_out[..., 0], grey_out[..., 1], atol=1e-5)  # hue/sat keep grey
  with pytest.raises(ValueError, match="strength"):
    augment.color_distortion(image, -0.1, seed(0))


def test_adjust_color_components_match_their_definitions():
  rng = np.random.default_rng(0)
  image = rng.uniform(0.3, 0.7, (2, 6, 5, 3)).astype(np.float32)  # no clipping at these factors
  neutral = dict(brightness=1.0, contrast=1.0, saturation=1.0, hue=0.0)

  def adjust(**changes):
    return augment.adjust_color(image, **{**neutral, **changes}).numpy()

  np.testing.assert_allclose(adjust(), image, atol=1e-6)
  np.testing.assert_allclose(adjust(brightness=[1.2, 0.8]),
                             image * np.array([1.2, 0.8])[:, None, None, None], atol=1e-6)
  np.testing.assert_allclose(adjust(contrast=1.3), tf.image.adjust_contrast(image, 1.3), atol=1e-6)
  grey = image @ np.array([0.299, 0.587, 0.114])
  np.testing.assert_allclose(adjust(saturation=0.6),
                             grey[..., None] + 0.6 * (image - grey[..., None]), atol=1e-5)
  np.testing.assert_allclose(adjust(hue=1.0), image, atol=1e-5)  # a full turn
  yiq = np.array([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263],
                  [0.211456, -0.522591, 0.311135]])
  before, after = image @ yiq.T, adjust(hue=0.1) @ yiq.T
  np.testing.assert_allclose(after[..., 0], before[..., 0], atol=1e-5)  # luma kept
  np.testing.assert_allclose(np.hypot(after[..., 1], after[..., 2]),
                             np.hypot(before[..., 1], before[..., 2]), atol=1e-5)  # chroma kept
  turned = np.arctan2(after[..., 2], after[..., 1]) - np.arctan2(before[..., 2], before[..., 1])
  np.testing.assert_allclose(np.mod(turned, 2 * np.pi), 0.2 * np.pi, atol=1e-3)


def test_ablations_change_valid_entries_only():
  rng = np.random.default_rng(0)
  boxes = np.tile([[0.1, 0.2, 0.3, 0.4]], [6, 5, 1]).astype(np.float32)
  ids = rng.integers(1, 10, (6, 5)).astype(np.int32)
  mask = rng.uniform(size=(6, 5)) < 0.6
  boxes[~mask], ids[~mask] = 0.0, 0

  same_boxes, same_ids = augment.ablate(boxes, ids, mask, "none", 601, seed(0))
  np.testing.assert_array_equal(same_boxes, boxes)
  np.testing.assert_array_equal(same_ids, ids)

  new_boxes, new_ids = augment.ablate(boxes, ids, mask, "random_boxes", 601, seed(0))
  new_boxes = new_boxes.numpy()
  np.testing.assert_array_equal(new_ids, ids)
  np.testing.assert_array_equal(new_boxes[~mask], boxes[~mask])
  assert np.all(np.any(new_boxes[mask] != boxes[mask], -1))
  assert np.all(new_boxes >= 0) and np.all(new_boxes <= 1)
  assert np.all(new_boxes[..., 2:] >= new_boxes[..., :2])
  assert len(np.unique(new_boxes[mask], axis=0)) == mask.sum()

  both_boxes, both_ids = augment.ablate(boxes, ids, mask, "random_boxes_and_labels", 601, seed(0))
  np.testing.assert_array_equal(both_boxes, new_boxes)  # same box seed either way
  both_ids = both_ids.numpy()
  np.testing.assert_array_equal(both_ids[~mask], 0)
  assert np.all((both_ids[mask] >= 1) & (both_ids[mask] < 601))
  assert np.mean(both_ids[mask] != ids[mask]) > 0.9

  with pytest.raises(ValueError, match="box_ablation.*'jitter'"):
    augment.ablate(boxes, ids, mask, "jitter", 601, seed(0))
  with pytest.raises(ValueError, match="num_classes"):
    augment.random_labels(ids, mask, 1, seed(0))


def test_random_labels_cover_the_class_range():
  mask = np.ones([5000], bool)
  labels = augment.random_labels(np.zeros([5000], np.int32), mask, 4, seed(0)).numpy()
  assert set(np.unique(labels)) == {1, 2, 3}


def test_inception_crop_returns_its_parameters():
  image = ramp_image(20, 30)
  out, crop, flip = augment.inception_crop(image, 12, seed(0))
  np.testing.assert_allclose(out, np_crop_resize(image, crop.numpy(), bool(flip), 12) / 255.0,
                             atol=1e-4)


def np_inception_color(image, brightness, saturation, hue, contrast, order):
  """One image, the four operations one after the other (unclipped), then clipped."""
  yiq = np.array([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263],
                  [0.211456, -0.522591, 0.311135]])
  angle = 2 * np.pi * hue
  rotate = np.linalg.inv(yiq) @ np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)],
                                          [0, np.sin(angle), np.cos(angle)]]) @ yiq
  x = image.astype(np.float64)
  for op in augment.INCEPTION_ORDERS[order]:
    if op == 0:
      x = x + brightness
    elif op == 1:
      grey = (x @ np.array([0.299, 0.587, 0.114]))[..., None]
      x = grey + saturation * (x - grey)
    elif op == 2:
      x = x @ rotate.T
    else:
      mean = x.mean(axis=(0, 1))
      x = (x - mean) * contrast + mean
  return np.clip(x, 0, 1)


def test_inception_color_equals_the_operations_one_after_the_other_in_every_slim_order():
  rng = np.random.default_rng(1)
  image = rng.uniform(0.0, 1.0, (4, 6, 5, 3)).astype(np.float32)
  params = dict(brightness=[0.1, -0.12, 0.05, 0.0], saturation=[1.4, 0.6, 0.9, 1.2],
                hue=[0.15, -0.2, 0.05, 0.1], contrast=[0.7, 1.3, 1.5, 0.5])
  out = augment.apply_color_ops(image, **params).numpy()
  for i in range(4):
    for order in range(len(augment.INCEPTION_ORDERS)):
      want = np_inception_color(image[i], *(params[k][i] for k in (
          "brightness", "saturation", "hue", "contrast")), order)
      np.testing.assert_allclose(out[i], want, atol=2e-5, err_msg=f"image {i}, order {order}")
  assert np.abs(out - image).max() > 0.1


def test_inception_color_samples_slims_ranges_and_every_order():
  p = {k: v.numpy() for k, v in augment.sample_inception_color([4000], 1.0, seed(3)).items()}
  assert np.abs(p["brightness"]).max() <= 32 / 255 and np.abs(p["brightness"]).max() > 0.12
  for key in ("saturation", "contrast"):
    assert 0.5 <= p[key].min() < 0.52 and 1.48 < p[key].max() <= 1.5
  assert np.abs(p["hue"]).max() <= 0.2 and np.abs(p["hue"]).max() > 0.19
  half = augment.sample_inception_color([4000], 0.5, seed(3))
  assert np.abs(half["hue"].numpy()).max() <= 0.1
  image = np.random.default_rng(2).random((2, 4, 4, 3)).astype(np.float32)
  simclr = augment.color_distortion(image, 1.0, seed(0), policy="simclr").numpy()
  np.testing.assert_array_equal(
      simclr, augment.adjust_color(image, **augment.sample_color([2], 1.0, seed(0))))
  with pytest.raises(ValueError, match="color policy"):
    augment.color_distortion(image, 1.0, seed(0), policy="autoaugment")
