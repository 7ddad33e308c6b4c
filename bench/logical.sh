#!/usr/bin/env bash
# lifeboat logical backups vs pg_dump / pg_restore, on the same database, in
# the same run.
#
# Creates a throwaway PostgreSQL cluster with a pgbench database (scale
# $SCALE, default 50) plus a wide table of text and jsonb ($WIDE_ROWS rows of
# about 1 KiB; WIDE_TEXT=repeated, the default, repeats one phrase per row,
# WIDE_TEXT=varied draws words at random like prose, which costs gzip real
# time), then for each of RUNS rounds measures:
#   1. backup wall time: lifeboat --logical --jobs 2 (zstd 3, encrypted),
#      pg_dump -Fd -j 2 -Z0 (uncompressed directory), pg_dump -Fc (default);
#   2. restore wall time into an empty database: lifeboat --jobs 2 and
#      pg_restore -j 2 of the directory dump.
# Then it simulates seven days: each day about 1% of the rows change (half
# updates, half inserts) and both lifeboat and pg_dump -Fc back up; it
# compares the bytes lifeboat's repository grew by with the sum of the seven
# dump files (and prints each day's growth and backup times). Two kinds of
# churn are measured (MODES, default "hot uniform"):
#   hot:     updates hit the newest 5% of rows (orders being processed),
#   uniform: updates hit rows anywhere (the worst case for deduplication).
# After the uniform week it times a restore of the last day's backup (whose
# table data is mostly delta chunks) against pg_restore -j 2 of its dump.
#
# DATA=mixed is the data set of the performance issue and the one later
# changes are measured on: pgbench at scale 50 plus a 2-million-row table of
# uuids, hex strings and jsonb documents ($IDS_ROWS rows; about 1.2 GiB in
# all, far less compressible than pgbench's blank-padded rows) and no wide
# table. IDS_ROWS can be set with any data set.
#
# Peak memory (GNU time's maximum RSS of the largest process) is recorded
# for every timed backup and restore. PIN=1 pins the server to CPU 0 and the
# clients (lifeboat, pg_dump, pg_restore) to CPU 1, the case of a managed
# database whose CPU the client does not share.
#
# Usage: bench/logical.sh [RUNS]     (default 3; run as root or postgres)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${BENCH_DIR:-$ROOT/bench/out}/logical
RUNS=${1:-3}
SCALE=${SCALE:-50}
DATA=${DATA:-default}
case $DATA in
  default) ;;
  mixed) WIDE_ROWS=${WIDE_ROWS:-0}; IDS_ROWS=${IDS_ROWS:-2000000} ;;
  *) echo "DATA must be default or mixed" >&2; exit 2 ;;
esac
WIDE_ROWS=${WIDE_ROWS:-200000}
IDS_ROWS=${IDS_ROWS:-0}
PIN=${PIN:-0}
WIDE_ROWS_START=$WIDE_ROWS
WIDE_TEXT=${WIDE_TEXT:-repeated}
DAYS=${DAYS:-7}
# Extra options for every lifeboat backup (timed runs and days), e.g.
# "--compression fastest" or "--split-size 1G".
LB_BACKUP_ARGS=${LB_BACKUP_ARGS:-}
# The key derivation's memory in MiB for the timed runs' repository (default
# 64, the default of `lifeboat init`); the least, 19, shows more of the
# backup's own peak memory apart from the floor the unlock sets.
KDF_MEMORY=${KDF_MEMORY:-64}

# shellcheck source=../scripts/lib/ensure-postgres.sh
. "$ROOT/scripts/lib/ensure-postgres.sh"
# shellcheck source=lib/events.sh
. "$ROOT/bench/lib/events.sh"
cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml"
LB=$ROOT/target/release/lifeboat

if [ "$(id -u)" -eq 0 ]; then
  AS_PG=(runuser -u postgres --)
else
  AS_PG=()
fi
as_pg() { "${AS_PG[@]}" "$@"; }
if [ "$PIN" = 1 ]; then
  SERVER=(taskset -c 0)
  CLIENT=(taskset -c 1)
else
  SERVER=()
  CLIENT=()
