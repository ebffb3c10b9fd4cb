/* SPDX-License-Identifier: MIT */
/*
 * vshm-view - the developer preview client: a Wayland client that shows
 * every scanout of a vshm-gpu --display socket it is granted in its own
 * xdg_toplevel. See docs/vshm-view.md.
 *
 * Zero-copy: a shared-memory scanout is a wl_shm pool created on the
 * daemon's read-only memfd (the compositor maps the guest image itself); a
 * dma-buf scanout goes through linux-dmabuf, or EGL, or (last) a counted
 * CPU copy (vshm-view-gl.c). Frames are paced with wl_surface.frame (latest
 * frame wins), timed with wp_presentation, and released to the daemon when
 * the compositor presented (or discarded) them or released the wl_buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <wayland-client.h>

#include "linux-dmabuf-unstable-v1-client-protocol.h"
#include "presentation-time-client-protocol.h"
#include "viewporter-client-protocol.h"
#include <vshm/loop.h>

#include "vshm-view.h"
#include "xdg-shell-client-protocol.h"

#define VV_RECONNECT_NS     1000000000ull
#define VV_OVERLAY_NS       250000000ull
#define VV_OVERLAY_W        216
#define VV_OVERLAY_H        28
#define VV_PLACEHOLDER_W    320
#define VV_PLACEHOLDER_H    200
#define VV_COLOR_DISABLED   0xff303030u
#define VV_COLOR_DISCONNECT 0xff401818u
#define VV_FMT_XRGB8888     0x34325258u
#define VV_FMT_ARGB8888     0x34325241u

struct vv;
struct vv_window;

/* A client-owned wl_shm buffer (copies, placeholders, overlay strips). */
struct vv_shmbuf {
	struct wl_buffer *wlb;
	uint32_t *pix;
	size_t size;
	uint32_t w, h, fmt; /* fmt: wl_shm format */
	bool busy;
};

/* The view's state for one daemon buffer (vvs_buffer.user). */
struct vv_buf {
	struct vv *v;
	struct vvs_buffer *b;
	enum vvg_path path;
	struct wl_shm_pool *pool; /* shm: the pool on the daemon's memfd */
	struct wl_buffer *wlb;    /* for the rect below (shm) or the whole image (dma-buf) */
	uint32_t rx, ry, rw, rh;
	struct vv_window *win; /* window it was last committed to */
	uint64_t seq;          /* frame last committed with it */
};

struct vv_feedback {
	struct wl_list link;
	struct vv_window *win;
	struct wp_presentation_feedback *fb;
	uint64_t seq, flush_ns, recv_ns, commit_ns, gen;
};

enum vv_state { VV_ST_CONTENT, VV_ST_DISABLED, VV_ST_DISCONNECTED };

struct vv_window {
	struct vv *v;
	uint32_t id;
	struct wl_surface *surf;
	struct xdg_surface *xsurf;
	struct xdg_toplevel *top;
	struct wp_viewport *viewport;
	struct wl_callback *frame_cb;
	bool configured;
	enum vv_state state;
	uint32_t w, h; /* scanout size (last known) */
	uint32_t buffer_id, sx, sy;
	bool have_pending;
	struct vvs_frame pending;
	enum vvg_path path;
	struct wl_buffer *retired; /* attached wl_buffer of a destroyed daemon buffer */
	struct vv_shmbuf copy[2], placeholder;
	struct vvg_window *glwin;
	/* overlay */
	struct wl_surface *osurf;
	struct wl_subsurface *osub;
	struct vv_shmbuf ostrip[2];
	/* stats */
	uint64_t received, presented, skipped, daemon_dropped, copies, last_seq;
};

struct vv_cursor {
	uint32_t buffer_id, hot_x, hot_y;
	bool visible;
};

/*
 * The cursor shape copied into client-owned wl_shm memory (ARGB8888,
 * premultiplied), for compositors that cannot map the daemon's read-only
 * memfd. Refreshed when a CURSOR names a new shape buffer, never on moves.
 * Two slots, so that a shape still held by the compositor is never
 * rewritten.
 */
struct vv_cursor_copy {
	struct vv_shmbuf slot[2];
	int cur;            /* slot holding the shape of (buffer_id, gen), -1: none */
	uint32_t buffer_id; /* daemon buffer it was copied from */
	uint64_t gen;       /* session generation of buffer_id */
	uint32_t crc;       /* CRC-32 of the converted pixels (log, tests) */
};

/* What the pointer was last given (set_cursor is only repeated on a change). */
struct vv_cursor_shown {
	bool valid, shown;
	uint32_t win_id, buffer_id, hot_x, hot_y;
	uint64_t gen;
};

struct vv {
	/* options */
	const char *socket;
	uint32_t scanouts;
	double scale;
	bool overlay, no_dmabuf;
	uint64_t max_frames;
	double timeout_s;
	/* wayland */
	struct wl_display *display;
	struct wl_registry *registry;
	struct wl_compositor *compositor;
	struct wl_subcompositor *subcompositor;
	struct wl_shm *shm;
	struct xdg_wm_base *wm;
	struct wp_viewporter *viewporter;
	struct wp_presentation *presentation;
	struct zwp_linux_dmabuf_v1 *dmabuf;
	struct wl_seat *seat;
	struct wl_pointer *pointer;
	uint32_t shm_formats[64];
	unsigned n_shm_formats;
	clockid_t pres_clock;
	bool ro_shm_ok; /* the compositor maps a read-only sealed memfd pool (probed) */
	struct vvg *gl;
	/* cursor */
	struct wl_surface *cursor_surf;
	struct vv_cursor cursor[VSHM_DISPLAY_MAX_SCANOUTS];
	struct vv_window *pointer_win;
	uint32_t pointer_serial;
	struct vv_cursor_copy ccopy;
	struct vv_cursor_shown cshown;
	enum vvg_path cursor_path; /* path of the last cursor shape */
	uint64_t cursor_msgs, cursor_copies, cursor_hides, cursor_sets;
	/* daemon */
	struct vvs *s;
	uint64_t gen; /* session generation: feedback of an older session releases nothing */
	uint64_t next_connect_ns;
	bool said_waiting;
	struct vv_window *win[VSHM_DISPLAY_MAX_SCANOUTS];
	struct wl_list feedbacks;
	/* stats */
	double *lat_ms;
	uint64_t sum_recv_ns, sum_wait_ns, sum_present_ns; /* latency parts, summed */
	size_t n_lat, cap_lat;
	uint64_t presented, frame_dones, releases_presented, releases_buffer, releases_copy,
	        reconnects;
	bool quit;
};

static volatile sig_atomic_t vv_signal;

static void vv_on_signal(int sig)
{
	vv_signal = sig;
}

/* ---- small helpers ------------------------------------------------------------------- */

static uint64_t vv_clock_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool vv_shm_has_format(const struct vv *v, uint32_t wl_fmt)
{
	for (unsigned i = 0; i < v->n_shm_formats; i++)
		if (v->shm_formats[i] == wl_fmt)
			return true;
	return false;
}

/* DRM fourcc -> wl_shm format: equal codes except the two mandatory formats. */
static uint32_t vv_wl_shm_format(uint32_t fourcc)
{
	if (fourcc == VV_FMT_XRGB8888)
		return WL_SHM_FORMAT_XRGB8888;
	if (fourcc == VV_FMT_ARGB8888)
		return WL_SHM_FORMAT_ARGB8888;
	return fourcc;
}

static void vv_shmbuf_release(void *data, struct wl_buffer *wlb)
{
	struct vv_shmbuf *sb = data;
	sb->busy = false;
}

static const struct wl_buffer_listener vv_shmbuf_listener = { .release = vv_shmbuf_release };

static void vv_shmbuf_destroy(struct vv_shmbuf *sb)
{
	if (sb->wlb)
		wl_buffer_destroy(sb->wlb);
	if (sb->pix)
		munmap(sb->pix, sb->size);
	memset(sb, 0, sizeof(*sb));
}

