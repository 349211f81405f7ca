"""Result files of the evaluations: each replaced atomically, so a killed run leaves the last
complete version and never a partial file."""

import json
import os


def replace_atomically(path, write):
  """`write(temporary path)`, then renames it to `path`; returns what `write` returned."""
  root, extension = os.path.splitext(path)
  temporary = f"{root}.tmp{extension}"  # keeps the extension matplotlib infers the format from
  written = write(temporary)
  os.replace(temporary, path)
  return written


def write_text(path, text):
  def write(temporary):
    with open(temporary, "w", newline="", encoding="utf-8") as f:
      f.write(text)
  replace_atomically(path, write)


def write_report(output_dir, stem, data, markdown):
  """Writes `output_dir/stem.json` (of `data`) and `output_dir/stem.md`."""
  os.makedirs(output_dir, exist_ok=True)
  write_text(os.path.join(output_dir, stem + ".json"), json.dumps(data, indent=2) + "\n")
  write_text(os.path.join(output_dir, stem + ".md"), markdown)
