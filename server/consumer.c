/* SPDX-License-Identifier: MIT */
/*
 * consumer.c - one display consumer connection (docs/protocol.md):
 * bounded reading and checking of everything the consumer sends, the
 * handshake (GET/SET_PROTOCOL_FEATURES, HELLO), and the vshm side of
 * serving it (SHM_BUFFER, SCANOUT, FRAME, CURSOR, HEARTBEAT, STATS,
 * FRAME_RELEASE and reclaiming). QEMU-only consumers are served by
 * consumer_qemu.c once the handshake says so.
 *
 * Like qemu_display.c, serving is "wanted vs sent": the device state lives
 * in struct vgs_consumers, each consumer remembers what it was sent, and
 * consumer_sync() sends the difference. Frames go through a one-frame
 * mailbox per scanout and leave it only when the previous frame of that
 * scanout has left the out-queue.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "consumers-internal.h"
#include "image.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define OFFERED_FEATURES VSHM_DISPLAY_PROTOCOL_F_VSHM
#define REQUIRED_SEALS   (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL)
/* Messages handled per readable event: a chatty consumer cannot hog the loop. */
#define RX_BUDGET        32
#define STATS_PER_SECOND 20
#define REPLY            VHOST_USER_GPU_MSG_FLAG_REPLY

static void on_socket(int fd, uint32_t revents, void *data);
static void on_timer(struct vshm_timer *t, void *data);
static void rearm(struct vgs_consumer *c);

static bool alive(const struct vgs_consumer *c)
{
	return c->st == CS_VSHM || c->st == CS_QEMU;
}

static const char *cname(const struct vgs_consumer *c)
{
	return c->role[0] ? c->role : "-";
}

/* ---- sending -------------------------------------------------------------------- */

/* Bytes towards the consumer not yet read by it: our queue plus the socket's. */
uint64_t consumer_queued(const struct vgs_consumer *c)
{
	int unread = 0;
	uint64_t q;

	if (!c->conn)
		return 0;
	q = vshm_conn_queued_bytes(c->conn);
	if (ioctl(c->fd, SIOCOUTQ, &unread) == 0 && unread > 0)
		q += (uint64_t)unread;
	return q;
}

void consumer_update_watch(struct vgs_consumer *c)
{
	uint32_t ev;

	if (!c->conn || !c->watch)
		return;
	ev = (c->st == CS_CLOSING ? 0 : VSHM_EV_IN) |
	     (vshm_conn_wants_write(c->conn) ? VSHM_EV_OUT : 0);
	if (ev != c->watch_events && vshm_event_loop_update_fd(c->cs->loop, c->watch, ev) == 0)
		c->watch_events = ev;
}

static void note_queue(struct vgs_consumer *c)
{
	size_t q = vshm_conn_queued_bytes(c->conn);

	if (q > c->queued_max)
		c->queued_max = q;
	consumer_update_watch(c);
}

/*
 * One message of up to two payload parts, copied. vshm consumers are held
 * to their own, smaller queue bound. 0, -ENOBUFS or a fatal -errno.
 */
int consumer_send(struct vgs_consumer *c, uint32_t request, uint32_t flags, const void *p1,
                  uint32_t n1, const void *p2, uint32_t n2, const int *fds, unsigned nfds)
{
	struct vhost_user_gpu_hdr hdr = { .request = request, .flags = flags, .size = n1 + n2 };
	struct iovec iov[3] = {
		{ &hdr, sizeof(hdr) },
		{ (void *)p1, n1 },
		{ (void *)p2, n2 },
	};
	int r;

	if (!c->conn)
		return -ENOTCONN;
	if (c->st != CS_QEMU && request != VSHM_DISPLAY_ERROR &&
	    vshm_conn_queued_bytes(c->conn) + sizeof(hdr) + n1 + n2 > c->cs->cfg.max_queued_vshm)
		return -ENOBUFS;
	r = vshm_conn_send(c->conn, iov, n2 ? 3 : n1 ? 2 : 1, fds, nfds);
	if (r == 0)
		note_queue(c);
	return r;
}

bool consumer_ctl(struct vgs_consumer *c, uint32_t request, const void *p1, uint32_t n1,
                  const void *p2, uint32_t n2, const int *fds, unsigned nfds)
{
	int r = consumer_send(c, request, 0, p1, n1, p2, n2, fds, nfds);

	if (r == 0)
		return true;
	if (r == -ENOBUFS)
		consumer_fail(c, VSHM_DISPLAY_ERR_TOO_SLOW, 0,
		              (uint32_t)(consumer_queued(c) > UINT32_MAX ? UINT32_MAX
		                                                         : consumer_queued(c)),
		              "out-queue over its bound");
	else
		consumer_close(c, strerror(-r));
	return false;
}

/* Release data of a referenced frame message. */
struct frame_ref {
	struct vgs_consumer *c;
	uint32_t scanout;
	uint64_t flush_ns;
	bool frame_end, in_send, released;
	struct vgs_image *img;
	void *buf;
};

static void frame_ref_done(struct frame_ref *r, bool written)
{
	struct vgs_consumer *c = r->c;

	vgs_image_unhold(r->img);
	vgs_image_unref(r->img);
	free(r->buf);
	/* A dead consumer's queue is being destroyed: nothing to count. */
	if (c->st != CS_DEAD) {
		c->sc[r->scanout].inflight--;
		if (written && r->frame_end)
			consumer_frame_written(c, r->scanout, r->flush_ns, vshm_now_ns());
		/* The scanout's next frame may go now. */
		if (written)
			cons_schedule(c->cs);
	}
	free(r);
}

static void frame_ref_release(void *data)
{
	struct frame_ref *r = data;

	if (r->in_send)
		r->released = true; /* finished by the sender, which knows the outcome */
	else
		frame_ref_done(r, true);
}

int consumer_send_frame_msg(struct vgs_consumer *c, struct iovec *iov, int iovcnt, uint32_t scanout,
                            uint64_t flush_ns, bool frame_end, struct vgs_image *img, void *buf)
{
	return consumer_send_frame_msg_fd(c, iov, iovcnt, scanout, flush_ns, frame_end, img, buf,
	                                  -1);
}

