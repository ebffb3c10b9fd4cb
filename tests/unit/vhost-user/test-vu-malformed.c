/* SPDX-License-Identifier: MIT */
/*
 * Hostile front-end input: bad headers, wrong sizes, unexpected fds, unknown
 * requests. The engine must close every fd it does not keep (the runner's
 * fd-leak check and explicit counts prove it) and never crash.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/log.h>

#include "test-runner.h"
#include "vhost_user_msg.h"
#include "vu-test.h"

static void quiet(enum vshm_log_level level, const char *msg, void *data)
{
}

static void expect_disconnect(struct fe *fe)
{
	CHECK(fe_peer_closed(fe));
	CHECK(!vshm_vu_dev_is_connected(fe->dev));
	CHECK_EQ(fe->td.disconnects, 1);
	CHECK(fe->td.resets >= 1);
}

TEST(parse_layer_sizes)
{
	uint8_t hdr[12], pl[300];
	uint32_t h[3];
	struct vu_msg m;

	memset(pl, 0, sizeof(pl));
#define PARSE(req, flags, size, nfds)                                                              \
	(h[0] = (req), h[1] = (flags), h[2] = (size), memcpy(hdr, h, 12),                          \
	 vu_msg_parse(hdr, pl, (size), (nfds), &m))
	CHECK_EQ(PARSE(REQ_GET_FEATURES, 1, 0, 0), VU_PARSE_OK);
	CHECK(m.info->has_reply);
	CHECK_EQ(PARSE(REQ_GET_FEATURES, 0, 0, 0), VU_PARSE_BAD_VERSION);
	CHECK_EQ(PARSE(REQ_GET_FEATURES, 2, 0, 0), VU_PARSE_BAD_VERSION);
	CHECK_EQ(PARSE(REQ_GET_FEATURES, 1 | 0x10, 0, 0), VU_PARSE_BAD_FLAGS);
	CHECK_EQ(PARSE(REQ_GET_FEATURES, 1 | 0x80000000u, 0, 0), VU_PARSE_BAD_FLAGS);
	CHECK_EQ(PARSE(REQ_GET_FEATURES, 1 | F_REPLY, 0, 0), VU_PARSE_BAD_FLAGS);
	CHECK_EQ(PARSE(REQ_GET_FEATURES, 1 | F_NEED_REPLY, 0, 0), VU_PARSE_OK);
	CHECK_EQ(PARSE(REQ_GET_FEATURES, 1, 8, 0), VU_PARSE_BAD_SIZE);
	CHECK_EQ(PARSE(REQ_GET_FEATURES, 1, 0, 1), VU_PARSE_BAD_FDS);
	CHECK_EQ(PARSE(REQ_SET_FEATURES, 1, 7, 0), VU_PARSE_BAD_SIZE);
	CHECK_EQ(PARSE(REQ_SET_FEATURES, 1, 9, 0), VU_PARSE_BAD_SIZE);
	CHECK_EQ(PARSE(REQ_SET_VRING_ADDR, 1, 40, 0), VU_PARSE_OK);
	CHECK_EQ(PARSE(REQ_SET_VRING_ADDR, 1, 32, 0), VU_PARSE_BAD_SIZE);
	/* Memory table: 8 + 32 n, n <= 8, one fd per region. */
	pl[0] = 2;
	CHECK_EQ(PARSE(REQ_SET_MEM_TABLE, 1, 72, 2), VU_PARSE_OK);
	CHECK_EQ(PARSE(REQ_SET_MEM_TABLE, 1, 72, 1), VU_PARSE_BAD_FDS);
	CHECK_EQ(PARSE(REQ_SET_MEM_TABLE, 1, 40, 2), VU_PARSE_BAD_SIZE);
	pl[0] = 9;
	CHECK_EQ(PARSE(REQ_SET_MEM_TABLE, 1, 8 + 9 * 32, 8), VU_PARSE_BAD_SIZE);
	CHECK_EQ(PARSE(REQ_SET_MEM_TABLE, 1, 4, 0), VU_PARSE_BAD_SIZE);
	pl[0] = 0;
	/* Config: 12 + size, size <= 256. */
	pl[4] = 16;
	CHECK_EQ(PARSE(REQ_GET_CONFIG, 1, 28, 0), VU_PARSE_OK);
	CHECK_EQ(PARSE(REQ_GET_CONFIG, 1, 27, 0), VU_PARSE_BAD_SIZE);
	pl[4] = 0;
	pl[5] = 1; /* 256 */
	CHECK_EQ(PARSE(REQ_SET_CONFIG, 1, 268, 0), VU_PARSE_OK);
	pl[4] = 1; /* 257 */
	CHECK_EQ(PARSE(REQ_SET_CONFIG, 1, 269, 0), VU_PARSE_BAD_SIZE);
	memset(pl, 0, 8);
	/* Vring fds: one unless bit 8; other high bits are invalid. */
	CHECK_EQ(PARSE(REQ_SET_VRING_KICK, 1, 8, 1), VU_PARSE_OK);
	CHECK_EQ(PARSE(REQ_SET_VRING_KICK, 1, 8, 0), VU_PARSE_BAD_FDS);
	pl[1] = 1;
	CHECK_EQ(PARSE(REQ_SET_VRING_CALL, 1, 8, 0), VU_PARSE_OK);
	CHECK_EQ(PARSE(REQ_SET_VRING_CALL, 1, 8, 1), VU_PARSE_BAD_FDS);
	pl[1] = 2;
	CHECK_EQ(PARSE(REQ_SET_VRING_ERR, 1, 8, 1), VU_PARSE_BAD_VALUE);
	pl[1] = 0;
	CHECK_EQ(PARSE(REQ_REM_MEM_REG, 1, 40, 1), VU_PARSE_OK);
	CHECK_EQ(PARSE(REQ_REM_MEM_REG, 1, 40, 2), VU_PARSE_BAD_FDS);
	CHECK_EQ(PARSE(REQ_ADD_MEM_REG, 1, 40, 0), VU_PARSE_BAD_FDS);
	/* Device and unsupported requests are not size-checked here. */
	CHECK_EQ(PARSE(REQ_GPU_SET_SOCKET, 1, 0, 1), VU_PARSE_OK);
	CHECK_EQ(m.info->kind, VU_KIND_DEVICE);
	CHECK_EQ(PARSE(0xdeadbeef, 1, 5, 0), VU_PARSE_OK);
	CHECK_EQ(m.info->kind, VU_KIND_DEVICE);
	CHECK_EQ(PARSE(REQ_SET_LOG_BASE, 1, 16, 1), VU_PARSE_OK);
	CHECK_EQ(m.info->kind, VU_KIND_UNSUPPORTED);
