#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo-fuzz, libFuzzer, the nightly toolchain) for a
# bounded time each and fails on the first crash, hang or memory blow-up. CI runs it with
# the default minute per target; to fuzz longer: FUZZ_SECONDS=3600 scripts/fuzz.sh, or one
# target: scripts/fuzz.sh push. New inputs go to target/fuzz-corpus (rebuildable), never
# into the seeds in fuzz/corpus; a crash is saved under fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${FUZZ_SECONDS:-60}
rustup run nightly rustc --version >/dev/null 2>&1 || {
  echo "fuzzing needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
for t in "${targets[@]}"; do
  echo "==> fuzz $t (${seconds} s)"
  work="target/fuzz-corpus/$t"
  mkdir -p "$work"
  log="target/fuzz-corpus/$t.log"
  if cargo +nightly fuzz run "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
  else
    tail -60 "$log" >&2
    echo "fuzz target $t failed: the input is under fuzz/artifacts/$t" >&2
    exit 1
  fi
done
