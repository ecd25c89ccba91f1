/*
 * The replay ring and cursors, pure: no I/O, no daemon state, no clock of
 * its own (the caller passes the time).  hub.c numbers every event it
 * forwards and keeps the daemon's one ring; client.c replays from it.
 *
 * A cursor is "<run>:<n>": the run is a short random URL-safe word made
 * at every daemon start, n the sequence number of the last event the
 * client has seen (1 is the run's first event, 0 means none yet).
 *
 * Invariants of the ring: the events it holds have consecutive sequence
 * numbers oldest..newest (every numbered event is added, in order), so
 * replay_get() is an index; what it holds takes at most max_bytes (its
 * entries and the chunks its copies of the events' bytes are in, laid end
 * to end: copying a line into a chunk costs less than keeping the
 * allocation it came in, which would go cold and be freed far from where
 * it was made) and is no older than max_age once replay_expire() or
 * replay_add() has run.  A chunk is freed when its last event leaves.
 * Pointers an event carries stay valid until the next replay_add(),
 * replay_expire() or replay_free().
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slackd.h"

struct replay_chunk {
	size_t size; /* of data */
	size_t used;
	size_t live; /* events whose bytes are here */
	char data[];
};

struct replay {
	struct replay_event *ev; /* circular, cap entries */
	size_t cap;
	size_t head; /* index of the oldest */
	size_t n;
	struct replay_chunk *cur;   /* being filled, or NULL */
	struct replay_chunk *spare; /* a freed one, kept for reuse */
	size_t bytes;               /* chunks and entries held */
	size_t max_bytes;           /* 0: hold nothing */
	int64_t max_age;            /* ms; 0: no age limit */
	uint64_t evicted_seq;       /* newest event that left, 0 if none */
	double evicted_wall;        /* when it had arrived */
};

struct replay *
replay_new(void)
{
	return xcalloc(1, sizeof(struct replay));
}

/* Chunks are a sixteenth of the limit, 256 bytes to 1M. */
static size_t
replay_chunk_size(const struct replay *r)
{
	size_t size = r->max_bytes / 16;

	if (size < 256)
		size = 256;
	if (size > 1024 * 1024)
		size = 1024 * 1024;
	return size;
}

static void
replay_chunk_free(struct replay *r, struct replay_chunk *ch)
{
	r->bytes -= sizeof *ch + ch->size;
	if (r->cur == ch)
		r->cur = NULL;
	if (r->spare == NULL && ch->size == replay_chunk_size(r))
		r->spare = ch;
	else
		free(ch);
}

/* Drop the oldest event. */
static void
replay_drop(struct replay *r)
{
	struct replay_event *e = &r->ev[r->head];
	struct replay_chunk *ch = e->chunk;

	r->evicted_seq = e->seq;
	r->evicted_wall = e->wall;
	r->bytes -= sizeof *e;
	if (--ch->live == 0)
		replay_chunk_free(r, ch);
	r->head = (r->head + 1) % r->cap;
	r->n--;
}

void
replay_free(struct replay *r)
{
	if (r == NULL)
		return;
	while (r->n > 0)
		replay_drop(r);
	free(r->cur);
	free(r->spare);
	free(r->ev);
	free(r);
}

/* Enforce the limits: at most max_bytes, nothing older than max_age. */
void
replay_expire(struct replay *r, int64_t now)
{
	while (r->n > 0 && r->bytes > r->max_bytes)
		replay_drop(r);
	while (r->n > 0 && r->max_age > 0 &&
	    now - r->ev[r->head].mono > r->max_age)
		replay_drop(r);
}

/* bytes 0 keeps nothing; age 0 has no age limit.  Applied at the next add. */
void
replay_limits(struct replay *r, size_t bytes, int64_t age)
{
	r->max_bytes = bytes;
	r->max_age = age;
}

