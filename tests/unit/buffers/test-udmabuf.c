/* SPDX-License-Identifier: MIT */
/*
 * test-udmabuf.c - the udmabuf item-list builder as a pure function on
 * fabricated ranges (merging, alignment, seals, item and size limits), the
 * fd/guest-memory resolution and its error reporting, and the real
 * UDMABUF_CREATE_LIST path when /dev/udmabuf exists (explicit SKIP line
 * otherwise).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vshm/buffer.h>
#include <vshm/fence.h>
#include <vshm/log.h>
#include <vshm/memory.h>

#include "buffer-internal.h"
#include "test-runner.h"

#define KIB  4096ull /* one 4 KiB page, the fabricated page size */
#define MIB  (1ull << 20)
#define GOOD (F_SEAL_SHRINK | F_SEAL_GROW)

/* ---- log capture ---- */

static char logbuf[16384];

static void capture(enum vshm_log_level level, const char *msg, void *data)
{
	size_t used = strlen(logbuf);
	snprintf(logbuf + used, sizeof(logbuf) - used, "%s\n", msg);
}

static void capture_logs(void)
{
	logbuf[0] = '\0';
	vshm_log_set_handler(capture, NULL);
	vshm_log_set_level(VSHM_LOG_DEBUG);
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* ---- the pure builder ---- */

static const struct vshm_udmabuf_limits lim4k = { .list_limit = 1024,
	                                          .size_limit = 64 * MIB,
	                                          .page_size = KIB };

/* A well-formed piece of "file" @fd (identity = fd number here). */
static struct vshm_udmabuf_seg seg(int fd, uint64_t off, uint64_t size)
{
	return (struct vshm_udmabuf_seg){ .fd = fd,
		                          .offset = off,
		                          .size = size,
		                          .seals = GOOD,
		                          .file_size = 1ull << 40,
		                          .dev = 1,
		                          .ino = (uint64_t)fd };
}

struct plan {
	int ret;
	unsigned n;
	uint64_t total;
	struct vshm_memfd_range items[8];
	char why[320];
};

static struct plan build(const struct vshm_udmabuf_seg *s, unsigned n,
                         const struct vshm_udmabuf_limits *lim)
{
	struct plan p = { .n = 12345 };

	p.ret = vshm_udmabuf_build_list(s, n, lim, p.items, 8, &p.n, &p.total, p.why,
	                                sizeof(p.why));
	return p;
}

TEST(build_merges_contiguous_runs_of_one_file)
{
	struct vshm_udmabuf_seg s[] = {
		seg(3, 0, KIB),
		seg(3, KIB, 2 * KIB),      /* merge: [0, 3 pages) */
		seg(3, 8 * KIB, KIB),      /* gap in the file: new item */
		seg(4, 9 * KIB, KIB),      /* other file, even though offsets touch */
		seg(4, 10 * KIB, 6 * KIB), /* merge */
		seg(3, 9 * KIB, KIB),      /* back to file 3 right after its item 2: new item */
	};
	struct plan p = build(s, 6, &lim4k);

	CHECK_OK(p.ret);
	CHECK_EQ(p.n, 4);
	CHECK_EQ(p.total, 12 * KIB);
	CHECK_EQ(p.items[0].fd, 3);
	CHECK_EQ(p.items[0].offset, 0);
	CHECK_EQ(p.items[0].size, 3 * KIB);
	CHECK_EQ(p.items[1].offset, 8 * KIB);
	CHECK_EQ(p.items[1].size, KIB);
	CHECK_EQ(p.items[2].fd, 4);
	CHECK_EQ(p.items[2].offset, 9 * KIB);
	CHECK_EQ(p.items[2].size, 7 * KIB);
	CHECK_EQ(p.items[3].fd, 3);
	CHECK_EQ(p.items[3].offset, 9 * KIB);
}

TEST(build_never_merges_backwards_or_overlapping)
{
	struct vshm_udmabuf_seg s[] = { seg(3, 4 * KIB, KIB), seg(3, 3 * KIB, KIB),
		                        seg(3, 3 * KIB, KIB) };
	struct plan p = build(s, 3, &lim4k);

	/* Order is the pixel order: a run only grows forwards. */
	CHECK_OK(p.ret);
	CHECK_EQ(p.n, 3);
}

TEST(build_merges_dups_of_one_memfd_by_identity)
{
	/* Two fd numbers, one file (as when a VMM sends one fd per region). */
	struct vshm_udmabuf_seg s[] = { seg(3, 0, KIB), seg(7, KIB, KIB) };
	struct plan p;

	s[1].ino = s[0].ino;
	p = build(s, 2, &lim4k);
	CHECK_OK(p.ret);
	CHECK_EQ(p.n, 1);
	CHECK_EQ(p.items[0].fd, 3);
	CHECK_EQ(p.items[0].size, 2 * KIB);
	/* Same inode number on another device is another file. */
	s[1].dev = 2;
	p = build(s, 2, &lim4k);
	CHECK_EQ(p.n, 2);
}

TEST(build_refuses_misalignment)
{
	struct vshm_udmabuf_seg s[] = { seg(3, 0, KIB), seg(3, 100, KIB) };
	struct plan p = build(s, 2, &lim4k);

	CHECK_EQ(p.ret, -EINVAL);
	CHECK(strstr(p.why, "range 1") && strstr(p.why, "aligned"));
	CHECK_EQ(p.n, 12345); /* outputs untouched on failure */

	s[1] = seg(3, KIB, KIB + 1);
	CHECK_EQ(build(s, 2, &lim4k).ret, -EINVAL);
	/* 4 KiB-aligned is not enough where pages are 16 KiB. */
	struct vshm_udmabuf_limits lim16k = lim4k;
	lim16k.page_size = 16384;
	s[1] = seg(3, 16384, KIB);
	p = build(s, 2, &lim16k);
	CHECK_EQ(p.ret, -EINVAL);
	CHECK(strstr(p.why, "16384-byte page"));
	lim16k.page_size = 3000;
	CHECK_EQ(build(s, 1, &lim16k).ret, -EINVAL);
}

TEST(build_refuses_empty_input)
{
	struct vshm_udmabuf_seg s[] = { seg(3, 0, 0) };
	struct plan p = build(s, 0, &lim4k);

	CHECK_EQ(p.ret, -EINVAL);
	CHECK(strstr(p.why, "empty"));
	p = build(s, 1, &lim4k);
	CHECK_EQ(p.ret, -EINVAL);
	CHECK(strstr(p.why, "size 0"));
}

TEST(build_refuses_ranges_past_the_end_of_the_file)
{
	struct vshm_udmabuf_seg s[] = { seg(3, 0, 2 * KIB) };
	struct plan p;

	s[0].file_size = KIB;
	p = build(s, 1, &lim4k);
	CHECK_EQ(p.ret, -EINVAL);
	CHECK(strstr(p.why, "beyond"));
	/* offset + size wrapping around is the same error, not a false pass. */
	s[0] = seg(3, UINT64_MAX - KIB + 1, 2 * KIB);
	s[0].file_size = UINT64_MAX;
	CHECK_EQ(build(s, 1, &lim4k).ret, -EINVAL);
}

TEST(build_checks_the_seal_rules)
{
	struct vshm_udmabuf_seg s[] = { seg(3, 0, KIB) };
	struct plan p;

	s[0].seals = F_SEAL_GROW;
	p = build(s, 1, &lim4k);
	CHECK_EQ(p.ret, -ENOTSUP);
	CHECK(strstr(p.why, "F_SEAL_SHRINK"));

	s[0].seals = F_SEAL_SHRINK | F_SEAL_WRITE;
	p = build(s, 1, &lim4k);
	CHECK_EQ(p.ret, -ENOTSUP);
	CHECK(strstr(p.why, "F_SEAL_WRITE"));

	/* Seals the kernel does not check are fine. */
	s[0].seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL | F_SEAL_FUTURE_WRITE;
	CHECK_OK(build(s, 1, &lim4k).ret);
	s[0].seals = F_SEAL_SHRINK;
	CHECK_OK(build(s, 1, &lim4k).ret);
}

TEST(build_respects_the_item_limit)
{
	unsigned n = 1025;
	struct vshm_udmabuf_seg *s = calloc(n, sizeof(*s));
	struct vshm_memfd_range *items = calloc(n, sizeof(*items));
	unsigned n_items = 0;
	uint64_t total = 0;
	char why[320] = "";

	CHECK(s && items);
	/* Every other page: nothing merges. */
	for (unsigned i = 0; i < n; i++)
		s[i] = seg(3, 2 * i * KIB, KIB);
	CHECK_OK(vshm_udmabuf_build_list(s, 1024, &lim4k, items, n, &n_items, &total, why,
	                                 sizeof(why)));
	CHECK_EQ(n_items, 1024);
	CHECK_EQ(vshm_udmabuf_build_list(s, 1025, &lim4k, items, n, &n_items, &total, why,
	                                 sizeof(why)),
	         -E2BIG);
	CHECK(strstr(why, "1025") && strstr(why, "list_limit"));

	/* Contiguous pages merge, so 1025 pieces can be one item. */
	for (unsigned i = 0; i < n; i++)
		s[i] = seg(3, i * KIB, KIB);
	CHECK_OK(vshm_udmabuf_build_list(s, n, &lim4k, items, n, &n_items, &total, why,
	                                 sizeof(why)));
	CHECK_EQ(n_items, 1);
	CHECK_EQ(total, 1025 * KIB);

	/* A caller array below the kernel limit is a different error. */
	for (unsigned i = 0; i < 3; i++)
		s[i] = seg(3, 2 * i * KIB, KIB);
	CHECK_EQ(vshm_udmabuf_build_list(s, 3, &lim4k, items, 2, &n_items, &total, NULL, 0),
	         -ENOBUFS);
	free(items);
	free(s);
}

TEST(build_respects_the_size_limit)
{
	struct vshm_udmabuf_seg s[] = { seg(3, 0, 32 * MIB), seg(4, 0, 32 * MIB), seg(5, 0, KIB) };
	struct vshm_udmabuf_limits raised = lim4k;
	struct plan p;

	p = build(s, 2, &lim4k);
	CHECK_OK(p.ret);
	CHECK_EQ(p.total, 64 * MIB);
	p = build(s, 3, &lim4k);
	CHECK_EQ(p.ret, -E2BIG);
	/* The message names the module parameter an operator can raise. */
	CHECK(strstr(p.why, "size_limit_mb"));
	CHECK(strstr(p.why, "64 MiB"));
	raised.size_limit = 128 * MIB;
	CHECK_OK(build(s, 3, &raised).ret);

	/* A total that wraps 64 bits is still too big, not small. */
	struct vshm_udmabuf_seg huge[] = { seg(3, 0, 1ull << 63), seg(4, 0, 1ull << 63) };
	huge[0].file_size = huge[1].file_size = UINT64_MAX;
	raised.size_limit = UINT64_MAX;
	p = build(huge, 2, &raised);
	CHECK_EQ(p.ret, -E2BIG);
	CHECK(strstr(p.why, "more than"));
}

/* ---- limits and availability ---- */

TEST(limits_are_sane)
{
	struct vshm_udmabuf_limits lim;

	vshm_udmabuf_get_limits(&lim);
	CHECK_EQ(lim.page_size, sysconf(_SC_PAGESIZE));
	CHECK(lim.list_limit >= 1);
	CHECK(lim.size_limit >= MIB);
	if (access("/sys/module/udmabuf/parameters/list_limit", R_OK) != 0) {
		CHECK_EQ(lim.list_limit, 1024);
		CHECK_EQ(lim.size_limit, 64 * MIB);
	}
}

TEST(availability_is_cached_and_explained)
{
	const char *r1 = NULL, *r2 = NULL;
	bool a;

	capture_logs();
	a = vshm_udmabuf_available(&r1);
	CHECK(r1 && *r1);
	CHECK_EQ(vshm_udmabuf_available(&r2), a);
	CHECK(r1 == r2);
	CHECK_EQ(vshm_udmabuf_available(NULL), a);
	if (!a) {
		printf("# SKIP udmabuf: /dev/udmabuf absent (explicit)\n# reason: %s\n", r1);
		CHECK(strstr(r1, "/dev/udmabuf"));
		/* Reported once, however often asked. */
		CHECK_EQ(count(logbuf, r1), 1);
	} else {
		CHECK(strcmp(r1, "available") == 0);
	}
}

/* ---- resolving real fds (no device needed: checks come first) ---- */

static int sealed_memfd(uint64_t size, int seals)
{
	int fd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0);
	CHECK_OK(ftruncate(fd, (off_t)size));
	if (seals)
		CHECK_OK(fcntl(fd, F_ADD_SEALS, seals));
	return fd;
}

