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

struct vgs_image;

/* Frees what backs a view's pixels; runs once, at the last unref. */
typedef void (*vgs_image_release_fn)(struct vgs_image *img, void *data);

struct vgs_image {
	unsigned refcount;
	int memfd;     /* owned by the image; -1 if anonymous memory was used */
	uint8_t *data; /* MAP_SHARED mapping of memfd, @size bytes */
	uint64_t size; /* stride * height, rounded up to the page size */
	uint32_t width, height, stride;
	uint32_t format; /* VIRTIO_GPU_FORMAT_* */
	uint32_t drm_fourcc;
	uint32_t bpp; /* bytes per pixel (4 for every virtio-gpu 2D format) */
	/*
	 * Views only (vgs_image_new_view): the pixels belong to someone else
	 * (a blob's memfd, guest memory mapped by the device). At the last
	 * unref @release runs instead of munmap/close; @memfd is then owned by
	 * whatever @release_data keeps alive, not by the image.
	 */
	vgs_image_release_fn release;
	void *release_data;
};

/* Allocate a zeroed image. 0 or -errno (-ENOMEM, -EINVAL for bad sizes). */
int vgs_image_new(uint32_t width, uint32_t height, uint32_t format, struct vgs_image **out);
/*
 * A zero-copy image over @size bytes at @data (pixel (0,0); rows @stride
 * apart) that somebody else owns; @release(@release_data) frees them at the
 * last unref (NULL: nothing to free). @memfd (-1: none) is the sealed memfd
 * whose offset 0 is @data, for sinks that pass pixels by fd; it must stay
 * open until @release. -EINVAL for an unknown format, zero or oversized
 * dimensions, or a @stride / @size too small for the rows.
 */
int vgs_image_new_view(void *data, uint64_t size, uint32_t stride, uint32_t width, uint32_t height,
                       uint32_t format, int memfd, vgs_image_release_fn release, void *release_data,
                       struct vgs_image **out);
struct vgs_image *vgs_image_ref(struct vgs_image *img);
/* Drops a reference; frees at zero. NULL ok. */
void vgs_image_unref(struct vgs_image *img);

#endif
