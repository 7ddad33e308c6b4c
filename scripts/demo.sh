#!/usr/bin/env bash
# The main job on embedded defaults: a throwaway local PostgreSQL cluster
# archiving its WAL into a local lifeboat repository; a base backup; some
# writes; an accidental DROP TABLE; a point-in-time recovery to one second
# before it into a new data directory; and the proof that the rows are back.
#
# Everything lives under a fresh temporary directory (or $LIFEBOAT_DEMO_DIR),
# left in place afterwards; both servers are stopped at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step "building lifeboat (release) and checking for PostgreSQL"
cargo build --release --locked --quiet
LB="$ROOT/target/release/lifeboat"
# shellcheck source=lib/ensure-postgres.sh
. scripts/lib/ensure-postgres.sh
echo "PostgreSQL programs: $PGBIN"

DEMO=${LIFEBOAT_DEMO_DIR:-$(mktemp -d /tmp/lifeboat-demo.XXXXXX)}
mkdir -p "$DEMO"
# PostgreSQL refuses to run as root: as root, the cluster (and lifeboat,
# which its archive_command runs) belong to the postgres user.
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$DEMO"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi
export LIFEBOAT_REPOSITORY="$DEMO/repo"
export LIFEBOAT_PASSWORD_FILE="$DEMO/passphrase"
as_pg sh -c "umask 077; head -c 24 /dev/urandom | base64 > '$LIFEBOAT_PASSWORD_FILE'"
PORT=$(free_port)
PORT2=$(free_port)
SRC="$DEMO/production"
DST="$DEMO/recovered"
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$SRC" -m fast stop >/dev/null 2>&1 || true
  as_pg "$PGBIN/pg_ctl" -D "$DST" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql_src() { as_pg "$PGBIN/psql" -h "$DEMO" -p "$PORT" -U postgres -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
psql_dst() { as_pg "$PGBIN/psql" -h "$DEMO" -p "$PORT2" -U postgres -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

step "lifeboat init  (repository: $LIFEBOAT_REPOSITORY)"
as_pg "$LB" init

step "a throwaway 'production' cluster with archive_command = 'lifeboat wal push %p'"
as_pg "$PGBIN/initdb" -D "$SRC" --data-checksums --auth=trust -U postgres --no-instructions >/dev/null
cat >>"$SRC/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DEMO'
wal_level = replica
archive_mode = on
archive_command = '$LB --repo $LIFEBOAT_REPOSITORY --password-file $LIFEBOAT_PASSWORD_FILE wal push %p'
archive_timeout = 60
CONF
as_pg "$PGBIN/pg_ctl" -D "$SRC" -l "$DEMO/production.log" -w start >/dev/null
psql_src "CREATE TABLE orders (id serial PRIMARY KEY, placed_at timestamptz NOT NULL DEFAULT clock_timestamp(), item text);
          INSERT INTO orders (item) SELECT 'order #' || g FROM generate_series(1, 1000) g;"
echo "orders: $(psql_src 'SELECT count(*) FROM orders')"

step "lifeboat backup postgres  (the nightly base backup)"
as_pg "$LB" backup postgres --pgdata "$SRC" --kind scheduled

step "the day goes on: more orders"
for i in 1 2 3 4 5; do
  psql_src "INSERT INTO orders (item) SELECT 'day order ' || g FROM generate_series(1, 100) g;"
  sleep 0.3
done
BEFORE=$(psql_src 'SELECT count(*) FROM orders')
echo "orders: $BEFORE"
sleep 1.5

step "the accident: DROP TABLE orders"
ACCIDENT=$(psql_src "SELECT now()")
psql_src "DROP TABLE orders;"
echo "dropped at $ACCIDENT"
psql_src "SELECT pg_switch_wal();" >/dev/null
for _ in $(seq 1 100); do
  [ "$(psql_src "SELECT count(*) FROM pg_stat_archiver WHERE last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1)")" = 1 ] && break
  sleep 0.1
done

step "lifeboat info postgres  (what can be recovered)"
as_pg "$LB" info postgres

TARGET=$(psql_src "SELECT (timestamptz '$ACCIDENT' - interval '1 second')::text")
step "lifeboat restore postgres latest --target-time '$TARGET' --start  (one second before the accident)"
as_pg "$LB" restore postgres latest --target-dir "$DST" --target-time "$TARGET" --start --port "$PORT2" --socket-dir "$DEMO"

step "proof: the rows are back, and the recovered cluster is sound"
AFTER=$(psql_dst 'SELECT count(*) FROM orders')
echo "orders before the accident: $BEFORE; in the recovered cluster: $AFTER"
[ "$BEFORE" = "$AFTER" ] || { echo "MISMATCH" >&2; exit 1; }
as_pg "$PGBIN/pg_amcheck" -h "$DEMO" -p "$PORT2" -U postgres --install-missing --all --heapallindexed
echo "pg_amcheck: no corruption"
as_pg "$LB" check --read-data

step "lifeboat drill --target-time '$TARGET'  (the monthly restore test: scratch cluster, checks, measured RTO and RPO)"
as_pg "$LB" drill --target-time "$TARGET"

step "lifeboat status  (the runbook checklist)"
as_pg "$LB" status

printf '\n\033[1mdemo finished: %s rows recovered to %s; everything is in %s\033[0m\n' "$AFTER" "$TARGET" "$DEMO"
