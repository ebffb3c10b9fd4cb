/* SPDX-License-Identifier: MIT */
/*
 * fuzz-vsc-msg - the consumer library (clients/consumer.c) fed a stream of
 * daemon messages on one connection.
 *
 * Input layout: byte 0 = options (bit 0: QEMU-only mode, bit 1: allow the
 * QEMU-only fallback, bit 2: offer VSHM_FENCE, bit 3: NO_CURSOR, bit 4:
 * manual release, bit 5: ask for scanouts 0 and 1, bit 6: request STATS
 * once ready, bit 7: release the newest frame after each record), then
 * records: 1 control byte, a 12-byte header and its declared payload (the
 * last one may be cut short). Control byte bits 0-2 choose the fds sent
 * with the message: none, a sealed read-only memfd sized as the payload's
 * SHM_BUFFER.size says (so SHM_BUFFER is reachable), the same unsealed, a
 * signalled eventfd, an unsignalled eventfd, two sealed memfds, a sealed
 * but writable memfd, a pipe; bit 3 makes the memfd one byte too large.
 *
 * The callback reads every pixel a FRAME or CURSOR points at, so a bounds
 * check the library misses shows up under ASan (or as SIGBUS). Must never
 * crash, hang, or leak memory or fds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/log.h>
#include <vshm-proto/qemu-display.h>
#include <vshm-proto/vshm-display.h>

#include "consumer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RECORDS 128
#define MAX_PAYLOAD (64u * 1024u)
#define MAX_MEMFD   (1u << 20)

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

static volatile uint8_t sink_byte;
static bool verbose;

static void touch(const uint8_t *p, uint32_t rows, uint32_t stride, uint64_t row_bytes)
{
	uint8_t acc = 0;

	if (!p)
		return;
	for (uint32_t y = 0; y < rows; y++) {
		const uint8_t *r = p + (uint64_t)y * stride;

		/* First and last byte of each row, plus a stride through it. */
		for (uint64_t x = 0; x < row_bytes; x += 61)
			acc ^= r[x];
		if (row_bytes)
			acc ^= r[row_bytes - 1];
	}
	sink_byte ^= acc;
}

struct harness {
	int peer;
	uint8_t opts;
	uint32_t last_scanout;
	uint64_t last_seq;
	bool have_frame, stats_sent;
};

static void on_event(void *data, struct vsc *c, const struct vsc_event *ev)
{
	struct harness *h = data;

	if (verbose)
		fprintf(stderr, "event %d scanout %u buffer %u\n", ev->type, ev->scanout_id,
		        ev->buffer_id);
	switch (ev->type) {
	case VSC_EV_FRAME: {
		const struct vsc_frame *f = ev->frame;
		unsigned bpp = vsc_format_bpp(f->fourcc);
		uint64_t bytes_pp = bpp ? bpp : 1;

		if (f->full || f->num_rects == 0) {
			touch(f->pixels, f->height, f->stride, (uint64_t)f->width * bytes_pp);
		} else {
			for (uint32_t i = 0; i < f->num_rects && i < VSHM_DISPLAY_MAX_RECTS; i++) {
				const struct vsc_rect *r = &f->rects[i];

				touch(f->pixels + (uint64_t)r->y * f->stride + r->x * bytes_pp,
				      r->height, f->stride, (uint64_t)r->width * bytes_pp);
			}
		}
		h->have_frame = true;
		h->last_scanout = f->scanout_id;
		h->last_seq = f->seq;
		break;
	}
	case VSC_EV_CURSOR: {
		struct vsc_cursor_info ci;

		vsc_cursor(c, &ci);
		touch(ci.pixels, ci.height, ci.stride, (uint64_t)ci.width * 4);
		break;
	}
	case VSC_EV_SCANOUT: {
		struct vsc_scanout_info si;
		bool known;

		vsc_scanout(c, ev->scanout_id, &si);
		vsc_frame_age_ns(c, ev->scanout_id, vsc_now_ns(), &known);
		break;
	}
	case VSC_EV_READY:
		if ((h->opts & 0x40) && !h->stats_sent) {
			h->stats_sent = true;
			vsc_request_stats(c);
		}
		break;
	case VSC_EV_STATS: {
		const struct vshm_display_stats_scanout *e;
		uint32_t n;

		vsc_stats(c, &e, &n);
		break;
	}
	case VSC_EV_ERROR: {
		struct vshm_display_error err;

		vsc_daemon_error(c, &err);
		break;
	}
	default:
		break;
	}
}

/* Read and drop whatever the library wrote. */
static void drain(int fd)
{
	static uint8_t buf[16384];

	for (int i = 0; i < 64; i++) {
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			return;
	}
}

/* A memfd of @size bytes with a pattern; sealed and reopened read-only if asked. */
static int make_memfd(uint64_t size, bool seal, bool rdonly)
{
	char proc[64];
	int fd, ro;

	fd = memfd_create("fuzz-vsc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	if (seal) {
		if (size) {
			void *p = mmap(NULL, size, PROT_WRITE, MAP_SHARED, fd, 0);

			if (p != MAP_FAILED) {
				memset(p, 0xa5, size);
				munmap(p, size);
			}
		}
		fcntl(fd, F_ADD_SEALS,
		      F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL);
	}
	if (!rdonly)
		return fd;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ro = open(proc, O_RDONLY | O_CLOEXEC);
	close(fd);
	return ro;
}

