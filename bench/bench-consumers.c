/* SPDX-License-Identifier: MIT */
/*
 * bench-consumers.c - vshm-gpu's shared-memory display path, measured.
 *
 * One vshm-gpu daemon (built next to this program, or --exe) is driven by
 * the mini VMM at 1920x1080 and served to display consumers written with
 * clients/consumer.h, each in its own thread (bench-rig.h):
 *
 * (a) flush-to-consumer latency: one frame per tick (--hz, 60 by default),
 *     a full TRANSFER_TO_HOST_2D plus a fenced full RESOURCE_FLUSH; the
 *     consumer notes when the FRAME arrived; latency = arrival - the FRAME's
 *     flush_ns (the daemon's receipt of the flush; same host, same
 *     CLOCK_MONOTONIC). The reference is a bare AF_UNIX round trip of a
 *     64-byte message between two threads, measured in the same run: one
 *     ping-pong in every tick right after the frame arrived (same idle
 *     gaps, same CPU state) and a back-to-back batch.
 * (b) full-frame throughput with 1 and with 4 consumers: paced (the next
 *     frame goes out when the fence completed and every consumer has the
 *     frame: nothing coalesced) and pipelined (4 frames in flight, waits
 *     for fences only; consumers get the latest frame). frames/s and the
 *     daemon's CPU per frame (all threads, schedstat).
 *
 * Conditions alternate (and swap order) over --rounds; cells are medians.
 * See bench/README.md.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench-rig.h"
#include "stats.h"

#define MAX_ROUNDS 32
#define MAX_CONS   4

struct params {
	const char *exe;
	uint32_t width, height;
	unsigned rounds;
	unsigned frames;       /* (a) timed frames per round */
	unsigned hz;           /* (a) frame rate; 0 = back to back */
	unsigned bare;         /* (a) back-to-back bare round trips per round */
	unsigned tput;         /* (b) frames per condition per round */
	unsigned depth;        /* (b) pipelined frames in flight */
	unsigned consumers;    /* (b) the "many" condition (4) */
	enum sched_mode sched; /* applied to the daemon and the consumer threads */
	bool verbose;
};

/* One round's figures. NAN: not measured. */
struct result {
	/* (a) */
	double lat_p50, lat_p99, lat_max;  /* FRAME arrival - flush_ns, us */
	double sublat_p50, sublat_p99;     /* FRAME arrival - guest's submit, us */
	double dmn_p50, dmn_p99;           /* FRAME send_ns - flush_ns (in the daemon), us */
	double dlv_p50, dlv_p99;           /* FRAME arrival - send_ns (socket + wake-up), us */
	double rtt_p50, rtt_p99;           /* fenced flush round trip, us */
	double bare_il_p50, bare_il_p99;   /* bare round trip, one per tick, us */
	double bare_b2b_p50, bare_b2b_p99; /* bare round trip, back to back, us */
	double ratio_il;                   /* lat_p99 / bare_il_p99 of this round */
	/* (b), [0]: 1 consumer, [1]: many */
	double paced_fps[2], paced_cpu[2]; /* ms per frame */
	double pipe_fps[2], pipe_cpu[2];   /* ms per frame */
	double pipe_recv[2];               /* frames the slowest consumer received */
	double paced_missed[2];            /* paced frames some consumer did not receive */
};

static int cpu_now(pid_t pid, uint64_t *ns)
{
	struct tbp_usage u;
	int ret = tbp_usage(pid, &u);
	*ns = u.cpu_ns;
	return ret;
}

/* (a) Flush-to-consumer latency, with one bare ping-pong per tick. */
static int latency(struct rig *r, struct bcons *c, struct bare *bare, const struct params *p,
                   struct result *out, char *err, unsigned errlen)
{
	unsigned n = p->frames;
	double *lat = calloc(n, sizeof(double)), *sub = calloc(n, sizeof(double));
	double *rtt = calloc(n, sizeof(double)), *il = calloc(n, sizeof(double));
	double *dmn = calloc(n, sizeof(double)), *dlv = calloc(n, sizeof(double));
	uint64_t period = p->hz ? 1000000000ull / p->hz : 0, next = bench_now_ns() + period;
	int ret = 0;

