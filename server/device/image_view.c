/* SPDX-License-Identifier: MIT */
/*
 * image_view.c - images over pixels the device does not own: a
 * host-visible blob's memfd, or guest memory mapped for a blob scanout.
 *
 * A view is a struct vgs_image like any other, so every display sink
 * reads it without knowing where the bytes live; only the last unref
 * differs (image.c calls the view's release hook instead of munmap/close).
 */
#include <errno.h>
#include <stdlib.h>

#include <vshm-proto/virtio-gpu.h>

#include "gpu-internal.h"

#define FOURCC(a, b, c, d)                                                                         \
	((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))

/* Same mapping as image.c (virtio-gpu byte order -> DRM little-endian word). */
static uint32_t view_fourcc(uint32_t format)
{
	switch (format) {
	case VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM:
		return FOURCC('A', 'R', '2', '4');
	case VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM:
		return FOURCC('X', 'R', '2', '4');
	case VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM:
		return FOURCC('B', 'A', '2', '4');
	case VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM:
		return FOURCC('B', 'X', '2', '4');
	case VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM:
		return FOURCC('A', 'B', '2', '4');
	case VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM:
		return FOURCC('R', 'X', '2', '4');
	case VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM:
		return FOURCC('R', 'A', '2', '4');
	case VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM:
		return FOURCC('X', 'B', '2', '4');
	default:
		return 0;
	}
}

/* image.c frees a view when release is set; this one frees nothing else. */
static void release_nothing(struct vgs_image *img, void *data)
{
	(void)img;
	(void)data;
}

int vgs_image_new_view(void *data, uint64_t size, uint32_t stride, uint32_t width, uint32_t height,
                       uint32_t format, int memfd, vgs_image_release_fn release, void *release_data,
                       struct vgs_image **out)
{
	uint32_t fourcc = view_fourcc(format);
	struct vgs_image *img;

	*out = NULL;
	if (!data || !fourcc || width == 0 || height == 0 || width > VGS_MAX_DIM ||
	    height > VGS_MAX_DIM)
		return -EINVAL;
	/* All terms < 2^46: no overflow. The last row need not be padded to the stride. */
	if (stride < width * 4u || (uint64_t)stride * (height - 1) + (uint64_t)width * 4 > size)
		return -EINVAL;
	img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	img->refcount = 1;
	img->memfd = memfd;
	img->data = data;
	img->size = size;
	img->width = width;
	img->height = height;
	img->stride = stride;
	img->format = format;
	img->drm_fourcc = fourcc;
	img->bpp = 4;
	img->release = release ? release : release_nothing;
	img->release_data = release_data;
	*out = img;
	return 0;
}
