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


def _check_detector_compiles(detector, config):
  """Refuses a host-side detector (TFLite) where the step is compiled: XLA or a TPU."""
  on_tpu = isinstance(tf.distribute.get_strategy(), tf.distribute.TPUStrategy)
  if getattr(detector, "runs_in_graph", False) or not (config.train.jit_compile or on_tpu):
    return
  where = "a TPU strategy" if on_tpu else "train.jit_compile=true"
  raise ValueError(
      f"The inline detector {detector.name!r} runs on the host (TFLite), which {where} cannot "
      f"compile into the step. Pre-compute the detections with vivi-prepare and train on those "
      f"records (data.inline_detection=false), or detect inline with a SavedModel / TF-Hub "
      f"detector (data.detector=<handle or directory>), which runs in the graph.")


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
    if detector is not None and config.data.inline_detection:
      _check_detector_compiles(detector, config)
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
  def metrics(self) -> list[tf_keras.metrics.Metric]:
    return list(self._trackers.values())

  def call(self, images, training=False) -> tf.Tensor:
    return self.backbone(images, training=training)["pre_logits"]

  # -- losses ---------------------------------------------------------------------------------

  def _step_seed(self):
    """`[2]` seed of this step's in-graph randomness: (data.seed, optimizer step)."""
    step = self.optimizer.iterations if self.optimizer else 0
    return tf.stack([tf.constant(self.config.data.seed or 0, tf.int64), tf.cast(step, tf.int64)])

  def _detect_inline(self, videos):
    """Boxes from the detector on the raw frames.

    Returns `((boxes [B, K, F, M, 4], class_ids [B, K, F, M], box_mask [B, K, F, M]) mapped into
    the augmented frames as the pipeline would have given them, ablations included; the same
    three in the raw frames, as the pipeline's raw_* would have given them)`.
    """
    d = self.config.data
    raw = videos["raw_frames"]
    lead = tf.shape(raw)[:3]
    found = self.detector.tf_call(tf.reshape(raw, tf.concat([[-1], tf.shape(raw)[-3:]], 0)),
                                  numbers_only=True)
    m = d.max_objects
    raw_boxes = tf.reshape(found["detection_boxes"][:, :m], tf.concat([lead, [m, 4]], 0))
    boxes, inside = augment.transform_boxes(raw_boxes, videos["crop"], videos["flip"])
    present = tf.range(m) < tf.reshape(found["num_detections"], tf.concat([lead, [1]], 0))
    present &= tf.cast(videos["frame_mask"], tf.bool)[..., None]
    box_mask = inside & present
    labels = tf.maximum(tf.reshape(found["detection_class_labels"][:, :m],
                                   tf.concat([lead, [m]], 0)), 0)
    raw = (raw_boxes, tf.where(present, labels, 0), present)
    boxes, labels = augment.ablate(boxes, labels, box_mask, d.box_ablation, d.num_classes,
                                   self._step_seed())
    return (boxes, labels, box_mask), raw

  def compute_losses(self, videos, labelled=None,
                     training=False) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Returns `(total share for the gradient, {metric name: global value})`.

    Each enabled level gives its `losses.LossTerm` (this replica's share, the global value and
    statistics); `losses.total_loss` weighs them by `losses.loss_weights`.
    """
    inputs = self._level_inputs(videos, labelled, training)
    terms = {name: level(inputs) for name, level in self._levels()}
    total = losses.total_loss(terms, losses.loss_weights(self.config.loss))
    values = {name: term.value for name, term in terms.items()}
    values.update(total.stats, total_loss=total.value)
    return total.share, values

  def _levels(self):
    """`(loss name, method)` of every level the config trains."""
    l = self.config.loss
    enabled = {"frame_loss": l.frame, "shot_loss": l.shot, "object_loss": l.object,
               "box_classifier_loss": l.box_classifier, "crop_loss": l.detector_crops,
               "distillation_loss": l.distillation, "supervised_loss": l.supervised}
    methods = {"frame_loss": self._frame_level, "shot_loss": self._shot_level,
               "object_loss": self._object_level, "box_classifier_loss": self._box_classifier,
               "crop_loss": self._detector_crops, "distillation_loss": self._distillation,
               "supervised_loss": self._supervised}
    return [(name, methods[name]) for name, on in enabled.items() if on]

  def _level_inputs(self, videos, labelled, training):
    """What the levels share: frames flattened, one backbone pass, boxes (stored or inline)."""
    l = self.config.loss
    shape = tf.shape(videos["frames"])
    inputs = {"videos": videos, "labelled": labelled, "training": training,
              # Static: the frame size is fixed by the pipeline, and crops are sized from it.
              "size": tuple(videos["frames"].shape[3:5]),
              "images": tf.reshape(videos["frames"], tf.concat([[-1], shape[3:]], 0)),
              "frame_mask": tf.reshape(videos["frame_mask"], [-1])}
    if l.frame or l.shot or l.object or l.box_classifier or l.distillation:
      # Padded shots' frames stay out of the batch-norm statistics, as out of every loss.
      inputs["features"] = self.backbone(inputs["images"], training=training,
                                         sample_mask=inputs["frame_mask"])
    if l.object or l.box_classifier or l.detector_crops:
      if self.config.data.inline_detection:
        (boxes, class_ids, box_mask), raw = self._detect_inline(videos)
      else:
        boxes, class_ids, box_mask = videos["boxes"], videos["class_ids"], videos["box_mask"]
        raw = tuple(videos.get(key) for key in ("raw_boxes", "raw_class_ids", "raw_box_mask"))
      m = boxes.shape[-2]
      inputs.update(boxes=tf.reshape(boxes, [-1, m, 4]), class_ids=tf.reshape(class_ids, [-1]),
                    box_mask=tf.reshape(box_mask, [-1]))
      if l.detector_crops:
        if raw[0] is None:
          raise ValueError(f"Experiment {self.config.name!r} cuts detector crops from the "
                           "un-augmented frames: build its input with "
                           "pipeline.build_dataset(..., raw_frames=True).")
        inputs["raw_detections"] = (tf.reshape(raw[0], [-1, m, 4]), tf.reshape(raw[1], [-1]),
                                    tf.reshape(raw[2], [-1]))
    if l.object or l.box_classifier:
      r = models.gather_box_features(inputs["features"]["5"], inputs["boxes"], inputs["size"])
      inputs["box_features"] = tf.reshape(r, [-1, tf.shape(r)[-1]])   # [N·M, C]
    return inputs

  def _frame_level(self, inputs):
    """Frame triplets: frames of one (video, shot) are positives, across replicas too."""
    embeddings = self.frame_head(inputs["features"]["pre_logits"])
    shape = tf.concat([tf.shape(inputs["videos"]["frames"])[:3], [embeddings.shape[-1]]], 0)
    return losses.frame_loss(tf.reshape(embeddings, shape), inputs["videos"]["frame_mask"],
                             self.config.loss.margin)

  def _shot_level(self, inputs):
    """Eq. 1: each shot predicts the next ones against every shot of the global batch."""
    videos, l = inputs["videos"], self.config.loss
    frames_shape = tf.shape(videos["frames"])
    reps = tf.reshape(inputs["features"]["pre_logits"],
                      tf.stack([frames_shape[0], frames_shape[1], frames_shape[2], -1]))
    shots = tf.cast(self.shot_projection(models.aggregate_shots(reps, videos["frame_mask"])),
                    tf.float32)                                       # [B, K, D]
    return losses.shot_loss(self.shot_predictor(shots), shots, videos["shot_mask"],
                            same_position=l.shot_negatives == "same_position",
                            normalization=l.shot_normalization)

  def _object_level(self, inputs):
    """Object triplets on the block-4 feature at each box centre; positives share a class."""
    return losses.object_loss(self.object_head(inputs["box_features"]), inputs["class_ids"],
                              inputs["box_mask"], self.config.loss.margin)

  def _box_classifier(self, inputs):
    """The sigmoid box classifier on the same box features ("also predict cross entropy")."""
    return losses.mean_term(losses.box_classifier_loss(
        self.box_classifier(inputs["box_features"]), inputs["class_ids"], inputs["box_mask"],
        self.config.loss.cross_entropy_normalization), inputs["box_mask"])

  def _detector_crops(self, inputs):
    """Detector distillation: the backbone classifies the object crops of the raw frames."""
    videos = inputs["videos"]
    raw = videos["raw_frames"]
    return losses.mean_term(*self._crop_loss(
        tf.reshape(raw, [-1, *raw.shape[3:]]), inputs["size"], *inputs["raw_detections"],
        tf.reshape(videos["raw_box_flip"], [-1]), tf.reshape(videos["raw_box_color"], [-1, 4]),
        inputs["training"]))

  def _distillation(self, inputs):
    """Soft frame labels from the teacher classifier."""
    teacher_probs = tf.nn.softmax(tf.cast(tf.stop_gradient(self.teacher(inputs["images"])),
                                          tf.float32))
    return losses.mean_term(losses.distillation_loss(
        self.distill_head(inputs["features"]["pre_logits"]), teacher_probs,
        inputs["frame_mask"], self.config.loss.cross_entropy_normalization),
        inputs["frame_mask"])

  def _supervised(self, inputs):
    """Co-training: softmax cross-entropy on the labelled-image batch."""
    labelled = inputs["labelled"]
    if labelled is None:
      raise ValueError(f"Experiment {self.config.name!r} co-trains: fit on (videos, labelled) "
                       "pairs.")
    logits = self.supervised_head(
        self.backbone(labelled["image"], training=inputs["training"])["pre_logits"])
    return losses.mean_term(losses.supervised_loss(
        logits, labelled["label"], normalization=self.config.loss.cross_entropy_normalization),
        tf.ones(tf.shape(logits)[:1], tf.bool))

  def _crop_loss(self, images, size, boxes, class_ids, box_mask, flips, colors, training):
    """Cross-entropy of the crop classifier, averaged over the real boxes it classified.

    Crops are cut from the un-augmented frames at the detector's box and resized to the
    training frame size; in training they are then flipped and colour-distorted as frames are,
    with the pipeline's parameters (the box is the crop: no further random crop).

    A static number `C` of crops (`loss.max_crops`, default one per box slot), as XLA needs:
    crop `s` is real box `s mod V` of the `V` real boxes in batch order, so batch norm sees real
    crops only, and the loss counts each of the first `min(V, C)` boxes once. With no real box
    the backbone does not run and the loss is 0.

    Args:
      images: `[N, R, R, 3]` raw frames; size: `(S, S)` of a crop; boxes: `[N, M, 4]` in the raw
        frames; class_ids, box_mask, flips: `[N·M]`; colors: `[N·M, 4]`
        (`augment.apply_color` parameters).
      training: batch-norm mode of the backbone.

    Returns:
      `(mean loss, [C] bool mask of the boxes it counts)`.
    """
    m = boxes.shape[1]
    flat = tf.reshape(boxes, [-1, 4])
    slots = flat.shape[0]
    crops = min(self.config.loss.max_crops or slots, slots)
    valid = tf.cast(box_mask, tf.float32)
    # top_k keeps equal values in index order: the real boxes first, in batch order.
    order = tf.math.top_k(valid, crops).indices
    real = tf.cast(tf.reduce_sum(valid), tf.int32)
    chosen = tf.gather(order, tf.range(crops) % tf.maximum(real, 1))
    counted = tf.range(crops) < real

    def classify():
      pixels = models.crop_boxes(images, tf.gather(flat, chosen), chosen // m, size)
      if training:
        flip = tf.gather(flips, chosen)
        pixels = tf.where(flip[:, None, None, None], tf.reverse(pixels, [2]), pixels)
        if self.config.data.color_distortion > 0:
          pixels = augment.apply_color(pixels, tf.gather(colors, chosen),
                                       self.config.data.color_policy)
      logits = self.crop_classifier(self.backbone(pixels, training=training)["pre_logits"])
      return losses.supervised_loss(logits, tf.gather(class_ids, chosen), counted,
                                    self.config.loss.cross_entropy_normalization)

    return tf.cond(real > 0, classify, lambda: tf.constant(0.0)), counted

  # -- steps ----------------------------------------------------------------------------------

  def _update(self, values):
    for name, value in values.items():
      self._trackers[name].update_state(value)
    return {name: t.result() for name, t in self._trackers.items() if name in values}

  @staticmethod
  def _split(data):
    return data if isinstance(data, tuple) else (data, None)

  def train_step(self, data) -> dict[str, tf.Tensor]:
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

  def test_step(self, data) -> dict[str, tf.Tensor]:
    videos, labelled = self._split(data)
    _, values = self.compute_losses(videos, labelled, training=False)
    return self._update(values)
