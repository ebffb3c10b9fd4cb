/* SPDX-License-Identifier: MIT */
/*
 * qemu-display-peer.c - a fake QEMU display end (see qemu-display-peer.h).
 *
 * Threading: one peer thread (or the caller of qdp_dispatch()) owns the
 * socket and is the only writer of framebuffers and counters. Everything
 * the test thread may read is behind @lock; framebuffer pixels are behind
 * @fb_lock so that a large UPDATE being received does not hold up
 * qdp_get_stats() and friends. Waiters sleep on @cond, broadcast after
 * every handled message.
 */
#include "qemu-display-peer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <vshm-proto/qemu-display.h>

#include "frontend.h"

/* Largest payload accepted for anything but UPDATE (CURSOR_UPDATE is 16 404). */
#define QDP_MAX_SMALL_PAYLOAD (64u * 1024u)
/* Largest scanout side: bounds what a back-end can make us allocate. */
#define QDP_MAX_DIM 16384u

struct qdp_fb {
	uint32_t width, height; /* 0x0 = disabled */
	uint32_t *pixels;
};

struct qdp {
	struct qdp_config cfg;
	pthread_mutex_t lock; /* stats, cursor, tag, socket swap, stalled */
	pthread_mutex_t fb_lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool thread_running;
	bool stop;
	bool stalled;

	int sock;       /* our end, non-blocking; owned by the serving side */
	int next_sock;  /* replacement waiting to be swapped in, or -1 */
	int backend_fd; /* the back-end's end until handed out, or -1 */
	int wake_fd;    /* eventfd: wakes the peer thread out of poll() */

	struct qdp_stats stats;
	struct qdp_cursor cursor;
	uint32_t tag;
	uint64_t tag_updates;

	struct qdp_fb fb[QDP_MAX_SCANOUTS];
	uint8_t *scratch; /* row buffer for clipped UPDATE rows */
	size_t scratch_cap;
};

void qdp_config_defaults(struct qdp_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->features_mode = QDP_FEATURES_REPLY;
	cfg->protocol_features = VHOST_USER_GPU_PROTOCOL_F_EDID | VHOST_USER_GPU_PROTOCOL_F_DMABUF2;
	cfg->num_scanouts = 1;
	for (unsigned i = 0; i < QDP_MAX_SCANOUTS; i++) {
		cfg->width[i] = 1280;
		cfg->height[i] = 800;
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int make_pair(int *ours, int *theirs)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* Our end is non-blocking so that the wake fd can always interrupt a wait. */
	if (fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) < 0) {
		int err = -errno;
		close(sv[0]);
		close(sv[1]);
		return err;
	}
	*ours = sv[0];
	*theirs = sv[1];
	return 0;
}

int qdp_new(const struct qdp_config *cfg, struct qdp **out)
{
	struct qdp *p = calloc(1, sizeof(*p));
	int ret;

	if (!p)
		return -ENOMEM;
	if (cfg)
		p->cfg = *cfg;
	else
		qdp_config_defaults(&p->cfg);
	if (p->cfg.num_scanouts < 1 || p->cfg.num_scanouts > QDP_MAX_SCANOUTS) {
		free(p);
		return -EINVAL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->fb_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	p->next_sock = -1;
	p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wake_fd < 0) {
		ret = -errno;
		p->sock = p->backend_fd = -1;
		qdp_destroy(p);
		return ret;
	}
	ret = make_pair(&p->sock, &p->backend_fd);
	if (ret < 0) {
		p->sock = p->backend_fd = -1;
		qdp_destroy(p);
		return ret;
	}
	p->stats.sockets = 1;
	*out = p;
	return 0;
}

static void wake(struct qdp *p)
{
	uint64_t one = 1;
	ssize_t r = write(p->wake_fd, &one, sizeof(one));
	(void)r; /* a full counter still wakes poll() */
}

