/*
 * Backfill, the decisions (backfill.c acts on them): which channels and
 * threads to fetch after a gap, from where, how many pages, and which
 * recovered messages the clients already have.  Pure functions of their
 * arguments and the clock they are given, so they are unit tested alone.
 *
 * The rules:
 *   - a Slack ts ("1700000000.000100") is compared as a number: whole
 *     seconds, then the fraction, whatever the number of digits;
 *   - a channel is fetched from the last ts seen in it (exclusive), or
 *     from an earlier start a failed backfill left behind, never later;
 *   - backfill = off fetches nothing; a channel named in
 *     backfill_channels is always fetched; "all" fetches every channel
 *     with a last ts; "seen" those whose last message arrived within
 *     backfill_window;
 *   - at most backfill_max messages per channel and per thread: pages
 *     ask for no more than are still allowed, and a full count with
 *     has_more means the rest is lost (a slackd.gap says so);
 *   - a recovered message a client already has (the same channel and ts
 *     seen live) is not sent again.  The set is bounded
 *     (BACKFILL_PLAN_SEEN_MAX): past it, the oldest half is forgotten.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slackd.h"

/* Compare two Slack ts as numbers; "" is before everything. */
int
backfill_plan_ts_cmp(const char *a, const char *b)
{
	size_t ia, ib;
	const char *fa, *fb;

	if (*a == '\0' || *b == '\0')
		return (*a != '\0') - (*b != '\0');
	while (*a == '0' && a[1] >= '0' && a[1] <= '9')
		a++;
	while (*b == '0' && b[1] >= '0' && b[1] <= '9')
		b++;
	ia = strcspn(a, ".");
	ib = strcspn(b, ".");
	if (ia != ib)
		return ia < ib ? -1 : 1;
	if (strncmp(a, b, ia) != 0)
		return strncmp(a, b, ia) < 0 ? -1 : 1;
	fa = a[ia] == '.' ? a + ia + 1 : "";
	fb = b[ib] == '.' ? b + ib + 1 : "";
	while (*fa != '\0' || *fb != '\0') {
		char ca = *fa != '\0' ? *fa++ : '0';
		char cb = *fb != '\0' ? *fb++ : '0';

		if (ca != cb)
			return ca < cb ? -1 : 1;
	}
	return 0;
}

/* Is s a Slack ts: digits, optionally a dot and more digits? */
int
backfill_plan_ts_valid(const char *s)
{
	size_t n = strspn(s, "0123456789");

	if (n == 0 || n > 12)
		return 0;
	if (s[n] == '\0')
		return 1;
	return s[n] == '.' &&
	    strspn(s + n + 1, "0123456789") == strlen(s + n + 1) &&
	    strlen(s + n + 1) <= 9;
}

/* A wall clock time as a Slack ts. */
void
backfill_plan_wall_ts(double wall, char *buf, size_t len)
{
	snprintf(buf, len, "%.6f", wall < 0 ? 0 : wall);
}

/* Keep the earlier of two starts in from ("" is no start). */
void
backfill_plan_from(char *from, size_t len, const char *other)
{
	if (*other == '\0')
		return;
	if (*from == '\0' || backfill_plan_ts_cmp(other, from) < 0)
		snprintf(from, len, "%s", other);
}

/* backfill = off | seen | all. */
int
backfill_plan_mode(const char *s)
{
	if (s == NULL || strcmp(s, "seen") == 0)
		return BACKFILL_PLAN_SEEN;
	if (strcmp(s, "all") == 0)
		return BACKFILL_PLAN_ALL;
	return BACKFILL_PLAN_OFF;
}

/*
 * Fetch a channel (or thread) whose last message arrived at wall clock
 * time at (0: never seen), now, given the mode and window?  named: it is
 * in backfill_channels.
 */
int
backfill_plan_pick(int mode, double at, double now, int64_t window, int named)
{
	if (mode == BACKFILL_PLAN_OFF)
		return 0;
	if (named)
		return 1;
	if (at <= 0)
		return 0;
	if (mode == BACKFILL_PLAN_ALL)
		return 1;
	return (now - at) * 1000 <= (double)window;
}

/* How many messages to ask for in the next page (0: stop). */
u_int
backfill_plan_limit(u_int have, u_int max)
{
	if (have >= max)
		return 0;
	return max - have < BACKFILL_PLAN_PAGE ? max - have
	                                       : BACKFILL_PLAN_PAGE;
}

/*
 * After a page: have messages so far, and Slack says whether there are
 * more.  BACKFILL_PLAN_NEXT: fetch the next page; BACKFILL_PLAN_DONE:
 * all recovered; BACKFILL_PLAN_CAPPED: the cap was reached with more left.
 */
int
backfill_plan_after(u_int have, u_int max, int has_more)
{
	if (!has_more)
		return BACKFILL_PLAN_DONE;
	if (have >= max)
		return BACKFILL_PLAN_CAPPED;
	return BACKFILL_PLAN_NEXT;
}

/* ---- what clients already have ------------------------------------------ */

struct backfill_plan_seen {
	struct map *keys; /* "channel ts" -> its generation */
	uintptr_t gen;    /* the current generation, from 1 */
	size_t added;     /* to the current generation */
	size_t max;
};

struct backfill_plan_seen *
backfill_plan_seen_new(size_t max)
{
	struct backfill_plan_seen *s;

	s = xcalloc(1, sizeof *s);
	s->keys = map_new();
	s->gen = 1;
	s->max = max < 2 ? 2 : max;
	return s;
}

void
backfill_plan_seen_free(struct backfill_plan_seen *s)
{
	if (s == NULL)
		return;
	map_free(s->keys, NULL);
	free(s);
}

static void
backfill_plan_key(const char *channel, const char *ts, char *key, size_t len)
{
	snprintf(key, len, "%s %s", channel, ts);
}

static int
backfill_plan_old(const char *key, void *value, void *arg)
{
	const struct backfill_plan_seen *s = arg;

	return (uintptr_t)value + 1 < s->gen;
}

/*
 * Remember a message seen live.  Keys go in generations of max/2: when
 * a new generation starts, the one before the last is forgotten, so the
 * set holds the last max/2 to max keys.
 */
void
backfill_plan_seen_add(
    struct backfill_plan_seen *s, const char *channel, const char *ts)
{
	char key[2 * JSCAN_FIELD + 2];

	if (s->added == s->max / 2) {
		s->gen++;
		s->added = 0;
		map_foreach(s->keys, backfill_plan_old, s);
	}
	backfill_plan_key(channel, ts, key, sizeof key);
	if (map_put(s->keys, key, (void *)s->gen) == NULL)
		s->added++;
}

int
backfill_plan_seen_has(
    const struct backfill_plan_seen *s, const char *channel, const char *ts)
{
	char key[2 * JSCAN_FIELD + 2];

	backfill_plan_key(channel, ts, key, sizeof key);
	return map_get(s->keys, key) != NULL;
}

size_t
backfill_plan_seen_count(const struct backfill_plan_seen *s)
{
	return map_count(s->keys);
}

void
backfill_plan_seen_clear(struct backfill_plan_seen *s)
{
	map_free(s->keys, NULL);
	s->keys = map_new();
	s->gen = 1;
	s->added = 0;
}
