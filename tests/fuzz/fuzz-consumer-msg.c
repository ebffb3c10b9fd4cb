/* SPDX-License-Identifier: MIT */
/*
 * fuzz-consumer-msg - the display consumers module (server/consumers.c,
 * consumer*.c) fed a stream of consumer messages on one connection.
 *
 * Input layout: byte 0 = options (bit 0: serve a real --display listener
 * with role "cluster" and scanout mask 0x1 instead of a socketless one,
 * bit 1: short timers (heartbeat 5 ms, release deadline 1 ms), bit 2: two
 * scanouts, bit 3: show a scanout before the consumer connects, bit 4:
 * tiny out-queue and socket buffer), then records: 1 control byte, a
 * 12-byte header and its declared payload (the last one may be cut short).
 * Control byte: bits 0-1 fds to attach (none, memfd, eventfd, both), bit 2
 * flush the scanout after the message, bit 3 show a (new) image on it,
 * bit 4 disable it, bit 5 move / reshape the cursor, bit 6 scanout 1
 * instead of 0, bit 7 do not dispatch the loop before the next record.
 *
 * The daemon's output is read and dropped (fds closed). Must never crash,
 * hang, or leak memory or fds: the fd count is compared around each input.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/event_loop.h>
#include <vshm/log.h>
#include <vshm-proto/qemu-display.h>
#include <vshm-proto/virtio-gpu.h>

#include "consumers.h"
#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RECORDS 128
#define MAX_PAYLOAD 8192u
#define IMG_W       32
#define IMG_H       16

static void quiet(enum vshm_log_level level, const char *msg, void *data)
{
	(void)level;
	(void)msg;
	(void)data;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

struct harness {
	struct vshm_event_loop *loop;
	struct vgs_consumers *cs;
	const struct vgs_display_sink *sink;
	struct vgs_image *img[2];
	uint32_t num_scanouts;
	int peer;
	uint64_t flush_ns;
	uint32_t gen;
};

static char sock_dir[64];

static void remove_sock_dir(void)
{
	rmdir(sock_dir);
}

/* Read and drop whatever the daemon wrote; false once it closed. */
static bool drain(struct harness *h)
{
	static uint8_t buf[65536];

	for (int i = 0; i < 64; i++) {
		union {
			struct cmsghdr a;
			char b[CMSG_SPACE(sizeof(int) * 8)];
		} ctrl;
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		mh.msg_control = ctrl.b;
		mh.msg_controllen = sizeof(ctrl.b);
		n = recvmsg(h->peer, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n == 0)
			return false;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t j = 0; j < k; j++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
				close(fd);
			}
		}
	}
	return true;
}

static void pump(struct harness *h)
{
	for (int i = 0; i < 4; i++) {
		if (vshm_event_loop_dispatch(h->loop, 0) <= 0)
			break;
	}
}

static void show(struct harness *h, uint32_t scanout, bool enable)
{
	struct vgs_scanout_state st = { .scanout_id = scanout, .enabled = enable };
	unsigned idx = h->gen++ & 1;

	if (scanout >= h->num_scanouts)
		return;
	if (enable) {
		if (!h->img[idx]) {
			if (vgs_image_new(IMG_W, IMG_H, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM,
			                  &h->img[idx]) < 0)
				return;
			memset(h->img[idx]->data, 0x5a + (int)idx,
			       (size_t)h->img[idx]->stride * IMG_H);
		}
		st.rect = (struct vgs_rect){ h->gen & 3, 0, IMG_W - (h->gen & 3), IMG_H };
		st.image = h->img[idx];
	}
	h->sink->ops->scanout(h->sink->data, &st);
}

static void flush(struct harness *h, uint32_t scanout, uint8_t ctl)
{
	struct vgs_rect r = { ctl & 7, 1, 8, 4 };

	if (scanout >= h->num_scanouts)
		return;
	if (ctl & 0x8)
		r = (struct vgs_rect){ 0, 0, IMG_W, IMG_H };
	h->flush_ns += 1000;
	h->sink->ops->flush(h->sink->data, scanout, &r, h->flush_ns);
}

static void cursor(struct harness *h, uint32_t scanout, uint8_t ctl)
{
	static uint32_t px[VGS_CURSOR_DIM * VGS_CURSOR_DIM];

	if (scanout >= h->num_scanouts)
		return;
	if (ctl & 1) {
		memset(px, ctl, sizeof(px));
		h->sink->ops->cursor_update(h->sink->data, scanout, ctl, 2, 1, 1,
		                            (ctl & 2) ? px : NULL);
	} else {
		h->sink->ops->cursor_move(h->sink->data, scanout, 3, ctl, ctl & 2);
	}
}

