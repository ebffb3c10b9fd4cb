/* SPDX-License-Identifier: MIT */
/*
 * vshm-view-session.c - vshm-view's display-protocol session (vvs_), written
 * from docs/protocol.md. Only the vshm service is spoken (no QEMU-only
 * mode: a preview needs buffers). Unlike clients/consumer.c it keeps every
 * buffer fd open so that the compositor can map the daemon's memory itself.
 *
 * Every daemon message is checked (flags, exact sizes, fd counts, ids, rects
 * inside the scanout); a bad one ends the session with -EPROTO and a text in
 * vvs_error(). Received fds are always either kept in a buffer slot or closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <vshm-proto/qemu-display.h>
#include <vshm/conn.h>
#include <vshm/loop.h>

#include "vshm-view.h"

#define HDR_SIZE   12u
#define FLAG_REPLY VHOST_USER_GPU_MSG_FLAG_REPLY
#define MAX_QUEUED (64u << 10)
#define SHM_SEALS  (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL)

enum vvs_state { VVS_FEATURES, VVS_SET_WAIT, VVS_HELLO_WAIT, VVS_ACTIVE };

struct vvs_scanout {
	bool granted, enabled;
	uint32_t buffer_id, x, y, width, height;
	uint64_t last_seq, released_seq, flush_ns, hb_flush_ns;
};

struct vvs {
	struct vvs_config cfg;
	char role[VSHM_DISPLAY_ROLE_SIZE];
	const struct vvs_handler *h;
	void *data;
	struct vshm_conn *conn;
	enum vvs_state state;
	uint64_t offered, features;
	struct vshm_display_hello_reply hello;
	struct vvs_scanout sc[VSHM_DISPLAY_MAX_SCANOUTS];
	struct vvs_buffer buf[VSHM_DISPLAY_MAX_BUFFERS];
	char err[256];
};

__attribute__((format(printf, 3, 4))) static int fail(struct vvs *s, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	return err;
}

#define bad(s, ...) fail(s, -EPROTO, __VA_ARGS__)

static int send_msg(struct vvs *s, uint32_t id, uint32_t flags, const void *p, uint32_t size)
{
	struct vhost_user_gpu_hdr h = { .request = id, .flags = flags, .size = size };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)p, size } };
	return vshm_conn_send(s->conn, iov, size ? 2 : 1, NULL, 0);
}

/* ---- buffers --------------------------------------------------------------------------- */

struct vvs_buffer *vvs_buffer(struct vvs *s, uint32_t id)
{
	if (!id)
		return NULL;
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++)
		if (s->buf[i].id == id)
			return &s->buf[i];
	return NULL;
}

static struct vvs_buffer *buf_slot(struct vvs *s)
{
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++)
		if (!s->buf[i].id)
			return &s->buf[i];
	return NULL;
}

static void buf_free(struct vvs *s, struct vvs_buffer *b)
{
	if (s->h->buffer_destroy)
		s->h->buffer_destroy(s->data, b);
	if (b->map)
		munmap((void *)b->map, (size_t)b->size);
	if (b->fd >= 0)
		close(b->fd);
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_PLANES; i++)
		if (b->plane_fd[i] >= 0)
			close(b->plane_fd[i]);
	memset(b, 0, sizeof(*b));
	b->fd = -1;
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_PLANES; i++)
		b->plane_fd[i] = -1;
}

static int buf_check_new(struct vvs *s, uint32_t id)
{
	if (!id)
		return bad(s, "buffer id 0");
	if (vvs_buffer(s, id))
		return bad(s, "buffer %u defined twice", id);
	return 0;
}

