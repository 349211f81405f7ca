"""The 19 VTAB-1k tasks, small local tasks and image folders as (uint8 image, label) datasets.

  task = get_task("cifar100")
  train = load_split(task, "train800", data_dir)   # tf.data of (uint8 [H, W, 3], int64 [])

Splits: `train800` (training during the sweep), `val200` (picking the sweep point),
`train800val200` (the final training run) and `test`. For the tfds tasks the slices, label
mappings and builder versions are the facts of google-research/task_adaptation
(`task_adaptation/data/<dataset>.py`, VTAB-1k version), reimplemented here. Deviation:
`oxford_iiit_pet` is `4.*.*`, because tensorflow_datasets >= 4.9 only builds 4.0.0 (task_adaptation
pins 3.*.*; 4.0.0 fixed corrupt images and added head boxes).

Local tasks need no download and serve smoke runs and demos:
  digits      sklearn's 1797 8×8 handwritten digits, 10 classes; a fixed permutation (seed 0)
              gives train800 = 800, val200 = 200, test = the other 797.
  lfw_subset  skimage's 200 25×25 crops, 2 classes (1: face, the first 100; 0: non-face);
              a fixed permutation (seed 0) gives train 120, val 30, test 50.
  folder:DIR  your images: DIR/{train,val,test}/<class>/**.{png,jpg,jpeg,bmp,gif}; classes are the
              sorted sub-directory names of DIR/train; train800 = all of train, val200 = all of val.
"""

import dataclasses
import importlib
import os
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

GROUPS = ("natural", "specialized", "structured")
# The means of a results file: one per VTAB group and the local tasks, VTAB-1k's score
# ("overall") and, for runs without all 19 tasks, the mean of those that ran ("partial").
MEAN_KEYS = GROUPS + ("local", "overall", "partial")
SPLITS = ("train800", "val200", "train800val200", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


class TaskDataMissing(RuntimeError):
  """The tfds data of a task is not prepared in the data directory; the message says how."""

  def __init__(self, task, data_dir, command):
    self.task = task
    self.command = command
    where = data_dir or "the default tfds data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    super().__init__(f"VTAB task {task.name!r}: tfds builder {task.builder!r} has no prepared "
                     f"data in {where}. Prepare it with: {command}")


@dataclasses.dataclass(frozen=True)
class Slicing:
  """Where a task's splits come from in its tfds splits.

  Attributes:
    val_split: tfds split val200 is cut from ('train' when val200 sits behind a percent cut).
    val_cut: percents of `val_split` that come before val200; val200 starts at
      Σ ⌊p·n/100⌋ (task_adaptation floors each share: e.g. (90,) for cifar100 → 45000).
    test_split: tfds split the test set comes from.
    test_cut: percents of `test_split` before the test set, as `val_cut` (e.g. (60, 20) for
      eurosat: the test set is the last 20 %).
    test_from_percent: the test set is `test_split[P%:]` in tfds's own percent slicing
      (smallnorb), 0 for none.
  """
  val_split: str = "validation"
  val_cut: Tuple[int, ...] = ()
  test_split: str = "test"
  test_cut: Tuple[int, ...] = ()
  test_from_percent: int = 0


