/* SPDX-License-Identifier: MIT */
/*
 * bench-2d.c - vshm-gpu against QEMU's vhost-user-gpu, in one run.
 *
 * Each back-end named on the command line (default: the vshm-gpu built
 * next to this program and /usr/lib/qemu/vhost-user-gpu) is started as a
 * child and driven by the same front-end and display peer (bench-run.c).
 * The back-ends alternate over several rounds, because on a shared 2-core
 * machine the noise between two runs minutes apart is larger than many of
 * the differences being measured; the table shows per-figure medians and
 * the ratio of the first back-end to the second. See bench/README.md.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench-run.h"
#include "stats.h"

#define MAX_BACKENDS 4
#define MAX_ROUNDS   32
#define QEMU_BACKEND "/usr/lib/qemu/vhost-user-gpu"

struct backend {
	const char *name, *path;
	bool installed;
	unsigned ok;
	struct bench_result res[MAX_ROUNDS];
	char err[256];
};

/* One table row: how to pull the figure out of a result, and how to print it. */
struct row {
	const char *label;
	double (*get)(const struct bench_result *r);
	int decimals;
};

#define GETTER(name, expr)                                                                         \
	static double name(const struct bench_result *r)                                           \
	{                                                                                          \
		return (expr);                                                                     \
	}
GETTER(g_fps, r->fps)
GETTER(g_cpu, r->cpu_ms_per_frame)
GETTER(g_cpu_ticks, r->cpu_ms_per_frame_ticks)
GETTER(g_sub, (double)r->frames_submitted)
GETTER(g_disp, (double)r->frames_displayed)
GETTER(g_small, r->small_flush_per_s)
GETTER(g_info, r->display_info_per_s)
GETTER(g_rs50, r->rtt_small_p50_us)
GETTER(g_rs99, r->rtt_small_p99_us)
GETTER(g_rf50, r->rtt_full_p50_us)
GETTER(g_rf99, r->rtt_full_p99_us)
GETTER(g_pfps, r->paced_fps)
GETTER(g_pcpu, r->paced_cpu_ms_per_frame)
GETTER(g_pcpu_ticks, r->paced_cpu_ms_per_frame_ticks)
GETTER(g_psub, (double)r->paced_submitted)
GETTER(g_pdisp, (double)r->paced_displayed)
GETTER(g_prf50, r->paced_rtt_p50_us)
GETTER(g_prf99, r->paced_rtt_p99_us)
GETTER(g_bad, (double)(r->pipelined_bad_pixels + r->paced_bad_pixels))
GETTER(g_idle, r->idle_rss_mb)
GETTER(g_peak, r->peak_rss_mb)

/* Rows whose getter is NULL print the memcpy multiple of the previous row's CPU figure. */
static const struct row rows[] = {
	{ "(a) full frames/s (pipelined, coalescing allowed)", g_fps, 1 },
	{ "(a) backend CPU ms/frame (schedstat)", g_cpu, 3 },
	{ "(a) backend CPU ms/frame (stat ticks)", g_cpu_ticks, 3 },
	{ "(a) frames submitted", g_sub, 0 },
	{ "(a) frames displayed (UPDATEs)", g_disp, 0 },
	{ "(p) full frames/s (paced, every frame displayed)", g_pfps, 1 },
	{ "(p) backend CPU ms/frame (schedstat)", g_pcpu, 3 },
	{ "(p)   = x memcpy of one frame", NULL, 2 },
	{ "(p) backend CPU ms/frame (stat ticks)", g_pcpu_ticks, 3 },
	{ "(p) frames submitted", g_psub, 0 },
	{ "(p) frames displayed (UPDATEs)", g_pdisp, 0 },
	{ "(p) fenced full flush RTT p50 (us)", g_prf50, 1 },
	{ "(p) fenced full flush RTT p99 (us)", g_prf99, 1 },
	{ "(a)+(p) final frame: wrong pixels", g_bad, 0 },
	{ "(b) 1x1 RESOURCE_FLUSH/s", g_small, 0 },
	{ "(b) GET_DISPLAY_INFO/s", g_info, 0 },
	{ "(c) fenced 1x1 flush RTT p50 (us)", g_rs50, 1 },
	{ "(c) fenced 1x1 flush RTT p99 (us)", g_rs99, 1 },
	{ "(c) fenced full flush RTT p50 (us)", g_rf50, 1 },
	{ "(c) fenced full flush RTT p99 (us)", g_rf99, 1 },
	{ "(d) idle RSS (MB)", g_idle, 1 },
	{ "(d) peak RSS, VmHWM (MB)", g_peak, 1 },
};

