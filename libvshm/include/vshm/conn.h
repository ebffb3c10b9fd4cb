/* SPDX-License-Identifier: MIT */
/*
 * vshm/conn.h - framed messages over a non-blocking AF_UNIX stream socket.
 *
 * Every protocol vshm speaks (vhost-user, QEMU's vhost-user-gpu display
 * protocol and vshm's own extensions) frames messages as a fixed-size header
 * that contains a u32 payload size, followed by the payload; file
 * descriptors ride as SCM_RIGHTS on the header's first byte. A vshm_conn
 * does that framing with hard bounds: payload size, fds per message and
 * bytes queued for sending are all limited by the config, and every fd that
 * arrives on a message that is rejected is closed.
 *
 * The conn does not watch its fd itself; the owner calls vshm_conn_recv()
 * when the fd is readable and vshm_conn_flush() when it is writable (see
 * vshm_conn_wants_write()).
 */
#ifndef VSHM_CONN_H
#define VSHM_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Upper bound for max_fds in any config; SCM_RIGHTS space is sized for it. */
#define VSHM_CONN_MAX_FDS 16

struct vshm_conn_config {
	uint32_t header_size; /* fixed header bytes, 4..64 */
	uint32_t size_offset; /* offset of the native-endian u32 payload size in the header */
	uint32_t max_payload; /* a larger declared size is a framing error (-EMSGSIZE) */
	uint32_t max_fds;     /* more fds on one message: error, all of them closed */
	size_t max_queued;    /* bound on bytes held for sending; beyond it send fails -ENOBUFS */
	uint32_t flags;       /* VSHM_CONN_F_*; 0 keeps the default behaviour */
};

/*
 * VSHM_CONN_F_SPLICE_REF: send large referenced payload segments of
 * vshm_conn_send_ref() without copying them: vmsplice() into a pipe owned
 * by the conn, then splice() into the socket (Linux >= 6.5 hands AF_UNIX
 * stream sockets the pages by reference). Headers, segments under 4 KiB,
 * messages whose referenced payload is under 64 KiB and anything sent with
 * vshm_conn_send() still go through sendmsg(), so per-message metadata is
 * exact; the byte order on the stream and fd attachment are unchanged. If
 * the kernel refuses (EINVAL/ENOSYS/EOPNOTSUPP), the conn falls back to
 * sendmsg() for good (logged once per process).
 *
 * What changes for the caller: the release callback runs once the bytes
 * are in the socket, but the kernel then still references the PAGES, and
 * the peer reads whatever they hold when it reads. Unmapping or freeing to
 * the system (munmap) after release is memory-safe (the kernel keeps the
 * pages), but a later write to the same pages, including memory that
 * malloc() hands out again, may be what the peer sees. Use it only for
 * memory where "the latest content wins" is acceptable, e.g. a display
 * image (the same tearing a queued referenced message already allows).
 * A conn with this flag creates one pipe (two fds) on first use.
 */
#define VSHM_CONN_F_SPLICE_REF (1u << 0)

struct vshm_conn;

/*
 * A received message. hdr/payload point into the conn's buffer and stay
 * valid until the next vshm_conn_recv() or vshm_conn_destroy().
 * fds: OWNED BY THE CALLER after a successful recv; close or keep each one
 * (vshm_conn_msg_close_fds() closes those still >= 0; set an entry to -1
 * after taking it).
 */
struct vshm_conn_msg {
	const uint8_t *hdr;
	const uint8_t *payload;
	uint32_t payload_size;
	int fds[VSHM_CONN_MAX_FDS];
	unsigned nfds;
};

/*
 * Wrap the connected stream socket @fd (made non-blocking and close-on-exec).
 * Ownership of @fd passes to the conn on success AND on failure.
 * Returns 0 or -errno (-EINVAL for a bad config).
 */
int vshm_conn_new(int fd, const struct vshm_conn_config *cfg, struct vshm_conn **out);

/* Closes the socket, queued fds and any partially received fds. NULL ok. */
void vshm_conn_destroy(struct vshm_conn *c);

/* The socket fd (still owned by the conn), for the owner's event loop. */
int vshm_conn_get_fd(const struct vshm_conn *c);

