/* SPDX-License-Identifier: MIT */
/*
 * test-gpu-blob.c - blob resources in the device model through its direct
 * entry point: RESOURCE_CREATE_BLOB validation, SET_SCANOUT_BLOB bounds and
 * the three guest paths (contiguous view, udmabuf view, counted copy),
 * TRANSFER/FLUSH on blobs, MAP/UNMAP_BLOB refusals without a front-end,
 * contexts and per-ring fence timelines. Mapping through a front-end is
 * test-gpu-blob-shmem.c.
 */
#include "gpu-test-util.h"

#include <unistd.h>

#include <vshm/buffer.h>

#define PAGE   ((uint64_t)sysconf(_SC_PAGESIZE))
#define WINDOW (64ull << 20)

/* A sink that keeps a reference to each scanout's image, like a real one. */
struct ref_sink {
	struct vgs_image *img[VGS_MAX_SCANOUTS];
	struct vgs_rect rect[VGS_MAX_SCANOUTS];
	unsigned scanouts, flushes;
	struct vgs_rect damage;
};

static void rs_scanout(void *data, const struct vgs_scanout_state *s)
{
	struct ref_sink *r = data;
	vgs_image_unref(r->img[s->scanout_id]);
	r->img[s->scanout_id] = s->enabled ? vgs_image_ref(s->image) : NULL;
	r->rect[s->scanout_id] = s->rect;
	r->scanouts++;
}

static void rs_flush(void *data, uint32_t id, const struct vgs_rect *d, uint64_t ns)
{
	struct ref_sink *r = data;
	(void)id;
	(void)ns;
	r->flushes++;
	r->damage = *d;
}

static const struct vgs_display_sink_ops rs_ops = { .scanout = rs_scanout, .flush = rs_flush };

struct bfx {
	struct gfx f;
	struct ref_sink rs;
	struct vgs_display_sink rsd;
};

static void bfx_init(struct bfx *b, uint64_t window, bool udmabuf)
{
	struct vgs_gpu_config cfg;

	vgs_gpu_config_defaults(&cfg);
	cfg.num_scanouts = 2;
	cfg.host_visible_size = window;
	cfg.udmabuf = udmabuf;
	cfg.limits.max_host_bytes = 32ull << 20;
	memset(b, 0, sizeof(*b));
	gfx_init_cfg(&b->f, &cfg, false);
	b->rsd.ops = &rs_ops;
	b->rsd.data = &b->rs;
	CHECK_OK(vgs_gpu_add_display(b->f.gpu, &b->rsd));
}

static void bfx_fini(struct bfx *b)
{
	vgs_gpu_destroy(b->f.gpu);
	for (int i = 0; i < VGS_MAX_SCANOUTS; i++)
		vgs_image_unref(b->rs.img[i]);
	vshm_mem_destroy(b->f.mem);
	testfe_mem_destroy(b->f.tm);
}

static uint32_t create_blob(struct gfx *f, uint32_t id, uint32_t mem, uint32_t flags,
                            uint64_t blob_id, uint64_t size, const struct virtio_gpu_mem_entry *e,
                            uint32_t n)
{
	static uint8_t buf[sizeof(struct virtio_gpu_resource_create_blob) + 64 * 16];
	struct virtio_gpu_resource_create_blob c;

	CHECK(n <= 64);
	hdr(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB);
	c.resource_id = htole32(id);
	c.blob_mem = htole32(mem);
	c.blob_flags = htole32(flags);
	c.nr_entries = htole32(n);
	c.blob_id = htole64(blob_id);
	c.size = htole64(size);
	memcpy(buf, &c, sizeof(c));
	for (uint32_t i = 0; i < n; i++) {
		struct virtio_gpu_mem_entry le = { htole64(e[i].addr), htole32(e[i].length), 0 };
		memcpy(buf + sizeof(c) + i * sizeof(le), &le, sizeof(le));
	}
	return cmd(f, buf, sizeof(c) + n * sizeof(*e));
}

