/* SPDX-License-Identifier: MIT */
/*
 * test-qemu-display.c - the QEMU display sink against a fake QEMU peer.
 *
 * The sink gets one end of a socketpair as its display socket; the test
 * plays QEMU on the other end, reading and checking the exact bytes and
 * answering (or not) as different QEMU versions do. The images are a tiny
 * stand-in for the device model's, so this test links no device code.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/event_loop.h>
#include <vshm/log.h>
#include <vshm-proto/qemu-display.h>

#include "qemu_display.h"
#include "test-runner.h"

/* ---- stand-in images -------------------------------------------------------- */

static int live_images;

struct vgs_image *vgs_image_ref(struct vgs_image *img)
{
	img->refcount++;
	return img;
}

void vgs_image_unref(struct vgs_image *img)
{
	if (!img || --img->refcount)
		return;
	free(img->data);
	free(img);
	live_images--;
}

/* An image whose stride has @pad extra bytes; pixel bytes are a pattern. */
static struct vgs_image *make_image(uint32_t w, uint32_t h, uint32_t format, uint32_t pad)
{
	struct vgs_image *img = calloc(1, sizeof(*img));

	CHECK(img);
	img->refcount = 1;
	img->memfd = -1;
	img->width = w;
	img->height = h;
	img->stride = w * 4 + pad;
	img->size = (uint64_t)img->stride * h;
	img->format = format;
	img->bpp = 4;
	img->data = malloc(img->size);
	CHECK(img->data);
	for (uint64_t i = 0; i < img->size; i++)
		img->data[i] = (uint8_t)(i * 7 + 3);
	live_images++;
	return img;
}

/* ---- fixture ---------------------------------------------------------------- */

struct fx {
	struct vshm_event_loop *loop;
	struct vgs_qemu_display *d;
	const struct vgs_display_sink *sink;
	int peer;
};

static void fx_init_cfg(struct fx *f, const struct vgs_qemu_display_config *cfg)
{
	vshm_log_set_level(VSHM_LOG_ERROR);
	CHECK_OK(vshm_event_loop_new(&f->loop));
	CHECK_OK(vgs_qemu_display_new(f->loop, cfg, &f->d));
	f->sink = vgs_qemu_display_sink(f->d);
	f->peer = -1;
}

static void fx_init(struct fx *f)
{
	struct vgs_qemu_display_config cfg;

	vgs_qemu_display_config_defaults(&cfg);
	cfg.num_scanouts = 2;
	cfg.handshake_timeout_ms = 100;
	cfg.reply_timeout_ms = 100;
	/* The kernel's small default buffer: a peer that stops reading backs up fast. */
	cfg.sndbuf = 0;
	fx_init_cfg(f, &cfg);
}

static void fx_finish(struct fx *f)
{
	vgs_qemu_display_destroy(f->d);
	vshm_event_loop_destroy(f->loop);
	if (f->peer >= 0)
		close(f->peer);
	CHECK_EQ(live_images, 0);
}

/* Hand a new socket to the sink; returns QEMU's end. */
static int fx_connect(struct fx *f)
{
	int sv[2];

	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ? -errno : 0);
	CHECK_OK(vgs_qemu_display_set_socket(f->d, sv[0]));
	return sv[1];
}

static void pump(struct fx *f, int ms)
{
	uint64_t end = vshm_now_ns() + (uint64_t)ms * 1000000ull;

	for (;;) {
		uint64_t now = vshm_now_ns();

		if (now >= end)
			break;
		CHECK(vshm_event_loop_dispatch(f->loop, (int)((end - now) / 1000000ull) + 1) >= 0);
	}
}

