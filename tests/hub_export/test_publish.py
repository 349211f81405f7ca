"""`vivi-export --publish`, then `load_feature_extractor(name)` in a fresh process (cache only)."""

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import types

from absl import app
from absl import flags
import numpy as np
import pytest
import tensorflow_hub as hub
import tf_keras

import hub_export
from hub_export import cli
from hub_export import publish as publish_lib
from keras_vivi import configs
from keras_vivi import models
from keras_vivi.zoo import loader
from keras_vivi.zoo.presets import Preset
from tests.helpers.archives import sha256_of
from tests.helpers.cli import REPO
from tests.helpers.images import ramp_images
from tests.helpers.training import write_run

TINY = ["model.depth=14", "data.image_size=32"]
MANIFEST = {  # the keys of keras_vivi.data.manifest.build_manifest
    "counts": {"videos": 3, "skipped": 1, "shots": 9, "frames": 40, "objects": 57},
    "shards": ["shard-00000-of-00002.tfrecord", "shard-00001-of-00002.tfrecord"],
    "detector": {"spec": "mediapipe_oidv4", "name": "mediapipe_oidv4_ssd", "score_threshold": 0.05},
    "label_map": {}, "class_histogram": {"Cat": 30, "Person": 20, "Car": 7},
    "flagged": {"single_shot": ["v2"], "no_detections": [], "truncated": []},
}
# The 19 VTAB-1k tasks by group, as the VTAB paper lists them.
VTAB_NATURAL = ["caltech101", "cifar100", "dtd", "oxford_flowers102", "oxford_iiit_pet",
                "sun397", "svhn"]
VTAB_SPECIALIZED = ["patch_camelyon", "eurosat", "resisc45", "diabetic_retinopathy"]
VTAB_STRUCTURED = ["clevr_count", "clevr_distance", "dmlab", "kitti_distance",
                   "dsprites_location", "dsprites_orientation", "smallnorb_azimuth",
                   "smallnorb_elevation"]
VTAB_19 = VTAB_NATURAL + VTAB_SPECIALIZED + VTAB_STRUCTURED
RESULTS = {  # as vivi-vtab writes it (keras_vivi.evaluation.vtab.write_results)
    "hub": "exports/tiny", "config": {},
    "tasks": {"cifar100": {"group": "natural", "test_accuracy": 0.5, "selected": {}, "sweep": []},
              "dsprites_orientation": {"group": "structured", "test_accuracy": 0.25,
                                       "selected": {}, "sweep": []}},
    "missing": {"resisc45": "manual download"},
    "means": {"natural": 0.5, "specialized": None, "structured": 0.25, "local": None,
              "overall": 0.375}}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """A small vivi_objects run (ResNet-14, 32² images) on records with a manifest."""
  data = tmp_path_factory.mktemp("records")
  (data / "manifest.json").write_text(json.dumps(MANIFEST))
  config = configs.apply_overrides(configs.get_experiment("vivi_objects"),
                                   TINY + [f"data.path={data}"])
  model_dir = tmp_path_factory.mktemp("tiny_run")
  tf_keras.utils.set_random_seed(2)
  write_run(model_dir, config, models.build_backbone(config.model))
  direct = str(tmp_path_factory.mktemp("direct") / "export")
  hub_export.export_checkpoint(str(model_dir), direct)
  images = ramp_images(2, 40, 48)
  return types.SimpleNamespace(model_dir=str(model_dir), config=config, images=images,
                               reference=hub.load(direct)(images).numpy())


def run_main(*argv):
  """`vivi-export ARGV` in this process (spares a TensorFlow start-up); returns its stdout."""
  out = io.StringIO()
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS(["vivi-export", *argv])
    with contextlib.redirect_stdout(out):
      cli.main(["vivi-export"])
  finally:
    flags.FLAGS.unparse_flags()
  return out.getvalue()


