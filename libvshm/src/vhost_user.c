/* SPDX-License-Identifier: MIT */
/*
 * vhost_user.c - the vhost-user back-end engine: negotiation, memory table,
 * vring configuration and the start/stop/enable rules of the vhost-user
 * specification.
 *
 * Flow: the connection watch reads framed messages (vshm_conn), the pure
 * layer (vhost_user_msg.c) checks sizes, flags and fd counts, and one
 * handler per request applies it. Errors come in two strengths:
 *  - a malformed frame (bad version or flags, wrong payload size) or a
 *    request whose reply body cannot be produced closes the connection;
 *  - a well-formed request that cannot be honoured (bad ring index, size,
 *    address, memory region ...) fails: REPLY_ACK gets a non-zero ack, and
 *    the connection stays up.
 * Every received fd is kept by exactly one owner or closed here.
 */
#include <vshm/vhost_user.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vshm/conn.h>
#include <vshm/log.h>

#include "util.h"
#include "vhost_user_msg.h"
#include "vhost_user_shmem.h"
#include "virtqueue-internal.h"

#define VU_MAX_QUEUES 64u
/* Device feature bits live in 0..23; 24..63 are transport bits. */
#define VU_DEVICE_FEATURE_MASK 0xffffffull
#define VU_TRANSPORT_FEATURES                                                                      \
	(VSHM_VIRTIO_F_VERSION_1 | VSHM_VIRTIO_F_INDIRECT_DESC | VSHM_VIRTIO_F_EVENT_IDX |         \
	 VSHM_VIRTIO_F_NOTIFY_ON_EMPTY | VSHM_VU_F_PROTOCOL_FEATURES)
/* Replies are tiny and the front-end waits for each: a peer that does not
 * read them is broken; this bounds what it can make us buffer. */
#define VU_MAX_QUEUED (64u * 1024u)

struct vu_queue {
	struct vshm_vu_dev *dev;
	struct vshm_vq *vq;
	struct vshm_watch *kick_watch;
	/* SET_VRING_KICK seen since the last stop (with an fd or polling). */
	bool kick_set;
	/* SET_VRING_ADDR accepted; the uvas are kept to spot changes. */
	bool addr_set;
	uint64_t desc, avail, used;
};

struct vshm_vu_dev {
	struct vshm_vu_config cfg;
	struct vshm_vu_device_ops ops;
	void *data;
	struct vshm_loop loop;

	struct vshm_mem *mem;
	struct vu_queue *queues;

	struct vshm_conn *conn;
	struct vshm_watch *conn_watch;
	uint32_t conn_events;
	/* Set while handling a message: closing is deferred until it returns,
	 * because the message points into the connection's buffer. */
	bool dispatching;
	bool want_close;

	struct vu_backend *backend;
	struct vu_shmem shmem;

	uint64_t features;
	bool features_set;
	uint64_t pf;
	uint8_t status;
	bool owner;

	struct vshm_vu_stats stats;
	struct vshm_ratelimit rl;
};

#define peer_log(dev, lvl, ...) vshm_log_ratelimited(&(dev)->rl, (lvl), "vhost-user: " __VA_ARGS__)

/* ---- private accessors for vhost_user_backend_req.c ---- */

struct vu_backend **vu_dev_backend_slot(struct vshm_vu_dev *dev)
{
	return &dev->backend;
}

uint64_t vu_dev_pf(const struct vshm_vu_dev *dev)
{
	return dev->pf;
}

int vu_dev_backend_timeout_ms(const struct vshm_vu_dev *dev)
{
	return dev->cfg.backend_reply_timeout_ms;
}

/* ---- private accessors for vhost_user_shmem.c ---- */

struct vu_shmem *vu_dev_shmem(struct vshm_vu_dev *dev)
{
	return &dev->shmem;
}

int vu_dev_shmem_sizes(struct vshm_vu_dev *dev, uint64_t sizes[VU_SHMEM_MAX_REGIONS])
{
	memset(sizes, 0, VU_SHMEM_MAX_REGIONS * sizeof(sizes[0]));
	if (!dev->ops.get_shmem_config)
		return -ENOTSUP;
	return dev->ops.get_shmem_config(dev->data, sizes);
}

/* ---- offered features ---- */

static uint64_t offered_features(const struct vshm_vu_dev *dev)
{
	return (dev->ops.get_features(dev->data) & VU_DEVICE_FEATURE_MASK) | VU_TRANSPORT_FEATURES;
}

static uint64_t offered_protocol_features(const struct vshm_vu_dev *dev)
{
	uint64_t pf = dev->cfg.protocol_features & VSHM_VU_PF_SUPPORTED;

	/* SHMEM only means something when the device has regions to describe.
	 * Never 20 or 21, the bit's earlier homes: they mean
	 * GET_VRING_BASE_INFLIGHT and GPA_ADDRESSES now (pitfall 1). */
	if (dev->ops.get_shmem_config && (dev->cfg.protocol_features & VSHM_VU_PF_SHMEM))
		pf |= VSHM_VU_PF_SHMEM;
	if (dev->ops.get_shmem_config && dev->cfg.shmem_crosvm_legacy)
		pf |= VSHM_VU_PF_CROSVM_SHMEM_REGIONS;
	return pf;
}

