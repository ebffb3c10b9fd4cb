/* SPDX-License-Identifier: MIT */
/*
 * test-frontend-echo.c - the vhost-user engine end to end, through the
 * test front-end, with a trivial "echo" device: every request's readable
 * bytes are copied into its writable buffers.
 *
 * The engine and the front-end share one thread and one vshm_event_loop:
 * the front-end's waits pump the loop (tfe_set_pump), so there is no
 * timing-based synchronisation anywhere. Only the back-end channel peer
 * runs in a thread, because the engine blocks for its replies.
 */
#include "test-runner.h"

#include "backend-peer.h"
#include "frontend.h"
#include "guest-mem.h"
#include "vring-driver.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vshm/conn.h>
#include <vshm/event_loop.h>
#include <vshm/vhost_user.h>
#include <vshm/virtqueue.h>

#define NUM_QUEUES  2
#define RING_SIZE   256
#define CONFIG_SIZE 16
#define MAX_MSG     4096

struct echo {
	unsigned kicks, resets, disconnects, set_configs;
	uint8_t status;
	uint8_t config[CONFIG_SIZE];
};

static uint64_t echo_get_features(void *data)
{
	return 0;
}

static int echo_get_config(void *data, uint32_t offset, void *buf, uint32_t size)
{
	struct echo *e = data;
	memcpy(buf, e->config + offset, size);
	return 0;
}

static int echo_set_config(void *data, uint32_t offset, const void *buf, uint32_t size,
                           uint32_t flags)
{
	struct echo *e = data;
	memcpy(e->config + offset, buf, size);
	e->set_configs++;
	return 0;
}

static void echo_queue_kick(void *data, struct vshm_vq *vq)
{
	struct echo *e = data;
	struct vshm_vq_elem *el;
	uint8_t buf[2 * MAX_MSG];

	e->kicks++;
	while (vshm_vq_pop(vq, &el) == 0) {
		size_t n = el->out_bytes < el->in_bytes ? el->out_bytes : el->in_bytes;
		if (n > sizeof(buf))
			n = sizeof(buf);
		n = vshm_iov_to_buf(el->out_sg, el->out_num, 0, buf, n);
		n = vshm_iov_from_buf(el->in_sg, el->in_num, 0, buf, n);
		vshm_vq_push(vq, el, (uint32_t)n);
	}
	vshm_vq_notify(vq);
}

static void echo_reset(void *data)
{
	struct echo *e = data;
	e->resets++;
}

static void echo_set_status(void *data, uint8_t status)
{
	struct echo *e = data;
	e->status = status;
}

static void echo_disconnected(void *data)
{
	struct echo *e = data;
	e->disconnects++;
}

/* A 2 MiB host-visible window as shared memory region 1, as virtio-gpu has. */
static int echo_get_shmem_config(void *data, uint64_t sizes[256])
{
	sizes[1] = 2u << 20;
	return 0;
}

static const struct vshm_vu_device_ops echo_ops = {
	.get_features = echo_get_features,
	.get_config = echo_get_config,
	.set_config = echo_set_config,
	.queue_kick = echo_queue_kick,
	.reset = echo_reset,
	.set_status = echo_set_status,
	.disconnected = echo_disconnected,
};

static const struct vshm_vu_device_ops echo_shmem_ops = {
	.get_features = echo_get_features,
	.get_config = echo_get_config,
	.set_config = echo_set_config,
	.queue_kick = echo_queue_kick,
	.reset = echo_reset,
	.set_status = echo_set_status,
	.disconnected = echo_disconnected,
	.get_shmem_config = echo_get_shmem_config,
};

struct fx {
	struct vshm_event_loop *loop;
	struct vshm_loop iface;
	struct vshm_vu_dev *dev;
	struct echo echo;
	struct testfe_mem *mem;
	struct testfe_vring *vr[NUM_QUEUES];
	struct tfe *fe;
};

static int pump(void *data, int timeout_ms)
{
	int r = vshm_event_loop_dispatch(data, timeout_ms);
	return r < 0 ? r : 0;
}

static void fx_connect(struct fx *f)
{
	int bfd;
	CHECK_OK(tfe_new_pair(&f->fe, &bfd));
	CHECK_OK(vshm_vu_dev_connect(f->dev, bfd));
	tfe_set_pump(f->fe, pump, f->loop);
}

