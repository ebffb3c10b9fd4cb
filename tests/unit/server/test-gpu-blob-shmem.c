/* SPDX-License-Identifier: MIT */
/*
 * test-gpu-blob-shmem.c - host-visible blobs end to end through the mini
 * VMM: the device behind the real vhost-user engine (own thread), the
 * test GPU driver bringing it up in crosvm's order, and the front-end's
 * back-end channel peer answering SHMEM_MAP/UNMAP, in both conventions:
 *  - standard: SHMEM (bit 22), GET_SHMEM_CONFIG, BACKEND_SHMEM_MAP/UNMAP
 *    9/10 with REPLY_ACK + NEED_REPLY;
 *  - crosvm legacy: bit 31, GET_SHARED_MEMORY_REGIONS 1004, 1000/1001
 *    answered unconditionally.
 * The test plays the VMM: it mmaps the fd that arrived with the map
 * request and writes pixels through it as the guest would through the
 * window, then checks the display sink shows exactly those pixels.
 */
#include "gpu-test-util.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/event_loop.h>
#include <vshm/vhost_user.h>

#include "backend-peer.h"
#include "frontend.h"
#include "gpu-driver.h"

#define PAGE     ((uint64_t)sysconf(_SC_PAGESIZE))
#define WINDOW   (256ull << 20)
#define XRGB     VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM
#define F_BLOB   (1ull << VIRTIO_GPU_F_RESOURCE_BLOB)
#define PF_SHMEM VSHM_VU_PF_SHMEM
#define PF_BIT31 VSHM_VU_PF_CROSVM_SHMEM_REGIONS

#define B_CROSVM_MAP   1000u
#define B_CROSVM_UNMAP 1001u

enum conv { STANDARD, LEGACY };

/* Sink on the engine thread; read by the test after a completion that followed. */
struct sink {
	struct vgs_image *img;
	struct vgs_rect rect;
	unsigned scanouts, flushes;
};

static void s_scanout(void *data, const struct vgs_scanout_state *st)
{
	struct sink *s = data;
	if (st->scanout_id != 0)
		return;
	vgs_image_unref(s->img);
	s->img = st->enabled ? vgs_image_ref(st->image) : NULL;
	s->rect = st->rect;
	s->scanouts++;
}

static void s_flush(void *data, uint32_t id, const struct vgs_rect *d, uint64_t ns)
{
	struct sink *s = data;
	(void)id;
	(void)d;
	(void)ns;
	s->flushes++;
}

static const struct vgs_display_sink_ops s_ops = { .scanout = s_scanout, .flush = s_flush };

struct fx {
	enum conv conv;
	struct vshm_event_loop *loop;
	struct vshm_loop iface;
	struct vshm_vu_dev *dev;
	struct vgs_gpu *gpu;
	struct tgd *g;
	struct tfe_peer *peer;
	struct sink sink;
	struct vgs_display_sink sd;
	pthread_t thread;
	int stop;
	uint64_t sizes[256];
};

static void *engine_thread(void *data)
{
	struct fx *f = data;
	while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE))
		vshm_event_loop_dispatch(f->loop, 20);
	return NULL;
}

