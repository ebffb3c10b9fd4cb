/* SPDX-License-Identifier: MIT */
/*
 * test-consumer.c - the consumer library (clients/consumer.h) against a fake
 * daemon written from docs/protocol.md (fake-daemon.h): negotiation,
 * buffers, frames and releases, drops, heartbeats and frame age, STATS,
 * cursor, ERROR, QEMU-only mode, and malformed daemon messages (an error,
 * never a crash or an fd leak; the runner checks fds after every test).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "consumer.h"
#include "fake-daemon.h"
#include "test-runner.h"

struct rec {
	unsigned ev[VSC_EV_ERROR + 1];
	struct vsc_frame last;
	uint32_t *pixels; /* copy of the last frame's image (x8r8g8b8 rows) */
	size_t pixels_cap;
	uint32_t last_scanout_event;
};

static void on_event(void *data, struct vsc *c, const struct vsc_event *ev)
{
	struct rec *r = data;
	(void)c;
	r->ev[ev->type]++;
	if (ev->type == VSC_EV_SCANOUT)
		r->last_scanout_event = ev->scanout_id;
	if (ev->type != VSC_EV_FRAME)
		return;
	const struct vsc_frame *f = ev->frame;
	r->last = *f;
	size_t n = (size_t)f->width * f->height;
	if (n > r->pixels_cap) {
		free(r->pixels);
		r->pixels = malloc(n * 4);
		CHECK(r->pixels != NULL);
		r->pixels_cap = n;
	}
	for (uint32_t y = 0; y < f->height; y++)
		memcpy(r->pixels + (size_t)y * f->width, f->pixels + (size_t)y * f->stride,
		       (size_t)f->width * 4);
}

struct pair {
	int d; /* daemon end */
	struct vsc *c;
	struct rec rec;
};

static void pair_new(struct pair *p, const struct vsc_config *cfg)
{
	int sv[2];
	memset(p, 0, sizeof(*p));
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	p->d = sv[0];
	CHECK_OK(vsc_new_fd(sv[1], cfg, on_event, &p->rec, &p->c));
}

static void pair_free(struct pair *p)
{
	vsc_destroy(p->c);
	close(p->d);
	free(p->rec.pixels);
}

static int recv_msg(struct pair *p, uint32_t *id, uint32_t *flags, void *buf, uint32_t cap)
{
	CHECK_OK(vsc_dispatch(p->c));
	return fk_recv(p->d, id, flags, buf, cap, 1000);
}

/* Negotiate VSHM and HELLO; the daemon has @num_scanouts scanouts. */
static void vshm_up(struct pair *p, uint32_t num_scanouts)
{
	uint8_t buf[256];
	uint32_t id, flags;
	uint64_t feat;
	struct vshm_display_hello h;

	fk_send(p->d, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, NULL, 0, NULL, 0);
	CHECK_EQ(recv_msg(p, &id, &flags, buf, sizeof(buf)), 8);
	CHECK_EQ(id, VHOST_USER_GPU_GET_PROTOCOL_FEATURES);
	CHECK_EQ(flags, FK_REPLY);
	memcpy(&feat, buf, 8);
	CHECK(feat & VSHM_DISPLAY_PROTOCOL_F_VSHM);
	fk_send(p->d, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 0,
	        &(uint64_t){ VSHM_DISPLAY_PROTOCOL_F_VSHM }, 8, NULL, 0);
	CHECK_EQ(recv_msg(p, &id, &flags, buf, sizeof(buf)), 48);
	CHECK_EQ(id, VSHM_DISPLAY_HELLO);
	CHECK_EQ(flags, 0);
	memcpy(&h, buf, sizeof(h));
	CHECK_EQ(h.version, 1);
	CHECK(!vsc_is_ready(p->c));
	fk_send_hello_reply(p->d, h.scanouts, num_scanouts);
	CHECK_OK(vsc_dispatch(p->c));
	CHECK(vsc_is_ready(p->c));
	CHECK_EQ(p->rec.ev[VSC_EV_READY], 1);
}

/* vshm_up plus a W x H XRGB8888 buffer 1 shown on scanout 0. */
#define W 37
#define H 23
static void vshm_up_scanout(struct pair *p, struct fk_shm *shm)
{
	vshm_up(p, 1);
	fk_shm_new(shm, W, H, W * 4 + 12, 256, FK_XR24, true);
	for (uint32_t y = 0; y < H; y++)
		for (uint32_t x = 0; x < W; x++)
			*fk_shm_px(shm, x, y) = fk_pattern(x, y, 0);
	fk_send_shm_buffer(p->d, shm, 1);
	fk_send_scanout(p->d, 0, 1, 0, 0, W, H);
	CHECK_OK(vsc_dispatch(p->c));
	CHECK_EQ(p->rec.ev[VSC_EV_BUFFER], 1);
	CHECK_EQ(p->rec.ev[VSC_EV_SCANOUT], 1);
}

static void expect_release(struct pair *p, uint32_t scanout, uint64_t seq)
{
	uint8_t buf[64];
	uint32_t id, flags;
	struct vshm_display_frame_release rel;
	CHECK_EQ(fk_recv(p->d, &id, &flags, buf, sizeof(buf), 1000), 16);
	CHECK_EQ(id, VSHM_DISPLAY_FRAME_RELEASE);
	CHECK_EQ(flags, 0);
	memcpy(&rel, buf, sizeof(rel));
	CHECK_EQ(rel.scanout_id, scanout);
	CHECK_EQ(rel.flags, 0);
	CHECK_EQ(rel.seq, seq);
}

