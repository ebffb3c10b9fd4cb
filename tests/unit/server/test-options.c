/* SPDX-License-Identifier: MIT */
/*
 * test-options.c - vshm-gpu command line parsing, good and bad.
 */
#include <errno.h>
#include <string.h>

#include "options.h"
#include "test-runner.h"

#define ARGV(...) ((char *[]){ "vshm-gpu", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "vshm-gpu", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(o, err, ...)                                                                         \
	vgs_options_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (o), (err), sizeof(err))

static void expect_bad(int r, const char *err, const char *needle)
{
	CHECK_EQ(r, -EINVAL);
	if (!strstr(err, needle))
		vshm_test_fail(__FILE__, __LINE__, "error '%s' does not mention '%s'", err, needle);
}

TEST(socket_path_defaults)
{
	struct vgs_options o;
	char err[256];

	CHECK_OK(PARSE(&o, err, "--socket-path=/tmp/x.sock"));
	CHECK_EQ(o.action, VGS_ACTION_RUN);
	CHECK(!strcmp(o.socket_path, "/tmp/x.sock"));
	CHECK_EQ(o.fd, -1);
	CHECK_EQ(o.num_scanouts, 1);
	CHECK_EQ(o.mode_mask, 0);
	CHECK_EQ(o.log_level, 2);
	CHECK(!o.virgl);
	CHECK(!o.render_node);
	CHECK_EQ(o.max_resources, 0);
	CHECK_EQ(o.max_host_memory, 0);
}

TEST(fd_and_short_options)
{
	struct vgs_options o;
	char err[256];

	CHECK_OK(PARSE(&o, err, "-f", "3"));
	CHECK_EQ(o.fd, 3);
	CHECK(!o.socket_path);
	CHECK_OK(PARSE(&o, err, "-s", "/tmp/a", "-r", "/dev/dri/renderD128", "-v"));
	CHECK(!strcmp(o.socket_path, "/tmp/a"));
	CHECK(!strcmp(o.render_node, "/dev/dri/renderD128"));
	CHECK(o.virgl);
}

TEST(all_long_options)
{
	struct vgs_options o;
	char err[256];

	CHECK_OK(PARSE(&o, err, "--fd=7", "--scanouts=4", "--mode=1920x1080", "--mode=800x600@3",
	               "--mode", "1024x768", "--log-level=debug", "--max-resources=100",
	               "--max-host-memory=64M", "--render-node", "/dev/null", "--virgl"));
	CHECK_EQ(o.fd, 7);
	CHECK_EQ(o.num_scanouts, 4);
	CHECK_EQ(o.mode_mask, 0xb);
	CHECK_EQ(o.width[0], 1920);
	CHECK_EQ(o.height[0], 1080);
	CHECK_EQ(o.width[1], 1024);
	CHECK_EQ(o.height[1], 768);
	CHECK_EQ(o.width[3], 800);
	CHECK_EQ(o.height[3], 600);
	CHECK_EQ(o.log_level, 3);
	CHECK_EQ(o.max_resources, 100);
	CHECK_EQ(o.max_host_memory, 64ull << 20);
	CHECK(o.virgl);
}

TEST(sizes)
{
	struct vgs_options o;
	char err[256];

	CHECK_OK(PARSE(&o, err, "--fd=0", "--max-host-memory=2G"));
	CHECK_EQ(o.max_host_memory, 2ull << 30);
	CHECK_OK(PARSE(&o, err, "--fd=0", "--max-host-memory=4096k"));
	CHECK_EQ(o.max_host_memory, 4ull << 20);
	CHECK_OK(PARSE(&o, err, "--fd=0", "--max-host-memory=1048576"));
	CHECK_EQ(o.max_host_memory, 1ull << 20);
	expect_bad(PARSE(&o, err, "--fd=0", "--max-host-memory=1K"), err, "max-host-memory");
	expect_bad(PARSE(&o, err, "--fd=0", "--max-host-memory=12X"), err, "max-host-memory");
	expect_bad(PARSE(&o, err, "--fd=0", "--max-host-memory=-5M"), err, "max-host-memory");
	expect_bad(PARSE(&o, err, "--fd=0", "--max-host-memory=99999999999999999999G"), err,
	           "max-host-memory");
	expect_bad(PARSE(&o, err, "--fd=0", "--max-host-memory=4MB"), err, "max-host-memory");
}

