/* SPDX-License-Identifier: MIT */
/*
 * test-fence.c - the eventfd software timeline (signal, wait, timeout,
 * sharing, destroy) and the sync_file paths' clean errors on fds that are
 * not dma-bufs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <vshm/fence.h>
#include <vshm/log.h>
#include <vshm/loop.h>

#include "test-runner.h"

static void quiet(enum vshm_log_level level, const char *msg, void *data)
{
}

static uint64_t now_ms(void)
{
	return vshm_now_ns() / 1000000ull;
}

TEST(timeline_point_signals_once_reached)
{
	struct vshm_timeline *tl;
	int a, b;

	CHECK_OK(vshm_timeline_new(&tl));
	CHECK_EQ(vshm_timeline_value(tl), 0);
	CHECK_OK(vshm_timeline_export_fd(tl, 1, &a));
	CHECK_OK(vshm_timeline_export_fd(tl, 1, &b));
	CHECK(a != b);
	CHECK(fcntl(a, F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(vshm_timeline_pending(tl), 1); /* one eventfd per distinct point */
	CHECK_EQ(vshm_fence_wait(a, 0), -ETIMEDOUT);
	CHECK(!vshm_fence_is_signaled(b));

	CHECK_OK(vshm_timeline_signal(tl, 1));
	CHECK_EQ(vshm_timeline_value(tl), 1);
	CHECK_EQ(vshm_timeline_pending(tl), 0);
	CHECK_OK(vshm_fence_wait(a, 0));
	CHECK(vshm_fence_is_signaled(b));
	close(a);
	close(b);
	vshm_timeline_destroy(tl);
	vshm_timeline_destroy(NULL);
}

TEST(timeline_signals_every_point_up_to_the_value)
{
	struct vshm_timeline *tl;
	int fd[7];

	CHECK_OK(vshm_timeline_new(&tl));
	/* Exported out of order on purpose. */
	for (int p = 6; p >= 1; p--)
		CHECK_OK(vshm_timeline_export_fd(tl, (uint64_t)p, &fd[p]));
	CHECK_EQ(vshm_timeline_pending(tl), 6);
	CHECK_OK(vshm_timeline_signal(tl, 4));
	for (int p = 1; p <= 6; p++)
		CHECK_EQ(vshm_fence_is_signaled(fd[p]), p <= 4);
	CHECK_EQ(vshm_timeline_pending(tl), 2);
	/* Going backwards changes nothing. */
	CHECK_OK(vshm_timeline_signal(tl, 2));
	CHECK_EQ(vshm_timeline_value(tl), 4);
	CHECK(!vshm_fence_is_signaled(fd[5]));
	/* Skipping ahead signals everything in between. */
	CHECK_OK(vshm_timeline_signal(tl, 100));
	CHECK(vshm_fence_is_signaled(fd[5]) && vshm_fence_is_signaled(fd[6]));
	for (int p = 1; p <= 6; p++)
		close(fd[p]);
	vshm_timeline_destroy(tl);
}

TEST(timeline_reached_points_export_signaled)
{
	struct vshm_timeline *tl;
	int fd;

	CHECK_OK(vshm_timeline_new(&tl));
	CHECK_OK(vshm_timeline_export_fd(tl, 0, &fd));
	CHECK(vshm_fence_is_signaled(fd));
	close(fd);
	CHECK_OK(vshm_timeline_signal(tl, 10));
	CHECK_OK(vshm_timeline_export_fd(tl, 7, &fd));
	CHECK(vshm_fence_is_signaled(fd));
	CHECK_EQ(vshm_timeline_pending(tl), 0);
	close(fd);
	CHECK_EQ(vshm_timeline_export_fd(tl, 1, NULL), -EINVAL);
	vshm_timeline_destroy(tl);
}

TEST(timeline_fd_survives_a_consumer_read)
{
	struct vshm_timeline *tl;
	uint64_t v = 0;
	int a, b;

	CHECK_OK(vshm_timeline_new(&tl));
	CHECK_OK(vshm_timeline_export_fd(tl, 3, &a));
	CHECK_OK(vshm_timeline_export_fd(tl, 3, &b));
	CHECK_OK(vshm_timeline_signal(tl, 3));
	/* A consumer that drains its fd like an ordinary eventfd. */
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(read(a, &v, sizeof(v)), sizeof(v));
		CHECK_EQ(v, 1);
	}
	CHECK(vshm_fence_is_signaled(a));
	CHECK(vshm_fence_is_signaled(b));
	/* Closing one consumer's fd leaves the other's alone. */
	close(a);
	CHECK(vshm_fence_is_signaled(b));
	close(b);
	vshm_timeline_destroy(tl);
}

TEST(timeline_closed_consumer_fd_does_not_break_signal)
{
	struct vshm_timeline *tl;
	int a;

	CHECK_OK(vshm_timeline_new(&tl));
	CHECK_OK(vshm_timeline_export_fd(tl, 2, &a));
	close(a);
	CHECK_OK(vshm_timeline_signal(tl, 2));
	CHECK_EQ(vshm_timeline_pending(tl), 0);
	vshm_timeline_destroy(tl);
}

