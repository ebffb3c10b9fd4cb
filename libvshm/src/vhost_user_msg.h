/* SPDX-License-Identifier: MIT */
/*
 * vhost_user_msg.h - vhost-user wire format and the pure validation layer.
 *
 * Everything here is free of I/O so the parser can be fuzzed and unit
 * tested on its own: vu_msg_parse() looks at a header, a payload and an fd
 * count and says whether the message is well-formed for its request id.
 * The engine (vhost_user.c) acts on the verdict; it also closes the fds of
 * rejected messages. Not installed.
 */
#ifndef VSHM_VHOST_USER_MSG_H
#define VSHM_VHOST_USER_MSG_H

#include <stdbool.h>
#include <stdint.h>

struct vshm_vu_dev;

/* Front-end -> back-end request ids (protocols.md §1.5). */
enum vu_request {
	VU_REQ_NONE = 0,
	VU_REQ_GET_FEATURES = 1,
	VU_REQ_SET_FEATURES = 2,
	VU_REQ_SET_OWNER = 3,
	VU_REQ_RESET_OWNER = 4,
	VU_REQ_SET_MEM_TABLE = 5,
	VU_REQ_SET_LOG_BASE = 6,
	VU_REQ_SET_LOG_FD = 7,
	VU_REQ_SET_VRING_NUM = 8,
	VU_REQ_SET_VRING_ADDR = 9,
	VU_REQ_SET_VRING_BASE = 10,
	VU_REQ_GET_VRING_BASE = 11,
	VU_REQ_SET_VRING_KICK = 12,
	VU_REQ_SET_VRING_CALL = 13,
	VU_REQ_SET_VRING_ERR = 14,
	VU_REQ_GET_PROTOCOL_FEATURES = 15,
	VU_REQ_SET_PROTOCOL_FEATURES = 16,
	VU_REQ_GET_QUEUE_NUM = 17,
	VU_REQ_SET_VRING_ENABLE = 18,
	VU_REQ_SEND_RARP = 19,
	VU_REQ_NET_SET_MTU = 20,
	VU_REQ_SET_BACKEND_REQ_FD = 21,
	VU_REQ_IOTLB_MSG = 22,
	VU_REQ_SET_VRING_ENDIAN = 23,
	VU_REQ_GET_CONFIG = 24,
	VU_REQ_SET_CONFIG = 25,
	VU_REQ_CREATE_CRYPTO_SESSION = 26,
	VU_REQ_CLOSE_CRYPTO_SESSION = 27,
	VU_REQ_POSTCOPY_ADVISE = 28,
	VU_REQ_POSTCOPY_LISTEN = 29,
	VU_REQ_POSTCOPY_END = 30,
	VU_REQ_GET_INFLIGHT_FD = 31,
	VU_REQ_SET_INFLIGHT_FD = 32,
	VU_REQ_GPU_SET_SOCKET = 33, /* QEMU vhost-user-gpu; handled by the device */
	VU_REQ_RESET_DEVICE = 34,
	VU_REQ_VRING_KICK = 35,
	VU_REQ_GET_MAX_MEM_SLOTS = 36,
	VU_REQ_ADD_MEM_REG = 37,
	VU_REQ_REM_MEM_REG = 38,
	VU_REQ_SET_STATUS = 39,
	VU_REQ_GET_STATUS = 40,
	VU_REQ_GET_SHARED_OBJECT = 41,
	VU_REQ_SET_DEVICE_STATE_FD = 42,
	VU_REQ_CHECK_DEVICE_STATE = 43,
	VU_REQ_GET_SHMEM_CONFIG = 44,
	VU_REQ_MAX = 45, /* ids >= this are unknown to the engine */
};

/* Back-end -> front-end request ids (protocols.md §1.8). */
enum vu_backend_request {
	VU_BACKEND_IOTLB_MSG = 1,
	VU_BACKEND_CONFIG_CHANGE_MSG = 2,
	VU_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
	VU_BACKEND_SHMEM_MAP = 9,
	VU_BACKEND_SHMEM_UNMAP = 10,
};

/* Header flags (§1.3). */
#define VU_FLAG_VERSION_MASK 0x3u
#define VU_FLAG_VERSION      0x1u
#define VU_FLAG_REPLY        0x4u
#define VU_FLAG_NEED_REPLY   0x8u
#define VU_FLAG_KNOWN        (VU_FLAG_VERSION_MASK | VU_FLAG_REPLY | VU_FLAG_NEED_REPLY)

#define VU_HDR_SIZE          12u
#define VU_HDR_SIZE_OFFSET   8u
#define VU_MAX_FDS           8u /* VHOST_MEMORY_BASELINE_NREGIONS */
#define VU_MAX_MEM_REGIONS   8u /* per SET_MEM_TABLE */
#define VU_MAX_CONFIG_SIZE   256u
#define VU_SHMEM_MAX_REGIONS 256u
/* Largest payload accepted or sent: covers every fixed layout with room for
 * device requests; a larger declared size is a framing error. */
#define VU_MAX_PAYLOAD 4096u

/* SET_VRING_KICK/CALL/ERR u64 encoding. */
#define VU_VRING_IDX_MASK 0xffull
#define VU_VRING_NOFD     (1ull << 8)

#define VU_VRING_F_LOG 0x1u

struct vu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __attribute__((packed));

struct vu_vring_state {
	uint32_t index;
	uint32_t num;
} __attribute__((packed));

struct vu_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc;
	uint64_t used;
	uint64_t avail;
	uint64_t log;
} __attribute__((packed));

struct vu_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
} __attribute__((packed));

