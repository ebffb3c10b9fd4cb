/* SPDX-License-Identifier: MIT */
/*
 * main.c - vshm-gpu, the vhost-user virtio-gpu back-end daemon.
 *
 * Wiring only: one vshm_event_loop runs everything; vshm_vu_dev speaks
 * vhost-user to the VMM; vgs_gpu is the device model; qemu_display carries
 * the picture to QEMU over the socket of VHOST_USER_GPU_SET_SOCKET. The
 * program follows QEMU's back-end conventions (vhost-user.rst, "Back-end
 * program conventions"): no daemonizing, --socket-path or --fd,
 * --print-capabilities, early failure for features that cannot work, and a
 * prompt exit on SIGTERM.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vshm/conn.h>
#include <vshm/event_loop.h>
#include <vshm/log.h>
#include <vshm/vhost_user.h>
#include <vshm-proto/qemu-display.h>

#include "vshm-config.h"

#include "consumers.h"
#include "compat.h"
#include "gpu.h"
#include "options.h"
#include "qemu_display.h"
#include "sandbox.h"

#define EXIT_USAGE 2

struct daemon {
	struct vgs_options opts;
	struct vshm_event_loop *loop;
	struct vgs_gpu *gpu;
	struct vshm_idle *gpu_deferred; /* vgs_gpu_run_deferred, after display sends */
	struct vshm_vu_dev *dev;
	struct vgs_qemu_display *qd;
	bool display_attached;
	struct vgs_compat compat; /* blob window, shared memory conventions, crosvm --params */
	/* Display consumers on --display sockets; NULL without --display. */
	struct vgs_consumers *cons;
	bool cons_attached;

	/*
	 * The engine talks to us, and we forward to the device model: the
	 * daemon has to see disconnects (to accept the next front-end).
	 */
	const struct vshm_vu_device_ops *gpu_ops;
	struct vshm_vu_device_ops ops;

	int listen_fd;
	struct vshm_watch *listen_watch;
	ino_t listen_ino; /* to remove the socket file at exit only if it is still ours */
};

static void log_handler(enum vshm_log_level level, const char *msg, void *data)
{
	static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };

	(void)data;
	fprintf(stderr, "vshm-gpu: %s%s\n", level <= VSHM_LOG_DEBUG ? prefix[level] : "", msg);
}

/* ---- engine callbacks forwarded to the device model ---------------------- */

static uint64_t fwd_get_features(void *data)
{
	struct daemon *d = data;

	return d->gpu_ops->get_features(d->gpu);
}

static int fwd_set_features(void *data, uint64_t features)
{
	struct daemon *d = data;

	return d->gpu_ops->set_features ? d->gpu_ops->set_features(d->gpu, features) : 0;
}

static int fwd_get_config(void *data, uint32_t offset, void *buf, uint32_t size)
{
	struct daemon *d = data;

	return d->gpu_ops->get_config(d->gpu, offset, buf, size);
}

static int fwd_set_config(void *data, uint32_t offset, const void *buf, uint32_t size,
                          uint32_t flags)
{
	struct daemon *d = data;

	return d->gpu_ops->set_config(d->gpu, offset, buf, size, flags);
}

static void fwd_queue_kick(void *data, struct vshm_vq *vq)
{
	struct daemon *d = data;

	/* A kick is the guest talking to the GPU: consumers see it in HEARTBEAT. */
	vgs_consumers_note_guest_activity(d->cons);
	d->gpu_ops->queue_kick(d->gpu, vq);
}

static void fwd_queue_state(void *data, struct vshm_vq *vq, bool started)
{
	struct daemon *d = data;

	d->gpu_ops->queue_state(d->gpu, vq, started);
}

static int fwd_device_request(void *data, uint32_t request, uint32_t flags, const void *payload,
                              uint32_t size, int *fds, unsigned nfds)
{
	struct daemon *d = data;

	return d->gpu_ops->device_request(d->gpu, request, flags, payload, size, fds, nfds);
}

static void fwd_reset(void *data)
{
	struct daemon *d = data;

	d->gpu_ops->reset(d->gpu);
}

