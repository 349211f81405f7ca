"""Robustness of fine-tuned classifiers (the paper's Table 5 and shape-bias results).

  video_robustness(per_video_predictions, labels, k=10)   # ImageNet-Vid / YT-BB anchor vs pm-k
  pmset_robustness(correct_by_frame, pmsets)              # the same on the released pm-sets
  shape_bias(predicted, shape_labels, texture_labels)     # Geirhos et al.'s cue-conflict set
  restricted_argmax(logits, classes)                      # ImageNet-A's 200-class masking
  grouped_argmax(scores, groups, reduce="mean")           # 1000 → 16 (shape bias), → 30 (VID)
  evaluate_shifts(classifier, {"ImageNet-A": "imagenet_a", "noisy": "/data/noisy"}, 64,
                  output_dir="shifts/")                    # accuracy on shifted test sets

The classifier comes from `keras_vivi.evaluation.vtab.finetune` (`build_classifier` + `finetune` on
the source task, e.g. ImageNet): a tf_keras model of images `[B, S, S, 3]` in [0, 1] → logits.
The paper's whole study (every dataset with its protocol, the ImageNet classifier, result
files, Table 5) is `robustness.suite` and `vivi-robustness`, built on these metrics.
"""

import dataclasses
import os

import numpy as np

from keras_vivi import files
from keras_vivi.evaluation import outputs

# Shifted sets that tfds does not serve: `suite` (vivi-robustness) reads their
# releases with their own protocols.
NOT_IN_TFDS = {
    "objectnet": "ObjectNet (objectnet.dev) is not in tfds: `vivi-robustness "
                 "--datasets=objectnet` reads its release with the many-to-one class mapping.",
    "imagenet_vid_robust": "ImageNet-Vid-Robust is a video set, not in tfds: `vivi-robustness "
                           "--datasets=imagenet_vid_robust` scores anchor and pm-k accuracy.",
    "ytbb_robust": "YT-BB-Robust is a video set, not in tfds: `vivi-robustness "
                   "--datasets=ytbb_robust` scores anchor and pm-k accuracy.",
}


def restricted_argmax(logits, classes):
  """Arg-max over a subset of the classes, as a class index of the full label space.

  ImageNet-A's protocol (Hendrycks et al.): only the logits of its 200 classes compete.

  Args:
    logits: `[N, C]` scores.
    classes: `[K]` distinct class indices in [0, C).

  Returns:
    `[N]` int64, each an element of `classes`.
  """
  logits, classes = np.asarray(logits), np.asarray(classes, np.int64)
  if logits.ndim != 2 or classes.ndim != 1 or not classes.size:
    raise ValueError(f"Need [N, C] logits and [K >= 1] classes, got shapes {logits.shape} and "
                     f"{classes.shape}.")
  if classes.min() < 0 or classes.max() >= logits.shape[1]:
    raise ValueError(f"classes must lie in [0, {logits.shape[1]}), got range "
                     f"[{classes.min()}, {classes.max()}].")
  return classes[logits[:, classes].argmax(axis=1)]


def grouped_argmax(scores, groups, reduce="mean"):
  """Scores of groups of classes (each group reduced over its members), and their arg-max.

  Geirhos et al. decide among the 16 cue-conflict categories by the mean ImageNet probability
  of each category's classes (`reduce="mean"` on softmax probabilities); Shankar et al. score
  the 30 ImageNet-Vid classes by the maximum logit of their ImageNet classes (`"max"`). Classes
  in no group do not count.

  Args:
    scores: `[N, C]` probabilities or logits.
    groups: G sequences of class indices in [0, C).
    reduce: 'mean' or 'max'.

  Returns:
    `(group_scores [N, G], decision [N] int64 group index)`.
  """
  scores = np.asarray(scores)
  if scores.ndim != 2:
    raise ValueError(f"scores must be [N, C], got shape {scores.shape}.")
  if reduce not in ("mean", "max"):
    raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}.")
  groups = [np.asarray(g, np.int64) for g in groups]
  if not groups or any(g.ndim != 1 or not g.size or g.min() < 0 or g.max() >= scores.shape[1]
                       for g in groups):
    raise ValueError(f"groups must be non-empty lists of class indices in [0, {scores.shape[1]}).")
  op = np.mean if reduce == "mean" else np.max
  grouped = np.stack([op(scores[:, g], axis=1) for g in groups], axis=1)
  return grouped, grouped.argmax(axis=1).astype(np.int64)


