"""The detector interface: images in, fixed-size padded detections out."""

from typing import Dict, List, Mapping, Sequence

import numpy as np
import tensorflow as tf

# Keys of TF-Hub's `openimages_v4/ssd/mobilenet_v2` `default` signature, in this order.
DETECTION_KEYS = (
    "detection_boxes",
    "detection_scores",
    "detection_class_labels",
    "detection_class_entities",
    "detection_class_names",
)
NUM_DETECTIONS = "num_detections"

# Values in the padded slots past `num_detections`.
PAD_LABEL = -1
PAD_STRING = b""

_OUTPUT_DTYPES = {
    "detection_boxes": tf.float32,
    "detection_scores": tf.float32,
    "detection_class_labels": tf.int64,
    "detection_class_entities": tf.string,
    "detection_class_names": tf.string,
    NUM_DETECTIONS: tf.int32,
}


class DetectorLoadError(RuntimeError):
  """A detector or its files could not be found, fetched, verified or loaded."""


def as_image_batch(images) -> np.ndarray:
  """Validates `images` (numpy or tf, float `[B, H, W, 3]` in [0, 1]) → float32 numpy."""
  if isinstance(images, (tf.Tensor, tf.Variable)):
    images = images.numpy()
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must have shape [B, H, W, 3], got {images.shape}")
  if images.shape[1] == 0 or images.shape[2] == 0:
    raise ValueError(f"images must have H, W > 0, got shape {images.shape}")
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(
        f"images must be floats in [0, 1], got dtype {images.dtype}; convert uint8 frames with "
        "`frames.astype(np.float32) / 255`")
  images = images.astype(np.float32, copy=False)
  if images.size:
    lo, hi = float(images.min()), float(images.max())
    # A small tolerance for resampling overshoot; 0..255 floats are the mistake this catches.
    if lo < -1e-3 or hi > 1.0 + 1e-3:
      raise ValueError(f"images must be in [0, 1], got values in [{lo:g}, {hi:g}]")
  return images


def empty_detections(batch_size: int, max_detections: int) -> Dict[str, np.ndarray]:
  """All-padding outputs for `batch_size` images."""
  shape = (batch_size, max_detections)
  return {
      "detection_boxes": np.zeros(shape + (4,), np.float32),
      "detection_scores": np.zeros(shape, np.float32),
      "detection_class_labels": np.full(shape, PAD_LABEL, np.int64),
      "detection_class_entities": np.full(shape, PAD_STRING, object),
      "detection_class_names": np.full(shape, PAD_STRING, object),
      NUM_DETECTIONS: np.zeros((batch_size,), np.int32),
  }


def _as_bytes_array(values) -> np.ndarray:
  values = np.asarray(values, dtype=object).reshape(-1)
  return np.array([v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values], dtype=object)


def pack_detections(per_image: Sequence[Mapping[str, np.ndarray]], score_threshold: float,
                    max_detections: int) -> Dict[str, np.ndarray]:
  """Per-image variable-length detections → one padded batch.

  Each element holds the five `DETECTION_KEYS` with a leading dimension N (any order). Per image,
  detections are sorted by decreasing score (stable), those with score < `score_threshold` dropped and
  the first `max_detections` kept.
  """
  out = empty_detections(len(per_image), max_detections)
  for i, det in enumerate(per_image):
    missing = [k for k in DETECTION_KEYS if k not in det]
    if missing:
      raise ValueError(f"detections of image {i} lack keys {missing}; got keys {sorted(det)}")
    scores = np.asarray(det["detection_scores"], np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] >= score_threshold][:max_detections]
    n = len(order)
    out["detection_boxes"][i, :n] = np.asarray(det["detection_boxes"], np.float32).reshape(-1, 4)[order]
    out["detection_scores"][i, :n] = scores[order]
    out["detection_class_labels"][i, :n] = np.asarray(det["detection_class_labels"]).reshape(-1)[order]
    out["detection_class_entities"][i, :n] = _as_bytes_array(det["detection_class_entities"])[order]
    out["detection_class_names"][i, :n] = _as_bytes_array(det["detection_class_names"])[order]
    out[NUM_DETECTIONS][i] = n
  return out


