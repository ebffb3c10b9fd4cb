/* SPDX-License-Identifier: MIT */
/*
 * ctrlq.c - the control queue: pop, decode, dispatch, respond.
 *
 * Responses leave in request order. Every 2D command completes inline;
 * only a display query a sink answers later suspends the queue, and while
 * it waits nothing else is popped, so order (and with it the fence order
 * the Linux driver checks) holds without a reorder buffer. Processing
 * never blocks: it drains what is available, then notifies once.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gpu-internal.h"

struct cmd_desc {
	uint32_t type;
	uint32_t size; /* the fixed request struct, header included */
	uint32_t (*fn)(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
};

static const struct cmd_desc cmds[] = {
	{ VIRTIO_GPU_CMD_GET_DISPLAY_INFO, sizeof(struct virtio_gpu_ctrl_hdr),
	  vgs_cmd_get_display_info },
	{ VIRTIO_GPU_CMD_RESOURCE_CREATE_2D, sizeof(struct virtio_gpu_resource_create_2d),
	  vgs_cmd_resource_create_2d },
	{ VIRTIO_GPU_CMD_RESOURCE_UNREF, sizeof(struct virtio_gpu_resource_unref),
	  vgs_cmd_resource_unref },
	{ VIRTIO_GPU_CMD_SET_SCANOUT, sizeof(struct virtio_gpu_set_scanout), vgs_cmd_set_scanout },
	{ VIRTIO_GPU_CMD_RESOURCE_FLUSH, sizeof(struct virtio_gpu_resource_flush),
	  vgs_cmd_resource_flush },
	{ VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D, sizeof(struct virtio_gpu_transfer_to_host_2d),
	  vgs_cmd_transfer_to_host_2d },
	{ VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING, sizeof(struct virtio_gpu_resource_attach_backing),
	  vgs_cmd_attach_backing },
	{ VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, sizeof(struct virtio_gpu_resource_detach_backing),
	  vgs_cmd_detach_backing },
	{ VIRTIO_GPU_CMD_GET_CAPSET_INFO, sizeof(struct virtio_gpu_get_capset_info),
	  vgs_cmd_get_capset_info },
	{ VIRTIO_GPU_CMD_GET_CAPSET, sizeof(struct virtio_gpu_get_capset), vgs_cmd_get_capset },
	{ VIRTIO_GPU_CMD_GET_EDID, sizeof(struct virtio_gpu_cmd_get_edid), vgs_cmd_get_edid },
	{ VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID, sizeof(struct virtio_gpu_resource_assign_uuid),
	  vgs_cmd_assign_uuid },
	/* Blob resources (cmd_blob.c, blob.c) */
	{ VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB, sizeof(struct virtio_gpu_resource_create_blob),
	  vgs_cmd_resource_create_blob },
	{ VIRTIO_GPU_CMD_SET_SCANOUT_BLOB, sizeof(struct virtio_gpu_set_scanout_blob),
	  vgs_cmd_set_scanout_blob },
	{ VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB, sizeof(struct virtio_gpu_resource_map_blob),
	  vgs_cmd_resource_map_blob },
	{ VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB, sizeof(struct virtio_gpu_resource_unmap_blob),
	  vgs_cmd_resource_unmap_blob },
	/* Contexts (ctx.c) */
	{ VIRTIO_GPU_CMD_CTX_CREATE, sizeof(struct virtio_gpu_ctx_create), vgs_cmd_ctx_create },
	{ VIRTIO_GPU_CMD_CTX_DESTROY, sizeof(struct virtio_gpu_ctx_destroy), vgs_cmd_ctx_destroy },
	{ VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, sizeof(struct virtio_gpu_ctx_resource),
	  vgs_cmd_ctx_attach_resource },
	{ VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE, sizeof(struct virtio_gpu_ctx_resource),
	  vgs_cmd_ctx_detach_resource },
};

