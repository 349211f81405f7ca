"""Deterministic test images."""

import numpy as np


def ramp_images(batch, height, width=None, offset=0.0):
  """float32 `[batch, height, width, 3]` in [0, 1]: ramps along rows, columns and channels, a
  different one per image."""
  width = width or height
  y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
  x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
  c = np.array([0.2, 0.5, 0.8], np.float32)[None, None, :]
  images = [np.mod(0.6 * y + 0.3 * x * (i + 1) + c + offset + 0.17 * i, 1.0)
            for i in range(batch)]
  return np.stack(images).astype(np.float32)