/*
 * Read as much as is available and return one complete message.
 *  0        a message is in *msg (see ownership above)
 *  -EAGAIN  no complete message yet (partial data is kept)
 *  -EPIPE   peer closed the connection cleanly at a message boundary
 *  -ECONNRESET, -EIO  peer closed mid-message or the socket failed
 *  -EMSGSIZE  declared payload over max_payload (connection is unusable)
 *  -EPROTO  too many fds / truncated control data (connection is unusable)
 * After any error other than -EAGAIN the conn only accepts destroy.
 * Messages already buffered are returned before EOF is reported.
 */
int vshm_conn_recv(struct vshm_conn *c, struct vshm_conn_msg *msg);

/* Close every fd in @msg that is still >= 0 and set it to -1. */
void vshm_conn_msg_close_fds(struct vshm_conn_msg *msg);

/*
 * Queue one message made of @iov (header first; the caller writes the size
 * field) with @nfds fds attached to its first byte, and write as much as the
 * socket takes now. The fds are BORROWED: the conn dup()s them if it has to
 * keep them past this call; the caller still owns and closes its copies.
 * Bytes the socket did not take are copied into the out-queue and counted
 * in vshm_conn_stats.bytes_copied.
 *  0          queued or sent
 *  -EINVAL    iov[0] is not exactly header_size bytes, or its size field
 *             differs from the payload length (nothing was sent)
 *  -ENOBUFS   would exceed max_queued; nothing was queued
 *  -EPIPE / -ECONNRESET  the peer is gone
 */
int vshm_conn_send(struct vshm_conn *c, const struct iovec *iov, int iovcnt, const int *fds,
                   unsigned nfds);

/*
 * Like vshm_conn_send(), but the payload at @iov[1..] is REFERENCED, not
 * copied, when the socket cannot take it at once: the caller guarantees the
 * memory stays mapped until @release(@release_data) is called (from flush,
 * destroy, or before this returns when everything was written). iov[0]
 * (the header, <= 64 bytes) is always copied. Used for large pixel payloads.
 * @release runs exactly once on every path, including an error return
 * (then before this returns), so the caller never frees on error itself.
 * With VSHM_CONN_F_SPLICE_REF, large payload segments are spliced instead
 * (see the flag): @release then runs once they are in the socket, while
 * the kernel may still hold the pages until the peer reads them.
 */
typedef void (*vshm_conn_release_fn)(void *data);
int vshm_conn_send_ref(struct vshm_conn *c, const struct iovec *iov, int iovcnt, const int *fds,
                       unsigned nfds, vshm_conn_release_fn release, void *release_data);

/*
 * Write queued bytes. 0 when the queue is empty, -EAGAIN when bytes remain
 * (wait for writability), or a fatal -errno.
 */
int vshm_conn_flush(struct vshm_conn *c);

/* True when bytes are queued: the owner should watch for VSHM_EV_OUT. */
bool vshm_conn_wants_write(const struct vshm_conn *c);

/* Bytes currently queued for sending (copied + referenced). */
size_t vshm_conn_queued_bytes(const struct vshm_conn *c);

struct vshm_conn_stats {
	uint64_t msgs_in, msgs_out;
	uint64_t bytes_in, bytes_out;
	uint64_t bytes_copied; /* payload bytes copied into the out-queue */
	uint64_t fds_in, fds_out;
	uint64_t fds_closed;    /* received fds closed because a message was rejected */
	uint64_t bytes_spliced; /* payload bytes sent by splice() (not copied); in bytes_out */
};
void vshm_conn_get_stats(const struct vshm_conn *c, struct vshm_conn_stats *out);

/*
 * Blocking helpers for simple request/reply peers (tests, backend channel):
 * wait up to @timeout_ms for a message / for the queue to drain.
 * Return as recv/flush, or -ETIMEDOUT.
 */
int vshm_conn_recv_timeout(struct vshm_conn *c, struct vshm_conn_msg *msg, int timeout_ms);
int vshm_conn_flush_timeout(struct vshm_conn *c, int timeout_ms);

/*
 * AF_UNIX stream socket helpers (close-on-exec). Each returns 0 and the new
 * fd, owned by the caller, in *out_fd, or -errno.
 * vshm_unix_listen() unlinks a stale socket file at @path first.
 */
int vshm_unix_listen(const char *path, int backlog, int *out_fd);
int vshm_unix_accept(int listen_fd, int *out_fd);
int vshm_unix_connect(const char *path, int *out_fd);

#ifdef __cplusplus
}
#endif

#endif
