"""SSD detector running a TFLite model with raw outputs, decoded in NumPy."""

import os
import threading
from typing import Dict, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from keras_vivi.detector import ssd
from keras_vivi.detector.detector import (NUM_DETECTIONS, PAD_LABEL, PAD_STRING, Detector,
                                          DetectorLoadError)


def _available_cpus() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def _make_interpreter(model_path: str, num_threads: Optional[int]):
  try:
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  except ImportError:  # tf.lite.Interpreter is deprecated but still works in TF 2.20.
    Interpreter = tf.lite.Interpreter
  try:
    return Interpreter(model_path=model_path, num_threads=num_threads)
  except (ValueError, RuntimeError) as e:
    raise DetectorLoadError(f"cannot load TFLite model {model_path!r}: {e}") from e


class TFLiteSSDDetector(Detector):
  """SSD (TF OD API / MediaPipe style) from a `.tflite` with raw box encodings and class logits.

  The model takes float32 `[1, H, W, 3]` RGB in [-1, 1]; images are stretched to H×W (aspect ratio not
  kept, as MediaPipe does). It outputs box encodings `[1, N, 4]` and class logits `[1, N, C]`, told
  apart by shape. Decoding: anchors and box scales from `config`, sigmoid scores, background classes
  ignored, the best class per anchor, boxes clipped to [0, 1], class-agnostic greedy NMS.

  Args:
    model_path: the `.tflite` file.
    class_names: display names by model output index (length C), e.g. `"Cat"`.
    class_labels: the label reported for each output index; defaults to the index.
    class_ids: the `detection_class_names` string for each output index; defaults to `class_names`.
    background_classes: output indices never reported.
    config: anchor/decoding options; `config.input_size` must match the model's input.
    num_threads: TFLite interpreter threads; None uses every available CPU (TFLite's own default,
      one thread, is slower on multi-core machines).
    spec, name: identification strings (see `Detector`).
  """

  def __init__(self, model_path: Union[str, os.PathLike], class_names: Sequence[str], *,
               class_labels: Optional[Sequence[int]] = None,
               class_ids: Optional[Sequence[str]] = None,
               background_classes: Sequence[int] = (0,),
               config: ssd.SSDConfig = ssd.SSDConfig(),
               score_threshold: float = 0.05,
               max_detections: int = 5,
               num_threads: Optional[int] = None,
               spec: Optional[str] = None,
               name: Optional[str] = None):
    super().__init__(score_threshold=score_threshold, max_detections=max_detections)
    model_path = os.fspath(model_path)
    if not os.path.isfile(model_path):
      raise DetectorLoadError(f"TFLite model file not found: {model_path!r}")
    num_classes = len(class_names)
    class_labels = list(range(num_classes)) if class_labels is None else list(class_labels)
    class_ids = list(class_names) if class_ids is None else list(class_ids)
    if len(class_labels) != num_classes or len(class_ids) != num_classes:
      raise ValueError(f"class_labels ({len(class_labels)}) and class_ids ({len(class_ids)}) must have "
                       f"one entry per class name ({num_classes})")
    self.config = config
    self.model_path = model_path
    self.spec = spec or model_path
    self.name = name or f"tflite_ssd:{os.path.basename(model_path)}"
    self.anchors = ssd.ssd_anchors(config)
    self._labels = np.asarray(class_labels, np.int64)
    self._entities = np.array([n.encode("utf-8") for n in class_names], dtype=object)
    self._ids = np.array([n.encode("utf-8") for n in class_ids], dtype=object)
    self._foreground = np.ones(num_classes, bool)
    self._foreground[list(background_classes)] = False
    self._label_map = {int(class_labels[c]): class_names[c] for c in np.flatnonzero(self._foreground)}

    if num_threads is not None and (isinstance(num_threads, bool) or int(num_threads) < 1):
      raise ValueError(f"num_threads must be None or an int >= 1, got {num_threads!r}")
    self.num_threads = _available_cpus() if num_threads is None else int(num_threads)
    self._interpreter = _make_interpreter(model_path, self.num_threads)
    # The graph reshapes to a hard-coded batch of 1 (resize_tensor_input fails in RESHAPE and in the
    # XNNPACK delegate), so batches run one image per invoke.
    self._interpreter.allocate_tensors()
    (inp,) = self._interpreter.get_input_details()
    expected_input = [1, config.input_size[0], config.input_size[1], 3]
    if list(inp["shape"]) != expected_input or inp["dtype"] != np.float32:
      raise ValueError(f"{model_path!r} takes {inp['dtype'].__name__} {list(inp['shape'])}; expected "
                       f"float32 {expected_input} (config.input_size={config.input_size})")
    self._input_index = inp["index"]
    num_anchors = len(self.anchors)
    box_out = cls_out = None
    for out in self._interpreter.get_output_details():
      shape = list(out["shape"])
      if shape == [1, num_anchors, 4] and box_out is None:
        box_out = out["index"]
      elif shape == [1, num_anchors, num_classes]:
        cls_out = out["index"]
    if box_out is None or cls_out is None:
      shapes = [list(o["shape"]) for o in self._interpreter.get_output_details()]
      raise ValueError(f"{model_path!r} outputs {shapes}; expected [1, {num_anchors}, 4] box encodings "
                       f"and [1, {num_anchors}, {num_classes}] class logits")
    self._box_index, self._class_index = box_out, cls_out
    self._lock = threading.Lock()  # an interpreter must not be invoked from two threads at once

  @property
  def label_map(self) -> Dict[int, str]:
    return dict(self._label_map)

  def preprocess(self, images: np.ndarray) -> np.ndarray:
    """float32 `[B, h, w, 3]` in [0, 1] → model input `[B, H, W, 3]` in [-1, 1] (stretched, bilinear)."""
    height, width = self.config.input_size
    if images.shape[1:3] != (height, width):
      images = tf.image.resize(images, (height, width), method="bilinear").numpy()
    return images * 2.0 - 1.0

  def raw_outputs(self, model_inputs: np.ndarray):
    """Model input `[B, H, W, 3]` → box encodings `[B, N, 4]` and class logits `[B, N, C]`."""
    batch = model_inputs.shape[0]
    encodings = np.empty((batch, len(self.anchors), 4), np.float32)
    logits = np.empty((batch, len(self.anchors), len(self._labels)), np.float32)
    with self._lock:
      for i in range(batch):
        self._interpreter.set_tensor(self._input_index, model_inputs[i:i + 1])
        self._interpreter.invoke()
        encodings[i] = self._interpreter.get_tensor(self._box_index)[0]
        logits[i] = self._interpreter.get_tensor(self._class_index)[0]
    return encodings, logits

  def decode(self, encodings, logits) -> Dict[str, np.ndarray]:
    """Raw outputs `[B, N, 4]`, `[B, N, C]` → padded detections (see `Detector`)."""
    encodings = np.asarray(encodings, np.float32)
    logits = np.asarray(logits, np.float32)
    num_anchors, num_classes = len(self.anchors), len(self._labels)
    if (encodings.ndim != 3 or encodings.shape[1:] != (num_anchors, 4) or
        logits.shape != encodings.shape[:2] + (num_classes,)):
      raise ValueError(f"expected encodings [B, {num_anchors}, 4] and logits [B, {num_anchors}, "
                       f"{num_classes}], got {encodings.shape} and {logits.shape}")
    masked = np.where(self._foreground, logits, -np.inf)
    best_class = np.argmax(masked, axis=-1)  # [B, N]
    # Sigmoid is monotonic: take the best logit first, squash only B×N values.
    scores = ssd.sigmoid(np.take_along_axis(logits, best_class[..., None], axis=-1)[..., 0])
    boxes = np.clip(ssd.decode_boxes(encodings, self.anchors, self.config.box_scales), 0.0, 1.0)
    # A box entirely outside the image clips to zero area: nothing to point at.
    empty = (boxes[..., 2] <= boxes[..., 0]) | (boxes[..., 3] <= boxes[..., 1])
    scores_for_nms = np.where(empty, -np.inf, scores)
    indices, counts = ssd.non_max_suppression(boxes, scores_for_nms, self.max_detections,
                                     self.config.iou_threshold, self.score_threshold)
    valid = indices >= 0
    safe = np.where(valid, indices, 0)
    classes = np.take_along_axis(best_class, safe, axis=1)
    return {
        "detection_boxes": np.where(valid[..., None],
                                    np.take_along_axis(boxes, safe[..., None], axis=1), 0.0
                                    ).astype(np.float32),
        "detection_scores": np.where(valid, np.take_along_axis(scores, safe, axis=1), 0.0
                                     ).astype(np.float32),
        "detection_class_labels": np.where(valid, self._labels[classes], PAD_LABEL).astype(np.int64),
        "detection_class_entities": np.where(valid, self._entities[classes], PAD_STRING),
        "detection_class_names": np.where(valid, self._ids[classes], PAD_STRING),
        NUM_DETECTIONS: counts,
    }

  def _detect(self, images: np.ndarray) -> Dict[str, np.ndarray]:
    return self.decode(*self.raw_outputs(self.preprocess(images)))

  def describe(self) -> Dict[str, object]:
    return {**super().describe(), "iou_threshold": self.config.iou_threshold}
