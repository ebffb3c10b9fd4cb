/* SPDX-License-Identifier: MIT */
/*
 * consumer.c - display consumer library (see consumer.h), written from
 * docs/protocol.md and the wire headers only.
 */
#include "consumer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vshm-proto/qemu-display.h>
#include <vshm/conn.h>
#include <vshm/loop.h>

#define HDR_SIZE        VHOST_USER_GPU_HDR_SIZE
#define FLAG_REPLY      VHOST_USER_GPU_MSG_FLAG_REPLY
#define MAX_QUEUED      (64u * 1024u)
#define DEFAULT_ROLE    "capture"
#define QEMU_CURSOR_DIM VHOST_USER_GPU_CURSOR_DIM
#define REQUIRED_SEALS  (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL)

enum vsc_state {
	ST_FEATURES,   /* waiting for GET_PROTOCOL_FEATURES */
	ST_SET_WAIT,   /* replied, waiting for SET_PROTOCOL_FEATURES */
	ST_HELLO_WAIT, /* HELLO sent, waiting for its reply */
	ST_ACTIVE,
};

struct vsc_buffer {
	uint32_t id; /* 0: free slot */
	uint32_t width, height, stride, fourcc, flags;
	uint64_t offset, size;
	unsigned bpp; /* 0: format not supported */
	const uint8_t *map;
};

struct vsc_scanout {
	bool granted;
	bool enabled;
	uint32_t buffer_id, x, y, width, height;
	bool need_full; /* a SCANOUT arrived: the next FRAME must be FULL */
	uint64_t last_seq, frame_flush_ns, hb_flush_ns, hb_last_seq;
	uint64_t frames, dropped;
	bool hb_enabled;
	uint64_t held_seq; /* newest unreleased seq (manual release), 0 none */
	/* QEMU-only framebuffer (x8r8g8b8, stride width * 4). */
	uint8_t *fb;
	uint8_t *row_seen;
	uint32_t rows_valid;
	bool complete;
};

struct vsc {
	struct vsc_config cfg;
	char role[VSHM_DISPLAY_ROLE_SIZE];
	vsc_event_fn cb;
	void *cb_data;
	struct vshm_conn *conn;
	enum vsc_state state;
	bool qemu;  /* QEMU-only service */
	bool ready; /* READY was reported */
	int dead;   /* sticky error, 0 while alive */
	uint64_t offered, features;
	struct vshm_display_hello_reply hello;
	struct vsc_scanout sc[VSHM_DISPLAY_MAX_SCANOUTS];
	struct vsc_buffer buf[VSHM_DISPLAY_MAX_BUFFERS];
	uint32_t *dead_ids; /* ids destroyed on this connection (never reused) */
	size_t n_dead, cap_dead;
	uint64_t frames, dropped, last_msg_ns;
	struct vshm_display_heartbeat hb;
	uint64_t hb_recv_ns;
	/* cursor */
	struct vsc_cursor_info cursor;
	uint32_t qcursor[QEMU_CURSOR_DIM * QEMU_CURSOR_DIM];
	bool qcursor_valid;
	/* stats */
	unsigned stats_pending;
	bool have_stats;
	struct vshm_display_stats stats;
	struct vshm_display_stats_scanout stats_entries[VSHM_DISPLAY_MAX_SCANOUTS];
	uint32_t stats_count;
	/* ERROR */
	bool have_error;
	struct vshm_display_error derr;
	char errbuf[256];
	/* scratch for the FRAME callback */
	struct vsc_frame frame;
};

/* ---- formats ------------------------------------------------------------------------ */

unsigned vsc_format_bpp(uint32_t fourcc)
{
	switch (fourcc) {
	case VSC_FMT_XRGB8888:
	case VSC_FMT_ARGB8888:
	case VSC_FMT_XBGR8888:
	case VSC_FMT_ABGR8888:
	case VSC_FMT_BGRX8888:
	case VSC_FMT_BGRA8888:
	case VSC_FMT_RGBX8888:
	case VSC_FMT_RGBA8888:
		return 4;
	default:
		return 0;
	}
}

bool vsc_format_has_alpha(uint32_t fourcc)
{
	return fourcc == VSC_FMT_ARGB8888 || fourcc == VSC_FMT_ABGR8888 ||
	       fourcc == VSC_FMT_BGRA8888 || fourcc == VSC_FMT_RGBA8888;
}

int vsc_convert_row(uint32_t fourcc, const uint8_t *src, uint32_t width, uint8_t *dst, bool alpha)
{
	/*
	 * DRM formats are named from the most significant bit of a
	 * little-endian word: XRGB8888 is [31:0] x:R:G:B, i.e. bytes B G R X.
	 * Byte index of R, G, B, A in memory per format:
	 */
	int r, g, b, a;
	switch (fourcc) {
	case VSC_FMT_XRGB8888:
	case VSC_FMT_ARGB8888:
		b = 0, g = 1, r = 2, a = 3;
		break;
	case VSC_FMT_XBGR8888:
	case VSC_FMT_ABGR8888:
		r = 0, g = 1, b = 2, a = 3;
		break;
	case VSC_FMT_BGRX8888:
	case VSC_FMT_BGRA8888:
		a = 0, r = 1, g = 2, b = 3;
		break;
	case VSC_FMT_RGBX8888:
	case VSC_FMT_RGBA8888:
		a = 0, b = 1, g = 2, r = 3;
		break;
	default:
		return -ENOTSUP;
	}
	bool has_a = vsc_format_has_alpha(fourcc);
	for (uint32_t i = 0; i < width; i++) {
		const uint8_t *s = src + (size_t)i * 4;
		*dst++ = s[r];
		*dst++ = s[g];
		*dst++ = s[b];
		if (alpha)
			*dst++ = has_a ? s[a] : 0xff;
	}
	return 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

uint64_t vsc_now_ns(void)
{
	return vshm_now_ns(); /* the daemon's timestamps use the same clock */
}

__attribute__((format(printf, 3, 4))) static int fail(struct vsc *c, int err, const char *fmt, ...)
{
	va_list ap;
	if (c->dead)
		return c->dead;
	va_start(ap, fmt);
	vsnprintf(c->errbuf, sizeof(c->errbuf), fmt, ap);
	va_end(ap);
	c->dead = err;
	return err;
}

static int bad(struct vsc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct vsc *c, const char *fmt, ...)
{
	va_list ap;
	char tmp[200];
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	return fail(c, -EPROTO, "bad daemon message: %s", tmp);
}

static void emit(struct vsc *c, enum vsc_event_type type, uint32_t scanout, uint32_t buffer,
                 const struct vsc_frame *f)
{
	struct vsc_event ev = { type, scanout, buffer, f };
	if (c->cb)
		c->cb(c->cb_data, c, &ev);
}

static int send_msg(struct vsc *c, uint32_t id, uint32_t flags, const void *payload, uint32_t len)
{
	struct vhost_user_gpu_hdr h = { id, flags, len };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
	int r = vshm_conn_send(c->conn, iov, len ? 2 : 1, NULL, 0);
	if (r < 0)
		return fail(c, r, "sending message 0x%x: %s", id, strerror(-r));
	return 0;
}

static unsigned popcount32(uint32_t v)
{
	return (unsigned)__builtin_popcount(v);
}

static struct vsc_buffer *buf_find(struct vsc *c, uint32_t id)
{
	if (id == 0)
		return NULL;
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++)
		if (c->buf[i].id == id)
			return &c->buf[i];
	return NULL;
}

