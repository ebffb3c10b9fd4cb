"""e2eimg - images for the vshm e2e test (Python standard library only).

PPM (P6) reading, PNG reading (vshm-capture's frames) and writing, and the exact expected images:
  pattern_rgb()  the KMS test pattern, the same function as pattern_px() in
                 guest/vshm-e2e-guest.c (see the comment at the top there)
  fbcon_rgb()    the text console, rendered from the font and palette the guest
                 read from the kernel (KDFONTOP / GIO_CMAP) and the text it wrote
  cursor_bgra()  the cursor images, the same as cursor_px() in the guest
"""
import struct
import zlib

BARS = (0xFFFFFF, 0xFFFF00, 0x00FFFF, 0x00FF00, 0xFF00FF, 0xFF0000, 0x0000FF, 0x000000)
BORDER = 0xFF8000
CELL_ON, CELL_OFF = 0xFFFFFF, 0x303030


def rgb(c):
    return bytes(((c >> 16) & 255, (c >> 8) & 255, c & 255))


def read_ppm(path):
    """(width, height, RGB bytes) of a binary 8-bit PPM."""
    with open(path, "rb") as f:
        data = f.read()
    tokens, pos = [], 0
    while len(tokens) < 4:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        tokens.append(data[pos:end])
        pos = end
    if tokens[0] != b"P6" or tokens[3] != b"255":
        raise ValueError("%s: not an 8-bit binary PPM" % path)
    w, h = int(tokens[1]), int(tokens[2])
    pix = data[pos + 1:pos + 1 + 3 * w * h]
    if len(pix) != 3 * w * h:
        raise ValueError("%s: short pixel data" % path)
    return w, h, pix


