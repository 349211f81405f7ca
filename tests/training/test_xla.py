"""Every experiment's train step compiles with XLA (the TPU path) and equals the step without it."""

import numpy as np
import pytest

from keras_vivi import configs
from keras_vivi.training import build_optimizer, trainer
from tests.conftest import xla_compilations
from tests.helpers.training import dataset_fn_for, small_config

# Every experiment; the 3× ones share their 1× graphs but for the width, which one of them checks.
EXPERIMENTS = [n for n in configs.list_experiments() if not n.endswith("_3x")] + ["vivi_objects_3x"]


def _logged(history):
  return {k: v[-1] for k, v in history.history.items()}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_compiled_step_equals_the_step_without_xla_and_compiles_once(name, teacher_dir):
  # One box per frame: at 32² every box of a frame reads the same 1×1 block-4 cell, and such
  # exactly tied distances let rounding pick another semi-hard negative in either step.
  config = small_config(name, f"loss.teacher={teacher_dir}", "data.max_objects=1")
  model = trainer.build_model(config)
  data = dataset_fn_for(config)(None)
  batch = next(iter(data))
  model.compute_losses(*(batch if isinstance(batch, tuple) else (batch,)))  # every variable
  start = [v.numpy().copy() for v in model.variables]

  def fit(jit_compile, steps=1, compile_model=True):
    if compile_model:
      for variable, value in zip(model.variables, start):
        variable.assign(value)
      model.compile(optimizer=build_optimizer(config.train, config.data.batch_size),
                    jit_compile=jit_compile)
    logs = _logged(model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0))
    return logs, [v.numpy().copy() for v in model.variables]

  plain_logs, plain = fit(jit_compile=False)
  before = xla_compilations()
  xla_logs, compiled = fit(jit_compile=True)
  assert len(xla_compilations() - before) == 1

  l = config.loss
  expected = {"frame_loss": l.frame, "shot_loss": l.shot, "object_loss": l.object,
              "box_classifier_loss": l.box_classifier, "distillation_loss": l.distillation,
              "crop_loss": l.detector_crops, "supervised_loss": l.supervised}
  assert {k for k, on in expected.items() if on} == set(plain_logs) & set(expected)
  assert set(xla_logs) == set(plain_logs)
  for key, value in plain_logs.items():
    assert np.isfinite(value), key
    np.testing.assert_allclose(xla_logs[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
  # The update of all variables (weights, momentum-free first step, batch-norm statistics).
  update = np.sqrt(sum(np.sum((p - s) ** 2) for p, s in zip(plain, start)))
  error = np.sqrt(sum(np.sum((p - c) ** 2) for p, c in zip(plain, compiled)))
  assert update > 0 and error <= 1e-4 * update, (error, update)

  # Two more compiled steps reuse the compiled step: three steps, one compilation.
  fit(jit_compile=True, steps=2, compile_model=False)
  assert len(xla_compilations() - before) == 1
  assert int(model.optimizer.iterations.numpy()) == 3
