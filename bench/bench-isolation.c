/* SPDX-License-Identifier: MIT */
/*
 * bench-isolation.c - what one guest, consumer or daemon can do to another.
 *
 * Two vshm-gpu daemons run on this host: a "cluster" guest and an
 * "infotainment" guest, each driven by its own mini VMM (bench-rig.h) and
 * each with its own display consumer thread.
 *
 * (a) Noisy neighbour: the infotainment guest floods full frames (4 in
 *     flight, as fast as the daemon completes them) while the cluster
 *     guest shows 60 Hz frames; the cluster's flush-to-consumer latency
 *     (FRAME arrival - flush_ns) idle vs flood. Repeated for each --isolate
 *     mode: none; nice (cluster side nice -10); fifo (cluster side
 *     SCHED_FIFO 10); pin (cluster side on CPU 1, infotainment side on
 *     CPU 0). "Cluster side" is its daemon (every thread), its consumer
 *     thread and its VMM thread: what a deployment would prioritise.
 * (b) Stalled consumer: a second consumer of the cluster daemon stops
 *     reading. The cluster guest's fenced RESOURCE_FLUSH round trip with
 *     that consumer healthy vs stalled, the daemon's RSS over time, and
 *     when the daemon disconnects the stalled consumer
 *     (--consumer-deadline-ms).
 * (c) Stalled guest: the cluster guest stops flushing; time from its last
 *     flush until its consumer, woken by HEARTBEATs (--heartbeat-ms), first
 *     sees a frame age above one frame period.
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
#define MAX_MODES  4
#define MAX_TRIALS 32

static const char *const mode_names[MAX_MODES] = { "none", "nice", "fifo", "pin" };

struct params {
	const char *exe;
	uint32_t width, height;
	unsigned rounds;
	unsigned frames; /* (a) cluster frames per phase */
	unsigned hz;     /* cluster frame rate */
	unsigned depth;  /* infotainment frames in flight */
	unsigned heartbeat_ms;
	unsigned deadline_ms; /* cluster daemon --consumer-deadline-ms */
	unsigned healthy;     /* (b) frames of the healthy phase */
	unsigned trials;      /* (c) guest stalls per round */
	enum sched_mode modes[MAX_MODES];
	unsigned nmodes;
	bool verbose;
};

struct result {
	/* (a) per mode: cluster FRAME latency, us; flood rate */
	double idle_p50[MAX_MODES], idle_p99[MAX_MODES], idle_max[MAX_MODES];
	double flood_p50[MAX_MODES], flood_p99[MAX_MODES], flood_max[MAX_MODES];
	double flood_fps[MAX_MODES], idle_rtt99[MAX_MODES], flood_rtt99[MAX_MODES];
	double ratio[MAX_MODES]; /* flood p99 / idle p99 of this round */
	/* (b) */
	double ok_rtt_p50, ok_rtt_p99, st_rtt_p50, st_rtt_p99; /* us */
	double ok_lat_p99, st_lat_p99; /* the healthy consumer's FRAME latency, us */
	double ok_rss_growth, st_rss_growth, post_rss_growth; /* kB */
	double st_rss_base;                                   /* MB */
	double disconnect_ms;                                 /* stall start -> daemon hung up */
	double st_samples;           /* flushes timed while the stalled consumer was connected */
	double b_ratio50, b_ratio99; /* stalled / healthy flush RTT of this round */
	double ok_rtt99_late, st_rtt99_late;  /* p99 over the second half of the phase, us */
	double st_late_growth, st_end_growth; /* kB: second half over first half; at the end */
	/* (c) */
	double detect_p50, detect_max; /* ms after the guest's last flush */
	double excess_max;             /* ms after the missed frame was due */
};

struct side {
	struct rig r;
	struct bcons c;
	bool up, cons_up;
};

/* --- scheduling of a side ---------------------------------------------------------- */

struct flood {
	struct rig *r;
	unsigned depth;
	enum sched_mode mode;
	pthread_t thread;
	atomic_bool stop;
	uint64_t frames, t0, t1;
	int error;
};

/*
 * The cluster side gets @mode; for pin, the infotainment side goes to the
 * other CPU. Everything returns to the default with SCHED_MODE_NONE.
 */