/* (Re)create @sb as a w x h buffer of wl_shm format @fmt unless it already is one. */
static int vv_shmbuf_ensure_fmt(struct vv *v, struct vv_shmbuf *sb, uint32_t w, uint32_t h,
                                uint32_t fmt)
{
	struct wl_shm_pool *pool;
	int fd;

	if (sb->wlb && sb->w == w && sb->h == h && sb->fmt == fmt)
		return 0;
	vv_shmbuf_destroy(sb);
	sb->size = (size_t)w * h * 4;
	fd = memfd_create("vshm-view", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)sb->size) < 0) {
		close(fd);
		return -errno;
	}
	sb->pix = mmap(NULL, sb->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (sb->pix == MAP_FAILED) {
		sb->pix = NULL;
		close(fd);
		return -errno;
	}
	pool = wl_shm_create_pool(v->shm, fd, (int32_t)sb->size);
	sb->wlb = wl_shm_pool_create_buffer(pool, 0, (int32_t)w, (int32_t)h, (int32_t)w * 4, fmt);
	wl_shm_pool_destroy(pool);
	close(fd);
	wl_buffer_add_listener(sb->wlb, &vv_shmbuf_listener, sb);
	sb->w = w;
	sb->h = h;
	sb->fmt = fmt;
	sb->busy = false;
	return 0;
}

/* (Re)create @sb as a w x h XRGB8888 buffer unless it already is one. */
static int vv_shmbuf_ensure(struct vv *v, struct vv_shmbuf *sb, uint32_t w, uint32_t h)
{
	return vv_shmbuf_ensure_fmt(v, sb, w, h, WL_SHM_FORMAT_XRGB8888);
}

static void vv_lat_add(struct vv *v, double ms)
{
	if (v->n_lat == v->cap_lat) {
		size_t cap = v->cap_lat ? v->cap_lat * 2 : 1024;
		double *n = realloc(v->lat_ms, cap * sizeof(*n));
		if (!n)
			return;
		v->lat_ms = n;
		v->cap_lat = cap;
	}
	v->lat_ms[v->n_lat++] = ms;
}

static int vv_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* p50 and p99 of the latency samples (nearest rank); false without samples. */
static bool vv_lat_pct(struct vv *v, double *p50, double *p99, double *max)
{
	if (!v->n_lat)
		return false;
	double *s = malloc(v->n_lat * sizeof(*s));
	if (!s)
		return false;
	memcpy(s, v->lat_ms, v->n_lat * sizeof(*s));
	qsort(s, v->n_lat, sizeof(*s), vv_cmp_double);
	*p50 = s[(size_t)ceil(0.50 * (double)v->n_lat) - 1];
	*p99 = s[(size_t)ceil(0.99 * (double)v->n_lat) - 1];
	*max = s[v->n_lat - 1];
	free(s);
	return true;
}

static void vv_release(struct vv *v, struct vv_window *w, uint64_t seq, uint64_t *counter)
{
	if (v->s && vvs_release(v->s, w->id, seq) == 0 && counter)
		(*counter)++;
}

/* ---- windows ------------------------------------------------------------------------- */

static void vv_window_title(struct vv_window *w)
{
	char t[96];
	snprintf(t, sizeof(t), "vshm-view: scanout %u %ux%u", w->id, w->w, w->h);
	xdg_toplevel_set_title(w->top, t);
}

static void vv_window_viewport(struct vv_window *w, uint32_t cw, uint32_t ch)
{
	if (!w->viewport)
		return;
	if (w->v->scale != 1.0)
		wp_viewport_set_destination(w->viewport, (int32_t)lround(cw * w->v->scale),
		                            (int32_t)lround(ch * w->v->scale));
	else
		wp_viewport_set_destination(w->viewport, -1, -1);
}

static void vv_retire(struct vv_window *w)
{
	if (w->retired) {
		wl_buffer_destroy(w->retired);
		w->retired = NULL;
	}
}

static void vv_window_draw_overlay(struct vv_window *w);

/* Show a placeholder (disabled / disconnected); the window keeps its size. */
static void vv_window_placeholder(struct vv_window *w, enum vv_state st)
{
	struct vv *v = w->v;
	uint32_t pw = w->w ? w->w : VV_PLACEHOLDER_W, ph = w->h ? w->h : VV_PLACEHOLDER_H;
	char line[64];

	w->state = st;
	w->have_pending = false;
	if (!w->configured)
		return;
	vvg_window_destroy(v->gl, &w->glwin);
	if (vv_shmbuf_ensure(v, &w->placeholder, pw, ph) < 0)
		return;
	struct vv_shmbuf *sb = &w->placeholder;
	vvo_fill(sb->pix, pw, ph, pw,
	         st == VV_ST_DISABLED ? VV_COLOR_DISABLED : VV_COLOR_DISCONNECT);
	snprintf(line, sizeof(line), "SCANOUT %u", w->id);
	vvo_text(sb->pix, pw, ph, pw, 8, 8, 2, 0xffe0e0e0u, line);
	vvo_text(sb->pix, pw, ph, pw, 8, 8 + 2 * VVO_GLYPH_H, 2, 0xffe0e0e0u,
	         st == VV_ST_DISABLED ? "DISABLED" : "DISCONNECTED");
	if (st == VV_ST_DISCONNECTED)
		vvo_text(sb->pix, pw, ph, pw, 8, 8 + 4 * VVO_GLYPH_H, 1, 0xffb0b0b0u,
		         "RECONNECTING EVERY 1 S");
	if (w->viewport)
		wp_viewport_set_source(w->viewport, wl_fixed_from_int(-1), wl_fixed_from_int(-1),
		                       wl_fixed_from_int(-1), wl_fixed_from_int(-1));
	vv_window_viewport(w, pw, ph);
	wl_surface_set_buffer_transform(w->surf, WL_OUTPUT_TRANSFORM_NORMAL);
	wl_surface_attach(w->surf, sb->wlb, 0, 0);
	wl_surface_damage_buffer(w->surf, 0, 0, (int32_t)pw, (int32_t)ph);
	sb->busy = true;
	wl_surface_commit(w->surf);
	vv_retire(w);
	w->path = VVG_PATH_NONE;
	vv_window_draw_overlay(w);
}

static void vv_window_present(struct vv_window *w);

static void vv_xdg_surface_configure(void *data, struct xdg_surface *xs, uint32_t serial)
{
	struct vv_window *w = data;
	bool first = !w->configured;

	xdg_surface_ack_configure(xs, serial);
	w->configured = true;
	if (!first)
		return;
	if (w->state != VV_ST_CONTENT)
		vv_window_placeholder(w, w->state);
	else if (w->have_pending)
		vv_window_present(w);
	else
		wl_surface_commit(w->surf);
}

static const struct xdg_surface_listener vv_xdg_surface_listener = {
	.configure = vv_xdg_surface_configure,
};

static void vv_toplevel_configure(void *data, struct xdg_toplevel *t, int32_t width, int32_t height,
                                  struct wl_array *states)
{
	/* The window's size is the scanout's (times --scale); suggestions are ignored. */
}

static void vv_toplevel_close(void *data, struct xdg_toplevel *t)
{
	struct vv_window *w = data;
	w->v->quit = true;
}

static const struct xdg_toplevel_listener vv_toplevel_listener = {
	.configure = vv_toplevel_configure,
	.close = vv_toplevel_close,
};

static struct vv_window *vv_window_new(struct vv *v, uint32_t id)
{
	struct vv_window *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->v = v;
	w->id = id;
	w->state = VV_ST_DISABLED;
	w->surf = wl_compositor_create_surface(v->compositor);
	wl_surface_set_user_data(w->surf, w);
	w->xsurf = xdg_wm_base_get_xdg_surface(v->wm, w->surf);
	xdg_surface_add_listener(w->xsurf, &vv_xdg_surface_listener, w);
	w->top = xdg_surface_get_toplevel(w->xsurf);
	xdg_toplevel_add_listener(w->top, &vv_toplevel_listener, w);
	xdg_toplevel_set_app_id(w->top, "vshm-view");
	if (v->viewporter)
		w->viewport = wp_viewporter_get_viewport(v->viewporter, w->surf);
	if (v->overlay && v->subcompositor) {
		w->osurf = wl_compositor_create_surface(v->compositor);
		w->osub = wl_subcompositor_get_subsurface(v->subcompositor, w->osurf, w->surf);
		wl_subsurface_set_position(w->osub, 0, 0);
		wl_subsurface_set_desync(w->osub);
	}
	vv_window_title(w);
	wl_surface_commit(w->surf);
	return w;
}

