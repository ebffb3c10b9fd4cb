/* SPDX-License-Identifier: MIT */
/*
 * vshm-proto/virtio-gpu.h - the virtio-gpu wire format (virtqueue side).
 *
 * This is vshm's single definition of the virtio-gpu device protocol:
 * command/response numbers, formats, feature bits, config space and every
 * request/response struct. Written from the virtio specification's GPU
 * device chapter; sizes are pinned with _Static_assert so a layout slip is
 * a build error, not a guest-visible bug.
 *
 * Every multi-byte field on the virtqueues is LITTLE-ENDIAN. The structs
 * use plain uintN_t fields (there is no le32 type in C11); convert with
 * le32toh()/htole32() and friends when reading or writing them. The layouts
 * need no packing: every field is naturally aligned.
 *
 * Do not include <linux/virtio_gpu.h> in the same translation unit: the
 * names below follow the specification and would collide.
 */
#ifndef VSHM_PROTO_VIRTIO_GPU_H
#define VSHM_PROTO_VIRTIO_GPU_H

#include <stdint.h>

/* Device id and virtqueues. */
#define VIRTIO_ID_GPU           16
#define VIRTIO_GPU_QUEUE_CTRL   0
#define VIRTIO_GPU_QUEUE_CURSOR 1

/* Feature bit numbers (use as 1ull << bit). */
#define VIRTIO_GPU_F_VIRGL          0
#define VIRTIO_GPU_F_EDID           1
#define VIRTIO_GPU_F_RESOURCE_UUID  2
#define VIRTIO_GPU_F_RESOURCE_BLOB  3
#define VIRTIO_GPU_F_CONTEXT_INIT   4
#define VIRTIO_GPU_F_BLOB_ALIGNMENT 5

/* Config space events. */
#define VIRTIO_GPU_EVENT_DISPLAY (1u << 0)

#define VIRTIO_GPU_MAX_SCANOUTS 16

/* Command and response types (struct virtio_gpu_ctrl_hdr.type). */
enum virtio_gpu_ctrl_type {
	/* 2D commands */
	VIRTIO_GPU_CMD_GET_DISPLAY_INFO = 0x0100,
	VIRTIO_GPU_CMD_RESOURCE_CREATE_2D = 0x0101,
	VIRTIO_GPU_CMD_RESOURCE_UNREF = 0x0102,
	VIRTIO_GPU_CMD_SET_SCANOUT = 0x0103,
	VIRTIO_GPU_CMD_RESOURCE_FLUSH = 0x0104,
	VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D = 0x0105,
	VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING = 0x0106,
	VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING = 0x0107,
	VIRTIO_GPU_CMD_GET_CAPSET_INFO = 0x0108,
	VIRTIO_GPU_CMD_GET_CAPSET = 0x0109,
	VIRTIO_GPU_CMD_GET_EDID = 0x010a,
	VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID = 0x010b,
	VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB = 0x010c,
	VIRTIO_GPU_CMD_SET_SCANOUT_BLOB = 0x010d,

	/* 3D commands */
	VIRTIO_GPU_CMD_CTX_CREATE = 0x0200,
	VIRTIO_GPU_CMD_CTX_DESTROY = 0x0201,
	VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE = 0x0202,
	VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE = 0x0203,
	VIRTIO_GPU_CMD_RESOURCE_CREATE_3D = 0x0204,
	VIRTIO_GPU_CMD_TRANSFER_TO_HOST_3D = 0x0205,
	VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D = 0x0206,
	VIRTIO_GPU_CMD_SUBMIT_3D = 0x0207,
	VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB = 0x0208,
	VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB = 0x0209,

	/* cursor commands (cursorq) */
	VIRTIO_GPU_CMD_UPDATE_CURSOR = 0x0300,
	VIRTIO_GPU_CMD_MOVE_CURSOR = 0x0301,

	/* success responses */
	VIRTIO_GPU_RESP_OK_NODATA = 0x1100,
	VIRTIO_GPU_RESP_OK_DISPLAY_INFO = 0x1101,
	VIRTIO_GPU_RESP_OK_CAPSET_INFO = 0x1102,
	VIRTIO_GPU_RESP_OK_CAPSET = 0x1103,
	VIRTIO_GPU_RESP_OK_EDID = 0x1104,
	VIRTIO_GPU_RESP_OK_RESOURCE_UUID = 0x1105,
	VIRTIO_GPU_RESP_OK_MAP_INFO = 0x1106,
	/* crosvm/ChromeOS only */
	VIRTIO_GPU_RESP_OK_RESOURCE_PLANE_INFO = 0x11ff,

