/* SPDX-License-Identifier: MIT */
/*
 * frontend.h - the front-end (VMM) side of vhost-user, for tests.
 *
 * A struct tfe drives a vhost-user back-end the way QEMU or crosvm would:
 * typed wrappers for every request a GPU back-end sees, one-call bring-up
 * in either VMM's message order (protocols.md §1.7), per-queue kick/call
 * eventfds, and raw access to the wire so tests can send malformed bytes.
 *
 * Nothing here can hang a test: every wait has a deadline (the handle's
 * timeout, 2000 ms by default) and returns -ETIMEDOUT when it passes.
 *
 * Single-threaded tests run the back-end engine in the same thread as the
 * front-end. A blocking front-end call would then wait for a reply that
 * the engine can only produce when its loop runs, so a tfe can be given a
 * "pump" callback: while waiting, the tfe calls it (with a bounded timeout)
 * instead of sleeping in poll(). With the engine in another thread or
 * process, leave the pump NULL.
 *
 * Errors are 0 or -errno. -EREMOTEIO means the back-end answered a
 * REPLY_ACK request with a non-zero status (see tfe_last_ack()).
 */
#ifndef VSHM_TESTS_FRONTEND_H
#define VSHM_TESTS_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Front-end request ids (protocols.md §1.5). */
enum tfe_request {
	TFE_GET_FEATURES = 1,
	TFE_SET_FEATURES = 2,
	TFE_SET_OWNER = 3,
	TFE_RESET_OWNER = 4,
	TFE_SET_MEM_TABLE = 5,
	TFE_SET_LOG_BASE = 6,
	TFE_SET_LOG_FD = 7,
	TFE_SET_VRING_NUM = 8,
	TFE_SET_VRING_ADDR = 9,
	TFE_SET_VRING_BASE = 10,
	TFE_GET_VRING_BASE = 11,
	TFE_SET_VRING_KICK = 12,
	TFE_SET_VRING_CALL = 13,
	TFE_SET_VRING_ERR = 14,
	TFE_GET_PROTOCOL_FEATURES = 15,
	TFE_SET_PROTOCOL_FEATURES = 16,
	TFE_GET_QUEUE_NUM = 17,
	TFE_SET_VRING_ENABLE = 18,
	TFE_SET_BACKEND_REQ_FD = 21,
	TFE_GET_CONFIG = 24,
	TFE_SET_CONFIG = 25,
	TFE_GPU_SET_SOCKET = 33,
	TFE_RESET_DEVICE = 34,
	TFE_GET_MAX_MEM_SLOTS = 36,
	TFE_ADD_MEM_REG = 37,
	TFE_REM_MEM_REG = 38,
	TFE_SET_STATUS = 39,
	TFE_GET_STATUS = 40,
	TFE_GET_SHMEM_CONFIG = 44,
};

/* Header flag bits (protocols.md §1.3). */
#define TFE_FLAG_VERSION    0x1u
#define TFE_FLAG_REPLY      0x4u
#define TFE_FLAG_NEED_REPLY 0x8u

#define TFE_HDR_SIZE 12u
/* Fds accepted on one received message; more is a protocol error. */
#define TFE_MAX_FDS 8u
/* Largest payload a tfe will receive (bounds the buffer a peer can make us allocate). */
#define TFE_MAX_PAYLOAD (1u << 20)
/* Queues a tfe keeps kick/call eventfds for. */
#define TFE_MAX_QUEUES         64u
#define TFE_MAX_REGIONS        8u
#define TFE_DEFAULT_TIMEOUT_MS 2000

/* virtio status bits for SET_STATUS. */
#define TFE_STATUS_DRIVER_READY 0x0fu /* ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK */

/*
 * Called while a tfe waits: run the back-end's loop for at most
 * @timeout_ms. Return a negative value to abort the wait (propagated).
 */
typedef int (*tfe_pump_fn)(void *data, int timeout_ms);

/*
 * One received message. The payload is a heap copy owned by the message;
 * fds are OWNED by the receiver. tfe_msg_finish() frees the payload and
 * closes fds still >= 0 (set an entry to -1 to keep it).
 */
struct tfe_msg {
	uint32_t request, flags, size;
	uint8_t *payload;
	int fds[TFE_MAX_FDS];
	unsigned nfds;
};
void tfe_msg_finish(struct tfe_msg *msg);

/*
 * Wire helpers shared with backend-peer.c and usable by tests on any
 * vhost-user socket. tfe_wire_send() writes header + payload with @fds
 * (BORROWED) on the first byte; tfe_wire_recv() reads one whole message.
 * Both wait at most @timeout_ms, calling @pump (may be NULL) while waiting.
 */