/* ---- rings ---- */

static struct vu_queue *queue_at(struct vshm_vu_dev *dev, uint32_t index)
{
	if (index >= dev->cfg.num_queues)
		return NULL;
	return &dev->queues[index];
}

static void kick_watch_remove(struct vu_queue *q)
{
	if (q->kick_watch) {
		q->dev->loop.ops->watch_remove(q->dev->loop.loop, q->kick_watch);
		q->kick_watch = NULL;
	}
}

static void queue_process(struct vu_queue *q)
{
	if (vshm_vq_is_ready(q->vq))
		q->dev->ops.queue_kick(q->dev->data, q->vq);
}

/*
 * Start the ring if everything it needs is there: size, mapped addresses
 * and a kick (fd or polling). The spec starts a ring on the first kick
 * after SET_VRING_KICK; starting at SET_VRING_KICK itself when the rings
 * are already valid is equivalent, because processing an empty ring is a
 * no-op, and it serves polling-mode rings that never get a kick.
 */
static bool queue_try_start(struct vu_queue *q)
{
	struct vshm_vu_dev *dev = q->dev;

	if (vshm_vq_is_started(q->vq))
		return true;
	if (!q->kick_set || !q->addr_set || vshm_vq_size(q->vq) == 0)
		return false;
	if (vshm_vq_map(q->vq) < 0)
		return false;
	vshm_vq_set_started(q->vq, true);
	if (dev->ops.queue_state)
		dev->ops.queue_state(dev->data, q->vq, true);
	queue_process(q);
	return true;
}

/* Stop the ring: the device gives back what it holds first (queue_state). */
static void queue_stop(struct vu_queue *q)
{
	struct vshm_vu_dev *dev = q->dev;

	if (vshm_vq_is_started(q->vq)) {
		if (dev->ops.queue_state)
			dev->ops.queue_state(dev->data, q->vq, false);
		vshm_vq_set_started(q->vq, false);
	}
	kick_watch_remove(q);
	vshm_vq_set_kick_fd(q->vq, -1);
	q->kick_set = false;
}

static void queue_reset(struct vu_queue *q)
{
	queue_stop(q);
	vshm_vq_reset(q->vq);
	q->addr_set = false;
	q->desc = q->avail = q->used = 0;
}

static void kick_cb(int fd, uint32_t revents, void *data)
{
	struct vu_queue *q = data;

	if (!(revents & VSHM_EV_IN) && (revents & (VSHM_EV_ERR | VSHM_EV_HUP))) {
		/* A dead kick fd (pipe writer gone) would wake us forever. */
		peer_log(q->dev, VSHM_LOG_WARN, "kick fd of queue %u failed", vshm_vq_index(q->vq));
		kick_watch_remove(q);
		return;
	}
	vshm_vq_consume_kick(q->vq);
	if (!vshm_vq_is_started(q->vq))
		queue_try_start(q);
	else
		queue_process(q);
}

/* After a memory table change: re-translate ring addresses. */
static void queues_remap(struct vshm_vu_dev *dev)
{
	for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
		struct vu_queue *q = &dev->queues[i];

		if (!q->addr_set)
			continue;
		if (vshm_vq_map(q->vq) < 0) {
			if (vshm_vq_is_started(q->vq)) {
				peer_log(dev, VSHM_LOG_WARN,
				         "queue %u rings left guest memory; stopping it", i);
				if (dev->ops.queue_state)
					dev->ops.queue_state(dev->data, q->vq, false);
				vshm_vq_set_started(q->vq, false);
			}
			continue;
		}
		if (!vshm_vq_is_started(q->vq))
			queue_try_start(q);
	}
}

static void queues_apply_features(struct vshm_vu_dev *dev)
{
	struct vshm_vq_features f = {
		.event_idx = (dev->features & VSHM_VIRTIO_F_EVENT_IDX) != 0,
		.indirect = (dev->features & VSHM_VIRTIO_F_INDIRECT_DESC) != 0,
	};

	for (unsigned i = 0; i < dev->cfg.num_queues; i++)
		vshm_vq_set_features(dev->queues[i].vq, &f);
}

/* Device-level reset (RESET_DEVICE, RESET_OWNER): the connection, its
 * protocol features, memory table and back-end channel survive. */
static void device_reset(struct vshm_vu_dev *dev)
{
	for (unsigned i = 0; i < dev->cfg.num_queues; i++)
		queue_reset(&dev->queues[i]);
	/* The spec has the front-end drop all mappings; crosvm's does not. */
	vu_shmem_drop_all(dev, true, false);
	dev->features = 0;
	dev->features_set = false;
	dev->status = 0;
	if (dev->ops.reset)
		dev->ops.reset(dev->data);
}

