/* SPDX-License-Identifier: MIT */
/*
 * ctx.c - rendering contexts and per-context fence timelines.
 *
 * In 2D mode no context type (capset) exists, so CONTEXT_INIT is not
 * offered and a context is only a name: CTX_CREATE with capset 0 is
 * tracked (bounded), any capset id is refused with INVALID_PARAMETER.
 *
 * Fences carrying INFO_RING_IDX belong to the timeline (ctx_id, ring_idx)
 * (protocols.md §4.3). Every command completes before its response and
 * responses leave in request order, so a timeline completes in submission
 * order by construction; what is kept here is the last completed fence of
 * each timeline. A fence naming a ring >= 64 is refused before the command
 * runs (it still completes, with the error); one on a context that does
 * not exist completes without a timeline to advance.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "gpu-internal.h"

struct vgs_context {
	uint32_t id; /* 0 = free slot */
	uint32_t capset;
	uint32_t resources; /* attached resources (informational) */
	uint64_t ring_fence[VGS_NUM_RINGS];
};

static struct vgs_context *find(const struct vgs_gpu *gpu, uint32_t id)
{
	if (id == 0 || !gpu->contexts)
		return NULL;
	for (uint32_t i = 0; i < VGS_MAX_CONTEXTS; i++)
		if (gpu->contexts[i].id == id)
			return &gpu->contexts[i];
	return NULL;
}

uint32_t vgs_cmd_ctx_create(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	const struct virtio_gpu_ctx_create *c = &r->cmd.ctx_create;
	uint32_t nlen = le32toh(c->nlen), init = le32toh(c->context_init);
	uint32_t capset = init & VIRTIO_GPU_CONTEXT_INIT_CAPSET_ID_MASK;
	struct vgs_context *slot = NULL;

	if (r->ctx_id == 0 || find(gpu, r->ctx_id)) {
		vgs_warn(gpu, "gpu: ctx_create: bad or duplicate context id %u", r->ctx_id);
		return VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID;
	}
	if (nlen > sizeof(c->debug_name) || (init & ~VIRTIO_GPU_CONTEXT_INIT_CAPSET_ID_MASK)) {
		vgs_warn(gpu, "gpu: ctx_create: context %u: nlen %u, context_init 0x%x", r->ctx_id,
		         nlen, init);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (capset != 0) {
		vgs_warn(gpu, "gpu: ctx_create: context %u asks for capset %u; none in 2D mode",
		         r->ctx_id, capset);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (!gpu->contexts) {
		gpu->contexts = calloc(VGS_MAX_CONTEXTS, sizeof(*gpu->contexts));
		if (!gpu->contexts)
			return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	for (uint32_t i = 0; i < VGS_MAX_CONTEXTS && !slot; i++)
		if (gpu->contexts[i].id == 0)
			slot = &gpu->contexts[i];
	if (!slot) {
		vgs_warn(gpu, "gpu: ctx_create: context limit (%u) reached", VGS_MAX_CONTEXTS);
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	memset(slot, 0, sizeof(*slot));
	slot->id = r->ctx_id;
	slot->capset = capset;
	gpu->ncontexts++;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

uint32_t vgs_cmd_ctx_destroy(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	struct vgs_context *c = find(gpu, r->ctx_id);

	if (!c) {
		vgs_warn(gpu, "gpu: ctx_destroy: no context %u", r->ctx_id);
		return VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID;
	}
	memset(c, 0, sizeof(*c));
	gpu->ncontexts--;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t attach_detach(struct vgs_gpu *gpu, struct vgs_ctrl_req *r, bool attach)
{
	uint32_t id = le32toh(r->cmd.ctx_resource.resource_id);
	struct vgs_context *c = find(gpu, r->ctx_id);

	if (!c) {
		vgs_warn(gpu, "gpu: ctx_%s_resource: no context %u", attach ? "attach" : "detach",
		         r->ctx_id);
		return VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID;
	}
	if (!vgs_res_lookup(gpu, id)) {
		vgs_warn(gpu, "gpu: ctx_%s_resource: no resource %u", attach ? "attach" : "detach",
		         id);
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	}
	if (attach)
		c->resources++;
	else if (c->resources)
		c->resources--;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

uint32_t vgs_cmd_ctx_attach_resource(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	return attach_detach(gpu, r, true);
}

uint32_t vgs_cmd_ctx_detach_resource(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	return attach_detach(gpu, r, false);
}

uint32_t vgs_ctx_check_ring(struct vgs_gpu *gpu, const struct vgs_ctrl_req *r)
{
	if (!(r->flags & VIRTIO_GPU_FLAG_FENCE) || !(r->flags & VIRTIO_GPU_FLAG_INFO_RING_IDX))
		return VIRTIO_GPU_RESP_OK_NODATA;
	if (r->ring_idx >= VGS_NUM_RINGS) {
		vgs_warn(gpu, "gpu: fence %llu names ring %u (max %u)",
		         (unsigned long long)r->fence_id, r->ring_idx, VGS_NUM_RINGS - 1);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	/* An unknown context is the command's business: its fence still completes. */
	return VIRTIO_GPU_RESP_OK_NODATA;
}

void vgs_ctx_fence_done(struct vgs_gpu *gpu, const struct vgs_ctrl_req *r)
{
	struct vgs_context *c = find(gpu, r->ctx_id);

	if (!c || r->ring_idx >= VGS_NUM_RINGS)
		return; /* no such timeline (an error response, or an unknown context) */
	if (r->fence_id < c->ring_fence[r->ring_idx])
		vgs_warn(gpu, "gpu: fence %llu on context %u ring %u goes back from %llu",
		         (unsigned long long)r->fence_id, r->ctx_id, r->ring_idx,
		         (unsigned long long)c->ring_fence[r->ring_idx]);
	else
		c->ring_fence[r->ring_idx] = r->fence_id;
	gpu->stats.ring_fences++;
}

uint64_t vgs_ctx_ring_fence(const struct vgs_gpu *gpu, uint32_t ctx_id, uint32_t ring)
{
	const struct vgs_context *c = find(gpu, ctx_id);

	return c && ring < VGS_NUM_RINGS ? c->ring_fence[ring] : 0;
}

void vgs_ctx_reset(struct vgs_gpu *gpu)
{
	free(gpu->contexts);
	gpu->contexts = NULL;
	gpu->ncontexts = 0;
}
