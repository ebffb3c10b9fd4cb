/* SPDX-License-Identifier: MIT */
/*
 * conn.c - framed messages with SCM_RIGHTS over a non-blocking AF_UNIX
 * stream socket.
 *
 * Receive side. On a stream socket the kernel attaches SCM_RIGHTS to the
 * skb that carried the first byte of the sender's sendmsg(), and a
 * recvmsg() may glue bytes of earlier skbs in front of it. If we read
 * ahead past the end of the current message, fds belonging to the next
 * message could arrive together with bytes of this one and be attributed
 * to the wrong message. So every recvmsg() is bounded to the rest of the
 * current header or payload: fds that arrive while a message is being read
 * belong to that message. That costs one syscall for the header and one for
 * the payload, which is cheap next to the mistakes it rules out.
 *
 * Send side, the mirror image: a sendmsg() that carries fds always starts
 * at the first byte of the message they belong to, and never carries bytes
 * of an earlier message. Messages without fds are batched freely.
 *
 * Zero-copy send (VSHM_CONN_F_SPLICE_REF, conn_splice.c): large referenced
 * payload segments are marked "splice" when queued. flush_queue() moves a
 * run of them from the head of the queue into the conn's pipe (vmsplice)
 * and from there into the socket (splice). Their bytes leave the queue
 * (out_consume, and the release callback) only once splice() has put them
 * into the socket. While the pipe holds bytes, nothing else is written to
 * the socket: they are the next bytes of the stream. Headers and fds still
 * go by sendmsg(), which stops in front of a splice segment, so an fd still
 * rides on the first byte of its own message.
 *
 * Anything a peer sends is bounded (payload size, fds, bytes we hold for
 * it) and never asserted on; a framing error makes the conn unusable and
 * closes every fd that came with the rejected message.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/conn.h>
#include <vshm/log.h>
#include <vshm/loop.h>

#include "conn_splice.h"
#include "util.h"

#define CONN_HEADER_MIN 4
#define CONN_HEADER_MAX 64
/* Segments one send may consist of; callers use header + a few payload parts. */
#define CONN_SEND_IOV_MAX 64
/* iovecs gathered into one sendmsg() by flush. */
#define CONN_FLUSH_IOV_MAX 64
/* First receive buffer; grows on demand up to header + max_payload. */
#define CONN_RX_INITIAL 4096
/*
 * Splice only referenced segments of at least a page (small ones are
 * usually per-message metadata that must be exact when it is read), and
 * only in messages with enough of them to pay for vmsplice + splice.
 */
#define CONN_SPLICE_MIN_SEG 4096
#define CONN_SPLICE_MIN_MSG (64 * 1024)
/* Config flags this version understands. */
#define CONN_KNOWN_FLAGS VSHM_CONN_F_SPLICE_REF

/*
 * A peer can trigger these errors at will by reconnecting, so the limiter is
 * shared by every conn in the process rather than kept per conn.
 */
static struct vshm_ratelimit conn_log_rl = VSHM_RATELIMIT_INIT(5000, 10);

struct out_seg {
	const uint8_t *p;
	size_t len;
	bool splice; /* referenced, to be sent through the pipe */
};

/* One queued message (or the unwritten tail of one). */
struct out_msg {
	struct out_msg *next;
	size_t remaining;
	unsigned nseg, cur_seg;
	size_t cur_off;
	/* dup()ed fds still to be sent with the first byte; 0 once sent. */
	int fds[VSHM_CONN_MAX_FDS];
	unsigned nfds;
	vshm_conn_release_fn release;
	void *release_data;
	struct out_seg segs[]; /* followed by the copied bytes */
};

struct vshm_conn {
	int fd;
	struct vshm_conn_config cfg;
	int err; /* sticky fatal error, 0 while usable */

	/* Receive state for the message being assembled. */
	uint8_t *rx_buf;
	size_t rx_cap, rx_have;
	uint32_t rx_size; /* payload size, valid once the header is complete */
	int rx_fds[VSHM_CONN_MAX_FDS];
	unsigned rx_nfds;
	bool rx_returned; /* the buffer holds a message handed to the caller */

	struct out_msg *out_head, *out_tail;
	size_t queued;
	/* Zero-copy path; pipe bytes are the first sp.in_pipe bytes of the queue. */
	struct conn_splice sp;

