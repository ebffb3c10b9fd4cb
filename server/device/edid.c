/* SPDX-License-Identifier: MIT */
/*
 * edid.c - a synthetic EDID 1.4 base block for each scanout.
 *
 * Guests pick their preferred mode from the first detailed timing, so that
 * is the configured scanout mode with reduced-blanking timings in the
 * style of VESA CVT-RB (160-pixel horizontal blank, >= 460 us vertical
 * blank at 60 Hz): plausible for any monitor-parsing code and cheap on
 * pixel clock. Standard timings list common smaller modes so a guest can
 * switch resolution without custom modelines.
 */
#include <string.h>

#include "gpu-internal.h"

#define REFRESH_HZ 60

/* CVT-RB constants (pixels / lines / microseconds). */
#define RB_H_BLANK    160
#define RB_H_FRONT    48
#define RB_H_SYNC     32
#define RB_V_FRONT    3
#define RB_V_BACK_MIN 6
#define RB_MIN_VBI_US 460

/* Detailed timings hold 12-bit sizes and a 16-bit clock in 10 kHz units. */
#define DT_MAX_ACTIVE      4095
#define DT_MAX_CLOCK_10KHZ 65535

struct std_mode {
	uint16_t w, h;
	uint8_t aspect; /* EDID code: 0 16:10, 1 4:3, 2 5:4, 3 16:9 */
};

static const struct std_mode std_modes[8] = {
	{ 1024, 768, 1 },  { 1280, 720, 3 }, { 1280, 1024, 2 }, { 1600, 900, 3 },
	{ 1920, 1080, 3 }, { 1280, 800, 0 }, { 1440, 900, 0 },  { 1680, 1050, 0 },
};

/* Vertical sync width by aspect ratio, as CVT defines it. */
static uint32_t cvt_vsync(uint32_t w, uint32_t h)
{
	if (w * 3 == h * 4)
		return 4;
	if (w * 9 == h * 16)
		return 5;
	if (w * 10 == h * 16)
		return 6;
	if (w * 4 == h * 5 || w * 9 == h * 15)
		return 7;
	return 10;
}

static void detailed_timing(uint8_t *d, uint32_t w, uint32_t h)
{
	uint32_t hblank = RB_H_BLANK, vsync = cvt_vsync(w, h), vblank, htotal, vtotal;
	uint32_t refresh = REFRESH_HZ, wmm, hmm;
	uint64_t clock_10khz;

	/* Lines needed so the vertical blank lasts at least 460 us. */
	for (;;) {
		/* line period (ns) ~= (frame period - min vblank) / active lines */
		uint64_t frame_ns = 1000000000ull / refresh;
		uint64_t line_ns = (frame_ns - RB_MIN_VBI_US * 1000ull) / h;
		uint32_t min_lines = RB_V_FRONT + vsync + RB_V_BACK_MIN;
		vblank = (uint32_t)(RB_MIN_VBI_US * 1000ull / (line_ns ? line_ns : 1)) + 1;
		if (vblank < min_lines)
			vblank = min_lines;
		htotal = w + hblank;
		vtotal = h + vblank;
		/*
		 * CVT rounds to 0.25 MHz steps; we round to the field's 10 kHz
		 * unit instead so small modes keep a refresh rate near 60 Hz.
		 */
		clock_10khz = ((uint64_t)htotal * vtotal * refresh + 5000) / 10000;
		if (clock_10khz <= DT_MAX_CLOCK_10KHZ || refresh <= 24)
			break;
		/* Too fast for the 16-bit field: drop the refresh rate instead. */
		refresh = refresh > 30 ? 30 : 24;
	}
	if (clock_10khz > DT_MAX_CLOCK_10KHZ)
		clock_10khz = DT_MAX_CLOCK_10KHZ;

	/* Physical size as if the panel had ~96 DPI. */
	wmm = w * 254 / 960;
	hmm = h * 254 / 960;
	wmm = wmm < 1 ? 1 : wmm > 4095 ? 4095 : wmm;
	hmm = hmm < 1 ? 1 : hmm > 4095 ? 4095 : hmm;

	d[0] = clock_10khz & 0xff;
	d[1] = clock_10khz >> 8;
	d[2] = w & 0xff;
	d[3] = hblank & 0xff;
	d[4] = (uint8_t)(((w >> 8) & 0xf) << 4 | ((hblank >> 8) & 0xf));
	d[5] = h & 0xff;
	d[6] = vblank & 0xff;
	d[7] = (uint8_t)(((h >> 8) & 0xf) << 4 | ((vblank >> 8) & 0xf));
	d[8] = RB_H_FRONT;
	d[9] = RB_H_SYNC;
	d[10] = (uint8_t)((RB_V_FRONT & 0xf) << 4 | (vsync & 0xf));
	d[11] = 0; /* all offsets/widths fit in their low bits */
	d[12] = wmm & 0xff;
	d[13] = hmm & 0xff;
	d[14] = (uint8_t)(((wmm >> 8) & 0xf) << 4 | ((hmm >> 8) & 0xf));
	d[15] = 0;
	d[16] = 0;
	/* Digital separate sync, hsync positive, vsync negative (the CVT-RB polarity). */
	d[17] = 0x18 | 0x02;
}

