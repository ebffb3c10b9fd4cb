/* SPDX-License-Identifier: MIT */
/*
 * gpu-driver.c - a virtio-gpu guest driver for tests (see gpu-driver.h).
 *
 * Wire structs are little-endian; every field written goes through
 * htole*() and every field read through le*toh(), so the code stays right
 * on a big-endian host even though none is tested.
 */
#include "gpu-driver.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "frontend.h"
#include "guest-mem.h"
#include "vring-driver.h"

#define F_EDID              (1ull << VIRTIO_GPU_F_EDID)
#define F_NOTIFY_ON_EMPTY   (1ull << 24)
#define F_INDIRECT_DESC     (1ull << 28)
#define F_EVENT_IDX         (1ull << 29)
#define F_PROTOCOL_FEATURES (1ull << 30)
#define F_VERSION_1         (1ull << 32)
/* What a Linux virtio_gpu guest acks of a 2D device (VIRGL is never offered to us). */
#define F_LINUX_2D (F_EDID | F_INDIRECT_DESC | F_EVENT_IDX | F_PROTOCOL_FEATURES | F_VERSION_1)

#define PF_MQ                  (1ull << 0)
#define PF_REPLY_ACK           (1ull << 3)
#define PF_BACKEND_REQ         (1ull << 5)
#define PF_CONFIG              (1ull << 9)
#define PF_BACKEND_SEND_FD     (1ull << 10)
#define PF_RESET_DEVICE        (1ull << 13)
#define PF_CONFIGURE_MEM_SLOTS (1ull << 15)
#define PF_STATUS              (1ull << 16)
/*
 * The protocol features this driver acks when offered: the subset of
 * QEMU's set that matters to a GPU and that the test front-end can serve
 * (no migration log, no postcopy, no inflight tracking).
 */
#define PF_QEMU_2D                                                                                 \
	(PF_MQ | PF_REPLY_ACK | PF_BACKEND_REQ | PF_CONFIG | PF_BACKEND_SEND_FD |                  \
	 PF_RESET_DEVICE | PF_CONFIGURE_MEM_SLOTS | PF_STATUS)

#define NQUEUES 2

struct slot {
	bool busy;
	uint64_t seq;
	uint32_t cmd_type;
	uint64_t req_gpa, resp_gpa;
	uint8_t *req, *resp;
	uint32_t resp_len;
	unsigned ndesc; /* ring descriptors the chain takes */
	uint64_t submit_ns;
	tgd_done_fn done;
	void *data;
};

struct queue {
	struct testfe_vring *vr;
	unsigned size;
	struct slot *slots;
	unsigned *free;
	unsigned nfree;
	unsigned in_flight; /* commands */
	unsigned descs;     /* ring descriptors in use */
	bool indirect;
};

struct tgd {
	struct tgd_config cfg;
	struct testfe_mem *mem;
	struct tfe *fe;
	struct queue q[NQUEUES];
	uint64_t features, protocol_features;
	struct virtio_gpu_config dev_cfg;
	uint64_t seq, fence;
	bool batch;
	uint32_t last_resp_type;
};

