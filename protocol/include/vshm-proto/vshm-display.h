/* SPDX-License-Identifier: MIT */
/*
 * vshm-proto/vshm-display.h - vshm's extensions to QEMU's vhost-user-gpu
 * display protocol, spoken between vshm-gpu and display consumers on a
 * --display socket.
 *
 * The normative specification is docs/protocol.md; the machine-readable
 * table of every message is protocol/vshm-display.json. Both this header
 * and the document are checked against that table by tests/unit/protocol
 * (the build fails on a size, offset, id or constant that drifted).
 *
 * Roles: the DAEMON listens on the --display socket and a CONSUMER
 * connects. The daemon then plays the part QEMU's back-end plays on
 * QEMU's display socket (qemu-display.h): it sends GET_PROTOCOL_FEATURES,
 * the consumer replies, the daemon sends SET_PROTOCOL_FEATURES with the
 * intersection. A consumer that negotiated VSHM_DISPLAY_PROTOCOL_F_VSHM
 * then sends HELLO; one that did not is served with QEMU's messages
 * (SCANOUT, UPDATE with pixels, cursor) exactly as QEMU would be.
 *
 * Framing is QEMU's: struct vhost_user_gpu_hdr (12 bytes: request, flags,
 * size), then @size payload bytes, host-native endian (little-endian on
 * every supported host). Flags is 0 on requests and
 * VHOST_USER_GPU_MSG_FLAG_REPLY on replies; a reply repeats the request
 * id. File descriptors ride as SCM_RIGHTS on the message's first byte.
 *
 * Message ids: 0x5600..0x56ff belong to vshm (0x56 is ASCII 'V'). QEMU's
 * display ids are 1..12 and grow by about one a year; vhost-user ids are
 * below 100 and crosvm's private vhost-user ids start at 1000 (0x3e8), so
 * a block at 22016 collides with none of them, and stays below 0x8000
 * so it is positive in every signed parser. 0x5600 itself is never sent,
 * so a zeroed or truncated id can't be mistaken for a vshm message.
 *
 * Feature bits: QEMU allocates display protocol features from bit 0
 * upward (EDID = 0, DMABUF2 = 1, in 2023). vshm takes bits 56..62 and
 * allocates upward from 56, so 54 bits lie between the two blocks. Bit
 * 63 is reserved (never used) because some bindings read the u64 as
 * signed. A QEMU front-end that sees vshm bits in SET_PROTOCOL_FEATURES
 * ignores them, and QEMU never offers them, so the intersection with
 * QEMU is always QEMU-only.
 *
 * Payloads are packed, fixed-size structs; a message with a variable
 * tail says so (element struct, count field and maximum). A payload is
 * exactly fixed size + count * element size; anything else is malformed.
 */
#ifndef VSHM_PROTO_VSHM_DISPLAY_H
#define VSHM_PROTO_VSHM_DISPLAY_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Protocol version carried in HELLO. Bumped when messages or fields are added. */
#define VSHM_DISPLAY_VERSION 1

/* The id block owned by vshm; VSHM_DISPLAY_ID_FIRST itself is never sent. */
#define VSHM_DISPLAY_ID_FIRST 0x5600u
#define VSHM_DISPLAY_ID_LAST  0x56ffu