/* The result of a create call that passed every check: success or no device. */
static void check_passed_checks(int ret, int dmabuf_fd)
{
	if (vshm_udmabuf_available(NULL)) {
		CHECK_OK(ret);
		CHECK(vshm_dmabuf_is_dmabuf(dmabuf_fd));
		close(dmabuf_fd);
	} else {
		CHECK_EQ(ret, -ENODEV);
	}
}

TEST(create_reports_wrong_seals_and_non_memfds)
{
	long page = sysconf(_SC_PAGESIZE);
	int unsealable = memfd_create("nosealing", MFD_CLOEXEC);
	int write_sealed = sealed_memfd((uint64_t)page, F_SEAL_SHRINK | F_SEAL_WRITE);
	int unsealed = sealed_memfd((uint64_t)page, 0);
	int efd = eventfd(0, EFD_CLOEXEC);
	int out = -1;

	CHECK(unsealable >= 0 && efd >= 0);
	CHECK_OK(ftruncate(unsealable, page));
	capture_logs();

	struct vshm_memfd_range r = { .fd = unsealable, .offset = 0, .size = (uint64_t)page };
	CHECK_EQ(vshm_udmabuf_create(&r, 1, &out), -ENOTSUP);
	CHECK(strstr(logbuf, "F_SEAL_SHRINK"));
	r.fd = unsealed;
	CHECK_EQ(vshm_udmabuf_create(&r, 1, &out), -ENOTSUP);
	r.fd = write_sealed;
	logbuf[0] = '\0';
	CHECK_EQ(vshm_udmabuf_create(&r, 1, &out), -ENOTSUP);
	CHECK(strstr(logbuf, "F_SEAL_WRITE"));
	r.fd = efd;
	logbuf[0] = '\0';
	CHECK_EQ(vshm_udmabuf_create(&r, 1, &out), -ENOTSUP);
	CHECK(strstr(logbuf, "not a sealable memfd"));
	r.fd = 987654;
	CHECK_EQ(vshm_udmabuf_create(&r, 1, &out), -EBADF);
	CHECK_EQ(vshm_udmabuf_create(&r, 0, &out), -EINVAL);
	CHECK_EQ(vshm_udmabuf_create(NULL, 1, &out), -EINVAL);
	CHECK_EQ(out, -1);
	close(unsealable);
	close(write_sealed);
	close(unsealed);
	close(efd);
}

