#!/usr/bin/env bash
# kill -9 at random points of `wal push` (PostgreSQL's archive_command, and
# the background pusher it starts) and of `backup postgres`, on a live
# cluster taking writes, on a local or (with S3=1) an S3 repository. After
# every run `check --read-data` must pass (leftovers of killed runs are
# warnings, never errors). At the end, a point-in-time restore to the latest
# archived WAL must hold exactly the rows the cluster had (md5 of the
# table), and every base backup still kept must restore and start.
#
# Usage: bench/reliability/kill9-postgres.sh [RUNS]   (default 40)
# Needs the PostgreSQL 15 server binaries (scripts/install-test-deps.sh);
# run as root, PostgreSQL runs as the postgres user.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${1:-40}
OUT=${BENCH_DIR:-$ROOT/bench/out/kill9-postgres}
PG_BIN=${LIFEBOAT_PG_BIN:-/usr/lib/postgresql/15/bin}
cargo build --locked --quiet --manifest-path "$ROOT/Cargo.toml" --bin lifeboat
LB=${CARGO_TARGET_DIR:-$ROOT/target}/debug/lifeboat
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
rm -rf "$OUT"
mkdir -p "$OUT"
[ "$(id -u)" = 0 ] && chown postgres "$OUT"
as_pg bash -c "umask 077; echo reliability-passphrase > '$OUT/passphrase'"

AWS=""
if [ "${S3:-0}" = 1 ]; then
  if [ -z "${LIFEBOAT_TEST_S3_ENDPOINT:-}" ]; then
    # shellcheck source=../../scripts/lib/s3-test-server.sh
    ROOT=$ROOT VENV=${VENV:-$ROOT/.venv} LOG_DIR=$OUT source "$ROOT/scripts/lib/s3-test-server.sh"
    start_s3_test_servers
    S3_STARTED=1
  fi
  REPO="s3://${LIFEBOAT_TEST_S3_BUCKET:-lifeboat-test}/kill9-pg-$(date +%s)"
  AWS="AWS_ENDPOINT_URL=$LIFEBOAT_TEST_S3_ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1"
else
  REPO=$OUT/repo
fi
# lifeboat as postgres (the archiver's user), on the repository.
lb() { as_pg env $AWS LIFEBOAT_REPOSITORY="$REPO" LIFEBOAT_PASSWORD_FILE="$OUT/passphrase" \
  LIFEBOAT_SPOOL_DIR="$OUT/spool" "$LB" "$@"; }
lb -q init --kdf-memory 19 --kdf-iterations 2

# archive_command: `wal push`, killed at a random point in a quarter of the
# calls (PostgreSQL retries), and now and then its background pusher too.
cat >"$OUT/push.sh" <<EOF
#!/bin/bash
env $AWS LIFEBOAT_SPOOL_DIR='$OUT/spool' '$LB' --repo '$REPO' --password-file '$OUT/passphrase' wal push "\$1" &
pid=\$!
if (( RANDOM % 4 == 0 )); then
  sleep 0.\$(printf %03d \$((RANDOM % 300)))
  state=\$(awk '{print \$3}' /proc/\$pid/stat 2>/dev/null || echo X)
  if [ "\$state" != Z ] && [ "\$state" != X ]; then
    kill -9 \$pid; wait \$pid 2>/dev/null
    echo push >>'$OUT/kills'
    exit 1
  fi
fi
if (( RANDOM % 10 == 0 )) && pkill -9 -f 'wal push-ahead' 2>/dev/null; then
  echo pusher >>'$OUT/kills'
fi
wait \$pid
EOF
chmod 755 "$OUT/push.sh"
as_pg touch "$OUT/kills"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$PG_BIN/initdb" -D "$OUT/data" --data-checksums --auth=trust -U postgres --no-instructions >/dev/null
cat >>"$OUT/data/postgresql.conf" <<EOF
port = $PORT
unix_socket_directories = '$OUT'
listen_addresses = ''
archive_mode = on
archive_command = '$OUT/push.sh %p'
wal_level = replica
max_wal_size = '256MB'
EOF
as_pg "$PG_BIN/pg_ctl" -D "$OUT/data" -l "$OUT/server.log" -w start >/dev/null
trap 'as_pg "$PG_BIN/pg_ctl" -D "$OUT/data" -m immediate stop >/dev/null 2>&1 || true;
      as_pg "$PG_BIN/pg_ctl" -D "$OUT/restored" -m immediate stop >/dev/null 2>&1 || true
      [ "${S3_STARTED:-0}" = 1 ] && kill "${S3_PIDS[@]}" 2>/dev/null; true' EXIT
