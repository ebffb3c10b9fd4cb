/* SPDX-License-Identifier: MIT */
/*
 * vshm-capture - a headless display consumer: connects to a vshm-gpu
 * --display socket, receives frames, writes them as PNG and reports
 * latency, frame age and drops. See docs/vshm-capture.md.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "consumer.h"
#include "png-write.h"

struct cap {
	const char *out_dir;
	uint64_t max_frames; /* 0: unlimited */
	uint64_t every;
	uint32_t scanouts;
	bool qemu;
	uint64_t frames, written, dropped;
	int write_error;
	double *lat_flush_us, *lat_send_us;
	size_t n_lat, cap_lat;
	uint64_t hb_age_ns[VSHM_DISPLAY_MAX_SCANOUTS];
	bool hb_age_known[VSHM_DISPLAY_MAX_SCANOUTS];
	uint64_t hb_age_max_ns;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vshm-capture --socket PATH [--scanouts LIST] [--frames N] [--out DIR]\n"
	           "                    [--every N] [--timeout S] [--role NAME] [--qemu-mode]\n"
	           "  --socket PATH    the vshm-gpu --display socket\n"
	           "  --scanouts LIST  scanout ids, e.g. 0 or 0,1 or 0-3 (default 0)\n"
	           "  --frames N       stop after N frames (default 1; 0: until interrupted)\n"
	           "  --out DIR        write DIR/scanout<S>-<seq>.png\n"
	           "  --every N        write every N-th frame only (default 1)\n"
	           "  --timeout S      fail if the frames did not arrive within S seconds\n"
	           "                   (default 10; 0: no limit)\n"
	           "  --role NAME      HELLO role (default capture)\n"
	           "  --qemu-mode      negotiate as a QEMU-only consumer (pixels in UPDATEs)\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-')
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "0", "0,2", "0-3,5" -> mask of scanout ids < 16. */
static int parse_scanouts(const char *s, uint32_t *mask)
{
	char buf[256], *save = NULL, *tok;
	uint32_t m = 0;
	if (!s || strlen(s) >= sizeof(buf) || !*s)
		return -EINVAL;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');
		uint64_t a, b;
		if (dash) {
			*dash = 0;
			if (parse_u64(tok, &a) || parse_u64(dash + 1, &b))
				return -EINVAL;
		} else {
			if (parse_u64(tok, &a))
				return -EINVAL;
			b = a;
		}
		if (a > b || b >= VSHM_DISPLAY_MAX_SCANOUTS)
			return -EINVAL;
		for (uint64_t i = a; i <= b; i++)
			m |= 1u << i;
	}
	*mask = m;
	return m ? 0 : -EINVAL;
}

