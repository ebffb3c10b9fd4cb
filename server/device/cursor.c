/* SPDX-License-Identifier: MIT */
/*
 * cursor.c - the cursor queue.
 *
 * Every cursorq buffer is returned, malformed or not: the Linux driver only
 * reclaims cursor buffers when the device hands them back and blocks once
 * the queue is full (a backend that ignores the cursorq hangs the guest's
 * cursor plane).
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "gpu-internal.h"

/* Byte positions of R, G, B, A (-1: no alpha, opaque) in each format's pixel. */
struct byte_order {
	uint32_t format;
	int r, g, b, a;
};

static const struct byte_order orders[] = {
	{ VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, 2, 1, 0, 3 },
	{ VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 2, 1, 0, -1 },
	{ VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM, 1, 2, 3, 0 },
	{ VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM, 1, 2, 3, -1 },
	{ VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM, 0, 1, 2, 3 },
	{ VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM, 3, 2, 1, -1 },
	{ VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM, 3, 2, 1, 0 },
	{ VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM, 0, 1, 2, -1 },
};

/*
 * Snapshot the cursor resource as native-endian ARGB8888. Copying (16 KiB)
 * keeps the sink's shape stable even if the guest reuses the resource.
 */
static void convert_cursor(const struct vgs_image *img, uint32_t *out)
{
	const struct byte_order *o = &orders[0];

	for (size_t i = 0; i < sizeof(orders) / sizeof(orders[0]); i++)
		if (orders[i].format == img->format)
			o = &orders[i];
	for (uint32_t y = 0; y < VGS_CURSOR_DIM; y++) {
		const uint8_t *p = img->data + (size_t)y * img->stride;
		for (uint32_t x = 0; x < VGS_CURSOR_DIM; x++, p += 4) {
			uint32_t a = o->a < 0 ? 0xff : p[o->a];
			out[y * VGS_CURSOR_DIM + x] = a << 24 | (uint32_t)p[o->r] << 16 |
			                              (uint32_t)p[o->g] << 8 | p[o->b];
		}
	}
}

bool vgs_cursor_command(struct vgs_gpu *gpu, const void *buf, size_t len)
{
	struct virtio_gpu_update_cursor c;
	uint32_t type, scanout, res_id;
	struct vgs_resource *res;

	gpu->stats.commands++;
	if (len < sizeof(c)) {
		vgs_warn(gpu, "gpu: cursor: short request (%zu bytes)", len);
		goto bad;
	}
	memcpy(&c, buf, sizeof(c));
	type = le32toh(c.hdr.type);
	scanout = le32toh(c.pos.scanout_id);
	if (scanout >= VGS_MAX_SCANOUTS) {
		vgs_warn(gpu, "gpu: cursor: bad scanout %u", scanout);
		goto bad;
	}
	switch (type) {
	case VIRTIO_GPU_CMD_UPDATE_CURSOR:
		res_id = le32toh(c.resource_id);
		res = NULL;
		if (res_id != 0) {
			res = vgs_res_lookup(gpu, res_id);
			if (!res || res->width != VGS_CURSOR_DIM || res->height != VGS_CURSOR_DIM) {
				vgs_warn(gpu, "gpu: cursor: resource %u is not a %ux%u resource",
				         res_id, VGS_CURSOR_DIM, VGS_CURSOR_DIM);
				goto bad;
			}
		}
		gpu->cursor_scanout = scanout;
		gpu->cursor_x = le32toh(c.pos.x);
		gpu->cursor_y = le32toh(c.pos.y);
		gpu->cursor_hot_x = le32toh(c.hot_x);
		gpu->cursor_hot_y = le32toh(c.hot_y);
		gpu->cursor_visible = res != NULL;
		gpu->cursor_shape = res != NULL;
		if (res)
			convert_cursor(res->image, gpu->cursor_pixels);
		vgs_display_cursor_update(gpu, res ? gpu->cursor_pixels : NULL);
		return true;
	case VIRTIO_GPU_CMD_MOVE_CURSOR:
		/*
		 * Linux repeats the current cursor resource id in moves; id 0
		 * means "no cursor" (QEMU hides it), any other id shows the
		 * last shape again.
		 */
		gpu->cursor_visible = le32toh(c.resource_id) != 0 && gpu->cursor_shape;
		gpu->cursor_scanout = scanout;
		gpu->cursor_x = le32toh(c.pos.x);
		gpu->cursor_y = le32toh(c.pos.y);
		vgs_display_cursor_move(gpu);
		return true;
	default:
		vgs_warn(gpu, "gpu: cursor: unknown command 0x%x", type);
		goto bad;
	}
bad:
	gpu->stats.errors++;
	return false;
}

bool vgs_gpu_cursor_direct(struct vgs_gpu *gpu, const void *req, size_t req_len)
{
	return vgs_cursor_command(gpu, req, req_len);
}

void vgs_cursorq_process(struct vgs_gpu *gpu, struct vshm_vq *vq)
{
	struct vshm_vq_elem *elem;
	bool pushed = false;
	int rc;

	while ((rc = vshm_vq_pop(vq, &elem)) == 0) {
		uint8_t buf[sizeof(struct virtio_gpu_update_cursor)];
		size_t n = vshm_iov_to_buf(elem->out_sg, elem->out_num, 0, buf, sizeof(buf));
		vgs_cursor_command(gpu, buf, n);
		/* Cursor commands have no response body: return the buffer with 0 written. */
		vshm_vq_push(vq, elem, 0);
		pushed = true;
	}
	if (rc == -EIO)
		vgs_warn(gpu, "gpu: cursorq is broken");
	if (pushed)
		vshm_vq_notify(vq);
}