static int on_shm_buffer(struct vvs *s, const uint8_t *p, uint32_t size, struct vshm_conn_msg *m)
{
	struct vshm_display_shm_buffer sb;
	struct vvs_buffer *b;
	struct stat st;
	int r, fd;

	if (size != sizeof(sb) || m->nfds != 1)
		return bad(s, "SHM_BUFFER size %u fds %u", size, m->nfds);
	memcpy(&sb, p, sizeof(sb));
	if ((r = buf_check_new(s, sb.buffer_id)) < 0)
		return r;
	if (!sb.width || !sb.height || sb.stride < sb.width * 4ull || !sb.size ||
	    sb.offset + (uint64_t)sb.stride * (sb.height - 1) + sb.width * 4ull > sb.size ||
	    sb.size > (1ull << 31))
		return bad(s, "SHM_BUFFER %u: bad layout", sb.buffer_id);
	fd = m->fds[0];
	if ((fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDONLY)
		return bad(s, "SHM_BUFFER %u: fd is not read-only", sb.buffer_id);
	if ((fcntl(fd, F_GET_SEALS) & SHM_SEALS) != SHM_SEALS)
		return bad(s, "SHM_BUFFER %u: memfd not sealed", sb.buffer_id);
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != sb.size)
		return bad(s, "SHM_BUFFER %u: file size differs", sb.buffer_id);
	if (!(b = buf_slot(s)))
		return bad(s, "more than %u buffers", VSHM_DISPLAY_MAX_BUFFERS);
	void *map = mmap(NULL, (size_t)sb.size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return fail(s, -errno, "SHM_BUFFER %u: mmap: %s", sb.buffer_id, strerror(errno));
	b->id = sb.buffer_id;
	b->dmabuf = false;
	b->width = sb.width;
	b->height = sb.height;
	b->stride = sb.stride;
	b->fourcc = sb.drm_fourcc;
	b->flags = sb.flags;
	b->offset = sb.offset;
	b->size = sb.size;
	b->map = map;
	b->fd = fd;
	m->fds[0] = -1;
	if (s->h->buffer)
		s->h->buffer(s->data, b);
	return 0;
}

static int on_dmabuf_buffer(struct vvs *s, const uint8_t *p, uint32_t size, struct vshm_conn_msg *m)
{
	struct vshm_display_dmabuf_buffer db;
	struct vvs_buffer *b;
	int r;

	if (!(s->features & VSHM_DISPLAY_PROTOCOL_F_VSHM_DMABUF))
		return bad(s, "DMABUF_BUFFER without VSHM_DMABUF");
	if (size != sizeof(db))
		return bad(s, "DMABUF_BUFFER size %u", size);
	memcpy(&db, p, sizeof(db));
	if (db.num_planes < 1 || db.num_planes > VSHM_DISPLAY_MAX_PLANES ||
	    m->nfds != db.num_planes)
		return bad(s, "DMABUF_BUFFER %u: %u planes, %u fds", db.buffer_id, db.num_planes,
		           m->nfds);
	if ((r = buf_check_new(s, db.buffer_id)) < 0)
		return r;
	if (!db.width || !db.height)
		return bad(s, "DMABUF_BUFFER %u: empty", db.buffer_id);
	if (!(b = buf_slot(s)))
		return bad(s, "more than %u buffers", VSHM_DISPLAY_MAX_BUFFERS);
	b->id = db.buffer_id;
	b->dmabuf = true;
	b->width = db.width;
	b->height = db.height;
	b->fourcc = db.drm_fourcc;
	b->flags = db.flags;
	b->num_planes = db.num_planes;
	b->modifier = db.modifier;
	for (unsigned i = 0; i < db.num_planes; i++) {
		b->plane_fd[i] = m->fds[i];
		m->fds[i] = -1;
		b->plane_offset[i] = db.planes[i].offset;
		b->plane_stride[i] = db.planes[i].stride;
	}
	b->stride = b->plane_stride[0];
	if (s->h->buffer)
		s->h->buffer(s->data, b);
	return 0;
}

static int on_buffer_destroy(struct vvs *s, const uint8_t *p, uint32_t size)
{
	struct vshm_display_buffer_destroy d;
	struct vvs_buffer *b;

	if (size != sizeof(d))
		return bad(s, "BUFFER_DESTROY size %u", size);
	memcpy(&d, p, sizeof(d));
	if (!(b = vvs_buffer(s, d.buffer_id)))
		return bad(s, "BUFFER_DESTROY of unknown buffer %u", d.buffer_id);
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_SCANOUTS; i++)
		if (s->sc[i].enabled && s->sc[i].buffer_id == d.buffer_id)
			return bad(s, "BUFFER_DESTROY of buffer %u still shown", d.buffer_id);
	buf_free(s, b);
	return 0;
}

