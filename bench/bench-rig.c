/* SPDX-License-Identifier: MIT */
/* bench-rig.c - guests, consumers, references and scheduling for the benches (bench-rig.h). */
#include "bench-rig.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "consumer.h"
#include "stats.h"

static int failf(char *err, unsigned errlen, int ret, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int failf(char *err, unsigned errlen, int ret, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "%s: ", strerror(ret < 0 ? -ret : ret));
	va_start(ap, fmt);
	if (n > 0 && (unsigned)n < errlen)
		vsnprintf(err + n, errlen - (unsigned)n, fmt, ap);
	va_end(ap);
	return ret < 0 ? ret : -EIO;
}

/* --- rig ------------------------------------------------------------------------ */

int rig_up(struct rig *r, const char *exe, const char *const *extra, uint32_t w, uint32_t h,
           bool verbose, char *err, unsigned errlen)
{
	const char *args[24];
	char disp_arg[160];
	struct tgd_config gc;
	struct tgd_bringup b = { 0 };
	struct stat st;
	unsigned n = 0;
	int ret;

	memset(r, 0, sizeof(*r));
	r->be.pid = -1;
	r->width = w;
	r->height = h;
	snprintf(r->dir, sizeof(r->dir), "/tmp/vshm-bench-XXXXXX");
	if (!mkdtemp(r->dir))
		return failf(err, errlen, -errno, "mkdtemp");
	snprintf(r->disp, sizeof(r->disp), "%s/display.sock", r->dir);
	snprintf(disp_arg, sizeof(disp_arg), "--display=%s", r->disp);
	args[n++] = disp_arg;
	for (unsigned i = 0; extra && extra[i] && n < 23; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	ret = tbp_spawn(exe, args, !verbose, RIG_TIMEOUT_MS, &r->be);
	if (ret < 0) {
		r->be.pid = -1;
		return failf(err, errlen, ret, "starting %s", exe);
	}
	tgd_config_defaults(&gc);
	gc.mem_size = ((uint64_t)w * h * 4 + (16ull << 20)) & ~4095ull;
	gc.timeout_ms = RIG_TIMEOUT_MS;
	ret = tgd_new(&gc, &r->g);
	if (ret == 0)
		ret = tgd_connect(r->g, r->be.sock);
	if (ret == 0)
		ret = tgd_bringup_qemu(r->g, &b);
	if (ret < 0)
		return failf(err, errlen, ret, "bringing up %s", r->be.sock);
	for (int i = 0; i < 250 && stat(r->disp, &st) < 0; i++)
		usleep(20000);
	if (stat(r->disp, &st) < 0)
		return failf(err, errlen, -errno, "no display socket %s", r->disp);
	ret = tgd_resource_new(r->g, RIG_RES_ID, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, w, h, 1,
	                       &r->res);
	if (ret < 0)
		return failf(err, errlen, ret, "creating the %ux%u resource", w, h);
	tgd_fill(&r->res, TGD_PATTERN_BARS, 0);
	r->res.pixels[0] = RIG_TAG(0);
	ret = tgd_set_scanout(r->g, 0, RIG_RES_ID, 0, 0, w, h);
	if (ret == 0)
		ret = tgd_transfer_to_host_2d(r->g, RIG_RES_ID, 0, 0, w, h, 0, false);
	if (ret == 0)
		ret = tgd_resource_flush(r->g, RIG_RES_ID, 0, 0, w, h, true);
	if (ret < 0)
		return failf(err, errlen, ret, "first frame");
	return 0;
}

void rig_down(struct rig *r)
{
	tgd_destroy(r->g);
	r->g = NULL;
	if (r->be.pid > 0)
		tbp_stop(&r->be);
	r->be.pid = -1;
	if (r->dir[0]) {
		unlink(r->disp);
		rmdir(r->dir);
		r->dir[0] = 0;
	}
}

static void on_flush_done(void *data, const struct tgd_done *d)
{
	struct rig *r = data;
	r->rtt_ns = d->done_ns - d->submit_ns;
	r->resp_ok = d->resp_type == VIRTIO_GPU_RESP_OK_NODATA;
}

int rig_frame_submit(struct rig *r, uint64_t *seq, uint64_t *submit_ns)
{
	int ret;

	r->res.pixels[0] = RIG_TAG(++r->tag);
	tgd_set_batch(r->g, true);
	ret = tgd_transfer_async(r->g, RIG_RES_ID, 0, 0, r->width, r->height, 0, false, NULL, NULL,
	                         NULL);
	if (ret == 0)
		ret = tgd_flush_async(r->g, RIG_RES_ID, 0, 0, r->width, r->height, true,
		                      on_flush_done, r, seq);
	tgd_set_batch(r->g, false);
	if (submit_ns)
		*submit_ns = bench_now_ns();
	if (ret == 0)
		ret = tgd_kick(r->g, TGD_QUEUE_CTRL);
	return ret;
}

int rig_frame_sync(struct rig *r, uint64_t *submit_ns)
{
	uint64_t seq;
	int ret = rig_frame_submit(r, &seq, submit_ns);
	if (ret == 0)
		ret = tgd_wait_seq(r->g, seq, RIG_TIMEOUT_MS);
	if (ret == 0 && !r->resp_ok)
		ret = -EPROTO;
	return ret;
}

/* --- consumers ------------------------------------------------------------------- */

static void bcons_event(void *data, struct vsc *c, const struct vsc_event *ev)
{
	struct bcons *b = data;
	uint64_t now = vsc_now_ns();

	if (ev->type == VSC_EV_FRAME) {
		const struct vsc_frame *f = ev->frame;
		uint32_t px = 0;
		if (f->pixels && f->width && f->height)
			memcpy(&px, f->pixels, sizeof(px));
		pthread_mutex_lock(&b->mu);
		b->frames++;
		b->last_tag = px;
		b->last_flush_ns = f->flush_ns;
		b->last_send_ns = f->send_ns;
		b->last_recv_ns = now;
		pthread_cond_broadcast(&b->cv);
		pthread_mutex_unlock(&b->mu);
	} else if (ev->type == VSC_EV_HEARTBEAT) {
		pthread_mutex_lock(&b->mu);
		b->heartbeats++;
		if (b->hb_threshold_ns && !b->hb_detect_ns) {
			bool known = false;
			uint64_t age = vsc_frame_age_ns(c, 0, now, &known);
			if (known && age > b->hb_threshold_ns)
				b->hb_detect_ns = now;
		}
		pthread_cond_broadcast(&b->cv);
		pthread_mutex_unlock(&b->mu);
	}
}

static void *bcons_main(void *arg)
{
	struct bcons *b = arg;
	bool hup_seen = false;

	__atomic_store_n(&b->tid, bench_gettid(), __ATOMIC_RELEASE);
	while (!atomic_load(&b->stop)) {
		bool stalled = atomic_load(&b->stalled);
		struct pollfd pfd[2] = { { .fd = b->wake, .events = POLLIN },
			                 { .fd = vsc_fd(b->c), .events = 0 } };
		nfds_t nfd = 2;
		if (!stalled)
			pfd[1].events = POLLIN | (vsc_wants_write(b->c) ? POLLOUT : 0);
		else if (hup_seen)
			nfd = 1;
		if (b->error && !stalled)
			nfd = 1;
		if (poll(pfd, nfd, -1) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN) {
			uint64_t v;
			if (read(b->wake, &v, sizeof(v)) < 0)
				continue;
		}
		if (nfd < 2 || !pfd[1].revents)
			continue;
		if (stalled) {
			/* Not reading: only the daemon's hang-up (POLLHUP) is of interest. */
			if (pfd[1].revents & (POLLHUP | POLLERR)) {
				pthread_mutex_lock(&b->mu);
				b->hup_ns = bench_now_ns();
				pthread_cond_broadcast(&b->cv);
				pthread_mutex_unlock(&b->mu);
				hup_seen = true;
			}
			continue;
		}
		int ret = vsc_dispatch(b->c);
		if (ret < 0 && ret != -EAGAIN) {
			pthread_mutex_lock(&b->mu);
			b->error = ret;
			if (!b->hup_ns)
				b->hup_ns = bench_now_ns();
			pthread_cond_broadcast(&b->cv);
			pthread_mutex_unlock(&b->mu);
		}
	}
	return NULL;
}

static int bcons_start_fail(struct bcons *b, int ret)
{
	vsc_destroy(b->c);
	b->c = NULL;
	if (b->wake >= 0)
		close(b->wake);
	b->wake = -1;
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	return ret;
}

int bcons_start(struct bcons *b, const char *path, const char *role, char *err, unsigned errlen)
{
	struct vsc_config cfg;
	int ret;

	memset(b, 0, sizeof(*b));
	b->wake = -1;
	pthread_condattr_t ca;
	pthread_mutex_init(&b->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cv, &ca);
	pthread_condattr_destroy(&ca);
	vsc_config_defaults(&cfg);
	cfg.role = role;
	cfg.scanouts = 0x1;
	ret = vsc_connect(path, &cfg, bcons_event, b, &b->c);
	if (ret < 0)
		return bcons_start_fail(
		        b, failf(err, errlen, ret, "connecting a consumer to %s", path));
	ret = vsc_wait_ready(b->c, RIG_TIMEOUT_MS);
	if (ret == 0)
		ret = vsc_wait_frames(b->c, 1, RIG_TIMEOUT_MS);
	if (ret < 0)
		return bcons_start_fail(
		        b, failf(err, errlen, ret, "consumer handshake: %s", vsc_error(b->c)));
	b->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->wake < 0)
		return bcons_start_fail(b, failf(err, errlen, -errno, "eventfd"));
	ret = pthread_create(&b->thread, NULL, bcons_main, b);
	if (ret)
		return bcons_start_fail(b, failf(err, errlen, -ret, "pthread_create"));
	b->started = true;
	/* The thread publishes its tid first thing. */
	for (int i = 0; i < 1000 && !__atomic_load_n(&b->tid, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	return 0;
}

static void bcons_kick(struct bcons *b)
{
	uint64_t one = 1;
	if (b->wake >= 0 && write(b->wake, &one, sizeof(one)) < 0) {
		/* An eventfd write fails only on overflow; the thread is awake then. */
	}
}

void bcons_stop(struct bcons *b)
{
	if (b->started) {
		atomic_store(&b->stop, true);
		bcons_kick(b);
		pthread_join(b->thread, NULL);
		b->started = false;
	}
	vsc_destroy(b->c);
	b->c = NULL;
	if (b->wake >= 0)
		close(b->wake);
	b->wake = -1;
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
}

static void deadline_ts(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000l;
	if (ts->tv_nsec >= 1000000000l) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000l;
	}
}

int bcons_wait_tag(struct bcons *b, uint32_t tag, int timeout_ms)
{
	struct timespec ts;
	int ret = 0;

	deadline_ts(&ts, timeout_ms);
	pthread_mutex_lock(&b->mu);
	for (;;) {
		uint32_t diff = (b->last_tag - tag) & 0xffffffu;
		if (b->frames && diff < 0x800000u)
			break;
		if (b->error) {
			ret = b->error;
			break;
		}
		if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) == ETIMEDOUT) {
			ret = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&b->mu);
	return ret;
}

