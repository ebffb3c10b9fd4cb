/* SPDX-License-Identifier: MIT */
/*
 * vhost_user_shmem.h - VIRTIO shared memory mappings for the vhost-user
 * engine, in the standard convention (SHMEM, bit 22) and crosvm's older
 * non-standard one (SHARED_MEMORY_REGIONS, bit 31). Wire layouts, the
 * per-connection mapping table and the hooks vhost_user.c calls. Not
 * installed.
 */
#ifndef VSHM_VHOST_USER_SHMEM_H
#define VSHM_VHOST_USER_SHMEM_H

#include <stdbool.h>
#include <stdint.h>

#include <vshm/vhost_user.h>

/* crosvm's non-standard ids (protocols.md §3.1, 2024-03 .. 2025-12). As
 * front-end requests 1000..1007 mean nothing; only 1004 is handled, and only
 * when bit 31 is negotiated. As back-end requests: */
#define VU_REQ_CROSVM_GET_SHARED_MEMORY_REGIONS 1004u
#define VU_BACKEND_CROSVM_SHMEM_MAP             1000u
#define VU_BACKEND_CROSVM_SHMEM_UNMAP           1001u

/* Standard VhostUserMMap (SHMEM_MAP/UNMAP payload, §1.9). */
struct vu_mmap {
	uint8_t shmid;
	uint8_t padding[7];
	uint64_t fd_offset;
	uint64_t shm_offset;
	uint64_t len;
	uint64_t flags; /* bit 0: read-write */
} __attribute__((packed));

#define VU_MMAP_F_RW 0x1ull

/* crosvm VhostUserShmemMapMsg (1000): shm_offset BEFORE fd_offset. */
struct vu_crosvm_shmem_map {
	uint8_t flags; /* VU_CROSVM_MAP_R | VU_CROSVM_MAP_W */
	uint8_t shmid;
	uint8_t padding[6];
	uint64_t shm_offset;
	uint64_t fd_offset;
	uint64_t len;
} __attribute__((packed));

#define VU_CROSVM_MAP_R 0x1u
#define VU_CROSVM_MAP_W 0x2u

/* crosvm VhostUserShmemUnmapMsg (1001). */
struct vu_crosvm_shmem_unmap {
	uint8_t shmid;
	uint8_t padding[7];
	uint64_t shm_offset;
	uint64_t len;
} __attribute__((packed));

/* One entry of the GET_SHARED_MEMORY_REGIONS (1004) reply, after a u64 count. */
struct vu_crosvm_region {
	uint8_t id;
	uint8_t padding[7];
	uint64_t length;
} __attribute__((packed));

_Static_assert(sizeof(struct vu_mmap) == 40, "VhostUserMMap is 40 bytes");
_Static_assert(sizeof(struct vu_crosvm_shmem_map) == 32, "crosvm map is 32 bytes");
_Static_assert(sizeof(struct vu_crosvm_shmem_unmap) == 24, "crosvm unmap is 24 bytes");
_Static_assert(sizeof(struct vu_crosvm_region) == 16, "crosvm region is 16 bytes");

/* Largest 1004 reply: the count and one entry per possible region. */
#define VU_CROSVM_REGIONS_REPLY_MAX (8u + 256u * sizeof(struct vu_crosvm_region))

struct vu_shmem_mapping {
	uint64_t shm_offset;
	uint64_t len;
	uint8_t shmid;
};

/* Per-engine state, embedded in struct vshm_vu_dev. Zero-initialised is valid. */
struct vu_shmem {
	struct vu_shmem_mapping *maps;
	unsigned n, cap;
	/* "no REPLY_ACK" warning given on this connection */
	bool warned_no_ack;
	bool warned_no_send_fd;
	struct vshm_vu_shmem_stats stats;
};

enum vshm_vu_shmem_convention vu_shmem_convention_of(uint64_t pf);

/* Build the 1004 reply from region sizes; returns its size in bytes. */
uint32_t vu_shmem_regions_reply(const uint64_t sizes[256], uint8_t *buf);

/*
 * Drop every recorded mapping of @dev. With @send (the connection is up),
 * send an UNMAP for each first, best effort: a dead channel ends the
 * sending, so at most one reply timeout is spent. Also re-arms the
 * once-per-connection warning when @new_conn.
 */
void vu_shmem_drop_all(struct vshm_vu_dev *dev, bool send, bool new_conn);

/* Free the table (engine teardown). */
void vu_shmem_fini(struct vu_shmem *s);

/* Engine accessors (defined in vhost_user.c). vu_dev_shmem_sizes fills
 * @sizes (zeroed first) from ops->get_shmem_config; -ENOTSUP without it. */
struct vu_shmem *vu_dev_shmem(struct vshm_vu_dev *dev);
int vu_dev_shmem_sizes(struct vshm_vu_dev *dev, uint64_t sizes[256]);

#endif
