#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""demo.py - boot the e2e guest under QEMU (TCG) with vshm-gpu serving a
two-head vhost-user-gpu-pci and show the guest's animation (the `demo`
subcommand of tests/e2e/guest/vshm-e2e-guest.c).  Normally started by
scripts/demo.sh, which installs, builds and makes the guest image first.
Python standard library only.

usage: demo.py [options]
  --seconds N          length of the animation (default 20)
  --out DIR            output directory (default <repo>/_work/demo)
  --xres/--yres N      size of both heads (default 1024x768)
  --kernel SERIES      guest kernel built by build-guest.sh: 6.1 (default), 6.12
  --qemu-display SPEC  QEMU's -display (default none; a vhost-user-gpu console
                       needs a DMABUF-capable one, e.g. gtk,gl=on)
  --mode MODE          auto (default), view, capture or screendump
  --interval S         seconds between the PNGs of a head (default 0.5)
  --backend PATH       the daemon (default <repo>/build/server/vshm-gpu)
  --screenshot PATH    also write the side-by-side PNG there (docs/demo.png)

Modes (auto picks the first that is possible):
  view        $WAYLAND_DISPLAY names an existing socket, build/clients/vshm-view
              exists and vshm-gpu has --display: vshm-gpu --display SOCK and
              vshm-view --socket SOCK shows the heads; PNGs as in screendump
  capture     build/clients/vshm-capture exists and vshm-gpu has --display:
              vshm-capture --socket SOCK --scanouts 0,1 writes PNGs of both
              heads (about one per head per --interval) to OUT/frames
  screendump  QMP screendump of both heads every --interval seconds, PNGs in
              OUT/frames
If, in auto mode, view or capture stalls the guest (no frame for STALL_S
seconds), the demo is booted again in screendump mode.

