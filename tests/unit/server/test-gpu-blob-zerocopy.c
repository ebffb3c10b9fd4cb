/* SPDX-License-Identifier: MIT */
/*
 * test-gpu-blob-zerocopy.c - host-visible blobs shared with display
 * consumers without a copy.
 *
 * The blob is a memfd the VMM maps read-write when it handles SHMEM_MAP.
 * Consumers only take memfds sealed with F_SEAL_FUTURE_WRITE (a memfd
 * without it could be reopened read-write through /proc). That seal leaves
 * existing mappings writable, so once the front-end CONFIRMED the mapping
 * (REPLY_ACK, or crosvm's legacy convention) the device seals the blob when
 * it is scanned out, and consumers get SHM_BUFFER of the blob itself.
 *
 * Set-up: the device behind the real vhost-user engine in its own thread,
 * the display consumers module on the same loop as a sink of the device
 * (as in the daemon), the mini VMM (tests/frontend) bringing the device up
 * in crosvm's order with the back-end channel peer answering SHMEM_MAP, and
 * a consumer from clients/consumer.h in the test thread. The test plays the
 * VMM and the guest: it mmaps the fd that came with SHMEM_MAP and draws
 * through it.
 */
#include "gpu-test-util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/event_loop.h>
#include <vshm/vhost_user.h>

#include "backend-peer.h"
#include "consumer.h"
#include "consumers.h"
#include "frontend.h"
#include "gpu-driver.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define PAGE     ((uint64_t)sysconf(_SC_PAGESIZE))
#define WINDOW   (64ull << 20)
#define XRGB     VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM
#define F_BLOB   (1ull << VIRTIO_GPU_F_RESOURCE_BLOB)
#define PF_BIT31 VSHM_VU_PF_CROSVM_SHMEM_REGIONS
#define W        256
#define H        128
#define SEALS    (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL)

#define B_CROSVM_MAP 1000u

enum conv { STANDARD, STANDARD_NO_ACK, LEGACY };

struct fx {
	enum conv conv;
	struct vshm_event_loop *loop;
	struct vshm_loop iface;
	struct vshm_vu_dev *dev;
	struct vgs_gpu *gpu;
	struct vgs_consumers *cs;
	struct tgd *g;
	struct tfe_peer *peer;
	/* The engine thread dispatches under @mu; the test takes it to read device state. */
	pthread_mutex_t mu;
	pthread_t thread;
	int stop;
	uint64_t sizes[256];
};

static void *engine_thread(void *data)
{
	struct fx *f = data;

	while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&f->mu);
		vshm_event_loop_dispatch(f->loop, 5);
		pthread_mutex_unlock(&f->mu);
	}
	return NULL;
}

static void fx_init(struct fx *f, enum conv conv)
{
	struct vgs_gpu_config gc;
	struct vgs_consumers_config cc;
	struct vshm_vu_config vc;
	struct tgd_bringup b = { .features_add = F_BLOB };
	int sv[2];

	vshm_log_set_level(VSHM_LOG_WARN);
	memset(f, 0, sizeof(*f));
	f->conv = conv;
	pthread_mutex_init(&f->mu, NULL);
	vgs_gpu_config_defaults(&gc);
	gc.host_visible_size = WINDOW;
	CHECK_OK(vgs_gpu_new(&gc, &f->gpu));
	CHECK_OK(vshm_event_loop_new(&f->loop));
	f->iface = vshm_event_loop_iface(f->loop);
	vshm_vu_config_defaults(&vc);
	vc.num_queues = 2;
	vc.config_size = sizeof(struct virtio_gpu_config);
	vc.backend_reply_timeout_ms = 1000;
	vc.shmem_crosvm_legacy = true; /* offered; the front-end picks */
	CHECK_OK(vshm_vu_dev_new(&vc, vgs_gpu_device_ops(), f->gpu, &f->iface, &f->dev));
	vgs_gpu_set_engine(f->gpu, f->dev);
	vgs_consumers_config_defaults(&cc);
	cc.num_scanouts = 1;
	CHECK_OK(vgs_consumers_new(f->loop, &cc, &f->cs));
	CHECK_OK(vgs_gpu_add_display(f->gpu, vgs_consumers_sink(f->cs)));
	CHECK_OK(tgd_new(NULL, &f->g));
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	CHECK_OK(vshm_vu_dev_connect(f->dev, sv[0]));
	CHECK_EQ(pthread_create(&f->thread, NULL, engine_thread, f), 0);
	CHECK_OK(tgd_attach_fd(f->g, sv[1]));
	if (conv == LEGACY) {
		/* crosvm before 2025-12: bit 31, no standard SHMEM, replies always. */
		b.protocol_add = PF_BIT31;
		b.protocol_clear = VSHM_VU_PF_SHMEM | VSHM_VU_PF_REPLY_ACK;
	} else {
		b.protocol_add = VSHM_VU_PF_BACKEND_SEND_FD;
		if (conv == STANDARD_NO_ACK)
			b.protocol_clear = VSHM_VU_PF_REPLY_ACK; /* the map is only sent */
	}
	CHECK_OK(tgd_bringup_crosvm(f->g, &b, f->sizes));
	f->peer = tfe_get_backend_peer(tgd_tfe(f->g));
	CHECK(f->peer != NULL);
	if (conv == LEGACY)
		tfe_peer_set_always_reply(f->peer, true);
	CHECK_EQ(f->sizes[1], WINDOW);
	CHECK_EQ(!!(tgd_protocol_features(f->g) & VSHM_VU_PF_REPLY_ACK), conv == STANDARD);
}

