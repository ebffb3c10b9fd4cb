/* SPDX-License-Identifier: MIT */
/*
 * consumer.h - a small display consumer library for vshm-gpu's --display
 * sockets (docs/protocol.md), written from the specification.
 *
 * A struct vsc is one connection to a daemon. It negotiates either as a vshm
 * consumer (GET_PROTOCOL_FEATURES reply with the VSHM bits, then HELLO) or,
 * in QEMU-only mode, without the VSHM bits (the daemon then sends QEMU's
 * SCANOUT/UPDATE pixels, which the library applies to a local framebuffer).
 *
 * What arrives is reported through one callback (struct vsc_event). In vshm
 * mode the library maps every SHM_BUFFER read-only, tracks scanouts,
 * frames (damage, seq, timestamps, drops), heartbeats (frame age), cursor and
 * STATS, and by default sends FRAME_RELEASE as soon as the FRAME callback
 * returns (the frame's pixels are valid during the callback).
 *
 * Every byte from the daemon is validated (header flags, exact sizes, tail
 * counts, fd counts, ids, rectangles inside buffers, state). A bad message
 * makes the connection fail with -EPROTO and a text in vsc_error(); it
 * never crashes and never leaks an fd.
 *
 * Event-loop use: watch vsc_fd() for input (and output while
 * vsc_wants_write()), call vsc_dispatch(). Blocking use: vsc_run() /
 * vsc_wait_ready(). Single-threaded. Errors are 0 or -errno; after an
 * error other than -EAGAIN/-ETIMEDOUT the connection is dead (sticky).
 */
#ifndef VSHM_CLIENTS_CONSUMER_H
#define VSHM_CLIENTS_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vshm-proto/vshm-display.h>

