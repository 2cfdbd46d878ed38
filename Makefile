# The README's two commands are `make demo` and `make test`; both install what they need first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv/bin
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export CARGO_TERM_COLOR ?= never

.PHONY: help setup build demo test test-rust test-replay lint bench fuzz reliability reliability-report reliability-clean clean rds-ca

help:
	@echo "make demo   - a scripted incident on the embedded emulated AWS (moto) + a real MariaDB"
	@echo "make test   - every test: lint, policy tables, adapters (real SDK types, real MariaDB), handler, replays"
	@echo "make bench  - cold start/RSS/zip, failover orchestration overhead (vs boto3), policy throughput -> bench-results/report.md; method in docs/bench.md"
	@echo "make fuzz   - cargo-fuzz targets signal and config, FUZZ_SECS each (default 60); crashes fail it"
	@echo "make reliability - hostile input, fault matrix, emulator faults/concurrency/switches; prints the figures"
	@echo "make setup  - only install: .venv (moto, boto3, pytest, cargo-lambda), MariaDB, clippy/rustfmt"

setup:
	@bash tests/setup-env.sh

build: setup
	cargo build --workspace --all-targets

# The RDS CA bundle the functions verify TLS against, from AWS (rds-ca/README.md); needed to deploy.
rds-ca:
	curl -fsSL https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem -o rds-ca/global-bundle.pem

demo: setup
	cargo build --quiet -p alarm-evaluator
	$(VENV)/python tests/demo.py

lint: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	# The Lambda binaries as they are deployed: without the adapters' `test-util` fakes.
	cargo clippy --quiet -p alarm-evaluator -p replica-promoter -p dns-pinner -p notifier -p witness -- -D warnings
	# The SAM CLI's own check, offline: a region and no credentials (tests/test_infra.py too).
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
	  AWS_DEFAULT_REGION=us-west-2 SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam validate --lint -t infra/template.yaml

test-rust: setup
	cargo test --workspace --quiet

test-replay: setup
	$(VENV)/pytest -q --durations=40 tests

test: reliability-clean lint test-rust test-replay

# Three parts side by side with a boto3 baseline (bench/run.py): cold start, orchestration overhead,
# policy throughput. Builds the release binaries first; writes bench-results/report.md and prints it.
bench: setup
	$(VENV)/python bench/run.py

# Fuzzing (nightly + cargo-fuzz, installed if missing). Seeds: every recorded delivery, payload AWS
# publishes (events/published/), domain event and hostile case for `signal`; the example site
# configuration for `config`. A crash leaves its
# input in fuzz/artifacts/<target>/ and fails the target: store it in events/hostile/ (see its
# README) and fix the bug.
FUZZ_SECS ?= 60
FUZZ_TARGETS := signal config
# Nightly with AddressSanitizer where a nightly toolchain is installed; otherwise the machine's
# stable toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz's -Z flags) and no sanitizer — safe Rust
# panics are caught either way (libfuzzer-sys aborts on a panic and saves the input).
FUZZ_CARGO := $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' && echo 'cargo +nightly fuzz' || echo 'RUSTC_BOOTSTRAP=1 cargo fuzz')
FUZZ_FLAGS := -O $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' || echo '--sanitizer none')

fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	@mkdir -p fuzz/corpus/signal fuzz/corpus/config
	@cp events/*.json events/domain/*.json fuzz/corpus/signal/
	@for f in events/published/*.json; do case "$$f" in */MANIFEST.json) ;; *) cp "$$f" fuzz/corpus/signal/ ;; esac; done
	@for f in events/hostile/*; do case "$$f" in */CASES.json|*/README.md) ;; *) cp "$$f" fuzz/corpus/signal/ ;; esac; done
	@cp infra/sites.example.json fuzz/corpus/config/
	@echo "fuzz: $(FUZZ_CARGO) $(FUZZ_FLAGS)"
	@cd fuzz && $(FUZZ_CARGO) build $(FUZZ_FLAGS)
	@failed=0; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t for $(FUZZ_SECS) s"; \
	  ( cd fuzz && $(FUZZ_CARGO) run $(FUZZ_FLAGS) $$t corpus/$$t -- -max_total_time=$(FUZZ_SECS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 ) 2>&1 \
	    | tee fuzz/$$t.log | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss|==[0-9]+== ERROR|SUMMARY|artifact_prefix|Test unit written)' ; \
	  if ls fuzz/artifacts/$$t/crash-* fuzz/artifacts/$$t/oom-* fuzz/artifacts/$$t/timeout-* >/dev/null 2>&1; then \
	    echo "fuzz $$t: FOUND: $$(ls fuzz/artifacts/$$t/)"; failed=1; \
	  else echo "fuzz $$t: no crash in $(FUZZ_SECS) s ($$(ls fuzz/corpus/$$t | wc -l) corpus entries)"; fi; \
	done; exit $$failed

# The issue-6 figures: each suite writes $(RELIABILITY_DIR)/<suite>.json; the report sums them and
# fails on any panic, mutation or wrong action, or on a suite that did not run.
RELIABILITY_DIR ?= $(CURDIR)/.run/reliability
export RELIABILITY_DIR

reliability: setup reliability-clean
	@failed=0; \
	$(VENV)/pytest -q tests/test_hostile.py || failed=1; \
	$(VENV)/pytest -q tests/test_storm.py || failed=1; \
	$(VENV)/pytest -q tests/test_witness.py || failed=1; \
	cargo test --quiet -p replica-promoter --test fault_matrix || failed=1; \
	cargo test --quiet -p replica-promoter --lib interleavings || failed=1; \
	cargo test --quiet -p dns-pinner --lib interleavings || failed=1; \
	$(VENV)/python tests/reliability_report.py || failed=1; \
	if [ $$failed -ne 0 ]; then echo "reliability: a suite failed (see above)"; fi; exit $$failed

# The figures of the last run of the suites (`make test` runs them all), without re-running them.
reliability-report:
	$(VENV)/python tests/reliability_report.py

reliability-clean:
	@mkdir -p $(RELIABILITY_DIR) && rm -f $(RELIABILITY_DIR)/*.json $(RELIABILITY_DIR)/REPORT.md

clean:
	cargo clean
	rm -rf .venv .run bench-results
