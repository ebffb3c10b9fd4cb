/* SPDX-License-Identifier: MIT */
/*
 * virtqueue.c - device side of a virtqueue.
 *
 * The file has three parts: the ring-independent queue object (state,
 * configuration, fds, the public pop/push/notify entry points), the split
 * ring implementation, and the ops table joining them. A packed ring is a
 * second ops table; nothing outside this file changes when it is added.
 *
 * Ring memory is shared with a hostile guest that may change it at any
 * moment. Every guest-owned field is loaded exactly once into a local and
 * validated there, so a value cannot change between check and use.
 *
 * Byte order: virtio 1.x rings are little-endian; legacy (pre-1.0) rings
 * are native-endian, which is the same thing on the little-endian hosts
 * this project targets.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vshm/log.h>

#include "util.h"
#include "virtqueue-internal.h"

/* Split ring flags (virtio spec 2.7). */
#define VRING_DESC_F_NEXT          1
#define VRING_DESC_F_WRITE         2
#define VRING_DESC_F_INDIRECT      4
#define VRING_AVAIL_F_NO_INTERRUPT 1

/*
 * Scatter-gather entries one chain may produce. A descriptor yields more
 * than one entry only when it crosses a region boundary, so twice the
 * chain limit is generous for real drivers and still bounds allocation.
 */
#define VQ_MAX_IOV (2 * VSHM_VQ_MAX_CHAIN)

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* num entries, then used_event */
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[]; /* num entries, then avail_event */
};

struct vshm_vq;

/* What a ring layout implements; the queue object does the rest. */
struct vq_ring_ops {
	/* Translate the stored ring addresses; 0 or -errno. */
	int (*map)(struct vshm_vq *vq);
	/* Fill vq->iov with the next chain; 0, -EAGAIN (empty) or -EIO (broken). */
	int (*next_chain)(struct vshm_vq *vq, uint16_t *id, unsigned *out_n, unsigned *in_n);
	/* Consume the chain that next_chain returned. */
	void (*consume)(struct vshm_vq *vq);
	/* Publish one used element. */
	void (*push)(struct vshm_vq *vq, uint16_t id, uint32_t len);
	/* Whether the driver wants an interrupt for what was pushed. */
	bool (*should_notify)(struct vshm_vq *vq);
};

struct vshm_vq {
	struct vshm_mem *mem;
	const struct vq_ring_ops *ops;
	unsigned index;
	unsigned num;
	struct vshm_vq_features features;

	bool addr_set;
	uint64_t desc_uva, avail_uva, used_uva;
	uint64_t mapped_gen;

	/* Split ring state; NULL pointers mean "not mapped". */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail;   /* next avail entry to pop */
	uint16_t shadow_avail; /* last avail->idx seen */
	uint16_t used_idx;     /* next used entry to fill */
	uint16_t signalled_used;
	bool signalled_used_valid;
	bool push_pending; /* pushed since the last notify decision */

	int kick_fd, call_fd, err_fd;
	bool enabled, started, broken;

	struct vshm_vq_stats stats;
	struct vshm_ratelimit rl;

	/* Scratch for chain walking; copied into the element on success. */
	struct iovec iov[VQ_MAX_IOV];
	size_t out_bytes, in_bytes;
};

static const struct vq_ring_ops split_ops;

/* ---- ring-independent part ---------------------------------------------- */

static void vq_unmap(struct vshm_vq *vq)
{
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
}

/* A broken ring stays broken until reconfigured; tell the front-end once. */
static void vq_set_broken(struct vshm_vq *vq, const char *why)
{
	uint64_t one = 1;

	if (vq->broken)
		return;
	vq->broken = true;
	vq->stats.bad_chains++;
	vshm_log_ratelimited(&vq->rl, VSHM_LOG_WARN, "virtqueue %u: broken ring: %s", vq->index,
	                     why);
	if (vq->err_fd >= 0 && write(vq->err_fd, &one, sizeof(one)) < 0) {
		/* Nothing more to do: the ring is already refused. */
	}
}

