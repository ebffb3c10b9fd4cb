/* SPDX-License-Identifier: MIT */
/*
 * consumer_dmabuf.c - how a vshm consumer gets an image that is not in a
 * sealed memfd (guest-blob scanouts: a view of guest memory, or a udmabuf
 * of scattered guest pages; or a host-visible blob whose memfd the device
 * could not seal, device/blob.c seal_host_blob()):
 *
 *  - DMABUF: the image carries a dma-buf (a udmabuf view, device/blob.c)
 *    and the consumer negotiated VSHM_DMABUF: DMABUF_BUFFER with a dup of
 *    the dma-buf, modifier LINEAR, the view's stride and the offset of
 *    pixel (0,0). Zero copies from guest RAM to the consumer. With
 *    VSHM_FENCE each FRAME of such a buffer carries a sync_file exported
 *    from the dma-buf (DMA_BUF_IOCTL_EXPORT_SYNC_FILE, Linux 6.0+) when
 *    the kernel has the ioctl, else no fence.
 *  - COPY, the explicit fallback: a sealed memfd image (the "shadow") that
 *    is filled from the view when first needed and refreshed for the
 *    damage at every flush, shared through SHM_BUFFER like any 2D image.
 *    The first time each reason occurs it is logged, and every frame is
 *    counted (vgs_consumer_info.frames_copy vs frames_dmabuf).
 *
 * The dma-buf source and the kernel calls go through a provider (struct
 * vgs_consumers_dmabuf_ops) so tests can stand a memfd in for a dma-buf:
 * the host that runs the unit tests has no /dev/udmabuf.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <vshm/buffer.h>
#include <vshm/fence.h>

#include "consumers-internal.h"
#include "image.h"

/* ---- the default provider: libvshm and the image's own dma-buf ---- */

static bool def_available(void *data, const char **reason)
{
	(void)data;
	return vshm_udmabuf_available(reason);
}

static int def_export_image(void *data, const struct vgs_image *img, int *fd, uint64_t *offset)
{
	int d;

	(void)data;
	if (!img->has_dmabuf || img->dmabuf_fd < 0)
		return -ENOENT;
	d = fcntl(img->dmabuf_fd, F_DUPFD_CLOEXEC, 0);
	if (d < 0)
		return -errno;
	*fd = d;
	*offset = img->dmabuf_offset;
	return 0;
}

static int def_export_fence(void *data, int dmabuf_fd, int *sync_file)
{
	(void)data;
	/* READ: the fence waits for writers of the buffer (the consumer reads it). */
	return vshm_fence_export_from_dmabuf(dmabuf_fd, VSHM_FENCE_READ, sync_file);
}

static int def_fence_support(void *data)
{
	(void)data;
	return vshm_fence_sync_file_support();
}

static const struct vgs_consumers_dmabuf_ops default_ops = {
	.available = def_available,
	.export_image = def_export_image,
	.export_fence = def_export_fence,
	.fence_support = def_fence_support,
};

void vgs_consumers_set_dmabuf_ops(struct vgs_consumers *cs,
                                  const struct vgs_consumers_dmabuf_ops *ops, void *data)
{
	cs->dmabuf_ops = ops;
	cs->dmabuf_data = data;
}

static const struct vgs_consumers_dmabuf_ops *ops_of(const struct vgs_consumers *cs)
{
	return cs->dmabuf_ops ? cs->dmabuf_ops : &default_ops;
}

/* ---- decisions ---- */

uint64_t cons_dmabuf_features(struct vgs_consumers *cs)
{
	const struct vgs_consumers_dmabuf_ops *ops = ops_of(cs);
	uint64_t f = 0;

	if (!ops->available(cs->dmabuf_data, NULL))
		return 0;
	f |= VSHM_DISPLAY_PROTOCOL_F_VSHM_DMABUF;
	/* Unknown (-1) until a dma-buf was tried: offer, and send no fence if it fails. */
	if (ops->fence_support(cs->dmabuf_data) != 0)
		f |= VSHM_DISPLAY_PROTOCOL_F_VSHM_FENCE;
	return f;
}

enum cbuf_kind cons_buffer_decide(bool sealed_memfd, bool consumer_dmabuf, bool image_dmabuf)
{
	if (sealed_memfd)
		return CBUF_SHM;
	if (consumer_dmabuf && image_dmabuf)
		return CBUF_DMABUF;
	return CBUF_COPY;
}

/* Log each fallback reason once per daemon (the counters say how often). */
static void note_copy(struct vgs_consumer *c, unsigned reason_bit, const char *why)
{
	struct vgs_consumers *cs = c->cs;

	if (cs->copy_reasons_logged & reason_bit)
		return;
	cs->copy_reasons_logged |= reason_bit;
	vshm_log(VSHM_LOG_INFO,
	         "consumers: blob scanout shared as a memfd COPY refreshed at each flush "
	         "(consumer %u): %s; counted in frames_copy (logged once)",
	         c->id, why);
}

enum cbuf_kind cons_buffer_kind(struct vgs_consumer *c, const struct cimage *ci, bool sealed_memfd)
{
	const struct vgs_consumers_dmabuf_ops *ops = ops_of(c->cs);
	bool cdma = c->features & VSHM_DISPLAY_PROTOCOL_F_VSHM_DMABUF;
	bool idma = ci->img->has_dmabuf;
	enum cbuf_kind k = cons_buffer_decide(sealed_memfd, cdma, idma);
	const char *reason = NULL;

