"""`python -m keras_vivi`: lists the command-line tools; `python -m keras_vivi NAME ARGS` runs one.

  python -m keras_vivi                  # the commands and what each does
  python -m keras_vivi train --help     # the same as `vivi-train --help`
"""

import ast
import importlib
import importlib.util
import os
import sys

# The console scripts of setup.cfg, in the order of the pipeline (tests check the two agree).
COMMANDS = {
    "vivi-prepare": "keras_vivi.cli.prepare",
    "vivi-train": "keras_vivi.cli.train",
    "vivi-export": "hub_export.cli",
    "vivi-vtab": "keras_vivi.cli.vtab",
    "vivi-compare": "keras_vivi.cli.compare",
    "vivi-diagnostic": "keras_vivi.cli.diagnostic",
    "vivi-robustness": "keras_vivi.cli.robustness",
    "vivi-demo": "keras_vivi.cli.demo",
}


def summary(module):
  """What the command does: its module docstring's first sentence, read without importing it."""
  # The top-level package's spec: finding a submodule's would import its (heavy) parents.
  top, *rest = module.split(".")
  folder = importlib.util.find_spec(top).submodule_search_locations[0]
  with open(os.path.join(folder, *rest) + ".py", encoding="utf-8") as f:
    doc = ast.get_docstring(ast.parse(f.read())) or ""
  first = " ".join(doc.split("\n\n")[0].split()).split(". ")[0].rstrip(".") + "."
  return first.split(": ", 1)[-1] if first.startswith("`") else first


def main(argv):
  if len(argv) > 1:
    name = argv[1] if argv[1].startswith("vivi-") else f"vivi-{argv[1]}"
    if name not in COMMANDS:
      print(f"Unknown command {argv[1]!r}; commands: {', '.join(COMMANDS)}.", file=sys.stderr)
      return 2
    sys.argv = [name] + argv[2:]
    importlib.import_module(COMMANDS[name]).run()
    return 0
  width = max(map(len, COMMANDS))
  print("keras_vivi commands (`NAME --help` for the flags; also `python -m keras_vivi NAME`):")
  for name, module in COMMANDS.items():
    print(f"  {name:{width}s}  {summary(module)}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
