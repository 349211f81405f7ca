"""`train`: `model.fit` of a named experiment on a `tf.distribute` strategy, resumable."""

import contextlib
import csv
import dataclasses
import io
import math
import os
import tempfile
import typing
import zlib

from absl import logging
import tensorflow as tf
import tf_keras

from keras_vivi import configs
from keras_vivi import files
from keras_vivi import losses
from keras_vivi.training import callbacks as callbacks_lib
from keras_vivi.training import checkpoints as checkpoints_lib
from keras_vivi.training.optimization import build_optimizer
from keras_vivi.training.vivi_model import LOSS_NAMES, VIVIModel

STRATEGIES = configs.STRATEGIES
HISTORY_FILE = "history.csv"    # one row of metrics per epoch, in model_dir
DIAGNOSTIC_FILE = "object_diagnostic.jsonl"  # the object diagnostic from step 0 on
INITIAL_LOSSES_FILE = "initial_losses.json"  # each loss term at the first step, and its weight
RUN_INFO_FILE = "run_info.json"  # what the run trained on, beside config.json


# Our names → Model Garden's `distribute_utils` names.
_STRATEGY_NAMES = {"default": "off", "mirrored": "mirrored", "multi_worker": "multi_worker_mirrored",
                   "tpu": "tpu"}


def build_strategy(name="default", tpu="") -> tf.distribute.Strategy:
  """`default` (one device), `mirrored` (all local GPUs, else the CPU), `multi_worker`
  (TF_CONFIG) or `tpu`, through Model Garden's `distribute_utils`."""
  from official.common import distribute_utils
  if name not in STRATEGIES:
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}.")
  # Physical, not logical, devices: listing logical ones starts the runtime, after which a
  # multi-worker strategy can no longer configure its collectives.
  return distribute_utils.get_distribution_strategy(
      _STRATEGY_NAMES[name], num_gpus=len(tf.config.list_physical_devices("GPU")),
      tpu_address=tpu)


# What a restarted run may change: a larger train.steps extends it; prepared data may move.
RESTART_CHANGEABLE = ("train.steps", "train.keep_checkpoints", "data.path", "description",
                      "diagnostic.every_epochs", "diagnostic.num_batches",
                      "diagnostic.videos_per_batch", "diagnostic.frames")


# The progress line: the total and each level's loss (every log goes to history.csv and
# TensorBoard).
PROGRESS_LOGS = tuple(n for n in LOSS_NAMES if n != "weight_decay_loss")


def check_restart(config, model_dir) -> None:
  """Raises ValueError if `model_dir` holds a run whose config differs beyond `RESTART_CHANGEABLE`."""
  previous = configs.load_run_config(model_dir)
  if previous is None:
    return
  changed = [k for k in configs.differing_fields(previous, config) if k not in RESTART_CHANGEABLE]
  if changed:
    old, new = configs.to_dict(previous), configs.to_dict(config)
    def value(values, key):
      section, _, field = key.partition(".")
      return values[section][field] if field else values[section]
    listed = "; ".join(f"{k}: {value(old, k)!r} -> {value(new, k)!r}" for k in changed)
    raise ValueError(
        f"{model_dir!r} holds a run of another experiment ({listed}); a restart resumes its "
        f"checkpoints and may change only {', '.join(RESTART_CHANGEABLE)}. Restart with the "
        f"run's own settings ({os.path.join(model_dir, configs.RUN_CONFIG_FILE)}) or train "
        f"into a new model_dir.")


def load_teacher(handle) -> tf_keras.layers.Layer:
  """A frozen classifier (hub handle or SavedModel path): images in [0, 1] → logits.

  Resolved through the zoo's cache (`keras_vivi.zoo.resolve_handle`): offline mode, sha256
  records and its errors apply.
  """
  import tensorflow_hub as hub
  from keras_vivi.zoo import loader
  return hub.KerasLayer(loader.resolve_handle(handle), trainable=False, name="teacher")


