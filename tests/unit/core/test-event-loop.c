/* SPDX-License-Identifier: MIT */
/* test-event-loop.c - fd, timer, idle and signal sources; removal safety. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <vshm/event_loop.h>

#include "test-runner.h"

static void make_pipe(int p[2])
{
	CHECK_OK(pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0 ? -errno : 0);
}

static void put_byte(int fd)
{
	CHECK_EQ(write(fd, "x", 1), 1);
}

struct fd_ctx {
	int calls;
	uint32_t last_revents;
	int last_fd;
	struct vshm_event_loop *loop;
	struct vshm_watch *self;
	struct vshm_watch *other; /* removed by this callback when set */
	struct fd_ctx *other_ctx;
};

static void fd_cb(int fd, uint32_t revents, void *data)
{
	struct fd_ctx *ctx = data;

	ctx->calls++;
	ctx->last_fd = fd;
	ctx->last_revents = revents;
}

TEST(loop_new_destroy)
{
	struct vshm_event_loop *l = NULL;

	CHECK_OK(vshm_event_loop_new(&l));
	CHECK(l != NULL);
	/* Nothing to do: a zero-timeout dispatch runs no callbacks. */
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 0);
	vshm_event_loop_destroy(l);
	vshm_event_loop_destroy(NULL);
}

TEST(loop_fd_readable)
{
	struct vshm_event_loop *l;
	struct vshm_watch *w;
	struct fd_ctx ctx = { 0 };
	int p[2];
	char c;

	make_pipe(p);
	CHECK_OK(vshm_event_loop_new(&l));
	CHECK_OK(vshm_event_loop_add_fd(l, p[0], VSHM_EV_IN, fd_cb, &ctx, &w));

	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 0);
	CHECK_EQ(ctx.calls, 0);

	put_byte(p[1]);
	CHECK_EQ(vshm_event_loop_dispatch(l, 1000), 1);
	CHECK_EQ(ctx.calls, 1);
	CHECK_EQ(ctx.last_fd, p[0]);
	CHECK(ctx.last_revents & VSHM_EV_IN);

	/* Level-triggered: still readable until drained. */
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 1);
	CHECK_EQ(read(p[0], &c, 1), 1);
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 0);
	CHECK_EQ(ctx.calls, 2);

	/* HUP is reported even though only IN was asked for. */
	close(p[1]);
	CHECK_EQ(vshm_event_loop_dispatch(l, 1000), 1);
	CHECK(ctx.last_revents & VSHM_EV_HUP);

	vshm_event_loop_remove_fd(l, w);
	vshm_event_loop_destroy(l);
	close(p[0]);
}

TEST(loop_fd_update_events)
{
	struct vshm_event_loop *l;
	struct vshm_watch *w;
	struct fd_ctx ctx = { 0 };
	int p[2];

	make_pipe(p);
	CHECK_OK(vshm_event_loop_new(&l));
	/* An empty pipe's write end is writable but not readable. */
	CHECK_OK(vshm_event_loop_add_fd(l, p[1], 0, fd_cb, &ctx, &w));
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 0);
	CHECK_OK(vshm_event_loop_update_fd(l, w, VSHM_EV_OUT));
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 1);
	CHECK(ctx.last_revents & VSHM_EV_OUT);
	CHECK_OK(vshm_event_loop_update_fd(l, w, 0));
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 0);
	CHECK_EQ(ctx.calls, 1);

	vshm_event_loop_remove_fd(l, w);
	vshm_event_loop_destroy(l);
	close(p[0]);
	close(p[1]);
}

TEST(loop_add_fd_bad_args)
{
	struct vshm_event_loop *l;
	struct vshm_watch *w;
	struct fd_ctx ctx = { 0 };

	CHECK_OK(vshm_event_loop_new(&l));
	CHECK_EQ(vshm_event_loop_add_fd(l, -1, VSHM_EV_IN, fd_cb, &ctx, &w), -EINVAL);
	CHECK_EQ(vshm_event_loop_add_fd(l, 0, VSHM_EV_IN, NULL, &ctx, &w), -EINVAL);
	/* An fd that is not open is reported by epoll. */
	CHECK_EQ(vshm_event_loop_add_fd(l, 999, VSHM_EV_IN, fd_cb, &ctx, &w), -EBADF);
	vshm_event_loop_destroy(l);
}