/* ---- connection ---- */

static void conn_update_events(struct vshm_vu_dev *dev)
{
	uint32_t want = VSHM_EV_IN;

	if (!dev->conn)
		return;
	if (vshm_conn_wants_write(dev->conn))
		want |= VSHM_EV_OUT;
	if (want != dev->conn_events &&
	    dev->loop.ops->watch_update(dev->loop.loop, dev->conn_watch, want) == 0)
		dev->conn_events = want;
}

static void close_conn(struct vshm_vu_dev *dev, bool notify)
{
	if (!dev->conn)
		return;
	dev->loop.ops->watch_remove(dev->loop.loop, dev->conn_watch);
	dev->conn_watch = NULL;
	vshm_conn_destroy(dev->conn);
	dev->conn = NULL;
	dev->want_close = false;

	/* Rings go before memory: they point into it. */
	for (unsigned i = 0; i < dev->cfg.num_queues; i++)
		queue_reset(&dev->queues[i]);
	vu_shmem_drop_all(dev, false, true);
	vu_backend_destroy(dev->backend);
	dev->backend = NULL;
	vshm_mem_clear(dev->mem);
	dev->features = 0;
	dev->features_set = false;
	dev->pf = 0;
	dev->status = 0;
	dev->owner = false;
	dev->stats.disconnects++;
	if (dev->ops.reset)
		dev->ops.reset(dev->data);
	if (notify && dev->ops.disconnected)
		dev->ops.disconnected(dev->data);
}

/* Close now, or right after the message being handled. */
static void request_close(struct vshm_vu_dev *dev)
{
	if (dev->dispatching)
		dev->want_close = true;
	else
		close_conn(dev, true);
}

static int send_reply(struct vshm_vu_dev *dev, uint32_t request, const void *payload, uint32_t size)
{
	struct vu_hdr hdr = {
		.request = request,
		.flags = VU_FLAG_VERSION | VU_FLAG_REPLY,
		.size = size,
	};
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = size },
	};
	int r;

	if (!dev->conn)
		return -ENOTCONN;
	r = vshm_conn_send(dev->conn, iov, size ? 2 : 1, NULL, 0);
	if (r < 0) {
		peer_log(dev, VSHM_LOG_WARN, "cannot send reply: %s", strerror(-r));
		request_close(dev);
		return r;
	}
	conn_update_events(dev);
	return 0;
}

static int reply_u64(struct vshm_vu_dev *dev, uint32_t request, uint64_t v)
{
	return send_reply(dev, request, &v, sizeof(v));
}

/* ---- request handlers ----
 * Each gets the parsed message and its fds; it sets an entry to -1 when it
 * takes that fd. Return 0 or -errno. Handlers of requests with a reply body
 * send it themselves; returning an error from them closes the connection.
 */

typedef int (*vu_handler)(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds);

static int h_get_features(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	return reply_u64(dev, m->request, offered_features(dev));
}

static int h_set_features(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	uint64_t v = vu_load_u64(m->payload);
	uint64_t dev_offered = offered_features(dev) & VU_DEVICE_FEATURE_MASK;
	int r;

	/*
	 * Device bits must have been offered. Transport bits (24..63) are
	 * accepted and ignored: QEMU forwards the guest's whole transport
	 * set, including bits it chose itself (pitfall 15).
	 */
	if ((v & VU_DEVICE_FEATURE_MASK) & ~dev_offered)
		return -EINVAL;
	if (dev->ops.set_features) {
		r = dev->ops.set_features(dev->data, v);
		if (r < 0)
			return r;
	}
	dev->features = v;
	dev->features_set = true;
	queues_apply_features(dev);
	/* Without PROTOCOL_FEATURES there is no SET_VRING_ENABLE: all rings
	 * are enabled now. With it they stay as SET_VRING_ENABLE left them. */
	if (!(v & VSHM_VU_F_PROTOCOL_FEATURES)) {
		for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
			struct vu_queue *q = &dev->queues[i];

			if (!vshm_vq_is_enabled(q->vq)) {
				vshm_vq_set_enabled(q->vq, true);
				queue_process(q);
			}
		}
	}
	return 0;
}

static int h_set_owner(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	/* QEMU re-sends it after a reconnect handshake; harmless. */
	dev->owner = true;
	return 0;
}

static int h_reset(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	/* RESET_OWNER is QEMU's fallback for RESET_DEVICE; both reset the device. */
	device_reset(dev);
	return 0;
}

