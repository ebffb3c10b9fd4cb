/* SPDX-License-Identifier: MIT */
/*
 * vshm/vhost_user.h - the vhost-user backend engine.
 *
 * A vshm_vu_dev speaks the back-end side of the vhost-user protocol on one
 * front-end connection at a time (QEMU, crosvm, cloud-hypervisor): feature
 * and protocol-feature negotiation, the memory table, vring setup and the
 * start/stop/enable rules of the vhost-user specification, config space,
 * status, reset, and the back-end request channel. It knows nothing about
 * what the device is: a device plugs in through struct vshm_vu_device_ops.
 *
 * Every message from the front-end is hostile. A malformed message gets an
 * error reply (when the front-end asked for one) or closes the connection;
 * it never aborts the process. Every fd received is either handed on (and
 * the header says who owns it) or closed.
 */
#ifndef VSHM_VHOST_USER_H
#define VSHM_VHOST_USER_H

#include <stdbool.h>
#include <stdint.h>

#include <vshm/loop.h>
#include <vshm/memory.h>
#include <vshm/virtqueue.h>

#ifdef __cplusplus
extern "C" {
#endif

/* vhost-user protocol feature bits (GET/SET_PROTOCOL_FEATURES), as masks. */
#define VSHM_VU_PF_MQ                  (1ull << 0)
#define VSHM_VU_PF_REPLY_ACK           (1ull << 3)
#define VSHM_VU_PF_BACKEND_REQ         (1ull << 5)
#define VSHM_VU_PF_CONFIG              (1ull << 9)
#define VSHM_VU_PF_BACKEND_SEND_FD     (1ull << 10)
#define VSHM_VU_PF_RESET_DEVICE        (1ull << 13)
#define VSHM_VU_PF_CONFIGURE_MEM_SLOTS (1ull << 15)
#define VSHM_VU_PF_STATUS              (1ull << 16)
#define VSHM_VU_PF_SHMEM               (1ull << 22)
/* crosvm's pre-2025-12 non-standard shared memory regions bit. */
#define VSHM_VU_PF_CROSVM_SHMEM_REGIONS (1ull << 31)

/* The engine implements exactly these; others are never offered. */
#define VSHM_VU_PF_SUPPORTED                                                                       \
	(VSHM_VU_PF_MQ | VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_BACKEND_REQ | VSHM_VU_PF_CONFIG |       \
	 VSHM_VU_PF_BACKEND_SEND_FD | VSHM_VU_PF_RESET_DEVICE | VSHM_VU_PF_CONFIGURE_MEM_SLOTS |   \
	 VSHM_VU_PF_STATUS)

/* virtio transport feature bits the engine itself implements and offers. */
#define VSHM_VIRTIO_F_NOTIFY_ON_EMPTY (1ull << 24)
#define VSHM_VIRTIO_F_INDIRECT_DESC   (1ull << 28)
#define VSHM_VIRTIO_F_EVENT_IDX       (1ull << 29)
#define VSHM_VU_F_PROTOCOL_FEATURES   (1ull << 30)
#define VSHM_VIRTIO_F_VERSION_1       (1ull << 32)

struct vshm_vu_dev;

/*
 * Device callbacks. @data is the pointer given to vshm_vu_dev_new().
 * Callbacks may be NULL unless marked required. They run from the
 * embedder's loop, inside vshm_vu_dev's watch callbacks.
 */
struct vshm_vu_device_ops {
	/* Required. Device-specific virtio feature bits (0..23) to offer. */
	uint64_t (*get_features)(void *data);
	/* The acked feature set (device bits and transport bits). 0 or -errno. */
	int (*set_features)(void *data, uint64_t features);
	/* Fill @size bytes of config space at @offset. 0 or -errno. */
	int (*get_config)(void *data, uint32_t offset, void *buf, uint32_t size);
	/* Front-end wrote config space (@flags as received). 0 or -errno. */
	int (*set_config)(void *data, uint32_t offset, const void *buf, uint32_t size,
	                  uint32_t flags);
	/* Required. @vq has new available buffers (kick, or just started). */
	void (*queue_kick)(void *data, struct vshm_vq *vq);
	/*
	 * @vq was started (true) or is being stopped (false, GET_VRING_BASE,
	 * reset, disconnect). On stop the device must push or free every
	 * element it holds from @vq before returning: the ring is gone after.
	 */
	void (*queue_state)(void *data, struct vshm_vq *vq, bool started);
	/*
	 * A request id the engine does not handle (e.g. QEMU's
	 * VHOST_USER_GPU_SET_SOCKET = 33). The callee OWNS @fds[0..nfds) and
	 * must close what it does not keep. Return 0 when handled, -ENOTSUP
	 * when unknown (the engine then treats it as an unknown request), or
	 * another -errno (reported as failure when a reply was asked for).
	 */
	int (*device_request)(void *data, uint32_t request, uint32_t flags, const void *payload,
	                      uint32_t size, int *fds, unsigned nfds);
	/* Drop all device state (RESET_DEVICE, RESET_OWNER, disconnect). */
	void (*reset)(void *data);
	/* SET_STATUS value (virtio status byte). */
	void (*set_status)(void *data, uint8_t status);
	/* The front-end connection closed; the engine has already reset. */
	void (*disconnected)(void *data);
	/*
	 * VIRTIO shared memory regions for GET_SHMEM_CONFIG: fill sizes[id]
	 * (256 entries, 0 = unused). Return 0 or -errno. NULL: no regions.
	 */
	int (*get_shmem_config)(void *data, uint64_t sizes[256]);
};

struct vshm_vu_config {
	unsigned num_queues;          /* 1..64 */
	uint16_t max_queue_size;      /* largest SET_VRING_NUM accepted, power of two */
	uint64_t protocol_features;   /* offered; masked with VSHM_VU_PF_SUPPORTED (+SHMEM if the
	                                 device has regions) */
	unsigned max_mem_slots;       /* advertised by GET_MAX_MEM_SLOTS, <= VSHM_MEM_MAX_SLOTS */
	uint32_t config_size;         /* bytes of device config space */
	int backend_reply_timeout_ms; /* bound on waits for back-end channel replies */
	/*
	 * Also offer crosvm's pre-2025-12 non-standard shared memory bit
	 * (VSHM_VU_PF_CROSVM_SHMEM_REGIONS, 31) when the device has regions, so
	 * that a crosvm front-end that only knows bit 31 can map. Off by
	 * default: bit 31 is not part of the standard.
	 */
	bool shmem_crosvm_legacy;
};

/* Fill @cfg with defaults: 2 queues, 1024 entries, all supported features,
 * 32 slots, no config space, 1000 ms reply timeout. */
void vshm_vu_config_defaults(struct vshm_vu_config *cfg);

/*
 * Create an engine. @loop is used to watch the connection and kick fds.
 * Returns 0 or -errno.
 */
int vshm_vu_dev_new(const struct vshm_vu_config *cfg, const struct vshm_vu_device_ops *ops,
                    void *data, const struct vshm_loop *loop, struct vshm_vu_dev **out);
/* Closes the connection and all fds. NULL ok. */
void vshm_vu_dev_destroy(struct vshm_vu_dev *dev);

/*
 * Serve the connected front-end socket @fd. Ownership of @fd passes to the
 * engine on success AND failure. -EBUSY when a front-end is already served.
 */
int vshm_vu_dev_connect(struct vshm_vu_dev *dev, int fd);
/* True while a front-end connection is open. */
bool vshm_vu_dev_is_connected(const struct vshm_vu_dev *dev);
/* Close the front-end connection (as if the peer closed it). */
void vshm_vu_dev_disconnect(struct vshm_vu_dev *dev);

unsigned vshm_vu_dev_num_queues(const struct vshm_vu_dev *dev);
struct vshm_vq *vshm_vu_dev_get_queue(struct vshm_vu_dev *dev, unsigned index);
/* The guest memory table (owned by the engine). */
struct vshm_mem *vshm_vu_dev_get_mem(struct vshm_vu_dev *dev);
/* Negotiated virtio features / protocol features. */
uint64_t vshm_vu_dev_features(const struct vshm_vu_dev *dev);
uint64_t vshm_vu_dev_protocol_features(const struct vshm_vu_dev *dev);

/*
 * Send a back-end request (SHMEM_MAP, CONFIG_CHANGE_MSG, ...) on the
 * channel from SET_BACKEND_REQ_FD. @fds are BORROWED. When @need_reply and
 * REPLY_ACK is negotiated, NEED_REPLY is set and the call waits at most the
 * configured timeout for the u64 reply, stored in *reply (0 = success).
 * Returns 0, -ENOTCONN (no channel), -EPROTO (fds without BACKEND_SEND_FD
 * negotiated, or a malformed reply), -ETIMEDOUT, or -errno.
 */
int vshm_vu_dev_backend_request(struct vshm_vu_dev *dev, uint32_t request, const void *payload,
                                uint32_t size, const int *fds, unsigned nfds, bool need_reply,
                                uint64_t *reply);

/* Tell the front-end the config space changed (BACKEND_CONFIG_CHANGE_MSG). */
int vshm_vu_dev_config_changed(struct vshm_vu_dev *dev);

/*
 * VIRTIO shared memory mappings (protocols.md §1.9, §3.1).
 *
 * Which convention is live follows from the negotiated protocol features:
 *  - STANDARD: SHMEM (bit 22). GET_SHMEM_CONFIG (44), BACKEND_SHMEM_MAP/
 *    UNMAP (9/10) with the 40-byte VhostUserMMap. The fd is only sent when
 *    BACKEND_SEND_FD was negotiated; the reply is only awaited with
 *    REPLY_ACK (without it a mapping is assumed live once sent).
 *  - CROSVM_LEGACY: crosvm's SHARED_MEMORY_REGIONS (bit 31) without bit 22.
 *    GET_SHARED_MEMORY_REGIONS (1004), SHMEM_MAP/UNMAP (1000/1001) with
 *    crosvm's 32/24-byte layouts; the message itself carries the fd and
 *    the reply is always awaited.
 * A front-end acking both gets STANDARD.
 */
enum vshm_vu_shmem_convention {
	VSHM_VU_SHMEM_NONE = 0,
	VSHM_VU_SHMEM_STANDARD,
	VSHM_VU_SHMEM_CROSVM_LEGACY,
};

enum vshm_vu_shmem_convention vshm_vu_dev_shmem_convention(const struct vshm_vu_dev *dev);

/* Most mappings recorded at once; more fail with -ENOSPC. */
#define VSHM_VU_SHMEM_MAX_MAPPINGS 4096u

/*
 * Ask the front-end to map [@fd_offset, +@len) of @fd (BORROWED: the
 * front-end gets its own reference) at @shm_offset in shared memory region
 * @shmid, read-write when @writable. Checked before anything is sent:
 * @shmid has a region (ops->get_shmem_config), @len > 0, offsets and @len
 * page-aligned, the range inside the region (-EINVAL), no overlap with a
 * live mapping (-EEXIST), room in the table (-ENOSPC), @fd >= 0 (-EBADF).
 * Returns 0 once the front-end confirmed (or, STANDARD without REPLY_ACK,
 * once sent); -ENOTSUP (no convention negotiated), -EPROTO (BACKEND_REQ, or
 * for STANDARD BACKEND_SEND_FD, not negotiated), -ENOTCONN (no channel),
 * -ETIMEDOUT, the front-end's negated errno or -EREMOTEIO when it refused.
 * Only successful mappings are recorded. Blocks for at most the configured
 * backend_reply_timeout_ms.
 */
int vshm_vu_dev_shmem_map(struct vshm_vu_dev *dev, uint8_t shmid, uint64_t shm_offset, int fd,
                          uint64_t fd_offset, uint64_t len, bool writable);

/*
 * Remove exactly one whole live mapping (same @shmid, @shm_offset, @len),
 * else -ENOENT without sending. Other errors as for map; on failure the
 * mapping stays recorded.
 *
 * Every recorded mapping is dropped on RESET_DEVICE, RESET_OWNER,
 * SET_STATUS(0) and disconnect. While the connection is up an UNMAP is sent
 * for each first (best effort; crosvm's front-end keeps mappings across a
 * reset), waiting for replies only under CROSVM_LEGACY.
 */
int vshm_vu_dev_shmem_unmap(struct vshm_vu_dev *dev, uint8_t shmid, uint64_t shm_offset,
                            uint64_t len);

struct vshm_vu_shmem_stats {
	uint64_t maps;         /* successful map calls */
	uint64_t unmaps;       /* successful unmap calls */
	uint64_t failures;     /* map/unmap calls that returned an error */
	uint64_t reset_unmaps; /* UNMAPs sent while dropping mappings on reset */
	uint64_t dropped;      /* mappings dropped by reset or disconnect */
	unsigned live;         /* mappings recorded now */
};
void vshm_vu_dev_get_shmem_stats(const struct vshm_vu_dev *dev, struct vshm_vu_shmem_stats *out);

struct vshm_vu_stats {
	uint64_t requests, errors, unknown_requests, disconnects, fds_closed;
};
void vshm_vu_dev_get_stats(const struct vshm_vu_dev *dev, struct vshm_vu_stats *out);

#ifdef __cplusplus
}
#endif

#endif
