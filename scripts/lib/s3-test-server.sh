# Start and stop the S3-compatible test servers (moto in server mode) used by
# the test suite. Sourced by scripts/test.sh; needs the virtualenv made by
# scripts/install-test-deps.sh.
#
# Two servers run on 127.0.0.1:
# - a plain one (no authentication), for most S3 tests;
# - one that enforces IAM authentication, with one user whose keys are
#   exported, for the wrong-credentials tests.

S3_PIDS=()

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() {
  local port=$1
  for _ in $(seq 1 100); do
    if "$VENV/bin/python" -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1', $port)))"; then
      return 0
    fi
    sleep 0.1
  done
  echo "S3 test server on port $port did not start; see $LOG_DIR" >&2
  return 1
}

start_s3_test_servers() {
  mkdir -p "$LOG_DIR"
  local port auth_port
  port=$(free_port)
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOG_DIR/moto.log" 2>&1 &
  S3_PIDS+=($!)
  auth_port=$(free_port)
  INITIAL_NO_AUTH_ACTION_COUNT=3 "$VENV/bin/moto_server" -H 127.0.0.1 -p "$auth_port" >"$LOG_DIR/moto-auth.log" 2>&1 &
  S3_PIDS+=($!)
  wait_for_port "$port"
  wait_for_port "$auth_port"

  export LIFEBOAT_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  export LIFEBOAT_TEST_S3_AUTH_ENDPOINT="http://127.0.0.1:$auth_port"
  export LIFEBOAT_TEST_S3_BUCKET=lifeboat-test
  export LIFEBOAT_TEST_S3_AUTH_BUCKET=lifeboat-auth
  export LIFEBOAT_TEST_S3_LOCK_BUCKET=lifeboat-locked
  # Creates the buckets, and on the authenticating server an IAM user with an
  # access key (the first three requests there are unauthenticated).
  local keys
  keys=$("$VENV/bin/python" "$ROOT/scripts/lib/s3-setup.py")
  read -r LIFEBOAT_TEST_S3_AUTH_KEY_ID LIFEBOAT_TEST_S3_AUTH_SECRET <<<"$keys"
  export LIFEBOAT_TEST_S3_AUTH_KEY_ID LIFEBOAT_TEST_S3_AUTH_SECRET
}

stop_s3_test_servers() {
  for pid in "${S3_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${S3_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  S3_PIDS=()
}
