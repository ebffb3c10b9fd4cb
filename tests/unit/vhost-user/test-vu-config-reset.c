/* SPDX-License-Identifier: MIT */
/* Config space bounds, RESET_DEVICE/RESET_OWNER, disconnect and reconnect. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/log.h>
#include <vshm/virtqueue.h>

#include "test-runner.h"
#include "vu-test.h"

static void quiet(enum vshm_log_level level, const char *msg, void *data)
{
}

/* GET_CONFIG; returns the reply payload size (0 = the spec's failure). */
static int get_config(struct fe *fe, uint32_t offset, uint32_t size, uint8_t *out)
{
	uint8_t buf[12 + 256];
	uint32_t c[3] = { offset, size, 0 }, req, flags;
	int n;

	memset(buf, 0xee, sizeof(buf));
	memcpy(buf, c, 12);
	CHECK_OK(fe_send(fe, REQ_GET_CONFIG, F_V1 | F_NEED_REPLY, buf, 12 + size, NULL, 0));
	n = fe_recv(fe, &req, &flags, buf, sizeof(buf));
	CHECK_EQ(req, REQ_GET_CONFIG);
	CHECK_EQ(flags, F_V1 | F_REPLY);
	if (n > 0) {
		CHECK_EQ(n, 12 + size);
		CHECK_MEM_EQ(buf, c, 8);
		memcpy(out, buf + 12, size);
	}
	CHECK(fe_no_reply(fe)); /* never an extra ack */
	return n;
}

static int64_t set_config(struct fe *fe, uint32_t offset, uint32_t size, uint32_t flags,
                          uint8_t fill)
{
	uint8_t buf[12 + 256];
	uint32_t c[3] = { offset, size, flags };

	memcpy(buf, c, 12);
	memset(buf + 12, fill, size);
	return fe_req_ack(fe, REQ_SET_CONFIG, buf, 12 + size, NULL, 0);
}

TEST(config_bounds)
{
	struct fe fe;
	uint8_t out[256];

	vshm_log_set_handler(quiet, NULL);
	fe_init(&fe, NULL);
	fe_negotiate(&fe, VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_CONFIG, ~0ull);
	CHECK_EQ(get_config(&fe, 0, T_CONFIG_SIZE, out), 12 + T_CONFIG_SIZE);
	for (unsigned i = 0; i < T_CONFIG_SIZE; i++)
		CHECK_EQ(out[i], i);
	CHECK_EQ(get_config(&fe, 60, 4, out), 16);
	CHECK_EQ(out[0], 60);
	/* Failures answer with an empty payload. */
	CHECK_EQ(get_config(&fe, 0, 0, out), 0);
	CHECK_EQ(get_config(&fe, 61, 4, out), 0);
	CHECK_EQ(get_config(&fe, 0, T_CONFIG_SIZE + 1, out), 0);
	CHECK_EQ(get_config(&fe, 0xfffffff0u, 32, out), 0);

	CHECK_EQ(set_config(&fe, 8, 4, 0, 0xaa), 0);
	CHECK_EQ(fe.td.config[8], 0xaa);
	CHECK_EQ(fe.td.config[11], 0xaa);
	CHECK_EQ(fe.td.config[12], 12);
	CHECK_EQ(set_config(&fe, 0, 1, 1, 0x55), 0);
	CHECK_EQ(fe.td.last_config_flags, 1);
	CHECK(set_config(&fe, 0, 0, 0, 0) != 0);
	CHECK(set_config(&fe, 62, 4, 0, 0) != 0);
	CHECK(set_config(&fe, 0xffffffffu, 2, 0, 0) != 0);
	CHECK(set_config(&fe, 0, 256, 0, 0) != 0);
	CHECK_EQ(fe.td.order_errors, 0);
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	fe_fini(&fe);
}

TEST(config_size_over_256_is_fatal)
{
	struct fe fe;
	uint8_t buf[12 + 300] = { 0 };
	uint32_t c[3] = { 0, 300, 0 };

	vshm_log_set_handler(quiet, NULL);
	fe_init(&fe, NULL);
	memcpy(buf, c, 12);
	CHECK_OK(fe_send(&fe, REQ_GET_CONFIG, F_V1, buf, sizeof(buf), NULL, 0));
	CHECK(fe_peer_closed(&fe));
	fe_fini(&fe);
}

TEST(config_without_device_support)
{
	struct vshm_vu_device_ops ops = tdev_ops;
	struct fe fe;
	uint8_t out[16];

	vshm_log_set_handler(quiet, NULL);
	ops.get_config = NULL;
	ops.set_config = NULL;
	fe_init_ops(&fe, NULL, &ops);
	fe_negotiate(&fe, VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_CONFIG, ~0ull);
	CHECK_EQ(get_config(&fe, 0, 4, out), 0);
	CHECK(set_config(&fe, 0, 4, 0, 1) != 0);
	fe_fini(&fe);
}