TEST(vshm_session_worked_example)
{
	struct vsc_config cfg;
	struct pair p;
	struct fk_shm shm;
	uint8_t buf[64];
	uint32_t id, flags;
	struct vshm_display_hello h;

	/* Section 13: the bytes of steps 1, 2 and 4 for a recorder. */
	vsc_config_defaults(&cfg);
	cfg.role = "recorder";
	pair_new(&p, &cfg);
	fk_send(p.d, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, NULL, 0, NULL, 0);
	CHECK_OK(vsc_dispatch(p.c));
	uint8_t reply[20];
	CHECK_OK(fk_read_exact(p.d, reply, sizeof(reply), 1000));
	static const uint8_t want_reply[20] = { 0x01, 0, 0,    0, 0x04, 0, 0, 0, 0x08, 0,
		                                0,    0, 0x01, 0, 0,    0, 0, 0, 0,    0x01 };
	CHECK_MEM_EQ(reply, want_reply, sizeof(reply));
	fk_send(p.d, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 0,
	        &(uint64_t){ VSHM_DISPLAY_PROTOCOL_F_VSHM }, 8, NULL, 0);
	CHECK_EQ(recv_msg(&p, &id, &flags, buf, sizeof(buf)), 48);
	memcpy(&h, buf, sizeof(h));
	CHECK_EQ(h.version, 1);
	CHECK_EQ(h.flags, 0);
	CHECK_EQ(h.scanouts, 1);
	CHECK_EQ(h.reserved, 0);
	static const char want_role[32] = "recorder";
	CHECK_MEM_EQ(h.role, want_role, 32);
	fk_send_hello_reply(p.d, 1, 1);
	CHECK_OK(vsc_dispatch(p.c));
	CHECK(vsc_is_ready(p.c));
	CHECK_EQ(vsc_hello_reply(p.c)->consumer_id, 7);
	CHECK_EQ(vsc_features(p.c), VSHM_DISPLAY_PROTOCOL_F_VSHM);

	/* 6..8: buffer, scanout, first FULL frame with one rect. */
	fk_shm_new(&shm, 64, 32, 256, 0, FK_XR24, true);
	for (uint32_t y = 0; y < 32; y++)
		for (uint32_t x = 0; x < 64; x++)
			*fk_shm_px(&shm, x, y) = fk_pattern(x, y, 3);
	fk_send_shm_buffer(p.d, &shm, 1);
	fk_send_scanout(p.d, 0, 1, 0, 0, 64, 32);
	struct vshm_display_rect r = { 0, 0, 64, 32 };
	uint64_t flush = fk_now() - 2000000;
	fk_send_frame(p.d, 0, 1, 42, flush, VSHM_DISPLAY_FRAME_F_FULL, &r, 1);
	CHECK_OK(vsc_dispatch(p.c));
	CHECK_EQ(p.rec.ev[VSC_EV_FRAME], 1);
	CHECK_EQ(p.rec.last.seq, 42);
	CHECK_EQ(p.rec.last.flush_ns, flush);
	CHECK(p.rec.last.full);
	CHECK_EQ(p.rec.last.num_rects, 1);
	CHECK_EQ(p.rec.last.dropped, 0);
	CHECK(p.rec.last.recv_ns >= p.rec.last.send_ns);
	for (uint32_t y = 0; y < 32; y++)
		for (uint32_t x = 0; x < 64; x++)
			CHECK_EQ(p.rec.pixels[y * 64 + x], fk_pattern(x, y, 3));
	/* 9: the release follows the consumed frame. */
	expect_release(&p, 0, 42);

	/* 10: heartbeat: frame age is now - newest flush (section 9.4). */
	fk_send_heartbeat(p.d, 1, 42, flush);
	CHECK_OK(vsc_dispatch(p.c));
	CHECK_EQ(p.rec.ev[VSC_EV_HEARTBEAT], 1);
	bool known;
	uint64_t now = vsc_now_ns();
	uint64_t age = vsc_frame_age_ns(p.c, 0, now, &known);
	CHECK(known);
	CHECK_EQ(age, now - flush);
	/* A heartbeat with a newer flush (the frame was dropped for us) moves the age. */
	uint64_t flush2 = fk_now();
	fk_send_heartbeat(p.d, 1, 43, flush2);
	CHECK_OK(vsc_dispatch(p.c));
	now = vsc_now_ns();
	CHECK_EQ(vsc_frame_age_ns(p.c, 0, now, &known), now - flush2);
	struct vsc_scanout_info si;
	CHECK_OK(vsc_scanout(p.c, 0, &si));
	CHECK_EQ(si.hb_last_seq, 43);
	CHECK_EQ(si.last_seq, 42);
	CHECK(si.heartbeat_enabled);
	CHECK(!vsc_frame_age_ns(p.c, 1, now, &known) && !known);

	fk_shm_free(&shm);
	pair_free(&p);
}

TEST(vshm_frames_drops_damage_and_manual_release)
{
	struct vsc_config cfg;
	struct pair p;
	struct fk_shm shm;

	vsc_config_defaults(&cfg);
	cfg.manual_release = true;
	pair_new(&p, &cfg);
	vshm_up_scanout(&p, &shm);
	uint64_t t = fk_now() - 10000000;
	fk_send_frame(p.d, 0, 1, 5, t, VSHM_DISPLAY_FRAME_F_FULL, NULL, 0);
	CHECK_OK(vsc_dispatch(p.c));
	CHECK_EQ(p.rec.last.seq, 5);
	CHECK_EQ(p.rec.last.dropped, 0); /* the first frame's seq is no gap */
	CHECK_EQ(p.rec.last.num_rects, 0);
	CHECK(p.rec.last.full);

	/* Damage-only frame, seq gap of 3: three drops. */
	struct vshm_display_rect rects[2] = { { 1, 2, 3, 4 }, { W - 1, H - 1, 1, 1 } };
	*fk_shm_px(&shm, 1, 2) = 0xff123456;
	fk_send_frame(p.d, 0, 1, 9, t + 1000, 0, rects, 2);
	CHECK_OK(vsc_dispatch(p.c));
	CHECK_EQ(p.rec.last.seq, 9);
	CHECK_EQ(p.rec.last.dropped, 3);
	CHECK(!p.rec.last.full);
	CHECK_EQ(p.rec.last.num_rects, 2);
	CHECK_EQ(p.rec.last.rects[1].x, W - 1);
	CHECK_EQ(p.rec.pixels[2 * W + 1], 0xff123456);
	CHECK_EQ(vsc_frames_received(p.c), 2);
	CHECK_EQ(vsc_frames_dropped(p.c), 3);

	/* Nothing was released automatically; release cumulatively now. */
	struct pollfd pfd = { p.d, POLLIN, 0 };
	CHECK_EQ(poll(&pfd, 1, 50), 0);
	CHECK_EQ(vsc_release(p.c, 0, 10), -EINVAL); /* never received */
	CHECK_OK(vsc_release(p.c, 0, 9));
	CHECK_OK(vsc_dispatch(p.c));
	expect_release(&p, 0, 9);

	/* STATS round trip. */
	CHECK(vsc_stats(p.c, NULL, NULL) == NULL);
	CHECK_OK(vsc_request_stats(p.c));
	uint8_t buf[64];
	uint32_t id, flags;
	CHECK_EQ(fk_recv(p.d, &id, &flags, buf, sizeof(buf), 1000), 8);
	CHECK_EQ(id, VSHM_DISPLAY_STATS);
	CHECK_EQ(flags, 0);
	struct vshm_display_stats st = { 0 };
	struct vshm_display_stats_scanout e = { 0, 0, 2, 3, 9 };
	uint8_t rep[sizeof(st) + sizeof(e)];
	st.consumer_id = 7;
	st.count = 1;
	st.frames_sent = 2;
	st.frames_dropped = 3;
	memcpy(rep, &st, sizeof(st));
	memcpy(rep + sizeof(st), &e, sizeof(e));
	fk_send(p.d, VSHM_DISPLAY_STATS, FK_REPLY, rep, sizeof(rep), NULL, 0);
	CHECK_OK(vsc_dispatch(p.c));
	const struct vshm_display_stats_scanout *ents;
	uint32_t count;
	const struct vshm_display_stats *got = vsc_stats(p.c, &ents, &count);
	CHECK(got != NULL);
	CHECK_EQ(got->frames_dropped, 3);
	CHECK_EQ(count, 1);
	CHECK_EQ(ents[0].last_seq, 9);

	fk_shm_free(&shm);
	pair_free(&p);
}

