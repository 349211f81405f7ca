"""Every code block of README.md and of the docs/ pages runs, in order, in one scratch directory,
as a user would type it: the README first, then the pages in the order of mkdocs.yml's navigation.

A block is announced by `<!-- snippet: NAME -->` (or `<!-- snippet: NAME slow -->`) on the line
before it; a `sh` or `python` block without one fails `test_every_block_is_a_snippet`. Where a
snippet needs data from outside (a TF-Hub module, COCO, the user's image folder), `SETUP` provides
a small real stand-in first.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
SNIPPET = re.compile(r"<!-- snippet: (?P<name>[\w-]+)(?P<slow> slow)? -->\n```(?P<lang>\w+)\n"
                     r"(?P<code>.*?)```", re.S)
BLOCK = re.compile(r"^```(sh|python)$", re.M)
TIMEOUT = 900


def nav_pages(nav=None) -> list[str]:
  """The docs/ pages of mkdocs.yml's navigation, in its order."""
  if nav is None:
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
  pages = []
  for entry in nav:
    value = next(iter(entry.values())) if isinstance(entry, dict) else entry
    pages += nav_pages(value) if isinstance(value, list) else [value]
  return pages


SOURCES = ["README.md"] + [f"docs/{page}" for page in nav_pages()]
TEXTS = {source: (REPO / source).read_text() for source in SOURCES if (REPO / source).exists()}
SNIPPETS = [dict(m.groupdict(), source=source)
            for source, text in TEXTS.items() for m in SNIPPET.finditer(text)]


@pytest.mark.parametrize("source", list(TEXTS))
def test_every_block_is_a_snippet(source):
  found = SNIPPET.findall(TEXTS[source])
  assert len(BLOCK.findall(TEXTS[source])) == len(found), \
      f"{source}: a sh/python block has no snippet marker"


def test_snippet_names_are_unique():
  names = [s["name"] for s in SNIPPETS]
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


def _image_folder(root):
  """The user's own classification task: `my_task/{train,val,test}/<class>/*.png`, two classes
  of scikit-learn's digits (6 / 3 / 3 images a class)."""
  import numpy as np
  from PIL import Image
  from sklearn.datasets import load_digits
  digits = load_digits()
  for label, name in ((0, "zero"), (1, "one")):
    images = digits.images[digits.target == label][:12]
    for i, image in enumerate(images):
      split = "train" if i < 6 else "val" if i < 9 else "test"
      folder = root / "my_task" / split / name
      folder.mkdir(parents=True, exist_ok=True)
      pixels = np.repeat((image * 255 / 16).astype(np.uint8)[..., None], 3, -1)
      Image.fromarray(pixels).resize((16, 16)).save(folder / f"{i}.png")


SETUP = {"quickstart": _image_folder, "prepare-paper-detector": _hub_detector,
         "inline-detector": _hub_detector, "retinanet-coco": _coco}


def _run(snippet, root, env):
  if snippet["name"] in SETUP:
    SETUP[snippet["name"]](root)
  if snippet["lang"] == "python":
    command = [sys.executable, "-c", snippet["code"]]
  else:
    command = ["bash", "-euo", "pipefail", "-c", snippet["code"]]
  proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                        timeout=TIMEOUT)
  assert proc.returncode == 0, (f"{snippet['source']} snippet {snippet['name']!r} failed:\n"
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
