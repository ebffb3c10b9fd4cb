/* SPDX-License-Identifier: MIT */
/*
 * qemu-display-peer.h - a fake QEMU display end of the vhost-user-gpu
 * display protocol (vshm-proto/qemu-display.h, protocols.md §2), for tests
 * and benchmarks.
 *
 * QEMU makes a socketpair, hands one end to the back-end with vhost-user
 * request 33 (VHOST_USER_GPU_SET_SOCKET) and then answers the back-end's
 * queries and shows what it sends. A struct qdp does the same: it answers
 * GET_PROTOCOL_FEATURES (with a configurable value, or never, like a QEMU
 * older than 8.1), GET_DISPLAY_INFO and GET_EDID, keeps one framebuffer per
 * scanout and applies every UPDATE to it so tests can check exact pixels,
 * records cursor messages, counts everything, and can stop reading (a
 * stalled display) to prove the back-end never blocks on it.
 *
 * The peer serves the socket in its own thread (qdp_start()), because the
 * back-end is usually another process and the test thread spends its time
 * blocked on virtqueue completions; qdp_dispatch() serves it inline
 * instead. Every function is safe to call from any thread while the peer
 * thread runs; state is read under the peer's lock.
 *
 * Errors are 0 or -errno; waits return -ETIMEDOUT when their deadline passes.
 */
#ifndef VSHM_TESTS_QEMU_DISPLAY_PEER_H
#define VSHM_TESTS_QEMU_DISPLAY_PEER_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tfe;
struct qdp;

/* How to answer GET_PROTOCOL_FEATURES. */
enum qdp_features_mode {
	QDP_FEATURES_REPLY, /* reply with qdp_config.protocol_features */
	QDP_FEATURES_NEVER, /* read it, never reply (a QEMU without the message) */
};

#define QDP_MAX_SCANOUTS 16

struct qdp_config {
	enum qdp_features_mode features_mode;
	/* Reply value; QEMU >= 8.2 answers EDID | DMABUF2 (the default). */
	uint64_t protocol_features;
	/* Scanouts QEMU reports (max_outputs); 1..16, default 1. */
	unsigned num_scanouts;
	/* Mode reported per scanout by GET_DISPLAY_INFO / GET_EDID (default 1280x800). */
	uint32_t width[QDP_MAX_SCANOUTS], height[QDP_MAX_SCANOUTS];
	/*
	 * Answer GET_EDID for an invalid scanout id. QEMU does not (it logs
	 * and stays silent), so the default is false.
	 */
	bool edid_reply_invalid;
};

/* Defaults: reply EDID|DMABUF2, one 1280x800 scanout, QEMU's EDID behaviour. */
void qdp_config_defaults(struct qdp_config *cfg);

/*
 * Create the socketpair and the peer (not yet serving). @cfg NULL = defaults.
 * The back-end's end stays with the peer until qdp_send_set_socket() or
 * qdp_take_backend_fd().
 */
int qdp_new(const struct qdp_config *cfg, struct qdp **out);
/* Stop the thread, close both ends and free framebuffers. NULL ok. */
void qdp_destroy(struct qdp *p);

/*
 * Send the back-end's end as QEMU does: request 33, size 0, flags =
 * version 1 without NEED_REPLY, one fd; then close our copy of that end.
 * Calling it again makes a fresh socketpair first (QEMU sends a new
 * socket on every DRIVER_OK), resetting per-connection state (the
 * framebuffers stay; counters keep counting).
 */
int qdp_send_set_socket(struct qdp *p, struct tfe *fe);
/* Hand out the back-end's end instead (caller owns it); -1 if already given. */
int qdp_take_backend_fd(struct qdp *p);
/* Replace the socketpair without sending it anywhere (used by qdp_send_set_socket). */
int qdp_renew(struct qdp *p);