TEST(create_from_a_memfd_buffer)
{
	struct vshm_memfd_buf *b;
	int out = -1;

	CHECK_OK(vshm_memfd_buf_new("px", 3 * 4096, 0, &b));
	struct vshm_memfd_range r = { vshm_memfd_buf_fd(b), 0, vshm_memfd_buf_size(b) };
	/* Past the end of the (sealed) file: our check, not a kernel EINVAL. */
	r.size += (uint64_t)sysconf(_SC_PAGESIZE);
	capture_logs();
	CHECK_EQ(vshm_udmabuf_create(&r, 1, &out), -EINVAL);
	CHECK(strstr(logbuf, "beyond"));
	r.size = vshm_memfd_buf_size(b);
	check_passed_checks(vshm_udmabuf_create(&r, 1, &out), out);
	vshm_memfd_buf_destroy(b);
}

/* ---- guest memory ---- */

#define GPA0 0x100000ull

struct guest {
	struct vshm_mem *m;
	uint64_t region_size;
};

/*
 * Three regions: 0 and 1 adjacent in guest-physical space but different
 * memfds; 2 far away but the window of region 0's memfd right after it,
 * the way a VMM splits one RAM block around a hole.
 */
static struct guest guest_new(int seals)
{
	struct guest g = { .region_size = 16 * (uint64_t)sysconf(_SC_PAGESIZE) };
	uint64_t rs = g.region_size;
	int a = sealed_memfd(2 * rs, seals), b = sealed_memfd(rs, seals);
	struct vshm_mem_region_desc d[3] = {
		{ .guest_addr = GPA0, .size = rs, .user_addr = 0x7f0000000000, .mmap_offset = 0 },
		{ .guest_addr = GPA0 + rs, .size = rs, .user_addr = 0x7f1000000000 },
		{ .guest_addr = 0x10000000,
		  .size = rs,
		  .user_addr = 0x7f2000000000,
		  .mmap_offset = rs },
	};
	int fds[3] = { a, b, dup(a) };

