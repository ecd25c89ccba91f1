/*
 * Reconnect backoff: exponential, with full jitter, between a floor and a
 * ceiling.  Attempt n waits a uniformly random time in
 * [min, min(max, min * 2^n)], so a fleet of daemons that lost Slack at the
 * same moment spreads out instead of reconnecting in step.
 */
#include "config.h"

#include "slackd.h"

void
backoff_init(struct backoff *b, int64_t min, int64_t max, uint64_t seed)
{
	b->min = min;
	b->max = max < min ? min : max;
	b->failures = 0;
	b->rng = seed != 0 ? seed : 0x9e3779b97f4a7c15ULL;
}

void
backoff_reset(struct backoff *b)
{
	b->failures = 0;
}

/* splitmix64: small, fast, good enough for jitter. */
static uint64_t
backoff_rand(struct backoff *b)
{
	uint64_t z;

	z = (b->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The upper bound of the next wait. */
int64_t
backoff_ceiling(const struct backoff *b)
{
	int64_t c = b->min > 0 ? b->min : 1;
	unsigned i;

	for (i = 0; i < b->failures && c < b->max; i++) {
		if (c > b->max / 2)
			return b->max;
		c *= 2;
	}
	return c > b->max ? b->max : c;
}

/* The wait before the next attempt, in ms; counts one more failure. */
int64_t
backoff_next(struct backoff *b)
{
	int64_t ceil = backoff_ceiling(b), span;

	if (b->failures < 64)
		b->failures++;
	span = ceil - b->min;
	if (span <= 0)
		return b->min;
	return b->min + (int64_t)(backoff_rand(b) % (uint64_t)(span + 1));
}
