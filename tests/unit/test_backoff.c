/*
 * Unit tests for daemon/backoff.c: exponential backoff with full jitter.
 * Attempt n (counting from 0) waits in [min, min(max, min * 2^n)].
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>

#include "slackd.h"
#include "tap.h"

#define MIN 1000
#define MAX 120000

static int64_t
expected_ceiling(int64_t min, int64_t max, unsigned n)
{
	int64_t c = min;

	while (n-- > 0 && c < max)
		c *= 2;
	return c < max ? c : max;
}

static void
test_bounds(void)
{
	struct backoff b;
	uint64_t seed;
	unsigned n;
	int64_t v, ceil;
	size_t draws = 0, out = 0, badceil = 0;

	for (seed = 1; seed <= 300; seed++) {
		backoff_init(&b, MIN, MAX, seed * 0x1234567ULL);
		for (n = 0; n < 20; n++) {
			ceil = backoff_ceiling(&b);
			if (ceil != expected_ceiling(MIN, MAX, n)) {
				if (badceil++ < 3)
					printf(
					    "#   seed %llu attempt %u: ceiling "
					    "%lld\n",
					    (unsigned long long)seed, n,
					    (long long)ceil);
			}
			v = backoff_next(&b);
			draws++;
			if (v < MIN || v > expected_ceiling(MIN, MAX, n)) {
				if (out++ < 3)
					printf(
					    "#   seed %llu attempt %u: %lld\n",
					    (unsigned long long)seed, n,
					    (long long)v);
			}
		}
	}
	ok(draws == 6000 && out == 0,
	    "%zu draws all within [min, min(max, min*2^n)]", draws);
	is_int(badceil, 0, "backoff_ceiling matches min(max, min*2^n)");
}

static void
test_ceiling(void)
{
	static const int64_t want[] = { 1000, 2000, 4000, 8000, 16000, 32000,
		64000, 120000, 120000, 120000 };
	struct backoff b;
	unsigned n;
	int64_t v;

	backoff_init(&b, MIN, MAX, 42);
	is_int(b.min, MIN, "init stores min");
	is_int(b.max, MAX, "init stores max");
	is_int(b.failures, 0, "init starts at zero failures");
	for (n = 0; n < nitems(want); n++) {
		is_int(backoff_ceiling(&b), want[n],
		    n < 7 ? "ceiling doubles" : "ceiling saturates at max");
		(void)backoff_next(&b);
	}
	v = backoff_next(&b);
	ok(v >= MIN && v <= MAX, "a draw after saturation is in range");
	for (n = 0; n < 200; n++)
		(void)backoff_next(&b);
	is_int(backoff_ceiling(&b), MAX, "ceiling stays at max after 200 more");

	/* The first attempt waits exactly min: its range is [min, min]. */
	backoff_init(&b, MIN, MAX, 7);
	is_int(backoff_next(&b), MIN, "attempt 0 waits exactly min");
}

static void
test_spread(void)
{
	struct backoff b;
	int64_t v, lo = INT64_MAX, hi = INT64_MIN;
	unsigned n, bins[10] = { 0 }, minbin;
	double sum = 0, mean;
	uint64_t seed;
	unsigned low = 0, high = 0;

	backoff_init(&b, MIN, MAX, 99);
	for (n = 0; n < 20; n++)
		(void)backoff_next(&b);
	for (n = 0; n < 1000; n++) {
		v = backoff_next(&b);
		if (v < lo)
			lo = v;
		if (v > hi)
			hi = v;
		sum += (double)v;
	}
	ok(hi - lo > (MAX - MIN) / 2,
	    "1000 draws at saturation span more than half the range");
	if (hi - lo <= (MAX - MIN) / 2)
		printf("#   spread %lld..%lld\n", (long long)lo, (long long)hi);
	mean = sum / 1000;
	ok(mean > MIN + 0.4 * (MAX - MIN) && mean < MIN + 0.6 * (MAX - MIN),
	    "the mean at saturation is near the middle (uniform)");

	/* A histogram over 10000 draws: every tenth of the range is used. */
	for (n = 0; n < 10000; n++) {
		v = backoff_next(&b);
		bins[(v - MIN) * 10 / (MAX - MIN + 1)]++;
	}
	minbin = bins[0];
	for (n = 1; n < 10; n++) {
		if (bins[n] < minbin)
			minbin = bins[n];
	}
	ok(minbin > 700, "each tenth of the range gets > 7%% of the draws");
	if (minbin <= 700) {
		for (n = 0; n < 10; n++)
			printf("#   bin %u: %u\n", n, bins[n]);
	}

	/* Attempt 1 (range [min, 2 min]) over many seeds: both halves. */
	for (seed = 1; seed <= 1000; seed++) {
		backoff_init(&b, MIN, MAX, seed);
		(void)backoff_next(&b);
		v = backoff_next(&b);
		if (v < MIN + MIN / 2)
			low++;
		else
			high++;
	}
	ok(low > 300 && high > 300,
	    "attempt 1 over 1000 seeds uses both halves of [min, 2 min]");
}

