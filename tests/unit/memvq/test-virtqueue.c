/* SPDX-License-Identifier: MIT */
/*
 * test-virtqueue.c - the device side of split virtqueues, driven by the
 * test front-end's driver helpers: well-formed chains, every kind of
 * malformed ring, notification suppression and the used ring.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vshm/virtqueue.h>

#include "guest-mem.h"
#include "test-runner.h"
#include "virtqueue-internal.h"
#include "vring-driver.h"

#define RSIZE (1ull << 20)
#define BASE  0x100000ull
/* Two adjacent 1 MiB regions; everything above BASE + 2 MiB is outside memory. */
#define MEM_END (BASE + 2 * RSIZE)

struct fx {
	struct testfe_mem *fe;
	struct vshm_mem *mem;
	struct testfe_vring *vr;
	struct vshm_vq *vq;
	int err_fd; /* our end of the queue's error eventfd */
};

struct fx_opts {
	unsigned num;
	bool event_idx, indirect_drv, indirect_dev;
	uint16_t start;
};

static void fx_init_opts(struct fx *f, const struct fx_opts *o)
{
	struct testfe_mem_config mc = { .nregions = 2, .base_gpa = BASE };
	struct testfe_vring_config vc = {
		.num = o->num, .event_idx = o->event_idx, .indirect = o->indirect_drv, .region = 0
	};
	struct vshm_mem_region_desc d[2];
	struct vshm_vq_features feat = { .event_idx = o->event_idx, .indirect = o->indirect_dev };
	int fds[2];
	uint64_t du, au, uu;

	mc.region_size[0] = mc.region_size[1] = RSIZE;
	CHECK_OK(testfe_mem_new(&mc, &f->fe));
	CHECK_OK(testfe_vring_new(f->fe, &vc, &f->vr));
	if (o->start)
		testfe_vring_set_start_idx(f->vr, o->start);

	CHECK_OK(vshm_mem_new(8, &f->mem));
	CHECK_OK(testfe_mem_table(f->fe, d, fds));
	CHECK_OK(vshm_mem_set_table(f->mem, d, fds, 2));

	CHECK_OK(vshm_vq_new(f->mem, 0, &f->vq));
	vshm_vq_set_features(f->vq, &feat);
	CHECK_OK(vshm_vq_set_num(f->vq, o->num, VSHM_VQ_MAX_SIZE));
	testfe_vring_uvas(f->vr, &du, &au, &uu);
	CHECK_OK(vshm_vq_set_addr(f->vq, du, au, uu));
	vshm_vq_set_base(f->vq, o->start);
	CHECK_OK(vshm_vq_map(f->vq));
	vshm_vq_set_kick_fd(f->vq, testfe_vring_dup_kick_fd(f->vr));
	vshm_vq_set_call_fd(f->vq, testfe_vring_dup_call_fd(f->vr));
	f->err_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(f->err_fd >= 0);
	vshm_vq_set_err_fd(f->vq, fcntl(f->err_fd, F_DUPFD_CLOEXEC, 0));
	vshm_vq_set_enabled(f->vq, true);
	vshm_vq_set_started(f->vq, true);
	CHECK(vshm_vq_is_ready(f->vq));
}

static void fx_init(struct fx *f, unsigned num)
{
	struct fx_opts o = { .num = num, .indirect_drv = true, .indirect_dev = true };
	fx_init_opts(f, &o);
}

static void fx_fini(struct fx *f)
{
	vshm_vq_destroy(f->vq);
	vshm_mem_destroy(f->mem);
	testfe_vring_destroy(f->vr);
	testfe_mem_destroy(f->fe);
	close(f->err_fd);
}

/* A zeroed data buffer in guest memory, filled with @fill. */
static uint64_t buf_alloc(struct fx *f, uint64_t len, uint8_t fill)
{
	uint64_t gpa;
	void *host;
	CHECK_OK(testfe_mem_alloc(f->fe, len, 16, &gpa, &host));
	memset(host, fill, len);
	return gpa;
}

/* Pop must fail with -EIO, and the ring must be broken and say so on err_fd. */
static void expect_broken(struct fx *f)
{
	struct vshm_vq_elem *e = NULL;
	struct vshm_vq_stats st;
	uint64_t v = 0;

	CHECK_EQ(vshm_vq_pop(f->vq, &e), -EIO);
	CHECK(e == NULL);
	CHECK(vshm_vq_is_broken(f->vq));
	CHECK_EQ(vshm_vq_pop(f->vq, &e), -EIO);
	vshm_vq_get_stats(f->vq, &st);
	CHECK_EQ(st.bad_chains, 1);
	CHECK_EQ(st.popped, 0);
	CHECK_EQ(read(f->err_fd, &v, sizeof(v)), sizeof(v));
	CHECK_EQ(v, 1);
}

