/* SPDX-License-Identifier: MIT */
/*
 * vshm-view.h - internals shared by the files of vshm-view, the Wayland
 * preview client (docs/vshm-view.md).
 *
 * vvs_ (vshm-view-session.c): the display-protocol session. It is a small
 * consumer written from docs/protocol.md like clients/consumer.c, but it
 * KEEPS the fds of SHM_BUFFER/DMABUF_BUFFER (consumer.c maps and closes
 * them), because vshm-view hands them to the compositor (wl_shm pools,
 * linux-dmabuf params) instead of copying pixels.
 *
 * vvg_ (vshm-view-gl.c): dma-buf scanouts: zwp_linux_dmabuf_v1, the EGL
 * import fallback, and the CPU copy fallback.
 *
 * vvo_ (vshm-view-overlay.c): the tiny text renderer used by the overlay
 * strip and the placeholders.
 */
#ifndef VSHM_CLIENTS_VSHM_VIEW_H
#define VSHM_CLIENTS_VSHM_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vshm-proto/vshm-display.h>

/* --- session (vshm-view-session.c) ------------------------------------------------- */

struct vvs;

struct vvs_buffer {
	uint32_t id;
	bool dmabuf;
	uint32_t width, height, fourcc, flags;
	/* shm: the read-only sealed memfd (owned by the session), its size and layout. */
	int fd;
	uint32_t stride;
	uint64_t offset, size;
	const uint8_t *map; /* PROT_READ mapping (shm only) */
	/* dma-buf: one fd per plane (owned by the session). */
	uint32_t num_planes;
	int plane_fd[VSHM_DISPLAY_MAX_PLANES];
	uint32_t plane_offset[VSHM_DISPLAY_MAX_PLANES];
	uint32_t plane_stride[VSHM_DISPLAY_MAX_PLANES];
	uint64_t modifier;
	void *user; /* the view's per-buffer state */
};

struct vvs_frame {
	uint32_t scanout_id, buffer_id;
	uint64_t seq, flush_ns, send_ns, recv_ns;
	bool full;
	uint64_t dropped; /* seq gap before this frame (daemon-side mailbox drops) */
	uint32_t num_rects;
	struct vshm_display_rect rects[VSHM_DISPLAY_MAX_RECTS];
};

struct vvs_handler {
	void (*ready)(void *data, const struct vshm_display_hello_reply *r);
	void (*buffer)(void *data, struct vvs_buffer *b);
	/* The buffer is gone after this returns (fds closed, unmapped). */
	void (*buffer_destroy)(void *data, struct vvs_buffer *b);
	/* @s->buffer_id 0: disabled. */
	void (*scanout)(void *data, const struct vshm_display_scanout *s);
	void (*frame)(void *data, const struct vvs_frame *f);
	void (*cursor)(void *data, const struct vshm_display_cursor *c);
	void (*heartbeat)(void *data);
};

struct vvs_config {
	uint32_t scanouts; /* HELLO scanout mask */
	const char *role;  /* HELLO role */
	bool offer_dmabuf; /* offer VSHM_DMABUF */
};

int vvs_connect(const char *path, const struct vvs_config *cfg, const struct vvs_handler *h,
                void *data, struct vvs **out);
void vvs_destroy(struct vvs **s);
int vvs_fd(const struct vvs *s);
bool vvs_wants_write(const struct vvs *s);
/* 0, or -errno when the session ended (daemon gone, protocol error): destroy it. */
int vvs_dispatch(struct vvs *s);
/* FRAME_RELEASE of every frame of @scanout_id up to @seq (no-op if already released). */
int vvs_release(struct vvs *s, uint32_t scanout_id, uint64_t seq);
struct vvs_buffer *vvs_buffer(struct vvs *s, uint32_t id);
uint64_t vvs_features(const struct vvs *s);
/* Newest known flush time of @scanout_id (FRAME or HEARTBEAT), 0 if none. */
uint64_t vvs_last_flush_ns(const struct vvs *s, uint32_t scanout_id);
const char *vvs_error(const struct vvs *s);

/* --- overlay text (vshm-view-overlay.c) --------------------------------------------- */

#define VVO_GLYPH_W 6 /* advance, pixels (5 + 1 spacing) */
#define VVO_GLYPH_H 8 /* line height (7 + 1) */
/* Draw @text at (x, y) into a 32-bit image, @scale pixels per font pixel. */
void vvo_text(uint32_t *pix, uint32_t w, uint32_t h, uint32_t stride_px, int x, int y,
              unsigned scale, uint32_t color, const char *text);
void vvo_fill(uint32_t *pix, uint32_t w, uint32_t h, uint32_t stride_px, uint32_t color);

/* --- dma-buf paths (vshm-view-gl.c) -------------------------------------------------- */

struct wl_display;
struct wl_surface;
struct wl_buffer;
struct zwp_linux_dmabuf_v1;
struct vvg;

enum vvg_path {
	VVG_PATH_NONE,
	VVG_PATH_SHM_ZERO_COPY, /* wl_shm pool on the daemon's memfd */
	VVG_PATH_DMABUF,        /* zwp_linux_dmabuf_v1 buffer on the daemon's dma-buf */
	VVG_PATH_GL,            /* EGL import, drawn into an EGL window surface */
	VVG_PATH_COPY,          /* CPU copy into a wl_shm buffer (counted) */
};
const char *vvg_path_name(enum vvg_path p);

struct vvg *vvg_new(struct wl_display *d);
/* The compositor's linux-dmabuf global (never set: compositor without linux-dmabuf). */
void vvg_set_dmabuf(struct vvg *g, struct zwp_linux_dmabuf_v1 *dmabuf_global);
void vvg_destroy(struct vvg **g);
/* Record a format/modifier pair the compositor advertised. */
void vvg_add_modifier(struct vvg *g, uint32_t fourcc, uint64_t modifier);
/* The path a dma-buf of @b would take (no side effects besides lazy EGL init). */
enum vvg_path vvg_choose(struct vvg *g, const struct vvs_buffer *b);
/* A wl_buffer for the dma-buf through linux-dmabuf (create_immed), or NULL. */
struct wl_buffer *vvg_dmabuf_buffer(struct vvg *g, const struct vvs_buffer *b);
/*
 * GL path: draw the (x, y, w, h) rect of dma-buf @b into @surf's EGL window
 * (created on first use, resized as needed) and swap. The caller has set
 * up the frame callback and feedback on @surf. 0 or -errno; reads are
 * finished when it returns (the frame can be released).
 */
struct vvg_window;
int vvg_draw(struct vvg *g, struct vvg_window **win, struct wl_surface *surf,
             const struct vvs_buffer *b, uint32_t x, uint32_t y, uint32_t w, uint32_t h);
void vvg_window_destroy(struct vvg *g, struct vvg_window **win);
/* Forget cached imports of @b (buffer destroyed). */
void vvg_forget(struct vvg *g, const struct vvs_buffer *b);
/*
 * Copy fallback: copy the rect of a LINEAR dma-buf into @dst (XRGB8888,
 * @dst_stride) through a read-only mmap. 0 or -errno.
 */
int vvg_copy(const struct vvs_buffer *b, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
             uint8_t *dst, uint32_t dst_stride);

/* Convert @w pixels of a 4-byte DRM format to XRGB8888 (little-endian B,G,R,X). */
bool vv_convert_row(uint32_t fourcc, const uint8_t *src, uint32_t w, uint32_t *dst);

#endif
