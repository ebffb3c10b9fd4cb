/* SPDX-License-Identifier: MIT */
/*
 * qemu_display.c - display sink speaking QEMU's vhost-user-gpu protocol.
 *
 * State model: for every scanout and for the cursor the sink keeps what the
 * device wants shown and what was sent on the current socket; sync()
 * sends the difference whenever something changes or the out-queue
 * drains. That one rule covers socket re-delivery (everything is re-sent),
 * sends refused by the queue bound (retried on drain) and coalescing (a
 * scanout with an UPDATE still queued just accumulates damage).
 *
 * Queries (GET_DISPLAY_INFO, GET_EDID) are serialized: at most one is
 * answered-pending at a time, because QEMU answers in order but silently
 * skips GET_EDID for scanout ids it does not have. Replies are matched
 * against a queue of what was sent; see match_reply().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/conn.h>
#include <vshm/log.h>
#include <vshm-proto/qemu-display.h>

#include "qemu_display.h"

/* virtio-gpu 2D formats (enum virtio_gpu_formats), named by memory byte order. */
#define FMT_B8G8R8A8 1
#define FMT_B8G8R8X8 2
#define FMT_A8R8G8B8 3
#define FMT_X8R8G8B8 4
#define FMT_R8G8B8A8 67
#define FMT_X8B8G8R8 68
#define FMT_A8B8G8R8 121
#define FMT_R8G8B8X8 134

/*
 * Rows per UPDATE message when rows are not contiguous: vshm_conn takes at
 * most 64 iovecs (header, Update struct, then one per row).
 */
#define ROWS_PER_MSG 62
/* Pixel bytes per UPDATE message: keeps one message well under the queue bound. */
#define MAX_MSG_PIXEL_BYTES (16u << 20)
/* Largest reply we accept (EDID is 1056 bytes). */
#define MAX_REPLY_PAYLOAD 4096

#define MAX_PENDING  32
#define MAX_EXPECTED 64

#define NS_PER_MS 1000000ull

enum hs_state {
	HS_NONE,  /* no socket */
	HS_WAIT,  /* GET_PROTOCOL_FEATURES sent, reply awaited */
	HS_READY, /* handshake finished (reply or timeout) */
};

enum query_type {
	Q_DISPLAY_INFO = VHOST_USER_GPU_GET_DISPLAY_INFO,
	Q_EDID = VHOST_USER_GPU_GET_EDID,
};

struct query {
	enum query_type type;
	uint32_t scanout_id;
	vgs_display_info_cb info_cb;
	vgs_edid_cb edid_cb;
	void *cb_data;
	uint64_t deadline_ns;
};

/* A request sent on the socket whose reply has not been seen yet. */
struct expected {
	uint8_t type;
	bool live; /* the reply belongs to d->live; false = orphan (timed out / barrier) */
};

struct scanout {
	/* What the device wants. */
	bool enabled;
	struct vgs_rect rect;    /* shown part of the image */
	struct vgs_image *image; /* reference, NULL when disabled */
	/* What QEMU got on this socket. */
	bool sent_valid;
	uint32_t sent_w, sent_h;
	/* Damage not sent yet (scanout coordinates), and UPDATE messages queued. */
	bool dirty;
	struct vgs_rect damage;
	unsigned inflight;
};

/* Release data of one UPDATE message handed to vshm_conn_send_ref(). */
struct update_ref {
	struct vgs_qemu_display *d;
	uint32_t scanout;
	struct vgs_image *img; /* direct path: the referenced image */
	void *buf;             /* conversion path: the converted pixels (mmap'd) */
	size_t buf_len;
	bool in_send, done;
	/* Referenced by the queued message. Last: the struct ends in a flexible array. */
	struct vhost_user_gpu_update u;
};

struct vgs_qemu_display {
	struct vshm_event_loop *loop;
	struct vgs_qemu_display_config cfg;
	struct vgs_display_sink sink;

	struct vshm_conn *conn;
	struct vshm_watch *watch;
	uint32_t watch_events;
	uint64_t conn_gen; /* bumped on every drop, so loops notice */
	struct vshm_conn_stats prev_conn_stats;

	enum hs_state hs;
	uint64_t hs_deadline_ns;
	uint64_t features;

	struct vshm_timer *timer;

	struct scanout scanouts[VGS_MAX_SCANOUTS];

	/* Cursor: shape + position wanted, and what is left to send. */
	bool cursor_have_shape, cursor_visible;
	uint32_t cursor_scanout, cursor_x, cursor_y, cursor_hot_x, cursor_hot_y;
	uint32_t cursor_pixels[VGS_CURSOR_DIM * VGS_CURSOR_DIM];
	bool cursor_shape_dirty, cursor_pos_dirty;

	struct query pending[MAX_PENDING];
	unsigned pending_head, pending_count;
	struct query live;
	bool have_live;
	struct expected expected[MAX_EXPECTED];
	unsigned exp_head, exp_count;

	struct vgs_qemu_display_stats stats;
	struct vshm_ratelimit rl;
};

static void sync_state(struct vgs_qemu_display *d);
static void rearm_timer(struct vgs_qemu_display *d);

static uint64_t now_ns(void)
{
	return vshm_now_ns();
}