/* Read exactly @n bytes from the peer, running the sink's loop meanwhile. */
static bool peer_read_exact(struct fx *f, void *buf, size_t n, int timeout_ms)
{
	uint64_t end = vshm_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { .fd = f->peer, .events = POLLIN };
		ssize_t r;

		CHECK(vshm_event_loop_dispatch(f->loop, 0) >= 0);
		if (poll(&p, 1, 5) <= 0) {
			if (vshm_now_ns() > end)
				return false;
			continue;
		}
		r = read(f->peer, (uint8_t *)buf + got, n - got);
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

struct peer_msg {
	struct vhost_user_gpu_hdr hdr;
	uint8_t *payload;
};

static bool peer_recv(struct fx *f, struct peer_msg *m, int timeout_ms)
{
	m->payload = NULL;
	if (!peer_read_exact(f, &m->hdr, sizeof(m->hdr), timeout_ms))
		return false;
	m->payload = malloc(m->hdr.size ? m->hdr.size : 1);
	CHECK(m->payload);
	CHECK(peer_read_exact(f, m->payload, m->hdr.size, 2000));
	return true;
}

static void peer_expect(struct fx *f, struct peer_msg *m, uint32_t request, uint32_t size)
{
	if (!peer_recv(f, m, 2000))
		vshm_test_fail(__FILE__, __LINE__, "no message, expected request %u", request);
	CHECK_EQ(m->hdr.request, request);
	CHECK_EQ(m->hdr.flags, 0);
	CHECK_EQ(m->hdr.size, size);
}

/* True when nothing arrives within @ms. */
static bool peer_silent(struct fx *f, int ms)
{
	struct peer_msg m;

	if (!peer_recv(f, &m, ms))
		return true;
	fprintf(stderr, "unexpected message %u size %u\n", m.hdr.request, m.hdr.size);
	free(m.payload);
	return false;
}

static void peer_send(struct fx *f, uint32_t request, uint32_t flags, const void *p, uint32_t n)
{
	struct vhost_user_gpu_hdr hdr = { request, flags, n };

	CHECK_EQ(write(f->peer, &hdr, sizeof(hdr)), sizeof(hdr));
	if (n)
		CHECK_EQ(write(f->peer, p, n), n);
}

static void peer_reply_features(struct fx *f, uint64_t features)
{
	peer_send(f, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, VHOST_USER_GPU_MSG_FLAG_REPLY, &features,
	          sizeof(features));
}

/* Connect and complete the handshake offering @offered; checks the SET. */
static void fx_handshake(struct fx *f, uint64_t offered)
{
	struct peer_msg m;
	uint64_t v;

	f->peer = fx_connect(f);
	peer_expect(f, &m, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0);
	free(m.payload);
	CHECK(!vgs_qemu_display_ready(f->d));
	peer_reply_features(f, offered);
	peer_expect(f, &m, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 8);
	memcpy(&v, m.payload, 8);
	free(m.payload);
	CHECK_EQ(v, offered & (VHOST_USER_GPU_PROTOCOL_F_EDID | VHOST_USER_GPU_PROTOCOL_F_DMABUF2));
	CHECK(vgs_qemu_display_ready(f->d));
	CHECK_EQ(vgs_qemu_display_protocol_features(f->d), v);
}

static void set_scanout(struct fx *f, uint32_t id, struct vgs_image *img, uint32_t x, uint32_t y,
                        uint32_t w, uint32_t h)
{
	struct vgs_scanout_state s = {
		.scanout_id = id, .enabled = img != NULL, .rect = { x, y, w, h }, .image = img
	};

	f->sink->ops->scanout(f->sink->data, &s);
}

static void flush(struct fx *f, uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
	struct vgs_rect r = { x, y, w, h };

	f->sink->ops->flush(f->sink->data, id, &r, 0);
}

/*
 * Read one frame: UPDATE messages covering (x,y,w,h) top to bottom (the sink
 * splits frames into bounded messages), checking the pixels against @img
 * shown at (ox,oy).
 */
static void expect_update(struct fx *f, struct vgs_image *img, uint32_t id, uint32_t ox,
                          uint32_t oy, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
	for (uint32_t done = 0; done < h;) {
		struct peer_msg m;
		struct vhost_user_gpu_update u;

		if (!peer_recv(f, &m, 2000))
			vshm_test_fail(__FILE__, __LINE__, "no UPDATE");
		CHECK_EQ(m.hdr.request, VHOST_USER_GPU_UPDATE);
		CHECK_EQ(m.hdr.flags, 0);
		CHECK(m.hdr.size >= sizeof(u));
		memcpy(&u, m.payload, sizeof(u));
		CHECK_EQ(u.scanout_id, id);
		CHECK_EQ(u.x, x);
		CHECK_EQ(u.y, y + done);
		CHECK_EQ(u.width, w);
		CHECK(u.height >= 1 && u.height <= h - done);
		CHECK_EQ(m.hdr.size, 20 + w * u.height * 4);
		for (uint32_t r = 0; r < u.height; r++)
			CHECK_MEM_EQ(m.payload + 20 + (size_t)r * w * 4,
			             img->data + (size_t)(oy + y + done + r) * img->stride +
			                     (size_t)(ox + x) * 4,
			             (size_t)w * 4);
		done += u.height;
		free(m.payload);
	}
}

static void expect_scanout(struct fx *f, uint32_t id, uint32_t w, uint32_t h)
{
	struct peer_msg m;
	struct vhost_user_gpu_scanout s;

	peer_expect(f, &m, VHOST_USER_GPU_SCANOUT, 12);
	memcpy(&s, m.payload, sizeof(s));
	CHECK_EQ(s.scanout_id, id);
	CHECK_EQ(s.width, w);
	CHECK_EQ(s.height, h);
	free(m.payload);
}

/* ---- query callbacks -------------------------------------------------------- */

struct answer {
	int calls;
	bool ok;
	struct vgs_display_info_mode modes[VGS_MAX_SCANOUTS];
	uint8_t edid[VHOST_USER_GPU_EDID_MAX];
	uint32_t edid_size;
};

static void info_cb(void *data, bool ok, const struct vgs_display_info_mode *modes)
{
	struct answer *a = data;

	a->calls++;
	a->ok = ok;
	if (ok)
		memcpy(a->modes, modes, sizeof(a->modes));
}

static void edid_cb(void *data, bool ok, const uint8_t *edid, uint32_t size)
{
	struct answer *a = data;

	a->calls++;
	a->ok = ok;
	if (ok) {
		memcpy(a->edid, edid, size);
		a->edid_size = size;
	}
}

static void peer_reply_info(struct fx *f, uint32_t w0)
{
	struct vhost_user_gpu_resp_display_info r;

	memset(&r, 0, sizeof(r));
	r.hdr.type = VHOST_USER_GPU_RESP_OK_DISPLAY_INFO;
	r.pmodes[0].width = w0;
	r.pmodes[0].height = 600;
	r.pmodes[0].enabled = 1;
	peer_send(f, VHOST_USER_GPU_GET_DISPLAY_INFO, VHOST_USER_GPU_MSG_FLAG_REPLY, &r, sizeof(r));
}

static void peer_reply_edid(struct fx *f, uint8_t tag)
{
	struct vhost_user_gpu_resp_edid r;

	memset(&r, 0, sizeof(r));
	r.hdr.type = VHOST_USER_GPU_RESP_OK_EDID;
	r.size = 128;
	memset(r.edid, tag, 128);
	peer_send(f, VHOST_USER_GPU_GET_EDID, VHOST_USER_GPU_MSG_FLAG_REPLY, &r, sizeof(r));
}

static void wait_calls(struct fx *f, struct answer *a, int n, int ms)
{
	uint64_t end = vshm_now_ns() + (uint64_t)ms * 1000000ull;

	while (a->calls < n && vshm_now_ns() < end)
		CHECK(vshm_event_loop_dispatch(f->loop, 10) >= 0);
}

/* ---- tests ------------------------------------------------------------------ */

TEST(handshake_with_reply)
{
	struct fx f;
	struct vgs_qemu_display_stats st;

	fx_init(&f);
	CHECK(!vgs_qemu_display_connected(f.d));
	/* Unknown bits offered by a newer QEMU are not echoed back. */
	fx_handshake(&f, VHOST_USER_GPU_PROTOCOL_F_EDID | VHOST_USER_GPU_PROTOCOL_F_DMABUF2 |
	                         (1ull << 7));
	vgs_qemu_display_get_stats(f.d, &st);
	CHECK_EQ(st.sockets, 1);
	CHECK_EQ(st.handshake_timeouts, 0);
	CHECK_EQ(st.msgs_sent, 2);
	fx_finish(&f);
}

TEST(handshake_old_qemu_replies_zero)
{
	struct fx f;
	struct answer a = { 0 };

	fx_init(&f);
	fx_handshake(&f, 0);
	/* No EDID negotiated: GET_EDID is refused locally, never sent. */
	CHECK_EQ(f.sink->ops->get_edid(f.sink->data, 0, edid_cb, &a), -ENOTSUP);
	CHECK(peer_silent(&f, 50));
	CHECK_EQ(a.calls, 0);
	fx_finish(&f);
}

TEST(handshake_timeout_then_continue)
{
	struct fx f;
	struct peer_msg m;
	struct vgs_qemu_display_stats st;
	struct vgs_image *img = make_image(4, 4, 2, 0);

	fx_init(&f);
	f.peer = fx_connect(&f);
	peer_expect(&f, &m, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0);
	free(m.payload);
	/* Nothing is sent before the handshake ends. */
	set_scanout(&f, 0, img, 0, 0, 4, 4);
	CHECK(peer_silent(&f, 30));
	pump(&f, 150);
	CHECK(vgs_qemu_display_ready(f.d));
	CHECK_EQ(vgs_qemu_display_protocol_features(f.d), 0);
	vgs_qemu_display_get_stats(f.d, &st);
	CHECK_EQ(st.handshake_timeouts, 1);
	/* No SET_PROTOCOL_FEATURES after a timeout; the display just works. */
	expect_scanout(&f, 0, 4, 4);
	expect_update(&f, img, 0, 0, 0, 0, 0, 4, 4);
	/* A late reply is ignored. */
	peer_reply_features(&f, VHOST_USER_GPU_PROTOCOL_F_EDID);
	CHECK(peer_silent(&f, 50));
	CHECK_EQ(vgs_qemu_display_protocol_features(f.d), 0);
	vgs_image_unref(img);
	fx_finish(&f);
}

TEST(scanout_and_update_bytes)
{
	struct fx f;
	/* Padded stride: rows are not contiguous, so one iovec per row. */
	struct vgs_image *img = make_image(16, 8, 2, 12);
	struct vgs_qemu_display_stats st;

	fx_init(&f);
	fx_handshake(&f, 0);
	/* Show the 10x5 part at (3,2). */
	set_scanout(&f, 1, img, 3, 2, 10, 5);
	expect_scanout(&f, 1, 10, 5);
	expect_update(&f, img, 1, 3, 2, 0, 0, 10, 5);
	flush(&f, 1, 2, 1, 3, 2);
	expect_update(&f, img, 1, 3, 2, 2, 1, 3, 2);
	/* Damage is clipped to the scanout; ids past num_scanouts are dropped. */
	flush(&f, 1, 8, 3, 100, 100);
	expect_update(&f, img, 1, 3, 2, 8, 3, 2, 2);
	flush(&f, 5, 0, 0, 1, 1);
	flush(&f, 1, 10, 0, 1, 1);
	CHECK(peer_silent(&f, 30));
	/* Page flip to an image of the same size: no SCANOUT, next flush reads it. */
	{
		struct vgs_image *img2 = make_image(10, 5, 1, 0);

		set_scanout(&f, 1, img2, 0, 0, 10, 5);
		CHECK(peer_silent(&f, 30));
		flush(&f, 1, 0, 0, 10, 5);
		expect_update(&f, img2, 1, 0, 0, 0, 0, 10, 5);
		vgs_image_unref(img2);
	}
	/* Disable. */
	set_scanout(&f, 1, NULL, 0, 0, 0, 0);
	expect_scanout(&f, 1, 0, 0);
	vgs_qemu_display_get_stats(f.d, &st);
	CHECK_EQ(st.frames_sent, 4);
	CHECK_EQ(st.conversions, 0);
	CHECK_EQ(st.update_bytes, (10 * 5 + 3 * 2 + 2 * 2 + 10 * 5) * 4);
	vgs_image_unref(img);
	fx_finish(&f);
}

TEST(update_converts_rgba)
{
	struct fx f;
	struct vgs_image *img = make_image(4, 2, 67 /* R8G8B8A8 */, 0);
	struct vgs_qemu_display_stats st;
	struct peer_msg m;

	fx_init(&f);
	fx_handshake(&f, 0);
	set_scanout(&f, 0, img, 0, 0, 4, 2);
	expect_scanout(&f, 0, 4, 2);
	peer_expect(&f, &m, VHOST_USER_GPU_UPDATE, 20 + 32);
	for (int i = 0; i < 8; i++) {
		const uint8_t *s = img->data + i * 4, *o = m.payload + 20 + i * 4;

		/* R,G,B,A in memory becomes B,G,R,A (x8r8g8b8 little-endian). */
		CHECK_EQ(o[0], s[2]);
		CHECK_EQ(o[1], s[1]);
		CHECK_EQ(o[2], s[0]);
		CHECK_EQ(o[3], s[3]);
	}
	free(m.payload);
	vgs_qemu_display_get_stats(f.d, &st);
	CHECK_EQ(st.conversions, 1);
	vgs_image_unref(img);
	fx_finish(&f);
}

TEST(coalescing_when_peer_does_not_read)
{
	struct fx f;
	/* 1 MiB per frame: far more than the socket buffer holds. */
	struct vgs_image *img = make_image(512, 512, 2, 0);
	struct vgs_qemu_display_stats st;

	fx_init(&f);
	fx_handshake(&f, 0);
	set_scanout(&f, 0, img, 0, 0, 512, 512);
	pump(&f, 20);
	for (uint32_t i = 0; i < 200; i++)
		flush(&f, 0, 100 + i, 50, 10, 10 + i);
	pump(&f, 20);
	vgs_qemu_display_get_stats(f.d, &st);
	/* One frame queued (by reference); the 200 flushes merged into one. */
	CHECK_EQ(st.frames_sent, 1);
	CHECK_EQ(st.update_msgs, 1);
	CHECK_EQ(st.frames_coalesced, 199);

	/* QEMU reads again: the full first frame, then one frame for the union. */
	expect_scanout(&f, 0, 512, 512);
	expect_update(&f, img, 0, 0, 0, 0, 0, 512, 512);
	expect_update(&f, img, 0, 0, 0, 100, 50, 209, 209);
	CHECK(peer_silent(&f, 30));
	vgs_qemu_display_get_stats(f.d, &st);
	CHECK_EQ(st.frames_sent, 2);
	vgs_image_unref(img);
	fx_finish(&f);
}

TEST(latest_frame_wins)
{
	struct fx f;
	struct vgs_image *img = make_image(512, 512, 2, 0);

	fx_init(&f);
	fx_handshake(&f, 0);
	set_scanout(&f, 0, img, 0, 0, 512, 512);
	pump(&f, 20);
	flush(&f, 0, 508, 508, 4, 4);
	/*
	 * The pixels change again before the queue drains: no snapshot was
	 * taken, so both the queued frame's tail and the next frame carry the
	 * newest bytes.
	 */
	memset(img->data + 511 * 2048 + 508 * 4, 0xab, 16);
	expect_scanout(&f, 0, 512, 512);
	expect_update(&f, img, 0, 0, 0, 0, 0, 512, 512);
	expect_update(&f, img, 0, 0, 0, 508, 508, 4, 4);
	vgs_image_unref(img);
	fx_finish(&f);
}

TEST(bounded_queue_defers_and_recovers)
{
	struct fx f;
	struct vgs_qemu_display_config cfg;
	struct vgs_image *img = make_image(256, 256, 2, 0); /* 256 KiB frames */
	uint32_t px[VGS_CURSOR_DIM * VGS_CURSOR_DIM];
	struct vgs_qemu_display_stats st;
	struct peer_msg m;

	vgs_qemu_display_config_defaults(&cfg);
	cfg.sndbuf = 0;
	cfg.max_queued = 128 * 1024; /* smaller than one frame: frames go in chunks */
	fx_init_cfg(&f, &cfg);
	fx_handshake(&f, 0);
	set_scanout(&f, 0, img, 0, 0, 256, 256);
	memset(px, 0x5a, sizeof(px));
	for (int i = 0; i < 50; i++)
		f.sink->ops->cursor_update(f.sink->data, 0, (uint32_t)i, 2, 1, 1, px);
	pump(&f, 20);
	vgs_qemu_display_get_stats(f.d, &st);
	CHECK(st.send_deferred > 0);
	/*
	 * Everything arrives once QEMU reads, in any interleaving: the frame's
	 * chunks in order, and cursor shapes ending with the latest position.
	 */
	{
		uint32_t rows = 0;
		bool scanout = false, cursor = false;

		while (rows < 256 || !cursor || !scanout) {
			struct vhost_user_gpu_cursor_update cu;
			struct vhost_user_gpu_update u;

			CHECK(peer_recv(&f, &m, 2000));
			switch (m.hdr.request) {
			case VHOST_USER_GPU_SCANOUT:
				CHECK(!scanout);
				scanout = true;
				break;
			case VHOST_USER_GPU_UPDATE:
				memcpy(&u, m.payload, sizeof(u));
				CHECK(scanout);
				CHECK_EQ(u.y, rows);
				CHECK_EQ(u.width, 256);
				CHECK_EQ(m.hdr.size, 20 + u.height * 1024);
				CHECK_MEM_EQ(m.payload + 20, img->data + (size_t)rows * 1024,
				             (size_t)u.height * 1024);
				rows += u.height;
				break;
			case VHOST_USER_GPU_CURSOR_UPDATE:
				CHECK_EQ(m.hdr.size, sizeof(cu));
				memcpy(&cu, m.payload, sizeof(cu));
				CHECK(!cursor);
				if (cu.pos.x == 49) {
					CHECK_EQ(cu.hot_x, 1);
					CHECK_EQ(cu.data[0], 0x5a5a5a5a);
					cursor = true;
				}
				break;
			default:
				CHECK(0);
			}
			free(m.payload);
		}
		CHECK_EQ(rows, 256);
	}
	CHECK(peer_silent(&f, 30));
	vgs_image_unref(img);
	fx_finish(&f);
}

TEST(cursor_messages)
{
	struct fx f;
	uint32_t px[VGS_CURSOR_DIM * VGS_CURSOR_DIM];
	struct vhost_user_gpu_cursor_update cu;
	struct vhost_user_gpu_cursor_pos p;
	struct peer_msg m;

	fx_init(&f);
	fx_handshake(&f, 0);
	for (int i = 0; i < VGS_CURSOR_DIM * VGS_CURSOR_DIM; i++)
		px[i] = 0xff000000u | (uint32_t)i;
	f.sink->ops->cursor_update(f.sink->data, 1, 10, 20, 3, 4, px);
	peer_expect(&f, &m, VHOST_USER_GPU_CURSOR_UPDATE, 16404);
	memcpy(&cu, m.payload, sizeof(cu));
	free(m.payload);
	CHECK_EQ(cu.pos.scanout_id, 1);
	CHECK_EQ(cu.pos.x, 10);
	CHECK_EQ(cu.pos.y, 20);
	CHECK_EQ(cu.hot_x, 3);
	CHECK_EQ(cu.hot_y, 4);
	CHECK_MEM_EQ(cu.data, px, sizeof(px));

	f.sink->ops->cursor_move(f.sink->data, 1, 30, 40, true);
	peer_expect(&f, &m, VHOST_USER_GPU_CURSOR_POS, 12);
	memcpy(&p, m.payload, sizeof(p));
	free(m.payload);
	CHECK_EQ(p.scanout_id, 1);
	CHECK_EQ(p.x, 30);
	CHECK_EQ(p.y, 40);

	f.sink->ops->cursor_move(f.sink->data, 1, 30, 40, false);
	peer_expect(&f, &m, VHOST_USER_GPU_CURSOR_POS_HIDE, 12);
	free(m.payload);
	f.sink->ops->cursor_update(f.sink->data, 0, 0, 0, 0, 0, NULL);
	peer_expect(&f, &m, VHOST_USER_GPU_CURSOR_POS_HIDE, 12);
	free(m.payload);
	fx_finish(&f);
}

TEST(peer_hangup_drops_socket)
{
	struct fx f;
	struct vgs_image *img = make_image(512, 512, 2, 0);
	struct vgs_qemu_display_stats st;
	struct answer a = { 0 };

	fx_init(&f);
	fx_handshake(&f, 0);
	set_scanout(&f, 0, img, 0, 0, 512, 512); /* leaves an UPDATE queued */
	CHECK_OK(f.sink->ops->get_display_info(f.sink->data, info_cb, &a));
	close(f.peer);
	f.peer = -1;
	pump(&f, 30);
	CHECK(!vgs_qemu_display_connected(f.d));
	CHECK_EQ(a.calls, 1);
	CHECK(!a.ok);
	vgs_qemu_display_get_stats(f.d, &st);
	CHECK_EQ(st.disconnects, 1);
	/* The sink keeps working without a socket... */
	flush(&f, 0, 0, 0, 8, 8);
	CHECK_EQ(f.sink->ops->get_display_info(f.sink->data, info_cb, &a), -ENOTCONN);
	/* ...and a new socket gets the whole state again. */
	fx_handshake(&f, 0);
	expect_scanout(&f, 0, 512, 512);
	expect_update(&f, img, 0, 0, 0, 0, 0, 512, 512);
	vgs_image_unref(img);
	fx_finish(&f);
}

TEST(second_set_socket_replaces_first)
{
	struct fx f;
	struct vgs_image *img = make_image(8, 8, 2, 0);
	uint8_t byte;
	int first;

	fx_init(&f);
	fx_handshake(&f, 0);
	set_scanout(&f, 0, img, 0, 0, 8, 8);
	expect_scanout(&f, 0, 8, 8);
	expect_update(&f, img, 0, 0, 0, 0, 0, 8, 8);
	first = f.peer;
	/* QEMU re-sends the socket on the next DRIVER_OK. */
	f.peer = -1;
	fx_handshake(&f, VHOST_USER_GPU_PROTOCOL_F_EDID);
	CHECK_EQ(read(first, &byte, 1), 0); /* the old socket was closed */
	close(first);
	expect_scanout(&f, 0, 8, 8);
	expect_update(&f, img, 0, 0, 0, 0, 0, 8, 8);
	vgs_image_unref(img);
	fx_finish(&f);
}

TEST(edid_needs_feature_and_valid_id)
{
	struct fx f;
	struct answer a = { 0 };
	struct peer_msg m;
	struct vhost_user_gpu_edid_request req;

	fx_init(&f);
	/* Asked during the handshake, and the handshake brings no EDID: fails, nothing sent. */
	f.peer = fx_connect(&f);
	peer_expect(&f, &m, VHOST_USER_GPU_GET_PROTOCOL_FEATURES, 0);
	free(m.payload);
	CHECK_OK(f.sink->ops->get_edid(f.sink->data, 0, edid_cb, &a));
	peer_reply_features(&f, VHOST_USER_GPU_PROTOCOL_F_DMABUF2);
	peer_expect(&f, &m, VHOST_USER_GPU_SET_PROTOCOL_FEATURES, 8);
	free(m.payload);
	wait_calls(&f, &a, 1, 500);
	CHECK_EQ(a.calls, 1);
	CHECK(!a.ok);
	CHECK(peer_silent(&f, 30));
	close(f.peer);
	f.peer = -1;

	fx_handshake(&f, VHOST_USER_GPU_PROTOCOL_F_EDID);
	CHECK_EQ(f.sink->ops->get_edid(f.sink->data, 2, edid_cb, &a), -EINVAL);
	CHECK_OK(f.sink->ops->get_edid(f.sink->data, 1, edid_cb, &a));
	peer_expect(&f, &m, VHOST_USER_GPU_GET_EDID, 4);
	memcpy(&req, m.payload, 4);
	free(m.payload);
	CHECK_EQ(req.scanout_id, 1);
	peer_reply_edid(&f, 0x42);
	wait_calls(&f, &a, 2, 500);
	CHECK_EQ(a.calls, 2);
	CHECK(a.ok);
	CHECK_EQ(a.edid_size, 128);
	CHECK_EQ(a.edid[127], 0x42);
	fx_finish(&f);
}

TEST(display_info_reply_and_timeout)
{
	struct fx f;
	struct answer a = { 0 }, b = { 0 };
	struct peer_msg m;
	struct vgs_qemu_display_stats st;

	fx_init(&f);
	fx_handshake(&f, 0);
	CHECK_OK(f.sink->ops->get_display_info(f.sink->data, info_cb, &a));
	peer_expect(&f, &m, VHOST_USER_GPU_GET_DISPLAY_INFO, 0);
	free(m.payload);
	/* QEMU does not answer in time: ok=false. */
	wait_calls(&f, &a, 1, 500);
	CHECK_EQ(a.calls, 1);
	CHECK(!a.ok);
	vgs_qemu_display_get_stats(f.d, &st);
	CHECK_EQ(st.query_timeouts, 1);

	/* The late answer must not be taken for the next query's. */
	CHECK_OK(f.sink->ops->get_display_info(f.sink->data, info_cb, &b));
	peer_expect(&f, &m, VHOST_USER_GPU_GET_DISPLAY_INFO, 0);
	free(m.payload);
	peer_reply_info(&f, 111);
	peer_reply_info(&f, 800);
	wait_calls(&f, &b, 1, 500);
	CHECK_EQ(b.calls, 1);
	CHECK(b.ok);
	CHECK_EQ(b.modes[0].width, 800);
	CHECK_EQ(b.modes[0].height, 600);
	CHECK(b.modes[0].enabled);
	CHECK(!b.modes[1].enabled);
	CHECK_EQ(a.calls, 1);
	fx_finish(&f);
}

TEST(unanswered_edid_does_not_steal_next_reply)
{
	struct fx f;
	struct answer a = { 0 }, b = { 0 };
	struct peer_msg m;

	fx_init(&f);
	fx_handshake(&f, VHOST_USER_GPU_PROTOCOL_F_EDID);
	/* QEMU with max_outputs=1 never answers GET_EDID for scanout 1. */
	CHECK_OK(f.sink->ops->get_edid(f.sink->data, 1, edid_cb, &a));
	CHECK_OK(f.sink->ops->get_edid(f.sink->data, 0, edid_cb, &b));
	peer_expect(&f, &m, VHOST_USER_GPU_GET_EDID, 4);
	free(m.payload);
	/* Queries are serialized: the second waits for the first. */
	CHECK(peer_silent(&f, 30));
	wait_calls(&f, &a, 1, 500);
	CHECK(!a.ok);
	/* After the timeout: a GET_DISPLAY_INFO barrier, then the next GET_EDID. */
	peer_expect(&f, &m, VHOST_USER_GPU_GET_DISPLAY_INFO, 0);
	free(m.payload);
	peer_expect(&f, &m, VHOST_USER_GPU_GET_EDID, 4);
	free(m.payload);
	peer_reply_info(&f, 640);
	peer_reply_edid(&f, 0x17);
	wait_calls(&f, &b, 1, 500);
	CHECK(b.ok);
	CHECK_EQ(b.edid[0], 0x17);
	CHECK_EQ(a.calls, 1);
	fx_finish(&f);
}

/*
 * Replies from QEMU are VMM bytes: a short GET_DISPLAY_INFO, an EDID whose
 * size field exceeds its payload, a request QEMU should never send and a
 * reply nobody asked for are each refused or ignored; the socket stays up
 * and the next well-formed reply is taken.
 */
TEST(malformed_replies_from_qemu)
{
	struct fx f;
	struct answer a = { 0 }, b = { 0 }, c = { 0 };
	struct peer_msg m;
	struct vgs_qemu_display_stats st;
	struct vhost_user_gpu_resp_edid e;
	uint8_t junk[16] = { 0 };

	fx_init(&f);
	fx_handshake(&f, VHOST_USER_GPU_PROTOCOL_F_EDID);
	/* Noise first: a request from QEMU and an unsolicited reply. */
	peer_send(&f, VHOST_USER_GPU_UPDATE, 0, junk, sizeof(junk));
	peer_send(&f, VHOST_USER_GPU_DMABUF_UPDATE, VHOST_USER_GPU_MSG_FLAG_REPLY, NULL, 0);

	/* A GET_DISPLAY_INFO reply shorter than the structure. */
	CHECK_OK(f.sink->ops->get_display_info(f.sink->data, info_cb, &a));
	peer_expect(&f, &m, VHOST_USER_GPU_GET_DISPLAY_INFO, 0);
	free(m.payload);
	peer_send(&f, VHOST_USER_GPU_GET_DISPLAY_INFO, VHOST_USER_GPU_MSG_FLAG_REPLY, junk,
	          sizeof(junk));
	wait_calls(&f, &a, 1, 500);
	CHECK_EQ(a.calls, 1);
	CHECK(!a.ok);

	/* An EDID reply claiming more bytes than it carries. */
	CHECK_OK(f.sink->ops->get_edid(f.sink->data, 0, edid_cb, &b));
	peer_expect(&f, &m, VHOST_USER_GPU_GET_EDID, 4);
	free(m.payload);
	memset(&e, 0, sizeof(e));
	e.hdr.type = VHOST_USER_GPU_RESP_OK_EDID;
	e.size = 256;
	peer_send(&f, VHOST_USER_GPU_GET_EDID, VHOST_USER_GPU_MSG_FLAG_REPLY, &e,
	          (uint32_t)offsetof(struct vhost_user_gpu_resp_edid, edid) + 128);
	wait_calls(&f, &b, 1, 500);
	CHECK_EQ(b.calls, 1);
	CHECK(!b.ok);

	/* Still connected: the next well-formed reply is delivered. */
	CHECK_OK(f.sink->ops->get_display_info(f.sink->data, info_cb, &c));
	peer_expect(&f, &m, VHOST_USER_GPU_GET_DISPLAY_INFO, 0);
	free(m.payload);
	peer_reply_info(&f, 1024);
	wait_calls(&f, &c, 1, 500);
	CHECK(c.ok);
	CHECK_EQ(c.modes[0].width, 1024);
	vgs_qemu_display_get_stats(f.d, &st);
	CHECK_EQ(st.disconnects, 0);
	fx_finish(&f);
}

TEST(destroy_with_pending_state)
{
	struct fx f;
	struct vgs_image *img = make_image(512, 512, 2, 0);
	struct answer a = { 0 };

	fx_init(&f);
	fx_handshake(&f, VHOST_USER_GPU_PROTOCOL_F_EDID);
	set_scanout(&f, 0, img, 0, 0, 512, 512);
	flush(&f, 0, 0, 0, 1, 1);
	CHECK_OK(f.sink->ops->get_edid(f.sink->data, 0, edid_cb, &a));
	vgs_image_unref(img); /* the sink still holds references */
	CHECK_EQ(live_images, 1);
	vgs_qemu_display_destroy(f.d);
	f.d = NULL;
	CHECK_EQ(a.calls, 1);
	CHECK(!a.ok);
	fx_finish(&f);
}

TEST(bad_config_rejected)
{
	struct vshm_event_loop *loop;
	struct vgs_qemu_display_config cfg;
	struct vgs_qemu_display *d;

	CHECK_OK(vshm_event_loop_new(&loop));
	vgs_qemu_display_config_defaults(&cfg);
	cfg.num_scanouts = 17;
	CHECK_EQ(vgs_qemu_display_new(loop, &cfg, &d), -EINVAL);
	cfg.num_scanouts = 0;
	CHECK_EQ(vgs_qemu_display_new(loop, &cfg, &d), -EINVAL);
	vshm_event_loop_destroy(loop);
}
