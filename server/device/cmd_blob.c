/* SPDX-License-Identifier: MIT */
/*
 * cmd_blob.c - RESOURCE_CREATE_BLOB, RESOURCE_MAP_BLOB, RESOURCE_UNMAP_BLOB.
 *
 * Two kinds of blob exist without a 3D renderer:
 *  - GUEST blobs: the pixels stay in guest memory (what the Linux driver
 *    makes of every dumb buffer once RESOURCE_BLOB is negotiated without
 *    VIRGL). Nothing is allocated or copied on the host here.
 *  - HOST3D blobs with blob_id 0: vshm's 2D-mode host allocation. There is
 *    no renderer object to name, so the blob is a fresh sealed memfd of
 *    `size` (page-rounded, charged against limits.max_host_bytes) that the
 *    VMM maps into the host-visible region on RESOURCE_MAP_BLOB, giving the
 *    guest a cached CPU mapping of host memory that the display sinks read
 *    without a copy. A blob_id names a renderer object, so any other value
 *    is refused, as are HOST3D_GUEST and unknown blob_mem values.
 *
 * MAP_BLOB answers OK_MAP_INFO only after the front-end confirmed the
 * mapping (the engine sets NEED_REPLY under REPLY_ACK and waits; crosvm's
 * legacy convention always replies), so the guest never touches a window
 * page that is not mapped yet (protocols.md pitfall 3). Whether it was
 * confirmed is recorded: only then may blob.c seal the memfd against new
 * writable mappings (zero-copy sharing with display consumers), and a
 * sealed blob cannot be mapped again (MAP_BLOB after UNMAP_BLOB is
 * refused; Linux guests map a host blob once for its lifetime).
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blob-internal.h"

#define KNOWN_FLAGS                                                                                \
	(VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE | VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE |                  \
	 VIRTIO_GPU_BLOB_FLAG_USE_CROSS_DEVICE)

/* Read and check the entries that follow the request (like ATTACH_BACKING). */
static uint32_t read_entries(struct vgs_gpu *gpu, struct vgs_ctrl_req *r, uint32_t id, uint32_t n,
                             uint64_t size, struct virtio_gpu_mem_entry **out, uint64_t *total)
{
	const struct vshm_mem *mem = vgs_gpu_mem(gpu);
	size_t hdr = sizeof(r->cmd.create_blob), bytes;
	struct virtio_gpu_mem_entry *e;
	uint64_t sum = 0;

	if (n == 0 || n > gpu->cfg.limits.max_backing_entries) {
		vgs_warn(gpu, "gpu: create_blob: resource %u has %u entries (max %u)", id, n,
		         gpu->cfg.limits.max_backing_entries);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	bytes = (size_t)n * sizeof(*e);
	if (r->out_bytes - hdr < bytes) {
		vgs_warn(gpu, "gpu: create_blob: %u entries but only %zu bytes", n,
		         r->out_bytes - hdr);
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	e = malloc(bytes);
	if (!e)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	if (vshm_iov_to_buf(r->out_sg, r->out_num, hdr, e, bytes) != bytes) {
		free(e);
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	for (uint32_t i = 0; i < n; i++) {
		e[i].addr = le64toh(e[i].addr);
		e[i].length = le32toh(e[i].length);
		if (!vgs_range_in_guest(mem, e[i].addr, e[i].length)) {
			vgs_warn(gpu,
			         "gpu: create_blob: resource %u entry %u (0x%llx+%u) is not guest "
			         "memory",
			         id, i, (unsigned long long)e[i].addr, e[i].length);
			free(e);
			return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
		}
		sum += e[i].length; /* < 2^32 entries of < 2^32 bytes */
	}
	if (sum < size) {
		vgs_warn(gpu, "gpu: create_blob: resource %u entries hold %llu < %llu bytes", id,
		         (unsigned long long)sum, (unsigned long long)size);
		free(e);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	*out = e;
	*total = sum;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t alloc_hostmem(struct vgs_gpu *gpu, uint32_t id, uint32_t flags, uint64_t size,
                              struct vgs_hostmem **out)
{
	const struct vgs_gpu_limits *lim = &gpu->cfg.limits;
	uint64_t pg = vgs_page_size(), psize;
	struct vgs_hostmem *m;
	int rc;

	if (!gpu->cfg.host_visible_size) {
		vgs_warn(gpu, "gpu: create_blob: HOST3D resource %u without a host-visible region",
		         id);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (size > UINT64_MAX - pg)
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	psize = (size + pg - 1) & ~(pg - 1);
	if ((flags & VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE) && psize > gpu->cfg.host_visible_size) {
		vgs_warn(gpu,
		         "gpu: create_blob: resource %u (%llu bytes) is larger than the "
		         "host-visible region",
		         id, (unsigned long long)size);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (gpu->stats.host_bytes > lim->max_host_bytes ||
	    psize > lim->max_host_bytes - gpu->stats.host_bytes) {
		vgs_warn(gpu,
		         "gpu: create_blob: resource %u (%llu bytes) exceeds the host memory "
		         "budget",
		         id, (unsigned long long)size);
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	rc = vshm_memfd_buf_new("vshm-gpu-blob", psize, 0, &m->buf);
	if (rc < 0) {
		free(m);
		vgs_warn(gpu, "gpu: create_blob: resource %u: memfd of %llu bytes: %s", id,
		         (unsigned long long)psize, strerror(-rc));
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	m->refcount = 1;
	m->data = vshm_memfd_buf_data(m->buf);
	m->size = vshm_memfd_buf_size(m->buf);
	m->fd = vshm_memfd_buf_fd(m->buf);
	*out = m;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

uint32_t vgs_cmd_resource_create_blob(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	const struct virtio_gpu_resource_create_blob *c = &r->cmd.create_blob;
	uint32_t id = le32toh(c->resource_id), mem = le32toh(c->blob_mem);
	uint32_t flags = le32toh(c->blob_flags), n = le32toh(c->nr_entries);
	uint64_t blob_id = le64toh(c->blob_id), size = le64toh(c->size), total = 0;
	struct virtio_gpu_mem_entry *entries = NULL;
	struct vgs_hostmem *hm = NULL;
	struct vgs_resource *res;
	uint32_t type;

	if (id == 0 || vgs_res_lookup(gpu, id)) {
		vgs_warn(gpu, "gpu: create_blob: bad or duplicate resource id %u", id);
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	}
	if (flags & ~KNOWN_FLAGS) {
		vgs_warn(gpu, "gpu: create_blob: resource %u has unknown flags 0x%x", id, flags);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (size == 0) {
		vgs_warn(gpu, "gpu: create_blob: resource %u has size 0", id);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (blob_id != 0) {
		/* Only a 3D renderer creates objects a blob_id can name. */
		vgs_warn(gpu, "gpu: create_blob: resource %u names blob_id %llu; no 3D renderer",
		         id, (unsigned long long)blob_id);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (gpu->stats.resources >= gpu->cfg.limits.max_resources) {
		vgs_warn(gpu, "gpu: create_blob: resource limit (%u) reached",
		         gpu->cfg.limits.max_resources);
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	switch (mem) {
	case VIRTIO_GPU_BLOB_MEM_GUEST:
		type = read_entries(gpu, r, id, n, size, &entries, &total);
		break;
	case VIRTIO_GPU_BLOB_MEM_HOST3D:
		if (n != 0) {
			vgs_warn(gpu, "gpu: create_blob: HOST3D resource %u with %u entries", id,
			         n);
			return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
		}
		type = alloc_hostmem(gpu, id, flags, size, &hm);
		break;
	default:
		/* HOST3D_GUEST needs a renderer too; anything else is not a blob_mem. */
		vgs_warn(gpu, "gpu: create_blob: resource %u: blob_mem %u not supported", id, mem);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (type != VIRTIO_GPU_RESP_OK_NODATA)
		return type;
	res = calloc(1, sizeof(*res));
	if (!res) {
		free(entries);
		vgs_hostmem_unref(hm);
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	res->id = id;
	res->blob_mem = mem;
	res->blob_flags = flags;
	res->blob_size = size;
	res->entries = entries;
	res->nr_entries = n;
	res->backing_bytes = total;
	res->hostmem = hm;
	res->host_bytes = hm ? hm->size : 0;
	gpu->stats.blobs++;
	vgs_res_insert(gpu, res);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

/* The mapping exists once the call returned: the front-end's reply was awaited. */
static bool map_confirmed(struct vgs_gpu *gpu)
{
	switch (vshm_vu_dev_shmem_convention(gpu->dev)) {
	case VSHM_VU_SHMEM_CROSVM_LEGACY:
		return true; /* the reply is mandatory and always awaited */
	case VSHM_VU_SHMEM_STANDARD:
		return vshm_vu_dev_protocol_features(gpu->dev) & VSHM_VU_PF_REPLY_ACK;
	default:
		return false;
	}
}

uint32_t vgs_cmd_resource_map_blob(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	uint32_t id = le32toh(r->cmd.map_blob.resource_id);
	uint64_t offset = le64toh(r->cmd.map_blob.offset), window = gpu->cfg.host_visible_size;
	struct vgs_resource *res = vgs_res_lookup(gpu, id);
	struct vgs_hostmem *hm;
	int rc;

	if (!res) {
		vgs_warn(gpu, "gpu: map_blob: no resource %u", id);
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	}
	hm = res->hostmem;
	if (!hm || !(res->blob_flags & VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE)) {
		vgs_warn(gpu, "gpu: map_blob: resource %u is not a mappable host blob", id);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (res->mapped) {
		vgs_warn(gpu, "gpu: map_blob: resource %u is already mapped", id);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (hm->sealed) {
		/* The VMM's new read-write mmap would fail with EPERM: refuse before asking. */
		gpu->stats.blob_map_failures++;
		vgs_warn(gpu,
		         "gpu: map_blob: resource %u was sealed (F_SEAL_FUTURE_WRITE) when it was "
		         "scanned out, for zero-copy display sharing; a sealed host blob cannot be "
		         "mapped again after UNMAP_BLOB (docs/compatibility.md)",
		         id);
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	if ((offset & (vgs_page_size() - 1)) || offset > window || hm->size > window - offset) {
		vgs_warn(gpu,
		         "gpu: map_blob: resource %u at 0x%llx+%llu is outside the %llu-byte "
		         "window or unaligned",
		         id, (unsigned long long)offset, (unsigned long long)hm->size,
		         (unsigned long long)window);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	rc = gpu->dev ? vshm_vu_dev_shmem_map(gpu->dev, VIRTIO_GPU_SHM_ID_HOST_VISIBLE, offset,
	                                      hm->fd, 0, hm->size, true)
	              : -ENOTCONN;
	if (rc < 0) {
		gpu->stats.blob_map_failures++;
		vgs_warn(gpu, "gpu: map_blob: resource %u at 0x%llx: %s", id,
		         (unsigned long long)offset, strerror(-rc));
		/* Overlap is the guest's mistake; the rest is the front-end's refusal or absence.
		 */
		return rc == -EEXIST ? VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
		                     : VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	res->mapped = true;
	hm->map_confirmed = map_confirmed(gpu);
	res->map_offset = offset;
	res->map_len = hm->size;
	gpu->stats.blob_maps++;
	memset(&r->resp.map_info, 0, sizeof(r->resp.map_info));
	r->resp.map_info.map_info = htole32(VIRTIO_GPU_MAP_CACHE_CACHED);
	r->resp_len = sizeof(r->resp.map_info);
	return VIRTIO_GPU_RESP_OK_MAP_INFO;
}

/* 0, or -errno with the mapping still recorded. -ENOENT: the front-end already dropped it. */
static int unmap(struct vgs_gpu *gpu, struct vgs_resource *res)
{
	int rc;

	if (!gpu->dev)
		return -ENOTCONN;
	rc = vshm_vu_dev_shmem_unmap(gpu->dev, VIRTIO_GPU_SHM_ID_HOST_VISIBLE, res->map_offset,
	                             res->map_len);
	if (rc == 0 || rc == -ENOENT) {
		/* -ENOENT: dropped with a reset or SET_STATUS(0) the engine already handled. */
		res->mapped = false;
		res->hostmem->map_confirmed = false;
		gpu->stats.blob_unmaps++;
		return 0;
	}
	return rc;
}

uint32_t vgs_cmd_resource_unmap_blob(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	uint32_t id = le32toh(r->cmd.unmap_blob.resource_id);
	struct vgs_resource *res = vgs_res_lookup(gpu, id);
	int rc;

	if (!res) {
		vgs_warn(gpu, "gpu: unmap_blob: no resource %u", id);
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	}
	if (!res->mapped) {
		vgs_warn(gpu, "gpu: unmap_blob: resource %u is not mapped", id);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	rc = unmap(gpu, res);
	if (rc < 0) {
		vgs_warn(gpu, "gpu: unmap_blob: resource %u: %s", id, strerror(-rc));
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	return VIRTIO_GPU_RESP_OK_NODATA;
}

void vgs_blob_release(struct vgs_gpu *gpu, struct vgs_resource *res)
{
	if (!res->blob_mem)
		return;
	if (res->mapped) {
		int rc = unmap(gpu, res);
		/* The guest is freeing the blob: the window slot must not keep our memory. */
		if (rc < 0)
			vgs_warn(gpu, "gpu: unref: unmapping resource %u failed: %s", res->id,
			         strerror(-rc));
		res->mapped = false;
	}
	vgs_hostmem_unref(res->hostmem);
	res->hostmem = NULL;
	gpu->stats.blobs--;
}

void vgs_blob_forget_mappings(struct vgs_gpu *gpu)
{
	for (uint32_t i = 0; i < gpu->nbuckets; i++)
		for (struct vgs_resource *r = gpu->buckets[i]; r; r = r->hnext)
			r->mapped = false;
}
