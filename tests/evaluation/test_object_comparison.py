"""Table 2's outputs from a result by hand: chance, the direction of significance, the figure."""

import math

import matplotlib.collections
import pytest

from keras_vivi.evaluation import object_comparison


def result_by_hand():
  """Two models on 100 objects; chance 40 % (variance 24 of the hits), class 1 holds 68 %."""
  def model(hits_all, hits_other):
    return {"hub": "x", "objects": 100,
            "all": {"fraction": hits_all / 100, "hits": hits_all, "queries": 100},
            "other_shots": {"fraction": hits_other / 80, "hits": hits_other, "queries": 80}}
  models = {"vivi": model(60, 30), "ours": model(45, 34)}
  chance = {"all": {"fraction": 0.4, "variance": 24.0, "majority_class": 1,
                    "majority_share": 0.68},
            "other_shots": {"fraction": 0.375, "variance": 18.75, "majority_class": 1,
                            "majority_share": 0.7}}
  alpha = 0.001
  tests = {"ours": {f: {"odds_ratio": 1.0, "p": p, "significant": p < alpha,
                        "direction": d} for f, p, d in (("all", 1e-4, "lower"),
                                                         ("other_shots", 0.5, None))}}
  chance_tests = {n: {f: object_comparison.chance_test(m[f]["hits"], m[f]["queries"], chance[f],
                                                       alpha)
                      for f in ("all", "other_shots")} for n, m in models.items()}
  return {"data": "records/", "image_size": 64, "min_score": 0.05, "max_objects": 5,
          "alpha": alpha, "videos_per_batch": 8, "num_batches": 50, "frames": "every_stored_frame",
          "shots_per_video": None, "frames_per_shot": None, "baseline": "vivi", "models": models,
          "tests": tests, "chance": chance, "chance_tests": chance_tests}


def test_chance_test_by_hand():
  # 60 hits where chance expects 40 ± √24: z = 20/√24 = 4.08, two-sided p = erfc(z/√2).
  t = object_comparison.chance_test(60, 100, {"fraction": 0.4, "variance": 24.0}, 0.001)
  assert t["z"] == pytest.approx(4.0825, abs=1e-4)
  assert t["p"] == pytest.approx(4.46e-5, rel=1e-2)
  assert (t["significant"], t["direction"]) == (True, "higher")
  low = object_comparison.chance_test(25, 100, {"fraction": 0.4, "variance": 24.0}, 0.001)
  assert (low["significant"], low["direction"]) == (False, None)  # z = −3.06, p = 0.0022
  assert object_comparison.chance_test(2, 100, {"fraction": 0.4, "variance": 24.0},
                                       0.001)["direction"] == "lower"


def test_markdown_reports_chance_majority_and_directions():
  text = object_comparison.to_markdown(result_by_hand())
  lines = text.splitlines()
  # vivi: 60 % is above chance (p 4.5e-05 ▲); other shots 30/80 = 37.5 % is chance itself.
  assert "| vivi | 100 | 60.0 (60/100) | 4.5e-05 ▲ | – | 37.5 (30/80) | 1 | – |" in lines
  # ours: 45/100 is not significantly above chance (z = 5/√24 = 1.02, p = 0.31; other shots
  # z = 4/√18.75 = 0.92, p = 0.36); lower than vivi (p 1e-4 ▼).
  assert "| ours | 100 | 45.0 (45/100) | 0.31 | 0.0001 ▼ | 42.5 (34/80) | 0.36 | 0.5 |" in lines
  assert "| chance (random neighbour) | | 40.0 |  |  | 37.5 |  |  |" in lines
  assert "class 1, 68.0 % of the objects" in text
  assert "▲ / ▼: significantly higher / lower (p < 0.001)" in text
  assert "†" not in text


def test_figure_writes_values_marks_and_the_chance_line(tmp_path):
  fig = object_comparison.write(result_by_hand(), str(tmp_path))
  (ax,) = fig.axes
  texts = [t.get_text() for t in ax.texts]
  assert texts == ["60.0", "45.0▼", "37.5", "42.5"]
  lines = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
  # Chance across each group's bars: 40 % over the two "all" bars, 37.5 % over the others.
  assert [sorted({float(y) for seg in c.get_segments() for _, y in seg}) for c in lines] == [
      [40.0], [37.5]]
  assert [len(c.get_segments()) for c in lines] == [2, 2]
  bars = ax.patches
  assert all(b.get_hatch() == "//" for b in bars[:4])
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  assert "chance" in labels and "single run, no error bar" in labels
  assert math.isclose(bars[0].get_height(), 60.0)
  assert (tmp_path / "diagnostic.png").read_bytes()[:4] == b"\x89PNG"