#undef PARSE
}

TEST(truncated_stream)
{
	struct fe fe;
	uint32_t h[3] = { REQ_SET_FEATURES, F_V1, 8 };
	uint8_t buf[16];

	vshm_log_set_handler(quiet, NULL);
	fe_init(&fe, NULL);
	memcpy(buf, h, 12);
	memset(buf + 12, 0, 4);
	/* Half a payload, then the peer goes away. */
	CHECK_OK(fe_send_raw(&fe, buf, 16, NULL, 0));
	CHECK(fe_no_reply(&fe));
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	shutdown(fe.sock, SHUT_WR);
	expect_disconnect(&fe);
	fe_fini(&fe);
}

TEST(payload_too_short_for_request)
{
	struct fe fe;
	uint32_t v = 1;

	vshm_log_set_handler(quiet, NULL);
	fe_init(&fe, NULL);
	CHECK_OK(fe_send(&fe, REQ_SET_FEATURES, F_V1, &v, 4, NULL, 0));
	expect_disconnect(&fe);
	fe_fini(&fe);
}

TEST(payload_too_long_for_request)
{
	struct fe fe;
	uint8_t pl[48] = { 0 };

	vshm_log_set_handler(quiet, NULL);
	fe_init(&fe, NULL);
	CHECK_OK(fe_send(&fe, REQ_SET_VRING_ADDR, F_V1, pl, sizeof(pl), NULL, 0));
	expect_disconnect(&fe);
	fe_fini(&fe);
}