void bcons_stall(struct bcons *b)
{
	atomic_store(&b->stalled, true);
	bcons_kick(b);
}

void bcons_watch_age(struct bcons *b, uint64_t threshold_ns)
{
	pthread_mutex_lock(&b->mu);
	b->hb_threshold_ns = threshold_ns;
	b->hb_detect_ns = 0;
	pthread_mutex_unlock(&b->mu);
}

void bcons_get(struct bcons *b, struct bcons *out)
{
	pthread_mutex_lock(&b->mu);
	out->last_tag = b->last_tag;
	out->frames = b->frames;
	out->last_flush_ns = b->last_flush_ns;
	out->last_send_ns = b->last_send_ns;
	out->last_recv_ns = b->last_recv_ns;
	out->heartbeats = b->heartbeats;
	out->hb_detect_ns = b->hb_detect_ns;
	out->hup_ns = b->hup_ns;
	out->error = b->error;
	pthread_mutex_unlock(&b->mu);
}

/* --- bare AF_UNIX round trip ---------------------------------------------------------- */

static int read_full(int fd, char *buf, unsigned n)
{
	unsigned got = 0;
	while (got < n) {
		ssize_t k = read(fd, buf + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		got += (unsigned)k;
	}
	return 0;
}

static void *echo_main(void *arg)
{
	struct bare *b = arg;
	char buf[4096];
	__atomic_store_n(&b->echo_tid, bench_gettid(), __ATOMIC_RELEASE);
	while (read_full(b->sv[1], buf, b->bytes) == 0)
		if (write(b->sv[1], buf, b->bytes) != (ssize_t)b->bytes)
			break;
	return NULL;
}

int bare_open(struct bare *b, unsigned bytes)
{
	memset(b, 0, sizeof(*b));
	if (bytes == 0 || bytes > 4096)
		return -EINVAL;
	b->bytes = bytes;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b->sv) < 0)
		return -errno;
	if (pthread_create(&b->thread, NULL, echo_main, b)) {
		close(b->sv[0]);
		close(b->sv[1]);
		return -EAGAIN;
	}
	b->started = true;
	for (int i = 0; i < 1000 && !__atomic_load_n(&b->echo_tid, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	return 0;
}

double bare_ping(struct bare *b)
{
	char buf[4096];
	memset(buf, 0x5a, b->bytes);
	uint64_t t0 = bench_now_ns();
	if (write(b->sv[0], buf, b->bytes) != (ssize_t)b->bytes ||
	    read_full(b->sv[0], buf, b->bytes) < 0)
		return -EIO;
	return (double)(bench_now_ns() - t0) / 1e3;
}

void bare_close(struct bare *b)
{
	if (!b->started)
		return;
	shutdown(b->sv[0], SHUT_RDWR);
	pthread_join(b->thread, NULL);
	close(b->sv[0]);
	close(b->sv[1]);
	b->started = false;
}

/* --- scheduling ------------------------------------------------------------------------ */

pid_t bench_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

int sched_thread(pid_t tid, enum sched_mode mode, int cpu)
{
	struct sched_param sp = { 0 };
	cpu_set_t set;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	/* Every mode starts from the default, so modes can be switched in any order. */
	if (sched_setscheduler(tid, SCHED_OTHER, &sp) < 0)
		return -errno;
	if (setpriority(PRIO_PROCESS, (id_t)tid, 0) < 0)
		return -errno;
	CPU_ZERO(&set);
	for (long i = 0; i < ncpu && i < CPU_SETSIZE; i++)
		CPU_SET(i, &set);
	if (mode == SCHED_MODE_PIN) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
	}
	if (sched_setaffinity(tid, sizeof(set), &set) < 0)
		return -errno;
	if (mode == SCHED_MODE_NICE && setpriority(PRIO_PROCESS, (id_t)tid, -10) < 0)
		return -errno;
	if (mode == SCHED_MODE_FIFO) {
		sp.sched_priority = 10;
		if (sched_setscheduler(tid, SCHED_FIFO, &sp) < 0)
			return -errno;
	}
	return 0;
}