static int apply_mode(struct side *cl, struct side *ivi, pid_t main_tid, enum sched_mode mode)
{
	int ret = sched_process(cl->r.be.pid, mode, 1);
	if (ret == 0)
		ret = sched_thread(cl->c.tid, mode, 1);
	if (ret == 0)
		ret = sched_thread(main_tid, mode, 1);
	enum sched_mode other = mode == SCHED_MODE_PIN ? SCHED_MODE_PIN : SCHED_MODE_NONE;
	if (ret == 0)
		ret = sched_process(ivi->r.be.pid, other, 0);
	if (ret == 0)
		ret = sched_thread(ivi->c.tid, other, 0);
	return ret;
}

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	uint64_t ring[64];
	uint64_t head = 0, tail = 0;
	int ret;

	ret = sched_thread(bench_gettid(),
	                   f->mode == SCHED_MODE_PIN ? SCHED_MODE_PIN : SCHED_MODE_NONE, 0);
	f->t0 = bench_now_ns();
	while (ret == 0 && !atomic_load(&f->stop)) {
		if (head - tail >= f->depth) {
			ret = tgd_wait_seq(f->r->g, ring[tail++ % 64], RIG_TIMEOUT_MS);
			continue;
		}
		ret = rig_frame_submit(f->r, &ring[head++ % 64], NULL);
		if (ret == 0)
			f->frames++;
	}
	while (ret == 0 && tail < head)
		ret = tgd_wait_seq(f->r->g, ring[tail++ % 64], RIG_TIMEOUT_MS);
	f->t1 = bench_now_ns();
	f->error = ret;
	return NULL;
}

/* --- (a) --------------------------------------------------------------------------- */

/* @n cluster frames at @hz; FRAME latency and flush round trip percentiles. */
static int cluster_frames(struct side *cl, const struct params *p, unsigned n, double *p50,
                          double *p99, double *max, double *rtt99)
{
	double *lat = calloc(n, sizeof(double)), *rtt = calloc(n, sizeof(double));
	uint64_t period = 1000000000ull / p->hz, next = bench_now_ns() + period;
	int ret = 0;

	if (!lat || !rtt) {
		free(lat);
		free(rtt);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n && ret == 0; i++) {
		struct bcons s;
		bench_sleep_until(next);
		next += period;
		ret = rig_frame_sync(&cl->r, NULL);
		if (ret == 0)
			ret = bcons_wait_tag(&cl->c, cl->r.tag, RIG_TIMEOUT_MS);
		bcons_get(&cl->c, &s);
		lat[i] = (double)(s.last_recv_ns - s.last_flush_ns) / 1e3;
		rtt[i] = (double)cl->r.rtt_ns / 1e3;
	}
	if (ret == 0) {
		*p50 = bench_percentile(lat, n, 50);
		*p99 = bench_percentile(lat, n, 99);
		*max = bench_percentile(lat, n, 100);
		if (rtt99)
			*rtt99 = bench_percentile(rtt, n, 99);
	}
	free(lat);
	free(rtt);
	return ret;
}

static int noisy_neighbour(struct side *cl, struct side *ivi, const struct params *p,
                           unsigned round, struct result *out, char *err, unsigned errlen)
{
	pid_t me = bench_gettid();
	int ret = 0;

	for (unsigned k = 0; k < p->nmodes && ret == 0; k++) {
		/* Rotate the mode order by round. */
		unsigned mi = (k + round) % p->nmodes;
		enum sched_mode mode = p->modes[mi];
		ret = apply_mode(cl, ivi, me, mode);
		if (ret < 0) {
			snprintf(err, errlen, "isolate=%s: %s", mode_names[mode], strerror(-ret));
			break;
		}
		for (int step = 0; step < 2 && ret == 0; step++) {
			bool flooding = (step == 0) == ((round + k) % 2 == 1);
			struct flood f = { .r = &ivi->r, .depth = p->depth, .mode = mode };
			if (flooding) {
				atomic_init(&f.stop, false);
				if (pthread_create(&f.thread, NULL, flood_main, &f)) {
					ret = -EAGAIN;
					break;
				}
				usleep(200000); /* the flood reaches its steady rate */
				ret = cluster_frames(cl, p, p->frames, &out->flood_p50[mi],
				                     &out->flood_p99[mi], &out->flood_max[mi],
				                     &out->flood_rtt99[mi]);
				atomic_store(&f.stop, true);
				pthread_join(f.thread, NULL);
				if (ret == 0 && f.error)
					ret = f.error;
				out->flood_fps[mi] = f.frames / ((double)(f.t1 - f.t0) / 1e9);
			} else {
				ret = cluster_frames(cl, p, p->frames, &out->idle_p50[mi],
				                     &out->idle_p99[mi], &out->idle_max[mi],
				                     &out->idle_rtt99[mi]);
			}
			if (ret < 0)
				snprintf(err, errlen, "(a) isolate=%s, %s: %s", mode_names[mode],
				         flooding ? "flood" : "idle", strerror(-ret));
		}
		out->ratio[mi] = out->flood_p99[mi] / out->idle_p99[mi];
		int r2 = apply_mode(cl, ivi, me, SCHED_MODE_NONE);
		if (ret == 0 && r2 < 0)
			ret = r2;
	}
	return ret;
}