int vshm_vq_new(struct vshm_mem *mem, unsigned index, struct vshm_vq **out)
{
	struct vshm_vq *vq;

	if (!mem || !out)
		return -EINVAL;
	vq = calloc(1, sizeof(*vq));
	if (!vq)
		return -ENOMEM;
	vq->mem = mem;
	vq->ops = &split_ops;
	vq->index = index;
	vq->kick_fd = vq->call_fd = vq->err_fd = -1;
	vq->rl = (struct vshm_ratelimit)VSHM_RATELIMIT_INIT(1000, 5);
	*out = vq;
	return 0;
}

void vshm_vq_destroy(struct vshm_vq *vq)
{
	if (!vq)
		return;
	vshm_close_fd(vq->kick_fd);
	vshm_close_fd(vq->call_fd);
	vshm_close_fd(vq->err_fd);
	free(vq);
}

void vshm_vq_set_features(struct vshm_vq *vq, const struct vshm_vq_features *f)
{
	vq->features = *f;
	vq->signalled_used_valid = false;
}

int vshm_vq_set_num(struct vshm_vq *vq, unsigned num, unsigned max)
{
	if (max > VSHM_VQ_MAX_SIZE)
		max = VSHM_VQ_MAX_SIZE;
	if (num == 0 || num > max || (num & (num - 1)) != 0)
		return -EINVAL;
	if (vq->started)
		return -EBUSY;
	vq->num = num;
	vq->broken = false;
	vq_unmap(vq);
	return 0;
}

int vshm_vq_set_addr(struct vshm_vq *vq, uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva)
{
	if ((desc_uva & 15) || (avail_uva & 1) || (used_uva & 3))
		return -EINVAL;
	vq->desc_uva = desc_uva;
	vq->avail_uva = avail_uva;
	vq->used_uva = used_uva;
	vq->addr_set = true;
	vq->broken = false;
	/* Old translations must not be used with new addresses. */
	vq_unmap(vq);
	return 0;
}

int vshm_vq_map(struct vshm_vq *vq)
{
	int ret;

	vq_unmap(vq);
	if (vq->num == 0 || !vq->addr_set)
		return -EINVAL;
	ret = vq->ops->map(vq);
	if (ret < 0) {
		vq_unmap(vq);
		vshm_log_ratelimited(&vq->rl, VSHM_LOG_WARN,
		                     "virtqueue %u: rings outside guest memory", vq->index);
		return ret;
	}
	vq->mapped_gen = vshm_mem_generation(vq->mem);
	vq->signalled_used_valid = false;
	return 0;
}

void vshm_vq_set_base(struct vshm_vq *vq, uint16_t last_avail)
{
	vq->last_avail = last_avail;
	vq->shadow_avail = last_avail;
	vq->signalled_used_valid = false;
	vq->broken = false;
}

uint16_t vshm_vq_get_base(const struct vshm_vq *vq)
{
	return vq->last_avail;
}

static void replace_fd(int *slot, int fd)
{
	if (*slot != fd)
		vshm_close_fd(*slot);
	*slot = fd < 0 ? -1 : fd;
}

void vshm_vq_set_kick_fd(struct vshm_vq *vq, int fd)
{
	replace_fd(&vq->kick_fd, fd);
}

void vshm_vq_set_call_fd(struct vshm_vq *vq, int fd)
{
	replace_fd(&vq->call_fd, fd);
}

void vshm_vq_set_err_fd(struct vshm_vq *vq, int fd)
{
	replace_fd(&vq->err_fd, fd);
}

int vshm_vq_get_kick_fd(const struct vshm_vq *vq)
{
	return vq->kick_fd;
}

void vshm_vq_set_enabled(struct vshm_vq *vq, bool enabled)
{
	vq->enabled = enabled;
}

