/*
 * Unit tests: replay.c, the replay ring and cursors.  Each event's line
 * is overwritten once added, so the ring must have kept a copy; every
 * event held must come back whole after chunks come and go (ASan checks
 * the memory).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slackd.h"
#include "tap.h"

/* Event seq, {"type":"message","n":seq,"pad":"…"}\n of about len bytes. */
static void
add(struct replay *r, uint64_t seq, size_t len, int64_t mono)
{
	struct replay_event e;
	char line[8192];
	int n;

	n = snprintf(line, sizeof line,
	    "{\"type\":\"message\",\"n\":%" PRIu64 ",\"pad\":\"%0*d\"}\n", seq,
	    (int)(len > 40 ? len - 40 : 1), 0);
	memset(&e, 0, sizeof e);
	e.seq = seq;
	e.mono = mono;
	e.wall = 1000.0 + (double)seq;
	e.type = "message";
	e.channel = seq % 2 ? "C1" : "C2";
	e.line = line;
	e.len = (size_t)n;
	replay_add(r, &e, mono);
	memset(line, 'X', sizeof line); /* the ring has its own copy */
}

static int
collect(const struct replay_event *e, void *arg)
{
	uint64_t *got = arg;

	got[++got[0]] = e->seq;
	return got[0] == 5 ? 7 : 0;
}

/* Is event seq held, whole and as added? */
static int
intact(struct replay *r, uint64_t seq)
{
	const struct replay_event *e = replay_get(r, seq);
	char want[32];

	snprintf(want, sizeof want, "\"n\":%" PRIu64 ",", seq);
	return e != NULL && e->seq == seq && strstr(e->line, want) != NULL &&
	    e->line[e->len - 1] == '\n' && strcmp(e->type, "message") == 0 &&
	    strcmp(e->channel, seq % 2 ? "C1" : "C2") == 0;
}

static void
test_ring(void)
{
	struct replay *r = replay_new();
	uint64_t i, got[16];
	int rc, all;

	replay_limits(r, 64 * 1024, 0);
	is_int(replay_oldest(r), 0, "empty ring: oldest 0");
	ok(replay_get(r, 1) == NULL, "empty ring: nothing to get");
	for (i = 1; i <= 10; i++)
		add(r, i, 200, 0);
	is_int(replay_oldest(r), 1, "ten events of 200 bytes fit in 64K");
	is_int(replay_newest(r), 10, "newest is 10");
	ok(replay_bytes(r) > 2000 && replay_bytes(r) <= 64 * 1024,
	    "bytes counted: %zu", replay_bytes(r));
	ok(intact(r, 7), "get(7) is event 7, copied");
	ok(replay_get(r, 0) == NULL && replay_get(r, 11) == NULL,
	    "get outside the ring is NULL");

	memset(got, 0, sizeof got);
	rc = replay_walk(r, 4, collect, got);
	is_int(got[0], 5, "walk after 4 stops when fn says so");
	is_int(got[1], 5, "walk starts after the given seq");
	is_int(got[5], 9, "walk goes in order");
	is_int(rc, 7, "walk returns what fn returned");

	/* Past the limit the oldest go, and what is held stays whole. */
	for (i = 11; i <= 3000; i++)
		add(r, i, 200, 0);
	ok(replay_bytes(r) <= 64 * 1024, "within the limit: %zu bytes",
	    replay_bytes(r));
	ok(replay_oldest(r) > 11 && replay_newest(r) == 3000,
	    "the oldest went (%" PRIu64 "..3000 held)", replay_oldest(r));
	ok(replay_count(r) > 64 * 1024 / 400, "and most of 64K is used: %zu",
	    replay_count(r));
	for (all = 1, i = replay_oldest(r); i <= 3000; i++)
		all &= intact(r, i);
	ok(all, "every event held is whole");
	memset(got, 0, sizeof got);
	replay_walk(r, 0, collect, got);
	is_int(got[1], replay_oldest(r),
	    "walk from before the ring starts at the oldest");

	/* Events larger than a chunk, and one larger than the limit. */
	add(r, 3001, 6000, 0);
	add(r, 3002, 200, 0);
	ok(intact(r, 3001) && intact(r, 3002), "a large event is kept whole");
	replay_limits(r, 4096, 0);
	add(r, 3003, 6000, 0);
	is_int(replay_count(r), 0, "an event over the limit is not kept");
	is_int(replay_bytes(r), 0, "and nothing is held");
	add(r, 3004, 200, 0);
	ok(intact(r, 3004), "the ring goes on after");

	/* 0 keeps nothing. */
	replay_limits(r, 0, 0);
	add(r, 3005, 200, 0);
	is_int(replay_count(r), 0, "replay_bytes 0 keeps nothing");
	replay_free(r);
}

