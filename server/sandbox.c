/* SPDX-License-Identifier: MIT */
/*
 * sandbox.c - the optional seccomp filter of vshm-gpu (see sandbox.h).
 *
 * The allowlist is what the daemon does while serving, measured with
 * strace over the unit, integration and real-guest e2e tests (the list in
 * docs/vshm-gpu.md says why each group is there). Start-up work (dynamic
 * loading, bind/listen, epoll_create1, signalfd) is done before the filter
 * and is not allowed after it. Calls are named, not numbered, so that
 * libseccomp resolves them for the build's architecture; a name the
 * architecture lacks (open, poll, access on aarch64) is skipped.
 *
 * Argument checks (rules with a condition):
 *   mmap, mprotect   never PROT_EXEC: no new executable memory
 *   openat, open     never O_WRONLY, O_CREAT, O_TRUNC, O_APPEND or
 *                    O_TMPFILE (EPERM); O_RDWR only when /dev/udmabuf is
 *                    usable (opened per dma-buf); everything else the
 *                    daemon opens is read-only (/proc/self/fd/N reopens
 *                    for consumers, /proc/sys/fs/pipe-max-size, udmabuf's
 *                    parameters in /sys)
 *   fcntl            the commands libvshm and the consumers use
 *   ioctl            SIOCOUTQ, UDMABUF_CREATE_LIST, DMA_BUF_IOCTL_SYNC,
 *                    DMA_BUF_IOCTL_EXPORT_SYNC_FILE / _IMPORT_SYNC_FILE
 *   setsockopt       SOL_SOCKET SO_SNDBUF / SO_SNDBUFFORCE / SO_RCVBUF only
 *   rt_sigaction     queries only (act == NULL; conn_splice samples
 *                    SIGPIPE); changing a disposition fails with EPERM
 *   tgkill           SIGABRT to ourselves (abort() after a failed assert)
 *
 * With --sandbox=log the default action is SCMP_ACT_LOG and the errno
 * rules log too, so the daemon behaves exactly as without a filter.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/log.h>

#include "vshm-config.h"

#if HAVE_SECCOMP
#include <linux/sockios.h>
#include <seccomp.h>

#include <vshm/buffer.h>

/*
 * The ioctl numbers, with the kernel's structure sizes (all 8 bytes), so
 * that the filter does not depend on the installed uapi headers.
 */
struct sb_u32_pair {
	uint32_t a, b;
};

#define SB_UDMABUF_CREATE_LIST       _IOW('u', 0x43, struct sb_u32_pair)
#define SB_DMA_BUF_IOCTL_SYNC        _IOW('b', 0, uint64_t)
#define SB_DMA_BUF_IOCTL_EXPORT_SYNC _IOWR('b', 2, struct sb_u32_pair)
#define SB_DMA_BUF_IOCTL_IMPORT_SYNC _IOW('b', 3, struct sb_u32_pair)

#if defined(__has_include)
#if __has_include(<linux/udmabuf.h>)
#include <linux/udmabuf.h>
_Static_assert(SB_UDMABUF_CREATE_LIST == UDMABUF_CREATE_LIST, "UDMABUF_CREATE_LIST");
#endif
#if __has_include(<linux/dma-buf.h>)
#include <linux/dma-buf.h>
_Static_assert(SB_DMA_BUF_IOCTL_SYNC == DMA_BUF_IOCTL_SYNC, "DMA_BUF_IOCTL_SYNC");
#ifdef DMA_BUF_IOCTL_EXPORT_SYNC_FILE
_Static_assert(SB_DMA_BUF_IOCTL_EXPORT_SYNC == DMA_BUF_IOCTL_EXPORT_SYNC_FILE, "EXPORT_SYNC");
_Static_assert(SB_DMA_BUF_IOCTL_IMPORT_SYNC == DMA_BUF_IOCTL_IMPORT_SYNC_FILE, "IMPORT_SYNC");
#endif
#endif
#endif