TEST(oversized_declared_size)
{
	struct fe fe;
	uint32_t h[3] = { REQ_SET_FEATURES, F_V1, 1u << 20 };

	vshm_log_set_handler(quiet, NULL);
	fe_init(&fe, NULL);
	CHECK_OK(fe_send_raw(&fe, h, 12, NULL, 0));
	expect_disconnect(&fe);
	fe_fini(&fe);
}

TEST(bad_version_flags)
{
	static const uint32_t bad[] = { 0, 2, 3 };

	vshm_log_set_handler(quiet, NULL);
	for (unsigned i = 0; i < 3; i++) {
		struct fe fe;

		fe_init(&fe, NULL);
		CHECK_OK(fe_send(&fe, REQ_GET_FEATURES, bad[i], NULL, 0, NULL, 0));
		expect_disconnect(&fe);
		fe_fini(&fe);
	}
}

TEST(reserved_and_reply_flags)
{
	static const uint32_t bad[] = { F_V1 | 0x10, F_V1 | 0x100, F_V1 | F_REPLY };

	vshm_log_set_handler(quiet, NULL);
	for (unsigned i = 0; i < 3; i++) {
		struct fe fe;

		fe_init(&fe, NULL);
		CHECK_OK(fe_send(&fe, REQ_SET_OWNER, bad[i], NULL, 0, NULL, 0));
		expect_disconnect(&fe);
		fe_fini(&fe);
	}
}

TEST(unexpected_fds_are_closed)
{
	struct fe fe;
	struct vshm_vu_stats st;
	int efd[3], before;
	uint64_t v;
	uint32_t idx[2] = { 0, 1 };

	vshm_log_set_handler(quiet, NULL);
	fe_init(&fe, NULL);
	fe_negotiate(&fe, VSHM_VU_PF_REPLY_ACK, ~0ull);
	for (unsigned i = 0; i < 3; i++)
		CHECK((efd[i] = eventfd(0, EFD_CLOEXEC)) >= 0);
	before = vshm_test_count_fds();

	/* SET_OWNER carries no fds: refused, fds closed, connection kept. */
	CHECK(fe_req_ack(&fe, REQ_SET_OWNER, NULL, 0, efd, 3) != 0);
	CHECK_EQ(vshm_test_count_fds(), before);
	/* Poll-mode bit with an fd anyway. */
	v = 0 | (1ull << 8);
	CHECK(fe_req_ack(&fe, REQ_SET_VRING_CALL, &v, 8, efd, 1) != 0);
	/* A vring fd for a queue that does not exist. */
	v = 60;
	CHECK(fe_req_ack(&fe, REQ_SET_VRING_KICK, &v, 8, efd, 1) != 0);
	/* SET_VRING_ENABLE with an fd. */
	CHECK(fe_req_ack(&fe, REQ_SET_VRING_ENABLE, idx, 8, &efd[2], 1) != 0);
	/* SET_BACKEND_REQ_FD without BACKEND_REQ negotiated. */
	CHECK(fe_req_ack(&fe, REQ_SET_BACKEND_REQ_FD, NULL, 0, efd, 1) != 0);
	/* A memory table that names 2 regions but carries 1 fd. */
	{
		uint8_t t[8 + 64] = { 2 };
		CHECK(fe_req_ack(&fe, REQ_SET_MEM_TABLE, t, sizeof(t), efd, 1) != 0);
	}
	CHECK_EQ(vshm_test_count_fds(), before);
	vshm_vu_dev_get_stats(fe.dev, &st);
	CHECK_EQ(st.fds_closed, 3 + 1 + 1 + 1 + 1 + 1);
	CHECK(vshm_vu_dev_is_connected(fe.dev));

	/* A GET_* request with an fd cannot be answered correctly: dropped. */
	CHECK_OK(fe_send(&fe, REQ_GET_FEATURES, F_V1, NULL, 0, efd, 2));
	expect_disconnect(&fe);
	/* Only the engine's own end of the connection went away. */
	CHECK_EQ(vshm_test_count_fds(), before - 1);
	for (unsigned i = 0; i < 3; i++)
		close(efd[i]);
	fe_fini(&fe);
}

