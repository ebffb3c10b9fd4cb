/* SPDX-License-Identifier: MIT */
/*
 * backend-peer.h - the front-end's end of the vhost-user back-end request
 * channel (the socket sent with SET_BACKEND_REQ_FD), for tests.
 *
 * A tfe_peer receives back-end requests (CONFIG_CHANGE_MSG, SHMEM_MAP with
 * its fd, SHMEM_UNMAP, ...), records each one, and answers the way a test
 * asks: success, an error value, no reply at all, or a late reply. That is
 * how tests make the back-end's reply timeouts fire on purpose.
 *
 * The peer runs either in its own thread (tfe_peer_start_thread(): needed
 * when the back-end engine runs in the test's thread, because the engine
 * blocks for the reply) or is driven by tfe_peer_dispatch(). All functions
 * are safe to call from the test thread while the peer thread runs.
 */
#ifndef VSHM_TESTS_BACKEND_PEER_H
#define VSHM_TESTS_BACKEND_PEER_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Back-end request ids (protocols.md §1.8). */
enum tfe_backend_request {
	TFE_BACKEND_IOTLB_MSG = 1,
	TFE_BACKEND_CONFIG_CHANGE_MSG = 2,
	TFE_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
	TFE_BACKEND_SHMEM_MAP = 9,
	TFE_BACKEND_SHMEM_UNMAP = 10,
};

/* VhostUserMMap, the SHMEM_MAP/UNMAP payload (protocols.md §1.9). */
struct tfe_shmem_mmap {
	uint8_t shmid;
	uint8_t padding[7];
	uint64_t fd_offset;
	uint64_t shm_offset;
	uint64_t len;
	uint64_t flags; /* bit 0: read-write */
};

enum tfe_peer_reply_mode {
	TFE_PEER_REPLY_OK,    /* answer NEED_REPLY requests with 0 */
	TFE_PEER_REPLY_ERROR, /* answer NEED_REPLY requests with the configured value */
	TFE_PEER_REPLY_NONE,  /* never answer (the back-end's wait must time out) */
	TFE_PEER_REPLY_DELAY, /* answer 0 after the configured delay */
};

/* Bytes of each request payload kept in a record. */
#define TFE_PEER_PAYLOAD_MAX 64u

/*
 * One recorded request. @fd is the first fd it carried (-1 if none),
 * still OWNED by the peer until tfe_peer_destroy(): dup() it to keep it.
 * Extra fds are closed on arrival and only counted.
 */
struct tfe_peer_record {
	uint32_t request, flags, size;
	uint8_t payload[TFE_PEER_PAYLOAD_MAX];
	int fd;
	unsigned nfds;
	bool replied;
	uint64_t reply_value;
};

struct tfe_peer;

/* Serve the channel socket @fd; ownership passes to the peer on success AND failure. */
int tfe_peer_new(int fd, struct tfe_peer **out);
/* Stops the thread, closes the socket and every recorded fd. NULL ok. */
void tfe_peer_destroy(struct tfe_peer *p);

/* Serve in a background thread until destroy or the back-end closes the channel. */
int tfe_peer_start_thread(struct tfe_peer *p);
/*
 * Without a thread: wait up to @timeout_ms for one request and handle it.
 * 1 handled, 0 timed out, -EPIPE when the back-end closed, or -errno.
 */
int tfe_peer_dispatch(struct tfe_peer *p, int timeout_ms);

/*
 * How to answer @request (0 = every request without its own setting).
 * @value: the status for TFE_PEER_REPLY_ERROR; @delay_ms for DELAY.
 */
void tfe_peer_set_reply(struct tfe_peer *p, uint32_t request, enum tfe_peer_reply_mode mode,
                        uint64_t value, int delay_ms);

/*
 * Answer every request, NEED_REPLY or not, as crosvm's pre-2025-12
 * front-end did for its SHMEM_MAP/UNMAP (1000/1001). Off by default.
 */
void tfe_peer_set_always_reply(struct tfe_peer *p, bool on);

/* Requests recorded so far. */
unsigned tfe_peer_count(struct tfe_peer *p);
/* Copy record @i (0-based). Returns 0 or -ENOENT. */
int tfe_peer_get(struct tfe_peer *p, unsigned i, struct tfe_peer_record *out);
/* Number of recorded requests with id @request. */
unsigned tfe_peer_count_request(struct tfe_peer *p, uint32_t request);
/*
 * Wait until at least @n requests were recorded (threaded peers; without a
 * thread this dispatches). 0, or -ETIMEDOUT after @timeout_ms.
 */
int tfe_peer_wait_count(struct tfe_peer *p, unsigned n, int timeout_ms);
/* True once the back-end closed its end of the channel. */
bool tfe_peer_closed(struct tfe_peer *p);

#ifdef __cplusplus
}
#endif

#endif
