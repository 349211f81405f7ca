# Everything runs inside .venv, created and kept in sync with setup.cfg by the first target that needs it;
# constraints.txt pins setup.cfg's ranges to the exact tested set.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Test processes (pytest-xdist); a test file stays in one process, in order.
TEST_WORKERS ?= 2
STAMP := $(VENV)/.installed

.PHONY: test test-slow bench demo docs clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,bench,beam,docs]'
	touch $(STAMP)

# Lint (ruff) and type-check (mypy), both configured in pyproject.toml, then the tests;
# pytest exits 5 when it collected no test: that is a failure too, said plainly.
test: $(STAMP) docs
	$(PY) -m ruff check
	$(PY) -m mypy
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=30 || { status=$$?; [ $$status -ne 5 ] || echo "make test: no test was collected" >&2; exit $$status; }

# The documentation site (mkdocs.yml, docs/) into site/; --strict fails on any warning (a broken
# link, a page left out of the navigation, a missing include).
docs: $(STAMP)
	$(PY) -m mkdocs build --strict --site-dir site

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m benchmarks.run

# Sample videos -> detections -> training -> export -> evaluation -> demo_output/REPORT.md;
# a second run reuses the finished stages.
demo: $(STAMP)
	$(PY) -m keras_vivi.cli.demo --output=demo_output

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache .mypy_cache .ruff_cache
