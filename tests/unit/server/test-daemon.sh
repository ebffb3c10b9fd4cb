#!/bin/sh
# SPDX-License-Identifier: MIT
#
# test-daemon.sh - vshm-gpu as a program: capabilities, option errors, early
# failure for --virgl, prompt clean exit on SIGTERM/SIGINT, and accepting a
# new front-end after the previous one left. Prints TAP.
#
# Usage: test-daemon.sh PATH/TO/vshm-gpu

BIN=${1:?usage: test-daemon.sh PATH/TO/vshm-gpu}
TMP=$(mktemp -d) || exit 1
trap 'rm -rf "$TMP"' EXIT
N=0
FAILED=0

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

# run EXPECTED_STATUS ARGS...: runs the daemon, stdout to $TMP/out.
run() {
	want=$1
	shift
	"$BIN" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
	[ $? -eq "$want" ]
}

caps='{"type": "gpu", "features": []}'

check "--print-capabilities exits 0" run 0 --print-capabilities
check "--print-capabilities prints the JSON" test "$(cat "$TMP/out")" = "$caps"
check "--print-capabilities ignores other arguments" run 0 --bogus --virgl --print-capabilities
check "... and still prints the JSON" test "$(cat "$TMP/out")" = "$caps"
check "--help exits 0" run 0 --help
check "--help prints usage" grep -q -- "--socket-path" "$TMP/out"
check "--version exits 0" run 0 --version
check "--version prints the name" grep -q "^vshm-gpu " "$TMP/out"
check "unknown option exits 2" run 2 --socket-path="$TMP/s" --frobnicate
check "... with a clear message" grep -q "unknown option '--frobnicate'" "$TMP/err"
check "no connection option exits 2" run 2
check "--socket-path with --fd exits 2" run 2 --socket-path="$TMP/s" --fd=0
check "bad --scanouts exits 2" run 2 --socket-path="$TMP/s" --scanouts=0
check "--virgl fails early with status 1" run 1 --socket-path="$TMP/s" --virgl
check "... saying why" grep -q "virgl" "$TMP/err"
check "... without creating the socket" test ! -e "$TMP/s"
check "missing --render-node fails with status 1" run 1 --socket-path="$TMP/s" \
	--render-node="$TMP/no-such-node"
check "--fd that is not a socket fails with status 1" run 1 --fd=0

# wait_for_socket PATH: up to 5 s for the daemon's "listening on PATH" line in $TMP/err.
wait_for_socket() {
	i=0
	while ! grep -q "listening on $1" "$TMP/err" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	[ -S "$1" ]
}

# signal_exit SIGNAL: start, deliver SIGNAL, expect status 0 within 2 s.
signal_exit() {
	sock="$TMP/sig-$1.sock"
	# A stale socket file at the path (a crashed earlier run) is replaced.
	if command -v python3 >/dev/null; then
		python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$sock"
	fi
	"$BIN" --socket-path="$sock" 2>"$TMP/err" </dev/null &
	pid=$!
	if ! wait_for_socket "$sock"; then
		kill -KILL $pid 2>/dev/null
		wait $pid
		return 1
	fi
	kill -"$1" $pid
	i=0
	while kill -0 $pid 2>/dev/null && [ $i -lt 40 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	if kill -0 $pid 2>/dev/null; then
		echo "# still running 2 s after SIG$1" >>"$TMP/err"
		kill -KILL $pid
		wait $pid
		return 1
	fi
	wait $pid
	status=$?
	[ $status -eq 0 ] || echo "# exit status $status" >>"$TMP/err"
	[ $status -eq 0 ] && [ ! -e "$sock" ]
}

check "SIGTERM exits 0 promptly and removes the socket" signal_exit TERM
check "SIGINT exits 0 promptly" signal_exit INT

# A front-end that connects, leaves, and connects again (QEMU reconnecting).
reconnect() {
	command -v python3 >/dev/null || return 0
	sock="$TMP/re.sock"
	"$BIN" --socket-path="$sock" --log-level=info 2>"$TMP/err" </dev/null &
	pid=$!
	wait_for_socket "$sock" || { kill -KILL $pid; wait $pid; return 1; }
	python3 - "$sock" <<'PY' >>"$TMP/err" 2>&1
import socket, struct, sys, time
GET_FEATURES = 1
for attempt in range(3):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(sys.argv[1])
    # VHOST_USER_GET_FEATURES, version 1, no payload: the reply proves we are served.
    s.sendall(struct.pack("<III", GET_FEATURES, 1, 0))
    hdr = s.recv(12)
    req, flags, size = struct.unpack("<III", hdr)
    body = s.recv(size)
    assert req == GET_FEATURES and size == 8, (req, flags, size)
    s.close()
    time.sleep(0.1)
PY
	py=$?
	kill -TERM $pid
	wait $pid
	status=$?
	[ $py -eq 0 ] && [ $status -eq 0 ]
}

check "accepts a new front-end after the previous one disconnected" reconnect

# QEMU's display socket handover: request 33 carries one end of a socketpair;
# the daemon must start the GET/SET_PROTOCOL_FEATURES handshake on it, and
# again on a re-sent socket.
handover() {
	command -v python3 >/dev/null || return 0
	sock="$TMP/ho.sock"
	"$BIN" --socket-path="$sock" 2>"$TMP/err" </dev/null &
	pid=$!
	wait_for_socket "$sock" || { kill -KILL $pid; wait $pid; return 1; }
	python3 - "$sock" <<'PY' >>"$TMP/err" 2>&1
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(2)
s.connect(sys.argv[1])
for round in range(2):
    ours, theirs = socket.socketpair()
    ours.settimeout(2)
    # VHOST_USER_GPU_SET_SOCKET, version 1, no payload, one fd.
    socket.send_fds(s, [struct.pack("<III", 33, 1, 0)], [theirs.fileno()])
    theirs.close()
    req, flags, size = struct.unpack("<III", ours.recv(12))
    assert (req, flags, size) == (1, 0, 0), (req, flags, size)
    ours.sendall(struct.pack("<IIIQ", 1, 4, 8, 3 | (1 << 9)))
    req, flags, size = struct.unpack("<III", ours.recv(12))
    value, = struct.unpack("<Q", ours.recv(8))
    assert (req, flags, size, value) == (2, 0, 8, 3), (req, flags, size, value)
    if round == 1:
        ours.close()
    else:
        first = ours
# The first display socket was closed when the second arrived.
first.settimeout(2)
assert first.recv(1) == b""
s.close()
PY
	py=$?
	kill -TERM $pid
	wait $pid
	status=$?
	[ $py -eq 0 ] && [ $status -eq 0 ] && grep -q "display sockets=2" "$TMP/err"
}

check "display socket handover starts the protocol handshake" handover

echo "1..$N"
[ $FAILED -eq 0 ]
