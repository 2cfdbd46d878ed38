# The README's two commands are `make demo` and `make test`; both install what they need first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv/bin
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export CARGO_TERM_COLOR ?= never

.PHONY: help setup build demo test test-rust test-replay lint bench clean

help:
	@echo "make demo   - a scripted incident on the embedded emulated AWS (moto) + a real MariaDB"
	@echo "make test   - every test: lint, policy tables, adapters (real SDK types, real MariaDB), handler, replays"
	@echo "make bench  - policy throughput (criterion); method in docs/bench.md"
	@echo "make setup  - only install: .venv (moto, boto3, pytest, cargo-lambda), MariaDB, clippy/rustfmt"

setup:
	@bash tests/setup-env.sh

build: setup
	cargo build --workspace --all-targets

demo: setup
	cargo build --quiet -p alarm-evaluator
	$(VENV)/python tests/demo.py

lint: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings

test-rust: setup
	cargo test --workspace --quiet

test-replay: setup
	$(VENV)/pytest -q tests

test: lint test-rust test-replay

bench: setup
	cargo bench -p failover-policy --bench verdicts -- --noplot

clean:
	cargo clean
	rm -rf .venv .run bench-results
