/* SPDX-License-Identifier: MIT */
/*
 * fence.c - sync_file fences on dma-bufs and the eventfd software timeline.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <vshm/fence.h>
#include <vshm/log.h>
#include <vshm/loop.h>

#include "buffer-internal.h"
#include "util.h"

/* ---- sync_file <-> dma-buf ---- */

/* -1 unknown, 0 the kernel lacks the ioctls, 1 they work. */
static int sync_file_support = -1;

static pthread_mutex_t fence_log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vshm_ratelimit fence_rl = VSHM_RATELIMIT_INIT(5000, 10);

static void log_rl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void log_rl(const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&fence_log_lock);
	vshm_log_ratelimited(&fence_rl, VSHM_LOG_WARN, "fence: %s", msg);
	pthread_mutex_unlock(&fence_log_lock);
}

VSHM_EXPORT int vshm_fence_sync_file_support(void)
{
	return __atomic_load_n(&sync_file_support, __ATOMIC_RELAXED);
}

/*
 * Shared by export and import: refuse fds that are not dma-bufs before any
 * ioctl reaches them, and turn the kernel's ENOTTY on a real dma-buf into
 * the process-wide "unsupported" answer.
 */
static int sync_file_ioctl(int dmabuf_fd, unsigned long req,
                           struct vshm_uapi_dma_buf_sync_file *arg, const char *what)
{
	bool certain;
	int ret, err;

