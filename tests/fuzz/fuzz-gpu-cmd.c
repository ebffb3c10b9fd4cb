/* SPDX-License-Identifier: MIT */
/*
 * fuzz-gpu-cmd.c - the virtio-gpu command decoder and 2D device model
 * against arbitrary command sequences.
 *
 * One input is a sequence of records, each [sel][len lo][len hi][len bytes]
 * (a record cut short by the end of the input gets what is left):
 *
 *   sel & 7 == 1   cursorq command (vgs_gpu_cursor_direct)
 *   sel & 7 == 2   the display sink answers its oldest pending query
 *                  (bytes[0] bit 0: ok, the rest: EDID bytes)
 *   sel & 7 == 3   device-level event: bytes[0] picks reset, config space
 *                  write or read, display hot-plug, a second sink
 *   sel & 7 == 4   guest memory table change: bytes[0] picks the full
 *                  table again (new mappings), one region dropped, or none
 *   otherwise      controlq command (vgs_gpu_ctrl_direct); when sel bit 4
 *                  is set the response buffer holds only (sel >> 5) * 8
 *                  bytes, to exercise short response buffers.
 *
 * So the fuzzer controls every byte of every request, including
 * ATTACH_BACKING entry arrays (inline after the request, as the direct entry
 * point takes them) that point into guest memory: three regions of one
 * memfd, two adjacent (backing may cross between them) and one behind a gap
 * at an unaligned file offset. Sinks check what the device tells them
 * (rects inside the image they were given, images alive) and touch the
 * pixels, so a bad damage rect or a freed image faults under ASan.
 *
 * Everything is torn down per input (vgs_gpu_destroy frees every resource),
 * so LeakSanitizer sees any resource, image or query the model loses.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vshm/log.h>
#include <vshm/memory.h>

#include "../../server/device/gpu-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define UVA_BASE 0x7f0000000000ull
#define MEM_SIZE 0x30000

static const struct vshm_mem_region_desc regions[] = {
	{ .guest_addr = 0x0, .size = 0x10000, .user_addr = UVA_BASE, .mmap_offset = 0 },
	{ .guest_addr = 0x10000,
	  .size = 0x10000,
	  .user_addr = UVA_BASE + 0x100000,
	  .mmap_offset = 0x10000 },
	{ .guest_addr = 0x100000,
	  .size = 0x8000,
	  .user_addr = UVA_BASE + 0x200000,
	  .mmap_offset = 0x20800 },
};

static struct vshm_mem *mem;
static int mem_fd = -1;
static bool mem_changed = true;

static void quiet(enum vshm_log_level level, const char *msg, void *d)
{
	(void)level, (void)msg, (void)d;
}

static void set_table(unsigned n)
{
	int fds[3];

	for (unsigned i = 0; i < n; i++) {
		fds[i] = dup(mem_fd);
		if (fds[i] < 0)
			abort();
	}
	if (n == 0)
		vshm_mem_clear(mem);
	else if (vshm_mem_set_table(mem, regions, fds, n) < 0)
		abort(); /* our own constants: a failure is a harness bug */
}

static void setup(void)
{
	vshm_log_set_handler(quiet, NULL);
	mem_fd = memfd_create("fuzz-gpu-guest", MFD_CLOEXEC);
	if (mem_fd < 0 || ftruncate(mem_fd, MEM_SIZE) < 0 || vshm_mem_new(4, &mem) < 0)
		abort();
}

/* ---- a display sink that checks what the device tells it ---------------- */

#define MAX_PENDING 8

struct pending {
	bool edid;
	vgs_display_info_cb info_cb;
	vgs_edid_cb edid_cb;
	void *cb_data;
};

struct sink {
	struct vgs_image *image[VGS_MAX_SCANOUTS]; /* referenced, like a real sink */
	struct vgs_rect rect[VGS_MAX_SCANOUTS];
	uint32_t cursor[VGS_CURSOR_DIM * VGS_CURSOR_DIM];
	struct pending pending[MAX_PENDING];
	unsigned npending;
	uint8_t query_mode; /* 0 later, 1 now ok, 2 now failed, 3 refuse */
	volatile uint32_t sum;
};

static void touch(struct sink *s, const uint8_t *p)
{
	s->sum += *(const volatile uint8_t *)p;
}

static void sink_scanout(void *data, const struct vgs_scanout_state *st)
{
	struct sink *s = data;
	uint32_t i = st->scanout_id;

	if (i >= VGS_MAX_SCANOUTS)
		abort();
	vgs_image_unref(s->image[i]);
	s->image[i] = NULL;
	if (!st->enabled)
		return;
	const struct vgs_image *img = st->image;
	if (!img || !vgs_rect_inside(&st->rect, img->width, img->height) ||
	    (uint64_t)img->stride * img->height > img->size)
		abort(); /* the device showed a rect outside its image */
	s->image[i] = vgs_image_ref(st->image);
	s->rect[i] = st->rect;
	touch(s, img->data);
	touch(s, img->data + img->size - 1);
}

