/* SPDX-License-Identifier: MIT */
/*
 * test-gpu-cursor.c - cursor queue commands: shape snapshots in every
 * format, moves, hiding, and malformed requests.
 */
#include "gpu-test-util.h"

static bool cursor(struct gfx *f, uint32_t type, uint32_t scanout, uint32_t x, uint32_t y,
                   uint32_t id, uint32_t hx, uint32_t hy)
{
	struct virtio_gpu_update_cursor c;
	memset(&c, 0, sizeof(c));
	hdr(&c.hdr, type);
	c.pos.scanout_id = htole32(scanout);
	c.pos.x = htole32(x);
	c.pos.y = htole32(y);
	c.resource_id = htole32(id);
	c.hot_x = htole32(hx);
	c.hot_y = htole32(hy);
	return vgs_gpu_cursor_direct(f->gpu, &c, sizeof(c));
}

/* A 64x64 cursor resource of @format whose bytes are (x, y, i) patterns, uploaded. */
static void make_cursor(struct gfx *f, uint32_t id, uint32_t format)
{
	const uint32_t size = 64 * 64 * 4;
	uint8_t *host;
	uint64_t gpa = galloc(f, size, (void **)&host);
	for (uint32_t i = 0; i < size; i++)
		host[i] = (uint8_t)(i * 7 + i / 256);
	CHECK_EQ(create_2d(f, id, format, 64, 64), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(attach_one(f, id, gpa, size), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(transfer(f, id, 0, 0, 64, 64, 0), VIRTIO_GPU_RESP_OK_NODATA);
}

/* Expected ARGB8888 of pixel @i given each channel's byte position (a < 0: opaque). */
static uint32_t expect(uint32_t i, int r, int g, int b, int a)
{
	uint8_t p[4];
	for (int k = 0; k < 4; k++) {
		uint32_t o = i * 4 + k;
		p[k] = (uint8_t)(o * 7 + o / 256);
	}
	return (uint32_t)(a < 0 ? 0xff : p[a]) << 24 | (uint32_t)p[r] << 16 | (uint32_t)p[g] << 8 |
	       p[b];
}

TEST(update_cursor_argb)
{
	struct gfx f;
	gfx_init(&f);
	make_cursor(&f, 2, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM);
	CHECK(cursor(&f, VIRTIO_GPU_CMD_UPDATE_CURSOR, 1, 100, 200, 2, 5, 6));
	CHECK_EQ(f.sink.cursor_updates, 1);
	CHECK_EQ(f.sink.cur_scanout, 1);
	CHECK_EQ(f.sink.cur_x, 100);
	CHECK_EQ(f.sink.cur_y, 200);
	CHECK_EQ(f.sink.cur_hot_x, 5);
	CHECK_EQ(f.sink.cur_hot_y, 6);
	CHECK(!f.sink.cur_pixels_null);
	/* B8G8R8A8 is ARGB8888 on a little-endian host: the bytes pass through. */
	CHECK_MEM_EQ(f.sink.cur_pixels, vgs_res_lookup(f.gpu, 2)->image->data, 64 * 64 * 4);
	/* Move with the cursor's id keeps the shape visible. */
	CHECK(cursor(&f, VIRTIO_GPU_CMD_MOVE_CURSOR, 0, 7, 8, 2, 0, 0));
	CHECK_EQ(f.sink.cursor_moves, 1);
	CHECK_EQ(f.sink.cur_scanout, 0);
	CHECK_EQ(f.sink.cur_x, 7);
	CHECK_EQ(f.sink.cur_y, 8);
	CHECK(f.sink.cur_visible);
	/* The snapshot does not change when the resource is rewritten or freed. */
	CHECK_EQ(unref(&f, 2), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(cursor(&f, VIRTIO_GPU_CMD_MOVE_CURSOR, 0, 9, 9, 2, 0, 0));
	CHECK(f.sink.cur_visible);
	/* A move with id 0 hides; the next move with an id shows the shape again. */
	CHECK(cursor(&f, VIRTIO_GPU_CMD_MOVE_CURSOR, 0, 9, 9, 0, 0, 0));
	CHECK(!f.sink.cur_visible);
	CHECK(cursor(&f, VIRTIO_GPU_CMD_MOVE_CURSOR, 0, 9, 9, 2, 0, 0));
	CHECK(f.sink.cur_visible);
	/* Resource 0 hides. */
	CHECK(cursor(&f, VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 1, 1, 0, 0, 0));
	CHECK(f.sink.cur_pixels_null);
	CHECK(cursor(&f, VIRTIO_GPU_CMD_MOVE_CURSOR, 0, 2, 2, 2, 0, 0));
	CHECK(!f.sink.cur_visible); /* no shape since the hide */
	CHECK_EQ(stats(&f).errors, 0);
	gfx_fini(&f);
}

TEST(update_cursor_converts_every_format)
{
	static const struct {
		uint32_t format;
		int r, g, b, a;
	} t[] = {
		{ VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, 2, 1, 0, 3 },
		{ VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 2, 1, 0, -1 },
		{ VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM, 1, 2, 3, 0 },
		{ VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM, 1, 2, 3, -1 },
		{ VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM, 0, 1, 2, 3 },
		{ VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM, 3, 2, 1, -1 },
		{ VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM, 3, 2, 1, 0 },
		{ VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM, 0, 1, 2, -1 },
	};
	struct gfx f;
	gfx_init(&f);
	for (uint32_t k = 0; k < 8; k++) {
		make_cursor(&f, 10 + k, t[k].format);
		CHECK(cursor(&f, VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 0, 0, 10 + k, 0, 0));
		for (uint32_t i = 0; i < 64 * 64; i += 61)
			CHECK_EQ(f.sink.cur_pixels[i], expect(i, t[k].r, t[k].g, t[k].b, t[k].a));
	}
	gfx_fini(&f);
}

TEST(cursor_errors)
{
	struct gfx f;
	uint8_t junk[20] = { 0 };
	gfx_init(&f);
	CHECK_EQ(create_2d(&f, 2, 1, 32, 32), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&f, 3, 1, 64, 64), VIRTIO_GPU_RESP_OK_NODATA);
	uint64_t errors = stats(&f).errors;
	CHECK(!cursor(&f, VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 0, 0, 2, 0, 0));  /* not 64x64 */
	CHECK(!cursor(&f, VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 0, 0, 9, 0, 0));  /* no such resource */
	CHECK(!cursor(&f, VIRTIO_GPU_CMD_UPDATE_CURSOR, 16, 0, 0, 3, 0, 0)); /* bad scanout */
	CHECK(!cursor(&f, VIRTIO_GPU_CMD_MOVE_CURSOR, 0xffffffffu, 0, 0, 0, 0, 0));
	CHECK(!cursor(&f, VIRTIO_GPU_CMD_RESOURCE_FLUSH, 0, 0, 0, 0, 0, 0));
	CHECK(!vgs_gpu_cursor_direct(f.gpu, junk, sizeof(junk)));
	CHECK(!vgs_gpu_cursor_direct(f.gpu, NULL, 0));
	CHECK_EQ(stats(&f).errors, errors + 7);
	CHECK_EQ(f.sink.cursor_updates + f.sink.cursor_moves, 0);
	/* A valid (all-zero) 64x64 cursor still works afterwards. */
	CHECK(cursor(&f, VIRTIO_GPU_CMD_UPDATE_CURSOR, 1, 3, 4, 3, 1, 2));
	CHECK_EQ(f.sink.cursor_updates, 1);
	CHECK_EQ(f.sink.cur_pixels[0], 0);
	gfx_fini(&f);
}

TEST(cursor_replayed_to_new_sink_and_hidden_on_reset)
{
	struct fake_sink late = { 0 };
	struct vgs_display_sink d = { &fake_ops, &late };
	struct gfx f;
	gfx_init(&f);
	make_cursor(&f, 2, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM);
	CHECK(cursor(&f, VIRTIO_GPU_CMD_UPDATE_CURSOR, 1, 30, 40, 2, 1, 1));
	CHECK_OK(vgs_gpu_add_display(f.gpu, &d));
	CHECK_EQ(late.cursor_updates, 1);
	CHECK_EQ(late.cur_x, 30);
	CHECK_EQ(late.cur_scanout, 1);
	CHECK_MEM_EQ(late.cur_pixels, f.sink.cur_pixels, sizeof(late.cur_pixels));
	vgs_gpu_device_ops()->reset(f.gpu);
	CHECK(late.cur_pixels_null);
	CHECK(f.sink.cur_pixels_null);
	gfx_fini(&f);
}
