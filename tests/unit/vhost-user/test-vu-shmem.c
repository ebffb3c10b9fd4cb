/* SPDX-License-Identifier: MIT */
/*
 * Shared memory mappings: which convention a front-end negotiates, the
 * exact bytes of GET_SHMEM_CONFIG / GET_SHARED_MEMORY_REGIONS replies and
 * of SHMEM_MAP/UNMAP in both conventions, local validation (nothing sent),
 * reply errors and timeouts, and the reset/disconnect cleanup.
 *
 * The front-end's end of the back-end channel is a small peer thread of our
 * own (the engine blocks waiting for replies), because crosvm's legacy
 * front-end answers even requests that did not ask for a reply.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vshm/log.h>

#include "test-runner.h"
#include "vu-test.h"

#define PF_GPA_ADDRESSES (1ull << 21)
#define PF_INFLIGHT_BASE (1ull << 20)
#define PF_LEGACY        VSHM_VU_PF_CROSVM_SHMEM_REGIONS

#define REQ_CROSVM_GET_SHMEM_REGIONS 1004
#define B_SHMEM_MAP                  9
#define B_SHMEM_UNMAP                10
#define B_CROSVM_MAP                 1000
#define B_CROSVM_UNMAP               1001

#define REGION1_SIZE (1ull << 33)
#define REGION3_SIZE (1ull << 20)
#define PAGE         ((uint64_t)sysconf(_SC_PAGESIZE))

/* ---- the front-end's end of the back-end channel ---- */

enum peer_mode {
	PEER_IF_NEEDED, /* answer NEED_REPLY requests (standard front-end) */
	PEER_ALWAYS,    /* answer everything (crosvm's legacy front-end) */
	PEER_NEVER,
};

#define PEER_MAX_RECS 64

struct rec {
	uint32_t req, flags, size;
	uint8_t payload[64];
	unsigned nfds;
	dev_t fd_dev;
	ino_t fd_ino;
};

struct peer {
	int fd;
	pthread_t thread;
	atomic_bool stop;
	_Atomic enum peer_mode mode; /* changed by tests while the thread runs */
	_Atomic uint64_t value;      /* the reply value */
	pthread_mutex_t lock;
	struct rec recs[PEER_MAX_RECS];
	unsigned n;   /* recorded (the first PEER_MAX_RECS are kept) */
	unsigned eof; /* the engine closed the channel */
};

static void send_reply(int fd, uint32_t req, uint64_t v)
{
	uint32_t h[3] = { req, F_V1 | F_REPLY, 8 };
	uint8_t buf[20];

	memcpy(buf, h, 12);
	memcpy(buf + 12, &v, 8);
	CHECK_EQ(send(fd, buf, sizeof(buf), MSG_NOSIGNAL), sizeof(buf));
}

/* Read one message; 1 done, 0 EOF. */
static int peer_read_one(struct peer *p)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 8)];
	uint32_t h[3];
	struct iovec iov = { .iov_base = h, .iov_len = 12 };
	struct msghdr mh = { .msg_iov = &iov,
		             .msg_iovlen = 1,
		             .msg_control = cbuf,
		             .msg_controllen = sizeof(cbuf) };
	struct rec r = { 0 };
	uint8_t payload[256];
	enum peer_mode mode;
	ssize_t n;

	n = recvmsg(p->fd, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	if (n <= 0)
		return 0;
	CHECK_EQ(n, 12);
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_type == SCM_RIGHTS) {
			int fds[8];
			unsigned k = (unsigned)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			struct stat st;

			memcpy(fds, CMSG_DATA(cm), k * sizeof(int));
			if (k && fstat(fds[0], &st) == 0) {
				r.fd_dev = st.st_dev;
				r.fd_ino = st.st_ino;
			}
			for (unsigned i = 0; i < k; i++)
				close(fds[i]);
			r.nfds += k;
		}
	}
	r.req = h[0];
	r.flags = h[1];
	r.size = h[2];
	CHECK(r.size <= sizeof(payload));
	if (r.size)
		CHECK_EQ(recv(p->fd, payload, r.size, MSG_WAITALL), r.size);
	memcpy(r.payload, payload, r.size < sizeof(r.payload) ? r.size : sizeof(r.payload));
	pthread_mutex_lock(&p->lock);
	if (p->n < PEER_MAX_RECS)
		p->recs[p->n] = r;
	p->n++;
	pthread_mutex_unlock(&p->lock);
	mode = atomic_load(&p->mode);
	if (mode == PEER_ALWAYS || (mode == PEER_IF_NEEDED && (r.flags & F_NEED_REPLY)))
		send_reply(p->fd, r.req, atomic_load(&p->value));
	return 1;
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;

	while (!atomic_load(&p->stop)) {
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

		if (poll(&pfd, 1, 10) != 1)
			continue;
		if (!peer_read_one(p)) {
			pthread_mutex_lock(&p->lock);
			p->eof = 1;
			pthread_mutex_unlock(&p->lock);
			break;
		}
	}
	return NULL;
}