void vgs_qemu_display_config_defaults(struct vgs_qemu_display_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->num_scanouts = 1;
	cfg->handshake_timeout_ms = 500;
	cfg->reply_timeout_ms = 500;
	cfg->max_queued = 256u << 20;
	cfg->sndbuf = 8 << 20;
}

/* ---- socket plumbing ---------------------------------------------------- */

static void update_watch(struct vgs_qemu_display *d)
{
	uint32_t ev;

	if (!d->conn || !d->watch)
		return;
	ev = VSHM_EV_IN | (vshm_conn_wants_write(d->conn) ? VSHM_EV_OUT : 0);
	if (ev != d->watch_events && vshm_event_loop_update_fd(d->loop, d->watch, ev) == 0)
		d->watch_events = ev;
}

static void fail_query(struct vgs_qemu_display *d, struct query *q)
{
	(void)d;
	if (q->type == Q_DISPLAY_INFO)
		q->info_cb(q->cb_data, false, NULL);
	else
		q->edid_cb(q->cb_data, false, NULL, 0);
}

/* Fail every query; used when the socket goes away. */
static void fail_all_queries(struct vgs_qemu_display *d)
{
	/* Callbacks may add queries (they get -ENOTCONN now), so pop first. */
	while (d->have_live || d->pending_count) {
		struct query q;

		if (d->have_live) {
			q = d->live;
			d->have_live = false;
		} else {
			q = d->pending[d->pending_head];
			d->pending_head = (d->pending_head + 1) % MAX_PENDING;
			d->pending_count--;
		}
		fail_query(d, &q);
	}
	d->exp_head = d->exp_count = 0;
}

static void drop_socket(struct vgs_qemu_display *d, const char *why)
{
	struct vshm_conn_stats st;

	if (!d->conn)
		return;
	vshm_log(VSHM_LOG_INFO, "qemu-display: dropping display socket: %s", why);
	vshm_conn_get_stats(d->conn, &st);
	d->stats.bytes_sent += st.bytes_out;
	d->stats.msgs_sent += st.msgs_out;
	if (d->watch)
		vshm_event_loop_remove_fd(d->loop, d->watch);
	d->watch = NULL;
	/* Destroying the conn runs the release callbacks of queued UPDATEs. */
	vshm_conn_destroy(d->conn);
	d->conn = NULL;
	d->conn_gen++;
	d->hs = HS_NONE;
	d->features = 0;
	d->stats.disconnects++;
	for (unsigned i = 0; i < VGS_MAX_SCANOUTS; i++)
		d->scanouts[i].sent_valid = false;
	fail_all_queries(d);
	rearm_timer(d);
}

/* 0, -ENOBUFS (retry after drain), or a fatal error after which the socket is gone. */
static int check_send(struct vgs_qemu_display *d, int r)
{
	if (r == -ENOBUFS) {
		d->stats.send_deferred++;
		return r;
	}
	if (r < 0) {
		drop_socket(d, strerror(-r));
		return r;
	}
	update_watch(d);
	return 0;
}

static int send_msg(struct vgs_qemu_display *d, uint32_t request, const void *payload,
                    uint32_t size)
{
	struct vhost_user_gpu_hdr hdr = { .request = request, .flags = 0, .size = size };
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = size },
	};

	if (!d->conn)
		return -ENOTCONN;
	return check_send(d, vshm_conn_send(d->conn, iov, size ? 2 : 1, NULL, 0));
}

/* ---- UPDATE messages ----------------------------------------------------- */

static void update_release(void *data)
{
	struct update_ref *r = data;

	r->d->scanouts[r->scanout].inflight--;
	vgs_image_unhold(r->img);
	vgs_image_unref(r->img);
	if (r->buf)
		munmap(r->buf, r->buf_len);
	r->img = NULL;
	r->buf = NULL;
	if (r->in_send)
		r->done = true; /* send_update_msg() frees it */
	else
		free(r);
}

static int send_update_msg(struct vgs_qemu_display *d, uint32_t idx, const struct vgs_rect *box,
                           struct iovec *iov, int iovcnt, struct update_ref *r)
{
	uint64_t bytes = (uint64_t)box->width * box->height * 4;
	struct vhost_user_gpu_hdr hdr = {
		.request = VHOST_USER_GPU_UPDATE,
		.flags = 0,
		.size = (uint32_t)(sizeof(r->u) + bytes),
	};
	int ret;

	r->u = (struct vhost_user_gpu_update){
		.scanout_id = idx,
		.x = box->x,
		.y = box->y,
		.width = box->width,
		.height = box->height,
	};
	iov[0] = (struct iovec){ &hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ &r->u, sizeof(r->u) };
	r->d = d;
	r->scanout = idx;
	r->in_send = true;
	r->done = false;
	d->scanouts[idx].inflight++;
	/* The release runs exactly once: now (written or refused) or when dequeued. */
	ret = vshm_conn_send_ref(d->conn, iov, iovcnt, NULL, 0, update_release, r);
	r->in_send = false;
	if (r->done)
		free(r);
	if (ret == 0) {
		d->stats.update_msgs++;
		d->stats.update_bytes += bytes;
	}
	return check_send(d, ret);
}