	/* error responses */
	VIRTIO_GPU_RESP_ERR_UNSPEC = 0x1200,
	VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY = 0x1201,
	VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID = 0x1202,
	VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID = 0x1203,
	VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID = 0x1204,
	VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER = 0x1205,
};

/* struct virtio_gpu_ctrl_hdr.flags */
#define VIRTIO_GPU_FLAG_FENCE         (1u << 0)
#define VIRTIO_GPU_FLAG_INFO_RING_IDX (1u << 1)
/* crosvm only */
#define VIRTIO_GPU_FLAG_FENCE_HOST_SHAREABLE (1u << 2)

/* Formats; names give the byte order in memory (B8G8R8X8 = B,G,R,X). */
enum virtio_gpu_formats {
	VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM = 1,
	VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM = 2,
	VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM = 3,
	VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM = 4,
	VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM = 67,
	VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM = 68,
	VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM = 121,
	VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM = 134,
};

/* Blob resources. */
#define VIRTIO_GPU_BLOB_MEM_GUEST        1
#define VIRTIO_GPU_BLOB_MEM_HOST3D       2
#define VIRTIO_GPU_BLOB_MEM_HOST3D_GUEST 3

#define VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE     0x1
#define VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE    0x2
#define VIRTIO_GPU_BLOB_FLAG_USE_CROSS_DEVICE 0x4
/* crosvm only */
#define VIRTIO_GPU_BLOB_FLAG_CREATE_GUEST_HANDLE 0x8

#define VIRTIO_GPU_MAP_CACHE_MASK     0x0f
#define VIRTIO_GPU_MAP_CACHE_NONE     0
#define VIRTIO_GPU_MAP_CACHE_CACHED   1
#define VIRTIO_GPU_MAP_CACHE_UNCACHED 2
#define VIRTIO_GPU_MAP_CACHE_WC       3

#define VIRTIO_GPU_SHM_ID_UNDEFINED    0
#define VIRTIO_GPU_SHM_ID_HOST_VISIBLE 1

/* CTX_CREATE.context_init: the low byte is the capset id. */
#define VIRTIO_GPU_CONTEXT_INIT_CAPSET_ID_MASK 0x000000ffu

/* RESOURCE_CREATE_3D.flags */
#define VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP (1u << 0)

/* ---- config space ---- */

struct virtio_gpu_config {
	uint32_t events_read;  /* device sets, driver must not write */
	uint32_t events_clear; /* write-1-to-clear */
	uint32_t num_scanouts;
	uint32_t num_capsets;
};
/* Present only with VIRTIO_GPU_F_BLOB_ALIGNMENT, right after the above. */
#define VIRTIO_GPU_CONFIG_BLOB_ALIGNMENT_OFFSET 16

/* ---- common pieces ---- */

struct virtio_gpu_ctrl_hdr {
	uint32_t type;
	uint32_t flags;
	uint64_t fence_id;
	uint32_t ctx_id;
	uint8_t ring_idx; /* valid with VIRTIO_GPU_FLAG_INFO_RING_IDX */
	uint8_t padding[3];
};

struct virtio_gpu_rect {
	uint32_t x, y, width, height;
};

struct virtio_gpu_mem_entry {
	uint64_t addr;
	uint32_t length;
	uint32_t padding;
};

/* ---- 2D commands ---- */

struct virtio_gpu_display_one {
	struct virtio_gpu_rect r;
	uint32_t enabled;
	uint32_t flags;
};

struct virtio_gpu_resp_display_info {
	struct virtio_gpu_ctrl_hdr hdr;
	struct virtio_gpu_display_one pmodes[VIRTIO_GPU_MAX_SCANOUTS];
};

struct virtio_gpu_resource_create_2d {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t resource_id;
	uint32_t format;
	uint32_t width;
	uint32_t height;
};

struct virtio_gpu_resource_unref {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t resource_id;
	uint32_t padding;
};

struct virtio_gpu_set_scanout {
	struct virtio_gpu_ctrl_hdr hdr;
	struct virtio_gpu_rect r;
	uint32_t scanout_id;
	uint32_t resource_id; /* 0 disables the scanout */
};

