/* SPDX-License-Identifier: MIT */
/*
 * test-consumers.c - the display consumers module against fake consumers
 * over real UNIX sockets, driven by a fake device: the test calls the
 * sink ops directly with images from vgs_image_new() and runs the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/conn.h>
#include <vshm/event_loop.h>
#include <vshm/log.h>
#include <vshm-proto/qemu-display.h>
#include <vshm-proto/virtio-gpu.h>
#include <vshm-proto/vshm-display.h>

#include "consumers.h"
#include "image.h"
#include "test-runner.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define W    64
#define H    48
#define MAXP (1u << 20)

struct fx {
	struct vshm_event_loop *loop;
	struct vgs_consumers *cs;
	const struct vgs_display_sink *sink;
	char dir[64], path[4][96];
	struct vgs_image *img[2];
};

struct msg {
	struct vhost_user_gpu_hdr h;
	uint8_t *p;
	int fds[4];
	unsigned nfds;
};

static uint8_t payload_buf[MAXP];

static void fx_init_cfg(struct fx *f, struct vgs_consumers_config *cfg)
{
	vshm_log_set_level(VSHM_LOG_ERROR);
	memset(f, 0, sizeof(*f));
	CHECK_OK(vshm_event_loop_new(&f->loop));
	CHECK_OK(vgs_consumers_new(f->loop, cfg, &f->cs));
	f->sink = vgs_consumers_sink(f->cs);
	strcpy(f->dir, "/tmp/vshm-cons-XXXXXX");
	CHECK(mkdtemp(f->dir));
	for (int i = 0; i < 4; i++)
		snprintf(f->path[i], sizeof(f->path[i]), "%s/d%d.sock", f->dir, i);
}

static void fx_init(struct fx *f)
{
	struct vgs_consumers_config cfg;

	vgs_consumers_config_defaults(&cfg);
	cfg.num_scanouts = 2;
	cfg.features_timeout_ms = 100;
	cfg.hello_timeout_ms = 200;
	cfg.heartbeat_ms = 50;
	cfg.release_timeout_ms = 100;
	cfg.consumer_deadline_ms = 300;
	fx_init_cfg(f, &cfg);
}

static void fx_finish(struct fx *f)
{
	vgs_consumers_destroy(f->cs);
	vshm_event_loop_destroy(f->loop);
	for (int i = 0; i < 2; i++)
		vgs_image_unref(f->img[i]);
	for (int i = 0; i < 4; i++)
		unlink(f->path[i]);
	rmdir(f->dir);
}

static void pump(struct fx *f, int ms)
{
	uint64_t end = vshm_now_ns() + (uint64_t)ms * 1000000ull;

	do
		CHECK(vshm_event_loop_dispatch(f->loop, 1) >= 0);
	while (vshm_now_ns() < end);
}

/* A pattern image, shown on @scanout. */
static struct vgs_image *show(struct fx *f, unsigned idx, uint32_t scanout, uint32_t format)
{
	struct vgs_scanout_state st = { .scanout_id = scanout, .enabled = true };

	if (!f->img[idx]) {
		CHECK_OK(vgs_image_new(W, H, format, &f->img[idx]));
		for (uint64_t i = 0; i < (uint64_t)f->img[idx]->stride * H; i++)
			f->img[idx]->data[i] = (uint8_t)(i * 7 + 3 + idx);
	}
	st.rect = (struct vgs_rect){ 0, 0, W, H };
	st.image = f->img[idx];
	f->sink->ops->scanout(f->sink->data, &st);
	return f->img[idx];
}

static void flush(struct fx *f, uint32_t s, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                  uint64_t ns)
{
	struct vgs_rect r = { x, y, w, h };

	f->sink->ops->flush(f->sink->data, s, &r, ns);
}

static int peer_connect(struct fx *f, int path)
{
	int fd;

	CHECK_OK(vshm_unix_connect(f->path[path], &fd));
	pump(f, 5);
	return fd;
}

/* 1: got a message; 0: timeout; -1: EOF. Runs the loop while waiting. */
static int peer_recv(struct fx *f, int fd, struct msg *m, int timeout_ms)
{
	uint64_t end = vshm_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	size_t got = 0, want = sizeof(m->h);
	bool hdr = true;

	memset(m, 0, sizeof(*m));
	m->p = payload_buf;
	for (;;) {
		union {
			struct cmsghdr a;
			char b[CMSG_SPACE(sizeof(int) * 4)];
		} ctrl;
		struct iovec iov = { hdr ? (uint8_t *)&m->h + got : m->p + got, want - got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (got == want) {
			if (!hdr)
				return 1;
			CHECK(m->h.size <= MAXP);
			hdr = false;
			got = 0;
			want = m->h.size;
			continue;
		}
		mh.msg_control = ctrl.b;
		mh.msg_controllen = sizeof(ctrl.b);
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n > 0) {
			for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
				size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

				for (size_t i = 0; i < k && m->nfds < 4; i++)
					memcpy(&m->fds[m->nfds++], CMSG_DATA(c) + i * sizeof(int),
					       sizeof(int));
			}
			got += (size_t)n;
			continue;
		}
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return -1;
		if (vshm_now_ns() > end)
			return 0;
		CHECK(vshm_event_loop_dispatch(f->loop, 1) >= 0);
	}
}

/* The next message that is not a HEARTBEAT (unless @id asks for one), checked to be @id. */
static void expect(struct fx *f, int fd, uint32_t id, uint32_t flags, struct msg *m)
{
	for (;;) {
		int r = peer_recv(f, fd, m, 2000);

		if (r != 1)
			vshm_test_fail(__FILE__, __LINE__, "expected 0x%x, got %s", id,
			               r ? "EOF" : "nothing");
		if (m->h.request == VSHM_DISPLAY_HEARTBEAT && id != VSHM_DISPLAY_HEARTBEAT)
			continue;
		if (m->h.request != id)
			vshm_test_fail(__FILE__, __LINE__, "expected 0x%x, got 0x%x", id,
			               m->h.request);
		CHECK_EQ(m->h.flags, flags);
		return;
	}
}

static void peer_send(int fd, uint32_t req, uint32_t flags, const void *p, uint32_t n)
{
	struct vhost_user_gpu_hdr h = { req, flags, n };
	uint8_t buf[4096 + 12];

	memcpy(buf, &h, sizeof(h));
	if (n)
		memcpy(buf + sizeof(h), p, n);
	CHECK_EQ(send(fd, buf, sizeof(h) + n, MSG_NOSIGNAL), (ssize_t)(sizeof(h) + n));
}

static void hello(struct fx *f, int fd, uint32_t scanouts, const char *role,
                  struct vshm_display_hello_reply *rep)
{
	uint64_t feat = VSHM_DISPLAY_PROTOCOL_F_VSHM | VHOST_USER_GPU_PROTOCOL_F_EDID |
	                VHOST_USER_GPU_PROTOCOL_F_DMABUF2;
	struct vshm_display_hello h = { .version = 1, .scanouts = scanouts };
	struct msg m;