/* --- (b) --------------------------------------------------------------------------- */

struct phase_b {
	double rtt_p50, rtt_p99, lat_p99;
	double rss_growth; /* kB over the phase's first sample */
	double rss_base_kb;
	double samples;
	double disconnect_ms;  /* stalled phase only */
	double post_growth_kb; /* stalled phase: RSS growth including after the disconnect */
	double rtt_p99_late;   /* p99 over the second half of the timed flushes */
	double late_growth_kb; /* max RSS of the second half - max of the first half (>= 0) */
	double end_growth_kb;  /* RSS at the last sample - at the start */
};

/*
 * Cluster frames at @hz with @extra connected (healthy unless @stall).
 * Healthy: @n frames. Stalled: until the daemon hung up on @extra plus
 * @n/2 frames (RSS after the disconnect), at most deadline + 10 s.
 */
static int phase_b(struct side *cl, struct bcons *extra, bool stall, const struct params *p,
                   unsigned n, struct phase_b *out)
{
	unsigned cap = n + (p->deadline_ms + 10000) * p->hz / 1000 + 8, k = 0, after = 0;
	double *rtt = calloc(cap, sizeof(double)), *lat = calloc(cap, sizeof(double));
	uint64_t *rss_s = calloc(cap, sizeof(uint64_t)), rss_last = 0;
	uint64_t period = 1000000000ull / p->hz, next = bench_now_ns() + period;
	uint64_t base = rss_kb(cl->r.be.pid), max_conn = base, max_all = base, t_stall = 0;
	int ret = 0;

	if (!rtt || !lat || !rss_s) {
		free(rtt);
		free(lat);
		free(rss_s);
		return -ENOMEM;
	}
	memset(out, 0, sizeof(*out));
	out->disconnect_ms = NAN;
	if (stall) {
		t_stall = bench_now_ns();
		bcons_stall(extra);
	}
	for (unsigned i = 0; i < cap && ret == 0; i++) {
		struct bcons s, e;
		bench_sleep_until(next);
		next += period;
		bcons_get(extra, &e);
		bool connected = !e.hup_ns;
		ret = rig_frame_sync(&cl->r, NULL);
		if (ret == 0)
			ret = bcons_wait_tag(&cl->c, cl->r.tag, RIG_TIMEOUT_MS);
		if (ret < 0)
			break;
		bcons_get(&cl->c, &s);
		uint64_t rss = rss_kb(cl->r.be.pid);
		rss_last = rss;
		if (rss > max_all)
			max_all = rss;
		if (connected) {
			rtt[k] = (double)cl->r.rtt_ns / 1e3;
			rss_s[k] = rss;
			lat[k++] = (double)(s.last_recv_ns - s.last_flush_ns) / 1e3;
			if (rss > max_conn)
				max_conn = rss;
		}
		if (!stall && i + 1 >= n)
			break;
		if (stall && !connected && ++after >= n / 2)
			break;
	}
	if (ret == 0) {
		struct bcons e;
		bcons_get(extra, &e);
		if (stall && e.hup_ns)
			out->disconnect_ms = (double)(e.hup_ns - t_stall) / 1e6;
		out->samples = k;
		uint64_t m1 = 0, m2 = 0;
		for (unsigned i = 0; i < k; i++) {
			uint64_t *m = i < k / 2 ? &m1 : &m2;
			if (rss_s[i] > *m)
				*m = rss_s[i];
		}
		out->late_growth_kb = m2 > m1 ? (double)(m2 - m1) : 0;
		out->end_growth_kb = (double)rss_last - (double)base;
		/* Sorts the second half in place: after this, only whole-set percentiles of copies.
		 */
		double *late = calloc(k - k / 2 + 1, sizeof(double));
		if (late) {
			memcpy(late, rtt + k / 2, (k - k / 2) * sizeof(double));
			out->rtt_p99_late = bench_percentile(late, k - k / 2, 99);
			free(late);
		}
		out->rtt_p50 = bench_percentile(rtt, k, 50);
		out->rtt_p99 = bench_percentile(rtt, k, 99);
		out->lat_p99 = bench_percentile(lat, k, 99);
		out->rss_growth = (double)(max_conn - base);
		out->post_growth_kb = (double)(max_all - base);
		out->rss_base_kb = (double)base;
	}
	free(rtt);
	free(lat);
	free(rss_s);
	return ret;
}

