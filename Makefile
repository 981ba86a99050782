# Developer and deployment shortcuts; `make help` lists them. Native targets use .venv from
# `make install`; Docker targets need Docker with the Compose plugin.

HOST ?= 127.0.0.1
PORT ?= 8000
# Native runs keep weights in ./models (Docker uses the /data/models volume); override per call:
# `make run MODELS_DIR=/srv/gigaam`.
MODELS_DIR ?= ./models
# Models for download-weights and download-weights-local; empty means MODEL (default v3_ctc).
MODELS ?=
# Examples per strategy for `make fuzz` (CI runs 20) and extra arguments for `make soak`.
FUZZ_EXAMPLES ?= 300
SOAK_ARGS ?=
COMPOSE ?= docker compose
VENV := .venv/bin

.DEFAULT_GOAL := help
.PHONY: help install run check test test-real bench download-weights-local build-docker up down \
	logs download-weights clean fuzz soak test-scale

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-24s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Install ffmpeg, .venv with CPU-only torch and the project (scripts/install)
	scripts/install

run: ## Run the server with auto-reload on HOST:PORT (default 127.0.0.1:8000)
	MODELS_DIR="$(MODELS_DIR)" $(VENV)/uvicorn --factory gigaam_api.server.app:create_app --reload \
		--host $(HOST) --port $(PORT)

check: ## Lint, format check, mypy --strict and the tests (scripts/check; what CI runs)
	scripts/check

test: ## Run the test suite (without the real-weights group)
	$(VENV)/python -m pytest

test-real: ## Run the tests that need the official weights (in MODELS_DIR, see download-weights-local)
	MODELS_DIR="$(MODELS_DIR)" $(VENV)/python -m pytest -m real_weights tests/real_weights

fuzz: ## The hostile-input suite with many more examples than CI (FUZZ_EXAMPLES, default 300)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/python -m pytest -p no:cacheprovider tests/robustness

soak: ## A few minutes of mixed traffic on a server process; prints RSS/fd figures (not in CI)
	$(VENV)/python -m bench.soak $(SOAK_ARGS)

test-scale: ## nginx in front of two server processes: bursts, a replica killed (not in CI)
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { [ "$$(id -u)" = 0 ] \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; } \
		|| { echo "Please install nginx first: sudo apt-get install nginx-light" >&2; exit 1; }
	$(VENV)/python -m pytest -p no:cacheprovider -m scale tests/scale

bench: ## Run the benchmarks (model forward pass, then the whole pipeline); prints figures
	nice -n 5 $(VENV)/python -m bench.bench_model
	nice -n 5 $(VENV)/python -m bench.bench_pipeline

download-weights-local: ## Fetch and verify weights into MODELS_DIR (./models); MODELS="v3_ctc v3_rnnt"
	MODELS_DIR="$(MODELS_DIR)" $(VENV)/gigaam-api download $(MODELS)

.env:
	cp .env.example .env

models:
	mkdir -p models

build-docker: .env ## Build the Docker image gigaam-api:latest
	$(COMPOSE) build gigaam-api

up: .env models ## Start the server in Docker (detached) on port 8000
	$(COMPOSE) up -d --build gigaam-api

down: ## Stop and remove the Docker containers
	$(COMPOSE) --profile tools down

logs: ## Follow the server's Docker logs
	$(COMPOSE) logs -f gigaam-api

download-weights: .env models ## Fetch and verify weights into ./models with Docker, then exit; MODELS="..."
	$(COMPOSE) --profile tools run --rm --build download-weights download $(MODELS)

clean: ## Remove caches and build leftovers (keeps .venv, .env and ./models)
	rm -rf .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist *.egg-info bench/out
	find . -path ./.venv -prune -o -type d -name __pycache__ -exec rm -rf {} +