int tfe_wire_send(int fd, uint32_t request, uint32_t flags, const void *payload, uint32_t size,
                  const int *fds, unsigned nfds, int timeout_ms, tfe_pump_fn pump, void *pump_data);
int tfe_wire_send_bytes(int fd, const void *bytes, size_t len, const int *fds, unsigned nfds,
                        int timeout_ms, tfe_pump_fn pump, void *pump_data);
int tfe_wire_recv(int fd, struct tfe_msg *msg, int timeout_ms, tfe_pump_fn pump, void *pump_data);

/* One guest memory region as the VMM describes it. @fd is BORROWED. */
struct tfe_region {
	int fd;
	uint64_t guest_addr;
	uint64_t size;
	uint64_t user_addr;   /* the VMM's host pointer of the mapping start */
	uint64_t mmap_offset; /* offset of the start inside @fd */
};

/* Where a split ring lives, as VMM user addresses, and where it starts. */
struct tfe_vring {
	uint16_t num;
	uint16_t base; /* next avail index the device should process */
	uint64_t desc_addr, avail_addr, used_addr;
};

struct tfe;
struct tfe_peer; /* backend-peer.h */

/*
 * Wrap the connected vhost-user socket @fd. Ownership of @fd passes to the
 * tfe on success AND failure.
 */
int tfe_new(int fd, struct tfe **out);
/* Connect to a back-end listening at @path. */
int tfe_connect(const char *path, struct tfe **out);
/*
 * Create a socketpair: the tfe takes one end, *backend_fd (owned by the
 * caller, e.g. handed to vshm_vu_dev_connect()) is the other.
 */
int tfe_new_pair(struct tfe **out, int *backend_fd);
/* Closes the socket, eventfds and back-end channel (and its peer). NULL ok. */
void tfe_destroy(struct tfe *fe);

void tfe_set_pump(struct tfe *fe, tfe_pump_fn pump, void *data);
/* Deadline for every wait; <= 0 restores the default. */
void tfe_set_timeout(struct tfe *fe, int timeout_ms);
/* Set NEED_REPLY on requests without a reply body when REPLY_ACK is acked (QEMU does). */
void tfe_set_need_reply(struct tfe *fe, bool need_reply);
int tfe_get_fd(const struct tfe *fe);
/* The status value of the last REPLY_ACK reply (0 = success). */
uint64_t tfe_last_ack(const struct tfe *fe);
/* Protocol features this tfe sent in SET_PROTOCOL_FEATURES. */
uint64_t tfe_protocol_features(const struct tfe *fe);
/*
 * Wait (pumping) up to @timeout_ms for the back-end to close the socket.
 * 0 when it did, -ETIMEDOUT, or -EBADMSG when a message arrived instead.
 */
int tfe_wait_hangup(struct tfe *fe, int timeout_ms);

/* --- raw access (malformed-input tests) ------------------------------- */

/* Send any bytes (a header claiming anything). @fds BORROWED. */
int tfe_send_raw(struct tfe *fe, const void *bytes, size_t len, const int *fds, unsigned nfds);
/* Send one well-framed message with exactly the given flags. */
int tfe_send_msg(struct tfe *fe, uint32_t request, uint32_t flags, const void *payload,
                 uint32_t size, const int *fds, unsigned nfds);
/* Receive one message (reply) within the timeout. */
int tfe_recv_msg(struct tfe *fe, struct tfe_msg *msg);

/*
 * Request/reply following the protocol's rules: requests with a reply body
 * (GET_*) wait for it (same request id, REPLY flag) and copy at most
 * @reply_cap bytes to @reply (*reply_size = bytes received); others set
 * NEED_REPLY and wait for the u64 ack when need_reply is on and REPLY_ACK
 * was acked, else only send. @fds BORROWED.
 */
int tfe_call(struct tfe *fe, uint32_t request, const void *payload, uint32_t size, const int *fds,
             unsigned nfds, void *reply, uint32_t reply_cap, uint32_t *reply_size);
/* Round trip (GET_FEATURES) proving every earlier message was processed. */
int tfe_sync(struct tfe *fe);

/* --- typed requests --------------------------------------------------- */

