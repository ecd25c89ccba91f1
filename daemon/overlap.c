/*
 * Make-before-break, the decisions: while a retiring session (old) and
 * its replacement (new) are both open, Slack sends the same events on
 * both.  Which copy goes to the clients, which is held, which is dropped?
 * A pure function of the events' hashes and the clock, so it is unit
 * tested on its own; upstream.c keeps the held events and acts.
 *
 * The rule:
 *   - old's events are forwarded as they come and remembered, from the
 *     moment it is retired (new's first events may be ones old forwarded
 *     before new said hello);
 *   - new's events are held;
 *   - the first event seen on both is where the streams meet: switch.  At
 *     the switch the held events old did not forward go out, in order;
 *     old is closed; new's following events that old forwarded are
 *     dropped, until the first it did not (then the overlap is over);
 *   - without a common event, switch when old has been quiet for
 *     OVERLAP_QUIET ms while new has something held (Slack has moved to
 *     the new session), or OVERLAP_MAX ms after the start, or when old
 *     ends;
 *   - if new ends first, what it held goes out (unless old forwarded it)
 *     and old's copies of those events are dropped for OVERLAP_MAX ms.
 *
 * Limits: identity is the exact bytes, so two identical events within the
 * overlap count as one (a repeated user_typing; never a message, whose ts
 * differs), and an event Slack sends with different bytes on the two
 * sessions would be delivered twice.  Order is old's order, then new's.
 */
#include "config.h"

#include <stdio.h>

#include "upstream.h"

static void
overlap_key(uint64_t h, char *key)
{
	snprintf(key, 17, "%016llx", (unsigned long long)h);
}

static int
overlap_in(struct map *set, uint64_t h)
{
	char key[17];

	overlap_key(h, key);
	return map_get(set, key) != NULL;
}

static void
overlap_add(struct map *set, uint64_t h)
{
	char key[17];

	overlap_key(h, key);
	map_put(set, key, set);
}

/* FNV-1a over an event's bytes. */
uint64_t
overlap_hash(const char *data, size_t len)
{
	uint64_t h = 14695981039346656037ULL;

	while (len-- > 0)
		h = (h ^ (unsigned char)*data++) * 1099511628211ULL;
	return h;
}

void
overlap_init(struct overlap *o, int64_t now)
{
	o->mode = OVERLAP_BOTH;
	o->forwarded = map_new();
	o->held = map_new();
	o->nheld = 0;
	o->started = now;
	o->old_last = now;
}

void
overlap_free(struct overlap *o)
{
	map_free(o->forwarded, NULL);
	map_free(o->held, NULL);
	o->forwarded = o->held = NULL;
	o->mode = OVERLAP_DONE;
}

/* An event from the old session. */
enum overlap_verdict
overlap_old(struct overlap *o, uint64_t h, int64_t now)
{
	switch (o->mode) {
	case OVERLAP_BOTH:
		o->old_last = now;
		overlap_add(o->forwarded, h);
		return overlap_in(o->held, h) ? OVERLAP_FORWARD_SWITCH
		                              : OVERLAP_FORWARD;
	case OVERLAP_NEW_GONE:
		return overlap_in(o->held, h) ? OVERLAP_DROP : OVERLAP_FORWARD;
	case OVERLAP_SWITCHED:
		return OVERLAP_DROP; /* old is closing: new has it all */
	case OVERLAP_DONE:
		break;
	}
	return OVERLAP_FORWARD;
}

/* An event from the new session. */
enum overlap_verdict
overlap_new(struct overlap *o, uint64_t h, int64_t now)
{
	(void)now;
	switch (o->mode) {
	case OVERLAP_BOTH:
		if (overlap_in(o->forwarded, h))
			return OVERLAP_DROP_SWITCH;
		overlap_add(o->held, h);
		o->nheld++;
		return OVERLAP_HOLD;
	case OVERLAP_SWITCHED:
		if (overlap_in(o->forwarded, h))
			return OVERLAP_DROP;
		overlap_free(o); /* past what old forwarded: over */
		return OVERLAP_FORWARD;
	case OVERLAP_NEW_GONE:
	case OVERLAP_DONE:
		break;
	}
	return OVERLAP_FORWARD;
}

/* At the switch: does a held event go out (old did not forward it)? */
int
overlap_release(const struct overlap *o, uint64_t h)
{
	return !overlap_in(o->forwarded, h);
}

/* The switch happened (held events released, old closing). */
void
overlap_switched(struct overlap *o)
{
	o->nheld = 0;
	o->mode = OVERLAP_SWITCHED;
	if (map_count(o->forwarded) == 0)
		overlap_free(o); /* nothing of new's to drop */
}

/* New ended before the switch; its held events were released. */
void
overlap_new_gone(struct overlap *o, int64_t now)
{
	o->nheld = 0;
	o->started = now; /* old's copies are dropped from now on */
	o->mode = OVERLAP_NEW_GONE;
	if (map_count(o->held) == 0)
		overlap_free(o);
}

/*
 * When to look again (ms from now), and whether to act now: returns 0
 * when the switch is due (OVERLAP_BOTH) or the overlap is over (the
 * others), else how long to wait.
 */
int64_t
overlap_due(const struct overlap *o, int64_t now)
{
	int64_t end = o->started + OVERLAP_MAX, at = end;

	if (o->mode == OVERLAP_DONE)
		return 0;
	if (o->mode == OVERLAP_BOTH && o->nheld > 0 &&
	    o->old_last + OVERLAP_QUIET < at)
		at = o->old_last + OVERLAP_QUIET;
	return at > now ? at - now : 0;
}
