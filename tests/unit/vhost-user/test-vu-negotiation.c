/* SPDX-License-Identifier: MIT */
/* Feature and protocol-feature negotiation, QEMU- and crosvm-style sequences. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test-runner.h"
#include "vu-test.h"

#define QEMU_PF                                                                                    \
	(VSHM_VU_PF_MQ | VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_BACKEND_REQ | VSHM_VU_PF_CONFIG |       \
	 VSHM_VU_PF_BACKEND_SEND_FD | VSHM_VU_PF_RESET_DEVICE | VSHM_VU_PF_CONFIGURE_MEM_SLOTS |   \
	 VSHM_VU_PF_STATUS)

static void get_config(struct fe *fe, uint32_t offset, uint32_t size, uint8_t *out)
{
	uint8_t buf[12 + 256];
	uint32_t c[3] = { offset, size, 0 }, req, flags;
	int n;

	memset(buf, 0, sizeof(buf));
	memcpy(buf, c, 12);
	CHECK_OK(fe_send(fe, REQ_GET_CONFIG, F_V1, buf, 12 + size, NULL, 0));
	n = fe_recv(fe, &req, &flags, buf, sizeof(buf));
	CHECK_EQ(n, 12 + size);
	CHECK_EQ(req, REQ_GET_CONFIG);
	memcpy(out, buf + 12, size);
}

TEST(qemu_style_sequence)
{
	struct fe fe;
	uint64_t f, pf, v;
	int bsv[2], gpu[2];
	uint8_t cfgbuf[16];

	fe_init(&fe, NULL);
	fe.td.handle_33 = true;
	/* vhost_user_backend_init */
	CHECK_OK(fe_get_u64(&fe, REQ_GET_FEATURES, &f));
	CHECK(f & VSHM_VIRTIO_F_VERSION_1);
	CHECK(f & VSHM_VU_F_PROTOCOL_FEATURES);
	CHECK_EQ(f & 0xffffff, 0x3);
	CHECK_OK(fe_get_u64(&fe, REQ_GET_PROTOCOL_FEATURES, &pf));
	pf &= QEMU_PF;
	CHECK_OK(fe_send(&fe, REQ_SET_PROTOCOL_FEATURES, F_V1, &pf, 8, NULL, 0));
	CHECK_OK(fe_get_u64(&fe, REQ_GET_QUEUE_NUM, &v));
	CHECK_EQ(v, T_MAX_QUEUES);
	CHECK_OK(fe_get_u64(&fe, REQ_GET_MAX_MEM_SLOTS, &v));
	CHECK_EQ(v, 32);
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bsv));
	CHECK_EQ(fe_req_ack(&fe, REQ_SET_BACKEND_REQ_FD, NULL, 0, &bsv[1], 1), 0);
	close(bsv[1]);
	CHECK_EQ(fe_req_ack(&fe, REQ_SET_OWNER, NULL, 0, NULL, 0), 0);
	CHECK_OK(fe_get_u64(&fe, REQ_GET_FEATURES, &f));
	get_config(&fe, 0, 16, cfgbuf);
	for (unsigned i = 0; i < 16; i++)
		CHECK_EQ(cfgbuf[i], i);

	/* vhost_user_gpu_set_status(DRIVER_OK): the display socket first. */
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, gpu));
	CHECK_OK(fe_send(&fe, REQ_GPU_SET_SOCKET, F_V1, NULL, 0, &gpu[1], 1));
	CHECK(fe_no_reply(&fe));
	CHECK_EQ(fe.td.devreq_calls, 1);
	CHECK_EQ(fe.td.devreq_last, 33);
	CHECK(fe.td.devreq_fd_valid);
	close(gpu[0]);
	close(gpu[1]);

	/* QEMU forwards the guest's transport bits too (ring reset, 40). */
	f = (f & ~(1ull << 1)) | (1ull << 40);
	CHECK_EQ(fe_set_u64_ack(&fe, REQ_SET_FEATURES, f), 0);
	CHECK_EQ(fe.td.last_features, f);
	fe_set_mem(&fe);
	for (unsigned i = 0; i < 2; i++) {
		uint32_t en[2] = { i, 1 };

		fe_setup_ring(&fe, i, 64);
		CHECK_EQ(fe.td.started[i], 1);
		CHECK_EQ(fe.td.kicks[i], 0); /* not enabled yet (bit 30) */
		CHECK_EQ(fe_req_ack(&fe, REQ_SET_VRING_ENABLE, en, 8, NULL, 0), 0);
	}
	CHECK_EQ(fe_set_u64_ack(&fe, REQ_SET_STATUS, 0xf), 0);
	CHECK_EQ(fe.td.status, 0xf);
	CHECK_OK(fe_get_u64(&fe, REQ_GET_STATUS, &v));
	CHECK_EQ(v, 0xf);

	/* A buffer posted and kicked is processed through guest memory. */
	fe_post_buffer(&fe, 0, 0, 64);
	fe_kick(&fe, 0);
	CHECK(fe.td.kicks[0] >= 1);
	CHECK_EQ(fe_used_idx(&fe, 0), 1);

	/* Stop: GET_VRING_BASE returns the next avail index and stops the ring. */
	for (unsigned i = 0; i < 2; i++) {
		uint32_t st[2] = { i, 0 }, req, flags;
		uint32_t out[2];

		CHECK_OK(fe_send(&fe, REQ_GET_VRING_BASE, F_V1, st, 8, NULL, 0));
		CHECK_EQ(fe_recv(&fe, &req, &flags, out, sizeof(out)), 8);
		CHECK_EQ(out[0], i);
		CHECK_EQ(out[1], i == 0 ? 1 : 0);
		CHECK_EQ(fe.td.stopped[i], 1);
	}
	CHECK_EQ(fe.td.order_errors, 0);
	close(bsv[0]);
	fe_fini(&fe);
}