int tfe_get_features(struct tfe *fe, uint64_t *features);
int tfe_set_features(struct tfe *fe, uint64_t features);
int tfe_get_protocol_features(struct tfe *fe, uint64_t *pf);
int tfe_set_protocol_features(struct tfe *fe, uint64_t pf);
int tfe_get_queue_num(struct tfe *fe, uint64_t *num);
int tfe_get_max_mem_slots(struct tfe *fe, uint64_t *slots);
/*
 * Create the back-end channel socketpair and send one end. *channel_fd
 * (may be NULL: then a struct tfe_peer is created and owned by the tfe,
 * see tfe_get_backend_peer()) receives the front-end's end, owned by the
 * caller.
 */
int tfe_set_backend_req_fd(struct tfe *fe, int *channel_fd);
struct tfe_peer *tfe_get_backend_peer(struct tfe *fe);
int tfe_set_owner(struct tfe *fe);
int tfe_reset_owner(struct tfe *fe);
int tfe_reset_device(struct tfe *fe);
int tfe_set_mem_table(struct tfe *fe, const struct tfe_region *regions, unsigned n);
int tfe_add_mem_reg(struct tfe *fe, const struct tfe_region *region);
int tfe_rem_mem_reg(struct tfe *fe, const struct tfe_region *region);
int tfe_set_vring_num(struct tfe *fe, unsigned index, unsigned num);
int tfe_set_vring_base(struct tfe *fe, unsigned index, unsigned base);
int tfe_get_vring_base(struct tfe *fe, unsigned index, uint32_t *base);
/* Addresses in logical order; the wire order (desc, used, avail) is handled here. */
int tfe_set_vring_addr(struct tfe *fe, unsigned index, uint64_t desc, uint64_t avail, uint64_t used,
                       uint32_t flags);
/* @fd BORROWED; -1 sends the "no fd" bit (polling mode). */
int tfe_set_vring_kick_fd(struct tfe *fe, unsigned index, int fd);
int tfe_set_vring_call_fd(struct tfe *fe, unsigned index, int fd);
int tfe_set_vring_err_fd(struct tfe *fe, unsigned index, int fd);
int tfe_set_vring_enable(struct tfe *fe, unsigned index, bool enable);
int tfe_set_status(struct tfe *fe, uint8_t status);
int tfe_get_status(struct tfe *fe, uint8_t *status);
/* GET_CONFIG of @size bytes at @offset into @buf; -EPROTO when the reply differs in size. */
int tfe_get_config(struct tfe *fe, uint32_t offset, void *buf, uint32_t size);
int tfe_set_config(struct tfe *fe, uint32_t offset, const void *buf, uint32_t size, uint32_t flags);
/* GET_SHMEM_CONFIG: sizes[256] and the reply's nregions. */
int tfe_get_shmem_config(struct tfe *fe, uint64_t sizes[256], uint32_t *nregions);

/* --- queues: eventfds owned by the tfe --------------------------------- */

/* The kick / call eventfd of @index (created on first use), BORROWED; -1 on error. */
int tfe_kick_fd(struct tfe *fe, unsigned index);
int tfe_call_fd(struct tfe *fe, unsigned index);
/* Signal the kick eventfd (what the guest's notify write becomes). */
int tfe_kick(struct tfe *fe, unsigned index);
/*
 * Wait (pumping) until the call eventfd of @index fired, and consume it.
 * 0, or -ETIMEDOUT after @timeout_ms (< 0: the tfe's timeout).
 */
int tfe_wait_call(struct tfe *fe, unsigned index, int timeout_ms);
/* Consume a pending call signal without waiting: 1 if one was pending, else 0. */
int tfe_poll_call(struct tfe *fe, unsigned index);

/* The vring messages of one queue start, in QEMU or crosvm order. */
enum tfe_order {
	TFE_ORDER_QEMU,
	TFE_ORDER_CROSVM,
};
/*
 * Configure and start queue @index: NUM, BASE, ADDR, KICK, CALL (QEMU) or
 * NUM, ADDR, BASE, CALL, KICK (crosvm), then ENABLE(1) when @enable.
 */
int tfe_start_queue(struct tfe *fe, unsigned index, const struct tfe_vring *vring,
                    enum tfe_order order, bool enable);
/* GET_VRING_BASE: stop the ring; *base is where a restart must resume. */
int tfe_stop_queue(struct tfe *fe, unsigned index, uint32_t *base);

/* --- queues driven by the test driver (vring-driver.h) ------------------ */

struct testfe_mem;
struct testfe_vring;

