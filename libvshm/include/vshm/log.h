/* SPDX-License-Identifier: MIT */
/*
 * vshm/log.h - leveled logging with a replaceable handler and rate limits.
 *
 * The log state is process-wide on purpose: every libvshm object in a
 * process writes to the one sink its embedder chose. Messages that a peer
 * (guest, VMM, display client) can trigger must go through a rate limiter so
 * a hostile peer cannot flood the host log.
 */
#ifndef VSHM_LOG_H
#define VSHM_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum vshm_log_level {
	VSHM_LOG_ERROR = 0,
	VSHM_LOG_WARN = 1,
	VSHM_LOG_INFO = 2,
	VSHM_LOG_DEBUG = 3,
};

/* Receives one formatted message without a trailing newline. */
typedef void (*vshm_log_handler_fn)(enum vshm_log_level level, const char *msg, void *data);

/* Replace the sink. NULL restores the default (stderr with a level prefix). */
void vshm_log_set_handler(vshm_log_handler_fn fn, void *data);

/* Messages above @level are dropped before formatting. Default: INFO. */
void vshm_log_set_level(enum vshm_log_level level);
enum vshm_log_level vshm_log_get_level(void);

/* Parse "error", "warn", "info", "debug" (or 0-3). Returns 0 or -EINVAL. */
int vshm_log_level_parse(const char *name, enum vshm_log_level *out);

void vshm_log(enum vshm_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
void vshm_logv(enum vshm_log_level level, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));

/*
 * A token-bucket-like limiter: at most @burst messages per @interval_ms.
 * Plain value type; embed one per message site or per peer. Not thread-safe.
 * When a new interval opens after suppression, the next message passed through
 * is preceded by a line saying how many were suppressed.
 */
struct vshm_ratelimit {
	uint64_t interval_ns;
	uint32_t burst;
	uint32_t printed;
	uint64_t window_start_ns;
	uint64_t suppressed;
};

#define VSHM_RATELIMIT_INIT(interval_ms, burst_)                                                   \
	{                                                                                          \
		.interval_ns = (uint64_t)(interval_ms)*1000000ull, .burst = (burst_),              \
		.printed = 0, .window_start_ns = 0, .suppressed = 0                                \
	}

/* True when a message may be emitted now (and counts it); false = suppressed. */
bool vshm_ratelimit_allow(struct vshm_ratelimit *rl);

/* Log through @rl: dropped (and counted) when the limit is exceeded. */
void vshm_log_ratelimited(struct vshm_ratelimit *rl, enum vshm_log_level level, const char *fmt,
                          ...) __attribute__((format(printf, 3, 4)));

/* Total messages suppressed by rate limits in this process (for stats/tests). */
uint64_t vshm_log_suppressed_total(void);

#ifdef __cplusplus
}
#endif

#endif
