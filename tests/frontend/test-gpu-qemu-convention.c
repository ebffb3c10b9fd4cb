/* SPDX-License-Identifier: MIT */
/*
 * test-gpu-qemu-convention.c - the built vshm-gpu, started as QEMU starts
 * its back-end (--socket-path) and brought up in QEMU's message order with
 * a fake QEMU display end (request 33), must show exactly the pixels the
 * guest transferred, accept a replacement display socket, and keep
 * completing fenced flushes while the display stops reading.
 *
 * The daemon's path is the test's first argument (meson passes it). The
 * runner owns main(), so it is taken from vshm_test_arg(1).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend-proc.h"
#include "frontend.h"
#include "gpu-driver.h"
#include "qemu-display-peer.h"
#include "test-runner.h"

#define W 320
#define H 200

static const char *daemon_path(void)
{
	const char *p = vshm_test_arg(1);

	return p ? p : getenv("VSHM_GPU_EXE");
}

struct rig {
	struct tbp be;
	struct tgd *g;
	struct qdp *d;
};

static int hook(void *data, struct tfe *fe)
{
	return qdp_send_set_socket(data, fe);
}

static void rig_up(struct rig *r, uint32_t mode_w, uint32_t mode_h)
{
	const char *exe = daemon_path();
	struct qdp_config dc;
	struct tgd_config gc;
	struct tgd_bringup b = { 0 };

	CHECK(exe != NULL);
	CHECK_OK(tbp_spawn(exe, NULL, false, 5000, &r->be));
	tgd_config_defaults(&gc);
	gc.mem_size = 32ull << 20;
	gc.mem_regions = 2;
	CHECK_OK(tgd_new(&gc, &r->g));
	CHECK_OK(tgd_connect(r->g, r->be.sock));
	qdp_config_defaults(&dc);
	dc.width[0] = mode_w;
	dc.height[0] = mode_h;
	CHECK_OK(qdp_new(&dc, &r->d));
	CHECK_OK(qdp_start(r->d));
	b.display_hook = hook;
	b.display_data = r->d;
	CHECK_OK(tgd_bringup_qemu(r->g, &b));
}

static void rig_down(struct rig *r)
{
	tgd_destroy(r->g);
	qdp_destroy(r->d);
	/* A clean SIGTERM exit is part of QEMU's back-end conventions. */
	CHECK_EQ(tbp_stop(&r->be), 0);
}

/* Wait until the display shows @res's backing exactly in the rect (x, y, w, h). */
static long wait_exact(struct qdp *d, const struct tgd_resource *res, uint32_t x, uint32_t y,
                       uint32_t w, uint32_t h, int timeout_ms)
{
	struct qdp_stats st;
	long bad = -1, first;
	for (int waited = 0; waited <= timeout_ms; waited += 20) {
		qdp_get_stats(d, &st);
		bad = qdp_compare(d, 0, x, y, w, h, res->pixels + (size_t)y * res->width + x,
		                  res->stride, &first);
		if (bad == 0)
			return 0;
		qdp_wait_updates(d, st.updates + 1, 20);
	}
	return bad;
}

static void setup_scanout(struct rig *r, struct tgd_resource *res, uint32_t w, uint32_t h,
                          uint32_t seed)
{
	CHECK_OK(tgd_resource_new(r->g, 1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, w, h, 3, res));
	tgd_fill(res, TGD_PATTERN_HASH, seed);
	CHECK_OK(tgd_set_scanout(r->g, 0, res->id, 0, 0, w, h));
	CHECK_OK(tgd_transfer_to_host_2d(r->g, res->id, 0, 0, w, h, 0, false));
	CHECK_OK(tgd_resource_flush(r->g, res->id, 0, 0, w, h, true));
}

TEST(qemu_convention_exact_pixels)
{
	struct rig r;
	struct tgd_resource res;
	struct virtio_gpu_resp_display_info di;
	struct qdp_stats st;
	uint32_t sw = 0, sh = 0;

	rig_up(&r, W, H);
	/* QEMU is the source of truth for geometry: the guest must see the display's mode. */
	CHECK_OK(tgd_get_display_info(r.g, &di));
	CHECK_EQ(le32toh(di.pmodes[0].r.width), W);
	CHECK_EQ(le32toh(di.pmodes[0].r.height), H);
	CHECK(le32toh(di.pmodes[0].enabled));

	setup_scanout(&r, &res, W, H, 1);
	CHECK_EQ(wait_exact(r.d, &res, 0, 0, W, H, 3000), 0);
	CHECK_OK(qdp_get_scanout(r.d, 0, &sw, &sh));
	CHECK_EQ(sw, W);
	CHECK_EQ(sh, H);

	/* A damaged sub-rectangle, with its offset in the backing, as the Linux driver sends it. */
	tgd_fill_rect(&res, 17, 33, 101, 57, TGD_PATTERN_HASH, 2);
	CHECK_OK(tgd_transfer_to_host_2d(r.g, res.id, 17, 33, 101, 57,
	                                 (uint64_t)33 * res.stride + 17 * 4, false));
	CHECK_OK(tgd_resource_flush(r.g, res.id, 17, 33, 101, 57, true));
	CHECK_EQ(wait_exact(r.d, &res, 0, 0, W, H, 3000), 0);

	qdp_get_stats(r.d, &st);
	CHECK(st.get_protocol_features >= 1);
	CHECK_EQ(st.protocol_errors, 0);
	CHECK_EQ(st.sockets, 1);
	CHECK_OK(tgd_resource_unref(r.g, res.id));
	rig_down(&r);
}

