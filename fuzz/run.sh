#!/usr/bin/env bash
# Builds every fuzz target and runs each for a time or a number of inputs:
#   fuzz/run.sh 30              30 seconds per target (the default)
#   fuzz/run.sh --runs 10000000 ten million executions per target
# Needs `cargo install cargo-fuzz`; uses RUSTC_BOOTSTRAP so the stable
# toolchain accepts the sanitizer flags cargo-fuzz passes. Prints, per
# target, the executions done, the time taken and the crashes found.
set -euo pipefail
cd "$(dirname "$0")"
if [[ "${1:-}" == "--runs" ]]; then
  limit=(-runs="${2:?--runs needs a number}")
  what="${2} executions"
else
  limit=(-max_total_time="${1:-30}")
  what="${1:-30}s"
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for target in $(cargo fuzz list); do
  echo "== fuzzing $target for $what"
  start=$(date +%s)
  log=$(mktemp)
  if cargo fuzz run -O "$target" -- "${limit[@]}" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    verdict="0 crashes"
  else
    verdict="CRASH (see fuzz/artifacts/$target)"
  fi
  runs=$(grep -a 'stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
  echo "$target: ${runs:-?} executions in $(( $(date +%s) - start ))s, $verdict"
  rm -f "$log"
done
