/* SPDX-License-Identifier: MIT */
/*
 * test-gpu-commands.c - display, scanout, flush, EDID, UUID, capsets,
 * fences, malformed requests, sink queries and the config space of the
 * virtio-gpu device model, through its direct command entry point.
 */
#include "gpu-test-util.h"

#include <unistd.h>

static uint32_t simple(struct gfx *f, uint32_t type, uint32_t arg)
{
	struct {
		struct virtio_gpu_ctrl_hdr h;
		uint32_t a, pad;
	} c;
	hdr(&c.h, type);
	c.a = htole32(arg);
	c.pad = 0;
	return cmd(f, &c, sizeof(c));
}

TEST(display_info_from_config)
{
	struct virtio_gpu_ctrl_hdr h;
	struct virtio_gpu_resp_display_info di;
	struct gfx f;
	gfx_init(&f);
	hdr(&h, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
	CHECK_EQ(cmd(&f, &h, sizeof(h)), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
	CHECK_EQ(f.last_len, sizeof(di));
	memcpy(&di, f.resp, sizeof(di));
	CHECK_EQ(le32toh(di.pmodes[0].r.width), 1280);
	CHECK_EQ(le32toh(di.pmodes[0].r.height), 800);
	CHECK_EQ(le32toh(di.pmodes[0].enabled), 1);
	/* Scanout 1 was left 0x0: default mode, not enabled. */
	CHECK_EQ(le32toh(di.pmodes[1].r.width), 1024);
	CHECK_EQ(le32toh(di.pmodes[1].r.height), 768);
	CHECK_EQ(le32toh(di.pmodes[1].enabled), 0);
	for (int i = 2; i < 16; i++)
		CHECK_EQ(di.pmodes[i].r.width | di.pmodes[i].enabled, 0);
	/* Hot-plug changes what the next query reports. */
	CHECK_OK(vgs_gpu_set_mode(f.gpu, 1, true, 800, 600));
	CHECK_EQ(cmd(&f, &h, sizeof(h)), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
	memcpy(&di, f.resp, sizeof(di));
	CHECK_EQ(le32toh(di.pmodes[1].r.width), 800);
	CHECK_EQ(le32toh(di.pmodes[1].enabled), 1);
	CHECK_EQ(vgs_gpu_set_mode(f.gpu, 16, true, 800, 600), -EINVAL);
	CHECK_EQ(vgs_gpu_set_mode(f.gpu, 0, true, 0, 600), -EINVAL);
	CHECK_EQ(vgs_gpu_set_mode(f.gpu, 0, true, VGS_MAX_DIM + 1, 600), -EINVAL);
	gfx_fini(&f);
}

TEST(set_scanout_and_disable)
{
	struct gfx f;
	gfx_init(&f);
	CHECK_EQ(create_2d(&f, 2, 2, 1280, 800), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(set_scanout(&f, 16, 2, 0, 0, 1280, 800), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	CHECK_EQ(set_scanout(&f, 0xffffffffu, 2, 0, 0, 1, 1),
	         VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	CHECK_EQ(set_scanout(&f, 0, 3, 0, 0, 1280, 800), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(set_scanout(&f, 0, 2, 0, 0, 1281, 800), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(set_scanout(&f, 0, 2, 1, 0, 1280, 800), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(set_scanout(&f, 0, 2, 0xfffffff0u, 0, 0x20, 8),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(set_scanout(&f, 0, 2, 0, 0, 0, 800), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(f.sink.scanouts, 0);
	CHECK_EQ(set_scanout(&f, 1, 2, 10, 20, 640, 480), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(f.sink.scanouts, 1);
	CHECK_EQ(f.sink.last_scanout.scanout_id, 1);
	CHECK(f.sink.last_scanout.enabled);
	CHECK_EQ(f.sink.last_scanout.rect.x, 10);
	CHECK_EQ(f.sink.last_scanout.rect.y, 20);
	CHECK_EQ(f.sink.last_scanout.rect.width, 640);
	CHECK_EQ(f.sink.last_scanout.rect.height, 480);
	CHECK(f.sink.last_scanout.image == vgs_res_lookup(f.gpu, 2)->image);
	/* Disable with resource 0, even twice; the rect is ignored. */
	CHECK_EQ(set_scanout(&f, 1, 0, 0xffffffffu, 0, 5, 5), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(!f.sink.last_scanout.enabled);
	CHECK(f.sink.last_scanout.image == NULL);
	CHECK_EQ(set_scanout(&f, 1, 0, 0, 0, 0, 0), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(f.sink.scanouts, 3);
	/* Unref of a shown resource turns the scanout off. */
	CHECK_EQ(set_scanout(&f, 0, 2, 0, 0, 1280, 800), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(unref(&f, 2), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK(!f.sink.last_scanout.enabled);
	CHECK_EQ(f.sink.last_scanout.scanout_id, 0);
	gfx_fini(&f);
}

TEST(sink_gets_current_state_on_attach)
{
	struct gfx f;
	struct fake_sink late = { 0 };
	struct vgs_display_sink d = { &fake_ops, &late };
	gfx_init(&f);
	CHECK_EQ(create_2d(&f, 2, 2, 320, 200), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(set_scanout(&f, 1, 2, 0, 0, 320, 200), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_OK(vgs_gpu_add_display(f.gpu, &d));
	CHECK_EQ(late.scanouts, 1);
	CHECK_EQ(late.last_scanout.scanout_id, 1);
	CHECK(late.last_scanout.enabled);
	/* Both sinks see a flush; after removal only the first does. */
	CHECK_EQ(flush(&f, 2, 0, 0, 10, 10), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(late.flushes, 1);
	CHECK_EQ(f.sink.flushes, 1);
	vgs_gpu_remove_display(f.gpu, &d);
	CHECK_EQ(flush(&f, 2, 0, 0, 10, 10), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(late.flushes, 1);
	CHECK_EQ(f.sink.flushes, 2);
	gfx_fini(&f);
}

TEST(flush_intersects_scanouts)
{
	struct gfx f;
	gfx_init(&f);
	CHECK_EQ(create_2d(&f, 2, 2, 400, 300), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&f, 3, 2, 400, 300), VIRTIO_GPU_RESP_OK_NODATA);
	/* Not shown anywhere: counted, nobody notified. */
	CHECK_EQ(flush(&f, 2, 0, 0, 400, 300), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(f.sink.flushes, 0);
	CHECK_EQ(stats(&f).flushes, 1);
	CHECK_EQ(set_scanout(&f, 0, 2, 100, 50, 200, 100), VIRTIO_GPU_RESP_OK_NODATA);
	/* Overlaps the scanout's top-left corner. */
	CHECK_EQ(flush(&f, 2, 0, 0, 150, 80), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(f.sink.flushes, 1);
	CHECK_EQ(f.sink.flush_scanout, 0);
	CHECK_EQ(f.sink.flush_damage.x, 0);
	CHECK_EQ(f.sink.flush_damage.y, 0);
	CHECK_EQ(f.sink.flush_damage.width, 50);
	CHECK_EQ(f.sink.flush_damage.height, 30);
	CHECK(f.sink.flush_ns > 0);
	/* Inside. */
	CHECK_EQ(flush(&f, 2, 150, 60, 10, 10), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(f.sink.flush_damage.x, 50);
	CHECK_EQ(f.sink.flush_damage.y, 10);
	CHECK_EQ(f.sink.flush_damage.width, 10);
	/* Outside the scanout's part of the resource, and another resource. */
	CHECK_EQ(flush(&f, 2, 0, 200, 400, 100), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(flush(&f, 3, 0, 0, 400, 300), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(f.sink.flushes, 2);
	/* Errors. */
	CHECK_EQ(flush(&f, 9, 0, 0, 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(flush(&f, 2, 0, 0, 401, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(flush(&f, 2, 0xffffffffu, 0, 2, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* Same resource on two scanouts: both notified. */
	CHECK_EQ(set_scanout(&f, 1, 2, 0, 0, 400, 300), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(flush(&f, 2, 120, 60, 5, 5), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(f.sink.flushes, 4);
	CHECK_EQ(f.sink.flush_scanout, 1);
	CHECK_EQ(f.sink.flush_damage.x, 120);
	gfx_fini(&f);
}

TEST(capsets_are_absent)
{
	struct gfx f;
	gfx_init(&f);
	CHECK_EQ(simple(&f, VIRTIO_GPU_CMD_GET_CAPSET_INFO, 0),
	         VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	CHECK_EQ(simple(&f, VIRTIO_GPU_CMD_GET_CAPSET, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	gfx_fini(&f);
}

static bool edid_ok(const uint8_t *e, uint32_t *w, uint32_t *h)
{
	static const uint8_t header[8] = { 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0 };
	unsigned sum = 0;
	for (int i = 0; i < 128; i++)
		sum += e[i];
	if (sum % 256 || memcmp(e, header, 8) || e[18] != 1 || e[19] != 4)
		return false;
	*w = e[56] | (e[58] >> 4) << 8;
	*h = e[59] | (e[61] >> 4) << 8;
	return true;
}

TEST(get_edid)
{
	struct virtio_gpu_resp_edid r;
	struct gfx f;
	uint32_t w, h;
	gfx_init(&f);
	CHECK_EQ(simple(&f, VIRTIO_GPU_CMD_GET_EDID, 0), VIRTIO_GPU_RESP_OK_EDID);
	CHECK_EQ(f.last_len, sizeof(r));
	memcpy(&r, f.resp, sizeof(r));
	CHECK_EQ(le32toh(r.size), 128);
	CHECK(edid_ok(r.edid, &w, &h));
	CHECK_EQ(w, 1280);
	CHECK_EQ(h, 800);
	for (int i = 128; i < 1024; i++)
		CHECK_EQ(r.edid[i], 0);
	CHECK_EQ(simple(&f, VIRTIO_GPU_CMD_GET_EDID, 1), VIRTIO_GPU_RESP_OK_EDID);
	memcpy(&r, f.resp, sizeof(r));
	CHECK(edid_ok(r.edid, &w, &h));
	CHECK_EQ(w, 1024);
	CHECK_EQ(h, 768);
	CHECK_EQ(simple(&f, VIRTIO_GPU_CMD_GET_EDID, 16), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	gfx_fini(&f);
}

TEST(get_edid_without_feature)
{
	struct vgs_gpu_config cfg;
	struct gfx f;
	vgs_gpu_config_defaults(&cfg);
	cfg.edid = false;
	gfx_init_cfg(&f, &cfg, false);
	CHECK_EQ(simple(&f, VIRTIO_GPU_CMD_GET_EDID, 0), VIRTIO_GPU_RESP_ERR_UNSPEC);
	CHECK_EQ(vgs_gpu_device_ops()->get_features(f.gpu),
	         (1u << VIRTIO_GPU_F_RESOURCE_UUID) | (1u << VIRTIO_GPU_F_RESOURCE_BLOB));
	gfx_fini(&f);
}

TEST(assign_uuid)
{
	struct virtio_gpu_resp_resource_uuid a, b, c;
	struct gfx f;
	gfx_init(&f);
	CHECK_EQ(simple(&f, VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID, 2),
	         VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	CHECK_EQ(create_2d(&f, 2, 2, 8, 8), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(create_2d(&f, 3, 2, 8, 8), VIRTIO_GPU_RESP_OK_NODATA);
	CHECK_EQ(simple(&f, VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID, 2),
	         VIRTIO_GPU_RESP_OK_RESOURCE_UUID);
	CHECK_EQ(f.last_len, sizeof(a));
	memcpy(&a, f.resp, sizeof(a));
	CHECK_EQ(simple(&f, VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID, 2),
	         VIRTIO_GPU_RESP_OK_RESOURCE_UUID);
	memcpy(&b, f.resp, sizeof(b));
	CHECK_EQ(simple(&f, VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID, 3),
	         VIRTIO_GPU_RESP_OK_RESOURCE_UUID);
	memcpy(&c, f.resp, sizeof(c));
	CHECK_MEM_EQ(a.uuid, b.uuid, 16);
	CHECK(memcmp(a.uuid, c.uuid, 16) != 0);
	CHECK_EQ(a.uuid[6] >> 4, 4);
	CHECK_EQ(a.uuid[8] >> 6, 2);
	gfx_fini(&f);
}

static struct virtio_gpu_ctrl_hdr resp_hdr(struct gfx *f)
{
	struct virtio_gpu_ctrl_hdr h;
	memcpy(&h, f->resp, sizeof(h));
	return h;
}

TEST(fences_are_echoed)
{
	struct virtio_gpu_resource_create_2d c;
	struct virtio_gpu_ctrl_hdr h;
	struct gfx f;
	gfx_init(&f);
	hdr(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
	c.hdr.flags = htole32(VIRTIO_GPU_FLAG_FENCE);
	c.hdr.fence_id = htole64(0x1122334455667788ull);
	c.hdr.ctx_id = htole32(5);
	c.hdr.ring_idx = 3; /* ignored without INFO_RING_IDX */
	c.resource_id = htole32(2);
	c.format = htole32(2);
	c.width = c.height = htole32(16);
	CHECK_EQ(cmd(&f, &c, sizeof(c)), VIRTIO_GPU_RESP_OK_NODATA);
	h = resp_hdr(&f);
	CHECK_EQ(le32toh(h.flags), VIRTIO_GPU_FLAG_FENCE);
	CHECK(le64toh(h.fence_id) == 0x1122334455667788ull);
	CHECK_EQ(le32toh(h.ctx_id), 5);
	CHECK_EQ(h.ring_idx, 0);
	/* An error response still signals the fence. */
	c.hdr.flags = htole32(VIRTIO_GPU_FLAG_FENCE | VIRTIO_GPU_FLAG_INFO_RING_IDX);
	c.hdr.fence_id = htole64(9);
	CHECK_EQ(cmd(&f, &c, sizeof(c)), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	h = resp_hdr(&f);
	CHECK_EQ(le32toh(h.flags), VIRTIO_GPU_FLAG_FENCE | VIRTIO_GPU_FLAG_INFO_RING_IDX);
	CHECK_EQ(le64toh(h.fence_id), 9);
	CHECK_EQ(h.ring_idx, 3);
	/* No fence: nothing echoed. */
	c.hdr.flags = 0;
	c.resource_id = htole32(3);
	CHECK_EQ(cmd(&f, &c, sizeof(c)), VIRTIO_GPU_RESP_OK_NODATA);
	h = resp_hdr(&f);
	CHECK_EQ(h.flags | h.fence_id | h.ctx_id, 0);
	CHECK_EQ(stats(&f).fences, 2);
	gfx_fini(&f);
}

TEST(malformed_requests)
{
	struct virtio_gpu_resource_create_2d c;
	struct virtio_gpu_ctrl_hdr h;
	uint8_t small[8];
	struct gfx f;
	ssize_t n;
	gfx_init(&f);
	/* Shorter than a header. */
	CHECK_EQ(cmd(&f, &c, 10), VIRTIO_GPU_RESP_ERR_UNSPEC);
	CHECK_EQ(cmd(&f, NULL, 0), VIRTIO_GPU_RESP_ERR_UNSPEC);
	/* Header fine, body truncated. */
	hdr(&c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
	c.resource_id = htole32(2);
	c.format = htole32(2);
	c.width = c.height = htole32(16);
	CHECK_EQ(cmd(&f, &c, sizeof(c) - 1), VIRTIO_GPU_RESP_ERR_UNSPEC);
	CHECK_EQ(stats(&f).resources, 0);
	/* Unknown, 3D and blob commands. */
	hdr(&h, 0x0999);
	CHECK_EQ(cmd(&f, &h, sizeof(h)), VIRTIO_GPU_RESP_ERR_UNSPEC);
	hdr(&h, VIRTIO_GPU_CMD_CTX_CREATE);
	CHECK_EQ(cmd(&f, &h, sizeof(h)), VIRTIO_GPU_RESP_ERR_UNSPEC);
	hdr(&h, VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB);
	CHECK_EQ(cmd(&f, &h, sizeof(h)), VIRTIO_GPU_RESP_ERR_UNSPEC);
	hdr(&h, VIRTIO_GPU_CMD_UPDATE_CURSOR); /* cursor command on the control queue */
	CHECK_EQ(cmd(&f, &h, sizeof(h)), VIRTIO_GPU_RESP_ERR_UNSPEC);
	/* Response buffer smaller than the response: nothing written, counted. */
	struct vgs_gpu_stats before = stats(&f);
	hdr(&h, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
	n = vgs_gpu_ctrl_direct(f.gpu, &h, sizeof(h), small, sizeof(small), NULL, NULL);
	CHECK_EQ(n, 0);
	n = vgs_gpu_ctrl_direct(f.gpu, &h, sizeof(h), f.resp, 407, NULL, NULL);
	CHECK_EQ(n, 0);
	CHECK_EQ(stats(&f).errors, before.errors + 2);
	/* The command still ran: a create with a tiny response buffer creates. */
	n = vgs_gpu_ctrl_direct(f.gpu, &c, sizeof(c), small, sizeof(small), NULL, NULL);
	CHECK_EQ(n, 0);
	CHECK_EQ(stats(&f).resources, 1);
	CHECK_EQ(stats(&f).commands, 10);
	gfx_fini(&f);
}

/* ---- display queries answered by a sink ---- */

struct done_rec {
	unsigned calls;
	size_t written;
};

static void on_done(void *data, size_t written)
{
	struct done_rec *d = data;
	d->calls++;
	d->written = written;
}

TEST(display_info_from_async_sink)
{
	struct virtio_gpu_resp_display_info di;
	struct virtio_gpu_ctrl_hdr h;
	struct done_rec done = { 0 };
	uint8_t resp[2048], resp2[64];
	struct gfx f;
	struct vgs_gpu_config cfg;
	vgs_gpu_config_defaults(&cfg);
	gfx_init_cfg(&f, &cfg, true);
	hdr(&h, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
	h.flags = htole32(VIRTIO_GPU_FLAG_FENCE);
	h.fence_id = htole64(77);
	CHECK_EQ(vgs_gpu_ctrl_direct(f.gpu, &h, sizeof(h), resp, sizeof(resp), on_done, &done),
	         -EINPROGRESS);
	CHECK_EQ(f.sink.info_queries, 1);
	CHECK(f.sink.info_cb != NULL);
	/* Held: the next command must wait (order is preserved). */
	CHECK_EQ(vgs_gpu_ctrl_direct(f.gpu, &h, sizeof(h), resp2, sizeof(resp2), NULL, NULL),
	         -EBUSY);
	f.sink.modes[0] = (struct vgs_display_info_mode){ true, 1920, 1080 };
	f.sink.info_cb(f.sink.cb_data, true, f.sink.modes);
	CHECK_EQ(done.calls, 1);
	CHECK_EQ(done.written, sizeof(di));
	memcpy(&di, resp, sizeof(di));
	CHECK_EQ(le32toh(di.hdr.type), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
	CHECK_EQ(le32toh(di.hdr.flags), VIRTIO_GPU_FLAG_FENCE);
	CHECK_EQ(le64toh(di.hdr.fence_id), 77);
	CHECK_EQ(le32toh(di.pmodes[0].r.width), 1920);
	CHECK_EQ(le32toh(di.pmodes[0].r.height), 1080);
	CHECK_EQ(le32toh(di.pmodes[0].enabled), 1);
	/* The device is free again, and our EDID follows the sink's geometry. */
	f.sink.mode = FAKE_QUERY_REFUSE;
	CHECK_EQ(simple(&f, VIRTIO_GPU_CMD_GET_EDID, 0), VIRTIO_GPU_RESP_OK_EDID);
	CHECK_EQ(f.resp[sizeof(h) + 8 + 56], 1920 & 0xff);
	gfx_fini(&f);
}

TEST(display_queries_sync_refused_timeout)
{
	struct virtio_gpu_resp_display_info di;
	struct virtio_gpu_resp_edid ed;
	struct virtio_gpu_ctrl_hdr h;
	struct done_rec done = { 0 };
	uint8_t resp[2048];
	struct gfx f;
	struct vgs_gpu_config cfg;
	vgs_gpu_config_defaults(&cfg);
	cfg.width[0] = 800;
	cfg.height[0] = 600;
	gfx_init_cfg(&f, &cfg, true);
	hdr(&h, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
	/* Answered inside the call. */
	f.sink.mode = FAKE_QUERY_SYNC;
	f.sink.modes[0] = (struct vgs_display_info_mode){ true, 640, 480 };
	CHECK_EQ(cmd(&f, &h, sizeof(h)), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
	memcpy(&di, f.resp, sizeof(di));
	CHECK_EQ(le32toh(di.pmodes[0].r.width), 640);
	/* Sync EDID from the sink, passed through as is. */
	for (int i = 0; i < 256; i++)
		f.sink.edid[i] = (uint8_t)i;
	f.sink.edid_size = 256;
	CHECK_EQ(simple(&f, VIRTIO_GPU_CMD_GET_EDID, 0), VIRTIO_GPU_RESP_OK_EDID);
	memcpy(&ed, f.resp, sizeof(ed));
	CHECK_EQ(le32toh(ed.size), 256);
	CHECK_MEM_EQ(ed.edid, f.sink.edid, 256);
	CHECK_EQ(f.sink.edid_scanout, 0);
	/* Refused: our own answer. */
	f.sink.mode = FAKE_QUERY_REFUSE;
	CHECK_EQ(cmd(&f, &h, sizeof(h)), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
	memcpy(&di, f.resp, sizeof(di));
	CHECK_EQ(le32toh(di.pmodes[0].r.width), 640); /* the geometry learnt above stays */
	/* Timed out (ok=false) asynchronously: our own answer, our own EDID. */
	f.sink.mode = FAKE_QUERY_ASYNC;
	CHECK_EQ(vgs_gpu_ctrl_direct(f.gpu, &h, sizeof(h), resp, sizeof(resp), on_done, &done),
	         -EINPROGRESS);
	f.sink.info_cb(f.sink.cb_data, false, NULL);
	CHECK_EQ(done.calls, 1);
	memcpy(&di, resp, sizeof(di));
	CHECK_EQ(le32toh(di.hdr.type), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
	CHECK_EQ(le32toh(di.pmodes[0].r.width), 640);
	struct virtio_gpu_cmd_get_edid ge;
	hdr(&ge.hdr, VIRTIO_GPU_CMD_GET_EDID);
	ge.scanout = 0;
	ge.padding = 0;
	CHECK_EQ(vgs_gpu_ctrl_direct(f.gpu, &ge, sizeof(ge), resp, sizeof(resp), on_done, &done),
	         -EINPROGRESS);
	f.sink.edid_cb(f.sink.cb_data, false, NULL, 0);
	CHECK_EQ(done.calls, 2);
	CHECK_EQ(done.written, sizeof(ed));
	memcpy(&ed, resp, sizeof(ed));
	CHECK_EQ(le32toh(ed.size), 128);
	/* A bad scanout never reaches the sink (QEMU would not answer it). */
	unsigned q = f.sink.edid_queries;
	CHECK_EQ(simple(&f, VIRTIO_GPU_CMD_GET_EDID, 16), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	CHECK_EQ(f.sink.edid_queries, q);
	gfx_fini(&f);
}

TEST(reset_cancels_pending_query)
{
	struct virtio_gpu_ctrl_hdr h;
	struct done_rec done = { 0 };
	uint8_t resp[2048];
	struct gfx f;
	struct vgs_gpu_config cfg;
	vgs_gpu_config_defaults(&cfg);
	gfx_init_cfg(&f, &cfg, true);
	hdr(&h, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
	CHECK_EQ(vgs_gpu_ctrl_direct(f.gpu, &h, sizeof(h), resp, sizeof(resp), on_done, &done),
	         -EINPROGRESS);
	vgs_gpu_device_ops()->reset(f.gpu);
	CHECK_EQ(done.calls, 1);
	CHECK_EQ(done.written, 0);
	/* The late answer is dropped safely (ASan would catch a use after free). */
	f.sink.info_cb(f.sink.cb_data, true, f.sink.modes);
	CHECK_EQ(done.calls, 1);
	/* And the device works again. */
	f.sink.mode = FAKE_QUERY_REFUSE;
	CHECK_EQ(cmd(&f, &h, sizeof(h)), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
	gfx_fini(&f);
}

/* ---- config space and device glue ---- */

TEST(config_space_and_features)
{
	const struct vshm_vu_device_ops *ops = vgs_gpu_device_ops();
	struct virtio_gpu_config c;
	uint8_t big[24];
	uint32_t clear;
	struct gfx f;
	gfx_init(&f);
	CHECK_EQ(ops->get_features(f.gpu), (1u << VIRTIO_GPU_F_EDID) |
	                                           (1u << VIRTIO_GPU_F_RESOURCE_UUID) |
	                                           (1u << VIRTIO_GPU_F_RESOURCE_BLOB));
	CHECK_OK(ops->set_features(f.gpu, (1ull << 32) | (1u << VIRTIO_GPU_F_EDID) | (1ull << 29)));
	CHECK_OK(ops->get_config(f.gpu, 0, &c, sizeof(c)));
	CHECK_EQ(le32toh(c.events_read), 0);
	CHECK_EQ(le32toh(c.events_clear), 0);
	CHECK_EQ(le32toh(c.num_scanouts), 2);
	CHECK_EQ(le32toh(c.num_capsets), 0);
	/* Partial reads, and reads past the 16 bytes (blob_alignment) read zero. */
	uint32_t ns;
	CHECK_OK(ops->get_config(f.gpu, 8, &ns, 4));
	CHECK_EQ(le32toh(ns), 2);
	memset(big, 0xff, sizeof(big));
	CHECK_OK(ops->get_config(f.gpu, 0, big, sizeof(big)));
	CHECK_EQ(big[16] | big[20] | big[23], 0);
	CHECK(ops->get_config(f.gpu, 0xfffffff0u, big, 32) < 0);
	/* Hot-plug latches the DISPLAY event; the driver clears it (write 1 to clear). */
	CHECK_OK(vgs_gpu_set_mode(f.gpu, 0, true, 1024, 768));
	CHECK_OK(ops->get_config(f.gpu, 0, &c, sizeof(c)));
	CHECK_EQ(le32toh(c.events_read), VIRTIO_GPU_EVENT_DISPLAY);
	clear = htole32(VIRTIO_GPU_EVENT_DISPLAY);
	CHECK_OK(ops->set_config(f.gpu, 4, &clear, 4, 0));
	CHECK_OK(ops->get_config(f.gpu, 0, &c, sizeof(c)));
	CHECK_EQ(le32toh(c.events_read), 0);
	/* Writes to read-only fields are ignored. */
	uint32_t junk = 0xffffffffu;
	CHECK_OK(ops->set_config(f.gpu, 8, &junk, 4, 0));
	CHECK_OK(ops->get_config(f.gpu, 8, &ns, 4));
	CHECK_EQ(le32toh(ns), 2);
	gfx_fini(&f);
}

static int hook_calls;
static int test_hook(void *data, uint32_t request, uint32_t flags, const void *payload,
                     uint32_t size, int *fds, unsigned nfds)
{
	hook_calls++;
	CHECK_EQ(request, 33);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	return 0;
}

TEST(device_request_hook)
{
	const struct vshm_vu_device_ops *ops = vgs_gpu_device_ops();
	struct gfx f;
	int p[2];
	gfx_init(&f);
	/* No hook: unknown, and the fds are closed (the test runner checks for leaks). */
	CHECK_OK(pipe(p));
	CHECK_EQ(ops->device_request(f.gpu, 33, 0, NULL, 0, p, 2), -ENOTSUP);
	vgs_gpu_set_request_hook(f.gpu, test_hook, NULL);
	CHECK_OK(pipe(p));
	CHECK_EQ(ops->device_request(f.gpu, 33, 0, NULL, 0, p, 2), 0);
	CHECK_EQ(hook_calls, 1);
	gfx_fini(&f);
}

TEST(config_validation)
{
	struct vgs_gpu_config cfg;
	struct vgs_gpu *gpu;
	vgs_gpu_config_defaults(&cfg);
	cfg.num_scanouts = 0;
	CHECK_EQ(vgs_gpu_new(&cfg, &gpu), -EINVAL);
	cfg.num_scanouts = 17;
	CHECK_EQ(vgs_gpu_new(&cfg, &gpu), -EINVAL);
	cfg.num_scanouts = 16;
	cfg.width[15] = VGS_MAX_DIM + 1;
	cfg.height[15] = 10;
	CHECK_EQ(vgs_gpu_new(&cfg, &gpu), -EINVAL);
	CHECK_OK(vgs_gpu_new(NULL, &gpu));
	vgs_gpu_destroy(gpu);
	vgs_gpu_destroy(NULL);
}