/* Serve in a background thread until qdp_destroy(). */
int qdp_start(struct qdp *p);
/*
 * Without a thread: handle whatever arrives within @timeout_ms (at least
 * one message if one comes). 1 handled something, 0 timed out, -EPIPE when
 * the back-end closed its end, or -errno.
 */
int qdp_dispatch(struct qdp *p, int timeout_ms);

/*
 * Stalled display: when true the peer stops reading its socket entirely
 * (the back-end's writes eventually fill the socket buffer), like a QEMU
 * whose UI is blocked. Setting it back to false resumes reading.
 */
void qdp_set_stalled(struct qdp *p, bool stalled);

/* Counters, cumulative over the peer's life. */
struct qdp_stats {
	uint64_t messages;
	uint64_t get_protocol_features, set_protocol_features;
	uint64_t protocol_features_set; /* the value of the last SET_PROTOCOL_FEATURES */
	uint64_t get_display_info, get_edid, edid_unanswered;
	uint64_t scanouts, updates, update_bytes, update_pixels_clipped;
	uint64_t dmabuf_scanouts, dmabuf_updates;
	uint64_t cursor_pos, cursor_hide, cursor_updates;
	uint64_t unknown, protocol_errors;
	uint64_t sockets;     /* display sockets handed out */
	uint64_t tag_updates; /* UPDATEs that covered pixel (0,0) of scanout 0 */
	uint32_t tag;         /* that pixel after the latest of them */
	bool hung_up;         /* the back-end closed the current socket */
};
void qdp_get_stats(struct qdp *p, struct qdp_stats *out);

/* The last cursor state the back-end sent. */
struct qdp_cursor {
	uint32_t scanout_id, x, y, hot_x, hot_y;
	bool visible;
	uint32_t pixels[64 * 64]; /* last CURSOR_UPDATE shape */
};
void qdp_get_cursor(struct qdp *p, struct qdp_cursor *out);

/*
 * Scanout state: the size from the last SCANOUT (0x0 when disabled or
 * never set). Returns 0 or -EINVAL for a bad id.
 */
int qdp_get_scanout(struct qdp *p, uint32_t scanout_id, uint32_t *width, uint32_t *height);
/* One framebuffer pixel (x8r8g8b8 as sent); -ERANGE outside the scanout. */
int qdp_get_pixel(struct qdp *p, uint32_t scanout_id, uint32_t x, uint32_t y, uint32_t *px);
/*
 * Compare a rectangle of the framebuffer with @expect (@stride bytes per
 * row, rows of w pixels). Returns the number of differing pixels (0 =
 * exact), or -ERANGE if the rect is outside the scanout. *first_bad (may be
 * NULL) gets the index (y * w + x, rect-relative) of the first difference.
 */
long qdp_compare(struct qdp *p, uint32_t scanout_id, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                 const uint32_t *expect, uint32_t stride, long *first_bad);

/*
 * Wait until the peer's state satisfies @pred (called under the peer's
 * lock after every handled message, and once immediately; it must not call
 * qdp_* functions that lock, i.e. anything but reading @st). 0 or
 * -ETIMEDOUT. Without a thread the wait dispatches inline.
 */
typedef bool (*qdp_pred_fn)(struct qdp *p, const struct qdp_stats *st, void *arg);
int qdp_wait(struct qdp *p, qdp_pred_fn pred, void *arg, int timeout_ms);
/* Convenience: wait until stats.updates >= @n. */
int qdp_wait_updates(struct qdp *p, uint64_t n, int timeout_ms);

/*
 * A "tag" for benchmarks: the pixel at (0,0) of scanout 0 after the most
 * recent UPDATE that covered it, plus how many UPDATEs covered it. A
 * benchmark writes a frame number there and waits for it with
 * qdp_wait_tag().
 */
uint32_t qdp_last_tag(struct qdp *p, uint64_t *tag_updates);
/*
 * Wait until the tag is >= @tag, comparing the low 24 bits as a wrapping
 * counter (the X byte is padding a back-end may change).
 */
int qdp_wait_tag(struct qdp *p, uint32_t tag, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
