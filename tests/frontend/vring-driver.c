/* SPDX-License-Identifier: MIT */
/* vring-driver.c - driver side of a split virtqueue inside testfe_mem. */
#include "vring-driver.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Entries of each per-head indirect table (allocated on first use, reused). */
#define INDIRECT_MAX 64

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct head_state {
	bool busy;
	unsigned ndesc; /* ring descriptors taken by this chain */
	void *cookie;
	uint64_t ind_gpa; /* 0 = no table allocated yet */
	struct desc *ind;
};

struct testfe_vring {
	struct testfe_mem *mem;
	unsigned num;
	bool event_idx, indirect;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct desc *desc;
	uint16_t *avail; /* flags, idx, ring[num], used_event */
	uint16_t *used;  /* flags, idx, {u32 id, u32 len}[num], avail_event */
	uint16_t avail_idx, kicked_avail, last_used;
	uint16_t *free_stack;
	unsigned nfree;
	uint16_t *next; /* our copy of the links we wrote, for freeing */
	struct head_state *heads;
	int kick_fd, call_fd;
};

static uint16_t *avail_idx_p(const struct testfe_vring *vr)
{
	return &vr->avail[1];
}

static uint16_t *used_event_p(const struct testfe_vring *vr)
{
	return &vr->avail[2 + vr->num];
}

static uint16_t *used_idx_p(const struct testfe_vring *vr)
{
	return &vr->used[1];
}

static uint32_t *used_ring_p(const struct testfe_vring *vr)
{
	return (uint32_t *)&vr->used[2];
}

static uint16_t *avail_event_p(const struct testfe_vring *vr)
{
	return (uint16_t *)(used_ring_p(vr) + 2 * vr->num);
}

void testfe_vring_destroy(struct testfe_vring *vr)
{
	if (!vr)
		return;
	if (vr->kick_fd >= 0)
		close(vr->kick_fd);
	if (vr->call_fd >= 0)
		close(vr->call_fd);
	free(vr->free_stack);
	free(vr->next);
	free(vr->heads);
	free(vr);
}

static int ring_alloc(struct testfe_vring *vr, int region, uint64_t len, uint64_t *gpa, void **host)
{
	/* Page alignment is more than the 16/2/4 virtio needs; it keeps dumps readable. */
	if (region >= 0)
		return testfe_mem_alloc_in(vr->mem, (unsigned)region, len, 4096, gpa, host);
	return testfe_mem_alloc(vr->mem, len, 4096, gpa, host);
}

int testfe_vring_new(struct testfe_mem *mem, const struct testfe_vring_config *cfg,
                     struct testfe_vring **out)
{
	struct testfe_vring *vr;
	unsigned num = cfg->num;
	void *host;
	int ret;

	if (num == 0 || num > 32768 || (num & (num - 1)))
		return -EINVAL;
	vr = calloc(1, sizeof(*vr));
	if (!vr)
		return -ENOMEM;
	vr->mem = mem;
	vr->num = num;
	vr->event_idx = cfg->event_idx;
	vr->indirect = cfg->indirect;
	vr->kick_fd = vr->call_fd = -1;
	vr->free_stack = calloc(num, sizeof(*vr->free_stack));
	vr->next = calloc(num, sizeof(*vr->next));
	vr->heads = calloc(num, sizeof(*vr->heads));
	if (!vr->free_stack || !vr->next || !vr->heads) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = ring_alloc(vr, cfg->region, 16ull * num, &vr->desc_gpa, &host);
	if (ret < 0)
		goto fail;
	vr->desc = host;
	ret = ring_alloc(vr, cfg->region, 6 + 2ull * num, &vr->avail_gpa, &host);
	if (ret < 0)
		goto fail;
	vr->avail = host;
	ret = ring_alloc(vr, cfg->region, 6 + 8ull * num, &vr->used_gpa, &host);
	if (ret < 0)
		goto fail;
	vr->used = host;
	/* Reused memory may hold an older ring. */
	memset(vr->desc, 0, 16ull * num);
	memset(vr->avail, 0, 6 + 2ull * num);
	memset(vr->used, 0, 6 + 8ull * num);

	/* Pop order 0, 1, 2... makes heads predictable in tests. */
	for (unsigned i = 0; i < num; i++)
		vr->free_stack[i] = (uint16_t)(num - 1 - i);
	vr->nfree = num;

	vr->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vr->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vr->kick_fd < 0 || vr->call_fd < 0) {
		ret = -errno;
		goto fail;
	}
	*out = vr;
	return 0;
fail:
	testfe_vring_destroy(vr);
	return ret;
}

unsigned testfe_vring_num(const struct testfe_vring *vr)
{
	return vr->num;
}

void testfe_vring_gpas(const struct testfe_vring *vr, uint64_t *desc, uint64_t *avail,
                       uint64_t *used)
{
	*desc = vr->desc_gpa;
	*avail = vr->avail_gpa;
	*used = vr->used_gpa;
}