static unsigned peer_count(struct peer *p)
{
	unsigned n;

	pthread_mutex_lock(&p->lock);
	n = p->n;
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* Fire-and-forget requests reach the peer a little later. */
static void peer_wait(struct peer *p, unsigned n)
{
	for (int i = 0; i < 300 && peer_count(p) < n; i++)
		usleep(10000);
	CHECK_EQ(peer_count(p), n);
}

static struct rec peer_rec(struct peer *p, unsigned i)
{
	struct rec r;

	pthread_mutex_lock(&p->lock);
	CHECK(i < p->n && i < PEER_MAX_RECS);
	r = p->recs[i];
	pthread_mutex_unlock(&p->lock);
	return r;
}

static void peer_stop(struct peer *p)
{
	atomic_store(&p->stop, true);
	CHECK_OK(pthread_join(p->thread, NULL));
	close(p->fd);
	pthread_mutex_destroy(&p->lock);
}

/* ---- fixture ---- */

static int log_no_ack;

static void log_cb(enum vshm_log_level level, const char *msg, void *data)
{
	if (strstr(msg, "without REPLY_ACK"))
		log_no_ack++;
}

static int two_regions(void *data, uint64_t sizes[256])
{
	sizes[1] = REGION1_SIZE;
	sizes[3] = REGION3_SIZE;
	return 0;
}

static void cfg_init(struct vshm_vu_config *cfg, bool legacy)
{
	vshm_vu_config_defaults(cfg);
	cfg->num_queues = T_MAX_QUEUES;
	cfg->config_size = T_CONFIG_SIZE;
	cfg->max_queue_size = 256;
	cfg->backend_reply_timeout_ms = 300;
	cfg->shmem_crosvm_legacy = legacy;
}

static void init(struct fe *fe, bool legacy)
{
	struct vshm_vu_device_ops ops = tdev_ops;
	struct vshm_vu_config cfg;

	vshm_log_set_handler(log_cb, NULL);
	log_no_ack = 0;
	cfg_init(&cfg, legacy);
	ops.get_shmem_config = two_regions;
	fe_init_ops(fe, &cfg, &ops);
}

/* Negotiate @pf (plus BACKEND_REQ) and start a peer on a fresh channel. */
static void setup(struct fe *fe, struct peer *p, uint64_t pf, enum peer_mode mode)
{
	int sv[2];

	init(fe, true);
	fe_negotiate(fe, pf | VSHM_VU_PF_BACKEND_REQ, ~0ull);
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	CHECK_OK(fe_send(fe, REQ_SET_BACKEND_REQ_FD, F_V1, NULL, 0, &sv[1], 1));
	fe_pump(fe);
	close(sv[1]);
	memset(p, 0, sizeof(*p));
	p->fd = sv[0];
	p->mode = mode;
	pthread_mutex_init(&p->lock, NULL);
	CHECK_OK(pthread_create(&p->thread, NULL, peer_main, p));
}

static int blob_fd(struct stat *st)
{
	int fd = memfd_create("blob", MFD_CLOEXEC);

	CHECK(fd >= 0);
	CHECK_OK(ftruncate(fd, 1 << 20));
	CHECK_OK(fstat(fd, st));
	return fd;
}

static struct vshm_vu_shmem_stats stats(struct fe *fe)
{
	struct vshm_vu_shmem_stats s;

	vshm_vu_dev_get_shmem_stats(fe->dev, &s);
	return s;
}

#define STD_PF (VSHM_VU_PF_SHMEM | VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_BACKEND_SEND_FD)

/* ---- negotiation ---- */

static enum vshm_vu_shmem_convention negotiate(bool legacy_offered, uint64_t ack, uint64_t *offered)
{
	enum vshm_vu_shmem_convention c;
	struct fe fe;

	init(&fe, legacy_offered);
	CHECK_OK(fe_get_u64(&fe, REQ_GET_PROTOCOL_FEATURES, offered));
	fe_negotiate(&fe, ack, ~0ull);
	c = vshm_vu_dev_shmem_convention(fe.dev);
	fe_fini(&fe);
	return c;
}

TEST(convention_negotiation)
{
	uint64_t pf;

	CHECK_EQ(negotiate(true, VSHM_VU_PF_SHMEM, &pf), VSHM_VU_SHMEM_STANDARD);
	CHECK(pf & VSHM_VU_PF_SHMEM);
	CHECK(pf & PF_LEGACY);
	CHECK_EQ(pf & (PF_INFLIGHT_BASE | PF_GPA_ADDRESSES), 0);
	CHECK_EQ(negotiate(true, PF_LEGACY, &pf), VSHM_VU_SHMEM_CROSVM_LEGACY);
	CHECK_EQ(negotiate(true, PF_LEGACY | VSHM_VU_PF_SHMEM, &pf), VSHM_VU_SHMEM_STANDARD);
	CHECK_EQ(negotiate(true, VSHM_VU_PF_REPLY_ACK, &pf), VSHM_VU_SHMEM_NONE);
	/* Bit 31 is opt-in. */
	CHECK_EQ(negotiate(false, PF_LEGACY | VSHM_VU_PF_SHMEM, &pf), VSHM_VU_SHMEM_STANDARD);
	CHECK_EQ(pf & PF_LEGACY, 0);
}

TEST(never_offered_bits)
{
	struct vshm_vu_device_ops ops = tdev_ops;
	struct vshm_vu_config cfg;
	struct fe fe;
	uint64_t pf;

	vshm_log_set_handler(log_cb, NULL);
	cfg_init(&cfg, true);
	cfg.protocol_features = ~0ull;
	fe_init(&fe, &cfg);
	CHECK_OK(fe_get_u64(&fe, REQ_GET_PROTOCOL_FEATURES, &pf));
	CHECK_EQ(pf & (PF_INFLIGHT_BASE | PF_GPA_ADDRESSES | (1ull << 17)), 0);
	CHECK_EQ(pf, VSHM_VU_PF_SUPPORTED | VSHM_VU_PF_SHMEM | PF_LEGACY);
	fe_fini(&fe);

	/* No regions: neither shared memory bit, even when asked for. */
	ops.get_shmem_config = NULL;
	fe_init_ops(&fe, &cfg, &ops);
	CHECK_OK(fe_get_u64(&fe, REQ_GET_PROTOCOL_FEATURES, &pf));
	CHECK_EQ(pf & (VSHM_VU_PF_SHMEM | PF_LEGACY | PF_INFLIGHT_BASE | PF_GPA_ADDRESSES), 0);
	/* Acking bit 31 when it was not offered is refused. */
	CHECK(fe_set_u64_ack(&fe, REQ_SET_PROTOCOL_FEATURES, VSHM_VU_PF_REPLY_ACK | PF_LEGACY) !=
	      0);
	fe_fini(&fe);
}

/* ---- front-end requests ---- */

TEST(get_shmem_config_bytes)
{
	uint8_t got[4096], want[2056];
	uint32_t req, flags, u32;
	uint64_t u64;
	struct fe fe;

	init(&fe, true);
	fe_negotiate(&fe, VSHM_VU_PF_SHMEM | PF_LEGACY, ~0ull);
	CHECK_OK(fe_send(&fe, REQ_GET_SHMEM_CONFIG, F_V1, NULL, 0, NULL, 0));
	CHECK_EQ(fe_recv(&fe, &req, &flags, got, sizeof(got)), 2056);
	CHECK_EQ(req, REQ_GET_SHMEM_CONFIG);
	CHECK_EQ(flags, F_V1 | F_REPLY);
	memset(want, 0, sizeof(want));
	u32 = 2; /* non-zero entries, not a prefix length */
	memcpy(want, &u32, 4);
	u64 = REGION1_SIZE;
	memcpy(want + 8 + 8 * 1, &u64, 8);
	u64 = REGION3_SIZE;
	memcpy(want + 8 + 8 * 3, &u64, 8);
	CHECK_MEM_EQ(got, want, sizeof(want));
	fe_fini(&fe);
}

TEST(get_shared_memory_regions_bytes)
{
	uint8_t got[4200], want[40];
	uint32_t req, flags;
	uint64_t u64;
	struct fe fe;

	init(&fe, true);
	fe_negotiate(&fe, PF_LEGACY, ~0ull);
	CHECK_OK(fe_send(&fe, REQ_CROSVM_GET_SHMEM_REGIONS, F_V1, NULL, 0, NULL, 0));
	CHECK_EQ(fe_recv(&fe, &req, &flags, got, sizeof(got)), 40);
	CHECK_EQ(req, REQ_CROSVM_GET_SHMEM_REGIONS);
	CHECK_EQ(flags, F_V1 | F_REPLY);
	memset(want, 0, sizeof(want));
	u64 = 2;
	memcpy(want, &u64, 8);
	want[8] = 1;
	u64 = REGION1_SIZE;
	memcpy(want + 16, &u64, 8);
	want[24] = 3;
	u64 = REGION3_SIZE;
	memcpy(want + 32, &u64, 8);
	CHECK_MEM_EQ(got, want, sizeof(want));
	CHECK(fe_no_reply(&fe));
	CHECK_EQ(fe.td.devreq_calls, 0);
	fe_fini(&fe);
}

TEST(legacy_ids_unknown_unless_negotiated)
{
	struct fe fe;

	init(&fe, true);
	fe_negotiate(&fe, VSHM_VU_PF_SHMEM, ~0ull);
	/* 1004 without bit 31, and 1000 in any case, are device requests. */
	CHECK_OK(fe_send(&fe, REQ_CROSVM_GET_SHMEM_REGIONS, F_V1, NULL, 0, NULL, 0));
	CHECK(fe_no_reply(&fe));
	CHECK_EQ(fe.td.devreq_calls, 1);
	CHECK_EQ(fe.td.devreq_last, REQ_CROSVM_GET_SHMEM_REGIONS);
	CHECK_OK(fe_send(&fe, B_CROSVM_MAP, F_V1, NULL, 0, NULL, 0));
	CHECK(fe_no_reply(&fe));
	CHECK_EQ(fe.td.devreq_calls, 2);
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	fe_fini(&fe);

	/* With bit 31, a malformed 1004 (a payload) cannot be answered: dropped. */
	init(&fe, true);
	fe_negotiate(&fe, PF_LEGACY, ~0ull);
	CHECK_OK(fe_send(&fe, REQ_CROSVM_GET_SHMEM_REGIONS, F_V1, "12345678", 8, NULL, 0));
	CHECK(fe_peer_closed(&fe));
	fe_fini(&fe);
}

/* ---- standard convention ---- */

TEST(standard_map_unmap_bytes)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	struct rec r;
	uint8_t want[40];
	uint64_t v;
	int fd = blob_fd(&st);

	setup(&fe, &p, STD_PF, PEER_IF_NEEDED);
	CHECK_EQ(vshm_vu_dev_shmem_convention(fe.dev), VSHM_VU_SHMEM_STANDARD);
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, 16 * PAGE, fd, 2 * PAGE, 4 * PAGE, true));
	r = peer_rec(&p, 0);
	CHECK_EQ(r.req, B_SHMEM_MAP);
	CHECK_EQ(r.flags, F_V1 | F_NEED_REPLY);
	CHECK_EQ(r.size, 40);
	CHECK_EQ(r.nfds, 1);
	CHECK(r.fd_dev == st.st_dev && r.fd_ino == st.st_ino);
	memset(want, 0, sizeof(want));
	want[0] = 1; /* shmid, 7 bytes padding */
	v = 2 * PAGE;
	memcpy(want + 8, &v, 8); /* fd_offset */
	v = 16 * PAGE;
	memcpy(want + 16, &v, 8); /* shm_offset */
	v = 4 * PAGE;
	memcpy(want + 24, &v, 8); /* len */
	v = 1;
	memcpy(want + 32, &v, 8); /* flags: read-write */
	CHECK_MEM_EQ(r.payload, want, 40);
	CHECK_EQ(stats(&fe).live, 1);

	/* Read-only in region 3. */
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 3, 0, fd, 0, PAGE, false));
	r = peer_rec(&p, 1);
	CHECK_EQ(r.payload[0], 3);
	memcpy(&v, r.payload + 32, 8);
	CHECK_EQ(v, 0);

	CHECK_OK(vshm_vu_dev_shmem_unmap(fe.dev, 1, 16 * PAGE, 4 * PAGE));
	r = peer_rec(&p, 2);
	CHECK_EQ(r.req, B_SHMEM_UNMAP);
	CHECK_EQ(r.flags, F_V1 | F_NEED_REPLY);
	CHECK_EQ(r.size, 40);
	CHECK_EQ(r.nfds, 0);
	memset(want + 8, 0, 8);  /* fd_offset 0 */
	memset(want + 32, 0, 8); /* flags 0 */
	CHECK_MEM_EQ(r.payload, want, 40);
	CHECK_EQ(stats(&fe).live, 1);
	CHECK_EQ(stats(&fe).maps, 2);
	CHECK_EQ(stats(&fe).unmaps, 1);
	CHECK_EQ(stats(&fe).failures, 0);
	CHECK_EQ(log_no_ack, 0);
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}

