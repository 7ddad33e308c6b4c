#!/usr/bin/env bash
# Bucket backups against rclone, on the same bucket in the same run.
#
# A bucket of OBJECTS objects (1-64 KiB, random content, nested prefixes)
# plus 20 objects of 4 MiB on the S3 test server (moto, from the test
# virtualenv). Each of RUNS rounds, with a fresh repository and a fresh
# directory:
#   first     lifeboat backup bucket      vs  rclone sync s3:BUCKET DIR
#   1% later  lifeboat backup bucket      vs  rclone sync s3:BUCKET DIR   (after 1 % of the objects changed)
#   restore   lifeboat restore bucket --to s3://NEW  vs  rclone copy DIR s3:NEW
# Wall time and peak RSS (GNU time) per step; medians and lifeboat/rclone
# ratios at the end. Then lifeboat's peak memory for a first backup of
# SMALL objects at 10,000 and at 100,000 objects (flat is the target).
# Both tools talk to the same single-process server, which bounds both.
#
# Usage: bench/bucket.sh   (OBJECTS=10000 RUNS=3 SCALE=100000)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${BENCH_DIR:-$ROOT/bench/out/bucket}
OBJECTS=${OBJECTS:-10000}
RUNS=${RUNS:-3}
SCALE=${SCALE:-100000}
VENV=$ROOT/.venv

[[ -x $VENV/bin/moto_server ]] || "$ROOT/scripts/install-test-deps.sh"
command -v rclone >/dev/null 2>&1 || apt-get install -y rclone >/dev/null
[[ -x /usr/bin/time ]] || apt-get install -y time >/dev/null
cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml"
LB=$ROOT/target/release/lifeboat

rm -rf "$OUT"
mkdir -p "$OUT"
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$OUT/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true' EXIT
ENDPOINT=http://127.0.0.1:$PORT
for _ in $(seq 1 100); do curl -s "$ENDPOINT" >/dev/null && break; sleep 0.1; done

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
# The endpoint is plain HTTP; a CA bundle variable only trips rclone 1.60 up.
unset AWS_CA_BUNDLE
export LIFEBOAT_PASSWORD=bench-passphrase
export RCLONE_CONFIG_S3_TYPE=s3 RCLONE_CONFIG_S3_PROVIDER=Other RCLONE_CONFIG_S3_ENDPOINT=$ENDPOINT \
  RCLONE_CONFIG_S3_ACCESS_KEY_ID=bench RCLONE_CONFIG_S3_SECRET_ACCESS_KEY=bench \
  RCLONE_CONFIG_S3_REGION=us-east-1 RCLONE_CONFIG_S3_FORCE_PATH_STYLE=true

py() { "$VENV/bin/python" - "$ENDPOINT" "$@"; }
FILL='
import boto3, os, random, sys
from concurrent.futures import ThreadPoolExecutor
endpoint, verb, bucket, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
small_only = len(sys.argv) > 5
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
if verb == "fill":
    s3.create_bucket(Bucket=bucket)
def put(i, salt=""):
    rnd = random.Random(f"{i}{salt}")
    size = 1024 if small_only else rnd.randint(1024, 64 * 1024)
    key = f"p{i % 16}/q{i % 7}/obj-{i:06d}.bin"
    s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(size))
with ThreadPoolExecutor(16) as ex:
    if verb == "fill":
        list(ex.map(put, range(n)))
        if not small_only:
            list(ex.map(lambda j: s3.put_object(Bucket=bucket, Key=f"media/big-{j}.bin", Body=os.urandom(4 << 20)), range(20)))
    else:
        list(ex.map(lambda i: put(i, salt=verb), random.Random(verb).sample(range(n), n // 100)))
'

RESULTS=$OUT/results.tsv
: >"$RESULTS"
measure() { # name tool command...
  local name=$1 tool=$2
  shift 2
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f %M -o "$OUT/rss" "$@" >"$OUT/last.log" 2>&1 || {
    cat "$OUT/last.log" >&2
    exit 1
  }
  t1=$(date +%s.%N)
  printf '%s\t%s\t%s\t%s\n' "$name" "$tool" "$(python3 -c "print($t1 - $t0)")" "$(cat "$OUT/rss")" >>"$RESULTS"
}

echo "filling s3://source with $OBJECTS objects (+20 of 4 MiB)" >&2
py fill source "$OBJECTS" <<<"$FILL"
for run in $(seq 1 "$RUNS"); do
  echo "round $run of $RUNS" >&2
  REPO=$OUT/repo-$run DIR=$OUT/rclone-$run
  export LIFEBOAT_REPOSITORY=$REPO
  "$LB" -q init --kdf-memory 19 --kdf-iterations 2
  measure first lifeboat "$LB" -q backup bucket s3://source --endpoint "$ENDPOINT"
  measure first rclone rclone sync --transfers 8 --checkers 8 s3:source "$DIR"
  py "round$run" source "$OBJECTS" <<<"$FILL"   # rewrites 1 % of the objects
  measure incremental lifeboat "$LB" -q backup bucket s3://source --endpoint "$ENDPOINT"
  measure incremental rclone rclone sync --transfers 8 --checkers 8 s3:source "$DIR"
  "$VENV/bin/python" -c "import boto3,sys; s3=boto3.client('s3',endpoint_url=sys.argv[1],region_name='us-east-1'); [s3.create_bucket(Bucket=b) for b in sys.argv[2:]]" "$ENDPOINT" "lb-restore-$run" "rc-restore-$run"
  measure restore lifeboat "$LB" -q restore bucket latest --to "s3://lb-restore-$run" --endpoint "$ENDPOINT"
  measure restore rclone rclone copy --transfers 8 --checkers 8 "$DIR" "s3:rc-restore-$run"
  rm -rf "$REPO" "$DIR"
done

echo "memory at scale: first backups of 1 KiB objects" >&2
for n in 10000 "$SCALE"; do
  py fill "small-$n" "$n" small <<<"$FILL"
  export LIFEBOAT_REPOSITORY=$OUT/repo-small-$n
  "$LB" -q init --kdf-memory 19 --kdf-iterations 2
  measure "scale-$n" lifeboat "$LB" -q backup bucket "s3://small-$n" --endpoint "$ENDPOINT"
  rm -rf "$LIFEBOAT_REPOSITORY"
done

python3 - "$RESULTS" "$RUNS" <<'EOF'
import collections, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
t, m = collections.defaultdict(list), collections.defaultdict(list)
for name, tool, secs, rss in rows:
    t[(name, tool)].append(float(secs)); m[(name, tool)].append(int(rss) / 1024)
med = statistics.median
print(f"\nmedians of {sys.argv[2]} round(s); wall seconds, peak RSS MiB\n")
print(f"{'step':<12} {'lifeboat':>9} {'rclone':>9} {'ratio':>7}   {'RSS lb':>7} {'RSS rc':>7}")
for step in ["first", "incremental", "restore"]:
    lb, rc = med(t[(step, "lifeboat")]), med(t[(step, "rclone")])
    print(f"{step:<12} {lb:9.2f} {rc:9.2f} {lb / rc:6.2f}x   {med(m[(step, 'lifeboat')]):7.1f} {med(m[(step, 'rclone')]):7.1f}")
for (name, tool), v in sorted(t.items()):
    if name.startswith("scale-"):
        print(f"{name:<12} lifeboat {v[0]:7.2f} s, peak RSS {m[(name, tool)][0]:.1f} MiB")
EOF
