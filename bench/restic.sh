#!/usr/bin/env bash
# lifeboat vs restic on the same data, in the same run.
#
# Installs restic (and GNU time) from Debian's packages if missing, generates
# a ~2.3 GiB data set of mixed file sizes with some duplication
# (bench/gen-data.py), then for each of RUNS rounds and each tool:
#   1. backup into a fresh local repository with the page cache dropped (cold),
#   2. backup again (nothing changed),
#   3. restore the latest snapshot into an empty directory (cache dropped),
#      timed until the data is on disk: lifeboat syncs before it exits,
#      restic does not, so both are timed together with a `sync`.
# It prints wall time, CPU time (user+sys), peak RSS and stored bytes of every
# step, then the medians and lifeboat/restic ratios.
#
# Usage: bench/restic.sh [RUNS]   (default 3; needs root to drop the page cache)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${BENCH_DIR:-$ROOT/bench/out}
RUNS=${1:-3}
DATA=$OUT/data

need() { command -v "$1" >/dev/null 2>&1; }
if ! need restic || [ ! -x /usr/bin/time ]; then
  apt-get install -y restic time >/dev/null
fi
cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml"
LB=$ROOT/target/release/lifeboat

if [ ! -f "$DATA/.complete" ]; then
  echo "generating the data set in $DATA" >&2
  rm -rf "$DATA"
  python3 "$ROOT/bench/gen-data.py" "$DATA"
  touch "$DATA/.complete"
fi
echo "data set: $(du -sh --apparent-size "$DATA" | cut -f1), $(find "$DATA" -type f | wc -l) files" >&2

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || echo "warning: cannot drop the page cache (not root?)" >&2; }

RESULTS=$OUT/results.tsv
: >"$RESULTS"
# measure TOOL STEP RUN CMD... : appends "tool step run wall cpu rss_kib"
measure() {
  local tool=$1 step=$2 run=$3
  shift 3
  /usr/bin/time -f "%e %U %S %M" -o "$OUT/time.txt" "$@" >/dev/null 2>"$OUT/stderr.txt" || {
    cat "$OUT/stderr.txt" >&2
    exit 1
  }
  read -r wall user sys rss <"$OUT/time.txt"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$run" "$wall" "$(awk "BEGIN { print $user + $sys }")" "$rss" >>"$RESULTS"
}
stored() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" 0 0 "$(du -sb "$4" | cut -f1)" >>"$RESULTS"; }

export LIFEBOAT_PASSWORD=bench-passphrase RESTIC_PASSWORD=bench-passphrase
for run in $(seq 1 "$RUNS"); do
  for tool in lifeboat restic; do
    repo=$OUT/repo-$tool
    target=$OUT/restore-$tool
    rm -rf "$repo" "$target" "$OUT/restic-cache"
    echo "run $run: $tool" >&2
    if [ $tool = lifeboat ]; then
      export LIFEBOAT_REPOSITORY=$repo
      "$LB" init -q
      drop_caches
      measure lifeboat backup "$run" "$LB" -q backup files "$DATA"
      stored lifeboat stored "$run" "$repo"
      measure lifeboat backup-again "$run" "$LB" -q backup files "$DATA"
      drop_caches
      measure lifeboat restore "$run" sh -c '"$0" -q restore files latest --target "$1" && sync' "$LB" "$target"
    else
      restic -r "$repo" --cache-dir "$OUT/restic-cache" init -q
      drop_caches
      measure restic backup "$run" restic -r "$repo" --cache-dir "$OUT/restic-cache" -q backup "$DATA"
      stored restic stored "$run" "$repo"
      measure restic backup-again "$run" restic -r "$repo" --cache-dir "$OUT/restic-cache" -q backup "$DATA"
      drop_caches
      measure restic restore "$run" sh -c 'restic -r "$0" --cache-dir "$1" -q restore latest --target "$2" && sync' \
        "$repo" "$OUT/restic-cache" "$target"
    fi
    if ! diff -rq "$DATA" "$target$DATA" >/dev/null; then
      echo "error: $tool restored data differs from the source" >&2
      exit 1
    fi
    rm -rf "$target"
  done
done

python3 - "$RESULTS" "$RUNS" <<'PY'
import statistics, sys
from collections import defaultdict
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
by = defaultdict(list)
for tool, step, run, wall, cpu, rss in rows:
    by[(tool, step)].append((float(wall), float(cpu), int(rss)))
med = lambda xs: statistics.median(xs)
print(f"\nmedians of {sys.argv[2]} run(s); RSS in MiB, stored in MiB\n")
print(f"{'step':<14}{'metric':<10}{'lifeboat':>12}{'restic':>12}{'ratio':>9}")
for step in ["backup", "backup-again", "restore", "stored"]:
    metrics = [("stored", 2)] if step == "stored" else [("wall s", 0), ("cpu s", 1), ("rss MiB", 2)]
    for name, i in metrics:
        vals = {}
        for tool in ["lifeboat", "restic"]:
            xs = [r[i] for r in by[(tool, step)]]
            v = med(xs)
            vals[tool] = v / 1024 if name == "rss MiB" else v / 2**20 if step == "stored" else v
        ratio = vals["lifeboat"] / vals["restic"] if vals["restic"] else float("nan")
        print(f"{step:<14}{name:<10}{vals['lifeboat']:>12.2f}{vals['restic']:>12.2f}{ratio:>9.2f}")
PY