static void sink_flush(void *data, uint32_t scanout_id, const struct vgs_rect *d, uint64_t ns)
{
	struct sink *s = data;
	(void)ns;

	if (scanout_id >= VGS_MAX_SCANOUTS)
		abort();
	const struct vgs_image *img = s->image[scanout_id];
	const struct vgs_rect *r = &s->rect[scanout_id];
	if (!img || d->width == 0 || d->height == 0 || !vgs_rect_inside(d, r->width, r->height))
		abort(); /* damage on a dark scanout, empty, or outside the scanout */
	/* The first and last byte a sink would send: faults if the image went away. */
	uint64_t y0 = (uint64_t)r->y + d->y, x0 = (uint64_t)r->x + d->x;
	touch(s, img->data + y0 * img->stride + x0 * 4);
	touch(s, img->data + (y0 + d->height - 1) * img->stride + (x0 + d->width) * 4 - 1);
}

static void sink_cursor_update(void *data, uint32_t scanout_id, uint32_t x, uint32_t y,
                               uint32_t hot_x, uint32_t hot_y, const uint32_t *pixels)
{
	struct sink *s = data;
	(void)x, (void)y, (void)hot_x, (void)hot_y;

	if (scanout_id >= VGS_MAX_SCANOUTS)
		abort();
	if (pixels)
		memcpy(s->cursor, pixels, sizeof(s->cursor));
}

static void sink_cursor_move(void *data, uint32_t scanout_id, uint32_t x, uint32_t y, bool visible)
{
	(void)data, (void)x, (void)y, (void)visible;
	if (scanout_id >= VGS_MAX_SCANOUTS)
		abort();
}

static const struct vgs_display_info_mode fuzz_modes[VGS_MAX_SCANOUTS] = {
	{ true, 640, 480 },
	{ true, 0, 0 },
	{ false, 1920, 1080 },
	{ true, 99999, 2 },
};
static const uint8_t fuzz_edid[] = { 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00 };

static int sink_query(struct sink *s, bool edid, vgs_display_info_cb icb, vgs_edid_cb ecb,
                      void *cb_data)
{
	switch (s->query_mode) {
	case 1:
	case 2:
		if (edid)
			ecb(cb_data, s->query_mode == 1, fuzz_edid, sizeof(fuzz_edid));
		else
			icb(cb_data, s->query_mode == 1, fuzz_modes);
		return 0;
	case 3:
		return -ENOTSUP;
	default:
		if (s->npending == MAX_PENDING)
			return -EBUSY;
		s->pending[s->npending++] = (struct pending){ edid, icb, ecb, cb_data };
		return 0;
	}
}

static int sink_get_display_info(void *data, vgs_display_info_cb cb, void *cb_data)
{
	return sink_query(data, false, cb, NULL, cb_data);
}

static int sink_get_edid(void *data, uint32_t scanout_id, vgs_edid_cb cb, void *cb_data)
{
	if (scanout_id >= VGS_MAX_SCANOUTS)
		abort(); /* the device must never ask about a scanout that cannot exist */
	return sink_query(data, true, NULL, cb, cb_data);
}

/* Answer the oldest pending query (every callback runs exactly once). */
static void sink_answer(struct sink *s, bool ok, const uint8_t *edid, size_t edid_len)
{
	if (!s->npending)
		return;
	struct pending p = s->pending[0];
	memmove(&s->pending[0], &s->pending[1], --s->npending * sizeof(p));
	if (p.edid)
		p.edid_cb(p.cb_data, ok, edid_len ? edid : NULL, (uint32_t)edid_len);
	else
		p.info_cb(p.cb_data, ok, fuzz_modes);
}

static const struct vgs_display_sink_ops query_ops = {
	.scanout = sink_scanout,
	.flush = sink_flush,
	.cursor_update = sink_cursor_update,
	.cursor_move = sink_cursor_move,
	.get_display_info = sink_get_display_info,
	.get_edid = sink_get_edid,
};

/* A second kind of sink (a vshm consumer): no queries. */
static const struct vgs_display_sink_ops plain_ops = {
	.scanout = sink_scanout,
	.flush = sink_flush,
	.cursor_update = sink_cursor_update,
	.cursor_move = sink_cursor_move,
};

static void sink_fini(struct sink *s)
{
	/* A sink going away fails what it still owes (QEMU's does on disconnect). */
	while (s->npending)
		sink_answer(s, false, NULL, 0);
	for (unsigned i = 0; i < VGS_MAX_SCANOUTS; i++)
		vgs_image_unref(s->image[i]);
}

/* ---- the harness ---------------------------------------------------------- */