def cut_index(percents, num_examples):
  """Σ ⌊p · num_examples / 100⌋ over `percents`: the first index after those shares."""
  return sum(p * num_examples // 100 for p in percents)


def split_strings(slicing, num_examples=None, train_size=800, val_size=200):
  """The tfds split strings of train800, val200, train800val200 and test.

  Args:
    slicing: a `Slicing`.
    num_examples: size of the tfds split being cut (always 'train' in VTAB); needed only when
      `slicing` has a percent cut.
    train_size, val_size: 800 and 200 in VTAB-1k.

  Returns:
    {'train800': 'train[:800]', 'val200': ..., 'train800val200': ..., 'test': ...}, e.g. for
    cifar100 (50000 training images) val200 = 'train[45000:45200]'.
  """
  if (slicing.val_cut or slicing.test_cut) and not num_examples:
    raise ValueError(f"Slicing {slicing} cuts at a percentage and needs num_examples, got "
                     f"{num_examples!r}.")
  start = cut_index(slicing.val_cut, num_examples) if slicing.val_cut else 0
  val = f"{slicing.val_split}[{start or ''}:{start + val_size}]"  # '[:200]' as task_adaptation
  if slicing.test_cut:
    test = f"{slicing.test_split}[{cut_index(slicing.test_cut, num_examples)}:]"
  elif slicing.test_from_percent:
    test = f"{slicing.test_split}[{slicing.test_from_percent}%:]"
  else:
    test = slicing.test_split
  train = f"train[:{train_size}]"
  return {"train800": train, "val200": val, "train800val200": f"{train}+{val}", "test": test}


# Label mappings: tfds example dict → (image uint8 [H, W, 3], label int64 []).

def bin_index(value, thresholds):
  """task_adaptation's binning: the largest i with thresholds[i] < value (thresholds
  increasing), i.e. (number of thresholds below `value`) − 1."""
  below = tf.cast(tf.constant(thresholds, tf.float32) < tf.cast(value, tf.float32), tf.int64)
  return tf.reduce_sum(below) - 1


def _rgb(image):
  image = tf.convert_to_tensor(image)
  return tf.tile(image, [1, 1, 3]) if image.shape[-1] == 1 else image


def plain_label(example):
  """Image and its 'label' as they are."""
  return _rgb(example["image"]), tf.cast(example["label"], tf.int64)


def clevr_count_all(example):
  """Number of objects − 3 (CLEVR scenes hold 3..10 objects → 8 classes)."""
  count = tf.size(example["objects"]["size"], out_type=tf.int64)
  return example["image"], count - 3


# Distance (pixel_coords' depth) of the closest object; 6 roughly balanced bins.
CLEVR_DISTANCE_THRESHOLDS = (0.0, 8.0, 8.5, 9.0, 9.5, 10.0, 100.0)


def clevr_closest_object_distance(example):
  """Bin of the smallest depth among the objects (`CLEVR_DISTANCE_THRESHOLDS`)."""
  distance = tf.reduce_min(example["objects"]["pixel_coords"][:, 2])
  return example["image"], bin_index(distance, CLEVR_DISTANCE_THRESHOLDS)


# Depth (metres) of the closest car, van or truck: <8, 8–20, >20, and 3 = no vehicle (1000 m).
KITTI_VEHICLE_THRESHOLDS = (-100.0, 8.0, 20.0, 999.0)
KITTI_VEHICLE_TYPES = 3  # object types 0, 1, 2: Car, Van, Truck
_NO_VEHICLE_DEPTH = 1000.0


def kitti_closest_vehicle_distance(example):
  """Bin of the smallest depth among vehicles (`KITTI_VEHICLE_THRESHOLDS`)."""
  objects = example["objects"]
  is_vehicle = objects["type"] < KITTI_VEHICLE_TYPES
  depths = tf.boolean_mask(tf.cast(objects["location"][:, 2], tf.float32), is_vehicle)
  distance = tf.reduce_min(tf.concat([depths, [_NO_VEHICLE_DEPTH]], axis=0))
  return example["image"], bin_index(distance, KITTI_VEHICLE_THRESHOLDS)


def dsprites_binned(attribute, num_original, num_classes=16):
  """dsprites with `attribute` grouped into `num_classes` bins: ⌊label / (num_original /
  num_classes)⌋ (x position 32 → 16, orientation 40 → 16); the 0/1 mask becomes 0/255 RGB."""
  factor = num_original / num_classes

  def preprocess(example):
    image = _rgb(example["image"]) * 255
    label = tf.math.floordiv(tf.cast(example[attribute], tf.float32), factor)
    return image, tf.cast(label, tf.int64)

  preprocess.__name__ = f"dsprites_{attribute}_{num_classes}"
  return preprocess


def smallnorb_attribute(attribute):
  """smallnorb's first camera image (gray → RGB) and `attribute` as the label."""

  def preprocess(example):
    return _rgb(example["image"]), tf.cast(example[attribute], tf.int64)

  preprocess.__name__ = f"smallnorb_{attribute}"
  return preprocess


@dataclasses.dataclass(frozen=True)
class Task:
  """One classification task.

  Attributes:
    name: task name (`--tasks`).
    group: 'natural', 'specialized', 'structured' or 'local'.
    num_classes: number of labels.
    builder: tfds `name[/config]:version` pattern ('' for local tasks).
    slicing: where the splits come from (tfds tasks).
    train_examples: size of the tfds train split, for the percent cuts when the builder's info
      has no split sizes (e.g. under `tfds.testing.mock_data`); prepared data's own count wins.
    preprocess: tfds example dict → (uint8 image [H, W, 3], int64 label).
    manual: how to get the files when tfds cannot download them ('' if it can).
    arrays: local tasks: split → (uint8 images [N, H, W, 3], int64 labels [N]).
  """
  name: str
  group: str
  num_classes: int
  builder: str = ""
  slicing: Optional[Slicing] = None
  train_examples: int = 0
  preprocess: Callable = plain_label
  manual: str = ""
  arrays: Optional[Callable] = None


_CUT90 = Slicing(val_split="train", val_cut=(90,))
_VALIDATION = Slicing()

_MANUAL_RESISC = ("download NWPU-RESISC45.rar (see `tfds.builder('resisc45').MANUAL_DOWNLOAD_"
                  "INSTRUCTIONS`) into MANUAL_DIR, then")
_MANUAL_RETINOPATHY = ("download the Kaggle 'diabetic-retinopathy-detection' files (train/test "
                       "images, trainLabels.csv, retinopathy_solution.csv) into MANUAL_DIR, then")

VTAB_TASKS = (
    Task("caltech101", "natural", 102, "caltech101:3.*.*", _CUT90, 3060),
    Task("cifar100", "natural", 100, "cifar100:3.*.*", _CUT90, 50000),
    Task("dtd", "natural", 47, "dtd:3.*.*", _VALIDATION),
    Task("oxford_flowers102", "natural", 102, "oxford_flowers102:2.*.*", _VALIDATION),
    Task("oxford_iiit_pet", "natural", 37, "oxford_iiit_pet:4.*.*",
         Slicing(val_split="train", val_cut=(80,)), 3680),
    Task("sun397", "natural", 397, "sun397/tfds:4.*.*", _VALIDATION),
    Task("svhn", "natural", 10, "svhn_cropped:3.*.*", _CUT90, 73257),
    Task("patch_camelyon", "specialized", 2, "patch_camelyon:2.*.*", _VALIDATION),
    Task("eurosat", "specialized", 10, "eurosat/rgb:2.*.*",
         Slicing(val_split="train", val_cut=(60,), test_split="train", test_cut=(60, 20)), 27000),
    Task("resisc45", "specialized", 45, "resisc45:3.*.*",
         Slicing(val_split="train", val_cut=(60,), test_split="train", test_cut=(60, 20)), 31500,
         manual=_MANUAL_RESISC),
    Task("diabetic_retinopathy", "specialized", 5,
         "diabetic_retinopathy_detection/btgraham-300:3.*.*", _VALIDATION,
         manual=_MANUAL_RETINOPATHY),
    Task("clevr_count", "structured", 8, "clevr:3.*.*",
         Slicing(val_split="train", val_cut=(90,), test_split="validation"), 70000,
         preprocess=clevr_count_all),
    Task("clevr_distance", "structured", 6, "clevr:3.*.*",
         Slicing(val_split="train", val_cut=(90,), test_split="validation"), 70000,
         preprocess=clevr_closest_object_distance),
    Task("dmlab", "structured", 6, "dmlab:2.0.1", _VALIDATION),
    Task("kitti_distance", "structured", 4, "kitti:3.1.0", _VALIDATION,
         preprocess=kitti_closest_vehicle_distance),
    Task("dsprites_location", "structured", 16, "dsprites:2.*.*",
         Slicing(val_split="train", val_cut=(80,), test_split="train", test_cut=(80, 10)), 737280,
         preprocess=dsprites_binned("label_x_position", 32)),
    Task("dsprites_orientation", "structured", 16, "dsprites:2.*.*",
         Slicing(val_split="train", val_cut=(80,), test_split="train", test_cut=(80, 10)), 737280,
         preprocess=dsprites_binned("label_orientation", 40)),
    Task("smallnorb_azimuth", "structured", 18, "smallnorb:2.*.*",
         Slicing(val_split="test", test_from_percent=50),
         preprocess=smallnorb_attribute("label_azimuth")),
    Task("smallnorb_elevation", "structured", 9, "smallnorb:2.*.*",
         Slicing(val_split="test", test_from_percent=50),
         preprocess=smallnorb_attribute("label_elevation")),
)


# Local tasks.

def permuted_splits(num_examples, train_size, val_size, seed=0):
  """Index arrays of train800 / val200 / train800val200 / test after a fixed permutation."""
  if train_size + val_size >= num_examples:
    raise ValueError(f"train_size + val_size = {train_size + val_size} leaves no test examples "
                     f"out of {num_examples}.")
  order = np.random.default_rng(seed).permutation(num_examples)
  train, val = order[:train_size], order[train_size:train_size + val_size]
  return {"train800": train, "val200": val, "train800val200": order[:train_size + val_size],
          "test": order[train_size + val_size:]}


def _gray_to_rgb_uint8(images, maximum):
  images = np.rint(np.asarray(images, np.float64) * (255.0 / maximum)).astype(np.uint8)
  return np.repeat(images[..., None], 3, axis=-1)


def _import_local_data(module, package):
  """`module`, or an error naming `package` and how to install it."""
  try:
    return importlib.import_module(module)
  except ModuleNotFoundError as e:
    raise ModuleNotFoundError(
        f"The local tasks digits and lfw_subset need {package}, which is not installed "
        f"({e}); install it: `pip install {package}` (or the package's test extra, "
        f"`pip install -e '.[test]'`).") from e


def _digits(split):
  datasets = _import_local_data("sklearn.datasets", "scikit-learn")
  digits = datasets.load_digits()
  index = permuted_splits(len(digits.target), 800, 200)[split]
  return _gray_to_rgb_uint8(digits.images[index], 16.0), digits.target[index].astype(np.int64)


def _lfw_subset(split):
  data = _import_local_data("skimage.data", "scikit-image")
  images = np.asarray(data.lfw_subset())
  maximum = 255.0 if images.dtype == np.uint8 else 1.0
  labels = np.r_[np.ones(100), np.zeros(100)].astype(np.int64)  # first 100 are faces
  index = permuted_splits(len(images), 120, 30)[split]
  return _gray_to_rgb_uint8(images[index], maximum), labels[index]


LOCAL_TASKS = (
    Task("digits", "local", 10, arrays=_digits),
    Task("lfw_subset", "local", 2, arrays=_lfw_subset),
)

_TASKS = {task.name: task for task in VTAB_TASKS + LOCAL_TASKS}
FOLDER_PREFIX = "folder:"


def list_tasks(group=None):
  """Names of the 19 VTAB tasks (or of one group, 'local' included), in the paper's order."""
  if group is None:
    return [t.name for t in VTAB_TASKS]
  if group not in GROUPS + ("local",):
    raise ValueError(f"group must be one of {GROUPS + ('local',)}, got {group!r}.")
  return [t.name for t in VTAB_TASKS + LOCAL_TASKS if t.group == group]


def mean_members(groups):
  """What each of `MEAN_KEYS` averages: {key: [task names]}, for `groups` (task name → group).

  A group key (and 'local') averages the tasks of that group that ran. 'overall' is VTAB-1k's
  score, the mean of all 19 tasks: it has members only when all 19 ran. Otherwise 'partial'
  averages the VTAB tasks that ran; it is not comparable with a VTAB-1k score.
  """
  members = {g: [t for t, group in groups.items() if group == g] for g in GROUPS + ("local",)}
  vtab = [t for g in GROUPS for t in members[g]]
  complete = set(vtab) == set(list_tasks())
  members["overall"], members["partial"] = (vtab, []) if complete else ([], vtab)
  return members


def means(accuracies, groups):
  """{key of `MEAN_KEYS`: mean of `accuracies` (task name → accuracy) over its
  `mean_members(groups)`, or None when it has none}."""
  return {key: float(np.mean([accuracies[t] for t in names])) if names else None
          for key, names in mean_members(groups).items()}


def folder_classes(directory):
  """Sorted class names: the sub-directories of DIRECTORY/train."""
  train = os.path.join(directory, "train")
  if not tf.io.gfile.isdir(train):
    raise FileNotFoundError(f"Image-folder task: expected {train!r} holding one directory of "
                            f"images per class (and {directory}/val, {directory}/test).")
  classes = sorted(c.rstrip("/") for c in tf.io.gfile.listdir(train)
                   if tf.io.gfile.isdir(os.path.join(train, c)))
  if not classes:
    raise ValueError(f"Image-folder task: {train!r} has no class directories.")
  return classes


def get_task(name):
  """The `Task` called `name`: a VTAB or local task, or 'folder:DIR' for an image folder."""
  if name.startswith(FOLDER_PREFIX):
    directory = name[len(FOLDER_PREFIX):]
    return Task(name, "local", len(folder_classes(directory)), builder=name)
  if name not in _TASKS:
    raise ValueError(f"Unknown VTAB task {name!r}; expected one of {sorted(_TASKS)} or "
                     f"'folder:DIR'.")
  return _TASKS[name]


def prepare_command(task, data_dir=None):
  """The shell command that prepares `task`'s tfds data (with the manual step if any)."""
  builder = tfds.builder(task.builder, data_dir=data_dir)
  name = builder.name + (f"/{builder.builder_config.name}" if builder.builder_config else "")
  command = f"tfds build {name}:{builder.version}"
  if data_dir:
    command += f" --data_dir={data_dir}"
  if task.manual:
    return f"{task.manual} {command} --manual_dir=MANUAL_DIR"
  return command


def class_folder_dataset(roots, classes, labels=None):
  """The images of ROOT/CLASS/ for every root and class, as (uint8 image, int64 label).

  Args:
    roots: directories holding one sub-directory per class (missing ones are skipped).
    classes: the class directory names.
    labels: the label of each class (default: its index in `classes`).

  Returns:
    `(dataset, num_images)`: an unshuffled tf.data of (uint8 [H, W, 3], int64 []) in the
    order roots, class folders (sorted by name), sorted paths, over the files ending in
    `IMAGE_EXTENSIONS` (any case, sub-folders included, as tf_keras's
    `image_dataset_from_directory` lists them; a GIF gives its first frame), and its size.
  """
  label_of = dict(zip(classes, range(len(classes)) if labels is None else labels))
  paths, targets = [], []
  for root in roots:
    if not tf.io.gfile.isdir(root):
      continue
    for name in sorted(c.rstrip("/") for c in tf.io.gfile.listdir(root)):
      # Folders that are not classes are left out.
      if name in label_of and tf.io.gfile.isdir(os.path.join(root, name)):
        images = _image_files(os.path.join(root, name))
        paths += images
        targets += [label_of[name]] * len(images)

  def decode(path, label):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return image, label

  data = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string),
                                             np.asarray(targets, np.int64)))
  return data.map(decode, num_parallel_calls=tf.data.AUTOTUNE), len(paths)