/*
 * Extension requests. D->C: daemon to consumer, C->D: consumer to daemon.
 *
 * 0x5601 HELLO          C->D vshm_display_hello, no fds. Sent once, right
 *                       after SET_PROTOCOL_FEATURES negotiated F_VSHM.
 *                       Reply (D->C, same id, REPLY flag):
 *                       vshm_display_hello_reply. A bad version or a
 *                       malformed hello gets ERROR and a disconnect instead.
 * 0x5602 ERROR          D->C vshm_display_error, no fds, no reply. The
 *                       daemon closes the socket right after sending it.
 * 0x5603 SHM_BUFFER     D->C vshm_display_shm_buffer + exactly 1 fd: a
 *                       sealed memfd opened read-only. Defines buffer_id.
 *                       No reply.
 * 0x5604 DMABUF_BUFFER  D->C vshm_display_dmabuf_buffer + num_planes fds
 *                       (1..4), one dma-buf per plane, in plane order.
 *                       Needs F_VSHM_DMABUF. Defines buffer_id. No reply.
 * 0x5605 BUFFER_DESTROY D->C vshm_display_buffer_destroy, no fds. The
 *                       buffer id is dead; frames of it are released
 *                       implicitly. No reply.
 * 0x5606 SCANOUT        D->C vshm_display_scanout, no fds. Which buffer a
 *                       scanout shows (buffer_id 0: disabled). No reply.
 * 0x5607 FRAME          D->C vshm_display_frame + num_rects *
 *                       vshm_display_rect, 0 fds, or 1 sync_file fd when
 *                       VSHM_DISPLAY_FRAME_F_FENCE is set (needs
 *                       F_VSHM_FENCE). New content; no reply, but the
 *                       consumer sends FRAME_RELEASE when done with it.
 * 0x5608 FRAME_RELEASE  C->D vshm_display_frame_release, 0 fds, or 1
 *                       sync_file fd with VSHM_DISPLAY_RELEASE_F_FENCE
 *                       (needs F_VSHM_FENCE). Releases every frame of the
 *                       scanout up to and including seq. No reply.
 * 0x5609 HEARTBEAT      D->C vshm_display_heartbeat + count *
 *                       vshm_display_heartbeat_scanout, no fds, every
 *                       heartbeat period. No reply.
 * 0x560a CURSOR         D->C vshm_display_cursor, no fds. Cursor shape
 *                       (an SHM_BUFFER) and position. No reply.
 * 0x560b STATS          C->D vshm_display_stats_request, no fds. Reply
 *                       (D->C, same id, REPLY flag): vshm_display_stats +
 *                       count * vshm_display_stats_scanout.
 *
 * The daemon answers any malformed, unknown or unexpected consumer message
 * with ERROR and closes the socket. A consumer skips (by size) any message
 * id it does not know and ignores unknown flag bits in payloads.
 */
enum vshm_display_request {
	VSHM_DISPLAY_HELLO = 0x5601,
	VSHM_DISPLAY_ERROR = 0x5602,
	VSHM_DISPLAY_SHM_BUFFER = 0x5603,
	VSHM_DISPLAY_DMABUF_BUFFER = 0x5604,
	VSHM_DISPLAY_BUFFER_DESTROY = 0x5605,
	VSHM_DISPLAY_SCANOUT = 0x5606,
	VSHM_DISPLAY_FRAME = 0x5607,
	VSHM_DISPLAY_FRAME_RELEASE = 0x5608,
	VSHM_DISPLAY_HEARTBEAT = 0x5609,
	VSHM_DISPLAY_CURSOR = 0x560a,
	VSHM_DISPLAY_STATS = 0x560b,
};

/* Display protocol feature bit positions owned by vshm ... */
#define VSHM_DISPLAY_PROTOCOL_F_VSHM_BIT        56 /* HELLO and all base extensions */
#define VSHM_DISPLAY_PROTOCOL_F_VSHM_DMABUF_BIT 57 /* DMABUF_BUFFER */
#define VSHM_DISPLAY_PROTOCOL_F_VSHM_FENCE_BIT  58 /* sync_file fds on FRAME/FRAME_RELEASE */
/* ... their masks ... */
#define VSHM_DISPLAY_PROTOCOL_F_VSHM        (1ull << VSHM_DISPLAY_PROTOCOL_F_VSHM_BIT)
#define VSHM_DISPLAY_PROTOCOL_F_VSHM_DMABUF (1ull << VSHM_DISPLAY_PROTOCOL_F_VSHM_DMABUF_BIT)
#define VSHM_DISPLAY_PROTOCOL_F_VSHM_FENCE  (1ull << VSHM_DISPLAY_PROTOCOL_F_VSHM_FENCE_BIT)
/* ... and the whole block reserved for vshm (bits 56..63; 63 is never used). */
#define VSHM_DISPLAY_PROTOCOL_F_VSHM_BLOCK 0xff00000000000000ull

