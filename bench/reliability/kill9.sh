#!/usr/bin/env bash
# kill -9 at random points of `backup files`, `prune` and `copy`, many times
# over, on a local and (with S3=1) an S3 repository. After every kill:
# `check --read-data` must pass (leftovers of a killed run are allowed as
# warnings, never errors), and every snapshot completed so far must restore
# byte-for-byte identical to the data it was taken from (compared with
# `diff -r`, an outside judge). Prints the counts for docs/RELIABILITY.md.
#
# Usage: bench/reliability/kill9.sh [RUNS]   (default 100; MB=64 of data)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${1:-100}
MB=${MB:-64}
OUT=${BENCH_DIR:-$ROOT/bench/out/kill9}
cargo build --locked --quiet --manifest-path "$ROOT/Cargo.toml" --bin lifeboat
LB=${CARGO_TARGET_DIR:-$ROOT/target}/debug/lifeboat
export LIFEBOAT_PASSWORD=reliability-passphrase LIFEBOAT_TO_PASSWORD=reliability-passphrase
rm -rf "$OUT"
mkdir -p "$OUT/data" "$OUT/states" "$OUT/restore"
if [ "${S3:-0}" = 1 ]; then
  # On the S3 test server (started here unless the test suite's is running).
  if [ -z "${LIFEBOAT_TEST_S3_ENDPOINT:-}" ]; then
    # shellcheck source=../../scripts/lib/s3-test-server.sh
    ROOT=$ROOT VENV=${VENV:-$ROOT/.venv} LOG_DIR=$OUT source "$ROOT/scripts/lib/s3-test-server.sh"
    start_s3_test_servers
    S3_STARTED=1
  fi
  export AWS_ENDPOINT_URL=$LIFEBOAT_TEST_S3_ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
  export LIFEBOAT_REPOSITORY="s3://${LIFEBOAT_TEST_S3_BUCKET:-lifeboat-test}/kill9-$(date +%s)"
else
  export LIFEBOAT_REPOSITORY=$OUT/repo
fi
REPLICA=$OUT/replica
trap '[ "${S3_STARTED:-0}" = 1 ] && kill "${S3_PIDS[@]}" 2>/dev/null; true' EXIT
"$LB" -q init --kdf-memory 19 --kdf-iterations 2
"$LB" -q copy --to "$REPLICA" --init --kdf-memory 19 --kdf-iterations 2 >/dev/null

# The data: MB MiB in 64 files of random bytes; before each run an eighth
# of it is rewritten and a few files change in one place.
python3 - "$OUT/data" "$MB" <<'PY'
import os, sys
root, mb = sys.argv[1], int(sys.argv[2])
for i in range(64):
    with open(os.path.join(root, f"f{i:02}"), "wb") as f:
        f.write(os.urandom(mb * 1024 * 1024 // 64))
PY
mutate() {
  python3 - "$OUT/data" "$1" <<'PY'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
# Eight files rewritten whole (new data to chunk, encrypt and write), six
# changed in one place (small deltas).
for i in rnd.sample(range(64), 8):
    p = os.path.join(root, f"f{i:02}")
    size = os.path.getsize(p)
    with open(p, "wb") as f:
        f.write(os.urandom(size))
for i in rnd.sample(range(64), 6):
    p = os.path.join(root, f"f{i:02}")
    with open(p, "r+b") as f:
        f.seek(rnd.randrange(os.path.getsize(p)))
        f.write(os.urandom(4096))
PY
}

kills=0 check_failures=0 restore_mismatches=0 restores=0
declare -A killed_during=([backup]=0 [prune]=0 [copy]=0)
# How long each command took when it last ran to the end (ms): kills land at
# a random point of that span, so most runs are killed somewhere inside.
declare -A took=([backup]=1000 [prune]=500 [copy]=500)
now_ms() { date +%s%3N; }
# Runs one command, killing it with SIGKILL at a random point; counts
# whether it was killed or finished first.
run_or_kill() {
  local what=$1; shift
  local start; start=$(now_ms)
  "$@" >/dev/null 2>&1 &
  local pid=$! state
  local at; at=$(python3 -c "import random; print(int(random.uniform(0, ${took[$what]} * 1.1)))")
  # Watch it (a finished process is a zombie, state Z, until waited for).
  while :; do
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
    if [ "$state" = Z ] || [ "$state" = X ] || (( $(now_ms) - start >= at )); then
      break
    fi
    sleep 0.005
  done
  if [ "$state" != Z ] && [ "$state" != X ]; then
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    kills=$((kills + 1))
    killed_during[$what]=$((killed_during[$what] + 1))
    return 1
  fi
  wait "$pid"
  took[$what]=$(( $(now_ms) - start ))
}

for run in $(seq 1 "$RUNS"); do
  mutate "$run"
  case $((run % 4)) in
    0) "$LB" -q forget --keep-last 3 >/dev/null
       run_or_kill prune "$LB" -q prune --grace 0 --max-unused 0% || true ;;
    1) run_or_kill copy "$LB" -q copy --to "$REPLICA" || true ;;
    *) run_or_kill backup "$LB" -q backup files "$OUT/data" --force || true ;;
  esac
  # A complete backup of the current data, remembered for the restores.
  id=$("$LB" --json backup files "$OUT/data" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  rm -rf "$OUT/states/$id" && cp -r "$OUT/data" "$OUT/states/$id"
  if ! "$LB" -q check --read-data >"$OUT/check.log" 2>&1; then
    check_failures=$((check_failures + 1))
    echo "run $run: check --read-data failed:" >&2
    cat "$OUT/check.log" >&2
  fi
  # Every snapshot still in the repository restores identical to its data.
  for snap in $("$LB" --json snapshots | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))'); do
    [ -d "$OUT/states/$snap" ] || continue
    rm -rf "$OUT/restore" && mkdir -p "$OUT/restore"
    "$LB" -q restore files "$snap" --target "$OUT/restore"
    restores=$((restores + 1))
    if ! diff -r "$OUT/states/$snap" "$OUT/restore$OUT/data" >/dev/null; then
      restore_mismatches=$((restore_mismatches + 1))
      echo "run $run: snapshot ${snap:0:8} restores different" >&2
    fi
  done
  # Snapshots forgotten by the retention runs are not compared again.
  for d in "$OUT"/states/*; do
    "$LB" --json snapshots | grep -q "$(basename "$d")" || rm -rf "$d"
  done
  printf 'run %d/%d: kills %d (backup %d, prune %d, copy %d), check failures %d, restores %d, mismatches %d\n' \
    "$run" "$RUNS" "$kills" "${killed_during[backup]}" "${killed_during[prune]}" "${killed_during[copy]}" \
    "$check_failures" "$restores" "$restore_mismatches"
done
# The replica, after all the killed copies: one more copy completes it.
"$LB" -q copy --to "$REPLICA"
replica_ok=yes
LIFEBOAT_REPOSITORY=$REPLICA "$LB" -q check --read-data || replica_ok=no
echo
echo "runs: $RUNS; killed: $kills (backup ${killed_during[backup]}, prune ${killed_during[prune]}, copy ${killed_during[copy]})"
echo "check --read-data after every run: $check_failures failure(s)"
echo "restores compared with diff -r: $restores, mismatches: $restore_mismatches"
echo "replica after killed copies, check --read-data: $replica_ok"
[ "$check_failures" = 0 ] && [ "$restore_mismatches" = 0 ] && [ "$replica_ok" = yes ]
