# Two commands for a newcomer: `make train` and `make test`. Each sets itself up idempotently.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FMNIST_DIR := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: train test test-all test-isa lint data venv bench gpu-check mutants

# A virtual env with the package (editable) and its dev tools; redone when pyproject changes.
$(VENV)/.installed: pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# Real Fashion-MNIST offline: Debian's package, where apt exists; elsewhere TFDS downloads it.
data:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "installing dataset-fashion-mnist into $(FMNIST_DIR)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	else echo "no apt-get: Fashion-MNIST will come through TFDS (needs the network)"; fi

train: venv data
	$(PY) scripts/train.py --flagfile=experiments/quickstart.flags

test: venv data
	$(PY) -m pytest -m "not slow" -q -n auto

test-all: venv data
	$(PY) -m pytest -q

# The numerics-heavy tests again with XLA:CPU capped to an older instruction set: float32
# results then round as on another CPU, so a tolerance tuned to this one fails here.
# SSE4.2 (128-bit vectors, no FMA) differs from both AVX-512 and AVX2 hosts.
ISA ?= SSE4_2
NUMERICS_TESTS := tests/test_numerics.py tests/ops tests/test_transforms.py tests/layers \
	tests/equivariance tests/training tests/data/test_pipeline.py cnn_jax
test-isa: venv
	XLA_FLAGS=--xla_cpu_max_isa=$(ISA) $(PY) -m pytest -m "not slow" -q -n auto $(NUMERICS_TESTS)

lint: venv
	$(VENV)/bin/ruff check cnn_jax scripts tests

# Mutation testing of the core (mutmut; not part of `test`): each mutant of the seven files in
# pyproject's [tool.mutmut] against its own file's tests (tests/mutmut_plugin.py), then the
# score per file. A fresh run each time, in mutants/; tests/MUTANTS.md has the last scores.
# `$(VENV)/bin/mutmut browse` (or `show NAME`) shows the survivors. JAX's persistent cache
# lets a mutant that leaves a program unchanged skip compiling it again.
MUTMUT_JOBS ?= 2
mutants: venv
	rm -rf mutants
	JAX_COMPILATION_CACHE_DIR=$(CURDIR)/mutants/jax-cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
	  $(VENV)/bin/mutmut run --max-children $(MUTMUT_JOBS)
	$(PY) -m tests.mutmut_plugin

# Speed vs Keras 3 (JAX backend) and PyTorch CPU: the `bench` extra, then the full benchmark:
# every model (group and scale CNNs: ours only) and the per-op profile of each train step.
$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

bench: venv data $(VENV)/.bench-installed
	$(PY) scripts/benchmark.py --models=mlp,cnn,p4cnn,p4mcnn,sesn --profile

# On a machine with an NVIDIA GPU (and PyPI): a fresh .venv-gpu with the CUDA build of jaxlib,
# the numerics and equivariance tests on the GPU, a 2-epoch MLP/CNN benchmark; about 8 minutes.
gpu-check:
	bash scripts/gpu_check.sh