/* Three 1 MiB regions with holes between them, two rings. */
static void fx_init_ops(struct fx *f, bool event_idx, bool indirect,
                        const struct vshm_vu_device_ops *ops)
{
	struct testfe_mem_config mc = { .nregions = 3, .base_gpa = 0x100000, .gap = 0x10000 };
	struct testfe_vring_config vc = {
		.num = RING_SIZE, .event_idx = event_idx, .indirect = indirect, .region = -1
	};
	struct vshm_vu_config cfg;
	unsigned i;

	memset(f, 0, sizeof(*f));
	for (i = 0; i < CONFIG_SIZE; i++)
		f->echo.config[i] = (uint8_t)(0xa0 + i);
	CHECK_OK(vshm_event_loop_new(&f->loop));
	f->iface = vshm_event_loop_iface(f->loop);
	vshm_vu_config_defaults(&cfg);
	cfg.num_queues = NUM_QUEUES;
	cfg.config_size = CONFIG_SIZE;
	cfg.backend_reply_timeout_ms = 300;
	CHECK_OK(vshm_vu_dev_new(&cfg, ops, &f->echo, &f->iface, &f->dev));
	CHECK_OK(testfe_mem_new(&mc, &f->mem));
	for (i = 0; i < NUM_QUEUES; i++) {
		/* Spread the rings: queue i lives in region i. */
		vc.region = (int)i;
		CHECK_OK(testfe_vring_new(f->mem, &vc, &f->vr[i]));
	}
	fx_connect(f);
}

static void fx_init(struct fx *f, bool event_idx, bool indirect)
{
	fx_init_ops(f, event_idx, indirect, &echo_ops);
}

static void fx_fini(struct fx *f)
{
	unsigned i;
	tfe_destroy(f->fe);
	vshm_vu_dev_destroy(f->dev);
	for (i = 0; i < NUM_QUEUES; i++)
		testfe_vring_destroy(f->vr[i]);
	testfe_mem_destroy(f->mem);
	vshm_event_loop_destroy(f->loop);
}

/* Close the front-end and run the engine until it noticed. */
static void fx_drop(struct fx *f)
{
	unsigned i;

	tfe_destroy(f->fe);
	f->fe = NULL;
	for (i = 0; i < 200 && vshm_vu_dev_is_connected(f->dev); i++)
		CHECK(vshm_event_loop_dispatch(f->loop, 10) >= 0);
	CHECK(!vshm_vu_dev_is_connected(f->dev));
}

static struct tfe_bringup fx_plan(struct fx *f, enum tfe_order order)
{
	struct tfe_bringup b = {
		.order = order,
		.need_reply = order == TFE_ORDER_QEMU,
		.backend_channel = true,
		.config_size = CONFIG_SIZE,
		.mem = f->mem,
		.vrs = f->vr,
		.nvrings = NUM_QUEUES,
	};
	return b;
}

/* @count echo round trips on @q with sizes and contents derived from @seed. */
static void roundtrips(struct fx *f, unsigned q, unsigned count, unsigned flags, unsigned seed)
{
	static uint8_t req[MAX_MSG], resp[MAX_MSG + 64];
	unsigned i, k;

	for (i = 0; i < count; i++) {
		size_t len = 1 + ((i * 37u + seed) % MAX_MSG);
		uint32_t written = 0;

		for (k = 0; k < len; k++)
			req[k] = (uint8_t)(k * 7u + i + seed);
		memset(resp, 0xee, sizeof(resp));
		CHECK_OK(tfe_submit(f->fe, q, req, len, resp, len + 64, flags, &written));
		CHECK_EQ(written, len);
		CHECK_MEM_EQ(resp, req, len);
		/* Nothing past the echoed bytes was touched. */
		CHECK_EQ(resp[len], 0xee);
	}
}

static void check_clean(struct fx *f)
{
	struct vshm_vu_stats st;
	vshm_vu_dev_get_stats(f->dev, &st);
	CHECK_EQ(st.errors, 0);
	CHECK_EQ(st.unknown_requests, 0);
	CHECK(!vshm_vq_is_broken(vshm_vu_dev_get_queue(f->dev, 0)));
}