TEST(vshm_page_flip_destroy_and_cursor)
{
	struct pair p;
	struct fk_shm shm, shm2, cur;

	pair_new(&p, NULL);
	vshm_up_scanout(&p, &shm);
	fk_send_frame(p.d, 0, 1, 1, fk_now(), VSHM_DISPLAY_FRAME_F_FULL, NULL, 0);
	CHECK_OK(vsc_dispatch(p.c));
	expect_release(&p, 0, 1);

	/* Page flip to buffer 2 (an ABGR buffer shown at an offset), then destroy 1. */
	fk_shm_new(&shm2, W + 10, H + 5, (W + 10) * 4, 0, 0x34324241u /* AB24 */, true);
	for (uint32_t y = 0; y < H; y++)
		for (uint32_t x = 0; x < W; x++)
			*fk_shm_px(&shm2, x + 10, y + 5) = fk_pattern(x, y, 1);
	fk_send_shm_buffer(p.d, &shm2, 2);
	fk_send_scanout(p.d, 0, 2, 10, 5, W, H);
	struct vshm_display_buffer_destroy d = { 1, 0 };
	fk_send(p.d, VSHM_DISPLAY_BUFFER_DESTROY, 0, &d, sizeof(d), NULL, 0);
	fk_send_frame(p.d, 0, 2, 2, fk_now(), VSHM_DISPLAY_FRAME_F_FULL, NULL, 0);
	CHECK_OK(vsc_dispatch(p.c));
	CHECK_EQ(p.rec.ev[VSC_EV_BUFFER_DESTROY], 1);
	CHECK_EQ(p.rec.last.buffer_id, 2);
	CHECK_EQ(p.rec.last.fourcc, 0x34324241u);
	for (uint32_t y = 0; y < H; y++)
		for (uint32_t x = 0; x < W; x++)
			CHECK_EQ(p.rec.pixels[y * W + x], fk_pattern(x, y, 1));
	expect_release(&p, 0, 2);

	/* Cursor: an ARGB8888 64x64 buffer, shown then moved then hidden. */
	fk_shm_new(&cur, 64, 64, 256, 0, FK_AR24, true);
	*fk_shm_px(&cur, 0, 0) = 0x80abcdefu;
	fk_send_shm_buffer(p.d, &cur, 3);
	struct vshm_display_cursor cu = { 0, 3, 4, 5, -3, 7, VSHM_DISPLAY_CURSOR_F_VISIBLE, 0 };
	fk_send(p.d, VSHM_DISPLAY_CURSOR, 0, &cu, sizeof(cu), NULL, 0);
	CHECK_OK(vsc_dispatch(p.c));
	struct vsc_cursor_info ci;
	vsc_cursor(p.c, &ci);
	CHECK(ci.visible);
	CHECK_EQ(ci.x, -3);
	CHECK_EQ(ci.hot_y, 5);
	CHECK_EQ(*(const uint32_t *)ci.pixels, 0x80abcdefu);
	cu.flags = 0;
	fk_send(p.d, VSHM_DISPLAY_CURSOR, 0, &cu, sizeof(cu), NULL, 0);
	CHECK_OK(vsc_dispatch(p.c));
	vsc_cursor(p.c, &ci);
	CHECK(!ci.visible);
	CHECK_EQ(p.rec.ev[VSC_EV_CURSOR], 2);

	/* Disable the scanout, then its buffer may go. */
	fk_send_scanout(p.d, 0, 0, 0, 0, 0, 0);
	d.buffer_id = 2;
	fk_send(p.d, VSHM_DISPLAY_BUFFER_DESTROY, 0, &d, sizeof(d), NULL, 0);
	CHECK_OK(vsc_dispatch(p.c));
	struct vsc_scanout_info si;
	CHECK_OK(vsc_scanout(p.c, 0, &si));
	CHECK(!si.enabled);

	fk_shm_free(&shm);
	fk_shm_free(&shm2);
	fk_shm_free(&cur);
	pair_free(&p);
}

TEST(vshm_unknown_message_skipped_and_its_fd_closed)
{
	struct pair p;
	struct fk_shm shm;
	pair_new(&p, NULL);
	vshm_up_scanout(&p, &shm);
	int before = vshm_test_count_fds();
	uint8_t junk[100] = { 1, 2, 3 };
	int fd = fk_shm_ro_fd(&shm);
	fk_send(p.d, 0x56f0, 0, junk, sizeof(junk), &fd, 1);
	fk_send(p.d, 0x7777, FK_REPLY, junk, 3, NULL, 0);
	close(fd);
	fk_send_frame(p.d, 0, 1, 1, fk_now(), VSHM_DISPLAY_FRAME_F_FULL, NULL, 0);
	CHECK_OK(vsc_dispatch(p.c));
	CHECK_EQ(p.rec.ev[VSC_EV_FRAME], 1);
	CHECK_EQ(vshm_test_count_fds(), before);
	expect_release(&p, 0, 1);
	fk_shm_free(&shm);
	pair_free(&p);
}

