#!/usr/bin/env bash
# lifeboat prune vs restic prune on the same history, in the same run.
#
# Builds one history for both tools: FILES files of 512 KiB (each one chunk
# for both), backed up SNAPS times, replacing CHANGE random files with new
# content before each backup. A copy of both repositories is kept at half the
# history. Then, for each of RUNS rounds, on fresh copies with the page cache
# dropped:
#   - forget all but the newest 70 % of the snapshots (about 20 % of the
#     stored data becomes garbage), untimed;
#   - prune, timed: `lifeboat prune --grace 0` and `restic prune` (both with
#     their default 5 % unused tolerance, so both repack);
# at half the history and at the full one, to show whether peak memory grows
# with the number of snapshots. Prints medians and lifeboat/restic ratios,
# and checks both pruned repositories (`check --read-data`) and that their
# newest snapshot restores identical to the data.
#
# Usage: bench/prune.sh [RUNS]   (default 3; SNAPS=100 FILES=400 CHANGE=8)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${BENCH_DIR:-$ROOT/bench/out/prune}
RUNS=${1:-3}
SNAPS=${SNAPS:-100}
FILES=${FILES:-400}
CHANGE=${CHANGE:-8}
HALF=$((SNAPS / 2))

need() { command -v "$1" >/dev/null 2>&1; }
if ! need restic || [ ! -x /usr/bin/time ]; then
  apt-get install -y restic time >/dev/null
fi
cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml"
LB=$ROOT/target/release/lifeboat
export LIFEBOAT_PASSWORD=bench-passphrase RESTIC_PASSWORD=bench-passphrase
R() { restic -r "$1" --cache-dir "$OUT/restic-cache" -q "${@:2}"; }

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || echo "warning: cannot drop the page cache (not root?)" >&2; }

DATA=$OUT/data
if [ ! -f "$OUT/.history-$SNAPS-$FILES-$CHANGE" ]; then
  rm -rf "$OUT"
  mkdir -p "$DATA"
  echo "building a history of $SNAPS snapshots of $FILES files, $CHANGE replaced each time" >&2
  for i in $(seq 1 "$FILES"); do head -c 512K /dev/urandom >"$DATA/f$i"; done
  LIFEBOAT_REPOSITORY=$OUT/lifeboat-full "$LB" init -q
  R "$OUT/restic-full" init
  for s in $(seq 1 "$SNAPS"); do
    for i in $(shuf -i 1-"$FILES" -n "$CHANGE"); do head -c 512K /dev/urandom >"$DATA/f$i"; done
    LIFEBOAT_REPOSITORY=$OUT/lifeboat-full "$LB" -q backup files "$DATA"
    R "$OUT/restic-full" backup "$DATA"
    if [ "$s" = "$HALF" ]; then
      cp -a "$OUT/lifeboat-full" "$OUT/lifeboat-half"
      cp -a "$OUT/restic-full" "$OUT/restic-half"
    fi
  done
  touch "$OUT/.history-$SNAPS-$FILES-$CHANGE"
fi
echo "history: lifeboat $(du -sh "$OUT/lifeboat-full" | cut -f1), restic $(du -sh "$OUT/restic-full" | cut -f1)" >&2

RESULTS=$OUT/results.tsv
: >"$RESULTS"
# measure TOOL STEP RUN CMD... : appends "tool step run wall cpu rss_kib"
measure() {
  local tool=$1 step=$2 run=$3
  shift 3
  /usr/bin/time -f "%e %U %S %M" -o "$OUT/time.txt" "$@" >"$OUT/stdout.txt" 2>"$OUT/stderr.txt" || {
    cat "$OUT/stderr.txt" >&2
    exit 1
  }
  read -r wall user sys rss <"$OUT/time.txt"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$run" "$wall" "$(awk "BEGIN { print $user + $sys }")" "$rss" >>"$RESULTS"
}
size() { du -sb "$1" | cut -f1; }

for run in $(seq 1 "$RUNS"); do
  for hist in half full; do
    n=$([ $hist = half ] && echo "$HALF" || echo "$SNAPS")
    keep=$((n * 7 / 10))
    for tool in lifeboat restic; do
      repo=$OUT/work-$tool
      rm -rf "$repo" "$OUT/restic-cache"
      cp -a "$OUT/$tool-$hist" "$repo"
      echo "run $run, $n snapshots: $tool" >&2
      if [ $tool = lifeboat ]; then
        export LIFEBOAT_REPOSITORY=$repo
        "$LB" -q forget --keep-last "$keep"
        before=$(size "$repo")
        drop_caches
        measure lifeboat "prune-$n" "$run" "$LB" -q prune --grace 0
        after=$(size "$repo")
        if [ "$run" = 1 ] && [ $hist = full ]; then
          "$LB" -q check --read-data
          rm -rf "$OUT/restore"
          "$LB" -q restore files latest --target "$OUT/restore"
        fi
      else
        R "$repo" forget --keep-last "$keep"
        before=$(size "$repo")
        drop_caches
        measure restic "prune-$n" "$run" restic -r "$repo" --cache-dir "$OUT/restic-cache" -q prune
        after=$(size "$repo")
        if [ "$run" = 1 ] && [ $hist = full ]; then
          R "$repo" check --read-data
          rm -rf "$OUT/restore"
          R "$repo" restore latest --target "$OUT/restore"
        fi
      fi
      if [ "$run" = 1 ] && [ $hist = full ] && ! diff -rq "$DATA" "$OUT/restore$DATA" >/dev/null; then
        echo "error: $tool restored data differs after prune" >&2
        exit 1
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "reclaimed-$n" "$run" 0 0 "$((before - after))" >>"$RESULTS"
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "garbage-$n" "$run" 0 0 "$((100 * (before - after) / before))" >>"$RESULTS"
    done
  done
done
rm -rf "$OUT/work-lifeboat" "$OUT/work-restic" "$OUT/restore"

python3 - "$RESULTS" "$RUNS" "$HALF" "$SNAPS" <<'PY'
import statistics, sys
from collections import defaultdict
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
by = defaultdict(list)
for tool, step, run, wall, cpu, rss in rows:
    by[(tool, step)].append((float(wall), float(cpu), int(rss)))
med = statistics.median
print(f"\nmedians of {sys.argv[2]} run(s)\n")
print(f"{'step':<16}{'metric':<14}{'lifeboat':>12}{'restic':>12}{'ratio':>9}")
for n in sys.argv[3:5]:
    for step, metrics in [
        (f"prune-{n}", [("wall s", 0, 1), ("cpu s", 1, 1), ("rss MiB", 2, 1024)]),
        (f"reclaimed-{n}", [("MiB", 2, 2**20)]),
        (f"garbage-{n}", [("% of repo", 2, 1)]),
    ]:
        for name, i, div in metrics:
            vals = {t: med([r[i] for r in by[(t, step)]]) / div for t in ["lifeboat", "restic"]}
            ratio = vals["lifeboat"] / vals["restic"] if vals["restic"] else float("nan")
            print(f"{step:<16}{name:<14}{vals['lifeboat']:>12.2f}{vals['restic']:>12.2f}{ratio:>9.2f}")
PY
