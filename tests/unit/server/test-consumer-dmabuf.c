/* SPDX-License-Identifier: MIT */
/*
 * test-consumer-dmabuf.c - guest-blob scanouts to vshm consumers
 * (server/consumer_dmabuf.c): the SHM / DMABUF / COPY decision, the
 * features offered, the exact DMABUF_BUFFER bytes and fds, FRAME fences,
 * FRAME_RELEASE fences and the COPY fallback's content and counters.
 *
 * This host has no /dev/udmabuf, so the dma-buf provider is replaced: a
 * memfd stands in for the image's dma-buf and an eventfd for a sync_file.
 * The real kernel paths run in the e2e guest (tests/e2e, test "dmabuf").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vshm/conn.h>
#include <vshm/event_loop.h>
#include <vshm/log.h>
#include <vshm-proto/qemu-display.h>
#include <vshm-proto/virtio-gpu.h>
#include <vshm-proto/vshm-display.h>

#include "consumers-internal.h"
#include "consumers.h"
#include "image.h"
#include "test-runner.h"

#define W      64
#define H      32
#define STRIDE (W * 4 + 64)
#define OFFSET 4096u
#define MAXP   (1u << 16)

/* ---- the fake provider ---- */

struct fake {
	bool available;
	int fence_support;
	unsigned exports, fences;
};

static bool f_available(void *data, const char **reason)
{
	struct fake *f = data;

	if (reason)
		*reason = f->available ? "available" : "fake: no udmabuf";
	return f->available;
}

static int f_export_image(void *data, const struct vgs_image *img, int *fd, uint64_t *offset)
{
	struct fake *f = data;

	if (!img->has_dmabuf)
		return -ENOENT;
	f->exports++;
	*fd = fcntl(img->dmabuf_fd, F_DUPFD_CLOEXEC, 0);
	*offset = img->dmabuf_offset;
	return *fd < 0 ? -errno : 0;
}

static int f_export_fence(void *data, int dmabuf_fd, int *sync_file)
{
	struct fake *f = data;

	(void)dmabuf_fd;
	f->fences++;
	*sync_file = eventfd(1, EFD_CLOEXEC); /* already signaled */
	return *sync_file < 0 ? -errno : 0;
}

static int f_fence_support(void *data)
{
	return ((struct fake *)data)->fence_support;
}

static const struct vgs_consumers_dmabuf_ops fake_ops = {
	f_available,
	f_export_image,
	f_export_fence,
	f_fence_support,
};

/* ---- fixture: the consumers module, one listener, a guest-blob view ---- */

struct fx {
	struct vshm_event_loop *loop;
	struct vgs_consumers *cs;
	const struct vgs_display_sink *sink;
	struct fake fake;
	char dir[64], path[96];
	int memfd; /* "guest RAM": the view's pixels and the stand-in dma-buf */
	uint8_t *ram;
	struct vgs_image *view;
};

struct msg {
	struct vhost_user_gpu_hdr h;
	uint8_t p[MAXP];
	int fds[4];
	unsigned nfds;
};

