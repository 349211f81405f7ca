"""What a preparation produced: per-video stats, `manifest.json` and the plots beside it."""

import collections
import os

from matplotlib import patches
import numpy as np
import tensorflow as tf

from keras_vivi import plotting
from keras_vivi.data import schema

MANIFEST_FILE = "manifest.json"
CLASS_PLOT = "class_histogram.png"
SCORE_PLOT = "score_histogram.png"
CONTACT_SHEET = "contact_sheet.png"
SCORE_BINS = np.linspace(0.0, 1.0, 21)


def video_stats(video_id, source, num_shots, num_frames, class_names, scores, truncated=False,
                problem=None):
  """JSON-ready summary of one prepared video; `class_names`, `scores` `[n]` over its objects."""
  names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(class_names)]
  flags = [flag for flag, on in (("single_shot", num_shots == 1),
                                 ("no_detections", len(names) == 0),
                                 ("truncated", truncated)) if on]
  return {"video_id": video_id, "source": source, "num_shots": int(num_shots),
          "num_frames": int(num_frames), "num_objects": len(names),
          "classes": dict(collections.Counter(names)),
          "score_histogram": np.histogram(np.asarray(scores, np.float64), SCORE_BINS)[0].tolist(),
          "flags": flags, "problem": problem}


def build_manifest(stats, shards, detector, label_map, config):
  """Aggregates per-video stats (skipped videos carry a `reason`) into the manifest dict."""
  kept = [s for s in stats if "reason" not in s]
  classes = collections.Counter()
  for s in kept:
    classes.update(s["classes"])
  flagged = {flag: [s["video_id"] for s in kept if flag in s["flags"]]
             for flag in ("single_shot", "no_detections", "truncated")}
  return {
      "counts": {"videos": len(kept), "skipped": len(stats) - len(kept),
                 "shots": sum(s["num_shots"] for s in kept),
                 "frames": sum(s["num_frames"] for s in kept),
                 "objects": sum(s["num_objects"] for s in kept)},
      "shards": shards,
      "detector": detector,
      "label_map": {str(k): v for k, v in sorted(label_map.items())},
      "class_histogram": dict(classes.most_common()),
      "score_histogram": {"bin_edges": SCORE_BINS.round(3).tolist(),
                          "counts": np.sum([s["score_histogram"] for s in kept] or
                                           [np.zeros(len(SCORE_BINS) - 1, int)], axis=0).tolist()},
      "flagged": flagged,
      "skipped": [{"source": s["source"], "reason": s["reason"]} for s in stats if "reason" in s],
      "videos": [{k: s[k] for k in ("video_id", "source", "num_shots", "num_frames",
                                    "num_objects", "flags")} for s in kept],
      "config": config,
  }


def plot_manifest(manifest, output_dir):
  """Writes the class histogram (the paper's Table 6) and score histogram (its Figure 5);
  returns their two `Figure`s."""
  classes = manifest["class_histogram"]
  fig, ax = plotting.subplots(figsize=(7, 0.3 * max(len(classes), 3) + 1))
  names = list(classes)[::-1]
  ax.barh(names, [classes[n] for n in names], color="tab:blue")
  ax.set_xlabel("objects detected")
  ax.set_title(f"Detected classes ({manifest['counts']['objects']} objects, "
               f"{manifest['counts']['frames']} frames)")
  fig.tight_layout()
  fig.savefig(os.path.join(output_dir, CLASS_PLOT), dpi=100)
  class_figure = fig

  hist = manifest["score_histogram"]
  edges = np.asarray(hist["bin_edges"])
  fig, ax = plotting.subplots(figsize=(6, 3.5))
  ax.bar(edges[:-1], hist["counts"], width=np.diff(edges), align="edge", edgecolor="white")
  ax.set_xlabel("detection score")
  ax.set_ylabel("objects")
  ax.set_title("Scores of kept detections")
  fig.tight_layout()
  fig.savefig(os.path.join(output_dir, SCORE_PLOT), dpi=100)
  return class_figure, fig


def contact_sheet(shard_paths, output_path, max_videos=6, max_frames=10):
  """Draws sampled frames with their boxes, one row per video; a red bar marks a new shot.
  Returns the `Figure` (None when there is no record)."""
  rows = []
  for serialized in tf.data.TFRecordDataset(sorted(shard_paths)).take(max_videos):
    context, seq = schema.parse_video(serialized)
    rows.append((context[schema.VIDEO_ID].numpy().decode(), seq))
  if not rows:
    return
  fig, axes = plotting.subplots(len(rows), max_frames,
                                figsize=(1.6 * max_frames, 1.5 * len(rows)), squeeze=False)
  for ax in axes.flat:
    ax.axis("off")
  for r, (video_id, seq) in enumerate(rows):
    shots = seq[schema.FRAME_SHOT].numpy()
    for c in range(min(max_frames, len(shots))):
      ax = axes[r, c]
      image = tf.io.decode_jpeg(seq[schema.FRAME_JPEG][c]).numpy()
      h, w = image.shape[:2]
      ax.imshow(image)
      boxes = seq[schema.OBJECT_BOXES][c].numpy().reshape(-1, 4)
      names = seq[schema.OBJECT_CLASS_NAMES][c].numpy()
      scores = seq[schema.OBJECT_SCORES][c].numpy()
      for (y0, x0, y1, x1), name, score in zip(boxes, names, scores):
        # Faint boxes for low scores; labels only where the detector is fairly sure.
        ax.add_patch(patches.Rectangle((x0 * w, y0 * h), (x1 - x0) * w, (y1 - y0) * h, fill=False,
                                   color="yellow", linewidth=1, alpha=0.3 + 0.7 * score))
        if score >= 0.3:
          ax.text(x0 * w, y0 * h, f"{name.decode()} {score:.2f}", color="black", fontsize=5,
                  bbox={"facecolor": "yellow", "pad": 0.5, "linewidth": 0})
      if c > 0 and shots[c] != shots[c - 1]:
        ax.axvline(0, color="red", linewidth=4)
      ax.set_title(f"shot {shots[c]} · {seq[schema.FRAME_TIME][c].numpy():.1f}s", fontsize=6)
      ax.axis("on")
      ax.set_xticks([])
      ax.set_yticks([])
    axes[r, 0].set_ylabel(video_id[:18], fontsize=6)
  fig.suptitle("Sampled frames with detections (labels for score ≥ 0.3; red bar: new shot)",
               fontsize=9)
  fig.tight_layout()
  fig.savefig(output_path, dpi=110)
  return fig
