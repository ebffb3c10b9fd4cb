#!/usr/bin/env python3
"""run.py - vshm e2e test: boot a Debian kernel under QEMU (TCG) with
-device vhost-user-gpu-pci served by BACKEND, run the guest tests and check
the display exactly through QMP screendump (and the cursor through QEMU's VNC
server).  Standard library only.

usage: run.py --backend PATH [options]
  --backend PATH     started as: PATH --socket-path=SOCK (must listen there)
  --kernel SERIES    guest built by build-guest.sh (6.1 default, or 6.12)
  --tests LIST       comma list (default: all, see DEFAULT_TESTS; "dmabuf"
                     is extra: libvshm udmabuf/dma-buf/fence checks in the guest)
  --xres/--yres N    vhost-user-gpu-pci xres/yres = the preferred mode (1280x720)
  --heads N          max_outputs (default 2)
  --out DIR          results dir (default $E2E_WORK/run-<backend>-<kernel>)
  --work DIR         work dir (default $E2E_WORK or <repo>/_work/e2e)
  --timeout S        whole run (default 300)
  --capture PATH|auto|none
                     vshm-capture for the capture-* checks (default auto:
                     $VSHM_CAPTURE or BUILD/clients/vshm-capture next to
                     BUILD/server/vshm-gpu; skipped when the backend has no
                     --display, e.g. QEMU's; see e2ecapture.py)
Writes DIR/results.json, DIR/*.png (every screendump; on failure also the
expected image and a diff mask), guest.log, backend.log, qemu.log.
Exit status 0 only if every check passed.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2ecapture  # noqa: E402
import e2eimg  # noqa: E402
from e2eproto import QMP, QMPError, Serial  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_TESTS = ("modes,fbcon,kms:1024x768:flip:60,kms:1024x768:dirty:60,"
                 "kms:1920x1080:flip:30,kms:1920x1080:dirty:30,heads:2,cursor")
# modes every EDID-based mode list should offer (QEMU's EDID generator lists
# these and more, up to its maximum)
# test "dmabuf" (guest/vshm-e2e-dmabuf.c judges itself and prints @@GCHECK):
# the checks every kernel must report, and those that need /dev/udmabuf
# (with udmabuf absent the guest must report dmabuf-fallback instead)
DMABUF_CHECKS = ("dmabuf-available", "dmabuf-limits", "dmabuf-err-noshrink",
                 "dmabuf-err-writeseal", "dmabuf-err-notmemfd", "dmabuf-err-e2big",
                 "dmabuf-err-misaligned", "dmabuf-prime", "dmabuf-prime-fence")
DMABUF_UDMABUF_CHECKS = ("dmabuf-single", "dmabuf-sync-badflags", "dmabuf-multi",
                         "dmabuf-guest", "dmabuf-fence")
COMMON_MODES = ("640x480", "800x600", "1024x768", "1280x1024", "1920x1080")
DEVICE_ID = "vgpu0"


def log(t0, msg):
    print("[%6.2fs] %s" % (time.time() - t0, msg), flush=True)


class Run:
    def __init__(self, a):
        self.a = a
        self.t0 = time.time()
        self.out = a.out
        self.checks = []           # {name, ok, msg, ...}
        self.data = {}             # @@DATA collected for the current test
        self.res = {"backend": a.backend, "kernel": a.kernel, "tests": a.tests,
                    "xres": a.xres, "yres": a.yres, "heads": a.heads,
                    "events": {}, "checks": self.checks, "test_exit": {},
                    "guest_fail": [], "warn": [], "info": [], "dmesg": []}
        self.procs = {}
        self.qmp = None
        self.capture = None        # e2ecapture.Capture when the backend has --display
        self.probe = None          # a second one without PNGs: latency / frame age
        self.capture_exe = None

    # ------------------------------------------------------------ helpers
    def ev(self, name):
        self.res["events"][name] = round(time.time() - self.t0, 3)

    def add_check(self, name, ok, msg, **extra):
        entry = {"name": name, "ok": bool(ok), "msg": msg}
        entry.update(extra)
        self.checks.append(entry)
        log(self.t0, "%s %s: %s" % ("PASS" if ok else "FAIL", name, msg))
        return entry

    def screendump(self, head, path):
        args = {"filename": path, "device": DEVICE_ID, "head": head}
        self.qmp.execute("screendump", **args)
        return e2eimg.read_ppm(path)

    def check_image(self, name, head, w, h, expected, extra_msg="", deadline_s=4.0):
        """Screendump head until it equals expected (w x h RGB), or time out.
        The backend forwards updates to QEMU asynchronously, so the first
        screendump may predate the last update."""
        ppm = os.path.join(self.out, name + ".ppm")
        t_start = time.time()
        attempts = 0
        while True:
            attempts += 1
            try:
                gw, gh, got = self.screendump(head, ppm)
            except (QMPError, OSError, ValueError) as e:
                gw = gh = 0
                got = None
                err = str(e)
            if got is not None and (gw, gh) == (w, h) and got == expected:
                break
            if time.time() - t_start > deadline_s:
                break
            time.sleep(0.15)
        ms = round((time.time() - t_start) * 1000)
        png = os.path.join(self.out, name + ".png")
        self.last_got = (gw, gh, got) if got is not None else None
        if got is None:
            return self.add_check(name, False, "screendump head %d failed: %s" % (head, err),
                                  attempts=attempts, ms=ms)
        e2eimg.write_png(png, gw, gh, got)
        os.unlink(ppm)
        if (gw, gh) != (w, h):
            return self.add_check(name, False, "head %d is %dx%d, expected %dx%d%s" % (
                head, gw, gh, w, h, extra_msg), attempts=attempts, ms=ms, png=png)
        if got == expected:
            return self.add_check(name, True, "all %d pixels of head %d (%dx%d) exact%s" % (
                w * h, head, w, h, extra_msg), attempts=attempts, ms=ms, png=png)
        bad, rows, report, mask = e2eimg.compare(got, expected, w, h)
        e2eimg.write_png(os.path.join(self.out, name + "-expected.png"), w, h, expected)
        e2eimg.write_png(os.path.join(self.out, name + "-diff.png"), w, h, mask)
        return self.add_check(name, False, "%d of %d pixels differ in %d rows%s; first: %s" % (
            bad, w * h, rows, extra_msg, "; ".join(report)), attempts=attempts, ms=ms,
            png=png, bad_pixels=bad)

    # ------------------------------------------------------------ checks
    def check_pattern(self, kv):
        head, w, h = int(kv["head"]), int(kv["w"]), int(kv["h"])
        seed, counter = int(kv["seed"]), int(kv["counter"])
        exp = e2eimg.pattern_rgb(w, h, seed, counter)
        entry = self.check_image(kv["name"], head, w, h, exp,
                                 " (counter 0x%08x)" % counter)
        got = self.last_got
        if self.capture:
            # the same final frame, as vshm-capture received it on --display
            ok, msg, extra = self.capture.check(kv["name"], head, w, h, counter, exp)
            if self.probe:
                extra["probe"] = st = self.probe.window_stats(head, extra.get("seq"))
                msg += "; latency probe: " + self.probe.window_text(st)
            self.add_check("capture-" + kv["name"], ok, msg, **extra)
        if not entry["ok"] and got and got[0:2] == (w, h):
            shown = e2eimg.decode_counter(got[2], w, h)
            entry["counter_shown"] = shown
            entry["msg"] += "; counter cells show %s" % (
                "0x%08x" % shown if shown is not None else "no valid counter")

    def check_modes(self, kv):
        a = self.a
        heads = int(kv["heads"])
        conns = self.data.get("conn", [])
        modes = {int(d["head"]): d["list"].split(",") if d["list"] else []
                 for d in self.data.get("modes", [])}
        edids = {int(d["head"]): bytes.fromhex(d["hex"]) for d in self.data.get("edid", [])}
        self.res["connectors"] = conns
        self.res["modes"] = {str(k): v for k, v in modes.items()}
        self.res["edid_hex"] = {str(k): v.hex() for k, v in edids.items()}
        ok, msgs = True, []
        if heads != a.heads:
            ok = False
            msgs.append("guest sees %d connectors, max_outputs=%d" % (heads, a.heads))
        m0 = modes.get(0, [])
        pref = [m for m in m0 if m.endswith("*")]
        want = "%dx%d" % (a.xres, a.yres)
        c0 = next((c for c in conns if c.get("head") == "0"), {})
        if c0.get("connection") != "1":
            ok = False
            msgs.append("head 0 not connected (connection=%s)" % c0.get("connection"))
        if len(pref) != 1 or not pref[0].startswith(want + "@"):
            ok = False
            msgs.append("head 0 preferred mode(s) %s, expected %s" % (pref or "none", want))
        sizes = {m.split("@")[0] for m in m0}
        missing = [m for m in COMMON_MODES if m not in sizes]
        if missing:
            ok = False
            msgs.append("head 0 lacks common modes %s" % ",".join(missing))
        e = edids.get(0, b"")
        emsg = self.check_edid(e, a.xres, a.yres)
        if emsg:
            ok = False
            msgs.append("head 0 EDID: " + emsg)
        detail = "head 0: %d modes, preferred %s, EDID %d bytes" % (
            len(m0), pref[0] if pref else "none", len(e))
        for hd in range(1, heads):
            c = next((c for c in conns if c.get("head") == str(hd)), {})
            detail += "; head %d: connection=%s (1 connected, 2 not), %d modes, EDID %d bytes" % (
                hd, c.get("connection"), len(modes.get(hd, [])), len(edids.get(hd, b"")))
        self.add_check("modes", ok, "; ".join(msgs + [detail]))

    @staticmethod
    def check_edid(e, xres, yres):
        """'' if the EDID is sane and its first detailed timing is xres x yres."""
        if not e:
            return "no EDID property"
        if len(e) % 128:
            return "length %d is not a multiple of 128" % len(e)
        if e[:8] != b"\x00\xff\xff\xff\xff\xff\xff\x00":
            return "bad header %s" % e[:8].hex()
        for b in range(len(e) // 128):
            if sum(e[128 * b:128 * (b + 1)]) & 255:
                return "checksum of block %d wrong" % b
        if len(e) != 128 * (1 + e[126]):
            return "%d extension blocks announced, %d bytes present" % (e[126], len(e))
        d = e[54:72]
        if d[0] == 0 and d[1] == 0:
            return "first descriptor is not a detailed timing"
        ha = d[2] | (d[4] >> 4) << 8
        va = d[5] | (d[7] >> 4) << 8
        if (ha, va) != (xres, yres):
            return "first detailed timing %dx%d, expected %dx%d" % (ha, va, xres, yres)
        return ""

    def check_fbcon(self, kv):
        font = self.data.get("font", [{}])[0]
        fw, fh = int(font.get("w", 0)), int(font.get("h", 0))
        cmap = bytes.fromhex(self.data.get("cmap", [{"hex": ""}])[0]["hex"])
        glyphs = {int(g["c"], 16): bytes.fromhex(g["hex"]) for g in self.data.get("glyph", [])}
        texts = [(int(t["row"]), int(t["col"]), int(t["fg"]), int(t["bg"]),
                  bytes.fromhex(t["hex"]).decode("ascii")) for t in self.data.get("text", [])]
        if not (fw and fh and len(cmap) == 48 and texts):
            self.add_check("fbcon", False, "guest sent no font/palette/text")
            return
        w, h = self.a.xres, self.a.yres
        exp = e2eimg.fbcon_rgb(w, h, fw, fh, glyphs, cmap, texts)
        self.res["fbcon"] = {"font": "%dx%d" % (fw, fh), "cols": kv.get("cols"),
                             "rows": kv.get("rows"), "palette": cmap.hex()}
        self.check_image("fbcon", 0, w, h, exp, " (%sx%s text, font %dx%d, %d segments)" % (
            kv.get("cols"), kv.get("rows"), fw, fh, len(texts)))

    def check_cursor(self, kv):
        """QEMU's vhost-user-gpu consoles require a DMABUF-capable display, so
        no VNC/SDL listener can attach and QMP offers nothing about the cursor
        (screendump leaves it out).  What is checked: the guest's CURSOR2
        ioctl returned (the driver waits, without a timeout, for the host to
        complete the fenced TRANSFER_TO_HOST_2D of the cursor image; the guest
        gives up after 10 s and reports @@FAIL) - and, separately, that the
        primary plane is still exact afterwards (check cursor-screen)."""
        k = int(kv["image"])
        ms = next((i.split(":")[1].strip() for i in reversed(self.res["info"])
                   if i.startswith("cursor image %d:" % k)), "?")
        self.add_check("cursor-%d" % k, True, "CURSOR2 64x64 ARGB image %d, hotspot (%s), at "
                       "(%s,%s): host completed the fenced cursor update in %s (image/position "
                       "not observable from QMP)" % (k, kv["hot"], kv["x"], kv["y"], ms))

    # ------------------------------------------------------------ processes
    def start(self):
        a = self.a
        gdir = os.path.join(a.work, "guest", a.kernel)
        kernel = os.path.join(gdir, "vmlinux")
        if not os.path.exists(kernel):
            kernel = os.path.join(gdir, "vmlinuz")
        initrd = os.path.join(gdir, "initramfs.cpio")
        for f in (kernel, initrd):
            if not os.path.exists(f):
                raise SystemExit("%s missing: run build-guest.sh %s" % (f, a.kernel))
        self.res["kernel_release"] = open(os.path.join(gdir, "kernel-release")).read().strip()
        # what the dmabuf test must find: udmabuf built in or a module in the image
        try:
            cfg = open(os.path.join(gdir, "config")).read().splitlines()
        except OSError:
            cfg = []
        self.res["udmabuf_expected"] = "CONFIG_UDMABUF=y" in cfg
        self.res["boot"] = "pvh" if kernel.endswith("vmlinux") else "bzimage"
        sock = os.path.join(self.out, "vgpu.sock")
        blog = open(os.path.join(self.out, "backend.log"), "wb")
        self.capture_setup()
        if a.backend == "builtin":
            # QEMU's in-process virtio-gpu: tells guest-side from backend-side problems
            self.procs["backend"] = subprocess.Popen(["sleep", "3600"])
            dev = ["-device", "virtio-gpu-pci,id=%s,xres=%d,yres=%d,max_outputs=%d"
                   % (DEVICE_ID, a.xres, a.yres, a.heads)]
        else:
            dev = ["-chardev", "socket,id=vgpu,path=" + sock,
                   "-device", "vhost-user-gpu-pci,id=%s,chardev=vgpu,xres=%d,yres=%d,"
                   "max_outputs=%d" % (DEVICE_ID, a.xres, a.yres, a.heads)]
            self.start_backend(sock, blog)
        self.ev("backend_socket")
        self.start_qemu(kernel, initrd, dev)

    def capture_setup(self):
        """capture-* checks only for a backend with --display (vshm-gpu)."""
        a = self.a
        why = e2ecapture.display_support(a.backend) if a.capture != "none" else "--capture none"
        if why:
            self.res.setdefault("skipped", []).append({"name": "capture", "why": why})
            log(self.t0, "SKIP capture: " + why)
            return
        self.capture_exe = e2ecapture.find_capture(
            a.backend, None if a.capture == "auto" else a.capture)
        if not self.capture_exe:
            self.add_check("capture", False, "the backend has --display but vshm-capture "
                           "was not found (--capture PATH or $VSHM_CAPTURE)")

    def start_backend(self, sock, blog):
        a = self.a
        cmd = [a.backend, "--socket-path=" + sock]
        if self.capture_exe:
            # a display consumer socket; every head, so a consumer may have all of them
            dsock = os.path.join(self.out, "display.sock")
            cmd += ["--display=" + dsock, "--scanouts=%d" % a.heads]
        self.res["backend_cmdline"] = cmd
        self.procs["backend"] = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=blog, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not os.path.exists(sock):
            if self.procs["backend"].poll() is not None:
                raise RuntimeError("backend exited (status %s) before creating its socket" %
                                   self.procs["backend"].returncode)
            if time.time() > deadline:
                raise RuntimeError("backend did not create %s within 10 s" % sock)
            time.sleep(0.02)
        if self.capture_exe:
            try:
                for write in (True, False):
                    cap = e2ecapture.Capture(self.capture_exe, self.out, dsock, a.heads,
                                             lambda m: log(self.t0, m), write=write)
                    cap.start()
                    if write:
                        self.capture = cap
                    else:
                        self.probe = cap
                    log(self.t0, "vshm-capture (%s): %s" % (
                        "PNGs" if write else "latency probe", cap.res["hello"]))
            except (RuntimeError, OSError) as e:
                self.add_check("capture", False, "vshm-capture did not start: %s" % e)

    def start_qemu(self, kernel, initrd, dev):
        a = self.a
        append = ("console=ttyS0,115200 quiet panic=-1 vt.global_cursor_default=0 "
                  "logo.nologo consoleblank=0 vshm_tests=" + a.tests)
        mem = "384M"
        cmd = [a.qemu, "-S", "-nodefaults", "-no-user-config", "-no-reboot",
               "-display", "none", "-accel", "tcg",
               "-machine", "q35,memory-backend=mem", "-m", mem, "-smp", "1",
               "-object", "memory-backend-memfd,id=mem,size=%s,share=on" % mem,
               "-kernel", kernel, "-initrd", initrd, "-append", append,
               *dev,
               "-chardev", "socket,id=ser0,path=%s,server=on,wait=off"
               % os.path.join(self.out, "serial.sock"),
               "-serial", "chardev:ser0",
               "-qmp", "unix:%s,server=on,wait=off" % os.path.join(self.out, "qmp.sock")]
        self.res["qemu_cmdline"] = cmd
        qlog = open(os.path.join(self.out, "qemu.log"), "wb")
        self.procs["qemu"] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qlog,
                                              stderr=subprocess.STDOUT)
        self.ev("qemu_started")
        try:
            self.qmp = QMP(os.path.join(self.out, "qmp.sock"))
        except (OSError, QMPError) as e:
            raise RuntimeError("QMP: %s (QEMU %s)" % (e, self.qemu_status()))
        self.res["qemu_version"] = self.qmp.version
        self.serial = Serial(os.path.join(self.out, "serial.sock"))
        self.qmp.execute("cont")
        self.ev("cont")

    def qemu_status(self):
        p = self.procs.get("qemu")
        if p is None:
            return "not started"
        return "running" if p.poll() is None else "exited %s" % p.returncode

    def stop(self):
        if self.capture:
            self.res["capture"] = self.capture.stop()
        if self.probe:
            self.res["capture_latency"] = self.probe.stop()
        if self.qmp:
            try:
                self.qmp.execute("quit")
            except (QMPError, OSError):
                pass
            self.qmp.close()
        for name in ("qemu", "backend"):
            p = self.procs.get(name)
            if p is None:
                continue
            if name == "backend" and p.poll() is None:
                self.res["backend_status_before_stop"] = proc_status(p.pid)
            try:
                p.wait(timeout=3 if name == "qemu" else 0.5)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            self.res["%s_exit" % name] = p.returncode

    # ------------------------------------------------------------ main loop
    def drive(self):
        a = self.a
        glog = open(os.path.join(self.out, "guest.log"), "w")
        deadline = self.t0 + a.timeout
        boot_deadline = time.time() + a.boot_timeout
        current = None
        while True:
            now = time.time()
            if now > deadline or ("ready" not in self.res["events"] and now > boot_deadline):
                self.res["error"] = "timeout waiting for the guest (%s)" % (
                    "boot" if "ready" not in self.res["events"] else "test %s" % current)
                log(self.t0, self.res["error"])
                return
            line = self.serial.readline(1.0)
            if line is None:
                if self.serial.closed or self.procs["qemu"].poll() is not None:
                    self.res["error"] = "QEMU exited (%s) before the guest finished" % (
                        self.qemu_status())
                    log(self.t0, self.res["error"])
                    return
                if self.procs["backend"].poll() is not None and "backend_died" not in self.res:
                    self.res["backend_died"] = round(time.time() - self.t0, 3)
                    log(self.t0, "backend exited with status %s" %
                        self.procs["backend"].returncode)
                continue
            glog.write("[%7.3f] %s\n" % (time.time() - self.t0, line))
            glog.flush()
            i = line.find("@@")
            if i < 0:
                continue
            line = line[i + 2:]
            word, _, rest = line.partition(" ")
            if word not in ("DATA", "DMESG"):
                log(self.t0, "guest: @@" + line[:200])
            if word == "BOOT":
                self.ev("boot")
            elif word == "READY":
                self.ev("ready")
            elif word == "DMESG":
                self.res["dmesg"].append(rest)
            elif word == "INFO":
                self.res["info"].append(rest)
            elif word == "WARN":
                self.res["warn"].append(rest)
            elif word == "FAIL":
                self.res["guest_fail"].append(rest)
            elif word == "BEGIN":
                current = rest.split()[0]
                self.data = {}
                self.ev("begin " + current)
            elif word == "EXIT":
                t, rc = rest.split()[:2]
                self.res["test_exit"][t] = int(rc.split("=")[1])
                self.ev("exit " + t)
            elif word == "DATA":
                kind, kv = parse_kv(rest)
                self.data.setdefault(kind, []).append(kv)
            elif word == "GCHECK":
                # a check the guest judged itself (test "dmabuf"); no answer
                kind, kv = parse_kv(rest)
                ok = kv.get("ok") == "1"
                if kind == "dmabuf-available" and \
                        (kv.get("available") == "1") != self.res["udmabuf_expected"]:
                    ok = False
                    rest += " (the image's kernel config says CONFIG_UDMABUF%s)" % (
                        "=y" if self.res["udmabuf_expected"] else " is not built in")
                self.add_check(kind, ok, rest.partition(" ")[2])
            elif word == "GSKIP":
                kind, _, why = rest.partition(" ")
                self.res.setdefault("skipped", []).append({"name": kind, "why": why})
                log(self.t0, "SKIP %s: %s" % (kind, why))
            elif word == "CHECK":
                kind, kv = parse_kv(rest)
                try:
                    if kind == "pattern":
                        self.check_pattern(kv)
                    elif kind == "modes":
                        self.check_modes(kv)
                    elif kind == "fbcon":
                        self.check_fbcon(kv)
                    elif kind == "cursor":
                        self.check_cursor(kv)
                    elif kind == "cursor-hidden":
                        pass
                    else:
                        self.add_check(kind, False, "unknown check requested by the guest")
                except Exception as e:  # noqa: BLE001 - report, keep the guest going
                    self.add_check(kind, False, "host-side error: %r" % e)
                self.serial.send("go\n")
            elif word == "END":
                self.ev("end")
                return

    def finish(self):
        """Required checks per test, the verdict, results.json."""
        want = []
        for t in self.a.tests.split(","):
            if t == "modes":
                want.append("modes")
            elif t == "fbcon":
                want.append("fbcon")
            elif t.startswith("kms:"):
                _, res, kind, _ = t.split(":")
                want.append("kms-%s-%s" % (res, kind))
            elif t.startswith("heads:"):
                want += ["heads-%d" % i for i in range(int(t.split(":")[1]))]
            elif t == "cursor":
                want += ["cursor-1", "cursor-2", "cursor-screen"]
            elif t == "dmabuf":
                want += list(DMABUF_CHECKS)
                want += list(DMABUF_UDMABUF_CHECKS) if self.res.get("udmabuf_expected") \
                    else ["dmabuf-fallback"]
        if self.capture_exe:
            want += ["capture-" + w for w in list(want)
                     if w.startswith(("kms-", "heads-")) or w == "cursor-screen"]
        got = {c["name"] for c in self.checks}
        for w in want:
            if w not in got:
                self.add_check(w, False, "never checked: the guest did not get that far "
                               "(see guest failures / guest.log)")
        for t in self.a.tests.split(","):
            rc = self.res["test_exit"].get(t)
            if rc not in (0, None):
                self.add_check("guest " + t, False, "guest program exited %d: %s" % (
                    rc, "; ".join(f for f in self.res["guest_fail"] if f.startswith(t + " "))
                    or "see guest.log"))
        npass = sum(1 for c in self.checks if c["ok"])
        nfail = len(self.checks) - npass
        ok = nfail == 0 and "error" not in self.res and "end" in self.res["events"]
        self.res["passed"], self.res["failed"], self.res["ok"] = npass, nfail, ok
        self.res["wall_s"] = round(time.time() - self.t0, 2)
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(self.res, f, indent=1)
        return ok, npass, nfail


def parse_kv(rest):
    kind, _, tail = rest.partition(" ")
    kv = {}
    for m in re.finditer(r"(\w+)=(\S*)", tail):
        kv[m.group(1)] = m.group(2)
    return kind, kv


def proc_status(pid):
    out = {}
    try:
        for line in open("/proc/%d/status" % pid):
            k = line.split(":")[0]
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = line.split(":")[1].strip()
        st = open("/proc/%d/stat" % pid).read()
        f = st[st.rindex(")") + 2:].split()
        out["cpu_s"] = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", required=True)
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--tests", default=DEFAULT_TESTS)
    ap.add_argument("--xres", type=int, default=1280)
    ap.add_argument("--yres", type=int, default=720)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--out")
    ap.add_argument("--work", default=os.environ.get("E2E_WORK") or
                    os.path.join(REPO, "_work", "e2e"))
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--boot-timeout", type=float, default=90)
    ap.add_argument("--capture", default="auto")
    a = ap.parse_args()
    if a.backend != "builtin":
        a.backend = os.path.abspath(a.backend)
    if a.backend != "builtin" and not os.access(a.backend, os.X_OK):
        print("backend %s is not executable" % a.backend, file=sys.stderr)
        return 2
    if not shutil.which(a.qemu):
        print("%s not found (run install-deps.sh)" % a.qemu, file=sys.stderr)
        return 2
    if not a.out:
        a.out = os.path.join(a.work, "run-%s-%s" % (os.path.basename(a.backend), a.kernel))
    a.out = os.path.abspath(a.out)
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)

    r = Run(a)
    log(r.t0, "backend %s, kernel %s, %dx%d, %d heads, out %s" % (
        a.backend, a.kernel, a.xres, a.yres, a.heads, a.out))
    try:
        r.start()
        log(r.t0, "QEMU %s running (%s boot)" % (r.res["qemu_version"], r.res["boot"]))
        r.drive()
    except (RuntimeError, OSError, QMPError) as e:
        r.res["error"] = str(e)
        log(r.t0, "error: %s" % e)
    finally:
        r.stop()
    ok, npass, nfail = r.finish()
    ev = r.res["events"]
    log(r.t0, "boot: init at %s s, card ready at %s s, end at %s s (since QEMU start)" % (
        ev.get("boot"), ev.get("ready"), ev.get("end")))
    for name in ("backend.log", "qemu.log"):
        p = os.path.join(a.out, name)
        if os.path.getsize(p):
            lines = open(p, errors="replace").read().splitlines()
            print("--- %s (%d lines, last 15)" % (name, len(lines)))
            for line in lines[-15:]:
                print("    " + line)
    if r.capture:
        print("capture (PNG writer): " + r.capture.summary_text())
    if r.probe:
        print("capture (latency probe): " + r.probe.summary_text())
    if "error" in r.res:
        print("error: " + r.res["error"])
    print("results: %s" % os.path.join(a.out, "results.json"))
    print("e2e: %d passed, %d failed" % (npass, nfail))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
