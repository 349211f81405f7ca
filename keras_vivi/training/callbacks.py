"""Keras callbacks of the trainer: checkpoints, the object diagnostic, frames in TensorBoard."""

import json
import math

from absl import logging
import tensorflow as tf
import tf_keras

from keras_vivi.evaluation import object_diagnostic
from keras_vivi import files


class NonFiniteLossError(FloatingPointError):
  """Training diverged: a loss or a weight is NaN or infinite."""


def check_finite(model, logs, last_checkpoint) -> None:
  """Raises `NonFiniteLossError` unless `logs`' losses and `model`'s float weights are finite."""
  bad = {k: float(v) for k, v in (logs or {}).items()
         if k.endswith("loss") and not math.isfinite(float(v))}
  weights = [v for v in model.weights + list(model.optimizer.variables) if v.dtype.is_floating]
  finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in weights])
  if bad or not bool(finite):
    step = int(model.optimizer.iterations.numpy())
    what = f"losses {bad}" if bad else "some weights"
    raise NonFiniteLossError(
        f"Training diverged: {what} became NaN or infinite by step {step}; no checkpoint was "
        f"written for it. A restart resumes from the last finite checkpoint "
        f"({last_checkpoint or 'none yet: from scratch'}); lower train.base_learning_rate or "
        f"the loss weights first.")


class CheckpointCallback(tf_keras.callbacks.Callback):
  """Saves `manager`'s checkpoint (model and optimizer) at the end of every epoch.

  A non-finite loss or weight stops training with `NonFiniteLossError` instead: a diverged
  state is never saved, so it never rotates the last good checkpoints out.
  """

  def __init__(self, manager):
    super().__init__()
    self.manager = manager

  def on_epoch_end(self, epoch, logs=None) -> None:
    check_finite(self.model, logs, self.manager.latest_checkpoint)
    self.manager.save(checkpoint_number=self.model.optimizer.iterations)


class CompactProgbarLogger(tf_keras.callbacks.ProgbarLogger):
  """Keras' progress bar showing only the logs named in `shown` (the other logs still reach
  every other callback: history.csv, TensorBoard)."""

  def __init__(self, shown):
    super().__init__(count_mode="steps")
    self.shown = tuple(shown)

  def short(self, logs) -> dict:
    return {k: v for k, v in (logs or {}).items() if k in self.shown}

  def on_train_batch_end(self, batch, logs=None):
    super().on_train_batch_end(batch, self.short(logs))

  def on_epoch_end(self, epoch, logs=None):
    super().on_epoch_end(epoch, self.short(logs))