psql() { as_pg "$PG_BIN/psql" -h "$OUT" -p "$PORT" -U postgres -d postgres -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
archive_now() {
  local wal; wal=$(psql "SELECT pg_walfile_name(pg_current_wal_lsn())")
  psql "SELECT pg_switch_wal()" >/dev/null
  for _ in $(seq 1 900); do
    [[ "$(psql "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")" > "$wal" ]] ||
      [ "$(psql "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")" = "$wal" ] && return 0
    sleep 0.2
  done
  echo "WAL $wal not archived in 3 minutes" >&2; return 1
}
psql "CREATE TABLE t (id bigserial PRIMARY KEY, v text)"
lb -q backup postgres --pgdata "$OUT/data" --db "host=$OUT port=$PORT user=postgres dbname=postgres"

backup_kills=0 check_failures=0 backups=1
took=3000
for run in $(seq 1 "$RUNS"); do
  psql "INSERT INTO t (v) SELECT md5(random()::text) FROM generate_series(1, $((RANDOM % 20000 + 1000)))"
  psql "UPDATE t SET v = md5(v) WHERE id % 7 = $((RANDOM % 7))"
  if (( run % 3 == 0 )); then
    # A base backup killed at a random point of its usual duration.
    start=$(date +%s%3N)
    lb -q backup postgres --pgdata "$OUT/data" --db "host=$OUT port=$PORT user=postgres dbname=postgres" \
      >/dev/null 2>&1 &
    pid=$!
    at=$((RANDOM % (took + 1)))
    while (( $(date +%s%3N) - start < at )); do
      state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
      [ "$state" = Z ] || [ "$state" = X ] && break
      sleep 0.01
    done
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
    if [ "$state" != Z ] && [ "$state" != X ]; then
      # runuser's child is lifeboat: kill the whole process group.
      pkill -9 -f "backup postgres --pgdata $OUT/data" || true
      wait "$pid" 2>/dev/null || true
      backup_kills=$((backup_kills + 1))
    else
      wait "$pid" && { backups=$((backups + 1)); took=$(( $(date +%s%3N) - start )); } || true
    fi
  fi
  archive_now
  if ! lb -q check --read-data >"$OUT/check.log" 2>&1; then
    check_failures=$((check_failures + 1))
    echo "run $run: check --read-data failed:" >&2
    cat "$OUT/check.log" >&2
  fi
  printf 'run %d/%d: wal push kills %d, pusher kills %d, backup kills %d, check failures %d\n' \
    "$run" "$RUNS" "$(grep -c '^push$' "$OUT/kills" || true)" "$(grep -c '^pusher$' "$OUT/kills" || true)" \
    "$backup_kills" "$check_failures"
done

# The last state, archived; then a point-in-time restore to the latest WAL.
expected=$(psql "SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t")
archive_now
as_pg "$PG_BIN/pg_ctl" -D "$OUT/data" -m fast -w stop >/dev/null
RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
lb -q restore postgres latest --target-dir "$OUT/restored" --start --port "$RPORT" --socket-dir "$OUT" --timeout 5min
got=$(as_pg "$PG_BIN/psql" -h "$OUT" -p "$RPORT" -U postgres -d postgres -XAtq \
  -c "SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t")
pitr_ok=no
[ "$got" = "$expected" ] && pitr_ok=yes
as_pg "$PG_BIN/pg_ctl" -D "$OUT/restored" -m fast -w stop >/dev/null
echo
echo "runs: $RUNS; kills: wal push $(grep -c '^push$' "$OUT/kills" || true), background pusher $(grep -c '^pusher$' "$OUT/kills" || true), backup postgres $backup_kills; complete base backups $backups"
echo "check --read-data after every run: $check_failures failure(s)"
echo "PITR to the latest archived WAL holds the cluster's last rows ($expected): $pitr_ok"
[ "$check_failures" = 0 ] && [ "$pitr_ok" = yes ]