static double median_of(const struct backend *b, const struct row *row)
{
	double v[MAX_ROUNDS];
	for (unsigned i = 0; i < b->ok; i++)
		v[i] = row->get(&b->res[i]);
	return bench_median(v, b->ok);
}

/* (e) The physical reference: one memcpy of a full frame, median of warm copies. */
static double memcpy_frame_ns(size_t bytes)
{
	enum { N = 21 };
	double v[N];
	/* Page-aligned, touched buffers: page faults are not part of a copy. */
	void *a = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *b = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED || b == MAP_FAILED)
		return NAN;
	memset(a, 0x5a, bytes);
	memset(b, 0xa5, bytes);
	for (int i = 0; i < N; i++) {
		uint64_t t0 = bench_now_ns();
		memcpy(i % 2 ? a : b, i % 2 ? b : a, bytes);
		v[i] = (double)(bench_now_ns() - t0);
	}
	munmap(a, bytes);
	munmap(b, bytes);
	return bench_median(v, N);
}

/* One line of the targets block. */
static void target_line(const char *what, const char *measured, int verdict)
{
	printf("  %-58s %-34s %s\n", what, measured,
	       verdict < 0 ? "n/a"
	       : verdict   ? "PASS"
	                   : "FAIL");
}

/* Every round of @b showed the guest's final frame exactly, and displayed every paced frame. */
static bool all_rounds(const struct backend *b, bool pixels)
{
	for (unsigned i = 0; i < b->ok; i++) {
		const struct bench_result *r = &b->res[i];
		if (pixels ? r->pipelined_bad_pixels || r->paced_bad_pixels
		           : r->paced_displayed != r->paced_submitted)
			return false;
	}
	return b->ok > 0;
}

/*
 * The project's targets, defined with the display receiving every frame
 * (paced mode): the first back-end is judged, the second is the reference.
 */
static void print_targets(const struct backend *be, unsigned nbe, double ref)
{
	const struct backend *v = &be[0], *q = &be[1];
	bool have_v = v->installed && v->ok, have_q = q->installed && q->ok;
	char m[96];
	int verdict;

	printf("\ntargets (%s judged against %s; medians of rounds; paced = every frame "
	       "displayed)\n",
	       v->name, q->name);
	printf("  %-58s %-34s %s\n", "target", "measured", "result");
	if (have_v) {
		static const struct row cpu = { "", g_pcpu, 3 };
		double ms = median_of(v, &cpu);
		snprintf(m, sizeof(m), "%.2fx (%.3f ms vs %.3f ms)", ms * 1e6 / ref, ms, ref / 1e6);
		verdict = ms * 1e6 / ref <= 2.0;
	} else {
		snprintf(m, sizeof(m), "no data");
		verdict = -1;
	}
	target_line("paced backend CPU/frame <= 2x memcpy of one frame", m, verdict);

	for (unsigned i = 0; i < 2; i++) {
		const struct backend *b = &be[i];
		char what[96];
		snprintf(what, sizeof(what), "paced frames displayed == submitted (%s)", b->name);
		if (b->installed && b->ok) {
			static const struct row sub = { "", g_psub, 0 }, disp = { "", g_pdisp, 0 };
			snprintf(m, sizeof(m), "%.0f/%.0f (every round: %s)", median_of(b, &disp),
			         median_of(b, &sub), all_rounds(b, false) ? "yes" : "no");
			verdict = all_rounds(b, false);
		} else {
			snprintf(m, sizeof(m), "no data");
			verdict = -1;
		}
		target_line(what, m, verdict);
		snprintf(what, sizeof(what), "final frame pixel-exact, both modes (%s)", b->name);
		if (b->installed && b->ok) {
			snprintf(m, sizeof(m), "%u/%u rounds exact", b->ok, b->ok);
			verdict = all_rounds(b, true);
		} else {
			snprintf(m, sizeof(m), "no data");
			verdict = -1;
		}
		target_line(what, m, verdict);
	}

	static const struct row idle = { "", g_idle, 1 }, p99 = { "", g_prf99, 1 },
	                        p50 = { "", g_prf50, 1 };
	if (have_v && have_q) {
		double a = median_of(v, &idle), b = median_of(q, &idle);
		snprintf(m, sizeof(m), "%.1f MB vs %.1f MB", a, b);
		target_line("idle RSS <= reference back-end's", m, a <= b);
		a = median_of(v, &p99);
		b = median_of(q, &p99);
		snprintf(m, sizeof(m), "%.1f us vs %.1f us", a, b);
		target_line("paced fenced full flush RTT p99 <= reference's", m, a <= b);
		a = median_of(v, &p50);
		b = median_of(q, &p50);
		snprintf(m, sizeof(m), "%.1f us vs %.1f us", a, b);
		target_line("(info) paced fenced full flush RTT p50 <= reference's", m, a <= b);
	} else {
		target_line("idle RSS <= reference back-end's", "no reference", -1);
		target_line("paced fenced full flush RTT p99 <= reference's", "no reference", -1);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: bench-2d [--backend NAME=PATH]... [--rounds N] [--frames N] [--depth N]\n"
	        "                [--paced N] [--size WxH] [--small N] [--info N] [--latency N]\n"
	        "                [--verbose]\n"
	        "Defaults: vshm-gpu next to this program and qemu=" QEMU_BACKEND ",\n"
	        "3 rounds; 300 pipelined frames of 1920x1080 with 4 in flight, then 300\n"
	        "paced frames (one at a time, each fenced and displayed before the next).\n");
}

