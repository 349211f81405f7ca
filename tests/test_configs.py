import dataclasses
import json

import pytest

from keras_vivi import configs


def test_registered_experiments():
  assert {"vivi", "vivi_objects"} <= set(configs.list_experiments())
  vivi = configs.get_experiment("vivi")
  ours = configs.get_experiment("vivi_objects")
  assert vivi.loss.frame and vivi.loss.shot and not vivi.loss.object
  assert ours.loss.frame and ours.loss.shot and ours.loss.object
  # Paper defaults (§4.1).
  assert (ours.loss.omega, ours.loss.beta) == (5.0, 0.04)
  assert (ours.data.shots_per_video, ours.data.frames_per_shot, ours.data.max_objects) == (4, 8, 5)
  assert ours.train.decay_steps == (90_000, 110_000) and ours.train.base_learning_rate == 0.8
  assert ours.model.lstm_units == 256


def test_configs_are_frozen():
  with pytest.raises(dataclasses.FrozenInstanceError):
    configs.get_experiment("vivi").train.steps = 5


def test_unknown_experiment_lists_known_ones():
  with pytest.raises(KeyError, match="vivi_objects"):
    configs.get_experiment("nope")


def test_duplicate_registration_is_refused():
  with pytest.raises(ValueError, match="already registered"):
    configs.register_experiment(configs.get_experiment("vivi"))


def test_overrides():
  base = configs.get_experiment("vivi_objects")
  cfg = configs.apply_overrides(base, [
      "train.steps=300", "data.image_size=96", "loss.object=false", "train.decay_steps=100,200",
      "train.mixed_precision=mixed_bfloat16", "loss.omega=2.5"])
  assert cfg.train.steps == 300 and cfg.data.image_size == 96 and not cfg.loss.object
  assert cfg.train.decay_steps == (100, 200) and cfg.train.mixed_precision == "mixed_bfloat16"
  assert cfg.loss.omega == 2.5
  assert base.train.steps == 120_000  # the registered config is untouched


@pytest.mark.parametrize("override,match", [
    ("train.stepz=3", "section.field=value"), ("steps=3", "section.field=value"),
    ("train.steps", "section.field=value"), ("train.steps=1.5", "expects a int"),
    ("loss.object=maybe", "true/false"), ("loss.omega=abc", "expects a float")])
def test_bad_overrides_name_the_value(override, match):
  with pytest.raises(ValueError, match=match):
    configs.apply_overrides(configs.get_experiment("vivi"), [override])


def test_json_round_trip():
  import json
  cfg = configs.apply_overrides(configs.get_experiment("vivi_objects"),
                                ["train.decay_steps=5,9", "data.crop_area=0.2,1.0"])
  back = configs.from_dict(json.loads(json.dumps(configs.to_dict(cfg))))
  assert back == cfg
  with pytest.raises(ValueError, match="stepz"):
    configs.from_dict({**configs.to_dict(cfg), "train": {"stepz": 1}})


def test_optional_fields_parse_to_their_type():
  cfg = configs.apply_overrides(configs.get_experiment("vivi"),
                                ["data.seed=7", "train.mixed_precision=none", "data.path=a/b"])
  assert cfg.data.seed == 7 and cfg.train.mixed_precision is None and cfg.data.path == "a/b"
  assert configs.apply_overrides(cfg, ["data.seed=None"]).data.seed is None


def test_paper_defaults_of_the_named_experiments():
  for name in configs.list_experiments():
    cfg = configs.get_experiment(name)
    # Eq. 1 as written; coupled L2 weight decay; Table 2's diagnostic protocol of 50 batches
    # of 8 videos.
    assert cfg.loss.shot_normalization == "per_video"
    assert (cfg.train.weight_decay_type, cfg.train.weight_decay) == ("l2", 1e-4)
    assert (cfg.diagnostic.num_batches, cfg.diagnostic.videos_per_batch) == (50, 8)


@pytest.mark.parametrize("override,match", [
    ("train.steps=0", r"TrainConfig.steps must be >= 1, got 0"),
    ("train.base_learning_rate=nan", r"base_learning_rate must be a finite number, got nan"),
    ("train.momentum=1", r"momentum must be a number in \[0, 1\), got 1.0"),
    ("train.decay_steps=90,10", r"decay_steps must be increasing .*got \(90, 10\)"),
    ("model.depth=7", r"model.depth expects one of 14, 26, 50, 101, 152, got '7'"),
    ("model.normalization=foo", r"expects one of batch, group, got 'foo'"),
    ("data.crop_area=1", r"crop_area must be a pair \(min, max\) with 0 < min <= max <= 1, got \(1,\)"),
    ("data.min_score=-0.1", r"min_score must be a number in \[0, 1\], got -0.1"),
    ("loss.shot_negatives=same_positon", r"expects one of batch, same_position, got 'same_positon'"),
    ("loss.omega=inf", r"LossConfig.omega must be a finite number, got inf"),
    ("train.mixed_precision=float16", r"expects one of float32, mixed_float16, mixed_bfloat16"),
    ("model.prediction_steps=4", r"prediction_steps=4 shots ahead, so data.shots_per_video=4"),
])
def test_out_of_range_values_are_refused_naming_field_value_and_allowed(override, match):
  with pytest.raises(ValueError, match=match):
    configs.apply_overrides(configs.get_experiment("vivi"), [override])