/*
 * crosvm acks SHMEM but not BACKEND_SEND_FD and still expects the fd: the
 * map goes out with it (the only way to map), warned about once.
 */
TEST(standard_without_backend_send_fd_still_maps)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	int fd = blob_fd(&st);

	setup(&fe, &p, VSHM_VU_PF_SHMEM | VSHM_VU_PF_REPLY_ACK, PEER_IF_NEEDED);
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true));
	CHECK_EQ(peer_count(&p), 1);
	struct rec r = peer_rec(&p, 0);
	CHECK_EQ(r.nfds, 1);
	CHECK(r.fd_dev == st.st_dev && r.fd_ino == st.st_ino);
	CHECK_EQ(stats(&fe).live, 1);
	CHECK_EQ(stats(&fe).failures, 0);
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}

TEST(standard_without_reply_ack)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	int fd = blob_fd(&st);

	setup(&fe, &p, VSHM_VU_PF_SHMEM | VSHM_VU_PF_BACKEND_SEND_FD, PEER_NEVER);
	/* Nothing to wait for: success once sent, logged once. */
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true));
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, PAGE, fd, 0, PAGE, true));
	peer_wait(&p, 2);
	CHECK_EQ(peer_rec(&p, 0).flags, F_V1);
	CHECK_EQ(peer_rec(&p, 0).nfds, 1);
	CHECK_EQ(peer_rec(&p, 1).flags, F_V1);
	CHECK_EQ(log_no_ack, 1);
	CHECK_EQ(stats(&fe).live, 2);
	CHECK_OK(vshm_vu_dev_shmem_unmap(fe.dev, 1, 0, PAGE));
	peer_wait(&p, 3);
	CHECK_EQ(peer_rec(&p, 2).flags, F_V1);
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}

