/* SPDX-License-Identifier: MIT */
/*
 * fuzz-vhost-msg - the vhost-user engine fed a stream of front-end messages.
 *
 * Input layout: byte 0 = options (bit 0: attach a stray eventfd to every
 * message, bit 1: write the kick eventfds after each message), then a
 * sequence of 12-byte headers each followed by its declared payload (the
 * last one may be cut short, which is a truncated stream). The harness
 * attaches the fds each request id normally carries (memfds for memory
 * tables, eventfds for vring fds, sockets for the back-end channel and
 * request 33), so the handlers past fd validation are reached. The rest of
 * the input also fills guest memory, so started rings see fuzzed
 * descriptors.
 *
 * Must never crash, hang, or leak memory or fds: the fd count is compared
 * before and after every input.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/log.h>
#include <vshm/vhost_user.h>
#include <vshm/virtqueue.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEM_SIZE    (256u * 1024u)
#define MAX_WATCHES 80

/* ---- minimal poll() loop ---- */

struct vshm_watch {
	int fd;
	uint32_t events;
	vshm_watch_cb cb;
	void *data;
	int removed;
};

static struct vshm_watch *watches[MAX_WATCHES];
static unsigned nwatches;
static int dispatching;

static void compact(void)
{
	unsigned j = 0;

	for (unsigned i = 0; i < nwatches; i++) {
		if (watches[i]->removed)
			free(watches[i]);
		else
			watches[j++] = watches[i];
	}
	nwatches = j;
}

static int w_add(void *loop, int fd, uint32_t events, vshm_watch_cb cb, void *data,
                 struct vshm_watch **out)
{
	struct vshm_watch *w;

	if (nwatches == MAX_WATCHES)
		return -ENOSPC;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct vshm_watch){ .fd = fd, .events = events, .cb = cb, .data = data };
	watches[nwatches++] = w;
	*out = w;
	return 0;
}

static int w_update(void *loop, struct vshm_watch *w, uint32_t events)
{
	w->events = events;
	return 0;
}

static void w_remove(void *loop, struct vshm_watch *w)
{
	w->removed = 1;
	if (!dispatching)
		compact();
}

static const struct vshm_loop_ops loop_ops = { w_add, w_update, w_remove, NULL };

static int dispatch(void)
{
	struct pollfd pfd[MAX_WATCHES];
	struct vshm_watch *snap[MAX_WATCHES];
	unsigned n = nwatches;
	int ran = 0;

	for (unsigned i = 0; i < n; i++) {
		snap[i] = watches[i];
		pfd[i].fd = snap[i]->fd;
		pfd[i].events = (short)(((snap[i]->events & VSHM_EV_IN) ? POLLIN : 0) |
		                        ((snap[i]->events & VSHM_EV_OUT) ? POLLOUT : 0));
		pfd[i].revents = 0;
	}
	if (poll(pfd, n, 0) <= 0)
		return 0;
	dispatching = 1;
	for (unsigned i = 0; i < n; i++) {
		uint32_t ev = 0;

		if (!pfd[i].revents || snap[i]->removed)
			continue;
		ev |= (pfd[i].revents & POLLIN) ? VSHM_EV_IN : 0;
		ev |= (pfd[i].revents & POLLOUT) ? VSHM_EV_OUT : 0;
		ev |= (pfd[i].revents & POLLERR) ? VSHM_EV_ERR : 0;
		ev |= (pfd[i].revents & POLLHUP) ? VSHM_EV_HUP : 0;
		snap[i]->cb(snap[i]->fd, ev, snap[i]->data);
		ran++;
	}
	dispatching = 0;
	compact();
	return ran;
}

/* ---- dummy device ---- */

static uint64_t d_get_features(void *data)
{
	return 0x7;
}

static int d_get_config(void *data, uint32_t offset, void *buf, uint32_t size)
{
	memset(buf, 0x5a, size);
	return 0;
}

