/* SPDX-License-Identifier: MIT */
/*
 * test-buffer.c - sealed memfd buffers, read-only consumer fds, the dma-buf
 * descriptor value type, dma-buf helpers on non-dma-buf fds, and GBM when a
 * render node exists.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <vshm/buffer.h>
#include <vshm/log.h>

#include "test-runner.h"

static long page_size(void)
{
	return sysconf(_SC_PAGESIZE);
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* Silence expected error logs so test output stays readable. */
static void quiet(enum vshm_log_level level, const char *msg, void *data)
{
}

TEST(memfd_size_is_page_rounded_and_mapped_rw)
{
	struct vshm_memfd_buf *b;
	uint8_t *p;

	CHECK_OK(vshm_memfd_buf_new("t", 100, 0, &b));
	CHECK_EQ(vshm_memfd_buf_size(b), page_size());
	p = vshm_memfd_buf_data(b);
	CHECK(p != NULL);
	p[0] = 0xab;
	p[page_size() - 1] = 0xcd;
	CHECK_EQ(lseek(vshm_memfd_buf_fd(b), 0, SEEK_END), page_size());
	CHECK(fcntl(vshm_memfd_buf_fd(b), F_GETFD) & FD_CLOEXEC);
	vshm_memfd_buf_destroy(b);
	vshm_memfd_buf_destroy(NULL);
}

TEST(memfd_bad_arguments)
{
	struct vshm_memfd_buf *b;

	CHECK_EQ(vshm_memfd_buf_new("t", 0, 0, &b), -EINVAL);
	CHECK_EQ(vshm_memfd_buf_new("t", 4096, 0x80, &b), -EINVAL);
	CHECK_EQ(vshm_memfd_buf_new("t", UINT64_MAX, 0, &b), -EINVAL);
	CHECK_EQ(vshm_memfd_buf_new("t", 4096, 0, NULL), -EINVAL);
}

TEST(memfd_is_sealed_against_resizing)
{
	struct vshm_memfd_buf *b;
	int fd, seals;

	CHECK_OK(vshm_memfd_buf_new(NULL, 3 * page_size(), 0, &b));
	fd = vshm_memfd_buf_fd(b);
	seals = fcntl(fd, F_GET_SEALS);
	CHECK(seals >= 0);
	CHECK(seals & F_SEAL_SHRINK);
	CHECK(seals & F_SEAL_GROW);
	CHECK(!(seals & F_SEAL_WRITE)); /* producer writes; udmabuf refuses WRITE */
	CHECK(!(seals & F_SEAL_SEAL));
	CHECK(ftruncate(fd, page_size()) < 0 && errno == EPERM);
	CHECK(ftruncate(fd, 8 * page_size()) < 0 && errno == EPERM);
	/* Without VSHM_MEMFD_SEAL_SEAL the seal set stays open. */
	CHECK_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL));
	vshm_memfd_buf_destroy(b);
}

TEST(memfd_seal_seal_freezes_the_seals)
{
	struct vshm_memfd_buf *b;
	int fd;

	CHECK_OK(vshm_memfd_buf_new("t", 4096, VSHM_MEMFD_SEAL_SEAL, &b));
	fd = vshm_memfd_buf_fd(b);
	CHECK(fcntl(fd, F_GET_SEALS) & F_SEAL_SEAL);
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) < 0 && errno == EPERM);
	vshm_memfd_buf_destroy(b);
}