static bool id_is_dead(const struct vsc *c, uint32_t id)
{
	for (size_t i = 0; i < c->n_dead; i++)
		if (c->dead_ids[i] == id)
			return true;
	return false;
}

static void buf_free(struct vsc_buffer *b)
{
	if (b->map)
		munmap((void *)b->map, (size_t)b->size);
	memset(b, 0, sizeof(*b));
}

static void scanout_fb_free(struct vsc_scanout *s)
{
	free(s->fb);
	free(s->row_seen);
	s->fb = NULL;
	s->row_seen = NULL;
	s->rows_valid = 0;
	s->complete = false;
}

/* ---- life cycle --------------------------------------------------------------------- */

void vsc_config_defaults(struct vsc_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->scanouts = 0x1;
	cfg->role = DEFAULT_ROLE;
	cfg->fence_timeout_ms = 1000;
	cfg->max_scanout_pixels = 8192ull * 8192ull;
}

int vsc_new_fd(int fd, const struct vsc_config *cfg, vsc_event_fn cb, void *data, struct vsc **out)
{
	struct vshm_conn_config cc = {
		.header_size = HDR_SIZE,
		.size_offset = 8,
		.max_payload = VSHM_DISPLAY_MAX_D2C_PAYLOAD,
		.max_fds = VSHM_DISPLAY_MAX_FDS,
		.max_queued = MAX_QUEUED,
	};
	struct vsc *c;
	int r;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	if (cfg)
		c->cfg = *cfg;
	else
		vsc_config_defaults(&c->cfg);
	if (!c->cfg.role)
		c->cfg.role = DEFAULT_ROLE;
	if (c->cfg.fence_timeout_ms <= 0)
		c->cfg.fence_timeout_ms = 1000;
	if (!c->cfg.max_scanout_pixels)
		c->cfg.max_scanout_pixels = 8192ull * 8192ull;
	if (!c->cfg.qemu_mode && (!vshm_display_role_valid(c->cfg.role) ||
	                          (c->cfg.scanouts >> VSHM_DISPLAY_MAX_SCANOUTS) != 0)) {
		free(c);
		close(fd);
		return -EINVAL;
	}
	snprintf(c->role, sizeof(c->role), "%s", c->cfg.role);
	c->cfg.role = c->role;
	c->cb = cb;
	c->cb_data = data;
	r = vshm_conn_new(fd, &cc, &c->conn);
	if (r < 0) {
		free(c);
		return r;
	}
	if (c->cfg.qemu_mode) {
		/* What QEMU offers without dma-buf support; the daemon never uses EDID here. */
		c->offered = VHOST_USER_GPU_PROTOCOL_F_EDID;
	} else {
		c->offered = VHOST_USER_GPU_PROTOCOL_F_EDID | VSHM_DISPLAY_PROTOCOL_F_VSHM;
		if (c->cfg.offer_fence)
			c->offered |= VSHM_DISPLAY_PROTOCOL_F_VSHM_FENCE;
	}
	c->state = ST_FEATURES;
	c->last_msg_ns = vsc_now_ns();
	*out = c;
	return 0;
}

int vsc_connect(const char *path, const struct vsc_config *cfg, vsc_event_fn cb, void *data,
                struct vsc **out)
{
	int fd, r;
	*out = NULL;
	r = vshm_unix_connect(path, &fd);
	if (r < 0)
		return r;
	return vsc_new_fd(fd, cfg, cb, data, out);
}

void vsc_destroy(struct vsc *c)
{
	if (!c)
		return;
	vshm_conn_destroy(c->conn);
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++)
		buf_free(&c->buf[i]);
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_SCANOUTS; i++)
		scanout_fb_free(&c->sc[i]);
	free(c->dead_ids);
	free(c);
}

/* ---- negotiation -------------------------------------------------------------------- */

static void become_qemu(struct vsc *c)
{
	c->qemu = true;
	c->state = ST_ACTIVE;
	emit(c, VSC_EV_NEGOTIATED, 0, 0, NULL);
	c->ready = true;
	emit(c, VSC_EV_READY, 0, 0, NULL);
}

static int on_get_features(struct vsc *c, uint32_t flags, uint32_t size, unsigned nfds)
{
	if (c->state != ST_FEATURES)
		return bad(c, "second GET_PROTOCOL_FEATURES");
	if (flags != 0 || size != 0 || nfds != 0)
		return bad(c, "GET_PROTOCOL_FEATURES flags %u size %u fds %u", flags, size, nfds);
	c->state = ST_SET_WAIT;
	return send_msg(c, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, FLAG_REPLY, &c->offered, 8);
}

static int on_set_features(struct vsc *c, const uint8_t *p, uint32_t size)
{
	uint64_t f;
	if (c->state != ST_SET_WAIT)
		return bad(c, "SET_PROTOCOL_FEATURES in the wrong state");
	if (size != 8)
		return bad(c, "SET_PROTOCOL_FEATURES size %u", size);
	memcpy(&f, p, 8);
	if (f & ~c->offered)
		return bad(c, "SET_PROTOCOL_FEATURES 0x%llx has bits never offered (0x%llx)",
		           (unsigned long long)f, (unsigned long long)c->offered);
	c->features = f;
	if (c->cfg.qemu_mode || !(f & VSHM_DISPLAY_PROTOCOL_F_VSHM)) {
		if (!c->cfg.qemu_mode && !c->cfg.allow_qemu_fallback)
			return fail(c, -EPROTONOSUPPORT, "the daemon did not negotiate VSHM");
		become_qemu(c);
		return 0;
	}
	emit(c, VSC_EV_NEGOTIATED, 0, 0, NULL);
	struct vshm_display_hello h = { 0 };
	h.version = VSHM_DISPLAY_VERSION;
	h.flags = c->cfg.no_cursor ? VSHM_DISPLAY_HELLO_F_NO_CURSOR : 0;
	h.scanouts = c->cfg.scanouts;
	memcpy(h.role, c->role, strlen(c->role));
	c->state = ST_HELLO_WAIT;
	return send_msg(c, VSHM_DISPLAY_HELLO, 0, &h, sizeof(h));
}