static int h_set_mem_table(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	struct vshm_mem_region_desc d[VU_MAX_MEM_REGIONS];
	uint32_t n = vu_load_u32(m->payload);
	int r;

	for (uint32_t i = 0; i < n; i++) {
		struct vu_mem_region reg;

		memcpy(&reg, m->payload + sizeof(struct vu_mem_table_hdr) + i * sizeof(reg),
		       sizeof(reg));
		d[i].guest_addr = reg.guest_phys_addr;
		d[i].size = reg.memory_size;
		d[i].user_addr = reg.userspace_addr;
		d[i].mmap_offset = reg.mmap_offset;
	}
	if (n == 0) {
		vshm_mem_clear(dev->mem);
		r = 0;
	} else {
		/* The table consumes the fds on success and failure alike. */
		r = vshm_mem_set_table(dev->mem, d, fds, n);
		for (uint32_t i = 0; i < n; i++)
			fds[i] = -1;
	}
	if (r == 0)
		queues_remap(dev);
	return r;
}

static void region_from_payload(const uint8_t *p, struct vshm_mem_region_desc *d)
{
	struct vu_single_mem_region s;

	memcpy(&s, p, sizeof(s));
	d->guest_addr = s.region.guest_phys_addr;
	d->size = s.region.memory_size;
	d->user_addr = s.region.userspace_addr;
	d->mmap_offset = s.region.mmap_offset;
}

static int h_get_max_mem_slots(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	return reply_u64(dev, m->request, dev->cfg.max_mem_slots);
}

static int h_add_mem_reg(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	struct vshm_mem_region_desc d;
	int r;

	region_from_payload(m->payload, &d);
	if (vshm_mem_num_regions(dev->mem) >= dev->cfg.max_mem_slots)
		return -ENOSPC; /* the fd is closed by the caller */
	r = vshm_mem_add_region(dev->mem, &d, fds[0]);
	fds[0] = -1;
	if (r == 0)
		queues_remap(dev);
	return r;
}

static int h_rem_mem_reg(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	struct vshm_mem_region_desc d;
	int r;

	/* Some front-ends attach the region's fd; it is of no use here and is
	 * closed by the caller without counting as an error. */
	region_from_payload(m->payload, &d);
	r = vshm_mem_remove_region(dev->mem, &d);
	if (r == 0)
		queues_remap(dev);
	return r;
}

static int h_set_vring_num(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	struct vu_vring_state s;
	struct vu_queue *q;

	memcpy(&s, m->payload, sizeof(s));
	q = queue_at(dev, s.index);
	if (!q)
		return -EINVAL;
	if (vshm_vq_is_started(q->vq))
		return -EBUSY;
	return vshm_vq_set_num(q->vq, s.num, dev->cfg.max_queue_size);
}

static int h_set_vring_addr(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	struct vu_vring_addr a;
	struct vu_queue *q;
	int r;

	memcpy(&a, m->payload, sizeof(a));
	q = queue_at(dev, a.index);
	if (!q || (a.flags & ~VU_VRING_F_LOG))
		return -EINVAL;
	if (vshm_vq_is_started(q->vq)) {
		/* A running ring may only see its LOG flag toggled. */
		if (a.desc == q->desc && a.avail == q->avail && a.used == q->used)
			return 0;
		return -EBUSY;
	}
	r = vshm_vq_set_addr(q->vq, a.desc, a.avail, a.used);
	if (r < 0) {
		q->addr_set = false;
		return r;
	}
	q->desc = a.desc;
	q->avail = a.avail;
	q->used = a.used;
	q->addr_set = true;
	/* Translate now when size and table are known, so a bad address is
	 * reported to this request; otherwise the ring is mapped when it starts. */
	if (vshm_vq_size(q->vq) > 0 && vshm_mem_num_regions(dev->mem) > 0) {
		r = vshm_vq_map(q->vq);
		if (r < 0) {
			q->addr_set = false;
			return r;
		}
	}
	return 0;
}

static int h_set_vring_base(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	struct vu_vring_state s;
	struct vu_queue *q;

	memcpy(&s, m->payload, sizeof(s));
	q = queue_at(dev, s.index);
	if (!q)
		return -EINVAL;
	if (vshm_vq_is_started(q->vq))
		return -EBUSY;
	/* Split rings only: bits 16..31 are the packed-ring fields. */
	if (s.num > 0xffff)
		return -EINVAL;
	vshm_vq_set_base(q->vq, (uint16_t)s.num);
	return 0;
}

static int h_get_vring_base(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	struct vu_vring_state s;
	struct vu_queue *q;

	memcpy(&s, m->payload, sizeof(s));
	q = queue_at(dev, s.index);
	if (!q)
		return -EINVAL;
	queue_stop(q);
	s.num = vshm_vq_get_base(q->vq);
	return send_reply(dev, m->request, &s, sizeof(s));
}

