#!/usr/bin/env bash
# Builds every fuzz target and runs each for a short time (default 30 s).
# Needs `cargo install cargo-fuzz`; uses RUSTC_BOOTSTRAP so the stable
# toolchain accepts the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET=${1:-30}
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  echo "== fuzzing $target for ${SECONDS_PER_TARGET}s"
  cargo fuzz run "$target" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048
done
