/* SPDX-License-Identifier: MIT */
/*
 * vshm-proto/qemu-display.h - QEMU's vhost-user-gpu display protocol.
 *
 * This header is vshm's single source of truth for the wire format that a
 * vhost-user GPU back-end speaks with QEMU's vhost-user-gpu front-end over
 * the socket QEMU hands over with the vhost-user request
 * VHOST_USER_GPU_SET_SOCKET (33). It is written from the protocol's
 * documentation (docs/interop/vhost-user-gpu.rst) and QEMU's observable
 * behaviour; see shared/reference/protocols.md section 2.
 *
 * Transport: an AF_UNIX stream socket (one end of a socketpair QEMU made).
 * QEMU re-sends a fresh socket on every transition to DRIVER_OK and closes
 * its end on stop/reset, so a back-end must expect the socket to be
 * replaced or to hang up at any time.
 *
 * Framing: a 12-byte header (request, flags, size), then @size payload
 * bytes. All integers are host-native endian. The only defined flag is
 * REPLY (0x4), set on replies; requests carry flags 0. File descriptors
 * ride as SCM_RIGHTS on the message (DMABUF_SCANOUT*, one fd).
 *
 * Direction and reply rules, per request (B = back-end, Q = QEMU):
 *
 *   1  GET_PROTOCOL_FEATURES  B->Q, no payload. Q replies with a u64 of
 *                             feature bits (QEMU < 8.1 replies 0).
 *   2  SET_PROTOCOL_FEATURES  B->Q, u64. No reply (QEMU ignores the value).
 *   3  GET_DISPLAY_INFO       B->Q, no payload. Q replies with a
 *                             struct vhost_user_gpu_resp_display_info.
 *   4  CURSOR_POS             B->Q, CursorPos: show the cursor there. No reply.
 *   5  CURSOR_POS_HIDE        B->Q, CursorPos: hide the cursor. No reply.
 *   6  CURSOR_UPDATE          B->Q, CursorUpdate: new 64x64 shape. No reply.
 *   7  SCANOUT                B->Q, Scanout: set the scanout size (0x0
 *                             disables it). No reply.
 *   8  UPDATE                 B->Q, Update + width*height*4 bytes of PIXMAN
 *                             x8r8g8b8 pixels, stride width*4. No reply.
 *   9  DMABUF_SCANOUT         B->Q, DMABUFScanout + one dma-buf fd (no fd
 *                             and 0x0 to disable). No reply.
 *  10  DMABUF_UPDATE          B->Q, Update without pixels. Q ALWAYS replies
 *                             with an empty REPLY, but only once its UI has
 *                             flushed; until then it stops reading the
 *                             socket. The back-end must wait for it.
 *  11  GET_EDID               B->Q, EdidRequest. Needs PROTOCOL_F_EDID. Q
 *                             replies with vhost_user_gpu_resp_edid, but
 *                             sends NO reply for an invalid scanout id, and
 *                             QEMU < 8.1 never replies at all.
 *  12  DMABUF_SCANOUT2        B->Q, DMABUFScanout2 + one fd. Needs
 *                             PROTOCOL_F_DMABUF2. No reply.
 *
 * A reply repeats the request id, sets flags = REPLY and carries the reply
 * payload. QEMU silently ignores messages for scanout ids >= its
 * max_outputs.
 */
#ifndef VSHM_PROTO_QEMU_DISPLAY_H
#define VSHM_PROTO_QEMU_DISPLAY_H

#include <stdint.h>

/* The vhost-user request (front-end -> back-end) that carries the socket. */
#define VHOST_USER_GPU_SET_SOCKET 33

enum vhost_user_gpu_request {
	VHOST_USER_GPU_GET_PROTOCOL_FEATURES = 1,
	VHOST_USER_GPU_SET_PROTOCOL_FEATURES = 2,
	VHOST_USER_GPU_GET_DISPLAY_INFO = 3,
	VHOST_USER_GPU_CURSOR_POS = 4,
	VHOST_USER_GPU_CURSOR_POS_HIDE = 5,
	VHOST_USER_GPU_CURSOR_UPDATE = 6,
	VHOST_USER_GPU_SCANOUT = 7,
	VHOST_USER_GPU_UPDATE = 8,
	VHOST_USER_GPU_DMABUF_SCANOUT = 9,
	VHOST_USER_GPU_DMABUF_UPDATE = 10,
	VHOST_USER_GPU_GET_EDID = 11,
	VHOST_USER_GPU_DMABUF_SCANOUT2 = 12,
};

/* Header flag: this message is a reply. No other bit is defined. */
#define VHOST_USER_GPU_MSG_FLAG_REPLY 0x4u

/* Protocol feature bit positions (GET/SET_PROTOCOL_FEATURES) ... */
#define VHOST_USER_GPU_PROTOCOL_F_EDID_BIT    0
#define VHOST_USER_GPU_PROTOCOL_F_DMABUF2_BIT 1
/* ... and their masks (the u64 on the wire is a mask of these). */
#define VHOST_USER_GPU_PROTOCOL_F_EDID    (1ull << VHOST_USER_GPU_PROTOCOL_F_EDID_BIT)
#define VHOST_USER_GPU_PROTOCOL_F_DMABUF2 (1ull << VHOST_USER_GPU_PROTOCOL_F_DMABUF2_BIT)

