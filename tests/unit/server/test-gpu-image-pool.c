/* SPDX-License-Identifier: MIT */
/*
 * test-gpu-image-pool.c - copy-on-write host images (device/image_pool.c):
 * a transfer never writes an image a reader holds, spares are reused and
 * bounded, the guest is never blocked when everything is held, and images
 * outlive their resource exactly as long as their holders.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gpu-test-util.h"

#define W      64
#define H      32
#define STRIDE (W * 4)

struct rig {
	struct gfx f;
	uint8_t *guest;
};

/* A 2D resource @id with a W x H backing at a fresh guest allocation. */
static void rig_resource(struct rig *r, uint32_t id)
{
	void *host;
	uint64_t gpa = galloc(&r->f, STRIDE * H, &host);

	r->guest = host;
	CHECK_EQ(create_2d(&r->f, id, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, W, H),
	         VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(attach_one(&r->f, id, gpa, STRIDE * H), VIRTIO_GPU_RESP_OK_NODATA);
}

static void fill_guest(uint8_t *g, uint32_t seed)
{
	for (uint32_t y = 0; y < H; y++)
		for (uint32_t x = 0; x < W; x++) {
			uint32_t v = pix(x, y, seed);
			memcpy(g + (size_t)y * STRIDE + x * 4, &v, 4);
		}
}

static uint32_t px(const struct vgs_image *img, uint32_t x, uint32_t y)
{
	uint32_t v;
	memcpy(&v, img->data + (size_t)y * img->stride + x * 4, 4);
	return v;
}

static struct vgs_image *cur(struct rig *r, uint32_t id)
{
	return vgs_res_lookup(r->f.gpu, id)->image;
}

/* What a consumer does between FRAME and FRAME_RELEASE. */
static struct vgs_image *hold(struct vgs_image *img)
{
	vgs_image_hold(vgs_image_ref(img));
	return img;
}

static void release(struct vgs_image *img)
{
	vgs_image_unhold(img);
	vgs_image_unref(img);
}

TEST(unheld_image_is_written_in_place)
{
	struct rig r;
	struct vgs_image *a;

	gfx_init(&r.f);
	rig_resource(&r, 1);
	a = cur(&r, 1);
	fill_guest(r.guest, 1);
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(transfer(&r.f, 1, 3, 4, 5, 6, 4 * STRIDE + 3 * 4), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(cur(&r, 1) == a);
	CHECK_EQ(stats(&r.f).cow_switches, 0);
	CHECK_EQ(stats(&r.f).pool_spares, 0);
	CHECK_MEM_EQ(a->data, r.guest, STRIDE * H);
	gfx_fini(&r.f);
}

TEST(held_image_is_never_written)
{
	struct rig r;
	struct vgs_image *a, *b;
	uint8_t *before = malloc(STRIDE * H);
	unsigned scanouts;
	uint64_t host_bytes;

	gfx_init(&r.f);
	rig_resource(&r, 1);
	fill_guest(r.guest, 1);
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(set_scanout(&r.f, 0, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA);
	host_bytes = stats(&r.f).host_bytes;
	a = hold(cur(&r, 1));
	memcpy(before, a->data, STRIDE * H);
	scanouts = r.f.sink.scanouts;

	/* A partial rectangle: lands in a spare that starts as a copy of A. */
	fill_guest(r.guest, 2);
	CHECK_EQ(transfer(&r.f, 1, 10, 5, 20, 10, 5 * STRIDE + 10 * 4), VIRTIO_GPU_RESP_OK_NODATA);
	b = cur(&r, 1);
	CHECK(b != a);
	CHECK_MEM_EQ(a->data, before, STRIDE * H); /* byte for byte */
	for (uint32_t y = 0; y < H; y++)
		for (uint32_t x = 0; x < W; x++) {
			bool in = x >= 10 && x < 30 && y >= 5 && y < 15;
			CHECK_EQ(px(b, x, y), pix(x, y, in ? 2 : 1));
		}
	CHECK_EQ(stats(&r.f).cow_switches, 1);
	CHECK_EQ(stats(&r.f).cow_copy_bytes, STRIDE * H);
	CHECK_EQ(stats(&r.f).pool_spares, 1);
	CHECK_EQ(stats(&r.f).host_bytes, host_bytes + b->size);
	/* The sinks were told, after the write, that the scanout shows B now. */
	CHECK_EQ(r.f.sink.scanouts, scanouts + 1);
	CHECK(r.f.sink.last_scanout.enabled);
	CHECK(r.f.sink.last_scanout.image == b);

	/* Unheld B takes further writes in place. */
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, 2, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(cur(&r, 1) == b);
	CHECK_EQ(r.f.sink.scanouts, scanouts + 1);

	/* B held, A still held: a full-width band goes to a third image; only the rest is copied.
	 */
	hold(b);
	fill_guest(r.guest, 3);
	CHECK_EQ(transfer(&r.f, 1, 0, 8, W, 4, 8 * STRIDE), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(cur(&r, 1) != a && cur(&r, 1) != b);
	CHECK_EQ(stats(&r.f).cow_copy_bytes, STRIDE * H + STRIDE * (H - 4));
	for (uint32_t y = 0; y < H; y++)
		CHECK_EQ(px(cur(&r, 1), 17, y), y >= 8 && y < 12 ? pix(17, y, 3) : px(b, 17, y));
	CHECK_MEM_EQ(a->data, before, STRIDE * H);
	CHECK_EQ(stats(&r.f).pool_spares, 2);
	release(a);
	release(b);
	free(before);
	gfx_fini(&r.f);
}

TEST(full_transfer_copies_nothing)
{
	struct rig r;
	struct vgs_image *a;

	gfx_init(&r.f);
	rig_resource(&r, 1);
	a = hold(cur(&r, 1));
	fill_guest(r.guest, 4);
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(cur(&r, 1) != a);
	CHECK_EQ(stats(&r.f).cow_switches, 1);
	CHECK_EQ(stats(&r.f).cow_copy_bytes, 0);
	CHECK_MEM_EQ(cur(&r, 1)->data, r.guest, STRIDE * H);
	CHECK_EQ(px(a, 0, 0), 0); /* still the zeroed original */
	/* Not on a scanout: nobody to tell. */
	CHECK_EQ(r.f.sink.scanouts, 0);
	release(a);
	gfx_fini(&r.f);
}

/*
 * A consumer that releases frame n - @lag - 1 when frame n arrives (so
 * @lag + 1 frames are held whenever the guest transfers), over 1,000 frames
 * of one resource (single-buffered guest) or two (page flipping): images
 * come back to the pool, the pool never passes 3 images per resource, and
 * no held frame changes. @torn: more held frames than the pool has images,
 * so each transfer reclaims the oldest held frame (counted, never blocked).
 */
static void run_frames(unsigned lag, bool flip, bool torn)
{
	struct rig r;
	struct vgs_image *held[4] = { 0 };
	uint64_t one, max_bytes = 0;
	uint8_t *g[2];

	gfx_init(&r.f);
	rig_resource(&r, 1);
	g[0] = r.guest;
	rig_resource(&r, 2);
	g[1] = r.guest;
	one = stats(&r.f).host_bytes / 2;
	for (unsigned n = 0; n < 1000; n++) {
		uint32_t id = flip ? 1 + n % 2 : 1;
		struct vgs_image *img;

		fill_guest(g[id - 1], n);
		CHECK_EQ(transfer(&r.f, id, 0, 0, W, n % 3 ? H : H / 2, 0),
		         VIRTIO_GPU_RESP_OK_NODATA);
		CHECK_EQ(set_scanout(&r.f, 0, id, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA);
		CHECK_EQ(flush(&r.f, id, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA);
		img = cur(&r, id);
		CHECK_EQ(px(img, 5, 0), pix(5, 0, n));
		/* The frame lag frames back is released; this one is held. */
		if (held[lag])
			release(held[lag]);
		memmove(&held[1], &held[0], lag * sizeof(held[0]));
		held[0] = hold(img);
		/* Every frame still held shows what it showed when it was sent. */
		for (unsigned k = 1; k <= lag && k <= n; k++)
			CHECK_EQ(px(held[k], 5, 0), pix(5, 0, n - k));
		CHECK(vgs_res_lookup(r.f.gpu, 1)->pool.n <= VGS_POOL_MAX - 1);
		CHECK(vgs_res_lookup(r.f.gpu, 2)->pool.n <= VGS_POOL_MAX - 1);
		if (stats(&r.f).host_bytes > max_bytes)
			max_bytes = stats(&r.f).host_bytes;
	}
	if (torn)
		CHECK(stats(&r.f).cow_torn_risk >= 990);
	else
		CHECK_EQ(stats(&r.f).cow_torn_risk, 0);
	CHECK(stats(&r.f).pool_allocs <= 2 * (VGS_POOL_MAX - 1));
	CHECK(max_bytes <= 2 * VGS_POOL_MAX * one);
	/* Page flipping with a consumer that keeps up: the idle buffer is never held. */
	if (flip && lag == 0)
		CHECK_EQ(stats(&r.f).cow_switches, 0);
	else
		CHECK(stats(&r.f).cow_switches > 0);
	for (unsigned k = 0; k <= lag; k++)
		if (held[k])
			release(held[k]);
	gfx_fini(&r.f);
}

TEST(pool_bounded_single_buffer)
{
	run_frames(0, false, false);
	run_frames(1, false, false); /* n held until n + 1 arrives (allowed by the spec) */
}

TEST(pool_bounded_single_buffer_consumer_too_slow)
{
	run_frames(2, false, true);
}

TEST(pool_bounded_page_flip)
{
	run_frames(0, true, false);
	run_frames(1, true, false);
	run_frames(2, true, false);
}

TEST(all_held_writes_oldest_in_place_without_blocking)
{
	struct rig r;
	struct vgs_image *a, *b, *c;

	gfx_init(&r.f);
	rig_resource(&r, 1);
	a = hold(cur(&r, 1));
	fill_guest(r.guest, 1);
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	b = hold(cur(&r, 1));
	fill_guest(r.guest, 2);
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	c = hold(cur(&r, 1));
	CHECK(a != b && b != c && a != c);
	CHECK_EQ(stats(&r.f).cow_torn_risk, 0);
	/* Three images, all held: the guest's transfer still completes, into A (oldest). */
	fill_guest(r.guest, 3);
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(cur(&r, 1) == a);
	CHECK_EQ(stats(&r.f).cow_torn_risk, 1);
	CHECK_EQ(stats(&r.f).pool_spares, 2);
	CHECK_MEM_EQ(a->data, r.guest, STRIDE * H);
	CHECK_EQ(px(b, 1, 1), pix(1, 1, 1));
	CHECK_EQ(px(c, 1, 1), pix(1, 1, 2));
	release(a);
	release(b);
	release(c);
	gfx_fini(&r.f);
}

TEST(no_budget_for_a_spare_writes_in_place)
{
	struct vgs_gpu_config cfg;
	struct rig r;
	struct vgs_image *a;

	vgs_gpu_config_defaults(&cfg);
	cfg.limits.max_host_bytes = STRIDE * H + 4096; /* one image, not two */
	gfx_init_cfg(&r.f, &cfg, false);
	rig_resource(&r, 1);
	a = hold(cur(&r, 1));
	fill_guest(r.guest, 5);
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(cur(&r, 1) == a);
	CHECK_EQ(stats(&r.f).cow_torn_risk, 1);
	CHECK_EQ(stats(&r.f).pool_spares, 0);
	CHECK_MEM_EQ(a->data, r.guest, STRIDE * H);
	release(a);
	gfx_fini(&r.f);
}

TEST(memory_pressure_frees_unheld_spares)
{
	struct vgs_gpu_config cfg;
	struct rig r;
	struct vgs_image *a;
	uint64_t img;

	vgs_gpu_config_defaults(&cfg);
	gfx_init_cfg(&r.f, &cfg, false);
	rig_resource(&r, 1);
	img = stats(&r.f).host_bytes;
	gfx_fini(&r.f);
	cfg.limits.max_host_bytes = 3 * img; /* resource 1 + its spare + one more */
	gfx_init_cfg(&r.f, &cfg, false);
	rig_resource(&r, 1);
	a = hold(cur(&r, 1));
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	release(a);
	CHECK_EQ(stats(&r.f).pool_spares, 1);
	CHECK_EQ(stats(&r.f).host_bytes, 2 * img);
	CHECK_EQ(create_2d(&r.f, 2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, W, H),
	         VIRTIO_GPU_RESP_OK_NODATA);
	/* Full: the unheld spare goes so the guest's resource fits. */
	CHECK_EQ(create_2d(&r.f, 3, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, W, H),
	         VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&r.f).pool_spares, 0);
	CHECK_EQ(stats(&r.f).pool_frees, 1);
	CHECK_EQ(stats(&r.f).host_bytes, 3 * img);
	/* No spare left to free: the budget says no. */
	CHECK_EQ(create_2d(&r.f, 4, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, W, H),
	         VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	gfx_fini(&r.f);
}

static void unref_or_reset(bool reset)
{
	struct rig r;
	struct vgs_image *a, *b;

	gfx_init(&r.f);
	rig_resource(&r, 1);
	CHECK_EQ(set_scanout(&r.f, 0, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA);
	a = hold(cur(&r, 1));
	fill_guest(r.guest, 6);
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	b = hold(cur(&r, 1));
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, 1, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&r.f).pool_spares, 2);
	if (reset)
		vgs_gpu_device_ops()->reset(r.f.gpu);
	else
		CHECK_EQ(unref(&r.f, 1), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&r.f).resources, 0);
	CHECK_EQ(stats(&r.f).host_bytes, 0);
	CHECK_EQ(stats(&r.f).pool_spares, 0);
	/* The holders still read their frames (ASan: no use after free)... */
	CHECK_EQ(px(a, 2, 2), 0);
	CHECK_EQ(px(b, 2, 2), pix(2, 2, 6));
	CHECK_EQ(a->refcount, 1);
	CHECK_EQ(b->refcount, 1);
	/* ...and their release frees the last of it (the runner's leak check). */
	release(a);
	release(b);
	gfx_fini(&r.f);
}

TEST(unref_with_holds_outstanding)
{
	unref_or_reset(false);
}

TEST(reset_with_holds_outstanding)
{
	unref_or_reset(true);
}

/* ---- warm spares: made after the responses (vgs_pool_idle), never in a transfer ---- */

/* Spares allocated inside a guest command (the flush path) so far. */
static uint64_t inline_allocs(struct rig *r)
{
	return stats(&r->f).pool_allocs - r->f.gpu->pool_warm_allocs;
}

/* Every page of @img is resident (pre-faulted). */
static bool resident(const struct vgs_image *img)
{
	long ps = sysconf(_SC_PAGESIZE);
	size_t pages = (img->size + (size_t)ps - 1) / (size_t)ps;
	unsigned char *vec = calloc(pages, 1);
	bool all = vec && mincore(img->data, img->size, vec) == 0;

	for (size_t i = 0; all && i < pages; i++)
		all = vec[i] & 1;
	free(vec);
	return all;
}

TEST(warm_spare_is_ready_before_the_first_switch)
{
	struct rig r;
	struct vgs_resource *res;
	struct vgs_image *a, *b, *c, *shown;
	uint64_t one;

	gfx_init(&r.f);
	rig_resource(&r, 1);
	res = vgs_res_lookup(r.f.gpu, 1);
	one = stats(&r.f).host_bytes;
	fill_guest(r.guest, 1);
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);

	/* Not on a scanout, or on one nobody reads: no spare is made. */
	vgs_pool_idle(r.f.gpu);
	CHECK_EQ(stats(&r.f).pool_spares, 0);
	CHECK_EQ(set_scanout(&r.f, 0, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA);
	vgs_pool_idle(r.f.gpu);
	CHECK_EQ(stats(&r.f).pool_spares, 0);

	/* A sink starts reading (it keeps a reference, as consumers and QEMU's display do). */
	shown = vgs_image_ref(cur(&r, 1));
	vgs_pool_idle(r.f.gpu);
	CHECK_EQ(stats(&r.f).pool_spares, 1);
	CHECK_EQ(r.f.gpu->pool_warm_allocs, 1);
	CHECK_EQ(stats(&r.f).host_bytes, 2 * one);
	CHECK(resident(res->pool.spare[0]));
	vgs_pool_idle(r.f.gpu); /* one is enough */
	CHECK_EQ(stats(&r.f).pool_spares, 1);

	/* Unheld: transfers still go in place; the warm spare stays. */
	fill_guest(r.guest, 2);
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(cur(&r, 1) == shown);
	CHECK_EQ(stats(&r.f).cow_switches, 0);

	/* The consumer holds A and stops reading: the switch takes the warm spare. */
	a = hold(cur(&r, 1));
	fill_guest(r.guest, 3);
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	b = cur(&r, 1);
	CHECK(b != a);
	CHECK_EQ(stats(&r.f).cow_switches, 1);
	CHECK_EQ(inline_allocs(&r), 0);
	CHECK_MEM_EQ(b->data, r.guest, STRIDE * H);
	CHECK_EQ(px(a, 3, 3), pix(3, 3, 2));

	/* After the batch the pool is refilled, off the guest's path. */
	vgs_pool_idle(r.f.gpu);
	CHECK_EQ(stats(&r.f).pool_spares, 2);
	CHECK_EQ(r.f.gpu->pool_warm_allocs, 2);
	hold(b);
	fill_guest(r.guest, 4);
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	c = cur(&r, 1);
	CHECK(c != a && c != b);
	CHECK_EQ(inline_allocs(&r), 0);

	/* Three images, all held: the bound holds, nothing more is made. */
	hold(c);
	vgs_pool_idle(r.f.gpu);
	CHECK_EQ(stats(&r.f).pool_spares, 2);
	CHECK_EQ(stats(&r.f).host_bytes, VGS_POOL_MAX * one);
	fill_guest(r.guest, 5);
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(cur(&r, 1) == a); /* the oldest, counted */
	CHECK_EQ(stats(&r.f).cow_torn_risk, 1);
	CHECK_EQ(stats(&r.f).pool_allocs, 2);
	CHECK_EQ(px(b, 1, 1), pix(1, 1, 3));
	CHECK_EQ(px(c, 1, 1), pix(1, 1, 4));
	release(a);
	release(b);
	release(c);
	vgs_image_unref(shown);
	gfx_fini(&r.f);
}

TEST(idle_sweep_keeps_one_warm_spare_while_displayed)
{
	struct rig r;
	struct vgs_resource *res;
	struct vgs_image *a, *b, *shown;

	gfx_init(&r.f);
	rig_resource(&r, 1);
	res = vgs_res_lookup(r.f.gpu, 1);
	CHECK_EQ(set_scanout(&r.f, 0, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA);
	shown = vgs_image_ref(cur(&r, 1));
	a = hold(cur(&r, 1));
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	b = hold(cur(&r, 1));
	CHECK_EQ(transfer(&r.f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&r.f).pool_spares, 2);
	release(a);
	release(b);
	/* The sink was told of the switches and shows the current image now. */
	vgs_image_unref(shown);
	shown = vgs_image_ref(cur(&r, 1));

	/* Both spares idle for long: the sweep frees one and keeps the warm one. */
	for (unsigned i = 0; i < res->pool.n; i++)
		res->pool.retired_ns[i] = 0;
	r.f.gpu->pool_trim_ns = 0;
	vgs_pool_idle(r.f.gpu);
	CHECK_EQ(stats(&r.f).pool_spares, 1);
	CHECK_EQ(stats(&r.f).pool_frees, 1);

	/* Nobody reads it any more: the last spare goes too and is not made again. */
	vgs_image_unref(shown);
	res->pool.retired_ns[0] = 0;
	r.f.gpu->pool_trim_ns = 0;
	vgs_pool_idle(r.f.gpu);
	CHECK_EQ(stats(&r.f).pool_spares, 0);
	CHECK_EQ(stats(&r.f).host_bytes, res->host_bytes);
	CHECK_EQ(res->host_bytes, res->image->size);
	gfx_fini(&r.f);
}

TEST(warm_spare_never_takes_budget_from_others)
{
	struct vgs_gpu_config cfg;
	struct rig r;
	struct vgs_image *a, *shown;
	uint64_t img;

	vgs_gpu_config_defaults(&cfg);
	gfx_init_cfg(&r.f, &cfg, false);
	rig_resource(&r, 1);
	img = stats(&r.f).host_bytes;
	gfx_fini(&r.f);
	cfg.limits.max_host_bytes = 3 * img;
	gfx_init_cfg(&r.f, &cfg, false);
	rig_resource(&r, 1);
	rig_resource(&r, 2);
	/* Resource 2 has an unheld spare; resource 1 is displayed and wants one. */
	a = hold(cur(&r, 2));
	CHECK_EQ(transfer(&r.f, 2, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	release(a);
	CHECK_EQ(stats(&r.f).host_bytes, 3 * img);
	CHECK_EQ(set_scanout(&r.f, 0, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA);
	shown = vgs_image_ref(cur(&r, 1));
	vgs_pool_idle(r.f.gpu);
	CHECK_EQ(r.f.gpu->pool_warm_allocs, 0);
	CHECK_EQ(stats(&r.f).pool_spares, 1);
	CHECK_EQ(vgs_res_lookup(r.f.gpu, 2)->pool.n, 1);
	/* Memory pressure still reclaims a warm spare for the guest's resources. */
	CHECK_EQ(unref(&r.f, 2), VIRTIO_GPU_RESP_OK_NODATA);
	vgs_pool_idle(r.f.gpu);
	CHECK_EQ(r.f.gpu->pool_warm_allocs, 1);
	CHECK_EQ(stats(&r.f).host_bytes, 2 * img);
	CHECK_EQ(create_2d(&r.f, 3, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, W, H),
	         VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&r.f).host_bytes, 3 * img);
	CHECK_EQ(create_2d(&r.f, 4, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, W, H),
	         VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(stats(&r.f).pool_spares, 0);
	CHECK_EQ(stats(&r.f).host_bytes, 3 * img);
	vgs_image_unref(shown);
	gfx_fini(&r.f);
}
