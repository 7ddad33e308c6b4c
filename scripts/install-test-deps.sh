#!/usr/bin/env bash
# Installs what the test suite needs that cargo does not: PostgreSQL (server,
# client and contrib programs, from Debian's packages, if no version is
# installed) with the extensions and pooler the restore-fidelity tests use
# (PostGIS, pg_cron, PgBouncer), Prometheus (the daemon's scraper), and, in a
# virtualenv under .venv/, the S3 test server (moto), Django with psycopg (a
# real framework's schema) and aiosmtpd (a real mail server for alerts);
# and cargo-deb (the Debian package the suite builds and installs).
# Idempotent and quick when done before.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${LIFEBOAT_VENV:-$ROOT/.venv}
MOTO_VERSION=5.2.5
DJANGO_VERSION=5.1.4
PSYCOPG_VERSION=3.2.3
AIOSMTPD_VERSION=1.4.6
CARGO_DEB_VERSION=3.8.0

if ! "$VENV/bin/python" -c "import moto, boto3; assert moto.__version__ == '$MOTO_VERSION'" 2>/dev/null; then
  echo "installing the S3 test server (moto $MOTO_VERSION) into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" boto3
fi
if ! "$VENV/bin/python" -c "import django, psycopg; assert django.__version__ == '$DJANGO_VERSION'" 2>/dev/null; then
  echo "installing Django $DJANGO_VERSION and psycopg into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "Django==$DJANGO_VERSION" "psycopg[binary]==$PSYCOPG_VERSION"
fi
if ! "$VENV/bin/python" -c "import aiosmtpd; assert aiosmtpd.__version__ == '$AIOSMTPD_VERSION'" 2>/dev/null; then
  echo "installing aiosmtpd $AIOSMTPD_VERSION into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION"
fi

# cargo-deb, which builds the Debian package the suite installs and checks.
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  echo "installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

# shellcheck source=lib/ensure-postgres.sh
. "$ROOT/scripts/lib/ensure-postgres.sh"

# Extensions and the pooler, for the server version the tests use.
MAJOR=$(basename "$(dirname "$PGBIN")")
EXTRA=()
[ -f "/usr/share/postgresql/$MAJOR/extension/postgis.control" ] || EXTRA+=("postgresql-$MAJOR-postgis-3")
[ -f "/usr/share/postgresql/$MAJOR/extension/pg_cron.control" ] || EXTRA+=("postgresql-$MAJOR-cron")
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || EXTRA+=(pgbouncer)
command -v promtool >/dev/null 2>&1 || EXTRA+=(prometheus)
# Browser tests of the dashboard: Chromium driven over WebDriver.
command -v chromedriver >/dev/null 2>&1 || EXTRA+=(chromium chromium-driver)
if [ ${#EXTRA[@]} -gt 0 ]; then
  echo "installing ${EXTRA[*]} from Debian's packages" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  if ! DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${EXTRA[@]}" >/dev/null 2>&1; then
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${EXTRA[@]}" >/dev/null
  fi
  # The packages start a pooler and a Prometheus of their own; the tests
  # start theirs.
  $sudo_cmd systemctl disable --now pgbouncer prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
