"""Semi-hard triplet loss, forward + backward: ours vs the N²×N tiling, blockwise vs one block.

Each (implementation, N) runs in its own process so its peak memory is its own.
"""

import json
import os
import resource
import subprocess
import sys
import time

from keras_vivi.losses.triplet import DEFAULT_BLOCK_SIZE

TITLE = "Semi-hard triplet loss (forward + backward, D = 128, 8 items per label; skewed labels)"
RATIO_SIZES = (256, 512, 1024)
SCALING_SIZES = (2048, 4096, 8192, 16384)
# Blockwise only: all anchors in one block would need ~40 GB at 32,768.
LARGE_SIZES = (32768, 81920)
DIM = 128


def skewed_labels(n, rng):
  """Detector-like object labels: one class holds half the boxes (Person holds 68 % on holdout
  videos), the rest follow Zipf's law over 599 classes."""
  import numpy as np
  weights = 1.0 / np.arange(1, 600)
  rest = 1 + rng.choice(599, n, p=weights / weights.sum())
  return np.where(rng.random(n) < 0.5, 0, rest).astype(np.int32)


def _measure_skewed(n, mode, anchors):
  """Runs in the child: seconds of one fwd + bwd step with skewed labels, `anchors` of the N
  objects against all N (one replica's share; 0 = all), traced in a graph or run eagerly, and
  the process's peak resident memory."""
  import numpy as np
  import tensorflow as tf
  from keras_vivi.losses import semi_hard_triplet_terms
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, DIM)).astype(np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  labels = tf.constant(skewed_labels(n, rng))
  a = anchors or n
  emb = tf.Variable(x)

  def step():
    with tf.GradientTape() as tape:
      terms = semi_hard_triplet_terms(emb[:a], labels[:a], emb, labels, 0.2,
                                      anchor_positions=tf.range(a))
    return terms.sum / tf.maximum(terms.count, 1.0), tape.gradient(terms.sum, emb)

  step = tf.function(step) if mode == "graph" else step
  start = time.perf_counter()
  loss, grad = step()
  grad.numpy()
  seconds = time.perf_counter() - start
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return {"seconds": seconds, "peak_mib": peak / 1024, "loss": float(loss)}


def _measure(impl, n, repeats):
  """Runs in the child: median seconds per step (of the first, traced one when `repeats` is 0)
  and peak RSS above the idle process."""
  import numpy as np
  import tensorflow as tf
  from benchmarks.triplet_tiled import tiled_semi_hard_triplet_loss
  from keras_vivi.losses import semi_hard_triplet_loss
  loss_fn = {"blockwise": semi_hard_triplet_loss, "tiled": tiled_semi_hard_triplet_loss,
             "one_block": lambda e, l, m: semi_hard_triplet_loss(e, l, m, block_size=n)}[impl]
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, DIM)).astype(np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  emb = tf.Variable(x)
  labels = tf.constant(np.arange(n) // 8, tf.int32)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = loss_fn(emb, labels, 0.2)
    return loss, tape.gradient(loss, emb)

  idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  start = time.perf_counter()
  loss, grad = step()  # trace + warm-up
  grad.numpy()
  times = [time.perf_counter() - start] if repeats == 0 else []
  for _ in range(repeats):
    start = time.perf_counter()
    out = step()
    out[1].numpy()
    times.append(time.perf_counter() - start)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return {"seconds": float(np.median(times)), "peak_mib": (peak - idle) / 1024,
          "loss": float(loss)}


def _run(impl, n, repeats, timeout=3600, extra=()):
  proc = subprocess.run([sys.executable, "-m", "benchmarks.triplet", impl, str(n), str(repeats),
                         *extra],
                        capture_output=True, text=True, timeout=timeout,
                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  if proc.returncode != 0:
    last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return {"error": "killed (out of memory)" if proc.returncode in (-9, 137) else last[:120]}
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _available_mib():
  """MemAvailable of the machine (Linux), or None where it cannot be read."""
  try:
    with open("/proc/meminfo") as f:
      return next(int(line.split()[1]) / 1024 for line in f if line.startswith("MemAvailable"))
  except (OSError, StopIteration):
    return None


def _run_if_free(impl, n, repeats, need_bytes):
  """`_run` if the machine has the memory free, so that on a shared machine the baselines do
  not push other processes out of memory."""
  need, available = need_bytes / 2 ** 20, _available_mib()
  if available is not None and need > 0.9 * available:
    return {"error": f"not run: needs ~{need / 1024:.0f} GB, {available / 1024:.0f} GB free"}
  return _run(impl, n, repeats)


def _cells(result):
  if "error" in result:
    return f"{result['error']} | – "
  return f"{result['seconds']:.3f} | {result['peak_mib']:.0f} "


def _same(a, b):
  return ("yes" if abs(a["loss"] - b["loss"]) <= 1e-5 * max(1.0, abs(b["loss"])) else "NO") \
      if "error" not in a and "error" not in b else "–"


def run(quick=False):
  """Returns the markdown section for RESULTS.md."""
  ratio_sizes = RATIO_SIZES[:2] if quick else RATIO_SIZES
  scaling_sizes = SCALING_SIZES[:1] if quick else SCALING_SIZES
  large_sizes = () if quick else LARGE_SIZES
  lines = ["| N | ours s/step | ours peak MiB | tiled s/step | tiled peak MiB | speed-up | "
           "same loss |", "|---|---|---|---|---|---|---|"]
  for n in ratio_sizes:
    ours = _run("blockwise", n, 5)
    # The tiling holds ~18·N³ bytes (19 GB at N = 1024).
    tiled = _run_if_free("tiled", n, 3 if n < 1024 else 1, 18 * n ** 3)
    speed_up = (f"{tiled['seconds'] / ours['seconds']:.1f}×"
                if "error" not in tiled and "error" not in ours else "–")
    lines.append(f"| {n} | {_cells(ours)}| {_cells(tiled)}| {speed_up} | {_same(ours, tiled)} |")
    print(lines[-1], flush=True)
  lines += ["", f"Blocks of {DEFAULT_BLOCK_SIZE} anchors (the default) vs all N anchors in one "
            "block; one step timed from its first call at N ≥ 32,768:", "",
            "| N | one block s/step | one block peak MiB | blockwise s/step | blockwise peak MiB | "
            "blockwise peak ÷ previous | same loss |", "|---|---|---|---|---|---|---|"]
  previous = None
  for n in scaling_sizes + large_sizes:
    if n in large_sizes:
      one = {"error": "not run (one block of all N anchors: O(N²), ~40 GB at 32,768)"}
    else:  # ~75·N² bytes (4.7 GB at N = 8192)
      one = _run_if_free("one_block", n, 3 if n <= 4096 else 1, 75 * n ** 2)
    ours = _run("blockwise", n, 0 if n in large_sizes else 3 if n <= 4096 else 1)
    growth = (f"{ours['peak_mib'] / previous:.2f}" if previous and "error" not in ours else "–")
    previous = ours.get("peak_mib")
    lines.append(f"| {n} | {_cells(one)}| {_cells(ours)}| {growth} | {_same(ours, one)} |")
    print(lines[-1], flush=True)
  return "\n".join(lines + [""] + skewed_rows(quick))


# (N, how it runs, anchors against all N; 0 = all): the paper's object batch is 81,920 boxes
# over 128 TPU cores, 640 anchors per replica.
SKEWED_CASES = ((32768, "graph", 0), (32768, "eager", 0), (81920, "graph", 640),
                (81920, "graph", 0))
SKEWED_TARGET_GB = {32768: 4, 81920: 8}


def skewed_rows(quick=False, cases=SKEWED_CASES):
  """Markdown rows: skewed labels at the paper's object batch, process peak resident memory."""
  lines = ["Skewed labels (top class 50 %, the rest Zipf over 599 classes), one fwd + bwd step "
           "timed from its first call; peak = the process's peak resident memory (ru_maxrss, "
           "TensorFlow and the inputs included). A replica's share: its anchors against the "
           "whole batch, as each of the paper's 128 TPU cores computes.", "",
           "| N | run | anchors | s/step | process peak MiB | target |", "|---|---|---|---|---|---|"]
  for n, mode, anchors in cases[:1] if quick else cases:
    result = _run("skewed", n, 0, timeout=4 * 3600, extra=(mode, str(anchors)))
    target = SKEWED_TARGET_GB[n]
    verdict = ("–" if "error" in result else
               f"< {target} GB: {'met' if result['peak_mib'] < target * 1024 else 'MISSED'}")
    lines.append(f"| {n} | {mode} | {anchors or n} | {_cells(result)}| {verdict} |")
    print(lines[-1], flush=True)
  return lines


if __name__ == "__main__":
  impl, n, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
  if impl == "skewed":
    print(json.dumps(_measure_skewed(n, sys.argv[4], int(sys.argv[5]))))
  else:
    print(json.dumps(_measure(impl, n, repeats)))