	if (k != CBUF_COPY)
		return k;
	if (ci->img->memfd >= 0)
		note_copy(c, 1u << 3,
		          "a host-visible blob's memfd is not sealed against writes (see the "
		          "\"host blob N stays unsealed\" line for why)");
	else if (!ops->available(c->cs->dmabuf_data, &reason))
		note_copy(c, 1u << 0, reason ? reason : "udmabuf is not available");
	else if (!cdma)
		note_copy(c, 1u << 1, "the consumer did not negotiate VSHM_DMABUF");
	else
		note_copy(c, 1u << 2,
		          "the image has no dma-buf (udmabuf off for this device, or the udmabuf "
		          "import failed: see the udmabuf log line)");
	return k;
}

/* ---- DMABUF_BUFFER ---- */

bool cons_dmabuf_define(struct vgs_consumer *c, const struct cimage *ci, uint32_t id)
{
	const struct vgs_consumers_dmabuf_ops *ops = ops_of(c->cs);
	const struct vgs_image *img = ci->img;
	struct vshm_display_dmabuf_buffer m;
	uint64_t offset = 0;
	int fd = -1, r;
	bool ok;

	r = ops->export_image(c->cs->dmabuf_data, img, &fd, &offset);
	if (r < 0 || offset > UINT32_MAX) {
		if (fd >= 0)
			close(fd);
		vshm_log_ratelimited(
		        &c->cs->rl, VSHM_LOG_WARN,
		        "consumer %u: no dma-buf for the image (%s); scanout not shared", c->id,
		        r < 0 ? strerror(-r) : "offset beyond 4 GiB");
		return false;
	}
	memset(&m, 0, sizeof(m));
	m.buffer_id = id;
	m.width = img->width;
	m.height = img->height;
	m.drm_fourcc = img->drm_fourcc;
	m.flags = VSHM_DISPLAY_BUFFER_F_Y_0_TOP;
	m.num_planes = 1;
	m.modifier = VSHM_DMABUF_MOD_LINEAR;
	m.planes[0].offset = (uint32_t)offset;
	m.planes[0].stride = img->stride;
	ok = consumer_ctl(c, VSHM_DISPLAY_DMABUF_BUFFER, &m, sizeof(m), NULL, 0, &fd, 1);
	close(fd);
	return ok;
}

int cons_dmabuf_frame_fence(struct vgs_consumer *c, const struct cimage *ci)
{
	const struct vgs_consumers_dmabuf_ops *ops = ops_of(c->cs);
	uint64_t offset;
	int fd = -1, sf = -1;

	if (!(c->features & VSHM_DISPLAY_PROTOCOL_F_VSHM_FENCE) ||
	    ops->fence_support(c->cs->dmabuf_data) == 0)
		return -1;
	if (ops->export_image(c->cs->dmabuf_data, ci->img, &fd, &offset) < 0)
		return -1;
	if (ops->export_fence(c->cs->dmabuf_data, fd, &sf) < 0)
		sf = -1; /* no fence: the kernel lacks the ioctl (logged once by libvshm) */
	close(fd);
	return sf;
}

void cons_dmabuf_release_fence(struct vgs_consumer *c, const struct cimage *ci, int sync_file)
{
	const struct vgs_consumers_dmabuf_ops *ops = ops_of(c->cs);
	uint64_t offset;
	int fd = -1;

	/*
	 * The daemon never writes a guest blob's dma-buf (the guest does,
	 * without waiting for any consumer), so the fence is handed to the
	 * kernel: later kernel-side writers of the dma-buf wait for it. For
	 * memfd buffers it is closed unwaited: 2D images are protected by
	 * holds (device/image_pool.c), and a COPY is rewritten at the next
	 * flush like the guest memory it mirrors.
	 */
	if (!ci || ops->export_image(c->cs->dmabuf_data, ci->img, &fd, &offset) < 0)
		return;
	if (vshm_fence_import_to_dmabuf(fd, sync_file, VSHM_FENCE_READ) < 0)
		vshm_log_ratelimited(&c->cs->rl, VSHM_LOG_DEBUG,
		                     "consumer %u: release fence not imported into the dma-buf",
		                     c->id);
	close(fd);
}

/* ---- COPY: the shadow memfd ---- */

static void copy_rect(struct vgs_consumers *cs, const struct vgs_image *src, struct vgs_image *dst,
                      const struct vgs_rect *r)
{
	for (uint32_t y = r->y; y < r->y + r->height; y++)
		memcpy(dst->data + (size_t)y * dst->stride + (size_t)r->x * 4,
		       src->data + (size_t)y * src->stride + (size_t)r->x * 4,
		       (size_t)r->width * 4);
	cs->stats.copies++;
	cs->stats.copy_bytes += (uint64_t)r->width * 4 * r->height;
}

struct vgs_image *cons_copy_image(struct vgs_consumers *cs, struct cimage *ci)
{
	const struct vgs_image *img = ci->img;

	if (!ci->shadow) {
		struct vgs_rect all = { 0, 0, img->width, img->height };

		if (vgs_image_new(img->width, img->height, img->format, &ci->shadow) < 0) {
			ci->shadow = NULL;
			vshm_log_ratelimited(&cs->rl, VSHM_LOG_WARN,
			                     "consumers: no memory for a %ux%u scanout copy",
			                     img->width, img->height);
			return NULL;
		}
		copy_rect(cs, img, ci->shadow, &all);
	}
	return ci->shadow;
}

void cons_copy_flush(struct vgs_consumers *cs, struct cimage *ci, const struct vgs_rect *r)
{
	struct vgs_rect c = *r;

	if (!ci || !ci->shadow)
		return;
	if (c.x >= ci->img->width || c.y >= ci->img->height)
		return;
	if (c.width > ci->img->width - c.x)
		c.width = ci->img->width - c.x;
	if (c.height > ci->img->height - c.y)
		c.height = ci->img->height - c.y;
	copy_rect(cs, ci->img, ci->shadow, &c);
}
