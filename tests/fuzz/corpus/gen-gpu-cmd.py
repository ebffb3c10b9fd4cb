#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of fuzz-gpu-cmd (tests/fuzz/corpus/gpu-cmd/).

Each seed is valid input for the record format described at the top of
tests/fuzz/fuzz-gpu-cmd.c: one config byte, then [sel][len u16 LE][bytes].
Run from anywhere: python3 tests/fuzz/corpus/gen-gpu-cmd.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpu-cmd")

CREATE_2D, UNREF, SET_SCANOUT, FLUSH, TRANSFER, ATTACH, DETACH = range(0x101, 0x108)
GET_DISPLAY_INFO, GET_EDID, ASSIGN_UUID = 0x100, 0x10A, 0x10B
UPDATE_CURSOR, MOVE_CURSOR = 0x300, 0x301
B8G8R8X8, B8G8R8A8, R8G8B8A8 = 2, 1, 67
FENCE = 1


def hdr(cmd, fence=0):
    flags = FENCE if fence else 0
    return struct.pack("<IIQIB3x", cmd, flags, fence, 0, 0)


def rec(sel, payload):
    return struct.pack("<BH", sel, len(payload)) + payload


def ctrl(cmd, body=b"", fence=0):
    return rec(0, hdr(cmd, fence) + body)


def create(rid, w, h, fmt=B8G8R8X8):
    return ctrl(CREATE_2D, struct.pack("<IIII", rid, fmt, w, h))


def attach(rid, entries):
    body = struct.pack("<II", rid, len(entries))
    body += b"".join(struct.pack("<QII", a, n, 0) for a, n in entries)
    return ctrl(ATTACH, body)


def transfer(rid, x, y, w, h, offset=0, fence=0):
    return ctrl(TRANSFER, struct.pack("<IIIIQII", x, y, w, h, offset, rid, 0), fence)


def flush(rid, x, y, w, h, fence=0):
    return ctrl(FLUSH, struct.pack("<IIIIII", x, y, w, h, rid, 0), fence)


def scanout(sid, rid, x, y, w, h):
    return ctrl(SET_SCANOUT, struct.pack("<IIIIII", x, y, w, h, sid, rid))


def unref(rid):
    return ctrl(UNREF, struct.pack("<II", rid, 0))


def detach(rid):
    return ctrl(DETACH, struct.pack("<II", rid, 0))


def cursor(cmd, sid, x, y, rid, hx=0, hy=0):
    return rec(1, hdr(cmd) + struct.pack("<IIIIIIII", sid, x, y, 0, rid, hx, hy, 0))


SEEDS = {
    # Linux's first frame: create, back, show, transfer, fenced flush, tear down.
    "frame-basic": b"\x08"
    + ctrl(GET_DISPLAY_INFO)
    + ctrl(GET_EDID, struct.pack("<II", 0, 0))
    + create(1, 64, 48)
    + attach(1, [(0x0, 64 * 48 * 4)])
    + scanout(0, 1, 0, 0, 64, 48)
    + transfer(1, 0, 0, 64, 48)
    + flush(1, 0, 0, 64, 48, fence=1)
    + transfer(1, 8, 8, 16, 16, offset=8 * 256 + 32)
    + flush(1, 8, 8, 16, 16, fence=2)
    + scanout(0, 0, 0, 0, 0, 0)
    + detach(1)
    + unref(1),
    # Backing crossing the two adjacent regions and the one behind the gap.
    "scatter-backing": b"\x01"
    + create(2, 100, 50, B8G8R8A8)
    + attach(2, [(0xF000, 0x2000), (0x100000, 0x1000), (0x11000, 20000 - 0x3000)])
    + scanout(1, 2, 10, 5, 80, 40)
    + transfer(2, 3, 2, 50, 30, offset=2 * 400 + 12)
    + flush(2, 0, 0, 100, 50, fence=7)
    + unref(2),
    # Scanout left pointing at a resource that goes away; flush after unref.
    "unref-while-shown": b"\x00"
    + create(3, 32, 32)
    + attach(3, [(0x1000, 32 * 32 * 4)])
    + scanout(0, 3, 0, 0, 32, 32)
    + flush(3, 0, 0, 32, 32)
    + unref(3)
    + flush(3, 0, 0, 32, 32)
    + transfer(3, 0, 0, 32, 32),
    # Cursor: a 64x64 resource, update, move, hide.
    "cursor": b"\x00"
    + create(5, 64, 64, R8G8B8A8)
    + attach(5, [(0x4000, 64 * 64 * 4)])
    + transfer(5, 0, 0, 64, 64)
    + cursor(UPDATE_CURSOR, 0, 100, 200, 5, 3, 4)
    + cursor(MOVE_CURSOR, 0, 110, 210, 5)
    + cursor(MOVE_CURSOR, 0, 0, 0, 0)
    + unref(5)
    + cursor(UPDATE_CURSOR, 0, 1, 1, 5),
    # Display queries answered later by the sink (config bits 3-4 = 0), a reset in between.
    "async-queries": b"\x00"
    + create(6, 16, 16)
    + ctrl(GET_DISPLAY_INFO, fence=1)
    + rec(2, b"\x01")
    + ctrl(GET_EDID, struct.pack("<II", 1, 0))
    + rec(2, b"\x01" + bytes(range(128)))
    + ctrl(GET_DISPLAY_INFO)
    + rec(3, b"\x00")
    + rec(2, b"\x00")
    + ctrl(ASSIGN_UUID, struct.pack("<II", 6, 0))
    + unref(6),
    # Memory table changes between attach and transfer.
    "mem-table-change": b"\x09"
    + create(7, 64, 64)
    + attach(7, [(0x10000, 64 * 64 * 4)])
    + transfer(7, 0, 0, 64, 64)
    + rec(4, b"\x01")
    + transfer(7, 0, 0, 64, 64)
    + rec(4, b"\x03")
    + transfer(7, 0, 0, 64, 64)
    + rec(4, b"\x00")
    + transfer(7, 0, 0, 64, 64)
    + unref(7),
    # Device events: config write, hot-plug, a second sink, short response buffer.
    "device-events": b"\x0a"
    + rec(3, bytes([1, 4, 4, 1, 0, 0, 0]))
    + rec(3, bytes([3, 1, 1, 2, 0, 1, 128]))
    + rec(3, b"\x04")
    + create(8, 8, 8)
    + attach(8, [(0x0, 256)])
    + scanout(2, 8, 0, 0, 8, 8)
    + rec(0x30, hdr(GET_DISPLAY_INFO))
    + flush(8, 0, 0, 8, 8)
    + rec(3, b"\x05")
    + rec(3, b"\x02\x00\x10"),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
