/* SPDX-License-Identifier: MIT */
/*
 * test-runner.h - a tiny test harness: TEST() registers a function in a
 * linker section; the runner forks once per test, enforces a timeout,
 * checks that the test did not leak file descriptors, and prints TAP.
 *
 * Checks are CHECK()/CHECK_EQ()/CHECK_OK() macros that report the failing
 * expression and abort the (forked) test; they are never compiled out.
 *
 * Environment: VSHM_TEST_TIMEOUT (seconds, default 20), VSHM_TEST_FILTER
 * (substring of test names to run).
 */
#ifndef VSHM_TEST_RUNNER_H
#define VSHM_TEST_RUNNER_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vshm_test {
	const char *name;
	void (*run)(void);
	bool no_leak_check; /* set by TEST_NO_LEAK_CHECK */
} __attribute__((aligned(16)));

#define VSHM_TEST_DEFINE(tname, leak)                                                              \
	static void tname(void);                                                                   \
	static const struct vshm_test test_desc_##tname                                            \
	        __attribute__((used, section("vshm_tests"))) = { #tname, tname, leak };            \
	static void tname(void)

#define TEST(tname)               VSHM_TEST_DEFINE(tname, false)
#define TEST_NO_LEAK_CHECK(tname) VSHM_TEST_DEFINE(tname, true)

void vshm_test_fail(const char *file, int line, const char *fmt, ...)
        __attribute__((noreturn, format(printf, 3, 4)));

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			vshm_test_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);             \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long va_ = (long long)(a), vb_ = (long long)(b);                              \
		if (va_ != vb_)                                                                    \
			vshm_test_fail(__FILE__, __LINE__, "CHECK_EQ(%s, %s): %lld != %lld", #a,   \
			               #b, va_, vb_);                                              \
	} while (0)

/* For 0 / -errno returns: prints the errno name on failure. */
#define CHECK_OK(expr)                                                                             \
	do {                                                                                       \
		long long r_ = (long long)(expr);                                                  \
		if (r_ != 0)                                                                       \
			vshm_test_fail(__FILE__, __LINE__, "CHECK_OK(%s) = %lld (%s)", #expr, r_,  \
			               r_ < 0 ? strerror((int)-r_) : "positive");                  \
	} while (0)

#define CHECK_MEM_EQ(a, b, n)                                                                      \
	do {                                                                                       \
		if (memcmp((a), (b), (n)) != 0)                                                    \
			vshm_test_fail(__FILE__, __LINE__, "CHECK_MEM_EQ(%s, %s, %s) differ", #a,  \
			               #b, #n);                                                    \
	} while (0)

/*
 * The test program's command-line argument @i (argv[i], i >= 1), or NULL.
 * Meson passes per-test arguments (e.g. the daemon binary) this way.
 */
const char *vshm_test_arg(int i);

/* Number of open fds in this process (for explicit leak checks inside a test). */
int vshm_test_count_fds(void);

#endif
