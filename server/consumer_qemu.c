/* SPDX-License-Identifier: MIT */
/*
 * consumer_qemu.c - serving a consumer that did not negotiate VSHM, with
 * QEMU's messages, as QEMU's back-end would (docs/protocol.md 4.1 step 6):
 * SCANOUT, then UPDATE with x8r8g8b8 pixels for the whole scanout and for
 * every change, CURSOR_UPDATE / CURSOR_POS / CURSOR_POS_HIDE.
 *
 * The same ideas as qemu_display.c: pixels of native-format, full-width
 * damage are sent by reference to the image (one copy: the socket write);
 * other damage is gathered (and converted) into one buffer per message.
 * The mailbox of consumer.c coalesces: while a scanout's UPDATEs are still
 * queued, later flushes merge into one bounding box, counted as drops.
 * This sink has no GET_DISPLAY_INFO / GET_EDID / DMABUF messages: geometry
 * never comes from a consumer, and vshm-gpu is 2D only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vshm-proto/virtio-gpu.h>

#include "consumers-internal.h"
#include "image.h"

/* Pixel bytes per UPDATE: bounded by the protocol and by a share of the queue. */
#define MAX_MSG_BYTES (16u << 20)

/* To x8r8g8b8 (memory bytes B, G, R, X) from a virtio-gpu format. */
static void convert_row(uint8_t *dst, const uint8_t *src, uint32_t n, uint32_t format)
{
	switch (format) {
	case VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM:
	case VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM:
		memcpy(dst, src, (size_t)n * 4);
		return;
	default:
		break;
	}
	for (uint32_t i = 0; i < n; i++, dst += 4, src += 4) {
		uint8_t b, g, r, x;

		switch (format) {
		case VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM:
		case VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM:
			x = src[0], r = src[1], g = src[2], b = src[3];
			break;
		case VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM:
		case VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM:
			r = src[0], g = src[1], b = src[2], x = src[3];
			break;
		default: /* A8B8G8R8 / X8B8G8R8 */
			x = src[0], b = src[1], g = src[2], r = src[3];
			break;
		}
		dst[0] = b, dst[1] = g, dst[2] = r, dst[3] = x;
	}
}

static bool native(uint32_t format)
{
	return format == VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM ||
	       format == VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM;
}

/* The mailbox damage as one box (scanout coordinates). */
static struct vgs_rect mailbox_box(const struct cscan *m, const struct dscanout *d)
{
	struct vgs_rect box = { 0, 0, d->rect.width, d->rect.height };

	if (m->mb_whole || m->mb_nrects == 0)
		return box;
	box = m->mb_rects[0];
	for (unsigned i = 1; i < m->mb_nrects; i++) {
		const struct vgs_rect *b = &m->mb_rects[i];
		uint64_t x1 = (uint64_t)box.x + box.width, y1 = (uint64_t)box.y + box.height;
		uint64_t bx1 = (uint64_t)b->x + b->width, by1 = (uint64_t)b->y + b->height;

		box.x = box.x < b->x ? box.x : b->x;
		box.y = box.y < b->y ? box.y : b->y;
		box.width = (uint32_t)((x1 > bx1 ? x1 : bx1) - box.x);
		box.height = (uint32_t)((y1 > by1 ? y1 : by1) - box.y);
	}
	return box;
}

/* Send the mailbox as UPDATEs of whole rows. A refused chunk leaves the rest as damage. */
static void send_update(struct vgs_consumer *c, uint32_t s)
{
	struct cscan *m = &c->sc[s];
	const struct dscanout *d = &c->cs->scanouts[s];
	struct vgs_image *img = d->ci->img;
	struct vgs_rect box = mailbox_box(m, d);
	uint64_t flush_ns = m->mb_flush_ns;
	uint32_t row_bytes = box.width * 4, y = 0, chunk;
	size_t max = c->cs->cfg.max_queued_qemu / 4 < MAX_MSG_BYTES ? c->cs->cfg.max_queued_qemu / 4
	                                                            : MAX_MSG_BYTES;
	bool by_ref = native(img->format) && row_bytes == img->stride;

	chunk = (uint32_t)(max / row_bytes);
	if (chunk > VSHM_DISPLAY_MAX_UPDATE_PIXELS / box.width)
		chunk = VSHM_DISPLAY_MAX_UPDATE_PIXELS / box.width;
	if (chunk == 0)
		chunk = 1;
	m->mb_full = false;
	m->last_seq_sent = m->mb_seq;
	while (y < box.height) {
		uint32_t rows = box.height - y < chunk ? box.height - y : chunk;
		struct vhost_user_gpu_update u = { s, box.x, box.y + y, box.width, rows };
		struct vhost_user_gpu_hdr hdr = {
			VHOST_USER_GPU_UPDATE, 0, (uint32_t)(sizeof(u) + (size_t)row_bytes * rows)
		};
		const uint8_t *src = img->data + (uint64_t)(d->rect.y + u.y) * img->stride +
		                     (uint64_t)(d->rect.x + u.x) * 4;
		size_t pix = (size_t)row_bytes * rows;
		struct iovec iov[3] = { { &hdr, sizeof(hdr) } };
		struct vgs_image *ref = NULL;
		uint8_t *buf;
		int r, n = 3;

		/* The payload is referenced until written: the Update struct lives in @buf. */
		buf = malloc(sizeof(u) + (by_ref ? 0 : pix));
		if (!buf)
			goto keep;
		memcpy(buf, &u, sizeof(u));
		if (by_ref) {
			ref = vgs_image_ref(img);
			iov[1] = (struct iovec){ buf, sizeof(u) };
			iov[2] = (struct iovec){ (void *)src, pix };
		} else {
			for (uint32_t i = 0; i < rows; i++)
				convert_row(buf + sizeof(u) + (size_t)i * row_bytes,
				            src + (size_t)i * img->stride, box.width, img->format);
			iov[1] = (struct iovec){ buf, sizeof(u) + pix };
			n = 2;
		}
		r = consumer_send_frame_msg(c, iov, n, s, flush_ns, y + rows == box.height, ref,
		                            buf);
		if (r == -ENOBUFS)
			goto keep;
		if (r < 0)
			return; /* closed */
		cons_frame_sent(c->cs, s, m->last_seq_sent);
		y += rows;
	}
	return;
keep:
	/* Not dropped: the unsent rows wait in the mailbox, later flushes merge in. */
	if (!m->mb_full) {
		m->mb_full = true;
		m->mb_whole = false;
		m->mb_seq = m->last_seq_sent;
		m->mb_flush_ns = flush_ns;
		m->mb_nrects = 1;
		m->mb_rects[0] = (struct vgs_rect){ box.x, box.y + y, box.width, box.height - y };
	}
}

