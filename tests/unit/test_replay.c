/*
 * Unit tests: replay.c, the replay ring and cursors.  Events are small
 * malloc'd lines; the ring's release function counts what it frees, so
 * that every event is released exactly once.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slackd.h"
#include "tap.h"

static int released;

static void
release(void *owner)
{
	released++;
	free(owner);
}

/* Event seq: {"type":"message","n":seq}\n costing cost bytes, at mono. */
static void
add(struct replay *r, uint64_t seq, size_t cost, int64_t mono)
{
	struct replay_event e;
	char *line;
	int n;

	line = malloc(64);
	n = snprintf(
	    line, 64, "{\"type\":\"message\",\"n\":%" PRIu64 "}\n", seq);
	memset(&e, 0, sizeof e);
	e.seq = seq;
	e.mono = mono;
	e.wall = 1000.0 + (double)seq;
	e.type = "message";
	e.channel = seq % 2 ? "C1" : "C2";
	e.line = line;
	e.len = (size_t)n;
	e.cost = cost;
	e.owner = line;
	replay_add(r, &e, mono);
}

static int
collect(const struct replay_event *e, void *arg)
{
	uint64_t *got = arg;

	got[++got[0]] = e->seq;
	return got[0] == 5 ? 7 : 0;
}

static void
test_ring(void)
{
	struct replay *r = replay_new(release);
	const struct replay_event *e;
	uint64_t i, got[16];
	int rc;

	replay_limits(r, 1000, 0);
	is_int(replay_oldest(r), 0, "empty ring: oldest 0");
	ok(replay_get(r, 1) == NULL, "empty ring: nothing to get");
	for (i = 1; i <= 10; i++)
		add(r, i, 100, 0);
	is_int(replay_oldest(r), 1, "ten events of 100 fit in 1000");
	is_int(replay_newest(r), 10, "newest is 10");
	is_int(replay_bytes(r), 1000, "cost counted");
	add(r, 11, 100, 0);
	is_int(replay_oldest(r), 2, "the eleventh pushes the first out");
	is_int(released, 1, "the first was released");
	e = replay_get(r, 7);
	ok(e != NULL && e->seq == 7 && strstr(e->line, "\"n\":7}") != NULL,
	    "get(7) is event 7");
	ok(replay_get(r, 1) == NULL && replay_get(r, 12) == NULL,
	    "get outside the ring is NULL");

	memset(got, 0, sizeof got);
	rc = replay_walk(r, 4, collect, got);
	is_int(got[0], 5, "walk after 4 stops when fn says so");
	is_int(got[1], 5, "walk starts after the given seq");
	is_int(got[5], 9, "walk goes in order");
	is_int(rc, 7, "walk returns what fn returned");
	memset(got, 0, sizeof got);
	replay_walk(r, 0, collect, got);
	is_int(got[1], 2, "walk from before the ring starts at the oldest");

	/* Growth past the first allocation keeps order and indexing. */
	replay_limits(r, 1000000, 0);
	for (i = 12; i <= 3000; i++)
		add(r, i, 100, 0);
	is_int(replay_count(r), 2999, "2999 events held after growing");
	e = replay_get(r, 2500);
	ok(e != NULL && e->seq == 2500, "get after growing");

	/* A smaller limit applies at the next add. */
	replay_limits(r, 250, 0);
	add(r, 3001, 100, 0);
	is_int(replay_count(r), 2, "a lowered limit evicts down to it");
	is_int(replay_oldest(r), 3000, "the newest are kept");

	/* An event bigger than the limit is released at once. */
	add(r, 3002, 1000, 0);
	is_int(replay_count(r), 0, "an event over the limit is not kept");
	is_int(replay_oldest(r), 0, "and the ring is empty");

	replay_free(r);
	is_int(released, 3002, "every event released exactly once");
}

static void
test_age(void)
{
	struct replay *r = replay_new(release);

	released = 0;
	replay_limits(r, 1 << 20, 1000);
	add(r, 1, 10, 0);
	add(r, 2, 10, 500);
	add(r, 3, 10, 1200);
	is_int(replay_oldest(r), 2, "an event older than the age is gone");
	replay_expire(r, 1600);
	is_int(replay_oldest(r), 3, "expire drops what aged meanwhile");
	replay_expire(r, 2300);
	is_int(replay_count(r), 0, "and everything once old enough");
	replay_free(r);
	is_int(released, 3, "aged events released");
}

