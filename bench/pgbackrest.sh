#!/usr/bin/env bash
# lifeboat vs pgBackRest on the same PostgreSQL cluster, in the same run.
#
# Installs pgBackRest, zstd and GNU time from Debian's packages if missing,
# creates a throwaway cluster with a pgbench database (scale $SCALE, default
# 50: about 750 MiB), and for each of RUNS rounds measures, for both tools
# with comparable settings (zstd level 3, encryption on, 2 processes,
# asynchronous / ahead-of-time archiving, fast checkpoint):
#   1. a full base backup (wall time, stored bytes),
#   2. an incremental backup after pgbench churn (wall time, bytes added),
#   3. a full restore into an empty directory, until synced to disk,
#   4. WAL archiving throughput: a backlog of WAL is built with archiving
#      failing, then each tool drains it; MiB of WAL archived per second.
# It also prints the floor: `tar | zstd -T2` of the same data directory, and
# each tool's peak memory (GNU time's maximum RSS) in the full backup.
#
# STEPS chooses what runs (default "full incremental restore archive"; the
# restore needs the full backup). The churn is CHURN_SECONDS of pgbench (default 30), or, with
# CHURN_TRANSACTIONS=N, exactly N pgbench transactions. DATA=mixed adds the
# data set of the performance issue: a table of $IDS_ROWS (2 million) rows of
# uuids, hex digests and jsonb, far less compressible than pgbench's rows,
# of which the churn updates $IDS_UPDATES (1 %) rows at random.
# The cluster archives into both repositories during backups (both tools
# need their WAL), so both pay the same archiving cost there.
#
# Usage: bench/pgbackrest.sh [RUNS]     (default 3; run as root or postgres)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${BENCH_DIR:-$ROOT/bench/out}/pg
RUNS=${1:-3}
SCALE=${SCALE:-50}
CHURN_SECONDS=${CHURN_SECONDS:-30}
WAL_MB=${WAL_MB:-1024}
CHURN_TRANSACTIONS=${CHURN_TRANSACTIONS:-0}
DATA=${DATA:-default}
case $DATA in
  default) IDS_ROWS=${IDS_ROWS:-0} ;;
  mixed) IDS_ROWS=${IDS_ROWS:-2000000} ;;
  *) echo "DATA must be default or mixed" >&2; exit 2 ;;
esac
IDS_UPDATES=${IDS_UPDATES:-$((IDS_ROWS / 100))}
STEPS=${STEPS:-full incremental restore archive}
step() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if ! command -v pgbackrest >/dev/null || ! command -v zstd >/dev/null || [ ! -x /usr/bin/time ]; then
  apt-get install -y -qq pgbackrest zstd time >/dev/null
fi
# shellcheck source=../scripts/lib/ensure-postgres.sh
. "$ROOT/scripts/lib/ensure-postgres.sh"
# shellcheck source=lib/events.sh
. "$ROOT/bench/lib/events.sh"
cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml"
LB=$ROOT/target/release/lifeboat

if [ "$(id -u)" -eq 0 ]; then
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$OUT/data" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
rm -rf "$OUT"
mkdir -p "$OUT"
[ "$(id -u)" -eq 0 ] && chown postgres: "$OUT"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PASS=$OUT/passphrase
as_pg sh -c "umask 077; echo bench-passphrase-$$ > '$PASS'"
export LIFEBOAT_PASSWORD_FILE=$PASS
CONF=$OUT/pgbackrest.conf
as_pg tee "$CONF" >/dev/null <<EOF
[global]
repo1-path=$OUT/pgbr-repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench-passphrase-$$
repo1-retention-full=100
compress-type=zst
compress-level=3
process-max=2
start-fast=y
archive-async=y
spool-path=$OUT/pgbr-spool
lock-path=$OUT/pgbr-lock
log-path=$OUT/pgbr-log
log-level-console=warn
log-level-file=off

[bench]
pg1-path=$OUT/data
pg1-port=$PORT
pg1-socket-path=$OUT
EOF
PGBR="pgbackrest --config=$CONF --stanza=bench"
LBR="$LB --repo $OUT/lb-repo --password-file $PASS"