static int stalled_consumer(struct side *cl, const struct params *p, unsigned round,
                            struct result *out, char *err, unsigned errlen)
{
	struct bcons extra;
	struct phase_b ok, st;
	int ret = 0;

	/* Even rounds: healthy, then stalled. Odd rounds: stalled, then a fresh consumer, healthy.
	 */
	for (int step = 0; step < 2 && ret == 0; step++) {
		bool stall = (step == 0) == (round % 2 == 1);
		ret = bcons_start(&extra, cl->r.disp, "recorder", err, errlen);
		if (ret < 0)
			break;
		usleep(50000);
		ret = phase_b(cl, &extra, stall, p, p->healthy, stall ? &st : &ok);
		if (ret < 0)
			snprintf(err, errlen, "(b) %s phase: %s", stall ? "stalled" : "healthy",
			         strerror(-ret));
		else if (stall && isnan(st.disconnect_ms))
			fprintf(stderr, "round %u: the stalled consumer was never disconnected\n",
			        round + 1);
		bcons_stop(&extra);
	}
	if (ret < 0)
		return ret;
	out->ok_rtt_p50 = ok.rtt_p50;
	out->ok_rtt_p99 = ok.rtt_p99;
	out->ok_lat_p99 = ok.lat_p99;
	out->ok_rss_growth = ok.rss_growth;
	out->st_rtt_p50 = st.rtt_p50;
	out->st_rtt_p99 = st.rtt_p99;
	out->st_lat_p99 = st.lat_p99;
	out->st_rss_growth = st.rss_growth;
	out->post_rss_growth = st.post_growth_kb;
	out->st_rss_base = st.rss_base_kb / 1024;
	out->disconnect_ms = st.disconnect_ms;
	out->st_samples = st.samples;
	out->ok_rtt99_late = ok.rtt_p99_late;
	out->st_rtt99_late = st.rtt_p99_late;
	out->st_late_growth = st.late_growth_kb;
	out->st_end_growth = st.end_growth_kb;
	out->b_ratio50 = st.rtt_p50 / ok.rtt_p50;
	out->b_ratio99 = st.rtt_p99 / ok.rtt_p99;
	return 0;
}

/* --- (c) --------------------------------------------------------------------------- */