static void fx_init(struct fx *f, bool available, bool image_dmabuf)
{
	struct vgs_consumers_config cfg;
	struct vgs_scanout_state st = { .scanout_id = 0, .enabled = true, .rect = { 0, 0, W, H } };
	size_t len = OFFSET + (size_t)STRIDE * H;

	vshm_log_set_level(VSHM_LOG_ERROR);
	memset(f, 0, sizeof(*f));
	f->fake = (struct fake){ .available = available, .fence_support = 1 };
	vgs_consumers_config_defaults(&cfg);
	cfg.heartbeat_ms = 1000;
	CHECK_OK(vshm_event_loop_new(&f->loop));
	CHECK_OK(vgs_consumers_new(f->loop, &cfg, &f->cs));
	vgs_consumers_set_dmabuf_ops(f->cs, &fake_ops, &f->fake);
	f->sink = vgs_consumers_sink(f->cs);
	strcpy(f->dir, "/tmp/vshm-cdma-XXXXXX");
	CHECK(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/d.sock", f->dir);
	CHECK_OK(vgs_consumers_listen(f->cs, f->path, 0, NULL));

	/* Like a guest blob: not a sealed memfd of its own, pixel (0,0) at OFFSET. */
	f->memfd = memfd_create("fake-guest-ram", MFD_CLOEXEC);
	CHECK(f->memfd >= 0);
	CHECK_OK(ftruncate(f->memfd, (off_t)len));
	f->ram = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	CHECK(f->ram != MAP_FAILED);
	for (size_t i = 0; i < len; i++)
		f->ram[i] = (uint8_t)(i * 13 + 1);
	CHECK_OK(vgs_image_new_view(f->ram + OFFSET, (uint64_t)STRIDE * H, STRIDE, W, H,
	                            VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, -1, NULL, NULL, &f->view));
	if (image_dmabuf) {
		f->view->has_dmabuf = true;
		f->view->dmabuf_fd = f->memfd;
		f->view->dmabuf_offset = OFFSET;
	}
	st.image = f->view;
	f->sink->ops->scanout(f->sink->data, &st);
}

static void fx_finish(struct fx *f)
{
	vgs_consumers_destroy(f->cs);
	vshm_event_loop_destroy(f->loop);
	vgs_image_unref(f->view);
	munmap(f->ram, OFFSET + (size_t)STRIDE * H);
	close(f->memfd);
	unlink(f->path);
	rmdir(f->dir);
}

/* 1: a message; 0: timeout; -1: EOF. Runs the loop while waiting. */
static int peer_recv(struct fx *f, int fd, struct msg *m, int timeout_ms)
{
	uint64_t end = vshm_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	size_t got = 0, want = sizeof(m->h);
	bool hdr = true;

	m->nfds = 0;
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
			if (want == 0)
				return 1;
			continue;
		}
		mh.msg_control = ctrl.b;
		mh.msg_controllen = sizeof(ctrl.b);
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n > 0) {
			for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
				for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				     i++)
					memcpy(&m->fds[m->nfds++], CMSG_DATA(c) + i * sizeof(int),
					       sizeof(int));
			got += (size_t)n;
			continue;
		}
		if (n == 0 || errno != EAGAIN)
			return -1;
		if (vshm_now_ns() > end)
			return 0;
		CHECK(vshm_event_loop_dispatch(f->loop, 1) >= 0);
	}
}

/* The next message other than HEARTBEAT/CURSOR must be @id. */
static void expect(struct fx *f, int fd, uint32_t id, struct msg *m)
{
	for (;;) {
		int r = peer_recv(f, fd, m, 2000);

		if (r != 1)
			vshm_test_fail(__FILE__, __LINE__, "expected 0x%x, got %s", id,
			               r ? "EOF" : "nothing");
		if (m->h.request == id)
			return;
		if (m->h.request != VSHM_DISPLAY_HEARTBEAT && m->h.request != VSHM_DISPLAY_CURSOR)
			vshm_test_fail(__FILE__, __LINE__, "expected 0x%x, got 0x%x", id,
			               m->h.request);
		for (unsigned i = 0; i < m->nfds; i++)
			close(m->fds[i]);
	}
}

static void peer_send(int fd, uint32_t req, uint32_t flags, const void *p, uint32_t n, int sendfd)
{
	struct vhost_user_gpu_hdr h = { req, flags, n };
	uint8_t buf[256];
	union {
		struct cmsghdr a;
		char b[CMSG_SPACE(sizeof(int))];
	} ctrl;
	struct iovec iov = { buf, sizeof(h) + n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), p, n);
	if (sendfd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = ctrl.b;
		mh.msg_controllen = sizeof(ctrl.b);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &sendfd, sizeof(int));
	}
	CHECK_EQ(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)(sizeof(h) + n));
}

/* Connect, negotiate offering @feat, HELLO for scanout 0; returns the negotiated set. */
static int peer_start(struct fx *f, uint64_t feat, uint64_t *negotiated)
{
	struct vshm_display_hello h = { .version = 1, .scanouts = 1 };
	struct msg *m = malloc(sizeof(*m));
	int fd;

	CHECK_OK(vshm_unix_connect(f->path, &fd));
	expect(f, fd, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, m);
	peer_send(fd, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, VHOST_USER_GPU_MSG_FLAG_REPLY, &feat, 8,
	          -1);
	expect(f, fd, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, m);
	memcpy(negotiated, m->p, 8);
	strcpy(h.role, "test");
	peer_send(fd, VSHM_DISPLAY_HELLO, 0, &h, sizeof(h), -1);
	expect(f, fd, VSHM_DISPLAY_HELLO, m);
	free(m);
	return fd;
}

static void flush_all(struct fx *f)
{
	struct vgs_rect r = { 0, 0, W, H };

	f->sink->ops->flush(f->sink->data, 0, &r, vshm_now_ns());
}

static struct vgs_consumer_info info0(struct fx *f)
{
	struct vgs_consumer_info in;

