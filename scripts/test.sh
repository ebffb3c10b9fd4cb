#!/bin/bash
# SPDX-License-Identifier: MIT
# test.sh - set up and run every test of vshm (the README's second command).
#
#   scripts/test.sh [--quick] [--no-e2e] [--fuzz-seconds N]
#
# 1. installs what is missing (apt-get), including QEMU from bookworm-backports
# 2. builds with -Werror and runs every meson test: unit, integration, the
#    Wayland preview client under headless weston, and the end-to-end tests
#    that boot a real Linux guest under QEMU
# 3. builds again with AddressSanitizer + UndefinedBehaviorSanitizer and runs
#    the unit and integration tests there
# 4. builds the libFuzzer targets with clang and runs each for a bounded time
# 5. checks clang-format on every C file
# and ends with one line "N passed, N failed".
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
E2E=1 QUICK=0
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 E2E=0 FUZZ_SECONDS=10 ;;
	--no-e2e) E2E=0 ;;
	--fuzz-seconds) FUZZ_SECONDS=$2; shift ;;
	*) echo "test.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

passed=0 failed=0
step() { echo; echo "=== $*"; }
record() { # name rc
	if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "--- PASS $1"
	else failed=$((failed + 1)); echo "--- FAIL $1 (rc $2)"; fi
}
# Count meson's per-test results from its JSON log.
count_meson() { # builddir
	python3 - "$1/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = 0
try:
    for line in open(sys.argv[1]):
        r = json.loads(line)
        if r.get('result') in ('OK', 'EXPECTEDFAIL', 'SKIP'):
            p += 1
        else:
            f += 1
except FileNotFoundError:
    f = 1
print(p, f)
PY
}

step "install dependencies"
deps=(--test)
[ $E2E = 1 ] && deps+=(--e2e)
scripts/install-deps.sh "${deps[@]}" || { echo "dependency installation failed"; exit 1; }

step "build (gcc, -Werror) and run unit + integration + e2e tests"
BUILD=build
[ -d $BUILD ] || meson setup $BUILD -Dwerror=true >/dev/null || exit 1
ninja -C $BUILD || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
suites=(--suite unit --suite integration --suite wayland)
[ $E2E = 1 ] && suites+=(--suite e2e)
meson test -C $BUILD --print-errorlogs "${suites[@]}"
read -r p f < <(count_meson $BUILD)
passed=$((passed + p)) failed=$((failed + f))

if [ $QUICK = 0 ]; then
	step "AddressSanitizer + UndefinedBehaviorSanitizer build, unit + integration tests"
	ASAN=build-asan
	[ -d $ASAN ] || meson setup $ASAN -Dwerror=true -Db_sanitize=address,undefined \
		-Db_lundef=false >/dev/null || exit 1
	if ninja -C $ASAN; then
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
			ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
			meson test -C $ASAN --print-errorlogs --suite unit --suite integration
		read -r p f < <(count_meson $ASAN)
		passed=$((passed + p)) failed=$((failed + f))
	else
		record "asan-build" 1
	fi
fi

step "libFuzzer targets (clang), ${FUZZ_SECONDS}s each"
FUZZ=build-fuzz
[ -d $FUZZ ] || CC=clang meson setup $FUZZ -Dfuzzers=enabled -Db_lundef=false \
	-Dwayland=disabled -Dvirgl=disabled >/dev/null || exit 1
if ninja -C $FUZZ; then
	for f in $FUZZ/tests/fuzz/fuzz-*; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		name=$(basename "$f")
		corpus=$FUZZ/corpus-$name
		mkdir -p "$corpus"
		seeds=tests/fuzz/corpus/${name#fuzz-}
		[ -d "$seeds" ] || seeds=
		"$f" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 "$corpus" $seeds \
			>"$FUZZ/$name.log" 2>&1
		rc=$?
		grep -E 'stat::number_of_executed_units|cov:' "$FUZZ/$name.log" | tail -2
		record "$name" $rc
	done
else
	record "fuzz-build" 1
fi

step "clang-format"
bad=$(git ls-files '*.c' '*.h' | xargs clang-format --dry-run 2>&1 | grep -c 'warning:' || true)
if [ "$bad" = 0 ]; then record clang-format 0; else
	git ls-files '*.c' '*.h' | xargs clang-format --dry-run 2>&1 | grep 'warning:' | cut -d: -f1 | sort -u
	record clang-format 1
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
