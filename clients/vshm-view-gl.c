/* SPDX-License-Identifier: MIT */
/*
 * vshm-view-gl.c - dma-buf scanouts for vshm-view (vvg_), in order of
 * preference:
 *   1. zwp_linux_dmabuf_v1: the compositor imports the daemon's dma-buf
 *      (with its modifier when the compositor advertised the pair);
 *   2. EGL import (EGL_EXT_image_dma_buf_import[_modifiers], through
 *      libepoxy) into a GL texture drawn into an EGL window surface, when
 *      the compositor has no linux-dmabuf;
 *   3. a CPU copy of a LINEAR dma-buf into a wl_shm buffer (counted).
 * Shared-memory scanouts never come here: they are wl_shm pools on the
 * daemon's memfd (vshm-view.c).
 */
#include <epoxy/egl.h>
#include <epoxy/gl.h>
#include <errno.h>
#include <linux/dma-buf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <wayland-client.h>
#include <wayland-egl.h>

#include "linux-dmabuf-unstable-v1-client-protocol.h"
#include "vshm-view.h"

#define VVG_MAX_MODS    256
#define VVG_MOD_INVALID 0x00ffffffffffffffull
#define VVG_MOD_LINEAR  0ull
#define VVG_FMT(a, b, c, d)                                                                        \
	((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))

struct vvg_image {
	uint32_t buffer_id;
	EGLImageKHR image;
	GLuint tex;
};

struct vvg_window {
	struct wl_egl_window *native;
	EGLSurface surf;
	int w, h;
};

struct vvg {
	struct wl_display *display;
	struct zwp_linux_dmabuf_v1 *dmabuf;
	struct {
		uint32_t fourcc;
		uint64_t modifier;
	} mods[VVG_MAX_MODS];
	unsigned n_mods;
	/* EGL, initialised on first need */
	bool egl_tried, egl_ok, egl_modifiers;
	EGLDisplay dpy;
	EGLConfig config;
	EGLContext ctx;
	GLuint prog;
	GLint u_crop;
	struct vvg_image images[VSHM_DISPLAY_MAX_BUFFERS];
};

const char *vvg_path_name(enum vvg_path p)
{
	switch (p) {
	case VVG_PATH_SHM_ZERO_COPY:
		return "wl_shm zero-copy";
	case VVG_PATH_DMABUF:
		return "linux-dmabuf zero-copy";
	case VVG_PATH_GL:
		return "EGL dma-buf import";
	case VVG_PATH_COPY:
		return "copy into wl_shm";
	default:
		return "none";
	}
}

bool vv_convert_row(uint32_t fourcc, const uint8_t *src, uint32_t w, uint32_t *dst)
{
	for (uint32_t i = 0; i < w; i++) {
		uint32_t v;
		memcpy(&v, src + 4 * (size_t)i, 4);
		switch (fourcc) {
		case VVG_FMT('X', 'R', '2', '4'):
		case VVG_FMT('A', 'R', '2', '4'):
			break;
		case VVG_FMT('X', 'B', '2', '4'):
		case VVG_FMT('A', 'B', '2', '4'):
			v = (v & 0xff) << 16 | (v & 0xff00) | ((v >> 16) & 0xff);
			break;
		case VVG_FMT('B', 'X', '2', '4'):
		case VVG_FMT('B', 'A', '2', '4'):
			v = ((v >> 8) & 0xff) << 16 | ((v >> 16) & 0xff) << 8 | (v >> 24);
			break;
		case VVG_FMT('R', 'X', '2', '4'):
		case VVG_FMT('R', 'A', '2', '4'):
			v >>= 8;
			break;
		default:
			return false;
		}
		dst[i] = v | 0xff000000u;
	}
	return true;
}

/* ---- linux-dmabuf ------------------------------------------------------------------------- */

struct vvg *vvg_new(struct wl_display *d)
{
	struct vvg *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->display = d;
	return g;
}

void vvg_set_dmabuf(struct vvg *g, struct zwp_linux_dmabuf_v1 *dmabuf_global)
{
	g->dmabuf = dmabuf_global;
}

void vvg_add_modifier(struct vvg *g, uint32_t fourcc, uint64_t modifier)
{
	if (g->n_mods < VVG_MAX_MODS) {
		g->mods[g->n_mods].fourcc = fourcc;
		g->mods[g->n_mods].modifier = modifier;
		g->n_mods++;
	}
}

static bool vvg_compositor_takes(const struct vvg *g, uint32_t fourcc, uint64_t modifier)
{
	for (unsigned i = 0; i < g->n_mods; i++)
		if (g->mods[i].fourcc == fourcc &&
		    (g->mods[i].modifier == modifier || g->mods[i].modifier == VVG_MOD_INVALID))
			return true;
	return false;
}

