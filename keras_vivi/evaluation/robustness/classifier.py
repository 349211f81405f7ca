"""A classifier in ImageNet's label space, as the robustness study needs one (§5.2).

  train_imagenet_classifier("exports/ours", "classifiers/ours", ImageNetRecipe())  # "fine tuning"
  cotrain_classifier("runs/ours_cotrain", "classifiers/ours_cotrain")             # "cotraining"
  classifier = load_classifier("classifiers/ours")  # images [B, S, S, 3] in [0, 1] → [B, 1000]

The "fine tuning" row of Table 5 puts a linear head on an exported representation and trains it
on ImageNet; the paper gives no recipe, so ours is `ImageNetRecipe` (documented there). The
"cotraining" row needs no training: a co-trained run already has its supervised ImageNet head.
Both are saved the same way: a SavedModel whose `logits(images)` function and
`serving_default` signature map float32 `[B, S, S, 3]` in [0, 1] to `[B, 1000]` logits, and a
`classifier.json` marker (source, recipe, image size) written last, so a directory without it is
not a finished classifier. Evaluation preprocessing (`suite.preprocess`): shorter
side resized to S / 0.875, central S × S crop.
"""

import dataclasses
import json
import os

import tensorflow as tf
import tf_keras

from keras_vivi.data import augment
from keras_vivi.evaluation.vtab import finetune
from keras_vivi.evaluation.robustness.config import ImageNetRecipe

MARKER = "classifier.json"
NUM_CLASSES = 1000


def imagenet_batches(recipe, data_dir=None, builder="imagenet2012"):
  """Endless training batches `(float32 [B, S, S, 3] in [0, 1], int64 [B])` from tfds."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  source = tfds.builder(builder, data_dir=data_dir)
  try:
    # Encoded images in the shuffle buffer: 2k decoded ImageNet images would take ~1 GB.
    data = source.as_dataset(split=recipe.split, shuffle_files=True, as_supervised=True,
                             read_config=tfds.ReadConfig(shuffle_seed=recipe.seed),
                             decoders={"image": tfds.decode.SkipDecoding()})
  except AssertionError as error:
    raise FileNotFoundError(
        f"tfds {builder!r} is not prepared in {data_dir or 'the default tfds data_dir'}: "
        "download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from image-net.org into "
        f"<data_dir>/downloads/manual, then `tfds build {builder}`.") from error
  base = tf.constant([recipe.seed, 1], tf.int64)

  def crop(index, encoded, label):
    seed = tf.random.experimental.stateless_fold_in(base, index)
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image, _, _ = augment.inception_crop(image, recipe.image_size, seed, recipe.crop_area)
    return tf.ensure_shape(image, [recipe.image_size, recipe.image_size, 3]), label

  data = data.repeat().shuffle(2_048, seed=recipe.seed).enumerate()
  data = data.map(lambda i, pair: crop(i, *pair), num_parallel_calls=tf.data.AUTOTUNE)
  return data.batch(recipe.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


class _Exported(tf.Module):
  """What is saved: one fixed-shape `logits` function and the model's variables.

  The Keras model itself is not an attribute, so saving traces this one function and not every
  layer's call (several times faster for a ResNet)."""

  def __init__(self, model, image_size):
    super().__init__()
    self.model_variables = list(model.variables)
    self.logits = tf.function(
        lambda images: {"logits": model(images, training=False)},
        input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32, "images")])


def _check_output_dir(output_dir, info):
  """True when `output_dir` already holds this classifier; raises on anything else there."""
  marker = os.path.join(output_dir, MARKER)
  if tf.io.gfile.exists(marker):
    with tf.io.gfile.GFile(marker) as f:
      previous = json.load(f)
    if previous.get("source") != info["source"]:
      raise ValueError(f"{output_dir} holds the classifier of {previous.get('source')}, not of "
                       f"{info['source']}; choose another directory.")
    return True
  if tf.io.gfile.exists(output_dir) and tf.io.gfile.listdir(output_dir):
    raise ValueError(f"{output_dir} exists, is not empty and has no {MARKER}: it was not written "
                     "by keras_vivi; choose another directory.")
  return False


def save_classifier(model, output_dir, info):
  """Saves `model` (images → [B, 1000] logits) and `classifier.json` (`info`: 'source',
  'image_size', ...) under a temporary name renamed into place; replaces only an empty
  directory or a classifier of the same source."""
  _check_output_dir(output_dir, info)
  image_size = info["image_size"]
  outputs = model(tf.zeros([1, image_size, image_size, 3]), training=False)
  if outputs.shape[-1] != NUM_CLASSES:
    raise ValueError(f"The classifier returns {outputs.shape[-1]} logits; ImageNet's label "
                     f"space has {NUM_CLASSES}.")
  temporary = output_dir.rstrip("/") + ".partial-classifier"
  if tf.io.gfile.exists(temporary):
    tf.io.gfile.rmtree(temporary)  # the leftover of a killed save
  exported = _Exported(model, image_size)
  tf.saved_model.save(exported, temporary, signatures={"serving_default": exported.logits})
  with tf.io.gfile.GFile(os.path.join(temporary, MARKER), "w") as f:
    f.write(json.dumps(info, indent=2) + "\n")
  if tf.io.gfile.exists(output_dir):
    tf.io.gfile.rmtree(output_dir)  # empty, or ours: checked above
  tf.io.gfile.rename(temporary, output_dir)
  return output_dir