TEST(qemu_order_1000_roundtrips)
{
	struct fx f;
	struct tfe_bringup b;
	struct tfe_bringup_result res;

	fx_init(&f, false, false);
	b = fx_plan(&f, TFE_ORDER_QEMU);
	CHECK_OK(tfe_bringup(f.fe, &b, &res));
	CHECK(res.offered_features & VSHM_VIRTIO_F_VERSION_1);
	CHECK(res.protocol_features & VSHM_VU_PF_REPLY_ACK);
	CHECK_EQ(res.queue_num, NUM_QUEUES);
	CHECK(res.max_mem_slots >= 3);
	CHECK_EQ(vshm_vu_dev_features(f.dev), res.features);
	CHECK_EQ(vshm_vu_dev_protocol_features(f.dev), res.protocol_features);
	CHECK_EQ(vshm_mem_num_regions(vshm_vu_dev_get_mem(f.dev)), 3);
	CHECK_EQ(f.echo.status, TFE_STATUS_DRIVER_READY);
	CHECK(tfe_get_backend_peer(f.fe) != NULL);

	roundtrips(&f, 0, 1000, 0, 1);
	roundtrips(&f, 1, 50, TFE_SUBMIT_SPLIT, 2);
	check_clean(&f);
	fx_fini(&f);
}

TEST(crosvm_order_add_mem_reg)
{
	struct fx f;
	struct tfe_bringup b;
	struct tfe_bringup_result res;

	fx_init(&f, false, false);
	b = fx_plan(&f, TFE_ORDER_CROSVM);
	b.add_mem_reg = true;
	CHECK_OK(tfe_bringup(f.fe, &b, &res));
	/* crosvm never sets NEED_REPLY, yet everything must have been applied. */
	CHECK_EQ(vshm_mem_num_regions(vshm_vu_dev_get_mem(f.dev)), 3);
	CHECK(vshm_vq_is_ready(vshm_vu_dev_get_queue(f.dev, 0)));
	CHECK(vshm_vq_is_ready(vshm_vu_dev_get_queue(f.dev, 1)));
	roundtrips(&f, 0, 300, TFE_SUBMIT_SPLIT, 3);
	roundtrips(&f, 1, 300, 0, 4);
	check_clean(&f);
	fx_fini(&f);
}

TEST(indirect_descriptors)
{
	struct fx f;
	struct tfe_bringup b;
	struct tfe_bringup_result res;

	fx_init(&f, false, true);
	b = fx_plan(&f, TFE_ORDER_QEMU);
	CHECK_OK(tfe_bringup(f.fe, &b, &res));
	CHECK(res.features & VSHM_VIRTIO_F_INDIRECT_DESC);
	roundtrips(&f, 0, 300, TFE_SUBMIT_INDIRECT, 5);
	roundtrips(&f, 0, 300, TFE_SUBMIT_INDIRECT | TFE_SUBMIT_SPLIT, 6);
	check_clean(&f);
	fx_fini(&f);
}

/* Pump until the device published @want used entries on @vr, or fail. */
static void pump_until_used(struct fx *f, struct testfe_vring *vr, uint16_t want)
{
	unsigned i;
	for (i = 0; i < 200 && testfe_vring_used_idx(vr) != want; i++)
		CHECK(vshm_event_loop_dispatch(f->loop, 10) >= 0);
	CHECK_EQ(testfe_vring_used_idx(vr), want);
}

TEST(event_idx_suppression)
{
	static const uint8_t req[8] = "echo-ei";
	uint8_t resp[8];
	uint32_t written;
	struct fx f;
	struct tfe_bringup b;
	struct tfe_bringup_result res;
	uint16_t used;

	fx_init(&f, true, false);
	b = fx_plan(&f, TFE_ORDER_CROSVM);
	CHECK_OK(tfe_bringup(f.fe, &b, &res));
	CHECK(res.features & VSHM_VIRTIO_F_EVENT_IDX);
	roundtrips(&f, 0, 500, 0, 7);
	/* The device asks for a kick at the next avail index it will read. */
	CHECK_EQ(testfe_vring_avail_event(f.vr[0]), testfe_vring_avail_idx(f.vr[0]));

	/* used_event far behind: the device completes without signalling. */
	used = testfe_vring_used_idx(f.vr[0]);
	testfe_vring_set_used_event(f.vr[0], (uint16_t)(used - 100));
	(void)testfe_vring_consume_call(f.vr[0]);
	CHECK_OK(tfe_submit(f.fe, 0, req, sizeof(req), resp, sizeof(resp), TFE_SUBMIT_NO_WAIT,
	                    NULL));
	pump_until_used(&f, f.vr[0], (uint16_t)(used + 1));
	CHECK_EQ(testfe_vring_consume_call(f.vr[0]), 0);
	CHECK_OK(tfe_collect(f.fe, 0, resp, sizeof(resp), &written));
	CHECK_EQ(written, sizeof(req));
	CHECK_MEM_EQ(resp, req, sizeof(req));

	/* used_event at the next entry: exactly that completion signals. */
	testfe_vring_set_used_event(f.vr[0], (uint16_t)(used + 1));
	CHECK_OK(tfe_submit(f.fe, 0, req, sizeof(req), resp, sizeof(resp), TFE_SUBMIT_NO_WAIT,
	                    NULL));
	CHECK_OK(tfe_wait_call(f.fe, 0, -1));
	CHECK_OK(tfe_collect(f.fe, 0, resp, sizeof(resp), &written));
	CHECK_MEM_EQ(resp, req, sizeof(req));
	check_clean(&f);
	fx_fini(&f);
}