struct direct {
	bool pending;
	size_t written;
	uint8_t resp[2048];
};

static void direct_done(void *data, size_t written)
{
	struct direct *d = data;
	if (!d->pending || written > sizeof(d->resp))
		abort(); /* completed twice, or wrote more than the buffer */
	d->pending = false;
	d->written = written;
}

static void device_event(struct vgs_gpu *gpu, struct sink *extra, bool *extra_on, const uint8_t *b,
                         size_t n)
{
	const struct vshm_vu_device_ops *ops = vgs_gpu_device_ops();
	uint8_t buf[64] = { 0 };
	struct vgs_display_sink sd = { &plain_ops, extra };

	if (n == 0)
		return;
	uint32_t off = n > 1 ? b[1] : 0, len = n > 2 ? b[2] % sizeof(buf) : 4;
	switch (b[0] % 6) {
	case 0:
		ops->reset(gpu);
		break;
	case 1: /* config write (only events_clear is writable) */
		memcpy(buf, b + (n > 3 ? 3 : n), n > 3 ? (n - 3 < len ? n - 3 : len) : 0);
		ops->set_config(gpu, off, buf, len, 0);
		break;
	case 2:
		ops->get_config(gpu, off, buf, len);
		break;
	case 3: { /* display hot-plug */
		uint32_t w = n > 4 ? (uint32_t)b[3] << 8 | b[4] : 0;
		uint32_t h = n > 6 ? (uint32_t)b[5] << 8 | b[6] : 0;
		vgs_gpu_set_mode(gpu, off % (VGS_MAX_SCANOUTS + 1), len & 1, w * 2, h * 2);
		break;
	}
	case 4:
		if (!*extra_on && vgs_gpu_add_display(gpu, &sd) == 0)
			*extra_on = true;
		break;
	case 5:
		if (*extra_on) {
			vgs_gpu_remove_display(gpu, &sd);
			*extra_on = false;
		}
		break;
	}
	ops->get_features(gpu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct direct dr;
	struct vgs_gpu_config cfg;
	struct vgs_gpu *gpu;
	struct sink main_sink = { 0 }, extra = { 0 };
	struct vgs_display_sink sd = { &query_ops, &main_sink };
	bool extra_on = false;

	if (!mem)
		setup();
	if (mem_changed) {
		set_table(3);
		mem_changed = false;
	}
	if (size < 1)
		return 0;

	vgs_gpu_config_defaults(&cfg);
	cfg.num_scanouts = 1 + (data[0] & 3);
	cfg.enabled_mask = 0x5;
	cfg.edid = !(data[0] & 4);
	/* Small limits, so that inputs reach them. */
	cfg.limits.max_resources = 16;
	cfg.limits.max_host_bytes = 16u << 20;
	cfg.limits.max_backing_entries = 64;
	main_sink.query_mode = (data[0] >> 3) & 3;
	if (vgs_gpu_new(&cfg, &gpu) < 0)
		abort();
	vgs_gpu_set_test_mem(gpu, mem);
	if (!(data[0] & 0x20) && vgs_gpu_add_display(gpu, &sd) < 0)
		abort();
	data++, size--;

	while (size >= 3) {
		uint8_t sel = data[0];
		size_t len = (size_t)data[1] | (size_t)data[2] << 8;
		const uint8_t *b = data + 3;

		size -= 3;
		if (len > size)
			len = size;
		data = b + len;
		size -= len;

		switch (sel & 7) {
		case 1:
			vgs_gpu_cursor_direct(gpu, b, len);
			break;
		case 2:
			sink_answer(&main_sink, len ? b[0] & 1 : true, len > 1 ? b + 1 : NULL,
			            len > 1 ? len - 1 : 0);
			break;
		case 3:
			device_event(gpu, &extra, &extra_on, b, len);
			break;
		case 4:
			set_table(len ? b[0] % 4 : 3);
			mem_changed = true;
			break;
		default: {
			size_t cap = sel & 0x10 ? (size_t)(sel >> 5) * 8 : sizeof(dr.resp);
			ssize_t r;

			if (dr.pending)
				break; /* the queue is paused behind a query (-EBUSY) */
			dr.pending = true;
			r = vgs_gpu_ctrl_direct(gpu, b, len, dr.resp, cap, direct_done, &dr);
			if (r != -EINPROGRESS)
				dr.pending = false;
			if (r > (ssize_t)cap || (r < 0 && r != -EINPROGRESS && r != -ENOMEM))
				abort();
			break;
		}
		}
	}

	/* Tear-down: resources, images and queries must all come back. */
	vgs_gpu_destroy(gpu);
	if (dr.pending)
		abort(); /* destroy must complete (or drop) the command it held */
	sink_fini(&main_sink);
	sink_fini(&extra);
	return 0;
}