	CHECK(fds[2] >= 0);
	CHECK_OK(vshm_mem_new(8, &g.m));
	CHECK_OK(vshm_mem_set_table(g.m, d, fds, 3));
	return g;
}

TEST(guest_ranges_resolve_split_and_merge)
{
	struct guest g = guest_new(GOOD);
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE), rs = g.region_size, total = 0;
	/* Last page of region 0 + first of region 2: contiguous in memfd a. */
	struct vshm_gpa_range r[] = {
		{ GPA0 + rs - 2 * pg, 3 * pg }, /* crosses from region 0 into region 1 */
		{ GPA0 + rs - pg, pg },         /* region 0's last page again */
		{ 0x10000000, 2 * pg },         /* region 2: same memfd a, next offsets */
	};
	struct vshm_udmabuf_limits lim;
	struct vshm_memfd_range items[8];
	struct vshm_udmabuf_seg *segs;
	unsigned n_segs, n_items;
	int out = -1;

	capture_logs();
	CHECK_OK(vshm_udmabuf_resolve_guest(g.m, r, 3, &segs, &n_segs));
	CHECK_EQ(n_segs, 4); /* range 0 split in two */
	CHECK_EQ(segs[0].offset, rs - 2 * pg);
	CHECK_EQ(segs[0].size, 2 * pg);
	CHECK_EQ(segs[1].offset, 0);
	CHECK_EQ(segs[1].size, pg);
	CHECK(segs[1].ino != segs[0].ino);
	CHECK(segs[3].fd != segs[0].fd && segs[3].ino == segs[0].ino);
	CHECK_EQ(segs[3].offset, rs);
	CHECK_EQ(segs[0].seals & GOOD, GOOD);
	CHECK_EQ(segs[0].file_size, 2 * rs);

	vshm_udmabuf_get_limits(&lim);
	CHECK_OK(vshm_udmabuf_build_list(segs, n_segs, &lim, items, 8, &n_items, &total, NULL, 0));
	/* a[rs-2pg, 2pg] | b[0, pg] | a[rs-pg, pg] merged with a[rs, 2pg] */
	CHECK_EQ(n_items, 3);
	CHECK_EQ(total, 6 * pg);
	CHECK_EQ(items[2].offset, rs - pg);
	CHECK_EQ(items[2].size, 3 * pg);
	free(segs);

	check_passed_checks(vshm_udmabuf_create_from_guest(g.m, r, 3, &out), out);
	vshm_mem_destroy(g.m);
}

