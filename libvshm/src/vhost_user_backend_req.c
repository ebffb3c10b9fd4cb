/* SPDX-License-Identifier: MIT */
/*
 * vhost_user_backend_req.c - the back-end -> front-end request channel.
 *
 * The front-end hands over one end of a socketpair with SET_BACKEND_REQ_FD.
 * Requests on it are rare (config change, shared memory map/unmap) and the
 * device usually needs the answer before it can complete a guest command,
 * so the channel is synchronous: send, then wait a bounded time for the
 * reply. A front-end that does not answer in time is treated as gone: the
 * channel is dropped so that later requests fail fast instead of each
 * stalling the device for the full timeout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vshm/conn.h>
#include <vshm/log.h>
#include <vshm/loop.h>
#include <vshm/vhost_user.h>

#include "util.h"
#include "vhost_user_msg.h"

struct vu_backend {
	struct vshm_conn *conn;
};

static struct vshm_ratelimit backend_rl = VSHM_RATELIMIT_INIT(5000, 10);

int vu_backend_new(int fd, struct vu_backend **out)
{
	struct vshm_conn_config cc = {
		.header_size = VU_HDR_SIZE,
		.size_offset = VU_HDR_SIZE_OFFSET,
		.max_payload = VU_MAX_PAYLOAD,
		.max_fds = VU_MAX_FDS,
		.max_queued = 64u * 1024u,
	};
	struct vu_backend *b = calloc(1, sizeof(*b));
	int r;

	if (!b) {
		vshm_close_fd(fd);
		return -ENOMEM;
	}
	r = vshm_conn_new(fd, &cc, &b->conn);
	if (r < 0) {
		free(b);
		return r;
	}
	*out = b;
	return 0;
}

void vu_backend_destroy(struct vu_backend *b)
{
	if (!b)
		return;
	vshm_conn_destroy(b->conn);
	free(b);
}

static int64_t now_ms(void)
{
	return (int64_t)(vshm_now_ns() / 1000000);
}

/*
 * Throw away anything the front-end sent unasked (some front-ends answer
 * requests that did not ask for a reply), so a stale answer is never taken
 * for the reply to the next request. Returns 0 or a fatal -errno.
 */
static int drain_stale(struct vu_backend *b)
{
	struct vshm_conn_msg msg;
	int r;

	for (;;) {
		r = vshm_conn_recv(b->conn, &msg);
		if (r == -EAGAIN)
			return 0;
		if (r < 0)
			return r;
		vshm_conn_msg_close_fds(&msg);
	}
}

static int wait_reply(struct vu_backend *b, uint32_t request, int timeout_ms, uint64_t *reply)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct vshm_conn_msg msg;
	uint32_t req, flags;
	int r;

	for (;;) {
		int64_t left = deadline - now_ms();

		if (left < 0)
			left = 0;
		r = vshm_conn_recv_timeout(b->conn, &msg, (int)left);
		if (r < 0)
			return r;
		req = vu_load_u32(msg.hdr);
		flags = vu_load_u32(msg.hdr + 4);
		vshm_conn_msg_close_fds(&msg); /* replies never carry fds we want */
		if (req != request || !(flags & VU_FLAG_REPLY) ||
		    (flags & VU_FLAG_VERSION_MASK) != VU_FLAG_VERSION) {
			vshm_log_ratelimited(&backend_rl, VSHM_LOG_WARN,
			                     "vhost-user backend channel: ignoring message %u "
			                     "flags %#x while waiting for %u",
			                     req, flags, request);
			if (left == 0)
				return -ETIMEDOUT;
			continue;
		}
		if (msg.payload_size != sizeof(uint64_t))
			return -EPROTO;
		*reply = vu_load_u64(msg.payload);
		return 0;
	}
}

int vu_backend_send(struct vu_backend *b, uint64_t pf, int timeout_ms, uint32_t request,
                    const void *payload, uint32_t size, const int *fds, unsigned nfds,
                    unsigned mode, uint64_t *reply, bool *dead)
{
	bool need_reply = (mode & VU_SEND_NEED_REPLY) && (pf & VSHM_VU_PF_REPLY_ACK);
	bool wait = need_reply || (mode & VU_SEND_WAIT);
	struct vu_hdr hdr = {
		.request = request,
		.flags = VU_FLAG_VERSION | (need_reply ? VU_FLAG_NEED_REPLY : 0),
		.size = size,
	};
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = size },
	};
	uint64_t value = 0;
	int r;

	*dead = false;
	/* The spec allows fds on this channel only with BACKEND_SEND_FD. */
	if (nfds > 0 && !(pf & VSHM_VU_PF_BACKEND_SEND_FD) && !(mode & VU_SEND_OWN_FD))
		return -EPROTO;
	if (nfds > VU_MAX_FDS || (size > 0 && !payload) || size > VU_MAX_PAYLOAD)
		return -EINVAL;

	r = drain_stale(b);
	if (r == 0)
		r = vshm_conn_send(b->conn, iov, size ? 2 : 1, fds, nfds);
	if (r == 0)
		r = vshm_conn_flush_timeout(b->conn, timeout_ms);
	if (r == 0 && wait)
		r = wait_reply(b, request, timeout_ms, &value);
	if (r < 0) {
		/* Every failure after the send leaves the stream out of step. */
		if (r != -EINVAL)
			*dead = true;
		vshm_log_ratelimited(&backend_rl, VSHM_LOG_WARN,
		                     "vhost-user backend request %u failed: %s", request,
		                     strerror(-r));
		return r;
	}
	if (reply)
		*reply = value;
	return 0;
}

int vu_dev_backend_send(struct vshm_vu_dev *dev, uint32_t request, const void *payload,
                        uint32_t size, const int *fds, unsigned nfds, unsigned mode,
                        uint64_t *reply)
{
	struct vu_backend **slot = vu_dev_backend_slot(dev);
	bool dead = false;
	int r;

	if (!*slot)
		return -ENOTCONN;
	r = vu_backend_send(*slot, vu_dev_pf(dev), vu_dev_backend_timeout_ms(dev), request, payload,
	                    size, fds, nfds, mode, reply, &dead);
	if (dead) {
		vu_backend_destroy(*slot);
		*slot = NULL;
	}
	return r;
}

VSHM_EXPORT int vshm_vu_dev_backend_request(struct vshm_vu_dev *dev, uint32_t request,
                                            const void *payload, uint32_t size, const int *fds,
                                            unsigned nfds, bool need_reply, uint64_t *reply)
{
	if (!dev)
		return -EINVAL;
	return vu_dev_backend_send(dev, request, payload, size, fds, nfds,
	                           need_reply ? VU_SEND_NEED_REPLY : 0, reply);
}

VSHM_EXPORT int vshm_vu_dev_config_changed(struct vshm_vu_dev *dev)
{
	uint64_t reply = 0;
	int r;

	if (!dev)
		return -EINVAL;
	if (!(vu_dev_pf(dev) & VSHM_VU_PF_CONFIG))
		return -ENOTSUP;
	r = vshm_vu_dev_backend_request(dev, VU_BACKEND_CONFIG_CHANGE_MSG, NULL, 0, NULL, 0, true,
	                                &reply);
	if (r < 0)
		return r;
	return reply == 0 ? 0 : -EIO;
}
