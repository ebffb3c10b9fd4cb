/* SPDX-License-Identifier: MIT */
/*
 * vshm/fence.h - fences as pollable fds.
 *
 * Two kinds, one waiting model (the fd becomes readable, POLLIN, once the
 * fence has signaled, and stays readable):
 *
 * - sync_file: a kernel fence fd. Exported from / imported into a dma-buf's
 *   implicit fences (Linux 6.0+), understood by GPU drivers, KMS
 *   (IN_FENCE_FD) and Wayland explicit sync. Use it whenever the work being
 *   waited for is done by a device and the kernel supports the ioctls.
 *
 * - timeline fence (struct vshm_timeline): a SOFTWARE fence that the
 *   producer signals from the CPU, for when the kernel has no fence for the
 *   work (CPU rendering, older kernels, memfd buffers, virtio-gpu fence ids
 *   completed by the daemon). Each exported point is an eventfd, so
 *   consumers poll it exactly like a sync_file, but it is NOT a sync_file:
 *   it cannot be imported into a dma-buf, handed to a GPU driver or KMS, or
 *   merged, and the kernel knows nothing about it. Only pass it to peers
 *   that expect "an fd that becomes readable".
 *
 * Conventions as in vshm/buffer.h: 0 or -errno, OWNED/BORROWED fds.
 */
#ifndef VSHM_FENCE_H
#define VSHM_FENCE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Access the fence is for; the values equal the kernel's DMA_BUF_SYNC_* bits. */
#define VSHM_FENCE_READ  (1u << 0) /* export: waits for writers; import: a read fence */
#define VSHM_FENCE_WRITE (1u << 1) /* export: waits for all users; import: a write fence */

/*
 * A sync_file snapshot of the fences of @dmabuf_fd (DMA_BUF_IOCTL_EXPORT_
 * SYNC_FILE). *sync_file_fd is OWNED by the caller. Returns -ENOTSUP when the
 * kernel lacks the ioctl (before Linux 6.0; detected on the first dma-buf,
 * reported once, and not retried), -ENOTTY when @dmabuf_fd is not a dma-buf,
 * -EINVAL for bad flags.
 */
int vshm_fence_export_from_dmabuf(int dmabuf_fd, uint32_t flags, int *sync_file_fd);

/*
 * Add the fence of @sync_file_fd (BORROWED: the kernel takes its own
 * reference, the caller still closes it) to @dmabuf_fd's implicit fences
 * (DMA_BUF_IOCTL_IMPORT_SYNC_FILE). Errors as for export.
 */
int vshm_fence_import_to_dmabuf(int dmabuf_fd, int sync_file_fd, uint32_t flags);

/*
 * Whether the kernel's sync_file ioctls work: 1 yes (an export or import
 * succeeded), 0 no (the kernel answered a dma-buf with ENOTTY), -1 not
 * known yet (no dma-buf has been tried).
 */
int vshm_fence_sync_file_support(void);

/*
 * Wait until @fence_fd (a sync_file or a timeline fence fd, BORROWED) is
 * signaled. @timeout_ms < 0 waits forever, 0 only checks. Returns 0 when
 * signaled, -ETIMEDOUT, -EBADF for a closed fd, -EIO when the fd reports an
 * error condition instead of becoming readable.
 */
int vshm_fence_wait(int fence_fd, int timeout_ms);

/* vshm_fence_wait(fd, 0) == 0. False also for invalid fds. */
bool vshm_fence_is_signaled(int fence_fd);

/* ------------------------------------------------------------------------
 * Software timeline (eventfd-backed)
 *
 * A monotonically increasing 64-bit value, starting at 0, that only the
 * producer advances. vshm_timeline_export_fd(point) gives a consumer an fd
 * that becomes readable once the value reaches @point. The fd is an
 * EFD_SEMAPHORE eventfd loaded with a huge count, so a consumer that read()s
 * it (by mistake or habit) does not un-signal it for itself or others.
 * Thread-safe: the producer may signal from another thread than exporters.
 */

struct vshm_timeline;

int vshm_timeline_new(struct vshm_timeline **out);
/*
 * Destroy @tl. Points still pending are SIGNALED first so no consumer waits
 * forever on a producer that is gone (an eventfd has no error state to
 * report instead). NULL ok.
 */
void vshm_timeline_destroy(struct vshm_timeline *tl);

/*
 * Advance the value to @point and signal every exported point <= @point.
 * A @point at or below the current value changes nothing (signals are
 * idempotent). Returns 0 or -errno from writing an eventfd.
 */
int vshm_timeline_signal(struct vshm_timeline *tl, uint64_t point);

/* The current value. */
uint64_t vshm_timeline_value(struct vshm_timeline *tl);

/* Points exported but not yet signaled (each distinct point counts once). */
unsigned vshm_timeline_pending(struct vshm_timeline *tl);

/*
 * A new fd (OWNED by the caller, O_CLOEXEC, non-blocking) that becomes
 * readable when the value reaches @point; already readable if it has.
 * Every export returns its own fd; closing it never affects others.
 */
int vshm_timeline_export_fd(struct vshm_timeline *tl, uint64_t point, int *fd);

#ifdef __cplusplus
}
#endif

#endif
