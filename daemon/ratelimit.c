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

struct ratelimit_entry {
	struct ratelimit_entry *next;
	struct ratelimit_bucket bucket;
	char key[];
};

struct ratelimit {
	double rate; /* tokens per second */
	double burst;
	struct ratelimit_entry **table;
	size_t nbuckets;
	size_t count;
	size_t prune_at;
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
int
ratelimit_bucket_take(struct ratelimit_bucket *b, double rate, double burst,
    int64_t now, int64_t *wait)
{
	if (b->stamp == 0) {
		b->tokens = burst;
		b->stamp = now;
	}
	ratelimit_refill(b, rate, burst, now);
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		*wait = 0;
		return 1;
	}
	*wait = (int64_t)((1.0 - b->tokens) * 1000.0 / rate) + 1;
	return 0;
}

struct ratelimit *
ratelimit_new(double rate, double burst)
{
	struct ratelimit *rl;

	rl = xcalloc(1, sizeof *rl);
	rl->nbuckets = 256;
	rl->table = xcalloc(rl->nbuckets, sizeof *rl->table);
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
	struct ratelimit_entry *e, *next;
	size_t i;

	if (rl == NULL)
		return;
	for (i = 0; i < rl->nbuckets; i++) {
		for (e = rl->table[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(rl->table);
	free(rl);
}

size_t
ratelimit_size(const struct ratelimit *rl)
{
	return rl->count;
}

static size_t
ratelimit_hash(const char *key)
{
	size_t h = 14695981039346656037ULL;

	while (*key != '\0')
		h = (h ^ (unsigned char)*key++) * 1099511628211ULL;
	return h;
}

/* Forget buckets that have refilled: they are the same as no bucket. */
static void
ratelimit_prune(struct ratelimit *rl, int64_t now)
{
	struct ratelimit_entry **ep, *e;
	size_t i;

	for (i = 0; i < rl->nbuckets; i++) {
		for (ep = &rl->table[i]; (e = *ep) != NULL;) {
			ratelimit_refill(&e->bucket, rl->rate, rl->burst, now);
			if (e->bucket.tokens >= rl->burst) {
				*ep = e->next;
				free(e);
				rl->count--;
			} else
				ep = &e->next;
		}
	}
	rl->prune_at =
	    rl->count * 2 > RATELIMIT_PRUNE ? rl->count * 2 : RATELIMIT_PRUNE;
}

static void
ratelimit_grow(struct ratelimit *rl)
{
	struct ratelimit_entry **table, *e, *next;
	size_t i, n = rl->nbuckets * 2, h;

	table = xcalloc(n, sizeof *table);
	for (i = 0; i < rl->nbuckets; i++) {
		for (e = rl->table[i]; e != NULL; e = next) {
			next = e->next;
			h = ratelimit_hash(e->key) & (n - 1);
			e->next = table[h];
			table[h] = e;
		}
	}
	free(rl->table);
	rl->table = table;
	rl->nbuckets = n;
}

int
ratelimit_take(
    struct ratelimit *rl, const char *key, int64_t now, int64_t *wait)
{
	struct ratelimit_entry *e;
	size_t h, len;

	h = ratelimit_hash(key) & (rl->nbuckets - 1);
	for (e = rl->table[h]; e != NULL; e = e->next) {
		if (strcmp(e->key, key) == 0)
			return ratelimit_bucket_take(
			    &e->bucket, rl->rate, rl->burst, now, wait);
	}
	if (rl->count >= rl->prune_at) {
		ratelimit_prune(rl, now);
		if (rl->count > rl->nbuckets)
			ratelimit_grow(rl);
		h = ratelimit_hash(key) & (rl->nbuckets - 1);
	}
	len = strlen(key);
	e = xcalloc(1, sizeof *e + len + 1);
	memcpy(e->key, key, len + 1);
	e->next = rl->table[h];
	rl->table[h] = e;
	rl->count++;
	return ratelimit_bucket_take(
	    &e->bucket, rl->rate, rl->burst, now, wait);
}
