/* SPDX-License-Identifier: MIT */
/*
 * gpu-test-util.h - fixtures for the virtio-gpu device model unit tests:
 * a device whose guest memory is a testfe_mem translated through a real
 * vshm_mem table, request builders, and a fake display sink that records
 * every call (and can answer display queries now, later, or not at all).
 */
#ifndef VGS_GPU_TEST_UTIL_H
#define VGS_GPU_TEST_UTIL_H

#include "test-runner.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include <vshm/memory.h>

#include "device/gpu-internal.h"
#include "guest-mem.h"

/* ---- fake display sink ---- */

enum fake_query_mode {
	FAKE_QUERY_ASYNC,  /* keep the callback; the test answers later */
	FAKE_QUERY_SYNC,   /* answer inside the call */
	FAKE_QUERY_REFUSE, /* return -ENOTSUP */
};

struct fake_sink {
	unsigned scanouts, flushes, cursor_updates, cursor_moves, info_queries, edid_queries;
	struct vgs_scanout_state last_scanout;
	uint32_t flush_scanout;
	struct vgs_rect flush_damage;
	uint64_t flush_ns;
	uint32_t cur_scanout, cur_x, cur_y, cur_hot_x, cur_hot_y;
	bool cur_visible, cur_pixels_null;
	uint32_t cur_pixels[VGS_CURSOR_DIM * VGS_CURSOR_DIM];

	enum fake_query_mode mode;
	bool answer_ok;
	struct vgs_display_info_mode modes[VGS_MAX_SCANOUTS];
	uint8_t edid[256];
	uint32_t edid_size;
	vgs_display_info_cb info_cb;
	vgs_edid_cb edid_cb;
	void *cb_data;
	uint32_t edid_scanout;
};

static inline void fake_scanout(void *data, const struct vgs_scanout_state *s)
{
	struct fake_sink *f = data;
	f->scanouts++;
	f->last_scanout = *s;
}

static inline void fake_flush(void *data, uint32_t scanout_id, const struct vgs_rect *damage,
                              uint64_t flush_ns)
{
	struct fake_sink *f = data;
	f->flushes++;
	f->flush_scanout = scanout_id;
	f->flush_damage = *damage;
	f->flush_ns = flush_ns;
}

static inline void fake_cursor_update(void *data, uint32_t scanout_id, uint32_t x, uint32_t y,
                                      uint32_t hot_x, uint32_t hot_y, const uint32_t *pixels)
{
	struct fake_sink *f = data;
	f->cursor_updates++;
	f->cur_scanout = scanout_id;
	f->cur_x = x;
	f->cur_y = y;
	f->cur_hot_x = hot_x;
	f->cur_hot_y = hot_y;
	f->cur_pixels_null = pixels == NULL;
	f->cur_visible = pixels != NULL;
	if (pixels)
		memcpy(f->cur_pixels, pixels, sizeof(f->cur_pixels));
}

static inline void fake_cursor_move(void *data, uint32_t scanout_id, uint32_t x, uint32_t y,
                                    bool visible)
{
	struct fake_sink *f = data;
	f->cursor_moves++;
	f->cur_scanout = scanout_id;
	f->cur_x = x;
	f->cur_y = y;
	f->cur_visible = visible;
}

static inline int fake_get_display_info(void *data, vgs_display_info_cb cb, void *cb_data)
{
	struct fake_sink *f = data;
	f->info_queries++;
	if (f->mode == FAKE_QUERY_REFUSE)
		return -ENOTSUP;
	if (f->mode == FAKE_QUERY_SYNC) {
		cb(cb_data, f->answer_ok, f->modes);
		return 0;
	}
	f->info_cb = cb;
	f->cb_data = cb_data;
	return 0;
}

static inline int fake_get_edid(void *data, uint32_t scanout_id, vgs_edid_cb cb, void *cb_data)
{
	struct fake_sink *f = data;
	f->edid_queries++;
	f->edid_scanout = scanout_id;
	if (f->mode == FAKE_QUERY_REFUSE)
		return -ENOTSUP;
	if (f->mode == FAKE_QUERY_SYNC) {
		cb(cb_data, f->answer_ok, f->edid, f->edid_size);
		return 0;
	}
	f->edid_cb = cb;
	f->cb_data = cb_data;
	return 0;
}

