/* SPDX-License-Identifier: MIT */
/*
 * options.c - vshm-gpu command line parsing (getopt_long).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

enum {
	OPT_SCANOUTS = 0x100,
	OPT_MODE,
	OPT_LOG_LEVEL,
	OPT_MAX_RESOURCES,
	OPT_MAX_HOST_MEMORY,
	OPT_PARAMS,
	OPT_HOST_VISIBLE_SIZE,
	OPT_CROSVM_LEGACY_SHMEM,
	OPT_WAYLAND_SOCK,
	OPT_X_DISPLAY,
	OPT_RESOURCE_BRIDGE,
	OPT_DISPLAY,
	OPT_HEARTBEAT_MS,
	OPT_RELEASE_TIMEOUT_MS,
	OPT_CONSUMER_DEADLINE_MS,
	OPT_SANDBOX,
};

/* Short letters follow QEMU's contrib back-end, so existing scripts keep working. */
static const char short_opts[] = ":s:f:cr:vhV";

static const struct option long_opts[] = {
	{ "socket-path", required_argument, NULL, 's' },
	{ "fd", required_argument, NULL, 'f' },
	{ "print-capabilities", no_argument, NULL, 'c' },
	{ "render-node", required_argument, NULL, 'r' },
	{ "virgl", no_argument, NULL, 'v' },
	{ "scanouts", required_argument, NULL, OPT_SCANOUTS },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "max-resources", required_argument, NULL, OPT_MAX_RESOURCES },
	{ "max-host-memory", required_argument, NULL, OPT_MAX_HOST_MEMORY },
	{ "display", required_argument, NULL, OPT_DISPLAY },
	{ "heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT_MS },
	{ "release-timeout-ms", required_argument, NULL, OPT_RELEASE_TIMEOUT_MS },
	{ "consumer-deadline-ms", required_argument, NULL, OPT_CONSUMER_DEADLINE_MS },
	{ "sandbox", required_argument, NULL, OPT_SANDBOX },
	/* crosvm's `crosvm device gpu` spellings */
	{ "socket", required_argument, NULL, 's' },
	{ "params", required_argument, NULL, OPT_PARAMS },
	{ "wayland-sock", required_argument, NULL, OPT_WAYLAND_SOCK },
	{ "x-display", required_argument, NULL, OPT_X_DISPLAY },
	{ "resource-bridge", required_argument, NULL, OPT_RESOURCE_BRIDGE },
	{ "host-visible-size", required_argument, NULL, OPT_HOST_VISIBLE_SIZE },
	{ "crosvm-legacy-shmem", no_argument, NULL, OPT_CROSVM_LEGACY_SHMEM },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static const char usage_text[] =
        "Usage: vshm-gpu [OPTION]...\n"
        "vhost-user virtio-gpu back-end (drop-in for QEMU's vhost-user-gpu).\n"
        "\n"
        "Connection (exactly one):\n"
        "  -s, --socket-path=PATH     listen on the UNIX socket PATH (a stale file is removed)\n"
        "  -f, --fd=FDNUM             serve the already-connected socket FDNUM\n"
        "\n"
        "Device:\n"
        "      --scanouts=N           number of scanouts, 1..16 (default 1); should match\n"
        "                             QEMU's max_outputs\n"
        "      --mode=WxH[@N]         preferred mode of scanout N (default: the next scanout\n"
        "                             without a mode); repeatable\n"
        "      --max-resources=N      live resources per guest\n"
        "      --max-host-memory=SIZE host memory for resource copies, SIZE[K|M|G]\n"
        "  -r, --render-node=PATH     DRM render node (checked; unused until 3D lands)\n"
        "  -v, --virgl                3D via virglrenderer (not supported yet: fails)\n"
        "\n"
        "Display consumers (docs/protocol.md; work with or without QEMU's display):\n"
        "      --display=PATH[,scanouts=LIST][,role=NAME]\n"
        "                             listen for display consumers on the UNIX socket\n"
        "                             PATH; LIST limits the scanouts served there (e.g.\n"
        "                             0,1 or 0-3; default all); NAME admits only vshm\n"
        "                             consumers of that HELLO role; repeatable (up to 8)\n"
        "      --heartbeat-ms=N       HEARTBEAT period, 5..10000 (default 100)\n"
        "      --release-timeout-ms=N reclaim unreleased frames after N ms, 1..60000\n"
        "                             (default 250)\n"
        "      --consumer-deadline-ms=N\n"
        "                             close a consumer that reads nothing for N ms,\n"
        "                             10..600000 (default 2000)\n"
        "\n"
        "Blobs and crosvm compatibility (docs/compatibility.md):\n"
        "      --host-visible-size=SIZE\n"
        "                             host-visible shared memory window for mappable\n"
        "                             blobs, SIZE[K|M|G], 0 = none (default 1G)\n"
        "      --crosvm-legacy-shmem  also offer crosvm's pre-2025-12 shared memory bit 31\n"
        "                             (implied by --params)\n"
        "      --params=JSON          crosvm GpuParameters: backend \"2d\", displays, width,\n"
        "                             height, max-num-displays, pci-bar-size, udmabuf\n"
        "      --socket=PATH          crosvm's alias of --socket-path\n"
        "\n"
        "Other:\n"
        "      --sandbox=MODE         seccomp filter once serving: off (default), log\n"
        "                             (log calls outside the allowlist) or on (they kill\n"
        "                             the process); needs a build with libseccomp\n"
        "  -c, --print-capabilities   print the back-end capabilities as JSON and exit\n"
        "      --log-level=LEVEL      error, warn, info (default) or debug\n"
        "  -h, --help                 show this help and exit\n"
        "  -V, --version              show the version and exit\n";

const char *vgs_options_usage(void)
{
	return usage_text;
}

int vgs_option_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Strict unsigned decimal: digits only, no sign, no overflow. */
static bool parse_u64(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*end = p;
	*out = v;
	return true;
}

static bool parse_u32_full(const char *s, uint32_t max, uint32_t *out)
{
	const char *end;
	uint64_t v;

	if (!parse_u64(s, &end, &v) || *end || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool parse_size(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v, mul = 1;

	if (!parse_u64(s, &end, &v))
		return false;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mul = 1ull << 10;
		break;
	case 'm':
	case 'M':
		mul = 1ull << 20;
		break;
	case 'g':
	case 'G':
		mul = 1ull << 30;
		break;
	default:
		return false;
	}
	if (*end && end[1])
		return false;
	if (v > UINT64_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

static int parse_log_level(const char *s)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i]))
			return i;
	if (s[0] >= '0' && s[0] <= '3' && !s[1])
		return s[0] - '0';
	if (!strcmp(s, "warning"))
		return 1;
	return -1;
}