static void vv_window_destroy(struct vv_window **pw)
{
	struct vv_window *w = *pw;
	struct vv_feedback *f, *tmp;

	if (!w)
		return;
	wl_list_for_each_safe(f, tmp, &w->v->feedbacks, link) if (f->win == w)
	{
		wp_presentation_feedback_destroy(f->fb);
		wl_list_remove(&f->link);
		free(f);
	}
	if (w->v->pointer_win == w)
		w->v->pointer_win = NULL;
	vvg_window_destroy(w->v->gl, &w->glwin);
	if (w->frame_cb)
		wl_callback_destroy(w->frame_cb);
	vv_retire(w);
	for (unsigned i = 0; i < 2; i++) {
		vv_shmbuf_destroy(&w->copy[i]);
		vv_shmbuf_destroy(&w->ostrip[i]);
	}
	vv_shmbuf_destroy(&w->placeholder);
	if (w->osub)
		wl_subsurface_destroy(w->osub);
	if (w->osurf)
		wl_surface_destroy(w->osurf);
	if (w->viewport)
		wp_viewport_destroy(w->viewport);
	xdg_toplevel_destroy(w->top);
	xdg_surface_destroy(w->xsurf);
	wl_surface_destroy(w->surf);
	free(w);
	*pw = NULL;
}

/* ---- overlay -------------------------------------------------------------------------- */

static void vv_window_draw_overlay(struct vv_window *w)
{
	struct vv *v = w->v;
	struct vv_shmbuf *sb = NULL;
	char l1[48], l2[48], l3[48];
	double p50, p99, mx;
	bool known = false;
	uint64_t age = 0;

	if (!w->osurf || !w->configured)
		return;
	for (unsigned i = 0; i < 2 && !sb; i++)
		if (!w->ostrip[i].busy)
			sb = &w->ostrip[i];
	if (!sb || vv_shmbuf_ensure(v, sb, VV_OVERLAY_W, VV_OVERLAY_H) < 0)
		return;
	if (v->s) {
		uint64_t last = vvs_last_flush_ns(v->s, w->id), now = vshm_now_ns();
		known = last && now > last;
		age = known ? now - last : 0;
	}
	snprintf(l1, sizeof(l1), "%s SEQ %llu", vvg_path_name(w->path),
	         (unsigned long long)w->last_seq);
	if (known)
		snprintf(l2, sizeof(l2), "AGE %.1f MS DROP %llu COPY %llu", (double)age / 1e6,
		         (unsigned long long)(w->skipped + w->daemon_dropped),
		         (unsigned long long)w->copies);
	else
		snprintf(l2, sizeof(l2), "AGE ? DROP %llu COPY %llu",
		         (unsigned long long)(w->skipped + w->daemon_dropped),
		         (unsigned long long)w->copies);
	if (vv_lat_pct(v, &p50, &p99, &mx))
		snprintf(l3, sizeof(l3), "LAT P50 %.2f P99 %.2f MS", p50, p99);
	else
		snprintf(l3, sizeof(l3), "LAT ?");
	vvo_fill(sb->pix, sb->w, sb->h, sb->w, 0xc0000000u);
	vvo_text(sb->pix, sb->w, sb->h, sb->w, 2, 1, 1, 0xff80ff80u, l1);
	vvo_text(sb->pix, sb->w, sb->h, sb->w, 2, 1 + VVO_GLYPH_H + 1, 1, 0xffffffffu, l2);
	vvo_text(sb->pix, sb->w, sb->h, sb->w, 2, 1 + 2 * (VVO_GLYPH_H + 1), 1, 0xffffffffu, l3);
	wl_surface_attach(w->osurf, sb->wlb, 0, 0);
	wl_surface_damage_buffer(w->osurf, 0, 0, (int32_t)sb->w, (int32_t)sb->h);
	sb->busy = true;
	wl_surface_commit(w->osurf);
}

/* ---- presenting frames ---------------------------------------------------------------- */

static void vv_fb_sync_output(void *data, struct wp_presentation_feedback *fb,
                              struct wl_output *output)
{
}

static void vv_fb_done(struct vv_feedback *f, bool presented, uint64_t present_ns)
{
	struct vv *v = f->win->v;

	if (presented) {
		/* The presentation clock may differ (weston: MONOTONIC_RAW): re-base. */
		if (v->pres_clock != CLOCK_MONOTONIC) {
			uint64_t mono = vv_clock_ns(CLOCK_MONOTONIC),
			         pc = vv_clock_ns(v->pres_clock);
			present_ns = present_ns + mono - pc;
		}
		if (f->flush_ns && present_ns > f->flush_ns && f->recv_ns >= f->flush_ns &&
		    present_ns >= f->commit_ns) {
			vv_lat_add(v, (double)(present_ns - f->flush_ns) / 1e6);
			v->sum_recv_ns += f->recv_ns - f->flush_ns;
			v->sum_wait_ns += f->commit_ns - f->recv_ns;
			v->sum_present_ns += present_ns - f->commit_ns;
		}
		f->win->presented++;
		v->presented++;
	}
	if (f->gen == v->gen)
		vv_release(v, f->win, f->seq, &v->releases_presented);
	wp_presentation_feedback_destroy(f->fb);
	wl_list_remove(&f->link);
	free(f);
}

static void vv_fb_presented(void *data, struct wp_presentation_feedback *fb, uint32_t sec_hi,
                            uint32_t sec_lo, uint32_t nsec, uint32_t refresh, uint32_t seq_hi,
                            uint32_t seq_lo, uint32_t flags)
{
	uint64_t sec = ((uint64_t)sec_hi << 32) | sec_lo;
	vv_fb_done(data, true, sec * 1000000000ull + nsec);
}

static void vv_fb_discarded(void *data, struct wp_presentation_feedback *fb)
{
	vv_fb_done(data, false, 0);
}

static const struct wp_presentation_feedback_listener vv_fb_listener = {
	.sync_output = vv_fb_sync_output,
	.presented = vv_fb_presented,
	.discarded = vv_fb_discarded,
};

static void vv_frame_done(void *data, struct wl_callback *cb, uint32_t time)
{
	struct vv_window *w = data;
	wl_callback_destroy(cb);
	w->frame_cb = NULL;
	w->v->frame_dones++;
	if (w->have_pending)
		vv_window_present(w);
}

static const struct wl_callback_listener vv_frame_listener = { .done = vv_frame_done };

static void vv_buf_release(void *data, struct wl_buffer *wlb)
{
	struct vv_buf *vb = data; /* NULL once its daemon buffer was destroyed */
	if (vb && vb->win && vb->seq)
		vv_release(vb->v, vb->win, vb->seq, &vb->v->releases_buffer);
}

static const struct wl_buffer_listener vv_buf_listener = { .release = vv_buf_release };

/* The wl_buffer showing rect (x, y, w, h) of a zero-copy daemon buffer. */
static struct wl_buffer *vv_buf_wl(struct vv_buf *vb, uint32_t x, uint32_t y, uint32_t w,
                                   uint32_t h)
{
	const struct vvs_buffer *b = vb->b;

	if (vb->wlb && (vb->path == VVG_PATH_DMABUF ||
	                (vb->rx == x && vb->ry == y && vb->rw == w && vb->rh == h)))
		return vb->wlb;
	if (vb->wlb)
		wl_buffer_destroy(vb->wlb);
	vb->wlb = NULL;
	if (vb->path == VVG_PATH_DMABUF) {
		vb->wlb = vvg_dmabuf_buffer(vb->v->gl, b);
	} else if (vb->path == VVG_PATH_SHM_ZERO_COPY) {
		uint64_t off = b->offset + (uint64_t)y * b->stride + (uint64_t)x * 4;
		vb->wlb =
		        wl_shm_pool_create_buffer(vb->pool, (int32_t)off, (int32_t)w, (int32_t)h,
		                                  (int32_t)b->stride, vv_wl_shm_format(b->fourcc));
	}
	if (vb->wlb)
		wl_buffer_add_listener(vb->wlb, &vv_buf_listener, vb);
	vb->rx = x;
	vb->ry = y;
	vb->rw = w;
	vb->rh = h;
	return vb->wlb;
}

