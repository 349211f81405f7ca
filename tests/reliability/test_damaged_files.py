"""Damaged files of earlier runs: an error naming the file and how to recover, nothing lost."""

import os

import pytest

from keras_vivi import configs
from keras_vivi.data import prepare
from keras_vivi.evaluation.vtab import run as vtab
from keras_vivi.training import trainer


@pytest.mark.parametrize("content", ['{"hub": "x", "tasks": {"cifar', '[1, 2]'])
def test_damaged_vtab_results_are_named_with_a_way_out(tmp_path, content):
  path = tmp_path / "results.json"
  path.write_text(content)
  with pytest.raises(ValueError, match=f"{path} .*Move it away to run every task again"):
    vtab.run_vtab(str(tmp_path / "module"), ["cifar100"], str(tmp_path), progress=False)
  assert path.read_text() == content


def test_damaged_run_config_is_named_with_a_way_out(tmp_path):
  (tmp_path / "config.json").write_text('{"name": "vivi", "data": {"path": "')
  config = configs.get_experiment("vivi")
  with pytest.raises(ValueError, match=f"Run config '{tmp_path / 'config.json'}' is not a valid "
                     "keras_vivi config.*restore it, or delete it"):
    trainer.train(config, str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == ["config.json"]


def test_damaged_preparation_plan_is_named_with_a_way_out(tmp_path):
  videos = tmp_path / "videos"
  videos.mkdir()
  (videos / "a.mp4").write_bytes(b"not a video")
  out = tmp_path / "out"
  out.mkdir()
  plan = out / prepare.PLAN_FILE
  plan.write_text('{"videos": [{"source": "')
  with pytest.raises(ValueError, match=f"{plan} is damaged .*Restore it from a copy, or prepare "
                     "into a new --output"):
    prepare.prepare(str(videos), str(out), progress=False)
  assert sorted(os.listdir(out)) == [prepare.PLAN_FILE] and plan.read_text().endswith('"')
