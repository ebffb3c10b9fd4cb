/* SPDX-License-Identifier: MIT */
/*
 * test-conn.c - framing, fd passing, partial I/O, bounds and send_ref
 * semantics of vshm_conn, plus the AF_UNIX helpers.
 *
 * Most tests pair a conn with a raw socket so the "peer" can misbehave in
 * ways a conn never would (torn headers, lying sizes, too many fds).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vshm/conn.h>
#include <vshm/loop.h>

#include "test-runner.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

/* A vhost-user-like header: u32 request, u32 flags, u32 size. */
struct hdr {
	uint32_t request, flags, size;
};

static const struct vshm_conn_config test_cfg = {
	.header_size = sizeof(struct hdr),
	.size_offset = 8,
	.max_payload = 256 * 1024,
	.max_fds = 8,
	.max_queued = 8 * 1024 * 1024,
};

static void pair_raw(int sv[2])
{
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ? -errno : 0);
}

/* A conn on one end, a raw blocking socket on the other. */
static struct vshm_conn *conn_with_raw_peer(const struct vshm_conn_config *cfg, int *peer)
{
	struct vshm_conn *c = NULL;
	int sv[2];

	pair_raw(sv);
	CHECK_OK(vshm_conn_new(sv[0], cfg, &c));
	*peer = sv[1];
	return c;
}

static void conn_pair(const struct vshm_conn_config *cfg, struct vshm_conn **a,
                      struct vshm_conn **b)
{
	int sv[2];

	pair_raw(sv);
	CHECK_OK(vshm_conn_new(sv[0], cfg, a));
	CHECK_OK(vshm_conn_new(sv[1], cfg, b));
}

static int send_msg(struct vshm_conn *c, uint32_t req, const void *payload, uint32_t len,
                    const int *fds, unsigned nfds)
{
	struct hdr h = { .request = req, .flags = 0, .size = len };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };

	return vshm_conn_send(c, iov, len ? 2 : 1, fds, nfds);
}

/* Raw sendmsg from the peer side; fds ride on the first byte of @buf. */
static void raw_send(int fd, const void *buf, size_t len, const int *fds, unsigned nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 32)];
	} ctrl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	CHECK(nfds <= 32);
	if (nfds) {
		struct cmsghdr *cm;
		memset(&ctrl, 0, sizeof(ctrl));
		mh.msg_control = ctrl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	CHECK_EQ(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

static void make_pipe(int p[2])
{
	CHECK_OK(pipe2(p, O_CLOEXEC) < 0 ? -errno : 0);
}

/* A memfd holding @tag, so a received fd can be matched to its message. */
static int tagged_fd(uint32_t tag)
{
	int fd = memfd_create("vshm-test", MFD_CLOEXEC);

	CHECK(fd >= 0);
	CHECK_EQ(pwrite(fd, &tag, sizeof(tag), 0), sizeof(tag));
	return fd;
}

static uint32_t fd_tag(int fd)
{
	uint32_t tag = 0;

	CHECK_EQ(pread(fd, &tag, sizeof(tag), 0), sizeof(tag));
	return tag;
}

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t k = 0; k < n; k++)
		p[k] = (uint8_t)(seed * 131u + k * 7u);
}

static bool check_pattern(const uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t k = 0; k < n; k++)
		if (p[k] != (uint8_t)(seed * 131u + k * 7u))
			return false;
	return true;
}

static void set_small_buffers(int fd)
{
	int sz = 4096;

	/* The kernel doubles and clamps this to its minimum; small is all we need. */
	CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)));
	CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)));
}

TEST(conn_new_rejects_bad_config_and_closes_fd)
{
	struct vshm_conn_config cfg = test_cfg;
	struct vshm_conn *c = NULL;
	int base = vshm_test_count_fds();
	int sv[2];

	pair_raw(sv);
	cfg.size_offset = 9; /* u32 would run past the 12-byte header */
	CHECK_EQ(vshm_conn_new(sv[0], &cfg, &c), -EINVAL);
	CHECK(c == NULL);
	/* Ownership passed even on failure: sv[0] is closed now. */
	CHECK_EQ(fcntl(sv[0], F_GETFD), -1);
	CHECK_EQ(errno, EBADF);
	close(sv[1]);
	CHECK_EQ(vshm_test_count_fds(), base);

	cfg = test_cfg;
	cfg.header_size = 2;
	pair_raw(sv);
	CHECK_EQ(vshm_conn_new(sv[0], &cfg, &c), -EINVAL);
	close(sv[1]);

	cfg = test_cfg;
	cfg.max_fds = VSHM_CONN_MAX_FDS + 1;
	pair_raw(sv);
	CHECK_EQ(vshm_conn_new(sv[0], &cfg, &c), -EINVAL);
	close(sv[1]);

	/* Datagram sockets have no stream framing to offer. */
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
	CHECK_EQ(vshm_conn_new(sv[0], &test_cfg, &c), -EINVAL);
	close(sv[1]);
	CHECK_EQ(vshm_test_count_fds(), base);
}