static int d_set_config(void *data, uint32_t offset, const void *buf, uint32_t size, uint32_t flags)
{
	return offset & 1 ? -EINVAL : 0;
}

static void d_queue_kick(void *data, struct vshm_vq *vq)
{
	struct vshm_vq_elem *e;
	uint8_t buf[64];

	/* Bounded: a hostile ring must not keep the device busy forever. */
	for (int i = 0; i < 64 && vshm_vq_pop(vq, &e) == 0; i++) {
		vshm_iov_to_buf(e->out_sg, e->out_num, 0, buf, sizeof(buf));
		vshm_iov_from_buf(e->in_sg, e->in_num, 0, buf, sizeof(buf));
		vshm_vq_push(vq, e,
		             e->in_bytes > sizeof(buf) ? sizeof(buf) : (uint32_t)e->in_bytes);
	}
	vshm_vq_notify(vq);
}

static int d_device_request(void *data, uint32_t request, uint32_t flags, const void *payload,
                            uint32_t size, int *fds, unsigned nfds)
{
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	return request == 33 ? 0 : -ENOTSUP;
}

static int d_get_shmem_config(void *data, uint64_t sizes[256])
{
	sizes[1] = 1ull << 30;
	return 0;
}

static const struct vshm_vu_device_ops dev_ops = {
	.get_features = d_get_features,
	.get_config = d_get_config,
	.set_config = d_set_config,
	.queue_kick = d_queue_kick,
	.device_request = d_device_request,
	.get_shmem_config = d_get_shmem_config,
};

/* ---- harness ---- */

