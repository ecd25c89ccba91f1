/*
 * Unit tests: backfill_plan.c, the backfill decisions: ts order, what to
 * fetch, from where, the per-channel cap and the de-duplication against
 * live events.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slackd.h"
#include "tap.h"

static void
test_ts(void)
{
	ok(backfill_plan_ts_cmp("1700000000.000100", "1700000000.000099") > 0,
	    "the fraction orders ts of the same second");
	ok(backfill_plan_ts_cmp("999999999.999999", "1000000000.000000") < 0,
	    "more digits of seconds is later, whatever the strings say");
	ok(backfill_plan_ts_cmp("1700000000.1", "1700000000.100000") == 0,
	    "trailing zeros of the fraction do not count");
	ok(backfill_plan_ts_cmp("1700000000", "1700000000.000001") < 0,
	    "a ts without a fraction is the start of its second");
	ok(backfill_plan_ts_cmp("", "1.0") < 0 &&
	        backfill_plan_ts_cmp("1.0", "") > 0 &&
	        backfill_plan_ts_cmp("", "") == 0,
	    "no ts is before every ts");
	ok(backfill_plan_ts_cmp("0001.5", "1.5") == 0, "leading zeros ignored");
	ok(backfill_plan_ts_valid("1700000000.000100") &&
	        backfill_plan_ts_valid("1"),
	    "Slack's ts shapes are valid");
	ok(!backfill_plan_ts_valid("") && !backfill_plan_ts_valid("1.2.3") &&
	        !backfill_plan_ts_valid("-1") &&
	        !backfill_plan_ts_valid("1e9") &&
	        !backfill_plan_ts_valid("1.") == 0,
	    "other strings are not ts");
}

static void
test_from(void)
{
	char from[32], buf[32];

	snprintf(from, sizeof from, "%s", "");
	backfill_plan_from(from, sizeof from, "1700000000.000200");
	is_str(from, "1700000000.000200", "no start: the given one");
	backfill_plan_from(from, sizeof from, "1700000000.000300");
	is_str(from, "1700000000.000200", "a later start does not move it");
	backfill_plan_from(from, sizeof from, "1700000000.000100");
	is_str(from, "1700000000.000100", "an earlier start does");
	backfill_plan_from(from, sizeof from, "");
	is_str(from, "1700000000.000100", "no start keeps it");
	backfill_plan_wall_ts(1700000000.25, buf, sizeof buf);
	is_str(buf, "1700000000.250000", "a wall clock time as a ts");
}

static void
test_pick(void)
{
	const int64_t day = 86400 * 1000;
	const double now = 1700000000.0;

	is_int(backfill_plan_mode("off"), BACKFILL_PLAN_OFF, "off");
	is_int(backfill_plan_mode("seen"), BACKFILL_PLAN_SEEN, "seen");
	is_int(backfill_plan_mode("all"), BACKFILL_PLAN_ALL, "all");
	ok(!backfill_plan_pick(BACKFILL_PLAN_OFF, now - 1, now, day, 1),
	    "off fetches nothing, not even a named channel");
	ok(backfill_plan_pick(BACKFILL_PLAN_SEEN, now - 3600, now, day, 0),
	    "seen: traffic an hour ago");
	ok(!backfill_plan_pick(
	       BACKFILL_PLAN_SEEN, now - 2 * 86400, now, day, 0),
	    "seen: not traffic older than the window");
	ok(backfill_plan_pick(BACKFILL_PLAN_ALL, now - 30 * 86400, now, day, 0),
	    "all: any channel seen, however long ago");
	ok(!backfill_plan_pick(BACKFILL_PLAN_ALL, 0, now, day, 0),
	    "all: not a channel never seen");
	ok(backfill_plan_pick(BACKFILL_PLAN_SEEN, 0, now, day, 1),
	    "a channel in backfill_channels is always fetched");
	ok(backfill_plan_pick(BACKFILL_PLAN_SEEN, now - 10, now, 10000, 0) &&
	        !backfill_plan_pick(
	            BACKFILL_PLAN_SEEN, now - 10.5, now, 10000, 0),
	    "the window's edge is inclusive");
}

static void
test_cap(void)
{
	is_int(backfill_plan_limit(0, 1000), BACKFILL_PLAN_PAGE,
	    "a page is BACKFILL_PLAN_PAGE messages");
	is_int(backfill_plan_limit(990, 1000), 10, "never more than allowed");
	is_int(backfill_plan_limit(0, 5), 5, "a small cap: one small page");
	is_int(backfill_plan_limit(1000, 1000), 0, "at the cap: stop");
	is_int(backfill_plan_after(200, 1000, 1), BACKFILL_PLAN_NEXT,
	    "more, under the cap: next page");
	is_int(backfill_plan_after(200, 1000, 0), BACKFILL_PLAN_DONE,
	    "no more: done");
	is_int(backfill_plan_after(1000, 1000, 0), BACKFILL_PLAN_DONE,
	    "exactly the cap and no more: done, nothing lost");
	is_int(backfill_plan_after(1000, 1000, 1), BACKFILL_PLAN_CAPPED,
	    "the cap with more left: capped");
}

static void
test_seen(void)
{
	struct backfill_plan_seen *s;
	char ts[32];
	int i, kept = 0;

	s = backfill_plan_seen_new(100);
	backfill_plan_seen_add(s, "C1", "1700000000.000100");
	ok(backfill_plan_seen_has(s, "C1", "1700000000.000100"),
	    "a live message is known");
	ok(!backfill_plan_seen_has(s, "C2", "1700000000.000100"),
	    "the same ts in another channel is another message");
	ok(!backfill_plan_seen_has(s, "C1", "1700000000.000101"),
	    "another ts is another message");
	backfill_plan_seen_add(s, "C1", "1700000000.000100");
	is_int(backfill_plan_seen_count(s), 1, "seen twice, kept once");
	for (i = 0; i < 1000; i++) {
		snprintf(ts, sizeof ts, "1700000001.%06d", i);
		backfill_plan_seen_add(s, "C1", ts);
	}
	ok(backfill_plan_seen_count(s) <= 100, "the set stays bounded (%zu)",
	    backfill_plan_seen_count(s));
	for (i = 950; i < 1000; i++) {
		snprintf(ts, sizeof ts, "1700000001.%06d", i);
		kept += backfill_plan_seen_has(s, "C1", ts);
	}
	is_int(kept, 50, "the newest are kept");
	ok(!backfill_plan_seen_has(s, "C1", "1700000000.000100"),
	    "the oldest went first");
	backfill_plan_seen_clear(s);
	is_int(backfill_plan_seen_count(s), 0, "cleared");
	backfill_plan_seen_free(s);
}

int
main(void)
{
	test_ts();
	test_from();
	test_pick();
	test_cap();
	test_seen();
	return tap_done();
}
