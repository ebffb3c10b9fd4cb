/* SPDX-License-Identifier: MIT */
/*
 * virtqueue-internal.h - the engine-facing side of struct vshm_vq.
 * Only the vhost-user engine configures queues; devices use vshm/virtqueue.h.
 * Not installed.
 */
#ifndef VSHM_VIRTQUEUE_INTERNAL_H
#define VSHM_VIRTQUEUE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <vshm/memory.h>
#include <vshm/virtqueue.h>

/* Features that change ring behaviour. */
struct vshm_vq_features {
	bool event_idx;
	bool indirect;
};

/* A queue bound to the memory table @mem (borrowed; must outlive the vq). */
int vshm_vq_new(struct vshm_mem *mem, unsigned index, struct vshm_vq **out);
/* Closes kick/call/err fds. NULL ok. Elements still out are the caller's to free. */
void vshm_vq_destroy(struct vshm_vq *vq);

void vshm_vq_set_features(struct vshm_vq *vq, const struct vshm_vq_features *f);
/* 1..@max, power of two; -EINVAL otherwise. Only while stopped. */
int vshm_vq_set_num(struct vshm_vq *vq, unsigned num, unsigned max);
/*
 * Ring addresses as VMM user virtual addresses. Stored, then translated by
 * vshm_vq_map() (at start and after each memory table change).
 * -EINVAL for misalignment (desc 16, avail 2, used 4).
 */
int vshm_vq_set_addr(struct vshm_vq *vq, uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva);
/* Translate the stored addresses with the current table; -EFAULT if outside. */
int vshm_vq_map(struct vshm_vq *vq);
/* Next avail index to process (SET_VRING_BASE) / current (GET_VRING_BASE). */
void vshm_vq_set_base(struct vshm_vq *vq, uint16_t last_avail);
uint16_t vshm_vq_get_base(const struct vshm_vq *vq);

/* fds are OWNED by the queue from here on (the previous one is closed). -1 clears. */
void vshm_vq_set_kick_fd(struct vshm_vq *vq, int fd);
void vshm_vq_set_call_fd(struct vshm_vq *vq, int fd);
void vshm_vq_set_err_fd(struct vshm_vq *vq, int fd);
int vshm_vq_get_kick_fd(const struct vshm_vq *vq);

void vshm_vq_set_enabled(struct vshm_vq *vq, bool enabled);
bool vshm_vq_is_enabled(const struct vshm_vq *vq);
/* Started = rings mapped and kick fd set; cleared by GET_VRING_BASE. */
void vshm_vq_set_started(struct vshm_vq *vq, bool started);
bool vshm_vq_is_started(const struct vshm_vq *vq);

/* Drain the kick eventfd. Returns 0, -EAGAIN if nothing was pending, or -errno. */
int vshm_vq_consume_kick(struct vshm_vq *vq);

/* Forget rings, fds, state (device reset / disconnect). Size is kept at 0. */
void vshm_vq_reset(struct vshm_vq *vq);

#endif
