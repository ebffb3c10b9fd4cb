/* SPDX-License-Identifier: MIT */
/*
 * test-gpu-display-consumers.c - the built vshm-gpu with --display, driven
 * by the mini VMM (gpu-driver.h), served to consumers written from
 * docs/protocol.md: the consumer library (clients/consumer.h), the
 * vshm-capture binary (exact PNG pixels) and tests/doc-consumer/doc_consumer.py
 * (exact CRC-32).
 *
 * The daemon's path is the test's first argument (vshm_test_arg(1));
 * VSC_CAPTURE_EXE,
 * VSC_DOC_CONSUMER and VSC_PYTHON come from the environment.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend-proc.h"
#include "consumer.h"
#include "frontend.h"
#include "gpu-driver.h"
#include "png-read.h"
#include "test-runner.h"

#define W 320
#define H 200

extern char **environ;

static const char *daemon_path(void)
{
	const char *p = vshm_test_arg(1);

	return p ? p : getenv("VSHM_GPU_EXE");
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v)
		vshm_test_fail(__FILE__, __LINE__, "%s is not set", name);
	return v;
}

struct rig {
	struct tbp be;
	pid_t guard;
	int guard_fd;
	struct tgd *g;
	char dir[64];
	char disp[128];
	char out[128];
	struct tgd_resource res;
};

/*
 * A failed CHECK ends the test process with _exit(), skipping rig_down():
 * a guard process stops the daemon when the test process goes away, unless
 * it was told (one byte) that the test stopped the daemon itself.
 */
static void guard_start(struct rig *r)
{
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	r->guard = fork();
	CHECK(r->guard >= 0);
	if (r->guard == 0) {
		char b;
		close(p[1]);
		ssize_t n = read(p[0], &b, 1);
		if (n <= 0) {
			kill(r->be.pid, SIGTERM);
			usleep(500000);
			kill(r->be.pid, SIGKILL);
		}
		_exit(0);
	}
	close(p[0]);
	r->guard_fd = p[1];
}

static void guard_stop(struct rig *r)
{
	CHECK_EQ(write(r->guard_fd, "x", 1), 1);
	close(r->guard_fd);
	CHECK_EQ(waitpid(r->guard, NULL, 0), r->guard);
}

static void rig_up(struct rig *r)
{
	const char *exe = daemon_path();
	struct tgd_config gc;
	struct tgd_bringup b = { 0 };
	char arg[200];

	CHECK(exe != NULL);
	snprintf(r->dir, sizeof(r->dir), "/tmp/vshm-disp-XXXXXX");
	CHECK(mkdtemp(r->dir) != NULL);
	snprintf(r->disp, sizeof(r->disp), "%s/display.sock", r->dir);
	snprintf(r->out, sizeof(r->out), "%s/stdout.txt", r->dir);
	snprintf(arg, sizeof(arg), "--display=%s", r->disp);
	const char *extra[] = { arg, NULL };
	CHECK_OK(tbp_spawn(exe, extra, false, 5000, &r->be));
	guard_start(r);
	tgd_config_defaults(&gc);
	gc.mem_size = 32ull << 20;
	CHECK_OK(tgd_new(&gc, &r->g));
	CHECK_OK(tgd_connect(r->g, r->be.sock));
	CHECK_OK(tgd_bringup_qemu(r->g, &b));
	/* The display socket is created at start-up. */
	struct stat st;
	for (int i = 0; i < 250 && stat(r->disp, &st) < 0; i++)
		usleep(20000);
	CHECK_OK(stat(r->disp, &st));

	CHECK_OK(tgd_resource_new(r->g, 1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, W, H, 3, &r->res));
	tgd_fill(&r->res, TGD_PATTERN_HASH, 11);
	CHECK_OK(tgd_set_scanout(r->g, 0, r->res.id, 0, 0, W, H));
	CHECK_OK(tgd_transfer_to_host_2d(r->g, r->res.id, 0, 0, W, H, 0, false));
	CHECK_OK(tgd_resource_flush(r->g, r->res.id, 0, 0, W, H, true));
}

