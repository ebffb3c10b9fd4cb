/* SPDX-License-Identifier: MIT */
/*
 * backend-proc.h - run a vhost-user back-end binary as a child process, the
 * way QEMU's tooling does (`BINARY --socket-path=PATH`, protocols.md §1.11),
 * and read what it costs from /proc.
 *
 * Used by the integration tests and by bench/ so that both start vshm-gpu
 * and QEMU's vhost-user-gpu identically. Errors are 0 or -errno.
 */
#ifndef VSHM_TESTS_BACKEND_PROC_H
#define VSHM_TESTS_BACKEND_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tbp {
	pid_t pid;
	char dir[200];  /* private temp dir holding the socket */
	char sock[224]; /* dir/vgpu.sock (sun_path holds 108) */
};

/*
 * mkdtemp a directory, fork and exec `@exe --socket-path=DIR/vgpu.sock`
 * followed by @extra_args (NULL-terminated, may be NULL). The child keeps
 * only stdin/stdout/stderr; with @quiet its stdout and stderr go to
 * /dev/null. Returns once the socket exists (or the child died: -ECHILD;
 * or the timeout passed: -ETIMEDOUT, the child is then stopped).
 */
int tbp_spawn(const char *exe, const char *const *extra_args, bool quiet, int timeout_ms,
              struct tbp *out);
/* SIGTERM, wait up to 1 s, then SIGKILL; reap; remove the socket and dir. Exit status or -errno. */
int tbp_stop(struct tbp *b);
/* True while the child has not exited (reaps it if it has). */
bool tbp_alive(struct tbp *b);

struct tbp_usage {
	uint64_t cpu_ns;       /* sum over threads of /proc/PID/task/TID/schedstat field 1 */
	uint64_t cpu_ticks_ns; /* utime + stime from /proc/PID/stat, in ns (tick resolution) */
	uint64_t rss_kb;       /* VmRSS */
	uint64_t hwm_kb;       /* VmHWM: peak RSS */
	unsigned threads;
};
int tbp_usage(pid_t pid, struct tbp_usage *out);

#ifdef __cplusplus
}
#endif

#endif