	expect(f, fd, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, &m);
	CHECK_EQ(m.h.size, 0);
	peer_send(fd, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, VHOST_USER_GPU_MSG_FLAG_REPLY, &feat,
	          8);
	expect(f, fd, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 0, &m);
	CHECK_EQ(m.h.size, 8);
	memcpy(&feat, m.p, 8);
	CHECK_EQ(feat, VSHM_DISPLAY_PROTOCOL_F_VSHM);
	strcpy(h.role, role);
	peer_send(fd, VSHM_DISPLAY_HELLO, 0, &h, sizeof(h));
	expect(f, fd, VSHM_DISPLAY_HELLO, VHOST_USER_GPU_MSG_FLAG_REPLY, &m);
	CHECK_EQ(m.h.size, sizeof(*rep));
	memcpy(rep, m.p, sizeof(*rep));
}

/* Expect SHM_BUFFER; returns its read-only mapping and the buffer struct. */
static const uint8_t *expect_buffer(struct fx *f, int fd, struct vshm_display_shm_buffer *b)
{
	struct msg m;
	void *p;

	expect(f, fd, VSHM_DISPLAY_SHM_BUFFER, 0, &m);
	CHECK_EQ(m.nfds, 1);
	memcpy(b, m.p, sizeof(*b));
	p = mmap(NULL, b->size, PROT_READ, MAP_SHARED, m.fds[0], 0);
	CHECK(p != MAP_FAILED);
	close(m.fds[0]);
	return p;
}

static void expect_error(struct fx *f, int fd, uint32_t code, uint32_t detail)
{
	struct vshm_display_error e;
	struct msg m;

	expect(f, fd, VSHM_DISPLAY_ERROR, 0, &m);
	memcpy(&e, m.p, sizeof(e));
	CHECK_EQ(e.code, code);
	CHECK_EQ(e.detail, detail);
	/* Then the daemon hangs up. */
	for (int i = 0; i < 100; i++) {
		int r = peer_recv(f, fd, &m, 100);

		if (r < 0)
			return;
		for (unsigned k = 0; k < m.nfds; k++)
			close(m.fds[k]);
	}
	CHECK(!"no hang-up after ERROR");
}

/* A vshm consumer of scanout 0 up to its first FRAME; returns the mapping. */
static const uint8_t *up_vshm(struct fx *f, int fd, struct vshm_display_shm_buffer *b,
                              struct vshm_display_frame *fr)
{
	struct vshm_display_hello_reply rep;
	struct vshm_display_scanout sc;
	const uint8_t *map;
	struct msg m;

	hello(f, fd, 0x1, "cluster", &rep);
	CHECK_EQ(rep.granted, 1);
	map = expect_buffer(f, fd, b);
	expect(f, fd, VSHM_DISPLAY_SCANOUT, 0, &m);
	memcpy(&sc, m.p, sizeof(sc));
	CHECK_EQ(sc.buffer_id, b->buffer_id);
	expect(f, fd, VSHM_DISPLAY_FRAME, 0, &m);
	memcpy(fr, m.p, sizeof(*fr));
	CHECK(fr->flags & VSHM_DISPLAY_FRAME_F_FULL);
	return map;
}

static void release(int fd, uint32_t s, uint64_t seq)
{
	struct vshm_display_frame_release r = { .scanout_id = s, .seq = seq };

	peer_send(fd, VSHM_DISPLAY_FRAME_RELEASE, 0, &r, sizeof(r));
}

/* ---- tests --------------------------------------------------------------------- */

TEST(vshm_handshake_buffer_scanout_frame)
{
	struct fx f;
	struct vshm_display_hello_reply rep;
	struct vshm_display_shm_buffer b;
	struct vshm_display_scanout sc;
	struct vshm_display_frame fr;
	struct vshm_display_rect rect;
	struct vshm_display_heartbeat hb;
	struct vgs_image *img;
	const uint8_t *map;
	struct msg m;
	int fd;

	fx_init(&f);
	img = show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	hello(&f, fd, 0x1, "recorder", &rep);
	CHECK_EQ(rep.version, 1);
	CHECK(rep.consumer_id != 0);
	CHECK_EQ(rep.granted, 1);
	CHECK_EQ(rep.refused, 0);
	CHECK_EQ(rep.num_scanouts, 2);
	CHECK_EQ(rep.heartbeat_period_ms, 50);
	CHECK_EQ(rep.release_timeout_ms, 100);
	CHECK_EQ(rep.max_rects, 16);
	map = expect_buffer(&f, fd, &b);
	CHECK_EQ(b.width, W);
	CHECK_EQ(b.height, H);
	CHECK_EQ(b.stride, W * 4);
	CHECK_EQ(b.drm_fourcc, 0x34325258); /* XR24 */
	CHECK_EQ(b.size, img->size);
	CHECK_MEM_EQ(map, img->data, (size_t)W * 4 * H);
	expect(&f, fd, VSHM_DISPLAY_SCANOUT, 0, &m);
	memcpy(&sc, m.p, sizeof(sc));
	CHECK_EQ(sc.scanout_id, 0);
	CHECK_EQ(sc.buffer_id, b.buffer_id);
	CHECK_EQ(sc.width, W);
	CHECK_EQ(sc.height, H);
	expect(&f, fd, VSHM_DISPLAY_FRAME, 0, &m);
	CHECK_EQ(m.h.size, sizeof(fr) + sizeof(rect));
	memcpy(&fr, m.p, sizeof(fr));
	memcpy(&rect, m.p + sizeof(fr), sizeof(rect));
	CHECK_EQ(fr.seq, 1);
	CHECK_EQ(fr.flags, VSHM_DISPLAY_FRAME_F_FULL);
	CHECK_EQ(fr.num_rects, 1);
	CHECK_EQ(rect.width, W);
	CHECK_EQ(rect.height, H);
	/* The first HEARTBEAT follows right away. */
	CHECK_EQ(peer_recv(&f, fd, &m, 1000), 1);
	CHECK_EQ(m.h.request, VSHM_DISPLAY_HEARTBEAT);
	memcpy(&hb, m.p, sizeof(hb));
	CHECK_EQ(hb.count, 1);
	munmap((void *)map, b.size);
	close(fd);
	fx_finish(&f);
}

