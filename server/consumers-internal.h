/* SPDX-License-Identifier: MIT */
/*
 * consumers-internal.h - state shared by the display consumer files:
 *   consumers.c       daemon side: listeners, device state, sink ops, timers
 *   consumer.c        one connection: reading, checking, handshake, vshm sends
 *   consumer_qemu.c   serving a QEMU-only consumer (SCANOUT + UPDATE pixels)
 *   consumer_stats.c  latency histogram, percentiles, log lines
 */
#ifndef VGS_CONSUMERS_INTERNAL_H
#define VGS_CONSUMERS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <vshm/conn.h>
#include <vshm/event_loop.h>
#include <vshm/log.h>
#include <vshm-proto/qemu-display.h>
#include <vshm-proto/vshm-display.h>

#include "consumers.h"

#define NS_PER_MS 1000000ull
#define NS_PER_US 1000ull
/* Held frames remembered per scanout; an older one is reclaimed. */
#define CONS_HOLDS 8
/*
 * Unreleased frames per scanout before the next one waits in the mailbox
 * (docs/protocol.md 9.3): with the device's 3 images per resource, a
 * consumer holding 2 never makes it overwrite a held frame.
 */
#define CONS_MAX_UNRELEASED 2

/* An image the consumers know: one reference, shared by every consumer's buffer. */
struct cimage {
	struct cimage *next;
	struct vgs_image *img;
	bool cursor;      /* a cursor shape; never changes once defined */
	unsigned shown;   /* device scanouts showing it */
	unsigned buffers; /* consumer buffers defined for it */
	/* COPY fallback (consumer_dmabuf.c): a sealed memfd copy, refreshed at flush. */
	struct vgs_image *shadow;
};

/* What the device shows on one scanout. */
struct dscanout {
	bool enabled;
	struct vgs_rect rect;
	struct cimage *ci;
	/*
	 * Frame number, from 1 (docs/protocol.md 9.1). A flush or a new image
	 * advances it only once the current one went out to some consumer;
	 * until then it merges into the current one.
	 */
	uint64_t seq;
	uint64_t seq_sent;      /* highest seq queued to any consumer, 0: none */
	uint64_t seq_pass;      /* the send pass (vgs_consumers.pass) of seq's last event */
	uint64_t last_flush_ns; /* newest guest flush (or image change) */
};

struct dcursor {
	struct cimage *ci; /* shape; NULL: none */
	uint32_t scanout, hot_x, hot_y, x, y;
	bool visible;
	uint64_t gen; /* bumped for every new shape */
};

struct listener {
	struct vgs_consumers *cs;
	char *path; /* NULL for listeners made by adopt() only */
	int fd;
	ino_t ino;
	struct vshm_watch *watch;
	uint32_t scanouts; /* allowed mask */
	char role[VSHM_DISPLAY_ROLE_SIZE];
};

struct latency {
	uint64_t hist[VSHM_DISPLAY_LATENCY_BUCKETS];
	uint64_t max_us;
};

enum cstate {
	CS_FEATURES,   /* GET_PROTOCOL_FEATURES sent */
	CS_HELLO_WAIT, /* SET_PROTOCOL_FEATURES with VSHM sent */
	CS_VSHM,       /* HELLO answered */
	CS_QEMU,       /* QEMU-only */
	CS_CLOSING,    /* ERROR queued; waiting for it to leave, then close */
	CS_DEAD,       /* closed; freed at the end of the dispatch */
};

/* How a buffer reaches a consumer (consumer_dmabuf.c). */
enum cbuf_kind {
	CBUF_SHM,    /* SHM_BUFFER of the image's own sealed memfd: zero copy */
	CBUF_DMABUF, /* DMABUF_BUFFER of the image's dma-buf: zero copy */
	CBUF_COPY,   /* SHM_BUFFER of a memfd copy refreshed at each flush */
};

struct cbuf {
	uint32_t id; /* 0: free slot */
	enum cbuf_kind kind;
	struct cimage *ci;
	uint64_t last_used_ns;
};

struct hold {
	uint64_t seq, sent_ns;
	struct vgs_image *img; /* reference + vgs_image_hold: not rewritten while held */
};

/* One consumer's view of one scanout. */
struct cscan {
	/* What the consumer was sent (vshm: buffer + rect; QEMU: size). */
	bool sent_valid;
	uint32_t sent_buffer;
	struct vgs_rect sent_rect;
	/* Mailbox: the newest frame not yet queued. */
	bool mb_full, mb_whole;
	uint64_t mb_seq, mb_flush_ns;
	unsigned mb_nrects;
	struct vgs_rect mb_rects[VSHM_DISPLAY_MAX_RECTS];
	unsigned inflight; /* FRAME/UPDATE messages still in the out-queue */
	/* Frames sent and not yet released. */
	uint64_t last_seq_sent, last_flush_sent;
	struct hold holds[CONS_HOLDS];
	unsigned nholds;
	uint64_t frames_sent, frames_dropped;
};