/* Limits (see docs/protocol.md, "Limits"). */
#define VSHM_DISPLAY_MAX_SCANOUTS       16
#define VSHM_DISPLAY_MAX_RECTS          16
#define VSHM_DISPLAY_MAX_PLANES         4
#define VSHM_DISPLAY_MAX_FDS            4  /* on any one message */
#define VSHM_DISPLAY_MAX_BUFFERS        64 /* defined at once on one connection */
#define VSHM_DISPLAY_ROLE_SIZE          32
#define VSHM_DISPLAY_ERROR_MESSAGE_SIZE 64
#define VSHM_DISPLAY_LATENCY_BUCKETS    16
#define VSHM_DISPLAY_MAX_C2D_PAYLOAD    4096u      /* largest payload a consumer may send */
#define VSHM_DISPLAY_MAX_UPDATE_PIXELS  (4u << 20) /* pixels in one QEMU UPDATE */
/* Largest payload the daemon sends: an UPDATE with 16 MiB of pixels. */
#define VSHM_DISPLAY_MAX_D2C_PAYLOAD (20u + 4u * VSHM_DISPLAY_MAX_UPDATE_PIXELS)
/* Largest width and height of a buffer or scanout the daemon sends (both >= 1). */
#define VSHM_DISPLAY_MAX_DIM 16384u

/* Error codes (vshm_display_error.code). */
enum vshm_display_error_code {
	VSHM_DISPLAY_ERR_MALFORMED = 1,       /* wrong size, bad count, bad field value */
	VSHM_DISPLAY_ERR_UNKNOWN_REQUEST = 2, /* id the daemon does not know */
	VSHM_DISPLAY_ERR_UNEXPECTED = 3,      /* valid message in the wrong state */
	VSHM_DISPLAY_ERR_BAD_FLAGS = 4,       /* header flags not 0 / REPLY as required */
	VSHM_DISPLAY_ERR_TOO_LARGE = 5,       /* size > VSHM_DISPLAY_MAX_C2D_PAYLOAD */
	VSHM_DISPLAY_ERR_BAD_FDS = 6,         /* wrong number of fds for the message */
	VSHM_DISPLAY_ERR_VERSION = 7,         /* HELLO version 0 */
	VSHM_DISPLAY_ERR_BAD_SCANOUT = 8,     /* scanout id not granted to this consumer */
	VSHM_DISPLAY_ERR_BAD_SEQ = 9,         /* release of a frame seq never sent */
	VSHM_DISPLAY_ERR_TIMEOUT = 10,        /* HELLO not received in time */
	VSHM_DISPLAY_ERR_TOO_SLOW = 11,       /* consumer did not drain its socket */
	VSHM_DISPLAY_ERR_RATE_LIMITED = 12,   /* too many STATS requests */
	VSHM_DISPLAY_ERR_TOO_MANY_CONSUMERS = 13,
	VSHM_DISPLAY_ERR_SHUTDOWN = 14, /* the daemon is exiting */
	VSHM_DISPLAY_ERR_INTERNAL = 15, /* daemon-side failure serving this consumer */
};

/* Per-scanout refusal reasons (vshm_display_hello_reply.refuse_reason[]). */
enum vshm_display_refuse_reason {
	VSHM_DISPLAY_REFUSE_NONE = 0,            /* granted, or not requested */
	VSHM_DISPLAY_REFUSE_NO_SUCH_SCANOUT = 1, /* id >= num_scanouts */
	VSHM_DISPLAY_REFUSE_NOT_PERMITTED = 2,   /* the daemon's policy for this role */
	VSHM_DISPLAY_REFUSE_BUSY = 3,            /* held exclusively / per-scanout limit reached */
	VSHM_DISPLAY_REFUSE_UNSUPPORTED = 4,     /* no delivery this consumer can accept */
};

