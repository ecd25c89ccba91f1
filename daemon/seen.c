/*
 * The ids seen in a sliding window (Socket Mode's de-duplication of
 * envelope ids and event ids), pure.  The ids are kept in the order they
 * came in a ring of fixed-size records, and found by an open-addressed
 * index into the ring (linear probing; removal shifts the probe chain
 * back, so there are no tombstones).  An index slot holds the low half of
 * the id's hash beside its ring position, so that a probe reads only the
 * index, and the ring only for an id that is likely the one sought: a
 * full table is larger than the caches.  An id is forgotten once older than
 * the window, or, when the ring holds the most it may, as the oldest when
 * a new one comes.  No allocation per id: the ring and the index grow by
 * doubling, as far as needed and up to the most they may hold.
 *
 * Invariants: count <= cap <= max; the records are ring[(head + i) % cap]
 * for i < count, oldest first; every record has exactly one index slot
 * holding its ring position + 1 (high half) and its hash's low half,
 * reachable from its hash's home slot without crossing an empty slot;
 * nindex is a power of two >= 2 * cap, and at most 2^32.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "slackd.h"

#define SEEN_MIN   256        /* records to start with */
#define SEEN_LIMIT (1u << 30) /* records at most, whatever max says */

struct seen_rec {
	int64_t at;
	uint64_t hash;
	uint8_t len;
	char key[SEEN_KEY_MAX];
};

struct seen {
	struct seen_rec *ring;
	size_t cap;
	size_t head;
	size_t count;
	uint64_t
	    *index; /* ring position + 1 << 32 | hash's low half; 0: empty */
	size_t nindex;
	size_t max;
	int64_t window;
};

static uint64_t
seen_hash(const char *key, size_t len)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a, then mixed */
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

struct seen *
seen_new(size_t max, int64_t window)
{
	struct seen *s = xcalloc(1, sizeof *s);

	s->max = max < 1 ? 1 : max > SEEN_LIMIT ? SEEN_LIMIT : max;
	s->window = window;
	return s;
}

void
seen_free(struct seen *s)
{
	if (s == NULL)
		return;
	free(s->ring);
	free(s->index);
	free(s);
}

size_t
seen_count(const struct seen *s)
{
	return s->count;
}

#define SEEN_SLOT(pos, h) (((uint64_t)(pos) + 1) << 32 | (uint32_t)(h))
#define SEEN_POS(slot)    ((size_t)((slot) >> 32) - 1)

/* Put ring position pos in the index (it is not there). */
static void
seen_index_add(struct seen *s, size_t pos)
{
	uint64_t h = s->ring[pos].hash;
	size_t mask = s->nindex - 1, i = h & mask;

	while (s->index[i] != 0)
		i = (i + 1) & mask;
	s->index[i] = SEEN_SLOT(pos, h);
}

/* Ring size cap (> count), the records moved to its start in order. */
static void
seen_resize(struct seen *s, size_t cap)
{
	struct seen_rec *ring = xcalloc(cap, sizeof *ring);
	size_t i;

	for (i = 0; i < s->count; i++)
		ring[i] = s->ring[(s->head + i) % s->cap];
	free(s->ring);
	s->ring = ring;
	s->cap = cap;
	s->head = 0;
	for (s->nindex = 1; s->nindex < 2 * cap; s->nindex *= 2)
		;
	free(s->index);
	s->index = xcalloc(s->nindex, sizeof *s->index);
	for (i = 0; i < s->count; i++)
		seen_index_add(s, i);
}

/* Forget the oldest record. */
static void
seen_drop_oldest(struct seen *s)
{
	size_t mask = s->nindex - 1, i, j, home;
	uint64_t want = SEEN_SLOT(s->head, s->ring[s->head].hash);

	for (i = want & mask; s->index[i] != want; i = (i + 1) & mask)
		;
	/* Shift back the entries after it that may move closer home. */
	for (j = (i + 1) & mask; s->index[j] != 0; j = (j + 1) & mask) {
		home = s->index[j] & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			s->index[i] = s->index[j];
			i = j;
		}
	}
	s->index[i] = 0;
	s->head = (s->head + 1) % s->cap;
	s->count--;
}

/*
 * Whether key[0..len) was seen in the window before now (ms); if not, it
 * is remembered from now.  An id longer than SEEN_KEY_MAX is never
 * remembered (0).
 */
int
seen_check(struct seen *s, const char *key, size_t len, int64_t now)
{
	struct seen_rec *r;
	uint64_t h;
	size_t mask, i, pos;

	while (s->count > 0 && now - s->ring[s->head].at > s->window)
		seen_drop_oldest(s);
	if (len > SEEN_KEY_MAX)
		return 0;
	h = seen_hash(key, len);
	if (s->count > 0) {
		mask = s->nindex - 1;
		for (i = h & mask; s->index[i] != 0; i = (i + 1) & mask) {
			if ((uint32_t)s->index[i] != (uint32_t)h)
				continue;
			r = &s->ring[SEEN_POS(s->index[i])];
			if (r->hash == h && r->len == len &&
			    memcmp(r->key, key, len) == 0)
				return 1;
		}
	}
	if (s->count == s->max)
		seen_drop_oldest(s);
	else if (s->count == s->cap)
		seen_resize(s,
		    s->cap == 0 ? (s->max < SEEN_MIN ? s->max : SEEN_MIN)
		                : (s->cap * 2 < s->max ? s->cap * 2 : s->max));
	pos = (s->head + s->count) % s->cap;
	r = &s->ring[pos];
	r->at = now;
	r->hash = h;
	r->len = (uint8_t)len;
	memcpy(r->key, key, len);
	s->count++;
	seen_index_add(s, pos);
	return 0;
}
