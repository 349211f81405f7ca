"""The VTAB-1k protocol: fine-tune a hub module on each task and report test accuracy.

  results = run_vtab("exports/vivi_objects", ["cifar100", "dtd"], "out/vtab", VtabConfig())

Per task (see `vtab_tasks`): every sweep point fine-tunes a fresh classifier (module + zero
head, `finetune.build_classifier`) on train800 and scores val200; the best point (first on ties)
is retrained on train800val200 and scored on test. Images are resized to `image_size`² (aspect
ratio not kept) and scaled to [0, 1]; no augmentation. A task whose tfds data is not prepared is
reported under "missing" with the command that prepares it; the others still run.

The module is a zoo preset name or a hub handle (`keras_vivi.load_feature_extractor`). OUTPUT
receives, rewritten after every finished task (a re-run with the same OUTPUT, module and config
skips finished tasks, so long jobs never lose finished work; a local module counts by its
absolute path):
  results.json  {"hub", "config", "tasks": {name: {"group", "num_classes", "test_accuracy",
                "selected", "sweep", "seed"}}, "missing": {name: reason}, "means": {key: mean | null}}
                (every sweep point and the selected point's retraining ran with `seed`)
                (keys and what they average: `vtab_tasks.mean_members`)
  results.csv, results.md (tables) and results.png (bar chart by group, with group means;
  values on the bars, chance 1/num_classes dotted, hatched: a single run);
  logs/TASK/sweep_lrLR_stepsS_decayD and logs/TASK/selected_... : TensorBoard scalars of every
  fine-tuning run (train_loss, train_accuracy: Keras's running means; learning_rate;
  val_accuracy, or test_accuracy for the selected point's retraining), `tensorboard --logdir
  OUTPUT/logs`.
Accuracies are fractions in [0, 1]. "overall" is VTAB-1k's score, the mean of all 19 tasks, so
it is null until all 19 ran; a run with some of them reports their mean as "partial".
"""

import csv
import dataclasses
import io
import json
import os
import re

import tensorflow as tf
import tf_keras
from tqdm import auto as tqdm

from keras_vivi import files
from keras_vivi.evaluation.vtab import finetune
from keras_vivi.evaluation import statistics
from keras_vivi.evaluation.vtab import tasks as vtab_tasks
from keras_vivi.evaluation.vtab.config import SweepPoint, VtabConfig
from keras_vivi.zoo import presets as presets_lib

RESULTS_JSON = "results.json"
LOGS = "logs"
MEAN_KEYS = vtab_tasks.MEAN_KEYS


def parse_sweep(text):
  """'LR:STEPS:DECAY_EVERY,...' (e.g. '0.1:10000:3000,0.01:2500:750') → tuple of SweepPoints."""
  points = []
  for item in filter(None, (s.strip() for s in text.split(","))):
    fields = item.split(":")
    try:
      if len(fields) != 3:
        raise ValueError
      point = SweepPoint(float(fields[0]), int(fields[1]), int(fields[2]))
    except ValueError:
      raise ValueError(f"Sweep point {item!r} is not LEARNING_RATE:STEPS:DECAY_EVERY "
                       f"(e.g. 0.01:2500:750).") from None
    if point.learning_rate <= 0 or point.steps <= 0 or point.decay_every <= 0:
      raise ValueError(f"Sweep point {item!r} must have positive values.")
    points.append(point)
  if not points:
    raise ValueError(f"Empty sweep {text!r}; expected LR:STEPS:DECAY_EVERY,...")
  return tuple(points)


def config_to_dict(config):
  """JSON-ready dict of a `VtabConfig` (the sweep as a list of dicts)."""
  return json.loads(json.dumps(dataclasses.asdict(config)))


def preprocess(image, label, image_size):
  """uint8 [H, W, 3] → float32 [image_size, image_size, 3] in [0, 1] (bilinear resize)."""
  image = tf.image.resize(image, [image_size, image_size]) / 255.0
  return image, label


def _batches(raw, config, training):
  def prep(image, label):
    return preprocess(image, label, config.image_size)
  if training:
    # The cache holds the ≤ 1000 decoded examples; shuffling after repeat mixes epochs as
    # task_adaptation does.
    data = raw.cache().repeat().shuffle(1000, seed=config.seed)
    data = data.map(prep, num_parallel_calls=tf.data.AUTOTUNE)
    data = data.batch(config.batch_size, drop_remainder=True)
  else:
    data = raw.map(prep, num_parallel_calls=tf.data.AUTOTUNE).batch(config.eval_batch_size)
  return data.prefetch(tf.data.AUTOTUNE)


