/* SPDX-License-Identifier: MIT */
/*
 * consumers.c - the daemon side of the display consumers: listening
 * sockets, the device state every consumer is served from (scanouts with
 * their per-scanout frame counter, the cursor, the images), the sink
 * callbacks and the timers.
 *
 * Sink callbacks run inside virtqueue processing. They only record state
 * and fill mailboxes, then schedule one idle pass (end of the current
 * dispatch) that lets every consumer write what its socket takes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vshm-proto/virtio-gpu.h>

#include "consumers-internal.h"
#include "image.h"

void vgs_consumers_config_defaults(struct vgs_consumers_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->num_scanouts = 1;
	cfg->max_consumers = 8;
	cfg->heartbeat_ms = 100;
	cfg->release_timeout_ms = 250;
	cfg->consumer_deadline_ms = 2000;
	cfg->features_timeout_ms = 500;
	cfg->hello_timeout_ms = 1000;
	cfg->error_flush_ms = 100;
	cfg->max_queued_vshm = 1u << 20;
	cfg->max_queued_qemu = 256u << 20;
	cfg->sndbuf = 32 << 10;
}

/* ---- images ------------------------------------------------------------------ */

struct cimage *cimage_get(struct vgs_consumers *cs, struct vgs_image *img, bool cursor)
{
	struct cimage *ci;

	for (ci = cs->images; ci; ci = ci->next)
		if (ci->img == img)
			return ci;
	ci = calloc(1, sizeof(*ci));
	if (!ci)
		return NULL;
	ci->img = vgs_image_ref(img);
	ci->cursor = cursor;
	ci->next = cs->images;
	cs->images = ci;
	return ci;
}

/* Forget images nothing refers to any more (their reference goes). */
void cimage_gc(struct vgs_consumers *cs)
{
	struct cimage **pp = &cs->images;

	while (*pp) {
		struct cimage *ci = *pp;

		if (ci->shown == 0 && ci->buffers == 0 && ci != cs->cursor.ci) {
			*pp = ci->next;
			vgs_image_unref(ci->shadow);
			vgs_image_unref(ci->img);
			free(ci);
		} else {
			pp = &ci->next;
		}
	}
}

/* ---- frame numbers ------------------------------------------------------------------ */

/*
 * A guest event (flush, new image) on @s gets a new frame number if the
 * current one already went out to a consumer, or if a send pass ran since
 * the current one's last event (a consumer had its chance to take it and
 * did not: the next frame replaces it, a drop and a gap). Otherwise it
 * merges into the current frame: a page flip (SET_SCANOUT and
 * RESOURCE_FLUSH processed in one batch) is one frame, not a frame and a
 * drop (docs/protocol.md 9.1, 9.3).
 */
static void seq_event(struct vgs_consumers *cs, struct dscanout *s)
{
	if (s->seq == s->seq_sent || s->seq_pass != cs->pass)
		s->seq++;
	s->seq_pass = cs->pass;
}

void cons_frame_sent(struct vgs_consumers *cs, uint32_t scanout, uint64_t seq)
{
	struct dscanout *s = &cs->scanouts[scanout];

	if (seq > s->seq_sent)
		s->seq_sent = seq;
}

/* ---- the idle pass and the tick ------------------------------------------------- */

static void free_dead(struct vgs_consumers *cs)
{
	while (cs->dead) {
		struct vgs_consumer *c = cs->dead;

		cs->dead = c->next;
		consumer_free(c);
	}
}

static void pump(struct vgs_consumers *cs)
{
	if (cs->in_pump)
		return;
	cs->in_pump = true;
	for (struct vgs_consumer *c = cs->consumers; c; c = c->next)
		if (c->st == CS_VSHM || c->st == CS_QEMU)
			consumer_sync(c);
	/* Guest events after this pass belong to a new frame. */
	cs->pass++;
	cs->in_pump = false;
	cimage_gc(cs);
	free_dead(cs);
}

static void on_idle(void *data)
{
	struct vgs_consumers *cs = data;

	cs->idle = NULL;
	pump(cs);
}