def _image_files(directory):
  """Paths of the `IMAGE_EXTENSIONS` files (any case) under `directory`, sub-folders included,
  sorted by folder then name: the order of tf_keras's `image_dataset_from_directory`, whose
  listing is not public API (and which would resize and batch; VTAB resizes once, itself)."""
  found = []
  for folder, _, names in sorted(tf.io.gfile.walk(directory), key=lambda entry: entry[0]):
    found += [os.path.join(folder, n) for n in sorted(names)
              if n.lower().endswith(IMAGE_EXTENSIONS)]
  return found


def _folder_split(task, split):
  directory = task.name[len(FOLDER_PREFIX):]
  parts = {"train800": ["train"], "val200": ["val"], "train800val200": ["train", "val"],
           "test": ["test"]}[split]
  roots = [os.path.join(directory, p) for p in parts]
  data, count = class_folder_dataset(roots, folder_classes(directory))
  if not count:
    raise FileNotFoundError(f"Image-folder task: no images for split {split!r} under {roots}.")
  return data


def _num_train_examples(task, builder):
  splits = builder.info.splits
  if "train" in splits and splits["train"].num_examples:
    return splits["train"].num_examples
  return task.train_examples


def load_split(task, split, data_dir=None):
  """One split of `task` as an unbatched, unshuffled tf.data of (uint8 image [H, W, 3],
  int64 label []).

  Args:
    task: a `Task` (see `get_task`).
    split: 'train800', 'val200', 'train800val200' or 'test'.
    data_dir: tfds data directory (None: tfds's default).

  Raises:
    TaskDataMissing: the task's tfds data is not prepared in `data_dir`.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
  if task.arrays is not None:
    images, labels = task.arrays(split)
    return tf.data.Dataset.from_tensor_slices((images, labels))
  if task.name.startswith(FOLDER_PREFIX):
    return _folder_split(task, split)
  builder = tfds.builder(task.builder, data_dir=data_dir)
  tfds_split = split_strings(task.slicing, _num_train_examples(task, builder))[split]
  try:
    data = builder.as_dataset(split=tfds_split, shuffle_files=False)
  except AssertionError as error:  # tfds's "could not find data in ..."
    if "could not find data" not in str(error):
      raise
    raise TaskDataMissing(task, data_dir, prepare_command(task, data_dir)) from error
  return data.map(task.preprocess, num_parallel_calls=tf.data.AUTOTUNE)