	struct vshm_conn_stats stats;
};

static bool config_valid(const struct vshm_conn_config *cfg)
{
	if (cfg->header_size < CONN_HEADER_MIN || cfg->header_size > CONN_HEADER_MAX)
		return false;
	if (cfg->size_offset > cfg->header_size - sizeof(uint32_t))
		return false;
	if (cfg->max_fds > VSHM_CONN_MAX_FDS)
		return false;
	if (cfg->flags & ~(uint32_t)CONN_KNOWN_FLAGS)
		return false;
	/* header + max_payload must fit a size_t (only matters on 32-bit). */
	if ((uint64_t)cfg->max_payload + cfg->header_size > SIZE_MAX)
		return false;
	return true;
}

VSHM_EXPORT int vshm_conn_new(int fd, const struct vshm_conn_config *cfg, struct vshm_conn **out)
{
	struct vshm_conn *c;
	int type = 0, flags, r;
	socklen_t len = sizeof(type);

	if (fd < 0 || !cfg || !out || !config_valid(cfg)) {
		r = -EINVAL;
		goto err_close;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
		r = -errno;
		goto err_close;
	}
	if (type != SOCK_STREAM) {
		r = -EINVAL;
		goto err_close;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		r = -errno;
		goto err_close;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		r = -ENOMEM;
		goto err_close;
	}
	c->fd = fd;
	c->cfg = *cfg;
	conn_splice_init(&c->sp);
	*out = c;
	return 0;

err_close:
	/* The header promises ownership passes on failure too. */
	vshm_close_fd(fd);
	return r;
}

static void close_fds(int *fds, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		vshm_close_fd(fds[k]);
		fds[k] = -1;
	}
}

static void out_msg_free(struct out_msg *m)
{
	close_fds(m->fds, m->nfds);
	m->nfds = 0;
	if (m->release)
		m->release(m->release_data);
	free(m);
}

VSHM_EXPORT void vshm_conn_destroy(struct vshm_conn *c)
{
	if (!c)
		return;
	while (c->out_head) {
		struct out_msg *m = c->out_head;
		c->out_head = m->next;
		out_msg_free(m);
	}
	if (!c->rx_returned)
		close_fds(c->rx_fds, c->rx_nfds);
	free(c->rx_buf);
	/* Pages already in skbs stay referenced by the kernel, not by us. */
	conn_splice_fini(&c->sp);
	vshm_close_fd(c->fd);
	free(c);
}

VSHM_EXPORT int vshm_conn_get_fd(const struct vshm_conn *c)
{
	return c ? c->fd : -1;
}

/* Make the conn unusable; fds of the message being assembled are closed. */
static int conn_fail(struct vshm_conn *c, int err)
{
	if (!c->rx_returned && c->rx_nfds) {
		c->stats.fds_closed += c->rx_nfds;
		close_fds(c->rx_fds, c->rx_nfds);
	}
	c->rx_nfds = 0;
	if (!c->err)
		c->err = err;
	return c->err;
}

VSHM_EXPORT void vshm_conn_msg_close_fds(struct vshm_conn_msg *msg)
{
	if (!msg)
		return;
	for (unsigned k = 0; k < msg->nfds && k < VSHM_CONN_MAX_FDS; k++) {
		vshm_close_fd(msg->fds[k]);
		msg->fds[k] = -1;
	}
}

/*
 * Take the fds out of the control data. Every fd is either stored for the
 * message or closed here, so nothing leaks whatever the peer sent.
 * Returns 0 or -EPROTO.
 */
static int take_fds(struct vshm_conn *c, struct msghdr *mh)
{
	bool bad = (mh->msg_flags & MSG_CTRUNC) != 0;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		size_t n;
		const uint8_t *data;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		if (cm->cmsg_len < CMSG_LEN(0))
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		data = CMSG_DATA(cm);
		for (size_t k = 0; k < n; k++) {
			int fd;

			/* CMSG_DATA need not be int-aligned for the compiler. */
			memcpy(&fd, data + k * sizeof(int), sizeof(int));
			c->stats.fds_in++;
			if (c->rx_nfds < c->cfg.max_fds) {
				c->rx_fds[c->rx_nfds++] = fd;
			} else {
				vshm_close_fd(fd);
				c->stats.fds_closed++;
				bad = true;
			}
		}
	}
	if (!bad)
		return 0;
	vshm_log_ratelimited(&conn_log_rl, VSHM_LOG_WARN,
	                     "conn fd %d: %s fds on a message (limit %u), dropping connection",
	                     c->fd, (mh->msg_flags & MSG_CTRUNC) ? "truncated" : "too many",
	                     c->cfg.max_fds);
	return -EPROTO;
}

