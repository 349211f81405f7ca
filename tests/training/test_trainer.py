"""The trainer as users run it: resuming after a kill, and two workers on loopback."""

import csv
import dataclasses
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_vivi import configs, losses
from keras_vivi.data import pipeline, schema
from keras_vivi.training import trainer
from tests.helpers.cli import REPO
from tests.helpers.records import digits_tfrecord, synthetic_video
from tests.helpers.training import labelled_batch, small_config


def run_main(model_dir, steps, strategy="default", env=None, hang_at=None, **kwargs):
  return subprocess.Popen([sys.executable, "-m", "tests.training.train_main", model_dir,
                           str(steps), strategy] + ([str(hang_at)] if hang_at else []), cwd=REPO,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                          **kwargs)


def finish(proc):
  """`(final logs, stdout)` of a finished training process."""
  out, err = proc.communicate(timeout=600)
  assert proc.returncode == 0, err[-3000:]
  return json.loads(out.strip().splitlines()[-1]), out


def last_json(proc):
  return finish(proc)[0]


def committed_step(model_dir):
  """The step of the checkpoint a restart would resume from (what the run committed)."""
  latest = tf.train.latest_checkpoint(str(model_dir))
  return int(latest.rsplit("-", 1)[-1]) if latest else 0


def test_killed_run_resumes_at_the_right_step(tmp_path):
  straight = run_main(str(tmp_path / "straight"), 6)  # the reference, trained beside the killed run
  killed = tmp_path / "killed"
  # The run trains step 3 (its weights and momentum change in memory) and stops before that
  # checkpoint: killed there, it must resume from step 2's checkpoint and train step 3 again.
  proc = run_main(str(killed), 6, hang_at=3)
  deadline = time.time() + 600
  while committed_step(killed) < 2 and time.time() < deadline:
    assert proc.poll() is None, proc.stderr.read()[-3000:]
    time.sleep(0.1)
  proc.kill()
  proc.wait()
  saved = committed_step(killed)
  assert saved == 2
  reference = last_json(straight)
  resumed, out = finish(run_main(str(killed), 6))
  assert resumed["iterations"] == 6 == reference["iterations"]
  # One step per epoch: the resumed run starts with the step after the checkpoint.
  assert f"Epoch {saved + 1}/6" in out and f"Epoch {saved}/6" not in out
  # The progress line shows the total and the level losses; history holds every log.
  shown = {name for line in out.splitlines() if "/step" in line
           for name in re.findall(r"(\w+): -?\d+\.\d", line)}
  assert shown == {"total_loss", "frame_loss", "shot_loss", "object_loss"}
  assert {"weight_decay_loss", "object_active_triplets"} <= set(resumed)
  # Weights and momentum came back exactly: the result equals an uninterrupted run.
  np.testing.assert_allclose(resumed["stem_sum"], reference["stem_sum"], rtol=1e-5)
  np.testing.assert_allclose(resumed["total_loss"], reference["total_loss"], rtol=1e-5)


class Stopped(Exception):
  pass


class StopBefore(tf_keras.callbacks.Callback):
  """Ends the run once `epoch` epochs are checkpointed and logged, as a kill there would."""

  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_begin(self, epoch, logs=None):
    if epoch == self.epoch:
      raise Stopped()


def checkpoint_values(model_dir):
  """`{key: value}` of every variable in the latest checkpoint (not the object graph)."""
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(model_dir)))
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def cotraining_config(folder, *overrides):
  """Co-training on 8 synthetic videos in 2 shards (one without frames, three dropped as too
  short) and on real labelled digits in 2 files, written into `folder`."""
  data = folder / "records"
  data.mkdir()
  shots = [[2, 3, 1], [4, 4, 4, 1], [], [1], [3, 0, 2, 5], [2, 2], [6, 1, 3], [1, 1, 1]]
  for shard in range(2):
    with tf.io.TFRecordWriter(str(data / f"videos-{shard:05d}-of-00002.tfrecord")) as writer:
      for i in range(shard, len(shots), 2):
        writer.write(synthetic_video(f"v{i}", shots[i], seed=i))
  for shard in range(2):
    digits_tfrecord(folder / f"digits-{shard}.tfrecord")
  return small_config("vivi_objects_cotrain", f"data.path={data}", "data.seed=11",
                      "data.short_videos=drop", f"data.labelled_images={folder / 'digits-*'}",
                      "model.num_supervised_classes=10", *overrides)


