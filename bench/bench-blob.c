/* SPDX-License-Identifier: MIT */
/*
 * bench-blob.c - the zero-copy host-visible blob path to a display
 * consumer, measured against the 2D transfer path in the same run.
 *
 * One vshm-gpu daemon (built next to this program, or --exe) with
 * --display, brought up by the mini VMM in crosvm's order with the
 * standard shared memory convention (SHMEM + BACKEND_SEND_FD + REPLY_ACK).
 * The bench process is also the VMM's memory side (it mmaps the fd that
 * comes with SHMEM_MAP, as a VMM maps it into the host-visible window) and
 * runs one clients/consumer.h consumer in its own thread.
 *
 *  blob: a WxH host-visible blob (RESOURCE_CREATE_BLOB HOST3D, MAP_BLOB,
 *        SET_SCANOUT_BLOB). Per frame the "guest" writes the whole frame
 *        through the VMM's mapping, then submits a fenced RESOURCE_FLUSH.
 *        The daemon copies nothing: the consumer got SHM_BUFFER of the
 *        blob's own memfd (sealed F_SEAL_FUTURE_WRITE once the mapping was
 *        confirmed) and reads the pixels from its read-only mapping.
 *  2d:   a WxH 2D resource with guest backing. Per frame the guest writes
 *        the whole frame into its backing, then TRANSFER_TO_HOST_2D (full,
 *        not fenced) and a fenced RESOURCE_FLUSH, one kick: one copy of
 *        the frame in the daemon.
 *
 * Frames are paced (--hz) and never coalesced: the next frame is written
 * only after the fence completed and the consumer read the previous one.
 * Per frame: submit -> FRAME received by the consumer (the guest's view),
 * the FRAME's flush_ns -> received (the daemon's part), the consumer's read
 * of every cache line of the frame, the fence round trip. Daemon CPU per
 * frame: schedstat of all its threads over the timed frames. See README.md.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vshm/vhost_user.h>

#include "backend-peer.h"
#include "backend-proc.h"
#include "bench-rig.h"
#include "consumer.h"
#include "frontend.h"
#include "gpu-driver.h"
#include "stats.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define TIMEOUT_MS 10000
#define BLOB_ID    10
#define RES_2D_ID  20
#define TAG(n)     (0xff000000u | ((n)&0xffffffu))

struct params {
	char exe[PATH_MAX];
	uint32_t width, height;
	unsigned frames, warmup, hz;
	bool verbose;
};

/* ---- the consumer, in its own thread ---- */

struct cons {
	struct vsc *c;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_bool stop;
	/* Under @mu. */
	uint32_t tag;      /* pixel (0,0) of the newest FRAME, read from the mapping */
	bool torn;         /* a FRAME whose last pixel disagreed with its first */
	uint64_t recv_ns;  /* when the newest FRAME was parsed */
	uint64_t flush_ns; /* its flush_ns (the daemon's receipt of the flush) */
	uint64_t read_ns;  /* when the whole frame had been read */
	uint64_t frames;   /* FRAMEs received */
	uint64_t sum;      /* what the reads added up (keeps them from being optimised out) */
	int error;
};

static void on_event(void *data, struct vsc *c, const struct vsc_event *ev)
{
	struct cons *k = data;
	const struct vsc_frame *fr = ev->frame;
	uint32_t first, last;
	uint64_t sum = 0;

	(void)c;
	if (ev->type != VSC_EV_FRAME || !fr->pixels)
		return;
	/* Read every cache line of the frame, as a compositor's upload would. */
	for (uint32_t y = 0; y < fr->height; y++) {
		const uint8_t *row = fr->pixels + (uint64_t)y * fr->stride;
		for (uint32_t x = 0; x < fr->width * 4u; x += 64) {
			uint32_t v;
			memcpy(&v, row + x, 4);
			sum += v;
		}
	}
	memcpy(&first, fr->pixels, 4);
	memcpy(&last, fr->pixels + (uint64_t)(fr->height - 1) * fr->stride + (fr->width - 1) * 4u,
	       4);
	pthread_mutex_lock(&k->mu);
	k->tag = first;
	k->torn |= first != last;
	k->recv_ns = fr->recv_ns;
	k->flush_ns = fr->flush_ns;
	k->read_ns = bench_now_ns();
	k->frames++;
	k->sum += sum;
	pthread_cond_broadcast(&k->cv);
	pthread_mutex_unlock(&k->mu);
}

