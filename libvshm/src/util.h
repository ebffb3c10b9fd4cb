/* SPDX-License-Identifier: MIT */
/* util.h - private helpers shared by libvshm sources. Not installed. */
#ifndef VSHM_UTIL_H
#define VSHM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Symbols are hidden by default (-fvisibility=hidden); this exports one. */
#define VSHM_EXPORT __attribute__((visibility("default")))

#define VSHM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define vshm_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Overflow-safe range arithmetic: true when a + b overflows. */
static inline bool vshm_add_overflows_u64(uint64_t a, uint64_t b, uint64_t *sum)
{
	return __builtin_add_overflow(a, b, sum);
}

static inline bool vshm_mul_overflows_u64(uint64_t a, uint64_t b, uint64_t *prod)
{
	return __builtin_mul_overflow(a, b, prod);
}

/* True when [start, start+len) lies within [base, base+size); len > 0. */
static inline bool vshm_range_within(uint64_t start, uint64_t len, uint64_t base, uint64_t size)
{
	uint64_t end, base_end;
	if (len == 0 || vshm_add_overflows_u64(start, len, &end) ||
	    vshm_add_overflows_u64(base, size, &base_end))
		return false;
	return start >= base && end <= base_end;
}

/* Close @fd if >= 0, preserving errno. */
void vshm_close_fd(int fd);

#endif