@pytest.fixture(scope="module")
def published(tiny_run, tmp_path_factory):
  """`vivi-export --model_dir=RUN --publish=ZOO --name=tiny_vivi --version=2 --results=…`."""
  root = tmp_path_factory.mktemp("publish")
  results = root / "results.json"
  results.write_text(json.dumps(RESULTS))
  zoo = root / "zoo"
  stdout = run_main(f"--model_dir={tiny_run.model_dir}", f"--publish={zoo}", "--name=tiny_vivi",
                    "--version=2", f"--results={results}")
  directory = zoo / "tiny_vivi" / "2"
  return types.SimpleNamespace(zoo=str(zoo), directory=str(directory), stdout=stdout,
                               archive=str(directory / "tiny_vivi-2.tar.gz"),
                               saved_model=str(directory / "saved_model"))


def test_layout_archive_and_checksum(published):
  assert sorted(os.listdir(published.directory)) == [
      "MODEL_CARD.md", "preset.json", "saved_model", "tiny_vivi-2.tar.gz",
      "tiny_vivi-2.tar.gz.sha256"]
  assert not [f for f in os.listdir(published.zoo) if f.startswith(".export-")]
  digest = sha256_of(published.archive)
  with open(published.archive + ".sha256") as f:
    assert f.read() == f"{digest}  tiny_vivi-2.tar.gz\n"  # `sha256sum -c` format
  on_disk = {}
  for root, dirs, files in os.walk(published.saved_model):
    for name in dirs + files:
      path = os.path.join(root, name)
      on_disk[os.path.relpath(path, published.saved_model)] = path
  with tarfile.open(published.archive) as tar:
    members = tar.getmembers()
    assert {m.name for m in members} == set(on_disk)
    assert {"saved_model.pb", "variables/variables.index", "MODEL_CARD.md",
            "vivi_export.json"} <= set(on_disk)
    for m in members:
      assert (m.mtime, m.uid, m.gid) == (0, 0, 0)
      if m.isfile():
        with open(on_disk[m.name], "rb") as f:
          assert tar.extractfile(m).read() == f.read(), m.name
  # The archive's bytes depend on the module's files only.
  again = os.path.join(os.path.dirname(published.zoo), "again.tar.gz")
  assert publish_lib.write_archive(published.saved_model, again) == digest
  assert sha256_of(again) == digest


def test_model_card(published):
  with open(os.path.join(published.directory, "MODEL_CARD.md")) as f:
    card = f.read()
  with open(os.path.join(published.saved_model, "MODEL_CARD.md")) as f:
    assert f.read() == card
  assert card.startswith("# tiny_vivi (version 2)\n")
  assert "| 3 | 1 | 9 | 40 | 57 | 2 |" in card  # videos skipped shots frames objects shards
  assert "name mediapipe_oidv4_ssd" in card and "(3 in all): Cat 30, Person 20, Car 7" in card
  assert "Flagged videos: single_shot 1." in card
  assert "test accuracy (%): 2 of the 19 tasks ran." in card and "of `exports/tiny`" in card
  # Two of 19 tasks: no overall VTAB-1k score (the file's 0.375 is the mean of these two).
  assert ("| natural | specialized | structured | overall |\n|---|---|---|---|\n"
          "| 50.0 | — | 25.0 | — |") in card and "37.5" not in card
  assert "| dsprites_orientation | structured | 25.0 |" in card
  missing = [n for n in VTAB_19 if n not in ("cifar100", "dsprites_orientation")]
  assert ("Missing VTAB-1k tasks (17): " + ", ".join(
      "resisc45 (manual download)" if n == "resisc45" else n for n in missing) + ".") in card
  assert "values in [0, 1]" in card and "`[batch, 2048]`" in card and "## Intended use" in card
  assert '"depth": 14' in card and "Experiment `vivi_objects`" in card