TEST(timeline_destroy_releases_waiters)
{
	struct vshm_timeline *tl;
	int fd;

	CHECK_OK(vshm_timeline_new(&tl));
	CHECK_OK(vshm_timeline_export_fd(tl, 50, &fd));
	CHECK(!vshm_fence_is_signaled(fd));
	vshm_timeline_destroy(tl);
	CHECK_OK(vshm_fence_wait(fd, 0));
	close(fd);
}

TEST(wait_times_out)
{
	struct vshm_timeline *tl;
	uint64_t t0;
	int fd;

	CHECK_OK(vshm_timeline_new(&tl));
	CHECK_OK(vshm_timeline_export_fd(tl, 1, &fd));
	t0 = now_ms();
	CHECK_EQ(vshm_fence_wait(fd, 60), -ETIMEDOUT);
	CHECK(now_ms() - t0 >= 55);
	close(fd);
	vshm_timeline_destroy(tl);
}

struct signaler {
	struct vshm_timeline *tl;
	uint64_t point;
	int delay_ms;
};

static void *signal_later(void *arg)
{
	struct signaler *s = arg;
	struct timespec ts = { 0, s->delay_ms * 1000000L };

	nanosleep(&ts, NULL);
	CHECK_OK(vshm_timeline_signal(s->tl, s->point));
	return NULL;
}

TEST(wait_wakes_when_another_thread_signals)
{
	struct signaler s = { .point = 5, .delay_ms = 30 };
	pthread_t th;
	uint64_t t0;
	int fd;

	CHECK_OK(vshm_timeline_new(&s.tl));
	CHECK_OK(vshm_timeline_export_fd(s.tl, 5, &fd));
	t0 = now_ms();
	CHECK_OK(pthread_create(&th, NULL, signal_later, &s));
	CHECK_OK(vshm_fence_wait(fd, -1));
	CHECK(now_ms() - t0 >= 25);
	CHECK_OK(pthread_join(th, NULL));
	close(fd);
	vshm_timeline_destroy(s.tl);
}

TEST(wait_on_a_plain_eventfd_and_bad_fds)
{
	int efd = eventfd(0, EFD_CLOEXEC), closed;
	uint64_t one = 1;

	CHECK(efd >= 0);
	CHECK_EQ(vshm_fence_wait(efd, 0), -ETIMEDOUT);
	CHECK_EQ(write(efd, &one, sizeof(one)), sizeof(one));
	CHECK_OK(vshm_fence_wait(efd, 0));
	closed = dup(efd);
	close(closed);
	close(efd);
	CHECK_EQ(vshm_fence_wait(closed, 0), -EBADF);
	CHECK_EQ(vshm_fence_wait(-1, 100), -EBADF);
	CHECK(!vshm_fence_is_signaled(-1));
}

/* ---- sync_file on things that are not dma-bufs ---- */

TEST(sync_file_paths_refuse_non_dmabufs_cleanly)
{
	int mfd = memfd_create("notdmabuf", MFD_CLOEXEC), efd = eventfd(0, EFD_CLOEXEC);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC), sv[2], out = -1;

	CHECK(mfd >= 0 && efd >= 0 && null >= 0);
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	vshm_log_set_handler(quiet, NULL);

	/* Not anon inodes: refused before any ioctl reaches the driver. */
	CHECK_EQ(vshm_fence_export_from_dmabuf(mfd, VSHM_FENCE_READ, &out), -ENOTTY);
	CHECK_EQ(vshm_fence_export_from_dmabuf(null, VSHM_FENCE_READ, &out), -ENOTTY);
	CHECK_EQ(vshm_fence_export_from_dmabuf(sv[0], VSHM_FENCE_WRITE, &out), -ENOTTY);
	CHECK_EQ(vshm_fence_import_to_dmabuf(mfd, efd, VSHM_FENCE_WRITE), -ENOTTY);
	/* An anon inode (could be a pre-5.3 dma-buf) answers ENOTTY itself. */
	CHECK_EQ(vshm_fence_export_from_dmabuf(efd, VSHM_FENCE_READ, &out), -ENOTTY);
	CHECK_EQ(vshm_fence_import_to_dmabuf(efd, efd, VSHM_FENCE_READ), -ENOTTY);
	/* ...and that says nothing about the kernel's support. */
	CHECK_EQ(vshm_fence_sync_file_support(), -1);

	CHECK_EQ(vshm_fence_export_from_dmabuf(-1, VSHM_FENCE_READ, &out), -EBADF);
	CHECK_EQ(vshm_fence_export_from_dmabuf(mfd, 0, &out), -EINVAL);
	CHECK_EQ(vshm_fence_export_from_dmabuf(mfd, 4, &out), -EINVAL);
	CHECK_EQ(vshm_fence_export_from_dmabuf(mfd, VSHM_FENCE_READ, NULL), -EINVAL);
	CHECK_EQ(vshm_fence_import_to_dmabuf(mfd, -1, VSHM_FENCE_READ), -EBADF);
	CHECK_EQ(vshm_fence_import_to_dmabuf(mfd, efd, 0), -EINVAL);
	CHECK_EQ(out, -1);
	close(sv[0]);
	close(sv[1]);
	close(null);
	close(efd);
	close(mfd);
}