static int h_set_vring_kick(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	uint64_t v = vu_load_u64(m->payload);
	struct vu_queue *q = queue_at(dev, (uint32_t)(v & VU_VRING_IDX_MASK));
	int fd, r;

	if (!q)
		return -EINVAL;
	fd = (v & VU_VRING_NOFD) ? -1 : fds[0];
	kick_watch_remove(q);
	if (fd >= 0) {
		r = dev->loop.ops->watch_add(dev->loop.loop, fd, VSHM_EV_IN, kick_cb, q,
		                             &q->kick_watch);
		if (r < 0) {
			q->kick_watch = NULL;
			return r; /* fd still ours: the caller closes it */
		}
		fds[0] = -1;
	}
	vshm_vq_set_kick_fd(q->vq, fd);
	q->kick_set = true;
	queue_try_start(q);
	return 0;
}

/* SET_VRING_CALL / SET_VRING_ERR: hand the fd (or "none") to the queue. */
static int set_vring_notify_fd(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds,
                               void (*set_fd)(struct vshm_vq *, int))
{
	uint64_t v = vu_load_u64(m->payload);
	struct vu_queue *q = queue_at(dev, (uint32_t)(v & VU_VRING_IDX_MASK));

	if (!q)
		return -EINVAL;
	if (v & VU_VRING_NOFD) {
		set_fd(q->vq, -1);
	} else {
		set_fd(q->vq, fds[0]);
		fds[0] = -1;
	}
	return 0;
}

static int h_set_vring_call(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	return set_vring_notify_fd(dev, m, fds, vshm_vq_set_call_fd);
}

static int h_set_vring_err(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	return set_vring_notify_fd(dev, m, fds, vshm_vq_set_err_fd);
}

static int h_get_protocol_features(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	return reply_u64(dev, m->request, offered_protocol_features(dev));
}

static int h_set_protocol_features(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	uint64_t v = vu_load_u64(m->payload);

	/*
	 * Acking a bit that was never offered is refused rather than masked:
	 * e.g. GPA_ADDRESSES (21) would change how every address is read.
	 */
	if (v & ~offered_protocol_features(dev))
		return -EINVAL;
	dev->pf = v;
	return 0;
}

static int h_get_queue_num(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	return reply_u64(dev, m->request, dev->cfg.num_queues);
}

static int h_set_vring_enable(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	struct vu_vring_state s;
	struct vu_queue *q;

	memcpy(&s, m->payload, sizeof(s));
	q = queue_at(dev, s.index);
	if (!q || s.num > 1)
		return -EINVAL;
	vshm_vq_set_enabled(q->vq, s.num == 1);
	/* Buffers may have been queued while the ring was disabled. */
	if (s.num == 1)
		queue_process(q);
	return 0;
}

static int h_set_backend_req_fd(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	struct vu_backend *b;
	int r;

	if (!(dev->pf & VSHM_VU_PF_BACKEND_REQ))
		return -EINVAL;
	r = vu_backend_new(fds[0], &b);
	fds[0] = -1;
	if (r < 0)
		return r;
	vu_backend_destroy(dev->backend);
	dev->backend = b;
	return 0;
}

static bool config_range_ok(const struct vshm_vu_dev *dev, uint32_t offset, uint32_t size)
{
	return size > 0 && size <= VU_MAX_CONFIG_SIZE &&
	       (uint64_t)offset + size <= dev->cfg.config_size;
}

static int h_get_config(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	uint8_t buf[sizeof(struct vu_config_hdr) + VU_MAX_CONFIG_SIZE];
	struct vu_config_hdr c;
	int r = -EINVAL;

	memcpy(&c, m->payload, sizeof(c));
	if (config_range_ok(dev, c.offset, c.size) && dev->ops.get_config) {
		memset(buf, 0, sizeof(buf));
		r = dev->ops.get_config(dev->data, c.offset, buf + sizeof(c), c.size);
	} else if (!dev->ops.get_config) {
		r = -ENOTSUP;
	}
	if (r < 0) {
		/* The spec's failure answer is an empty payload. */
		dev->stats.errors++;
		peer_log(dev, VSHM_LOG_WARN, "GET_CONFIG offset %u size %u failed: %s", c.offset,
		         c.size, strerror(-r));
		return send_reply(dev, m->request, NULL, 0);
	}
	memcpy(buf, &c, sizeof(c));
	return send_reply(dev, m->request, buf, (uint32_t)sizeof(c) + c.size);
}

static int h_set_config(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	struct vu_config_hdr c;

	memcpy(&c, m->payload, sizeof(c));
	if (!config_range_ok(dev, c.offset, c.size))
		return -EINVAL;
	if (!dev->ops.set_config)
		return -ENOTSUP;
	return dev->ops.set_config(dev->data, c.offset, m->payload + sizeof(c), c.size, c.flags);
}

static int h_set_status(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	uint64_t v = vu_load_u64(m->payload);

	if (v > 0xff)
		return -EINVAL;
	dev->status = (uint8_t)v;
	if (v == 0)
		vu_shmem_drop_all(dev, true, false); /* status 0 is a device reset */
	if (dev->ops.set_status)
		dev->ops.set_status(dev->data, dev->status);
	return 0;
}