int consumer_send_frame_msg_fd(struct vgs_consumer *c, struct iovec *iov, int iovcnt,
                               uint32_t scanout, uint64_t flush_ns, bool frame_end,
                               struct vgs_image *img, void *buf, int fd)
{
	struct frame_ref *r = calloc(1, sizeof(*r));
	size_t total = 0;
	int ret;

	if (!r) {
		vgs_image_unref(img);
		free(buf);
		return -ENOBUFS;
	}
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	r->c = c;
	r->scanout = scanout;
	r->flush_ns = flush_ns;
	r->frame_end = frame_end;
	r->img = img;
	vgs_image_hold(img); /* pixels sent by reference: not rewritten while queued */
	r->buf = buf;
	c->sc[scanout].inflight++;
	if (c->st != CS_QEMU &&
	    vshm_conn_queued_bytes(c->conn) + total > c->cs->cfg.max_queued_vshm) {
		frame_ref_done(r, false);
		return -ENOBUFS;
	}
	r->in_send = true;
	ret = vshm_conn_send_ref(c->conn, iov, iovcnt, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0,
	                         frame_ref_release, r);
	r->in_send = false;
	if (r->released)
		frame_ref_done(r, ret == 0);
	if (ret == 0)
		note_queue(c);
	else if (ret != -ENOBUFS)
		consumer_close(c, strerror(-ret));
	return ret;
}

void consumer_frame_written(struct vgs_consumer *c, uint32_t scanout, uint64_t flush_ns,
                            uint64_t now)
{
	uint64_t us = now > flush_ns ? (now - flush_ns) / NS_PER_US : 0;

	c->sc[scanout].frames_sent++;
	latency_add(&c->lat, us);
}

/* ---- closing ------------------------------------------------------------------------ */

/* Release the @n oldest held frames of @m: their images may be written again. */
static void holds_drop(struct cscan *m, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		vgs_image_unhold(m->holds[i].img);
		vgs_image_unref(m->holds[i].img);
	}
	memmove(&m->holds[0], &m->holds[n], (m->nholds - n) * sizeof(m->holds[0]));
	m->nholds -= n;
}

static void rx_reset(struct vgs_consumer *c)
{
	for (unsigned i = 0; i < c->rx_nfds; i++)
		close(c->rx_fds[i]);
	c->rx_nfds = 0;
	c->rx_hdr_have = 0;
	c->rx_have = 0;
}

void consumer_close(struct vgs_consumer *c, const char *why)
{
	struct vgs_consumers *cs = c->cs;
	struct vgs_consumer **pp;

	if (c->st == CS_DEAD)
		return;
	consumer_stats_retire(c, why);
	c->st = CS_DEAD;
	if (c->watch)
		vshm_event_loop_remove_fd(cs->loop, c->watch);
	c->watch = NULL;
	if (c->timer)
		vshm_event_loop_remove_timer(cs->loop, c->timer);
	c->timer = NULL;
	/* Runs the release of every queued frame (they see CS_DEAD). */
	vshm_conn_destroy(c->conn);
	c->conn = NULL;
	rx_reset(c);
	for (unsigned s = 0; s < VGS_MAX_SCANOUTS; s++)
		holds_drop(&c->sc[s], c->sc[s].nholds);
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++) {
		if (c->bufs[i].id)
			c->bufs[i].ci->buffers--;
		c->bufs[i].id = 0;
	}
	for (pp = &cs->consumers; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	cs->nconsumers--;
	c->next = cs->dead;
	cs->dead = c;
	cons_schedule(cs);
}

void consumer_free(struct vgs_consumer *c)
{
	free(c);
}

void consumer_fail(struct vgs_consumer *c, uint32_t code, uint32_t request, uint32_t detail,
                   const char *what)
{
	struct vshm_display_error e = { .code = code, .request = request, .detail = detail };

	if (c->st == CS_CLOSING || c->st == CS_DEAD)
		return;
	vshm_log_ratelimited(&c->cs->rl, VSHM_LOG_WARN,
	                     "consumer %u (%s): %s (error %u, request 0x%x, detail %u); closing",
	                     c->id, cname(c), what, code, request, detail);
	c->cs->stats.errors++;
	if (code == VSHM_DISPLAY_ERR_TOO_SLOW)
		c->cs->stats.too_slow++;
	rx_reset(c);
	snprintf(e.message, sizeof(e.message), "%s", what);
	/* TOO_SLOW only if the socket has room: queueing behind a stall helps no one. */
	if (code != VSHM_DISPLAY_ERR_TOO_SLOW || vshm_conn_queued_bytes(c->conn) == 0)
		consumer_send(c, VSHM_DISPLAY_ERROR, 0, &e, sizeof(e), NULL, 0, NULL, 0);
	c->st = CS_CLOSING;
	if (!c->conn || !vshm_conn_wants_write(c->conn)) {
		consumer_close(c, what);
		return;
	}
	c->deadline_ns = vshm_now_ns() + (uint64_t)c->cs->cfg.error_flush_ms * NS_PER_MS;
	consumer_update_watch(c);
	rearm(c);
}

/* ---- vshm: buffers ------------------------------------------------------------------- */

static bool buffer_referenced(const struct vgs_consumer *c, uint32_t id)
{
	for (unsigned s = 0; s < VGS_MAX_SCANOUTS; s++)
		if ((c->granted & (1u << s)) && c->sc[s].sent_valid && c->sc[s].sent_buffer == id)
			return true;
	return c->cur.valid && c->cur.buffer == id;
}

static bool buffer_destroy(struct vgs_consumer *c, struct cbuf *b)
{
	struct vshm_display_buffer_destroy m = { .buffer_id = b->id };

	b->ci->buffers--;
	b->id = 0;
	b->ci = NULL;
	return consumer_ctl(c, VSHM_DISPLAY_BUFFER_DESTROY, &m, sizeof(m), NULL, 0, NULL, 0);
}

/*
 * Buffers no scanout or cursor of this consumer shows: cursor shapes go at
 * once (a shape is never reused), images once the device dropped them
 * (only our reference is left); others stay for page flips.
 */
static bool buffers_gc(struct vgs_consumer *c)
{
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++) {
		struct cbuf *b = &c->bufs[i];

		if (!b->id || buffer_referenced(c, b->id))
			continue;
		if ((b->ci->cursor || (b->ci->shown == 0 && b->ci->img->refcount == 1)) &&
		    !buffer_destroy(c, b))
			return false;
	}
	return true;
}

