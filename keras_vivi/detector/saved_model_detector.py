"""Detector from a SavedModel / TF-Hub module with the `openimages_v4/ssd/mobilenet_v2` signature."""

import os
from typing import Dict, Optional

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

from keras_vivi import files
from keras_vivi.detector.detector import (DETECTION_KEYS, NUM_DETECTIONS, PAD_LABEL, PAD_STRING,
                                         Detector, DetectorLoadError, pack_detections)


def resolve_handle(handle: str) -> str:
  """A local directory, `file://` path, URL or TF-Hub handle → a local SavedModel directory.

  Remote handles go through the zoo's resolver (`keras_vivi.zoo.loader.resolve_handle`: the
  TF-Hub cache first, offline mode, timeouts).

  Raises:
    DetectorLoadError: naming the handle, and for remote ones the cache and how to fill it.
  """
  from keras_vivi.zoo import loader  # pylint: disable=g-import-not-at-top
  if handle.startswith("file://"):
    handle = handle[len("file://"):]
  if not files.is_remote(handle):
    path = os.path.expanduser(handle)
    if not os.path.isdir(path):
      raise DetectorLoadError(f"SavedModel directory not found: {path!r}")
    if not any(os.path.exists(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt")):
      raise DetectorLoadError(f"{path!r} is not a SavedModel directory (no saved_model.pb in it)")
    return path
  try:
    return loader.resolve_handle(handle)
  except (loader.ModuleNotCachedError, ValueError) as e:
    raise DetectorLoadError(
        f"cannot resolve detector handle {handle!r}: {e} A SavedModel directory (with "
        "saved_model.pb) extracted anywhere also works as the detector spec.") from e


class SavedModelDetector(Detector):
  """Runs a SavedModel whose signature (default `"default"`) is TF-Hub's OIDv4 detector's.

  The signature takes one float32 image `[1, H, W, 3]` in [0, 1] and returns `detection_boxes`
  `[N, 4]`, `detection_scores` `[N]`, `detection_class_labels` int64 `[N]`,
  `detection_class_entities` and `detection_class_names` string `[N]`. Batches run one image at a time.
  The module publishes no label map, so `label_map` collects `{label: entity}` from the detections
  seen on the host (`__call__`). `tf_call` runs in the graph, padded to static shapes: inside a
  train step it compiles with XLA where the module's own ops do.

  Args:
    handle: a SavedModel directory, `file://` path, URL or TF-Hub handle (downloads are cached in
      `$TFHUB_CACHE_DIR`).
    signature: the signature to call.
    label_map: optional known `{label: entity}` to start from.
  """

  def __init__(self, handle: str, *, signature: str = "default", score_threshold: float = 0.05,
               max_detections: int = 5, label_map: Optional[Dict[int, str]] = None):
    super().__init__(score_threshold=score_threshold, max_detections=max_detections)
    handle = os.fspath(handle)
    self.spec = handle
    self.name = f"saved_model:{handle}"
    path = resolve_handle(handle)
    try:
      self._module = hub.load(path)
    except Exception as e:  # pylint: disable=broad-except
      raise DetectorLoadError(f"cannot load SavedModel {path!r} (from {handle!r}): {e}") from e
    signatures = getattr(self._module, "signatures", {}) or {}
    if signature not in signatures:
      raise DetectorLoadError(f"{handle!r} has no signature {signature!r}; it has {sorted(signatures)}")
    self._fn = signatures[signature]
    inputs = self._fn.structured_input_signature[1]
    if len(inputs) != 1:
      raise DetectorLoadError(f"signature {signature!r} of {handle!r} takes inputs {sorted(inputs)}; "
                              "expected a single image tensor")
    (self._input_name,) = inputs
    missing = [k for k in DETECTION_KEYS if k not in self._fn.structured_outputs]
    if missing:
      raise DetectorLoadError(f"signature {signature!r} of {handle!r} lacks outputs {missing}; it has "
                              f"{sorted(self._fn.structured_outputs)}")
    self._label_map = dict(label_map or {})

  runs_in_graph = True

  @property
  def label_map(self) -> Dict[int, str]:
    return dict(self._label_map)

  def tf_call(self, images: tf.Tensor, numbers_only: bool = False) -> Dict[str, tf.Tensor]:
    """`__call__`'s outputs as tensors `[B, M, ...]`, computed in the graph image by image (see
    `Detector.tf_call`)."""
    images = tf.convert_to_tensor(images, tf.float32)
    m = self.max_detections

    def top(out):
      """The slots of the `M` highest scores >= threshold (ties in detection order)."""
      scores = tf.reshape(out["detection_scores"], [-1])
      # Padded below any real score, so there are always M entries to choose from.
      keys = tf.pad(tf.where(scores >= self.score_threshold, scores, -1.0), [[0, m]],
                    constant_values=-1.0)
      best = tf.math.top_k(keys, m)
      return best.indices, best.values >= 0.0, best.values

    def pick(out, key, index, present, pad, width=()):
      values = tf.pad(tf.reshape(out[key], [-1, *width]), [[0, m]] + [[0, 0]] * len(width),
                      constant_values=pad)
      return tf.where(tf.reshape(present, [m] + [1] * len(width)), tf.gather(values, index), pad)

    def numbers(image):
      out = self._fn(**{self._input_name: image[None]})
      index, present, scores = top(out)
      return {"detection_boxes": pick(out, "detection_boxes", index, present, 0.0, (4,)),
              "detection_scores": tf.where(present, scores, 0.0),
              "detection_class_labels": pick(out, "detection_class_labels", index, present,
                                             tf.constant(PAD_LABEL, tf.int64)),
              NUM_DETECTIONS: tf.reduce_sum(tf.cast(present, tf.int32))}

    def strings(image):
      out = self._fn(**{self._input_name: image[None]})
      index, present, _ = top(out)
      return {key: pick(out, key, index, present, PAD_STRING)
              for key in ("detection_class_entities", "detection_class_names")}

    slots = lambda dtype, *width: tf.TensorSpec([m, *width], dtype)
    found = tf.map_fn(numbers, images, fn_output_signature={
        "detection_boxes": slots(tf.float32, 4), "detection_scores": slots(tf.float32),
        "detection_class_labels": slots(tf.int64), NUM_DETECTIONS: tf.TensorSpec([], tf.int32)})
    if not numbers_only:
      found.update(tf.map_fn(strings, images, fn_output_signature={
          "detection_class_entities": slots(tf.string),
          "detection_class_names": slots(tf.string)}))
    return found

  def _detect(self, images: np.ndarray) -> Dict[str, np.ndarray]:
    per_image = []
    for image in images:
      out = self._fn(**{self._input_name: tf.constant(image[None])})
      per_image.append({k: out[k].numpy() for k in DETECTION_KEYS})
    packed = pack_detections(per_image, self.score_threshold, self.max_detections)
    labels = packed["detection_class_labels"]
    entities = packed["detection_class_entities"]
    for b, n in enumerate(packed["num_detections"]):
      for label, entity in zip(labels[b, :n], entities[b, :n]):
        self._label_map.setdefault(int(label), entity.decode("utf-8", "replace"))
    return packed
