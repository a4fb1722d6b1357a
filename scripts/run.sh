#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, and run ehlod in
# the foreground on its embedded default configuration (127.0.0.1:2525,
# Maildirs under ./var/mail, a self-signed certificate under ./var/tls, logs
# on stderr).  Extra arguments go to ehlod (e.g. -c ehlod.conf).
# Needs root or sudo for the package installation only.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
if [ -f build/build.ninja ]; then
	meson setup --reconfigure build >/dev/null
else
	meson setup build >/dev/null
fi
ninja -C build
exec ./build/src/cli/ehlod "$@"
