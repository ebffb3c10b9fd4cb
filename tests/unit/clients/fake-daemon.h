/* SPDX-License-Identifier: MIT */
/*
 * fake-daemon.h - the daemon side of docs/protocol.md, as much as the
 * consumer tests need, written from the specification: raw framing on a
 * socket fd (with SCM_RIGHTS), sealed read-only memfd buffers, and a
 * scripted daemon thread serving one consumer on a listening socket.
 * Header-only (static functions) so each test links just what it uses.
 */
#ifndef VSHM_TESTS_FAKE_DAEMON_H
#define VSHM_TESTS_FAKE_DAEMON_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <vshm-proto/qemu-display.h>
#include <vshm-proto/vshm-display.h>

#include "test-runner.h"

#define FK_REPLY VHOST_USER_GPU_MSG_FLAG_REPLY
#define FK_XR24  0x34325258u /* 'XR24' */
#define FK_AR24  0x34325241u /* 'AR24' */

/* Send one message: header + payload, @nfds fds on the first byte. */
/* 0, or -EPIPE/-ECONNRESET when the consumer is gone (other failures fail the test). */
static inline int fk_send(int fd, uint32_t id, uint32_t flags, const void *p, uint32_t len,
                          const int *fds, unsigned nfds)
{
	struct vhost_user_gpu_hdr h = { id, flags, len };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)p, len } };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { 0 };
	mh.msg_iov = iov;
	mh.msg_iovlen = len ? 2 : 1;
	if (nfds) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	size_t total = sizeof(h) + len;
	ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
		return -errno;
	CHECK(n > 0);
	/* The rest (large payloads) without fds. */
	size_t done = (size_t)n;
	while (done < total) {
		const uint8_t *src = done < sizeof(h) ? (const uint8_t *)&h + done
		                                      : (const uint8_t *)p + (done - sizeof(h));
		size_t chunk = done < sizeof(h) ? sizeof(h) - done : total - done;
		struct pollfd pfd = { fd, POLLOUT, 0 };
		CHECK(poll(&pfd, 1, 5000) == 1);
		n = send(fd, src, chunk, MSG_NOSIGNAL);
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return -errno;
		CHECK(n > 0);
		done += (size_t)n;
	}
	return 0;
}

/* Send raw bytes (for truncated / odd framing). */
static inline void fk_send_raw(int fd, const void *p, size_t len)
{
	CHECK_EQ(send(fd, p, len, MSG_NOSIGNAL), (long long)len);
}

/* Read exactly @n bytes within @timeout_ms; 0, or -EPIPE on EOF, -ETIMEDOUT. */
static inline int fk_read_exact(int fd, void *buf, size_t n, int timeout_ms)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int r = poll(&pfd, 1, timeout_ms);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno == EINTR)
			continue;
		ssize_t k = recv(fd, (uint8_t *)buf + got, n - got, 0);
		if (k == 0)
			return -EPIPE;
		if (k < 0)
			return -errno;
		got += (size_t)k;
	}
	return 0;
}

/* Receive one consumer message (no fds expected); returns payload size or -errno. */
static inline int fk_recv(int fd, uint32_t *id, uint32_t *flags, void *buf, uint32_t cap,
                          int timeout_ms)
{
	struct vhost_user_gpu_hdr h;
	int r = fk_read_exact(fd, &h, sizeof(h), timeout_ms);
	if (r < 0)
		return r;
	CHECK(h.size <= cap);
	r = fk_read_exact(fd, buf, h.size, timeout_ms);
	if (r < 0)
		return r;
	*id = h.request;
	*flags = h.flags;
	return (int)h.size;
}

/* A sealed memfd as section 8 describes it, with the daemon's writable mapping. */
struct fk_shm {
	int memfd;
	uint8_t *rw;
	uint64_t size, offset;
	uint32_t width, height, stride, fourcc;
};

static inline void fk_shm_new(struct fk_shm *s, uint32_t w, uint32_t h, uint32_t stride,
                              uint64_t offset, uint32_t fourcc, bool seal)
{
	s->width = w;
	s->height = h;
	s->stride = stride;
	s->offset = offset;
	s->fourcc = fourcc;
	s->size = offset + (uint64_t)stride * h;
	s->memfd = memfd_create("fk-shm", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	CHECK(s->memfd >= 0);
	CHECK_OK(ftruncate(s->memfd, (off_t)s->size));
	s->rw = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, s->memfd, 0);
	CHECK(s->rw != MAP_FAILED);
	if (seal)
		CHECK_OK(fcntl(s->memfd, F_ADD_SEALS,
		               F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL));
}

