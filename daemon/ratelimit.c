/*
 * Token buckets: one by itself (rtm.connect, Slack's tier 1) or a table of
 * them keyed by string (outbound messages, one bucket per channel).  A
 * bucket holds at most burst tokens and gains rate tokens per second.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "slackd.h"

#define RATELIMIT_PRUNE 4096 /* look for idle buckets beyond this many */

struct ratelimit {
	double rate; /* tokens per second */
	double burst;
	struct map *buckets;
	size_t prune_at;
	int64_t now; /* for ratelimit_prune_one */
};

static void
ratelimit_refill(
    struct ratelimit_bucket *b, double rate, double burst, int64_t now)
{
	if (now > b->stamp)
		b->tokens += (double)(now - b->stamp) * rate / 1000.0;
	if (b->tokens > burst)
		b->tokens = burst; /* also after burst was lowered */
	b->stamp = now;
}

/*
 * Take one token at time now (ms).  Returns 1 if taken; 0 if the bucket is
 * empty, with *wait set to the ms until a token is there.  A bucket whose
 * stamp is 0 starts full.
 */
/* A bucket whose stamp is 0 starts full. */
static void
ratelimit_bucket_start(struct ratelimit_bucket *b, double burst, int64_t now)
{
	if (b->stamp == 0) {
		b->tokens = burst;
		b->stamp = now;
	}
}

/*
 * Is there a token at time now (ms)?  Returns 1 if so, taking nothing;
 * 0 if not, with *wait set to the ms until there is one.
 */
int
ratelimit_bucket_ready(struct ratelimit_bucket *b, double rate, double burst,
    int64_t now, int64_t *wait)
{
	ratelimit_bucket_start(b, burst, now);
	ratelimit_refill(b, rate, burst, now);
	if (b->tokens >= 1.0) {
		*wait = 0;
		return 1;
	}
	*wait = (int64_t)((1.0 - b->tokens) * 1000.0 / rate) + 1;
	return 0;
}

/*
 * Take a token for a call that was made (checked with ..._ready before);
 * the bucket may go below empty, which only makes the next wait longer.
 */
void
ratelimit_bucket_charge(
    struct ratelimit_bucket *b, double rate, double burst, int64_t now)
{
	ratelimit_bucket_start(b, burst, now);
	ratelimit_refill(b, rate, burst, now);
	b->tokens -= 1.0;
}

/*
 * Take one token at time now (ms).  Returns 1 if taken; 0 if the bucket is
 * empty, with *wait set to the ms until a token is there.
 */
int
ratelimit_bucket_take(struct ratelimit_bucket *b, double rate, double burst,
    int64_t now, int64_t *wait)
{
	if (!ratelimit_bucket_ready(b, rate, burst, now, wait))
		return 0;
	b->tokens -= 1.0;
	return 1;
}

struct ratelimit *
ratelimit_new(double rate, double burst)
{
	struct ratelimit *rl;

	rl = xcalloc(1, sizeof *rl);
	rl->buckets = map_new();
	rl->prune_at = RATELIMIT_PRUNE;
	ratelimit_set(rl, rate, burst);
	return rl;
}

void
ratelimit_set(struct ratelimit *rl, double rate, double burst)
{
	rl->rate = rate;
	rl->burst = burst < 1 ? 1 : burst;
}

void
ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	map_free(rl->buckets, free);
	free(rl);
}

size_t
ratelimit_size(const struct ratelimit *rl)
{
	return map_count(rl->buckets);
}

/* A bucket that has refilled is the same as no bucket: forget it. */
static int
ratelimit_prune_one(const char *key, void *value, void *arg)
{
	struct ratelimit *rl = arg;
	struct ratelimit_bucket *b = value;

	ratelimit_refill(b, rl->rate, rl->burst, rl->now);
	if (b->tokens < rl->burst)
		return 0;
	free(b);
	return 1;
}

int
ratelimit_take(
    struct ratelimit *rl, const char *key, int64_t now, int64_t *wait)
{
	struct ratelimit_bucket *b;

	if ((b = map_get(rl->buckets, key)) == NULL) {
		if (map_count(rl->buckets) >= rl->prune_at) {
			rl->now = now;
			map_foreach(rl->buckets, ratelimit_prune_one, rl);
			rl->prune_at =
			    map_count(rl->buckets) * 2 > RATELIMIT_PRUNE
			    ? map_count(rl->buckets) * 2
			    : RATELIMIT_PRUNE;
		}
		b = xcalloc(1, sizeof *b);
		map_put(rl->buckets, key, b);
	}
	return ratelimit_bucket_take(b, rl->rate, rl->burst, now, wait);
}
