"""e2ecapture - the vshm-capture check of the vshm e2e test (standard library only).

When the backend is vshm-gpu, run.py starts it with --display DIR/display.sock
(and --scanouts=HEADS, so a consumer may have every head) and runs
vshm-capture on that socket for the whole guest run, writing a PNG of every
frame it receives to DIR/capture/.  At each @@CHECK pattern the guest has
drawn its final frame and waits; Capture.check() then takes the newest PNG
of that scanout, waiting up to a deadline for one whose counter cells show
the guest's final counter, and compares all its pixels with the expected
image.  PNGs of older frames of that scanout are deleted (the chosen one is
kept).  At the end vshm-capture gets SIGTERM and its summary line (flush-to-
receive latency p50/p99, send latency, frame age, drops) and the daemon's
STATS line are recorded.

Encoding a PNG per frame makes that consumer slow, so the daemon drops
frames for it (mailbox, latest frame wins) and its flush-to-receive latency
includes its own PNG writing.  A second vshm-capture without --out (the
latency probe, role e2e-lat) receives every frame it can and gives the
daemon's delivery latency and frame age; both summaries are recorded.
"""
import os
import re
import signal
import subprocess
import time

import e2eimg

FRAME_RE = re.compile(r"^frame (.*)$")
KV_RE = re.compile(r"(\w+)=(\S+)")


