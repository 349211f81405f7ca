"""The preset registry: the paper's entries, validation, registration and presets files."""

import json
import os
import subprocess
import sys

import pytest

from keras_vivi import configs
from keras_vivi.zoo import presets as presets_lib
from keras_vivi.zoo.presets import Preset
from tests.helpers.cli import REPO

SHA = "ab" * 32


def test_every_experiment_has_an_entry_without_weights():
  assert sorted(presets_lib.BACKBONE_PRESETS) == sorted(configs.list_experiments())
  assert len(presets_lib.BACKBONE_PRESETS) == 15
  for name, preset in presets_lib.BACKBONE_PRESETS.items():
    config = configs.get_experiment(preset.experiment)
    assert preset.name == name
    assert preset.handle is None and preset.sha256 is None and not preset.available, name
    assert preset.output_dim == 2048 * config.model.width, name
    assert preset.image_size == config.data.image_size and preset.input_range == (0.0, 1.0)
    assert preset.config() == config
    assert any(f"vivi-train --experiment={name} " in c for c in preset.produce), preset.produce
    assert any(c.startswith("vivi-export ") and f"--publish=zoo --name={name}" in c
               for c in preset.produce), preset.produce
  assert presets_lib.list_presets(available_only=True) == []


@pytest.mark.parametrize("name,results", [
    # Table 1, Table 4 and the ablation text of the paper, as fractions.
    ("vivi_objects", {"vtab_1k": {"overall": 0.641, "natural": 0.59, "specialized": 0.816,
                                  "structured": 0.598}, "coco_retinanet_map": 0.404}),
    ("vivi_objects_cotrain_3x", {"vtab_1k": {"overall": 0.705, "natural": 0.716,
                                             "specialized": 0.836, "structured": 0.63}}),
    ("detector_distill", {"vtab_1k": {"overall": 0.571}}),
    ("objects_only", {"coco_retinanet_map": 0.393}),
    ("vivi_3x", {}),
])
def test_paper_results(name, results):
  assert presets_lib._thaw(presets_lib.get_preset(name).paper_results) == results


@pytest.mark.parametrize("fields,message", [
    (dict(name="bad name"), "name must be"),
    (dict(sha256="ABC"), "sha256 must be 64 lowercase hex digits, got 'ABC'"),
    (dict(handle="/models/dir", sha256=SHA), "handle must be an archive"),
    (dict(sha256=SHA), "handle must be an archive"),
    (dict(version=0), "version must be None or a positive int, got 0"),
    (dict(output_dim=-1), "output_dim must be a positive int"),
    (dict(input_range=(1.0, 0.0)), "input_range must be"),
    (dict(overrides="model.depth=14"), "overrides must be a sequence of strings"),
    (dict(handle=""), "handle must be None or a non-empty"),
])
def test_validation_names_the_value(fields, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    Preset(**{"name": "x", "experiment": "vivi", **fields})


def test_entries_are_read_only():
  preset = Preset("x", "vivi", handle="/m.tar.gz", sha256=SHA, evaluation={"vtab_1k": {"overall": 0.5}})
  with pytest.raises(AttributeError):
    preset.handle = "/other"
  with pytest.raises(TypeError):
    preset.evaluation["vtab_1k"]["overall"] = 0.6


def test_dict_round_trip():
  preset = Preset("mine", "vivi_objects", "d", handle="gs://b/mine-3.tar.gz", sha256=SHA,
                  version=3, overrides=("model.depth=14",), image_size=96, output_dim=2048,
                  evaluation={"vtab_1k": {"overall": 0.6, "natural": 0.5}})
  values = json.loads(json.dumps(preset.to_dict()))
  assert "name" not in values and values["overrides"] == ["model.depth=14"]
  assert Preset.from_dict("mine", values) == preset
  assert preset.config().model.depth == 14
  with pytest.raises(ValueError, match=r"unknown fields \['weights'\]"):
    Preset.from_dict("mine", {**values, "weights": 1})


def test_register_fills_a_placeholder_but_does_not_replace_weights():
  mine = Preset("vivi_objects", "vivi_objects", handle="/zoo/vivi_objects-1.tar.gz")
  assert presets_lib.register_preset(mine) is mine
  assert presets_lib.get_preset("vivi_objects") is mine
  assert presets_lib.list_presets(available_only=True) == ["vivi_objects"]
  other = Preset("vivi_objects", "vivi_objects", handle="/zoo/vivi_objects-2.tar.gz")
  with pytest.raises(ValueError, match="already registered with handle '/zoo/vivi_objects-1"):
    presets_lib.register_preset(other)
  presets_lib.register_preset(other, overwrite=True)
  assert presets_lib.get_preset("vivi_objects").handle.endswith("-2.tar.gz")
  with pytest.raises(TypeError, match="got dict"):
    presets_lib.register_preset({"name": "x"})


def test_unknown_name_lists_the_known_ones():
  with pytest.raises(presets_lib.UnknownPresetError) as error:
    presets_lib.get_preset("vivi_object")
  message = str(error.value)
  assert "Unknown preset 'vivi_object'" in message
  for name in configs.list_experiments():
    assert name in message
  assert "with weights: none" in message and presets_lib.PRESETS_ENV in message


def test_presets_file_and_environment(tmp_path, monkeypatch):
  path = tmp_path / "presets.json"
  path.write_text(json.dumps({"tiny": {"experiment": "vivi", "handle": "/zoo/tiny/1/tiny-1.tar.gz",
                                       "sha256": SHA, "version": 1}}))
  monkeypatch.setenv(presets_lib.PRESETS_ENV, os.pathsep.join([str(path)]))
  assert "tiny" in presets_lib.list_presets(available_only=True)
  assert presets_lib.get_preset("tiny").sha256 == SHA

  monkeypatch.setenv(presets_lib.PRESETS_ENV, str(tmp_path / "missing.json"))
  with pytest.raises(FileNotFoundError, match=r"\$KERAS_VIVI_PRESETS: Presets file .*missing"):
    presets_lib.list_presets()
  monkeypatch.delenv(presets_lib.PRESETS_ENV)
  path.write_text("{not json")
  with pytest.raises(ValueError, match="presets.json' is not valid JSON"):
    presets_lib.load_presets_file(path)
  path.write_text("[]")
  with pytest.raises(ValueError, match="must hold a JSON object"):
    presets_lib.load_presets_file(path)


def test_import_stays_light():
  code = ("import sys, keras_vivi, keras_vivi.zoo; keras_vivi.zoo.list_presets(); "
          "print('tensorflow' in sys.modules, callable(keras_vivi.load_feature_extractor))")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
  assert out.stdout.split() == ["False", "True"], out.stderr[-2000:]