TEST(vshm_refusals_and_telemetry_only)
{
	struct vsc_config cfg;
	struct pair p;
	vsc_config_defaults(&cfg);
	cfg.scanouts = 0x5; /* scanout 2 does not exist */
	pair_new(&p, &cfg);
	vshm_up(&p, 2);
	CHECK_EQ(vsc_hello_reply(p.c)->granted, 0x1);
	CHECK_EQ(vsc_hello_reply(p.c)->refused, 0x4);
	/* FRAME for the refused scanout: a daemon bug. */
	fk_send_frame(p.d, 2, 1, 1, fk_now(), VSHM_DISPLAY_FRAME_F_FULL, NULL, 0);
	CHECK_EQ(vsc_dispatch(p.c), -EPROTO);
	CHECK(strstr(vsc_error(p.c), "not granted") != NULL);
	pair_free(&p);

	cfg.scanouts = 0;
	pair_new(&p, &cfg);
	vshm_up(&p, 2);
	fk_send_heartbeat(p.d, 0, 0, 0);
	CHECK_OK(vsc_dispatch(p.c));
	CHECK_EQ(p.rec.ev[VSC_EV_HEARTBEAT], 1);
	pair_free(&p);
}

TEST(daemon_error_is_reported)
{
	struct pair p;
	pair_new(&p, NULL);
	/* TOO_MANY_CONSUMERS comes before any negotiation (section 4.1 step 1). */
	struct vshm_display_error e = { VSHM_DISPLAY_ERR_TOO_MANY_CONSUMERS, 0, 8, 0, "" };
	memset(e.message, 'x', sizeof(e.message)); /* not NUL-terminated: must stay safe */
	fk_send(p.d, VSHM_DISPLAY_ERROR, 0, &e, sizeof(e), NULL, 0);
	close(p.d);
	p.d = -1;
	CHECK_EQ(vsc_dispatch(p.c), -ECONNABORTED);
	CHECK_EQ(p.rec.ev[VSC_EV_ERROR], 1);
	struct vshm_display_error got;
	CHECK(vsc_daemon_error(p.c, &got));
	CHECK_EQ(got.code, VSHM_DISPLAY_ERR_TOO_MANY_CONSUMERS);
	CHECK_EQ(got.detail, 8);
	CHECK_EQ(strlen(got.message), 63);
	CHECK(strstr(vsc_error(p.c), "TOO_MANY_CONSUMERS") != NULL);
	/* Sticky. */
	CHECK_EQ(vsc_dispatch(p.c), -ECONNABORTED);
	pair_free(&p);
}

TEST(daemon_hangup_is_epipe)
{
	struct pair p;
	pair_new(&p, NULL);
	vshm_up(&p, 1);
	close(p.d);
	p.d = -1;
	int r = vsc_run(p.c, 200);
	CHECK(r == -EPIPE || r == -ECONNRESET);
	pair_free(&p);
}

TEST(vshm_without_vshm_bit_fails_or_falls_back)
{
	struct vsc_config cfg;
	struct pair p;
	uint8_t buf[64];
	uint32_t id, flags;

	vsc_config_defaults(&cfg);
	pair_new(&p, &cfg);
	fk_send(p.d, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, NULL, 0, NULL, 0);
	CHECK_EQ(recv_msg(&p, &id, &flags, buf, sizeof(buf)), 8);
	fk_send(p.d, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 0, &(uint64_t){ 0 }, 8, NULL, 0);
	CHECK_EQ(vsc_dispatch(p.c), -EPROTONOSUPPORT);
	pair_free(&p);

	cfg.allow_qemu_fallback = true;
	pair_new(&p, &cfg);
	fk_send(p.d, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, NULL, 0, NULL, 0);
	CHECK_EQ(recv_msg(&p, &id, &flags, buf, sizeof(buf)), 8);
	/* No SET_PROTOCOL_FEATURES at all (features deadline): QEMU messages follow. */
	struct vhost_user_gpu_scanout sc = { 0, 4, 2 };
	fk_send(p.d, VHOST_USER_GPU_SCANOUT, 0, &sc, sizeof(sc), NULL, 0);
	CHECK_OK(vsc_dispatch(p.c));
	CHECK(vsc_is_qemu_mode(p.c));
	CHECK(vsc_is_ready(p.c));
	pair_free(&p);
}

