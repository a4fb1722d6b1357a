#!/usr/bin/env bash
# Quick start, command 2: install what is missing, build, run every test.
#
# Two builds, each running the whole suite (unit, fuzz, e2e and whatever
# other suites the modules register):
#   build       gcc, as shipped; the fuzz harnesses replay their seed corpus
#   build-asan  clang-14 with ASan+UBSan and libFuzzer: the fuzz harnesses
#               get a 5 s libFuzzer smoke run, and ehlod itself runs the
#               end-to-end tests under the sanitizers (leaks included)
# The last line of the output is "N passed, N failed, N skipped", counted
# from both builds' meson-logs/testlog.json (a build that fails to compile
# counts as one failure); the exit status is non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }

# handle_abort: an abort() that is not ASan's own (a failed assert, glibc's
# mutex checks) prints its stack too; seen once, without one, at ehlod start.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:detect_leaks=1:strict_string_checks=1:handle_abort=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="print_suppressions=0"

build_failures=0
ran=()

# setup_and_build DIR COMPILER MESON-ARGS...: configure (or reconfigure), build.
setup_and_build() {
	local dir=$1 cc=$2
	shift 2
	local log
	log=$(mktemp)
	echo "=== $dir: configure and build ($cc $*)"
	rm -f "$dir/meson-logs/testlog.json"
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >"$log" 2>&1
	else
		CC=$cc meson setup "$dir" "$@" >"$log" 2>&1
	fi || { cat "$log"; rm -f "$log"; return 1; }
	rm -f "$log"
	ninja -C "$dir"
}

run_suite() {
	local dir=$1
	shift
	echo "=== $dir: meson test"
	meson test -C "$dir" --print-errorlogs "$@"
}

for spec in "build gcc" \
            "build-asan clang-14 -Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=true"; do
	# shellcheck disable=SC2086
	set -- $spec
	dir=$1
	if setup_and_build "$@"; then
		mult=1
		[ "$dir" = build-asan ] && mult=2
		run_suite "$dir" --timeout-multiplier "$mult" || true
		ran+=("$dir")
	else
		echo "=== $dir: BUILD FAILED"
		build_failures=$((build_failures + 1))
	fi
done

/usr/bin/python3 - "$build_failures" "${ran[@]}" <<'PY'
import json, os, sys
failed = int(sys.argv[1])
passed = skipped = 0
bad = []
for d in sys.argv[2:]:
    path = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(path):
        failed += 1
        bad.append("%s: no testlog.json" % d)
        continue
    rows = [json.loads(l) for l in open(path) if l.strip()]
    if not rows:
        failed += 1
        bad.append("%s: no tests ran" % d)
    for r in rows:
        res = r["result"]
        if res in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif res == "SKIP":
            skipped += 1
        else:
            failed += 1
            bad.append("%s: %s %s" % (d, r["name"], res))
for b in bad:
    print("FAILED: " + b)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
