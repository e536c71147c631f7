#!/usr/bin/env bash
# cargo deny for both workspaces, offline: advisories from the RustSec snapshot in
# ../shared/advisory-db (or $CHARTROOM_ADVISORY_DB), licences, sources. Fails on a
# vulnerable, unmaintained (unless deny.toml says why it stays) or yanked dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
snapshot=${CHARTROOM_ADVISORY_DB:-../shared/advisory-db}
[ -f "$snapshot/SNAPSHOT" ] || { echo "no advisory snapshot at $snapshot" >&2; exit 1; }
command -v cargo-deny >/dev/null || cargo install cargo-deny --locked

# cargo deny wants a git repository in the folder it derives from the database URL.
db="$PWD/target/advisory-db"
repo="$db/advisory-db-3157b0e258782691"
if [ "$(cat "$repo/SNAPSHOT" 2>/dev/null)" != "$(cat "$snapshot/SNAPSHOT")" ]; then
  rm -rf "$repo"
  mkdir -p "$repo"
  cp -r "$snapshot/." "$repo/"
  git -C "$repo" init -q
  git -C "$repo" add -A
  git -C "$repo" -c user.name=ci -c user.email=ci@localhost commit -qm "snapshot $(cut -d' ' -f2 "$snapshot/SNAPSHOT")"
fi
echo "advisories: $(cat "$snapshot/SNAPSHOT")"

check() { # workspace folder, then lints to allow
  local dir=$1
  shift
  local meta
  meta=$(mktemp)
  echo "==> cargo deny: $dir"
  # The metadata may fetch other platforms' crates from crates.io; the check itself is offline.
  cargo metadata --quiet --locked --format-version 1 --manifest-path "$dir/Cargo.toml" > "$meta"
  # The licence list is a policy, not an inventory: an allowed licence no crate uses is fine.
  cargo deny --manifest-path "$dir/Cargo.toml" --offline --metadata-path "$meta" \
    --config deny.toml check --show-stats -A license-not-encountered "$@" advisories licenses sources
  rm -f "$meta"
}
check .
# The collector links no GTK: deny.toml's ignores for the desktop's GTK 3 bindings match nothing.
check crates/collector -A advisory-not-detected
