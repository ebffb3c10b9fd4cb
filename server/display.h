/* SPDX-License-Identifier: MIT */
/*
 * display.h - what the virtio-gpu device model tells the displays.
 *
 * The device model (device/) knows scanouts, resources and the cursor; a
 * display sink turns those events into a wire protocol: QEMU's
 * vhost-user-gpu display socket (qemu_display.c), and later vshm's own
 * shared-buffer consumers. Sinks must never block: they coalesce (latest
 * frame wins) and read pixels from the referenced image when the peer can
 * take them.
 */
#ifndef VGS_DISPLAY_H
#define VGS_DISPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "image.h"

#define VGS_MAX_SCANOUTS 16

struct vgs_rect {
	uint32_t x, y, width, height;
};

/* One scanout's current configuration. */
struct vgs_scanout_state {
	uint32_t scanout_id;
	bool enabled;
	struct vgs_rect rect;    /* the part of the image shown (the scanout's mode) */
	struct vgs_image *image; /* BORROWED for the duration of the call; ref it to keep it */
};

/* 64x64 ARGB8888 (PIXMAN a8r8g8b8, native endian) cursor image. */
#define VGS_CURSOR_DIM 64

struct vgs_display_info_mode {
	bool enabled;
	uint32_t width, height;
};

/* Async answer for a display query; @ok false = timed out or refused. */
typedef void (*vgs_display_info_cb)(void *cb_data, bool ok,
                                    const struct vgs_display_info_mode modes[VGS_MAX_SCANOUTS]);
typedef void (*vgs_edid_cb)(void *cb_data, bool ok, const uint8_t *edid, uint32_t size);

struct vgs_display_sink_ops {
	/* The scanout changed: new image, new rect, or disabled. */
	void (*scanout)(void *data, const struct vgs_scanout_state *s);
	/*
	 * Pixels in @damage (scanout coordinates) changed on @scanout_id
	 * (RESOURCE_FLUSH). @flush_ns = CLOCK_MONOTONIC time of the flush.
	 */
	void (*flush)(void *data, uint32_t scanout_id, const struct vgs_rect *damage,
	              uint64_t flush_ns);
	/* New cursor shape (pixels may be NULL = hide) and position. */
	void (*cursor_update)(void *data, uint32_t scanout_id, uint32_t x, uint32_t y,
	                      uint32_t hot_x, uint32_t hot_y, const uint32_t *pixels);
	/* Cursor moved (visible) or hidden. */
	void (*cursor_move)(void *data, uint32_t scanout_id, uint32_t x, uint32_t y, bool visible);
	/*
	 * Optional queries for sinks that own display geometry (QEMU).
	 * Return 0 if @cb will be called later (exactly once, possibly after
	 * a timeout with ok=false), or -errno if the sink cannot answer (the
	 * device then uses its own configuration).
	 */
	int (*get_display_info)(void *data, vgs_display_info_cb cb, void *cb_data);
	int (*get_edid)(void *data, uint32_t scanout_id, vgs_edid_cb cb, void *cb_data);
};

struct vgs_display_sink {
	const struct vgs_display_sink_ops *ops;
	void *data;
};

#endif