def test_resumed_input_starts_after_the_batches_its_replicas_trained_on(tmp_path):
  """Two input pipelines of two replicas each: every step takes two batches of each pipeline."""
  config = cotraining_config(tmp_path, "data.batch_size=8", "data.labelled_batch_size=4")
  for pipeline_id in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=4)
    straight = list(trainer.make_dataset_fn(config)(context).take(8).as_numpy_iterator())
    resumed = list(trainer.make_dataset_fn(config, step=3)(context).take(2).as_numpy_iterator())
    for (videos, images), (videos_again, images_again) in zip(straight[6:], resumed):
      for key in ("frames", "boxes", "shot_index", "frame_position"):
        np.testing.assert_array_equal(videos_again[key], videos[key], err_msg=key)
      for key in ("image", "label"):
        np.testing.assert_array_equal(images_again[key], images[key], err_msg=key)


def test_a_run_without_a_data_seed_records_one_that_restarts_keep(tmp_path):
  config = small_config("vivi")
  assert config.data.seed is None
  seeded = trainer.with_data_seed(config, str(tmp_path / "a"))
  other = trainer.with_data_seed(config, str(tmp_path / "b"))
  assert seeded.data.seed is not None and other.data.seed is not None
  assert seeded.data.seed != other.data.seed  # runs in other directories draw other batches
  assert trainer.with_data_seed(config, str(tmp_path / "a")).data.seed == seeded.data.seed
  configs.save_run_config(dataclasses.replace(config, data=dataclasses.replace(
      config.data, seed=5)), str(tmp_path))
  assert trainer.with_data_seed(config, str(tmp_path)).data.seed == 5
  assert trainer.with_data_seed(seeded, str(tmp_path)) is seeded  # a given seed is kept
  (tmp_path / "old").mkdir()
  configs.save_run_config(config, str(tmp_path / "old"))  # a run recorded without a seed
  assert trainer.with_data_seed(config, str(tmp_path / "old")).data.seed is None


@pytest.mark.slow
def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
  """Co-training with batch norm: 4 steps straight, against 2 steps, a stop, and 2 more.
  Weights, optimizer slots, batch-norm statistics and history rows are the same bit for bit:
  both inputs resume at their position, past videos the pipeline drops."""
  config = cotraining_config(tmp_path, "model.normalization=batch", "diagnostic.every_epochs=0")

  def run(model_dir, callbacks=()):
    tf_keras.utils.set_random_seed(0)
    trainer.train(config, str(model_dir), steps_per_epoch=1, callbacks=callbacks, verbose=0)

  run(tmp_path / "straight")
  with pytest.raises(Stopped):
    run(tmp_path / "resumed", [StopBefore(2)])
  assert committed_step(tmp_path / "resumed") == 2
  run(tmp_path / "resumed")

  straight, resumed = (checkpoint_values(tmp_path / d) for d in ("straight", "resumed"))
  assert straight.keys() == resumed.keys()
  assert any("moving_variance" in k for k in straight)
  assert any(k.startswith("optimizer/_variables/") for k in straight)  # momentum slots
  differences = {k: float(np.max(np.abs(resumed[k] - v))) for k, v in straight.items()
                 if not np.array_equal(resumed[k], v)}
  assert differences == {}
  rows = [(tmp_path / d / trainer.HISTORY_FILE).read_text().splitlines()
          for d in ("straight", "resumed")]
  assert len(rows[0]) == 5 and rows[1] == rows[0]


