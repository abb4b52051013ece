# Everyday commands. `make help` lists them.
.PHONY: help setup test lint lock bench ci run

help:
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: ## create .venv with dev tools and the Debian test servers
	scripts/setup.sh --test

test: ## run the whole test suite
	.venv/bin/python -m pytest

lint: ## ruff and mypy
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

lock: ## refresh uv.lock to the newest versions pyproject.toml allows
	scripts/lock.sh --upgrade

bench: ## run every benchmark and write bench/results/
	.venv/bin/python -m bench

run: ## one sensor on the defaults for 30 seconds
	.venv/bin/python main.py --config config.yaml --identity node_identity.json --run-time 30

ci: ## what CI runs
	bash .ci/run
