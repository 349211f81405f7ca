"""Backbone, heads and layers."""

from keras_vivi.models.box_features import box_centre_cells, crop_boxes, gather_box_features
from keras_vivi.models.projection_head import ProjectionHead
from keras_vivi.models.resnet_v2 import ResNetV2
from keras_vivi.models.shot_predictor import ShotPredictor, aggregate_shots
from keras_vivi.models.standardized_conv2d import StandardizedConv2D

__all__ = ["box_centre_cells", "crop_boxes", "gather_box_features", "ProjectionHead", "ResNetV2", "ShotPredictor",
           "aggregate_shots", "StandardizedConv2D", "build_backbone"]


def build_backbone(config, kernel_regularizer=None, name="backbone") -> ResNetV2:
  """`ResNetV2` from a `keras_vivi.configs.ModelConfig`."""
  return ResNetV2(depth=config.depth, width=config.width, normalization=config.normalization,
                  groups=config.groups, kernel_regularizer=kernel_regularizer, name=name)
