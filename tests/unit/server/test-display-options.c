/* SPDX-License-Identifier: MIT */
/*
 * test-display-options.c - vshm-gpu's display consumer options:
 * --display PATH[,scanouts=LIST][,role=NAME], --heartbeat-ms,
 * --release-timeout-ms, --consumer-deadline-ms.
 */
#include <errno.h>
#include <string.h>

#include "options.h"
#include "test-runner.h"

static int parse(struct vgs_options *o, const char *a, const char *b, const char *c)
{
	char *argv[] = {
		"vshm-gpu", "--socket-path=/tmp/x", "--scanouts=4", (char *)a, (char *)b, (char *)c,
		NULL
	};
	int argc = 3 + (a != NULL) + (b != NULL) + (c != NULL);
	char err[256];

	return vgs_options_parse(argc, argv, o, err, sizeof(err));
}

TEST(display_defaults_and_lists)
{
	struct vgs_options o;

	CHECK_OK(parse(&o, NULL, NULL, NULL));
	CHECK_EQ(o.num_displays, 0);
	CHECK_EQ(o.heartbeat_ms, 0);
	CHECK_OK(parse(&o, "--display=/run/a.sock", "--display=/run/b.sock,scanouts=0,2-3,role=ivi",
	               "--display=/run/c.sock,role=cluster,scanouts=1"));
	CHECK_EQ(o.num_displays, 3);
	CHECK(!strcmp(o.displays[0].path, "/run/a.sock"));
	CHECK_EQ(o.displays[0].scanouts, 0);
	CHECK_EQ(o.displays[0].role[0], 0);
	CHECK(!strcmp(o.displays[1].path, "/run/b.sock"));
	CHECK_EQ(o.displays[1].scanouts, 0xd);
	CHECK(!strcmp(o.displays[1].role, "ivi"));
	CHECK_EQ(o.displays[2].scanouts, 0x2);
	CHECK(!strcmp(o.displays[2].role, "cluster"));
}

TEST(display_timing_options)
{
	struct vgs_options o;

	CHECK_OK(parse(&o, "--heartbeat-ms=16", "--release-timeout-ms=40",
	               "--consumer-deadline-ms=500"));
	CHECK_EQ(o.heartbeat_ms, 16);
	CHECK_EQ(o.release_timeout_ms, 40);
	CHECK_EQ(o.consumer_deadline_ms, 500);
}

TEST(display_bad_values)
{
	static const char *const bad[] = {
		"--display=",
		"--display=,scanouts=0",
		"--display=/a,scanouts=",
		"--display=/a,scanouts=4", /* >= --scanouts=4 */
		"--display=/a,scanouts=2-1",
		"--display=/a,scanouts=x",
		"--display=/a,role=",
		"--display=/a,role=bad role",
		"--display=/a,role=0123456789012345678901234567890123",
		"--display=/a,colour=red",
		"--display=/a,scanouts=0,scanouts=1",
		"--heartbeat-ms=4",
		"--heartbeat-ms=10001",
		"--release-timeout-ms=0",
		"--consumer-deadline-ms=9",
	};
	struct vgs_options o;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(&o, bad[i], NULL, NULL) != -EINVAL)
			vshm_test_fail(__FILE__, __LINE__, "accepted %s", bad[i]);
	CHECK_EQ(parse(&o, "--display=/a", "--display=/a", NULL), -EINVAL);
}
