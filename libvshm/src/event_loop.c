/* SPDX-License-Identifier: MIT */
/*
 * event_loop.c - a small epoll loop implementing struct vshm_loop.
 *
 * Every epoll-backed source (fd watch, timer, signal) lives in a slot of a
 * table and is registered with epoll under "slot index | generation << 32"
 * rather than a pointer. A removed source is unregistered at once, but its
 * memory and slot are only recycled after the current dispatch, and the
 * generation check means a stale event (already fetched by epoll_wait, or
 * still reported because the owner closed a dup'ed fd before removing it)
 * can never reach a removed or recycled source.
 *
 * Idle callbacks are not in epoll; they sit on a list and run after the fd
 * events of a dispatch. A pending idle makes the epoll wait non-blocking.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <vshm/event_loop.h>
#include <vshm/log.h>

#include "util.h"

#define MAX_EVENTS 32

enum source_type {
	SOURCE_FD,
	SOURCE_TIMER,
	SOURCE_SIGNAL,
};

/* Common head of every epoll-backed source. */
struct source {
	enum source_type type;
	uint32_t slot;
	bool removed;
	struct source *next_dead; /* on the loop's dead list once removed */
};

struct vshm_watch {
	struct source base;
	int fd; /* not owned */
	uint32_t events;
	vshm_watch_cb cb;
	void *data;
};

struct vshm_timer {
	struct source base;
	struct vshm_event_loop *loop;
	int fd; /* timerfd, owned */
	vshm_timer_cb cb;
	void *data;
};

struct signal_source {
	struct source base;
	int fd; /* signalfd, owned */
	int signo;
	vshm_signal_cb cb;
	void *data;
};

enum idle_state {
	IDLE_PENDING,
	IDLE_RUNNING, /* its callback is on the stack */
	IDLE_DEAD,    /* ran or removed; freed after the dispatch */
};

struct vshm_idle {
	struct vshm_idle *prev, *next;
	enum idle_state state;
	vshm_idle_cb cb;
	void *data;
};

struct slot {
	struct source *src; /* NULL when free */
	uint32_t gen;
	uint32_t next_free;
};

#define SLOT_NONE UINT32_MAX

struct vshm_event_loop {
	int epfd;
	struct slot *slots;
	uint32_t nslots, free_head;

	/* Pending idles, a circular list with a sentinel head. */
	struct vshm_idle idles;
	/* Idles that ran or were removed, freed at the end of a dispatch. */
	struct vshm_idle *dead_idles;
	/* Removed epoll sources waiting to be freed (and their slots recycled). */
	struct source *dead;

	bool dispatching;
	bool quit;
	int exit_code;
};

static void idle_list_init(struct vshm_idle *head)
{
	head->prev = head->next = head;
}

static void idle_unlink(struct vshm_idle *i)
{
	i->prev->next = i->next;
	i->next->prev = i->prev;
	i->prev = i->next = i;
}

static void idle_append(struct vshm_idle *head, struct vshm_idle *i)
{
	i->prev = head->prev;
	i->next = head;
	head->prev->next = i;
	head->prev = i;
}

VSHM_EXPORT int vshm_event_loop_new(struct vshm_event_loop **out)
{
	struct vshm_event_loop *l;

	if (!out)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int err = -errno;
		free(l);
		return err;
	}
	l->free_head = SLOT_NONE;
	idle_list_init(&l->idles);
	*out = l;
	return 0;
}

static int slot_alloc(struct vshm_event_loop *l, struct source *src)
{
	uint32_t idx;

	if (l->free_head == SLOT_NONE) {
		uint32_t n = l->nslots ? l->nslots * 2 : 16;
		struct slot *s;

		if (n <= l->nslots)
			return -ENOMEM;
		s = realloc(l->slots, (size_t)n * sizeof(*s));
		if (!s)
			return -ENOMEM;
		for (uint32_t k = l->nslots; k < n; k++) {
			s[k].src = NULL;
			s[k].gen = 0;
			s[k].next_free = k + 1 < n ? k + 1 : SLOT_NONE;
		}
		l->slots = s;
		l->free_head = l->nslots;
		l->nslots = n;
	}
	idx = l->free_head;
	l->free_head = l->slots[idx].next_free;
	l->slots[idx].src = src;
	src->slot = idx;
	return 0;
}

static void slot_release(struct vshm_event_loop *l, uint32_t idx)
{
	l->slots[idx].src = NULL;
	/* A new generation invalidates any event still tagged with the old one. */
	l->slots[idx].gen++;
	l->slots[idx].next_free = l->free_head;
	l->free_head = idx;
}