def test_printed_entry_is_the_preset_file(published, tiny_run):
  stdout = published.stdout
  printed = stdout[stdout.index("{\n"):stdout.index("\nUse it:")]
  with open(os.path.join(published.directory, "preset.json")) as f:
    entry = json.load(f)
  assert json.loads(printed) == entry and list(entry) == ["tiny_vivi"]
  preset = Preset.from_dict("tiny_vivi", entry["tiny_vivi"])
  assert preset.handle == published.archive and preset.sha256 == sha256_of(published.archive)
  assert (preset.version, preset.output_dim, preset.image_size) == (2, 2048, 32)
  # Two of 19 VTAB tasks: their group means, no "overall"; no local task ran.
  assert entry["tiny_vivi"]["evaluation"] == {"vtab_1k": {"natural": 0.5, "structured": 0.25}}
  with open(os.path.join(tiny_run.model_dir, "config.json")) as f:
    assert json.loads(json.dumps(configs.to_dict(preset.config()))) == json.load(f)


_LOAD = """
import json, sys
import numpy as np, tf_keras, keras_vivi
images = np.load(sys.argv[1])
layer = keras_vivi.load_feature_extractor("tiny_vivi", trainable=True)
np.save(sys.argv[2], layer(images, training=False).numpy())
model = tf_keras.Sequential([layer, tf_keras.layers.Dense(3)])
model.compile(tf_keras.optimizers.SGD(0.1), tf_keras.losses.SparseCategoricalCrossentropy(True))
before = [w.numpy().copy() for w in layer.weights]
model.train_on_batch(images, np.array([0, 2]))
changed = [bool(np.any(b != w.numpy())) for b, w in zip(before, layer.weights)]
moving = [c for c, w in zip(changed, layer.weights) if "moving" in w.name]
print(json.dumps({"trainable": len(layer.trainable_weights), "changed": sum(changed),
                  "moving_changed": sum(moving), "moving": len(moving)}))
"""