	CHECK_EQ(vgs_consumers_list(f->cs, &in, 1), 1);
	return in;
}

/* ---- tests ---- */

TEST(decision)
{
	CHECK_EQ(cons_buffer_decide(true, true, true), CBUF_SHM);
	CHECK_EQ(cons_buffer_decide(true, false, false), CBUF_SHM);
	CHECK_EQ(cons_buffer_decide(false, true, true), CBUF_DMABUF);
	CHECK_EQ(cons_buffer_decide(false, false, true), CBUF_COPY);
	CHECK_EQ(cons_buffer_decide(false, true, false), CBUF_COPY);
	CHECK_EQ(cons_buffer_decide(false, false, false), CBUF_COPY);
}

TEST(features_offered)
{
	const uint64_t all = VSHM_DISPLAY_PROTOCOL_F_VSHM | VSHM_DISPLAY_PROTOCOL_F_VSHM_DMABUF |
	                     VSHM_DISPLAY_PROTOCOL_F_VSHM_FENCE;
	struct fx f;
	uint64_t neg;
	int fd;

	/* dma-bufs possible: DMABUF and FENCE granted to a consumer that wants them */
	fx_init(&f, true, true);
	fd = peer_start(&f, all | VHOST_USER_GPU_PROTOCOL_F_EDID, &neg);
	CHECK_EQ(neg, all);
	close(fd);
	f.fake.fence_support = 0; /* the kernel lacks the sync_file ioctls: no FENCE */
	fd = peer_start(&f, all, &neg);
	CHECK_EQ(neg, VSHM_DISPLAY_PROTOCOL_F_VSHM | VSHM_DISPLAY_PROTOCOL_F_VSHM_DMABUF);
	close(fd);
	fx_finish(&f);

	/* no udmabuf: neither */
	fx_init(&f, false, false);
	fd = peer_start(&f, all, &neg);
	CHECK_EQ(neg, VSHM_DISPLAY_PROTOCOL_F_VSHM);
	close(fd);
	fx_finish(&f);
}

TEST(dmabuf_buffer_bytes_and_fences)
{
	const uint64_t all = VSHM_DISPLAY_PROTOCOL_F_VSHM | VSHM_DISPLAY_PROTOCOL_F_VSHM_DMABUF |
	                     VSHM_DISPLAY_PROTOCOL_F_VSHM_FENCE;
	struct vshm_display_dmabuf_buffer want, got;
	struct vshm_display_frame fr;
	struct vshm_display_frame_release rel = { .scanout_id = 0,
		                                  .flags = VSHM_DISPLAY_RELEASE_F_FENCE };
	struct vshm_display_stats_request sreq = { 0 };
	struct msg *m = malloc(sizeof(*m));
	struct stat a, b;
	struct fx f;
	uint64_t neg;
	int fd, efd;

	fx_init(&f, true, true);
	fd = peer_start(&f, all, &neg);
	expect(&f, fd, VSHM_DISPLAY_DMABUF_BUFFER, m);
	CHECK_EQ(m->h.size, 64);
	CHECK_EQ(m->nfds, 1);
	memset(&want, 0, sizeof(want));
	want.buffer_id = 1;
	want.width = W;
	want.height = H;
	want.drm_fourcc = 0x34325258; /* 'XR24' */
	want.flags = VSHM_DISPLAY_BUFFER_F_Y_0_TOP;
	want.num_planes = 1;
	want.modifier = 0; /* DRM_FORMAT_MOD_LINEAR */
	want.planes[0].offset = OFFSET;
	want.planes[0].stride = STRIDE;
	memcpy(&got, m->p, sizeof(got));
	CHECK(!memcmp(&got, &want, sizeof(want)));
	/* The fd is the image's dma-buf (here: the stand-in memfd). */
	CHECK_OK(fstat(m->fds[0], &a));
	CHECK_OK(fstat(f.memfd, &b));
	CHECK_EQ(a.st_ino, b.st_ino);
	close(m->fds[0]);
	expect(&f, fd, VSHM_DISPLAY_SCANOUT, m);
	expect(&f, fd, VSHM_DISPLAY_FRAME, m);
	memcpy(&fr, m->p, sizeof(fr));
	CHECK_EQ(fr.buffer_id, 1);
	CHECK_EQ(fr.flags, VSHM_DISPLAY_FRAME_F_FULL | VSHM_DISPLAY_FRAME_F_FENCE);
	CHECK_EQ(m->nfds, 1); /* the sync_file */
	close(m->fds[0]);
	CHECK_EQ(f.fake.fences, 1);

	/* a release with a fence is accepted with VSHM_FENCE */
	rel.seq = fr.seq;
	efd = eventfd(1, EFD_CLOEXEC);
	peer_send(fd, VSHM_DISPLAY_FRAME_RELEASE, 0, &rel, sizeof(rel), efd);
	close(efd);
	flush_all(&f);
	expect(&f, fd, VSHM_DISPLAY_FRAME, m);
	memcpy(&fr, m->p, sizeof(fr));
	CHECK_EQ(fr.flags & VSHM_DISPLAY_FRAME_F_FENCE, VSHM_DISPLAY_FRAME_F_FENCE);
	close(m->fds[0]);
	peer_send(fd, VSHM_DISPLAY_STATS, 0, &sreq, sizeof(sreq), -1);
	expect(&f, fd, VSHM_DISPLAY_STATS, m); /* still connected */
	CHECK_EQ(info0(&f).frames_dmabuf, 2);
	CHECK_EQ(info0(&f).frames_copy, 0);

	/* FENCE without an fd: BAD_FDS */
	rel.seq = fr.seq;
	peer_send(fd, VSHM_DISPLAY_FRAME_RELEASE, 0, &rel, sizeof(rel), -1);
	expect(&f, fd, VSHM_DISPLAY_ERROR, m);
	CHECK_EQ(((struct vshm_display_error *)m->p)->code, VSHM_DISPLAY_ERR_BAD_FDS);
	close(fd);
	fx_finish(&f);
	free(m);
}

