#!/usr/bin/env bash
# The daemon (`lifeboat serve`) with a long history: what an idle daemon
# costs, and how fast it answers a scrape and a status request.
#
# Builds a local repository holding SNAPS snapshots of one declared source
# and RUNS run records (crates/ops/examples/fill_history.rs), starts the
# daemon on it with a job that does not fire during the run, then:
#   - latency: N requests each of GET /metrics, GET /api/status and the
#     dashboard's overview and audit pages, signed in (curl's time_total;
#     median, 95th and 99th percentile), and `lifeboat status` and
#     `lifeboat runs` on the same repository (median of 3), for scale;
#   - idle: resident memory (VmRSS, sampled every 10 s; the peak) and CPU
#     time (utime + stime from /proc) over IDLE seconds.
# No peer has a scheduling daemon to compare with (pgBackRest, Barman and
# restic are driven by cron), so this prints absolute figures.
#
# Usage: bench/daemon.sh   (SNAPS=10000 RUNS=1000 N=101 IDLE=600)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${BENCH_DIR:-$ROOT/bench/out/daemon}
SNAPS=${SNAPS:-10000}
RUNS=${RUNS:-1000}
N=${N:-101}
IDLE=${IDLE:-600}

command -v curl >/dev/null 2>&1 || apt-get install -y curl >/dev/null
cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml"
cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml" -p lifeboat-ops --example fill_history
LB=$ROOT/target/release/lifeboat
FILL=$ROOT/target/release/examples/fill_history
export LIFEBOAT_PASSWORD=bench-passphrase

rm -rf "$OUT"
mkdir -p "$OUT/files" "$OUT/state"
head -c 1M /dev/urandom >"$OUT/files/app.bin"
REPO=$OUT/repo
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$OUT/lifeboat.toml" <<EOF
repository = "$REPO"

[[source]]
name = "app"
kind = "files"
paths = ["$OUT/files"]

[[job]]
run = "backup"
source = "app"
schedule = "0 0 1 1 *"
EOF
export LIFEBOAT_CONFIG=$OUT/lifeboat.toml
"$LB" -q init
"$LB" -q --source app backup
LIFEBOAT_NEW_PASSWORD="bench user password" "$LB" -q user add bench --role admin --state-dir "$OUT/state"
TOKEN=$("$LB" -q token create bench --state-dir "$OUT/state")
echo "filling the history: $SNAPS snapshots, $RUNS run records" >&2
t0=$(date +%s.%N)
"$FILL" "$REPO" "$SNAPS" "$RUNS"
echo "  took $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s" >&2

"$LB" serve --listen "127.0.0.1:$PORT" --state-dir "$OUT/state" >"$OUT/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
t0=$(date +%s.%N)
until curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.05; done
START=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")

# Medians and 95th percentiles of a column of seconds, printed in ms.
stats() { python3 -c '
import statistics, sys
v = sorted(float(x) * 1000 for x in sys.stdin.read().split())
p = lambda q: v[min(len(v) - 1, int(round(q * (len(v) - 1))))]
print(f"median {statistics.median(v):.2f} ms, p95 {p(0.95):.2f} ms, p99 {p(0.99):.2f} ms ({len(v)} requests)")'; }
timed() { for _ in $(seq 1 "$N"); do curl -fs -o /dev/null -H "Cookie: lb_session=${SESSION:-}" -H "Authorization: Bearer $TOKEN" -w '%{time_total}\n' "http://127.0.0.1:$PORT$1"; done; }
cli3() { for _ in 1 2 3; do /usr/bin/env time -f %e "$LB" "$@" >/dev/null 2>>"$OUT/cli.time" || true; tail -n1 "$OUT/cli.time"; done; }

METRICS=$(timed /metrics | stats)
# Signed in to the dashboard: the login form's CSRF cookie, then the session.
LOGIN=$(curl -fs -D - "http://127.0.0.1:$PORT/login")
CSRF=$(sed -n 's/.*lb_login=\([0-9a-f]*\).*/\1/p' <<<"$LOGIN" | head -1)
SESSION=$(curl -fs -D - -o /dev/null -H "Cookie: lb_login=$CSRF" \
  --data "user=bench&password=bench+user+password&csrf=$CSRF" "http://127.0.0.1:$PORT/login" |
  sed -n 's/.*lb_session=\([0-9a-f]*\).*/\1/p' | head -1)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: lb_session=$SESSION" "http://127.0.0.1:$PORT/")
[ "$code" = 200 ] || { echo "the dashboard did not sign in (GET / answered $code)" >&2; exit 1; }
STATUS=$(timed /api/status | stats)
OVERVIEW=$(timed / | stats)
AUDIT=$(timed /audit | stats)
: >"$OUT/cli.time"
CLI_STATUS=$(cli3 status | python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.stdin.read().split()):.2f} s")')
CLI_RUNS=$(cli3 runs | python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.stdin.read().split()):.2f} s")')

ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
HZ=$(getconf CLK_TCK)
c0=$(ticks)
peak=$(rss)
first=$peak
echo "idle for $IDLE s" >&2
for _ in $(seq 1 $((IDLE / 10))); do
  sleep 10
  r=$(rss)
  [ "$r" -gt "$peak" ] && peak=$r
done
c1=$(ticks)
last=$(rss)

echo
echo "lifeboat serve, $SNAPS snapshots and $RUNS run records in a local repository"
echo "  start-up to healthy:     $START s"
echo "  GET /metrics:            $METRICS"
echo "  GET /api/status:         $STATUS"
echo "  dashboard overview:      $OVERVIEW"
echo "  dashboard audit log:     $AUDIT"
echo "  lifeboat status (CLI):   $CLI_STATUS (median of 3; lists the repository)"
echo "  lifeboat runs (CLI):     $CLI_RUNS (median of 3)"
python3 - "$c0" "$c1" "$HZ" "$IDLE" "$first" "$last" "$peak" <<'EOF'
import sys
c0, c1, hz, idle, first, last, peak = map(float, sys.argv[1:])
cpu = (c1 - c0) / hz
print(f"  idle {idle:.0f} s: CPU {cpu:.2f} s ({100 * cpu / idle:.3f} % of one core); "
      f"RSS {first / 1024:.1f} MiB at start, {last / 1024:.1f} MiB at end, peak {peak / 1024:.1f} MiB")
EOF