void testfe_vring_uvas(const struct testfe_vring *vr, uint64_t *desc, uint64_t *avail,
                       uint64_t *used)
{
	*desc = testfe_mem_gpa_to_uva(vr->mem, vr->desc_gpa);
	*avail = testfe_mem_gpa_to_uva(vr->mem, vr->avail_gpa);
	*used = testfe_mem_gpa_to_uva(vr->mem, vr->used_gpa);
}

int testfe_vring_kick_fd(const struct testfe_vring *vr)
{
	return vr->kick_fd;
}

int testfe_vring_call_fd(const struct testfe_vring *vr)
{
	return vr->call_fd;
}

static int dup_fd(int fd)
{
	int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	return r < 0 ? -errno : r;
}

int testfe_vring_dup_kick_fd(const struct testfe_vring *vr)
{
	return dup_fd(vr->kick_fd);
}

int testfe_vring_dup_call_fd(const struct testfe_vring *vr)
{
	return dup_fd(vr->call_fd);
}

static void put_desc(struct desc *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct desc v = { htole64(addr), htole32(len), htole16(flags), htole16(next) };
	memcpy(d, &v, sizeof(v));
}

static void publish(struct testfe_vring *vr, uint16_t head)
{
	uint16_t slot = vr->avail_idx & (vr->num - 1);

	__atomic_store_n(&vr->avail[2 + slot], htole16(head), __ATOMIC_RELAXED);
	vr->avail_idx++;
	/* Release: descriptors and the ring entry before the index. */
	__atomic_store_n(avail_idx_p(vr), htole16(vr->avail_idx), __ATOMIC_RELEASE);
}

static int add_indirect(struct testfe_vring *vr, const struct testfe_buf *bufs, unsigned n,
                        void *cookie)
{
	struct head_state *h;
	uint16_t head;
	void *host;

	if (!vr->indirect || n > INDIRECT_MAX)
		return -EINVAL;
	if (vr->nfree == 0)
		return -ENOSPC;
	head = vr->free_stack[vr->nfree - 1];
	h = &vr->heads[head];
	if (!h->ind) {
		int ret = testfe_mem_alloc(vr->mem, 16ull * INDIRECT_MAX, 16, &h->ind_gpa, &host);
		if (ret < 0)
			return ret;
		h->ind = host;
	}
	vr->nfree--;
	for (unsigned i = 0; i < n; i++)
		put_desc(&h->ind[i], bufs[i].gpa, bufs[i].len,
		         (uint16_t)((bufs[i].write ? TESTFE_DESC_F_WRITE : 0) |
		                    (i + 1 < n ? TESTFE_DESC_F_NEXT : 0)),
		         (uint16_t)(i + 1 < n ? i + 1 : 0));
	put_desc(&vr->desc[head], h->ind_gpa, 16u * n, TESTFE_DESC_F_INDIRECT, 0);
	h->busy = true;
	h->ndesc = 1;
	h->cookie = cookie;
	publish(vr, head);
	return head;
}

int testfe_vring_add(struct testfe_vring *vr, const struct testfe_buf *bufs, unsigned n,
                     bool indirect, void *cookie)
{
	uint16_t head, prev = 0;

	if (n == 0)
		return -EINVAL;
	for (unsigned i = 1; i < n; i++)
		if (bufs[i - 1].write && !bufs[i].write)
			return -EINVAL; /* readable after writable: use the raw helpers */
	if (indirect)
		return add_indirect(vr, bufs, n, cookie);
	if (n > vr->nfree)
		return -ENOSPC;

	head = vr->free_stack[vr->nfree - 1];
	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = vr->free_stack[--vr->nfree];
		if (i > 0) {
			/* Link the previous descriptor to this one. */
			put_desc(&vr->desc[prev], bufs[i - 1].gpa, bufs[i - 1].len,
			         (uint16_t)((bufs[i - 1].write ? TESTFE_DESC_F_WRITE : 0) |
			                    TESTFE_DESC_F_NEXT),
			         idx);
			vr->next[prev] = idx;
		}
		prev = idx;
	}
	put_desc(&vr->desc[prev], bufs[n - 1].gpa, bufs[n - 1].len,
	         bufs[n - 1].write ? TESTFE_DESC_F_WRITE : 0, 0);
	vr->heads[head].busy = true;
	vr->heads[head].ndesc = n;
	vr->heads[head].cookie = cookie;
	publish(vr, head);
	return head;
}

