/* SPDX-License-Identifier: MIT */
/*
 * The back-end request channel: requests with and without replies, the
 * reply timeout, and fds refused without BACKEND_SEND_FD. The front-end
 * side of the channel runs in a thread because the engine waits for the
 * reply synchronously.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <vshm/log.h>

#include "test-runner.h"
#include "vu-test.h"

struct peer {
	int fd;
	pthread_t thread;
	/* What to do */
	bool reply;
	uint64_t reply_value;
	bool stale_first; /* send an unrelated reply before the real one */
	/* What was seen */
	int got;
	uint32_t req, flags, size;
	unsigned nfds;
	uint8_t payload[64];
};

static void quiet(enum vshm_log_level level, const char *msg, void *data)
{
}

static void send_reply(int fd, uint32_t req, uint64_t v)
{
	uint32_t h[3] = { req, F_V1 | F_REPLY, 8 };
	uint8_t buf[20];

	memcpy(buf, h, 12);
	memcpy(buf + 12, &v, 8);
	CHECK_EQ(send(fd, buf, sizeof(buf), MSG_NOSIGNAL), sizeof(buf));
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	char cbuf[CMSG_SPACE(sizeof(int) * 8)];
	uint32_t h[3];
	struct iovec iov = { .iov_base = h, .iov_len = 12 };
	struct msghdr mh = { .msg_iov = &iov,
		             .msg_iovlen = 1,
		             .msg_control = cbuf,
		             .msg_controllen = sizeof(cbuf) };
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
	struct cmsghdr *cm;

	if (poll(&pfd, 1, 3000) != 1)
		return NULL;
	if (recvmsg(p->fd, &mh, MSG_CMSG_CLOEXEC) != 12)
		return NULL;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_type == SCM_RIGHTS) {
			int fds[8];
			unsigned n = (unsigned)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));

			memcpy(fds, CMSG_DATA(cm), n * sizeof(int));
			for (unsigned i = 0; i < n; i++)
				close(fds[i]);
			p->nfds += n;
		}
	}
	p->req = h[0];
	p->flags = h[1];
	p->size = h[2];
	if (h[2] && h[2] <= sizeof(p->payload))
		recv(p->fd, p->payload, h[2], MSG_WAITALL);
	p->got++;
	if (p->stale_first)
		send_reply(p->fd, p->req + 100, 7);
	if (p->reply)
		send_reply(p->fd, p->req, p->reply_value);
	return NULL;
}

static void peer_start(struct peer *p)
{
	CHECK_OK(pthread_create(&p->thread, NULL, peer_main, p));
}

static void peer_join(struct peer *p)
{
	CHECK_OK(pthread_join(p->thread, NULL));
}

