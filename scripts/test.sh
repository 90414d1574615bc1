#!/usr/bin/env bash
# Runs every check and test of the workspace; installs what it needs first.
# Usage: scripts/test.sh        (what CI runs, via .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Stable toolchain components (no nightly anywhere).
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  step "installing rustfmt and clippy"
  rustup component add rustfmt clippy
fi

# Python tools for the AWS side, in a virtualenv at .venv: moto (server mode: DynamoDB, SQS,
# Secrets Manager, EventBridge and IAM on loopback for the AWS adapter, end-to-end and IAM policy
# tests), cfn-lint (the SAM template) and the SAM translator (the template as CloudFormation
# receives it, for tests/tests/template.rs and tests/tests/iam_policies.rs, through
# scripts/sam_template.py). Pinned, so every machine tests against the same emulator.
MOTO_VERSION=5.2.5
CFN_LINT_VERSION=1.58.0
SAM_TRANSLATOR_VERSION=1.115.0
# openapi-spec-validator: the admin API's OpenAPI document (docs/openapi.json) against the
# OpenAPI 3.1 specification.
OPENAPI_VALIDATOR_VERSION=0.9.0
if ! .venv/bin/python -c "import moto, samtranslator, openapi_spec_validator, importlib.metadata as m; assert m.version('moto') == '$MOTO_VERSION' and m.version('cfn-lint') == '$CFN_LINT_VERSION' and m.version('aws-sam-translator') == '$SAM_TRANSLATOR_VERSION' and m.version('openapi-spec-validator') == '$OPENAPI_VALIDATOR_VERSION'" >/dev/null 2>&1; then
  step "installing moto $MOTO_VERSION, cfn-lint $CFN_LINT_VERSION, aws-sam-translator $SAM_TRANSLATOR_VERSION and openapi-spec-validator $OPENAPI_VALIDATOR_VERSION into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION" \
    "aws-sam-translator==$SAM_TRANSLATOR_VERSION" \
    "openapi-spec-validator==$OPENAPI_VALIDATOR_VERSION"
fi

# Chromium and chromedriver for the admin console's browser test
# (shared/local/tests/console_browser.rs, which fails without them): Debian's packages, installed
# only when missing.
if { [ -z "${ENTRA_SYNC_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; } ||
   { [ -z "${ENTRA_SYNC_CHROMEDRIVER:-}" ] && [ ! -x /usr/bin/chromedriver ]; }; then
  step "installing chromium and chromium-driver (apt-get)"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  if ! { $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq chromium chromium-driver; } >/dev/null; then
    echo "Could not install chromium and chromium-driver with apt-get; the console's browser test needs them." >&2
    echo "Install them yourself (Debian/Ubuntu: apt-get install -y chromium chromium-driver), or set" >&2
    echo "ENTRA_SYNC_CHROMIUM and ENTRA_SYNC_CHROMEDRIVER to other binaries, and run this again." >&2
    exit 1
  fi
fi

# The committed document is the generated one (the cargo tests check that); here it is checked
# against the OpenAPI 3.1 specification.
step "openapi-spec-validator docs/openapi.json"
.venv/bin/openapi-spec-validator docs/openapi.json

step "cfn-lint infra/template.yaml"
.venv/bin/cfn-lint infra/template.yaml

# The template after the SAM transform: CloudFormation refuses a dependency cycle, which only
# shows after the transform (tests/tests/template.rs checks the same, among the other tests).
step "SAM transform: no dependency cycle"
.venv/bin/python scripts/sam_template.py cycles >/dev/null

# moto on a free loopback port for the test run; stopped when this script exits. (The IAM policy
# test starts moto servers of its own from .venv, with IAM enforcement.)
moto_port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
moto_log=$(mktemp)
# scripts/moto_server.py is moto_server with DynamoDB requests one at a time, so conditional
# writes are atomic as in DynamoDB (plain moto lets two racing conditional puts both succeed).
.venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p "$moto_port" >"$moto_log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; rm -f "$moto_log"' EXIT
export ENTRA_SYNC_MOTO_URL="http://127.0.0.1:$moto_port"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# moto started long ago by now; make sure it answers before the tests need it.
moto_up=no
for _ in $(seq 1 150); do
  if .venv/bin/python -c "import urllib.request; urllib.request.urlopen('$ENTRA_SYNC_MOTO_URL/moto-api/reset', data=b'', timeout=1)" >/dev/null 2>&1; then
    moto_up=yes
    break
  fi
  kill -0 "$moto_pid" 2>/dev/null || break
  sleep 0.2
done
if [ "$moto_up" != yes ]; then
  cat "$moto_log" >&2
  echo "moto did not start on $ENTRA_SYNC_MOTO_URL" >&2
  exit 1
fi

if cargo nextest --version >/dev/null 2>&1; then
  step "tests (cargo nextest)"
  cargo nextest run --workspace --locked --profile ci
  step "doctests"
  cargo test --workspace --locked --doc
else
  step "tests (cargo test; cargo-nextest not installed)"
  cargo test --workspace --locked
fi