struct virtio_gpu_resource_flush {
	struct virtio_gpu_ctrl_hdr hdr;
	struct virtio_gpu_rect r;
	uint32_t resource_id;
	uint32_t padding;
};

struct virtio_gpu_transfer_to_host_2d {
	struct virtio_gpu_ctrl_hdr hdr;
	struct virtio_gpu_rect r;
	uint64_t offset; /* byte offset of the rect's first pixel in the backing */
	uint32_t resource_id;
	uint32_t padding;
};

/* Followed by nr_entries struct virtio_gpu_mem_entry. */
struct virtio_gpu_resource_attach_backing {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t resource_id;
	uint32_t nr_entries;
};

struct virtio_gpu_resource_detach_backing {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t resource_id;
	uint32_t padding;
};

struct virtio_gpu_get_capset_info {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t capset_index;
	uint32_t padding;
};

struct virtio_gpu_resp_capset_info {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t capset_id;
	uint32_t capset_max_version;
	uint32_t capset_max_size;
	uint32_t padding;
};

struct virtio_gpu_get_capset {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t capset_id;
	uint32_t capset_version;
};

/* Followed by the capset data. */
struct virtio_gpu_resp_capset {
	struct virtio_gpu_ctrl_hdr hdr;
};

struct virtio_gpu_cmd_get_edid {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t scanout;
	uint32_t padding;
};

#define VIRTIO_GPU_EDID_MAX 1024

struct virtio_gpu_resp_edid {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t size;
	uint32_t padding;
	uint8_t edid[VIRTIO_GPU_EDID_MAX];
};

struct virtio_gpu_resource_assign_uuid {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t resource_id;
	uint32_t padding;
};

struct virtio_gpu_resp_resource_uuid {
	struct virtio_gpu_ctrl_hdr hdr;
	uint8_t uuid[16];
};

/* Followed by nr_entries struct virtio_gpu_mem_entry. */
struct virtio_gpu_resource_create_blob {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t resource_id;
	uint32_t blob_mem;
	uint32_t blob_flags;
	uint32_t nr_entries;
	uint64_t blob_id;
	uint64_t size;
};

struct virtio_gpu_set_scanout_blob {
	struct virtio_gpu_ctrl_hdr hdr;
	struct virtio_gpu_rect r;
	uint32_t scanout_id;
	uint32_t resource_id;
	uint32_t width;
	uint32_t height;
	uint32_t format;
	uint32_t padding;
	uint32_t strides[4];
	uint32_t offsets[4];
};

struct virtio_gpu_resource_map_blob {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t resource_id;
	uint32_t padding;
	uint64_t offset;
};

struct virtio_gpu_resp_map_info {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t map_info;
	uint32_t padding;
};

struct virtio_gpu_resource_unmap_blob {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t resource_id;
	uint32_t padding;
};

/* crosvm/ChromeOS only */
struct virtio_gpu_resp_resource_plane_info {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t count;
	uint32_t padding;
	uint64_t format_modifier;
	uint32_t strides[4];
	uint32_t offsets[4];
};

/* ---- 3D commands ---- */

struct virtio_gpu_ctx_create {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t nlen;
	uint32_t context_init;
	char debug_name[64];
};

struct virtio_gpu_ctx_destroy {
	struct virtio_gpu_ctrl_hdr hdr;
};

struct virtio_gpu_ctx_resource {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t resource_id;
	uint32_t padding;
};

struct virtio_gpu_resource_create_3d {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t resource_id;
	uint32_t target;
	uint32_t format;
	uint32_t bind;
	uint32_t width;
	uint32_t height;
	uint32_t depth;
	uint32_t array_size;
	uint32_t last_level;
	uint32_t nr_samples;
	uint32_t flags;
	uint32_t padding;
};

struct virtio_gpu_box {
	uint32_t x, y, z, w, h, d;
};

struct virtio_gpu_transfer_host_3d {
	struct virtio_gpu_ctrl_hdr hdr;
	struct virtio_gpu_box box;
	uint64_t offset;
	uint32_t resource_id;
	uint32_t level;
	uint32_t stride;
	uint32_t layer_stride;
};

/* Followed by @size bytes of command stream. */
struct virtio_gpu_cmd_submit {
	struct virtio_gpu_ctrl_hdr hdr;
	uint32_t size;
	uint32_t padding; /* crosvm: num_in_fences */
};

/* ---- cursor queue ---- */

struct virtio_gpu_cursor_pos {
	uint32_t scanout_id;
	uint32_t x;
	uint32_t y;
	uint32_t padding;
};

