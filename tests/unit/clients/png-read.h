/* SPDX-License-Identifier: MIT */
/* png-read.h - read a PNG back with libpng as 8-bit RGBA (tests only). */
#ifndef VSHM_TESTS_PNG_READ_H
#define VSHM_TESTS_PNG_READ_H

#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 0 and a malloc'ed RGBA image in *out (caller frees), or -1. *color_type gets the file's. */
static inline int tpng_read_rgba(const char *path, uint8_t **out, uint32_t *w, uint32_t *h,
                                 int *color_type)
{
	png_image img;
	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_file(&img, path))
		return -1;
	if (color_type)
		*color_type = (img.format & PNG_FORMAT_FLAG_ALPHA) ? PNG_COLOR_TYPE_RGB_ALPHA
		                                                   : PNG_COLOR_TYPE_RGB;
	img.format = PNG_FORMAT_RGBA;
	*out = malloc(PNG_IMAGE_SIZE(img));
	if (!*out) {
		png_image_free(&img);
		return -1;
	}
	if (!png_image_finish_read(&img, NULL, *out, 0, NULL)) {
		free(*out);
		*out = NULL;
		return -1;
	}
	*w = img.width;
	*h = img.height;
	return 0;
}

#endif