static uint64_t slot_tag(struct vshm_event_loop *l, struct source *src)
{
	return (uint64_t)src->slot | ((uint64_t)l->slots[src->slot].gen << 32);
}

static struct source *slot_lookup(struct vshm_event_loop *l, uint64_t tag)
{
	uint32_t idx = (uint32_t)tag, gen = (uint32_t)(tag >> 32);
	struct source *src;

	if (idx >= l->nslots || l->slots[idx].gen != gen)
		return NULL;
	src = l->slots[idx].src;
	if (!src || src->removed)
		return NULL;
	return src;
}

/* Allocates a slot and registers @fd with epoll. */
static int source_register(struct vshm_event_loop *l, struct source *src, int fd, uint32_t events)
{
	struct epoll_event ev = { 0 };
	int r;

	r = slot_alloc(l, src);
	if (r < 0)
		return r;
	ev.events = events;
	ev.data.u64 = slot_tag(l, src);
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		r = -errno;
		slot_release(l, src->slot);
		return r;
	}
	return 0;
}

static void source_free(struct source *src)
{
	switch (src->type) {
	case SOURCE_FD:
		break;
	case SOURCE_TIMER:
		vshm_close_fd(((struct vshm_timer *)src)->fd);
		break;
	case SOURCE_SIGNAL:
		vshm_close_fd(((struct signal_source *)src)->fd);
		break;
	}
	free(src);
}

/*
 * Unregister now, free later: the source may be the one whose callback is
 * running, or one whose event sits further down the current event batch.
 */
static void source_remove(struct vshm_event_loop *l, struct source *src, int fd)
{
	if (src->removed)
		return;
	src->removed = true;
	/* Fails harmlessly when the owner already closed the fd. */
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	if (l->dispatching) {
		src->next_dead = l->dead;
		l->dead = src;
	} else {
		slot_release(l, src->slot);
		source_free(src);
	}
}

static void reap_dead(struct vshm_event_loop *l)
{
	while (l->dead) {
		struct source *src = l->dead;
		l->dead = src->next_dead;
		slot_release(l, src->slot);
		source_free(src);
	}
	while (l->dead_idles) {
		struct vshm_idle *i = l->dead_idles;
		l->dead_idles = i->next;
		free(i);
	}
}

VSHM_EXPORT void vshm_event_loop_destroy(struct vshm_event_loop *l)
{
	if (!l)
		return;
	/* Destroying from inside a callback is not supported; be safe anyway. */
	l->dispatching = false;
	reap_dead(l);
	for (uint32_t k = 0; k < l->nslots; k++) {
		if (l->slots[k].src)
			source_free(l->slots[k].src);
	}
	while (l->idles.next != &l->idles) {
		struct vshm_idle *i = l->idles.next;
		idle_unlink(i);
		free(i);
	}
	free(l->slots);
	vshm_close_fd(l->epfd);
	free(l);
}

/* ERR and HUP are always reported by epoll; only IN/OUT are selectable. */
static uint32_t to_epoll_events(uint32_t events)
{
	return events & (VSHM_EV_IN | VSHM_EV_OUT);
}

VSHM_EXPORT int vshm_event_loop_add_fd(struct vshm_event_loop *l, int fd, uint32_t events,
                                       vshm_watch_cb cb, void *data, struct vshm_watch **out)
{
	struct vshm_watch *w;
	int r;

	if (!l || fd < 0 || !cb || !out)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->base.type = SOURCE_FD;
	w->fd = fd;
	w->events = to_epoll_events(events);
	w->cb = cb;
	w->data = data;
	r = source_register(l, &w->base, fd, w->events);
	if (r < 0) {
		free(w);
		return r;
	}
	*out = w;
	return 0;
}

VSHM_EXPORT int vshm_event_loop_update_fd(struct vshm_event_loop *l, struct vshm_watch *w,
                                          uint32_t events)
{
	struct epoll_event ev = { 0 };

	if (!l || !w)
		return -EINVAL;
	if (w->base.removed)
		return -ENOENT;
	ev.events = to_epoll_events(events);
	ev.data.u64 = slot_tag(l, &w->base);
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		return -errno;
	w->events = ev.events;
	return 0;
}

VSHM_EXPORT void vshm_event_loop_remove_fd(struct vshm_event_loop *l, struct vshm_watch *w)
{
	if (!l || !w)
		return;
	source_remove(l, &w->base, w->fd);
}

