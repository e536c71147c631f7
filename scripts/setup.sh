#!/usr/bin/env bash
# Installs what Chartroom needs on a Debian 12 machine. Safe to run again: each step skips
# what is already there.
#   scripts/setup.sh app     what running the desktop app needs
#   scripts/setup.sh test    that, plus what the test suites need
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:-test}

APP_PACKAGES=(build-essential pkg-config libssl-dev libwebkit2gtk-4.1-dev libgtk-3-dev
  libayatana-appindicator3-dev librsvg2-dev)
TEST_PACKAGES=(xvfb xauth webkit2gtk-driver imagemagick python3-venv age postgresql rsyslog
  rsyslog-gnutls)

packages=("${APP_PACKAGES[@]}")
[ "$want" = test ] && packages+=("${TEST_PACKAGES[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "Rust is needed: https://rustup.rs" >&2; exit 1; }
command -v npm >/dev/null || { echo "Node.js 20+ with npm is needed" >&2; exit 1; }

# npm install, not npm ci: npm 11 here writes lock files without other platforms' optional
# rollup binaries, which npm ci then rejects. The lock file still pins every version.
echo "==> npm install (ui)"
(cd ui && npm install --no-audit --no-fund --loglevel=error)

if [ "$want" = test ]; then
  if ! command -v cargo-nextest >/dev/null; then
    echo "==> cargo install cargo-nextest"
    cargo install cargo-nextest --locked
  fi
  if ! command -v cargo-fuzz >/dev/null; then
    echo "==> cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi
  if ! command -v cargo-deny >/dev/null; then
    echo "==> cargo install cargo-deny"
    cargo install cargo-deny --locked
  fi
  if ! command -v tauri-driver >/dev/null && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
    echo "==> cargo install tauri-driver"
    cargo install tauri-driver --locked
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "==> python venv"
    python3 -m venv .venv
  fi
  if [ -d ../shared/fhir/validate ]; then
    # The shared FHIR validator (Medplum's, with US Core 5.0.1), copied beside the build so
    # the shared folder stays as it is; npm fetches its two pinned packages.
    echo "==> the FHIR validator (../shared/fhir/validate)"
    mkdir -p target/fhir
    cp -r ../shared/fhir/validate ../shared/fhir/us-core-5.0.1 target/fhir/
    (cd target/fhir/validate && npm install --no-audit --no-fund --loglevel=error)
  fi
  echo "==> pip install -r tests/requirements.txt"
  .venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
fi

if [ "$want" = test ]; then
  # PostgreSQL on loopback for the collector's second storage backend: the Debian cluster,
  # a role and a database for the tests (nothing else listens beyond 127.0.0.1).
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main"; then
    echo "==> create the PostgreSQL $version cluster"
    $sudo pg_createcluster "$version" main >/dev/null
  fi
  if ! pg_lsclusters -h 2>/dev/null | grep -q " online"; then
    echo "==> start PostgreSQL $version"
    $sudo pg_ctlcluster "$version" main start
  fi
  if ! $sudo runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'chartroom'" | grep -q 1; then
    $sudo runuser -u postgres -- psql -q -c "CREATE ROLE chartroom LOGIN PASSWORD 'chartroom-test'"
  fi
  if ! $sudo runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'chartroom_test'" | grep -q 1; then
    $sudo runuser -u postgres -- createdb -O chartroom chartroom_test
  fi
fi
