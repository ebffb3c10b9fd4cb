/* SPDX-License-Identifier: MIT */
/*
 * memory.c - the guest memory table: one MAP_SHARED mapping per region.
 *
 * Regions are kept sorted by guest-physical address so gpa lookups are a
 * binary search; the lookup functions take a const table and keep no cache,
 * so concurrent readers need no locking while the table is not changed.
 * uva lookups only happen when rings are (re)mapped, so they scan linearly.
 *
 * A table change builds the new array completely before touching the old
 * one, which keeps the "old table stays intact on failure" promise simple.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vshm/log.h>
#include <vshm/memory.h>

#include "util.h"

struct mem_region {
	uint64_t gpa, size, uva, mmap_offset;
	uint8_t *host;  /* first byte of the region in our mapping */
	void *map_base; /* what mmap returned (aligned down) */
	size_t map_len;
	int fd;
};

struct vshm_mem {
	unsigned max_slots;
	unsigned n;
	uint64_t generation;
	struct mem_region *regions; /* n entries, sorted by gpa */
	struct vshm_ratelimit rl;   /* the VMM controls what we log */
};

VSHM_EXPORT int vshm_mem_new(unsigned max_slots, struct vshm_mem **out)
{
	struct vshm_mem *m;

	if (!out || max_slots == 0 || max_slots > VSHM_MEM_MAX_SLOTS)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->regions = calloc(max_slots, sizeof(*m->regions));
	if (!m->regions) {
		free(m);
		return -ENOMEM;
	}
	m->max_slots = max_slots;
	m->rl = (struct vshm_ratelimit)VSHM_RATELIMIT_INIT(1000, 10);
	*out = m;
	return 0;
}

static void region_release(struct mem_region *r)
{
	if (r->map_base)
		munmap(r->map_base, r->map_len);
	vshm_close_fd(r->fd);
	r->map_base = NULL;
	r->host = NULL;
	r->fd = -1;
}

static void regions_release(struct mem_region *regions, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		region_release(&regions[i]);
}

VSHM_EXPORT void vshm_mem_destroy(struct vshm_mem *m)
{
	if (!m)
		return;
	regions_release(m->regions, m->n);
	free(m->regions);
	free(m);
}

VSHM_EXPORT unsigned vshm_mem_max_slots(const struct vshm_mem *m)
{
	return m->max_slots;
}

VSHM_EXPORT unsigned vshm_mem_num_regions(const struct vshm_mem *m)
{
	return m->n;
}

VSHM_EXPORT uint64_t vshm_mem_generation(const struct vshm_mem *m)
{
	return m->generation;
}

/* Ranges that could never be mapped or would wrap are refused up front. */
static int desc_check(const struct vshm_mem_region_desc *d)
{
	uint64_t end;

	if (d->size == 0 || d->size > SIZE_MAX)
		return -EINVAL;
	if (vshm_add_overflows_u64(d->guest_addr, d->size, &end) ||
	    vshm_add_overflows_u64(d->user_addr, d->size, &end) ||
	    vshm_add_overflows_u64(d->mmap_offset, d->size, &end))
		return -EINVAL;
	return 0;
}

/* Half-open ranges [a, a+as) and [b, b+bs); sizes are non-zero and do not wrap. */
static bool ranges_overlap(uint64_t a, uint64_t as, uint64_t b, uint64_t bs)
{
	return a < b + bs && b < a + as;
}

/*
 * Map @d from @fd. The fd's size is checked first: touching a MAP_SHARED
 * page past the end of a file raises SIGBUS, which a VMM could otherwise
 * trigger at will by declaring a region larger than its file. (A VMM that
 * shrinks the file later can still do that; memfd seals are its business.)
 */
static int region_map(struct mem_region *r, const struct vshm_mem_region_desc *d, int fd)
{
	struct stat st;
	uint64_t align, aligned_off, delta, len, end;
	long page = sysconf(_SC_PAGESIZE);
	void *p;

	if (fd < 0)
		return -EBADF;
	if (fstat(fd, &st) < 0)
		return -errno;
	/* st_size only means something for regular files (memfd, shm, hugetlbfs). */
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	end = d->mmap_offset + d->size; /* no wrap: desc_check */
	if (st.st_size < 0 || (uint64_t)st.st_size < end)
		return -EFAULT;

	/*
	 * mmap needs a page-aligned offset; hugetlbfs needs a huge-page-aligned
	 * one, which st_blksize reports there. Map from the aligned-down offset
	 * and point host at the region's first byte inside that mapping.
	 */
	align = page > 0 ? (uint64_t)page : 4096;
	if (st.st_blksize > 0 && ((uint64_t)st.st_blksize & ((uint64_t)st.st_blksize - 1)) == 0 &&
	    (uint64_t)st.st_blksize > align)
		align = (uint64_t)st.st_blksize;
	aligned_off = d->mmap_offset & ~(align - 1);
	delta = d->mmap_offset - aligned_off;
	if (vshm_add_overflows_u64(d->size, delta, &len) || len > SIZE_MAX - align)
		return -ENOMEM;
	len = (len + align - 1) & ~(align - 1);
	if ((uint64_t)(off_t)aligned_off != aligned_off || (off_t)aligned_off < 0)
		return -EFAULT;

	p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd,
	         (off_t)aligned_off);
	if (p == MAP_FAILED)
		return -errno;

	r->gpa = d->guest_addr;
	r->size = d->size;
	r->uva = d->user_addr;
	r->mmap_offset = d->mmap_offset;
	r->map_base = p;
	r->map_len = (size_t)len;
	r->host = (uint8_t *)p + delta;
	r->fd = fd;
	return 0;
}