static void vv_damage(struct vv_window *w, const struct vvs_frame *f)
{
	if (f->full) {
		wl_surface_damage_buffer(w->surf, 0, 0, INT32_MAX, INT32_MAX);
		return;
	}
	for (uint32_t i = 0; i < f->num_rects; i++)
		wl_surface_damage_buffer(w->surf, (int32_t)f->rects[i].x, (int32_t)f->rects[i].y,
		                         (int32_t)f->rects[i].width, (int32_t)f->rects[i].height);
}

static void vv_add_feedback(struct vv_window *w, const struct vvs_frame *f)
{
	struct vv *v = w->v;
	struct vv_feedback *fb;

	w->frame_cb = wl_surface_frame(w->surf);
	wl_callback_add_listener(w->frame_cb, &vv_frame_listener, w);
	if (!v->presentation || !(fb = calloc(1, sizeof(*fb))))
		return;
	fb->win = w;
	fb->seq = f->seq;
	fb->flush_ns = f->flush_ns;
	fb->recv_ns = f->recv_ns;
	fb->commit_ns = vshm_now_ns();
	fb->gen = v->gen;
	fb->fb = wp_presentation_feedback(v->presentation, w->surf);
	wp_presentation_feedback_add_listener(fb->fb, &vv_fb_listener, fb);
	wl_list_insert(&v->feedbacks, &fb->link);
}

/* Copy fallback: the scanout rect into one of the window's own wl_shm buffers. */
static struct wl_buffer *vv_copy(struct vv_window *w, const struct vvs_buffer *b)
{
	struct vv_shmbuf *sb = NULL;
	int r = 0;

	for (unsigned i = 0; i < 2 && !sb; i++)
		if (!w->copy[i].busy)
			sb = &w->copy[i];
	if (!sb || vv_shmbuf_ensure(w->v, sb, w->w, w->h) < 0)
		return NULL;
	if (b->dmabuf) {
		r = vvg_copy(b, w->sx, w->sy, w->w, w->h, (uint8_t *)sb->pix, w->w * 4);
	} else {
		for (uint32_t y = 0; y < w->h && !r; y++) {
			uint32_t sy = w->sy + y;
			if (!(b->flags & VSHM_DISPLAY_BUFFER_F_Y_0_TOP))
				sy = b->height - 1 - sy;
			const uint8_t *src =
			        b->map + b->offset + (uint64_t)sy * b->stride + (uint64_t)w->sx * 4;
			if (!vv_convert_row(b->fourcc, src, w->w, sb->pix + (size_t)y * w->w))
				r = -ENOTSUP;
		}
	}
	if (r < 0)
		return NULL;
	w->copies++;
	sb->busy = true;
	return sb->wlb;
}

/* Commit the pending frame (called when no frame callback is outstanding). */
static void vv_window_present(struct vv_window *w)
{
	struct vv *v = w->v;
	struct vvs_frame f = w->pending;
	struct vvs_buffer *b;
	struct vv_buf *vb;
	struct wl_buffer *wlb = NULL;

	if (!w->configured || w->frame_cb || !w->have_pending || !v->s)
		return;
	w->have_pending = false;
	b = vvs_buffer(v->s, f.buffer_id);
	vb = b ? b->user : NULL;
	if (!vb)
		return;
	w->last_seq = f.seq;
	w->path = vb->path;
	if (vb->path == VVG_PATH_GL) {
		vv_add_feedback(w, &f);
		if (vvg_draw(v->gl, &w->glwin, w->surf, b, w->sx, w->sy, w->w, w->h) < 0)
			fprintf(stderr, "vshm-view: scanout %u: EGL draw failed\n", w->id);
		vv_release(v, w, f.seq, &v->releases_copy);
		return;
	}
	vvg_window_destroy(v->gl, &w->glwin);
	if (vb->path == VVG_PATH_SHM_ZERO_COPY || vb->path == VVG_PATH_DMABUF)
		wlb = vv_buf_wl(vb, w->sx, w->sy, w->w, w->h);
	else if (vb->path == VVG_PATH_COPY)
		wlb = vv_copy(w, b);
	if (!wlb) {
		vv_release(v, w, f.seq, NULL);
		return;
	}
	if (w->viewport) {
		if (vb->path == VVG_PATH_DMABUF)
			wp_viewport_set_source(w->viewport, wl_fixed_from_int((int)w->sx),
			                       wl_fixed_from_int((int)w->sy),
			                       wl_fixed_from_int((int)w->w),
			                       wl_fixed_from_int((int)w->h));
		else
			wp_viewport_set_source(w->viewport, wl_fixed_from_int(-1),
			                       wl_fixed_from_int(-1), wl_fixed_from_int(-1),
			                       wl_fixed_from_int(-1));
	}
	vv_window_viewport(w, w->w, w->h);
	/* A bottom-up shm image is shown flipped by the compositor, not copied. */
	wl_surface_set_buffer_transform(w->surf,
	                                vb->path == VVG_PATH_SHM_ZERO_COPY &&
	                                                !(b->flags & VSHM_DISPLAY_BUFFER_F_Y_0_TOP)
	                                        ? WL_OUTPUT_TRANSFORM_FLIPPED_180
	                                        : WL_OUTPUT_TRANSFORM_NORMAL);
	wl_surface_attach(w->surf, wlb, 0, 0);
	vv_damage(w, &f);
	vv_add_feedback(w, &f);
	wl_surface_commit(w->surf);
	vv_retire(w);
	if (vb->path == VVG_PATH_COPY) {
		vv_release(v, w, f.seq, &v->releases_copy);
	} else {
		vb->win = w;
		vb->seq = f.seq;
	}
}

/* ---- session callbacks ------------------------------------------------------------------ */

static void vv_on_ready(void *data, const struct vshm_display_hello_reply *r)
{
	struct vv *v = data;
	static const char *const why[] = { "none", "no such scanout", "not permitted", "busy",
		                           "unsupported" };

	printf("vshm-view: connected to %s: %u scanouts, granted 0x%x, heartbeat %u ms, "
	       "release timeout %u ms, features 0x%llx\n",
	       v->socket, r->num_scanouts, r->granted, r->heartbeat_period_ms,
	       r->release_timeout_ms, (unsigned long long)vvs_features(v->s));
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_SCANOUTS; i++)
		if (r->refused & (1u << i))
			printf("vshm-view: scanout %u refused: %s\n", i,
			       r->refuse_reason[i] < 5 ? why[r->refuse_reason[i]] : "?");
	fflush(stdout);
}

static void vv_on_buffer(void *data, struct vvs_buffer *b)
{
	struct vv *v = data;
	struct vv_buf *vb = calloc(1, sizeof(*vb));
	if (!vb)
		return;
	vb->v = v;
	vb->b = b;
	if (b->dmabuf) {
		vb->path = vvg_choose(v->gl, b);
	} else if (v->ro_shm_ok && vv_shm_has_format(v, vv_wl_shm_format(b->fourcc))) {
		vb->path = VVG_PATH_SHM_ZERO_COPY;
		/* The compositor maps the daemon's read-only memfd: no copy here. */
		vb->pool = wl_shm_create_pool(v->shm, b->fd, (int32_t)b->size);
	} else {
		/* The compositor cannot map the read-only memfd, or lacks the format. */
		vb->path = VVG_PATH_COPY;
	}
	b->user = vb;
}

static void vv_on_buffer_destroy(void *data, struct vvs_buffer *b)
{
	struct vv *v = data;
	struct vv_buf *vb = b->user;
	if (!vb)
		return;
	if (vb->wlb && vb->win && !vb->win->retired && vb->win->state == VV_ST_CONTENT) {
		/* Still attached: the compositor keeps its mapping; drop it on the next commit. */
		wl_buffer_set_user_data(vb->wlb, NULL);
		vb->win->retired = vb->wlb;
		vb->wlb = NULL;
	}
	if (vb->wlb)
		wl_buffer_destroy(vb->wlb);
	if (vb->pool)
		wl_shm_pool_destroy(vb->pool);
	if (b->dmabuf)
		vvg_forget(v->gl, b);
	free(vb);
	b->user = NULL;
}

