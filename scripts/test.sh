#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, unit and integration tests, the SQLCipher
# interop suite and the desktop end-to-end suite. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
started=$(date +%s)
step() { echo; echo "==> $* ($(( $(date +%s) - started ))s)"; }

step "setup"
scripts/setup.sh test

step "cargo fmt --check"
cargo fmt --all -- --check
(cd crates/collector && cargo fmt -- --check)

step "cargo deny: advisories (offline RustSec snapshot), licences, sources, both workspaces"
scripts/deny.sh

step "ui: svelte-check, Vitest, build (the desktop binary embeds ui/dist)"
(cd ui && npm test --silent && npm run build --silent)

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the collector (its own workspace: it links no SQLCipher): clippy, build"
# Its own target folder: its SQLite (sqlx) and the desktop's SQLCipher never share a build.
export CARGO_TARGET_DIR_COLLECTOR="$PWD/target/collector"
(cd crates/collector && CARGO_TARGET_DIR="$CARGO_TARGET_DIR_COLLECTOR" cargo clippy --locked --all-targets -- -D warnings \
  && CARGO_TARGET_DIR="$CARGO_TARGET_DIR_COLLECTOR" cargo build --locked)

step "the collector's tests, against SQLite and PostgreSQL (loopback, real processes, rsyslog)"
(cd crates/collector && CHARTROOM_TEST_POSTGRES="postgres://chartroom:chartroom-test@127.0.0.1/chartroom_test" \
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR_COLLECTOR" cargo test --locked -- --test-threads=1)

step "cargo nextest (unit and integration tests; sync tests run the real collector)"
CHARTROOM_COLLECTOR_BIN="$CARGO_TARGET_DIR_COLLECTOR/debug/chartroom-collector" \
  cargo nextest run --workspace --locked --no-fail-fast

step "fuzz every parser of outside input, a minute per target (nightly, cargo-fuzz)"
scripts/fuzz.sh

step "build the binaries the process-level suites drive"
cargo build --locked -p chartroom-cli -p chartroom-desktop

step "interop: sqlcipher3 opens the vault with the exported key"
timeout 600 .venv/bin/python -m pytest tests/interop -q

step "e2e: the desktop app under Xvfb over WebDriver"
# A hung WebDriver session must fail the run, not stall CI.
timeout 600 xvfb-run -a -s "-screen 0 1280x900x24" .venv/bin/python -m pytest tests/e2e -q -o faulthandler_timeout=300

step "all checks passed"