static void fwd_set_status(void *data, uint8_t status)
{
	struct daemon *d = data;

	d->gpu_ops->set_status(d->gpu, status);
}

static int fwd_get_shmem_config(void *data, uint64_t sizes[256])
{
	struct daemon *d = data;

	return d->gpu_ops->get_shmem_config(d->gpu, sizes);
}

static void on_listen(int fd, uint32_t revents, void *data);

static void on_disconnected(void *data)
{
	struct daemon *d = data;
	int r;

	if (d->gpu_ops->disconnected)
		d->gpu_ops->disconnected(d->gpu);
	if (d->listen_fd < 0) {
		/* --fd: the one front-end we were given is gone. */
		vshm_log(VSHM_LOG_INFO, "front-end disconnected; exiting");
		vshm_event_loop_quit(d->loop, 0);
		return;
	}
	vshm_log(VSHM_LOG_INFO, "front-end disconnected; waiting for the next one");
	if (!d->listen_watch) {
		r = vshm_event_loop_add_fd(d->loop, d->listen_fd, VSHM_EV_IN, on_listen, d,
		                           &d->listen_watch);
		if (r < 0) {
			vshm_log(VSHM_LOG_ERROR, "cannot watch the listening socket: %s",
			         strerror(-r));
			vshm_event_loop_quit(d->loop, 1);
		}
	}
}

/* Copy the device model's table, swapping in forwarders for what it has. */
static void build_ops(struct daemon *d)
{
	const struct vshm_vu_device_ops *g = d->gpu_ops;
	struct vshm_vu_device_ops *o = &d->ops;

	memset(o, 0, sizeof(*o));
	o->get_features = fwd_get_features;
	o->set_features = g->set_features ? fwd_set_features : NULL;
	o->get_config = g->get_config ? fwd_get_config : NULL;
	o->set_config = g->set_config ? fwd_set_config : NULL;
	o->queue_kick = fwd_queue_kick;
	o->queue_state = g->queue_state ? fwd_queue_state : NULL;
	o->device_request = g->device_request ? fwd_device_request : NULL;
	o->reset = g->reset ? fwd_reset : NULL;
	o->set_status = g->set_status ? fwd_set_status : NULL;
	o->disconnected = on_disconnected;
	o->get_shmem_config = g->get_shmem_config ? fwd_get_shmem_config : NULL;
}

/* Device-specific vhost-user requests the device model passes up. */
static void on_gpu_deferred(void *data)
{
	struct daemon *d = data;

	d->gpu_deferred = NULL;
	vgs_gpu_run_deferred(d->gpu);
}

/*
 * The device wants work done after this batch's display sends. Idle
 * callbacks run in the order they were added, and the display sinks added
 * theirs while the batch was processed, so this one runs after them.
 */
static void on_gpu_defer(void *data)
{
	struct daemon *d = data;

	if (d->gpu_deferred)
		return;
	if (vshm_event_loop_add_idle(d->loop, on_gpu_deferred, d, &d->gpu_deferred) < 0) {
		d->gpu_deferred = NULL;
		vgs_gpu_run_deferred(d->gpu); /* no idle source: do it now rather than never */
	}
}