def pmset_robustness(correct, pmsets):
  """Anchor and pm-k accuracy on released pm-sets (ImageNet-Vid-Robust / YT-BB-Robust format).

  An anchor counts under pm-k only if it and every frame of its pm-set (the up to 2k reviewed
  neighbours within ±k frames) are correct, as the sets' published evaluation scores them.

  Args:
    correct: mapping frame key → bool (the frame's prediction is among its labels).
    pmsets: mapping anchor key → sequence of neighbour keys.

  Returns:
    A `VideoRobustness` (its `k` is the largest pm-set size).
  """
  if not pmsets:
    raise ValueError("pmsets is empty: expected {anchor: [neighbour frames]}.")
  missing = [key for anchor, ns in pmsets.items() for key in [anchor, *ns] if key not in correct]
  if missing:
    raise ValueError(f"{len(missing)} frame(s) of the pm-sets have no prediction, e.g. "
                     f"{missing[:3]}.")
  # Each pm-set as a clip [anchor, neighbours...] of 1 = correct, scored with its anchor at 0.
  clips = [np.array([correct[a]] + [correct[n] for n in ns], np.int64) for a, ns in pmsets.items()]
  k = max(c.size for c in clips) - 1
  return video_robustness(clips, [1] * len(clips), k=k, anchors=[0] * len(clips))


def _predicted_labels(frames, video):
  frames = np.asarray(frames)
  if frames.ndim == 2:  # per-frame scores or logits
    frames = frames.argmax(axis=-1)
  if frames.ndim != 1 or frames.size == 0:
    raise ValueError(f"Video {video}: predictions must be [T] labels or [T, C] scores with "
                     f"T >= 1, got shape {frames.shape}.")
  return frames


@dataclasses.dataclass(frozen=True)
class VideoRobustness:
  """Anchor and worst-case-over-neighbours accuracy of a video robustness set.

  Attributes:
    anchor_accuracy: fraction of anchor frames classified correctly.
    pmk_accuracy: fraction of anchors whose whole window (anchor ± k frames) is correct.
    delta: `anchor_accuracy - pmk_accuracy` (Table 5's Δ; lower is more robust).
    k: the window half-width.
    num_anchors: number of anchors scored.
    anchor_correct, pmk_correct: `[num_anchors]` bool, per anchor (e.g. for bootstrapping).
  """
  anchor_accuracy: float
  pmk_accuracy: float
  delta: float
  k: int
  num_anchors: int
  anchor_correct: np.ndarray = dataclasses.field(repr=False, compare=False)
  pmk_correct: np.ndarray = dataclasses.field(repr=False, compare=False)

  def as_dict(self):
    return dict(anchor_accuracy=self.anchor_accuracy, pmk_accuracy=self.pmk_accuracy,
                delta=self.delta, k=self.k, num_anchors=self.num_anchors)


