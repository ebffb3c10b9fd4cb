/* SPDX-License-Identifier: MIT */
/*
 * consumers.h - the display sink that serves display consumers (cluster
 * and infotainment compositors, preview clients, recorders) over vshm's
 * display protocol (docs/protocol.md) on --display sockets.
 *
 * One vgs_consumers is one display sink (attach it with
 * vgs_gpu_add_display()) with any number of listening sockets and up to
 * max_consumers connections. The rules that keep consumers from
 * disturbing each other or the guest:
 *
 *  - sink callbacks never write: they update the device state and each
 *    consumer's per-scanout mailbox (latest frame wins; a replaced frame
 *    counts as dropped) and schedule one idle pass that writes what each
 *    socket can take;
 *  - a frame of a scanout goes out only when the previous one of that
 *    scanout left the out-queue; control messages are queued in order and
 *    never dropped; every queue is bounded (vshm_conn max_queued);
 *  - a consumer whose queue (ours plus the socket's unread bytes) is never
 *    seen empty for consumer_deadline_ms, or that breaks the protocol,
 *    gets ERROR and is closed; nobody else notices;
 *  - vshm consumers map the images' memfds through read-only fds of
 *    sealed (F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) memfds; QEMU-only
 *    consumers get copies of the pixels (UPDATE).
 */
#ifndef VGS_CONSUMERS_H
#define VGS_CONSUMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vshm/event_loop.h>
#include <vshm/log.h>

#include "display.h"

struct vgs_consumers;

#define VGS_CONSUMERS_MAX_LISTENERS 16

struct vgs_consumers_config {
	uint32_t num_scanouts;         /* scanouts the device has, 1..VGS_MAX_SCANOUTS */
	uint32_t max_consumers;        /* connections at once, all sockets (default 8) */
	uint32_t heartbeat_ms;         /* HEARTBEAT period, 5..10000 (default 100) */
	uint32_t release_timeout_ms;   /* FRAME_RELEASE deadline (default 250) */
	uint32_t consumer_deadline_ms; /* queue never seen empty this long: close (default 2000) */
	uint32_t features_timeout_ms;  /* GET_PROTOCOL_FEATURES reply deadline (default 500) */
	uint32_t hello_timeout_ms;     /* HELLO deadline (default 1000) */
	uint32_t error_flush_ms;       /* time the socket gets to take an ERROR (default 100) */
	size_t max_queued_vshm;        /* out-queue bound of a vshm consumer (default 1 MiB) */
	size_t max_queued_qemu; /* out-queue bound of a QEMU-only consumer (default 256 MiB) */
	int sndbuf;             /* SO_SNDBUF of vshm consumer sockets, 0 = kernel default */
};

/* The defaults above; num_scanouts 1, sndbuf 32 KiB. */
void vgs_consumers_config_defaults(struct vgs_consumers_config *cfg);

/* @loop must outlive the object. 0 or -errno (-EINVAL for a bad config). */
int vgs_consumers_new(struct vshm_event_loop *loop, const struct vgs_consumers_config *cfg,
                      struct vgs_consumers **out);
/*
 * Sends ERROR SHUTDOWN to every consumer (best effort, never waits),
 * closes everything, removes the socket files it created. NULL ok.
 */
void vgs_consumers_destroy(struct vgs_consumers *cs);

/* The sink to attach with vgs_gpu_add_display(); owned by @cs. */
const struct vgs_display_sink *vgs_consumers_sink(struct vgs_consumers *cs);

/*
 * Listen on @path (a stale socket file is replaced). @scanouts: the
 * scanouts consumers of this socket may have (bit n = scanout n; 0 = all).
 * @role: NULL, or the only HELLO role this socket serves (others get every
 * scanout refused with NOT_PERMITTED); it also names QEMU-only consumers
 * in logs. 0 or -errno.
 */
int vgs_consumers_listen(struct vgs_consumers *cs, const char *path, uint32_t scanouts,
                         const char *role);

