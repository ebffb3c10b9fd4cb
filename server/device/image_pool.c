/* SPDX-License-Identifier: MIT */
/*
 * image_pool.c - copy-on-write host images of 2D resources.
 *
 * Display consumers read a frame straight from a resource's host image
 * (its memfd, shared read-only) until they release it. docs/protocol.md
 * 9.2 promises that a held frame is never rewritten and that the guest
 * never waits for a consumer. So when a transfer targets an image somebody
 * holds (vgs_image.holds > 0), the resource moves to another image first:
 *
 *   - an unheld spare of the same resource if there is one, else a new
 *     one (at most VGS_POOL_MAX images per resource, each charged against
 *     limits.max_host_bytes);
 *   - the old content is copied over unless the transfer rewrites all of
 *     it (counted: cow_switches, cow_copy_bytes);
 *   - the old image becomes a spare; it can be reused once every holder
 *     has let go of it.
 *
 * If every image is held (a consumer slower than the guest) the oldest
 * held spare is written anyway and counted in cow_torn_risk: a consumer
 * may then see tearing, but the guest is never blocked. Spares nobody
 * used for VGS_POOL_IDLE_NS are freed, and all unheld ones are freed when
 * a resource creation would exceed the memory budget.
 *
 * A new 8 MB (1080p) image costs little to create but about 5 ms of page
 * faults at its first write, which would land in the guest's transfer and
 * so in its flush's latency. So spares are made ahead, off the guest's
 * path: vgs_pool_idle (after a batch's responses went out) gives a
 * resource a display reads one pre-faulted unheld spare when it has none:
 * once when a sink starts reading it, and again after a switch used the
 * last unheld one. While a display reads the resource that one warm spare
 * is kept through idle sweeps; the rest go after VGS_POOL_IDLE_NS. A
 * switch allocates in the guest's path only when two switches come
 * without a batch end in between, or when the warm spare could not be made.
 *
 * After the write, sinks showing the resource get a scanout event with the
 * new image (vgs_pool_changed): consumers announce the new buffer, QEMU's
 * display reads its pixels from the new image.
 */
#include <string.h>

#include <vshm/loop.h>

#include "gpu-internal.h"

/* At most this often the whole table is swept for idle spares. */
#define SWEEP_NS (1000ull * 1000 * 1000)

static void spare_free(struct vgs_gpu *gpu, struct vgs_resource *res, unsigned i)
{
	struct vgs_image_pool *p = &res->pool;
	struct vgs_image *img = p->spare[i];

	res->host_bytes -= img->size;
	gpu->stats.host_bytes -= img->size;
	gpu->stats.pool_spares--;
	gpu->stats.pool_frees++;
	/* Readers with a reference (consumer buffers) keep the pixels until they let go. */
	vgs_image_unref(img);
	p->n--;
	memmove(&p->spare[i], &p->spare[i + 1], (p->n - i) * sizeof(p->spare[0]));
	memmove(&p->retired_ns[i], &p->retired_ns[i + 1], (p->n - i) * sizeof(p->retired_ns[0]));
}

/* The unheld spare retired (or made) last: the one a switch takes; -1 if none. */
static int newest_unheld(const struct vgs_image_pool *p)
{
	int pick = -1;

	for (unsigned i = 0; i < p->n; i++)
		if (p->spare[i]->holds == 0 && (pick < 0 || p->retired_ns[i] > p->retired_ns[pick]))
			pick = (int)i;
	return pick;
}

/*
 * A display reads @res: it is a 2D resource on a scanout and a sink has a
 * reference to its image (consumers and QEMU's display keep one while they
 * show it) or holds any of its images.
 */
static bool displayed(const struct vgs_gpu *gpu, const struct vgs_resource *res)
{
	bool shown = false, read;

	if (!res->image || res->blob_mem)
		return false;
	for (uint32_t i = 0; i < VGS_MAX_SCANOUTS && !shown; i++)
		shown = gpu->scanouts[i].resource == res && !gpu->scanouts[i].blob;
	if (!shown)
		return false;
	read = res->image->refcount > 1 || res->image->holds > 0;
	for (unsigned i = 0; i < res->pool.n && !read; i++)
		read = res->pool.spare[i]->holds > 0;
	return read;
}

