"""The documentation site: navigation and pages agree, generated and included parts are current.

`make docs` builds the site with `mkdocs build --strict` (broken links and includes fail there);
the code blocks of the pages run in tests/test_readme.py.
"""

import os
import pathlib
import subprocess
import sys

from tests import test_readme

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def test_every_nav_page_exists_and_every_page_is_in_the_nav():
  nav = test_readme.nav_pages()
  assert len(set(nav)) == len(nav), f"a page is in the navigation twice: {nav}"
  missing = [page for page in nav if not (DOCS / page).is_file()]
  assert not missing, f"mkdocs.yml names pages that do not exist: {missing}"
  pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
  left_out = sorted(set(pages) - set(nav))
  assert not left_out, f"docs pages missing from mkdocs.yml's nav: {left_out}"


def test_nav_pages_lists_nested_sections_in_order():
  nav = [{"Home": "index.md"}, {"Guides": [{"A": "a.md"}, {"Deeper": [{"B": "b/c.md"}]}]},
         "d.md"]
  assert test_readme.nav_pages(nav) == ["index.md", "a.md", "b/c.md", "d.md"]


def test_cli_reference_is_current():
  proc = subprocess.run([sys.executable, str(DOCS / "gen_cli_reference.py"), "--check"],
                        cwd=REPO, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]


def test_cli_reference_names_every_command_and_its_flags():
  text = (DOCS / "cli.md").read_text()
  for name, _ in _commands():
    assert f"## `{name}`" in text
  # A flag of each kind, as defined in the commands' modules.
  for flag in ("`--videos`", "`--experiment`", "`--export_dir`", "`--tasks`", "`--correction`",
               "`--debug`"):
    assert flag in text


def _commands():
  sys.path.insert(0, str(DOCS))
  try:
    import gen_cli_reference  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.remove(str(DOCS))
  return gen_cli_reference.commands()


def test_commands_are_the_console_scripts():
  names = [name for name, _ in _commands()]
  assert names[:3] == ["vivi-prepare", "vivi-train", "vivi-export"]
  assert all(name.startswith("vivi-") for name in names)


def test_included_files_are_included():
  """The pages that show the README's zoo table, CHANGELOG.md and benchmarks/RESULTS.md include
  them (pymdownx.snippets) rather than copy them, and the README marks the table's section."""
  assert '--8<-- "CHANGELOG.md"' in (DOCS / "changelog.md").read_text()
  assert '--8<-- "benchmarks/RESULTS.md"' in (DOCS / "benchmarks.md").read_text()
  assert '--8<-- "README.md:zoo-table"' in (DOCS / "export.md").read_text()
  readme = (REPO / "README.md").read_text()
  start, end = readme.index("--8<-- [start:zoo-table]"), readme.index("--8<-- [end:zoo-table]")
  assert start < readme.index("<!-- zoo-table:start -->") < readme.index(
      "<!-- zoo-table:end -->") < end
