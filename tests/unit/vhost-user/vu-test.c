/* SPDX-License-Identifier: MIT */
#include "vu-test.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/virtqueue.h>

#include "test-runner.h"

/* ---- poll() loop: the engine must work with any loop, not only epoll ---- */

#define TLOOP_MAX 64

struct vshm_watch {
	int fd;
	uint32_t events;
	vshm_watch_cb cb;
	void *data;
	bool removed;
};

struct tloop {
	struct vshm_watch *w[TLOOP_MAX];
	unsigned n;
	bool dispatching;
};

static int tl_add(void *loop, int fd, uint32_t events, vshm_watch_cb cb, void *data,
                  struct vshm_watch **out)
{
	struct tloop *l = loop;
	struct vshm_watch *w;

	if (l->n == TLOOP_MAX)
		return -ENOSPC;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct vshm_watch){ .fd = fd, .events = events, .cb = cb, .data = data };
	l->w[l->n++] = w;
	*out = w;
	return 0;
}

static int tl_update(void *loop, struct vshm_watch *w, uint32_t events)
{
	w->events = events;
	return 0;
}

static void tl_compact(struct tloop *l)
{
	unsigned j = 0;

	for (unsigned i = 0; i < l->n; i++) {
		if (l->w[i]->removed)
			free(l->w[i]);
		else
			l->w[j++] = l->w[i];
	}
	l->n = j;
}

static void tl_remove(void *loop, struct vshm_watch *w)
{
	struct tloop *l = loop;

	/* Freed after dispatch so a callback may remove any watch. */
	w->removed = true;
	if (!l->dispatching)
		tl_compact(l);
}

static const struct vshm_loop_ops tloop_ops = {
	.watch_add = tl_add,
	.watch_update = tl_update,
	.watch_remove = tl_remove,
};

struct tloop *tloop_new(void)
{
	struct tloop *l = calloc(1, sizeof(*l));

	CHECK(l);
	return l;
}

void tloop_destroy(struct tloop *l)
{
	for (unsigned i = 0; i < l->n; i++)
		free(l->w[i]);
	free(l);
}

struct vshm_loop tloop_iface(struct tloop *l)
{
	return (struct vshm_loop){ .ops = &tloop_ops, .loop = l };
}

unsigned tloop_num_watches(const struct tloop *l)
{
	return l->n;
}

int tloop_dispatch(struct tloop *l, int timeout_ms)
{
	struct pollfd pfd[TLOOP_MAX];
	struct vshm_watch *snap[TLOOP_MAX];
	unsigned n = l->n;
	int r, ran = 0;

	for (unsigned i = 0; i < n; i++) {
		snap[i] = l->w[i];
		pfd[i].fd = snap[i]->fd;
		pfd[i].events = (short)(((snap[i]->events & VSHM_EV_IN) ? POLLIN : 0) |
		                        ((snap[i]->events & VSHM_EV_OUT) ? POLLOUT : 0));
		pfd[i].revents = 0;
	}
	r = poll(pfd, n, timeout_ms);
	if (r <= 0)
		return 0;
	l->dispatching = true;
	for (unsigned i = 0; i < n; i++) {
		uint32_t ev = 0;

		if (!pfd[i].revents || snap[i]->removed)
			continue;
		if (pfd[i].revents & POLLIN)
			ev |= VSHM_EV_IN;
		if (pfd[i].revents & POLLOUT)
			ev |= VSHM_EV_OUT;
		if (pfd[i].revents & POLLERR)
			ev |= VSHM_EV_ERR;
		if (pfd[i].revents & POLLHUP)
			ev |= VSHM_EV_HUP;
		snap[i]->cb(snap[i]->fd, ev, snap[i]->data);
		ran++;
	}
	l->dispatching = false;
	tl_compact(l);
	return ran;
}

/* ---- recording device ---- */

static uint64_t td_get_features(void *data)
{
	struct tdev *td = data;
	return td->dev_features;
}

static int td_set_features(void *data, uint64_t features)
{
	struct tdev *td = data;
	td->set_features_calls++;
	td->last_features = features;
	return 0;
}

static int td_get_config(void *data, uint32_t offset, void *buf, uint32_t size)
{
	struct tdev *td = data;
	if ((uint64_t)offset + size > sizeof(td->config))
		td->order_errors++;
	else
		memcpy(buf, td->config + offset, size);
	return 0;
}

static int td_set_config(void *data, uint32_t offset, const void *buf, uint32_t size,
                         uint32_t flags)
{
	struct tdev *td = data;
	if ((uint64_t)offset + size > sizeof(td->config))
		td->order_errors++;
	else
		memcpy(td->config + offset, buf, size);
	td->last_config_flags = flags;
	return 0;
}

