"""The robustness study end to end: one ImageNet classifier on every dataset (Table 5, §5.2).

  results = run_robustness("classifiers/ours", ["imagenet_a", "objectnet"], "robustness/ours",
                           data_root="data/robustness")

Datasets, their sources and protocols: `robustness.data`. Images are preprocessed as ImageNet
evaluations usually are (Djolonga et al.): shorter side resized to S / 0.875 (bilinear), central
S × S crop, [0, 1]; ObjectNet's frame is cut off first. OUTPUT receives, rewritten after every
finished dataset (and every ImageNet-C corruption × severity), so a re-run with the same OUTPUT
and classifier skips what is finished:
  results.json  {"kind": "robustness", "classifier", "config", "datasets": {name: {metrics,
                "source", ...}}, "missing": {name: how to get it}}
  results.csv   one row per dataset and metric;   results.md   the tables, ImageNet-C per
  corruption, and what is missing;   table5.md   the row of Table 5 (and the shape fraction);
  results.png   the same as bars.
Accuracies are fractions in [0, 1]; the markdown shows percentages.
"""

import csv
import dataclasses
import io
import os
from typing import Optional

import numpy as np
import tensorflow as tf
from tqdm import auto as tqdm

from keras_vivi import files
from keras_vivi.evaluation import outputs
from keras_vivi.evaluation.robustness import classifier as robustness_classifier
from keras_vivi.evaluation.robustness import data as data_lib

RESULTS_JSON = "results.json"
KIND = "robustness"
# Table 5's columns: (heading, dataset, metric).
TABLE5 = (
    ("ImageNet", "imagenet", "accuracy"), ("ImageNet-A", "imagenet_a", "accuracy"),
    ("ImageNet-C", "imagenet_c", "accuracy"), ("ImageNet-V2", "imagenet_v2", "accuracy"),
    ("ObjectNet", "objectnet", "accuracy"),
    ("ImageNet-Vid", "imagenet_vid_robust", "anchor_accuracy"),
    ("ImageNet-Vid-pm-k", "imagenet_vid_robust", "pmk_accuracy"),
    ("YT-BB", "ytbb_robust", "anchor_accuracy"), ("YT-BB-pm-k", "ytbb_robust", "pmk_accuracy"),
    ("Δ ImageNet-Vid ↓", "imagenet_vid_robust", "delta"), ("Δ YT-BB ↓", "ytbb_robust", "delta"),
    ("Shape fraction", "shape_bias", "shape_bias"))

# The paper's Table 5 (and §5.2's shape fractions), in Table 5's column order, percent.
PAPER_TABLE5 = {
    "VIVI, fine tuning": (62.6, 0.5, 6.8, 51.1, 16.2, 57.9, 36.5, 58.0, 39.9, 21.4, 18.1, 20.6),
    "Ours, fine tuning": (65.2, 0.6, 9.5, 53.4, 18.4, 61.7, 43.4, 60.8, 42.3, 18.3, 18.6, 24.0),
    "VIVI, cotraining": (73.1, 1.1, 24.3, 59.8, 20.9, 58.7, 41.7, 49.4, 35.4, 17.0, 14.0, 25.8),
    "Ours, cotraining": (73.3, 1.2, 24.4, 60.8, 21.0, 59.7, 44.0, 50.0, 37.6, 15.7, 12.4, 28.5),
}


@dataclasses.dataclass(frozen=True)
class RobustnessConfig:
  """How images are fed to the classifier.

  Attributes:
    image_size: the classifier's input size S (None: the classifier's own).
    crop_fraction: the central crop's share of the resized shorter side (0.875: 224 of 256).
    batch_size: evaluation batch (does not change results).
  """
  image_size: Optional[int] = None
  crop_fraction: float = 0.875
  batch_size: int = 64


def preprocess(image, image_size, crop_fraction=0.875, border=0):
  """uint8 `[H, W, 3]` → float32 `[S, S, 3]` in [0, 1]: `border` pixels cut from every side,
  shorter side resized to `round(S / crop_fraction)`, central S × S crop."""
  if border:
    image = image[border:-border, border:-border]
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  scale = round(image_size / crop_fraction) / tf.reduce_min(shape)
  size = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), image_size)
  image = tf.image.resize(image, size, antialias=True)
  top, left = (size[0] - image_size) // 2, (size[1] - image_size) // 2
  image = image[top:top + image_size, left:left + image_size]
  return tf.ensure_shape(tf.clip_by_value(image / 255.0, 0.0, 1.0), [image_size, image_size, 3])


