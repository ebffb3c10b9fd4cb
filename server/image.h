/* SPDX-License-Identifier: MIT */
/*
 * image.h - the host copy of a 2D resource.
 *
 * Pixels live in a sealed-size memfd so the same storage can later be
 * handed, read-only, to display consumers without copying. Images are
 * reference-counted: a display sink that is still sending an update holds
 * a reference, so RESOURCE_UNREF never frees memory under a send.
 */
#ifndef VGS_IMAGE_H
#define VGS_IMAGE_H

#include <stdint.h>

struct vgs_image {
	unsigned refcount;
	int memfd;     /* owned by the image; -1 if anonymous memory was used */
	uint8_t *data; /* MAP_SHARED mapping of memfd, @size bytes */
	uint64_t size; /* stride * height, rounded up to the page size */
	uint32_t width, height, stride;
	uint32_t format; /* VIRTIO_GPU_FORMAT_* */
	uint32_t drm_fourcc;
	uint32_t bpp; /* bytes per pixel (4 for every virtio-gpu 2D format) */
};

/* Allocate a zeroed image. 0 or -errno (-ENOMEM, -EINVAL for bad sizes). */
int vgs_image_new(uint32_t width, uint32_t height, uint32_t format, struct vgs_image **out);
struct vgs_image *vgs_image_ref(struct vgs_image *img);
/* Drops a reference; frees at zero. NULL ok. */
void vgs_image_unref(struct vgs_image *img);

#endif
