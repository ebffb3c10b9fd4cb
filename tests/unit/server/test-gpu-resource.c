/* SPDX-License-Identifier: MIT */
/*
 * test-gpu-resource.c - resources, backing and the 2D pixel copy of the
 * virtio-gpu device model, through its direct command entry point.
 */
#include "gpu-test-util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static const uint32_t all_formats[8] = {
	VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM,
	VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM, VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM,
	VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM, VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM,
	VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM, VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM,
};

TEST(create_all_formats)
{
	static const char *fourccs[8] = { "AR24", "XR24", "BA24", "BX24",
		                          "AB24", "RX24", "RA24", "XB24" };
	struct gfx f;
	gfx_init(&f);
	for (uint32_t i = 0; i < 8; i++) {
		struct vgs_resource *res;
		uint32_t fourcc;
		CHECK_EQ(create_2d(&f, 10 + i, all_formats[i], 33 + i, 17),
		         VIRTIO_GPU_RESP_OK_NODATA);
		CHECK_EQ(f.last_len, sizeof(struct virtio_gpu_ctrl_hdr));
		res = vgs_res_lookup(f.gpu, 10 + i);
		CHECK(res != NULL);
		CHECK_EQ(res->image->format, all_formats[i]);
		CHECK_EQ(res->image->stride, (33 + i) * 4);
		CHECK_EQ(res->image->bpp, 4);
		memcpy(&fourcc, fourccs[i], 4);
		CHECK_EQ(res->image->drm_fourcc, le32toh(fourcc));
		CHECK(res->image->size >= (uint64_t)res->image->stride * 17);
		CHECK_EQ(res->image->size % 4096, 0);
	}
	CHECK_EQ(stats(&f).resources, 8);
	CHECK(stats(&f).host_bytes >= 8 * 4096);
	gfx_fini(&f);
}

TEST(image_memfd_is_sealed_and_zeroed)
{
	struct vgs_image *img;
	int seals;
	CHECK_OK(vgs_image_new(100, 50, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, &img));
	CHECK(img->memfd >= 0);
	seals = fcntl(img->memfd, F_GET_SEALS);
	CHECK((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW));
	CHECK(!(seals & F_SEAL_WRITE));
	CHECK(ftruncate(img->memfd, 0) < 0);
	for (uint64_t i = 0; i < img->size; i++)
		CHECK_EQ(img->data[i], 0);
	CHECK(vgs_image_ref(img) == img);
	CHECK_EQ(img->refcount, 2);
	vgs_image_unref(img);
	vgs_image_unref(img);
	vgs_image_unref(NULL);
	CHECK_EQ(vgs_image_new(0, 5, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, &img), -EINVAL);
	CHECK_EQ(vgs_image_new(5, 5, 99, &img), -EINVAL);
	CHECK_EQ(vgs_image_new(VGS_MAX_DIM + 1, 5, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, &img),
	         -EINVAL);
}

