/* SPDX-License-Identifier: MIT */
/*
 * buffer_udmabuf.c - guest RAM (memfd pages) exported as one dma-buf with a
 * single UDMABUF_CREATE_LIST call.
 *
 * The kernel answers almost every broken request with a bare EINVAL, which
 * tells an operator nothing. So everything the kernel will check is checked
 * here first (by a pure function the unit tests drive with fabricated
 * ranges) and every failure is logged with the rule that was broken and how
 * to fix it. Callers are expected to fall back to a memfd copy on any error;
 * the log line is the explanation they can point to.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <vshm/buffer.h>
#include <vshm/log.h>
#include <vshm/memory.h>

#include "buffer-internal.h"
#include "util.h"

#define UDMABUF_DEV        "/dev/udmabuf"
#define UDMABUF_PARAMS_DIR "/sys/module/udmabuf/parameters/"
#define WHY_MAX            320

/*
 * Import failures are triggered by guest-controlled backing layouts, so
 * they go through one rate limiter. The limiter is not thread-safe by
 * itself, hence the mutex.
 */
static pthread_mutex_t why_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vshm_ratelimit why_rl = VSHM_RATELIMIT_INIT(5000, 10);

static void log_why(enum vshm_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void log_why(enum vshm_log_level level, const char *fmt, ...)
{
	char msg[WHY_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&why_lock);
	vshm_log_ratelimited(&why_rl, level, "udmabuf: %s", msg);
	pthread_mutex_unlock(&why_lock);
}

/* ---- availability (probed once per process) ---- */

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static bool probe_ok;
static char probe_reason[WHY_MAX];

static void probe(void)
{
	int fd = open(UDMABUF_DEV, O_RDWR | O_CLOEXEC);
	int err = errno;

	if (fd >= 0) {
		close(fd);
		probe_ok = true;
		snprintf(probe_reason, sizeof(probe_reason), "available");
		return;
	}
	switch (err) {
	case ENOENT:
	case ENODEV:
	case ENXIO:
		snprintf(probe_reason, sizeof(probe_reason),
		         "%s absent (%s): kernel without CONFIG_UDMABUF or module not loaded "
		         "(modprobe udmabuf); buffers will be copied through memfds",
		         UDMABUF_DEV, strerror(err));
		break;
	case EACCES:
	case EPERM:
		snprintf(probe_reason, sizeof(probe_reason),
		         "%s not accessible (%s): give this user access to the device "
		         "(often the kvm group); buffers will be copied through memfds",
		         UDMABUF_DEV, strerror(err));
		break;
	default:
		snprintf(probe_reason, sizeof(probe_reason),
		         "%s cannot be opened (%s); buffers will be copied through memfds",
		         UDMABUF_DEV, strerror(err));
		break;
	}
	/* Once per process: the answer does not change, repeating it is noise. */
	vshm_log(VSHM_LOG_INFO, "udmabuf: %s", probe_reason);
}

VSHM_EXPORT bool vshm_udmabuf_available(const char **reason)
{
	pthread_once(&probe_once, probe);
	if (reason)
		*reason = probe_reason;
	return probe_ok;
}

/* ---- limits ---- */

static bool read_param(const char *name, uint64_t *val)
{
	char path[128], buf[32], *end;
	unsigned long long v;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), UDMABUF_PARAMS_DIR "%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || end == buf || v == 0)
		return false;
	*val = v;
	return true;
}

VSHM_EXPORT void vshm_udmabuf_get_limits(struct vshm_udmabuf_limits *out)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t v;

	out->page_size = page > 0 ? (uint64_t)page : 4096;
	out->list_limit = VSHM_UDMABUF_DEFAULT_LIST_LIMIT;
	out->size_limit = (uint64_t)VSHM_UDMABUF_DEFAULT_SIZE_LIMIT_MB << 20;
	/* An administrator may have raised them; the kernel enforces those. */
	if (read_param("list_limit", &v) && v <= UINT32_MAX)
		out->list_limit = (uint32_t)v;
	if (read_param("size_limit_mb", &v) && v <= (UINT64_MAX >> 20))
		out->size_limit = v << 20;
}

/* ---- the pure item-list builder ---- */

