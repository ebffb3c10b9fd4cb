#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of fuzz-consumer-msg and fuzz-vsc-msg
(tests/fuzz/corpus/consumer-msg/ and tests/fuzz/corpus/vsc-msg/).

Each seed follows the record format described at the top of the target:
one options byte, then [control byte][12-byte header][payload] records.
Run from anywhere: python3 tests/fuzz/corpus/gen-display-msg.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

REPLY = 0x4
GET_FEATURES, SET_FEATURES = 1, 2
CURSOR_POS, CURSOR_POS_HIDE, CURSOR_UPDATE, Q_SCANOUT, Q_UPDATE = 4, 5, 6, 7, 8
HELLO, ERROR, SHM_BUFFER, DMABUF_BUFFER, BUFFER_DESTROY = 0x5601, 0x5602, 0x5603, 0x5604, 0x5605
SCANOUT, FRAME, FRAME_RELEASE, HEARTBEAT, CURSOR, STATS = range(0x5606, 0x560C)
F_VSHM, F_FENCE = 1 << 56, 1 << 58
XRGB8888, ARGB8888 = 0x34325258, 0x34325241


def rec(ctl, req, payload=b"", flags=0):
    return struct.pack("<BIII", ctl, req, flags, len(payload)) + payload


def hello(scanouts=1, role=b"cluster", version=1, flags=0):
    return struct.pack("<IIII32s", version, flags, scanouts, 0, role)


def release(scanout, seq, flags=0):
    return struct.pack("<IIQ", scanout, flags, seq)


# ---- consumer-msg: what a consumer sends to the daemon ----
# control byte: 1 memfd, 2 eventfd, 4 flush, 8 show, 0x10 disable,
# 0x20 cursor, 0x40 scanout 1, 0x80 no dispatch
def consumer_seeds():
    feat = lambda f: rec(0, GET_FEATURES, struct.pack("<Q", f), REPLY)
    stats = struct.pack("<II", 0, 0)
    yield "hello-release", bytes([0x08]) + feat(F_VSHM) + rec(0, HELLO, hello()) + \
        rec(0x04, STATS, stats) + rec(0x04, FRAME_RELEASE, release(0, 1)) + \
        rec(0x24, FRAME_RELEASE, release(0, 2)) + rec(0x20, STATS, stats)
    yield "fence-release", bytes([0x0A]) + feat(F_VSHM | F_FENCE) + \
        rec(0, HELLO, hello()) + rec(0x04, STATS, stats) + \
        rec(0x02, FRAME_RELEASE, release(0, 1, 1)) + rec(0x0C, FRAME_RELEASE, release(0, 2))
    yield "two-scanouts", bytes([0x0C]) + feat(F_VSHM) + rec(0, HELLO, hello(3, b"ivi")) + \
        rec(0x48, STATS, stats) + rec(0x44, FRAME_RELEASE, release(1, 1)) + \
        rec(0x50, FRAME_RELEASE, release(0, 1))
    yield "role-listener", bytes([0x09]) + feat(F_VSHM) + rec(0x04, HELLO, hello(1, b"other"))
    yield "qemu-only", bytes([0x08]) + feat(0) + rec(0x0C, GET_FEATURES, b"", 0) + \
        rec(0x24, 11, struct.pack("<I", 0), REPLY)
    yield "garbage", bytes([0x00]) + rec(0x03, 0x1234, b"\xff" * 20) + rec(0, HELLO, b"x")


# ---- vsc-msg: what the daemon sends to a consumer ----
# control byte bits 0-2: 1 sealed ro memfd, 3 signalled eventfd, ...
def shm_buffer(bid, w, h, stride, fourcc, size, offset=0, flags=1):
    return struct.pack("<IIIIIIQQ", bid, w, h, stride, fourcc, flags, offset, size)