/* Free unheld spares retired before @older_than_ns, except the one at @keep (-1: none). */
static void trim(struct vgs_gpu *gpu, struct vgs_resource *res, uint64_t older_than_ns, int keep)
{
	struct vgs_image_pool *p = &res->pool;
	struct vgs_image *kept = keep >= 0 ? p->spare[keep] : NULL;
	unsigned i = 0;

	while (i < p->n) {
		if (p->spare[i] != kept && p->spare[i]->holds == 0 &&
		    p->retired_ns[i] < older_than_ns)
			spare_free(gpu, res, i);
		else
			i++;
	}
}

void vgs_pool_trim(struct vgs_gpu *gpu, struct vgs_resource *res, uint64_t older_than_ns)
{
	trim(gpu, res, older_than_ns, -1);
}

/*
 * Trim every resource with spares; returns the bytes freed. @keep_warm: a
 * displayed resource keeps the spare its next switch would take.
 */
static uint64_t trim_all(struct vgs_gpu *gpu, uint64_t older_than_ns, bool keep_warm)
{
	uint64_t before = gpu->stats.host_bytes;

	for (uint32_t b = 0; b < gpu->nbuckets && gpu->stats.pool_spares; b++)
		for (struct vgs_resource *r = gpu->buckets[b]; r; r = r->hnext)
			if (r->pool.n)
				trim(gpu, r, older_than_ns,
				     keep_warm && displayed(gpu, r) ? newest_unheld(&r->pool) : -1);
	return before - gpu->stats.host_bytes;
}

uint64_t vgs_pool_reclaim_all(struct vgs_gpu *gpu)
{
	if (!gpu->stats.pool_spares)
		return 0;
	return trim_all(gpu, UINT64_MAX, false);
}

/* At most every SWEEP_NS: free spares idle for VGS_POOL_IDLE_NS. */
static void sweep(struct vgs_gpu *gpu, uint64_t now)
{
	if (gpu->stats.pool_spares && now - gpu->pool_trim_ns >= SWEEP_NS) {
		gpu->pool_trim_ns = now;
		trim_all(gpu, now > VGS_POOL_IDLE_NS ? now - VGS_POOL_IDLE_NS : 0, true);
	}
}

void vgs_pool_release(struct vgs_gpu *gpu, struct vgs_resource *res)
{
	struct vgs_image_pool *p = &res->pool;

	/* host_bytes: the caller uncharges res->host_bytes, which includes the spares. */
	for (unsigned i = 0; i < p->n; i++) {
		vgs_image_unref(p->spare[i]);
		gpu->stats.pool_spares--;
		gpu->stats.pool_frees++;
	}
	p->n = 0;
}

/*
 * A new spare for @res, charged; -1 when the budget or memory says no.
 * @reclaim: under memory pressure, free other resources' unheld spares first.
 */
static int spare_alloc(struct vgs_gpu *gpu, struct vgs_resource *res, bool reclaim)
{
	const uint64_t max = gpu->cfg.limits.max_host_bytes;
	struct vgs_image_pool *p = &res->pool;
	struct vgs_image *img;
	uint64_t size = res->image->size;

	if (p->n >= VGS_POOL_MAX - 1)
		return -1;
	if (gpu->stats.host_bytes > max || size > max - gpu->stats.host_bytes) {
		if (!reclaim)
			return -1;
		/* Memory pressure: other resources' unused spares go first. */
		vgs_pool_reclaim_all(gpu);
		if (gpu->stats.host_bytes > max || size > max - gpu->stats.host_bytes)
			return -1;
	}
	if (vgs_image_new(res->width, res->height, res->format, &img) < 0)
		return -1;
	res->host_bytes += img->size;
	gpu->stats.host_bytes += img->size;
	gpu->stats.pool_spares++;
	gpu->stats.pool_allocs++;
	p->spare[p->n] = img;
	p->retired_ns[p->n] = 0;
	return (int)p->n++;
}

/* Copy what @r will not overwrite from @from to @to; returns the bytes copied. */
static uint64_t copy_rest(const struct vgs_resource *res, const struct vgs_image *from,
                          struct vgs_image *to, const struct vgs_rect *r)
{
	uint64_t stride = from->stride, rows_end = (uint64_t)r->y + r->height;

