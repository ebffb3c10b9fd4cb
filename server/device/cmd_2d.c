/* SPDX-License-Identifier: MIT */
/*
 * cmd_2d.c - the 2D control commands.
 *
 * Each handler gets a request whose fixed-size struct was already copied
 * out of guest memory (ctrlq.c checked its length), validates every field
 * and returns the response type; bodies go into r->resp. Nothing here
 * trusts a guest value without a bound check.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gpu-internal.h"

static struct vgs_rect rect_from_wire(const struct virtio_gpu_rect *w)
{
	struct vgs_rect r = {
		.x = le32toh(w->x),
		.y = le32toh(w->y),
		.width = le32toh(w->width),
		.height = le32toh(w->height),
	};
	return r;
}

static struct vgs_resource *lookup(struct vgs_gpu *gpu, uint32_t le_id, const char *what)
{
	uint32_t id = le32toh(le_id);
	struct vgs_resource *res = vgs_res_lookup(gpu, id);

	if (!res)
		vgs_warn(gpu, "gpu: %s: no resource %u", what, id);
	return res;
}

/* ---- display queries: answered by a sink that owns geometry, else by us ---- */

static void fill_display_info(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	struct virtio_gpu_resp_display_info *di = &r->resp.display_info;

	memset(di->pmodes, 0, sizeof(di->pmodes));
	/* Our own answer covers the configured heads; QEMU answers for its own. */
	for (uint32_t i = 0; i < gpu->cfg.num_scanouts; i++) {
		const struct vgs_scanout *so = &gpu->scanouts[i];
		di->pmodes[i].r.width = htole32(so->mode_width);
		di->pmodes[i].r.height = htole32(so->mode_height);
		di->pmodes[i].enabled = htole32(so->mode_enabled ? 1 : 0);
	}
	r->resp_len = sizeof(*di);
}

static void fill_edid(struct vgs_gpu *gpu, struct vgs_ctrl_req *r, uint32_t scanout_id)
{
	const struct vgs_scanout *so = &gpu->scanouts[scanout_id];

	memset(r->resp.edid.edid, 0, sizeof(r->resp.edid.edid));
	vgs_edid_generate(so->mode_width, so->mode_height, scanout_id + 1, r->resp.edid.edid);
	r->resp.edid.size = htole32(VGS_EDID_SIZE);
	r->resp_len = sizeof(r->resp.edid);
}

static void query_answered(struct vgs_query *q, uint32_t type)
{
	struct vgs_ctrl_req *r = q->req;
	struct vgs_gpu *gpu = q->gpu;

	q->answered = true;
	q->resp_type = type;
	/* Answered from inside the sink call: the handler picks it up on return. */
	if (q->in_call)
		return;
	r->query = NULL;
	free(q);
	vgs_ctrl_complete(gpu, r, type);
}