/* Ensure room for @need bytes; @need never exceeds header + max_payload. */
static int rx_reserve(struct vshm_conn *c, size_t need)
{
	size_t limit = (size_t)c->cfg.header_size + c->cfg.max_payload;
	size_t cap;
	uint8_t *p;

	if (need <= c->rx_cap)
		return 0;
	cap = c->rx_cap ? c->rx_cap : CONN_RX_INITIAL;
	while (cap < need && cap < limit / 2)
		cap *= 2;
	if (cap < need)
		cap = need;
	if (cap > limit)
		cap = limit;
	p = realloc(c->rx_buf, cap);
	if (!p)
		return -ENOMEM;
	c->rx_buf = p;
	c->rx_cap = cap;
	return 0;
}

VSHM_EXPORT int vshm_conn_recv(struct vshm_conn *c, struct vshm_conn_msg *msg)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VSHM_CONN_MAX_FDS)];
	} ctrl;
	const uint32_t hsz = c ? c->cfg.header_size : 0;

	if (!c || !msg)
		return -EINVAL;
	if (c->err)
		return c->err;
	if (c->rx_returned) {
		/* The previous message and its fds belong to the caller now. */
		c->rx_returned = false;
		c->rx_have = 0;
		c->rx_nfds = 0;
		c->rx_size = 0;
	}

	for (;;) {
		struct iovec iov;
		struct msghdr mh = { 0 };
		size_t want, total;
		ssize_t n;
		int r;

		total = c->rx_have < hsz ? hsz : (size_t)hsz + c->rx_size;
		want = total - c->rx_have;
		if (want == 0)
			break; /* header complete and the payload is empty */
		r = rx_reserve(c, total);
		if (r < 0)
			return conn_fail(c, r);

		iov.iov_base = c->rx_buf + c->rx_have;
		iov.iov_len = want;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = ctrl.buf;
		mh.msg_controllen = sizeof(ctrl.buf);
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return -EAGAIN;
			return conn_fail(c, -errno);
		}
		r = take_fds(c, &mh);
		if (r < 0)
			return conn_fail(c, r);
		if (n == 0) {
			/* Clean only when nothing of a next message has arrived. */
			if (c->rx_have == 0 && c->rx_nfds == 0)
				return conn_fail(c, -EPIPE);
			vshm_log_ratelimited(
			        &conn_log_rl, VSHM_LOG_WARN,
			        "conn fd %d: peer closed mid-message (%zu of %zu bytes)", c->fd,
			        c->rx_have, total);
			return conn_fail(c, -ECONNRESET);
		}
		c->rx_have += (size_t)n;
		c->stats.bytes_in += (uint64_t)n;

		if (c->rx_have == hsz) {
			uint32_t size;

			memcpy(&size, c->rx_buf + c->cfg.size_offset, sizeof(size));
			/* Checked before the buffer grows for it. */
			if (size > c->cfg.max_payload) {
				vshm_log_ratelimited(&conn_log_rl, VSHM_LOG_WARN,
				                     "conn fd %d: message payload %u over limit %u",
				                     c->fd, size, c->cfg.max_payload);
				return conn_fail(c, -EMSGSIZE);
			}
			c->rx_size = size;
		}
		if (c->rx_have == total && c->rx_have > hsz)
			break;
	}

	memset(msg, 0, sizeof(*msg));
	msg->hdr = c->rx_buf;
	msg->payload = c->rx_buf + hsz;
	msg->payload_size = c->rx_size;
	for (unsigned k = 0; k < VSHM_CONN_MAX_FDS; k++)
		msg->fds[k] = k < c->rx_nfds ? c->rx_fds[k] : -1;
	msg->nfds = c->rx_nfds;
	c->rx_returned = true;
	c->stats.msgs_in++;
	return 0;
}

