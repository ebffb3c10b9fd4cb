#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A minimal vshm display consumer written only from docs/protocol.md.

It connects to a vshm-gpu --display socket, negotiates the VSHM extension,
receives a shared-memory scanout and one FRAME, releases it, and prints the
CRC-32 of the scanout's pixels: the bytes of the shown rectangle as stored
in the buffer, row by row, width * bpp bytes per row (no row padding).

    python3 doc_consumer.py SOCKET --scanout 0 [--expect-crc32 HEX] [--timeout S]

Exit status: 0 when a frame was received (and its CRC matches --expect-crc32
if given), 1 on a mismatch or any protocol error, 2 on bad arguments.
Only the Python standard library is used.
"""

import argparse
import binascii
import fcntl
import mmap
import os
import select
import socket
import struct
import sys
import time

# Section 2: the 12-byte header (request, flags, size), host endian (little).
HDR = struct.Struct("<III")
FLAG_REPLY = 0x4
MAX_FDS = 4

# Section 3: feature bits.
F_EDID = 1 << 0
F_DMABUF2 = 1 << 1
F_VSHM = 1 << 56

# Section 5: message ids.
GET_PROTOCOL_FEATURES = 1
SET_PROTOCOL_FEATURES = 2
HELLO = 0x5601
ERROR = 0x5602
SHM_BUFFER = 0x5603
DMABUF_BUFFER = 0x5604
BUFFER_DESTROY = 0x5605
SCANOUT = 0x5606
FRAME = 0x5607
FRAME_RELEASE = 0x5608
HEARTBEAT = 0x5609
CURSOR = 0x560A
STATS = 0x560B

# Sections 7.x: payload layouts.
HELLO_S = struct.Struct("<IIII32s")                 # 48
HELLO_REPLY_S = struct.Struct("<IIIIIIII16s")       # 48
ERROR_S = struct.Struct("<IIII64s")                 # 80
SHM_BUFFER_S = struct.Struct("<IIIIIIQQ")           # 40
BUFFER_DESTROY_S = struct.Struct("<II")             # 8
SCANOUT_S = struct.Struct("<IIIIIIII")              # 32
FRAME_S = struct.Struct("<IIQQQII")                 # 40
RECT_S = struct.Struct("<IIII")                     # 16
FRAME_RELEASE_S = struct.Struct("<IIQ")             # 16
FRAME_F_FULL = 0x2

# Section 7.3: formats used by vshm-gpu, all 4 bytes per pixel (DRM fourcc).
def fourcc(s):
    return struct.unpack("<I", s.encode())[0]


FORMATS_BPP = {fourcc(n): 4 for n in ("XR24", "AR24", "XB24", "AB24", "BX24", "BA24", "RX24", "RA24")}

# Section 8: the seals a read-only shared-memory buffer carries.
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_FUTURE_WRITE = 0x1, 0x2, 0x4, 0x10
REQUIRED_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE


class ProtocolError(Exception):
    pass


class Conn:
    def __init__(self, path, timeout):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.deadline = time.monotonic() + timeout

    def _recv(self, n):
        """Read exactly n bytes, collecting any fds that come with them."""
        data, fds = b"", []
        while len(data) < n:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError("timed out")
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            chunk, got, _flags, _addr = socket.recv_fds(self.sock, n - len(data), MAX_FDS)
            fds.extend(got)
            if not chunk:
                for fd in fds:
                    os.close(fd)
                raise ProtocolError("daemon closed the connection")
            data += chunk
        return data, fds

    def read_message(self):
        hdr, fds = self._recv(HDR.size)
        request, flags, size = HDR.unpack(hdr)
        if flags not in (0, FLAG_REPLY):
            raise ProtocolError("bad header flags 0x%x" % flags)
        # A vshm consumer never receives more than a STATS reply (704 bytes), but
        # must still skip unknown messages by size (section 11).
        if size > 16777236:
            raise ProtocolError("payload size %d over MAX_D2C_PAYLOAD" % size)
        payload, more = self._recv(size) if size else (b"", [])
        return request, flags, payload, fds + more

    def send(self, request, flags, payload=b""):
        self.sock.sendall(HDR.pack(request, flags, len(payload)) + payload)


def check_readonly_memfd(fd, size):
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY:
        raise ProtocolError("SHM_BUFFER fd is not read-only")
    seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    if seals & REQUIRED_SEALS != REQUIRED_SEALS:
        raise ProtocolError("SHM_BUFFER seals 0x%x lack 0x%x" % (seals, REQUIRED_SEALS))
    if os.fstat(fd).st_size != size:
        raise ProtocolError("SHM_BUFFER size differs from the file size")


def expect_size(name, payload, n):
    if len(payload) != n:
        raise ProtocolError("%s: size %d, expected %d" % (name, len(payload), n))


def run(args):
    c = Conn(args.socket, args.timeout)
    buffers = {}   # buffer_id -> (mmap, width, height, stride, fourcc, offset)
    scanout = None  # (buffer_id, x, y, w, h) of the wanted scanout
    hello_sent = False
    granted = None
    try:
        while True:
            request, flags, payload, fds = c.read_message()
            try:
                if request == GET_PROTOCOL_FEATURES and flags == 0:
                    expect_size("GET_PROTOCOL_FEATURES", payload, 0)
                    c.send(GET_PROTOCOL_FEATURES, FLAG_REPLY, struct.pack("<Q", F_VSHM))
                elif request == SET_PROTOCOL_FEATURES and flags == 0:
                    expect_size("SET_PROTOCOL_FEATURES", payload, 8)
                    (features,) = struct.unpack("<Q", payload)
                    if not features & F_VSHM:
                        raise ProtocolError("daemon did not negotiate VSHM")
                    role = b"doc-consumer".ljust(32, b"\0")
                    c.send(HELLO, 0, HELLO_S.pack(1, 0, 1 << args.scanout, 0, role))
                    hello_sent = True
                elif request == HELLO and flags == FLAG_REPLY and hello_sent:
                    expect_size("HELLO reply", payload, HELLO_REPLY_S.size)
                    (version, consumer_id, granted, refused, num_scanouts, hb_ms, rel_ms,
                     max_rects, reasons) = HELLO_REPLY_S.unpack(payload)
                    if not granted & (1 << args.scanout):
                        raise ProtocolError("scanout %d refused, reason %d"
                                            % (args.scanout, reasons[args.scanout]))
                    print("hello version=%d consumer_id=%d granted=0x%x" % (version, consumer_id,
                                                                           granted))
                elif request == ERROR and flags == 0:
                    expect_size("ERROR", payload, ERROR_S.size)
                    code, req, detail, _r, msg = ERROR_S.unpack(payload)
                    raise ProtocolError("daemon ERROR code %d request 0x%x detail %d: %s" % (
                        code, req, detail, msg.split(b"\0")[0].decode(errors="replace")))
                elif request == SHM_BUFFER and flags == 0:
                    expect_size("SHM_BUFFER", payload, SHM_BUFFER_S.size)
                    if len(fds) != 1:
                        raise ProtocolError("SHM_BUFFER with %d fds" % len(fds))
                    bid, w, h, stride, fmt, _bflags, offset, size = SHM_BUFFER_S.unpack(payload)
                    bpp = FORMATS_BPP.get(fmt, 0)
                    if bid == 0 or bid in buffers or w == 0 or h == 0:
                        raise ProtocolError("bad SHM_BUFFER %d %dx%d" % (bid, w, h))
                    if bpp and offset + stride * (h - 1) + w * bpp > size:
                        raise ProtocolError("SHM_BUFFER %d does not fit its size" % bid)
                    fd = fds.pop()
                    try:
                        check_readonly_memfd(fd, size)
                        m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
                    finally:
                        os.close(fd)
                    buffers[bid] = (m, w, h, stride, fmt, offset, bpp)
                elif request == BUFFER_DESTROY and flags == 0:
                    expect_size("BUFFER_DESTROY", payload, BUFFER_DESTROY_S.size)
                    bid, _ = BUFFER_DESTROY_S.unpack(payload)
                    if bid not in buffers:
                        raise ProtocolError("BUFFER_DESTROY of unknown buffer %d" % bid)
                    buffers.pop(bid)[0].close()
                elif request == SCANOUT and flags == 0:
                    expect_size("SCANOUT", payload, SCANOUT_S.size)
                    sid, bid, x, y, w, h, _f, _r = SCANOUT_S.unpack(payload)
                    if sid == args.scanout:
                        if bid == 0:
                            scanout = None
                        else:
                            b = buffers.get(bid)
                            if not b or x + w > b[1] or y + h > b[2]:
                                raise ProtocolError("SCANOUT shows a bad rect of buffer %d"
                                                    % bid)
                            scanout = (bid, x, y, w, h)
                elif request == FRAME and flags == 0:
                    if len(payload) < FRAME_S.size:
                        raise ProtocolError("FRAME too short")
                    sid, bid, seq, flush_ns, send_ns, fflags, num_rects = \
                        FRAME_S.unpack_from(payload)
                    expect_size("FRAME", payload, FRAME_S.size + num_rects * RECT_S.size)
                    if fds:
                        raise ProtocolError("FRAME with an fd but VSHM_FENCE not negotiated")
                    if sid != args.scanout:
                        continue
                    if scanout is None or scanout[0] != bid:
                        raise ProtocolError("FRAME for a buffer the scanout does not show")
                    m, _bw, _bh, stride, fmt, offset, bpp = buffers[bid]
                    if not bpp:
                        raise ProtocolError("unsupported format 0x%08x" % fmt)
                    _, x, y, w, h = scanout
                    crc = 0
                    for row in range(h):
                        start = offset + (y + row) * stride + x * bpp
                        crc = binascii.crc32(m[start:start + w * bpp], crc)
                    c.send(FRAME_RELEASE, 0, FRAME_RELEASE_S.pack(sid, 0, seq))
                    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                    print("frame scanout=%d seq=%d size=%dx%d fourcc=0x%08x full=%d "
                          "latency_us=%.1f crc32=%08x" % (sid, seq, w, h, fmt,
                                                          bool(fflags & FRAME_F_FULL),
                                                          (now - flush_ns) / 1e3, crc))
                    return crc
                else:
                    # HEARTBEAT, CURSOR, STATS replies and unknown ids: skip by size
                    # (section 11); their fds are closed below.
                    pass
            finally:
                for fd in fds:
                    os.close(fd)
    finally:
        for b in buffers.values():
            b[0].close()
        c.sock.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("socket")
    p.add_argument("--scanout", type=int, default=0)
    p.add_argument("--expect-crc32", type=lambda s: int(s, 16))
    p.add_argument("--timeout", type=float, default=10.0)
    try:
        args = p.parse_args()
    except SystemExit as e:
        sys.exit(2 if e.code else 0)
    if not 0 <= args.scanout < 16:
        print("doc_consumer: --scanout must be 0..15", file=sys.stderr)
        sys.exit(2)
    try:
        crc = run(args)
    except (ProtocolError, OSError) as e:
        print("doc_consumer: %s" % e, file=sys.stderr)
        sys.exit(1)
    if args.expect_crc32 is not None and crc != args.expect_crc32:
        print("doc_consumer: crc32 %08x != expected %08x" % (crc, args.expect_crc32),
              file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
