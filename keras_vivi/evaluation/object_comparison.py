"""The object diagnostic of the paper's Table 2 for hub exports, with Fisher's exact test.

  result = diagnose(["exports/vivi", "exports/ours"], "records/", image_size=224)
  write(result, "diagnostic/")   # diagnostic.json, diagnostic.md, diagnostic.png

For the objects of prepared records, is an object's nearest neighbour (cosine similarity of
the backbone's block-4 features at the box centre) an object of the same detector class? By the
paper's protocol, neighbours are sought within batches of 8 consecutive videos and the counts of
50 batches are summed; `videos_per_batch=None` searches among every object instead. A video's
frames are those the training sampler takes (K shots × F frames, un-augmented) or, with
`frames="every_stored_frame"`, all of its stored frames (`object_diagnostic`). Reported
over all other objects and over objects of other shots only (on few, densely sampled videos the
nearest neighbour is otherwise mostly the same object a frame later). Each later export is
compared with the first by Fisher's exact test (the paper: p < 0.001), and every export with
chance: a random neighbour of the same batch (`object_diagnostic.chance_counts`).
"""

import math
import os

from keras_vivi import configs
from keras_vivi import files
from keras_vivi.data import pipeline
from keras_vivi.evaluation import object_diagnostic
from keras_vivi.evaluation import outputs
from keras_vivi.evaluation import statistics

FIGURES = (("all", "nearest neighbour among all other objects"),
           ("other_shots", "nearest neighbour among objects of other shots"))
# Significantly higher / lower than the reference (the baseline model, or chance).
MARKS = {"higher": "▲", "lower": "▼"}


def chance_test(hits, queries, chance, alpha):
  """Two-sided test of `hits` of `queries` against a random neighbour (`chance`: the
  `diagnose_records` entry): a normal approximation of the number of hits under chance,
  mean Σp_i and variance Σp_i(1 − p_i).

  Returns:
    `{z, p, significant, direction}`; direction "higher", "lower" or None when not significant.
  """
  if not queries or chance["fraction"] is None:
    return {"z": None, "p": 1.0, "significant": False, "direction": None}
  expected = chance["fraction"] * queries
  if chance["variance"] <= 0:   # every query's outcome is certain under chance
    p = 1.0 if hits == round(expected) else 0.0
    z = None
  else:
    z = (hits - expected) / math.sqrt(chance["variance"])
    p = math.erfc(abs(z) / math.sqrt(2))
  significant = p < alpha
  return {"z": z, "p": p, "significant": significant,
          "direction": ("higher" if hits > expected else "lower") if significant else None}


def hub_feature_fn(name_or_handle):
  """The level-5 features of a hub export (a directory, handle or zoo preset name): images
  `[B, S, S, 3]` in [0, 1] → `[B, h, w, C]`."""
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
  from keras_vivi.zoo import loader  # pylint: disable=g-import-not-at-top

  obj = hub.load(loader.resolve(name_or_handle))
  if not hasattr(obj, "feature_maps"):
    raise ValueError(f"{name_or_handle!r} has no feature_maps: expected a keras_vivi hub "
                     "export (vivi-export).")
  return lambda images: obj.feature_maps(images, training=False)["5"]


def _fisher_tests(base, model, alpha):
  """`{FIGURE: {odds_ratio, p, significant, direction}}` of `model` against `base`."""
  tests = {}
  for figure, _ in FIGURES:
    a, b = base[figure], model[figure]
    odds, p = statistics.fisher_exact(a["hits"], a["queries"], b["hits"], b["queries"])
    # JSON has no NaN or infinity.
    tests[figure] = {
        "odds_ratio": odds if math.isfinite(odds) else None, "p": p, "significant": p < alpha,
        "direction": ("higher" if b["fraction"] > a["fraction"] else "lower")
                     if p < alpha else None}
  return tests


def _checked_arguments(hubs, names, data, frames):
  """`(hubs, names)` as lists, after checking them, `data` and `frames` before any model loads."""
  given, hubs = hubs, list(hubs)
  if not hubs:
    raise ValueError(f"Need at least one hub export (directory, handle or preset name), got "
                     f"hubs={given!r}.")
  pipeline.shard_files(data)
  if frames not in object_diagnostic.FRAME_SOURCES:
    raise ValueError(f"frames must be one of {object_diagnostic.FRAME_SOURCES}, got "
                     f"{frames!r}.")
  names = list(names) if names else [os.path.basename(os.path.normpath(h)) or h for h in hubs]
  if len(names) != len(hubs) or len(set(names)) != len(names):
    raise ValueError(f"Need one distinct name per export, got names={names!r} for hubs={hubs!r}.")
  return hubs, names