static int h_get_status(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	return reply_u64(dev, m->request, dev->status);
}

static int h_get_shmem_config(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	uint64_t sizes[VU_SHMEM_MAX_REGIONS];
	struct vu_shmem_config c;
	int r;

	if (!(dev->pf & VSHM_VU_PF_SHMEM) || !dev->ops.get_shmem_config)
		return -ENOTSUP;
	memset(sizes, 0, sizeof(sizes));
	memset(&c, 0, sizeof(c));
	r = dev->ops.get_shmem_config(dev->data, sizes);
	if (r < 0) {
		/* A reply is owed; no regions is the honest answer. */
		dev->stats.errors++;
		memset(sizes, 0, sizeof(sizes));
	}
	for (unsigned i = 0; i < VU_SHMEM_MAX_REGIONS; i++)
		if (sizes[i])
			c.nregions++;
	memcpy(c.memory_sizes, sizes, sizeof(sizes));
	return send_reply(dev, m->request, &c, sizeof(c));
}

/* crosvm's GET_SHARED_MEMORY_REGIONS (1004), only with bit 31 negotiated:
 * u64 count, then {u8 id; u8 pad[7]; u64 length} per non-zero region. */
static int h_crosvm_get_shmem_regions(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	uint8_t buf[VU_CROSVM_REGIONS_REPLY_MAX];
	uint64_t sizes[VU_SHMEM_MAX_REGIONS];

	if (m->size != 0 || m->nfds != 0)
		return -EINVAL;
	if (vu_dev_shmem_sizes(dev, sizes) < 0) {
		dev->stats.errors++;
		memset(sizes, 0, sizeof(sizes));
	}
	return send_reply(dev, m->request, buf, vu_shmem_regions_reply(sizes, buf));
}

static const vu_handler handlers[VU_REQ_MAX] = {
	[VU_REQ_GET_FEATURES] = h_get_features,
	[VU_REQ_SET_FEATURES] = h_set_features,
	[VU_REQ_SET_OWNER] = h_set_owner,
	[VU_REQ_RESET_OWNER] = h_reset,
	[VU_REQ_SET_MEM_TABLE] = h_set_mem_table,
	[VU_REQ_SET_VRING_NUM] = h_set_vring_num,
	[VU_REQ_SET_VRING_ADDR] = h_set_vring_addr,
	[VU_REQ_SET_VRING_BASE] = h_set_vring_base,
	[VU_REQ_GET_VRING_BASE] = h_get_vring_base,
	[VU_REQ_SET_VRING_KICK] = h_set_vring_kick,
	[VU_REQ_SET_VRING_CALL] = h_set_vring_call,
	[VU_REQ_SET_VRING_ERR] = h_set_vring_err,
	[VU_REQ_GET_PROTOCOL_FEATURES] = h_get_protocol_features,
	[VU_REQ_SET_PROTOCOL_FEATURES] = h_set_protocol_features,
	[VU_REQ_GET_QUEUE_NUM] = h_get_queue_num,
	[VU_REQ_SET_VRING_ENABLE] = h_set_vring_enable,
	[VU_REQ_SET_BACKEND_REQ_FD] = h_set_backend_req_fd,
	[VU_REQ_GET_CONFIG] = h_get_config,
	[VU_REQ_SET_CONFIG] = h_set_config,
	[VU_REQ_RESET_DEVICE] = h_reset,
	[VU_REQ_GET_MAX_MEM_SLOTS] = h_get_max_mem_slots,
	[VU_REQ_ADD_MEM_REG] = h_add_mem_reg,
	[VU_REQ_REM_MEM_REG] = h_rem_mem_reg,
	[VU_REQ_SET_STATUS] = h_set_status,
	[VU_REQ_GET_STATUS] = h_get_status,
	[VU_REQ_GET_SHMEM_CONFIG] = h_get_shmem_config,
};

static unsigned close_fds(struct vshm_vu_dev *dev, int *fds, unsigned nfds)
{
	unsigned closed = 0;

	for (unsigned i = 0; i < nfds; i++) {
		if (fds[i] >= 0) {
			vshm_close_fd(fds[i]);
			fds[i] = -1;
			closed++;
		}
	}
	dev->stats.fds_closed += closed;
	return closed;
}

static void ack(struct vshm_vu_dev *dev, const struct vu_msg *m, int r)
{
	if ((dev->pf & VSHM_VU_PF_REPLY_ACK) && (m->flags & VU_FLAG_NEED_REPLY))
		reply_u64(dev, m->request, r < 0 ? (uint64_t)-r : 0);
}

static int device_request(struct vshm_vu_dev *dev, const struct vu_msg *m, int *fds)
{
	int r;

	if (!dev->ops.device_request) {
		close_fds(dev, fds, m->nfds);
		return -ENOTSUP;
	}
	/* The device owns the fds from here, whatever it returns. */
	r = dev->ops.device_request(dev->data, m->request, m->flags, m->payload, m->size, fds,
	                            m->nfds);
	for (unsigned i = 0; i < m->nfds; i++)
		fds[i] = -1;
	return r;
}