/* HELLO.role: 1..31 bytes of [A-Za-z0-9._-] (docs/protocol.md 7.1). */
static bool role_ok(const char *r)
{
	size_t n = strlen(r);
	if (n < 1 || n >= VSHM_DISPLAY_ROLE_SIZE)
		return false;
	return strspn(r, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static void push_lat(struct cap *k, double flush_us, double send_us)
{
	if (k->n_lat == k->cap_lat) {
		size_t cap = k->cap_lat ? k->cap_lat * 2 : 256;
		double *a = realloc(k->lat_flush_us, cap * sizeof(double));
		if (!a)
			return;
		k->lat_flush_us = a;
		double *b = realloc(k->lat_send_us, cap * sizeof(double));
		if (!b)
			return;
		k->lat_send_us = b;
		k->cap_lat = cap;
	}
	k->lat_flush_us[k->n_lat] = flush_us;
	k->lat_send_us[k->n_lat] = send_us;
	k->n_lat++;
}

static void on_frame(struct cap *k, struct vsc *c, const struct vsc_frame *f)
{
	char path[PATH_MAX] = "";
	char age[32] = "-", flush_lat[32] = "-", send_lat[32] = "-";

	if (!(k->scanouts & (1u << f->scanout_id)))
		return; /* QEMU-only service sends every scanout */
	if (k->max_frames && k->frames >= k->max_frames)
		return;
	k->frames++;
	k->dropped += f->dropped;
	if (!k->qemu) {
		double fl = (double)(int64_t)(f->recv_ns - f->flush_ns) / 1e3;
		double sl = (double)(int64_t)(f->recv_ns - f->send_ns) / 1e3;
		snprintf(flush_lat, sizeof(flush_lat), "%.1f", fl);
		snprintf(send_lat, sizeof(send_lat), "%.1f", sl);
		push_lat(k, fl, sl);
		if (k->hb_age_known[f->scanout_id])
			snprintf(age, sizeof(age), "%.1f",
			         (double)k->hb_age_ns[f->scanout_id] / 1e6);
	}
	if (k->out_dir && (k->frames - 1) % k->every == 0) {
		snprintf(path, sizeof(path), "%s/scanout%u-%llu.png", k->out_dir, f->scanout_id,
		         (unsigned long long)f->seq);
		int r = f->format_supported ? vsc_png_write(path, f->pixels, f->width, f->height,
		                                            f->stride, f->fourcc)
		                            : -ENOTSUP;
		if (r < 0) {
			fprintf(stderr, "vshm-capture: writing %s: %s\n", path, strerror(-r));
			if (r != -ENOTSUP)
				k->write_error = r;
			path[0] = 0;
		} else {
			k->written++;
		}
	}
	printf("frame scanout=%u seq=%llu size=%ux%u flush_latency_us=%s send_latency_us=%s "
	       "frame_age_ms=%s dropped=%llu rects=%u%s%s%s\n",
	       f->scanout_id, (unsigned long long)f->seq, f->width, f->height, flush_lat, send_lat,
	       age, (unsigned long long)f->dropped, f->num_rects, f->full ? " full" : "",
	       path[0] ? " file=" : "", path);
	fflush(stdout);
	(void)c;
}

static void on_event(void *data, struct vsc *c, const struct vsc_event *ev)
{
	struct cap *k = data;
	switch (ev->type) {
	case VSC_EV_READY:
		if (!k->qemu) {
			const struct vshm_display_hello_reply *h = vsc_hello_reply(c);
			printf("hello version=%u consumer_id=%u granted=0x%x refused=0x%x "
			       "num_scanouts=%u heartbeat_ms=%u release_timeout_ms=%u\n",
			       h->version, h->consumer_id, h->granted, h->refused, h->num_scanouts,
			       h->heartbeat_period_ms, h->release_timeout_ms);
			for (unsigned n = 0; n < VSHM_DISPLAY_MAX_SCANOUTS; n++)
				if (h->refused & (1u << n))
					fprintf(stderr,
					        "vshm-capture: scanout %u refused (reason %u)\n", n,
					        h->refuse_reason[n]);
		} else {
			printf("qemu-only features=0x%llx\n", (unsigned long long)vsc_features(c));
		}
		fflush(stdout);
		break;
	case VSC_EV_HEARTBEAT: {
		uint64_t now = vsc_now_ns();
		for (unsigned n = 0; n < VSHM_DISPLAY_MAX_SCANOUTS; n++) {
			bool known;
			uint64_t a = vsc_frame_age_ns(c, n, now, &known);
			k->hb_age_known[n] = known;
			k->hb_age_ns[n] = a;
			if (known && a > k->hb_age_max_ns)
				k->hb_age_max_ns = a;
		}
		break;
	}
	case VSC_EV_FRAME:
		on_frame(k, c, ev->frame);
		break;
	default:
		break;
	}
}

static void summary(struct cap *k, struct vsc *c)
{
	double f50 = percentile(k->lat_flush_us, k->n_lat, 0.50);
	double f99 = percentile(k->lat_flush_us, k->n_lat, 0.99);
	double s50 = percentile(k->lat_send_us, k->n_lat, 0.50);
	double s99 = percentile(k->lat_send_us, k->n_lat, 0.99);
	printf("summary frames=%llu written=%llu dropped=%llu", (unsigned long long)k->frames,
	       (unsigned long long)k->written, (unsigned long long)k->dropped);
	if (!k->qemu && k->n_lat)
		printf(" flush_latency_p50_us=%.1f flush_latency_p99_us=%.1f "
		       "send_latency_p50_us=%.1f send_latency_p99_us=%.1f max_frame_age_ms=%.1f",
		       f50, f99, s50, s99, (double)k->hb_age_max_ns / 1e6);
	printf("\n");
	if (c && !k->qemu && vsc_is_ready(c) && vsc_request_stats(c) == 0) {
		const struct vshm_display_stats *st = NULL;
		uint64_t end = vsc_now_ns() + 500000000ull;
		while (!(st = vsc_stats(c, NULL, NULL)) && vsc_now_ns() < end)
			if (vsc_run(c, 50) < 0)
				break;
		if (st)
			printf("daemon frames_sent=%llu frames_dropped=%llu frames_reclaimed=%llu "
			       "bytes_sent=%llu queued_bytes_max=%llu\n",
			       (unsigned long long)st->frames_sent,
			       (unsigned long long)st->frames_dropped,
			       (unsigned long long)st->frames_reclaimed,
			       (unsigned long long)st->bytes_sent,
			       (unsigned long long)st->queued_bytes_max);
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "scanouts", required_argument, NULL, 'S' },
		{ "frames", required_argument, NULL, 'n' },
		{ "out", required_argument, NULL, 'o' },
		{ "every", required_argument, NULL, 'e' },
		{ "timeout", required_argument, NULL, 't' },
		{ "role", required_argument, NULL, 'r' },
		{ "qemu-mode", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cap k = { .max_frames = 1, .every = 1, .scanouts = 0x1 };
	struct vsc_config cfg;
	const char *sock = NULL;
	double timeout_s = 10;
	struct vsc *c = NULL;
	int opt, r, rc = 0;

	vsc_config_defaults(&cfg);
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'S':
			if (parse_scanouts(optarg, &k.scanouts) < 0) {
				fprintf(stderr, "vshm-capture: bad --scanouts '%s'\n", optarg);
				return 2;
			}
			break;
		case 'n':
			if (parse_u64(optarg, &k.max_frames) < 0) {
				fprintf(stderr, "vshm-capture: bad --frames '%s'\n", optarg);
				return 2;
			}
			break;
		case 'o':
			k.out_dir = optarg;
			break;
		case 'e':
			if (parse_u64(optarg, &k.every) < 0 || k.every == 0) {
				fprintf(stderr, "vshm-capture: bad --every '%s'\n", optarg);
				return 2;
			}
			break;
		case 't':
			errno = 0;
			timeout_s = strtod(optarg, &end);
			if (errno || *end || !*optarg || timeout_s < 0 || timeout_s > 1e6) {
				fprintf(stderr, "vshm-capture: bad --timeout '%s'\n", optarg);
				return 2;
			}
			break;
		case 'r':
			if (!role_ok(optarg)) {
				fprintf(stderr, "vshm-capture: bad --role '%s'\n", optarg);
				return 2;
			}
			cfg.role = optarg;
			break;
		case 'q':
			k.qemu = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !sock) {
		usage(stderr);
		return 2;
	}
	if (k.out_dir) {
		struct stat st;
		if (stat(k.out_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, "vshm-capture: --out '%s' is not a directory\n", k.out_dir);
			return 2;
		}
	}
	cfg.qemu_mode = k.qemu;
	cfg.scanouts = k.scanouts;

	struct sigaction sa = { 0 };
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	r = vsc_connect(sock, &cfg, on_event, &k, &c);
	if (r == -EINVAL) {
		fprintf(stderr, "vshm-capture: bad --role '%s'\n", cfg.role);
		return 2;
	}
	if (r < 0) {
		fprintf(stderr, "vshm-capture: connect %s: %s\n", sock, strerror(-r));
		return 1;
	}

	uint64_t deadline = timeout_s > 0 ? vsc_now_ns() + (uint64_t)(timeout_s * 1e9) : 0;
	for (;;) {
		if (stop_signal)
			break;
		if (k.max_frames && k.frames >= k.max_frames)
			break;
		if (k.write_error) {
			rc = 1;
			break;
		}
		int wait_ms = 50;
		if (deadline) {
			uint64_t now = vsc_now_ns();
			if (now >= deadline) {
				fprintf(stderr,
				        "vshm-capture: timeout: %llu of %llu frames in %.3g s\n",
				        (unsigned long long)k.frames,
				        (unsigned long long)k.max_frames, timeout_s);
				rc = 1;
				break;
			}
			if ((deadline - now) / 1000000 < (uint64_t)wait_ms)
				wait_ms = (int)((deadline - now) / 1000000) + 1;
		}
		r = vsc_run(c, wait_ms);
		if (r < 0) {
			if (!(k.max_frames && k.frames >= k.max_frames)) {
				fprintf(stderr, "vshm-capture: %s\n", vsc_error(c));
				rc = 1;
			}
			break;
		}
	}
	if (k.write_error)
		rc = 1;
	summary(&k, rc == 0 ? c : NULL);
	vsc_destroy(c);
	free(k.lat_flush_us);
	free(k.lat_send_us);
	return rc;
}