TEST(set_num_checks)
{
	struct fx f;
	fx_init(&f, 8);
	struct vshm_vq *vq;
	CHECK_OK(vshm_vq_new(f.mem, 1, &vq));
	CHECK_EQ(vshm_vq_size(vq), 0);
	CHECK_EQ(vshm_vq_index(vq), 1);
	CHECK_EQ(vshm_vq_set_num(vq, 0, 256), -EINVAL);
	CHECK_EQ(vshm_vq_set_num(vq, 3, 256), -EINVAL);
	CHECK_EQ(vshm_vq_set_num(vq, 100, 256), -EINVAL);
	CHECK_EQ(vshm_vq_set_num(vq, 512, 256), -EINVAL);
	CHECK_EQ(vshm_vq_set_num(vq, 65536, 1u << 20), -EINVAL);
	CHECK_OK(vshm_vq_set_num(vq, 1, 256));
	CHECK_OK(vshm_vq_set_num(vq, 256, 256));
	CHECK_OK(vshm_vq_set_num(vq, VSHM_VQ_MAX_SIZE, VSHM_VQ_MAX_SIZE));
	CHECK_EQ(vshm_vq_size(vq), VSHM_VQ_MAX_SIZE);
	vshm_vq_destroy(vq);
	/* not while started */
	CHECK_EQ(vshm_vq_set_num(f.vq, 16, 256), -EBUSY);
	fx_fini(&f);
}

TEST(set_addr_alignment_and_map)
{
	struct fx f;
	struct vshm_vq *vq;
	uint64_t du, au, uu;

	fx_init(&f, 8);
	testfe_vring_uvas(f.vr, &du, &au, &uu);
	CHECK_OK(vshm_vq_new(f.mem, 1, &vq));
	CHECK_EQ(vshm_vq_map(vq), -EINVAL); /* nothing configured */
	CHECK_EQ(vshm_vq_set_addr(vq, du + 8, au, uu), -EINVAL);
	CHECK_EQ(vshm_vq_set_addr(vq, du, au + 1, uu), -EINVAL);
	CHECK_EQ(vshm_vq_set_addr(vq, du, au, uu + 2), -EINVAL);
	CHECK_OK(vshm_vq_set_addr(vq, du, au, uu));
	CHECK_EQ(vshm_vq_map(vq), -EINVAL); /* no size yet */
	CHECK_OK(vshm_vq_set_num(vq, 8, 256));
	CHECK_OK(vshm_vq_map(vq));
	/* rings outside guest memory (or running past a region's end) */
	CHECK_OK(vshm_vq_set_addr(vq, 0x10, au, uu));
	CHECK_EQ(vshm_vq_map(vq), -EFAULT);
	struct vshm_mem_region_desc d;
	testfe_mem_region_desc(f.fe, 1, &d);
	CHECK_OK(vshm_vq_set_addr(vq, du, au, d.user_addr + d.size - 16));
	CHECK_EQ(vshm_vq_map(vq), -EFAULT);
	vshm_vq_set_enabled(vq, true);
	vshm_vq_set_started(vq, true);
	CHECK(!vshm_vq_is_ready(vq));
	struct vshm_vq_elem *e;
	CHECK_EQ(vshm_vq_pop(vq, &e), -ENODEV);
	vshm_vq_destroy(vq);
	fx_fini(&f);
}

TEST(not_ready_and_empty)
{
	struct fx f;
	struct vshm_vq_elem *e;

	fx_init(&f, 8);
	CHECK_EQ(vshm_vq_pop(f.vq, &e), -EAGAIN);
	vshm_vq_set_enabled(f.vq, false);
	CHECK(!vshm_vq_is_ready(f.vq));
	CHECK_EQ(vshm_vq_pop(f.vq, &e), -ENODEV);
	CHECK_EQ(vshm_vq_notify(f.vq), -ENODEV);
	vshm_vq_set_enabled(f.vq, true);
	vshm_vq_set_started(f.vq, false);
	CHECK_EQ(vshm_vq_pop(f.vq, &e), -ENODEV);
	vshm_vq_set_started(f.vq, true);
	CHECK_EQ(vshm_vq_pop(f.vq, &e), -EAGAIN);
	/* nothing pushed: nothing to notify */
	CHECK_EQ(vshm_vq_notify(f.vq), 0);
	CHECK_EQ(testfe_vring_consume_call(f.vr), 0);
	fx_fini(&f);
}

TEST(simple_chain)
{
	struct fx f;
	struct vshm_vq_elem *e, *none = NULL;
	uint8_t buf[64];
	int h;

	fx_init(&f, 8);
	struct testfe_buf b = { buf_alloc(&f, 64, 0xa5), 64, false };
	h = testfe_vring_add(f.vr, &b, 1, false, &f);
	CHECK(h >= 0);
	CHECK_OK(vshm_vq_pop(f.vq, &e));
	CHECK_EQ(e->id, h);
	CHECK_EQ(e->out_num, 1);
	CHECK_EQ(e->in_num, 0);
	CHECK_EQ(e->out_bytes, 64);
	CHECK_EQ(e->in_bytes, 0);
	CHECK_EQ(vshm_iov_to_buf(e->out_sg, e->out_num, 0, buf, sizeof(buf)), 64);
	for (int i = 0; i < 64; i++)
		CHECK_EQ(buf[i], 0xa5);
	/* a failed pop leaves *out alone */
	CHECK_EQ(vshm_vq_pop(f.vq, &none), -EAGAIN);
	CHECK(none == NULL);
	vshm_vq_elem_free(e);
	fx_fini(&f);
}