/* A read-only open file description of @fd (dup() would share O_RDWR). */
static int reopen_ro(int fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* The consumer's buffer id for @ci, defining it first. 0: none (c may be closed: check). */
static uint32_t buffer_for(struct vgs_consumer *c, struct cimage *ci)
{
	struct vgs_image *img = ci->img;
	struct vshm_display_shm_buffer m;
	struct cbuf *slot = NULL, *lru = NULL;
	uint64_t now = vshm_now_ns();
	enum cbuf_kind kind;
	struct stat st;
	int seals, fd;
	bool ok;

	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++) {
		struct cbuf *b = &c->bufs[i];

		if (b->id && b->ci == ci) {
			b->last_used_ns = now;
			return b->id;
		}
		if (!b->id && !slot)
			slot = b;
		else if (b->id && !buffer_referenced(c, b->id) &&
		         (!lru || b->last_used_ns < lru->last_used_ns))
			lru = b;
	}
	if (!slot) {
		/* MAX_BUFFERS defined: forget the least recently shown one. */
		if (!lru || !buffer_destroy(c, lru))
			return 0;
		slot = lru;
	}
	/* Only sealed memfds: a consumer must never be able to write the pixels. */
	seals = img->memfd >= 0 ? fcntl(img->memfd, F_GET_SEALS) : -1;
	/* Guest-blob views: a dma-buf, or a memfd copy (consumer_dmabuf.c). */
	kind = cons_buffer_kind(c, ci, seals >= 0 && (seals & REQUIRED_SEALS) == REQUIRED_SEALS);
	if (kind == CBUF_DMABUF) {
		if (!cons_dmabuf_define(c, ci, c->next_buffer_id + 1))
			return 0;
		m.buffer_id = ++c->next_buffer_id;
		goto defined;
	}
	if (kind == CBUF_COPY) {
		img = cons_copy_image(c->cs, ci);
		seals = img ? fcntl(img->memfd, F_GET_SEALS) : -1;
	}
	if (seals < 0 || (seals & REQUIRED_SEALS) != REQUIRED_SEALS) {
		vshm_log_ratelimited(&c->cs->rl, VSHM_LOG_WARN,
		                     "consumer %u: image not in a sealed memfd; scanout not shared",
		                     c->id);
		return 0;
	}
	/* SHM_BUFFER.size is the file size (views may sit in a larger memfd). */
	if (fstat(img->memfd, &st) < 0 || (uint64_t)st.st_size < img->size) {
		vshm_log_ratelimited(&c->cs->rl, VSHM_LOG_WARN,
		                     "consumer %u: image memfd smaller than the image", c->id);
		return 0;
	}
	fd = reopen_ro(img->memfd);
	if (fd < 0) {
		vshm_log_ratelimited(&c->cs->rl, VSHM_LOG_WARN,
		                     "consumer %u: no read-only fd (is /proc mounted?): %s", c->id,
		                     strerror(errno));
		return 0;
	}
	m = (struct vshm_display_shm_buffer){
		.buffer_id = ++c->next_buffer_id,
		.width = img->width,
		.height = img->height,
		.stride = img->stride,
		.drm_fourcc = img->drm_fourcc,
		.flags = VSHM_DISPLAY_BUFFER_F_Y_0_TOP,
		.offset = 0,
		.size = (uint64_t)st.st_size,
	};
	ok = consumer_ctl(c, VSHM_DISPLAY_SHM_BUFFER, &m, sizeof(m), NULL, 0, &fd, 1);
	close(fd);
	if (!ok)
		return 0;
defined:
	slot->id = m.buffer_id;
	slot->kind = kind;
	slot->ci = ci;
	slot->last_used_ns = now;
	ci->buffers++;
	return slot->id;
}

/* ---- vshm: mailbox and frames ---------------------------------------------------- */

static void rect_union(struct vgs_rect *a, const struct vgs_rect *b)
{
	uint64_t x0 = a->x < b->x ? a->x : b->x, y0 = a->y < b->y ? a->y : b->y;
	uint64_t ax1 = (uint64_t)a->x + a->width, bx1 = (uint64_t)b->x + b->width;
	uint64_t ay1 = (uint64_t)a->y + a->height, by1 = (uint64_t)b->y + b->height;

	a->x = (uint32_t)x0;
	a->y = (uint32_t)y0;
	a->width = (uint32_t)((ax1 > bx1 ? ax1 : bx1) - x0);
	a->height = (uint32_t)((ay1 > by1 ? ay1 : by1) - y0);
}

void consumer_mailbox_put(struct vgs_consumer *c, uint32_t scanout, const struct vgs_rect *damage,
                          bool whole)
{
	const struct dscanout *d = &c->cs->scanouts[scanout];
	struct cscan *m = &c->sc[scanout];

	if (!alive(c))
		return;
	if (!d->enabled) {
		/*
		 * A drop if another consumer got it: the next frame is then newer.
		 * Otherwise the next frame carries its seq again (consumers.c).
		 */
		if (m->mb_full && (m->mb_seq <= d->seq_sent || d->seq_pass != c->cs->pass))
			m->frames_dropped++;
		m->mb_full = false;
		return;
	}
	/* Replaced before it could go (latest frame wins); the same seq is a merge. */
	if (m->mb_full && m->mb_seq != d->seq)
		m->frames_dropped++;
	if (!m->mb_full) {
		m->mb_whole = false;
		m->mb_nrects = 0;
	}
	m->mb_full = true;
	m->mb_seq = d->seq;
	m->mb_flush_ns = d->last_flush_ns;
	if (whole || !damage ||
	    (damage->x == 0 && damage->y == 0 && damage->width >= d->rect.width &&
	     damage->height >= d->rect.height)) {
		m->mb_whole = true;
		m->mb_nrects = 0;
		return;
	}
	if (m->mb_whole)
		return;
	if (m->mb_nrects < VSHM_DISPLAY_MAX_RECTS) {
		m->mb_rects[m->mb_nrects++] = *damage;
		return;
	}
	/* Too many rects: one bounding box is still a correct (larger) damage. */
	for (unsigned i = 1; i < m->mb_nrects; i++)
		rect_union(&m->mb_rects[0], &m->mb_rects[i]);
	rect_union(&m->mb_rects[0], damage);
	m->mb_nrects = 1;
}