static void handle_msg(struct vshm_vu_dev *dev, struct vshm_conn_msg *cm)
{
	struct vu_msg m;
	enum vu_parse_error pe;
	int r;

	dev->stats.requests++;
	pe = vu_msg_parse(cm->hdr, cm->payload, cm->payload_size, cm->nfds, &m);
	if (pe != VU_PARSE_OK) {
		dev->stats.errors++;
		close_fds(dev, cm->fds, cm->nfds);
		peer_log(dev, VSHM_LOG_WARN, "request %u (%s): %s", m.request, m.info->name,
		         vu_parse_error_str(pe));
		/* A reply body we cannot produce would leave the peer waiting. */
		if (vu_parse_error_is_fatal(pe) || m.info->has_reply)
			request_close(dev);
		else
			ack(dev, &m, -EINVAL);
		return;
	}

	if (m.request == VU_REQ_CROSVM_GET_SHARED_MEMORY_REGIONS &&
	    (dev->pf & VSHM_VU_PF_CROSVM_SHMEM_REGIONS)) {
		/* A reply body is owed: any failure closes the connection. */
		r = h_crosvm_get_shmem_regions(dev, &m, cm->fds);
		close_fds(dev, cm->fds, cm->nfds);
		if (r < 0) {
			dev->stats.errors++;
			peer_log(dev, VSHM_LOG_WARN, "GET_SHARED_MEMORY_REGIONS failed: %s",
			         strerror(-r));
			request_close(dev);
		}
		return;
	}

	switch (m.info->kind) {
	case VU_KIND_HANDLED:
		r = handlers[m.request](dev, &m, cm->fds);
		break;
	case VU_KIND_UNSUPPORTED:
		r = -ENOTSUP;
		break;
	case VU_KIND_DEVICE:
	default:
		r = device_request(dev, &m, cm->fds);
		if (r == -ENOTSUP)
			dev->stats.unknown_requests++;
		break;
	}
	/* Whatever a handler did not take is closed; REM_MEM_REG's optional
	 * fd is expected, anything else left over belongs to a failure. */
	close_fds(dev, cm->fds, cm->nfds);

	if (r < 0) {
		dev->stats.errors++;
		peer_log(dev, VSHM_LOG_WARN, "request %u (%s) failed: %s", m.request, m.info->name,
		         strerror(-r));
		if (m.info->has_reply) {
			request_close(dev);
			return;
		}
	}
	if (!m.info->has_reply)
		ack(dev, &m, r);
}

static void conn_cb(int fd, uint32_t revents, void *data)
{
	struct vshm_vu_dev *dev = data;
	struct vshm_conn_msg msg;
	int r;

	if (revents & VSHM_EV_OUT) {
		r = vshm_conn_flush(dev->conn);
		if (r < 0 && r != -EAGAIN) {
			close_conn(dev, true);
			return;
		}
		conn_update_events(dev);
	}
	if (!(revents & (VSHM_EV_IN | VSHM_EV_HUP | VSHM_EV_ERR)))
		return;
	/* Drain: the conn may hold several buffered messages that the fd
	 * will not signal again. */
	for (;;) {
		r = vshm_conn_recv(dev->conn, &msg);
		if (r == -EAGAIN)
			return;
		if (r < 0) {
			if (r != -EPIPE)
				peer_log(dev, VSHM_LOG_WARN, "connection error: %s", strerror(-r));
			close_conn(dev, true);
			return;
		}
		dev->dispatching = true;
		handle_msg(dev, &msg);
		dev->dispatching = false;
		if (dev->want_close) {
			close_conn(dev, true);
			return;
		}
	}
}

/* ---- public API ---- */

VSHM_EXPORT void vshm_vu_config_defaults(struct vshm_vu_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->num_queues = 2;
	cfg->max_queue_size = 1024;
	cfg->protocol_features = VSHM_VU_PF_SUPPORTED | VSHM_VU_PF_SHMEM;
	cfg->max_mem_slots = 32;
	cfg->config_size = 0;
	cfg->backend_reply_timeout_ms = 1000;
}

static bool config_valid(const struct vshm_vu_config *cfg)
{
	if (cfg->num_queues < 1 || cfg->num_queues > VU_MAX_QUEUES)
		return false;
	if (cfg->max_queue_size == 0 || cfg->max_queue_size > VSHM_VQ_MAX_SIZE ||
	    (cfg->max_queue_size & (cfg->max_queue_size - 1)))
		return false;
	if (cfg->max_mem_slots < 1 || cfg->max_mem_slots > VSHM_MEM_MAX_SLOTS)
		return false;
	return cfg->backend_reply_timeout_ms >= 0;
}