static void rig_down(struct rig *r)
{
	char cmd[200];
	tgd_destroy(r->g);
	int st = tbp_stop(&r->be);
	guard_stop(r);
	CHECK_EQ(st, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
	CHECK_EQ(system(cmd), 0);
}

static int run(char *const argv[], const char *out)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st;
	CHECK_OK(posix_spawn_file_actions_init(&fa));
	CHECK_OK(posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600));
	CHECK_OK(posix_spawn_file_actions_adddup2(&fa, 1, 2));
	CHECK_OK(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ));
	posix_spawn_file_actions_destroy(&fa);
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void print_file(const char *path)
{
	char buf[8192];
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	fprintf(stderr, "%s", buf);
}

/* The one PNG vshm-capture wrote into @dir (scanout0-<seq>.png). */
static void find_png(const char *dir, char *out, size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;
	CHECK(d != NULL);
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "scanout0-", 9) && strstr(e->d_name, ".png")) {
			if ((size_t)snprintf(out, cap, "%s/%s", dir, e->d_name) >= cap)
				continue;
			found++;
		}
	closedir(d);
	CHECK_EQ(found, 1);
}

static void check_png_exact(const char *path, const struct tgd_resource *res)
{
	uint8_t *img;
	uint32_t w, h;
	int ct;
	CHECK_OK(tpng_read_rgba(path, &img, &w, &h, &ct));
	CHECK_EQ(w, W);
	CHECK_EQ(h, H);
	long bad = 0;
	for (uint32_t y = 0; y < H; y++)
		for (uint32_t x = 0; x < W; x++) {
			uint32_t px = res->pixels[(size_t)y * res->width + x];
			const uint8_t *q = img + ((size_t)y * W + x) * 4;
			if (q[0] != ((px >> 16) & 0xff) || q[1] != ((px >> 8) & 0xff) ||
			    q[2] != (px & 0xff))
				bad++;
		}
	free(img);
	CHECK_EQ(bad, 0);
}

TEST(display_capture_png_exact_pixels)
{
	struct rig r;
	char png[600];
	rig_up(&r);
	char *argv[] = { (char *)env("VSC_CAPTURE_EXE"),
		         "--socket",
		         r.disp,
		         "--frames",
		         "1",
		         "--out",
		         r.dir,
		         "--timeout",
		         "5",
		         "--role",
		         "recorder",
		         NULL };
	int rc = run(argv, r.out);
	print_file(r.out);
	CHECK_EQ(rc, 0);
	find_png(r.dir, png, sizeof(png));
	check_png_exact(png, &r.res);
	rig_down(&r);
}

TEST(display_capture_qemu_mode_png_exact_pixels)
{
	struct rig r;
	char png[600];
	rig_up(&r);
	char *argv[] = { (char *)env("VSC_CAPTURE_EXE"),
		         "--socket",
		         r.disp,
		         "--qemu-mode",
		         "--frames",
		         "1",
		         "--out",
		         r.dir,
		         "--timeout",
		         "5",
		         NULL };
	int rc = run(argv, r.out);
	print_file(r.out);
	CHECK_EQ(rc, 0);
	find_png(r.dir, png, sizeof(png));
	check_png_exact(png, &r.res);
	rig_down(&r);
}

static uint32_t crc32_bytes(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
	}
	return ~crc;
}

TEST(display_doc_consumer_crc32)
{
	struct rig r;
	char crc_hex[16];
	uint32_t crc = 0;
	rig_up(&r);
	for (uint32_t y = 0; y < H; y++)
		crc = crc32_bytes(crc, (const uint8_t *)(r.res.pixels + (size_t)y * r.res.width),
		                  W * 4);
	snprintf(crc_hex, sizeof(crc_hex), "%08x", crc);
	char *argv[] = { (char *)env("VSC_PYTHON"),
		         (char *)env("VSC_DOC_CONSUMER"),
		         r.disp,
		         "--scanout",
		         "0",
		         "--expect-crc32",
		         crc_hex,
		         "--timeout",
		         "5",
		         NULL };
	int rc = run(argv, r.out);
	print_file(r.out);
	CHECK_EQ(rc, 0);
	rig_down(&r);
}

struct seen {
	struct vsc_frame last;
	uint32_t *pixels;
	unsigned frames, heartbeats;
};