/* Pixel conversion to x8r8g8b8 (bytes B,G,R,X in memory). */
static void convert_row(uint8_t *dst, const uint8_t *src, uint32_t n, uint32_t format)
{
	for (uint32_t i = 0; i < n; i++, dst += 4, src += 4) {
		switch (format) {
		case FMT_A8R8G8B8:
		case FMT_X8R8G8B8: /* A,R,G,B */
			dst[0] = src[3], dst[1] = src[2], dst[2] = src[1], dst[3] = src[0];
			break;
		case FMT_R8G8B8A8:
		case FMT_R8G8B8X8: /* R,G,B,A */
			dst[0] = src[2], dst[1] = src[1], dst[2] = src[0], dst[3] = src[3];
			break;
		case FMT_X8B8G8R8:
		case FMT_A8B8G8R8: /* A,B,G,R */
			dst[0] = src[1], dst[1] = src[2], dst[2] = src[3], dst[3] = src[0];
			break;
		default:
			memcpy(dst, src, 4);
			break;
		}
	}
}

static bool format_is_native(uint32_t format)
{
	/* B8G8R8X8/B8G8R8A8 are byte-identical to pixman x8r8g8b8 on little-endian. */
	return format == FMT_B8G8R8X8 || format == FMT_B8G8R8A8;
}

/*
 * Send s->damage as one frame, split into messages of bounded size. On a
 * refused chunk the rows not sent stay as damage, to go after the drain.
 */
static void send_frame(struct vgs_qemu_display *d, uint32_t idx)
{
	struct scanout *s = &d->scanouts[idx];
	struct vgs_image *img = s->image;
	struct vgs_rect dmg = s->damage;
	uint64_t gen = d->conn_gen;
	uint32_t row_bytes = dmg.width * 4;
	bool native = format_is_native(img->format);
	bool contiguous = native && row_bytes == img->stride;
	/* A message larger than a quarter of the queue bound could starve everything else. */
	size_t max_bytes = d->cfg.max_queued / 4 < MAX_MSG_PIXEL_BYTES ? d->cfg.max_queued / 4
	                                                               : MAX_MSG_PIXEL_BYTES;
	uint32_t chunk = (uint32_t)(max_bytes / row_bytes);
	struct iovec iov[2 + ROWS_PER_MSG];
	uint32_t y = 0;

	if (chunk == 0)
		chunk = 1;
	if (!contiguous && native && chunk > ROWS_PER_MSG)
		chunk = ROWS_PER_MSG;
	if (!native)
		d->stats.conversions++;
	s->dirty = false;
	d->stats.frames_sent++;

	while (y < dmg.height) {
		uint32_t rows = dmg.height - y < chunk ? dmg.height - y : chunk;
		struct vgs_rect box = { dmg.x, dmg.y + y, dmg.width, rows };
		const uint8_t *src = img->data + (uint64_t)(s->rect.y + box.y) * img->stride +
		                     (uint64_t)(s->rect.x + box.x) * 4;
		struct update_ref *r = calloc(1, sizeof(*r));
		int iovcnt = 2, ret;

		if (!r)
			goto refused;
		if (!native) {
			/*
			 * mmap, not malloc: with spliced sends the kernel keeps
			 * referencing these pages after release until QEMU has read
			 * them. munmap leaves the pages to the kernel; a freed heap
			 * chunk could be reused and leak other daemon memory.
			 */
			size_t len = (size_t)row_bytes * rows;
			uint8_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
			                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (buf == MAP_FAILED) {
				free(r);
				goto refused;
			}
			r->buf_len = len;
			for (uint32_t i = 0; i < rows; i++)
				convert_row(buf + (size_t)i * row_bytes,
				            src + (size_t)i * img->stride, dmg.width, img->format);
			r->buf = buf;
			iov[iovcnt++] = (struct iovec){ buf, (size_t)row_bytes * rows };
		} else if (contiguous) {
			/* Held while queued: the device writes another image meanwhile. */
			r->img = vgs_image_ref(img);
			vgs_image_hold(img);
			iov[iovcnt++] = (struct iovec){ (void *)src, (size_t)row_bytes * rows };
		} else {
			r->img = vgs_image_ref(img);
			vgs_image_hold(img);
			for (uint32_t i = 0; i < rows; i++)
				iov[iovcnt++] =
				        (struct iovec){ (void *)(src + (size_t)i * img->stride),
					                row_bytes };
		}
		ret = send_update_msg(d, idx, &box, iov, iovcnt, r);
		if (d->conn_gen != gen)
			return; /* socket dropped; everything is re-sent on the next one */
		if (ret < 0)
			goto keep; /* refused by the queue bound: the rest goes after the drain */
		y += rows;
	}
	return;

refused:
	vshm_log_ratelimited(&d->rl, VSHM_LOG_WARN, "qemu-display: out of memory for an UPDATE");
keep:
	/* Keep the rows not sent as damage; later flushes merge into them. */
	dmg.y += y;
	dmg.height -= y;
	s->damage = dmg;
	s->dirty = dmg.height > 0;
}

static void rect_union(struct vgs_rect *a, const struct vgs_rect *b)
{
	uint64_t x0 = a->x < b->x ? a->x : b->x;
	uint64_t y0 = a->y < b->y ? a->y : b->y;
	uint64_t ax1 = (uint64_t)a->x + a->width, bx1 = (uint64_t)b->x + b->width;
	uint64_t ay1 = (uint64_t)a->y + a->height, by1 = (uint64_t)b->y + b->height;
	uint64_t x1 = ax1 > bx1 ? ax1 : bx1, y1 = ay1 > by1 ? ay1 : by1;

	a->x = (uint32_t)x0;
	a->y = (uint32_t)y0;
	a->width = (uint32_t)(x1 - x0);
	a->height = (uint32_t)(y1 - y0);
}

