/* SPDX-License-Identifier: MIT */
/*
 * vu-test.h - helpers for the vhost-user engine tests: a plain poll() loop
 * implementing struct vshm_loop, a recording test device, and a raw
 * front-end that writes hand-built messages to the engine's socket.
 */
#ifndef VU_TEST_H
#define VU_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vshm/loop.h>
#include <vshm/vhost_user.h>

/* Request ids and flags used by the tests (spelled out, not taken from the
 * engine's private header, so the tests check the wire values). */
enum {
	REQ_GET_FEATURES = 1,
	REQ_SET_FEATURES = 2,
	REQ_SET_OWNER = 3,
	REQ_RESET_OWNER = 4,
	REQ_SET_MEM_TABLE = 5,
	REQ_SET_LOG_BASE = 6,
	REQ_SET_VRING_NUM = 8,
	REQ_SET_VRING_ADDR = 9,
	REQ_SET_VRING_BASE = 10,
	REQ_GET_VRING_BASE = 11,
	REQ_SET_VRING_KICK = 12,
	REQ_SET_VRING_CALL = 13,
	REQ_SET_VRING_ERR = 14,
	REQ_GET_PROTOCOL_FEATURES = 15,
	REQ_SET_PROTOCOL_FEATURES = 16,
	REQ_GET_QUEUE_NUM = 17,
	REQ_SET_VRING_ENABLE = 18,
	REQ_SET_BACKEND_REQ_FD = 21,
	REQ_GET_CONFIG = 24,
	REQ_SET_CONFIG = 25,
	REQ_GET_INFLIGHT_FD = 31,
	REQ_GPU_SET_SOCKET = 33,
	REQ_RESET_DEVICE = 34,
	REQ_GET_MAX_MEM_SLOTS = 36,
	REQ_ADD_MEM_REG = 37,
	REQ_REM_MEM_REG = 38,
	REQ_SET_STATUS = 39,
	REQ_GET_STATUS = 40,
	REQ_GET_SHMEM_CONFIG = 44,
};

#define F_V1         0x1u
#define F_REPLY      0x4u
#define F_NEED_REPLY 0x8u

#define T_UVA_BASE 0x7f1200000000ull
#define T_GPA_BASE 0x100000ull
#define T_MEM_SIZE (1u << 20)
/* Ring layout of queue i inside the test memory. */
#define T_RING_DESC(i)  (T_UVA_BASE + (uint64_t)(i)*0x10000)
#define T_RING_AVAIL(i) (T_RING_DESC(i) + 0x4000)
#define T_RING_USED(i)  (T_RING_DESC(i) + 0x8000)

#define T_MAX_QUEUES  4
#define T_CONFIG_SIZE 64

/* ---- poll() loop ---- */
struct tloop;
struct tloop *tloop_new(void);
void tloop_destroy(struct tloop *l);
struct vshm_loop tloop_iface(struct tloop *l);
/* One poll() round; returns callbacks run. */
int tloop_dispatch(struct tloop *l, int timeout_ms);
unsigned tloop_num_watches(const struct tloop *l);

/* ---- recording device ---- */
struct tdev {
	uint64_t dev_features;
	bool with_shmem;
	bool handle_33;
	int kicks[T_MAX_QUEUES];
	int started[T_MAX_QUEUES];
	int stopped[T_MAX_QUEUES];
	bool running[T_MAX_QUEUES];
	int resets, disconnects, set_features_calls;
	uint64_t last_features;
	uint8_t config[T_CONFIG_SIZE];
	uint32_t last_config_flags;
	int devreq_calls;
	uint32_t devreq_last;
	unsigned devreq_nfds;
	bool devreq_fd_valid;
	int status_calls;
	uint8_t status;
	/* Callback that ran while the ring was not stopped first, etc. */
	int order_errors;
};

extern const struct vshm_vu_device_ops tdev_ops;

/* ---- front-end ---- */
struct fe {
	struct tloop *loop;
	struct vshm_loop iface;
	struct vshm_vu_dev *dev;
	struct tdev td;
	int sock;
	int memfd;
	void *mem;
	int kick[T_MAX_QUEUES], call[T_MAX_QUEUES];
};

/* cfg NULL: defaults with T_MAX_QUEUES queues, config space T_CONFIG_SIZE. */
void fe_init(struct fe *fe, const struct vshm_vu_config *cfg);
/* With other device ops (based on tdev_ops; data is &fe->td). */
void fe_init_ops(struct fe *fe, const struct vshm_vu_config *cfg,
                 const struct vshm_vu_device_ops *ops);
/* Same, but the device loop is a caller-provided one. */
void fe_init_loop(struct fe *fe, const struct vshm_vu_config *cfg, const struct vshm_loop *loop);
void fe_fini(struct fe *fe);
/* Fresh socketpair to the same engine (reconnect). */
void fe_reconnect(struct fe *fe);

/* Run the engine until nothing is pending. */
void fe_pump(struct fe *fe);
int fe_send_raw(struct fe *fe, const void *buf, size_t len, const int *fds, unsigned nfds);
int fe_send(struct fe *fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
            const int *fds, unsigned nfds);
/* Wait (running the engine) for one reply; returns payload size, -ETIMEDOUT or -EPIPE. */
int fe_recv(struct fe *fe, uint32_t *req, uint32_t *flags, void *buf, size_t max);
/* True when the engine sent nothing (after pumping). */
bool fe_no_reply(struct fe *fe);
/* True when the engine closed its end. */
bool fe_peer_closed(struct fe *fe);

/* GET_* returning a u64. 0 or -errno. */
int fe_get_u64(struct fe *fe, uint32_t req, uint64_t *v);
/* A request with a u64 payload and NEED_REPLY; returns the ack value (0 ok) or -1 on no ack. */
int64_t fe_set_u64_ack(struct fe *fe, uint32_t req, uint64_t v);
/* Arbitrary payload with NEED_REPLY; returns the ack or -1. */
int64_t fe_req_ack(struct fe *fe, uint32_t req, const void *payload, uint32_t size, const int *fds,
                   unsigned nfds);

/* Negotiate: GET_FEATURES, GET/SET_PROTOCOL_FEATURES(@pf ∩ offered), SET_OWNER,
 * SET_FEATURES(offered & @features_mask). */
void fe_negotiate(struct fe *fe, uint64_t pf, uint64_t features_mask);
/* memfd of T_MEM_SIZE mapped at fe->mem, sent with SET_MEM_TABLE. */
void fe_set_mem(struct fe *fe);
/* The same without running the engine (for tests with their own loop). */
void fe_set_mem_nowait(struct fe *fe);
/* NUM/BASE/ADDR/CALL/KICK for queue @i with size @num (eventfds kept in fe). */
void fe_setup_ring(struct fe *fe, unsigned i, unsigned num);
void fe_kick(struct fe *fe, unsigned i);
/* Make one device-writable buffer available on queue @i (descriptor @head). */
void fe_post_buffer(struct fe *fe, unsigned i, uint16_t head, uint32_t len);
/* The used ring's idx of queue @i. */
uint16_t fe_used_idx(struct fe *fe, unsigned i);

#endif
