"""examples/*.ipynb executed end to end in smoke mode, as a user's kernel would run them.

Each notebook (which starts with a cell installing keras_vivi where it is not importable) runs
in a fresh `python3` kernel with KERAS_VIVI_SMOKE=1 (tiny sizes) and
KERAS_VIVI_WORKDIR in a temporary directory; its last cell prints `NOTEBOOK_SUMMARY {json}`,
whose values are checked here. A notebook that raises, writes into the repository or stops
showing its plots fails. The selected notebooks run two at a time: each kernel spends much of its
time on one core (importing TensorFlow, tracing), and on 2 cores the four took 108 s against 172 s
one after the other.
"""

import base64
import concurrent.futures
import json
import math
import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(REPO, "examples")
CELL_TIMEOUT = 600  # seconds; the slowest smoke cell takes about 20
SUMMARY = "NOTEBOOK_SUMMARY "


def _repo_files():
  return {os.path.join(d, f) for d, _, files in os.walk(EXAMPLES) for f in files}


def run_notebook(name, tmp_path):
  """Executes examples/NAME.ipynb with its work directory under `tmp_path`; returns (summary dict,
  executed notebook)."""
  env = dict(os.environ, KERAS_VIVI_SMOKE="1", KERAS_VIVI_WORKDIR=str(tmp_path / "workdir"),
             TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), REPO) if p))
  env.pop("KERAS_VIVI_EXPORT", None)
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  notebook = nbformat.read(os.path.join(EXAMPLES, f"{name}.ipynb"), as_version=4)
  client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT,
                                   resources={"metadata": {"path": str(cwd)}})
  client.execute(env=env)
  # The package is importable here: the install cell must not run pip.
  install = next(c for c in notebook.cells if c.cell_type == "code")
  assert [o.text for o in install.outputs] == ["keras_vivi is importable: nothing to install.\n"]
  lines = [line for cell in notebook.cells if cell.cell_type == "code"
           for output in cell.outputs if output.output_type == "stream"
           for line in output.text.splitlines() if line.startswith(SUMMARY)]
  assert len(lines) == 1, f"{name} printed {len(lines)} summary lines"
  return json.loads(lines[0][len(SUMMARY):]), notebook


NOTEBOOK_OF_TEST = {"test_quickstart": "01_quickstart", "test_feature_extractor": "02_feature_extractor",
                    "test_vtab": "03_vtab", "test_retinanet": "04_retinanet"}


@pytest.fixture(scope="module")
def executed(request, tmp_path_factory):
  """`executed(name)` → (summary, notebook, work directory) of examples/NAME.ipynb; the notebooks of
  the tests selected in this session all start at once, two at a time."""
  names = [NOTEBOOK_OF_TEST[item.name] for item in request.session.items
           if item.module is request.module and item.name in NOTEBOOK_OF_TEST]
  before = _repo_files()
  with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="notebook") as pool:
    futures = {}
    for name in names:
      tmp_path = tmp_path_factory.mktemp(name)
      futures[name] = (pool.submit(run_notebook, name, tmp_path), tmp_path)

    def result(name):
      future, tmp_path = futures[name]
      summary, notebook = future.result()  # what the notebook raised fails its own test
      assert _repo_files() == before, "a notebook wrote into examples/"
      return summary, notebook, tmp_path

    yield result


def images_shown(notebook):
  return sum("image/png" in output.get("data", {}) for cell in notebook.cells
             if cell.cell_type == "code" for output in cell.outputs)


def all_finite(values):
  return all(math.isfinite(v) for v in values)


def test_notebooks_start_with_an_install_cell_and_carry_small_outputs():
  for name in sorted(os.listdir(EXAMPLES)):
    if name.endswith(".ipynb"):
      path = os.path.join(EXAMPLES, name)
      notebook = nbformat.read(path, as_version=4)
      nbformat.validate(notebook)
      code = [c for c in notebook.cells if c.cell_type == "code"]
      assert 'importlib.util.find_spec("keras_vivi") is None' in code[0].source, name
      assert "KERAS_VIVI_SOURCE" in code[0].source, name
      assert 'SMOKE = os.environ.get("KERAS_VIVI_SMOKE") == "1"' in code[1].source, name
      # Stored outputs of a smoke run (examples/store_outputs.py), so that GitHub shows figures:
      # small, and without the paths of the machine that ran them.
      pngs = [base64.b64decode(o.data["image/png"]) for c in code for o in c.outputs
              if "image/png" in o.get("data", {})]
      assert pngs and max(map(len, pngs)) < 150_000, (name, [len(p) for p in pngs])
      assert os.path.getsize(path) < 1_000_000, name
      text = nbformat.writes(notebook)
      assert not any(root in text for root in ("/tmp/", "/work/", "/root/", "/home/")), name


def test_quickstart(executed):
  summary, notebook, tmp_path = executed("01_quickstart")
  assert summary["videos"] == 4
  assert summary["frames"] > 0 and summary["objects"] > 0
  assert math.isfinite(summary["explicit_fit_loss"])
  assert summary["epochs"] == 3
  for key, values in summary["losses"].items():
    assert len(values) == 3 and all_finite(values), key
  assert summary["feature_shape"][1] == 2048
  # The export computes what the trained backbone computes.
  assert summary["export_difference"] < 1e-3
  assert summary["feature_map_levels"] == ["2", "3", "4", "5"]
  assert images_shown(notebook) >= 4  # contact sheet, class histogram, a batch, the losses
  assert (tmp_path / "workdir" / "01_quickstart" / "export" / "saved_model.pb").exists()


def test_feature_extractor(executed):
  summary, notebook, _ = executed("02_feature_extractor")
  assert summary["feature_shape"] == [20, 2048]
  assert 0.0 <= summary["nearest_neighbour_same_picture"] <= 1.0
  # Zero-initialised heads start at chance (every image gets class 0); training beats it.
  assert summary["probe_before"] < 0.2 and summary["finetune_before"] < 0.2
  assert summary["probe_after"] > 0.4
  assert summary["finetune_after"] > 0.5
  for key in ("probe_losses", "finetune_losses"):
    assert all_finite(summary[key]) and summary[key][-1] < summary[key][0], key
  assert images_shown(notebook) >= 5


def test_vtab(executed):
  summary, notebook, _ = executed("03_vtab")
  assert 0.0 <= summary["digits_test_accuracy"] <= 1.0
  assert summary["digits_selected"]["learning_rate"] == 0.1
  assert {"results.json", "results.csv", "results.md", "results.png"} <= set(
      summary["results_files"])
  assert summary["vtab_tasks"] == 19
  assert len(summary["runs_a"]) == len(summary["runs_b"]) == 2
  assert summary["comparison_verdict"] in ("better", "worse", "not significant")
  assert {"comparison.json", "comparison.md", "relative_increase.png"} <= set(
      summary["comparison_files"])
  assert images_shown(notebook) >= 1


def test_retinanet(executed):
  summary, notebook, _ = executed("04_retinanet")
  # The real detector's boxes: a person on astronaut and camera, the cat, the coffee cup.
  assert summary["images"] >= 8
  assert {"Person", "Cat", "Coffee cup"} <= set(summary["classes"].values())
  assert len(summary["losses"]) == 4 and all_finite(summary["losses"])
  assert summary["detection_boxes_shape"] == [2, 100, 4]
  assert summary["backbone"] == "ViviFeatureMaps"
  assert images_shown(notebook) >= 3