TEST(qemu_mode_framebuffer)
{
	struct vsc_config cfg;
	struct pair p;
	uint8_t buf[64];
	uint32_t id, flags;
	uint64_t feat;
	enum { QW = 19, QH = 11 };
	uint8_t msg[sizeof(struct vhost_user_gpu_update) + QW * QH * 4];

	vsc_config_defaults(&cfg);
	cfg.qemu_mode = true;
	pair_new(&p, &cfg);
	fk_send(p.d, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, NULL, 0, NULL, 0);
	CHECK_EQ(recv_msg(&p, &id, &flags, buf, sizeof(buf)), 8);
	memcpy(&feat, buf, 8);
	CHECK_EQ(feat & VSHM_DISPLAY_PROTOCOL_F_VSHM_BLOCK, 0);
	fk_send(p.d, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 0, &(uint64_t){ 0 }, 8, NULL, 0);
	struct vhost_user_gpu_scanout sc = { 0, QW, QH };
	fk_send(p.d, VHOST_USER_GPU_SCANOUT, 0, &sc, sizeof(sc), NULL, 0);
	/* The full frame in two UPDATEs of whole rows (as for > 4 Mpixel frames). */
	for (int half = 0; half < 2; half++) {
		struct vhost_user_gpu_update u = { 0, 0, half ? 6 : 0, QW, half ? QH - 6 : 6 };
		memcpy(msg, &u, sizeof(u));
		uint32_t *px = (uint32_t *)(msg + sizeof(u));
		for (uint32_t y = 0; y < u.height; y++)
			for (uint32_t x = 0; x < QW; x++)
				px[y * QW + x] = fk_pattern(x, u.y + y, 0);
		fk_send(p.d, VHOST_USER_GPU_UPDATE, 0, msg, sizeof(u) + u.width * u.height * 4,
		        NULL, 0);
		CHECK_OK(vsc_dispatch(p.c));
		CHECK_EQ(p.rec.ev[VSC_EV_FRAME], (unsigned)half); /* reported once complete */
	}
	CHECK(vsc_is_qemu_mode(p.c));
	CHECK(p.rec.last.full);
	CHECK_EQ(p.rec.last.fourcc, VSC_FMT_XRGB8888);
	for (uint32_t y = 0; y < QH; y++)
		for (uint32_t x = 0; x < QW; x++)
			CHECK_EQ(p.rec.pixels[y * QW + x], fk_pattern(x, y, 0));
	/* A damage UPDATE. */
	struct vhost_user_gpu_update u = { 0, 3, 4, 2, 2 };
	uint32_t px[4] = { 1, 2, 3, 4 };
	memcpy(msg, &u, sizeof(u));
	memcpy(msg + sizeof(u), px, sizeof(px));
	fk_send(p.d, VHOST_USER_GPU_UPDATE, 0, msg, sizeof(u) + sizeof(px), NULL, 0);
	/* Cursor messages. */
	struct vhost_user_gpu_cursor_update *cu = calloc(1, sizeof(*cu));
	CHECK(cu != NULL);
	cu->pos = (struct vhost_user_gpu_cursor_pos){ 0, 10, 20 };
	cu->hot_x = 1;
	cu->data[0] = 0xdeadbeef;
	fk_send(p.d, VHOST_USER_GPU_CURSOR_UPDATE, 0, cu, sizeof(*cu), NULL, 0);
	free(cu);
	struct vhost_user_gpu_cursor_pos pos = { 0, 11, 21 };
	fk_send(p.d, VHOST_USER_GPU_CURSOR_POS, 0, &pos, sizeof(pos), NULL, 0);
	CHECK_OK(vsc_dispatch(p.c));
	CHECK_EQ(p.rec.ev[VSC_EV_FRAME], 2);
	CHECK(!p.rec.last.full);
	CHECK_EQ(p.rec.pixels[4 * QW + 3], 1);
	CHECK_EQ(p.rec.pixels[5 * QW + 4], 4);
	struct vsc_cursor_info ci;
	vsc_cursor(p.c, &ci);
	CHECK(ci.visible);
	CHECK_EQ(ci.x, 11);
	CHECK_EQ(ci.hot_x, 1);
	CHECK_EQ(*(const uint32_t *)ci.pixels, 0xdeadbeef);
	fk_send(p.d, VHOST_USER_GPU_CURSOR_POS_HIDE, 0, &pos, sizeof(pos), NULL, 0);
	CHECK_OK(vsc_dispatch(p.c));
	vsc_cursor(p.c, &ci);
	CHECK(!ci.visible);
	/* The daemon's ERROR is understood in QEMU-only mode too. */
	struct vshm_display_error e = { VSHM_DISPLAY_ERR_SHUTDOWN, 0, 0, 0, "bye" };
	fk_send(p.d, VSHM_DISPLAY_ERROR, 0, &e, sizeof(e), NULL, 0);
	CHECK_EQ(vsc_dispatch(p.c), -ECONNABORTED);
	pair_free(&p);
}

/* ---- malformed daemon messages ---------------------------------------------------------- */

enum bad_kind {
	BAD_FLAGS,
	BAD_TOO_MANY_FDS,
	BAD_TOO_LARGE,
	BAD_SHM_NO_FD,
	BAD_SHM_TWO_FDS,
	BAD_SHM_RW_FD,
	BAD_SHM_UNSEALED,
	BAD_SHM_GEOMETRY,
	BAD_SHM_SIZE_MISMATCH,
	BAD_SHM_SHORT,
	BAD_SHM_ID0,
	BAD_SHM_DUP_ID,
	BAD_SCANOUT_UNKNOWN_BUFFER,
	BAD_SCANOUT_RECT,
	BAD_SCANOUT_NOT_GRANTED,
	BAD_FRAME_RECTS_OVER_MAX,
	BAD_FRAME_SIZE,
	BAD_FRAME_RECT_OUTSIDE,
	BAD_FRAME_RECT_EMPTY,
	BAD_FRAME_FD,
	BAD_FRAME_FENCE_NOT_NEGOTIATED,
	BAD_FRAME_SEQ,
	BAD_FRAME_NOT_FULL_AFTER_SCANOUT,
	BAD_FRAME_WRONG_BUFFER,
	BAD_HEARTBEAT_COUNT,
	BAD_HEARTBEAT_SIZE,
	BAD_STATS_UNSOLICITED,
	BAD_ERROR_SIZE,
	BAD_DMABUF_BUFFER,
	BAD_QEMU_MSG_ON_VSHM,
	BAD_HELLO_AGAIN,
	BAD_DESTROY_UNKNOWN,
	BAD_DESTROY_SHOWN,
	BAD_CURSOR_UNKNOWN_BUFFER,
	BAD_CURSOR_NOT_ARGB,
	BAD_RELEASE_FROM_DAEMON,
	BAD_KIND_COUNT,
};