def evaluate_part(logits_fn, part, config, image_size, progress=True):
  """`part.summarize` of `part.decide` over every example of `part`."""
  prep = lambda image, target: (preprocess(image, image_size, config.crop_fraction, part.border),
                                target)
  batches = (part.dataset.map(prep, num_parallel_calls=tf.data.AUTOTUNE)
             .batch(config.batch_size).prefetch(tf.data.AUTOTUNE))
  values, targets = [], []
  with tqdm.tqdm(total=part.count, desc=part.name or part.source[-40:], unit="img",
                 leave=False, disable=not progress) as bar:
    for images, target in batches:
      target = target.numpy()
      values.append(np.asarray(part.decide(np.asarray(logits_fn(images)), target)))
      targets.append(target)
      bar.update(target.size)
  if not targets:
    raise data_lib.DatasetMissing(f"{part.source} holds no readable examples.")
  seen = sum(t.size for t in targets)
  skipped = {"skipped": part.count - seen} if part.count and part.count > seen else {}
  return {**part.summarize(np.concatenate(values), np.concatenate(targets)), **skipped}


def corruption_summary(parts):
  """ImageNet-C: the mean accuracy over the evaluated corruption × severity parts and the mean
  per corruption (over its severities)."""
  per_corruption = {}
  for corruption in data_lib.IMAGENET_C_CORRUPTIONS:
    done = [parts[f"{corruption}_{s}"]["accuracy"] for s in data_lib.SEVERITIES
            if f"{corruption}_{s}" in parts]
    if done:
      per_corruption[corruption] = float(np.mean(done))
  accuracies = [p["accuracy"] for p in parts.values()]
  return {"accuracy": float(np.mean(accuracies)) if accuracies else None,
          "per_corruption": per_corruption, "parts": parts, "evaluated": len(parts),
          "expected": len(data_lib.IMAGENET_C_CORRUPTIONS) * len(data_lib.SEVERITIES)}


def _evaluate_dataset(name, logits_fn, image_size, config, data_dir, folder, previous, save,
                      progress):
  """The results entry of one dataset (raises DatasetMissing when none of it is available)."""
  spec = data_lib.get_dataset(name)
  parts = spec.parts(data_dir, folder)
  if name != "imagenet_c":
    part, = parts
    return {**evaluate_part(logits_fn, part, config, image_size, progress),
            "source": part.source}
  done = dict((previous or {}).get("parts", {}))
  missing = {}
  for lazy in tqdm.tqdm(parts, desc="ImageNet-C", leave=False, disable=not progress):
    if lazy.name in done:
      continue
    try:
      part = lazy.open()
    except data_lib.DatasetMissing as error:
      missing[lazy.name] = str(error)
      continue
    done[lazy.name] = {**evaluate_part(logits_fn, part, config, image_size, progress),
                       "source": part.source}
    save({**corruption_summary(done), "missing_parts": missing})  # after every part
  if not done:
    raise data_lib.DatasetMissing(next(iter(missing.values())))
  return {**corruption_summary(done), "missing_parts": missing}


def _complete(name, entry):
  return entry is not None and (name != "imagenet_c" or entry["evaluated"] == entry["expected"])


def _resume(output_dir, classifier, config):
  path = os.path.join(output_dir, RESULTS_JSON)
  fresh = {"kind": KIND, "classifier": classifier, "config": dataclasses.asdict(config),
           "datasets": {}, "missing": {}}
  if not tf.io.gfile.exists(path):
    return fresh
  previous = files.read_json(path, "vivi-robustness replaces it atomically, so it was damaged "
                             "afterwards. Move it away to evaluate every dataset again, or "
                             "choose another output directory.")
  files.check_same_settings(
      {key: previous.get(key) for key in ("kind", "classifier", "config")},
      {"kind": KIND, "classifier": classifier, "config": fresh["config"]}, path,
      "results of another classifier or config", "choose another output directory.")
  return {**fresh, "datasets": previous.get("datasets", {})}