static unsigned make_fds(uint8_t ctl, const uint8_t *payload, size_t plen, int fds[2])
{
	uint64_t msize = 4096;
	unsigned n = 0;
	int p[2];

	if (plen >= sizeof(struct vshm_display_shm_buffer)) {
		struct vshm_display_shm_buffer b;

		memcpy(&b, payload, sizeof(b));
		if (b.size && b.size <= MAX_MEMFD)
			msize = b.size;
	}
	if (ctl & 8)
		msize++;
	switch (ctl & 7) {
	case 0:
		break;
	case 1:
		fds[n] = make_memfd(msize, true, true);
		n += fds[n] >= 0;
		break;
	case 2:
		fds[n] = make_memfd(msize, false, true);
		n += fds[n] >= 0;
		break;
	case 3:
		fds[n] = eventfd(1, EFD_CLOEXEC);
		n += fds[n] >= 0;
		break;
	case 4:
		fds[n] = eventfd(0, EFD_CLOEXEC);
		n += fds[n] >= 0;
		break;
	case 5:
		for (int i = 0; i < 2; i++) {
			fds[n] = make_memfd(msize, true, true);
			n += fds[n] >= 0;
		}
		break;
	case 6:
		fds[n] = make_memfd(msize, true, false);
		n += fds[n] >= 0;
		break;
	case 7:
		if (pipe2(p, O_CLOEXEC) == 0) {
			close(p[1]);
			fds[n++] = p[0];
		}
		break;
	}
	return n;
}

/* Dispatch until it would block; the result of the last call. */
static int pump(struct vsc *c, struct harness *h)
{
	int r = 0;

	for (int i = 0; i < 8; i++) {
		r = vsc_dispatch(c);
		drain(h->peer);
		if (r < 0)
			return r;
		if ((h->opts & 0x80) && h->have_frame) {
			h->have_frame = false;
			vsc_release(c, h->last_scanout, h->last_seq);
		}
		if (!vsc_wants_write(c))
			break;
	}
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t msg[VHOST_USER_GPU_HDR_SIZE + MAX_PAYLOAD];
	struct harness h = { .peer = -1 };
	struct vsc_config cfg;
	struct vsc *c = NULL;
	int sv[2], fds_before, r = 0;

	if (size < 1)
		return 0;
	verbose = getenv("VSHM_FUZZ_LOG");
	if (verbose) { /* debugging seeds: show the module's messages */
		vshm_log_set_level(VSHM_LOG_DEBUG);
	} else {
		vshm_log_set_handler(quiet, NULL);
		vshm_log_set_level(VSHM_LOG_ERROR);
	}
	fds_before = count_fds();
	h.opts = data[0];
	data++;
	size--;

	vsc_config_defaults(&cfg);
	cfg.qemu_mode = h.opts & 1;
	cfg.allow_qemu_fallback = h.opts & 2;
	cfg.offer_fence = h.opts & 4;
	cfg.no_cursor = h.opts & 8;
	cfg.manual_release = h.opts & 0x10;
	cfg.scanouts = (h.opts & 0x20) ? 0x3 : 0x1;
	cfg.fence_timeout_ms = 0; /* an unsignalled fence must not stall the fuzzer */
	cfg.max_scanout_pixels = 512 * 512;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	h.peer = sv[1];
	if (vsc_new_fd(sv[0], &cfg, on_event, &h, &c) < 0) {
		close(h.peer);
		return 0;
	}

	for (unsigned rec = 0; r >= 0 && rec < MAX_RECORDS && size >= 1; rec++) {
		uint8_t ctl = data[0];
		struct vhost_user_gpu_hdr hdr;
		size_t len, plen, off = 0;
		int fds[2];
		unsigned nfds;

		data++;
		size--;
		len = size < VHOST_USER_GPU_HDR_SIZE ? size : VHOST_USER_GPU_HDR_SIZE;
		if (!len)
			break;
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
		nfds = make_fds(ctl, msg + len, plen, fds);

		for (int tries = 0; r >= 0 && off < len + plen && tries < 64; tries++) {
			union {
				struct cmsghdr a;
				char b[CMSG_SPACE(sizeof(int) * 2)];
			} ctrl;
			struct iovec iov = { msg + off, len + plen - off };
			struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
			ssize_t n;

			if (off == 0 && nfds) {
				memset(&ctrl, 0, sizeof(ctrl));
				mh.msg_control = ctrl.b;
				mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
				struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
				cm->cmsg_level = SOL_SOCKET;
				cm->cmsg_type = SCM_RIGHTS;
				cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
				memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
			}
			n = sendmsg(h.peer, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0) {
				off += (size_t)n;
				continue;
			}
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				r = -EPIPE;
			else
				r = pump(c, &h);
		}
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		if (r >= 0)
			r = pump(c, &h);
	}
	if (r >= 0) {
		/* The daemon goes away: the library must notice, not hang. */
		close(h.peer);
		h.peer = -1;
		vsc_dispatch(c);
	}
	if (verbose)
		fprintf(stderr, "end: r %d, %llu frames, error \"%s\"\n", r,
		        (unsigned long long)vsc_frames_received(c), vsc_error(c));
	vsc_destroy(c);
	if (h.peer >= 0)
		close(h.peer);
	if (count_fds() != fds_before)
		abort(); /* an fd leaked */
	return 0;
}