struct sent_cursor {
	bool valid;
	uint32_t scanout, buffer, hot_x, hot_y, x, y;
	bool visible;
};

struct vgs_consumer {
	struct vgs_consumers *cs;
	struct vgs_consumer *next;
	struct listener *l;
	uint32_t id;
	char role[VSHM_DISPLAY_ROLE_SIZE];
	enum cstate st;
	int fd; /* the socket (owned by conn) */
	struct vshm_conn *conn;
	struct vshm_watch *watch;
	uint32_t watch_events;
	struct vshm_timer *timer;
	uint64_t deadline_ns;   /* FEATURES/HELLO_WAIT/CLOSING deadline */
	uint64_t last_empty_ns; /* last time nothing was queued towards the consumer */
	uint64_t features;
	uint32_t version, hello_flags;
	uint32_t allowed, granted;

	/* Receive state: one message at a time, payload bounded by MAX_C2D_PAYLOAD. */
	uint8_t rx_hdr[VHOST_USER_GPU_HDR_SIZE];
	uint32_t rx_hdr_have, rx_have;
	uint8_t rx_payload[VSHM_DISPLAY_MAX_C2D_PAYLOAD];
	int rx_fds[VSHM_DISPLAY_MAX_FDS];
	unsigned rx_nfds;

	/* vshm: buffers defined on this connection. */
	struct cbuf bufs[VSHM_DISPLAY_MAX_BUFFERS];
	uint32_t next_buffer_id;
	struct sent_cursor cur;

	/* QEMU-only: cursor shape/position sent. */
	uint64_t q_cursor_gen;
	bool q_cursor_valid, q_cursor_visible;
	uint32_t q_cursor_scanout, q_cursor_x, q_cursor_y;

	struct cscan sc[VGS_MAX_SCANOUTS];

	/* Telemetry. */
	uint64_t frames_released, frames_reclaimed;
	uint64_t frames_dmabuf, frames_copy; /* FRAMEs of CBUF_DMABUF / CBUF_COPY buffers */
	uint64_t queued_max;
	uint64_t stats_window_ns;
	unsigned stats_in_window;
	struct latency lat;
	struct vshm_ratelimit rl;
};

struct vgs_consumers {
	struct vshm_event_loop *loop;
	struct vgs_consumers_config cfg;
	struct vgs_display_sink sink;

	struct listener *listeners[VGS_CONSUMERS_MAX_LISTENERS];
	unsigned nlisteners;

	struct vgs_consumer *consumers; /* connection order */
	struct vgs_consumer *dead;      /* closed, freed by the idle pass */
	unsigned nconsumers;
	uint32_t next_id;

	struct dscanout scanouts[VGS_MAX_SCANOUTS];
	struct dcursor cursor;
	struct cimage *images;
	uint64_t guest_activity_ns;

	struct vshm_idle *idle;
	uint64_t pass; /* send passes run so far: events between two passes are one frame */
	struct vshm_timer *tick;
	bool in_pump;

	struct vgs_consumers_stats stats; /* totals; live consumers are added on read */
	struct vshm_ratelimit rl;

	/* consumer_dmabuf.c: the dma-buf provider (NULL: default) and fallbacks logged. */
	const struct vgs_consumers_dmabuf_ops *dmabuf_ops;
	void *dmabuf_data;
	unsigned copy_reasons_logged;
};

/* consumers.c */
void cons_schedule(struct vgs_consumers *cs);
void cimage_gc(struct vgs_consumers *cs);
/* Frame @seq of @scanout was queued to a consumer: the next event starts a new frame. */
void cons_frame_sent(struct vgs_consumers *cs, uint32_t scanout, uint64_t seq);
struct cimage *cimage_get(struct vgs_consumers *cs, struct vgs_image *img, bool cursor);

/* consumer.c */
int consumer_new(struct vgs_consumers *cs, struct listener *l, int fd);
void consumer_close(struct vgs_consumer *c, const char *why);
void consumer_fail(struct vgs_consumer *c, uint32_t code, uint32_t request, uint32_t detail,
                   const char *what);
void consumer_sync(struct vgs_consumer *c);
void consumer_tick(struct vgs_consumer *c, uint64_t now);
void consumer_free(struct vgs_consumer *c);
int consumer_send(struct vgs_consumer *c, uint32_t request, uint32_t flags, const void *p1,
                  uint32_t n1, const void *p2, uint32_t n2, const int *fds, unsigned nfds);
