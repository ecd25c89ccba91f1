/*
 * Unit tests for daemon/ratelimit.c: single token buckets and the keyed
 * table of them (one bucket per channel), including pruning.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "slackd.h"
#include "tap.h"

#define T0 1000000 /* a monotonic "now" well away from 0 */

/* The exact time in ms until bucket b (at rate r) holds one token. */
static double
exact_wait(const struct ratelimit_bucket *b, double rate)
{
	return (1.0 - b->tokens) * 1000.0 / rate;
}

static void
test_bucket_basics(void)
{
	struct ratelimit_bucket b = { 0, 0 };
	int64_t wait = -1, now = T0;
	int i, taken;

	for (i = 0, taken = 0; i < 3; i++) {
		if (ratelimit_bucket_take(&b, 1.0, 3.0, now, &wait) == 1 &&
		    wait == 0)
			taken++;
	}
	is_int(taken, 3, "a new bucket starts full: burst (3) takes succeed");
	is_int(ratelimit_bucket_take(&b, 1.0, 3.0, now, &wait), 0,
	    "the 4th take at the same time fails");
	ok(wait >= 1000 && wait <= 1001,
	    "wait is the time until the next token (1000 ms at 1/s)");
	if (wait < 1000 || wait > 1001)
		printf("#   wait %lld\n", (long long)wait);
	ok(b.tokens >= 0.0, "tokens never go negative");

	is_int(ratelimit_bucket_take(&b, 1.0, 3.0, now + 998, &wait), 0,
	    "still empty 2 ms before the token");
	ok(wait >= 2 && wait <= 3, "and wait says about 2 ms");
	is_int(ratelimit_bucket_take(&b, 1.0, 3.0, now + 1001, &wait), 1,
	    "a token after waiting");
	is_int(ratelimit_bucket_take(&b, 1.0, 3.0, now + 1001, &wait), 0,
	    "but only one");

	/* After a long idle time the bucket is full again, not fuller. */
	now += 3600 * 1000;
	for (i = 0, taken = 0; i < 10; i++)
		taken += ratelimit_bucket_take(&b, 1.0, 3.0, now, &wait);
	is_int(taken, 3, "after an hour idle: exactly burst takes");
	ok(b.tokens <= 3.0 && b.tokens >= 0.0, "tokens within [0, burst]");
}

static void
test_bucket_rates(void)
{
	struct ratelimit_bucket b = { 0, 0 };
	int64_t wait, now = T0;
	int i, taken;

	/* 2 per second, burst 1. */
	is_int(ratelimit_bucket_take(&b, 2.0, 1.0, now, &wait), 1,
	    "rate 2: first take");
	is_int(ratelimit_bucket_take(&b, 2.0, 1.0, now, &wait), 0,
	    "rate 2: empty");
	ok(wait >= 500 && wait <= 501, "rate 2: wait 500 ms");
	is_int(ratelimit_bucket_take(&b, 2.0, 1.0, now + 250, &wait), 0,
	    "rate 2: half a token after 250 ms is not enough");
	ok(wait >= 250 && wait <= 251, "rate 2: then wait 250 ms more");
	is_int(ratelimit_bucket_take(&b, 2.0, 1.0, now + 500, &wait), 1,
	    "rate 2: a token after 500 ms");

	/* Fractional rate: one every 2 s. */
	memset(&b, 0, sizeof b);
	(void)ratelimit_bucket_take(&b, 0.5, 1.0, now, &wait);
	is_int(ratelimit_bucket_take(&b, 0.5, 1.0, now, &wait), 0,
	    "rate 0.5: empty after one");
	ok(wait >= 2000 && wait <= 2001, "rate 0.5: wait 2000 ms");

	/* A fast rate still caps at burst. */
	memset(&b, 0, sizeof b);
	for (i = 0; i < 3; i++)
		(void)ratelimit_bucket_take(&b, 10.0, 3.0, now, &wait);
	now += 1000; /* 10 tokens' worth */
	for (i = 0, taken = 0; i < 20; i++)
		taken += ratelimit_bucket_take(&b, 10.0, 3.0, now, &wait);
	is_int(taken, 3, "rate 10 burst 3: a second refills only to burst");
	ok(wait >= 100 && wait <= 101, "rate 10: wait 100 ms");

	/* A steady stream of attempts: successes track the rate. */
	memset(&b, 0, sizeof b);
	now = T0;
	taken = 0;
	for (i = 0; i < 100000 / 7; i++, now += 7) {
		taken += ratelimit_bucket_take(&b, 1.0, 3.0, now, &wait);
		if (b.tokens > 3.0 || b.tokens < 0.0)
			break;
	}
	ok(b.tokens <= 3.0 && b.tokens >= 0.0,
	    "tokens stay within [0, burst] over 100 s of attempts");
	ok(taken >= 100 && taken <= 3 + 100 + 1,
	    "about rate * time + burst successes in 100 s (%d)", taken);
}