static int stalled_guest(struct side *cl, const struct params *p, struct result *out, char *err,
                         unsigned errlen)
{
	double det[MAX_TRIALS], exc[MAX_TRIALS];
	uint64_t period = 1000000000ull / p->hz;
	unsigned n = p->trials;
	int ret = 0;

	for (unsigned t = 0; t < n && ret == 0; t++) {
		uint64_t next = bench_now_ns() + period, t_last = 0;
		struct bcons s;

		bcons_watch_age(&cl->c, 0);
		for (unsigned i = 0; i < 20 && ret == 0; i++) {
			bench_sleep_until(next);
			next += period;
			ret = rig_frame_sync(&cl->r, &t_last);
			if (ret == 0)
				ret = bcons_wait_tag(&cl->c, cl->r.tag, RIG_TIMEOUT_MS);
		}
		if (ret < 0)
			break;
		/* The guest stalls after its last flush at t_last. */
		bcons_watch_age(&cl->c, period);
		uint64_t until = t_last + 20 * period;
		do {
			usleep(1000);
			bcons_get(&cl->c, &s);
		} while (!s.hb_detect_ns && bench_now_ns() < until);
		if (!s.hb_detect_ns) {
			det[t] = exc[t] = INFINITY;
			continue;
		}
		det[t] = (double)(s.hb_detect_ns - t_last) / 1e6;
		exc[t] = det[t] - (double)period / 1e6;
	}
	bcons_watch_age(&cl->c, 0);
	if (ret < 0) {
		snprintf(err, errlen, "(c): %s", strerror(-ret));
		return ret;
	}
	out->detect_p50 = bench_percentile(det, n, 50);
	out->detect_max = bench_percentile(det, n, 100);
	out->excess_max = bench_percentile(exc, n, 100);
	return 0;
}

/* --- rounds -------------------------------------------------------------------------- */

static int side_up(struct side *s, const struct params *p, const char *const *extra,
                   const char *role, char *err, unsigned errlen)
{
	int ret = rig_up(&s->r, p->exe, extra, p->width, p->height, p->verbose, err, errlen);
	s->up = true;
	if (ret == 0)
		ret = bcons_start(&s->c, s->r.disp, role, err, errlen);
	s->cons_up = ret == 0;
	return ret;
}

static void side_down(struct side *s)
{
	if (s->cons_up)
		bcons_stop(&s->c);
	if (s->up)
		rig_down(&s->r);
	s->cons_up = s->up = false;
}

static int one_round(const struct params *p, unsigned round, struct result *out, char *err,
                     unsigned errlen)
{
	struct side cl, ivi;
	char hb[48], dl[48];
	int ret;

	for (size_t i = 0; i < sizeof(*out) / sizeof(double); i++)
		((double *)out)[i] = NAN;
	memset(&cl, 0, sizeof(cl));
	memset(&ivi, 0, sizeof(ivi));
	snprintf(hb, sizeof(hb), "--heartbeat-ms=%u", p->heartbeat_ms);
	snprintf(dl, sizeof(dl), "--consumer-deadline-ms=%u", p->deadline_ms);
	const char *cl_args[] = { hb, dl, NULL };
	ret = side_up(&cl, p, cl_args, "cluster", err, errlen);
	if (ret == 0)
		ret = side_up(&ivi, p, NULL, "ivi", err, errlen);
	if (ret == 0)
		ret = noisy_neighbour(&cl, &ivi, p, round, out, err, errlen);
	if (ret == 0)
		ret = stalled_consumer(&cl, p, round, out, err, errlen);
	if (ret == 0)
		ret = stalled_guest(&cl, p, out, err, errlen);
	side_down(&ivi);
	side_down(&cl);
	return ret;
}

/* --- output ---------------------------------------------------------------------------- */

static double med(const struct result *res, unsigned n, size_t off)
{
	return bench_median_strided((const double *)((const char *)res + off), n,
	                            sizeof(struct result) / sizeof(double));
}

static void row(const struct result *res, unsigned n, const char *label, size_t off, int dec)
{
	printf("%-54s %10.*f  ", label, dec, med(res, n, off));
	for (unsigned i = 0; i < n; i++)
		printf(" %.*f", dec, *(const double *)((const char *)&res[i] + off));
	printf("\n");
}

#define OFF(field) offsetof(struct result, field)

