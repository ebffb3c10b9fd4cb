/* SPDX-License-Identifier: MIT */
/*
 * gpu-driver.h - the guest virtio-gpu driver side, for tests and benchmarks.
 *
 * A struct tgd is a small Linux-virtio_gpu-like driver on top of the test
 * front-end: it owns fake guest memory (testfe_mem), the control and cursor
 * split rings (testfe_vring) and a vhost-user connection (tfe). It brings
 * the back-end up in QEMU's message order (protocols.md §1.7), with a hook
 * where QEMU sends VHOST_USER_GPU_SET_SOCKET, builds virtio-gpu commands
 * (vshm-proto/virtio-gpu.h), submits them synchronously or pipelined (many
 * in flight, completions reported through callbacks with timestamps) and
 * manages 2D resources whose backing lives in guest memory.
 *
 * Each in-flight command owns one slot: a request buffer and a response
 * buffer in guest memory, chained as (readable request[, readable extra],
 * writable response), one ring descriptor when INDIRECT_DESC is negotiated.
 *
 * Single-threaded: call everything from one thread. Errors are 0 or -errno;
 * a virtio-gpu error response is -EPROTO with the response type available
 * from tgd_last_resp_type(). Every wait is bounded by the handle's timeout.
 */
#ifndef VSHM_TESTS_GPU_DRIVER_H
#define VSHM_TESTS_GPU_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include <vshm-proto/virtio-gpu.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tfe;
struct testfe_mem;
struct tgd;

#define TGD_QUEUE_CTRL   0
#define TGD_QUEUE_CURSOR 1
/* Request bytes a slot holds (the largest fixed command is 96 bytes). */
#define TGD_REQ_MAX 512u
/* Response bytes a slot holds (GET_EDID's is the largest: 1056). */
#define TGD_RESP_MAX 2048u

struct tgd_config {
	uint64_t mem_size;          /* guest memory in bytes (default 64 MiB) */
	unsigned mem_regions;       /* split into this many regions (default 1) */
	unsigned ctrl_queue_size;   /* power of two (default 256) */
	unsigned cursor_queue_size; /* power of two (default 16) */
	int timeout_ms;             /* every wait (default 5000) */
};
void tgd_config_defaults(struct tgd_config *cfg);

/* Create the guest side (memory, rings). Nothing is connected yet. @cfg NULL = defaults. */
int tgd_new(const struct tgd_config *cfg, struct tgd **out);
/* Closes the connection, frees rings and memory. NULL ok. */
void tgd_destroy(struct tgd *g);

/* Connect to a back-end listening at @path (retrying until the timeout: it may be starting). */
int tgd_connect(struct tgd *g, const char *path);
/* Use the already-connected socket @fd (ownership passes to @g, also on failure). */
int tgd_attach_fd(struct tgd *g, int fd);
struct tfe *tgd_tfe(struct tgd *g);
struct testfe_mem *tgd_mem(struct tgd *g);

/*
 * QEMU's bring-up. @display_hook (may be NULL) runs where QEMU sends
 * GPU_SET_SOCKET: after init and GET_CONFIG, first thing at DRIVER_OK.
 */
typedef int (*tgd_display_hook)(void *data, struct tfe *fe);
struct tgd_bringup {
	tgd_display_hook display_hook;
	void *display_data;
	/* Virtio features to leave un-acked (on top of what a Linux guest never acks). */
	uint64_t features_clear;
	/* Protocol features to leave un-acked. */
	uint64_t protocol_clear;
	bool no_need_reply; /* QEMU sets NEED_REPLY where REPLY_ACK allows; this turns it off */
	/* Virtio device bits to ack on top of the Linux 2D set when offered (RESOURCE_BLOB). */
	uint64_t features_add;
	/* Protocol bits to ack on top of the VMM's own set when offered (SHMEM, crosvm's 31). */
	uint64_t protocol_add;
};
int tgd_bringup_qemu(struct tgd *g, const struct tgd_bringup *b);
/*
 * crosvm's bring-up (VhostUserFrontend::new, then activate; protocols.md
 * §1.7): SET_OWNER, features, protocol features (CONFIG|MQ|BACKEND_REQ|
 * REPLY_ACK|SHMEM plus @b->protocol_add, as offered), the back-end channel
 * (a threaded tfe_peer, see tfe_get_backend_peer()), GET_QUEUE_NUM, the
 * shared memory regions (GET_SHMEM_CONFIG with SHMEM, else crosvm's
 * GET_SHARED_MEMORY_REGIONS 1004 with bit 31) into @shmem_sizes (may be
 * NULL), then SET_FEATURES, SET_MEM_TABLE and the rings in crosvm's order,
 * no NEED_REPLY, no GPU_SET_SOCKET, no SET_STATUS. @b->display_hook is
 * ignored.
 */
