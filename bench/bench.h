/*
 * Helpers the benchmark programs share (bench/gen, reader, floor_lws,
 * floor_bridge): clocks and the process's own memory figures.
 */
#ifndef SLACKD_BENCH_H
#define SLACKD_BENCH_H

#include <sys/time.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CLOCK_MONOTONIC in ns: the generator stamps events with it. */
static inline int64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* This process's CPU time (user + system, all threads) in µs. */
static inline double
bench_cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* A struct timeval (getrusage's times) in µs. */
static inline long
bench_tv_us(const struct timeval *tv)
{
	return (long)tv->tv_sec * 1000000 + (long)tv->tv_usec;
}

/* A "Key:  N kB" line of /proc/self/status (VmRSS, VmHWM), or -1. */
static inline long
bench_status_kb(const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, key, n) == 0 && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

#endif
