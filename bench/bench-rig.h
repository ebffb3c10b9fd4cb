/* SPDX-License-Identifier: MIT */
/*
 * bench-rig.h - shared pieces of bench-consumers and bench-isolation.
 *
 * A rig is one guest: a vshm-gpu daemon started as a child with --display
 * (and any other options), the mini VMM (tests/frontend/gpu-driver.h)
 * brought up the way QEMU does it but without QEMU's display socket, and
 * one full-screen B8G8R8X8 resource set as scanout 0. A frame is the
 * Linux atomic-commit pattern: full TRANSFER_TO_HOST_2D (not fenced) and
 * full RESOURCE_FLUSH (fenced), one kick. Pixel (0,0) carries a frame tag.
 *
 * A bcons is one display consumer (clients/consumer.h) served by its own
 * thread, as a compositor process would be. It records what the benchmarks
 * need: the newest frame's tag, flush and receive times, heartbeats and the
 * frame age they reveal, and, once told to stall, when the daemon hung up.
 *
 * Plus: a bare AF_UNIX round trip (the reference for (a) of
 * bench-consumers), and scheduling helpers (nice, SCHED_FIFO, CPU pinning)
 * applied to every thread of a process or to single threads.
 */
#ifndef VSHM_BENCH_RIG_H
#define VSHM_BENCH_RIG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend-proc.h"
#include "gpu-driver.h"

#define RIG_RES_ID     1
#define RIG_TIMEOUT_MS 10000
/* The frame tag lives in pixel (0,0): X byte 0xff, counter in the low 24 bits. */
#define RIG_TAG(f) (0xff000000u | ((f)&0xffffffu))

struct rig {
	struct tbp be;
	struct tgd *g;
	struct tgd_resource res;
	uint32_t width, height;
	uint32_t tag;     /* last tag written */
	char dir[64];     /* holds the display socket */
	char disp[128];   /* dir/display.sock */
	uint64_t rtt_ns;  /* the last fenced flush: submit -> response */
	uint32_t resp_ok; /* the last flush's response was OK_NODATA */
};

/*
 * Start @exe with --display=DIR/display.sock and @extra (NULL-terminated,
 * may be NULL), bring the device up, create the resource and show frame 0.
 * 0 or -errno with a reason in @err.
 */
int rig_up(struct rig *r, const char *exe, const char *const *extra, uint32_t w, uint32_t h,
           bool verbose, char *err, unsigned errlen);
void rig_down(struct rig *r);

/*
 * Write tag r->tag + 1 into pixel (0,0) and submit the frame (transfer +
 * fenced flush, one kick). *seq is the flush's, *submit_ns when it was put
 * on the ring. Does not wait.
 */
int rig_frame_submit(struct rig *r, uint64_t *seq, uint64_t *submit_ns);
/* Submit one frame and wait for its fence; r->rtt_ns is the flush round trip. */
int rig_frame_sync(struct rig *r, uint64_t *submit_ns);

/* --- consumers ----------------------------------------------------------------- */

struct vsc;

struct bcons {
	struct vsc *c;
	pthread_t thread;
	bool started;
	int wake; /* eventfd: stop / re-evaluate */
	pid_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* Written by the consumer thread under @mu. */
	uint32_t last_tag; /* tag in pixel (0,0) of the newest FRAME */
	uint64_t frames;   /* FRAMEs received */
	uint64_t last_flush_ns, last_send_ns, last_recv_ns; /* of the newest FRAME */
	uint64_t heartbeats;
	uint64_t hb_detect_ns; /* first time age > hb_threshold_ns was seen (0: not yet) */
	uint64_t hup_ns;       /* when a stalled consumer saw the daemon hang up */
	int error;             /* a dispatch error (the connection is dead) */
	/* Set by the owner. */
	uint64_t hb_threshold_ns; /* 0: no frame age watch */
	atomic_bool stalled;      /* stop reading (the socket stays open) */
	atomic_bool stop;
};

/* Connect as a vshm consumer (role @role), wait for READY and the first FRAME, start the thread. */
int bcons_start(struct bcons *b, const char *path, const char *role, char *err, unsigned errlen);
/* Stop the thread and close the connection. */
void bcons_stop(struct bcons *b);
/* Wait until the newest FRAME carries @tag (or later). 0 or -ETIMEDOUT. */
int bcons_wait_tag(struct bcons *b, uint32_t tag, int timeout_ms);
/* Stop reading from now on (the consumer thread only watches for a hang-up). */
void bcons_stall(struct bcons *b);
/* Arm the frame-age watch: from now, the first HEARTBEAT with age > @threshold_ns is noted. */
void bcons_watch_age(struct bcons *b, uint64_t threshold_ns);
/* Snapshot of the fields under the lock. */
void bcons_get(struct bcons *b, struct bcons *out);

/* --- references --------------------------------------------------------------- */

/*
 * A bare AF_UNIX round trip: ping-pongs of a @bytes message over a
 * SOCK_STREAM socketpair between the calling thread and an echo thread.
 */
struct bare {
	int sv[2];
	unsigned bytes;
	pthread_t thread;
	pid_t echo_tid;
	bool started;
};
int bare_open(struct bare *b, unsigned bytes);
/* One ping-pong; its round trip in microseconds, or a negative -errno. */
double bare_ping(struct bare *b);
void bare_close(struct bare *b);

/* --- scheduling ---------------------------------------------------------------- */

enum sched_mode {
	SCHED_MODE_NONE, /* back to SCHED_OTHER, nice 0, every CPU */
	SCHED_MODE_NICE, /* nice -10 */
	SCHED_MODE_FIFO, /* SCHED_FIFO priority 10 */
	SCHED_MODE_PIN,  /* affinity to one CPU */
};
/* Apply @mode to one thread (@cpu for SCHED_MODE_PIN). 0 or -errno. */
int sched_thread(pid_t tid, enum sched_mode mode, int cpu);
/* Apply @mode to every thread of process @pid. 0 or -errno (first failure). */
int sched_process(pid_t pid, enum sched_mode mode, int cpu);
pid_t bench_gettid(void);

/* VmRSS of @pid in kB from /proc/PID/status, 0 on failure. */
uint64_t rss_kb(pid_t pid);

/* --- misc ---------------------------------------------------------------------- */

/* The vshm-gpu built next to this program: build/bench/X -> build/server/vshm-gpu. */
void bench_default_exe(char *buf, size_t len);
/* Sleep until CLOCK_MONOTONIC @ns (absolute). */
void bench_sleep_until(uint64_t ns);
/* One line of a targets block: verdict < 0 n/a, 0 FAIL, else PASS. */
void bench_target_line(const char *what, const char *measured, int verdict);
/* Median of @n values read with stride: v[0], v[stride], ... (copies; n <= 64). */
double bench_median_strided(const double *v, size_t n, size_t stride);

#endif