TEST(reply_error_not_recorded)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	int fd = blob_fd(&st);

	setup(&fe, &p, STD_PF, PEER_IF_NEEDED);
	p.value = (uint64_t)-EACCES; /* crosvm/rust-vmm front-ends: -errno */
	CHECK_EQ(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true), -EACCES);
	p.value = 1; /* anything else */
	CHECK_EQ(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true), -EREMOTEIO);
	CHECK_EQ(stats(&fe).live, 0);
	CHECK_EQ(stats(&fe).failures, 2);
	/* The range is free: a later success records it. */
	p.value = 0;
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true));
	/* A refused unmap leaves the mapping recorded. */
	p.value = (uint64_t)-EINVAL;
	CHECK_EQ(vshm_vu_dev_shmem_unmap(fe.dev, 1, 0, PAGE), -EINVAL);
	CHECK_EQ(stats(&fe).live, 1);
	p.value = 0;
	CHECK_OK(vshm_vu_dev_shmem_unmap(fe.dev, 1, 0, PAGE));
	CHECK_EQ(stats(&fe).live, 0);
	CHECK_EQ(peer_count(&p), 5);
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}

TEST(reply_timeout)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	int fd = blob_fd(&st);

	setup(&fe, &p, STD_PF, PEER_NEVER);
	CHECK_EQ(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true), -ETIMEDOUT);
	CHECK_EQ(stats(&fe).live, 0);
	/* The channel is dropped: the next request fails fast. */
	CHECK_EQ(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true), -ENOTCONN);
	CHECK_EQ(peer_count(&p), 1);
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}

