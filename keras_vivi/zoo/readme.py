"""The README's model-zoo table, generated from `BACKBONE_PRESETS`.

  python -m keras_vivi.zoo.readme [README.md] [--check]

rewrites the lines between `<!-- zoo-table:start -->` and `<!-- zoo-table:end -->`; with
`--check` it changes nothing and exits 1 when the README is stale.
"""

import os
import sys

from keras_vivi.zoo import presets as presets_lib

START = "<!-- zoo-table:start -->"
END = "<!-- zoo-table:end -->"
README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "README.md")


def _vtab(preset):
  vtab = preset.paper_results.get("vtab_1k", {})
  if vtab.get("overall") is None:
    return "—"
  groups = [vtab.get(k) for k in ("natural", "specialized", "structured")]
  detail = (" (" + " / ".join(f"{100 * v:.1f}" for v in groups) + ")"
            if all(v is not None for v in groups) else "")
  return f"{100 * vtab['overall']:.1f}{detail}"


def _weights(preset):
  if not preset.available:
    return "not published"
  digest = f" (sha256 `{preset.sha256[:12]}…`)" if preset.sha256 else ""
  return f"`{preset.handle}`{digest}"


def _input(preset):
  low, high = preset.input_range
  return f"{preset.image_size}², [{low:g}, {high:g}]"


def zoo_table(presets=None) -> str:
  """Markdown (intro + table) describing `presets` (default: the built-in zoo, in its order)."""
  presets = presets_lib.BACKBONE_PRESETS if presets is None else presets
  entries = list(presets.values())
  inputs = {_input(p) for p in entries}
  uniform = len(inputs) == 1
  published = sum(p.available for p in entries)
  lines = [
      "Generated from `keras_vivi/zoo/presets.py` (`python -m keras_vivi.zoo.readme`). "
      "`keras_vivi.load_feature_extractor(NAME)` returns a `hub.KerasLayer` on float32 images "
      + (f"(trained at {next(iter(inputs))})" if uniform else "in the entry's input range")
      + f"; features are `[batch, dim]`. {published} of {len(entries)} entries have "
      "published weights; an entry without them lists the commands that make them "
      "(`get_preset(NAME).produce`: `vivi-train --experiment=NAME`, `vivi-vtab` on its export, "
      "then `vivi-export --model_dir=runs/NAME --publish=zoo --name=NAME "
      "--results=vtab/NAME/results.json`). The VTAB-1k and COCO "
      "columns are the paper's results for the experiment, not measurements of shipped "
      "weights.",
      "",
      "| preset | trained with | dim |" + ("" if uniform else " input |") +
      " weights | VTAB-1k (%), paper: mean (nat. / spec. / struct.) | COCO mAP (%), paper |",
      "|---|---|---|" + ("" if uniform else "---|") + "---|---|---|",
  ]
  for p in entries:
    coco = p.paper_results.get("coco_retinanet_map")
    coco = "—" if coco is None else f"{100 * coco:.1f}"
    trained = ": ".join(filter(None, [f"`{p.experiment}`" if p.experiment != p.name else "",
                                      p.description]))
    lines.append(
        f"| `{p.name}` | {trained} | {p.output_dim} |" + ("" if uniform else f" {_input(p)} |")
        + f" {_weights(p)} | {_vtab(p)} | {coco} |")
  return "\n".join(lines)


def replace_table(text, table) -> str:
  """`text` with the block between the markers replaced by `table`."""
  start, end = text.find(START), text.find(END)
  if start < 0 or end < start:
    raise ValueError(f"README has no {START} … {END} block (in that order).")
  return text[:start + len(START)] + "\n" + table + "\n" + text[end:]


def current_table(text) -> str:
  """The block between the markers, without the surrounding newlines."""
  start, end = text.find(START), text.find(END)
  if start < 0 or end < start:
    raise ValueError(f"README has no {START} … {END} block (in that order).")
  return text[start + len(START):end].strip("\n")


def main(argv) -> int:
  args = [a for a in argv[1:] if a != "--check"]
  path = args[0] if args else README
  with open(path, encoding="utf-8") as f:
    text = f.read()
  updated = replace_table(text, zoo_table())
  if "--check" in argv:
    if updated != text:
      print(f"{path}: the zoo table is stale; run python -m keras_vivi.zoo.readme")
      return 1
    return 0
  if updated != text:
    with open(path, "w", encoding="utf-8") as f:
      f.write(updated)
    print(f"Updated the zoo table in {path}.")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