/* Clip @r to the scanout's size; false when nothing is left. */
static bool clip_to_scanout(const struct scanout *s, struct vgs_rect *r)
{
	uint64_t x1 = (uint64_t)r->x + r->width, y1 = (uint64_t)r->y + r->height;

	if (r->x >= s->rect.width || r->y >= s->rect.height)
		return false;
	if (x1 > s->rect.width)
		x1 = s->rect.width;
	if (y1 > s->rect.height)
		y1 = s->rect.height;
	r->width = (uint32_t)(x1 - r->x);
	r->height = (uint32_t)(y1 - r->y);
	return r->width > 0 && r->height > 0;
}

static void add_damage(struct vgs_qemu_display *d, struct scanout *s, const struct vgs_rect *r)
{
	struct vgs_rect c = *r;

	if (!s->enabled || !s->image || !clip_to_scanout(s, &c))
		return;
	if (s->dirty) {
		d->stats.frames_coalesced++;
		rect_union(&s->damage, &c);
	} else {
		s->damage = c;
		s->dirty = true;
	}
}

/* ---- queries -------------------------------------------------------------- */

static bool push_expected(struct vgs_qemu_display *d, uint8_t type, bool live)
{
	if (d->exp_count == MAX_EXPECTED)
		return false;
	d->expected[(d->exp_head + d->exp_count) % MAX_EXPECTED] =
	        (struct expected){ .type = type, .live = live };
	d->exp_count++;
	return true;
}

/* Send the next pending query when none is awaiting its reply. */
static void send_next_query(struct vgs_qemu_display *d)
{
	while (d->conn && d->hs == HS_READY && !d->have_live && d->pending_count &&
	       d->exp_count < MAX_EXPECTED) {
		struct query *q = &d->pending[d->pending_head];
		struct vhost_user_gpu_edid_request req = { .scanout_id = q->scanout_id };
		int r;

		if (q->type == Q_EDID && !(d->features & VHOST_USER_GPU_PROTOCOL_F_EDID)) {
			/* Negotiated without EDID after the query was queued. */
			struct query f = *q;

			d->pending_head = (d->pending_head + 1) % MAX_PENDING;
			d->pending_count--;
			fail_query(d, &f);
			continue;
		}
		r = q->type == Q_EDID ? send_msg(d, Q_EDID, &req, sizeof(req))
		                      : send_msg(d, Q_DISPLAY_INFO, NULL, 0);
		if (r < 0)
			break; /* deferred (retried on drain) or socket gone */
		d->live = *q;
		d->live.deadline_ns = now_ns() + (uint64_t)d->cfg.reply_timeout_ms * NS_PER_MS;
		d->have_live = true;
		d->pending_head = (d->pending_head + 1) % MAX_PENDING;
		d->pending_count--;
		push_expected(d, (uint8_t)q->type, true);
		d->stats.queries++;
	}
	rearm_timer(d);
}

static int add_query(struct vgs_qemu_display *d, const struct query *q)
{
	struct query *slot;

	if (!d->conn)
		return -ENOTCONN;
	if (d->pending_count == MAX_PENDING)
		return -EBUSY;
	slot = &d->pending[(d->pending_head + d->pending_count) % MAX_PENDING];
	*slot = *q;
	/* Unsent queries get a deadline too: the socket may never drain. */
	slot->deadline_ns = now_ns() + (uint64_t)d->cfg.reply_timeout_ms * NS_PER_MS;
	d->pending_count++;
	send_next_query(d);
	return 0;
}

static void deliver_display_info(struct vgs_qemu_display *d, struct query *q,
                                 const struct vshm_conn_msg *m)
{
	struct vgs_display_info_mode modes[VGS_MAX_SCANOUTS];
	struct vhost_user_gpu_resp_display_info resp;

	if (m->payload_size < sizeof(resp)) {
		vshm_log_ratelimited(&d->rl, VSHM_LOG_WARN,
		                     "qemu-display: short GET_DISPLAY_INFO reply (%u bytes)",
		                     m->payload_size);
		q->info_cb(q->cb_data, false, NULL);
		return;
	}
	memcpy(&resp, m->payload, sizeof(resp));
	memset(modes, 0, sizeof(modes));
	for (unsigned i = 0; i < VGS_MAX_SCANOUTS && i < VHOST_USER_GPU_MAX_SCANOUTS; i++) {
		modes[i].enabled = resp.pmodes[i].enabled != 0;
		modes[i].width = resp.pmodes[i].width;
		modes[i].height = resp.pmodes[i].height;
	}
	q->info_cb(q->cb_data, true, modes);
}

static void deliver_edid(struct vgs_qemu_display *d, struct query *q, const struct vshm_conn_msg *m)
{
	struct vhost_user_gpu_resp_edid resp;

	/* Copied: the callback may trigger a send that drops the socket buffer. */
	if (m->payload_size < offsetof(struct vhost_user_gpu_resp_edid, edid)) {
		q->edid_cb(q->cb_data, false, NULL, 0);
		return;
	}
	memset(&resp, 0, sizeof(resp));
	memcpy(&resp, m->payload, m->payload_size < sizeof(resp) ? m->payload_size : sizeof(resp));
	if (resp.size > VHOST_USER_GPU_EDID_MAX ||
	    resp.size > m->payload_size - offsetof(struct vhost_user_gpu_resp_edid, edid)) {
		vshm_log_ratelimited(&d->rl, VSHM_LOG_WARN,
		                     "qemu-display: bad GET_EDID reply (size %u)", resp.size);
		q->edid_cb(q->cb_data, false, NULL, 0);
		return;
	}
	q->edid_cb(q->cb_data, true, resp.edid, resp.size);
}

