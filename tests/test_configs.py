import dataclasses

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
    # The paper's detector is declared; eq. 1 as written; coupled L2 weight decay; Table 2's
    # diagnostic protocol of 50 batches of 8 videos.
    assert cfg.data.paper_detector == "https://tfhub.dev/google/openimages_v4/ssd/mobilenet_v2/1"
    assert cfg.loss.shot_normalization == "per_video"
    assert (cfg.train.weight_decay_type, cfg.train.weight_decay) == ("l2", 1e-4)
    assert (cfg.diagnostic.num_batches, cfg.diagnostic.videos_per_batch) == (50, 8)