def diagnose(hubs, data, image_size=224, names=None, min_score=0.05, max_objects=5,
             batch_size=32, alpha=0.001, feature_fns=None, videos_per_batch=8, num_batches=50,
             frames=object_diagnostic.TRAINING_SAMPLER, sampler=None):
  """Table 2's fraction for each export and Fisher's test of each later export against the first.

  Args:
    hubs: export directories, hub handles or zoo preset names, baseline first.
    data: directory or glob of prepared records.
    image_size, min_score, max_objects, batch_size: as `object_diagnostic.record_frames`.
    names: display names (default: the exports' basenames).
    alpha: significance level.
    feature_fns: optional `{hub: feature_fn}` overriding `hub_feature_fn` (e.g. for models
      already in memory).
    videos_per_batch, num_batches: the protocol, as in `object_diagnostic.diagnose_records`
      (`videos_per_batch=None`: every object of the records).
    frames, sampler: which frames of a video count, as in `object_diagnostic.object_groups`.

  Returns:
    A JSON-ready dict: `models[name] = {hub, objects, FIGURE: {fraction, hits, queries}}`,
    `tests[name] = {FIGURE: {odds_ratio, p, significant, direction}}` against the first model
    (direction "higher"/"lower" than it when significant, else None), `chance[FIGURE] =
    {fraction, variance, majority_class, majority_share}` (a random neighbour; the same objects
    for every model) and `chance_tests[name] = {FIGURE: chance_test(…)}`.
  """
  hubs, names = _checked_arguments(hubs, names, data, frames)
  sampler = sampler or configs.DataConfig()
  models, chance = {}, {}
  for name, hub_path in zip(names, hubs):
    feature_fn = (feature_fns or {}).get(hub_path) or hub_feature_fn(hub_path)
    figures = object_diagnostic.diagnose_records(feature_fn, data, image_size, min_score,
                                                 max_objects, batch_size, videos_per_batch,
                                                 num_batches, frames=frames, sampler=sampler)
    if not figures["all"][2]:
      raise ValueError(f"No object of the records at {data!r} has a neighbour to compare with.")
    # Every object with another one in its batch is a query.
    entry = {"hub": hub_path, "objects": int(figures["all"][2])}
    chance = figures.pop("chance")
    for figure, (fraction, hits, queries) in figures.items():
      entry[figure] = {"fraction": float(fraction), "hits": int(hits), "queries": int(queries)}
    models[name] = entry
  base = names[0]
  sampled = frames == object_diagnostic.TRAINING_SAMPLER
  tests = {name: _fisher_tests(models[base], models[name], alpha) for name in names[1:]}
  chance_tests = {name: {figure: chance_test(m[figure]["hits"], m[figure]["queries"],
                                             chance[figure], alpha) for figure, _ in FIGURES}
                  for name, m in models.items()}
  return {"data": data, "image_size": image_size, "min_score": min_score,
          "max_objects": max_objects, "alpha": alpha, "videos_per_batch": videos_per_batch,
          "num_batches": num_batches if videos_per_batch else None, "frames": frames,
          "shots_per_video": sampler.shots_per_video if sampled else None,
          "frames_per_shot": sampler.frames_per_shot if sampled else None, "baseline": base,
          "models": models, "tests": tests, "chance": chance, "chance_tests": chance_tests}


def protocol_text(result):
  """Where neighbours were sought, in words."""
  if not result.get("videos_per_batch"):
    return "among every object of the records"
  return (f"within batches of {result['videos_per_batch']} consecutive videos, counts summed "
          f"over up to {result['num_batches']} batches")


def frames_text(result):
  """Which frames of a video counted, in words."""
  if result["frames"] == object_diagnostic.TRAINING_SAMPLER:
    return (f"{result['frames']}: {result['shots_per_video']} shots × "
            f"{result['frames_per_shot']} frames a video as training samples them, central "
            "crop, no flip or colour distortion")
  return f"{result['frames']}: every stored frame of each video"


def chance_text(result):
  """Chance and the majority class's share, in words."""
  c = result["chance"]
  parts = [f"{label}: {100 * c[figure]['fraction']:.1f} %" for figure, label in
           (("all", "all neighbours"), ("other_shots", "other shots only"))
           if c[figure]["fraction"] is not None]
  text = "Chance (a random neighbour of the batch): " + ("; ".join(parts) or "–")
  if c["all"]["majority_share"] is not None:
    text += (f". Majority class {c['all']['majority_class']}: "
             f"{100 * c['all']['majority_share']:.1f} % of the objects")
  return text + "."


def mark(test) -> str:
  """▲ / ▼ when `test` is significant (higher / lower than its reference), else ''."""
  return MARKS[test["direction"]] if test and test.get("direction") else ""