static inline void fk_shm_free(struct fk_shm *s)
{
	munmap(s->rw, s->size);
	close(s->memfd);
}

static inline uint32_t *fk_shm_px(struct fk_shm *s, uint32_t x, uint32_t y)
{
	return (uint32_t *)(s->rw + s->offset + (uint64_t)y * s->stride + (uint64_t)x * 4);
}

/* A new read-only open file description of the memfd (section 8 rule 2). */
static inline int fk_shm_ro_fd(const struct fk_shm *s)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->memfd);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

/* SHM_BUFFER for @s as buffer @id, with a read-only fd. */
static inline void fk_send_shm_buffer(int fd, const struct fk_shm *s, uint32_t id)
{
	struct vshm_display_shm_buffer b = { id,        s->width, s->height, s->stride,
		                             s->fourcc, 0,        s->offset, s->size };
	int ro = fk_shm_ro_fd(s);
	fk_send(fd, VSHM_DISPLAY_SHM_BUFFER, 0, &b, sizeof(b), &ro, 1);
	close(ro);
}

static inline void fk_send_scanout(int fd, uint32_t scanout, uint32_t buffer, uint32_t x,
                                   uint32_t y, uint32_t w, uint32_t h)
{
	struct vshm_display_scanout s = { scanout, buffer, x, y, w, h, 0, 0 };
	fk_send(fd, VSHM_DISPLAY_SCANOUT, 0, &s, sizeof(s), NULL, 0);
}

static inline uint64_t fk_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void fk_send_frame(int fd, uint32_t scanout, uint32_t buffer, uint64_t seq,
                                 uint64_t flush_ns, uint32_t flags,
                                 const struct vshm_display_rect *rects, uint32_t n)
{
	uint8_t buf[sizeof(struct vshm_display_frame) + 16 * sizeof(struct vshm_display_rect)];
	struct vshm_display_frame f = { scanout, buffer, seq, flush_ns, fk_now(), flags, n };
	CHECK(n <= 16);
	memcpy(buf, &f, sizeof(f));
	if (n)
		memcpy(buf + sizeof(f), rects, n * sizeof(*rects));
	fk_send(fd, VSHM_DISPLAY_FRAME, 0, buf, (uint32_t)(sizeof(f) + n * sizeof(*rects)), NULL,
	        0);
}

/* HEARTBEAT with one ENABLED entry per scanout in @mask. */
static inline void fk_send_heartbeat(int fd, uint32_t mask, uint64_t last_seq, uint64_t last_flush)
{
	uint8_t buf[sizeof(struct vshm_display_heartbeat) +
	            16 * sizeof(struct vshm_display_heartbeat_scanout)];
	struct vshm_display_heartbeat hb = { fk_now(), fk_now(), 100, 0 };
	size_t off = sizeof(hb);
	for (uint32_t n = 0; n < 16; n++) {
		if (!(mask & (1u << n)))
			continue;
		struct vshm_display_heartbeat_scanout e = { n, VSHM_DISPLAY_HEARTBEAT_F_ENABLED,
			                                    last_seq, last_flush };
		memcpy(buf + off, &e, sizeof(e));
		off += sizeof(e);
		hb.count++;
	}
	memcpy(buf, &hb, sizeof(hb));
	fk_send(fd, VSHM_DISPLAY_HEARTBEAT, 0, buf, (uint32_t)off, NULL, 0);
}

static inline void fk_send_hello_reply(int fd, uint32_t requested, uint32_t num_scanouts)
{
	struct vshm_display_hello_reply r = { 0 };
	r.version = 1;
	r.consumer_id = 7;
	r.num_scanouts = num_scanouts;
	for (uint32_t n = 0; n < 16; n++) {
		if (!(requested & (1u << n)))
			continue;
		if (n < num_scanouts) {
			r.granted |= 1u << n;
		} else {
			r.refused |= 1u << n;
			r.refuse_reason[n] = VSHM_DISPLAY_REFUSE_NO_SUCH_SCANOUT;
		}
	}
	r.heartbeat_period_ms = 100;
	r.release_timeout_ms = 250;
	r.max_rects = 16;
	fk_send(fd, VSHM_DISPLAY_HELLO, FK_REPLY, &r, sizeof(r), NULL, 0);
}