TEST(readonly_fd_refuses_every_write_path)
{
	struct vshm_memfd_buf *b;
	size_t size;
	uint8_t *prod, *cons, *priv;
	int ro;

	CHECK_OK(vshm_memfd_buf_new("t", 2 * page_size(), 0, &b));
	size = vshm_memfd_buf_size(b);
	prod = vshm_memfd_buf_data(b);
	CHECK_OK(vshm_memfd_buf_export_ro(b, &ro));
	CHECK(ro != vshm_memfd_buf_fd(b));
	CHECK_EQ(fcntl(ro, F_GETFL) & O_ACCMODE, O_RDONLY);
	CHECK(fcntl(ro, F_GETFD) & FD_CLOEXEC);

	/* No shared writable mapping. */
	CHECK(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED);
	CHECK_EQ(errno, EACCES);
	/* No write(), pwrite(), resize or new seals. */
	CHECK(write(ro, "x", 1) < 0 && errno == EBADF);
	CHECK(pwrite(ro, "x", 1, 0) < 0 && errno == EBADF);
	CHECK(ftruncate(ro, (off_t)size) < 0);
	CHECK(fcntl(ro, F_ADD_SEALS, F_SEAL_WRITE) < 0 && errno == EPERM);

	/* A read-only shared mapping works, sees the producer, cannot be upgraded. */
	cons = mmap(NULL, size, PROT_READ, MAP_SHARED, ro, 0);
	CHECK(cons != MAP_FAILED);
	prod[123] = 0x5a;
	CHECK_EQ(cons[123], 0x5a);
	CHECK(mprotect(cons, size, PROT_READ | PROT_WRITE) < 0 && errno == EACCES);

	/* A private writable mapping is copy-on-write and never reaches the producer. */
	priv = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0);
	CHECK(priv != MAP_FAILED);
	priv[123] = 0x11;
	CHECK_EQ(prod[123], 0x5a);

	munmap(priv, size);
	munmap(cons, size);
	close(ro);
	vshm_memfd_buf_destroy(b);
}

TEST(a_dup_would_keep_write_access)
{
	/* Why export_ro reopens: a dup shares the O_RDWR open file description. */
	struct vshm_memfd_buf *b;
	void *p;
	int d;

	CHECK_OK(vshm_memfd_buf_new("t", 4096, 0, &b));
	d = dup(vshm_memfd_buf_fd(b));
	CHECK(d >= 0);
	CHECK_EQ(fcntl(d, F_GETFL) & O_ACCMODE, O_RDWR);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
	CHECK(p != MAP_FAILED);
	munmap(p, 4096);
	close(d);
	vshm_memfd_buf_destroy(b);
}

TEST(readonly_fd_outlives_the_buffer)
{
	struct vshm_memfd_buf *b;
	uint8_t *cons;
	int ro;

	CHECK_OK(vshm_memfd_buf_new("t", 4096, 0, &b));
	((uint8_t *)vshm_memfd_buf_data(b))[7] = 42;
	CHECK_OK(vshm_memfd_buf_export_ro(b, &ro));
	vshm_memfd_buf_destroy(b);
	cons = mmap(NULL, 4096, PROT_READ, MAP_SHARED, ro, 0);
	CHECK(cons != MAP_FAILED);
	CHECK_EQ(cons[7], 42);
	munmap(cons, 4096);
	close(ro);
}

TEST(reopen_ro_bad_fd)
{
	int ro = -1;

	vshm_log_set_handler(quiet, NULL);
	CHECK_EQ(vshm_fd_reopen_ro(-1, &ro), -EBADF);
	CHECK_EQ(vshm_fd_reopen_ro(0, NULL), -EBADF);
	/* A number that is not open: /proc/self/fd/N does not exist. */
	CHECK_EQ(vshm_fd_reopen_ro(987654, &ro), -ENOENT);
	CHECK_EQ(ro, -1);
}

/* ---- dma-buf descriptor ---- */