static void print_tables(const struct params *p, const struct result *res, unsigned ok)
{
	char l[80];

	printf("\n%-54s %10s   per round\n", "figure (median of rounds)", "median");
	for (unsigned k = 0; k < p->nmodes; k++) {
		const char *m = mode_names[p->modes[k]];
		snprintf(l, sizeof(l), "(a) [%s] cluster FRAME latency idle p50 (us)", m);
		row(res, ok, l, OFF(idle_p50[k]), 1);
		snprintf(l, sizeof(l), "(a) [%s] cluster FRAME latency idle p99 (us)", m);
		row(res, ok, l, OFF(idle_p99[k]), 1);
		snprintf(l, sizeof(l), "(a) [%s] cluster FRAME latency flood p50 (us)", m);
		row(res, ok, l, OFF(flood_p50[k]), 1);
		snprintf(l, sizeof(l), "(a) [%s] cluster FRAME latency flood p99 (us)", m);
		row(res, ok, l, OFF(flood_p99[k]), 1);
		snprintf(l, sizeof(l), "(a) [%s] cluster FRAME latency flood max (us)", m);
		row(res, ok, l, OFF(flood_max[k]), 1);
		snprintf(l, sizeof(l), "(a) [%s] flood p99 / idle p99 (per round)", m);
		row(res, ok, l, OFF(ratio[k]), 2);
		snprintf(l, sizeof(l), "(a) [%s] cluster flush RTT p99 idle (us)", m);
		row(res, ok, l, OFF(idle_rtt99[k]), 1);
		snprintf(l, sizeof(l), "(a) [%s] cluster flush RTT p99 flood (us)", m);
		row(res, ok, l, OFF(flood_rtt99[k]), 1);
		snprintf(l, sizeof(l), "(a) [%s] infotainment flood frames/s", m);
		row(res, ok, l, OFF(flood_fps[k]), 1);
	}
	row(res, ok, "(b) cluster flush RTT p50, consumer healthy (us)", OFF(ok_rtt_p50), 1);
	row(res, ok, "(b) cluster flush RTT p99, consumer healthy (us)", OFF(ok_rtt_p99), 1);
	row(res, ok, "(b) cluster flush RTT p50, consumer stalled (us)", OFF(st_rtt_p50), 1);
	row(res, ok, "(b) cluster flush RTT p99, consumer stalled (us)", OFF(st_rtt_p99), 1);
	row(res, ok, "(b) flush RTT p99, healthy, 2nd half (us)", OFF(ok_rtt99_late), 1);
	row(res, ok, "(b) flush RTT p99, stalled, 2nd half (us)", OFF(st_rtt99_late), 1);
	row(res, ok, "(b) flush RTT p50 stalled / healthy (per round)", OFF(b_ratio50), 2);
	row(res, ok, "(b) flush RTT p99 stalled / healthy (per round)", OFF(b_ratio99), 2);
	row(res, ok, "(b) other consumer's FRAME p99, healthy (us)", OFF(ok_lat_p99), 1);
	row(res, ok, "(b) other consumer's FRAME p99, stalled (us)", OFF(st_lat_p99), 1);
	row(res, ok, "(b) flushes timed while stalled & connected", OFF(st_samples), 0);
	row(res, ok, "(b) daemon RSS at stall start (MB)", OFF(st_rss_base), 1);
	row(res, ok, "(b) max RSS growth, healthy phase (kB)", OFF(ok_rss_growth), 0);
	row(res, ok, "(b) max RSS growth, stalled until disconnect (kB)", OFF(st_rss_growth), 0);
	row(res, ok, "(b) max RSS growth, stall + after disconnect (kB)", OFF(post_rss_growth), 0);
	row(res, ok, "(b) RSS growth, 2nd half of stall over 1st (kB)", OFF(st_late_growth), 0);
	row(res, ok, "(b) RSS growth at the end, after disconnect (kB)", OFF(st_end_growth), 0);
	row(res, ok, "(b) stall start -> disconnected (ms)", OFF(disconnect_ms), 0);
	row(res, ok, "(c) last flush -> age > period seen, p50 (ms)", OFF(detect_p50), 1);
	row(res, ok, "(c) last flush -> age > period seen, max (ms)", OFF(detect_max), 1);
	row(res, ok, "(c) seen after the missed frame was due, max (ms)", OFF(excess_max), 1);
}

