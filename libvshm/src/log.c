/* SPDX-License-Identifier: MIT */
/*
 * log.c - process-wide leveled logging with a replaceable sink and
 * per-site rate limiters.
 *
 * The level and the suppressed counter are atomics so that threads which
 * only log never race. The handler pair (fn, data) is swapped under a mutex
 * and copied out before it is called, so a handler may itself log or
 * replace the handler without deadlocking.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <vshm/log.h>
#include <vshm/loop.h>

#include "util.h"

/* Longer messages are truncated; a log line is not a transport. */
#define LOG_LINE_MAX 1024

static int log_level = VSHM_LOG_INFO;
static uint64_t log_suppressed_total;

static pthread_mutex_t log_handler_lock = PTHREAD_MUTEX_INITIALIZER;
static vshm_log_handler_fn log_handler_fn;
static void *log_handler_data;

static const char *const level_names[] = {
	[VSHM_LOG_ERROR] = "error",
	[VSHM_LOG_WARN] = "warn",
	[VSHM_LOG_INFO] = "info",
	[VSHM_LOG_DEBUG] = "debug",
};

static void default_handler(enum vshm_log_level level, const char *msg, void *data)
{
	const char *name =
	        (unsigned)level < VSHM_ARRAY_SIZE(level_names) ? level_names[level] : "?";

	/* One fprintf call so concurrent lines do not interleave mid-line. */
	fprintf(stderr, "vshm %s: %s\n", name, msg);
}

VSHM_EXPORT void vshm_log_set_handler(vshm_log_handler_fn fn, void *data)
{
	pthread_mutex_lock(&log_handler_lock);
	log_handler_fn = fn;
	log_handler_data = fn ? data : NULL;
	pthread_mutex_unlock(&log_handler_lock);
}

VSHM_EXPORT void vshm_log_set_level(enum vshm_log_level level)
{
	/* Clamp rather than fail: the API has no error return here. */
	if ((int)level < VSHM_LOG_ERROR)
		level = VSHM_LOG_ERROR;
	if ((int)level > VSHM_LOG_DEBUG)
		level = VSHM_LOG_DEBUG;
	__atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

VSHM_EXPORT enum vshm_log_level vshm_log_get_level(void)
{
	return (enum vshm_log_level)__atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

VSHM_EXPORT int vshm_log_level_parse(const char *name, enum vshm_log_level *out)
{
	size_t i;

	if (!name || !out)
		return -EINVAL;
	if (name[0] >= '0' && name[0] <= '3' && name[1] == '\0') {
		*out = (enum vshm_log_level)(name[0] - '0');
		return 0;
	}
	for (i = 0; i < VSHM_ARRAY_SIZE(level_names); i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*out = (enum vshm_log_level)i;
			return 0;
		}
	}
	/* The spelling most people type for WARN. */
	if (strcasecmp(name, "warning") == 0) {
		*out = VSHM_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

static bool level_enabled(enum vshm_log_level level)
{
	return (int)level <= __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

static void emit(enum vshm_log_level level, const char *msg)
{
	vshm_log_handler_fn fn;
	void *data;

	pthread_mutex_lock(&log_handler_lock);
	fn = log_handler_fn;
	data = log_handler_data;
	pthread_mutex_unlock(&log_handler_lock);

	if (!fn)
		fn = default_handler;
	fn(level, msg, data);
}

__attribute__((format(printf, 2, 0))) static void format_and_emit(enum vshm_log_level level,
                                                                  const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int n;
	size_t len;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	/* Handlers get no trailing newline; tolerate callers that add one. */
	len = strlen(line);
	while (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	emit(level, line);
}

VSHM_EXPORT void vshm_logv(enum vshm_log_level level, const char *fmt, va_list ap)
{
	if (!level_enabled(level))
		return;
	format_and_emit(level, fmt, ap);
}

VSHM_EXPORT void vshm_log(enum vshm_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!level_enabled(level))
		return;
	va_start(ap, fmt);
	format_and_emit(level, fmt, ap);
	va_end(ap);
}

VSHM_EXPORT bool vshm_ratelimit_allow(struct vshm_ratelimit *rl)
{
	uint64_t now;

	/* A zeroed limiter (no interval) never limits. */
	if (!rl || rl->interval_ns == 0)
		return true;

	now = vshm_now_ns();
	if (rl->window_start_ns == 0 || now - rl->window_start_ns >= rl->interval_ns) {
		rl->window_start_ns = now;
		rl->printed = 0;
	}
	if (rl->printed < rl->burst) {
		rl->printed++;
		return true;
	}
	/*
	 * rl->suppressed is "suppressed since last reported"; it is cleared by
	 * vshm_log_ratelimited() once it has said so. The total only grows.
	 */
	rl->suppressed++;
	__atomic_add_fetch(&log_suppressed_total, 1, __ATOMIC_RELAXED);
	return false;
}

VSHM_EXPORT void vshm_log_ratelimited(struct vshm_ratelimit *rl, enum vshm_log_level level,
                                      const char *fmt, ...)
{
	va_list ap;

	/*
	 * Filtered levels must not spend the budget: otherwise a flood of
	 * debug-level noise would hide the next warning from the same site.
	 */
	if (!level_enabled(level))
		return;
	if (!vshm_ratelimit_allow(rl))
		return;
	if (rl && rl->suppressed > 0) {
		char note[96];

		snprintf(note, sizeof(note), "%llu similar message(s) suppressed",
		         (unsigned long long)rl->suppressed);
		rl->suppressed = 0;
		emit(level, note);
	}
	va_start(ap, fmt);
	format_and_emit(level, fmt, ap);
	va_end(ap);
}

VSHM_EXPORT uint64_t vshm_log_suppressed_total(void)
{
	return __atomic_load_n(&log_suppressed_total, __ATOMIC_RELAXED);
}