bool vshm_vq_is_enabled(const struct vshm_vq *vq)
{
	return vq->enabled;
}

void vshm_vq_set_started(struct vshm_vq *vq, bool started)
{
	vq->started = started;
}

bool vshm_vq_is_started(const struct vshm_vq *vq)
{
	return vq->started;
}

int vshm_vq_consume_kick(struct vshm_vq *vq)
{
	struct pollfd pfd = { .fd = vq->kick_fd, .events = POLLIN };
	uint64_t v;

	if (vq->kick_fd < 0)
		return -EBADF;
	/*
	 * The fd is shared with the VMM, so its O_NONBLOCK flag is not ours to
	 * change; we are its only reader, so poll-then-read cannot block.
	 */
	if (poll(&pfd, 1, 0) < 0)
		return -errno;
	if (!(pfd.revents & POLLIN))
		return -EAGAIN;
	if (read(vq->kick_fd, &v, sizeof(v)) != sizeof(v))
		return errno == EAGAIN ? -EAGAIN : -EIO;
	vq->stats.kicks++;
	return 0;
}

void vshm_vq_reset(struct vshm_vq *vq)
{
	vshm_vq_set_kick_fd(vq, -1);
	vshm_vq_set_call_fd(vq, -1);
	vshm_vq_set_err_fd(vq, -1);
	vq_unmap(vq);
	vq->num = 0;
	vq->addr_set = false;
	vq->desc_uva = vq->avail_uva = vq->used_uva = 0;
	vq->features = (struct vshm_vq_features){ 0 };
	vq->last_avail = vq->shadow_avail = vq->used_idx = 0;
	vq->signalled_used = 0;
	vq->signalled_used_valid = false;
	vq->push_pending = false;
	vq->enabled = vq->started = vq->broken = false;
}

VSHM_EXPORT unsigned vshm_vq_index(const struct vshm_vq *vq)
{
	return vq->index;
}

VSHM_EXPORT unsigned vshm_vq_size(const struct vshm_vq *vq)
{
	return vq->num;
}

VSHM_EXPORT bool vshm_vq_is_ready(const struct vshm_vq *vq)
{
	return vq->started && vq->enabled && vq->desc != NULL;
}

VSHM_EXPORT bool vshm_vq_is_broken(const struct vshm_vq *vq)
{
	return vq->broken;
}

/*
 * The memory table may have changed since the rings were translated; the
 * old pointers could then point into unmapped memory. Re-translate lazily
 * so a forgotten vshm_vq_map() cannot turn into a use-after-unmap.
 */
static int vq_check_usable(struct vshm_vq *vq)
{
	if (!vshm_vq_is_ready(vq))
		return -ENODEV;
	if (vq->mapped_gen != vshm_mem_generation(vq->mem) && vshm_vq_map(vq) < 0)
		return -ENODEV;
	return vq->broken ? -EIO : 0;
}

VSHM_EXPORT int vshm_vq_pop(struct vshm_vq *vq, struct vshm_vq_elem **out)
{
	struct vshm_vq_elem *elem;
	unsigned out_n, in_n;
	uint16_t id;
	int ret;

	ret = vq_check_usable(vq);
	if (ret < 0)
		return ret;
	ret = vq->ops->next_chain(vq, &id, &out_n, &in_n);
	if (ret < 0)
		return ret;

	/* The element and its iovecs share one allocation. */
	elem = malloc(sizeof(*elem) + (size_t)(out_n + in_n) * sizeof(struct iovec));
	if (!elem)
		return -ENOMEM; /* not consumed: the chain stays available */
	elem->id = id;
	elem->out_num = out_n;
	elem->in_num = in_n;
	elem->out_sg = (struct iovec *)(elem + 1);
	elem->in_sg = elem->out_sg + out_n;
	elem->out_bytes = vq->out_bytes;
	elem->in_bytes = vq->in_bytes;
	memcpy(elem->out_sg, vq->iov, (size_t)(out_n + in_n) * sizeof(struct iovec));

	vq->ops->consume(vq);
	vq->stats.popped++;
	*out = elem;
	return 0;
}

