"""A run's checkpoints as a restart and an export find them: the newest intact one, and the
damaged ones (files missing or truncated by a kill or a full disk) named."""

import os
import re

import tensorflow as tf

PREFIX = "ckpt"  # `tf.train.CheckpointManager`'s default checkpoint_name
_NUMBERED = re.compile(rf"^{PREFIX}-(\d+)\.index$")
_TEMPORARY = re.compile(rf"^{PREFIX}-\d+_temp$")  # a save's shards before they are merged


def listed(model_dir) -> list[str]:
  """Checkpoint prefixes of `model_dir`, newest first: those its `checkpoint` file names and
  every `ckpt-N.index` beside it (a lost or stale `checkpoint` file hides none)."""
  prefixes = set()
  state = tf.train.get_checkpoint_state(model_dir)
  if state is not None:
    for path in list(state.all_model_checkpoint_paths) + [state.model_checkpoint_path]:
      if path:
        prefixes.add(os.path.join(model_dir, os.path.basename(path)))
  if tf.io.gfile.isdir(model_dir):
    for name in tf.io.gfile.listdir(model_dir):
      if _NUMBERED.match(name):
        prefixes.add(os.path.join(model_dir, name[:-len(".index")]))
  return sorted(prefixes, key=lambda p: int(p.rsplit("-", 1)[-1]), reverse=True)


def damage(prefix) -> str | None:
  """What is wrong with the checkpoint at `prefix` (a missing file, a tensor that cannot be
  read), or None when every tensor it lists reads back."""
  index = prefix + ".index"
  if not tf.io.gfile.exists(index):
    return f"{index} is missing"
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)  # one tensor at a time: memory stays one tensor's
  except (tf.errors.OpError, ValueError, IndexError) as e:  # IndexError: a truncated file
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    data = tf.io.gfile.glob(prefix + ".data-*")
    return f"its files cannot be read ({', '.join(data) or index}: {first[:300]})"
  return None


def newest_intact(model_dir) -> tuple[str | None, list[tuple[str, str]]]:
  """`(prefix of the newest intact checkpoint or None, [(damaged newer prefix, what is wrong)])`."""
  damaged: list[tuple[str, str]] = []
  for prefix in listed(model_dir):
    problem = damage(prefix)
    if problem is None:
      return prefix, damaged
    damaged.append((prefix, problem))
  return None, damaged


def describe(damaged) -> str:
  return "; ".join(f"{prefix}: {problem}" for prefix, problem in damaged)


def sweep_temporaries(model_dir) -> list[str]:
  """Removes the `ckpt-N_temp/` folders a save killed before its end left in `model_dir`;
  returns them. Only the lock holder of `model_dir` may call this."""
  removed = []
  if tf.io.gfile.isdir(model_dir):
    for name in tf.io.gfile.listdir(model_dir):
      name = name.rstrip("/")
      path = os.path.join(model_dir, name)
      if _TEMPORARY.match(name) and tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
        removed.append(path)
  return removed