static void
test_reset(void)
{
	struct backoff b;
	unsigned n;

	backoff_init(&b, MIN, MAX, 5);
	for (n = 0; n < 30; n++)
		(void)backoff_next(&b);
	is_int(backoff_ceiling(&b), MAX, "saturated before reset");
	backoff_reset(&b);
	is_int(b.failures, 0, "reset clears the failures");
	is_int(backoff_ceiling(&b), MIN, "reset: ceiling back to min");
	is_int(backoff_next(&b), MIN, "reset: next wait is min");
	is_int(backoff_ceiling(&b), 2 * MIN, "then it doubles again");
	ok(b.min == MIN && b.max == MAX, "reset keeps min and max");
}

static void
test_edges(void)
{
	struct backoff b;
	unsigned n, bad = 0;

	backoff_init(&b, 5000, 5000, 11);
	for (n = 0; n < 100; n++) {
		if (backoff_ceiling(&b) != 5000 || backoff_next(&b) != 5000)
			bad++;
	}
	is_int(bad, 0, "min == max: every wait is min");

	backoff_init(&b, 5000, 1000, 11);
	is_int(b.max, 5000, "max < min is raised to min");
	for (n = 0, bad = 0; n < 20; n++) {
		if (backoff_next(&b) != 5000)
			bad++;
	}
	is_int(bad, 0, "max < min: every wait is min");

	backoff_init(&b, 10, 86400000, 3); /* the config's extremes */
	for (n = 0, bad = 0; n < 100; n++) {
		int64_t c = backoff_ceiling(&b), v = backoff_next(&b);

		if (c < 10 || c > 86400000 || v < 10 || v > c)
			bad++;
	}
	is_int(bad, 0, "config extremes (10 ms .. 24 h) stay in range");
	is_int(backoff_ceiling(&b), 86400000, "and saturate at 24 h");

	/*
	 * Regression test for a fixed bug: backoff_ceiling() doubles an int64_t
	 * without checking for overflow; with max above 2^62 the 63rd doubling
	 * overflows (signed overflow, undefined), the ceiling turns negative
	 * and then 0, and waits fall back to min.  Unreachable with the
	 * config's limits (reconnect_max <= 24 h) but wrong for the function as
	 * specified.
	 */
	backoff_init(&b, 1, INT64_MAX, 3);
	for (n = 0, bad = 0; n < 100; n++) {
		int64_t c = backoff_ceiling(&b), v = backoff_next(&b);

		if (c < 1 || v < 1 || v > c || (n >= 63 && c < INT64_MAX / 2)) {
			if (bad++ < 2)
				printf(
				    "#   attempt %u: ceiling %lld, wait %lld\n",
				    n, (long long)c, (long long)v);
		}
	}
	is_int(bad, 0, "max = INT64_MAX: the ceiling never overflows");
}

static void
test_determinism(void)
{
	struct backoff a, b, c, z;
	unsigned n, same = 1, differ = 0, zvaried = 0;
	int64_t va, vb, vz, first = -1;

	backoff_init(&a, MIN, MAX, 12345);
	backoff_init(&b, MIN, MAX, 12345);
	backoff_init(&c, MIN, MAX, 54321);
	backoff_init(&z, MIN, MAX, 0);
	for (n = 0; n < 200; n++) {
		va = backoff_next(&a);
		vb = backoff_next(&b);
		if (va != vb)
			same = 0;
		if (backoff_next(&c) != va)
			differ++;
		vz = backoff_next(&z);
		if (n > 10) {
			if (first == -1)
				first = vz;
			else if (vz != first)
				zvaried = 1;
		}
	}
	ok(same, "the same seed gives the same 200 waits");
	ok(differ > 150, "a different seed gives different waits");
	ok(zvaried, "seed 0 still gives varying waits");
}

int
main(void)
{
	test_bounds();
	test_ceiling();
	test_spread();
	test_reset();
	test_edges();
	test_determinism();
	return tap_done();
}