/*
 * QEMU answers queries in order, except that a GET_EDID it cannot serve
 * gets no reply at all. So a reply of type T belongs to the oldest
 * expected entry of type T, and any older entry of another type is an
 * unanswered GET_EDID that can be forgotten.
 */
static void match_reply(struct vgs_qemu_display *d, const struct vshm_conn_msg *m, uint32_t type)
{
	while (d->exp_count) {
		struct expected e = d->expected[d->exp_head];

		d->exp_head = (d->exp_head + 1) % MAX_EXPECTED;
		d->exp_count--;
		if (e.type != type) {
			if (e.live && d->have_live) {
				struct query q = d->live;

				d->have_live = false;
				fail_query(d, &q);
			}
			continue;
		}
		if (e.live && d->have_live) {
			struct query q = d->live;

			d->have_live = false;
			if (type == Q_DISPLAY_INFO)
				deliver_display_info(d, &q, m);
			else
				deliver_edid(d, &q, m);
		}
		return;
	}
	vshm_log_ratelimited(&d->rl, VSHM_LOG_DEBUG, "qemu-display: unexpected reply %u", type);
}

/* ---- handshake and timer ------------------------------------------------- */

static void handshake_done(struct vgs_qemu_display *d)
{
	d->hs = HS_READY;
	vshm_log(VSHM_LOG_INFO, "qemu-display: protocol features 0x%llx%s%s",
	         (unsigned long long)d->features,
	         d->features & VHOST_USER_GPU_PROTOCOL_F_EDID ? " edid" : "",
	         d->features & VHOST_USER_GPU_PROTOCOL_F_DMABUF2 ? " dmabuf2" : "");
	sync_state(d);
}

static void handle_features_reply(struct vgs_qemu_display *d, const struct vshm_conn_msg *m)
{
	uint64_t offered = 0, ours;

	if (d->hs != HS_WAIT) {
		/* A reply after the timeout: too late, the session runs without features. */
		vshm_log(VSHM_LOG_DEBUG, "qemu-display: late GET_PROTOCOL_FEATURES reply ignored");
		return;
	}
	if (m->payload_size >= sizeof(offered))
		memcpy(&offered, m->payload, sizeof(offered));
	ours = offered & (VHOST_USER_GPU_PROTOCOL_F_EDID | VHOST_USER_GPU_PROTOCOL_F_DMABUF2);
	d->features = ours;
	if (send_msg(d, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, &ours, sizeof(ours)) < 0 && !d->conn)
		return;
	handshake_done(d);
}

static void rearm_timer(struct vgs_qemu_display *d)
{
	uint64_t next = UINT64_MAX, now;

	if (!d->timer)
		return;
	if (d->conn && d->hs == HS_WAIT)
		next = d->hs_deadline_ns;
	if (d->have_live && d->live.deadline_ns < next)
		next = d->live.deadline_ns;
	/* A query waiting behind the live one is bounded by the live one's deadline. */
	if (!d->have_live && d->pending_count && d->pending[d->pending_head].deadline_ns < next)
		next = d->pending[d->pending_head].deadline_ns;
	if (next == UINT64_MAX) {
		vshm_timer_arm(d->timer, 0, 0);
		return;
	}
	now = now_ns();
	/* 0 disarms, so an overdue deadline fires after 1 ns instead. */
	vshm_timer_arm(d->timer, next > now ? next - now : 1, 0);
}

static void on_timer(struct vshm_timer *t, void *data)
{
	struct vgs_qemu_display *d = data;
	uint64_t now = now_ns();

	(void)t;
	if (d->conn && d->hs == HS_WAIT && now >= d->hs_deadline_ns) {
		d->stats.handshake_timeouts++;
		vshm_log(VSHM_LOG_WARN,
		         "qemu-display: no GET_PROTOCOL_FEATURES reply in %d ms; "
		         "continuing without protocol features",
		         d->cfg.handshake_timeout_ms);
		d->features = 0;
		handshake_done(d);
	}
	if (d->have_live && now >= d->live.deadline_ns) {
		struct query q = d->live;

		d->have_live = false;
		/* The live query is always the newest entry; a late reply to it is discarded. */
		if (d->exp_count)
			d->expected[(d->exp_head + d->exp_count - 1) % MAX_EXPECTED].live = false;
		d->stats.query_timeouts++;
		vshm_log_ratelimited(&d->rl, VSHM_LOG_WARN, "qemu-display: no reply to %s in %d ms",
		                     q.type == Q_EDID ? "GET_EDID" : "GET_DISPLAY_INFO",
		                     d->cfg.reply_timeout_ms);
		/*
		 * An unanswered GET_EDID must not swallow the next GET_EDID's
		 * reply: a GET_DISPLAY_INFO, which QEMU always answers, lets
		 * match_reply() tell a late reply from none.
		 */
		if (q.type == Q_EDID && d->exp_count < MAX_EXPECTED &&
		    send_msg(d, Q_DISPLAY_INFO, NULL, 0) == 0)
			push_expected(d, Q_DISPLAY_INFO, false);
		fail_query(d, &q);
	}
	/* Send what can go now; what still cannot (queue full, no socket progress) expires. */
	send_next_query(d);
	while (!d->have_live && d->pending_count &&
	       now >= d->pending[d->pending_head].deadline_ns) {
		struct query q = d->pending[d->pending_head];

		d->pending_head = (d->pending_head + 1) % MAX_PENDING;
		d->pending_count--;
		d->stats.query_timeouts++;
		fail_query(d, &q);
	}
	send_next_query(d);
}

