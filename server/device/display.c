/* SPDX-License-Identifier: MIT */
/*
 * display.c - fan-out of scanout, flush and cursor events to display sinks.
 *
 * Several sinks may watch one device (QEMU's display socket plus vshm's own
 * consumers); each gets every event. Sinks never block, so calling them
 * inline from command processing is fine.
 */
#include <errno.h>
#include <string.h>

#include <vshm/loop.h>

#include "gpu-internal.h"

static void fill_state(struct vgs_gpu *gpu, uint32_t scanout_id, struct vgs_scanout_state *st)
{
	const struct vgs_scanout *so = &gpu->scanouts[scanout_id];

	memset(st, 0, sizeof(*st));
	st->scanout_id = scanout_id;
	st->enabled = so->resource != NULL;
	if (so->resource) {
		st->rect = so->rect;
		st->image = vgs_scanout_image(so); /* a blob scanout's own image, or the 2D copy */
	}
}

static void sink_scanout(struct vgs_gpu *gpu, const struct vgs_display_sink *sink,
                         uint32_t scanout_id)
{
	struct vgs_scanout_state st;

	if (!sink->ops->scanout)
		return;
	fill_state(gpu, scanout_id, &st);
	sink->ops->scanout(sink->data, &st);
}

void vgs_display_scanout(struct vgs_gpu *gpu, uint32_t scanout_id)
{
	for (unsigned i = 0; i < gpu->nsinks; i++)
		sink_scanout(gpu, &gpu->sinks[i], scanout_id);
}

void vgs_display_flush(struct vgs_gpu *gpu, uint32_t scanout_id, const struct vgs_rect *damage)
{
	uint64_t now = vshm_now_ns();

	for (unsigned i = 0; i < gpu->nsinks; i++)
		if (gpu->sinks[i].ops->flush)
			gpu->sinks[i].ops->flush(gpu->sinks[i].data, scanout_id, damage, now);
}

void vgs_display_cursor_update(struct vgs_gpu *gpu, const uint32_t *pixels)
{
	for (unsigned i = 0; i < gpu->nsinks; i++)
		if (gpu->sinks[i].ops->cursor_update)
			gpu->sinks[i].ops->cursor_update(
			        gpu->sinks[i].data, gpu->cursor_scanout, gpu->cursor_x,
			        gpu->cursor_y, gpu->cursor_hot_x, gpu->cursor_hot_y, pixels);
}

void vgs_display_cursor_move(struct vgs_gpu *gpu)
{
	for (unsigned i = 0; i < gpu->nsinks; i++)
		if (gpu->sinks[i].ops->cursor_move)
			gpu->sinks[i].ops->cursor_move(gpu->sinks[i].data, gpu->cursor_scanout,
			                               gpu->cursor_x, gpu->cursor_y,
			                               gpu->cursor_visible);
}

int vgs_gpu_add_display(struct vgs_gpu *gpu, const struct vgs_display_sink *sink)
{
	struct vgs_display_sink *s;

	if (!sink || !sink->ops)
		return -EINVAL;
	if (gpu->nsinks == VGS_MAX_SINKS)
		return -ENOSPC;
	s = &gpu->sinks[gpu->nsinks++];
	*s = *sink;
	/* Bring the newcomer up to date: what each scanout shows, and the cursor. */
	for (uint32_t i = 0; i < VGS_MAX_SCANOUTS; i++)
		if (gpu->scanouts[i].resource)
			sink_scanout(gpu, s, i);
	if (gpu->cursor_visible && s->ops->cursor_update)
		s->ops->cursor_update(s->data, gpu->cursor_scanout, gpu->cursor_x, gpu->cursor_y,
		                      gpu->cursor_hot_x, gpu->cursor_hot_y, gpu->cursor_pixels);
	return 0;
}

void vgs_gpu_remove_display(struct vgs_gpu *gpu, const struct vgs_display_sink *sink)
{
	for (unsigned i = 0; i < gpu->nsinks; i++) {
		if (gpu->sinks[i].ops == sink->ops && gpu->sinks[i].data == sink->data) {
			memmove(&gpu->sinks[i], &gpu->sinks[i + 1],
			        (gpu->nsinks - i - 1) * sizeof(gpu->sinks[0]));
			gpu->nsinks--;
			return;
		}
	}
}