static void remove_self_cb(int fd, uint32_t revents, void *data)
{
	struct fd_ctx *ctx = data;

	ctx->calls++;
	vshm_event_loop_remove_fd(ctx->loop, ctx->self);
	/* Removing twice from the same callback is harmless. */
	vshm_event_loop_remove_fd(ctx->loop, ctx->self);
}

TEST(loop_fd_remove_self_in_callback)
{
	struct vshm_event_loop *l;
	struct fd_ctx ctx = { 0 };
	int p[2];

	make_pipe(p);
	CHECK_OK(vshm_event_loop_new(&l));
	ctx.loop = l;
	CHECK_OK(vshm_event_loop_add_fd(l, p[0], VSHM_EV_IN, remove_self_cb, &ctx, &ctx.self));
	put_byte(p[1]);
	CHECK_EQ(vshm_event_loop_dispatch(l, 1000), 1);
	CHECK_EQ(ctx.calls, 1);
	/* Still readable, but the watch is gone. */
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 0);
	CHECK_EQ(ctx.calls, 1);
	vshm_event_loop_destroy(l);
	close(p[0]);
	close(p[1]);
}

static void remove_other_cb(int fd, uint32_t revents, void *data)
{
	struct fd_ctx *ctx = data;

	ctx->calls++;
	if (ctx->other) {
		vshm_event_loop_remove_fd(ctx->loop, ctx->other);
		/* The other callback must not try to remove us in turn. */
		ctx->other_ctx->other = NULL;
		ctx->other = NULL;
	}
}

TEST(loop_fd_remove_other_in_callback)
{
	struct vshm_event_loop *l;
	struct fd_ctx a = { 0 }, b = { 0 };
	int pa[2], pb[2];

	make_pipe(pa);
	make_pipe(pb);
	CHECK_OK(vshm_event_loop_new(&l));
	a.loop = b.loop = l;
	CHECK_OK(vshm_event_loop_add_fd(l, pa[0], VSHM_EV_IN, remove_other_cb, &a, &a.self));
	CHECK_OK(vshm_event_loop_add_fd(l, pb[0], VSHM_EV_IN, remove_other_cb, &b, &b.self));
	a.other = b.self;
	a.other_ctx = &b;
	b.other = a.self;
	b.other_ctx = &a;

	/*
	 * Both become ready before the dispatch, so both events are in one
	 * epoll batch; whichever runs first removes the other, which must then
	 * not be called even though its event was already fetched.
	 */
	put_byte(pa[1]);
	put_byte(pb[1]);
	CHECK_EQ(vshm_event_loop_dispatch(l, 1000), 1);
	CHECK_EQ(a.calls + b.calls, 1);

	/* The survivor keeps working; the removed one stays silent. */
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 1);
	CHECK_EQ(a.calls + b.calls, 2);
	CHECK(a.calls == 2 || b.calls == 2);

	vshm_event_loop_remove_fd(l, a.calls ? a.self : b.self);
	vshm_event_loop_destroy(l);
	close(pa[0]);
	close(pa[1]);
	close(pb[0]);
	close(pb[1]);
}

struct timer_ctx {
	int calls;
	int stop_after;
	struct vshm_event_loop *loop;
	struct vshm_timer *t;
};

static void timer_cb(struct vshm_timer *t, void *data)
{
	struct timer_ctx *ctx = data;

	CHECK(t == ctx->t);
	ctx->calls++;
	if (ctx->stop_after && ctx->calls == ctx->stop_after)
		vshm_event_loop_remove_timer(ctx->loop, t);
}

TEST(loop_timer_oneshot)
{
	struct vshm_event_loop *l;
	struct timer_ctx ctx = { 0 };
	uint64_t t0;

	CHECK_OK(vshm_event_loop_new(&l));
	CHECK_OK(vshm_event_loop_add_timer(l, timer_cb, &ctx, &ctx.t));
	/* Disarmed until armed. */
	CHECK_EQ(vshm_event_loop_dispatch(l, 20), 0);

	t0 = vshm_now_ns();
	CHECK_OK(vshm_timer_arm(ctx.t, 5 * 1000000ull, 0));
	while (ctx.calls == 0)
		CHECK(vshm_event_loop_dispatch(l, 1000) >= 0);
	CHECK(vshm_now_ns() - t0 >= 5 * 1000000ull);
	CHECK_EQ(ctx.calls, 1);
	/* One-shot: nothing more. */
	CHECK_EQ(vshm_event_loop_dispatch(l, 30), 0);
	CHECK_EQ(ctx.calls, 1);

	vshm_event_loop_remove_timer(l, ctx.t);
	vshm_event_loop_destroy(l);
}