static void *cons_thread(void *data)
{
	struct cons *k = data;

	while (!atomic_load(&k->stop)) {
		int r = vsc_run(k->c, 20);
		if (r < 0 && r != -ETIMEDOUT) {
			pthread_mutex_lock(&k->mu);
			k->error = r;
			pthread_cond_broadcast(&k->cv);
			pthread_mutex_unlock(&k->mu);
			break;
		}
	}
	return NULL;
}

/* Wait until the newest FRAME shows @tag; its times. 0 or -ETIMEDOUT / the consumer's error. */
static int cons_wait(struct cons *k, uint32_t tag, uint64_t *recv_ns, uint64_t *flush_ns,
                     uint64_t *read_ns)
{
	struct timespec dl;
	int ret = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += TIMEOUT_MS / 1000;
	pthread_mutex_lock(&k->mu);
	while (k->tag != tag && !k->error && ret == 0)
		ret = pthread_cond_timedwait(&k->cv, &k->mu, &dl) ? -ETIMEDOUT : 0;
	if (k->error)
		ret = k->error;
	if (recv_ns)
		*recv_ns = k->recv_ns;
	if (flush_ns)
		*flush_ns = k->flush_ns;
	if (read_ns)
		*read_ns = k->read_ns;
	pthread_mutex_unlock(&k->mu);
	return ret;
}

/* ---- the guest ---- */

