/* SPDX-License-Identifier: MIT */
/*
 * vshm/event_loop.h - a small epoll loop that implements struct vshm_loop.
 *
 * Optional: the daemon and the tests use it; embedders with their own loop
 * do not need it. Sources: fds, one-shot/periodic timers (one timerfd each),
 * signals (signalfd) and idle callbacks. Removing any source from inside any
 * callback is safe: removed sources are freed after the current dispatch.
 */
#ifndef VSHM_EVENT_LOOP_H
#define VSHM_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <vshm/loop.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vshm_event_loop;
struct vshm_timer;
struct vshm_idle;

/* Returns 0 or -errno. The loop owns its epoll fd. */
int vshm_event_loop_new(struct vshm_event_loop **out);
/* Frees every remaining source. NULL is accepted. */
void vshm_event_loop_destroy(struct vshm_event_loop *l);

/* The struct vshm_loop view of this loop, to hand to libvshm objects. */
struct vshm_loop vshm_event_loop_iface(struct vshm_event_loop *l);

/* fd watches, the same contract as struct vshm_loop_ops. */
int vshm_event_loop_add_fd(struct vshm_event_loop *l, int fd, uint32_t events, vshm_watch_cb cb,
                           void *data, struct vshm_watch **out);
int vshm_event_loop_update_fd(struct vshm_event_loop *l, struct vshm_watch *w, uint32_t events);
void vshm_event_loop_remove_fd(struct vshm_event_loop *l, struct vshm_watch *w);

typedef void (*vshm_timer_cb)(struct vshm_timer *t, void *data);
/* A disarmed timer; the loop owns its timerfd. Returns 0 or -errno. */
int vshm_event_loop_add_timer(struct vshm_event_loop *l, vshm_timer_cb cb, void *data,
                              struct vshm_timer **out);
/* Fire once after @delay_ns (0 disarms), then every @period_ns if non-zero. */
int vshm_timer_arm(struct vshm_timer *t, uint64_t delay_ns, uint64_t period_ns);
void vshm_event_loop_remove_timer(struct vshm_event_loop *l, struct vshm_timer *t);

typedef void (*vshm_idle_cb)(void *data);
/* Run @cb once at the end of the current (or next) dispatch. */
int vshm_event_loop_add_idle(struct vshm_event_loop *l, vshm_idle_cb cb, void *data,
                             struct vshm_idle **out);
void vshm_event_loop_remove_idle(struct vshm_event_loop *l, struct vshm_idle *i);

typedef void (*vshm_signal_cb)(int signo, void *data);
/* Blocks @signo for the calling thread and delivers it through signalfd. */
int vshm_event_loop_add_signal(struct vshm_event_loop *l, int signo, vshm_signal_cb cb, void *data);

/*
 * Wait up to @timeout_ms (-1 = forever) and dispatch ready sources.
 * Returns the number of callbacks run (>= 0) or -errno.
 */
int vshm_event_loop_dispatch(struct vshm_event_loop *l, int timeout_ms);

/* vshm_event_loop_run() returns after the current dispatch once this is called. */
void vshm_event_loop_quit(struct vshm_event_loop *l, int exit_code);
/* Dispatch until quit; returns the exit code given to quit, or -errno. */
int vshm_event_loop_run(struct vshm_event_loop *l);

#ifdef __cplusplus
}
#endif

#endif