static void reset_common(uint32_t reset_req)
{
	struct fe fe;
	uint64_t pf = VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_RESET_DEVICE;

	vshm_log_set_handler(quiet, NULL);
	fe_init(&fe, NULL);
	fe_negotiate(&fe, pf, ~0ull);
	fe_set_mem(&fe);
	fe_setup_ring(&fe, 0, 16);
	fe_setup_ring(&fe, 1, 16);
	CHECK_EQ(fe_set_u64_ack(&fe, REQ_SET_STATUS, 0xf), 0);
	CHECK_EQ(fe.td.started[0], 1);
	CHECK_EQ(fe_req_ack(&fe, reset_req, NULL, 0, NULL, 0), 0);
	CHECK_EQ(fe.td.stopped[0], 1);
	CHECK_EQ(fe.td.stopped[1], 1);
	CHECK_EQ(fe.td.resets, 1);
	CHECK_EQ(vshm_vu_dev_features(fe.dev), 0);
	CHECK_EQ(vshm_vq_size(vshm_vu_dev_get_queue(fe.dev, 0)), 0);
	CHECK(!vshm_vq_is_ready(vshm_vu_dev_get_queue(fe.dev, 0)));
	{
		uint64_t v;
		CHECK_OK(fe_get_u64(&fe, REQ_GET_STATUS, &v));
		CHECK_EQ(v, 0);
	}
	/* The connection-level state survives: protocol features, memory. */
	CHECK_EQ(vshm_vu_dev_protocol_features(fe.dev), pf);
	CHECK_EQ(vshm_mem_num_regions(vshm_vu_dev_get_mem(fe.dev)), 1);
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	CHECK_EQ(fe.td.disconnects, 0);
	/* And the device can be brought up again. */
	{
		uint64_t f;
		uint32_t en[2] = { 0, 1 };

		CHECK_OK(fe_get_u64(&fe, REQ_GET_FEATURES, &f));
		CHECK_EQ(fe_set_u64_ack(&fe, REQ_SET_FEATURES, f), 0);
		fe_setup_ring(&fe, 0, 16);
		CHECK_EQ(fe_req_ack(&fe, REQ_SET_VRING_ENABLE, en, 8, NULL, 0), 0);
		fe_post_buffer(&fe, 0, 0, 4);
		fe_kick(&fe, 0);
		CHECK_EQ(fe_used_idx(&fe, 0), 1);
	}
	CHECK_EQ(fe.td.order_errors, 0);
	fe_fini(&fe);
}

TEST(reset_device)
{
	reset_common(REQ_RESET_DEVICE);
}

TEST(reset_owner)
{
	reset_common(REQ_RESET_OWNER);
}

TEST(disconnect_and_reconnect)
{
	struct fe fe;
	struct vshm_vu_stats st;
	int sv[2];

	vshm_log_set_handler(quiet, NULL);
	fe_init(&fe, NULL);
	fe_negotiate(&fe, VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_BACKEND_REQ, ~0ull);
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	CHECK_EQ(fe_req_ack(&fe, REQ_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1), 0);
	close(sv[1]);
	fe_set_mem(&fe);
	fe_setup_ring(&fe, 0, 16);
	CHECK_EQ(fe.td.started[0], 1);

	/* Peer goes away: rings stop, the engine resets, the device hears it. */
	fe_reconnect(&fe);
	CHECK_EQ(fe.td.stopped[0], 1);
	CHECK_EQ(fe.td.disconnects, 1);
	CHECK(fe.td.resets >= 1);
	CHECK_EQ(vshm_mem_num_regions(vshm_vu_dev_get_mem(fe.dev)), 0);
	CHECK_EQ(vshm_vu_dev_protocol_features(fe.dev), 0);
	CHECK_EQ(vshm_vu_dev_features(fe.dev), 0);
	/* The back-end channel was closed with it. */
	{
		char c;
		CHECK_EQ(recv(sv[0], &c, 1, MSG_DONTWAIT), 0);
	}
	close(sv[0]);
	CHECK_EQ(vshm_vu_dev_backend_request(fe.dev, 2, NULL, 0, NULL, 0, false, NULL), -ENOTCONN);

	/* Second front-end: a full bring-up works on the same device. */
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	fe_negotiate(&fe, VSHM_VU_PF_REPLY_ACK, ~0ull);
	fe_set_mem(&fe);
	fe_setup_ring(&fe, 0, 16);
	CHECK_EQ(fe.td.started[0], 2);
	{
		uint32_t en[2] = { 0, 1 };
		CHECK_EQ(fe_req_ack(&fe, REQ_SET_VRING_ENABLE, en, 8, NULL, 0), 0);
	}
	fe_post_buffer(&fe, 0, 0, 4);
	fe_kick(&fe, 0);
	CHECK_EQ(fe_used_idx(&fe, 0), 1);

	/* A second concurrent connection is refused and its fd closed. */
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	CHECK_EQ(vshm_vu_dev_connect(fe.dev, sv[1]), -EBUSY);
	CHECK(fcntl(sv[1], F_GETFD) < 0);
	close(sv[0]);

	/* The embedder may drop the connection too. */
	vshm_vu_dev_disconnect(fe.dev);
	CHECK(!vshm_vu_dev_is_connected(fe.dev));
	CHECK_EQ(fe.td.disconnects, 2);
	CHECK_EQ(fe.td.stopped[0], 2);
	CHECK(fe_peer_closed(&fe));
	vshm_vu_dev_get_stats(fe.dev, &st);
	CHECK_EQ(st.disconnects, 2);
	CHECK_EQ(fe.td.order_errors, 0);
	fe_fini(&fe);
}

static struct vshm_vu_dev *self_dev;

static int dropping_request(void *data, uint32_t request, uint32_t flags, const void *payload,
                            uint32_t size, int *fds, unsigned nfds)
{
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	/* Called from inside the engine's message handling. */
	vshm_vu_dev_disconnect(self_dev);
	return 0;
}

TEST(disconnect_from_inside_a_callback)
{
	struct vshm_vu_device_ops ops = tdev_ops;
	struct fe fe;

	ops.device_request = dropping_request;
	fe_init_ops(&fe, NULL, &ops);
	self_dev = fe.dev;
	CHECK_OK(fe_send(&fe, 4242, F_V1, NULL, 0, NULL, 0));
	/* A request queued behind it must not be handled. */
	CHECK_OK(fe_send(&fe, REQ_SET_OWNER, F_V1, NULL, 0, NULL, 0));
	CHECK(fe_peer_closed(&fe));
	CHECK_EQ(fe.td.disconnects, 1);
	fe_fini(&fe);
}
