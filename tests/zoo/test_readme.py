"""The README's zoo table is the one generated from the registry."""

import os

import pytest

from keras_vivi.zoo import presets as presets_lib
from keras_vivi.zoo import readme
from keras_vivi.zoo.presets import Preset

README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "README.md")


def test_readme_table_is_generated_from_the_registry():
  with open(README, encoding="utf-8") as f:
    text = f.read()
  assert readme.current_table(text) == readme.zoo_table(), (
      "README.md's zoo table is stale: run python -m keras_vivi.zoo.readme")
  assert readme.main(["readme", README, "--check"]) == 0


def test_one_row_per_preset_in_registry_order():
  rows = [line for line in readme.zoo_table().splitlines() if line.startswith("| `")]
  assert [r.split("`")[1] for r in rows] == list(presets_lib.BACKBONE_PRESETS)
  vivi_objects = rows[list(presets_lib.BACKBONE_PRESETS).index("vivi_objects")]
  assert "| not published |" in vivi_objects and "64.1 (59.0 / 81.6 / 59.8)" in vivi_objects


def test_published_entries_and_mixed_inputs_show():
  table = readme.zoo_table({
      "a": Preset("a", "vivi", handle="gs://b/a-1.tar.gz", sha256="0" * 64, image_size=96),
      "b": Preset("b", "vivi_objects")})
  assert "1 of 2 entries have published weights" in table
  assert "| `a` | `vivi` | 2048 | 96², [0, 1] | `gs://b/a-1.tar.gz` (sha256 `000000000000…`) |" \
      in table
  assert "| 224², [0, 1] | not published |" in table


def test_replace_table_keeps_the_rest(tmp_path):
  text = "# t\n\n## Model zoo\n\n" + readme.START + "\nold\n" + readme.END + "\n\n## Next\n"
  out = readme.replace_table(text, "NEW")
  assert out == "# t\n\n## Model zoo\n\n" + readme.START + "\nNEW\n" + readme.END + "\n\n## Next\n"
  assert readme.replace_table(out, "NEW") == out
  path = tmp_path / "README.md"
  path.write_text(text)
  assert readme.main(["readme", str(path), "--check"]) == 1
  assert readme.main(["readme", str(path)]) == 0
  assert readme.current_table(path.read_text()) == readme.zoo_table()
  with pytest.raises(ValueError, match="no <!-- zoo-table:start -->"):
    readme.replace_table("# no markers\n", "x")
