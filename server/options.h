/* SPDX-License-Identifier: MIT */
/*
 * options.h - vshm-gpu command line.
 *
 * Parsing is kept apart from the daemon so it can be tested on its own: it
 * depends on nothing but libc and display.h's limits, and it never exits
 * or prints. Zero in a numeric field means "the device model's default".
 */
#ifndef VGS_OPTIONS_H
#define VGS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "display.h"

/* --sandbox (server/sandbox.h): the seccomp filter installed after start-up. */
enum vgs_sandbox_mode {
	VGS_SANDBOX_OFF,
	VGS_SANDBOX_LOG,
	VGS_SANDBOX_ON,
};

enum vgs_options_action {
	VGS_ACTION_RUN,
	VGS_ACTION_HELP,
	VGS_ACTION_VERSION,
	VGS_ACTION_PRINT_CAPABILITIES,
};

/* --display PATH[,scanouts=LIST][,role=NAME] */
#define VGS_OPT_MAX_DISPLAYS 8
#define VGS_OPT_DISPLAY_PATH 108 /* sun_path, NUL included */
#define VGS_OPT_DISPLAY_ROLE 32  /* HELLO role, NUL included */

struct vgs_display_opt {
	char path[VGS_OPT_DISPLAY_PATH];
	uint32_t scanouts;               /* bit n = scanout n may be served; 0 = all */
	char role[VGS_OPT_DISPLAY_ROLE]; /* "" = any role */
};

struct vgs_options {
	enum vgs_options_action action;
	const char *socket_path; /* --socket-path (points into argv) */
	int fd;                  /* --fd, -1 when absent */
	const char *render_node; /* --render-node (points into argv), NULL when absent */
	bool virgl;              /* --virgl */
	uint32_t num_scanouts;   /* --scanouts, 1..VGS_MAX_SCANOUTS (default 1) */
	/* --mode per scanout; bit n of mode_mask = scanout n has one. */
	uint32_t width[VGS_MAX_SCANOUTS], height[VGS_MAX_SCANOUTS];
	uint32_t mode_mask;
	int log_level;            /* enum vshm_log_level value; default 2 (info) */
	uint32_t max_resources;   /* --max-resources, 0 = default */
	uint64_t max_host_memory; /* --max-host-memory in bytes, 0 = default */
	/* Display consumer sockets and their timing (0 = the consumers' default). */
	struct vgs_display_opt displays[VGS_OPT_MAX_DISPLAYS];
	unsigned num_displays;
	uint32_t heartbeat_ms;         /* --heartbeat-ms, 5..10000 */
	uint32_t release_timeout_ms;   /* --release-timeout-ms, 1..60000 */
	uint32_t consumer_deadline_ms; /* --consumer-deadline-ms, 10..600000 */
	/* crosvm compatibility (server/compat.h, docs/compatibility.md). */
	const char *crosvm_params;  /* --params JSON (points into argv), NULL when absent */
	uint64_t host_visible_size; /* --host-visible-size in bytes (0 = no region) */
	bool host_visible_set;      /* --host-visible-size was given */
	bool crosvm_legacy_shmem;   /* --crosvm-legacy-shmem */
	/* --sandbox, default off */
	enum vgs_sandbox_mode sandbox;
};

/* Limits enforced by the parser. */
#define VGS_OPT_MAX_DIM         16384u
#define VGS_OPT_MAX_RESOURCES   (1u << 20)
#define VGS_OPT_MIN_HOST_MEMORY (1ull << 20)
#define VGS_OPT_MAX_HOST_MEMORY (1ull << 40)

/*
 * Parse @argv into @opts. Returns 0, or -EINVAL with a one-line message in
 * @err (the caller prints it and exits 2). --print-capabilities anywhere
 * wins over everything else, including bad options, as QEMU's back-end
 * conventions require. Resets getopt state, so it may be called repeatedly.
 */
int vgs_options_parse(int argc, char *const argv[], struct vgs_options *opts, char *err,
                      size_t errlen);

/* The --help text. */
const char *vgs_options_usage(void);

/*
 * Format a command-line error into @err (@errlen bytes, may be 0) and
 * return -EINVAL: the one error path of every option parser (options.c,
 * crosvm_params.c).
 */
int vgs_option_error(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#endif