static void send_bad(struct pair *p, struct fk_shm *shm, enum bad_kind k)
{
	uint8_t junk[64] = { 0 };
	struct vshm_display_shm_buffer b = { 9, W, H, W * 4, FK_XR24, 0, 0, (uint64_t)W * 4 * H };
	int fds[5];
	switch (k) {
	case BAD_FLAGS:
		fk_send(p->d, VSHM_DISPLAY_HEARTBEAT, 0x1, junk, 24, NULL, 0);
		break;
	case BAD_TOO_MANY_FDS:
		for (int i = 0; i < 5; i++)
			fds[i] = fk_shm_ro_fd(shm);
		fk_send(p->d, 0x56f0, 0, junk, 8, fds, 5);
		for (int i = 0; i < 5; i++)
			close(fds[i]);
		break;
	case BAD_TOO_LARGE: {
		struct vhost_user_gpu_hdr h = { 0x56f0, 0, VSHM_DISPLAY_MAX_D2C_PAYLOAD + 1 };
		fk_send_raw(p->d, &h, sizeof(h));
		break;
	}
	case BAD_SHM_NO_FD:
		fk_send(p->d, VSHM_DISPLAY_SHM_BUFFER, 0, &b, sizeof(b), NULL, 0);
		break;
	case BAD_SHM_TWO_FDS:
		fds[0] = fk_shm_ro_fd(shm);
		fds[1] = fk_shm_ro_fd(shm);
		fk_send(p->d, VSHM_DISPLAY_SHM_BUFFER, 0, &b, sizeof(b), fds, 2);
		close(fds[0]);
		close(fds[1]);
		break;
	case BAD_SHM_RW_FD: {
		struct fk_shm s2;
		fk_shm_new(&s2, W, H, W * 4, 0, FK_XR24, false);
		fk_send(p->d, VSHM_DISPLAY_SHM_BUFFER, 0, &b, sizeof(b), &s2.memfd, 1);
		fk_shm_free(&s2);
		break;
	}
	case BAD_SHM_UNSEALED: {
		struct fk_shm s2;
		fk_shm_new(&s2, W, H, W * 4, 0, FK_XR24, false);
		fk_send_shm_buffer(p->d, &s2, 9);
		fk_shm_free(&s2);
		break;
	}
	case BAD_SHM_GEOMETRY:
		b.offset = UINT64_MAX - 10; /* overflow bait */
		fds[0] = fk_shm_ro_fd(shm);
		fk_send(p->d, VSHM_DISPLAY_SHM_BUFFER, 0, &b, sizeof(b), fds, 1);
		close(fds[0]);
		break;
	case BAD_SHM_SIZE_MISMATCH:
		b.size = shm->size + 4096; /* bigger than the file: would SIGBUS */
		fds[0] = fk_shm_ro_fd(shm);
		fk_send(p->d, VSHM_DISPLAY_SHM_BUFFER, 0, &b, sizeof(b), fds, 1);
		close(fds[0]);
		break;
	case BAD_SHM_SHORT:
		fds[0] = fk_shm_ro_fd(shm);
		fk_send(p->d, VSHM_DISPLAY_SHM_BUFFER, 0, &b, sizeof(b) - 1, fds, 1);
		close(fds[0]);
		break;
	case BAD_SHM_ID0:
		b.buffer_id = 0;
		b.size = shm->size;
		fds[0] = fk_shm_ro_fd(shm);
		fk_send(p->d, VSHM_DISPLAY_SHM_BUFFER, 0, &b, sizeof(b), fds, 1);
		close(fds[0]);
		break;
	case BAD_SHM_DUP_ID:
		fk_send_shm_buffer(p->d, shm, 1);
		break;
	case BAD_SCANOUT_UNKNOWN_BUFFER:
		fk_send_scanout(p->d, 0, 5, 0, 0, W, H);
		break;
	case BAD_SCANOUT_RECT:
		fk_send_scanout(p->d, 0, 1, 1, 0, W, H);
		break;
	case BAD_SCANOUT_NOT_GRANTED:
		fk_send_scanout(p->d, 3, 1, 0, 0, W, H);
		break;
	case BAD_FRAME_RECTS_OVER_MAX: {
		struct vshm_display_rect r[16];
		for (int i = 0; i < 16; i++)
			r[i] = (struct vshm_display_rect){ 0, 0, 1, 1 };
		fk_send_frame(p->d, 0, 1, 1, fk_now(), VSHM_DISPLAY_FRAME_F_FULL, r, 16);
		/* ...with max_rects 16 this is fine; 17 is not: */
		uint8_t buf[40 + 17 * 16] = { 0 };
		struct vshm_display_frame f = { 0, 1, 2, fk_now(), fk_now(), 0, 17 };
		memcpy(buf, &f, sizeof(f));
		fk_send(p->d, VSHM_DISPLAY_FRAME, 0, buf, sizeof(buf), NULL, 0);
		break;
	}
	case BAD_FRAME_SIZE: {
		uint8_t buf[40 + 16 + 4] = { 0 };
		struct vshm_display_frame f = { 0, 1, 1, fk_now(), fk_now(), 2, 1 };
		memcpy(buf, &f, sizeof(f));
		fk_send(p->d, VSHM_DISPLAY_FRAME, 0, buf, sizeof(buf), NULL, 0);
		break;
	}
	case BAD_FRAME_RECT_OUTSIDE: {
		struct vshm_display_rect r = { W - 1, 0, 2, 1 };
		fk_send_frame(p->d, 0, 1, 1, fk_now(), 0x2, &r, 1);
		break;
	}
	case BAD_FRAME_RECT_EMPTY: {
		struct vshm_display_rect r = { 0, 0, 0, 1 };
		fk_send_frame(p->d, 0, 1, 1, fk_now(), 0x2, &r, 1);
		break;
	}
	case BAD_FRAME_FD: {
		struct vshm_display_frame f = { 0, 1, 1, fk_now(), fk_now(), 2, 0 };
		fds[0] = fk_shm_ro_fd(shm);
		fk_send(p->d, VSHM_DISPLAY_FRAME, 0, &f, sizeof(f), fds, 1);
		close(fds[0]);
		break;
	}
	case BAD_FRAME_FENCE_NOT_NEGOTIATED: {
		struct vshm_display_frame f = { 0, 1, 1, fk_now(), fk_now(), 3, 0 };
		fds[0] = fk_shm_ro_fd(shm);
		fk_send(p->d, VSHM_DISPLAY_FRAME, 0, &f, sizeof(f), fds, 1);
		close(fds[0]);
		break;
	}
	case BAD_FRAME_SEQ:
		fk_send_frame(p->d, 0, 1, 5, fk_now(), 2, NULL, 0);
		fk_send_frame(p->d, 0, 1, 5, fk_now(), 0, NULL, 0);
		break;
	case BAD_FRAME_NOT_FULL_AFTER_SCANOUT: {
		struct vshm_display_rect r = { 0, 0, 1, 1 };
		fk_send_frame(p->d, 0, 1, 1, fk_now(), 0, &r, 1);
		break;
	}
	case BAD_FRAME_WRONG_BUFFER:
		fk_send_frame(p->d, 0, 2, 1, fk_now(), 2, NULL, 0);
		break;
	case BAD_HEARTBEAT_COUNT:
		fk_send_heartbeat(p->d, 0x3, 1, 1);
		break;
	case BAD_HEARTBEAT_SIZE: {
		struct vshm_display_heartbeat hb = { 1, 1, 100, 1 };
		fk_send(p->d, VSHM_DISPLAY_HEARTBEAT, 0, &hb, sizeof(hb), NULL, 0);
		break;
	}
	case BAD_STATS_UNSOLICITED: {
		uint8_t buf[192 + 32] = { 0 };
		fk_send(p->d, VSHM_DISPLAY_STATS, FK_REPLY, buf, sizeof(buf), NULL, 0);
		break;
	}
	case BAD_ERROR_SIZE:
		fk_send(p->d, VSHM_DISPLAY_ERROR, 0, junk, 8, NULL, 0);
		break;
	case BAD_DMABUF_BUFFER: {
		uint8_t buf[64] = { 0 };
		fds[0] = fk_shm_ro_fd(shm);
		fk_send(p->d, VSHM_DISPLAY_DMABUF_BUFFER, 0, buf, sizeof(buf), fds, 1);
		close(fds[0]);
		break;
	}
	case BAD_QEMU_MSG_ON_VSHM: {
		struct vhost_user_gpu_scanout sc = { 0, 4, 4 };
		fk_send(p->d, VHOST_USER_GPU_SCANOUT, 0, &sc, sizeof(sc), NULL, 0);
		break;
	}
	case BAD_HELLO_AGAIN:
		fk_send_hello_reply(p->d, 1, 1);
		break;
	case BAD_DESTROY_UNKNOWN: {
		struct vshm_display_buffer_destroy d = { 77, 0 };
		fk_send(p->d, VSHM_DISPLAY_BUFFER_DESTROY, 0, &d, sizeof(d), NULL, 0);
		break;
	}
	case BAD_DESTROY_SHOWN: {
		struct vshm_display_buffer_destroy d = { 1, 0 };
		fk_send(p->d, VSHM_DISPLAY_BUFFER_DESTROY, 0, &d, sizeof(d), NULL, 0);
		break;
	}
	case BAD_CURSOR_UNKNOWN_BUFFER: {
		struct vshm_display_cursor cu = { 0, 42, 0, 0, 0, 0, 1, 0 };
		fk_send(p->d, VSHM_DISPLAY_CURSOR, 0, &cu, sizeof(cu), NULL, 0);
		break;
	}
	case BAD_CURSOR_NOT_ARGB: {
		/*
		 * Found by fuzz-vsc-msg: an unknown-format 64x64 buffer at offset 1
		 * fits at its own size but not as 4-byte pixels; as a cursor the
		 * caller would read one byte past the mapping.
		 */
		struct fk_shm s2;
		struct vshm_display_cursor cu = { 0, 9, 0, 0, 0, 0, 1, 0 };

		fk_shm_new(&s2, 64, 64, 256, 1, 0x34005241u, true);
		fk_send_shm_buffer(p->d, &s2, 9);
		fk_send(p->d, VSHM_DISPLAY_CURSOR, 0, &cu, sizeof(cu), NULL, 0);
		fk_shm_free(&s2);
		break;
	}
	case BAD_RELEASE_FROM_DAEMON: {
		struct vshm_display_frame_release rel = { 0, 0, 1 };
		fk_send(p->d, VSHM_DISPLAY_FRAME_RELEASE, 0, &rel, sizeof(rel), NULL, 0);
		break;
	}
	case BAD_KIND_COUNT:
		break;
	}
}