TEST(crosvm_style_sequence)
{
	struct fe fe;
	uint64_t f, pf, v;
	int bsv[2];
	struct {
		uint32_t nregions, pad;
		uint64_t sizes[256];
	} __attribute__((packed)) shm;
	uint32_t req, flags;

	fe_init(&fe, NULL);
	CHECK_OK(fe_send(&fe, REQ_SET_OWNER, F_V1, NULL, 0, NULL, 0));
	CHECK_OK(fe_get_u64(&fe, REQ_GET_FEATURES, &f));
	CHECK_OK(fe_get_u64(&fe, REQ_GET_PROTOCOL_FEATURES, &pf));
	CHECK(pf & VSHM_VU_PF_SHMEM);
	pf &= VSHM_VU_PF_CONFIG | VSHM_VU_PF_MQ | VSHM_VU_PF_BACKEND_REQ | VSHM_VU_PF_SHMEM |
	      VSHM_VU_PF_REPLY_ACK;
	CHECK_OK(fe_send(&fe, REQ_SET_PROTOCOL_FEATURES, F_V1, &pf, 8, NULL, 0));
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bsv));
	CHECK_OK(fe_send(&fe, REQ_SET_BACKEND_REQ_FD, F_V1, NULL, 0, &bsv[1], 1));
	close(bsv[1]);
	CHECK_OK(fe_get_u64(&fe, REQ_GET_QUEUE_NUM, &v));
	CHECK_EQ(v, T_MAX_QUEUES);

	CHECK_OK(fe_send(&fe, REQ_GET_SHMEM_CONFIG, F_V1, NULL, 0, NULL, 0));
	CHECK_EQ(fe_recv(&fe, &req, &flags, &shm, sizeof(shm)), 2056);
	CHECK_EQ(req, REQ_GET_SHMEM_CONFIG);
	CHECK_EQ(shm.nregions, 1);
	CHECK_EQ(shm.sizes[1], 1ull << 33);
	CHECK_EQ(shm.sizes[0], 0);

	/* crosvm never sets NEED_REPLY; nothing may come back. */
	CHECK_OK(fe_send(&fe, REQ_SET_FEATURES, F_V1, &f, 8, NULL, 0));
	CHECK(fe_no_reply(&fe));
	CHECK_EQ(vshm_vu_dev_features(fe.dev), f);
	fe_set_mem(&fe);
	for (unsigned i = 0; i < 2; i++) {
		uint32_t en[2] = { i, 1 };

		fe_setup_ring(&fe, i, 16);
		CHECK_OK(fe_send(&fe, REQ_SET_VRING_ENABLE, F_V1, en, 8, NULL, 0));
	}
	CHECK(fe_no_reply(&fe));
	fe_post_buffer(&fe, 1, 3, 32);
	fe_kick(&fe, 1);
	CHECK_EQ(fe_used_idx(&fe, 1), 1);
	CHECK_EQ(fe.td.devreq_calls, 0);
	CHECK_EQ(fe.td.order_errors, 0);
	close(bsv[0]);
	fe_fini(&fe);
}