struct wl_buffer *vvg_dmabuf_buffer(struct vvg *g, const struct vvs_buffer *b)
{
	struct zwp_linux_buffer_params_v1 *params;
	struct wl_buffer *wb;
	uint32_t flags = 0;

	if (!g->dmabuf)
		return NULL;
	params = zwp_linux_dmabuf_v1_create_params(g->dmabuf);
	for (uint32_t i = 0; i < b->num_planes; i++)
		zwp_linux_buffer_params_v1_add(params, b->plane_fd[i], i, b->plane_offset[i],
		                               b->plane_stride[i], (uint32_t)(b->modifier >> 32),
		                               (uint32_t)b->modifier);
	if (!(b->flags & VSHM_DISPLAY_BUFFER_F_Y_0_TOP))
		flags |= ZWP_LINUX_BUFFER_PARAMS_V1_FLAGS_Y_INVERT;
	wb = zwp_linux_buffer_params_v1_create_immed(params, (int32_t)b->width, (int32_t)b->height,
	                                             b->fourcc, flags);
	zwp_linux_buffer_params_v1_destroy(params);
	return wb;
}

/* ---- EGL -------------------------------------------------------------------------------- */

static const char vvg_vs[] = "attribute vec2 pos;\n"
                             "uniform vec4 crop;\n"
                             "varying vec2 uv;\n"
                             "void main() {\n"
                             "  uv = crop.xy + (pos * 0.5 + 0.5) * crop.zw;\n"
                             "  gl_Position = vec4(pos.x, -pos.y, 0.0, 1.0);\n"
                             "}\n";
static const char vvg_fs[] = "#extension GL_OES_EGL_image_external : require\n"
                             "precision mediump float;\n"
                             "uniform samplerExternalOES tex;\n"
                             "varying vec2 uv;\n"
                             "void main() { gl_FragColor = texture2D(tex, uv); }\n";

static GLuint vvg_shader(GLenum type, const char *src)
{
	GLuint s = glCreateShader(type);
	GLint ok = 0;
	glShaderSource(s, 1, &src, NULL);
	glCompileShader(s);
	glGetShaderiv(s, GL_COMPILE_STATUS, &ok);
	if (!ok) {
		glDeleteShader(s);
		return 0;
	}
	return s;
}

static bool vvg_egl_init(struct vvg *g)
{
	static const EGLint cfg_attr[] = { EGL_SURFACE_TYPE,
		                           EGL_WINDOW_BIT,
		                           EGL_RED_SIZE,
		                           8,
		                           EGL_GREEN_SIZE,
		                           8,
		                           EGL_BLUE_SIZE,
		                           8,
		                           EGL_RENDERABLE_TYPE,
		                           EGL_OPENGL_ES2_BIT,
		                           EGL_NONE };
	static const EGLint ctx_attr[] = { EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE };
	EGLint n = 0;
	GLuint vs, fs;
	GLint ok = 0;

	if (g->egl_tried)
		return g->egl_ok;
	g->egl_tried = true;
	g->dpy = eglGetPlatformDisplay(EGL_PLATFORM_WAYLAND_KHR, g->display, NULL);
	if (g->dpy == EGL_NO_DISPLAY || !eglInitialize(g->dpy, NULL, NULL))
		return false;
	if (!epoxy_has_egl_extension(g->dpy, "EGL_EXT_image_dma_buf_import") ||
	    !eglBindAPI(EGL_OPENGL_ES_API) ||
	    !eglChooseConfig(g->dpy, cfg_attr, &g->config, 1, &n) || n < 1)
		return false;
	g->egl_modifiers =
	        epoxy_has_egl_extension(g->dpy, "EGL_EXT_image_dma_buf_import_modifiers");
	g->ctx = eglCreateContext(g->dpy, g->config, EGL_NO_CONTEXT, ctx_attr);
	if (g->ctx == EGL_NO_CONTEXT)
		return false;
	if (!eglMakeCurrent(g->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, g->ctx) ||
	    !epoxy_has_gl_extension("GL_OES_EGL_image_external"))
		return false;
	vs = vvg_shader(GL_VERTEX_SHADER, vvg_vs);
	fs = vvg_shader(GL_FRAGMENT_SHADER, vvg_fs);
	if (!vs || !fs)
		return false;
	g->prog = glCreateProgram();
	glAttachShader(g->prog, vs);
	glAttachShader(g->prog, fs);
	glBindAttribLocation(g->prog, 0, "pos");
	glLinkProgram(g->prog);
	glDeleteShader(vs);
	glDeleteShader(fs);
	glGetProgramiv(g->prog, GL_LINK_STATUS, &ok);
	if (!ok)
		return false;
	g->u_crop = glGetUniformLocation(g->prog, "crop");
	g->egl_ok = true;
	return true;
}