static int region_cmp(const void *a, const void *b)
{
	const struct mem_region *ra = a, *rb = b;
	return ra->gpa < rb->gpa ? -1 : ra->gpa > rb->gpa;
}

/* Sorted input: overlap can only happen between neighbours. */
static bool sorted_regions_overlap(const struct mem_region *r, unsigned n)
{
	for (unsigned i = 1; i < n; i++)
		if (ranges_overlap(r[i - 1].gpa, r[i - 1].size, r[i].gpa, r[i].size))
			return true;
	return false;
}

static void close_fds_once(const int *fds, unsigned n)
{
	/* A caller may pass one fd number twice; close each number once. */
	for (unsigned i = 0; i < n; i++) {
		bool seen = false;
		for (unsigned j = 0; j < i && !seen; j++)
			seen = fds[j] == fds[i];
		if (!seen)
			vshm_close_fd(fds[i]);
	}
}

VSHM_EXPORT int vshm_mem_set_table(struct vshm_mem *m, const struct vshm_mem_region_desc *regions,
                                   const int *fds, unsigned n)
{
	struct mem_region *nr = NULL;
	unsigned mapped = 0, i;
	int ret = 0;

	if (n > m->max_slots || (n > 0 && (!regions || !fds))) {
		if (fds)
			close_fds_once(fds, n);
		return -EINVAL;
	}
	for (i = 0; i < n && ret == 0; i++)
		ret = desc_check(&regions[i]);
	if (ret < 0)
		goto fail_fds;

	nr = calloc(m->max_slots, sizeof(*nr));
	if (!nr) {
		ret = -ENOMEM;
		goto fail_fds;
	}
	for (i = 0; i < n; i++) {
		int fd = fds[i];
		/* Each region owns its fd; a repeated fd number gets its own dup. */
		for (unsigned j = 0; j < i; j++) {
			if (fds[j] == fds[i]) {
				fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
				if (fd < 0) {
					ret = -errno;
					goto fail_mapped;
				}
				break;
			}
		}
		ret = region_map(&nr[i], &regions[i], fd);
		if (ret < 0) {
			if (fd != fds[i])
				vshm_close_fd(fd);
			goto fail_mapped;
		}
		mapped++;
	}
	qsort(nr, n, sizeof(*nr), region_cmp);
	if (sorted_regions_overlap(nr, n)) {
		ret = -EINVAL;
		/* every fd is now owned by a mapped region */
		regions_release(nr, n);
		free(nr);
		return ret;
	}

	regions_release(m->regions, m->n);
	free(m->regions);
	m->regions = nr;
	m->n = n;
	m->generation++;
	return 0;

fail_mapped:
	/* Regions [0, mapped) own their fds (original or dup); close the rest once. */
	{
		int fail_ret = ret;
		for (i = 0; i < mapped; i++) {
			bool orig = nr[i].fd == fds[i];
			if (orig)
				nr[i].fd = -1; /* closed below with the caller's list */
			region_release(&nr[i]);
		}
		close_fds_once(fds, n);
		free(nr);
		vshm_log_ratelimited(&m->rl, VSHM_LOG_WARN, "memory table refused: %s",
		                     strerror(-fail_ret));
		return fail_ret;
	}
fail_fds:
	close_fds_once(fds, n);
	free(nr);
	vshm_log_ratelimited(&m->rl, VSHM_LOG_WARN, "memory table refused: %s", strerror(-ret));
	return ret;
}

