"""Keras callbacks of the trainer: checkpoints, the object diagnostic, frames in TensorBoard."""

from absl import logging
import tensorflow as tf
import tf_keras

from keras_vivi import evaluation


class CheckpointCallback(tf_keras.callbacks.Callback):
  """Saves `manager`'s checkpoint (model and optimizer) at the end of every epoch."""

  def __init__(self, manager):
    super().__init__()
    self.manager = manager

  def on_epoch_end(self, epoch, logs=None):
    self.manager.save(checkpoint_number=self.model.optimizer.iterations)


class ObjectNeighbourCallback(tf_keras.callbacks.Callback):
  """Table 2's diagnostic over every object of the prepared records, as `object_nn_same_class`.

  The fraction of objects whose nearest neighbour (cosine, backbone features at the box
  centre, un-augmented frames) has the same detector class; computed before training and after
  every epoch. `history` holds `(step, fraction)` pairs.
  """

  def __init__(self, data_config):
    super().__init__()
    self.data_config = data_config
    self.history = []

  def compute(self):
    config = self.data_config
    fraction, _, _ = evaluation.diagnose_records(
        lambda images: self.model.backbone(images, training=False)["5"], config.path,
        config.image_size, config.min_score, config.max_objects)
    return float(fraction)

  def on_train_begin(self, logs=None):
    if not self.history:
      step, value = int(self.model.optimizer.iterations), self.compute()
      self.history.append((step, value))
      logging.info("object_nn_same_class at step %d: %.4f", step, value)

  def on_epoch_end(self, epoch, logs=None):
    value = self.compute()
    self.history.append((int(self.model.optimizer.iterations), value))
    if logs is not None:
      logs["object_nn_same_class"] = value


class FrameSummaryCallback(tf_keras.callbacks.Callback):
  """Writes a few training frames with their boxes to TensorBoard at each epoch end."""

  def __init__(self, batch, log_dir, max_images=4):
    super().__init__()
    self.log_dir = log_dir
    frames = batch["frames"]
    size = tf.shape(frames)[-3:]
    flat = tf.reshape(frames, tf.concat([[-1], size], 0))[:max_images]
    m = tf.shape(batch["boxes"])[-2]
    boxes = tf.reshape(batch["boxes"], [-1, m, 4])[:max_images]
    keep = tf.reshape(batch["box_mask"], [-1, m])[:max_images]
    boxes = tf.where(keep[..., None], boxes, 0.0)
    self.images = tf.image.draw_bounding_boxes(flat, boxes, [[1.0, 1.0, 0.0]])
    self._writer = None

  def on_epoch_end(self, epoch, logs=None):
    if self._writer is None:
      self._writer = tf.summary.create_file_writer(self.log_dir)
    with self._writer.as_default():
      tf.summary.image("frames_with_boxes", self.images,
                       step=int(self.model.optimizer.iterations), max_outputs=len(self.images))
      self._writer.flush()