static bool seg_spliceable(size_t len)
{
	return len >= CONN_SPLICE_MIN_SEG;
}

/*
 * Whether a send_ref message goes the zero-copy way. If so, *prefix_cnt is
 * the number of iovecs in front of the first segment to splice (the header
 * and small segments, which sendmsg() writes).
 */
static bool splice_eligible(const struct vshm_conn *c, const struct iovec *iov, int iovcnt,
                            int *prefix_cnt)
{
	size_t spliced = 0;
	int first = iovcnt;

	if (!(c->cfg.flags & VSHM_CONN_F_SPLICE_REF) || !conn_splice_available())
		return false;
	for (int k = 1; k < iovcnt; k++) {
		if (!seg_spliceable(iov[k].iov_len))
			continue;
		if (first == iovcnt)
			first = k;
		spliced += iov[k].iov_len;
	}
	*prefix_cnt = first;
	return spliced >= CONN_SPLICE_MIN_MSG;
}

/*
 * Build a queue entry for what is left of @iov after @skip bytes were
 * written. In copy mode all of it is copied; in ref mode only the header
 * is, and the payload segments point at the caller's memory (with @zc,
 * the large ones are marked for splicing).
 */
static struct out_msg *out_msg_new(struct vshm_conn *c, const struct iovec *iov, int iovcnt,
                                   size_t total, size_t skip, bool ref, bool zc)
{
	const size_t hsz = c->cfg.header_size;
	size_t rest = total - skip;
	size_t copy_len, payload_copied;
	unsigned maxseg = ref ? (unsigned)iovcnt : 1;
	struct out_msg *m;
	uint8_t *copy;
	size_t pos = 0;

	if (ref) {
		copy_len = skip < hsz ? hsz - skip : 0;
		payload_copied = 0;
	} else {
		copy_len = rest;
		payload_copied = skip < hsz ? rest - (hsz - skip) : rest;
	}
	m = malloc(sizeof(*m) + maxseg * sizeof(struct out_seg) + copy_len);
	if (!m)
		return NULL;
	memset(m, 0, sizeof(*m));
	copy = (uint8_t *)&m->segs[maxseg];
	m->remaining = rest;

	if (copy_len) {
		m->segs[m->nseg].p = copy;
		m->segs[m->nseg].len = copy_len;
		m->segs[m->nseg].splice = false;
		m->nseg++;
	}
	for (int k = 0; k < iovcnt; k++) {
		const uint8_t *base = iov[k].iov_base;
		size_t len = iov[k].iov_len, start = 0, end = len;

		/* This iovec's part of [skip, total) */
		if (pos + len <= skip) {
			pos += len;
			continue;
		}
		if (pos < skip)
			start = skip - pos;
		if (!ref || k == 0) {
			/* Copied bytes (header in ref mode, everything otherwise). */
			memcpy(copy, base + start, end - start);
			copy += end - start;
		} else if (end > start) {
			m->segs[m->nseg].p = base + start;
			m->segs[m->nseg].len = end - start;
			m->segs[m->nseg].splice = zc && seg_spliceable(len);
			m->nseg++;
		}
		pos += len;
	}
	c->stats.bytes_copied += payload_copied;
	return m;
}

/* Drop @n written bytes from the head of the queue, retiring whole messages. */
static void out_consume(struct vshm_conn *c, size_t n)
{
	c->stats.bytes_out += n;
	c->queued -= n;
	while (n > 0 && c->out_head) {
		struct out_msg *m = c->out_head;

		while (n > 0 && m->cur_seg < m->nseg) {
			size_t left = m->segs[m->cur_seg].len - m->cur_off;
			size_t take = n < left ? n : left;

			m->cur_off += take;
			m->remaining -= take;
			n -= take;
			if (m->cur_off == m->segs[m->cur_seg].len) {
				m->cur_seg++;
				m->cur_off = 0;
			}
		}
		if (m->remaining > 0)
			break;
		c->out_head = m->next;
		if (!c->out_head)
			c->out_tail = NULL;
		c->stats.msgs_out++;
		out_msg_free(m);
	}
}