TEST(unknown_requests)
{
	struct fe fe;
	struct vshm_vu_stats st;
	int efd;
	uint8_t junk[40] = { 1, 2, 3 };

	vshm_log_set_handler(quiet, NULL);
	fe_init(&fe, NULL);
	fe_negotiate(&fe, VSHM_VU_PF_REPLY_ACK, ~0ull);
	CHECK((efd = eventfd(0, EFD_CLOEXEC)) >= 0);
	CHECK(fe_req_ack(&fe, 1234, junk, sizeof(junk), &efd, 1) != 0);
	CHECK(fe_req_ack(&fe, 0, NULL, 0, NULL, 0) != 0);
	CHECK_EQ(fe.td.devreq_calls, 2);
	CHECK_EQ(fe.td.devreq_last, 0);
	vshm_vu_dev_get_stats(fe.dev, &st);
	CHECK_EQ(st.unknown_requests, 2);
	/* Known but never offered: refused, fd closed, connection kept. */
	CHECK(fe_req_ack(&fe, REQ_SET_LOG_BASE, junk, 16, &efd, 1) != 0);
	CHECK(fe_req_ack(&fe, REQ_GET_INFLIGHT_FD, junk, 24, NULL, 0) != 0);
	CHECK_EQ(fe.td.devreq_calls, 2);
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	close(efd);
	fe_fini(&fe);
}

TEST(request_33_passes_its_fd)
{
	struct fe fe;
	int sv[2];

	fe_init(&fe, NULL);
	fe.td.handle_33 = true;
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	/* Sent before any negotiation, and re-sent: both reach the device. */
	for (int i = 0; i < 2; i++) {
		CHECK_OK(fe_send(&fe, REQ_GPU_SET_SOCKET, F_V1, NULL, 0, &sv[1], 1));
		CHECK(fe_no_reply(&fe));
		CHECK_EQ(fe.td.devreq_calls, i + 1);
		CHECK_EQ(fe.td.devreq_last, 33);
		CHECK_EQ(fe.td.devreq_nfds, 1);
		CHECK(fe.td.devreq_fd_valid);
	}
	close(sv[0]);
	close(sv[1]);
	fe_fini(&fe);
}

TEST(device_without_device_request_closes_fds)
{
	struct vshm_vu_device_ops ops = tdev_ops;
	struct fe fe;
	struct vshm_vu_stats st;
	int efd;

	vshm_log_set_handler(quiet, NULL);
	ops.device_request = NULL;
	fe_init_ops(&fe, NULL, &ops);
	CHECK((efd = eventfd(0, EFD_CLOEXEC)) >= 0);
	CHECK_OK(fe_send(&fe, REQ_GPU_SET_SOCKET, F_V1, NULL, 0, &efd, 1));
	CHECK(fe_no_reply(&fe));
	vshm_vu_dev_get_stats(fe.dev, &st);
	CHECK_EQ(st.unknown_requests, 1);
	CHECK_EQ(st.fds_closed, 1);
	close(efd);
	fe_fini(&fe);
}

static unsigned log_lines;

static void count_log(enum vshm_log_level level, const char *msg, void *data)
{
	log_lines++;
}

TEST(peer_errors_are_rate_limited)
{
	struct fe fe;
	uint32_t bad[2] = { 77, 0 };

	vshm_log_set_handler(count_log, NULL);
	fe_init(&fe, NULL);
	for (int i = 0; i < 500; i++) {
		CHECK_OK(fe_send(&fe, REQ_SET_VRING_NUM, F_V1, bad, 8, NULL, 0));
		if (i % 32 == 0)
			fe_pump(&fe); /* socket buffers hold only so many messages */
	}
	fe_pump(&fe);
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	CHECK(log_lines < 100);
	CHECK(vshm_log_suppressed_total() > 0);
	vshm_log_set_handler(NULL, NULL);
	fe_fini(&fe);
}
