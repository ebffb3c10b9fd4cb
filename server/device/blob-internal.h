/* SPDX-License-Identifier: MIT */
/*
 * blob-internal.h - state shared by blob.c (scanouts of blobs) and
 * cmd_blob.c (RESOURCE_CREATE_BLOB, MAP_BLOB, UNMAP_BLOB).
 */
#ifndef VGS_BLOB_INTERNAL_H
#define VGS_BLOB_INTERNAL_H

#include <unistd.h>

#include <vshm/buffer.h>

#include "gpu-internal.h"

/*
 * The memory of a HOST3D blob in 2D mode: a sealed memfd the VMM maps
 * into the host-visible region. Reference-counted because a display sink
 * may still read a scanout view of it after RESOURCE_UNREF.
 *
 * Created with F_SEAL_SHRINK|F_SEAL_GROW only: the VMM must still be able
 * to mmap it read-write. Once the front-end CONFIRMED a mapping and the
 * blob is scanned out, blob.c adds F_SEAL_FUTURE_WRITE|F_SEAL_SEAL: the
 * mappings that exist (the daemon's, the VMM's window) keep working, no new
 * writable one can be made, so display consumers may get a read-only fd of
 * the memfd itself (zero copy). From then on MAP_BLOB is refused.
 */
struct vgs_hostmem {
	unsigned refcount;
	struct vshm_memfd_buf *buf;
	uint8_t *data;
	uint64_t size;      /* page multiple */
	int fd;             /* BORROWED from buf */
	bool map_confirmed; /* the live mapping was confirmed by the front-end (reply) */
	bool sealed;        /* FUTURE_WRITE|SEAL added: no new writable mapping, ever */
	bool seal_noted;    /* why it stays unsealed was logged (once per blob) */
};

struct vgs_hostmem *vgs_hostmem_ref(struct vgs_hostmem *m);
void vgs_hostmem_unref(struct vgs_hostmem *m);

/* How a blob scanout's pixels reach the sinks. */
enum vgs_blob_path {
	VGS_BLOB_PATH_HOST,    /* the host blob's memfd itself */
	VGS_BLOB_PATH_GUEST,   /* guest memory contiguous in one region, mapped read-only */
	VGS_BLOB_PATH_UDMABUF, /* scattered guest pages joined by a udmabuf, mapped */
	VGS_BLOB_PATH_COPY,    /* a host copy refreshed at RESOURCE_FLUSH */
};

struct vgs_scanout_blob {
	struct vgs_image *image; /* one reference */
	enum vgs_blob_path path;
	uint32_t width, height, format, stride;
	uint64_t offset;     /* of pixel (0,0) in the blob */
	uint64_t charged;    /* host_bytes charged for a copy image */
	bool full_dirty;     /* copy path: the next flush copies everything */
	uint64_t *starts;    /* copy path: backing offset of each entry */
	uint32_t nr_entries; /* entries the copy path may read */
};

static inline uint64_t vgs_page_size(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	return ps > 0 ? (uint64_t)ps : 4096;
}

#endif