static void td_queue_kick(void *data, struct vshm_vq *vq)
{
	struct tdev *td = data;
	unsigned i = vshm_vq_index(vq);
	struct vshm_vq_elem *e;

	if (i >= T_MAX_QUEUES || !vshm_vq_is_ready(vq) || !td->running[i]) {
		td->order_errors++;
		return;
	}
	td->kicks[i]++;
	while (vshm_vq_pop(vq, &e) == 0)
		vshm_vq_push(vq, e, 0);
	vshm_vq_notify(vq);
}

static void td_queue_state(void *data, struct vshm_vq *vq, bool started)
{
	struct tdev *td = data;
	unsigned i = vshm_vq_index(vq);

	if (i >= T_MAX_QUEUES || td->running[i] == started) {
		td->order_errors++;
		return;
	}
	td->running[i] = started;
	if (started)
		td->started[i]++;
	else
		td->stopped[i]++;
}

static int td_device_request(void *data, uint32_t request, uint32_t flags, const void *payload,
                             uint32_t size, int *fds, unsigned nfds)
{
	struct tdev *td = data;

	td->devreq_calls++;
	td->devreq_last = request;
	td->devreq_nfds = nfds;
	td->devreq_fd_valid = nfds == 1 && fcntl(fds[0], F_GETFD) >= 0;
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	if (request == REQ_GPU_SET_SOCKET && td->handle_33)
		return 0;
	return -ENOTSUP;
}

static void td_reset(void *data)
{
	struct tdev *td = data;
	td->resets++;
}

static void td_set_status(void *data, uint8_t status)
{
	struct tdev *td = data;
	td->status_calls++;
	td->status = status;
}

static void td_disconnected(void *data)
{
	struct tdev *td = data;
	td->disconnects++;
}

static int td_get_shmem_config(void *data, uint64_t sizes[256])
{
	sizes[1] = 1ull << 33;
	return 0;
}

const struct vshm_vu_device_ops tdev_ops = {
	.get_features = td_get_features,
	.set_features = td_set_features,
	.get_config = td_get_config,
	.set_config = td_set_config,
	.queue_kick = td_queue_kick,
	.queue_state = td_queue_state,
	.device_request = td_device_request,
	.reset = td_reset,
	.set_status = td_set_status,
	.disconnected = td_disconnected,
	.get_shmem_config = td_get_shmem_config,
};

/* ---- front-end ---- */

static void fe_connect(struct fe *fe)
{
	int sv[2];

	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	fe->sock = sv[0];
	CHECK_OK(vshm_vu_dev_connect(fe->dev, sv[1]));
}

static void fe_setup(struct fe *fe, const struct vshm_vu_config *cfg, const struct vshm_loop *loop,
                     const struct vshm_vu_device_ops *ops)
{
	struct vshm_vu_config c;

	memset(fe, 0, sizeof(*fe));
	fe->memfd = -1;
	for (unsigned i = 0; i < T_MAX_QUEUES; i++)
		fe->kick[i] = fe->call[i] = -1;
	if (cfg) {
		c = *cfg;
	} else {
		vshm_vu_config_defaults(&c);
		c.num_queues = T_MAX_QUEUES;
		c.config_size = T_CONFIG_SIZE;
		c.max_queue_size = 256;
		c.backend_reply_timeout_ms = 300;
	}
	fe->td.dev_features = 0x3; /* two device bits */
	for (unsigned i = 0; i < T_CONFIG_SIZE; i++)
		fe->td.config[i] = (uint8_t)i;
	if (loop) {
		fe->iface = *loop;
	} else {
		fe->loop = tloop_new();
		fe->iface = tloop_iface(fe->loop);
	}
	CHECK_OK(vshm_vu_dev_new(&c, ops, &fe->td, &fe->iface, &fe->dev));
	fe_connect(fe);
}

void fe_init_loop(struct fe *fe, const struct vshm_vu_config *cfg, const struct vshm_loop *loop)
{
	fe_setup(fe, cfg, loop, &tdev_ops);
}

void fe_init(struct fe *fe, const struct vshm_vu_config *cfg)
{
	fe_setup(fe, cfg, NULL, &tdev_ops);
}

void fe_init_ops(struct fe *fe, const struct vshm_vu_config *cfg,
                 const struct vshm_vu_device_ops *ops)
{
	fe_setup(fe, cfg, NULL, ops);
}

void fe_reconnect(struct fe *fe)
{
	if (fe->sock >= 0)
		close(fe->sock);
	fe->sock = -1;
	fe_pump(fe);
	fe_connect(fe);
}