The guest draws its frame number into every frame (24 cells at the bottom
right and at the top right): the summary counts the distinct frames seen per
head and names torn PNGs (top and bottom from different frames; in capture
mode CHECK_PNGS per head are decoded).  Every mode writes OUT/demo.png (the
newest frames of both heads side by side), the logs (backend.log, qemu.log,
guest.log, client.log) and summary.json.
"""
import argparse
import json
import multiprocessing
import os
import queue
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
sys.path.insert(0, HERE)
import e2eimg  # noqa: E402
from e2eproto import QMP, QMPError, Serial  # noqa: E402
import demo_screenshot  # noqa: E402

VIEW_BIN = os.path.join(REPO, "build", "clients", "vshm-view")
CAPTURE_BIN = os.path.join(REPO, "build", "clients", "vshm-capture")
HEADS = 2
GUEST_FPS = 30      # DEMO_FPS_MAX in the guest
STALL_S = 8         # no frame for this long during the demo: the display path hangs
CHECK_PNGS = 8      # capture mode: PNGs per head whose frame number is decoded
DEVICE_ID = "vgpu0"
# the frame-number cells the guest draws at the bottom right and, if there is
# room, at the top right (draw_overlay() in tests/e2e/guest/vshm-e2e-guest.c):
# 24 cells of 8 px, 4 px apart
BITS, CELL, GAP = 24, 8, 4


class Stalled(RuntimeError):
    """The guest completed no frame for STALL_S seconds during the demo."""


def decode_cells(w, h, pix, cx, cy):
    def px(x, y):
        o = 3 * (y * w + x)
        return pix[o:o + 3]
    if px(cx + 1, cy + 1) != b"\0\0\0":
        return None
    v = 0
    for i in range(BITS):
        p = px(cx + GAP + i * (CELL + GAP) + CELL // 2, cy + GAP + CELL // 2)
        if p == b"\xff\xff\xff":
            v = v << 1 | 1
        elif p == b"\x30\x30\x30":
            v <<= 1
        else:
            return None
    return v


def decode_frame(w, h, pix):
    """(frame number, torn) of a demo capture (RGB bytes): the number in the
    bottom cells, and whether the top cells show another one (the capture
    mixes two frames).  (None, False) if this is not a demo frame."""
    m = h // 24
    big = max(2, h // 48)
    cw = BITS * (CELL + GAP) + GAP
    cx = w - m - cw
    if cx < 0 or len(pix) < 3 * w * h:
        return None, False
    bottom = decode_cells(w, h, pix, cx, h - m - CELL - 2 * GAP)
    if bottom is None or cx < m + 35 * big + 2 * (big // 2) + GAP:
        return bottom, False
    return bottom, decode_cells(w, h, pix, cx, m) != bottom


def decode_png(path):
    try:
        return decode_frame(*demo_screenshot.read_png(path))
    except (OSError, ValueError, zlib.error):
        return None, False


def show(path):
    """path relative to the repository if it is inside, else as is."""
    return os.path.relpath(path, REPO) if path.startswith(REPO + os.sep) else path


def is_socket(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


class Demo:
    def __init__(self, a):
        self.a = a
        self.t0 = time.time()
        self.procs = {}
        self.qmp = None
        self.serial = None
        self.events = {}
        self.guest = {"info": [], "fail": [], "data": {}}
        self.captures = {h: [] for h in range(HEADS)}   # {png, frame, torn, ...}
        self.pngq = queue.Queue()
        self.writer = None

    def log(self, msg):
        print("[%5.1fs] %s" % (time.time() - self.t0, msg), flush=True)

    def ev(self, name):
        self.events[name] = round(time.time() - self.t0, 2)

    # ------------------------------------------------------------ mode
    def pick_mode(self):
        a = self.a
        self.view_bin, self.capture_bin = VIEW_BIN, CAPTURE_BIN
        try:
            helptext = subprocess.run([a.backend, "--help"], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, timeout=10).stdout.decode()
        except (OSError, subprocess.TimeoutExpired):
            helptext = ""
        has_display = "--display" in helptext
        wl = os.environ.get("WAYLAND_DISPLAY", "")
        if wl and not os.path.isabs(wl):
            wl = os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"), wl)
        can = {
            "view": (bool(wl) and is_socket(wl), os.access(self.view_bin, os.X_OK),
                     has_display),
            "capture": (os.access(self.capture_bin, os.X_OK), has_display),
            "screendump": (True,),
        }
        why = {
            "view": "needs $WAYLAND_DISPLAY (a socket), %s and vshm-gpu --display" %
                    show(self.view_bin),
            "capture": "needs %s and vshm-gpu --display" %
                       show(self.capture_bin),
        }
        if a.mode != "auto":
            if not all(can[a.mode]):
                raise SystemExit("demo: mode %s is not possible: %s" % (a.mode, why[a.mode]))
            return a.mode
        for m in ("view", "capture"):
            if all(can[m]):
                return m
            self.log("mode %s: not available (%s)" % (m, why[m]))
        return "screendump"

    # ------------------------------------------------------------ processes
    def start_backend(self):
        a = self.a
        self.sock = os.path.join(a.out, "vgpu.sock")
        self.dsock = os.path.join(a.out, "display.sock")
        cmd = [a.backend, "--socket-path=" + self.sock, "--scanouts=%d" % HEADS]
        if self.mode in ("view", "capture"):
            cmd += ["--display", self.dsock]
        self.log("starting " + " ".join(show(c) for c in cmd))
        blog = open(os.path.join(a.out, "backend.log"), "wb")
        self.procs["backend"] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=blog,
                                                 stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not is_socket(self.sock) or (self.mode != "screendump" and
                                           not is_socket(self.dsock)):
            if self.procs["backend"].poll() is not None:
                raise RuntimeError("vshm-gpu exited (status %s), see %s" % (
                    self.procs["backend"].returncode, os.path.join(a.out, "backend.log")))
            if time.time() > deadline:
                raise RuntimeError("vshm-gpu did not create its sockets within 10 s")
            time.sleep(0.02)

    def start_qemu(self):
        a = self.a
        gdir = os.path.join(a.work, "guest", a.kernel)
        kernel = os.path.join(gdir, "vmlinux")
        if not os.path.exists(kernel):
            kernel = os.path.join(gdir, "vmlinuz")
        initrd = os.path.join(gdir, "initramfs.cpio")
        for f in (kernel, initrd):
            if not os.path.exists(f):
                raise SystemExit("demo: %s missing: run tests/e2e/build-guest.sh %s" % (
                    f, a.kernel))
        append = ("console=ttyS0,115200 quiet panic=-1 vt.global_cursor_default=0 "
                  "logo.nologo consoleblank=0 vshm_demo=%d:%dx%d" % (
                      a.seconds, a.xres, a.yres))
        mem = "384M"
        cmd = [a.qemu, "-S", "-nodefaults", "-no-user-config", "-no-reboot",
               "-display", a.qemu_display, "-accel", "tcg",
               "-machine", "q35,memory-backend=mem", "-m", mem, "-smp", "1",
               "-object", "memory-backend-memfd,id=mem,size=%s,share=on" % mem,
               "-kernel", kernel, "-initrd", initrd, "-append", append,
               "-chardev", "socket,id=vgpu,path=" + self.sock,
               "-device", "vhost-user-gpu-pci,id=%s,chardev=vgpu,xres=%d,yres=%d,"
               "max_outputs=%d" % (DEVICE_ID, a.xres, a.yres, HEADS),
               "-chardev", "socket,id=ser0,path=%s,server=on,wait=off"
               % os.path.join(a.out, "serial.sock"),
               "-serial", "chardev:ser0",
               "-qmp", "unix:%s,server=on,wait=off" % os.path.join(a.out, "qmp.sock")]
        self.log("starting QEMU (TCG, -display %s, kernel %s)" % (a.qemu_display, a.kernel))
        qlog = open(os.path.join(a.out, "qemu.log"), "wb")
        self.procs["qemu"] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qlog,
                                              stderr=subprocess.STDOUT)
        try:
            self.qmp = QMP(os.path.join(a.out, "qmp.sock"))
            self.serial = Serial(os.path.join(a.out, "serial.sock"))
        except (OSError, QMPError) as e:
            raise RuntimeError("cannot talk to QEMU: %s (see %s)" % (
                e, os.path.join(a.out, "qemu.log")))
        self.qmp.execute("cont")
        self.ev("qemu")

    def start_client(self):
        a = self.a
        if self.mode == "view":
            cmd = [self.view_bin, "--socket", self.dsock]
        else:
            # The guest flips both heads at most GUEST_FPS times a second and
            # vshm-capture counts the frames of all scanouts together: an odd
            # --every alternates between the heads and keeps one frame per head
            # per --interval.  --frames is only a bound: the capture is stopped
            # when the demo ends.
            every = max(1, int(round(a.interval * GUEST_FPS))) | 1
            cmd = [self.capture_bin, "--socket", self.dsock,
                   "--scanouts", ",".join(str(h) for h in range(HEADS)),
                   "--out", self.frames, "--every", str(every),
                   "--frames", str(2 * a.seconds * GUEST_FPS * HEADS), "--timeout", "0"]
        self.log("starting " + " ".join(show(c) for c in cmd))
        clog = open(os.path.join(a.out, "client.log"), "wb")
        self.procs["client"] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=clog,
                                                stderr=subprocess.STDOUT)

    def stop_client(self):
        p = self.procs.get("client")
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)   # vshm-capture prints its summary
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop(self, fast=False):
        """The guest powers off at the end and QEMU exits by itself.  After an
        error (fast) the daemon may hang, and QEMU with it: stop the daemon
        first."""
        if fast:
            self.stop_client()
            b = self.procs.get("backend")
            if b is not None and b.poll() is None:
                b.send_signal(signal.SIGTERM)
                try:
                    b.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    self.log("vshm-gpu did not exit within 2 s of SIGTERM: killed")
                    b.kill()
                    b.wait()
        q = self.procs.get("qemu")
        if q is not None and not fast:
            try:
                q.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    self.qmp.sock.settimeout(3)
                    self.qmp.execute("quit")
                except (QMPError, OSError, AttributeError):
                    pass
        if self.qmp:
            self.qmp.close()
        for name in ("client", "qemu", "backend"):
            p = self.procs.get(name)
            if p is None:
                continue
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.log("%s did not exit within 5 s of SIGTERM: killed" % name)
                p.kill()
                p.wait()

    # ------------------------------------------------------------ screendumps
    def png_writer(self):
        while True:
            item = self.pngq.get()
            if item is None:
                return
            path, w, h, pix = item
            e2eimg.write_png(path, w, h, pix, level=6)

    def screendump(self, n):
        t = round(time.time() - self.t0, 2)
        for head in range(HEADS):
            ppm = os.path.join(self.frames, ".head%d.ppm" % head)
            try:
                self.qmp.execute("screendump", filename=ppm, device=DEVICE_ID, head=head)
                w, h, pix = e2eimg.read_ppm(ppm)
                os.unlink(ppm)
            except (QMPError, OSError, ValueError) as e:
                self.log("screendump head %d: %s" % (head, e))
                continue
            frame, torn = decode_frame(w, h, pix)
            if frame is None:   # not (or no longer) the demo: the console
                self.skipped += 1
                continue
            png = os.path.join(self.frames, "head%d-%03d.png" % (head, n))
            self.captures[head].append({"t": t, "frame": frame, "torn": torn, "png": png})
            self.pngq.put((png, w, h, pix))

    # ------------------------------------------------------------ main loop
    def drive(self):
        a = self.a
        glog = open(os.path.join(a.out, "guest.log"), "w")
        deadline = time.time() + a.seconds + a.boot_timeout
        demo_running = False
        last_frame = 0.0
        next_dump, ndump = 0.0, 0
        self.skipped = 0
        while True:
            if time.time() > deadline:
                raise RuntimeError("timeout waiting for the guest (see %s)" %
                                   os.path.join(a.out, "guest.log"))
            if demo_running and time.time() - last_frame > STALL_S:
                raise Stalled("the guest completed no frame for %d s: the display path "
                              "hangs (%s mode; see backend.log, client.log)" % (
                                  STALL_S, self.mode))
            wait = 1.0
            if demo_running and self.mode in ("screendump", "view"):
                if time.time() >= next_dump:
                    next_dump = time.time() + a.interval
                    ndump += 1
                    self.screendump(ndump)
                wait = max(0.0, next_dump - time.time())
            line = self.serial.readline(wait)
            if line is None:
                if self.serial.closed or self.procs["qemu"].poll() is not None:
                    raise RuntimeError("QEMU exited before the guest finished (see %s)" %
                                       os.path.join(a.out, "qemu.log"))
                if self.procs["backend"].poll() is not None:
                    raise RuntimeError("vshm-gpu exited (status %s), see %s" % (
                        self.procs["backend"].returncode, os.path.join(a.out, "backend.log")))
                continue
            glog.write("[%7.3f] %s\n" % (time.time() - self.t0, line))
            glog.flush()
            i = line.find("@@")
            if i < 0:
                continue
            word, _, rest = line[i + 2:].partition(" ")
            if word == "BOOT":
                self.ev("boot")
                self.log("guest: kernel booted (%s)" % rest.split("kernel=")[-1])
            elif word == "READY":
                self.ev("ready")
            elif word == "BEGIN" and rest.startswith("demo"):
                self.ev("demo")
                self.log("guest: demo started, %d s on %d heads" % (a.seconds, HEADS))
                demo_running = True
                last_frame = time.time()
                next_dump = time.time() + min(a.interval, 0.5)   # let it draw first
                if self.mode in ("view", "capture"):
                    self.start_client()
            elif word == "INFO" and rest.startswith("demo"):
                self.guest["info"].append(rest)
                if " fps=" in rest:
                    last_frame = time.time()
                    kv = dict(x.split("=", 1) for x in rest.split()[1:] if "=" in x)
                    self.log("guest: frame %s, %s fps (draw %s, flip+drain %s per frame)" % (
                        kv.get("frame"), kv.get("fps"), kv.get("draw"), kv.get("flip+drain")))
            elif word == "DATA" and rest.startswith("demo "):
                self.guest["data"] = dict(x.split("=", 1) for x in rest.split()[1:])
            elif word in ("FAIL", "WARN"):
                self.guest["fail" if word == "FAIL" else "info"].append(rest)
                self.log("guest: @@%s %s" % (word, rest))
            elif word == "EXIT" and rest.startswith("demo"):
                self.ev("demo_end")
                demo_running = False
                self.guest["rc"] = rest.split()[1]
                if self.mode == "capture":
                    self.stop_client()   # before the console takes the display back
            elif word == "END":
                self.ev("end")
                return

    # ------------------------------------------------------------ results
    def collect_capture(self):
        """capture mode: what vshm-capture received (its log: one 'frame
        scanout=S seq=N ... [file=PATH]' line per frame, then 'summary ...')
        and the PNGs it wrote, by head."""
        self.received = {h: 0 for h in range(HEADS)}
        self.client_summary = []
        files = {h: [] for h in range(HEADS)}
        try:
            lines = open(os.path.join(self.a.out, "client.log"), errors="replace").readlines()
        except OSError:
            lines = []
        for line in lines:
            if line.startswith("frame "):
                kv = dict(x.split("=", 1) for x in line.split()[1:] if "=" in x)
                head = int(kv.get("scanout", -1))
                if head in self.received:
                    self.received[head] += 1
                    if "file" in kv and os.path.exists(kv["file"]):
                        files[head].append({"png": kv["file"], "frame": None,
                                            "seq": int(kv.get("seq", 0))})
            elif line.startswith(("summary ", "daemon ")):
                self.client_summary.append(line.strip())
        for head in range(HEADS):
            self.captures[head] = sorted(files[head], key=lambda c: c["seq"])
        # Decoding a PNG in pure Python takes ~0.4 s at 1024x768: check the
        # frame numbers of up to CHECK_PNGS per head, spread over the run.
        todo = []
        for head in range(HEADS):
            caps = self.captures[head]
            n = min(len(caps), CHECK_PNGS)
            todo += [caps[round(i * (len(caps) - 1) / max(1, n - 1))] for i in range(n)]
        with multiprocessing.Pool(min(2, os.cpu_count() or 1)) as pool:
            for c, (frame, torn) in zip(todo, pool.map(decode_png, [c["png"] for c in todo])):
                c["frame"], c["torn"] = frame, torn

    def screenshot(self):
        """OUT/demo.png from the newest pair of frames taken during the demo."""
        a = self.a
        pair = []
        for head in range(HEADS):
            # the newest demo frame that is not torn (in capture mode only
            # some were decoded; the newest always is)
            caps = [c for c in self.captures[head] if c["frame"] is not None and
                    not c.get("torn")] or self.captures[head]
            if not caps:
                return None
            pair.append(caps[-1]["png"])
        imgs = [demo_screenshot.read_png(p) for p in pair]
        w, h, pix = demo_screenshot.side_by_side(imgs)
        out = os.path.join(a.out, "demo.png")
        demo_screenshot.write_png(out, w, h, pix)
        if a.screenshot:
            shutil.copyfile(out, a.screenshot)
        return out


def stats_lines(path):
    try:
        return [line.split("vshm-gpu: ", 1)[-1].rstrip() for line in open(path, errors="replace")
                if "stats:" in line]
    except OSError:
        return []


def run(a, mode):
    """One boot of the demo; (Demo, None or the exception that ended it)."""
    d = Demo(a)
    d.mode = mode or d.pick_mode()
    d.log("mode: %s" % d.mode)
    os.makedirs(a.out, exist_ok=True)
    d.frames = os.path.join(a.out, "frames")
    shutil.rmtree(d.frames, ignore_errors=True)
    os.makedirs(d.frames)
    for f in ("demo.png", "summary.json", "client.log"):
        if os.path.exists(os.path.join(a.out, f)):
            os.unlink(os.path.join(a.out, f))
    d.writer = threading.Thread(target=d.png_writer, daemon=True)
    d.writer.start()
    err = None
    try:
        d.start_backend()
        d.start_qemu()
        d.drive()
    except (RuntimeError, OSError, QMPError) as e:
        err = e
    except KeyboardInterrupt:
        err = RuntimeError("interrupted")
    finally:
        d.stop(fast=err is not None)
        d.pngq.put(None)
        d.writer.join()
        for f in ("vgpu.sock", "display.sock", "serial.sock", "qmp.sock"):
            try:
                os.unlink(os.path.join(a.out, f))
            except OSError:
                pass
    return d, err


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(REPO, "_work", "demo"))
    ap.add_argument("--xres", type=int, default=1024)
    ap.add_argument("--yres", type=int, default=768)
    ap.add_argument("--kernel", default="6.1", choices=("6.1", "6.12"))
    ap.add_argument("--qemu-display", default="none")
    ap.add_argument("--mode", default="auto", choices=("auto", "view", "capture", "screendump"))
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--backend", default=os.path.join(REPO, "build", "server", "vshm-gpu"))
    ap.add_argument("--screenshot")
    ap.add_argument("--work", default=os.environ.get("E2E_WORK") or
                    os.path.join(REPO, "_work", "e2e"))
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--boot-timeout", type=float, default=90)
    a = ap.parse_args()
    if not (1 <= a.seconds <= 86400) or not (320 <= a.xres <= 4096 and 240 <= a.yres <= 4096):
        ap.error("--seconds 1..86400, --xres 320..4096, --yres 240..4096")
    a.backend = os.path.abspath(a.backend)
    a.out = os.path.abspath(a.out)
    if a.screenshot:
        a.screenshot = os.path.abspath(a.screenshot)
    if not os.access(a.backend, os.X_OK):
        raise SystemExit("demo: %s is not built (ninja -C build)" % a.backend)
    if not shutil.which(a.qemu):
        raise SystemExit("demo: %s not found (tests/e2e/install-deps.sh)" % a.qemu)

    t0 = time.time()
    for m in ("view", "capture"):   # left by an earlier run
        shutil.rmtree(os.path.join(a.out, "failed-" + m), ignore_errors=True)
    d, err = run(a, None)
    if isinstance(err, Stalled) and a.mode == "auto" and d.mode != "screendump":
        d.log("error: %s" % err)
        d.log("%s mode does not work with this vshm-gpu: trying again in screendump mode "
              "(logs of the failed run in %s)" % (d.mode, os.path.join(a.out, "failed-" + d.mode)))
        keep = os.path.join(a.out, "failed-" + d.mode)
        shutil.rmtree(keep, ignore_errors=True)
        os.makedirs(keep)
        for f in ("backend.log", "qemu.log", "guest.log", "client.log"):
            if os.path.exists(os.path.join(a.out, f)):
                shutil.move(os.path.join(a.out, f), keep)
        d, err = run(a, "screendump")
    d.t0 = t0
    if err is not None:
        err = str(err)
        d.log("error: " + err)
        for name in ("qemu.log", "backend.log", "client.log"):
            try:
                lines = open(os.path.join(a.out, name), errors="replace").read().splitlines()
            except OSError:
                continue
            if lines:
                print("--- %s (last %d of %d lines)" % (name, min(8, len(lines)), len(lines)))
                for line in lines[-8:]:
                    print("    " + line)
    t_end = time.time()

    # ------------------------------------------------------------ summary
    if d.mode == "capture":
        d.collect_capture()
    shot = d.screenshot()
    g = d.guest["data"]
    res = {"mode": d.mode, "seconds": a.seconds, "size": "%dx%d" % (a.xres, a.yres),
           "kernel": a.kernel, "events": d.events, "guest": g, "error": err,
           "heads": {}, "frames_dir": d.frames, "screenshot": shot,
           "stats": stats_lines(os.path.join(a.out, "backend.log"))}
    print()
    print("vshm demo summary (%s mode, %s, %d heads, kernel %s)" % (
        d.mode, res["size"], HEADS, a.kernel))
    ev = d.events
    print("  time:    QEMU start %.1f s, guest /init at %s s, demo %s..%s s, all done %.1f s" % (
        ev.get("qemu", 0), ev.get("boot", "-"), ev.get("demo", "-"), ev.get("demo_end", "-"),
        t_end - d.t0))
    if g:
        print("  guest:   drew %s frames per head in %s s (%s frames/s; draw %s ms, "
              "flip+drain %s ms per frame)" % (g.get("frames"), g.get("seconds"), g.get("fps"),
                                                g.get("draw_ms"), g.get("flip_ms")))
    for head in range(HEADS):
        caps = d.captures[head]
        checked = [c for c in caps if c["frame"] is not None]
        seen = sorted({c["frame"] for c in checked})
        torn = [os.path.basename(c["png"]) for c in checked if c.get("torn")]
        res["heads"][head] = {"pngs": len(caps), "checked": len(checked),
                              "distinct_frames": len(seen), "torn": torn,
                              "first": seen[0] if seen else None,
                              "last": seen[-1] if seen else None}
        rng = "frame %s .. %s" % (seen[0], seen[-1]) if seen else "no demo frame"
        tear = ", %d torn (%s)" % (len(torn), " ".join(torn[:4])) if torn else ""
        if d.mode == "capture":
            res["heads"][head]["received"] = d.received[head]
            print("  head %d:  vshm-capture received %d frames, wrote %d PNGs; %d checked: "
                  "%s%s" % (head, d.received[head], len(caps), len(checked), rng, tear))
        else:
            print("  head %d:  %d screendumps, %d distinct frames (%s)%s" % (
                head, len(caps), len(seen), rng, tear))
    client = d.procs.get("client")
    if client is not None and client.returncode not in (0, -signal.SIGTERM):
        print("  client:  %s exited with status %s (see %s)" % (
            show(d.view_bin if d.mode == "view" else d.capture_bin), client.returncode,
            os.path.join(a.out, "client.log")))
    if d.mode == "view":
        print("  view:    %s on %s" % (show(d.view_bin), d.dsock))
    if d.mode == "capture":
        res["client"] = d.client_summary
        for line in d.client_summary:
            print("  capture: " + line)
    print("  frames:  %s/" % d.frames)
    if shot:
        print("  both:    %s%s" % (shot, " (copied to %s)" % a.screenshot if a.screenshot else ""))
    for line in res["stats"]:
        print("  daemon:  " + line)
    if err:
        print("  error:   " + err)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(res, f, indent=1)
    # a stalled display path shows up as (almost) no frames
    frames = int(g.get("frames", 0)) if g else 0
    if not err and g and frames < a.seconds * 2:
        err = "the guest drew only %d frames in %d s: the display path stalled" % (
            frames, a.seconds)
        print("  error:   " + err)
    ok = err is None and d.guest.get("rc") == "rc=0" and g
    print("demo: %s (logs and summary.json in %s)" % ("ok" if ok else "FAILED", a.out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