	if (r->x == 0 && r->width == res->width) {
		/* Whole rows: only those above and below the rectangle. */
		uint64_t below = (uint64_t)res->height - rows_end;

		memcpy(to->data, from->data, stride * r->y);
		memcpy(to->data + stride * rows_end, from->data + stride * rows_end,
		       stride * below);
		return stride * (r->y + below);
	}
	memcpy(to->data, from->data, stride * res->height);
	return stride * res->height;
}

bool vgs_pool_prepare_write(struct vgs_gpu *gpu, struct vgs_resource *res, const struct vgs_rect *r)
{
	struct vgs_image_pool *p = &res->pool;
	struct vgs_image *cur = res->image, *next;
	uint64_t now = vshm_now_ns();
	int pick;

	sweep(gpu, now);
	if (!cur || res->blob_mem || cur->holds == 0)
		return false;
	/* The unheld spare retired last: older ones may go idle and be freed. */
	pick = newest_unheld(p);
	if (pick < 0)
		pick = spare_alloc(gpu, res, true); /* in the guest's path: faults at the write */
	if (pick < 0) {
		/* Everything is held: never wait; overwrite the oldest held frame. */
		gpu->stats.cow_torn_risk++;
		for (unsigned i = 0; i < p->n; i++)
			if (pick < 0 || p->retired_ns[i] < p->retired_ns[pick])
				pick = (int)i;
		if (pick < 0)
			return false; /* no spare at all (memory): in place */
	}
	next = p->spare[pick];
	if (!(r->x == 0 && r->y == 0 && r->width == res->width && r->height == res->height))
		gpu->stats.cow_copy_bytes += copy_rest(res, cur, next, r);
	/* Holds pixels and was written all over: never a candidate for prefaulting. */
	cur->prefaulted = cur->size;
	next->prefaulted = next->size; /* in use now: the rest faults in as written */
	p->spare[pick] = cur;
	p->retired_ns[pick] = now;
	res->image = next;
	gpu->stats.cow_switches++;
	return true;
}

void vgs_pool_changed(struct vgs_gpu *gpu, struct vgs_resource *res)
{
	for (uint32_t i = 0; i < VGS_MAX_SCANOUTS; i++)
		if (gpu->scanouts[i].resource == res && !gpu->scanouts[i].blob)
			vgs_display_scanout(gpu, i);
}

/*
 * Faulting in a 1080p spare takes about 4 ms. In the daemon (a defer hook
 * is set) it is done a slice at a time, one slice per loop iteration, so
 * a guest command or a consumer that becomes ready meanwhile waits at most
 * one slice; without a hook (unit tests) it completes at once.
 */
#define PREFAULT_SLICE (512u * 1024u)

/* Continue faulting in a spare left half done; true if one still needs work. */
static bool prefault_pending(struct vgs_gpu *gpu, uint64_t slice)
{
	for (uint32_t i = 0; i < VGS_MAX_SCANOUTS; i++) {
		struct vgs_resource *res = gpu->scanouts[i].resource;

		if (!res)
			continue;
		for (unsigned k = 0; k < res->pool.n; k++) {
			struct vgs_image *img = res->pool.spare[k];

			if (img->holds == 0 && img->prefaulted < img->size)
				return !vgs_image_prefault(img, slice);
		}
	}
	return false;
}

void vgs_pool_idle(struct vgs_gpu *gpu)
{
	uint64_t now = vshm_now_ns();
	uint64_t slice = gpu->defer ? PREFAULT_SLICE : UINT64_MAX;

	sweep(gpu, now);
	if (prefault_pending(gpu, slice)) {
		vgs_gpu_request_deferred(gpu);
		return;
	}
	for (uint32_t i = 0; i < VGS_MAX_SCANOUTS; i++) {
		struct vgs_resource *res = gpu->scanouts[i].resource;
		int k;

		if (!res || !displayed(gpu, res) || newest_unheld(&res->pool) >= 0)
			continue;
		/* Never at the expense of other resources' spares: this one is only a guess. */
		k = spare_alloc(gpu, res, false);
		if (k < 0)
			continue;
		res->pool.retired_ns[k] = now; /* kept through sweeps while displayed */
		gpu->pool_warm_allocs++;
		if (!vgs_image_prefault(res->pool.spare[k], slice))
			vgs_gpu_request_deferred(gpu);
		return; /* one image per batch bounds the time taken here */
	}
}
