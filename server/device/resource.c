/* SPDX-License-Identifier: MIT */
/*
 * resource.c - the resource table, guest backing and the 2D pixel copy.
 *
 * Backing entries are kept as the guest gave them (guest addresses) and
 * translated to host pointers only at transfer time, cached per memory
 * table generation: a SET_MEM_TABLE between two transfers therefore never
 * leaves us holding a pointer into an unmapped region.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gpu-internal.h"

#define INITIAL_BUCKETS 64u

static uint32_t hash_id(uint32_t id, uint32_t nbuckets)
{
	/* Linux hands out sequential ids; a multiplicative hash spreads them anyway. */
	return (uint32_t)((id * 2654435761u) >> 8) & (nbuckets - 1);
}

int vgs_res_table_init(struct vgs_gpu *gpu)
{
	gpu->buckets = calloc(INITIAL_BUCKETS, sizeof(*gpu->buckets));
	if (!gpu->buckets)
		return -ENOMEM;
	gpu->nbuckets = INITIAL_BUCKETS;
	return 0;
}

void vgs_res_table_fini(struct vgs_gpu *gpu)
{
	vgs_res_destroy_all(gpu);
	free(gpu->buckets);
	gpu->buckets = NULL;
	gpu->nbuckets = 0;
}

struct vgs_resource *vgs_res_lookup(struct vgs_gpu *gpu, uint32_t id)
{
	struct vgs_resource *r;

	if (id == 0 || !gpu->buckets)
		return NULL;
	for (r = gpu->buckets[hash_id(id, gpu->nbuckets)]; r; r = r->hnext)
		if (r->id == id)
			return r;
	return NULL;
}

/* Grow when chains would average more than two; failure just keeps chains longer. */
static void maybe_grow(struct vgs_gpu *gpu)
{
	uint32_t n = gpu->nbuckets * 2, i;
	struct vgs_resource **nb;

	if (gpu->stats.resources < gpu->nbuckets * 2 || n > (1u << 20))
		return;
	nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;
	for (i = 0; i < gpu->nbuckets; i++) {
		struct vgs_resource *r = gpu->buckets[i], *next;
		for (; r; r = next) {
			uint32_t h = hash_id(r->id, n);
			next = r->hnext;
			r->hnext = nb[h];
			nb[h] = r;
		}
	}
	free(gpu->buckets);
	gpu->buckets = nb;
	gpu->nbuckets = n;
}

/* Does @bytes more fit the host memory budget? Unused spare images go first if not. */
static bool budget_ok(struct vgs_gpu *gpu, uint64_t bytes)
{
	uint64_t max = gpu->cfg.limits.max_host_bytes;

	if (gpu->stats.host_bytes <= max && bytes <= max - gpu->stats.host_bytes)
		return true;
	vgs_pool_reclaim_all(gpu);
	return gpu->stats.host_bytes <= max && bytes <= max - gpu->stats.host_bytes;
}

