/* SPDX-License-Identifier: MIT */
/*
 * vhost_user_shmem.c - VIRTIO shared memory mappings (protocols.md §1.9,
 * §3.1, §3.2).
 *
 * The device asks the front-end to map a file range into one of its shared
 * memory regions (the GPU's host-visible window) and later to unmap it.
 * Two conventions exist and both are spoken:
 *  - the standard one (SHMEM, bit 22): BACKEND_SHMEM_MAP/UNMAP 9/10 with a
 *    40-byte VhostUserMMap; the fd needs BACKEND_SEND_FD and the reply is
 *    optional (REPLY_ACK + NEED_REPLY);
 *  - crosvm's 2024-03..2025-12 one (bit 31): SHMEM_MAP/UNMAP 1000/1001
 *    with their own layouts and a reply that always comes.
 *
 * Everything that can be checked locally is checked before a byte is sent,
 * so a refused request never reaches the front-end. The table of live
 * mappings is what reset uses to undo them: crosvm's front-end does not
 * drop mappings on reset as the spec says it must (pitfall 20).
 */
#include "vhost_user_shmem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vshm/log.h>

#include "util.h"
#include "vhost_user_msg.h"

static struct vshm_ratelimit shmem_rl = VSHM_RATELIMIT_INIT(5000, 10);

enum vshm_vu_shmem_convention vu_shmem_convention_of(uint64_t pf)
{
	if (pf & VSHM_VU_PF_SHMEM)
		return VSHM_VU_SHMEM_STANDARD;
	if (pf & VSHM_VU_PF_CROSVM_SHMEM_REGIONS)
		return VSHM_VU_SHMEM_CROSVM_LEGACY;
	return VSHM_VU_SHMEM_NONE;
}

uint32_t vu_shmem_regions_reply(const uint64_t sizes[256], uint8_t *buf)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < 256; i++) {
		struct vu_crosvm_region e = { .id = (uint8_t)i, .length = sizes[i] };

		if (!sizes[i])
			continue;
		memcpy(buf + 8 + n * sizeof(e), &e, sizeof(e));
		n++;
	}
	memcpy(buf, &n, sizeof(n));
	return (uint32_t)(8 + n * sizeof(struct vu_crosvm_region));
}

void vu_shmem_fini(struct vu_shmem *s)
{
	free(s->maps);
	s->maps = NULL;
	s->n = s->cap = 0;
	s->stats.live = 0;
}

/* A non-zero reply: crosvm's and rust-vmm's front-ends send -errno, others 1. */
static int reply_error(uint64_t v)
{
	int64_t e = (int64_t)v;

	if (e < 0 && e >= -4095)
		return (int)e;
	return -EREMOTEIO;
}

static bool page_aligned(uint64_t v)
{
	long ps = sysconf(_SC_PAGESIZE);

	if (ps <= 0)
		ps = 4096;
	return (v & ((uint64_t)ps - 1)) == 0;
}

/* Shared by map and unmap: a convention and a channel are there. */
static int check_channel(struct vshm_vu_dev *dev, enum vshm_vu_shmem_convention *conv)
{
	uint64_t pf = vu_dev_pf(dev);

	*conv = vu_shmem_convention_of(pf);
	if (*conv == VSHM_VU_SHMEM_NONE)
		return -ENOTSUP;
	if (!(pf & VSHM_VU_PF_BACKEND_REQ))
		return -EPROTO;
	return 0;
}

static bool overlaps(const struct vu_shmem *s, uint8_t shmid, uint64_t off, uint64_t len)
{
	for (unsigned i = 0; i < s->n; i++) {
		const struct vu_shmem_mapping *m = &s->maps[i];

		/* Both ranges were checked to lie inside the region: no overflow. */
		if (m->shmid == shmid && off < m->shm_offset + m->len && m->shm_offset < off + len)
			return true;
	}
	return false;
}

/* Room for one more entry (callers checked the bound). */
static int reserve(struct vu_shmem *s)
{
	unsigned cap = s->cap ? s->cap * 2 : 16;
	struct vu_shmem_mapping *m;

	if (s->n < s->cap)
		return 0;
	if (cap > VSHM_VU_SHMEM_MAX_MAPPINGS)
		cap = VSHM_VU_SHMEM_MAX_MAPPINGS;
	m = realloc(s->maps, cap * sizeof(*m));
	if (!m)
		return -ENOMEM;
	s->maps = m;
	s->cap = cap;
	return 0;
}