TEST(qemu_convention_cursor)
{
	struct rig r;
	struct tgd_resource cur;
	struct qdp_cursor qc;
	struct qdp_stats st;

	rig_up(&r, W, H);
	CHECK_OK(tgd_resource_new(r.g, 7, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, 64, 64, 1, &cur));
	tgd_fill(&cur, TGD_PATTERN_HASH, 9);
	/* Linux: fenced TRANSFER on the control queue, then UPDATE_CURSOR on the cursor queue. */
	CHECK_OK(tgd_transfer_to_host_2d(r.g, cur.id, 0, 0, 64, 64, 0, true));
	CHECK_OK(tgd_update_cursor(r.g, 0, 100, 50, cur.id, 3, 4));
	for (int i = 0; i < 150; i++) {
		qdp_get_stats(r.d, &st);
		if (st.cursor_updates)
			break;
		usleep(20000);
	}
	CHECK_EQ(st.cursor_updates, 1);
	qdp_get_cursor(r.d, &qc);
	CHECK_EQ(qc.x, 100);
	CHECK_EQ(qc.y, 50);
	CHECK_EQ(qc.hot_x, 3);
	CHECK_EQ(qc.hot_y, 4);
	CHECK_MEM_EQ(qc.pixels, cur.pixels, sizeof(qc.pixels));

	CHECK_OK(tgd_move_cursor(r.g, 0, 200, 150, cur.id));
	for (int i = 0; i < 150; i++) {
		qdp_get_cursor(r.d, &qc);
		if (qc.x == 200)
			break;
		usleep(20000);
	}
	CHECK_EQ(qc.x, 200);
	CHECK_EQ(qc.y, 150);
	CHECK(qc.visible);
	rig_down(&r);
}

TEST(qemu_convention_second_set_socket_replaces)
{
	struct rig r;
	struct tgd_resource res;
	struct qdp_stats st;

	rig_up(&r, W, H);
	setup_scanout(&r, &res, W, H, 3);
	CHECK_EQ(wait_exact(r.d, &res, 0, 0, W, H, 3000), 0);

	/*
	 * QEMU sends a fresh socket on every DRIVER_OK. The peer closes its
	 * old end (as QEMU does on reset), so only the new socket can carry
	 * what follows.
	 */
	CHECK_OK(qdp_send_set_socket(r.d, tgd_tfe(r.g)));
	CHECK_OK(tfe_sync(tgd_tfe(r.g)));
	/* The back-end negotiates again on the new socket. */
	for (int i = 0; i < 150; i++) {
		qdp_get_stats(r.d, &st);
		if (st.get_protocol_features >= 2)
			break;
		usleep(20000);
	}
	CHECK_EQ(st.sockets, 2);
	CHECK(st.get_protocol_features >= 2);

	tgd_fill(&res, TGD_PATTERN_HASH, 4);
	CHECK_OK(tgd_set_scanout(r.g, 0, res.id, 0, 0, W, H));
	CHECK_OK(tgd_transfer_to_host_2d(r.g, res.id, 0, 0, W, H, 0, false));
	CHECK_OK(tgd_resource_flush(r.g, res.id, 0, 0, W, H, true));
	CHECK_EQ(wait_exact(r.d, &res, 0, 0, W, H, 3000), 0);
	qdp_get_stats(r.d, &st);
	CHECK_EQ(st.protocol_errors, 0);
	rig_down(&r);
}

TEST(qemu_convention_stalled_display_never_blocks_fences)
{
	enum { FW = 1920, FH = 1080, FRAMES = 60 };
	struct rig r;
	struct tgd_resource res;
	struct timespec t0, t1, a, b;
	double worst = 0;

	rig_up(&r, FW, FH);
	setup_scanout(&r, &res, FW, FH, 5);
	CHECK_EQ(wait_exact(r.d, &res, 0, 0, FW, FH, 3000), 0);

	/*
	 * 60 full 1080p frames are ~500 MB of UPDATE bytes, far beyond any
	 * socket buffer: a back-end that wrote them synchronously would
	 * block on the first few. Every fenced flush must still complete
	 * within the driver's 50 ms-class budget (1 s here, for slow CI).
	 */
	qdp_set_stalled(r.d, true);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint32_t f = 0; f < FRAMES; f++) {
		res.pixels[0] = 0xff000000u | f;
		CHECK_OK(tgd_transfer_to_host_2d(r.g, res.id, 0, 0, FW, FH, 0, false));
		clock_gettime(CLOCK_MONOTONIC, &a);
		CHECK_OK(tgd_resource_flush(r.g, res.id, 0, 0, FW, FH, true));
		clock_gettime(CLOCK_MONOTONIC, &b);
		double ms =
		        (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
		if (ms > worst)
			worst = ms;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "# %d fenced 1080p flushes, display stalled: %.3f s, worst flush %.1f ms\n",
	        FRAMES, secs, worst);
	CHECK(worst < 1000.0);

	/* Once the display reads again it must end up showing the newest frame exactly. */
	qdp_set_stalled(r.d, false);
	CHECK_EQ(wait_exact(r.d, &res, 0, 0, FW, FH, 10000), 0);
	rig_down(&r);
}
