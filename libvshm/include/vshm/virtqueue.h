/* SPDX-License-Identifier: MIT */
/*
 * vshm/virtqueue.h - the device side of a virtqueue.
 *
 * The vhost-user engine configures queues (size, ring addresses, kick and
 * call fds, enable/start state); a device only pops elements, reads and
 * writes their buffers, pushes them back and notifies. The ring layout
 * (split today, packed later) is hidden behind this API.
 *
 * Everything in guest memory is hostile. A malformed descriptor chain
 * (loop, address outside guest memory, length overflow, a readable
 * descriptor after a writable one, indirect table inside an indirect table,
 * too many descriptors) marks the queue broken: pop returns -EIO from then
 * on until the engine reconfigures or resets it, as the virtio spec's
 * DEVICE_NEEDS_RESET intends. Nothing guest-controlled can make pop loop
 * forever or allocate without bound.
 */
#ifndef VSHM_VIRTQUEUE_H
#define VSHM_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest queue size accepted from a front-end (virtio split-ring maximum). */
#define VSHM_VQ_MAX_SIZE 32768
/* Upper bound on descriptors in one chain, direct plus indirect. */
#define VSHM_VQ_MAX_CHAIN 1024

struct vshm_vq;

/*
 * One popped element. out_sg: buffers the device reads (driver -> device),
 * in_sg: buffers the device writes. The iovecs point into guest memory and
 * are valid until the memory table changes or the element is pushed/freed.
 * Owned by the caller of vshm_vq_pop() until vshm_vq_push() or
 * vshm_vq_elem_free().
 */
struct vshm_vq_elem {
	uint16_t id; /* head descriptor index, returned in the used ring */
	unsigned out_num, in_num;
	struct iovec *out_sg, *in_sg;
	size_t out_bytes, in_bytes;
};

/* Queue index within its device. */
unsigned vshm_vq_index(const struct vshm_vq *vq);
/* Negotiated size (0 when not configured). */
unsigned vshm_vq_size(const struct vshm_vq *vq);
/* Started (kick fd set and rings valid) and enabled: the device may pop. */
bool vshm_vq_is_ready(const struct vshm_vq *vq);
/* True once a malformed chain or ring was seen. */
bool vshm_vq_is_broken(const struct vshm_vq *vq);

/*
 * Take the next available chain. 0 and *out on success, -EAGAIN when the
 * ring is empty, -ENODEV when the queue is not ready, -EIO when the ring is
 * broken, -ENOMEM when allocation failed (the chain stays available).
 */
int vshm_vq_pop(struct vshm_vq *vq, struct vshm_vq_elem **out);

/*
 * Return @elem to the driver with @written bytes written into its in_sg,
 * and free it. Does not notify; call vshm_vq_notify() after a batch.
 * Returns 0 or -errno (the element is freed either way).
 */
int vshm_vq_push(struct vshm_vq *vq, struct vshm_vq_elem *elem, uint32_t written);

/* Free an element without returning it (queue reset). NULL ok. */
void vshm_vq_elem_free(struct vshm_vq_elem *elem);

/*
 * Signal the call eventfd if the driver wants it (EVENT_IDX used_event /
 * NO_INTERRUPT) and anything was pushed since the last notify.
 * Returns 1 if signalled, 0 if suppressed, or -errno.
 */
int vshm_vq_notify(struct vshm_vq *vq);

/* Counters for tests and stats. */
struct vshm_vq_stats {
	uint64_t popped, pushed, notified, suppressed_notifies, kicks;
	uint64_t bad_chains;
};
void vshm_vq_get_stats(const struct vshm_vq *vq, struct vshm_vq_stats *out);

/* Scatter-gather helpers over iovec arrays (bounds-checked). */
/* Copy up to @len bytes starting @offset bytes into @iov; returns bytes copied. */
size_t vshm_iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len);
/* Copy @len bytes from @buf into @iov at @offset; returns bytes copied. */
size_t vshm_iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf,
                         size_t len);
/* Total bytes in @iov (saturating at SIZE_MAX). */
size_t vshm_iov_size(const struct iovec *iov, unsigned n);

#ifdef __cplusplus
}
#endif

#endif