static bool send_errno_is_fatal(int e)
{
	/*
	 * These leave the stream intact (nothing was written): a bad fd from
	 * the caller or a transient kernel allocation failure.
	 */
	return e != EBADF && e != EINVAL && e != ETOOMANYREFS && e != ENOMEM && e != ENOBUFS;
}

static void set_rights(struct msghdr *mh, void *buf, size_t buflen, const int *fds, unsigned n)
{
	struct cmsghdr *cm;

	if (n == 0)
		return;
	memset(buf, 0, buflen);
	mh->msg_control = buf;
	mh->msg_controllen = CMSG_SPACE(sizeof(int) * n);
	cm = CMSG_FIRSTHDR(mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
}

/*
 * The zero-copy step at the head of the queue. Returns 1 when bytes moved
 * (loop again), 0 when sendmsg() should write the head now, -EAGAIN when
 * the socket is full with bytes still in the pipe, or a fatal error.
 */
static int flush_splice(struct vshm_conn *c, struct conn_sigpipe_guard *g)
{
	struct out_msg *head = c->out_head;
	ssize_t n;

	if (!c->sp.in_pipe) {
		struct iovec iov[CONN_FLUSH_IOV_MAX];
		int niov = 0;

		/* Fill only from a run of splice segments of the head message. */
		for (unsigned s = head->cur_seg;
		     s < head->nseg && head->segs[s].splice && niov < CONN_FLUSH_IOV_MAX; s++) {
			size_t off = s == head->cur_seg ? head->cur_off : 0;

			iov[niov].iov_base = (void *)(head->segs[s].p + off);
			iov[niov].iov_len = head->segs[s].len - off;
			niov++;
		}
		if (niov == 0)
			return 0;
		n = conn_splice_fill(&c->sp, iov, niov);
		if (n == 0 || n == CONN_SPLICE_UNSUPPORTED)
			return 0;
		if (n < 0)
			return conn_fail(c, (int)n);
	}
	conn_sigpipe_block(g);
	n = conn_splice_drain(&c->sp, c->fd);
	if (n == CONN_SPLICE_UNSUPPORTED)
		return 0; /* the pipe was emptied; its bytes are still queued */
	if (n == -EAGAIN)
		return -EAGAIN;
	if (n < 0)
		return conn_fail(c, (int)n);
	c->stats.bytes_spliced += (uint64_t)n;
	out_consume(c, (size_t)n);
	/* Bytes left in the pipe: the socket is full, and they go first. */
	return c->sp.in_pipe ? -EAGAIN : 1;
}

static int flush_queue_guarded(struct vshm_conn *c, struct conn_sigpipe_guard *g)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VSHM_CONN_MAX_FDS)];
	} ctrl;

	while (c->out_head) {
		struct iovec iov[CONN_FLUSH_IOV_MAX];
		struct msghdr mh = { 0 };
		struct out_msg *head = c->out_head;
		int niov = 0;
		size_t want = 0;
		ssize_t n;
		bool splice_ok = false;

		if (c->sp.in_pipe ||
		    (head->cur_seg < head->nseg && head->segs[head->cur_seg].splice)) {
			int r = flush_splice(c, g);

			if (r > 0)
				continue;
			if (r < 0)
				return r;
			/* Not splicing this time: sendmsg() takes the segment. */
		} else {
			splice_ok = conn_splice_available();
		}

		/*
		 * A message with fds must open a sendmsg(); see the top of the
		 * file. A splice segment ends it: it goes through the pipe.
		 */
		for (struct out_msg *m = head; m && niov < CONN_FLUSH_IOV_MAX; m = m->next) {
			if (m != head && m->nfds)
				break;
			for (unsigned s = m->cur_seg; s < m->nseg && niov < CONN_FLUSH_IOV_MAX;
			     s++) {
				size_t off = s == m->cur_seg ? m->cur_off : 0;

				if (niov > 0 && splice_ok && m->segs[s].splice)
					goto gathered;
				iov[niov].iov_base = (void *)(m->segs[s].p + off);
				iov[niov].iov_len = m->segs[s].len - off;
				want += iov[niov].iov_len;
				niov++;
			}
		}
	gathered:
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)niov;
		set_rights(&mh, ctrl.buf, sizeof(ctrl.buf), head->fds, head->nfds);

		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return -EAGAIN;
			/* Queued bytes cannot be dropped without breaking the framing. */
			return conn_fail(c, -errno);
		}
		if (head->nfds && n > 0) {
			c->stats.fds_out += head->nfds;
			close_fds(head->fds, head->nfds);
			head->nfds = 0;
		}
		out_consume(c, (size_t)n);
		/*
		 * A short write means the socket buffer is full: another
		 * sendmsg() now would only return EAGAIN. Skipping it saves
		 * about one syscall per socket-buffer's worth of a large frame.
		 */
		if ((size_t)n < want)
			return c->out_head ? -EAGAIN : 0;
	}
	return 0;
}