static uint32_t scanout_blob(struct gfx *f, uint32_t scanout, uint32_t id, uint32_t format,
                             uint32_t w, uint32_t h, uint32_t stride, uint32_t offset)
{
	struct virtio_gpu_set_scanout_blob c;

	memset(&c, 0, sizeof(c));
	hdr(&c.hdr, VIRTIO_GPU_CMD_SET_SCANOUT_BLOB);
	set_rect(&c.r, 0, 0, w, h);
	c.scanout_id = htole32(scanout);
	c.resource_id = htole32(id);
	c.width = htole32(w);
	c.height = htole32(h);
	c.format = htole32(format);
	c.strides[0] = htole32(stride);
	c.offsets[0] = htole32(offset);
	return cmd(f, &c, sizeof(c));
}

static uint32_t map_blob(struct gfx *f, uint32_t id, uint64_t offset)
{
	struct virtio_gpu_resource_map_blob c;
	memset(&c, 0, sizeof(c));
	hdr(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB);
	c.resource_id = htole32(id);
	c.offset = htole64(offset);
	return cmd(f, &c, sizeof(c));
}

static uint32_t simple_res(struct gfx *f, uint32_t type, uint32_t id, uint32_t ctx)
{
	struct virtio_gpu_ctx_resource c;
	memset(&c, 0, sizeof(c));
	hdr(&c.hdr, type);
	c.hdr.ctx_id = htole32(ctx);
	c.resource_id = htole32(id);
	return cmd(f, &c, sizeof(c));
}

#define XRGB VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM

/* Guest memory for a w x h XRGB blob in @chunks page-multiple entries, filled with pix(). */
static uint32_t guest_blob(struct bfx *b, uint32_t id, uint32_t w, uint32_t h, bool scatter,
                           uint32_t seed)
{
	struct virtio_gpu_mem_entry e[64];
	uint64_t size = (uint64_t)w * h * 4, pages = (size + PAGE - 1) / PAGE;
	uint32_t n = 0;
	void *host;

	CHECK(pages <= 32);
	for (uint64_t p = 0; p < pages; p++) {
		uint64_t gpa = galloc(&b->f, PAGE, &host);
		if (scatter) /* a hole after every page: nothing is contiguous */
			galloc(&b->f, PAGE, NULL);
		e[n].addr = gpa;
		e[n].length = (uint32_t)PAGE;
		n++;
	}
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint32_t v = pix(x, y, seed);
			uint64_t off = ((uint64_t)y * w + x) * 4;
			CHECK_OK(testfe_mem_write(b->f.tm, e[off / PAGE].addr + off % PAGE, &v, 4));
		}
	return create_blob(&b->f, id, VIRTIO_GPU_BLOB_MEM_GUEST, VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE,
	                   0, size, e, n);
}

static void check_pixels(const struct vgs_image *img, uint32_t w, uint32_t h, uint32_t seed)
{
	CHECK(img != NULL);
	CHECK_EQ(img->width, w);
	CHECK_EQ(img->height, h);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint32_t v;
			memcpy(&v, img->data + (uint64_t)y * img->stride + x * 4, 4);
			if (v != pix(x, y, seed)) {
				fprintf(stderr, "pixel %u,%u: %08x != %08x\n", x, y, v,
				        pix(x, y, seed));
				CHECK(0);
			}
		}
}