def build_model(config, detector=None, teacher=None) -> VIVIModel:
  """`VIVIModel` with the detector and teacher its config needs (loaded when not given)."""
  if config.data.inline_detection and detector is None:
    from keras_vivi.detector import load_detector
    detector = load_detector(config.data.detector or None, score_threshold=config.data.min_score,
                             max_detections=config.data.max_objects)
  if config.loss.distillation and teacher is None:
    teacher = load_teacher(config.loss.teacher)
  return VIVIModel(config, detector=detector, teacher=teacher, name=config.name)


def make_dataset_fn(config, step=0) -> typing.Callable[..., tf.data.Dataset]:
  """`input_context → dataset` for `distribute_datasets_from_function` / `DatasetCreator`.

  The input of a run resumed at `step`: each input pipeline passes over the videos (and labelled
  images) its replicas trained on in steps `[0, step)`, so with `config.data.seed` set the run
  continues on the batches an uninterrupted one would see.
  """
  from keras_vivi.data import pipeline

  def dataset_fn(input_context=None):
    context = input_context or tf.distribute.InputContext()
    # Every step, each replica of a pipeline takes one per-replica batch from it.
    batches = step * (context.num_replicas_in_sync // context.num_input_pipelines)
    videos = pipeline.build_dataset(
        config.data, input_context,
        start=batches * context.get_per_replica_batch_size(config.data.batch_size),
        raw_frames=config.loss.detector_crops).repeat()
    if not config.loss.supervised:
      return videos
    images = pipeline.build_labelled_dataset(
        config.data, input_context,
        start=batches * context.get_per_replica_batch_size(config.data.labelled_batch_size))
    return tf.data.Dataset.zip((videos, images.repeat()))
  return dataset_fn


def with_data_seed(config, model_dir) -> configs.ExperimentConfig:
  """`config` with `data.seed` set, so that a restart can resume the run's input stream.

  Without one: the seed the run in `model_dir` recorded, else one derived from `model_dir` (the
  same on every worker of a multi-worker run). A run recorded without a seed keeps none.
  """
  if config.data.seed is not None:
    return config
  previous = configs.load_run_config(model_dir)
  if previous is not None:
    seed = previous.data.seed
  else:
    seed = zlib.crc32(str(model_dir).encode()) & 0x7FFFFFFF
  return dataclasses.replace(config, data=dataclasses.replace(config.data, seed=seed))


def detections_label_space(data) -> str:
  """The label space id of the boxes a run trains on: the inline detector's, or the one recorded
  in the `manifest.json` of the prepared records (`detector.loader.label_space_of`)."""
  from keras_vivi.data import manifest as manifest_lib
  from keras_vivi.detector import loader
  if data.inline_detection:
    return loader.label_space_of({"spec": data.detector})
  manifest = manifest_lib.read_manifest(data.path) if data.path else None
  if manifest is None:
    return loader.UNKNOWN_LABEL_SPACE
  return loader.label_space_of(manifest.get("detector", {}))


def run_info(config) -> dict:
  """What a run trains on, for `model_dir/run_info.json`: the label space of its boxes, said
  plainly when boxes are trained on and they are not the paper's detector's."""
  from keras_vivi.detector import loader
  space = detections_label_space(config.data)
  info = {"label_space": space, "label_space_description": loader.label_space_description(space)}
  l = config.loss
  if l.object or l.box_classifier or l.detector_crops:
    if space != loader.PAPER_LABEL_SPACE:
      logging.warning("Object labels come from %s; the paper's experiments used %s (see "
                      "docs/reproducing.md).", info["label_space_description"],
                      loader.LABEL_SPACES[loader.PAPER_LABEL_SPACE])
    else:
      logging.info("Object labels come from %s.", info["label_space_description"])
  return info


def summary_batch(config) -> dict[str, tf.Tensor]:
  """The first video of the prepared records, un-augmented, for the frames shown in TensorBoard
  (a training batch would hold `data.batch_size` videos: gigabytes at the paper's sizes)."""
  from keras_vivi.data import pipeline
  from keras_vivi.data import records
  one_video = dataclasses.replace(config.data, batch_size=1)
  batch = next(iter(pipeline.build_dataset(one_video, training=False)), None)
  if batch is None:
    reader = records.ShardReader(pipeline.shard_files(config.data.path))
    for _ in reader:
      pass
    reader.check()
    raise ValueError(f"No video of {config.data.path!r} can be trained on: each has fewer than "
                     f"{config.data.shots_per_video} shots (data.short_videos=drop) or frames "
                     "that cannot be decoded.")
  return batch


def train(config, model_dir, strategy=None, steps_per_epoch=1000, dataset_fn=None,
          detector=None, teacher=None, callbacks=(), verbose="auto"
          ) -> tuple[VIVIModel, tf_keras.callbacks.History]:
  """Trains `config` into `model_dir`, resuming from its latest checkpoint.

  Every `steps_per_epoch` steps a checkpoint (model + optimizer, so the step and momentum
  resume exactly) is written; a killed run restarted with the same arguments continues from
  the last one. TensorBoard logs go to `model_dir/logs`.

  Args:
    config: `ExperimentConfig`; `config.data.path` holds the prepared records.
    strategy: a `tf.distribute.Strategy` (default: the current one).
    dataset_fn: `input_context → tf.data.Dataset` (default: `make_dataset_fn(config, step)`,
      resuming the input at the checkpoint's step; a given one starts from its first element).
    callbacks: more Keras callbacks.

  Returns:
    `(model, history)`.
  """
  strategy = strategy or tf.distribute.get_strategy()
  previous_policy = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy(precision_policy(config.train, strategy))
  # One process at a time writes a run: its checkpoints, logs and config.
  chief = strategy.extended.should_checkpoint
  lock = (files.DirectoryLock(model_dir, "vivi-train") if chief else contextlib.nullcontext())
  try:
    with lock:
      if chief:
        checkpoints_lib.sweep_temporaries(model_dir)
      return _train(config, model_dir, strategy, steps_per_epoch, dataset_fn, detector, teacher,
                    callbacks, verbose)
  finally:
    tf_keras.mixed_precision.set_global_policy(previous_policy)


def resume_checkpoint(model_dir) -> str | None:
  """The checkpoint a restart resumes from: the newest intact one (damaged newer ones are
  named in a warning); None for a new run. Raises ValueError, naming the files, when every
  checkpoint is damaged: a run is never restarted from step 0 over its checkpoints."""
  intact, damaged = checkpoints_lib.newest_intact(model_dir)
  if damaged and intact is None:
    raise ValueError(
        f"Every checkpoint of {model_dir} is damaged ({checkpoints_lib.describe(damaged)}); "
        f"restore them from a copy, or move them away to train from step 0.")
  if damaged:
    logging.warning("Resuming from %s, the newest intact checkpoint: the newer %s.", intact,
                    checkpoints_lib.describe(damaged))
  return intact


def keep_history_until(path, epochs) -> None:
  """Rewrites the `CSVLogger` file `path` without the rows of epoch `epochs` on (a run killed
  between its logs and its checkpoint trains those epochs again) or a row cut short."""
  if not tf.io.gfile.exists(path):
    return
  with tf.io.gfile.GFile(path) as f:
    text = f.read()
  rows = list(csv.reader(io.StringIO(text)))
  if not rows:
    return
  header, kept = rows[0], [rows[0]]
  for row in rows[1:]:
    try:
      if len(row) == len(header) and int(row[0]) < epochs:
        kept.append(row)
    except ValueError:
      pass
  out = io.StringIO()
  csv.writer(out, lineterminator="\n").writerows(kept)
  if out.getvalue() != text:
    files.write_atomically(path, out.getvalue())


def precision_policy(train, strategy) -> str:
  """`train.mixed_precision`, or when unset mixed_bfloat16 on TPUs (as the paper trained) and
  float32 elsewhere."""
  if train.mixed_precision:
    return train.mixed_precision
  return "mixed_bfloat16" if isinstance(strategy, tf.distribute.TPUStrategy) else "float32"


def _train(config, model_dir, strategy, steps_per_epoch, dataset_fn, detector, teacher,
           callbacks, verbose):
  # The task that writes checkpoints and summaries (the chief, or worker 0 without one).
  chief = strategy.extended.should_checkpoint
  config = with_data_seed(config, model_dir)
  check_restart(config, model_dir)
  info = run_info(config)
  # Non-chief workers of a multi-worker run write to scratch space.
  write_dir = model_dir if chief else tempfile.mkdtemp(prefix="vivi_worker_")

  if config.data.seed is not None:
    # The initial weights follow the run's seed too: two runs with one seed start alike.
    tf_keras.utils.set_random_seed(config.data.seed)
  with strategy.scope():
    model = build_model(config, detector, teacher)
    model.compile(optimizer=build_optimizer(config.train, config.data.batch_size),
                  jit_compile=config.train.jit_compile,
                  steps_per_execution=config.train.steps_per_execution)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    manager = tf.train.CheckpointManager(checkpoint, write_dir,
                                         max_to_keep=config.train.keep_checkpoints)
    # Every worker resumes from the chief's checkpoints.
    latest = resume_checkpoint(model_dir)
    if latest:
      checkpoint.restore(latest)
  step = int(model.optimizer.iterations.numpy())
  initial_epoch = step // steps_per_epoch
  epochs = math.ceil(config.train.steps / steps_per_epoch)
  data = tf_keras.utils.experimental.DatasetCreator(dataset_fn or make_dataset_fn(config, step))
  all_callbacks = list(callbacks)
  if not any(isinstance(c, tf_keras.callbacks.ProgbarLogger) for c in all_callbacks):
    all_callbacks.insert(0, callbacks_lib.CompactProgbarLogger(PROGRESS_LOGS))
  if chief:
    log_dir = os.path.join(model_dir, "logs")
    if config.data.path and not config.data.inline_detection:
      if config.diagnostic.every_epochs:
        all_callbacks.append(callbacks_lib.ObjectNeighbourCallback(
            config.data, config.diagnostic, os.path.join(model_dir, DIAGNOSTIC_FILE)))
      all_callbacks.append(callbacks_lib.FrameSummaryCallback(summary_batch(config), log_dir))
    all_callbacks += [tf_keras.callbacks.TensorBoard(log_dir, update_freq="epoch"),
                      # Appends across restarts: one row per epoch, for plots and reports.
                      tf_keras.callbacks.CSVLogger(os.path.join(model_dir, HISTORY_FILE),
                                                   append=True)]
    keep_history_until(os.path.join(model_dir, HISTORY_FILE), initial_epoch)
    if step == 0:
      all_callbacks.append(callbacks_lib.InitialLossesCallback(
          losses.loss_weights(config.loss), os.path.join(model_dir, INITIAL_LOSSES_FILE)))
  # Last: an epoch's logs are written before its checkpoint, so a kill between them never
  # loses its rows (the epoch is trained again, its rows replaced).
  all_callbacks.append(callbacks_lib.CheckpointCallback(manager))
  if chief:
    # Only once everything is set up: a failed or refused start leaves model_dir as it was.
    tf.io.gfile.makedirs(model_dir)
    configs.save_run_config(config, model_dir)
    files.write_json(os.path.join(model_dir, RUN_INFO_FILE), info)
  history = model.fit(data, epochs=epochs, steps_per_epoch=steps_per_epoch,
                      initial_epoch=initial_epoch, callbacks=all_callbacks, verbose=verbose)
  return model, history