static void text_descriptor(uint8_t *d, uint8_t tag, const char *s)
{
	size_t n = strlen(s);

	memset(d, 0, 18);
	d[3] = tag;
	if (n > 12)
		n = 12;
	memcpy(d + 5, s, n);
	/* Terminated by a newline, padded with spaces (EDID rule for strings). */
	d[5 + n] = '\n';
	for (size_t i = 5 + n + 1; i < 18; i++)
		d[i] = ' ';
}

static void range_limits(uint8_t *d, const uint8_t *dt)
{
	uint32_t clock_10khz = dt[0] | (uint32_t)dt[1] << 8;
	uint32_t max_clock_10mhz = (clock_10khz + 999) / 1000 + 1;

	memset(d, 0, 18);
	d[3] = 0xfd;
	d[5] = 24;  /* min vertical Hz */
	d[6] = 75;  /* max vertical Hz */
	d[7] = 30;  /* min horizontal kHz */
	d[8] = 160; /* max horizontal kHz */
	d[9] = (uint8_t)(max_clock_10mhz > 255 ? 255 : max_clock_10mhz);
	d[10] = 0x01; /* range limits only, no secondary timing formula */
	d[11] = '\n';
	for (int i = 12; i < 18; i++)
		d[i] = ' ';
}

void vgs_edid_generate(uint32_t width, uint32_t height, uint32_t serial, uint8_t out[VGS_EDID_SIZE])
{
	/* sRGB primaries and D65 white as 10-bit CIE fractions (value * 1024). */
	static const uint16_t chroma[8] = { 655, 338, 307, 614, 154, 61, 320, 337 };
	uint32_t w = width ? width : 1024, h = height ? height : 768, cmw, cmh;
	unsigned sum = 0;
	uint8_t *p = out;

	/* Larger modes cannot be expressed in a base block; the guest still gets them via
	 * GET_DISPLAY_INFO. */
	if (w > DT_MAX_ACTIVE)
		w = DT_MAX_ACTIVE;
	if (h > DT_MAX_ACTIVE)
		h = DT_MAX_ACTIVE;

	memset(out, 0, VGS_EDID_SIZE);
	static const uint8_t header[8] = { 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00 };
	memcpy(p, header, 8);
	/* Manufacturer "VSH": three 5-bit letters, big-endian. */
	uint16_t mfg = (uint16_t)(('V' - '@') << 10 | ('S' - '@') << 5 | ('H' - '@'));
	p[8] = mfg >> 8;
	p[9] = mfg & 0xff;
	p[10] = 0x01; /* product code, little-endian */
	p[11] = 0x00;
	p[12] = serial & 0xff;
	p[13] = (serial >> 8) & 0xff;
	p[14] = (serial >> 16) & 0xff;
	p[15] = (serial >> 24) & 0xff;
	p[16] = 1;           /* week */
	p[17] = 2024 - 1990; /* year */
	p[18] = 1;           /* EDID 1.4 */
	p[19] = 4;
	p[20] = 0xa5; /* digital, 8 bits per colour, DisplayPort */
	cmw = (w * 254 / 960 + 5) / 10;
	cmh = (h * 254 / 960 + 5) / 10;
	p[21] = (uint8_t)(cmw ? (cmw > 255 ? 255 : cmw) : 1);
	p[22] = (uint8_t)(cmh ? (cmh > 255 ? 255 : cmh) : 1);
	p[23] = 120; /* gamma 2.2 */
	/* RGB 4:4:4, sRGB default, preferred timing is native, continuous frequency. */
	p[24] = 0x04 | 0x02 | 0x01;
	p[25] = (uint8_t)((chroma[0] & 3) << 6 | (chroma[1] & 3) << 4 | (chroma[2] & 3) << 2 |
	                  (chroma[3] & 3));
	p[26] = (uint8_t)((chroma[4] & 3) << 6 | (chroma[5] & 3) << 4 | (chroma[6] & 3) << 2 |
	                  (chroma[7] & 3));
	for (int i = 0; i < 8; i++)
		p[27 + i] = (uint8_t)(chroma[i] >> 2);
	/* Established timings: 640x480@60, 800x600@60, 1024x768@60. */
	p[35] = 0x21;
	p[36] = 0x08;
	p[37] = 0x00;
	for (int i = 0; i < 8; i++) {
		p[38 + 2 * i] = (uint8_t)(std_modes[i].w / 8 - 31);
		p[39 + 2 * i] = (uint8_t)(std_modes[i].aspect << 6 | (REFRESH_HZ - 60));
	}
	detailed_timing(p + 54, w, h);
	range_limits(p + 72, p + 54);
	text_descriptor(p + 90, 0xfc, "vshm-gpu");
	/* Dummy descriptor fills the last slot. */
	p[108 + 3] = 0x10;
	p[126] = 0; /* no extension blocks */
	for (int i = 0; i < 127; i++)
		sum += p[i];
	p[127] = (uint8_t)(256 - (sum & 0xff)) & 0xff;
}
