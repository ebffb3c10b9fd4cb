/* SPDX-License-Identifier: MIT */
/*
 * conn_splice.c - the pipe half of conn.c's zero-copy send path.
 *
 * vmsplice() without SPLICE_F_GIFT puts references to the caller's pages
 * into the pipe; splice() from the pipe into an AF_UNIX stream socket hands
 * them on to skbs (Linux >= 6.5: MSG_SPLICE_PAGES, no copy). The pages stay
 * referenced by the kernel until the peer has read them, so the caller may
 * unmap its memory after the release callback; what the peer reads is the
 * content of those pages at the time it reads.
 *
 * Whether splicing works is found out on first use: EINVAL, ENOSYS or
 * EOPNOTSUPP (old kernel, seccomp filter, a socket type without
 * splice_write) turns it off for the whole process, logged once.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vshm/log.h>

#include "conn_splice.h"
#include "util.h"

/* The pipe needs no more: a socket takes about one SO_SNDBUF per splice(). */
#define SPLICE_PIPE_CAP (4u << 20)
/* The kernel's default pipe size; nothing smaller is attempted. */
#define SPLICE_PIPE_MIN (64u << 10)

static atomic_bool splice_broken;
static atomic_uint pipe_max_cached; /* 0 = not read yet */

bool conn_splice_available(void)
{
	return !atomic_load_explicit(&splice_broken, memory_order_relaxed);
}

static void splice_disable(int err)
{
	if (!atomic_exchange(&splice_broken, true))
		vshm_log(VSHM_LOG_INFO,
		         "conn: splice to a socket failed (%s); sending referenced payloads with "
		         "sendmsg from now on",
		         strerror(-err));
}

static bool errno_means_unsupported(int e)
{
	return e == EINVAL || e == ENOSYS || e == EOPNOTSUPP || e == EPERM;
}

static unsigned pipe_max_size(void)
{
	unsigned v = atomic_load_explicit(&pipe_max_cached, memory_order_relaxed);
	FILE *f;

	if (v)
		return v;
	v = SPLICE_PIPE_MIN;
	f = fopen("/proc/sys/fs/pipe-max-size", "re");
	if (f) {
		unsigned long x;

		if (fscanf(f, "%lu", &x) == 1 && x >= SPLICE_PIPE_MIN)
			v = x > SPLICE_PIPE_CAP ? SPLICE_PIPE_CAP : (unsigned)x;
		fclose(f);
	}
	atomic_store_explicit(&pipe_max_cached, v, memory_order_relaxed);
	return v;
}

void conn_splice_init(struct conn_splice *s)
{
	s->rd = -1;
	s->wr = -1;
	s->in_pipe = 0;
}

void conn_splice_fini(struct conn_splice *s)
{
	vshm_close_fd(s->rd);
	vshm_close_fd(s->wr);
	conn_splice_init(s);
}

/*
 * splice() has no MSG_NOSIGNAL. When the process ignores SIGPIPE (daemons
 * usually do) there is nothing to mask, and masking costs two or more
 * syscalls per flush. The disposition is sampled whenever a conn sets up
 * its pipe; an embedder that installs a SIGPIPE handler later gets the
 * masking from the next conn on.
 */
static int sigpipe_ignored = -1;

static void sigpipe_check_ignored(void)
{
	struct sigaction sa;

	if (sigaction(SIGPIPE, NULL, &sa) == 0)
		sigpipe_ignored = !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN;
}

static bool pipe_open(struct conn_splice *s)
{
	int p[2];

	if (s->rd >= 0)
		return true;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return false; /* out of fds: sendmsg this time, try again later */
	sigpipe_check_ignored();
	/*
	 * Bigger means fewer vmsplice() calls per frame. The per-user pipe
	 * page limit can refuse a size; halve until one fits or give up at
	 * the default.
	 */
	for (unsigned sz = pipe_max_size(); sz > SPLICE_PIPE_MIN; sz /= 2)
		if (fcntl(p[1], F_SETPIPE_SZ, (int)sz) >= 0)
			break;
	s->rd = p[0];
	s->wr = p[1];
	return true;
}

ssize_t conn_splice_fill(struct conn_splice *s, const struct iovec *iov, int iovcnt)
{
	ssize_t n;

	if (!conn_splice_available())
		return CONN_SPLICE_UNSUPPORTED;
	if (s->in_pipe || !pipe_open(s))
		return 0;
	do {
		/* No SPLICE_F_GIFT: the pages stay the caller's. */
		n = vmsplice(s->wr, iov, (unsigned long)iovcnt, SPLICE_F_NONBLOCK);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		s->in_pipe = (size_t)n;
		return n;
	}
	if (n == 0 || errno == EAGAIN || errno == ENOMEM)
		return 0;
	if (errno_means_unsupported(errno)) {
		splice_disable(-errno);
		conn_splice_fini(s);
		return CONN_SPLICE_UNSUPPORTED;
	}
	return -errno; /* EFAULT: the caller broke its promise to keep the memory mapped */
}

ssize_t conn_splice_drain(struct conn_splice *s, int sock)
{
	ssize_t n;

	if (!s->in_pipe)
		return 0;
	do {
		n = splice(s->rd, NULL, sock, NULL, s->in_pipe, SPLICE_F_NONBLOCK);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		s->in_pipe -= (size_t)n;
		return n;
	}
	if (n == 0)
		return -EIO; /* the pipe claims to be empty: our count is wrong */
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -EAGAIN;
	if (errno_means_unsupported(errno)) {
		/* The bytes are still at the head of the queue; sendmsg takes over. */
		splice_disable(-errno);
		conn_splice_fini(s);
		return CONN_SPLICE_UNSUPPORTED;
	}
	return -errno;
}

void conn_sigpipe_block(struct conn_sigpipe_guard *g)
{
	sigset_t set;

	if (g->active || sigpipe_ignored == 1)
		return;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	g->active = pthread_sigmask(SIG_BLOCK, &set, &g->old) == 0;
}

void conn_sigpipe_restore(struct conn_sigpipe_guard *g, bool got_epipe)
{
	if (!g->active)
		return;
	if (got_epipe) {
		/*
		 * The failed splice() raised a thread-directed SIGPIPE, now
		 * pending because it is blocked: take it so it is never
		 * delivered. (A SIGPIPE already pending merges with it.)
		 */
		static const struct timespec zero = { 0, 0 };
		sigset_t set, pend;

		sigemptyset(&set);
		sigaddset(&set, SIGPIPE);
		if (sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE))
			while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
				;
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
	g->active = false;
}