fi
cleanup() { as_pg "$PGBIN/pg_ctl" -D "$OUT/data" -m fast stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
rm -rf "$OUT"
mkdir -p "$OUT"
[ "$(id -u)" -eq 0 ] && chown postgres: "$OUT"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PASS=$OUT/passphrase
as_pg sh -c "umask 077; echo bench-passphrase-$$ > '$PASS'"
LBR="$LB --repo $OUT/lb-repo --password-file $PASS"
CI="host=$OUT port=$PORT user=postgres"
psql_() { as_pg "$PGBIN/psql" -h "$OUT" -p "$PORT" -U postgres -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=terse -c "SET client_min_messages = warning" -d "${2:-bench}" -c "$1"; }

echo "creating the cluster: pgbench scale $SCALE, $WIDE_ROWS wide rows, $IDS_ROWS id rows" >&2
as_pg "$PGBIN/initdb" -D "$OUT/data" --auth=trust -U postgres --no-instructions >/dev/null
as_pg tee -a "$OUT/data/postgresql.conf" >/dev/null <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$OUT'
max_wal_size = '4GB'
shared_buffers = '256MB'
EOF
"${SERVER[@]}" "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$OUT/data" -l "$OUT/server.log" -w start >/dev/null
psql_ "CREATE DATABASE bench" postgres
as_pg "$PGBIN/pgbench" -h "$OUT" -p "$PORT" -U postgres -i -s "$SCALE" -q bench 2>/dev/null
if [ "$WIDE_TEXT" = varied ]; then
  # About 110 words per row drawn at random from a 150-word vocabulary.
  BODY="(SELECT string_agg(w[1 + floor(random() * array_length(w, 1))::int], ' ') FROM generate_series(1, 110 + g % 2),
          (SELECT regexp_split_to_array(
            'the of and to in is was for on that with as by at from this be are or an it have not but which were all their there has one been more when we can also its they time into other after only two first new some would many these any may such most then where than over her his them could our out up about years year state used should between each during those under both while because three same made well part city work world through however high water university early number since life group government school system people including although before later war including public known against second several area within until around much four another without large history small national often family being following main game best like music left long development took became still team season found based very last being series'
          , ' ')) AS v(w)
          WHERE g > 0)"
else
  BODY="repeat('lorem ipsum dolor sit amet ' || (g % 1000) || ' ', 20)"
fi
psql_ "CREATE TABLE wide (id bigserial PRIMARY KEY, created timestamptz NOT NULL, title text, body text, attrs jsonb);
INSERT INTO wide (created, title, body, attrs)
SELECT now() - g * interval '1 minute', 'title ' || g, $BODY,
       jsonb_build_object('n', g, 'tags', jsonb_build_array('a' || g % 10, 'b' || g % 7), 'score', g % 100)
FROM generate_series(1, $WIDE_ROWS) g;"
if [ "$IDS_ROWS" -gt 0 ]; then psql_ "$(events_sql "$IDS_ROWS")"; fi
psql_ "VACUUM ANALYZE"
# Write the load's dirty buffers out now, not during the first timed step.
psql_ "CHECKPOINT"
DB_BYTES=$(psql_ "SELECT pg_database_size('bench')")
echo "database: $((DB_BYTES / 1048576)) MiB" >&2