def train_imagenet_classifier(hub, output_dir, recipe=ImageNetRecipe(), data_dir=None,
                              verbose="auto", builder="imagenet2012", strategy=None):
  """Fine-tunes (or linearly probes) `hub` on ImageNet and saves the classifier.

  A finished classifier of the same `hub` in `output_dir` is kept (nothing is retrained).

  Args:
    hub: zoo preset name or hub handle of a module `obj(images, training) → [B, D]`.
    output_dir: where the SavedModel and `classifier.json` go.
    recipe: `ImageNetRecipe`.
    data_dir: tfds data directory holding imagenet2012.
    verbose: Keras `fit` progress.
    builder: tfds builder name (tests use a mock of imagenet2012).
    strategy: `tf.distribute` strategy (default: the current one); `batch_size` is global.

  Returns:
    `output_dir`.
  """
  from keras_vivi.evaluation.vtab import run as vtab  # pylint: disable=g-import-not-at-top

  info = {"source": vtab.normalize_hub(hub), "kind": recipe.mode,
          "recipe": dataclasses.asdict(recipe), "image_size": recipe.image_size}
  if _check_output_dir(output_dir, info):
    return output_dir
  batches = imagenet_batches(recipe, data_dir, builder)
  tf_keras.utils.set_random_seed(recipe.seed)
  with (strategy or tf.distribute.get_strategy()).scope():
    classifier = finetune.build_classifier(hub, NUM_CLASSES, trainable=recipe.mode == "finetune",
                                           image_size=recipe.image_size)
    finetune.finetune(classifier, batches, recipe.steps, recipe.learning_rate,
                      recipe.decay_every, momentum=recipe.momentum,
                      warmup_steps=recipe.warmup_steps, verbose=verbose)
  return save_classifier(classifier, output_dir, info)


def cotrain_classifier(run, output_dir, image_size=224):
  """The backbone and supervised ImageNet head of a co-training run, saved as a classifier.

  Args:
    run: a `vivi-train` model_dir of a co-training experiment (or a checkpoint prefix).
    output_dir: where the SavedModel and `classifier.json` go.
    image_size: input resolution of the saved function.

  Returns:
    `output_dir`.
  """
  from keras_vivi.training import runs as checkpoint_lib  # pylint: disable=g-import-not-at-top
  from keras_vivi import models  # pylint: disable=g-import-not-at-top

  path, config = checkpoint_lib.resolve_run(run)
  if not config.loss.supervised:
    raise ValueError(f"Run {run!r} (experiment {config.name!r}) has no supervised head: only "
                     "co-training experiments (e.g. vivi_objects_cotrain) have one; fine-tune "
                     "its export instead (train_imagenet_classifier).")
  info = {"source": os.path.abspath(path), "kind": "cotraining", "experiment": config.name,
          "image_size": image_size}
  if _check_output_dir(output_dir, info):
    return output_dir
  backbone = models.build_backbone(config.model)
  head = tf_keras.layers.Dense(config.model.num_supervised_classes, name="supervised_head")
  images = tf_keras.Input([image_size, image_size, 3], name="images")
  model = tf_keras.Model(images, head(backbone(images)["pre_logits"]), name="cotrain_classifier")
  status = tf.train.Checkpoint(model=tf.train.Checkpoint(backbone=backbone,
                                                         supervised_head=head)).restore(path)
  try:
    status.expect_partial().assert_existing_objects_matched()
  except AssertionError as error:
    raise ValueError(f"Checkpoint {path!r} does not hold the backbone and supervised head of "
                     f"{config.name!r}: {str(error)[:300]}") from None
  return save_classifier(model, output_dir, info)


@dataclasses.dataclass(frozen=True)
class Classifier:
  """A loaded classifier: `logits(images float32 [B, S, S, 3] in [0, 1]) → [B, 1000]`."""
  logits: object
  image_size: int
  info: dict


def load_classifier(path):
  """The classifier saved in `path` by `train_imagenet_classifier` or `cotrain_classifier`."""
  marker = os.path.join(path, MARKER)
  if not tf.io.gfile.exists(marker):
    raise FileNotFoundError(f"No {MARKER} in {path!r}: expected a classifier written by "
                            "vivi-robustness (--hub=EXPORT or --cotrain_run=MODEL_DIR builds one).")
  with tf.io.gfile.GFile(marker) as f:
    info = json.load(f)
  loaded = tf.saved_model.load(path)
  return Classifier(lambda images: loaded.logits(images)["logits"], int(info["image_size"]), info)
