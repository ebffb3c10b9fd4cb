/* SPDX-License-Identifier: MIT */
/*
 * frontend.c - the vhost-user front-end for tests (see frontend.h).
 *
 * The wire code is written here instead of reusing vshm_conn on purpose:
 * the front-end must be able to send bytes the back-end's framing would
 * never produce, and a test peer that shares the code under test cannot
 * catch that code's bugs.
 */
#include "frontend.h"
#include "backend-peer.h"
#include "guest-mem.h"
#include "vring-driver.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Protocol feature masks the front-end logic depends on (protocols.md §1.6). */
#define PF_MQ                  (1ull << 0)
#define PF_REPLY_ACK           (1ull << 3)
#define PF_BACKEND_REQ         (1ull << 5)
#define PF_CONFIG              (1ull << 9)
#define PF_CONFIGURE_MEM_SLOTS (1ull << 15)
#define PF_STATUS              (1ull << 16)
#define PF_DEVICE_STATE        (1ull << 19)
#define PF_SHMEM               (1ull << 22)
#define F_PROTOCOL_FEATURES    (1ull << 30)

/* What crosvm's front-end is willing to ack (vhost_user_frontend/mod.rs). */
#define CROSVM_PF_WANTED                                                                           \
	(PF_CONFIG | PF_MQ | PF_BACKEND_REQ | PF_DEVICE_STATE | PF_SHMEM | PF_REPLY_ACK)

#define VRING_NOFD_MASK   (1ull << 8)
#define SHMEM_CONFIG_SIZE (8u + 256u * 8u)
/* Longest single pump call, so a pump that does not notice our fd still returns soon. */
#define PUMP_SLICE_MS 50

struct tfe {
	int fd;
	int timeout_ms;
	tfe_pump_fn pump;
	void *pump_data;
	bool need_reply;
	uint64_t protocol_features;
	uint64_t last_ack;
	struct tfe_queue {
		int kick, call;
		bool borrowed; /* kick/call belong to @vr */
		struct testfe_vring *vr;
		struct testfe_mem *mem;
		/* tfe_submit() scratch buffers in guest memory */
		uint64_t req_gpa, resp_gpa;
		uint64_t req_cap, resp_cap;
		int pending_head; /* TFE_SUBMIT_NO_WAIT chain, -1 if none */
	} q[TFE_MAX_QUEUES];
	struct tfe_peer *peer;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t deadline_after(int timeout_ms)
{
	return now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
}

/*
 * Wait until @fd reports @events or the deadline passes. With a pump the
 * fd is only checked (poll timeout 0) between pump slices: the pump is
 * what makes the other side produce the event.
 */
static int wait_fd(int fd, short events, uint64_t deadline, tfe_pump_fn pump, void *pump_data)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		uint64_t now = now_ns();
		int remain = now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
		int r = poll(&pfd, 1, pump ? 0 : remain);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r > 0)
			return 0; /* includes HUP/ERR: the caller's I/O reports them */
		if (now_ns() >= deadline)
			return -ETIMEDOUT;
		if (pump) {
			r = pump(pump_data, remain < PUMP_SLICE_MS ? remain : PUMP_SLICE_MS);
			if (r < 0)
				return r;
		}
	}
}

int tfe_wire_send_bytes(int fd, const void *bytes, size_t len, const int *fds, unsigned nfds,
                        int timeout_ms, tfe_pump_fn pump, void *pump_data)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * TFE_MAX_FDS * 2)];
		struct cmsghdr align;
	} ctrl;
	uint64_t deadline = deadline_after(timeout_ms);
	const uint8_t *p = bytes;
	size_t off = 0;
	bool fds_sent = nfds == 0;

	/* Room for more than the protocol allows: malformed-input tests send too many fds. */
	if (nfds > TFE_MAX_FDS * 2)
		return -EINVAL;
	/* A zero-byte message cannot carry SCM_RIGHTS on a stream socket. */
	if (len == 0)
		return nfds ? -EINVAL : 0;
	while (off < len) {
		struct iovec iov = { .iov_base = (void *)(p + off), .iov_len = len - off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (!fds_sent) {
			struct cmsghdr *c;
			memset(&ctrl, 0, sizeof(ctrl));
			mh.msg_control = ctrl.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			int r;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			r = wait_fd(fd, POLLOUT, deadline, pump, pump_data);
			if (r < 0)
				return r;
			continue;
		}
		/* The fds went with the first byte the kernel accepted. */
		fds_sent = true;
		off += (size_t)n;
	}
	return 0;
}

int tfe_wire_send(int fd, uint32_t request, uint32_t flags, const void *payload, uint32_t size,
                  const int *fds, unsigned nfds, int timeout_ms, tfe_pump_fn pump, void *pump_data)
{
	uint8_t stackbuf[512];
	uint8_t *buf = stackbuf;
	size_t len = (size_t)TFE_HDR_SIZE + size;
	int r;

	if (len > sizeof(stackbuf)) {
		buf = malloc(len);
		if (!buf)
			return -ENOMEM;
	}
	memcpy(buf, &request, 4);
	memcpy(buf + 4, &flags, 4);
	memcpy(buf + 8, &size, 4);
	if (size)
		memcpy(buf + TFE_HDR_SIZE, payload, size);
	r = tfe_wire_send_bytes(fd, buf, len, fds, nfds, timeout_ms, pump, pump_data);
	if (buf != stackbuf)
		free(buf);
	return r;
}

