/* SPDX-License-Identifier: MIT */
/*
 * stats.h - order statistics for benchmark samples.
 *
 * Benchmarks on a shared 2-core machine are noisy; medians and high
 * percentiles of many samples are what stays comparable between runs.
 */
#ifndef VSHM_BENCH_STATS_H
#define VSHM_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Percentile @p (0..100) of @n samples, nearest-rank; sorts @v in place. NaN if n == 0. */
double bench_percentile(double *v, size_t n, double p);
/* Median of @n samples (sorts @v in place). NaN if n == 0. */
double bench_median(double *v, size_t n);
/* CLOCK_MONOTONIC in ns. */
uint64_t bench_now_ns(void);

#endif