def test_choices_are_literals_parsed_to_their_type():
  cfg = configs.apply_overrides(configs.get_experiment("vivi"), [
      "model.depth=26", "model.normalization=group", "loss.shot_negatives=same_position",
      "data.short_videos=drop"])
  assert cfg.model.depth == 26 and isinstance(cfg.model.depth, int)
  assert (cfg.model.normalization, cfg.loss.shot_negatives) == ("group", "same_position")
  # Overrides are validated together: the order of related overrides does not matter.
  cfg = configs.apply_overrides(cfg, ["model.prediction_steps=5", "data.shots_per_video=6"])
  assert (cfg.model.prediction_steps, cfg.data.shots_per_video) == (5, 6)


def test_direct_construction_and_json_are_validated():
  with pytest.raises(ValueError, match="DataConfig.batch_size must be >= 1, got 0"):
    configs.DataConfig(batch_size=0)
  with pytest.raises(ValueError, match="LossConfig.frame must be a bool, got 'yes'"):
    configs.LossConfig(frame="yes")
  with pytest.raises(ValueError, match="no loss is switched on"):
    configs.LossConfig(frame=False, shot=False)
  values = configs.to_dict(configs.get_experiment("vivi"))
  values["model"]["width"] = 0
  with pytest.raises(ValueError, match="ModelConfig.width must be >= 1, got 0"):
    configs.from_dict(values)


def test_old_run_configs_with_derived_fields_still_load(tmp_path):
  values = configs.to_dict(configs.get_experiment("vivi_objects"))
  values["data"]["label_space"] = "MediaPipe OIDv4 subset: 23 of the 600 Open Images V4 classes"
  values["data"]["paper_detector"] = "https://tfhub.dev/google/openimages_v4/ssd/mobilenet_v2/1"
  (tmp_path / "config.json").write_text(json.dumps(values))
  assert configs.load_run_config(str(tmp_path)) == configs.get_experiment("vivi_objects")


def test_derived_values_are_not_settings():
  fields = {f.name for f in dataclasses.fields(configs.DataConfig)}
  assert not {"label_space", "paper_detector"} & fields
  with pytest.raises(ValueError, match="'data.label_space' is not a setting"):
    configs.apply_overrides(configs.get_experiment("vivi"), ["data.label_space=x"])


def test_yaml_and_strings_give_the_same_config():
  strings = ["model.depth=26", "train.decay_steps=5,9", "train.mixed_precision=None",
             "loss.object=true", "loss.omega=0.5", "data.seed=3", "data.crop_area=0.2,1"]
  mapping = ("{model: {depth: 26}, train: {decay_steps: [5, 9], mixed_precision: null}, "
             "loss: {object: true, omega: 0.5}, data: {seed: 3, crop_area: [0.2, 1]}}")
  expected = configs.apply_overrides(configs.get_experiment("vivi"), strings)
  assert configs.build_config("vivi", params_override=mapping) == expected
  assert configs.build_config("vivi", params_override=",".join(strings)) == expected
  assert expected.model.depth == 26 and expected.train.decay_steps == (5, 9)
  assert expected.data.crop_area == (0.2, 1.0) and expected.train.mixed_precision is None


@pytest.mark.parametrize("string,mapping,message", [
    ("train.steps=1.5", "{train: {steps: 1.5}}", "train.steps expects a int, got '1.5'"),
    ("train.steps=0", "{train: {steps: 0}}", "TrainConfig.steps must be >= 1, got 0"),
    ("model.depth=7", "{model: {depth: 7}}", "model.depth expects one of 14, 26, 50, 101, 152, "
     "got '7'"),
    ("loss.object=maybe", "{loss: {object: maybe}}", "loss.object expects true/false, got "
     "'maybe'"),
    ("train.stepz=3", "{train: {stepz: 3}}", "'train.stepz' is not a setting"),
])
def test_yaml_and_strings_give_the_same_error(string, mapping, message, tmp_path):
  errors = []
  for override in (string, mapping):
    with pytest.raises(ValueError) as raised:
      configs.build_config("vivi", params_override=override)
    errors.append(str(raised.value))
  path = tmp_path / "bad.yaml"
  path.write_text(mapping)
  with pytest.raises(ValueError) as raised:
    configs.build_config("vivi", config_files=[str(path)])
  errors.append(str(raised.value))
  assert errors[0] == errors[1] == errors[2]
  assert message in errors[0]