TEST(push_and_used_ring)
{
	struct fx f;
	struct vshm_vq_elem *e;
	struct vshm_vq_stats st;
	uint16_t head;
	uint32_t len, id, ulen;
	void *cookie = NULL;
	int h;

	fx_init(&f, 8);
	struct testfe_buf b[4] = {
		{ buf_alloc(&f, 10, 1), 10, false },
		{ buf_alloc(&f, 20, 2), 20, false },
		{ buf_alloc(&f, 30, 0), 30, true },
		{ buf_alloc(&f, 40, 0), 40, true },
	};
	h = testfe_vring_add(f.vr, b, 4, false, &f);
	CHECK(h >= 0);
	CHECK_OK(vshm_vq_pop(f.vq, &e));
	CHECK_EQ(e->out_num, 2);
	CHECK_EQ(e->in_num, 2);
	CHECK_EQ(e->out_bytes, 30);
	CHECK_EQ(e->in_bytes, 70);
	uint8_t out[30], resp[50];
	CHECK_EQ(vshm_iov_to_buf(e->out_sg, e->out_num, 0, out, 30), 30);
	CHECK_EQ(out[9], 1);
	CHECK_EQ(out[10], 2);
	memset(resp, 0x3c, sizeof(resp));
	/* a response spanning both writable buffers */
	CHECK_EQ(vshm_iov_from_buf(e->in_sg, e->in_num, 0, resp, 50), 50);
	CHECK_OK(vshm_vq_push(f.vq, e, 50));

	CHECK_EQ(testfe_vring_used_idx(f.vr), 1);
	testfe_vring_used_elem(f.vr, 0, &id, &ulen);
	CHECK_EQ(id, (uint32_t)h);
	CHECK_EQ(ulen, 50);
	CHECK_EQ(testfe_vring_get_used(f.vr, &head, &len, &cookie), 1);
	CHECK_EQ(head, h);
	CHECK_EQ(len, 50);
	CHECK(cookie == &f);
	uint8_t got[40];
	CHECK_OK(testfe_mem_read(f.fe, b[3].gpa, got, 40));
	CHECK_EQ(got[19], 0x3c);
	CHECK_EQ(got[20], 0);

	/* written is clamped to what the driver offered */
	h = testfe_vring_add(f.vr, &b[2], 1, false, NULL);
	CHECK_OK(vshm_vq_pop(f.vq, &e));
	CHECK_OK(vshm_vq_push(f.vq, e, 1000));
	CHECK_EQ(testfe_vring_get_used(f.vr, &head, &len, NULL), 1);
	CHECK_EQ(len, 30);

	/* first notify always signals */
	CHECK_EQ(vshm_vq_notify(f.vq), 1);
	CHECK_EQ(testfe_vring_consume_call(f.vr), 1);
	vshm_vq_get_stats(f.vq, &st);
	CHECK_EQ(st.popped, 2);
	CHECK_EQ(st.pushed, 2);
	CHECK_EQ(st.notified, 1);

	/* an element the device forged with a bad id is refused (and freed) */
	e = calloc(1, sizeof(*e));
	e->id = 8;
	CHECK_EQ(vshm_vq_push(f.vq, e, 0), -EINVAL);
	CHECK_EQ(vshm_vq_push(f.vq, NULL, 0), -EINVAL);
	vshm_vq_elem_free(NULL);
	fx_fini(&f);
}

TEST(full_ring_and_wraparound)
{
	struct fx_opts o = { .num = 4, .start = 65533 };
	struct fx f;
	struct vshm_vq_elem *e[4];
	uint16_t head;

	fx_init_opts(&f, &o);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 4; i++) {
			struct testfe_buf b = { buf_alloc(&f, 8, (uint8_t)i), 8, true };
			CHECK(testfe_vring_add(f.vr, &b, 1, false, NULL) >= 0);
		}
		struct testfe_buf b = { buf_alloc(&f, 8, 0), 8, true };
		CHECK_EQ(testfe_vring_add(f.vr, &b, 1, false, NULL), -ENOSPC);
		for (int i = 0; i < 4; i++)
			CHECK_OK(vshm_vq_pop(f.vq, &e[i]));
		CHECK_EQ(vshm_vq_pop(f.vq, &e[0]) == -EAGAIN, 1);
		/* completes out of order */
		for (int i = 3; i >= 0; i--)
			CHECK_OK(vshm_vq_push(f.vq, e[i], 4));
		for (int i = 0; i < 4; i++)
			CHECK_EQ(testfe_vring_get_used(f.vr, &head, NULL, NULL), 1);
		CHECK_EQ(testfe_vring_get_used(f.vr, &head, NULL, NULL), 0);
	}
	CHECK_EQ(vshm_vq_get_base(f.vq), (uint16_t)(65533 + 12));
	CHECK_EQ(testfe_vring_used_idx(f.vr), (uint16_t)(65533 + 12));
	fx_fini(&f);
}

