/* SPDX-License-Identifier: MIT */
/* test-memory.c - the guest memory table: mapping, checks, translation. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vshm/memory.h>

#include "guest-mem.h"
#include "test-runner.h"

#define MIB (1ull << 20)

static struct testfe_mem *fe_new(unsigned n, uint64_t size, uint64_t gap, uint64_t off)
{
	struct testfe_mem_config cfg = {
		.nregions = n, .base_gpa = 0x100000, .gap = gap, .mmap_offset = off
	};
	struct testfe_mem *fe;
	for (unsigned i = 0; i < n; i++)
		cfg.region_size[i] = size;
	CHECK_OK(testfe_mem_new(&cfg, &fe));
	return fe;
}

/* A vshm_mem holding all of @fe's regions. */
static struct vshm_mem *mem_from(struct testfe_mem *fe)
{
	struct vshm_mem_region_desc d[TESTFE_MEM_MAX_REGIONS];
	int fds[TESTFE_MEM_MAX_REGIONS];
	struct vshm_mem *m;

	CHECK_OK(vshm_mem_new(8, &m));
	CHECK_OK(testfe_mem_table(fe, d, fds));
	CHECK_OK(vshm_mem_set_table(m, d, fds, testfe_mem_num_regions(fe)));
	return m;
}

