"""The datasets of the paper's robustness study (Table 5) and the cue-conflict set.

  parts = get_dataset("imagenet_a").parts(data_dir=None, folder="data/imagenet-a")
  # each Part: images (uint8, target) + how to decide and summarise in ImageNet's label space

Every set is read from tfds when tfds has it, otherwise (or when `folder` is given) from the
folder layout of its release; a set that is in neither place raises `DatasetMissing` saying how
to get it. Protocols (Djolonga et al. 2020, the paper's [11], and each set's own paper):

  imagenet             tfds imagenet2012 'validation'; top-1 over the 1000 classes.
  imagenet_a           tfds imagenet_a 'test' or the release's imagenet-a/<wnid>/*.jpg; the
                       arg-max runs over ImageNet-A's 200 classes only (Hendrycks et al.).
  imagenet_c           tfds imagenet2012_corrupted/<corruption>_<severity> 'validation' or the
                       release's <corruption>/<severity>/<wnid>/*.JPEG; the 15 benchmark
                       corruptions × 5 severities, reported as their mean and per corruption.
  imagenet_v2          tfds imagenet_v2/matched-frequency 'test' or the release's
                       imagenetv2-matched-frequency-format-val/<class index>/*.jpeg.
  objectnet            the release's objectnet-1.0/{images,mappings}: only the classes that
                       `mappings/objectnet_to_imagenet_1k.json` maps to ImageNet; an arg-max
                       over the 1000 classes is correct when the mapping sends it (many-to-one)
                       to the image's class; the 1-pixel frame is cut off before the centre crop.
  imagenet_vid_robust, ytbb_robust
                       the release imagenet_vid_ytbb_robust/{imagenet-vid-robust,ytbb-robust}:
                       metadata/pmsets.json (anchor → its reviewed neighbours within ±10
                       frames), metadata/labels.json (frame → accepted classes), misc/
                       *class_index.json and rev_wnid_map.json (set class → ImageNet wnids);
                       a frame's class is the set class with the largest logit of its ImageNet
                       classes (Shankar et al.); anchor accuracy, pm-k accuracy and Δ. A set
                       class with no ImageNet classes is skipped: pm-sets with a frame of only
                       such classes are left out, listed and counted (`skipped_classes`,
                       `skipped_class_anchors`); the set's other classes are scored.
  shape_bias           tfds geirhos_conflict_stimuli or the texture-vs-shape release's
                       stimuli/style-transfer-preprocessed-512/<shape>/<shape>N-<texture>M.png;
                       mean softmax probability of each of the 16 categories' ImageNet classes,
                       shape fraction over the images whose shape and texture differ.
"""

import dataclasses
import json
import os
import re
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from keras_vivi.evaluation.robustness import metrics as robustness
from keras_vivi.evaluation.vtab import tasks as vtab_tasks

NUM_CLASSES = 1000

# ImageNet-A's 200 classes as ImageNet indices (Hendrycks et al., "Natural adversarial
# examples", 2021; the list of google-research/robustness_metrics `datasets/tfds.py`).
IMAGENET_A_CLASSES = (
    6, 11, 13, 15, 17, 22, 23, 27, 30, 37, 39, 42, 47, 50, 57, 70, 71, 76, 79, 89, 90, 94, 96,
    97, 99, 105, 107, 108, 110, 113, 124, 125, 130, 132, 143, 144, 150, 151, 207, 234, 235, 254,
    277, 283, 287, 291, 295, 298, 301, 306, 307, 308, 309, 310, 311, 313, 314, 315, 317, 319,
    323, 324, 326, 327, 330, 334, 335, 336, 347, 361, 363, 372, 378, 386, 397, 400, 401, 402,
    404, 407, 411, 416, 417, 420, 425, 428, 430, 437, 438, 445, 456, 457, 461, 462, 470, 472,
    483, 486, 488, 492, 496, 514, 516, 528, 530, 539, 542, 543, 549, 552, 557, 561, 562, 569,
    572, 573, 575, 579, 589, 606, 607, 609, 614, 626, 627, 640, 641, 642, 643, 658, 668, 677,
    682, 684, 687, 701, 704, 719, 736, 746, 749, 752, 758, 763, 765, 768, 773, 774, 776, 779,
    780, 786, 792, 797, 802, 803, 804, 813, 815, 820, 823, 831, 833, 835, 839, 845, 847, 850,
    859, 862, 870, 879, 880, 888, 890, 897, 900, 907, 913, 924, 932, 933, 934, 937, 943, 945,
    947, 951, 954, 956, 957, 959, 971, 972, 980, 981, 984, 986, 987, 988)