TEST(no_event_idx_no_interrupt)
{
	static const uint8_t req[4] = "abc";
	uint8_t resp[4];
	struct fx f;
	struct tfe_bringup b;
	struct tfe_bringup_result res;
	uint16_t used;

	fx_init(&f, false, false);
	b = fx_plan(&f, TFE_ORDER_QEMU);
	b.features_clear = VSHM_VIRTIO_F_EVENT_IDX;
	CHECK_OK(tfe_bringup(f.fe, &b, &res));
	CHECK(!(res.features & VSHM_VIRTIO_F_EVENT_IDX));
	roundtrips(&f, 0, 100, 0, 8);
	used = testfe_vring_used_idx(f.vr[0]);
	testfe_vring_set_no_interrupt(f.vr[0], true);
	(void)testfe_vring_consume_call(f.vr[0]);
	CHECK_OK(tfe_submit(f.fe, 0, req, sizeof(req), resp, sizeof(resp), TFE_SUBMIT_NO_WAIT,
	                    NULL));
	pump_until_used(&f, f.vr[0], (uint16_t)(used + 1));
	CHECK_EQ(testfe_vring_consume_call(f.vr[0]), 0);
	CHECK_OK(tfe_collect(f.fe, 0, resp, sizeof(resp), NULL));
	testfe_vring_set_no_interrupt(f.vr[0], false);
	roundtrips(&f, 0, 10, 0, 9);
	fx_fini(&f);
}

TEST(stop_and_restart_at_base)
{
	static const uint8_t req[6] = "later";
	uint8_t resp[6];
	uint32_t base, written;
	struct tfe_vring vring;
	struct fx f;
	struct tfe_bringup b;
	unsigned i;

	fx_init(&f, true, false);
	b = fx_plan(&f, TFE_ORDER_QEMU);
	CHECK_OK(tfe_bringup(f.fe, &b, NULL));
	roundtrips(&f, 0, 37, 0, 10);
	CHECK_OK(tfe_stop_queue(f.fe, 0, &base));
	CHECK_EQ(base, 37);
	CHECK(!vshm_vq_is_ready(vshm_vu_dev_get_queue(f.dev, 0)));

	/* A request made while stopped stays in the ring, unprocessed. */
	CHECK_OK(tfe_submit(f.fe, 0, req, sizeof(req), resp, sizeof(resp), TFE_SUBMIT_NO_WAIT,
	                    NULL));
	testfe_vring_kick_force(f.vr[0]);
	for (i = 0; i < 5; i++)
		CHECK(vshm_event_loop_dispatch(f.loop, 0) >= 0);
	CHECK_EQ(testfe_vring_used_idx(f.vr[0]), 37);

	/* Restart where the back-end stopped: the pending request completes. */
	tfe_vring_from_driver(f.vr[0], &vring);
	vring.base = (uint16_t)base;
	CHECK_OK(tfe_start_queue(f.fe, 0, &vring, TFE_ORDER_QEMU, true));
	testfe_vring_kick_force(f.vr[0]);
	CHECK_OK(tfe_collect(f.fe, 0, resp, sizeof(resp), &written));
	CHECK_EQ(written, sizeof(req));
	CHECK_MEM_EQ(resp, req, sizeof(req));
	roundtrips(&f, 0, 20, 0, 11);
	CHECK_OK(tfe_stop_queue(f.fe, 0, &base));
	CHECK_EQ(base, 58);
	check_clean(&f);
	fx_fini(&f);
}