/* ---- state sync ------------------------------------------------------------- */

static void sync_state(struct vgs_qemu_display *d)
{
	uint64_t gen = d->conn_gen;

	if (!d->conn || d->hs != HS_READY)
		return;

	for (uint32_t i = 0; i < d->cfg.num_scanouts; i++) {
		struct scanout *s = &d->scanouts[i];
		uint32_t w = s->enabled ? s->rect.width : 0, h = s->enabled ? s->rect.height : 0;
		struct vhost_user_gpu_scanout msg = { i, w, h };

		if (s->sent_valid && s->sent_w == w && s->sent_h == h)
			continue;
		/* Never-sent disabled scanouts are what QEMU starts with. */
		if (!s->sent_valid && !s->enabled) {
			s->sent_valid = true;
			s->sent_w = s->sent_h = 0;
			continue;
		}
		if (send_msg(d, VHOST_USER_GPU_SCANOUT, &msg, sizeof(msg)) < 0)
			return; /* deferred or gone: the drain (or next socket) calls us again */
		s->sent_valid = true;
		s->sent_w = w;
		s->sent_h = h;
		/* QEMU shows a new surface only after an UPDATE: send the whole scanout. */
		if (s->enabled) {
			struct vgs_rect all = { 0, 0, s->rect.width, s->rect.height };

			s->dirty = false;
			add_damage(d, s, &all);
		} else {
			s->dirty = false;
		}
	}

	if (d->cursor_shape_dirty && d->cursor_scanout < d->cfg.num_scanouts) {
		struct vhost_user_gpu_cursor_update cu;

		cu.pos.scanout_id = d->cursor_scanout;
		cu.pos.x = d->cursor_x;
		cu.pos.y = d->cursor_y;
		cu.hot_x = d->cursor_hot_x;
		cu.hot_y = d->cursor_hot_y;
		memcpy(cu.data, d->cursor_pixels, sizeof(cu.data));
		if (send_msg(d, VHOST_USER_GPU_CURSOR_UPDATE, &cu, sizeof(cu)) < 0)
			return;
		d->cursor_shape_dirty = false;
		/* CURSOR_UPDATE carries the position and shows the cursor. */
		if (d->cursor_visible)
			d->cursor_pos_dirty = false;
	}
	if (d->cursor_pos_dirty && d->cursor_scanout < d->cfg.num_scanouts) {
		struct vhost_user_gpu_cursor_pos p = { d->cursor_scanout, d->cursor_x,
			                               d->cursor_y };

		if (send_msg(d,
		             d->cursor_visible ? VHOST_USER_GPU_CURSOR_POS
		                               : VHOST_USER_GPU_CURSOR_POS_HIDE,
		             &p, sizeof(p)) < 0)
			return;
		d->cursor_pos_dirty = false;
	}

	/* Frames last: they are the big ones, and latest-wins makes them cheap to defer. */
	for (uint32_t i = 0; i < d->cfg.num_scanouts && d->conn_gen == gen; i++) {
		struct scanout *s = &d->scanouts[i];

		if (s->dirty && s->inflight == 0 && s->enabled && s->image && s->sent_valid)
			send_frame(d, i);
	}
	if (d->conn_gen == gen)
		send_next_query(d);
}

/* ---- socket events ------------------------------------------------------- */

static void handle_msg(struct vgs_qemu_display *d, const struct vshm_conn_msg *m)
{
	struct vhost_user_gpu_hdr hdr;

	memcpy(&hdr, m->hdr, sizeof(hdr));
	if (!(hdr.flags & VHOST_USER_GPU_MSG_FLAG_REPLY)) {
		vshm_log_ratelimited(&d->rl, VSHM_LOG_WARN,
		                     "qemu-display: ignoring request %u from QEMU", hdr.request);
		return;
	}
	switch (hdr.request) {
	case VHOST_USER_GPU_GET_PROTOCOL_FEATURES:
		handle_features_reply(d, m);
		break;
	case VHOST_USER_GPU_GET_DISPLAY_INFO:
	case VHOST_USER_GPU_GET_EDID:
		match_reply(d, m, hdr.request);
		send_next_query(d);
		break;
	default:
		/* DMABUF_UPDATE replies and others: we never wait for them. */
		vshm_log_ratelimited(&d->rl, VSHM_LOG_DEBUG, "qemu-display: reply %u ignored",
		                     hdr.request);
		break;
	}
}