TEST(loop_timer_disarm)
{
	struct vshm_event_loop *l;
	struct timer_ctx ctx = { 0 };

	CHECK_OK(vshm_event_loop_new(&l));
	CHECK_OK(vshm_event_loop_add_timer(l, timer_cb, &ctx, &ctx.t));
	CHECK_OK(vshm_timer_arm(ctx.t, 10 * 1000000ull, 0));
	CHECK_OK(vshm_timer_arm(ctx.t, 0, 0));
	CHECK_EQ(vshm_event_loop_dispatch(l, 40), 0);
	CHECK_EQ(ctx.calls, 0);
	/* Destroy frees the remaining timer and closes its timerfd (leak check). */
	vshm_event_loop_destroy(l);
}

TEST(loop_timer_periodic_remove_self)
{
	struct vshm_event_loop *l;
	struct timer_ctx ctx = { .stop_after = 3 };

	CHECK_OK(vshm_event_loop_new(&l));
	ctx.loop = l;
	CHECK_OK(vshm_event_loop_add_timer(l, timer_cb, &ctx, &ctx.t));
	CHECK_OK(vshm_timer_arm(ctx.t, 1000000ull, 2000000ull));
	while (ctx.calls < 3)
		CHECK(vshm_event_loop_dispatch(l, 1000) >= 0);
	CHECK_EQ(vshm_event_loop_dispatch(l, 30), 0);
	CHECK_EQ(ctx.calls, 3);
	vshm_event_loop_destroy(l);
}

struct idle_ctx {
	int calls;
	int *order;
	int *order_pos;
	int id;
	struct vshm_event_loop *loop;
	struct vshm_idle *other;
	struct vshm_idle *self;
	int quit_code; /* quit from the callback when non-zero */
	bool readd;
};

static void idle_cb(void *data)
{
	struct idle_ctx *ctx = data;

	ctx->calls++;
	if (ctx->order)
		ctx->order[(*ctx->order_pos)++] = ctx->id;
	if (ctx->self)
		vshm_event_loop_remove_idle(ctx->loop, ctx->self); /* no-op on itself */
	if (ctx->other) {
		vshm_event_loop_remove_idle(ctx->loop, ctx->other);
		ctx->other = NULL;
	}
	if (ctx->readd) {
		ctx->readd = false;
		CHECK_OK(vshm_event_loop_add_idle(ctx->loop, idle_cb, ctx, NULL));
	}
	if (ctx->quit_code)
		vshm_event_loop_quit(ctx->loop, ctx->quit_code);
}

TEST(loop_idle_runs_once_in_order)
{
	struct vshm_event_loop *l;
	int order[4], pos = 0;
	struct idle_ctx a = { .order = order, .order_pos = &pos, .id = 1 };
	struct idle_ctx b = { .order = order, .order_pos = &pos, .id = 2 };

	CHECK_OK(vshm_event_loop_new(&l));
	CHECK_OK(vshm_event_loop_add_idle(l, idle_cb, &a, NULL));
	CHECK_OK(vshm_event_loop_add_idle(l, idle_cb, &b, NULL));
	/* A pending idle makes even an infinite wait return at once. */
	CHECK_EQ(vshm_event_loop_dispatch(l, -1), 2);
	CHECK_EQ(pos, 2);
	CHECK_EQ(order[0], 1);
	CHECK_EQ(order[1], 2);
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 0);
	CHECK_EQ(a.calls + b.calls, 2);
	vshm_event_loop_destroy(l);
}