void qdp_destroy(struct qdp *p)
{
	if (!p)
		return;
	if (p->thread_running) {
		pthread_mutex_lock(&p->lock);
		p->stop = true;
		pthread_mutex_unlock(&p->lock);
		wake(p);
		pthread_join(p->thread, NULL);
	}
	if (p->sock >= 0)
		close(p->sock);
	if (p->next_sock >= 0)
		close(p->next_sock);
	if (p->backend_fd >= 0)
		close(p->backend_fd);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	for (unsigned i = 0; i < QDP_MAX_SCANOUTS; i++)
		free(p->fb[i].pixels);
	free(p->scratch);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->fb_lock);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int qdp_renew(struct qdp *p)
{
	int ours, theirs, ret = make_pair(&ours, &theirs);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&p->lock);
	if (p->backend_fd >= 0)
		close(p->backend_fd);
	p->backend_fd = theirs;
	/* The serving side swaps it in at its next loop turn (it may be in poll on the old one). */
	if (p->next_sock >= 0)
		close(p->next_sock);
	p->next_sock = ours;
	p->stats.sockets++;
	pthread_mutex_unlock(&p->lock);
	wake(p);
	return 0;
}

int qdp_take_backend_fd(struct qdp *p)
{
	pthread_mutex_lock(&p->lock);
	int fd = p->backend_fd;
	p->backend_fd = -1;
	pthread_mutex_unlock(&p->lock);
	return fd;
}

int qdp_send_set_socket(struct qdp *p, struct tfe *fe)
{
	int fd, ret;

	pthread_mutex_lock(&p->lock);
	bool have = p->backend_fd >= 0;
	pthread_mutex_unlock(&p->lock);
	if (!have) {
		ret = qdp_renew(p);
		if (ret < 0)
			return ret;
	}
	fd = qdp_take_backend_fd(p);
	/* QEMU: size 0, flags = version only (never NEED_REPLY), exactly one fd. */
	ret = tfe_send_msg(fe, TFE_GPU_SET_SOCKET, TFE_FLAG_VERSION, NULL, 0, &fd, 1);
	close(fd);
	return ret;
}

void qdp_set_stalled(struct qdp *p, bool stalled)
{
	pthread_mutex_lock(&p->lock);
	p->stalled = stalled;
	pthread_mutex_unlock(&p->lock);
	wake(p);
}

/* --- socket I/O with the wake fd as an escape hatch ----------------------- */

/*
 * Wait for @events on @fd, or for the wake fd. Returns 1 ready, 0 woken
 * (caller re-checks stop/swap), -errno.
 */
static int wait_fd(struct qdp *p, int fd, short events, int timeout_ms)
{
	struct pollfd pfd[2] = { { fd, events, 0 }, { p->wake_fd, POLLIN, 0 } };
	int r = poll(pfd, 2, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (pfd[1].revents & POLLIN) {
		uint64_t v;
		ssize_t n = read(p->wake_fd, &v, sizeof(v));
		(void)n;
	}
	if (pfd[0].revents & (events | POLLHUP | POLLERR))
		return 1;
	return 0;
}

static bool should_stop(struct qdp *p)
{
	pthread_mutex_lock(&p->lock);
	bool s = p->stop;
	pthread_mutex_unlock(&p->lock);
	return s;
}

/*
 * Read exactly @len bytes (mid-message: wait as long as it takes unless
 * stopping). The first read may collect SCM_RIGHTS fds, which are closed
 * after counting (*nfds) unless @fds_keep is given. 0, -EPIPE on EOF, -errno.
 */
static int read_full(struct qdp *p, void *buf, size_t len, unsigned *nfds)
{
	uint8_t *b = buf;
	size_t done = 0;

	while (done < len) {
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int) * 16)];
		} cbuf;
		struct iovec iov = { b + done, len - done };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (nfds) {
			mh.msg_control = cbuf.buf;
			mh.msg_controllen = sizeof(cbuf.buf);
		}
		ssize_t n = recvmsg(p->sock, &mh, MSG_CMSG_CLOEXEC);
		if (n > 0) {
			if (nfds) {
				for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
				     c = CMSG_NXTHDR(&mh, c)) {
					if (c->cmsg_level != SOL_SOCKET ||
					    c->cmsg_type != SCM_RIGHTS)
						continue;
					unsigned k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
					int *fds = (int *)CMSG_DATA(c);
					for (unsigned i = 0; i < k; i++)
						close(fds[i]);
					*nfds += k;
				}
			}
			done += (size_t)n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return errno == ECONNRESET ? -EPIPE : -errno;
		if (should_stop(p))
			return -ECANCELED;
		int r = wait_fd(p, p->sock, POLLIN, 100);
		if (r < 0)
			return r;
	}
	return 0;
}

