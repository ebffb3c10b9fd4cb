#!/bin/bash
# install-deps.sh - install what the vshm e2e test needs on Debian 12 (run as root).
#
# QEMU comes from bookworm-backports: bookworm's own QEMU 7.2 refuses
# -device vhost-user-gpu-pci under TCG ("vhost initialization failed: requires
# kvm").  The backports suite is added for this apt run only, through
# -o Dir::Etc::SourceParts=<dir>; its entry reuses the Debian mirror URI that
# /etc/apt already names, so no host name is written anywhere by this script.
#
# usage: install-deps.sh [--force]     (--force: reinstall even if all is present)
# env:   E2E_WORK  work dir (default <repo>/_work/e2e)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=${E2E_WORK:-$REPO/_work/e2e}
FORCE=0
[ "${1:-}" = --force ] && FORCE=1

# Everything present already?  (cheap check so reruns do not touch apt)
missing() {
	local f
	for f in /usr/bin/qemu-system-x86_64 /usr/lib/qemu/vhost-user-gpu /bin/busybox \
		/usr/bin/cpio /usr/bin/kmod /usr/bin/xz /usr/bin/zstd /usr/bin/gcc \
		/usr/include/libdrm/drm_mode.h /usr/bin/python3 /usr/bin/dpkg-deb; do
		[ -e "$f" ] || { echo "$f"; return 0; }
	done
	# bookworm's 7.2 is present but useless under TCG: insist on >= 8
	local v
	v=$(/usr/bin/qemu-system-x86_64 --version | sed -n '1s/.*version \([0-9]*\).*/\1/p')
	[ "${v:-0}" -ge 8 ] || { echo "qemu-system-x86_64 $v (< 8)"; return 0; }
	return 1
}
if [ $FORCE = 0 ] && ! what=$(missing); then
	echo "install-deps: everything present ($(/usr/bin/qemu-system-x86_64 --version | head -1))"
	exit 0
fi
echo "install-deps: need to install (first missing: ${what:-forced})"
[ "$(id -u)" = 0 ] || { echo "install-deps: must run as root (apt-get)" >&2; exit 1; }

# --- a private SourceParts dir: the enabled system parts + bookworm-backports
PARTS=$WORK/apt/sources.list.d
mkdir -p "$PARTS"
rm -f "$PARTS"/*
shopt -s nullglob
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	cp "$f" "$PARTS/"
done
shopt -u nullglob

# The mirror URI of the stanza/line that serves the plain "bookworm" suite.
mirror_uri() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -e "$f" ] || continue
		# deb822: stanzas separated by blank lines
		awk 'BEGIN { RS = ""; FS = "\n" }
		{
			uri = ""; ok = 0; deb = 0
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); uri = a[2] }
				if ($i ~ /^Types:/ && $i ~ /(^|[ \t])deb([ \t]|$)/) deb = 1
				if ($i ~ /^Suites:/ && $i ~ /[ \t]bookworm([ \t]|$)/) ok = 1
			}
			if (ok && deb && uri != "") { print uri; exit }
		}' "$f"
	done | head -1
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -e "$f" ] || continue
		# one-line format: deb [options] URI suite components...
		awk '$1 == "deb" {
			i = 2
			if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
			if ($(i + 1) == "bookworm") { print $i; exit }
		}' "$f"
	done | head -1
}
URI=$(mirror_uri | head -1)
[ -n "$URI" ] || { echo "install-deps: no bookworm mirror found in /etc/apt" >&2; exit 1; }
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
{
	echo "Types: deb"
	echo "URIs: $URI"
	echo "Suites: bookworm-backports"
	echo "Components: main"
	[ -e "$KEYRING" ] && echo "Signed-By: $KEYRING"
} >"$PARTS/vshm-e2e-bookworm-backports.sources"
echo "install-deps: bookworm-backports from the configured mirror $URI"

APT=(apt-get -o "Dir::Etc::SourceParts=$PARTS" -o Acquire::Retries=3)
export DEBIAN_FRONTEND=noninteractive
"${APT[@]}" update -qq
"${APT[@]}" install -y -qq --no-install-recommends \
	busybox-static cpio kmod xz-utils zstd python3 gcc libc6-dev libdrm-dev \
	ca-certificates >/dev/null
# qemu-system-gui ships /usr/lib/qemu/vhost-user-gpu in the backports QEMU;
# qemu-system-x86 pulls the rest.
"${APT[@]}" install -y -qq --no-install-recommends -t bookworm-backports \
	qemu-system-x86 qemu-system-gui >/dev/null
echo "install-deps: $(/usr/bin/qemu-system-x86_64 --version | head -1)"
if what=$(missing); then
	echo "install-deps: still missing after install: $what" >&2
	exit 1
fi
echo "install-deps: vhost-user-gpu from package $(dpkg -S /usr/lib/qemu/vhost-user-gpu | cut -d: -f1)"