static void hold_push(struct vgs_consumer *c, struct cscan *m, uint64_t seq, uint64_t now,
                      struct vgs_image *img)
{
	if (m->nholds == CONS_HOLDS) {
		/* The consumer holds more frames than we track: the oldest is reclaimed. */
		holds_drop(m, 1);
		c->frames_reclaimed++;
	}
	/* Until released the device writes another image (device/image_pool.c). */
	vgs_image_hold(vgs_image_ref(img));
	m->holds[m->nholds++] = (struct hold){ seq, now, img };
}

/* The image of buffer @id (NULL: none). */
static struct vgs_image *buffer_image(const struct vgs_consumer *c, uint32_t id)
{
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++)
		if (id && c->bufs[i].id == id)
			return c->bufs[i].ci->img;
	return NULL;
}

/* The buffer slot of id @id (NULL: none). */
static struct cbuf *buffer_slot(struct vgs_consumer *c, uint32_t id)
{
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++)
		if (id && c->bufs[i].id == id)
			return &c->bufs[i];
	return NULL;
}

static void send_frame(struct vgs_consumer *c, uint32_t s)
{
	struct cbuf *cb;
	int fence, sent;
	struct cscan *m = &c->sc[s];
	const struct dscanout *d = &c->cs->scanouts[s];
	unsigned nrects = m->mb_whole ? 1 : m->mb_nrects;
	size_t len = sizeof(struct vshm_display_frame) + nrects * sizeof(struct vshm_display_rect);
	struct vhost_user_gpu_hdr hdr = { VSHM_DISPLAY_FRAME, 0, (uint32_t)len };
	struct vshm_display_frame *f;
	struct vshm_display_rect *rects;
	struct iovec iov[2];
	uint64_t now = vshm_now_ns();
	uint8_t *buf = malloc(len);

	if (!buf)
		return; /* stays in the mailbox */
	f = (struct vshm_display_frame *)buf;
	rects = (struct vshm_display_rect *)(buf + sizeof(*f));
	*f = (struct vshm_display_frame){
		.scanout_id = s,
		.buffer_id = m->sent_buffer,
		.seq = m->mb_seq,
		.flush_ns = m->mb_flush_ns,
		.send_ns = now,
		.flags = m->mb_whole ? VSHM_DISPLAY_FRAME_F_FULL : 0,
		.num_rects = nrects,
	};
	if (m->mb_whole)
		rects[0] = (struct vshm_display_rect){ 0, 0, d->rect.width, d->rect.height };
	else
		for (unsigned i = 0; i < nrects; i++)
			rects[i] = (struct vshm_display_rect){ m->mb_rects[i].x, m->mb_rects[i].y,
				                               m->mb_rects[i].width,
				                               m->mb_rects[i].height };
	iov[0] = (struct iovec){ &hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ buf, len };
	cb = buffer_slot(c, m->sent_buffer);
	/* VSHM_FENCE: a dma-buf frame is ready when its sync_file signals. */
	fence = cb && cb->kind == CBUF_DMABUF ? cons_dmabuf_frame_fence(c, cb->ci) : -1;
	if (fence >= 0)
		f->flags |= VSHM_DISPLAY_FRAME_F_FENCE;
	sent = consumer_send_frame_msg_fd(c, iov, 2, s, m->mb_flush_ns, true, NULL, buf, fence);
	if (fence >= 0)
		close(fence); /* the conn keeps its own dup while the message is queued */
	if (sent < 0)
		return; /* -ENOBUFS: stays in the mailbox; otherwise the consumer is gone */
	if (cb && cb->kind == CBUF_DMABUF)
		c->frames_dmabuf++;
	else if (cb && cb->kind == CBUF_COPY)
		c->frames_copy++;
	m->mb_full = false;
	m->last_seq_sent = m->mb_seq;
	m->last_flush_sent = m->mb_flush_ns;
	cons_frame_sent(c->cs, s, m->mb_seq);
	hold_push(c, m, m->mb_seq, now, buffer_image(c, m->sent_buffer));
	rearm(c);
}

/* ---- vshm: state sync ----------------------------------------------------------------- */

static bool sync_scanout(struct vgs_consumer *c, uint32_t s)
{
	const struct dscanout *d = &c->cs->scanouts[s];
	struct cscan *m = &c->sc[s];
	struct vshm_display_scanout msg = { .scanout_id = s };
	uint32_t want = 0;

	if (d->enabled && d->ci) {
		want = buffer_for(c, d->ci);
		if (!alive(c))
			return false;
	}
	if (want) {
		msg.buffer_id = want;
		msg.x = d->rect.x;
		msg.y = d->rect.y;
		msg.width = d->rect.width;
		msg.height = d->rect.height;
	}
	if (m->sent_valid && m->sent_buffer == want &&
	    (!want || !memcmp(&m->sent_rect, &d->rect, sizeof(d->rect))))
		return true;
	/* A disabled scanout is announced too: every granted one gets a SCANOUT. */
	if (!consumer_ctl(c, VSHM_DISPLAY_SCANOUT, &msg, sizeof(msg), NULL, 0, NULL, 0))
		return false;
	/*
	 * Frames of the old buffer stay held (docs/protocol.md 9.2): a page flip
	 * does not end them, FRAME_RELEASE (cumulative over the scanout) does.
	 */
	m->sent_valid = true;
	m->sent_buffer = want;
	m->sent_rect = d->rect;
	/* The next FRAME after a SCANOUT is FULL. */
	consumer_mailbox_reset(m, d, want != 0);
	return true;
}

