/* SPDX-License-Identifier: MIT */
/*
 * buffer-internal.h - private to the buffer module (and its unit tests):
 * the kernel uapi this module uses, declared locally so the build does not
 * depend on linux/udmabuf.h or a recent linux/dma-buf.h being installed, and
 * the pure udmabuf item-list builder.
 */
#ifndef VSHM_BUFFER_INTERNAL_H
#define VSHM_BUFFER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include <vshm/buffer.h>

/* ---- include/uapi/linux/dma-buf.h (magic 'b') ---- */

struct vshm_uapi_dma_buf_sync {
	uint64_t flags;
};

struct vshm_uapi_dma_buf_sync_file {
	uint32_t flags;
	int32_t fd;
};

#define VSHM_DMA_BUF_SYNC_READ              (1ull << 0)
#define VSHM_DMA_BUF_SYNC_WRITE             (2ull << 0)
#define VSHM_DMA_BUF_SYNC_START             (0ull << 2)
#define VSHM_DMA_BUF_SYNC_END               (1ull << 2)
#define VSHM_DMA_BUF_IOCTL_SYNC             _IOW('b', 0, struct vshm_uapi_dma_buf_sync)
#define VSHM_DMA_BUF_IOCTL_EXPORT_SYNC_FILE _IOWR('b', 2, struct vshm_uapi_dma_buf_sync_file)
#define VSHM_DMA_BUF_IOCTL_IMPORT_SYNC_FILE _IOW('b', 3, struct vshm_uapi_dma_buf_sync_file)

/* statfs f_type of the dmabuf pseudo filesystem (linux/magic.h, 5.3+). */
#define VSHM_DMA_BUF_MAGIC 0x444d4142
/* statfs f_type of anon inodes: dma-bufs before 5.3, eventfds, sync_files. */
#define VSHM_ANON_INODE_FS_MAGIC 0x09041934

/*
 * Whether a dma-buf ioctl may be sent to @fd: 0 for dmabuf-fs files
 * (*certain = true); 0 for anon inodes (*certain = false), because before
 * Linux 5.3 dma-bufs were anon inodes too and cannot be told apart from
 * eventfds or sync_files (those answer a foreign ioctl with ENOTTY).
 * -ENOTTY for anything else: a DRM node, a tty or a socket may belong to a
 * driver that reads the same ioctl number as something else entirely.
 * -EBADF or fstatfs' errno for a bad fd.
 */
int vshm_dmabuf_check_fd(int fd, bool *certain);

/* ---- include/uapi/linux/udmabuf.h (magic 'u') ---- */

#define VSHM_UDMABUF_FLAGS_CLOEXEC 0x01

struct vshm_uapi_udmabuf_create_item {
	uint32_t memfd;
	uint32_t pad;
	uint64_t offset;
	uint64_t size;
};

struct vshm_uapi_udmabuf_create_list {
	uint32_t flags;
	uint32_t count;
	struct vshm_uapi_udmabuf_create_item list[];
};

#define VSHM_UDMABUF_CREATE_LIST _IOW('u', 0x43, struct vshm_uapi_udmabuf_create_list)

/* Kernel defaults of the udmabuf module parameters. */
#define VSHM_UDMABUF_DEFAULT_LIST_LIMIT    1024u
#define VSHM_UDMABUF_DEFAULT_SIZE_LIMIT_MB 64u

_Static_assert(sizeof(struct vshm_uapi_dma_buf_sync_file) == 8, "dma_buf_export_sync_file");
_Static_assert(sizeof(struct vshm_uapi_udmabuf_create_item) == 24, "udmabuf_create_item");
_Static_assert(sizeof(struct vshm_uapi_udmabuf_create_list) == 8, "udmabuf_create_list");
_Static_assert(offsetof(struct vshm_uapi_udmabuf_create_item, offset) == 8, "item.offset");

/*
 * The numbers in protocols.md 5.1/5.2 use the asm-generic ioctl encoding;
 * on those architectures prove the local layouts produce exactly them.
 * (powerpc, mips, sparc encode directions differently; _IOW handles that.)
 */
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__) || defined(__arm__) ||        \
        defined(__riscv) || defined(__loongarch__) || defined(__s390x__)
_Static_assert(VSHM_DMA_BUF_IOCTL_SYNC == 0x40086200u, "DMA_BUF_IOCTL_SYNC");
_Static_assert(VSHM_DMA_BUF_IOCTL_EXPORT_SYNC_FILE == 0xC0086202u, "EXPORT_SYNC_FILE");
_Static_assert(VSHM_DMA_BUF_IOCTL_IMPORT_SYNC_FILE == 0x40086203u, "IMPORT_SYNC_FILE");
_Static_assert(VSHM_UDMABUF_CREATE_LIST == 0x40087543u, "UDMABUF_CREATE_LIST");
#endif

/* ---- udmabuf item-list builder ---- */

/* One resolved memfd piece together with the facts the kernel will check. */
struct vshm_udmabuf_seg {
	int fd;             /* BORROWED */
	uint64_t offset;    /* in the memfd */
	uint64_t size;      /* bytes */
	uint32_t seals;     /* fcntl(F_GET_SEALS) of fd */
	uint64_t file_size; /* st_size of fd */
	/*
	 * The file's identity (st_dev, st_ino). Pieces are merged by file,
	 * not by fd number: a VMM sends one fd per region even when several
	 * regions are windows of the same memfd (QEMU's RAM below and above
	 * the 4 GiB hole), and pages on both sides can be contiguous in it.
	 */
	uint64_t dev, ino;
};

/*
 * Pure function (no syscalls, no logging): validate @segs against the
 * kernel's rules and @lim, merge adjacent pieces of the same file (the
 * merged item uses the fd of its first piece), and write
 * the UDMABUF_CREATE_LIST items to @items (capacity @max_items).
 * On success *n_items and *total_size are set. On failure @why (capacity
 * @why_len, may be NULL) receives one line saying which piece broke which
 * rule. Returns 0, -EINVAL (empty list, zero/misaligned size or offset,
 * range beyond the end of the file), -ENOTSUP (seals: SHRINK missing or
 * WRITE present), -E2BIG (list_limit or size_limit exceeded) or -ENOBUFS
 * (@max_items too small, below list_limit).
 */
int vshm_udmabuf_build_list(const struct vshm_udmabuf_seg *segs, unsigned n,
                            const struct vshm_udmabuf_limits *lim, struct vshm_memfd_range *items,
                            unsigned max_items, unsigned *n_items, uint64_t *total_size, char *why,
                            size_t why_len);

/*
 * Translate guest ranges into memfd pieces (split at region boundaries)
 * with their facts filled in. *segs is malloc'ed (caller frees); its fds
 * are BORROWED from @m. Logs and returns -EFAULT/-EINVAL/-ENOTSUP/-errno.
 */
struct vshm_mem;
int vshm_udmabuf_resolve_guest(const struct vshm_mem *m, const struct vshm_gpa_range *ranges,
                               unsigned n, struct vshm_udmabuf_seg **segs, unsigned *n_segs);

#endif