static void fx_fini(struct fx *f)
{
	tgd_destroy(f->g);
	for (int i = 0; i < 200 && vshm_vu_dev_is_connected(f->dev); i++)
		usleep(5000);
	__atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
	pthread_join(f->thread, NULL);
	vshm_vu_dev_destroy(f->dev);
	vgs_gpu_remove_display(f->gpu, vgs_consumers_sink(f->cs));
	vgs_consumers_destroy(f->cs);
	vgs_gpu_destroy(f->gpu);
	vshm_event_loop_destroy(f->loop);
	pthread_mutex_destroy(&f->mu);
}

static void cons_stats(struct fx *f, struct vgs_consumers_stats *out)
{
	pthread_mutex_lock(&f->mu);
	vgs_consumers_get_stats(f->cs, out);
	pthread_mutex_unlock(&f->mu);
}

static struct vgs_gpu_stats dev_stats(struct fx *f)
{
	struct vgs_gpu_stats s;

	pthread_mutex_lock(&f->mu);
	vgs_gpu_get_stats(f->gpu, &s);
	pthread_mutex_unlock(&f->mu);
	return s;
}

static uint32_t map_req(struct fx *f)
{
	return f->conv == LEGACY ? B_CROSVM_MAP : TFE_BACKEND_SHMEM_MAP;
}

/* ---- commands ---- */

