/* SPDX-License-Identifier: MIT */
/*
 * consumer_stats.c - per-consumer frame telemetry: the flush-to-written
 * latency histogram (log2 buckets in microseconds, the STATS layout),
 * percentiles read from it, and the log lines of SIGUSR1 and exit.
 */
#include <stdio.h>
#include <string.h>

#include "consumers-internal.h"

/* Bucket 0: L < 2 us; bucket i: [2^i, 2^(i+1)); bucket 15: L >= 32768 us. */
unsigned latency_bucket(uint64_t us)
{
	unsigned b = 0;

	while (b < VSHM_DISPLAY_LATENCY_BUCKETS - 1 && us >= (2ull << b))
		b++;
	return b;
}

void latency_add(struct latency *l, uint64_t us)
{
	l->hist[latency_bucket(us)]++;
	if (us > l->max_us)
		l->max_us = us;
}

/*
 * The upper bound (us) of the bucket holding the @pct-th percentile: an
 * over-estimate by at most a factor of two. 0 with no samples; the last
 * bucket reports its lower bound, 32768.
 */
uint64_t latency_percentile(const uint64_t hist[VSHM_DISPLAY_LATENCY_BUCKETS], unsigned pct)
{
	uint64_t total = 0, need, acc = 0;

	for (unsigned i = 0; i < VSHM_DISPLAY_LATENCY_BUCKETS; i++)
		total += hist[i];
	if (!total)
		return 0;
	/* The smallest rank r with r >= pct% of total (ceil), at least 1. */
	need = (total * pct + 99) / 100;
	if (need == 0)
		need = 1;
	for (unsigned i = 0; i < VSHM_DISPLAY_LATENCY_BUCKETS; i++) {
		acc += hist[i];
		if (acc >= need)
			return i == VSHM_DISPLAY_LATENCY_BUCKETS - 1 ? 1ull << i : 2ull << i;
	}
	return 1ull << (VSHM_DISPLAY_LATENCY_BUCKETS - 1);
}

void consumer_info(const struct vgs_consumer *c, struct vgs_consumer_info *out)
{
	memset(out, 0, sizeof(*out));
	out->consumer_id = c->id;
	out->vshm = c->st == CS_VSHM;
	memcpy(out->role, c->role, sizeof(out->role));
	out->role[sizeof(out->role) - 1] = '\0';
	out->granted = c->granted;
	for (unsigned i = 0; i < VGS_MAX_SCANOUTS; i++) {
		out->frames_sent += c->sc[i].frames_sent;
		out->frames_dropped += c->sc[i].frames_dropped;
	}
	out->frames_released = c->frames_released;
	out->frames_reclaimed = c->frames_reclaimed;
	out->frames_dmabuf = c->frames_dmabuf;
	out->frames_copy = c->frames_copy;
	if (c->conn) {
		struct vshm_conn_stats st;

		vshm_conn_get_stats(c->conn, &st);
		out->bytes_sent = st.bytes_out;
		out->queued_bytes = vshm_conn_queued_bytes(c->conn);
	}
	out->queued_bytes_max = c->queued_max;
	memcpy(out->latency_hist, c->lat.hist, sizeof(out->latency_hist));
	out->latency_p50_us = latency_percentile(c->lat.hist, 50);
	out->latency_p99_us = latency_percentile(c->lat.hist, 99);
	out->latency_max_us = c->lat.max_us;
}

static void log_info(const struct vgs_consumer_info *in, enum vshm_log_level level,
                     const char *prefix)
{
	vshm_log(level,
	         "%sconsumer %u (%s, %s) scanouts=0x%x frames sent=%llu dropped=%llu "
	         "released=%llu reclaimed=%llu latency p50<=%lluus p99<=%lluus max=%lluus "
	         "bytes=%llu queued=%llu queued_max=%llu blob frames dmabuf=%llu copy=%llu",
	         prefix, in->consumer_id, in->role[0] ? in->role : "-", in->vshm ? "vshm" : "qemu",
	         in->granted, (unsigned long long)in->frames_sent,
	         (unsigned long long)in->frames_dropped, (unsigned long long)in->frames_released,
	         (unsigned long long)in->frames_reclaimed, (unsigned long long)in->latency_p50_us,
	         (unsigned long long)in->latency_p99_us, (unsigned long long)in->latency_max_us,
	         (unsigned long long)in->bytes_sent, (unsigned long long)in->queued_bytes,
	         (unsigned long long)in->queued_bytes_max, (unsigned long long)in->frames_dmabuf,
	         (unsigned long long)in->frames_copy);
}

void vgs_consumers_log_stats(const struct vgs_consumers *cs, enum vshm_log_level level)
{
	struct vgs_consumers_stats st;
	struct vgs_consumer_info in;

	vgs_consumers_get_stats(cs, &st);
	vshm_log(level,
	         "stats: consumers connected=%u accepted=%llu refused=%llu errors=%llu "
	         "too_slow=%llu frames sent=%llu dropped=%llu released=%llu reclaimed=%llu "
	         "latency p50<=%lluus p99<=%lluus blob frames dmabuf=%llu copy=%llu "
	         "(copies=%llu, %llu bytes)",
	         st.connected, (unsigned long long)st.accepted, (unsigned long long)st.refused,
	         (unsigned long long)st.errors, (unsigned long long)st.too_slow,
	         (unsigned long long)st.frames_sent, (unsigned long long)st.frames_dropped,
	         (unsigned long long)st.frames_released, (unsigned long long)st.frames_reclaimed,
	         (unsigned long long)latency_percentile(st.latency_hist, 50),
	         (unsigned long long)latency_percentile(st.latency_hist, 99),
	         (unsigned long long)st.frames_dmabuf, (unsigned long long)st.frames_copy,
	         (unsigned long long)st.copies, (unsigned long long)st.copy_bytes);
	for (const struct vgs_consumer *c = cs->consumers; c; c = c->next) {
		consumer_info(c, &in);
		log_info(&in, level, "stats: ");
	}
}

/* Called by consumer_close(): the last word on a consumer, and into the totals. */
void consumer_stats_retire(struct vgs_consumer *c, const char *why)
{
	struct vgs_consumers_stats *t = &c->cs->stats;
	struct vgs_consumer_info in;
	char prefix[96];

	consumer_info(c, &in);
	t->frames_sent += in.frames_sent;
	t->frames_dropped += in.frames_dropped;
	t->frames_released += in.frames_released;
	t->frames_reclaimed += in.frames_reclaimed;
	t->frames_dmabuf += in.frames_dmabuf;
	t->frames_copy += in.frames_copy;
	for (unsigned i = 0; i < VSHM_DISPLAY_LATENCY_BUCKETS; i++)
		t->latency_hist[i] += in.latency_hist[i];
	snprintf(prefix, sizeof(prefix), "closed (%s): ", why);
	if (vshm_ratelimit_allow(&c->cs->rl))
		log_info(&in, VSHM_LOG_INFO, prefix);
}