VSHM_EXPORT void vshm_vq_elem_free(struct vshm_vq_elem *elem)
{
	free(elem);
}

VSHM_EXPORT int vshm_vq_push(struct vshm_vq *vq, struct vshm_vq_elem *elem, uint32_t written)
{
	int ret;

	if (!elem)
		return -EINVAL;
	ret = vq_check_usable(vq);
	if (ret == 0 && elem->id >= vq->num)
		ret = -EINVAL;
	if (ret == 0) {
		/* Never tell the driver more was written than it offered. */
		if (written > elem->in_bytes)
			written = (uint32_t)elem->in_bytes;
		vq->ops->push(vq, elem->id, written);
		vq->push_pending = true;
		vq->stats.pushed++;
	}
	free(elem);
	return ret;
}

VSHM_EXPORT int vshm_vq_notify(struct vshm_vq *vq)
{
	uint64_t one = 1;
	int ret;

	ret = vq_check_usable(vq);
	if (ret < 0)
		return ret;
	if (!vq->push_pending)
		return 0;
	vq->push_pending = false;
	if (!vq->ops->should_notify(vq)) {
		vq->stats.suppressed_notifies++;
		return 0;
	}
	if (vq->call_fd < 0)
		return 0;
	/* EAGAIN means the counter is saturated: the driver will wake anyway. */
	if (write(vq->call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	vq->stats.notified++;
	return 1;
}

VSHM_EXPORT void vshm_vq_get_stats(const struct vshm_vq *vq, struct vshm_vq_stats *out)
{
	*out = vq->stats;
}

/* ---- split ring ------------------------------------------------------------ */

static inline uint16_t load16(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline uint16_t load16_acquire(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

static inline void store16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static uint16_t *split_used_event(struct vshm_vq *vq)
{
	return &vq->avail->ring[vq->num];
}

static uint16_t *split_avail_event(struct vshm_vq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->num];
}

static int split_map(struct vshm_vq *vq)
{
	uint64_t n = vq->num;

	/* Full virtio 1.x sizes, event fields included whether negotiated or not. */
	vq->desc = vshm_mem_uva_to_va(vq->mem, vq->desc_uva, 16 * n);
	vq->avail = vshm_mem_uva_to_va(vq->mem, vq->avail_uva, 6 + 2 * n);
	vq->used = vshm_mem_uva_to_va(vq->mem, vq->used_uva, 6 + 8 * n);
	if (!vq->desc || !vq->avail || !vq->used)
		return -EFAULT;
	/*
	 * The ring addresses were checked for alignment as VMM addresses, but a
	 * region whose user_addr or mmap_offset is itself misaligned would still
	 * give misaligned host pointers, and the ring fields are accessed as
	 * naturally aligned integers. Refuse such a mapping instead of reading
	 * through it.
	 */
	if (((uintptr_t)vq->desc & 15) || ((uintptr_t)vq->avail & 1) || ((uintptr_t)vq->used & 3)) {
		vq->desc = NULL;
		vq->avail = NULL;
		vq->used = NULL;
		return -EINVAL;
	}
	/*
	 * The device is the only writer of used->idx, so the ring's value is
	 * authoritative (it survives a back-end restart).
	 */
	vq->used_idx = load16(&vq->used->idx);
	return 0;
}

/* A descriptor table: in the ring (host pointer) or indirect (maybe split). */
struct desc_table {
	const uint8_t *host; /* contiguous mapping, or NULL; maybe misaligned */
	uint64_t gpa;        /* used when host is NULL */
	unsigned size;
};

/*
 * Copy one descriptor out of guest memory. The compiler fence keeps the
 * compiler from re-reading the shared copy later instead of the local one;
 * memcpy also tolerates an indirect table the guest placed misaligned.
 */
static int fetch_desc(struct vshm_vq *vq, const struct desc_table *t, unsigned i,
                      struct vring_desc *d)
{
	if (t->host) {
		memcpy(d, t->host + 16ull * i, sizeof(*d));
	} else {
		/* The table crosses a region boundary; so may this entry. */
		struct iovec iov[2];
		int n = vshm_mem_gpa_to_iov(vq->mem, t->gpa + 16ull * i, 16, iov, 2);
		if (n < 0)
			return n;
		vshm_iov_to_buf(iov, (unsigned)n, 0, d, sizeof(*d));
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
	return 0;
}

/* Chain walk state shared by the direct and indirect parts of one chain. */
struct walk {
	unsigned total; /* buffer descriptors visited, bounded by VSHM_VQ_MAX_CHAIN */
	unsigned niov, out_n;
	bool seen_write;
	size_t out_bytes, in_bytes;
};

/* Append the buffer of @d to the scratch iovecs. NULL or a reason it is bad. */
static const char *walk_buffer(struct vshm_vq *vq, struct walk *w, const struct vring_desc *d)
{
	bool write = d->flags & VRING_DESC_F_WRITE;
	size_t *bytes;
	int n;

	if (!write && w->seen_write)
		return "readable descriptor after a writable one";
	w->seen_write |= write;
	/* Empty buffers carry nothing; the spec does not forbid them. */
	if (d->len == 0)
		return NULL;
	n = vshm_mem_gpa_to_iov(vq->mem, d->addr, d->len, &vq->iov[w->niov], VQ_MAX_IOV - w->niov);
	if (n == -ENOBUFS)
		return "too many buffer segments";
	if (n < 0)
		return "buffer outside guest memory";
	bytes = write ? &w->in_bytes : &w->out_bytes;
	if (__builtin_add_overflow(*bytes, (size_t)d->len, bytes))
		return "chain length overflows";
	w->niov += (unsigned)n;
	if (!write)
		w->out_n = w->niov;
	return NULL;
}

/*
 * Walk one table from entry @i following NEXT. A chain can never visit more
 * entries than its table holds, so exceeding that proves a loop; buffers
 * across the whole chain are bounded by VSHM_VQ_MAX_CHAIN. Sets *indirect
 * when the walk ends on an INDIRECT descriptor (only allowed in the ring's
 * own table).
 */
static const char *walk_table(struct vshm_vq *vq, struct walk *w, const struct desc_table *t,
                              unsigned i, bool in_indirect, struct vring_desc *indirect)
{
	unsigned visited = 0;
	struct vring_desc d;

	for (;;) {
		if (++visited > t->size)
			return "descriptor loop";
		if (fetch_desc(vq, t, i, &d) < 0)
			return "indirect table outside guest memory";
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (in_indirect)
				return "nested indirect table";
			if (!vq->features.indirect)
				return "indirect descriptor not negotiated";
			if (d.flags & VRING_DESC_F_NEXT)
				return "indirect descriptor with NEXT";
			*indirect = d;
			return NULL;
		}
		/* Only buffers count: the referring indirect descriptor carries none. */
		if (++w->total > VSHM_VQ_MAX_CHAIN)
			return "chain too long";
		const char *err = walk_buffer(vq, w, &d);
		if (err)
			return err;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return NULL;
		i = d.next;
		if (i >= t->size)
			return "next index out of range";
	}
}

static const char *split_walk_chain(struct vshm_vq *vq, uint16_t head, struct walk *w)
{
	struct desc_table t = { .host = (const uint8_t *)vq->desc, .size = vq->num };
	struct vring_desc ind = { 0 };
	const char *err;

	err = walk_table(vq, w, &t, head, false, &ind);
	if (err || !(ind.flags & VRING_DESC_F_INDIRECT))
		return err;

	/* The write flag of the referring descriptor is ignored (virtio 2.7.5.3.2). */
	if (ind.len == 0 || ind.len % 16 != 0)
		return "bad indirect table length";
	t.size = ind.len / 16;
	t.gpa = ind.addr;
	t.host = vshm_mem_gpa_to_va(vq->mem, ind.addr, ind.len);
	if (!t.host) {
		/*
		 * Not in one region: entries are fetched one by one, and an entry
		 * outside guest memory fails when (if) the walk reaches it. The probe
		 * just refuses the plainly bogus table early.
		 */
		struct iovec probe;
		int n = vshm_mem_gpa_to_iov(vq->mem, ind.addr, ind.len, &probe, 1);
		if (n == -EFAULT)
			return "indirect table outside guest memory";
	}
	return walk_table(vq, w, &t, 0, true, &ind);
}

static int split_next_chain(struct vshm_vq *vq, uint16_t *id, unsigned *out_n, unsigned *in_n)
{
	struct walk w = { 0 };
	uint16_t head;
	const char *err;

	if (vq->last_avail == vq->shadow_avail) {
		/* Acquire: ring entries and descriptors are read after the index. */
		vq->shadow_avail = load16_acquire(&vq->avail->idx);
		if (vq->last_avail == vq->shadow_avail && vq->features.event_idx) {
			/*
			 * Ask for a kick at the next entry, then look again: a driver
			 * that published before seeing our avail_event will not kick.
			 * The full fence orders our store before the reload.
			 */
			store16(split_avail_event(vq), vq->last_avail);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			vq->shadow_avail = load16_acquire(&vq->avail->idx);
		}
		if ((uint16_t)(vq->shadow_avail - vq->last_avail) > vq->num) {
			vq_set_broken(vq, "avail index moved more than the queue size");
			return -EIO;
		}
		if (vq->last_avail == vq->shadow_avail)
			return -EAGAIN;
	}

	head = load16(&vq->avail->ring[vq->last_avail & (vq->num - 1)]);
	if (head >= vq->num) {
		vq_set_broken(vq, "head index out of range");
		return -EIO;
	}
	err = split_walk_chain(vq, head, &w);
	if (err) {
		vq_set_broken(vq, err);
		return -EIO;
	}
	*id = head;
	*out_n = w.out_n;
	*in_n = w.niov - w.out_n;
	vq->out_bytes = w.out_bytes;
	vq->in_bytes = w.in_bytes;
	return 0;
}

static void split_consume(struct vshm_vq *vq)
{
	vq->last_avail++;
	/* Tell the driver we have seen everything up to here (EVENT_IDX). */
	if (vq->features.event_idx)
		store16(split_avail_event(vq), vq->last_avail);
}

static void split_push(struct vshm_vq *vq, uint16_t id, uint32_t len)
{
	struct vring_used_elem *e = &vq->used->ring[vq->used_idx & (vq->num - 1)];

	__atomic_store_n(&e->id, htole32(id), __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, htole32(len), __ATOMIC_RELAXED);
	vq->used_idx++;
	/* Release: the entry is visible before the index that publishes it. */
	__atomic_store_n(&vq->used->idx, htole16(vq->used_idx), __ATOMIC_RELEASE);
}

/* virtio's vring_need_event: did [old, new) just pass event? */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

static bool split_should_notify(struct vshm_vq *vq)
{
	uint16_t old, new_idx;
	bool valid;

	/* Our used->idx store must be visible before we read the driver's wishes. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->features.event_idx)
		return !(load16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);

	valid = vq->signalled_used_valid;
	old = vq->signalled_used;
	new_idx = vq->used_idx;
	vq->signalled_used = new_idx;
	vq->signalled_used_valid = true;
	/* With no baseline (first notify, after a reset) always signal. */
	return !valid || need_event(load16(split_used_event(vq)), new_idx, old);
}

static const struct vq_ring_ops split_ops = {
	.map = split_map,
	.next_chain = split_next_chain,
	.consume = split_consume,
	.push = split_push,
	.should_notify = split_should_notify,
};