static int on_hello_reply(struct vsc *c, const uint8_t *p, uint32_t size)
{
	struct vshm_display_hello_reply r;
	if (c->state != ST_HELLO_WAIT)
		return bad(c, "unexpected HELLO reply");
	if (size != sizeof(r))
		return bad(c, "HELLO reply size %u", size);
	memcpy(&r, p, sizeof(r));
	if (r.version < 1 || r.version > VSHM_DISPLAY_VERSION)
		return bad(c, "HELLO reply version %u", r.version);
	if (r.consumer_id == 0)
		return bad(c, "HELLO reply consumer_id 0");
	if ((r.granted & ~c->cfg.scanouts) || (r.refused & ~c->cfg.scanouts) ||
	    (r.granted & r.refused) || ((r.granted | r.refused) != c->cfg.scanouts))
		return bad(c, "HELLO reply granted 0x%x refused 0x%x for requested 0x%x", r.granted,
		           r.refused, c->cfg.scanouts);
	if (r.num_scanouts > VSHM_DISPLAY_MAX_SCANOUTS)
		return bad(c, "HELLO reply num_scanouts %u", r.num_scanouts);
	if (r.max_rects > VSHM_DISPLAY_MAX_RECTS || r.heartbeat_period_ms == 0)
		return bad(c, "HELLO reply max_rects %u heartbeat %u ms", r.max_rects,
		           r.heartbeat_period_ms);
	for (unsigned n = 0; n < VSHM_DISPLAY_MAX_SCANOUTS; n++) {
		bool refused = r.refused & (1u << n);
		if (refused != (r.refuse_reason[n] != 0))
			return bad(c, "HELLO reply refuse_reason[%u] = %u", n, r.refuse_reason[n]);
		if ((r.granted & (1u << n)) && n >= r.num_scanouts)
			return bad(c, "HELLO reply grants scanout %u of %u", n, r.num_scanouts);
		c->sc[n].granted = r.granted & (1u << n);
	}
	c->hello = r;
	c->state = ST_ACTIVE;
	c->ready = true;
	emit(c, VSC_EV_READY, 0, 0, NULL);
	return 0;
}

/* ---- vshm messages ------------------------------------------------------------------ */

static int on_shm_buffer(struct vsc *c, const uint8_t *p, uint32_t size, struct vshm_conn_msg *m)
{
	struct vshm_display_shm_buffer b;
	struct vsc_buffer *slot = NULL;
	struct stat st;
	int fd, fl, seals;

	if (size != sizeof(b))
		return bad(c, "SHM_BUFFER size %u", size);
	if (m->nfds != 1)
		return bad(c, "SHM_BUFFER with %u fds", m->nfds);
	memcpy(&b, p, sizeof(b));
	if (b.buffer_id == 0 || buf_find(c, b.buffer_id) || id_is_dead(c, b.buffer_id))
		return bad(c, "SHM_BUFFER reuses buffer id %u", b.buffer_id);
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS && !slot; i++)
		if (c->buf[i].id == 0)
			slot = &c->buf[i];
	if (!slot)
		return bad(c, "more than %d buffers defined", VSHM_DISPLAY_MAX_BUFFERS);
	if (b.width == 0 || b.height == 0 || b.size == 0 || b.size > (uint64_t)SIZE_MAX / 2)
		return bad(c, "SHM_BUFFER %u: %ux%u size %llu", b.buffer_id, b.width, b.height,
		           (unsigned long long)b.size);
	unsigned bpp = vsc_format_bpp(b.drm_fourcc);
	/* offset + stride * (height - 1) + width * bpp <= size, without overflow (all < 2^64). */
	uint64_t need_bpp = bpp ? bpp : 1;
	unsigned __int128 end = (unsigned __int128)b.offset +
	                        (unsigned __int128)b.stride * (b.height - 1) +
	                        (unsigned __int128)b.width * need_bpp;
	if (end > b.size || (bpp && b.stride < (uint64_t)b.width * bpp))
		return bad(c, "SHM_BUFFER %u: %ux%u stride %u offset %llu does not fit size %llu",
		           b.buffer_id, b.width, b.height, b.stride, (unsigned long long)b.offset,
		           (unsigned long long)b.size);

	fd = m->fds[0];
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) != O_RDONLY)
		return bad(c, "SHM_BUFFER %u: fd is not read-only", b.buffer_id);
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & REQUIRED_SEALS) != REQUIRED_SEALS)
		return bad(c, "SHM_BUFFER %u: seals 0x%x lack 0x%x", b.buffer_id,
		           seals < 0 ? 0 : seals, REQUIRED_SEALS);
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != b.size)
		return bad(c, "SHM_BUFFER %u: file size %lld != %llu", b.buffer_id,
		           (long long)st.st_size, (unsigned long long)b.size);
	void *map = mmap(NULL, (size_t)b.size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return fail(c, -errno, "SHM_BUFFER %u: mmap: %s", b.buffer_id, strerror(errno));
	close(fd);
	m->fds[0] = -1;

	slot->id = b.buffer_id;
	slot->width = b.width;
	slot->height = b.height;
	slot->stride = b.stride;
	slot->fourcc = b.drm_fourcc;
	slot->flags = b.flags;
	slot->offset = b.offset;
	slot->size = b.size;
	slot->bpp = bpp;
	slot->map = map;
	emit(c, VSC_EV_BUFFER, 0, b.buffer_id, NULL);
	return 0;
}

static int on_buffer_destroy(struct vsc *c, const uint8_t *p, uint32_t size)
{
	struct vshm_display_buffer_destroy d;
	struct vsc_buffer *b;
	if (size != sizeof(d))
		return bad(c, "BUFFER_DESTROY size %u", size);
	memcpy(&d, p, sizeof(d));
	b = buf_find(c, d.buffer_id);
	if (!b)
		return bad(c, "BUFFER_DESTROY of unknown buffer %u", d.buffer_id);
	for (unsigned n = 0; n < VSHM_DISPLAY_MAX_SCANOUTS; n++) {
		if (c->sc[n].enabled && c->sc[n].buffer_id == d.buffer_id)
			return bad(c, "BUFFER_DESTROY of buffer %u still shown by scanout %u",
			           d.buffer_id, n);
	}
	if (c->n_dead == c->cap_dead) {
		size_t cap = c->cap_dead ? c->cap_dead * 2 : 64;
		uint32_t *nd = realloc(c->dead_ids, cap * sizeof(*nd));
		if (!nd)
			return fail(c, -ENOMEM, "out of memory");
		c->dead_ids = nd;
		c->cap_dead = cap;
	}
	c->dead_ids[c->n_dead++] = d.buffer_id;
	emit(c, VSC_EV_BUFFER_DESTROY, 0, d.buffer_id, NULL);
	if (c->cursor.buffer_id == d.buffer_id) {
		/* The shape is gone: nothing to draw until the next CURSOR. */
		c->cursor.buffer_id = 0;
		c->cursor.pixels = NULL;
		c->cursor.visible = false;
	}
	buf_free(b);
	return 0;
}