TEST(loop_idle_remove_before_and_during)
{
	struct vshm_event_loop *l;
	struct vshm_idle *ia, *ib, *ic;
	struct idle_ctx a = { 0 }, b = { 0 }, c = { 0 };

	CHECK_OK(vshm_event_loop_new(&l));
	a.loop = b.loop = c.loop = l;
	CHECK_OK(vshm_event_loop_add_idle(l, idle_cb, &a, &ia));
	CHECK_OK(vshm_event_loop_add_idle(l, idle_cb, &b, &ib));
	CHECK_OK(vshm_event_loop_add_idle(l, idle_cb, &c, &ic));
	/* Removed outside dispatch: never runs. */
	vshm_event_loop_remove_idle(l, ic);
	/* a removes b, queued after it in the same dispatch; a also removes itself. */
	a.other = ib;
	a.self = ia;
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 1);
	CHECK_EQ(a.calls, 1);
	CHECK_EQ(b.calls, 0);
	CHECK_EQ(c.calls, 0);
	vshm_event_loop_destroy(l);
}

TEST(loop_idle_added_from_idle_runs_next_dispatch)
{
	struct vshm_event_loop *l;
	struct idle_ctx a = { .readd = true };

	CHECK_OK(vshm_event_loop_new(&l));
	a.loop = l;
	CHECK_OK(vshm_event_loop_add_idle(l, idle_cb, &a, NULL));
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 1);
	CHECK_EQ(a.calls, 1);
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 1);
	CHECK_EQ(a.calls, 2);
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 0);
	vshm_event_loop_destroy(l);
}

/* An fd callback removes a timer and an idle whose turn is still to come. */
struct cross_ctx {
	struct vshm_event_loop *loop;
	struct vshm_timer *timer;
	struct vshm_idle *idle;
	int fd_calls;
};

static void cross_fd_cb(int fd, uint32_t revents, void *data)
{
	struct cross_ctx *ctx = data;

	ctx->fd_calls++;
	if (ctx->timer) {
		vshm_event_loop_remove_timer(ctx->loop, ctx->timer);
		ctx->timer = NULL;
	}
	if (ctx->idle) {
		vshm_event_loop_remove_idle(ctx->loop, ctx->idle);
		ctx->idle = NULL;
	}
}

static void cross_timer_cb(struct vshm_timer *t, void *data)
{
	struct cross_ctx *ctx = data;

	/* Only reachable if the timer fired before the fd callback ran. */
	if (ctx->timer) {
		vshm_event_loop_remove_timer(ctx->loop, ctx->timer);
		ctx->timer = NULL;
	}
}

static void never_idle_cb(void *data)
{
	CHECK(!"removed idle must not run");
}

TEST(loop_remove_timer_and_idle_from_fd_callback)
{
	struct vshm_event_loop *l;
	struct vshm_watch *w;
	struct cross_ctx ctx = { 0 };
	int p[2];

	make_pipe(p);
	CHECK_OK(vshm_event_loop_new(&l));
	ctx.loop = l;
	CHECK_OK(vshm_event_loop_add_fd(l, p[0], VSHM_EV_IN, cross_fd_cb, &ctx, &w));
	CHECK_OK(vshm_event_loop_add_timer(l, cross_timer_cb, &ctx, &ctx.timer));
	CHECK_OK(vshm_event_loop_add_idle(l, never_idle_cb, NULL, &ctx.idle));
	CHECK_OK(vshm_timer_arm(ctx.timer, 1000, 0));
	put_byte(p[1]);
	usleep(2000); /* both the timer and the pipe are ready now */
	CHECK(vshm_event_loop_dispatch(l, 0) >= 1);
	CHECK_EQ(ctx.fd_calls, 1);
	CHECK(ctx.timer == NULL);
	CHECK(ctx.idle == NULL);
	vshm_event_loop_remove_fd(l, w);
	vshm_event_loop_destroy(l);
	close(p[0]);
	close(p[1]);
}

struct sig_ctx {
	int calls;
	int signo;
};

static void sig_cb(int signo, void *data)
{
	struct sig_ctx *ctx = data;

	ctx->calls++;
	ctx->signo = signo;
}