TEST(create_errors)
{
	struct gfx f;
	gfx_init(&f);
	CHECK_EQ(create_2d(&f, 0, 2, 64, 64), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(create_2d(&f, 5, 2, 64, 64), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&f, 5, 2, 64, 64), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(create_2d(&f, 6, 5, 64, 64), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_2d(&f, 6, 0, 64, 64), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_2d(&f, 6, 2, 0, 64), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_2d(&f, 6, 2, 64, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_2d(&f, 6, 2, VGS_MAX_DIM + 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(create_2d(&f, 6, 2, 1, VGS_MAX_DIM + 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(stats(&f).resources, 1);
	CHECK_EQ(stats(&f).errors, 8);
	gfx_fini(&f);
}

TEST(create_16gib_is_out_of_memory)
{
	struct gfx f;
	gfx_init(&f);
	/* 65536 x 65536 x 4 = 16 GiB */
	CHECK_EQ(create_2d(&f, 2, 2, 65536, 65536), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	CHECK_EQ(create_2d(&f, 2, 2, 0xffffffffu, 0xffffffffu), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	CHECK_EQ(stats(&f).resources, 0);
	CHECK_EQ(stats(&f).host_bytes, 0);
	gfx_fini(&f);
}

TEST(host_bytes_budget)
{
	struct vgs_gpu_config cfg;
	struct gfx f;
	vgs_gpu_config_defaults(&cfg);
	cfg.limits.max_host_bytes = 3u << 20; /* 3 MiB */
	gfx_init_cfg(&f, &cfg, false);
	/* 1 MiB each */
	CHECK_EQ(create_2d(&f, 1, 2, 512, 512), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&f, 2, 2, 512, 512), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&f, 3, 2, 512, 512), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&f, 4, 2, 512, 512), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	CHECK_EQ(stats(&f).host_bytes, 3u << 20);
	CHECK_EQ(unref(&f, 2), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&f, 4, 2, 512, 512), VIRTIO_GPU_RESP_OK_NODATA);
	gfx_fini(&f);
}

TEST(resource_count_limit)
{
	struct vgs_gpu_config cfg;
	struct gfx f;
	vgs_gpu_config_defaults(&cfg);
	cfg.limits.max_resources = 3;
	gfx_init_cfg(&f, &cfg, false);
	CHECK_EQ(create_2d(&f, 1, 2, 8, 8), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&f, 2, 2, 8, 8), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&f, 3, 2, 8, 8), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&f, 4, 2, 8, 8), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	CHECK_EQ(unref(&f, 1), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&f, 4, 2, 8, 8), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&f).resources, 3);
	gfx_fini(&f);
}

TEST(many_resources_hash_growth)
{
	struct gfx f;
	gfx_init(&f);
	for (uint32_t id = 2; id < 1002; id++)
		CHECK_EQ(create_2d(&f, id, 2, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);
	for (uint32_t id = 2; id < 1002; id++)
		CHECK(vgs_res_lookup(f.gpu, id) && vgs_res_lookup(f.gpu, id)->id == id);
	for (uint32_t id = 2; id < 1002; id += 2)
		CHECK_EQ(unref(&f, id), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&f).resources, 500);
	CHECK(vgs_res_lookup(f.gpu, 2) == NULL);
	CHECK(vgs_res_lookup(f.gpu, 3) != NULL);
	gfx_fini(&f);
}

TEST(unref_resource)
{
	struct gfx f;
	gfx_init(&f);
	CHECK_EQ(unref(&f, 7), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(unref(&f, 0), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(create_2d(&f, 7, 2, 100, 100), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(stats(&f).host_bytes > 0);
	CHECK_EQ(unref(&f, 7), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(unref(&f, 7), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(stats(&f).host_bytes, 0);
	CHECK_EQ(stats(&f).resources, 0);
	gfx_fini(&f);
}

TEST(attach_detach)
{
	struct gfx f;
	void *host;
	uint64_t gpa;
	gfx_init(&f);
	gpa = galloc(&f, 64 * 64 * 4, &host);
	CHECK_EQ(attach_one(&f, 3, gpa, 64 * 64 * 4), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(create_2d(&f, 3, 2, 64, 64), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(detach(&f, 3), VIRTIO_GPU_RESP_ERR_UNSPEC);
	CHECK_EQ(attach_one(&f, 3, gpa, 64 * 64 * 4), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(attach_one(&f, 3, gpa, 64 * 64 * 4), VIRTIO_GPU_RESP_ERR_UNSPEC);
	CHECK_EQ(detach(&f, 3), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(detach(&f, 3), VIRTIO_GPU_RESP_ERR_UNSPEC);
	CHECK_EQ(detach(&f, 99), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	/* Re-attach after detach works. */
	CHECK_EQ(attach_one(&f, 3, gpa, 64 * 64 * 4), VIRTIO_GPU_RESP_OK_NODATA);
	gfx_fini(&f);
}

TEST(attach_errors)
{
	struct gfx f;
	struct virtio_gpu_mem_entry e[2];
	void *host;
	uint64_t gpa;
	gfx_init(&f);
	gpa = galloc(&f, 16384, &host);
	CHECK_EQ(create_2d(&f, 3, 2, 32, 32), VIRTIO_GPU_RESP_OK_NODATA); /* needs 4096 bytes */
	/* zero entries */
	CHECK_EQ(attach(&f, 3, e, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* too small in total */
	CHECK_EQ(attach_one(&f, 3, gpa, 4095), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* zero-length entry */
	e[0] = (struct virtio_gpu_mem_entry){ gpa, 4096, 0 };
	e[1] = (struct virtio_gpu_mem_entry){ gpa + 4096, 0, 0 };
	CHECK_EQ(attach(&f, 3, e, 2), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* below guest memory, in the hole between regions, past the end */
	CHECK_EQ(attach_one(&f, 3, 0, 4096), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(attach_one(&f, 3, 6u << 20, 4096), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(attach_one(&f, 3, (5u << 20) - 2048, 4096), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(attach_one(&f, 3, 13u << 20, 4096), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* address wrap-around */
	CHECK_EQ(attach_one(&f, 3, UINT64_MAX - 100, 4096), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(stats(&f).errors, 8);
	/* Still attachable after all that. */
	CHECK_EQ(attach_one(&f, 3, gpa, 4096), VIRTIO_GPU_RESP_OK_NODATA);
	gfx_fini(&f);
}

TEST(attach_truncated_and_too_many_entries)
{
	struct vgs_gpu_config cfg;
	struct gfx f;
	struct virtio_gpu_resource_attach_backing a;
	uint8_t buf[sizeof(a) + 16];
	vgs_gpu_config_defaults(&cfg);
	cfg.limits.max_backing_entries = 4;
	gfx_init_cfg(&f, &cfg, false);
	CHECK_EQ(create_2d(&f, 3, 2, 32, 32), VIRTIO_GPU_RESP_OK_NODATA);
	/* Claims 3 entries, carries 1. */
	hdr(&a.hdr, VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING);
	a.resource_id = htole32(3);
	a.nr_entries = htole32(3);
	memset(buf, 0, sizeof(buf));
	memcpy(buf, &a, sizeof(a));
	CHECK_EQ(cmd(&f, buf, sizeof(buf)), VIRTIO_GPU_RESP_ERR_UNSPEC);
	/* Over the configured maximum. */
	a.nr_entries = htole32(5);
	memcpy(buf, &a, sizeof(a));
	CHECK_EQ(cmd(&f, buf, sizeof(buf)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	a.nr_entries = htole32(0xffffffffu);
	memcpy(buf, &a, sizeof(a));
	CHECK_EQ(cmd(&f, buf, sizeof(buf)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	gfx_fini(&f);
}

/* Fill @w x @h pixels (stride w*4) at @host with pix(x, y, seed). */
static void fill(uint8_t *host, uint32_t w, uint32_t h, uint32_t seed)
{
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint32_t v = pix(x, y, seed);
			memcpy(host + ((size_t)y * w + x) * 4, &v, 4);
		}
}

static uint32_t image_px(struct gfx *f, uint32_t id, uint32_t x, uint32_t y)
{
	struct vgs_resource *res = vgs_res_lookup(f->gpu, id);
	uint32_t v;
	memcpy(&v, res->image->data + (size_t)y * res->image->stride + x * 4, 4);
	return v;
}

TEST(transfer_full_frame_every_format)
{
	struct gfx f;
	const uint32_t w = 123, h = 45;
	gfx_init(&f);
	for (uint32_t i = 0; i < 8; i++) {
		void *host;
		uint64_t gpa = galloc(&f, w * h * 4, &host);
		uint32_t id = 20 + i;
		fill(host, w, h, i);
		CHECK_EQ(create_2d(&f, id, all_formats[i], w, h), VIRTIO_GPU_RESP_OK_NODATA);
		CHECK_EQ(attach_one(&f, id, gpa, w * h * 4), VIRTIO_GPU_RESP_OK_NODATA);
		CHECK_EQ(transfer(&f, id, 0, 0, w, h, 0), VIRTIO_GPU_RESP_OK_NODATA);
		CHECK_MEM_EQ(vgs_res_lookup(f.gpu, id)->image->data, host, (size_t)w * h * 4);
	}
	CHECK_EQ(stats(&f).transfer_bytes, 8ull * w * h * 4);
	gfx_fini(&f);
}

TEST(transfer_subrect_with_offset)
{
	struct gfx f;
	const uint32_t w = 200, h = 100, stride = w * 4;
	void *host;
	uint64_t gpa;
	gfx_init(&f);
	gpa = galloc(&f, stride * h, &host);
	fill(host, w, h, 7);
	CHECK_EQ(create_2d(&f, 2, 2, w, h), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(attach_one(&f, 2, gpa, stride * h), VIRTIO_GPU_RESP_OK_NODATA);
	/* Linux: offset = x * 4 + y * pitch */
	CHECK_EQ(transfer(&f, 2, 13, 21, 50, 30, 13 * 4 + 21 * stride), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&f).transfer_bytes, 50 * 30 * 4);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			bool in = x >= 13 && x < 63 && y >= 21 && y < 51;
			CHECK_EQ(image_px(&f, 2, x, y), in ? pix(x, y, 7) : 0);
		}
	/* A full-width band (the fast path) at a row offset. */
	CHECK_EQ(transfer(&f, 2, 0, 90, w, 10, 90 * stride), VIRTIO_GPU_RESP_OK_NODATA);
	for (uint32_t y = 90; y < 100; y++)
		for (uint32_t x = 0; x < w; x++)
			CHECK_EQ(image_px(&f, 2, x, y), pix(x, y, 7));
	CHECK_EQ(image_px(&f, 2, 0, 89), 0);
	gfx_fini(&f);
}

TEST(transfer_scattered_backing_across_regions)
{
	struct gfx f;
	const uint32_t w = 256, h = 64, stride = w * 4, size = stride * h; /* 64 KiB = 16 pages */
	struct virtio_gpu_mem_entry e[17];
	uint8_t *src = malloc(size);
	uint64_t gpa0, gpa1;
	void *h0, *h1;
	gfx_init(&f);
	fill(src, w, h, 3);
	/* 8 pages in region 0, 8 in region 1, listed in reverse page order, uneven split. */
	CHECK_OK(testfe_mem_alloc_in(f.tm, 0, 8 * 4096, 4096, &gpa0, &h0));
	CHECK_OK(testfe_mem_alloc_in(f.tm, 1, 8 * 4096 + 1000, 4096, &gpa1, &h1));
	for (unsigned p = 0; p < 16; p++) {
		/* backing page p lives at slot (15 - p) of the combined page list */
		unsigned slot = 15 - p;
		uint64_t gpa = slot < 8 ? gpa0 + slot * 4096ull : gpa1 + (slot - 8) * 4096ull;
		e[p] = (struct virtio_gpu_mem_entry){ gpa, 4096, 0 };
		CHECK_OK(testfe_mem_write(f.tm, gpa, src + p * 4096, 4096));
	}
	/* A trailing partial entry, unused by the transfers. */
	e[16] = (struct virtio_gpu_mem_entry){ gpa1 + 8 * 4096, 1000, 0 };
	CHECK_EQ(create_2d(&f, 9, 1, w, h), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(attach(&f, 9, e, 17), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(transfer(&f, 9, 0, 0, w, h, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_MEM_EQ(vgs_res_lookup(f.gpu, 9)->image->data, src, size);
	/* Sub-rectangle rows that straddle page boundaries. */
	memset(vgs_res_lookup(f.gpu, 9)->image->data, 0, size);
	CHECK_EQ(transfer(&f, 9, 100, 3, 150, 40, 100 * 4 + 3 * stride), VIRTIO_GPU_RESP_OK_NODATA);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			bool in = x >= 100 && x < 250 && y >= 3 && y < 43;
			CHECK_EQ(image_px(&f, 9, x, y), in ? pix(x, y, 3) : 0);
		}
	free(src);
	gfx_fini(&f);
}

TEST(transfer_errors)
{
	struct gfx f;
	const uint32_t w = 64, h = 64, size = w * h * 4;
	void *host;
	uint64_t gpa;
	gfx_init(&f);
	gpa = galloc(&f, size, &host);
	CHECK_EQ(transfer(&f, 4, 0, 0, w, h, 0), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(create_2d(&f, 4, 2, w, h), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(transfer(&f, 4, 0, 0, w, h, 0), VIRTIO_GPU_RESP_ERR_UNSPEC); /* no backing */
	CHECK_EQ(attach_one(&f, 4, gpa, size), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(transfer(&f, 4, 0, 0, w + 1, h, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(transfer(&f, 4, 1, 0, w, h, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(transfer(&f, 4, 0, 0, w, h + 1, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* 32-bit wrap-around in x + width / y + height */
	CHECK_EQ(transfer(&f, 4, 0xffffffffu, 0, 2, 1, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(transfer(&f, 4, 0, 0xfffffff0u, 1, 0x20, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* offset past the backing, or wrapping 64 bits */
	CHECK_EQ(transfer(&f, 4, 0, 0, w, h, 4), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(transfer(&f, 4, 0, 0, 1, 1, size), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(transfer(&f, 4, 0, 0, 1, 1, UINT64_MAX), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(transfer(&f, 4, 0, 0, 1, 1, UINT64_MAX - 2),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* The last byte exactly fits. */
	CHECK_EQ(transfer(&f, 4, 0, 0, 1, 1, size - 4), VIRTIO_GPU_RESP_OK_NODATA);
	/* Empty rect: nothing to do, not an error. */
	CHECK_EQ(transfer(&f, 4, 0, 0, 0, 0, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&f).transfer_bytes, 4);
	gfx_fini(&f);
}

TEST(transfer_after_memory_table_change)
{
	struct testfe_mem_config mc = { .nregions = 2,
		                        .region_size = { 4u << 20, 4u << 20 },
		                        .base_gpa = 1u << 20,
		                        .gap = 4u << 20 };
	struct testfe_mem *tm2;
	struct gfx f;
	const uint32_t w = 32, h = 32, size = w * h * 4;
	void *host, *host2;
	uint64_t gpa, gpa2;
	gfx_init(&f);
	gpa = galloc(&f, size, &host);
	memset(host, 0x11, size);
	CHECK_EQ(create_2d(&f, 4, 2, w, h), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(attach_one(&f, 4, gpa, size), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(transfer(&f, 4, 0, 0, w, h, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(vgs_res_lookup(f.gpu, 4)->image->data[0], 0x11);
	/* Same layout, new memfds: the backing must be re-translated, not reused. */
	CHECK_OK(testfe_mem_new(&mc, &tm2));
	CHECK_OK(testfe_mem_alloc(tm2, size, 4096, &gpa2, &host2));
	CHECK_EQ(gpa2, gpa);
	memset(host2, 0x22, size);
	gfx_load_table(f.mem, tm2);
	CHECK_EQ(transfer(&f, 4, 0, 0, w, h, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(vgs_res_lookup(f.gpu, 4)->image->data[size - 1], 0x22);
	/* The backing's guest range vanishes: the transfer fails cleanly. */
	vshm_mem_clear(f.mem);
	CHECK_EQ(transfer(&f, 4, 0, 0, w, h, 0), VIRTIO_GPU_RESP_ERR_UNSPEC);
	gfx_load_table(f.mem, f.tm);
	CHECK_EQ(transfer(&f, 4, 0, 0, w, h, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(vgs_res_lookup(f.gpu, 4)->image->data[7], 0x11);
	testfe_mem_destroy(tm2);
	gfx_fini(&f);
}

TEST(reset_frees_everything)
{
	struct gfx f;
	void *host;
	uint64_t gpa;
	gfx_init(&f);
	gpa = galloc(&f, 64 * 64 * 4, &host);
	CHECK_EQ(create_2d(&f, 2, 2, 64, 64), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&f, 3, 2, 640, 480), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(attach_one(&f, 2, gpa, 64 * 64 * 4), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(set_scanout(&f, 0, 3, 0, 0, 640, 480), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(f.sink.last_scanout.enabled);
	vgs_gpu_device_ops()->reset(f.gpu);
	CHECK_EQ(stats(&f).resources, 0);
	CHECK_EQ(stats(&f).host_bytes, 0);
	CHECK(!f.sink.last_scanout.enabled);
	CHECK_EQ(f.sink.last_scanout.scanout_id, 0);
	CHECK(vgs_res_lookup(f.gpu, 2) == NULL);
	/* Ids are free again. */
	CHECK_EQ(create_2d(&f, 2, 2, 64, 64), VIRTIO_GPU_RESP_OK_NODATA);
	gfx_fini(&f);
}