void fe_fini(struct fe *fe)
{
	vshm_vu_dev_destroy(fe->dev);
	if (fe->sock >= 0)
		close(fe->sock);
	if (fe->loop) {
		CHECK_EQ(tloop_num_watches(fe->loop), 0);
		tloop_destroy(fe->loop);
	}
	if (fe->mem)
		munmap(fe->mem, T_MEM_SIZE);
	if (fe->memfd >= 0)
		close(fe->memfd);
	for (unsigned i = 0; i < T_MAX_QUEUES; i++) {
		if (fe->kick[i] >= 0)
			close(fe->kick[i]);
		if (fe->call[i] >= 0)
			close(fe->call[i]);
	}
}

void fe_pump(struct fe *fe)
{
	if (!fe->loop)
		return; /* callers with their own loop pump it themselves */
	while (tloop_dispatch(fe->loop, 0) > 0)
		;
}

int fe_send_raw(struct fe *fe, const void *buf, size_t len, const int *fds, unsigned nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 16)];
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	n = sendmsg(fe->sock, &mh, MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EIO;
}

int fe_send(struct fe *fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
            const int *fds, unsigned nfds)
{
	uint8_t buf[12 + 8192];
	uint32_t h[3] = { req, flags, size };

	CHECK(size <= 8192);
	memcpy(buf, h, 12);
	if (size)
		memcpy(buf + 12, payload, size);
	return fe_send_raw(fe, buf, 12 + size, fds, nfds);
}

static bool sock_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, timeout_ms) == 1;
}

int fe_recv(struct fe *fe, uint32_t *req, uint32_t *flags, void *buf, size_t max)
{
	uint32_t h[3];
	ssize_t n;

	for (int i = 0; i < 200; i++) {
		fe_pump(fe);
		if (sock_readable(fe->sock, 10))
			break;
	}
	n = recv(fe->sock, h, sizeof(h), MSG_DONTWAIT);
	if (n == 0)
		return -EPIPE;
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	CHECK_EQ(n, 12);
	if (req)
		*req = h[0];
	if (flags)
		*flags = h[1];
	CHECK(h[2] <= max);
	if (h[2]) {
		n = recv(fe->sock, buf, h[2], MSG_WAITALL);
		CHECK_EQ(n, h[2]);
	}
	return (int)h[2];
}

bool fe_no_reply(struct fe *fe)
{
	char c;

	fe_pump(fe);
	return recv(fe->sock, &c, 1, MSG_DONTWAIT | MSG_PEEK) < 0 && errno == EAGAIN;
}