/* ---- scanouts and frames ---------------------------------------------------------------- */

static int on_scanout(struct vvs *s, const uint8_t *p, uint32_t size)
{
	struct vshm_display_scanout so;
	struct vvs_scanout *sc;
	const struct vvs_buffer *b;

	if (size != sizeof(so))
		return bad(s, "SCANOUT size %u", size);
	memcpy(&so, p, sizeof(so));
	if (so.scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS || !s->sc[so.scanout_id].granted)
		return bad(s, "SCANOUT for scanout %u not granted", so.scanout_id);
	sc = &s->sc[so.scanout_id];
	if (so.buffer_id) {
		if (!(b = vvs_buffer(s, so.buffer_id)))
			return bad(s, "SCANOUT %u: unknown buffer %u", so.scanout_id, so.buffer_id);
		if (!so.width || !so.height || (uint64_t)so.x + so.width > b->width ||
		    (uint64_t)so.y + so.height > b->height)
			return bad(s, "SCANOUT %u: rect outside buffer %u", so.scanout_id,
			           so.buffer_id);
	}
	sc->enabled = so.buffer_id != 0;
	sc->buffer_id = so.buffer_id;
	sc->x = so.x;
	sc->y = so.y;
	sc->width = so.width;
	sc->height = so.height;
	if (s->h->scanout)
		s->h->scanout(s->data, &so);
	return 0;
}

static int on_frame(struct vvs *s, const uint8_t *p, uint32_t size, struct vshm_conn_msg *m,
                    uint64_t now)
{
	struct vshm_display_frame fr;
	struct vvs_frame f;
	struct vvs_scanout *sc;

	if (size < sizeof(fr) || m->nfds)
		return bad(s, "FRAME size %u fds %u", size, m->nfds);
	memcpy(&fr, p, sizeof(fr));
	if (fr.num_rects > s->hello.max_rects || fr.num_rects > VSHM_DISPLAY_MAX_RECTS ||
	    size != sizeof(fr) + fr.num_rects * sizeof(struct vshm_display_rect))
		return bad(s, "FRAME size %u for %u rects", size, fr.num_rects);
	if (fr.flags & VSHM_DISPLAY_FRAME_F_FENCE)
		return bad(s, "FRAME with FENCE (VSHM_FENCE not offered)");
	if (fr.scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS || !s->sc[fr.scanout_id].granted)
		return bad(s, "FRAME for scanout %u not granted", fr.scanout_id);
	sc = &s->sc[fr.scanout_id];
	if (!sc->enabled || fr.buffer_id != sc->buffer_id)
		return bad(s, "FRAME %u: buffer %u is not the scanout's", fr.scanout_id,
		           fr.buffer_id);
	if (fr.seq <= sc->last_seq)
		return bad(s, "FRAME %u: seq %llu not increasing", fr.scanout_id,
		           (unsigned long long)fr.seq);
	memset(&f, 0, sizeof(f));
	f.scanout_id = fr.scanout_id;
	f.buffer_id = fr.buffer_id;
	f.seq = fr.seq;
	f.flush_ns = fr.flush_ns;
	f.send_ns = fr.send_ns;
	f.recv_ns = now;
	f.full = (fr.flags & VSHM_DISPLAY_FRAME_F_FULL) || fr.num_rects == 0;
	f.dropped = sc->last_seq ? fr.seq - sc->last_seq - 1 : 0;
	f.num_rects = fr.num_rects;
	memcpy(f.rects, p + sizeof(fr), fr.num_rects * sizeof(struct vshm_display_rect));
	for (uint32_t i = 0; i < f.num_rects; i++) {
		const struct vshm_display_rect *r = &f.rects[i];
		if (!r->width || !r->height || (uint64_t)r->x + r->width > sc->width ||
		    (uint64_t)r->y + r->height > sc->height)
			return bad(s, "FRAME %u: rect %u outside the scanout", fr.scanout_id, i);
	}
	sc->last_seq = fr.seq;
	sc->flush_ns = fr.flush_ns;
	if (s->h->frame)
		s->h->frame(s->data, &f);
	return 0;
}