static void vv_on_scanout(void *data, const struct vshm_display_scanout *so)
{
	struct vv *v = data;
	struct vv_window *w = v->win[so->scanout_id];

	if (!w && !(w = v->win[so->scanout_id] = vv_window_new(v, so->scanout_id)))
		return;
	if (!so->buffer_id) {
		printf("vshm-view: scanout %u disabled\n", so->scanout_id);
		vv_window_placeholder(w, VV_ST_DISABLED);
		fflush(stdout);
		return;
	}
	struct vvs_buffer *b = vvs_buffer(v->s, so->buffer_id);
	struct vv_buf *vb = b ? b->user : NULL;
	bool resized = w->w != so->width || w->h != so->height;
	bool changed = resized || w->state != VV_ST_CONTENT || !vb || vb->path != w->path;
	w->state = VV_ST_CONTENT;
	w->buffer_id = so->buffer_id;
	w->sx = so->x;
	w->sy = so->y;
	w->w = so->width;
	w->h = so->height;
	if (resized)
		vv_window_title(w);
	if (!changed) /* a page flip: the guest image moved to another daemon buffer */
		return;
	printf("vshm-view: scanout %u: %ux%u buffer %u %s fourcc 0x%08x -> %s\n", so->scanout_id,
	       so->width, so->height, so->buffer_id, b && b->dmabuf ? "dma-buf" : "shm",
	       b ? b->fourcc : 0, vb ? vvg_path_name(vb->path) : "none");
	fflush(stdout);
}

static void vv_on_frame(void *data, const struct vvs_frame *f)
{
	struct vv *v = data;
	struct vv_window *w = v->win[f->scanout_id];

	if (!w)
		return;
	w->received++;
	w->daemon_dropped += f->dropped;
	if (w->have_pending) {
		/* Latest frame wins: merge the damage of the frame never shown. */
		struct vvs_frame old = w->pending;
		w->skipped++;
		w->pending = *f;
		if (old.full || f->full || old.num_rects + f->num_rects > VSHM_DISPLAY_MAX_RECTS) {
			w->pending.full = true;
		} else {
			memcpy(&w->pending.rects[f->num_rects], old.rects,
			       old.num_rects * sizeof(old.rects[0]));
			w->pending.num_rects += old.num_rects;
		}
	} else {
		w->pending = *f;
		w->have_pending = true;
	}
	vv_window_present(w);
}

/* ---- the guest cursor -------------------------------------------------------------------- */

#define VV_FOURCC(a, b, c, d)                                                                      \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

/* Bit positions of R, G, B and A (-1: opaque) in a little-endian 4-byte DRM format. */
static const struct {
	uint32_t fourcc;
	int8_t r, g, b, a;
} vv_cursor_formats[] = {
	{ VV_FOURCC('A', 'R', '2', '4'), 16, 8, 0, 24 }, /* ARGB8888 (the daemon's) */
	{ VV_FOURCC('X', 'R', '2', '4'), 16, 8, 0, -1 },
	{ VV_FOURCC('A', 'B', '2', '4'), 0, 8, 16, 24 },
	{ VV_FOURCC('X', 'B', '2', '4'), 0, 8, 16, -1 },
	{ VV_FOURCC('B', 'A', '2', '4'), 8, 16, 24, 0 },
	{ VV_FOURCC('B', 'X', '2', '4'), 8, 16, 24, -1 },
	{ VV_FOURCC('R', 'A', '2', '4'), 24, 16, 8, 0 },
	{ VV_FOURCC('R', 'X', '2', '4'), 24, 16, 8, -1 },
};

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32()) of @n bytes. */
static uint32_t vv_crc32(const void *data, size_t n)
{
	const uint8_t *p = data;
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
	}
	return ~crc;
}

/*
 * Copy the shape in shared-memory buffer @b into a free slot of v->ccopy as
 * premultiplied ARGB8888, top row first. 0 or -errno.
 */
static int vv_cursor_copy_shape(struct vv *v, const struct vvs_buffer *b, uint32_t hot_x,
                                uint32_t hot_y)
{
	struct vv_cursor_copy *cc = &v->ccopy;
	struct vv_shmbuf *sb = NULL;
	int fmt = -1, slot = -1;

	for (size_t i = 0; i < sizeof(vv_cursor_formats) / sizeof(vv_cursor_formats[0]); i++)
		if (vv_cursor_formats[i].fourcc == b->fourcc)
			fmt = (int)i;
	if (b->dmabuf || !b->map || fmt < 0 || b->width > 256 || b->height > 256)
		return -ENOTSUP;
	/* Never rewrite a slot the compositor may still read (attached to the cursor surface). */
	for (int i = 0; i < 2 && slot < 0; i++) {
		int k = cc->cur < 0 ? i : (cc->cur + 1 + i) % 2;
		if (!cc->slot[k].busy)
			slot = k;
	}
	if (slot < 0) {
		slot = cc->cur < 0 ? 0 : 1 - cc->cur;
		vv_shmbuf_destroy(&cc->slot[slot]); /* held: start a fresh buffer instead */
	}
	sb = &cc->slot[slot];
	if (vv_shmbuf_ensure_fmt(v, sb, b->width, b->height, WL_SHM_FORMAT_ARGB8888) < 0)
		return -ENOMEM;
	const int rs = vv_cursor_formats[fmt].r, gs = vv_cursor_formats[fmt].g,
	          bs = vv_cursor_formats[fmt].b, as = vv_cursor_formats[fmt].a;
	for (uint32_t y = 0; y < b->height; y++) {
		uint32_t sy = (b->flags & VSHM_DISPLAY_BUFFER_F_Y_0_TOP) ? y : b->height - 1 - y;
		const uint8_t *src = b->map + b->offset + (uint64_t)sy * b->stride;
		uint32_t *dst = sb->pix + (size_t)y * b->width;
		for (uint32_t x = 0; x < b->width; x++) {
			uint32_t px;
			memcpy(&px, src + 4 * (size_t)x, 4);
			/*
			 * Cursor pixels are premultiplied already (docs/protocol.md
			 * 7.10: a DRM cursor plane's default blend mode), as Wayland's
			 * ARGB8888 wants: only the channel order changes.
			 */
			uint32_t a = as < 0 ? 0xffu : (px >> as) & 0xffu;
			uint32_t r = (px >> rs) & 0xffu, g = (px >> gs) & 0xffu,
			         bl = (px >> bs) & 0xffu;
			dst[x] = a << 24 | r << 16 | g << 8 | bl;
		}
	}
	cc->cur = slot;
	cc->buffer_id = b->id;
	cc->gen = v->gen;
	cc->crc = vv_crc32(sb->pix, sb->size);
	v->cursor_copies++;
	printf("vshm-view: cursor shape: buffer %u %ux%u fourcc 0x%08x hot %u,%u -> copy into "
	       "wl_shm (ARGB8888 premultiplied, %zu bytes, crc32 0x%08x)\n",
	       b->id, b->width, b->height, b->fourcc, hot_x, hot_y, sb->size, cc->crc);
	fflush(stdout);
	return 0;
}

/* A CURSOR named shape @buffer_id: copy it if it is new and cannot be shown zero-copy. */
static void vv_cursor_shape(struct vv *v, uint32_t buffer_id, uint32_t hot_x, uint32_t hot_y)
{
	struct vv_cursor_copy *cc = &v->ccopy;
	struct vvs_buffer *b = v->s ? vvs_buffer(v->s, buffer_id) : NULL;
	struct vv_buf *vb = b ? b->user : NULL;

	if (!b)
		return;
	if (vb && vb->pool) {
		v->cursor_path = VVG_PATH_SHM_ZERO_COPY;
		return;
	}
	v->cursor_path = VVG_PATH_COPY;
	if (cc->cur >= 0 && cc->buffer_id == buffer_id && cc->gen == v->gen)
		return; /* the shape we have: a move, or shown again */
	cc->cur = -1;
	if (vv_cursor_copy_shape(v, b, hot_x, hot_y) < 0) {
		printf("vshm-view: cursor shape: buffer %u %s fourcc 0x%08x %ux%u cannot be "
		       "copied: cursor not shown\n",
		       b->id, b->dmabuf ? "dma-buf" : "shm", b->fourcc, b->width, b->height);
		fflush(stdout);
	}
}

