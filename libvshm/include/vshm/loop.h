/* SPDX-License-Identifier: MIT */
/*
 * vshm/loop.h - event loop integration.
 *
 * libvshm never owns an event loop. Objects that need to hear about fds
 * (connections, kick eventfds, the backend channel) ask the embedder's loop
 * through this small vtable, in the style of libvhost-user's set_watch /
 * remove_watch. Any loop can implement it: epoll, sd-event, GLib, poll().
 * libvshm ships one small epoll loop (vshm/event_loop.h) as a convenience;
 * using it is optional.
 */
#ifndef VSHM_LOOP_H
#define VSHM_LOOP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Event bits, the same values as EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP. */
#define VSHM_EV_IN  0x001u
#define VSHM_EV_OUT 0x004u
#define VSHM_EV_ERR 0x008u
#define VSHM_EV_HUP 0x010u

struct vshm_watch; /* opaque, owned by the loop implementation */

typedef void (*vshm_watch_cb)(int fd, uint32_t revents, void *data);

struct vshm_loop_ops {
	/*
	 * Watch @fd for @events (IN/OUT; ERR and HUP are always reported) and
	 * call @cb from the loop. The loop never closes @fd. Returns 0 and the
	 * handle in *out, or -errno.
	 */
	int (*watch_add)(void *loop, int fd, uint32_t events, vshm_watch_cb cb, void *data,
	                 struct vshm_watch **out);
	/* Change the event mask. Returns 0 or -errno. */
	int (*watch_update)(void *loop, struct vshm_watch *w, uint32_t events);
	/*
	 * Stop watching. Must be safe to call from inside any callback,
	 * including the watch's own; the callback is never called again after.
	 */
	void (*watch_remove)(void *loop, struct vshm_watch *w);
	/* Monotonic time in nanoseconds; NULL means CLOCK_MONOTONIC. */
	uint64_t (*now_ns)(void *loop);
};

/* What an embedder hands to libvshm objects: the vtable plus its loop. */
struct vshm_loop {
	const struct vshm_loop_ops *ops;
	void *loop;
};

/* CLOCK_MONOTONIC in ns; used where a loop did not supply now_ns. */
uint64_t vshm_now_ns(void);

#ifdef __cplusplus
}
#endif

#endif