	if (!lat || !sub || !rtt || !il || !dmn || !dlv) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < n && ret == 0; i++) {
		struct bcons s;
		uint64_t t_sub;

		if (period) {
			bench_sleep_until(next);
			next += period;
		}
		ret = rig_frame_sync(r, &t_sub);
		if (ret == 0)
			ret = bcons_wait_tag(c, r->tag, RIG_TIMEOUT_MS);
		if (ret < 0) {
			snprintf(err, errlen, "latency: frame %u: %s", i, strerror(-ret));
			break;
		}
		bcons_get(c, &s);
		lat[i] = (double)(s.last_recv_ns - s.last_flush_ns) / 1e3;
		sub[i] = (double)(s.last_recv_ns - t_sub) / 1e3;
		dmn[i] = (double)(s.last_send_ns - s.last_flush_ns) / 1e3;
		dlv[i] = (double)(s.last_recv_ns - s.last_send_ns) / 1e3;
		rtt[i] = (double)r->rtt_ns / 1e3;
		il[i] = bare_ping(bare);
		if (il[i] < 0) {
			ret = (int)il[i];
			snprintf(err, errlen, "bare ping failed");
		}
	}
	if (ret == 0) {
		out->lat_p50 = bench_percentile(lat, n, 50);
		out->lat_p99 = bench_percentile(lat, n, 99);
		out->lat_max = bench_percentile(lat, n, 100);
		out->sublat_p50 = bench_percentile(sub, n, 50);
		out->sublat_p99 = bench_percentile(sub, n, 99);
		out->dmn_p50 = bench_percentile(dmn, n, 50);
		out->dmn_p99 = bench_percentile(dmn, n, 99);
		out->dlv_p50 = bench_percentile(dlv, n, 50);
		out->dlv_p99 = bench_percentile(dlv, n, 99);
		out->rtt_p50 = bench_percentile(rtt, n, 50);
		out->rtt_p99 = bench_percentile(rtt, n, 99);
		out->bare_il_p50 = bench_percentile(il, n, 50);
		out->bare_il_p99 = bench_percentile(il, n, 99);
		out->ratio_il = out->lat_p99 / out->bare_il_p99;
	}
out:
	free(lat);
	free(sub);
	free(rtt);
	free(il);
	free(dmn);
	free(dlv);
	return ret;
}

static int bare_batch(struct bare *bare, unsigned n, struct result *out)
{
	double *v = calloc(n ? n : 1, sizeof(double));
	int ret = 0;
	if (!v)
		return -ENOMEM;
	for (unsigned i = 0; i < n && ret == 0; i++) {
		v[i] = bare_ping(bare);
		if (v[i] < 0)
			ret = (int)v[i];
	}
	if (ret == 0) {
		out->bare_b2b_p50 = bench_percentile(v, n, 50);
		out->bare_b2b_p99 = bench_percentile(v, n, 99);
	}
	free(v);
	return ret;
}

/* (b) paced: every consumer receives every frame. */
static int paced(struct rig *r, struct bcons *cs, unsigned ncons, unsigned n, double *fps,
                 double *cpu, double *missed)
{
	uint64_t c0 = 0, c1 = 0, f0[MAX_CONS];
	int ret;

	for (unsigned k = 0; k < ncons; k++) {
		struct bcons s;
		bcons_get(&cs[k], &s);
		f0[k] = s.frames;
	}
	ret = cpu_now(r->be.pid, &c0);
	uint64_t t0 = bench_now_ns();
	for (unsigned i = 0; i < n && ret == 0; i++) {
		ret = rig_frame_sync(r, NULL);
		for (unsigned k = 0; k < ncons && ret == 0; k++)
			ret = bcons_wait_tag(&cs[k], r->tag, RIG_TIMEOUT_MS);
	}
	uint64_t t1 = bench_now_ns();
	if (ret == 0)
		ret = cpu_now(r->be.pid, &c1);
	if (ret < 0)
		return ret;
	*fps = n / ((double)(t1 - t0) / 1e9);
	*cpu = (double)(c1 - c0) / 1e6 / n;
	*missed = 0;
	for (unsigned k = 0; k < ncons; k++) {
		struct bcons s;
		bcons_get(&cs[k], &s);
		if (s.frames - f0[k] < n && n - (s.frames - f0[k]) > *missed)
			*missed = (double)(n - (s.frames - f0[k]));
	}
	return 0;
}

