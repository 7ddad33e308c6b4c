#!/usr/bin/env bash
# The main job on embedded defaults: back up a set of application config
# files into a local repository, make some changes (including an accident),
# restore the earlier snapshot, and prove the restored files are identical to
# the originals.
#
# Everything lives under a fresh temporary directory (or $LIFEBOAT_DEMO_DIR),
# which is left in place so you can look around afterwards.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "building lifeboat (release)"
cargo build --release --locked --quiet
LB="$ROOT/target/release/lifeboat"

DEMO=${LIFEBOAT_DEMO_DIR:-$(mktemp -d /tmp/lifeboat-demo.XXXXXX)}
mkdir -p "$DEMO"
export LIFEBOAT_REPOSITORY="$DEMO/repo"
export LIFEBOAT_PASSWORD_FILE="$DEMO/passphrase"
head -c 24 /dev/urandom | base64 >"$LIFEBOAT_PASSWORD_FILE"
chmod 600 "$LIFEBOAT_PASSWORD_FILE"
APP="$DEMO/app"

step "creating an application's config: .env, nginx config, TLS material, uploads"
mkdir -p "$APP/config/nginx" "$APP/secrets" "$APP/uploads"
cat >"$APP/.env" <<'ENV'
DATABASE_URL=postgres://app:app@db.internal:5432/app
SUPABASE_URL=https://example.supabase.co
STRIPE_SECRET_KEY=sk_live_demo_only
ENV
printf 'server { listen 443 ssl; server_name shop.example.com; }\n' >"$APP/config/nginx/shop.conf"
head -c 3000 /dev/urandom >"$APP/secrets/tls.key"
chmod 600 "$APP/secrets/tls.key"
for i in $(seq 1 40); do head -c $((RANDOM * 20)) /dev/urandom >"$APP/uploads/image-$i.jpg"; done
ln -s config/nginx/shop.conf "$APP/nginx.conf"
cp -a "$APP" "$DEMO/original"

step "lifeboat init  (repository: $LIFEBOAT_REPOSITORY)"
"$LB" init

step "lifeboat backup files  (the nightly backup)"
"$LB" backup files "$APP" --kind scheduled --tag demo
FIRST=$("$LB" --json snapshots | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')

step "some writes: a deploy edits the config, and an accident deletes the TLS key"
echo "FEATURE_FLAG=on" >>"$APP/.env"
rm "$APP/secrets/tls.key"
head -c 5000 /dev/urandom >"$APP/uploads/image-41.jpg"

step "lifeboat backup files --kind pre-deploy  (before the next migration)"
"$LB" backup files "$APP" --kind pre-deploy --reason "before migration 42"
"$LB" snapshots

step "lifeboat restore files ${FIRST:0:8}  (back to the nightly state)"
"$LB" restore files "$FIRST" --target "$DEMO/restored"

step "proof: the restored tree equals the original, byte for byte (diff -r)"
diff -r --no-dereference "$DEMO/original" "$DEMO/restored$APP"
echo "identical: $(find "$DEMO/original" -type f | wc -l) files, including secrets/tls.key"

step "lifeboat check --read-data  (every byte of the repository verified)"
"$LB" check --read-data

printf '\n\033[1mdemo finished: everything is in %s\033[0m\n' "$DEMO"
