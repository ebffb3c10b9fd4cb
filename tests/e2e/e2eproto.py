"""e2eproto - the sockets run.py talks to (Python standard library only):
a QMP client, a line reader for the guest's serial console, and a small VNC
client that records the cursor images QEMU's VNC server sends.
"""
import json
import socket
import struct
import threading
import time


def connect_unix(path, wait_s=10.0):
    deadline = time.monotonic() + wait_s
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path, timeout=60.0):
        self.sock = connect_unix(path)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        hello = self._recv()
        if "QMP" not in hello:
            raise QMPError("no QMP greeting: %r" % hello)
        v = hello["QMP"]["version"]["qemu"]
        self.version = "%d.%d.%d" % (v["major"], v["minor"], v["micro"])
        self.execute("qmp_capabilities")

    def _recv(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise QMPError("QMP socket closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd, **args):
        req = {"execute": cmd}
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            msg = self._recv()
            if "event" in msg:
                self.events.append(msg)
            elif "error" in msg:
                raise QMPError("%s: %s" % (cmd, msg["error"].get("desc", msg["error"])))
            elif "return" in msg:
                return msg["return"]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Serial:
    """Line-oriented access to QEMU's serial chardev (a unix socket server)."""

    def __init__(self, path):
        self.sock = connect_unix(path)
        self.buf = b""
        self.closed = False

    def readline(self, timeout):
        """Next line (str without newline), or None after timeout seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self.sock.settimeout(min(left, 0.5))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                self.closed = True
                if self.buf:
                    break
                return None
            self.buf += data
        if b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
        else:
            line, self.buf = self.buf, b""
        return line.decode("utf-8", "replace").rstrip("\r")

    def send(self, text):
        self.sock.sendall(text.encode())


ENC_RAW, ENC_RICH_CURSOR, ENC_ALPHA_CURSOR, ENC_DESKTOP_SIZE = 0, -239, -314, -223


class VNCCursorWatcher(threading.Thread):
    """Connects to QEMU's VNC server, asks only for cursor pseudo-encodings
    (never requests framebuffer updates) and records every cursor image:
    dicts with kind ('alpha' | 'rich'), hot_x, hot_y, w, h, data, t."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.sock = connect_unix(path)
        self.sock.settimeout(10)
        self.cursors = []
        self.error = None
        self.lock = threading.Lock()
        self._handshake()

    def _recvn(self, n):
        out = b""
        while len(out) < n:
            d = self.sock.recv(n - len(out))
            if not d:
                raise EOFError("VNC socket closed")
            out += d
        return out

    def _handshake(self):
        ver = self._recvn(12)
        if not ver.startswith(b"RFB "):
            raise ValueError("not a VNC server: %r" % ver)
        self.sock.sendall(b"RFB 003.008\n")
        n = self._recvn(1)[0]
        if n == 0:
            reason = self._recvn(struct.unpack(">I", self._recvn(4))[0])
            raise ValueError("VNC refused: %r" % reason)
        types = self._recvn(n)
        if 1 not in types:
            raise ValueError("VNC server wants authentication (types %r)" % list(types))
        self.sock.sendall(b"\x01")
        if struct.unpack(">I", self._recvn(4))[0] != 0:
            raise ValueError("VNC security handshake failed")
        self.sock.sendall(b"\x01")  # ClientInit: shared
        self.width, self.height = struct.unpack(">HH", self._recvn(4))
        pf = self._recvn(16)
        self.bpp = pf[0] // 8
        self.name = self._recvn(struct.unpack(">I", self._recvn(4))[0])
        encs = [ENC_ALPHA_CURSOR, ENC_RICH_CURSOR, ENC_RAW]
        self.sock.sendall(struct.pack(">BxH", 2, len(encs)) +
                          b"".join(struct.pack(">i", e) for e in encs))

    def run(self):
        self.sock.settimeout(None)
        try:
            while True:
                t = self._recvn(1)[0]
                if t == 0:      # FramebufferUpdate
                    n = struct.unpack(">xH", self._recvn(3))[0]
                    for _ in range(n):
                        x, y, w, h, enc = struct.unpack(">HHHHi", self._recvn(12))
                        if enc == ENC_ALPHA_CURSOR:
                            sub = struct.unpack(">i", self._recvn(4))[0]
                            if sub != ENC_RAW:
                                raise ValueError("alpha cursor in encoding %d" % sub)
                            data = self._recvn(w * h * 4)
                            self._add("alpha", x, y, w, h, data)
                        elif enc == ENC_RICH_CURSOR:
                            data = self._recvn(w * h * self.bpp)
                            mask = self._recvn((w + 7) // 8 * h)
                            self._add("rich", x, y, w, h, data, mask)
                        elif enc == ENC_RAW:
                            self._recvn(w * h * self.bpp)
                        elif enc == ENC_DESKTOP_SIZE:
                            pass
                        else:
                            raise ValueError("unexpected VNC encoding %d" % enc)
                elif t == 1:    # SetColourMapEntries
                    _, _, n = struct.unpack(">xHH", self._recvn(5))
                    self._recvn(6 * n)
                elif t == 2:    # Bell
                    pass
                elif t == 3:    # ServerCutText
                    self._recvn(struct.unpack(">xxxI", self._recvn(7))[0])
                else:
                    raise ValueError("unexpected VNC message type %d" % t)
        except (OSError, EOFError, ValueError) as e:
            self.error = str(e)

    def _add(self, kind, x, y, w, h, data, mask=None):
        with self.lock:
            self.cursors.append({"kind": kind, "hot_x": x, "hot_y": y, "w": w, "h": h,
                                 "data": data, "mask": mask, "t": time.time()})

    def snapshot(self):
        with self.lock:
            return list(self.cursors)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