void tgd_config_defaults(struct tgd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mem_size = 64ull << 20;
	cfg->mem_regions = 1;
	cfg->ctrl_queue_size = 256;
	cfg->cursor_queue_size = 16;
	cfg->timeout_ms = 5000;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int tgd_new(const struct tgd_config *cfg, struct tgd **out)
{
	struct testfe_mem_config mc;
	struct tgd *g = calloc(1, sizeof(*g));
	int r;

	if (!g)
		return -ENOMEM;
	if (cfg)
		g->cfg = *cfg;
	else
		tgd_config_defaults(&g->cfg);
	if (g->cfg.timeout_ms <= 0)
		g->cfg.timeout_ms = 5000;
	unsigned n = g->cfg.mem_regions ? g->cfg.mem_regions : 1;
	if (n > TESTFE_MEM_MAX_REGIONS || n > TFE_MAX_REGIONS || !g->cfg.mem_size) {
		free(g);
		return -EINVAL;
	}
	memset(&mc, 0, sizeof(mc));
	mc.nregions = n;
	/* Regions of whole pages; guest addresses start at 1 MiB like a PC's RAM above the hole. */
	uint64_t per = (g->cfg.mem_size / n + 4095) & ~4095ull;
	for (unsigned i = 0; i < n; i++)
		mc.region_size[i] = per;
	mc.base_gpa = 1ull << 20;
	r = testfe_mem_new(&mc, &g->mem);
	if (r < 0) {
		free(g);
		return r;
	}
	g->q[0].size = g->cfg.ctrl_queue_size ? g->cfg.ctrl_queue_size : 256;
	g->q[1].size = g->cfg.cursor_queue_size ? g->cfg.cursor_queue_size : 16;
	for (unsigned qi = 0; qi < NQUEUES; qi++) {
		struct queue *q = &g->q[qi];
		uint64_t gpa;
		void *host;
		q->slots = calloc(q->size, sizeof(*q->slots));
		q->free = calloc(q->size, sizeof(*q->free));
		if (!q->slots || !q->free) {
			tgd_destroy(g);
			return -ENOMEM;
		}
		r = testfe_mem_alloc(g->mem, (uint64_t)q->size * (TGD_REQ_MAX + TGD_RESP_MAX), 4096,
		                     &gpa, &host);
		if (r < 0) {
			tgd_destroy(g);
			return r;
		}
		for (unsigned i = 0; i < q->size; i++) {
			struct slot *s = &q->slots[i];
			uint64_t off = (uint64_t)i * (TGD_REQ_MAX + TGD_RESP_MAX);
			s->req_gpa = gpa + off;
			s->req = (uint8_t *)host + off;
			s->resp_gpa = s->req_gpa + TGD_REQ_MAX;
			s->resp = s->req + TGD_REQ_MAX;
			q->free[i] = q->size - 1 - i;
		}
		q->nfree = q->size;
	}
	*out = g;
	return 0;
}

void tgd_destroy(struct tgd *g)
{
	if (!g)
		return;
	tfe_destroy(g->fe);
	for (unsigned qi = 0; qi < NQUEUES; qi++) {
		testfe_vring_destroy(g->q[qi].vr);
		free(g->q[qi].slots);
		free(g->q[qi].free);
	}
	testfe_mem_destroy(g->mem);
	free(g);
}

int tgd_connect(struct tgd *g, const char *path)
{
	int64_t deadline = (int64_t)(now_ns() / 1000000) + g->cfg.timeout_ms;
	int r;

	if (g->fe)
		return -EISCONN;
	/* The back-end may still be creating its socket: retry ENOENT/ECONNREFUSED. */
	for (;;) {
		r = tfe_connect(path, &g->fe);
		if (r == 0)
			break;
		if ((r != -ENOENT && r != -ECONNREFUSED) ||
		    (int64_t)(now_ns() / 1000000) > deadline)
			return r;
		usleep(5000);
	}
	tfe_set_timeout(g->fe, g->cfg.timeout_ms);
	return 0;
}

int tgd_attach_fd(struct tgd *g, int fd)
{
	if (g->fe) {
		close(fd);
		return -EISCONN;
	}
	int r = tfe_new(fd, &g->fe);
	if (r == 0)
		tfe_set_timeout(g->fe, g->cfg.timeout_ms);
	return r;
}

struct tfe *tgd_tfe(struct tgd *g)
{
	return g->fe;
}

struct testfe_mem *tgd_mem(struct tgd *g)
{
	return g->mem;
}

uint64_t tgd_features(const struct tgd *g)
{
	return g->features;
}

uint64_t tgd_protocol_features(const struct tgd *g)
{
	return g->protocol_features;
}

void tgd_device_config(const struct tgd *g, struct virtio_gpu_config *out)
{
	*out = g->dev_cfg;
}

/* --- bring-up --------------------------------------------------------------- */

static int set_memory(struct tgd *g)
{
	struct tfe_region regs[TFE_MAX_REGIONS];
	unsigned n = testfe_mem_num_regions(g->mem);
	int r = 0;

	for (unsigned i = 0; i < n; i++) {
		struct vshm_mem_region_desc d;
		testfe_mem_region_desc(g->mem, i, &d);
		regs[i].fd = testfe_mem_region_fd(g->mem, i);
		regs[i].guest_addr = d.guest_addr;
		regs[i].size = d.size;
		regs[i].user_addr = d.user_addr;
		regs[i].mmap_offset = d.mmap_offset;
	}
	/* QEMU switches to ADD_MEM_REG whenever CONFIGURE_MEM_SLOTS is negotiated. */
	if (g->protocol_features & PF_CONFIGURE_MEM_SLOTS) {
		for (unsigned i = 0; i < n && r == 0; i++)
			r = tfe_add_mem_reg(g->fe, &regs[i]);
		return r;
	}
	return tfe_set_mem_table(g->fe, regs, n);
}

static int start_queue(struct tgd *g, unsigned qi, bool crosvm_order)
{
	struct queue *q = &g->q[qi];
	struct testfe_vring_config vc = {
		.num = q->size,
		.event_idx = (g->features & F_EVENT_IDX) != 0,
		.indirect = (g->features & F_INDIRECT_DESC) != 0,
		.region = -1,
	};
	uint64_t desc, avail, used;
	int r;

	/* The ring layout depends on the negotiated features, so it is made now. */
	testfe_vring_destroy(q->vr);
	q->vr = NULL;
	r = testfe_vring_new(g->mem, &vc, &q->vr);
	if (r < 0)
		return r;
	q->indirect = vc.indirect;
	testfe_vring_uvas(q->vr, &desc, &avail, &used);
	if (crosvm_order) {
		/* crosvm's activate: NUM, ADDR, BASE, CALL, KICK. */
		r = tfe_set_vring_num(g->fe, qi, q->size);
		if (r == 0)
			r = tfe_set_vring_addr(g->fe, qi, desc, avail, used, 0);
		if (r == 0)
			r = tfe_set_vring_base(g->fe, qi, 0);
		if (r == 0)
			r = tfe_set_vring_call_fd(g->fe, qi, testfe_vring_call_fd(q->vr));
		if (r == 0)
			r = tfe_set_vring_kick_fd(g->fe, qi, testfe_vring_kick_fd(q->vr));
		return r;
	}
	/* vhost_virtqueue_start(): NUM, BASE, ADDR, then KICK and CALL. */
	r = tfe_set_vring_num(g->fe, qi, q->size);
	if (r == 0)
		r = tfe_set_vring_base(g->fe, qi, 0);
	if (r == 0)
		r = tfe_set_vring_addr(g->fe, qi, desc, avail, used, 0);
	if (r == 0)
		r = tfe_set_vring_kick_fd(g->fe, qi, testfe_vring_kick_fd(q->vr));
	if (r == 0)
		r = tfe_set_vring_call_fd(g->fe, qi, testfe_vring_call_fd(q->vr));
	return r;
}

int tgd_bringup_qemu(struct tgd *g, const struct tgd_bringup *b)
{
	static const struct tgd_bringup none;
	uint64_t offered, again, pf = 0, v;
	int r;

	if (!g->fe)
		return -ENOTCONN;
	if (!b)
		b = &none;
	tfe_set_need_reply(g->fe, !b->no_need_reply);

	/* vhost_user_backend_init() + vhost_dev_init(). */
	r = tfe_get_features(g->fe, &offered);
	if (r < 0)
		return r;
	if (offered & F_PROTOCOL_FEATURES) {
		r = tfe_get_protocol_features(g->fe, &v);
		if (r < 0)
			return r;
		pf = v & (PF_QEMU_2D | b->protocol_add) & ~b->protocol_clear;
		r = tfe_set_protocol_features(g->fe, pf);
		if (r < 0)
			return r;
	}
	g->protocol_features = pf;
	if (pf & PF_MQ) {
		r = tfe_get_queue_num(g->fe, &v);
		if (r < 0)
			return r;
		if (v < NQUEUES)
			return -EPROTO;
	}
	if (pf & PF_CONFIGURE_MEM_SLOTS) {
		r = tfe_get_max_mem_slots(g->fe, &v);
		if (r < 0)
			return r;
	}
	if (pf & PF_BACKEND_REQ) {
		r = tfe_set_backend_req_fd(g->fe, NULL);
		if (r < 0)
			return r;
	}
	r = tfe_set_owner(g->fe);
	if (r == 0)
		r = tfe_get_features(g->fe, &again);
	if (r < 0)
		return r;
	if (again != offered)
		return -EPROTO;
	/* vhost_virtqueue_init(): a call fd per queue before anything runs. */
	for (unsigned qi = 0; qi < NQUEUES; qi++) {
		r = tfe_set_vring_call_fd(g->fe, qi, tfe_call_fd(g->fe, qi));
		if (r < 0)
			return r;
	}
	if (pf & PF_CONFIG) {
		r = tfe_get_config(g->fe, 0, &g->dev_cfg, sizeof(g->dev_cfg));
		if (r < 0)
			return r;
	}

	/* Guest DRIVER_OK: vhost_user_gpu_set_status() hands over the display first. */
	if (b->display_hook) {
		r = b->display_hook(b->display_data, g->fe);
		if (r < 0)
			return r;
	}
	g->features = offered & (F_LINUX_2D | b->features_add) & ~b->features_clear;
	r = tfe_set_features(g->fe, g->features);
	if (r == 0)
		r = set_memory(g);
	for (unsigned qi = 0; qi < NQUEUES && r == 0; qi++)
		r = start_queue(g, qi, false);
	/* QEMU enables the rings after all of them are set up (only with bit 30). */
	for (unsigned qi = 0; qi < NQUEUES && r == 0 && (g->features & F_PROTOCOL_FEATURES); qi++)
		r = tfe_set_vring_enable(g->fe, qi, true);
	if (r == 0 && (pf & PF_STATUS))
		r = tfe_set_status(g->fe, TFE_STATUS_DRIVER_READY);
	if (r == 0)
		r = tfe_sync(g->fe);
	return r;
}

#define PF_SHMEM               (1ull << 22)
#define PF_CROSVM_SHMEM        (1ull << 31)
#define REQ_CROSVM_GET_REGIONS 1004u

/* crosvm's GET_SHARED_MEMORY_REGIONS reply: u64 count, then {u8 id; pad[7]; u64 len}. */
static int crosvm_get_regions(struct tfe *fe, uint64_t sizes[256])
{
	struct tfe_msg m;
	uint64_t n;
	int r = tfe_send_msg(fe, REQ_CROSVM_GET_REGIONS, TFE_FLAG_VERSION, NULL, 0, NULL, 0);

	if (r == 0)
		r = tfe_recv_msg(fe, &m);
	if (r < 0)
		return r;
	if (m.request != REQ_CROSVM_GET_REGIONS || m.size < 8)
		r = -EPROTO;
	if (r == 0) {
		memcpy(&n, m.payload, 8);
		if (n > 256 || m.size != 8 + n * 16)
			r = -EPROTO;
		for (uint64_t i = 0; r == 0 && i < n; i++) {
			uint64_t len;
			memcpy(&len, m.payload + 8 + i * 16 + 8, 8);
			sizes[m.payload[8 + i * 16]] = len;
		}
	}
	tfe_msg_finish(&m);
	return r;
}

int tgd_bringup_crosvm(struct tgd *g, const struct tgd_bringup *b, uint64_t shmem_sizes[256])
{
	static const struct tgd_bringup none;
	const uint64_t crosvm_pf = PF_CONFIG | PF_MQ | PF_BACKEND_REQ | PF_REPLY_ACK | PF_SHMEM;
	uint64_t offered, pf = 0, v, sizes[256];
	uint32_t nregions;
	int r;

	if (!g->fe)
		return -ENOTCONN;
	if (!b)
		b = &none;
	memset(sizes, 0, sizeof(sizes));
	/* crosvm advertises REPLY_ACK but never sets NEED_REPLY on its own requests. */
	tfe_set_need_reply(g->fe, false);
	r = tfe_set_owner(g->fe);
	if (r == 0)
		r = tfe_get_features(g->fe, &offered);
	if (r == 0 && (offered & F_PROTOCOL_FEATURES)) {
		r = tfe_get_protocol_features(g->fe, &v);
		pf = v & (crosvm_pf | b->protocol_add) & ~b->protocol_clear;
		if (r == 0)
			r = tfe_set_protocol_features(g->fe, pf);
	}
	g->protocol_features = pf;
	if (r == 0 && (pf & PF_BACKEND_REQ))
		r = tfe_set_backend_req_fd(g->fe, NULL);
	if (r == 0 && (pf & PF_MQ)) {
		r = tfe_get_queue_num(g->fe, &v);
		if (r == 0 && v < NQUEUES)
			r = -EPROTO;
	}
	/* PCI setup: the host-visible region's size. */
	if (r == 0 && (pf & PF_SHMEM))
		r = tfe_get_shmem_config(g->fe, sizes, &nregions);
	else if (r == 0 && (pf & PF_CROSVM_SHMEM))
		r = crosvm_get_regions(g->fe, sizes);
	if (r == 0 && (pf & PF_CONFIG))
		r = tfe_get_config(g->fe, 0, &g->dev_cfg, sizeof(g->dev_cfg));
	if (r < 0)
		return r;
	if (shmem_sizes)
		memcpy(shmem_sizes, sizes, sizeof(sizes));

	/* activate() */
	g->features = offered & (F_LINUX_2D | b->features_add) & ~b->features_clear;
	r = tfe_set_features(g->fe, g->features);
	if (r == 0)
		r = set_memory(g);
	for (unsigned qi = 0; qi < NQUEUES && r == 0; qi++)
		r = start_queue(g, qi, true);
	for (unsigned qi = 0; qi < NQUEUES && r == 0 && (g->features & F_PROTOCOL_FEATURES); qi++)
		r = tfe_set_vring_enable(g->fe, qi, true);
	if (r == 0)
		r = tfe_sync(g->fe);
	return r;
}

/* --- submission and completion ------------------------------------------------- */

void tgd_set_batch(struct tgd *g, bool on)
{
	g->batch = on;
}

int tgd_kick(struct tgd *g, unsigned queue)
{
	if (queue >= NQUEUES || !g->q[queue].vr)
		return -EINVAL;
	int r = testfe_vring_kick(g->q[queue].vr);
	return r < 0 ? r : 0;
}

uint64_t tgd_next_fence(struct tgd *g)
{
	return ++g->fence;
}

void tgd_hdr(struct tgd *g, struct virtio_gpu_ctrl_hdr *h, uint32_t type, bool fence)
{
	memset(h, 0, sizeof(*h));
	h->type = htole32(type);
	if (fence) {
		h->flags = htole32(VIRTIO_GPU_FLAG_FENCE);
		h->fence_id = htole64(tgd_next_fence(g));
	}
}

unsigned tgd_in_flight(const struct tgd *g, unsigned queue)
{
	return queue < NQUEUES ? g->q[queue].in_flight : 0;
}

/* Handle every used element of @qi. Returns the count, or -EIO for a bogus head. */
static int reap(struct tgd *g, unsigned qi)
{
	struct queue *q = &g->q[qi];
	int n = 0;

	for (;;) {
		uint16_t head;
		uint32_t len;
		void *cookie;
		int r = testfe_vring_get_used(q->vr, &head, &len, &cookie);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		struct slot *s = cookie;
		struct tgd_done d = {
			.seq = s->seq,
			.queue = qi,
			.cmd_type = s->cmd_type,
			.resp = s->resp,
			.resp_len = len,
			.submit_ns = s->submit_ns,
			.done_ns = now_ns(),
		};
		if (s->resp_len >= sizeof(struct virtio_gpu_ctrl_hdr) &&
		    len >= sizeof(struct virtio_gpu_ctrl_hdr)) {
			const struct virtio_gpu_ctrl_hdr *h = (const void *)s->resp;
			d.resp_type = le32toh(h->type);
			d.resp_flags = le32toh(h->flags);
			d.resp_fence_id = le64toh(h->fence_id);
		}
		if (s->done)
			s->done(s->data, &d);
		s->busy = false;
		q->free[q->nfree++] = (unsigned)(s - q->slots);
		q->in_flight--;
		q->descs -= s->ndesc;
		n++;
	}
	return n;
}

int tgd_process(struct tgd *g, int timeout_ms)
{
	int64_t deadline;
	int total = 0;

	if (timeout_ms < 0)
		timeout_ms = g->cfg.timeout_ms;
	deadline = (int64_t)(now_ns() / 1000000) + timeout_ms;
	for (;;) {
		struct pollfd pfd[NQUEUES];
		unsigned np = 0;

		for (unsigned qi = 0; qi < NQUEUES; qi++) {
			if (!g->q[qi].vr)
				continue;
			int r = reap(g, qi);
			if (r < 0)
				return r;
			total += r;
		}
		if (total)
			return total;
		/*
		 * Nothing yet: ask for an interrupt at the next used entry (what
		 * virtqueue_enable_cb does), then re-check to close the race with
		 * a completion that landed meanwhile, then sleep on the call fds.
		 */
		for (unsigned qi = 0; qi < NQUEUES; qi++) {
			struct queue *q = &g->q[qi];
			if (!q->vr)
				continue;
			testfe_vring_consume_call(q->vr);
			testfe_vring_enable_cb(q->vr);
			if (q->in_flight)
				pfd[np++] =
				        (struct pollfd){ testfe_vring_call_fd(q->vr), POLLIN, 0 };
		}
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		for (unsigned qi = 0; qi < NQUEUES; qi++) {
			if (!g->q[qi].vr)
				continue;
			int r = reap(g, qi);
			if (r < 0)
				return r;
			total += r;
		}
		if (total)
			return total;
		if (np == 0)
			return -EAGAIN; /* nothing in flight: nothing will ever complete */
		int64_t left = deadline - (int64_t)(now_ns() / 1000000);
		if (left <= 0)
			return -ETIMEDOUT;
		/* Bounded slices: a lost wake-up costs at most one slice, never the test. */
		int r = poll(pfd, np, (int)(left < 1000 ? left : 1000));
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static bool seq_in_flight(const struct tgd *g, uint64_t seq)
{
	for (unsigned qi = 0; qi < NQUEUES; qi++)
		for (unsigned i = 0; i < g->q[qi].size; i++)
			if (g->q[qi].slots[i].busy && g->q[qi].slots[i].seq == seq)
				return true;
	return false;
}

int tgd_wait_seq(struct tgd *g, uint64_t seq, int timeout_ms)
{
	if (timeout_ms < 0)
		timeout_ms = g->cfg.timeout_ms;
	int64_t deadline = (int64_t)(now_ns() / 1000000) + timeout_ms;
	while (seq_in_flight(g, seq)) {
		int64_t left = deadline - (int64_t)(now_ns() / 1000000);
		if (left <= 0)
			return -ETIMEDOUT;
		int r = tgd_process(g, (int)left);
		if (r < 0 && r != -EAGAIN)
			return r;
	}
	return 0;
}

int tgd_drain(struct tgd *g, int timeout_ms)
{
	if (timeout_ms < 0)
		timeout_ms = g->cfg.timeout_ms;
	int64_t deadline = (int64_t)(now_ns() / 1000000) + timeout_ms;
	while (g->q[0].in_flight || g->q[1].in_flight) {
		int64_t left = deadline - (int64_t)(now_ns() / 1000000);
		if (left <= 0)
			return -ETIMEDOUT;
		int r = tgd_process(g, (int)left);
		if (r < 0 && r != -EAGAIN)
			return r;
	}
	return 0;
}

int tgd_submit(struct tgd *g, unsigned queue, const void *req, uint32_t req_len, uint64_t extra_gpa,
               uint32_t extra_len, uint32_t resp_len, tgd_done_fn done, void *data, uint64_t *seq)
{
	struct testfe_buf bufs[3];
	unsigned n = 0;
	struct queue *q;

	if (queue >= NQUEUES || !g->q[queue].vr)
		return -EINVAL;
	if (req_len == 0 || req_len > TGD_REQ_MAX || resp_len > TGD_RESP_MAX)
		return -EINVAL;
	q = &g->q[queue];
	unsigned need = q->indirect ? 1u : 1u + (extra_len ? 1u : 0u) + (resp_len ? 1u : 0u);
	for (;;) {
		/*
		 * Ring full (no slot, or too few descriptors left): process
		 * completions first. A kick makes sure batched work is seen.
		 */
		int r;
		if (q->nfree && q->descs + need <= q->size)
			break;
		testfe_vring_kick_force(q->vr);
		r = tgd_process(g, -1);
		if (r < 0)
			return r;
	}
	struct slot *s = &q->slots[q->free[--q->nfree]];
	memcpy(s->req, req, req_len);
	bufs[n++] = (struct testfe_buf){ s->req_gpa, req_len, false };
	if (extra_len)
		bufs[n++] = (struct testfe_buf){ extra_gpa, extra_len, false };
	if (resp_len) {
		/* Stale bytes would hide a device that completes without writing. */
		memset(s->resp, 0, resp_len);
		bufs[n++] = (struct testfe_buf){ s->resp_gpa, resp_len, true };
	}
	s->busy = true;
	s->seq = ++g->seq;
	s->cmd_type = le32toh(((const struct virtio_gpu_ctrl_hdr *)req)->type);
	s->resp_len = resp_len;
	s->done = done;
	s->data = data;
	s->submit_ns = now_ns();
	int head = testfe_vring_add(q->vr, bufs, n, q->indirect, s);
	if (head < 0) {
		s->busy = false;
		q->free[q->nfree++] = (unsigned)(s - q->slots);
		return head;
	}
	s->ndesc = need;
	q->in_flight++;
	q->descs += need;
	if (seq)
		*seq = s->seq;
	if (!g->batch) {
		int r = testfe_vring_kick(q->vr);
		if (r < 0)
			return r;
	}
	return 0;
}

/* --- synchronous helpers ------------------------------------------------------ */

struct sync_ctx {
	void *resp;
	uint32_t cap;
	uint32_t type;
	bool done;
};

static void sync_done(void *data, const struct tgd_done *d)
{
	struct sync_ctx *c = data;
	if (c->resp && c->cap) {
		uint32_t n = d->resp_len < c->cap ? d->resp_len : c->cap;
		memcpy(c->resp, d->resp, n);
	}
	c->type = d->resp_type;
	c->done = true;
}

static bool resp_ok(uint32_t type)
{
	return type >= VIRTIO_GPU_RESP_OK_NODATA && type < VIRTIO_GPU_RESP_ERR_UNSPEC;
}

int tgd_cmd(struct tgd *g, unsigned queue, const void *req, uint32_t req_len, uint64_t extra_gpa,
            uint32_t extra_len, void *resp, uint32_t resp_cap)
{
	struct sync_ctx c = { resp, resp_cap, 0, false };
	uint64_t seq;
	uint32_t resp_len = queue == TGD_QUEUE_CURSOR ? 0 : (resp_cap > 24 ? resp_cap : 24);
	if (resp)
		memset(resp, 0, resp_cap);
	int r = tgd_submit(g, queue, req, req_len, extra_gpa, extra_len, resp_len, sync_done, &c,
	                   &seq);
	if (r < 0)
		return r;
	r = tgd_wait_seq(g, seq, -1);
	if (r < 0)
		return r;
	g->last_resp_type = c.type;
	if (queue == TGD_QUEUE_CURSOR)
		return 0;
	return resp_ok(c.type) ? 0 : -EPROTO;
}

uint32_t tgd_last_resp_type(const struct tgd *g)
{
	return g->last_resp_type;
}

int tgd_get_display_info(struct tgd *g, struct virtio_gpu_resp_display_info *out)
{
	struct virtio_gpu_ctrl_hdr h;
	tgd_hdr(g, &h, VIRTIO_GPU_CMD_GET_DISPLAY_INFO, false);
	return tgd_cmd(g, TGD_QUEUE_CTRL, &h, sizeof(h), 0, 0, out, sizeof(*out));
}

int tgd_get_edid(struct tgd *g, uint32_t scanout, struct virtio_gpu_resp_edid *out)
{
	struct virtio_gpu_cmd_get_edid c;
	memset(&c, 0, sizeof(c));
	tgd_hdr(g, &c.hdr, VIRTIO_GPU_CMD_GET_EDID, false);
	c.scanout = htole32(scanout);
	return tgd_cmd(g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, out, sizeof(*out));
}

int tgd_resource_create_2d(struct tgd *g, uint32_t id, uint32_t format, uint32_t w, uint32_t h)
{
	struct virtio_gpu_resource_create_2d c;
	memset(&c, 0, sizeof(c));
	tgd_hdr(g, &c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D, false);
	c.resource_id = htole32(id);
	c.format = htole32(format);
	c.width = htole32(w);
	c.height = htole32(h);
	return tgd_cmd(g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

int tgd_resource_unref(struct tgd *g, uint32_t id)
{
	struct virtio_gpu_resource_unref c;
	memset(&c, 0, sizeof(c));
	tgd_hdr(g, &c.hdr, VIRTIO_GPU_CMD_RESOURCE_UNREF, false);
	c.resource_id = htole32(id);
	return tgd_cmd(g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

int tgd_attach_backing(struct tgd *g, uint32_t id, const struct virtio_gpu_mem_entry *entries,
                       uint32_t n)
{
	struct virtio_gpu_resource_attach_backing c;
	uint64_t gpa = 0;
	void *host = NULL;
	int r;

	if (n) {
		/* Guest memory is never freed: fine for tests, which attach a handful of times. */
		r = testfe_mem_alloc(g->mem, (uint64_t)n * sizeof(*entries), 16, &gpa, &host);
		if (r < 0)
			return r;
		struct virtio_gpu_mem_entry *e = host;
		for (uint32_t i = 0; i < n; i++) {
			e[i].addr = htole64(entries[i].addr);
			e[i].length = htole32(entries[i].length);
			e[i].padding = 0;
		}
	}
	memset(&c, 0, sizeof(c));
	tgd_hdr(g, &c.hdr, VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING, false);
	c.resource_id = htole32(id);
	c.nr_entries = htole32(n);
	return tgd_cmd(g, TGD_QUEUE_CTRL, &c, sizeof(c), gpa,
	               (uint32_t)(n * sizeof(struct virtio_gpu_mem_entry)), NULL, 0);
}

int tgd_detach_backing(struct tgd *g, uint32_t id)
{
	struct virtio_gpu_resource_detach_backing c;
	memset(&c, 0, sizeof(c));
	tgd_hdr(g, &c.hdr, VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, false);
	c.resource_id = htole32(id);
	return tgd_cmd(g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

static void put_rect(struct virtio_gpu_rect *r, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
	r->x = htole32(x);
	r->y = htole32(y);
	r->width = htole32(w);
	r->height = htole32(h);
}

int tgd_set_scanout(struct tgd *g, uint32_t scanout, uint32_t id, uint32_t x, uint32_t y,
                    uint32_t w, uint32_t h)
{
	struct virtio_gpu_set_scanout c;
	memset(&c, 0, sizeof(c));
	tgd_hdr(g, &c.hdr, VIRTIO_GPU_CMD_SET_SCANOUT, false);
	put_rect(&c.r, x, y, w, h);
	c.scanout_id = htole32(scanout);
	c.resource_id = htole32(id);
	return tgd_cmd(g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

static void build_transfer(struct tgd *g, struct virtio_gpu_transfer_to_host_2d *c, uint32_t id,
                           uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint64_t offset,
                           bool fence)
{
	memset(c, 0, sizeof(*c));
	tgd_hdr(g, &c->hdr, VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D, fence);
	put_rect(&c->r, x, y, w, h);
	c->offset = htole64(offset);
	c->resource_id = htole32(id);
}

static void build_flush(struct tgd *g, struct virtio_gpu_resource_flush *c, uint32_t id, uint32_t x,
                        uint32_t y, uint32_t w, uint32_t h, bool fence)
{
	memset(c, 0, sizeof(*c));
	tgd_hdr(g, &c->hdr, VIRTIO_GPU_CMD_RESOURCE_FLUSH, fence);
	put_rect(&c->r, x, y, w, h);
	c->resource_id = htole32(id);
}

int tgd_transfer_to_host_2d(struct tgd *g, uint32_t id, uint32_t x, uint32_t y, uint32_t w,
                            uint32_t h, uint64_t offset, bool fence)
{
	struct virtio_gpu_transfer_to_host_2d c;
	build_transfer(g, &c, id, x, y, w, h, offset, fence);
	return tgd_cmd(g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

int tgd_resource_flush(struct tgd *g, uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                       bool fence)
{
	struct virtio_gpu_resource_flush c;
	build_flush(g, &c, id, x, y, w, h, fence);
	return tgd_cmd(g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

int tgd_transfer_async(struct tgd *g, uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                       uint64_t offset, bool fence, tgd_done_fn done, void *data, uint64_t *seq)
{
	struct virtio_gpu_transfer_to_host_2d c;
	build_transfer(g, &c, id, x, y, w, h, offset, fence);
	return tgd_submit(g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0,
	                  sizeof(struct virtio_gpu_ctrl_hdr), done, data, seq);
}

int tgd_flush_async(struct tgd *g, uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                    bool fence, tgd_done_fn done, void *data, uint64_t *seq)
{
	struct virtio_gpu_resource_flush c;
	build_flush(g, &c, id, x, y, w, h, fence);
	return tgd_submit(g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0,
	                  sizeof(struct virtio_gpu_ctrl_hdr), done, data, seq);
}

int tgd_get_display_info_async(struct tgd *g, tgd_done_fn done, void *data, uint64_t *seq)
{
	struct virtio_gpu_ctrl_hdr h;
	tgd_hdr(g, &h, VIRTIO_GPU_CMD_GET_DISPLAY_INFO, false);
	return tgd_submit(g, TGD_QUEUE_CTRL, &h, sizeof(h), 0, 0,
	                  sizeof(struct virtio_gpu_resp_display_info), done, data, seq);
}

static int cursor_cmd(struct tgd *g, uint32_t type, uint32_t scanout, uint32_t x, uint32_t y,
                      uint32_t id, uint32_t hot_x, uint32_t hot_y)
{
	struct virtio_gpu_update_cursor c;
	memset(&c, 0, sizeof(c));
	tgd_hdr(g, &c.hdr, type, false);
	c.pos.scanout_id = htole32(scanout);
	c.pos.x = htole32(x);
	c.pos.y = htole32(y);
	c.resource_id = htole32(id);
	c.hot_x = htole32(hot_x);
	c.hot_y = htole32(hot_y);
	return tgd_cmd(g, TGD_QUEUE_CURSOR, &c, sizeof(c), 0, 0, NULL, 0);
}

int tgd_update_cursor(struct tgd *g, uint32_t scanout, uint32_t x, uint32_t y, uint32_t id,
                      uint32_t hot_x, uint32_t hot_y)
{
	return cursor_cmd(g, VIRTIO_GPU_CMD_UPDATE_CURSOR, scanout, x, y, id, hot_x, hot_y);
}

int tgd_move_cursor(struct tgd *g, uint32_t scanout, uint32_t x, uint32_t y, uint32_t id)
{
	return cursor_cmd(g, VIRTIO_GPU_CMD_MOVE_CURSOR, scanout, x, y, id, 0, 0);
}

/* --- resources and patterns ------------------------------------------------------ */

int tgd_resource_new(struct tgd *g, uint32_t id, uint32_t format, uint32_t w, uint32_t h,
                     unsigned chunks, struct tgd_resource *out)
{
	struct virtio_gpu_mem_entry *e;
	uint64_t size, gpa;
	void *host;
	int r;

	if (!w || !h || w > 16384 || h > 16384)
		return -EINVAL;
	size = ((uint64_t)w * h * 4 + 4095) & ~4095ull;
	if (chunks < 1)
		chunks = 1;
	if (chunks > size / 4096)
		chunks = (unsigned)(size / 4096);
	r = testfe_mem_alloc(g->mem, size, 4096, &gpa, &host);
	if (r < 0)
		return r;
	r = tgd_resource_create_2d(g, id, format, w, h);
	if (r < 0)
		return r;
	e = calloc(chunks, sizeof(*e));
	if (!e)
		return -ENOMEM;
	/* Page-multiple chunks, the remainder in the last one: like scattered guest pages. */
	uint64_t per = (size / chunks) & ~4095ull, off = 0;
	for (unsigned i = 0; i < chunks; i++) {
		uint64_t len = i + 1 < chunks ? per : size - off;
		e[i].addr = gpa + off;
		e[i].length = (uint32_t)len;
		off += len;
	}
	r = tgd_attach_backing(g, id, e, chunks);
	free(e);
	if (r < 0)
		return r;
	out->id = id;
	out->format = format;
	out->width = w;
	out->height = h;
	out->stride = w * 4;
	out->gpa = gpa;
	out->pixels = host;
	out->size = size;
	return 0;
}

static uint32_t hash32(uint32_t v)
{
	/* A small integer mixer: neighbouring pixels get unrelated values. */
	v ^= v >> 16;
	v *= 0x7feb352dU;
	v ^= v >> 15;
	v *= 0x846ca68bU;
	v ^= v >> 16;
	return v;
}

uint32_t tgd_pattern_pixel(enum tgd_pattern p, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                           uint32_t seed)
{
	static const uint32_t bars[8] = { 0xffffff, 0xffff00, 0x00ffff, 0x00ff00,
		                          0xff00ff, 0xff0000, 0x0000ff, 0x000000 };
	uint32_t rgb;

	switch (p) {
	case TGD_PATTERN_SOLID:
		rgb = seed;
		break;
	case TGD_PATTERN_BARS:
		if (y < h * 3 / 4) {
			rgb = bars[(uint64_t)x * 8 / w];
		} else {
			uint32_t rr = w > 1 ? x * 255 / (w - 1) : 0;
			uint32_t gg = h > 1 ? y * 255 / (h - 1) : 0;
			rgb = rr << 16 | gg << 8 | ((x ^ y) & 255);
		}
		break;
	case TGD_PATTERN_HASH:
	default:
		rgb = hash32(x * 0x9e3779b1u ^ y * 0x85ebca77u ^ seed);
		break;
	}
	return 0xff000000u | (rgb & 0xffffff);
}

void tgd_fill_rect(const struct tgd_resource *r, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                   enum tgd_pattern p, uint32_t seed)
{
	for (uint32_t j = y; j < y + h && j < r->height; j++) {
		uint32_t *row = r->pixels + (size_t)j * r->width;
		for (uint32_t i = x; i < x + w && i < r->width; i++)
			row[i] = htole32(tgd_pattern_pixel(p, i, j, r->width, r->height, seed));
	}
}

void tgd_fill(const struct tgd_resource *r, enum tgd_pattern p, uint32_t seed)
{
	tgd_fill_rect(r, 0, 0, r->width, r->height, p, seed);
}