TEST(shm_buffer_fd_is_read_only)
{
	struct fx f;
	struct vshm_display_hello_reply rep;
	struct vshm_display_shm_buffer b;
	char path[64], byte = 1;
	struct msg m;
	int fd, bfd, rw;
	void *p;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	hello(&f, fd, 0x1, "preview", &rep);
	expect(&f, fd, VSHM_DISPLAY_SHM_BUFFER, 0, &m);
	CHECK_EQ(m.nfds, 1);
	memcpy(&b, m.p, sizeof(b));
	bfd = m.fds[0];
	CHECK_EQ(fcntl(bfd, F_GETFL) & O_ACCMODE, O_RDONLY);
	CHECK_EQ(fcntl(bfd, F_GET_SEALS) &
	                 (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL),
	         F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL);
	CHECK(mmap(NULL, b.size, PROT_READ | PROT_WRITE, MAP_SHARED, bfd, 0) == MAP_FAILED);
	CHECK(write(bfd, &byte, 1) < 0);
	CHECK(ftruncate(bfd, 0) < 0);
	CHECK(fcntl(bfd, F_ADD_SEALS, F_SEAL_WRITE) < 0);
	/* Reopening read-write through /proc gives nothing writable either. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", bfd);
	rw = open(path, O_RDWR | O_CLOEXEC);
	if (rw >= 0) {
		CHECK(write(rw, &byte, 1) < 0);
		CHECK(pwrite(rw, &byte, 1, 0) < 0);
		p = mmap(NULL, b.size, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
		CHECK(p == MAP_FAILED);
		close(rw);
	}
	close(bfd);
	close(fd);
	fx_finish(&f);
}

TEST(qemu_only_consumer_gets_pixels)
{
	struct fx f;
	struct vhost_user_gpu_scanout sc;
	struct vhost_user_gpu_update u;
	struct vgs_image *img;
	uint64_t feat = VHOST_USER_GPU_PROTOCOL_F_EDID | VHOST_USER_GPU_PROTOCOL_F_DMABUF2;
	uint32_t cursor[64 * 64];
	struct msg m;
	int fd;

	fx_init(&f);
	img = show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0x1, NULL));
	fd = peer_connect(&f, 0);
	expect(&f, fd, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, &m);
	peer_send(fd, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, VHOST_USER_GPU_MSG_FLAG_REPLY, &feat,
	          8);
	expect(&f, fd, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 0, &m);
	memcpy(&feat, m.p, 8);
	CHECK_EQ(feat, 0);
	expect(&f, fd, VHOST_USER_GPU_SCANOUT, 0, &m);
	memcpy(&sc, m.p, sizeof(sc));
	CHECK_EQ(sc.scanout_id, 0);
	CHECK_EQ(sc.width, W);
	CHECK_EQ(sc.height, H);
	expect(&f, fd, VHOST_USER_GPU_UPDATE, 0, &m);
	memcpy(&u, m.p, sizeof(u));
	CHECK_EQ(u.width, W);
	CHECK_EQ(u.height, H);
	CHECK_EQ(m.h.size, sizeof(u) + W * H * 4);
	CHECK_MEM_EQ(m.p + sizeof(u), img->data, (size_t)W * H * 4);
	/* Damage: exactly its rows, its pixels. */
	flush(&f, 0, 5, 6, 7, 8, vshm_now_ns());
	expect(&f, fd, VHOST_USER_GPU_UPDATE, 0, &m);
	memcpy(&u, m.p, sizeof(u));
	CHECK_EQ(u.x, 5);
	CHECK_EQ(u.y, 6);
	CHECK_EQ(u.width, 7);
	CHECK_EQ(u.height, 8);
	for (uint32_t y = 0; y < 8; y++)
		CHECK_MEM_EQ(m.p + sizeof(u) + y * 7 * 4, img->data + (6 + y) * img->stride + 5 * 4,
		             7 * 4);
	/* Scanout 1 is not served on this socket. */
	show(&f, 1, 1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	for (int i = 0; i < 64 * 64; i++)
		cursor[i] = 0xff000000u | (uint32_t)i;
	f.sink->ops->cursor_update(f.sink->data, 0, 10, 20, 1, 2, cursor);
	expect(&f, fd, VHOST_USER_GPU_CURSOR_UPDATE, 0, &m);
	{
		struct vhost_user_gpu_cursor_update cu;

		memcpy(&cu, m.p, sizeof(cu));
		CHECK_EQ(cu.pos.x, 10);
		CHECK_EQ(cu.pos.y, 20);
		CHECK_EQ(cu.hot_x, 1);
		CHECK_MEM_EQ(cu.data, cursor, sizeof(cursor));
	}
	f.sink->ops->cursor_move(f.sink->data, 0, 30, 40, true);
	expect(&f, fd, VHOST_USER_GPU_CURSOR_POS, 0, &m);
	close(fd);
	fx_finish(&f);
}

TEST(consumer_that_never_replies_is_qemu_only)
{
	struct fx f;
	uint64_t feat = VSHM_DISPLAY_PROTOCOL_F_VSHM;
	struct msg m;
	int fd;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	expect(&f, fd, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, &m);
	/* No SET_PROTOCOL_FEATURES: straight to QEMU service after the deadline. */
	expect(&f, fd, VHOST_USER_GPU_SCANOUT, 0, &m);
	expect(&f, fd, VHOST_USER_GPU_UPDATE, 0, &m);
	/* A late reply is UNEXPECTED. */
	peer_send(fd, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, VHOST_USER_GPU_MSG_FLAG_REPLY, &feat,
	          8);
	expect_error(&f, fd, VSHM_DISPLAY_ERR_UNEXPECTED, 0);
	close(fd);
	fx_finish(&f);
}

TEST(hello_timeout)
{
	struct fx f;
	uint64_t feat = VSHM_DISPLAY_PROTOCOL_F_VSHM;
	struct msg m;
	int fd;

	fx_init(&f);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	expect(&f, fd, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, &m);
	peer_send(fd, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, VHOST_USER_GPU_MSG_FLAG_REPLY, &feat,
	          8);
	expect(&f, fd, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 0, &m);
	expect_error(&f, fd, VSHM_DISPLAY_ERR_TIMEOUT, 200);
	close(fd);
	fx_finish(&f);
}

TEST(hello_refusals)
{
	struct fx f;
	struct vshm_display_hello_reply rep;
	int fd;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0x1, NULL));
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[1], 0, "cluster"));
	fd = peer_connect(&f, 0);
	hello(&f, fd, 0x7, "ivi", &rep);
	CHECK_EQ(rep.granted, 0x1);
	CHECK_EQ(rep.refused, 0x6);
	CHECK_EQ(rep.refuse_reason[0], VSHM_DISPLAY_REFUSE_NONE);
	CHECK_EQ(rep.refuse_reason[1], VSHM_DISPLAY_REFUSE_NOT_PERMITTED);
	CHECK_EQ(rep.refuse_reason[2], VSHM_DISPLAY_REFUSE_NO_SUCH_SCANOUT);
	close(fd);
	/* A role-bound socket refuses other roles, and the connection stays up. */
	fd = peer_connect(&f, 1);
	hello(&f, fd, 0x3, "recorder", &rep);
	CHECK_EQ(rep.granted, 0);
	CHECK_EQ(rep.refused, 0x3);
	CHECK_EQ(rep.refuse_reason[0], VSHM_DISPLAY_REFUSE_NOT_PERMITTED);
	{
		struct msg m;
		struct vshm_display_heartbeat hb;

		expect(&f, fd, VSHM_DISPLAY_HEARTBEAT, 0, &m);
		memcpy(&hb, m.p, sizeof(hb));
		CHECK_EQ(hb.count, 0);
	}
	close(fd);
	fd = peer_connect(&f, 1);
	hello(&f, fd, 0x3, "cluster", &rep);
	CHECK_EQ(rep.granted, 0x3);
	close(fd);
	fx_finish(&f);
}

