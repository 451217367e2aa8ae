# Set-up is part of every target: a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= runs/demo

.PHONY: setup browser demo test test-slow bench studies lint clean

setup: $(STAMP)

# torch is pinned here (a CPU wheel lies on local disk; an unpinned torch downloads a CUDA build);
# the package metadata admits a range.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,serve,hf,tensorboard,tune]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m ranklist demo --out $(OUT)

# The page's browser test needs Debian's Chromium and its driver: installed when missing (CI runs as
# root; a failed apt-get fails here). Not root: a warning, and the browser test skips (it fails under CI=true).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	  else echo "warning: chromium/chromedriver missing (apt-get install chromium chromium-driver as root): the browser test will skip"; fi; \
	fi

test: $(STAMP) browser
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m "slow" -q

bench: $(STAMP)
	$(PY) benchmarks/loss_speed.py
	$(PY) benchmarks/eval_speed.py
	$(PY) benchmarks/memory_step.py

# GPU readiness: loss, compiled kernel, the demo step with AMP, SOP-sized evaluation and a
# torchrun/NCCL step, against their floors; <= 5 minutes on one GPU. Without a GPU: a CPU fallback in seconds.
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

# The studies of docs/results.md: every loss, then the paper's ablations, on the offline
# benchmark at a third of the demo's budget (about 110 s a run on 2 cores: ~3 h for SEEDS="0 1 2").
# Finished runs are reused, so an interrupted `make studies` continues where it stopped.
STUDY_OVERRIDES := data.image_size=64 data.hflip=true model.freeze_bn=false data.val_fraction=0.2 train.iterations=150 train.val_every=50 train.checkpoint_every=150 optim.milestones=[]
SEEDS ?= 0 1 2
ABLATIONS := alpha margin temperature batch level gradient reduction reading memory

studies: $(STAMP)
	$(PY) -m ranklist compare configs/demo.yaml $(STUDY_OVERRIDES) --seeds $(SEEDS) --out runs/studies/compare --no-progress
	set -e; for study in $(ABLATIONS); do \
	  $(PY) -m ranklist ablate configs/demo.yaml $$study $(STUDY_OVERRIDES) --seeds $(SEEDS) --out runs/studies/$$study --no-progress; \
	done

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
