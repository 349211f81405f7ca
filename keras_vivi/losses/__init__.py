"""Loss functions of the shot, frame and object levels.

`frame_loss`, `object_loss` and `shot_loss` are per-replica: called inside any `tf.distribute`
strategy's replica context (or outside one) they see the candidates of the global batch and
return a `LossTerm` (this replica's share, the global value, statistics); `total_loss` weighs
them by `loss_weights`.
"""

from keras_vivi.losses.contrastive import (SHOT_NORMALIZATIONS, info_nce, info_nce_accuracy,
                                           info_nce_terms, shot_loss, shot_loss_denominator,
                                           shot_prediction_scores)
from keras_vivi.losses.cross_replica import (LossTerm, gather_across_replicas, global_mean,
                                             mean_term, replica_offset, sum_across_replicas)
from keras_vivi.losses.hierarchy import (CROSS_ENTROPY_NORMALIZATIONS, box_classifier_loss,
                                         distillation_loss, frame_loss, loss_weights, object_loss,
                                         supervised_loss, total_loss)
from keras_vivi.losses.triplet import (pairwise_squared_distances, semi_hard_triplet_loss,
                                       semi_hard_triplet_loss_and_pairs, semi_hard_triplet_terms,
                                       squared_distances)

__all__ = ["SHOT_NORMALIZATIONS", "info_nce", "info_nce_accuracy", "info_nce_terms", "shot_loss",
           "shot_loss_denominator", "shot_prediction_scores", "LossTerm",
           "gather_across_replicas", "global_mean", "mean_term", "replica_offset",
           "sum_across_replicas", "CROSS_ENTROPY_NORMALIZATIONS",
           "box_classifier_loss", "distillation_loss",
           "frame_loss", "loss_weights", "object_loss", "supervised_loss", "total_loss",
           "pairwise_squared_distances", "semi_hard_triplet_loss",
           "semi_hard_triplet_loss_and_pairs", "semi_hard_triplet_terms", "squared_distances"]
