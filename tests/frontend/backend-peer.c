/* SPDX-License-Identifier: MIT */
/*
 * backend-peer.c - the front-end's end of the back-end request channel
 * (see backend-peer.h).
 */
#include "backend-peer.h"
#include "frontend.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_RULES 16
/* Bound on reading the rest of a message once its first byte arrived. */
#define MSG_TIMEOUT_MS 2000

struct rule {
	uint32_t request; /* 0: the default rule */
	enum tfe_peer_reply_mode mode;
	uint64_t value;
	int delay_ms;
};

struct tfe_peer {
	int fd;
	int stop_fd; /* eventfd: wakes the thread for destroy and cuts delays short */
	pthread_t thread;
	bool thread_running;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled on every new record and on close */
	struct rule def;
	struct rule rules[MAX_RULES];
	unsigned nrules;
	struct tfe_peer_record *recs;
	unsigned nrecs, caprecs;
	bool closed;
	bool always_reply; /* crosvm legacy: answer requests without NEED_REPLY too */
};

int tfe_peer_new(int fd, struct tfe_peer **out)
{
	struct tfe_peer *p = calloc(1, sizeof(*p));
	pthread_condattr_t ca;

	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	p->fd = fd;
	p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->stop_fd < 0) {
		int e = -errno;
		close(fd);
		free(p);
		return e;
	}
	pthread_mutex_init(&p->lock, NULL);
	/* Waits use deadlines on the monotonic clock, immune to wall-clock jumps. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	p->def.mode = TFE_PEER_REPLY_OK;
	*out = p;
	return 0;
}

void tfe_peer_destroy(struct tfe_peer *p)
{
	unsigned i;
	uint64_t one = 1;

	if (!p)
		return;
	if (p->thread_running) {
		if (write(p->stop_fd, &one, 8) != 8) {
			/* An eventfd write of 1 cannot fail short of a bug; join anyway. */
		}
		pthread_join(p->thread, NULL);
	}
	for (i = 0; i < p->nrecs; i++)
		if (p->recs[i].fd >= 0)
			close(p->recs[i].fd);
	free(p->recs);
	close(p->stop_fd);
	close(p->fd);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void tfe_peer_set_always_reply(struct tfe_peer *p, bool on)
{
	pthread_mutex_lock(&p->lock);
	p->always_reply = on;
	pthread_mutex_unlock(&p->lock);
}

void tfe_peer_set_reply(struct tfe_peer *p, uint32_t request, enum tfe_peer_reply_mode mode,
                        uint64_t value, int delay_ms)
{
	struct rule r = { request, mode, value, delay_ms };
	unsigned i;

	pthread_mutex_lock(&p->lock);
	if (request == 0) {
		p->def = r;
	} else {
		for (i = 0; i < p->nrules && p->rules[i].request != request; i++)
			;
		if (i < MAX_RULES) {
			p->rules[i] = r;
			if (i == p->nrules)
				p->nrules++;
		}
	}
	pthread_mutex_unlock(&p->lock);
}

static struct rule find_rule(struct tfe_peer *p, uint32_t request)
{
	unsigned i;
	for (i = 0; i < p->nrules; i++)
		if (p->rules[i].request == request)
			return p->rules[i];
	return p->def;
}