void cons_schedule(struct vgs_consumers *cs)
{
	if (cs->idle || (!cs->consumers && !cs->dead))
		return;
	if (vshm_event_loop_add_idle(cs->loop, on_idle, cs, &cs->idle) < 0) {
		cs->idle = NULL;
		vshm_log_ratelimited(&cs->rl, VSHM_LOG_WARN, "consumers: cannot schedule a send");
	}
}

static void on_tick(struct vshm_timer *t, void *data)
{
	struct vgs_consumers *cs = data;
	uint64_t now = vshm_now_ns();

	(void)t;
	for (struct vgs_consumer *c = cs->consumers; c; c = c->next)
		consumer_tick(c, now);
	pump(cs);
}

/* ---- listening sockets ------------------------------------------------------------ */

/* ERROR on a connection we will not serve, written at most once, never waiting. */
static void refuse(int fd, uint32_t code, uint32_t detail, const char *text)
{
	struct {
		struct vhost_user_gpu_hdr h;
		struct vshm_display_error e;
	} __attribute__((packed)) m;
	ssize_t n;

	memset(&m, 0, sizeof(m));
	m.h.request = VSHM_DISPLAY_ERROR;
	m.h.size = sizeof(m.e);
	m.e.code = code;
	m.e.detail = detail;
	strncpy(m.e.message, text, sizeof(m.e.message) - 1);
	n = send(fd, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)n;
	close(fd);
}

static int accept_fd(struct vgs_consumers *cs, struct listener *l, int fd)
{
	cs->stats.accepted++;
	if (cs->nconsumers >= cs->cfg.max_consumers) {
		cs->stats.refused++;
		vshm_log_ratelimited(&cs->rl, VSHM_LOG_WARN,
		                     "consumers: refusing a consumer on %s: %u already connected",
		                     l->path ? l->path : "(adopted)", cs->nconsumers);
		refuse(fd, VSHM_DISPLAY_ERR_TOO_MANY_CONSUMERS, cs->cfg.max_consumers,
		       "too many consumers");
		return -EBUSY;
	}
	return consumer_new(cs, l, fd);
}

static void on_accept(int fd, uint32_t revents, void *data)
{
	struct listener *l = data;

	(void)revents;
	/* A bounded batch: a flood of connects cannot monopolise the loop. */
	for (int i = 0; i < 16; i++) {
		int cfd, r = vshm_unix_accept(fd, &cfd);

		if (r < 0) {
			if (r != -EAGAIN && r != -EINTR && r != -ECONNABORTED)
				vshm_log_ratelimited(&l->cs->rl, VSHM_LOG_WARN,
				                     "consumers: accept on %s: %s", l->path,
				                     strerror(-r));
			return;
		}
		accept_fd(l->cs, l, cfd);
	}
}

static struct listener *listener_new(struct vgs_consumers *cs, uint32_t scanouts, const char *role)
{
	struct listener *l;

	if (cs->nlisteners == VGS_CONSUMERS_MAX_LISTENERS)
		return NULL;
	if (role && (!role[0] || strlen(role) >= VSHM_DISPLAY_ROLE_SIZE))
		return NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->cs = cs;
	l->fd = -1;
	l->scanouts = scanouts ? scanouts : (1u << VGS_MAX_SCANOUTS) - 1;
	if (role)
		memcpy(l->role, role, strlen(role) + 1);
	cs->listeners[cs->nlisteners++] = l;
	return l;
}

