/* SPDX-License-Identifier: MIT */
/*
 * gpu.c - vgs_gpu lifecycle and the vhost-user device glue.
 *
 * The engine calls in through vshm_vu_device_ops: feature bits, the
 * 16-byte config space, queue kicks and start/stop, reset. Everything else
 * (commands, resources, cursor) lives in the sibling files.
 */
#include <endian.h>
#include <stddef.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "gpu-internal.h"

#define DEFAULT_WIDTH  1024
#define DEFAULT_HEIGHT 768

void vgs_gpu_config_defaults(struct vgs_gpu_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->num_scanouts = 1;
	cfg->enabled_mask = 1;
	cfg->edid = true;
	cfg->limits.max_resources = 4096;
	cfg->limits.max_host_bytes = 512ull << 20;
	cfg->limits.max_backing_entries = 16384;
}

static void seed_uuid_key(struct vgs_gpu *gpu)
{
	struct timespec ts;

	if (getrandom(gpu->uuid_key, sizeof(gpu->uuid_key), GRND_NONBLOCK) ==
	    (ssize_t)sizeof(gpu->uuid_key))
		return;
	/* No entropy yet (early boot): UUIDs only need to look random and be unique per device. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	gpu->uuid_key[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)gpu;
	gpu->uuid_key[1] = ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
}

int vgs_gpu_new(const struct vgs_gpu_config *cfg, struct vgs_gpu **out)
{
	struct vgs_gpu_config def;
	struct vgs_gpu *gpu;
	int rc;

	*out = NULL;
	if (!cfg) {
		vgs_gpu_config_defaults(&def);
		cfg = &def;
	}
	if (cfg->num_scanouts < 1 || cfg->num_scanouts > VGS_MAX_SCANOUTS)
		return -EINVAL;
	for (uint32_t i = 0; i < cfg->num_scanouts; i++)
		if (cfg->width[i] > VGS_MAX_DIM || cfg->height[i] > VGS_MAX_DIM)
			return -EINVAL;
	/* The host-visible region is mapped in pages by the VMM. */
	if (cfg->host_visible_size % (uint64_t)sysconf(_SC_PAGESIZE))
		return -EINVAL;
	gpu = calloc(1, sizeof(*gpu));
	if (!gpu)
		return -ENOMEM;
	gpu->cfg = *cfg;
	/* Zero limits mean "default", so callers can set only what they care about. */
	vgs_gpu_config_defaults(&def);
	if (!gpu->cfg.limits.max_resources)
		gpu->cfg.limits.max_resources = def.limits.max_resources;
	if (!gpu->cfg.limits.max_host_bytes)
		gpu->cfg.limits.max_host_bytes = def.limits.max_host_bytes;
	if (!gpu->cfg.limits.max_backing_entries)
		gpu->cfg.limits.max_backing_entries = def.limits.max_backing_entries;
	/*
	 * All 16 scanouts exist in the model even when fewer are configured:
	 * QEMU replaces num_scanouts in config space with its own max_outputs,
	 * so the guest may legitimately address heads the daemon was not told
	 * about. The configured ones are the ones reported enabled.
	 */
	for (uint32_t i = 0; i < VGS_MAX_SCANOUTS; i++) {
		struct vgs_scanout *so = &gpu->scanouts[i];
		bool unset = i >= cfg->num_scanouts || cfg->width[i] == 0 || cfg->height[i] == 0;
		so->mode_width = unset ? DEFAULT_WIDTH : cfg->width[i];
		so->mode_height = unset ? DEFAULT_HEIGHT : cfg->height[i];
		so->mode_enabled = i < cfg->num_scanouts && ((cfg->enabled_mask >> i) & 1);
	}
	rc = vgs_res_table_init(gpu);
	if (rc < 0) {
		free(gpu);
		return rc;
	}
	struct vshm_ratelimit rl = VSHM_RATELIMIT_INIT(5000, 10);
	gpu->rl = rl;
	seed_uuid_key(gpu);
	*out = gpu;
	return 0;
}

void vgs_gpu_destroy(struct vgs_gpu *gpu)
{
	if (!gpu)
		return;
	/* Sinks may already be gone: tearing down must not call them. */
	gpu->nsinks = 0;
	vgs_ctrl_abort_inflight(gpu, false);
	/* The engine may be gone already: never ask it to unmap from here. */
	vgs_blob_forget_mappings(gpu);
	vgs_res_table_fini(gpu);
	vgs_ctx_reset(gpu);
	free(gpu);
}

