"""vivi-train's one config path (configs.build_config): the experiment, --config_file(s), then
--params_override; --data is the one shortcut of a config field."""

import subprocess
import sys

import pytest

from keras_vivi import configs


def test_config_file_then_params_override(tmp_path):
  path = tmp_path / "small.yaml"
  path.write_text("data:\n  image_size: 64\n  batch_size: 2\nmodel:\n  depth: 14\n"
                  "train:\n  steps: 10\n  decay_steps: [6, 8]\n")
  config = configs.build_config("vivi_objects", data="records", config_files=[str(path)],
                                params_override="train.steps=30,train.decay_steps=20,25")
  expected = configs.apply_overrides(configs.get_experiment("vivi_objects"), [
      "data.path=records", "data.image_size=64", "data.batch_size=2", "model.depth=14",
      "train.steps=30", "train.decay_steps=20,25"])
  assert config == expected
  assert config.train.decay_steps == (20, 25)


def test_params_override_as_yaml(tmp_path):
  inline = configs.build_config("vivi", params_override="{model: {depth: 26}, train: {steps: 5}}")
  path = tmp_path / "override.yaml"
  path.write_text("model:\n  depth: 26\ntrain:\n  steps: 5\n")
  from_file = configs.build_config("vivi", params_override=str(path))
  assert inline == from_file == configs.apply_overrides(
      configs.get_experiment("vivi"), ["model.depth=26", "train.steps=5"])


def test_bad_files_name_the_problem(tmp_path):
  path = tmp_path / "bad.yaml"
  path.write_text("model:\n  dept: 26\n")
  with pytest.raises(ValueError, match="'model.dept' is not a setting"):
    configs.build_config("vivi", config_files=[str(path)])
  path.write_text("- 1\n- 2\n")
  with pytest.raises(ValueError, match="bad.yaml.*must be a mapping"):
    configs.build_config("vivi", config_files=[str(path)])
  with pytest.raises(ValueError, match="section.field=value"):
    configs.build_config("vivi", params_override="train.nothing=3")


def test_data_shortcut_and_a_disagreeing_data_path_are_refused(tmp_path):
  agreeing = configs.build_config("vivi", data="a", params_override="data.path=a")
  assert agreeing.data.path == "a"
  with pytest.raises(ValueError, match="--data=a and data.path=b .* disagree"):
    configs.build_config("vivi", data="a", params_override="data.path=b")
  path = tmp_path / "c.yaml"
  path.write_text("data:\n  path: c\n")
  with pytest.raises(ValueError, match="--data=a and data.path=c"):
    configs.build_config("vivi", data="a", config_files=[str(path)])


@pytest.mark.parametrize("flag", ["--override=train.steps=3", "--diagnostic_every=0",
                                  "--steps_per_execution=2"])
def test_per_field_flags_are_gone(flag, tmp_path):
  done = subprocess.run([sys.executable, "-m", "keras_vivi.cli.train", "--experiment=vivi",
                         f"--model_dir={tmp_path}", "--data=x", flag],
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 2
  assert f"Unknown command line flag '{flag[2:].split('=')[0]}'" in done.stderr
