"""`make demo`'s job at a tiny size: every stage runs, the report is complete, a rerun reuses."""

import dataclasses
import os
import re

import pytest

from keras_vivi import demo


def test_demo_writes_the_report_and_reuses_finished_stages(tmp_path, capsys):
  config = dataclasses.replace(
      demo.DemoConfig(), output=str(tmp_path / "out"), image_size=64, frames_per_shot=2,
      steps=2, steps_per_epoch=1, vtab_image_size=32, vtab_steps_scale=0.001,
      vtab_sweep="0.01:10000:3000")
  report = demo.run_demo(config)
  text = open(report).read()
  for png in ("contact_sheet.png", "class_histogram.png", "training.png",
              "diagnostic/diagnostic.png", "vtab.png"):
    assert f"]({png})" in text and os.path.getsize(tmp_path / "out" / png) > 1000
  # One training row per experiment, one diagnostic and one VTAB row per model.
  for name in ("vivi_objects", "vivi", demo.RANDOM_INIT):
    assert re.search(rf"^\| {name} \| digits \| \d+\.\d \|", text, re.M), name
    assert re.search(rf"^\| {name} \| \d+ \| \d+\.\d \(\d+/\d+\) \|", text, re.M), name
  assert re.search(r"^\| vivi_objects \| \d\.\d+ → \d\.\d+ \|", text, re.M)

  capsys.readouterr()
  exports = tmp_path / "out" / "exports" / "vivi" / "saved_model.pb"
  before = os.path.getmtime(exports)
  demo.run_demo(config)
  out = capsys.readouterr().out
  assert out.count("Reusing") == 1 + 2 + 3 + 1  # records, runs, exports, diagnostic
  assert os.path.getmtime(exports) == before


def test_demo_refuses_an_output_made_with_other_settings(tmp_path):
  out = str(tmp_path / "out")
  demo._check_reusable(demo.DemoConfig(output=out, steps=5))
  demo._check_reusable(demo.DemoConfig(output=out, steps=5))  # same settings: reused
  with pytest.raises(ValueError, match=r"other settings \(steps: 5 → 6\)"):
    demo._check_reusable(demo.DemoConfig(output=out, steps=6))


def test_report_bars_carry_values_chance_and_the_single_run_marker(tmp_path):
  fig = demo.plot_bars({"vivi": 0.25, "ours": 0.5}, "t", "accuracy", str(tmp_path / "b.png"),
                       chance=0.1)
  (ax,) = fig.axes
  assert [t.get_text() for t in ax.texts] == ["25.0%", "50.0%"]
  (chance,) = ax.collections
  assert [float(seg[0][1]) for seg in chance.get_segments()] == [0.1, 0.1]
  assert [bar.get_hatch() for bar in ax.patches] == ["//", "//"]
  assert [t.get_text() for t in ax.get_legend().get_texts()] == ["chance",
                                                                 "single run, no error bar"]