/* (b) pipelined: @depth frames in flight, only fences waited for; consumers get the newest. */
static int pipelined(struct rig *r, struct bcons *cs, unsigned ncons, unsigned n, unsigned depth,
                     double *fps, double *cpu, double *recv)
{
	uint64_t *seq = calloc(n + 1, sizeof(*seq));
	uint64_t c0 = 0, c1 = 0, f0[MAX_CONS];
	unsigned oldest = 1;
	int ret;

	if (!seq)
		return -ENOMEM;
	for (unsigned k = 0; k < ncons; k++) {
		struct bcons s;
		bcons_get(&cs[k], &s);
		f0[k] = s.frames;
	}
	ret = cpu_now(r->be.pid, &c0);
	uint64_t t0 = bench_now_ns();
	for (unsigned f = 1; f <= n && ret == 0; f++) {
		while (ret == 0 && f - oldest >= depth)
			ret = tgd_wait_seq(r->g, seq[oldest++], RIG_TIMEOUT_MS);
		if (ret == 0)
			ret = rig_frame_submit(r, &seq[f], NULL);
	}
	while (ret == 0 && oldest <= n)
		ret = tgd_wait_seq(r->g, seq[oldest++], RIG_TIMEOUT_MS);
	/* Done when every consumer shows the last frame. */
	for (unsigned k = 0; k < ncons && ret == 0; k++)
		ret = bcons_wait_tag(&cs[k], r->tag, RIG_TIMEOUT_MS);
	uint64_t t1 = bench_now_ns();
	free(seq);
	if (ret == 0)
		ret = cpu_now(r->be.pid, &c1);
	if (ret < 0)
		return ret;
	*fps = n / ((double)(t1 - t0) / 1e9);
	*cpu = (double)(c1 - c0) / 1e6 / n;
	*recv = INFINITY;
	for (unsigned k = 0; k < ncons; k++) {
		struct bcons s;
		bcons_get(&cs[k], &s);
		if ((double)(s.frames - f0[k]) < *recv)
			*recv = (double)(s.frames - f0[k]);
	}
	return 0;
}

static int one_round(const struct params *p, unsigned round, struct result *out, char *err,
                     unsigned errlen)
{
	struct rig r;
	struct bcons cs[MAX_CONS];
	struct bare bare;
	unsigned ncons = 0;
	int ret;

	for (size_t i = 0; i < sizeof(*out) / sizeof(double); i++)
		((double *)out)[i] = NAN;
	memset(&bare, 0, sizeof(bare));
	ret = rig_up(&r, p->exe, NULL, p->width, p->height, p->verbose, err, errlen);
	if (ret == 0)
		ret = bcons_start(&cs[ncons++], r.disp, "cluster", err, errlen);
	if (ret == 0 && (ret = bare_open(&bare, 64)) < 0)
		snprintf(err, errlen, "socketpair: %s", strerror(-ret));
	if (ret == 0 && p->sched != SCHED_MODE_NONE) {
		ret = sched_process(r.be.pid, p->sched, 1);
		/* The bare round trip's two threads get the same treatment: like for like. */
		if (ret == 0)
			ret = sched_thread(cs[0].tid, p->sched, 1);
		if (ret == 0)
			ret = sched_thread(bare.echo_tid, p->sched, 1);
		if (ret == 0)
			ret = sched_thread(bench_gettid(), p->sched, 1);
		if (ret < 0)
			snprintf(err, errlen, "--sched: %s", strerror(-ret));
	}
	if (ret < 0)
		goto out;

	/* (a): the batch of bare round trips before or after the frames, alternating. */
	for (int step = 0; step < 2 && ret == 0; step++) {
		if ((step == 0) == (round % 2 == 0))
			ret = bare_batch(&bare, p->bare, out);
		else
			ret = latency(&r, &cs[0], &bare, p, out, err, errlen);
	}
	if (ret < 0)
		goto out;

	/* (b): 1 then many consumers in even rounds, many then 1 in odd ones. */
	for (int step = 0; step < 2 && ret == 0; step++) {
		int many = (step == 0) == (round % 2 == 1);
		unsigned want = many ? p->consumers : 1;
		while (ncons < want && ret == 0) {
			ret = bcons_start(&cs[ncons++], r.disp, "recorder", err, errlen);
			if (ret == 0 && p->sched != SCHED_MODE_NONE)
				ret = sched_thread(cs[ncons - 1].tid, p->sched, 1);
		}
		while (ncons > want)
			bcons_stop(&cs[--ncons]);
		if (ret < 0)
			break;
		/* Let the new consumers' set-up traffic settle. */
		usleep(50000);
		ret = paced(&r, cs, ncons, p->tput, &out->paced_fps[many], &out->paced_cpu[many],
		            &out->paced_missed[many]);
		if (ret == 0)
			ret = pipelined(&r, cs, ncons, p->tput, p->depth, &out->pipe_fps[many],
			                &out->pipe_cpu[many], &out->pipe_recv[many]);
		if (ret < 0)
			snprintf(err, errlen, "throughput with %u consumers: %s", ncons,
			         strerror(-ret));
	}
out:
	if (p->sched != SCHED_MODE_NONE)
		sched_thread(bench_gettid(), SCHED_MODE_NONE, 0);
	bare_close(&bare);
	while (ncons)
		bcons_stop(&cs[--ncons]);
	rig_down(&r);
	return ret;
}

