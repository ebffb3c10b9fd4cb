/* SPDX-License-Identifier: MIT */
/*
 * test-gpu-queue.c - the device model behind the real vhost-user engine,
 * driven through split virtqueues in shared memory by the test guest
 * driver (tests/frontend/gpu-driver.h).
 *
 * The engine, the device and the fake sink run on their own thread with
 * their own event loop (the device is single-threaded by design); the test
 * thread is the guest. Sink state is read only after a completion that
 * followed it (the used ring's release/acquire orders it), or after join.
 */
#include "gpu-test-util.h"

#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vshm/event_loop.h>
#include <vshm/vhost_user.h>

#include "gpu-driver.h"

struct qfx {
	struct vshm_event_loop *loop;
	struct vshm_loop iface;
	struct vshm_vu_dev *dev;
	struct vgs_gpu *gpu;
	struct tgd *g;
	struct fake_sink sink;
	struct vgs_display_sink sink_desc;
	struct vshm_timer *answer_timer;
	pthread_t thread;
	int stop;
};

static void *engine_thread(void *data)
{
	struct qfx *q = data;
	while (!__atomic_load_n(&q->stop, __ATOMIC_ACQUIRE))
		vshm_event_loop_dispatch(q->loop, 20);
	return NULL;
}

/* Answer a held display query 100 ms later, on the engine thread. */
static void answer_later(struct vshm_timer *t, void *data)
{
	struct qfx *q = data;
	if (q->sink.info_cb) {
		vgs_display_info_cb cb = q->sink.info_cb;
		q->sink.info_cb = NULL;
		cb(q->sink.cb_data, true, q->sink.modes);
	}
}

static int delayed_get_display_info(void *data, vgs_display_info_cb cb, void *cb_data)
{
	struct qfx *q = data;
	q->sink.info_queries++;
	q->sink.info_cb = cb;
	q->sink.cb_data = cb_data;
	return vshm_timer_arm(q->answer_timer, 100 * 1000000ull, 0);
}

static void q_scanout(void *data, const struct vgs_scanout_state *s)
{
	fake_scanout(&((struct qfx *)data)->sink, s);
}
static void q_flush(void *data, uint32_t id, const struct vgs_rect *d, uint64_t ns)
{
	fake_flush(&((struct qfx *)data)->sink, id, d, ns);
}
static void q_cursor_update(void *data, uint32_t s, uint32_t x, uint32_t y, uint32_t hx,
                            uint32_t hy, const uint32_t *p)
{
	fake_cursor_update(&((struct qfx *)data)->sink, s, x, y, hx, hy, p);
}
static void q_cursor_move(void *data, uint32_t s, uint32_t x, uint32_t y, bool v)
{
	fake_cursor_move(&((struct qfx *)data)->sink, s, x, y, v);
}

static const struct vgs_display_sink_ops q_ops = {
	.scanout = q_scanout,
	.flush = q_flush,
	.cursor_update = q_cursor_update,
	.cursor_move = q_cursor_move,
	.get_display_info = delayed_get_display_info,
};

static void qfx_init(struct qfx *q, bool query_sink)
{
	struct vgs_gpu_config gc;
	struct vshm_vu_config vc;
	int sv[2];

	memset(q, 0, sizeof(*q));
	vgs_gpu_config_defaults(&gc);
	gc.width[0] = 1024;
	gc.height[0] = 768;
	CHECK_OK(vgs_gpu_new(&gc, &q->gpu));
	CHECK_OK(vshm_event_loop_new(&q->loop));
	q->iface = vshm_event_loop_iface(q->loop);
	CHECK_OK(vshm_event_loop_add_timer(q->loop, answer_later, q, &q->answer_timer));
	vshm_vu_config_defaults(&vc);
	vc.num_queues = 2;
	vc.config_size = sizeof(struct virtio_gpu_config);
	vc.backend_reply_timeout_ms = 200;
	CHECK_OK(vshm_vu_dev_new(&vc, vgs_gpu_device_ops(), q->gpu, &q->iface, &q->dev));
	vgs_gpu_set_engine(q->gpu, q->dev);
	q->sink_desc.ops = query_sink ? &q_ops : &fake_ops;
	q->sink_desc.data = query_sink ? (void *)q : (void *)&q->sink;
	CHECK_OK(vgs_gpu_add_display(q->gpu, &q->sink_desc));
	CHECK_OK(tgd_new(NULL, &q->g));
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	CHECK_OK(vshm_vu_dev_connect(q->dev, sv[0]));
	CHECK_EQ(pthread_create(&q->thread, NULL, engine_thread, q), 0);
	CHECK_OK(tgd_attach_fd(q->g, sv[1]));
	CHECK_OK(tgd_bringup_qemu(q->g, NULL));
}