def free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def test_two_workers_on_loopback_train_like_one_process(tmp_path):
  single = last_json(run_main(str(tmp_path / "single"), 2))
  # Both runs start step 2 from the single run's first checkpoint: same weights, same momentum.
  multi = tmp_path / "multi"
  multi.mkdir()
  for path in glob.glob(str(tmp_path / "single" / "ckpt-1.*")):
    shutil.copy(path, multi)
  (multi / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n'
                                    'all_model_checkpoint_paths: "ckpt-1"\n')
  workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
  procs = []
  for index in range(2):
    tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
    procs.append(run_main(str(multi), 2, "multi_worker", env={"TF_CONFIG": json.dumps(tf_config)}))
  results = [finish(p) for p in procs]
  for logs, out in results:
    assert "Epoch 2/2" in out and "Epoch 1/2" not in out
    assert logs["iterations"] == 2
    # The same global batch split over two workers: the same loss and the same update.
    for key in ("total_loss", "frame_loss", "shot_loss", "object_loss"):
      np.testing.assert_allclose(logs[key], single[key], rtol=1e-4, err_msg=key)
    np.testing.assert_allclose(logs["stem_sum"], single["stem_sum"], rtol=1e-5)
  assert committed_step(multi) == 2  # written by the chief


def test_unknown_strategy_is_refused():
  with pytest.raises(ValueError, match="strategy must be one of"):
    trainer.build_strategy("parameter_server")


def test_trains_on_real_prepared_records(prepared_records, tmp_path):
  config = small_config("vivi_objects", f"data.path={prepared_records}", "data.batch_size=2",
                        "data.frames_per_shot=2", "data.max_objects=5", "data.seed=3",
                        "train.steps=2")
  model, history = trainer.train(config, str(tmp_path), steps_per_epoch=1, verbose=0)
  logs = history.history
  assert len(logs["total_loss"]) == 2 and all(np.isfinite(logs["total_loss"]))
  assert all(np.isfinite(logs["object_loss"]))
  assert 0 <= logs["object_nn_same_class"][-1] <= 1
  assert 0 <= logs["object_nn_same_class_other_shots"][-1] <= 1
  diagnostic = [json.loads(line) for line in open(tmp_path / trainer.DIAGNOSTIC_FILE)]
  assert [d["step"] for d in diagnostic] == [0, 1, 2]
  assert {d["frames"] for d in diagnostic} == {"training_sampler"}
  with open(tmp_path / trainer.HISTORY_FILE) as f:
    rows = list(csv.DictReader(f))
  np.testing.assert_allclose([float(r["total_loss"]) for r in rows], logs["total_loss"], rtol=1e-5)
  # The first step's terms, as logged, with their weights.
  initial = json.load(open(tmp_path / trainer.INITIAL_LOSSES_FILE))
  weights = losses.loss_weights(config.loss)
  assert set(initial) == {"frame_loss", "shot_loss", "object_loss"}
  for name, term in initial.items():
    np.testing.assert_allclose(term["value"], logs[name][0], rtol=1e-5)
    assert term["weight"] == weights[name]
    np.testing.assert_allclose(term["weighted"], weights[name] * logs[name][0], rtol=1e-6)
  saved = json.load(open(tmp_path / "config.json"))
  assert saved["name"] == "vivi_objects"
  # Which label space the boxes came from: an id in the records' manifest and in the run's
  # run_info.json, not a setting of its config.
  manifest = json.load(open(os.path.join(prepared_records, "manifest.json")))
  assert manifest["detector"]["label_space"] == "oidv4-mediapipe-23"
  assert json.load(open(tmp_path / "run_info.json"))["label_space"] == "oidv4-mediapipe-23"
  assert "label_space" not in saved["data"] and "paper_detector" not in saved["data"]
  assert glob.glob(str(tmp_path / "logs" / "train" / "events.*"))


def shard_of(records, video_id):
  for path in sorted(tf.io.gfile.glob(os.path.join(records, "*.tfrecord"))):
    for serialized in tf.data.TFRecordDataset(path):
      if schema.parse_video(serialized)[0][schema.VIDEO_ID].numpy().decode() == video_id:
        return path
  raise AssertionError(f"{video_id} is not in {records}")