# The 15 corruptions of the ImageNet-C benchmark (Hendrycks & Dietterich 2019); tfds also
# serves the 4 held-out ones (gaussian_blur, saturate, spatter, speckle_noise), not in the mean.
IMAGENET_C_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform",
    "pixelate", "jpeg_compression")
SEVERITIES = (1, 2, 3, 4, 5)

# The 16 cue-conflict categories and their ImageNet indices (Geirhos et al. ICLR 2019,
# 16-class-ImageNet; `helper/human_categories.py` of rgeirhos/texture-vs-shape). Alphabetical,
# as tfds's geirhos_conflict_stimuli numbers them.
CUE_CONFLICT_CATEGORIES = {
    "airplane": (404,),
    "bear": (294, 295, 296, 297),
    "bicycle": (444, 671),
    "bird": (8, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22, 23, 24, 80, 81, 82, 83, 87, 88, 89,
             90, 91, 92, 93, 94, 95, 96, 98, 99, 100, 127, 128, 129, 130, 131, 132, 133, 135,
             136, 137, 138, 139, 140, 141, 142, 143, 144, 145),
    "boat": (472, 554, 625, 814, 914),
    "bottle": (440, 720, 737, 898, 899, 901, 907),
    "car": (436, 511, 817),
    "cat": (281, 282, 283, 284, 285, 286),
    "chair": (423, 559, 765, 857),
    "clock": (409, 530, 892),
    # 109 breeds: 152..268 but 192, 204, 227, 242, 251, 258, 260 and 264.
    "dog": tuple(sorted(set(range(152, 269)) - {192, 204, 227, 242, 251, 258, 260, 264})),
    "elephant": (385, 386),
    "keyboard": (508, 878),
    "knife": (499,),
    "oven": (766,),
    "truck": (555, 569, 656, 675, 717, 734, 864, 867),
}
CATEGORIES = tuple(CUE_CONFLICT_CATEGORIES)

OBJECTNET_BORDER = 2  # pixels cut from every side: the release's images carry a 1-pixel frame


class DatasetMissing(RuntimeError):
  """A dataset is neither prepared in tfds nor in the given folder; the message says how to get
  it."""


def imagenet_wnids():
  """The 1000 ImageNet wnids in class-index order (sorted; tfds's imagenet2012 label file)."""
  # pylint: disable-next=g-import-not-at-top
  from tensorflow_datasets.datasets.imagenet2012 import imagenet_common
  with tf.io.gfile.GFile(imagenet_common.label_names_file()) as f:
    wnids = f.read().split()
  if len(wnids) != NUM_CLASSES:
    raise ValueError(f"tfds's ImageNet label file lists {len(wnids)} wnids, not 1000.")
  return wnids


@dataclasses.dataclass(frozen=True)
class Part:
  """One evaluated unit of a dataset (ImageNet-C has 75, the others one).

  Attributes:
    name: the part's name ('' for a single-part dataset, e.g. 'fog_3' for ImageNet-C).
    dataset: unbatched tf.data of `(uint8 image [H, W, 3], int64 target)`.
    count: number of examples (None when unknown).
    source: where it was read from (tfds name and split, or a folder).
    decide: `(logits [B, 1000] np.float32, targets [B] np.int64) → [B]` per-example values.
    summarize: `(values [N], targets [N]) → {metric: number}`.
    border: pixels cut from every side before the centre crop.
  """
  name: str
  dataset: tf.data.Dataset
  count: Optional[int]
  source: str
  decide: Callable
  summarize: Callable
  border: int = 0


def _top1(logits, targets):
  return np.asarray(logits).argmax(axis=1) == targets


def _restricted_top1(logits, targets):
  return robustness.restricted_argmax(logits, IMAGENET_A_CLASSES) == targets


def accuracy_summary(correct, targets):
  del targets
  correct = np.asarray(correct, bool)
  return {"accuracy": float(correct.mean()) if correct.size else float("nan"),
          "correct": int(correct.sum()), "examples": int(correct.size)}