static bool sync_cursor(struct vgs_consumer *c)
{
	const struct dcursor *cu = &c->cs->cursor;
	struct sent_cursor want = { 0 };
	struct vshm_display_cursor msg;

	if (c->hello_flags & VSHM_DISPLAY_HELLO_F_NO_CURSOR)
		return true;
	if (cu->ci && cu->scanout < VGS_MAX_SCANOUTS && (c->granted & (1u << cu->scanout))) {
		want.valid = true;
		want.scanout = cu->scanout;
		want.buffer = buffer_for(c, cu->ci);
		if (!alive(c))
			return false;
		want.hot_x = cu->hot_x;
		want.hot_y = cu->hot_y;
		want.x = cu->x;
		want.y = cu->y;
		want.visible = cu->visible && want.buffer;
	} else if (c->cur.valid && c->cur.visible) {
		/* Moved to a scanout this consumer does not have: hide it here. */
		want.valid = true;
		want.scanout = c->cur.scanout;
	} else {
		return true;
	}
	if (c->cur.valid && !memcmp(&c->cur, &want, sizeof(want)))
		return true;
	msg = (struct vshm_display_cursor){
		.scanout_id = want.scanout,
		.buffer_id = want.buffer,
		.hot_x = want.hot_x,
		.hot_y = want.hot_y,
		.x = (int32_t)want.x,
		.y = (int32_t)want.y,
		.flags = want.visible ? VSHM_DISPLAY_CURSOR_F_VISIBLE : 0,
	};
	if (!consumer_ctl(c, VSHM_DISPLAY_CURSOR, &msg, sizeof(msg), NULL, 0, NULL, 0))
		return false;
	c->cur = want;
	return true;
}

static void vshm_sync(struct vgs_consumer *c)
{
	for (uint32_t s = 0; s < VGS_MAX_SCANOUTS; s++)
		if ((c->granted & (1u << s)) && !sync_scanout(c, s))
			return;
	for (uint32_t s = 0; s < VGS_MAX_SCANOUTS && alive(c); s++) {
		struct cscan *m = &c->sc[s];

		if ((c->granted & (1u << s)) && m->mb_full && m->inflight == 0 && m->sent_buffer &&
		    m->nholds < CONS_MAX_UNRELEASED)
			send_frame(c, s);
	}
	if (!alive(c) || !sync_cursor(c))
		return;
	buffers_gc(c);
}

void consumer_sync(struct vgs_consumer *c)
{
	if (c->st == CS_VSHM)
		vshm_sync(c);
	else if (c->st == CS_QEMU)
		consumer_qemu_sync(c);
}

/* ---- vshm: heartbeat, stats ---------------------------------------------------------- */

static bool send_heartbeat(struct vgs_consumer *c, uint64_t now)
{
	struct vshm_display_heartbeat hb = {
		.now_ns = now,
		.guest_activity_ns = c->cs->guest_activity_ns,
		.period_ms = c->cs->cfg.heartbeat_ms,
	};
	struct vshm_display_heartbeat_scanout e[VGS_MAX_SCANOUTS];

	for (uint32_t s = 0; s < VGS_MAX_SCANOUTS; s++) {
		const struct dscanout *d = &c->cs->scanouts[s];

		if (!(c->granted & (1u << s)))
			continue;
		e[hb.count++] = (struct vshm_display_heartbeat_scanout){
			.scanout_id = s,
			.flags = d->enabled ? VSHM_DISPLAY_HEARTBEAT_F_ENABLED : 0,
			.last_seq = d->seq,
			.last_flush_ns = d->last_flush_ns,
		};
	}
	return consumer_ctl(c, VSHM_DISPLAY_HEARTBEAT, &hb, sizeof(hb), e, hb.count * sizeof(e[0]),
	                    NULL, 0);
}

static void handle_stats(struct vgs_consumer *c, uint32_t request)
{
	struct vshm_display_stats st = { 0 };
	struct vshm_display_stats_scanout e[VGS_MAX_SCANOUTS];
	struct vgs_consumer_info in;
	uint64_t now = vshm_now_ns();

	if (now - c->stats_window_ns >= 1000 * NS_PER_MS) {
		c->stats_window_ns = now;
		c->stats_in_window = 0;
	}
	if (++c->stats_in_window > STATS_PER_SECOND) {
		consumer_fail(c, VSHM_DISPLAY_ERR_RATE_LIMITED, request, 0, "STATS too often");
		return;
	}
	consumer_info(c, &in);
	st.now_ns = now;
	st.consumer_id = c->id;
	st.frames_sent = in.frames_sent;
	st.frames_dropped = in.frames_dropped;
	st.frames_reclaimed = in.frames_reclaimed;
	st.bytes_sent = in.bytes_sent;
	st.queued_bytes = in.queued_bytes;
	st.queued_bytes_max = in.queued_bytes_max;
	memcpy(st.latency_hist, in.latency_hist, sizeof(st.latency_hist));
	for (uint32_t s = 0; s < VGS_MAX_SCANOUTS; s++) {
		if (!(c->granted & (1u << s)))
			continue;
		e[st.count++] = (struct vshm_display_stats_scanout){
			.scanout_id = s,
			.frames_sent = c->sc[s].frames_sent,
			.frames_dropped = c->sc[s].frames_dropped,
			.last_seq = c->sc[s].last_seq_sent,
		};
	}
	if (consumer_send(c, VSHM_DISPLAY_STATS, REPLY, &st, sizeof(st), e, st.count * sizeof(e[0]),
	                  NULL, 0) < 0)
		consumer_fail(c, VSHM_DISPLAY_ERR_TOO_SLOW, request, 0, "cannot queue STATS");
}

static void handle_release(struct vgs_consumer *c, const struct vshm_display_frame_release *r)
{
	struct cscan *m;
	unsigned n = 0;

	if (r->scanout_id >= VGS_MAX_SCANOUTS || !(c->granted & (1u << r->scanout_id))) {
		consumer_fail(c, VSHM_DISPLAY_ERR_BAD_SCANOUT, VSHM_DISPLAY_FRAME_RELEASE,
		              r->scanout_id, "FRAME_RELEASE for a scanout not granted");
		return;
	}
	if (r->flags & VSHM_DISPLAY_RELEASE_F_FENCE) {
		bool fence_ok = c->features & VSHM_DISPLAY_PROTOCOL_F_VSHM_FENCE;

		if (!fence_ok || c->rx_nfds != 1) {
			consumer_fail(c, VSHM_DISPLAY_ERR_BAD_FDS, VSHM_DISPLAY_FRAME_RELEASE, 0,
			              fence_ok ? "FENCE without an fd"
			                       : "FENCE without VSHM_FENCE");
			return;
		}
	} else if (c->rx_nfds) {
		consumer_fail(c, VSHM_DISPLAY_ERR_BAD_FDS, VSHM_DISPLAY_FRAME_RELEASE, c->rx_nfds,
		              "an fd without FENCE");
		return;
	}
	m = &c->sc[r->scanout_id];
	if (r->seq > m->last_seq_sent) {
		consumer_fail(c, VSHM_DISPLAY_ERR_BAD_SEQ, VSHM_DISPLAY_FRAME_RELEASE,
		              r->scanout_id, "FRAME_RELEASE of a frame never sent");
		return;
	}
	if (c->rx_nfds == 1) {
		struct cbuf *cb = buffer_slot(c, m->sent_buffer);

		/* The consumer's reads, as a read fence on the dma-buf it reads. */
		cons_dmabuf_release_fence(c, cb && cb->kind == CBUF_DMABUF ? cb->ci : NULL,
		                          c->rx_fds[0]);
		close(c->rx_fds[0]);
		c->rx_nfds = 0;
	}
	while (n < m->nholds && m->holds[n].seq <= r->seq)
		n++;
	holds_drop(m, n);
	c->frames_released += n;
	if (n)
		cons_schedule(c->cs); /* a frame waiting in the mailbox may go now */
	rearm(c);
}

