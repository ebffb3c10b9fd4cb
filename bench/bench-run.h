/* SPDX-License-Identifier: MIT */
/*
 * bench-run.h - one measured run of one vhost-user GPU back-end.
 *
 * A run starts the back-end binary as a child (--socket-path in a temp
 * dir), brings it up exactly as QEMU does (including request 33 with the
 * fake QEMU display end), measures every figure with the same guest
 * driver, and stops the child. Running every back-end through this one
 * function is what makes the figures comparable.
 */
#ifndef VSHM_BENCH_RUN_H
#define VSHM_BENCH_RUN_H

#include <stdbool.h>
#include <stdint.h>

struct bench_params {
	uint32_t width, height;   /* the full-frame size (1920x1080) */
	unsigned frames;          /* full frames per run, pipelined */
	unsigned depth;           /* full frames in flight, pipelined */
	unsigned paced_frames;    /* full frames per run, paced (one at a time, all displayed) */
	unsigned small_cmds;      /* 1x1 flushes per run */
	unsigned info_cmds;       /* GET_DISPLAY_INFO per run */
	unsigned latency_samples; /* fenced flushes timed one at a time, per size */
	bool verbose;             /* back-end output to stderr instead of /dev/null */
};

struct bench_result {
	/*
	 * (a) full frames, pipelined (@depth in flight, coalescing allowed):
	 * TRANSFER_TO_HOST_2D + fenced RESOURCE_FLUSH, display receiving.
	 */
	double fps;
	double cpu_ms_per_frame;       /* schedstat, all back-end threads */
	double cpu_ms_per_frame_ticks; /* /proc/PID/stat utime+stime */
	uint64_t frames_submitted, frames_displayed;
	/*
	 * (p) full frames, paced: frame N+1 is submitted only once frame N's
	 * fence completed and the display received all of frame N's pixels.
	 */
	double paced_fps;
	double paced_cpu_ms_per_frame;       /* schedstat */
	double paced_cpu_ms_per_frame_ticks; /* stat ticks */
	uint64_t paced_submitted, paced_displayed;
	uint64_t paced_update_bytes;               /* UPDATE pixel bytes the display received */
	double paced_rtt_p50_us, paced_rtt_p99_us; /* fenced flush submit -> response */
	/* Pixels of the final frame that differ from the guest's (0, or the run fails). */
	long pipelined_bad_pixels, paced_bad_pixels;
	/* (b) small commands, pipelined. */
	double small_flush_per_s;
	double display_info_per_s;
	/* (c) fenced flush round trip (issue -> response), microseconds. */
	double rtt_small_p50_us, rtt_small_p99_us;
	double rtt_full_p50_us, rtt_full_p99_us;
	/* (d) memory. */
	double idle_rss_mb, peak_rss_mb;
};

/* 0, or -errno with a one-line reason in @err. */
int bench_run(const char *exe, const struct bench_params *p, struct bench_result *out, char *err,
              unsigned errlen);

#endif
