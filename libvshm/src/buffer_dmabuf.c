/* SPDX-License-Identifier: MIT */
/*
 * buffer_dmabuf.c - the dma-buf descriptor value type and the dma-buf CPU
 * access helpers (DMA_BUF_IOCTL_SYNC).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <vshm/buffer.h>
#include <vshm/log.h>

#include "buffer-internal.h"
#include "util.h"

VSHM_EXPORT void vshm_dmabuf_desc_init(struct vshm_dmabuf_desc *d)
{
	memset(d, 0, sizeof(*d));
	d->modifier = VSHM_DMABUF_MOD_INVALID;
	for (unsigned i = 0; i < VSHM_DMABUF_MAX_PLANES; i++)
		d->fd[i] = -1;
}

VSHM_EXPORT void vshm_dmabuf_desc_finish(struct vshm_dmabuf_desc *d)
{
	unsigned n;

	if (!d)
		return;
	n = d->n_planes < VSHM_DMABUF_MAX_PLANES ? d->n_planes : VSHM_DMABUF_MAX_PLANES;
	for (unsigned i = 0; i < n; i++) {
		bool seen = false;

		/*
		 * Producers sometimes put one fd in every plane of a multi-planar
		 * buffer. Closing the number twice would be a double close, and
		 * in a threaded process the second close could hit an unrelated
		 * fd that reused the number in between.
		 */
		for (unsigned j = 0; j < i; j++)
			seen = seen || d->fd[j] == d->fd[i];
		if (!seen)
			vshm_close_fd(d->fd[i]);
	}
	vshm_dmabuf_desc_init(d);
}

VSHM_EXPORT int vshm_dmabuf_desc_copy(struct vshm_dmabuf_desc *dst,
                                      const struct vshm_dmabuf_desc *src)
{
	struct vshm_dmabuf_desc tmp;
	int ret;

	vshm_dmabuf_desc_init(dst);
	if (!src || src->n_planes > VSHM_DMABUF_MAX_PLANES)
		return -EINVAL;
	tmp = *src;
	for (unsigned i = 0; i < VSHM_DMABUF_MAX_PLANES; i++)
		tmp.fd[i] = -1;
	tmp.n_planes = 0;
	for (unsigned i = 0; i < src->n_planes; i++) {
		if (src->fd[i] < 0) {
			ret = -EINVAL;
			goto err;
		}
		/* Every plane gets its own dup so finish() never double-closes. */
		tmp.fd[i] = fcntl(src->fd[i], F_DUPFD_CLOEXEC, 0);
		if (tmp.fd[i] < 0) {
			ret = -errno;
			goto err;
		}
		tmp.n_planes = i + 1;
	}
	*dst = tmp;
	return 0;

err:
	vshm_dmabuf_desc_finish(&tmp);
	return ret;
}

VSHM_EXPORT bool vshm_dmabuf_is_dmabuf(int fd)
{
	struct statfs sfs;

	if (fd < 0 || fstatfs(fd, &sfs) < 0)
		return false;
	return (unsigned long)sfs.f_type == VSHM_DMA_BUF_MAGIC;
}

int vshm_dmabuf_check_fd(int fd, bool *certain)
{
	struct statfs sfs;

	*certain = false;
	if (fd < 0)
		return -EBADF;
	if (fstatfs(fd, &sfs) < 0)
		return -errno;
	if ((unsigned long)sfs.f_type == VSHM_DMA_BUF_MAGIC) {
		*certain = true;
		return 0;
	}
	if ((unsigned long)sfs.f_type == VSHM_ANON_INODE_FS_MAGIC)
		return 0;
	return -ENOTTY;
}

static int dmabuf_sync(int fd, uint32_t flags, uint64_t phase)
{
	struct vshm_uapi_dma_buf_sync s;
	bool certain;
	int ret;

	if (flags == 0 || (flags & ~(uint32_t)VSHM_DMABUF_SYNC_RW))
		return -EINVAL;
	ret = vshm_dmabuf_check_fd(fd, &certain);
	if (ret < 0)
		return ret;
	/* The VSHM_ flag values equal the kernel's READ/WRITE bits. */
	s.flags = (uint64_t)flags | phase;
	/*
	 * The kernel waits for device fences here and may be interrupted
	 * (EINTR) or, on some drivers, report EAGAIN; both mean "try again".
	 */
	do {
		ret = ioctl(fd, VSHM_DMA_BUF_IOCTL_SYNC, &s);
	} while (ret < 0 && (errno == EINTR || errno == EAGAIN));
	return ret < 0 ? -errno : 0;
}

VSHM_EXPORT int vshm_dmabuf_sync_start(int fd, uint32_t flags)
{
	return dmabuf_sync(fd, flags, VSHM_DMA_BUF_SYNC_START);
}

VSHM_EXPORT int vshm_dmabuf_sync_end(int fd, uint32_t flags)
{
	return dmabuf_sync(fd, flags, VSHM_DMA_BUF_SYNC_END);
}

VSHM_EXPORT int vshm_dmabuf_get_size(int fd, uint64_t *size)
{
	off_t end;

	if (fd < 0 || !size)
		return -EBADF;
	/* dma-bufs implement only SEEK_END/SEEK_SET with offset 0, for this. */
	end = lseek(fd, 0, SEEK_END);
	if (end < 0)
		return -errno;
	lseek(fd, 0, SEEK_SET);
	*size = (uint64_t)end;
	return 0;
}
