/* SPDX-License-Identifier: MIT */
/*
 * buffer_memfd.c - sealed memfd buffers with read-only consumer fds.
 *
 * The producer owns a read-write mapping; consumers only ever receive fds
 * reopened read-only through /proc/self/fd (see vshm/buffer.h for why a
 * dup() is not enough).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vshm/buffer.h>
#include <vshm/log.h>

#include "util.h"

/* Linux 6.3+; older headers lack it. Implies MFD_ALLOW_SEALING and F_SEAL_EXEC. */
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

struct vshm_memfd_buf {
	int fd;
	void *data;
	uint64_t size;
};

static int create_memfd(const char *name)
{
	int fd;

	/*
	 * Pixel buffers are never executed. Asking for NOEXEC first matters on
	 * kernels with vm.memfd_noexec=2, which refuse executable memfds, and
	 * stops 6.3+ kernels from warning about memfds created without either
	 * MFD_EXEC or MFD_NOEXEC_SEAL. Older kernels reject the unknown flag
	 * with EINVAL, so retry without it.
	 */
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
	if (fd < 0 && errno == EINVAL)
		fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return fd < 0 ? -errno : fd;
}

VSHM_EXPORT int vshm_memfd_buf_new(const char *name, uint64_t size, uint32_t flags,
                                   struct vshm_memfd_buf **out)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t rounded;
	struct vshm_memfd_buf *b;
	int seals, ret;

	if (!out || size == 0 || (flags & ~VSHM_MEMFD_SEAL_SEAL))
		return -EINVAL;
	if (page <= 0)
		page = 4096;
	if (vshm_add_overflows_u64(size, (uint64_t)page - 1, &rounded))
		return -EINVAL;
	rounded &= ~((uint64_t)page - 1);
	/* mmap and ftruncate take size_t/off_t; refuse what they cannot hold. */
	if (rounded > (uint64_t)INT64_MAX || rounded > (uint64_t)SIZE_MAX)
		return -EINVAL;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->data = MAP_FAILED;
	b->size = rounded;

	b->fd = create_memfd(name ? name : "vshm");
	if (b->fd < 0) {
		ret = b->fd;
		vshm_log(VSHM_LOG_ERROR, "memfd_create: %s", strerror(-ret));
		goto err;
	}
	if (ftruncate(b->fd, (off_t)rounded) < 0) {
		ret = -errno;
		vshm_log(VSHM_LOG_ERROR, "memfd: resize to %llu bytes: %s",
		         (unsigned long long)rounded, strerror(-ret));
		goto err;
	}
	/*
	 * Seal before anyone else can see the fd: SHRINK/GROW guarantee that a
	 * consumer's mapping always stays fully backed (no SIGBUS), and SHRINK
	 * is what udmabuf requires. WRITE is never sealed: the producer writes.
	 */
	seals = F_SEAL_SHRINK | F_SEAL_GROW;
	if (flags & VSHM_MEMFD_SEAL_SEAL)
		seals |= F_SEAL_SEAL;
	if (fcntl(b->fd, F_ADD_SEALS, seals) < 0) {
		ret = -errno;
		vshm_log(VSHM_LOG_ERROR, "memfd: F_ADD_SEALS: %s", strerror(-ret));
		goto err;
	}
	b->data = mmap(NULL, (size_t)rounded, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);
	if (b->data == MAP_FAILED) {
		ret = -errno;
		vshm_log(VSHM_LOG_ERROR, "memfd: mmap %llu bytes: %s", (unsigned long long)rounded,
		         strerror(-ret));
		goto err;
	}
	*out = b;
	return 0;

err:
	vshm_memfd_buf_destroy(b);
	return ret;
}

VSHM_EXPORT void vshm_memfd_buf_destroy(struct vshm_memfd_buf *b)
{
	if (!b)
		return;
	if (b->data != MAP_FAILED)
		munmap(b->data, (size_t)b->size);
	vshm_close_fd(b->fd);
	free(b);
}

VSHM_EXPORT void *vshm_memfd_buf_data(const struct vshm_memfd_buf *b)
{
	return b->data;
}

VSHM_EXPORT uint64_t vshm_memfd_buf_size(const struct vshm_memfd_buf *b)
{
	return b->size;
}

VSHM_EXPORT int vshm_memfd_buf_fd(const struct vshm_memfd_buf *b)
{
	return b->fd;
}

VSHM_EXPORT int vshm_fd_reopen_ro(int fd, int *ro_fd)
{
	char path[64];
	int nfd;

	if (fd < 0 || !ro_fd)
		return -EBADF;
	/*
	 * Opening the magic link creates a new open file description of the
	 * same inode, so the access mode is chosen afresh (a dup would inherit
	 * O_RDWR). The kernel re-checks the inode permissions, which the
	 * owner of a memfd always passes.
	 */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nfd < 0) {
		int ret = -errno;
		vshm_log(VSHM_LOG_ERROR, "read-only reopen of fd %d via %s: %s%s", fd, path,
		         strerror(-ret),
		         ret == -ENOENT ? " (is /proc mounted in this namespace?)" : "");
		return ret;
	}
	*ro_fd = nfd;
	return 0;
}

VSHM_EXPORT int vshm_memfd_buf_export_ro(const struct vshm_memfd_buf *b, int *fd)
{
	if (!b || !fd)
		return -EINVAL;
	return vshm_fd_reopen_ro(b->fd, fd);
}
