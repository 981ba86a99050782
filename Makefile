# Developer and deployment shortcuts; `make help` lists them. Native targets use .venv from
# `make install`; Docker targets need Docker with the Compose plugin.
# Settings (MODELS_DIR, MODEL, ...) come from the environment, then .env, then their defaults; no
# target sets one. `make run MODELS_DIR=/srv/gigaam` passes one on like an environment variable.

# Where `make run`'s development server listens (HOST and PORT in .env are for `gigaam-api serve`).
HOST ?= 127.0.0.1
PORT ?= 8000
# Models for download-weights and download-weights-local; empty means MODEL (default v3_ctc).
MODELS ?=
# The platform build-docker builds for: a NAS is usually amd64, even when the build runs on a Mac.
PLATFORM ?= linux/amd64
# Examples per strategy for `make fuzz` (CI runs 20) and extra arguments for `make soak`.
FUZZ_EXAMPLES ?= 300
SOAK_ARGS ?=
COMPOSE ?= docker compose
VENV := .venv/bin
PYTEST := $(VENV)/python -m pytest

.DEFAULT_GOAL := help
.PHONY: help install install-dev run check pre-commit test test-integration test-all test-real \
	bench download-weights-local build-docker up down logs download-weights clean fuzz soak \
	test-scale

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-24s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Install .venv with CPU-only torch and the project, to run the server (scripts/install)
	scripts/install

install-dev: ## Install as `install` does, plus the test tools (espeak-ng, pytest, mypy, ruff)
	WITH_TEST_TOOLS=1 scripts/install

run: ## Run the server with auto-reload on HOST:PORT (default 127.0.0.1:8000)
	$(VENV)/uvicorn --factory gigaam_api.server.app:create_app --reload --reload-dir gigaam_api \
		--no-access-log --host $(HOST) --port $(PORT)

check: ## Format check, lint, mypy --strict and the whole suite: what CI runs (scripts/check)
	scripts/check

pre-commit: ## Format and fix the code, then lint, mypy --strict and the unit tests
	$(VENV)/ruff format .
	$(VENV)/ruff check --fix .
	$(VENV)/mypy
	$(PYTEST) tests/unit

test: ## Run the unit tests (tests/unit)
	$(PYTEST) tests/unit

test-integration: ## Run the integration tests: real server, ffmpeg, VAD, openai client
	$(PYTEST) tests/integration

test-all: ## Run the whole suite (without the real-weights group)
	$(PYTEST)

test-real: ## Run the tests that need the official weights (in MODELS_DIR, see download-weights-local)
	$(PYTEST) -m real_weights tests/real_weights

fuzz: ## The hostile-input suite with many more examples than CI (FUZZ_EXAMPLES, default 300)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PYTEST) -p no:cacheprovider tests/robustness

soak: ## A few minutes of mixed traffic on a server process; prints RSS/fd figures (not in CI)
	$(VENV)/python -m bench.soak $(SOAK_ARGS)

test-scale: ## nginx in front of two server processes: bursts, a replica killed (not in CI)
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { [ "$$(id -u)" = 0 ] \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; } \
		|| { echo "Please install nginx first: sudo apt-get install nginx-light" >&2; exit 1; }
	$(PYTEST) -p no:cacheprovider -m scale tests/scale

bench: ## Run the benchmarks (engines side by side, then the whole pipeline on each); prints figures
	nice -n 5 $(VENV)/python -m bench.bench_engines
	nice -n 5 $(VENV)/python -m bench.bench_pipeline

download-weights-local: ## Fetch and verify weights into MODELS_DIR; MODELS="v3_ctc v3_rnnt"
	$(VENV)/gigaam-api download $(MODELS)

.env:
	cp .env.example .env

build-docker: ## Build the image gigaam-api:latest for PLATFORM (default linux/amd64)
	docker build --platform $(PLATFORM) -t gigaam-api:latest .

up: .env ## Start the server in Docker (detached) on port 8000
	$(COMPOSE) up -d --build gigaam-api

down: ## Stop and remove the Docker containers (the data volume stays)
	$(COMPOSE) --profile tools down

logs: ## Follow the server's Docker logs
	$(COMPOSE) logs -f gigaam-api

download-weights: .env ## Fetch and verify weights into the Docker volume, then exit; MODELS="..."
	$(COMPOSE) --profile tools run --rm --build download-weights download $(MODELS)

clean: ## Remove caches, build leftovers and CI's extra venvs (keeps .venv, .env and the weights)
	rm -rf .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist *.egg-info bench/out \
		.venv-py312 .venv-floors
	find . -path './.venv*' -prune -o -type d -name __pycache__ -exec rm -rf {} +
