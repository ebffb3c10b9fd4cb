/* SPDX-License-Identifier: MIT */
/* iov.c - bounds-checked copies between flat buffers and iovec arrays. */
#include <stdint.h>
#include <string.h>

#include <vshm/virtqueue.h>

#include "util.h"

VSHM_EXPORT size_t vshm_iov_size(const struct iovec *iov, unsigned n)
{
	size_t total = 0;

	for (unsigned i = 0; i < n; i++)
		if (__builtin_add_overflow(total, iov[i].iov_len, &total))
			return SIZE_MAX;
	return total;
}

/*
 * Shared walker: skip @offset bytes, then copy up to @len bytes in the
 * direction @to_buf says. Offsets past the end simply copy nothing.
 */
static size_t iov_copy(const struct iovec *iov, unsigned n, size_t offset, uint8_t *buf, size_t len,
                       bool to_buf)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t seg = iov[i].iov_len, chunk;
		uint8_t *base = iov[i].iov_base;

		if (offset >= seg) {
			offset -= seg;
			continue;
		}
		chunk = seg - offset;
		if (chunk > len - done)
			chunk = len - done;
		if (to_buf)
			memcpy(buf + done, base + offset, chunk);
		else
			memcpy(base + offset, buf + done, chunk);
		done += chunk;
		offset = 0;
	}
	return done;
}

VSHM_EXPORT size_t vshm_iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf,
                                   size_t len)
{
	return iov_copy(iov, n, offset, buf, len, true);
}

VSHM_EXPORT size_t vshm_iov_from_buf(const struct iovec *iov, unsigned n, size_t offset,
                                     const void *buf, size_t len)
{
	/* iov_copy only reads from buf in this direction. */
	return iov_copy(iov, n, offset, (uint8_t *)(uintptr_t)buf, len, false);
}