int vvs_release(struct vvs *s, uint32_t scanout_id, uint64_t seq)
{
	struct vshm_display_frame_release rel = { .scanout_id = scanout_id, .seq = seq };
	struct vvs_scanout *sc;

	if (!s || s->state != VVS_ACTIVE || scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS)
		return -EINVAL;
	sc = &s->sc[scanout_id];
	if (seq > sc->last_seq)
		seq = rel.seq = sc->last_seq;
	if (!seq || seq <= sc->released_seq)
		return 0;
	sc->released_seq = seq;
	return send_msg(s, VSHM_DISPLAY_FRAME_RELEASE, 0, &rel, sizeof(rel));
}

static int on_heartbeat(struct vvs *s, const uint8_t *p, uint32_t size)
{
	struct vshm_display_heartbeat hb;
	struct vshm_display_heartbeat_scanout e;

	if (size < sizeof(hb))
		return bad(s, "HEARTBEAT size %u", size);
	memcpy(&hb, p, sizeof(hb));
	if (hb.count > VSHM_DISPLAY_MAX_SCANOUTS || size != sizeof(hb) + hb.count * sizeof(e))
		return bad(s, "HEARTBEAT size %u for %u entries", size, hb.count);
	for (uint32_t i = 0; i < hb.count; i++) {
		memcpy(&e, p + sizeof(hb) + i * sizeof(e), sizeof(e));
		if (e.scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS || !s->sc[e.scanout_id].granted)
			return bad(s, "HEARTBEAT entry for scanout %u", e.scanout_id);
		s->sc[e.scanout_id].hb_flush_ns = e.last_flush_ns;
	}
	if (s->h->heartbeat)
		s->h->heartbeat(s->data);
	return 0;
}

static int on_cursor(struct vvs *s, const uint8_t *p, uint32_t size)
{
	struct vshm_display_cursor cu;
	const struct vvs_buffer *b;

	if (size != sizeof(cu))
		return bad(s, "CURSOR size %u", size);
	memcpy(&cu, p, sizeof(cu));
	if (cu.scanout_id >= VSHM_DISPLAY_MAX_SCANOUTS || !s->sc[cu.scanout_id].granted)
		return bad(s, "CURSOR for scanout %u not granted", cu.scanout_id);
	if (cu.buffer_id) {
		b = vvs_buffer(s, cu.buffer_id);
		if (!b || b->dmabuf)
			return bad(s, "CURSOR: bad buffer %u", cu.buffer_id);
		if (cu.hot_x >= b->width || cu.hot_y >= b->height)
			cu.hot_x = cu.hot_y = 0;
	}
	if (s->h->cursor)
		s->h->cursor(s->data, &cu);
	return 0;
}

/* ---- session start ------------------------------------------------------------------------ */

static int on_get_features(struct vvs *s, uint32_t flags, uint32_t size, unsigned nfds)
{
	if (flags || size || nfds || s->state != VVS_FEATURES)
		return bad(s, "unexpected GET_PROTOCOL_FEATURES");
	s->state = VVS_SET_WAIT;
	return send_msg(s, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, FLAG_REPLY, &s->offered,
	                sizeof(s->offered));
}