TEST(frame_seq_timestamps_rects_exact)
{
	struct fx f;
	struct vshm_display_shm_buffer b;
	struct vshm_display_frame fr, first;
	struct vshm_display_rect r[2];
	const uint8_t *map;
	uint64_t t0, t1, before;
	struct msg m;
	int fd;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	map = up_vshm(&f, fd, &b, &first);
	release(fd, 0, first.seq);
	before = vshm_now_ns();
	t0 = before - 5000;
	flush(&f, 0, 3, 4, 10, 5, t0);
	expect(&f, fd, VSHM_DISPLAY_FRAME, 0, &m);
	CHECK_EQ(m.h.size, sizeof(fr) + sizeof(r[0]));
	memcpy(&fr, m.p, sizeof(fr));
	memcpy(r, m.p + sizeof(fr), sizeof(r[0]));
	CHECK_EQ(fr.scanout_id, 0);
	CHECK_EQ(fr.buffer_id, b.buffer_id);
	CHECK_EQ(fr.seq, first.seq + 1);
	CHECK_EQ(fr.flush_ns, t0);
	CHECK(fr.send_ns >= before && fr.send_ns <= vshm_now_ns());
	CHECK_EQ(fr.flags, 0);
	CHECK_EQ(fr.num_rects, 1);
	CHECK_EQ(r[0].x, 3);
	CHECK_EQ(r[0].y, 4);
	CHECK_EQ(r[0].width, 10);
	CHECK_EQ(r[0].height, 5);
	/* Two flushes before the consumer's turn: one FRAME, both rects, one seq (no drop). */
	t1 = vshm_now_ns();
	flush(&f, 0, 0, 0, 2, 2, t1);
	flush(&f, 0, 60, 40, 10, 10, t1 + 1000); /* clipped to the 64x48 scanout */
	expect(&f, fd, VSHM_DISPLAY_FRAME, 0, &m);
	memcpy(&fr, m.p, sizeof(fr));
	memcpy(r, m.p + sizeof(fr), sizeof(r));
	CHECK_EQ(fr.seq, first.seq + 2);
	CHECK_EQ(fr.flush_ns, t1 + 1000);
	CHECK_EQ(fr.num_rects, 2);
	CHECK_EQ(r[0].width, 2);
	CHECK_EQ(r[1].x, 60);
	CHECK_EQ(r[1].width, 4);
	CHECK_EQ(r[1].height, 8);
	{
		struct vgs_consumer_info in;

		CHECK_EQ(vgs_consumers_list(f.cs, &in, 1), 1);
		CHECK_EQ(in.frames_dropped, 0);
		CHECK_EQ(in.frames_sent, 3);
		CHECK_EQ(in.frames_released, 1);
	}
	munmap((void *)map, b.size);
	close(fd);
	fx_finish(&f);
}

/* Read until a FRAME of scanout 0 (skipping HEARTBEAT, SCANOUT, SHM_BUFFER); 0: none in time. */
static int next_frame(struct fx *f, int fd, struct vshm_display_frame *fr, uint32_t *scanout_buffer,
                      int timeout_ms)
{
	uint64_t end = vshm_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct msg m;

	for (;;) {
		uint64_t now = vshm_now_ns();
		int r = now < end ? peer_recv(f, fd, &m, (int)((end - now) / 1000000ull) + 1) : 0;

		if (r != 1)
			return r;
		for (unsigned k = 0; k < m.nfds; k++)
			close(m.fds[k]);
		if (m.h.request == VSHM_DISPLAY_SCANOUT && scanout_buffer) {
			struct vshm_display_scanout sc;

			memcpy(&sc, m.p, sizeof(sc));
			if (sc.scanout_id == 0)
				*scanout_buffer = sc.buffer_id;
		}
		if (m.h.request != VSHM_DISPLAY_FRAME)
			continue;
		memcpy(fr, m.p, sizeof(*fr));
		if (fr->scanout_id == 0)
			return 1;
	}
}

/* The newest HEARTBEAT entry of scanout 0 sent at or after @after_ns. */
static void heartbeat_after(struct fx *f, int fd, uint64_t after_ns,
                            struct vshm_display_heartbeat_scanout *e)
{
	struct vshm_display_heartbeat hb;
	struct msg m;

	for (;;) {
		CHECK_EQ(peer_recv(f, fd, &m, 2000), 1);
		for (unsigned k = 0; k < m.nfds; k++)
			close(m.fds[k]);
		if (m.h.request != VSHM_DISPLAY_HEARTBEAT)
			continue;
		memcpy(&hb, m.p, sizeof(hb));
		if (hb.now_ns < after_ns)
			continue;
		CHECK(hb.count >= 1);
		memcpy(e, m.p + sizeof(hb), sizeof(*e));
		CHECK_EQ(e->scanout_id, 0);
		return;
	}
}

/*
 * The exact drop accounting: a fast consumer gets every frame, a second one
 * does not read at all while the guest flushes n times. Then it reads: seq
 * only grows, its gaps are exactly its drops, the newest frame arrives.
 */
TEST(mailbox_coalesces_and_counts_drops)
{
	struct fx f;
	struct vshm_display_shm_buffer b, bf;
	struct vshm_display_frame fr, first, ffirst;
	struct vgs_consumer_info in[2];
	const uint8_t *map, *fmap;
	uint64_t last = 0, gaps = 0, expect_seq, last_ns = 0;
	int fd, fast, n = 1000, frames = 0;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	map = up_vshm(&f, fd, &b, &first);
	fast = peer_connect(&f, 0);
	fmap = up_vshm(&f, fast, &bf, &ffirst);
	CHECK_EQ(ffirst.seq, first.seq);
	release(fast, 0, ffirst.seq);
	last = first.seq;
	expect_seq = first.seq + 1;
	for (int i = 0; i < n; i++) {
		last_ns = vshm_now_ns();
		flush(&f, 0, 0, 0, 1, 1, last_ns);
		CHECK_EQ(next_frame(&f, fast, &fr, NULL, 2000), 1);
		CHECK_EQ(fr.seq, expect_seq);
		expect_seq++;
		release(fast, 0, fr.seq);
	}
	CHECK_EQ(vgs_consumers_list(f.cs, in, 2), 2);
	CHECK(in[0].frames_dropped > 0);
	CHECK(in[0].frames_sent + in[0].frames_dropped <= (uint64_t)n + 1);
	CHECK_EQ(in[1].frames_dropped, 0);
	CHECK_EQ(in[1].frames_sent, (uint64_t)n + 1);
	/* Now the slow one reads (and releases, so the mailbox's frame can go). */
	while (last < first.seq + (uint64_t)n) {
		CHECK_EQ(next_frame(&f, fd, &fr, NULL, 2000), 1);
		CHECK(fr.seq > last);
		gaps += fr.seq - last - 1;
		last = fr.seq;
		frames++;
		release(fd, 0, fr.seq);
	}
	CHECK_EQ(last, first.seq + (uint64_t)n);
	CHECK(fr.flush_ns >= last_ns);
	CHECK_EQ(vgs_consumers_list(f.cs, in, 2), 2);
	CHECK_EQ(gaps, in[0].frames_dropped);
	CHECK_EQ((uint64_t)frames + 1, in[0].frames_sent);
	CHECK_EQ(in[0].frames_sent + in[0].frames_dropped, (uint64_t)n + 1);
	munmap((void *)map, b.size);
	munmap((void *)fmap, bf.size);
	close(fd);
	close(fast);
	fx_finish(&f);
}

