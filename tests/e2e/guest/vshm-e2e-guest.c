/*
 * vshm-e2e-guest - guest half of the vshm virtio-gpu end-to-end test.
 *
 * Runs inside the test VM (static binary in the initramfs, started by /init
 * once per test).  It drives KMS on the virtio_gpu DRM device and the fbcon
 * text console, and tells the host what to check through lines on stdout
 * (the serial console):
 *
 *   @@INFO/@@WARN text        logged by the host
 *   @@DATA kind k=v ...       data the host needs for a check
 *   @@FAIL test reason        the test failed inside the guest
 *   @@CHECK kind k=v ...      the host checks the display now; the guest waits
 *                             for one line on stdin and keeps the display as it
 *                             is until then
 *
 * Tests (one per invocation, argument syntax as on the kernel command line):
 *   modes                     list every connector, its modes and its EDID
 *   fbcon                     draw known text on tty1 (font + palette sent)
 *   kms:WxH:flip|dirty:N      N frames of the test pattern on head 0, either
 *                             page flips between two dumb buffers (with
 *                             flip-complete event) or DIRTYFB on one buffer
 *   heads:N                   a different pattern on each of N heads
 *   cursor                    64x64 ARGB cursor images, moves, hide
 *   demo:S[:WxH]              not a test: S seconds of animation on every head
 *                             (scripts/demo.sh), page flips between two dumb
 *                             buffers per head; default 1024x768
 *
 * Test pattern (tests/e2e/run.py implements the same function), XRGB8888,
 * pixel (x, y) of a WxH frame, seed s, 32-bit counter c:
 *   border    x == 0 || y == 0 || x == W-1 || y == H-1       -> 0xFF8000
 *   counter   y in [H-40, H-24), x in [24 + 20i, 40 + 20i), i = 0..31:
 *             bit (31 - i) of c ? 0xFFFFFF : 0x303030
 *   bars      y < H/2: BARS[(x * 8 / W + s) % 8]
 *   ramp      y < 3H/4: R = x*255/(W-1), G = 255 - R, B = 85*s & 255
 *   texture   else: R = x & 255, G = y & 255, B = (3x + 5y + s) & 255
 *
 * Only kernel UAPI headers are used (libdrm-dev's copies of drm.h etc.).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kd.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <drm.h>
#include <drm_fourcc.h>
#include <drm_mode.h>
#include <virtgpu_drm.h>

#define MAX_HEADS 4

static const char *g_test = "?";
static int g_failed;

/* ------------------------------------------------------------ utilities */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;
	printf("@@FAIL %s ", g_test);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	g_failed = 1;
}

