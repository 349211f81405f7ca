"""Fine-tuning a hub module with a linear head, as VTAB-1k does it.

  classifier = build_classifier(handle, num_classes, image_size=224)   # [B,224,224,3] -> [B, C]
  finetune(classifier, train_batches, steps=2500, learning_rate=0.01, decay_every=750)
  accuracy = evaluate_accuracy(classifier, test_batches)

The recipe is task_adaptation's (google-research/task_adaptation, `model.py`): a zero-initialised
dense head on the module's pre-logits, softmax cross-entropy, SGD with momentum 0.9 and the
learning rate multiplied by 0.1 at every `decay_every` steps, optional linear warm-up.
"""

import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

from keras_vivi.zoo import loader


def schedule_boundaries(steps, learning_rate, decay_every, decay_factor=0.1):
  """The piecewise-constant schedule as (boundaries, values).

  The rate is `learning_rate` up to step `decay_every` (inclusive, as `tf.train.piecewise_constant`
  in task_adaptation), then ×`decay_factor` after every further multiple of `decay_every` below
  `steps`; e.g. (10000, 0.1, 3000) →
  ([3000, 6000, 9000], [0.1, 0.01, 0.001, 0.0001]).

  Args:
    steps: total number of training steps (> 0).
    learning_rate: initial rate (> 0).
    decay_every: steps between decays (> 0); `decay_every >= steps` means no decay.
    decay_factor: multiplier applied at each boundary.

  Returns:
    (boundaries, values) with `len(values) == len(boundaries) + 1`, as
    `tf_keras.optimizers.schedules.PiecewiseConstantDecay` takes them.
  """
  if steps <= 0 or decay_every <= 0 or learning_rate <= 0:
    raise ValueError(f"steps, decay_every and learning_rate must be positive, got steps={steps}, "
                     f"decay_every={decay_every}, learning_rate={learning_rate}.")
  boundaries = list(range(decay_every, steps, decay_every))
  values = [learning_rate * decay_factor ** i for i in range(len(boundaries) + 1)]
  return boundaries, values


class WarmupPiecewiseSchedule(tf_keras.optimizers.schedules.LearningRateSchedule):
  """Piecewise-constant rate, ramped linearly from 0 over the first `warmup_steps` steps."""

  def __init__(self, boundaries, values, warmup_steps=0):
    super().__init__()
    self.boundaries = list(boundaries)
    self.values = list(values)
    self.warmup_steps = int(warmup_steps)
    # PiecewiseConstantDecay needs at least one boundary; one past any real step is inert.
    self._piecewise = tf_keras.optimizers.schedules.PiecewiseConstantDecay(
        self.boundaries or [2 ** 62], self.values if self.boundaries else self.values * 2)

  def __call__(self, step):
    rate = self._piecewise(step)
    if not self.warmup_steps:
      return rate
    ramp = tf.cast(step, rate.dtype) / self.warmup_steps
    return rate * tf.minimum(ramp, 1.0)

  def get_config(self):
    return {"boundaries": self.boundaries, "values": self.values,
            "warmup_steps": self.warmup_steps}


def build_classifier(handle, num_classes, trainable=True, image_size=224):
  """A hub module with a zero-initialised linear head.

  Args:
    handle: a zoo preset name or a hub handle (SavedModel directory, local or remote `.tar.gz`,
      TF-Hub URL), loaded through the zoo's cache (`keras_vivi.zoo.loader.load_feature_extractor`: sha256
      checks, `$KERAS_VIVI_OFFLINE`), or a callable module object; `obj(images, training)`
      maps float32 `[B, H, W, 3]` in [0, 1] to `[B, D]` (or `[B, 1, 1, D]`) pre-logits.
    num_classes: number of logits.
    trainable: fine-tune the module's variables too (VTAB's setting), not only the head.
    image_size: the input's height and width.

  Returns:
    A tf_keras.Model `[B, image_size, image_size, 3]` float32 in [0, 1] → `[B, num_classes]`
    logits. With the zero head every image gets the same (uniform) logits before training.
  """
  if num_classes < 1:
    raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
  images = tf_keras.Input([image_size, image_size, 3], dtype=tf.float32, name="images")
  if isinstance(handle, str):
    module = loader.load_feature_extractor(handle, trainable=trainable, name="module")
  else:
    module = hub.KerasLayer(handle, trainable=trainable, name="module")
  features = module(images)
  if features.shape.rank == 4 and features.shape[1:3] == (1, 1):
    features = tf_keras.layers.Flatten(name="squeeze")(features)  # task_adaptation accepts these
  if features.shape.rank != 2:
    raise ValueError(f"The module {handle!r} must return [batch, dim] or [batch, 1, 1, dim] "
                     f"features, got shape {features.shape}.")
  logits = tf_keras.layers.Dense(num_classes, kernel_initializer="zeros", name="head")(features)
  return tf_keras.Model(images, logits, name="vtab_classifier")


def finetune(classifier, dataset, steps, learning_rate, decay_every, momentum=0.9,
             decay_factor=0.1, warmup_steps=0, verbose="auto", callbacks=None):
  """Trains `classifier` with softmax cross-entropy and SGD with momentum.

  Args:
    classifier: model from `build_classifier` (images → logits).
    dataset: infinite (repeated) tf.data of batches `(images [B, H, W, 3] float32 in [0, 1],
      labels [B] int)`.
    steps: number of optimiser steps.
    learning_rate, decay_every, decay_factor: the schedule (see `schedule_boundaries`).
    momentum: SGD momentum.
    warmup_steps: linear warm-up from 0 over this many steps (0: none).
    verbose: Keras progress (`model.fit`'s `verbose`).
    callbacks: Keras callbacks of the `fit`.

  Returns:
    The Keras `History` (one epoch of `steps` steps; 'loss' and 'accuracy').
  """
  boundaries, values = schedule_boundaries(steps, learning_rate, decay_every, decay_factor)
  optimizer = tf_keras.optimizers.SGD(WarmupPiecewiseSchedule(boundaries, values, warmup_steps),
                                      momentum=momentum)
  classifier.compile(optimizer=optimizer,
                     loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["accuracy"])
  return classifier.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=verbose,
                        callbacks=callbacks)


def count_correct(classifier, dataset, on_batch=None):
  """(top-1 hits, examples) over a finite tf.data of `(images, labels)` batches.

  `on_batch(batch_size)` is called after every batch (e.g. a progress bar's update).
  """

  @tf.function
  def count(images, labels):
    predicted = tf.argmax(classifier(images, training=False), axis=-1)
    hits = tf.equal(predicted, tf.cast(labels, predicted.dtype))
    return tf.reduce_sum(tf.cast(hits, tf.int64)), tf.size(labels, out_type=tf.int64)

  correct, total = 0, 0
  for images, labels in dataset:
    hits, size = count(images, labels)
    correct += int(hits)
    total += int(size)
    if on_batch is not None:
      on_batch(int(size))
  return correct, total


def evaluate_accuracy(classifier, dataset):
  """Top-1 accuracy (a fraction in [0, 1]) over a finite tf.data of `(images, labels)` batches."""
  correct, total = count_correct(classifier, dataset)
  if not total:
    raise ValueError("evaluate_accuracy got an empty dataset; expected at least one example.")
  return correct / total