/* virtio's vring_need_event. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool testfe_vring_kick_needed(struct testfe_vring *vr)
{
	uint16_t old = vr->kicked_avail;
	bool need;

	/* Our avail->idx store before reading the device's request. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vr->kicked_avail = vr->avail_idx;
	if (vr->event_idx)
		need = need_event(le16toh(__atomic_load_n(avail_event_p(vr), __ATOMIC_RELAXED)),
		                  vr->avail_idx, old);
	else
		need = !(le16toh(__atomic_load_n(&vr->used[0], __ATOMIC_RELAXED)) &
		         TESTFE_USED_F_NO_NOTIFY);
	return need;
}

int testfe_vring_kick_force(struct testfe_vring *vr)
{
	return eventfd_write(vr->kick_fd, 1) < 0 ? -errno : 0;
}

int testfe_vring_kick(struct testfe_vring *vr)
{
	int ret;

	if (!testfe_vring_kick_needed(vr))
		return 0;
	ret = testfe_vring_kick_force(vr);
	return ret < 0 ? ret : 1;
}

int testfe_vring_get_used(struct testfe_vring *vr, uint16_t *head, uint32_t *len, void **cookie)
{
	uint16_t idx = le16toh(__atomic_load_n(used_idx_p(vr), __ATOMIC_ACQUIRE));
	unsigned slot;
	uint32_t id;
	struct head_state *h;

	if (idx == vr->last_used)
		return 0;
	slot = vr->last_used & (vr->num - 1);
	id = le32toh(__atomic_load_n(&used_ring_p(vr)[2 * slot], __ATOMIC_RELAXED));
	if (len)
		*len = le32toh(__atomic_load_n(&used_ring_p(vr)[2 * slot + 1], __ATOMIC_RELAXED));
	if (id >= vr->num || !vr->heads[id].busy)
		return -EIO;
	vr->last_used++;
	h = &vr->heads[id];
	/* Return the chain's descriptors to the free stack. */
	uint16_t d = (uint16_t)id;
	for (unsigned i = 0; i < h->ndesc; i++) {
		vr->free_stack[vr->nfree++] = d;
		d = vr->next[d];
	}
	h->busy = false;
	if (head)
		*head = (uint16_t)id;
	if (cookie)
		*cookie = h->cookie;
	return 1;
}

uint64_t testfe_vring_consume_call(struct testfe_vring *vr)
{
	eventfd_t v = 0;
	return eventfd_read(vr->call_fd, &v) < 0 ? 0 : v;
}

void testfe_vring_set_no_interrupt(struct testfe_vring *vr, bool on)
{
	uint16_t f = le16toh(vr->avail[0]);
	f = on ? (uint16_t)(f | TESTFE_AVAIL_F_NO_INTERRUPT)
	       : (uint16_t)(f & ~TESTFE_AVAIL_F_NO_INTERRUPT);
	__atomic_store_n(&vr->avail[0], htole16(f), __ATOMIC_RELAXED);
}

void testfe_vring_set_used_event(struct testfe_vring *vr, uint16_t v)
{
	__atomic_store_n(used_event_p(vr), htole16(v), __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void testfe_vring_enable_cb(struct testfe_vring *vr)
{
	if (vr->event_idx)
		testfe_vring_set_used_event(vr, vr->last_used);
	else
		testfe_vring_set_no_interrupt(vr, false);
}

uint16_t testfe_vring_avail_event(const struct testfe_vring *vr)
{
	return le16toh(__atomic_load_n(avail_event_p(vr), __ATOMIC_ACQUIRE));
}

uint16_t testfe_vring_used_idx(const struct testfe_vring *vr)
{
	return le16toh(__atomic_load_n(used_idx_p(vr), __ATOMIC_ACQUIRE));
}

void testfe_vring_used_elem(const struct testfe_vring *vr, unsigned slot, uint32_t *id,
                            uint32_t *len)
{
	slot &= vr->num - 1;
	*id = le32toh(used_ring_p(vr)[2 * slot]);
	*len = le32toh(used_ring_p(vr)[2 * slot + 1]);
}

uint16_t testfe_vring_avail_idx(const struct testfe_vring *vr)
{
	return vr->avail_idx;
}

void testfe_vring_raw_desc(struct testfe_vring *vr, unsigned idx, uint64_t addr, uint32_t len,
                           uint16_t flags, uint16_t next)
{
	put_desc(&vr->desc[idx & (vr->num - 1)], addr, len, flags, next);
}

int testfe_raw_desc_at(struct testfe_mem *mem, uint64_t table_gpa, unsigned idx, uint64_t addr,
                       uint32_t len, uint16_t flags, uint16_t next)
{
	struct desc v = { htole64(addr), htole32(len), htole16(flags), htole16(next) };
	return testfe_mem_write(mem, table_gpa + 16ull * idx, &v, sizeof(v));
}

void testfe_vring_raw_avail(struct testfe_vring *vr, uint16_t head)
{
	publish(vr, head);
}

void testfe_vring_raw_avail_idx(struct testfe_vring *vr, uint16_t idx)
{
	__atomic_store_n(avail_idx_p(vr), htole16(idx), __ATOMIC_RELEASE);
}

void testfe_vring_set_start_idx(struct testfe_vring *vr, uint16_t idx)
{
	vr->avail_idx = vr->kicked_avail = vr->last_used = idx;
	__atomic_store_n(avail_idx_p(vr), htole16(idx), __ATOMIC_RELEASE);
	__atomic_store_n(used_idx_p(vr), htole16(idx), __ATOMIC_RELEASE);
}