/* "WxH" or "WxH@N"; *scanout = -1 when no "@N". */
static bool parse_mode(const char *s, uint32_t *w, uint32_t *h, int *scanout)
{
	const char *end;
	uint64_t v;

	if (!parse_u64(s, &end, &v) || (*end != 'x' && *end != 'X') || v < 1 || v > VGS_OPT_MAX_DIM)
		return false;
	*w = (uint32_t)v;
	if (!parse_u64(end + 1, &end, &v) || v < 1 || v > VGS_OPT_MAX_DIM)
		return false;
	*h = (uint32_t)v;
	*scanout = -1;
	if (*end == '@') {
		if (!parse_u64(end + 1, &end, &v) || v >= VGS_MAX_SCANOUTS)
			return false;
		*scanout = (int)v;
	}
	return *end == '\0';
}

/* "0,1", "0-3", "0-1,5": scanout ids < VGS_MAX_SCANOUTS; *mask gets the bits. */
static bool parse_scanout_list(const char *s, uint32_t *mask)
{
	const char *p = s, *end;
	uint64_t a, b;

	*mask = 0;
	for (;;) {
		if (!parse_u64(p, &end, &a) || a >= VGS_MAX_SCANOUTS)
			return false;
		b = a;
		if (*end == '-') {
			if (!parse_u64(end + 1, &end, &b) || b >= VGS_MAX_SCANOUTS || b < a)
				return false;
		}
		for (uint64_t i = a; i <= b; i++)
			*mask |= 1u << i;
		if (*end == '\0')
			return true;
		if (*end != ',')
			return false;
		p = end + 1;
	}
}