int tgd_bringup_crosvm(struct tgd *g, const struct tgd_bringup *b, uint64_t shmem_sizes[256]);
/* Negotiated virtio / protocol features (after bring-up). */
uint64_t tgd_features(const struct tgd *g);
uint64_t tgd_protocol_features(const struct tgd *g);
/* The device config read during bring-up. */
void tgd_device_config(const struct tgd *g, struct virtio_gpu_config *out);

/* --- asynchronous submission -------------------------------------------- */

/* What a completion reports. @resp points into guest memory, valid during the callback. */
struct tgd_done {
	uint64_t seq; /* from tgd_submit() */
	unsigned queue;
	uint32_t cmd_type;  /* request hdr.type */
	uint32_t resp_type; /* response hdr.type (0 for cursorq commands) */
	uint32_t resp_flags;
	uint64_t resp_fence_id;
	const void *resp;
	uint32_t resp_len;           /* bytes the device says it wrote */
	uint64_t submit_ns, done_ns; /* CLOCK_MONOTONIC: added to the ring / seen used */
};
/* Runs inside tgd_process(); it must not submit (the slot is still in use). */
typedef void (*tgd_done_fn)(void *data, const struct tgd_done *d);

/*
 * Submit one command on @queue: @req (@req_len <= TGD_REQ_MAX) is copied
 * into a slot; @extra (may be NULL) is a second readable buffer already in
 * guest memory (ATTACH_BACKING's entry array); @resp_len (<= TGD_RESP_MAX,
 * 0 = no response buffer, as cursor commands) is the writable part. When
 * the ring is full this first processes completions (waiting up to the
 * timeout). The queue is kicked unless batching is on. *seq (may be NULL)
 * identifies the command in its completion.
 */
int tgd_submit(struct tgd *g, unsigned queue, const void *req, uint32_t req_len, uint64_t extra_gpa,
               uint32_t extra_len, uint32_t resp_len, tgd_done_fn done, void *data, uint64_t *seq);
/* Batching: while on, tgd_submit() does not kick; tgd_kick() does it once. */
void tgd_set_batch(struct tgd *g, bool on);
int tgd_kick(struct tgd *g, unsigned queue);
/*
 * Handle completions: wait up to @timeout_ms (< 0: the handle's timeout, 0:
 * don't wait) for at least one, then handle every one available. Returns
 * how many were handled, or -ETIMEDOUT / -errno.
 */
int tgd_process(struct tgd *g, int timeout_ms);
/* Process until command @seq completed. 0 or -ETIMEDOUT. */
int tgd_wait_seq(struct tgd *g, uint64_t seq, int timeout_ms);
/* Process until nothing is in flight. */
int tgd_drain(struct tgd *g, int timeout_ms);
unsigned tgd_in_flight(const struct tgd *g, unsigned queue);
/* Next fence id (strictly increasing, like the Linux driver's fence sequence). */
uint64_t tgd_next_fence(struct tgd *g);
/* A control header with @type (and FENCE + a new fence id when @fence). */
void tgd_hdr(struct tgd *g, struct virtio_gpu_ctrl_hdr *h, uint32_t type, bool fence);

/* --- synchronous commands --------------------------------------------------- */

/*
 * Submit and wait; copy at most @resp_cap bytes of the response to @resp
 * (may be NULL). 0 when the response type is an OK one, -EPROTO otherwise.
 */
