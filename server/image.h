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

#include <stdbool.h>
#include <stdint.h>

struct vgs_image;

/* Frees what backs a view's pixels; runs once, at the last unref. */
typedef void (*vgs_image_release_fn)(struct vgs_image *img, void *data);

struct vgs_image {
	unsigned refcount;
	/*
	 * Readers of a frame in the image right now (vgs_image_hold): a display
	 * consumer between FRAME and FRAME_RELEASE, an UPDATE by reference still
	 * queued. The device never writes pixels while this is non-zero; it
	 * switches the resource to another image instead (device/image_pool.c).
	 * A hold is not a reference: holders keep one of those too.
	 */
	unsigned holds;
	int memfd;     /* owned by the image; -1 if anonymous memory was used */
	uint8_t *data; /* MAP_SHARED mapping of memfd, @size bytes */
	uint64_t size; /* stride * height, rounded up to the page size */
	uint32_t width, height, stride;
	uint32_t format; /* VIRTIO_GPU_FORMAT_* */
	uint32_t drm_fourcc;
	uint32_t bpp;        /* bytes per pixel (4 for every virtio-gpu 2D format) */
	uint64_t prefaulted; /* bytes from the start already faulted in (image_pool.c) */
	/*
	 * Views only (vgs_image_new_view): the pixels belong to someone else
	 * (a blob's memfd, guest memory mapped by the device). At the last
	 * unref @release runs instead of munmap/close; @memfd is then owned by
	 * whatever @release_data keeps alive, not by the image.
	 */
	vgs_image_release_fn release;
	void *release_data;
	/*
	 * Views only: the pixels are also a dma-buf (a udmabuf of guest pages,
	 * device/blob.c), @dmabuf_fd BORROWED (owned by @release_data, valid
	 * until @release), pixel (0,0) at @dmabuf_offset in it. Display sinks
	 * dup it to share the scanout without copying (DMABUF_BUFFER).
	 */
	bool has_dmabuf;
	int dmabuf_fd;
	uint64_t dmabuf_offset;
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
/*
 * Start / stop reading a frame in @img (see @holds). The caller must own a
 * reference for as long as it holds; unhold before the matching unref.
 * NULL ok. Inline: sinks that stand in their own images (tests) need no
 * device code for it.
 */
static inline void vgs_image_hold(struct vgs_image *img)
{
	if (img)
		img->holds++;
}

static inline void vgs_image_unhold(struct vgs_image *img)
{
	if (img && img->holds > 0)
		img->holds--;
}

#endif