int vgs_consumers_listen(struct vgs_consumers *cs, const char *path, uint32_t scanouts,
                         const char *role)
{
	struct listener *l;
	struct stat st;
	int r;

	if (!path || !path[0] || (role && (!role[0] || strlen(role) >= VSHM_DISPLAY_ROLE_SIZE)))
		return -EINVAL;
	l = listener_new(cs, scanouts, role);
	if (!l)
		return -ENOSPC;
	l->path = strdup(path);
	if (!l->path)
		return -ENOMEM;
	r = vshm_unix_listen(path, 8, &l->fd);
	if (r < 0) {
		l->fd = -1;
		return r;
	}
	if (lstat(path, &st) == 0)
		l->ino = st.st_ino;
	/* accept() in batches until EAGAIN. */
	if (fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK) < 0)
		return -errno;
	r = vshm_event_loop_add_fd(cs->loop, l->fd, VSHM_EV_IN, on_accept, l, &l->watch);
	if (r < 0)
		return r;
	vshm_log(VSHM_LOG_INFO, "consumers: listening on %s (scanouts 0x%x%s%s)", path, l->scanouts,
	         l->role[0] ? ", role " : "", l->role);
	return 0;
}

int vgs_consumers_adopt(struct vgs_consumers *cs, unsigned listener, int fd)
{
	struct listener *l;

	if (listener > cs->nlisteners) {
		close(fd);
		return -EINVAL;
	}
	if (listener == cs->nlisteners) {
		/* A listener without a socket, for consumers handed over by fd. */
		l = listener_new(cs, 0, NULL);
		if (!l) {
			close(fd);
			return -ENOSPC;
		}
	} else {
		l = cs->listeners[listener];
	}
	return accept_fd(cs, l, fd);
}

/* ---- sink ops ------------------------------------------------------------------------ */

static void activity(struct vgs_consumers *cs)
{
	cs->guest_activity_ns = vshm_now_ns();
}

void vgs_consumers_note_guest_activity(struct vgs_consumers *cs)
{
	if (cs)
		activity(cs);
}

static void op_scanout(void *data, const struct vgs_scanout_state *st)
{
	struct vgs_consumers *cs = data;
	struct dscanout *s;
	bool ok;

	activity(cs);
	if (st->scanout_id >= cs->cfg.num_scanouts)
		return;
	s = &cs->scanouts[st->scanout_id];
	ok = st->enabled && st->image && st->image->bpp == 4 && st->rect.width && st->rect.height &&
	     (uint64_t)st->rect.x + st->rect.width <= st->image->width &&
	     (uint64_t)st->rect.y + st->rect.height <= st->image->height;
	if (ok) {
		struct cimage *ci;

		if (s->enabled && s->ci && s->ci->img == st->image &&
		    !memcmp(&s->rect, &st->rect, sizeof(s->rect)))
			return; /* nothing changed */
		ci = cimage_get(cs, st->image, false);
		if (!ci) {
			vshm_log_ratelimited(&cs->rl, VSHM_LOG_WARN, "consumers: out of memory");
			ok = false;
		} else {
			if (s->ci)
				s->ci->shown--;
			ci->shown++;
			s->ci = ci;
			s->rect = st->rect;
			s->enabled = true;
			/* A new picture: a new frame, or part of the one not sent yet (FULL). */
			seq_event(cs, s);
			s->last_flush_ns = vshm_now_ns();
		}
	}
	if (!ok) {
		if (!s->enabled)
			return;
		if (s->ci)
			s->ci->shown--;
		s->ci = NULL;
		s->enabled = false;
	}
	for (struct vgs_consumer *c = cs->consumers; c; c = c->next)
		if (c->granted & (1u << st->scanout_id))
			consumer_mailbox_put(c, st->scanout_id, NULL, true);
	cons_schedule(cs);
}

/* Clip @r to @w x @h; false when nothing is left. */
static bool clip(struct vgs_rect *r, uint32_t w, uint32_t h)
{
	uint64_t x1 = (uint64_t)r->x + r->width, y1 = (uint64_t)r->y + r->height;

	if (r->x >= w || r->y >= h)
		return false;
	if (x1 > w)
		x1 = w;
	if (y1 > h)
		y1 = h;
	r->width = (uint32_t)(x1 - r->x);
	r->height = (uint32_t)(y1 - r->y);
	return r->width && r->height;
}

