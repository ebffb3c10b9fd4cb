/* SPDX-License-Identifier: MIT */
/*
 * gpu-internal.h - state shared by the files of the virtio-gpu device model.
 *
 * Not part of the daemon's contract (that is ../gpu.h). Unit tests and
 * fuzzers include it for the direct entry points at the bottom, which run
 * commands from flat buffers without virtqueues.
 */
#ifndef VGS_GPU_INTERNAL_H
#define VGS_GPU_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <vshm/log.h>
#include <vshm/memory.h>
#include <vshm/virtqueue.h>
#include <vshm-proto/virtio-gpu.h>

#include "../gpu.h"
#include "../image.h"

/* Largest width/height of a 2D resource; keeps stride and sizes far from 32-bit overflow. */
#define VGS_MAX_DIM 16384
/* Display sinks attached at once (QEMU display + a few vshm consumers). */
#define VGS_MAX_SINKS 8
/* Biggest response body the 2D device writes (GET_EDID). */
#define VGS_MAX_RESP sizeof(struct virtio_gpu_resp_edid)

/*
 * Host images one 2D resource may have at once (the current one and its
 * spares), and how long an unused spare is kept.
 */
#define VGS_POOL_MAX     3
#define VGS_POOL_IDLE_NS (2000ull * 1000 * 1000)

/* A resource's spare images (image_pool.c); each holds one reference. */
struct vgs_image_pool {
	struct vgs_image *spare[VGS_POOL_MAX - 1];
	/* when it stopped being the current image (a warm spare: when it was made) */
	uint64_t retired_ns[VGS_POOL_MAX - 1];
	unsigned n;
};

/* Resource id 0 means "none" everywhere in the protocol. */
struct vgs_resource {
	uint32_t id;
	uint32_t format, width, height;
	struct vgs_image *image;    /* the host copy; one reference held here */
	uint64_t host_bytes;        /* charged against limits.max_host_bytes (spares included) */
	struct vgs_image_pool pool; /* 2D only: images consumers still read */

	/* Guest backing as the driver described it (ATTACH_BACKING). */
	struct virtio_gpu_mem_entry *entries; /* host-endian copies */
	uint32_t nr_entries;
	uint64_t backing_bytes;

	/*
	 * The backing translated to host pointers, valid only for memory table
	 * @iov_mem at generation @iov_gen; re-translated on the next transfer
	 * after any table change so a remap never leaves a stale pointer.
	 */
	struct iovec *iov;
	uint64_t *iov_start; /* byte offset of iov[i] within the backing */
	unsigned iov_num, iov_cap;
	const struct vshm_mem *iov_mem;
	uint64_t iov_gen;
	bool iov_valid;

	bool has_uuid;
	uint8_t uuid[16];

	/* Blob resources (blob.c); blob_mem 0 = a 2D resource (image != NULL). */
	uint32_t blob_mem, blob_flags;
	uint64_t blob_size;
	struct vgs_hostmem *hostmem; /* HOST3D in 2D mode: the host-visible memfd */
	bool mapped;                 /* RESOURCE_MAP_BLOB'd into the host-visible region */
	uint64_t map_offset, map_len;

	struct vgs_resource *hnext; /* hash chain */
};

struct vgs_scanout {
	/* Mode offered to the guest (GET_DISPLAY_INFO / EDID). */
	bool mode_enabled;
	uint32_t mode_width, mode_height;
	/* What the guest shows (SET_SCANOUT). */
	struct vgs_resource *resource; /* NULL = disabled */
	struct vgs_rect rect;
	/* SET_SCANOUT_BLOB (blob.c): what sinks see instead of resource->image. */
	struct vgs_scanout_blob *blob; /* NULL for 2D scanouts */
};

struct vgs_ctrl_req;
typedef void (*vgs_ctrl_done_fn)(void *data, size_t written);

/* One control command from pop (or a direct call) to its response. */
struct vgs_ctrl_req {
	struct vshm_vq *vq;         /* NULL for direct requests */
	struct vshm_vq_elem *elem;  /* owned until pushed */
	const struct iovec *out_sg; /* request bytes (driver -> device) */
	const struct iovec *in_sg;  /* response buffer (device -> driver) */
	unsigned out_num, in_num;
	size_t out_bytes, in_bytes;
	struct iovec direct_out, direct_in;
	vgs_ctrl_done_fn done; /* direct requests completed asynchronously */
	void *done_data;

	/* Decoded header (host-endian). */
	uint32_t type, flags, ctx_id;
	uint64_t fence_id;
	uint8_t ring_idx;

	struct vgs_query *query; /* outstanding display-sink query, if any */

