"""The trainable model: backbone, heads and the shot/frame/object losses in `train_step`."""

import tensorflow as tf
import tf_keras

from keras_vivi import losses
from keras_vivi import models
from keras_vivi.data import augment
from keras_vivi.training.optimization import l2_penalty

# Metrics reported by train_step/test_step, in display order.
LOSS_NAMES = ("total_loss", "frame_loss", "shot_loss", "object_loss", "box_classifier_loss",
              "distillation_loss", "crop_loss", "supervised_loss", "weight_decay_loss")
STAT_NAMES = ("shot_accuracy", "frame_active_triplets", "object_active_triplets")


def _global_mean(local_sum, local_count):
  """This replica's share of a mean over the global batch, and the global mean itself.

  The shares of all replicas add up to `Σ sums / Σ counts`; since gradients are summed over
  replicas, training on the shares trains on the global mean.
  """
  count = losses.sum_across_replicas(tf.cast(local_count, tf.float32))
  share = tf.cast(local_sum, tf.float32) / tf.maximum(count, 1.0)
  return share, losses.sum_across_replicas(tf.stop_gradient(share))


class VIVIModel(tf_keras.Model):
  """ResNet backbone trained with `ω·L_object + L_frame + β·L_shot (+ γ·L_supervised)`.

  `fit` takes batches of the `keras_vivi.data.pipeline` element spec (videos), or
  `(videos, labelled_images)` pairs when co-training. Losses are exact means over the global
  batch whatever the number of replicas: the triplet and InfoNCE candidates are gathered from
  all replicas, each replica trains on its anchors' share.

  Args:
    config: `keras_vivi.configs.ExperimentConfig`.
    detector: for `config.data.inline_detection`: a `keras_vivi.detector.Detector` run on the
      un-augmented frames inside the step.
    teacher: for distillation: a callable images `[N, H, W, 3]` in [0, 1] → logits.

  `call(images)` returns the backbone representation `[N, 2048·width]`.
  """

  def __init__(self, config, detector=None, teacher=None, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    m, l = config.model, config.loss
    if config.data.inline_detection and detector is None:
      raise ValueError("config.data.inline_detection is set but no detector was given.")
    if l.distillation and teacher is None:
      raise ValueError(f"Experiment {config.name!r} distils from a teacher; pass teacher=…")
    self.backbone = models.build_backbone(m)
    dense = tf_keras.layers.Dense
    self.frame_head = (models.ProjectionHead(m.embedding_dim, m.projection_hidden_dims,
                                             name="frame_head") if l.frame else None)
    self.object_head = (models.ProjectionHead(m.embedding_dim, m.projection_hidden_dims,
                                              name="object_head") if l.object else None)
    self.shot_projection = dense(m.shot_dim, name="shot_projection") if l.shot else None
    self.shot_predictor = (models.ShotPredictor(m.prediction_steps, m.lstm_units,
                                                name="shot_predictor") if l.shot else None)
    self.box_classifier = (dense(m.num_box_classes, name="box_classifier")
                           if l.box_classifier else None)
    self.crop_classifier = (dense(m.num_box_classes, name="crop_classifier")
                            if l.detector_crops else None)
    self.distill_head = (dense(m.num_teacher_classes, name="distill_head")
                         if l.distillation else None)
    self.supervised_head = (dense(m.num_supervised_classes, name="supervised_head")
                            if l.supervised else None)
    self.detector = detector
    self.teacher = teacher
    self._trackers = {name: tf_keras.metrics.Mean(name) for name in LOSS_NAMES + STAT_NAMES}
    # Every logged value is already the global one on each replica: report it, don't sum it.
    self.distribute_reduction_method = "first"

  @property
  def metrics(self):
    return list(self._trackers.values())

  def call(self, images, training=False):
    return self.backbone(images, training=training)["pre_logits"]

  # -- losses ---------------------------------------------------------------------------------

  def _detect_inline(self, videos):
    """Boxes from the detector on the raw frames, mapped into the augmented frames.

    Returns `(boxes [B, K, F, M, 4], class_ids [B, K, F, M], box_mask [B, K, F, M])` as the
    pipeline would have given them, ablations included.
    """
    d = self.config.data
    raw = videos["raw_frames"]
    lead = tf.shape(raw)[:3]
    found = self.detector.tf_call(tf.reshape(raw, tf.concat([[-1], tf.shape(raw)[-3:]], 0)))
    m = d.max_objects
    boxes = tf.reshape(found["detection_boxes"][:, :m], tf.concat([lead, [m, 4]], 0))
    boxes, inside = augment.transform_boxes(boxes, videos["crop"], videos["flip"])
    present = tf.range(m) < tf.reshape(found["num_detections"], tf.concat([lead, [1]], 0))
    box_mask = inside & present & tf.cast(videos["frame_mask"], tf.bool)[..., None]
    labels = tf.reshape(found["detection_class_labels"][:, :m], tf.concat([lead, [m]], 0))
    seed = tf.stack([tf.constant(d.seed or 0, tf.int64), tf.cast(self.optimizer.iterations
                                                                  if self.optimizer else 0,
                                                                  tf.int64)])
    boxes, labels = augment.ablate(boxes, tf.maximum(labels, 0), box_mask, d.box_ablation,
                                   d.num_classes, seed)
    return boxes, labels, box_mask

  def compute_losses(self, videos, labelled=None, training=False):
    """Returns `(total share for the gradient, {metric name: global value})`."""
    cfg = self.config
    l = cfg.loss
    frames = videos["frames"]
    shape = tf.shape(frames)
    b, k, f = shape[0], shape[1], shape[2]
    size = (shape[3], shape[4])
    images = tf.reshape(frames, tf.concat([[-1], shape[3:]], 0))      # [N, H, W, 3]
    frame_mask = tf.reshape(videos["frame_mask"], [-1])
    shares, values = {}, {}

    def add(name, share, value):
      shares[name], values[name] = share, value

    def add_mean(name, local_mean, mask):
      """A loss that is a mean over `mask`: its global-batch share."""
      count = tf.reduce_sum(tf.cast(mask, tf.float32))
      add(name, *_global_mean(local_mean * count, count))

    if l.frame or l.shot or l.object or l.box_classifier or l.distillation:
      out = self.backbone(images, training=training)
      reps = out["pre_logits"]                                        # [N, C]

    # Keeps (video, shot) labels unique across replicas.
    video_offset = losses.replica_offset(b)

    if l.frame:
      video = tf.repeat(video_offset + tf.range(b), k * f)
      shot = tf.tile(tf.repeat(tf.range(k), f), [b])
      share, value, active = self._triplet(self.frame_head(reps), video * k + shot, frame_mask)
      add("frame_loss", share, value)
      values["frame_active_triplets"] = active

    if l.shot:
      per_shot = models.aggregate_shots(
          tf.reshape(reps, tf.stack([b, k, f, -1])), videos["frame_mask"])
      shots = tf.cast(self.shot_projection(per_shot), tf.float32)      # [B, K, D]
      predictions = self.shot_predictor(shots)
      (all_shots, all_mask), _ = losses.gather_across_replicas(shots, videos["shot_mask"])
      scores = losses.shot_prediction_scores(
          predictions, videos["shot_mask"], all_shots, all_mask, video_offset,
          same_position=l.shot_negatives == "same_position")
      total, queries = losses.info_nce_terms(*scores)
      add("shot_loss", *_global_mean(total, losses.shot_loss_denominator(
          videos["shot_mask"], queries, l.shot_normalization)))
      accuracy = losses.info_nce_accuracy(*scores)
      values["shot_accuracy"] = _global_mean(accuracy * queries, queries)[1]

    if l.object or l.box_classifier or l.detector_crops:
      if cfg.data.inline_detection:
        boxes, class_ids, box_mask = self._detect_inline(videos)
      else:
        boxes, class_ids, box_mask = videos["boxes"], videos["class_ids"], videos["box_mask"]
      m = tf.shape(boxes)[-2]
      boxes = tf.reshape(boxes, [-1, m, 4])
      class_ids = tf.reshape(class_ids, [-1])
      box_mask = tf.reshape(box_mask, [-1])

    if l.object or l.box_classifier:
      r = models.gather_box_features(out["5"], boxes, size)           # [N, M, C]
      r = tf.reshape(r, [-1, tf.shape(r)[-1]])
      if l.object:
        share, value, active = self._triplet(self.object_head(r), class_ids, box_mask)
        add("object_loss", share, value)
        values["object_active_triplets"] = active
      if l.box_classifier:
        add_mean("box_classifier_loss",
                 losses.box_classifier_loss(self.box_classifier(r), class_ids, box_mask),
                 box_mask)

    if l.detector_crops:
      add_mean("crop_loss", self._crop_loss(images, size, boxes, class_ids, box_mask, training),
               box_mask)

    if l.distillation:
      teacher_probs = tf.nn.softmax(tf.cast(tf.stop_gradient(self.teacher(images)), tf.float32))
      add_mean("distillation_loss",
               losses.distillation_loss(self.distill_head(reps), teacher_probs, frame_mask),
               frame_mask)

    if l.supervised:
      if labelled is None:
        raise ValueError(f"Experiment {cfg.name!r} co-trains: fit on (videos, labelled) pairs.")
      logits = self.supervised_head(
          self.backbone(labelled["image"], training=training)["pre_logits"])
      add_mean("supervised_loss", losses.supervised_loss(logits, labelled["label"]),
               tf.ones(tf.shape(logits)[:1], tf.bool))

    weights = {"object_loss": l.omega, "frame_loss": 1.0, "shot_loss": l.beta,
               "supervised_loss": l.gamma, "box_classifier_loss": l.box_classifier_weight,
               "distillation_loss": l.distillation_weight, "crop_loss": 1.0}
    total = tf.add_n([weights[n] * s for n, s in shares.items()])
    values["total_loss"] = tf.add_n([weights[n] * values[n] for n in shares])
    return total, values

  def _crop_loss(self, images, size, boxes, class_ids, box_mask, training):
    """Mean cross-entropy of the crop classifier over the real boxes only.

    Padded boxes are never cropped: they would cost a backbone pass each and feed constant
    crops to batch norm. With no real box the backbone is not run and the loss is 0.

    Args:
      images: `[N, H, W, 3]`; size: `(H, W)`; boxes: `[N, M, 4]`; class_ids, box_mask: `[N·M]`.
      training: batch-norm mode of the backbone.
    """
    valid = tf.where(box_mask)[:, 0]                                  # [V] flat box index
    m = tf.shape(boxes, out_type=tf.int64)[1]

    def classify():
      crops = tf.image.crop_and_resize(
          images, tf.gather(tf.reshape(boxes, [-1, 4]), valid), tf.cast(valid // m, tf.int32),
          size)
      logits = self.crop_classifier(self.backbone(crops, training=training)["pre_logits"])
      return losses.supervised_loss(logits, tf.gather(class_ids, valid))

    return tf.cond(tf.size(valid) > 0, classify, lambda: tf.constant(0.0))

  def _triplet(self, embeddings, labels, mask):
    """This replica's triplet share, the global loss and the fraction of active pairs."""
    (all_emb, all_labels, all_mask), offset = losses.gather_across_replicas(
        embeddings, labels, mask)
    terms = losses.semi_hard_triplet_terms(
        embeddings, labels, all_emb, all_labels, self.config.loss.margin, mask, all_mask,
        anchor_positions=offset + tf.range(tf.shape(labels)[0]))
    share, value = _global_mean(terms.sum, terms.count)
    active = _global_mean(terms.active, terms.count)[1]
    return share, value, active

  # -- steps ----------------------------------------------------------------------------------

  def _update(self, values):
    for name, value in values.items():
      self._trackers[name].update_state(value)
    return {name: t.result() for name, t in self._trackers.items() if name in values}

  @staticmethod
  def _split(data):
    return data if isinstance(data, tuple) else (data, None)

  def train_step(self, data):
    videos, labelled = self._split(data)
    with tf.GradientTape() as tape:
      total, values = self.compute_losses(videos, labelled, training=True)
      if self.config.train.weight_decay_type == "l2" and self.config.train.weight_decay:
        # Gradients are summed over replicas: each adds its share of the penalty.
        penalty = l2_penalty(self.config.train, self.trainable_variables)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        total += penalty / replicas
        values["weight_decay_loss"] = penalty
    # minimize() applies loss scaling when the optimizer is a LossScaleOptimizer.
    self.optimizer.minimize(total, self.trainable_variables, tape=tape)
    logs = self._update(values)
    # A plain tensor: strategies cannot reduce the mirrored learning-rate variable itself.
    logs["learning_rate"] = tf.identity(self.optimizer.learning_rate)
    return logs

  def test_step(self, data):
    videos, labelled = self._split(data)
    _, values = self.compute_losses(videos, labelled, training=False)
    return self._update(values)
