#!/bin/sh
# bench/run.sh: ehlod against a private Postfix and smtp-sink, on loopback.
#
#   bench/run.sh [--quick] [--repeat N] [--tests throughput,idle,latency]
#                [--sizes 1k,64k] [--sessions 10,100] [--modes persist,single]
#                [--servers ehlod,ehlod-journal,postfix,smtp-sink] [--messages N]
#                [--idle-sessions N] [--postfix-idle N] [--latency-sessions N]
#                [--no-log] [--json FILE] [--keep] [--set 'NAME = VALUE']...
#                [--caches drop|keep] [--fs spread|fresh|tmp] [--fs-size 4G]
#                [--fs-journal yes|no]
#
# ehlod is $EHLOD, else build/src/cli/ehlod.  Build it optimised first:
#   meson setup build && ninja -C build src/cli/ehlod
# Needs root for the Postfix instance (its master runs as root and drops to
# the postfix user) and for dropping the kernel's caches before each
# throughput run (--caches drop), and smtp-source, smtp-sink, postfix from
# the postfix package.  Each server gets a directory of its own in a temp
# directory marked chattr +T (--fs spread), so no server creates files among
# the inodes another one deleted.  Figures and method: docs/benchmarks.md.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
ehlod=${EHLOD:-$top/build/src/cli/ehlod}
if [ ! -x "$ehlod" ]; then
	echo "run.sh: no ehlod at $ehlod; build it or set EHLOD" >&2
	exit 2
fi
for tool in smtp-source smtp-sink postfix cc; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "run.sh: $tool not found (apt-get install postfix gcc)" >&2
		exit 2
	}
done

bin=${BENCH_BIN:-${TMPDIR:-/tmp}/ehlo-bench-bin.$(id -u)}
mkdir -p "$bin"
if [ ! -x "$bin/smtp-probe" ] || [ "$here/smtp-probe.c" -nt "$bin/smtp-probe" ]; then
	cc -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Wshadow \
	    -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
	    -o "$bin/smtp-probe" "$here/smtp-probe.c"
fi

# 10,000 sessions need that many descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec /usr/bin/python3 "$here/bench.py" --ehlod "$ehlod" --probe "$bin/smtp-probe" "$@"
