"""Runs the notebooks in smoke mode and stores their outputs, so that GitHub shows the figures.

  python examples/store_outputs.py [01_quickstart ...]    # default: every examples/*.ipynb

Each notebook runs in a fresh kernel with KERAS_VIVI_SMOKE=1 (as tests/examples/test_notebooks.py
runs them), in order, in one temporary KERAS_VIVI_WORKDIR (so 02-04 use 01's export). Stored
outputs drop stderr (TensorFlow's log lines) and timestamps, show the work directory as the default
`~/keras_vivi_notebooks`, and keep PNGs small (at most MAX_WIDTH pixels wide, 256 colours).
"""

import base64
import glob
import io
import os
import sys
import tempfile

import nbclient
import nbformat
from PIL import Image

EXAMPLES = os.path.dirname(os.path.abspath(__file__))
MAX_WIDTH = 900
SHOWN_WORKDIR = "~/keras_vivi_notebooks"


def small_png(data):
  """A base64 PNG re-encoded at most MAX_WIDTH wide with an adaptive 256-colour palette."""
  image = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
  if image.width > MAX_WIDTH:
    image = image.resize((MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)),
                         Image.LANCZOS)
  buffer = io.BytesIO()
  image.quantize(256).save(buffer, format="PNG", optimize=True)
  return base64.b64encode(buffer.getvalue()).decode()


def clean(outputs, workdir):
  kept = []
  for output in outputs:
    if output.output_type == "stream" and output.name == "stderr":
      continue
    if output.output_type == "stream":
      output.text = output.text.replace(workdir, SHOWN_WORKDIR)
    for key, value in output.get("data", {}).items():
      if key == "image/png":
        output.data[key] = small_png(value)
      elif isinstance(value, str):
        output.data[key] = value.replace(workdir, SHOWN_WORKDIR)
    kept.append(output)
  return kept


def store(name, workdir, cwd):
  path = os.path.join(EXAMPLES, f"{name}.ipynb")
  notebook = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(notebook, kernel_name="python3", timeout=1200,
                          resources={"metadata": {"path": cwd}}).execute()
  for cell in notebook.cells:
    if cell.cell_type == "code":
      cell.outputs = clean(cell.outputs, workdir)
      cell.metadata.pop("execution", None)  # timestamps: noise in every diff
  nbformat.validate(notebook)
  nbformat.write(notebook, path)
  print(f"{name}: {os.path.getsize(path) // 1024} KB")


def main(names):
  names = names or sorted(os.path.basename(p)[:-6]
                          for p in glob.glob(os.path.join(EXAMPLES, "*.ipynb")))
  with tempfile.TemporaryDirectory() as tmp:
    workdir = os.path.join(tmp, "workdir")
    os.environ.update(KERAS_VIVI_SMOKE="1", KERAS_VIVI_WORKDIR=workdir, TF_CPP_MIN_LOG_LEVEL="3")
    os.environ.pop("KERAS_VIVI_EXPORT", None)
    os.makedirs(os.path.join(tmp, "cwd"))
    for name in names:
      store(name, workdir, os.path.join(tmp, "cwd"))


if __name__ == "__main__":
  main(sys.argv[1:])