static int memfd(void)
{
	int fd = memfd_create("plane", MFD_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

TEST(desc_init_is_empty)
{
	struct vshm_dmabuf_desc d;

	memset(&d, 0x55, sizeof(d));
	vshm_dmabuf_desc_init(&d);
	CHECK_EQ(d.n_planes, 0);
	CHECK(d.modifier == VSHM_DMABUF_MOD_INVALID);
	for (int i = 0; i < VSHM_DMABUF_MAX_PLANES; i++)
		CHECK_EQ(d.fd[i], -1);
	vshm_dmabuf_desc_finish(&d);
	vshm_dmabuf_desc_finish(NULL);
}

TEST(desc_copy_dups_and_finish_closes)
{
	struct vshm_dmabuf_desc src, dst;
	int base = vshm_test_count_fds();

	vshm_dmabuf_desc_init(&src);
	src.width = 64;
	src.height = 32;
	src.fourcc = 0x34325258; /* XR24 */
	src.modifier = VSHM_DMABUF_MOD_LINEAR;
	src.n_planes = 2;
	src.fd[0] = memfd();
	src.fd[1] = memfd();
	src.offset[1] = 8192;
	src.stride[0] = 256;
	src.stride[1] = 128;
	CHECK_EQ(vshm_test_count_fds(), base + 2);

	CHECK_OK(vshm_dmabuf_desc_copy(&dst, &src));
	CHECK_EQ(vshm_test_count_fds(), base + 4);
	CHECK_EQ(dst.n_planes, 2);
	CHECK_EQ(dst.width, 64);
	CHECK_EQ(dst.height, 32);
	CHECK_EQ(dst.fourcc, src.fourcc);
	CHECK(dst.modifier == VSHM_DMABUF_MOD_LINEAR);
	CHECK_EQ(dst.offset[1], 8192);
	CHECK_EQ(dst.stride[1], 128);
	for (int i = 0; i < 2; i++) {
		CHECK(dst.fd[i] >= 0 && dst.fd[i] != src.fd[0] && dst.fd[i] != src.fd[1]);
		CHECK(fcntl(dst.fd[i], F_GETFD) & FD_CLOEXEC);
	}
	CHECK_EQ(dst.fd[2], -1);
	CHECK_EQ(dst.fd[3], -1);

	/* The copy owns its fds: finishing it leaves the source intact. */
	vshm_dmabuf_desc_finish(&dst);
	CHECK_EQ(vshm_test_count_fds(), base + 2);
	CHECK_EQ(dst.n_planes, 0);
	CHECK(fd_is_open(src.fd[0]) && fd_is_open(src.fd[1]));
	vshm_dmabuf_desc_finish(&dst); /* twice is harmless */
	vshm_dmabuf_desc_finish(&src);
	CHECK_EQ(vshm_test_count_fds(), base);
}

TEST(desc_finish_closes_a_shared_fd_once)
{
	struct vshm_dmabuf_desc d, c;
	int base = vshm_test_count_fds();

	vshm_dmabuf_desc_init(&d);
	d.n_planes = 3;
	d.fd[0] = d.fd[1] = d.fd[2] = memfd();
	/* The copy gives each plane its own fd. */
	CHECK_OK(vshm_dmabuf_desc_copy(&c, &d));
	CHECK_EQ(vshm_test_count_fds(), base + 4);
	CHECK(c.fd[0] != c.fd[1] && c.fd[1] != c.fd[2] && c.fd[0] != c.fd[2]);
	vshm_dmabuf_desc_finish(&c);
	vshm_dmabuf_desc_finish(&d);
	CHECK_EQ(vshm_test_count_fds(), base);
}

TEST(desc_copy_refuses_bad_descriptors_without_leaking)
{
	struct vshm_dmabuf_desc src, dst;
	int base = vshm_test_count_fds();

	vshm_dmabuf_desc_init(&src);
	src.n_planes = 5;
	CHECK_EQ(vshm_dmabuf_desc_copy(&dst, &src), -EINVAL);
	CHECK_EQ(dst.n_planes, 0);

	src.n_planes = 2;
	src.fd[0] = memfd();
	src.fd[1] = -1;
	CHECK_EQ(vshm_dmabuf_desc_copy(&dst, &src), -EINVAL);
	CHECK_EQ(dst.n_planes, 0);
	CHECK_EQ(dst.fd[0], -1);
	CHECK_EQ(vshm_test_count_fds(), base + 1);
	CHECK_EQ(vshm_dmabuf_desc_copy(&dst, NULL), -EINVAL);
	vshm_dmabuf_desc_finish(&src);
	CHECK_EQ(vshm_test_count_fds(), base);
}

TEST(desc_copy_fails_midway_without_leaking)
{
	struct vshm_dmabuf_desc src, dst;
	struct rlimit old, lim;
	int base, r;

	vshm_dmabuf_desc_init(&src);
	src.n_planes = 4;
	for (int i = 0; i < 4; i++)
		src.fd[i] = memfd();
	base = vshm_test_count_fds();
	/* Room for two dups only: the third fails with EMFILE. */
	CHECK_OK(getrlimit(RLIMIT_NOFILE, &old));
	lim = old;
	/* The lowest limit that leaves exactly two free fd numbers. */
	for (int fd = 0, free_slots = 0; free_slots < 2; fd++) {
		if (!fd_is_open(fd))
			free_slots++;
		lim.rlim_cur = (rlim_t)fd + 1;
	}
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &lim));
	r = vshm_dmabuf_desc_copy(&dst, &src);
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &old));
	CHECK_EQ(r, -EMFILE);
	CHECK_EQ(dst.n_planes, 0);
	CHECK_EQ(vshm_test_count_fds(), base);
	vshm_dmabuf_desc_finish(&src);
}