static void on_socket(int fd, uint32_t revents, void *data)
{
	struct vgs_qemu_display *d = data;
	uint64_t gen = d->conn_gen;

	(void)fd;
	if (revents & VSHM_EV_OUT) {
		int r = vshm_conn_flush(d->conn);

		if (r < 0 && r != -EAGAIN) {
			drop_socket(d, strerror(-r));
			return;
		}
		update_watch(d);
		/* Release callbacks ran inside flush: frames may be sendable now. */
		sync_state(d);
		if (d->conn_gen != gen)
			return;
	}
	if (revents & (VSHM_EV_IN | VSHM_EV_HUP | VSHM_EV_ERR)) {
		for (;;) {
			struct vshm_conn_msg m;
			int r = vshm_conn_recv(d->conn, &m);

			if (r == -EAGAIN)
				break;
			if (r < 0) {
				drop_socket(d, r == -EPIPE ? "closed by QEMU" : strerror(-r));
				return;
			}
			/* No request on this socket carries fds towards the back-end. */
			vshm_conn_msg_close_fds(&m);
			handle_msg(d, &m);
			if (d->conn_gen != gen)
				return;
		}
		if (revents & (VSHM_EV_HUP | VSHM_EV_ERR)) {
			drop_socket(d, "hang-up");
			return;
		}
	}
}

int vgs_qemu_display_set_socket(struct vgs_qemu_display *d, int fd)
{
	struct vshm_conn_config cc = {
		.header_size = VHOST_USER_GPU_HDR_SIZE,
		.size_offset = offsetof(struct vhost_user_gpu_hdr, size),
		.max_payload = MAX_REPLY_PAYLOAD,
		.max_fds = 1,
		.max_queued = d->cfg.max_queued,
		/* Pixels go to QEMU by page reference (vmsplice + splice), not copied. */
		.flags = VSHM_CONN_F_SPLICE_REF,
	};
	struct vshm_conn *conn;
	int r;

	if (d->conn)
		drop_socket(d, "replaced by a new socket");
	/*
	 * A send buffer the size of a 1080p frame lets an UPDATE go out in one
	 * or two writes instead of ~40 partial ones, each a sleep and a wake-up
	 * (measured: paced CPU per frame 2.15 -> 1.1 ms, bench/README.md). The
	 * pixels are spliced, so a large buffer holds page references, not
	 * copies. SO_SNDBUFFORCE needs CAP_NET_ADMIN; without it SO_SNDBUF is
	 * capped by net.core.wmem_max (docs/vshm-gpu.md).
	 */
	if (d->cfg.sndbuf > 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &d->cfg.sndbuf, sizeof(d->cfg.sndbuf)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &d->cfg.sndbuf, sizeof(d->cfg.sndbuf));
	r = vshm_conn_new(fd, &cc, &conn);
	if (r < 0)
		return r;
	r = vshm_event_loop_add_fd(d->loop, vshm_conn_get_fd(conn), VSHM_EV_IN, on_socket, d,
	                           &d->watch);
	if (r < 0) {
		vshm_conn_destroy(conn);
		return r;
	}
	d->conn = conn;
	d->watch_events = VSHM_EV_IN;
	d->stats.sockets++;
	d->features = 0;
	d->hs = HS_WAIT;
	d->hs_deadline_ns = now_ns() + (uint64_t)d->cfg.handshake_timeout_ms * NS_PER_MS;

	/* A new socket means a fresh QEMU console: everything is re-sent. */
	for (unsigned i = 0; i < VGS_MAX_SCANOUTS; i++)
		d->scanouts[i].sent_valid = false;
	if (d->cursor_have_shape) {
		d->cursor_shape_dirty = d->cursor_visible;
		d->cursor_pos_dirty = !d->cursor_visible;
	}

	vshm_log(VSHM_LOG_INFO, "qemu-display: new display socket");
	r = send_msg(d, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, NULL, 0);
	if (r < 0 && !d->conn)
		return r;
	rearm_timer(d);
	return 0;
}

void vgs_qemu_display_close(struct vgs_qemu_display *d)
{
	drop_socket(d, "closed");
}

/* ---- sink ops ------------------------------------------------------------- */

static void op_scanout(void *data, const struct vgs_scanout_state *st)
{
	struct vgs_qemu_display *d = data;
	struct scanout *s;
	bool ok;

	if (st->scanout_id >= d->cfg.num_scanouts)
		return;
	s = &d->scanouts[st->scanout_id];
	ok = st->enabled && st->image && st->image->bpp == 4 && st->rect.width && st->rect.height &&
	     (uint64_t)st->rect.x + st->rect.width <= st->image->width &&
	     (uint64_t)st->rect.y + st->rect.height <= st->image->height;
	if (st->enabled && !ok)
		vshm_log_ratelimited(&d->rl, VSHM_LOG_WARN,
		                     "qemu-display: scanout %u rectangle outside its image",
		                     st->scanout_id);
	if (ok) {
		struct vgs_image *old = s->image;
		bool resized = !s->enabled || s->rect.width != st->rect.width ||
		               s->rect.height != st->rect.height;

		s->image = vgs_image_ref(st->image);
		vgs_image_unref(old);
		s->enabled = true;
		s->rect = st->rect;
		if (resized)
			s->dirty = false; /* the SCANOUT that follows repaints everything */
		else if (s->dirty && !clip_to_scanout(s, &s->damage))
			s->dirty = false;
	} else {
		vgs_image_unref(s->image);
		s->image = NULL;
		s->enabled = false;
		s->dirty = false;
	}
	sync_state(d);
}

