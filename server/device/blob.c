/* SPDX-License-Identifier: MIT */
/*
 * blob.c - scanouts of blob resources (SET_SCANOUT_BLOB) and their flushes.
 *
 * The goal is zero copies: a sink gets a struct vgs_image whose pixels ARE
 * the blob. In order of preference:
 *  - HOST3D blob (2D mode host allocation): a view of its memfd; the fd
 *    goes with the image when plane 0 starts at offset 0. Display
 *    consumers only take memfds sealed against new writable mappings, so
 *    the first such scanout of a blob whose mapping the front-end
 *    confirmed adds F_SEAL_FUTURE_WRITE|F_SEAL_SEAL (seal_host_blob());
 *  - guest blob contiguous in one guest memory region: that range of the
 *    region's file mapped read-only by the device (its own mapping, so a
 *    later memory-table change cannot pull it from under a sink);
 *  - scattered guest blob with udmabuf enabled: the pages joined into one
 *    dma-buf by /dev/udmabuf and mapped (tried first for any guest blob
 *    when /dev/udmabuf is usable: the image then carries the dma-buf for
 *    display consumers, server/consumer_dmabuf.c);
 *  - otherwise a host copy, refreshed for the damaged rectangle at
 *    RESOURCE_FLUSH. That path is explicit: logged (rate limited) when a
 *    scanout enters it, and counted in stats.blob_copies/blob_copy_bytes.
 * The Linux driver waits 50 ms for the fenced flush of a guest-blob
 * framebuffer (protocols.md §4.7, pitfall 17): every path answers inline.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "blob-internal.h"

/* Linux 5.1+; older headers lack it. */
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* ---- host memory ---- */

struct vgs_hostmem *vgs_hostmem_ref(struct vgs_hostmem *m)
{
	m->refcount++;
	return m;
}

void vgs_hostmem_unref(struct vgs_hostmem *m)
{
	if (!m || --m->refcount > 0)
		return;
	vshm_memfd_buf_destroy(m->buf);
	free(m);
}

/* ---- scanout images ---- */

struct vgs_image *vgs_scanout_image(const struct vgs_scanout *so)
{
	if (so->blob)
		return so->blob->image;
	return so->resource ? so->resource->image : NULL;
}

static void blob_free(struct vgs_gpu *gpu, struct vgs_scanout_blob *b)
{
	if (!b)
		return;
	gpu->stats.host_bytes -= b->charged;
	vgs_image_unref(b->image);
	free(b->starts);
	free(b);
}

void vgs_scanout_blob_clear(struct vgs_gpu *gpu, struct vgs_scanout *so)
{
	blob_free(gpu, so->blob);
	so->blob = NULL;
}

static void release_hostmem(struct vgs_image *img, void *data)
{
	(void)img;
	vgs_hostmem_unref(data);
}

struct mapping {
	void *base;
	size_t len;
	int fd; /* a dma-buf kept with its mapping (udmabuf), else -1 */
};

static void release_mapping(struct vgs_image *img, void *data)
{
	struct mapping *m = data;

	(void)img;
	munmap(m->base, m->len);
	if (m->fd >= 0)
		close(m->fd);
	free(m);
}

/* Map [fd_off, +len) of @fd read-only; *data points at fd_off. */
static int map_range(int fd, uint64_t fd_off, uint64_t len, struct mapping **out, uint8_t **data)
{
	uint64_t pg = vgs_page_size(), start = fd_off & ~(pg - 1), delta = fd_off - start;
	uint64_t maplen = (delta + len + pg - 1) & ~(pg - 1);
	struct mapping *m = calloc(1, sizeof(*m));
	void *p;

	if (!m)
		return -ENOMEM;
	p = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, (off_t)start);
	if (p == MAP_FAILED) {
		int e = -errno;
		free(m);
		return e;
	}
	m->base = p;
	m->len = maplen;
	m->fd = -1;
	*out = m;
	*data = (uint8_t *)p + delta;
	return 0;
}

/* Entry index holding backing byte @off, and the offset inside it; false past the end. */
static bool find_entry(const struct vgs_resource *res, uint64_t off, uint32_t *idx, uint64_t *in)
{
	uint64_t start = 0;

	for (uint32_t i = 0; i < res->nr_entries; i++) {
		if (off < start + res->entries[i].length) {
			*idx = i;
			*in = off - start;
			return true;
		}
		start += res->entries[i].length;
	}
	return false;
}

/*
 * Backing bytes [off, off+len) as one guest-physical range when the entries
 * covering them are adjacent in guest memory (Linux sends page runs).
 */
