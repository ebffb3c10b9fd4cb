/* SPDX-License-Identifier: MIT */
/*
 * vshm-e2e-dmabuf - libvshm's buffer and fence code against a real kernel.
 *
 * A static guest program (tests/e2e/build-guest.sh links it with
 * libvshm/src/{buffer_memfd,buffer_udmabuf,buffer_dmabuf,fence,memory,
 * log,util}.c), started by /init for the e2e test "dmabuf". The host has no
 * /dev/udmabuf, so this is where vshm_udmabuf_* and vshm_fence_* meet the
 * kernel paths they were written for (Debian's 6.12 has CONFIG_UDMABUF=y).
 *
 * Every verdict is the guest's own; the host (tests/e2e/run.py) only
 * collects the lines:
 *
 *   @@GCHECK name ok=0|1 k=v ... free text   one check and its evidence
 *   @@GSKIP name reason                      not run here, and why
 *   @@INFO text                              logged by the host
 *
 * Checks, in order (the failure modes come first because libvshm rate
 * limits its explanations to 10 per 5 s and one of them is asserted):
 *   dmabuf-available      vshm_udmabuf_available and its reason; with
 *                         udmabuf absent, dmabuf-fallback proves the explicit
 *                         -ENODEV + reason and the kernel checks are skipped
 *   dmabuf-limits         vshm_udmabuf_get_limits (sysfs module parameters)
 *   dmabuf-err-noshrink   memfd without F_SEAL_SHRINK: -ENOTSUP from libvshm
 *                         (with a reason) while the raw ioctl gets a bare EINVAL
 *   dmabuf-err-writeseal  F_SEAL_WRITE: -ENOTSUP
 *   dmabuf-err-notmemfd   a pipe: -ENOTSUP
 *   dmabuf-err-e2big      65 MiB: -E2BIG, log names size_limit_mb
 *   dmabuf-err-misaligned offset 100 / size 4097: -EINVAL
 *   dmabuf-single         one memfd range -> dma-buf: size, mmap, contents
 *                         both ways, DMA_BUF_IOCTL_SYNC start/end
 *   dmabuf-multi          ranges from three memfds (one pair contiguous in a
 *                         file, merged into one item) in one CREATE_LIST
 *   dmabuf-guest          vshm_udmabuf_create_from_guest over a vshm_mem
 *                         table of memfds laid out like QEMU guest RAM
 *                         (adjacent regions in different files, the 4 GiB
 *                         hole with both sides in one memfd), plus -EFAULT
 *   dmabuf-fence          sync_file export (read and write), wait, import
 *                         back, vshm_fence_sync_file_support() == 1, and an
 *                         eventfd refused by IMPORT_SYNC_FILE
 *   dmabuf-prime          a virtio_gpu dumb buffer exported with PRIME: the
 *                         dma-buf helpers and sync_file export on a dma-buf
 *                         that needs no udmabuf (so also on 6.1)
 * Exit status: 0 when every check passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <drm.h>
#include <drm_mode.h>

#include <vshm/buffer.h>
#include <vshm/fence.h>
#include <vshm/log.h>
#include <vshm/memory.h>

#include "buffer-internal.h"

#define MIB (1024ull * 1024ull)

static unsigned n_failed;

/* ---- reporting ---- */

static void check(const char *name, int ok, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void check(const char *name, int ok, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!ok)
		n_failed++;
	printf("@@GCHECK %s ok=%d %s\n", name, ok ? 1 : 0, msg);
	fflush(stdout);
}

static void skip(const char *name, const char *why)
{
	printf("@@GSKIP %s %s\n", name, why);
	fflush(stdout);
}

/* The last libvshm log lines, so a check can assert what was explained. */
static char last_log[8][512];
static unsigned n_log;

static void on_log(enum vshm_log_level level, const char *msg, void *data)
{
	(void)data;
	snprintf(last_log[n_log % 8], sizeof(last_log[0]), "%s", msg);
	n_log++;
	if (level <= VSHM_LOG_WARN)
		printf("@@INFO dmabuf libvshm: %s\n", msg);
	fflush(stdout);
}

static const char *log_find(const char *needle)
{
	unsigned n = n_log < 8 ? n_log : 8;

	for (unsigned i = 0; i < n; i++) {
		const char *m = last_log[(n_log - 1 - i) % 8];
		if (strstr(m, needle))
			return m;
	}
	return NULL;
}