def run_robustness(classifier, dataset_names, output_dir, config=RobustnessConfig(),
                   data_dir=None, data_root=None, folders=None, progress=True):
  """Evaluates a classifier on the robustness datasets, writing results after every dataset.

  Args:
    classifier: a directory written by `robustness_classifier` (a local one recorded by its
      absolute path), or a `robustness_classifier.Classifier` (recorded by its info's
      'source').
    dataset_names: names of `data.DATASETS` ('all': `resolve_datasets`).
    output_dir: where the result files go; what is finished there is skipped.
    config: `RobustnessConfig`.
    data_dir: tfds data directory.
    data_root: directory holding the releases' folders (`data.DATASETS[i].folder`),
      read instead of tfds when present.
    folders: `{dataset name: folder}` overriding `data_root`.
    progress: tqdm bars.

  Returns:
    The results.json content.
  """
  if isinstance(classifier, str):
    key = classifier if "://" in classifier else os.path.abspath(classifier)
    classifier = robustness_classifier.load_classifier(classifier)
  else:
    key = str(classifier.info.get("source"))
  image_size = config.image_size or classifier.image_size
  results = _resume(output_dir, key, config)
  for name in tqdm.tqdm(dataset_names, desc="robustness datasets", disable=not progress):
    previous = results["datasets"].get(name)
    if _complete(name, previous):
      continue
    spec = data_lib.get_dataset(name)
    folder = data_lib.locate(spec, data_root, folders)

    def save(entry, name=name):
      results["datasets"][name] = entry
      write_results(results, output_dir)

    try:
      entry = _evaluate_dataset(name, classifier.logits, image_size, config, data_dir, folder,
                                previous, save, progress)
    except data_lib.DatasetMissing as missing:
      looked = os.path.join(data_root or "<data_root>", spec.folder)
      looked = f" (release folder looked for: {looked})" if spec.folder and not folder else ""
      results["missing"][name] = str(missing) + looked
    else:
      results["missing"].pop(name, None)
      if entry.get("missing_parts"):
        results["missing"][name] = (f"{len(entry['missing_parts'])} of {entry['expected']} "
                                    "parts missing, e.g. " +
                                    next(iter(entry["missing_parts"].values())))
      results["datasets"][name] = entry
    write_results(results, output_dir)
  write_results(results, output_dir)
  return results


def table5_cells(results):
  """`{heading: value or None}` of Table 5's columns (and the shape fraction)."""
  cells = {}
  for heading, name, metric in TABLE5:
    entry = results["datasets"].get(name)
    cells[heading] = None if entry is None else entry.get(metric)
  return cells


def as_tasks(results):
  """The results as `vivi-compare` tasks: `{dataset[/metric]: {group, test_accuracy}}` for every
  accuracy-like cell of Table 5 (Δ is left out: lower is better there)."""
  return {heading: {"group": KIND, "test_accuracy": value}
          for heading, value in table5_cells(results).items()
          if value is not None and not heading.startswith("Δ")}


def _pct(value, incomplete=False):
  return "–" if value is None else f"{100 * value:.1f}" + ("*" if incomplete else "")