static int on_gpu_request(void *data, uint32_t request, uint32_t flags, const void *payload,
                          uint32_t size, int *fds, unsigned nfds)
{
	struct daemon *d = data;
	unsigned first = 0;
	int r = -ENOTSUP;

	(void)flags;
	(void)payload;
	(void)size;
	if (request == VHOST_USER_GPU_SET_SOCKET) {
		if (nfds != 1) {
			vshm_log(VSHM_LOG_WARN, "GPU_SET_SOCKET with %u fds, expected 1", nfds);
			r = -EINVAL;
		} else {
			/* QEMU re-sends the socket on every DRIVER_OK: the new one wins. */
			r = vgs_qemu_display_set_socket(d->qd, fds[0]);
			fds[0] = -1;
			first = 1;
			if (r < 0)
				vshm_log(VSHM_LOG_WARN, "cannot use the display socket: %s",
				         strerror(-r));
		}
	}
	/* We own the fds: close whatever was not kept. */
	for (unsigned i = first; i < nfds; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
	return r;
}

/* ---- front-end connections --------------------------------------------------- */

static void on_listen(int fd, uint32_t revents, void *data)
{
	struct daemon *d = data;
	int cfd, r;

	(void)revents;
	r = vshm_unix_accept(fd, &cfd);
	if (r < 0) {
		if (r != -EAGAIN && r != -EINTR && r != -ECONNABORTED)
			vshm_log(VSHM_LOG_WARN, "accept failed: %s", strerror(-r));
		return;
	}
	r = vshm_vu_dev_connect(d->dev, cfd);
	if (r < 0) {
		vshm_log(VSHM_LOG_WARN, "cannot serve the front-end: %s", strerror(-r));
		return;
	}
	vshm_log(VSHM_LOG_INFO, "front-end connected");
	/* One front-end at a time: stop accepting until it disconnects. */
	vshm_event_loop_remove_fd(d->loop, d->listen_watch);
	d->listen_watch = NULL;
}

static void on_signal(int signo, void *data)
{
	struct daemon *d = data;

	vshm_log(VSHM_LOG_INFO, "%s received; exiting", strsignal(signo));
	vshm_event_loop_quit(d->loop, 0);
}

static void log_stats(struct daemon *d);

static void on_sigusr1(int signo, void *data)
{
	(void)signo;
	log_stats(data);
}

/* ---- capabilities ------------------------------------------------------------ */

/*
 * Only what works is advertised: libvirt passes --render-node and --virgl
 * because of this list. Nothing uses a render node until 3D (virgl) lands,
 * so neither feature is listed yet.
 */
static bool render_node_usable(void)
{
	return false;
}

static bool virgl_usable(void)
{
	return false;
}

static void print_capabilities(void)
{
	bool rn = render_node_usable(), vg = virgl_usable();

	printf("{\"type\": \"gpu\", \"features\": [%s%s%s]}\n", rn ? "\"render-node\"" : "",
	       rn && vg ? ", " : "", vg ? "\"virgl\"" : "");
}

static int check_render_node(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		vshm_log(VSHM_LOG_ERROR, "--render-node=%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISCHR(st.st_mode)) {
		vshm_log(VSHM_LOG_ERROR, "--render-node=%s: not a character device", path);
		return -1;
	}
	return 0;
}

static int check_socket_fd(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		vshm_log(VSHM_LOG_ERROR, "--fd=%d: not an open socket", fd);
		return -1;
	}
	return 0;
}

/* ---- setup and teardown ---------------------------------------------------- */

