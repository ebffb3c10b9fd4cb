/* SPDX-License-Identifier: MIT */
/*
 * buffer_gbm.c - dma-buf allocation on a DRM render node through GBM.
 * Built only when the gbm dependency is found; buffer_gbm_none.c provides
 * the same symbols otherwise so the exported ABI never depends on options.
 *
 * The bo is destroyed right after its planes are exported: the dma-buf fds
 * keep the memory alive, so callers only ever manage a vshm_dmabuf_desc.
 */
#include "vshm-config.h"

#if !HAVE_GBM
#error "buffer_gbm.c is only built when GBM is available"
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gbm.h>

#include <vshm/buffer.h>
#include <vshm/log.h>

#include "util.h"

/* Render node minors: 128 and up (DRM_MINOR_RENDER * 64 ... 255). */
#define RENDER_MINOR_FIRST 128
#define RENDER_MINOR_LAST  255

struct vshm_gbm {
	int fd;
	struct gbm_device *dev;
	char path[64];
};

static int open_node(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

VSHM_EXPORT int vshm_gbm_new(const char *render_node, struct vshm_gbm **out)
{
	struct vshm_gbm *g;
	int ret;

	if (!out)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->fd = -1;
	if (render_node) {
		snprintf(g->path, sizeof(g->path), "%s", render_node);
		g->fd = open_node(g->path);
	} else {
		int err = -ENOENT;

		/*
		 * The first node that opens. Remember a node that exists but
		 * failed (EACCES) so the log says more than "none found".
		 */
		for (int minor = RENDER_MINOR_FIRST; minor <= RENDER_MINOR_LAST && g->fd < 0;
		     minor++) {
			snprintf(g->path, sizeof(g->path), "/dev/dri/renderD%d", minor);
			g->fd = open_node(g->path);
			if (g->fd < 0 && g->fd != -ENOENT && err == -ENOENT)
				err = g->fd;
		}
		if (g->fd < 0)
			g->fd = err;
	}
	if (g->fd < 0) {
		ret = g->fd;
		vshm_log(VSHM_LOG_INFO, "gbm: no usable render node (%s: %s)",
		         render_node ? render_node : "/dev/dri/renderD*", strerror(-ret));
		goto err;
	}
	errno = 0;
	g->dev = gbm_create_device(g->fd);
	if (!g->dev) {
		ret = errno ? -errno : -ENODEV;
		vshm_log(VSHM_LOG_WARN, "gbm: gbm_create_device(%s) failed", g->path);
		goto err;
	}
	vshm_log(VSHM_LOG_DEBUG, "gbm: using %s (%s)", g->path,
	         gbm_device_get_backend_name(g->dev));
	*out = g;
	return 0;

err:
	if (g->fd >= 0)
		close(g->fd);
	free(g);
	return ret;
}

VSHM_EXPORT void vshm_gbm_destroy(struct vshm_gbm *g)
{
	if (!g)
		return;
	gbm_device_destroy(g->dev);
	/* GBM does not own the fd it was created from. */
	close(g->fd);
	free(g);
}

VSHM_EXPORT const char *vshm_gbm_device_path(const struct vshm_gbm *g)
{
	return g->path;
}

VSHM_EXPORT int vshm_gbm_alloc(struct vshm_gbm *g, uint32_t width, uint32_t height, uint32_t fourcc,
                               uint32_t flags, struct vshm_dmabuf_desc *out)
{
	uint32_t usage = GBM_BO_USE_RENDERING;
	struct gbm_bo *bo;
	int planes, ret = 0;

	if (!out)
		return -EINVAL;
	vshm_dmabuf_desc_init(out);
	if (!g || width == 0 || height == 0 || (flags & ~(VSHM_GBM_LINEAR | VSHM_GBM_SCANOUT)))
		return -EINVAL;
	if (flags & VSHM_GBM_LINEAR)
		usage |= GBM_BO_USE_LINEAR;
	if (flags & VSHM_GBM_SCANOUT)
		usage |= GBM_BO_USE_SCANOUT;
	errno = 0;
	bo = gbm_bo_create(g->dev, width, height, fourcc, usage);
	if (!bo) {
		/*
		 * Display-only drivers can allocate scanout/linear buffers but
		 * not render targets; the caller only needs memory it can share.
		 */
		bo = gbm_bo_create(g->dev, width, height, fourcc, usage & ~GBM_BO_USE_RENDERING);
	}
	if (!bo) {
		ret = errno ? -errno : -ENOMEM;
		vshm_log(VSHM_LOG_WARN, "gbm: cannot allocate %ux%u fourcc 0x%08x flags 0x%x on %s",
		         width, height, fourcc, flags, g->path);
		return ret;
	}
	planes = gbm_bo_get_plane_count(bo);
	if (planes < 1 || planes > VSHM_DMABUF_MAX_PLANES) {
		ret = -ENOTSUP;
		goto out;
	}
	out->width = width;
	out->height = height;
	out->fourcc = fourcc;
	out->modifier = gbm_bo_get_modifier(bo);
	/* An explicitly linear buffer is LINEAR even if the driver says "implicit". */
	if ((flags & VSHM_GBM_LINEAR) && out->modifier == VSHM_DMABUF_MOD_INVALID)
		out->modifier = VSHM_DMABUF_MOD_LINEAR;
	for (int i = 0; i < planes; i++) {
		/* One fd per plane (each call exports anew) so finish() closes each once. */
		int fd = gbm_bo_get_fd_for_plane(bo, i);

		if (fd < 0) {
			ret = -EIO;
			vshm_log(VSHM_LOG_WARN, "gbm: exporting plane %d failed", i);
			goto out;
		}
		out->fd[i] = fd;
		out->offset[i] = gbm_bo_get_offset(bo, i);
		out->stride[i] = gbm_bo_get_stride_for_plane(bo, i);
		out->n_planes = (uint32_t)i + 1;
	}
out:
	gbm_bo_destroy(bo);
	if (ret < 0)
		vshm_dmabuf_desc_finish(out);
	return ret;
}