class Detector:
  """Object detector: float32 images `[B, H, W, 3]` in [0, 1] → padded detections.

  Calling it returns a dict of numpy arrays with a leading batch dimension:
  `detection_boxes` float32 `[B, M, 4]` (normalised yxyx), `detection_scores` float32 `[B, M]`,
  `detection_class_labels` int64 `[B, M]`, `detection_class_entities` and `detection_class_names`
  bytes (object arrays) `[B, M]`, `num_detections` int32 `[B]`, where M = `max_detections`.
  Per image, detections are sorted by decreasing score; those with score < `score_threshold` are
  dropped; slots past `num_detections` hold zeros, label `PAD_LABEL` and `b""`.

  Attributes:
    spec: the string that `load_detector` takes to build this detector again.
    name: a short human-readable description (for manifests and logs).
    label_map: `{class label: entity name}`.
  """

  spec: str = ""
  name: str = ""
  label_space: str = "unknown"   # an id of `loader.LABEL_SPACES` (or "detector:SPEC"), for manifests
  # Whether `tf_call` is TensorFlow ops (compiles into a step: XLA, TPUs) rather than a host call.
  runs_in_graph: bool = False

  def __init__(self, *, score_threshold: float = 0.05, max_detections: int = 5):
    if not 0.0 <= float(score_threshold) <= 1.0:
      raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold!r}")
    if isinstance(max_detections, bool) or not isinstance(max_detections, (int, np.integer)) \
        or max_detections < 1:
      raise ValueError(f"max_detections must be an int >= 1, got {max_detections!r}")
    self.score_threshold = float(score_threshold)
    self.max_detections = int(max_detections)

  @property
  def label_map(self) -> Dict[int, str]:
    raise NotImplementedError

  def _detect(self, images: np.ndarray) -> Dict[str, np.ndarray]:
    """Validated float32 `[B, H, W, 3]` with B >= 1 → padded outputs (see the class docstring)."""
    raise NotImplementedError

  def __call__(self, images) -> Dict[str, np.ndarray]:
    images = as_image_batch(images)
    if images.shape[0] == 0:
      return empty_detections(0, self.max_detections)
    return self._detect(images)

  def describe(self) -> Dict[str, object]:
    """JSON-serialisable record of what produced the detections (for dataset manifests)."""
    return {
        "spec": self.spec,
        "name": self.name,
        "label_space": self.label_space,
        "score_threshold": self.score_threshold,
        "max_detections": self.max_detections,
    }

  def tf_call(self, images: tf.Tensor, numbers_only: bool = False) -> Dict[str, tf.Tensor]:
    """Runs the detector from graph code (`tf.function`, `tf.data`); here on the host, through
    `tf.numpy_function`.

    Same outputs as `__call__`, as tensors with static shape `[B, M, ...]`; with `numbers_only`
    without the two string outputs (a step compiled with XLA takes no strings).
    """
    keys = DETECTION_KEYS + (NUM_DETECTIONS,)

    def run(x):
      out = self(x)
      return tuple(out[k] for k in keys)

    images = tf.convert_to_tensor(images, tf.float32)
    tensors = tf.numpy_function(run, [images], [_OUTPUT_DTYPES[k] for k in keys], stateful=False)
    batch = images.shape[0]
    out = {}
    for key, tensor in zip(keys, tensors):
      shape: List = [batch] if key == NUM_DETECTIONS else [batch, self.max_detections]
      if key == "detection_boxes":
        shape.append(4)
      tensor.set_shape(shape)
      out[key] = tensor
    if numbers_only:
      for key in ("detection_class_entities", "detection_class_names"):
        del out[key]
    return out

  def __repr__(self) -> str:
    return (f"{type(self).__name__}(spec={self.spec!r}, score_threshold={self.score_threshold}, "
            f"max_detections={self.max_detections})")