TEST(validation_sends_nothing)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	int fd = blob_fd(&st);
	struct vshm_vu_dev *d;

	setup(&fe, &p, STD_PF, PEER_IF_NEEDED);
	d = fe.dev;
	CHECK_OK(vshm_vu_dev_shmem_map(d, 1, 8 * PAGE, fd, 0, 4 * PAGE, true));
	CHECK_EQ(peer_count(&p), 1);

	/* Overlaps: inside, straddling either end, covering. */
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 1, 8 * PAGE, fd, 0, PAGE, true), -EEXIST);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 1, 11 * PAGE, fd, 0, 2 * PAGE, true), -EEXIST);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 1, 7 * PAGE, fd, 0, 2 * PAGE, true), -EEXIST);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 1, 0, fd, 0, 64 * PAGE, true), -EEXIST);
	/* Length 0, misaligned offset/len/fd_offset. */
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 1, 0, fd, 0, 0, true), -EINVAL);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 1, 100, fd, 0, PAGE, true), -EINVAL);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 1, 0, fd, 0, PAGE + 1, true), -EINVAL);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 1, 0, fd, 8, PAGE, true), -EINVAL);
	/* No region 0 / 2 / 255; ranges past the end, overflowing ones. */
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 0, 0, fd, 0, PAGE, true), -EINVAL);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 2, 0, fd, 0, PAGE, true), -EINVAL);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 255, 0, fd, 0, PAGE, true), -EINVAL);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 3, REGION3_SIZE - PAGE, fd, 0, 2 * PAGE, true), -EINVAL);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 3, REGION3_SIZE, fd, 0, PAGE, true), -EINVAL);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 3, 0, fd, 0, REGION3_SIZE + PAGE, true), -EINVAL);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 1, UINT64_MAX - PAGE + 1, fd, 0, PAGE, true), -EINVAL);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 1, PAGE, fd, 0, UINT64_MAX - PAGE + 1, true), -EINVAL);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 1, 0, fd, UINT64_MAX - PAGE + 1, 2 * PAGE, true),
	         -EINVAL);
	CHECK_EQ(vshm_vu_dev_shmem_map(d, 1, 0, -1, 0, PAGE, true), -EBADF);
	/* Unknown, partial, larger, other-region unmaps. */
	CHECK_EQ(vshm_vu_dev_shmem_unmap(d, 1, 0, PAGE), -ENOENT);
	CHECK_EQ(vshm_vu_dev_shmem_unmap(d, 1, 8 * PAGE, PAGE), -ENOENT);
	CHECK_EQ(vshm_vu_dev_shmem_unmap(d, 1, 9 * PAGE, 3 * PAGE), -ENOENT);
	CHECK_EQ(vshm_vu_dev_shmem_unmap(d, 1, 8 * PAGE, 8 * PAGE), -ENOENT);
	CHECK_EQ(vshm_vu_dev_shmem_unmap(d, 3, 8 * PAGE, 4 * PAGE), -ENOENT);
	usleep(50000);
	CHECK_EQ(peer_count(&p), 1);
	CHECK_EQ(stats(&fe).failures, 23);

	/* Exactly adjacent on both sides, the last page, the same offset elsewhere: fine. */
	CHECK_OK(vshm_vu_dev_shmem_map(d, 1, 7 * PAGE, fd, 0, PAGE, true));
	CHECK_OK(vshm_vu_dev_shmem_map(d, 1, 12 * PAGE, fd, 0, PAGE, true));
	CHECK_OK(vshm_vu_dev_shmem_map(d, 1, REGION1_SIZE - PAGE, fd, 0, PAGE, true));
	CHECK_OK(vshm_vu_dev_shmem_map(d, 3, 8 * PAGE, fd, 0, 4 * PAGE, true));
	CHECK_EQ(stats(&fe).live, 5);
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}

