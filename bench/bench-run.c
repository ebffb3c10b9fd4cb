/* SPDX-License-Identifier: MIT */
/* bench-run.c - one measured run of one back-end (see bench-run.h). */
#include "bench-run.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend-proc.h"
#include "gpu-driver.h"
#include "qemu-display-peer.h"
#include "stats.h"

#define RES_ID     1
#define TIMEOUT_MS 10000
/* The frame tag lives in pixel (0,0): X byte 0xff, counter in the low 24 bits. */
#define TAG(f) (0xff000000u | ((f)&0xffffffu))

struct run {
	const struct bench_params *p;
	struct tbp be;
	struct tgd *g;
	struct qdp *d;
	struct tgd_resource res;
	uint32_t tag; /* last tag written */
	char *err;
	unsigned errlen;
};

static int fail(struct run *r, int ret, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct run *r, int ret, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(r->err, r->errlen, "%s: ", strerror(ret < 0 ? -ret : ret));
	va_start(ap, fmt);
	if (n > 0 && (unsigned)n < r->errlen)
		vsnprintf(r->err + n, r->errlen - (unsigned)n, fmt, ap);
	va_end(ap);
	return ret < 0 ? ret : -EIO;
}

static int display_hook(void *data, struct tfe *fe)
{
	return qdp_send_set_socket(data, fe);
}

static bool negotiated(struct qdp *p, const struct qdp_stats *st, void *arg)
{
	/* QEMU's back-end asks first and then says what it uses; vshm-gpu likewise. */
	return st->get_protocol_features >= 1;
}

static int usage(struct run *r, struct tbp_usage *u)
{
	int ret = tbp_usage(r->be.pid, u);
	return ret < 0 ? fail(r, ret, "reading /proc/%d", (int)r->be.pid) : 0;
}

static int bring_up(struct run *r, const char *exe)
{
	struct tgd_config gc;
	struct qdp_config dc;
	struct tgd_bringup b = { .display_hook = display_hook };
	const struct bench_params *p = r->p;
	int ret;

	ret = tbp_spawn(exe, NULL, !p->verbose, TIMEOUT_MS, &r->be);
	if (ret < 0)
		return fail(r, ret, "starting %s", exe);
	tgd_config_defaults(&gc);
	/* One frame of backing plus rings and slots; like a small VM's RAM. */
	gc.mem_size = ((uint64_t)p->width * p->height * 4 + (16ull << 20)) & ~4095ull;
	gc.timeout_ms = TIMEOUT_MS;
	ret = tgd_new(&gc, &r->g);
	if (ret == 0)
		ret = tgd_connect(r->g, r->be.sock);
	if (ret < 0)
		return fail(r, ret, "connecting to %s", r->be.sock);
	qdp_config_defaults(&dc);
	dc.width[0] = p->width;
	dc.height[0] = p->height;
	ret = qdp_new(&dc, &r->d);
	if (ret == 0)
		ret = qdp_start(r->d);
	if (ret < 0)
		return fail(r, ret, "display peer");
	b.display_data = r->d;
	ret = tgd_bringup_qemu(r->g, &b);
	if (ret < 0)
		return fail(r, ret, "vhost-user bring-up");
	ret = qdp_wait(r->d, negotiated, NULL, TIMEOUT_MS);
	if (ret < 0)
		return fail(r, ret, "display protocol negotiation");
	return 0;
}

static int setup_frame(struct run *r)
{
	const struct bench_params *p = r->p;
	int ret = tgd_resource_new(r->g, RES_ID, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, p->width,
	                           p->height, 1, &r->res);
	if (ret < 0)
		return fail(r, ret, "creating the %ux%u resource", p->width, p->height);
	tgd_fill(&r->res, TGD_PATTERN_BARS, 0);
	r->tag = 0;
	r->res.pixels[0] = TAG(0);
	ret = tgd_set_scanout(r->g, 0, RES_ID, 0, 0, p->width, p->height);
	if (ret == 0)
		ret = tgd_transfer_to_host_2d(r->g, RES_ID, 0, 0, p->width, p->height, 0, false);
	if (ret == 0)
		ret = tgd_resource_flush(r->g, RES_ID, 0, 0, p->width, p->height, true);
	if (ret == 0)
		ret = qdp_wait_tag(r->d, TAG(0), TIMEOUT_MS);
	return ret < 0 ? fail(r, ret, "first frame") : 0;
}