void vgs_gpu_set_engine(struct vgs_gpu *gpu, struct vshm_vu_dev *dev)
{
	gpu->dev = dev;
}

void vgs_gpu_set_request_hook(struct vgs_gpu *gpu, vgs_gpu_request_hook hook, void *data)
{
	gpu->hook = hook;
	gpu->hook_data = data;
}

void vgs_gpu_set_defer_hook(struct vgs_gpu *gpu, vgs_gpu_defer_fn schedule, void *data)
{
	gpu->defer = schedule;
	gpu->defer_data = data;
}

void vgs_gpu_request_deferred(struct vgs_gpu *gpu)
{
	if (!gpu->defer) {
		vgs_pool_idle(gpu);
		return;
	}
	if (!gpu->defer_pending) {
		gpu->defer_pending = true;
		gpu->defer(gpu->defer_data);
	}
}

void vgs_gpu_run_deferred(struct vgs_gpu *gpu)
{
	gpu->defer_pending = false;
	vgs_pool_idle(gpu);
}

void vgs_gpu_set_test_mem(struct vgs_gpu *gpu, struct vshm_mem *mem)
{
	gpu->test_mem = mem;
}

void vgs_gpu_get_stats(const struct vgs_gpu *gpu, struct vgs_gpu_stats *out)
{
	*out = gpu->stats;
}

int vgs_gpu_set_mode(struct vgs_gpu *gpu, uint32_t scanout_id, bool enabled, uint32_t width,
                     uint32_t height)
{
	struct vgs_scanout *so;
	int rc;

	if (scanout_id >= VGS_MAX_SCANOUTS)
		return -EINVAL;
	if (enabled && (width == 0 || height == 0 || width > VGS_MAX_DIM || height > VGS_MAX_DIM))
		return -EINVAL;
	so = &gpu->scanouts[scanout_id];
	so->mode_enabled = enabled;
	if (width && height && width <= VGS_MAX_DIM && height <= VGS_MAX_DIM) {
		so->mode_width = width;
		so->mode_height = height;
	}
	/* The guest re-reads display info and EDID when it sees the DISPLAY event. */
	gpu->events_read |= VIRTIO_GPU_EVENT_DISPLAY;
	if (!gpu->dev || !vshm_vu_dev_is_connected(gpu->dev))
		return 0;
	rc = vshm_vu_dev_config_changed(gpu->dev);
	/* No back-end channel: the event stays latched for the next config read. */
	return rc == -ENOTCONN ? 0 : rc;
}

/* Back to power-on state: no resources, scanouts off, cursor hidden. */
static void gpu_reset(struct vgs_gpu *gpu)
{
	vgs_ctrl_abort_inflight(gpu, false);
	/* The engine dropped (and told the front-end to drop) every mapping before calling us. */
	vgs_blob_forget_mappings(gpu);
	vgs_res_destroy_all(gpu);
	vgs_ctx_reset(gpu);
	/* vgs_res_destroy() already turned off (and announced) every scanout. */
	if (gpu->cursor_visible) {
		gpu->cursor_visible = false;
		vgs_display_cursor_update(gpu, NULL);
	}
	gpu->cursor_shape = false;
	gpu->events_read = 0;
	gpu->features = 0;
	gpu->ctrlq = NULL;
}

/* ---- vhost-user device ops ---- */

static uint64_t op_get_features(void *data)
{
	struct vgs_gpu *gpu = data;
	/*
	 * RESOURCE_BLOB always: guest blobs need nothing from the front-end
	 * (QEMU's vhost-user-gpu does not forward the bit; crosvm does).
	 * CONTEXT_INIT only with a context type, and 2D mode has none.
	 */
	uint64_t f = (1ull << VIRTIO_GPU_F_RESOURCE_UUID) | (1ull << VIRTIO_GPU_F_RESOURCE_BLOB);

	if (gpu->cfg.edid)
		f |= 1ull << VIRTIO_GPU_F_EDID;
	return f;
}

static int op_set_features(void *data, uint64_t features)
{
	struct vgs_gpu *gpu = data;

	/* Transport bits chosen by the front-end are accepted and ignored (pitfall 15). */
	gpu->features = features;
	return 0;
}