static void log_stats(struct daemon *d)
{
	struct vgs_qemu_display_stats qs;
	struct vshm_vu_stats vs;
	struct vgs_gpu_stats gs;

	if (d->gpu) {
		vgs_gpu_get_stats(d->gpu, &gs);
		vshm_log(VSHM_LOG_INFO,
		         "stats: gpu commands=%llu errors=%llu fences=%llu flushes=%llu "
		         "transfer_bytes=%llu resources=%u host_bytes=%llu",
		         (unsigned long long)gs.commands, (unsigned long long)gs.errors,
		         (unsigned long long)gs.fences, (unsigned long long)gs.flushes,
		         (unsigned long long)gs.transfer_bytes, gs.resources,
		         (unsigned long long)gs.host_bytes);
		if (gs.cow_switches || gs.pool_spares)
			vshm_log(VSHM_LOG_INFO,
			         "stats: gpu cow_switches=%llu cow_copy_bytes=%llu "
			         "cow_torn_risk=%llu pool_spares=%u pool_allocs=%llu "
			         "pool_frees=%llu",
			         (unsigned long long)gs.cow_switches,
			         (unsigned long long)gs.cow_copy_bytes,
			         (unsigned long long)gs.cow_torn_risk, gs.pool_spares,
			         (unsigned long long)gs.pool_allocs,
			         (unsigned long long)gs.pool_frees);
	}
	if (d->dev) {
		vshm_vu_dev_get_stats(d->dev, &vs);
		vshm_log(
		        VSHM_LOG_INFO,
		        "stats: vhost-user requests=%llu errors=%llu unknown=%llu disconnects=%llu",
		        (unsigned long long)vs.requests, (unsigned long long)vs.errors,
		        (unsigned long long)vs.unknown_requests,
		        (unsigned long long)vs.disconnects);
	}
	if (d->qd) {
		vgs_qemu_display_get_stats(d->qd, &qs);
		vshm_log(VSHM_LOG_INFO,
		         "stats: display sockets=%llu frames_sent=%llu frames_coalesced=%llu "
		         "update_bytes=%llu conversions=%llu queries=%llu query_timeouts=%llu "
		         "bytes_sent=%llu",
		         (unsigned long long)qs.sockets, (unsigned long long)qs.frames_sent,
		         (unsigned long long)qs.frames_coalesced,
		         (unsigned long long)qs.update_bytes, (unsigned long long)qs.conversions,
		         (unsigned long long)qs.queries, (unsigned long long)qs.query_timeouts,
		         (unsigned long long)qs.bytes_sent);
	}
	if (d->cons)
		vgs_consumers_log_stats(d->cons, VSHM_LOG_INFO);
}

static void gpu_config_from_options(const struct vgs_options *o, struct vgs_gpu_config *cfg)
{
	vgs_gpu_config_defaults(cfg);
	cfg->num_scanouts = o->num_scanouts;
	for (uint32_t i = 0; i < o->num_scanouts; i++) {
		if (o->mode_mask & (1u << i)) {
			cfg->width[i] = o->width[i];
			cfg->height[i] = o->height[i];
		}
	}
	/* Scanout 0 is always on; others when given a mode. QEMU may override. */
	cfg->enabled_mask = 1u | o->mode_mask;
	if (o->max_resources)
		cfg->limits.max_resources = o->max_resources;
	if (o->max_host_memory)
		cfg->limits.max_host_bytes = o->max_host_memory;
}

static int setup_consumers(struct daemon *d)
{
	const struct vgs_options *o = &d->opts;
	struct vgs_consumers_config cc;
	int r;

	vgs_consumers_config_defaults(&cc);
	cc.num_scanouts = o->num_scanouts;
	if (o->heartbeat_ms)
		cc.heartbeat_ms = o->heartbeat_ms;
	if (o->release_timeout_ms)
		cc.release_timeout_ms = o->release_timeout_ms;
	if (o->consumer_deadline_ms)
		cc.consumer_deadline_ms = o->consumer_deadline_ms;
	r = vgs_consumers_new(d->loop, &cc, &d->cons);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < o->num_displays; i++) {
		const struct vgs_display_opt *dp = &o->displays[i];

		r = vgs_consumers_listen(d->cons, dp->path, dp->scanouts,
		                         dp->role[0] ? dp->role : NULL);
		if (r < 0) {
			vshm_log(VSHM_LOG_ERROR, "--display: cannot listen on %s: %s", dp->path,
			         strerror(-r));
			return r;
		}
	}
	r = vgs_gpu_add_display(d->gpu, vgs_consumers_sink(d->cons));
	if (r < 0)
		return r;
	d->cons_attached = true;
	return 0;
}

