/* SPDX-License-Identifier: MIT */
/*
 * vring-driver.h - the driver (guest) side of a split virtqueue, for tests.
 *
 * Rings live in a testfe_mem. The normal path (testfe_vring_add, _kick,
 * _get_used) behaves like a well-behaved virtio driver, EVENT_IDX
 * included. The raw helpers write arbitrary descriptors and indices so
 * tests can build malformed rings (loops, bad addresses, huge lengths).
 */
#ifndef VSHM_TESTFE_VRING_DRIVER_H
#define VSHM_TESTFE_VRING_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "guest-mem.h"

/* Split-ring flags, as the driver writes them. */
#define TESTFE_DESC_F_NEXT          1
#define TESTFE_DESC_F_WRITE         2
#define TESTFE_DESC_F_INDIRECT      4
#define TESTFE_AVAIL_F_NO_INTERRUPT 1
#define TESTFE_USED_F_NO_NOTIFY     1

struct testfe_vring;

struct testfe_vring_config {
	unsigned num;   /* power of two */
	bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;  /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	int region;     /* allocate the rings in this region; -1 = bump allocator */
};

/* One buffer of a chain: guest address, length, device-writable or not. */
struct testfe_buf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

int testfe_vring_new(struct testfe_mem *mem, const struct testfe_vring_config *cfg,
                     struct testfe_vring **out);
void testfe_vring_destroy(struct testfe_vring *vr);

unsigned testfe_vring_num(const struct testfe_vring *vr);
/* Ring guest addresses and the matching VMM user addresses (SET_VRING_ADDR). */
void testfe_vring_gpas(const struct testfe_vring *vr, uint64_t *desc, uint64_t *avail,
                       uint64_t *used);
void testfe_vring_uvas(const struct testfe_vring *vr, uint64_t *desc, uint64_t *avail,
                       uint64_t *used);

/* The kick/call eventfds: BORROWED, and dup variants for APIs that consume fds. */
int testfe_vring_kick_fd(const struct testfe_vring *vr);
int testfe_vring_call_fd(const struct testfe_vring *vr);
int testfe_vring_dup_kick_fd(const struct testfe_vring *vr);
int testfe_vring_dup_call_fd(const struct testfe_vring *vr);

/*
 * Add a chain of @n buffers and publish it (avail ring entry + release store
 * of avail->idx). Readable buffers must come first. With @indirect the
 * chain goes into a fresh indirect table (needs cfg.indirect) taking one
 * ring descriptor. Returns the head index or -ENOSPC / -EINVAL / -ENOMEM.
 */
int testfe_vring_add(struct testfe_vring *vr, const struct testfe_buf *bufs, unsigned n,
                     bool indirect, void *cookie);
/* Whether the device asked for a kick since the last kick check (EVENT_IDX or NO_NOTIFY). */
bool testfe_vring_kick_needed(struct testfe_vring *vr);
/* Kick if needed: 1 kicked, 0 not needed, -errno. */
int testfe_vring_kick(struct testfe_vring *vr);
/* Kick unconditionally. */
int testfe_vring_kick_force(struct testfe_vring *vr);

/*
 * Next used element: 1 with head/len/cookie (descriptors freed), 0 if none,
 * -EIO if the device returned a head that is not in flight.
 */
int testfe_vring_get_used(struct testfe_vring *vr, uint16_t *head, uint32_t *len, void **cookie);
/* Drain the call eventfd: the counter value, 0 if not signalled. */
uint64_t testfe_vring_consume_call(struct testfe_vring *vr);

/* Interrupt suppression from the driver side. */
void testfe_vring_set_no_interrupt(struct testfe_vring *vr, bool on);
void testfe_vring_set_used_event(struct testfe_vring *vr, uint16_t v);
/* Ask for an interrupt at the next used entry, as a driver re-enabling callbacks does. */
void testfe_vring_enable_cb(struct testfe_vring *vr);
/* Read what the device wrote. */
uint16_t testfe_vring_avail_event(const struct testfe_vring *vr);
uint16_t testfe_vring_used_idx(const struct testfe_vring *vr);
void testfe_vring_used_elem(const struct testfe_vring *vr, unsigned slot, uint32_t *id,
                            uint32_t *len);
uint16_t testfe_vring_avail_idx(const struct testfe_vring *vr);

/* ---- raw helpers for malformed rings (no free-list bookkeeping) ---- */
/* Write descriptor @idx of the ring's table. */
void testfe_vring_raw_desc(struct testfe_vring *vr, unsigned idx, uint64_t addr, uint32_t len,
                           uint16_t flags, uint16_t next);
/* Write descriptor @idx of a table at @table_gpa (indirect tables); 0 or -EFAULT. */
int testfe_raw_desc_at(struct testfe_mem *mem, uint64_t table_gpa, unsigned idx, uint64_t addr,
                       uint32_t len, uint16_t flags, uint16_t next);
/* Put @head in the next avail slot and bump avail->idx (release). */
void testfe_vring_raw_avail(struct testfe_vring *vr, uint16_t head);
/* Set avail->idx to anything. */
void testfe_vring_raw_avail_idx(struct testfe_vring *vr, uint16_t idx);
/* Set avail->idx and the driver's shadows (to test index wrap-around). */
void testfe_vring_set_start_idx(struct testfe_vring *vr, uint16_t idx);

#endif