static bool vv_cursor_shown_eq(const struct vv_cursor_shown *a, const struct vv_cursor_shown *b)
{
	if (a->valid != b->valid || a->shown != b->shown || a->win_id != b->win_id)
		return false;
	return !a->shown || (a->buffer_id == b->buffer_id && a->gen == b->gen &&
	                     a->hot_x == b->hot_x && a->hot_y == b->hot_y);
}

/*
 * Give the pointer the cursor of the window under it: the zero-copy pool
 * when the compositor maps the daemon's memfd, else the client-owned copy.
 * @enter: a new enter serial (always set); otherwise only a change of
 * shape, hot spot or visibility calls wl_pointer.set_cursor (moves do not).
 */
static void vv_cursor_apply(struct vv *v, bool enter)
{
	struct vv_window *w = v->pointer_win;
	struct vv_cursor_shown want = { .valid = true };
	const struct vv_cursor *c;
	struct vvs_buffer *b = NULL;
	struct vv_buf *vb;
	struct vv_shmbuf *sb = NULL;
	struct wl_buffer *wlb = NULL;

	if (!v->pointer || !w)
		return;
	c = &v->cursor[w->id];
	if (c->visible && v->s)
		b = vvs_buffer(v->s, c->buffer_id);
	vb = b ? b->user : NULL;
	if (vb && vb->pool) {
		if (!vb->wlb) {
			vb->wlb = wl_shm_pool_create_buffer(
			        vb->pool, (int32_t)b->offset, (int32_t)b->width, (int32_t)b->height,
			        (int32_t)b->stride, WL_SHM_FORMAT_ARGB8888);
			vb->rw = b->width;
			vb->rh = b->height;
		}
		wlb = vb->wlb;
	} else if (b && v->ccopy.cur >= 0 && v->ccopy.buffer_id == b->id &&
	           v->ccopy.gen == v->gen) {
		sb = &v->ccopy.slot[v->ccopy.cur];
		wlb = sb->wlb;
	}
	want.win_id = w->id;
	want.shown = wlb != NULL;
	if (wlb) {
		want.buffer_id = c->buffer_id;
		want.gen = v->gen;
		want.hot_x = c->hot_x;
		want.hot_y = c->hot_y;
	}
	if (!enter && vv_cursor_shown_eq(&want, &v->cshown))
		return;
	v->cshown = want;
	v->cursor_sets++;
	if (!wlb) {
		wl_pointer_set_cursor(v->pointer, v->pointer_serial, NULL, 0, 0);
		return;
	}
	wl_surface_attach(v->cursor_surf, wlb, 0, 0);
	wl_surface_damage_buffer(v->cursor_surf, 0, 0, INT32_MAX, INT32_MAX);
	wl_surface_commit(v->cursor_surf);
	if (sb)
		sb->busy = true;
	wl_pointer_set_cursor(v->pointer, v->pointer_serial, v->cursor_surf, (int32_t)c->hot_x,
	                      (int32_t)c->hot_y);
}

static void vv_on_cursor(void *data, const struct vshm_display_cursor *c)
{
	struct vv *v = data;
	struct vv_cursor *vc = &v->cursor[c->scanout_id];
	bool was_visible = false;

	v->cursor_msgs++;
	/* One cursor per connection: it replaces the previous one, whatever its scanout. */
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_SCANOUTS; i++) {
		was_visible |= v->cursor[i].visible;
		if (i != c->scanout_id)
			v->cursor[i].visible = false;
	}
	vc->buffer_id = c->buffer_id;
	vc->hot_x = c->hot_x;
	vc->hot_y = c->hot_y;
	vc->visible = (c->flags & VSHM_DISPLAY_CURSOR_F_VISIBLE) && c->buffer_id;
	if (was_visible && !vc->visible)
		v->cursor_hides++;
	if (c->buffer_id)
		vv_cursor_shape(v, c->buffer_id, c->hot_x, c->hot_y);
	vv_cursor_apply(v, false);
}

static const struct vvs_handler vv_session_handler = {
	.ready = vv_on_ready,
	.buffer = vv_on_buffer,
	.buffer_destroy = vv_on_buffer_destroy,
	.scanout = vv_on_scanout,
	.frame = vv_on_frame,
	.cursor = vv_on_cursor,
};

static void vv_connect(struct vv *v)
{
	struct vvs_config cfg = { .scanouts = v->scanouts,
		                  .role = "preview",
		                  .offer_dmabuf = !v->no_dmabuf };
	int r = vvs_connect(v->socket, &cfg, &vv_session_handler, v, &v->s);
	if (r < 0) {
		if (!v->said_waiting)
			printf("vshm-view: waiting for the daemon at %s (%s), retrying every 1 s\n",
			       v->socket, strerror(-r));
		v->said_waiting = true;
		v->next_connect_ns = vshm_now_ns() + VV_RECONNECT_NS;
		fflush(stdout);
		return;
	}
	v->said_waiting = false;
	v->gen++;
}

static void vv_disconnect(struct vv *v, const char *why)
{
	printf("vshm-view: disconnected: %s\n", why);
	fflush(stdout);
	/* Windows stay: show the placeholder before the daemon's buffers go away. */
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_SCANOUTS; i++)
		if (v->win[i]) {
			vv_window_placeholder(v->win[i], VV_ST_DISCONNECTED);
		}
	/* The daemon's cursor is gone with it (a copied shape belongs to this session). */
	memset(v->cursor, 0, sizeof(v->cursor));
	vv_cursor_apply(v, false);
	vvs_destroy(&v->s);
	v->gen++;
	v->reconnects++;
	v->next_connect_ns = vshm_now_ns() + VV_RECONNECT_NS;
}

/* ---- wayland globals and input -------------------------------------------------------- */

static void vv_wm_ping(void *data, struct xdg_wm_base *wm, uint32_t serial)
{
	xdg_wm_base_pong(wm, serial);
}

static const struct xdg_wm_base_listener vv_wm_listener = { .ping = vv_wm_ping };

static void vv_shm_format(void *data, struct wl_shm *shm, uint32_t format)
{
	struct vv *v = data;
	if (v->n_shm_formats < sizeof(v->shm_formats) / sizeof(v->shm_formats[0]))
		v->shm_formats[v->n_shm_formats++] = format;
}

static const struct wl_shm_listener vv_shm_listener = { .format = vv_shm_format };

static void vv_pres_clock(void *data, struct wp_presentation *p, uint32_t clk_id)
{
	struct vv *v = data;
	v->pres_clock = (clockid_t)clk_id;
}

static const struct wp_presentation_listener vv_pres_listener = { .clock_id = vv_pres_clock };

static void vv_dmabuf_format(void *data, struct zwp_linux_dmabuf_v1 *d, uint32_t format)
{
}

static void vv_dmabuf_modifier(void *data, struct zwp_linux_dmabuf_v1 *d, uint32_t format,
                               uint32_t hi, uint32_t lo)
{
	struct vv *v = data;
	vvg_add_modifier(v->gl, format, ((uint64_t)hi << 32) | lo);
}

static const struct zwp_linux_dmabuf_v1_listener vv_dmabuf_listener = {
	.format = vv_dmabuf_format,
	.modifier = vv_dmabuf_modifier,
};

static void vv_pointer_enter(void *data, struct wl_pointer *p, uint32_t serial,
                             struct wl_surface *surf, wl_fixed_t x, wl_fixed_t y)
{
	struct vv *v = data;
	v->pointer_win = NULL;
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_SCANOUTS; i++)
		if (v->win[i] && v->win[i]->surf == surf)
			v->pointer_win = v->win[i];
	v->pointer_serial = serial;
	vv_cursor_apply(v, true);
}

static void vv_pointer_leave(void *data, struct wl_pointer *p, uint32_t serial,
                             struct wl_surface *surf)
{
	struct vv *v = data;
	v->pointer_win = NULL;
	v->cshown.valid = false;
}