static int on_scanout(struct vsc *c, const uint8_t *p, uint32_t size)
{
	struct vshm_display_scanout s;
	struct vsc_scanout *sc;
	if (size != sizeof(s))
		return bad(c, "SCANOUT size %u", size);
	memcpy(&s, p, sizeof(s));
	if (s.scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS || !c->sc[s.scanout_id].granted)
		return bad(c, "SCANOUT for scanout %u not granted", s.scanout_id);
	sc = &c->sc[s.scanout_id];
	if (s.buffer_id == 0) {
		sc->enabled = false;
		sc->buffer_id = 0;
		sc->x = sc->y = sc->width = sc->height = 0;
	} else {
		const struct vsc_buffer *b = buf_find(c, s.buffer_id);
		if (!b)
			return bad(c, "SCANOUT %u shows unknown buffer %u", s.scanout_id,
			           s.buffer_id);
		if (s.width == 0 || s.height == 0 || (uint64_t)s.x + s.width > b->width ||
		    (uint64_t)s.y + s.height > b->height)
			return bad(c, "SCANOUT %u rect %u,%u %ux%u outside buffer %u (%ux%u)",
			           s.scanout_id, s.x, s.y, s.width, s.height, s.buffer_id, b->width,
			           b->height);
		sc->enabled = true;
		sc->buffer_id = s.buffer_id;
		sc->x = s.x;
		sc->y = s.y;
		sc->width = s.width;
		sc->height = s.height;
	}
	sc->need_full = true;
	emit(c, VSC_EV_SCANOUT, s.scanout_id, s.buffer_id, NULL);
	return 0;
}