static void
test_cursor(void)
{
	char run[REPLAY_RUN_LEN + 1], buf[REPLAY_CURSOR_MAX], run2[16];
	uint64_t n;
	const char *p;

	replay_run_new(run, 0x0123456789abULL);
	is_int(strlen(run), REPLAY_RUN_LEN, "a run id is 8 characters");
	for (p = run; *p != '\0'; p++) {
		if (strchr(
		        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		        "0123456789-_",
		        *p) == NULL)
			break;
	}
	ok(*p == '\0', "a run id is URL-safe");
	replay_run_new(run2, 0x0123456789acULL);
	ok(strcmp(run, run2) != 0, "different bits, different run");

	ok(replay_cursor_parse("Ab-_9z:42", run2, &n) == 0 && n == 42 &&
	        strcmp(run2, "Ab-_9z") == 0,
	    "a cursor parses");
	ok(replay_cursor_parse("abc:0", run2, &n) == 0 && n == 0, "n may be 0");
	ok(replay_cursor_parse("abc:18446744073709551615", run2, &n) == 0 &&
	        n == UINT64_MAX,
	    "n up to 2^64-1");
	ok(replay_cursor_parse("abc:18446744073709551616", run2, &n) == -1,
	    "n past 2^64-1 is refused");
	ok(replay_cursor_parse("abc", run2, &n) == -1, "no colon");
	ok(replay_cursor_parse(":5", run2, &n) == -1, "no run");
	ok(replay_cursor_parse("abcdefghi:5", run2, &n) == -1,
	    "a run too long");
	ok(replay_cursor_parse("ab c:5", run2, &n) == -1, "a space in a run");
	ok(replay_cursor_parse("abc:", run2, &n) == -1, "no number");
	ok(replay_cursor_parse("abc:05", run2, &n) == -1, "a leading zero");
	ok(replay_cursor_parse("abc:-5", run2, &n) == -1, "a sign");
	ok(replay_cursor_parse("abc:5x", run2, &n) == -1, "trailing text");
	ok(replay_cursor_parse("abc:5:6", run2, &n) == -1, "two colons");
	is_str(replay_cursor(buf, "Ab-_9z", 42), "Ab-_9z:42", "cursor text");
}

static void
test_prefix(void)
{
	char buf[REPLAY_PREFIX_MAX + 64];
	const char *line = "{\"type\":\"hello\"}\n";
	size_t n;

	n = replay_prefix(buf, "RUNid-_x", 123, line);
	memcpy(buf + n, line + 1, strlen(line) - 1);
	buf[n + strlen(line) - 1] = '\0';
	is_str(buf, "{\"slackd_seq\":\"RUNid-_x:123\",\"type\":\"hello\"}\n",
	    "the seq goes in front of Slack's members");
	n = replay_prefix(buf, "RUNid-_x", 1, "{}\n");
	memcpy(buf + n, "}\n", 3);
	is_str(buf, "{\"slackd_seq\":\"RUNid-_x:1\"}\n",
	    "an empty object gets no comma");
	n = replay_prefix(buf, "RUNid-_x", UINT64_MAX, line);
	ok(n <= REPLAY_PREFIX_MAX, "the longest prefix fits");
}

static void
test_plan(void)
{
	struct replay *r = replay_new(release);
	struct replay_gap g;
	uint64_t next, i;

	released = 0;
	replay_limits(r, 1000, 0);

	/* Nothing numbered yet. */
	ok(replay_plan(r, "run", 0, "run", 0, &next, &g) == 0 &&
	        g.reason == NULL && next == 1,
	    "a fresh cursor at 0: no gap, from 1");
	ok(replay_plan(r, "run", 0, "run", 1, &next, &g) == -1,
	    "a cursor ahead of the run is refused");

	for (i = 1; i <= 20; i++)
		add(r, i, 100, 0); /* holds 11..20 */
	ok(replay_plan(r, "run", 20, "run", 15, &next, &g) == 0 &&
	        g.reason == NULL && next == 16,
	    "within the ring: no gap, from the next");
	ok(replay_plan(r, "run", 20, "run", 10, &next, &g) == 0 &&
	        g.reason == NULL && next == 11,
	    "just before the oldest: no gap");
	ok(replay_plan(r, "run", 20, "run", 20, &next, &g) == 0 &&
	        g.reason == NULL && next == 21,
	    "at the newest: nothing to replay");
	ok(replay_plan(r, "run", 20, "run", 4, &next, &g) == 0 &&
	        g.reason != NULL && strcmp(g.reason, REPLAY_GAP_EXPIRED) == 0,
	    "older than the ring: a gap, expired");
	is_int(g.missed, 6, "events 5..10 missed");
	is_int(g.first, 5, "first missed");
	is_int(g.last, 10, "last missed");
	ok(g.to == 1010.0, "when the last missed arrived");
	is_int(next, 11, "then from the oldest held");

	ok(replay_plan(r, "run", 20, "old", 99, &next, &g) == 0 &&
	        g.reason != NULL && strcmp(g.reason, REPLAY_GAP_RESTART) == 0,
	    "another run: a gap, restart");
	is_int(g.missed, -1, "how many: unknown");
	is_int(g.first, 1, "this run's missed start at 1");
	is_int(g.last, 10, "and end before the oldest held");
	is_int(next, 11, "then all this run holds");

	/* Empty ring after events: everything since is a gap. */
	replay_limits(r, 0, 0);
	replay_expire(r, 0);
	ok(replay_plan(r, "run", 20, "run", 12, &next, &g) == 0 &&
	        g.reason != NULL && g.missed == 8 && next == 21,
	    "an empty ring: all since the cursor missed, then live");
	replay_free(r);
}

int
main(void)
{
	test_ring();
	test_age();
	test_cursor();
	test_prefix();
	test_plan();
	return tap_done();
}
