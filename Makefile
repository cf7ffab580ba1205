# limner: the two commands a newcomer needs are `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned here, in the install step, not in the package: a CPU build of 2.13.0 is what
# CI and the offline demo run; GPU machines keep whatever torch they install.
# The piper extra (GPL-3.0 speech runtime) is installed here because the tests and the demo use it;
# the package's core does not depend on it. So is the ray extra (Ray Serve, ~465 MB, about 30 s
# to install), so that the Ray executor's tests run in CI.
TORCH ?= torch==2.13.0

.PHONY: install serve test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[runtime,quality,dev,piper,video,ray,s3]' "$(TORCH)"
	# Only for its CLIP tokenizer vocabulary (tests, tiny://clip): its requirements would pull
	# torchvision and timm, so no dependencies.
	$(BIN)/python -m pip install --quiet --no-deps "open-clip-torch==3.3.0"
	touch $@

install: $(VENV)/.installed

serve: install
	HF_HUB_DISABLE_TELEMETRY=1 $(BIN)/limner serve

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy

unit: install
	HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 $(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

bench: install
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