/* ---- helpers ---- */

/* A plain memfd of @size with @seals added (0: none). -1 on error. */
static int raw_memfd(uint64_t size, unsigned seals)
{
	int fd = memfd_create("e2e-raw", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) < 0 || (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Byte @i of the pattern for buffer @tag: every 4 KiB page differs. */
static uint8_t pat(unsigned tag, uint64_t i)
{
	return (uint8_t)((i * 7u) ^ (i >> 12) ^ (tag * 0x35u));
}

static void fill(uint8_t *p, uint64_t len, unsigned tag, uint64_t base)
{
	for (uint64_t i = 0; i < len; i++)
		p[i] = pat(tag, base + i);
}

/* Index of the first byte of @p that is not the pattern, or -1. */
static int64_t verify(const uint8_t *p, uint64_t len, unsigned tag, uint64_t base)
{
	for (uint64_t i = 0; i < len; i++)
		if (p[i] != pat(tag, base + i))
			return (int64_t)i;
	return -1;
}

/* Items the last successful submit used, from libvshm's debug line; -1 unknown. */
static int last_items(void)
{
	const char *m = log_find(" items, ");
	const char *p = m ? strstr(m, "udmabuf: ") : NULL;

	return p ? atoi(p + 9) : -1;
}

/* ---- failure modes (no kernel call reached, or the kernel's bare answer) ---- */

static void test_errors(bool available)
{
	struct vshm_memfd_range r;
	int fd, dfd = -1, ret, pfd[2];

	/* No F_SEAL_SHRINK: libvshm refuses with a reason; the kernel would say EINVAL. */
	fd = raw_memfd(64 * 1024, 0);
	r = (struct vshm_memfd_range){ fd, 0, 64 * 1024 };
	n_log = 0;
	ret = vshm_udmabuf_create(&r, 1, &dfd);
	{
		const char *why = log_find("F_SEAL_SHRINK");
		int kerr = 0;

		if (available) {
			/* The same request straight to the kernel, to show what libvshm spares us.
			 */
			struct {
				struct vshm_uapi_udmabuf_create_list h;
				struct vshm_uapi_udmabuf_create_item it;
			} req = { { VSHM_UDMABUF_FLAGS_CLOEXEC, 1 },
				  { (uint32_t)fd, 0, 0, 64 * 1024 } };
			int dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
			int kfd = dev >= 0 ? ioctl(dev, VSHM_UDMABUF_CREATE_LIST, &req) : -1;

			kerr = kfd < 0 ? errno : 0;
			if (kfd >= 0)
				close(kfd);
			if (dev >= 0)
				close(dev);
		}
		check("dmabuf-err-noshrink",
		      ret == -ENOTSUP && dfd < 0 && why && (!available || kerr == EINVAL),
		      "ret=%d want=%d kernel_errno=%s reason: %s", ret, -ENOTSUP,
		      available ? strerror(kerr) : "(not asked)", why ? why : "(none logged)");
	}
	close(fd);

	/* F_SEAL_WRITE: udmabuf refuses write-sealed memfds. */
	fd = raw_memfd(64 * 1024, F_SEAL_SHRINK | F_SEAL_WRITE);
	r = (struct vshm_memfd_range){ fd, 0, 64 * 1024 };
	ret = vshm_udmabuf_create(&r, 1, &dfd);
	check("dmabuf-err-writeseal", ret == -ENOTSUP, "ret=%d want=%d", ret, -ENOTSUP);
	close(fd);

	/* Not a memfd at all. */
	if (pipe2(pfd, O_CLOEXEC) == 0) {
		r = (struct vshm_memfd_range){ pfd[0], 0, 4096 };
		ret = vshm_udmabuf_create(&r, 1, &dfd);
		check("dmabuf-err-notmemfd", ret == -ENOTSUP, "ret=%d want=%d (a pipe)", ret,
		      -ENOTSUP);
		close(pfd[0]);
		close(pfd[1]);
	} else {
		check("dmabuf-err-notmemfd", 0, "pipe2: %s", strerror(errno));
	}

	/* Over the 64 MiB default size_limit_mb (sparse: ftruncate allocates nothing). */
	{
		struct vshm_udmabuf_limits lim;
		uint64_t size;
		const char *why;

		vshm_udmabuf_get_limits(&lim);
		size = lim.size_limit + MIB;
		fd = raw_memfd(size, F_SEAL_SHRINK | F_SEAL_GROW);
		r = (struct vshm_memfd_range){ fd, 0, size };
		n_log = 0;
		ret = vshm_udmabuf_create(&r, 1, &dfd);
		why = log_find("size_limit_mb");
		check("dmabuf-err-e2big", ret == -E2BIG && why,
		      "size=%llu limit=%llu ret=%d want=%d reason: %s", (unsigned long long)size,
		      (unsigned long long)lim.size_limit, ret, -E2BIG, why ? why : "(none logged)");
		close(fd);
	}

	/* Misaligned offset and size. */
	fd = raw_memfd(64 * 1024, F_SEAL_SHRINK);
	{
		struct vshm_memfd_range a = { fd, 100, 4096 }, b = { fd, 0, 4097 };
		int r1 = vshm_udmabuf_create(&a, 1, &dfd), r2 = vshm_udmabuf_create(&b, 1, &dfd);

		check("dmabuf-err-misaligned", r1 == -EINVAL && r2 == -EINVAL,
		      "offset100=%d size4097=%d want=%d", r1, r2, -EINVAL);
	}
	close(fd);
}

/* ---- udmabuf from memfd ranges ---- */

/* Map @dfd, check it against @expect (tag/base per byte supplied by @exp), write back. */
static void test_single(void)
{
	struct vshm_memfd_buf *b = NULL;
	const uint64_t size = 1 * MIB;
	struct vshm_memfd_range r;
	uint64_t dsize = 0;
	int dfd = -1, ret, s1, s2, s3, s4;
	int64_t bad_d = -2, bad_m = -2;
	uint8_t *d = MAP_FAILED, *m;

	ret = vshm_memfd_buf_new("e2e-single", size, 0, &b);
	if (ret < 0) {
		check("dmabuf-single", 0, "vshm_memfd_buf_new: %s", strerror(-ret));
		return;
	}
	m = vshm_memfd_buf_data(b);
	fill(m, size, 1, 0);
	r = (struct vshm_memfd_range){ vshm_memfd_buf_fd(b), 0, size };
	ret = vshm_udmabuf_create(&r, 1, &dfd);
	if (ret < 0) {
		check("dmabuf-single", 0, "vshm_udmabuf_create: %s", strerror(-ret));
		goto out;
	}
	vshm_dmabuf_get_size(dfd, &dsize);
	d = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
	if (d == MAP_FAILED) {
		check("dmabuf-single", 0, "mmap of the dma-buf: %s", strerror(errno));
		goto out;
	}
	/* memfd -> dma-buf */
	s1 = vshm_dmabuf_sync_start(dfd, VSHM_DMABUF_SYNC_READ);
	bad_d = verify(d, size, 1, 0);
	s2 = vshm_dmabuf_sync_end(dfd, VSHM_DMABUF_SYNC_READ);
	/* dma-buf -> memfd */
	s3 = vshm_dmabuf_sync_start(dfd, VSHM_DMABUF_SYNC_RW);
	fill(d, size, 2, 0);
	s4 = vshm_dmabuf_sync_end(dfd, VSHM_DMABUF_SYNC_RW);
	bad_m = verify(m, size, 2, 0);
	check("dmabuf-single",
	      vshm_dmabuf_is_dmabuf(dfd) && dsize == size && bad_d < 0 && bad_m < 0 && !s1 && !s2 &&
	              !s3 && !s4,
	      "is_dmabuf=%d size=%llu items=%d memfd->dmabuf_first_bad=%lld "
	      "dmabuf->memfd_first_bad=%lld sync(start R, end R, start RW, end RW)=%d,%d,%d,%d",
	      vshm_dmabuf_is_dmabuf(dfd), (unsigned long long)dsize, last_items(), (long long)bad_d,
	      (long long)bad_m, s1, s2, s3, s4);
	{
		/* The kernel also refuses bad sync flags through libvshm. */
		int e = vshm_dmabuf_sync_start(dfd, 0);
		check("dmabuf-sync-badflags", e == -EINVAL, "sync_start(flags 0)=%d want=%d", e,
		      -EINVAL);
	}
out:
	if (d != MAP_FAILED)
		munmap(d, size);
	if (dfd >= 0)
		close(dfd);
	vshm_memfd_buf_destroy(b);
}

/* Ranges from three memfds, as scattered guest pages would be. */
static void test_multi(void)
{
	enum { NB = 3 };
	struct vshm_memfd_buf *b[NB] = { 0 };
	uint8_t *m[NB];
	const uint64_t pg = 4096, size = 256 * 1024;
	/* (buffer, offset, size); ranges 1 and 2 are contiguous in buffer 1: one item. */
	const struct {
		unsigned buf;
		uint64_t off, len;
	} spec[] = {
		{ 2, 5 * pg, 3 * pg },  { 1, 0, 2 * pg }, { 1, 2 * pg, 4 * pg },
		{ 0, 40 * pg, 1 * pg }, { 2, 0, 1 * pg }, { 0, 0, 16 * pg },
	};
	const unsigned n = sizeof(spec) / sizeof(spec[0]);
	struct vshm_memfd_range r[sizeof(spec) / sizeof(spec[0])];
	uint64_t total = 0, pos = 0, dsize = 0;
	int dfd = -1, ret, items;
	uint8_t *d = MAP_FAILED;
	int64_t bad = -1, bad_back = -1;

	for (unsigned i = 0; i < NB; i++) {
		if (vshm_memfd_buf_new("e2e-multi", size, 0, &b[i]) < 0) {
			check("dmabuf-multi", 0, "vshm_memfd_buf_new failed");
			goto out;
		}
		m[i] = vshm_memfd_buf_data(b[i]);
		fill(m[i], size, 10 + i, 0);
	}
	for (unsigned i = 0; i < n; i++) {
		r[i] = (struct vshm_memfd_range){ vshm_memfd_buf_fd(b[spec[i].buf]), spec[i].off,
			                          spec[i].len };
		total += spec[i].len;
	}
	ret = vshm_udmabuf_create(r, n, &dfd);
	items = last_items();
	if (ret < 0) {
		check("dmabuf-multi", 0, "vshm_udmabuf_create (%u ranges): %s", n, strerror(-ret));
		goto out;
	}
	vshm_dmabuf_get_size(dfd, &dsize);
	d = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
	if (d == MAP_FAILED) {
		check("dmabuf-multi", 0, "mmap: %s", strerror(errno));
		goto out;
	}
	vshm_dmabuf_sync_start(dfd, VSHM_DMABUF_SYNC_RW);
	for (unsigned i = 0; i < n && bad < 0; i++) {
		int64_t e = verify(d + pos, spec[i].len, 10 + spec[i].buf, spec[i].off);
		if (e >= 0)
			bad = (int64_t)pos + e;
		/* Write back through the dma-buf a pattern keyed by the position in it. */
		fill(d + pos, spec[i].len, 20, pos);
		pos += spec[i].len;
	}
	vshm_dmabuf_sync_end(dfd, VSHM_DMABUF_SYNC_RW);
	pos = 0;
	for (unsigned i = 0; i < n && bad_back < 0; i++) {
		int64_t e = verify(m[spec[i].buf] + spec[i].off, spec[i].len, 20, pos);
		if (e >= 0)
			bad_back = (int64_t)pos + e;
		pos += spec[i].len;
	}
	check("dmabuf-multi", dsize == total && bad < 0 && bad_back < 0 && items == (int)n - 1,
	      "ranges=%u memfds=%d items=%d(want %u: two ranges contiguous in one memfd merged) "
	      "size=%llu/%llu first_bad=%lld first_bad_back=%lld",
	      n, NB, items, n - 1, (unsigned long long)dsize, (unsigned long long)total,
	      (long long)bad, (long long)bad_back);
out:
	if (d != MAP_FAILED)
		munmap(d, total);
	if (dfd >= 0)
		close(dfd);
	for (unsigned i = 0; i < NB; i++)
		vshm_memfd_buf_destroy(b[i]);
}

/*
 * A guest memory table like QEMU's: RAM memfd A (16 MiB) holds both the
 * region below the hole (gpa 0, A[0, 8M)) and the one above 4 GiB
 * (gpa 4G, A[8M, 16M)); region B (gpa 8M, 8 MiB) sits right after region
 * 0 in guest-physical space but lives in another memfd, at offset 4 MiB.
 */
static void test_guest(void)
{
	const uint64_t G4 = 4096ull * MIB, pg = 4096;
	struct vshm_memfd_buf *fa = NULL, *fb = NULL;
	struct vshm_mem *mem = NULL;
	struct vshm_mem_region_desc reg[3] = {
		{ .guest_addr = 0,
		  .size = 8 * MIB,
		  .user_addr = 0x7f0000000000ull,
		  .mmap_offset = 0 },
		{ .guest_addr = 8 * MIB,
		  .size = 8 * MIB,
		  .user_addr = 0x7f1000000000ull,
		  .mmap_offset = 4 * MIB },
		{ .guest_addr = G4,
		  .size = 8 * MIB,
		  .user_addr = 0x7f2000000000ull,
		  .mmap_offset = 8 * MIB },
	};
	/*
	 * 1: crosses region 0 -> region 1 (different files: split in two);
	 *    its first MiB includes range 2 (guest lists may alias pages);
	 * 2: the last 64 KiB below 8 MiB followed by 3: the first 64 KiB above
	 *    4 GiB: one run in file A (offset 8M - 64K .. 8M + 64K): merged;
	 * 4: a small piece inside region 1.
	 */
	const struct vshm_gpa_range gr[] = {
		{ 7 * MIB, 2 * MIB },
		{ 8 * MIB - 64 * 1024, 64 * 1024 },
		{ G4, 64 * 1024 },
		{ 8 * MIB + 123 * pg, 5 * pg },
	};
	const unsigned n = sizeof(gr) / sizeof(gr[0]);
	uint64_t total = 0, pos = 0, dsize = 0;
	int fds[3], dfd = -1, ret, items, efault;
	int64_t bad = -1, bad_back = -1;
	uint8_t *d = MAP_FAILED;

	if (vshm_memfd_buf_new("e2e-guest-ram-a", 16 * MIB, 0, &fa) < 0 ||
	    vshm_memfd_buf_new("e2e-guest-ram-b", 12 * MIB, 0, &fb) < 0 ||
	    vshm_mem_new(8, &mem) < 0) {
		check("dmabuf-guest", 0, "setup failed");
		goto out;
	}
	/* Each region's bytes: pattern keyed by guest-physical address. */
	for (unsigned i = 0; i < 3; i++) {
		uint8_t *base =
		        (uint8_t *)vshm_memfd_buf_data(i == 1 ? fb : fa) + reg[i].mmap_offset;
		fill(base, reg[i].size, 30, reg[i].guest_addr);
	}
	/* The table owns its fds (as from SET_MEM_TABLE): give it dups, one per region. */
	fds[0] = fcntl(vshm_memfd_buf_fd(fa), F_DUPFD_CLOEXEC, 0);
	fds[1] = fcntl(vshm_memfd_buf_fd(fb), F_DUPFD_CLOEXEC, 0);
	fds[2] = fcntl(vshm_memfd_buf_fd(fa), F_DUPFD_CLOEXEC, 0);
	ret = vshm_mem_set_table(mem, reg, fds, 3);
	if (ret < 0) {
		check("dmabuf-guest", 0, "vshm_mem_set_table: %s", strerror(-ret));
		goto out;
	}
	for (unsigned i = 0; i < n; i++)
		total += gr[i].len;
	ret = vshm_udmabuf_create_from_guest(mem, gr, n, &dfd);
	items = last_items();
	if (ret < 0) {
		check("dmabuf-guest", 0, "vshm_udmabuf_create_from_guest: %s", strerror(-ret));
		goto out;
	}
	vshm_dmabuf_get_size(dfd, &dsize);
	d = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
	if (d == MAP_FAILED) {
		check("dmabuf-guest", 0, "mmap: %s", strerror(errno));
		goto out;
	}
	vshm_dmabuf_sync_start(dfd, VSHM_DMABUF_SYNC_RW);
	/* Ranges 1 and 2 overlap in guest memory: read everything before writing. */
	for (unsigned i = 0; i < n; i++) {
		int64_t e = verify(d + pos, gr[i].len, 30, gr[i].gpa);
		if (e >= 0 && bad < 0)
			bad = (int64_t)pos + e;
		pos += gr[i].len;
	}
	pos = 0;
	for (unsigned i = 0; i < n; i++) {
		fill(d + pos, gr[i].len, 31, gr[i].gpa);
		pos += gr[i].len;
	}
	vshm_dmabuf_sync_end(dfd, VSHM_DMABUF_SYNC_RW);
	/* What the device would read through its own guest mapping. */
	for (unsigned i = 0; i < n && bad_back < 0; i++) {
		for (uint64_t off = 0; off < gr[i].len && bad_back < 0; off += pg) {
			const uint8_t *va = vshm_mem_gpa_to_va(mem, gr[i].gpa + off, pg);
			int64_t e = va ? verify(va, pg, 31, gr[i].gpa + off) : 0;
			if (e >= 0)
				bad_back = (int64_t)(gr[i].gpa + off) + e;
		}
	}
	{
		struct vshm_gpa_range outside = { 64 * MIB, pg };
		int x = -1;
		efault = vshm_udmabuf_create_from_guest(mem, &outside, 1, &x);
		if (x >= 0 && efault == 0)
			close(x);
	}
	/* 4 guest ranges -> 5 pieces (range 1 split) -> 4 items (ranges 2+3 merged by inode). */
	check("dmabuf-guest",
	      dsize == total && bad < 0 && bad_back < 0 && items == 4 && efault == -EFAULT,
	      "regions=3 (2 memfds, gpa 0/8M/4G) ranges=%u items=%d(want 4) size=%llu/%llu "
	      "first_bad=%lld first_bad_via_gpa=%lld outside_guest=%d(want %d)",
	      n, items, (unsigned long long)dsize, (unsigned long long)total, (long long)bad,
	      (long long)bad_back, efault, -EFAULT);
out:
	if (d != MAP_FAILED)
		munmap(d, total);
	if (dfd >= 0)
		close(dfd);
	vshm_mem_destroy(mem);
	vshm_memfd_buf_destroy(fa);
	vshm_memfd_buf_destroy(fb);
}

/* sync_file export/import on @dfd (a dma-buf); @name prefixes the checks. */
static void test_fence_on(const char *name, int dfd)
{
	int sf_r = -1, sf_w = -1, e1, e2, w1 = -99, w2 = -99, imp = -99, bad_imp, efd;

	e1 = vshm_fence_export_from_dmabuf(dfd, VSHM_FENCE_READ, &sf_r);
	if (e1 == 0)
		w1 = vshm_fence_wait(sf_r, 1000);
	if (e1 == 0)
		imp = vshm_fence_import_to_dmabuf(dfd, sf_r, VSHM_FENCE_WRITE);
	e2 = vshm_fence_export_from_dmabuf(dfd, VSHM_FENCE_READ | VSHM_FENCE_WRITE, &sf_w);
	if (e2 == 0)
		w2 = vshm_fence_wait(sf_w, 1000);
	/* An eventfd (a timeline fence) is no sync_file: the kernel refuses it. */
	efd = eventfd(1, EFD_CLOEXEC);
	bad_imp = vshm_fence_import_to_dmabuf(dfd, efd, VSHM_FENCE_READ);
	check(name,
	      e1 == 0 && e2 == 0 && w1 == 0 && w2 == 0 && imp == 0 && bad_imp < 0 &&
	              vshm_fence_sync_file_support() == 1 && vshm_fence_is_signaled(sf_w),
	      "export_read=%d wait=%d import_write=%d export_rw=%d wait=%d support=%d "
	      "import_eventfd=%d(want <0)",
	      e1, w1, imp, e2, w2, vshm_fence_sync_file_support(), bad_imp);
	if (efd >= 0)
		close(efd);
	if (sf_r >= 0)
		close(sf_r);
	if (sf_w >= 0)
		close(sf_w);
}

static void test_fence_udmabuf(void)
{
	struct vshm_memfd_buf *b = NULL;
	struct vshm_memfd_range r;
	int dfd = -1, ret;

	if (vshm_memfd_buf_new("e2e-fence", 64 * 1024, 0, &b) < 0) {
		check("dmabuf-fence", 0, "vshm_memfd_buf_new failed");
		return;
	}
	r = (struct vshm_memfd_range){ vshm_memfd_buf_fd(b), 0, 64 * 1024 };
	ret = vshm_udmabuf_create(&r, 1, &dfd);
	if (ret < 0)
		check("dmabuf-fence", 0, "vshm_udmabuf_create: %s", strerror(-ret));
	else
		test_fence_on("dmabuf-fence", dfd);
	if (dfd >= 0)
		close(dfd);
	vshm_memfd_buf_destroy(b);
}

/* A virtio_gpu dumb buffer exported as a dma-buf (PRIME): no udmabuf needed. */
static void test_prime(void)
{
	struct drm_mode_create_dumb cd = { .width = 64, .height = 64, .bpp = 32 };
	struct drm_prime_handle ph = { .flags = DRM_CLOEXEC | DRM_RDWR };
	struct drm_mode_destroy_dumb dd;
	int card = open("/dev/dri/card0", O_RDWR | O_CLOEXEC), s1, s2;
	uint64_t dsize = 0;
	uint8_t *p = MAP_FAILED;

	if (card < 0) {
		check("dmabuf-prime", 0, "open /dev/dri/card0: %s", strerror(errno));
		return;
	}
	if (ioctl(card, DRM_IOCTL_MODE_CREATE_DUMB, &cd) < 0) {
		check("dmabuf-prime", 0, "CREATE_DUMB: %s", strerror(errno));
		close(card);
		return;
	}
	ph.handle = cd.handle;
	if (ioctl(card, DRM_IOCTL_PRIME_HANDLE_TO_FD, &ph) < 0) {
		check("dmabuf-prime", 0, "PRIME_HANDLE_TO_FD: %s", strerror(errno));
		goto out;
	}
	vshm_dmabuf_get_size(ph.fd, &dsize);
	p = mmap(NULL, cd.size, PROT_READ | PROT_WRITE, MAP_SHARED, ph.fd, 0);
	s1 = vshm_dmabuf_sync_start(ph.fd, VSHM_DMABUF_SYNC_WRITE);
	if (p != MAP_FAILED)
		memset(p, 0x5a, cd.size);
	s2 = vshm_dmabuf_sync_end(ph.fd, VSHM_DMABUF_SYNC_WRITE);
	check("dmabuf-prime",
	      vshm_dmabuf_is_dmabuf(ph.fd) && dsize >= cd.size && p != MAP_FAILED && !s1 && !s2,
	      "virtio_gpu dumb 64x64 -> dma-buf: is_dmabuf=%d size=%llu mmap=%s sync=%d,%d",
	      vshm_dmabuf_is_dmabuf(ph.fd), (unsigned long long)dsize,
	      p == MAP_FAILED ? strerror(errno) : "ok", s1, s2);
	test_fence_on("dmabuf-prime-fence", ph.fd);
	if (p != MAP_FAILED)
		munmap(p, cd.size);
	close(ph.fd);
out:
	dd.handle = cd.handle;
	ioctl(card, DRM_IOCTL_MODE_DESTROY_DUMB, &dd);
	close(card);
}

int main(void)
{
	const char *reason = NULL;
	struct vshm_udmabuf_limits lim;
	struct utsname u;
	bool avail;

	setvbuf(stdout, NULL, _IOLBF, 0);
	vshm_log_set_handler(on_log, NULL);
	vshm_log_set_level(VSHM_LOG_DEBUG);
	uname(&u);

	avail = vshm_udmabuf_available(&reason);
	check("dmabuf-available", 1, "available=%d kernel=%s reason: %s", avail ? 1 : 0, u.release,
	      reason ? reason : "(none)");
	vshm_udmabuf_get_limits(&lim);
	check("dmabuf-limits", lim.size_limit > 0 && lim.list_limit > 0 && lim.page_size == 4096,
	      "list_limit=%u size_limit_mb=%llu page=%llu", lim.list_limit,
	      (unsigned long long)(lim.size_limit >> 20), (unsigned long long)lim.page_size);

	test_errors(avail);
	if (avail) {
		test_single();
		test_multi();
		test_guest();
		test_fence_udmabuf();
	} else {
		/* The explicit fallback: a valid request answers -ENODEV with the reason. */
		struct vshm_memfd_buf *b = NULL;
		int dfd = -1, ret = -1;

		if (vshm_memfd_buf_new("e2e-fallback", 64 * 1024, 0, &b) == 0) {
			struct vshm_memfd_range r = { vshm_memfd_buf_fd(b), 0, 64 * 1024 };
			ret = vshm_udmabuf_create(&r, 1, &dfd);
		}
		check("dmabuf-fallback", ret == -ENODEV && reason && strstr(reason, "/dev/udmabuf"),
		      "vshm_udmabuf_create=%d(want %d) fallback: %s", ret, -ENODEV,
		      reason ? reason : "(no reason)");
		vshm_memfd_buf_destroy(b);
		for (const char *const *s =
		             (const char *const[]){ "dmabuf-single", "dmabuf-multi", "dmabuf-guest",
		                                    "dmabuf-fence", NULL };
		     *s; s++)
			skip(*s, "no /dev/udmabuf in this kernel (see dmabuf-fallback)");
	}
	test_prime();
	printf("@@INFO dmabuf %u failed\n", n_failed);
	return n_failed ? 1 : 0;
}
