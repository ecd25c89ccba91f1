/*
 * Unit tests: overlap.c, the make-before-break decisions.  Two sessions
 * carry the same numbered events (the old one from 1, the new one from
 * some k on), delivered to the daemon in some interleaving; whatever the
 * interleaving, the clients must get 1..n once each, in order.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream.h"
#include "tap.h"

#define SIM_MAX 256

struct sim {
	struct overlap o;
	int held[SIM_MAX];
	size_t nheld;
	int out[2 * SIM_MAX];
	size_t nout;
	int old_closed;
};

static uint64_t
sim_hash(int ev)
{
	char buf[64];
	int n = snprintf(
	    buf, sizeof buf, "{\"type\":\"message\",\"ts\":\"%d\"}", ev);

	return overlap_hash(buf, (size_t)n);
}

static void
sim_switch(struct sim *s)
{
	size_t i;

	for (i = 0; i < s->nheld; i++) {
		if (overlap_release(&s->o, sim_hash(s->held[i])))
			s->out[s->nout++] = s->held[i];
	}
	s->nheld = 0;
	overlap_switched(&s->o);
	s->old_closed = 1;
}

static void
sim_verdict(struct sim *s, enum overlap_verdict v, int ev)
{
	switch (v) {
	case OVERLAP_FORWARD:
		s->out[s->nout++] = ev;
		break;
	case OVERLAP_HOLD:
		s->held[s->nheld++] = ev;
		break;
	case OVERLAP_DROP:
		break;
	case OVERLAP_FORWARD_SWITCH:
		s->out[s->nout++] = ev;
		sim_switch(s);
		break;
	case OVERLAP_DROP_SWITCH:
		sim_switch(s);
		break;
	}
}

/* Old carries 1..old_n, new k..new_n; returns 1 if out is 1..max once. */
static int
sim_run(int old_n, int k, int new_n, unsigned seed, int quiet_end)
{
	struct sim s;
	int i = 1, j = k, n = old_n > new_n ? old_n : new_n, e;
	size_t x;

	memset(&s, 0, sizeof s);
	srand(seed);
	overlap_init(&s.o, 0);
	while ((i <= old_n && !s.old_closed) || j <= new_n) {
		int take_old = j > new_n ||
		    (i <= old_n && !s.old_closed && rand() % 2 == 0);

		if (take_old) {
			e = i++;
			sim_verdict(&s, overlap_old(&s.o, sim_hash(e), 0), e);
		} else {
			e = j++;
			sim_verdict(&s, overlap_new(&s.o, sim_hash(e), 0), e);
		}
	}
	if (s.o.mode == OVERLAP_BOTH) {
		if (quiet_end && overlap_due(&s.o, OVERLAP_QUIET) != 0)
			return 0; /* held events, old quiet: must be due */
		sim_switch(&s);
	}
	overlap_free(&s.o);
	if (s.nout != (size_t)n)
		return 0;
	for (x = 0; x < s.nout; x++) {
		if (s.out[x] != (int)x + 1)
			return 0;
	}
	return 1;
}

static void
test_interleavings(void)
{
	unsigned seed;
	int bad = 0, runs = 0, k;

	for (seed = 1; seed <= 300; seed++) {
		for (k = 1; k <= 40; k += 13) {
			runs++;
			bad += !sim_run(40, k, 60, seed, 0);
		}
	}
	ok(bad == 0, "%d of %d random interleavings give 1..n once, in order",
	    runs - bad, runs);
}

static void
test_cases(void)
{
	struct overlap o;

	overlap_init(&o, 1000);
	is_int(
	    overlap_old(&o, 1, 1000), OVERLAP_FORWARD, "old's events go out");
	is_int(overlap_new(&o, 2, 1001), OVERLAP_HOLD, "new's events wait");
	is_int(overlap_old(&o, 2, 1002), OVERLAP_FORWARD_SWITCH,
	    "an event on both: forward it, then switch");
	ok(!overlap_release(&o, 2), "a held event old forwarded stays back");
	ok(overlap_release(&o, 3), "a held event old did not forward goes out");
	overlap_switched(&o);
	is_int(overlap_old(&o, 4, 1003), OVERLAP_DROP,
	    "after the switch, old's events are dropped");
	is_int(overlap_new(&o, 2, 1003), OVERLAP_DROP,
	    "new's repeats of old's are dropped");
	is_int(overlap_new(&o, 5, 1004), OVERLAP_FORWARD,
	    "then new's events go out");
	is_int(o.mode, OVERLAP_DONE, "and the overlap is over");
	overlap_free(&o);

	overlap_init(&o, 1000);
	overlap_old(&o, 1, 1000);
	is_int(overlap_new(&o, 1, 1001), OVERLAP_DROP_SWITCH,
	    "new's first event was forwarded: switch");
	overlap_free(&o);

	overlap_init(&o, 1000);
	is_int(overlap_due(&o, 1000), OVERLAP_MAX,
	    "nothing held: due after OVERLAP_MAX");
	overlap_new(&o, 7, 1100);
	is_int(overlap_due(&o, 1100), OVERLAP_QUIET - 100,
	    "held while old is quiet: due OVERLAP_QUIET after old's last event");
	overlap_old(&o, 8, 1200);
	is_int(
	    overlap_due(&o, 1200), OVERLAP_QUIET, "old's events keep it open");
	is_int(overlap_due(&o, 1200 + OVERLAP_QUIET), 0,
	    "old silent that long: due now");
	overlap_free(&o);

	overlap_init(&o, 1000);
	overlap_new(&o, 9, 1001);
	overlap_new_gone(&o, 1002);
	is_int(overlap_old(&o, 9, 1003), OVERLAP_DROP,
	    "new died: old's copy of what it released is dropped");
	is_int(overlap_old(&o, 10, 1003), OVERLAP_FORWARD,
	    "old's other events go out");
	is_int(overlap_due(&o, 1002 + OVERLAP_MAX), 0,
	    "and that ends after OVERLAP_MAX");
	overlap_free(&o);

	ok(sim_run(5, 6, 10, 1, 1),
	    "no common event: old quiet and events held: the switch is due");
	ok(overlap_hash("a", 1) != overlap_hash("b", 1),
	    "different bytes, different hashes");
}

int
main(void)
{
	test_cases();
	test_interleavings();
	return tap_done();
}