static int send_map(struct vshm_vu_dev *dev, enum vshm_vu_shmem_convention conv, uint8_t shmid,
                    uint64_t off, int fd, uint64_t fd_off, uint64_t len, bool writable)
{
	struct vu_shmem *s = vu_dev_shmem(dev);
	uint64_t reply = 0;
	int r;

	if (conv == VSHM_VU_SHMEM_STANDARD) {
		uint64_t pf = vu_dev_pf(dev);
		struct vu_mmap m = {
			.shmid = shmid,
			.fd_offset = fd_off,
			.shm_offset = off,
			.len = len,
			.flags = writable ? VU_MMAP_F_RW : 0,
		};

		unsigned mode = VU_SEND_NEED_REPLY;

		/*
		 * The spec wants BACKEND_SEND_FD before any fd travels on the
		 * back-end channel, and we always offer it. A front-end that acks
		 * SHMEM but not BACKEND_SEND_FD (crosvm does exactly that, and
		 * accepts the fd) leaves no other way to map: send the fd anyway
		 * and say so once. Strict front-ends ack BACKEND_SEND_FD when it is
		 * offered, so they never see this.
		 */
		if (!(pf & VSHM_VU_PF_BACKEND_SEND_FD)) {
			mode |= VU_SEND_OWN_FD;
			if (!s->warned_no_send_fd) {
				s->warned_no_send_fd = true;
				vshm_log(VSHM_LOG_WARN,
				         "vhost-user: front-end acked SHMEM without "
				         "BACKEND_SEND_FD; "
				         "sending SHMEM_MAP fds anyway (crosvm convention)");
			}
		}
		if (!(pf & VSHM_VU_PF_REPLY_ACK) && !s->warned_no_ack) {
			s->warned_no_ack = true;
			vshm_log_ratelimited(
			        &shmem_rl, VSHM_LOG_WARN,
			        "vhost-user: SHMEM_MAP without REPLY_ACK: the front-end "
			        "cannot confirm when a mapping is live");
		}
		r = vu_dev_backend_send(dev, VU_BACKEND_SHMEM_MAP, &m, sizeof(m), &fd, 1, mode,
		                        &reply);
	} else {
		struct vu_crosvm_shmem_map m = {
			.flags = VU_CROSVM_MAP_R | (writable ? VU_CROSVM_MAP_W : 0),
			.shmid = shmid,
			.shm_offset = off,
			.fd_offset = fd_off,
			.len = len,
		};

		r = vu_dev_backend_send(dev, VU_BACKEND_CROSVM_SHMEM_MAP, &m, sizeof(m), &fd, 1,
		                        VU_SEND_NEED_REPLY | VU_SEND_WAIT | VU_SEND_OWN_FD, &reply);
	}
	if (r == 0 && reply != 0)
		r = reply_error(reply);
	return r;
}

static int send_unmap(struct vshm_vu_dev *dev, enum vshm_vu_shmem_convention conv,
                      const struct vu_shmem_mapping *mp, unsigned mode)
{
	uint64_t reply = 0;
	int r;

	if (conv == VSHM_VU_SHMEM_STANDARD) {
		struct vu_mmap m = { .shmid = mp->shmid,
			             .shm_offset = mp->shm_offset,
			             .len = mp->len };

		r = vu_dev_backend_send(dev, VU_BACKEND_SHMEM_UNMAP, &m, sizeof(m), NULL, 0, mode,
		                        &reply);
	} else {
		struct vu_crosvm_shmem_unmap m = {
			.shmid = mp->shmid,
			.shm_offset = mp->shm_offset,
			.len = mp->len,
		};

		r = vu_dev_backend_send(dev, VU_BACKEND_CROSVM_SHMEM_UNMAP, &m, sizeof(m), NULL, 0,
		                        mode | VU_SEND_WAIT, &reply);
	}
	if (r == 0 && reply != 0)
		r = reply_error(reply);
	return r;
}

static int do_map(struct vshm_vu_dev *dev, uint8_t shmid, uint64_t off, int fd, uint64_t fd_off,
                  uint64_t len, bool writable)
{
	struct vu_shmem *s = vu_dev_shmem(dev);
	enum vshm_vu_shmem_convention conv = vu_shmem_convention_of(vu_dev_pf(dev));
	uint64_t sizes[256];
	uint64_t size;
	int r;

	if (conv == VSHM_VU_SHMEM_NONE)
		return -ENOTSUP;
	if (fd < 0)
		return -EBADF;
	r = vu_dev_shmem_sizes(dev, sizes);
	if (r < 0)
		return r == -ENOTSUP ? -EINVAL : r;
	size = sizes[shmid];
	if (size == 0 || len == 0 || !page_aligned(off) || !page_aligned(len) ||
	    !page_aligned(fd_off))
		return -EINVAL;
	/* [off, off + len) inside [0, size), and fd_off + len representable. */
	if (len > size || off > size - len || fd_off > UINT64_MAX - len)
		return -EINVAL;
	if (overlaps(s, shmid, off, len))
		return -EEXIST;
	if (s->n >= VSHM_VU_SHMEM_MAX_MAPPINGS)
		return -ENOSPC;
	r = check_channel(dev, &conv);
	if (r < 0)
		return r;
	/* Room first, so a mapping the front-end confirmed is always recorded. */
	r = reserve(s);
	if (r < 0)
		return r;
	r = send_map(dev, conv, shmid, off, fd, fd_off, len, writable);
	if (r < 0) {
		vshm_log_ratelimited(
		        &shmem_rl, VSHM_LOG_WARN,
		        "vhost-user: shmem map id %u offset %#llx len %#llx failed: %s", shmid,
		        (unsigned long long)off, (unsigned long long)len, strerror(-r));
		return r;
	}
	s->maps[s->n++] =
	        (struct vu_shmem_mapping){ .shm_offset = off, .len = len, .shmid = shmid };
	s->stats.live = s->n;
	return 0;
}