struct vu_mem_table_hdr {
	uint32_t nregions;
	uint32_t padding;
} __attribute__((packed));

struct vu_single_mem_region {
	uint64_t padding;
	struct vu_mem_region region;
} __attribute__((packed));

struct vu_config_hdr {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
} __attribute__((packed));

struct vu_shmem_config {
	uint32_t nregions;
	uint32_t padding;
	uint64_t memory_sizes[VU_SHMEM_MAX_REGIONS];
} __attribute__((packed));

_Static_assert(sizeof(struct vu_hdr) == 12, "vhost-user header is 12 bytes");
_Static_assert(sizeof(struct vu_vring_addr) == 40, "vring address is 40 bytes");
_Static_assert(sizeof(struct vu_mem_region) == 32, "memory region is 32 bytes");
_Static_assert(sizeof(struct vu_single_mem_region) == 40, "single region is 40 bytes");
_Static_assert(sizeof(struct vu_shmem_config) == 2056, "shmem config is 2056 bytes");

/* How the engine treats a request id. */
enum vu_req_kind {
	VU_KIND_DEVICE = 0,  /* not the engine's: handed to ops->device_request */
	VU_KIND_HANDLED,     /* implemented by the engine */
	VU_KIND_UNSUPPORTED, /* known, gated on a feature never offered: error */
};

struct vu_req_info {
	const char *name;
	enum vu_req_kind kind;
	/* The back-end answers with a body of its own (never an extra ack). */
	bool has_reply;
};

/* Never NULL; unknown ids get a generic entry of kind VU_KIND_DEVICE. */
const struct vu_req_info *vu_req_info(uint32_t request);

/* Verdict of vu_msg_parse(). */
enum vu_parse_error {
	VU_PARSE_OK = 0,
	VU_PARSE_BAD_VERSION, /* fatal: flags & 3 != 1 */
	VU_PARSE_BAD_FLAGS,   /* fatal: reserved bits or REPLY set on a request */
	VU_PARSE_BAD_SIZE,    /* fatal: payload size wrong for the request */
	VU_PARSE_BAD_FDS,     /* fd count wrong for the request (fds must be closed) */
	VU_PARSE_BAD_VALUE,   /* a field is out of range for the wire format */
};

/* A parsed, size-checked message; payload stays owned by the caller. */
struct vu_msg {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
	const uint8_t *payload;
	unsigned nfds;
	const struct vu_req_info *info;
};

/*
 * Check one front-end request. @hdr is VU_HDR_SIZE bytes; @payload holds
 * @size bytes (the size from the header, already bounded by framing).
 * Fills *out (also on error, as far as known) and returns VU_PARSE_*.
 * Pure: no I/O, no allocation; never touches the fds themselves.
 */
enum vu_parse_error vu_msg_parse(const uint8_t *hdr, const uint8_t *payload, uint32_t size,
                                 unsigned nfds, struct vu_msg *out);

/* True when the verdict leaves the stream unusable and the connection must close. */
static inline bool vu_parse_error_is_fatal(enum vu_parse_error e)
{
	return e == VU_PARSE_BAD_VERSION || e == VU_PARSE_BAD_FLAGS || e == VU_PARSE_BAD_SIZE;
}

const char *vu_parse_error_str(enum vu_parse_error e);

/* Unaligned-safe native-endian loads from payloads. */
uint32_t vu_load_u32(const uint8_t *p);
uint64_t vu_load_u64(const uint8_t *p);

/*
 * The back-end request channel (vhost_user_backend_req.c). One per
 * SET_BACKEND_REQ_FD; blocking request/reply with a bounded wait.
 */
struct vu_backend;

/* Takes ownership of @fd on success and failure. */
int vu_backend_new(int fd, struct vu_backend **out);
void vu_backend_destroy(struct vu_backend *b);

/*
 * How vu_backend_send() treats a request (bit mask):
 * NEED_REPLY: with REPLY_ACK negotiated, set NEED_REPLY and wait for the u64;
 * WAIT: always wait for the u64 (crosvm's non-standard requests);
 * OWN_FD: the request itself defines its fd (crosvm's SHMEM_MAP 1000), so
 * the BACKEND_SEND_FD rule does not apply.
 */
#define VU_SEND_NEED_REPLY 0x1u
#define VU_SEND_WAIT       0x2u
#define VU_SEND_OWN_FD     0x4u

/*
 * Send one request. @pf = negotiated protocol features, @mode VU_SEND_*.
 * Returns 0 (with *reply when a reply was awaited, else 0), -EPROTO,
 * -ETIMEDOUT, -EPIPE, -errno. After -ETIMEDOUT or a transport error the
 * channel is dead: *dead is set and the caller must destroy it.
 */
int vu_backend_send(struct vu_backend *b, uint64_t pf, int timeout_ms, uint32_t request,
                    const void *payload, uint32_t size, const int *fds, unsigned nfds,
                    unsigned mode, uint64_t *reply, bool *dead);

/* vu_backend_send() on @dev's channel, dropping the channel when it dies.
 * -ENOTCONN without a channel. */
int vu_dev_backend_send(struct vshm_vu_dev *dev, uint32_t request, const void *payload,
                        uint32_t size, const int *fds, unsigned nfds, unsigned mode,
                        uint64_t *reply);

/*
 * Engine accessors for vhost_user_backend_req.c (defined in vhost_user.c):
 * the channel slot, negotiated protocol features and the reply timeout.
 */
struct vu_backend **vu_dev_backend_slot(struct vshm_vu_dev *dev);
uint64_t vu_dev_pf(const struct vshm_vu_dev *dev);
int vu_dev_backend_timeout_ms(const struct vshm_vu_dev *dev);

#endif
