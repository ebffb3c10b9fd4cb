/* SPDX-License-Identifier: MIT */
/*
 * test-consumers-daemon.c - the built vshm-gpu with --display and no QEMU
 * display socket (crosvm style): a mini VMM (tests/frontend) brings the
 * device up and draws, a vshm consumer reads the exact pixels straight
 * from the shared memory it was given (zero-copy: no UPDATE ever arrives).
 *
 * The daemon's path is the test's first argument (meson passes it).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <vshm/conn.h>
#include <vshm-proto/qemu-display.h>
#include <vshm-proto/vshm-display.h>

#include "backend-proc.h"
#include "gpu-driver.h"
#include "test-runner.h"

#define W 320
#define H 200

static uint8_t payload[1u << 20];

static const char *daemon_path(void)
{
	const char *p = vshm_test_arg(1);

	return p ? p : getenv("VSHM_GPU_EXE");
}

struct msg {
	struct vhost_user_gpu_hdr h;
	int fd;
};

/* Blocking read of one message (payload into payload[]), 5 s at most. */
static void recv_msg(int sock, struct msg *m)
{
	size_t got = 0, want = sizeof(m->h);
	uint8_t *dst = (uint8_t *)&m->h;
	bool hdr = true;

	m->fd = -1;
	for (;;) {
		union {
			struct cmsghdr a;
			char b[CMSG_SPACE(sizeof(int) * 4)];
		} ctrl;
		struct iovec iov = { dst + got, want - got };
		struct msghdr mh = { .msg_iov = &iov,
			             .msg_iovlen = 1,
			             .msg_control = ctrl.b,
			             .msg_controllen = sizeof(ctrl.b) };
		struct pollfd p = { sock, POLLIN, 0 };
		ssize_t n;

		if (got == want) {
			if (!hdr)
				return;
			CHECK(m->h.size <= sizeof(payload));
			hdr = false;
			dst = payload;
			got = 0;
			want = m->h.size;
			continue;
		}
		CHECK_EQ(poll(&p, 1, 5000), 1);
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		CHECK(n > 0);
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_type == SCM_RIGHTS)
				memcpy(&m->fd, CMSG_DATA(c), sizeof(int));
		got += (size_t)n;
	}
}

static void send_msg(int sock, uint32_t req, uint32_t flags, const void *p, uint32_t n)
{
	uint8_t buf[12 + 64];
	struct vhost_user_gpu_hdr h = { req, flags, n };

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), p, n);
	CHECK_EQ(send(sock, buf, sizeof(h) + n, MSG_NOSIGNAL), (ssize_t)(sizeof(h) + n));
}

/* Read until a FRAME of scanout 0 with seq >= @min_seq; tracks buffers and the scanout. */
struct view {
	uint32_t buffer_id;
	const uint8_t *map[8];
	uint32_t ids[8];
	struct vshm_display_shm_buffer bufs[8];
	unsigned n;
	uint64_t updates;
};

static const struct vshm_display_shm_buffer *find(struct view *v, uint32_t id, const uint8_t **map)
{
	for (unsigned i = 0; i < v->n; i++)
		if (v->ids[i] == id) {
			*map = v->map[i];
			return &v->bufs[i];
		}
	return NULL;
}

static void take_buffer(struct view *v, struct msg *m)
{
	CHECK(v->n < 8);
	CHECK(m->fd >= 0);
	memcpy(&v->bufs[v->n], payload, sizeof(v->bufs[0]));
	v->ids[v->n] = v->bufs[v->n].buffer_id;
	v->map[v->n] = mmap(NULL, v->bufs[v->n].size, PROT_READ, MAP_SHARED, m->fd, 0);
	CHECK(v->map[v->n] != MAP_FAILED);
	close(m->fd);
	v->n++;
}

