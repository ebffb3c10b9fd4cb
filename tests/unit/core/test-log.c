/* SPDX-License-Identifier: MIT */
/* test-log.c - levels, handler replacement and rate limiting. */
#include <errno.h>
#include <stdarg.h>
#include <time.h>

#include <vshm/log.h>
#include <vshm/loop.h>

#include "test-runner.h"

#define MAX_LINES 32

struct capture {
	unsigned n;
	enum vshm_log_level level[MAX_LINES];
	char line[MAX_LINES][256];
};

static void capture_fn(enum vshm_log_level level, const char *msg, void *data)
{
	struct capture *cap = data;

	CHECK(cap->n < MAX_LINES);
	cap->level[cap->n] = level;
	snprintf(cap->line[cap->n], sizeof(cap->line[0]), "%s", msg);
	cap->n++;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

TEST(log_default_level_is_info)
{
	CHECK_EQ(vshm_log_get_level(), VSHM_LOG_INFO);
}

TEST(log_levels_filter)
{
	struct capture cap = { 0 };

	vshm_log_set_handler(capture_fn, &cap);
	vshm_log_set_level(VSHM_LOG_WARN);
	CHECK_EQ(vshm_log_get_level(), VSHM_LOG_WARN);
	vshm_log(VSHM_LOG_ERROR, "e%d", 1);
	vshm_log(VSHM_LOG_WARN, "w%d", 2);
	vshm_log(VSHM_LOG_INFO, "i%d", 3);
	vshm_log(VSHM_LOG_DEBUG, "d%d", 4);
	CHECK_EQ(cap.n, 2);
	CHECK_EQ(cap.level[0], VSHM_LOG_ERROR);
	CHECK(strcmp(cap.line[0], "e1") == 0);
	CHECK_EQ(cap.level[1], VSHM_LOG_WARN);
	CHECK(strcmp(cap.line[1], "w2") == 0);

	vshm_log_set_level(VSHM_LOG_DEBUG);
	vshm_log(VSHM_LOG_DEBUG, "debug now");
	CHECK_EQ(cap.n, 3);
	CHECK(strcmp(cap.line[2], "debug now") == 0);

	vshm_log_set_level(VSHM_LOG_ERROR);
	vshm_log(VSHM_LOG_WARN, "dropped");
	CHECK_EQ(cap.n, 3);
	vshm_log_set_handler(NULL, NULL);
}

TEST(log_trailing_newline_stripped)
{
	struct capture cap = { 0 };

	vshm_log_set_handler(capture_fn, &cap);
	vshm_log(VSHM_LOG_ERROR, "with newline\n");
	CHECK_EQ(cap.n, 1);
	CHECK(strcmp(cap.line[0], "with newline") == 0);
	vshm_log_set_handler(NULL, NULL);
}

static void logv_wrapper(enum vshm_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void logv_wrapper(enum vshm_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vshm_logv(level, fmt, ap);
	va_end(ap);
}

TEST(log_logv_formats)
{
	struct capture cap = { 0 };

	vshm_log_set_handler(capture_fn, &cap);
	logv_wrapper(VSHM_LOG_ERROR, "%s-%u-%x", "a", 7u, 255u);
	CHECK_EQ(cap.n, 1);
	CHECK(strcmp(cap.line[0], "a-7-ff") == 0);
	vshm_log_set_handler(NULL, NULL);
}

TEST(log_long_message_truncated_not_overflowed)
{
	struct capture cap = { 0 };
	char big[4096];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	vshm_log_set_handler(capture_fn, &cap);
	vshm_log(VSHM_LOG_ERROR, "%s", big);
	CHECK_EQ(cap.n, 1);
	CHECK(cap.line[0][0] == 'x');
	vshm_log_set_handler(NULL, NULL);
}

TEST(log_handler_replacement)
{
	struct capture a = { 0 }, b = { 0 };

	vshm_log_set_handler(capture_fn, &a);
	vshm_log(VSHM_LOG_ERROR, "to a");
	vshm_log_set_handler(capture_fn, &b);
	vshm_log(VSHM_LOG_ERROR, "to b");
	CHECK_EQ(a.n, 1);
	CHECK_EQ(b.n, 1);
	CHECK(strcmp(a.line[0], "to a") == 0);
	CHECK(strcmp(b.line[0], "to b") == 0);

	/* NULL restores the stderr default: neither capture sees this. */
	vshm_log_set_handler(NULL, NULL);
	vshm_log(VSHM_LOG_ERROR, "to stderr (expected in test output)");
	CHECK_EQ(a.n, 1);
	CHECK_EQ(b.n, 1);
}

TEST(log_level_parse)
{
	enum vshm_log_level lvl = VSHM_LOG_INFO;

	CHECK_OK(vshm_log_level_parse("error", &lvl));
	CHECK_EQ(lvl, VSHM_LOG_ERROR);
	CHECK_OK(vshm_log_level_parse("WARN", &lvl));
	CHECK_EQ(lvl, VSHM_LOG_WARN);
	CHECK_OK(vshm_log_level_parse("warning", &lvl));
	CHECK_EQ(lvl, VSHM_LOG_WARN);
	CHECK_OK(vshm_log_level_parse("info", &lvl));
	CHECK_EQ(lvl, VSHM_LOG_INFO);
	CHECK_OK(vshm_log_level_parse("debug", &lvl));
	CHECK_EQ(lvl, VSHM_LOG_DEBUG);
	CHECK_OK(vshm_log_level_parse("0", &lvl));
	CHECK_EQ(lvl, VSHM_LOG_ERROR);
	CHECK_OK(vshm_log_level_parse("3", &lvl));
	CHECK_EQ(lvl, VSHM_LOG_DEBUG);

	lvl = VSHM_LOG_WARN;
	CHECK_EQ(vshm_log_level_parse("4", &lvl), -EINVAL);
	CHECK_EQ(vshm_log_level_parse("", &lvl), -EINVAL);
	CHECK_EQ(vshm_log_level_parse("verbose", &lvl), -EINVAL);
	CHECK_EQ(vshm_log_level_parse("12", &lvl), -EINVAL);
	CHECK_EQ(vshm_log_level_parse(NULL, &lvl), -EINVAL);
	/* A failed parse leaves the output alone. */
	CHECK_EQ(lvl, VSHM_LOG_WARN);
}

TEST(ratelimit_burst_then_suppress)
{
	/* A long interval so the whole test sits in one window. */
	struct vshm_ratelimit rl = VSHM_RATELIMIT_INIT(60000, 3);
	uint64_t total0 = vshm_log_suppressed_total();

	CHECK(vshm_ratelimit_allow(&rl));
	CHECK(vshm_ratelimit_allow(&rl));
	CHECK(vshm_ratelimit_allow(&rl));
	CHECK(!vshm_ratelimit_allow(&rl));
	CHECK(!vshm_ratelimit_allow(&rl));
	CHECK_EQ(rl.suppressed, 2);
	CHECK_EQ(vshm_log_suppressed_total() - total0, 2);
}

TEST(ratelimit_new_window_reports_suppressed)
{
	struct vshm_ratelimit rl = VSHM_RATELIMIT_INIT(50, 2);
	struct capture cap = { 0 };
	uint64_t total0 = vshm_log_suppressed_total();

	vshm_log_set_handler(capture_fn, &cap);
	for (int k = 0; k < 7; k++)
		vshm_log_ratelimited(&rl, VSHM_LOG_WARN, "msg %d", k);
	CHECK_EQ(cap.n, 2);
	CHECK(strcmp(cap.line[0], "msg 0") == 0);
	CHECK(strcmp(cap.line[1], "msg 1") == 0);
	CHECK_EQ(rl.suppressed, 5);
	CHECK_EQ(vshm_log_suppressed_total() - total0, 5);

	sleep_ms(80);
	vshm_log_ratelimited(&rl, VSHM_LOG_WARN, "after");
	/* The summary line comes first, then the message itself. */
	CHECK_EQ(cap.n, 4);
	CHECK(strstr(cap.line[2], "5") != NULL);
	CHECK(strstr(cap.line[2], "suppressed") != NULL);
	CHECK_EQ(cap.level[2], VSHM_LOG_WARN);
	CHECK(strcmp(cap.line[3], "after") == 0);
	CHECK_EQ(rl.suppressed, 0);

	/* The new window has its full burst again. */
	vshm_log_ratelimited(&rl, VSHM_LOG_WARN, "second");
	CHECK_EQ(cap.n, 5);
	vshm_log_ratelimited(&rl, VSHM_LOG_WARN, "third");
	CHECK_EQ(cap.n, 5);
	CHECK_EQ(rl.suppressed, 1);
	vshm_log_set_handler(NULL, NULL);
}

TEST(ratelimit_filtered_level_spends_nothing)
{
	struct vshm_ratelimit rl = VSHM_RATELIMIT_INIT(60000, 1);
	struct capture cap = { 0 };

	vshm_log_set_handler(capture_fn, &cap);
	vshm_log_set_level(VSHM_LOG_WARN);
	for (int k = 0; k < 5; k++)
		vshm_log_ratelimited(&rl, VSHM_LOG_DEBUG, "noise");
	CHECK_EQ(rl.suppressed, 0);
	vshm_log_ratelimited(&rl, VSHM_LOG_WARN, "real");
	CHECK_EQ(cap.n, 1);
	CHECK(strcmp(cap.line[0], "real") == 0);
	vshm_log_set_handler(NULL, NULL);
}

TEST(ratelimit_zero_interval_never_limits)
{
	struct vshm_ratelimit rl = { 0 };

	for (int k = 0; k < 100; k++)
		CHECK(vshm_ratelimit_allow(&rl));
	CHECK_EQ(rl.suppressed, 0);
}

TEST(now_ns_monotonic)
{
	uint64_t a = vshm_now_ns(), b;

	CHECK(a > 0);
	sleep_ms(2);
	b = vshm_now_ns();
	CHECK(b >= a + 1000000ull);
}