void tfe_msg_finish(struct tfe_msg *msg)
{
	unsigned i;
	for (i = 0; i < msg->nfds; i++) {
		if (msg->fds[i] >= 0)
			close(msg->fds[i]);
		msg->fds[i] = -1;
	}
	msg->nfds = 0;
	free(msg->payload);
	msg->payload = NULL;
}

/*
 * Read exactly @len bytes into @buf, collecting SCM_RIGHTS fds into @msg.
 * Returns 0, -EPIPE for EOF before the first byte when @at_boundary,
 * -ECONNRESET for EOF elsewhere, -EPROTO for bad control data.
 */
static int read_exact(int fd, void *buf, size_t len, struct tfe_msg *msg, bool at_boundary,
                      uint64_t deadline, tfe_pump_fn pump, void *pump_data)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * TFE_MAX_FDS * 2)];
		struct cmsghdr align;
	} ctrl;
	size_t off = 0;

	while (off < len) {
		struct iovec iov = { .iov_base = (uint8_t *)buf + off, .iov_len = len - off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct cmsghdr *c;
		bool too_many = false;
		ssize_t n;
		int r;

		mh.msg_control = ctrl.buf;
		mh.msg_controllen = sizeof(ctrl.buf);
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			r = wait_fd(fd, POLLIN, deadline, pump, pump_data);
			if (r < 0)
				return r;
			continue;
		}
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			unsigned k, cnt;
			const int *in;
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			cnt = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			in = (const int *)(void *)CMSG_DATA(c);
			too_many = too_many || msg->nfds + cnt > TFE_MAX_FDS;
			for (k = 0; k < cnt; k++) {
				int nfd;
				memcpy(&nfd, in + k, sizeof(nfd));
				if (msg->nfds < TFE_MAX_FDS)
					msg->fds[msg->nfds++] = nfd;
				else
					close(nfd);
			}
		}
		if (too_many || (mh.msg_flags & MSG_CTRUNC))
			return -EPROTO;
		if (n == 0)
			return at_boundary && off == 0 ? -EPIPE : -ECONNRESET;
		off += (size_t)n;
	}
	return 0;
}

int tfe_wire_recv(int fd, struct tfe_msg *msg, int timeout_ms, tfe_pump_fn pump, void *pump_data)
{
	uint64_t deadline = deadline_after(timeout_ms);
	uint8_t hdr[TFE_HDR_SIZE];
	unsigned i;
	int r;

	memset(msg, 0, sizeof(*msg));
	for (i = 0; i < TFE_MAX_FDS; i++)
		msg->fds[i] = -1;
	r = read_exact(fd, hdr, sizeof(hdr), msg, true, deadline, pump, pump_data);
	if (r < 0)
		goto fail;
	memcpy(&msg->request, hdr, 4);
	memcpy(&msg->flags, hdr + 4, 4);
	memcpy(&msg->size, hdr + 8, 4);
	if (msg->size > TFE_MAX_PAYLOAD) {
		r = -EMSGSIZE;
		goto fail;
	}
	if (msg->size) {
		msg->payload = malloc(msg->size);
		if (!msg->payload) {
			r = -ENOMEM;
			goto fail;
		}
		r = read_exact(fd, msg->payload, msg->size, msg, false, deadline, pump, pump_data);
		if (r < 0)
			goto fail;
	}
	return 0;
fail:
	tfe_msg_finish(msg);
	return r;
}

/* ------------------------------------------------------------------------ */

int tfe_new(int fd, struct tfe **out)
{
	struct tfe *fe = calloc(1, sizeof(*fe));
	unsigned i;

	if (!fe) {
		close(fd);
		return -ENOMEM;
	}
	fe->fd = fd;
	fe->timeout_ms = TFE_DEFAULT_TIMEOUT_MS;
	for (i = 0; i < TFE_MAX_QUEUES; i++) {
		fe->q[i].kick = fe->q[i].call = -1;
		fe->q[i].pending_head = -1;
	}
	*out = fe;
	return 0;
}

int tfe_connect(const char *path, struct tfe **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return tfe_new(fd, out);
}

int tfe_new_pair(struct tfe **out, int *backend_fd)
{
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	r = tfe_new(sv[0], out);
	if (r < 0) {
		close(sv[1]);
		return r;
	}
	*backend_fd = sv[1];
	return 0;
}

static void drop_queue_fds(struct tfe_queue *q)
{
	if (!q->borrowed) {
		if (q->kick >= 0)
			close(q->kick);
		if (q->call >= 0)
			close(q->call);
	}
	q->kick = q->call = -1;
	q->borrowed = false;
}

void tfe_destroy(struct tfe *fe)
{
	unsigned i;

	if (!fe)
		return;
	tfe_peer_destroy(fe->peer);
	for (i = 0; i < TFE_MAX_QUEUES; i++)
		drop_queue_fds(&fe->q[i]);
	if (fe->fd >= 0)
		close(fe->fd);
	free(fe);
}

void tfe_set_pump(struct tfe *fe, tfe_pump_fn pump, void *data)
{
	fe->pump = pump;
	fe->pump_data = data;
}

