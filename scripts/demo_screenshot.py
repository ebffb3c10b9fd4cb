#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""demo_screenshot.py - put two demo frames side by side in one PNG (the
README screenshot, docs/demo.png).  Python standard library only.

usage: demo_screenshot.py HEAD0.png HEAD1.png OUT.png [--half]
  --half   scale the result down to half size (2x2 box filter)

Reads 8-bit RGB/RGBA/grey PNGs (any filter, not interlaced) and writes an
8-bit RGB PNG (no filter, zlib level 9).  demo.py
imports read_png(), write_png() and side_by_side() from here.
"""
import struct
import sys
import zlib

GAP = 16            # pixels between the heads and around them
BACKGROUND = 0x18   # dark grey
_H = None           # SWAR masks, cached per row length


def _masks(n):
    global _H
    if _H is None or _H[0] != n:
        hi = int.from_bytes(b"\x80" * n, "big")
        lo = int.from_bytes(b"\x7f" * n, "big")
        _H = (n, hi, lo)
    return _H[1], _H[2]


def _bytes_add(a, b):
    """(a + b) mod 256 for every byte of two equal-length byte strings."""
    n = len(a)
    hi, lo = _masks(n)
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    return (((x & lo) + (y & lo)) ^ ((x ^ y) & hi)).to_bytes(n, "big")


def read_png(path):
    """(width, height, RGB bytes) of an 8-bit, non-interlaced PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("%s: not a PNG" % path)
    pos, idat, hdr = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, h, depth, ctype, _, _, interlace = hdr
    chans = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or chans is None or interlace:
        raise ValueError("%s: only 8-bit grey/RGB/RGBA non-interlaced PNGs "
                         "(depth %d, colour type %d, interlace %d)" % (path, depth, ctype,
                                                                       interlace))
    raw = zlib.decompress(b"".join(idat))
    bpp, stride = chans, chans * w
    prev = bytes(stride)
    rows = []
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)]
        if ft == 0:
            cur = line
        elif ft == 2:
            cur = _bytes_add(line, prev)
        else:
            cur = bytearray(line)
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b = prev[i]
                if ft == 1:
                    p = a
                elif ft == 3:
                    p = (a + b) >> 1
                else:
                    c = prev[i - bpp] if i >= bpp else 0
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[i] = (cur[i] + p) & 255
            cur = bytes(cur)
        rows.append(cur)
        prev = cur
    pix = b"".join(rows)
    if chans == 3:
        return w, h, pix
    out = bytearray(3 * w * h)
    if chans == 4:
        out[0::3], out[1::3], out[2::3] = pix[0::4], pix[1::4], pix[2::4]
    elif chans == 2:
        out[0::3] = out[1::3] = out[2::3] = pix[0::2]
    else:
        out[0::3] = out[1::3] = out[2::3] = pix
    return w, h, bytes(out)


def write_png(path, w, h, pix, level=9):
    """Write RGB bytes as an 8-bit RGB PNG.  No filter: the demo draws 2x2
    blocks, which zlib finds by itself (smaller than with Up or Sub)."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    stride = 3 * w
    parts = [b"\0" + pix[y * stride:(y + 1) * stride] for y in range(h)]
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(b"".join(parts), level)))
        f.write(chunk(b"IEND", b""))


def half(w, h, pix):
    """2x2 box filter: (w//2, h//2, RGB bytes)."""
    hw, hh, stride = w // 2, h // 2, 3 * w
    out = bytearray(3 * hw * hh)
    for y in range(hh):
        r0 = pix[2 * y * stride:(2 * y + 1) * stride]
        r1 = pix[(2 * y + 1) * stride:(2 * y + 2) * stride]
        o = 3 * hw * y
        for x in range(3 * hw):
            i = (x // 3) * 6 + x % 3
            out[o + x] = (r0[i] + r0[i + 3] + r1[i] + r1[i + 3] + 2) >> 2
    return hw, hh, bytes(out)


def side_by_side(images, gap=GAP):
    """[(w, h, RGB)...] -> (w, h, RGB): left to right, top-aligned, on a
    dark background with gap pixels around and between them."""
    tw = sum(i[0] for i in images) + gap * (len(images) + 1)
    th = max(i[1] for i in images) + 2 * gap
    canvas = bytearray(bytes((BACKGROUND,)) * (3 * tw * th))
    x0 = gap
    for w, h, pix in images:
        for y in range(h):
            o = 3 * ((gap + y) * tw + x0)
            canvas[o:o + 3 * w] = pix[3 * w * y:3 * w * (y + 1)]
        x0 += w + gap
    return tw, th, bytes(canvas)


def main(argv):
    args = [a for a in argv if a != "--half"]
    if len(args) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    imgs = [read_png(p) for p in args[:2]]
    w, h, pix = side_by_side(imgs)
    if "--half" in argv:
        w, h, pix = half(w, h, pix)
    write_png(args[2], w, h, pix)
    print("%s: %dx%d" % (args[2], w, h))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