TEST(disconnect_and_reconnect)
{
	struct fx f;
	struct tfe_bringup b;

	fx_init(&f, false, false);
	b = fx_plan(&f, TFE_ORDER_QEMU);
	CHECK_OK(tfe_bringup(f.fe, &b, NULL));
	roundtrips(&f, 0, 25, 0, 12);

	/* The VMM goes away: the engine must notice, reset and accept a new one. */
	fx_drop(&f);
	CHECK_EQ(f.echo.disconnects, 1);

	/* The new VMM resumes the same rings from their used index (crosvm order this time). */
	fx_connect(&f);
	b = fx_plan(&f, TFE_ORDER_CROSVM);
	CHECK_OK(tfe_bringup(f.fe, &b, NULL));
	roundtrips(&f, 0, 25, 0, 13);
	roundtrips(&f, 1, 5, 0, 14);
	fx_fini(&f);
}

TEST(config_space)
{
	uint8_t buf[CONFIG_SIZE], w[4] = { 1, 2, 3, 4 };
	struct fx f;
	struct tfe_bringup b;
	unsigned i;

	fx_init(&f, false, false);
	b = fx_plan(&f, TFE_ORDER_QEMU);
	CHECK_OK(tfe_bringup(f.fe, &b, NULL));
	CHECK_OK(tfe_get_config(f.fe, 0, buf, CONFIG_SIZE));
	for (i = 0; i < CONFIG_SIZE; i++)
		CHECK_EQ(buf[i], 0xa0 + i);
	CHECK_OK(tfe_get_config(f.fe, 4, buf, 8));
	CHECK_EQ(buf[0], 0xa4);
	CHECK_OK(tfe_set_config(f.fe, 8, w, sizeof(w), 0));
	CHECK_EQ(f.echo.set_configs, 1);
	CHECK_OK(tfe_get_config(f.fe, 8, buf, 4));
	CHECK_MEM_EQ(buf, w, 4);
	/* Past the end: the back-end refuses (size 0 reply), the connection survives. */
	CHECK(tfe_get_config(f.fe, CONFIG_SIZE - 2, buf, 4) < 0);
	CHECK_OK(tfe_sync(f.fe));
	fx_fini(&f);
}

TEST(backend_channel_config_change)
{
	struct tfe_peer_record rec;
	struct tfe_peer *peer;
	uint64_t reply = 99;
	struct fx f;
	struct tfe_bringup b;

	fx_init(&f, false, false);
	b = fx_plan(&f, TFE_ORDER_QEMU);
	CHECK_OK(tfe_bringup(f.fe, &b, NULL));
	peer = tfe_get_backend_peer(f.fe);
	CHECK(peer != NULL);

	/* Acked round trip: the engine waits for the peer's answer. */
	CHECK_OK(vshm_vu_dev_backend_request(f.dev, TFE_BACKEND_CONFIG_CHANGE_MSG, NULL, 0, NULL, 0,
	                                     true, &reply));
	CHECK_EQ(reply, 0);
	CHECK_OK(tfe_peer_get(peer, 0, &rec));
	CHECK_EQ(rec.request, TFE_BACKEND_CONFIG_CHANGE_MSG);
	CHECK(rec.flags & TFE_FLAG_NEED_REPLY);
	CHECK(rec.replied);

	/* The helper the devices use. */
	CHECK_OK(vshm_vu_dev_config_changed(f.dev));
	CHECK_OK(tfe_peer_wait_count(peer, 2, 2000));
	CHECK_EQ(tfe_peer_count_request(peer, TFE_BACKEND_CONFIG_CHANGE_MSG), 2);

	/* A failure status comes back as the reply value. */
	tfe_peer_set_reply(peer, TFE_BACKEND_CONFIG_CHANGE_MSG, TFE_PEER_REPLY_ERROR, 5, 0);
	CHECK_OK(vshm_vu_dev_backend_request(f.dev, TFE_BACKEND_CONFIG_CHANGE_MSG, NULL, 0, NULL, 0,
	                                     true, &reply));
	CHECK_EQ(reply, 5);

	/* A front-end that never answers: bounded by the engine's timeout. */
	tfe_peer_set_reply(peer, TFE_BACKEND_CONFIG_CHANGE_MSG, TFE_PEER_REPLY_NONE, 0, 0);
	CHECK_EQ(vshm_vu_dev_backend_request(f.dev, TFE_BACKEND_CONFIG_CHANGE_MSG, NULL, 0, NULL, 0,
	                                     true, &reply),
	         -ETIMEDOUT);
	CHECK_OK(tfe_peer_wait_count(peer, 4, 2000));

	/* The queues are unaffected by the channel's troubles. */
	roundtrips(&f, 0, 10, 0, 15);
	fx_fini(&f);
}

