/* SPDX-License-Identifier: MIT */
/*
 * sandbox.h - the optional seccomp filter of vshm-gpu (--sandbox).
 *
 * The daemon installs it once, after start-up (sockets listened or
 * connected, the event loop and the device model built) and before it
 * reads the first front-end message. From then on only the system calls
 * the daemon needs while serving are allowed; see sandbox.c for the list
 * and docs/vshm-gpu.md ("Sandbox") for the reasoning.
 *
 *   off  no filter (the default: drop-in behaviour for QEMU's launchers)
 *   log  every call outside the allowlist is allowed and logged by the
 *        kernel (SCMP_ACT_LOG): for finding what a new code path needs
 *   on   a call outside the allowlist kills the process (SIGSYS); a few
 *        harmless ones fail with an errno instead (see sandbox.c)
 *
 * Both log and on also set PR_SET_NO_NEW_PRIVS.
 */
#ifndef VGS_SANDBOX_H
#define VGS_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "options.h"

/* Whether this build can install a filter (built with libseccomp). */
bool vgs_sandbox_supported(void);

/* "off", "log" or "on". */
const char *vgs_sandbox_mode_name(enum vgs_sandbox_mode mode);

/*
 * Install the filter for @mode (nothing for VGS_SANDBOX_OFF). Call it once,
 * single-threaded, after start-up. Returns 0, or -errno with a one-line
 * reason in @err: -ENOTSUP when the build or the kernel cannot do @mode.
 */
int vgs_sandbox_apply(enum vgs_sandbox_mode mode, char *err, size_t errlen);

/*
 * TEST ONLY (tests/unit/server/test-sandbox.sh): after the filter is in
 * place, attempt one call the filter is meant to stop and log what
 * happened. @what is the value of the VSHM_SANDBOX_SELFTEST environment
 * variable:
 *   execve      execve("/bin/true") - only when @mode is on (killed by
 *               SIGSYS); refused with a log line otherwise, so that the
 *               daemon is never replaced by another program
 *   open-write  openat(PATH, O_WRONLY | O_CREAT) with PATH from
 *               VSHM_SANDBOX_SELFTEST_PATH: EPERM with on, allowed (and
 *               logged by the kernel) with log
 *   socket      socket(AF_INET, SOCK_STREAM): killed with on, allowed
 *               (and logged by the kernel) with log; closed at once
 * It never runs with VGS_SANDBOX_OFF. Returns 0, or -EINVAL for an unknown
 * name (logged).
 */
int vgs_sandbox_selftest(enum vgs_sandbox_mode mode, const char *what);

#endif
