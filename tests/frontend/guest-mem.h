/* SPDX-License-Identifier: MIT */
/*
 * guest-mem.h - fake guest memory for tests: a few memfd regions mapped in
 * this process, laid out at configurable guest-physical addresses, with a
 * bump allocator. The front-end's own mapping address of each region is
 * used as the region's "user address", as a VMM would do.
 *
 * Everything here is test code: failures return -errno, nothing aborts.
 */
#ifndef VSHM_TESTFE_GUEST_MEM_H
#define VSHM_TESTFE_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vshm/memory.h>

#define TESTFE_MEM_MAX_REGIONS 16

struct testfe_mem_config {
	unsigned nregions;                            /* 1..TESTFE_MEM_MAX_REGIONS; 0 = 1 */
	uint64_t region_size[TESTFE_MEM_MAX_REGIONS]; /* 0 = 1 MiB; page multiple */
	uint64_t base_gpa;                            /* guest address of region 0 */
	uint64_t gap;         /* bytes between regions' guest ranges (0 = adjacent) */
	uint64_t mmap_offset; /* where each region starts inside its memfd */
};

struct testfe_mem;

int testfe_mem_new(const struct testfe_mem_config *cfg, struct testfe_mem **out);
void testfe_mem_destroy(struct testfe_mem *m);

unsigned testfe_mem_num_regions(const struct testfe_mem *m);
/* The vhost-user description of region @i (SET_MEM_TABLE / ADD_MEM_REG). */
void testfe_mem_region_desc(const struct testfe_mem *m, unsigned i,
                            struct vshm_mem_region_desc *out);
/* The region's memfd, BORROWED (owned by @m). */
int testfe_mem_region_fd(const struct testfe_mem *m, unsigned i);
/* A new dup of the region's memfd, for APIs that consume fds; -errno on failure. */
int testfe_mem_dup_fd(const struct testfe_mem *m, unsigned i);
/* Fill @descs/@fds (n = num_regions) with fresh dups; 0 or -errno (nothing leaked). */
int testfe_mem_table(const struct testfe_mem *m, struct vshm_mem_region_desc *descs, int *fds);

/* Driver-side view: host pointer of [gpa, gpa+len) inside ONE region, or NULL. */
void *testfe_mem_ptr(const struct testfe_mem *m, uint64_t gpa, uint64_t len);
/* The same for a VMM user address. */
uint64_t testfe_mem_gpa_to_uva(const struct testfe_mem *m, uint64_t gpa);
/* Copy across region boundaries; 0 or -EFAULT. */
int testfe_mem_write(struct testfe_mem *m, uint64_t gpa, const void *buf, size_t len);
int testfe_mem_read(const struct testfe_mem *m, uint64_t gpa, void *buf, size_t len);

/*
 * Bump allocator: @len bytes aligned to @align (power of two; 0 = 16) from
 * the first region, moving to the next region when the current one is full.
 * Returns 0 and the guest address (and host pointer if @host) or -ENOMEM.
 * Memory is zeroed (memfds start zeroed and nothing is ever freed).
 */
int testfe_mem_alloc(struct testfe_mem *m, uint64_t len, uint64_t align, uint64_t *gpa,
                     void **host);
/* Allocate from region @region only. */
int testfe_mem_alloc_in(struct testfe_mem *m, unsigned region, uint64_t len, uint64_t align,
                        uint64_t *gpa, void **host);

#endif
