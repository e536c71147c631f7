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

step "ui: svelte-check, Vitest, build (the desktop binary embeds ui/dist)"
(cd ui && npm test --silent && npm run build --silent)

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo nextest (unit and integration tests)"
cargo nextest run --workspace --locked --no-fail-fast

step "build the binaries the process-level suites drive"
cargo build --locked -p chartroom-cli -p chartroom-desktop

step "interop: sqlcipher3 opens the vault with the exported key"
timeout 600 .venv/bin/python -m pytest tests/interop -q

step "e2e: the desktop app under Xvfb over WebDriver"
# A hung WebDriver session must fail the run, not stall CI.
timeout 600 xvfb-run -a -s "-screen 0 1280x900x24" .venv/bin/python -m pytest tests/e2e -q -o faulthandler_timeout=300

step "all checks passed"