/* Ask the host to check something and wait for its answer line. */
static void host_check(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void host_check(const char *fmt, ...)
{
	va_list ap;
	char line[256];

	printf("@@CHECK ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	struct pollfd p = { .fd = 0, .events = POLLIN };
	if (poll(&p, 1, 120 * 1000) <= 0) {
		fail("no answer from the host within 120 s");
		return;
	}
	if (read(0, line, sizeof(line)) < 0)
		fail("reading the host's answer: %s", strerror(errno));
}

static int ioctl_retry(int fd, unsigned long req, void *arg)
{
	int r;
	do
		r = ioctl(fd, req, arg);
	while (r < 0 && (errno == EINTR || errno == EAGAIN));
	return r;
}

static void hexline(const char *prefix, const uint8_t *p, size_t n)
{
	printf("%s", prefix);
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

/* ------------------------------------------------------------ pattern */

static const uint32_t BARS[8] = { 0xFFFFFF, 0xFFFF00, 0x00FFFF, 0x00FF00,
	                          0xFF00FF, 0xFF0000, 0x0000FF, 0x000000 };

static uint32_t pattern_px(int x, int y, int w, int h, int seed, uint32_t counter)
{
	if (x == 0 || y == 0 || x == w - 1 || y == h - 1)
		return 0xFF8000;
	if (y >= h - 40 && y < h - 24 && x >= 24) {
		int i = (x - 24) / 20;
		if (i < 32 && (x - 24) % 20 < 16)
			return (counter >> (31 - i)) & 1 ? 0xFFFFFF : 0x303030;
	}
	if (y < h / 2)
		return BARS[(x * 8 / w + seed) % 8];
	if (y < 3 * h / 4) {
		uint32_t r = (uint32_t)x * 255 / (w - 1);
		return r << 16 | (255 - r) << 8 | ((85u * seed) & 255);
	}
	return (uint32_t)(x & 255) << 16 | (uint32_t)(y & 255) << 8 |
	       ((3u * x + 5u * y + seed) & 255);
}

static void draw_pattern(uint8_t *map, uint32_t pitch, int w, int h, int seed, uint32_t counter)
{
	for (int y = 0; y < h; y++) {
		uint32_t *row = (uint32_t *)(map + (size_t)y * pitch);
		for (int x = 0; x < w; x++)
			row[x] = pattern_px(x, y, w, h, seed, counter);
	}
}

/* Redraw only the counter cells (rows H-40..H-25). */
static void draw_counter(uint8_t *map, uint32_t pitch, int w, int h, int seed, uint32_t counter)
{
	for (int y = h - 40; y < h - 24; y++) {
		uint32_t *row = (uint32_t *)(map + (size_t)y * pitch);
		for (int x = 24; x < 24 + 32 * 20 && x < w - 1; x++)
			row[x] = pattern_px(x, y, w, h, seed, counter);
	}
}

static uint32_t counter_value(int seed, uint32_t frame)
{
	return 0xC3000000u | (uint32_t)(seed & 15) << 20 | (frame & 0xFFFFF);
}

/* Cursor image k (1 or 2), 64x64 ARGB8888.  Every pixel is either opaque or
 * fully transparent black, so premultiplied and straight alpha are the same
 * bytes: whatever the display side does about premultiplication, the image
 * must arrive unchanged.  run.py has the same function. */
static uint32_t cursor_px(int k, int x, int y)
{
	if (k == 1) {
		if ((x - 32) * (x - 32) + (y - 32) * (y - 32) > 30 * 30)
			return 0;
		return 0xFF000000u | (uint32_t)(x * 4) << 16 | (uint32_t)(y * 4) << 8 |
		       (uint32_t)((x ^ y) * 4 & 255);
	}
	if (x + y < 64 && (x < 6 || y < 6 || x + y > 56))
		return 0xFF101010u;
	if (x + y < 56 && x >= 6 && y >= 6)
		return 0xFF000000u | (uint32_t)(255 - x) << 16 | 0x80u << 8 | (uint32_t)(y * 3);
	return 0;
}

/* ------------------------------------------------------------ DRM */

struct output {
	uint32_t conn_id, crtc_id, conn_type, conn_type_id, connection;
	uint32_t mm_w, mm_h;
	uint32_t nmodes;
	struct drm_mode_modeinfo *modes;
	uint32_t edid_blob;
};

struct card {
	int fd;
	int nout;
	struct output out[MAX_HEADS];
	uint32_t crtcs[MAX_HEADS];
	int ncrtc;
};

static int open_virtio_gpu(void)
{
	for (int i = 0; i < 16; i++) {
		char path[32], name[32] = "";
		snprintf(path, sizeof(path), "/dev/dri/card%d", i);
		int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct drm_version v = { .name = name, .name_len = sizeof(name) - 1 };
		if (ioctl_retry(fd, DRM_IOCTL_VERSION, &v) == 0 && strcmp(name, "virtio_gpu") == 0)
			return fd;
		close(fd);
	}
	fail("no /dev/dri/card* is virtio_gpu");
	return -1;
}

static uint32_t edid_property(int fd, uint32_t nprops, const uint32_t *props, const uint64_t *vals)
{
	for (uint32_t i = 0; i < nprops; i++) {
		struct drm_mode_get_property gp = { .prop_id = props[i] };
		if (ioctl_retry(fd, DRM_IOCTL_MODE_GETPROPERTY, &gp))
			continue;
		if (strcmp(gp.name, "EDID") == 0)
			return (uint32_t)vals[i];
	}
	return 0;
}

static int card_open(struct card *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = open_virtio_gpu();
	if (c->fd < 0)
		return -1;
	struct drm_set_client_cap cap = { .capability = DRM_CLIENT_CAP_UNIVERSAL_PLANES,
		                          .value = 1 };
	ioctl_retry(c->fd, DRM_IOCTL_SET_CLIENT_CAP, &cap);

	struct drm_mode_card_res r = { 0 };
	if (ioctl_retry(c->fd, DRM_IOCTL_MODE_GETRESOURCES, &r)) {
		fail("GETRESOURCES: %s", strerror(errno));
		return -1;
	}
	uint32_t conns[MAX_HEADS * 2] = { 0 }, crtcs[MAX_HEADS * 2] = { 0 };
	uint32_t encs[MAX_HEADS * 4] = { 0 }, fbs[64] = { 0 };
	if (r.count_connectors > MAX_HEADS * 2 || r.count_crtcs > MAX_HEADS * 2 ||
	    r.count_encoders > MAX_HEADS * 4 || r.count_fbs > 64) {
		fail("too many DRM objects");
		return -1;
	}
	r.connector_id_ptr = (uintptr_t)conns;
	r.crtc_id_ptr = (uintptr_t)crtcs;
	r.encoder_id_ptr = (uintptr_t)encs;
	r.fb_id_ptr = (uintptr_t)fbs;
	if (ioctl_retry(c->fd, DRM_IOCTL_MODE_GETRESOURCES, &r)) {
		fail("GETRESOURCES: %s", strerror(errno));
		return -1;
	}
	c->ncrtc = r.count_crtcs < MAX_HEADS ? r.count_crtcs : MAX_HEADS;
	memcpy(c->crtcs, crtcs, sizeof(c->crtcs));
	c->nout = r.count_connectors < MAX_HEADS ? r.count_connectors : MAX_HEADS;
	for (int i = 0; i < c->nout; i++) {
		struct output *o = &c->out[i];
		struct drm_mode_get_connector gc = { .connector_id = conns[i] };
		/* first call probes (GET_EDID / display info are re-read) */
		if (ioctl_retry(c->fd, DRM_IOCTL_MODE_GETCONNECTOR, &gc)) {
			fail("GETCONNECTOR %u: %s", conns[i], strerror(errno));
			return -1;
		}
		uint32_t nm = gc.count_modes, np = gc.count_props;
		struct drm_mode_modeinfo *modes = calloc(nm + 1, sizeof(*modes));
		uint32_t *props = calloc(np + 1, sizeof(uint32_t));
		uint64_t *vals = calloc(np + 1, sizeof(uint64_t));
		uint32_t encids[8];
		gc.modes_ptr = (uintptr_t)modes;
		gc.props_ptr = (uintptr_t)props;
		gc.prop_values_ptr = (uintptr_t)vals;
		gc.encoders_ptr = (uintptr_t)encids;
		gc.count_encoders = gc.count_encoders > 8 ? 8 : gc.count_encoders;
		if (ioctl_retry(c->fd, DRM_IOCTL_MODE_GETCONNECTOR, &gc) || gc.count_modes > nm ||
		    gc.count_props > np) {
			fail("GETCONNECTOR %u (2nd): %s", conns[i], strerror(errno));
			return -1;
		}
		o->conn_id = gc.connector_id;
		o->conn_type = gc.connector_type;
		o->conn_type_id = gc.connector_type_id;
		o->connection = gc.connection;
		o->mm_w = gc.mm_width;
		o->mm_h = gc.mm_height;
		o->nmodes = gc.count_modes;
		o->modes = modes;
		o->edid_blob = edid_property(c->fd, gc.count_props, props, vals);
		/* virtio-gpu: head i = connector i = CRTC i (one encoder each) */
		o->crtc_id = i < c->ncrtc ? crtcs[i] : 0;
		free(props);
		free(vals);
	}
	return 0;
}

/* A mode WxH for head i: from the connector's list (preferred first), else a
 * made-up one (heads that are not connected have no modes). */
static int find_mode(struct card *c, int head, int w, int h, struct drm_mode_modeinfo *m)
{
	struct output *o = &c->out[head];
	int best = -1;
	for (uint32_t i = 0; i < o->nmodes; i++) {
		if (o->modes[i].hdisplay != w || o->modes[i].vdisplay != h)
			continue;
		if (best < 0 || (o->modes[i].type & DRM_MODE_TYPE_PREFERRED))
			best = (int)i;
	}
	if (best >= 0) {
		*m = o->modes[best];
		return 0;
	}
	memset(m, 0, sizeof(*m));
	m->hdisplay = w;
	m->hsync_start = w + 48;
	m->hsync_end = w + 80;
	m->htotal = w + 160;
	m->vdisplay = h;
	m->vsync_start = h + 3;
	m->vsync_end = h + 9;
	m->vtotal = h + 30;
	m->vrefresh = 60;
	m->clock = (uint32_t)((uint64_t)m->htotal * m->vtotal * 60 / 1000);
	m->type = DRM_MODE_TYPE_USERDEF;
	snprintf(m->name, sizeof(m->name), "%dx%d", w, h);
	printf("@@INFO head %d (connection %u) lists no %dx%d mode; using a made-up one\n", head,
	       o->connection, w, h);
	return 1;
}

struct fb {
	uint32_t handle, pitch, fb_id;
	uint64_t size;
	uint8_t *map;
	int w, h;
};

static int fb_create(int fd, int w, int h, uint32_t format, struct fb *f)
{
	memset(f, 0, sizeof(*f));
	f->w = w;
	f->h = h;
	struct drm_mode_create_dumb cd = { .width = w, .height = h, .bpp = 32 };
	if (ioctl_retry(fd, DRM_IOCTL_MODE_CREATE_DUMB, &cd)) {
		fail("CREATE_DUMB %dx%d: %s", w, h, strerror(errno));
		return -1;
	}
	f->handle = cd.handle;
	f->pitch = cd.pitch;
	f->size = cd.size;
	if (format) {
		struct drm_mode_fb_cmd2 fc = { .width = w, .height = h, .pixel_format = format };
		fc.handles[0] = f->handle;
		fc.pitches[0] = f->pitch;
		if (ioctl_retry(fd, DRM_IOCTL_MODE_ADDFB2, &fc)) {
			fail("ADDFB2 %dx%d: %s", w, h, strerror(errno));
			return -1;
		}
		f->fb_id = fc.fb_id;
	}
	struct drm_mode_map_dumb md = { .handle = f->handle };
	if (ioctl_retry(fd, DRM_IOCTL_MODE_MAP_DUMB, &md)) {
		fail("MAP_DUMB: %s", strerror(errno));
		return -1;
	}
	f->map = mmap(NULL, f->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, md.offset);
	if (f->map == MAP_FAILED) {
		f->map = NULL;
		fail("mmap dumb: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void fb_destroy(int fd, struct fb *f)
{
	if (f->map)
		munmap(f->map, f->size);
	if (f->fb_id)
		ioctl_retry(fd, DRM_IOCTL_MODE_RMFB, &f->fb_id);
	if (f->handle) {
		struct drm_mode_destroy_dumb dd = { .handle = f->handle };
		ioctl_retry(fd, DRM_IOCTL_MODE_DESTROY_DUMB, &dd);
	}
	memset(f, 0, sizeof(*f));
}

static int set_crtc(struct card *c, int head, uint32_t fb_id, struct drm_mode_modeinfo *m)
{
	struct drm_mode_crtc sc = { .crtc_id = c->out[head].crtc_id,
		                    .fb_id = fb_id,
		                    .count_connectors = 1,
		                    .mode_valid = 1,
		                    .mode = *m };
	sc.set_connectors_ptr = (uintptr_t)&c->out[head].conn_id;
	if (ioctl_retry(c->fd, DRM_IOCTL_MODE_SETCRTC, &sc)) {
		fail("SETCRTC head %d %ux%u: %s", head, m->hdisplay, m->vdisplay, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Wait until the device has answered everything queued on the control queue
 * so far.  Primary-plane updates of dumb buffers carry no fence, so flip
 * events and DIRTYFB return before the host has seen the pixels.  A 2D
 * VIRTGPU_RESOURCE_CREATE does carry a fence; VIRTGPU_WAIT blocks until the
 * host has answered it (and, answering in order, everything before it).
 */
static int drain(int fd)
{
	struct drm_virtgpu_resource_create rc = {
		.target = 2, /* PIPE_TEXTURE_2D */
		.format = 2, /* VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM */
		.bind = 2,   /* render target */
		.width = 4,
		.height = 4,
		.depth = 1,
		.array_size = 1,
		.size = 4096,
		.stride = 16,
	};
	double t0 = now_ms();
	if (ioctl_retry(fd, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE, &rc)) {
		printf("@@WARN drain: VIRTGPU_RESOURCE_CREATE: %s\n", strerror(errno));
		return -1;
	}
	struct drm_virtgpu_3d_wait wt = { .handle = rc.bo_handle };
	int r = ioctl_retry(fd, DRM_IOCTL_VIRTGPU_WAIT, &wt);
	if (r)
		printf("@@WARN drain: VIRTGPU_WAIT: %s\n", strerror(errno));
	struct drm_gem_close gc = { .handle = rc.bo_handle };
	ioctl_retry(fd, DRM_IOCTL_GEM_CLOSE, &gc);
	double dt = now_ms() - t0;
	if (dt > 1000)
		printf("@@WARN drain took %.0f ms\n", dt);
	return r;
}

/* ------------------------------------------------------------ modes */

static int test_modes(void)
{
	struct card c;
	if (card_open(&c))
		return 1;
	char drv[32] = "", date[32] = "", desc[64] = "";
	struct drm_version v = { .name = drv,
		                 .name_len = 31,
		                 .date = date,
		                 .date_len = 31,
		                 .desc = desc,
		                 .desc_len = 63 };
	if (ioctl_retry(c.fd, DRM_IOCTL_VERSION, &v) == 0)
		printf("@@INFO driver %s %d.%d.%d\n", drv, v.version_major, v.version_minor,
		       v.version_patchlevel);
	static const struct {
		int id;
		const char *name;
	} params[] = {
		{ VIRTGPU_PARAM_3D_FEATURES, "3d" },
		{ VIRTGPU_PARAM_CAPSET_QUERY_FIX, "capset_fix" },
		{ 3, "blob" },
		{ 4, "host_visible" },
		{ 6, "context_init" },
	};
	printf("@@INFO getparam");
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		uint64_t val = 0;
		struct drm_virtgpu_getparam gp = { .param = params[i].id,
			                           .value = (uintptr_t)&val };
		if (ioctl_retry(c.fd, DRM_IOCTL_VIRTGPU_GETPARAM, &gp))
			printf(" %s=err", params[i].name);
		else
			printf(" %s=%llu", params[i].name, (unsigned long long)val);
	}
	printf("\n");

	for (int i = 0; i < c.nout; i++) {
		struct output *o = &c.out[i];
		printf("@@DATA conn head=%d id=%u crtc=%u type=%u type_id=%u connection=%u "
		       "mm=%ux%u nmodes=%u\n",
		       i, o->conn_id, o->crtc_id, o->conn_type, o->conn_type_id, o->connection,
		       o->mm_w, o->mm_h, o->nmodes);
		printf("@@DATA modes head=%d list=", i);
		for (uint32_t m = 0; m < o->nmodes; m++)
			printf("%s%ux%u@%u%s", m ? "," : "", o->modes[m].hdisplay,
			       o->modes[m].vdisplay, o->modes[m].vrefresh,
			       o->modes[m].type & DRM_MODE_TYPE_PREFERRED ? "*" : "");
		printf("\n");
		if (!o->edid_blob) {
			printf("@@DATA edid head=%d len=0 hex=\n", i);
			continue;
		}
		struct drm_mode_get_blob gb = { .blob_id = o->edid_blob };
		if (ioctl_retry(c.fd, DRM_IOCTL_MODE_GETPROPBLOB, &gb)) {
			fail("GETPROPBLOB EDID head %d: %s", i, strerror(errno));
			continue;
		}
		uint8_t *edid = calloc(1, gb.length + 1);
		gb.data = (uintptr_t)edid;
		if (ioctl_retry(c.fd, DRM_IOCTL_MODE_GETPROPBLOB, &gb)) {
			fail("GETPROPBLOB EDID head %d: %s", i, strerror(errno));
		} else {
			char prefix[64];
			snprintf(prefix, sizeof(prefix), "@@DATA edid head=%d len=%u hex=", i,
			         gb.length);
			hexline(prefix, edid, gb.length);
		}
		free(edid);
	}
	host_check("modes heads=%d", c.nout);
	close(c.fd);
	return g_failed;
}

/* ------------------------------------------------------------ fbcon */

struct seg {
	int row, col; /* col < 0: counted from the right edge */
	int fg, bg;   /* ANSI colour numbers 0..7, -1 = default (7 on 0) */
	const char *text;
};

static int test_fbcon(void)
{
	static char ascii1[64], ascii2[64];
	int n1 = 0, n2 = 0;
	for (int ch = 0x20; ch < 0x50; ch++)
		ascii1[n1++] = (char)ch;
	for (int ch = 0x50; ch < 0x7F; ch++)
		ascii2[n2++] = (char)ch;
	const struct seg segs[] = {
		{ 0, 0, -1, -1, "vshm e2e: fbcon text console through virtio-gpu" },
		{ 2, 0, -1, -1, ascii1 },
		{ 3, 0, -1, -1, ascii2 },
		{ 5, 2, 1, 7, " red on white " },
		{ 5, 20, 2, 0, "green" },
		{ 5, 30, 3, 4, " brown on blue " },
		{ 5, 50, 6, 5, " cyan on magenta " },
		{ 7, 4, 0, 3, "[black on brown]" },
		{ -1, -24, 7, 1, "bottom right corner" },
	};
	int fd = open("/dev/tty1", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		fail("open /dev/tty1: %s", strerror(errno));
		return 1;
	}
	struct winsize ws;
	if (ioctl(fd, TIOCGWINSZ, &ws)) {
		fail("TIOCGWINSZ: %s", strerror(errno));
		return 1;
	}
	static uint8_t fontdata[512 * 32 * 4];
	struct console_font_op fo = {
		.op = KD_FONT_OP_GET, .width = 32, .height = 32, .charcount = 512, .data = fontdata
	};
	if (ioctl(fd, KDFONTOP, &fo)) {
		fail("KDFONTOP get: %s", strerror(errno));
		return 1;
	}
	uint8_t cmap[48];
	if (ioctl(fd, GIO_CMAP, cmap)) {
		fail("GIO_CMAP: %s", strerror(errno));
		return 1;
	}
	printf("@@DATA font w=%u h=%u count=%u cols=%u rows=%u\n", fo.width, fo.height,
	       fo.charcount, ws.ws_col, ws.ws_row);
	hexline("@@DATA cmap hex=", cmap, sizeof(cmap));
	/* glyphs of every printable ASCII character: rows of (w+7)/8 bytes,
	 * KD_FONT_OP_GET stores each glyph in 32 rows */
	unsigned rb = (fo.width + 7) / 8;
	for (int ch = 0x20; ch < 0x7F; ch++) {
		char prefix[48];
		snprintf(prefix, sizeof(prefix), "@@DATA glyph c=%02x hex=", ch);
		hexline(prefix, fontdata + (size_t)ch * 32 * rb, fo.height * rb);
	}

	/* clear, cursor off, then each segment at its place with its colours */
	char buf[4096];
	int n = snprintf(buf, sizeof(buf), "\033[0m\033[?25l\033[H\033[2J");
	for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
		const struct seg *s = &segs[i];
		int row = s->row < 0 ? ws.ws_row + s->row : s->row;
		int col = s->col < 0 ? ws.ws_col + s->col : s->col;
		n += snprintf(buf + n, sizeof(buf) - n, "\033[%d;%dH", row + 1, col + 1);
		if (s->fg >= 0)
			n += snprintf(buf + n, sizeof(buf) - n, "\033[3%d;4%dm", s->fg, s->bg);
		n += snprintf(buf + n, sizeof(buf) - n, "%s\033[0m", s->text);
		printf("@@DATA text row=%d col=%d fg=%d bg=%d hex=", row, col,
		       s->fg < 0 ? 7 : s->fg, s->bg < 0 ? 0 : s->bg);
		for (const char *p = s->text; *p; p++)
			printf("%02x", (unsigned char)*p);
		printf("\n");
	}
	if (write(fd, buf, n) != n) {
		fail("write tty1: %s", strerror(errno));
		return 1;
	}
	tcdrain(fd);
	usleep(100 * 1000);
	host_check("fbcon cols=%u rows=%u", ws.ws_col, ws.ws_row);
	close(fd);
	return g_failed;
}

/* ------------------------------------------------------------ KMS */

static int wait_flip(int fd)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, 5000);
		if (r <= 0) {
			fail("no flip-complete event within 5 s");
			return -1;
		}
		char ev[256];
		ssize_t len = read(fd, ev, sizeof(ev));
		if (len < (ssize_t)sizeof(struct drm_event)) {
			fail("read DRM event: %s", strerror(errno));
			return -1;
		}
		for (ssize_t off = 0; off + (ssize_t)sizeof(struct drm_event) <= len;) {
			struct drm_event *e = (struct drm_event *)(ev + off);
			if (e->type == DRM_EVENT_FLIP_COMPLETE)
				return 0;
			off += e->length;
		}
	}
}

static int test_kms(int w, int h, int use_flip, int frames)
{
	struct card c;
	struct drm_mode_modeinfo mode;
	struct fb fb[2];
	const int seed = 0, nbuf = use_flip ? 2 : 1;
	const char *kind = use_flip ? "flip" : "dirty";

	if (card_open(&c))
		return 1;
	find_mode(&c, 0, w, h, &mode);
	for (int i = 0; i < nbuf; i++) {
		if (fb_create(c.fd, w, h, DRM_FORMAT_XRGB8888, &fb[i]))
			return 1;
		draw_pattern(fb[i].map, fb[i].pitch, w, h, seed, counter_value(seed, 0));
	}
	if (set_crtc(&c, 0, fb[0].fb_id, &mode))
		return 1;
	if (!use_flip) {
		/*
		 * The first plane update after a modeset re-sends SET_SCANOUT (Linux
		 * 6.1 and 6.12 both do).  QEMU's own vhost-user-gpu backend answers a
		 * SET_SCANOUT with a fresh, black display surface and repaints only
		 * the flushed rectangle, so a partial first DIRTYFB would leave the
		 * rest black.  One full-screen DIRTYFB first absorbs that.
		 */
		struct drm_clip_rect full = { 0, 0, (unsigned short)w, (unsigned short)h };
		struct drm_mode_fb_dirty_cmd dc = { .fb_id = fb[0].fb_id,
			                            .num_clips = 1,
			                            .clips_ptr = (uintptr_t)&full };
		if (ioctl_retry(c.fd, DRM_IOCTL_MODE_DIRTYFB, &dc)) {
			fail("DIRTYFB full: %s", strerror(errno));
			return 1;
		}
	}
	drain(c.fd);

	double t0 = now_ms();
	int done = 0;
	for (int f = 1; f <= frames; f++) {
		struct fb *b = &fb[use_flip ? f & 1 : 0];
		draw_counter(b->map, b->pitch, w, h, seed, counter_value(seed, f));
		if (use_flip) {
			struct drm_mode_crtc_page_flip pf = { .crtc_id = c.out[0].crtc_id,
				                              .fb_id = b->fb_id,
				                              .flags = DRM_MODE_PAGE_FLIP_EVENT,
				                              .user_data = f };
			if (ioctl_retry(c.fd, DRM_IOCTL_MODE_PAGE_FLIP, &pf)) {
				fail("PAGE_FLIP frame %d: %s", f, strerror(errno));
				break;
			}
			if (wait_flip(c.fd))
				break;
		} else {
			/* damage: only the counter cells */
			struct drm_clip_rect clip = { 24, (unsigned short)(h - 40), 24 + 32 * 20,
				                      (unsigned short)(h - 24) };
			struct drm_mode_fb_dirty_cmd dc = { .fb_id = b->fb_id,
				                            .num_clips = 1,
				                            .clips_ptr = (uintptr_t)&clip };
			if (ioctl_retry(c.fd, DRM_IOCTL_MODE_DIRTYFB, &dc)) {
				fail("DIRTYFB frame %d: %s", f, strerror(errno));
				break;
			}
		}
		done = f;
	}
	double t_queued = now_ms() - t0;
	drain(c.fd);
	double t_all = now_ms() - t0;
	printf("@@INFO kms %dx%d %s: %d frames queued in %.0f ms, done in %.0f ms (%.1f fps)\n", w,
	       h, kind, done, t_queued, t_all, done * 1000.0 / (t_all > 0 ? t_all : 1));
	printf("@@DATA kms w=%d h=%d kind=%s frames=%d ms=%.1f\n", w, h, kind, done, t_all);
	host_check("pattern head=0 w=%d h=%d seed=%d counter=%u name=kms-%dx%d-%s", w, h, seed,
	           counter_value(seed, done), w, h, kind);
	for (int i = 0; i < nbuf; i++)
		fb_destroy(c.fd, &fb[i]);
	close(c.fd);
	return g_failed;
}

static const int head_size[MAX_HEADS][2] = {
	{ 1024, 768 }, { 800, 600 }, { 640, 480 }, { 1280, 720 }
};

static int test_heads(int n)
{
	struct card c;
	struct fb fb[MAX_HEADS];
	struct drm_mode_modeinfo mode;

	if (card_open(&c))
		return 1;
	if (c.nout < n || c.ncrtc < n) {
		fail("need %d heads, the card has %d connectors / %d CRTCs", n, c.nout, c.ncrtc);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		int w = head_size[i][0], h = head_size[i][1], seed = i + 1;
		if (fb_create(c.fd, w, h, DRM_FORMAT_XRGB8888, &fb[i]))
			return 1;
		draw_pattern(fb[i].map, fb[i].pitch, w, h, seed, counter_value(seed, 0x1234 + i));
		find_mode(&c, i, w, h, &mode);
		if (set_crtc(&c, i, fb[i].fb_id, &mode))
			return 1;
		printf("@@INFO head %d: connector %u connection %u, CRTC %u, %dx%d seed %d\n", i,
		       c.out[i].conn_id, c.out[i].connection, c.out[i].crtc_id, w, h, seed);
	}
	drain(c.fd);
	for (int i = 0; i < n; i++) {
		int w = head_size[i][0], h = head_size[i][1], seed = i + 1;
		host_check("pattern head=%d w=%d h=%d seed=%d counter=%u name=heads-%d", i, w, h,
		           seed, counter_value(seed, 0x1234 + i), i);
	}
	for (int i = 0; i < n; i++)
		fb_destroy(c.fd, &fb[i]);
	close(c.fd);
	return g_failed;
}

/* ------------------------------------------------------------ cursor */

static volatile sig_atomic_t g_alarm;
static void on_alarm(int sig)
{
	(void)sig;
	g_alarm = 1;
}

/* One legacy cursor ioctl, bounded in time: the driver waits for the host
 * (fenced TRANSFER_TO_HOST_2D) without a timeout of its own. */
static int cursor_ioctl(int fd, struct drm_mode_cursor2 *cur, const char *what)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART: the ioctl gets EINTR */
	g_alarm = 0;
	alarm(10);
	double t0 = now_ms();
	int r = ioctl(fd, DRM_IOCTL_MODE_CURSOR2, cur);
	int err = errno;
	alarm(0);
	double dt = now_ms() - t0;
	if (r) {
		fail("CURSOR2 %s: %s%s after %.0f ms", what, strerror(err),
		     g_alarm ? " (blocked 10 s: the host never completed the cursor update)" : "",
		     dt);
		return -1;
	}
	printf("@@INFO cursor %s: %.1f ms\n", what, dt);
	return 0;
}

static int test_cursor(void)
{
	struct card c;
	struct fb screen, cur[2];
	struct drm_mode_modeinfo mode;
	const int w = 1024, h = 768, seed = 3;
	const uint32_t counter = counter_value(seed, 0xC0);

	if (card_open(&c))
		return 1;
	struct drm_get_cap cap = { .capability = DRM_CAP_CURSOR_WIDTH };
	if (ioctl_retry(c.fd, DRM_IOCTL_GET_CAP, &cap) == 0)
		printf("@@INFO DRM_CAP_CURSOR_WIDTH=%llu\n", (unsigned long long)cap.value);
	if (fb_create(c.fd, w, h, DRM_FORMAT_XRGB8888, &screen))
		return 1;
	draw_pattern(screen.map, screen.pitch, w, h, seed, counter);
	find_mode(&c, 0, w, h, &mode);
	if (set_crtc(&c, 0, screen.fb_id, &mode))
		return 1;
	for (int k = 0; k < 2; k++) {
		/* no ADDFB: the legacy cursor ioctl wraps the handle itself */
		if (fb_create(c.fd, 64, 64, 0, &cur[k]))
			return 1;
		for (int y = 0; y < 64; y++)
			for (int x = 0; x < 64; x++)
				((uint32_t *)(cur[k].map + (size_t)y * cur[k].pitch))[x] =
				        cursor_px(k + 1, x, y);
	}
	static const struct {
		int hx, hy, x, y;
	} pos[2] = { { 5, 9, 100, 80 }, { 0, 0, 500, 300 } };
	for (int k = 0; k < 2; k++) {
		struct drm_mode_cursor2 cu = { .flags = DRM_MODE_CURSOR_BO | DRM_MODE_CURSOR_MOVE,
			                       .crtc_id = c.out[0].crtc_id,
			                       .x = pos[k].x,
			                       .y = pos[k].y,
			                       .width = 64,
			                       .height = 64,
			                       .handle = cur[k].handle,
			                       .hot_x = pos[k].hx,
			                       .hot_y = pos[k].hy };
		char what[32];
		snprintf(what, sizeof(what), "image %d", k + 1);
		if (cursor_ioctl(c.fd, &cu, what))
			goto out;
		drain(c.fd);
		host_check("cursor image=%d hot=%d,%d x=%d y=%d", k + 1, pos[k].hx, pos[k].hy,
		           pos[k].x, pos[k].y);
	}
	for (int i = 0; i < 8; i++) {
		struct drm_mode_cursor2 mv = { .flags = DRM_MODE_CURSOR_MOVE,
			                       .crtc_id = c.out[0].crtc_id,
			                       .x = 40 + 97 * i,
			                       .y = 30 + 71 * i };
		if (cursor_ioctl(c.fd, &mv, "move"))
			goto out;
	}
	drain(c.fd);
	/* the cursor must not have disturbed the primary plane */
	host_check("pattern head=0 w=%d h=%d seed=%d counter=%u name=cursor-screen", w, h, seed,
	           counter);
	struct drm_mode_cursor2 hide = { .flags = DRM_MODE_CURSOR_BO, .crtc_id = c.out[0].crtc_id };
	if (cursor_ioctl(c.fd, &hide, "hide"))
		goto out;
	drain(c.fd);
	host_check("cursor-hidden");
out:
	for (int k = 0; k < 2; k++)
		fb_destroy(c.fd, &cur[k]);
	fb_destroy(c.fd, &screen);
	close(c.fd);
	return g_failed;
}

/* ------------------------------------------------------------ demo */

/*
 * demo:S[:WxH] is not a test: it animates every head for S seconds for
 * scripts/demo.sh.  Head 0 shows a plasma, head 1 wavy rainbow bands with
 * bouncing balls (heads 2 and 3 repeat them in other colours).  Each head
 * shows its number, a large frame counter and the frame rate in a 5x7 bitmap
 * font, and the frame number as 24 cells (white = 1, most significant bit
 * first, 8 px each) at the bottom right and, if there is room, the top right,
 * which the host decodes from its captures (two different numbers: a torn
 * capture).  The backgrounds are table lookups on 2x2 pixel blocks, so that
 * the demo keeps 10-30 frames/s under TCG.  Per frame: draw into the back
 * buffer of every head, PAGE_FLIP each (with event), wait for all events,
 * then drain() so the host has copied the new front buffers before the old
 * ones are drawn into again (no tearing on the guest side).
 *
 * Host protocol: @@INFO demo ... once a second, @@DATA demo ... at the end.
 */

#define DEMO_BITS    24
#define DEMO_FPS_MAX 30

/* 5x7 glyphs, one byte per row, bit 4 = leftmost column. */
static const struct glyph {
	char c;
	uint8_t rows[7];
} FONT[] = {
	{ '0', { 0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e } },
	{ '1', { 0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e } },
	{ '2', { 0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f } },
	{ '3', { 0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e } },
	{ '4', { 0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02 } },
	{ '5', { 0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e } },
	{ '6', { 0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e } },
	{ '7', { 0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08 } },
	{ '8', { 0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e } },
	{ '9', { 0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c } },
	{ 'A', { 0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11 } },
	{ 'C', { 0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e } },
	{ 'D', { 0x1e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1e } },
	{ 'E', { 0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f } },
	{ 'F', { 0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10 } },
	{ 'G', { 0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f } },
	{ 'H', { 0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11 } },
	{ 'I', { 0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e } },
	{ 'K', { 0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11 } },
	{ 'L', { 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f } },
	{ 'M', { 0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11 } },
	{ 'N', { 0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11 } },
	{ 'O', { 0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e } },
	{ 'P', { 0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10 } },
	{ 'R', { 0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11 } },
	{ 'S', { 0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e } },
	{ 'T', { 0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04 } },
	{ 'U', { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e } },
	{ 'V', { 0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04 } },
	{ 'W', { 0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a } },
	{ 'X', { 0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11 } },
	{ '-', { 0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00 } },
	{ '.', { 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c } },
	{ ':', { 0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00 } },
	{ '/', { 0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10 } },
};

struct canvas {
	uint8_t *map;
	uint32_t pitch;
	int w, h;
};

static inline uint32_t *cv_row(const struct canvas *cv, int y)
{
	return (uint32_t *)(cv->map + (size_t)y * cv->pitch);
}

static void cv_fill(const struct canvas *cv, int x0, int y0, int w, int h, uint32_t c)
{
	int x1 = x0 + w < cv->w ? x0 + w : cv->w, y1 = y0 + h < cv->h ? y0 + h : cv->h;
	for (int y = y0 < 0 ? 0 : y0; y < y1; y++) {
		uint32_t *row = cv_row(cv, y);
		for (int x = x0 < 0 ? 0 : x0; x < x1; x++)
			row[x] = c;
	}
}

/* Darken a rectangle to a quarter: a backdrop that keeps text readable. */
static void cv_shade(const struct canvas *cv, int x0, int y0, int w, int h)
{
	int x1 = x0 + w < cv->w ? x0 + w : cv->w, y1 = y0 + h < cv->h ? y0 + h : cv->h;
	for (int y = y0 < 0 ? 0 : y0; y < y1; y++) {
		uint32_t *row = cv_row(cv, y);
		for (int x = x0 < 0 ? 0 : x0; x < x1; x++)
			row[x] = (row[x] >> 2) & 0x3F3F3F;
	}
}

/* Width in pixels of text at scale s: 6 columns per character, no trailing gap. */
static int text_width(const char *t, int s)
{
	int n = (int)strlen(t);
	return n ? (6 * n - 1) * s : 0;
}

static void draw_text(const struct canvas *cv, int x, int y, int s, uint32_t color, const char *t)
{
	for (; *t; t++, x += 6 * s) {
		char ch = *t >= 'a' && *t <= 'z' ? (char)(*t - 32) : *t;
		const struct glyph *g = NULL;
		for (size_t i = 0; i < sizeof(FONT) / sizeof(FONT[0]); i++)
			if (FONT[i].c == ch)
				g = &FONT[i];
		if (!g)
			continue; /* space and anything the font lacks */
		for (int r = 0; r < 7; r++)
			for (int col = 0; col < 5; col++)
				if (g->rows[r] & (0x10 >> col)) {
					/* a dark drop shadow, then the pixel */
					cv_fill(cv, x + col * s + s / 4 + 1, y + r * s + s / 4 + 1,
					        s, s, 0x000000);
					cv_fill(cv, x + col * s, y + r * s, s, s, color);
				}
	}
}

/* sin(2 pi i / 256) for integer i, scaled to -127..127 (no libm: the guest
 * program is linked statically without it). */
static int8_t SIN8[256];

static void init_sin(void)
{
	const double pi = 3.14159265358979323846;
	for (int i = 0; i < 256; i++) {
		double x = 2 * pi * i / 256.0, term, sum;
		if (x > pi)
			x -= 2 * pi;
		term = sum = x;
		for (int n = 1; n < 12; n++) {
			term *= -x * x / ((2.0 * n) * (2.0 * n + 1));
			sum += term;
		}
		SIN8[i] = (int8_t)(sum * 127 + (sum < 0 ? -0.5 : 0.5));
	}
}

static inline int isin(int i)
{
	return SIN8[i & 255];
}

/* Palettes of 256 colours that wrap around smoothly. */
static uint32_t PAL_PLASMA[4][256], PAL_RAINBOW[256];

static uint32_t rgb3(int r, int g, int b)
{
	r = r < 0 ? 0 : r > 255 ? 255 : r;
	g = g < 0 ? 0 : g > 255 ? 255 : g;
	b = b < 0 ? 0 : b > 255 ? 255 : b;
	return (uint32_t)r << 16 | (uint32_t)g << 8 | (uint32_t)b;
}

static void init_palettes(void)
{
	for (int i = 0; i < 256; i++) {
		/* warm: red/orange/purple; cool: blue/green; then two mixes */
		PAL_PLASMA[0][i] = rgb3(128 + isin(i), 128 + isin(2 * i + 64) * 3 / 4,
		                        128 + isin(3 * i + 160));
		PAL_PLASMA[1][i] =
		        rgb3(64 + isin(3 * i) / 2, 128 + isin(i + 96), 160 + isin(2 * i) * 3 / 4);
		PAL_PLASMA[2][i] =
		        rgb3(128 + isin(2 * i + 32), 96 + isin(i) * 3 / 4, 128 + isin(i + 128));
		PAL_PLASMA[3][i] = rgb3(128 + isin(i + 200), 128 + isin(3 * i + 10),
		                        96 + isin(2 * i + 90) / 2);
		/* hue wheel, six linear segments */
		int seg = i * 6 / 256, f = (i * 6 % 256) * 255 / 255;
		int r = 0, g = 0, b = 0;
		switch (seg) {
		case 0:
			r = 255, g = f;
			break;
		case 1:
			r = 255 - f, g = 255;
			break;
		case 2:
			g = 255, b = f;
			break;
		case 3:
			g = 255 - f, b = 255;
			break;
		case 4:
			r = f, b = 255;
			break;
		default:
			r = 255, b = 255 - f;
			break;
		}
		PAL_RAINBOW[i] = rgb3(r, g, b);
	}
}

struct demo_head {
	struct fb fb[2];
	int back;      /* index of the buffer not on screen */
	uint8_t *dist; /* plasma: distance from the centre of a 2W/2 x 2H/2 grid */
	int dist_w;
};

/* Rows by, by+1 of blocks share one computed row of colours. */
static void put_block_row(const struct canvas *cv, int by, const uint32_t *cols)
{
	int y = 2 * by;
	uint32_t *r0 = cv_row(cv, y);
	for (int bx = 0, x = 0; x < cv->w; bx++, x += 2) {
		r0[x] = cols[bx];
		if (x + 1 < cv->w)
			r0[x + 1] = cols[bx];
	}
	if (y + 1 < cv->h)
		memcpy(cv_row(cv, y + 1), r0, (size_t)cv->w * 4);
}

/* Plasma: four sine terms (x, y, x+y, distance from a wandering point). */
static void draw_plasma(const struct canvas *cv, struct demo_head *dh, int pal, int ph)
{
	int bw = (cv->w + 1) / 2, bh = (cv->h + 1) / 2;
	static uint8_t ax[2048], by_[2048], cxy[4096];
	static uint32_t cols[2048];
	for (int x = 0; x < bw; x++)
		ax[x] = (uint8_t)(64 + isin(x * 3 / 2 + ph * 3) / 2);
	for (int y = 0; y < bh; y++)
		by_[y] = (uint8_t)(64 + isin(y * 2 - ph * 2) / 2);
	for (int i = 0; i < bw + bh; i++)
		cxy[i] = (uint8_t)(64 + isin(i + isin(i / 2 + ph) / 4 + ph * 5 / 2) / 2);
	/* the wandering point: offsets into the double-size distance grid */
	int ox = bw / 2 + isin(ph * 3 / 4) * (bw / 2 - 1) / 127;
	int oy = bh / 2 + isin(ph + 64) * (bh / 2 - 1) / 127;
	const uint32_t *p = PAL_PLASMA[pal & 3];
	int shift = ph * 2;
	for (int y = 0; y < bh; y++) {
		const uint8_t *d = dh->dist + (size_t)(y + oy) * dh->dist_w + ox;
		int b = by_[y];
		for (int x = 0; x < bw; x++) {
			int v = ax[x] + b + cxy[x + y] + (64 + isin(d[x] * 2 - ph * 4) / 2);
			cols[x] = p[(v + shift) & 255];
		}
		put_block_row(cv, y, cols);
	}
}

/* Wavy rainbow bands and bouncing shaded balls. */
static void draw_bands(const struct canvas *cv, int pal, int ph)
{
	int bw = (cv->w + 1) / 2, bh = (cv->h + 1) / 2;
	static uint32_t cols[2048], dim[256];
	for (int i = 0; i < 256; i++) { /* the rainbow at 5/8 brightness */
		uint32_t c = PAL_RAINBOW[(i + pal * 64) & 255];
		dim[i] = ((c >> 1) & 0x7F7F7F) + ((c >> 3) & 0x1F1F1F);
	}
	for (int y = 0; y < bh; y++) {
		int base = y + isin(y * 3 + ph * 4) / 8 + ph * 3;
		for (int x = 0; x < bw; x++)
			cols[x] = dim[(base + x / 2 + isin(x * 2 - ph * 3) / 16) & 255];
		put_block_row(cv, y, cols);
	}
	/* 7 balls; each coordinate is a triangle wave of the time */
	static const int vx[7] = { 5, 7, 3, 9, 4, 6, 8 }, vy[7] = { 4, 3, 7, 5, 8, 6, 2 };
	for (int k = 0; k < 7; k++) {
		int r = cv->h / 16 + k * cv->h / 96;
		int spanx = cv->w - 2 * r > 1 ? cv->w - 2 * r : 1;
		int spany = cv->h - 2 * r > 1 ? cv->h - 2 * r : 1;
		int tx = (k * 2 * spanx / 7 + ph * vx[k]) % (2 * spanx);
		int ty = ((k * 3 % 7) * 2 * spany / 7 + ph * vy[k]) % (2 * spany);
		int cx = r + (tx < spanx ? tx : 2 * spanx - tx);
		int cy = r + (ty < spany ? ty : 2 * spany - ty);
		uint32_t c = PAL_RAINBOW[(k * 37 + ph + 128) & 255];
		int cr = (c >> 16) & 255, cg = (c >> 8) & 255, cb = c & 255;
		for (int y = -r; y <= r; y++) {
			if (cy + y < 0 || cy + y >= cv->h)
				continue;
			uint32_t *row = cv_row(cv, cy + y);
			for (int x = -r; x <= r; x++) {
				int d2 = x * x + y * y;
				if (d2 > r * r || cx + x < 0 || cx + x >= cv->w)
					continue;
				/* light from the top left: brighter towards (-r/3, -r/3) */
				int lx = x + r / 3, ly = y + r / 3;
				int l = 255 - (lx * lx + ly * ly) * 200 / (r * r);
				l = l < 40 ? 40 : l;
				int hi = l > 200 ? (l - 200) * 4 : 0;
				row[cx + x] = rgb3(cr * l / 255 + hi, cg * l / 255 + hi,
				                   cb * l / 255 + hi);
			}
		}
	}
}

static void draw_overlay(const struct canvas *cv, int head, uint32_t frame, double fps)
{
	static const uint32_t accent[4] = { 0xFFD040, 0x40E0FF, 0x80FF80, 0xFF80C0 };
	int big = cv->h / 48 > 2 ? cv->h / 48 : 2, mid = big / 2, lab = mid / 2;
	int small = cv->h / 256 > 1 ? cv->h / 256 : 1, m = cv->h / 24, pad = big / 2;
	char t[64], num[16];

	/* top left: head number and the frame counter */
	snprintf(num, sizeof(num), "%06u", frame % 1000000);
	snprintf(t, sizeof(t), "HEAD %d", head);
	cv_shade(cv, m, m, text_width(num, big) + 2 * pad, 7 * mid + 7 * big + 3 * pad);
	draw_text(cv, m + pad, m + pad, mid, accent[head & 3], t);
	draw_text(cv, m + pad + text_width(t, mid) + 3 * mid, m + pad + 7 * (mid - lab), lab,
	          0xC0C0C0, "FRAME");
	draw_text(cv, m + pad, m + 2 * pad + 7 * mid, big, 0xFFFFFF, num);

	/* bottom left: what this is */
	if (fps > 0)
		snprintf(t, sizeof(t), "VSHM-GPU DEMO  %dX%d  %4.1f FPS", cv->w, cv->h, fps);
	else /* not measured yet */
		snprintf(t, sizeof(t), "VSHM-GPU DEMO  %dX%d  --.- FPS", cv->w, cv->h);
	int sy = cv->h - m - 7 * small;
	cv_shade(cv, m, sy - 2 * small, text_width(t, small) + 4 * small, 11 * small);
	draw_text(cv, m + 2 * small, sy, small, 0xFFFFFF, t);

	/* bottom right and, if there is room next to the counter, top right: the
	 * frame number for the host, DEMO_BITS cells (two copies: a capture that
	 * mixes two frames shows two numbers) */
	int cell = 8, gap = 4, cw = DEMO_BITS * (cell + gap) + gap;
	int cx = cv->w - m - cw, cys[2] = { cv->h - m - cell - 2 * gap, m };
	int copies = cx >= m + text_width(num, big) + 2 * pad + gap ? 2 : 1;
	for (int k = 0; k < copies; k++) {
		cv_fill(cv, cx, cys[k], cw, cell + 2 * gap, 0x000000);
		for (int i = 0; i < DEMO_BITS; i++)
			cv_fill(cv, cx + gap + i * (cell + gap), cys[k] + gap, cell, cell,
			        (frame >> (DEMO_BITS - 1 - i)) & 1 ? 0xFFFFFF : 0x303030);
	}
}

static int wait_flips(int fd, int n)
{
	while (n > 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 5000) <= 0) {
			fail("no flip-complete event within 5 s");
			return -1;
		}
		char ev[256];
		ssize_t len = read(fd, ev, sizeof(ev));
		if (len < (ssize_t)sizeof(struct drm_event)) {
			fail("read DRM event: %s", strerror(errno));
			return -1;
		}
		for (ssize_t off = 0; off + (ssize_t)sizeof(struct drm_event) <= len;) {
			struct drm_event *e = (struct drm_event *)(ev + off);
			if (e->type == DRM_EVENT_FLIP_COMPLETE)
				n--;
			off += e->length;
		}
	}
	return 0;
}

static int run_demo(int seconds, int w, int h)
{
	struct card c;
	struct demo_head dh[MAX_HEADS];
	struct drm_mode_modeinfo mode;

	init_sin();
	init_palettes();
	if (card_open(&c))
		return 1;
	int n = c.nout < c.ncrtc ? c.nout : c.ncrtc;
	if (n < 1) {
		fail("no head");
		return 1;
	}
	memset(dh, 0, sizeof(dh));
	for (int i = 0; i < n; i++) {
		for (int b = 0; b < 2; b++)
			if (fb_create(c.fd, w, h, DRM_FORMAT_XRGB8888, &dh[i].fb[b]))
				return 1;
		if (i % 2 == 0) {
			/* distance (in 1/2 blocks, mod 256) of every block of a grid
			 * twice the block size of the screen from its centre */
			int bw = (w + 1) / 2, bh = (h + 1) / 2;
			dh[i].dist_w = 2 * bw;
			dh[i].dist = malloc((size_t)4 * bw * bh);
			if (!dh[i].dist) {
				fail("out of memory");
				return 1;
			}
			for (int y = 0; y < 2 * bh; y++)
				for (int x = 0; x < 2 * bw; x++) {
					int dx = x - bw, dy = y - bh, d2 = dx * dx + dy * dy, r = 0;
					while ((r + 1) * (r + 1) <= d2)
						r++;
					dh[i].dist[(size_t)y * 2 * bw + x] = (uint8_t)(r / 2 * 3);
				}
		}
	}
	for (int i = 0; i < n; i++) {
		struct canvas cv = { dh[i].fb[0].map, dh[i].fb[0].pitch, w, h };
		cv_fill(&cv, 0, 0, w, h, 0x000000);
		find_mode(&c, i, w, h, &mode);
		if (set_crtc(&c, i, dh[i].fb[0].fb_id, &mode))
			return 1;
		dh[i].back = 1;
	}
	printf("@@INFO demo %d heads, %dx%d, %d s, at most %d frames/s\n", n, w, h, seconds,
	       DEMO_FPS_MAX);
	fflush(stdout);

	double t0 = now_ms(), t_report = t0, t_draw = 0, t_wait = 0, fps = 0;
	uint32_t frame = 0, frames_report = 0;
	for (;;) {
		double t = now_ms();
		if (t - t0 >= seconds * 1000.0)
			break;
		frame++;
		/* animation phase: 60 steps per second whatever the frame rate */
		int phase = (int)((t - t0) * 60 / 1000);
		for (int i = 0; i < n; i++) {
			struct fb *b = &dh[i].fb[dh[i].back];
			struct canvas cv = { b->map, b->pitch, w, h };
			if (i % 2 == 0)
				draw_plasma(&cv, &dh[i], i / 2, phase);
			else
				draw_bands(&cv, i / 2, phase);
			draw_overlay(&cv, i, frame, fps);
		}
		double t1 = now_ms();
		for (int i = 0; i < n; i++) {
			struct drm_mode_crtc_page_flip pf = { .crtc_id = c.out[i].crtc_id,
				                              .fb_id = dh[i].fb[dh[i].back].fb_id,
				                              .flags = DRM_MODE_PAGE_FLIP_EVENT,
				                              .user_data = (uint64_t)i };
			if (ioctl_retry(c.fd, DRM_IOCTL_MODE_PAGE_FLIP, &pf)) {
				fail("PAGE_FLIP head %d frame %u: %s", i, frame, strerror(errno));
				return 1;
			}
			dh[i].back ^= 1;
		}
		if (wait_flips(c.fd, n))
			return 1;
		drain(c.fd);
		double t2 = now_ms();
		t_draw += t1 - t;
		t_wait += t2 - t1;
		if (t2 - t_report >= 1000) {
			fps = (frame - frames_report) * 1000.0 / (t2 - t_report);
			printf("@@INFO demo t=%.1f frame=%u fps=%.1f draw=%.1fms "
			       "flip+drain=%.1fms\n",
			       (t2 - t0) / 1000, frame, fps, t_draw / frame, t_wait / frame);
			fflush(stdout);
			t_report = t2;
			frames_report = frame;
		}
		/* at most DEMO_FPS_MAX frames per second (no catching up after a
		 * slow frame: the frame rate shown stays honest) */
		double left = t + 1000.0 / DEMO_FPS_MAX - now_ms();
		if (left > 0)
			usleep((useconds_t)(left * 1000));
	}
	double secs = (now_ms() - t0) / 1000;
	printf("@@DATA demo heads=%d w=%d h=%d frames=%u seconds=%.2f fps=%.1f draw_ms=%.1f "
	       "flip_ms=%.1f\n",
	       n, w, h, frame, secs, frame / secs, frame ? t_draw / frame : 0,
	       frame ? t_wait / frame : 0);
	for (int i = 0; i < n; i++) {
		fb_destroy(c.fd, &dh[i].fb[0]);
		fb_destroy(c.fd, &dh[i].fb[1]);
		free(dh[i].dist);
	}
	close(c.fd);
	return g_failed;
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 2) {
		fprintf(stderr,
		        "usage: %s modes | fbcon | kms:WxH:flip|dirty:N | heads:N | cursor | "
		        "demo:S[:WxH]\n",
		        argv[0]);
		return 2;
	}
	g_test = argv[1];
	int w, h, n;
	char kind[16];
	if (!strcmp(argv[1], "modes"))
		return test_modes();
	if (!strcmp(argv[1], "fbcon"))
		return test_fbcon();
	if (!strcmp(argv[1], "cursor"))
		return test_cursor();
	int dw = 1024, dh = 768;
	int nd = sscanf(argv[1], "demo:%d:%dx%d", &n, &dw, &dh);
	if ((nd == 1 || nd == 3) && n >= 1 && n <= 86400 && dw >= 320 && dh >= 240 && dw <= 4096 &&
	    dh <= 4096)
		return run_demo(n, dw, dh);
	if (sscanf(argv[1], "heads:%d", &n) == 1 && n >= 1 && n <= MAX_HEADS)
		return test_heads(n);
	if (sscanf(argv[1], "kms:%dx%d:%15[a-z]:%d", &w, &h, kind, &n) == 4 && w >= 700 &&
	    h >= 100 && n >= 0 && (!strcmp(kind, "flip") || !strcmp(kind, "dirty")))
		return test_kms(w, h, !strcmp(kind, "flip"), n);
	fail("unknown test");
	return 2;
}