static int flush_queue(struct vshm_conn *c)
{
	struct conn_sigpipe_guard g = { .active = false };
	int r = flush_queue_guarded(c, &g);

	conn_sigpipe_restore(&g, r == -EPIPE);
	return r;
}

static int check_message(const struct vshm_conn *c, const struct iovec *iov, int iovcnt,
                         const int *fds, unsigned nfds, size_t *total_out)
{
	uint32_t declared;
	size_t payload = 0;

	if (!iov || iovcnt < 1 || iovcnt > CONN_SEND_IOV_MAX)
		return -EINVAL;
	if (!iov[0].iov_base || iov[0].iov_len != c->cfg.header_size)
		return -EINVAL;
	if (nfds > VSHM_CONN_MAX_FDS || (nfds && !fds))
		return -EINVAL;
	for (int k = 1; k < iovcnt; k++) {
		if (iov[k].iov_len && !iov[k].iov_base)
			return -EINVAL;
		if (iov[k].iov_len > SIZE_MAX - payload)
			return -EINVAL;
		payload += iov[k].iov_len;
	}
	/* A header that lies about its size would desync the peer forever. */
	memcpy(&declared, (const uint8_t *)iov[0].iov_base + c->cfg.size_offset, sizeof(declared));
	if (declared != payload)
		return -EINVAL;
	*total_out = c->cfg.header_size + payload;
	return 0;
}

/*
 * The release contract of send_ref: @release runs exactly once. A message
 * that goes into the queue carries it (run when fully written or at
 * destroy); on every other path (written at once, or refused) it runs
 * before this returns.
 */
static int conn_send_common(struct vshm_conn *c, const struct iovec *iov, int iovcnt,
                            const int *fds, unsigned nfds, bool ref, vshm_conn_release_fn release,
                            void *release_data)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VSHM_CONN_MAX_FDS)];
	} ctrl;
	bool was_idle, zc;
	size_t total = 0, written = 0, direct = 0;
	struct out_msg *m;
	int r, direct_cnt = iovcnt;

	if (!c) {
		r = -EINVAL;
		goto out_release;
	}
	if (c->err) {
		r = c->err;
		goto out_release;
	}
	r = check_message(c, iov, iovcnt, fds, nfds, &total);
	if (r < 0)
		goto out_release;
	/* Checked up front so that a refused message leaves no trace. */
	if (total > c->cfg.max_queued || c->queued > c->cfg.max_queued - total) {
		r = -ENOBUFS;
		goto out_release;
	}

	/* Zero-copy: sendmsg() writes only what comes before the first splice segment. */
	zc = ref && splice_eligible(c, iov, iovcnt, &direct_cnt);
	for (int k = 0; k < direct_cnt; k++)
		direct += iov[k].iov_len;

	was_idle = c->out_head == NULL;
	if (was_idle) {
		struct msghdr mh = { 0 };
		ssize_t n;

		mh.msg_iov = (struct iovec *)iov;
		mh.msg_iovlen = (size_t)direct_cnt;
		set_rights(&mh, ctrl.buf, sizeof(ctrl.buf), fds, nfds);
		do {
			n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		} while (n < 0 && errno == EINTR);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				r = -errno;
				if (send_errno_is_fatal(-r))
					r = conn_fail(c, r);
				goto out_release;
			}
			n = 0;
		}
		written = (size_t)n;
		c->stats.bytes_out += written;
		if (written > 0)
			c->stats.fds_out += nfds;
		if (written == total) {
			c->stats.msgs_out++;
			r = 0;
			goto out_release;
		}
	}

	m = out_msg_new(c, iov, iovcnt, total, written, ref, zc);
	if (!m) {
		/* Part of the message is on the wire: the stream is now torn. */
		r = written ? conn_fail(c, -ENOMEM) : -ENOMEM;
		goto out_release;
	}
	m->release = release;
	m->release_data = release_data;
	if (written == 0) {
		/* The fds are borrowed; keep our own copies until they are sent. */
		for (unsigned k = 0; k < nfds; k++) {
			m->fds[k] = fcntl(fds[k], F_DUPFD_CLOEXEC, 3);
			if (m->fds[k] < 0) {
				r = -errno;
				m->nfds = k;
				out_msg_free(m); /* runs the release */
				return r;
			}
		}
		m->nfds = nfds;
	}
	if (c->out_tail)
		c->out_tail->next = m;
	else
		c->out_head = m;
	c->out_tail = m;
	c->queued += m->remaining;

	/*
	 * Queued behind earlier data, or the zero-copy part is next and the
	 * socket took everything before it: push what the socket takes now.
	 */
	if (!was_idle || (zc && written == direct)) {
		r = flush_queue(c);
		if (r < 0 && r != -EAGAIN)
			return r;
	}
	return 0;

