/* SPDX-License-Identifier: MIT */
/*
 * test-gpu-display-cow.c - a held frame is never rewritten
 * (docs/protocol.md 9.2), end to end: the built vshm-gpu with --display,
 * the mini VMM (gpu-driver.h) flipping between two resources (then drawing
 * into one) as fast as it can, and a slow consumer (clients/consumer.h)
 * that reads the top row of every frame, takes 5 ms, then reads the bottom
 * row. Every guest frame paints all pixels with its frame number, so a
 * frame whose two rows differ was rewritten while held: torn. Must be 0.
 *
 * The daemon's path is the test's first argument (vshm_test_arg(1)).
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend-proc.h"
#include "consumer.h"
#include "gpu-driver.h"
#include "test-runner.h"

#define W 320
#define H 200

static const char *daemon_path(void)
{
	const char *p = vshm_test_arg(1);

	return p ? p : getenv("VSHM_GPU_EXE");
}

struct slow {
	struct vsc *c;
	atomic_bool stop;
	atomic_uint frames, torn, bad;
	atomic_uint last_value;
	int err;
};

static uint32_t px(const struct vsc_frame *f, uint32_t x, uint32_t y)
{
	uint32_t v;
	memcpy(&v, f->pixels + (size_t)y * f->stride + (size_t)x * 4, 4);
	return v;
}

static void on_event(void *data, struct vsc *c, const struct vsc_event *ev)
{
	struct slow *s = data;
	const struct vsc_frame *f = ev->frame;
	uint32_t top, bottom;

	(void)c;
	if (ev->type != VSC_EV_FRAME)
		return;
	if (f->width != W || f->height != H || !f->pixels) {
		s->bad++;
		return;
	}
	/* Read, take our time as a slow recorder would, read again. */
	top = px(f, 0, 0);
	usleep(5000);
	bottom = px(f, W - 1, H - 1);
	if (top != bottom || px(f, W / 2, 0) != top || px(f, W / 2, H - 1) != bottom) {
		s->torn++;
		fprintf(stderr, "torn frame seq %llu: top %u, bottom %u\n",
		        (unsigned long long)f->seq, top, bottom);
	}
	s->last_value = bottom;
	s->frames++;
	/* Released by the library when this returns (auto release). */
}

static void *consumer_thread(void *arg)
{
	struct slow *s = arg;

	while (!s->stop) {
		int r = vsc_run(s->c, 20);
		if (r < 0) {
			s->err = r;
			break;
		}
	}
	return NULL;
}

/* Frame @n: paint resource @res all @n, transfer, show, flush. */
static void frame(struct tgd *g, struct tgd_resource *res, uint32_t n)
{
	tgd_fill(res, TGD_PATTERN_SOLID, n);
	CHECK_OK(tgd_transfer_to_host_2d(g, res->id, 0, 0, W, H, 0, false));
	CHECK_OK(tgd_set_scanout(g, 0, res->id, 0, 0, W, H));
	CHECK_OK(tgd_resource_flush(g, res->id, 0, 0, W, H, false));
}

TEST(slow_consumer_never_sees_a_torn_frame)
{
	const char *exe = daemon_path();
	char dir[] = "/tmp/vshm-cow-XXXXXX", disp[128], arg[200], cmd[200];
	struct tbp be;
	struct tgd *g;
	struct tgd_config gc;
	struct tgd_bringup b = { 0 };
	struct tgd_resource res[2];
	struct vsc_config vc;
	struct slow s = { 0 };
	pthread_t th;
	struct stat st;
	unsigned flip_frames, n;

	CHECK(exe != NULL);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(disp, sizeof(disp), "%s/display.sock", dir);
	snprintf(arg, sizeof(arg), "--display=%s", disp);
	const char *extra[] = { arg, "--mode=320x200", NULL };
	CHECK_OK(tbp_spawn(exe, extra, false, 5000, &be));
	tgd_config_defaults(&gc);
	gc.mem_size = 32ull << 20;
	CHECK_OK(tgd_new(&gc, &g));
	CHECK_OK(tgd_connect(g, be.sock));
	CHECK_OK(tgd_bringup_qemu(g, &b));
	for (int i = 0; i < 250 && stat(disp, &st) < 0; i++)
		usleep(20000);
	CHECK_OK(stat(disp, &st));
	CHECK_OK(tgd_resource_new(g, 1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, W, H, 1, &res[0]));
	CHECK_OK(tgd_resource_new(g, 2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, W, H, 1, &res[1]));
	frame(g, &res[0], 1);

	vsc_config_defaults(&vc);
	vc.role = "recorder";
	CHECK_OK(vsc_connect(disp, &vc, on_event, &s, &s.c));
	CHECK_OK(vsc_wait_ready(s.c, 5000));
	CHECK_OK(vsc_wait_frames(s.c, 1, 5000));
	CHECK(pthread_create(&th, NULL, consumer_thread, &s) == 0);

	/* Page flipping: frame n into resource n % 2 while frame n - 1 shows the other. */
	for (n = 2; n <= 301; n++)
		frame(g, &res[n % 2], n);
	usleep(300000);
	flip_frames = s.frames;
	/* Single-buffered: every frame into the resource on screen. */
	for (; n <= 451; n++)
		frame(g, &res[0], n);
	usleep(300000);
	s.stop = true;
	CHECK(pthread_join(th, NULL) == 0);

	fprintf(stderr, "frames checked: %u (page flip %u), torn %u\n", s.frames, flip_frames,
	        s.torn);
	CHECK_EQ(s.err, 0);
	CHECK_EQ(s.bad, 0);
	CHECK_EQ(s.torn, 0);
	CHECK(flip_frames >= 10);
	CHECK(s.frames > flip_frames);
	CHECK_EQ(s.last_value & 0xffffff, 451); /* the latest frame arrives in the end */
	vsc_destroy(s.c);
	tgd_destroy(g);
	CHECK_EQ(tbp_stop(&be), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK_EQ(system(cmd), 0);
}