static const struct vgs_display_sink_ops fake_ops = {
	.scanout = fake_scanout,
	.flush = fake_flush,
	.cursor_update = fake_cursor_update,
	.cursor_move = fake_cursor_move,
};

static const struct vgs_display_sink_ops fake_query_ops = {
	.scanout = fake_scanout,
	.flush = fake_flush,
	.cursor_update = fake_cursor_update,
	.cursor_move = fake_cursor_move,
	.get_display_info = fake_get_display_info,
	.get_edid = fake_get_edid,
};

/* ---- fixture ---- */

struct gfx {
	struct vgs_gpu *gpu;
	struct testfe_mem *tm;
	struct vshm_mem *mem;
	struct fake_sink sink;
	struct vgs_display_sink sink_desc;
	uint32_t last_type; /* response type of the last cmd() */
	size_t last_len;
	uint8_t resp[2048];
};

/* Load @tm's regions into @mem (a fresh table: the generation moves on). */
static inline void gfx_load_table(struct vshm_mem *mem, struct testfe_mem *tm)
{
	struct vshm_mem_region_desc d[TESTFE_MEM_MAX_REGIONS];
	int fds[TESTFE_MEM_MAX_REGIONS];
	CHECK_OK(testfe_mem_table(tm, d, fds));
	CHECK_OK(vshm_mem_set_table(mem, d, fds, testfe_mem_num_regions(tm)));
}

/* Two 4 MiB regions at 1 MiB and 9 MiB (a hole between them). */
static inline void gfx_init_cfg(struct gfx *f, const struct vgs_gpu_config *cfg, bool query_sink)
{
	struct testfe_mem_config mc = { .nregions = 2,
		                        .region_size = { 4u << 20, 4u << 20 },
		                        .base_gpa = 1u << 20,
		                        .gap = 4u << 20 };
	memset(f, 0, sizeof(*f));
	CHECK_OK(vgs_gpu_new(cfg, &f->gpu));
	CHECK_OK(testfe_mem_new(&mc, &f->tm));
	CHECK_OK(vshm_mem_new(8, &f->mem));
	gfx_load_table(f->mem, f->tm);
	vgs_gpu_set_test_mem(f->gpu, f->mem);
	f->sink.mode = FAKE_QUERY_ASYNC;
	f->sink.answer_ok = true;
	f->sink_desc.ops = query_sink ? &fake_query_ops : &fake_ops;
	f->sink_desc.data = &f->sink;
	CHECK_OK(vgs_gpu_add_display(f->gpu, &f->sink_desc));
}

static inline void gfx_init(struct gfx *f)
{
	struct vgs_gpu_config cfg;
	vgs_gpu_config_defaults(&cfg);
	cfg.num_scanouts = 2;
	cfg.width[0] = 1280;
	cfg.height[0] = 800;
	cfg.enabled_mask = 1;
	gfx_init_cfg(f, &cfg, false);
}

static inline void gfx_fini(struct gfx *f)
{
	vgs_gpu_destroy(f->gpu);
	vshm_mem_destroy(f->mem);
	testfe_mem_destroy(f->tm);
}

/* Run a request; returns the response type (0 if nothing was written). */
static inline uint32_t cmd(struct gfx *f, const void *req, size_t len)
{
	ssize_t n;
	memset(f->resp, 0xcc, sizeof(f->resp));
	n = vgs_gpu_ctrl_direct(f->gpu, req, len, f->resp, sizeof(f->resp), NULL, NULL);
	CHECK(n >= 0);
	f->last_len = (size_t)n;
	f->last_type = 0;
	if (n >= (ssize_t)sizeof(struct virtio_gpu_ctrl_hdr)) {
		struct virtio_gpu_ctrl_hdr h;
		memcpy(&h, f->resp, sizeof(h));
		f->last_type = le32toh(h.type);
	}
	return f->last_type;
}

static inline void hdr(struct virtio_gpu_ctrl_hdr *h, uint32_t type)
{
	memset(h, 0, sizeof(*h));
	h->type = htole32(type);
}