static void vv_pointer_motion(void *data, struct wl_pointer *p, uint32_t t, wl_fixed_t x,
                              wl_fixed_t y)
{
}

static void vv_pointer_button(void *data, struct wl_pointer *p, uint32_t serial, uint32_t t,
                              uint32_t button, uint32_t state)
{
}

static void vv_pointer_axis(void *data, struct wl_pointer *p, uint32_t t, uint32_t axis,
                            wl_fixed_t value)
{
}

/* No input forwarding: the display protocol has no input channel (docs/vshm-view.md). */
static const struct wl_pointer_listener vv_pointer_listener = {
	.enter = vv_pointer_enter,
	.leave = vv_pointer_leave,
	.motion = vv_pointer_motion,
	.button = vv_pointer_button,
	.axis = vv_pointer_axis,
};

static void vv_seat_caps(void *data, struct wl_seat *seat, uint32_t caps)
{
	struct vv *v = data;
	bool has = caps & WL_SEAT_CAPABILITY_POINTER;
	if (has && !v->pointer) {
		v->pointer = wl_seat_get_pointer(seat);
		wl_pointer_add_listener(v->pointer, &vv_pointer_listener, v);
	} else if (!has && v->pointer) {
		wl_pointer_destroy(v->pointer);
		v->pointer = NULL;
		v->pointer_win = NULL;
		v->cshown.valid = false;
	}
}

static void vv_seat_name(void *data, struct wl_seat *seat, const char *name)
{
}

static const struct wl_seat_listener vv_seat_listener = {
	.capabilities = vv_seat_caps,
	.name = vv_seat_name,
};

static void vv_global(void *data, struct wl_registry *reg, uint32_t name, const char *iface,
                      uint32_t version)
{
	struct vv *v = data;

#define VV_BIND(iface_, ver) wl_registry_bind(reg, name, &iface_, version < (ver) ? version : (ver))
	if (!strcmp(iface, wl_compositor_interface.name)) {
		v->compositor = VV_BIND(wl_compositor_interface, 4);
	} else if (!strcmp(iface, wl_subcompositor_interface.name)) {
		v->subcompositor = VV_BIND(wl_subcompositor_interface, 1);
	} else if (!strcmp(iface, wl_shm_interface.name)) {
		v->shm = VV_BIND(wl_shm_interface, 1);
		wl_shm_add_listener(v->shm, &vv_shm_listener, v);
	} else if (!strcmp(iface, xdg_wm_base_interface.name)) {
		v->wm = VV_BIND(xdg_wm_base_interface, 1);
		xdg_wm_base_add_listener(v->wm, &vv_wm_listener, v);
	} else if (!strcmp(iface, wp_viewporter_interface.name)) {
		v->viewporter = VV_BIND(wp_viewporter_interface, 1);
	} else if (!strcmp(iface, wp_presentation_interface.name)) {
		v->presentation = VV_BIND(wp_presentation_interface, 1);
		wp_presentation_add_listener(v->presentation, &vv_pres_listener, v);
	} else if (!strcmp(iface, zwp_linux_dmabuf_v1_interface.name) && version >= 3) {
		v->dmabuf = VV_BIND(zwp_linux_dmabuf_v1_interface, 3);
		vvg_set_dmabuf(v->gl, v->dmabuf);
		zwp_linux_dmabuf_v1_add_listener(v->dmabuf, &vv_dmabuf_listener, v);
	} else if (!strcmp(iface, wl_seat_interface.name) && !v->seat) {
		v->seat = VV_BIND(wl_seat_interface, 1);
		wl_seat_add_listener(v->seat, &vv_seat_listener, v);
	}
#undef VV_BIND
}

static void vv_global_remove(void *data, struct wl_registry *reg, uint32_t name)
{
}

static const struct wl_registry_listener vv_registry_listener = {
	.global = vv_global,
	.global_remove = vv_global_remove,
};

/* ---- read-only wl_shm probe ------------------------------------------------------------ */

static void vv_probe_global(void *data, struct wl_registry *reg, uint32_t name, const char *iface,
                            uint32_t version)
{
	struct wl_shm **shm = data;
	if (!strcmp(iface, wl_shm_interface.name) && !*shm)
		*shm = wl_registry_bind(reg, name, &wl_shm_interface, 1);
}

static const struct wl_registry_listener vv_probe_listener = {
	.global = vv_probe_global,
	.global_remove = vv_global_remove,
};

/*
 * Can the compositor map a pool on a read-only, write-sealed memfd like the
 * daemon's? libwayland-server's wl_shm (1.21 at least) maps pools
 * PROT_READ|PROT_WRITE, which fails with EACCES and is a fatal protocol
 * error: so ask on a private connection first. False: shared-memory
 * scanouts are copied (counted).
 */
static bool vv_probe_ro_shm(void)
{
	struct wl_display *d = wl_display_connect(NULL);
	struct wl_registry *reg;
	struct wl_shm *shm = NULL;
	char path[64];
	bool ok = false;
	int fd, ro = -1;

	if (!d)
		return false;
	reg = wl_display_get_registry(d);
	wl_registry_add_listener(reg, &vv_probe_listener, &shm);
	wl_display_roundtrip(d);
	fd = memfd_create("vshm-view-probe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (shm && fd >= 0 && ftruncate(fd, 4096) == 0 &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE) == 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ro = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (ro >= 0) {
		struct wl_shm_pool *pool = wl_shm_create_pool(shm, ro, 4096);
		struct wl_buffer *b =
		        wl_shm_pool_create_buffer(pool, 0, 16, 16, 64, WL_SHM_FORMAT_XRGB8888);
		ok = wl_display_roundtrip(d) >= 0 && wl_display_get_error(d) == 0;
		if (ok) {
			wl_buffer_destroy(b);
			wl_shm_pool_destroy(pool);
		}
		close(ro);
	}
	if (fd >= 0)
		close(fd);
	wl_display_disconnect(d);
	return ok;
}

/* ---- main ----------------------------------------------------------------------------------- */

static void vv_usage(FILE *f)
{
	fprintf(f,
	        "usage: vshm-view --socket PATH [--scanouts LIST] [--scale N] [--overlay]\n"
	        "                 [--frames N] [--timeout S] [--no-dmabuf]\n"
	        "  --socket PATH    the vshm-gpu --display socket\n"
	        "  --scanouts LIST  scanout ids, e.g. 0 or 0,1 or 0-3 (default: all)\n"
	        "  --scale N        show windows N times the scanout size (wp_viewporter)\n"
	        "  --overlay        frame age, latency p50/p99, drops in a subsurface strip\n"
	        "  --frames N       exit 0 after N presented frames\n"
	        "  --timeout S      exit after S seconds (status 1 if --frames was not reached)\n"
	        "  --no-dmabuf      do not offer VSHM_DMABUF (shared memory only)\n");
}

static int vv_parse_list(const char *s, uint32_t *mask)
{
	char *end;
	*mask = 0;
	while (*s) {
		unsigned long a = strtoul(s, &end, 10), b = a;
		if (end == s)
			return -1;
		if (*end == '-') {
			s = end + 1;
			b = strtoul(s, &end, 10);
			if (end == s)
				return -1;
		}
		if (a > b || b >= VSHM_DISPLAY_MAX_SCANOUTS)
			return -1;
		for (unsigned long i = a; i <= b; i++)
			*mask |= 1u << i;
		s = end;
		if (*s == ',')
			s++;
		else if (*s)
			return -1;
	}
	return *mask ? 0 : -1;
}

