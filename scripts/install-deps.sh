#!/bin/bash
# SPDX-License-Identifier: MIT
# install-deps.sh - install what building and testing vshm needs on Debian 12.
#
#   scripts/install-deps.sh [--build] [--test] [--e2e]
#
# --build: compiler, meson/ninja and the libraries (see docs/dependencies.md)
# --test:  + clang for the libFuzzer targets, clang-format for the style check,
#          weston (headless) for the vshm-view tests
# --e2e:   + QEMU 10 from bookworm-backports and what the guest image needs
#          (delegated to tests/e2e/install-deps.sh)
# Packages already present are skipped, so a second run is quick.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
want_build=0 want_test=0 want_e2e=0
[ $# -eq 0 ] && want_build=1
for a in "$@"; do
	case $a in
	--build) want_build=1 ;;
	--test) want_build=1 want_test=1 ;;
	--e2e) want_e2e=1 ;;
	*) echo "install-deps.sh: unknown option $a" >&2; exit 2 ;;
	esac
done

pkgs=()
if [ $want_build = 1 ]; then
	pkgs+=(gcc libc6-dev meson ninja-build pkg-config python3
		libdrm-dev libpng-dev libjson-c-dev libseccomp-dev libgbm-dev
		libwayland-dev wayland-protocols libepoxy-dev libvirglrenderer-dev)
fi
if [ $want_test = 1 ]; then
	pkgs+=(clang llvm libclang-rt-14-dev clang-format binutils weston)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	SUDO=
	[ "$(id -u)" = 0 ] || SUDO=sudo
	echo "install-deps: installing ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
fi
if [ $want_e2e = 1 ]; then
	"$HERE/tests/e2e/install-deps.sh"
fi
