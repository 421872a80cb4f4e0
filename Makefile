# Each target creates .venv when missing. `make train` = set up + train on the embedded default data;
# `make test` = set up (with the test extra) + run the test suite. CI runs `.ci/run`, which calls `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
ARGS ?=

.PHONY: train test test-slow bench lint install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -e ".[test,plots]"
	touch $@

install: $(VENV)/.installed

train: $(VENV)/.installed
	$(PY) -m attnrec_tf.train $(ARGS)

test: $(VENV)/.installed-test
	$(PY) -m pytest -q -m "not slow" $(ARGS)

test-slow: $(VENV)/.installed-test
	$(PY) -m pytest -q -m slow $(ARGS)

bench: $(VENV)/.installed-test
	$(PY) -m attnrec_tf.bench $(ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check attnrec_tf tests
	$(VENV)/bin/mypy

clean:
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache
