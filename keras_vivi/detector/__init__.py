"""Object detectors with TF-Hub's OIDv4 detector outputs, padded to a fixed number per image.

    detector = load_detector()                      # MediaPipe OIDv4 SSD-MobileNetV2 (TFLite)
    detector = load_detector("/path/to/saved_model")  # or a URL / TF-Hub handle
    out = detector(images)  # float32 [B, H, W, 3] in [0, 1]
    out["detection_boxes"]  # [B, M, 4] yxyx; also scores, class labels/entities/names, num_detections
"""

from keras_vivi.detector.detector import DETECTION_KEYS
from keras_vivi.detector.detector import Detector
from keras_vivi.detector.detector import DetectorLoadError
from keras_vivi.detector.loader import load_detector
from keras_vivi.detector.loader import mediapipe_oidv4_detector
from keras_vivi.detector.mediapipe_assets import ChecksumError
from keras_vivi.detector.mediapipe_assets import default_cache_dir
from keras_vivi.detector.mediapipe_assets import fetch_mediapipe_oidv4
from keras_vivi.detector.oidv4 import OIDV4_CLASSES
from keras_vivi.detector.saved_model_detector import SavedModelDetector
from keras_vivi.detector.ssd import SSDConfig
from keras_vivi.detector.tflite_ssd_detector import TFLiteSSDDetector

__all__ = ["DETECTION_KEYS", "Detector", "DetectorLoadError", "load_detector",
           "mediapipe_oidv4_detector", "ChecksumError", "default_cache_dir",
           "fetch_mediapipe_oidv4", "OIDV4_CLASSES", "SavedModelDetector", "SSDConfig",
           "TFLiteSSDDetector"]
