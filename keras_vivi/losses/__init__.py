"""Pure loss functions of the shot, frame and object levels."""

from keras_vivi.losses.contrastive import (SHOT_NORMALIZATIONS, info_nce, info_nce_accuracy,
                                           info_nce_terms, shot_loss, shot_loss_denominator,
                                           shot_prediction_scores)
from keras_vivi.losses.cross_replica import (gather_across_replicas, replica_offset,
                                             sum_across_replicas)
from keras_vivi.losses.hierarchy import (CROSS_ENTROPY_NORMALIZATIONS, box_classifier_loss,
                                         distillation_loss, frame_loss, loss_weights, object_loss,
                                         supervised_loss, total_loss)
from keras_vivi.losses.triplet import (pairwise_squared_distances, semi_hard_triplet_loss,
                                       semi_hard_triplet_loss_and_pairs, semi_hard_triplet_terms,
                                       squared_distances)

__all__ = ["SHOT_NORMALIZATIONS", "info_nce", "info_nce_accuracy", "info_nce_terms", "shot_loss",
           "shot_loss_denominator", "shot_prediction_scores", "gather_across_replicas",
           "replica_offset", "sum_across_replicas", "CROSS_ENTROPY_NORMALIZATIONS",
           "box_classifier_loss", "distillation_loss",
           "frame_loss", "loss_weights", "object_loss", "supervised_loss", "total_loss",
           "pairwise_squared_distances", "semi_hard_triplet_loss",
           "semi_hard_triplet_loss_and_pairs", "semi_hard_triplet_terms", "squared_distances"]