/* @dmabuf_consumer / @image_dmabuf / @available: any missing piece means COPY. */
static void copy_case(bool available, bool image_dmabuf, uint64_t feat)
{
	struct vshm_display_shm_buffer sb;
	struct vshm_display_frame fr;
	struct vgs_consumers_stats st;
	struct msg *m = malloc(sizeof(*m));
	const uint8_t *p;
	struct fx f;
	uint64_t neg;
	int fd;

	fx_init(&f, available, image_dmabuf);
	fd = peer_start(&f, feat, &neg);
	expect(&f, fd, VSHM_DISPLAY_SHM_BUFFER, m);
	CHECK_EQ(m->nfds, 1);
	memcpy(&sb, m->p, sizeof(sb));
	CHECK_EQ(sb.width, W);
	p = mmap(NULL, sb.size, PROT_READ, MAP_SHARED, m->fds[0], 0);
	CHECK(p != MAP_FAILED);
	/* a sealed copy, not the guest memory: read-only and not the same file */
	CHECK(mmap(NULL, sb.size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fds[0], 0) == MAP_FAILED);
	for (uint32_t y = 0; y < H; y++)
		CHECK(!memcmp(p + sb.offset + (size_t)y * sb.stride,
		              f.ram + OFFSET + (size_t)y * STRIDE, W * 4));
	expect(&f, fd, VSHM_DISPLAY_SCANOUT, m);
	expect(&f, fd, VSHM_DISPLAY_FRAME, m);
	memcpy(&fr, m->p, sizeof(fr));
	CHECK_EQ(fr.flags & VSHM_DISPLAY_FRAME_F_FENCE, 0);
	CHECK_EQ(m->nfds, 0);
	/* the guest draws, flushes: the copy follows */
	memset(f.ram + OFFSET + 5 * STRIDE, 0xab, W * 4);
	flush_all(&f);
	expect(&f, fd, VSHM_DISPLAY_FRAME, m);
	CHECK_EQ(p[sb.offset + 5 * sb.stride + 17], 0xab);
	CHECK_EQ(info0(&f).frames_copy, 2);
	CHECK_EQ(info0(&f).frames_dmabuf, 0);
	vgs_consumers_get_stats(f.cs, &st);
	CHECK_EQ(st.copies, 2); /* the first full copy and the flush */
	CHECK_EQ(st.copy_bytes, 2ull * W * 4 * H);
	CHECK_EQ(st.frames_copy, 2);
	munmap((void *)p, sb.size);
	close(m->fds[0]);
	close(fd);
	fx_finish(&f);
	free(m);
}

TEST(copy_fallback)
{
	const uint64_t vshm = VSHM_DISPLAY_PROTOCOL_F_VSHM;
	const uint64_t dma = VSHM_DISPLAY_PROTOCOL_F_VSHM_DMABUF;

	copy_case(false, false, vshm | dma); /* no udmabuf */
	copy_case(true, true, vshm);         /* the consumer takes no dma-bufs */
	copy_case(true, false, vshm | dma);  /* the image has no dma-buf */
}