TEST(malformed_daemon_messages_fail_cleanly)
{
	for (int k = 0; k < BAD_KIND_COUNT; k++) {
		struct pair p;
		struct fk_shm shm;
		int before = vshm_test_count_fds();
		pair_new(&p, NULL);
		vshm_up_scanout(&p, &shm);
		send_bad(&p, &shm, (enum bad_kind)k);
		int r = vsc_run(p.c, 300);
		if (r != -EPROTO)
			vshm_test_fail(__FILE__, __LINE__, "case %d: %d (%s)", k, r,
			               vsc_error(p.c));
		CHECK(vsc_error(p.c)[0] != 0);
		/* Still safe to call afterwards. */
		CHECK_EQ(vsc_dispatch(p.c), -EPROTO);
		CHECK_EQ(vsc_release(p.c, 0, 1), -EPROTO);
		fk_shm_free(&shm);
		pair_free(&p);
		if (vshm_test_count_fds() != before)
			vshm_test_fail(__FILE__, __LINE__, "case %d leaked %d fds", k,
			               vshm_test_count_fds() - before);
	}
}

TEST(malformed_negotiation_fails_cleanly)
{
	struct pair p;
	uint8_t buf[64];
	uint32_t id, flags;

	/* SET_PROTOCOL_FEATURES before GET. */
	pair_new(&p, NULL);
	fk_send(p.d, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 0, &(uint64_t){ 0 }, 8, NULL, 0);
	CHECK_EQ(vsc_dispatch(p.c), -EPROTO);
	pair_free(&p);

	/* GET_PROTOCOL_FEATURES with a payload. */
	pair_new(&p, NULL);
	fk_send(p.d, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, buf, 4, NULL, 0);
	CHECK_EQ(vsc_dispatch(p.c), -EPROTO);
	pair_free(&p);

	/* SET with bits never offered. */
	pair_new(&p, NULL);
	fk_send(p.d, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, NULL, 0, NULL, 0);
	CHECK_EQ(recv_msg(&p, &id, &flags, buf, sizeof(buf)), 8);
	fk_send(p.d, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 0,
	        &(uint64_t){ VSHM_DISPLAY_PROTOCOL_F_VSHM | VSHM_DISPLAY_PROTOCOL_F_VSHM_DMABUF },
	        8, NULL, 0);
	CHECK_EQ(vsc_dispatch(p.c), -EPROTO);
	pair_free(&p);

	/* HELLO reply that grants what was not asked, and one with a zero consumer id. */
	for (int k = 0; k < 3; k++) {
		pair_new(&p, NULL);
		fk_send(p.d, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, NULL, 0, NULL, 0);
		CHECK_EQ(recv_msg(&p, &id, &flags, buf, sizeof(buf)), 8);
		fk_send(p.d, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 0,
		        &(uint64_t){ VSHM_DISPLAY_PROTOCOL_F_VSHM }, 8, NULL, 0);
		CHECK_EQ(recv_msg(&p, &id, &flags, buf, sizeof(buf)), 48);
		struct vshm_display_hello_reply r = { 1, 7, 0x3, 0, 2, 100, 250, 16, { 0 } };
		if (k == 1) {
			r.granted = 1;
			r.consumer_id = 0;
		}
		if (k == 2) {
			r.granted = 0;
			r.refused = 1; /* refused without a reason */
		}
		fk_send(p.d, VSHM_DISPLAY_HELLO, FK_REPLY, &r, sizeof(r), NULL, 0);
		CHECK_EQ(vsc_dispatch(p.c), -EPROTO);
		pair_free(&p);
	}

	/* Message cut short, then hang-up: a connection error, not a crash. */
	pair_new(&p, NULL);
	struct vhost_user_gpu_hdr h = { VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, 8 };
	fk_send_raw(p.d, &h, sizeof(h));
	fk_send_raw(p.d, buf, 3);
	close(p.d);
	p.d = -1;
	int r = vsc_run(p.c, 200);
	CHECK(r == -ECONNRESET || r == -EPIPE || r == -EIO);
	pair_free(&p);

	/* QEMU-only: UPDATE outside the scanout, and size not matching width*height. */
	for (int k = 0; k < 3; k++) {
		struct vsc_config cfg;
		vsc_config_defaults(&cfg);
		cfg.qemu_mode = true;
		pair_new(&p, &cfg);
		fk_send(p.d, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0, NULL, 0, NULL, 0);
		CHECK_EQ(recv_msg(&p, &id, &flags, buf, sizeof(buf)), 8);
		fk_send(p.d, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 0, &(uint64_t){ 0 }, 8, NULL, 0);
		struct vhost_user_gpu_scanout sc = { 0, 4, 4 };
		if (k == 2)
			sc = (struct vhost_user_gpu_scanout){ 0, 1u << 20,
				                              1u << 20 }; /* 4 TiB fb */
		fk_send(p.d, VHOST_USER_GPU_SCANOUT, 0, &sc, sizeof(sc), NULL, 0);
		uint8_t msg[20 + 16 * 4] = { 0 };
		struct vhost_user_gpu_update u = { 0, k == 0 ? 1 : 0, 0, 4, 4 };
		memcpy(msg, &u, sizeof(u));
		fk_send(p.d, VHOST_USER_GPU_UPDATE, 0, msg, k == 1 ? sizeof(msg) - 4 : sizeof(msg),
		        NULL, 0);
		CHECK_EQ(vsc_run(p.c, 200), -EPROTO);
		pair_free(&p);
	}
}