static void
replay_grow(struct replay *r)
{
	struct replay_event *ev;
	size_t cap = r->cap == 0 ? 1024 : r->cap * 2, i;

	ev = xcalloc(cap, sizeof *ev);
	for (i = 0; i < r->n; i++)
		ev[i] = r->ev[(r->head + i) % r->cap];
	free(r->ev);
	r->ev = ev;
	r->cap = cap;
	r->head = 0;
}

/* Room for need bytes in the current chunk, or a new one. */
static struct replay_chunk *
replay_room(struct replay *r, size_t need)
{
	struct replay_chunk *ch = r->cur;
	size_t size = replay_chunk_size(r);

	if (ch != NULL && ch->size - ch->used >= need)
		return ch;
	if (ch != NULL && ch->live == 0)
		replay_chunk_free(r, ch);
	r->cur = NULL;
	if (need > size)
		size = need;
	if (r->spare != NULL && r->spare->size == size) {
		ch = r->spare;
		r->spare = NULL;
	} else
		ch = xmalloc(sizeof *ch + size);
	ch->size = size;
	ch->used = ch->live = 0;
	r->bytes += sizeof *ch + size;
	return r->cur = ch;
}

/*
 * Add a copy of e (its seq one more than the newest held, or anything if
 * the ring is empty: e->chunk is not read) and enforce the limits at now.
 */
void
replay_add(struct replay *r, const struct replay_event *e, int64_t now)
{
	size_t tl = strlen(e->type) + 1, cl = strlen(e->channel) + 1;
	struct replay_event *n;
	struct replay_chunk *ch;
	char *p;

	if (r->n > 0 && e->seq != r->ev[(r->head + r->n - 1) % r->cap].seq + 1)
		fatalx("replay: event %" PRIu64 " out of order", e->seq);
	if (r->max_bytes == 0) {
		replay_expire(r, now);
		r->evicted_seq = e->seq;
		r->evicted_wall = e->wall;
		return;
	}
	if (r->n == r->cap)
		replay_grow(r);
	ch = replay_room(r, tl + cl + e->len);
	p = ch->data + ch->used;
	ch->used += tl + cl + e->len;
	ch->live++;
	n = &r->ev[(r->head + r->n) % r->cap];
	*n = *e;
	n->chunk = ch;
	n->type = memcpy(p, e->type, tl);
	n->channel = memcpy(p + tl, e->channel, cl);
	n->line = memcpy(p + tl + cl, e->line, e->len);
	r->n++;
	r->bytes += sizeof *n;
	replay_expire(r, now);
}

/* The oldest and newest sequence numbers held; 0 if none. */
uint64_t
replay_oldest(const struct replay *r)
{
	return r->n > 0 ? r->ev[r->head].seq : 0;
}

uint64_t
replay_newest(const struct replay *r)
{
	return r->n > 0 ? r->ev[(r->head + r->n - 1) % r->cap].seq : 0;
}

size_t
replay_count(const struct replay *r)
{
	return r->n;
}

size_t
replay_bytes(const struct replay *r)
{
	return r->bytes;
}

/* The event numbered seq, or NULL if the ring does not hold it. */
const struct replay_event *
replay_get(const struct replay *r, uint64_t seq)
{
	uint64_t oldest = replay_oldest(r);

	if (r->n == 0 || seq < oldest || seq - oldest >= r->n)
		return NULL;
	return &r->ev[(r->head + (size_t)(seq - oldest)) % r->cap];
}

/*
 * fn(event, arg) for each event held after seq `after`, oldest first,
 * until fn returns non-zero (which replay_walk returns; else 0).  fn must
 * not add to the ring.
 */
int
replay_walk(const struct replay *r, uint64_t after,
    int (*fn)(const struct replay_event *, void *), void *arg)
{
	uint64_t oldest = replay_oldest(r), seq;
	const struct replay_event *e;
	int rc;

	seq = after + 1 > oldest ? after + 1 : oldest;
	while ((e = replay_get(r, seq++)) != NULL) {
		if ((rc = fn(e, arg)) != 0)
			return rc;
	}
	return 0;
}