uint32_t vgs_res_create(struct vgs_gpu *gpu, uint32_t id, uint32_t format, uint32_t width,
                        uint32_t height)
{
	const struct vgs_gpu_limits *lim = &gpu->cfg.limits;
	struct vgs_resource *res;
	uint64_t px, bytes;
	uint32_t h;
	int rc;

	if (id == 0 || vgs_res_lookup(gpu, id)) {
		vgs_warn(gpu, "gpu: create: bad or duplicate resource id %u", id);
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	}
	if (width == 0 || height == 0) {
		vgs_warn(gpu, "gpu: create: resource %u has size %ux%u", id, width, height);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	/*
	 * Memory budget before the dimension bound: a huge request is an
	 * allocation failure from the guest's point of view (a 16 GiB
	 * resource must read OUT_OF_MEMORY, not INVALID_PARAMETER).
	 */
	px = (uint64_t)width * height; /* both < 2^32: no overflow */
	bytes = px <= UINT64_MAX / 4 ? px * 4 : UINT64_MAX;
	if (!budget_ok(gpu, bytes)) {
		vgs_warn(gpu, "gpu: create: resource %u (%ux%u) exceeds the host memory budget", id,
		         width, height);
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	if (width > VGS_MAX_DIM || height > VGS_MAX_DIM) {
		vgs_warn(gpu, "gpu: create: resource %u is %ux%u, max %u", id, width, height,
		         VGS_MAX_DIM);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (gpu->stats.resources >= lim->max_resources) {
		vgs_warn(gpu, "gpu: create: resource limit (%u) reached", lim->max_resources);
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	res = calloc(1, sizeof(*res));
	if (!res)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	rc = vgs_image_new(width, height, format, &res->image);
	if (rc < 0) {
		free(res);
		if (rc == -EINVAL) {
			vgs_warn(gpu, "gpu: create: resource %u has unknown format %u", id, format);
			return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
		}
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	/* Charge the real (page-rounded) size so host_bytes matches what is mapped. */
	if (!budget_ok(gpu, res->image->size)) {
		vgs_image_unref(res->image);
		free(res);
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	res->id = id;
	res->format = format;
	res->width = width;
	res->height = height;
	res->host_bytes = res->image->size;
	gpu->stats.host_bytes += res->host_bytes;
	gpu->stats.resources++;
	h = hash_id(id, gpu->nbuckets);
	res->hnext = gpu->buckets[h];
	gpu->buckets[h] = res;
	maybe_grow(gpu);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static void free_iov_cache(struct vgs_resource *res)
{
	free(res->iov);
	free(res->iov_start);
	res->iov = NULL;
	res->iov_start = NULL;
	res->iov_num = res->iov_cap = 0;
	res->iov_valid = false;
}

void vgs_res_detach_backing(struct vgs_resource *res)
{
	free(res->entries);
	res->entries = NULL;
	res->nr_entries = 0;
	res->backing_bytes = 0;
	free_iov_cache(res);
}

void vgs_res_destroy(struct vgs_gpu *gpu, struct vgs_resource *res)
{
	struct vgs_resource **pp = &gpu->buckets[hash_id(res->id, gpu->nbuckets)];
	uint32_t i;

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == res) {
			*pp = res->hnext;
			break;
		}
	}
	/* A scanout showing the resource goes dark rather than pointing at freed memory. */
	for (i = 0; i < VGS_MAX_SCANOUTS; i++) {
		if (gpu->scanouts[i].resource == res) {
			gpu->scanouts[i].resource = NULL;
			vgs_scanout_blob_clear(gpu, &gpu->scanouts[i]);
			memset(&gpu->scanouts[i].rect, 0, sizeof(gpu->scanouts[i].rect));
			vgs_display_scanout(gpu, i);
		}
	}
	vgs_blob_release(gpu, res); /* unmaps a mapped blob first */
	gpu->stats.resources--;
	gpu->stats.host_bytes -= res->host_bytes;
	vgs_res_detach_backing(res);
	/*
	 * Sinks may still hold a reference while sending, consumers while they
	 * read a frame; images live until they drop it.
	 */
	vgs_pool_release(gpu, res);
	vgs_image_unref(res->image);
	free(res);
}

void vgs_res_destroy_all(struct vgs_gpu *gpu)
{
	uint32_t i;

	for (i = 0; i < gpu->nbuckets; i++)
		while (gpu->buckets[i])
			vgs_res_destroy(gpu, gpu->buckets[i]);
}

void vgs_res_insert(struct vgs_gpu *gpu, struct vgs_resource *res)
{
	uint32_t h = hash_id(res->id, gpu->nbuckets);

	res->hnext = gpu->buckets[h];
	gpu->buckets[h] = res;
	gpu->stats.resources++;
	gpu->stats.host_bytes += res->host_bytes;
	maybe_grow(gpu);
}

struct vshm_mem *vgs_gpu_mem(struct vgs_gpu *gpu)
{
	if (gpu->test_mem)
		return gpu->test_mem;
	return gpu->dev ? vshm_vu_dev_get_mem(gpu->dev) : NULL;
}

/* Every byte of [addr, addr+len) is guest memory; it may span adjacent regions. */
bool vgs_range_in_guest(const struct vshm_mem *mem, uint64_t addr, uint64_t len)
{
	struct iovec iov[8];
	int n;

	if (!mem || len == 0 || addr + len < addr)
		return false;
	n = vshm_mem_gpa_to_iov(mem, addr, len, iov, 8);
	if (n == -ENOBUFS) {
		/* Rare: more than 8 regions; check with a table-sized array. */
		struct iovec *big = calloc(VSHM_MEM_MAX_SLOTS, sizeof(*big));
		if (!big)
			return false;
		n = vshm_mem_gpa_to_iov(mem, addr, len, big, VSHM_MEM_MAX_SLOTS);
		free(big);
	}
	return n > 0;
}

uint32_t vgs_res_attach_backing(struct vgs_gpu *gpu, struct vgs_resource *res,
                                struct virtio_gpu_mem_entry *entries, uint32_t n)
{
	const struct vshm_mem *mem = vgs_gpu_mem(gpu);
	uint64_t total = 0, needed;
	uint32_t i;

	if (res->entries) {
		vgs_warn(gpu, "gpu: attach: resource %u already has backing", res->id);
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	for (i = 0; i < n; i++) {
		uint64_t addr = entries[i].addr, len = entries[i].length;
		if (!vgs_range_in_guest(mem, addr, len)) {
			vgs_warn(gpu,
			         "gpu: attach: resource %u entry %u (0x%llx+%llu) is not guest "
			         "memory",
			         res->id, i, (unsigned long long)addr, (unsigned long long)len);
			return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
		}
		total += len; /* n <= 2^32 entries of < 2^32 bytes: cannot overflow 64 bits */
	}
	/* A backing smaller than one full frame could never satisfy a full transfer. */
	needed = (uint64_t)res->image->stride * res->height;
	if (total < needed) {
		vgs_warn(gpu, "gpu: attach: resource %u backing %llu < %llu bytes", res->id,
		         (unsigned long long)total, (unsigned long long)needed);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	res->entries = entries;
	res->nr_entries = n;
	res->backing_bytes = total;
	res->iov_valid = false;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static int iov_push(struct vgs_resource *res, const struct iovec *v, uint64_t start)
{
	if (res->iov_num == res->iov_cap) {
		unsigned cap = res->iov_cap ? res->iov_cap * 2 : 16;
		struct iovec *ni = realloc(res->iov, cap * sizeof(*ni));
		uint64_t *ns;
		if (!ni)
			return -ENOMEM;
		res->iov = ni;
		ns = realloc(res->iov_start, cap * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		res->iov_start = ns;
		res->iov_cap = cap;
	}
	res->iov[res->iov_num] = *v;
	res->iov_start[res->iov_num] = start;
	res->iov_num++;
	return 0;
}

/* (Re)translate the backing with the current memory table. */
static int resolve_backing(struct vgs_resource *res, const struct vshm_mem *mem)
{
	uint64_t gen = vshm_mem_generation(mem), start = 0;
	struct iovec tmp[8], *big = NULL;
	int rc = 0;
	uint32_t i;

	if (res->iov_valid && res->iov_mem == mem && res->iov_gen == gen)
		return 0;
	res->iov_valid = false;
	res->iov_num = 0;
	for (i = 0; i < res->nr_entries && rc == 0; i++) {
		const struct virtio_gpu_mem_entry *e = &res->entries[i];
		struct iovec *v = tmp;
		int n = vshm_mem_gpa_to_iov(mem, e->addr, e->length, tmp, 8);
		if (n == -ENOBUFS) {
			/* Rare: the entry crosses more than 8 regions. */
			if (!big)
				big = calloc(VSHM_MEM_MAX_SLOTS, sizeof(*big));
			if (!big) {
				rc = -ENOMEM;
				break;
			}
			v = big;
			n = vshm_mem_gpa_to_iov(mem, e->addr, e->length, big, VSHM_MEM_MAX_SLOTS);
		}
		if (n <= 0) {
			rc = -EFAULT;
			break;
		}
		for (int k = 0; k < n && rc == 0; k++) {
			rc = iov_push(res, &v[k], start);
			start += v[k].iov_len;
		}
	}
	free(big);
	if (rc < 0)
		return rc;
	res->iov_mem = mem;
	res->iov_gen = gen;
	res->iov_valid = true;
	return 0;
}

/* Index of the iovec holding backing byte @off (binary search over starts). */
static unsigned iov_find(const struct vgs_resource *res, uint64_t off)
{
	unsigned lo = 0, hi = res->iov_num - 1;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo + 1) / 2;
		if (res->iov_start[mid] <= off)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* Copy @len backing bytes at @off to @dst; the caller checked the bounds. */
static void copy_from_backing(const struct vgs_resource *res, uint64_t off, uint8_t *dst,
                              uint64_t len)
{
	unsigned i = iov_find(res, off);

	while (len > 0 && i < res->iov_num) {
		uint64_t in = off - res->iov_start[i];
		uint64_t avail = res->iov[i].iov_len - in;
		uint64_t n = avail < len ? avail : len;
		memcpy(dst, (const uint8_t *)res->iov[i].iov_base + in, n);
		dst += n;
		off += n;
		len -= n;
		i++;
	}
}

bool vgs_rect_inside(const struct vgs_rect *r, uint32_t width, uint32_t height)
{
	/* 64-bit sums: x + width cannot wrap. */
	return (uint64_t)r->x + r->width <= width && (uint64_t)r->y + r->height <= height;
}

uint32_t vgs_res_transfer(struct vgs_gpu *gpu, struct vgs_resource *res, const struct vgs_rect *r,
                          uint64_t offset)
{
	const struct vshm_mem *mem = vgs_gpu_mem(gpu);
	struct vgs_image *img = res->image;
	uint64_t stride = img->stride, row_bytes = (uint64_t)r->width * img->bpp, last, y;
	bool switched;
	uint8_t *dst;

	if (!res->entries) {
		vgs_warn(gpu, "gpu: transfer: resource %u has no backing", res->id);
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	if (!vgs_rect_inside(r, res->width, res->height)) {
		vgs_warn(gpu, "gpu: transfer: rect %u,%u %ux%u outside resource %u (%ux%u)", r->x,
		         r->y, r->width, r->height, res->id, res->width, res->height);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (r->width == 0 || r->height == 0)
		return VIRTIO_GPU_RESP_OK_NODATA;
	/*
	 * Source rows are @stride apart starting at @offset: the last byte read
	 * is offset + stride*(h-1) + row_bytes. Every term < 2^40, only offset
	 * is guest-sized, so compare by subtraction.
	 */
	last = stride * (r->height - 1) + row_bytes;
	if (offset > res->backing_bytes || last > res->backing_bytes - offset) {
		vgs_warn(gpu, "gpu: transfer: offset %llu + %llu bytes past backing of resource %u",
		         (unsigned long long)offset, (unsigned long long)last, res->id);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (!mem || resolve_backing(res, mem) < 0) {
		res->iov_valid = false;
		vgs_warn(gpu, "gpu: transfer: backing of resource %u left guest memory", res->id);
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	/* A consumer reading the current image keeps its frame: write a spare instead. */
	switched = vgs_pool_prepare_write(gpu, res, r);
	img = res->image; /* same geometry: every image of a resource has its stride */
	dst = img->data + (uint64_t)r->y * stride + (uint64_t)r->x * img->bpp;
	if (r->x == 0 && r->width == res->width) {
		/* Whole rows: one contiguous run in both source and destination. */
		copy_from_backing(res, offset, dst, last);
	} else {
		for (y = 0; y < r->height; y++)
			copy_from_backing(res, offset + y * stride, dst + y * stride, row_bytes);
	}
	gpu->stats.transfer_bytes += row_bytes * r->height;
	if (switched)
		vgs_pool_changed(gpu, res); /* after the write: sinks may read at once */
	return VIRTIO_GPU_RESP_OK_NODATA;
}