static void op_flush(void *data, uint32_t scanout_id, const struct vgs_rect *damage,
                     uint64_t flush_ns)
{
	struct vgs_qemu_display *d = data;

	(void)flush_ns;
	if (scanout_id >= d->cfg.num_scanouts)
		return;
	add_damage(d, &d->scanouts[scanout_id], damage);
	sync_state(d);
}

static void op_cursor_update(void *data, uint32_t scanout_id, uint32_t x, uint32_t y,
                             uint32_t hot_x, uint32_t hot_y, const uint32_t *pixels)
{
	struct vgs_qemu_display *d = data;

	if (scanout_id >= d->cfg.num_scanouts)
		return;
	d->cursor_scanout = scanout_id;
	d->cursor_x = x;
	d->cursor_y = y;
	if (pixels) {
		d->cursor_hot_x = hot_x;
		d->cursor_hot_y = hot_y;
		memcpy(d->cursor_pixels, pixels, sizeof(d->cursor_pixels));
		d->cursor_have_shape = true;
		d->cursor_visible = true;
		d->cursor_shape_dirty = true;
	} else {
		d->cursor_visible = false;
		d->cursor_shape_dirty = false;
		d->cursor_pos_dirty = true;
	}
	sync_state(d);
}

static void op_cursor_move(void *data, uint32_t scanout_id, uint32_t x, uint32_t y, bool visible)
{
	struct vgs_qemu_display *d = data;

	if (scanout_id >= d->cfg.num_scanouts)
		return;
	d->cursor_scanout = scanout_id;
	d->cursor_x = x;
	d->cursor_y = y;
	d->cursor_visible = visible && d->cursor_have_shape;
	if (!d->cursor_shape_dirty || !d->cursor_visible)
		d->cursor_pos_dirty = true;
	if (!d->cursor_visible)
		d->cursor_shape_dirty = false;
	sync_state(d);
}

static int op_get_display_info(void *data, vgs_display_info_cb cb, void *cb_data)
{
	struct vgs_qemu_display *d = data;
	struct query q = { .type = Q_DISPLAY_INFO, .info_cb = cb, .cb_data = cb_data };

	return add_query(d, &q);
}

static int op_get_edid(void *data, uint32_t scanout_id, vgs_edid_cb cb, void *cb_data)
{
	struct vgs_qemu_display *d = data;
	struct query q = {
		.type = Q_EDID, .scanout_id = scanout_id, .edid_cb = cb, .cb_data = cb_data
	};

	/* QEMU never answers an invalid id: never ask about one. */
	if (scanout_id >= d->cfg.num_scanouts)
		return -EINVAL;
	if (!d->conn)
		return -ENOTCONN;
	if (d->hs == HS_READY && !(d->features & VHOST_USER_GPU_PROTOCOL_F_EDID))
		return -ENOTSUP;
	return add_query(d, &q);
}

static const struct vgs_display_sink_ops sink_ops = {
	.scanout = op_scanout,
	.flush = op_flush,
	.cursor_update = op_cursor_update,
	.cursor_move = op_cursor_move,
	.get_display_info = op_get_display_info,
	.get_edid = op_get_edid,
};

/* ---- lifetime ---------------------------------------------------------------- */

int vgs_qemu_display_new(struct vshm_event_loop *loop, const struct vgs_qemu_display_config *cfg,
                         struct vgs_qemu_display **out)
{
	struct vgs_qemu_display *d;
	int r;

	if (!loop || !cfg || cfg->num_scanouts == 0 || cfg->num_scanouts > VGS_MAX_SCANOUTS ||
	    cfg->handshake_timeout_ms <= 0 || cfg->reply_timeout_ms <= 0 || cfg->max_queued == 0)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->loop = loop;
	d->cfg = *cfg;
	d->sink.ops = &sink_ops;
	d->sink.data = d;
	d->rl = (struct vshm_ratelimit)VSHM_RATELIMIT_INIT(5000, 10);
	r = vshm_event_loop_add_timer(loop, on_timer, d, &d->timer);
	if (r < 0) {
		free(d);
		return r;
	}
	*out = d;
	return 0;
}

void vgs_qemu_display_destroy(struct vgs_qemu_display *d)
{
	if (!d)
		return;
	drop_socket(d, "shutting down");
	if (d->timer)
		vshm_event_loop_remove_timer(d->loop, d->timer);
	for (unsigned i = 0; i < VGS_MAX_SCANOUTS; i++)
		vgs_image_unref(d->scanouts[i].image);
	free(d);
}

const struct vgs_display_sink *vgs_qemu_display_sink(struct vgs_qemu_display *d)
{
	return &d->sink;
}

bool vgs_qemu_display_connected(const struct vgs_qemu_display *d)
{
	return d->conn != NULL;
}

bool vgs_qemu_display_ready(const struct vgs_qemu_display *d)
{
	return d->conn && d->hs == HS_READY;
}

uint64_t vgs_qemu_display_protocol_features(const struct vgs_qemu_display *d)
{
	return d->features;
}

void vgs_qemu_display_get_stats(const struct vgs_qemu_display *d,
                                struct vgs_qemu_display_stats *out)
{
	*out = d->stats;
	if (d->conn) {
		struct vshm_conn_stats st;

		vshm_conn_get_stats(d->conn, &st);
		out->bytes_sent += st.bytes_out;
		out->msgs_sent += st.msgs_out;
	}
}
