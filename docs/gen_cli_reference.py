"""Writes docs/cli.md, the reference of every `vivi-*` command, from the commands' absl flags.

  python docs/gen_cli_reference.py            # rewrite docs/cli.md
  python docs/gen_cli_reference.py --check    # change nothing; exit 1 when docs/cli.md is stale

The commands are the console scripts of setup.cfg. Only their modules are imported (no command
runs); each module's flags are read from absl's registry, then removed from it so that the next
module can define flags of the same name.
"""

import configparser
import importlib
import pathlib
import sys
import textwrap

from absl import flags

REPO = pathlib.Path(__file__).resolve().parents[1]
OUTPUT = REPO / "docs" / "cli.md"
_OWN_PACKAGES = ("keras_vivi", "hub_export")
_REQUIRED = "must have a value other than None"
# Defines the flags every command shares.
_SHARED_MODULE = "keras_vivi.cli.errors"


def commands() -> list[tuple[str, str]]:
  """(command, module) for each console script of setup.cfg, in its order."""
  parser = configparser.ConfigParser()
  parser.read(REPO / "setup.cfg")
  lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
  pairs = [line.split("=", 1) for line in lines if line.strip()]
  return [(name.strip(), target.strip().split(":")[0]) for name, target in pairs]


def _own_flags(registry) -> dict[str, list]:
  """{module: [Flag]} of the flags that keras_vivi and hub_export modules define."""
  return {module: list(defined) for module, defined in registry.flags_by_module_dict().items()
          if module.split(".")[0] in _OWN_PACKAGES}


def _is_required(flag) -> bool:
  return any(_REQUIRED in getattr(v, "message", "") for v in getattr(flag, "validators", []))


def _cell(text) -> str:
  return " ".join(str(text).split()).replace("|", "\\|")


def _default(flag) -> str:
  if _is_required(flag):
    return "required"
  if flag.default is None or flag.default == [] or flag.default == "":
    return "—"
  value = flag.default
  if isinstance(value, list):
    value = ",".join(map(str, value))
  return f"`{_cell(value)}`"


def _help(flag) -> str:
  """The help text without what absl adds to it (the enum's values, the note on repeating)."""
  text = " ".join((flag.help or "").split())
  if text.startswith("<") and ">: " in text:
    text = text.split(">: ", 1)[1]
  return text.split("; repeat this option", 1)[0]


def _kind(flag) -> str:
  kind = flag.flag_type().replace("multi string", "string, repeatable")
  values = getattr(getattr(flag, "parser", None), "enum_values", None)
  if values:
    kind += ": " + ", ".join(f"`{v}`" for v in values)
  return kind


def _summary(module) -> str:
  """The first paragraph of the module's docstring, on one line."""
  doc = (module.__doc__ or "").strip()
  return " ".join(doc.split("\n\n")[0].split())


def _usage(module) -> str:
  """The indented usage lines of the module's docstring, if it has them."""
  doc = (module.__doc__ or "").strip().split("\n\n")
  block = doc[1] if len(doc) > 1 else ""
  return textwrap.dedent(block) if block.strip().startswith("vivi-") else ""


def _table(defined) -> list[str]:
  rows = ["| flag | type | default | meaning |", "|---|---|---|---|"]
  for flag in sorted(defined, key=lambda f: f.name):
    rows.append(f"| `--{flag.name}` | {_kind(flag)} | {_default(flag)} | {_cell(_help(flag))} |")
  return rows


def render() -> str:
  """The whole of docs/cli.md."""
  registry = flags.FLAGS
  importlib.import_module(_SHARED_MODULE)
  shared = [f for defined in _own_flags(registry).values() for f in defined]
  lines = ["# Command-line reference", "",
           "Generated from each command's flag definitions by `docs/gen_cli_reference.py` "
           "(`python docs/gen_cli_reference.py` rewrites this page; the tests fail when it is "
           "stale). Every command also prints its flags with `--help`.", ""]
  for name, module_name in commands():
    before = {f.name for defined in _own_flags(registry).values() for f in defined}
    module = importlib.import_module(module_name)
    own = [f for defined in _own_flags(registry).values() for f in defined
           if f.name not in before]
    lines += [f"## `{name}`", "", _summary(module), ""]
    usage = _usage(module)
    if usage:
      lines += ["```text", usage, "```", ""]
    lines += _table(own) + [""]
    for flag in own:
      delattr(registry, flag.name)
  if shared:
    lines += ["## Flags of every command", ""] + _table(shared) + [""]
  return "\n".join(lines).rstrip("\n") + "\n"


def main(argv) -> int:
  check = "--check" in argv[1:]
  text = render()
  if check:
    current = OUTPUT.read_text() if OUTPUT.exists() else ""
    if current != text:
      print(f"{OUTPUT} is stale: run `python docs/gen_cli_reference.py`.", file=sys.stderr)
      return 1
    return 0
  OUTPUT.write_text(text)
  print(f"Wrote {OUTPUT}.")
  return 0


if __name__ == "__main__":
  sys.path.insert(0, str(REPO))
  sys.exit(main(sys.argv))