static void quiet(enum vshm_log_level level, const char *msg, void *data)
{
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

struct harness {
	int sock;
	int memfd;
	int kick[8];
	unsigned nkick;
	uint8_t opts;
};

static void drain(struct harness *h)
{
	uint8_t buf[4096];
	char cbuf[CMSG_SPACE(sizeof(int) * 8)];

	for (;;) {
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr mh = { .msg_iov = &iov,
			             .msg_iovlen = 1,
			             .msg_control = cbuf,
			             .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm;

		if (recvmsg(h->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
			return;
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			int n = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			int fds[8];

			if (cm->cmsg_type != SCM_RIGHTS || n > 8)
				continue;
			memcpy(fds, CMSG_DATA(cm), (size_t)n * sizeof(int));
			for (int i = 0; i < n; i++)
				close(fds[i]);
		}
	}
}

static void pump(struct harness *h)
{
	for (int i = 0; i < 32 && dispatch() > 0; i++)
		drain(h);
	drain(h);
}

/* Fds a request id normally carries. Returns how many were created. */
static unsigned make_fds(struct harness *h, uint32_t req, const uint8_t *pl, uint32_t plen,
                         int *fds)
{
	unsigned n = 0;
	uint64_t v = 0;
	int sv[2];

	switch (req) {
	case 5: /* SET_MEM_TABLE: one per region */
		n = plen >= 4 ? pl[0] : 0;
		if (n > 8)
			n = 8;
		for (unsigned i = 0; i < n; i++)
			fds[i] = dup(h->memfd);
		break;
	case 37: /* ADD_MEM_REG */
	case 38: /* REM_MEM_REG (optional fd) */
		fds[n++] = dup(h->memfd);
		break;
	case 12:
	case 13:
	case 14:
		if (plen >= 8)
			memcpy(&v, pl, 8);
		if (!(v & (1ull << 8))) {
			fds[n] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (req == 12 && h->nkick < 8 && fds[n] >= 0)
				h->kick[h->nkick++] = dup(fds[n]);
			n++;
		}
		break;
	case 21: /* SET_BACKEND_REQ_FD */
	case 33: /* GPU_SET_SOCKET */
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
			close(sv[0]);
			fds[n++] = sv[1];
		}
		break;
	default:
		break;
	}
	if (h->opts & 1)
		fds[n++] = eventfd(0, EFD_CLOEXEC);
	return n;
}

static int send_msg(struct harness *h, const uint8_t *buf, size_t len, const int *fds,
                    unsigned nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 9)];
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	size_t off = 0;

	memset(cbuf, 0, sizeof(cbuf));
	if (nfds) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	/* Retry while the engine catches up; bounded so nothing can hang. */
	for (int tries = 0; off < len && tries < 1000; tries++) {
		ssize_t r;

		iov.iov_base = (void *)(buf + off);
		iov.iov_len = len - off;
		r = sendmsg(h->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r > 0) {
			off += (size_t)r;
			mh.msg_control = NULL; /* fds go with the first byte only */
			mh.msg_controllen = 0;
			continue;
		}
		if (r < 0 && errno != EAGAIN)
			return -1;
		pump(h);
	}
	return off == len ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int initialized;
	struct vshm_loop loop = { &loop_ops, NULL };
	struct vshm_vu_config cfg;
	struct vshm_vu_dev *dev;
	struct harness h = { .sock = -1, .memfd = -1 };
	void *mem;
	size_t pos = 1;
	int sv[2], fds_before;

	if (!initialized) {
		vshm_log_set_handler(quiet, NULL);
		initialized = 1;
	}
	if (size < 1)
		return 0;
	fds_before = count_fds();
	h.opts = data[0];

	vshm_vu_config_defaults(&cfg);
	cfg.num_queues = 2;
	cfg.max_queue_size = 256;
	cfg.config_size = 40;
	cfg.max_mem_slots = 8;
	cfg.backend_reply_timeout_ms = 10;
	if (vshm_vu_dev_new(&cfg, &dev_ops, NULL, &loop, &dev) < 0)
		abort();

	/* Guest memory: the input itself, repeated. */
	h.memfd = memfd_create("fuzz-guest", MFD_CLOEXEC);
	if (h.memfd < 0 || ftruncate(h.memfd, MEM_SIZE) < 0)
		abort();
	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, h.memfd, 0);
	if (mem == MAP_FAILED)
		abort();
	for (size_t off = 0; off < MEM_SIZE; off += size)
		memcpy((uint8_t *)mem + off, data, size < MEM_SIZE - off ? size : MEM_SIZE - off);
	munmap(mem, MEM_SIZE);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	h.sock = sv[0];
	if (vshm_vu_dev_connect(dev, sv[1]) < 0)
		abort();

	while (pos + 12 <= size && vshm_vu_dev_is_connected(dev)) {
		uint32_t hdr[3];
		size_t plen, len;
		int fds[10];
		unsigned nfds;
		int r;

		memcpy(hdr, data + pos, 12);
		plen = hdr[2];
		if (plen > size - pos - 12)
			plen = size - pos - 12; /* a truncated final message */
		len = 12 + plen;
		nfds = make_fds(&h, hdr[0], data + pos + 12, (uint32_t)plen, fds);
		r = send_msg(&h, data + pos, len, fds, nfds);
		for (unsigned i = 0; i < nfds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		pos += len;
		if (r < 0)
			break;
		pump(&h);
		if (h.opts & 2) {
			uint64_t one = 1;

			for (unsigned i = 0; i < h.nkick; i++)
				if (write(h.kick[i], &one, 8) < 0) {
					/* a full eventfd is fine */
				}
			pump(&h);
		}
	}

	/* EOF: the disconnect path runs, then teardown. */
	close(h.sock);
	pump(&h);
	if (vshm_vu_dev_is_connected(dev))
		abort(); /* EOF must always be noticed */
	vshm_vu_dev_destroy(dev);
	if (nwatches != 0)
		abort(); /* every watch removed */
	for (unsigned i = 0; i < h.nkick; i++)
		close(h.kick[i]);
	close(h.memfd);
	if (count_fds() != fds_before)
		abort(); /* an fd leaked */
	return 0;
}
