"""Smoke test of the installed wheel (run by .ci/wheel_smoke inside a fresh venv, outside the
checkout): every module imports, the console scripts start, the quick start runs.

Prints one line per check and `wheel smoke: N passed, M failed`; exits 1 if any check failed.
"""

import importlib
import importlib.metadata
import os
import pkgutil
import subprocess
import sys
import tempfile
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
PACKAGES = ("keras_vivi", "hub_export")
CHECKS = []


def check(function):
  CHECKS.append(function)
  return function


@check
def modules_import_from_the_wheel():
  names = []
  for package in PACKAGES:
    module = importlib.import_module(package)
    assert module.__file__.startswith(sys.prefix), f"{package} imported from {module.__file__}"
    # The command-line modules define absl flags (some with one name): console_scripts_start
    # imports each in its own process.
    names += [m.name for m in pkgutil.walk_packages(module.__path__, package + ".")
              if not m.name.endswith(("__main__", ".cli")) and ".cli." not in m.name]
  for name in names:
    importlib.import_module(name)
  return f"{len(names)} modules"


@check
def metadata_and_license():
  files = {str(f) for f in importlib.metadata.files("keras_vivi")}
  assert any(f.endswith("LICENSE") for f in files), "no LICENSE in the wheel"
  requires = importlib.metadata.metadata("keras_vivi")["Requires-Python"]
  return f"Requires-Python {requires}"


def _commands():
  return {e.name: e.value.split(":")[0] for e in importlib.metadata.entry_points(
      group="console_scripts") if e.value.startswith(PACKAGES)}


@check
def console_scripts_start():
  from keras_vivi.__main__ import COMMANDS  # pylint: disable=g-import-not-at-top
  commands = _commands()
  assert commands == COMMANDS, (commands, COMMANDS)
  for name, module in commands.items():
    # absl's help flags exit with status 1 after printing; the module's own flags prove it loaded.
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), name), "--helpfull"],
                          capture_output=True, text=True, timeout=300)
    assert f"{module}:" in proc.stdout, (
        f"{name} --helpfull:\n{proc.stdout[-800:]}{proc.stderr[-2000:]}")
  return ", ".join(commands)


@check
def python_m_keras_vivi_lists_the_commands():
  proc = subprocess.run([sys.executable, "-m", "keras_vivi"], capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 0 and all(n in proc.stdout for n in _commands()), proc.stderr
  return f"{len(proc.stdout.splitlines()) - 1} commands"


@check
def quick_start_export_and_hub_keras_layer():
  import numpy as np
  import tensorflow as tf
  import tensorflow_hub as hub
  import tf_keras
  import hub_export
  import keras_vivi
  from keras_vivi import configs, models
  config = configs.apply_overrides(configs.get_experiment("vivi_objects"), ["model.depth=14"])
  tf_keras.utils.set_random_seed(0)
  backbone = models.build_backbone(config.model)
  images = tf.random.stateless_uniform([2, 64, 64, 3], seed=(1, 2))
  with tempfile.TemporaryDirectory() as tmp:
    export = os.path.join(tmp, "export")
    hub_export.export_backbone(backbone, export)
    layer = hub.KerasLayer(export, trainable=True)
    model = tf_keras.Sequential([layer, tf_keras.layers.Dense(3)])
    assert model(images).shape == (2, 3)
    np.testing.assert_allclose(layer(images).numpy(),
                               backbone(images, training=False)["pre_logits"].numpy(),
                               rtol=1e-4, atol=1e-4)
    assert keras_vivi.load_feature_extractor(export)(images).shape == (2, 2048)
  return "export → hub.KerasLayer → Dense, load_feature_extractor"


@check
def decoder_process_runs_the_installed_package():
  import av
  import numpy as np
  from keras_vivi.data import decoder_process, sampling
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "two_shots.mp4")
    with av.open(path, "w") as container:
      stream = container.add_stream("libx264", rate=25, options={"crf": "8", "preset": "ultrafast"})
      stream.height, stream.width, stream.pix_fmt = 32, 48, "yuv420p"
      for value in [40] * 30 + [220] * 30:
        frame = np.full((32, 48, 3), value, np.uint8)
        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
      container.mux(stream.encode(None))
    expected = sampling.decode_and_sample(path, threads=1)
    with decoder_process.DecoderPool() as pool:
      decoding = pool.decode(path, queue_size=4, threads=1)
      messages = list(decoding.messages(None))
      decoding.close()
  frames = {m[1]: m[2] for m in messages if m[0] == "frame"}
  assert sorted(frames) == expected.frame_indices.tolist(), (sorted(frames), expected.frame_indices)
  np.testing.assert_array_equal(np.stack([frames[i] for i in sorted(frames)]), expected.frames)
  assert messages[-1][1].shots == expected.shots
  return f"{len(expected.shots)} shots, {len(frames)} frames through a child process"


@check
def model_garden_registration():
  import hub_export.registry_imports  # noqa: F401
  from official.core import exp_factory
  experiment = exp_factory.get_exp_config("retinanet_vivi_fpn_coco")
  assert experiment.task.model.backbone.type == "vivi"
  return "retinanet_vivi_fpn_coco"


def main():
  passed = failed = 0
  for function in CHECKS:
    try:
      detail = function()
      passed += 1
      print(f"PASS {function.__name__}: {detail}", flush=True)
    except Exception:  # pylint: disable=broad-except
      failed += 1
      print(f"FAIL {function.__name__}:\n{traceback.format_exc()}", flush=True)
  version = ".".join(map(str, sys.version_info[:3]))
  print(f"wheel smoke on Python {version}: {passed} passed, {failed} failed")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