def test_load_by_name_in_a_fresh_process_from_the_cache_only(published, tiny_run, tmp_path,
                                                            monkeypatch):
  cache = tmp_path / "tfhub_cache"
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
  entry = Preset.from_dict("tiny_vivi", json.loads(
      open(os.path.join(published.directory, "preset.json")).read())["tiny_vivi"])
  # What the first load does: check the archive's sha256, unpack it into the TF-Hub cache.
  module_dir = loader.resolve_handle(entry.handle, sha256=entry.sha256)
  assert module_dir == str(cache / hashlib.sha1(published.archive.encode()).hexdigest())

  images = str(tmp_path / "images.npy")
  np.save(images, tiny_run.images)
  outputs = str(tmp_path / "outputs.npy")
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TFHUB_CACHE_DIR": str(cache),
         "KERAS_VIVI_OFFLINE": "1",
         "KERAS_VIVI_PRESETS": os.path.join(published.directory, "preset.json"),
         # Any network attempt would fail at once instead of reaching out.
         "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
  hidden = published.archive + ".hidden"
  os.rename(published.archive, hidden)  # Only the cache is left to load from.
  try:
    proc = subprocess.run([sys.executable, "-c", _LOAD, images, outputs], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
  finally:
    os.rename(hidden, published.archive)
  assert proc.returncode == 0, proc.stderr[-3000:]
  np.testing.assert_allclose(np.load(outputs), tiny_run.reference, rtol=1e-5, atol=1e-5)
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  assert report["trainable"] > 0 and report["changed"] >= report["trainable"]
  assert report["moving"] > 0 and report["moving_changed"] == report["moving"]


def test_a_published_version_is_not_replaced(published, tmp_path):
  with pytest.raises(FileExistsError, match="tiny_vivi version 2 is already published"):
    publish_lib.publish(published.saved_model, published.zoo, "tiny_vivi", version=2)
  with pytest.raises(ValueError, match="version must be a positive int.*got 0"):
    publish_lib.publish(published.saved_model, published.zoo, "tiny_vivi", version=0)


@pytest.mark.parametrize("content,message", [
    ("{", "is not valid JSON"),
    (json.dumps({"tasks": {"cifar100": {"group": "natural"}}}), "must look like"),
    (json.dumps([1]), "must look like"),
    (json.dumps({}), "must look like"),
])
def test_results_format(content, message, tmp_path):
  path = tmp_path / "results.json"
  path.write_text(content)
  with pytest.raises(ValueError, match=message):
    publish_lib.read_results(str(path))
  with pytest.raises(FileNotFoundError, match="missing.json"):
    publish_lib.read_results(str(tmp_path / "missing.json"))


@pytest.mark.parametrize("name,overrides", [
    ("vivi", []),
    ("vivi_objects_cotrain_3x", ["model.depth=26", "data.crop_area=0.2,0.9", "data.seed=4",
                                 "train.mixed_precision=mixed_bfloat16", "data.flip=false",
                                 "model.projection_hidden_dims=", "data.path=/data/a b,c"]),
])
def test_config_overrides_rebuild_the_config(name, overrides):
  config = configs.apply_overrides(configs.get_experiment(name), overrides)
  experiment, found = publish_lib.config_overrides(
      json.loads(json.dumps(configs.to_dict(config))))
  assert experiment == name and sorted(found) == sorted(overrides)
  assert configs.apply_overrides(configs.get_experiment(name), found) == config


@pytest.mark.parametrize("kwargs,message", [
    (dict(export_dir=None, publish_dir=None), "Give --export_dir=DIR, --publish=ZOO_DIR"),
    (dict(export_dir="e", publish_dir=None, name="x"), "add --publish=ZOO_DIR"),
    (dict(export_dir="e", publish_dir=None, version_given=True), "add --publish=ZOO_DIR"),
])
def test_output_flags(kwargs, message):
  with pytest.raises(app.UsageError, match=message):
    cli.check_outputs(**kwargs)


def _tasks(accuracies, group):
  return {name: {"group": group, "test_accuracy": a} for name, a in accuracies.items()}


def test_digits_only_is_no_vtab_result():
  """A demo run on the local `digits` task: vivi-vtab's "overall" is the digits accuracy."""
  results = {"hub": "m", "tasks": _tasks({"digits": 0.9}, "local"), "missing": {},
             "means": {"natural": None, "specialized": None, "structured": None, "local": 0.9,
                       "overall": 0.9}}
  assert publish_lib._evaluation(results) == {"local_tasks": {"digits": 0.9}}
  card = publish_lib._evaluation_section(results, "/x/results.json")
  assert "0 of the 19 tasks ran." in card and "| overall |" not in card
  assert "Missing VTAB-1k tasks (19): " + ", ".join(VTAB_19) + "." in card
  assert "Local tasks (not part of VTAB-1k)" in card and "| digits | 90.0 |" in card
  assert card.count("90.0") == 1


def test_all_19_tasks_give_an_overall_score():
  natural = dict(zip(VTAB_NATURAL, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]))  # mean 0.4
  specialized = dict(zip(VTAB_SPECIALIZED, [0.2, 0.4, 0.6, 0.8]))        # mean 0.5
  structured = dict.fromkeys(VTAB_STRUCTURED, 0.3)                       # mean 0.3
  tasks = {**_tasks(natural, "natural"), **_tasks(specialized, "specialized"),
           **_tasks(structured, "structured"), **_tasks({"lfw_subset": 0.95}, "local")}
  results = {"tasks": tasks, "missing": {"digits": "no sklearn"},
             "means": {"natural": 0.4, "specialized": 0.5, "structured": 0.3, "local": 0.95,
                       "overall": 7.2 / 19}}
  evaluation = publish_lib._evaluation(results)
  assert evaluation["local_tasks"] == {"lfw_subset": 0.95}
  assert evaluation["vtab_1k"] == pytest.approx(
      {"natural": 0.4, "specialized": 0.5, "structured": 0.3,
       "overall": (7 * 0.4 + 4 * 0.5 + 8 * 0.3) / 19})
  card = publish_lib._evaluation_section(results, "results.json")
  assert "19 of the 19 tasks ran." in card and "Missing VTAB-1k" not in card
  assert ("| natural | specialized | structured | overall |\n|---|---|---|---|\n"
          "| 40.0 | 50.0 | 30.0 | 37.9 |") in card
  assert "| svhn | natural | 70.0 |" in card and "| lfw_subset | 95.0 |" in card
  assert "Local tasks not run: digits (no sklearn)." in card

  del tasks["resisc45"]  # 18 of 19: the group means stay, overall goes.
  results["missing"]["resisc45"] = "manual download"
  assert publish_lib._evaluation(results)["vtab_1k"] == pytest.approx(
      {"natural": 0.4, "specialized": (0.2 + 0.4 + 0.8) / 3, "structured": 0.3})
  card = publish_lib._evaluation_section(results, "results.json")
  assert "18 of the 19 tasks ran." in card
  assert "Missing VTAB-1k tasks (1): resisc45 (manual download)." in card