TEST(conn_new_sets_nonblock_cloexec)
{
	struct vshm_conn *c = NULL;
	int sv[2];

	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_OK(vshm_conn_new(sv[0], &test_cfg, &c));
	CHECK_EQ(vshm_conn_get_fd(c), sv[0]);
	CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	CHECK(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
	vshm_conn_destroy(c);
	vshm_conn_destroy(NULL);
	close(sv[1]);
}

TEST(conn_roundtrip_with_fds)
{
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	struct vshm_conn_stats st;
	const struct hdr *h;
	int p[2], tfd, rfd;
	char buf[8];
	const char payload[] = "hello, peer";

	conn_pair(&test_cfg, &a, &b);
	make_pipe(p);
	tfd = tagged_fd(77);
	int fds[2] = { p[1], tfd };

	CHECK_OK(send_msg(a, 5, payload, sizeof(payload), fds, 2));
	CHECK(!vshm_conn_wants_write(a));
	/* Borrowed: our copies are still ours to use and close. */
	close(p[1]);
	close(tfd);

	CHECK_EQ(vshm_conn_recv(b, &msg), 0);
	h = (const struct hdr *)msg.hdr;
	CHECK_EQ(h->request, 5);
	CHECK_EQ(h->size, sizeof(payload));
	CHECK_EQ(msg.payload_size, sizeof(payload));
	CHECK_MEM_EQ(msg.payload, payload, sizeof(payload));
	CHECK_EQ(msg.nfds, 2);
	for (unsigned k = 2; k < VSHM_CONN_MAX_FDS; k++)
		CHECK_EQ(msg.fds[k], -1);
	/* The fds arrived close-on-exec and work. */
	CHECK(fcntl(msg.fds[0], F_GETFD) & FD_CLOEXEC);
	CHECK(fcntl(msg.fds[1], F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(write(msg.fds[0], "ping", 4), 4);
	CHECK_EQ(read(p[0], buf, 4), 4);
	CHECK_MEM_EQ(buf, "ping", 4);
	CHECK_EQ(fd_tag(msg.fds[1]), 77);

	/* Taking one fd, closing the rest through the helper. */
	rfd = msg.fds[1];
	msg.fds[1] = -1;
	vshm_conn_msg_close_fds(&msg);
	CHECK_EQ(msg.fds[0], -1);
	close(rfd);

	CHECK_EQ(vshm_conn_recv(b, &msg), -EAGAIN);

	vshm_conn_get_stats(a, &st);
	CHECK_EQ(st.msgs_out, 1);
	CHECK_EQ(st.bytes_out, sizeof(struct hdr) + sizeof(payload));
	CHECK_EQ(st.fds_out, 2);
	CHECK_EQ(st.bytes_copied, 0);
	vshm_conn_get_stats(b, &st);
	CHECK_EQ(st.msgs_in, 1);
	CHECK_EQ(st.bytes_in, sizeof(struct hdr) + sizeof(payload));
	CHECK_EQ(st.fds_in, 2);
	CHECK_EQ(st.fds_closed, 0);

	vshm_conn_destroy(a);
	vshm_conn_destroy(b);
	close(p[0]);
}

TEST(conn_fds_stay_with_their_message)
{
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	int t1 = tagged_fd(1), t3 = tagged_fd(3);
	uint32_t v = 0;

	conn_pair(&test_cfg, &a, &b);
	/*
	 * Three messages in the socket before the receiver reads; a receiver
	 * that read ahead would see fds of message 3 while reading message 2.
	 */
	CHECK_OK(send_msg(a, 1, &v, sizeof(v), &t1, 1));
	CHECK_OK(send_msg(a, 2, &v, sizeof(v), NULL, 0));
	CHECK_OK(send_msg(a, 3, NULL, 0, &t3, 1));
	close(t1);
	close(t3);

	CHECK_OK(vshm_conn_recv(b, &msg));
	CHECK_EQ(((const struct hdr *)msg.hdr)->request, 1);
	CHECK_EQ(msg.nfds, 1);
	CHECK_EQ(fd_tag(msg.fds[0]), 1);
	vshm_conn_msg_close_fds(&msg);

	CHECK_OK(vshm_conn_recv(b, &msg));
	CHECK_EQ(((const struct hdr *)msg.hdr)->request, 2);
	CHECK_EQ(msg.nfds, 0);

	CHECK_OK(vshm_conn_recv(b, &msg));
	CHECK_EQ(((const struct hdr *)msg.hdr)->request, 3);
	CHECK_EQ(msg.payload_size, 0);
	CHECK_EQ(msg.nfds, 1);
	CHECK_EQ(fd_tag(msg.fds[0]), 3);
	vshm_conn_msg_close_fds(&msg);

	vshm_conn_destroy(a);
	vshm_conn_destroy(b);
}

TEST(conn_unclaimed_fds_of_a_returned_message_are_callers)
{
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	int t = tagged_fd(9), kept;

	conn_pair(&test_cfg, &a, &b);
	CHECK_OK(send_msg(a, 1, NULL, 0, &t, 1));
	close(t);
	CHECK_OK(vshm_conn_recv(b, &msg));
	kept = msg.fds[0];
	/* Neither the next recv nor destroy may close an fd handed to us. */
	CHECK_EQ(vshm_conn_recv(b, &msg), -EAGAIN);
	vshm_conn_destroy(b);
	CHECK_EQ(fd_tag(kept), 9);
	close(kept);
	vshm_conn_destroy(a);
}

TEST(conn_partial_read_one_byte_at_a_time)
{
	struct vshm_conn *c;
	struct vshm_conn_msg msg;
	uint8_t wire[sizeof(struct hdr) + 300];
	struct hdr h = { .request = 42, .flags = 4, .size = 300 };
	int peer, t = tagged_fd(5);

	c = conn_with_raw_peer(&test_cfg, &peer);
	memcpy(wire, &h, sizeof(h));
	fill_pattern(wire + sizeof(h), 300, 42);

	/* The fd goes with the first byte, as a real sender would do it. */
	raw_send(peer, wire, 1, &t, 1);
	close(t);
	for (size_t k = 1; k < sizeof(wire); k++) {
		CHECK_EQ(vshm_conn_recv(c, &msg), -EAGAIN);
		raw_send(peer, wire + k, 1, NULL, 0);
	}
	CHECK_OK(vshm_conn_recv(c, &msg));
	CHECK_EQ(((const struct hdr *)msg.hdr)->request, 42);
	CHECK_EQ(((const struct hdr *)msg.hdr)->flags, 4);
	CHECK_EQ(msg.payload_size, 300);
	CHECK(check_pattern(msg.payload, 300, 42));
	CHECK_EQ(msg.nfds, 1);
	CHECK_EQ(fd_tag(msg.fds[0]), 5);
	vshm_conn_msg_close_fds(&msg);
	CHECK_EQ(vshm_conn_recv(c, &msg), -EAGAIN);

	vshm_conn_destroy(c);
	close(peer);
}

TEST(conn_many_messages_in_one_write)
{
	struct vshm_conn *c;
	struct vshm_conn_msg msg;
	uint8_t wire[3 * sizeof(struct hdr) + 10];
	size_t off = 0;
	int peer;

	c = conn_with_raw_peer(&test_cfg, &peer);
	for (uint32_t k = 0; k < 3; k++) {
		struct hdr h = { .request = k, .size = k == 1 ? 10 : 0 };
		memcpy(wire + off, &h, sizeof(h));
		off += sizeof(h);
		if (k == 1) {
			memset(wire + off, 0xab, 10);
			off += 10;
		}
	}
	raw_send(peer, wire, off, NULL, 0);
	/* Everything buffered is returned before EOF is reported. */
	close(peer);
	for (uint32_t k = 0; k < 3; k++) {
		CHECK_OK(vshm_conn_recv(c, &msg));
		CHECK_EQ(((const struct hdr *)msg.hdr)->request, k);
		CHECK_EQ(msg.payload_size, k == 1 ? 10 : 0);
	}
	CHECK_EQ(vshm_conn_recv(c, &msg), -EPIPE);
	vshm_conn_destroy(c);
}

TEST(conn_max_payload_accepted_and_buffer_grows)
{
	struct vshm_conn_config cfg = test_cfg;
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	uint8_t *big;
	int n = 0;

	cfg.max_payload = 100000;
	conn_pair(&cfg, &a, &b);
	big = malloc(cfg.max_payload);
	CHECK(big);
	fill_pattern(big, cfg.max_payload, 3);
	CHECK_OK(send_msg(a, 1, big, cfg.max_payload, NULL, 0));
	for (;;) {
		int r = vshm_conn_recv(b, &msg);
		if (r == 0)
			break;
		CHECK_EQ(r, -EAGAIN);
		r = vshm_conn_flush(a);
		CHECK(r == 0 || r == -EAGAIN);
		CHECK(++n < 100000);
	}
	CHECK_EQ(msg.payload_size, cfg.max_payload);
	CHECK(check_pattern(msg.payload, cfg.max_payload, 3));
	free(big);
	vshm_conn_destroy(a);
	vshm_conn_destroy(b);
}

/* Cap the address space so that a multi-GiB allocation would fail loudly. */
static void limit_address_space(void)
{
#ifndef TEST_ASAN
	unsigned long pages = 0;
	struct rlimit rl;
	FILE *f = fopen("/proc/self/statm", "r");

	CHECK(f);
	CHECK_EQ(fscanf(f, "%lu", &pages), 1);
	fclose(f);
	rl.rlim_cur = rl.rlim_max = pages * (unsigned long)sysconf(_SC_PAGESIZE) + (256ul << 20);
	CHECK_OK(setrlimit(RLIMIT_AS, &rl));
#endif
}

TEST(conn_oversized_size_rejected_before_allocating)
{
	struct vshm_conn *c;
	struct vshm_conn_msg msg;
	struct vshm_conn_stats st;
	struct hdr h = { .request = 1, .size = 0xf0000000u };
	int peer, base, t[2];

	c = conn_with_raw_peer(&test_cfg, &peer);
	base = vshm_test_count_fds();
	t[0] = tagged_fd(1);
	t[1] = tagged_fd(2);
	raw_send(peer, &h, sizeof(h), t, 2);
	close(t[0]);
	close(t[1]);

	/*
	 * A conn that sized its buffer from the header before checking it
	 * would fail this allocation (-ENOMEM) instead of reporting the
	 * framing error.
	 */
	limit_address_space();
	CHECK_EQ(vshm_conn_recv(c, &msg), -EMSGSIZE);
	/* The rejected message's fds are closed, and the error is sticky. */
	CHECK_EQ(vshm_test_count_fds(), base);
	CHECK_EQ(vshm_conn_recv(c, &msg), -EMSGSIZE);
	vshm_conn_get_stats(c, &st);
	CHECK_EQ(st.fds_in, 2);
	CHECK_EQ(st.fds_closed, 2);
	CHECK_EQ(st.msgs_in, 0);
	/* Sending on a broken conn reports the same error. */
	CHECK_EQ(send_msg(c, 1, NULL, 0, NULL, 0), -EMSGSIZE);
	vshm_conn_destroy(c);
	close(peer);
}

TEST(conn_too_many_fds_closes_all)
{
	struct vshm_conn_config cfg = test_cfg;
	struct vshm_conn *c;
	struct vshm_conn_msg msg;
	struct vshm_conn_stats st;
	struct hdr h = { .request = 1, .size = 0 };
	int peer, base, t[3];

	cfg.max_fds = 2;
	c = conn_with_raw_peer(&cfg, &peer);
	base = vshm_test_count_fds();
	for (int k = 0; k < 3; k++)
		t[k] = tagged_fd((uint32_t)k);
	raw_send(peer, &h, sizeof(h), t, 3);
	for (int k = 0; k < 3; k++)
		close(t[k]);
	CHECK_EQ(vshm_conn_recv(c, &msg), -EPROTO);
	CHECK_EQ(vshm_test_count_fds(), base);
	vshm_conn_get_stats(c, &st);
	CHECK_EQ(st.fds_in, 3);
	CHECK_EQ(st.fds_closed, 3);
	CHECK_EQ(vshm_conn_recv(c, &msg), -EPROTO);
	vshm_conn_destroy(c);
	close(peer);
}

TEST(conn_truncated_control_data_is_eproto)
{
	struct vshm_conn_config cfg = test_cfg;
	struct vshm_conn *c;
	struct vshm_conn_msg msg;
	struct hdr h = { .request = 1, .size = 0 };
	int peer, base, t[24];

	/* More fds than the receive control buffer has room for: MSG_CTRUNC. */
	cfg.max_fds = VSHM_CONN_MAX_FDS;
	c = conn_with_raw_peer(&cfg, &peer);
	base = vshm_test_count_fds();
	for (int k = 0; k < 24; k++)
		t[k] = tagged_fd((uint32_t)k);
	raw_send(peer, &h, sizeof(h), t, 24);
	for (int k = 0; k < 24; k++)
		close(t[k]);
	CHECK_EQ(vshm_conn_recv(c, &msg), -EPROTO);
	CHECK_EQ(vshm_test_count_fds(), base);
	vshm_conn_destroy(c);
	close(peer);
}

TEST(conn_eof_at_boundary_is_epipe)
{
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;

	conn_pair(&test_cfg, &a, &b);
	CHECK_EQ(vshm_conn_recv(b, &msg), -EAGAIN);
	CHECK_OK(send_msg(a, 1, "x", 1, NULL, 0));
	vshm_conn_destroy(a);
	CHECK_OK(vshm_conn_recv(b, &msg));
	CHECK_EQ(vshm_conn_recv(b, &msg), -EPIPE);
	CHECK_EQ(vshm_conn_recv(b, &msg), -EPIPE);
	vshm_conn_destroy(b);
}

TEST(conn_eof_mid_header_is_error)
{
	struct vshm_conn *c;
	struct vshm_conn_msg msg;
	struct hdr h = { .request = 1, .size = 4 };
	int peer, base, t, r;

	c = conn_with_raw_peer(&test_cfg, &peer);
	t = tagged_fd(1);
	raw_send(peer, &h, 5, &t, 1);
	close(t);
	close(peer);
	base = vshm_test_count_fds();
	r = vshm_conn_recv(c, &msg);
	CHECK(r == -ECONNRESET || r == -EIO);
	/* The fd of the torn message is closed, not leaked. */
	CHECK_EQ(vshm_test_count_fds(), base);
	vshm_conn_destroy(c);
}

TEST(conn_eof_mid_payload_is_error)
{
	struct vshm_conn *c;
	struct vshm_conn_msg msg;
	uint8_t wire[sizeof(struct hdr) + 2];
	struct hdr h = { .request = 1, .size = 100 };
	int peer, r;

	c = conn_with_raw_peer(&test_cfg, &peer);
	memcpy(wire, &h, sizeof(h));
	wire[sizeof(h)] = 1;
	wire[sizeof(h) + 1] = 2;
	raw_send(peer, wire, sizeof(wire), NULL, 0);
	CHECK_EQ(vshm_conn_recv(c, &msg), -EAGAIN);
	close(peer);
	r = vshm_conn_recv(c, &msg);
	CHECK(r == -ECONNRESET || r == -EIO);
	vshm_conn_destroy(c);
}

TEST(conn_send_validates_message)
{
	struct vshm_conn *c;
	struct hdr h = { .request = 1, .size = 3 };
	struct iovec iov[2] = { { &h, sizeof(h) }, { "abcd", 4 } };
	int peer, fds[VSHM_CONN_MAX_FDS + 1] = { 0 };

	c = conn_with_raw_peer(&test_cfg, &peer);
	/* Header says 3, payload is 4. */
	CHECK_EQ(vshm_conn_send(c, iov, 2, NULL, 0), -EINVAL);
	/* iov[0] must be exactly the header. */
	iov[0].iov_len = 8;
	h.size = 4;
	CHECK_EQ(vshm_conn_send(c, iov, 2, NULL, 0), -EINVAL);
	iov[0].iov_len = sizeof(h);
	CHECK_EQ(vshm_conn_send(c, iov, 0, NULL, 0), -EINVAL);
	CHECK_EQ(vshm_conn_send(c, iov, 2, fds, VSHM_CONN_MAX_FDS + 1), -EINVAL);
	CHECK_EQ(vshm_conn_send(c, iov, 2, NULL, 1), -EINVAL);
	/* None of that broke the conn. */
	CHECK_OK(vshm_conn_send(c, iov, 2, NULL, 0));
	vshm_conn_destroy(c);
	close(peer);
}

TEST(conn_send_to_closed_peer_is_epipe_without_sigpipe)
{
	struct vshm_conn *c;
	int peer, r;

	/* Without MSG_NOSIGNAL the default SIGPIPE action kills this test. */
	signal(SIGPIPE, SIG_DFL);
	c = conn_with_raw_peer(&test_cfg, &peer);
	close(peer);
	r = send_msg(c, 1, "x", 1, NULL, 0);
	CHECK(r == -EPIPE || r == -ECONNRESET);
	CHECK_EQ(send_msg(c, 1, "x", 1, NULL, 0), r);
	vshm_conn_destroy(c);
}

#define BIG_PAYLOAD (32 * 1024)
#define N_BIG       16

TEST(conn_partial_writes_queue_and_drain)
{
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	struct vshm_conn_stats st;
	uint8_t *payload = malloc(BIG_PAYLOAD);
	unsigned got = 0, spins = 0;

	CHECK(payload);
	conn_pair(&test_cfg, &a, &b);
	set_small_buffers(vshm_conn_get_fd(a));
	set_small_buffers(vshm_conn_get_fd(b));

	for (uint32_t k = 0; k < N_BIG; k++) {
		int t = tagged_fd(k);
		fill_pattern(payload, BIG_PAYLOAD, k);
		CHECK_OK(send_msg(a, k, payload, BIG_PAYLOAD, &t, 1));
		/* The queue copied what it kept; scribbling now must not matter. */
		memset(payload, 0xee, BIG_PAYLOAD);
		close(t);
	}
	CHECK(vshm_conn_wants_write(a));
	CHECK(vshm_conn_queued_bytes(a) > 0);
	vshm_conn_get_stats(a, &st);
	CHECK(st.bytes_copied > 0);
	/* Only payload bytes count as copied, never more than was sent. */
	CHECK(st.bytes_copied <= (uint64_t)N_BIG * BIG_PAYLOAD);
	CHECK(st.msgs_out < N_BIG);

	while (got < N_BIG) {
		int r = vshm_conn_recv(b, &msg);
		if (r == 0) {
			const struct hdr *h = (const struct hdr *)msg.hdr;
			CHECK_EQ(h->request, got);
			CHECK_EQ(msg.payload_size, BIG_PAYLOAD);
			CHECK(check_pattern(msg.payload, BIG_PAYLOAD, got));
			CHECK_EQ(msg.nfds, 1);
			CHECK_EQ(fd_tag(msg.fds[0]), got);
			vshm_conn_msg_close_fds(&msg);
			got++;
			continue;
		}
		CHECK_EQ(r, -EAGAIN);
		r = vshm_conn_flush(a);
		CHECK(r == 0 || r == -EAGAIN);
		CHECK(++spins < 1000000);
	}
	CHECK_OK(vshm_conn_flush(a));
	CHECK(!vshm_conn_wants_write(a));
	CHECK_EQ(vshm_conn_queued_bytes(a), 0);
	vshm_conn_get_stats(a, &st);
	CHECK_EQ(st.msgs_out, N_BIG);
	CHECK_EQ(st.fds_out, N_BIG);
	CHECK_EQ(st.bytes_out, (uint64_t)N_BIG * (sizeof(struct hdr) + BIG_PAYLOAD));
	free(payload);
	vshm_conn_destroy(a);
	vshm_conn_destroy(b);
}

/* Send until the conn starts queueing; returns the number of messages sent. */
static unsigned fill_until_queued(struct vshm_conn *c, const uint8_t *payload, uint32_t len)
{
	unsigned n = 0;

	while (!vshm_conn_wants_write(c)) {
		CHECK_OK(send_msg(c, n, payload, len, NULL, 0));
		CHECK(++n < 100000);
	}
	return n;
}

TEST(conn_out_queue_bound_enobufs)
{
	struct vshm_conn_config cfg = test_cfg;
	struct vshm_conn *c;
	uint8_t payload[4096] = { 0 };
	size_t before;
	int peer, r, t = tagged_fd(1), base;

	cfg.max_queued = 64 * 1024;
	c = conn_with_raw_peer(&cfg, &peer);
	set_small_buffers(vshm_conn_get_fd(c));

	fill_until_queued(c, payload, sizeof(payload));
	for (;;) {
		before = vshm_conn_queued_bytes(c);
		r = send_msg(c, 0, payload, sizeof(payload), NULL, 0);
		if (r == -ENOBUFS)
			break;
		CHECK_OK(r);
		CHECK(vshm_conn_queued_bytes(c) <= cfg.max_queued);
	}
	/* Refused: nothing queued, and the fds were not dup'ed. */
	base = vshm_test_count_fds();
	CHECK_EQ(send_msg(c, 0, payload, sizeof(payload), &t, 1), -ENOBUFS);
	CHECK_EQ(vshm_conn_queued_bytes(c), before);
	CHECK_EQ(vshm_test_count_fds(), base);
	CHECK(before + sizeof(struct hdr) + sizeof(payload) > cfg.max_queued);
	/* A small message that still fits is fine: the conn is not broken. */
	CHECK_OK(send_msg(c, 0, NULL, 0, NULL, 0));
	close(t);
	vshm_conn_destroy(c);
	close(peer);
}

TEST(conn_message_larger_than_queue_bound)
{
	struct vshm_conn_config cfg = test_cfg;
	struct vshm_conn *c;
	uint8_t payload[2048] = { 0 };
	int peer;

	cfg.max_queued = 1024;
	c = conn_with_raw_peer(&cfg, &peer);
	CHECK_EQ(send_msg(c, 0, payload, sizeof(payload), NULL, 0), -ENOBUFS);
	CHECK_EQ(vshm_conn_queued_bytes(c), 0);
	CHECK_OK(send_msg(c, 0, payload, 512, NULL, 0));
	vshm_conn_destroy(c);
	close(peer);
}

static void count_release(void *data)
{
	(*(int *)data)++;
}

static int send_ref_msg(struct vshm_conn *c, uint32_t req, const void *payload, uint32_t len,
                        int *counter)
{
	struct hdr h = { .request = req, .size = len };
	struct iovec iov[3] = {
		{ &h, sizeof(h) },
		{ (void *)payload, len / 2 },
		{ (uint8_t *)payload + len / 2, len - len / 2 },
	};

	return vshm_conn_send_ref(c, iov, 3, NULL, 0, count_release, counter);
}

TEST(conn_send_ref_written_at_once)
{
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	struct vshm_conn_stats st;
	uint8_t payload[256];
	int released = 0;

	conn_pair(&test_cfg, &a, &b);
	fill_pattern(payload, sizeof(payload), 1);
	CHECK_OK(send_ref_msg(a, 1, payload, sizeof(payload), &released));
	CHECK_EQ(released, 1);
	CHECK(!vshm_conn_wants_write(a));
	vshm_conn_get_stats(a, &st);
	CHECK_EQ(st.bytes_copied, 0);
	CHECK_OK(vshm_conn_recv(b, &msg));
	CHECK(check_pattern(msg.payload, sizeof(payload), 1));
	vshm_conn_destroy(a);
	vshm_conn_destroy(b);
	CHECK_EQ(released, 1);
}

TEST(conn_send_ref_queued_released_after_flush)
{
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	struct vshm_conn_stats st0, st1;
	uint8_t filler[4096] = { 0 };
	uint8_t *payload = malloc(BIG_PAYLOAD);
	unsigned nfill, got = 0, spins = 0;
	int released = 0;

	CHECK(payload);
	conn_pair(&test_cfg, &a, &b);
	set_small_buffers(vshm_conn_get_fd(a));
	set_small_buffers(vshm_conn_get_fd(b));
	nfill = fill_until_queued(a, filler, sizeof(filler));

	vshm_conn_get_stats(a, &st0);
	fill_pattern(payload, BIG_PAYLOAD, 7);
	CHECK_OK(send_ref_msg(a, 999, payload, BIG_PAYLOAD, &released));
	CHECK_EQ(released, 0);
	vshm_conn_get_stats(a, &st1);
	/* Referenced, not copied. */
	CHECK_EQ(st1.bytes_copied, st0.bytes_copied);
	/* Proof of reference: a change made now is what the peer receives. */
	fill_pattern(payload, BIG_PAYLOAD, 8);

	for (;;) {
		int r = vshm_conn_recv(b, &msg);
		if (r == 0) {
			if (got++ < nfill)
				continue;
			CHECK_EQ(((const struct hdr *)msg.hdr)->request, 999);
			CHECK(check_pattern(msg.payload, BIG_PAYLOAD, 8));
			break;
		}
		CHECK_EQ(r, -EAGAIN);
		r = vshm_conn_flush(a);
		CHECK(r == 0 || r == -EAGAIN);
		CHECK(++spins < 1000000);
	}
	CHECK_EQ(released, 1);
	CHECK_OK(vshm_conn_flush(a));
	vshm_conn_destroy(a);
	vshm_conn_destroy(b);
	CHECK_EQ(released, 1);
	free(payload);
}

TEST(conn_send_ref_queued_released_on_destroy)
{
	struct vshm_conn *c;
	uint8_t filler[4096] = { 0 };
	uint8_t payload[8192] = { 0 };
	int peer, released = 0;

	c = conn_with_raw_peer(&test_cfg, &peer);
	set_small_buffers(vshm_conn_get_fd(c));
	fill_until_queued(c, filler, sizeof(filler));
	CHECK_OK(send_ref_msg(c, 1, payload, sizeof(payload), &released));
	CHECK_EQ(released, 0);
	vshm_conn_destroy(c);
	CHECK_EQ(released, 1);
	close(peer);
}

TEST(conn_send_ref_refused_releases_once)
{
	struct vshm_conn_config cfg = test_cfg;
	struct vshm_conn *c;
	uint8_t payload[2048] = { 0 };
	int peer, released = 0;

	cfg.max_queued = 1024;
	c = conn_with_raw_peer(&cfg, &peer);
	CHECK_EQ(send_ref_msg(c, 1, payload, sizeof(payload), &released), -ENOBUFS);
	CHECK_EQ(released, 1);
	vshm_conn_destroy(c);
	CHECK_EQ(released, 1);
	close(peer);
}

TEST(conn_send_ref_on_dead_conn_releases_once)
{
	struct vshm_conn *c;
	uint8_t payload[64] = { 0 };
	int peer, released = 0, r;

	c = conn_with_raw_peer(&test_cfg, &peer);
	close(peer);
	r = send_ref_msg(c, 1, payload, sizeof(payload), &released);
	CHECK(r == -EPIPE || r == -ECONNRESET);
	CHECK_EQ(released, 1);
	vshm_conn_destroy(c);
	CHECK_EQ(released, 1);
}

TEST(conn_recv_timeout)
{
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	uint64_t t0;

	conn_pair(&test_cfg, &a, &b);
	t0 = vshm_now_ns();
	CHECK_EQ(vshm_conn_recv_timeout(b, &msg, 50), -ETIMEDOUT);
	CHECK(vshm_now_ns() - t0 >= 45 * 1000000ull);
	CHECK_OK(send_msg(a, 3, "abc", 3, NULL, 0));
	CHECK_OK(vshm_conn_recv_timeout(b, &msg, 1000));
	CHECK_EQ(((const struct hdr *)msg.hdr)->request, 3);
	vshm_conn_destroy(a);
	CHECK_EQ(vshm_conn_recv_timeout(b, &msg, 1000), -EPIPE);
	vshm_conn_destroy(b);
}

TEST(conn_flush_timeout)
{
	struct vshm_conn *c;
	uint8_t filler[4096] = { 0 };
	uint8_t sink[65536];
	int peer, r, spins = 0;

	c = conn_with_raw_peer(&test_cfg, &peer);
	set_small_buffers(vshm_conn_get_fd(c));
	fill_until_queued(c, filler, sizeof(filler));
	fill_until_queued(c, filler, sizeof(filler));
	/* Nobody reads: the queue cannot drain. */
	for (int k = 0; k < 8; k++)
		CHECK_OK(send_msg(c, 0, filler, sizeof(filler), NULL, 0));
	CHECK_EQ(vshm_conn_flush_timeout(c, 30), -ETIMEDOUT);
	CHECK(vshm_conn_wants_write(c));

	/* Now the peer drains; each bounded wait makes progress. */
	fcntl(peer, F_SETFL, O_NONBLOCK);
	do {
		while (read(peer, sink, sizeof(sink)) > 0)
			;
		r = vshm_conn_flush_timeout(c, 10);
		CHECK(r == 0 || r == -ETIMEDOUT);
		CHECK(++spins < 100000);
	} while (r != 0);
	CHECK(!vshm_conn_wants_write(c));
	vshm_conn_destroy(c);
	close(peer);
}

static void tmp_socket_dir(char *dir, size_t n)
{
	const char *base = getenv("TMPDIR");

	snprintf(dir, n, "%s/vshm-test-XXXXXX", base && base[0] ? base : "/tmp");
	CHECK(mkdtemp(dir) != NULL);
}

TEST(unix_listen_accept_connect)
{
	char dir[128], path[192];
	struct vshm_conn *srv, *cli;
	struct vshm_conn_msg msg;
	int lfd, cfd, afd;

	tmp_socket_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	CHECK_OK(vshm_unix_listen(path, 4, &lfd));
	CHECK(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
	CHECK_OK(vshm_unix_connect(path, &cfd));
	CHECK(fcntl(cfd, F_GETFD) & FD_CLOEXEC);
	CHECK_OK(vshm_unix_accept(lfd, &afd));
	CHECK(fcntl(afd, F_GETFD) & FD_CLOEXEC);

	CHECK_OK(vshm_conn_new(afd, &test_cfg, &srv));
	CHECK_OK(vshm_conn_new(cfd, &test_cfg, &cli));
	CHECK_OK(send_msg(cli, 11, "hi", 2, NULL, 0));
	CHECK_OK(vshm_conn_recv_timeout(srv, &msg, 1000));
	CHECK_EQ(((const struct hdr *)msg.hdr)->request, 11);
	CHECK_MEM_EQ(msg.payload, "hi", 2);
	vshm_conn_destroy(srv);
	vshm_conn_destroy(cli);
	close(lfd);

	/* The socket file is left behind; listening again replaces it. */
	CHECK_OK(vshm_unix_listen(path, 1, &lfd));
	close(lfd);
	unlink(path);
	rmdir(dir);
}

TEST(unix_socket_errors)
{
	char dir[128], path[192], longpath[200];
	int fd = -1, f;

	tmp_socket_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/none", dir);
	CHECK_EQ(vshm_unix_connect(path, &fd), -ENOENT);
	CHECK_EQ(fd, -1);

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	CHECK_EQ(vshm_unix_listen(longpath, 1, &fd), -ENAMETOOLONG);
	CHECK_EQ(vshm_unix_connect(longpath, &fd), -ENAMETOOLONG);

	/* A regular file in the way is never deleted. */
	snprintf(path, sizeof(path), "%s/file", dir);
	f = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CHECK(f >= 0);
	close(f);
	CHECK_EQ(vshm_unix_listen(path, 1, &fd), -EADDRINUSE);
	CHECK_OK(access(path, F_OK));
	unlink(path);
	rmdir(dir);

	CHECK_EQ(vshm_unix_accept(-1, &fd), -EINVAL);
}

/* ---- zero-copy send of referenced payloads (VSHM_CONN_F_SPLICE_REF) ---- */

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "conn_splice.h"

#define ZC_BIG (8u * 1024 * 1024 + 1237) /* 8 MiB and an odd tail */

static const struct vshm_conn_config zc_cfg = {
	.header_size = sizeof(struct hdr),
	.size_offset = 8,
	.max_payload = 16 * 1024 * 1024,
	.max_fds = 8,
	.max_queued = 64 * 1024 * 1024,
	.flags = VSHM_CONN_F_SPLICE_REF,
};

/* Anonymous pages for a referenced payload, unmapped by zc_free(). */
static uint8_t *zc_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(p != MAP_FAILED);
	return p;
}

static void zc_free(void *p, size_t len)
{
	CHECK_OK(munmap(p, len));
}

/*
 * A referenced message as the GPU daemon sends one: header, a small
 * per-message struct (sendmsg), then the pixels in two parts (spliced).
 */
static int zc_send(struct vshm_conn *c, uint32_t req, const uint8_t *payload, size_t len,
                   const int *fds, unsigned nfds, int *released)
{
	struct hdr h = { .request = req, .size = (uint32_t)(sizeof(uint32_t) + len) };
	/* Referenced like the pixels, so it must outlive a queued message. */
	static uint32_t metas[64];
	uint32_t *meta = &metas[req % 64];
	size_t first = len / 3 + 1;
	struct iovec iov[4] = {
		{ &h, sizeof(h) },
		{ meta, sizeof(*meta) },
		{ (void *)payload, first },
		{ (void *)(payload + first), len - first },
	};

	*meta = req ^ 0xa5a5a5a5u;
	return vshm_conn_send_ref(c, iov, 4, fds, nfds, count_release, released);
}

static bool zc_check_msg(const struct vshm_conn_msg *msg, uint32_t req, size_t len)
{
	uint32_t meta;

	if (((const struct hdr *)msg->hdr)->request != req ||
	    msg->payload_size != sizeof(uint32_t) + len)
		return false;
	memcpy(&meta, msg->payload, sizeof(meta));
	return meta == (req ^ 0xa5a5a5a5u) && check_pattern(msg->payload + sizeof(meta), len, req);
}

/* Receive one message on @b, flushing @a whenever @b has nothing. */
static void zc_recv_flushing(struct vshm_conn *a, struct vshm_conn *b, struct vshm_conn_msg *msg)
{
	unsigned spins = 0;

	for (;;) {
		int r = vshm_conn_recv(b, msg);

		if (r == 0)
			return;
		CHECK_EQ(r, -EAGAIN);
		r = vshm_conn_flush(a);
		CHECK(r == 0 || r == -EAGAIN);
		CHECK(++spins < 10000000);
	}
}

TEST(conn_splice_large_ref_payload_byte_exact)
{
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	struct vshm_conn_stats st;
	size_t map_len = ZC_BIG + 2 * 4096;
	uint8_t *map = zc_alloc(map_len);
	uint8_t *payload = map + 123; /* not page-aligned */
	int released = 0;

	fill_pattern(payload, ZC_BIG, 5);
	conn_pair(&zc_cfg, &a, &b);
	CHECK_OK(zc_send(a, 5, payload, ZC_BIG, NULL, 0, &released));
	zc_recv_flushing(a, b, &msg);
	CHECK(zc_check_msg(&msg, 5, ZC_BIG));
	CHECK_EQ(msg.nfds, 0);
	/* Everything is in the socket, so the release has run, once. */
	CHECK_EQ(released, 1);
	CHECK(!vshm_conn_wants_write(a));
	CHECK_EQ(vshm_conn_queued_bytes(a), 0);
	vshm_conn_get_stats(a, &st);
	CHECK(conn_splice_available());
	/* The pixels went by splice, header and the small struct by sendmsg. */
	CHECK_EQ(st.bytes_spliced, ZC_BIG);
	CHECK_EQ(st.bytes_copied, 0);
	CHECK_EQ(st.bytes_out, sizeof(struct hdr) + sizeof(uint32_t) + ZC_BIG);
	CHECK_EQ(st.msgs_out, 1);
	vshm_conn_destroy(a);
	vshm_conn_destroy(b);
	CHECK_EQ(released, 1);
	zc_free(map, map_len);
}

TEST(conn_splice_small_payloads_are_not_spliced)
{
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	struct vshm_conn_stats st;
	uint8_t *payload = zc_alloc(64 * 1024);
	int released = 0;

	conn_pair(&zc_cfg, &a, &b);
	/* Under the 64 KiB message threshold: sendmsg, as without the flag. */
	fill_pattern(payload, 60 * 1024, 9);
	CHECK_OK(zc_send(a, 9, payload, 60 * 1024, NULL, 0, &released));
	zc_recv_flushing(a, b, &msg);
	CHECK(zc_check_msg(&msg, 9, 60 * 1024));
	CHECK_EQ(released, 1);
	/* Copied messages are never spliced, whatever their size. */
	fill_pattern(payload, 64 * 1024, 10);
	CHECK_OK(send_msg(a, 10, payload, 64 * 1024, NULL, 0));
	zc_recv_flushing(a, b, &msg);
	CHECK(check_pattern(msg.payload, 64 * 1024, 10));
	vshm_conn_get_stats(a, &st);
	CHECK_EQ(st.bytes_spliced, 0);
	vshm_conn_destroy(a);
	vshm_conn_destroy(b);
	zc_free(payload, 64 * 1024);
}

#define ZC_N   12
#define ZC_MID (256u * 1024 + 77)

TEST(conn_splice_interleaved_keeps_order_and_fds)
{
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	struct vshm_conn_stats st;
	uint8_t *bufs[ZC_N];
	uint8_t small[100];
	int released = 0, base = vshm_test_count_fds();
	unsigned got = 0;
	uint64_t spliced = 0;

	conn_pair(&zc_cfg, &a, &b);
	set_small_buffers(vshm_conn_get_fd(a));
	set_small_buffers(vshm_conn_get_fd(b));
	/*
	 * Even: large referenced (spliced) messages, every fourth with an fd.
	 * Odd: small copied ones, every other with an fd. All are queued
	 * before the peer reads anything.
	 */
	for (uint32_t k = 0; k < ZC_N; k++) {
		int t = tagged_fd(k);
		bool with_fd = (k % 4 == 0) || (k % 4 == 1);

		bufs[k] = NULL;
		if (k % 2 == 0) {
			bufs[k] = zc_alloc(ZC_MID);
			fill_pattern(bufs[k], ZC_MID, k);
			CHECK_OK(zc_send(a, k, bufs[k], ZC_MID, &t, with_fd ? 1 : 0, &released));
			spliced += ZC_MID;
		} else {
			fill_pattern(small, sizeof(small), k);
			CHECK_OK(send_msg(a, k, small, sizeof(small), &t, with_fd ? 1 : 0));
		}
		close(t);
	}
	CHECK(vshm_conn_wants_write(a));
	CHECK(released < ZC_N / 2);

	while (got < ZC_N) {
		bool with_fd = (got % 4 == 0) || (got % 4 == 1);

		zc_recv_flushing(a, b, &msg);
		if (got % 2 == 0) {
			CHECK(zc_check_msg(&msg, got, ZC_MID));
		} else {
			CHECK_EQ(((const struct hdr *)msg.hdr)->request, got);
			CHECK_EQ(msg.payload_size, sizeof(small));
			CHECK(check_pattern(msg.payload, sizeof(small), got));
		}
		CHECK_EQ(msg.nfds, with_fd ? 1 : 0);
		if (with_fd)
			CHECK_EQ(fd_tag(msg.fds[0]), got);
		vshm_conn_msg_close_fds(&msg);
		got++;
	}
	CHECK_OK(vshm_conn_flush(a));
	CHECK_EQ(released, ZC_N / 2);
	vshm_conn_get_stats(a, &st);
	CHECK_EQ(st.bytes_spliced, spliced);
	CHECK_EQ(st.msgs_out, ZC_N);
	CHECK_EQ(st.fds_out, ZC_N / 2);
	vshm_conn_destroy(a);
	vshm_conn_destroy(b);
	CHECK_EQ(released, ZC_N / 2);
	for (unsigned k = 0; k < ZC_N; k += 2)
		zc_free(bufs[k], ZC_MID);
	/* The conn's pipe is gone with it. */
	CHECK_EQ(vshm_test_count_fds(), base);
}

TEST(conn_splice_peer_not_reading_waits_then_drains)
{
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	struct vshm_conn_stats st0, st1;
	struct pollfd pfd;
	uint8_t *payload = zc_alloc(ZC_BIG);
	int released = 0, t = tagged_fd(77);

	fill_pattern(payload, ZC_BIG, 3);
	conn_pair(&zc_cfg, &a, &b);
	CHECK_OK(zc_send(a, 3, payload, ZC_BIG, NULL, 0, &released));
	/* The peer reads nothing: part is in the socket, part in the pipe. */
	CHECK(vshm_conn_wants_write(a));
	CHECK(vshm_conn_queued_bytes(a) > 0);
	CHECK_EQ(released, 0);
	vshm_conn_get_stats(a, &st0);
	CHECK(st0.bytes_spliced > 0);
	CHECK(st0.bytes_spliced < ZC_BIG);
	CHECK_EQ(vshm_conn_flush(a), -EAGAIN);
	CHECK_EQ(vshm_conn_flush(a), -EAGAIN);
	vshm_conn_get_stats(a, &st1);
	CHECK_EQ(st1.bytes_spliced, st0.bytes_spliced);
	pfd = (struct pollfd){ .fd = vshm_conn_get_fd(a), .events = POLLOUT };
	CHECK_EQ(poll(&pfd, 1, 0), 0);
	/* A small message with an fd queues behind the pipe's bytes. */
	CHECK_OK(send_msg(a, 4, "tail", 4, &t, 1));
	close(t);
	CHECK_EQ(released, 0);

	zc_recv_flushing(a, b, &msg);
	CHECK(zc_check_msg(&msg, 3, ZC_BIG));
	CHECK_EQ(msg.nfds, 0);
	CHECK_EQ(released, 1);
	zc_recv_flushing(a, b, &msg);
	CHECK_EQ(((const struct hdr *)msg.hdr)->request, 4);
	CHECK_MEM_EQ(msg.payload, "tail", 4);
	CHECK_EQ(msg.nfds, 1);
	CHECK_EQ(fd_tag(msg.fds[0]), 77);
	vshm_conn_msg_close_fds(&msg);
	CHECK_OK(vshm_conn_flush(a));
	CHECK(!vshm_conn_wants_write(a));
	vshm_conn_get_stats(a, &st1);
	CHECK_EQ(st1.bytes_spliced, ZC_BIG);
	vshm_conn_destroy(a);
	vshm_conn_destroy(b);
	CHECK_EQ(released, 1);
	zc_free(payload, ZC_BIG);
}

TEST(conn_splice_destroy_with_bytes_in_pipe)
{
	struct vshm_conn *c;
	uint8_t *payload = zc_alloc(ZC_BIG);
	uint8_t sink[65536];
	size_t got = 0;
	int peer, released = 0, base = vshm_test_count_fds();
	ssize_t n;

	fill_pattern(payload, ZC_BIG, 4);
	c = conn_with_raw_peer(&zc_cfg, &peer);
	CHECK_OK(zc_send(c, 4, payload, ZC_BIG, NULL, 0, &released));
	CHECK(vshm_conn_wants_write(c));
	CHECK_EQ(released, 0);
	vshm_conn_destroy(c);
	CHECK_EQ(released, 1);
	/* Our mapping goes away; the peer still reads what was spliced. */
	zc_free(payload, ZC_BIG);
	while ((n = read(peer, sink, sizeof(sink))) > 0)
		got += (size_t)n;
	CHECK_EQ(n, 0);
	CHECK(got > sizeof(struct hdr) + sizeof(uint32_t));
	CHECK(got < sizeof(struct hdr) + sizeof(uint32_t) + ZC_BIG);
	close(peer);
	CHECK_EQ(vshm_test_count_fds(), base);
}

TEST(conn_splice_peer_gone_is_epipe_without_sigpipe)
{
	struct vshm_conn *c;
	uint8_t *payload = zc_alloc(ZC_BIG);
	int peer, released = 0, r;
	sigset_t pend;

	/* Without the conn blocking it, a splice() to a closed peer kills us. */
	signal(SIGPIPE, SIG_DFL);
	c = conn_with_raw_peer(&zc_cfg, &peer);
	CHECK_OK(zc_send(c, 1, payload, ZC_BIG, NULL, 0, &released));
	CHECK(vshm_conn_wants_write(c));
	close(peer);
	r = vshm_conn_flush(c);
	CHECK(r == -EPIPE || r == -ECONNRESET);
	CHECK_EQ(vshm_conn_flush(c), r);
	CHECK_EQ(send_msg(c, 2, "x", 1, NULL, 0), r);
	CHECK_OK(sigpending(&pend));
	CHECK(!sigismember(&pend, SIGPIPE));
	CHECK_EQ(released, 0);
	vshm_conn_destroy(c);
	CHECK_EQ(released, 1);
	zc_free(payload, ZC_BIG);
}

TEST(conn_splice_flag_off_keeps_sendmsg_path)
{
	struct vshm_conn_config cfg = zc_cfg;
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	struct vshm_conn_stats st;
	uint8_t *payload = zc_alloc(ZC_BIG);
	int released = 0, base = vshm_test_count_fds();

	cfg.flags = 0;
	fill_pattern(payload, ZC_BIG, 6);
	conn_pair(&cfg, &a, &b);
	CHECK_OK(zc_send(a, 6, payload, ZC_BIG, NULL, 0, &released));
	/* No pipe: only the two sockets are new. */
	CHECK_EQ(vshm_test_count_fds(), base + 2);
	zc_recv_flushing(a, b, &msg);
	CHECK(zc_check_msg(&msg, 6, ZC_BIG));
	CHECK_EQ(released, 1);
	vshm_conn_get_stats(a, &st);
	CHECK_EQ(st.bytes_spliced, 0);
	CHECK_EQ(st.bytes_copied, 0);
	vshm_conn_destroy(a);
	vshm_conn_destroy(b);
	zc_free(payload, ZC_BIG);
}

TEST(conn_splice_unknown_flag_rejected)
{
	struct vshm_conn_config cfg = zc_cfg;
	struct vshm_conn *c = NULL;
	int sv[2];

	cfg.flags = 1u << 31;
	pair_raw(sv);
	CHECK_EQ(vshm_conn_new(sv[0], &cfg, &c), -EINVAL);
	CHECK(c == NULL);
	close(sv[1]);
}

/*
 * Make one syscall fail with @err for the rest of this (forked) test, as a
 * seccomp filter on an old kernel or in a sandbox would.
 */
static void fail_syscall(long nr, int err)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };

	CHECK_OK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
	CHECK_OK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0));
}