TEST(guest_ranges_report_errors)
{
	struct guest g = guest_new(GOOD);
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	struct vshm_gpa_range r;
	int out = -1;

	capture_logs();
	r = (struct vshm_gpa_range){ 0x40000000, pg };
	CHECK_EQ(vshm_udmabuf_create_from_guest(g.m, &r, 1, &out), -EFAULT);
	CHECK(strstr(logbuf, "not in guest memory"));
	r = (struct vshm_gpa_range){ GPA0 + 2 * g.region_size - pg, 2 * pg }; /* runs off the end */
	CHECK_EQ(vshm_udmabuf_create_from_guest(g.m, &r, 1, &out), -EFAULT);
	r = (struct vshm_gpa_range){ GPA0, 0 };
	CHECK_EQ(vshm_udmabuf_create_from_guest(g.m, &r, 1, &out), -EINVAL);
	r = (struct vshm_gpa_range){ GPA0 + 512, pg };
	logbuf[0] = '\0';
	CHECK_EQ(vshm_udmabuf_create_from_guest(g.m, &r, 1, &out), -EINVAL);
	CHECK(strstr(logbuf, "aligned"));
	CHECK_EQ(vshm_udmabuf_create_from_guest(g.m, NULL, 0, &out), -EINVAL);
	CHECK_EQ(vshm_udmabuf_create_from_guest(NULL, &r, 1, &out), -EINVAL);
	CHECK_EQ(out, -1);
	vshm_mem_destroy(g.m);

	/* Guest RAM without F_SEAL_SHRINK (QEMU seal=off) cannot be imported. */
	g = guest_new(0);
	r = (struct vshm_gpa_range){ GPA0, pg };
	logbuf[0] = '\0';
	CHECK_EQ(vshm_udmabuf_create_from_guest(g.m, &r, 1, &out), -ENOTSUP);
	CHECK(strstr(logbuf, "seal=on"));
	vshm_mem_destroy(g.m);
}