static int discard(struct qdp *p, size_t len)
{
	uint8_t buf[4096];
	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		int r = read_full(p, buf, n, NULL);
		if (r < 0)
			return r;
		len -= n;
	}
	return 0;
}

static int write_full(struct qdp *p, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	size_t done = 0;
	while (done < len) {
		ssize_t n = send(p->sock, b + done, len - done, MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return errno == ECONNRESET ? -EPIPE : -errno;
		if (should_stop(p))
			return -ECANCELED;
		int r = wait_fd(p, p->sock, POLLOUT, 100);
		if (r < 0)
			return r;
	}
	return 0;
}

static int reply(struct qdp *p, uint32_t request, const void *payload, uint32_t size)
{
	struct vhost_user_gpu_hdr h = { request, VHOST_USER_GPU_MSG_FLAG_REPLY, size };
	int r = write_full(p, &h, sizeof(h));
	if (r == 0 && size)
		r = write_full(p, payload, size);
	return r;
}

/* --- EDID ------------------------------------------------------------------ */

/*
 * A minimal EDID 1.4 base block whose preferred (first detailed) timing is
 * w x h at about 60 Hz: enough for a guest to pick the mode and for tests
 * to check that the bytes arrive intact.
 */
static void make_edid(uint8_t e[128], uint32_t w, uint32_t h)
{
	static const uint8_t header[8] = { 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00 };
	uint32_t hblank = 160, vblank = 35;
	uint64_t clock_10khz = ((uint64_t)(w + hblank) * (h + vblank) * 60 + 5000) / 10000;

	memset(e, 0, 128);
	memcpy(e, header, 8);
	e[8] = 0x5a; /* manufacturer "VSH" packed as 3x5 bits */
	e[9] = 0x68;
	e[10] = 0x01; /* product code */
	e[16] = 1;    /* week */
	e[17] = 36;   /* 1990 + 36 */
	e[18] = 1;    /* EDID 1.4 */
	e[19] = 4;
	e[20] = 0xa5; /* digital, 8 bpc, DisplayPort */
	e[24] = 0x06; /* RGB 4:4:4, preferred timing is native */
	/* Detailed timing descriptor 1 at 54. */
	uint8_t *d = e + 54;
	if (clock_10khz > 0xffff)
		clock_10khz = 0xffff;
	d[0] = clock_10khz & 0xff;
	d[1] = clock_10khz >> 8;
	d[2] = w & 0xff;
	d[3] = hblank & 0xff;
	d[4] = (uint8_t)(((w >> 8) & 0xf) << 4 | ((hblank >> 8) & 0xf));
	d[5] = h & 0xff;
	d[6] = vblank & 0xff;
	d[7] = (uint8_t)(((h >> 8) & 0xf) << 4 | ((vblank >> 8) & 0xf));
	d[8] = 48; /* hsync offset */
	d[9] = 32; /* hsync width */
	d[10] = (3 << 4) | 5;
	d[17] = 0x1e; /* digital separate sync */
	/* Descriptor 2: monitor name. */
	static const char name[] = "vshm-qdp\n   ";
	d = e + 72;
	d[3] = 0xfc;
	memcpy(d + 5, name, 13);
	/* Descriptors 3 and 4: dummy. */
	e[90 + 3] = 0x10;
	e[108 + 3] = 0x10;
	uint8_t sum = 0;
	for (int i = 0; i < 127; i++)
		sum += e[i];
	e[127] = (uint8_t)(0x100 - sum);
}

/* --- message handlers ------------------------------------------------------ */

static void ensure_scratch(struct qdp *p, size_t n)
{
	if (p->scratch_cap >= n)
		return;
	free(p->scratch);
	p->scratch = malloc(n);
	p->scratch_cap = p->scratch ? n : 0;
}

static int handle_update(struct qdp *p, uint32_t size)
{
	struct vhost_user_gpu_update u;
	int r;

	if (size < sizeof(u))
		return -EPROTO;
	r = read_full(p, &u, sizeof(u), NULL);
	if (r < 0)
		return r;
	uint64_t bytes = (uint64_t)u.width * u.height * 4;
	if (bytes != size - sizeof(u)) {
		/* Framing is still intact: drop the pixels, count the violation. */
		pthread_mutex_lock(&p->lock);
		p->stats.protocol_errors++;
		pthread_mutex_unlock(&p->lock);
		return discard(p, size - sizeof(u));
	}

	uint64_t clipped = 0;
	pthread_mutex_lock(&p->fb_lock);
	struct qdp_fb *fb = u.scanout_id < QDP_MAX_SCANOUTS ? &p->fb[u.scanout_id] : NULL;
	bool full_rows = fb && fb->pixels && u.x == 0 && u.width == fb->width &&
	                 (uint64_t)u.y + u.height <= fb->height;
	if (full_rows) {
		/* Fast path (whole-width damage): straight into the framebuffer. */
		r = read_full(p, fb->pixels + (size_t)u.y * fb->width, (size_t)bytes, NULL);
	} else {
		size_t row = (size_t)u.width * 4;
		ensure_scratch(p, row ? row : 1);
		for (uint32_t j = 0; j < u.height && r == 0; j++) {
			if (!p->scratch) {
				r = -ENOMEM;
				break;
			}
			r = read_full(p, p->scratch, row, NULL);
			if (r < 0)
				break;
			uint64_t yy = (uint64_t)u.y + j;
			if (!fb || !fb->pixels || yy >= fb->height || u.x >= fb->width) {
				clipped += u.width;
				continue;
			}
			uint32_t n = u.width;
			if ((uint64_t)u.x + n > fb->width)
				n = fb->width - u.x;
			clipped += u.width - n;
			memcpy(fb->pixels + yy * fb->width + u.x, p->scratch, (size_t)n * 4);
		}
	}
	bool covers_tag = u.scanout_id == 0 && fb && fb->pixels && u.x == 0 && u.y == 0 &&
	                  u.width && u.height;
	uint32_t tag = covers_tag ? fb->pixels[0] : 0;
	pthread_mutex_unlock(&p->fb_lock);
	if (r < 0)
		return r;

	pthread_mutex_lock(&p->lock);
	p->stats.updates++;
	p->stats.update_bytes += bytes;
	p->stats.update_pixels_clipped += clipped;
	if (covers_tag) {
		p->tag = p->stats.tag = tag;
		p->tag_updates = ++p->stats.tag_updates;
	}
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void handle_scanout(struct qdp *p, const struct vhost_user_gpu_scanout *s)
{
	bool bad = s->scanout_id >= QDP_MAX_SCANOUTS || s->width > QDP_MAX_DIM ||
	           s->height > QDP_MAX_DIM;

	if (!bad) {
		struct qdp_fb *fb = &p->fb[s->scanout_id];
		uint32_t *px = NULL;
		if (s->width && s->height)
			px = calloc((size_t)s->width * s->height, 4);
		pthread_mutex_lock(&p->fb_lock);
		free(fb->pixels);
		/* Like QEMU: a new surface (zeroed here) shown from the next UPDATE on. */
		fb->pixels = px;
		fb->width = px ? s->width : 0;
		fb->height = px ? s->height : 0;
		pthread_mutex_unlock(&p->fb_lock);
	}
	pthread_mutex_lock(&p->lock);
	if (bad)
		p->stats.protocol_errors++;
	p->stats.scanouts++;
	pthread_mutex_unlock(&p->lock);
}

static int handle_small(struct qdp *p, uint32_t request, const uint8_t *pl, uint32_t size)
{
	int r = 0;

	switch (request) {
	case VHOST_USER_GPU_GET_PROTOCOL_FEATURES:
		pthread_mutex_lock(&p->lock);
		p->stats.get_protocol_features++;
		pthread_mutex_unlock(&p->lock);
		if (p->cfg.features_mode == QDP_FEATURES_REPLY)
			r = reply(p, request, &p->cfg.protocol_features, 8);
		break;
	case VHOST_USER_GPU_SET_PROTOCOL_FEATURES: {
		uint64_t v = 0;
		memcpy(&v, pl, size < 8 ? size : 8);
		pthread_mutex_lock(&p->lock);
		p->stats.set_protocol_features++;
		p->stats.protocol_features_set = v;
		pthread_mutex_unlock(&p->lock);
		break;
	}
	case VHOST_USER_GPU_GET_DISPLAY_INFO: {
		struct vhost_user_gpu_resp_display_info di;
		memset(&di, 0, sizeof(di));
		di.hdr.type = VHOST_USER_GPU_RESP_OK_DISPLAY_INFO;
		for (unsigned i = 0; i < p->cfg.num_scanouts; i++) {
			di.pmodes[i].width = p->cfg.width[i];
			di.pmodes[i].height = p->cfg.height[i];
			di.pmodes[i].enabled = 1;
		}
		pthread_mutex_lock(&p->lock);
		p->stats.get_display_info++;
		pthread_mutex_unlock(&p->lock);
		r = reply(p, request, &di, sizeof(di));
		break;
	}
	case VHOST_USER_GPU_GET_EDID: {
		struct vhost_user_gpu_edid_request req = { 0 };
		memcpy(&req, pl, size < sizeof(req) ? size : sizeof(req));
		bool valid = size >= sizeof(req) && req.scanout_id < p->cfg.num_scanouts;
		pthread_mutex_lock(&p->lock);
		p->stats.get_edid++;
		if (!valid && !p->cfg.edid_reply_invalid)
			p->stats.edid_unanswered++;
		pthread_mutex_unlock(&p->lock);
		if (!valid && !p->cfg.edid_reply_invalid)
			break; /* QEMU logs and never answers */
		struct vhost_user_gpu_resp_edid e;
		memset(&e, 0, sizeof(e));
		e.hdr.type = VHOST_USER_GPU_RESP_OK_EDID;
		e.size = 128;
		uint32_t id = valid ? req.scanout_id : 0;
		make_edid(e.edid, p->cfg.width[id], p->cfg.height[id]);
		r = reply(p, request, &e, sizeof(e));
		break;
	}
	case VHOST_USER_GPU_SCANOUT:
		if (size < sizeof(struct vhost_user_gpu_scanout)) {
			pthread_mutex_lock(&p->lock);
			p->stats.protocol_errors++;
			pthread_mutex_unlock(&p->lock);
			break;
		}
		handle_scanout(p, (const struct vhost_user_gpu_scanout *)pl);
		break;
	case VHOST_USER_GPU_CURSOR_POS:
	case VHOST_USER_GPU_CURSOR_POS_HIDE: {
		struct vhost_user_gpu_cursor_pos cp = { 0 };
		memcpy(&cp, pl, size < sizeof(cp) ? size : sizeof(cp));
		pthread_mutex_lock(&p->lock);
		if (request == VHOST_USER_GPU_CURSOR_POS)
			p->stats.cursor_pos++;
		else
			p->stats.cursor_hide++;
		p->cursor.scanout_id = cp.scanout_id;
		p->cursor.x = cp.x;
		p->cursor.y = cp.y;
		p->cursor.visible = request == VHOST_USER_GPU_CURSOR_POS;
		pthread_mutex_unlock(&p->lock);
		break;
	}
	case VHOST_USER_GPU_CURSOR_UPDATE: {
		const struct vhost_user_gpu_cursor_update *cu = (const void *)pl;
		pthread_mutex_lock(&p->lock);
		if (size < sizeof(*cu)) {
			p->stats.protocol_errors++;
		} else {
			p->stats.cursor_updates++;
			p->cursor.scanout_id = cu->pos.scanout_id;
			p->cursor.x = cu->pos.x;
			p->cursor.y = cu->pos.y;
			p->cursor.hot_x = cu->hot_x;
			p->cursor.hot_y = cu->hot_y;
			p->cursor.visible = true;
			memcpy(p->cursor.pixels, cu->data, sizeof(p->cursor.pixels));
		}
		pthread_mutex_unlock(&p->lock);
		break;
	}
	case VHOST_USER_GPU_DMABUF_SCANOUT:
	case VHOST_USER_GPU_DMABUF_SCANOUT2:
		pthread_mutex_lock(&p->lock);
		p->stats.dmabuf_scanouts++;
		pthread_mutex_unlock(&p->lock);
		break;
	case VHOST_USER_GPU_DMABUF_UPDATE:
		pthread_mutex_lock(&p->lock);
		p->stats.dmabuf_updates++;
		pthread_mutex_unlock(&p->lock);
		/* QEMU always answers, empty, once its UI flushed: at once here. */
		r = reply(p, request, NULL, 0);
		break;
	default:
		pthread_mutex_lock(&p->lock);
		p->stats.unknown++;
		pthread_mutex_unlock(&p->lock);
		break;
	}
	return r;
}

/* Read and handle one message. 0, or -EPIPE (hang-up) / -errno. */
static int handle_one(struct qdp *p)
{
	struct vhost_user_gpu_hdr h;
	unsigned nfds = 0;
	int r = read_full(p, &h, sizeof(h), &nfds);
	if (r < 0)
		return r;

	if (h.request == VHOST_USER_GPU_UPDATE) {
		r = handle_update(p, h.size);
	} else if (h.size > QDP_MAX_SMALL_PAYLOAD) {
		/* A size this large cannot be a valid message: the stream is lost. */
		r = -EPROTO;
	} else {
		uint8_t *pl = malloc(h.size ? h.size : 1);
		if (!pl)
			return -ENOMEM;
		r = read_full(p, pl, h.size, &nfds);
		if (r == 0)
			r = handle_small(p, h.request, pl, h.size);
		free(pl);
	}
	pthread_mutex_lock(&p->lock);
	p->stats.messages++;
	if (r == -EPROTO)
		p->stats.protocol_errors++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return r;
}

/*
 * One turn of the serving loop: swap in a renewed socket, then (unless
 * stalled) wait up to @timeout_ms for data and handle every message that
 * is ready. 1 handled, 0 nothing, -EPIPE hang-up, -ECANCELED stopping.
 */
static int serve_turn(struct qdp *p, int timeout_ms)
{
	pthread_mutex_lock(&p->lock);
	if (p->next_sock >= 0) {
		if (p->sock >= 0)
			close(p->sock);
		p->sock = p->next_sock;
		p->next_sock = -1;
		p->stats.hung_up = false;
	}
	bool stalled = p->stalled, stop = p->stop, hung = p->stats.hung_up;
	pthread_mutex_unlock(&p->lock);
	if (stop)
		return -ECANCELED;
	if (stalled || hung || p->sock < 0) {
		/* Not reading at all: only a wake (renew, unstall, stop) ends this. */
		int r = wait_fd(p, p->wake_fd, POLLIN, timeout_ms);
		return r < 0 ? r : 0;
	}
	int r = wait_fd(p, p->sock, POLLIN, timeout_ms);
	if (r <= 0)
		return r;
	int handled = 0;
	for (;;) {
		r = handle_one(p);
		if (r < 0 && r != -EPROTO)
			break;
		if (r == -EPROTO) {
			/* Desynchronised stream: behave like a peer that closes it. */
			r = -EPIPE;
			break;
		}
		handled = 1;
		/* Drain what is already queued without sleeping; stop if asked to stall. */
		struct pollfd pfd = { p->sock, POLLIN, 0 };
		pthread_mutex_lock(&p->lock);
		stalled = p->stalled || p->stop || p->next_sock >= 0;
		pthread_mutex_unlock(&p->lock);
		if (stalled || poll(&pfd, 1, 0) <= 0 || !(pfd.revents & POLLIN))
			return handled;
	}
	if (r == -EPIPE) {
		pthread_mutex_lock(&p->lock);
		p->stats.hung_up = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	return r;
}

static void *peer_thread(void *arg)
{
	struct qdp *p = arg;
	for (;;) {
		int r = serve_turn(p, 1000);
		if (r == -ECANCELED)
			break;
		if (r < 0 && r != -EPIPE && should_stop(p))
			break;
	}
	return NULL;
}

int qdp_start(struct qdp *p)
{
	if (p->thread_running)
		return -EALREADY;
	int r = pthread_create(&p->thread, NULL, peer_thread, p);
	if (r)
		return -r;
	p->thread_running = true;
	return 0;
}

int qdp_dispatch(struct qdp *p, int timeout_ms)
{
	if (p->thread_running)
		return -EBUSY;
	return serve_turn(p, timeout_ms);
}

/* --- queries ---------------------------------------------------------------- */

void qdp_get_stats(struct qdp *p, struct qdp_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->stats;
	pthread_mutex_unlock(&p->lock);
}

void qdp_get_cursor(struct qdp *p, struct qdp_cursor *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->cursor;
	pthread_mutex_unlock(&p->lock);
}

int qdp_get_scanout(struct qdp *p, uint32_t scanout_id, uint32_t *width, uint32_t *height)
{
	if (scanout_id >= QDP_MAX_SCANOUTS)
		return -EINVAL;
	pthread_mutex_lock(&p->fb_lock);
	*width = p->fb[scanout_id].width;
	*height = p->fb[scanout_id].height;
	pthread_mutex_unlock(&p->fb_lock);
	return 0;
}

int qdp_get_pixel(struct qdp *p, uint32_t scanout_id, uint32_t x, uint32_t y, uint32_t *px)
{
	int r = 0;
	if (scanout_id >= QDP_MAX_SCANOUTS)
		return -ERANGE;
	pthread_mutex_lock(&p->fb_lock);
	struct qdp_fb *fb = &p->fb[scanout_id];
	if (!fb->pixels || x >= fb->width || y >= fb->height)
		r = -ERANGE;
	else
		*px = fb->pixels[(size_t)y * fb->width + x];
	pthread_mutex_unlock(&p->fb_lock);
	return r;
}

long qdp_compare(struct qdp *p, uint32_t scanout_id, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                 const uint32_t *expect, uint32_t stride, long *first_bad)
{
	long bad = 0;
	if (first_bad)
		*first_bad = -1;
	if (scanout_id >= QDP_MAX_SCANOUTS)
		return -ERANGE;
	pthread_mutex_lock(&p->fb_lock);
	struct qdp_fb *fb = &p->fb[scanout_id];
	if (!fb->pixels || (uint64_t)x + w > fb->width || (uint64_t)y + h > fb->height) {
		pthread_mutex_unlock(&p->fb_lock);
		return -ERANGE;
	}
	for (uint32_t j = 0; j < h; j++) {
		const uint32_t *got = fb->pixels + (size_t)(y + j) * fb->width + x;
		const uint32_t *want =
		        (const uint32_t *)((const uint8_t *)expect + (size_t)j * stride);
		if (memcmp(got, want, (size_t)w * 4) == 0)
			continue;
		for (uint32_t i = 0; i < w; i++) {
			if (got[i] == want[i])
				continue;
			if (first_bad && *first_bad < 0)
				*first_bad = (long)j * w + i;
			bad++;
		}
	}
	pthread_mutex_unlock(&p->fb_lock);
	return bad;
}

uint32_t qdp_last_tag(struct qdp *p, uint64_t *tag_updates)
{
	pthread_mutex_lock(&p->lock);
	uint32_t t = p->tag;
	if (tag_updates)
		*tag_updates = p->tag_updates;
	pthread_mutex_unlock(&p->lock);
	return t;
}

int qdp_wait(struct qdp *p, qdp_pred_fn pred, void *arg, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		bool ok = pred(p, &p->stats, arg);
		if (ok || !p->thread_running) {
			pthread_mutex_unlock(&p->lock);
			if (ok)
				return 0;
			int64_t left = deadline - now_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			int r = serve_turn(p, (int)left);
			if (r < 0 && r != -EPIPE)
				return r;
			continue;
		}
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			pthread_mutex_unlock(&p->lock);
			return -ETIMEDOUT;
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
		pthread_mutex_unlock(&p->lock);
	}
}

static bool pred_updates(struct qdp *p, const struct qdp_stats *st, void *arg)
{
	return st->updates >= *(const uint64_t *)arg;
}

int qdp_wait_updates(struct qdp *p, uint64_t n, int timeout_ms)
{
	return qdp_wait(p, pred_updates, &n, timeout_ms);
}

static bool pred_tag(struct qdp *p, const struct qdp_stats *st, void *arg)
{
	/*
	 * Wrap-safe "tag >= want" on the low 24 bits only: the X byte of an
	 * x8r8g8b8 pixel is padding a back-end may rewrite.
	 */
	uint32_t diff = (p->tag - *(const uint32_t *)arg) & 0xffffffu;
	return p->tag_updates && diff < 0x800000u;
}

int qdp_wait_tag(struct qdp *p, uint32_t tag, int timeout_ms)
{
	return qdp_wait(p, pred_tag, &tag, timeout_ms);
}
