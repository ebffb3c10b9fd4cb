#!/bin/sh
# SPDX-License-Identifier: MIT
#
# test-sandbox.sh - vshm-gpu --sandbox (server/sandbox.c): option errors,
# clean start and SIGTERM exit under each mode, and forbidden calls really
# stopped: the test-only VSHM_SANDBOX_SELFTEST hook makes the daemon try one
# after the filter is in place (execve and socket are killed by SIGSYS with
# --sandbox=on, a file opened for writing gets EPERM; with --sandbox=log
# they are allowed). Prints TAP.
#
# Usage: test-sandbox.sh PATH/TO/vshm-gpu yes|no [SANITIZE]
#   yes|no    whether the build has libseccomp (HAVE_SECCOMP)
#   SANITIZE  meson's b_sanitize; anything but "none" skips the filter
#             checks (the sanitizers' run time needs calls the filter kills)

BIN=${1:?usage: test-sandbox.sh PATH/TO/vshm-gpu yes|no [SANITIZE]}
SECCOMP=${2:?usage: test-sandbox.sh PATH/TO/vshm-gpu yes|no [SANITIZE]}
SANITIZE=${3:-none}
TMP=$(mktemp -d) || exit 1
trap 'rm -rf "$TMP"' EXIT
ulimit -c 0 2>/dev/null # SIGSYS dumps core by default
N=0
FAILED=0
SIGSYS_STATUS=$((128 + 31))

ok() {
	N=$((N + 1))
	echo "ok $N - $1"
}

not_ok() {
	N=$((N + 1))
	FAILED=$((FAILED + 1))
	echo "not ok $N - $1"
	[ -f "$TMP/err" ] && sed 's/^/# /' "$TMP/err"
}

check() { # check DESCRIPTION COMMAND...
	desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# run EXPECTED_STATUS ARGS...: runs the daemon to its end, stderr to $TMP/err.
run() {
	want=$1
	shift
	"$BIN" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
	[ $? -eq "$want" ]
}

# start ARGS...: the daemon in the background on $TMP/s; waits for its socket.
start() {
	rm -f "$TMP/s"
	"$BIN" --socket-path="$TMP/s" "$@" 2>"$TMP/err" </dev/null &
	pid=$!
	i=0
	while ! grep -q "listening on $TMP/s" "$TMP/err" 2>/dev/null && [ $i -lt 100 ]; do
		kill -0 $pid 2>/dev/null || break
		sleep 0.05
		i=$((i + 1))
	done
	# The filter goes in right after "listening on": let it (and a selftest) run.
	sleep 0.2
}

# finish: SIGTERM (if still running), wait; $status is the exit status.
finish() {
	kill -TERM $pid 2>/dev/null
	i=0
	while kill -0 $pid 2>/dev/null && [ $i -lt 40 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	kill -0 $pid 2>/dev/null && kill -KILL $pid
	wait $pid
	status=$?
	echo "# exit status $status" >>"$TMP/err"
}

# serves_and_exits MODE: starts, logs the filter (unless off), SIGTERM -> 0, socket gone.
serves_and_exits() {
	start --sandbox="$1"
	alive=no
	kill -0 $pid 2>/dev/null && alive=yes
	finish
	[ "$alive" = yes ] && [ $status -eq 0 ] && [ ! -e "$TMP/s" ] || return 1
	if [ "$1" = off ]; then
		! grep -q "sandbox" "$TMP/err"
	else
		grep -q "seccomp filter installed ($1:" "$TMP/err"
	fi
}

# selftest MODE TEST EXPECTED_STATUS [GREP]: the daemon with VSHM_SANDBOX_SELFTEST=TEST.
selftest() {
	mode=$1 t=$2 want=$3 pat=$4
	VSHM_SANDBOX_SELFTEST=$t VSHM_SANDBOX_SELFTEST_PATH="$TMP/written" start --sandbox="$mode"
	finish
	[ $status -eq "$want" ] || return 1
	[ -z "$pat" ] || grep -q "$pat" "$TMP/err"
}

check "--sandbox=bogus exits 2" run 2 --socket-path="$TMP/s" --sandbox=bogus
check "... with a clear message" grep -q "'bogus' is not off, log or on" "$TMP/err"
check "--help documents --sandbox" sh -c '"$1" --help | grep -q -- "--sandbox=MODE"' sh "$BIN"
check "--sandbox=off serves and exits 0 on SIGTERM" serves_and_exits off

if [ "$SECCOMP" != yes ]; then
	check "--sandbox=on without libseccomp fails with status 1" \
		run 1 --socket-path="$TMP/s" --sandbox=on
	check "... saying why" grep -q "without libseccomp" "$TMP/err"
	check "... without creating the socket" test ! -e "$TMP/s"
	echo "1..$N"
	[ $FAILED -eq 0 ]
	exit
fi

if [ "$SANITIZE" != none ]; then
	echo "# b_sanitize=$SANITIZE: the filter checks are skipped"
	echo "1..$N"
	[ $FAILED -eq 0 ]
	exit
fi

check "--sandbox=on serves and exits 0 on SIGTERM (socket removed)" serves_and_exits on
check "--sandbox=log serves and exits 0 on SIGTERM" serves_and_exits log

check "on: execve after the filter is killed by SIGSYS" \
	selftest on execve $SIGSYS_STATUS "selftest (test only): execve"
check "... and did not return" sh -c '! grep -q "execve returned" "$1"' sh "$TMP/err"
check "on: socket(AF_INET) is killed by SIGSYS" selftest on socket $SIGSYS_STATUS
check "on: a file opened for writing gets EPERM, the daemon goes on" \
	selftest on open-write 0 "open-write refused: Operation not permitted"
check "... and the file was not created" test ! -e "$TMP/written"
check "log: socket(AF_INET) is allowed (and logged by the kernel)" \
	selftest log socket 0 "socket allowed"
check "log: open-write is allowed" selftest log open-write 0 "open-write allowed"
check "log: the execve selftest is refused (never replaces the daemon)" \
	selftest log execve 0 "only tried with --sandbox=on"
rm -f "$TMP/written"
check "off: the selftest hook does nothing" selftest off socket 0
check "... not even log a line" sh -c '! grep -q "selftest" "$1"' sh "$TMP/err"

echo "1..$N"
[ $FAILED -eq 0 ]