static bool contiguous_gpa(const struct vgs_resource *res, uint64_t off, uint64_t len,
                           uint64_t *gpa)
{
	uint32_t i;
	uint64_t in, have, next;

	if (!find_entry(res, off, &i, &in))
		return false;
	*gpa = res->entries[i].addr + in;
	have = res->entries[i].length - in;
	next = res->entries[i].addr + res->entries[i].length;
	while (have < len) {
		if (++i >= res->nr_entries || res->entries[i].addr != next)
			return false;
		have += res->entries[i].length;
		next = res->entries[i].addr + res->entries[i].length;
	}
	return true;
}

static int guest_view(struct vgs_gpu *gpu, struct vgs_resource *res, struct vgs_scanout_blob *b,
                      uint64_t extent)
{
	const struct vshm_mem *mem = vgs_gpu_mem(gpu);
	struct mapping *m;
	uint64_t gpa, fd_off;
	uint8_t *data;
	int fd, rc;

	if (!mem || !contiguous_gpa(res, b->offset, extent, &gpa))
		return -ENOENT;
	rc = vshm_mem_gpa_to_fd(mem, gpa, extent, &fd, &fd_off);
	if (rc < 0)
		return rc; /* crosses a region boundary */
	rc = map_range(fd, fd_off, extent, &m, &data);
	if (rc < 0)
		return rc;
	rc = vgs_image_new_view(data, extent, b->stride, b->width, b->height, b->format, -1,
	                        release_mapping, m, &b->image);
	if (rc < 0)
		release_mapping(NULL, m);
	return rc;
}

static int udmabuf_view(struct vgs_gpu *gpu, struct vgs_resource *res, struct vgs_scanout_blob *b,
                        uint64_t extent)
{
	const struct vshm_mem *mem = vgs_gpu_mem(gpu);
	uint64_t pg = vgs_page_size(), need = (b->offset + extent + pg - 1) & ~(pg - 1), got = 0;
	struct vshm_gpa_range *ranges;
	struct mapping *m;
	uint8_t *data;
	unsigned n = 0;
	int fd, rc;

	if (!mem || !vshm_udmabuf_available(NULL))
		return -ENODEV;
	ranges = calloc(res->nr_entries, sizeof(*ranges));
	if (!ranges)
		return -ENOMEM;
	/* The pages from the blob's start to the last byte scanned out. */
	for (uint32_t i = 0; i < res->nr_entries && got < need; i++) {
		uint64_t len = res->entries[i].length;
		if (len > need - got)
			len = need - got;
		ranges[n].gpa = res->entries[i].addr;
		ranges[n].len = len;
		n++;
		got += len;
	}
	rc = vshm_udmabuf_create_from_guest(mem, ranges, n, &fd);
	free(ranges);
	if (rc < 0)
		return rc;
	rc = map_range(fd, b->offset, extent, &m, &data);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	m->fd = fd; /* kept: display sinks share it (DMABUF_BUFFER), zero copy */
	rc = vgs_image_new_view(data, extent, b->stride, b->width, b->height, b->format, -1,
	                        release_mapping, m, &b->image);
	if (rc < 0) {
		release_mapping(NULL, m);
		return rc;
	}
	b->image->has_dmabuf = true;
	b->image->dmabuf_fd = fd;
	b->image->dmabuf_offset = b->offset; /* the dma-buf starts at the blob's start */
	return 0;
}

static uint32_t copy_image(struct vgs_gpu *gpu, struct vgs_resource *res,
                           struct vgs_scanout_blob *b, const struct vgs_scanout_blob *old)
{
	uint64_t start = 0;
	int rc;