static int create_host_blob(struct tgd *g, uint32_t id, uint64_t size)
{
	struct virtio_gpu_resource_create_blob c;

	memset(&c, 0, sizeof(c));
	tgd_hdr(g, &c.hdr, VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB, false);
	c.resource_id = htole32(id);
	c.blob_mem = htole32(VIRTIO_GPU_BLOB_MEM_HOST3D);
	c.blob_flags =
	        htole32(VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE | VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE);
	c.size = htole64(size);
	return tgd_cmd(g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

static int map_blob(struct tgd *g, uint32_t id, uint64_t offset)
{
	struct virtio_gpu_resource_map_blob c;
	struct virtio_gpu_resp_map_info r;

	memset(&c, 0, sizeof(c));
	tgd_hdr(g, &c.hdr, VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB, false);
	c.resource_id = htole32(id);
	c.offset = htole64(offset);
	return tgd_cmd(g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, &r, sizeof(r));
}

static int scanout_blob(struct tgd *g, uint32_t id, uint32_t w, uint32_t h)
{
	struct virtio_gpu_set_scanout_blob c;

	memset(&c, 0, sizeof(c));
	tgd_hdr(g, &c.hdr, VIRTIO_GPU_CMD_SET_SCANOUT_BLOB, false);
	c.r.width = htole32(w);
	c.r.height = htole32(h);
	c.resource_id = htole32(id);
	c.width = htole32(w);
	c.height = htole32(h);
	c.format = htole32(VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
	c.strides[0] = htole32(w * 4);
	return tgd_cmd(g, TGD_QUEUE_CTRL, &c, sizeof(c), 0, 0, NULL, 0);
}

/* The whole frame, every pixel = @v (the guest redraws the screen). */
static void draw(uint32_t *px, uint64_t n, uint32_t v)
{
	for (uint64_t i = 0; i < n; i++)
		px[i] = v;
}

/* Read-only shared mappings of a vshm-gpu blob memfd in this process: the consumer's. */
static unsigned ro_blob_mappings(void)
{
	char line[512];
	unsigned n = 0;
	FILE *fp = fopen("/proc/self/maps", "re");

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp)) {
		char perms[8] = "";
		if (strstr(line, "memfd:vshm-gpu-blob") && sscanf(line, "%*s %7s", perms) == 1 &&
		    strcmp(perms, "r--s") == 0)
			n++;
	}
	fclose(fp);
	return n;
}

/* ---- one path ---- */

struct path_result {
	const char *name;
	unsigned frames;
	double sub_p50, sub_p99; /* submit -> FRAME received, us */
	double fl_p50, fl_p99;   /* FRAME.flush_ns -> received, us */
	double read_p50;         /* received -> whole frame read, us */
	double rtt_p50, rtt_p99; /* fenced flush round trip, us */
	double cpu_us;           /* daemon CPU per frame, us (schedstat) */
	double copy_mb;          /* pixel bytes the daemon copies per frame, MB */
	bool torn;
};

struct blob_rig {
	struct params *p;
	struct tbp be;
	struct tgd *g;
	struct cons k;
	uint32_t *vmm; /* the VMM's mapping of the blob */
	uint64_t blob_size;
	struct tgd_resource res; /* the 2D resource */
	uint32_t n;              /* frame counter (tags) */
	uint64_t rtt_ns;
};

static void on_flush_done(void *data, const struct tgd_done *d)
{
	struct blob_rig *r = data;
	r->rtt_ns = d->done_ns - d->submit_ns;
}

/* Submit one frame of @blob or the 2D resource; wait for its fence and the consumer. */
static int frame(struct blob_rig *r, bool blob, double *sub, double *fl, double *rd, double *rtt)
{
	uint32_t w = r->p->width, h = r->p->height, tag = TAG(++r->n);
	uint64_t seq = 0, submit_ns, recv_ns = 0, flush_ns = 0, read_ns = 0;
	int ret;

	if (blob) {
		draw(r->vmm, (uint64_t)w * h, tag);
		submit_ns = bench_now_ns();
		ret = tgd_flush_async(r->g, BLOB_ID, 0, 0, w, h, true, on_flush_done, r, &seq);
	} else {
		draw(r->res.pixels, (uint64_t)w * h, tag);
		tgd_set_batch(r->g, true);
		ret = tgd_transfer_async(r->g, RES_2D_ID, 0, 0, w, h, 0, false, NULL, NULL, NULL);
		if (ret == 0)
			ret = tgd_flush_async(r->g, RES_2D_ID, 0, 0, w, h, true, on_flush_done, r,
			                      &seq);
		tgd_set_batch(r->g, false);
		submit_ns = bench_now_ns();
		if (ret == 0)
			ret = tgd_kick(r->g, TGD_QUEUE_CTRL);
	}
	if (ret == 0)
		ret = tgd_wait_seq(r->g, seq, TIMEOUT_MS);
	if (ret == 0)
		ret = cons_wait(&r->k, tag, &recv_ns, &flush_ns, &read_ns);
	if (ret < 0)
		return ret;
	if (sub) {
		*sub = (double)(recv_ns - submit_ns) / 1e3;
		*fl = (double)(recv_ns - flush_ns) / 1e3;
		*rd = (double)(read_ns - recv_ns) / 1e3;
		*rtt = (double)r->rtt_ns / 1e3;
	}
	return 0;
}

static int run_path(struct blob_rig *r, bool blob, struct path_result *out)
{
	unsigned n = r->p->frames;
	double *sub = calloc(n, sizeof(double)), *fl = calloc(n, sizeof(double));
	double *rd = calloc(n, sizeof(double)), *rtt = calloc(n, sizeof(double));
	uint64_t period = r->p->hz ? 1000000000ull / r->p->hz : 0, t0;
	struct tbp_usage u0, u1;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	out->name = blob ? "host blob, zero copy" : "2D transfer, 1 copy";
	if (!sub || !fl || !rd || !rtt) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < r->p->warmup && ret == 0; i++)
		ret = frame(r, blob, NULL, NULL, NULL, NULL);
	if (ret == 0)
		ret = tbp_usage(r->be.pid, &u0);
	t0 = bench_now_ns();
	for (unsigned i = 0; i < n && ret == 0; i++) {
		if (period)
			bench_sleep_until(t0 + (uint64_t)i * period);
		ret = frame(r, blob, &sub[i], &fl[i], &rd[i], &rtt[i]);
	}
	if (ret == 0)
		ret = tbp_usage(r->be.pid, &u1);
	if (ret < 0)
		goto out;
	out->frames = n;
	out->cpu_us = (double)(u1.cpu_ns - u0.cpu_ns) / 1e3 / n;
	out->sub_p50 = bench_percentile(sub, n, 50);
	out->sub_p99 = bench_percentile(sub, n, 99);
	out->fl_p50 = bench_percentile(fl, n, 50);
	out->fl_p99 = bench_percentile(fl, n, 99);
	out->read_p50 = bench_percentile(rd, n, 50);
	out->rtt_p50 = bench_percentile(rtt, n, 50);
	out->rtt_p99 = bench_percentile(rtt, n, 99);
	out->copy_mb = blob ? 0 : (double)r->p->width * r->p->height * 4 / 1e6;
	pthread_mutex_lock(&r->k.mu);
	out->torn = r->k.torn;
	r->k.torn = false;
	pthread_mutex_unlock(&r->k.mu);
out:
	free(sub);
	free(fl);
	free(rd);
	free(rtt);
	return ret;
}

/* ---- set-up ---- */

static int fail(const char *what, int ret)
{
	fprintf(stderr, "bench-blob: %s: %s\n", what, strerror(ret < 0 ? -ret : ret));
	return ret < 0 ? ret : -EIO;
}

