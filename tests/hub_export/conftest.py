"""Shared fixture: one export of the stand-in training run (`trained_run`) for the whole session."""

import pytest

from tests.helpers.cli import run_module


@pytest.fixture(scope="session")
def export_dir(trained_run, tmp_path_factory):
  """`vivi-export --model_dir=RUN --export_dir=DIR`, run as a user would."""
  path = str(tmp_path_factory.mktemp("exports") / "vivi_objects")
  proc = run_module("hub_export.cli", f"--model_dir={trained_run.model_dir}",
                    f"--export_dir={path}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Exported the vivi_objects backbone (ckpt-2" in proc.stdout
  return path