out_release:
	if (release)
		release(release_data);
	return r;
}

VSHM_EXPORT int vshm_conn_send(struct vshm_conn *c, const struct iovec *iov, int iovcnt,
                               const int *fds, unsigned nfds)
{
	return conn_send_common(c, iov, iovcnt, fds, nfds, false, NULL, NULL);
}

VSHM_EXPORT int vshm_conn_send_ref(struct vshm_conn *c, const struct iovec *iov, int iovcnt,
                                   const int *fds, unsigned nfds, vshm_conn_release_fn release,
                                   void *release_data)
{
	return conn_send_common(c, iov, iovcnt, fds, nfds, true, release, release_data);
}

VSHM_EXPORT int vshm_conn_flush(struct vshm_conn *c)
{
	if (!c)
		return -EINVAL;
	if (c->err)
		return c->err;
	return flush_queue(c);
}

VSHM_EXPORT bool vshm_conn_wants_write(const struct vshm_conn *c)
{
	return c && c->out_head != NULL;
}

VSHM_EXPORT size_t vshm_conn_queued_bytes(const struct vshm_conn *c)
{
	return c ? c->queued : 0;
}

VSHM_EXPORT void vshm_conn_get_stats(const struct vshm_conn *c, struct vshm_conn_stats *out)
{
	if (!out)
		return;
	if (!c) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = c->stats;
}

/* Wait for @events on the conn's fd until @deadline (0 = forever). */
static int wait_fd(struct vshm_conn *c, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = c->fd, .events = events };
	int timeout = -1, r;

	if (deadline) {
		uint64_t now = vshm_now_ns();
		uint64_t ms;

		if (now >= deadline)
			return -ETIMEDOUT;
		/* Round up so a sub-millisecond rest does not spin with timeout 0. */
		ms = (deadline - now + 999999) / 1000000;
		timeout = ms > INT_MAX ? INT_MAX : (int)ms;
	}
	r = poll(&p, 1, timeout);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (r == 0)
		return deadline && vshm_now_ns() >= deadline ? -ETIMEDOUT : 0;
	return 0;
}

static uint64_t deadline_from(int timeout_ms)
{
	if (timeout_ms < 0)
		return 0;
	return vshm_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

VSHM_EXPORT int vshm_conn_recv_timeout(struct vshm_conn *c, struct vshm_conn_msg *msg,
                                       int timeout_ms)
{
	uint64_t deadline = deadline_from(timeout_ms);

	for (;;) {
		int r = vshm_conn_recv(c, msg);
		if (r != -EAGAIN)
			return r;
		r = wait_fd(c, POLLIN, deadline);
		if (r < 0)
			return r;
	}
}

VSHM_EXPORT int vshm_conn_flush_timeout(struct vshm_conn *c, int timeout_ms)
{
	uint64_t deadline = deadline_from(timeout_ms);

	for (;;) {
		int r = vshm_conn_flush(c);
		if (r != -EAGAIN)
			return r;
		r = wait_fd(c, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
}