static void default_vshm(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		snprintf(buf, len, "vshm-gpu");
		return;
	}
	self[n] = 0;
	/* build/bench/bench-2d -> build/server/vshm-gpu */
	snprintf(buf, len, "%s/../server/vshm-gpu", dirname(self));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "backend", required_argument, NULL, 'b' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "frames", required_argument, NULL, 'f' },
		{ "depth", required_argument, NULL, 'd' },
		{ "paced", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, 's' },
		{ "small", required_argument, NULL, 'm' },
		{ "info", required_argument, NULL, 'i' },
		{ "latency", required_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_params p = {
		.width = 1920,
		.height = 1080,
		.frames = 300,
		.depth = 4,
		.paced_frames = 300,
		.small_cmds = 20000,
		.info_cmds = 5000,
		.latency_samples = 200,
	};
	struct backend be[MAX_BACKENDS];
	static char vshm_default[PATH_MAX + 32];
	unsigned nbe = 0, rounds = 3;
	int c;

	memset(be, 0, sizeof(be));
	while ((c = getopt_long(argc, argv, "b:r:f:d:p:s:m:i:l:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'b': {
			char *eq = strchr(optarg, '=');
			if (!eq || nbe == MAX_BACKENDS) {
				usage(stderr);
				return 2;
			}
			*eq = 0;
			be[nbe].name = optarg;
			be[nbe++].path = eq + 1;
			break;
		}
		case 'r':
			rounds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'f':
			p.frames = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			p.depth = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			p.paced_frames = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			if (sscanf(optarg, "%ux%u", &p.width, &p.height) != 2) {
				usage(stderr);
				return 2;
			}
			break;
		case 'm':
			p.small_cmds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'i':
			p.info_cmds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'l':
			p.latency_samples = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'v':
			p.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (rounds < 1 || rounds > MAX_ROUNDS || !p.frames || !p.width || !p.height ||
	    p.width > 16384 || p.height > 16384 || !p.latency_samples) {
		usage(stderr);
		return 2;
	}
	if (nbe == 0) {
		default_vshm(vshm_default, sizeof(vshm_default));
		be[nbe].name = "vshm-gpu";
		be[nbe++].path = vshm_default;
		be[nbe].name = "qemu";
		be[nbe++].path = QEMU_BACKEND;
	}
	/* A back-end dying mid-write must not kill the benchmark. */
	signal(SIGPIPE, SIG_IGN);
	for (unsigned i = 0; i < nbe; i++)
		be[i].installed = access(be[i].path, X_OK) == 0;

	/* (e) first, on a quiet machine: the unit the paced CPU figure is expressed in. */
	double ref = memcpy_frame_ns((size_t)p.width * p.height * 4);
	printf("bench-2d: %ux%u, %u pipelined frames/run (%u in flight), %u paced frames/run, "
	       "%u rounds, backends alternate\n",
	       p.width, p.height, p.frames, p.depth, p.paced_frames, rounds);
	printf("  memcpy of one %ux%u frame: %.3f ms (%.1f GB/s)\n", p.width, p.height, ref / 1e6,
	       (double)p.width * p.height * 4 / ref);
	for (unsigned i = 0; i < nbe; i++)
		printf("  %-10s %s%s\n", be[i].name, be[i].path,
		       be[i].installed ? "" : "  (not installed)");
	fflush(stdout);

	for (unsigned round = 0; round < rounds; round++) {
		/* Alternate the order too, so neither back-end always runs on a warm cache. */
		for (unsigned k = 0; k < nbe; k++) {
			unsigned i = round % 2 ? nbe - 1 - k : k;
			struct backend *b = &be[i];
			if (!b->installed)
				continue;
			char err[256] = "";
			int ret = bench_run(b->path, &p, &b->res[b->ok], err, sizeof(err));
			if (ret < 0) {
				fprintf(stderr, "round %u, %s: %s\n", round + 1, b->name, err);
				snprintf(b->err, sizeof(b->err), "%s", err);
				continue;
			}
			const struct bench_result *r = &b->res[b->ok++];
			fprintf(stderr,
			        "round %u, %-9s pipelined %.1f fps, %.3f ms CPU/frame, %" PRIu64
			        "/%" PRIu64
			        " displayed; paced %.1f fps, %.3f ms CPU/frame, %" PRIu64
			        "/%" PRIu64 " displayed\n",
			        round + 1, b->name, r->fps, r->cpu_ms_per_frame,
			        r->frames_displayed, r->frames_submitted, r->paced_fps,
			        r->paced_cpu_ms_per_frame, r->paced_displayed, r->paced_submitted);
		}
	}

	/* The table: medians over rounds, ratio first/second back-end. */
	printf("\n%-50s", "figure (median of rounds)");
	for (unsigned i = 0; i < nbe; i++)
		printf(" %14s", be[i].name);
	if (nbe >= 2)
		printf(" %14s", "ratio 1st/2nd");
	printf("\n");
	for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
		double m[MAX_BACKENDS];
		const struct row *row = rows[k].get ? &rows[k] : &rows[k - 1];
		double scale = rows[k].get ? 1 : 1e6 / ref; /* ms -> multiples of (e) */
		printf("%-50s", rows[k].label);
		for (unsigned i = 0; i < nbe; i++) {
			char cell[32];
			m[i] = NAN;
			if (!be[i].installed) {
				snprintf(cell, sizeof(cell), "not installed");
			} else if (!be[i].ok) {
				snprintf(cell, sizeof(cell), "failed");
			} else {
				m[i] = median_of(&be[i], row) * scale;
				snprintf(cell, sizeof(cell), "%.*f", rows[k].decimals, m[i]);
			}
			printf(" %14s", cell);
		}
		if (nbe >= 2) {
			if (isnan(m[0]) || isnan(m[1]) || m[1] == 0)
				printf(" %14s", "-");
			else
				printf(" %14.2f", m[0] / m[1]);
		}
		printf("\n");
	}
	printf("%-50s %14.0f   (%.1f GB/s; the floor for one full-frame copy)\n",
	       "(e) memcpy of one frame (ns)", ref, (double)p.width * p.height * 4 / ref);
	if (nbe >= 2)
		print_targets(be, nbe, ref);
	for (unsigned i = 0; i < nbe; i++)
		if (be[i].installed && be[i].ok < rounds)
			printf("%s: %u of %u rounds failed; last error: %s\n", be[i].name,
			       rounds - be[i].ok, rounds, be[i].err);
	for (unsigned i = 0; i < nbe; i++)
		if (be[i].installed && !be[i].ok)
			return 1;
	return 0;
}
