#!/bin/bash
# run-e2e.sh - the whole vshm e2e test for one backend, as CI and meson run it:
#   install-deps.sh (only if something is missing; needs root), build-guest.sh
#   (cached in $E2E_WORK), then run.py.
#
# usage: run-e2e.sh --backend PATH [--kernel 6.1[,6.12]] [--out DIR] [run.py options...]
#   --backend builtin   QEMU's in-process virtio-gpu (no vhost-user; a sanity run)
# env:   E2E_WORK (default <repo>/_work/e2e), E2E_KERNELS (default 6.1)
# exit:  0 all checks passed, 1 a check failed, 77 skipped (deps missing, not root)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export E2E_WORK=${E2E_WORK:-$REPO/_work/e2e}
KERNELS=${E2E_KERNELS:-6.1}
OUT='' ARGS=()
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) KERNELS=$2; shift ;;
	--out) OUT=$2; shift ;;
	*) ARGS+=("$1") ;;
	esac
	shift
done
mkdir -p "$E2E_WORK"

if ! "$HERE/install-deps.sh" >"$E2E_WORK/install-deps.log" 2>&1; then
	cat "$E2E_WORK/install-deps.log"
	if [ "$(id -u)" != 0 ]; then
		echo "e2e: SKIP - dependencies missing and not root (run tests/e2e/install-deps.sh as root)"
		exit 77
	fi
	echo "e2e: install-deps.sh failed" >&2
	exit 1
fi
tail -1 "$E2E_WORK/install-deps.log"
# shellcheck disable=SC2046
"$HERE/build-guest.sh" $(echo "$KERNELS" | tr ',' ' ')

rc=0
for k in $(echo "$KERNELS" | tr ',' ' '); do
	o=()
	[ -n "$OUT" ] && o=(--out "$OUT/$k")
	python3 "$HERE/run.py" --kernel "$k" "${o[@]}" "${ARGS[@]}" || rc=1
done
exit $rc