static int setup(struct daemon *d)
{
	const struct vgs_options *o = &d->opts;
	struct vgs_qemu_display_config qc;
	struct vgs_gpu_config gc;
	struct vshm_vu_config vc;
	struct vshm_loop iface;
	struct stat st;
	int r;

	r = vshm_event_loop_new(&d->loop);
	if (r < 0)
		goto fail;
	if ((r = vshm_event_loop_add_signal(d->loop, SIGTERM, on_signal, d)) < 0 ||
	    (r = vshm_event_loop_add_signal(d->loop, SIGINT, on_signal, d)) < 0 ||
	    (r = vshm_event_loop_add_signal(d->loop, SIGUSR1, on_sigusr1, d)) < 0)
		goto fail;

	gpu_config_from_options(o, &gc);
	vgs_compat_gpu_config(&d->compat, &gc);
	r = vgs_gpu_new(&gc, &d->gpu);
	if (r < 0)
		goto fail;

	vgs_qemu_display_config_defaults(&qc);
	/* QEMU decides how many heads exist (max_outputs); the guest only addresses those. */
	qc.num_scanouts = VGS_MAX_SCANOUTS;
	r = vgs_qemu_display_new(d->loop, &qc, &d->qd);
	if (r < 0)
		goto fail;
	r = vgs_gpu_add_display(d->gpu, vgs_qemu_display_sink(d->qd));
	if (r < 0)
		goto fail;
	d->display_attached = true;
	vgs_gpu_set_request_hook(d->gpu, on_gpu_request, d);
	vgs_gpu_set_defer_hook(d->gpu, on_gpu_defer, d);
	/* Consumers (crosvm style) work with or without QEMU's display socket. */
	if (o->num_displays && (r = setup_consumers(d)) < 0)
		return r;

	vshm_vu_config_defaults(&vc);
	vc.num_queues = 2;
	vc.config_size = 16; /* struct virtio_gpu_config without blob_alignment */
	/* CONFIG is mandatory for QEMU's vhost-user-gpu (realize fails without it). */
	vc.protocol_features = VSHM_VU_PF_MQ | VSHM_VU_PF_REPLY_ACK | VSHM_VU_PF_BACKEND_REQ |
	                       VSHM_VU_PF_BACKEND_SEND_FD | VSHM_VU_PF_CONFIG |
	                       VSHM_VU_PF_CONFIGURE_MEM_SLOTS | VSHM_VU_PF_STATUS |
	                       VSHM_VU_PF_RESET_DEVICE;
	vgs_compat_vu_config(&d->compat, &vc); /* SHMEM (+ crosvm bit 31) with a window */
	d->gpu_ops = vgs_gpu_device_ops();
	build_ops(d);
	iface = vshm_event_loop_iface(d->loop);
	r = vshm_vu_dev_new(&vc, &d->ops, d, &iface, &d->dev);
	if (r < 0)
		goto fail;
	vgs_gpu_set_engine(d->gpu, d->dev);

	if (o->socket_path) {
		r = vshm_unix_listen(o->socket_path, 1, &d->listen_fd);
		if (r < 0) {
			vshm_log(VSHM_LOG_ERROR, "cannot listen on %s: %s", o->socket_path,
			         strerror(-r));
			return r;
		}
		if (lstat(o->socket_path, &st) == 0)
			d->listen_ino = st.st_ino;
		r = vshm_event_loop_add_fd(d->loop, d->listen_fd, VSHM_EV_IN, on_listen, d,
		                           &d->listen_watch);
		if (r < 0)
			goto fail;
		vshm_log(VSHM_LOG_INFO, "listening on %s", o->socket_path);
	} else {
		r = vshm_vu_dev_connect(d->dev, o->fd);
		if (r < 0) {
			vshm_log(VSHM_LOG_ERROR, "cannot serve --fd=%d: %s", o->fd, strerror(-r));
			return r;
		}
	}
	return 0;

fail:
	vshm_log(VSHM_LOG_ERROR, "startup failed: %s", strerror(-r));
	return r;
}

