/* SPDX-License-Identifier: MIT */
/* unix_socket.c - AF_UNIX stream listen/accept/connect helpers. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <vshm/conn.h>

#include "util.h"

static int fill_addr(const char *path, struct sockaddr_un *addr)
{
	size_t len;

	if (!path || !path[0])
		return -EINVAL;
	len = strlen(path);
	/* Keep room for the terminator: no silently truncated paths. */
	if (len >= sizeof(addr->sun_path))
		return -ENAMETOOLONG;
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	memcpy(addr->sun_path, path, len + 1);
	return 0;
}

VSHM_EXPORT int vshm_unix_listen(const char *path, int backlog, int *out_fd)
{
	struct sockaddr_un addr;
	struct stat st;
	int fd, r;

	if (!out_fd)
		return -EINVAL;
	r = fill_addr(path, &addr);
	if (r < 0)
		return r;
	/*
	 * Remove a socket left by an earlier run, but only a socket: a typo
	 * must not delete a regular file. A live listener at the same path is
	 * replaced, as is usual for daemons that own their socket path.
	 */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(fd, backlog > 0 ? backlog : 1) < 0) {
		r = -errno;
		vshm_close_fd(fd);
		return r;
	}
	*out_fd = fd;
	return 0;
}

VSHM_EXPORT int vshm_unix_accept(int listen_fd, int *out_fd)
{
	int fd;

	if (listen_fd < 0 || !out_fd)
		return -EINVAL;
	do {
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -errno;
	*out_fd = fd;
	return 0;
}

/* connect() interrupted by a signal keeps going; wait for its outcome. */
static int finish_connect(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int err = 0;
	socklen_t len = sizeof(err);

	while (poll(&p, 1, -1) < 0)
		if (errno != EINTR)
			return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

VSHM_EXPORT int vshm_unix_connect(const char *path, int *out_fd)
{
	struct sockaddr_un addr;
	int fd, r;

	if (!out_fd)
		return -EINVAL;
	r = fill_addr(path, &addr);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ? -errno : 0;
	if (r == -EINTR)
		r = finish_connect(fd);
	if (r < 0) {
		vshm_close_fd(fd);
		return r;
	}
	*out_fd = fd;
	return 0;
}