TEST(indirect_chain)
{
	struct fx f;
	struct vshm_vq_elem *e;
	uint16_t head;
	uint32_t len;

	fx_init(&f, 8);
	struct testfe_buf b[3] = {
		{ buf_alloc(&f, 24, 7), 24, false },
		{ buf_alloc(&f, 100, 0), 100, true },
		{ buf_alloc(&f, 4, 0), 4, true },
	};
	int h = testfe_vring_add(f.vr, b, 3, true, NULL);
	CHECK(h >= 0);
	CHECK_OK(vshm_vq_pop(f.vq, &e));
	CHECK_EQ(e->id, h);
	CHECK_EQ(e->out_num, 1);
	CHECK_EQ(e->in_num, 2);
	CHECK_EQ(e->out_bytes, 24);
	CHECK_EQ(e->in_bytes, 104);
	CHECK_OK(vshm_vq_push(f.vq, e, 104));
	CHECK_EQ(testfe_vring_get_used(f.vr, &head, &len, NULL), 1);
	CHECK_EQ(len, 104);
	fx_fini(&f);
}

TEST(indirect_after_direct_and_across_regions)
{
	struct fx f;
	struct vshm_vq_elem *e;
	uint64_t table = BASE + RSIZE - 24; /* table straddles the region boundary */
	uint64_t data;

	fx_init(&f, 8);
	data = buf_alloc(&f, 64, 9);
	CHECK_OK(testfe_raw_desc_at(f.fe, table, 0, data, 16, TESTFE_DESC_F_NEXT, 1));
	CHECK_OK(testfe_raw_desc_at(f.fe, table, 1, data + 16, 16, TESTFE_DESC_F_NEXT, 2));
	CHECK_OK(testfe_raw_desc_at(f.fe, table, 2, data + 32, 32, TESTFE_DESC_F_WRITE, 0));
	/* a direct readable buffer first, then the indirect table */
	testfe_vring_raw_desc(f.vr, 0, data, 8, TESTFE_DESC_F_NEXT, 1);
	testfe_vring_raw_desc(f.vr, 1, table, 48, TESTFE_DESC_F_INDIRECT, 0);
	testfe_vring_raw_avail(f.vr, 0);
	CHECK_OK(vshm_vq_pop(f.vq, &e));
	CHECK_EQ(e->out_num, 3);
	CHECK_EQ(e->in_num, 1);
	CHECK_EQ(e->out_bytes, 8 + 16 + 16);
	CHECK_EQ(e->in_bytes, 32);
	vshm_vq_elem_free(e);
	fx_fini(&f);
}

TEST(buffer_across_adjacent_regions)
{
	struct fx f;
	struct vshm_vq_elem *e;
	uint8_t pattern[64], got[64];

	fx_init(&f, 8);
	for (int i = 0; i < 64; i++)
		pattern[i] = (uint8_t)i;
	CHECK_OK(testfe_mem_write(f.fe, BASE + RSIZE - 32, pattern, 64));
	struct testfe_buf b = { BASE + RSIZE - 32, 64, false };
	CHECK(testfe_vring_add(f.vr, &b, 1, false, NULL) >= 0);
	CHECK_OK(vshm_vq_pop(f.vq, &e));
	CHECK_EQ(e->out_num, 2);
	CHECK_EQ(e->out_bytes, 64);
	CHECK_EQ(vshm_iov_to_buf(e->out_sg, e->out_num, 0, got, 64), 64);
	CHECK_MEM_EQ(got, pattern, 64);
	vshm_vq_elem_free(e);
	fx_fini(&f);
}

TEST(zero_length_descriptor)
{
	struct fx f;
	struct vshm_vq_elem *e;

	fx_init(&f, 8);
	struct testfe_buf b[2] = { { buf_alloc(&f, 8, 0), 0, false },
		                   { MEM_END + 0x1000, 0, true } };
	CHECK(testfe_vring_add(f.vr, b, 2, false, NULL) >= 0);
	CHECK_OK(vshm_vq_pop(f.vq, &e));
	CHECK_EQ(e->out_num + e->in_num, 0);
	CHECK_OK(vshm_vq_push(f.vq, e, 0));
	fx_fini(&f);
}

/* ---- malformed rings ---- */