def display_support(backend):
    """'' if BACKEND takes --display (vshm-gpu), else why not."""
    if backend == "builtin":
        return "backend is QEMU's in-process virtio-gpu (no display consumer socket)"
    try:
        out = subprocess.run([backend, "--help"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=10).stdout.decode(errors="replace")
    except (OSError, subprocess.SubprocessError) as e:
        return "%s --help failed: %s" % (backend, e)
    if "--display" not in out:
        return "%s has no --display option (QEMU's vhost-user-gpu serves only QEMU)" % (
            os.path.basename(backend))
    return ""


def find_capture(backend, given):
    """vshm-capture to use: GIVEN, $VSHM_CAPTURE, or BUILD/clients/vshm-capture
    next to BUILD/server/vshm-gpu.  None if there is none."""
    if given:
        return os.path.abspath(given) if os.access(given, os.X_OK) else None
    for c in (os.environ.get("VSHM_CAPTURE"),
              os.path.join(os.path.dirname(os.path.dirname(backend)), "clients",
                           "vshm-capture")):
        if c and os.access(c, os.X_OK):
            return os.path.abspath(c)
    return None


def percentile(v, p):
    """The same rank rule as vshm-capture's summary."""
    if not v:
        return None
    v = sorted(v)
    i = int(p * (len(v) - 1) + 0.5)
    return v[min(i, len(v) - 1)]


class Capture:
    def __init__(self, exe, out, sock, heads, log, write=True):
        self.exe, self.sock, self.heads, self.log = exe, sock, heads, log
        self.write = write
        self.dir = os.path.join(out, "capture") if write else None
        self.logpath = os.path.join(out, "capture.log" if write else "capture-latency.log")
        self.proc = None
        self.kept = set()
        self.last_seq = {}          # scanout -> seq of the previous check's frame
        self.res = {"exe": exe, "socket": sock, "dir": self.dir, "checks": {}}

    def start(self, deadline_s=10):
        if self.dir:
            os.makedirs(self.dir, exist_ok=True)
        t_end = time.time() + deadline_s
        while not os.path.exists(self.sock):
            if time.time() > t_end:
                raise RuntimeError("backend did not create %s within %d s" % (
                    self.sock, deadline_s))
            time.sleep(0.02)
        cmd = [self.exe, "--socket", self.sock, "--scanouts", "0-%d" % (self.heads - 1),
               "--frames", "0", "--every", "1", "--timeout", "0",
               "--role", "e2e" if self.write else "e2e-lat"]
        if self.dir:
            cmd += ["--out", self.dir]
        self.res["cmdline"] = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=open(self.logpath, "wb"),
                                     stderr=subprocess.STDOUT)
        t_end = time.time() + deadline_s
        while not self.lines_starting("hello"):
            if self.proc.poll() is not None:
                raise RuntimeError("vshm-capture exited (status %s) before its HELLO reply: %s"
                                   % (self.proc.returncode, self.tail()))
            if time.time() > t_end:
                raise RuntimeError("vshm-capture got no HELLO reply within %d s" % deadline_s)
            time.sleep(0.02)
        self.res["hello"] = self.lines_starting("hello")[0]

    # ------------------------------------------------------------ log
    def lines(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def lines_starting(self, word):
        return [ln for ln in self.lines() if ln.startswith(word + " ")]

    def tail(self, n=5):
        return " | ".join(self.lines()[-n:])

    def frames(self, scanout):
        out = []
        for ln in self.lines():
            m = FRAME_RE.match(ln)
            if not m:
                continue
            kv = dict(KV_RE.findall(m.group(1)))
            if int(kv.get("scanout", -1)) == scanout:
                kv["seq"] = int(kv["seq"])
                out.append(kv)
        return out

    # ------------------------------------------------------------ the check
    def check(self, name, head, w, h, counter, expected, deadline_s=5.0):
        """(ok, msg, extra): the newest PNG of scanout HEAD whose counter is
        COUNTER must equal EXPECTED (w x h RGB) in every pixel."""
        t0 = time.time()
        best = None                 # (frame, (gw, gh, pix)) of the newest file looked at
        looked = 0
        tried = set()
        while True:
            if self.proc.poll() is not None:
                return False, "vshm-capture exited (status %s): %s" % (
                    self.proc.returncode, self.tail()), {}
            with_file = [f for f in self.frames(head)
                         if "file" in f and os.path.exists(f["file"])]
            if with_file and with_file[-1]["file"] not in tried:
                fr = with_file[-1]
                tried.add(fr["file"])
                try:
                    img = e2eimg.read_png(fr["file"])
                    looked += 1
                except (OSError, ValueError) as e:
                    img = None
                    self.log("capture %s: %s unreadable: %s" % (name, fr["file"], e))
                if img is not None:
                    best = (fr, img)
                    if img[0:2] == (w, h) and img[2] == expected:
                        break
            if time.time() - t0 > deadline_s:
                break
            time.sleep(0.1)
        ms = round((time.time() - t0) * 1000)
        extra = {"wait_ms": ms, "pngs_decoded": looked}
        stats = self.window_stats(head, best[0]["seq"] if best else None)
        extra.update(stats)
        self.res["checks"][name] = dict(extra)
        if best is None:
            return False, "vshm-capture wrote no PNG of scanout %d within %.0f s (%s)" % (
                head, deadline_s, self.tail(2)), extra
        fr, (gw, gh, got) = best
        extra.update(png=fr["file"], seq=fr["seq"], flush_latency_us=fr.get("flush_latency_us"))
        self.res["checks"][name].update(png=fr["file"], seq=fr["seq"])
        self.keep(head, fr)
        what = "%s (seq %d, flush-to-receive %s us)" % (
            os.path.basename(fr["file"]), fr["seq"], fr.get("flush_latency_us"))
        if (gw, gh) != (w, h):
            return False, "newest frame %s is %dx%d, expected %dx%d" % (what, gw, gh, w, h), extra
        if got == expected:
            return True, "all %d pixels of %s exact (scanout %d %dx%d, counter 0x%08x); %s" % (
                w * h, what, head, w, h, counter, self.window_text(stats)), extra
        shown = e2eimg.decode_counter(got, w, h)
        bad, rows, report, mask = e2eimg.compare(got, expected, w, h)
        base = os.path.join(self.dir, name)
        e2eimg.write_png(base + "-expected.png", w, h, expected)
        e2eimg.write_png(base + "-diff.png", w, h, mask)
        extra.update(bad_pixels=bad, counter_shown=shown)
        return False, "newest frame %s: %d of %d pixels differ in %d rows, counter cells show "\
            "%s (want 0x%08x) after %d ms; first: %s" % (
                what, bad, w * h, rows, "0x%08x" % shown if shown is not None else "no counter",
                counter, ms, "; ".join(report)), extra

    def window_stats(self, scanout, seq):
        """Frames of SCANOUT received since the previous check of it, up to SEQ."""
        lo = self.last_seq.get(scanout, 0)
        fr = [f for f in self.frames(scanout) if lo < f["seq"] <= (seq or 1 << 62)]
        if seq:
            self.last_seq[scanout] = seq
        lat = [float(f["flush_latency_us"]) for f in fr
               if f.get("flush_latency_us", "-") != "-"]
        age = [float(f["frame_age_ms"]) for f in fr if f.get("frame_age_ms", "-") != "-"]
        st = {"frames": len(fr), "dropped": sum(int(f.get("dropped", 0)) for f in fr)}
        if lat:
            st.update(flush_latency_p50_us=percentile(lat, 0.5),
                      flush_latency_p99_us=percentile(lat, 0.99))
        if age:
            st["frame_age_max_ms"] = max(age)
        return st

    @staticmethod
    def window_text(st):
        s = "%d frames received, %d dropped" % (st["frames"], st["dropped"])
        if "flush_latency_p50_us" in st:
            s += ", flush-to-receive p50 %.0f us p99 %.0f us" % (
                st["flush_latency_p50_us"], st["flush_latency_p99_us"])
        return s

    def keep(self, scanout, fr):
        """Keep FR's PNG; delete the PNGs of older frames of SCANOUT."""
        self.kept.add(fr["file"])
        for f in self.frames(scanout):
            p = f.get("file")
            if p and f["seq"] < fr["seq"] and p not in self.kept and os.path.exists(p):
                os.unlink(p)

    # ------------------------------------------------------------ end
    def stop(self):
        """SIGTERM vshm-capture, record its summary and the daemon's STATS."""
        if self.proc is None:
            return self.res
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.res["exit"] = self.proc.returncode
        for word in ("summary", "daemon"):
            ln = self.lines_starting(word)
            if ln:
                self.res[word] = {k: num(v) for k, v in KV_RE.findall(ln[-1])}
        # frame age over the whole run, from the per-frame lines
        ages = []
        for s in range(self.heads):
            ages += [float(f["frame_age_ms"]) for f in self.frames(s)
                     if f.get("frame_age_ms", "-") != "-"]
        if ages:
            self.res["frame_age_ms"] = {"p50": percentile(ages, 0.5),
                                        "p99": percentile(ages, 0.99), "max": max(ages)}
        for name in os.listdir(self.dir) if self.dir else ():
            p = os.path.join(self.dir, name)
            if name.startswith("scanout") and p not in self.kept:
                os.unlink(p)
        return self.res

    def summary_text(self):
        s = self.res.get("summary")
        if not s:
            return "no summary from vshm-capture (exit %s): %s" % (self.res.get("exit"),
                                                                  self.tail(3))
        t = "%s frames, %s dropped" % (s.get("frames"), s.get("dropped"))
        if "flush_latency_p50_us" in s:
            t += ("; flush-to-receive p50 %.1f us, p99 %.1f us; send-to-receive p50 %.1f us, "
                  "p99 %.1f us; max frame age %.1f ms" % (
                      s["flush_latency_p50_us"], s["flush_latency_p99_us"],
                      s["send_latency_p50_us"], s["send_latency_p99_us"],
                      s["max_frame_age_ms"]))
        a = self.res.get("frame_age_ms")
        if a:
            t += " (at frames: p50 %.1f ms, p99 %.1f ms)" % (a["p50"], a["p99"])
        d = self.res.get("daemon")
        if d:
            t += "; daemon: %s sent, %s dropped, %s reclaimed" % (
                d.get("frames_sent"), d.get("frames_dropped"), d.get("frames_reclaimed"))
        return t


def num(v):
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v