class _Scalars(tf_keras.callbacks.Callback):
  """Writes the training scalars of one fine-tuning run about 100 times, and at its last step."""

  def __init__(self, writer, steps):
    super().__init__()
    self._writer, self._steps, self._every = writer, steps, max(1, steps // 100)

  def on_train_batch_end(self, batch, logs=None):
    step = batch + 1
    if step % self._every and step != self._steps:
      return
    with self._writer.as_default(step=step):
      tf.summary.scalar("train_loss", logs["loss"])
      tf.summary.scalar("train_accuracy", logs["accuracy"])
      tf.summary.scalar("learning_rate", self.model.optimizer.learning_rate)


def run_name(point, selected=False):
  """The TensorBoard run directory of a sweep point (of the selected point's retraining)."""
  return (f"{'selected' if selected else 'sweep'}_lr{point.learning_rate:g}_steps{point.steps}"
          f"_decay{point.decay_every}")


def _fit_and_score(handle, task, point, train, evaluation, config, verbose, log_dir=None,
                   metric="val_accuracy"):
  tf_keras.backend.clear_session()
  tf_keras.utils.set_random_seed(config.seed)
  classifier = finetune.build_classifier(handle, task.num_classes, trainable=True,
                                         image_size=config.image_size)
  writer = tf.summary.create_file_writer(log_dir) if log_dir else None
  finetune.finetune(classifier, _batches(train, config, True), point.steps,
                    point.learning_rate, point.decay_every, momentum=config.momentum,
                    warmup_steps=config.warmup_steps, verbose=verbose,
                    callbacks=[_Scalars(writer, point.steps)] if writer else None)
  accuracy = finetune.evaluate_accuracy(classifier, _batches(evaluation, config, False))
  if writer:
    with writer.as_default(step=point.steps):
      tf.summary.scalar(metric, accuracy)
    writer.close()
  return accuracy


def run_task(handle, task, config, data_dir=None, verbose=0, progress=True, log_dir=None):
  """The protocol on one task; returns its results.json entry. With `log_dir`, every fine-tuning
  run logs TensorBoard scalars to `log_dir/TASK/run_name(point)`.

  Raises:
    vtab_tasks.TaskDataMissing: the task's tfds data is not prepared.
  """
  splits = {s: vtab_tasks.load_split(task, s, data_dir) for s in vtab_tasks.SPLITS}
  # folder:DIR tasks hold slashes and colons.
  task_logs = log_dir and os.path.join(log_dir, re.sub(r"[^\w.-]+", "_", task.name))
  sweep = []
  points = config.points()
  for point in tqdm.tqdm(points, desc=f"{task.name} sweep", leave=False, disable=not progress):
    accuracy = _fit_and_score(handle, task, point, splits["train800"], splits["val200"], config,
                              verbose, task_logs and os.path.join(task_logs, run_name(point)))
    sweep.append({**dataclasses.asdict(point), "val_accuracy": accuracy, "seed": config.seed})
  best = max(range(len(sweep)), key=lambda i: (sweep[i]["val_accuracy"], -i))
  selected = points[best]
  test = _fit_and_score(handle, task, selected, splits["train800val200"], splits["test"], config,
                        verbose, task_logs and os.path.join(task_logs, run_name(selected, True)),
                        metric="test_accuracy")
  return {"group": task.group, "num_classes": task.num_classes, "test_accuracy": test,
          "selected": dataclasses.asdict(selected), "sweep": sweep, "seed": config.seed}


def _groups(tasks):
  return {name: t["group"] for name, t in tasks.items()}


def group_means(tasks):
  """`vtab_tasks.means` of `tasks` (task name → {'group', 'test_accuracy', ...})."""
  return vtab_tasks.means({name: t["test_accuracy"] for name, t in tasks.items()}, _groups(tasks))


def chance_level(name, entry=None):
  """Accuracy of guessing among the classes of task `name`: 1 / its number of classes (from its
  results entry, else the task registry); None when not known (e.g. a robustness task)."""
  classes = (entry or {}).get("num_classes")
  if classes is None:
    try:
      classes = vtab_tasks.get_task(name).num_classes
    except (ValueError, OSError, tf.errors.OpError):
      return None
  return 1 / classes


def _ordered(names):
  order = {n: i for i, n in enumerate(vtab_tasks.list_tasks())}
  return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def write_results(results, output_dir):
  """Writes results.json, results.csv, results.md and results.png (each replaced atomically);
  returns the `Figure` of results.png."""
  tf.io.gfile.makedirs(output_dir)
  tasks, means = results["tasks"], results["means"]
  files.write_json(os.path.join(output_dir, RESULTS_JSON), results, indent=2)

  rows = [["task", "group", "test_accuracy", "learning_rate", "steps", "decay_every",
           "val_accuracy"]]
  for name in _ordered(tasks):
    t, s = tasks[name], tasks[name]["selected"]
    val = next(p["val_accuracy"] for p in t["sweep"]
               if all(p[k] == s[k] for k in ("learning_rate", "steps", "decay_every")))
    rows.append([name, t["group"], f"{t['test_accuracy']:.4f}", s["learning_rate"], s["steps"],
                 s["decay_every"], f"{val:.4f}"])
  for key in MEAN_KEYS:
    if means.get(key) is not None:
      rows.append([f"mean_{key}", key, f"{means[key]:.4f}", "", "", "", ""])
  for name in _ordered(results["missing"]):
    rows.append([name, "missing", "", "", "", "", ""])
  table = io.StringIO(newline="")
  csv.writer(table).writerows(rows)
  files.write_atomically(os.path.join(output_dir, "results.csv"), table.getvalue())

  lines = [f"# VTAB-1k: `{results['hub']}`", "",
           "| task | group | test accuracy (%) | selected lr / steps / decay every |",
           "|---|---|---:|---|"]
  for name in _ordered(tasks):
    t, s = tasks[name], tasks[name]["selected"]
    lines.append(f"| {name} | {t['group']} | {100 * t['test_accuracy']:.1f} | "
                 f"{s['learning_rate']:g} / {s['steps']} / {s['decay_every']} |")
  for key in MEAN_KEYS:
    if means.get(key) is not None:
      lines.append(f"| **mean {key}** | | **{100 * means[key]:.1f}** | |")
  if means.get("partial") is not None:
    lines += ["", f"mean partial: the {len(vtab_tasks.mean_members(_groups(tasks))['partial'])} "
              f"of {len(vtab_tasks.list_tasks())} VTAB-1k tasks that ran; not a VTAB-1k score, "
              "which averages all of them (\"overall\")."]
  if results["missing"]:
    lines += ["", "Missing tasks (not in the means):", ""]
    lines += [f"- {name}: {results['missing'][name]}" for name in _ordered(results["missing"])]
  files.write_atomically(os.path.join(output_dir, "results.md"), "\n".join(lines) + "\n")
  return _plot(results, os.path.join(output_dir, "results.png"))


def _plot(results, path):
  """Writes the accuracy bars of `results` to `path`; returns its `Figure`: values on the bars,
  each task's chance level dotted, bars hatched (one run, no error bar), means with a thick
  edge."""
  from keras_vivi import plotting  # pylint: disable=g-import-not-at-top
  tasks, means = results["tasks"], results["means"]
  names, values, colours, chance = [], [], [], []
  for group in vtab_tasks.GROUPS + ("local",):
    members = [n for n in _ordered(tasks) if tasks[n]["group"] == group]
    names += members + ([f"mean {group}"] if members else [])
    values += [100 * tasks[n]["test_accuracy"] for n in members]
    values += [100 * means[group]] if members else []
    chance += [None if (c := chance_level(n, tasks[n])) is None else 100 * c for n in members]
    chance += [None] if members else []
    colour = statistics.GROUP_COLOURS.get(group, statistics.OTHER_COLOUR)
    colours += [colour] * (len(members) + bool(members))
  figure, axis = plotting.subplots(figsize=(max(4.0, 0.45 * len(names) + 1.5), 4.5))
  bars = axis.bar(range(len(names)), values, color=colours)
  plotting.mark_single_run(bars)
  for bar, name in zip(bars, names):
    if name.startswith("mean "):
      bar.set_linewidth(2)
  plotting.label_bars(axis, bars, [f"{v:.1f}" for v in values], fontsize=6)
  plotting.chance_lines(axis, bars, chance, label="chance (1 / classes)")
  for key in ("overall", "partial"):
    if means.get(key) is not None:
      axis.axhline(100 * means[key], color="black", linestyle="--", linewidth=1,
                   label=f"{key} {100 * means[key]:.1f}")
  plotting.legend(axis, [plotting.single_run_handle()], loc="upper right", fontsize=7)
  axis.set_xticks(range(len(names)))
  axis.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
  axis.set_ylabel("test accuracy (%)")
  axis.set_ylim(0, 105)
  title = f"VTAB-1k: {os.path.basename(os.path.normpath(results['hub']))}"
  if results["missing"]:
    title += f" ({len(results['missing'])} tasks missing)"
  axis.set_title(title, fontsize=10)
  figure.tight_layout()
  return files.save_figure(figure, path)


def normalize_hub(handle):
  """`handle` as results.json records it: an existing local path made absolute (so
  `exports/x`, `./exports/x` and `/abs/exports/x` are one module); preset names and URLs as
  given."""
  if handle in presets_lib.list_presets() or files.is_remote(handle):
    return handle
  path = os.path.expanduser(handle[len("file://"):] if handle.startswith("file://") else handle)
  return os.path.abspath(path) if os.path.exists(path) else handle


def _resume(output_dir, handle, config):
  path = os.path.join(output_dir, RESULTS_JSON)
  fresh = {"hub": handle, "config": config_to_dict(config), "tasks": {}, "missing": {},
           "means": group_means({})}
  if not tf.io.gfile.exists(path):
    return fresh
  previous = files.read_json(path, "vivi-vtab replaces it atomically, so it was damaged "
                             "afterwards. Move it away to run every task again, or choose "
                             "another output directory.")
  files.check_same_settings({"hub": previous.get("hub"), "config": previous.get("config")},
                            {"hub": handle, "config": fresh["config"]}, path,
                            "results of another module or config",
                            "choose another output directory.")
  return {**fresh, "tasks": previous.get("tasks", {})}


def resolve_tasks(spec):
  """'all' → the 19 VTAB tasks; 'natural' / 'specialized' / 'structured' → that group;
  otherwise a comma-separated list of task names (or folder:DIR)."""
  if spec in ("all", "vtab"):
    return vtab_tasks.list_tasks()
  if spec in vtab_tasks.GROUPS:
    return vtab_tasks.list_tasks(spec)
  names = [n.strip() for n in spec.split(",") if n.strip()]
  if not names:
    raise ValueError(f"No task in {spec!r}; expected 'all', a group or NAME,NAME.")
  for name in names:
    vtab_tasks.get_task(name)  # fails early on an unknown name
  return names


def run_vtab(handle, task_names, output_dir, config=VtabConfig(), data_dir=None, verbose=0,
             progress=True, tensorboard=True):
  """Runs the protocol on `task_names`, writing results to `output_dir` after every task.

  Args:
    handle: a zoo preset name or a hub handle (see `keras_vivi.load_feature_extractor`) of a
      module mapping float32 images [B, H, W, 3] in [0, 1] to [B, D]; results.json records
      local paths as absolute paths (`normalize_hub`).
    task_names: task names (see `vtab_tasks.get_task`).
    output_dir: where results.{json,csv,md,png} go; finished tasks found there are skipped.
    config: `VtabConfig`.
    data_dir: tfds data directory.
    verbose: Keras `fit` verbosity of each fine-tuning run.
    progress: tqdm bars over tasks and sweep points.
    tensorboard: log every fine-tuning run's scalars under `output_dir/logs` (see `run_task`).

  Returns:
    The results.json content as a dict.
  """
  handle = normalize_hub(handle)
  results = _resume(output_dir, handle, config)
  tasks = [vtab_tasks.get_task(n) for n in task_names]
  bar = tqdm.tqdm(tasks, desc="VTAB tasks", disable=not progress)
  for task in bar:
    bar.set_postfix_str(task.name)
    if task.name in results["tasks"]:
      continue
    try:
      entry = run_task(handle, task, config, data_dir, verbose, progress,
                       os.path.join(output_dir, LOGS) if tensorboard else None)
    except vtab_tasks.TaskDataMissing as missing:
      results["missing"][task.name] = str(missing)
    else:
      results["tasks"][task.name] = entry
    results["means"] = group_means(results["tasks"])
    write_results(results, output_dir)
  results["means"] = group_means(results["tasks"])
  write_results(results, output_dir)
  return results
