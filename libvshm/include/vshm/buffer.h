/* SPDX-License-Identifier: MIT */
/*
 * vshm/buffer.h - GPU-agnostic buffers for sharing pixels between processes:
 * sealed memfd buffers, dma-buf descriptors, udmabuf (guest RAM exported as
 * a dma-buf without copying) and, when built with GBM, render-node buffers.
 *
 * Conventions: functions return 0 or -errno and put results in out
 * parameters. Every fd an out parameter receives is O_CLOEXEC and OWNED by
 * the caller unless the comment says BORROWED. Failures that a peer (guest,
 * VMM, client) can cause are logged through a rate limiter with the reason,
 * so a caller can fall back (usually to a memfd copy) and say why.
 */
#ifndef VSHM_BUFFER_H
#define VSHM_BUFFER_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vshm_mem;

/* ------------------------------------------------------------------------
 * Sealed memfd buffers
 *
 * The producer maps the buffer read-write; consumers receive a READ-ONLY fd
 * from vshm_memfd_buf_export_ro(). A dup() of the memfd would not do: a dup
 * shares the open file description and therefore its O_RDWR access mode,
 * so a consumer could map it PROT_WRITE and scribble on the producer's
 * pixels. Reopening /proc/self/fd/N with O_RDONLY creates a new description
 * whose mode the consumer cannot upgrade: mmap(PROT_WRITE, MAP_SHARED) fails
 * with EACCES, write() with EBADF, and F_ADD_SEALS with EPERM (so a consumer
 * cannot F_SEAL_WRITE the producer out either).
 *
 * F_SEAL_SHRINK|F_SEAL_GROW are always set so a consumer's mapping can never
 * SIGBUS on truncation; F_SEAL_WRITE is never set because the producer keeps
 * writing (and udmabuf refuses write-sealed memfds).
 */

/* Also add F_SEAL_SEAL: nobody, the producer included, can add seals later. */
#define VSHM_MEMFD_SEAL_SEAL (1u << 0)

struct vshm_memfd_buf;

/*
 * Create a memfd named @name (for /proc and debugging; NULL = "vshm"),
 * sized to @size rounded up to the page size (so it can always become a
 * udmabuf), sealed against resizing and mapped read-write.
 * @flags: VSHM_MEMFD_SEAL_SEAL or 0. -EINVAL for size 0 or unknown flags.
 */
int vshm_memfd_buf_new(const char *name, uint64_t size, uint32_t flags,
                       struct vshm_memfd_buf **out);
/* Unmap and close. Fds exported earlier stay valid. NULL ok. */
void vshm_memfd_buf_destroy(struct vshm_memfd_buf *b);

/* The producer's read-write mapping; valid until destroy. */
void *vshm_memfd_buf_data(const struct vshm_memfd_buf *b);
/* The mapped size (the requested size rounded up to the page size). */
uint64_t vshm_memfd_buf_size(const struct vshm_memfd_buf *b);
/* The read-write memfd, BORROWED (owned by @b). Never hand it to a consumer. */
int vshm_memfd_buf_fd(const struct vshm_memfd_buf *b);
/* A new read-only fd of the same memory for a consumer; *fd is OWNED by the caller. */
int vshm_memfd_buf_export_ro(const struct vshm_memfd_buf *b, int *fd);

/*
 * The same for any fd: a new read-only open file description of the file
 * behind @fd (BORROWED). -ENOENT when /proc is not mounted (sandboxes must
 * keep /proc/self/fd reachable or export before locking down).
 */
int vshm_fd_reopen_ro(int fd, int *ro_fd);

/* ------------------------------------------------------------------------
 * dma-buf descriptors: a plain value type (like wlroots' dmabuf attributes)
 */

#define VSHM_DMABUF_MAX_PLANES 4
/* DRM_FORMAT_MOD_INVALID: "no explicit modifier", the implicit layout. */
#define VSHM_DMABUF_MOD_INVALID 0x00ffffffffffffffull
/* DRM_FORMAT_MOD_LINEAR */
#define VSHM_DMABUF_MOD_LINEAR 0ull