/*
 * A lone consumer that does not read: nobody gets the frames it misses, so
 * the flushes merge into one frame number: no drops, no gaps, and the
 * newest content with the newest flush time arrives when it reads again.
 */
/*
 * A lone consumer that does not read: once a send pass has given it the
 * chance to take a frame, the next flush is a new frame that replaces it.
 * Those are drops, and the consumer sees exactly as many seq gaps.
 */
TEST(lone_slow_consumer_drops_equal_gaps)
{
	struct fx f;
	struct vshm_display_shm_buffer b;
	struct vshm_display_frame fr, first;
	struct vshm_display_heartbeat_scanout e;
	struct vgs_consumer_info in;
	const uint8_t *map;
	uint64_t last, last_ns = 0, gaps = 0;
	int fd, n = 500, frames = 0;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	map = up_vshm(&f, fd, &b, &first);
	last = first.seq;
	for (int i = 0; i < n; i++) {
		last_ns = vshm_now_ns();
		flush(&f, 0, (uint32_t)i % W, 0, 1, 1, last_ns);
		CHECK(vshm_event_loop_dispatch(f.loop, 0) >= 0);
	}
	CHECK_EQ(vgs_consumers_list(f.cs, &in, 1), 1);
	CHECK(in.frames_dropped > 0); /* it could not take them all */
	/* It reads and releases now: every gap is a counted drop, and no more. */
	do {
		CHECK_EQ(next_frame(&f, fd, &fr, NULL, 2000), 1);
		CHECK(fr.seq > last);
		gaps += fr.seq - last - 1;
		last = fr.seq;
		frames++;
		release(fd, 0, fr.seq);
	} while (fr.flush_ns < last_ns);
	CHECK(frames < n);
	CHECK_EQ(vgs_consumers_list(f.cs, &in, 1), 1);
	CHECK_EQ(in.frames_dropped, gaps);
	CHECK_EQ(in.frames_sent, (uint64_t)frames + 1);
	/* The heartbeat names that frame and that flush: frame age is the guest's. */
	heartbeat_after(&f, fd, vshm_now_ns(), &e);
	CHECK_EQ(e.last_seq, last);
	CHECK_EQ(e.last_flush_ns, fr.flush_ns);
	munmap((void *)map, b.size);
	close(fd);
	fx_finish(&f);
}