static void print_targets(const struct params *p, const struct result *res, unsigned ok)
{
	char m[96], w[96];
	double period_ms = 1000.0 / p->hz;

	printf("\ntargets (medians of %u rounds; a ratio target must hold for the ratio of the "
	       "medians and for the median of the per-round ratios)\n",
	       ok);
	printf("  %-58s %-40s %s\n", "target", "measured", "result");
	for (unsigned k = 0; k < p->nmodes; k++) {
		double i99 = med(res, ok, OFF(idle_p99[k])), f99 = med(res, ok, OFF(flood_p99[k]));
		double rr = med(res, ok, OFF(ratio[k]));
		snprintf(w, sizeof(w), "(a) [%s] cluster p99 flood <= 1.2x idle",
		         mode_names[p->modes[k]]);
		snprintf(m, sizeof(m), "%.2fx (%.0f vs %.0f us); rounds %.2fx", f99 / i99, f99, i99,
		         rr);
		bench_target_line(w, m, f99 <= 1.2 * i99 && rr <= 1.2);
	}
	double o99 = med(res, ok, OFF(ok_rtt_p99)), s99 = med(res, ok, OFF(st_rtt_p99));
	double o50 = med(res, ok, OFF(ok_rtt_p50)), s50 = med(res, ok, OFF(st_rtt_p50));
	double r50 = med(res, ok, OFF(b_ratio50)), r99 = med(res, ok, OFF(b_ratio99));
	snprintf(m, sizeof(m), "%.2fx (%.0f vs %.0f us); rounds %.2fx", s50 / o50, s50, o50, r50);
	bench_target_line("(b) flush RTT p50 stalled <= 1.1x healthy", m,
	                  s50 <= 1.1 * o50 && r50 <= 1.1);
	snprintf(m, sizeof(m), "%.2fx (%.0f vs %.0f us); rounds %.2fx", s99 / o99, s99, o99, r99);
	bench_target_line("(b) flush RTT p99 stalled <= 1.1x healthy", m,
	                  s99 <= 1.1 * o99 && r99 <= 1.1);
	double worst = 0, disc_worst = 0;
	bool all_disc = true;
	for (unsigned i = 0; i < ok; i++) {
		if (res[i].post_rss_growth > worst)
			worst = res[i].post_rss_growth;
		if (isnan(res[i].disconnect_ms))
			all_disc = false;
		else if (res[i].disconnect_ms > disc_worst)
			disc_worst = res[i].disconnect_ms;
	}
	double late = 0, frame_kb = (double)p->width * p->height * 4 / 1024;
	for (unsigned i = 0; i < ok; i++)
		if (res[i].st_late_growth > late)
			late = res[i].st_late_growth;
	snprintf(m, sizeof(m), "max +%.0f kB (%.2f frames), late +%.0f kB", worst, worst / frame_kb,
	         late);
	bench_target_line("(b) daemon RSS bounded while stalled (flat in 2nd half)", m,
	                  late <= 1024);
	snprintf(w, sizeof(w), "(b) stalled consumer disconnected (deadline %u ms)",
	         p->deadline_ms);
	snprintf(m, sizeof(m), "%s, worst after %.0f ms", all_disc ? "every round" : "NOT always",
	         disc_worst);
	bench_target_line(w, m, all_disc);
	double dmax = 0;
	for (unsigned i = 0; i < ok; i++)
		if (res[i].excess_max > dmax)
			dmax = res[i].excess_max;
	snprintf(w, sizeof(w), "(c) stall seen <= 1 frame period after missed frame (%u ms hb)",
	         p->heartbeat_ms);
	snprintf(m, sizeof(m), "worst +%.1f ms (limit %.1f ms)", dmax, period_ms);
	bench_target_line(w, m, dmax <= period_ms);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-isolation [--exe PATH] [--rounds N] [--frames N] [--hz N]\n"
	           "                       [--depth N] [--heartbeat-ms N] [--deadline-ms N]\n"
	           "                       [--healthy N] [--trials N] [--isolate LIST]\n"
	           "                       [--size WxH] [--verbose]\n"
	           "LIST: comma-separated of none, nice, fifo, pin (default all four).\n"
	           "Defaults: 5 rounds, 150 cluster frames per (a) phase at 60 Hz, 4 flood\n"
	           "frames in flight, heartbeat 5 ms, deadline 1000 ms, 90 healthy frames,\n"
	           "5 guest stalls per round, 1920x1080.\n");
}