/* The runtime fallback: a refused syscall turns splicing off, bytes stay exact. */
static void check_fallback(long nr, int err)
{
	struct vshm_conn *a, *b;
	struct vshm_conn_msg msg;
	struct vshm_conn_stats st;
	uint8_t *payload = zc_alloc(ZC_BIG);
	int released = 0;

	conn_pair(&zc_cfg, &a, &b);
	fail_syscall(nr, err);
	CHECK(conn_splice_available());
	for (uint32_t k = 1; k <= 2; k++) {
		fill_pattern(payload, ZC_BIG, k);
		CHECK_OK(zc_send(a, k, payload, ZC_BIG, NULL, 0, &released));
		zc_recv_flushing(a, b, &msg);
		CHECK(zc_check_msg(&msg, k, ZC_BIG));
		CHECK_EQ(released, (int)k);
	}
	CHECK(!conn_splice_available());
	vshm_conn_get_stats(a, &st);
	CHECK_EQ(st.bytes_spliced, 0);
	CHECK_EQ(st.msgs_out, 2);
	vshm_conn_destroy(a);
	vshm_conn_destroy(b);
	zc_free(payload, ZC_BIG);
}

TEST(conn_splice_fallback_when_vmsplice_refused)
{
	check_fallback(SYS_vmsplice, ENOSYS);
}

TEST(conn_splice_fallback_when_splice_refused)
{
	/* vmsplice works, so the pipe holds bytes when splice() says EINVAL. */
	check_fallback(SYS_splice, EINVAL);
}
