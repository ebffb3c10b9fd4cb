#!/bin/bash
# build-guest.sh - build the guest image for the vshm e2e test:
#   a Debian kernel (booted as an ELF vmlinux through QEMU's PVH entry, which
#   skips the real-mode setup and in-guest decompression that are slow under
#   TCG) and an uncompressed busybox initramfs holding the virtio-gpu modules,
#   the static guest program and /init.
#
# usage: build-guest.sh [6.1|6.12]...   (default: 6.1)
#   6.1   the kernel linux-image-amd64 depends on (bookworm's default)
#   6.12  the kernel linux-image-6.12-amd64 depends on
# env:   E2E_WORK  work dir (default <repo>/_work/e2e); kernel .debs are cached
#                  in $E2E_WORK/debs, images go to $E2E_WORK/guest/
# out:   $E2E_WORK/guest/<series>/{vmlinux,vmlinuz,initramfs.cpio,kernel-release}
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=${E2E_WORK:-$REPO/_work/e2e}
[ $# -gt 0 ] || set -- 6.1
mkdir -p "$WORK/debs" "$WORK/guest"

for tool in dpkg-deb depmod modprobe cpio gcc python3; do
	command -v $tool >/dev/null || { echo "build-guest: $tool missing (run install-deps.sh)" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "build-guest: /bin/busybox missing (busybox-static)" >&2; exit 1; }
case "$(/bin/busybox 2>&1 || true)" in *BusyBox*) ;; *) echo "build-guest: /bin/busybox is not busybox" >&2; exit 1 ;; esac
ldd /bin/busybox >/dev/null 2>&1 && { echo "build-guest: /bin/busybox is dynamic; need busybox-static" >&2; exit 1; }

# One kernel .deb per series: resolve the metapackage, reuse the cached .deb.
fetch_kernel() {
	local meta=$1 glob=$2 pkg deb
	pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
	if [ -n "$pkg" ]; then
		deb=$(ls -t "$WORK/debs/${pkg}_"*.deb 2>/dev/null | head -1 || true)
		if [ -z "$deb" ]; then
			echo "build-guest: apt-get download $pkg" >&2
			(cd "$WORK/debs" && apt-get download -q "$pkg" 2>&1 | grep -v -i unsandboxed >&2 || true)
			deb=$(ls -t "$WORK/debs/${pkg}_"*.deb 2>/dev/null | head -1 || true)
		fi
	else
		# no apt lists (offline rerun): take the newest cached one
		deb=$(ls -t "$WORK/debs/"$glob 2>/dev/null | head -1 || true)
	fi
	[ -n "$deb" ] || { echo "build-guest: cannot get a .deb for $meta (apt-get update?)" >&2; return 1; }
	echo "$deb"
}

# bzImage -> ELF vmlinux (the compressed payload, decompressed).
extract_vmlinux() {
	python3 - "$1" "$2" <<'PY'
import lzma, gzip, struct, subprocess, sys
src, dst = sys.argv[1], sys.argv[2]
img = open(src, "rb").read()
if img[0x202:0x206] != b"HdrS":
    sys.exit("%s: not a bzImage" % src)
setup = (img[0x1F1] or 4) + 1                      # setup sectors + boot sector
poff, plen = struct.unpack_from("<II", img, 0x248)  # payload offset/length
blob = img[setup * 512 + poff: setup * 512 + poff + plen]
if blob.startswith(b"\xfd7zXZ\x00"):
    data = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(blob)
elif blob.startswith(b"\x28\xb5\x2f\xfd"):
    data = subprocess.run(["zstd", "-q", "-d", "-c"], input=blob[:-4],
                          stdout=subprocess.PIPE, check=True).stdout
elif blob.startswith(b"\x1f\x8b"):
    data = gzip.GzipFile(fileobj=__import__("io").BytesIO(blob)).read()
else:
    sys.exit("%s: unknown payload compression %s" % (src, blob[:6].hex()))
if data[:4] != b"\x7fELF":
    sys.exit("%s: payload is not ELF" % src)
open(dst, "wb").write(data)
PY
}