	ret = vshm_dmabuf_check_fd(dmabuf_fd, &certain);
	if (ret < 0) {
		log_rl("%s: fd %d is not a dma-buf (%s)", what, dmabuf_fd, strerror(-ret));
		return ret;
	}
	if (vshm_fence_sync_file_support() == 0)
		return -ENOTSUP;
	ret = ioctl(dmabuf_fd, req, arg);
	if (ret >= 0) {
		__atomic_store_n(&sync_file_support, 1, __ATOMIC_RELAXED);
		return 0;
	}
	err = errno;
	if (err == ENOTTY && certain) {
		int expected = -1;

		/*
		 * The fd is certainly a dma-buf, so ENOTTY means the kernel does
		 * not know the ioctl. Say so once; later calls short-circuit.
		 */
		if (__atomic_compare_exchange_n(&sync_file_support, &expected, 0, false,
		                                __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			vshm_log(VSHM_LOG_INFO,
			         "fence: kernel lacks DMA_BUF_IOCTL_EXPORT/IMPORT_SYNC_FILE (Linux "
			         "6.0+); dma-buf fences stay implicit, use CPU waits or "
			         "vshm_timeline fences instead");
		return -ENOTSUP;
	}
	log_rl("%s on fd %d: %s", what, dmabuf_fd, strerror(err));
	return -err;
}

VSHM_EXPORT int vshm_fence_export_from_dmabuf(int dmabuf_fd, uint32_t flags, int *sync_file_fd)
{
	struct vshm_uapi_dma_buf_sync_file arg = { .fd = -1 };
	int ret;

	if (!sync_file_fd || flags == 0 || (flags & ~(VSHM_FENCE_READ | VSHM_FENCE_WRITE)))
		return -EINVAL;
	/* The VSHM_FENCE_ values equal the kernel's DMA_BUF_SYNC_READ/WRITE bits. */
	arg.flags = flags;
	ret = sync_file_ioctl(dmabuf_fd, VSHM_DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &arg,
	                      "EXPORT_SYNC_FILE");
	if (ret < 0)
		return ret;
	*sync_file_fd = arg.fd;
	return 0;
}

VSHM_EXPORT int vshm_fence_import_to_dmabuf(int dmabuf_fd, int sync_file_fd, uint32_t flags)
{
	struct vshm_uapi_dma_buf_sync_file arg = { .flags = flags, .fd = sync_file_fd };

	if (sync_file_fd < 0)
		return -EBADF;
	if (flags == 0 || (flags & ~(VSHM_FENCE_READ | VSHM_FENCE_WRITE)))
		return -EINVAL;
	return sync_file_ioctl(dmabuf_fd, VSHM_DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &arg,
	                       "IMPORT_SYNC_FILE");
}

/* ---- waiting ---- */

VSHM_EXPORT int vshm_fence_wait(int fence_fd, int timeout_ms)
{
	uint64_t deadline = 0;
	int remaining = timeout_ms;

	if (fence_fd < 0)
		return -EBADF;
	if (timeout_ms > 0)
		deadline = vshm_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		struct pollfd pfd = { .fd = fence_fd, .events = POLLIN };
		int r = poll(&pfd, 1, remaining);

		if (r < 0) {
			if (errno != EINTR)
				return -errno;
			/* A signal cut the wait short: wait only for what is left. */
			if (timeout_ms > 0) {
				uint64_t now = vshm_now_ns();

				if (now >= deadline)
					return -ETIMEDOUT;
				remaining = (int)((deadline - now + 999999) / 1000000);
			}
			continue;
		}
		if (r == 0)
			return -ETIMEDOUT;
		if (pfd.revents & POLLNVAL)
			return -EBADF;
		if (pfd.revents & POLLIN)
			return 0;
		return -EIO;
	}
}

VSHM_EXPORT bool vshm_fence_is_signaled(int fence_fd)
{
	return vshm_fence_wait(fence_fd, 0) == 0;
}

/* ---- software timeline ---- */

/*
 * The largest count an eventfd holds. Loading it makes a semaphore-mode
 * eventfd readable for ~2^64 read()s, i.e. for good.
 */
#define EVENTFD_FULL 0xfffffffffffffffeull

struct tl_point {
	uint64_t value;
	int efd; /* the timeline's reference; consumers hold dups */
};

struct vshm_timeline {
	pthread_mutex_t lock;
	uint64_t value;
	struct tl_point *pending; /* sorted by value, ascending, values distinct */
	unsigned n, cap;
};

static int fire(int efd)
{
	uint64_t v = EVENTFD_FULL;

	/* Cannot block or fail on a fresh counter of 0; checked anyway. */
	if (write(efd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return -errno;
	return 0;
}

static int new_eventfd(void)
{
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
	return efd < 0 ? -errno : efd;
}

VSHM_EXPORT int vshm_timeline_new(struct vshm_timeline **out)
{
	struct vshm_timeline *tl;

	if (!out)
		return -EINVAL;
	tl = calloc(1, sizeof(*tl));
	if (!tl)
		return -ENOMEM;
	pthread_mutex_init(&tl->lock, NULL);
	*out = tl;
	return 0;
}

VSHM_EXPORT void vshm_timeline_destroy(struct vshm_timeline *tl)
{
	if (!tl)
		return;
	for (unsigned i = 0; i < tl->n; i++) {
		fire(tl->pending[i].efd);
		close(tl->pending[i].efd);
	}
	free(tl->pending);
	pthread_mutex_destroy(&tl->lock);
	free(tl);
}

VSHM_EXPORT int vshm_timeline_signal(struct vshm_timeline *tl, uint64_t point)
{
	unsigned done = 0;
	int ret = 0;

	pthread_mutex_lock(&tl->lock);
	if (point > tl->value) {
		tl->value = point;
		while (done < tl->n && tl->pending[done].value <= point) {
			int r = fire(tl->pending[done].efd);

			if (r < 0 && ret == 0)
				ret = r;
			close(tl->pending[done].efd);
			done++;
		}
		/* pending may be NULL when nothing was ever exported: no memmove then. */
		if (done && tl->n > done)
			memmove(tl->pending, tl->pending + done,
			        (tl->n - done) * sizeof(*tl->pending));
		tl->n -= done;
	}
	pthread_mutex_unlock(&tl->lock);
	return ret;
}

VSHM_EXPORT uint64_t vshm_timeline_value(struct vshm_timeline *tl)
{
	uint64_t v;

	pthread_mutex_lock(&tl->lock);
	v = tl->value;
	pthread_mutex_unlock(&tl->lock);
	return v;
}

VSHM_EXPORT unsigned vshm_timeline_pending(struct vshm_timeline *tl)
{
	unsigned n;

	pthread_mutex_lock(&tl->lock);
	n = tl->n;
	pthread_mutex_unlock(&tl->lock);
	return n;
}

/* Index of the pending point @value, or where it would be inserted. */
static unsigned find_point(const struct vshm_timeline *tl, uint64_t value)
{
	unsigned lo = 0, hi = tl->n;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (tl->pending[mid].value < value)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

VSHM_EXPORT int vshm_timeline_export_fd(struct vshm_timeline *tl, uint64_t point, int *fd)
{
	unsigned i;
	int efd, dup_fd, ret;

	if (!tl || !fd)
		return -EINVAL;
	pthread_mutex_lock(&tl->lock);
	if (point <= tl->value) {
		/* Already reached: a fresh, already signaled fd. */
		efd = new_eventfd();
		ret = efd < 0 ? efd : fire(efd);
		if (ret < 0) {
			vshm_close_fd(efd);
			goto out;
		}
		*fd = efd;
		ret = 0;
		goto out;
	}
	i = find_point(tl, point);
	if (i < tl->n && tl->pending[i].value == point) {
		/* Share the counter of an existing export of the same point. */
		dup_fd = fcntl(tl->pending[i].efd, F_DUPFD_CLOEXEC, 0);
		ret = dup_fd < 0 ? -errno : 0;
		if (ret == 0)
			*fd = dup_fd;
		goto out;
	}
	if (tl->n == tl->cap) {
		unsigned ncap = tl->cap ? tl->cap * 2 : 8;
		struct tl_point *p =
		        ncap > tl->cap ? realloc(tl->pending, ncap * sizeof(*p)) : NULL;

		if (!p) {
			ret = -ENOMEM;
			goto out;
		}
		tl->pending = p;
		tl->cap = ncap;
	}
	efd = new_eventfd();
	if (efd < 0) {
		ret = efd;
		goto out;
	}
	dup_fd = fcntl(efd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0) {
		ret = -errno;
		vshm_close_fd(efd);
		goto out;
	}
	memmove(tl->pending + i + 1, tl->pending + i, (tl->n - i) * sizeof(*tl->pending));
	tl->pending[i] = (struct tl_point){ .value = point, .efd = efd };
	tl->n++;
	*fd = dup_fd;
	ret = 0;
out:
	pthread_mutex_unlock(&tl->lock);
	return ret;
}