/* Allowed whatever their arguments. */
static const char *const allow_always[] = {
	/* the event loop: epoll, timers, eventfds (kicks, fences), signalfd reads */
	"epoll_wait",
	"epoll_pwait",
	"epoll_pwait2",
	"epoll_ctl",
	"poll",
	"ppoll",
	"timerfd_create",
	"timerfd_settime",
	"timerfd_gettime",
	"eventfd2",
	"read",
	"readv",
	"write", /* stderr logging, eventfd signalling */
	"writev",
	/* sockets already open: front-ends, QEMU's display socket, consumers */
	"accept4",
	"accept",
	"recvmsg",
	"sendmsg",
	"recvfrom",
	"sendto",
	"getsockopt",
	"shutdown",
	/* memory: malloc, guest memory regions, images */
	"munmap",
	"mremap",
	"madvise",
	"brk",
	/* file descriptors: images (memfds with seals), zero-copy sends, fstat */
	"close",
	"memfd_create",
	"ftruncate",
	"pipe2",
	"splice",
	"vmsplice",
	"fstat",
	"newfstatat",
	"statx",
	"stat",
	"lstat",
	"fstatfs",
	"lseek",
	"access", /* consumers: access("/proc/self/fd") */
	"faccessat",
	"faccessat2",
	"unlink", /* the socket files, at exit */
	"unlinkat",
	/* signals: masks, and returns from handlers */
	"rt_sigprocmask",
	"rt_sigreturn",
	"restart_syscall",
	/* time, randomness, locks, identity, exit */
	"clock_gettime",
	"clock_getres",
	"gettimeofday",
	"clock_nanosleep",
	"nanosleep",
	"getrandom",
	"futex",
	"sched_yield",
	"getpid",
	"gettid",
	"exit",
	"exit_group",
};

static const int fcntl_cmds[] = {
	F_GETFD,     F_SETFD,     F_GETFL,      F_SETFL,      F_DUPFD_CLOEXEC,
	F_ADD_SEALS, F_GET_SEALS, F_SETPIPE_SZ, F_GETPIPE_SZ,
};

static const unsigned long ioctl_cmds[] = {
	SIOCOUTQ, /* consumers: unsent bytes on a consumer socket */
	SB_UDMABUF_CREATE_LIST,
	SB_DMA_BUF_IOCTL_SYNC,
	SB_DMA_BUF_IOCTL_EXPORT_SYNC,
	SB_DMA_BUF_IOCTL_IMPORT_SYNC,
};

struct sb {
	scmp_filter_ctx ctx;
	uint32_t def;    /* default action */
	uint32_t deny;   /* "harmless" refusals: EPERM, or LOG in log mode */
	const char *bad; /* first rule that failed, for the message */
	int err;
};

/* Add one rule; a name unknown on this architecture is skipped. */
static void sb_add(struct sb *s, uint32_t action, const char *name, unsigned n,
                   const struct scmp_arg_cmp *cmp)
{
	int nr, r;

	if (s->err)
		return;
	nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR || nr < 0)
		return;
	/* In log mode the refusals equal the default action: nothing to add. */
	if (action == s->def)
		return;
	r = seccomp_rule_add_array(s->ctx, action, nr, n, cmp);
	if (r < 0) {
		s->err = r;
		s->bad = name;
	}
}

static void sb_allow(struct sb *s, const char *name)
{
	sb_add(s, SCMP_ACT_ALLOW, name, 0, NULL);
}

static void sb_allow1(struct sb *s, const char *name, struct scmp_arg_cmp c)
{
	sb_add(s, SCMP_ACT_ALLOW, name, 1, &c);
}

/* open/openat: @arg is the flags argument's index. */
static void sb_open_rules(struct sb *s, const char *name, unsigned arg, bool rdwr)
{
	static const unsigned long never[] = { O_WRONLY, O_CREAT, O_TRUNC, O_APPEND,
		                               O_TMPFILE & ~O_DIRECTORY };
	unsigned long mask = 0;

	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
		struct scmp_arg_cmp c = { arg, SCMP_CMP_MASKED_EQ, never[i], never[i] };

		mask |= never[i];
		sb_add(s, s->deny, name, 1, &c);
	}
	if (!rdwr) {
		struct scmp_arg_cmp c = { arg, SCMP_CMP_MASKED_EQ, O_RDWR, O_RDWR };

		mask |= O_RDWR;
		sb_add(s, s->deny, name, 1, &c);
	}
	sb_allow1(s, name, (struct scmp_arg_cmp){ arg, SCMP_CMP_MASKED_EQ, mask, 0 });
}