@pytest.mark.parametrize("name", [n for n in configs.list_experiments() if "_3x" not in n])
def test_initial_weighted_terms_are_within_one_order_of_magnitude(name, prepared_records,
                                                                  teacher_dir):
  # A real batch (bikes.mp4, six shots, with detections) at initialisation: no term of the
  # objective may dwarf another by more than 10× (the 602-class sigmoid CE summed over classes
  # did by ~3000×). The shot term is left out: it is logged as InfoNCE minus its chance value,
  # so it starts at 0 whatever its weight.
  config = small_config(name, f"data.path={shard_of(prepared_records, 'bikes.mp4')}",
                        "data.batch_size=2", "data.frames_per_shot=2", "data.seed=0",
                        "data.image_size=64", "model.num_box_classes=602",
                        "model.num_supervised_classes=1000", "model.num_teacher_classes=6")
  tf_keras.utils.set_random_seed(0)
  teacher = trainer.load_teacher(teacher_dir) if config.loss.distillation else None
  model = trainer.build_model(config, teacher=teacher)
  videos = next(iter(pipeline.build_dataset(config.data, raw_frames=config.loss.detector_crops)))
  labelled = labelled_batch(config) if config.loss.supervised else None
  _, values = model.compute_losses(videos, labelled, training=True)
  weighted = {n: w * float(values[n]) for n, w in losses.loss_weights(config.loss).items()
              if n in values and n != "shot_loss"}
  assert all(v > 0 for v in weighted.values()), weighted
  assert max(weighted.values()) <= 10 * min(weighted.values()), weighted


def test_diagnostic_frequency_is_configurable_and_can_be_off(prepared_records, tmp_path):
  base = [f"data.path={prepared_records}", "data.batch_size=2", "data.frames_per_shot=2",
          "data.seed=3", "train.steps=2", "diagnostic.videos_per_batch=2",
          "diagnostic.num_batches=1"]
  every_other = small_config("vivi", *base, "diagnostic.every_epochs=2")
  _, history = trainer.train(every_other, str(tmp_path / "a"), steps_per_epoch=1, verbose=0)
  diagnostic = [json.loads(line) for line in open(tmp_path / "a" / trainer.DIAGNOSTIC_FILE)]
  assert [d["step"] for d in diagnostic] == [0, 2]
  assert "object_nn_same_class" in history.history
  off = small_config("vivi", *base, "diagnostic.every_epochs=0")
  _, history = trainer.train(off, str(tmp_path / "b"), steps_per_epoch=1, verbose=0)
  assert not (tmp_path / "b" / trainer.DIAGNOSTIC_FILE).exists()
  assert "object_nn_same_class" not in history.history
  # The TensorBoard frames come from one video, not a whole training batch.
  assert trainer.summary_batch(off)["frames"].shape[0] == 1
  with pytest.raises(ValueError, match=r"DiagnosticConfig.every_epochs must be >= 0, got -1\."):
    small_config("vivi", "diagnostic.every_epochs=-1")


def test_run_info_holds_the_label_space_id_of_an_old_manifest(tmp_path):
  records = tmp_path / "records"
  records.mkdir()
  # A manifest of an earlier version: the label space in words.
  (records / "manifest.json").write_text(json.dumps({"detector": {
      "spec": "https://example.org/det", "label_space": "Open Images V4, 600 classes (TF-Hub "
      "openimages_v4/ssd/mobilenet_v2, the paper's detector)"}}))
  config = small_config("vivi_objects", f"data.path={records}")
  info = trainer.run_info(config)
  assert info["label_space"] == "oidv4-600"
  assert "the paper's detector" in info["label_space_description"]
  no_manifest = small_config("vivi_objects", f"data.path={tmp_path / 'none'}")
  assert trainer.detections_label_space(no_manifest.data) == "unknown"
  inline = small_config("vivi_objects", "data.inline_detection=true", "data.path=x")
  assert trainer.detections_label_space(inline.data) == "oidv4-mediapipe-23"