static struct vvg_image *vvg_import(struct vvg *g, const struct vvs_buffer *b)
{
	static const EGLint fd_key[4] = { EGL_DMA_BUF_PLANE0_FD_EXT, EGL_DMA_BUF_PLANE1_FD_EXT,
		                          EGL_DMA_BUF_PLANE2_FD_EXT, EGL_DMA_BUF_PLANE3_FD_EXT };
	static const EGLint off_key[4] = { EGL_DMA_BUF_PLANE0_OFFSET_EXT,
		                           EGL_DMA_BUF_PLANE1_OFFSET_EXT,
		                           EGL_DMA_BUF_PLANE2_OFFSET_EXT,
		                           EGL_DMA_BUF_PLANE3_OFFSET_EXT };
	static const EGLint pitch_key[4] = { EGL_DMA_BUF_PLANE0_PITCH_EXT,
		                             EGL_DMA_BUF_PLANE1_PITCH_EXT,
		                             EGL_DMA_BUF_PLANE2_PITCH_EXT,
		                             EGL_DMA_BUF_PLANE3_PITCH_EXT };
	static const EGLint lo_key[4] = { EGL_DMA_BUF_PLANE0_MODIFIER_LO_EXT,
		                          EGL_DMA_BUF_PLANE1_MODIFIER_LO_EXT,
		                          EGL_DMA_BUF_PLANE2_MODIFIER_LO_EXT,
		                          EGL_DMA_BUF_PLANE3_MODIFIER_LO_EXT };
	static const EGLint hi_key[4] = { EGL_DMA_BUF_PLANE0_MODIFIER_HI_EXT,
		                          EGL_DMA_BUF_PLANE1_MODIFIER_HI_EXT,
		                          EGL_DMA_BUF_PLANE2_MODIFIER_HI_EXT,
		                          EGL_DMA_BUF_PLANE3_MODIFIER_HI_EXT };
	struct vvg_image *free_slot = NULL;
	EGLint a[64];
	int n = 0;

	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++) {
		if (g->images[i].buffer_id == b->id)
			return &g->images[i];
		if (!g->images[i].buffer_id && !free_slot)
			free_slot = &g->images[i];
	}
	if (!free_slot)
		return NULL;
	a[n++] = EGL_WIDTH;
	a[n++] = (EGLint)b->width;
	a[n++] = EGL_HEIGHT;
	a[n++] = (EGLint)b->height;
	a[n++] = EGL_LINUX_DRM_FOURCC_EXT;
	a[n++] = (EGLint)b->fourcc;
	for (uint32_t i = 0; i < b->num_planes; i++) {
		a[n++] = fd_key[i];
		a[n++] = b->plane_fd[i];
		a[n++] = off_key[i];
		a[n++] = (EGLint)b->plane_offset[i];
		a[n++] = pitch_key[i];
		a[n++] = (EGLint)b->plane_stride[i];
		if (g->egl_modifiers && b->modifier != VVG_MOD_INVALID) {
			a[n++] = lo_key[i];
			a[n++] = (EGLint)(b->modifier & 0xffffffffu);
			a[n++] = hi_key[i];
			a[n++] = (EGLint)(b->modifier >> 32);
		}
	}
	a[n++] = EGL_NONE;
	EGLImageKHR img = eglCreateImageKHR(g->dpy, EGL_NO_CONTEXT, EGL_LINUX_DMA_BUF_EXT, NULL, a);
	if (img == EGL_NO_IMAGE_KHR)
		return NULL;
	free_slot->buffer_id = b->id;
	free_slot->image = img;
	glGenTextures(1, &free_slot->tex);
	glBindTexture(GL_TEXTURE_EXTERNAL_OES, free_slot->tex);
	glTexParameteri(GL_TEXTURE_EXTERNAL_OES, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
	glTexParameteri(GL_TEXTURE_EXTERNAL_OES, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
	glEGLImageTargetTexture2DOES(GL_TEXTURE_EXTERNAL_OES, img);
	return free_slot;
}

void vvg_forget(struct vvg *g, const struct vvs_buffer *b)
{
	if (!g)
		return;
	for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++) {
		struct vvg_image *im = &g->images[i];
		if (im->buffer_id != b->id)
			continue;
		eglMakeCurrent(g->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, g->ctx);
		glDeleteTextures(1, &im->tex);
		eglDestroyImageKHR(g->dpy, im->image);
		memset(im, 0, sizeof(*im));
	}
}

enum vvg_path vvg_choose(struct vvg *g, const struct vvs_buffer *b)
{
	if (g->dmabuf && vvg_compositor_takes(g, b->fourcc, b->modifier))
		return VVG_PATH_DMABUF;
	if (!g->dmabuf && vvg_egl_init(g))
		return VVG_PATH_GL;
	if (b->num_planes == 1 && (b->modifier == VVG_MOD_LINEAR || b->modifier == VVG_MOD_INVALID))
		return VVG_PATH_COPY;
	return VVG_PATH_NONE;
}

