/* SPDX-License-Identifier: MIT */
/*
 * image.c - host copies of 2D resources in sealed memfds.
 *
 * The memfd is sealed against shrinking and growing once sized, so a
 * consumer that receives it (read-only) can mmap it without risking SIGBUS
 * from a later truncate, and without trusting us to keep the size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vshm-proto/virtio-gpu.h>

#include "gpu-internal.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010 /* Linux 5.1 */
#endif

/* DRM fourcc codes, spelled out so we need no libdrm headers. */
#define FOURCC(a, b, c, d)                                                                         \
	((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))

/*
 * virtio-gpu names formats by byte order in memory, DRM by the bits of a
 * little-endian 32-bit word, so the letters appear reversed.
 */
static uint32_t format_to_fourcc(uint32_t format)
{
	switch (format) {
	case VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM:
		return FOURCC('A', 'R', '2', '4'); /* ARGB8888 */
	case VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM:
		return FOURCC('X', 'R', '2', '4'); /* XRGB8888 */
	case VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM:
		return FOURCC('B', 'A', '2', '4'); /* BGRA8888 */
	case VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM:
		return FOURCC('B', 'X', '2', '4'); /* BGRX8888 */
	case VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM:
		return FOURCC('A', 'B', '2', '4'); /* ABGR8888 */
	case VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM:
		return FOURCC('R', 'X', '2', '4'); /* RGBX8888 */
	case VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM:
		return FOURCC('R', 'A', '2', '4'); /* RGBA8888 */
	case VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM:
		return FOURCC('X', 'B', '2', '4'); /* XBGR8888 */
	default:
		return 0;
	}
}

static uint64_t page_round(uint64_t n)
{
	long ps = sysconf(_SC_PAGESIZE);
	uint64_t p = ps > 0 ? (uint64_t)ps : 4096;
	return (n + p - 1) / p * p;
}

static int map_memfd(struct vgs_image *img)
{
	int fd = memfd_create("vshm-gpu-image", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	void *p;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)img->size) < 0)
		goto fail;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		goto fail;
	p = mmap(NULL, img->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		goto fail;
	/*
	 * Our writable mapping exists; from now on nobody (a display consumer
	 * reopening /proc/self/fd/N O_RDWR included) can write, map writable
	 * or change the seals (docs/protocol.md section 8). Kernels before 5.1
	 * lack F_SEAL_FUTURE_WRITE: the image still works, and the consumers
	 * module, which checks the seals, does not share it.
	 */
	(void)fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL);
	img->memfd = fd;
	img->data = p;
	return 0;
fail:;
	int e = -errno;
	close(fd);
	return e;
}

int vgs_image_new(uint32_t width, uint32_t height, uint32_t format, struct vgs_image **out)
{
	struct vgs_image *img;
	uint32_t fourcc = format_to_fourcc(format);

	*out = NULL;
	if (!fourcc || width == 0 || height == 0 || width > VGS_MAX_DIM || height > VGS_MAX_DIM)
		return -EINVAL;
	img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	img->refcount = 1;
	img->width = width;
	img->height = height;
	img->bpp = 4;
	img->stride = width * 4;
	img->format = format;
	img->drm_fourcc = fourcc;
	img->size = page_round((uint64_t)img->stride * height);

	/* memfd where possible (shareable); anonymous memory keeps a sandbox without memfd working.
	 */
	if (map_memfd(img) < 0) {
		void *p = mmap(NULL, img->size, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED) {
			free(img);
			return -ENOMEM;
		}
		img->memfd = -1;
		img->data = p;
	}
	*out = img;
	return 0;
}

bool vgs_image_prefault(struct vgs_image *img, uint64_t max_bytes)
{
	long ps = sysconf(_SC_PAGESIZE);
	uint64_t step = ps > 0 ? (uint64_t)ps : 4096;
	volatile uint8_t *p = img->data;
	uint64_t end =
	        img->size - img->prefaulted > max_bytes ? img->prefaulted + max_bytes : img->size;

	/*
	 * A write per page: the page is allocated, zeroed and mapped writable and
	 * dirty now, so the first real write takes no fault at all (a read fault or
	 * MAP_POPULATE still leaves the first writes about 3x slower). A fresh
	 * image is all zeroes, so writing 0 changes nothing a reader could see.
	 */
	for (uint64_t off = img->prefaulted; off < end; off += step)
		p[off] = 0;
	img->prefaulted = end;
	return end == img->size;
}

struct vgs_image *vgs_image_ref(struct vgs_image *img)
{
	if (img)
		img->refcount++;
	return img;
}

void vgs_image_unref(struct vgs_image *img)
{
	if (!img || --img->refcount > 0)
		return;
	if (img->release) { /* a view (image_view.c): the pixels are not ours */
		img->release(img, img->release_data);
		free(img);
		return;
	}
	munmap(img->data, img->size);
	if (img->memfd >= 0)
		close(img->memfd);
	free(img);
}