VSHM_EXPORT int vshm_event_loop_add_timer(struct vshm_event_loop *l, vshm_timer_cb cb, void *data,
                                          struct vshm_timer **out)
{
	struct vshm_timer *t;
	int r;

	if (!l || !cb || !out)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->base.type = SOURCE_TIMER;
	t->loop = l;
	t->cb = cb;
	t->data = data;
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (t->fd < 0) {
		r = -errno;
		free(t);
		return r;
	}
	r = source_register(l, &t->base, t->fd, EPOLLIN);
	if (r < 0) {
		vshm_close_fd(t->fd);
		free(t);
		return r;
	}
	*out = t;
	return 0;
}

static struct timespec ns_to_timespec(uint64_t ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / 1000000000ull);
	ts.tv_nsec = (long)(ns % 1000000000ull);
	return ts;
}

VSHM_EXPORT int vshm_timer_arm(struct vshm_timer *t, uint64_t delay_ns, uint64_t period_ns)
{
	struct itimerspec its;

	if (!t)
		return -EINVAL;
	if (t->base.removed)
		return -ENOENT;
	its.it_value = ns_to_timespec(delay_ns);
	its.it_interval = ns_to_timespec(delay_ns ? period_ns : 0);
	/* Setting a timerfd also clears expiries counted under the old schedule. */
	if (timerfd_settime(t->fd, 0, &its, NULL) < 0)
		return -errno;
	return 0;
}

VSHM_EXPORT void vshm_event_loop_remove_timer(struct vshm_event_loop *l, struct vshm_timer *t)
{
	if (!l || !t)
		return;
	source_remove(l, &t->base, t->fd);
}

VSHM_EXPORT int vshm_event_loop_add_idle(struct vshm_event_loop *l, vshm_idle_cb cb, void *data,
                                         struct vshm_idle **out)
{
	struct vshm_idle *i;

	if (!l || !cb)
		return -EINVAL;
	i = calloc(1, sizeof(*i));
	if (!i)
		return -ENOMEM;
	i->state = IDLE_PENDING;
	i->cb = cb;
	i->data = data;
	idle_append(&l->idles, i);
	if (out)
		*out = i;
	return 0;
}

/*
 * An idle handle is valid until its callback has returned; removing it from
 * inside its own callback is a no-op. Removing after it ran is a caller bug.
 */
VSHM_EXPORT void vshm_event_loop_remove_idle(struct vshm_event_loop *l, struct vshm_idle *i)
{
	if (!l || !i || i->state != IDLE_PENDING)
		return;
	idle_unlink(i);
	i->state = IDLE_DEAD;
	if (l->dispatching) {
		i->next = l->dead_idles;
		l->dead_idles = i;
	} else {
		free(i);
	}
}

VSHM_EXPORT int vshm_event_loop_add_signal(struct vshm_event_loop *l, int signo, vshm_signal_cb cb,
                                           void *data)
{
	struct signal_source *s;
	sigset_t set;
	int r;

	if (!l || !cb || signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP)
		return -EINVAL;
	for (uint32_t k = 0; k < l->nslots; k++) {
		struct source *src = l->slots[k].src;
		if (src && !src->removed && src->type == SOURCE_SIGNAL &&
		    ((struct signal_source *)src)->signo == signo)
			return -EEXIST;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base.type = SOURCE_SIGNAL;
	s->signo = signo;
	s->cb = cb;
	s->data = data;

	sigemptyset(&set);
	sigaddset(&set, signo);
	/*
	 * Block first so the signal stays pending for the signalfd instead of
	 * running its default action. It stays blocked after destroy: a pending
	 * SIGTERM must not kill a process that is shutting down cleanly.
	 */
	r = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (r != 0) {
		free(s);
		return -r;
	}
	s->fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->fd < 0) {
		r = -errno;
		free(s);
		return r;
	}
	r = source_register(l, &s->base, s->fd, EPOLLIN);
	if (r < 0) {
		vshm_close_fd(s->fd);
		free(s);
		return r;
	}
	return 0;
}

static int dispatch_timer(struct vshm_timer *t)
{
	uint64_t expiry;
	ssize_t n;

	do {
		n = read(t->fd, &expiry, sizeof(expiry));
	} while (n < 0 && errno == EINTR);
	/* EAGAIN: re-armed or disarmed after the event was fetched. */
	if (n != (ssize_t)sizeof(expiry))
		return 0;
	/* Missed periods collapse into one call; callers read the clock. */
	t->cb(t, t->data);
	return 1;
}

