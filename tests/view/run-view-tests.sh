#!/bin/sh
# SPDX-License-Identifier: MIT
# run-view-tests.sh TEST-BINARY DAEMON: vshm-view under headless weston.
#
# Needs Debian bookworm's weston 10 (headless-backend.so, kiosk-shell.so,
# weston-screenshooter). When missing and running as root it is installed
# with apt-get; otherwise the suite is skipped (TAP "1..0 # SKIP").
set -u
if ! command -v weston >/dev/null 2>&1 || ! command -v weston-screenshooter >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y weston >&2 || true
	fi
fi
if ! command -v weston >/dev/null 2>&1 || ! command -v weston-screenshooter >/dev/null 2>&1; then
	echo "1..0 # SKIP weston / weston-screenshooter not installed"
	exit 0
fi
VV_WESTON=$(command -v weston)
VV_SCREENSHOOTER=$(command -v weston-screenshooter)
export VV_WESTON VV_SCREENSHOOTER
exec "$@"
