# `make train` = create .venv with the package, TensorFlow's CPU build and the dependencies (Keras, LiteRT,
# matplotlib), then train on the embedded synthetic data, evaluate, export into runs/latest.
# `make test` = create .venv-test with the package and the test extra, then run the test suite.
# Two venvs, so that neither target hides an install step the other one is missing; `.ci/run`
# proves both on a fresh clone (see README, "The two commands").
PYTHON ?= python3
VENV ?= .venv
TEST_VENV ?= .venv-test
PY := $(VENV)/bin/python
TEST_PY := $(TEST_VENV)/bin/python
ARGS ?=

.PHONY: train test test-slow bench lint install install-test clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[cpu]"
	touch $@

$(TEST_VENV)/.installed: pyproject.toml
	test -x $(TEST_PY) || $(PYTHON) -m venv $(TEST_VENV)
	$(TEST_PY) -m pip install --quiet -e ".[cpu,test]"
	$(TEST_PY) -m pip install --quiet --no-deps "tensorflow-serving-api>=2.21,<2.22"
	touch $@

install: $(VENV)/.installed

install-test: $(TEST_VENV)/.installed

train: $(VENV)/.installed
	$(PY) -m attnrec_tf.train $(ARGS)

# pytest exits 5 when it collects no test, which fails this target like any failure.
test: $(TEST_VENV)/.installed
	$(TEST_PY) -m pytest -q -m "not slow" $(ARGS)

test-slow: $(TEST_VENV)/.installed
	$(TEST_PY) -m pytest -q -m slow $(ARGS)

# benchmarks/ is not installed with the package: it runs from this checkout (benchmarks/README.md).
bench: $(TEST_VENV)/.installed
	$(TEST_PY) -m benchmarks $(ARGS)

lint: $(TEST_VENV)/.installed
	$(TEST_VENV)/bin/ruff check attnrec_tf tests benchmarks web_demo
	$(TEST_VENV)/bin/mypy

clean:
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache
