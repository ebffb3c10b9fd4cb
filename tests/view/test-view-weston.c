/* SPDX-License-Identifier: MIT */
/*
 * test-view-weston.c - vshm-view under a real compositor: Debian bookworm's
 * weston 10, headless backend with the pixman renderer (no linux-dmabuf) and
 * the desktop shell (bookworm's kiosk-shell shows nothing on headless: no
 * seat to activate the surface with), started with --debug so that its weston_screenshooter
 * protocol is exposed; weston-screenshooter writes the output as PNG.
 *
 * The guest side is the mini VMM (gpu-driver.h) driving the built vshm-gpu
 * with --display; vshm-view shows scanout 0; the screenshot must contain the
 * guest's image pixel-exactly (located by search, so window placement does
 * not matter). Also checked: damage updates, the disconnected placeholder
 * and reconnect, --frames, and that vshm-view reports the wl_shm zero-copy
 * path with no copies and no linux-dmabuf (pixman).
 *
 * The daemon is argv[1] (vshm_test_arg(1)); VV_VIEW_EXE,
 * VV_WESTON, VV_SCREENSHOOTER come from the environment (run-view-tests.sh).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend-proc.h"
#include "gpu-driver.h"
#include "png-read.h"
#include "test-runner.h"

#define W        320
#define H        200
#define OUT_W    640
#define OUT_H    480
#define WL_NAME  "wl-vshm-view-test"
#define BG_DISCO 0x401818u

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
	char dir[64]; /* XDG_RUNTIME_DIR, logs, sockets */
	char disp[128];
	char view_out[128];
	pid_t weston, view;
	struct tbp be;
	struct tgd *g;
	struct tgd_resource res;
	bool daemon_up;
};

/* fork + exec with stdout/stderr to @out; the child dies with the (forked) test. */
static pid_t spawn_out(char *const argv[], const char *out)
{
	pid_t parent = getpid(), pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || getppid() != parent || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execve(argv[0], argv, environ);
		_exit(127);
	}
	return pid;
}

