/* SPDX-License-Identifier: MIT */
/*
 * test-udmabuf-ioctl.c - the UDMABUF_CREATE_LIST marshalling, on machines
 * without /dev/udmabuf: this executable interposes open() and ioctl() (the
 * library is linked statically into it, so its calls resolve here first),
 * hands out a fake device, records the list the library submits and
 * answers with a memfd standing in for the dma-buf, or with an injected
 * kernel error. Only "/dev/udmabuf" and the fake fd are intercepted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vshm/buffer.h>
#include <vshm/log.h>
#include <vshm/memory.h>

#include "buffer-internal.h"
#include "test-runner.h"

static int fake_dev = -1;
static int inject_errno;
static unsigned seen_calls;
static struct vshm_uapi_udmabuf_create_list seen_head;
static struct vshm_uapi_udmabuf_create_item seen_items[16];

int open(const char *path, int flags, ...);
int open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (strcmp(path, "/dev/udmabuf") == 0) {
		CHECK(flags & O_CLOEXEC);
		/* Any real fd will do; it is only ever passed back to ioctl(). */
		fake_dev = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC);
		return fake_dev;
	}
	return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

int ioctl(int fd, unsigned long req, ...);
int ioctl(int fd, unsigned long req, ...)
{
	struct vshm_uapi_udmabuf_create_list *list;
	va_list ap;
	void *arg;
	int out;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd != fake_dev || fake_dev < 0)
		return (int)syscall(SYS_ioctl, fd, req, arg);
	CHECK_EQ(req, 0x40087543u); /* the number from protocols.md 5.1 */
	list = arg;
	seen_calls++;
	seen_head = *list;
	CHECK(list->count <= 16);
	memcpy(seen_items, list->list, list->count * sizeof(list->list[0]));
	if (inject_errno) {
		errno = inject_errno;
		return -1;
	}
	out = memfd_create("fake-dmabuf", MFD_CLOEXEC);
	CHECK(out >= 0);
	return out;
}

static char logbuf[8192];

static void capture(enum vshm_log_level level, const char *msg, void *data)
{
	size_t used = strlen(logbuf);
	snprintf(logbuf + used, sizeof(logbuf) - used, "%s\n", msg);
}

static int sealed_memfd(uint64_t size)
{
	int fd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0);
	CHECK_OK(ftruncate(fd, (off_t)size));
	CHECK_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW));
	return fd;
}

TEST(fake_device_is_available)
{
	CHECK(vshm_udmabuf_available(NULL));
}

TEST(list_is_marshalled_item_by_item)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	int a = sealed_memfd(8 * pg), b = sealed_memfd(8 * pg), out = -1;
	struct vshm_memfd_range r[] = {
		{ a, 0, pg },
		{ a, pg, 2 * pg },     /* one item */
		{ b, 4 * pg, pg },     /* second */
		{ a, 6 * pg, 2 * pg }, /* third */
	};

	CHECK_OK(vshm_udmabuf_create(r, 4, &out));
	CHECK(out >= 0);
	CHECK_EQ(seen_calls, 1);
	CHECK_EQ(seen_head.flags, VSHM_UDMABUF_FLAGS_CLOEXEC);
	CHECK_EQ(seen_head.count, 3);
	CHECK_EQ(seen_items[0].memfd, a);
	CHECK_EQ(seen_items[0].pad, 0);
	CHECK_EQ(seen_items[0].offset, 0);
	CHECK_EQ(seen_items[0].size, 3 * pg);
	CHECK_EQ(seen_items[1].memfd, b);
	CHECK_EQ(seen_items[1].offset, 4 * pg);
	CHECK_EQ(seen_items[1].size, pg);
	CHECK_EQ(seen_items[2].memfd, a);
	CHECK_EQ(seen_items[2].offset, 6 * pg);
	/* The device is opened per call and closed again. */
	CHECK(fcntl(fake_dev, F_GETFD) < 0);
	close(out);
	close(a);
	close(b);
}

TEST(guest_ranges_become_one_call)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE), rs = 16 * pg;
	struct vshm_mem_region_desc d[2] = {
		{ .guest_addr = 0x100000, .size = rs, .user_addr = 0x7f0000000000 },
		{ .guest_addr = 0x100000 + rs, .size = rs, .user_addr = 0x7f1000000000 },
	};
	int fds[2] = { sealed_memfd(rs), sealed_memfd(rs) }, out = -1;
	struct vshm_gpa_range r[] = { { 0x100000, 2 * pg }, { 0x100000 + 2 * pg, rs } };
	struct vshm_mem *m;

	CHECK_OK(vshm_mem_new(4, &m));
	CHECK_OK(vshm_mem_set_table(m, d, fds, 2));
	CHECK_OK(vshm_udmabuf_create_from_guest(m, r, 2, &out));
	CHECK_EQ(seen_calls, 1);
	/* [0, 2pg) + [2pg, rs) of region 0 merge; [0, 2pg) of region 1 follows. */
	CHECK_EQ(seen_head.count, 2);
	CHECK_EQ(seen_items[0].offset, 0);
	CHECK_EQ(seen_items[0].size, rs);
	CHECK_EQ(seen_items[1].offset, 0);
	CHECK_EQ(seen_items[1].size, 2 * pg);
	CHECK(seen_items[0].memfd != seen_items[1].memfd);
	close(out);
	vshm_mem_destroy(m);
}

TEST(kernel_errors_are_passed_through_and_explained)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	int a = sealed_memfd(pg), out = -1;
	struct vshm_memfd_range r = { a, 0, pg };

	vshm_log_set_handler(capture, NULL);
	inject_errno = EINVAL;
	CHECK_EQ(vshm_udmabuf_create(&r, 1, &out), -EINVAL);
	CHECK(strstr(logbuf, "UDMABUF_CREATE_LIST") && strstr(logbuf, "hugetlbfs"));
	inject_errno = ENOMEM;
	CHECK_EQ(vshm_udmabuf_create(&r, 1, &out), -ENOMEM);
	CHECK_EQ(out, -1);
	/* Refused by our own checks: the kernel is never asked. */
	seen_calls = 0;
	r.offset = 1;
	CHECK_EQ(vshm_udmabuf_create(&r, 1, &out), -EINVAL);
	CHECK_EQ(seen_calls, 0);
	close(a);
}