/*
 * Serve the already-connected socket @fd as if accepted on listener
 * @listener (index in the order of vgs_consumers_listen() calls), for
 * tests and socket activation. Ownership of @fd passes in, also on error.
 */
int vgs_consumers_adopt(struct vgs_consumers *cs, unsigned listener, int fd);

/* The guest sent a virtqueue request now (HEARTBEAT.guest_activity_ns). */
void vgs_consumers_note_guest_activity(struct vgs_consumers *cs);

/* Per-consumer telemetry, as in the STATS reply plus local counters. */
struct vgs_consumer_info {
	uint32_t consumer_id;
	bool vshm; /* negotiated VSHM (false: QEMU-only or still handshaking) */
	char role[32];
	uint32_t granted; /* scanout mask served */
	uint64_t frames_sent, frames_dropped, frames_released, frames_reclaimed;
	uint64_t bytes_sent, queued_bytes, queued_bytes_max;
	uint64_t latency_hist[16]; /* flush -> written, log2 us buckets as in STATS */
	uint64_t latency_p50_us, latency_p99_us, latency_max_us;
	/* Frames of guest-blob scanouts: zero copy as a dma-buf, or a memfd copy. */
	uint64_t frames_dmabuf, frames_copy;
};

struct vgs_consumers_stats {
	uint32_t connected; /* consumers connected now */
	uint64_t accepted;  /* connections accepted (including refused ones) */
	uint64_t refused;   /* TOO_MANY_CONSUMERS */
	uint64_t errors;    /* connections ended with an ERROR */
	uint64_t too_slow;  /* of which TOO_SLOW (deadline or queue bound) */
	/* Totals over every consumer so far, connected or not. */
	uint64_t frames_sent, frames_dropped, frames_released, frames_reclaimed;
	uint64_t latency_hist[16];
	uint64_t frames_dmabuf, frames_copy; /* as in vgs_consumer_info */
	/* The copy fallback (consumer_dmabuf.c): rectangles and bytes copied. */
	uint64_t copies, copy_bytes;
};
void vgs_consumers_get_stats(const struct vgs_consumers *cs, struct vgs_consumers_stats *out);
/* Consumers connected now, in connection order; returns how many were written (<= max). */
unsigned vgs_consumers_list(const struct vgs_consumers *cs, struct vgs_consumer_info *out,
                            unsigned max);
/*
 * Where dma-bufs come from for DMABUF_BUFFER (consumer_dmabuf.c). The
 * default uses /dev/udmabuf's availability, the dma-buf a udmabuf image
 * view keeps (vgs_image.dmabuf_fd) and libvshm's sync_file export. Tests
 * replace it to stand a memfd in for a dma-buf.
 */
struct vgs_consumers_dmabuf_ops {
	/* Whether dma-bufs can exist at all (offer VSHM_DMABUF); *reason optional. */
	bool (*available)(void *data, const char **reason);
	/* A NEW fd (owned by the caller) of @img's dma-buf and pixel (0,0)'s offset; -ENOENT none.
	 */
	int (*export_image)(void *data, const struct vgs_image *img, int *fd, uint64_t *offset);
	/* A sync_file for reading the dma-buf @dmabuf_fd (BORROWED), or -errno. */
	int (*export_fence)(void *data, int dmabuf_fd, int *sync_file);
	/* As vshm_fence_sync_file_support(): 1 yes, 0 no, -1 unknown. */
	int (*fence_support)(void *data);
};
/* Replace the provider (NULL: the default). Before consumers connect. */
void vgs_consumers_set_dmabuf_ops(struct vgs_consumers *cs,
                                  const struct vgs_consumers_dmabuf_ops *ops, void *data);

/* Log one line per consumer and the totals at @level (SIGUSR1, exit). */
void vgs_consumers_log_stats(const struct vgs_consumers *cs, enum vshm_log_level level);

#endif