/* A frame is complete when its fenced flush returned AND the display has its pixels. */
static int complete_frame(struct run *r, uint64_t flush_seq, uint32_t tag)
{
	int ret = tgd_wait_seq(r->g, flush_seq, TIMEOUT_MS);
	if (ret < 0)
		return fail(r, ret, "waiting for the fenced flush of frame %u", tag);
	ret = qdp_wait_tag(r->d, TAG(tag), TIMEOUT_MS);
	if (ret < 0)
		return fail(r, ret, "waiting for the display to receive frame %u", tag);
	return 0;
}

static int verify_frame(struct run *r, const char *mode, long *bad_out);

struct settle {
	uint64_t want;
};

static bool settled(struct qdp *p, const struct qdp_stats *st, void *arg)
{
	return st->tag_updates >= ((struct settle *)arg)->want;
}

/*
 * (a) Full frames, pipelined: @depth in flight. A back-end may coalesce
 * (latest frame wins), so the display need not receive every one.
 */
static int full_frames(struct run *r, struct bench_result *out)
{
	const struct bench_params *p = r->p;
	unsigned n = p->frames, depth = p->depth ? p->depth : 1;
	uint64_t *seq = calloc(n + 1, sizeof(*seq));
	struct tbp_usage u0, u1;
	uint64_t tags0, tags1;
	unsigned oldest = 1;
	int ret;

	if (!seq)
		return -ENOMEM;
	qdp_last_tag(r->d, &tags0);
	ret = usage(r, &u0);
	uint64_t t0 = bench_now_ns();
	for (unsigned f = 1; f <= n && ret == 0; f++) {
		while (ret == 0 && f - oldest >= depth) {
			ret = complete_frame(r, seq[oldest], r->tag - (f - 1 - oldest));
			oldest++;
		}
		if (ret < 0)
			break;
		/* New content: the tag pixel changes, the whole frame is declared damaged. */
		r->res.pixels[0] = TAG(++r->tag);
		ret = tgd_transfer_async(r->g, RES_ID, 0, 0, p->width, p->height, 0, false, NULL,
		                         NULL, NULL);
		if (ret == 0)
			ret = tgd_flush_async(r->g, RES_ID, 0, 0, p->width, p->height, true, NULL,
			                      NULL, &seq[f]);
		if (ret < 0)
			ret = fail(r, ret, "submitting frame %u", f);
	}
	for (; ret == 0 && oldest <= n; oldest++)
		ret = complete_frame(r, seq[oldest], r->tag - (n - oldest));
	uint64_t t1 = bench_now_ns();
	free(seq);
	if (ret < 0)
		return ret;
	ret = usage(r, &u1);
	if (ret < 0)
		return ret;
	/*
	 * A later frame's UPDATE can carry an earlier frame's tag (the backing
	 * moved on before the transfer ran), so the last UPDATE may still be
	 * in flight here: give the display a moment before counting.
	 */
	struct settle s = { tags0 + n };
	qdp_wait(r->d, settled, &s, 200);
	qdp_last_tag(r->d, &tags1);
	out->fps = (double)n / ((double)(t1 - t0) / 1e9);
	out->cpu_ms_per_frame = (double)(u1.cpu_ns - u0.cpu_ns) / 1e6 / n;
	out->cpu_ms_per_frame_ticks = (double)(u1.cpu_ticks_ns - u0.cpu_ticks_ns) / 1e6 / n;
	out->frames_submitted = n;
	out->frames_displayed = tags1 - tags0;
	return verify_frame(r, "pipelined", &out->pipelined_bad_pixels);
}

