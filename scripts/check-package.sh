#!/usr/bin/env bash
# Builds the Debian package from the binary the tests just built, installs
# it with dpkg -i, checks that the installed lifeboat runs and that its
# manual page, completions, unit and example settings are in place, then
# removes it again. Part of the test command (scripts/test.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
# The binary the integration tests use (built with the test build's
# features; after `cargo test` this builds nothing, where `cargo build` would
# rebuild much of the workspace with another feature set).
cargo test --workspace --locked --no-run >/dev/null 2>&1 || cargo test --workspace --locked --no-run
scripts/package-deb.sh --profile dev --no-build
DEB=$(ls -t target/debian/lifeboat_*.deb | head -1)
if dpkg -s lifeboat >/dev/null 2>&1; then
  echo "check-package: a lifeboat package is already installed here; not touching it" >&2
  exit 1
fi
trap '$SUDO dpkg -r lifeboat >/dev/null 2>&1 || true' EXIT
$SUDO dpkg -i "$DEB" >/dev/null
fail() { echo "check-package: $*" >&2; exit 1; }
/usr/bin/lifeboat --version | grep -q "^lifeboat $(dpkg-deb -f "$DEB" Version | cut -d- -f1)" || fail "/usr/bin/lifeboat --version does not print the package's version"
/usr/bin/lifeboat version --json | grep -q '"format_version"' || fail "lifeboat version --json"
for f in /usr/share/man/man1/lifeboat.1.gz /usr/share/man/man1/lifeboat-backup-postgres.1.gz \
         /usr/share/bash-completion/completions/lifeboat /usr/share/zsh/vendor-completions/_lifeboat \
         /usr/share/fish/vendor_completions.d/lifeboat.fish /usr/lib/systemd/system/lifeboat.service \
         /usr/share/doc/lifeboat/examples/lifeboat.example.toml /usr/share/doc/lifeboat/copyright; do
  [ -s "$f" ] || fail "$f is missing from the package"
done
zcat /usr/share/man/man1/lifeboat.1.gz | grep -q '^\.TH lifeboat' || fail "lifeboat.1 is not a manual page"
grep -q '^ExecStart=/usr/bin/lifeboat serve' /usr/lib/systemd/system/lifeboat.service || fail "the unit does not start the packaged binary"
bash -c '. /usr/share/bash-completion/completions/lifeboat && complete -p lifeboat' >/dev/null || fail "the bash completion does not load"
$SUDO dpkg -r lifeboat >/dev/null
[ ! -e /usr/bin/lifeboat ] || fail "dpkg -r left /usr/bin/lifeboat behind"
trap - EXIT
echo "check-package: $DEB installs, runs ($(lifeboat_v=$(dpkg-deb -f "$DEB" Version); echo "$lifeboat_v")) and removes cleanly"
