/* SPDX-License-Identifier: MIT */
/*
 * fuzz-vq-chain.c - the split-ring device side against arbitrary guest memory.
 *
 * Input: a 4-byte header, then the initial contents of guest memory from
 * guest-physical 0 on. The descriptor table sits at gpa 0, the avail ring at
 * 0x800 and the used ring at 0x1000, so the input controls every ring field,
 * every descriptor and the data they point to. Guest memory is three regions
 * of one memfd: two adjacent ones (chains may cross between them) and one
 * behind a gap with a non-page-aligned file offset.
 *
 * Header: [0] bits 0-2 log2(queue size), bit 3 EVENT_IDX, bit 4 INDIRECT,
 *         bit 5 free instead of push; [1..2] starting avail index (LE);
 *         [3] how many bytes the device claims to write per element.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vshm/log.h>
#include <vshm/memory.h>
#include <vshm/virtqueue.h>

#include "virtqueue-internal.h"

#define DESC_GPA  0x0
#define AVAIL_GPA 0x800
#define USED_GPA  0x1000
#define UVA_BASE  0x7f0000000000ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct vshm_mem_region_desc regions[] = {
	{ .guest_addr = 0x0, .size = 0x4000, .user_addr = UVA_BASE, .mmap_offset = 0 },
	{ .guest_addr = 0x4000,
	  .size = 0x4000,
	  .user_addr = UVA_BASE + 0x100000,
	  .mmap_offset = 0x4000 },
	{ .guest_addr = 0x10000,
	  .size = 0x1800,
	  .user_addr = UVA_BASE + 0x200000,
	  .mmap_offset = 0x8800 },
};

static struct vshm_mem *mem;
static int call_fd = -1;

static void quiet(enum vshm_log_level level, const char *msg, void *d)
{
}

/* Built once: per-input memfd and mmap churn would dominate the run time. */
static void setup(void)
{
	int fds[3], fd;

	vshm_log_set_handler(quiet, NULL);
	fd = memfd_create("fuzz-guest", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 0xa000) < 0 || vshm_mem_new(4, &mem) < 0)
		abort();
	fds[0] = fd;
	fds[1] = dup(fd);
	fds[2] = dup(fd);
	if (vshm_mem_set_table(mem, regions, fds, 3) < 0)
		abort();
	call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (call_fd < 0)
		abort();
}

static void load_guest(const uint8_t *data, size_t size)
{
	struct iovec iov[4];
	uint64_t copied = 0;

	for (unsigned i = 0; i < 3; i++)
		memset(vshm_mem_gpa_to_va(mem, regions[i].guest_addr, regions[i].size), 0,
		       regions[i].size);
	/* Fill the two adjacent regions from gpa 0, then the one behind the gap. */
	if (size > 0x8000) {
		copied = size - 0x8000 > 0x1800 ? 0x1800 : size - 0x8000;
		memcpy(vshm_mem_gpa_to_va(mem, 0x10000, copied), data + 0x8000, copied);
		size = 0x8000;
	}
	if (size > 0) {
		int n = vshm_mem_gpa_to_iov(mem, 0, size, iov, 4);
		if (n > 0)
			vshm_iov_from_buf(iov, (unsigned)n, 0, data, size);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vshm_vq *vq;
	struct vshm_vq_elem *e;
	uint8_t scratch[256];
	unsigned num, budget;
	uint64_t v;

	if (!mem)
		setup();
	if (size < 4)
		return 0;
	num = 1u << (data[0] & 7);
	struct vshm_vq_features f = { .event_idx = data[0] & 8, .indirect = data[0] & 16 };
	bool drop = data[0] & 32;
	uint16_t base = (uint16_t)(data[1] | data[2] << 8);
	uint32_t written = data[3];
	load_guest(data + 4, size - 4);

	if (vshm_vq_new(mem, 0, &vq) < 0)
		return 0;
	vshm_vq_set_features(vq, &f);
	if (vshm_vq_set_num(vq, num, VSHM_VQ_MAX_SIZE) < 0 ||
	    vshm_vq_set_addr(vq, UVA_BASE + DESC_GPA, UVA_BASE + AVAIL_GPA, UVA_BASE + USED_GPA) <
	            0)
		abort(); /* our own constants: a failure here is a harness bug */
	vshm_vq_set_base(vq, base);
	if (vshm_vq_map(vq) < 0)
		abort();
	vshm_vq_set_call_fd(vq, dup(call_fd));
	vshm_vq_set_enabled(vq, true);
	vshm_vq_set_started(vq, true);

	/*
	 * Device writes can land in the rings themselves (the guest may point a
	 * buffer at them), so "until empty" alone might not end; cap the loop.
	 */
	for (budget = 2 * num + 4; budget > 0; budget--) {
		int r = vshm_vq_pop(vq, &e);
		if (r < 0)
			break;
		vshm_iov_to_buf(e->out_sg, e->out_num, 0, scratch, sizeof(scratch));
		memset(scratch, 0x5a, sizeof(scratch));
		vshm_iov_from_buf(e->in_sg, e->in_num, 0, scratch,
		                  written < sizeof(scratch) ? written : sizeof(scratch));
		if (drop && (budget & 1))
			vshm_vq_elem_free(e);
		else
			vshm_vq_push(vq, e, written);
		if (budget % 3 == 0)
			vshm_vq_notify(vq);
	}
	vshm_vq_notify(vq);
	if (read(call_fd, &v, sizeof(v)) < 0) {
		/* nothing was signalled */
	}
	vshm_vq_destroy(vq);
	return 0;
}