TEST(no_convention_no_channel)
{
	struct fe fe;
	struct stat st;
	int fd = blob_fd(&st);

	init(&fe, true);
	fe_negotiate(&fe, VSHM_VU_PF_REPLY_ACK, ~0ull);
	CHECK_EQ(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true), -ENOTSUP);
	CHECK_EQ(vshm_vu_dev_shmem_unmap(fe.dev, 1, 0, PAGE), -ENOTSUP);
	fe_fini(&fe);

	/* SHMEM without BACKEND_REQ: no channel can exist. */
	init(&fe, true);
	fe_negotiate(&fe, STD_PF, ~0ull);
	CHECK_EQ(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true), -EPROTO);
	fe_fini(&fe);

	/* BACKEND_REQ negotiated but no SET_BACKEND_REQ_FD yet. */
	init(&fe, true);
	fe_negotiate(&fe, STD_PF | VSHM_VU_PF_BACKEND_REQ, ~0ull);
	CHECK_EQ(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true), -ENOTCONN);
	CHECK_EQ(stats(&fe).live, 0);
	fe_fini(&fe);
	close(fd);
}

/* ---- crosvm legacy convention ---- */

TEST(legacy_map_unmap_bytes)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	struct rec r;
	uint8_t want[32];
	uint64_t v;
	int fd = blob_fd(&st);

	/* No REPLY_ACK, no BACKEND_SEND_FD: the reply still comes and is awaited,
	 * and the message carries its fd. */
	setup(&fe, &p, PF_LEGACY, PEER_ALWAYS);
	CHECK_EQ(vshm_vu_dev_shmem_convention(fe.dev), VSHM_VU_SHMEM_CROSVM_LEGACY);
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, 16 * PAGE, fd, 2 * PAGE, 4 * PAGE, true));
	CHECK_EQ(peer_count(&p), 1);
	r = peer_rec(&p, 0);
	CHECK_EQ(r.req, B_CROSVM_MAP);
	CHECK_EQ(r.flags, F_V1);
	CHECK_EQ(r.size, 32);
	CHECK_EQ(r.nfds, 1);
	CHECK(r.fd_dev == st.st_dev && r.fd_ino == st.st_ino);
	memset(want, 0, sizeof(want));
	want[0] = 3; /* MAP_R | MAP_W */
	want[1] = 1; /* shmid, 6 bytes padding */
	v = 16 * PAGE;
	memcpy(want + 8, &v, 8); /* shm_offset first */
	v = 2 * PAGE;
	memcpy(want + 16, &v, 8); /* then fd_offset */
	v = 4 * PAGE;
	memcpy(want + 24, &v, 8);
	CHECK_MEM_EQ(r.payload, want, 32);

	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 3, 0, fd, 0, PAGE, false));
	r = peer_rec(&p, 1);
	CHECK_EQ(r.payload[0], 1); /* MAP_R only */
	CHECK_EQ(r.payload[1], 3);

	CHECK_OK(vshm_vu_dev_shmem_unmap(fe.dev, 1, 16 * PAGE, 4 * PAGE));
	CHECK_EQ(peer_count(&p), 3);
	r = peer_rec(&p, 2);
	CHECK_EQ(r.req, B_CROSVM_UNMAP);
	CHECK_EQ(r.flags, F_V1);
	CHECK_EQ(r.size, 24);
	CHECK_EQ(r.nfds, 0);
	memset(want, 0, sizeof(want));
	want[0] = 1; /* shmid, 7 bytes padding */
	v = 16 * PAGE;
	memcpy(want + 8, &v, 8);
	v = 4 * PAGE;
	memcpy(want + 16, &v, 8);
	CHECK_MEM_EQ(r.payload, want, 24);
	CHECK_EQ(stats(&fe).live, 1);
	CHECK_EQ(log_no_ack, 0);

	/* A refusal from the legacy front-end. */
	p.value = (uint64_t)-ENOMEM;
	CHECK_EQ(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true), -ENOMEM);
	CHECK_EQ(stats(&fe).live, 1);
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}