	/* The request struct (header included), copied out of guest memory. */
	union {
		struct virtio_gpu_ctrl_hdr hdr;
		struct virtio_gpu_resource_create_2d create_2d;
		struct virtio_gpu_resource_unref unref;
		struct virtio_gpu_set_scanout set_scanout;
		struct virtio_gpu_resource_flush flush;
		struct virtio_gpu_transfer_to_host_2d transfer;
		struct virtio_gpu_resource_attach_backing attach;
		struct virtio_gpu_resource_detach_backing detach;
		struct virtio_gpu_get_capset_info capset_info;
		struct virtio_gpu_get_capset capset;
		struct virtio_gpu_cmd_get_edid edid;
		struct virtio_gpu_resource_assign_uuid uuid;
		struct virtio_gpu_resource_create_blob create_blob;
		struct virtio_gpu_set_scanout_blob scanout_blob;
		struct virtio_gpu_resource_map_blob map_blob;
		struct virtio_gpu_resource_unmap_blob unmap_blob;
		struct virtio_gpu_ctx_create ctx_create;
		struct virtio_gpu_ctx_resource ctx_resource;
	} cmd;

	/* Response body after the header; resp_len includes the header. */
	size_t resp_len;
	union {
		struct virtio_gpu_ctrl_hdr hdr;
		struct virtio_gpu_resp_display_info display_info;
		struct virtio_gpu_resp_capset_info capset_info;
		struct virtio_gpu_resp_edid edid;
		struct virtio_gpu_resp_resource_uuid uuid;
		struct virtio_gpu_resp_map_info map_info;
		uint8_t raw[VGS_MAX_RESP];
	} resp;
};

/* A question to a display sink; outlives its request if that is cancelled. */
struct vgs_query {
	struct vgs_gpu *gpu;
	struct vgs_ctrl_req *req; /* NULL once cancelled: the answer is dropped */
	uint32_t scanout_id;
	bool in_call;  /* the sink is still inside get_display_info/get_edid */
	bool answered; /* the callback ran during the call */
	uint32_t resp_type;
};

struct vgs_gpu {
	struct vgs_gpu_config cfg;
	struct vshm_vu_dev *dev;
	struct vshm_mem *test_mem; /* overrides the engine's table in tests */
	vgs_gpu_request_hook hook;
	void *hook_data;
	vgs_gpu_defer_fn defer;
	void *defer_data;
	bool defer_pending;

	uint64_t features; /* acked */
	uint32_t events_read;

	/* resource table: chained hash, power-of-two buckets */
	struct vgs_resource **buckets;
	uint32_t nbuckets;
	struct vgs_gpu_stats stats;

	struct vgs_scanout scanouts[VGS_MAX_SCANOUTS];

	struct vgs_display_sink sinks[VGS_MAX_SINKS];
	unsigned nsinks;

	/* control queue */
	struct vshm_vq *ctrlq;
	struct vgs_ctrl_req *inflight; /* waiting for a sink; the queue is paused */
	bool ctrl_busy, ctrl_again;

	/* cursor: pixels are copied at UPDATE_CURSOR so sinks see a stable shape */
	bool cursor_visible, cursor_shape; /* shown now / a shape was set */
	uint32_t cursor_scanout, cursor_x, cursor_y, cursor_hot_x, cursor_hot_y;
	uint32_t cursor_pixels[VGS_CURSOR_DIM * VGS_CURSOR_DIM];

	uint64_t uuid_key[2]; /* per-device secret so UUIDs are not guessable */

	/* Contexts and their fence timelines (ctx.c). */
	struct vgs_context *contexts;
	uint32_t ncontexts;

	struct vshm_ratelimit rl;
	uint64_t pool_trim_ns; /* last sweep for idle spare images (image_pool.c) */
	/* Spares allocated by vgs_pool_idle, after the responses (of stats.pool_allocs). */
	uint64_t pool_warm_allocs;
};

/* Marker a command handler returns when its response comes later. */
#define VGS_RESP_PENDING 0u

/* ---- resource.c ---- */
int vgs_res_table_init(struct vgs_gpu *gpu);
void vgs_res_table_fini(struct vgs_gpu *gpu);
struct vgs_resource *vgs_res_lookup(struct vgs_gpu *gpu, uint32_t id);
/* Returns a VIRTIO_GPU_RESP_* code. */
uint32_t vgs_res_create(struct vgs_gpu *gpu, uint32_t id, uint32_t format, uint32_t width,
                        uint32_t height);
