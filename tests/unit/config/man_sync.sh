#!/bin/sh
# Check (or with --update, rewrite) the generated SETTINGS section of
# man/ehlod.conf.5 against `ehlo-config-dump --man`.
#   man_sync.sh [--update] DUMP_PROGRAM MAN_PAGE
set -eu
update=no
if [ "${1:-}" = "--update" ]; then update=yes; shift; fi
dump=$1 page=$2
begin='^\.\\" BEGIN SETTINGS'
end='^\.\\" END SETTINGS'
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.new"' EXIT
"$dump" --man > "$tmp"
if [ "$update" = yes ]; then
	{ sed "/$begin/q" "$page"; cat "$tmp"; sed -n "/$end/,\$p" "$page"; } > "$tmp.new"
	cat "$tmp.new" > "$page"
	exit 0
fi
if sed -n "/$begin/,/$end/p" "$page" | sed '1d;$d' | cmp -s - "$tmp"; then
	echo "1..1"; echo "ok 1 - man/ehlod.conf.5 SETTINGS matches the settings table"
else
	echo "1..1"; echo "not ok 1 - man/ehlod.conf.5 SETTINGS is out of date: run $0 --update $dump $page"
	exit 1
fi
