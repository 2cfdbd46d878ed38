#!/usr/bin/env bash
# Installs everything the README's two commands need, idempotently:
#   - a project-local Python venv (.venv) with moto's server, boto3, pytest, cargo-lambda, cfn-lint;
#   - checkov in its own venv (.venv-lint), for the template's static checks;
#   - MariaDB (server + client) from the distribution's packages, for the SQL canary tests;
#   - rustfmt and clippy for `make lint`.
# Safe to run repeatedly; a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_python() {
  if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
  fi
  if ! cmp -s tests/requirements.txt .venv/.requirements.installed 2>/dev/null; then
    echo "setup: installing tests/requirements.txt into .venv"
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
    cp tests/requirements.txt .venv/.requirements.installed
  fi
}

need_lint() {
  if [[ ! -x .venv-lint/bin/python ]]; then
    echo "setup: creating .venv-lint (checkov)"
    python3 -m venv .venv-lint
  fi
  if ! cmp -s tests/lint-requirements.txt .venv-lint/.requirements.installed 2>/dev/null; then
    echo "setup: installing tests/lint-requirements.txt into .venv-lint"
    .venv-lint/bin/pip install --quiet --disable-pip-version-check -r tests/lint-requirements.txt
    cp tests/lint-requirements.txt .venv-lint/.requirements.installed
  fi
}

# The SAM CLI in a venv of its own: aws-sam-cli 1.170.0 and checkov 3.3.30 pin boto3 versions that
# pip cannot satisfy together ("ResolutionImpossible"), so it cannot share .venv-lint.
need_sam() {
  if [[ ! -x .venv-sam/bin/python ]]; then
    echo "setup: creating .venv-sam (aws-sam-cli)"
    python3 -m venv .venv-sam
  fi
  if ! cmp -s tests/sam-requirements.txt .venv-sam/.requirements.installed 2>/dev/null; then
    echo "setup: installing tests/sam-requirements.txt into .venv-sam"
    .venv-sam/bin/pip install --quiet --disable-pip-version-check -r tests/sam-requirements.txt
    cp tests/sam-requirements.txt .venv-sam/.requirements.installed
  fi
}

need_mariadb() {
  if command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]]; then
    return
  fi
  echo "setup: installing MariaDB from apt"
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo -n"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q >/dev/null
  # policy-rc.d keeps the package from starting a system-wide server: tests start their own.
  $sudo apt-get install -y -q --no-install-recommends mariadb-server mariadb-client >/dev/null
}

need_rust_tools() {
  if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true
  fi
}

need_python
need_lint
need_sam
need_mariadb
need_rust_tools
mariadbd_bin=$(command -v mariadbd || echo /usr/sbin/mariadbd)
echo "setup: ok ($(.venv/bin/python -c 'import moto; print("moto", moto.__version__)'), $("$mariadbd_bin" --version | awk '{print $1, $3}'))"