static int memfd_of(uint64_t size)
{
	int fd = memfd_create("t", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(ftruncate(fd, (off_t)size));
	return fd;
}

/* Two mappings of the same bytes: a write through one is seen through the other. */
static bool same_bytes(void *table_va, void *fe_va)
{
	static uint8_t tag = 1;
	if (!table_va || !fe_va)
		return false;
	*(volatile uint8_t *)fe_va = ++tag;
	return *(volatile uint8_t *)table_va == tag;
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

TEST(new_checks_slots)
{
	struct vshm_mem *m;

	CHECK_EQ(vshm_mem_new(0, &m), -EINVAL);
	CHECK_EQ(vshm_mem_new(VSHM_MEM_MAX_SLOTS + 1, &m), -EINVAL);
	CHECK_OK(vshm_mem_new(VSHM_MEM_MAX_SLOTS, &m));
	CHECK_EQ(vshm_mem_max_slots(m), VSHM_MEM_MAX_SLOTS);
	CHECK_EQ(vshm_mem_num_regions(m), 0);
	CHECK(vshm_mem_gpa_to_va(m, 0, 1) == NULL);
	vshm_mem_destroy(m);
	vshm_mem_destroy(NULL);
}

TEST(translate_boundaries)
{
	struct testfe_mem *fe = fe_new(3, MIB, 0x10000, 0);
	struct vshm_mem *m = mem_from(fe);
	uint8_t *p;

	CHECK_EQ(vshm_mem_num_regions(m), 3);
	/* Region 1 starts at 0x100000 + MIB + 0x10000. */
	uint64_t r1 = 0x100000 + MIB + 0x10000;
	CHECK(same_bytes(vshm_mem_gpa_to_va(m, 0x100000, 1), testfe_mem_ptr(fe, 0x100000, 1)));
	CHECK(vshm_mem_gpa_to_va(m, 0x100000, MIB) != NULL);
	CHECK(vshm_mem_gpa_to_va(m, 0x100000, MIB + 1) == NULL);
	CHECK(vshm_mem_gpa_to_va(m, 0x100000 - 1, 1) == NULL);
	/* last byte of region 0, first byte of the gap */
	CHECK(vshm_mem_gpa_to_va(m, 0x100000 + MIB - 1, 1) != NULL);
	CHECK(vshm_mem_gpa_to_va(m, 0x100000 + MIB, 1) == NULL);
	CHECK(vshm_mem_gpa_to_va(m, r1 - 1, 1) == NULL);
	p = vshm_mem_gpa_to_va(m, r1, 16);
	CHECK(same_bytes(p + 15, testfe_mem_ptr(fe, r1 + 15, 1)));
	/* Writes through the table are seen by the front-end's own mapping. */
	p[3] = 0x5a;
	CHECK_EQ(((uint8_t *)testfe_mem_ptr(fe, r1, 16))[3], 0x5a);
	/* last region's last byte */
	uint64_t r2_end = r1 + 2 * MIB + 0x10000;
	CHECK(vshm_mem_gpa_to_va(m, r2_end - 1, 1) != NULL);
	CHECK(vshm_mem_gpa_to_va(m, r2_end - 1, 2) == NULL);
	CHECK(vshm_mem_gpa_to_va(m, r2_end, 1) == NULL);
	/* len 0 refused */
	CHECK(vshm_mem_gpa_to_va(m, 0x100000, 0) == NULL);
	vshm_mem_destroy(m);
	testfe_mem_destroy(fe);
}

TEST(translate_overflow)
{
	struct testfe_mem *fe = fe_new(1, MIB, 0, 0);
	struct vshm_mem *m = mem_from(fe);
	struct iovec iov[4];

	CHECK(vshm_mem_gpa_to_va(m, UINT64_MAX, 1) == NULL);
	CHECK(vshm_mem_gpa_to_va(m, UINT64_MAX, 2) == NULL);
	CHECK(vshm_mem_gpa_to_va(m, 0x100000, UINT64_MAX) == NULL);
	CHECK(vshm_mem_gpa_to_va(m, 0x100010, UINT64_MAX - 8) == NULL);
	CHECK(vshm_mem_uva_to_va(m, UINT64_MAX, 2) == NULL);
	CHECK_EQ(vshm_mem_gpa_to_iov(m, 0x100000, UINT64_MAX, iov, 4), -EFAULT);
	CHECK_EQ(vshm_mem_gpa_to_iov(m, UINT64_MAX - 1, 4, iov, 4), -EFAULT);
	int fd;
	uint64_t off;
	CHECK_EQ(vshm_mem_gpa_to_fd(m, 0x100000, UINT64_MAX, &fd, &off), -EFAULT);
	vshm_mem_destroy(m);
	testfe_mem_destroy(fe);
}

TEST(iov_across_regions)
{
	struct testfe_mem *fe = fe_new(3, 0x10000, 0, 0); /* adjacent */
	struct vshm_mem *m = mem_from(fe);
	struct iovec iov[4];
	int n;

	/* 16 bytes straddling regions 0 and 1 */
	n = vshm_mem_gpa_to_iov(m, 0x100000 + 0x10000 - 8, 16, iov, 4);
	CHECK_EQ(n, 2);
	CHECK_EQ(iov[0].iov_len, 8);
	CHECK_EQ(iov[1].iov_len, 8);
	CHECK(same_bytes(iov[0].iov_base, testfe_mem_ptr(fe, 0x100000 + 0x10000 - 8, 8)));
	CHECK(same_bytes(iov[1].iov_base, testfe_mem_ptr(fe, 0x110000, 8)));
	/* all three regions */
	n = vshm_mem_gpa_to_iov(m, 0x100000, 0x30000, iov, 4);
	CHECK_EQ(n, 3);
	CHECK_EQ(vshm_mem_gpa_to_iov(m, 0x100000, 0x30000, iov, 2), -ENOBUFS);
	CHECK_EQ(vshm_mem_gpa_to_iov(m, 0x100000, 0x30001, iov, 4), -EFAULT);
	CHECK_EQ(vshm_mem_gpa_to_iov(m, 0x100000, 0, iov, 4), -EINVAL);
	CHECK_EQ(vshm_mem_gpa_to_iov(m, 0x100000, 1, iov, 4), 1);
	/* a single region's va lookup refuses the straddling range */
	CHECK(vshm_mem_gpa_to_va(m, 0x10fff8, 16) == NULL);
	vshm_mem_destroy(m);
	testfe_mem_destroy(fe);

	/* with a gap between regions the same range is refused */
	fe = fe_new(2, 0x10000, 0x1000, 0);
	m = mem_from(fe);
	CHECK_EQ(vshm_mem_gpa_to_iov(m, 0x10fff8, 16, iov, 4), -EFAULT);
	vshm_mem_destroy(m);
	testfe_mem_destroy(fe);
}

TEST(uva_translation)
{
	struct testfe_mem *fe = fe_new(2, 0x10000, 0x10000, 0);
	struct vshm_mem *m = mem_from(fe);
	struct vshm_mem_region_desc d;
	uint64_t gpa;

	testfe_mem_region_desc(fe, 1, &d);
	CHECK(same_bytes(vshm_mem_uva_to_va(m, d.user_addr + 8, 8),
	                 testfe_mem_ptr(fe, d.guest_addr + 8, 8)));
	CHECK(vshm_mem_uva_to_va(m, d.user_addr + 8, d.size) == NULL);
	CHECK_OK(vshm_mem_uva_to_gpa(m, d.user_addr + 0x123, &gpa));
	CHECK_EQ(gpa, d.guest_addr + 0x123);
	CHECK_EQ(vshm_mem_uva_to_gpa(m, 0x1000, &gpa), -EFAULT);
	CHECK_EQ(vshm_mem_uva_to_gpa(m, UINT64_MAX, &gpa), -EFAULT);
	vshm_mem_destroy(m);
	testfe_mem_destroy(fe);
}

TEST(unaligned_mmap_offset_and_fd)
{
	/* Region data starts 0x234 bytes into its memfd. */
	struct testfe_mem *fe = fe_new(2, 0x10000, 0, 0x1234);
	struct vshm_mem *m = mem_from(fe);
	uint8_t *p;
	int fd;
	uint64_t off;

	p = testfe_mem_ptr(fe, 0x100000, 1);
	p[0] = 0xab;
	CHECK_EQ(*(uint8_t *)vshm_mem_gpa_to_va(m, 0x100000, 1), 0xab);
	CHECK_OK(vshm_mem_gpa_to_fd(m, 0x110010, 16, &fd, &off));
	CHECK_EQ(off, 0x1234 + 0x10);
	CHECK(fd >= 0 && fd_is_open(fd));
	/* Reading the borrowed fd at the offset gives what the guest sees. */
	p = vshm_mem_gpa_to_va(m, 0x110010, 1);
	*p = 0x77;
	uint8_t b = 0;
	CHECK_EQ(pread(fd, &b, 1, (off_t)off), 1);
	CHECK_EQ(b, 0x77);
	/* range across regions is refused for fd lookups */
	CHECK_EQ(vshm_mem_gpa_to_fd(m, 0x10fff0, 32, &fd, &off), -EFAULT);
	CHECK_EQ(vshm_mem_gpa_to_fd(m, 0x90000, 1, &fd, &off), -EFAULT);
	vshm_mem_destroy(m);
	testfe_mem_destroy(fe);
}

TEST(region_smaller_than_declared)
{
	struct vshm_mem_region_desc d = { .guest_addr = 0,
		                          .size = 0x10000,
		                          .user_addr = 0x1000000 };
	struct vshm_mem_region_desc good = { .guest_addr = 0x100000, .size = 0x1000 };
	struct vshm_mem *m;
	int fd, fds[2];
	uint64_t gen;

	CHECK_OK(vshm_mem_new(4, &m));
	CHECK_OK(vshm_mem_add_region(m, &good, memfd_of(0x1000)));
	gen = vshm_mem_generation(m);

	fd = memfd_of(0x8000);
	CHECK_EQ(vshm_mem_add_region(m, &d, fd), -EFAULT);
	CHECK(!fd_is_open(fd)); /* consumed */
	/* declared offset pushes the end past the file */
	d.size = 0x1000;
	d.mmap_offset = 0x7800;
	CHECK_EQ(vshm_mem_add_region(m, &d, memfd_of(0x8000)), -EFAULT);

	/* set_table failure keeps the old table and closes every fd */
	struct vshm_mem_region_desc t[2] = { { .guest_addr = 0, .size = 0x1000 },
		                             { .guest_addr = 0x2000, .size = 0x2000 } };
	fds[0] = memfd_of(0x1000);
	fds[1] = memfd_of(0x1000);
	CHECK_EQ(vshm_mem_set_table(m, t, fds, 2), -EFAULT);
	CHECK(!fd_is_open(fds[0]) && !fd_is_open(fds[1]));
	CHECK_EQ(vshm_mem_generation(m), gen);
	CHECK_EQ(vshm_mem_num_regions(m), 1);
	CHECK(vshm_mem_gpa_to_va(m, 0x100000, 0x1000) != NULL);

	/* a non-regular file (pipe) cannot be sized: refused */
	int p[2];
	CHECK_OK(pipe(p));
	close(p[1]);
	CHECK_EQ(vshm_mem_add_region(m, &d, p[0]), -EBADF);
	CHECK_EQ(vshm_mem_add_region(m, &d, -1), -EBADF);
	vshm_mem_destroy(m);
}

TEST(bad_descriptors_refused)
{
	struct vshm_mem *m;
	struct vshm_mem_region_desc d = { .guest_addr = 0x1000, .size = 0 };

	CHECK_OK(vshm_mem_new(4, &m));
	CHECK_EQ(vshm_mem_add_region(m, &d, memfd_of(0x1000)), -EINVAL); /* zero size */
	d.size = 0x1000;
	d.guest_addr = UINT64_MAX - 0x800; /* gpa wraps */
	CHECK_EQ(vshm_mem_add_region(m, &d, memfd_of(0x1000)), -EINVAL);
	d.guest_addr = 0;
	d.user_addr = UINT64_MAX - 0x800; /* uva wraps */
	CHECK_EQ(vshm_mem_add_region(m, &d, memfd_of(0x1000)), -EINVAL);
	d.user_addr = 0;
	d.mmap_offset = UINT64_MAX - 0x800; /* file offset wraps */
	CHECK_EQ(vshm_mem_add_region(m, &d, memfd_of(0x1000)), -EINVAL);
	d.mmap_offset = 0;
	d.guest_addr = UINT64_MAX - 0xfff; /* ends exactly at 2^64: wraps to 0, refused */
	CHECK_EQ(vshm_mem_add_region(m, &d, memfd_of(0x1000)), -EINVAL);
	CHECK_EQ(vshm_mem_num_regions(m), 0);
	CHECK_EQ(vshm_mem_generation(m), 0);
	vshm_mem_destroy(m);
}

TEST(overlap_refused)
{
	struct vshm_mem *m;
	struct vshm_mem_region_desc a = { .guest_addr = 0x10000, .size = 0x2000 };
	struct vshm_mem_region_desc b = { .guest_addr = 0x11000, .size = 0x2000 };
	struct vshm_mem_region_desc c = { .guest_addr = 0xf000, .size = 0x1001 };
	struct vshm_mem_region_desc adj = { .guest_addr = 0x12000, .size = 0x1000 };

	CHECK_OK(vshm_mem_new(4, &m));
	CHECK_OK(vshm_mem_add_region(m, &a, memfd_of(0x2000)));
	CHECK_EQ(vshm_mem_add_region(m, &b, memfd_of(0x2000)), -EINVAL);
	CHECK_EQ(vshm_mem_add_region(m, &c, memfd_of(0x2000)), -EINVAL);
	CHECK_OK(vshm_mem_add_region(m, &adj, memfd_of(0x1000)));

	/* overlap inside one SET_MEM_TABLE */
	struct vshm_mem_region_desc t[3] = { a, adj, b };
	int fds[3] = { memfd_of(0x2000), memfd_of(0x1000), memfd_of(0x2000) };
	CHECK_EQ(vshm_mem_set_table(m, t, fds, 3), -EINVAL);
	for (int i = 0; i < 3; i++)
		CHECK(!fd_is_open(fds[i]));
	CHECK_EQ(vshm_mem_num_regions(m), 2);
	vshm_mem_destroy(m);
}

TEST(max_slots)
{
	struct vshm_mem *m;
	struct vshm_mem_region_desc t[5];
	int fds[5];

	CHECK_OK(vshm_mem_new(4, &m));
	for (int i = 0; i < 5; i++) {
		t[i] = (struct vshm_mem_region_desc){ .guest_addr = 0x10000ull * (uint64_t)i,
			                              .size = 0x1000 };
		fds[i] = memfd_of(0x1000);
	}
	CHECK_EQ(vshm_mem_set_table(m, t, fds, 5), -EINVAL);
	for (int i = 0; i < 5; i++) {
		CHECK(!fd_is_open(fds[i]));
		fds[i] = memfd_of(0x1000);
	}
	CHECK_OK(vshm_mem_set_table(m, t, fds, 4));
	CHECK_EQ(vshm_mem_num_regions(m), 4);
	CHECK_EQ(vshm_mem_add_region(m, &t[4], fds[4]), -ENOSPC);
	CHECK(!fd_is_open(fds[4]));
	vshm_mem_destroy(m);
}

TEST(add_remove_generation)
{
	struct vshm_mem *m;
	struct vshm_mem_region_desc r[3];
	uint64_t gen;

	CHECK_OK(vshm_mem_new(8, &m));
	/* added out of order; lookups must still work (table kept sorted) */
	const uint64_t gpas[3] = { 0x300000, 0x100000, 0x200000 };
	for (int i = 0; i < 3; i++) {
		r[i] = (struct vshm_mem_region_desc){ .guest_addr = gpas[i],
			                              .size = 0x1000,
			                              .user_addr = 0x7000000 + gpas[i] };
		gen = vshm_mem_generation(m);
		CHECK_OK(vshm_mem_add_region(m, &r[i], memfd_of(0x1000)));
		CHECK(vshm_mem_generation(m) > gen);
	}
	for (int i = 0; i < 3; i++)
		CHECK(vshm_mem_gpa_to_va(m, gpas[i] + 0xfff, 1) != NULL);

	struct vshm_mem_region_desc wrong = r[2];
	wrong.size = 0x2000;
	CHECK_EQ(vshm_mem_remove_region(m, &wrong), -ENOENT);
	gen = vshm_mem_generation(m);
	CHECK_OK(vshm_mem_remove_region(m, &r[1]));
	CHECK(vshm_mem_generation(m) > gen);
	CHECK_EQ(vshm_mem_num_regions(m), 2);
	CHECK(vshm_mem_gpa_to_va(m, 0x100000, 1) == NULL);
	CHECK(vshm_mem_gpa_to_va(m, 0x200000, 1) != NULL);
	CHECK(vshm_mem_gpa_to_va(m, 0x300000, 1) != NULL);
	CHECK_EQ(vshm_mem_remove_region(m, &r[1]), -ENOENT);

	gen = vshm_mem_generation(m);
	vshm_mem_clear(m);
	CHECK(vshm_mem_generation(m) > gen);
	CHECK_EQ(vshm_mem_num_regions(m), 0);
	CHECK(vshm_mem_gpa_to_va(m, 0x200000, 1) == NULL);
	vshm_mem_destroy(m);
}

TEST(set_table_replaces)
{
	struct testfe_mem *fe = fe_new(2, 0x10000, 0, 0);
	struct vshm_mem *m = mem_from(fe);
	struct vshm_mem_region_desc d;
	uint64_t gen = vshm_mem_generation(m);
	int fd;

	/* replace by a one-region table; the empty table is valid too */
	testfe_mem_region_desc(fe, 1, &d);
	fd = testfe_mem_dup_fd(fe, 1);
	CHECK_OK(vshm_mem_set_table(m, &d, &fd, 1));
	CHECK(vshm_mem_generation(m) > gen);
	CHECK_EQ(vshm_mem_num_regions(m), 1);
	CHECK(vshm_mem_gpa_to_va(m, 0x100000, 1) == NULL);
	CHECK(vshm_mem_gpa_to_va(m, 0x110000, 1) != NULL);
	CHECK_OK(vshm_mem_set_table(m, NULL, NULL, 0));
	CHECK_EQ(vshm_mem_num_regions(m), 0);

	/* the same fd number passed for two regions is owned once by each */
	struct vshm_mem_region_desc t[2];
	testfe_mem_region_desc(fe, 0, &t[0]);
	testfe_mem_region_desc(fe, 0, &t[1]);
	t[1].guest_addr = 0x900000;
	int fds[2];
	fds[0] = fds[1] = testfe_mem_dup_fd(fe, 0);
	CHECK_OK(vshm_mem_set_table(m, t, fds, 2));
	CHECK(vshm_mem_gpa_to_va(m, 0x900000, 1) != NULL);
	vshm_mem_destroy(m);
	testfe_mem_destroy(fe);
}

TEST(many_regions_lookup)
{
	struct vshm_mem *m;
	int fd = memfd_of(0x1000 * 64);

	CHECK_OK(vshm_mem_new(VSHM_MEM_MAX_SLOTS, &m));
	/* 64 one-page regions of one file, added in a scrambled order */
	for (unsigned k = 0; k < 64; k++) {
		unsigned i = (k * 37) % 64;
		struct vshm_mem_region_desc d = { .guest_addr = 0x100000ull * i,
			                          .size = 0x1000,
			                          .mmap_offset = 0x1000ull * i };
		CHECK_OK(vshm_mem_add_region(m, &d, fcntl(fd, F_DUPFD_CLOEXEC, 0)));
	}
	for (unsigned i = 0; i < 64; i++) {
		uint32_t *p = vshm_mem_gpa_to_va(m, 0x100000ull * i, 4);
		CHECK(p != NULL);
		*p = i;
		CHECK(vshm_mem_gpa_to_va(m, 0x100000ull * i + 0x1000, 1) == NULL);
	}
	for (unsigned i = 0; i < 64; i++) {
		uint32_t v;
		CHECK_EQ(pread(fd, &v, 4, (off_t)(0x1000 * i)), 4);
		CHECK_EQ(v, i);
	}
	close(fd);
	vshm_mem_destroy(m);
}