/* Negotiate @pf and hand the engine a channel; returns our end. */
static int setup(struct fe *fe, uint64_t pf)
{
	int sv[2];

	vshm_log_set_handler(quiet, NULL);
	fe_init(fe, NULL);
	fe_negotiate(fe, pf | VSHM_VU_PF_BACKEND_REQ, ~0ull);
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	CHECK_OK(fe_send(fe, REQ_SET_BACKEND_REQ_FD, F_V1, NULL, 0, &sv[1], 1));
	fe_pump(fe);
	close(sv[1]);
	return sv[0];
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define ALL_PF (VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_BACKEND_SEND_FD | VSHM_VU_PF_CONFIG)

TEST(request_with_reply)
{
	struct fe fe;
	struct peer p = { .reply = true, .reply_value = 0 };
	uint8_t map[40];
	uint64_t reply = 99;
	int mfd;

	p.fd = setup(&fe, ALL_PF);
	memset(map, 0, sizeof(map));
	map[0] = 1;
	CHECK((mfd = memfd_create("blob", MFD_CLOEXEC)) >= 0);
	peer_start(&p);
	CHECK_OK(vshm_vu_dev_backend_request(fe.dev, 9, map, sizeof(map), &mfd, 1, true, &reply));
	peer_join(&p);
	CHECK_EQ(reply, 0);
	CHECK_EQ(p.got, 1);
	CHECK_EQ(p.req, 9);
	CHECK_EQ(p.flags, F_V1 | F_NEED_REPLY);
	CHECK_EQ(p.size, 40);
	CHECK_EQ(p.nfds, 1);
	CHECK_EQ(p.payload[0], 1);
	close(mfd);

	/* A failure value is handed back; an unrelated reply is skipped. */
	{
		int fd = p.fd;

		memset(&p, 0, sizeof(p));
		p.fd = fd;
		p.reply = true;
		p.reply_value = 22;
		p.stale_first = true;
		peer_start(&p);
		CHECK_OK(vshm_vu_dev_backend_request(fe.dev, 10, map, sizeof(map), NULL, 0, true,
		                                     &reply));
		peer_join(&p);
		CHECK_EQ(reply, 22);
	}
	/* Config change: non-zero answer is a failure. */
	p.got = 0;
	p.reply_value = 1;
	p.stale_first = false;
	peer_start(&p);
	CHECK_EQ(vshm_vu_dev_config_changed(fe.dev), -EIO);
	peer_join(&p);
	CHECK_EQ(p.req, 2);
	CHECK_EQ(p.size, 0);
	p.reply_value = 0;
	peer_start(&p);
	CHECK_OK(vshm_vu_dev_config_changed(fe.dev));
	peer_join(&p);
	close(p.fd);
	fe_fini(&fe);
}

TEST(no_wait_without_reply_ack)
{
	struct fe fe;
	struct peer p = { .reply = false };
	uint64_t reply = 5;

	p.fd = setup(&fe, VSHM_VU_PF_CONFIG);
	/* need_reply asked, but REPLY_ACK is not negotiated: fire and forget. */
	CHECK_OK(vshm_vu_dev_backend_request(fe.dev, 10, NULL, 0, NULL, 0, true, &reply));
	CHECK_EQ(reply, 0);
	peer_start(&p);
	peer_join(&p);
	CHECK_EQ(p.got, 1);
	CHECK_EQ(p.flags, F_V1);
	CHECK_OK(vshm_vu_dev_config_changed(fe.dev));
	close(p.fd);
	fe_fini(&fe);
}

TEST(reply_timeout_kills_channel)
{
	struct fe fe;
	struct peer p = { .reply = false };
	uint64_t reply;
	int64_t t0, dt;

	p.fd = setup(&fe, ALL_PF);
	peer_start(&p);
	t0 = now_ms();
	CHECK_EQ(vshm_vu_dev_backend_request(fe.dev, 10, NULL, 0, NULL, 0, true, &reply),
	         -ETIMEDOUT);
	dt = now_ms() - t0;
	peer_join(&p);
	CHECK_EQ(p.got, 1);
	CHECK(dt >= 250 && dt < 3000); /* backend_reply_timeout_ms = 300 */
	/* The channel is gone: later requests fail fast. */
	CHECK_EQ(vshm_vu_dev_backend_request(fe.dev, 10, NULL, 0, NULL, 0, true, &reply),
	         -ENOTCONN);
	{
		char c;
		CHECK_EQ(recv(p.fd, &c, 1, MSG_DONTWAIT), 0);
	}
	/* The front-end connection itself is unaffected. */
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	close(p.fd);
	fe_fini(&fe);
}

TEST(fds_refused_without_backend_send_fd)
{
	struct fe fe;
	uint64_t reply;
	int mfd;
	char c;

	int fd = setup(&fe, VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_CONFIG);

	CHECK((mfd = memfd_create("blob", MFD_CLOEXEC)) >= 0);
	CHECK_EQ(vshm_vu_dev_backend_request(fe.dev, 9, NULL, 0, &mfd, 1, true, &reply), -EPROTO);
	/* Nothing was sent and the channel is still usable. */
	CHECK(recv(fd, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN);
	CHECK_OK(vshm_vu_dev_backend_request(fe.dev, 10, NULL, 0, NULL, 0, false, NULL));
	close(mfd);
	close(fd);
	fe_fini(&fe);
}

TEST(no_channel)
{
	struct fe fe;
	int sv[2];

	vshm_log_set_handler(quiet, NULL);
	fe_init(&fe, NULL);
	CHECK_EQ(vshm_vu_dev_backend_request(fe.dev, 2, NULL, 0, NULL, 0, false, NULL), -ENOTCONN);
	CHECK_EQ(vshm_vu_dev_config_changed(fe.dev), -ENOTSUP);
	/* SET_BACKEND_REQ_FD needs BACKEND_REQ negotiated; replacing closes the old one. */
	fe_negotiate(&fe, VSHM_VU_PF_REPLY_ACK, ~0ull);
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	CHECK(fe_req_ack(&fe, REQ_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1) != 0);
	close(sv[0]);
	close(sv[1]);
	fe_fini(&fe);
}

TEST(channel_replaced)
{
	struct fe fe;
	int a[2], b[2];
	char c;

	vshm_log_set_handler(quiet, NULL);
	fe_init(&fe, NULL);
	fe_negotiate(&fe, VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_BACKEND_REQ, ~0ull);
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a));
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b));
	CHECK_EQ(fe_req_ack(&fe, REQ_SET_BACKEND_REQ_FD, NULL, 0, &a[1], 1), 0);
	CHECK_EQ(fe_req_ack(&fe, REQ_SET_BACKEND_REQ_FD, NULL, 0, &b[1], 1), 0);
	close(a[1]);
	close(b[1]);
	CHECK_EQ(recv(a[0], &c, 1, MSG_DONTWAIT), 0);
	CHECK_OK(vshm_vu_dev_backend_request(fe.dev, 10, NULL, 0, NULL, 0, false, NULL));
	CHECK_EQ(recv(b[0], &c, 1, MSG_DONTWAIT), 1);
	close(a[0]);
	close(b[0]);
	fe_fini(&fe);
}