static void mark_closed(struct tfe_peer *p)
{
	pthread_mutex_lock(&p->lock);
	p->closed = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* Sleep @ms unless destroy wakes us: a delayed reply must not stall teardown. */
static bool delay_interrupted(struct tfe_peer *p, int ms)
{
	struct pollfd pfd = { .fd = p->stop_fd, .events = POLLIN };
	return poll(&pfd, 1, ms) > 0;
}

/* Receive and answer one request. 1 handled, -EPIPE closed, other -errno. */
static int handle_one(struct tfe_peer *p)
{
	struct tfe_peer_record rec;
	struct tfe_msg msg;
	struct rule rule;
	struct tfe_peer_record *slot;
	unsigned idx;
	int r;

	r = tfe_wire_recv(p->fd, &msg, MSG_TIMEOUT_MS, NULL, NULL);
	if (r < 0) {
		mark_closed(p);
		return r == -EPIPE || r == -ECONNRESET ? -EPIPE : r;
	}
	memset(&rec, 0, sizeof(rec));
	rec.request = msg.request;
	rec.flags = msg.flags;
	rec.size = msg.size;
	if (msg.size)
		memcpy(rec.payload, msg.payload,
		       msg.size < TFE_PEER_PAYLOAD_MAX ? msg.size : TFE_PEER_PAYLOAD_MAX);
	rec.nfds = msg.nfds;
	rec.fd = msg.nfds ? msg.fds[0] : -1;
	if (msg.nfds)
		msg.fds[0] = -1; /* kept in the record; the rest close below */

	pthread_mutex_lock(&p->lock);
	rule = find_rule(p, msg.request);
	/* Only NEED_REPLY requests are answered (protocols.md §1.8). */
	if (((msg.flags & TFE_FLAG_NEED_REPLY) || p->always_reply) &&
	    rule.mode != TFE_PEER_REPLY_NONE) {
		rec.replied = true;
		rec.reply_value = rule.mode == TFE_PEER_REPLY_ERROR ? rule.value : 0;
	}
	if (p->nrecs == p->caprecs) {
		unsigned cap = p->caprecs ? p->caprecs * 2 : 16;
		struct tfe_peer_record *n = realloc(p->recs, cap * sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&p->lock);
			if (rec.fd >= 0)
				close(rec.fd);
			tfe_msg_finish(&msg);
			return -ENOMEM;
		}
		p->recs = n;
		p->caprecs = cap;
	}
	idx = p->nrecs++;
	slot = &p->recs[idx];
	*slot = rec;
	/*
	 * Recorded (with its reply already filled in) before the reply goes
	 * out: a back-end that returns once it has the reply lets the test
	 * read the record at once, with no window where it is missing.
	 */
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);

	if (rec.replied) {
		if (rule.mode == TFE_PEER_REPLY_DELAY && rule.delay_ms > 0 &&
		    delay_interrupted(p, rule.delay_ms)) {
			tfe_msg_finish(&msg);
			return 1;
		}
		r = tfe_wire_send(p->fd, msg.request, TFE_FLAG_VERSION | TFE_FLAG_REPLY,
		                  &rec.reply_value, 8, NULL, 0, MSG_TIMEOUT_MS, NULL, NULL);
		if (r < 0 && r != -EPIPE && r != -ECONNRESET) {
			tfe_msg_finish(&msg);
			return r;
		}
	}
	tfe_msg_finish(&msg);
	return 1;
}

static void *peer_thread(void *data)
{
	struct tfe_peer *p = data;

	for (;;) {
		struct pollfd pfd[2] = { { .fd = p->fd, .events = POLLIN },
			                 { .fd = p->stop_fd, .events = POLLIN } };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents && handle_one(p) < 0)
			break;
	}
	/* Whatever ended the thread, no more requests will be seen. */
	mark_closed(p);
	return NULL;
}

int tfe_peer_start_thread(struct tfe_peer *p)
{
	int r;

	if (p->thread_running)
		return -EALREADY;
	r = pthread_create(&p->thread, NULL, peer_thread, p);
	if (r)
		return -r;
	p->thread_running = true;
	return 0;
}

int tfe_peer_dispatch(struct tfe_peer *p, int timeout_ms)
{
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
	int r;

	if (p->thread_running)
		return -EBUSY;
	if (p->closed)
		return -EPIPE;
	do {
		r = poll(&pfd, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return 0;
	return handle_one(p);
}

unsigned tfe_peer_count(struct tfe_peer *p)
{
	unsigned n;
	pthread_mutex_lock(&p->lock);
	n = p->nrecs;
	pthread_mutex_unlock(&p->lock);
	return n;
}

int tfe_peer_get(struct tfe_peer *p, unsigned i, struct tfe_peer_record *out)
{
	int r = -ENOENT;
	pthread_mutex_lock(&p->lock);
	if (i < p->nrecs) {
		*out = p->recs[i];
		r = 0;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

unsigned tfe_peer_count_request(struct tfe_peer *p, uint32_t request)
{
	unsigned i, n = 0;
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->nrecs; i++)
		n += p->recs[i].request == request;
	pthread_mutex_unlock(&p->lock);
	return n;
}

bool tfe_peer_closed(struct tfe_peer *p)
{
	bool c;
	pthread_mutex_lock(&p->lock);
	c = p->closed;
	pthread_mutex_unlock(&p->lock);
	return c;
}

int tfe_peer_wait_count(struct tfe_peer *p, unsigned n, int timeout_ms)
{
	struct timespec dl;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000l;
	if (dl.tv_nsec >= 1000000000l) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000l;
	}
	if (!p->thread_running) {
		while (tfe_peer_count(p) < n) {
			struct timespec now;
			long ms;
			clock_gettime(CLOCK_MONOTONIC, &now);
			ms = (dl.tv_sec - now.tv_sec) * 1000 + (dl.tv_nsec - now.tv_nsec) / 1000000;
			if (ms <= 0)
				return -ETIMEDOUT;
			r = tfe_peer_dispatch(p, (int)ms);
			if (r < 0)
				return r;
		}
		return 0;
	}
	pthread_mutex_lock(&p->lock);
	while (p->nrecs < n && !p->closed && r == 0)
		r = pthread_cond_timedwait(&p->cond, &p->lock, &dl);
	r = p->nrecs >= n ? 0 : p->closed ? -EPIPE : -ETIMEDOUT;
	pthread_mutex_unlock(&p->lock);
	return r;
}