static int dispatch_signal(struct signal_source *s)
{
	struct signalfd_siginfo si;
	int ran = 0;

	/* Standard signals coalesce anyway; read until drained. */
	for (;;) {
		ssize_t n = read(s->fd, &si, sizeof(si));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si))
			break;
		s->cb((int)si.ssi_signo, s->data);
		ran++;
		/* The callback may have removed this source. */
		if (s->base.removed)
			break;
	}
	return ran;
}

static int dispatch_idles(struct vshm_event_loop *l)
{
	struct vshm_idle run;
	int ran = 0;

	if (l->idles.next == &l->idles)
		return 0;
	/*
	 * Detach the pending list: idles added by these callbacks run in the
	 * next dispatch, so an idle that re-adds itself cannot spin forever.
	 */
	run.next = l->idles.next;
	run.prev = l->idles.prev;
	run.next->prev = &run;
	run.prev->next = &run;
	idle_list_init(&l->idles);

	while (run.next != &run) {
		struct vshm_idle *i = run.next;
		idle_unlink(i);
		i->state = IDLE_RUNNING;
		i->cb(i->data);
		ran++;
		i->state = IDLE_DEAD;
		i->next = l->dead_idles;
		l->dead_idles = i;
	}
	return ran;
}

VSHM_EXPORT int vshm_event_loop_dispatch(struct vshm_event_loop *l, int timeout_ms)
{
	struct epoll_event events[MAX_EVENTS];
	int n, ran = 0;

	if (!l)
		return -EINVAL;
	if (l->dispatching)
		return -EBUSY; /* nested dispatch would defeat the deferred frees */

	if (l->idles.next != &l->idles)
		timeout_ms = 0;
	n = epoll_wait(l->epfd, events, MAX_EVENTS, timeout_ms);
	if (n < 0) {
		if (errno != EINTR)
			return -errno;
		n = 0;
	}

	l->dispatching = true;
	for (int k = 0; k < n; k++) {
		struct source *src = slot_lookup(l, events[k].data.u64);
		if (!src)
			continue;
		switch (src->type) {
		case SOURCE_FD: {
			struct vshm_watch *w = (struct vshm_watch *)src;
			w->cb(w->fd,
			      events[k].events &
			              (VSHM_EV_IN | VSHM_EV_OUT | VSHM_EV_ERR | VSHM_EV_HUP),
			      w->data);
			ran++;
			break;
		}
		case SOURCE_TIMER:
			ran += dispatch_timer((struct vshm_timer *)src);
			break;
		case SOURCE_SIGNAL:
			ran += dispatch_signal((struct signal_source *)src);
			break;
		}
	}
	ran += dispatch_idles(l);
	l->dispatching = false;
	reap_dead(l);
	return ran;
}

VSHM_EXPORT void vshm_event_loop_quit(struct vshm_event_loop *l, int exit_code)
{
	if (!l)
		return;
	l->quit = true;
	l->exit_code = exit_code;
}

VSHM_EXPORT int vshm_event_loop_run(struct vshm_event_loop *l)
{
	int r;

	if (!l)
		return -EINVAL;
	while (!l->quit) {
		r = vshm_event_loop_dispatch(l, -1);
		if (r < 0)
			return r;
	}
	/* Re-arm so the loop can be run again. */
	l->quit = false;
	return l->exit_code;
}

static int iface_watch_add(void *loop, int fd, uint32_t events, vshm_watch_cb cb, void *data,
                           struct vshm_watch **out)
{
	return vshm_event_loop_add_fd(loop, fd, events, cb, data, out);
}

static int iface_watch_update(void *loop, struct vshm_watch *w, uint32_t events)
{
	return vshm_event_loop_update_fd(loop, w, events);
}

static void iface_watch_remove(void *loop, struct vshm_watch *w)
{
	vshm_event_loop_remove_fd(loop, w);
}

static uint64_t iface_now_ns(void *loop)
{
	return vshm_now_ns();
}

static const struct vshm_loop_ops event_loop_ops = {
	.watch_add = iface_watch_add,
	.watch_update = iface_watch_update,
	.watch_remove = iface_watch_remove,
	.now_ns = iface_now_ns,
};

VSHM_EXPORT struct vshm_loop vshm_event_loop_iface(struct vshm_event_loop *l)
{
	struct vshm_loop iface = { .ops = &event_loop_ops, .loop = l };
	return iface;
}