static int blob_up(struct blob_rig *r, const char *disp)
{
	const char *args[3];
	char disp_arg[200];
	struct tgd_config gc;
	struct tgd_bringup b = { .features_add = 1ull << VIRTIO_GPU_F_RESOURCE_BLOB,
		                 .protocol_add = VSHM_VU_PF_BACKEND_SEND_FD };
	struct tfe_peer_record rec;
	struct tfe_peer *peer;
	struct vsc_config cc;
	uint64_t sizes[256] = { 0 };
	uint32_t w = r->p->width, h = r->p->height;
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	struct stat st;
	int ret, fd = -1;

	snprintf(disp_arg, sizeof(disp_arg), "--display=%s", disp);
	args[0] = disp_arg;
	args[1] = NULL;
	ret = tbp_spawn(r->p->exe, args, !r->p->verbose, TIMEOUT_MS, &r->be);
	if (ret < 0) {
		r->be.pid = -1;
		return fail(r->p->exe, ret);
	}
	tgd_config_defaults(&gc);
	gc.mem_size = ((uint64_t)w * h * 4 + (16ull << 20)) & ~4095ull;
	gc.timeout_ms = TIMEOUT_MS;
	ret = tgd_new(&gc, &r->g);
	if (ret == 0)
		ret = tgd_connect(r->g, r->be.sock);
	if (ret == 0)
		ret = tgd_bringup_crosvm(r->g, &b, sizes);
	if (ret < 0)
		return fail("bring-up (crosvm order, SHMEM)", ret);
	if (!(tgd_features(r->g) & (1ull << VIRTIO_GPU_F_RESOURCE_BLOB)) || !sizes[1] ||
	    !(tgd_protocol_features(r->g) & VSHM_VU_PF_REPLY_ACK))
		return fail("no RESOURCE_BLOB, host-visible region or REPLY_ACK", -ENOTSUP);
	peer = tfe_get_backend_peer(tgd_tfe(r->g));
	if (!peer)
		return fail("no back-end channel", -ENOTCONN);

	/* The blob, mapped by the "VMM" (this process) as SHMEM_MAP asks. */
	r->blob_size = ((uint64_t)w * h * 4 + pg - 1) & ~(pg - 1);
	ret = create_host_blob(r->g, BLOB_ID, r->blob_size);
	if (ret == 0)
		ret = map_blob(r->g, BLOB_ID, 0);
	if (ret < 0)
		return fail("creating and mapping the blob", ret);
	for (unsigned i = tfe_peer_count(peer); i-- > 0;)
		if (tfe_peer_get(peer, i, &rec) == 0 && rec.request == TFE_BACKEND_SHMEM_MAP &&
		    rec.fd >= 0) {
			fd = rec.fd; /* owned by the peer */
			break;
		}
	if (fd < 0)
		return fail("no fd with SHMEM_MAP", -EBADF);
	r->vmm = mmap(NULL, r->blob_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r->vmm == MAP_FAILED) {
		r->vmm = NULL;
		return fail("mmap of the blob", -errno);
	}
	draw(r->vmm, (uint64_t)w * h, TAG(0));
	ret = scanout_blob(r->g, BLOB_ID, w, h);
	if (ret == 0)
		ret = tgd_resource_flush(r->g, BLOB_ID, 0, 0, w, h, true);
	if (ret < 0)
		return fail("SET_SCANOUT_BLOB", ret);
	if (!(fcntl(fd, F_GET_SEALS) & F_SEAL_FUTURE_WRITE))
		fprintf(stderr, "bench-blob: the blob was not sealed: expect a copy per frame\n");

	/* The 2D resource, for the comparison. */
	ret = tgd_resource_new(r->g, RES_2D_ID, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, w, h, 1, &r->res);
	if (ret < 0)
		return fail("creating the 2D resource", ret);

	/* The consumer. */
	for (int i = 0; i < 250 && stat(disp, &st) < 0; i++)
		usleep(20000);
	vsc_config_defaults(&cc);
	cc.role = "bench-blob";
	pthread_mutex_init(&r->k.mu, NULL);
	pthread_cond_init(&r->k.cv, NULL);
	r->k.tag = 0;
	ret = vsc_connect(disp, &cc, on_event, &r->k, &r->k.c);
	if (ret == 0)
		ret = vsc_wait_ready(r->k.c, TIMEOUT_MS);
	if (ret < 0)
		return fail("consumer", ret);
	ret = pthread_create(&r->k.thread, NULL, cons_thread, &r->k);
	if (ret)
		return fail("consumer thread", -ret);
	return cons_wait(&r->k, TAG(0), NULL, NULL, NULL) < 0 ? fail("first FRAME", -ETIMEDOUT) : 0;
}

