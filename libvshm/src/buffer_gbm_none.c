/* SPDX-License-Identifier: MIT */
/*
 * buffer_gbm_none.c - the GBM entry points of a build without GBM. They
 * exist so that libvshm exports the same symbols whatever the build options;
 * callers see -ENOTSUP and fall back to memfd or udmabuf buffers.
 */
#include <errno.h>
#include <stddef.h>

#include <vshm/buffer.h>
#include <vshm/log.h>

#include "util.h"

VSHM_EXPORT int vshm_gbm_new(const char *render_node, struct vshm_gbm **out)
{
	vshm_log(VSHM_LOG_INFO, "gbm: libvshm was built without GBM support");
	return -ENOTSUP;
}

VSHM_EXPORT void vshm_gbm_destroy(struct vshm_gbm *g)
{
}

VSHM_EXPORT const char *vshm_gbm_device_path(const struct vshm_gbm *g)
{
	return NULL;
}

VSHM_EXPORT int vshm_gbm_alloc(struct vshm_gbm *g, uint32_t width, uint32_t height, uint32_t fourcc,
                               uint32_t flags, struct vshm_dmabuf_desc *out)
{
	if (out)
		vshm_dmabuf_desc_init(out);
	return -ENOTSUP;
}