TEST(guest_failures_are_rate_limited)
{
	struct guest g = guest_new(GOOD);
	struct vshm_gpa_range r = { 0x40000000, 4096 };
	uint64_t before = vshm_log_suppressed_total();
	int out = -1;

	capture_logs();
	for (int i = 0; i < 100; i++)
		CHECK_EQ(vshm_udmabuf_create_from_guest(g.m, &r, 1, &out), -EFAULT);
	CHECK(vshm_log_suppressed_total() > before);
	vshm_mem_destroy(g.m);
}

/* ---- the real device ---- */

TEST(real_udmabuf_shares_guest_pages)
{
	const char *why;
	struct guest g;
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE), size = 0;
	uint8_t *src0, *src2, *dst;
	int out = -1, fence = -1, r;

	if (!vshm_udmabuf_available(&why)) {
		printf("# SKIP udmabuf: /dev/udmabuf absent (explicit)\n");
		return;
	}
	g = guest_new(GOOD);
	struct vshm_gpa_range ranges[] = { { GPA0, 2 * pg }, { 0x10000000, pg } };
	src0 = vshm_mem_gpa_to_va(g.m, GPA0, 2 * pg);
	src2 = vshm_mem_gpa_to_va(g.m, 0x10000000, pg);
	CHECK(src0 && src2);
	CHECK_OK(vshm_udmabuf_create_from_guest(g.m, ranges, 2, &out));
	CHECK(fcntl(out, F_GETFD) & FD_CLOEXEC);
	CHECK_OK(vshm_dmabuf_get_size(out, &size));
	CHECK_EQ(size, 3 * pg);
	dst = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, out, 0);
	CHECK(dst != MAP_FAILED);
	CHECK_OK(vshm_dmabuf_sync_start(out, VSHM_DMABUF_SYNC_RW));
	src0[pg + 5] = 0x77; /* zero copy: guest writes show through */
	src2[9] = 0x99;
	CHECK_EQ(dst[pg + 5], 0x77);
	CHECK_EQ(dst[2 * pg + 9], 0x99);
	dst[1] = 0x42;
	CHECK_EQ(src0[1], 0x42);
	CHECK_OK(vshm_dmabuf_sync_end(out, VSHM_DMABUF_SYNC_RW));
	munmap(dst, 3 * pg);

	/* Linux 6.0+: an idle dma-buf exports an already signaled fence. */
	r = vshm_fence_export_from_dmabuf(out, VSHM_FENCE_READ, &fence);
	if (r == 0) {
		CHECK_OK(vshm_fence_wait(fence, 1000));
		CHECK_OK(vshm_fence_import_to_dmabuf(out, fence, VSHM_FENCE_WRITE));
		close(fence);
	} else {
		CHECK_EQ(r, -ENOTSUP);
	}
	close(out);
	vshm_mem_destroy(g.m);
}