TEST(reset_device_and_reactivate)
{
	struct fx f;
	struct tfe_bringup b;
	struct tfe_bringup_result res;
	unsigned resets;

	fx_init(&f, true, true);
	b = fx_plan(&f, TFE_ORDER_QEMU);
	CHECK_OK(tfe_bringup(f.fe, &b, &res));
	CHECK(res.protocol_features & VSHM_VU_PF_RESET_DEVICE);
	roundtrips(&f, 0, 40, 0, 19);
	resets = f.echo.resets;
	CHECK_OK(tfe_reset_device(f.fe));
	CHECK_OK(tfe_sync(f.fe));
	CHECK(f.echo.resets > resets);
	CHECK(!vshm_vq_is_ready(vshm_vu_dev_get_queue(f.dev, 0)));

	/* The guest driver binds again: features, memory and rings, no renegotiation. */
	CHECK_OK(tfe_activate(f.fe, &b, &res));
	roundtrips(&f, 0, 40, TFE_SUBMIT_INDIRECT, 20);
	check_clean(&f);
	fx_fini(&f);
}

TEST(backend_channel_shmem_map)
{
	struct tfe_shmem_mmap map = {
		.shmid = 1, .fd_offset = 0, .shm_offset = 0x10000, .len = 0x4000, .flags = 1
	};
	struct tfe_peer_record rec;
	struct tfe_bringup_result res;
	struct tfe_bringup b;
	struct tfe_peer *peer;
	uint64_t reply = 99;
	uint64_t sizes[256];
	uint32_t nregions;
	struct fx f;
	char got[5] = { 0 };
	int memfd;

	fx_init_ops(&f, false, false, &echo_shmem_ops);
	b = fx_plan(&f, TFE_ORDER_CROSVM);
	CHECK_OK(tfe_bringup(f.fe, &b, &res));
	/* crosvm's bring-up read the regions (and accepts only one). */
	CHECK(res.protocol_features & VSHM_VU_PF_SHMEM);
	CHECK_EQ(res.shmem_nregions, 1);
	CHECK_EQ(res.shmem_sizes[1], 2u << 20);
	CHECK_OK(tfe_get_shmem_config(f.fe, sizes, &nregions));
	CHECK_EQ(sizes[1], 2u << 20);
	fx_fini(&f);

	/* QEMU acks BACKEND_SEND_FD, which SHMEM_MAP's fd needs. */
	fx_init_ops(&f, false, false, &echo_shmem_ops);
	b = fx_plan(&f, TFE_ORDER_QEMU);
	CHECK_OK(tfe_bringup(f.fe, &b, &res));
	CHECK(res.protocol_features & VSHM_VU_PF_BACKEND_SEND_FD);
	peer = tfe_get_backend_peer(f.fe);
	memfd = memfd_create("shmem-blob", MFD_CLOEXEC);
	CHECK(memfd >= 0);
	CHECK_EQ(pwrite(memfd, "blob", 4, 0), 4);
	CHECK_OK(vshm_vu_dev_backend_request(f.dev, TFE_BACKEND_SHMEM_MAP, &map, sizeof(map),
	                                     &memfd, 1, true, &reply));
	CHECK_EQ(reply, 0);
	close(memfd);
	CHECK_OK(tfe_peer_get(peer, 0, &rec));
	CHECK_EQ(rec.request, TFE_BACKEND_SHMEM_MAP);
	CHECK_EQ(rec.size, sizeof(map));
	CHECK_MEM_EQ(rec.payload, &map, sizeof(map));
	CHECK_EQ(rec.nfds, 1);
	/* The fd the peer holds is the same file. */
	CHECK_EQ(pread(rec.fd, got, 4, 0), 4);
	CHECK_MEM_EQ(got, "blob", 4);

	/* A late (but in-time) reply is still matched to its request. */
	tfe_peer_set_reply(peer, TFE_BACKEND_SHMEM_UNMAP, TFE_PEER_REPLY_DELAY, 0, 20);
	map.fd_offset = 0;
	CHECK_OK(vshm_vu_dev_backend_request(f.dev, TFE_BACKEND_SHMEM_UNMAP, &map, sizeof(map),
	                                     NULL, 0, true, &reply));
	CHECK_EQ(reply, 0);
	CHECK_OK(tfe_peer_get(peer, 1, &rec));
	CHECK_EQ(rec.request, TFE_BACKEND_SHMEM_UNMAP);
	CHECK_EQ(rec.fd, -1);
	roundtrips(&f, 0, 10, 0, 21);
	fx_fini(&f);
}