/* ---- cursors ------------------------------------------------------------ */

/* A run id: REPLAY_RUN_LEN characters of base64url from 48 random bits. */
void
replay_run_new(char *run, uint64_t rnd)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i;

	for (i = 0; i < REPLAY_RUN_LEN; i++) {
		run[i] = b64[rnd & 63];
		rnd >>= 6;
	}
	run[REPLAY_RUN_LEN] = '\0';
}

/*
 * Parse "<run>:<n>" (run: 1 to REPLAY_RUN_LEN characters of base64url;
 * n: decimal, no sign, no leading zero).  Returns 0 with run (room for
 * REPLAY_RUN_LEN + 1) and n set, or -1.
 */
int
replay_cursor_parse(const char *s, char *run, uint64_t *n)
{
	const char *colon = strchr(s, ':'), *p;
	uint64_t v = 0;
	size_t len;

	if (colon == NULL)
		return -1;
	len = (size_t)(colon - s);
	if (len == 0 || len > REPLAY_RUN_LEN)
		return -1;
	for (p = s; p < colon; p++) {
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		        (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return -1;
	}
	p = colon + 1;
	if (*p < '0' || *p > '9' || (*p == '0' && p[1] != '\0'))
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (*p != '\0')
		return -1;
	memcpy(run, s, len);
	run[len] = '\0';
	*n = v;
	return 0;
}

/* "<run>:<n>" into buf (REPLAY_CURSOR_MAX bytes). */
const char *
replay_cursor(char *buf, const char *run, uint64_t n)
{
	snprintf(buf, REPLAY_CURSOR_MAX, "%s:%" PRIu64, run, n);
	return buf;
}

/*
 * The text that goes in front of an event's line without its opening
 * brace: {"slackd_seq":"<run>:<n>", (the comma left out before an empty
 * object's closing brace).  buf has REPLAY_PREFIX_MAX bytes; returns the
 * length.  The event is then prefix + line[1..len).
 */
size_t
replay_prefix(char *buf, const char *run, uint64_t n, const char *line)
{
	char digits[21];
	size_t len, nd = 0, i;

	memcpy(buf, "{\"slackd_seq\":\"", 15);
	len = 15;
	for (i = 0; run[i] != '\0'; i++)
		buf[len++] = run[i];
	buf[len++] = ':';
	do {
		digits[nd++] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	while (nd > 0)
		buf[len++] = digits[--nd];
	buf[len++] = '"';
	if (line[1] != '}')
		buf[len++] = ',';
	return len;
}

/*
 * Where a replay from cursor (crun, n) starts, given this run's id, the
 * newest number given out (last) and the ring.  Returns 0 with *next set
 * (the first seq to send; last + 1 if nothing) and gap->reason NULL if
 * nothing was missed, else filled; or -1 if the cursor is ahead of this
 * run.  Call replay_expire() first for the age limit to hold.
 */
int
replay_plan(const struct replay *r, const char *run, uint64_t last,
    const char *crun, uint64_t n, uint64_t *next, struct replay_gap *gap)
{
	uint64_t oldest = replay_oldest(r);
	uint64_t held = oldest != 0 ? oldest : last + 1; /* first we can send */

	memset(gap, 0, sizeof *gap);
	*next = held;
	if (strcmp(crun, run) != 0) {
		gap->reason = REPLAY_GAP_RESTART;
		gap->missed = -1; /* the old run's events: unknown */
		if (held > 1) {
			gap->first = 1;
			gap->last = held - 1;
			gap->to = r->evicted_wall;
		}
		return 0;
	}
	if (n > last)
		return -1;
	if (n + 1 >= held) {
		*next = n + 1;
		return 0;
	}
	gap->reason = REPLAY_GAP_EXPIRED;
	gap->missed = (int64_t)(held - 1 - n);
	gap->first = n + 1;
	gap->last = held - 1;
	gap->to = r->evicted_seq == held - 1 ? r->evicted_wall : 0;
	return 0;
}