static void sb_build(struct sb *s, bool rdwr)
{
	for (size_t i = 0; i < sizeof(allow_always) / sizeof(allow_always[0]); i++)
		sb_allow(s, allow_always[i]);

	/* No executable memory after start-up. */
	sb_allow1(s, "mmap", SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	sb_allow1(s, "mprotect", SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));

	sb_open_rules(s, "openat", 2, rdwr);
	sb_open_rules(s, "open", 1, rdwr);

	for (size_t i = 0; i < sizeof(fcntl_cmds) / sizeof(fcntl_cmds[0]); i++)
		sb_allow1(s, "fcntl", SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)fcntl_cmds[i]));

	/* The command is an int in the kernel: compare its low 32 bits only. */
	for (size_t i = 0; i < sizeof(ioctl_cmds) / sizeof(ioctl_cmds[0]); i++)
		sb_allow1(s, "ioctl",
		          SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, (scmp_datum_t)ioctl_cmds[i]));

	{
		struct scmp_arg_cmp snd[2] = { SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET),
			                       SCMP_A2(SCMP_CMP_EQ, SO_SNDBUF) };
		struct scmp_arg_cmp rcv[2] = { SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET),
			                       SCMP_A2(SCMP_CMP_EQ, SO_RCVBUF) };
		/* QEMU's display socket arrives after the filter: its send buffer is sized then. */
		struct scmp_arg_cmp sndf[2] = { SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET),
			                        SCMP_A2(SCMP_CMP_EQ, SO_SNDBUFFORCE) };

		sb_add(s, SCMP_ACT_ALLOW, "setsockopt", 2, snd);
		sb_add(s, SCMP_ACT_ALLOW, "setsockopt", 2, rcv);
		sb_add(s, SCMP_ACT_ALLOW, "setsockopt", 2, sndf);
	}

	/* Dispositions may be read (act == NULL), not changed. */
	sb_allow1(s, "rt_sigaction", SCMP_A1(SCMP_CMP_EQ, 0));
	{
		struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_NE, 0);

		sb_add(s, s->deny, "rt_sigaction", 1, &c);
	}

	/* abort(): raise(SIGABRT) on ourselves only. */
	{
		struct scmp_arg_cmp c[2] = { SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()),
			                     SCMP_A2(SCMP_CMP_EQ, SIGABRT) };

		sb_add(s, SCMP_ACT_ALLOW, "tgkill", 2, c);
	}
}

bool vgs_sandbox_supported(void)
{
	return true;
}

