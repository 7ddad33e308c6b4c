#!/usr/bin/env bash
# Builds the Debian package (target/debian/lifeboat_VERSION_ARCH.deb): the
# binary, manual pages, shell completions, the systemd unit (installed, not
# enabled) and the example settings file. Needs `cargo install cargo-deb`.
#
#   scripts/package-deb.sh            # release build
#   scripts/package-deb.sh --profile dev --no-build   # package the binary the tests built
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PROFILE=release
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    *) echo "usage: $0 [--profile PROFILE] [--no-build]" >&2; exit 2 ;;
  esac
done
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
if [ "$BUILD" = 1 ]; then
  cargo build --locked --profile "$PROFILE" --bin lifeboat
fi
BIN=target/$DIR/lifeboat
DIST=target/$DIR/dist
rm -rf "$DIST"
mkdir -p "$DIST/man" "$DIST/completions"
"$BIN" generate man --dir "$DIST/man" --quiet
"$BIN" generate completions bash > "$DIST/completions/lifeboat.bash"
"$BIN" generate completions zsh > "$DIST/completions/_lifeboat"
"$BIN" generate completions fish > "$DIST/completions/lifeboat.fish"
gzip -9n "$DIST"/man/*.1
cargo deb --package lifeboat --no-build --profile "$PROFILE" --output target/debian/