static int on_set_features(struct vvs *s, const uint8_t *p, uint32_t size)
{
	struct vshm_display_hello hello = { .version = VSHM_DISPLAY_VERSION };

	if (size != sizeof(uint64_t) || s->state != VVS_SET_WAIT)
		return bad(s, "unexpected SET_PROTOCOL_FEATURES");
	memcpy(&s->features, p, sizeof(s->features));
	if (s->features & ~s->offered)
		return bad(s, "daemon set features it was not offered");
	if (!(s->features & VSHM_DISPLAY_PROTOCOL_F_VSHM))
		return fail(s, -EPROTONOSUPPORT, "daemon does not speak the vshm extension");
	hello.scanouts = s->cfg.scanouts;
	memcpy(hello.role, s->role, sizeof(hello.role));
	s->state = VVS_HELLO_WAIT;
	return send_msg(s, VSHM_DISPLAY_HELLO, 0, &hello, sizeof(hello));
}

static int on_hello_reply(struct vvs *s, const uint8_t *p, uint32_t size)
{
	if (size != sizeof(s->hello) || s->state != VVS_HELLO_WAIT)
		return bad(s, "unexpected HELLO reply");
	memcpy(&s->hello, p, sizeof(s->hello));
	if (!s->hello.version || s->hello.granted >> VSHM_DISPLAY_MAX_SCANOUTS ||
	    (s->hello.granted & ~s->cfg.scanouts))
		return bad(s, "bad HELLO reply");
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_SCANOUTS; i++)
		s->sc[i].granted = s->hello.granted & (1u << i);
	s->state = VVS_ACTIVE;
	if (s->h->ready)
		s->h->ready(s->data, &s->hello);
	return 0;
}

static int on_error(struct vvs *s, const uint8_t *p, uint32_t size)
{
	struct vshm_display_error e;
	if (size != sizeof(e))
		return bad(s, "ERROR size %u", size);
	memcpy(&e, p, sizeof(e));
	e.message[sizeof(e.message) - 1] = 0;
	return fail(s, -ECONNABORTED, "daemon ERROR %u: %s", e.code, e.message);
}

static int handle_msg(struct vvs *s, struct vshm_conn_msg *m)
{
	struct vhost_user_gpu_hdr h;
	const uint8_t *p = m->payload;
	uint32_t size = m->payload_size;

	memcpy(&h, m->hdr, sizeof(h));
	if (h.flags != 0 && h.flags != FLAG_REPLY)
		return bad(s, "header flags 0x%x", h.flags);
	if (h.request == VSHM_DISPLAY_ERROR)
		return on_error(s, p, size);
	if (h.request == VHOST_USER_GPU_GET_PROTOCOL_FEATURES)
		return on_get_features(s, h.flags, size, m->nfds);
	if (h.request == VHOST_USER_GPU_SET_PROTOCOL_FEATURES && !h.flags && !m->nfds)
		return on_set_features(s, p, size);
	if (h.request >= VHOST_USER_GPU_GET_DISPLAY_INFO &&
	    h.request <= VHOST_USER_GPU_DMABUF_SCANOUT2)
		return fail(s, -EPROTONOSUPPORT, "daemon serves this socket QEMU-only");
	if (h.request == VSHM_DISPLAY_HELLO && h.flags == FLAG_REPLY && !m->nfds)
		return on_hello_reply(s, p, size);
	if (h.request <= VSHM_DISPLAY_ID_FIRST || h.request > VSHM_DISPLAY_STATS)
		return 0; /* unknown id: skipped by size, fds closed by the caller */
	if (s->state != VVS_ACTIVE || h.flags)
		return bad(s, "message 0x%x before HELLO reply or with REPLY", h.request);
	if (m->nfds && h.request != VSHM_DISPLAY_SHM_BUFFER &&
	    h.request != VSHM_DISPLAY_DMABUF_BUFFER && h.request != VSHM_DISPLAY_FRAME)
		return bad(s, "message 0x%x with %u fds", h.request, m->nfds);
	switch (h.request) {
	case VSHM_DISPLAY_SHM_BUFFER:
		return on_shm_buffer(s, p, size, m);
	case VSHM_DISPLAY_DMABUF_BUFFER:
		return on_dmabuf_buffer(s, p, size, m);
	case VSHM_DISPLAY_BUFFER_DESTROY:
		return on_buffer_destroy(s, p, size);
	case VSHM_DISPLAY_SCANOUT:
		return on_scanout(s, p, size);
	case VSHM_DISPLAY_FRAME:
		return on_frame(s, p, size, m, vshm_now_ns());
	case VSHM_DISPLAY_HEARTBEAT:
		return on_heartbeat(s, p, size);
	case VSHM_DISPLAY_CURSOR:
		return on_cursor(s, p, size);
	default: /* STATS replies are never asked for; FRAME_RELEASE is C->D */
		return bad(s, "unexpected message 0x%x", h.request);
	}
}