/* ---- handshake ------------------------------------------------------------------------- */

static void start_qemu(struct vgs_consumer *c)
{
	c->st = CS_QEMU;
	c->granted = c->allowed;
	c->last_empty_ns = vshm_now_ns();
	vshm_log(VSHM_LOG_INFO, "consumer %u (%s): QEMU-only, scanouts 0x%x", c->id, cname(c),
	         c->granted);
	rearm(c);
	consumer_sync(c);
}

static void handle_features(struct vgs_consumer *c, const uint8_t *p)
{
	uint64_t theirs, ours;

	memcpy(&theirs, p, sizeof(theirs));
	ours = theirs & (OFFERED_FEATURES | cons_dmabuf_features(c->cs));
	c->features = ours;
	if (!consumer_ctl(c, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, &ours, sizeof(ours), NULL, 0,
	                  NULL, 0))
		return;
	if (!(ours & VSHM_DISPLAY_PROTOCOL_F_VSHM)) {
		start_qemu(c);
		return;
	}
	c->st = CS_HELLO_WAIT;
	c->deadline_ns = vshm_now_ns() + (uint64_t)c->cs->cfg.hello_timeout_ms * NS_PER_MS;
	rearm(c);
}

static void handle_hello(struct vgs_consumer *c, const struct vshm_display_hello *h)
{
	struct vgs_consumers *cs = c->cs;
	struct vshm_display_hello_reply r = { 0 };
	bool role_ok, have_proc;
	int sz = cs->cfg.sndbuf;

	if (h->version == 0) {
		consumer_fail(c, VSHM_DISPLAY_ERR_VERSION, VSHM_DISPLAY_HELLO, VSHM_DISPLAY_VERSION,
		              "HELLO version 0");
		return;
	}
	if (h->scanouts >> VSHM_DISPLAY_MAX_SCANOUTS || !vshm_display_role_valid(h->role)) {
		consumer_fail(c, VSHM_DISPLAY_ERR_MALFORMED, VSHM_DISPLAY_HELLO, 0,
		              "HELLO with bad scanouts or role");
		return;
	}
	memcpy(c->role, h->role, sizeof(c->role));
	c->version = h->version < VSHM_DISPLAY_VERSION ? h->version : VSHM_DISPLAY_VERSION;
	c->hello_flags = h->flags;
	role_ok = !c->l->role[0] || !strcmp(c->l->role, c->role);
	/* Without /proc there is no read-only fd, and our own fd is never sent. */
	have_proc = access("/proc/self/fd", F_OK) == 0;
	for (uint32_t s = 0; s < VSHM_DISPLAY_MAX_SCANOUTS; s++) {
		uint8_t why = VSHM_DISPLAY_REFUSE_NONE;

		if (!(h->scanouts & (1u << s)))
			continue;
		if (s >= cs->cfg.num_scanouts)
			why = VSHM_DISPLAY_REFUSE_NO_SUCH_SCANOUT;
		else if (!role_ok || !(c->allowed & (1u << s)))
			why = VSHM_DISPLAY_REFUSE_NOT_PERMITTED;
		else if (!have_proc)
			why = VSHM_DISPLAY_REFUSE_UNSUPPORTED;
		if (why) {
			r.refused |= 1u << s;
			r.refuse_reason[s] = why;
		} else {
			r.granted |= 1u << s;
		}
	}
	r.version = c->version;
	r.consumer_id = c->id;
	r.num_scanouts = cs->cfg.num_scanouts;
	r.heartbeat_period_ms = cs->cfg.heartbeat_ms;
	r.release_timeout_ms = cs->cfg.release_timeout_ms;
	r.max_rects = VSHM_DISPLAY_MAX_RECTS;
	if (consumer_send(c, VSHM_DISPLAY_HELLO, REPLY, &r, sizeof(r), NULL, 0, NULL, 0) < 0) {
		consumer_close(c, "cannot send the HELLO reply");
		return;
	}
	c->granted = r.granted;
	c->st = CS_VSHM;
	c->last_empty_ns = vshm_now_ns();
	/* A small socket buffer: a consumer that stops reading backs up (and drops) soon. */
	if (sz > 0)
		setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	vshm_log(VSHM_LOG_INFO, "consumer %u (%s): vshm v%u, scanouts granted 0x%x refused 0x%x",
	         c->id, cname(c), c->version, r.granted, r.refused);
	rearm(c);
	vshm_sync(c);
	if (alive(c))
		send_heartbeat(c, vshm_now_ns());
}

/* ---- receiving and checking ----------------------------------------------------------------- */

/*
 * Decide on a complete header (docs/protocol.md section 10, in order):
 * flags, size, id and state, fds, exact size. Returns the expected payload
 * size, or -1 after failing the consumer.
 */
/* FRAME_RELEASE may carry one sync_file with VSHM_FENCE (handle_release checks the flag). */
static bool fence_fd_allowed(const struct vgs_consumer *c, uint32_t request)
{
	return request == VSHM_DISPLAY_FRAME_RELEASE && c->rx_nfds == 1 &&
	       (c->features & VSHM_DISPLAY_PROTOCOL_F_VSHM_FENCE);
}