static void display_info_cb(void *cb_data, bool ok,
                            const struct vgs_display_info_mode modes[VGS_MAX_SCANOUTS])
{
	struct vgs_query *q = cb_data;
	struct vgs_gpu *gpu = q->gpu;

	if (!q->req) { /* cancelled by reset or queue stop */
		free(q);
		return;
	}
	if (ok && modes) {
		/* The sink's geometry becomes ours (EDID follows it), within our bounds. */
		for (uint32_t i = 0; i < VGS_MAX_SCANOUTS; i++) {
			struct vgs_scanout *so = &gpu->scanouts[i];
			bool valid = modes[i].width > 0 && modes[i].height > 0 &&
			             modes[i].width <= VGS_MAX_DIM &&
			             modes[i].height <= VGS_MAX_DIM;
			so->mode_enabled = modes[i].enabled && valid;
			if (valid) {
				so->mode_width = modes[i].width;
				so->mode_height = modes[i].height;
			}
		}
	}
	fill_display_info(gpu, q->req);
	query_answered(q, VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
}

static void edid_cb(void *cb_data, bool ok, const uint8_t *edid, uint32_t size)
{
	struct vgs_query *q = cb_data;
	struct vgs_ctrl_req *r = q->req;

	if (!r) {
		free(q);
		return;
	}
	if (ok && edid && size > 0) {
		if (size > VIRTIO_GPU_EDID_MAX)
			size = VIRTIO_GPU_EDID_MAX;
		memset(r->resp.edid.edid, 0, sizeof(r->resp.edid.edid));
		memcpy(r->resp.edid.edid, edid, size);
		r->resp.edid.size = htole32(size);
		r->resp_len = sizeof(r->resp.edid);
	} else {
		/* Timed out or refused: our own EDID beats leaving the guest without one. */
		fill_edid(q->gpu, r, q->scanout_id);
	}
	query_answered(q, VIRTIO_GPU_RESP_OK_EDID);
}

enum ask_result { ASK_NONE, ASK_ANSWERED, ASK_PENDING };

/*
 * Ask the first sink that implements the query. The answer may come back
 * during the call (handled here) or later (the control queue stays paused).
 */
static enum ask_result ask_sinks(struct vgs_gpu *gpu, struct vgs_ctrl_req *r, uint32_t scanout_id,
                                 bool edid, uint32_t *type)
{
	for (unsigned i = 0; i < gpu->nsinks; i++) {
		const struct vgs_display_sink *s = &gpu->sinks[i];
		struct vgs_query *q;
		int rc;

		if (edid ? !s->ops->get_edid : !s->ops->get_display_info)
			continue;
		q = calloc(1, sizeof(*q));
		if (!q)
			return ASK_NONE;
		q->gpu = gpu;
		q->req = r;
		q->scanout_id = scanout_id;
		q->in_call = true;
		r->query = q;
		rc = edid ? s->ops->get_edid(s->data, scanout_id, edid_cb, q)
		          : s->ops->get_display_info(s->data, display_info_cb, q);
		q->in_call = false;
		if (q->answered) {
			*type = q->resp_type;
			r->query = NULL;
			free(q);
			return ASK_ANSWERED;
		}
		if (rc == 0)
			return ASK_PENDING;
		/* This sink cannot answer; the callback will not come. */
		r->query = NULL;
		free(q);
	}
	return ASK_NONE;
}

void vgs_query_cancel(struct vgs_ctrl_req *r)
{
	if (r->query) {
		r->query->req = NULL;
		r->query = NULL;
	}
}

uint32_t vgs_cmd_get_display_info(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	uint32_t type;

	switch (ask_sinks(gpu, r, 0, false, &type)) {
	case ASK_ANSWERED:
		return type;
	case ASK_PENDING:
		return VGS_RESP_PENDING;
	case ASK_NONE:
		break;
	}
	fill_display_info(gpu, r);
	return VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
}

uint32_t vgs_cmd_get_edid(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	uint32_t scanout = le32toh(r->cmd.edid.scanout), type;

	if (!gpu->cfg.edid) {
		vgs_warn(gpu, "gpu: GET_EDID without the EDID feature");
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	/* Checked before asking a sink: QEMU never answers a bad scanout id. */
	if (scanout >= VGS_MAX_SCANOUTS) {
		vgs_warn(gpu, "gpu: GET_EDID: bad scanout %u", scanout);
		return VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID;
	}
	switch (ask_sinks(gpu, r, scanout, true, &type)) {
	case ASK_ANSWERED:
		return type;
	case ASK_PENDING:
		return VGS_RESP_PENDING;
	case ASK_NONE:
		break;
	}
	fill_edid(gpu, r, scanout);
	return VIRTIO_GPU_RESP_OK_EDID;
}

/* ---- resources ---- */

uint32_t vgs_cmd_resource_create_2d(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	const struct virtio_gpu_resource_create_2d *c = &r->cmd.create_2d;

	return vgs_res_create(gpu, le32toh(c->resource_id), le32toh(c->format), le32toh(c->width),
	                      le32toh(c->height));
}

uint32_t vgs_cmd_resource_unref(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	struct vgs_resource *res = lookup(gpu, r->cmd.unref.resource_id, "unref");

	if (!res)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	vgs_res_destroy(gpu, res);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

uint32_t vgs_cmd_attach_backing(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	struct vgs_resource *res = lookup(gpu, r->cmd.attach.resource_id, "attach");
	uint32_t n = le32toh(r->cmd.attach.nr_entries), type;
	struct virtio_gpu_mem_entry *e;
	size_t bytes;

	if (!res)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (res->blob_mem) {
		/* A blob's memory is fixed at creation. */
		vgs_warn(gpu, "gpu: attach: resource %u is a blob", res->id);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (n == 0 || n > gpu->cfg.limits.max_backing_entries) {
		vgs_warn(gpu, "gpu: attach: %u entries (max %u)", n,
		         gpu->cfg.limits.max_backing_entries);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	bytes = (size_t)n * sizeof(*e);
	if (r->out_bytes - sizeof(r->cmd.attach) < bytes) {
		vgs_warn(gpu, "gpu: attach: %u entries but only %zu bytes", n,
		         r->out_bytes - sizeof(r->cmd.attach));
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	e = malloc(bytes);
	if (!e)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	if (vshm_iov_to_buf(r->out_sg, r->out_num, sizeof(r->cmd.attach), e, bytes) != bytes) {
		free(e);
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	for (uint32_t i = 0; i < n; i++) {
		e[i].addr = le64toh(e[i].addr);
		e[i].length = le32toh(e[i].length);
	}
	type = vgs_res_attach_backing(gpu, res, e, n);
	if (type != VIRTIO_GPU_RESP_OK_NODATA)
		free(e);
	return type;
}

uint32_t vgs_cmd_detach_backing(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	struct vgs_resource *res = lookup(gpu, r->cmd.detach.resource_id, "detach");

	if (!res)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (res->blob_mem) {
		vgs_warn(gpu, "gpu: detach: resource %u is a blob", res->id);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (!res->entries) {
		vgs_warn(gpu, "gpu: detach: resource %u has no backing", res->id);
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	vgs_res_detach_backing(res);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

uint32_t vgs_cmd_transfer_to_host_2d(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	struct vgs_resource *res = lookup(gpu, r->cmd.transfer.resource_id, "transfer");
	struct vgs_rect rect = rect_from_wire(&r->cmd.transfer.r);

	if (!res)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	/*
	 * Linux sends transfers for guest-blob dumb buffers too (pitfall 17):
	 * the pixels already are where the sinks read them, so nothing moves.
	 */
	if (res->blob_mem)
		return VIRTIO_GPU_RESP_OK_NODATA;
	return vgs_res_transfer(gpu, res, &rect, le64toh(r->cmd.transfer.offset));
}

/* ---- scanouts ---- */

uint32_t vgs_scanout_begin(struct vgs_gpu *gpu, const char *cmd, uint32_t id, uint32_t res_id,
                           struct vgs_scanout **so, struct vgs_resource **res)
{
	if (id >= VGS_MAX_SCANOUTS) {
		vgs_warn(gpu, "gpu: %s: bad scanout %u", cmd, id);
		return VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID;
	}
	*so = &gpu->scanouts[id];
	if (res_id == 0) {
		/* Disabling is always valid, even when already disabled. */
		vgs_scanout_blob_clear(gpu, *so);
		(*so)->resource = NULL;
		memset(&(*so)->rect, 0, sizeof((*so)->rect));
		vgs_display_scanout(gpu, id);
		return VIRTIO_GPU_RESP_OK_NODATA;
	}
	*res = vgs_res_lookup(gpu, res_id);
	if (!*res) {
		vgs_warn(gpu, "gpu: %s: no resource %u", cmd, res_id);
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	}
	return 0;
}

uint32_t vgs_cmd_set_scanout(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	const struct virtio_gpu_set_scanout *c = &r->cmd.set_scanout;
	uint32_t id = le32toh(c->scanout_id), res_id = le32toh(c->resource_id);
	struct vgs_rect rect = rect_from_wire(&c->r);
	struct vgs_scanout *so;
	struct vgs_resource *res;
	uint32_t t = vgs_scanout_begin(gpu, "set_scanout", id, res_id, &so, &res);

	if (t)
		return t;
	if (res->blob_mem) {
		/* A blob has no format or size of its own: SET_SCANOUT_BLOB describes them. */
		vgs_warn(gpu, "gpu: set_scanout: resource %u is a blob", res_id);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (rect.width == 0 || rect.height == 0 ||
	    !vgs_rect_inside(&rect, res->width, res->height)) {
		vgs_warn(gpu, "gpu: set_scanout: rect %u,%u %ux%u outside resource %u (%ux%u)",
		         rect.x, rect.y, rect.width, rect.height, res_id, res->width, res->height);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	vgs_scanout_blob_clear(gpu, so);
	so->resource = res;
	so->rect = rect;
	vgs_display_scanout(gpu, id);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

uint32_t vgs_cmd_resource_flush(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	struct vgs_resource *res = lookup(gpu, r->cmd.flush.resource_id, "flush");
	struct vgs_rect fr = rect_from_wire(&r->cmd.flush.r);

	if (!res)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (res->blob_mem)
		return vgs_blob_flush(gpu, res, &fr);
	if (!vgs_rect_inside(&fr, res->width, res->height)) {
		vgs_warn(gpu, "gpu: flush: rect %u,%u %ux%u outside resource %u", fr.x, fr.y,
		         fr.width, fr.height, res->id);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	gpu->stats.flushes++;
	/* No copy here: sinks read the image later; they only learn what changed where. */
	for (uint32_t i = 0; i < VGS_MAX_SCANOUTS; i++) {
		const struct vgs_scanout *so = &gpu->scanouts[i];
		uint32_t x0, y0, x1, y1;
		struct vgs_rect d;

		if (so->resource != res)
			continue;
		/* Both rects are inside the resource, so these sums stay < 2^15 + 2^15. */
		x0 = fr.x > so->rect.x ? fr.x : so->rect.x;
		y0 = fr.y > so->rect.y ? fr.y : so->rect.y;
		x1 = fr.x + fr.width < so->rect.x + so->rect.width ? fr.x + fr.width
		                                                   : so->rect.x + so->rect.width;
		y1 = fr.y + fr.height < so->rect.y + so->rect.height ? fr.y + fr.height
		                                                     : so->rect.y + so->rect.height;
		if (x0 >= x1 || y0 >= y1)
			continue;
		d.x = x0 - so->rect.x;
		d.y = y0 - so->rect.y;
		d.width = x1 - x0;
		d.height = y1 - y0;
		vgs_display_flush(gpu, i, &d);
	}
	return VIRTIO_GPU_RESP_OK_NODATA;
}

/* ---- capsets (none in 2D mode) and UUIDs ---- */

uint32_t vgs_cmd_get_capset_info(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	vgs_warn(gpu, "gpu: GET_CAPSET_INFO %u: no capsets",
	         le32toh(r->cmd.capset_info.capset_index));
	return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
}

uint32_t vgs_cmd_get_capset(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	vgs_warn(gpu, "gpu: GET_CAPSET %u: no capsets", le32toh(r->cmd.capset.capset_id));
	return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
}

/* splitmix64's finalizer: a cheap bijective mixer. */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint32_t vgs_cmd_assign_uuid(struct vgs_gpu *gpu, struct vgs_ctrl_req *r)
{
	struct vgs_resource *res = lookup(gpu, r->cmd.uuid.resource_id, "assign_uuid");

	if (!res)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!res->has_uuid) {
		/* Keyed per device: stable for the resource, unrelated across devices. */
		uint64_t a = mix64(gpu->uuid_key[0] ^ res->id);
		uint64_t b = mix64(gpu->uuid_key[1] ^ a ^ ((uint64_t)res->id << 32));
		for (int i = 0; i < 8; i++) {
			res->uuid[i] = (uint8_t)(a >> (56 - 8 * i));
			res->uuid[8 + i] = (uint8_t)(b >> (56 - 8 * i));
		}
		res->uuid[6] = (res->uuid[6] & 0x0f) | 0x40; /* version 4 (random) */
		res->uuid[8] = (res->uuid[8] & 0x3f) | 0x80; /* RFC 4122 variant */
		res->has_uuid = true;
	}
	memcpy(r->resp.uuid.uuid, res->uuid, 16);
	r->resp_len = sizeof(r->resp.uuid);
	return VIRTIO_GPU_RESP_OK_RESOURCE_UUID;
}
