# Set-up is part of every target: a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= runs/demo

.PHONY: setup demo test test-slow bench lint clean

setup: $(STAMP)

# torch is pinned here (a CPU wheel lies on local disk; an unpinned torch downloads a CUDA build);
# the package metadata admits a range.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m ranklist demo --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m "slow" -q

bench: $(STAMP)
	$(PY) benchmarks/loss_speed.py
	$(PY) benchmarks/eval_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
