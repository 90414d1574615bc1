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

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
  step "tests (cargo nextest)"
  cargo nextest run --workspace --locked --profile ci
  step "doctests"
  cargo test --workspace --locked --doc
else
  step "tests (cargo test; cargo-nextest not installed)"
  cargo test --workspace --locked
fi