#define VHOST_USER_GPU_HDR_SIZE 12u

struct vhost_user_gpu_hdr {
	uint32_t request; /* enum vhost_user_gpu_request */
	uint32_t flags;   /* 0 or VHOST_USER_GPU_MSG_FLAG_REPLY */
	uint32_t size;    /* payload bytes that follow */
} __attribute__((packed));

struct vhost_user_gpu_cursor_pos {
	uint32_t scanout_id;
	uint32_t x;
	uint32_t y;
} __attribute__((packed));

#define VHOST_USER_GPU_CURSOR_DIM 64

struct vhost_user_gpu_cursor_update {
	struct vhost_user_gpu_cursor_pos pos;
	uint32_t hot_x;
	uint32_t hot_y;
	/* PIXMAN a8r8g8b8, native endian, row-major, no padding. */
	uint32_t data[VHOST_USER_GPU_CURSOR_DIM * VHOST_USER_GPU_CURSOR_DIM];
} __attribute__((packed));

struct vhost_user_gpu_scanout {
	uint32_t scanout_id;
	uint32_t width; /* 0x0 disables the scanout */
	uint32_t height;
} __attribute__((packed));

/* Followed, for UPDATE only, by width * height * 4 bytes of x8r8g8b8. */
struct vhost_user_gpu_update {
	uint32_t scanout_id;
	uint32_t x;
	uint32_t y;
	uint32_t width;
	uint32_t height;
	uint8_t data[];
} __attribute__((packed));

/* Bit in fd_flags: the buffer's first row is the top one. */
#define VHOST_USER_GPU_DMABUF_FLAG_Y_0_TOP 0x1u

struct vhost_user_gpu_dmabuf_scanout {
	uint32_t scanout_id;
	uint32_t x; /* shown rectangle within the buffer */
	uint32_t y;
	uint32_t width;
	uint32_t height;
	uint32_t fd_width; /* whole buffer geometry */
	uint32_t fd_height;
	uint32_t fd_stride;
	uint32_t fd_flags;
	int32_t fd_drm_fourcc;
} __attribute__((packed));

struct vhost_user_gpu_dmabuf_scanout2 {
	struct vhost_user_gpu_dmabuf_scanout dmabuf_scanout;
	uint64_t modifier; /* DRM format modifier */
} __attribute__((packed));

struct vhost_user_gpu_edid_request {
	uint32_t scanout_id;
} __attribute__((packed));

/*
 * Reply payloads. They are virtio-gpu response structures, kept here in
 * host-native form because that is what QEMU writes on this socket.
 */
#define VHOST_USER_GPU_MAX_SCANOUTS 16

/* The virtio-gpu control header (struct virtio_gpu_ctrl_hdr). */
struct vhost_user_gpu_ctrl_hdr {
	uint32_t type;
	uint32_t flags;
	uint64_t fence_id;
	uint32_t ctx_id;
	uint8_t ring_idx;
	uint8_t padding[3];
} __attribute__((packed));

/* hdr.type of a successful reply. */
#define VHOST_USER_GPU_RESP_OK_DISPLAY_INFO 0x1101u
#define VHOST_USER_GPU_RESP_OK_EDID         0x1104u

struct vhost_user_gpu_display_one {
	uint32_t x, y, width, height;
	uint32_t enabled;
	uint32_t flags;
} __attribute__((packed));

struct vhost_user_gpu_resp_display_info {
	struct vhost_user_gpu_ctrl_hdr hdr;
	struct vhost_user_gpu_display_one pmodes[VHOST_USER_GPU_MAX_SCANOUTS];
} __attribute__((packed));

#define VHOST_USER_GPU_EDID_MAX 1024

struct vhost_user_gpu_resp_edid {
	struct vhost_user_gpu_ctrl_hdr hdr;
	uint32_t size; /* valid bytes in edid[] */
	uint32_t padding;
	uint8_t edid[VHOST_USER_GPU_EDID_MAX];
} __attribute__((packed));

/* The sizes below are the wire format; a change here breaks QEMU interop. */
_Static_assert(sizeof(struct vhost_user_gpu_hdr) == 12, "header");
_Static_assert(sizeof(struct vhost_user_gpu_cursor_pos) == 12, "CursorPos");
_Static_assert(sizeof(struct vhost_user_gpu_cursor_update) == 16404, "CursorUpdate");
_Static_assert(sizeof(struct vhost_user_gpu_scanout) == 12, "Scanout");
_Static_assert(sizeof(struct vhost_user_gpu_update) == 20, "Update");
_Static_assert(sizeof(struct vhost_user_gpu_dmabuf_scanout) == 40, "DMABUFScanout");
_Static_assert(sizeof(struct vhost_user_gpu_dmabuf_scanout2) == 48, "DMABUFScanout2");
_Static_assert(sizeof(struct vhost_user_gpu_edid_request) == 4, "EdidRequest");
_Static_assert(sizeof(struct vhost_user_gpu_ctrl_hdr) == 24, "virtio_gpu_ctrl_hdr");
_Static_assert(sizeof(struct vhost_user_gpu_resp_display_info) == 408, "resp_display_info");
_Static_assert(sizeof(struct vhost_user_gpu_resp_edid) == 1056, "resp_edid");

#endif