TEST(create_blob_validation)
{
	struct virtio_gpu_mem_entry e[2];
	struct bfx b;
	void *host;

	bfx_init(&b, WINDOW, false);
	e[0].addr = galloc(&b.f, 2 * PAGE, &host);
	e[0].length = (uint32_t)(2 * PAGE);
	/* blob_mem: 0, HOST3D_GUEST and unknown values */
	CHECK_EQ(create_blob(&b.f, 2, 0, 0, 0, PAGE, NULL, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_HOST3D_GUEST, 0, 0, PAGE, e, 1),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_blob(&b.f, 2, 77, 0, 0, PAGE, NULL, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* flags, size, blob_id */
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_GUEST, 0x8, 0, PAGE, e, 1),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_GUEST, 0, 0, 0, e, 1),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_HOST3D, 0, 5, PAGE, NULL, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_GUEST, 0, 5, PAGE, e, 1),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* guest entries: none, not guest memory, wrapping, too few bytes, fewer than claimed */
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_GUEST, 0, 0, PAGE, e, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	e[1].addr = 5ull << 20; /* the hole between the fixture's two regions */
	e[1].length = (uint32_t)PAGE;
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_GUEST, 0, 0, PAGE, e, 2),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	e[1].addr = UINT64_MAX - 16;
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_GUEST, 0, 0, PAGE, e, 2),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	e[1].addr = 64ull << 30; /* past guest memory */
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_GUEST, 0, 0, PAGE, e, 2),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_GUEST, 0, 0, 3 * PAGE, e, 1),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	{
		struct virtio_gpu_resource_create_blob c;
		hdr(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB);
		c.resource_id = htole32(2);
		c.blob_mem = htole32(VIRTIO_GPU_BLOB_MEM_GUEST);
		c.blob_flags = 0;
		c.nr_entries = htole32(1000);
		c.blob_id = 0;
		c.size = htole64(PAGE);
		CHECK_EQ(cmd(&b.f, &c, sizeof(c)), VIRTIO_GPU_RESP_ERR_UNSPEC);
		c.nr_entries = htole32(UINT32_MAX);
		CHECK_EQ(cmd(&b.f, &c, sizeof(c)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	}
	/* HOST3D: entries, larger than the window, larger than the budget, huge */
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_HOST3D, 0, 0, PAGE, e, 1),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_HOST3D, VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE,
	                     0, WINDOW + 1, NULL, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_HOST3D, 0, 0, 33ull << 20, NULL, 0),
	         VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_HOST3D, 0, 0, UINT64_MAX, NULL, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_HOST3D, 0, 0, UINT64_MAX - PAGE, NULL, 0),
	         VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	CHECK_EQ(stats(&b.f).resources, 0);
	CHECK_EQ(stats(&b.f).host_bytes, 0);

	/* Good ones; ids stay unique across kinds. */
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_GUEST,
	                     VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE |
	                             VIRTIO_GPU_BLOB_FLAG_USE_CROSS_DEVICE,
	                     0, 2 * PAGE - 5, e, 1),
	         VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_HOST3D, 0, 0, PAGE, NULL, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(create_2d(&b.f, 2, XRGB, 4, 4), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(create_blob(&b.f, 3, VIRTIO_GPU_BLOB_MEM_HOST3D, VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE,
	                     0, 100, NULL, 0),
	         VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&b.f).blobs, 2);
	CHECK_EQ(stats(&b.f).host_bytes, PAGE); /* page-rounded host allocation only */
	/* Blobs refuse the 2D backing commands; transfers are accepted no-ops. */
	CHECK_EQ(attach_one(&b.f, 2, e[0].addr, (uint32_t)PAGE),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(detach(&b.f, 2), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(transfer(&b.f, 2, 0, 0, 16, 16, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&b.f).transfer_bytes, 0);
	CHECK_EQ(set_scanout(&b.f, 0, 2, 0, 0, 16, 16), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(unref(&b.f, 2), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(unref(&b.f, 3), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&b.f).blobs, 0);
	CHECK_EQ(stats(&b.f).host_bytes, 0);
	bfx_fini(&b);
}

TEST(host3d_needs_a_window)
{
	struct bfx b;

	bfx_init(&b, 0, false);
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_HOST3D, 0, 0, PAGE, NULL, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	bfx_fini(&b);
}

TEST(map_blob_refusals_without_front_end)
{
	struct virtio_gpu_mem_entry e;
	struct bfx b;
	void *host;

	bfx_init(&b, WINDOW, false);
	e.addr = galloc(&b.f, PAGE, &host);
	e.length = (uint32_t)PAGE;
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_GUEST, VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE,
	                     0, PAGE, &e, 1),
	         VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_blob(&b.f, 3, VIRTIO_GPU_BLOB_MEM_HOST3D, 0, 0, PAGE, NULL, 0),
	         VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_blob(&b.f, 4, VIRTIO_GPU_BLOB_MEM_HOST3D, VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE,
	                     0, 4 * PAGE, NULL, 0),
	         VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&b.f, 5, XRGB, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(map_blob(&b.f, 9, 0), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(map_blob(&b.f, 2, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER); /* guest blob */
	CHECK_EQ(map_blob(&b.f, 3, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER); /* not mappable */
	CHECK_EQ(map_blob(&b.f, 5, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER); /* 2D */
	CHECK_EQ(map_blob(&b.f, 4, 100), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(map_blob(&b.f, 4, WINDOW), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(map_blob(&b.f, 4, WINDOW - 2 * PAGE), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(map_blob(&b.f, 4, UINT64_MAX & ~(PAGE - 1)),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* Valid, but no front-end to map it: the engine's refusal. */
	CHECK_EQ(map_blob(&b.f, 4, 0), VIRTIO_GPU_RESP_ERR_UNSPEC);
	CHECK_EQ(stats(&b.f).blob_map_failures, 1);
	CHECK_EQ(simple_res(&b.f, VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB, 4, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(simple_res(&b.f, VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB, 9, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	bfx_fini(&b);
}

TEST(scanout_blob_bounds)
{
	struct bfx b;
	const uint32_t w = 32, h = 16;

	bfx_init(&b, WINDOW, false);
	CHECK_EQ(guest_blob(&b, 2, w, h, false, 1), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&b.f, 3, XRGB, w, h), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(scanout_blob(&b.f, 16, 2, XRGB, w, h, w * 4, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	CHECK_EQ(scanout_blob(&b.f, 0, 9, XRGB, w, h, w * 4, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(scanout_blob(&b.f, 0, 3, XRGB, w, h, w * 4, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER); /* not a blob */
	CHECK_EQ(scanout_blob(&b.f, 0, 2, 5, w, h, w * 4, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(scanout_blob(&b.f, 0, 2, XRGB, 0, h, w * 4, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(scanout_blob(&b.f, 0, 2, XRGB, w, 0, w * 4, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(scanout_blob(&b.f, 0, 2, XRGB, 16385, 1, 16385 * 4, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(scanout_blob(&b.f, 0, 2, XRGB, w, h, w * 4 - 1, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER); /* stride < row */
	CHECK_EQ(scanout_blob(&b.f, 0, 2, XRGB, w, h, w * 4 + 4, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER); /* rows past the blob */
	CHECK_EQ(scanout_blob(&b.f, 0, 2, XRGB, w, h, w * 4, 4),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER); /* offset pushes it past */
	CHECK_EQ(scanout_blob(&b.f, 0, 2, XRGB, w, h, UINT32_MAX, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(scanout_blob(&b.f, 0, 2, XRGB, w, h, w * 4, UINT32_MAX),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(scanout_blob(&b.f, 0, 2, XRGB, 1, 1, UINT32_MAX, UINT32_MAX),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	{
		struct virtio_gpu_set_scanout_blob c;
		memset(&c, 0, sizeof(c));
		hdr(&c.hdr, VIRTIO_GPU_CMD_SET_SCANOUT_BLOB);
		set_rect(&c.r, 1, 0, w, h); /* rect past the framebuffer */
		c.resource_id = htole32(2);
		c.width = htole32(w);
		c.height = htole32(h);
		c.format = htole32(XRGB);
		c.strides[0] = htole32(w * 4);
		CHECK_EQ(cmd(&b.f, &c, sizeof(c)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
		set_rect(&c.r, 0xffffffffu, 0, 2, 1);
		CHECK_EQ(cmd(&b.f, &c, sizeof(c)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	}
	CHECK_EQ(b.rs.scanouts, 0);
	/* Every format; a smaller framebuffer inside the blob; then disable. */
	static const uint32_t fmts[] = { 1, 2, 3, 4, 67, 68, 121, 134 };
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(scanout_blob(&b.f, 1, 2, fmts[i], w / 2, h / 2, w * 4, 16),
		         VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(b.rs.img[1]->drm_fourcc, 0x34324258u); /* 'XB24' */
	CHECK_EQ(scanout_blob(&b.f, 1, 0, 0, 0, 0, 0, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(b.rs.img[1] == NULL);
	/* Flush rectangles past any framebuffer are refused, never clipped into memory. */
	CHECK_EQ(flush(&b.f, 2, 0xffffff00u, 0, 0x200, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(flush(&b.f, 2, 0, 0, 16, 16), VIRTIO_GPU_RESP_OK_NODATA); /* not shown: no-op */
	bfx_fini(&b);
}

TEST(guest_blob_contiguous_is_zero_copy)
{
	struct bfx b;
	const uint32_t w = 64, h = 32;
	struct vgs_gpu_stats s;
	uint32_t v = 0x00abcdef;

	bfx_init(&b, WINDOW, false);
	CHECK_EQ(guest_blob(&b, 2, w, h, false, 7), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(scanout_blob(&b.f, 0, 2, XRGB, w, h, w * 4, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(b.rs.scanouts, 1);
	CHECK_EQ(b.rs.img[0]->memfd, -1); /* guest memory is never handed to consumers by fd */
	check_pixels(b.rs.img[0], w, h, 7);
	/* Linux: a transfer (no-op), then the fenced flush. */
	CHECK_EQ(transfer(&b.f, 2, 0, 0, w, h, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(flush(&b.f, 2, 8, 4, 16, 8), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(b.rs.flushes, 1);
	CHECK_EQ(b.rs.damage.x, 8);
	CHECK_EQ(b.rs.damage.width, 16);
	/* The guest writes; the sink sees it with no copy in between. */
	CHECK_OK(testfe_mem_write(b.f.tm, 1u << 20, &v, 4)); /* the blob's first page */
	CHECK_EQ(((const uint32_t *)b.rs.img[0]->data)[0], v);
	s = stats(&b.f);
	CHECK_EQ(s.blob_views, 1);
	CHECK_EQ(s.blob_copies, 0);
	CHECK_EQ(s.blob_copy_bytes, 0);
	CHECK_EQ(s.transfer_bytes, 0);
	CHECK_EQ(s.host_bytes, 0);
	/* UNREF while shown: the scanout goes dark; the sink's reference stays readable. */
	CHECK_EQ(unref(&b.f, 2), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(b.rs.scanouts, 2);
	bfx_fini(&b);
}

TEST(guest_blob_scattered_is_a_counted_copy)
{
	struct bfx b;
	const uint32_t w = 64, h = 32;
	struct vgs_gpu_stats s;

	bfx_init(&b, WINDOW, false);
	CHECK_EQ(guest_blob(&b, 2, w, h, true, 9), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(scanout_blob(&b.f, 0, 2, XRGB, w, h, w * 4, 0), VIRTIO_GPU_RESP_OK_NODATA);
	s = stats(&b.f);
	CHECK_EQ(s.blob_views, 0);
	CHECK_EQ(s.host_bytes, b.rs.img[0]->size); /* the copy is charged */
	/* The first flush copies the whole framebuffer, later ones the damage. */
	CHECK_EQ(flush(&b.f, 2, 0, 0, 8, 8), VIRTIO_GPU_RESP_OK_NODATA);
	check_pixels(b.rs.img[0], w, h, 9);
	s = stats(&b.f);
	CHECK_EQ(s.blob_copies, 1);
	CHECK_EQ(s.blob_copy_bytes, (uint64_t)w * h * 4);
	CHECK_EQ(flush(&b.f, 2, 10, 3, 20, 5), VIRTIO_GPU_RESP_OK_NODATA);
	s = stats(&b.f);
	CHECK_EQ(s.blob_copies, 2);
	CHECK_EQ(s.blob_copy_bytes, (uint64_t)w * h * 4 + 20 * 5 * 4);
	/* A page flip to a same-sized scattered blob reuses the copy image. */
	CHECK_EQ(guest_blob(&b, 3, w, h, true, 10), VIRTIO_GPU_RESP_OK_NODATA);
	const struct vgs_image *before = b.rs.img[0];
	CHECK_EQ(scanout_blob(&b.f, 0, 3, XRGB, w, h, w * 4, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(b.rs.img[0] == before);
	CHECK_EQ(flush(&b.f, 3, 0, 0, w, h), VIRTIO_GPU_RESP_OK_NODATA);
	check_pixels(b.rs.img[0], w, h, 10);
	CHECK_EQ(stats(&b.f).host_bytes, b.rs.img[0]->size);
	CHECK_EQ(set_scanout(&b.f, 0, 0, 0, 0, 0, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&b.f).host_bytes, 0);
	bfx_fini(&b);
}

TEST(guest_blob_scattered_udmabuf)
{
	struct bfx b;
	const uint32_t w = 64, h = 32;
	struct vgs_gpu_stats s;

	bfx_init(&b, WINDOW, true);
	CHECK_EQ(guest_blob(&b, 2, w, h, true, 11), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(scanout_blob(&b.f, 0, 2, XRGB, w, h, w * 4, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(flush(&b.f, 2, 0, 0, w, h), VIRTIO_GPU_RESP_OK_NODATA);
	check_pixels(b.rs.img[0], w, h, 11);
	s = stats(&b.f);
	if (vshm_udmabuf_available(NULL)) {
		CHECK_EQ(s.blob_udmabuf, 1);
		CHECK_EQ(s.blob_copies, 0);
	} else {
		/* No /dev/udmabuf here: the explicit, counted fallback. */
		CHECK_EQ(s.blob_udmabuf, 0);
		CHECK_EQ(s.blob_copies, 1);
	}
	bfx_fini(&b);
}

TEST(guest_blob_across_regions_copies)
{
	struct virtio_gpu_mem_entry e[2];
	struct bfx b;
	void *h0, *h1;
	uint32_t v;

	bfx_init(&b, WINDOW, false);
	/* Last page of region 0 and first page of region 1 (4 MiB regions at 1 and 9 MiB). */
	CHECK_OK(testfe_mem_alloc_in(b.f.tm, 0, (4u << 20) - PAGE, PAGE, &e[0].addr, &h0));
	CHECK_OK(testfe_mem_alloc_in(b.f.tm, 0, PAGE, PAGE, &e[0].addr, &h0));
	CHECK_OK(testfe_mem_alloc_in(b.f.tm, 1, PAGE, PAGE, &e[1].addr, &h1));
	e[0].length = e[1].length = (uint32_t)PAGE;
	memset(h0, 0x11, PAGE);
	memset(h1, 0x22, PAGE);
	CHECK_EQ(create_blob(&b.f, 2, VIRTIO_GPU_BLOB_MEM_GUEST, 0, 0, 2 * PAGE, e, 2),
	         VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(scanout_blob(&b.f, 0, 2, XRGB, (uint32_t)(PAGE / 4), 2, (uint32_t)PAGE, 0),
	         VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(flush(&b.f, 2, 0, 0, (uint32_t)(PAGE / 4), 2), VIRTIO_GPU_RESP_OK_NODATA);
	memcpy(&v, b.rs.img[0]->data, 4);
	CHECK_EQ(v, 0x11111111u);
	memcpy(&v, b.rs.img[0]->data + b.rs.img[0]->stride, 4);
	CHECK_EQ(v, 0x22222222u);
	CHECK_EQ(stats(&b.f).blob_copies, 1);
	bfx_fini(&b);
}

static uint32_t ctx_create(struct gfx *f, uint32_t ctx, uint32_t init, uint32_t nlen)
{
	struct virtio_gpu_ctx_create c;
	memset(&c, 0, sizeof(c));
	hdr(&c.hdr, VIRTIO_GPU_CMD_CTX_CREATE);
	c.hdr.ctx_id = htole32(ctx);
	c.nlen = htole32(nlen);
	c.context_init = htole32(init);
	return cmd(f, &c, sizeof(c));
}

TEST(contexts_and_ring_timelines)
{
	struct virtio_gpu_ctrl_hdr h;
	struct bfx b;

	bfx_init(&b, WINDOW, false);
	CHECK_EQ(ctx_create(&b.f, 0, 0, 0), VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
	CHECK_EQ(ctx_create(&b.f, 1, 5, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER); /* cross-domain */
	CHECK_EQ(ctx_create(&b.f, 1, 1, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER); /* virgl */
	CHECK_EQ(ctx_create(&b.f, 1, 0x100, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(ctx_create(&b.f, 1, 0, 65), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(ctx_create(&b.f, 1, 0, 64), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(ctx_create(&b.f, 1, 0, 0), VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
	CHECK_EQ(create_2d(&b.f, 2, XRGB, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(simple_res(&b.f, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 2, 1),
	         VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(simple_res(&b.f, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 3, 1),
	         VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(simple_res(&b.f, VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, 2, 7),
	         VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
	CHECK_EQ(simple_res(&b.f, VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE, 2, 1),
	         VIRTIO_GPU_RESP_OK_NODATA);

	/* Fences on rings complete per (context, ring), in order. */
	for (uint64_t fence = 10; fence < 13; fence++) {
		struct virtio_gpu_resource_flush c;
		memset(&c, 0, sizeof(c));
		hdr(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_FLUSH);
		c.hdr.flags = htole32(VIRTIO_GPU_FLAG_FENCE | VIRTIO_GPU_FLAG_INFO_RING_IDX);
		c.hdr.fence_id = htole64(fence);
		c.hdr.ctx_id = htole32(1);
		c.hdr.ring_idx = (uint8_t)(fence == 12 ? 63 : 3);
		c.resource_id = htole32(2);
		set_rect(&c.r, 0, 0, 4, 4);
		CHECK_EQ(cmd(&b.f, &c, sizeof(c)), VIRTIO_GPU_RESP_OK_NODATA);
		memcpy(&h, b.f.resp, sizeof(h));
		CHECK_EQ(le64toh(h.fence_id), fence);
		CHECK_EQ(h.ring_idx, c.hdr.ring_idx);
	}
	CHECK_EQ(vgs_ctx_ring_fence(b.f.gpu, 1, 3), 11);
	CHECK_EQ(vgs_ctx_ring_fence(b.f.gpu, 1, 63), 12);
	CHECK_EQ(vgs_ctx_ring_fence(b.f.gpu, 1, 0), 0);
	CHECK_EQ(stats(&b.f).ring_fences, 3);
	/* Ring 64 does not exist: refused, but the fence still completes. */
	{
		struct virtio_gpu_ctx_destroy c;
		hdr(&c.hdr, VIRTIO_GPU_CMD_CTX_DESTROY);
		c.hdr.flags = htole32(VIRTIO_GPU_FLAG_FENCE | VIRTIO_GPU_FLAG_INFO_RING_IDX);
		c.hdr.fence_id = htole64(13);
		c.hdr.ctx_id = htole32(1);
		c.hdr.ring_idx = 64;
		CHECK_EQ(cmd(&b.f, &c, sizeof(c)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
		memcpy(&h, b.f.resp, sizeof(h));
		CHECK_EQ(le32toh(h.flags), VIRTIO_GPU_FLAG_FENCE | VIRTIO_GPU_FLAG_INFO_RING_IDX);
		CHECK_EQ(le64toh(h.fence_id), 13);
		c.hdr.flags = 0;
		CHECK_EQ(cmd(&b.f, &c, sizeof(c)), VIRTIO_GPU_RESP_OK_NODATA);
		CHECK_EQ(cmd(&b.f, &c, sizeof(c)), VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
	}
	/* Bounded: VGS_MAX_CONTEXTS, then OUT_OF_MEMORY. */
	for (uint32_t i = 0; i < VGS_MAX_CONTEXTS; i++)
		CHECK_EQ(ctx_create(&b.f, 100 + i, 0, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(ctx_create(&b.f, 99, 0, 0), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	bfx_fini(&b);
}