VSHM_EXPORT int vshm_vu_dev_new(const struct vshm_vu_config *cfg,
                                const struct vshm_vu_device_ops *ops, void *data,
                                const struct vshm_loop *loop, struct vshm_vu_dev **out)
{
	struct vshm_vu_dev *dev;
	unsigned slots;
	int r;

	if (!cfg || !ops || !loop || !loop->ops || !out || !ops->get_features || !ops->queue_kick ||
	    !loop->ops->watch_add || !loop->ops->watch_update || !loop->ops->watch_remove ||
	    !config_valid(cfg))
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->cfg = *cfg;
	dev->ops = *ops;
	dev->data = data;
	dev->loop = *loop;
	dev->rl = (struct vshm_ratelimit)VSHM_RATELIMIT_INIT(5000, 20);

	/* SET_MEM_TABLE may carry 8 regions even when fewer slots are advertised. */
	slots = cfg->max_mem_slots > VU_MAX_MEM_REGIONS ? cfg->max_mem_slots : VU_MAX_MEM_REGIONS;
	r = vshm_mem_new(slots, &dev->mem);
	if (r < 0)
		goto err;
	dev->queues = calloc(cfg->num_queues, sizeof(*dev->queues));
	if (!dev->queues) {
		r = -ENOMEM;
		goto err;
	}
	for (unsigned i = 0; i < cfg->num_queues; i++) {
		dev->queues[i].dev = dev;
		r = vshm_vq_new(dev->mem, i, &dev->queues[i].vq);
		if (r < 0)
			goto err;
	}
	*out = dev;
	return 0;
err:
	vshm_vu_dev_destroy(dev);
	return r;
}

VSHM_EXPORT void vshm_vu_dev_destroy(struct vshm_vu_dev *dev)
{
	if (!dev)
		return;
	/* No disconnected() here: the embedder is tearing down on purpose. */
	if (dev->conn)
		close_conn(dev, false);
	vu_shmem_fini(&dev->shmem);
	vu_backend_destroy(dev->backend);
	if (dev->queues) {
		for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
			if (!dev->queues[i].vq)
				continue;
			kick_watch_remove(&dev->queues[i]);
			vshm_vq_destroy(dev->queues[i].vq);
		}
		free(dev->queues);
	}
	vshm_mem_destroy(dev->mem);
	free(dev);
}

VSHM_EXPORT int vshm_vu_dev_connect(struct vshm_vu_dev *dev, int fd)
{
	struct vshm_conn_config cc = {
		.header_size = VU_HDR_SIZE,
		.size_offset = VU_HDR_SIZE_OFFSET,
		.max_payload = VU_MAX_PAYLOAD,
		.max_fds = VU_MAX_FDS,
		.max_queued = VU_MAX_QUEUED,
	};
	int r;

	if (!dev) {
		vshm_close_fd(fd);
		return -EINVAL;
	}
	if (dev->conn) {
		vshm_close_fd(fd);
		return -EBUSY;
	}
	r = vshm_conn_new(fd, &cc, &dev->conn);
	if (r < 0) {
		dev->conn = NULL;
		return r;
	}
	r = dev->loop.ops->watch_add(dev->loop.loop, vshm_conn_get_fd(dev->conn), VSHM_EV_IN,
	                             conn_cb, dev, &dev->conn_watch);
	if (r < 0) {
		vshm_conn_destroy(dev->conn);
		dev->conn = NULL;
		dev->conn_watch = NULL;
		return r;
	}
	dev->conn_events = VSHM_EV_IN;
	dev->want_close = false;
	return 0;
}

VSHM_EXPORT bool vshm_vu_dev_is_connected(const struct vshm_vu_dev *dev)
{
	return dev && dev->conn && !dev->want_close;
}

VSHM_EXPORT void vshm_vu_dev_disconnect(struct vshm_vu_dev *dev)
{
	if (dev)
		request_close(dev);
}

VSHM_EXPORT unsigned vshm_vu_dev_num_queues(const struct vshm_vu_dev *dev)
{
	return dev->cfg.num_queues;
}

VSHM_EXPORT struct vshm_vq *vshm_vu_dev_get_queue(struct vshm_vu_dev *dev, unsigned index)
{
	struct vu_queue *q = queue_at(dev, index);

	return q ? q->vq : NULL;
}

VSHM_EXPORT struct vshm_mem *vshm_vu_dev_get_mem(struct vshm_vu_dev *dev)
{
	return dev->mem;
}

VSHM_EXPORT uint64_t vshm_vu_dev_features(const struct vshm_vu_dev *dev)
{
	return dev->features;
}

VSHM_EXPORT uint64_t vshm_vu_dev_protocol_features(const struct vshm_vu_dev *dev)
{
	return dev->pf;
}

VSHM_EXPORT void vshm_vu_dev_get_stats(const struct vshm_vu_dev *dev, struct vshm_vu_stats *out)
{
	*out = dev->stats;
}