void tfe_set_timeout(struct tfe *fe, int timeout_ms)
{
	fe->timeout_ms = timeout_ms > 0 ? timeout_ms : TFE_DEFAULT_TIMEOUT_MS;
}

void tfe_set_need_reply(struct tfe *fe, bool need_reply)
{
	fe->need_reply = need_reply;
}

int tfe_get_fd(const struct tfe *fe)
{
	return fe->fd;
}

uint64_t tfe_last_ack(const struct tfe *fe)
{
	return fe->last_ack;
}

uint64_t tfe_protocol_features(const struct tfe *fe)
{
	return fe->protocol_features;
}

int tfe_wait_hangup(struct tfe *fe, int timeout_ms)
{
	uint64_t deadline = deadline_after(timeout_ms);
	char c;
	ssize_t n;
	int r;

	for (;;) {
		r = wait_fd(fe->fd, POLLIN, deadline, fe->pump, fe->pump_data);
		if (r < 0)
			return r;
		n = recv(fe->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 0;
		if (n > 0)
			return -EBADMSG;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
}

int tfe_send_raw(struct tfe *fe, const void *bytes, size_t len, const int *fds, unsigned nfds)
{
	return tfe_wire_send_bytes(fe->fd, bytes, len, fds, nfds, fe->timeout_ms, fe->pump,
	                           fe->pump_data);
}

int tfe_send_msg(struct tfe *fe, uint32_t request, uint32_t flags, const void *payload,
                 uint32_t size, const int *fds, unsigned nfds)
{
	return tfe_wire_send(fe->fd, request, flags, payload, size, fds, nfds, fe->timeout_ms,
	                     fe->pump, fe->pump_data);
}

int tfe_recv_msg(struct tfe *fe, struct tfe_msg *msg)
{
	return tfe_wire_recv(fe->fd, msg, fe->timeout_ms, fe->pump, fe->pump_data);
}

/* Requests answered with a body whatever REPLY_ACK says (protocols.md §1.3). */
static bool has_reply_body(uint32_t request)
{
	switch (request) {
	case TFE_GET_FEATURES:
	case TFE_GET_PROTOCOL_FEATURES:
	case TFE_GET_VRING_BASE:
	case TFE_GET_QUEUE_NUM:
	case TFE_GET_CONFIG:
	case TFE_GET_MAX_MEM_SLOTS:
	case TFE_GET_STATUS:
	case TFE_GET_SHMEM_CONFIG:
		return true;
	default:
		return false;
	}
}

int tfe_call(struct tfe *fe, uint32_t request, const void *payload, uint32_t size, const int *fds,
             unsigned nfds, void *reply, uint32_t reply_cap, uint32_t *reply_size)
{
	bool body = has_reply_body(request);
	bool ack = !body && fe->need_reply && (fe->protocol_features & PF_REPLY_ACK);
	uint32_t flags = TFE_FLAG_VERSION | (ack ? TFE_FLAG_NEED_REPLY : 0);
	struct tfe_msg msg;
	int r;

	if (reply_size)
		*reply_size = 0;
	r = tfe_send_msg(fe, request, flags, payload, size, fds, nfds);
	if (r < 0 || (!body && !ack))
		return r;
	r = tfe_recv_msg(fe, &msg);
	if (r < 0)
		return r;
	/* Replies never carry fds in the requests this front-end makes. */
	if (msg.request != request || (msg.flags & 0x3u) != TFE_FLAG_VERSION ||
	    !(msg.flags & TFE_FLAG_REPLY) || msg.nfds) {
		r = -EPROTO;
	} else if (ack) {
		if (msg.size != 8) {
			r = -EPROTO;
		} else {
			memcpy(&fe->last_ack, msg.payload, 8);
			r = fe->last_ack ? -EREMOTEIO : 0;
		}
	} else {
		if (reply && msg.size)
			memcpy(reply, msg.payload, msg.size < reply_cap ? msg.size : reply_cap);
		if (reply_size)
			*reply_size = msg.size;
	}
	tfe_msg_finish(&msg);
	return r;
}

int tfe_sync(struct tfe *fe)
{
	uint64_t f;
	return tfe_get_features(fe, &f);
}

/* ---- typed requests ---------------------------------------------------- */

static int get_u64(struct tfe *fe, uint32_t request, uint64_t *out)
{
	uint32_t got;
	int r = tfe_call(fe, request, NULL, 0, NULL, 0, out, 8, &got);
	if (r == 0 && got != 8)
		r = -EPROTO;
	return r;
}

static int set_u64(struct tfe *fe, uint32_t request, uint64_t v)
{
	return tfe_call(fe, request, &v, 8, NULL, 0, NULL, 0, NULL);
}

int tfe_get_features(struct tfe *fe, uint64_t *features)
{
	return get_u64(fe, TFE_GET_FEATURES, features);
}

int tfe_set_features(struct tfe *fe, uint64_t features)
{
	return set_u64(fe, TFE_SET_FEATURES, features);
}

int tfe_get_protocol_features(struct tfe *fe, uint64_t *pf)
{
	return get_u64(fe, TFE_GET_PROTOCOL_FEATURES, pf);
}

int tfe_set_protocol_features(struct tfe *fe, uint64_t pf)
{
	/*
	 * Recorded only after sending: whether the back-end acks the very
	 * message that turns REPLY_ACK on is unspecified, so never ask.
	 */
	int r = set_u64(fe, TFE_SET_PROTOCOL_FEATURES, pf);
	if (r == 0)
		fe->protocol_features = pf;
	return r;
}

int tfe_get_queue_num(struct tfe *fe, uint64_t *num)
{
	return get_u64(fe, TFE_GET_QUEUE_NUM, num);
}

int tfe_get_max_mem_slots(struct tfe *fe, uint64_t *slots)
{
	return get_u64(fe, TFE_GET_MAX_MEM_SLOTS, slots);
}

int tfe_set_backend_req_fd(struct tfe *fe, int *channel_fd)
{
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	r = tfe_call(fe, TFE_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1, NULL, 0, NULL);
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		return r;
	}
	if (channel_fd) {
		*channel_fd = sv[0];
		return 0;
	}
	tfe_peer_destroy(fe->peer);
	fe->peer = NULL;
	r = tfe_peer_new(sv[0], &fe->peer);
	if (r == 0)
		r = tfe_peer_start_thread(fe->peer);
	return r;
}

struct tfe_peer *tfe_get_backend_peer(struct tfe *fe)
{
	return fe->peer;
}

int tfe_set_owner(struct tfe *fe)
{
	return tfe_call(fe, TFE_SET_OWNER, NULL, 0, NULL, 0, NULL, 0, NULL);
}

int tfe_reset_owner(struct tfe *fe)
{
	return tfe_call(fe, TFE_RESET_OWNER, NULL, 0, NULL, 0, NULL, 0, NULL);
}

int tfe_reset_device(struct tfe *fe)
{
	return tfe_call(fe, TFE_RESET_DEVICE, NULL, 0, NULL, 0, NULL, 0, NULL);
}

/* The 32-byte memory region layout (protocols.md §1.4). */
static void put_region(uint8_t *p, const struct tfe_region *r)
{
	memcpy(p, &r->guest_addr, 8);
	memcpy(p + 8, &r->size, 8);
	memcpy(p + 16, &r->user_addr, 8);
	memcpy(p + 24, &r->mmap_offset, 8);
}

int tfe_set_mem_table(struct tfe *fe, const struct tfe_region *regions, unsigned n)
{
	uint8_t buf[8 + 32 * TFE_MAX_REGIONS] = { 0 };
	int fds[TFE_MAX_REGIONS];
	uint32_t nregions = n;
	unsigned i;

	if (n > TFE_MAX_REGIONS)
		return -E2BIG;
	memcpy(buf, &nregions, 4);
	for (i = 0; i < n; i++) {
		put_region(buf + 8 + 32 * i, &regions[i]);
		fds[i] = regions[i].fd;
	}
	return tfe_call(fe, TFE_SET_MEM_TABLE, buf, 8 + 32 * n, fds, n, NULL, 0, NULL);
}

int tfe_add_mem_reg(struct tfe *fe, const struct tfe_region *region)
{
	uint8_t buf[40] = { 0 };
	put_region(buf + 8, region);
	return tfe_call(fe, TFE_ADD_MEM_REG, buf, sizeof(buf), &region->fd, 1, NULL, 0, NULL);
}

int tfe_rem_mem_reg(struct tfe *fe, const struct tfe_region *region)
{
	uint8_t buf[40] = { 0 };
	put_region(buf + 8, region);
	return tfe_call(fe, TFE_REM_MEM_REG, buf, sizeof(buf), NULL, 0, NULL, 0, NULL);
}

static int set_vring_state(struct tfe *fe, uint32_t request, unsigned index, unsigned num)
{
	uint32_t st[2] = { index, num };
	return tfe_call(fe, request, st, sizeof(st), NULL, 0, NULL, 0, NULL);
}

int tfe_set_vring_num(struct tfe *fe, unsigned index, unsigned num)
{
	return set_vring_state(fe, TFE_SET_VRING_NUM, index, num);
}

int tfe_set_vring_base(struct tfe *fe, unsigned index, unsigned base)
{
	return set_vring_state(fe, TFE_SET_VRING_BASE, index, base);
}

int tfe_set_vring_enable(struct tfe *fe, unsigned index, bool enable)
{
	return set_vring_state(fe, TFE_SET_VRING_ENABLE, index, enable ? 1 : 0);
}

int tfe_get_vring_base(struct tfe *fe, unsigned index, uint32_t *base)
{
	uint32_t st[2] = { index, 0 }, rep[2] = { 0, 0 };
	uint32_t got;
	int r = tfe_call(fe, TFE_GET_VRING_BASE, st, sizeof(st), NULL, 0, rep, sizeof(rep), &got);
	if (r < 0)
		return r;
	if (got != sizeof(rep) || rep[0] != index)
		return -EPROTO;
	*base = rep[1];
	return 0;
}

int tfe_set_vring_addr(struct tfe *fe, unsigned index, uint64_t desc, uint64_t avail, uint64_t used,
                       uint32_t flags)
{
	uint8_t buf[40] = { 0 };
	uint32_t idx = index;

	memcpy(buf, &idx, 4);
	memcpy(buf + 4, &flags, 4);
	memcpy(buf + 8, &desc, 8);
	memcpy(buf + 16, &used, 8);
	memcpy(buf + 24, &avail, 8);
	return tfe_call(fe, TFE_SET_VRING_ADDR, buf, sizeof(buf), NULL, 0, NULL, 0, NULL);
}

static int set_vring_fd(struct tfe *fe, uint32_t request, unsigned index, int fd)
{
	uint64_t v = (index & 0xffu) | (fd < 0 ? VRING_NOFD_MASK : 0);
	return tfe_call(fe, request, &v, 8, &fd, fd < 0 ? 0 : 1, NULL, 0, NULL);
}

int tfe_set_vring_kick_fd(struct tfe *fe, unsigned index, int fd)
{
	return set_vring_fd(fe, TFE_SET_VRING_KICK, index, fd);
}

int tfe_set_vring_call_fd(struct tfe *fe, unsigned index, int fd)
{
	return set_vring_fd(fe, TFE_SET_VRING_CALL, index, fd);
}

int tfe_set_vring_err_fd(struct tfe *fe, unsigned index, int fd)
{
	return set_vring_fd(fe, TFE_SET_VRING_ERR, index, fd);
}

int tfe_set_status(struct tfe *fe, uint8_t status)
{
	return set_u64(fe, TFE_SET_STATUS, status);
}

int tfe_get_status(struct tfe *fe, uint8_t *status)
{
	uint64_t v;
	int r = get_u64(fe, TFE_GET_STATUS, &v);
	if (r == 0)
		*status = (uint8_t)v;
	return r;
}

int tfe_get_config(struct tfe *fe, uint32_t offset, void *buf, uint32_t size)
{
	uint8_t msg[12 + 256], rep[12 + 256];
	uint32_t flags = 0, got, rsize;
	int r;

	if (size > 256)
		return -EINVAL;
	memset(msg, 0, sizeof(msg));
	memcpy(msg, &offset, 4);
	memcpy(msg + 4, &size, 4);
	memcpy(msg + 8, &flags, 4);
	r = tfe_call(fe, TFE_GET_CONFIG, msg, 12 + size, NULL, 0, rep, sizeof(rep), &got);
	if (r < 0)
		return r;
	/* The reply repeats the request's shape; size 0 is the back-end's error. */
	if (got != 12 + size)
		return -EPROTO;
	memcpy(&rsize, rep + 4, 4);
	if (rsize != size)
		return -EPROTO;
	if (size)
		memcpy(buf, rep + 12, size);
	return 0;
}

int tfe_set_config(struct tfe *fe, uint32_t offset, const void *buf, uint32_t size, uint32_t flags)
{
	uint8_t msg[12 + 256];

	if (size > 256)
		return -EINVAL;
	memcpy(msg, &offset, 4);
	memcpy(msg + 4, &size, 4);
	memcpy(msg + 8, &flags, 4);
	if (size)
		memcpy(msg + 12, buf, size);
	return tfe_call(fe, TFE_SET_CONFIG, msg, 12 + size, NULL, 0, NULL, 0, NULL);
}

int tfe_get_shmem_config(struct tfe *fe, uint64_t sizes[256], uint32_t *nregions)
{
	uint8_t *rep = malloc(SHMEM_CONFIG_SIZE);
	uint32_t got;
	int r;

	if (!rep)
		return -ENOMEM;
	r = tfe_call(fe, TFE_GET_SHMEM_CONFIG, NULL, 0, NULL, 0, rep, SHMEM_CONFIG_SIZE, &got);
	if (r == 0 && got != SHMEM_CONFIG_SIZE)
		r = -EPROTO;
	if (r == 0) {
		memcpy(nregions, rep, 4);
		memcpy(sizes, rep + 8, 256 * 8);
	}
	free(rep);
	return r;
}

/* ---- queues ------------------------------------------------------------- */

static int lazy_eventfd(int *slot)
{
	if (*slot < 0)
		*slot = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return *slot;
}

int tfe_kick_fd(struct tfe *fe, unsigned index)
{
	return index < TFE_MAX_QUEUES ? lazy_eventfd(&fe->q[index].kick) : -1;
}

int tfe_call_fd(struct tfe *fe, unsigned index)
{
	return index < TFE_MAX_QUEUES ? lazy_eventfd(&fe->q[index].call) : -1;
}

int tfe_kick(struct tfe *fe, unsigned index)
{
	uint64_t one = 1;
	int fd = tfe_kick_fd(fe, index);

	if (fd < 0)
		return -EBADF;
	if (write(fd, &one, 8) != 8)
		return -errno;
	return 0;
}

int tfe_poll_call(struct tfe *fe, unsigned index)
{
	uint64_t v;
	int fd = tfe_call_fd(fe, index);

	if (fd < 0)
		return -EBADF;
	return read(fd, &v, 8) == 8 ? 1 : 0;
}

int tfe_wait_call(struct tfe *fe, unsigned index, int timeout_ms)
{
	uint64_t deadline = deadline_after(timeout_ms < 0 ? fe->timeout_ms : timeout_ms);
	int fd = tfe_call_fd(fe, index);
	int r;

	if (fd < 0)
		return -EBADF;
	for (;;) {
		if (tfe_poll_call(fe, index) == 1)
			return 0;
		r = wait_fd(fd, POLLIN, deadline, fe->pump, fe->pump_data);
		if (r < 0)
			return r;
	}
}

int tfe_start_queue(struct tfe *fe, unsigned index, const struct tfe_vring *vring,
                    enum tfe_order order, bool enable)
{
	int kick = tfe_kick_fd(fe, index), call = tfe_call_fd(fe, index);
	int r;

	if (kick < 0 || call < 0)
		return -EBADF;
	r = tfe_set_vring_num(fe, index, vring->num);
	if (r == 0 && order == TFE_ORDER_QEMU) {
		/* QEMU vhost_virtqueue_start(): base, addresses, then the fds. */
		r = tfe_set_vring_base(fe, index, vring->base);
		if (r == 0)
			r = tfe_set_vring_addr(fe, index, vring->desc_addr, vring->avail_addr,
			                       vring->used_addr, 0);
		if (r == 0)
			r = tfe_set_vring_kick_fd(fe, index, kick);
		if (r == 0)
			r = tfe_set_vring_call_fd(fe, index, call);
	} else if (r == 0) {
		/* crosvm activate_vring(): the call fd goes in before the kick starts the ring. */
		r = tfe_set_vring_addr(fe, index, vring->desc_addr, vring->avail_addr,
		                       vring->used_addr, 0);
		if (r == 0)
			r = tfe_set_vring_base(fe, index, vring->base);
		if (r == 0)
			r = tfe_set_vring_call_fd(fe, index, call);
		if (r == 0)
			r = tfe_set_vring_kick_fd(fe, index, kick);
	}
	if (r == 0 && enable)
		r = tfe_set_vring_enable(fe, index, true);
	return r;
}

int tfe_stop_queue(struct tfe *fe, unsigned index, uint32_t *base)
{
	return tfe_get_vring_base(fe, index, base);
}

/* ---- queues driven by vring-driver ---------------------------------------- */

int tfe_regions_from_mem(const struct testfe_mem *mem, struct tfe_region *out, unsigned max)
{
	unsigned i, n = testfe_mem_num_regions(mem);

	if (n > max)
		return -E2BIG;
	for (i = 0; i < n; i++) {
		struct vshm_mem_region_desc d;
		testfe_mem_region_desc(mem, i, &d);
		out[i].fd = testfe_mem_region_fd(mem, i);
		out[i].guest_addr = d.guest_addr;
		out[i].size = d.size;
		out[i].user_addr = d.user_addr;
		out[i].mmap_offset = d.mmap_offset;
	}
	return (int)n;
}

void tfe_vring_from_driver(const struct testfe_vring *vr, struct tfe_vring *out)
{
	out->num = (uint16_t)testfe_vring_num(vr);
	out->base = testfe_vring_used_idx(vr);
	testfe_vring_uvas(vr, &out->desc_addr, &out->avail_addr, &out->used_addr);
}

int tfe_attach_vring(struct tfe *fe, unsigned index, struct testfe_vring *vr,
                     struct testfe_mem *mem)
{
	struct tfe_queue *q;

	if (index >= TFE_MAX_QUEUES)
		return -EINVAL;
	q = &fe->q[index];
	drop_queue_fds(q);
	q->vr = vr;
	q->mem = mem;
	q->req_cap = q->resp_cap = 0;
	q->pending_head = -1;
	if (vr) {
		q->kick = testfe_vring_kick_fd(vr);
		q->call = testfe_vring_call_fd(vr);
		q->borrowed = true;
	}
	return 0;
}

/* Grow a scratch buffer; @region spreads requests and responses over regions. */
static int scratch(struct tfe_queue *q, uint64_t *gpa, uint64_t *cap, size_t need, unsigned region)
{
	uint64_t len = 4096;
	unsigned n = testfe_mem_num_regions(q->mem);
	int r;

	if (need <= *cap)
		return 0;
	while (len < need)
		len *= 2;
	r = testfe_mem_alloc_in(q->mem, region % n, len, 64, gpa, NULL);
	if (r < 0)
		r = testfe_mem_alloc(q->mem, len, 64, gpa, NULL);
	if (r == 0)
		*cap = len;
	return r;
}

static unsigned add_bufs(struct testfe_buf *b, uint64_t gpa, size_t len, bool write, bool split)
{
	if (len == 0)
		return 0;
	if (split && len >= 2) {
		b[0] = (struct testfe_buf){ gpa, (uint32_t)(len / 2), write };
		b[1] = (struct testfe_buf){ gpa + len / 2, (uint32_t)(len - len / 2), write };
		return 2;
	}
	b[0] = (struct testfe_buf){ gpa, (uint32_t)len, write };
	return 1;
}

static int wait_used(struct tfe *fe, struct tfe_queue *q, void *resp, size_t resp_len,
                     uint32_t *written)
{
	uint64_t deadline = deadline_after(fe->timeout_ms);
	uint16_t head;
	uint32_t len;
	void *cookie;
	int r;

	for (;;) {
		r = testfe_vring_get_used(q->vr, &head, &len, &cookie);
		if (r < 0)
			return r;
		if (r == 1)
			break;
		/* Any signal is consumed; the used ring, not the eventfd, is the truth. */
		if (testfe_vring_consume_call(q->vr))
			continue;
		if (now_ns() >= deadline)
			return -ETIMEDOUT;
		/*
		 * A short slice, not the whole deadline: with EVENT_IDX or
		 * NO_INTERRUPT the device may legitimately complete without
		 * signalling, so the used ring is re-read regularly.
		 */
		if (fe->pump) {
			r = fe->pump(fe->pump_data, 10);
			if (r < 0)
				return r;
		} else {
			struct pollfd pfd = { .fd = q->call, .events = POLLIN };
			if (poll(&pfd, 1, 10) < 0 && errno != EINTR)
				return -errno;
		}
	}
	if (head != q->pending_head)
		return -EPROTO;
	q->pending_head = -1;
	if (written)
		*written = len;
	if (len > resp_len)
		return -EPROTO;
	if (len && resp)
		return testfe_mem_read(q->mem, q->resp_gpa, resp, len);
	return 0;
}

int tfe_submit(struct tfe *fe, unsigned index, const void *req, size_t req_len, void *resp,
               size_t resp_len, unsigned flags, uint32_t *written)
{
	struct testfe_buf bufs[4];
	struct tfe_queue *q;
	bool split = flags & TFE_SUBMIT_SPLIT;
	unsigned n;
	int head, r;

	if (index >= TFE_MAX_QUEUES || !fe->q[index].vr || !fe->q[index].mem)
		return -EINVAL;
	q = &fe->q[index];
	if (q->pending_head >= 0 || (req_len == 0 && resp_len == 0) || req_len > UINT32_MAX ||
	    resp_len > UINT32_MAX)
		return -EINVAL;
	r = scratch(q, &q->req_gpa, &q->req_cap, req_len, testfe_mem_num_regions(q->mem) - 1);
	if (r == 0)
		r = scratch(q, &q->resp_gpa, &q->resp_cap, resp_len, 1);
	if (r < 0)
		return r;
	if (req_len) {
		r = testfe_mem_write(q->mem, q->req_gpa, req, req_len);
		if (r < 0)
			return r;
	}
	n = add_bufs(bufs, q->req_gpa, req_len, false, split);
	n += add_bufs(bufs + n, q->resp_gpa, resp_len, true, split);
	head = testfe_vring_add(q->vr, bufs, n, flags & TFE_SUBMIT_INDIRECT, NULL);
	if (head < 0)
		return head;
	q->pending_head = head;
	r = testfe_vring_kick(q->vr);
	if (r < 0)
		return r;
	if (flags & TFE_SUBMIT_NO_WAIT)
		return 0;
	return wait_used(fe, q, resp, resp_len, written);
}

int tfe_collect(struct tfe *fe, unsigned index, void *resp, size_t resp_len, uint32_t *written)
{
	if (index >= TFE_MAX_QUEUES || !fe->q[index].vr || fe->q[index].pending_head < 0)
		return -EINVAL;
	return wait_used(fe, &fe->q[index], resp, resp_len, written);
}

/* ---- bring-up ------------------------------------------------------------ */

static int negotiate_qemu(struct tfe *fe, const struct tfe_bringup *b,
                          struct tfe_bringup_result *res)
{
	uint64_t pf = 0, again;
	uint8_t cfg[256];
	unsigned i;
	int r;

	r = tfe_get_features(fe, &res->offered_features);
	if (r < 0)
		return r;
	if (res->offered_features & F_PROTOCOL_FEATURES) {
		r = tfe_get_protocol_features(fe, &res->offered_protocol_features);
		if (r < 0)
			return r;
		pf = res->offered_protocol_features & ~b->protocol_clear;
		r = tfe_set_protocol_features(fe, pf);
		if (r < 0)
			return r;
	}
	res->protocol_features = pf;
	if (pf & PF_MQ) {
		r = tfe_get_queue_num(fe, &res->queue_num);
		if (r < 0)
			return r;
	}
	if (pf & PF_CONFIGURE_MEM_SLOTS) {
		r = tfe_get_max_mem_slots(fe, &res->max_mem_slots);
		if (r < 0)
			return r;
	}
	if ((pf & PF_BACKEND_REQ) && b->backend_channel) {
		r = tfe_set_backend_req_fd(fe, NULL);
		if (r < 0)
			return r;
	}
	r = tfe_set_owner(fe);
	if (r < 0)
		return r;
	/* vhost_dev_init() reads the features a second time after SET_OWNER. */
	r = tfe_get_features(fe, &again);
	if (r < 0)
		return r;
	if (again != res->offered_features)
		return -EPROTO;
	/* vhost_virtqueue_init() hands every queue its call fd up front. */
	for (i = 0; i < b->nvrings; i++) {
		r = tfe_set_vring_call_fd(fe, i, tfe_call_fd(fe, i));
		if (r < 0)
			return r;
	}
	if (b->config_size && (pf & PF_CONFIG)) {
		if (b->config_size > sizeof(cfg))
			return -EINVAL;
		r = tfe_get_config(fe, 0, cfg, b->config_size);
		if (r < 0)
			return r;
	}
	return 0;
}

static int negotiate_crosvm(struct tfe *fe, const struct tfe_bringup *b,
                            struct tfe_bringup_result *res)
{
	uint64_t pf = 0;
	int r;

	r = tfe_set_owner(fe);
	if (r == 0)
		r = tfe_get_features(fe, &res->offered_features);
	if (r < 0)
		return r;
	if (res->offered_features & F_PROTOCOL_FEATURES) {
		r = tfe_get_protocol_features(fe, &res->offered_protocol_features);
		if (r < 0)
			return r;
		pf = res->offered_protocol_features & CROSVM_PF_WANTED & ~b->protocol_clear;
		r = tfe_set_protocol_features(fe, pf);
		if (r < 0)
			return r;
	}
	res->protocol_features = pf;
	if ((pf & PF_BACKEND_REQ) && b->backend_channel) {
		r = tfe_set_backend_req_fd(fe, NULL);
		if (r < 0)
			return r;
	}
	if (pf & PF_MQ) {
		r = tfe_get_queue_num(fe, &res->queue_num);
		if (r < 0)
			return r;
	}
	if (pf & PF_SHMEM) {
		unsigned i, n = 0;
		r = tfe_get_shmem_config(fe, res->shmem_sizes, &res->shmem_nregions);
		if (r < 0)
			return r;
		/* crosvm: TooManyShmemRegions unless exactly 0 or 1 region is used. */
		for (i = 0; i < 256; i++)
			n += res->shmem_sizes[i] != 0;
		if (n > 1 || n != res->shmem_nregions)
			return -E2BIG;
	}
	return 0;
}

/* Fill in regions and vrings from @b->mem / @b->vrs, attaching the driver rings. */
static int resolve(struct tfe *fe, const struct tfe_bringup *b, struct tfe_bringup *out,
                   struct tfe_region *regions, struct tfe_vring *vrings)
{
	unsigned i;
	int r;

	if (b->nregions > TFE_MAX_REGIONS || b->nvrings > TFE_MAX_QUEUES)
		return -EINVAL;
	*out = *b;
	if (b->mem) {
		r = tfe_regions_from_mem(b->mem, regions, TFE_MAX_REGIONS);
		if (r < 0)
			return r;
		out->regions = regions;
		out->nregions = (unsigned)r;
	}
	if (b->vrs) {
		for (i = 0; i < b->nvrings; i++) {
			tfe_vring_from_driver(b->vrs[i], &vrings[i]);
			r = tfe_attach_vring(fe, i, b->vrs[i], b->mem);
			if (r < 0)
				return r;
		}
		out->vrings = vrings;
	}
	/* crosvm never sets NEED_REPLY, even with REPLY_ACK negotiated. */
	fe->need_reply = b->order == TFE_ORDER_QEMU && b->need_reply;
	return 0;
}

/* Activation (QEMU: guest DRIVER_OK; crosvm: activate()). */
static int activate(struct tfe *fe, const struct tfe_bringup *b, struct tfe_bringup_result *res)
{
	bool enable;
	unsigned i;
	int r;

	res->features = res->offered_features & ~b->features_clear;
	r = tfe_set_features(fe, res->features);
	if (r < 0)
		return r;
	if (b->add_mem_reg && (res->protocol_features & PF_CONFIGURE_MEM_SLOTS)) {
		for (i = 0; i < b->nregions && r == 0; i++)
			r = tfe_add_mem_reg(fe, &b->regions[i]);
	} else {
		r = tfe_set_mem_table(fe, b->regions, b->nregions);
	}
	if (r < 0)
		return r;
	/* Without bit 30 rings are enabled by SET_FEATURES; ENABLE would be a protocol error. */
	enable = !b->no_enable && (res->features & F_PROTOCOL_FEATURES);
	for (i = 0; i < b->nvrings; i++) {
		r = tfe_start_queue(fe, i, &b->vrings[i], b->order,
		                    enable && b->order == TFE_ORDER_CROSVM);
		if (r < 0)
			return r;
	}
	/* QEMU enables the rings only after all of them are set up. */
	for (i = 0; enable && b->order == TFE_ORDER_QEMU && i < b->nvrings; i++) {
		r = tfe_set_vring_enable(fe, i, true);
		if (r < 0)
			return r;
	}
	if (!b->no_status && (res->protocol_features & PF_STATUS)) {
		r = tfe_set_status(fe, TFE_STATUS_DRIVER_READY);
		if (r < 0)
			return r;
	}
	/*
	 * Without NEED_REPLY nothing above proves the back-end accepted it;
	 * a round trip does (a rejecting back-end closes the socket), and it
	 * leaves an in-thread engine with every message processed.
	 */
	return tfe_sync(fe);
}

int tfe_activate(struct tfe *fe, const struct tfe_bringup *b, struct tfe_bringup_result *res)
{
	struct tfe_region regions[TFE_MAX_REGIONS];
	struct tfe_vring vrings[TFE_MAX_QUEUES];
	struct tfe_bringup bb;
	int r = resolve(fe, b, &bb, regions, vrings);

	return r < 0 ? r : activate(fe, &bb, res);
}

int tfe_bringup(struct tfe *fe, const struct tfe_bringup *b, struct tfe_bringup_result *res)
{
	struct tfe_bringup_result local;
	struct tfe_region regions[TFE_MAX_REGIONS];
	struct tfe_vring vrings[TFE_MAX_QUEUES];
	struct tfe_bringup bb;
	int r;

	if (!res)
		res = &local;
	memset(res, 0, sizeof(*res));
	r = resolve(fe, b, &bb, regions, vrings);
	if (r < 0)
		return r;
	r = bb.order == TFE_ORDER_QEMU ? negotiate_qemu(fe, &bb, res)
	                               : negotiate_crosvm(fe, &bb, res);
	return r < 0 ? r : activate(fe, &bb, res);
}