/* The pattern the scripted daemon draws: XRGB8888, distinct per pixel and frame. */
static inline uint32_t fk_pattern(uint32_t x, uint32_t y, uint32_t frame)
{
	uint32_t v = (x * 2654435761u) ^ (y * 40503u) ^ (frame * 0x9e3779b9u);
	return 0xff000000u | (v & 0xffffffu);
}

/* ---- scripted daemon thread -------------------------------------------------------- */

struct fk_script {
	int listen_fd;
	uint32_t width, height, num_scanouts;
	unsigned frames; /* frames to send (vshm) or UPDATE rounds (QEMU-only) */
	bool heartbeats; /* send a HEARTBEAT after each frame */
	/* results */
	bool vshm;               /* the consumer negotiated VSHM */
	char role[32];           /* HELLO.role */
	uint32_t requested;      /* HELLO.scanouts */
	unsigned releases;       /* FRAME_RELEASEs received */
	uint64_t last_release;   /* their newest seq */
	unsigned stats_requests; /* STATS requests answered */
	int error;               /* 0, or what went wrong (-errno) */
	pthread_t thread;
};

/* Expected scanout-0 image after the last frame (x8r8g8b8, width*height). */
static inline void fk_script_expect(const struct fk_script *s, uint32_t *out)
{
	for (uint32_t y = 0; y < s->height; y++)
		for (uint32_t x = 0; x < s->width; x++)
			out[(size_t)y * s->width + x] = fk_pattern(x, y, s->frames - 1);
}

static inline int fk_serve_vshm(struct fk_script *s, int fd)
{
	uint8_t buf[4096];
	uint32_t id, flags;
	int n;
	struct vshm_display_hello hello;
	struct fk_shm shm;

	fk_send(fd, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 0,
	        &(uint64_t){ VSHM_DISPLAY_PROTOCOL_F_VSHM }, 8, NULL, 0);
	n = fk_recv(fd, &id, &flags, buf, sizeof(buf), 2000);
	if (n != (int)sizeof(hello) || id != VSHM_DISPLAY_HELLO || flags != 0)
		return -EPROTO;
	memcpy(&hello, buf, sizeof(hello));
	memcpy(s->role, hello.role, sizeof(s->role));
	s->role[31] = 0;
	s->requested = hello.scanouts;
	fk_send_hello_reply(fd, hello.scanouts, s->num_scanouts);
	if (!(hello.scanouts & 1))
		return 0;

	/* Stride with padding and a non-zero offset: consumers must honour both. */
	fk_shm_new(&shm, s->width, s->height, s->width * 4 + 64, 4096, FK_XR24, true);
	uint64_t flush = fk_now() - 1000000;
	for (unsigned f = 0; f < s->frames; f++) {
		for (uint32_t y = 0; y < s->height; y++)
			for (uint32_t x = 0; x < s->width; x++)
				*fk_shm_px(&shm, x, y) = fk_pattern(x, y, f);
		if (f == 0) {
			fk_send_shm_buffer(fd, &shm, 1);
			fk_send_scanout(fd, 0, 1, 0, 0, s->width, s->height);
			fk_send_frame(fd, 0, 1, 1, flush, VSHM_DISPLAY_FRAME_F_FULL, NULL, 0);
		} else {
			struct vshm_display_rect r = { 0, 0, s->width, s->height };
			flush = fk_now();
			/* seq jumps by 2 from the second frame on: one drop each time. */
			fk_send_frame(fd, 0, 1, 1 + 2 * f, flush, 0, &r, 1);
		}
		if (s->heartbeats)
			fk_send_heartbeat(fd, 1, 1 + 2 * f, flush);
		/* Wait for the release before writing the buffer again (section 9.2). */
		for (;;) {
			n = fk_recv(fd, &id, &flags, buf, sizeof(buf), 5000);
			if (n < 0) {
				fk_shm_free(&shm);
				return n;
			}
			if (id == VSHM_DISPLAY_STATS) {
				struct vshm_display_stats st = { 0 };
				uint8_t rep[sizeof(st) + 32];
				struct vshm_display_stats_scanout e = { 0 };
				st.consumer_id = 7;
				st.count = 1;
				st.frames_sent = f + 1;
				e.last_seq = 1 + 2 * f;
				memcpy(rep, &st, sizeof(st));
				memcpy(rep + sizeof(st), &e, sizeof(e));
				fk_send(fd, VSHM_DISPLAY_STATS, FK_REPLY, rep, sizeof(rep), NULL,
				        0);
				s->stats_requests++;
				continue;
			}
			if (id != VSHM_DISPLAY_FRAME_RELEASE || n != 16) {
				fk_shm_free(&shm);
				return -EPROTO;
			}
			struct vshm_display_frame_release rel;
			memcpy(&rel, buf, sizeof(rel));
			s->releases++;
			s->last_release = rel.seq;
			if (rel.seq == 1 + 2 * f)
				break;
		}
	}
	/* Serve STATS and heartbeats until the consumer hangs up. */
	for (;;) {
		n = fk_recv(fd, &id, &flags, buf, sizeof(buf), 100);
		if (n == -ETIMEDOUT) {
			if (s->heartbeats)
				fk_send_heartbeat(fd, 1, 2 * s->frames - 1, flush);
			continue;
		}
		if (n < 0)
			break;
		if (id == VSHM_DISPLAY_STATS) {
			struct vshm_display_stats st = { 0 };
			uint8_t rep[sizeof(st) + 32];
			struct vshm_display_stats_scanout e = { 0 };
			st.consumer_id = 7;
			st.count = 1;
			st.frames_sent = s->frames;
			memcpy(rep, &st, sizeof(st));
			memcpy(rep + sizeof(st), &e, sizeof(e));
			fk_send(fd, VSHM_DISPLAY_STATS, FK_REPLY, rep, sizeof(rep), NULL, 0);
			s->stats_requests++;
		}
	}
	fk_shm_free(&shm);
	return 0;
}

