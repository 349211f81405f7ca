"""Every output a user names may be on gs:// (or any tf.io.gfile filesystem): the package reads and
writes user paths through `keras_vivi.files` / tf.io.gfile, never through the local-only `os.path`
checks, `os` file calls, `shutil`, `tempfile` or the builtin `open`. The few local-only uses are
listed below with their reason; any other is a finding."""

import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("keras_vivi", "hub_export")

LOCAL_ONLY = re.compile(
    r"os\.path\.(exists|isdir|isfile|islink|lexists|getsize|abspath|realpath|expanduser)\("
    r"|\bos\.(makedirs|mkdir|remove|unlink|rename|replace|listdir|scandir|walk|stat|rmdir|open|"
    r"fdopen)\(|\bshutil\.|\btempfile\.|(?<![.\w])open\(")

# Modules whose every such call is on a path of this machine's own, never a user's output.
LOCAL_MODULES = {
    "keras_vivi/files.py": "the local side of the helpers: the lock file of a local directory, the "
                           "download cache, the bounded local copy a decoder reads",
    "keras_vivi/zoo/loader.py": "the cache of downloaded hub modules (`files.cache_root()`), and "
                                "local handles; other filesystems' handles are read in place",
    "keras_vivi/zoo/readme.py": "the repository's own README.md",
    "keras_vivi/zoo/presets.py": "a presets file is an input, read by the light registry that "
                                 "does not import TensorFlow",
    "keras_vivi/__main__.py": "the package's own modules",
    "keras_vivi/data/video.py": "PyAV decodes local files; `prepare` hands it a local copy of a "
                                "remote video",
    "keras_vivi/data/decoder_process.py": "the pipes of the decoder process",
    "keras_vivi/detector/mediapipe_assets.py": "`npm pack` in a temporary folder, the local cache",
    "keras_vivi/detector/saved_model_detector.py": "a detector is an input, checked before loading",
    "keras_vivi/detector/tflite_ssd_detector.py": "the TFLite interpreter reads a local model file",
    "keras_vivi/detector/loader.py": "tells a detector path from a name (inputs)",
}
# Single lines elsewhere, by their text.
LOCAL_LINES = {
    'path = os.path.expanduser(handle[len("file://"):] if handle.startswith("file://") else handle)':
        "vtab.normalize_hub: the spelling of a local module path (a string)",
    "return os.path.abspath(path) if os.path.exists(path) else handle":
        "vtab.normalize_hub spells a local module path one way (other handles as given)",
    'key = classifier if "://" in classifier else os.path.abspath(classifier)':
        "the same spelling of a local classifier path",
    'info = {"source": os.path.abspath(path), "kind": "cotraining", "experiment": config.name,':
        "records where a local classifier came from (a string, no file access)",
    "return os.path.realpath(os.path.expanduser(run_dir))":
        "comparison names local runs one way (a string)",
    'write_dir = model_dir if chief else tempfile.mkdtemp(prefix="vivi_worker_")':
        "non-chief workers write their copy of the checkpoint to a local scratch folder",
    "there = (os.path.lexists(directory) if files.is_local(directory)":
        "publish: a dangling local symbolic link counts as there (tf.io.gfile elsewhere)",
    "if tf.io.gfile.isdir(path) and not (files.is_local(path) and os.path.islink(path))]":
        "publish: never sweeps through a local symbolic link",
    "for root, dirs, names in os.walk(export_dir):":
        "publish: looks for symbolic links in a local export (other filesystems have none)",
    "if os.path.islink(path):": "the same check",
}


def _findings():
  found = []
  for package in PACKAGES:
    for root, _, names in os.walk(os.path.join(REPO, package)):
      for name in sorted(names):
        if not name.endswith(".py"):
          continue
        path = os.path.join(root, name)
        module = os.path.relpath(path, REPO).replace(os.sep, "/")
        if module in LOCAL_MODULES:
          continue
        with open(path, encoding="utf-8") as f:
          for number, line in enumerate(f, 1):
            code = line.split("#")[0]
            if LOCAL_ONLY.search(code) and code.strip() not in LOCAL_LINES:
              found.append(f"{module}:{number}: {line.strip()}")
  return found


def test_user_paths_go_through_gfile():
  assert _findings() == []


def test_the_allow_list_names_only_what_exists():
  """An allow-list entry whose module or line is gone is removed, so the list stays small."""
  for module in LOCAL_MODULES:
    assert os.path.isfile(os.path.join(REPO, module)), module
  text = "\n".join(
      line.strip() for package in PACKAGES for root, _, names in os.walk(os.path.join(REPO, package))
      for name in names if name.endswith(".py")
      for line in open(os.path.join(root, name), encoding="utf-8"))
  assert [line for line in LOCAL_LINES if line not in text] == []


@pytest.mark.parametrize("line, local", [
    ("with open(path) as f:", True), ("tf.io.gfile.GFile(path)", False),
    ("os.path.exists(p)", True), ("os.path.join(a, b)", False), ("shutil.rmtree(d)", True),
    ("av.open(path)", False), ("tarfile.open(fileobj=f)", False), ("x = reopen(path)", False)])
def test_the_pattern(line, local):
  assert bool(LOCAL_ONLY.search(line)) == local
