/* SPDX-License-Identifier: MIT */
/* guest-mem.c - memfd-backed fake guest memory for the test front-end. */
#include "guest-mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DEFAULT_REGION_SIZE (1u << 20)

struct fe_region {
	uint64_t gpa, size, mmap_offset;
	uint8_t *host; /* first byte of the region */
	void *map;
	size_t map_len;
	int fd;
	uint64_t bump; /* bytes handed out */
};

struct testfe_mem {
	unsigned n;
	unsigned cur; /* region the bump allocator is using */
	struct fe_region r[TESTFE_MEM_MAX_REGIONS];
};

static int region_create(struct fe_region *r, uint64_t gpa, uint64_t size, uint64_t off)
{
	r->fd = memfd_create("vshm-test-guest", MFD_CLOEXEC);
	if (r->fd < 0)
		return -errno;
	r->map_len = (size_t)(off + size);
	if (ftruncate(r->fd, (off_t)r->map_len) < 0)
		return -errno;
	/* Map from offset 0 so any (even unaligned) mmap_offset works. */
	r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (r->map == MAP_FAILED) {
		r->map = NULL;
		return -errno;
	}
	r->host = (uint8_t *)r->map + off;
	r->gpa = gpa;
	r->size = size;
	r->mmap_offset = off;
	return 0;
}

void testfe_mem_destroy(struct testfe_mem *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < TESTFE_MEM_MAX_REGIONS; i++) {
		if (m->r[i].map)
			munmap(m->r[i].map, m->r[i].map_len);
		if (m->r[i].fd >= 0)
			close(m->r[i].fd);
	}
	free(m);
}

int testfe_mem_new(const struct testfe_mem_config *cfg, struct testfe_mem **out)
{
	struct testfe_mem *m;
	unsigned n = cfg && cfg->nregions ? cfg->nregions : 1;
	uint64_t gpa = cfg ? cfg->base_gpa : 0;
	int ret;

	if (n > TESTFE_MEM_MAX_REGIONS)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	for (unsigned i = 0; i < TESTFE_MEM_MAX_REGIONS; i++)
		m->r[i].fd = -1;
	m->n = n;
	for (unsigned i = 0; i < n; i++) {
		uint64_t size =
		        cfg && cfg->region_size[i] ? cfg->region_size[i] : DEFAULT_REGION_SIZE;
		ret = region_create(&m->r[i], gpa, size, cfg ? cfg->mmap_offset : 0);
		if (ret < 0) {
			testfe_mem_destroy(m);
			return ret;
		}
		gpa += size + (cfg ? cfg->gap : 0);
	}
	*out = m;
	return 0;
}

unsigned testfe_mem_num_regions(const struct testfe_mem *m)
{
	return m->n;
}

void testfe_mem_region_desc(const struct testfe_mem *m, unsigned i,
                            struct vshm_mem_region_desc *out)
{
	out->guest_addr = m->r[i].gpa;
	out->size = m->r[i].size;
	out->user_addr = (uint64_t)(uintptr_t)m->r[i].host;
	out->mmap_offset = m->r[i].mmap_offset;
}

int testfe_mem_region_fd(const struct testfe_mem *m, unsigned i)
{
	return i < m->n ? m->r[i].fd : -1;
}

int testfe_mem_dup_fd(const struct testfe_mem *m, unsigned i)
{
	int fd;

	if (i >= m->n)
		return -EINVAL;
	fd = fcntl(m->r[i].fd, F_DUPFD_CLOEXEC, 0);
	return fd < 0 ? -errno : fd;
}

int testfe_mem_table(const struct testfe_mem *m, struct vshm_mem_region_desc *descs, int *fds)
{
	for (unsigned i = 0; i < m->n; i++) {
		testfe_mem_region_desc(m, i, &descs[i]);
		fds[i] = testfe_mem_dup_fd(m, i);
		if (fds[i] < 0) {
			int ret = fds[i];
			while (i-- > 0)
				close(fds[i]);
			return ret;
		}
	}
	return 0;
}

static const struct fe_region *find(const struct testfe_mem *m, uint64_t gpa)
{
	for (unsigned i = 0; i < m->n; i++)
		if (gpa >= m->r[i].gpa && gpa - m->r[i].gpa < m->r[i].size)
			return &m->r[i];
	return NULL;
}

void *testfe_mem_ptr(const struct testfe_mem *m, uint64_t gpa, uint64_t len)
{
	const struct fe_region *r = find(m, gpa);

	if (!r || len > r->size - (gpa - r->gpa))
		return NULL;
	return r->host + (gpa - r->gpa);
}

uint64_t testfe_mem_gpa_to_uva(const struct testfe_mem *m, uint64_t gpa)
{
	const struct fe_region *r = find(m, gpa);
	return r ? (uint64_t)(uintptr_t)(r->host + (gpa - r->gpa)) : 0;
}

static int copy(const struct testfe_mem *m, uint64_t gpa, uint8_t *buf, size_t len, bool to_guest)
{
	while (len > 0) {
		const struct fe_region *r = find(m, gpa);
		uint64_t off, chunk;

		if (!r)
			return -EFAULT;
		off = gpa - r->gpa;
		chunk = r->size - off < len ? r->size - off : len;
		if (to_guest)
			memcpy(r->host + off, buf, chunk);
		else
			memcpy(buf, r->host + off, chunk);
		buf += chunk;
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}

int testfe_mem_write(struct testfe_mem *m, uint64_t gpa, const void *buf, size_t len)
{
	return copy(m, gpa, (uint8_t *)(uintptr_t)buf, len, true);
}

int testfe_mem_read(const struct testfe_mem *m, uint64_t gpa, void *buf, size_t len)
{
	return copy(m, gpa, buf, len, false);
}

int testfe_mem_alloc_in(struct testfe_mem *m, unsigned region, uint64_t len, uint64_t align,
                        uint64_t *gpa, void **host)
{
	struct fe_region *r;
	uint64_t start;

	if (region >= m->n || len == 0)
		return -EINVAL;
	if (align == 0)
		align = 16;
	if (align & (align - 1))
		return -EINVAL;
	r = &m->r[region];
	/* Align the guest address, which is what rings care about. */
	start = ((r->gpa + r->bump + align - 1) & ~(align - 1)) - r->gpa;
	if (start > r->size || len > r->size - start)
		return -ENOMEM;
	r->bump = start + len;
	*gpa = r->gpa + start;
	if (host)
		*host = r->host + start;
	return 0;
}

int testfe_mem_alloc(struct testfe_mem *m, uint64_t len, uint64_t align, uint64_t *gpa, void **host)
{
	for (; m->cur < m->n; m->cur++)
		if (testfe_mem_alloc_in(m, m->cur, len, align, gpa, host) == 0)
			return 0;
	m->cur = m->n - 1; /* stay on the last region for the next try */
	return -ENOMEM;
}
