#!/usr/bin/env bash
# Installs what the test suite needs that cargo does not: PostgreSQL (server,
# client and contrib programs, from Debian's packages, if no version is
# installed) and the S3 test server (moto, in a virtualenv under .venv/).
# Idempotent and quick when done before.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${LIFEBOAT_VENV:-$ROOT/.venv}
MOTO_VERSION=5.2.5

if ! "$VENV/bin/python" -c "import moto, boto3; assert moto.__version__ == '$MOTO_VERSION'" 2>/dev/null; then
  echo "installing the S3 test server (moto $MOTO_VERSION) into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" boto3
fi

# shellcheck source=lib/ensure-postgres.sh
. "$ROOT/scripts/lib/ensure-postgres.sh"