/* HELLO (C->D). */
#define VSHM_DISPLAY_HELLO_F_NO_CURSOR 0x1u /* send no CURSOR messages */

struct vshm_display_hello {
	uint32_t version;  /* highest protocol version the consumer speaks, >= 1 */
	uint32_t flags;    /* VSHM_DISPLAY_HELLO_F_*; unknown bits are ignored */
	uint32_t scanouts; /* bit n: wants scanout n; bits >= 16 must be 0; 0 is allowed */
	uint32_t reserved; /* 0 */
	/* Role name: 1..31 bytes of [A-Za-z0-9._-], NUL-terminated, NUL-padded. */
	char role[VSHM_DISPLAY_ROLE_SIZE];
} __attribute__((packed));

/* HELLO reply (D->C). */
struct vshm_display_hello_reply {
	uint32_t version;             /* min(consumer's, daemon's): the version spoken */
	uint32_t consumer_id;         /* unique while the daemon runs, never 0 */
	uint32_t granted;             /* scanout mask the consumer will receive */
	uint32_t refused;             /* requested but refused; reasons below */
	uint32_t num_scanouts;        /* scanouts the daemon has (ids 0..n-1) */
	uint32_t heartbeat_period_ms; /* HEARTBEAT period */
	uint32_t release_timeout_ms;  /* FRAME_RELEASE deadline */
	uint32_t max_rects;           /* most rects one FRAME carries (<= MAX_RECTS) */
	uint8_t refuse_reason[VSHM_DISPLAY_MAX_SCANOUTS]; /* enum vshm_display_refuse_reason */
} __attribute__((packed));

/* ERROR (D->C). */
struct vshm_display_error {
	uint32_t code;    /* enum vshm_display_error_code */
	uint32_t request; /* id of the offending message, 0 if none */
	uint32_t detail;  /* code-specific (e.g. the scanout id or expected size), else 0 */
	uint32_t reserved;
	char message[VSHM_DISPLAY_ERROR_MESSAGE_SIZE]; /* NUL-terminated text, for logs only */
} __attribute__((packed));

/* Buffer flags (SHM_BUFFER, DMABUF_BUFFER). */
/*
 * Y_0_TOP set: row 0 in memory (at offset) is the top row of the image
 * (top-down). Clear: row 0 in memory is the bottom row (bottom-up), so
 * image row y is memory row height - 1 - y. vshm-gpu always sets it.
 */
#define VSHM_DISPLAY_BUFFER_F_Y_0_TOP 0x1u

/* SHM_BUFFER (D->C) + 1 read-only memfd. */
struct vshm_display_shm_buffer {
	uint32_t buffer_id;  /* != 0; unique per connection until BUFFER_DESTROY */
	uint32_t width;      /* pixels */
	uint32_t height;     /* rows */
	uint32_t stride;     /* bytes between rows */
	uint32_t drm_fourcc; /* DRM_FORMAT_*, e.g. XRGB8888 */
	uint32_t flags;      /* VSHM_DISPLAY_BUFFER_F_* */
	uint64_t offset;     /* file offset of the first pixel */
	uint64_t size;       /* file size; map [0, size) with PROT_READ, MAP_SHARED */
} __attribute__((packed));

struct vshm_display_dmabuf_plane {
	uint32_t offset;
	uint32_t stride;
} __attribute__((packed));

/* DMABUF_BUFFER (D->C) + num_planes dma-buf fds. */
struct vshm_display_dmabuf_buffer {
	uint32_t buffer_id;
	uint32_t width;
	uint32_t height;
	uint32_t drm_fourcc;
	uint32_t flags;      /* VSHM_DISPLAY_BUFFER_F_* */
	uint32_t num_planes; /* 1..VSHM_DISPLAY_MAX_PLANES; also the fd count */
	uint64_t modifier;   /* DRM format modifier, same for all planes */
	struct vshm_display_dmabuf_plane planes[VSHM_DISPLAY_MAX_PLANES]; /* unused: 0 */
} __attribute__((packed));