struct row {
	const char *label;
	size_t off; /* offset of the double in struct result */
	int decimals;
};

#define ROW(label, field, dec)                                                                     \
	{                                                                                          \
		label, offsetof(struct result, field), dec                                         \
	}

static double med(const struct result *res, unsigned n, size_t off)
{
	return bench_median_strided((const double *)((const char *)res + off), n,
	                            sizeof(struct result) / sizeof(double));
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-consumers [--exe PATH] [--rounds N] [--frames N] [--hz N]\n"
	           "                       [--bare N] [--tput N] [--depth N] [--consumers N]\n"
	           "                       [--size WxH] [--sched none|nice|fifo] [--verbose]\n"
	           "Defaults: vshm-gpu next to this program, 5 rounds, (a) 300 frames at\n"
	           "60 Hz + 2000 bare round trips, (b) 300 frames per condition, 4 in\n"
	           "flight pipelined, 1 vs 4 consumers, 1920x1080. --sched gives the daemon\n"
	           "(every thread) and the consumer threads nice -10 or SCHED_FIFO 10.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "exe", required_argument, NULL, 'e' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "frames", required_argument, NULL, 'f' },
		{ "hz", required_argument, NULL, 'z' },
		{ "bare", required_argument, NULL, 'b' },
		{ "tput", required_argument, NULL, 't' },
		{ "depth", required_argument, NULL, 'd' },
		{ "consumers", required_argument, NULL, 'c' },
		{ "size", required_argument, NULL, 's' },
		{ "sched", required_argument, NULL, 'S' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char exe[PATH_MAX + 32];
	struct params p = { .width = 1920,
		            .height = 1080,
		            .rounds = 5,
		            .frames = 300,
		            .hz = 60,
		            .bare = 2000,
		            .tput = 300,
		            .depth = 4,
		            .consumers = 4 };
	static struct result res[MAX_ROUNDS];
	unsigned ok = 0;
	char err[256] = "";
	int c;

	bench_default_exe(exe, sizeof(exe));
	p.exe = exe;
	while ((c = getopt_long(argc, argv, "e:r:f:z:b:t:d:c:s:S:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			p.exe = optarg;
			break;
		case 'r':
			p.rounds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'f':
			p.frames = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'z':
			p.hz = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			p.bare = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			p.tput = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			p.depth = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			p.consumers = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			if (sscanf(optarg, "%ux%u", &p.width, &p.height) != 2) {
				usage(stderr);
				return 2;
			}
			break;
		case 'S':
			if (!strcmp(optarg, "none"))
				p.sched = SCHED_MODE_NONE;
			else if (!strcmp(optarg, "nice"))
				p.sched = SCHED_MODE_NICE;
			else if (!strcmp(optarg, "fifo"))
				p.sched = SCHED_MODE_FIFO;
			else {
				usage(stderr);
				return 2;
			}
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
	if (p.rounds < 1 || p.rounds > MAX_ROUNDS || p.frames < 1 || p.bare < 1 || p.tput < 1 ||
	    p.depth < 1 || p.consumers < 2 || p.consumers > MAX_CONS || p.width < 1 ||
	    p.height < 1) {
		fprintf(stderr, "bench-consumers: rounds 1..%d, consumers 2..%d, counts >= 1\n",
		        MAX_ROUNDS, MAX_CONS);
		return 2;
	}
	if (access(p.exe, X_OK) < 0) {
		fprintf(stderr, "bench-consumers: %s: %s\n", p.exe, strerror(errno));
		return 1;
	}

	static const char *const sched_names[] = { "none", "nice", "fifo", "pin" };
	printf("bench-consumers: %s, %ux%u, %u rounds; (a) %u frames at %u Hz + %u bare round "
	       "trips; (b) %u frames per condition, 1 vs %u consumers; sched %s; %ld CPUs\n",
	       p.exe, p.width, p.height, p.rounds, p.frames, p.hz, p.bare, p.tput, p.consumers,
	       sched_names[p.sched], sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout);
	for (unsigned i = 0; i < p.rounds; i++) {
		int ret = one_round(&p, i, &res[ok], err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "round %u: %s\n", i + 1, err);
			continue;
		}
		fprintf(stderr,
		        "round %u: consumer p99 %.0f us, bare p99 %.0f us, cpu %.3f/%.3f ms\n",
		        i + 1, res[ok].lat_p99, res[ok].bare_il_p99, res[ok].paced_cpu[0],
		        res[ok].paced_cpu[1]);
		ok++;
	}
	if (!ok) {
		printf("every round failed; last error: %s\n", err);
		return 1;
	}

	char many_l[8][64];
	const char *base[] = { "(b) paced frames/s",         "(b) paced CPU ms/frame",
		               "(b) paced frames missed",    "(b) pipelined frames/s",
		               "(b) pipelined CPU ms/frame", "(b) pipelined frames recv (min)" };
	for (int k = 0; k < 6; k++)
		snprintf(many_l[k], sizeof(many_l[k]), "%s, %u consumers", base[k], p.consumers);
	const struct row rows[] = {
		ROW("(a) flush -> consumer FRAME p50 (us)", lat_p50, 1),
		ROW("(a) flush -> consumer FRAME p99 (us)", lat_p99, 1),
		ROW("(a) flush -> consumer FRAME max (us)", lat_max, 1),
		ROW("(a)   of which flush -> FRAME queued p50 (us)", dmn_p50, 1),
		ROW("(a)   of which flush -> FRAME queued p99 (us)", dmn_p99, 1),
		ROW("(a)   of which queued -> consumer p50 (us)", dlv_p50, 1),
		ROW("(a)   of which queued -> consumer p99 (us)", dlv_p99, 1),
		ROW("(a) guest submit -> consumer FRAME p50 (us)", sublat_p50, 1),
		ROW("(a) guest submit -> consumer FRAME p99 (us)", sublat_p99, 1),
		ROW("(a) fenced flush round trip p50 (us)", rtt_p50, 1),
		ROW("(a) fenced flush round trip p99 (us)", rtt_p99, 1),
		ROW("(a) bare AF_UNIX RTT, one per tick, p50 (us)", bare_il_p50, 1),
		ROW("(a) bare AF_UNIX RTT, one per tick, p99 (us)", bare_il_p99, 1),
		ROW("(a) FRAME p99 / bare p99 one per tick (per round)", ratio_il, 2),
		ROW("(a) bare AF_UNIX RTT, back to back, p50 (us)", bare_b2b_p50, 1),
		ROW("(a) bare AF_UNIX RTT, back to back, p99 (us)", bare_b2b_p99, 1),
		ROW("(b) paced frames/s, 1 consumer", paced_fps[0], 1),
		ROW("(b) paced CPU ms/frame, 1 consumer", paced_cpu[0], 3),
		ROW("(b) paced frames missed, 1 consumer", paced_missed[0], 0),
		ROW(many_l[0], paced_fps[1], 1),
		ROW(many_l[1], paced_cpu[1], 3),
		ROW(many_l[2], paced_missed[1], 0),
		ROW("(b) pipelined frames/s, 1 consumer", pipe_fps[0], 1),
		ROW("(b) pipelined CPU ms/frame, 1 consumer", pipe_cpu[0], 3),
		ROW("(b) pipelined frames recv (min), 1 consumer", pipe_recv[0], 0),
		ROW(many_l[3], pipe_fps[1], 1),
		ROW(many_l[4], pipe_cpu[1], 3),
		ROW(many_l[5], pipe_recv[1], 0),
	};

	printf("\n%-50s %12s   per round\n", "figure (median of rounds)", "median");
	for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
		printf("%-50s %12.*f  ", rows[k].label, rows[k].decimals,
		       med(res, ok, rows[k].off));
		for (unsigned i = 0; i < ok; i++)
			printf(" %.*f", rows[k].decimals,
			       *(const double *)((const char *)&res[i] + rows[k].off));
		printf("\n");
	}
	if (ok < p.rounds)
		printf("%u of %u rounds failed; last error: %s\n", p.rounds - ok, p.rounds, err);

	char m[96];
	double lat99 = med(res, ok, offsetof(struct result, lat_p99));
	double il99 = med(res, ok, offsetof(struct result, bare_il_p99));
	double b2b99 = med(res, ok, offsetof(struct result, bare_b2b_p99));
	double cpu1 = med(res, ok, offsetof(struct result, paced_cpu[0]));
	double cpun = med(res, ok, offsetof(struct result, paced_cpu[1]));
	double miss1 = med(res, ok, offsetof(struct result, paced_missed[0]));
	double missn = med(res, ok, offsetof(struct result, paced_missed[1]));
	double delta = (cpun - cpu1) / (p.consumers - 1);
	double pcpu1 = med(res, ok, offsetof(struct result, pipe_cpu[0]));
	double pcpun = med(res, ok, offsetof(struct result, pipe_cpu[1]));

	printf("\ntargets (medians of %u rounds; the first must hold for the ratio of the medians "
	       "and for the median of the per-round ratios)\n",
	       ok);
	printf("  %-58s %-40s %s\n", "target", "measured", "result");
	double rr = med(res, ok, offsetof(struct result, ratio_il));
	snprintf(m, sizeof(m), "%.2fx (%.0f vs %.0f us); rounds %.2fx", lat99 / il99, lat99, il99,
	         rr);
	bench_target_line("consumer FRAME p99 <= 2x bare AF_UNIX RTT p99 (same ticks)", m,
	                  lat99 <= 2 * il99 && rr <= 2);
	snprintf(m, sizeof(m), "%.2fx (%.1f us vs %.1f us)", lat99 / b2b99, lat99, b2b99);
	bench_target_line("consumer FRAME p99 <= 2x bare RTT p99 (back to back)", m,
	                  lat99 <= 2 * b2b99);
	snprintf(m, sizeof(m), "%+.3f ms/consumer (%.3f -> %.3f ms)", delta, cpu1, cpun);
	bench_target_line("paced CPU/frame growth per added consumer <= 0.050 ms", m,
	                  delta <= 0.050);
	snprintf(m, sizeof(m), "%+.3f ms/consumer (%.3f -> %.3f ms)",
	         (pcpun - pcpu1) / (p.consumers - 1), pcpu1, pcpun);
	bench_target_line("pipelined CPU/frame growth per added consumer <= 0.050 ms", m,
	                  (pcpun - pcpu1) / (p.consumers - 1) <= 0.050);
	snprintf(m, sizeof(m), "missed %.0f (1) / %.0f (%u)", miss1, missn, p.consumers);
	bench_target_line("paced: every consumer received every frame", m,
	                  miss1 == 0 && missn == 0);
	return ok == p.rounds ? 0 : 1;
}