/* A request whose buffers live at explicit guest addresses (of @req_mem / @resp_mem). */
static void echo_at(struct fx *f, struct testfe_mem *req_mem, uint64_t req_gpa,
                    struct testfe_mem *resp_mem, uint64_t resp_gpa, uint8_t fill)
{
	uint8_t req[64], resp[64];
	struct testfe_buf bufs[2] = { { req_gpa, sizeof(req), false },
		                      { resp_gpa, sizeof(resp), true } };
	uint16_t head;
	uint32_t len;
	void *cookie;
	int head_added;
	unsigned i;

	memset(req, fill, sizeof(req));
	CHECK_OK(testfe_mem_write(req_mem, req_gpa, req, sizeof(req)));
	head_added = testfe_vring_add(f->vr[0], bufs, 2, false, NULL);
	CHECK(head_added >= 0);
	CHECK(testfe_vring_kick(f->vr[0]) >= 0);
	for (i = 0; i < 200 && testfe_vring_get_used(f->vr[0], &head, &len, &cookie) != 1; i++)
		CHECK(vshm_event_loop_dispatch(f->loop, 10) >= 0);
	CHECK(i < 200);
	CHECK_EQ(head, head_added);
	CHECK_EQ(len, sizeof(req));
	CHECK_OK(testfe_mem_read(resp_mem, resp_gpa, resp, sizeof(resp)));
	CHECK_MEM_EQ(resp, req, sizeof(req));
}

TEST(mem_table_change_while_running)
{
	struct testfe_mem_config mc = { .nregions = 1, .base_gpa = 0x10000000 };
	struct testfe_mem *extra;
	struct tfe_region regs[TFE_MAX_REGIONS];
	struct fx f;
	struct tfe_bringup b;
	struct tfe_bringup_result res;
	uint64_t a_req, a_resp, x_req, x_resp;
	int n;

	fx_init(&f, false, false);
	CHECK_OK(testfe_mem_new(&mc, &extra));
	b = fx_plan(&f, TFE_ORDER_QEMU);
	b.add_mem_reg = true;
	CHECK_OK(tfe_bringup(f.fe, &b, &res));
	CHECK(res.protocol_features & VSHM_VU_PF_CONFIGURE_MEM_SLOTS);
	roundtrips(&f, 0, 20, 0, 16);
	CHECK_OK(testfe_mem_alloc(f.mem, 64, 64, &a_req, NULL));
	CHECK_OK(testfe_mem_alloc(f.mem, 64, 64, &a_resp, NULL));
	CHECK_OK(testfe_mem_alloc(extra, 64, 64, &x_req, NULL));
	CHECK_OK(testfe_mem_alloc(extra, 64, 64, &x_resp, NULL));

	/* Hot-add a region while the ring runs, and use it at once. */
	n = tfe_regions_from_mem(extra, regs, TFE_MAX_REGIONS);
	CHECK_EQ(n, 1);
	CHECK_OK(tfe_add_mem_reg(f.fe, &regs[0]));
	CHECK_EQ(vshm_mem_num_regions(vshm_vu_dev_get_mem(f.dev)), 4);
	echo_at(&f, extra, x_req, extra, x_resp, 0x11);
	echo_at(&f, f.mem, a_req, extra, x_resp, 0x22);

	/* Remove it again; the rings (in the other regions) keep working. */
	CHECK_OK(tfe_rem_mem_reg(f.fe, &regs[0]));
	CHECK_EQ(vshm_mem_num_regions(vshm_vu_dev_get_mem(f.dev)), 3);
	echo_at(&f, f.mem, a_req, f.mem, a_resp, 0x33);
	roundtrips(&f, 0, 20, 0, 17);

	/* A whole new table (SET_MEM_TABLE) while running: old regions plus the extra one. */
	n = tfe_regions_from_mem(f.mem, regs, TFE_MAX_REGIONS);
	CHECK_EQ(n, 3);
	CHECK_EQ(tfe_regions_from_mem(extra, regs + 3, TFE_MAX_REGIONS - 3), 1);
	CHECK_OK(tfe_set_mem_table(f.fe, regs, 4));
	CHECK_EQ(vshm_mem_num_regions(vshm_vu_dev_get_mem(f.dev)), 4);
	echo_at(&f, extra, x_req, f.mem, a_resp, 0x44);
	roundtrips(&f, 0, 20, 0, 18);
	check_clean(&f);
	fx_fini(&f);
	testfe_mem_destroy(extra);
}