TEST(indirect_not_negotiated)
{
	struct fx_opts o = { .num = 8, .indirect_drv = true, .indirect_dev = false };
	struct fx f;

	fx_init_opts(&f, &o);
	struct testfe_buf b = { buf_alloc(&f, 8, 0), 8, false };
	CHECK(testfe_vring_add(f.vr, &b, 1, true, NULL) >= 0);
	expect_broken(&f);
	fx_fini(&f);
}

/* One ring descriptor pointing at an indirect table of @len bytes at @table. */
static void raw_indirect(struct fx *f, uint64_t table, uint32_t len, uint16_t flags)
{
	testfe_vring_raw_desc(f->vr, 0, table, len, (uint16_t)(TESTFE_DESC_F_INDIRECT | flags), 1);
	testfe_vring_raw_desc(f->vr, 1, buf_alloc(f, 8, 0), 8, 0, 0);
	testfe_vring_raw_avail(f->vr, 0);
}

TEST(indirect_bad_lengths)
{
	const uint32_t lens[] = { 0, 8, 17, 33 };
	for (unsigned i = 0; i < 4; i++) {
		struct fx f;
		fx_init(&f, 8);
		uint64_t table = buf_alloc(&f, 64, 0);
		CHECK_OK(testfe_raw_desc_at(f.fe, table, 0, buf_alloc(&f, 8, 0), 8, 0, 0));
		raw_indirect(&f, table, lens[i], 0);
		expect_broken(&f);
		fx_fini(&f);
	}
}

TEST(indirect_with_next)
{
	struct fx f;
	fx_init(&f, 8);
	uint64_t table = buf_alloc(&f, 16, 0);
	CHECK_OK(testfe_raw_desc_at(f.fe, table, 0, buf_alloc(&f, 8, 0), 8, 0, 0));
	raw_indirect(&f, table, 16, TESTFE_DESC_F_NEXT);
	expect_broken(&f);
	fx_fini(&f);
}

TEST(indirect_nested)
{
	struct fx f;
	fx_init(&f, 8);
	uint64_t inner = buf_alloc(&f, 16, 0);
	uint64_t outer = buf_alloc(&f, 32, 0);
	CHECK_OK(testfe_raw_desc_at(f.fe, inner, 0, buf_alloc(&f, 8, 0), 8, 0, 0));
	CHECK_OK(testfe_raw_desc_at(f.fe, outer, 0, buf_alloc(&f, 8, 0), 8, TESTFE_DESC_F_NEXT, 1));
	CHECK_OK(testfe_raw_desc_at(f.fe, outer, 1, inner, 16, TESTFE_DESC_F_INDIRECT, 0));
	raw_indirect(&f, outer, 32, 0);
	expect_broken(&f);
	fx_fini(&f);
}

TEST(indirect_table_outside_memory)
{
	struct fx f;
	fx_init(&f, 8);
	raw_indirect(&f, MEM_END - 16, 32, 0);
	expect_broken(&f);
	fx_fini(&f);
}

TEST(indirect_loop_and_bad_next)
{
	for (int c = 0; c < 2; c++) {
		struct fx f;
		fx_init(&f, 8);
		uint64_t table = buf_alloc(&f, 48, 0), data = buf_alloc(&f, 8, 0);
		CHECK_OK(testfe_raw_desc_at(f.fe, table, 0, data, 8, TESTFE_DESC_F_NEXT, 1));
		CHECK_OK(testfe_raw_desc_at(f.fe, table, 1, data, 8, TESTFE_DESC_F_NEXT, 2));
		/* loop back to 0, or point past the 3-entry table */
		CHECK_OK(testfe_raw_desc_at(f.fe, table, 2, data, 8, TESTFE_DESC_F_NEXT,
		                            c == 0 ? 0 : 3));
		raw_indirect(&f, table, 48, 0);
		expect_broken(&f);
		fx_fini(&f);
	}
}

TEST(chain_length_limit)
{
	/* VSHM_VQ_MAX_CHAIN buffers are fine, one more is refused. */
	for (unsigned extra = 0; extra < 2; extra++) {
		struct fx f;
		struct vshm_vq_elem *e;
		unsigned n = VSHM_VQ_MAX_CHAIN + extra;
		fx_init(&f, 8);
		uint64_t table = buf_alloc(&f, 16ull * n, 0), data = buf_alloc(&f, 8, 0);
		for (unsigned i = 0; i < n; i++)
			CHECK_OK(testfe_raw_desc_at(f.fe, table, i, data, 1,
			                            i + 1 < n ? TESTFE_DESC_F_NEXT : 0,
			                            (uint16_t)(i + 1)));
		testfe_vring_raw_desc(f.vr, 0, table, 16 * n, TESTFE_DESC_F_INDIRECT, 0);
		testfe_vring_raw_avail(f.vr, 0);
		if (extra) {
			expect_broken(&f);
		} else {
			CHECK_OK(vshm_vq_pop(f.vq, &e));
			CHECK_EQ(e->out_num, VSHM_VQ_MAX_CHAIN);
			CHECK_EQ(e->out_bytes, VSHM_VQ_MAX_CHAIN);
			vshm_vq_elem_free(e);
		}
		fx_fini(&f);
	}
}