#ifdef __cplusplus
extern "C" {
#endif

/* DRM fourcc codes of the formats the specification lists (section 7.3). */
#define VSC_FOURCC(a, b, c, d)                                                                     \
	((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))
#define VSC_FMT_XRGB8888 VSC_FOURCC('X', 'R', '2', '4')
#define VSC_FMT_ARGB8888 VSC_FOURCC('A', 'R', '2', '4')
#define VSC_FMT_XBGR8888 VSC_FOURCC('X', 'B', '2', '4')
#define VSC_FMT_ABGR8888 VSC_FOURCC('A', 'B', '2', '4')
#define VSC_FMT_BGRX8888 VSC_FOURCC('B', 'X', '2', '4')
#define VSC_FMT_BGRA8888 VSC_FOURCC('B', 'A', '2', '4')
#define VSC_FMT_RGBX8888 VSC_FOURCC('R', 'X', '2', '4')
#define VSC_FMT_RGBA8888 VSC_FOURCC('R', 'A', '2', '4')

/* Bytes per pixel of a supported format, 0 if the library cannot convert it. */
unsigned vsc_format_bpp(uint32_t fourcc);
/* True if the format has a meaningful alpha channel. */
bool vsc_format_has_alpha(uint32_t fourcc);
/*
 * Convert @width pixels of @fourcc at @src to 8-bit R,G,B[,A] at @dst
 * (4 bytes per pixel with @alpha, else 3; alpha is 0xff for X formats).
 * Returns 0 or -ENOTSUP for an unknown format.
 */
int vsc_convert_row(uint32_t fourcc, const uint8_t *src, uint32_t width, uint8_t *dst, bool alpha);

struct vsc;

struct vsc_config {
	/* QEMU-only: offer no VSHM bits; pixels arrive as QEMU UPDATEs. */
	bool qemu_mode;
	/* vshm mode: if the daemon does not negotiate VSHM, continue QEMU-only instead of failing.
	 */
	bool allow_qemu_fallback;
	uint32_t scanouts;    /* vshm mode: HELLO.scanouts (bit n = scanout n; default 0x1) */
	const char *role;     /* vshm mode: HELLO.role (default "capture") */
	bool no_cursor;       /* vshm mode: HELLO NO_CURSOR */
	bool offer_fence;     /* vshm mode: also offer VSHM_FENCE (fences are waited for) */
	int fence_timeout_ms; /* longest wait for a FRAME fence (default 1000) */
	/*
	 * Send FRAME_RELEASE (or, QEMU-only, nothing is needed) right after the
	 * FRAME callback returns. Default true; when false call vsc_release().
	 */
	bool manual_release;
	/* QEMU-only: largest accepted scanout (pixels; default 8192 x 8192). */
	uint64_t max_scanout_pixels;
};
void vsc_config_defaults(struct vsc_config *cfg);

enum vsc_event_type {
	VSC_EV_NEGOTIATED,     /* SET_PROTOCOL_FEATURES arrived (or QEMU-only service started) */
	VSC_EV_READY,          /* vshm: HELLO reply; QEMU-only: right after VSC_EV_NEGOTIATED */
	VSC_EV_BUFFER,         /* vshm: a buffer was defined (buffer_id) */
	VSC_EV_BUFFER_DESTROY, /* vshm: buffer_id is gone (still valid during the callback) */
	VSC_EV_SCANOUT,        /* a scanout changed (enabled, size, buffer) */
	VSC_EV_FRAME,          /* new content; ev->frame */
	VSC_EV_HEARTBEAT,      /* vshm: HEARTBEAT processed */
	VSC_EV_CURSOR,         /* cursor shape/position/visibility changed (scanout_id) */
	VSC_EV_STATS,          /* vshm: STATS reply; see vsc_stats() */
	VSC_EV_ERROR,          /* the daemon sent ERROR; see vsc_daemon_error(). Then it closes. */
};

struct vsc_rect {
	uint32_t x, y, width, height;
};

/* A frame as the FRAME callback sees it. Pixels are valid during the callback only. */
struct vsc_frame {
	uint32_t scanout_id;
	uint32_t buffer_id; /* 0 in QEMU-only mode */
	uint64_t seq;       /* vshm: the daemon's seq; QEMU-only: a local UPDATE counter */
	uint64_t flush_ns;  /* vshm: guest flush time; QEMU-only: 0 (unknown) */
	uint64_t send_ns;   /* vshm: daemon queue time; QEMU-only: 0 */
	uint64_t recv_ns;   /* CLOCK_MONOTONIC when the library parsed the message */
	uint32_t flags;     /* VSHM_DISPLAY_FRAME_F_* as received (QEMU-only: 0) */
	bool full;          /* whole scanout damaged */
	uint64_t dropped;   /* frames skipped just before this one (seq gap) */
	uint32_t num_rects;
	struct vsc_rect rects[VSHM_DISPLAY_MAX_RECTS];
	/* The scanout image: (0,0) of the scanout rectangle. */
	const uint8_t *pixels;
	uint32_t width, height, stride, fourcc;
	bool format_supported; /* vsc_format_bpp(fourcc) != 0 */
};

struct vsc_event {
	enum vsc_event_type type;
	uint32_t scanout_id;           /* SCANOUT, FRAME, CURSOR */
	uint32_t buffer_id;            /* BUFFER, BUFFER_DESTROY */
	const struct vsc_frame *frame; /* FRAME */
};

typedef void (*vsc_event_fn)(void *data, struct vsc *c, const struct vsc_event *ev);

/*
 * Connect to the display socket @path (blocking connect; the session then
 * proceeds through vsc_dispatch()). @cb may be NULL. 0 or -errno.
 */
int vsc_connect(const char *path, const struct vsc_config *cfg, vsc_event_fn cb, void *data,
                struct vsc **out);
/* Same on an already connected stream socket; @fd is owned by the vsc (also on failure). */
int vsc_new_fd(int fd, const struct vsc_config *cfg, vsc_event_fn cb, void *data, struct vsc **out);
/* Close the socket, unmap every buffer, free everything. NULL ok. */
void vsc_destroy(struct vsc *c);

/* --- event loop --------------------------------------------------------------------- */

int vsc_fd(const struct vsc *c);
bool vsc_wants_write(const struct vsc *c);
/*
 * Handle every complete message available now and write queued bytes.
 * 0 when it would block, -EPIPE when the daemon closed the socket
 * (after ERROR: -ECONNABORTED), -EPROTO for a bad daemon message, -errno.
 */
int vsc_dispatch(struct vsc *c);

/* --- blocking helpers ----------------------------------------------------------------- */

/* Dispatch for up to @timeout_ms (or until an error). 0 on timeout, or an error as above. */
int vsc_run(struct vsc *c, int timeout_ms);
/* Dispatch until the session is ready (VSC_EV_READY). 0, -ETIMEDOUT or an error. */
int vsc_wait_ready(struct vsc *c, int timeout_ms);
/* Dispatch until @count frames in total were received. 0, -ETIMEDOUT or an error. */
int vsc_wait_frames(struct vsc *c, uint64_t count, int timeout_ms);

/* --- requests ------------------------------------------------------------------------- */

/* vshm mode: release every frame of @scanout_id up to @seq (only with manual_release). */
int vsc_release(struct vsc *c, uint32_t scanout_id, uint64_t seq);
/* vshm mode: send a STATS request; the reply comes as VSC_EV_STATS. */
int vsc_request_stats(struct vsc *c);

/* --- state ---------------------------------------------------------------------------- */

bool vsc_is_ready(const struct vsc *c);
bool vsc_is_qemu_mode(const struct vsc *c); /* true in QEMU-only service (chosen or fallback) */
uint64_t vsc_features(const struct vsc *c); /* negotiated features (SET_PROTOCOL_FEATURES) */
/* The HELLO reply (vshm mode; zeroed before it arrived). */
const struct vshm_display_hello_reply *vsc_hello_reply(const struct vsc *c);
uint64_t vsc_frames_received(const struct vsc *c);
uint64_t vsc_frames_dropped(const struct vsc *c); /* sum of seq gaps */

struct vsc_scanout_info {
	bool enabled;
	uint32_t buffer_id; /* vshm mode */
	uint32_t x, y, width, height;
	uint32_t fourcc, stride; /* of the shown image */
	uint64_t last_seq;       /* last FRAME (QEMU-only: UPDATE counter) */
	uint64_t last_flush_ns;  /* newest of FRAME.flush_ns and HEARTBEAT last_flush_ns */
	uint64_t hb_last_seq;    /* from the last HEARTBEAT */
	uint64_t frames, dropped;
	bool heartbeat_enabled; /* HEARTBEAT ENABLED flag */
};
int vsc_scanout(const struct vsc *c, uint32_t scanout_id, struct vsc_scanout_info *out);

/*
 * Frame age of @scanout_id at CLOCK_MONOTONIC time @now_ns (section 9.4):
 * now - newest known flush. 0 with *known = false when no flush is known.
 */
uint64_t vsc_frame_age_ns(const struct vsc *c, uint32_t scanout_id, uint64_t now_ns, bool *known);
/* The last HEARTBEAT's fixed part (zeroed before one arrived) and when it was received. */
const struct vshm_display_heartbeat *vsc_last_heartbeat(const struct vsc *c, uint64_t *recv_ns);
/* CLOCK_MONOTONIC ns of the last message from the daemon (stall detection: 2 periods). */
uint64_t vsc_last_message_ns(const struct vsc *c);

struct vsc_cursor_info {
	uint32_t scanout_id;
	uint32_t buffer_id; /* vshm mode: the shape's SHM_BUFFER, 0: none */
	uint32_t hot_x, hot_y;
	int32_t x, y;
	bool visible;
	const uint8_t *pixels; /* ARGB8888 64x64 (QEMU) or the buffer's pixels; may be NULL */
	uint32_t width, height, stride;
};
void vsc_cursor(const struct vsc *c, struct vsc_cursor_info *out);

/* The last STATS reply: fixed part and @count entries (NULL before one arrived). */
const struct vshm_display_stats *
vsc_stats(const struct vsc *c, const struct vshm_display_stats_scanout **entries, uint32_t *count);

/* The daemon's ERROR (false if none was received). message is NUL-terminated. */
bool vsc_daemon_error(const struct vsc *c, struct vshm_display_error *out);
/* Text describing the last failure ("" if none). */
const char *vsc_error(const struct vsc *c);
/* Name of an ERROR code ("UNKNOWN" for others). */
const char *vsc_error_code_name(uint32_t code);

/* Current time, CLOCK_MONOTONIC ns. */
uint64_t vsc_now_ns(void);

#ifdef __cplusplus
}
#endif

#endif