static void op_flush(void *data, uint32_t scanout_id, const struct vgs_rect *damage,
                     uint64_t flush_ns)
{
	struct vgs_consumers *cs = data;
	struct dscanout *s;
	struct vgs_rect r;

	activity(cs);
	if (scanout_id >= cs->cfg.num_scanouts || !damage)
		return;
	s = &cs->scanouts[scanout_id];
	r = *damage;
	if (!s->enabled || !clip(&r, s->rect.width, s->rect.height))
		return;
	/* The COPY fallback's memfd, if a consumer needs one (image coordinates). */
	cons_copy_flush(cs, s->ci,
	                &(struct vgs_rect){ s->rect.x + r.x, s->rect.y + r.y, r.width, r.height });
	seq_event(cs, s);
	/* Every flush, merged or not; strictly increasing even on a shared clock reading. */
	s->last_flush_ns = flush_ns > s->last_flush_ns ? flush_ns : s->last_flush_ns + 1;
	for (struct vgs_consumer *c = cs->consumers; c; c = c->next)
		if (c->granted & (1u << scanout_id))
			consumer_mailbox_put(c, scanout_id, &r, false);
	cons_schedule(cs);
}

static void op_cursor_update(void *data, uint32_t scanout_id, uint32_t x, uint32_t y,
                             uint32_t hot_x, uint32_t hot_y, const uint32_t *pixels)
{
	struct vgs_consumers *cs = data;
	struct dcursor *cu = &cs->cursor;

	activity(cs);
	cu->scanout = scanout_id;
	cu->x = x;
	cu->y = y;
	if (pixels) {
		struct vgs_image *img;
		struct cimage *ci = NULL;

		/* A new shape is a new buffer: consumers never see a shape change under them. */
		if (vgs_image_new(VGS_CURSOR_DIM, VGS_CURSOR_DIM, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM,
		                  &img) == 0) {
			for (uint32_t row = 0; row < VGS_CURSOR_DIM; row++)
				memcpy(img->data + (size_t)row * img->stride,
				       pixels + (size_t)row * VGS_CURSOR_DIM, VGS_CURSOR_DIM * 4);
			ci = cimage_get(cs, img, true);
			vgs_image_unref(img);
		}
		if (!ci) {
			vshm_log_ratelimited(&cs->rl, VSHM_LOG_WARN,
			                     "consumers: no memory for a cursor shape");
			cu->visible = false;
		} else {
			cu->ci = ci;
			cu->gen++;
			/* The guest's hot spot, clamped into the shape (docs/protocol.md 7.10). */
			cu->hot_x = hot_x < VGS_CURSOR_DIM ? hot_x : VGS_CURSOR_DIM - 1;
			cu->hot_y = hot_y < VGS_CURSOR_DIM ? hot_y : VGS_CURSOR_DIM - 1;
			cu->visible = true;
		}
	} else {
		cu->visible = false;
	}
	cons_schedule(cs);
}

static void op_cursor_move(void *data, uint32_t scanout_id, uint32_t x, uint32_t y, bool visible)
{
	struct vgs_consumers *cs = data;
	struct dcursor *cu = &cs->cursor;

	activity(cs);
	cu->scanout = scanout_id;
	cu->x = x;
	cu->y = y;
	cu->visible = visible && cu->ci;
	cons_schedule(cs);
}

static const struct vgs_display_sink_ops sink_ops = {
	.scanout = op_scanout,
	.flush = op_flush,
	.cursor_update = op_cursor_update,
	.cursor_move = op_cursor_move,
};

const struct vgs_display_sink *vgs_consumers_sink(struct vgs_consumers *cs)
{
	return &cs->sink;
}

/* ---- lifetime and stats ------------------------------------------------------------------- */

int vgs_consumers_new(struct vshm_event_loop *loop, const struct vgs_consumers_config *cfg,
                      struct vgs_consumers **out)
{
	struct vgs_consumers *cs;
	uint64_t period;
	int r;