int tgd_cmd(struct tgd *g, unsigned queue, const void *req, uint32_t req_len, uint64_t extra_gpa,
            uint32_t extra_len, void *resp, uint32_t resp_cap);
uint32_t tgd_last_resp_type(const struct tgd *g);

int tgd_get_display_info(struct tgd *g, struct virtio_gpu_resp_display_info *out);
int tgd_get_edid(struct tgd *g, uint32_t scanout, struct virtio_gpu_resp_edid *out);
int tgd_resource_create_2d(struct tgd *g, uint32_t id, uint32_t format, uint32_t w, uint32_t h);
int tgd_resource_unref(struct tgd *g, uint32_t id);
/* @entries is copied into guest memory (a second readable buffer, as Linux sends it). */
int tgd_attach_backing(struct tgd *g, uint32_t id, const struct virtio_gpu_mem_entry *entries,
                       uint32_t n);
int tgd_detach_backing(struct tgd *g, uint32_t id);
int tgd_set_scanout(struct tgd *g, uint32_t scanout, uint32_t id, uint32_t x, uint32_t y,
                    uint32_t w, uint32_t h);
int tgd_transfer_to_host_2d(struct tgd *g, uint32_t id, uint32_t x, uint32_t y, uint32_t w,
                            uint32_t h, uint64_t offset, bool fence);
int tgd_resource_flush(struct tgd *g, uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                       bool fence);
/* Cursor queue (no response body; waits until the device returned the buffer). */
int tgd_update_cursor(struct tgd *g, uint32_t scanout, uint32_t x, uint32_t y, uint32_t id,
                      uint32_t hot_x, uint32_t hot_y);
/*
 * Linux sends MOVE_CURSOR with the current cursor resource id; id 0 means
 * "hidden" to QEMU's back-end.
 */
int tgd_move_cursor(struct tgd *g, uint32_t scanout, uint32_t x, uint32_t y, uint32_t id);

/* Asynchronous builders of the hot-path commands (see tgd_submit()). */
int tgd_transfer_async(struct tgd *g, uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                       uint64_t offset, bool fence, tgd_done_fn done, void *data, uint64_t *seq);
int tgd_flush_async(struct tgd *g, uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                    bool fence, tgd_done_fn done, void *data, uint64_t *seq);
int tgd_get_display_info_async(struct tgd *g, tgd_done_fn done, void *data, uint64_t *seq);

/* --- resources with guest backing -------------------------------------------- */

struct tgd_resource {
	uint32_t id, format, width, height;
	uint32_t stride;  /* width * 4 */
	uint64_t gpa;     /* backing start (contiguous in guest memory) */
	uint32_t *pixels; /* host view of the backing */
	uint64_t size;
};

/*
 * Allocate page-aligned backing in guest memory, RESOURCE_CREATE_2D and
 * ATTACH_BACKING it described as @chunks mem entries (>= 1; several entries
 * exercise the scatter path). 4-byte formats only.
 */
int tgd_resource_new(struct tgd *g, uint32_t id, uint32_t format, uint32_t w, uint32_t h,
                     unsigned chunks, struct tgd_resource *out);

/* Patterns (pixel values as stored: B8G8R8X8 little-endian = 0xXXRRGGBB). */
enum tgd_pattern {
	TGD_PATTERN_SOLID, /* every pixel = seed */
	TGD_PATTERN_BARS,  /* the e2e pattern: 8 bars over 3/4, RGB ramp below */
	TGD_PATTERN_HASH,  /* a per-pixel hash of (x, y, seed): catches any misplaced pixel */
};
/* The pattern value at (x, y) of a w x h image; X/A byte is always 0xff. */
uint32_t tgd_pattern_pixel(enum tgd_pattern p, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                           uint32_t seed);
/* Fill the whole backing, or a rect of it. */
void tgd_fill(const struct tgd_resource *r, enum tgd_pattern p, uint32_t seed);
void tgd_fill_rect(const struct tgd_resource *r, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                   enum tgd_pattern p, uint32_t seed);

#ifdef __cplusplus
}
#endif

#endif