def write_png(path, w, h, pix, level=1):
    """Write RGB bytes as an 8-bit truecolour PNG."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    stride = 3 * w
    raw = b"".join(b"\0" + pix[y * stride:(y + 1) * stride] for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, level)))
        f.write(chunk(b"IEND", b""))


def _swar_add(a, b, lo, hi):
    """Bytewise a + b (mod 256 per byte) of two byte strings held as ints."""
    return ((a & lo) + (b & lo)) ^ ((a ^ b) & hi)


def _unfilter(ftype, raw, prev, bpp):
    n = len(raw)
    if ftype == 0:
        return raw
    if ftype in (1, 2):
        lo = int.from_bytes(b"\x7f" * n, "little")
        hi = int.from_bytes(b"\x80" * n, "little")
        x = int.from_bytes(raw, "little")
        if ftype == 2:      # Up
            x = _swar_add(x, int.from_bytes(prev, "little"), lo, hi)
        else:               # Sub: a prefix sum per byte lane, in log2(n) steps
            full = (1 << (8 * n)) - 1
            shift = 8 * bpp
            while shift < 8 * n:
                x = _swar_add(x, (x << shift) & full, lo, hi)
                shift *= 2
        return x.to_bytes(n, "little")
    cur = bytearray(raw)
    if ftype == 3:          # Average
        for i in range(n):
            left = cur[i - bpp] if i >= bpp else 0
            cur[i] = (cur[i] + ((left + prev[i]) >> 1)) & 255
        return bytes(cur)
    if ftype == 4:          # Paeth
        for i in range(n):
            b = prev[i]
            if i >= bpp:
                a, c = cur[i - bpp], prev[i - bpp]
            else:
                a = c = 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            if pa <= pb and pa <= pc:
                cur[i] = (cur[i] + a) & 255
            elif pb <= pc:
                cur[i] = (cur[i] + b) & 255
            else:
                cur[i] = (cur[i] + c) & 255
        return bytes(cur)
    raise ValueError("bad PNG filter type %d" % ftype)


def read_png(path):
    """(width, height, RGB bytes) of an 8-bit RGB or RGBA, non-interlaced PNG
    (what vshm-capture writes; alpha is dropped)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("%s: not a PNG" % path)
    pos, idat, hdr = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise ValueError("%s: truncated %s chunk" % (path, kind))
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if hdr is None:
        raise ValueError("%s: no IHDR" % path)
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError("%s: depth %d colour type %d interlace %d not supported" % (
            path, depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    stride = bpp * w
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != h * (stride + 1):
        raise ValueError("%s: %d bytes of image data, expected %d" % (
            path, len(raw), h * (stride + 1)))
    prev = bytes(stride)
    rows = []
    for y in range(h):
        o = y * (stride + 1)
        prev = _unfilter(raw[o], raw[o + 1:o + 1 + stride], prev, bpp)
        rows.append(prev)
    pix = b"".join(rows)
    if bpp == 4:
        rgb_ = bytearray(3 * w * h)
        rgb_[0::3], rgb_[1::3], rgb_[2::3] = pix[0::4], pix[1::4], pix[2::4]
        pix = bytes(rgb_)
    return w, h, pix


_ADD = {}


def _add_table(c):
    t = _ADD.get(c)
    if t is None:
        t = _ADD[c] = bytes((i + c) & 255 for i in range(256))
    return t


def pattern_rgb(w, h, seed, counter):
    """Expected RGB bytes of the KMS test pattern."""
    border = rgb(BORDER)
    bars = b"".join(rgb(BARS[(x * 8 // w + seed) % 8]) for x in range(w))
    ramp = bytearray(3 * w)
    for x in range(w):
        r = x * 255 // (w - 1)
        ramp[3 * x:3 * x + 3] = bytes((r, 255 - r, (85 * seed) & 255))
    ramp = bytes(ramp)
    tex_r = bytes(x & 255 for x in range(w))
    tex_b0 = bytes((3 * x) & 255 for x in range(w))
    cells = []
    for i in range(32):
        x0 = 24 + 20 * i
        x1 = min(x0 + 16, w - 1)
        if x0 < x1:
            cells.append((x0, x1, rgb(CELL_ON if (counter >> (31 - i)) & 1 else CELL_OFF)))
    rows = []
    for y in range(h):
        if y == 0 or y == h - 1:
            rows.append(border * w)
            continue
        if y < h // 2:
            row = bytearray(bars)
        elif y < 3 * h // 4:
            row = bytearray(ramp)
        else:
            row = bytearray(3 * w)
            row[0::3] = tex_r
            row[1::3] = bytes((y & 255,)) * w
            row[2::3] = tex_b0.translate(_add_table((5 * y + seed) & 255))
        if h - 40 <= y < h - 24:
            for x0, x1, c in cells:
                row[3 * x0:3 * x1] = c * (x1 - x0)
        row[0:3] = border
        row[3 * w - 3:] = border
        rows.append(bytes(row))
    return b"".join(rows)


def decode_counter(pix, w, h):
    """Read the 32 counter cells back (None where a cell is neither colour)."""
    val, y = 0, h - 32
    for i in range(32):
        x = 24 + 20 * i + 8
        if x >= w - 1:
            return None
        c = pix[3 * (y * w + x):3 * (y * w + x) + 3]
        if c == rgb(CELL_ON):
            val |= 1 << (31 - i)
        elif c != rgb(CELL_OFF):
            return None
    return val


def fbcon_rgb(w, h, font_w, font_h, glyphs, cmap, texts):
    """Expected RGB bytes of the text console: background colour 0 everywhere,
    each text segment drawn with its glyphs.  glyphs: {char: bytes}, rows of
    (font_w + 7) // 8 bytes, MSB first.  texts: [(row, col, fg, bg, str)]."""
    pal = [bytes(cmap[3 * i:3 * i + 3]) for i in range(16)]
    img = bytearray(pal[0] * (w * h))
    rb = (font_w + 7) // 8
    for row, col, fg, bg, text in texts:
        f, b = pal[fg], pal[bg]
        for k, ch in enumerate(text):
            g = glyphs[ord(ch)]
            x0, y0 = (col + k) * font_w, row * font_h
            for gy in range(font_h):
                bits = int.from_bytes(g[gy * rb:(gy + 1) * rb], "big")
                line = b"".join(f if (bits >> (8 * rb - 1 - gx)) & 1 else b
                                for gx in range(font_w))
                o = 3 * ((y0 + gy) * w + x0)
                img[o:o + 3 * font_w] = line
    return bytes(img)


def cursor_argb(k, x, y):
    if k == 1:
        if (x - 32) ** 2 + (y - 32) ** 2 > 30 * 30:
            return 0
        return 0xFF000000 | (x * 4) << 16 | (y * 4) << 8 | (((x ^ y) * 4) & 255)
    if x + y < 64 and (x < 6 or y < 6 or x + y > 56):
        return 0xFF101010
    if x + y < 56 and x >= 6 and y >= 6:
        return 0xFF000000 | (255 - x) << 16 | 0x80 << 8 | (y * 3)
    return 0


def cursor_bgra(k):
    """Cursor image k as 64x64 little-endian ARGB8888 words (bytes B, G, R, A)."""
    return b"".join(struct.pack("<I", cursor_argb(k, x, y))
                    for y in range(64) for x in range(64))


def compare(got, exp, w, h, max_report=6):
    """(number of differing pixels, differing rows, report, diff mask RGB bytes or None)."""
    if got == exp:
        return 0, 0, [], None
    stride = 3 * w
    bad = rows = 0
    report = []
    mask = bytearray(len(exp))
    for y in range(h):
        a, b = got[y * stride:(y + 1) * stride], exp[y * stride:(y + 1) * stride]
        if a == b:
            continue
        rows += 1
        for x in range(w):
            if a[3 * x:3 * x + 3] != b[3 * x:3 * x + 3]:
                bad += 1
                mask[y * stride + 3 * x:y * stride + 3 * x + 3] = b"\xff\x00\xff"
                if len(report) < max_report:
                    report.append("(%d,%d) got %s want %s" % (
                        x, y, a[3 * x:3 * x + 3].hex(), b[3 * x:3 * x + 3].hex()))
    return bad, rows, report, bytes(mask)