TEST(bad_config_rejected)
{
	struct vsc_config cfg;
	struct vsc *c;
	int sv[2];
	vsc_config_defaults(&cfg);
	cfg.role = "bad role!";
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	CHECK_EQ(vsc_new_fd(sv[1], &cfg, NULL, NULL, &c), -EINVAL);
	close(sv[0]);
	vsc_config_defaults(&cfg);
	cfg.scanouts = 1u << 16;
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	CHECK_EQ(vsc_new_fd(sv[1], &cfg, NULL, NULL, &c), -EINVAL);
	close(sv[0]);
}

TEST(format_conversion)
{
	/* The pixel R=0x11 G=0x22 B=0x33 A=0x44 in each format's memory order. */
	static const struct {
		uint32_t fourcc;
		uint8_t mem[4];
		bool alpha;
	} cases[] = {
		{ VSC_FMT_XRGB8888, { 0x33, 0x22, 0x11, 0x00 }, false },
		{ VSC_FMT_ARGB8888, { 0x33, 0x22, 0x11, 0x44 }, true },
		{ VSC_FMT_XBGR8888, { 0x11, 0x22, 0x33, 0x00 }, false },
		{ VSC_FMT_ABGR8888, { 0x11, 0x22, 0x33, 0x44 }, true },
		{ VSC_FMT_BGRX8888, { 0x00, 0x11, 0x22, 0x33 }, false },
		{ VSC_FMT_BGRA8888, { 0x44, 0x11, 0x22, 0x33 }, true },
		{ VSC_FMT_RGBX8888, { 0x00, 0x33, 0x22, 0x11 }, false },
		{ VSC_FMT_RGBA8888, { 0x44, 0x33, 0x22, 0x11 }, true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t out[4];
		CHECK_EQ(vsc_format_bpp(cases[i].fourcc), 4);
		CHECK_EQ(vsc_format_has_alpha(cases[i].fourcc), cases[i].alpha);
		CHECK_OK(vsc_convert_row(cases[i].fourcc, cases[i].mem, 1, out, true));
		CHECK_EQ(out[0], 0x11);
		CHECK_EQ(out[1], 0x22);
		CHECK_EQ(out[2], 0x33);
		CHECK_EQ(out[3], cases[i].alpha ? 0x44 : 0xff);
	}
	uint8_t out[4];
	CHECK_EQ(vsc_convert_row(0x3231564e /* NV12 */, out, 1, out, false), -ENOTSUP);
	CHECK_EQ(vsc_format_bpp(0), 0);
}

/* The scripted daemon thread drives the blocking helpers end to end. */
TEST(blocking_helpers_against_scripted_daemon)
{
	struct fk_script s = {
		.width = 33, .height = 17, .num_scanouts = 1, .frames = 3, .heartbeats = true
	};
	char dir[] = "/tmp/vsc-test-XXXXXX", path[128];
	struct rec rec = { 0 };
	struct vsc *c;
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/d.sock", dir);
	fk_script_start(&s, path);
	CHECK_OK(vsc_connect(path, NULL, on_event, &rec, &c));
	CHECK_OK(vsc_wait_ready(c, 2000));
	CHECK_OK(vsc_wait_frames(c, 3, 3000));
	CHECK_EQ(rec.last.seq, 5);
	CHECK_EQ(vsc_frames_dropped(c), 2);
	uint32_t *want = malloc(33 * 17 * 4);
	CHECK(want != NULL);
	fk_script_expect(&s, want);
	CHECK_MEM_EQ(rec.pixels, want, 33 * 17 * 4);
	free(want);
	CHECK_OK(vsc_request_stats(c));
	for (int i = 0; i < 40 && !vsc_stats(c, NULL, NULL); i++)
		CHECK_OK(vsc_run(c, 50));
	CHECK(vsc_stats(c, NULL, NULL) != NULL);
	vsc_destroy(c);
	fk_script_join(&s);
	CHECK_EQ(s.error, 0);
	CHECK(s.vshm);
	CHECK_EQ(strcmp(s.role, "capture"), 0);
	CHECK_EQ(s.last_release, 5);
	free(rec.pixels);
	unlink(path);
	rmdir(dir);
}
