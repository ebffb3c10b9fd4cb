/* SPDX-License-Identifier: MIT */
/*
 * test-crosvm-params.c - crosvm's --params JSON: the keys that apply, the
 * ones accepted and ignored, and refusals (unknown keys, wrong types,
 * hostile sizes, 3D backends, context types) that must name the problem.
 */
#include <errno.h>
#include <string.h>

#include "crosvm_params.h"
#include "test-runner.h"

static struct vgs_crosvm_params p;
static char err[512];

static int parse(const char *json)
{
	return vgs_crosvm_params_parse(json, &p, err, sizeof(err));
}

/* Refused, with @needle in the message. */
static void refused(const char *json, const char *needle)
{
	CHECK_EQ(parse(json), -EINVAL);
	if (!strstr(err, needle)) {
		fprintf(stderr, "'%s' -> '%s' (wanted '%s')\n", json, err, needle);
		CHECK(0);
	}
	CHECK_EQ(p.num_displays, 0); /* nothing half-applied */
}

TEST(good_params)
{
	CHECK_OK(parse("{}"));
	CHECK_OK(parse("{\"context-types\": \"\", \"backend\": \"2d\"}"));
	CHECK_OK(parse("{\"backend\": \"2D\", \"egl\": true, \"gles\": false, \"glx\": false,"
	               " \"surfaceless\": true, \"vulkan\": false, \"wsi\": \"vk\","
	               " \"cache-path\": \"/tmp\", \"cache-size\": \"16M\"}"));
	CHECK_OK(parse("{\"displays\": [{\"mode\": {\"windowed\": [1920, 1080]},"
	               " \"refresh-rate\": 75, \"dpi\": [96, 96]},"
	               " {\"hidden\": true}], \"max-num-displays\": 4,"
	               " \"pci-bar-size\": 4294967296, \"udmabuf\": true}"));
	CHECK_EQ(p.num_displays, 2);
	CHECK_EQ(p.displays[0].width, 1920);
	CHECK_EQ(p.displays[0].height, 1080);
	CHECK_EQ(p.displays[0].refresh_rate, 75);
	CHECK_EQ(p.displays[0].dpi[0], 96);
	CHECK(!p.displays[0].hidden);
	CHECK_EQ(p.displays[1].width, 1280); /* crosvm's default mode */
	CHECK_EQ(p.displays[1].height, 1024);
	CHECK(p.displays[1].hidden);
	CHECK_EQ(p.max_num_displays, 4);
	CHECK(p.pci_bar_size == (4ull << 30));
	CHECK(p.udmabuf);
	CHECK_OK(parse("{\"width\": 800, \"height\": 600}"));
	CHECK_EQ(p.width, 800);
	CHECK_EQ(p.height, 600);
	CHECK_EQ(p.num_displays, 0);
}

TEST(unknown_keys_are_named)
{
	refused("{\"frobnicate\": 1}", "unknown key 'frobnicate'");
	refused("{\"displays\": [{\"mode\": {\"windowed\": [640, 480]}, \"colour\": 1}]}",
	        "unknown key 'colour' in displays[0]");
	refused("{\"displays\": [{\"mode\": {\"fullscreen\": [640, 480]}}]}", "windowed");
	refused("{\"displays\": [{\"mode\": {\"windowed\": [640, 480], \"x\": 1}}]}", "windowed");
}

TEST(wrong_types)
{
	refused("[]", "must be an object");
	refused("{\"width\": \"800\"}", "'width' must be an integer");
	refused("{\"width\": 800.5}", "'width' must be an integer");
	refused("{\"udmabuf\": 1}", "'udmabuf' must be a boolean");
	refused("{\"egl\": \"yes\"}", "'egl' must be a boolean");
	refused("{\"displays\": {}}", "'displays' must be an array");
	refused("{\"displays\": [1]}", "displays[0] must be an object");
	refused("{\"displays\": [{\"mode\": {\"windowed\": [640]}}]}", "two integers");
	refused("{\"displays\": [{\"hidden\": null}]}", "must be a boolean");
	refused("{\"context-types\": 5}", "must be a string");
	refused("{\"width\": 800", "not valid JSON");
	refused("{\"width\": 800} trailing", "not valid JSON");
	refused("", "empty");
}

TEST(hostile_sizes)
{
	refused("{\"width\": 0}", "outside 1..16384");
	refused("{\"width\": 16385}", "outside");
	refused("{\"width\": -1}", "negative");
	refused("{\"height\": 99999999999999999999999}", "'height'");
	refused("{\"pci-bar-size\": 18446744073709551615}", "outside");
	refused("{\"pci-bar-size\": 9223372036854775807}", "outside");
	refused("{\"pci-bar-size\": -4096}", "negative");
	refused("{\"pci-bar-size\": 4096}", "outside");
	refused("{\"pci-bar-size\": 3221225472}", "power of two");
	refused("{\"max-num-displays\": 17}", "outside");
	refused("{\"displays\": [{}, {}, {}], \"max-num-displays\": 2}", "max-num-displays is 2");
	refused("{\"displays\": [{\"refresh-rate\": 0}]}", "refresh-rate");
	refused("{\"displays\": [{\"dpi\": [0, 96]}]}", "dpi");
	{
		/* 17 displays */
		char buf[512] = "{\"displays\": [{}";
		for (int i = 1; i < 17; i++)
			strcat(buf, ", {}");
		strcat(buf, "]}");
		refused(buf, "at most 16");
	}
	{
		/* Deep nesting and huge input are bounded. */
		static char deep[4096];
		memset(deep, '[', 2000);
		deep[2000] = '\0';
		CHECK_EQ(parse(deep), -EINVAL);
		static char big[80 * 1024];
		memset(big, ' ', sizeof(big) - 1);
		big[0] = '{';
		big[sizeof(big) - 2] = '}';
		refused(big, "longer than");
	}
}

TEST(renderers_and_context_types)
{
	refused("{\"backend\": \"virglrenderer\"}", "3D rendering is not supported");
	refused("{\"backend\": \"3D\"}", "3D rendering is not supported");
	refused("{\"backend\": \"gfxstream\"}", "3D rendering is not supported");
	refused("{\"backend\": \"metal\"}", "unknown backend 'metal'");
	refused("{\"context-types\": \"virgl:virgl2:cross-domain\"}",
	        "context type 'virgl' needs a 3D renderer");
	refused("{\"context-types\": \"cross-domain\"}", "supported context types: none");
	refused("{\"context-types\": \"teapot\"}", "unknown context type 'teapot'");
	refused("{\"wsi\": \"x11\"}", "unknown wsi");
}