static void set_why(char *why, size_t len, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

int vshm_udmabuf_build_list(const struct vshm_udmabuf_seg *segs, unsigned n,
                            const struct vshm_udmabuf_limits *lim, struct vshm_memfd_range *items,
                            unsigned max_items, unsigned *n_items, uint64_t *total_size, char *why,
                            size_t why_len)
{
	uint64_t page = lim->page_size, total = 0;
	struct vshm_memfd_range last = { .fd = -1 };
	uint64_t last_dev = 0, last_ino = 0;
	unsigned needed = 0;
	bool total_overflow = false;

	if (page == 0 || (page & (page - 1))) {
		set_why(why, why_len, "page size %llu is not a power of two",
		        (unsigned long long)page);
		return -EINVAL;
	}
	if (n == 0) {
		set_why(why, why_len, "empty range list (the kernel needs at least one page)");
		return -EINVAL;
	}
	for (unsigned i = 0; i < n; i++) {
		const struct vshm_udmabuf_seg *s = &segs[i];
		uint64_t end;

		if (s->size == 0) {
			set_why(why, why_len, "range %u (fd %d) has size 0", i, s->fd);
			return -EINVAL;
		}
		if ((s->offset | s->size) & (page - 1)) {
			set_why(why, why_len,
			        "range %u (fd %d): offset 0x%llx size 0x%llx not aligned to the "
			        "%llu-byte page; udmabuf items must be page aligned",
			        i, s->fd, (unsigned long long)s->offset,
			        (unsigned long long)s->size, (unsigned long long)page);
			return -EINVAL;
		}
		if (vshm_add_overflows_u64(s->offset, s->size, &end) || end > s->file_size) {
			set_why(why, why_len,
			        "range %u (fd %d): [0x%llx, +0x%llx) ends beyond the memfd's "
			        "%llu bytes",
			        i, s->fd, (unsigned long long)s->offset,
			        (unsigned long long)s->size, (unsigned long long)s->file_size);
			return -EINVAL;
		}
		if (!(s->seals & F_SEAL_SHRINK)) {
			set_why(why, why_len,
			        "range %u (fd %d): memfd lacks F_SEAL_SHRINK (seals 0x%x), which "
			        "udmabuf requires (QEMU: memory-backend-memfd with seal=on)",
			        i, s->fd, s->seals);
			return -ENOTSUP;
		}
		if (s->seals & F_SEAL_WRITE) {
			set_why(why, why_len,
			        "range %u (fd %d): memfd has F_SEAL_WRITE (seals 0x%x), which "
			        "udmabuf refuses",
			        i, s->fd, s->seals);
			return -ENOTSUP;
		}
		if (vshm_add_overflows_u64(total, s->size, &total))
			total_overflow = true;

		/* Contiguous in the same file: extend the previous item. */
		if (needed > 0 && last_dev == s->dev && last_ino == s->ino &&
		    last.offset + last.size == s->offset) {
			last.size += s->size;
			if (needed <= max_items)
				items[needed - 1].size = last.size;
			continue;
		}
		last = (struct vshm_memfd_range){ .fd = s->fd,
			                          .offset = s->offset,
			                          .size = s->size };
		last_dev = s->dev;
		last_ino = s->ino;
		needed++;
		if (needed <= max_items)
			items[needed - 1] = last;
	}
	if (total_overflow || total > lim->size_limit) {
		set_why(why, why_len,
		        "%s%llu bytes exceed the udmabuf size limit of %llu MiB per buffer "
		        "(module parameter size_limit_mb: raise it in "
		        "/sys/module/udmabuf/parameters/size_limit_mb or with "
		        "udmabuf.size_limit_mb= on the kernel command line)",
		        total_overflow ? "more than " : "", (unsigned long long)total,
		        (unsigned long long)(lim->size_limit >> 20));
		return -E2BIG;
	}
	if (needed > lim->list_limit) {
		set_why(why, why_len,
		        "%u discontiguous runs exceed the udmabuf list limit of %u items "
		        "(module parameter list_limit: /sys/module/udmabuf/parameters/list_limit)",
		        needed, lim->list_limit);
		return -E2BIG;
	}
	if (needed > max_items) {
		set_why(why, why_len, "%u items do not fit the caller's array of %u", needed,
		        max_items);
		return -ENOBUFS;
	}
	*n_items = needed;
	*total_size = total;
	return 0;
}

/* ---- resolving fds and submitting ---- */

/* Fill seals, size and identity; consecutive pieces of one fd ask the kernel once. */
static int fill_facts(struct vshm_udmabuf_seg *segs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct stat st;
		int seals;

		if (i > 0 && segs[i].fd == segs[i - 1].fd) {
			segs[i].seals = segs[i - 1].seals;
			segs[i].file_size = segs[i - 1].file_size;
			segs[i].dev = segs[i - 1].dev;
			segs[i].ino = segs[i - 1].ino;
			continue;
		}
		seals = fcntl(segs[i].fd, F_GET_SEALS);
		if (seals < 0) {
			int err = errno;
			/* EINVAL is how the kernel says "this file cannot carry seals". */
			log_why(VSHM_LOG_WARN,
			        "fd %d is not a sealable memfd (F_GET_SEALS: %s); udmabuf needs "
			        "memfd-backed memory (QEMU: memory-backend-memfd,share=on)",
			        segs[i].fd, strerror(err));
			return err == EINVAL ? -ENOTSUP : -err;
		}
		if (fstat(segs[i].fd, &st) < 0) {
			int err = errno;
			log_why(VSHM_LOG_WARN, "fstat(fd %d): %s", segs[i].fd, strerror(err));
			return -err;
		}
		segs[i].seals = (uint32_t)seals;
		segs[i].file_size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
		segs[i].dev = (uint64_t)st.st_dev;
		segs[i].ino = (uint64_t)st.st_ino;
	}
	return 0;
}

