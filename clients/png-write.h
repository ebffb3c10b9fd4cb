/* SPDX-License-Identifier: MIT */
/*
 * png-write.h - write a scanout image (any format vsc_format_bpp() knows) as
 * an 8-bit RGB or RGBA PNG with libpng. Used by vshm-capture and its tests.
 */
#ifndef VSHM_CLIENTS_PNG_WRITE_H
#define VSHM_CLIENTS_PNG_WRITE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Write @width x @height pixels of DRM format @fourcc (rows @stride bytes
 * apart, first row = top) to @path. The PNG is RGBA when the format has
 * alpha (ARGB8888, ...), RGB otherwise. The file is written to a temporary
 * name and renamed, so a reader never sees a partial PNG.
 * Returns 0, -ENOTSUP for an unknown format, -EINVAL, or -errno.
 */
int vsc_png_write(const char *path, const uint8_t *pixels, uint32_t width, uint32_t height,
                  uint32_t stride, uint32_t fourcc);

#endif