class ObjectNeighbourCallback(tf_keras.callbacks.Callback):
  """Table 2's diagnostic on the prepared records, by the paper's protocol.

  Logs `object_nn_same_class`, the fraction of objects whose nearest neighbour (cosine, backbone
  features at the box centre, un-augmented frames) has the same detector class, and
  `object_nn_same_class_other_shots`, the same with neighbours from other shots only.
  Neighbours are sought within batches of `diagnostic_config.videos_per_batch` videos, counts
  summed over `num_batches` batches, so the cost does not grow with the records; a video's
  frames are `diagnostic_config.frames` (by default the K × F frames `data_config`'s sampler
  takes). Computed before training and every `every_epochs` epochs. `history` holds `{"step":
  int, "frames": which frames, name: fraction}` entries, also appended to `log_file` (JSON
  lines) when given, which a resumed run continues: a last line cut short by a kill, and entries
  past the step the run resumes from (written before a checkpoint that a kill never wrote), are
  dropped from it.
  """

  def __init__(self, data_config, diagnostic_config, log_file=None):
    super().__init__()
    self.data_config = data_config
    self.diagnostic_config = diagnostic_config
    self.log_file = log_file
    self.history = read_log(log_file) if log_file and tf.io.gfile.exists(log_file) else []

  def compute(self) -> dict[str, float]:
    config, protocol = self.data_config, self.diagnostic_config
    figures = object_diagnostic.diagnose_records(
        lambda images: self.model.backbone(images, training=False)["5"], config.path,
        config.image_size, config.min_score, config.max_objects,
        videos_per_batch=protocol.videos_per_batch, num_batches=protocol.num_batches,
        frames=protocol.frames, sampler=config)
    return {"object_nn_same_class": float(figures["all"][0]),
            "object_nn_same_class_other_shots": float(figures["other_shots"][0])}

  def _record(self):
    values = self.compute()
    entry = {"step": int(self.model.optimizer.iterations.numpy()),
             "frames": self.diagnostic_config.frames, **values}
    self.history.append(entry)
    if self.log_file:
      with tf.io.gfile.GFile(self.log_file, "a") as f:
        f.write(json.dumps(entry) + "\n")
    return values

  def on_train_begin(self, logs=None) -> None:
    step = int(self.model.optimizer.iterations.numpy())
    kept = [entry for entry in self.history if entry.get("step", 0) <= step]
    if self.log_file and tf.io.gfile.exists(self.log_file) and (
        kept != self.history or not _ends_cleanly(self.log_file)):
      files.write_atomically(self.log_file, "".join(json.dumps(e) + "\n" for e in kept))
    self.history = kept
    if not self.history:
      logging.info("Object diagnostic before training (frames: %s): %s",
                   self.diagnostic_config.frames, self._record())

  def on_epoch_end(self, epoch, logs=None) -> None:
    if (epoch + 1) % self.diagnostic_config.every_epochs:
      return
    values = self._record()
    if logs is not None:
      logs.update(values)


def _ends_cleanly(path) -> bool:
  with tf.io.gfile.GFile(path) as f:
    text = f.read()
  return not text or text.endswith("\n")


def read_log(path) -> list[dict]:
  """The entries of a JSON-lines log; a last line cut short (a killed writer) is left out.
  Raises ValueError naming the file and line when an earlier line is damaged."""
  with tf.io.gfile.GFile(path) as f:
    lines = f.read().split("\n")
  entries = []
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      entries.append(json.loads(line))
    except json.JSONDecodeError as e:
      if number == len(lines):  # no newline after it: its writer was stopped mid-line
        logging.warning("%s: its last line is cut short (%s) and is dropped.", path, e)
        break
      raise ValueError(f"{path}, line {number}, is damaged ({e}); repair or delete that "
                       "line, or move the file away to start the log afresh.") from None
  return entries


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

  def on_epoch_end(self, epoch, logs=None) -> None:
    if self._writer is None:
      self._writer = tf.summary.create_file_writer(self.log_dir)
    with self._writer.as_default():
      tf.summary.image("frames_with_boxes", self.images,
                       step=int(self.model.optimizer.iterations.numpy()), max_outputs=len(self.images))
      self._writer.flush()


class InitialLossesCallback(tf_keras.callbacks.Callback):
  """Logs the loss terms of a run's first step, raw and weighted, and writes them as JSON.

  `{term: {"value", "weight", "weighted"}}`: what each term of the objective weighs at the
  start, so a term that dwarfs the others (or vanishes beside them) shows before training.
  """

  def __init__(self, weights, path):
    super().__init__()
    self.weights, self.path, self._done = dict(weights), path, False

  def on_train_batch_end(self, batch, logs=None) -> None:
    if self._done or not logs:
      return
    self._done = True
    terms = {name: {"value": float(logs[name]), "weight": weight,
                    "weighted": weight * float(logs[name])}
             for name, weight in self.weights.items() if name in logs}
    logging.info("Initial loss terms (value × weight = weighted): %s", "; ".join(
        f"{name} {t['value']:.4g} × {t['weight']:g} = {t['weighted']:.4g}"
        for name, t in terms.items()))
    files.write_json(self.path, terms)