static int do_unmap(struct vshm_vu_dev *dev, uint8_t shmid, uint64_t off, uint64_t len)
{
	struct vu_shmem *s = vu_dev_shmem(dev);
	enum vshm_vu_shmem_convention conv;
	unsigned i;
	int r;

	r = check_channel(dev, &conv);
	if (r == -ENOTSUP)
		return r;
	for (i = 0; i < s->n; i++)
		if (s->maps[i].shmid == shmid && s->maps[i].shm_offset == off &&
		    s->maps[i].len == len)
			break;
	if (i == s->n)
		return -ENOENT;
	if (r < 0)
		return r;
	r = send_unmap(dev, conv, &s->maps[i], VU_SEND_NEED_REPLY);
	if (r < 0) {
		vshm_log_ratelimited(
		        &shmem_rl, VSHM_LOG_WARN,
		        "vhost-user: shmem unmap id %u offset %#llx len %#llx failed: %s", shmid,
		        (unsigned long long)off, (unsigned long long)len, strerror(-r));
		return r;
	}
	s->maps[i] = s->maps[--s->n];
	s->stats.live = s->n;
	return 0;
}

void vu_shmem_drop_all(struct vshm_vu_dev *dev, bool send, bool new_conn)
{
	struct vu_shmem *s = vu_dev_shmem(dev);
	enum vshm_vu_shmem_convention conv;

	if (new_conn) {
		s->warned_no_ack = false;
		s->warned_no_send_fd = false;
	}
	if (s->n == 0)
		return;
	if (send && check_channel(dev, &conv) == 0) {
		/*
		 * Standard: no NEED_REPLY. The front-end may be blocked waiting
		 * for our answer to the request that caused the reset (QEMU
		 * waits for SET_STATUS), and a spec-conforming one has dropped
		 * the mappings already. crosvm's legacy front-end always
		 * replies, so its replies are read (it serves the channel on
		 * its own thread).
		 */
		for (unsigned i = 0; i < s->n; i++) {
			int r = send_unmap(dev, conv, &s->maps[i], 0);

			s->stats.reset_unmaps++;
			if (r == -ENOTCONN)
				break; /* channel gone (or died on this one): stop */
		}
	}
	s->stats.dropped += s->n;
	s->n = 0;
	s->stats.live = 0;
}

VSHM_EXPORT int vshm_vu_dev_shmem_map(struct vshm_vu_dev *dev, uint8_t shmid, uint64_t shm_offset,
                                      int fd, uint64_t fd_offset, uint64_t len, bool writable)
{
	int r;

	if (!dev)
		return -EINVAL;
	r = do_map(dev, shmid, shm_offset, fd, fd_offset, len, writable);
	if (r < 0)
		vu_dev_shmem(dev)->stats.failures++;
	else
		vu_dev_shmem(dev)->stats.maps++;
	return r;
}

VSHM_EXPORT int vshm_vu_dev_shmem_unmap(struct vshm_vu_dev *dev, uint8_t shmid, uint64_t shm_offset,
                                        uint64_t len)
{
	int r;

	if (!dev)
		return -EINVAL;
	r = do_unmap(dev, shmid, shm_offset, len);
	if (r < 0)
		vu_dev_shmem(dev)->stats.failures++;
	else
		vu_dev_shmem(dev)->stats.unmaps++;
	return r;
}

VSHM_EXPORT enum vshm_vu_shmem_convention
vshm_vu_dev_shmem_convention(const struct vshm_vu_dev *dev)
{
	return dev ? vu_shmem_convention_of(vu_dev_pf(dev)) : VSHM_VU_SHMEM_NONE;
}

VSHM_EXPORT void vshm_vu_dev_get_shmem_stats(const struct vshm_vu_dev *dev,
                                             struct vshm_vu_shmem_stats *out)
{
	/* The accessor is not const: the engine hands out its own state. */
	*out = vu_dev_shmem((struct vshm_vu_dev *)dev)->stats;
}