/* Whenever a take fails, waiting *wait ms is enough and 2 ms less is not. */
static void
test_bucket_wait_property(void)
{
	static const double rates[] = { 0.001, 0.3, 1.0, 3.0, 7.5, 50.0 };
	struct ratelimit_bucket b, copy;
	uint64_t rng = 77;
	int64_t wait, w2, now;
	size_t r, checks = 0, bad = 0;
	int i;

	for (r = 0; r < nitems(rates); r++) {
		memset(&b, 0, sizeof b);
		now = T0;
		for (i = 0; i < 2000; i++) {
			rng = rng * 6364136223846793005ULL +
			    1442695040888963407ULL;
			now += (int64_t)((rng >> 33) % 400);
			if (ratelimit_bucket_take(
			        &b, rates[r], 2.0, now, &wait) == 1)
				continue;
			checks++;
			if (wait < 1 ||
			    (double)wait < exact_wait(&b, rates[r]) ||
			    (double)wait > exact_wait(&b, rates[r]) + 1.0)
				bad++;
			copy = b;
			if (ratelimit_bucket_take(
			        &copy, rates[r], 2.0, now + wait, &w2) != 1)
				bad++;
			copy = b;
			if (wait >= 2 &&
			    ratelimit_bucket_take(
			        &copy, rates[r], 2.0, now + wait - 2, &w2) != 0)
				bad++;
		}
	}
	ok(checks > 1000, "many empty-bucket cases were checked (%zu)", checks);
	is_int(bad, 0, "waiting *wait ms always suffices and is tight to 1 ms");
}

static void
test_bucket_burst_change(void)
{
	struct ratelimit_bucket b = { 0, 0 };
	int64_t wait;
	int taken = 0;

	(void)ratelimit_bucket_take(&b, 1.0, 10.0, T0, &wait);
	/*
	 * Regression test for a fixed bug: ratelimit_refill() clamps tokens to
	 * burst only when time has passed (now > stamp), so after the burst is
	 * lowered (ratelimit_set() on a config reload) a bucket used in the
	 * same millisecond keeps its old, larger balance: here 9 takes succeed
	 * under burst 2.
	 */
	while (taken < 100 && ratelimit_bucket_take(&b, 1.0, 2.0, T0, &wait))
		taken++;
	ok(taken <= 2, "after lowering burst to 2, at most 2 takes succeed");
	if (taken > 2)
		printf("#   %d takes succeeded\n", taken);
	(void)ratelimit_bucket_take(&b, 1.0, 2.0, T0 + 100000, &wait);
	ok(b.tokens <= 2.0, "a later take clamps the balance to the burst");
}

static void
test_keyed(void)
{
	struct ratelimit *rl;
	int64_t wait, now = T0;
	int i, taken;

	rl = ratelimit_new(1.0, 2.0);
	is_int(ratelimit_size(rl), 0, "a new table is empty");
	for (i = 0, taken = 0; i < 5; i++)
		taken += ratelimit_take(rl, "C1", now, &wait);
	is_int(taken, 2, "key C1: burst takes");
	ok(wait >= 1000 && wait <= 1001, "key C1: wait 1000 ms");
	for (i = 0, taken = 0; i < 5; i++)
		taken += ratelimit_take(rl, "C2", now, &wait);
	is_int(taken, 2, "key C2 is independent of C1");
	is_int(ratelimit_size(rl), 2, "two keys, two buckets");
	is_int(ratelimit_take(rl, "C1", now + 500, &wait), 0,
	    "C1 still empty after 500 ms");
	ok(wait >= 500 && wait <= 501, "C1 waits the rest");
	is_int(ratelimit_take(rl, "C1", now + 1000, &wait), 1,
	    "C1 refills at the rate");
	is_int(ratelimit_take(rl, "", now, &wait), 1, "an empty key works");
	is_int(ratelimit_take(rl, "C1x", now, &wait), 1,
	    "a key extending another is a different key");
	is_int(ratelimit_size(rl), 4, "four buckets");

	/* ratelimit_set changes the rate for existing and new buckets. */
	ratelimit_set(rl, 10.0, 2.0);
	(void)ratelimit_take(rl, "C3", now, &wait);
	(void)ratelimit_take(rl, "C3", now, &wait);
	is_int(ratelimit_take(rl, "C3", now, &wait), 0, "C3 empty at rate 10");
	ok(wait >= 100 && wait <= 101, "at rate 10 the wait is 100 ms");
	is_int(ratelimit_take(rl, "C2", now + 100, &wait), 1,
	    "an existing bucket refills at the new rate");
	ratelimit_set(rl, 1.0, 5.0);
	for (i = 0, taken = 0; i < 10; i++)
		taken += ratelimit_take(rl, "C9", now, &wait);
	is_int(taken, 5, "a new bucket gets the new burst");
	ratelimit_set(rl, 1.0, 0.0);
	for (i = 0, taken = 0; i < 10; i++)
		taken += ratelimit_take(rl, "C10", now, &wait);
	is_int(taken, 1, "a burst below 1 is raised to 1");
	ratelimit_free(rl);
	ratelimit_free(NULL); /* harmless */
}

