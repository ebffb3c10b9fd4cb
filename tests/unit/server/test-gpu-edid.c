/* SPDX-License-Identifier: MIT */
/*
 * test-gpu-edid.c - the synthetic EDID base block: structure, checksum,
 * preferred timing, descriptors, for a range of modes.
 */
#include "gpu-test-util.h"

struct dtd {
	uint32_t clock_khz, ha, hb, va, vb, hfp, hsw, vfp, vsw, wmm, hmm;
	uint8_t flags;
};

static struct dtd parse_dtd(const uint8_t *d)
{
	struct dtd t;
	t.clock_khz = (d[0] | (uint32_t)d[1] << 8) * 10;
	t.ha = d[2] | (uint32_t)(d[4] >> 4) << 8;
	t.hb = d[3] | (uint32_t)(d[4] & 0xf) << 8;
	t.va = d[5] | (uint32_t)(d[7] >> 4) << 8;
	t.vb = d[6] | (uint32_t)(d[7] & 0xf) << 8;
	t.hfp = d[8] | (uint32_t)(d[11] >> 6) << 8;
	t.hsw = d[9] | (uint32_t)((d[11] >> 4) & 3) << 8;
	t.vfp = (d[10] >> 4) | (uint32_t)((d[11] >> 2) & 3) << 4;
	t.vsw = (d[10] & 0xf) | (uint32_t)(d[11] & 3) << 4;
	t.wmm = d[12] | (uint32_t)(d[14] >> 4) << 8;
	t.hmm = d[13] | (uint32_t)(d[14] & 0xf) << 8;
	t.flags = d[17];
	return t;
}

static void check_block(const uint8_t *e, uint32_t w, uint32_t h)
{
	static const uint8_t header[8] = { 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0 };
	unsigned sum = 0;
	struct dtd t;
	bool name = false, range = false;

	for (int i = 0; i < 128; i++)
		sum += e[i];
	CHECK_EQ(sum % 256, 0);
	CHECK_MEM_EQ(e, header, 8);
	CHECK_EQ(e[18], 1);
	CHECK_EQ(e[19], 4);
	CHECK(e[20] & 0x80); /* digital input */
	CHECK(e[24] & 0x02); /* first DTD is the preferred, native mode */
	CHECK_EQ(e[126], 0); /* no extensions */
	CHECK(e[21] > 0 && e[22] > 0);
	/* Manufacturer id: three letters A..Z. */
	uint16_t m = (uint16_t)(e[8] << 8 | e[9]);
	CHECK(((m >> 10) & 31) >= 1 && ((m >> 10) & 31) <= 26);
	t = parse_dtd(e + 54);
	CHECK_EQ(t.ha, w);
	CHECK_EQ(t.va, h);
	CHECK(t.clock_khz > 0);
	CHECK(t.hb >= t.hfp + t.hsw);
	CHECK(t.vb >= t.vfp + t.vsw + 1);
	/* Refresh rate is 60 Hz (or a lower standard rate for huge modes), within 1 Hz. */
	double hz = t.clock_khz * 1000.0 / ((t.ha + t.hb) * (double)(t.va + t.vb));
	CHECK((hz > 59.0 && hz < 61.0) || (hz > 23.0 && hz < 31.0));
	/* Vertical blank of at least 460 us. */
	double line_us = (t.ha + t.hb) * 1000.0 / t.clock_khz;
	CHECK(t.vb * line_us >= 450.0);
	CHECK(t.wmm > 0 && t.hmm > 0);
	CHECK(t.flags & 0x18);
	for (int d = 72; d < 126; d += 18) {
		const uint8_t *p = e + d;
		CHECK(p[0] == 0 && p[1] == 0 && p[2] == 0); /* display descriptors */
		if (p[3] == 0xfc) {
			CHECK(memcmp(p + 5, "vshm-gpu\n", 9) == 0);
			name = true;
		}
		if (p[3] == 0xfd) {
			CHECK(p[5] <= 60 && p[6] >= 60);
			CHECK(p[9] * 10000u >= t.clock_khz);
			range = true;
		}
	}
	CHECK(name);
	CHECK(range);
}

TEST(edid_common_modes)
{
	static const uint32_t modes[][2] = {
		{ 1024, 768 },  { 1280, 720 },  { 1280, 800 },  { 1920, 1080 },
		{ 2560, 1440 }, { 3840, 2160 }, { 640, 480 },   { 800, 600 },
		{ 1366, 768 },  { 333, 222 },   { 4095, 4095 }, { 1, 1 },
	};
	uint8_t e[VGS_EDID_SIZE];
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		vgs_edid_generate(modes[i][0], modes[i][1], (uint32_t)i, e);
		check_block(e, modes[i][0], modes[i][1]);
	}
}

TEST(edid_1080p_timing)
{
	uint8_t e[VGS_EDID_SIZE];
	struct dtd t;
	vgs_edid_generate(1920, 1080, 1, e);
	t = parse_dtd(e + 54);
	/* CVT-RB: 160-pixel horizontal blank, 48 front porch, 32 sync; about 138.5 MHz. */
	CHECK_EQ(t.hb, 160);
	CHECK_EQ(t.hfp, 48);
	CHECK_EQ(t.hsw, 32);
	CHECK_EQ(t.vfp, 3);
	CHECK_EQ(t.vsw, 5); /* 16:9 */
	CHECK(t.clock_khz >= 138000 && t.clock_khz <= 139000);
	/* Standard timings include 1920x1080 at 60 Hz: (1920/8 - 31), aspect 16:9. */
	bool found = false;
	for (int i = 38; i < 54; i += 2)
		if (e[i] == 1920 / 8 - 31 && e[i + 1] == 0xc0)
			found = true;
	CHECK(found);
	/* Serial number lands little-endian at bytes 12..15. */
	CHECK_EQ(e[12], 1);
}

TEST(edid_clamps_oversized_modes)
{
	uint8_t e[VGS_EDID_SIZE];
	struct dtd t;
	vgs_edid_generate(8192, 8192, 0, e);
	t = parse_dtd(e + 54);
	CHECK_EQ(t.ha, 4095);
	CHECK_EQ(t.va, 4095);
	unsigned sum = 0;
	for (int i = 0; i < 128; i++)
		sum += e[i];
	CHECK_EQ(sum % 256, 0);
	/* 0x0 falls back to 1024x768. */
	vgs_edid_generate(0, 0, 0, e);
	check_block(e, 1024, 768);
}