def video_robustness(predictions, labels, k=10, anchors=None):
  """ImageNet-Vid-Robust / YT-BB-Robust scores: anchor accuracy, pm-k accuracy and their Δ.

  Following the paper (after Shankar et al., "Do image classifiers generalize across time?"),
  an anchor counts as correct under pm-k only if every frame of its window, the anchor and the
  `k` preceding and `k` following frames, is classified correctly. Windows are clipped at the
  ends of a video: frames that do not exist cannot be misclassified, and the published sets'
  neighbourhoods are likewise cut at video boundaries. So pm-k accuracy <= anchor accuracy.

  Input layout: one entry per video (a clip around its anchor, in temporal order), holding
  every frame's prediction; `labels[v]` is the class of video v's anchor, or a collection of
  acceptable classes (ImageNet-Vid-Robust anchors can carry several). Anchors with different
  labels in one long video are given as separate entries sharing the same predictions.

  Args:
    predictions: sequence of V arrays, each `[T_v]` int predicted classes or `[T_v, C]` scores
      (arg-maxed).
    labels: `[V]` int classes, or V collections of ints.
    k: window half-width in frames (the paper: 10).
    anchors: optional `[V]` anchor frame index per video, each an int or a sequence of ints
      (several anchors); default: the middle frame `(T_v - 1) // 2`, which is the anchor of an
      unclipped clip of 2k + 1 frames.

  Returns:
    A `VideoRobustness`.
  """
  predictions = list(predictions)
  labels = list(labels)
  if len(predictions) != len(labels) or not predictions:
    raise ValueError(f"Need one label per video and at least one video, got {len(predictions)} "
                     f"prediction arrays and {len(labels)} labels.")
  if int(k) != k or k < 0:
    raise ValueError(f"k must be a non-negative integer, got {k!r}.")
  if anchors is not None and len(anchors) != len(predictions):
    raise ValueError(f"Need one anchor entry per video, got {len(anchors)} for "
                     f"{len(predictions)} videos.")
  k = int(k)
  anchor_correct, pmk_correct = [], []
  for v, (frames, label) in enumerate(zip(predictions, labels)):
    at_anchor, in_window = _video_windows(_predicted_labels(frames, v), label, k,
                                          None if anchors is None else anchors[v], v)
    anchor_correct.append(at_anchor)
    pmk_correct.append(in_window)
  anchor_correct = np.concatenate(anchor_correct)
  pmk_correct = np.concatenate(pmk_correct)
  anchor_accuracy, pmk_accuracy = float(anchor_correct.mean()), float(pmk_correct.mean())
  return VideoRobustness(anchor_accuracy=anchor_accuracy, pmk_accuracy=pmk_accuracy,
                         delta=anchor_accuracy - pmk_accuracy, k=k,
                         num_anchors=int(anchor_correct.size), anchor_correct=anchor_correct,
                         pmk_correct=pmk_correct)


def _video_windows(frames, label, k, given, v):
  """Per anchor of video `v`: is the anchor correct, is its whole ±k window correct."""
  accepted = np.atleast_1d(np.asarray(list(label) if isinstance(label, (set, frozenset))
                                      else label))
  correct = np.isin(frames, accepted)
  # errors_before[i] = misclassified frames among the first i, so any window's error count is
  # a difference of two entries.
  errors_before = np.concatenate([[0], np.cumsum(~correct)])
  given = (frames.size - 1) // 2 if given is None else given
  ids = np.atleast_1d(np.asarray(given))
  if ids.size == 0 or ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= frames.size:
    raise ValueError(f"Video {v}: anchors must be frame indices in [0, {frames.size}), got "
                     f"{given!r}.")
  lo, hi = np.maximum(ids - k, 0), np.minimum(ids + k + 1, frames.size)
  return correct[ids], errors_before[hi] - errors_before[lo] == 0


@dataclasses.dataclass(frozen=True)
class ShapeBias:
  """Shape vs texture decisions on a cue-conflict set.

  Attributes:
    shape_bias: `shape_decisions / (shape_decisions + texture_decisions)` (NaN without any).
    shape_decisions: predictions equal to the shape label.
    texture_decisions: predictions equal to the texture label.
    num_images: images scored (shape class ≠ texture class).
    excluded: images left out because their shape and texture classes coincide.
    shape_accuracy, texture_accuracy: decisions / `num_images`.
  """
  shape_bias: float
  shape_decisions: int
  texture_decisions: int
  num_images: int
  excluded: int
  shape_accuracy: float
  texture_accuracy: float


