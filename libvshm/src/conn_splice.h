/* SPDX-License-Identifier: MIT */
/*
 * conn_splice.h - zero-copy send of referenced payload bytes for conn.c:
 * vmsplice() the caller's pages into a pipe owned by the conn, then
 * splice() the pipe into the socket. Private, not installed.
 *
 * The pipe only ever holds bytes from the head of the conn's out-queue:
 * conn.c fills it when it is empty and sends nothing else on the socket
 * until it is empty again, so the byte order on the stream is the queue
 * order.
 */
#ifndef VSHM_CONN_SPLICE_H
#define VSHM_CONN_SPLICE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Returned by fill/drain when splicing does not work here; fall back for good. */
#define CONN_SPLICE_UNSUPPORTED (-EOPNOTSUPP)

struct conn_splice {
	int rd, wr;     /* the pipe, -1 until first used */
	size_t in_pipe; /* bytes in the pipe, not yet in the socket */
};

/* SIGPIPE blocked for the calling thread while a flush splices. */
struct conn_sigpipe_guard {
	bool active;
	sigset_t old;
};

void conn_splice_init(struct conn_splice *s);
/* Close the pipe; whatever it still holds is dropped. */
void conn_splice_fini(struct conn_splice *s);

/* False once any conn found that splicing to a socket does not work. */
bool conn_splice_available(void);

/*
 * Move up to the pipe's capacity of @iov into the (empty) pipe, by reference.
 * >0 bytes now in the pipe; 0 when the pipe could not be used this time
 * (write with sendmsg instead); CONN_SPLICE_UNSUPPORTED; or a fatal -errno.
 */
ssize_t conn_splice_fill(struct conn_splice *s, const struct iovec *iov, int iovcnt);

/*
 * Splice the pipe's bytes into @sock. Returns bytes moved (>0), -EAGAIN when
 * the socket is full, CONN_SPLICE_UNSUPPORTED (the pipe is then emptied), or
 * a fatal -errno (-EPIPE/-ECONNRESET when the peer is gone). Call with
 * SIGPIPE blocked (conn_sigpipe_block()).
 */
ssize_t conn_splice_drain(struct conn_splice *s, int sock);

/*
 * splice() has no MSG_NOSIGNAL: a write to a closed peer raises SIGPIPE.
 * Block it around splicing; restore consumes the one we caused, if any.
 */
void conn_sigpipe_block(struct conn_sigpipe_guard *g);
void conn_sigpipe_restore(struct conn_sigpipe_guard *g, bool got_epipe);

#endif