TEST(legacy_with_reply_ack_sets_need_reply)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	int fd = blob_fd(&st);

	setup(&fe, &p, PF_LEGACY | VSHM_VU_PF_REPLY_ACK, PEER_IF_NEEDED);
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true));
	CHECK_EQ(peer_rec(&p, 0).flags, F_V1 | F_NEED_REPLY);
	CHECK_OK(vshm_vu_dev_shmem_unmap(fe.dev, 1, 0, PAGE));
	CHECK_EQ(peer_rec(&p, 1).flags, F_V1 | F_NEED_REPLY);
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}

TEST(legacy_reply_is_mandatory)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	int fd = blob_fd(&st);

	setup(&fe, &p, PF_LEGACY, PEER_NEVER);
	CHECK_EQ(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true), -ETIMEDOUT);
	CHECK_EQ(stats(&fe).live, 0);
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}

/* ---- reset and disconnect ---- */

TEST(reset_device_unmaps_standard)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	struct rec r;
	uint64_t v;
	int fd = blob_fd(&st);

	setup(&fe, &p, STD_PF | VSHM_VU_PF_RESET_DEVICE, PEER_IF_NEEDED);
	for (unsigned i = 0; i < 3; i++)
		CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, i * 4 * PAGE, fd, 0, 2 * PAGE, true));
	CHECK_EQ(fe_req_ack(&fe, REQ_RESET_DEVICE, NULL, 0, NULL, 0), 0);
	peer_wait(&p, 6);
	for (unsigned i = 0; i < 3; i++) {
		r = peer_rec(&p, 3 + i);
		CHECK_EQ(r.req, B_SHMEM_UNMAP);
		/* No NEED_REPLY: the front-end may be blocked on our ack. */
		CHECK_EQ(r.flags, F_V1);
		CHECK_EQ(r.payload[0], 1);
		memcpy(&v, r.payload + 16, 8);
		CHECK_EQ(v, i * 4 * PAGE);
		memcpy(&v, r.payload + 24, 8);
		CHECK_EQ(v, 2 * PAGE);
	}
	CHECK_EQ(stats(&fe).live, 0);
	CHECK_EQ(stats(&fe).dropped, 3);
	CHECK_EQ(stats(&fe).reset_unmaps, 3);
	CHECK_EQ(fe.td.resets, 1);
	/* Everything is free again. */
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, 2 * PAGE, true));
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}

