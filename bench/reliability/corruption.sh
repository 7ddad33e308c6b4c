#!/usr/bin/env bash
# Damages every object of a repository holding every kind of object (every
# object, 16 byte offsets each, truncation, deletion) and checks that
# `check --read-data` finds each case and that no restore writes wrong bytes.
# CI runs the same test on one object per kind; this runs all of them.
# Needs the PostgreSQL server binaries (scripts/install-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
export LIFEBOAT_CORRUPTION_DEPTH=full
cargo test --locked -p lifeboat --test corruption -- --nocapture 2>&1 |
  grep -E "damaged repositories|test result|panicked|went unnoticed|wrong bytes"