TEST(protocol_features_before_set_features)
{
	struct fe fe;
	uint64_t pf;

	fe_init(&fe, NULL);
	CHECK_OK(fe_get_u64(&fe, REQ_GET_PROTOCOL_FEATURES, &pf));
	pf &= VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_CONFIG;
	CHECK_OK(fe_send(&fe, REQ_SET_PROTOCOL_FEATURES, F_V1, &pf, 8, NULL, 0));
	fe_pump(&fe);
	CHECK_EQ(vshm_vu_dev_protocol_features(fe.dev), pf);
	/* REPLY_ACK is live at once, before any SET_FEATURES. */
	CHECK_EQ(fe_req_ack(&fe, REQ_SET_OWNER, NULL, 0, NULL, 0), 0);
	CHECK_EQ(vshm_vu_dev_features(fe.dev), 0);
	fe_fini(&fe);
}

TEST(never_offered_protocol_bits)
{
	struct fe fe;
	uint64_t pf, bad;
	struct vshm_vu_config cfg;

	vshm_vu_config_defaults(&cfg);
	cfg.num_queues = T_MAX_QUEUES;
	/* Even an embedder asking for everything never gets 17, 20, 21, 31. */
	cfg.protocol_features = ~0ull;
	fe_init(&fe, &cfg);
	CHECK_OK(fe_get_u64(&fe, REQ_GET_PROTOCOL_FEATURES, &pf));
	CHECK_EQ(pf & (1ull << 17), 0);
	CHECK_EQ(pf & (1ull << 20), 0);
	CHECK_EQ(pf & (1ull << 21), 0);
	CHECK_EQ(pf & (1ull << 31), 0);
	CHECK_EQ(pf, VSHM_VU_PF_SUPPORTED | VSHM_VU_PF_SHMEM);

	/* Acking a bit never offered (GPA_ADDRESSES) is refused. */
	CHECK_OK(fe_send(&fe, REQ_SET_PROTOCOL_FEATURES, F_V1, &(uint64_t){ VSHM_VU_PF_REPLY_ACK },
	                 8, NULL, 0));
	bad = VSHM_VU_PF_REPLY_ACK | (1ull << 21);
	CHECK(fe_set_u64_ack(&fe, REQ_SET_PROTOCOL_FEATURES, bad) != 0);
	CHECK_EQ(vshm_vu_dev_protocol_features(fe.dev), VSHM_VU_PF_REPLY_ACK);
	bad = VSHM_VU_PF_REPLY_ACK | (1ull << 17);
	CHECK(fe_set_u64_ack(&fe, REQ_SET_PROTOCOL_FEATURES, bad) != 0);
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	fe_fini(&fe);
}