TEST(actions_win)
{
	struct vgs_options o;
	char err[256];

	CHECK_OK(PARSE(&o, err, "--help"));
	CHECK_EQ(o.action, VGS_ACTION_HELP);
	CHECK_OK(PARSE(&o, err, "-V"));
	CHECK_EQ(o.action, VGS_ACTION_VERSION);
	/* --print-capabilities ignores everything else, even garbage. */
	CHECK_OK(PARSE(&o, err, "--bogus", "--scanouts=99", "--print-capabilities"));
	CHECK_EQ(o.action, VGS_ACTION_PRINT_CAPABILITIES);
	CHECK_OK(PARSE(&o, err, "-c"));
	CHECK_EQ(o.action, VGS_ACTION_PRINT_CAPABILITIES);
	CHECK(strstr(vgs_options_usage(), "--socket-path"));
}

TEST(bad_options)
{
	struct vgs_options o;
	char err[256];

	expect_bad(PARSE(&o, err, "--socket-path=/a", "--fd=3"), err, "mutually exclusive");
	expect_bad(PARSE(&o, err, "--scanouts=2"), err, "required");
	expect_bad(PARSE(&o, err, "--fd=3", "--bogus"), err, "--bogus");
	expect_bad(PARSE(&o, err, "--fd=3", "-x"), err, "-x");
	expect_bad(PARSE(&o, err, "--fd"), err, "needs an argument");
	expect_bad(PARSE(&o, err, "--fd=abc"), err, "--fd");
	expect_bad(PARSE(&o, err, "--fd=-1"), err, "--fd");
	expect_bad(PARSE(&o, err, "--fd=3", "extra"), err, "extra");
	expect_bad(PARSE(&o, err, "--fd=3", "--scanouts=0"), err, "--scanouts");
	expect_bad(PARSE(&o, err, "--fd=3", "--scanouts=17"), err, "--scanouts");
	expect_bad(PARSE(&o, err, "--fd=3", "--scanouts=2x"), err, "--scanouts");
	expect_bad(PARSE(&o, err, "--fd=3", "--mode=800"), err, "--mode");
	expect_bad(PARSE(&o, err, "--fd=3", "--mode=0x600"), err, "--mode");
	expect_bad(PARSE(&o, err, "--fd=3", "--mode=800x600@16"), err, "--mode");
	expect_bad(PARSE(&o, err, "--fd=3", "--mode=800x600@"), err, "--mode");
	expect_bad(PARSE(&o, err, "--fd=3", "--mode=99999x600"), err, "--mode");
	expect_bad(PARSE(&o, err, "--fd=3", "--mode=800x600x"), err, "--mode");
	/* A mode for scanout 1 with only one scanout. */
	expect_bad(PARSE(&o, err, "--fd=3", "--mode=800x600@1"), err, "--scanouts");
	expect_bad(PARSE(&o, err, "--fd=3", "--mode=800x600", "--mode=640x480"), err, "--scanouts");
	expect_bad(PARSE(&o, err, "--fd=3", "--log-level=loud"), err, "--log-level");
	expect_bad(PARSE(&o, err, "--fd=3", "--max-resources=0"), err, "--max-resources");
	expect_bad(PARSE(&o, err, "--fd=3", "--max-resources=99999999"), err, "--max-resources");
	expect_bad(PARSE(&o, err, "--socket-path="), err, "empty");
	expect_bad(PARSE(&o, err, "--fd=3", "--render-node="), err, "empty");
}

TEST(repeat_parsing_resets_state)
{
	struct vgs_options o;
	char err[256];

	expect_bad(PARSE(&o, err, "--fd=3", "--bogus"), err, "bogus");
	CHECK_OK(PARSE(&o, err, "--fd=4", "--scanouts=2"));
	CHECK_EQ(o.fd, 4);
	CHECK_EQ(o.num_scanouts, 2);
	CHECK_OK(PARSE(&o, err, "--fd=5"));
	CHECK_EQ(o.num_scanouts, 1);
}