/* A guest page flip (SET_SCANOUT of the back buffer + RESOURCE_FLUSH in one batch) is one frame. */
TEST(page_flip_is_one_frame)
{
	struct fx f;
	struct vshm_display_shm_buffer b;
	struct vshm_display_frame fr, first;
	struct vshm_display_rect rect;
	struct vgs_consumer_info in;
	struct vgs_consumers_stats st;
	const uint8_t *map;
	uint32_t shown = 0;
	uint64_t expect_seq;
	int fd;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	map = up_vshm(&f, fd, &b, &first);
	release(fd, 0, first.seq);
	expect_seq = first.seq + 1;
	for (int i = 1; i <= 100; i++) {
		show(&f, (unsigned)i % 2, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
		flush(&f, 0, 0, 0, 4, 4, vshm_now_ns());
		CHECK_EQ(next_frame(&f, fd, &fr, &shown, 2000), 1);
		CHECK_EQ(fr.seq, expect_seq);
		CHECK_EQ(fr.buffer_id, shown);
		/* A new picture is FULL whatever the flush damaged. */
		CHECK(fr.flags & VSHM_DISPLAY_FRAME_F_FULL);
		memcpy(&rect, (const uint8_t *)payload_buf + sizeof(fr), sizeof(rect));
		CHECK_EQ(rect.width, W);
		CHECK_EQ(rect.height, H);
		expect_seq++;
		release(fd, 0, fr.seq);
	}
	/* Nothing else: the flush was part of the flip's frame. */
	CHECK_EQ(next_frame(&f, fd, &fr, NULL, 150), 0);
	CHECK_EQ(vgs_consumers_list(f.cs, &in, 1), 1);
	CHECK_EQ(in.frames_sent, 101);
	CHECK_EQ(in.frames_dropped, 0);
	vgs_consumers_get_stats(f.cs, &st);
	CHECK_EQ(st.frames_dropped, 0);
	munmap((void *)map, b.size);
	close(fd);
	fx_finish(&f);
}

/*
 * Two consumers; one stalls (reads and releases nothing) and resumes. The
 * fast one sees every seq; the slow one's gaps are exactly its drop count,
 * and once it keeps up again it sees no new gaps.
 */
TEST(slow_consumer_gaps_equal_its_drops_fast_sees_none)
{
	struct fx f;
	struct vshm_display_shm_buffer bs, bf;
	struct vshm_display_frame fr, fs, ff;
	struct vgs_consumer_info in[2];
	const uint8_t *ms, *mf;
	uint64_t fast_last, slow_last, slow_gaps = 0, slow_frames = 0, dropped;
	int slow, fast, n = 60;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	slow = peer_connect(&f, 0);
	ms = up_vshm(&f, slow, &bs, &fs);
	fast = peer_connect(&f, 0);
	mf = up_vshm(&f, fast, &bf, &ff);
	release(slow, 0, fs.seq);
	release(fast, 0, ff.seq);
	fast_last = ff.seq;
	slow_last = fs.seq;
	/* The stall: n frames, 2 ms apart; only the fast one reads. */
	for (int i = 0; i < n; i++) {
		flush(&f, 0, 0, (uint32_t)i % H, W, 1, vshm_now_ns());
		CHECK_EQ(next_frame(&f, fast, &fr, NULL, 2000), 1);
		CHECK_EQ(fr.seq, fast_last + 1);
		fast_last = fr.seq;
		release(fast, 0, fr.seq);
		pump(&f, 2);
	}
	CHECK_EQ(vgs_consumers_list(f.cs, in, 2), 2);
	CHECK(in[0].frames_dropped > 0);
	CHECK_EQ(in[1].frames_dropped, 0);
	/* The slow one resumes: reads and releases up to the newest frame. */
	while (slow_last < fast_last) {
		CHECK_EQ(next_frame(&f, slow, &fr, NULL, 2000), 1);
		CHECK(fr.seq > slow_last);
		slow_gaps += fr.seq - slow_last - 1;
		slow_last = fr.seq;
		slow_frames++;
		release(slow, 0, fr.seq);
	}
	CHECK_EQ(slow_last, fast_last);
	CHECK_EQ(vgs_consumers_list(f.cs, in, 2), 2);
	dropped = in[0].frames_dropped;
	CHECK(slow_gaps > 0);
	CHECK_EQ(slow_gaps, dropped);
	CHECK_EQ(in[0].frames_sent, slow_frames + 1);
	CHECK_EQ(in[1].frames_sent, (uint64_t)n + 1);
	/* Both keep up now: every frame to both, no new drops. */
	for (int i = 0; i < 20; i++) {
		flush(&f, 0, 1, 1, 2, 2, vshm_now_ns());
		CHECK_EQ(next_frame(&f, fast, &fr, NULL, 2000), 1);
		CHECK_EQ(fr.seq, fast_last + 1);
		fast_last = fr.seq;
		release(fast, 0, fr.seq);
		CHECK_EQ(next_frame(&f, slow, &fr, NULL, 2000), 1);
		CHECK_EQ(fr.seq, slow_last + 1);
		slow_last = fr.seq;
		release(slow, 0, fr.seq);
	}
	CHECK_EQ(vgs_consumers_list(f.cs, in, 2), 2);
	CHECK_EQ(in[0].frames_dropped, dropped);
	CHECK_EQ(in[1].frames_dropped, 0);
	munmap((void *)ms, bs.size);
	munmap((void *)mf, bf.size);
	close(slow);
	close(fast);
	fx_finish(&f);
}

/*
 * Flushes before anything went out are one frame: with no consumer the
 * counter stays at the first frame; with one, two flushes in one batch
 * are one FRAME. Neither is a drop; the heartbeat has the newest flush.
 */
TEST(flushes_before_a_send_are_one_frame)
{
	struct fx f;
	struct vshm_display_shm_buffer b;
	struct vshm_display_frame fr, first;
	struct vshm_display_heartbeat_scanout e;
	struct vshm_display_rect r[2];
	struct vgs_consumer_info in;
	const uint8_t *map;
	uint64_t t0 = vshm_now_ns();
	int fd;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	for (int i = 0; i < 3; i++)
		flush(&f, 0, 0, 0, W, H, t0 + 1000000000ull + (uint64_t)i);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	map = up_vshm(&f, fd, &b, &first);
	CHECK_EQ(first.seq, 1);
	CHECK_EQ(first.flush_ns, t0 + 1000000002ull);
	release(fd, 0, first.seq);
	flush(&f, 0, 1, 2, 3, 4, t0 + 2000000000ull);
	flush(&f, 0, 10, 20, 5, 6, t0 + 2000000001ull);
	CHECK_EQ(next_frame(&f, fd, &fr, NULL, 2000), 1);
	CHECK_EQ(fr.seq, 2);
	CHECK_EQ(fr.flush_ns, t0 + 2000000001ull);
	CHECK_EQ(fr.flags, 0);
	CHECK_EQ(fr.num_rects, 2);
	memcpy(r, payload_buf + sizeof(fr), sizeof(r));
	CHECK_EQ(r[0].x, 1);
	CHECK_EQ(r[1].x, 10);
	release(fd, 0, fr.seq);
	heartbeat_after(&f, fd, vshm_now_ns(), &e);
	CHECK_EQ(e.last_seq, 2);
	CHECK_EQ(e.last_flush_ns, t0 + 2000000001ull);
	/* Nothing more: the second flush did not make a frame of its own. */
	CHECK_EQ(next_frame(&f, fd, &fr, NULL, 150), 0);
	CHECK_EQ(vgs_consumers_list(f.cs, &in, 1), 1);
	CHECK_EQ(in.frames_sent, 2);
	CHECK_EQ(in.frames_dropped, 0);
	munmap((void *)map, b.size);
	close(fd);
	fx_finish(&f);
}

/*
 * A frame waiting in the mailbox when the scanout is disabled (after a send
 * pass) is a drop, and the frame after re-enabling shows it as a gap.
 */
TEST(disable_drops_a_pending_frame_with_a_gap)
{
	struct fx f;
	struct vshm_display_shm_buffer b;
	struct vshm_display_frame fr, first;
	struct vgs_scanout_state off = { .scanout_id = 0 };
	struct vgs_consumer_info in;
	const uint8_t *map;
	uint32_t shown = 0;
	int fd;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	map = up_vshm(&f, fd, &b, &first);
	/* Holding two frames (first, first + 1), the third waits in the mailbox. */
	flush(&f, 0, 0, 0, 1, 1, vshm_now_ns());
	CHECK_EQ(next_frame(&f, fd, &fr, NULL, 2000), 1);
	CHECK_EQ(fr.seq, first.seq + 1);
	flush(&f, 0, 0, 0, 1, 1, vshm_now_ns());
	pump(&f, 10);
	f.sink->ops->scanout(f.sink->data, &off);
	pump(&f, 10);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	release(fd, 0, fr.seq);
	CHECK_EQ(next_frame(&f, fd, &fr, &shown, 2000), 1);
	CHECK_EQ(fr.seq, first.seq + 3);
	CHECK(fr.flags & VSHM_DISPLAY_FRAME_F_FULL);
	CHECK_EQ(fr.buffer_id, shown);
	CHECK_EQ(vgs_consumers_list(f.cs, &in, 1), 1);
	CHECK_EQ(in.frames_dropped, 1);
	munmap((void *)map, b.size);
	close(fd);
	fx_finish(&f);
}

TEST(stalled_consumer_is_disconnected_others_get_every_frame)
{
	struct fx f;
	struct vshm_display_shm_buffer b1, b2;
	struct vshm_display_frame fr, f1, f2;
	struct vgs_consumers_stats st;
	const uint8_t *m1, *m2;
	struct msg m;
	int stalled, good;
	uint64_t expect_seq;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	stalled = peer_connect(&f, 0);
	m1 = up_vshm(&f, stalled, &b1, &f1);
	good = peer_connect(&f, 0);
	m2 = up_vshm(&f, good, &b2, &f2);
	release(good, 0, f2.seq);
	expect_seq = f2.seq + 1;
	/* 60 frames 10 ms apart: the stalled one never reads again. */
	for (int i = 0; i < 60; i++) {
		flush(&f, 0, 0, 0, W, 1, vshm_now_ns());
		expect(&f, good, VSHM_DISPLAY_FRAME, 0, &m);
		memcpy(&fr, m.p, sizeof(fr));
		CHECK_EQ(fr.seq, expect_seq);
		expect_seq++;
		release(good, 0, fr.seq);
		pump(&f, 10);
	}
	vgs_consumers_get_stats(f.cs, &st);
	CHECK_EQ(st.connected, 1);
	CHECK_EQ(st.too_slow, 1);
	/* The stalled consumer finds its socket closed once it reads again. */
	for (;;) {
		int r = peer_recv(&f, stalled, &m, 1000);

		CHECK(r != 0);
		if (r < 0)
			break;
		for (unsigned k = 0; k < m.nfds; k++)
			close(m.fds[k]);
	}
	munmap((void *)m1, b1.size);
	munmap((void *)m2, b2.size);
	close(stalled);
	close(good);
	fx_finish(&f);
}

struct garbage {
	uint32_t req, flags, size;
	bool with_fd;
	uint32_t code, detail;
};

TEST(garbage_gets_error_and_disconnect_only_for_that_consumer)
{
	static const struct garbage cases[] = {
		{ VSHM_DISPLAY_STATS, 0x99, 8, false, VSHM_DISPLAY_ERR_BAD_FLAGS, 0x99 },
		{ VSHM_DISPLAY_STATS, 0, 5000, false, VSHM_DISPLAY_ERR_TOO_LARGE, 5000 },
		{ 0x56ee, 0, 0, false, VSHM_DISPLAY_ERR_UNKNOWN_REQUEST, 0 },
		{ VSHM_DISPLAY_HELLO, 0, 48, false, VSHM_DISPLAY_ERR_UNEXPECTED, 0 },
		{ VSHM_DISPLAY_FRAME_RELEASE, 0, 15, false, VSHM_DISPLAY_ERR_MALFORMED, 16 },
		{ VSHM_DISPLAY_STATS, 0, 8, true, VSHM_DISPLAY_ERR_BAD_FDS, 1 },
		{ VSHM_DISPLAY_FRAME_RELEASE, 0, 16, false, VSHM_DISPLAY_ERR_BAD_SEQ, 0 },
		{ VSHM_DISPLAY_FRAME_RELEASE, 1, 16, false, VSHM_DISPLAY_ERR_BAD_FLAGS, 1 },
	};
	struct fx f;
	struct vshm_display_shm_buffer b, gb;
	struct vshm_display_frame fr, gf;
	const uint8_t *map, *gmap;
	struct msg m;
	int good;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	good = peer_connect(&f, 0);
	gmap = up_vshm(&f, good, &gb, &gf);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct garbage *g = &cases[i];
		uint8_t buf[12 + 64] = { 0 };
		struct vhost_user_gpu_hdr h = { g->req, g->flags, g->size };
		struct vshm_display_frame_release rel = { .scanout_id = 0, .seq = 1000000 };
		size_t len = 12 + (g->size <= 64 ? g->size : 0);
		int fd = peer_connect(&f, 0);

		map = up_vshm(&f, fd, &b, &fr);
		memcpy(buf, &h, sizeof(h));
		if (g->req == VSHM_DISPLAY_FRAME_RELEASE && g->size == 16)
			memcpy(buf + 12, &rel, sizeof(rel));
		if (g->with_fd) {
			union {
				struct cmsghdr a;
				char b[CMSG_SPACE(sizeof(int))];
			} ctrl;
			struct iovec iov = { buf, len };
			struct msghdr mh = { .msg_iov = &iov,
				             .msg_iovlen = 1,
				             .msg_control = ctrl.b,
				             .msg_controllen = sizeof(ctrl.b) };
			struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
			int one = 0;

			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &one, sizeof(int));
			CHECK_EQ(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)len);
		} else {
			CHECK_EQ(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
		}
		expect_error(&f, fd, g->code, g->detail);
		munmap((void *)map, b.size);
		close(fd);
		/* The good consumer still gets every frame. */
		flush(&f, 0, 1, 1, 1, 1, vshm_now_ns());
		expect(&f, good, VSHM_DISPLAY_FRAME, 0, &m);
		memcpy(&fr, m.p, sizeof(fr));
		release(good, 0, fr.seq);
	}
	{
		struct vgs_consumers_stats st;

		vgs_consumers_get_stats(f.cs, &st);
		CHECK_EQ(st.connected, 1);
		CHECK_EQ(st.errors, sizeof(cases) / sizeof(cases[0]));
	}
	munmap((void *)gmap, gb.size);
	close(good);
	fx_finish(&f);
}