def vsc_seeds():
    get = rec(0, GET_FEATURES)
    hello_reply = struct.pack("<8I16s", 1, 1, 1, 0, 1, 100, 250, 16, bytes(16))
    session = get + rec(0, SET_FEATURES, struct.pack("<Q", F_VSHM)) + \
        rec(0, HELLO, hello_reply, REPLY) + \
        rec(1, SHM_BUFFER, shm_buffer(1, 32, 16, 128, XRGB8888, 4096)) + \
        rec(0, SCANOUT, struct.pack("<8I", 0, 1, 0, 0, 32, 16, 0, 0))
    frame = rec(0, FRAME, struct.pack("<IIQQQII", 0, 1, 1, 1000, 2000, 2, 1) +
                struct.pack("<4I", 0, 0, 8, 8))
    frame2 = rec(0, FRAME, struct.pack("<IIQQQII", 0, 1, 3, 3000, 4000, 0, 2) +
                 struct.pack("<4I", 1, 1, 4, 4) + struct.pack("<4I", 30, 15, 2, 1))
    hb = rec(0, HEARTBEAT, struct.pack("<QQII", 5000, 100, 100, 1) +
             struct.pack("<IIQQ", 0, 1, 3, 3000))
    cursor = rec(1, SHM_BUFFER, shm_buffer(2, 64, 64, 256, ARGB8888, 16384)) + \
        rec(0, CURSOR, struct.pack("<IIIIiiII", 0, 2, 1, 1, 10, 10, 1, 0))
    stats = rec(0, STATS, struct.pack("<QII6Q16Q", 6000, 1, 1, 2, 1, 0, 100, 0, 64,
                                      *range(16)) + struct.pack("<IIQQQ", 0, 0, 2, 1, 3),
                REPLY)
    teardown = rec(0, SCANOUT, struct.pack("<8I", 0, 0, 0, 0, 0, 0, 0, 0)) + \
        rec(0, BUFFER_DESTROY, struct.pack("<II", 1, 0)) + \
        rec(0, BUFFER_DESTROY, struct.pack("<II", 2, 0))
    err = rec(0, ERROR, struct.pack("<IIII64s", 14, 0, 0, 0, b"shutting down"))
    yield "session-frame", bytes([0x00]) + session + frame + hb
    yield "session-full", bytes([0x40]) + session + frame + frame2 + hb + cursor + stats + \
        teardown + err
    yield "manual-release", bytes([0x90]) + session + frame + frame2
    fence = get + rec(0, SET_FEATURES, struct.pack("<Q", F_VSHM | F_FENCE)) + \
        rec(0, HELLO, hello_reply, REPLY) + \
        rec(1, SHM_BUFFER, shm_buffer(1, 32, 16, 128, XRGB8888, 4096)) + \
        rec(0, SCANOUT, struct.pack("<8I", 0, 1, 0, 0, 32, 16, 0, 0)) + \
        rec(3, FRAME, struct.pack("<IIQQQII", 0, 1, 1, 1000, 2000, 3, 0))
    yield "fence-frame", bytes([0x04]) + fence
    yield "bad-shm-size", bytes([0x00]) + get + rec(0, SET_FEATURES, struct.pack("<Q", F_VSHM)) + \
        rec(0, HELLO, hello_reply, REPLY) + \
        rec(9, SHM_BUFFER, shm_buffer(1, 32, 16, 128, XRGB8888, 4096))
    qemu = get + rec(0, SET_FEATURES, struct.pack("<Q", 0)) + \
        rec(0, Q_SCANOUT, struct.pack("<III", 0, 16, 8)) + \
        rec(0, Q_UPDATE, struct.pack("<5I", 0, 0, 0, 16, 8) + bytes(16 * 8 * 4)) + \
        rec(0, Q_UPDATE, struct.pack("<5I", 0, 2, 2, 4, 2) + bytes(range(32))) + \
        rec(0, CURSOR_UPDATE, struct.pack("<5I", 0, 5, 5, 1, 1) + bytes(64 * 64 * 4)) + \
        rec(0, CURSOR_POS, struct.pack("<3I", 0, 6, 6)) + \
        rec(0, CURSOR_POS_HIDE, struct.pack("<3I", 0, 0, 0))
    yield "qemu-only", bytes([0x01]) + qemu
    yield "qemu-fallback", bytes([0x02]) + qemu


def write(sub, seeds):
    out = os.path.join(HERE, sub)
    os.makedirs(out, exist_ok=True)
    for name, data in seeds:
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("consumer-msg", consumer_seeds())
    write("vsc-msg", vsc_seeds())