TEST(direct_loops)
{
	for (int c = 0; c < 3; c++) {
		struct fx f;
		fx_init(&f, 8);
		uint64_t data = buf_alloc(&f, 8, 0);
		if (c == 0) { /* self loop */
			testfe_vring_raw_desc(f.vr, 0, data, 8, TESTFE_DESC_F_NEXT, 0);
		} else if (c == 1) { /* 0 -> 1 -> 0 */
			testfe_vring_raw_desc(f.vr, 0, data, 8, TESTFE_DESC_F_NEXT, 1);
			testfe_vring_raw_desc(f.vr, 1, data, 8, TESTFE_DESC_F_NEXT, 0);
		} else { /* next past the table */
			testfe_vring_raw_desc(f.vr, 0, data, 8, TESTFE_DESC_F_NEXT, 8);
		}
		testfe_vring_raw_avail(f.vr, 0);
		expect_broken(&f);
		fx_fini(&f);
	}
}

TEST(chain_past_guest_memory)
{
	const uint64_t addrs[] = { MEM_END, MEM_END - 4, BASE - 8, 0, UINT64_MAX - 10 };
	const uint32_t lens[] = { 8, 8, 16, 1, 100 };
	for (unsigned i = 0; i < 5; i++) {
		struct fx f;
		fx_init(&f, 8);
		testfe_vring_raw_desc(f.vr, 0, buf_alloc(&f, 8, 0), 8, TESTFE_DESC_F_NEXT, 1);
		testfe_vring_raw_desc(f.vr, 1, addrs[i], lens[i], TESTFE_DESC_F_WRITE, 0);
		testfe_vring_raw_avail(f.vr, 0);
		expect_broken(&f);
		fx_fini(&f);
	}
}

TEST(huge_length)
{
	/* 4 GiB - 1 from a valid address: runs off the end of guest memory. */
	struct fx f;
	fx_init(&f, 8);
	testfe_vring_raw_desc(f.vr, 0, BASE, UINT32_MAX, 0, 0);
	testfe_vring_raw_avail(f.vr, 0);
	expect_broken(&f);
	fx_fini(&f);
}

TEST(readable_after_writable)
{
	struct fx f;
	fx_init(&f, 8);
	uint64_t data = buf_alloc(&f, 8, 0);
	testfe_vring_raw_desc(f.vr, 0, data, 8, TESTFE_DESC_F_WRITE | TESTFE_DESC_F_NEXT, 1);
	testfe_vring_raw_desc(f.vr, 1, data, 8, 0, 0);
	testfe_vring_raw_avail(f.vr, 0);
	expect_broken(&f);
	fx_fini(&f);
}

TEST(head_out_of_range)
{
	struct fx f;
	fx_init(&f, 8);
	testfe_vring_raw_avail(f.vr, 8);
	expect_broken(&f);
	fx_fini(&f);
}

TEST(avail_idx_too_far)
{
	struct fx f;
	struct vshm_vq_elem *e;

	/* exactly the queue size ahead is legal: a full ring */
	fx_init(&f, 8);
	testfe_vring_raw_desc(f.vr, 0, buf_alloc(&f, 8, 0), 8, 0, 0);
	testfe_vring_raw_avail_idx(f.vr, 8);
	for (int i = 0; i < 8; i++) {
		CHECK_OK(vshm_vq_pop(f.vq, &e));
		vshm_vq_elem_free(e);
	}
	CHECK_EQ(vshm_vq_pop(f.vq, &e), -EAGAIN);
	fx_fini(&f);

	fx_init(&f, 8);
	testfe_vring_raw_avail_idx(f.vr, 9);
	expect_broken(&f);
	fx_fini(&f);

	/* going backwards looks like a huge jump forward */
	fx_init(&f, 8);
	testfe_vring_raw_avail_idx(f.vr, 0xffff);
	expect_broken(&f);
	fx_fini(&f);
}

TEST(broken_until_reconfigured)
{
	struct fx f;
	struct vshm_vq_elem *e;
	uint64_t du, au, uu;

	fx_init(&f, 8);
	testfe_vring_raw_avail(f.vr, 9);
	expect_broken(&f);
	/* push and notify refuse too */
	e = calloc(1, sizeof(*e));
	CHECK_EQ(vshm_vq_push(f.vq, e, 0), -EIO);
	CHECK_EQ(vshm_vq_notify(f.vq), -EIO);
	/* the engine stops the ring, the driver fixes it, the engine restarts it */
	vshm_vq_set_started(f.vq, false);
	testfe_vring_uvas(f.vr, &du, &au, &uu);
	testfe_vring_raw_desc(f.vr, 0, buf_alloc(&f, 8, 0), 8, 0, 0);
	testfe_vring_raw_avail_idx(f.vr, 0);
	testfe_vring_set_start_idx(f.vr, 0);
	CHECK_OK(vshm_vq_set_addr(f.vq, du, au, uu));
	vshm_vq_set_base(f.vq, 0);
	CHECK_OK(vshm_vq_map(f.vq));
	vshm_vq_set_started(f.vq, true);
	CHECK(!vshm_vq_is_broken(f.vq));
	testfe_vring_raw_avail(f.vr, 0);
	CHECK_OK(vshm_vq_pop(f.vq, &e));
	vshm_vq_elem_free(e);
	fx_fini(&f);
}