static void
test_many_keys(void)
{
	struct ratelimit *rl;
	char key[32];
	int64_t wait, now = T0;
	size_t i, maxsize = 0, firsts = 0, seconds = 0;

	/* 100,000 channels, one message each, 1 ms apart, rate 1/s. */
	rl = ratelimit_new(1.0, 3.0);
	for (i = 0; i < 100000; i++, now++) {
		snprintf(key, sizeof key, "C%08zu", i);
		firsts += ratelimit_take(rl, key, now, &wait);
		if (ratelimit_size(rl) > maxsize)
			maxsize = ratelimit_size(rl);
	}
	is_int(firsts, 100000, "every new key's first take succeeds");
	ok(maxsize <= 8192, "the table stays bounded (at most %zu buckets)",
	    maxsize);
	ok(ratelimit_size(rl) < 100000 / 4,
	    "refilled buckets are pruned "
	    "(%zu left)",
	    ratelimit_size(rl));
	ratelimit_free(rl);

	/* Time frozen: nothing can be pruned, and nothing may be lost. */
	rl = ratelimit_new(1.0, 1.0);
	now = T0;
	for (i = 0; i < 20000; i++) {
		snprintf(key, sizeof key, "G%zu", i);
		firsts += ratelimit_take(rl, key, now, &wait);
	}
	is_int(ratelimit_size(rl), 20000,
	    "20000 busy buckets are all kept (grown table)");
	for (i = 0; i < 20000; i++) {
		snprintf(key, sizeof key, "G%zu", i);
		seconds += ratelimit_take(rl, key, now, &wait);
	}
	is_int(seconds, 0, "every busy bucket is still found (and empty)");
	is_int(ratelimit_size(rl), 20000, "re-taking adds no buckets");

	/* Later, new keys trigger pruning of the refilled ones. */
	now += 10000;
	for (i = 0; i < 40000 && ratelimit_size(rl) >= 20000; i++) {
		snprintf(key, sizeof key, "D%zu", i);
		(void)ratelimit_take(rl, key, now, &wait);
	}
	ok(ratelimit_size(rl) < 20000,
	    "refilled buckets are pruned once "
	    "time passes (%zu left after %zu new keys)",
	    ratelimit_size(rl), i);
	snprintf(key, sizeof key, "G%d", 5);
	is_int(ratelimit_take(rl, key, now, &wait), 1,
	    "a pruned key starts full again");
	ratelimit_free(rl);
}

/* Ready takes nothing; charge takes one, below empty if need be. */
static void
test_bucket_charge(void)
{
	struct ratelimit_bucket b;
	int64_t wait;
	int i;

	memset(&b, 0, sizeof b);
	for (i = 0; i < 5; i++)
		ok(ratelimit_bucket_ready(&b, 1.0 / 60, 2, 1000, &wait) &&
		        wait == 0,
		    "ready %d: a full bucket is ready, however often asked", i);
	ratelimit_bucket_charge(&b, 1.0 / 60, 2, 1000);
	ratelimit_bucket_charge(&b, 1.0 / 60, 2, 1000);
	ok(!ratelimit_bucket_ready(&b, 1.0 / 60, 2, 1000, &wait) &&
	        wait > 59000 && wait <= 60001,
	    "two charges empty a bucket of 2: a minute to wait (%lld ms)",
	    (long long)wait);
	ratelimit_bucket_charge(&b, 1.0 / 60, 2, 1000);
	ok(!ratelimit_bucket_ready(&b, 1.0 / 60, 2, 1000, &wait) &&
	        wait > 119000,
	    "a third charge goes below empty: two minutes (%lld ms)",
	    (long long)wait);
	ok(ratelimit_bucket_ready(&b, 1.0 / 60, 2, 1000 + 120001, &wait),
	    "ready again after they passed");
}

int
main(void)
{
	test_bucket_charge();
	test_bucket_basics();
	test_bucket_rates();
	test_bucket_wait_property();
	test_bucket_burst_change();
	test_keyed();
	test_many_keys();
	return tap_done();
}