static inline int fk_serve_qemu(struct fk_script *s, int fd)
{
	uint8_t buf[64];
	uint32_t id, flags;
	size_t npx = (size_t)s->width * s->height;
	uint8_t *msg = malloc(sizeof(struct vhost_user_gpu_update) + npx * 4);
	CHECK(msg != NULL);
	fk_send(fd, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 0, &(uint64_t){ 0 }, 8, NULL, 0);
	struct vhost_user_gpu_scanout sc = { 0, s->width, s->height };
	fk_send(fd, VHOST_USER_GPU_SCANOUT, 0, &sc, sizeof(sc), NULL, 0);
	for (unsigned f = 0; f < s->frames; f++) {
		struct vhost_user_gpu_update u = { 0, 0, 0, s->width, s->height };
		memcpy(msg, &u, sizeof(u));
		uint32_t *px = (uint32_t *)(msg + sizeof(u));
		for (uint32_t y = 0; y < s->height; y++)
			for (uint32_t x = 0; x < s->width; x++)
				px[(size_t)y * s->width + x] = fk_pattern(x, y, f);
		fk_send(fd, VHOST_USER_GPU_UPDATE, 0, msg, (uint32_t)(sizeof(u) + npx * 4), NULL,
		        0);
	}
	free(msg);
	while (fk_recv(fd, &id, &flags, buf, sizeof(buf), 5000) >= 0)
		;
	return 0;
}

static inline void *fk_script_thread(void *arg)
{
	struct fk_script *s = arg;
	uint8_t buf[64];
	uint32_t id, flags;
	uint64_t feat;
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		s->error = -errno;
		return NULL;
	}
	fk_send(fd, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, NULL, 0, NULL, 0);
	int n = fk_recv(fd, &id, &flags, buf, sizeof(buf), 2000);
	if (n != 8 || id != VHOST_USER_GPU_GET_PROTOCOL_FEATURES || flags != FK_REPLY) {
		s->error = -EPROTO;
		close(fd);
		return NULL;
	}
	memcpy(&feat, buf, 8);
	s->vshm = feat & VSHM_DISPLAY_PROTOCOL_F_VSHM;
	s->error = s->vshm ? fk_serve_vshm(s, fd) : fk_serve_qemu(s, fd);
	close(fd);
	return NULL;
}

/* Listen on @path and serve one consumer in a thread. */
static inline void fk_script_start(struct fk_script *s, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	CHECK(strlen(path) < sizeof(a.sun_path));
	memcpy(a.sun_path, path, strlen(path) + 1);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(s->listen_fd >= 0);
	unlink(path);
	CHECK_OK(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)));
	CHECK_OK(listen(s->listen_fd, 4));
	CHECK_OK(pthread_create(&s->thread, NULL, fk_script_thread, s));
}

static inline void fk_script_join(struct fk_script *s)
{
	pthread_join(s->thread, NULL);
	close(s->listen_fd);
}

#endif