/* Send one message with @nfds fds; false once the daemon is gone. */
static bool send_record(struct harness *h, const uint8_t *msg, size_t len, unsigned kind)
{
	int fds[2], nfds = 0;
	size_t off = 0;
	bool ok = true;

	if (kind & 1) {
		int fd = memfd_create("fuzz", MFD_CLOEXEC);

		if (fd >= 0) {
			if (ftruncate(fd, 4096) < 0) {
				close(fd);
			} else {
				fds[nfds++] = fd;
			}
		}
	}
	if (kind & 2) {
		int fd = eventfd(1, EFD_CLOEXEC);

		if (fd >= 0)
			fds[nfds++] = fd;
	}
	for (int tries = 0; off < len && tries < 64; tries++) {
		union {
			struct cmsghdr a;
			char b[CMSG_SPACE(sizeof(int) * 2)];
		} ctrl;
		struct iovec iov = { (void *)(msg + off), len - off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (off == 0 && nfds) {
			memset(&ctrl, 0, sizeof(ctrl));
			mh.msg_control = ctrl.b;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
		}
		n = sendmsg(h->peer, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			ok = false;
			break;
		}
		pump(h);
		if (!drain(h)) {
			ok = false;
			break;
		}
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t msg[VHOST_USER_GPU_HDR_SIZE + MAX_PAYLOAD];
	struct vgs_consumers_config cfg;
	struct harness h = { .peer = -1, .flush_ns = 1000000 };
	char path[96];
	int sv[2], fds_before;
	uint8_t opts;
	bool alive = true;

	if (size < 1)
		return 0;
	if (getenv("VSHM_FUZZ_LOG")) { /* debugging seeds: show the module's messages */
		vshm_log_set_level(VSHM_LOG_DEBUG);
	} else {
		vshm_log_set_handler(quiet, NULL);
		vshm_log_set_level(VSHM_LOG_ERROR);
	}
	if (!sock_dir[0]) {
		strcpy(sock_dir, "/tmp/vshm-fuzz-cons-XXXXXX");
		if (!mkdtemp(sock_dir))
			abort();
		atexit(remove_sock_dir);
	}
	fds_before = count_fds();
	opts = data[0];
	data++;
	size--;

	vgs_consumers_config_defaults(&cfg);
	cfg.num_scanouts = h.num_scanouts = (opts & 4) ? 2 : 1;
	if (opts & 2) {
		cfg.heartbeat_ms = 5;
		cfg.release_timeout_ms = 1;
	}
	if (opts & 0x10) {
		cfg.max_queued_vshm = 4096;
		cfg.max_queued_qemu = 4096;
		cfg.sndbuf = 4096;
	}
	if (vshm_event_loop_new(&h.loop) < 0)
		abort();
	if (vgs_consumers_new(h.loop, &cfg, &h.cs) < 0)
		abort();
	h.sink = vgs_consumers_sink(h.cs);
	snprintf(path, sizeof(path), "%s/d.sock", sock_dir);
	if ((opts & 1) && vgs_consumers_listen(h.cs, path, 0x1, "cluster") < 0)
		abort();
	if (opts & 8)
		show(&h, 0, true);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	h.peer = sv[1];
	if (vgs_consumers_adopt(h.cs, 0, sv[0]) < 0)
		abort();
	pump(&h);
	alive = drain(&h);

	for (unsigned rec = 0; alive && rec < MAX_RECORDS && size >= 1; rec++) {
		uint8_t ctl = data[0];
		struct vhost_user_gpu_hdr hdr;
		size_t len, plen;
		uint32_t scanout = (ctl >> 6) & 1;

		data++;
		size--;
		len = size < VHOST_USER_GPU_HDR_SIZE ? size : VHOST_USER_GPU_HDR_SIZE;
		memset(&hdr, 0, sizeof(hdr));
		memcpy(&hdr, data, len);
		memcpy(msg, data, len);
		data += len;
		size -= len;
		plen = hdr.size;
		if (plen > size)
			plen = size;
		if (plen > MAX_PAYLOAD)
			plen = MAX_PAYLOAD;
		memcpy(msg + len, data, plen);
		data += plen;
		size -= plen;
		if (len)
			alive = send_record(&h, msg, len + plen, ctl & 3);

		if (ctl & 0x10)
			show(&h, scanout, false);
		if (ctl & 0x08)
			show(&h, scanout, true);
		if (ctl & 0x04)
			flush(&h, scanout, ctl);
		if (ctl & 0x20)
			cursor(&h, scanout, ctl);
		if (!(ctl & 0x80) || !size) {
			pump(&h);
			alive = drain(&h) && alive;
		}
	}
	pump(&h);
	drain(&h);
	close(h.peer);
	pump(&h);

	vgs_consumers_destroy(h.cs);
	vshm_event_loop_destroy(h.loop);
	for (int i = 0; i < 2; i++)
		vgs_image_unref(h.img[i]);
	unlink(path);
	if (count_fds() != fds_before)
		abort(); /* an fd leaked */
	return 0;
}