static int submit(const struct vshm_memfd_range *items, unsigned n, uint64_t total, int *out)
{
	struct vshm_uapi_udmabuf_create_list *list;
	int dev, fd, err;

	list = calloc(1, sizeof(*list) + (size_t)n * sizeof(list->list[0]));
	if (!list)
		return -ENOMEM;
	list->flags = VSHM_UDMABUF_FLAGS_CLOEXEC;
	list->count = n;
	for (unsigned i = 0; i < n; i++) {
		list->list[i].memfd = (uint32_t)items[i].fd;
		list->list[i].offset = items[i].offset;
		list->list[i].size = items[i].size;
	}
	/*
	 * Opened per call rather than cached: a long-lived hidden fd would
	 * surprise embedders that check for fd leaks or close fds on fork.
	 */
	dev = open(UDMABUF_DEV, O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		err = errno;
		free(list);
		log_why(VSHM_LOG_WARN, "open %s: %s", UDMABUF_DEV, strerror(err));
		return -ENODEV;
	}
	fd = ioctl(dev, VSHM_UDMABUF_CREATE_LIST, list);
	err = errno;
	close(dev);
	free(list);
	if (fd < 0) {
		/* Our checks passed, so EINVAL here means a rule we cannot see. */
		log_why(VSHM_LOG_WARN, "UDMABUF_CREATE_LIST (%u items, %llu bytes) failed: %s%s", n,
		        (unsigned long long)total, strerror(err),
		        err == EINVAL ? " (not a shmem/hugetlbfs memfd, or a hugetlbfs range not "
		                        "aligned to its huge page size?)"
		                      : "");
		return -err;
	}
	vshm_log(VSHM_LOG_DEBUG, "udmabuf: %u items, %llu bytes -> dma-buf fd %d", n,
	         (unsigned long long)total, fd);
	*out = fd;
	return 0;
}

/* Validate, build and submit @segs (facts already filled). */
static int create_from_segs(const struct vshm_udmabuf_seg *segs, unsigned n, int *out)
{
	struct vshm_udmabuf_limits lim;
	struct vshm_memfd_range *items;
	char why[WHY_MAX] = "";
	const char *reason;
	unsigned n_items = 0;
	uint64_t total = 0;
	unsigned cap;
	int ret;

	vshm_udmabuf_get_limits(&lim);
	/*
	 * n pieces never need more than n items, and more than list_limit is
	 * refused (-E2BIG, with the count) before the capacity matters.
	 */
	cap = n < lim.list_limit ? n : lim.list_limit;
	items = calloc(cap ? cap : 1, sizeof(*items));
	if (!items)
		return -ENOMEM;
	ret = vshm_udmabuf_build_list(segs, n, &lim, items, cap, &n_items, &total, why,
	                              sizeof(why));
	if (ret < 0) {
		log_why(VSHM_LOG_WARN, "%s", why);
		goto out;
	}
	/* Checked after the rules so misconfigurations are reported everywhere. */
	if (!vshm_udmabuf_available(&reason)) {
		log_why(VSHM_LOG_DEBUG, "%s", reason);
		ret = -ENODEV;
		goto out;
	}
	ret = submit(items, n_items, total, out);
out:
	free(items);
	return ret;
}