TEST(shmem_offered_only_with_regions)
{
	struct vshm_vu_device_ops ops = tdev_ops;
	struct fe fe;
	uint64_t pf;

	ops.get_shmem_config = NULL;
	fe_init_ops(&fe, NULL, &ops);
	CHECK_OK(fe_get_u64(&fe, REQ_GET_PROTOCOL_FEATURES, &pf));
	CHECK_EQ(pf & VSHM_VU_PF_SHMEM, 0);
	/* Not negotiated: GET_SHMEM_CONFIG has no answer, the peer is dropped. */
	CHECK_OK(fe_send(&fe, REQ_GET_SHMEM_CONFIG, F_V1, NULL, 0, NULL, 0));
	CHECK(fe_peer_closed(&fe));
	fe_fini(&fe);
}

TEST(transport_bits_tolerated_device_bits_checked)
{
	struct fe fe;
	uint64_t f;

	fe_init(&fe, NULL);
	fe_negotiate(&fe, VSHM_VU_PF_REPLY_ACK, ~0ull);
	/* Transport bits the engine never offered: accepted and ignored. */
	f = VSHM_VIRTIO_F_VERSION_1 | VSHM_VU_F_PROTOCOL_FEATURES | (1ull << 27) | (1ull << 33) |
	    (1ull << 40) | (1ull << 42) | 0x1;
	CHECK_EQ(fe_set_u64_ack(&fe, REQ_SET_FEATURES, f), 0);
	CHECK_EQ(vshm_vu_dev_features(fe.dev), f);
	/* A device bit that was not offered is refused; state is unchanged. */
	CHECK(fe_set_u64_ack(&fe, REQ_SET_FEATURES, f | (1ull << 5)) != 0);
	CHECK(fe_set_u64_ack(&fe, REQ_SET_FEATURES, f | (1ull << 23)) != 0);
	CHECK_EQ(vshm_vu_dev_features(fe.dev), f);
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	fe_fini(&fe);
}

TEST(reply_ack_only_when_negotiated)
{
	struct fe fe;
	uint32_t bad[2] = { 99, 1 };

	fe_init(&fe, NULL);
	/* NEED_REPLY without REPLY_ACK negotiated: no ack. */
	CHECK_OK(fe_send(&fe, REQ_SET_OWNER, F_V1 | F_NEED_REPLY, NULL, 0, NULL, 0));
	CHECK(fe_no_reply(&fe));
	fe_negotiate(&fe, VSHM_VU_PF_REPLY_ACK, ~0ull);
	/* Success and failure acks. */
	CHECK_EQ(fe_req_ack(&fe, REQ_SET_OWNER, NULL, 0, NULL, 0), 0);
	CHECK(fe_req_ack(&fe, REQ_SET_VRING_ENABLE, bad, 8, NULL, 0) != 0);
	/* Without NEED_REPLY a failure is silent. */
	CHECK_OK(fe_send(&fe, REQ_SET_VRING_ENABLE, F_V1, bad, 8, NULL, 0));
	CHECK(fe_no_reply(&fe));
	/* A request with a reply body gets exactly that, never an extra ack. */
	{
		uint64_t v;
		uint32_t req, flags;

		CHECK_OK(fe_send(&fe, REQ_GET_QUEUE_NUM, F_V1 | F_NEED_REPLY, NULL, 0, NULL, 0));
		CHECK_EQ(fe_recv(&fe, &req, &flags, &v, 8), 8);
		CHECK_EQ(v, T_MAX_QUEUES);
		CHECK(fe_no_reply(&fe));
	}
	fe_fini(&fe);
}

TEST(status_roundtrip)
{
	struct fe fe;
	uint64_t v;

	fe_init(&fe, NULL);
	fe_negotiate(&fe, VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_STATUS, ~0ull);
	CHECK_EQ(fe_set_u64_ack(&fe, REQ_SET_STATUS, 0x7), 0);
	CHECK_OK(fe_get_u64(&fe, REQ_GET_STATUS, &v));
	CHECK_EQ(v, 7);
	CHECK(fe_set_u64_ack(&fe, REQ_SET_STATUS, 0x100) != 0);
	CHECK_EQ(fe.td.status_calls, 1);
	fe_fini(&fe);
}
