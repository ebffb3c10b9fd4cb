/* SPDX-License-Identifier: MIT */
/* png-write.c - see png-write.h. */
#include "png-write.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consumer.h"

struct png_job {
	FILE *f;
	const uint8_t *pixels;
	uint32_t width, height, stride, fourcc;
	bool alpha;
	uint8_t *row;
};

/* libpng reports errors by longjmp; keep the setjmp frame free of locals that change. */
static int png_encode(struct png_job *j)
{
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	if (!png || !info) {
		png_destroy_write_struct(&png, NULL);
		return -ENOMEM;
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		return -EIO;
	}
	png_init_io(png, j->f);
	png_set_compression_level(png, 1);
	png_set_IHDR(png, info, j->width, j->height, 8,
	             j->alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
	             PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (uint32_t y = 0; y < j->height; y++) {
		vsc_convert_row(j->fourcc, j->pixels + (size_t)y * j->stride, j->width, j->row,
		                j->alpha);
		png_write_row(png, j->row);
	}
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	return 0;
}

int vsc_png_write(const char *path, const uint8_t *pixels, uint32_t width, uint32_t height,
                  uint32_t stride, uint32_t fourcc)
{
	struct png_job j = { 0 };
	char tmp[4096];
	int r;

	if (!vsc_format_bpp(fourcc))
		return -ENOTSUP;
	if (!width || !height || width > 0x7fffffffu / 4 || stride < width * 4u)
		return -EINVAL;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	j.pixels = pixels;
	j.width = width;
	j.height = height;
	j.stride = stride;
	j.fourcc = fourcc;
	j.alpha = vsc_format_has_alpha(fourcc);
	j.row = malloc((size_t)width * 4);
	if (!j.row)
		return -ENOMEM;
	j.f = fopen(tmp, "wbe");
	if (!j.f) {
		r = -errno;
		free(j.row);
		return r;
	}
	r = png_encode(&j);
	if (fclose(j.f) != 0 && r == 0)
		r = -errno;
	free(j.row);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}
