#!/bin/sh
# bench/identity_bench.sh: SMTP sessions per second with the client-identity
# checks off and on (issue 4), DNS from the test unbound of tests/dns.
#
#   bench/identity_bench.sh [--sessions N] [--conc C] [--rounds R]
#       [--workers W] [--dns-timeout 2s] [--bg-conc B]
#       [--configs off,tag,tag-dead,rej,rej-slow,rej-dead] [--keep]
#
# ehlod is $EHLOD, else build/src/cli/ehlod; build it optimised first:
#   meson setup build --buildtype=release && ninja -C build src/cli/ehlod
# Needs unbound (the test resolver) and a C compiler for the load driver
# bench/ident-sessions.c. What each configuration means:
# bench/identity_bench.py. Loopback only; everything started is stopped by
# PID.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
ehlod=${EHLOD:-$top/build/src/cli/ehlod}
if [ ! -x "$ehlod" ]; then
	echo "identity_bench.sh: no ehlod at $ehlod; build it or set EHLOD" >&2
	exit 2
fi
[ -x /usr/sbin/unbound ] || { echo "identity_bench.sh: unbound not installed" >&2; exit 2; }

bin=${BENCH_BIN:-${TMPDIR:-/tmp}/ehlo-bench-bin.$(id -u)}
mkdir -p "$bin"
if [ ! -x "$bin/ident-sessions" ] || [ "$here/ident-sessions.c" -nt "$bin/ident-sessions" ]; then
	cc -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Wshadow \
	    -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
	    -o "$bin/ident-sessions" "$here/ident-sessions.c"
fi

# Many short sessions: descriptors and ephemeral ports on the client side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec /usr/bin/python3 "$here/identity_bench.py" --ehlod "$ehlod" \
    --driver "$bin/ident-sessions" "$@"