static bool role_char_ok(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

/*
 * PATH[,scanouts=LIST][,role=NAME]. LIST may itself contain commas: the
 * bare numbers and ranges after "scanouts=" continue the list.
 */
static int parse_display(const char *arg, struct vgs_display_opt *d, char *err, size_t errlen)
{
	const char *comma = strchr(arg, ',');
	size_t plen = comma ? (size_t)(comma - arg) : strlen(arg);
	char list[128] = "";
	bool have_list = false, have_role = false, in_list = false;

	memset(d, 0, sizeof(*d));
	if (plen == 0)
		return vgs_option_error(err, errlen, "--display: empty socket path");
	if (plen >= sizeof(d->path))
		return vgs_option_error(err, errlen, "--display: socket path longer than %zu bytes",
		                        sizeof(d->path) - 1);
	memcpy(d->path, arg, plen);
	while (comma) {
		const char *tok = comma + 1, *next = strchr(tok, ',');
		size_t len = next ? (size_t)(next - tok) : strlen(tok);

		comma = next;
		if (len > 9 && !strncmp(tok, "scanouts=", 9)) {
			if (have_list)
				return vgs_option_error(err, errlen,
				                        "--display: scanouts= given twice");
			have_list = in_list = true;
			if (len - 9 >= sizeof(list))
				return vgs_option_error(err, errlen,
				                        "--display: scanout list too long");
			memcpy(list, tok + 9, len - 9);
			list[len - 9] = '\0';
		} else if (len > 5 && !strncmp(tok, "role=", 5)) {
			if (have_role)
				return vgs_option_error(err, errlen,
				                        "--display: role= given twice");
			have_role = true;
			in_list = false;
			if (len - 5 >= sizeof(d->role))
				return vgs_option_error(err, errlen,
				                        "--display: role longer than %zu bytes",
				                        sizeof(d->role) - 1);
			for (size_t i = 5; i < len; i++)
				if (!role_char_ok(tok[i]))
					return vgs_option_error(
					        err, errlen,
					        "--display: role may use only [A-Za-z0-9._-]");
			memcpy(d->role, tok + 5, len - 5);
		} else if (in_list && len > 0 && tok[0] >= '0' && tok[0] <= '9') {
			size_t have = strlen(list);

			if (have + 1 + len >= sizeof(list))
				return vgs_option_error(err, errlen,
				                        "--display: scanout list too long");
			list[have] = ',';
			memcpy(list + have + 1, tok, len);
			list[have + 1 + len] = '\0';
		} else {
			return vgs_option_error(err, errlen, "--display: unknown sub-option '%.*s'",
			                        (int)len, tok);
		}
	}
	if (have_list && !parse_scanout_list(list, &d->scanouts))
		return vgs_option_error(err, errlen,
		                        "--display: scanouts='%s' is not a list like 0,1 or 0-3 "
		                        "(ids < %d)",
		                        list, VGS_MAX_SCANOUTS);
	return 0;
}

static void defaults(struct vgs_options *o)
{
	memset(o, 0, sizeof(*o));
	o->action = VGS_ACTION_RUN;
	o->fd = -1;
	o->num_scanouts = 1;
	o->log_level = 2;
}

int vgs_options_parse(int argc, char *const argv[], struct vgs_options *o, char *err, size_t errlen)
{
	uint32_t next_mode = 0;
	bool have_fd = false;
	int c;

	defaults(o);
	if (err && errlen)
		err[0] = '\0';

	/* --print-capabilities must work whatever else is on the line. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--print-capabilities") || !strcmp(argv[i], "-c")) {
			o->action = VGS_ACTION_PRINT_CAPABILITIES;
			return 0;
		}
	}

	optind = 0; /* glibc: full re-initialisation, so parsing can be repeated */
	opterr = 0;
	while ((c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1) {
		uint32_t w, h, u;
		uint64_t size;
		int idx;

		switch (c) {
		case 's':
			if (!optarg[0])
				return vgs_option_error(err, errlen, "--socket-path: empty path");
			o->socket_path = optarg;
			break;
		case 'f':
			if (!parse_u32_full(optarg, INT32_MAX, &u))
				return vgs_option_error(
				        err, errlen, "--fd: '%s' is not a file descriptor number",
				        optarg);
			o->fd = (int)u;
			have_fd = true;
			break;
		case 'c':
			o->action = VGS_ACTION_PRINT_CAPABILITIES;
			return 0;
		case 'r':
			if (!optarg[0])
				return vgs_option_error(err, errlen, "--render-node: empty path");
			o->render_node = optarg;
			break;
		case 'v':
			o->virgl = true;
			break;
		case OPT_SCANOUTS:
			if (!parse_u32_full(optarg, VGS_MAX_SCANOUTS, &u) || u < 1)
				return vgs_option_error(err, errlen,
				                        "--scanouts: '%s' is not in 1..%d", optarg,
				                        VGS_MAX_SCANOUTS);
			o->num_scanouts = u;
			break;
		case OPT_MODE:
			if (!parse_mode(optarg, &w, &h, &idx))
				return vgs_option_error(
				        err, errlen,
				        "--mode: '%s' is not WxH[@N] (1..%u pixels, N < %d)",
				        optarg, VGS_OPT_MAX_DIM, VGS_MAX_SCANOUTS);
			if (idx < 0) {
				if (next_mode >= VGS_MAX_SCANOUTS)
					return vgs_option_error(err, errlen,
					                        "--mode: more than %d modes",
					                        VGS_MAX_SCANOUTS);
				idx = (int)next_mode++;
			}
			o->width[idx] = w;
			o->height[idx] = h;
			o->mode_mask |= 1u << idx;
			break;
		case OPT_LOG_LEVEL:
			o->log_level = parse_log_level(optarg);
			if (o->log_level < 0)
				return vgs_option_error(
				        err, errlen,
				        "--log-level: '%s' is not error, warn, info or debug",
				        optarg);
			break;
		case OPT_MAX_RESOURCES:
			if (!parse_u32_full(optarg, VGS_OPT_MAX_RESOURCES, &u) || u < 1)
				return vgs_option_error(err, errlen,
				                        "--max-resources: '%s' is not in 1..%u",
				                        optarg, VGS_OPT_MAX_RESOURCES);
			o->max_resources = u;
			break;
		case OPT_MAX_HOST_MEMORY:
			if (!parse_size(optarg, &size) || size < VGS_OPT_MIN_HOST_MEMORY ||
			    size > VGS_OPT_MAX_HOST_MEMORY)
				return vgs_option_error(
				        err, errlen,
				        "--max-host-memory: '%s' is not a size in 1M..1024G "
				        "(SIZE[K|M|G])",
				        optarg);
			o->max_host_memory = size;
			break;
		case OPT_DISPLAY:
			if (o->num_displays == VGS_OPT_MAX_DISPLAYS)
				return vgs_option_error(err, errlen,
				                        "--display: more than %d sockets",
				                        VGS_OPT_MAX_DISPLAYS);
			if (parse_display(optarg, &o->displays[o->num_displays], err, errlen) < 0)
				return -EINVAL;
			o->num_displays++;
			break;
		case OPT_HEARTBEAT_MS:
			if (!parse_u32_full(optarg, 10000, &u) || u < 5)
				return vgs_option_error(err, errlen,
				                        "--heartbeat-ms: '%s' is not in 5..10000",
				                        optarg);
			o->heartbeat_ms = u;
			break;
		case OPT_RELEASE_TIMEOUT_MS:
			if (!parse_u32_full(optarg, 60000, &u) || u < 1)
				return vgs_option_error(
				        err, errlen,
				        "--release-timeout-ms: '%s' is not in 1..60000", optarg);
			o->release_timeout_ms = u;
			break;
		case OPT_CONSUMER_DEADLINE_MS:
			if (!parse_u32_full(optarg, 600000, &u) || u < 10)
				return vgs_option_error(
				        err, errlen,
				        "--consumer-deadline-ms: '%s' is not in 10..600000",
				        optarg);
			o->consumer_deadline_ms = u;
			break;
		case OPT_SANDBOX:
			if (!strcmp(optarg, "off"))
				o->sandbox = VGS_SANDBOX_OFF;
			else if (!strcmp(optarg, "log"))
				o->sandbox = VGS_SANDBOX_LOG;
			else if (!strcmp(optarg, "on"))
				o->sandbox = VGS_SANDBOX_ON;
			else
				return vgs_option_error(err, errlen,
				                        "--sandbox: '%s' is not off, log or on",
				                        optarg);
			break;
		case OPT_PARAMS:
			o->crosvm_params = optarg; /* parsed by the daemon (json-c) */
			break;
		case OPT_HOST_VISIBLE_SIZE:
			if (!parse_size(optarg, &size) || size % 4096 ||
			    (size && (size < (1ull << 20) || size > (1ull << 40))))
				return vgs_option_error(err, errlen,
				                        "--host-visible-size: '%s' is not 0 or a "
				                        "4K multiple in 1M..1024G",
				                        optarg);
			o->host_visible_size = size;
			o->host_visible_set = true;
			break;
		case OPT_CROSVM_LEGACY_SHMEM:
			o->crosvm_legacy_shmem = true;
			break;
		case OPT_WAYLAND_SOCK:
		case OPT_X_DISPLAY:
		case OPT_RESOURCE_BRIDGE:
			/* vshm-gpu does not present windows itself: consumers do. */
			return vgs_option_error(
			        err, errlen,
			        "%s is not supported: vshm-gpu does not draw windows itself; "
			        "show scanouts through --display consumers instead",
			        c == OPT_WAYLAND_SOCK ? "--wayland-sock"
			        : c == OPT_X_DISPLAY  ? "--x-display"
			                              : "--resource-bridge");
		case 'h':
			o->action = VGS_ACTION_HELP;
			return 0;
		case 'V':
			o->action = VGS_ACTION_VERSION;
			return 0;
		case ':':
			return vgs_option_error(err, errlen, "option '%s' needs an argument",
			                        argv[optind - 1]);
		case '?':
		default:
			if (optopt && optopt < 0x100)
				return vgs_option_error(err, errlen, "unknown option '-%c'",
				                        optopt);
			return vgs_option_error(err, errlen, "unknown option '%s'",
			                        argv[optind - 1]);
		}
	}
	if (optind < argc)
		return vgs_option_error(err, errlen, "unexpected argument '%s'", argv[optind]);

	if (o->socket_path && have_fd)
		return vgs_option_error(err, errlen,
		                        "--socket-path and --fd are mutually exclusive");
	if (!o->socket_path && !have_fd)
		return vgs_option_error(err, errlen, "one of --socket-path or --fd is required");
	for (unsigned i = 0; i < o->num_displays; i++) {
		if (o->displays[i].scanouts >> o->num_scanouts)
			return vgs_option_error(
			        err, errlen,
			        "--display=%s: a scanout in scanouts= is >= --scanouts=%u",
			        o->displays[i].path, o->num_scanouts);
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(o->displays[i].path, o->displays[j].path))
				return vgs_option_error(err, errlen,
				                        "--display: socket %s given twice",
				                        o->displays[i].path);
	}
	if (o->mode_mask >> o->num_scanouts)
		return vgs_option_error(err, errlen,
		                        "--mode: a mode is given for a scanout >= --scanouts=%u",
		                        o->num_scanouts);
	return 0;
}