/* Disconnect (the engine resets the device), stop the thread, then inspect. */
static void qfx_stop(struct qfx *q)
{
	tgd_destroy(q->g);
	q->g = NULL;
	/* Let the engine see the hang-up before stopping. */
	for (int i = 0; i < 200 && vshm_vu_dev_is_connected(q->dev); i++)
		usleep(5000);
	__atomic_store_n(&q->stop, 1, __ATOMIC_RELEASE);
	pthread_join(q->thread, NULL);
}

static void qfx_fini(struct qfx *q)
{
	vshm_vu_dev_destroy(q->dev);
	vgs_gpu_destroy(q->gpu);
	vshm_event_loop_remove_timer(q->loop, q->answer_timer);
	vshm_event_loop_destroy(q->loop);
}

TEST_NO_LEAK_CHECK(bringup_config_and_display_info)
{
	struct virtio_gpu_resp_display_info di;
	struct virtio_gpu_config c;
	struct qfx q;
	qfx_init(&q, false);
	tgd_device_config(q.g, &c);
	CHECK_EQ(le32toh(c.num_scanouts), 1);
	CHECK_EQ(le32toh(c.num_capsets), 0);
	CHECK(tgd_features(q.g) & (1u << VIRTIO_GPU_F_EDID));
	CHECK_OK(tgd_get_display_info(q.g, &di));
	CHECK_EQ(le32toh(di.pmodes[0].r.width), 1024);
	CHECK_EQ(le32toh(di.pmodes[0].enabled), 1);
	struct virtio_gpu_resp_edid e;
	CHECK_OK(tgd_get_edid(q.g, 0, &e));
	CHECK_EQ(le32toh(e.size), 128);
	CHECK_EQ(tgd_get_edid(q.g, 16, &e), -EPROTO);
	CHECK_EQ(tgd_last_resp_type(q.g), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	qfx_stop(&q);
	qfx_fini(&q);
}

TEST_NO_LEAK_CHECK(frame_through_the_rings)
{
	struct tgd_resource r;
	struct qfx q;
	struct vgs_gpu_stats s;
	qfx_init(&q, false);
	/* Backing split into 7 mem entries (the scatter path). */
	CHECK_OK(tgd_resource_new(q.g, 2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 640, 480, 7, &r));
	tgd_fill(&r, TGD_PATTERN_HASH, 42);
	CHECK_OK(tgd_transfer_to_host_2d(q.g, 2, 0, 0, 640, 480, 0, false));
	CHECK_OK(tgd_set_scanout(q.g, 0, 2, 0, 0, 640, 480));
	CHECK_OK(tgd_resource_flush(q.g, 2, 0, 0, 640, 480, true));
	CHECK_EQ(q.sink.scanouts, 1);
	CHECK_EQ(q.sink.flushes, 1);
	CHECK_EQ(q.sink.flush_damage.width, 640);
	struct vgs_image *img = q.sink.last_scanout.image;
	CHECK(img != NULL);
	CHECK_MEM_EQ(img->data, r.pixels, 640 * 480 * 4);
	/* A sub-rectangle update changes only that area. */
	tgd_fill_rect(&r, 100, 50, 30, 20, TGD_PATTERN_SOLID, 0xff123456);
	CHECK_OK(tgd_transfer_to_host_2d(q.g, 2, 100, 50, 30, 20, 100 * 4 + 50 * r.stride, true));
	CHECK_MEM_EQ(img->data, r.pixels, 640 * 480 * 4);
	/* Errors travel back as response types. */
	CHECK_EQ(tgd_transfer_to_host_2d(q.g, 2, 600, 0, 41, 1, 0, false), -EPROTO);
	CHECK_EQ(tgd_last_resp_type(q.g), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(tgd_resource_create_2d(q.g, 3, 2, 65536, 65536), -EPROTO);
	CHECK_EQ(tgd_last_resp_type(q.g), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	/* Cursor queue: every buffer comes back. */
	struct tgd_resource cur;
	CHECK_OK(tgd_resource_new(q.g, 4, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, 64, 64, 1, &cur));
	tgd_fill(&cur, TGD_PATTERN_HASH, 7);
	CHECK_OK(tgd_transfer_to_host_2d(q.g, 4, 0, 0, 64, 64, 0, true));
	for (int i = 0; i < 40; i++) /* more than the 16-entry cursor queue */
		CHECK_OK(tgd_move_cursor(q.g, 0, (uint32_t)i, 2, 4));
	CHECK_OK(tgd_update_cursor(q.g, 0, 10, 20, 4, 1, 1));
	CHECK_OK(tgd_update_cursor(q.g, 16, 10, 20, 4, 1, 1)); /* bad scanout: still returned */
	CHECK_EQ(q.sink.cursor_moves, 40);
	CHECK_EQ(q.sink.cursor_updates, 1);
	CHECK_MEM_EQ(q.sink.cur_pixels, cur.pixels, 64 * 64 * 4);
	qfx_stop(&q);
	/* The disconnect reset the device: everything freed. */
	vgs_gpu_get_stats(q.gpu, &s);
	CHECK_EQ(s.resources, 0);
	CHECK_EQ(s.host_bytes, 0);
	CHECK(s.transfer_bytes >= 640 * 480 * 4 + 30 * 20 * 4 + 64 * 64 * 4);
	CHECK(!q.sink.last_scanout.enabled);
	qfx_fini(&q);
}

struct order_rec {
	unsigned n;
	uint32_t types[64];
	uint64_t fences[64];
	uint64_t done_ns[64];
};

static void record(void *data, const struct tgd_done *d)
{
	struct order_rec *o = data;
	if (o->n < 64) {
		o->types[o->n] = d->resp_type;
		o->fences[o->n] = d->resp_fence_id;
		o->done_ns[o->n] = d->done_ns;
	}
	o->n++;
}

TEST_NO_LEAK_CHECK(held_display_query_keeps_fence_order)
{
	struct order_rec o = { 0 };
	struct tgd_resource r;
	struct qfx q;
	qfx_init(&q, true);
	CHECK_OK(tgd_resource_new(q.g, 2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 256, 256, 2, &r));
	q.sink.modes[0] = (struct vgs_display_info_mode){ true, 1600, 900 };
	tgd_set_batch(q.g, true);
	CHECK_OK(tgd_get_display_info_async(q.g, record, &o, NULL));
	for (int i = 0; i < 20; i++)
		CHECK_OK(tgd_transfer_async(q.g, 2, 0, (uint32_t)i, 256, 1, (uint64_t)i * r.stride,
		                            true, record, &o, NULL));
	CHECK_OK(tgd_kick(q.g, TGD_QUEUE_CTRL));
	tgd_set_batch(q.g, false);
	CHECK_OK(tgd_drain(q.g, 5000));
	CHECK_EQ(o.n, 21);
	CHECK_EQ(o.types[0], VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
	for (unsigned i = 1; i < 21; i++) {
		CHECK_EQ(o.types[i], VIRTIO_GPU_RESP_OK_NODATA);
		CHECK(o.fences[i] > o.fences[i - 1] || i == 1);
		CHECK(o.done_ns[i] >= o.done_ns[0]);
	}
	/* The answer came ~100 ms later and carried the sink's geometry. */
	struct virtio_gpu_resp_display_info di;
	q.sink.modes[0].width = 1280;
	CHECK_OK(tgd_get_display_info(q.g, &di));
	CHECK_EQ(le32toh(di.pmodes[0].r.width), 1280);
	qfx_stop(&q);
	CHECK_EQ(q.sink.info_queries, 2);
	qfx_fini(&q);
}
