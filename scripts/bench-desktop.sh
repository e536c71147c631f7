#!/usr/bin/env bash
# The desktop app's benchmark (bench/desktop.py): cold start, unlock, a big chart in a
# 100,000-patient demo clinic, memory after an hour-like session. Release build, under Xvfb.
#   CHARTROOM_BENCH_PATIENTS=20000 scripts/bench-desktop.sh   for a quicker run
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh test
(cd ui && npm run build --silent)
cargo build --release --locked -p chartroom-desktop -p chartroom-cli
exec xvfb-run -a -s "-screen 0 1280x900x24" .venv/bin/python bench/desktop.py