void vgs_res_destroy(struct vgs_gpu *gpu, struct vgs_resource *res);
/* Add a resource built elsewhere (blobs): table, count, host_bytes. */
void vgs_res_insert(struct vgs_gpu *gpu, struct vgs_resource *res);
void vgs_res_destroy_all(struct vgs_gpu *gpu);
/* Takes ownership of @entries (malloc'd) on success. */
uint32_t vgs_res_attach_backing(struct vgs_gpu *gpu, struct vgs_resource *res,
                                struct virtio_gpu_mem_entry *entries, uint32_t n);
void vgs_res_detach_backing(struct vgs_resource *res);
/* Every byte of [addr, addr+len) is guest memory (len > 0, no wrap; may span regions). */
/*
 * The start SET_SCANOUT and SET_SCANOUT_BLOB share: the scanout id must be
 * valid, resource 0 disables the scanout, any other must exist. Returns 0
 * with *so and *res set to go on, else the response type to answer with.
 */
uint32_t vgs_scanout_begin(struct vgs_gpu *gpu, const char *cmd, uint32_t id, uint32_t res_id,
                           struct vgs_scanout **so, struct vgs_resource **res);
bool vgs_range_in_guest(const struct vshm_mem *mem, uint64_t addr, uint64_t len);
/* Copy @r (resource coordinates) from backing offset @offset into the image. */
uint32_t vgs_res_transfer(struct vgs_gpu *gpu, struct vgs_resource *res, const struct vgs_rect *r,
                          uint64_t offset);
/* True when @r lies inside the resource (overflow-safe). */
bool vgs_rect_inside(const struct vgs_rect *r, uint32_t width, uint32_t height);
struct vshm_mem *vgs_gpu_mem(struct vgs_gpu *gpu);

/* ---- image.c ---- */
/* Fault in every page of a fresh (all-zero) image, writable, so writes take no fault. */
/* Fault in up to @max_bytes more of a fresh image; true once all of it is. */
bool vgs_image_prefault(struct vgs_image *img, uint64_t max_bytes);

/* ---- image_pool.c: copy-on-write host images ---- */
/*
 * Before the device writes @r of a 2D resource: if a reader holds the
 * current image, move the resource to a spare (allocated if needed, the
 * old content copied unless @r covers everything). Never fails and never
 * waits: with every image held, the oldest held one is written (counted).
 * True when the image changed; call vgs_pool_changed() after writing.
 */
bool vgs_pool_prepare_write(struct vgs_gpu *gpu, struct vgs_resource *res,
                            const struct vgs_rect *r);
/* Tell the sinks showing @res that its image changed. */
void vgs_pool_changed(struct vgs_gpu *gpu, struct vgs_resource *res);
/* Free @res's unheld spares (all, or those idle since before @older_than_ns). */
void vgs_pool_trim(struct vgs_gpu *gpu, struct vgs_resource *res, uint64_t older_than_ns);
/* Memory pressure: free every unheld spare of every resource; bytes freed. */
uint64_t vgs_pool_reclaim_all(struct vgs_gpu *gpu);
/* Resource destruction: drop every spare (held ones live on with their holders). */
void vgs_pool_release(struct vgs_gpu *gpu, struct vgs_resource *res);
/*
 * Off the guest's path (ctrlq.c: after a batch's responses are pushed and
 * notified; direct requests: the caller): sweep idle spares, and give one
 * 2D resource a display reads (on a scanout, its image referenced by a sink
 * or any image of it held) a pre-faulted unheld spare if it has none, so
 * the next copy-on-write switch neither allocates nor faults. At most one
 * allocation per call, within VGS_POOL_MAX and the budget (never reclaims).
 */
void vgs_pool_idle(struct vgs_gpu *gpu);
/* End of a batch: run vgs_pool_idle now, or through the embedder's defer hook. */
void vgs_gpu_request_deferred(struct vgs_gpu *gpu);