TEST(heartbeat_period_and_frame_age)
{
	struct fx f;
	struct vshm_display_shm_buffer b;
	struct vshm_display_frame first;
	struct vshm_display_heartbeat hb;
	struct vshm_display_heartbeat_scanout e;
	const uint8_t *map;
	uint64_t prev = 0, tflush, last_age = 0;
	struct msg m;
	int fd;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	map = up_vshm(&f, fd, &b, &first);
	tflush = vshm_now_ns();
	flush(&f, 0, 0, 0, 1, 1, tflush);
	vgs_consumers_note_guest_activity(f.cs);
	for (int i = 0; i < 8; i++) {
		do
			CHECK_EQ(peer_recv(&f, fd, &m, 2000), 1);
		while (m.h.request == VSHM_DISPLAY_FRAME);
		CHECK_EQ(m.h.request, VSHM_DISPLAY_HEARTBEAT);
		CHECK_EQ(m.h.size, sizeof(hb) + sizeof(e));
		memcpy(&hb, m.p, sizeof(hb));
		memcpy(&e, m.p + sizeof(hb), sizeof(e));
		CHECK_EQ(hb.period_ms, 50);
		CHECK_EQ(hb.count, 1);
		CHECK_EQ(e.scanout_id, 0);
		CHECK_EQ(e.flags, VSHM_DISPLAY_HEARTBEAT_F_ENABLED);
		if (i > 0) {
			/* Exact content; the period within scheduling noise. */
			CHECK(hb.guest_activity_ns >= tflush);
			CHECK_EQ(e.last_seq, first.seq + 1);
			CHECK_EQ(e.last_flush_ns, tflush);
			CHECK(hb.now_ns - prev >= 30 * 1000000ull);
			CHECK(hb.now_ns - prev <= 150 * 1000000ull);
			/* The frame's age grows while the guest is silent: a stall is visible. */
			CHECK(hb.now_ns - e.last_flush_ns > last_age);
			last_age = hb.now_ns - e.last_flush_ns;
		}
		prev = hb.now_ns;
	}
	munmap((void *)map, b.size);
	close(fd);
	fx_finish(&f);
}