bool fe_peer_closed(struct fe *fe)
{
	char c;

	ssize_t n;

	fe_pump(fe);
	n = recv(fe->sock, &c, 1, MSG_DONTWAIT | MSG_PEEK);
	/* A close with our bytes still unread shows up as a reset. */
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

int fe_get_u64(struct fe *fe, uint32_t req, uint64_t *v)
{
	uint32_t rreq, rflags;
	int n;

	CHECK_OK(fe_send(fe, req, F_V1, NULL, 0, NULL, 0));
	n = fe_recv(fe, &rreq, &rflags, v, sizeof(*v));
	if (n < 0)
		return n;
	CHECK_EQ(rreq, req);
	CHECK_EQ(rflags, F_V1 | F_REPLY);
	CHECK_EQ(n, 8);
	return 0;
}

int64_t fe_req_ack(struct fe *fe, uint32_t req, const void *payload, uint32_t size, const int *fds,
                   unsigned nfds)
{
	uint32_t rreq, rflags;
	uint64_t v;
	int n;

	CHECK_OK(fe_send(fe, req, F_V1 | F_NEED_REPLY, payload, size, fds, nfds));
	n = fe_recv(fe, &rreq, &rflags, &v, sizeof(v));
	if (n < 0)
		return -1;
	CHECK_EQ(rreq, req);
	CHECK_EQ(rflags, F_V1 | F_REPLY);
	CHECK_EQ(n, 8);
	return (int64_t)v;
}

int64_t fe_set_u64_ack(struct fe *fe, uint32_t req, uint64_t v)
{
	return fe_req_ack(fe, req, &v, sizeof(v), NULL, 0);
}

void fe_negotiate(struct fe *fe, uint64_t pf, uint64_t features_mask)
{
	uint64_t f, offered_pf;

	CHECK_OK(fe_get_u64(fe, REQ_GET_FEATURES, &f));
	CHECK(f & VSHM_VU_F_PROTOCOL_FEATURES);
	CHECK_OK(fe_get_u64(fe, REQ_GET_PROTOCOL_FEATURES, &offered_pf));
	pf &= offered_pf;
	CHECK_OK(fe_send(fe, REQ_SET_PROTOCOL_FEATURES, F_V1, &pf, 8, NULL, 0));
	CHECK_OK(fe_send(fe, REQ_SET_OWNER, F_V1, NULL, 0, NULL, 0));
	f &= features_mask;
	if (pf & VSHM_VU_PF_REPLY_ACK)
		CHECK_EQ(fe_set_u64_ack(fe, REQ_SET_FEATURES, f), 0);
	else
		CHECK_OK(fe_send(fe, REQ_SET_FEATURES, F_V1, &f, 8, NULL, 0));
	fe_pump(fe);
	CHECK_EQ(vshm_vu_dev_protocol_features(fe->dev), pf);
	CHECK_EQ(vshm_vu_dev_features(fe->dev), f);
}

void fe_set_mem_nowait(struct fe *fe)
{
	struct {
		uint32_t n, pad;
		uint64_t gpa, size, uva, off;
	} __attribute__((packed)) t = { 1, 0, T_GPA_BASE, T_MEM_SIZE, T_UVA_BASE, 0 };

	if (fe->memfd < 0) {
		fe->memfd = memfd_create("vu-test", MFD_CLOEXEC);
		CHECK(fe->memfd >= 0);
		CHECK_OK(ftruncate(fe->memfd, T_MEM_SIZE));
		fe->mem = mmap(NULL, T_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fe->memfd, 0);
		CHECK(fe->mem != MAP_FAILED);
	}
	CHECK_OK(fe_send(fe, REQ_SET_MEM_TABLE, F_V1, &t, sizeof(t), &fe->memfd, 1));
}

void fe_set_mem(struct fe *fe)
{
	fe_set_mem_nowait(fe);
	fe_pump(fe);
	CHECK_EQ(vshm_mem_num_regions(vshm_vu_dev_get_mem(fe->dev)), 1);
}

void fe_setup_ring(struct fe *fe, unsigned i, unsigned num)
{
	uint32_t st[2] = { i, num };
	uint32_t base[2] = { i, 0 };
	struct {
		uint32_t index, flags;
		uint64_t desc, used, avail, log;
	} __attribute__((packed)) a = { i, 0, T_RING_DESC(i), T_RING_USED(i), T_RING_AVAIL(i), 0 };
	uint64_t v = i;

	if (fe->kick[i] < 0)
		fe->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fe->call[i] < 0)
		fe->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(fe->kick[i] >= 0 && fe->call[i] >= 0);
	CHECK_OK(fe_send(fe, REQ_SET_VRING_NUM, F_V1, st, 8, NULL, 0));
	CHECK_OK(fe_send(fe, REQ_SET_VRING_BASE, F_V1, base, 8, NULL, 0));
	CHECK_OK(fe_send(fe, REQ_SET_VRING_ADDR, F_V1, &a, sizeof(a), NULL, 0));
	CHECK_OK(fe_send(fe, REQ_SET_VRING_CALL, F_V1, &v, 8, &fe->call[i], 1));
	CHECK_OK(fe_send(fe, REQ_SET_VRING_KICK, F_V1, &v, 8, &fe->kick[i], 1));
	fe_pump(fe);
}

void fe_kick(struct fe *fe, unsigned i)
{
	uint64_t one = 1;
	CHECK_EQ(write(fe->kick[i], &one, 8), 8);
	fe_pump(fe);
}

/* Split-ring layout offsets inside fe->mem for queue @i. */
static uint8_t *ring_base(struct fe *fe, unsigned i)
{
	return (uint8_t *)fe->mem + (T_RING_DESC(i) - T_UVA_BASE);
}

void fe_post_buffer(struct fe *fe, unsigned i, uint16_t head, uint32_t len)
{
	uint8_t *desc = ring_base(fe, i);
	uint8_t *avail = desc + 0x4000;
	uint16_t idx, num = 0;
	uint64_t addr = T_GPA_BASE + 0xc0000 + (uint64_t)head * 0x100;
	uint16_t flags = 2; /* device-writable */

	/* desc[head] = { addr, len, flags, next } */
	memcpy(desc + head * 16, &addr, 8);
	memcpy(desc + head * 16 + 8, &len, 4);
	memcpy(desc + head * 16 + 12, &flags, 2);
	memcpy(desc + head * 16 + 14, &num, 2);
	memcpy(&idx, avail + 2, 2);
	num = vshm_vq_size(vshm_vu_dev_get_queue(fe->dev, i));
	CHECK(num > 0);
	memcpy(avail + 4 + 2 * (idx % num), &head, 2);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	idx++;
	memcpy(avail + 2, &idx, 2);
}

uint16_t fe_used_idx(struct fe *fe, unsigned i)
{
	uint16_t idx;

	memcpy(&idx, ring_base(fe, i) + 0x8000 + 2, 2);
	return idx;
}
