"""keras_vivi: image representations learned from videos in the wild.

`import keras_vivi` stays light; `keras_vivi.load_feature_extractor` (the model zoo, see
`keras_vivi.zoo`) imports TensorFlow on first use.
"""

__all__ = ["load_feature_extractor"]


def load_feature_extractor(name_or_handle, trainable=False, offline=None, **kwargs):
  """A zoo preset or hub handle as a `hub.KerasLayer`; see `keras_vivi.zoo.loader`."""
  from keras_vivi.zoo import loader  # pylint: disable=g-import-not-at-top
  return loader.load_feature_extractor(name_or_handle, trainable=trainable, offline=offline,
                                       **kwargs)