/* ---- cmd_2d.c: handlers return a VIRTIO_GPU_RESP_* or VGS_RESP_PENDING ---- */
uint32_t vgs_cmd_get_display_info(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_resource_create_2d(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_resource_unref(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_set_scanout(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_resource_flush(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_transfer_to_host_2d(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_attach_backing(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_detach_backing(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_get_capset_info(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_get_capset(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_get_edid(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_assign_uuid(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
/* Detach a query from its request (reset/stop): the late answer is dropped. */
void vgs_query_cancel(struct vgs_ctrl_req *r);

/* ---- ctrlq.c ---- */
void vgs_ctrlq_process(struct vgs_gpu *gpu, struct vshm_vq *vq);
/* Finish an asynchronous request and resume the paused queue. */
void vgs_ctrl_complete(struct vgs_gpu *gpu, struct vgs_ctrl_req *r, uint32_t resp_type);
/* Queue stopping / reset: answer or drop the request held for a sink. */
void vgs_ctrl_abort_inflight(struct vgs_gpu *gpu, bool push);

/* ---- blob.c / cmd_blob.c: blob resources, SET_SCANOUT_BLOB, MAP_BLOB ---- */
uint32_t vgs_cmd_resource_create_blob(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_set_scanout_blob(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_resource_map_blob(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_resource_unmap_blob(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
/* RESOURCE_FLUSH of a blob resource (cmd_2d.c hands blobs over). */
uint32_t vgs_blob_flush(struct vgs_gpu *gpu, struct vgs_resource *res, const struct vgs_rect *r);
/* The image sinks see for scanout @so (blob image, else the 2D copy); NULL when disabled. */
struct vgs_image *vgs_scanout_image(const struct vgs_scanout *so);
/* Drop a scanout's blob state (2D SET_SCANOUT, disable, resource destroy). */
void vgs_scanout_blob_clear(struct vgs_gpu *gpu, struct vgs_scanout *so);
/* Blob part of vgs_res_destroy: unmap if still mapped, free the host memory. */
void vgs_blob_release(struct vgs_gpu *gpu, struct vgs_resource *res);
/* Forget every mapping without talking to the engine (reset: it dropped them; teardown). */
void vgs_blob_forget_mappings(struct vgs_gpu *gpu);

/* ---- ctx.c: contexts (no context types in 2D mode) and ring fence timelines ---- */
#define VGS_MAX_CONTEXTS 64
#define VGS_NUM_RINGS    64
uint32_t vgs_cmd_ctx_create(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_ctx_destroy(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_ctx_attach_resource(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
uint32_t vgs_cmd_ctx_detach_resource(struct vgs_gpu *gpu, struct vgs_ctrl_req *r);
/* Before running: a fence naming a ring must name a live context and a ring < 64. */
uint32_t vgs_ctx_check_ring(struct vgs_gpu *gpu, const struct vgs_ctrl_req *r);
/* A fence on (ctx, ring) completed: advance that timeline. */
void vgs_ctx_fence_done(struct vgs_gpu *gpu, const struct vgs_ctrl_req *r);
/* Last completed fence id on (ctx_id, ring); 0 when none or no such context. */
uint64_t vgs_ctx_ring_fence(const struct vgs_gpu *gpu, uint32_t ctx_id, uint32_t ring);
void vgs_ctx_reset(struct vgs_gpu *gpu);

/* ---- cursor.c ---- */
void vgs_cursorq_process(struct vgs_gpu *gpu, struct vshm_vq *vq);
/* One cursor command from @len bytes; false when malformed. */
bool vgs_cursor_command(struct vgs_gpu *gpu, const void *buf, size_t len);

/* ---- display.c: fan-out to sinks ---- */
void vgs_display_scanout(struct vgs_gpu *gpu, uint32_t scanout_id);
void vgs_display_flush(struct vgs_gpu *gpu, uint32_t scanout_id, const struct vgs_rect *damage);
void vgs_display_cursor_update(struct vgs_gpu *gpu, const uint32_t *pixels);
void vgs_display_cursor_move(struct vgs_gpu *gpu);

/* ---- edid.c ---- */
#define VGS_EDID_SIZE 128
/* A valid EDID 1.4 base block whose preferred timing is @width x @height at 60 Hz. */
void vgs_edid_generate(uint32_t width, uint32_t height, uint32_t serial,
                       uint8_t out[VGS_EDID_SIZE]);

/* ---- direct entry points for tests and fuzzers ---- */

/* Use @mem (borrowed) for backing translation instead of the engine's table. */
void vgs_gpu_set_test_mem(struct vgs_gpu *gpu, struct vshm_mem *mem);
/*
 * Run one control command from @req as if popped from the controlq; the
 * response goes to @resp. Returns the bytes written (0 when @resp_cap is
 * too small for the response) once the command is done, -EINPROGRESS when
 * it waits for a display sink (@done is called later with the byte count;
 * @resp must stay valid until then), -EBUSY while another command waits,
 * -ENOMEM.
 */
ssize_t vgs_gpu_ctrl_direct(struct vgs_gpu *gpu, const void *req, size_t req_len, void *resp,
                            size_t resp_cap, vgs_ctrl_done_fn done, void *done_data);
/* One cursorq command; false when it was malformed (still "returned"). */
bool vgs_gpu_cursor_direct(struct vgs_gpu *gpu, const void *req, size_t req_len);

/* Guest-triggered messages share one limiter per device. */
#define vgs_warn(gpu, ...) vshm_log_ratelimited(&(gpu)->rl, VSHM_LOG_WARN, __VA_ARGS__)

#endif