VSHM_EXPORT int vshm_mem_add_region(struct vshm_mem *m, const struct vshm_mem_region_desc *r,
                                    int fd)
{
	struct mem_region reg;
	unsigned pos;
	int ret;

	if (!r) {
		vshm_close_fd(fd);
		return -EINVAL;
	}
	if (m->n >= m->max_slots) {
		vshm_close_fd(fd);
		return -ENOSPC;
	}
	ret = desc_check(r);
	if (ret == 0) {
		for (unsigned i = 0; i < m->n; i++) {
			if (ranges_overlap(m->regions[i].gpa, m->regions[i].size, r->guest_addr,
			                   r->size)) {
				ret = -EINVAL;
				break;
			}
		}
	}
	if (ret == 0)
		ret = region_map(&reg, r, fd);
	if (ret < 0) {
		vshm_close_fd(fd);
		vshm_log_ratelimited(&m->rl, VSHM_LOG_WARN, "memory region refused: %s",
		                     strerror(-ret));
		return ret;
	}
	for (pos = 0; pos < m->n && m->regions[pos].gpa < reg.gpa; pos++)
		;
	memmove(&m->regions[pos + 1], &m->regions[pos], (m->n - pos) * sizeof(reg));
	m->regions[pos] = reg;
	m->n++;
	m->generation++;
	return 0;
}

VSHM_EXPORT int vshm_mem_remove_region(struct vshm_mem *m, const struct vshm_mem_region_desc *r)
{
	if (!r)
		return -EINVAL;
	for (unsigned i = 0; i < m->n; i++) {
		if (m->regions[i].gpa == r->guest_addr && m->regions[i].size == r->size) {
			region_release(&m->regions[i]);
			memmove(&m->regions[i], &m->regions[i + 1],
			        (m->n - i - 1) * sizeof(m->regions[0]));
			m->n--;
			m->generation++;
			return 0;
		}
	}
	return -ENOENT;
}

VSHM_EXPORT void vshm_mem_clear(struct vshm_mem *m)
{
	regions_release(m->regions, m->n);
	m->n = 0;
	m->generation++;
}

/* The region containing byte @gpa, or NULL. */
static const struct mem_region *find_gpa(const struct vshm_mem *m, uint64_t gpa)
{
	unsigned lo = 0, hi = m->n;

	/* Last region whose start is <= gpa. */
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (m->regions[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct mem_region *r = &m->regions[lo - 1];
	return gpa - r->gpa < r->size ? r : NULL;
}

VSHM_EXPORT void *vshm_mem_gpa_to_va(const struct vshm_mem *m, uint64_t gpa, uint64_t len)
{
	const struct mem_region *r = find_gpa(m, gpa);

	if (!r || !vshm_range_within(gpa, len, r->gpa, r->size))
		return NULL;
	return r->host + (gpa - r->gpa);
}

static const struct mem_region *find_uva(const struct vshm_mem *m, uint64_t uva, uint64_t len)
{
	for (unsigned i = 0; i < m->n; i++)
		if (vshm_range_within(uva, len, m->regions[i].uva, m->regions[i].size))
			return &m->regions[i];
	return NULL;
}

VSHM_EXPORT void *vshm_mem_uva_to_va(const struct vshm_mem *m, uint64_t uva, uint64_t len)
{
	const struct mem_region *r = find_uva(m, uva, len);
	return r ? r->host + (uva - r->uva) : NULL;
}

VSHM_EXPORT int vshm_mem_uva_to_gpa(const struct vshm_mem *m, uint64_t uva, uint64_t *gpa)
{
	const struct mem_region *r = find_uva(m, uva, 1);

	if (!r)
		return -EFAULT;
	*gpa = r->gpa + (uva - r->uva);
	return 0;
}

VSHM_EXPORT int vshm_mem_gpa_to_iov(const struct vshm_mem *m, uint64_t gpa, uint64_t len,
                                    struct iovec *iov, unsigned max)
{
	uint64_t end;
	unsigned n = 0;

	if (len == 0)
		return -EINVAL;
	if (vshm_add_overflows_u64(gpa, len, &end))
		return -EFAULT;
	while (gpa < end) {
		const struct mem_region *r = find_gpa(m, gpa);
		uint64_t off, chunk;

		if (!r)
			return -EFAULT;
		if (n == max)
			return -ENOBUFS;
		off = gpa - r->gpa;
		chunk = r->size - off;
		if (chunk > end - gpa)
			chunk = end - gpa;
		iov[n].iov_base = r->host + off;
		iov[n].iov_len = (size_t)chunk;
		n++;
		gpa += chunk;
	}
	return (int)n;
}

VSHM_EXPORT int vshm_mem_gpa_to_fd(const struct vshm_mem *m, uint64_t gpa, uint64_t len, int *fd,
                                   uint64_t *fd_offset)
{
	const struct mem_region *r = find_gpa(m, gpa);

	if (!r || !vshm_range_within(gpa, len, r->gpa, r->size))
		return -EFAULT;
	*fd = r->fd;
	*fd_offset = r->mmap_offset + (gpa - r->gpa);
	return 0;
}
