/* SPDX-License-Identifier: MIT */
/* util.c - small private helpers shared by libvshm sources. */
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include <vshm/loop.h>

#include "util.h"

void vshm_close_fd(int fd)
{
	int saved;

	if (fd < 0)
		return;
	/*
	 * Callers close fds on error paths and then return -errno; keep errno
	 * intact so the close cannot clobber the reason being reported. On
	 * Linux close() always releases the fd, even on EINTR, so no retry.
	 */
	saved = errno;
	close(fd);
	errno = saved;
}

VSHM_EXPORT uint64_t vshm_now_ns(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer on Linux. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