static inline uint32_t create_2d(struct gfx *f, uint32_t id, uint32_t format, uint32_t w,
                                 uint32_t h)
{
	struct virtio_gpu_resource_create_2d c;
	hdr(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
	c.resource_id = htole32(id);
	c.format = htole32(format);
	c.width = htole32(w);
	c.height = htole32(h);
	return cmd(f, &c, sizeof(c));
}

static inline uint32_t unref(struct gfx *f, uint32_t id)
{
	struct virtio_gpu_resource_unref c;
	hdr(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_UNREF);
	c.resource_id = htole32(id);
	c.padding = 0;
	return cmd(f, &c, sizeof(c));
}

/* ATTACH_BACKING with @n entries in one flat request (as one readable buffer). */
static inline uint32_t attach(struct gfx *f, uint32_t id, const struct virtio_gpu_mem_entry *e,
                              uint32_t n)
{
	static uint8_t buf[sizeof(struct virtio_gpu_resource_attach_backing) + 64 * 16];
	struct virtio_gpu_resource_attach_backing a;
	CHECK(n <= 64);
	hdr(&a.hdr, VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING);
	a.resource_id = htole32(id);
	a.nr_entries = htole32(n);
	memcpy(buf, &a, sizeof(a));
	for (uint32_t i = 0; i < n; i++) {
		struct virtio_gpu_mem_entry le = { htole64(e[i].addr), htole32(e[i].length), 0 };
		memcpy(buf + sizeof(a) + i * sizeof(le), &le, sizeof(le));
	}
	return cmd(f, buf, sizeof(a) + n * sizeof(*e));
}

static inline uint32_t attach_one(struct gfx *f, uint32_t id, uint64_t gpa, uint32_t len)
{
	struct virtio_gpu_mem_entry e = { gpa, len, 0 };
	return attach(f, id, &e, 1);
}

static inline uint32_t detach(struct gfx *f, uint32_t id)
{
	struct virtio_gpu_resource_detach_backing c;
	hdr(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING);
	c.resource_id = htole32(id);
	c.padding = 0;
	return cmd(f, &c, sizeof(c));
}

static inline void set_rect(struct virtio_gpu_rect *r, uint32_t x, uint32_t y, uint32_t w,
                            uint32_t h)
{
	r->x = htole32(x);
	r->y = htole32(y);
	r->width = htole32(w);
	r->height = htole32(h);
}

static inline uint32_t transfer(struct gfx *f, uint32_t id, uint32_t x, uint32_t y, uint32_t w,
                                uint32_t h, uint64_t offset)
{
	struct virtio_gpu_transfer_to_host_2d c;
	hdr(&c.hdr, VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D);
	set_rect(&c.r, x, y, w, h);
	c.offset = htole64(offset);
	c.resource_id = htole32(id);
	c.padding = 0;
	return cmd(f, &c, sizeof(c));
}

static inline uint32_t set_scanout(struct gfx *f, uint32_t scanout, uint32_t id, uint32_t x,
                                   uint32_t y, uint32_t w, uint32_t h)
{
	struct virtio_gpu_set_scanout c;
	hdr(&c.hdr, VIRTIO_GPU_CMD_SET_SCANOUT);
	set_rect(&c.r, x, y, w, h);
	c.scanout_id = htole32(scanout);
	c.resource_id = htole32(id);
	return cmd(f, &c, sizeof(c));
}

static inline uint32_t flush(struct gfx *f, uint32_t id, uint32_t x, uint32_t y, uint32_t w,
                             uint32_t h)
{
	struct virtio_gpu_resource_flush c;
	hdr(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_FLUSH);
	set_rect(&c.r, x, y, w, h);
	c.resource_id = htole32(id);
	c.padding = 0;
	return cmd(f, &c, sizeof(c));
}

static inline struct vgs_gpu_stats stats(struct gfx *f)
{
	struct vgs_gpu_stats s;
	vgs_gpu_get_stats(f->gpu, &s);
	return s;
}

/* Allocate @len bytes of guest memory (page aligned), return gpa and host pointer. */
static inline uint64_t galloc(struct gfx *f, uint64_t len, void **host)
{
	uint64_t gpa;
	CHECK_OK(testfe_mem_alloc(f->tm, len, 4096, &gpa, host));
	return gpa;
}

static inline uint32_t pix(uint32_t x, uint32_t y, uint32_t seed)
{
	uint32_t v = x * 0x9e3779b1u ^ y * 0x85ebca6bu ^ seed * 0xc2b2ae35u;
	return v ^ (v >> 15);
}

#endif
