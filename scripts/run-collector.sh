#!/usr/bin/env bash
# Builds and starts the clinic's audit collector with its embedded SQLite store, making a
# self-signed certificate on first run. Data and certificate live in $CHARTROOM_COLLECTOR_HOME
# (default ./collector-data). Extra arguments go to `serve` (e.g. --listen 0.0.0.0:8443).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
home=${CHARTROOM_COLLECTOR_HOME:-collector-data}
mkdir -p "$home"
(cd crates/collector && CARGO_TARGET_DIR=../../target/collector cargo build --release --locked)
bin=target/collector/release/chartroom-collector
if [ ! -f "$home/collector.crt" ]; then
  "$bin" cert --host localhost --host 127.0.0.1 --host "$(hostname)" --out "$home" >/dev/null
  echo "Made a self-signed certificate: $home/collector.crt (desktops pin it at enrollment)."
fi
export CHARTROOM_COLLECTOR_DB=${CHARTROOM_COLLECTOR_DB:-sqlite://$home/collector.db}
echo "Enrollment token for a desktop (valid 24 h): $("$bin" token)"
exec "$bin" serve --cert "$home/collector.crt" --key "$home/collector.key" "$@"