/* UPDATE_CURSOR and MOVE_CURSOR; MOVE uses only pos. No response body. */
struct virtio_gpu_update_cursor {
	struct virtio_gpu_ctrl_hdr hdr;
	struct virtio_gpu_cursor_pos pos;
	uint32_t resource_id;
	uint32_t hot_x;
	uint32_t hot_y;
	uint32_t padding;
};

/* Sizes from the specification; a mismatch here is a wire-format bug. */
_Static_assert(sizeof(struct virtio_gpu_config) == 16, "virtio_gpu_config");
_Static_assert(sizeof(struct virtio_gpu_ctrl_hdr) == 24, "virtio_gpu_ctrl_hdr");
_Static_assert(sizeof(struct virtio_gpu_rect) == 16, "virtio_gpu_rect");
_Static_assert(sizeof(struct virtio_gpu_mem_entry) == 16, "virtio_gpu_mem_entry");
_Static_assert(sizeof(struct virtio_gpu_display_one) == 24, "virtio_gpu_display_one");
_Static_assert(sizeof(struct virtio_gpu_resp_display_info) == 408, "resp_display_info");
_Static_assert(sizeof(struct virtio_gpu_resource_create_2d) == 40, "resource_create_2d");
_Static_assert(sizeof(struct virtio_gpu_resource_unref) == 32, "resource_unref");
_Static_assert(sizeof(struct virtio_gpu_set_scanout) == 48, "set_scanout");
_Static_assert(sizeof(struct virtio_gpu_resource_flush) == 48, "resource_flush");
_Static_assert(sizeof(struct virtio_gpu_transfer_to_host_2d) == 56, "transfer_to_host_2d");
_Static_assert(sizeof(struct virtio_gpu_resource_attach_backing) == 32, "attach_backing");
_Static_assert(sizeof(struct virtio_gpu_resource_detach_backing) == 32, "detach_backing");
_Static_assert(sizeof(struct virtio_gpu_get_capset_info) == 32, "get_capset_info");
_Static_assert(sizeof(struct virtio_gpu_resp_capset_info) == 40, "resp_capset_info");
_Static_assert(sizeof(struct virtio_gpu_get_capset) == 32, "get_capset");
_Static_assert(sizeof(struct virtio_gpu_resp_capset) == 24, "resp_capset");
_Static_assert(sizeof(struct virtio_gpu_cmd_get_edid) == 32, "cmd_get_edid");
_Static_assert(sizeof(struct virtio_gpu_resp_edid) == 1056, "resp_edid");
_Static_assert(sizeof(struct virtio_gpu_resource_assign_uuid) == 32, "assign_uuid");
_Static_assert(sizeof(struct virtio_gpu_resp_resource_uuid) == 40, "resp_resource_uuid");
_Static_assert(sizeof(struct virtio_gpu_resource_create_blob) == 56, "resource_create_blob");
_Static_assert(sizeof(struct virtio_gpu_set_scanout_blob) == 96, "set_scanout_blob");
_Static_assert(sizeof(struct virtio_gpu_resource_map_blob) == 40, "resource_map_blob");
_Static_assert(sizeof(struct virtio_gpu_resp_map_info) == 32, "resp_map_info");
_Static_assert(sizeof(struct virtio_gpu_resource_unmap_blob) == 32, "resource_unmap_blob");
_Static_assert(sizeof(struct virtio_gpu_resp_resource_plane_info) == 72, "resp_plane_info");
_Static_assert(sizeof(struct virtio_gpu_ctx_create) == 96, "ctx_create");
_Static_assert(sizeof(struct virtio_gpu_ctx_destroy) == 24, "ctx_destroy");
_Static_assert(sizeof(struct virtio_gpu_ctx_resource) == 32, "ctx_resource");
_Static_assert(sizeof(struct virtio_gpu_resource_create_3d) == 72, "resource_create_3d");
_Static_assert(sizeof(struct virtio_gpu_box) == 24, "box");
_Static_assert(sizeof(struct virtio_gpu_transfer_host_3d) == 72, "transfer_host_3d");
_Static_assert(sizeof(struct virtio_gpu_cmd_submit) == 32, "cmd_submit");
_Static_assert(sizeof(struct virtio_gpu_cursor_pos) == 16, "cursor_pos");
_Static_assert(sizeof(struct virtio_gpu_update_cursor) == 56, "update_cursor");

#endif