def shape_bias(predicted, shape_labels, texture_labels):
  """Geirhos et al. (ICLR 2019)'s shape bias, the paper's "shape fraction".

  Among the cue-conflict images whose shape and texture classes differ, the fraction of
  predictions matching the shape class out of those matching either the shape or the texture
  class; predictions matching neither do not count. Predictions must already be in the set's
  categories (e.g. the 16 coarse classes, mapped from ImageNet's 1000 by the caller).

  Args:
    predicted: `[N]` predicted categories (ints or strings).
    shape_labels: `[N]` shape category of each image.
    texture_labels: `[N]` texture category of each image.

  Returns:
    A `ShapeBias`.
  """
  predicted, shapes, textures = (np.asarray(x) for x in (predicted, shape_labels,
                                                          texture_labels))
  if not predicted.shape == shapes.shape == textures.shape or predicted.ndim != 1:
    raise ValueError("predicted, shape_labels and texture_labels must be [N] arrays of one "
                     f"length, got shapes {predicted.shape}, {shapes.shape}, {textures.shape}.")
  conflict = shapes != textures
  shape_hits = int(np.sum(conflict & (predicted == shapes)))
  texture_hits = int(np.sum(conflict & (predicted == textures)))
  n = int(conflict.sum())
  decisions = shape_hits + texture_hits
  return ShapeBias(shape_bias=shape_hits / decisions if decisions else float("nan"),
                   shape_decisions=shape_hits, texture_decisions=texture_hits, num_images=n,
                   excluded=int(predicted.size - n),
                   shape_accuracy=shape_hits / n if n else float("nan"),
                   texture_accuracy=texture_hits / n if n else float("nan"))


def _folder_dataset(path):
  """A class-folder directory as `(dataset of (image, label), count)`, or raises ValueError."""
  from keras_vivi.evaluation.vtab import tasks as vtab_tasks  # pylint: disable=g-import-not-at-top

  fs = files.filesystem()
  classes = sorted(d.rstrip("/") for d in fs.listdir(path) if fs.isdir(files.join(path, d.rstrip("/"))))
  if not classes:
    raise ValueError(f"{path} has no class folders: expected one sub-directory per class.")
  # Integer folder names are class indices of the classifier; other names are indexed in
  # sorted order (as tf_keras.utils.image_dataset_from_directory does).
  labels = [int(c) for c in classes] if all(c.isdigit() for c in classes) else None
  dataset, count = vtab_tasks.class_folder_dataset([path], classes, labels)
  if not count:
    raise ValueError(f"{path} has class folders but no "
                     f"{'/'.join(vtab_tasks.IMAGE_EXTENSIONS)} images.")
  return dataset, count


def _tfds_dataset(spec, data_dir):
  """A prepared tfds set as `(dataset of (image, label), count, split)`, or raises ValueError."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  name, _, split = spec.partition("@")
  if name.split("/")[0].split(":")[0] in NOT_IN_TFDS:
    raise ValueError(NOT_IN_TFDS[name.split("/")[0].split(":")[0]])
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # pylint: disable=broad-except  (tfds raises several types)
    raise ValueError(f"{spec!r} is neither a directory of class folders nor a tfds dataset "
                     f"({type(e).__name__}).") from e
  if not builder.is_prepared():
    how = f"prepare it with `tfds build {name}{' --data_dir=' + data_dir if data_dir else ''}`"
    manual = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    if manual:
      manual_dir = os.path.join(data_dir or "~/tensorflow_datasets", "downloads", "manual")
      how += f" after placing the manual download in {manual_dir}: " + " ".join(manual.split())
    raise ValueError(f"tfds data for {name!r} is not prepared in {builder.data_dir}: {how}.")
  splits = builder.info.splits
  if not split:
    split = "test" if "test" in splits else "validation"
  if split not in splits:
    raise ValueError(f"{name!r} has no split {split!r}; it has {sorted(splits)}.")
  dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
  return dataset, splits[split].num_examples, split


def _write_shifts(results, output_dir):
  lines = ["# Accuracy under distribution shift", "", "| test set | source | examples | accuracy |",
           "|---|---|---|---|"]
  for name, r in results["sets"].items():
    lines.append(f"| {name} | `{r['source']}`{' (' + r['split'] + ')' if r.get('split') else ''} "
                 f"| {r['examples']} | {100 * r['accuracy']:.2f} % |")
  if results["missing"]:
    lines += ["", "Not evaluated:", ""]
    lines += [f"- {name} (`{r['source']}`): {r['reason']}"
              for name, r in results["missing"].items()]
  outputs.write_report(output_dir, "shifts", results, "\n".join(lines) + "\n")

  from keras_vivi import plotting  # pylint: disable=g-import-not-at-top

  names = list(results["sets"])
  fig, ax = plotting.subplots(figsize=(max(3.5, 0.8 * len(names) + 1.5), 3.2))
  values = [100 * results["sets"][n]["accuracy"] for n in names]
  ax.bar(np.arange(len(names)), values, color="#1f77b4")
  for i, v in enumerate(values):
    ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
  ax.set_xticks(np.arange(len(names)))
  ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
  ax.set_ylabel("top-1 accuracy [%]")
  ax.set_ylim(0, 105)
  if results["missing"]:
    ax.set_title("missing: " + ", ".join(results["missing"]), fontsize=8)
  fig.tight_layout()
  return files.save_figure(fig, os.path.join(output_dir, "shifts.png"))


def _open_set(source, data_dir):
  """`(dataset, count, split)` of a folder or tfds source; ValueError when it is missing."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if tf.io.gfile.isdir(source):
    return (*_folder_dataset(source), None)
  return _tfds_dataset(source, data_dir)