static void teardown(struct daemon *d)
{
	/* The engine calls into the device model while closing: it goes first. */
	vshm_vu_dev_destroy(d->dev);
	d->dev = NULL;
	if (d->display_attached)
		vgs_gpu_remove_display(d->gpu, vgs_qemu_display_sink(d->qd));
	if (d->cons_attached)
		vgs_gpu_remove_display(d->gpu, vgs_consumers_sink(d->cons));
	if (d->gpu_deferred)
		vshm_event_loop_remove_idle(d->loop, d->gpu_deferred);
	d->gpu_deferred = NULL;
	if (d->gpu)
		vgs_gpu_destroy(d->gpu);
	d->gpu = NULL;
	vgs_qemu_display_destroy(d->qd);
	d->qd = NULL;
	vgs_consumers_destroy(d->cons);
	d->cons = NULL;
	if (d->listen_watch)
		vshm_event_loop_remove_fd(d->loop, d->listen_watch);
	if (d->listen_fd >= 0) {
		struct stat st;

		close(d->listen_fd);
		/* Only our own socket file: a new instance may have replaced it. */
		if (d->listen_ino && lstat(d->opts.socket_path, &st) == 0 &&
		    st.st_ino == d->listen_ino && S_ISSOCK(st.st_mode))
			unlink(d->opts.socket_path);
	}
	vshm_event_loop_destroy(d->loop);
}

int main(int argc, char *argv[])
{
	struct daemon d = { .listen_fd = -1 };
	sigset_t sigs;
	char err[256];
	int ret;

	vshm_log_set_handler(log_handler, NULL);
	if (vgs_options_parse(argc, argv, &d.opts, err, sizeof(err)) < 0) {
		fprintf(stderr, "vshm-gpu: %s\nTry 'vshm-gpu --help' for more information.\n", err);
		return EXIT_USAGE;
	}
	switch (d.opts.action) {
	case VGS_ACTION_PRINT_CAPABILITIES:
		print_capabilities();
		return 0;
	case VGS_ACTION_HELP:
		fputs(vgs_options_usage(), stdout);
		return 0;
	case VGS_ACTION_VERSION:
		printf("vshm-gpu %s\n", VSHM_VERSION);
		return 0;
	case VGS_ACTION_RUN:
		break;
	}
	vshm_log_set_level((enum vshm_log_level)d.opts.log_level);

	/*
	 * SIGTERM during start-up must still mean a clean exit 0: keep it
	 * pending until the loop's signalfd picks it up.
	 */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1); /* a stats request during start-up must not kill us */
	sigprocmask(SIG_BLOCK, &sigs, NULL);

	if (vgs_compat_prepare(&d.opts, &d.compat, err, sizeof(err)) < 0) {
		fprintf(stderr, "vshm-gpu: %s\n", err);
		return EXIT_USAGE;
	}
	/* Conventions: a requested feature that cannot work fails before serving. */
	if (d.opts.virgl && !virgl_usable()) {
		vshm_log(VSHM_LOG_ERROR, "--virgl: 3D rendering (virglrenderer) is not supported "
		                         "by this build yet; run without --virgl for 2D");
		return 1;
	}
	if (d.opts.render_node && check_render_node(d.opts.render_node) < 0)
		return 1;
	if (!d.opts.socket_path && check_socket_fd(d.opts.fd) < 0)
		return 1;
	if (d.opts.sandbox != VGS_SANDBOX_OFF && !vgs_sandbox_supported()) {
		vgs_sandbox_apply(d.opts.sandbox, err, sizeof(err));
		vshm_log(VSHM_LOG_ERROR, "%s", err);
		return 1;
	}

	/* Peers vanish mid-write; errors must come back as EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);

	if (setup(&d) < 0) {
		teardown(&d);
		return 1;
	}
	/* Everything start-up needs is open: from here on only the serving syscalls. */
	if (vgs_sandbox_apply(d.opts.sandbox, err, sizeof(err)) < 0) {
		vshm_log(VSHM_LOG_ERROR, "%s", err);
		teardown(&d);
		return 1;
	}
	/* TEST ONLY (tests/unit/server/test-sandbox.sh): try a forbidden call. */
	if (d.opts.sandbox != VGS_SANDBOX_OFF && getenv("VSHM_SANDBOX_SELFTEST"))
		vgs_sandbox_selftest(d.opts.sandbox, getenv("VSHM_SANDBOX_SELFTEST"));
	ret = vshm_event_loop_run(d.loop);
	if (ret < 0) {
		vshm_log(VSHM_LOG_ERROR, "event loop failed: %s", strerror(-ret));
		ret = 1;
	}
	log_stats(&d);
	teardown(&d);
	return ret;
}