build_series() {
	local series=$1 meta glob deb kroot kver g stage mod deps ko base
	case $series in
	6.1) meta=linux-image-amd64 glob='linux-image-6.1.*-amd64_*.deb' ;;
	6.12) meta=linux-image-6.12-amd64 glob='linux-image-6.12.*-amd64_*.deb' ;;
	*) echo "build-guest: unknown kernel series $series" >&2; return 2 ;;
	esac
	local t0=$SECONDS
	deb=$(fetch_kernel "$meta" "$glob")
	kroot=$WORK/kernel-$series
	if [ "$(cat "$kroot/.deb" 2>/dev/null)" != "$(basename "$deb")" ]; then
		rm -rf "$kroot" && mkdir -p "$kroot"
		dpkg-deb -x "$deb" "$kroot"
		kver=$(ls "$kroot/lib/modules")
		depmod -b "$kroot" "$kver"
		basename "$deb" >"$kroot/.deb"
	fi
	kver=$(ls "$kroot/lib/modules")
	g=$WORK/guest/$series
	mkdir -p "$g"
	echo "$kver" >"$g/kernel-release"
	cp "$kroot/boot/config-$kver" "$g/config"
	if [ ! -s "$g/vmlinux" ] || [ "$kroot/boot/vmlinuz-$kver" -nt "$g/vmlinux" ]; then
		cp "$kroot/boot/vmlinuz-$kver" "$g/vmlinuz"
		if grep -qx CONFIG_PVH=y "$g/config"; then
			extract_vmlinux "$g/vmlinuz" "$g/vmlinux"
		else
			rm -f "$g/vmlinux"   # run.py falls back to the bzImage
		fi
	fi

	stage=$g/root
	rm -rf "$stage"
	mkdir -p "$stage"/{bin,dev,proc,sys,tmp,lib/modules}
	: >"$stage/modules.order"
	# virtio_pci is not a dependency of virtio_gpu but is needed to find the device
	for mod in virtio_pci virtio_gpu; do
		deps=$(modprobe -d "$kroot" -S "$kver" --show-depends "$mod") || {
			echo "build-guest: $mod: not in kernel $kver" >&2; return 1; }
		while read -r kind ko _; do
			[ "$kind" = insmod ] || continue
			base=$(basename "$ko")
			base=${base%.xz}; base=${base%.zst}; base=${base%.gz}
			grep -qx "${base%.ko}" "$stage/modules.order" && continue
			case $ko in   # busybox insmod wants plain .ko files
			*.xz) xz -d -c "$ko" >"$stage/lib/modules/$base" ;;
			*.zst) zstd -q -d -c "$ko" >"$stage/lib/modules/$base" ;;
			*.gz) gzip -d -c "$ko" >"$stage/lib/modules/$base" ;;
			*) cp "$ko" "$stage/lib/modules/$base" ;;
			esac
			echo "${base%.ko}" >>"$stage/modules.order"
		done <<<"$deps"
	done

	cp /bin/busybox "$stage/bin/busybox"
	gcc -static -O2 -g0 -s -Wall -Wextra -Werror -I/usr/include/libdrm \
		-o "$stage/bin/vshm-e2e-guest" "$HERE/guest/vshm-e2e-guest.c"
	# test "dmabuf": libvshm's buffer + fence sources built into a static
	# program, to run them against the guest kernel's udmabuf / dma-buf code
	local vsrc=$REPO/libvshm/src
	gcc -static -std=gnu11 -D_GNU_SOURCE -O2 -g0 -s -Wall -Wextra -Werror \
		-Wno-unused-parameter -I/usr/include/libdrm -I"$REPO/libvshm/include" -I"$vsrc" \
		-o "$stage/bin/vshm-e2e-dmabuf" "$HERE/guest/vshm-e2e-dmabuf.c" \
		"$vsrc/buffer_memfd.c" "$vsrc/buffer_udmabuf.c" "$vsrc/buffer_dmabuf.c" \
		"$vsrc/fence.c" "$vsrc/memory.c" "$vsrc/log.c" "$vsrc/util.c" -lpthread
	cp "$HERE/guest/init" "$stage/init"
	chmod 755 "$stage/init"
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0 >"$g/initramfs.cpio")
	echo "build-guest: $series: kernel $kver ($(basename "$deb")), boot $( [ -s "$g/vmlinux" ] && echo pvh || echo bzimage )," \
		"modules: $(tr '\n' ' ' <"$stage/modules.order")," \
		"initramfs $(( $(stat -c %s "$g/initramfs.cpio") / 1024 )) KiB, $((SECONDS - t0)) s"
}

# Serialise concurrent builds (two meson tests may start together).
exec 9>"$WORK/.build-guest.lock"
flock 9
for s in "$@"; do
	build_series "$s"
done
