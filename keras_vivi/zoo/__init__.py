"""The keras_vivi model zoo: named feature extractors and how to load them.

`presets` (the registry) is light; `load_feature_extractor` (a `hub.KerasLayer`), `resolve`
(the local SavedModel directory of a preset, e.g. for Keras 3's `keras.layers.TFSMLayer`) and the
cache helpers import TensorFlow and tensorflow_hub on first use.
"""

from keras_vivi.zoo.presets import BACKBONE_PRESETS
from keras_vivi.zoo.presets import get_preset
from keras_vivi.zoo.presets import list_presets
from keras_vivi.zoo.presets import load_presets_file
from keras_vivi.zoo.presets import Preset
from keras_vivi.zoo.presets import PRESETS_ENV
from keras_vivi.zoo.presets import register_preset
from keras_vivi.zoo.presets import UnknownPresetError

from keras_vivi import lazy

_LOADER_NAMES = ("load_feature_extractor", "resolve", "resolve_handle", "cache_archive", "cache_dir",
                 "cached_module_dir", "ModuleNotCachedError", "ChecksumMismatchError",
                 "CorruptArchiveError", "PresetNotAvailableError", "OFFLINE_ENV")

__all__ = ["BACKBONE_PRESETS", "get_preset", "list_presets", "load_presets_file", "Preset",
           "PRESETS_ENV", "register_preset", "UnknownPresetError"] + list(_LOADER_NAMES)
__getattr__, __dir__ = lazy.attributes(
    __name__, {name: "keras_vivi.zoo.loader" for name in _LOADER_NAMES})