	if (!loop || !cfg || cfg->num_scanouts == 0 || cfg->num_scanouts > VGS_MAX_SCANOUTS ||
	    cfg->max_consumers == 0 || cfg->heartbeat_ms < 5 || cfg->heartbeat_ms > 10000 ||
	    cfg->release_timeout_ms == 0 || cfg->consumer_deadline_ms == 0 ||
	    cfg->features_timeout_ms == 0 || cfg->hello_timeout_ms == 0 ||
	    cfg->error_flush_ms == 0 || cfg->max_queued_vshm < 4096 ||
	    cfg->max_queued_qemu < 4096 || cfg->sndbuf < 0)
		return -EINVAL;
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	cs->loop = loop;
	cs->cfg = *cfg;
	cs->sink.ops = &sink_ops;
	cs->sink.data = cs;
	cs->next_id = 1;
	cs->rl = (struct vshm_ratelimit)VSHM_RATELIMIT_INIT(5000, 20);
	r = vshm_event_loop_add_timer(loop, on_tick, cs, &cs->tick);
	if (r < 0) {
		free(cs);
		return r;
	}
	period = (uint64_t)cfg->heartbeat_ms * NS_PER_MS;
	r = vshm_timer_arm(cs->tick, period, period);
	if (r < 0) {
		vshm_event_loop_remove_timer(loop, cs->tick);
		free(cs);
		return r;
	}
	*out = cs;
	return 0;
}

void vgs_consumers_destroy(struct vgs_consumers *cs)
{
	if (!cs)
		return;
	while (cs->consumers) {
		struct vgs_consumer *c = cs->consumers;

		if (c->st != CS_CLOSING && c->conn && vshm_conn_queued_bytes(c->conn) == 0) {
			struct vshm_display_error e = { .code = VSHM_DISPLAY_ERR_SHUTDOWN };

			strncpy(e.message, "the daemon is exiting", sizeof(e.message) - 1);
			consumer_send(c, VSHM_DISPLAY_ERROR, 0, &e, sizeof(e), NULL, 0, NULL, 0);
		}
		consumer_close(c, "shutdown");
	}
	free_dead(cs);
	if (cs->idle)
		vshm_event_loop_remove_idle(cs->loop, cs->idle);
	if (cs->tick)
		vshm_event_loop_remove_timer(cs->loop, cs->tick);
	for (unsigned i = 0; i < cs->nlisteners; i++) {
		struct listener *l = cs->listeners[i];
		struct stat st;

		if (l->watch)
			vshm_event_loop_remove_fd(cs->loop, l->watch);
		if (l->fd >= 0) {
			close(l->fd);
			/* Only our own socket file: a new instance may have replaced it. */
			if (l->ino && lstat(l->path, &st) == 0 && st.st_ino == l->ino &&
			    S_ISSOCK(st.st_mode))
				unlink(l->path);
		}
		free(l->path);
		free(l);
	}
	for (unsigned i = 0; i < VGS_MAX_SCANOUTS; i++) {
		if (cs->scanouts[i].ci)
			cs->scanouts[i].ci->shown--;
		cs->scanouts[i].ci = NULL;
	}
	cs->cursor.ci = NULL;
	cimage_gc(cs);
	free(cs);
}

void vgs_consumers_get_stats(const struct vgs_consumers *cs, struct vgs_consumers_stats *out)
{
	struct vgs_consumer_info in;

	*out = cs->stats;
	out->connected = 0;
	for (const struct vgs_consumer *c = cs->consumers; c; c = c->next) {
		consumer_info(c, &in);
		out->connected++;
		out->frames_sent += in.frames_sent;
		out->frames_dropped += in.frames_dropped;
		out->frames_released += in.frames_released;
		out->frames_reclaimed += in.frames_reclaimed;
		out->frames_dmabuf += in.frames_dmabuf;
		out->frames_copy += in.frames_copy;
		for (unsigned i = 0; i < VSHM_DISPLAY_LATENCY_BUCKETS; i++)
			out->latency_hist[i] += in.latency_hist[i];
	}
}

unsigned vgs_consumers_list(const struct vgs_consumers *cs, struct vgs_consumer_info *out,
                            unsigned max)
{
	unsigned n = 0;

	for (const struct vgs_consumer *c = cs->consumers; c && n < max; c = c->next)
		consumer_info(c, &out[n++]);
	return n;
}