static void config_bytes(const struct vgs_gpu *gpu, uint8_t out[16])
{
	struct virtio_gpu_config c = {
		.events_read = htole32(gpu->events_read),
		.events_clear = 0,
		.num_scanouts = htole32(gpu->cfg.num_scanouts),
		.num_capsets = 0,
	};
	memcpy(out, &c, sizeof(c));
}

/* Config reads beyond our 16 bytes read as zero, up to this bound. */
#define CONFIG_SPACE_MAX 256

static int op_get_config(void *data, uint32_t offset, void *buf, uint32_t size)
{
	struct vgs_gpu *gpu = data;
	uint8_t cfg[CONFIG_SPACE_MAX] = { 0 };

	if (offset > CONFIG_SPACE_MAX || size > CONFIG_SPACE_MAX - offset)
		return -EINVAL;
	config_bytes(gpu, cfg);
	memcpy(buf, cfg + offset, size);
	return 0;
}

static int op_set_config(void *data, uint32_t offset, const void *buf, uint32_t size,
                         uint32_t flags)
{
	struct vgs_gpu *gpu = data;
	const uint32_t clear_off = offsetof(struct virtio_gpu_config, events_clear);
	uint8_t bytes[4] = { 0 };

	if (offset > CONFIG_SPACE_MAX || size > CONFIG_SPACE_MAX - offset)
		return -EINVAL;
	/* Only events_clear is writable; writes elsewhere are ignored like on real hardware. */
	for (uint32_t i = 0; i < 4; i++)
		if (clear_off + i >= offset && clear_off + i < offset + size)
			bytes[i] = ((const uint8_t *)buf)[clear_off + i - offset];
	uint32_t clear;
	memcpy(&clear, bytes, 4);
	gpu->events_read &= ~le32toh(clear);
	return 0;
}

static void op_queue_kick(void *data, struct vshm_vq *vq)
{
	struct vgs_gpu *gpu = data;

	switch (vshm_vq_index(vq)) {
	case VIRTIO_GPU_QUEUE_CTRL:
		gpu->ctrlq = vq;
		vgs_ctrlq_process(gpu, vq);
		break;
	case VIRTIO_GPU_QUEUE_CURSOR:
		vgs_cursorq_process(gpu, vq);
		break;
	default:
		break;
	}
}

static void op_queue_state(void *data, struct vshm_vq *vq, bool started)
{
	struct vgs_gpu *gpu = data;

	if (started) {
		op_queue_kick(data, vq);
		return;
	}
	if (vshm_vq_index(vq) == VIRTIO_GPU_QUEUE_CTRL) {
		/* The ring goes away: answer the command held for a sink now. */
		if (gpu->inflight && gpu->inflight->vq == vq)
			vgs_ctrl_abort_inflight(gpu, true);
		if (gpu->ctrlq == vq)
			gpu->ctrlq = NULL;
	}
}

static int op_device_request(void *data, uint32_t request, uint32_t flags, const void *payload,
                             uint32_t size, int *fds, unsigned nfds)
{
	struct vgs_gpu *gpu = data;

	if (gpu->hook)
		return gpu->hook(gpu->hook_data, request, flags, payload, size, fds, nfds);
	for (unsigned i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return -ENOTSUP;
}

static void op_reset(void *data)
{
	gpu_reset(data);
}

/* GET_SHMEM_CONFIG / crosvm's GET_SHARED_MEMORY_REGIONS: the host-visible window. */
static int op_get_shmem_config(void *data, uint64_t sizes[256])
{
	struct vgs_gpu *gpu = data;

	sizes[VIRTIO_GPU_SHM_ID_HOST_VISIBLE] = gpu->cfg.host_visible_size;
	return 0;
}

static const struct vshm_vu_device_ops gpu_ops = {
	.get_features = op_get_features,
	.set_features = op_set_features,
	.get_config = op_get_config,
	.set_config = op_set_config,
	.queue_kick = op_queue_kick,
	.queue_state = op_queue_state,
	.device_request = op_device_request,
	.reset = op_reset,
	.get_shmem_config = op_get_shmem_config,
};

const struct vshm_vu_device_ops *vgs_gpu_device_ops(void)
{
	return &gpu_ops;
}