VSHM_EXPORT int vshm_udmabuf_create(const struct vshm_memfd_range *ranges, unsigned n,
                                    int *dmabuf_fd)
{
	struct vshm_udmabuf_seg *segs;
	int ret;

	if (!dmabuf_fd || (n && !ranges))
		return -EINVAL;
	segs = calloc(n ? n : 1, sizeof(*segs));
	if (!segs)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		segs[i].fd = ranges[i].fd;
		segs[i].offset = ranges[i].offset;
		segs[i].size = ranges[i].size;
	}
	ret = fill_facts(segs, n);
	if (ret == 0)
		ret = create_from_segs(segs, n, dmabuf_fd);
	free(segs);
	return ret;
}

/* Append one piece, growing the array geometrically. */
static int push_seg(struct vshm_udmabuf_seg **segs, unsigned *n, unsigned *cap,
                    const struct vshm_udmabuf_seg *s)
{
	if (*n == *cap) {
		unsigned ncap = *cap ? *cap * 2 : 16;
		struct vshm_udmabuf_seg *p;

		if (ncap < *cap)
			return -ENOMEM;
		p = realloc(*segs, (size_t)ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*segs = p;
		*cap = ncap;
	}
	(*segs)[(*n)++] = *s;
	return 0;
}

int vshm_udmabuf_resolve_guest(const struct vshm_mem *m, const struct vshm_gpa_range *ranges,
                               unsigned n, struct vshm_udmabuf_seg **out, unsigned *n_out)
{
	struct vshm_udmabuf_seg *segs = NULL;
	unsigned n_segs = 0, cap = 0, n_iov;
	struct iovec *iov;
	int ret = 0;

	/* A range can touch at most every region once; size the scratch for that. */
	n_iov = vshm_mem_num_regions(m);
	iov = calloc(n_iov ? n_iov : 1, sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	for (unsigned i = 0; i < n && ret == 0; i++) {
		uint64_t gpa = ranges[i].gpa;
		int pieces;

		/*
		 * gpa_to_iov splits the range at region boundaries (adjacent
		 * regions are separate files); each piece then lies in one
		 * region and has one (memfd, offset).
		 */
		pieces = vshm_mem_gpa_to_iov(m, gpa, ranges[i].len, iov, n_iov ? n_iov : 1);
		if (pieces < 0) {
			log_why(VSHM_LOG_WARN, "guest range %u [0x%llx, +0x%llx) %s", i,
			        (unsigned long long)gpa, (unsigned long long)ranges[i].len,
			        ranges[i].len == 0 ? "is empty" : "is not in guest memory");
			ret = ranges[i].len == 0 ? -EINVAL : -EFAULT;
			break;
		}
		for (int k = 0; k < pieces && ret == 0; k++) {
			struct vshm_udmabuf_seg s = { .size = iov[k].iov_len };

			ret = vshm_mem_gpa_to_fd(m, gpa, s.size, &s.fd, &s.offset);
			if (ret < 0)
				log_why(VSHM_LOG_WARN,
				        "guest range %u: no backing fd at 0x%llx: %s", i,
				        (unsigned long long)gpa, strerror(-ret));
			if (ret == 0)
				ret = push_seg(&segs, &n_segs, &cap, &s);
			gpa += s.size;
		}
	}
	free(iov);
	if (ret == 0)
		ret = fill_facts(segs, n_segs);
	if (ret < 0) {
		free(segs);
		return ret;
	}
	*out = segs;
	*n_out = n_segs;
	return 0;
}

VSHM_EXPORT int vshm_udmabuf_create_from_guest(const struct vshm_mem *m,
                                               const struct vshm_gpa_range *ranges, unsigned n,
                                               int *dmabuf_fd)
{
	struct vshm_udmabuf_seg *segs = NULL;
	unsigned n_segs = 0;
	int ret;

	if (!m || !dmabuf_fd || (n && !ranges))
		return -EINVAL;
	ret = vshm_udmabuf_resolve_guest(m, ranges, n, &segs, &n_segs);
	if (ret == 0)
		ret = create_from_segs(segs, n_segs, dmabuf_fd);
	free(segs);
	return ret;
}