def _markdown(results):
  datasets, corrupted = results["datasets"], results["datasets"].get("imagenet_c")
  partial = corrupted is not None and not _complete("imagenet_c", corrupted)
  cells = table5_cells(results)
  lines = [f"# Robustness (Table 5): `{results['classifier']}`", "",
           "| model | " + " | ".join(cells) + " |", "|---|" + "---:|" * len(cells),
           "| **this run** | " + " | ".join(_pct(v, partial and h == "ImageNet-C")
                                          for h, v in cells.items()) + " |"]
  lines += [f"| paper: {row} | " + " | ".join(f"{v:.1f}" for v in values) + " |"
            for row, values in PAPER_TABLE5.items()]
  lines.append("")
  if partial:
    lines += [f"\\* ImageNet-C: mean over {corrupted['evaluated']} of {corrupted['expected']} "
              "corruption × severity parts.", ""]
  table5 = "\n".join(lines)
  lines += ["## Per dataset", "", "| dataset | metric | value (%) | examples | source |",
            "|---|---|---:|---:|---|"]
  for spec in data_lib.DATASETS:
    entry = datasets.get(spec.name)
    if entry is None:
      continue
    examples = entry.get("examples", entry.get("num_anchors", entry.get("num_images", "")))
    if entry.get("skipped"):
      examples = f"{examples} ({entry['skipped']} unreadable files skipped)"
    for metric in spec.metrics:
      lines.append(f"| {spec.title} | {metric} | {_pct(entry.get(metric))} | {examples} | "
                   f"`{entry.get('source', 'tfds/folders')}` |")
  for spec in data_lib.DATASETS:
    skipped = (datasets.get(spec.name) or {}).get("skipped_classes")
    if skipped:
      lines += ["", f"{spec.title}: {len(skipped)} set class(es) without ImageNet classes "
                f"skipped ({'; '.join(skipped.values())}): "
                f"{datasets[spec.name]['skipped_class_anchors']} pm-set(s) left out."]
  if corrupted:
    lines += ["", "## ImageNet-C per corruption (mean over severities)", "",
              "| corruption | " + " | ".join(f"severity {s}" for s in data_lib.SEVERITIES)
              + " | mean |", "|---|" + "---:|" * (len(data_lib.SEVERITIES) + 1)]
    for corruption in data_lib.IMAGENET_C_CORRUPTIONS:
      row = [corrupted["parts"].get(f"{corruption}_{s}", {}).get("accuracy")
             for s in data_lib.SEVERITIES]
      lines.append(f"| {corruption} | " + " | ".join(_pct(v) for v in row) + " | "
                   f"{_pct(corrupted['per_corruption'].get(corruption))} |")
  if results["missing"]:
    lines += ["", "## Missing", ""]
    lines += [f"- {name}: {how}" for name, how in results["missing"].items()]
  return table5, "\n".join(lines) + "\n"


def _plot(results, path):
  from keras_vivi import plotting  # pylint: disable=g-import-not-at-top
  cells = {h: v for h, v in table5_cells(results).items() if v is not None}
  fig, ax = plotting.subplots(figsize=(max(4.0, 0.6 * len(cells) + 1.5), 3.8))
  names = list(cells)
  colours = ["#7f7f7f" if n.startswith("Δ") else "#2ca02c" if n == "Shape fraction"
             else "#1f77b4" for n in names]
  bars = ax.bar(np.arange(len(names)), [100 * cells[n] for n in names], color=colours)
  plotting.label_bars(ax, bars, [f"{100 * cells[n]:.1f}" for n in names])
  plotting.mark_single_run(bars)
  plotting.legend(ax, [plotting.single_run_handle()], loc="upper right", fontsize=7)
  ax.set_xticks(np.arange(len(names)))
  ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
  ax.set_ylabel("% (Δ: points, lower is better)")
  ax.set_ylim(min([0.0] + [100 * v for v in cells.values()]) - 5, 105)
  title = f"Robustness: {os.path.basename(os.path.normpath(results['classifier']))}"
  if results["missing"]:
    title += f"\nmissing: {', '.join(results['missing'])}"
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  return files.save_figure(fig, path)


def write_results(results, output_dir):
  """results.{json,csv,md}, table5.md and results.png, each replaced atomically; returns the
  plot's `Figure`."""
  table5, markdown = _markdown(results)
  outputs.write_report(output_dir, "results", results, markdown)
  files.write_atomically(os.path.join(output_dir, "table5.md"), table5)
  rows = [["dataset", "metric", "value"]]
  for spec in data_lib.DATASETS:
    entry = results["datasets"].get(spec.name)
    if entry is not None:
      rows += [[spec.name, m, "" if entry.get(m) is None else f"{entry[m]:.6f}"]
               for m in spec.metrics]
      if spec.name == "imagenet_c":
        rows += [[spec.name, f"accuracy/{c}", f"{v:.6f}"]
                 for c, v in entry["per_corruption"].items()]
  rows += [[name, "missing", ""] for name in results["missing"]]
  table = io.StringIO(newline="")
  csv.writer(table).writerows(rows)
  files.write_atomically(os.path.join(output_dir, "results.csv"), table.getvalue())
  return _plot(results, os.path.join(output_dir, "results.png"))