/* @protocol_clear: leave these un-acked on top of the convention's own choice. */
static void fx_init(struct fx *f, enum conv conv, uint64_t protocol_clear)
{
	struct vgs_gpu_config gc;
	struct vshm_vu_config vc;
	struct tgd_bringup b = { .features_add = F_BLOB };
	int sv[2];

	memset(f, 0, sizeof(*f));
	f->conv = conv;
	vgs_gpu_config_defaults(&gc);
	gc.host_visible_size = WINDOW;
	CHECK_OK(vgs_gpu_new(&gc, &f->gpu));
	CHECK_OK(vshm_event_loop_new(&f->loop));
	f->iface = vshm_event_loop_iface(f->loop);
	vshm_vu_config_defaults(&vc);
	vc.num_queues = 2;
	vc.config_size = sizeof(struct virtio_gpu_config);
	vc.backend_reply_timeout_ms = 500;
	vc.shmem_crosvm_legacy = true; /* offered; the front-end picks */
	CHECK_OK(vshm_vu_dev_new(&vc, vgs_gpu_device_ops(), f->gpu, &f->iface, &f->dev));
	vgs_gpu_set_engine(f->gpu, f->dev);
	f->sd.ops = &s_ops;
	f->sd.data = &f->sink;
	CHECK_OK(vgs_gpu_add_display(f->gpu, &f->sd));
	CHECK_OK(tgd_new(NULL, &f->g));
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	CHECK_OK(vshm_vu_dev_connect(f->dev, sv[0]));
	CHECK_EQ(pthread_create(&f->thread, NULL, engine_thread, f), 0);
	CHECK_OK(tgd_attach_fd(f->g, sv[1]));
	if (conv == STANDARD) {
		/* QEMU 11.1 / rust-vmm style: the fd travels only with BACKEND_SEND_FD. */
		b.protocol_add = VSHM_VU_PF_BACKEND_SEND_FD;
	} else {
		/* crosvm before 2025-12: bit 31, no standard SHMEM, replies always. */
		b.protocol_add = PF_BIT31;
		b.protocol_clear = PF_SHMEM | VSHM_VU_PF_REPLY_ACK;
	}
	b.protocol_clear |= protocol_clear;
	CHECK_OK(tgd_bringup_crosvm(f->g, &b, f->sizes));
	f->peer = tfe_get_backend_peer(tgd_tfe(f->g));
	CHECK(f->peer != NULL);
	if (conv == LEGACY)
		tfe_peer_set_always_reply(f->peer, true);
	CHECK_EQ(f->sizes[1], WINDOW);
	CHECK(tgd_features(f->g) & F_BLOB);
	CHECK_EQ(vshm_vu_dev_shmem_convention(f->dev),
	         conv == STANDARD ? VSHM_VU_SHMEM_STANDARD : VSHM_VU_SHMEM_CROSVM_LEGACY);
}

static void fx_fini(struct fx *f)
{
	tgd_destroy(f->g);
	for (int i = 0; i < 200 && vshm_vu_dev_is_connected(f->dev); i++)
		usleep(5000);
	__atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
	pthread_join(f->thread, NULL);
	vshm_vu_dev_destroy(f->dev);
	vgs_gpu_remove_display(f->gpu, &f->sd);
	vgs_gpu_destroy(f->gpu);
	vgs_image_unref(f->sink.img);
	vshm_event_loop_destroy(f->loop);
}

static struct vgs_gpu_stats gstats(struct fx *f)
{
	struct vgs_gpu_stats s;
	vgs_gpu_get_stats(f->gpu, &s);
	return s;
}

static uint32_t map_req(struct fx *f)
{
	return f->conv == STANDARD ? TFE_BACKEND_SHMEM_MAP : B_CROSVM_MAP;
}

static uint32_t unmap_req(struct fx *f)
{
	return f->conv == STANDARD ? TFE_BACKEND_SHMEM_UNMAP : B_CROSVM_UNMAP;
}

/* ---- commands ---- */