TEST(loop_signal)
{
	struct vshm_event_loop *l;
	struct sig_ctx ctx = { 0 };
	sigset_t cur;

	CHECK_OK(vshm_event_loop_new(&l));
	CHECK_OK(vshm_event_loop_add_signal(l, SIGUSR1, sig_cb, &ctx));
	CHECK_EQ(vshm_event_loop_add_signal(l, SIGUSR1, sig_cb, &ctx), -EEXIST);
	CHECK_EQ(vshm_event_loop_add_signal(l, SIGKILL, sig_cb, &ctx), -EINVAL);
	CHECK_OK(sigprocmask(SIG_BLOCK, NULL, &cur));
	CHECK(sigismember(&cur, SIGUSR1));

	/* Blocked, so it waits for the signalfd instead of killing us. */
	CHECK_OK(kill(getpid(), SIGUSR1));
	CHECK_EQ(vshm_event_loop_dispatch(l, 1000), 1);
	CHECK_EQ(ctx.calls, 1);
	CHECK_EQ(ctx.signo, SIGUSR1);
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 0);
	vshm_event_loop_destroy(l);
}

TEST(loop_quit_exit_code)
{
	struct vshm_event_loop *l;
	struct idle_ctx a = { .quit_code = 42 };

	CHECK_OK(vshm_event_loop_new(&l));
	a.loop = l;
	CHECK_OK(vshm_event_loop_add_idle(l, idle_cb, &a, NULL));
	CHECK_EQ(vshm_event_loop_run(l), 42);
	CHECK_EQ(a.calls, 1);

	/* quit before run: run returns without blocking. */
	vshm_event_loop_quit(l, 7);
	CHECK_EQ(vshm_event_loop_run(l), 7);
	vshm_event_loop_destroy(l);
}

static void quit_timer_cb(struct vshm_timer *t, void *data)
{
	vshm_event_loop_quit(data, 3);
}

TEST(loop_run_until_timer_quits)
{
	struct vshm_event_loop *l;
	struct vshm_timer *t;

	CHECK_OK(vshm_event_loop_new(&l));
	CHECK_OK(vshm_event_loop_add_timer(l, quit_timer_cb, l, &t));
	CHECK_OK(vshm_timer_arm(t, 2000000ull, 0));
	CHECK_EQ(vshm_event_loop_run(l), 3);
	vshm_event_loop_destroy(l);
}

static void iface_cb(int fd, uint32_t revents, void *data)
{
	struct fd_ctx *ctx = data;
	struct vshm_loop *iface = (struct vshm_loop *)ctx->other_ctx;

	ctx->calls++;
	/* Removal through the vtable from inside the callback. */
	iface->ops->watch_remove(iface->loop, ctx->self);
}

TEST(loop_iface_vtable)
{
	struct vshm_event_loop *l;
	struct vshm_loop iface;
	struct fd_ctx ctx = { 0 };
	int p[2];

	make_pipe(p);
	CHECK_OK(vshm_event_loop_new(&l));
	iface = vshm_event_loop_iface(l);
	CHECK(iface.ops != NULL);
	CHECK(iface.loop == l);
	CHECK(iface.ops->now_ns == NULL || iface.ops->now_ns(iface.loop) > 0);
	ctx.other_ctx = (struct fd_ctx *)&iface;
	CHECK_OK(iface.ops->watch_add(iface.loop, p[1], 0, iface_cb, &ctx, &ctx.self));
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 0);
	CHECK_OK(iface.ops->watch_update(iface.loop, ctx.self, VSHM_EV_OUT));
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 1);
	CHECK_EQ(vshm_event_loop_dispatch(l, 0), 0);
	CHECK_EQ(ctx.calls, 1);
	vshm_event_loop_destroy(l);
	close(p[0]);
	close(p[1]);
}

struct nested_ctx {
	struct vshm_event_loop *loop;
	bool ran;
	int result;
};

static void nested_idle_cb(void *data)
{
	struct nested_ctx *ctx = data;

	ctx->ran = true;
	ctx->result = vshm_event_loop_dispatch(ctx->loop, 0);
}

TEST(loop_nested_dispatch_refused)
{
	struct nested_ctx ctx = { 0 };

	CHECK_OK(vshm_event_loop_new(&ctx.loop));
	CHECK_OK(vshm_event_loop_add_idle(ctx.loop, nested_idle_cb, &ctx, NULL));
	CHECK_EQ(vshm_event_loop_dispatch(ctx.loop, 0), 1);
	CHECK(ctx.ran);
	CHECK_EQ(ctx.result, -EBUSY);
	CHECK_EQ(vshm_event_loop_dispatch(NULL, 0), -EINVAL);
	vshm_event_loop_destroy(ctx.loop);
}
