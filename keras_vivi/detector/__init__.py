"""Object detectors with TF-Hub's OIDv4 detector outputs, padded to a fixed number per image.

    detector = load_detector()                      # MediaPipe OIDv4 SSD-MobileNetV2 (TFLite)
    detector = load_detector("/path/to/saved_model")  # or a URL / TF-Hub handle
    out = detector(images)  # float32 [B, H, W, 3] in [0, 1]
    out["detection_boxes"]  # [B, M, 4] yxyx; also scores, class labels/entities/names, num_detections

Names import their module (and TensorFlow) on first use (`keras_vivi.lazy`).
"""

from keras_vivi import lazy

_NAMES = {
    "DETECTION_KEYS": "keras_vivi.detector.detector",
    "Detector": "keras_vivi.detector.detector",
    "DetectorLoadError": "keras_vivi.detector.detector",
    "load_detector": "keras_vivi.detector.loader",
    "mediapipe_oidv4_detector": "keras_vivi.detector.loader",
    "ChecksumError": "keras_vivi.detector.mediapipe_assets",
    "default_cache_dir": "keras_vivi.detector.mediapipe_assets",
    "fetch_mediapipe_oidv4": "keras_vivi.detector.mediapipe_assets",
    "OIDV4_CLASSES": "keras_vivi.detector.oidv4",
    "SavedModelDetector": "keras_vivi.detector.saved_model_detector",
    "SSDConfig": "keras_vivi.detector.ssd",
    "TFLiteSSDDetector": "keras_vivi.detector.tflite_ssd_detector",
}
__all__ = list(_NAMES)
__getattr__, __dir__ = lazy.attributes(__name__, _NAMES)