TEST(malformed_header_disconnects)
{
	/* GET_FEATURES claiming a 256 MiB payload: framing error, the engine hangs up. */
	uint32_t hdr[3] = { TFE_GET_FEATURES, TFE_FLAG_VERSION, 256u << 20 };
	struct fx f;

	fx_init(&f, false, false);
	CHECK_OK(tfe_sync(f.fe));
	CHECK_OK(tfe_send_raw(f.fe, hdr, sizeof(hdr), NULL, 0));
	CHECK_OK(tfe_wait_hangup(f.fe, 2000));
	CHECK(!vshm_vu_dev_is_connected(f.dev));
	fx_fini(&f);
}

TEST(raw_message_with_too_many_fds)
{
	int fds[TFE_MAX_FDS + 1];
	uint64_t v = 0; /* SET_VRING_CALL for queue 0 */
	struct tfe_msg msg;
	struct fx f;
	unsigned i;
	int r;

	fx_init(&f, false, false);
	for (i = 0; i < TFE_MAX_FDS + 1; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC);
		CHECK(fds[i] >= 0);
	}
	CHECK_OK(tfe_send_msg(f.fe, TFE_SET_VRING_CALL, TFE_FLAG_VERSION | TFE_FLAG_NEED_REPLY, &v,
	                      sizeof(v), fds, TFE_MAX_FDS + 1));
	for (i = 0; i < TFE_MAX_FDS + 1; i++)
		close(fds[i]);
	/* Refused either way: a failure ack or a hang-up. The runner's fd-leak check
	 * proves the engine closed every fd it received. */
	r = tfe_recv_msg(f.fe, &msg);
	if (r == 0) {
		uint64_t status = 0;
		CHECK_EQ(msg.size, 8);
		memcpy(&status, msg.payload, 8);
		CHECK(status != 0);
		tfe_msg_finish(&msg);
	} else {
		CHECK(r == -EPIPE || r == -ECONNRESET);
	}
	fx_fini(&f);
}

TEST(connect_by_path)
{
	char path[64];
	struct tfe_bringup b;
	struct fx f;
	int lfd, cfd;

	fx_init(&f, false, false);
	fx_drop(&f);
	snprintf(path, sizeof(path), "/tmp/vshm-tfe-%d.sock", (int)getpid());
	CHECK_OK(vshm_unix_listen(path, 1, &lfd));
	CHECK_OK(tfe_connect(path, &f.fe));
	CHECK_OK(vshm_unix_accept(lfd, &cfd));
	close(lfd);
	unlink(path);
	CHECK_OK(vshm_vu_dev_connect(f.dev, cfd));
	tfe_set_pump(f.fe, pump, f.loop);
	b = fx_plan(&f, TFE_ORDER_CROSVM);
	CHECK_OK(tfe_bringup(f.fe, &b, NULL));
	roundtrips(&f, 0, 20, 0, 22);
	fx_fini(&f);
}

TEST(backend_channel_unthreaded)
{
	struct tfe_peer_record rec;
	struct tfe_peer *peer;
	struct tfe_bringup b;
	struct fx f;
	int chan;

	fx_init(&f, false, false);
	b = fx_plan(&f, TFE_ORDER_CROSVM);
	b.backend_channel = false;
	CHECK_OK(tfe_bringup(f.fe, &b, NULL));
	/* The test's own channel, served inline: only unacked requests can work. */
	CHECK_OK(tfe_set_backend_req_fd(f.fe, &chan));
	CHECK_OK(tfe_sync(f.fe));
	CHECK_OK(tfe_peer_new(chan, &peer));
	CHECK_OK(vshm_vu_dev_backend_request(f.dev, TFE_BACKEND_CONFIG_CHANGE_MSG, NULL, 0, NULL, 0,
	                                     false, NULL));
	CHECK_OK(tfe_peer_wait_count(peer, 1, 2000));
	CHECK_OK(tfe_peer_get(peer, 0, &rec));
	CHECK_EQ(rec.request, TFE_BACKEND_CONFIG_CHANGE_MSG);
	CHECK(!(rec.flags & TFE_FLAG_NEED_REPLY));
	CHECK(!rec.replied);
	/* The engine closes its end on disconnect; the peer sees it. */
	vshm_vu_dev_disconnect(f.dev);
	CHECK_EQ(tfe_peer_dispatch(peer, 2000), -EPIPE);
	CHECK(tfe_peer_closed(peer));
	tfe_peer_destroy(peer);
	fx_fini(&f);
}
