"""`load_detector`: one entry point for every detector spec."""

import os
import re
from typing import Optional, Union

from keras_vivi import files
from keras_vivi.detector import mediapipe_assets
from keras_vivi.detector import oidv4
from keras_vivi.detector.detector import Detector, DetectorLoadError
from keras_vivi.detector.saved_model_detector import SavedModelDetector
from keras_vivi.detector.tflite_ssd_detector import TFLiteSSDDetector

MEDIAPIPE_OIDV4 = "mediapipe_oidv4"
DEFAULT_SPEC = MEDIAPIPE_OIDV4
# The detector of the paper's experiments: TF-Hub's SSD-MobileNetV2 on all 600 Open Images V4
# classes. The MediaPipe detector (23 of those classes) is the offline default of demos and tests.
PAPER_DETECTOR = "https://tfhub.dev/google/openimages_v4/ssd/mobilenet_v2/1"

# Label spaces are ids (compared as such); `label_space_description` says them in words.
MEDIAPIPE_LABEL_SPACE = "oidv4-mediapipe-23"
PAPER_LABEL_SPACE = "oidv4-600"
UNKNOWN_LABEL_SPACE = "unknown"
_CUSTOM = "detector:"  # + the spec of any other detector: its own classes
LABEL_SPACES = {
    MEDIAPIPE_LABEL_SPACE: ("MediaPipe OIDv4 subset: 23 of the 600 Open Images V4 classes (not "
                            "the paper's detector)"),
    PAPER_LABEL_SPACE: ("Open Images V4, 600 classes (TF-Hub openimages_v4/ssd/mobilenet_v2, the "
                        "paper's detector)"),
    UNKNOWN_LABEL_SPACE: "unknown (no detector recorded)"}
# Manifests of earlier versions hold the sentence, or for another detector this phrase.
_SENTENCES = {sentence: space for space, sentence in LABEL_SPACES.items()}
_OLD_CUSTOM = re.compile(r"the classes of the detector '(.*)'$")


def label_space_description(space: str) -> str:
  """A label space id in words, for logs and docs."""
  if space.startswith(_CUSTOM):
    return f"the classes of the detector {space[len(_CUSTOM):]!r}"
  return LABEL_SPACES.get(space, space)


def label_space_of(description) -> str:
  """The label space id of a detector from its `describe()` dict (a manifest's `detector`).

  Older manifests hold the label space in words, or no `label_space` key: it is then told
  from the spec.
  """
  recorded = str(description.get("label_space", UNKNOWN_LABEL_SPACE))
  old_custom = _OLD_CUSTOM.match(recorded)
  if old_custom:
    return _CUSTOM + old_custom.group(1)
  recorded = _SENTENCES.get(recorded, recorded)
  if recorded != UNKNOWN_LABEL_SPACE:
    return recorded
  spec = str(description.get("spec", ""))
  if spec in ("", MEDIAPIPE_OIDV4):
    return MEDIAPIPE_LABEL_SPACE
  if "openimages_v4/ssd/mobilenet_v2" in spec:
    return PAPER_LABEL_SPACE
  return _CUSTOM + spec


def mediapipe_oidv4_detector(*, score_threshold: float = 0.05, max_detections: int = 5,
                             cache_dir: Optional[Union[str, os.PathLike]] = None,
                             num_threads: Optional[int] = None) -> TFLiteSSDDetector:
  """MediaPipe's SSD-MobileNetV2 trained on Open Images V4 (23 classes), fetched once and cached.

  Labels are Open Images V4 label-map ids (see `keras_vivi.detector.oidv4`), names are MIDs.
  `num_threads` None uses every available CPU.
  """
  assets = mediapipe_assets.fetch_mediapipe_oidv4(cache_dir)
  names = mediapipe_assets.read_label_map(assets.labels_path)
  unknown = [n for n in names[1:] if n not in oidv4.OIDV4_CLASSES]
  if len(names) != 24 or unknown:
    raise DetectorLoadError(f"{str(assets.labels_path)!r} lists {len(names)} classes (unknown: {unknown}); "
                            "expected background + the 23 classes of keras_vivi.detector.oidv4")
  labels = [0] + [oidv4.OIDV4_CLASSES[n][0] for n in names[1:]]
  mids = [""] + [oidv4.OIDV4_CLASSES[n][1] for n in names[1:]]
  detector = TFLiteSSDDetector(
      assets.model_path, names, class_labels=labels, class_ids=mids, background_classes=(0,),
      score_threshold=score_threshold, max_detections=max_detections, num_threads=num_threads,
      spec=MEDIAPIPE_OIDV4,
      name=f"mediapipe_oidv4_ssd_mobilenetv2_fp16@sha256:{mediapipe_assets.MODEL_SHA256[:12]}")
  detector.label_space = MEDIAPIPE_LABEL_SPACE
  return detector


def load_detector(spec: Optional[Union[str, os.PathLike]] = None, *, score_threshold: float = 0.05,
                  max_detections: int = 5,
                  cache_dir: Optional[Union[str, os.PathLike]] = None) -> Detector:
  """Builds the detector `spec` names.

  Args:
    spec: None or `"mediapipe_oidv4"`: MediaPipe's OIDv4 SSD-MobileNetV2 (TFLite, fetched through npm
      into `cache_dir` on first use). A SavedModel directory, `file://` path, `http(s)://`/`gs://` URL or
      TF-Hub handle: a `SavedModelDetector` on its `default` signature (downloads cached in
      `$TFHUB_CACHE_DIR`).
    score_threshold: detections with a lower score are dropped.
    max_detections: at most this many detections per image (highest scores), the padded size M.
    cache_dir: where the MediaPipe model is cached (default `$KERAS_VIVI_CACHE`,
      `$XDG_CACHE_HOME/keras_vivi` or `~/.cache/keras_vivi`).

  Returns:
    A `Detector`: `detector(images [B, H, W, 3] in [0, 1])` → padded dict of numpy arrays.

  Raises:
    ValueError: `spec` is of no known form.
    DetectorLoadError: the detector cannot be fetched or loaded.
  """
  if spec is None or spec == MEDIAPIPE_OIDV4:
    return mediapipe_oidv4_detector(score_threshold=score_threshold, max_detections=max_detections,
                                    cache_dir=cache_dir)
  if isinstance(spec, os.PathLike):
    spec = os.fspath(spec)
  if not isinstance(spec, str) or not spec:
    raise ValueError(f"detector spec must be None, {MEDIAPIPE_OIDV4!r} or a SavedModel path/URL/TF-Hub "
                     f"handle, got {spec!r}")
  is_url = files.has_url_scheme(spec)
  looks_like_path = os.path.isabs(spec) or spec.startswith((".", "~")) or os.sep in spec
  if is_url or os.path.isdir(os.path.expanduser(spec)) or looks_like_path:
    detector = SavedModelDetector(spec, score_threshold=score_threshold,
                                  max_detections=max_detections)
    detector.label_space = label_space_of({"spec": spec})
    return detector
  raise ValueError(
      f"unknown detector spec {spec!r}: expected None or {MEDIAPIPE_OIDV4!r} (MediaPipe OIDv4 SSD), an "
      "existing SavedModel directory, a file:// path, or an http(s):// / gs:// URL or TF-Hub handle "
      "(e.g. 'https://tfhub.dev/google/openimages_v4/ssd/mobilenet_v2/1')")