static void on_event(void *data, struct vsc *c, const struct vsc_event *ev)
{
	struct seen *s = data;
	(void)c;
	if (ev->type == VSC_EV_HEARTBEAT)
		s->heartbeats++;
	if (ev->type != VSC_EV_FRAME)
		return;
	const struct vsc_frame *f = ev->frame;
	s->last = *f;
	s->frames++;
	if (f->width == W && f->height == H && f->format_supported)
		for (uint32_t y = 0; y < H; y++)
			memcpy(s->pixels + (size_t)y * W, f->pixels + (size_t)y * f->stride, W * 4);
}

TEST(display_library_frames_damage_heartbeats)
{
	struct rig r;
	struct vsc *c;
	struct seen s = { 0 };
	struct vsc_config cfg;
	rig_up(&r);
	s.pixels = calloc(W * H, 4);
	CHECK(s.pixels != NULL);
	vsc_config_defaults(&cfg);
	cfg.role = "cluster";
	CHECK_OK(vsc_connect(r.disp, &cfg, on_event, &s, &c));
	CHECK_OK(vsc_wait_ready(c, 3000));
	CHECK_EQ(vsc_hello_reply(c)->granted, 1);
	CHECK_OK(vsc_wait_frames(c, 1, 3000));
	CHECK(s.last.full);
	CHECK_EQ(s.last.width, W);
	CHECK_EQ(s.last.height, H);
	CHECK_MEM_EQ(s.pixels, r.res.pixels, (size_t)W * H * 4);
	uint64_t seq1 = s.last.seq;

	/* A damaged rectangle: the next FRAME carries a rect covering it and a newer seq. */
	tgd_fill_rect(&r.res, 17, 33, 101, 57, TGD_PATTERN_HASH, 12);
	CHECK_OK(tgd_transfer_to_host_2d(r.g, r.res.id, 17, 33, 101, 57,
	                                 (uint64_t)33 * r.res.stride + 17 * 4, false));
	CHECK_OK(tgd_resource_flush(r.g, r.res.id, 17, 33, 101, 57, true));
	CHECK_OK(vsc_wait_frames(c, 2, 3000));
	CHECK(s.last.seq > seq1);
	CHECK(s.last.full || s.last.num_rects >= 1);
	if (!s.last.full) {
		bool covered = false;
		for (uint32_t i = 0; i < s.last.num_rects; i++) {
			const struct vsc_rect *rc = &s.last.rects[i];
			if (rc->x <= 17 && rc->y <= 33 && rc->x + rc->width >= 118 &&
			    rc->y + rc->height >= 90)
				covered = true;
		}
		CHECK(covered);
	}
	CHECK_MEM_EQ(s.pixels, r.res.pixels, (size_t)W * H * 4);
	CHECK(s.last.flush_ns <= s.last.send_ns);
	CHECK(s.last.send_ns <= s.last.recv_ns);

	/* Heartbeats keep coming; the frame age is measured against the last flush. */
	unsigned hb0 = s.heartbeats;
	uint32_t period = vsc_hello_reply(c)->heartbeat_period_ms;
	CHECK(vsc_run(c, (int)period * 3 + 100) == 0);
	CHECK(s.heartbeats > hb0);
	bool known;
	uint64_t now = vsc_now_ns();
	uint64_t age = vsc_frame_age_ns(c, 0, now, &known);
	CHECK(known);
	CHECK(age >= (uint64_t)period * 1000000ull * 2);
	struct vsc_scanout_info si;
	CHECK_OK(vsc_scanout(c, 0, &si));
	CHECK_EQ(si.hb_last_seq, s.last.seq);

	/* STATS: this consumer got two frames, none reclaimed (we released at once). */
	CHECK_OK(vsc_request_stats(c));
	for (int i = 0; i < 40 && !vsc_stats(c, NULL, NULL); i++)
		CHECK_OK(vsc_run(c, 50));
	const struct vshm_display_stats *st = vsc_stats(c, NULL, NULL);
	CHECK(st != NULL);
	CHECK_EQ(st->consumer_id, vsc_hello_reply(c)->consumer_id);
	CHECK(st->frames_sent >= 2);
	CHECK_EQ(st->frames_reclaimed, 0);
	vsc_destroy(c);
	free(s.pixels);
	rig_down(&r);
}