/* Like consumer_send() but fatal errors close @c; false when @c can no longer be used. */
bool consumer_ctl(struct vgs_consumer *c, uint32_t request, const void *p1, uint32_t n1,
                  const void *p2, uint32_t n2, const int *fds, unsigned nfds);
/*
 * Queue a frame message (FRAME, or one UPDATE chunk) whose payload @iov[1..]
 * is referenced: @img (a reference, may be NULL) and @buf (malloc'd, may be
 * NULL) are released once it is written. @frame_end: the last message of
 * the frame (latency and frames_sent are counted when it is written).
 * 0, -ENOBUFS (nothing queued), or another -errno after which @c is closed.
 */
int consumer_send_frame_msg(struct vgs_consumer *c, struct iovec *iov, int iovcnt, uint32_t scanout,
                            uint64_t flush_ns, bool frame_end, struct vgs_image *img, void *buf);
/* The same with @fd (BORROWED, -1: none) attached, e.g. a FRAME's sync_file. */
int consumer_send_frame_msg_fd(struct vgs_consumer *c, struct iovec *iov, int iovcnt,
                               uint32_t scanout, uint64_t flush_ns, bool frame_end,
                               struct vgs_image *img, void *buf, int fd);
void consumer_update_watch(struct vgs_consumer *c);
uint64_t consumer_queued(const struct vgs_consumer *c);
/*
 * After the consumer was told of a new picture on a scanout (SCANOUT, or a
 * QEMU surface): with @shown its mailbox holds a whole-scanout frame of the
 * current number (keeping a pending frame's own number), else it is empty.
 */
static inline void consumer_mailbox_reset(struct cscan *m, const struct dscanout *d, bool shown)
{
	if (!shown) {
		m->mb_full = false;
		return;
	}
	if (!m->mb_full) {
		m->mb_full = true;
		m->mb_seq = d->seq;
		m->mb_flush_ns = d->last_flush_ns;
	}
	m->mb_whole = true;
	m->mb_nrects = 0;
}

void consumer_mailbox_put(struct vgs_consumer *c, uint32_t scanout, const struct vgs_rect *damage,
                          bool whole);
void consumer_frame_written(struct vgs_consumer *c, uint32_t scanout, uint64_t flush_ns,
                            uint64_t now);

/* consumer_dmabuf.c */
/* Feature bits to offer besides VSHM: VSHM_DMABUF (+ VSHM_FENCE) when dma-bufs can exist. */
uint64_t cons_dmabuf_features(struct vgs_consumers *cs);
/* The pure rule: own sealed memfd -> SHM; dma-buf to a VSHM_DMABUF consumer -> DMABUF; else COPY.
 */
enum cbuf_kind cons_buffer_decide(bool sealed_memfd, bool consumer_dmabuf, bool image_dmabuf);
/* The same for @ci and @c; a COPY logs its reason once. */
enum cbuf_kind cons_buffer_kind(struct vgs_consumer *c, const struct cimage *ci, bool sealed_memfd);
/* Send DMABUF_BUFFER @id for @ci; false: not sent (@c may be closed: check). */
bool cons_dmabuf_define(struct vgs_consumer *c, const struct cimage *ci, uint32_t id);
/* A sync_file (owned by the caller) for a FRAME of @ci's dma-buf, or -1: no fence. */
int cons_dmabuf_frame_fence(struct vgs_consumer *c, const struct cimage *ci);
/* A FRAME_RELEASE sync_file (BORROWED): imported into @ci's dma-buf (NULL: not a dma-buf). */
void cons_dmabuf_release_fence(struct vgs_consumer *c, const struct cimage *ci, int sync_file);
/* The memfd copy of @ci, created (fully copied) on first use; NULL on failure. */
struct vgs_image *cons_copy_image(struct vgs_consumers *cs, struct cimage *ci);
/* Refresh @r (image coordinates) of @ci's copy, if it has one. */
void cons_copy_flush(struct vgs_consumers *cs, struct cimage *ci, const struct vgs_rect *r);

/* consumer_qemu.c */
void consumer_qemu_sync(struct vgs_consumer *c);

/* consumer_stats.c */
unsigned latency_bucket(uint64_t us);
void latency_add(struct latency *l, uint64_t us);
uint64_t latency_percentile(const uint64_t hist[VSHM_DISPLAY_LATENCY_BUCKETS], unsigned pct);
void consumer_info(const struct vgs_consumer *c, struct vgs_consumer_info *out);
void consumer_stats_retire(struct vgs_consumer *c, const char *why);

#endif