struct vshm_dmabuf_desc {
	uint32_t width, height;
	uint32_t fourcc;   /* DRM fourcc */
	uint64_t modifier; /* DRM format modifier */
	uint32_t n_planes; /* 0..VSHM_DMABUF_MAX_PLANES; 0 = empty */
	/*
	 * fd[i] for i < n_planes is OWNED by whoever owns the descriptor and
	 * closed by vshm_dmabuf_desc_finish(); planes that share one buffer
	 * should each hold their own dup (vshm_dmabuf_desc_copy does this).
	 * Entries at i >= n_planes are -1.
	 */
	int fd[VSHM_DMABUF_MAX_PLANES];
	uint32_t offset[VSHM_DMABUF_MAX_PLANES];
	uint32_t stride[VSHM_DMABUF_MAX_PLANES];
};

/* Make @d empty (n_planes 0, all fds -1). Owns nothing afterwards. */
void vshm_dmabuf_desc_init(struct vshm_dmabuf_desc *d);
/*
 * Close the plane fds and make @d empty. An fd number repeated in several
 * planes is closed once. NULL ok; calling it twice is harmless.
 */
void vshm_dmabuf_desc_finish(struct vshm_dmabuf_desc *d);
/*
 * Make @dst a copy of @src with freshly dup'ed (O_CLOEXEC) fds; @dst must not
 * own fds (it is overwritten). On failure @dst is empty and nothing leaks.
 * -EINVAL: n_planes out of range or a negative plane fd; -EMFILE etc. from dup.
 */
int vshm_dmabuf_desc_copy(struct vshm_dmabuf_desc *dst, const struct vshm_dmabuf_desc *src);

/* ------------------------------------------------------------------------
 * dma-buf helpers (DMA_BUF_IOCTL_SYNC, Linux 4.6+)
 */

#define VSHM_DMABUF_SYNC_READ  (1u << 0)
#define VSHM_DMABUF_SYNC_WRITE (1u << 1)
#define VSHM_DMABUF_SYNC_RW    (VSHM_DMABUF_SYNC_READ | VSHM_DMABUF_SYNC_WRITE)

/*
 * True when @fd is a dma-buf (its file lives on the kernel's dmabuf pseudo
 * filesystem, Linux 5.3+). Used to avoid sending dma-buf ioctls to unrelated
 * files, whose drivers may interpret the same ioctl number differently.
 */
bool vshm_dmabuf_is_dmabuf(int fd);

/*
 * Bracket CPU access to an mmap of a dma-buf. @flags: VSHM_DMABUF_SYNC_READ
 * and/or _WRITE, the same for start and end. Interrupted waits are retried.
 * -ENOTTY when @fd is not a dma-buf, -EINVAL for bad flags.
 */
int vshm_dmabuf_sync_start(int fd, uint32_t flags);
int vshm_dmabuf_sync_end(int fd, uint32_t flags);

/* Size of the dma-buf in bytes (lseek SEEK_END, which dma-bufs support). */
int vshm_dmabuf_get_size(int fd, uint64_t *size);

/* ------------------------------------------------------------------------
 * udmabuf: memfd pages (guest RAM) as a dma-buf, zero copy
 *
 * The kernel's rules (checked here first so failures carry a reason instead
 * of a bare EINVAL): every fd is a memfd with F_SEAL_SHRINK and without
 * F_SEAL_WRITE; offsets and sizes are page aligned; at most list_limit
 * (default 1024) items and size_limit_mb (default 64 MiB) per dma-buf.
 * The resulting dma-buf must be mapped MAP_SHARED.
 *
 * Errors shared by the create functions: -ENODEV /dev/udmabuf is unusable
 * (see vshm_udmabuf_available), -EINVAL misaligned/empty/out-of-file range,
 * -ENOTSUP wrong seals or not a memfd, -E2BIG a module limit is exceeded
 * (the log names the module parameter), -EFAULT a guest range outside guest
 * memory, or the kernel's errno. Each failure logs why (rate limited).
 */