static void wait_frame(int sock, struct view *v, uint64_t min_seq, struct vshm_display_frame *fr)
{
	for (;;) {
		struct msg m;

		recv_msg(sock, &m);
		if (m.h.request == VHOST_USER_GPU_UPDATE)
			v->updates++;
		if (m.h.request == VSHM_DISPLAY_SHM_BUFFER) {
			take_buffer(v, &m);
			continue;
		}
		if (m.fd >= 0)
			close(m.fd);
		if (m.h.request == VSHM_DISPLAY_FRAME) {
			memcpy(fr, payload, sizeof(*fr));
			if (fr->scanout_id == 0 && fr->seq >= min_seq)
				return;
		}
	}
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * The FRAME of scanout 0 that has everything the guest flushed before
 * @after_ns: the first HEARTBEAT sent after then names the newest frame
 * (a flush that found its frame not yet sent merged into it, protocol 9.1).
 */
static void wait_frame_after(int sock, struct view *v, uint64_t after_ns,
                             struct vshm_display_frame *fr)
{
	uint64_t want = 0;
	bool got = false;

	for (;;) {
		struct msg m;

		recv_msg(sock, &m);
		if (m.h.request == VSHM_DISPLAY_SHM_BUFFER) {
			take_buffer(v, &m);
			continue;
		}
		if (m.fd >= 0)
			close(m.fd);
		if (m.h.request == VSHM_DISPLAY_FRAME) {
			struct vshm_display_frame f;

			memcpy(&f, payload, sizeof(f));
			if (f.scanout_id == 0) {
				*fr = f;
				got = true;
			}
		} else if (m.h.request == VSHM_DISPLAY_HEARTBEAT && !want) {
			struct vshm_display_heartbeat hb;
			struct vshm_display_heartbeat_scanout e;

			memcpy(&hb, payload, sizeof(hb));
			CHECK_EQ(hb.count, 1);
			memcpy(&e, payload + sizeof(hb), sizeof(e));
			CHECK_EQ(e.scanout_id, 0);
			if (hb.now_ns >= after_ns)
				want = e.last_seq;
		}
		if (want && got && fr->seq >= want)
			return;
	}
}

/* STATS round trip: the newest seq sent on scanout 0 (everything before the reply is in). */
static uint64_t stats_last_seq(int sock, struct view *v)
{
	struct vshm_display_stats_request sr = { 0, 0 };
	struct vshm_display_stats_scanout e;
	struct msg m;

	send_msg(sock, VSHM_DISPLAY_STATS, 0, &sr, sizeof(sr));
	for (;;) {
		recv_msg(sock, &m);
		if (m.h.request == VSHM_DISPLAY_SHM_BUFFER) {
			take_buffer(v, &m);
			continue;
		}
		if (m.fd >= 0)
			close(m.fd);
		if (m.h.request == VSHM_DISPLAY_STATS) {
			CHECK(m.h.size >= sizeof(struct vshm_display_stats) + sizeof(e));
			memcpy(&e, payload + sizeof(struct vshm_display_stats), sizeof(e));
			return e.last_seq;
		}
	}
}

/*
 * FRAME_RELEASE of everything sent, until a release lets no newer frame out
 * of the mailbox (the daemon sends few frames ahead of releases); the seq.
 */
static uint64_t release_all(int sock, struct view *v)
{
	uint64_t seq = stats_last_seq(sock, v);

	for (;;) {
		struct vshm_display_frame_release rel = { .scanout_id = 0, .seq = seq };
		uint64_t now;

		send_msg(sock, VSHM_DISPLAY_FRAME_RELEASE, 0, &rel, sizeof(rel));
		usleep(50000);
		now = stats_last_seq(sock, v);
		if (now == seq)
			return seq;
		seq = now;
	}
}

static void check_pixels(struct view *v, const struct vshm_display_frame *fr,
                         const struct tgd_resource *res)
{
	const struct vshm_display_shm_buffer *b;
	const uint8_t *map = NULL;

	b = find(v, fr->buffer_id, &map);
	CHECK(b != NULL);
	CHECK_EQ(b->width, W);
	CHECK_EQ(b->height, H);
	for (uint32_t y = 0; y < H; y++)
		CHECK_MEM_EQ(map + b->offset + (size_t)y * b->stride,
		             (const uint8_t *)res->pixels + (size_t)y * res->stride, W * 4);
}

TEST(daemon_display_consumer_reads_exact_pixels_zero_copy)
{
	const char *exe = daemon_path();
	char dir[] = "/tmp/vshm-cint-XXXXXX", sock_path[64], arg[160];
	const char *args[4];
	struct tbp be;
	struct tgd *g;
	struct tgd_resource res;
	struct tgd_bringup bu = { 0 };
	struct vshm_display_hello hello = { .version = 1, .scanouts = 1 };
	struct vshm_display_hello_reply rep;
	struct vshm_display_frame fr;
	struct vshm_display_rect rect;
	struct view v = { 0 };
	uint64_t feat = VSHM_DISPLAY_PROTOCOL_F_VSHM;
	struct msg m;
	int sock;

	CHECK(exe != NULL);
	CHECK(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%.40s/cons.sock", dir);
	snprintf(arg, sizeof(arg), "--display=%s,scanouts=0,role=recorder", sock_path);
	args[0] = arg;
	args[1] = "--heartbeat-ms=50";
	args[2] = "--mode=320x200";
	args[3] = NULL;
	CHECK_OK(tbp_spawn(exe, args, false, 5000, &be));
	CHECK_OK(tgd_new(NULL, &g));
	CHECK_OK(tgd_connect(g, be.sock));
	/* No display hook: this VMM never sends request 33. */
	CHECK_OK(tgd_bringup_qemu(g, &bu));

	CHECK_OK(vshm_unix_connect(sock_path, &sock));
	recv_msg(sock, &m);
	CHECK_EQ(m.h.request, VHOST_USER_GPU_GET_PROTOCOL_FEATURES);
	send_msg(sock, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, VHOST_USER_GPU_MSG_FLAG_REPLY, &feat,
	         8);
	recv_msg(sock, &m);
	CHECK_EQ(m.h.request, VHOST_USER_GPU_SET_PROTOCOL_FEATURES);
	strcpy(hello.role, "recorder");
	send_msg(sock, VSHM_DISPLAY_HELLO, 0, &hello, sizeof(hello));
	recv_msg(sock, &m);
	CHECK_EQ(m.h.request, VSHM_DISPLAY_HELLO);
	memcpy(&rep, payload, sizeof(rep));
	CHECK_EQ(rep.granted, 1);
	CHECK_EQ(rep.heartbeat_period_ms, 50);

	/* The guest draws. */
	CHECK_OK(tgd_resource_new(g, 1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, W, H, 3, &res));
	tgd_fill(&res, TGD_PATTERN_HASH, 1);
	CHECK_OK(tgd_set_scanout(g, 0, res.id, 0, 0, W, H));
	CHECK_OK(tgd_transfer_to_host_2d(g, res.id, 0, 0, W, H, 0, false));
	CHECK_OK(tgd_resource_flush(g, res.id, 0, 0, W, H, true));
	wait_frame_after(sock, &v, mono_ns(), &fr);
	check_pixels(&v, &fr, &res);

	/*
	 * Release every frame sent so far first: a held frame's buffer is never
	 * written (the daemon would move to another buffer: SCANOUT + FULL).
	 */
	fr.seq = release_all(sock, &v);

	/* A damaged sub-rectangle: the FRAME names it, the memory has it. */
	tgd_fill_rect(&res, 17, 33, 101, 57, TGD_PATTERN_HASH, 2);
	CHECK_OK(tgd_transfer_to_host_2d(g, res.id, 17, 33, 101, 57,
	                                 (uint64_t)33 * res.stride + 17 * 4, false));
	CHECK_OK(tgd_resource_flush(g, res.id, 17, 33, 101, 57, true));
	wait_frame(sock, &v, fr.seq + 1, &fr);
	CHECK_EQ(fr.num_rects, 1);
	memcpy(&rect, payload + sizeof(fr), sizeof(rect));
	CHECK_EQ(rect.x, 17);
	CHECK_EQ(rect.y, 33);
	CHECK_EQ(rect.width, 101);
	CHECK_EQ(rect.height, 57);
	CHECK(fr.send_ns >= fr.flush_ns);
	check_pixels(&v, &fr, &res);
	CHECK_EQ(v.updates, 0);

	close(sock);
	for (unsigned i = 0; i < v.n; i++)
		munmap((void *)v.map[i], v.bufs[i].size);
	tgd_destroy(g);
	CHECK_EQ(tbp_stop(&be), 0);
	unlink(sock_path);
	rmdir(dir);
}