def test_means_without_tasks_give_group_means_only():
  results = {"tasks": {}, "means": {"natural": 0.5, "specialized": None, "local": 0.9,
                                    "overall": 0.7}}
  assert publish_lib._evaluation(results) == {"vtab_1k": {"natural": 0.5}}
  assert publish_lib._evaluation(None) == {}


def test_the_19_vtab_tasks():
  from keras_vivi.evaluation.vtab import tasks as vtab_tasks
  assert vtab_tasks.list_tasks() == VTAB_19


def _snapshot(directory):
  """{relative path: bytes} of every file under `directory`."""
  files = {}
  for root, _, names in os.walk(directory):
    for name in names:
      with open(os.path.join(root, name), "rb") as f:
        files[os.path.relpath(os.path.join(root, name), directory)] = f.read()
  return files


def test_a_failed_publication_leaves_no_version(published, tmp_path, monkeypatch):
  module = os.path.join(published.zoo, "tiny_vivi")
  with pytest.raises(Exception):
    publish_lib.publish(str(tmp_path / "no_such_run"), published.zoo, "tiny_vivi", version=3)
  assert sorted(os.listdir(module)) == ["2"]
  assert publish_lib.check_version_free(published.zoo, "tiny_vivi", 3) == os.path.join(module, "3")

  def killed(directory, archive):  # Fails after the SavedModel, card and half an archive.
    with open(archive, "wb") as f:
      f.write(b"partial")
    raise KeyboardInterrupt
  monkeypatch.setattr(publish_lib, "write_archive", killed)
  with pytest.raises(KeyboardInterrupt):
    publish_lib.publish(published.saved_model, published.zoo, "tiny_vivi", version=3)
  assert sorted(os.listdir(module)) == ["2"]
  publish_lib.check_version_free(published.zoo, "tiny_vivi", 3)


def test_overwrite_keeps_the_old_version_when_the_new_one_fails(published, tmp_path):
  before = _snapshot(published.directory)
  with pytest.raises(Exception):
    publish_lib.publish(str(tmp_path / "no_such_run"), published.zoo, "tiny_vivi", version=2,
                        overwrite=True)
  assert _snapshot(published.directory) == before
  assert sorted(os.listdir(os.path.join(published.zoo, "tiny_vivi"))) == ["2"]