/*
 * The display must show exactly the guest's final frame: a run whose
 * display holds other pixels is void, whatever its speed.
 */
static int verify_frame(struct run *r, const char *mode, long *bad_out)
{
	const struct bench_params *p = r->p;
	long first = -1;
	long bad = qdp_compare(r->d, 0, 0, 0, p->width, p->height, r->res.pixels, r->res.stride,
	                       &first);

	*bad_out = bad;
	if (bad < 0)
		return fail(r, (int)bad, "%s: the display has no %ux%u scanout 0", mode, p->width,
		            p->height);
	if (bad > 0) {
		uint32_t got = 0;
		uint32_t x = (uint32_t)(first % p->width), y = (uint32_t)(first / p->width);
		qdp_get_pixel(r->d, 0, x, y, &got);
		return fail(r, -EBADMSG,
		            "%s: final frame wrong on the display: %ld pixels differ, first at "
		            "(%u,%u): 0x%08x, expected 0x%08x",
		            mode, bad, x, y, got, r->res.pixels[(size_t)y * p->width + x]);
	}
	return 0;
}

/* Wait until no UPDATE bytes have arrived for @quiet_ms (at most @max_ms). */
static void quiesce(struct run *r, int quiet_ms, int max_ms)
{
	struct qdp_stats st;
	uint64_t last, t_end = bench_now_ns() + (uint64_t)max_ms * 1000000ull;

	qdp_get_stats(r->d, &st);
	last = st.update_bytes;
	uint64_t t_change = bench_now_ns();
	while (bench_now_ns() < t_end) {
		usleep(5000);
		qdp_get_stats(r->d, &st);
		if (st.update_bytes != last) {
			last = st.update_bytes;
			t_change = bench_now_ns();
		} else if (bench_now_ns() - t_change >= (uint64_t)quiet_ms * 1000000ull) {
			return;
		}
	}
}

struct frame_wait {
	uint64_t bytes; /* cumulative UPDATE bytes that include the whole frame */
	uint32_t tag;
};

/* The display holds the frame's tag and has received a full frame's bytes since the last one. */
static bool frame_received(struct qdp *p, const struct qdp_stats *st, void *arg)
{
	const struct frame_wait *w = arg;
	uint32_t diff = (st->tag - w->tag) & 0xffffffu;

	(void)p;
	return st->tag_updates && diff < 0x800000u && st->update_bytes >= w->bytes;
}

struct flush_done {
	uint64_t ns;
	uint32_t resp_type;
};

static void on_flush_done(void *data, const struct tgd_done *d)
{
	struct flush_done *f = data;
	f->ns = d->done_ns - d->submit_ns;
	f->resp_type = d->resp_type;
}

/*
 * (p) Paced full frames: frame N+1 (full TRANSFER_TO_HOST_2D + fenced full
 * RESOURCE_FLUSH, submitted together) goes out only once frame N's fence
 * completed AND the display received all of frame N's pixels. Nothing can
 * be coalesced, so every back-end displays every frame and the CPU per
 * frame is like for like.
 */