/* ---- notifications ---- */

/* Add, pop and push one chain. */
static void roundtrip(struct fx *f)
{
	struct vshm_vq_elem *e;
	uint16_t head;
	struct testfe_buf b = { buf_alloc(f, 8, 0), 8, true };
	CHECK(testfe_vring_add(f->vr, &b, 1, false, NULL) >= 0);
	CHECK_OK(vshm_vq_pop(f->vq, &e));
	CHECK_OK(vshm_vq_push(f->vq, e, 8));
	CHECK_EQ(testfe_vring_get_used(f->vr, &head, NULL, NULL), 1);
}

TEST(no_interrupt_flag)
{
	struct fx f;
	struct vshm_vq_stats st;

	fx_init(&f, 8);
	testfe_vring_set_no_interrupt(f.vr, true);
	roundtrip(&f);
	CHECK_EQ(vshm_vq_notify(f.vq), 0);
	CHECK_EQ(testfe_vring_consume_call(f.vr), 0);
	testfe_vring_set_no_interrupt(f.vr, false);
	roundtrip(&f);
	CHECK_EQ(vshm_vq_notify(f.vq), 1);
	CHECK_EQ(testfe_vring_consume_call(f.vr), 1);
	/* nothing new pushed */
	CHECK_EQ(vshm_vq_notify(f.vq), 0);
	vshm_vq_get_stats(f.vq, &st);
	CHECK_EQ(st.notified, 1);
	CHECK_EQ(st.suppressed_notifies, 1);
	fx_fini(&f);
}

TEST(event_idx_used_event)
{
	struct fx_opts o = { .num = 8, .event_idx = true };
	struct fx f;
	struct vshm_vq_stats st;

	fx_init_opts(&f, &o);
	/* NO_INTERRUPT means nothing once EVENT_IDX is negotiated */
	testfe_vring_set_no_interrupt(f.vr, true);
	roundtrip(&f); /* used idx 1 */
	CHECK_EQ(vshm_vq_notify(f.vq), 1);
	/* interrupt wanted once entry 3 is used, i.e. when used idx passes 3 */
	testfe_vring_set_used_event(f.vr, 3);
	roundtrip(&f); /* 2 */
	CHECK_EQ(vshm_vq_notify(f.vq), 0);
	roundtrip(&f); /* 3 */
	CHECK_EQ(vshm_vq_notify(f.vq), 0);
	roundtrip(&f); /* 4 */
	CHECK_EQ(vshm_vq_notify(f.vq), 1);
	roundtrip(&f); /* 5: event already passed */
	CHECK_EQ(vshm_vq_notify(f.vq), 0);
	/* a batch whose range covers the event signals once */
	testfe_vring_set_used_event(f.vr, 6);
	roundtrip(&f); /* 6 */
	roundtrip(&f); /* 7 */
	CHECK_EQ(vshm_vq_notify(f.vq), 1);
	CHECK_EQ(testfe_vring_consume_call(f.vr), 3);
	/* the driver's own re-enable (used_event = last used) */
	testfe_vring_enable_cb(f.vr);
	roundtrip(&f);
	CHECK_EQ(vshm_vq_notify(f.vq), 1);
	vshm_vq_get_stats(f.vq, &st);
	CHECK_EQ(st.notified, 4);
	CHECK_EQ(st.suppressed_notifies, 3);
	fx_fini(&f);
}

TEST(event_idx_avail_event_and_kicks)
{
	struct fx_opts o = { .num = 8, .event_idx = true };
	struct fx f;
	struct vshm_vq_elem *e;
	struct vshm_vq_stats st;

	fx_init_opts(&f, &o);
	/* an empty pop asks for a kick at the current index */
	CHECK_EQ(vshm_vq_pop(f.vq, &e), -EAGAIN);
	CHECK_EQ(testfe_vring_avail_event(f.vr), 0);
	struct testfe_buf b = { buf_alloc(&f, 8, 0), 8, false };
	CHECK(testfe_vring_add(f.vr, &b, 1, false, NULL) >= 0);
	CHECK_EQ(testfe_vring_kick(f.vr), 1);
	/* the device has not caught up: a second add needs no kick */
	CHECK(testfe_vring_add(f.vr, &b, 1, false, NULL) >= 0);
	CHECK_EQ(testfe_vring_kick(f.vr), 0);

	CHECK_OK(vshm_vq_consume_kick(f.vq));
	CHECK_EQ(vshm_vq_consume_kick(f.vq), -EAGAIN);
	for (int i = 0; i < 2; i++) {
		CHECK_OK(vshm_vq_pop(f.vq, &e));
		CHECK_EQ(testfe_vring_avail_event(f.vr), i + 1);
		vshm_vq_elem_free(e);
	}
	CHECK_EQ(vshm_vq_pop(f.vq, &e), -EAGAIN);
	CHECK(testfe_vring_add(f.vr, &b, 1, false, NULL) >= 0);
	CHECK_EQ(testfe_vring_kick(f.vr), 1);
	vshm_vq_get_stats(f.vq, &st);
	CHECK_EQ(st.kicks, 1);
	fx_fini(&f);
}