TEST(reset_owner_and_status_unmap_legacy)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	int fd = blob_fd(&st);

	setup(&fe, &p, PF_LEGACY | VSHM_VU_PF_STATUS, PEER_ALWAYS);
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true));
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 3, PAGE, fd, 0, PAGE, true));
	CHECK_OK(fe_send(&fe, REQ_RESET_OWNER, F_V1, NULL, 0, NULL, 0));
	fe_pump(&fe);
	/* Legacy replies were awaited during the reset: all there already. */
	CHECK_EQ(peer_count(&p), 4);
	CHECK_EQ(peer_rec(&p, 2).req, B_CROSVM_UNMAP);
	CHECK_EQ(peer_rec(&p, 2).size, 24);
	CHECK_EQ(peer_rec(&p, 3).req, B_CROSVM_UNMAP);
	CHECK_EQ(peer_rec(&p, 3).payload[0], 3);
	CHECK_EQ(stats(&fe).live, 0);

	/* SET_STATUS(0) is a reset too; other values leave mappings alone. */
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true));
	CHECK_OK(fe_send(&fe, REQ_SET_STATUS, F_V1, &(uint64_t){ 0xf }, 8, NULL, 0));
	fe_pump(&fe);
	CHECK_EQ(stats(&fe).live, 1);
	CHECK_OK(fe_send(&fe, REQ_SET_STATUS, F_V1, &(uint64_t){ 0 }, 8, NULL, 0));
	fe_pump(&fe);
	CHECK_EQ(peer_count(&p), 6);
	CHECK_EQ(peer_rec(&p, 5).req, B_CROSVM_UNMAP);
	CHECK_EQ(stats(&fe).live, 0);
	CHECK_EQ(stats(&fe).dropped, 3);
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}

TEST(reset_with_dead_channel_is_bounded)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	struct timespec a, b;
	int fd = blob_fd(&st);

	setup(&fe, &p, PF_LEGACY, PEER_ALWAYS);
	for (unsigned i = 0; i < 8; i++)
		CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, i * PAGE, fd, 0, PAGE, true));
	p.mode = PEER_NEVER; /* the front-end stops answering */
	clock_gettime(CLOCK_MONOTONIC, &a);
	CHECK_OK(fe_send(&fe, REQ_RESET_DEVICE, F_V1, NULL, 0, NULL, 0));
	fe_pump(&fe);
	clock_gettime(CLOCK_MONOTONIC, &b);
	/* One timeout (300 ms), not eight. */
	CHECK((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 1000);
	CHECK_EQ(peer_count(&p), 9);
	CHECK_EQ(stats(&fe).live, 0);
	CHECK_EQ(stats(&fe).dropped, 8);
	CHECK(vshm_vu_dev_is_connected(fe.dev));
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}

TEST(disconnect_clears)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	int fd = blob_fd(&st);

	setup(&fe, &p, STD_PF, PEER_IF_NEEDED);
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, 0, fd, 0, PAGE, true));
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, PAGE, fd, 0, PAGE, true));
	fe_reconnect(&fe);
	CHECK_EQ(stats(&fe).live, 0);
	CHECK_EQ(stats(&fe).dropped, 2);
	CHECK_EQ(stats(&fe).reset_unmaps, 0);
	CHECK_EQ(vshm_vu_dev_shmem_convention(fe.dev), VSHM_VU_SHMEM_NONE);
	/* Nothing sent; the channel was closed with the connection. */
	for (int i = 0; i < 100; i++) {
		unsigned eof;

		pthread_mutex_lock(&p.lock);
		eof = p.eof;
		pthread_mutex_unlock(&p.lock);
		if (eof)
			break;
		usleep(10000);
	}
	pthread_mutex_lock(&p.lock);
	CHECK_EQ(p.eof, 1);
	pthread_mutex_unlock(&p.lock);
	CHECK_EQ(peer_count(&p), 2);
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}

TEST(table_is_bounded)
{
	struct fe fe;
	struct peer p;
	struct stat st;
	int fd = blob_fd(&st);

	/* Fire-and-forget keeps this quick. */
	setup(&fe, &p, VSHM_VU_PF_SHMEM | VSHM_VU_PF_BACKEND_SEND_FD, PEER_NEVER);
	for (unsigned i = 0; i < VSHM_VU_SHMEM_MAX_MAPPINGS; i++)
		CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, i * PAGE, fd, 0, PAGE, true));
	CHECK_EQ(vshm_vu_dev_shmem_map(fe.dev, 1, (uint64_t)VSHM_VU_SHMEM_MAX_MAPPINGS * PAGE, fd,
	                               0, PAGE, true),
	         -ENOSPC);
	CHECK_EQ(stats(&fe).live, VSHM_VU_SHMEM_MAX_MAPPINGS);
	/* One freed slot is usable again. */
	CHECK_OK(vshm_vu_dev_shmem_unmap(fe.dev, 1, 5 * PAGE, PAGE));
	CHECK_OK(vshm_vu_dev_shmem_map(fe.dev, 1, (uint64_t)VSHM_VU_SHMEM_MAX_MAPPINGS * PAGE, fd,
	                               0, PAGE, true));
	peer_wait(&p, VSHM_VU_SHMEM_MAX_MAPPINGS + 2);
	peer_stop(&p);
	close(fd);
	fe_fini(&fe);
}