def to_markdown(result):
  """`diagnostic.md`: one row per model and one for chance, fractions in %, the tests' p and
  direction, and what each column means."""
  base, alpha = result["baseline"], result["alpha"]
  chance = result["chance"]
  lines = ["# Object diagnostic (Table 2)", "",
           f"Fraction of objects whose nearest neighbour has the same detector class, over the "
           f"objects of `{result['data']}` (frames at {result['image_size']}², detections with "
           f"score ≥ {result['min_score']}, ≤ {result['max_objects']} a frame); neighbours "
           f"{protocol_text(result)}; frames: {frames_text(result)}.", "",
           "| model | objects | all neighbours | p vs chance | p vs " + base +
           " | other shots only | p vs chance | p vs " + base + " |",
           "|---|---|---|---|---|---|---|---|"]
  for name, m in result["models"].items():
    cells = []
    for figure, _ in FIGURES:
      f = m[figure]
      test = result["tests"].get(name, {}).get(figure)
      against_chance = result["chance_tests"][name][figure]
      cells += [f"{100 * f['fraction']:.1f} ({f['hits']}/{f['queries']})",
                f"{against_chance['p']:.2g} {mark(against_chance)}".strip(),
                "–" if test is None else f"{test['p']:.2g} {mark(test)}".strip()]
    lines.append(f"| {name} | {m['objects']} | " + " | ".join(cells) + " |")
  chance_cells = []
  for figure, _ in FIGURES:
    c = chance[figure]
    chance_cells += ["–" if c["fraction"] is None else f"{100 * c['fraction']:.1f}", "", ""]
  lines.append("| chance (random neighbour) | | " + " | ".join(chance_cells) + " |")
  majority = []
  for figure, label in FIGURES:
    c = chance[figure]
    if c["majority_share"] is not None:
      majority.append(f"{label}: class {c['majority_class']}, "
                      f"{100 * c['majority_share']:.1f} % of the objects")
  lines += ["", "Columns:", "",
            "- *objects*: objects with at least one other object in their batch (the queries).",
            "- *all neighbours*: % of objects whose nearest neighbour (cosine) among all other "
            "objects of their batch has their detector class (hits/queries).",
            "- *other shots only*: the same with neighbours from other shots only (on densely "
            "sampled videos the nearest neighbour is otherwise mostly the same object a frame "
            "later).",
            "- *chance (random neighbour)*: the expected % if each object's neighbour were a "
            "random other object of its batch (per batch Σ_c n_c(n_c − 1) / (N(N − 1)) of its "
            "N objects, n_c of class c; other shots only: among the objects of other shots), "
            "summed over batches as the hits are. A representation that ignores the image "
            "scores about this.",
            f"- *p vs chance*: two-sided test of the hits against chance (normal approximation); "
            f"*p vs {base}*: Fisher's exact test against the baseline {base}. "
            f"▲ / ▼: significantly higher / lower (p < {alpha}); no mark: not significant.",
            "- Majority class (a classifier always answering it would be right this often): "
            + ("; ".join(majority) or "–") + "."]
  return "\n".join(lines) + "\n"


def _plot(result, path):
  """Writes the bar chart of the fractions to `path`; returns its `Figure`: values on the bars
  (▲ / ▼ against the baseline), chance as a dotted line, hatched bars (one run each)."""
  from keras_vivi import plotting  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  names = list(result["models"])
  width = 0.8 / len(FIGURES)
  fig, ax = plotting.subplots(figsize=(max(3.5, 1.2 * len(names) + 1.5), 3.2))
  for i, (figure, label) in enumerate(FIGURES):
    x = np.arange(len(names)) + (i - (len(FIGURES) - 1) / 2) * width
    values = [100 * result["models"][n][figure]["fraction"] for n in names]
    bars = ax.bar(x, values, width, label=label, color=f"C{i}")
    plotting.mark_single_run(bars)
    plotting.label_bars(ax, bars, [
        f"{v:.1f}{mark(result['tests'].get(n, {}).get(figure))}" for n, v in zip(names, values)])
    level = result["chance"][figure]["fraction"]
    plotting.chance_lines(ax, bars, [None if level is None else 100 * level] * len(bars),
                          label=plotting.CHANCE if i == 0 else "_nolegend_")
  ax.set_xticks(np.arange(len(names)))
  ax.set_xticklabels(names, fontsize=8)
  ax.set_ylabel("same-class nearest neighbour [%]")
  ax.set_ylim(0, 110)
  plotting.legend(ax, [plotting.single_run_handle()], fontsize=7, loc="upper left")
  ax.set_title(f"frames: {result['frames']}; ▲/▼: vs {result['baseline']}, p < "
               f"{result['alpha']}", fontsize=8)
  fig.tight_layout()
  return files.save_figure(fig, path)


def write(result, output):
  """Writes `diagnostic.json`, `diagnostic.md` and `diagnostic.png` into `output`; returns the
  `Figure` of diagnostic.png."""
  outputs.write_report(output, "diagnostic", result, to_markdown(result))
  return _plot(result, os.path.join(output, "diagnostic.png"))
