/* SPDX-License-Identifier: MIT */
/* Memory table, vring configuration and the start/stop/enable rules. */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vshm/log.h>
#include <vshm/virtqueue.h>

#include "test-runner.h"
#include "virtqueue-internal.h"
#include "vu-test.h"

struct vring_addr {
	uint32_t index, flags;
	uint64_t desc, used, avail, log;
} __attribute__((packed));

struct single_region {
	uint64_t pad, gpa, size, uva, off;
} __attribute__((packed));

static void quiet(enum vshm_log_level level, const char *msg, void *data)
{
}

static void setup(struct fe *fe, const struct vshm_vu_config *cfg, uint64_t features_mask)
{
	vshm_log_set_handler(quiet, NULL);
	fe_init(fe, cfg);
	fe_negotiate(fe, VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_CONFIGURE_MEM_SLOTS, features_mask);
}

static int64_t set_num(struct fe *fe, uint32_t i, uint32_t num)
{
	uint32_t s[2] = { i, num };
	return fe_req_ack(fe, REQ_SET_VRING_NUM, s, 8, NULL, 0);
}

static int64_t set_addr(struct fe *fe, uint32_t i, uint64_t desc, uint64_t avail, uint64_t used)
{
	struct vring_addr a = { i, 0, desc, used, avail, 0 };
	return fe_req_ack(fe, REQ_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

static int64_t enable(struct fe *fe, uint32_t i, uint32_t on)
{
	uint32_t s[2] = { i, on };
	return fe_req_ack(fe, REQ_SET_VRING_ENABLE, s, 8, NULL, 0);
}

static uint32_t get_base(struct fe *fe, uint32_t i)
{
	uint32_t s[2] = { i, 0 }, out[2], req, flags;

	CHECK_OK(fe_send(fe, REQ_GET_VRING_BASE, F_V1, s, 8, NULL, 0));
	CHECK_EQ(fe_recv(fe, &req, &flags, out, sizeof(out)), 8);
	CHECK_EQ(req, REQ_GET_VRING_BASE);
	CHECK_EQ(out[0], i);
	return out[1];
}

TEST(ring_size_rules)
{
	struct fe fe;

	setup(&fe, NULL, ~0ull);
	CHECK(set_num(&fe, 0, 0) != 0);
	CHECK(set_num(&fe, 0, 3) != 0);
	CHECK(set_num(&fe, 0, 100) != 0);
	CHECK(set_num(&fe, 0, 512) != 0); /* above max_queue_size (256) */
	CHECK(set_num(&fe, 0, 65536) != 0);
	CHECK(set_num(&fe, T_MAX_QUEUES, 16) != 0);
	CHECK(set_num(&fe, 0xffffffffu, 16) != 0);
	CHECK_EQ(set_num(&fe, 0, 256), 0);
	CHECK_EQ(set_num(&fe, 1, 1), 0);
	CHECK_EQ(vshm_vq_size(vshm_vu_dev_get_queue(fe.dev, 0)), 256);
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	fe_fini(&fe);
}

TEST(ring_address_rules)
{
	struct fe fe;
	uint32_t base[2] = { 0, 0x10000 };

	setup(&fe, NULL, ~0ull);
	fe_set_mem(&fe);
	CHECK_EQ(set_num(&fe, 0, 64), 0);
	/* Alignment: desc 16, avail 2, used 4. */
	CHECK(set_addr(&fe, 0, T_RING_DESC(0) + 8, T_RING_AVAIL(0), T_RING_USED(0)) != 0);
	CHECK(set_addr(&fe, 0, T_RING_DESC(0), T_RING_AVAIL(0) + 1, T_RING_USED(0)) != 0);
	CHECK(set_addr(&fe, 0, T_RING_DESC(0), T_RING_AVAIL(0), T_RING_USED(0) + 2) != 0);
	/* Outside guest memory, straddling its end, and wrapping. */
	CHECK(set_addr(&fe, 0, 0x1000, T_RING_AVAIL(0), T_RING_USED(0)) != 0);
	CHECK(set_addr(&fe, 0, T_RING_DESC(0), T_UVA_BASE + T_MEM_SIZE - 2, T_RING_USED(0)) != 0);
	CHECK(set_addr(&fe, 0, 0xfffffffffffffff0ull, T_RING_AVAIL(0), T_RING_USED(0)) != 0);
	CHECK_EQ(set_addr(&fe, 0, T_RING_DESC(0), T_RING_AVAIL(0), T_RING_USED(0)), 0);
	/* Bad flags and bad index. */
	{
		struct vring_addr a = { 0, 2, T_RING_DESC(0), T_RING_USED(0), T_RING_AVAIL(0), 0 };
		CHECK(fe_req_ack(&fe, REQ_SET_VRING_ADDR, &a, sizeof(a), NULL, 0) != 0);
		a.flags = 0;
		a.index = 9;
		CHECK(fe_req_ack(&fe, REQ_SET_VRING_ADDR, &a, sizeof(a), NULL, 0) != 0);
	}
	/* Packed-ring fields in SET_VRING_BASE are refused for split rings. */
	CHECK(fe_req_ack(&fe, REQ_SET_VRING_BASE, base, 8, NULL, 0) != 0);
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	fe_fini(&fe);
}

TEST(region_smaller_than_declared)
{
	struct fe fe;
	int mfd;
	struct {
		uint32_t n, pad;
		uint64_t gpa, size, uva, off;
	} __attribute__((packed)) t = { 1, 0, 0, T_MEM_SIZE, T_UVA_BASE, 0 };

	setup(&fe, NULL, ~0ull);
	CHECK((mfd = memfd_create("small", MFD_CLOEXEC)) >= 0);
	CHECK_OK(ftruncate(mfd, 4096));
	CHECK(fe_req_ack(&fe, REQ_SET_MEM_TABLE, &t, sizeof(t), &mfd, 1) != 0);
	CHECK_EQ(vshm_mem_num_regions(vshm_vu_dev_get_mem(fe.dev)), 0);
	/* An offset past the file's end. */
	t.size = 4096;
	t.off = 4096;
	CHECK(fe_req_ack(&fe, REQ_SET_MEM_TABLE, &t, sizeof(t), &mfd, 1) != 0);
	/* Zero-sized and wrapping regions. */
	t.off = 0;
	t.size = 0;
	CHECK(fe_req_ack(&fe, REQ_SET_MEM_TABLE, &t, sizeof(t), &mfd, 1) != 0);
	t.size = 4096;
	t.gpa = 0xfffffffffffff000ull + 1;
	CHECK(fe_req_ack(&fe, REQ_SET_MEM_TABLE, &t, sizeof(t), &mfd, 1) != 0);
	t.gpa = 0;
	CHECK_EQ(fe_req_ack(&fe, REQ_SET_MEM_TABLE, &t, sizeof(t), &mfd, 1), 0);
	CHECK_EQ(vshm_mem_num_regions(vshm_vu_dev_get_mem(fe.dev)), 1);
	close(mfd);
	fe_fini(&fe);
}

TEST(add_rem_mem_reg_slot_limit)
{
	struct vshm_vu_config cfg;
	struct fe fe;
	int mfd[5];
	uint64_t slots;

	vshm_vu_config_defaults(&cfg);
	cfg.num_queues = T_MAX_QUEUES;
	cfg.max_mem_slots = 4;
	setup(&fe, &cfg, ~0ull);
	CHECK_OK(fe_get_u64(&fe, REQ_GET_MAX_MEM_SLOTS, &slots));
	CHECK_EQ(slots, 4);
	for (unsigned k = 0; k < 5; k++) {
		struct single_region r = { 0, 0x100000ull * k, 65536, T_UVA_BASE + 0x100000ull * k,
			                   0 };

		CHECK((mfd[k] = memfd_create("slot", MFD_CLOEXEC)) >= 0);
		CHECK_OK(ftruncate(mfd[k], 65536));
		if (k < 4)
			CHECK_EQ(fe_req_ack(&fe, REQ_ADD_MEM_REG, &r, sizeof(r), &mfd[k], 1), 0);
		else
			CHECK(fe_req_ack(&fe, REQ_ADD_MEM_REG, &r, sizeof(r), &mfd[k], 1) != 0);
	}
	CHECK_EQ(vshm_mem_num_regions(vshm_vu_dev_get_mem(fe.dev)), 4);
	{
		struct single_region r = { 0, 0x100000ull * 2, 65536, T_UVA_BASE + 0x200000ull, 0 };
		struct single_region none = { 0, 0x900000ull, 65536, 0, 0 };

		/* REM_MEM_REG with the region's fd attached: tolerated, fd closed. */
		CHECK_EQ(fe_req_ack(&fe, REQ_REM_MEM_REG, &r, sizeof(r), &mfd[2], 1), 0);
		CHECK(fe_req_ack(&fe, REQ_REM_MEM_REG, &r, sizeof(r), NULL, 0) != 0);
		CHECK(fe_req_ack(&fe, REQ_REM_MEM_REG, &none, sizeof(none), NULL, 0) != 0);
		CHECK_EQ(vshm_mem_num_regions(vshm_vu_dev_get_mem(fe.dev)), 3);
		/* A free slot again. */
		r.gpa = 0x100000ull * 4;
		r.uva = T_UVA_BASE + 0x400000ull;
		CHECK_EQ(fe_req_ack(&fe, REQ_ADD_MEM_REG, &r, sizeof(r), &mfd[4], 1), 0);
		/* Overlapping an existing region. */
		r.gpa = 0;
		CHECK(fe_req_ack(&fe, REQ_ADD_MEM_REG, &r, sizeof(r), &mfd[4], 1) != 0);
	}
	CHECK_EQ(vshm_mem_num_regions(vshm_vu_dev_get_mem(fe.dev)), 4);
	for (unsigned k = 0; k < 5; k++)
		close(mfd[k]);
	fe_fini(&fe);
}

TEST(start_stop_enable_with_protocol_features)
{
	struct fe fe;
	struct vshm_vq *vq;

	setup(&fe, NULL, ~0ull);
	fe_set_mem(&fe);
	fe_setup_ring(&fe, 0, 32);
	vq = vshm_vu_dev_get_queue(fe.dev, 0);
	CHECK_EQ(fe.td.started[0], 1);
	CHECK(!vshm_vq_is_ready(vq)); /* started but disabled */
	fe_post_buffer(&fe, 0, 0, 16);
	fe_kick(&fe, 0);
	CHECK_EQ(fe.td.kicks[0], 0);
	CHECK_EQ(fe_used_idx(&fe, 0), 0);
	/* Enabling processes what was queued meanwhile. */
	CHECK_EQ(enable(&fe, 0, 1), 0);
	CHECK(vshm_vq_is_ready(vq));
	CHECK_EQ(fe.td.kicks[0], 1);
	CHECK_EQ(fe_used_idx(&fe, 0), 1);
	fe_post_buffer(&fe, 0, 1, 16);
	fe_kick(&fe, 0);
	CHECK_EQ(fe.td.kicks[0], 2);
	CHECK_EQ(fe_used_idx(&fe, 0), 2);
	/* Disable: kicks are drained but not delivered. */
	CHECK_EQ(enable(&fe, 0, 0), 0);
	fe_kick(&fe, 0);
	CHECK_EQ(fe.td.kicks[0], 2);
	CHECK(enable(&fe, 0, 2) != 0);
	CHECK_EQ(enable(&fe, 0, 1), 0);
	CHECK_EQ(fe.td.kicks[0], 3); /* re-enabling processes the ring */

	/* A started ring refuses reconfiguration. */
	CHECK(set_num(&fe, 0, 16) != 0);
	{
		uint32_t b[2] = { 0, 5 };
		CHECK(fe_req_ack(&fe, REQ_SET_VRING_BASE, b, 8, NULL, 0) != 0);
	}
	CHECK(set_addr(&fe, 0, T_RING_DESC(1), T_RING_AVAIL(1), T_RING_USED(1)) != 0);
	CHECK_EQ(set_addr(&fe, 0, T_RING_DESC(0), T_RING_AVAIL(0), T_RING_USED(0)), 0);

	/* GET_VRING_BASE: stops first, then answers the next avail index. */
	CHECK_EQ(get_base(&fe, 0), 2);
	CHECK_EQ(fe.td.stopped[0], 1);
	CHECK(!vshm_vq_is_ready(vq));
	fe_post_buffer(&fe, 0, 2, 16);
	fe_kick(&fe, 0);
	CHECK_EQ(fe.td.kicks[0], 3);
	CHECK_EQ(get_base(&fe, 0), 2); /* stopping twice is harmless */
	CHECK_EQ(fe.td.stopped[0], 1);

	/* Restart from the saved base (as after migration or reset). */
	{
		uint32_t b[2] = { 0, 2 };
		uint64_t v = 0;

		CHECK_EQ(fe_req_ack(&fe, REQ_SET_VRING_BASE, b, 8, NULL, 0), 0);
		CHECK_EQ(fe_req_ack(&fe, REQ_SET_VRING_KICK, &v, 8, &fe.kick[0], 1), 0);
	}
	CHECK_EQ(fe.td.started[0], 2);
	/* The buffer posted while stopped is processed on (re)start. */
	/* (The kick written while stopped is still pending on the eventfd.) */
	CHECK(fe.td.kicks[0] >= 4);
	CHECK_EQ(fe_used_idx(&fe, 0), 3);
	CHECK_EQ(fe.td.order_errors, 0);
	fe_fini(&fe);
}

TEST(no_protocol_features_enables_all_rings)
{
	struct fe fe;

	setup(&fe, NULL, ~VSHM_VU_F_PROTOCOL_FEATURES);
	fe_set_mem(&fe);
	fe_setup_ring(&fe, 0, 16);
	fe_setup_ring(&fe, 1, 16);
	CHECK(vshm_vq_is_ready(vshm_vu_dev_get_queue(fe.dev, 0)));
	CHECK(vshm_vq_is_ready(vshm_vu_dev_get_queue(fe.dev, 1)));
	fe_post_buffer(&fe, 1, 0, 8);
	fe_kick(&fe, 1);
	CHECK_EQ(fe.td.kicks[1], 2); /* once at start, once for the kick */
	CHECK_EQ(fe_used_idx(&fe, 1), 1);
	CHECK_EQ(fe.td.order_errors, 0);
	fe_fini(&fe);
}

TEST(ring_needs_kick_to_start_and_polling_mode)
{
	struct fe fe;
	uint32_t st[2] = { 2, 16 };
	uint64_t v;

	setup(&fe, NULL, ~0ull);
	fe_set_mem(&fe);
	CHECK_EQ(fe_req_ack(&fe, REQ_SET_VRING_NUM, st, 8, NULL, 0), 0);
	CHECK_EQ(set_addr(&fe, 2, T_RING_DESC(2), T_RING_AVAIL(2), T_RING_USED(2)), 0);
	CHECK_EQ(fe.td.started[2], 0);
	/* Poll mode: no fd; the ring starts at once. */
	v = 2 | (1ull << 8);
	CHECK_EQ(fe_set_u64_ack(&fe, REQ_SET_VRING_KICK, v), 0);
	CHECK_EQ(fe.td.started[2], 1);
	CHECK_EQ(vshm_vq_get_kick_fd(vshm_vu_dev_get_queue(fe.dev, 2)), -1);
	CHECK_EQ(enable(&fe, 2, 1), 0);
	CHECK_EQ(fe.td.kicks[2], 1);
	CHECK_EQ(get_base(&fe, 2), 0);
	CHECK_EQ(fe.td.stopped[2], 1);

	/* Kick fd before the rings: the first kick after they are valid starts it. */
	{
		uint32_t s[2] = { 3, 16 };
		int kfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		uint64_t one = 1;

		CHECK(kfd >= 0);
		v = 3;
		CHECK_EQ(fe_req_ack(&fe, REQ_SET_VRING_KICK, &v, 8, &kfd, 1), 0);
		CHECK_EQ(fe.td.started[3], 0);
		CHECK_EQ(fe_req_ack(&fe, REQ_SET_VRING_NUM, s, 8, NULL, 0), 0);
		CHECK_EQ(set_addr(&fe, 3, T_RING_DESC(3), T_RING_AVAIL(3), T_RING_USED(3)), 0);
		CHECK_EQ(fe.td.started[3], 0);
		CHECK_EQ(write(kfd, &one, 8), 8);
		fe_pump(&fe);
		CHECK_EQ(fe.td.started[3], 1);
		close(kfd);
	}
	CHECK_EQ(fe.td.order_errors, 0);
	fe_fini(&fe);
}

TEST(memory_table_change_remaps_rings)
{
	struct fe fe;
	int mfd;
	struct {
		uint32_t n, pad;
		uint64_t gpa, size, uva, off;
	} __attribute__((packed)) t = { 1, 0, 0x40000000, 4096, T_UVA_BASE + 0x10000000, 0 };

	setup(&fe, NULL, ~0ull);
	fe_set_mem(&fe);
	fe_setup_ring(&fe, 0, 16);
	CHECK_EQ(enable(&fe, 0, 1), 0);
	/* The same table again (hotplug re-send): the ring keeps working. */
	fe_set_mem(&fe);
	fe_post_buffer(&fe, 0, 0, 8);
	fe_kick(&fe, 0);
	CHECK_EQ(fe_used_idx(&fe, 0), 1);
	CHECK_EQ(fe.td.stopped[0], 0);
	/* A table without the rings' memory: the ring is stopped, not left dangling. */
	CHECK((mfd = memfd_create("other", MFD_CLOEXEC)) >= 0);
	CHECK_OK(ftruncate(mfd, 4096));
	CHECK_EQ(fe_req_ack(&fe, REQ_SET_MEM_TABLE, &t, sizeof(t), &mfd, 1), 0);
	CHECK_EQ(fe.td.stopped[0], 1);
	fe_post_buffer(&fe, 0, 1, 8);
	fe_kick(&fe, 0);
	CHECK_EQ(fe_used_idx(&fe, 0), 1);
	/* The memory comes back: the next kick restarts the ring. */
	fe_set_mem(&fe);
	fe_kick(&fe, 0);
	CHECK_EQ(fe.td.started[0], 2);
	CHECK_EQ(fe_used_idx(&fe, 0), 2);
	CHECK_EQ(fe.td.order_errors, 0);
	close(mfd);
	fe_fini(&fe);
}