static int create_host_blob(struct fx *f, uint32_t id, uint32_t flags, uint64_t size)
{
	struct virtio_gpu_resource_create_blob c;
	memset(&c, 0, sizeof(c));
	tgd_hdr(f->g, &c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB, false);
	c.resource_id = htole32(id);
	c.blob_mem = htole32(VIRTIO_GPU_BLOB_MEM_HOST3D);
	c.blob_flags = htole32(flags);
	c.size = htole64(size);
	return tgd_cmd(f->g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

static int map_blob(struct fx *f, uint32_t id, uint64_t offset, uint32_t *map_info)
{
	struct virtio_gpu_resource_map_blob c;
	struct virtio_gpu_resp_map_info r;
	int rc;

	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	tgd_hdr(f->g, &c.hdr, VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB, false);
	c.resource_id = htole32(id);
	c.offset = htole64(offset);
	rc = tgd_cmd(f->g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, &r, sizeof(r));
	if (map_info)
		*map_info = le32toh(r.map_info);
	return rc;
}

static int res_cmd(struct fx *f, uint32_t type, uint32_t id)
{
	struct virtio_gpu_resource_unmap_blob c;
	memset(&c, 0, sizeof(c));
	tgd_hdr(f->g, &c.hdr, type, false);
	c.resource_id = htole32(id);
	return tgd_cmd(f->g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

static int scanout_blob(struct fx *f, uint32_t id, uint32_t w, uint32_t h, uint32_t stride)
{
	struct virtio_gpu_set_scanout_blob c;
	memset(&c, 0, sizeof(c));
	tgd_hdr(f->g, &c.hdr, VIRTIO_GPU_CMD_SET_SCANOUT_BLOB, false);
	c.r.width = htole32(w);
	c.r.height = htole32(h);
	c.resource_id = htole32(id);
	c.width = htole32(w);
	c.height = htole32(h);
	c.format = htole32(XRGB);
	c.strides[0] = htole32(stride);
	return tgd_cmd(f->g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

/* The map request the peer recorded as @idx: region offset, length, fd (dup'ed). */
struct got_map {
	uint32_t flags;
	uint8_t shmid;
	uint64_t shm_offset, fd_offset, len;
	bool writable;
	int fd;
};

static struct got_map last_map(struct fx *f)
{
	struct tfe_peer_record rec;
	struct got_map m = { .fd = -1 };
	unsigned n = tfe_peer_count(f->peer);

	for (unsigned i = n; i-- > 0;) {
		CHECK_OK(tfe_peer_get(f->peer, i, &rec));
		if (rec.request != map_req(f))
			continue;
		m.flags = rec.flags;
		if (f->conv == STANDARD) {
			struct tfe_shmem_mmap mm;
			CHECK_EQ(rec.size, sizeof(mm));
			memcpy(&mm, rec.payload, sizeof(mm));
			m.shmid = mm.shmid;
			m.fd_offset = mm.fd_offset;
			m.shm_offset = mm.shm_offset;
			m.len = mm.len;
			m.writable = mm.flags & 1;
		} else {
			/* {u8 flags (R=1, W=2); u8 shmid; pad6; shm_offset; fd_offset; len} */
			CHECK_EQ(rec.size, 32);
			m.writable = rec.payload[0] == 3;
			m.shmid = rec.payload[1];
			memcpy(&m.shm_offset, rec.payload + 8, 8);
			memcpy(&m.fd_offset, rec.payload + 16, 8);
			memcpy(&m.len, rec.payload + 24, 8);
		}
		CHECK(rec.fd >= 0);
		m.fd = dup(rec.fd);
		return m;
	}
	CHECK(0);
	return m;
}

/* ---- the scenario, run in both conventions ---- */

static void host_blob_scenario(enum conv conv)
{
	const uint32_t w = 128, h = 64, stride = w * 4;
	const uint64_t size = (uint64_t)stride * h;
	struct vgs_gpu_stats st;
	struct vshm_vu_shmem_stats ss;
	struct got_map m;
	uint32_t info = 0;
	uint32_t *px;
	struct fx f;

	fx_init(&f, conv, 0);
	CHECK_OK(create_host_blob(
	        &f, 10, VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE | VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE,
	        size));
	CHECK_OK(map_blob(&f, 10, 2 * PAGE, &info));
	CHECK_EQ(info, VIRTIO_GPU_MAP_CACHE_CACHED);
	CHECK_EQ(tfe_peer_count_request(f.peer, map_req(&f)), 1);
	m = last_map(&f);
	CHECK_EQ(m.shmid, VIRTIO_GPU_SHM_ID_HOST_VISIBLE);
	CHECK_EQ(m.shm_offset, 2 * PAGE);
	CHECK_EQ(m.fd_offset, 0);
	CHECK_EQ(m.len, size);
	CHECK(m.writable);
	if (conv == STANDARD)
		CHECK(m.flags & TFE_FLAG_NEED_REPLY); /* the answer waited for the mapping */

	/* The VMM maps the fd into the window; the guest draws through it. */
	px = mmap(NULL, m.len, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd, (off_t)m.fd_offset);
	CHECK(px != MAP_FAILED);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++)
			px[y * w + x] = pix(x, y, 77);
	CHECK_OK(scanout_blob(&f, 10, w, h, stride));
	CHECK_OK(tgd_resource_flush(f.g, 10, 0, 0, w, h, true));
	CHECK_EQ(f.sink.flushes, 1);
	CHECK(f.sink.img != NULL);
	CHECK(f.sink.img->memfd >= 0); /* the image IS the blob's memfd */
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint32_t v;
			memcpy(&v, f.sink.img->data + (uint64_t)y * f.sink.img->stride + x * 4, 4);
			CHECK_EQ(v, pix(x, y, 77));
		}
	/* Zero copy: the next frame is visible before any command. */
	px[5] = 0xff123456;
	CHECK_EQ(((const uint32_t *)f.sink.img->data)[5], 0xff123456u);
	st = gstats(&f);
	CHECK_EQ(st.blob_views, 1);
	CHECK_EQ(st.blob_copies, 0);
	CHECK_EQ(st.transfer_bytes, 0);
	CHECK_EQ(st.blob_maps, 1);

	/* Overlap with a live mapping: refused locally, nothing sent. */
	CHECK_OK(create_host_blob(&f, 11, VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE, PAGE));
	CHECK_EQ(map_blob(&f, 11, 3 * PAGE, NULL), -EPROTO);
	CHECK_EQ(tgd_last_resp_type(f.g), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(map_blob(&f, 10, 64 * PAGE, NULL), -EPROTO); /* already mapped */
	CHECK_EQ(tfe_peer_count_request(f.peer, map_req(&f)), 1);
	/* Past the window, unaligned. */
	CHECK_EQ(map_blob(&f, 11, WINDOW, NULL), -EPROTO);
	CHECK_EQ(map_blob(&f, 11, PAGE + 8, NULL), -EPROTO);
	CHECK_EQ(tfe_peer_count_request(f.peer, map_req(&f)), 1);

	/* The front-end refuses a mapping: ERR_UNSPEC, not mapped. */
	tfe_peer_set_reply(f.peer, map_req(&f), TFE_PEER_REPLY_ERROR, (uint64_t)-ENOMEM, 0);
	CHECK_EQ(map_blob(&f, 11, 128 * PAGE, NULL), -EPROTO);
	CHECK_EQ(tgd_last_resp_type(f.g), VIRTIO_GPU_RESP_ERR_UNSPEC);
	CHECK_EQ(gstats(&f).blob_map_failures, 2); /* the overlap and this refusal */
	CHECK_EQ(res_cmd(&f, VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB, 11), -EPROTO);
	tfe_peer_set_reply(f.peer, map_req(&f), TFE_PEER_REPLY_OK, 0, 0);
	CHECK_OK(map_blob(&f, 11, 128 * PAGE, NULL));

	/* UNMAP_BLOB names the same range. */
	CHECK_OK(res_cmd(&f, VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB, 10));
	CHECK_EQ(tfe_peer_count_request(f.peer, unmap_req(&f)), 1);
	CHECK_EQ(res_cmd(&f, VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB, 10), -EPROTO);
	/* UNREF of a mapped blob unmaps it first. */
	CHECK_OK(tgd_resource_unref(f.g, 11));
	CHECK_EQ(tfe_peer_count_request(f.peer, unmap_req(&f)), 2);
	vshm_vu_dev_get_shmem_stats(f.dev, &ss);
	CHECK_EQ(ss.live, 0);
	/* The scanout still shows blob 10 (unmapped, still alive). */
	CHECK_OK(tgd_resource_flush(f.g, 10, 0, 0, w, h, true));

	/*
	 * Blob 10 was sealed (F_SEAL_FUTURE_WRITE) when it was scanned out with a
	 * confirmed mapping: the VMM's new read-write mmap would fail, so a second
	 * MAP_BLOB is refused before anything is sent (test-gpu-blob-zerocopy.c).
	 */
	CHECK_EQ(map_blob(&f, 10, 0, NULL), -EPROTO);
	CHECK_EQ(tgd_last_resp_type(f.g), VIRTIO_GPU_RESP_ERR_UNSPEC);
	CHECK_EQ(tfe_peer_count_request(f.peer, map_req(&f)), 3);
	/* Reset with a live mapping: UNMAP sent for it, device state cleared. */
	CHECK_OK(create_host_blob(&f, 12, VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE, PAGE));
	CHECK_OK(map_blob(&f, 12, 0, NULL));
	CHECK_OK(tfe_reset_owner(tgd_tfe(f.g)));
	CHECK_OK(tfe_sync(tgd_tfe(f.g)));
	for (int i = 0; i < 100 && tfe_peer_count_request(f.peer, unmap_req(&f)) < 3; i++)
		usleep(10000);
	CHECK_EQ(tfe_peer_count_request(f.peer, unmap_req(&f)), 3);
	vshm_vu_dev_get_shmem_stats(f.dev, &ss);
	CHECK_EQ(ss.live, 0);
	st = gstats(&f);
	CHECK_EQ(st.resources, 0);
	CHECK_EQ(st.blobs, 0);
	CHECK_EQ(st.host_bytes, 0);
	CHECK(f.sink.img == NULL); /* the scanout went dark */
	munmap(px, m.len);
	close(m.fd);
	fx_fini(&f);
}

TEST(host_blob_standard_convention)
{
	host_blob_scenario(STANDARD);
}

TEST(host_blob_crosvm_legacy_convention)
{
	host_blob_scenario(LEGACY);
}

/* crosvm's current front-end does not ack BACKEND_SEND_FD: the engine will not send the fd. */
/* crosvm's front-end acks SHMEM but not BACKEND_SEND_FD: MAP_BLOB still works. */
TEST(standard_without_send_fd_maps_like_crosvm)
{
	struct fx f;

	fx_init(&f, STANDARD, VSHM_VU_PF_BACKEND_SEND_FD);
	CHECK_OK(create_host_blob(&f, 10, VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE, PAGE));
	CHECK_OK(map_blob(&f, 10, 0, NULL));
	CHECK_EQ(tfe_peer_count_request(f.peer, TFE_BACKEND_SHMEM_MAP), 1);
	fx_fini(&f);
}

/* Guest blobs through the queues: exact pixels, and how many copies each path makes. */
static void guest_blob(struct fx *f, uint32_t id, uint32_t w, uint32_t h, bool scatter,
                       uint32_t seed)
{
	struct testfe_mem *tm = tgd_mem(f->g);
	struct virtio_gpu_mem_entry e[16];
	uint64_t size = (uint64_t)w * h * 4, pages = size / PAGE, gpa;
	uint8_t req[sizeof(struct virtio_gpu_resource_create_blob) + sizeof(e)];
	struct virtio_gpu_resource_create_blob c;
	void *host;

	CHECK(size % PAGE == 0 && pages <= 16);
	for (uint64_t p = 0; p < pages; p++) {
		CHECK_OK(testfe_mem_alloc(tm, PAGE, PAGE, &gpa, &host));
		if (scatter) { /* a hole after every page: nothing is contiguous */
			uint64_t hole;
			CHECK_OK(testfe_mem_alloc(tm, PAGE, PAGE, &hole, NULL));
		}
		e[p].addr = htole64(gpa);
		e[p].length = htole32((uint32_t)PAGE);
		e[p].padding = 0;
	}
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint32_t v = pix(x, y, seed);
			uint64_t off = ((uint64_t)y * w + x) * 4;
			CHECK_OK(testfe_mem_write(tm, le64toh(e[off / PAGE].addr) + off % PAGE, &v,
			                          4));
		}
	memset(&c, 0, sizeof(c));
	tgd_hdr(f->g, &c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB, false);
	c.resource_id = htole32(id);
	c.blob_mem = htole32(VIRTIO_GPU_BLOB_MEM_GUEST);
	c.blob_flags = htole32(VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE);
	c.nr_entries = htole32((uint32_t)pages);
	c.size = htole64(size);
	memcpy(req, &c, sizeof(c));
	memcpy(req + sizeof(c), e, pages * sizeof(e[0]));
	CHECK_OK(tgd_cmd(f->g, TGD_QUEUE_CTRL, req, (uint32_t)(sizeof(c) + pages * sizeof(e[0])), 0,
	                 0, NULL, 0));
}

static void check_sink(struct fx *f, uint32_t w, uint32_t h, uint32_t seed)
{
	CHECK(f->sink.img != NULL);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint32_t v;
			memcpy(&v, f->sink.img->data + (uint64_t)y * f->sink.img->stride + x * 4,
			       4);
			CHECK_EQ(v, pix(x, y, seed));
		}
}

TEST(guest_blobs_through_the_queues)
{
	const uint32_t w = 64, h = 64;
	struct vgs_gpu_stats st;
	struct fx f;

	fx_init(&f, STANDARD, 0);
	/* Contiguous: zero host copies per frame (Linux: transfer no-op + fenced flush). */
	guest_blob(&f, 20, w, h, false, 3);
	CHECK_OK(scanout_blob(&f, 20, w, h, w * 4));
	for (int frame = 0; frame < 3; frame++) {
		CHECK_OK(tgd_transfer_to_host_2d(f.g, 20, 0, 0, w, h, 0, false));
		CHECK_OK(tgd_resource_flush(f.g, 20, 0, 0, w, h, true));
	}
	check_sink(&f, w, h, 3);
	st = gstats(&f);
	CHECK_EQ(st.blob_views, 1);
	CHECK_EQ(st.blob_copies, 0);
	CHECK_EQ(st.transfer_bytes, 0);
	/* Scattered pages: exactly one counted copy per flushed frame. */
	guest_blob(&f, 21, w, h, true, 4);
	CHECK_OK(scanout_blob(&f, 21, w, h, w * 4));
	for (int frame = 0; frame < 3; frame++) {
		CHECK_OK(tgd_transfer_to_host_2d(f.g, 21, 0, 0, w, h, 0, false));
		CHECK_OK(tgd_resource_flush(f.g, 21, 0, 0, w, h, true));
	}
	check_sink(&f, w, h, 4);
	st = gstats(&f);
	CHECK_EQ(st.blob_copies, 3);
	CHECK_EQ(st.blob_copy_bytes, 3ull * w * h * 4);
	CHECK_EQ(st.transfer_bytes, 0);
	fx_fini(&f);
}