def _count_correct(classifier, name, dataset, total, preprocess, batch_size, progress):
  """`(correct, seen)` of `classifier` over `dataset`, with a tqdm bar."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tqdm  # pylint: disable=g-import-not-at-top
  from keras_vivi.evaluation.vtab import finetune  # pylint: disable=g-import-not-at-top

  batches = (dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
             .prefetch(tf.data.AUTOTUNE))
  with tqdm.tqdm(total=total, desc=name, unit="img", disable=not progress) as bar:
    return finetune.count_correct(classifier, batches, on_batch=bar.update)


def evaluate_shifts(classifier, test_sets, batch_size=64, image_size=None, data_dir=None,
                    output_dir=None, progress=True):
  """Top-1 accuracy of a classifier on each shifted test set that is available.

  Images are resized to `image_size²` without keeping the aspect ratio and scaled to [0, 1],
  as in VTAB; labels must be in the classifier's label space (e.g. ImageNet's 1000 classes for
  `imagenet_a`, `imagenet_v2`, `imagenet2012_corrupted/...`, `imagenet_r`, `imagenet_sketch`).
  A set that is not available (tfds data not prepared, unknown name, empty directory) is
  reported under 'missing' with how to prepare it, and the others still run.

  Args:
    classifier: tf_keras model, images float32 `[B, S, S, 3]` in [0, 1] → `[B, C]` logits.
    test_sets: `{display name: source}` or a sequence of sources. A source is a directory of
      class folders (integer folder names are class indices; otherwise sorted folder order) or
      a tfds name, optionally `NAME@SPLIT` (default split: 'test', else 'validation').
    batch_size: evaluation batch size.
    image_size: input size; default: the classifier's input height.
    data_dir: tfds data directory (default: tfds's).
    output_dir: if given, writes `shifts.json`, `shifts.md` and `shifts.png` there.
    progress: tqdm bar per set.

  Returns:
    `{'sets': {name: {source, split, examples, correct, accuracy}},
      'missing': {name: {source, reason}}}`.
  """
  from keras_vivi.evaluation.vtab import run as vtab  # pylint: disable=g-import-not-at-top

  if not isinstance(test_sets, dict):
    test_sets = {str(source): str(source) for source in test_sets}
  if image_size is None:
    image_size = classifier.input_shape[1]
  if not image_size:
    raise ValueError(f"The classifier's input shape {classifier.input_shape} has no static size: "
                     "pass image_size.")

  def preprocess(image, label):
    return vtab.preprocess(image, label, image_size)

  results = {"sets": {}, "missing": {}}
  for name, source in test_sets.items():
    try:
      dataset, total, split = _open_set(source, data_dir)
    except ValueError as e:
      results["missing"][name] = {"source": source, "reason": str(e)}
      continue
    correct, seen = _count_correct(classifier, name, dataset, total, preprocess, batch_size,
                                   progress)
    if not seen:
      results["missing"][name] = {"source": source, "reason": "the set holds no examples"}
      continue
    results["sets"][name] = {"source": source, "split": split, "examples": seen,
                             "correct": correct, "accuracy": correct / seen}
  if output_dir:
    _write_shifts(results, output_dir)
  return results