def test_foreign_versions_are_refused_and_leftovers_do_not_count(published):
  module = os.path.join(published.zoo, "tiny_vivi")
  # A directory publish did not write (no preset.json), and a killed run's temp dir.
  os.makedirs(os.path.join(module, "5", "saved_model"))
  with open(os.path.join(module, "5", "saved_model", "saved_model.pb"), "wb") as f:
    f.write(b"half")
  os.makedirs(os.path.join(module, ".5.deadbeef.tmp"))
  for overwrite in (False, True):
    with pytest.raises(FileExistsError, match=f"{os.path.join(module, '5')}' exists but is not "
                       "a publication.*never replaced"):
      publish_lib.publish(published.saved_model, published.zoo, "tiny_vivi", 5,
                          overwrite=overwrite)
  with open(os.path.join(module, "5", "saved_model", "saved_model.pb"), "rb") as f:
    assert f.read() == b"half"
  shutil.rmtree(os.path.join(module, "5"))
  assert publish_lib.check_version_free(published.zoo, "tiny_vivi", 5) == os.path.join(module, "5")
  publication = publish_lib.publish(published.saved_model, published.zoo, "tiny_vivi", 5)
  directory = os.path.join(module, "5")
  assert publication.directory == directory
  assert sorted(os.listdir(directory)) == [
      "MODEL_CARD.md", "preset.json", "saved_model", "tiny_vivi-5.tar.gz",
      "tiny_vivi-5.tar.gz.sha256"]
  with open(os.path.join(directory, "preset.json")) as f:
    entry = json.load(f)["tiny_vivi"]
  archive = os.path.join(directory, "tiny_vivi-5.tar.gz")
  assert entry["handle"] == publication.archive == archive
  assert entry["sha256"] == sha256_of(archive)
  with pytest.raises(FileExistsError, match="tiny_vivi version 5 is already published"):
    publish_lib.publish(published.saved_model, published.zoo, "tiny_vivi", 5)
  # A successful overwrite replaces it and leaves no old copy behind.
  publish_lib.publish(published.saved_model, published.zoo, "tiny_vivi", 5, overwrite=True)
  assert sorted(os.listdir(module)) == [".5.deadbeef.tmp", "2", "5"]
  assert sha256_of(archive) == entry["sha256"]  # Same source, same bytes.


def test_export_and_publish_to_another_filesystem(tiny_run, tmp_path, monkeypatch):
  """ram:// stands for gs:// (TensorFlow's GCS client cannot be pointed at an emulator): the export,
  the publication and its archive are written there, and nothing on the local disk."""
  import tensorflow as tf
  import keras_vivi
  monkeypatch.chdir(tmp_path)  # a path taken for a local one would appear here ("ram:/…")
  export = "ram://exports/tiny"
  run_main(f"--model_dir={tiny_run.model_dir}", f"--export_dir={export}")
  np.testing.assert_allclose(keras_vivi.load_feature_extractor(export)(tiny_run.images).numpy(),
                             tiny_run.reference, rtol=1e-5, atol=1e-5)
  stdout = run_main(f"--model_dir={tiny_run.model_dir}", "--publish=ram://zoo", "--name=tiny_vivi",
                    "--version=1")
  directory = "ram://zoo/tiny_vivi/1"
  assert f"{directory}/tiny_vivi-1.tar.gz" in stdout
  assert sorted(tf.io.gfile.listdir(directory)) == [
      "MODEL_CARD.md", "preset.json", "saved_model", "tiny_vivi-1.tar.gz",
      "tiny_vivi-1.tar.gz.sha256"]
  assert not [f for f in tf.io.gfile.listdir("ram://zoo") if f.startswith(".")]
  with tf.io.gfile.GFile(f"{directory}/tiny_vivi-1.tar.gz", "rb") as f:
    archive = f.read()
  digest = hashlib.sha256(archive).hexdigest()
  with tf.io.gfile.GFile(f"{directory}/tiny_vivi-1.tar.gz.sha256") as f:
    assert f.read() == f"{digest}  tiny_vivi-1.tar.gz\n"
  assert json.loads(tf.io.gfile.GFile(f"{directory}/preset.json").read())["tiny_vivi"][
      "sha256"] == digest
  with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
    for m in tar.getmembers():
      if m.isfile():
        with tf.io.gfile.GFile(f"{directory}/saved_model/{m.name}", "rb") as f:
          assert tar.extractfile(m).read() == f.read(), m.name
  assert os.listdir(tmp_path) == []
  # The same files on the local disk make the same archive.
  local = tmp_path / "copy"
  for m in tarfile.open(fileobj=io.BytesIO(archive)).getmembers():
    (local / m.name).parent.mkdir(parents=True, exist_ok=True)
    if m.isdir():
      (local / m.name).mkdir(exist_ok=True)
    else:
      tf.io.gfile.copy(f"{directory}/saved_model/{m.name}", str(local / m.name))
  assert publish_lib.write_archive(str(local), str(tmp_path / "local.tar.gz")) == digest