int sched_process(pid_t pid, enum sched_mode mode, int cpu)
{
	char path[64];
	struct dirent *e;
	int ret = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		int r = sched_thread((pid_t)atoi(e->d_name), mode, cpu);
		if (r < 0 && ret == 0)
			ret = r;
	}
	closedir(d);
	return ret;
}

uint64_t rss_kb(pid_t pid)
{
	char path[64], buf[4096];
	uint64_t kb = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	const char *p = strstr(buf, "VmRSS:");
	if (p)
		kb = strtoull(p + 6, NULL, 10);
	return kb;
}

/* --- misc ------------------------------------------------------------------------------- */

void bench_default_exe(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		snprintf(buf, len, "vshm-gpu");
		return;
	}
	self[n] = 0;
	snprintf(buf, len, "%s/../server/vshm-gpu", dirname(self));
}

void bench_sleep_until(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
		               .tv_nsec = (long)(ns % 1000000000ull) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

void bench_target_line(const char *what, const char *measured, int verdict)
{
	printf("  %-58s %-40s %s\n", what, measured,
	       verdict < 0 ? "n/a"
	       : verdict   ? "PASS"
	                   : "FAIL");
}

double bench_median_strided(const double *v, size_t n, size_t stride)
{
	double tmp[64];
	size_t k = 0;
	for (size_t i = 0; i < n && k < 64; i++)
		if (!isnan(v[i * stride]))
			tmp[k++] = v[i * stride];
	return bench_median(tmp, k);
}