static int wait_exit(pid_t pid, int timeout_ms)
{
	int st;
	for (int i = 0; i < timeout_ms / 10; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static void slurp(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
	buf[n] = 0;
	if (f)
		fclose(f);
}

static void daemon_up(struct rig *r, uint32_t seed)
{
	struct tgd_config gc;
	struct tgd_bringup b = { 0 };
	struct stat st;
	char arg[200];

	snprintf(arg, sizeof(arg), "--display=%s", r->disp);
	const char *extra[] = { arg, NULL };
	CHECK_OK(tbp_spawn(daemon_path(), extra, true, 5000, &r->be));
	tgd_config_defaults(&gc);
	gc.mem_size = 32ull << 20;
	CHECK_OK(tgd_new(&gc, &r->g));
	CHECK_OK(tgd_connect(r->g, r->be.sock));
	CHECK_OK(tgd_bringup_qemu(r->g, &b));
	for (int i = 0; i < 250 && stat(r->disp, &st) < 0; i++)
		usleep(20000);
	CHECK_OK(stat(r->disp, &st));
	CHECK_OK(tgd_resource_new(r->g, 1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, W, H, 3, &r->res));
	tgd_fill(&r->res, TGD_PATTERN_HASH, seed);
	CHECK_OK(tgd_set_scanout(r->g, 0, r->res.id, 0, 0, W, H));
	CHECK_OK(tgd_transfer_to_host_2d(r->g, r->res.id, 0, 0, W, H, 0, false));
	CHECK_OK(tgd_resource_flush(r->g, r->res.id, 0, 0, W, H, true));
	r->daemon_up = true;
}

static void daemon_down(struct rig *r)
{
	tgd_destroy(r->g);
	r->g = NULL;
	CHECK_EQ(tbp_stop(&r->be), 0);
	r->daemon_up = false;
}

static void rig_up(struct rig *r, const char *const *view_args)
{
	char sock[200], log[160], wlog[160];
	struct stat st;

	snprintf(r->dir, sizeof(r->dir), "/tmp/vshm-view-XXXXXX");
	CHECK(mkdtemp(r->dir) != NULL);
	CHECK_OK(chmod(r->dir, 0700));
	setenv("XDG_RUNTIME_DIR", r->dir, 1);
	setenv("WAYLAND_DISPLAY", WL_NAME, 1);
	snprintf(r->disp, sizeof(r->disp), "%s/display.sock", r->dir);
	snprintf(r->view_out, sizeof(r->view_out), "%s/view.txt", r->dir);
	snprintf(wlog, sizeof(wlog), "--log=%s/weston.log", r->dir);
	snprintf(log, sizeof(log), "%s/weston.out", r->dir);
	char *wargv[] = { (char *)env("VV_WESTON"),
		          "--backend=headless-backend.so",
		          "--use-pixman",
		          "--shell=desktop-shell.so",
		          "--socket=" WL_NAME,
		          "--width=640",
		          "--height=480",
		          "--idle-time=0",
		          "--no-config",
		          "--debug",
		          wlog,
		          NULL };
	r->weston = spawn_out(wargv, log);
	snprintf(sock, sizeof(sock), "%s/%s", r->dir, WL_NAME);
	for (int i = 0; i < 500 && stat(sock, &st) < 0; i++)
		usleep(10000);
	CHECK_OK(stat(sock, &st));

	char *vargv[24] = { (char *)env("VV_VIEW_EXE"), "--socket", r->disp };
	int n = 3;
	for (; view_args && *view_args && n < 22; view_args++)
		vargv[n++] = (char *)*view_args;
	vargv[n] = NULL;
	r->view = spawn_out(vargv, r->view_out);
}

static void rig_down(struct rig *r)
{
	char cmd[200];
	if (r->view > 0) {
		kill(r->view, SIGKILL);
		waitpid(r->view, NULL, 0);
	}
	if (r->daemon_up)
		daemon_down(r);
	kill(r->weston, SIGTERM);
	CHECK(wait_exit(r->weston, 5000) >= 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
	CHECK_EQ(system(cmd), 0);
}

/* Take a screenshot of the whole output as RGBA (caller frees). */
static uint8_t *screenshot(struct rig *r)
{
	char shots[160], log[200], png[600];
	uint8_t *img = NULL;
	uint32_t w, h;
	struct dirent *e;
	DIR *d;
	pid_t pid;

	snprintf(shots, sizeof(shots), "%s/shots", r->dir);
	mkdir(shots, 0700);
	snprintf(log, sizeof(log), "%s/screenshooter.txt", r->dir);
	char *argv[] = { (char *)env("VV_SCREENSHOOTER"), NULL };
	posix_spawn_file_actions_t fa;
	CHECK_OK(posix_spawn_file_actions_init(&fa));
	CHECK_OK(
	        posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600));
	CHECK_OK(posix_spawn_file_actions_adddup2(&fa, 1, 2));
	CHECK_OK(posix_spawn_file_actions_addchdir_np(&fa, shots));
	CHECK_OK(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ));
	posix_spawn_file_actions_destroy(&fa);
	CHECK_EQ(wait_exit(pid, 5000), 0);
	CHECK((d = opendir(shots)) != NULL);
	while ((e = readdir(d))) {
		if (!strstr(e->d_name, ".png"))
			continue;
		snprintf(png, sizeof(png), "%s/%s", shots, e->d_name);
		if (!img) {
			CHECK_OK(tpng_read_rgba(png, &img, &w, &h, NULL));
			CHECK_EQ(w, OUT_W);
			CHECK_EQ(h, OUT_H);
		}
		char keep[200];
		snprintf(keep, sizeof(keep), "%s/last-screenshot.png", r->dir);
		rename(png, keep); /* kept for a failing test's post-mortem */
	}
	closedir(d);
	CHECK(img != NULL);
	return img;
}

static bool px_eq(const uint8_t *q, uint32_t px)
{
	return q[0] == ((px >> 16) & 0xff) && q[1] == ((px >> 8) & 0xff) && q[2] == (px & 0xff);
}

/* Where the guest image appears exactly in @img: true and (*ox, *oy). */
static bool find_exact(const uint8_t *img, const struct tgd_resource *res, int *ox, int *oy)
{
	for (int y0 = 0; y0 + H <= OUT_H; y0++)
		for (int x0 = 0; x0 + W <= OUT_W; x0++) {
			bool ok = true;
			for (uint32_t y = 0; y < H && ok; y++)
				for (uint32_t x = 0; x < W && ok; x++)
					ok = px_eq(img + ((size_t)(y0 + y) * OUT_W + x0 + x) * 4,
					           res->pixels[(size_t)y * res->width + x]);
			if (ok) {
				*ox = x0;
				*oy = y0;
				return true;
			}
		}
	return false;
}

/* Screenshot until the guest image is on screen exactly (at most @ms). */
static bool wait_exact(struct rig *r, int ms, int *ox, int *oy)
{
	for (int t = 0; t < ms; t += 100) {
		uint8_t *img = screenshot(r);
		bool ok = find_exact(img, &r->res, ox, oy);
		free(img);
		if (ok)
			return true;
		usleep(100000);
	}
	return false;
}

static void view_stop(struct rig *r, char *out, size_t cap)
{
	kill(r->view, SIGTERM);
	CHECK_EQ(wait_exit(r->view, 5000), 0);
	r->view = 0;
	slurp(r->view_out, out, cap);
	fprintf(stderr, "%s", out);
}

/* The latency line of vshm-view's report, as a TAP comment. */
static void print_latency(const char *out)
{
	const char *l = strstr(out, "flush-to-present latency");
	if (l) {
		const char *e = strchr(l, '\n');
		printf("# %.*s\n", e ? (int)(e - l) : (int)strlen(l), l);
	}
}

TEST_NO_LEAK_CHECK(view_shm_zero_copy_exact_pixels_and_damage)
{
	struct rig r = { 0 };
	static char out[16384];
	int ox, oy, ox2, oy2;

	rig_up(&r, (const char *const[]){ "--timeout", "60", NULL });
	daemon_up(&r, 11);
	CHECK(wait_exact(&r, 10000, &ox, &oy));
	printf("# guest image found exactly at (%d,%d) of the %dx%d output\n", ox, oy, OUT_W,
	       OUT_H);

	/* Damage: a rect with another pattern, then many small flushes for latency. */
	tgd_fill_rect(&r.res, 40, 30, 100, 60, TGD_PATTERN_HASH, 99);
	CHECK_OK(tgd_transfer_to_host_2d(r.g, 1, 40, 30, 100, 60, 30ull * r.res.stride + 40 * 4,
	                                 false));
	CHECK_OK(tgd_resource_flush(r.g, 1, 40, 30, 100, 60, true));
	CHECK(wait_exact(&r, 10000, &ox2, &oy2));
	CHECK_EQ(ox2, ox);
	CHECK_EQ(oy2, oy);
	for (uint32_t i = 0; i < 120; i++) {
		uint32_t x = (i * 37) % (W - 16), y = (i * 23) % (H - 16);
		tgd_fill_rect(&r.res, x, y, 16, 16, TGD_PATTERN_SOLID, 0xff000000u | i * 0x010203u);
		CHECK_OK(tgd_transfer_to_host_2d(r.g, 1, x, y, 16, 16,
		                                 (uint64_t)y * r.res.stride + x * 4, false));
		CHECK_OK(tgd_resource_flush(r.g, 1, x, y, 16, 16, true));
		usleep(16000);
	}
	CHECK(wait_exact(&r, 10000, &ox2, &oy2));

	view_stop(&r, out, sizeof(out));
	/* pixman: no linux-dmabuf, and vshm-view says so. */
	CHECK(strstr(out, "linux-dmabuf no") != NULL);
	if (strstr(out, "wl_shm zero-copy: yes")) {
		CHECK(strstr(out, "-> wl_shm zero-copy") != NULL);
		CHECK(strstr(out, "path wl_shm zero-copy") != NULL);
		CHECK(strstr(out, "copies 0") != NULL);
		printf("# wl_shm zero-copy path\n");
	} else {
		/*
		 * libwayland-server <= 1.21 (bookworm) maps every pool writable, so a
		 * read-only memfd is refused: vshm-view must have probed that and
		 * reported the counted copy fallback (no protocol error, no crash).
		 */
		CHECK(strstr(out, "wl_shm zero-copy: no") != NULL);
		CHECK(strstr(out, "-> copy into wl_shm") != NULL);
		CHECK(strstr(out, "path copy into wl_shm") != NULL);
		CHECK(strstr(out, "copies 0") == NULL);
		printf("# wl_shm zero-copy refused by this compositor: copy fallback reported\n");
	}
	CHECK(strstr(out, "p50") != NULL);
	print_latency(out);
	rig_down(&r);
}

TEST_NO_LEAK_CHECK(view_disconnect_placeholder_and_reconnect)
{
	struct rig r = { 0 };
	static char out[16384];
	int ox, oy, ox2, oy2;

	rig_up(&r, (const char *const[]){ "--timeout", "60", NULL });
	daemon_up(&r, 5);
	CHECK(wait_exact(&r, 10000, &ox, &oy));

	daemon_down(&r);
	/* The window stays, showing the "disconnected" placeholder in its place. */
	bool placeholder = false;
	for (int t = 0; t < 50 && !placeholder; t++) {
		uint8_t *img = screenshot(&r);
		const uint8_t *corner = img + ((size_t)(oy + H - 1) * OUT_W + ox + W - 1) * 4;
		const uint8_t *mid = img + ((size_t)(oy + H / 2) * OUT_W + ox + W / 2) * 4;
		placeholder = px_eq(corner, BG_DISCO) && px_eq(mid, BG_DISCO);
		free(img);
		if (!placeholder)
			usleep(100000);
	}
	CHECK(placeholder);

	/* The daemon returns (same display socket, new picture): vshm-view reconnects. */
	daemon_up(&r, 77);
	CHECK(wait_exact(&r, 10000, &ox2, &oy2));
	view_stop(&r, out, sizeof(out));
	CHECK(strstr(out, "disconnected") != NULL);
	CHECK(strstr(out, "reconnects 1") != NULL);
	rig_down(&r);
}

TEST_NO_LEAK_CHECK(view_frames_option_exits_after_n_presented)
{
	struct rig r = { 0 };
	static char out[16384];

	rig_up(&r, (const char *const[]){ "--frames", "30", "--timeout", "30", "--overlay", NULL });
	daemon_up(&r, 3);
	int rc = -1;
	for (uint32_t i = 0; i < 1000; i++) {
		tgd_fill_rect(&r.res, 0, 0, 32, 32, TGD_PATTERN_SOLID, 0xff000000u | i * 0x030507u);
		CHECK_OK(tgd_transfer_to_host_2d(r.g, 1, 0, 0, 32, 32, 0, false));
		CHECK_OK(tgd_resource_flush(r.g, 1, 0, 0, 32, 32, true));
		usleep(8000);
		int st;
		if (waitpid(r.view, &st, WNOHANG) == r.view) {
			rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
			r.view = 0;
			break;
		}
	}
	slurp(r.view_out, out, sizeof(out));
	fprintf(stderr, "%s", out);
	CHECK_EQ(rc, 0);
	CHECK(strstr(out, "presented 30") != NULL || strstr(out, "presented 31") != NULL);
	print_latency(out);
	rig_down(&r);
}

/* ---- guest cursor: the copy path's converted pixels --------------------------------------- */

/* Wait until @needle appears in vshm-view's output (at most @ms). */
static bool wait_output(struct rig *r, const char *needle, int ms)
{
	static char buf[65536];
	for (int t = 0;; t += 20) {
		slurp(r->view_out, buf, sizeof(buf));
		if (strstr(buf, needle))
			return true;
		if (t >= ms)
			return false;
		usleep(20000);
	}
}

/* CRC-32 (IEEE, reflected; zlib's crc32()), table-driven. */
static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
	static uint32_t table[256];
	uint32_t crc = 0xffffffffu;

	if (!table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
	for (size_t i = 0; i < n; i++)
		crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return crc ^ 0xffffffffu;
}

/*
 * A 64x64 B8G8R8A8 cursor (u32 0xAARRGGBB, premultiplied alpha as a DRM
 * cursor plane carries it) with every kind of alpha: row 0 transparent,
 * row 1 opaque, the rest a per-pixel mix.
 */
static void cursor_fill(const struct tgd_resource *c, uint32_t seed)
{
	for (uint32_t y = 0; y < 64; y++)
		for (uint32_t x = 0; x < 64; x++) {
			uint32_t rgb =
			        tgd_pattern_pixel(TGD_PATTERN_HASH, x, y, 64, 64, seed) & 0xffffffu;
			uint32_t a = y == 0 ? 0 : y == 1 ? 0xff : ((x * 7 + y * 13) ^ seed) & 0xff;
			uint32_t r = ((rgb >> 16) & 0xff) * a / 255,
			         g = ((rgb >> 8) & 0xff) * a / 255, b = (rgb & 0xff) * a / 255;
			c->pixels[y * 64 + x] = a << 24 | r << 16 | g << 8 | b;
		}
}

/*
 * What Wayland must get: ARGB8888 premultiplied, little-endian bytes B, G,
 * R, A. The guest's pixels are premultiplied already, so they pass through.
 */
static uint32_t cursor_expected_crc(const struct tgd_resource *c)
{
	static uint8_t bytes[64 * 64 * 4];
	for (size_t i = 0; i < 64 * 64; i++) {
		uint32_t px = c->pixels[i];
		uint8_t *o = bytes + i * 4;
		o[0] = (uint8_t)px;
		o[1] = (uint8_t)(px >> 8);
		o[2] = (uint8_t)(px >> 16);
		o[3] = (uint8_t)(px >> 24);
	}
	return crc32_ieee(bytes, sizeof(bytes));
}

TEST_NO_LEAK_CHECK(view_cursor_copied_once_per_shape_exact_pixels)
{
	struct rig r = { 0 };
	struct tgd_resource c1, c2;
	static char out[16384];
	char want[160];
	int ox, oy;

	rig_up(&r, (const char *const[]){ "--timeout", "60", NULL });
	daemon_up(&r, 21);
	CHECK(wait_exact(&r, 10000, &ox, &oy));
	bool zero_copy = wait_output(&r, "wl_shm zero-copy: yes", 0);

	/* Shape 1 (Linux: fenced TRANSFER, then UPDATE_CURSOR on the cursor queue). */
	CHECK_OK(tgd_resource_new(r.g, 2, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, 64, 64, 1, &c1));
	cursor_fill(&c1, 0x5a);
	CHECK_OK(tgd_transfer_to_host_2d(r.g, c1.id, 0, 0, 64, 64, 0, true));
	CHECK_OK(tgd_update_cursor(r.g, 0, 100, 50, c1.id, 5, 7));
	uint32_t crc1 = cursor_expected_crc(&c1);
	if (!zero_copy) {
		snprintf(want, sizeof(want),
		         "hot 5,7 -> copy into wl_shm (ARGB8888 premultiplied, "
		         "16384 bytes, crc32 0x%08x)",
		         crc1);
		CHECK(wait_output(&r, want, 10000));
		printf("# cursor shape 1 copied, crc32 0x%08x as uploaded\n", crc1);
	}
	/* Moves are not shape changes: no copy. */
	for (uint32_t i = 0; i < 30; i++) {
		CHECK_OK(tgd_move_cursor(r.g, 0, 10 + i * 7, 20 + i * 5, c1.id));
		usleep(5000);
	}
	/* Hidden (Linux: MOVE_CURSOR with resource 0), then shape 2 (ordered after the hide). */
	CHECK_OK(tgd_move_cursor(r.g, 0, 50, 50, 0));
	usleep(300000); /* the daemon sends cursor state: let it send the hidden one */
	CHECK_OK(tgd_resource_new(r.g, 3, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, 64, 64, 1, &c2));
	cursor_fill(&c2, 0xc3);
	CHECK_OK(tgd_transfer_to_host_2d(r.g, c2.id, 0, 0, 64, 64, 0, true));
	CHECK_OK(tgd_update_cursor(r.g, 0, 60, 60, c2.id, 0, 63));
	uint32_t crc2 = cursor_expected_crc(&c2);
	CHECK(crc2 != crc1);
	if (!zero_copy) {
		snprintf(want, sizeof(want),
		         "hot 0,63 -> copy into wl_shm (ARGB8888 premultiplied, "
		         "16384 bytes, crc32 0x%08x)",
		         crc2);
		CHECK(wait_output(&r, want, 10000));
		printf("# cursor shape 2 copied, crc32 0x%08x as uploaded\n", crc2);
	}
	for (uint32_t i = 0; i < 30; i++) {
		CHECK_OK(tgd_move_cursor(r.g, 0, 200 - i * 3, 100 + i, c2.id));
		usleep(5000);
	}
	usleep(200000);
	/* The cursor is the pointer's image, never drawn into the guest image. */
	CHECK(wait_exact(&r, 10000, &ox, &oy));

	view_stop(&r, out, sizeof(out));
	const char *line = strstr(out, "vshm-view: cursor: path ");
	CHECK(line != NULL);
	const char *eol = strchr(line, '\n');
	printf("# %.*s\n", eol ? (int)(eol - line) : (int)strlen(line), line);
	if (zero_copy) {
		CHECK(!strncmp(line, "vshm-view: cursor: path wl_shm zero-copy,", 41));
		CHECK(strstr(line, "shapes copied 0,") != NULL);
	} else {
		/* Exactly one copy per shape, none for the 60 moves. */
		CHECK(!strncmp(line, "vshm-view: cursor: path copy into wl_shm,", 41));
		CHECK(strstr(line, "shapes copied 2,") != NULL);
		CHECK(strstr(out, "cannot be copied") == NULL);
	}
	CHECK(strstr(line, "hides 1,") != NULL);
	rig_down(&r);
}