static int create_host_blob(struct fx *f, uint32_t id, uint64_t size)
{
	struct virtio_gpu_resource_create_blob c;

	memset(&c, 0, sizeof(c));
	tgd_hdr(f->g, &c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB, false);
	c.resource_id = htole32(id);
	c.blob_mem = htole32(VIRTIO_GPU_BLOB_MEM_HOST3D);
	c.blob_flags =
	        htole32(VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE | VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE);
	c.size = htole64(size);
	return tgd_cmd(f->g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

static int map_blob(struct fx *f, uint32_t id, uint64_t offset)
{
	struct virtio_gpu_resource_map_blob c;
	struct virtio_gpu_resp_map_info r;

	memset(&c, 0, sizeof(c));
	tgd_hdr(f->g, &c.hdr, VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB, false);
	c.resource_id = htole32(id);
	c.offset = htole64(offset);
	return tgd_cmd(f->g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, &r, sizeof(r));
}

static int unmap_blob(struct fx *f, uint32_t id)
{
	struct virtio_gpu_resource_unmap_blob c;

	memset(&c, 0, sizeof(c));
	tgd_hdr(f->g, &c.hdr, VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB, false);
	c.resource_id = htole32(id);
	return tgd_cmd(f->g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

static int scanout_blob(struct fx *f, uint32_t id)
{
	struct virtio_gpu_set_scanout_blob c;

	memset(&c, 0, sizeof(c));
	tgd_hdr(f->g, &c.hdr, VIRTIO_GPU_CMD_SET_SCANOUT_BLOB, false);
	c.r.width = htole32(W);
	c.r.height = htole32(H);
	c.resource_id = htole32(id);
	c.width = htole32(W);
	c.height = htole32(H);
	c.format = htole32(XRGB);
	c.strides[0] = htole32(W * 4);
	return tgd_cmd(f->g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

/* The fd of the newest map request (dup'ed), after waiting for @n of them. */
static int mapped_fd(struct fx *f, unsigned n)
{
	struct tfe_peer_record rec;

	for (int i = 0; i < 200 && tfe_peer_count_request(f->peer, map_req(f)) < n; i++)
		usleep(5000);
	CHECK_EQ(tfe_peer_count_request(f->peer, map_req(f)), n);
	for (unsigned i = tfe_peer_count(f->peer); i-- > 0;) {
		CHECK_OK(tfe_peer_get(f->peer, i, &rec));
		if (rec.request == map_req(f)) {
			CHECK(rec.fd >= 0);
			return dup(rec.fd);
		}
	}
	CHECK(0);
	return -1;
}

/* ---- the consumer ---- */

struct cons {
	struct vsc *c;
	volatile uint32_t *vmm; /* the VMM's mapping of the blob: the guest's window */
	uint32_t expect;        /* seed the next frames should show */
	uint32_t shown;         /* newest seed a FRAME showed exactly (0: none) */
	int aliased; /* 1: a write through the VMM's mapping was visible at once in the frame */
	uint64_t frames;
};

static void on_event(void *data, struct vsc *c, const struct vsc_event *ev)
{
	struct cons *k = data;
	const struct vsc_frame *fr = ev->frame;
	uint32_t v, old;

	(void)c;
	if (ev->type != VSC_EV_FRAME)
		return;
	k->frames++;
	if (!fr->pixels || fr->width != W || fr->height != H || fr->fourcc != VSC_FMT_XRGB8888)
		return;
	for (uint32_t y = 0; y < H; y++)
		for (uint32_t x = 0; x < W; x++) {
			memcpy(&v, fr->pixels + (uint64_t)y * fr->stride + x * 4, 4);
			if (v != pix(x, y, k->expect))
				return;
		}
	k->shown = k->expect;
	/* Same pages or a copy? Poke pixel (1,0) through the VMM's mapping and look. */
	old = k->vmm[1];
	k->vmm[1] = old ^ 0x00ffffffu;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	memcpy(&v, fr->pixels + 4, 4);
	k->aliased = v == (old ^ 0x00ffffffu);
	k->vmm[1] = old;
}

static void cons_connect(struct fx *f, struct cons *k)
{
	struct vsc_config cfg;
	int sv[2];

	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	pthread_mutex_lock(&f->mu);
	CHECK_OK(vgs_consumers_adopt(f->cs, 0, sv[0]));
	pthread_mutex_unlock(&f->mu);
	vsc_config_defaults(&cfg);
	cfg.role = "zero-copy-test";
	CHECK_OK(vsc_new_fd(sv[1], &cfg, on_event, k, &k->c));
	CHECK_OK(vsc_wait_ready(k->c, 3000));
}

/* Serve the consumer until a FRAME showed exactly the pattern of @seed. */
static void cons_wait_seed(struct cons *k, uint32_t seed)
{
	for (int i = 0; i < 300 && k->shown != seed; i++)
		CHECK(vsc_run(k->c, 10) >= 0);
	if (k->shown != seed)
		vshm_test_fail(__FILE__, __LINE__, "no frame with pattern %u (%llu frames)", seed,
		               (unsigned long long)k->frames);
}

static void draw(volatile uint32_t *px, uint32_t seed)
{
	for (uint32_t y = 0; y < H; y++)
		for (uint32_t x = 0; x < W; x++)
			px[y * W + x] = pix(x, y, seed);
}

/* Read-only shared mappings of the blob memfd in this process: the consumer's. */
static unsigned ro_blob_mappings(void)
{
	char line[512];
	unsigned n = 0;
	FILE *fp = fopen("/proc/self/maps", "re");

	CHECK(fp != NULL);
	while (fgets(line, sizeof(line), fp)) {
		char perms[8] = "";

		if (!strstr(line, "memfd:vshm-gpu-blob"))
			continue;
		if (sscanf(line, "%*s %7s", perms) == 1 && strcmp(perms, "r--s") == 0)
			n++;
	}
	fclose(fp);
	return n;
}

/* ---- the kernel behaviour everything rests on ---- */

TEST(future_write_seal_keeps_existing_mappings)
{
	const size_t len = 2 * PAGE;
	char path[64];
	uint8_t *vmm, *own, *ro, *rw;
	int fd, rofd, rwfd;

	fd = memfd_create("vshm-seal-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0);
	CHECK_OK(ftruncate(fd, (off_t)len));
	CHECK_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW));
	own = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	vmm = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(own != MAP_FAILED && vmm != MAP_FAILED);
	/* Added while writable shared mappings exist (F_SEAL_WRITE would be EBUSY). */
	CHECK_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL));
	CHECK_EQ(fcntl(fd, F_GET_SEALS) & SEALS, SEALS);
	/* The existing mapping keeps writing; a new read-only mapping sees it. */
	vmm[100] = 42;
	own[PAGE + 7] = 7;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rofd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(rofd >= 0);
	ro = mmap(NULL, len, PROT_READ, MAP_SHARED, rofd, 0);
	CHECK(ro != MAP_FAILED);
	CHECK_EQ(ro[100], 42);
	CHECK_EQ(ro[PAGE + 7], 7);
	vmm[101] = 43; /* after the read-only mapping exists, too */
	CHECK_EQ(ro[101], 43);
	/* No new writable mapping, no write(), not even through a read-write reopen. */
	errno = 0;
	CHECK(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
	CHECK_EQ(errno, EPERM);
	CHECK_EQ(write(fd, "x", 1), -1);
	CHECK_EQ(errno, EPERM);
	rwfd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(rwfd >= 0); /* the open itself is allowed ... */
	rw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, rwfd, 0);
	CHECK(rw == MAP_FAILED); /* ... a writable mapping of it is not */
	CHECK_EQ(errno, EPERM);
	CHECK_EQ(pwrite(rwfd, "x", 1, 0), -1);
	CHECK_EQ(errno, EPERM);
	/* A private writable mapping is allowed and does not reach the file. */
	rw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, rwfd, 0);
	CHECK(rw != MAP_FAILED);
	rw[100] = 99;
	CHECK_EQ(ro[100], 42);
	munmap(rw, len);
	/* The read-only mapping cannot be made writable either. */
	CHECK_EQ(mprotect(ro, len, PROT_READ | PROT_WRITE), -1);
	/* The seal set is final. */
	CHECK_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
	CHECK_EQ(errno, EPERM);
	munmap(ro, len);
	munmap(vmm, len);
	munmap(own, len);
	close(rwfd);
	close(rofd);
	close(fd);
}

/* ---- end to end ---- */

/*
 * Confirmed mapping (@conv STANDARD with REPLY_ACK, or LEGACY): the guest
 * writes, the consumer reads the same pages, no copy anywhere.
 */
static void zero_copy_scenario(enum conv conv)
{
	const uint64_t size = (uint64_t)W * H * 4;
	struct vgs_consumers_stats cst;
	struct vgs_consumer_info ci;
	struct vgs_gpu_stats st;
	struct cons k = { 0 };
	volatile uint32_t *px;
	unsigned ro_before;
	struct fx f;
	int fd;

	fx_init(&f, conv);
	cons_connect(&f, &k);
	CHECK_OK(create_host_blob(&f, 10, size));
	CHECK_OK(map_blob(&f, 10, 4 * PAGE));
	fd = mapped_fd(&f, 1);
	/* The VMM maps the fd into the window; the guest draws through it. */
	px = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(px != MAP_FAILED);
	k.vmm = px;
	/* Not sealed yet: only scanning it out does (a blob never shown stays remappable). */
	CHECK_EQ(fcntl(fd, F_GET_SEALS) & F_SEAL_FUTURE_WRITE, 0);
	draw(px, 1);
	ro_before = ro_blob_mappings();

	CHECK_OK(scanout_blob(&f, 10));
	CHECK_EQ(fcntl(fd, F_GET_SEALS) & SEALS, SEALS);
	k.expect = 1;
	CHECK_OK(tgd_resource_flush(f.g, 10, 0, 0, W, H, true));
	cons_wait_seed(&k, 1);
	CHECK_EQ(k.aliased, 1); /* the consumer's mapping IS the blob */
	CHECK_EQ(ro_blob_mappings(), ro_before + 1);

	/* The next frame: drawn through the same (pre-seal) VMM mapping, flushed. */
	draw(px, 2);
	k.expect = 2;
	k.aliased = 0;
	CHECK_OK(tgd_resource_flush(f.g, 10, 0, 0, W, H, true));
	cons_wait_seed(&k, 2);
	CHECK_EQ(k.aliased, 1);

	cons_stats(&f, &cst);
	CHECK(cst.frames_sent >= 2);
	CHECK_EQ(cst.frames_copy, 0);
	CHECK_EQ(cst.copies, 0);
	CHECK_EQ(cst.copy_bytes, 0);
	pthread_mutex_lock(&f.mu);
	CHECK_EQ(vgs_consumers_list(f.cs, &ci, 1), 1);
	pthread_mutex_unlock(&f.mu);
	CHECK(ci.vshm);
	CHECK_EQ(ci.frames_copy, 0);
	st = dev_stats(&f);
	CHECK_EQ(st.blob_views, 1);
	CHECK_EQ(st.blob_copies, 0);
	CHECK_EQ(st.blob_copy_bytes, 0);
	CHECK_EQ(st.transfer_bytes, 0);

	/* Nobody gets a new writable mapping of the blob any more. */
	CHECK(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
	CHECK_EQ(errno, EPERM);
	CHECK_EQ(pwrite(fd, "x", 1, 0), -1);
	CHECK_EQ(errno, EPERM);

	/*
	 * UNMAP_BLOB works; MAP_BLOB again cannot (the VMM's new read-write mmap
	 * would fail): ERR_UNSPEC, nothing sent to the front-end.
	 */
	CHECK_OK(unmap_blob(&f, 10));
	CHECK_EQ(map_blob(&f, 10, 4 * PAGE), -EPROTO);
	CHECK_EQ(tgd_last_resp_type(f.g), VIRTIO_GPU_RESP_ERR_UNSPEC);
	CHECK_EQ(tfe_peer_count_request(f.peer, map_req(&f)), 1);
	CHECK_EQ(dev_stats(&f).blob_map_failures, 1);

	/* A blob scanned out before it is mapped is not sealed: its MAP_BLOB still works. */
	CHECK_OK(create_host_blob(&f, 11, size));
	CHECK_OK(scanout_blob(&f, 11));
	CHECK_OK(map_blob(&f, 11, 4 * PAGE));
	close(mapped_fd(&f, 2));

	vsc_destroy(k.c);
	munmap((void *)px, size);
	close(fd);
	fx_fini(&f);
}

TEST(host_blob_zero_copy_standard_reply_ack)
{
	zero_copy_scenario(STANDARD);
}

TEST(host_blob_zero_copy_crosvm_legacy)
{
	zero_copy_scenario(LEGACY);
}

/*
 * STANDARD without REPLY_ACK: the map request is only sent, the VMM may
 * not have mmapped the fd yet, so sealing could break its mapping. The blob
 * stays unsealed and remappable; consumers get the explicit, counted copy.
 */
TEST(host_blob_without_reply_ack_keeps_the_counted_copy)
{
	const uint64_t size = (uint64_t)W * H * 4;
	struct vgs_consumers_stats cst, cst2;
	struct cons k = { 0 };
	volatile uint32_t *px;
	struct fx f;
	int fd;

	fx_init(&f, STANDARD_NO_ACK);
	cons_connect(&f, &k);
	CHECK_OK(create_host_blob(&f, 10, size));
	CHECK_OK(map_blob(&f, 10, 0));
	fd = mapped_fd(&f, 1);
	px = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(px != MAP_FAILED);
	k.vmm = px;
	draw(px, 5);
	CHECK_OK(scanout_blob(&f, 10));
	CHECK_EQ(fcntl(fd, F_GET_SEALS) & (F_SEAL_FUTURE_WRITE | F_SEAL_SEAL), 0);
	k.expect = 5;
	k.aliased = -1;
	CHECK_OK(tgd_resource_flush(f.g, 10, 0, 0, W, H, true));
	cons_wait_seed(&k, 5);
	CHECK_EQ(k.aliased, 0); /* a copy: the poke did not show */
	cons_stats(&f, &cst);
	CHECK(cst.frames_copy >= 1);
	CHECK(cst.copies >= 1);
	CHECK(cst.copy_bytes >= (uint64_t)W * H * 4);

	/* The next frame is copied again at its flush, and counted. */
	draw(px, 6);
	k.expect = 6;
	CHECK_OK(tgd_resource_flush(f.g, 10, 0, 0, W, H, true));
	cons_wait_seed(&k, 6);
	CHECK_EQ(k.aliased, 0);
	cons_stats(&f, &cst2);
	CHECK(cst2.frames_copy > cst.frames_copy);
	CHECK(cst2.copies > cst.copies);
	CHECK_EQ(dev_stats(&f).blob_copies, 0); /* the device itself copies nothing */

	/* Unsealed: UNMAP_BLOB then MAP_BLOB works as before. */
	CHECK_OK(unmap_blob(&f, 10));
	CHECK_OK(map_blob(&f, 10, 0));
	close(mapped_fd(&f, 2));

	vsc_destroy(k.c);
	munmap((void *)px, size);
	close(fd);
	fx_fini(&f);
}