/* BUFFER_DESTROY (D->C). */
struct vshm_display_buffer_destroy {
	uint32_t buffer_id;
	uint32_t reserved;
} __attribute__((packed));

/* SCANOUT (D->C): scanout_id shows rectangle (x, y, width, height) of buffer_id. */
struct vshm_display_scanout {
	uint32_t scanout_id;
	uint32_t buffer_id; /* 0: scanout disabled (the daemon sends x, y, width, height 0) */
	uint32_t x;
	uint32_t y;
	uint32_t width;
	uint32_t height;
	uint32_t flags; /* none defined; ignore unknown bits */
	uint32_t reserved;
} __attribute__((packed));

struct vshm_display_rect {
	uint32_t x;
	uint32_t y;
	uint32_t width;
	uint32_t height;
} __attribute__((packed));

/* FRAME flags. */
#define VSHM_DISPLAY_FRAME_F_FENCE 0x1u /* a sync_file fd is attached */
#define VSHM_DISPLAY_FRAME_F_FULL                                                                  \
	0x2u /* whole scanout damaged; num_rects may be 0 (without FULL: >= 1) */

/* FRAME (D->C), followed by num_rects struct vshm_display_rect (scanout coordinates). */
struct vshm_display_frame {
	uint32_t scanout_id;
	uint32_t buffer_id; /* buffer holding this frame: the scanout's current one */
	uint64_t seq;       /* per-scanout frame number, from 1, never reused */
	uint64_t flush_ns;  /* CLOCK_MONOTONIC ns of the frame's newest guest flush */
	uint64_t send_ns;   /* CLOCK_MONOTONIC ns when the daemon queued this message */
	uint32_t flags;     /* VSHM_DISPLAY_FRAME_F_* */
	uint32_t num_rects; /* <= max_rects from the HELLO reply */
} __attribute__((packed));

/* FRAME_RELEASE flags. */
#define VSHM_DISPLAY_RELEASE_F_FENCE 0x1u /* a sync_file fd is attached */

/* FRAME_RELEASE (C->D): done with every frame of scanout_id up to seq. */
struct vshm_display_frame_release {
	uint32_t scanout_id;
	uint32_t flags; /* VSHM_DISPLAY_RELEASE_F_* */
	uint64_t seq;
} __attribute__((packed));

/* HEARTBEAT (D->C), followed by count struct vshm_display_heartbeat_scanout. */
struct vshm_display_heartbeat {
	uint64_t now_ns;            /* CLOCK_MONOTONIC ns when sent */
	uint64_t guest_activity_ns; /* last virtqueue request from the guest, 0: never */
	uint32_t period_ms;         /* the next HEARTBEAT follows within this period */
	uint32_t count;             /* one entry per granted scanout */
} __attribute__((packed));

#define VSHM_DISPLAY_HEARTBEAT_F_ENABLED 0x1u /* the scanout currently shows a buffer */

struct vshm_display_heartbeat_scanout {
	uint32_t scanout_id;
	uint32_t flags;         /* VSHM_DISPLAY_HEARTBEAT_F_* */
	uint64_t last_seq;      /* newest frame seq, 0: none yet */
	uint64_t last_flush_ns; /* newest guest flush time, 0: none yet */
} __attribute__((packed));

#define VSHM_DISPLAY_CURSOR_F_VISIBLE 0x1u

/* CURSOR (D->C). One cursor per connection: each CURSOR replaces the last, on any scanout. */
struct vshm_display_cursor {
	uint32_t scanout_id;
	uint32_t buffer_id; /* ARGB8888 SHM_BUFFER with the shape, 0: no shape */
	uint32_t hot_x;     /* hot spot in the shape: < the shape's width */
	uint32_t hot_y;     /* < the shape's height */
	int32_t x;          /* hot spot position, scanout coordinates */
	int32_t y;
	uint32_t flags; /* VSHM_DISPLAY_CURSOR_F_* */
	uint32_t reserved;
} __attribute__((packed));

