#!/usr/bin/env bash
# Builds and starts the Chartroom desktop app, installing what it needs first.
# The vault folder is CHARTROOM_VAULT, or ~/.local/share/chartroom/vault.
#   scripts/run.sh --demo   opens a synthetic demo clinic instead (its own vault folder)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh app
(cd ui && npm run build --silent)
exec cargo run --release -p chartroom-desktop -- "$@"