int vvg_draw(struct vvg *g, struct vvg_window **pwin, struct wl_surface *surf,
             const struct vvs_buffer *b, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
	static const GLfloat quad[] = { -1, -1, 1, -1, -1, 1, 1, 1 };
	struct vvg_window *win = *pwin;
	struct vvg_image *im;

	if (!vvg_egl_init(g))
		return -ENOTSUP;
	if (!win) {
		if (!(win = calloc(1, sizeof(*win))))
			return -ENOMEM;
		win->native = wl_egl_window_create(surf, (int)w, (int)h);
		win->surf = eglCreatePlatformWindowSurface(g->dpy, g->config, win->native, NULL);
		win->w = (int)w;
		win->h = (int)h;
		*pwin = win;
		if (win->surf == EGL_NO_SURFACE)
			return -EIO;
	}
	if (win->w != (int)w || win->h != (int)h) {
		wl_egl_window_resize(win->native, (int)w, (int)h, 0, 0);
		win->w = (int)w;
		win->h = (int)h;
	}
	if (!eglMakeCurrent(g->dpy, win->surf, win->surf, g->ctx))
		return -EIO;
	eglSwapInterval(g->dpy, 0); /* pacing is ours (frame callbacks), never EGL's */
	if (!(im = vvg_import(g, b)))
		return -EIO;
	glViewport(0, 0, (GLsizei)w, (GLsizei)h);
	glUseProgram(g->prog);
	glUniform4f(g->u_crop, (float)x / (float)b->width, (float)y / (float)b->height,
	            (float)w / (float)b->width, (float)h / (float)b->height);
	glActiveTexture(GL_TEXTURE0);
	glBindTexture(GL_TEXTURE_EXTERNAL_OES, im->tex);
	glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, quad);
	glEnableVertexAttribArray(0);
	glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
	if (!eglSwapBuffers(g->dpy, win->surf))
		return -EIO;
	glFinish(); /* the sampling of the guest's dma-buf is done: it can be released */
	return 0;
}

void vvg_window_destroy(struct vvg *g, struct vvg_window **pwin)
{
	struct vvg_window *win = *pwin;
	if (!win)
		return;
	if (g && g->egl_ok && win->surf != EGL_NO_SURFACE) {
		eglMakeCurrent(g->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, g->ctx);
		eglDestroySurface(g->dpy, win->surf);
	}
	if (win->native)
		wl_egl_window_destroy(win->native);
	free(win);
	*pwin = NULL;
}

void vvg_destroy(struct vvg **pg)
{
	struct vvg *g = *pg;
	if (!g)
		return;
	if (g->egl_ok) {
		for (unsigned i = 0; i < VSHM_DISPLAY_MAX_BUFFERS; i++)
			if (g->images[i].buffer_id)
				eglDestroyImageKHR(g->dpy, g->images[i].image);
		eglMakeCurrent(g->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
		eglDestroyContext(g->dpy, g->ctx);
	}
	if (g->dpy != EGL_NO_DISPLAY && g->egl_tried && g->dpy)
		eglTerminate(g->dpy);
	free(g);
	*pg = NULL;
}

/* ---- copy fallback ------------------------------------------------------------------------ */

int vvg_copy(const struct vvs_buffer *b, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
             uint8_t *dst, uint32_t dst_stride)
{
	struct dma_buf_sync sync = { DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ };
	size_t len = (size_t)b->plane_offset[0] + (size_t)b->plane_stride[0] * b->height;
	const uint8_t *map;
	int r = 0;

	if (b->num_planes != 1 || b->plane_stride[0] < b->width * 4u)
		return -ENOTSUP;
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, b->plane_fd[0], 0);
	if (map == MAP_FAILED)
		return -errno;
	ioctl(b->plane_fd[0], DMA_BUF_IOCTL_SYNC, &sync);
	for (uint32_t row = 0; row < h && !r; row++) {
		uint32_t sy = y + row;
		if (!(b->flags & VSHM_DISPLAY_BUFFER_F_Y_0_TOP))
			sy = b->height - 1 - sy;
		const uint8_t *src =
		        map + b->plane_offset[0] + (size_t)sy * b->plane_stride[0] + (size_t)x * 4;
		if (!vv_convert_row(b->fourcc, src, w,
		                    (uint32_t *)(dst + (size_t)row * dst_stride)))
			r = -ENOTSUP;
	}
	sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ;
	ioctl(b->plane_fd[0], DMA_BUF_IOCTL_SYNC, &sync);
	munmap((void *)map, len);
	return r;
}