/* STATS request (C->D). */
struct vshm_display_stats_request {
	uint32_t flags; /* 0 */
	uint32_t reserved;
} __attribute__((packed));

/*
 * STATS reply (D->C), followed by count struct vshm_display_stats_scanout.
 * latency_hist[i] counts frames whose flush_ns -> fully-written latency L
 * (microseconds) was in [2^i, 2^(i+1)) for 1 <= i <= 14; bucket 0 is
 * L < 2 us, bucket 15 is L >= 32768 us.
 */
struct vshm_display_stats {
	uint64_t now_ns;
	uint32_t consumer_id;
	uint32_t count;            /* one entry per granted scanout */
	uint64_t frames_sent;      /* FRAMEs fully written to the socket */
	uint64_t frames_dropped;   /* frames replaced in the mailbox before sending */
	uint64_t frames_reclaimed; /* held frames taken back after release_timeout_ms */
	uint64_t bytes_sent;
	uint64_t queued_bytes;     /* bytes waiting in the out-queue now */
	uint64_t queued_bytes_max; /* high-water mark */
	uint64_t latency_hist[VSHM_DISPLAY_LATENCY_BUCKETS];
} __attribute__((packed));

struct vshm_display_stats_scanout {
	uint32_t scanout_id;
	uint32_t reserved;
	uint64_t frames_sent;
	uint64_t frames_dropped;
	uint64_t last_seq; /* newest seq sent to this consumer */
} __attribute__((packed));

/* Wire sizes; tests/unit/protocol checks these and every offset against the json. */
_Static_assert(sizeof(struct vshm_display_hello) == 48, "hello");
_Static_assert(sizeof(struct vshm_display_hello_reply) == 48, "hello_reply");
_Static_assert(sizeof(struct vshm_display_error) == 80, "error");
_Static_assert(sizeof(struct vshm_display_shm_buffer) == 40, "shm_buffer");
_Static_assert(sizeof(struct vshm_display_dmabuf_plane) == 8, "dmabuf_plane");
_Static_assert(sizeof(struct vshm_display_dmabuf_buffer) == 64, "dmabuf_buffer");
_Static_assert(sizeof(struct vshm_display_buffer_destroy) == 8, "buffer_destroy");
_Static_assert(sizeof(struct vshm_display_scanout) == 32, "scanout");
_Static_assert(sizeof(struct vshm_display_rect) == 16, "rect");
_Static_assert(sizeof(struct vshm_display_frame) == 40, "frame");
_Static_assert(sizeof(struct vshm_display_frame_release) == 16, "frame_release");
_Static_assert(sizeof(struct vshm_display_heartbeat) == 24, "heartbeat");
_Static_assert(sizeof(struct vshm_display_heartbeat_scanout) == 24, "heartbeat_scanout");
_Static_assert(sizeof(struct vshm_display_cursor) == 32, "cursor");
_Static_assert(sizeof(struct vshm_display_stats_request) == 8, "stats_request");
_Static_assert(sizeof(struct vshm_display_stats) == 192, "stats");
_Static_assert(sizeof(struct vshm_display_stats_scanout) == 32, "stats_scanout");
/* The largest consumer message must fit the consumer payload bound. */
_Static_assert(sizeof(struct vshm_display_hello) <= VSHM_DISPLAY_MAX_C2D_PAYLOAD, "c2d bound");

/*
 * HELLO.role (section 7.1): 1..31 bytes of [A-Za-z0-9._-] followed by a
 * NUL within VSHM_DISPLAY_ROLE_SIZE. Shared by the daemon (checking a
 * consumer's HELLO) and consumers (checking their own configuration).
 */
static inline bool vshm_display_role_valid(const char *role)
{
	size_t n = strnlen(role, VSHM_DISPLAY_ROLE_SIZE);

	if (n == 0 || n == VSHM_DISPLAY_ROLE_SIZE)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = role[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

#endif