static int parse_modes(const char *s, struct params *p)
{
	char buf[128];
	p->nmodes = 0;
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned m;
		for (m = 0; m < MAX_MODES && strcmp(t, mode_names[m]); m++)
			;
		if (m == MAX_MODES || p->nmodes == MAX_MODES)
			return -EINVAL;
		p->modes[p->nmodes++] = (enum sched_mode)m;
	}
	return p->nmodes ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "exe", required_argument, NULL, 'e' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "frames", required_argument, NULL, 'f' },
		{ "hz", required_argument, NULL, 'z' },
		{ "depth", required_argument, NULL, 'd' },
		{ "heartbeat-ms", required_argument, NULL, 'b' },
		{ "deadline-ms", required_argument, NULL, 'D' },
		{ "healthy", required_argument, NULL, 'H' },
		{ "trials", required_argument, NULL, 't' },
		{ "isolate", required_argument, NULL, 'i' },
		{ "size", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char exe[PATH_MAX + 32];
	struct params p = { .width = 1920,
		            .height = 1080,
		            .rounds = 5,
		            .frames = 150,
		            .hz = 60,
		            .depth = 4,
		            .heartbeat_ms = 5,
		            .deadline_ms = 1000,
		            .healthy = 90,
		            .trials = 5 };
	static struct result res[MAX_ROUNDS];
	unsigned ok = 0;
	char err[256] = "";
	int c;

	bench_default_exe(exe, sizeof(exe));
	p.exe = exe;
	parse_modes("none,nice,fifo,pin", &p);
	while ((c = getopt_long(argc, argv, "e:r:f:z:d:b:D:H:t:i:s:vh", opts, NULL)) != -1) {
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
		case 'd':
			p.depth = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			p.heartbeat_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'D':
			p.deadline_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'H':
			p.healthy = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			p.trials = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'i':
			if (parse_modes(optarg, &p) < 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 's':
			if (sscanf(optarg, "%ux%u", &p.width, &p.height) != 2) {
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
	if (p.rounds < 1 || p.rounds > MAX_ROUNDS || p.frames < 1 || p.hz < 1 || p.hz > 1000 ||
	    p.depth < 1 || p.depth > 32 || p.healthy < 2 || p.trials < 1 || p.trials > MAX_TRIALS ||
	    p.width < 1 || p.height < 1) {
		fprintf(stderr, "bench-isolation: bad option value (see --help)\n");
		return 2;
	}
	if (access(p.exe, X_OK) < 0) {
		fprintf(stderr, "bench-isolation: %s: %s\n", p.exe, strerror(errno));
		return 1;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	for (unsigned k = 0; k < p.nmodes; k++)
		if (p.modes[k] == SCHED_MODE_PIN && ncpu < 2) {
			fprintf(stderr,
			        "bench-isolation: isolate=pin needs 2 CPUs, this host has %ld\n",
			        ncpu);
			return 2;
		}

	printf("bench-isolation: %s, two daemons (cluster: --heartbeat-ms=%u "
	       "--consumer-deadline-ms=%u), %ux%u each, %u rounds, cluster at %u Hz, flood %u in "
	       "flight; isolate modes:",
	       p.exe, p.heartbeat_ms, p.deadline_ms, p.width, p.height, p.rounds, p.hz, p.depth);
	for (unsigned k = 0; k < p.nmodes; k++)
		printf(" %s", mode_names[p.modes[k]]);
	printf("; %ld CPUs\n", ncpu);
	fflush(stdout);
	for (unsigned i = 0; i < p.rounds; i++) {
		int ret = one_round(&p, i, &res[ok], err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "round %u: %s\n", i + 1, err);
			continue;
		}
		fprintf(stderr,
		        "round %u: (a) [%s] idle p99 %.0f flood p99 %.0f us; (b) disconnect "
		        "%.0f ms; (c) detect max %.1f ms\n",
		        i + 1, mode_names[p.modes[0]], res[ok].idle_p99[0], res[ok].flood_p99[0],
		        res[ok].disconnect_ms, res[ok].detect_max);
		ok++;
	}
	if (!ok) {
		printf("every round failed; last error: %s\n", err);
		return 1;
	}
	print_tables(&p, res, ok);
	if (ok < p.rounds)
		printf("%u of %u rounds failed; last error: %s\n", p.rounds - ok, p.rounds, err);
	print_targets(&p, res, ok);
	return ok == p.rounds ? 0 : 1;
}