/* ---- dma-buf helpers on things that are not dma-bufs ---- */

TEST(dmabuf_helpers_refuse_non_dmabufs)
{
	int mfd = memfd(), efd = eventfd(0, EFD_CLOEXEC);
	uint64_t size = 0;

	CHECK(efd >= 0);
	CHECK(!vshm_dmabuf_is_dmabuf(mfd));
	CHECK(!vshm_dmabuf_is_dmabuf(efd));
	CHECK(!vshm_dmabuf_is_dmabuf(-1));
	/* A tmpfs file is refused without an ioctl reaching it. */
	CHECK_EQ(vshm_dmabuf_sync_start(mfd, VSHM_DMABUF_SYNC_READ), -ENOTTY);
	CHECK_EQ(vshm_dmabuf_sync_end(mfd, VSHM_DMABUF_SYNC_READ), -ENOTTY);
	/* An anon inode is asked, and answers ENOTTY itself. */
	CHECK_EQ(vshm_dmabuf_sync_start(efd, VSHM_DMABUF_SYNC_RW), -ENOTTY);
	CHECK_EQ(vshm_dmabuf_sync_start(-1, VSHM_DMABUF_SYNC_RW), -EBADF);
	CHECK_EQ(vshm_dmabuf_sync_start(mfd, 0), -EINVAL);
	CHECK_EQ(vshm_dmabuf_sync_start(mfd, 8), -EINVAL);
	CHECK_OK(ftruncate(mfd, 12288));
	CHECK_OK(vshm_dmabuf_get_size(mfd, &size));
	CHECK_EQ(size, 12288);
	CHECK_EQ(vshm_dmabuf_get_size(-1, &size), -EBADF);
	close(efd);
	close(mfd);
}

/* ---- GBM ---- */

TEST(gbm_on_a_render_node_or_cleanly_absent)
{
	struct vshm_dmabuf_desc d;
	struct vshm_gbm *g = NULL;
	int r;

	vshm_log_set_handler(quiet, NULL);
	CHECK(vshm_gbm_new("/nonexistent/renderD128", &g) < 0);
	r = vshm_gbm_new(NULL, &g);
	if (r == -ENOTSUP || r == -ENOENT || r == -EACCES) {
		printf("# SKIP gbm: %s\n", r == -ENOTSUP ? "built without GBM" : strerror(-r));
		CHECK(vshm_gbm_alloc(NULL, 64, 64, 0x34325258, 0, &d) < 0);
		CHECK_EQ(d.n_planes, 0);
		return;
	}
	CHECK_OK(r);
	CHECK(vshm_gbm_device_path(g) != NULL);
	r = vshm_gbm_alloc(g, 64, 64, 0x34325258 /* XR24 */, VSHM_GBM_LINEAR, &d);
	if (r == 0) {
		uint64_t size;

		CHECK(d.n_planes >= 1);
		CHECK(d.modifier == VSHM_DMABUF_MOD_LINEAR);
		CHECK(d.stride[0] >= 64 * 4);
		CHECK(vshm_dmabuf_is_dmabuf(d.fd[0]));
		CHECK_OK(vshm_dmabuf_get_size(d.fd[0], &size));
		CHECK(size >= 64 * 64 * 4);
		vshm_dmabuf_desc_finish(&d);
	} else {
		printf("# gbm allocation on %s failed: %s\n", vshm_gbm_device_path(g),
		       strerror(-r));
		CHECK_EQ(d.n_planes, 0);
	}
	CHECK_EQ(vshm_gbm_alloc(g, 0, 64, 0x34325258, 0, &d), -EINVAL);
	vshm_gbm_destroy(g);
	vshm_gbm_destroy(NULL);
}