def _tfds_part(name, split, data_dir, decide, how, part_name="", mapper=None):
  """A tfds split as a Part, or DatasetMissing."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  builder = tfds.builder(name, data_dir=data_dir)
  try:
    data = builder.as_dataset(split=split, shuffle_files=False)
  except AssertionError as error:  # tfds's "could not find data in ..."
    where = data_dir or "the default tfds data_dir"
    raise DatasetMissing(f"tfds {name!r} is not prepared in {where}: {how}") from error
  mapper = mapper or (lambda x: (x["image"], tf.cast(x["label"], tf.int64)))
  splits = builder.info.splits
  count = splits[split].num_examples if split in splits else None
  return Part(part_name, data.map(mapper, num_parallel_calls=tf.data.AUTOTUNE), count or None,
              f"tfds {name}:{builder.version} {split}", decide, accuracy_summary)


def _files_part(paths, targets, source, decide, summarize=accuracy_summary, part_name="",
                border=0):
  """Image files as a Part; unreadable files are skipped (logged by tf.data; the runner counts
  them as `count` − examples seen)."""
  def decode(path, target):
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False), target
  data = tf.data.Dataset.from_tensor_slices((tf.constant(list(paths), tf.string),
                                             np.asarray(targets, np.int64)))
  data = data.map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors(log_warning=True)
  return Part(part_name, data, len(paths), source, decide, summarize, border)


def _images_in(folder):
  return sorted(f for f in tf.io.gfile.listdir(folder)
                if f.lower().endswith(vtab_tasks.IMAGE_EXTENSIONS))


def _class_folders(root, label_of, decide, source_name, part_name=""):
  """ROOT/<class>/*.img with `label_of(class folder)` (None: skipped) as a Part."""
  if not tf.io.gfile.isdir(root):
    raise DatasetMissing(f"{source_name}: no folder {root}.")
  paths, targets = [], []
  for name in sorted(d.rstrip("/") for d in tf.io.gfile.listdir(root)):
    folder = os.path.join(root, name)
    label = label_of(name)
    if label is None or not tf.io.gfile.isdir(folder):
      continue
    files = _images_in(folder)
    paths += [os.path.join(folder, f) for f in files]
    targets += [label] * len(files)
  if not paths:
    raise DatasetMissing(f"{source_name}: no images in class folders under {root}.")
  return _files_part(paths, targets, root, decide, part_name=part_name)


def _wnid_label(wnids):
  index = {w: i for i, w in enumerate(wnids)}
  return index.get


def _need_folder(folder, what, how):
  if not folder:
    raise DatasetMissing(f"{what}: {how}")
  if not tf.io.gfile.isdir(folder):
    raise DatasetMissing(f"{what}: no folder {folder!r}. {how}")
  return folder


def _read_json(path, what):
  if not tf.io.gfile.exists(path):
    raise DatasetMissing(f"{what}: missing {path}.")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


# The datasets.

def _imagenet(data_dir, folder):
  del folder
  how = ("download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from image-net.org into "
         "<data_dir>/downloads/manual, then `tfds build imagenet2012`.")
  return [_tfds_part("imagenet2012", "validation", data_dir, _top1, how)]


def _imagenet_a(data_dir, folder):
  how = ("`tfds build imagenet_a`, or download imagenet-a.tar "
         "(github.com/hendrycks/natural-adv-examples) and pass its imagenet-a folder.")
  if folder:
    root = _need_folder(folder, "ImageNet-A", how)
    return [_class_folders(root, _wnid_label(imagenet_wnids()), _restricted_top1, "ImageNet-A")]
  return [_tfds_part("imagenet_a", "test", data_dir, _restricted_top1, how)]


@dataclasses.dataclass(frozen=True)
class _LazyPart:
  """A part opened only when it is evaluated (ImageNet-C's 75 builders)."""
  name: str
  open: Callable


def _imagenet_c(data_dir, folder):
  how = ("`tfds build imagenet2012_corrupted/<corruption>_<severity>` (needs imagenet2012's "
         "manual download), or download the ImageNet-C tarballs (github.com/hendrycks/robustness) "
         "and pass the folder holding <corruption>/<severity>/<wnid>/.")
  names = [f"{c}_{s}" for c in IMAGENET_C_CORRUPTIONS for s in SEVERITIES]
  if folder:
    root = _need_folder(folder, "ImageNet-C", how)
    label = _wnid_label(imagenet_wnids())
    return [_LazyPart(f"{c}_{s}", lambda c=c, s=s: _class_folders(
        os.path.join(root, c, str(s)), label, _top1, "ImageNet-C", f"{c}_{s}"))
            for c in IMAGENET_C_CORRUPTIONS for s in SEVERITIES]
  return [_LazyPart(n, lambda n=n: _tfds_part(f"imagenet2012_corrupted/{n}", "validation",
                                              data_dir, _top1, how, part_name=n))
          for n in names]


def _imagenet_v2(data_dir, folder):
  how = ("`tfds build imagenet_v2/matched-frequency`, or download "
         "imagenetv2-matched-frequency.tar.gz (github.com/modestyachts/ImageNetV2) and pass its "
         "imagenetv2-matched-frequency-format-val folder.")
  if folder:
    root = _need_folder(folder, "ImageNet-V2", how)
    label = lambda name: int(name) if name.isdigit() and int(name) < NUM_CLASSES else None
    return [_class_folders(root, label, _top1, "ImageNet-V2")]
  return [_tfds_part("imagenet_v2/matched-frequency", "test", data_dir, _top1, how)]


def objectnet_classes(root):
  """ObjectNet's ImageNet-overlapping classes from the mappings shipped with it.

  Reads `ROOT/mappings/folder_to_objectnet_label.json` ({folder: ObjectNet label}),
  `objectnet_to_imagenet_1k.json` ({ObjectNet label: 'ImageNet name; ImageNet name'}),
  `imagenet_to_label_2012_v2` (line i: the name of ImageNet 2012 id i) and
  `pytorch_to_imagenet_2012_id.json` ({class index: ImageNet 2012 id}).

  Returns:
    `(folders [K] sorted, maps_to [1000, K] bool)`: the image folders of the K overlapping
    classes, and which ObjectNet classes each ImageNet class stands for (many ImageNet classes
    can map to one ObjectNet class).
  """
  mappings = os.path.join(root, "mappings")
  what = "ObjectNet mappings"
  folder_to_label = _read_json(os.path.join(mappings, "folder_to_objectnet_label.json"), what)
  to_imagenet = _read_json(os.path.join(mappings, "objectnet_to_imagenet_1k.json"), what)
  to_2012 = _read_json(os.path.join(mappings, "pytorch_to_imagenet_2012_id.json"), what)
  names_path = os.path.join(mappings, "imagenet_to_label_2012_v2")
  if not tf.io.gfile.exists(names_path):
    raise DatasetMissing(f"{what}: missing {names_path}.")
  with tf.io.gfile.GFile(names_path) as f:
    names = [line.strip() for line in f if line.strip()]
  index_of_2012 = {int(v): int(k) for k, v in to_2012.items()}
  index_of_name = {name: index_of_2012[i] for i, name in enumerate(names) if i in index_of_2012}
  label_to_folder = {label: folder for folder, label in folder_to_label.items()}
  folders = sorted(label_to_folder[label] for label in to_imagenet if label in label_to_folder)
  position = {f: i for i, f in enumerate(folders)}
  maps_to = np.zeros([NUM_CLASSES, len(folders)], bool)
  for label, imagenet_names in to_imagenet.items():
    if label not in label_to_folder:
      continue
    for name in (n.strip() for n in imagenet_names.split(";")):
      if name not in index_of_name:
        raise ValueError(f"ObjectNet class {label!r} maps to {name!r}, which is not a line of "
                         f"{names_path}.")
      maps_to[index_of_name[name], position[label_to_folder[label]]] = True
  return folders, maps_to


def _objectnet(data_dir, folder):
  del data_dir
  how = ("not in tfds: download objectnet-1.0.zip from objectnet.dev (free "
         "registration; the licence forbids training on it) and pass its objectnet-1.0 folder.")
  root = _need_folder(folder, "ObjectNet", how)
  folders, maps_to = objectnet_classes(root)
  paths, targets = [], []
  for i, name in enumerate(folders):
    directory = os.path.join(root, "images", name)
    if tf.io.gfile.isdir(directory):
      files = _images_in(directory)
      paths += [os.path.join(directory, f) for f in files]
      targets += [i] * len(files)
  if not paths:
    raise DatasetMissing(f"ObjectNet: no images under {root}/images/<folder>/. {how}")

  def decide(logits, targets):
    return maps_to[np.asarray(logits).argmax(axis=1), targets]

  return [_files_part(paths, targets, root, decide, border=OBJECTNET_BORDER)]


def video_classes(root):
  """A video robustness set's classes as groups of ImageNet indices, from its misc/ files.

  Returns:
    `(groups, unmapped)`: G tuples of ImageNet class indices, group g holding the ImageNet
    classes of set class g (`misc/*class_index.json` {g: [wnid, name]} and
    `misc/rev_wnid_map.json` {wnid: [ImageNet wnids]}), empty for a set class with none; and
    `{g: "wnid name"}` of those set classes.
  """
  misc = os.path.join(root, "misc")
  candidates = [f for f in (tf.io.gfile.listdir(misc) if tf.io.gfile.isdir(misc) else [])
                if f.endswith("class_index.json") and f != "imagenet_class_index.json"]
  if len(candidates) != 1:
    raise DatasetMissing(f"{root}: expected one misc/<set>_class_index.json besides "
                         f"imagenet_class_index.json, found {sorted(candidates)}.")
  class_index = _read_json(os.path.join(misc, candidates[0]), root)
  rev_map = _read_json(os.path.join(misc, "rev_wnid_map.json"), root)
  imagenet = {w: i for i, w in enumerate(imagenet_wnids())}
  groups, unmapped = [], {}
  for g in range(len(class_index)):
    wnid = class_index[str(g)][0]
    members = rev_map.get(wnid) or []
    if not members:
      unmapped[g] = " ".join(str(v) for v in class_index[str(g)])
    groups.append(tuple(sorted(imagenet[w] for w in members)))
  return groups, unmapped


def _video(title):
  how = ("not in tfds: download imagenet_vid_ytbb_robust.tar.gz, released with Shankar et al., "
         "'Do image classifiers generalize across time?' (ICCV 2021), and pass its "
         "imagenet-vid-robust or ytbb-robust folder.")

  def parts(data_dir, folder):
    del data_dir
    root = _need_folder(folder, title, how)
    pmsets = _read_json(os.path.join(root, "metadata", "pmsets.json"), title)
    labels = _read_json(os.path.join(root, "metadata", "labels.json"), title)
    groups, unmapped = video_classes(root)
    frames = sorted({key for anchor, ns in pmsets.items() for key in [anchor, *ns]})
    unlabelled = [f for f in frames if f not in labels]
    if unlabelled:
      raise ValueError(f"{title}: {len(unlabelled)} frame(s) of pmsets.json have no labels in "
                       f"labels.json, e.g. {unlabelled[:3]}.")
    # A set class without ImageNet classes can never be predicted: a pm-set with a frame of
    # only such classes cannot be judged, so it is left out and counted.
    scored = [g for g, members in enumerate(groups) if members]
    column = {g: i for i, g in enumerate(scored)}
    judged = {a: ns for a, ns in pmsets.items()
              if all(any(c in column for c in labels[f]) for f in [a, *ns])}
    if not judged:
      raise DatasetMissing(f"{title}: no pm-set has a class with ImageNet classes (set classes "
                           f"without any: {unmapped}).")
    frames = sorted({key for anchor, ns in judged.items() for key in [anchor, *ns]})
    accepted = np.zeros([len(frames), len(scored)], bool)
    for i, key in enumerate(frames):
      accepted[i, [column[c] for c in labels[key] if c in column]] = True

    def decide(logits, targets):
      _, predicted = robustness.grouped_argmax(logits, [groups[g] for g in scored], reduce="max")
      return accepted[targets, predicted]

    def summarize(correct, targets):
      by_frame = dict(zip((frames[t] for t in targets), np.asarray(correct, bool)))
      # A pm-set with an unreadable frame cannot be judged: left out and counted.
      whole = {a: ns for a, ns in judged.items() if all(f in by_frame for f in [a, *ns])}
      if not whole:
        raise DatasetMissing(f"{title}: no pm-set has all its frames readable.")
      return {**robustness.pmset_robustness(by_frame, whole).as_dict(),
              "skipped_anchors": len(judged) - len(whole),
              "skipped_classes": {str(g): name for g, name in unmapped.items()},
              "skipped_class_anchors": len(pmsets) - len(judged)}

    paths = [os.path.join(root, key) for key in frames]
    return [_files_part(paths, range(len(frames)), root, decide, summarize)]

  return parts


def _shape_decide(logits, targets):
  del targets
  logits = np.asarray(logits, np.float64)
  probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
  probabilities /= probabilities.sum(axis=1, keepdims=True)
  return robustness.grouped_argmax(probabilities, CUE_CONFLICT_CATEGORIES.values())[1]


def _shape_summary(decisions, targets):
  targets = np.asarray(targets)
  result = robustness.shape_bias(decisions, targets // len(CATEGORIES),
                                 targets % len(CATEGORIES))
  # JSON has no NaN (no shape or texture decision at all).
  return {k: None if isinstance(v, float) and np.isnan(v) else v
          for k, v in dataclasses.asdict(result).items()}


_TEXTURE = re.compile(r"^[a-z]+\d*-([a-z]+)\d*\.", re.I)


def _shape_bias(data_dir, folder):
  how = ("`tfds build geirhos_conflict_stimuli`, or clone github.com/rgeirhos/texture-vs-shape "
         "and pass stimuli/style-transfer-preprocessed-512.")
  n = len(CATEGORIES)
  if folder:
    root = _need_folder(folder, "cue-conflict stimuli", how)
    paths, targets = [], []
    for shape in CATEGORIES:
      directory = os.path.join(root, shape)
      if not tf.io.gfile.isdir(directory):
        continue
      for f in _images_in(directory):
        match = _TEXTURE.match(f)
        if not match or match.group(1).lower() not in CATEGORIES:
          raise ValueError(f"Cue-conflict image {directory}/{f}: expected a name "
                           "<shape><n>-<texture><m>.png with a texture among the 16 categories.")
        paths.append(os.path.join(directory, f))
        targets.append(CATEGORIES.index(shape) * n + CATEGORIES.index(match.group(1).lower()))
    if not paths:
      raise DatasetMissing(f"Cue-conflict stimuli: no <category>/ image folders under {root}.")
    return [_files_part(paths, targets, root, _shape_decide, _shape_summary)]
  part = _tfds_part("geirhos_conflict_stimuli", "test", data_dir, _shape_decide, how,
                    mapper=lambda x: (x["image"], x["shape_label"] * n + x["texture_label"]))
  return [dataclasses.replace(part, summarize=_shape_summary)]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """One column group of Table 5 (or the shape-bias result).

  Attributes:
    name: the `--datasets` name.
    title: the column heading of Table 5.
    folder: the release's folder name under `--data_root` (read instead of tfds when present).
    parts: `(data_dir, folder or None) → [Part or _LazyPart]`; raises DatasetMissing.
    metrics: the metric keys Table 5 shows, in order.
  """
  name: str
  title: str
  folder: str
  parts: Callable
  metrics: tuple = ("accuracy",)


DATASETS = (
    DatasetSpec("imagenet", "ImageNet", "", _imagenet),
    DatasetSpec("imagenet_a", "ImageNet-A", "imagenet-a", _imagenet_a),
    DatasetSpec("imagenet_c", "ImageNet-C", "imagenet-c", _imagenet_c),
    DatasetSpec("imagenet_v2", "ImageNet-V2", "imagenetv2-matched-frequency-format-val",
                _imagenet_v2),
    DatasetSpec("objectnet", "ObjectNet", "objectnet-1.0", _objectnet),
    DatasetSpec("imagenet_vid_robust", "ImageNet-Vid", "imagenet_vid_ytbb_robust/"
                "imagenet-vid-robust", _video("ImageNet-Vid-Robust"),
                ("anchor_accuracy", "pmk_accuracy", "delta")),
    DatasetSpec("ytbb_robust", "YT-BB", "imagenet_vid_ytbb_robust/ytbb-robust",
                _video("YT-BB-Robust"), ("anchor_accuracy", "pmk_accuracy", "delta")),
    DatasetSpec("shape_bias", "Shape fraction", "texture-vs-shape/stimuli/"
                "style-transfer-preprocessed-512", _shape_bias, ("shape_bias",)),
)
_BY_NAME = {d.name: d for d in DATASETS}


def list_datasets():
  return [d.name for d in DATASETS]


def get_dataset(name):
  if name not in _BY_NAME:
    raise ValueError(f"Unknown robustness dataset {name!r}; expected one of {list_datasets()}.")
  return _BY_NAME[name]


def resolve_datasets(spec):
  """'all' → every dataset; otherwise a comma-separated list of names."""
  if spec == "all":
    return list_datasets()
  names = [n.strip() for n in spec.split(",") if n.strip()]
  if not names:
    raise ValueError(f"No dataset in {spec!r}; expected 'all' or NAME,NAME of "
                     f"{list_datasets()}.")
  for name in names:
    get_dataset(name)
  return names


def locate(spec, data_root=None, folders=None):
  """The folder to read `spec` from: `folders[name]`, else DATA_ROOT/<release folder> when it
  exists, else None (tfds)."""
  folders = folders or {}
  if spec.name in folders:
    return folders[spec.name]
  if data_root and spec.folder:
    candidate = os.path.join(data_root, spec.folder)
    if tf.io.gfile.isdir(candidate):
      return candidate
  return None
