#!/bin/sh
# Start or stop the test resolver (tests/dns/unbound.conf.in) on loopback.
#
#   unbound-test.sh start DIR   start slow-auth.py (the delaying server that
#                               unbound stub-delegates one zone to), fill the
#                               template into DIR/unbound.conf with a free
#                               port, check it, start unbound in the
#                               background (bounded by timeout 1800), wait
#                               until it answers; prints "PORT=<n>" and
#                               "PID=<pid>" and writes DIR/port.
#   unbound-test.sh stop DIR    kill both started in DIR, by PID.
#
# Exit status 77 (the meson/automake "skip" code) if unbound is not installed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
unbound=/usr/sbin/unbound

free_port() {
	/usr/bin/python3 - <<'PY'
import socket
# A port free for both UDP and TCP on 127.0.0.1.
for _ in range(50):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", port))
    except OSError:
        u.close(); t.close(); continue
    u.close(); t.close()
    print(port)
    break
PY
}

start() {
	dir=$1
	[ -x "$unbound" ] || { echo "unbound-test: $unbound not installed" >&2; exit 77; }
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	# The slow server picks its own port and writes it (renamed into place).
	rm -f "$dir/slow.port"
	/usr/bin/python3 "$here/slow-auth.py" "$dir/slow.port" \
	    >"$dir/slow.log" 2>&1 </dev/null &
	echo $! >"$dir/slow.pid"
	i=0
	while [ ! -s "$dir/slow.port" ] && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	[ -s "$dir/slow.port" ] || { echo "unbound-test: slow-auth.py did not start" >&2; cat "$dir/slow.log" >&2; stop "$dir"; exit 1; }
	slowport=$(cat "$dir/slow.port")
	tries=0
	while :; do
		port=$(free_port)
		[ -n "$port" ] || { echo "unbound-test: no free port" >&2; exit 1; }
		sed -e "s|@PORT@|$port|g" -e "s|@SLOWPORT@|$slowport|g" -e "s|@DIR@|$dir|g" \
		    "$here/unbound.conf.in" >"$dir/unbound.conf"
		/usr/sbin/unbound-checkconf "$dir/unbound.conf" >"$dir/checkconf.log" 2>&1 ||
		    { cat "$dir/checkconf.log" >&2; exit 1; }
		rm -f "$dir/unbound.pid"
		: >"$dir/unbound.log"
		timeout 1800 "$unbound" -d -c "$dir/unbound.conf" \
		    >"$dir/unbound.stdout" 2>&1 </dev/null &
		wrapper=$!
		echo "$wrapper" >"$dir/wrapper.pid"
		i=0
		while [ $i -lt 100 ]; do
			if ! kill -0 "$wrapper" 2>/dev/null; then
				break
			fi
			if [ -s "$dir/unbound.pid" ] &&
			    dig +time=1 +tries=1 +short @127.0.0.1 -p "$port" \
			    -x 127.0.0.2 2>/dev/null | grep -q mx.good.test; then
				echo "$port" >"$dir/port"
				echo "PORT=$port"
				echo "PID=$(cat "$dir/unbound.pid")"
				return 0
			fi
			sleep 0.1
			i=$((i + 1))
		done
		# Lost a race for the port, or it did not come up: retry a few times.
		stop_unbound "$dir" || true
		tries=$((tries + 1))
		if [ $tries -ge 3 ]; then
			echo "unbound-test: unbound did not start; log:" >&2
			cat "$dir/unbound.log" "$dir/unbound.stdout" >&2 || true
			stop "$dir" || true
			exit 1
		fi
	done
}

stop_unbound() {
	dir=$1
	if [ -s "$dir/unbound.pid" ]; then
		pid=$(cat "$dir/unbound.pid")
		kill "$pid" 2>/dev/null || true
	fi
	if [ -s "$dir/wrapper.pid" ]; then
		w=$(cat "$dir/wrapper.pid")
		i=0
		while kill -0 "$w" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill "$w" 2>/dev/null || true
	fi
	rm -f "$dir/unbound.pid" "$dir/wrapper.pid"
}

stop() {
	dir=$1
	stop_unbound "$dir"
	if [ -s "$dir/slow.pid" ]; then
		kill "$(cat "$dir/slow.pid")" 2>/dev/null || true
	fi
	rm -f "$dir/slow.pid"
}

case "${1:-}" in
start) [ $# -eq 2 ] || { echo "usage: $0 start DIR" >&2; exit 2; }; start "$2" ;;
stop)  [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
*)     echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