TEST(kick_without_event_idx)
{
	struct fx f;
	fx_init(&f, 8);
	struct testfe_buf b = { buf_alloc(&f, 8, 0), 8, false };
	CHECK(testfe_vring_add(f.vr, &b, 1, false, NULL) >= 0);
	CHECK_EQ(testfe_vring_kick(f.vr), 1);
	CHECK(testfe_vring_add(f.vr, &b, 1, false, NULL) >= 0);
	CHECK_EQ(testfe_vring_kick(f.vr), 1);
	/* both kicks coalesce in the eventfd */
	CHECK_OK(vshm_vq_consume_kick(f.vq));
	CHECK_EQ(vshm_vq_consume_kick(f.vq), -EAGAIN);
	fx_fini(&f);
}

/* ---- memory table changes and reset ---- */

TEST(memory_table_change_remaps)
{
	struct fx f;
	struct vshm_vq_elem *e;
	struct vshm_mem_region_desc d[2];
	int fds[2];

	fx_init(&f, 8);
	/* same layout, new mappings: the queue re-translates on its own */
	CHECK_OK(testfe_mem_table(f.fe, d, fds));
	CHECK_OK(vshm_mem_set_table(f.mem, d, fds, 2));
	roundtrip(&f);
	/* the rings' region disappears: the queue stops being usable */
	struct vshm_mem_region_desc r0;
	testfe_mem_region_desc(f.fe, 0, &r0);
	CHECK_OK(vshm_mem_remove_region(f.mem, &r0));
	CHECK_EQ(vshm_vq_pop(f.vq, &e), -ENODEV);
	CHECK(!vshm_vq_is_ready(f.vq));
	fx_fini(&f);
}

TEST(reset_forgets_everything)
{
	struct fx f;
	struct vshm_vq_elem *e;

	fx_init(&f, 8);
	vshm_vq_reset(f.vq);
	CHECK_EQ(vshm_vq_size(f.vq), 0);
	CHECK(!vshm_vq_is_ready(f.vq));
	CHECK(!vshm_vq_is_enabled(f.vq));
	CHECK(!vshm_vq_is_started(f.vq));
	CHECK_EQ(vshm_vq_get_kick_fd(f.vq), -1);
	CHECK_EQ(vshm_vq_consume_kick(f.vq), -EBADF);
	CHECK_EQ(vshm_vq_pop(f.vq, &e), -ENODEV);
	CHECK_EQ(vshm_vq_map(f.vq), -EINVAL);
	fx_fini(&f);
}

/*
 * A region whose VMM user address is misaligned (user_addr odd) turns a
 * ring address that is aligned as a VMM address into a misaligned host
 * pointer. Mapping must refuse it rather than access the ring fields as
 * misaligned integers (undefined behaviour a hostile front-end could pick).
 */
TEST(ring_in_misaligned_region_refused)
{
	struct vshm_mem *mem;
	struct vshm_vq *vq;
	int fd = memfd_create("vq-misaligned", MFD_CLOEXEC);
	struct vshm_mem_region_desc d = { .guest_addr = 0x10000,
		                          .size = 0x10000,
		                          .user_addr = 0x7f0000000001ull,
		                          .mmap_offset = 0 };

	CHECK(fd >= 0);
	CHECK_OK(ftruncate(fd, 0x10000));
	CHECK_OK(vshm_mem_new(4, &mem));
	CHECK_OK(vshm_mem_set_table(mem, &d, &fd, 1));
	CHECK_OK(vshm_vq_new(mem, 0, &vq));
	CHECK_OK(vshm_vq_set_num(vq, 16, VSHM_VQ_MAX_SIZE));
	/* 16/2/4-aligned as VMM addresses, 1 byte off as host addresses. */
	CHECK_OK(vshm_vq_set_addr(vq, 0x7f0000000010ull, 0x7f0000000200ull, 0x7f0000000400ull));
	CHECK_EQ(vshm_vq_map(vq), -EINVAL);
	vshm_vq_destroy(vq);
	vshm_mem_destroy(mem);
}