struct vshm_udmabuf_limits {
	uint32_t list_limit; /* items per dma-buf (module parameter list_limit) */
	uint64_t size_limit; /* bytes per dma-buf (module parameter size_limit_mb) */
	uint64_t page_size;  /* alignment of every offset and size */
};

/* A range of a memfd. fd is BORROWED by every function taking this type. */
struct vshm_memfd_range {
	int fd;
	uint64_t offset;
	uint64_t size;
};

/* A guest-physical range, e.g. one virtio-gpu backing entry (addr, length). */
struct vshm_gpa_range {
	uint64_t gpa;
	uint64_t len;
};

/*
 * Whether /dev/udmabuf can be opened. The answer is cached for the process
 * (the first call opens and closes the device and logs the reason once
 * when it is absent). *@reason (optional) receives a static description:
 * "available" or why not, e.g. that the module is not loaded or the device
 * is not accessible to this user.
 */
bool vshm_udmabuf_available(const char **reason);

/*
 * The limits in force: the module parameters from /sys/module/udmabuf/
 * parameters when readable (an administrator may have raised them), else
 * the kernel defaults. Always succeeds.
 */
void vshm_udmabuf_get_limits(struct vshm_udmabuf_limits *out);

/*
 * One dma-buf over @n memfd ranges, in order. Ranges contiguous in the
 * same file (compared by inode, so dups of one memfd merge too) become one
 * item. *dmabuf_fd is OWNED by the caller.
 */
int vshm_udmabuf_create(const struct vshm_memfd_range *ranges, unsigned n, int *dmabuf_fd);

/*
 * One dma-buf over the guest ranges @ranges (e.g. a resource's backing
 * entries), in order. Each range is translated with vshm_mem_gpa_to_fd
 * (split where it crosses adjacent memory regions), contiguous runs in the
 * same memfd become one item, and everything is submitted in ONE
 * UDMABUF_CREATE_LIST call. The dma-buf keeps the pages pinned: it stays
 * valid after later memory-table changes. *dmabuf_fd is OWNED by the caller.
 */
int vshm_udmabuf_create_from_guest(const struct vshm_mem *m, const struct vshm_gpa_range *ranges,
                                   unsigned n, int *dmabuf_fd);

/* ------------------------------------------------------------------------
 * GBM render-node buffers (optional)
 *
 * Always declared so the ABI does not depend on build options; without GBM
 * support in the build every function returns -ENOTSUP.
 */

#define VSHM_GBM_LINEAR  (1u << 0) /* linear layout (modifier LINEAR) */
#define VSHM_GBM_SCANOUT (1u << 1) /* usable as a KMS scanout plane */

struct vshm_gbm;

/*
 * Open @render_node (e.g. "/dev/dri/renderD128"; NULL = the first render
 * node that opens). -ENOENT when there is none, -ENOTSUP without GBM.
 */
int vshm_gbm_new(const char *render_node, struct vshm_gbm **out);
/* NULL ok. Buffers allocated earlier stay valid (their dma-bufs own them). */
void vshm_gbm_destroy(struct vshm_gbm *g);
/* The device path in use, BORROWED from @g. */
const char *vshm_gbm_device_path(const struct vshm_gbm *g);

/*
 * Allocate a @width x @height @fourcc buffer and describe it in @out, which
 * must be empty on entry and OWNS the plane fds on success (release with
 * vshm_dmabuf_desc_finish). @flags: VSHM_GBM_LINEAR / VSHM_GBM_SCANOUT.
 * On failure @out is empty.
 */
int vshm_gbm_alloc(struct vshm_gbm *g, uint32_t width, uint32_t height, uint32_t fourcc,
                   uint32_t flags, struct vshm_dmabuf_desc *out);

#ifdef __cplusplus
}
#endif

#endif