psql_() { as_pg "$PGBIN/psql" -h "$OUT" -p "$PORT" -U postgres -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
set_archive() {
  psql_ "ALTER SYSTEM SET archive_command = '$1'"
  psql_ "SELECT pg_reload_conf()" >/dev/null
}
wait_archived() {
  local wal
  wal=$(psql_ "SELECT pg_walfile_name(pg_current_wal_lsn())")
  psql_ "SELECT pg_switch_wal()" >/dev/null
  until [ "$(psql_ "SELECT coalesce(last_archived_wal, '') >= '$wal' FROM pg_stat_archiver")" = t ]; do sleep 0.2; done
}

echo "creating the cluster and a pgbench database at scale $SCALE" >&2
as_pg "$PGBIN/initdb" -D "$OUT/data" --data-checksums --auth=trust -U postgres --no-instructions >/dev/null
as_pg tee -a "$OUT/data/postgresql.conf" >/dev/null <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$OUT'
wal_level = replica
archive_mode = on
archive_command = '/bin/true'
max_wal_size = '4GB'
shared_buffers = '256MB'
EOF
as_pg "$PGBIN/pg_ctl" -D "$OUT/data" -l "$OUT/server.log" -w start >/dev/null
as_pg "$PGBIN/pgbench" -h "$OUT" -p "$PORT" -U postgres -i -s "$SCALE" -q postgres 2>/dev/null
if [ "$IDS_ROWS" -gt 0 ]; then
  psql_ "$(events_sql "$IDS_ROWS")"
  psql_ "VACUUM ANALYZE events"
fi
psql_ "CHECKPOINT"
DATA_BYTES=$(du -sb "$OUT/data" | cut -f1)
echo "data directory: $((DATA_BYTES / 1048576)) MiB" >&2

RESULTS=$OUT/results.tsv
: >"$RESULTS"
# record TOOL STEP RUN WALL BYTES
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }
timed() { # timed CMD... : prints wall seconds
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  awk "BEGIN { print $t1 - $t0 }"
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
repo_bytes() { du -sb "$1" 2>/dev/null | cut -f1; }

for run in $(seq 1 "$RUNS"); do
  echo "run $run" >&2
  rm -rf "$OUT/lb-repo" "$OUT/pgbr-repo" "$OUT/pgbr-spool" "$OUT"/restore-*
  as_pg $LBR init -q --kdf-memory 64
  as_pg $PGBR stanza-create >/dev/null
  set_archive "$PGBR archive-push %p && $LBR wal push %p"
  wait_archived

  # 1. full backups
  if step full; then
  drop_caches
  w=$(timed as_pg /usr/bin/time -f %M -o "$OUT/rss" $LBR backup postgres --pgdata "$OUT/data" --force -q)
  record lifeboat full "$run" "$w" "$(repo_bytes "$OUT/lb-repo")"
  record lifeboat full_rss "$run" 0 "$(tail -1 "$OUT/rss")"
  drop_caches
  w=$(timed as_pg /usr/bin/time -f %M -o "$OUT/rss" $PGBR --type=full backup)
  record pgbackrest full "$run" "$w" "$(repo_bytes "$OUT/pgbr-repo")"
  record pgbackrest full_rss "$run" 0 "$(tail -1 "$OUT/rss")"
  fi

  # 2. churn, then incremental backups
  if step incremental; then
  if [ "$CHURN_TRANSACTIONS" -gt 0 ]; then
    as_pg "$PGBIN/pgbench" -h "$OUT" -p "$PORT" -U postgres -c 4 -j 2 -t "$((CHURN_TRANSACTIONS / 4))" -n postgres >/dev/null 2>&1
  else
    as_pg "$PGBIN/pgbench" -h "$OUT" -p "$PORT" -U postgres -c 4 -j 2 -T "$CHURN_SECONDS" -n postgres >/dev/null 2>&1
  fi
  if [ "$IDS_ROWS" -gt 0 ]; then
    psql_ "UPDATE events SET doc = doc || jsonb_build_object('run', $run)
             WHERE id IN (SELECT id FROM events TABLESAMPLE BERNOULLI ($IDS_UPDATES * 100.0 / $IDS_ROWS))"
  fi
  psql_ "CHECKPOINT"
  wait_archived
  sleep 1
  before_lb=$(repo_bytes "$OUT/lb-repo")
  before_br=$(repo_bytes "$OUT/pgbr-repo")
  w=$(timed as_pg $LBR backup postgres --pgdata "$OUT/data" -q)
  record lifeboat incremental "$run" "$w" "$(($(repo_bytes "$OUT/lb-repo") - before_lb))"
  before_lb=$(repo_bytes "$OUT/lb-repo")
  w=$(timed as_pg $PGBR --type=incr backup)
  record pgbackrest incremental "$run" "$w" "$(($(repo_bytes "$OUT/pgbr-repo") - before_br))"
  fi

  # 3. full restores (files only, until on disk)
  if step restore; then
  drop_caches
  w=$(timed sh -c "$(declare -f as_pg); as_pg $LBR restore postgres latest --target immediate --target-dir $OUT/restore-lb -q && sync")
  record lifeboat restore "$run" "$w" 0
  drop_caches
  w=$(timed sh -c "$(declare -f as_pg); as_pg $PGBR --pg1-path=$OUT/restore-br --type=immediate restore && sync")
  record pgbackrest restore "$run" "$w" 0
  rm -rf "$OUT"/restore-*
  fi

  # 4. WAL archiving throughput: build a backlog, then let each tool drain it.
  step archive && for tool in lifeboat pgbackrest; do
    set_archive "/bin/false"
    # lifeboat's background pusher, started by the last archiving, would
    # archive the backlog while it builds: wait until it has gone idle.
    while pgrep -f "wal push-ahead" >/dev/null; do sleep 0.2; done
    start_lsn=$(psql_ "SELECT pg_current_wal_lsn()")
    while [ "$(psql_ "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$start_lsn') > $WAL_MB * 1048576")" = f ]; do
      # Whole-table updates (new row versions and full-page images) build
      # the backlog in seconds; pgbench's single-row transactions took ten
      # minutes per GiB on this machine.
      psql_ "UPDATE pgbench_accounts SET abalance = abalance + 1"
    done
    last=$(psql_ "SELECT pg_walfile_name(pg_current_wal_lsn())")
    psql_ "SELECT pg_switch_wal()" >/dev/null
    mb=$(psql_ "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$start_lsn') / 1048576)")
    if [ $tool = lifeboat ]; then cmd="$LBR wal push %p"; else cmd="$PGBR archive-push %p"; fi
    t0=$(date +%s.%N)
    set_archive "$cmd"
    until [ "$(psql_ "SELECT coalesce(last_archived_wal, '') >= '$last' FROM pg_stat_archiver")" = t ]; do sleep 0.2; done
    t1=$(date +%s.%N)
    record "$tool" archive "$run" "$(awk "BEGIN { print $t1 - $t0 }")" "$((mb * 1048576))"
    # Keep the other tool's archive complete for the next round's backups.
    set_archive "$PGBR archive-push %p && $LBR wal push %p"
  done
  wait_archived
done

# The floor: read and compress the data directory, nothing else.
floor=
step full && drop_caches && floor=$(timed sh -c "tar -C $OUT/data -cf - . | zstd -T2 -3 -q > /dev/null")

python3 - "$RESULTS" "$RUNS" "$floor" "$DATA_BYTES" <<'PY'
import statistics, sys
from collections import defaultdict
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
by = defaultdict(list)
for tool, step, run, wall, nbytes in rows:
    by[(tool, step)].append((float(wall), int(nbytes)))
med = statistics.median
def m(tool, step, i):
    got = [r[i] for r in by[(tool, step)]]
    return med(got) if got else None
print(f"\nmedians of {sys.argv[2]} run(s); data directory {int(sys.argv[4]) / 2**20:.0f} MiB\n")
print(f"{'step':<26}{'lifeboat':>12}{'pgbackrest':>12}{'ratio':>9}")
def line(name, a, b):
    if a is None or b is None:
        return  # a step STEPS left out
    print(f"{name:<26}{a:>12.2f}{b:>12.2f}{a / b if b else float('nan'):>9.2f}")
line("full backup, s", m("lifeboat", "full", 0), m("pgbackrest", "full", 0))
mib = lambda v: None if v is None else v / 2**20
line("full backup stored, MiB", mib(m("lifeboat", "full", 1)), mib(m("pgbackrest", "full", 1)))
line("incremental, s", m("lifeboat", "incremental", 0), m("pgbackrest", "incremental", 0))
line("incremental added, MiB", mib(m("lifeboat", "incremental", 1)), mib(m("pgbackrest", "incremental", 1)))
line("full restore, s", m("lifeboat", "restore", 0), m("pgbackrest", "restore", 0))
tp = lambda t: med([r[1] / 2**20 / r[0] for r in by[(t, "archive")]]) if by[(t, "archive")] else None
line("archiving, MiB/s", tp("lifeboat"), tp("pgbackrest"))
kib = lambda v: None if v is None else v / 1024
line("full backup peak RSS, MiB", kib(m("lifeboat", "full_rss", 1)), kib(m("pgbackrest", "full_rss", 1)))
if sys.argv[3]:
    print(f"\nfloor: tar | zstd -T2 of the data directory: {float(sys.argv[3]):.2f} s")
PY
