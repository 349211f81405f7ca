"""The Beam pipeline as a cluster runs it: workers with nothing but the staged package."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
import tensorflow as tf

from keras_vivi.data import prepare, sample_videos, schema

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What a wheel is built from (copied, so the build writes nothing into the checkout).
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "keras_vivi", "hub_export")
CONFIG = dict(videos_per_shard=1, frame_short_side=96)

WORKER_SCRIPT = """
import json, sys
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
import keras_vivi
from keras_vivi.data import beam_pipeline, prepare
video, out = sys.argv[1:3]
options = PipelineOptions(direct_running_mode="multi_processing", direct_num_workers=2)
with beam.Pipeline(options=options) as pipeline:
  _ = (pipeline | beam.Create(list(range(4))) | beam.Reshuffle()
       | beam.Map(lambda _: __import__("keras_vivi").__file__)
       | beam.io.WriteToText(out + "/imported_from"))
manifest = beam_pipeline.run([video], out + "/prepared", prepare.PrepareConfig(**json.loads(sys.argv[3])),
                             pipeline_options=options)
print(json.dumps({"main": keras_vivi.__file__, "counts": manifest["counts"]}))
"""


def _records(folder):
  return sorted(serialized.numpy() for path in tf.io.gfile.glob(os.path.join(folder, schema.SHARD_GLOB))
                for serialized in tf.data.TFRecordDataset(path))


def test_each_worker_process_gets_its_share_of_the_cores():
  """DirectRunner processes share this machine; Dataflow runs one Python process per core."""
  from apache_beam.options.pipeline_options import PipelineOptions
  from keras_vivi.data import beam_pipeline
  cores = prepare.available_cores()
  two = PipelineOptions(direct_running_mode="multi_processing", direct_num_workers=2)
  assert beam_pipeline._processes_per_machine(two) == 2
  assert beam_pipeline._processes_per_machine(PipelineOptions()) == 1
  assert beam_pipeline._processes_per_machine(PipelineOptions(runner="DataflowRunner")) is None
  config = prepare.PrepareConfig()
  assert prepare.threads_per_worker(config, workers=2) == max(1, cores // 2)
  assert prepare.threads_per_worker(config, workers=cores) == 1
  assert prepare.threads_per_worker(prepare.PrepareConfig(threads=3), workers=cores) == 3


def test_detector_descriptions_of_the_workers_are_merged():
  """Each worker describes its detector after its videos: a SavedModel detector knows the labels it
  met, so the manifest's label map is the union of theirs."""
  from keras_vivi.data import beam_pipeline
  a = {"detector": {"spec": "d"}, "label_map": {"3": "Cat", "1": "Person"}}
  b = {"detector": {"spec": "d"}, "label_map": {"2": "Car", "1": "Person"}}
  assert beam_pipeline.merge_descriptions([None, a, b]) == {
      "detector": {"spec": "d"}, "label_map": {"1": "Person", "2": "Car", "3": "Cat"}}
  assert beam_pipeline.merge_descriptions([]) is None


@pytest.mark.slow
def test_workers_built_only_from_the_staged_wheel_prepare_the_same_records(tmp_path):
  """The README's recipe: `pip wheel --no-deps -w dist .`, staged as --extra_package. Here a fresh
  virtualenv gets that wheel alone (`--no-deps --no-index`); its dependencies come from a layer of
  installed packages, as in a worker container, which holds no keras_vivi. The pipeline's worker
  processes import keras_vivi from the wheel and write the local job's records."""
  source = tmp_path / "source"
  source.mkdir()
  for name in SOURCES:
    path = os.path.join(REPO, name)
    (shutil.copytree if os.path.isdir(path) else shutil.copy)(path, source / name)
  dist = tmp_path / "dist"
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                  "-w", str(dist), str(source)], check=True)
  (wheel,) = dist.glob("keras_vivi-*.whl")
  venv = tmp_path / "worker"
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
  python = str(venv / "bin" / "python")
  site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        check=True, capture_output=True, text=True).stdout.strip()
  # The dependency layer: a directory on the path, whose own .pth files (this checkout's editable
  # install among them) are not run.
  with open(os.path.join(site, "dependencies.pth"), "w") as f:
    f.write(sysconfig.get_paths()["purelib"] + "\n")
  subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                 check=True)
  video = sample_videos.sample_video_path("carphone_pristine.mp4")
  out = tmp_path / "out"
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  run = subprocess.run([python, "-c", WORKER_SCRIPT, str(video), str(out), json.dumps(CONFIG)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
  assert run.returncode == 0, run.stderr[-3000:]
  result = json.loads(run.stdout.strip().splitlines()[-1])
  imported = {line.strip() for path in out.glob("imported_from*") for line in path.open()}
  assert imported and all(p.startswith(site) for p in imported | {result["main"]}), (imported, result)
  assert result["counts"]["videos"] == 1 and result["counts"]["skipped"] == 0
  reference = tmp_path / "reference"
  prepare.prepare([str(video)], str(reference), prepare.PrepareConfig(**CONFIG), progress=False)
  assert _records(str(out / "prepared")) == _records(str(reference))