static int paced_frames(struct run *r, struct bench_result *out)
{
	const struct bench_params *p = r->p;
	unsigned n = p->paced_frames;
	uint64_t frame_bytes = (uint64_t)p->width * p->height * 4;
	double *rtt = calloc(n ? n : 1, sizeof(*rtt));
	struct qdp_stats st0, st1;
	struct tbp_usage u0, u1;
	int ret;

	if (!rtt)
		return fail(r, -ENOMEM, "paced frames");
	/* A pipelined run may leave one last UPDATE in the socket: let it land first. */
	quiesce(r, 50, 2000);
	qdp_get_stats(r->d, &st0);
	ret = usage(r, &u0);
	uint64_t t0 = bench_now_ns();
	for (unsigned f = 1; f <= n && ret == 0; f++) {
		struct flush_done fd = { 0, 0 };
		uint64_t seq;

		/* New content: the tag pixel and one row of per-frame hash, then the whole frame.
		 */
		r->res.pixels[0] = TAG(++r->tag);
		if (p->height > 1)
			tgd_fill_rect(&r->res, 0, 1 + f % (p->height - 1), p->width, 1,
			              TGD_PATTERN_HASH, r->tag);
		tgd_set_batch(r->g, true);
		ret = tgd_transfer_async(r->g, RES_ID, 0, 0, p->width, p->height, 0, false, NULL,
		                         NULL, NULL);
		if (ret == 0)
			ret = tgd_flush_async(r->g, RES_ID, 0, 0, p->width, p->height, true,
			                      on_flush_done, &fd, &seq);
		tgd_set_batch(r->g, false);
		if (ret == 0)
			ret = tgd_kick(r->g, TGD_QUEUE_CTRL);
		if (ret < 0) {
			ret = fail(r, ret, "paced: submitting frame %u", f);
			break;
		}
		ret = tgd_wait_seq(r->g, seq, TIMEOUT_MS);
		if (ret < 0) {
			ret = fail(r, ret, "paced: waiting for the fence of frame %u", f);
			break;
		}
		if (fd.resp_type != VIRTIO_GPU_RESP_OK_NODATA) {
			ret = fail(r, -EPROTO, "paced: flush of frame %u answered 0x%x", f,
			           fd.resp_type);
			break;
		}
		rtt[f - 1] = (double)fd.ns / 1e3;
		struct frame_wait w = { st0.update_bytes + (uint64_t)f * frame_bytes, TAG(r->tag) };
		ret = qdp_wait(r->d, frame_received, &w, TIMEOUT_MS);
		if (ret < 0)
			ret = fail(r, ret, "paced: waiting for the display to receive frame %u", f);
	}
	uint64_t t1 = bench_now_ns();
	if (ret == 0)
		ret = usage(r, &u1);
	if (ret == 0) {
		/* Anything extra (a duplicate UPDATE) would show up in the counts: let it land. */
		quiesce(r, 20, 200);
		qdp_get_stats(r->d, &st1);
		out->paced_fps = (double)n / ((double)(t1 - t0) / 1e9);
		out->paced_cpu_ms_per_frame = (double)(u1.cpu_ns - u0.cpu_ns) / 1e6 / n;
		out->paced_cpu_ms_per_frame_ticks =
		        (double)(u1.cpu_ticks_ns - u0.cpu_ticks_ns) / 1e6 / n;
		out->paced_submitted = n;
		out->paced_displayed = st1.tag_updates - st0.tag_updates;
		out->paced_update_bytes = st1.update_bytes - st0.update_bytes;
		out->paced_rtt_p50_us = bench_percentile(rtt, n, 50);
		out->paced_rtt_p99_us = bench_percentile(rtt, n, 99);
		ret = verify_frame(r, "paced", &out->paced_bad_pixels);
	}
	free(rtt);
	if (ret == 0 && (out->paced_displayed != n || out->paced_update_bytes != n * frame_bytes))
		ret = fail(r, -EBADMSG,
		           "paced: %u frames submitted, %llu UPDATEs at (0,0) and %llu pixel "
		           "bytes (%.2f frames) displayed",
		           n, (unsigned long long)out->paced_displayed,
		           (unsigned long long)out->paced_update_bytes,
		           (double)out->paced_update_bytes / (double)frame_bytes);
	return ret;
}

