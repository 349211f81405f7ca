"""Every code block of README.md runs, in order, in one scratch directory, as a user would type it.

A block is announced by `<!-- snippet: NAME -->` (or `<!-- snippet: NAME slow -->`) on the line
before it; a `sh` or `python` block without one fails `test_every_block_is_a_snippet`. Where a
snippet needs data from outside (a TF-Hub module, COCO), `SETUP` provides a small real stand-in
first.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
SNIPPET = re.compile(r"<!-- snippet: (?P<name>[\w-]+)(?P<slow> slow)? -->\n```(?P<lang>\w+)\n"
                     r"(?P<code>.*?)```", re.S)
BLOCK = re.compile(r"^```(sh|python)$", re.M)
SNIPPETS = [m.groupdict() for m in SNIPPET.finditer(README)]
TIMEOUT = 900


def test_every_block_is_a_snippet():
  names = [s["name"] for s in SNIPPETS]
  assert len(BLOCK.findall(README)) == len(SNIPPETS), "a sh/python block has no snippet marker"
  assert len(set(names)) == len(names), f"snippet names repeat: {names}"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
  """The user's working directory, with the venv's commands first on PATH and an own hub cache."""
  root = tmp_path_factory.mktemp("readme")
  # As in a clone: commands that name repository files (examples/…) find them.
  (root / "examples").symlink_to(REPO / "examples")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFHUB_CACHE_DIR=str(root / "hub_cache"),
             PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
  return root, env, set()


def _hub_detector(root):
  """The OIDv4 detector's TF-Hub handle, served from the cache by a local stand-in SavedModel
  with the same signature (nothing can be downloaded here)."""
  from keras_vivi.zoo import loader
  from tests.helpers.detectors import save_fake_hub_detector
  save_fake_hub_detector(os.path.join(root / "hub_cache", os.path.basename(
      loader.cached_module_dir("https://tfhub.dev/google/openimages_v4/ssd/mobilenet_v2/1"))))


def _coco(root):
  from tests.helpers.coco import write_coco
  write_coco(root / "data" / "coco")


SETUP = {"prepare-paper-detector": _hub_detector, "inline-detector": _hub_detector,
         "retinanet-coco": _coco}


def _run(snippet, root, env):
  if snippet["name"] in SETUP:
    SETUP[snippet["name"]](root)
  if snippet["lang"] == "python":
    command = [sys.executable, "-c", snippet["code"]]
  else:
    command = ["bash", "-euo", "pipefail", "-c", snippet["code"]]
  proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                        timeout=TIMEOUT)
  assert proc.returncode == 0, (f"README snippet {snippet['name']!r} failed:\n"
                                f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


@pytest.mark.parametrize("index", [
    pytest.param(i, id=s["name"], marks=[pytest.mark.slow] if s["slow"] else [])
    for i, s in enumerate(SNIPPETS)])
def test_snippet_runs(index, sandbox):
  root, env, done = sandbox
  # What a reader has typed before: the earlier snippets (run here when deselected, e.g. `-m slow`).
  for earlier in SNIPPETS[:index]:
    if not earlier["slow"] and earlier["name"] not in done:
      _run(earlier, root, env)
      done.add(earlier["name"])
  _run(SNIPPETS[index], root, env)
  done.add(SNIPPETS[index]["name"])