RESULTS=$OUT/results.tsv
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }
# timed STEP TOOL RUN COMMAND...: records the wall time and the peak RSS.
RSS_FILE=$OUT/rss
timed() {
  local step=$1 tool=$2 run=$3 t0 t1
  shift 3
  t0=$(date +%s.%N)
  "${CLIENT[@]}" "${AS_PG[@]}" /usr/bin/time -f %M -o "$RSS_FILE" "$@" >/dev/null
  t1=$(date +%s.%N)
  record "$tool" "$step" "$run" "$(awk "BEGIN { print $t1 - $t0 }")"
  record "$tool" "${step}_rss" "$run" "$(tail -1 "$RSS_FILE")"
}
# elapsed COMMAND...: the wall time alone, printed.
elapsed() {
  local t0 t1
  t0=$(date +%s.%N)
  "${CLIENT[@]}" "${AS_PG[@]}" "$@" >/dev/null
  t1=$(date +%s.%N)
  awk "BEGIN { print $t1 - $t0 }"
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
bytes_of() { du -sb "$1" 2>/dev/null | cut -f1; }
fresh_db() { psql_ "DROP DATABASE IF EXISTS $1" postgres; psql_ "CREATE DATABASE $1" postgres; }

for run in $(seq 1 "$RUNS"); do
  echo "run $run" >&2
  rm -rf "$OUT/lb-repo" "$OUT/dump.d" "$OUT/dump.fc"
  as_pg $LBR init -q --kdf-memory "$KDF_MEMORY"
  drop_caches
  timed backup lifeboat "$run" $LBR backup postgres --logical --db "$CI dbname=bench" --jobs 2 -q $LB_BACKUP_ARGS
  drop_caches
  timed backup pg_dump_d "$run" "$PGBIN/pg_dump" -h "$OUT" -p "$PORT" -U postgres -Fd -j 2 -Z0 -f "$OUT/dump.d" bench
  drop_caches
  timed backup pg_dump_c "$run" "$PGBIN/pg_dump" -h "$OUT" -p "$PORT" -U postgres -Fc -f "$OUT/dump.fc" bench
  fresh_db r_lb
  drop_caches
  timed restore lifeboat "$run" $LBR restore postgres --logical latest --db "$CI dbname=r_lb" --jobs 2 -q
  fresh_db r_pg
  drop_caches
  timed restore pg_restore "$run" "$PGBIN/pg_restore" -h "$OUT" -p "$PORT" -U postgres -j 2 -d r_pg "$OUT/dump.d"
  psql_ "DROP DATABASE r_lb" postgres
  psql_ "DROP DATABASE r_pg" postgres
done

# Seven days of churn, twice: hot and uniform.
ACCOUNTS=$((SCALE * 100000))
MODES=${MODES:-hot uniform}
[ "$DAYS" -gt 0 ] || MODES=""
for mode in $MODES; do
  echo "seven days, $mode churn" >&2
  psql_ "DROP DATABASE IF EXISTS days" postgres
  psql_ "CREATE DATABASE days TEMPLATE bench" postgres
  rm -rf "$OUT/lb-days"
  as_pg $LB --repo "$OUT/lb-days" --password-file "$PASS" init -q --kdf-memory 64
  dumps=0
  for day in $(seq 1 "$DAYS"); do
    if [ "$day" -gt 1 ]; then
      n=$((ACCOUNTS / 200))
      w=$((WIDE_ROWS / 200))
      if [ $mode = hot ]; then
        lo=$((ACCOUNTS - ACCOUNTS / 20)); wlo=$((WIDE_ROWS - WIDE_ROWS / 20))
      else
        lo=0; wlo=0
      fi
      psql_ "UPDATE pgbench_accounts SET abalance = abalance + 1
               WHERE aid IN (SELECT $lo + 1 + floor(random() * ($ACCOUNTS - $lo))::int FROM generate_series(1, $n));
             INSERT INTO pgbench_accounts (aid, bid, abalance, filler)
               SELECT max_aid + g, 1 + g % $SCALE, 0, '' FROM (SELECT max(aid) AS max_aid FROM pgbench_accounts) m, generate_series(1, $n) g;
             UPDATE wide SET attrs = attrs || jsonb_build_object('day', $day)
               WHERE id IN (SELECT $wlo + 1 + floor(random() * ($WIDE_ROWS - $wlo))::int FROM generate_series(1, $w));
             INSERT INTO wide (created, title, body, attrs)
               SELECT now(), 'new ' || g, repeat('fresh text ' || g, 30), jsonb_build_object('day', $day) FROM generate_series(1, $w) g;" days
      psql_ "VACUUM ANALYZE" days
      ACCOUNTS=$((ACCOUNTS + n))
      WIDE_ROWS=$((WIDE_ROWS + w))
    fi
    before=$(bytes_of "$OUT/lb-days")
    t_lb=$(elapsed $LB --repo "$OUT/lb-days" --password-file "$PASS" backup postgres --logical --db "$CI dbname=days" --jobs 2 -q $LB_BACKUP_ARGS)
    t_fc=$(elapsed "$PGBIN/pg_dump" -h "$OUT" -p "$PORT" -U postgres -Fc -f "$OUT/day.fc" days)
    dumps=$((dumps + $(bytes_of "$OUT/day.fc")))
    echo "  day $day: lifeboat +$(( ($(bytes_of "$OUT/lb-days") - before) / 1024 )) KiB in $t_lb s, pg_dump -Fc $(( $(bytes_of "$OUT/day.fc") / 1024 )) KiB in $t_fc s" >&2
    if [ "$day" -gt 1 ]; then
      record "days_${mode}_time" lifeboat "$day" "$t_lb"
      record "days_${mode}_time" pg_dump_c "$day" "$t_fc"
    fi
  done
  record "days_$mode" lifeboat 0 "$(bytes_of "$OUT/lb-days")"
  record "days_$mode" pg_dump_c 0 "$dumps"
  if [ $mode = uniform ]; then
    fresh_db r_lb
    drop_caches
    record restore_days lifeboat 0 "$(elapsed $LB --repo "$OUT/lb-days" --password-file "$PASS" restore postgres --logical latest --db "$CI dbname=r_lb" --jobs 2 -q)"
    fresh_db r_pg
    drop_caches
    record restore_days pg_restore 0 "$(elapsed "$PGBIN/pg_restore" -h "$OUT" -p "$PORT" -U postgres -j 2 -d r_pg "$OUT/day.fc")"
    psql_ "DROP DATABASE r_lb" postgres
    psql_ "DROP DATABASE r_pg" postgres
  fi
  ACCOUNTS=$((SCALE * 100000))
  WIDE_ROWS=$WIDE_ROWS_START
done

python3 - "$RESULTS" "$RUNS" "$DB_BYTES" "$DAYS" <<'PY'
import statistics, sys
from collections import defaultdict
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
by = defaultdict(list)
for tool, step, run, value in rows:
    by[(tool, step)].append(float(value))
med = lambda k: statistics.median(by[k])
print(f"\nmedians of {sys.argv[2]} run(s); database {int(sys.argv[3]) / 2**20:.0f} MiB\n")
if by[("lifeboat", "backup")]:
    lb, fd, fc = med(("lifeboat", "backup")), med(("pg_dump_d", "backup")), med(("pg_dump_c", "backup"))
    print(f"backup   lifeboat {lb:7.2f} s | pg_dump -Fd -j2 -Z0 {fd:7.2f} s (ratio {lb / fd:.2f}) | pg_dump -Fc {fc:7.2f} s (ratio {lb / fc:.2f})")
    lr, pr = med(("lifeboat", "restore")), med(("pg_restore", "restore"))
    print(f"restore  lifeboat {lr:7.2f} s | pg_restore -j2 (directory) {pr:7.2f} s (ratio {lr / pr:.2f})")
    mib = lambda k: med(k) / 1024
    print(f"peak RSS backup   lifeboat {mib(('lifeboat', 'backup_rss')):6.1f} MiB | pg_dump -Fd -j2 {mib(('pg_dump_d', 'backup_rss')):6.1f} MiB | pg_dump -Fc {mib(('pg_dump_c', 'backup_rss')):6.1f} MiB")
    print(f"peak RSS restore  lifeboat {mib(('lifeboat', 'restore_rss')):6.1f} MiB | pg_restore -j2 {mib(('pg_restore', 'restore_rss')):6.1f} MiB")
for mode in ("hot", "uniform"):
    a, b = by[(f"days_{mode}", "lifeboat")], by[(f"days_{mode}", "pg_dump_c")]
    if a and b:
        print(f"{sys.argv[4]} days, {mode} churn: lifeboat repository {a[0] / 2**20:7.1f} MiB | {sys.argv[4]} x pg_dump -Fc {b[0] / 2**20:7.1f} MiB (ratio {a[0] / b[0]:.2f})")
    ta, tb = by[(f"days_{mode}_time", "lifeboat")], by[(f"days_{mode}_time", "pg_dump_c")]
    if ta and tb:
        print(f"  daily backups after the first (median): lifeboat {statistics.median(ta):.2f} s | pg_dump -Fc {statistics.median(tb):.2f} s (ratio {statistics.median(ta) / statistics.median(tb):.2f})")
ra, rb = by[("restore_days", "lifeboat")], by[("restore_days", "pg_restore")]
if ra and rb:
    print(f"restore of the last uniform day (delta chunks): lifeboat {ra[0]:.2f} s | pg_restore -j2 of its -Fc dump {rb[0]:.2f} s (ratio {ra[0] / rb[0]:.2f})")
PY