static int wait_fence(struct vsc *c, int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int r;
	do
		r = poll(&pfd, 1, c->cfg.fence_timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return fail(c, -errno, "poll on FRAME fence: %s", strerror(errno));
	if (r == 0)
		return fail(c, -ETIMEDOUT, "FRAME fence did not signal within %d ms",
		            c->cfg.fence_timeout_ms);
	return 0;
}

static int do_release(struct vsc *c, uint32_t scanout, uint64_t seq)
{
	struct vshm_display_frame_release rel = { scanout, 0, seq };
	return send_msg(c, VSHM_DISPLAY_FRAME_RELEASE, 0, &rel, sizeof(rel));
}

static int on_frame(struct vsc *c, const uint8_t *p, uint32_t size, struct vshm_conn_msg *m,
                    uint64_t now)
{
	struct vshm_display_frame fr;
	struct vsc_frame *f = &c->frame;
	struct vsc_scanout *sc;
	const struct vsc_buffer *b;
	int r;

	if (size < sizeof(fr))
		return bad(c, "FRAME size %u", size);
	memcpy(&fr, p, sizeof(fr));
	if (fr.num_rects > c->hello.max_rects || fr.num_rects > VSHM_DISPLAY_MAX_RECTS)
		return bad(c, "FRAME num_rects %u over max_rects %u", fr.num_rects,
		           c->hello.max_rects);
	if (size != sizeof(fr) + fr.num_rects * sizeof(struct vshm_display_rect))
		return bad(c, "FRAME size %u for %u rects", size, fr.num_rects);
	bool fence = fr.flags & VSHM_DISPLAY_FRAME_F_FENCE;
	if (fence && !(c->features & VSHM_DISPLAY_PROTOCOL_F_VSHM_FENCE))
		return bad(c, "FRAME with FENCE but VSHM_FENCE not negotiated");
	if (m->nfds != (fence ? 1u : 0u))
		return bad(c, "FRAME with %u fds (FENCE %d)", m->nfds, fence);
	if (fr.scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS || !c->sc[fr.scanout_id].granted)
		return bad(c, "FRAME for scanout %u not granted", fr.scanout_id);
	sc = &c->sc[fr.scanout_id];
	if (!sc->enabled || fr.buffer_id != sc->buffer_id)
		return bad(c, "FRAME for scanout %u buffer %u, scanout shows %u", fr.scanout_id,
		           fr.buffer_id, sc->buffer_id);
	b = buf_find(c, fr.buffer_id);
	if (!b)
		return bad(c, "FRAME of unknown buffer %u", fr.buffer_id);
	if (fr.seq == 0 || fr.seq <= sc->last_seq || fr.flush_ns <= sc->frame_flush_ns)
		return bad(c, "FRAME scanout %u seq %llu flush %llu after seq %llu flush %llu",
		           fr.scanout_id, (unsigned long long)fr.seq,
		           (unsigned long long)fr.flush_ns, (unsigned long long)sc->last_seq,
		           (unsigned long long)sc->frame_flush_ns);
	bool full = fr.flags & VSHM_DISPLAY_FRAME_F_FULL;
	if (sc->need_full && !full)
		return bad(c, "first FRAME after SCANOUT %u lacks FULL", fr.scanout_id);

	memset(f, 0, sizeof(*f));
	for (uint32_t i = 0; i < fr.num_rects; i++) {
		struct vshm_display_rect rc;
		memcpy(&rc, p + sizeof(fr) + i * sizeof(rc), sizeof(rc));
		if (rc.width == 0 || rc.height == 0 || (uint64_t)rc.x + rc.width > sc->width ||
		    (uint64_t)rc.y + rc.height > sc->height)
			return bad(c, "FRAME rect %u,%u %ux%u outside scanout %u (%ux%u)", rc.x,
			           rc.y, rc.width, rc.height, fr.scanout_id, sc->width, sc->height);
		f->rects[i] = (struct vsc_rect){ rc.x, rc.y, rc.width, rc.height };
	}
	if (fence) {
		r = wait_fence(c, m->fds[0]);
		close(m->fds[0]);
		m->fds[0] = -1;
		if (r < 0)
			return r;
	}

	f->scanout_id = fr.scanout_id;
	f->buffer_id = fr.buffer_id;
	f->seq = fr.seq;
	f->flush_ns = fr.flush_ns;
	f->send_ns = fr.send_ns;
	f->recv_ns = now;
	f->flags = fr.flags;
	f->full = full;
	f->num_rects = fr.num_rects;
	f->dropped = sc->last_seq ? fr.seq - sc->last_seq - 1 : 0;
	f->width = sc->width;
	f->height = sc->height;
	f->stride = b->stride;
	f->fourcc = b->fourcc;
	f->format_supported = b->bpp != 0;
	f->pixels = b->map + b->offset + (uint64_t)sc->y * b->stride +
	            (uint64_t)sc->x * (b->bpp ? b->bpp : 1);

	sc->need_full = false;
	sc->last_seq = fr.seq;
	sc->frame_flush_ns = fr.flush_ns;
	sc->frames++;
	sc->dropped += f->dropped;
	c->frames++;
	c->dropped += f->dropped;
	sc->held_seq = fr.seq;

	emit(c, VSC_EV_FRAME, fr.scanout_id, fr.buffer_id, f);
	if (!c->cfg.manual_release && !c->dead && sc->held_seq) {
		sc->held_seq = 0;
		return do_release(c, fr.scanout_id, fr.seq);
	}
	return c->dead;
}

static int on_heartbeat(struct vsc *c, const uint8_t *p, uint32_t size, uint64_t now)
{
	struct vshm_display_heartbeat hb;
	int prev = -1;
	if (size < sizeof(hb))
		return bad(c, "HEARTBEAT size %u", size);
	memcpy(&hb, p, sizeof(hb));
	if (hb.count > VSHM_DISPLAY_MAX_SCANOUTS ||
	    size != sizeof(hb) + hb.count * sizeof(struct vshm_display_heartbeat_scanout))
		return bad(c, "HEARTBEAT size %u for %u entries", size, hb.count);
	if (hb.count != popcount32(c->hello.granted))
		return bad(c, "HEARTBEAT has %u entries for %u granted scanouts", hb.count,
		           popcount32(c->hello.granted));
	for (uint32_t i = 0; i < hb.count; i++) {
		struct vshm_display_heartbeat_scanout e;
		memcpy(&e, p + sizeof(hb) + i * sizeof(e), sizeof(e));
		if (e.scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS || !c->sc[e.scanout_id].granted ||
		    (int)e.scanout_id <= prev)
			return bad(c, "HEARTBEAT entry %u: scanout %u", i, e.scanout_id);
		prev = (int)e.scanout_id;
	}
	for (uint32_t i = 0; i < hb.count; i++) {
		struct vshm_display_heartbeat_scanout e;
		memcpy(&e, p + sizeof(hb) + i * sizeof(e), sizeof(e));
		struct vsc_scanout *sc = &c->sc[e.scanout_id];
		sc->hb_enabled = e.flags & VSHM_DISPLAY_HEARTBEAT_F_ENABLED;
		sc->hb_last_seq = e.last_seq;
		if (e.last_flush_ns > sc->hb_flush_ns)
			sc->hb_flush_ns = e.last_flush_ns;
	}
	c->hb = hb;
	c->hb_recv_ns = now;
	emit(c, VSC_EV_HEARTBEAT, 0, 0, NULL);
	return 0;
}

static int on_cursor(struct vsc *c, const uint8_t *p, uint32_t size)
{
	struct vshm_display_cursor cu;
	const struct vsc_buffer *b = NULL;
	if (size != sizeof(cu))
		return bad(c, "CURSOR size %u", size);
	if (c->cfg.no_cursor)
		return bad(c, "CURSOR after HELLO NO_CURSOR");
	memcpy(&cu, p, sizeof(cu));
	if (cu.scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS || !c->sc[cu.scanout_id].granted)
		return bad(c, "CURSOR for scanout %u not granted", cu.scanout_id);
	if (cu.buffer_id) {
		b = buf_find(c, cu.buffer_id);
		if (!b)
			return bad(c, "CURSOR with unknown buffer %u", cu.buffer_id);
		/*
		 * Section 7.10: a cursor shape is ARGB8888. Callers read it as
		 * 4-byte pixels (vsc_cursor_info has no format), and a buffer of
		 * another or unknown format was only checked at its own size.
		 */
		if (b->fourcc != VSC_FMT_ARGB8888)
			return bad(c, "CURSOR buffer %u is not ARGB8888 (fourcc %#x)", cu.buffer_id,
			           b->fourcc);
		/* hot_x/hot_y come from the guest unchecked by the spec: not validated. */
	}
	c->cursor.scanout_id = cu.scanout_id;
	c->cursor.buffer_id = cu.buffer_id;
	c->cursor.hot_x = cu.hot_x;
	c->cursor.hot_y = cu.hot_y;
	c->cursor.x = cu.x;
	c->cursor.y = cu.y;
	c->cursor.visible = cu.buffer_id && (cu.flags & VSHM_DISPLAY_CURSOR_F_VISIBLE);
	c->cursor.pixels = b ? b->map + b->offset : NULL;
	c->cursor.width = b ? b->width : 0;
	c->cursor.height = b ? b->height : 0;
	c->cursor.stride = b ? b->stride : 0;
	emit(c, VSC_EV_CURSOR, cu.scanout_id, cu.buffer_id, NULL);
	return 0;
}

static int on_stats_reply(struct vsc *c, const uint8_t *p, uint32_t size)
{
	struct vshm_display_stats st;
	if (!c->stats_pending)
		return bad(c, "STATS reply without a request");
	if (size < sizeof(st))
		return bad(c, "STATS reply size %u", size);
	memcpy(&st, p, sizeof(st));
	if (st.count > VSHM_DISPLAY_MAX_SCANOUTS ||
	    size != sizeof(st) + st.count * sizeof(struct vshm_display_stats_scanout))
		return bad(c, "STATS reply size %u for %u entries", size, st.count);
	if (st.count != popcount32(c->hello.granted) || st.consumer_id != c->hello.consumer_id)
		return bad(c, "STATS reply count %u consumer %u", st.count, st.consumer_id);
	for (uint32_t i = 0; i < st.count; i++) {
		memcpy(&c->stats_entries[i], p + sizeof(st) + i * sizeof(c->stats_entries[0]),
		       sizeof(c->stats_entries[0]));
		uint32_t id = c->stats_entries[i].scanout_id;
		if (id >= VSHM_DISPLAY_MAX_SCANOUTS || !c->sc[id].granted)
			return bad(c, "STATS entry for scanout %u", id);
	}
	c->stats = st;
	c->stats_count = st.count;
	c->have_stats = true;
	c->stats_pending--;
	emit(c, VSC_EV_STATS, 0, 0, NULL);
	return 0;
}

static int on_error(struct vsc *c, const uint8_t *p, uint32_t size)
{
	if (size != sizeof(c->derr))
		return bad(c, "ERROR size %u", size);
	memcpy(&c->derr, p, sizeof(c->derr));
	c->derr.message[sizeof(c->derr.message) - 1] = 0;
	/* Only printable ASCII goes to logs. */
	for (char *s = c->derr.message; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
	c->have_error = true;
	emit(c, VSC_EV_ERROR, 0, 0, NULL);
	return fail(c, -ECONNABORTED, "daemon error %s (%u) on request 0x%x, detail %u: %s",
	            vsc_error_code_name(c->derr.code), c->derr.code, c->derr.request,
	            c->derr.detail, c->derr.message);
}

/* ---- QEMU-only messages ------------------------------------------------------------- */

static int on_q_scanout(struct vsc *c, const uint8_t *p, uint32_t size)
{
	struct vhost_user_gpu_scanout s;
	struct vsc_scanout *sc;
	if (size != sizeof(s))
		return bad(c, "SCANOUT(7) size %u", size);
	memcpy(&s, p, sizeof(s));
	if (s.scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS)
		return bad(c, "SCANOUT(7) scanout %u", s.scanout_id);
	if ((s.width == 0) != (s.height == 0) ||
	    (uint64_t)s.width * s.height > c->cfg.max_scanout_pixels)
		return bad(c, "SCANOUT(7) %u size %ux%u", s.scanout_id, s.width, s.height);
	sc = &c->sc[s.scanout_id];
	scanout_fb_free(sc);
	sc->enabled = s.width != 0;
	sc->width = s.width;
	sc->height = s.height;
	sc->x = sc->y = 0;
	if (sc->enabled) {
		sc->fb = calloc((size_t)s.width * s.height, 4);
		sc->row_seen = calloc(s.height, 1);
		if (!sc->fb || !sc->row_seen)
			return fail(c, -ENOMEM, "framebuffer %ux%u: out of memory", s.width,
			            s.height);
	}
	emit(c, VSC_EV_SCANOUT, s.scanout_id, 0, NULL);
	return 0;
}

static int on_q_update(struct vsc *c, const uint8_t *p, uint32_t size, uint64_t now)
{
	struct vhost_user_gpu_update u;
	struct vsc_scanout *sc;
	struct vsc_frame *f = &c->frame;
	if (size < sizeof(u))
		return bad(c, "UPDATE size %u", size);
	memcpy(&u, p, sizeof(u));
	uint64_t px = (uint64_t)u.width * u.height;
	if (px > VSHM_DISPLAY_MAX_UPDATE_PIXELS || size != sizeof(u) + px * 4)
		return bad(c, "UPDATE %ux%u with size %u", u.width, u.height, size);
	if (u.scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS || !c->sc[u.scanout_id].enabled)
		return bad(c, "UPDATE for disabled scanout %u", u.scanout_id);
	sc = &c->sc[u.scanout_id];
	if ((uint64_t)u.x + u.width > sc->width || (uint64_t)u.y + u.height > sc->height)
		return bad(c, "UPDATE rect %u,%u %ux%u outside scanout %u (%ux%u)", u.x, u.y,
		           u.width, u.height, u.scanout_id, sc->width, sc->height);
	if (px == 0)
		return 0;
	for (uint32_t row = 0; row < u.height; row++)
		memcpy(sc->fb + ((size_t)(u.y + row) * sc->width + u.x) * 4,
		       p + sizeof(u) + (size_t)row * u.width * 4, (size_t)u.width * 4);
	if (!sc->complete && u.x == 0 && u.width == sc->width) {
		for (uint32_t row = u.y; row < u.y + u.height; row++)
			if (!sc->row_seen[row]) {
				sc->row_seen[row] = 1;
				sc->rows_valid++;
			}
		if (sc->rows_valid == sc->height) {
			sc->complete = true;
			/* Report the first complete image as a full frame. */
			u.x = u.y = 0;
			u.width = sc->width;
			u.height = sc->height;
		}
	}
	if (!sc->complete)
		return 0;
	memset(f, 0, sizeof(*f));
	f->scanout_id = u.scanout_id;
	f->seq = ++sc->last_seq;
	f->recv_ns = now;
	f->full = u.x == 0 && u.y == 0 && u.width == sc->width && u.height == sc->height;
	f->num_rects = 1;
	f->rects[0] = (struct vsc_rect){ u.x, u.y, u.width, u.height };
	f->pixels = sc->fb;
	f->width = sc->width;
	f->height = sc->height;
	f->stride = sc->width * 4;
	f->fourcc = VSC_FMT_XRGB8888;
	f->format_supported = true;
	sc->frames++;
	c->frames++;
	emit(c, VSC_EV_FRAME, u.scanout_id, 0, f);
	return c->dead;
}

static int on_q_cursor(struct vsc *c, uint32_t id, const uint8_t *p, uint32_t size)
{
	struct vhost_user_gpu_cursor_pos pos;
	uint32_t want = id == VHOST_USER_GPU_CURSOR_UPDATE
	                        ? (uint32_t)sizeof(struct vhost_user_gpu_cursor_update)
	                        : (uint32_t)sizeof(pos);
	if (size != want)
		return bad(c, "cursor message %u size %u", id, size);
	memcpy(&pos, p, sizeof(pos));
	if (pos.scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS)
		return bad(c, "cursor message for scanout %u", pos.scanout_id);
	c->cursor.scanout_id = pos.scanout_id;
	c->cursor.x = (int32_t)pos.x;
	c->cursor.y = (int32_t)pos.y;
	c->cursor.visible = id != VHOST_USER_GPU_CURSOR_POS_HIDE;
	if (id == VHOST_USER_GPU_CURSOR_UPDATE) {
		struct vhost_user_gpu_cursor_update cu;
		memcpy(&cu, p, sizeof(cu));
		c->cursor.hot_x = cu.hot_x;
		c->cursor.hot_y = cu.hot_y;
		memcpy(c->qcursor, cu.data, sizeof(c->qcursor));
		c->qcursor_valid = true;
	}
	if (c->qcursor_valid) {
		c->cursor.pixels = (const uint8_t *)c->qcursor;
		c->cursor.width = c->cursor.height = QEMU_CURSOR_DIM;
		c->cursor.stride = QEMU_CURSOR_DIM * 4;
	}
	emit(c, VSC_EV_CURSOR, pos.scanout_id, 0, NULL);
	return 0;
}

/* ---- dispatch ----------------------------------------------------------------------- */

static bool is_qemu_display_msg(uint32_t id)
{
	return id >= VHOST_USER_GPU_GET_DISPLAY_INFO && id <= VHOST_USER_GPU_DMABUF_SCANOUT2;
}

static int handle_qemu_msg(struct vsc *c, uint32_t id, const uint8_t *p, uint32_t size,
                           unsigned nfds, uint64_t now)
{
	if (nfds)
		return bad(c, "QEMU message %u with %u fds", id, nfds);
	switch (id) {
	case VHOST_USER_GPU_SCANOUT:
		return on_q_scanout(c, p, size);
	case VHOST_USER_GPU_UPDATE:
		return on_q_update(c, p, size, now);
	case VHOST_USER_GPU_CURSOR_POS:
	case VHOST_USER_GPU_CURSOR_POS_HIDE:
	case VHOST_USER_GPU_CURSOR_UPDATE:
		return on_q_cursor(c, id, p, size);
	default:
		/* GET_DISPLAY_INFO, DMABUF_*, GET_EDID: never sent, DMABUF2 never offered. */
		return bad(c, "QEMU message %u is never sent to this consumer", id);
	}
}

static int handle_msg(struct vsc *c, struct vshm_conn_msg *m)
{
	struct vhost_user_gpu_hdr h;
	const uint8_t *p = m->payload;
	uint32_t size = m->payload_size;
	uint64_t now = vsc_now_ns();

	memcpy(&h, m->hdr, sizeof(h));
	c->last_msg_ns = now;
	if (h.flags != 0 && h.flags != FLAG_REPLY)
		return bad(c, "header flags 0x%x on message 0x%x", h.flags, h.request);
	bool reply = h.flags == FLAG_REPLY;

	/* ERROR can come in any state (e.g. TOO_MANY_CONSUMERS before negotiation). */
	if (h.request == VSHM_DISPLAY_ERROR) {
		if (reply || m->nfds)
			return bad(c, "ERROR flags 0x%x fds %u", h.flags, m->nfds);
		return on_error(c, p, size);
	}
	switch (h.request) {
	case VHOST_USER_GPU_GET_PROTOCOL_FEATURES:
		return on_get_features(c, h.flags, size, m->nfds);
	case VHOST_USER_GPU_SET_PROTOCOL_FEATURES:
		if (reply || m->nfds)
			return bad(c, "SET_PROTOCOL_FEATURES flags 0x%x fds %u", h.flags, m->nfds);
		return on_set_features(c, p, size);
	default:
		break;
	}
	if (c->state == ST_FEATURES)
		return bad(c, "message 0x%x before GET_PROTOCOL_FEATURES", h.request);

	if (is_qemu_display_msg(h.request)) {
		if (reply)
			return bad(c, "QEMU message %u with REPLY", h.request);
		if (c->state == ST_SET_WAIT) {
			/*
			 * No SET_PROTOCOL_FEATURES: the daemon took features as 0
			 * (our reply missed its deadline) and serves QEMU-only.
			 */
			if (!c->cfg.qemu_mode && !c->cfg.allow_qemu_fallback)
				return fail(c, -EPROTONOSUPPORT,
				            "daemon serves QEMU-only (features deadline missed?)");
			c->features = 0;
			become_qemu(c);
		}
		if (!c->qemu)
			return bad(c, "QEMU message %u on a vshm session", h.request);
		return handle_qemu_msg(c, h.request, p, size, m->nfds, now);
	}

	if (h.request > VSHM_DISPLAY_ID_FIRST && h.request <= VSHM_DISPLAY_STATS) {
		/* Known vshm ids: only on a vshm session, in order. */
		if (c->qemu || c->state == ST_SET_WAIT)
			return bad(c, "vshm message 0x%x on a QEMU-only session", h.request);
		if (h.request == VSHM_DISPLAY_HELLO) {
			if (!reply || m->nfds)
				return bad(c, "HELLO from the daemon flags 0x%x fds %u", h.flags,
				           m->nfds);
			return on_hello_reply(c, p, size);
		}
		if (c->state != ST_ACTIVE)
			return bad(c, "message 0x%x before the HELLO reply", h.request);
		if (h.request == VSHM_DISPLAY_STATS) {
			if (!reply || m->nfds)
				return bad(c, "STATS from the daemon flags 0x%x fds %u", h.flags,
				           m->nfds);
			return on_stats_reply(c, p, size);
		}
		if (reply)
			return bad(c, "message 0x%x with REPLY", h.request);
		if (h.request != VSHM_DISPLAY_SHM_BUFFER && h.request != VSHM_DISPLAY_FRAME &&
		    m->nfds)
			return bad(c, "message 0x%x with %u fds", h.request, m->nfds);
		switch (h.request) {
		case VSHM_DISPLAY_SHM_BUFFER:
			return on_shm_buffer(c, p, size, m);
		case VSHM_DISPLAY_DMABUF_BUFFER:
			return bad(c, "DMABUF_BUFFER without VSHM_DMABUF");
		case VSHM_DISPLAY_BUFFER_DESTROY:
			return on_buffer_destroy(c, p, size);
		case VSHM_DISPLAY_SCANOUT:
			return on_scanout(c, p, size);
		case VSHM_DISPLAY_FRAME:
			return on_frame(c, p, size, m, now);
		case VSHM_DISPLAY_HEARTBEAT:
			return on_heartbeat(c, p, size, now);
		case VSHM_DISPLAY_CURSOR:
			return on_cursor(c, p, size);
		default: /* FRAME_RELEASE is C->D only */
			return bad(c, "message 0x%x is consumer-to-daemon", h.request);
		}
	}
	/* Section 11: skip unknown ids by size; the caller closes their fds. */
	return 0;
}

int vsc_dispatch(struct vsc *c)
{
	struct vshm_conn_msg m;
	int r;

	if (c->dead)
		return c->dead;
	for (;;) {
		r = vshm_conn_recv(c->conn, &m);
		if (r == -EAGAIN)
			break;
		if (r == -EPIPE || r == -ECONNRESET || r == -EIO)
			return fail(c, r, "daemon closed the connection");
		if (r == -EMSGSIZE || r == -EPROTO)
			return fail(c, -EPROTO, "bad daemon message framing (%s)", strerror(-r));
		if (r < 0)
			return fail(c, r, "receive: %s", strerror(-r));
		r = handle_msg(c, &m);
		vshm_conn_msg_close_fds(&m);
		if (r < 0)
			return fail(c, r, "%s", strerror(-r));
		if (c->dead)
			return c->dead;
	}
	r = vshm_conn_flush(c->conn);
	if (r < 0 && r != -EAGAIN)
		return fail(c, r, "send: %s", strerror(-r));
	return 0;
}

int vsc_fd(const struct vsc *c)
{
	return vshm_conn_get_fd(c->conn);
}

bool vsc_wants_write(const struct vsc *c)
{
	return vshm_conn_wants_write(c->conn);
}

typedef bool (*done_fn)(const struct vsc *c, uint64_t arg);

static int run_until(struct vsc *c, done_fn done, uint64_t arg, int timeout_ms)
{
	uint64_t deadline = vsc_now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000ull;
	int r;

	for (;;) {
		r = vsc_dispatch(c);
		if (r < 0)
			return r;
		if (done && done(c, arg))
			return 0;
		uint64_t now = vsc_now_ns();
		if (now >= deadline)
			return done ? -ETIMEDOUT : 0;
		struct pollfd pfd = { vsc_fd(c), POLLIN | (vsc_wants_write(c) ? POLLOUT : 0), 0 };
		int ms = (int)((deadline - now + 999999) / 1000000);
		r = poll(&pfd, 1, ms);
		if (r < 0 && errno != EINTR)
			return fail(c, -errno, "poll: %s", strerror(errno));
	}
}

int vsc_run(struct vsc *c, int timeout_ms)
{
	return run_until(c, NULL, 0, timeout_ms);
}

static bool is_ready(const struct vsc *c, uint64_t arg)
{
	(void)arg;
	return c->ready;
}

static bool have_frames(const struct vsc *c, uint64_t arg)
{
	return c->frames >= arg;
}

int vsc_wait_ready(struct vsc *c, int timeout_ms)
{
	return run_until(c, is_ready, 0, timeout_ms);
}

int vsc_wait_frames(struct vsc *c, uint64_t count, int timeout_ms)
{
	return run_until(c, have_frames, count, timeout_ms);
}

/* ---- requests ----------------------------------------------------------------------- */

int vsc_release(struct vsc *c, uint32_t scanout_id, uint64_t seq)
{
	if (c->dead)
		return c->dead;
	if (c->qemu || c->state != ST_ACTIVE || scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS ||
	    !c->sc[scanout_id].granted || seq == 0 || seq > c->sc[scanout_id].last_seq)
		return -EINVAL;
	if (c->sc[scanout_id].held_seq && seq >= c->sc[scanout_id].held_seq)
		c->sc[scanout_id].held_seq = 0;
	return do_release(c, scanout_id, seq);
}

int vsc_request_stats(struct vsc *c)
{
	struct vshm_display_stats_request rq = { 0, 0 };
	if (c->dead)
		return c->dead;
	if (c->qemu || c->state != ST_ACTIVE)
		return -EINVAL;
	int r = send_msg(c, VSHM_DISPLAY_STATS, 0, &rq, sizeof(rq));
	if (r == 0)
		c->stats_pending++;
	return r;
}

/* ---- state -------------------------------------------------------------------------- */

bool vsc_is_ready(const struct vsc *c)
{
	return c->ready;
}

bool vsc_is_qemu_mode(const struct vsc *c)
{
	return c->qemu;
}

uint64_t vsc_features(const struct vsc *c)
{
	return c->features;
}

const struct vshm_display_hello_reply *vsc_hello_reply(const struct vsc *c)
{
	return &c->hello;
}

uint64_t vsc_frames_received(const struct vsc *c)
{
	return c->frames;
}

uint64_t vsc_frames_dropped(const struct vsc *c)
{
	return c->dropped;
}

int vsc_scanout(const struct vsc *c, uint32_t scanout_id, struct vsc_scanout_info *out)
{
	const struct vsc_scanout *sc;
	memset(out, 0, sizeof(*out));
	if (scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS)
		return -EINVAL;
	sc = &c->sc[scanout_id];
	out->enabled = sc->enabled;
	out->buffer_id = sc->buffer_id;
	out->x = sc->x;
	out->y = sc->y;
	out->width = sc->width;
	out->height = sc->height;
	if (c->qemu) {
		out->fourcc = VSC_FMT_XRGB8888;
		out->stride = sc->width * 4;
	} else {
		const struct vsc_buffer *b = buf_find((struct vsc *)c, sc->buffer_id);
		out->fourcc = b ? b->fourcc : 0;
		out->stride = b ? b->stride : 0;
	}
	out->last_seq = sc->last_seq;
	out->last_flush_ns =
	        sc->frame_flush_ns > sc->hb_flush_ns ? sc->frame_flush_ns : sc->hb_flush_ns;
	out->hb_last_seq = sc->hb_last_seq;
	out->frames = sc->frames;
	out->dropped = sc->dropped;
	out->heartbeat_enabled = sc->hb_enabled;
	return 0;
}

uint64_t vsc_frame_age_ns(const struct vsc *c, uint32_t scanout_id, uint64_t now_ns, bool *known)
{
	struct vsc_scanout_info si;
	if (vsc_scanout(c, scanout_id, &si) < 0 || si.last_flush_ns == 0) {
		if (known)
			*known = false;
		return 0;
	}
	if (known)
		*known = true;
	return now_ns > si.last_flush_ns ? now_ns - si.last_flush_ns : 0;
}

const struct vshm_display_heartbeat *vsc_last_heartbeat(const struct vsc *c, uint64_t *recv_ns)
{
	if (recv_ns)
		*recv_ns = c->hb_recv_ns;
	return &c->hb;
}

uint64_t vsc_last_message_ns(const struct vsc *c)
{
	return c->last_msg_ns;
}

void vsc_cursor(const struct vsc *c, struct vsc_cursor_info *out)
{
	*out = c->cursor;
}

const struct vshm_display_stats *
vsc_stats(const struct vsc *c, const struct vshm_display_stats_scanout **entries, uint32_t *count)
{
	if (entries)
		*entries = c->have_stats ? c->stats_entries : NULL;
	if (count)
		*count = c->have_stats ? c->stats_count : 0;
	return c->have_stats ? &c->stats : NULL;
}

bool vsc_daemon_error(const struct vsc *c, struct vshm_display_error *out)
{
	if (!c->have_error)
		return false;
	if (out)
		*out = c->derr;
	return true;
}

const char *vsc_error(const struct vsc *c)
{
	return c->errbuf;
}

const char *vsc_error_code_name(uint32_t code)
{
	static const char *const names[] = {
		[VSHM_DISPLAY_ERR_MALFORMED] = "MALFORMED",
		[VSHM_DISPLAY_ERR_UNKNOWN_REQUEST] = "UNKNOWN_REQUEST",
		[VSHM_DISPLAY_ERR_UNEXPECTED] = "UNEXPECTED",
		[VSHM_DISPLAY_ERR_BAD_FLAGS] = "BAD_FLAGS",
		[VSHM_DISPLAY_ERR_TOO_LARGE] = "TOO_LARGE",
		[VSHM_DISPLAY_ERR_BAD_FDS] = "BAD_FDS",
		[VSHM_DISPLAY_ERR_VERSION] = "VERSION",
		[VSHM_DISPLAY_ERR_BAD_SCANOUT] = "BAD_SCANOUT",
		[VSHM_DISPLAY_ERR_BAD_SEQ] = "BAD_SEQ",
		[VSHM_DISPLAY_ERR_TIMEOUT] = "TIMEOUT",
		[VSHM_DISPLAY_ERR_TOO_SLOW] = "TOO_SLOW",
		[VSHM_DISPLAY_ERR_RATE_LIMITED] = "RATE_LIMITED",
		[VSHM_DISPLAY_ERR_TOO_MANY_CONSUMERS] = "TOO_MANY_CONSUMERS",
		[VSHM_DISPLAY_ERR_SHUTDOWN] = "SHUTDOWN",
		[VSHM_DISPLAY_ERR_INTERNAL] = "INTERNAL",
	};
	if (code < sizeof(names) / sizeof(names[0]) && names[code])
		return names[code];
	return "UNKNOWN";
}