static bool sync_cursor(struct vgs_consumer *c)
{
	const struct dcursor *cu = &c->cs->cursor;
	bool on = cu->ci && cu->scanout < VGS_MAX_SCANOUTS && (c->granted & (1u << cu->scanout));
	bool visible = on && cu->visible;

	if (visible && c->q_cursor_gen != cu->gen) {
		struct vhost_user_gpu_cursor_update *m = malloc(sizeof(*m));
		const struct vgs_image *img = cu->ci->img;
		bool ok;

		if (!m)
			return true; /* retried on the next pass */
		m->pos = (struct vhost_user_gpu_cursor_pos){ cu->scanout, cu->x, cu->y };
		m->hot_x = cu->hot_x;
		m->hot_y = cu->hot_y;
		for (uint32_t row = 0; row < VHOST_USER_GPU_CURSOR_DIM; row++)
			memcpy(&m->data[row * VHOST_USER_GPU_CURSOR_DIM],
			       img->data + (size_t)row * img->stride,
			       VHOST_USER_GPU_CURSOR_DIM * 4);
		ok = consumer_ctl(c, VHOST_USER_GPU_CURSOR_UPDATE, m, sizeof(*m), NULL, 0, NULL, 0);
		free(m);
		if (!ok)
			return false;
		c->q_cursor_gen = cu->gen;
		c->q_cursor_valid = c->q_cursor_visible = true;
		c->q_cursor_scanout = cu->scanout;
		c->q_cursor_x = cu->x;
		c->q_cursor_y = cu->y;
		return true;
	}
	if (visible) {
		struct vhost_user_gpu_cursor_pos p = { cu->scanout, cu->x, cu->y };

		if (c->q_cursor_valid && c->q_cursor_visible &&
		    c->q_cursor_scanout == cu->scanout && c->q_cursor_x == cu->x &&
		    c->q_cursor_y == cu->y)
			return true;
		if (!consumer_ctl(c, VHOST_USER_GPU_CURSOR_POS, &p, sizeof(p), NULL, 0, NULL, 0))
			return false;
		c->q_cursor_valid = c->q_cursor_visible = true;
		c->q_cursor_scanout = cu->scanout;
		c->q_cursor_x = cu->x;
		c->q_cursor_y = cu->y;
		return true;
	}
	if (c->q_cursor_valid && c->q_cursor_visible) {
		struct vhost_user_gpu_cursor_pos p = { c->q_cursor_scanout, c->q_cursor_x,
			                               c->q_cursor_y };

		if (on)
			p = (struct vhost_user_gpu_cursor_pos){ cu->scanout, cu->x, cu->y };
		if (!consumer_ctl(c, VHOST_USER_GPU_CURSOR_POS_HIDE, &p, sizeof(p), NULL, 0, NULL,
		                  0))
			return false;
		c->q_cursor_visible = false;
	}
	return true;
}

void consumer_qemu_sync(struct vgs_consumer *c)
{
	for (uint32_t s = 0; s < VGS_MAX_SCANOUTS; s++) {
		const struct dscanout *d = &c->cs->scanouts[s];
		struct cscan *m = &c->sc[s];
		uint32_t w = d->enabled ? d->rect.width : 0, h = d->enabled ? d->rect.height : 0;
		struct vhost_user_gpu_scanout msg = { s, w, h };

		if (!(c->granted & (1u << s)))
			continue;
		if (m->sent_valid && m->sent_rect.width == w && m->sent_rect.height == h)
			continue;
		/* A never-shown disabled scanout is what a QEMU display starts with. */
		if (!(m->sent_valid || w) ||
		    consumer_ctl(c, VHOST_USER_GPU_SCANOUT, &msg, sizeof(msg), NULL, 0, NULL, 0)) {
			m->sent_valid = true;
			m->sent_rect = (struct vgs_rect){ 0, 0, w, h };
		} else {
			return;
		}
		/* A new surface shows only after an UPDATE: all of it. */
		consumer_mailbox_reset(m, d, w != 0);
	}
	if (!sync_cursor(c))
		return;
	for (uint32_t s = 0; s < VGS_MAX_SCANOUTS && c->st == CS_QEMU; s++) {
		const struct dscanout *d = &c->cs->scanouts[s];
		struct cscan *m = &c->sc[s];

		if ((c->granted & (1u << s)) && m->mb_full && m->inflight == 0 && d->enabled &&
		    d->ci && m->sent_valid && m->sent_rect.width)
			send_update(c, s);
	}
}