/* (b) Pipelined small commands; tgd_submit() waits for ring space by itself. */
static int small_commands(struct run *r, struct bench_result *out)
{
	const struct bench_params *p = r->p;
	int ret = 0;

	uint64_t t0 = bench_now_ns();
	for (unsigned i = 0; i < p->small_cmds && ret == 0; i++)
		ret = tgd_flush_async(r->g, RES_ID, i % p->width, 0, 1, 1, false, NULL, NULL, NULL);
	if (ret == 0)
		ret = tgd_drain(r->g, TIMEOUT_MS);
	if (ret < 0)
		return fail(r, ret, "1x1 flushes");
	uint64_t t1 = bench_now_ns();
	out->small_flush_per_s = p->small_cmds / ((double)(t1 - t0) / 1e9);

	t0 = bench_now_ns();
	for (unsigned i = 0; i < p->info_cmds && ret == 0; i++)
		ret = tgd_get_display_info_async(r->g, NULL, NULL, NULL);
	if (ret == 0)
		ret = tgd_drain(r->g, TIMEOUT_MS);
	if (ret < 0)
		return fail(r, ret, "GET_DISPLAY_INFO");
	t1 = bench_now_ns();
	out->display_info_per_s = p->info_cmds / ((double)(t1 - t0) / 1e9);
	return 0;
}

/* (c) One fenced flush at a time: issue -> response, in microseconds. */
static int latency(struct run *r, bool full, double *p50, double *p99)
{
	const struct bench_params *p = r->p;
	unsigned n = p->latency_samples;
	double *v = calloc(n ? n : 1, sizeof(*v));
	int ret = 0;

	if (!v)
		return -ENOMEM;
	for (unsigned i = 0; i < n && ret == 0; i++) {
		uint32_t w = full ? p->width : 1, h = full ? p->height : 1;
		r->res.pixels[0] = TAG(++r->tag);
		ret = tgd_transfer_to_host_2d(r->g, RES_ID, 0, 0, w, h, 0, false);
		if (ret < 0)
			break;
		uint64_t t0 = bench_now_ns();
		ret = tgd_resource_flush(r->g, RES_ID, 0, 0, w, h, true);
		v[i] = (double)(bench_now_ns() - t0) / 1e3;
		/* Start every sample with an idle display: no backlog from the previous one. */
		if (ret == 0)
			ret = qdp_wait_tag(r->d, TAG(r->tag), TIMEOUT_MS);
	}
	if (ret == 0) {
		*p50 = bench_percentile(v, n, 50);
		*p99 = bench_percentile(v, n, 99);
	}
	free(v);
	return ret < 0 ? fail(r, ret, "fenced flush latency (%s)", full ? "full" : "1x1") : 0;
}

int bench_run(const char *exe, const struct bench_params *p, struct bench_result *out, char *err,
              unsigned errlen)
{
	struct run r = { .p = p, .err = err, .errlen = errlen };
	struct tbp_usage u;
	int ret;

	memset(out, 0, sizeof(*out));
	r.be.pid = -1;
	ret = bring_up(&r, exe);
	if (ret == 0) {
		/* (d) idle: after bring-up, before any resource exists; let it settle first. */
		usleep(100000);
		ret = usage(&r, &u);
		out->idle_rss_mb = u.rss_kb / 1024.0;
	}
	if (ret == 0)
		ret = setup_frame(&r);
	if (ret == 0)
		ret = full_frames(&r, out);
	if (ret == 0 && p->paced_frames)
		ret = paced_frames(&r, out);
	if (ret == 0)
		ret = small_commands(&r, out);
	if (ret == 0)
		ret = latency(&r, false, &out->rtt_small_p50_us, &out->rtt_small_p99_us);
	if (ret == 0)
		ret = latency(&r, true, &out->rtt_full_p50_us, &out->rtt_full_p99_us);
	if (ret == 0) {
		ret = usage(&r, &u);
		out->peak_rss_mb = u.hwm_kb / 1024.0;
	}
	if (ret == 0 && !tbp_alive(&r.be))
		ret = fail(&r, -ECHILD, "the back-end exited during the run");
	tgd_destroy(r.g);
	qdp_destroy(r.d);
	if (r.be.pid > 0 || r.be.dir[0])
		tbp_stop(&r.be);
	return ret;
}
