/* SPDX-License-Identifier: MIT */
/* test-iov.c - scatter-gather copy helpers at their boundaries. */
#include <stdint.h>

#include <vshm/virtqueue.h>

#include "test-runner.h"

static uint8_t a[5], b[1], c[7], d[3];

/* Segments of 5, 0, 7 and 3 bytes (an empty one in the middle on purpose). */
static void make_iov(struct iovec *iov)
{
	iov[0] = (struct iovec){ a, sizeof(a) };
	iov[1] = (struct iovec){ b, 0 };
	iov[2] = (struct iovec){ c, sizeof(c) };
	iov[3] = (struct iovec){ d, sizeof(d) };
}

TEST(iov_size)
{
	struct iovec iov[4];
	make_iov(iov);
	CHECK_EQ(vshm_iov_size(iov, 4), 15);
	CHECK_EQ(vshm_iov_size(iov, 0), 0);
	CHECK_EQ(vshm_iov_size(NULL, 0), 0);
	/* saturates instead of wrapping */
	struct iovec big[2] = { { a, SIZE_MAX - 1 }, { a, 5 } };
	CHECK(vshm_iov_size(big, 2) == SIZE_MAX);
}

TEST(iov_from_and_to_buf)
{
	struct iovec iov[4];
	uint8_t src[15], dst[20];

	make_iov(iov);
	for (int i = 0; i < 15; i++)
		src[i] = (uint8_t)(i + 1);
	CHECK_EQ(vshm_iov_from_buf(iov, 4, 0, src, 15), 15);
	CHECK_EQ(a[4], 5);
	CHECK_EQ(c[0], 6);
	CHECK_EQ(d[2], 15);
	memset(dst, 0, sizeof(dst));
	CHECK_EQ(vshm_iov_to_buf(iov, 4, 0, dst, sizeof(dst)), 15);
	CHECK_MEM_EQ(dst, src, 15);
}

TEST(iov_offsets)
{
	struct iovec iov[4];
	uint8_t src[15], dst[15];

	make_iov(iov);
	for (int i = 0; i < 15; i++)
		src[i] = (uint8_t)(100 + i);
	CHECK_EQ(vshm_iov_from_buf(iov, 4, 0, src, 15), 15);
	/* starting exactly at a segment boundary */
	CHECK_EQ(vshm_iov_to_buf(iov, 4, 5, dst, 3), 3);
	CHECK_MEM_EQ(dst, src + 5, 3);
	/* spanning segments from inside one */
	CHECK_EQ(vshm_iov_to_buf(iov, 4, 4, dst, 9), 9);
	CHECK_MEM_EQ(dst, src + 4, 9);
	/* the last byte */
	CHECK_EQ(vshm_iov_to_buf(iov, 4, 14, dst, 10), 1);
	CHECK_EQ(dst[0], src[14]);
	/* at and past the end: nothing */
	CHECK_EQ(vshm_iov_to_buf(iov, 4, 15, dst, 1), 0);
	CHECK_EQ(vshm_iov_to_buf(iov, 4, SIZE_MAX, dst, 1), 0);
	CHECK_EQ(vshm_iov_from_buf(iov, 4, 15, src, 1), 0);
	/* zero length */
	CHECK_EQ(vshm_iov_to_buf(iov, 4, 0, dst, 0), 0);
	/* partial write at an offset leaves the rest untouched */
	uint8_t z[2] = { 0, 0 };
	CHECK_EQ(vshm_iov_from_buf(iov, 4, 12, z, 2), 2);
	CHECK_EQ(d[0], 0);
	CHECK_EQ(d[1], 0);
	CHECK_EQ(d[2], src[14]);
	CHECK_EQ(c[6], src[11]);
	/* empty array */
	CHECK_EQ(vshm_iov_to_buf(iov, 0, 0, dst, 5), 0);
}