	b->starts = calloc(res->nr_entries, sizeof(*b->starts));
	if (!b->starts)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	for (uint32_t i = 0; i < res->nr_entries; i++) {
		b->starts[i] = start;
		start += res->entries[i].length;
	}
	b->nr_entries = res->nr_entries;
	b->full_dirty = true;
	/* Page flips between same-sized buffers reuse the copy. */
	if (old && old->path == VGS_BLOB_PATH_COPY && old->width == b->width &&
	    old->height == b->height && old->format == b->format) {
		b->image = vgs_image_ref(old->image);
	} else {
		rc = vgs_image_new(b->width, b->height, b->format, &b->image);
		if (rc < 0)
			return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	if (b->image->size > gpu->cfg.limits.max_host_bytes - gpu->stats.host_bytes &&
	    !(old && old->image == b->image)) {
		vgs_warn(gpu,
		         "gpu: set_scanout_blob: copy of resource %u exceeds the host memory "
		         "budget",
		         res->id);
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	b->charged = b->image->size;
	gpu->stats.host_bytes += b->charged;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static bool format_known(uint32_t f)
{
	switch (f) {
	case VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM:
	case VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM:
	case VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM:
	case VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM:
	case VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM:
	case VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM:
	case VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM:
	case VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM:
		return true;
	default:
		return false;
	}
}

static const char *path_name(enum vgs_blob_path p)
{
	static const char *const names[] = { "host memfd", "guest memory view", "udmabuf view",
		                             "host copy" };
	return names[p];
}

/*
 * Seal the memfd of host blob @res against new writable mappings so that
 * display consumers can be given a read-only fd of it instead of a copy.
 *
 * F_SEAL_FUTURE_WRITE leaves the mappings that exist writable: the VMM's
 * (made while it handled SHMEM_MAP) and the daemon's own. The guest keeps
 * drawing through the window; nobody can map the memfd writable again,
 * not even through a /proc reopen. That is only safe once the VMM's mmap
 * has certainly happened: the front-end answered the map request (STANDARD
 * with REPLY_ACK, or crosvm's legacy convention where the reply always
 * comes). Without that confirmation the VMM may still be about to mmap the
 * fd read-write, and a seal would make its mmap fail: the blob then stays
 * unsealed and consumers get the counted copy (consumer_dmabuf.c).
 *
 * Lazy: only a blob that is scanned out as a whole memfd is sealed, at its
 * first SET_SCANOUT_BLOB, since sealing is irreversible and a sealed blob
 * cannot be mapped again (cmd_blob.c refuses MAP_BLOB after UNMAP_BLOB).
 */
static void seal_host_blob(struct vgs_resource *res)
{
	struct vgs_hostmem *hm = res->hostmem;
	const char *why = NULL;

	if (hm->sealed)
		return;
	if (!res->mapped)
		why = "it is not mapped (a seal now would make its mapping fail)";
	else if (!hm->map_confirmed)
		why = "the front-end did not confirm its mapping (SHMEM without REPLY_ACK), "
		      "and a seal before the VMM's mmap would make that mmap fail";
	else if (fcntl(hm->fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0)
		why = errno == EINVAL ? "the kernel lacks F_SEAL_FUTURE_WRITE (Linux < 5.1)"
		                      : "F_ADD_SEALS failed";
	if (why) {
		if (!hm->seal_noted)
			vshm_log(VSHM_LOG_INFO,
			         "gpu: host blob %u stays unsealed: %s; display consumers get a "
			         "counted copy of it (logged once per blob)",
			         res->id, why);
		hm->seal_noted = true;
		return;
	}
	hm->sealed = true;
	vshm_log(VSHM_LOG_DEBUG,
	         "gpu: host blob %u sealed (FUTURE_WRITE): shared with consumers without a copy",
	         res->id);
}

/* Build what scanout @so will show; 0 on success (the response type otherwise). */
static uint32_t build_blob(struct vgs_gpu *gpu, struct vgs_resource *res,
                           struct vgs_scanout_blob *b, const struct vgs_scanout_blob *old)
{
	/* Bytes from pixel (0,0) to the end of the last row; checked against the blob size. */
	uint64_t extent = (uint64_t)b->stride * (b->height - 1) + (uint64_t)b->width * 4;
	int rc;

	if (res->hostmem) {
		struct vgs_hostmem *hm = res->hostmem;
		bool whole = b->offset == 0 && (uint64_t)b->stride * b->height <= hm->size;

		b->path = VGS_BLOB_PATH_HOST;
		if (whole)
			seal_host_blob(res);
		rc = vgs_image_new_view(hm->data + b->offset, extent, b->stride, b->width,
		                        b->height, b->format, whole ? hm->fd : -1, release_hostmem,
		                        hm, &b->image);
		if (rc < 0)
			return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
		vgs_hostmem_ref(hm);
		gpu->stats.blob_views++;
		return VIRTIO_GPU_RESP_OK_NODATA;
	}
	/*
	 * With udmabuf usable, even a contiguous blob becomes a dma-buf view:
	 * dma-buf consumers then get it without any copy (consumer_dmabuf.c).
	 */
	if (gpu->cfg.udmabuf && vshm_udmabuf_available(NULL)) {
		b->path = VGS_BLOB_PATH_UDMABUF;
		if (udmabuf_view(gpu, res, b, extent) == 0) {
			gpu->stats.blob_views++;
			gpu->stats.blob_udmabuf++;
			return VIRTIO_GPU_RESP_OK_NODATA;
		}
	}
	b->path = VGS_BLOB_PATH_GUEST;
	rc = guest_view(gpu, res, b, extent);
	if (rc == 0) {
		gpu->stats.blob_views++;
		return VIRTIO_GPU_RESP_OK_NODATA;
	}
	if (gpu->cfg.udmabuf) {
		b->path = VGS_BLOB_PATH_UDMABUF;
		rc = udmabuf_view(gpu, res, b, extent);
		if (rc == 0) {
			gpu->stats.blob_views++;
			gpu->stats.blob_udmabuf++;
			return VIRTIO_GPU_RESP_OK_NODATA;
		}
	}
	b->path = VGS_BLOB_PATH_COPY;
	if (!old || old->path != VGS_BLOB_PATH_COPY)
		vgs_warn(
		        gpu,
		        "gpu: guest blob %u is not contiguous in one memory region (%u entries)%s; "
		        "scanout served by a host copy at each flush",
		        res->id, res->nr_entries,
		        gpu->cfg.udmabuf ? " and udmabuf failed" : " and udmabuf is off");
	return copy_image(gpu, res, b, old);
}

uint32_t vgs_cmd_set_scanout_blob(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	const struct virtio_gpu_set_scanout_blob *c = &r->cmd.scanout_blob;
	uint32_t id = le32toh(c->scanout_id), res_id = le32toh(c->resource_id);
	struct vgs_rect rect = {
		.x = le32toh(c->r.x),
		.y = le32toh(c->r.y),
		.width = le32toh(c->r.width),
		.height = le32toh(c->r.height),
	};
	struct vgs_scanout_blob *b;
	struct vgs_resource *res;
	struct vgs_scanout *so;
	uint64_t extent;
	uint32_t type;

	type = vgs_scanout_begin(gpu, "set_scanout_blob", id, res_id, &so, &res);
	if (type)
		return type;
	if (!res->blob_mem) {
		vgs_warn(gpu, "gpu: set_scanout_blob: resource %u is not a blob", res_id);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	b->format = le32toh(c->format);
	b->width = le32toh(c->width);
	b->height = le32toh(c->height);
	b->stride = le32toh(c->strides[0]);
	b->offset = le32toh(c->offsets[0]);
	type = VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	if (!format_known(b->format)) {
		vgs_warn(gpu, "gpu: set_scanout_blob: unknown format %u", b->format);
		goto fail;
	}
	if (b->width == 0 || b->height == 0 || b->width > VGS_MAX_DIM || b->height > VGS_MAX_DIM) {
		vgs_warn(gpu, "gpu: set_scanout_blob: framebuffer %ux%u", b->width, b->height);
		goto fail;
	}
	/* Plane 0 only (every format here is single-plane). All terms < 2^47. */
	extent = (uint64_t)b->stride * (b->height - 1) + (uint64_t)b->width * 4;
	if (b->stride < b->width * 4u || b->offset > res->blob_size ||
	    extent > res->blob_size - b->offset) {
		vgs_warn(gpu,
		         "gpu: set_scanout_blob: %ux%u stride %u offset %llu past blob %u (%llu "
		         "bytes)",
		         b->width, b->height, b->stride, (unsigned long long)b->offset, res_id,
		         (unsigned long long)res->blob_size);
		goto fail;
	}
	if (rect.width == 0 || rect.height == 0 || !vgs_rect_inside(&rect, b->width, b->height)) {
		vgs_warn(gpu, "gpu: set_scanout_blob: rect %u,%u %ux%u outside %ux%u", rect.x,
		         rect.y, rect.width, rect.height, b->width, b->height);
		goto fail;
	}
	type = build_blob(gpu, res, b, so->blob);
	if (type != VIRTIO_GPU_RESP_OK_NODATA)
		goto fail;
	vshm_log(VSHM_LOG_DEBUG, "gpu: scanout %u shows blob %u %ux%u via %s", id, res_id, b->width,
	         b->height, path_name(b->path));
	vgs_scanout_blob_clear(gpu, so);
	so->blob = b;
	so->resource = res;
	so->rect = rect;
	vgs_display_scanout(gpu, id);
	return VIRTIO_GPU_RESP_OK_NODATA;
fail:
	blob_free(gpu, b);
	return type;
}

/* Copy backing bytes [off, off+len) to @dst through the entries; false when memory is gone. */
static bool copy_backing(const struct vshm_mem *mem, const struct vgs_resource *res,
                         const struct vgs_scanout_blob *b, uint64_t off, uint8_t *dst, uint64_t len)
{
	uint32_t lo = 0, hi = b->nr_entries - 1;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;
		if (b->starts[mid] <= off)
			lo = mid;
		else
			hi = mid - 1;
	}
	for (uint32_t i = lo; len > 0 && i < b->nr_entries; i++) {
		uint64_t in = off - b->starts[i], n = res->entries[i].length - in;
		struct iovec iov[8];
		int k;

		if (n > len)
			n = len;
		k = vshm_mem_gpa_to_iov(mem, res->entries[i].addr + in, n, iov, 8);
		if (k <= 0)
			return false;
		for (int j = 0; j < k; j++) {
			memcpy(dst, iov[j].iov_base, iov[j].iov_len);
			dst += iov[j].iov_len;
		}
		off += n;
		len -= n;
	}
	return len == 0;
}

/* Refresh rect @d (framebuffer coordinates, inside it) of a copy scanout. */
static bool copy_rect(struct vgs_gpu *gpu, struct vgs_resource *res, struct vgs_scanout_blob *b,
                      const struct vgs_rect *d)
{
	const struct vshm_mem *mem = vgs_gpu_mem(gpu);
	struct vgs_image *img = b->image;
	uint64_t row = (uint64_t)d->width * 4;

	if (!mem)
		return false;
	for (uint32_t y = d->y; y < d->y + d->height; y++) {
		uint64_t src = b->offset + (uint64_t)y * b->stride + (uint64_t)d->x * 4;
		uint8_t *dst = img->data + (uint64_t)y * img->stride + (uint64_t)d->x * 4;
		if (!copy_backing(mem, res, b, src, dst, row))
			return false;
	}
	gpu->stats.blob_copy_bytes += row * d->height;
	return true;
}

static bool intersect(const struct vgs_rect *a, const struct vgs_rect *b, struct vgs_rect *out)
{
	uint64_t x0 = a->x > b->x ? a->x : b->x, y0 = a->y > b->y ? a->y : b->y;
	uint64_t ax1 = (uint64_t)a->x + a->width, bx1 = (uint64_t)b->x + b->width;
	uint64_t ay1 = (uint64_t)a->y + a->height, by1 = (uint64_t)b->y + b->height;
	uint64_t x1 = ax1 < bx1 ? ax1 : bx1, y1 = ay1 < by1 ? ay1 : by1;

	if (x0 >= x1 || y0 >= y1)
		return false;
	out->x = (uint32_t)x0;
	out->y = (uint32_t)y0;
	out->width = (uint32_t)(x1 - x0);
	out->height = (uint32_t)(y1 - y0);
	return true;
}

uint32_t vgs_blob_flush(struct vgs_gpu *gpu, struct vgs_resource *res, const struct vgs_rect *fr)
{
	bool copied = false;

	if ((uint64_t)fr->x + fr->width > VGS_MAX_DIM ||
	    (uint64_t)fr->y + fr->height > VGS_MAX_DIM) {
		vgs_warn(gpu, "gpu: flush: rect %u,%u %ux%u outside any framebuffer of blob %u",
		         fr->x, fr->y, fr->width, fr->height, res->id);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	gpu->stats.flushes++;
	/* Damage is in framebuffer coordinates; each scanout shows its own part. */
	for (uint32_t i = 0; i < VGS_MAX_SCANOUTS; i++) {
		struct vgs_scanout *so = &gpu->scanouts[i];
		struct vgs_scanout_blob *b = so->blob;
		struct vgs_rect fb, d, shown;

		if (so->resource != res || !b)
			continue;
		fb.x = fb.y = 0;
		fb.width = b->width;
		fb.height = b->height;
		if (b->path == VGS_BLOB_PATH_COPY && (b->full_dirty || intersect(fr, &fb, &d))) {
			if (!copy_rect(gpu, res, b, b->full_dirty ? &fb : &d)) {
				vgs_warn(gpu, "gpu: flush: backing of blob %u left guest memory",
				         res->id);
				return VIRTIO_GPU_RESP_ERR_UNSPEC;
			}
			b->full_dirty = false;
			copied = true;
		}
		if (!intersect(fr, &so->rect, &shown))
			continue;
		shown.x -= so->rect.x;
		shown.y -= so->rect.y;
		vgs_display_flush(gpu, i, &shown);
	}
	if (copied)
		gpu->stats.blob_copies++;
	return VIRTIO_GPU_RESP_OK_NODATA;
}
