/* SPDX-License-Identifier: MIT */
/*
 * vshm/memory.h - the guest memory table of a vhost-user device.
 *
 * Each region is a file (usually a memfd) shared by the VMM, mapped here
 * with MAP_SHARED. Addresses come from the guest or the VMM and are hostile:
 * every translation checks the whole range with overflow-safe 64-bit
 * arithmetic and never returns a pointer that is not fully inside one
 * mapping.
 *
 * Mappings are replaced, never mutated: a table change bumps the
 * generation, and pointers obtained before it must not be used after it.
 */
#ifndef VSHM_MEMORY_H
#define VSHM_MEMORY_H

#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The most regions a table can ever hold (vhost-user MAX_MEM_SLOTS range). */
#define VSHM_MEM_MAX_SLOTS 509

struct vshm_mem;

struct vshm_mem_region_desc {
	uint64_t guest_addr;  /* guest-physical start */
	uint64_t size;        /* bytes */
	uint64_t user_addr;   /* the VMM's virtual address of the start */
	uint64_t mmap_offset; /* offset of the start inside the fd */
};

/* @max_slots in 1..VSHM_MEM_MAX_SLOTS. Returns 0 or -errno. */
int vshm_mem_new(unsigned max_slots, struct vshm_mem **out);
/* Unmaps and closes everything. NULL ok. */
void vshm_mem_destroy(struct vshm_mem *m);

unsigned vshm_mem_max_slots(const struct vshm_mem *m);
unsigned vshm_mem_num_regions(const struct vshm_mem *m);
/* Increases on every successful table change. */
uint64_t vshm_mem_generation(const struct vshm_mem *m);

/*
 * Replace the whole table (SET_MEM_TABLE). The fds are ALWAYS consumed:
 * kept by the table on success, closed on failure. On failure the old table
 * stays intact. -EINVAL: zero size, wrap-around, overlapping guest ranges,
 * more than max slots; -EFAULT/-ENOMEM/-EBADF: the fd cannot be mapped at
 * mmap_offset + size (a region smaller than declared is refused here).
 */
int vshm_mem_set_table(struct vshm_mem *m, const struct vshm_mem_region_desc *regions,
                       const int *fds, unsigned n);

/* Add one region (ADD_MEM_REG). @fd is ALWAYS consumed. -ENOSPC when full. */
int vshm_mem_add_region(struct vshm_mem *m, const struct vshm_mem_region_desc *r, int fd);

/* Remove the region matching guest_addr and size (REM_MEM_REG). -ENOENT if none. */
int vshm_mem_remove_region(struct vshm_mem *m, const struct vshm_mem_region_desc *r);

/* Drop every region. */
void vshm_mem_clear(struct vshm_mem *m);

/* Pointer to [gpa, gpa+len) if it lies inside ONE region, else NULL. len 0 is refused. */
void *vshm_mem_gpa_to_va(const struct vshm_mem *m, uint64_t gpa, uint64_t len);

/* The same for VMM user virtual addresses (vring addresses). */
void *vshm_mem_uva_to_va(const struct vshm_mem *m, uint64_t uva, uint64_t len);

/* Translate a VMM user address to guest-physical. Returns 0 or -EFAULT. */
int vshm_mem_uva_to_gpa(const struct vshm_mem *m, uint64_t uva, uint64_t *gpa);

/*
 * Scatter [gpa, gpa+len) into at most @max iovecs (a range may cross
 * adjacent regions). Returns the number of iovecs used (>= 1), -EFAULT when
 * any byte is outside guest memory, -ENOBUFS when @max is too small, or
 * -EINVAL for len 0.
 */
int vshm_mem_gpa_to_iov(const struct vshm_mem *m, uint64_t gpa, uint64_t len, struct iovec *iov,
                        unsigned max);

/*
 * Where [gpa, gpa+len) lives in its backing file, for zero-copy sharing
 * (udmabuf, memfd scanouts). The range must lie in one region.
 * *fd is BORROWED: it stays owned by the table and is valid until the next
 * table change (see generation); dup() it to keep it.
 * Returns 0 or -EFAULT.
 */
int vshm_mem_gpa_to_fd(const struct vshm_mem *m, uint64_t gpa, uint64_t len, int *fd,
                       uint64_t *fd_offset);

#ifdef __cplusplus
}
#endif

#endif