int vvs_dispatch(struct vvs *s)
{
	struct vshm_conn_msg m;
	int r;

	for (;;) {
		r = vshm_conn_recv(s->conn, &m);
		if (r == -EAGAIN)
			break;
		if (r == -EPIPE || r == -ECONNRESET || r == -EIO)
			return fail(s, r, "daemon closed the connection");
		if (r < 0)
			return fail(s, r, "receive: %s", strerror(-r));
		r = handle_msg(s, &m);
		vshm_conn_msg_close_fds(&m);
		if (r < 0)
			return r;
	}
	r = vshm_conn_flush(s->conn);
	if (r < 0 && r != -EAGAIN)
		return fail(s, r, "send: %s", strerror(-r));
	return 0;
}

/* ---- life cycle ----------------------------------------------------------------------------- */

int vvs_connect(const char *path, const struct vvs_config *cfg, const struct vvs_handler *h,
                void *data, struct vvs **out)
{
	struct vshm_conn_config cc = {
		.header_size = HDR_SIZE,
		.size_offset = 8,
		.max_payload = VSHM_DISPLAY_MAX_D2C_PAYLOAD,
		.max_fds = VSHM_DISPLAY_MAX_FDS,
		.max_queued = MAX_QUEUED,
	};
	struct vvs *s;
	int fd, r;

	*out = NULL;
	if (!cfg->role || !*cfg->role || strlen(cfg->role) >= VSHM_DISPLAY_ROLE_SIZE ||
	    cfg->scanouts >> VSHM_DISPLAY_MAX_SCANOUTS)
		return -EINVAL;
	if ((r = vshm_unix_connect(path, &fd)) < 0)
		return r;
	if (!(s = calloc(1, sizeof(*s)))) {
		close(fd);
		return -ENOMEM;
	}
	s->cfg = *cfg;
	strncpy(s->role, cfg->role, sizeof(s->role) - 1);
	s->h = h;
	s->data = data;
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++) {
		s->buf[i].fd = -1;
		for (unsigned j = 0; j < VSHM_DISPLAY_MAX_PLANES; j++)
			s->buf[i].plane_fd[j] = -1;
	}
	s->offered = VHOST_USER_GPU_PROTOCOL_F_EDID | VSHM_DISPLAY_PROTOCOL_F_VSHM;
	if (cfg->offer_dmabuf)
		s->offered |= VSHM_DISPLAY_PROTOCOL_F_VSHM_DMABUF;
	if ((r = vshm_conn_new(fd, &cc, &s->conn)) < 0) {
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

void vvs_destroy(struct vvs **ps)
{
	struct vvs *s = *ps;
	if (!s)
		return;
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++)
		if (s->buf[i].id)
			buf_free(s, &s->buf[i]);
	vshm_conn_destroy(s->conn);
	free(s);
	*ps = NULL;
}

int vvs_fd(const struct vvs *s)
{
	return vshm_conn_get_fd(s->conn);
}

bool vvs_wants_write(const struct vvs *s)
{
	return vshm_conn_wants_write(s->conn);
}

uint64_t vvs_features(const struct vvs *s)
{
	return s->features;
}

uint64_t vvs_last_flush_ns(const struct vvs *s, uint32_t id)
{
	if (id >= VSHM_DISPLAY_MAX_SCANOUTS)
		return 0;
	return s->sc[id].flush_ns > s->sc[id].hb_flush_ns ? s->sc[id].flush_ns
	                                                  : s->sc[id].hb_flush_ns;
}

const char *vvs_error(const struct vvs *s)
{
	return s->err;
}
