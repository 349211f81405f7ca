"""The preparation job on the real sample videos with the real MediaPipe detector."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image
import tensorflow as tf

from keras_vivi.data import manifest as manifest_lib
from keras_vivi.data import prepare, records, sample_videos, sampling, schema
from tests.helpers.videos import first_half, remux

SMALL = dict(videos_per_shard=1, frame_short_side=96)


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
  """The four sample videos, an empty file, a text file and two halves of bikes.mp4: one with its
  index up front (decodable up to the cut) and one whose index was cut off (unreadable)."""
  folder = tmp_path_factory.mktemp("videos")
  for name, path in sample_videos.sample_video_paths().items():
    shutil.copy(path, folder / name)
  (folder / "empty.mp4").write_bytes(b"")
  (folder / "notes.mp4").write_text("not a video\n")
  bikes = sample_videos.sample_video_path("bikes.mp4")
  first_half(remux(bikes, tmp_path_factory.mktemp("remux") / "fast.mp4", movflags="faststart"),
             folder / "bikes_truncated.mp4")
  first_half(bikes, folder / "bikes_no_index.mp4")
  return folder


@pytest.fixture(scope="module")
def prepared(video_dir, tmp_path_factory, mediapipe_detector):
  out = tmp_path_factory.mktemp("prepared")
  manifest = prepare.prepare(str(video_dir), str(out), prepare.PrepareConfig(**SMALL),
                             progress=False)
  return out, manifest


def read_videos(out):
  videos = {}
  for serialized in tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(str(out / schema.SHARD_GLOB)))):
    context, seq = schema.parse_video(serialized)
    videos[context[schema.VIDEO_ID].numpy().decode()] = (context, seq)
  return videos


def test_bad_files_are_skipped_with_reasons_and_the_rest_is_kept(prepared):
  out, manifest = prepared
  skipped = {os.path.basename(s["source"]): s["reason"] for s in manifest["skipped"]}
  assert set(skipped) == {"empty.mp4", "notes.mp4", "bikes_no_index.mp4"}
  assert all("VideoDecodeError" in r for r in skipped.values())
  videos = read_videos(out)
  assert set(videos) == {"bigbuckbunny.mp4", "bikes.mp4", "carphone_distorted.mp4",
                         "carphone_pristine.mp4", "bikes_truncated.mp4"}
  assert manifest["counts"]["videos"] == 5 and manifest["counts"]["skipped"] == 3
  assert "bikes_truncated.mp4" in manifest["flagged"]["truncated"]
  assert set(manifest["flagged"]["single_shot"]) >= {"bigbuckbunny.mp4", "carphone_pristine.mp4"}


def test_records_hold_shots_frames_at_1hz_and_detections(prepared):
  out, manifest = prepared
  context, seq = read_videos(out)["bikes.mp4"]
  # bikes.mp4: 250 frames at 25 fps, six shots (tests/data/test_shots.py has the cuts).
  assert len(context[schema.SHOT_START].numpy()) == 6
  times = seq[schema.FRAME_TIME].numpy()
  shots = seq[schema.FRAME_SHOT].numpy()
  assert np.all(np.diff(times) > 0) and np.all(np.diff(shots) >= 0)
  starts, ends = context[schema.SHOT_START].numpy(), context[schema.SHOT_END].numpy()
  assert np.all((times >= starts[shots] - 1e-6) & (times < ends[shots] + 1e-6))
  # At 1 Hz a 10 s video gives about 10 frames, at least one per shot.
  assert 6 <= len(times) <= 12 and set(shots) == set(range(6))
  frame = tf.io.decode_jpeg(seq[schema.FRAME_JPEG][0]).numpy()
  assert min(frame.shape[:2]) == 96
  scores = seq[schema.OBJECT_SCORES].flat_values.numpy()
  counts = seq[schema.OBJECT_SCORES].row_lengths().numpy()
  assert np.all(scores >= 0.05) and np.all(counts <= 5)
  boxes = seq[schema.OBJECT_BOXES].flat_values.numpy().reshape(-1, 4)
  assert np.all((boxes >= 0) & (boxes <= 1)) and np.all(boxes[:, 2:] >= boxes[:, :2])
  names = set(seq[schema.OBJECT_CLASS_NAMES].flat_values.numpy())
  assert names & {b"Car", b"Bicycle", b"Person", b"Vehicle"}


def test_manifest_counts_match_the_records(prepared):
  out, manifest = prepared
  videos = read_videos(out)
  frames = sum(len(seq[schema.FRAME_TIME]) for _, seq in videos.values())
  objects = sum(int(seq[schema.OBJECT_SCORES].flat_values.shape[0]) for _, seq in videos.values())
  shots = sum(len(ctx[schema.SHOT_START]) for ctx, _ in videos.values())
  assert manifest["counts"] == {"videos": 5, "skipped": 3, "shots": shots, "frames": frames,
                                "objects": objects}
  assert sum(manifest["class_histogram"].values()) == objects
  assert sum(manifest["score_histogram"]["counts"]) == objects
  assert manifest["detector"]["spec"] == "mediapipe_oidv4"
  assert manifest["label_map"]["122"] == "Cat"
  on_disk = json.loads((out / "manifest.json").read_text())
  assert on_disk["counts"] == manifest["counts"]
  for png in ("class_histogram.png", "score_histogram.png", "contact_sheet.png"):
    assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_contact_sheet_shows_one_thumbnail_per_shot(prepared, tmp_path):
  out, _ = prepared
  records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(str(out / schema.SHARD_GLOB))))
  sheet = manifest_lib.contact_sheet(records.as_numpy_iterator(), str(tmp_path / "sheet.png"))
  videos = read_videos(out)
  shown = sheet.info["thumbnails"]
  assert len(shown["bikes.mp4"]) == 6  # bikes.mp4 has six shots
  for video_id, frames in shown.items():
    context, seq = videos[video_id]
    assert len(frames) == len(context[schema.SHOT_START].numpy())
    shots = seq[schema.FRAME_SHOT].numpy()
    assert list(shots[frames]) == sorted(set(shots))
  # The sheet prepare wrote is this one.
  assert Image.open(out / "contact_sheet.png").size == sheet.size


def test_resuming_with_other_videos_is_refused(prepared, video_dir):
  out, _ = prepared
  with pytest.raises(ValueError, match="other videos or settings"):
    prepare.prepare([str(video_dir / "bikes.mp4")], str(out), prepare.PrepareConfig(**SMALL),
                    progress=False)


def shard_bytes(out):
  return {os.path.basename(p): open(p, "rb").read()
          for p in tf.io.gfile.glob(str(out / schema.SHARD_GLOB))}


def cli(video_dir, out, *extra):
  return [sys.executable, "-m", "keras_vivi.cli.prepare", f"--videos={video_dir}",
          f"--output={out}", "--videos_per_shard=1", "--frame_short_side=96", *extra]


def test_killed_run_resumes_without_loss_or_duplicates(prepared, video_dir, tmp_path):
  reference, _ = prepared
  # Killed as soon as its first shard is complete, in the middle of the job. On a machine so
  # loaded that the run finishes before this process sees that shard, it is tried again in a
  # fresh directory: the test is about what a killed run committed.
  for attempt in range(3):
    out = tmp_path / f"killed{attempt}"
    proc = subprocess.Popen(cli(video_dir, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while (not tf.io.gfile.glob(str(out / schema.SHARD_GLOB)) and proc.poll() is None
           and time.time() < deadline):
      time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = shard_bytes(out)
    if len(partial) < 8 and not (out / "manifest.json").exists():
      break
  assert 1 <= len(partial) < 8 and not (out / "manifest.json").exists()
  done = subprocess.run(cli(video_dir, out), capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "Prepared 5 videos" in done.stdout and "Skipped 3 file(s)" in done.stdout
  # Which label space the boxes are in, said plainly (the default is not the paper's detector).
  assert ("Labels: oidv4-mediapipe-23, MediaPipe OIDv4 subset: 23 of the 600 Open Images V4 "
          "classes (not the paper's detector).") in done.stdout
  resumed = shard_bytes(out)
  # Shards finished before the kill are kept as they were, and the result equals a clean run.
  assert all(resumed[name] == data for name, data in partial.items())
  assert resumed == shard_bytes(reference)
  assert not tf.io.gfile.glob(str(out / "*.tmp"))


def test_parallel_workers_write_the_same_records(prepared, video_dir, tmp_path):
  reference, _ = prepared
  prepare.prepare(str(video_dir), str(tmp_path), prepare.PrepareConfig(**SMALL, workers=2),
                  progress=False)
  assert shard_bytes(tmp_path) == shard_bytes(reference)
  # The number of workers is no part of the plan: a finished run resumed with others is a no-op.
  before = shard_bytes(reference)
  prepare.prepare(str(video_dir), str(reference), prepare.PrepareConfig(**SMALL, workers=2),
                  progress=False)
  assert shard_bytes(reference) == before


def records_by_video(folder, pattern=schema.SHARD_GLOB):
  out = {}
  for path in tf.io.gfile.glob(os.path.join(str(folder), pattern)):
    for serialized in tf.data.TFRecordDataset(path):
      context, _ = schema.parse_video(serialized)
      out[context[schema.VIDEO_ID].numpy().decode()] = serialized.numpy()
  return out


def test_records_equal_the_steps_run_one_after_the_other(prepared, video_dir, mediapipe_detector):
  """Overlapped decoding, detection and writing change nothing: each record is byte for byte what
  decoding, sampling, detecting and encoding a video step by step gives."""
  out, _ = prepared
  written = records_by_video(out)
  config = prepare.PrepareConfig(**SMALL)
  for video_id in ("bikes.mp4", "bikes_truncated.mp4", "carphone_pristine.mp4"):
    path = str(video_dir / video_id)
    samples = sampling.decode_and_sample(path, short_side=96, threads=prepare.DECODER_THREADS)
    detections = prepare.detect_in_batches(mediapipe_detector, samples.frames, 16)
    example = records.video_example(
        video_id=video_id, source=path, duration=samples.info.duration, fps=samples.info.fps,
        truncated=samples.truncated, shot_starts=[s.start_time for s in samples.shots],
        shot_ends=[s.end_time for s in samples.shots],
        jpegs=[records.encode_jpeg(f, config.jpeg_quality) for f in samples.frames],
        shot_index=samples.shot_ids, timestamps=samples.times, frame_index=samples.frame_indices,
        detections=detections, num_detections=detections["num_detections"])
    assert written[video_id] == example.SerializeToString(deterministic=True), video_id


def test_only_its_own_temporary_files_are_removed(prepared):
  out, manifest = prepared
  (out / "notes.tmp").write_text("the user's own file")
  (out / "backup").mkdir(exist_ok=True)
  (out / "backup" / "old.tfrecord.tmp").write_text("also the user's")
  stale = out / (manifest["shards"][0] + ".tmp")  # as a killed run leaves it
  stale.write_bytes(b"partial")
  prepare.prepare(manifest_sources(out), str(out), prepare.PrepareConfig(**SMALL), progress=False)
  assert (out / "notes.tmp").read_text() == "the user's own file"
  assert (out / "backup" / "old.tfrecord.tmp").read_text() == "also the user's"
  assert not stale.exists()


def manifest_sources(out):
  with open(out / "plan.json") as f:
    return [v["source"] for v in json.load(f)["videos"]]


def test_a_hanging_decode_is_skipped_after_the_time_limit(tmp_path):
  """A video whose input stalls (a pipe that sends part of a file, then nothing, like a stalled
  network mount) is skipped and listed once its decoding passes --time_limit; the job goes on."""
  bikes = sample_videos.sample_video_path("bikes.mp4")
  data = remux(bikes, tmp_path / "fast.mp4", movflags="faststart").read_bytes()
  folder = tmp_path / "videos"
  folder.mkdir()
  stalled = folder / "stalled.mp4"
  os.mkfifo(stalled)
  shutil.copy(sample_videos.sample_video_path("carphone_pristine.mp4"), folder / "carphone.mp4")
  release = threading.Event()

  def send_a_third_then_stall():
    try:
      with open(stalled, "wb") as pipe:
        pipe.write(data[:len(data) // 3])
        release.wait(600)
    except OSError:  # the reader gave up
      pass

  threading.Thread(target=send_a_third_then_stall, daemon=True).start()
  try:
    manifest = prepare.prepare([str(stalled), str(folder / "carphone.mp4")], str(tmp_path / "out"),
                               prepare.PrepareConfig(**SMALL, time_limit=3.0), progress=False)
  finally:
    release.set()
  assert manifest["counts"]["videos"] == 1 and manifest["counts"]["skipped"] == 1
  (skipped,) = manifest["skipped"]
  assert skipped["source"] == str(stalled)
  assert "time limit of 3 s" in skipped["reason"]
  assert set(records_by_video(tmp_path / "out")) == {"carphone.mp4"}


def test_beam_on_two_worker_processes_writes_the_same_records(prepared, video_dir, tmp_path):
  """DirectRunner in multi_processing mode: pickled DoFns, a detector per worker process, the stats
  merged by the CombineFn; the records are byte for byte those of the local job."""
  from apache_beam.options.pipeline_options import PipelineOptions
  from keras_vivi.data import beam_pipeline
  reference, manifest = prepared
  options = PipelineOptions(direct_running_mode="multi_processing", direct_num_workers=2)
  beam_manifest = beam_pipeline.run(str(video_dir), str(tmp_path), prepare.PrepareConfig(**SMALL),
                                    num_shards=2, pipeline_options=options)
  assert len(tf.io.gfile.glob(str(tmp_path / schema.SHARD_GLOB))) == 2
  assert records_by_video(tmp_path) == records_by_video(reference)
  for key in ("counts", "class_histogram", "score_histogram", "detector", "label_map"):
    assert beam_manifest[key] == manifest[key], key
  # Aggregates only: the lists of the local manifest are counted, the rows are in sharded files.
  assert beam_manifest["flagged"] == {flag: len(ids) for flag, ids in manifest["flagged"].items()}
  assert (beam_manifest["skipped"], beam_manifest["videos"]) == (
      len(manifest["skipped"]), len(manifest["videos"]))
  assert beam_manifest["rows"] == beam_pipeline.ROWS_GLOB
  assert beam_rows(tmp_path) == local_rows(reference)


def local_rows(out):
  """The local job's per-video stats (its shards' `.stats.json`), by source."""
  rows = {}
  for path in tf.io.gfile.glob(str(out / (schema.SHARD_GLOB + ".stats.json"))):
    rows.update((s["source"], s) for s in json.loads(tf.io.gfile.GFile(path).read()))
  return rows


def beam_rows(out):
  from keras_vivi.data import beam_pipeline
  paths = tf.io.gfile.glob(str(out / beam_pipeline.ROWS_GLOB))
  rows = [json.loads(line) for path in paths for line in tf.io.gfile.GFile(path)]
  assert len(paths) == 2 and len(rows) == len({r["source"] for r in rows})
  return {r["source"]: r for r in rows}


def _with_source(serialized, source):
  example = tf.train.SequenceExample.FromString(serialized)
  example.context.feature[schema.VIDEO_SOURCE].bytes_list.value[:] = [source.encode()]
  return example.SerializeToString(deterministic=True)


def test_beam_prepares_from_gcs_to_gcs_on_two_worker_processes(prepared, video_dir, tmp_path):
  """Videos in a bucket, outputs to the bucket, through a real GCS API (the emulator) and Beam's
  multi-process DirectRunner: the records are the local job's (but for the source they name), the
  manifest and row files are written beside them, and a rerun with other settings is refused."""
  from apache_beam.options.pipeline_options import PipelineOptions
  from google.cloud import storage
  from keras_vivi.data import beam_pipeline
  from tests.helpers.gcs_emulator import gcs_emulator
  reference, manifest = prepared
  with gcs_emulator("vivi-test"):
    bucket = storage.Client().bucket("vivi-test")
    for path in sorted(video_dir.iterdir()):
      bucket.blob(f"videos/{path.name}").upload_from_filename(str(path))
    options = PipelineOptions(direct_running_mode="multi_processing", direct_num_workers=2)
    gcs_manifest = beam_pipeline.run("gs://vivi-test/videos", "gs://vivi-test/prepared",
                                     prepare.PrepareConfig(**SMALL), num_shards=2,
                                     pipeline_options=options)
    written = {b.name: b for b in bucket.list_blobs(prefix="prepared/")}
    for name, blob in written.items():
      blob.download_to_filename(str(tmp_path / os.path.basename(name)))
    with pytest.raises(ValueError, match=r"other videos or settings \(config.fps: 1.0 → 2.0"):
      beam_pipeline.run("gs://vivi-test/videos", "gs://vivi-test/prepared",
                        prepare.PrepareConfig(**SMALL, fps=2.0), num_shards=2,
                        pipeline_options=options)
    assert {b.name for b in bucket.list_blobs(prefix="prepared/")} == set(written)
  assert sorted(os.path.basename(n) for n in written) == sorted([
      "beam_plan.json", "class_histogram.png", "contact_sheet.png", "manifest.json",
      "score_histogram.png", "video_rows-00000-of-00002.jsonl", "video_rows-00001-of-00002.jsonl",
      "videos-00000-of-00002.tfrecord", "videos-00001-of-00002.tfrecord"])
  local = records_by_video(reference)
  remote = records_by_video(tmp_path)
  assert sorted(remote) == sorted(local)
  for video_id, serialized in remote.items():
    assert tf.train.SequenceExample.FromString(serialized).context.feature[
        schema.VIDEO_SOURCE].bytes_list.value == [f"gs://vivi-test/videos/{video_id}".encode()]
    assert _with_source(serialized, "") == _with_source(local[video_id], ""), video_id
  for key in ("counts", "class_histogram", "score_histogram", "detector", "label_map"):
    assert gcs_manifest[key] == manifest[key], key
  rows = beam_rows(tmp_path)
  assert sorted(rows) == sorted(f"gs://vivi-test/videos/{os.path.basename(s)}"
                                for s in local_rows(reference))
  assert sorted((os.path.basename(r["source"]), r["reason"].replace(r["source"], "VIDEO"))
                for r in rows.values() if "reason" in r) == sorted(
      (os.path.basename(s["source"]), s["reason"].replace(s["source"], "VIDEO"))
      for s in manifest["skipped"])


@pytest.mark.parametrize("first", ["empty.mp4", "carphone_pristine.mp4"])
def test_a_detector_that_fails_to_load_stops_the_job_before_any_shard(video_dir, tmp_path, first):
  # The detector loads while the first video decodes; a first shard of bad files only must not be
  # committed without it either.
  shutil.copy(video_dir / first, tmp_path / "a.mp4")
  shutil.copy(video_dir / "carphone_pristine.mp4", tmp_path / "b.mp4")
  videos = [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]
  out = tmp_path / "out"
  missing = str(tmp_path / "no_such_model.tflite")
  with pytest.raises(Exception, match="no_such_model") as error:
    prepare.prepare(videos, str(out), prepare.PrepareConfig(detector=missing, **SMALL),
                    progress=False)
  assert "_DetectorFailed" not in repr(error.value)
  assert sorted(os.listdir(out)) == [prepare.PLAN_FILE]


def test_videos_are_found_on_any_gfile_filesystem():
  """ram:// stands for gs://: folders are listed recursively, `**` spans folders, hidden files are
  left out, and ids are relative to the common folder, scheme kept apart."""
  for name in ("a.mp4", "sub/b.mp4", "sub/deeper/c.mkv", "sub/.hidden.mp4"):
    tf.io.gfile.makedirs(os.path.dirname(f"ram://found/videos/{name}"))
    with tf.io.gfile.GFile(f"ram://found/videos/{name}", "w") as f:
      f.write("x")
  every = ["ram://found/videos/a.mp4", "ram://found/videos/sub/b.mp4",
           "ram://found/videos/sub/deeper/c.mkv"]
  assert prepare.find_videos("ram://found/videos") == every
  assert prepare.find_videos("ram://found/videos/") == every
  assert prepare.find_videos("ram://found/videos/**/*.mp4") == every[:2]
  assert prepare.find_videos("ram://found/videos/sub/*") == ["ram://found/videos/sub/b.mp4"]
  with pytest.raises(FileNotFoundError, match="No files found at 'ram://found/none/\\*.mp4'"):
    prepare.find_videos("ram://found/none/*.mp4")
  assert prepare.video_ids(every) == ["a.mp4", "sub/b.mp4", "sub/deeper/c.mkv"]
  assert prepare.video_ids(["gs://b/x/1.mp4", "gs://b/y/2.mp4"]) == ["x/1.mp4", "y/2.mp4"]
  with pytest.raises(ValueError, match="one filesystem"):
    prepare.video_ids(["gs://b/1.mp4", "/local/2.mp4"])


def test_a_videos_list_names_the_inputs(tmp_path):
  listing = "ram://lists/videos.txt"
  with tf.io.gfile.GFile(listing, "w") as f:
    f.write("# the sample videos\ngs://b/v/2.mp4\n\n  gs://b/v/1.mp4\ngs://b/v/2.mp4\n")
  assert prepare.list_inputs(videos_list=listing) == ["gs://b/v/1.mp4", "gs://b/v/2.mp4"]
  with tf.io.gfile.GFile("ram://lists/empty.txt", "w") as f:
    f.write("# nothing\n")
  with pytest.raises(ValueError, match="--videos_list='ram://lists/empty.txt' lists no video"):
    prepare.list_inputs(videos_list="ram://lists/empty.txt")
  with pytest.raises(ValueError, match="exactly one of videos"):
    prepare.list_inputs("a", listing)


@pytest.mark.parametrize("videos, skipped, share, fails", [
    (3, 1, 0.5, False), (1, 3, 0.5, True), (0, 2, 1.0, True), (2, 2, 0.5, False), (1, 2, 1.0, False)])
def test_too_many_skipped_videos_fail_the_run(videos, skipped, share, fails):
  manifest = {"counts": {"videos": videos, "skipped": skipped},
              "skipped": [{"source": f"/v/{i}.mp4", "reason": "VideoDecodeError: bad"}
                          for i in range(skipped)]}
  config = prepare.PrepareConfig(max_skipped_share=share)
  if not fails:
    prepare.check_skipped(manifest, config, "out")
    return
  with pytest.raises(prepare.TooManySkipped, match=rf"{skipped} of {videos + skipped} videos were "
                     r"skipped \(first: /v/0.mp4: VideoDecodeError: bad"):
    prepare.check_skipped(manifest, config, "out")


def test_remote_videos_are_prepared_like_local_ones_and_all_skipped_fails(prepared, video_dir,
                                                                            tmp_path):
  """Inputs on another filesystem (ram:// for gs://) decode from a bounded local copy: the record
  is the local one but for its source. A run that skips every video fails, its manifest kept."""
  reference, _ = prepared
  for name in ("carphone_pristine.mp4", "notes.mp4"):
    tf.io.gfile.copy(str(video_dir / name), f"ram://remote_videos/{name}", overwrite=True)
  manifest = prepare.prepare("ram://remote_videos", str(tmp_path / "out"),
                             prepare.PrepareConfig(**SMALL), progress=False)
  assert manifest["counts"]["videos"] == 1
  ((source, reason),) = [(s["source"], s["reason"]) for s in manifest["skipped"]]
  assert source == "ram://remote_videos/notes.mp4" and "keras_vivi_copy" not in reason
  (serialized,) = records_by_video(tmp_path / "out").values()
  assert _with_source(serialized, "") == _with_source(
      records_by_video(reference)["carphone_pristine.mp4"], "")
  with pytest.raises(prepare.TooManySkipped, match="1 of 1 videos were skipped"):
    prepare.prepare(["ram://remote_videos/notes.mp4"], str(tmp_path / "bad"),
                    prepare.PrepareConfig(**SMALL), progress=False)
  assert json.loads((tmp_path / "bad" / "manifest.json").read_text())["counts"]["skipped"] == 1