int vgs_sandbox_apply(enum vgs_sandbox_mode mode, char *err, size_t errlen)
{
	struct sb s = { 0 };
	unsigned api;
	bool rdwr;
	int r;

	if (mode == VGS_SANDBOX_OFF)
		return 0;
	api = seccomp_api_get();
	/* SCMP_ACT_LOG and SCMP_ACT_KILL_PROCESS: API level 3 (kernel 4.14). */
	if (api < 3) {
		snprintf(err, errlen,
		         "--sandbox=%s: the kernel or libseccomp is too old (seccomp API level "
		         "%u, 3 needed: Linux 4.14 with SECCOMP_RET_LOG and KILL_PROCESS)",
		         vgs_sandbox_mode_name(mode), api);
		return -ENOTSUP;
	}
	/*
	 * Probed now, while /dev/udmabuf may still be opened read-write: the
	 * answer decides whether the filter lets O_RDWR through at all.
	 */
	rdwr = vshm_udmabuf_available(NULL);

	s.def = mode == VGS_SANDBOX_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
	s.deny = mode == VGS_SANDBOX_LOG ? SCMP_ACT_LOG : SCMP_ACT_ERRNO(EPERM);
	s.ctx = seccomp_init(s.def);
	if (!s.ctx) {
		snprintf(err, errlen, "--sandbox: seccomp_init failed");
		return -ENOMEM;
	}
	/* NO_NEW_PRIVS is set by us below; libseccomp's own would be the same. */
	seccomp_attr_set(s.ctx, SCMP_FLTATR_CTL_NNP, 0);
	/* Calls of another ABI (i386 int 0x80 on x86_64): the default action too. */
	seccomp_attr_set(s.ctx, SCMP_FLTATR_ACT_BADARCH, s.def);
	/* Log refusals (EPERM) too, not only kills, where the kernel can. */
	seccomp_attr_set(s.ctx, SCMP_FLTATR_CTL_LOG, 1);

	sb_build(&s, rdwr);
	if (s.err) {
		snprintf(err, errlen, "--sandbox: cannot add the rule for %s: %s", s.bad,
		         strerror(-s.err));
		seccomp_release(s.ctx);
		return s.err;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		r = -errno;
		snprintf(err, errlen, "--sandbox: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		seccomp_release(s.ctx);
		return r;
	}
	r = seccomp_load(s.ctx);
	seccomp_release(s.ctx);
	if (r < 0) {
		snprintf(err, errlen, "--sandbox: cannot load the seccomp filter: %s",
		         strerror(-r));
		return r;
	}
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	if (mode == VGS_SANDBOX_ON)
		vshm_log(VSHM_LOG_WARN, "sandbox: this is a sanitizer build: its run time (the "
		                        "leak check at exit) needs calls the filter kills; use "
		                        "--sandbox=log or off with sanitizers");
#endif
	vshm_log(VSHM_LOG_INFO, "sandbox: seccomp filter installed (%s%s)",
	         mode == VGS_SANDBOX_LOG ? "log: calls outside the allowlist are logged"
	                                 : "on: calls outside the allowlist kill the process",
	         rdwr ? "" : "; files open read-only");
	return 0;
}

#else /* !HAVE_SECCOMP */

bool vgs_sandbox_supported(void)
{
	return false;
}

int vgs_sandbox_apply(enum vgs_sandbox_mode mode, char *err, size_t errlen)
{
	if (mode == VGS_SANDBOX_OFF)
		return 0;
	snprintf(err, errlen,
	         "--sandbox=%s: this vshm-gpu was built without libseccomp "
	         "(meson -Dseccomp=enabled needs libseccomp-dev)",
	         vgs_sandbox_mode_name(mode));
	return -ENOTSUP;
}

#endif /* HAVE_SECCOMP */

const char *vgs_sandbox_mode_name(enum vgs_sandbox_mode mode)
{
	switch (mode) {
	case VGS_SANDBOX_OFF:
		return "off";
	case VGS_SANDBOX_LOG:
		return "log";
	case VGS_SANDBOX_ON:
		return "on";
	}
	return "?";
}

/* ---- TEST ONLY: see sandbox.h ------------------------------------------------ */

int vgs_sandbox_selftest(enum vgs_sandbox_mode mode, const char *what)
{
	const char *name = vgs_sandbox_mode_name(mode);
	int fd;

	if (mode == VGS_SANDBOX_OFF)
		return 0;
	vshm_log(VSHM_LOG_WARN, "sandbox selftest (test only): %s with --sandbox=%s", what, name);
	if (!strcmp(what, "execve")) {
		char *const argv[] = { (char *)"true", NULL };
		char *const envp[] = { NULL };

		if (mode != VGS_SANDBOX_ON) {
			vshm_log(VSHM_LOG_WARN,
			         "sandbox selftest: execve is only tried with --sandbox=on");
			return 0;
		}
		execve("/bin/true", argv, envp);
		vshm_log(VSHM_LOG_ERROR, "sandbox selftest: execve returned: %s", strerror(errno));
		return 0;
	}
	if (!strcmp(what, "open-write")) {
		const char *path = getenv("VSHM_SANDBOX_SELFTEST_PATH");

		if (!path || !path[0]) {
			vshm_log(VSHM_LOG_ERROR,
			         "sandbox selftest: open-write needs VSHM_SANDBOX_SELFTEST_PATH");
			return -EINVAL;
		}
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			vshm_log(VSHM_LOG_WARN, "sandbox selftest: open-write refused: %s",
			         strerror(errno));
			return 0;
		}
		close(fd);
		vshm_log(VSHM_LOG_WARN, "sandbox selftest: open-write allowed");
		return 0;
	}
	if (!strcmp(what, "socket")) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			vshm_log(VSHM_LOG_WARN, "sandbox selftest: socket refused: %s",
			         strerror(errno));
			return 0;
		}
		close(fd);
		vshm_log(VSHM_LOG_WARN, "sandbox selftest: socket allowed");
		return 0;
	}
	vshm_log(VSHM_LOG_ERROR, "sandbox selftest: unknown test '%s'", what);
	return -EINVAL;
}