_Static_assert(sizeof(((struct vgs_ctrl_req *)0)->cmd) >=
                       sizeof(struct virtio_gpu_set_scanout_blob),
               "request union holds the largest fixed request");

/* Decode and run one request; returns the response type or VGS_RESP_PENDING. */
static uint32_t run(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	const struct cmd_desc *d = NULL;
	uint32_t ring_check;

	gpu->stats.commands++;
	r->resp_len = sizeof(struct virtio_gpu_ctrl_hdr);
	if (r->out_bytes < sizeof(struct virtio_gpu_ctrl_hdr)) {
		vgs_warn(gpu, "gpu: ctrl: short request (%zu bytes)", r->out_bytes);
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	vshm_iov_to_buf(r->out_sg, r->out_num, 0, &r->cmd.hdr, sizeof(r->cmd.hdr));
	r->type = le32toh(r->cmd.hdr.type);
	r->flags = le32toh(r->cmd.hdr.flags);
	r->fence_id = le64toh(r->cmd.hdr.fence_id);
	r->ctx_id = le32toh(r->cmd.hdr.ctx_id);
	r->ring_idx = r->cmd.hdr.ring_idx;
	ring_check = vgs_ctx_check_ring(gpu, r);
	if (ring_check != VIRTIO_GPU_RESP_OK_NODATA)
		return ring_check;

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (cmds[i].type == r->type)
			d = &cmds[i];
	if (!d) {
		/* 3D and unknown commands: this device does not offer them. */
		vgs_warn(gpu, "gpu: ctrl: unsupported command 0x%x", r->type);
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	if (r->out_bytes < d->size) {
		vgs_warn(gpu, "gpu: ctrl: command 0x%x is %zu bytes, needs %u", r->type,
		         r->out_bytes, d->size);
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	vshm_iov_to_buf(r->out_sg, r->out_num, 0, &r->cmd, d->size);
	return d->fn(gpu, r);
}

/* Fill in the response header and copy the response out; returns bytes written. */
static size_t write_response(struct vgs_gpu *gpu, struct vgs_ctrl_req *r, uint32_t type)
{
	struct virtio_gpu_ctrl_hdr *h = &r->resp.hdr;

	if (type >= VIRTIO_GPU_RESP_ERR_UNSPEC) {
		gpu->stats.errors++;
		r->resp_len = sizeof(*h); /* errors carry no body */
	}
	memset(h, 0, sizeof(*h));
	h->type = htole32(type);
	if (r->flags & VIRTIO_GPU_FLAG_FENCE) {
		/* Every command completes before its response, so the fence is signalled now. */
		h->flags = htole32(VIRTIO_GPU_FLAG_FENCE);
		h->fence_id = htole64(r->fence_id);
		h->ctx_id = htole32(r->ctx_id);
		if (r->flags & VIRTIO_GPU_FLAG_INFO_RING_IDX) {
			/* Completes fence_id on timeline (ctx_id, ring_idx), in request order. */
			h->flags |= htole32(VIRTIO_GPU_FLAG_INFO_RING_IDX);
			h->ring_idx = r->ring_idx;
			vgs_ctx_fence_done(gpu, r);
		}
		gpu->stats.fences++;
	}
	if (r->in_bytes < r->resp_len) {
		/* A partial response would be misparsed; return the buffer empty instead. */
		gpu->stats.errors++;
		vgs_warn(gpu, "gpu: ctrl: response buffer %zu < %zu bytes (command 0x%x)",
		         r->in_bytes, r->resp_len, r->type);
		return 0;
	}
	return vshm_iov_from_buf(r->in_sg, r->in_num, 0, &r->resp, r->resp_len);
}

/* Respond, hand the buffer back and free the request. */
static void finish(struct vgs_gpu *gpu, struct vgs_ctrl_req *r, uint32_t type, bool notify)
{
	size_t written = write_response(gpu, r, type);

	if (r->elem) {
		vshm_vq_push(r->vq, r->elem, (uint32_t)written);
		if (notify)
			vshm_vq_notify(r->vq);
	} else if (r->done) {
		r->done(r->done_data, written);
	}
	free(r);
}

void vgs_ctrlq_process(struct vgs_gpu *gpu, struct vshm_vq *vq)
{
	bool pushed = false;

	/* Re-entered from a sink callback: let the outer loop pick up the work. */
	if (gpu->ctrl_busy) {
		gpu->ctrl_again = true;
		return;
	}
	gpu->ctrl_busy = true;
	do {
		gpu->ctrl_again = false;
		while (!gpu->inflight) {
			struct vshm_vq_elem *elem;
			struct vgs_ctrl_req *r;
			uint32_t type;
			int rc = vshm_vq_pop(vq, &elem);

			if (rc < 0) {
				if (rc == -EIO)
					vgs_warn(gpu, "gpu: controlq is broken");
				break;
			}
			r = calloc(1, sizeof(*r));
			if (!r) {
				gpu->stats.errors++;
				vshm_vq_push(vq, elem, 0);
				pushed = true;
				continue;
			}
			r->vq = vq;
			r->elem = elem;
			r->out_sg = elem->out_sg;
			r->out_num = elem->out_num;
			r->out_bytes = elem->out_bytes;
			r->in_sg = elem->in_sg;
			r->in_num = elem->in_num;
			r->in_bytes = elem->in_bytes;
			type = run(gpu, r);
			if (type == VGS_RESP_PENDING) {
				gpu->inflight = r;
				break;
			}
			finish(gpu, r, type, false);
			pushed = true;
		}
	} while (gpu->ctrl_again && !gpu->inflight);
	gpu->ctrl_busy = false;
	if (pushed)
		vshm_vq_notify(vq);
	/*
	 * The guest has its responses: prepare spare images now, not in its
	 * next transfer, and after this batch's display sends (defer hook).
	 */
	vgs_gpu_request_deferred(gpu);
}

void vgs_ctrl_complete(struct vgs_gpu *gpu, struct vgs_ctrl_req *r, uint32_t resp_type)
{
	if (gpu->inflight == r)
		gpu->inflight = NULL;
	finish(gpu, r, resp_type, true);
	/* The queue was paused behind this request; drain what queued up meanwhile. */
	if (gpu->ctrlq)
		vgs_ctrlq_process(gpu, gpu->ctrlq);
}

void vgs_ctrl_abort_inflight(struct vgs_gpu *gpu, bool push)
{
	struct vgs_ctrl_req *r = gpu->inflight;

	if (!r)
		return;
	gpu->inflight = NULL;
	vgs_query_cancel(r);
	if (push) {
		finish(gpu, r, VIRTIO_GPU_RESP_ERR_UNSPEC, true);
		return;
	}
	if (r->elem)
		vshm_vq_elem_free(r->elem);
	else if (r->done)
		r->done(r->done_data, 0);
	free(r);
}

ssize_t vgs_gpu_ctrl_direct(struct vgs_gpu *gpu, const void *req, size_t req_len, void *resp,
                            size_t resp_cap, vgs_ctrl_done_fn done, void *done_data)
{
	struct vgs_ctrl_req *r;
	uint32_t type;
	size_t written;

	if (gpu->inflight)
		return -EBUSY;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->direct_out.iov_base = (void *)req;
	r->direct_out.iov_len = req_len;
	r->direct_in.iov_base = resp;
	r->direct_in.iov_len = resp_cap;
	r->out_sg = &r->direct_out;
	r->out_num = 1;
	r->out_bytes = req_len;
	r->in_sg = &r->direct_in;
	r->in_num = 1;
	r->in_bytes = resp_cap;
	r->done = done;
	r->done_data = done_data;
	type = run(gpu, r);
	if (type == VGS_RESP_PENDING) {
		gpu->inflight = r;
		return -EINPROGRESS;
	}
	written = write_response(gpu, r, type);
	free(r);
	return (ssize_t)written;
}