/* Describe every region of @mem (at most TFE_MAX_REGIONS); returns the count or -E2BIG. */
int tfe_regions_from_mem(const struct testfe_mem *mem, struct tfe_region *out, unsigned max);
/*
 * Describe @vr for SET_VRING_*: its user addresses, and as base the ring's
 * used index (what a VMM resumes from after a back-end reconnect).
 */
void tfe_vring_from_driver(const struct testfe_vring *vr, struct tfe_vring *out);
/*
 * Make queue @index use @vr (and its kick/call eventfds, BORROWED: @vr must
 * outlive the tfe or be detached with @vr NULL). @mem is where
 * tfe_submit() allocates its buffers. Replaces the tfe's own eventfds.
 */
int tfe_attach_vring(struct tfe *fe, unsigned index, struct testfe_vring *vr,
                     struct testfe_mem *mem);

/* tfe_submit() flags. */
#define TFE_SUBMIT_INDIRECT 0x1u /* one indirect table (needs cfg.indirect) */
#define TFE_SUBMIT_SPLIT    0x2u /* each buffer as two descriptors, to exercise chains */
#define TFE_SUBMIT_NO_WAIT  0x4u /* publish and kick only; collect with tfe_collect() */

/*
 * GPU-agnostic request/response round trip on the attached queue @index:
 * copy @req into guest memory, add a chain [req (readable), resp
 * (writable, @resp_len bytes)], kick when the device asked for it, wait
 * (pumping) for the used element, copy the written bytes back into @resp
 * and store the used length in *written. Buffers are per-queue scratch
 * areas allocated once in @mem (grown when needed), so one request is in
 * flight per queue; the driver's allocator never frees.
 * -ETIMEDOUT after the tfe's timeout; -EPROTO if another head completes.
 */
int tfe_submit(struct tfe *fe, unsigned index, const void *req, size_t req_len, void *resp,
               size_t resp_len, unsigned flags, uint32_t *written);
/* Wait for the used element of a TFE_SUBMIT_NO_WAIT submission. */
int tfe_collect(struct tfe *fe, unsigned index, void *resp, size_t resp_len, uint32_t *written);

/* --- one-call bring-up -------------------------------------------------- */

struct tfe_bringup {
	enum tfe_order order;
	/* Acked virtio features = offered & ~features_clear. */
	uint64_t features_clear;
	/* Acked protocol features = offered & ~protocol_clear (crosvm also masks its own set). */
	uint64_t protocol_clear;
	bool need_reply;      /* NEED_REPLY on set requests (QEMU style) */
	bool add_mem_reg;     /* ADD_MEM_REG per region instead of SET_MEM_TABLE */
	bool backend_channel; /* SET_BACKEND_REQ_FD with a threaded tfe_peer */
	bool no_enable;       /* skip SET_VRING_ENABLE(1) */
	bool no_status;       /* skip SET_STATUS */
	uint32_t config_size; /* > 0: GET_CONFIG of this size during init (QEMU) */
	/* Memory: @mem's regions, or @regions when @mem is NULL. */
	struct testfe_mem *mem;
	const struct tfe_region *regions;
	unsigned nregions;
	/*
	 * Queue i uses vrs[i] (attached, see tfe_attach_vring()) when @vrs is
	 * set, else the raw vrings[i] with the tfe's own eventfds.
	 */
	struct testfe_vring *const *vrs;
	const struct tfe_vring *vrings;
	unsigned nvrings;
};

struct tfe_bringup_result {
	uint64_t offered_features, features;
	uint64_t offered_protocol_features, protocol_features;
	uint64_t queue_num;     /* 0 when MQ was not negotiated */
	uint64_t max_mem_slots; /* 0 when CONFIGURE_MEM_SLOTS was not negotiated */
	uint64_t shmem_sizes[256];
	uint32_t shmem_nregions;
};

/*
 * Negotiate and start the device like QEMU (vhost_dev_init, then
 * DRIVER_OK) or crosvm (VhostUserFrontend::new, then activate).
 * @res may be NULL. Stops at the first failing step.
 */
int tfe_bringup(struct tfe *fe, const struct tfe_bringup *b, struct tfe_bringup_result *res);
/*
 * Only the activation half, e.g. after RESET_DEVICE or a QEMU stop/start
 * cycle: SET_FEATURES, memory, vrings, ENABLE, SET_STATUS. Uses
 * offered_features/protocol_features from @res (filled by an earlier
 * tfe_bringup()) and updates res->features. Rings resume at their driver's
 * used index.
 */
int tfe_activate(struct tfe *fe, const struct tfe_bringup *b, struct tfe_bringup_result *res);

#ifdef __cplusplus
}
#endif

#endif