static int check_header(struct vgs_consumer *c)
{
	struct vhost_user_gpu_hdr h;
	uint32_t want_flags = 0;
	int expect = -1;
	bool known;

	memcpy(&h, c->rx_hdr, sizeof(h));
	if (h.flags != 0 && h.flags != REPLY) {
		consumer_fail(c, VSHM_DISPLAY_ERR_BAD_FLAGS, h.request, h.flags,
		              "bad header flags");
		return -1;
	}
	if (h.size > VSHM_DISPLAY_MAX_C2D_PAYLOAD) {
		consumer_fail(c, VSHM_DISPLAY_ERR_TOO_LARGE, h.request, h.size,
		              "payload too large");
		return -1;
	}
	known = (h.request >= VHOST_USER_GPU_GET_PROTOCOL_FEATURES &&
	         h.request <= VHOST_USER_GPU_DMABUF_SCANOUT2) ||
	        (h.request >= VSHM_DISPLAY_HELLO && h.request <= VSHM_DISPLAY_STATS);
	if (!known) {
		consumer_fail(c, VSHM_DISPLAY_ERR_UNKNOWN_REQUEST, h.request, 0, "unknown request");
		return -1;
	}
	switch (c->st) {
	case CS_FEATURES:
		if (h.request == VHOST_USER_GPU_GET_PROTOCOL_FEATURES)
			want_flags = REPLY, expect = sizeof(uint64_t);
		break;
	case CS_HELLO_WAIT:
		if (h.request == VSHM_DISPLAY_HELLO)
			expect = sizeof(struct vshm_display_hello);
		break;
	case CS_VSHM:
		if (h.request == VSHM_DISPLAY_FRAME_RELEASE)
			expect = sizeof(struct vshm_display_frame_release);
		else if (h.request == VSHM_DISPLAY_STATS)
			expect = sizeof(struct vshm_display_stats_request);
		break;
	default:
		/* QEMU-only: only a DMABUF_UPDATE reply, and none is ever outstanding. */
		break;
	}
	if (expect < 0) {
		consumer_fail(c, VSHM_DISPLAY_ERR_UNEXPECTED, h.request, 0, "unexpected message");
		return -1;
	}
	if (h.flags != want_flags) {
		consumer_fail(c, VSHM_DISPLAY_ERR_BAD_FLAGS, h.request, h.flags,
		              "wrong flags for this message");
		return -1;
	}
	if (c->rx_nfds && !fence_fd_allowed(c, h.request)) {
		consumer_fail(c, VSHM_DISPLAY_ERR_BAD_FDS, h.request, c->rx_nfds,
		              "fds on a message that takes none");
		return -1;
	}
	if (h.size != (uint32_t)expect) {
		consumer_fail(c, VSHM_DISPLAY_ERR_MALFORMED, h.request, (uint32_t)expect,
		              "wrong payload size");
		return -1;
	}
	return expect;
}

static void dispatch(struct vgs_consumer *c)
{
	struct vhost_user_gpu_hdr h;

	memcpy(&h, c->rx_hdr, sizeof(h));
	if (c->rx_nfds && !fence_fd_allowed(c, h.request)) {
		consumer_fail(c, VSHM_DISPLAY_ERR_BAD_FDS, h.request, c->rx_nfds,
		              "fds on a message that takes none");
		return;
	}
	switch (h.request) {
	case VHOST_USER_GPU_GET_PROTOCOL_FEATURES:
		handle_features(c, c->rx_payload);
		break;
	case VSHM_DISPLAY_HELLO: {
		struct vshm_display_hello hello;

		memcpy(&hello, c->rx_payload, sizeof(hello));
		handle_hello(c, &hello);
		break;
	}
	case VSHM_DISPLAY_FRAME_RELEASE: {
		struct vshm_display_frame_release r;

		memcpy(&r, c->rx_payload, sizeof(r));
		handle_release(c, &r);
		break;
	}
	case VSHM_DISPLAY_STATS:
		handle_stats(c, h.request);
		break;
	}
}

/* Collect SCM_RIGHTS fds into the message being read; extra ones are closed. */
static void take_fds(struct vgs_consumer *c, struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		size_t n;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			if (c->rx_nfds < VSHM_DISPLAY_MAX_FDS)
				c->rx_fds[c->rx_nfds++] = fd;
			else
				close(fd);
		}
	}
}

/* Read one message. 1: complete; 0: wait for more; -1: the consumer was failed or closed. */
static int rx_one(struct vgs_consumer *c)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VSHM_DISPLAY_MAX_FDS)];
	} ctrl;

	for (;;) {
		struct iovec iov;
		struct msghdr mh = { 0 };
		uint32_t size;
		ssize_t n;

		if (c->rx_hdr_have < sizeof(c->rx_hdr)) {
			iov.iov_base = c->rx_hdr + c->rx_hdr_have;
			iov.iov_len = sizeof(c->rx_hdr) - c->rx_hdr_have;
		} else {
			memcpy(&size, c->rx_hdr + offsetof(struct vhost_user_gpu_hdr, size),
			       sizeof(size));
			if (c->rx_have == size)
				return 1;
			iov.iov_base = c->rx_payload + c->rx_have;
			iov.iov_len = size - c->rx_have;
		}
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = ctrl.buf;
		mh.msg_controllen = sizeof(ctrl.buf);
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			consumer_close(c, strerror(errno));
			return -1;
		}
		take_fds(c, &mh);
		if (mh.msg_flags & MSG_CTRUNC) {
			consumer_fail(c, VSHM_DISPLAY_ERR_BAD_FDS, 0, VSHM_DISPLAY_MAX_FDS + 1,
			              "too many fds");
			return -1;
		}
		if (n == 0) {
			consumer_close(c, c->rx_hdr_have ? "hung up mid-message" : "hung up");
			return -1;
		}
		if (c->rx_hdr_have < sizeof(c->rx_hdr)) {
			c->rx_hdr_have += (uint32_t)n;
			if (c->rx_hdr_have == sizeof(c->rx_hdr) && check_header(c) < 0)
				return -1;
		} else {
			c->rx_have += (uint32_t)n;
		}
	}
}