static void blob_down(struct blob_rig *r)
{
	if (r->k.c) {
		atomic_store(&r->k.stop, true);
		pthread_join(r->k.thread, NULL);
		vsc_destroy(r->k.c);
	}
	if (r->vmm)
		munmap(r->vmm, r->blob_size);
	tgd_destroy(r->g);
	if (r->be.pid > 0)
		tbp_stop(&r->be);
}

/* ---- main ---- */

static void usage(void)
{
	printf("usage: bench-blob [--exe PATH] [--frames N] [--warmup N] [--hz N] [--size WxH] "
	       "[--verbose]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "exe", required_argument, NULL, 'e' },
		{ "frames", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "hz", required_argument, NULL, 'z' },
		{ "size", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct params p = { .width = 1920, .height = 1080, .frames = 300, .warmup = 10, .hz = 60 };
	struct path_result res[2];
	struct blob_rig r;
	char dir[64] = "/tmp/vshm-bench-blob-XXXXXX", disp[128];
	int c, ret;

	bench_default_exe(p.exe, sizeof(p.exe));
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			snprintf(p.exe, sizeof(p.exe), "%s", optarg);
			break;
		case 'n':
			p.frames = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'w':
			p.warmup = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'z':
			p.hz = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			if (sscanf(optarg, "%ux%u", &p.width, &p.height) != 2) {
				usage();
				return 2;
			}
			break;
		case 'v':
			p.verbose = true;
			break;
		default:
			usage();
			return c == 'h' ? 0 : 2;
		}
	}
	if (p.frames == 0 || p.width == 0 || p.height == 0 || p.width > 8192 || p.height > 8192) {
		usage();
		return 2;
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(disp, sizeof(disp), "%s/display.sock", dir);
	memset(&r, 0, sizeof(r));
	r.p = &p;
	r.be.pid = -1;
	printf("bench-blob: %s, %ux%u B8G8R8X8, %u frames per path (+%u warm-up), %s\n", p.exe,
	       p.width, p.height, p.frames, p.warmup, p.hz ? "paced" : "back to back");
	if (p.hz)
		printf("  paced at %u Hz; each frame fully redrawn by the guest before its flush\n",
		       p.hz);
	ret = blob_up(&r, disp);
	if (ret == 0) {
		unsigned ro = ro_blob_mappings();
		printf("  consumer maps the blob's own memfd read-only: %s\n",
		       ro ? "yes (SHM_BUFFER of the sealed blob)" : "NO (a copy)");
		ret = run_path(&r, true, &res[0]);
	}
	if (ret == 0) {
		ret = tgd_set_scanout(r.g, 0, RES_2D_ID, 0, 0, p.width, p.height);
		if (ret < 0)
			fail("SET_SCANOUT of the 2D resource", ret);
	}
	if (ret == 0)
		ret = run_path(&r, false, &res[1]);
	if (ret < 0 && ret != -EIO)
		fail("frames", ret);
	blob_down(&r);
	unlink(disp);
	rmdir(dir);
	if (ret < 0)
		return 1;

	printf("\n%-22s %7s %19s %19s %10s %17s %13s %10s\n", "path", "frames", "submit->FRAME us",
	       "flush->FRAME us", "read us", "fence rtt us", "daemon CPU", "copied");
	printf("%-22s %7s %19s %19s %10s %17s %13s %10s\n", "", "", "p50 / p99", "p50 / p99", "p50",
	       "p50 / p99", "us/frame", "MB/frame");
	for (int i = 0; i < 2; i++)
		printf("%-22s %7u %9.1f / %7.1f %9.1f / %7.1f %10.1f %8.1f / %6.1f %13.1f "
		       "%10.2f%s\n",
		       res[i].name, res[i].frames, res[i].sub_p50, res[i].sub_p99, res[i].fl_p50,
		       res[i].fl_p99, res[i].read_p50, res[i].rtt_p50, res[i].rtt_p99,
		       res[i].cpu_us, res[i].copy_mb, res[i].torn ? "  (torn frames seen)" : "");
	printf("\nsubmit->FRAME: the guest's flush submission to the consumer's receipt of the "
	       "FRAME;\nflush->FRAME: from the daemon's receipt of the flush (FRAME.flush_ns); "
	       "read: the\nconsumer reading every cache line of the frame from its mapping.\n");
	return 0;
}
