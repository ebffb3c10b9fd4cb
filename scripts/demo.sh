#!/bin/bash
# SPDX-License-Identifier: MIT
# demo.sh - see vshm-gpu drive a real guest's display (the README's first command).
#
#   scripts/demo.sh [--seconds N] [--out DIR] [--xres N --yres N] [--kernel 6.1|6.12]
#                   [--qemu-display SPEC] [--no-install] [--no-build] [demo.py options]
#
# 1. installs what is missing (scripts/install-deps.sh --build and
#    tests/e2e/install-deps.sh: QEMU 10 from bookworm-backports, busybox, ...)
# 2. builds vshm (meson setup build -Dwerror=true if there is no build/; ninja)
# 3. builds the guest image (tests/e2e/build-guest.sh; the kernel is cached)
# 4. scripts/demo.py: boots the guest under QEMU (TCG) with vshm-gpu serving a
#    two-head vhost-user-gpu-pci; the guest animates both heads for N seconds
#    (default 20) and the frames are shown (vshm-view on Wayland), captured
#    (vshm-capture) or screendumped through QMP, as PNGs in DIR/frames
#    (default _work/demo).  DIR/demo.png shows both heads side by side.
# --no-install / --no-build skip steps 1 / 2.  Everything else goes to demo.py
# (scripts/demo.py --help).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
INSTALL=1 BUILD=1 KERNEL=6.1 ARGS=()
while [ $# -gt 0 ]; do
	case $1 in
	--no-install) INSTALL=0 ;;
	--no-build) BUILD=0 ;;
	--kernel) KERNEL=$2; ARGS+=("$1" "$2"); shift ;;
	--kernel=*) KERNEL=${1#--kernel=}; ARGS+=("$1") ;;
	-h|--help) sed -n '3,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) ARGS+=("$1") ;;
	esac
	shift
done
case $KERNEL in 6.1|6.12) ;; *) echo "demo: --kernel 6.1 or 6.12" >&2; exit 2 ;; esac
export E2E_WORK=${E2E_WORK:-$ROOT/_work/e2e}
mkdir -p "$E2E_WORK"
t0=$SECONDS
step() { printf '[demo %3ds] %s\n' $((SECONDS - t0)) "$*"; }

if [ $INSTALL = 1 ]; then
	step "checking dependencies (scripts/install-deps.sh --build, tests/e2e/install-deps.sh)"
	scripts/install-deps.sh --build
	if ! tests/e2e/install-deps.sh >"$E2E_WORK/install-deps.log" 2>&1; then
		cat "$E2E_WORK/install-deps.log" >&2
		echo "demo: tests/e2e/install-deps.sh failed (it needs root to apt-get)" >&2
		exit 1
	fi
	tail -1 "$E2E_WORK/install-deps.log"
fi

if [ $BUILD = 1 ]; then
	if [ ! -f build/build.ninja ]; then
		step "meson setup build -Dwerror=true"
		meson setup build -Dwerror=true >"$E2E_WORK/demo-meson.log" 2>&1 ||
			{ cat "$E2E_WORK/demo-meson.log" >&2; exit 1; }
	fi
	step "ninja -C build"
	ninja -C build >"$E2E_WORK/demo-ninja.log" 2>&1 ||
		{ tail -40 "$E2E_WORK/demo-ninja.log" >&2; echo "demo: build failed" >&2; exit 1; }
	tail -1 "$E2E_WORK/demo-ninja.log"
fi
[ -x build/server/vshm-gpu ] || { echo "demo: build/server/vshm-gpu missing" >&2; exit 1; }

step "building the guest image (tests/e2e/build-guest.sh $KERNEL)"
tests/e2e/build-guest.sh "$KERNEL"

step "starting the demo"
exec python3 scripts/demo.py "${ARGS[@]}"