static void on_socket(int fd, uint32_t revents, void *data)
{
	struct vgs_consumer *c = data;

	(void)fd;
	if (revents & VSHM_EV_OUT) {
		int r = vshm_conn_flush(c->conn);

		if (r < 0 && r != -EAGAIN) {
			consumer_close(c, strerror(-r));
			return;
		}
		if (c->st == CS_CLOSING && r == 0) {
			consumer_close(c, "error sent");
			return;
		}
		consumer_update_watch(c);
		/* Frames may have left the queue: their successors can go. */
		cons_schedule(c->cs);
	}
	if (c->st == CS_CLOSING) {
		if (revents & (VSHM_EV_HUP | VSHM_EV_ERR))
			consumer_close(c, "hung up");
		return;
	}
	if (revents & (VSHM_EV_IN | VSHM_EV_HUP | VSHM_EV_ERR)) {
		for (int i = 0; i < RX_BUDGET && c->st != CS_CLOSING && c->st != CS_DEAD; i++) {
			int r = rx_one(c);

			if (r <= 0)
				break;
			dispatch(c);
			if (c->st == CS_CLOSING || c->st == CS_DEAD)
				break;
			rx_reset(c);
		}
	}
}

/* ---- timers ---------------------------------------------------------------------------------- */

static void rearm(struct vgs_consumer *c)
{
	uint64_t next = UINT64_MAX, now, rt = (uint64_t)c->cs->cfg.release_timeout_ms * NS_PER_MS;

	if (!c->timer)
		return;
	if (c->st == CS_FEATURES || c->st == CS_HELLO_WAIT || c->st == CS_CLOSING)
		next = c->deadline_ns;
	if (c->st == CS_VSHM)
		for (unsigned s = 0; s < VGS_MAX_SCANOUTS; s++)
			if (c->sc[s].nholds && c->sc[s].holds[0].sent_ns + rt < next)
				next = c->sc[s].holds[0].sent_ns + rt;
	if (next == UINT64_MAX) {
		vshm_timer_arm(c->timer, 0, 0);
		return;
	}
	now = vshm_now_ns();
	vshm_timer_arm(c->timer, next > now ? next - now : 1, 0);
}

static void on_timer(struct vshm_timer *t, void *data)
{
	struct vgs_consumer *c = data;
	uint64_t now = vshm_now_ns(), rt = (uint64_t)c->cs->cfg.release_timeout_ms * NS_PER_MS;

	(void)t;
	if (c->st == CS_FEATURES && now >= c->deadline_ns) {
		/* No reply: features 0, QEMU-only, no SET_PROTOCOL_FEATURES. */
		c->features = 0;
		start_qemu(c);
		return;
	}
	if (c->st == CS_HELLO_WAIT && now >= c->deadline_ns) {
		consumer_fail(c, VSHM_DISPLAY_ERR_TIMEOUT, 0, c->cs->cfg.hello_timeout_ms,
		              "no HELLO in time");
		return;
	}
	if (c->st == CS_CLOSING && now >= c->deadline_ns) {
		consumer_close(c, "error not taken in time");
		return;
	}
	if (c->st == CS_VSHM) {
		for (unsigned s = 0; s < VGS_MAX_SCANOUTS; s++) {
			struct cscan *m = &c->sc[s];

			while (m->nholds && m->holds[0].sent_ns + rt <= now) {
				holds_drop(m, 1); /* reclaimed: the device may write it again */
				c->frames_reclaimed++;
				cons_schedule(c->cs);
			}
		}
	}
	rearm(c);
}

void consumer_tick(struct vgs_consumer *c, uint64_t now)
{
	uint64_t q;

	if (!alive(c))
		return;
	q = consumer_queued(c);
	if (q == 0) {
		c->last_empty_ns = now;
	} else if (now - c->last_empty_ns > (uint64_t)c->cs->cfg.consumer_deadline_ms * NS_PER_MS) {
		consumer_fail(c, VSHM_DISPLAY_ERR_TOO_SLOW, 0,
		              (uint32_t)(q > UINT32_MAX ? UINT32_MAX : q),
		              "consumer stopped reading");
		return;
	}
	if (c->st == CS_VSHM)
		send_heartbeat(c, now);
}

/* ---- creation -------------------------------------------------------------------------------- */

int consumer_new(struct vgs_consumers *cs, struct listener *l, int fd)
{
	struct vshm_conn_config cc = {
		.header_size = VHOST_USER_GPU_HDR_SIZE,
		.size_offset = offsetof(struct vhost_user_gpu_hdr, size),
		.max_payload = VSHM_DISPLAY_MAX_C2D_PAYLOAD,
		.max_fds = VSHM_DISPLAY_MAX_FDS,
		/* The QEMU-only bound; vshm consumers are held to theirs in consumer_send(). */
		.max_queued = cs->cfg.max_queued_qemu,
	};
	struct vgs_consumer *c = calloc(1, sizeof(*c));
	int r;

	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	r = vshm_conn_new(fd, &cc, &c->conn);
	if (r < 0) {
		free(c);
		return r;
	}
	c->cs = cs;
	c->l = l;
	c->fd = vshm_conn_get_fd(c->conn);
	c->id = cs->next_id++;
	c->st = CS_FEATURES;
	c->allowed = l->scanouts & ((1u << cs->cfg.num_scanouts) - 1);
	memcpy(c->role, l->role, sizeof(c->role));
	c->rl = (struct vshm_ratelimit)VSHM_RATELIMIT_INIT(5000, 10);
	r = vshm_event_loop_add_fd(cs->loop, c->fd, VSHM_EV_IN, on_socket, c, &c->watch);
	if (r == 0)
		r = vshm_event_loop_add_timer(cs->loop, on_timer, c, &c->timer);
	if (r < 0) {
		if (c->watch)
			vshm_event_loop_remove_fd(cs->loop, c->watch);
		vshm_conn_destroy(c->conn);
		free(c);
		return r;
	}
	c->watch_events = VSHM_EV_IN;
	c->next = NULL;
	{
		struct vgs_consumer **pp = &cs->consumers;

		while (*pp)
			pp = &(*pp)->next;
		*pp = c;
	}
	cs->nconsumers++;
	vshm_log(VSHM_LOG_INFO, "consumer %u connected on %s", c->id,
	         l->path ? l->path : "an adopted socket");
	c->deadline_ns = vshm_now_ns() + (uint64_t)cs->cfg.features_timeout_ms * NS_PER_MS;
	if (!consumer_ctl(c, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, NULL, 0, NULL, 0, NULL, 0))
		return -EIO;
	rearm(c);
	return 0;
}
