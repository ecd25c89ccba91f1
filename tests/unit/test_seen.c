/*
 * Unit tests: seen.c, the ids seen in a sliding window (Socket Mode's
 * de-duplication), against a plain list that does the same slowly.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slackd.h"
#include "tap.h"

static void
test_basics(void)
{
	struct seen *s = seen_new(1000, 600000);
	char key[SEEN_KEY_MAX + 2];

	is_int(seen_check(s, "e:abc", 5, 0), 0, "a new id is not seen");
	is_int(seen_check(s, "e:abc", 5, 10), 1, "the same id again is seen");
	is_int(
	    seen_check(s, "v:abc", 5, 10), 0, "another prefix is another id");
	is_int(seen_check(s, "e:ab", 4, 10), 0, "a prefix of an id is not it");
	is_int(seen_check(s, "e:abc", 5, 600000), 1,
	    "seen until the window has passed");
	is_int(seen_check(s, "e:abc", 5, 600001), 0,
	    "forgotten once older than the window");
	is_int(seen_check(s, "e:abc", 5, 600002), 1, "and remembered anew");
	is_int(seen_count(s), 3, "the expired id is counted once");
	memset(key, 'k', sizeof key);
	is_int(seen_check(s, key, SEEN_KEY_MAX, 1), 0, "longest id: new");
	is_int(seen_check(s, key, SEEN_KEY_MAX, 2), 1, "longest id: seen");
	is_int(seen_check(s, key, SEEN_KEY_MAX + 1, 1), 0,
	    "a longer id is not remembered");
	is_int(seen_check(s, key, SEEN_KEY_MAX + 1, 2), 0, "... ever");
	is_int(seen_check(s, "", 0, 3), 0, "the empty id: new");
	is_int(seen_check(s, "", 0, 4), 1, "the empty id: seen");
	seen_free(s);
	seen_free(NULL);
}

static void
test_max(void)
{
	struct seen *s = seen_new(3, 1000);

	seen_check(s, "a", 1, 0);
	seen_check(s, "b", 1, 0);
	seen_check(s, "c", 1, 0);
	is_int(seen_count(s), 3, "full");
	is_int(seen_check(s, "d", 1, 0), 0, "a fourth id is new");
	is_int(seen_count(s), 3, "still three");
	is_int(seen_check(s, "a", 1, 0), 0, "the oldest made room");
	is_int(seen_check(s, "c", 1, 0), 1, "the others stay");
	is_int(seen_check(s, "d", 1, 0), 1, "the newest stays");
	seen_free(s);
}

/* The reference: a list in arrival order, searched from the start. */
struct ref {
	char (*key)[16];
	size_t *len;
	int64_t *at;
	size_t head, count, max;
};

static int
ref_check(
    struct ref *r, int64_t window, const char *key, size_t len, int64_t now)
{
	size_t i;

	while (r->count > 0 && now - r->at[r->head] > window) {
		r->head++;
		r->count--;
	}
	for (i = r->head; i < r->head + r->count; i++) {
		if (r->len[i] == len && memcmp(r->key[i], key, len) == 0)
			return 1;
	}
	if (r->count == r->max) {
		r->head++;
		r->count--;
	}
	i = r->head + r->count++;
	memcpy(r->key[i], key, len);
	r->len[i] = len;
	r->at[i] = now;
	return 0;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static unsigned
rnd_n(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void
test_random(size_t max, int64_t window, unsigned nkeys, unsigned steps)
{
	struct seen *s = seen_new(max, window);
	struct ref r;
	char key[16];
	size_t len, differ = 0, hits = 0;
	int64_t now = 0;
	unsigned i;
	int a, b;

	r.key = calloc(steps, sizeof *r.key);
	r.len = calloc(steps, sizeof *r.len);
	r.at = calloc(steps, sizeof *r.at);
	r.head = r.count = 0;
	r.max = max;
	for (i = 0; i < steps; i++) {
		now += rnd_n(4);
		len = (size_t)snprintf(
		    key, sizeof key, "%c:%u", "ev"[rnd_n(2)], rnd_n(nkeys));
		a = seen_check(s, key, len, now);
		b = ref_check(&r, window, key, len, now);
		hits += b;
		if (a != b && differ++ < 5)
			printf(
			    "# step %u, %s at %lld: seen says %d, the list %d\n",
			    i, key, (long long)now, a, b);
		if (seen_count(s) != r.count && differ++ < 5)
			printf("# step %u: count %zu, the list %zu\n", i,
			    seen_count(s), r.count);
	}
	is_int(differ, 0, "random ids: the same verdicts as a plain list");
	ok(hits > steps / 20 && hits < steps - steps / 20,
	    "random ids: both verdicts (%zu repeats of %u, max %zu, window %lld)",
	    hits, steps, max, (long long)window);
	seen_free(s);
	free(r.key);
	free(r.len);
	free(r.at);
}

int
main(void)
{
	test_basics();
	test_max();
	test_random(100000, 1000, 3000, 100000); /* the window rules */
	test_random(500, 100000, 1500, 50000);   /* the maximum rules */
	test_random(1, 10, 4, 2000);
	test_random(300, 40, 200, 50000); /* growing, expiring, wrapping */
	return tap_done();
}