static int vv_parse_args(struct vv *v, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "scanouts", required_argument, NULL, 'S' },
		{ "scale", required_argument, NULL, 'x' },
		{ "overlay", no_argument, NULL, 'o' },
		{ "frames", required_argument, NULL, 'f' },
		{ "timeout", required_argument, NULL, 't' },
		{ "no-dmabuf", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	v->scanouts = (1u << VSHM_DISPLAY_MAX_SCANOUTS) - 1;
	v->scale = 1.0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			v->socket = optarg;
			break;
		case 'S':
			if (vv_parse_list(optarg, &v->scanouts) < 0)
				goto bad;
			break;
		case 'x':
			v->scale = strtod(optarg, &end);
			if (*end || !(v->scale > 0.0 && v->scale <= 16.0))
				goto bad;
			break;
		case 'o':
			v->overlay = true;
			break;
		case 'f':
			v->max_frames = strtoull(optarg, &end, 10);
			if (*end)
				goto bad;
			break;
		case 't':
			v->timeout_s = strtod(optarg, &end);
			if (*end || v->timeout_s < 0)
				goto bad;
			break;
		case 'D':
			v->no_dmabuf = true;
			break;
		case 'h':
			vv_usage(stdout);
			exit(0);
		default:
			goto bad;
		}
	}
	if (v->socket && optind == argc)
		return 0;
bad:
	vv_usage(stderr);
	return -1;
}

static void vv_report(struct vv *v)
{
	double p50, p99, mx;
	printf("vshm-view: compositor: linux-dmabuf %s, wp_presentation %s, wp_viewporter %s\n",
	       v->dmabuf ? "yes" : "no", v->presentation ? "yes" : "no",
	       v->viewporter ? "yes" : "no");
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_SCANOUTS; i++) {
		struct vv_window *w = v->win[i];
		if (!w)
			continue;
		printf("vshm-view: scanout %u: path %s, received %llu, presented %llu, skipped "
		       "%llu, "
		       "daemon-dropped %llu, copies %llu\n",
		       i, vvg_path_name(w->path), (unsigned long long)w->received,
		       (unsigned long long)w->presented, (unsigned long long)w->skipped,
		       (unsigned long long)w->daemon_dropped, (unsigned long long)w->copies);
	}
	printf("vshm-view: releases: after presentation %llu, on wl_buffer.release %llu, after "
	       "copy "
	       "%llu; reconnects %llu\n",
	       (unsigned long long)v->releases_presented, (unsigned long long)v->releases_buffer,
	       (unsigned long long)v->releases_copy, (unsigned long long)v->reconnects);
	if (vv_lat_pct(v, &p50, &p99, &mx))
		printf("vshm-view: flush-to-present latency: %zu frames, p50 %.3f ms, p99 %.3f ms, "
		       "max %.3f ms\n",
		       v->n_lat, p50, p99, mx);
	if (v->n_lat)
		printf("vshm-view: latency parts (mean): flush->received %.3f ms, received->commit "
		       "%.3f ms (frame-callback pacing), commit->present %.3f ms\n",
		       (double)v->sum_recv_ns / 1e6 / (double)v->n_lat,
		       (double)v->sum_wait_ns / 1e6 / (double)v->n_lat,
		       (double)v->sum_present_ns / 1e6 / (double)v->n_lat);
	else
		printf("vshm-view: flush-to-present latency: no samples\n");
	printf("vshm-view: cursor: path %s, messages %llu, shapes copied %llu, hides %llu, "
	       "set_cursor %llu\n",
	       v->cursor_msgs ? vvg_path_name(v->cursor_path) : "none",
	       (unsigned long long)v->cursor_msgs, (unsigned long long)v->cursor_copies,
	       (unsigned long long)v->cursor_hides, (unsigned long long)v->cursor_sets);
	fflush(stdout);
}

static int vv_run(struct vv *v)
{
	uint64_t start = vshm_now_ns(), next_overlay = start;
	uint64_t deadline = v->timeout_s > 0 ? start + (uint64_t)(v->timeout_s * 1e9) : 0;

	vv_connect(v);
	while (!v->quit && !vv_signal) {
		struct pollfd pfd[2] = { { wl_display_get_fd(v->display), POLLIN, 0 } };
		uint64_t now = vshm_now_ns(), wake = now + 1000000000ull;
		int nfds = 1, timeout;

		if (v->max_frames && v->presented >= v->max_frames)
			return 0;
		if (deadline && now >= deadline)
			return v->max_frames ? 1 : 0;
		if (!v->s && now >= v->next_connect_ns)
			vv_connect(v);
		if (v->overlay && now >= next_overlay) {
			for (unsigned i = 0; i < VSHM_DISPLAY_MAX_SCANOUTS; i++)
				if (v->win[i])
					vv_window_draw_overlay(v->win[i]);
			next_overlay = now + VV_OVERLAY_NS;
		}
		if (v->s) {
			pfd[1].fd = vvs_fd(v->s);
			pfd[1].events = POLLIN | (vvs_wants_write(v->s) ? POLLOUT : 0);
			nfds = 2;
		} else if (v->next_connect_ns < wake) {
			wake = v->next_connect_ns;
		}
		if (v->overlay && next_overlay < wake)
			wake = next_overlay;
		if (deadline && deadline < wake)
			wake = deadline;
		timeout = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;

		while (wl_display_prepare_read(v->display) != 0)
			wl_display_dispatch_pending(v->display);
		if (wl_display_flush(v->display) < 0 && errno != EAGAIN) {
			wl_display_cancel_read(v->display);
			fprintf(stderr, "vshm-view: compositor connection lost\n");
			return 1;
		}
		if (poll(pfd, (nfds_t)nfds, timeout) < 0 && errno != EINTR) {
			wl_display_cancel_read(v->display);
			return 1;
		}
		if (pfd[0].revents & POLLIN) {
			if (wl_display_read_events(v->display) < 0) {
				fprintf(stderr, "vshm-view: compositor connection lost\n");
				return 1;
			}
		} else {
			wl_display_cancel_read(v->display);
		}
		if (wl_display_dispatch_pending(v->display) < 0) {
			fprintf(stderr, "vshm-view: Wayland error %d\n",
			        wl_display_get_error(v->display));
			return 1;
		}
		if (v->s && (pfd[1].revents || vvs_wants_write(v->s))) {
			int r = vvs_dispatch(v->s);
			if (r < 0)
				vv_disconnect(v, vvs_error(v->s));
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct vv v = { .pres_clock = CLOCK_MONOTONIC, .ccopy.cur = -1 };
	struct sigaction sa = { .sa_handler = vv_on_signal };
	int rc;

	if (vv_parse_args(&v, argc, argv) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	wl_list_init(&v.feedbacks);
	if (!(v.display = wl_display_connect(NULL))) {
		fprintf(stderr, "vshm-view: cannot connect to the Wayland compositor\n");
		return 1;
	}
	v.gl = vvg_new(v.display);
	v.registry = wl_display_get_registry(v.display);
	wl_registry_add_listener(v.registry, &vv_registry_listener, &v);
	wl_display_roundtrip(v.display);
	wl_display_roundtrip(v.display); /* formats, modifiers, clock id */
	if (!v.gl || !v.compositor || !v.shm || !v.wm) {
		fprintf(stderr,
		        "vshm-view: the compositor lacks wl_compositor, wl_shm or xdg_wm_base\n");
		return 1;
	}
	v.cursor_surf = wl_compositor_create_surface(v.compositor);
	v.ro_shm_ok = vv_probe_ro_shm();
	printf("vshm-view: compositor: linux-dmabuf %s, wp_presentation %s (clock %d), "
	       "wp_viewporter %s\n",
	       v.dmabuf ? "yes" : "no (dma-buf scanouts: EGL import, else copy)",
	       v.presentation ? "yes" : "no", (int)v.pres_clock, v.viewporter ? "yes" : "no");
	printf("vshm-view: wl_shm zero-copy: %s\n",
	       v.ro_shm_ok ? "yes (the compositor maps the daemon's read-only memfd)"
	                   : "no (the compositor cannot map a read-only sealed memfd; "
	                     "shared-memory scanouts are copied into wl_shm buffers)");
	fflush(stdout);

	rc = vv_run(&v);
	vv_report(&v);

	vvs_destroy(&v.s);
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_SCANOUTS; i++)
		vv_window_destroy(&v.win[i]);
	if (v.cursor_surf)
		wl_surface_destroy(v.cursor_surf);
	for (unsigned i = 0; i < 2; i++)
		vv_shmbuf_destroy(&v.ccopy.slot[i]);
	vvg_destroy(&v.gl);
	wl_display_disconnect(v.display);
	free(v.lat_ms);
	return rc;
}
