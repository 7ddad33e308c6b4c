#!/usr/bin/env bash
# The whole test suite: installs what it needs, starts the S3 test servers on
# 127.0.0.1, runs formatting and lint checks and every test, builds and
# installs the Debian package, stops the servers.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export VENV=${LIFEBOAT_VENV:-$ROOT/.venv}
export LOG_DIR=$ROOT/target/test-logs

scripts/install-test-deps.sh
# The newest installed PostgreSQL's programs, for the tests' throwaway clusters.
# shellcheck source=lib/ensure-postgres.sh
. scripts/lib/ensure-postgres.sh
export LIFEBOAT_PG_BIN=$PGBIN
# The virtualenv's Python, with Django and psycopg, for the fidelity tests.
export LIFEBOAT_TEST_PYTHON=$VENV/bin/python
# shellcheck source=lib/s3-test-server.sh
. scripts/lib/s3-test-server.sh
trap stop_s3_test_servers EXIT
start_s3_test_servers

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "$@"
# The Debian package: builds, installs with dpkg -i, runs, removes.
scripts/check-package.sh
