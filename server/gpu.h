/* SPDX-License-Identifier: MIT */
/*
 * gpu.h - the virtio-gpu device model as the daemon sees it.
 *
 * A vgs_gpu is one virtio-gpu device for one guest: resources, scanouts,
 * cursor, fences, limits. It plugs into the vhost-user engine through
 * vgs_gpu_device_ops() and reports what to show through display sinks.
 * It knows nothing about sockets or QEMU; device-specific vhost-user
 * requests (QEMU's GPU_SET_SOCKET) are passed to the daemon's hook.
 */
#ifndef VGS_GPU_H
#define VGS_GPU_H

#include <stdbool.h>
#include <stdint.h>

#include <vshm/vhost_user.h>

#include "display.h"

struct vgs_gpu;

struct vgs_gpu_limits {
	uint32_t max_resources;       /* live resources per guest (default 4096) */
	uint64_t max_host_bytes;      /* host memory for resource copies (default 512 MiB) */
	uint32_t max_backing_entries; /* per ATTACH_BACKING (default 16384) */
};

struct vgs_gpu_config {
	uint32_t num_scanouts; /* 1..16 */
	/* Preferred mode per scanout (0x0 = default 1024x768). */
	uint32_t width[VGS_MAX_SCANOUTS], height[VGS_MAX_SCANOUTS];
	/* Scanouts shown as enabled in GET_DISPLAY_INFO (bit n = scanout n). */
	uint32_t enabled_mask;
	bool edid; /* offer VIRTIO_GPU_F_EDID */
	struct vgs_gpu_limits limits;
	/*
	 * Size of the host-visible shared memory region (shmid 1) reported by
	 * GET_SHMEM_CONFIG, a page multiple; 0 = no region (no HOST3D blobs,
	 * no MAP_BLOB). RESOURCE_BLOB is offered either way (guest blobs).
	 */
	uint64_t host_visible_size;
	/* Scattered guest blobs: try a udmabuf view before the counted copy. */
	bool udmabuf;
};

void vgs_gpu_config_defaults(struct vgs_gpu_config *cfg);

/* Hook for vhost-user requests the device model does not handle (e.g. 33).
 * Same contract as vshm_vu_device_ops.device_request (owns @fds). */
typedef int (*vgs_gpu_request_hook)(void *data, uint32_t request, uint32_t flags,
                                    const void *payload, uint32_t size, int *fds, unsigned nfds);

int vgs_gpu_new(const struct vgs_gpu_config *cfg, struct vgs_gpu **out);
void vgs_gpu_destroy(struct vgs_gpu *gpu);

/* The vhost-user device callbacks; pass @gpu as their data. */
const struct vshm_vu_device_ops *vgs_gpu_device_ops(void);
/* The engine serving this device (needed to pop/push and to send config changes). */
void vgs_gpu_set_engine(struct vgs_gpu *gpu, struct vshm_vu_dev *dev);
void vgs_gpu_set_request_hook(struct vgs_gpu *gpu, vgs_gpu_request_hook hook, void *data);

/*
 * Deferred work (preparing spare host images) that must not sit between
 * the guest's responses and the display sends of the same batch. With a
 * hook, the device calls @schedule(@data) at the end of a batch and the
 * embedder runs vgs_gpu_run_deferred() later in the same loop iteration,
 * after the display sinks' own deferred sends (the daemon uses an idle
 * callback). Without a hook the work runs at the end of each batch.
 */
typedef void (*vgs_gpu_defer_fn)(void *data);
void vgs_gpu_set_defer_hook(struct vgs_gpu *gpu, vgs_gpu_defer_fn schedule, void *data);
void vgs_gpu_run_deferred(struct vgs_gpu *gpu);

/*
 * Attach/detach a display sink (several may be attached; fan-out is the
 * device model's job). On attach the sink receives the current scanouts.
 */
int vgs_gpu_add_display(struct vgs_gpu *gpu, const struct vgs_display_sink *sink);
void vgs_gpu_remove_display(struct vgs_gpu *gpu, const struct vgs_display_sink *sink);

/*
 * Display hot-plug: change a scanout's preferred mode / enabled state,
 * raise VIRTIO_GPU_EVENT_DISPLAY and notify the front-end (config change
 * message where the front-end supports it). 0 or -errno.
 */
int vgs_gpu_set_mode(struct vgs_gpu *gpu, uint32_t scanout_id, bool enabled, uint32_t width,
                     uint32_t height);

struct vgs_gpu_stats {
	uint64_t commands, errors, fences;
	uint64_t transfer_bytes; /* bytes copied guest -> host copy */
	uint64_t flushes;
	uint32_t resources;
	uint64_t host_bytes;
	/* Blob resources (zero-copy accounting: every host copy is counted here). */
	uint32_t blobs;
	uint64_t blob_views;      /* SET_SCANOUT_BLOB served without a copy */
	uint64_t blob_udmabuf;    /* ... of which through a udmabuf of scattered guest pages */
	uint64_t blob_copies;     /* flushes of a blob scanout that needed a host copy */
	uint64_t blob_copy_bytes; /* bytes those copies moved */
	uint64_t blob_maps, blob_map_failures, blob_unmaps;
	uint64_t ring_fences; /* fences completed on a (context, ring) timeline */
	/*
	 * Copy-on-write host images (device/image_pool.c): a 2D transfer into
	 * an image a display consumer still reads goes to a spare image.
	 */
	uint64_t cow_switches;   /* transfers that moved a resource to another image */
	uint64_t cow_copy_bytes; /* old content copied into the new image first */
	uint64_t cow_torn_risk;  /* every image held: written in place (may tear a held frame) */
	uint64_t pool_allocs;    /* spare images allocated */
	uint64_t pool_frees;     /* spare images freed (idle, memory pressure) */
	uint32_t pool_spares;    /* spare images alive now (in host_bytes) */
};
void vgs_gpu_get_stats(const struct vgs_gpu *gpu, struct vgs_gpu_stats *out);

#endif
