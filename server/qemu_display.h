/* SPDX-License-Identifier: MIT */
/*
 * qemu_display.h - the display sink for QEMU's vhost-user-gpu front-end.
 *
 * QEMU hands the back-end a display socket with the vhost-user request
 * VHOST_USER_GPU_SET_SOCKET (33) and shows whatever arrives on it
 * (vshm-proto/qemu-display.h). This sink turns device-model events
 * (display.h) into that protocol without ever blocking the daemon:
 *
 *  - every write goes through a vshm_conn with a bounded queue;
 *  - UPDATE pixels are sent by reference to the image (one copy: the socket
 *    write), and while a scanout's UPDATE is still queued further flushes
 *    are merged into one bounding box sent when it drains (latest frame
 *    wins);
 *  - SCANOUT and cursor state is kept as "wanted" vs "sent" and re-sent on
 *    every new socket, so a QEMU that re-delivers the socket (each
 *    DRIVER_OK) or a send that hit the queue bound always converges;
 *  - replies QEMU may never send (old QEMU, invalid ids, blocked UI) are
 *    bounded by deadlines.
 *
 * A socket error or hang-up drops only the socket; the device model keeps
 * running and a later request 33 brings a new one.
 */
#ifndef VGS_QEMU_DISPLAY_H
#define VGS_QEMU_DISPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vshm/event_loop.h>

#include "display.h"

struct vgs_qemu_display;

struct vgs_qemu_display_config {
	uint32_t num_scanouts;    /* 1..VGS_MAX_SCANOUTS: ids >= this are never sent */
	int handshake_timeout_ms; /* wait for the GET_PROTOCOL_FEATURES reply */
	int reply_timeout_ms;     /* wait for GET_DISPLAY_INFO / GET_EDID replies */
	size_t max_queued;        /* vshm_conn out-queue bound (copied + referenced bytes) */
	int sndbuf;               /* socket send buffer to ask for; 0 keeps the kernel's */
};

/* 1 scanout, 500 ms handshake and reply deadlines, 256 MiB queue bound, 8 MiB send buffer. */
void vgs_qemu_display_config_defaults(struct vgs_qemu_display_config *cfg);

/* @loop must outlive the display. Returns 0 or -errno. */
int vgs_qemu_display_new(struct vshm_event_loop *loop, const struct vgs_qemu_display_config *cfg,
                         struct vgs_qemu_display **out);
/* Closes the socket, fails pending queries (ok=false), drops image refs. NULL ok. */
void vgs_qemu_display_destroy(struct vgs_qemu_display *d);

/* The sink to attach with vgs_gpu_add_display(); owned by @d. */
const struct vgs_display_sink *vgs_qemu_display_sink(struct vgs_qemu_display *d);

/*
 * Take the display socket from VHOST_USER_GPU_SET_SOCKET. Ownership of
 * @fd passes to the display on success AND failure. Any previous socket is
 * closed first (its pending queries fail). Starts the protocol-feature
 * handshake. Returns 0 or -errno.
 */
int vgs_qemu_display_set_socket(struct vgs_qemu_display *d, int fd);

/* Close the display socket, if any (as if QEMU had hung up). */
void vgs_qemu_display_close(struct vgs_qemu_display *d);

/* True while a display socket is open. */
bool vgs_qemu_display_connected(const struct vgs_qemu_display *d);
/* True once the handshake has finished (reply, or timeout) on the current socket. */
bool vgs_qemu_display_ready(const struct vgs_qemu_display *d);
/* Negotiated protocol features (mask of VHOST_USER_GPU_PROTOCOL_F_*). */
uint64_t vgs_qemu_display_protocol_features(const struct vgs_qemu_display *d);

struct vgs_qemu_display_stats {
	uint64_t sockets;            /* sockets taken (request 33) */
	uint64_t disconnects;        /* sockets dropped: hang-up, error, replaced */
	uint64_t handshake_timeouts; /* no GET_PROTOCOL_FEATURES reply in time */
	uint64_t frames_sent;        /* UPDATE frames started (a frame may span messages) */
	uint64_t frames_coalesced;   /* flushes merged into a pending frame */
	uint64_t update_msgs;        /* UPDATE messages */
	uint64_t update_bytes;       /* pixel bytes in UPDATE messages */
	uint64_t conversions;        /* frames converted to x8r8g8b8 (extra copy) */
	uint64_t queries;            /* GET_DISPLAY_INFO / GET_EDID sent */
	uint64_t query_timeouts;     /* queries answered ok=false by the deadline */
	uint64_t send_deferred;      /* sends refused by the queue bound (retried later) */
	uint64_t msgs_sent;          /* all messages sent */
	uint64_t bytes_sent;         /* all bytes written to sockets */
};
void vgs_qemu_display_get_stats(const struct vgs_qemu_display *d,
                                struct vgs_qemu_display_stats *out);

#endif