static void
test_age(void)
{
	struct replay *r = replay_new();

	replay_limits(r, 1 << 20, 1000);
	add(r, 1, 100, 0);
	add(r, 2, 100, 500);
	add(r, 3, 100, 1200);
	is_int(replay_oldest(r), 2, "an event older than the age is gone");
	replay_expire(r, 1600);
	is_int(replay_oldest(r), 3, "expire drops what aged meanwhile");
	replay_expire(r, 2300);
	is_int(replay_count(r), 0, "and everything once old enough");
	is_int(replay_bytes(r), 0, "its memory with it");
	replay_free(r);
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
	struct replay *r = replay_new();
	struct replay_gap g;
	uint64_t next, i, old;

	replay_limits(r, 16 * 1024, 0);

	/* Nothing numbered yet. */
	ok(replay_plan(r, "run", 0, "run", 0, &next, &g) == 0 &&
	        g.reason == NULL && next == 1,
	    "a fresh cursor at 0: no gap, from 1");
	ok(replay_plan(r, "run", 0, "run", 1, &next, &g) == -1,
	    "a cursor ahead of the run is refused");

	for (i = 1; i <= 200; i++)
		add(r, i, 200, 0);
	old = replay_oldest(r);
	ok(old > 5 && old < 190, "the ring holds %" PRIu64 "..200", old);
	ok(replay_plan(r, "run", 200, "run", 195, &next, &g) == 0 &&
	        g.reason == NULL && next == 196,
	    "within the ring: no gap, from the next");
	ok(replay_plan(r, "run", 200, "run", old - 1, &next, &g) == 0 &&
	        g.reason == NULL && next == old,
	    "just before the oldest: no gap");
	ok(replay_plan(r, "run", 200, "run", 200, &next, &g) == 0 &&
	        g.reason == NULL && next == 201,
	    "at the newest: nothing to replay");
	ok(replay_plan(r, "run", 200, "run", 4, &next, &g) == 0 &&
	        g.reason != NULL && strcmp(g.reason, REPLAY_GAP_EXPIRED) == 0,
	    "older than the ring: a gap, expired");
	is_int(g.missed, old - 5, "events 5..oldest-1 missed");
	is_int(g.first, 5, "first missed");
	is_int(g.last, old - 1, "last missed");
	ok(g.to == 1000.0 + (double)(old - 1), "when the last missed arrived");
	is_int(next, old, "then from the oldest held");

	ok(replay_plan(r, "run", 200, "old", 99, &next, &g) == 0 &&
	        g.reason != NULL && strcmp(g.reason, REPLAY_GAP_RESTART) == 0,
	    "another run: a gap, restart");
	is_int(g.missed, -1, "how many: unknown");
	is_int(g.first, 1, "this run's missed start at 1");
	is_int(g.last, old - 1, "and end before the oldest held");
	is_int(next, old, "then all this run holds");

	/* Empty ring after events: everything since is a gap. */
	replay_limits(r, 0, 0);
	replay_expire(r, 0);
	ok(replay_plan(r, "run", 200, "run", 192, &next, &g) == 0 &&
	        g.reason != NULL && g.missed == 8 && next == 201,
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