TEST(stats_reply_release_and_reclaim)
{
	struct fx f;
	struct vshm_display_shm_buffer b;
	struct vshm_display_frame first, fr;
	struct vshm_display_stats st;
	struct vshm_display_stats_scanout e;
	struct vshm_display_stats_request rq = { 0 };
	const uint8_t *map;
	uint64_t total = 0;
	struct msg m;
	int fd;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	map = up_vshm(&f, fd, &b, &first);
	release(fd, 0, first.seq);
	flush(&f, 0, 0, 0, 4, 4, vshm_now_ns());
	expect(&f, fd, VSHM_DISPLAY_FRAME, 0, &m);
	memcpy(&fr, m.p, sizeof(fr));
	/* Not released: reclaimed after the release timeout (100 ms). */
	pump(&f, 250);
	peer_send(fd, VSHM_DISPLAY_STATS, 0, &rq, sizeof(rq));
	expect(&f, fd, VSHM_DISPLAY_STATS, VHOST_USER_GPU_MSG_FLAG_REPLY, &m);
	CHECK_EQ(m.h.size, sizeof(st) + sizeof(e));
	memcpy(&st, m.p, sizeof(st));
	memcpy(&e, m.p + sizeof(st), sizeof(e));
	CHECK(st.consumer_id != 0);
	CHECK_EQ(st.count, 1);
	CHECK_EQ(st.frames_sent, 2);
	CHECK_EQ(st.frames_dropped, 0);
	CHECK_EQ(st.frames_reclaimed, 1);
	CHECK(st.bytes_sent > 0);
	for (int i = 0; i < VSHM_DISPLAY_LATENCY_BUCKETS; i++)
		total += st.latency_hist[i];
	CHECK_EQ(total, 2);
	CHECK_EQ(e.scanout_id, 0);
	CHECK_EQ(e.frames_sent, 2);
	CHECK_EQ(e.last_seq, fr.seq);
	/* More than 20 a second is RATE_LIMITED. */
	for (int i = 0; i < 20; i++)
		peer_send(fd, VSHM_DISPLAY_STATS, 0, &rq, sizeof(rq));
	for (int i = 0; i < 19; i++)
		expect(&f, fd, VSHM_DISPLAY_STATS, VHOST_USER_GPU_MSG_FLAG_REPLY, &m);
	expect_error(&f, fd, VSHM_DISPLAY_ERR_RATE_LIMITED, 0);
	munmap((void *)map, b.size);
	close(fd);
	fx_finish(&f);
}

TEST(buffer_destroy_when_the_image_goes)
{
	struct fx f;
	struct vshm_display_shm_buffer b, b2;
	struct vshm_display_frame first;
	struct vshm_display_buffer_destroy bd;
	struct vshm_display_scanout sc;
	const uint8_t *map, *map2;
	struct msg m;
	int fd;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	map = up_vshm(&f, fd, &b, &first);
	/* A page flip to another image: new buffer, the old one stays while the device has it. */
	show(&f, 1, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	map2 = expect_buffer(&f, fd, &b2);
	CHECK(b2.buffer_id != b.buffer_id);
	expect(&f, fd, VSHM_DISPLAY_SCANOUT, 0, &m);
	memcpy(&sc, m.p, sizeof(sc));
	CHECK_EQ(sc.buffer_id, b2.buffer_id);
	expect(&f, fd, VSHM_DISPLAY_FRAME, 0, &m);
	/* The device drops the first image (RESOURCE_UNREF): BUFFER_DESTROY follows. */
	vgs_image_unref(f.img[0]);
	f.img[0] = NULL;
	expect(&f, fd, VSHM_DISPLAY_BUFFER_DESTROY, 0, &m);
	memcpy(&bd, m.p, sizeof(bd));
	CHECK_EQ(bd.buffer_id, b.buffer_id);
	munmap((void *)map, b.size);
	munmap((void *)map2, b2.size);
	close(fd);
	fx_finish(&f);
}

TEST(cursor_shape_and_moves)
{
	struct fx f;
	struct vshm_display_shm_buffer b, cb, cb2;
	struct vshm_display_frame first;
	struct vshm_display_cursor cu;
	struct vshm_display_buffer_destroy bd;
	const uint8_t *map, *cmap, *cmap2;
	uint32_t px[64 * 64];
	struct msg m;
	int fd;

	fx_init(&f);
	show(&f, 0, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	fd = peer_connect(&f, 0);
	map = up_vshm(&f, fd, &b, &first);
	for (int i = 0; i < 64 * 64; i++)
		px[i] = 0x80000000u | (uint32_t)(i * 13);
	f.sink->ops->cursor_update(f.sink->data, 0, 100, 50, 3, 4, px);
	cmap = expect_buffer(&f, fd, &cb);
	CHECK_EQ(cb.width, 64);
	CHECK_EQ(cb.height, 64);
	CHECK_EQ(cb.drm_fourcc, 0x34325241); /* AR24 */
	CHECK_MEM_EQ(cmap, px, sizeof(px));
	expect(&f, fd, VSHM_DISPLAY_CURSOR, 0, &m);
	memcpy(&cu, m.p, sizeof(cu));
	CHECK_EQ(cu.buffer_id, cb.buffer_id);
	CHECK_EQ(cu.x, 100);
	CHECK_EQ(cu.y, 50);
	CHECK_EQ(cu.hot_x, 3);
	CHECK_EQ(cu.hot_y, 4);
	CHECK_EQ(cu.flags, VSHM_DISPLAY_CURSOR_F_VISIBLE);
	f.sink->ops->cursor_move(f.sink->data, 0, 7, 8, true);
	expect(&f, fd, VSHM_DISPLAY_CURSOR, 0, &m);
	memcpy(&cu, m.p, sizeof(cu));
	CHECK_EQ(cu.buffer_id, cb.buffer_id);
	CHECK_EQ(cu.x, 7);
	f.sink->ops->cursor_move(f.sink->data, 0, 7, 8, false);
	expect(&f, fd, VSHM_DISPLAY_CURSOR, 0, &m);
	memcpy(&cu, m.p, sizeof(cu));
	CHECK_EQ(cu.flags, 0);
	/* A new shape is a new buffer; the old one is destroyed after the CURSOR. */
	px[0] = 1;
	f.sink->ops->cursor_update(f.sink->data, 0, 1, 2, 0, 0, px);
	cmap2 = expect_buffer(&f, fd, &cb2);
	CHECK(cb2.buffer_id != cb.buffer_id);
	expect(&f, fd, VSHM_DISPLAY_CURSOR, 0, &m);
	memcpy(&cu, m.p, sizeof(cu));
	CHECK_EQ(cu.buffer_id, cb2.buffer_id);
	expect(&f, fd, VSHM_DISPLAY_BUFFER_DESTROY, 0, &m);
	memcpy(&bd, m.p, sizeof(bd));
	CHECK_EQ(bd.buffer_id, cb.buffer_id);
	munmap((void *)map, b.size);
	munmap((void *)cmap, cb.size);
	munmap((void *)cmap2, cb2.size);
	close(fd);
	fx_finish(&f);
}

TEST(too_many_consumers)
{
	struct fx f;
	struct vgs_consumers_config cfg;
	struct msg m;
	int fds[3];

	vgs_consumers_config_defaults(&cfg);
	cfg.max_consumers = 2;
	fx_init_cfg(&f, &cfg);
	CHECK_OK(vgs_consumers_listen(f.cs, f.path[0], 0, NULL));
	for (int i = 0; i < 3; i++)
		fds[i] = peer_connect(&f, 0);
	expect(&f, fds[0], VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, &m);
	expect(&f, fds[1], VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, &m);
	expect_error(&f, fds[2], VSHM_DISPLAY_ERR_TOO_MANY_CONSUMERS, 2);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	fx_finish(&f);
}
