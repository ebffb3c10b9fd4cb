/* SPDX-License-Identifier: MIT */
/*
 * test-png.c - vsc_png_write(): every format the specification lists is
 * written as PNG and read back with libpng with exactly the right pixels.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consumer.h"
#include "png-read.h"
#include "png-write.h"
#include "test-runner.h"

/* Byte positions of R, G, B, A in memory for each format (DRM: little-endian words). */
static const struct {
	uint32_t fourcc;
	int r, g, b, a;
	bool alpha;
} fmts[] = {
	{ VSC_FMT_XRGB8888, 2, 1, 0, 3, false }, { VSC_FMT_ARGB8888, 2, 1, 0, 3, true },
	{ VSC_FMT_XBGR8888, 0, 1, 2, 3, false }, { VSC_FMT_ABGR8888, 0, 1, 2, 3, true },
	{ VSC_FMT_BGRX8888, 1, 2, 3, 0, false }, { VSC_FMT_BGRA8888, 1, 2, 3, 0, true },
	{ VSC_FMT_RGBX8888, 3, 2, 1, 0, false }, { VSC_FMT_RGBA8888, 3, 2, 1, 0, true },
};

static uint8_t chan(uint32_t x, uint32_t y, int c)
{
	return (uint8_t)((x * 7 + y * 13 + (uint32_t)c * 71) ^ (x >> 3) ^ (y << 2));
}

TEST(png_roundtrip_all_formats)
{
	enum { PW = 45, PH = 29, STRIDE = PW * 4 + 20 };
	char dir[] = "/tmp/vsc-png-XXXXXX", path[128];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/img.png", dir);
	uint8_t *src = calloc(STRIDE, PH);
	CHECK(src != NULL);
	for (size_t f = 0; f < sizeof(fmts) / sizeof(fmts[0]); f++) {
		for (uint32_t y = 0; y < PH; y++)
			for (uint32_t x = 0; x < PW; x++) {
				uint8_t *p = src + y * STRIDE + x * 4;
				p[fmts[f].r] = chan(x, y, 0);
				p[fmts[f].g] = chan(x, y, 1);
				p[fmts[f].b] = chan(x, y, 2);
				p[fmts[f].a] = chan(x, y, 3);
			}
		CHECK_OK(vsc_png_write(path, src, PW, PH, STRIDE, fmts[f].fourcc));
		uint8_t *img;
		uint32_t w, h;
		int ct;
		CHECK_OK(tpng_read_rgba(path, &img, &w, &h, &ct));
		CHECK_EQ(w, PW);
		CHECK_EQ(h, PH);
		CHECK_EQ(ct, fmts[f].alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB);
		for (uint32_t y = 0; y < PH; y++)
			for (uint32_t x = 0; x < PW; x++) {
				const uint8_t *q = img + (y * PW + x) * 4;
				CHECK_EQ(q[0], chan(x, y, 0));
				CHECK_EQ(q[1], chan(x, y, 1));
				CHECK_EQ(q[2], chan(x, y, 2));
				CHECK_EQ(q[3], fmts[f].alpha ? chan(x, y, 3) : 0xff);
			}
		free(img);
	}
	free(src);
	unlink(path);
	rmdir(dir);
}

TEST(png_rejects_bad_input)
{
	uint8_t px[16] = { 0 };
	CHECK_EQ(vsc_png_write("/tmp/x.png", px, 1, 1, 4, 0x3231564e), -ENOTSUP);
	CHECK_EQ(vsc_png_write("/tmp/x.png", px, 2, 1, 4, VSC_FMT_XRGB8888), -EINVAL);
	CHECK_EQ(vsc_png_write("/tmp/x.png", px, 0, 1, 4, VSC_FMT_XRGB8888), -EINVAL);
	CHECK(vsc_png_write("/nonexistent-dir/x.png", px, 1, 1, 4, VSC_FMT_XRGB8888) < 0);
}
