"""Synthetic batches in the training pipeline's element spec, for tests, benchmarks and smoke
runs (no records needed)."""

import numpy as np


def video_batch(data_config, seed=0, batch_size=None, raw_frames=False):
  """Random frames, boxes and masks shaped like `pipeline.build_dataset` batches.

  Args:
    data_config: `keras_vivi.configs.DataConfig` (K, F, M, image size, batch size, whether the
      detector runs inline).
    seed: of the random content.
    batch_size: videos (default `data_config.batch_size`).
    raw_frames: add raw_frames, the raw_* boxes (the stored boxes) and the crops' flips and
      Inception colour parameters, as `pipeline.build_dataset(..., raw_frames=True)` does.

  Returns:
    A dict of numpy arrays: frames `[B, K, F, S, S, 3]` in [0, 1], boxes `[B, K, F, M, 4]`,
    class_ids, box_mask, frame_mask and shot_mask (the last video has one shot fewer);
    with inline detection also raw_frames, crop and flip (and no stored boxes).
    Padded frames hold random pixels: whatever they hold must not count.
  """
  d = data_config
  b = batch_size or d.batch_size
  k, f, m, s = d.shots_per_video, d.frames_per_shot, d.max_objects, d.image_size
  rng = np.random.default_rng(seed)
  centre = rng.uniform(0.2, 0.8, (b, k, f, m, 2))
  half = rng.uniform(0.05, 0.2, (b, k, f, m, 2))
  shot_mask = np.ones((b, k), bool)
  shot_mask[-1, k - 1:] = False  # a video with fewer shots
  batch = {
      "frames": rng.random((b, k, f, s, s, 3)).astype(np.float32),
      "boxes": np.concatenate([centre - half, centre + half], -1).astype(np.float32),
      "class_ids": rng.integers(1, 4, (b, k, f, m)).astype(np.int32),
      "box_mask": (rng.random((b, k, f, m)) > 0.3) & shot_mask[:, :, None, None],
      "frame_mask": np.broadcast_to(shot_mask[:, :, None], (b, k, f)).copy(),
      "shot_mask": shot_mask,
  }
  if d.inline_detection or raw_frames:
    batch["raw_frames"] = rng.random((b, k, f, d.raw_image_size, d.raw_image_size, 3)).astype(
        np.float32)
  if raw_frames:
    batch.update(raw_box_flip=rng.random((b, k, f, m)) > 0.5,
                 raw_box_color=np.stack([rng.uniform(-0.1, 0.1, (b, k, f, m)),
                                         rng.uniform(0.5, 1.5, (b, k, f, m)),
                                         rng.uniform(-0.2, 0.2, (b, k, f, m)),
                                         rng.uniform(0.5, 1.5, (b, k, f, m))], -1).astype(np.float32))
  if raw_frames and not d.inline_detection:
    batch.update(raw_boxes=batch["boxes"], raw_class_ids=batch["class_ids"],
                 raw_box_mask=batch["box_mask"])
  if d.inline_detection:
    batch["crop"] = np.tile(np.array([0.0, 0.0, 1.0, 1.0], np.float32), (b, k, f, 1))
    batch["flip"] = rng.random((b, k, f)) > 0.5
    batch["boxes"] = np.zeros_like(batch["boxes"])
    batch["box_mask"] = np.zeros_like(batch["box_mask"])
  return batch
