/*
 * Fan-out.  Events from Slack arrive in batches (one read's worth); each
 * event was serialised once by Slack and checked once by the upstream
 * thread.  Every event is numbered here, shown to the consumers, fanned
 * out, then copied to the replay ring (replay.c), which lets it go when it
 * ages out; a client catching up from a cursor reads the ring instead of
 * the fan-out until it has caught up (client.c), so it sees no gap and no
 * duplicate.  Daemon messages (slackd.state, …) are not numbered.
 *
 * Numbering.  Every event gets the next index (1, 2, … in this process,
 * consecutive: the ring and catching-up clients count in indexes) and is
 * shown as the cursor "<run>:<n>" of the segment its index falls in, n =
 * index + off.  Without nats_ha there is one segment: a run of this
 * slackd's own (random, made at start), off 0.  A standby shows the events
 * it reads from the stream with the leader's numbers (hub_inject_as()),
 * starting a segment where the leader's run changes or numbers were
 * skipped (which it tells the clients: slackd.gap); a standby that comes
 * to lead starts a run of its own (hub_run_new()), so that no two slackd
 * ever give one cursor to two events.  A cursor resolves to an index
 * through the segments (hub_plan()); only the newest HUB_SEGS are kept,
 * and an event of an older one is no longer replayed.
 *
 * For a batch, the lines of all its events are laid end to end in one
 * block that every client without a filter shares by reference (one
 * libevent chain per client per batch, freed when the last client has
 * written it); a client with a filter gets copies of the lines it wants.
 * Clients that asked for sequence numbers get a second block, the same
 * lines each with {"slackd_seq":"<run>:<n>", spliced after its opening
 * brace (Slack's bytes are not re-serialised), built once per batch.
 * A small block goes by copy to a client that is keeping up (its copy is
 * written at once), by reference to one that lags (its copy would wait,
 * once per client).
 *
 * Slow readers are bounded like Redis' client-output-buffer-limit: a hard
 * limit (client_buffer_limit) and a soft one held for a time
 * (client_buffer_soft for client_buffer_soft_time); a client over either
 * is dropped (client_room()), so one stuck reader can neither hold up the
 * others nor grow the daemon.  The hub sees clients only through client.c's
 * functions: which take output, what each wants, room, and queueing.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "slackd.h"

#define HUB_SHARE_MIN    4096  /* blocks this big are always shared */
#define HUB_SHARE_BEHIND 16384 /* and any to a client this far behind */
#define HUB_CONSUMERS    4     /* at most this many consumers */
#define HUB_SEGS         64    /* numbering segments kept */
#define HUB_GAP_STANDBY  "standby"

/* The lines of a batch of events, end to end, shared by clients. */
struct hub_block {
	u_int refs;
	size_t len;
	char data[];
};

/*
 * A batch as the clients get it: the plain lines (Slack's bytes), and for
 * clients that asked for sequence numbers the same lines each with its
 * "slackd_seq" spliced in (one block, built once per batch; off[i] is
 * where event i starts in it).  A block made for sharing is "shared".
 */
struct hub_batch {
	struct mailbox_msg **ev;
	size_t n;
	uint64_t first;            /* the index of ev[0] */
	const struct hub_seg *seg; /* the numbering of them all */
	size_t len;                /* of the plain lines */
	struct hub_block *b;
	int b_shared;
	struct hub_block *sb;
	int sb_shared;
	size_t *off; /* n + 1 offsets into sb */
};

/* Indexes from .from on are shown as "<run>:<index + off>". */
struct hub_seg {
	uint64_t from;
	int64_t off;
	char run[REPLAY_RUN_LEN + 1];
	int own; /* a run of this slackd's own */
};

static inline void
hub_event(const struct mailbox_msg *m, const struct hub_seg *s, uint64_t idx,
    struct hub_event *e)
{
	e->type = m->u.event.type;
	e->channel = m->u.event.channel;
	e->ts = m->u.event.ts;
	e->thread_ts = m->u.event.thread_ts;
	e->backfilled = m->u.event.backfilled;
	e->line = m->data;
	e->len = m->len;
	e->run = s->run;
	e->seq = (uint64_t)((int64_t)idx + s->off);
}

/*
 * Consumers inside the daemon (names.c keeps its cache fresh this way):
 * each is called as fn(event) for every event, numbered, before the
 * clients get the batch, on the main thread.  The bytes are the hub's: a
 * consumer copies what it keeps, ignores quickly the types it does not
 * care about, and does not call hub_inject().
 */
static hub_consumer hub_consumers[HUB_CONSUMERS];
static u_int hub_nconsumers;
static uint64_t hub_last; /* the newest index given out, 0: none yet */
static struct hub_seg hub_segs[HUB_SEGS]; /* oldest first */
static u_int hub_nsegs;
static struct replay *hub_ring;
static size_t *hub_off; /* hub_batch.off, kept between batches */
static size_t hub_noff;
static int hub_busy; /* in hub_events() */

/* Events forwarded since start (from Slack, or injected). */
uint64_t
hub_received(void)
{
	return hub_last;
}

/* The index of the newest event, 0 before the first. */
uint64_t
hub_seq(void)
{
	return hub_last;
}

/* Number the events from the next on as run's seq, seq + 1, … */
static void
hub_renumber(const char *run, uint64_t seq)
{
	struct hub_seg *s;

	s = hub_nsegs > 0 ? &hub_segs[hub_nsegs - 1] : NULL;
	if (s == NULL || s->from <= hub_last) { /* else: it has no event */
		if (hub_nsegs == HUB_SEGS)
			memmove(hub_segs, hub_segs + 1,
			    --hub_nsegs * sizeof *hub_segs);
		s = &hub_segs[hub_nsegs++];
	}
	s->from = hub_last + 1;
	s->off = (int64_t)seq - (int64_t)s->from;
	snprintf(s->run, sizeof s->run, "%s", run);
	s->own = 0;
}

/* The segment events are numbered in now (made at the first use). */
static const struct hub_seg *
hub_seg_now(void)
{
	if (hub_nsegs == 0)
		hub_run_new();
	return &hub_segs[hub_nsegs - 1];
}

/* The segment index idx is in, NULL if forgotten. */
static const struct hub_seg *
hub_seg_of(uint64_t idx)
{
	u_int k;

	hub_seg_now();
	for (k = hub_nsegs; k-- > 0;) {
		if (hub_segs[k].from <= idx)
			return &hub_segs[k];
	}
	return idx == 0 ? &hub_segs[0] : NULL;
}

/* The run events are numbered in now. */
const char *
hub_run(void)
{
	return hub_seg_now()->run;
}

/* A new run of this slackd's own: its events are <run>:1, <run>:2, … */
void
hub_run_new(void)
{
	char run[REPLAY_RUN_LEN + 1];

	replay_run_new(run, util_random64());
	hub_renumber(run, 1);
	hub_segs[hub_nsegs - 1].own = 1;
}

/* The cursor of the newest event ("<run>:0" before the first). */
const char *
hub_cursor(char *buf)
{
	const struct hub_seg *s = hub_seg_now();

	return replay_cursor(
	    buf, s->run, (uint64_t)((int64_t)hub_last + s->off));
}

/* The cursor of the event at index idx, NULL if no longer known. */
const char *
hub_label(char *buf, uint64_t idx)
{
	const struct hub_seg *s = hub_seg_of(idx);

	if (s == NULL)
		return NULL;
	return replay_cursor(buf, s->run, (uint64_t)((int64_t)idx + s->off));
}

/*
 * The "slackd_seq" splice for the event at index idx (replay_prefix()),
 * 0 if its number is no longer known.
 */
size_t
hub_prefix(char *buf, uint64_t idx, const char *line)
{
	const struct hub_seg *s = hub_seg_of(idx);

	if (s == NULL)
		return 0;
	return replay_prefix(
	    buf, s->run, (uint64_t)((int64_t)idx + s->off), line);
}

/*
 * Where a replay from the cursor (run, n) starts: replay_plan() in
 * indexes.  A cursor of a run not among the segments (another slackd's
 * or an older run's, or one this slackd missed events of) is a gap with
 * what was missed unknown.  -1: the cursor is ahead of this slackd.
 */
int
hub_plan(const char *run, uint64_t n, uint64_t *next, struct replay_gap *gap)
{
	const struct hub_seg *s;
	int64_t i, end;
	u_int k;

	hub_seg_now();
	for (k = hub_nsegs; k-- > 0;) {
		s = &hub_segs[k];
		if (strcmp(s->run, run) != 0)
			continue;
		i = (int64_t)n - s->off;
		end = k + 1 < hub_nsegs ? (int64_t)hub_segs[k + 1].from - 1
		                        : (int64_t)hub_last;
		if (i > end) {
			if (k + 1 == hub_nsegs)
				return -1;
			break; /* numbers this slackd skipped */
		}
		if (i >= (int64_t)s->from - 1)
			return replay_plan(hub_replay(), "", hub_last, "",
			    (uint64_t)i, next, gap);
	}
	return replay_plan(hub_replay(), "", hub_last, "?", 0, next, gap);
}

/*
 * The replay ring: every event forwarded, oldest first, within
 * replay_bytes and replay_age.  Others may read it (replay_get(),
 * replay_walk(), replay_oldest()); what they read stays valid until the
 * next batch of events.
 */
struct replay *
hub_replay(void)
{
	if (hub_ring == NULL)
		hub_ring = replay_new();
	return hub_ring;
}

void
hub_free(void)
{
	replay_free(hub_ring);
	hub_ring = NULL;
	free(hub_off);
	hub_off = NULL;
	hub_noff = 0;
}

void
hub_consume(hub_consumer fn)
{
	if (hub_nconsumers == HUB_CONSUMERS)
		fatalx("too many hub consumers");
	hub_consumers[hub_nconsumers++] = fn;
}

void
hub_unconsume(hub_consumer fn)
{
	u_int i;

	for (i = 0; i < hub_nconsumers; i++) {
		if (hub_consumers[i] == fn) {
			hub_consumers[i] = hub_consumers[--hub_nconsumers];
			return;
		}
	}
}

static void
hub_release(const void *data, size_t len, void *arg)
{
	struct hub_block *b = arg;

	if (--b->refs == 0)
		free(b);
}

/* The events of the batch that c wants, copied, with seq or without. */
static void
hub_copy(struct client *c, struct hub_batch *hb, int seq, int64_t now)
{
	const struct mailbox_msg *m;
	const char *line;
	size_t i, len;

	for (i = 0; i < hb->n; i++) {
		m = hb->ev[i];
		if (!client_wants(c, m->u.event.type, m->u.event.channel))
			continue;
		if (seq) {
			line = hb->sb->data + hb->off[i];
			len = hb->off[i + 1] - hb->off[i];
		} else {
			line = m->data;
			len = m->len;
		}
		if (!client_room(c, len, now) ||
		    client_queue(c, line, len) != 0)
			return;
	}
}

/* The batch's lines end to end; the one reference is the hub's own. */
static struct hub_block *
hub_block(struct hub_batch *hb)
{
	struct hub_block *b;
	size_t i;

	b = xmalloc(sizeof *b + hb->len);
	b->refs = 1;
	b->len = 0;
	for (i = 0; i < hb->n; i++) {
		memcpy(b->data + b->len, hb->ev[i]->data, hb->ev[i]->len);
		b->len += hb->ev[i]->len;
	}
	return b;
}

/* The same with each event's "slackd_seq" spliced after its brace. */
static struct hub_block *
hub_block_seq(struct hub_batch *hb)
{
	const struct mailbox_msg *m;
	struct hub_block *b;
	size_t i;

	if (hub_noff < hb->n + 1) {
		hub_noff = hb->n + 1;
		hub_off = xrealloc(hub_off, hub_noff * sizeof *hub_off);
	}
	hb->off = hub_off;
	b = xmalloc(sizeof *b + hb->len + hb->n * REPLAY_PREFIX_MAX);
	b->refs = 1;
	b->len = 0;
	for (i = 0; i < hb->n; i++) {
		m = hb->ev[i];
		hb->off[i] = b->len;
		b->len += replay_prefix(b->data + b->len, hb->seg->run,
		    (uint64_t)((int64_t)(hb->first + i) + hb->seg->off),
		    m->data);
		memcpy(b->data + b->len, m->data + 1, m->len - 1);
		b->len += m->len - 1;
	}
	hb->off[i] = b->len;
	return b;
}

/*
 * Give c the batch: a small one by copy if c keeps up and nobody has made
 * the block shared yet, else the shared block by reference.
 */
static void
hub_deliver(struct client *c, int mode, struct hub_batch *hb, int64_t now)
{
	int seq = (mode & CLIENT_MODE_SEQ) != 0;
	struct hub_block **bp = seq ? &hb->sb : &hb->b;
	int *shared = seq ? &hb->sb_shared : &hb->b_shared;

	if (seq && hb->sb == NULL)
		hb->sb = hub_block_seq(hb);
	if ((mode & CLIENT_MODE_FILTERED) ||
	    (!*shared && hb->len < HUB_SHARE_MIN &&
	        client_output(c) < HUB_SHARE_BEHIND)) {
		hub_copy(c, hb, seq, now);
		return;
	}
	if (*bp == NULL)
		*bp = hub_block(hb);
	*shared = 1;
	if (!client_room(c, (*bp)->len, now))
		return;
	(*bp)->refs++;
	if (client_queue_ref(c, (*bp)->data, (*bp)->len, hub_release, *bp) != 0)
		(*bp)->refs--;
}

/* Keep a copy of the batch on the ring. */
static void
hub_keep(struct hub_batch *hb, int64_t now, double wall)
{
	struct replay_event re;
	struct mailbox_msg *m;
	size_t i;

	if (slackd_conf->replay_bytes == 0 && hub_ring == NULL)
		return;
	replay_limits(
	    hub_replay(), slackd_conf->replay_bytes, slackd_conf->replay_age);
	memset(&re, 0, sizeof re);
	re.mono = now;
	re.wall = wall;
	for (i = 0; i < hb->n; i++) {
		m = hb->ev[i];
		re.seq = hb->first + i;
		re.type = m->u.event.type;
		re.channel = m->u.event.channel;
		re.line = m->data;
		re.len = m->len;
		replay_add(hub_ring, &re, now);
	}
}

/*
 * Deliver a batch of events (each m->data is a line, "\n" included, a
 * JSON object); takes them.  Each is numbered, shown to the consumers,
 * fanned out (not to clients still catching up from the ring: they read
 * it there) and copied to the ring; then the messages are freed.
 */
void
hub_events(struct mailbox_msg **ev, size_t n)
{
	struct hub_batch hb;
	struct hub_event e;
	struct client *c;
	int64_t now = util_now_ms();
	size_t i;
	u_int k;
	int mode;

	hub_busy = 1;
	memset(&hb, 0, sizeof hb);
	hb.ev = ev;
	hb.n = n;
	hb.seg = hub_seg_now();
	hb.first = hub_last + 1;
	hub_last += n;
	for (i = 0; i < n; i++) {
		hub_event(ev[i], hb.seg, hb.first + i, &e);
		for (k = 0; k < hub_nconsumers; k++)
			hub_consumers[k](&e);
		hb.len += e.len;
	}
	for (c = client_first(); c != NULL; c = client_next(c)) {
		mode = client_mode(c);
		if (!(mode & CLIENT_MODE_CATCHUP))
			hub_deliver(c, mode, &hb, now);
	}
	if (hb.b != NULL)
		hub_release(NULL, 0, hb.b);
	if (hb.sb != NULL)
		hub_release(NULL, 0, hb.sb);
	hub_keep(&hb, now, util_wall());
	for (i = 0; i < n; i++)
		mailbox_msg_free(ev[i]);
	hub_busy = 0;
}

/*
 * An event that did not come from the upstream thread (backfill): line
 * is one JSON object (compact, as Slack's), with or without its newline;
 * type and channel are what filters see (NULL: none).  It is numbered,
 * shown to the consumers, fanned out and kept like any other.  Returns
 * its seq, or 0 if it was refused (not an object, a field too long).
 * Not to be called from a hub consumer.
 */
uint64_t
hub_inject(const char *line, size_t len, const char *type, const char *channel)
{
	struct mailbox_msg *m;
	struct jscan js;
	size_t nl;

	if (hub_busy)
		fatalx("hub_inject() called from inside hub_events()");
	if (type == NULL)
		type = "";
	if (channel == NULL)
		channel = "";
	nl = len > 0 && line[len - 1] == '\n';
	if (len < 2 + nl || line[0] != '{' || line[len - 1 - nl] != '}' ||
	    strlen(type) >= JSCAN_FIELD || strlen(channel) >= JSCAN_FIELD) {
		log_warnx(
		    "an injected event was refused: not a JSON object, or its type or channel is too long");
		return 0;
	}
	m = mailbox_msg_new_data(MAILBOX_EVENT, len + (nl ? 0 : 1));
	memcpy(m->data, line, len);
	if (!nl)
		m->data[len] = '\n';
	memcpy(m->u.event.type, type, strlen(type) + 1);
	memcpy(m->u.event.channel, channel, strlen(channel) + 1);
	/*
	 * What backfill.c follows messages by, picked as the upstream thread
	 * picks it (as deep as frame.c allows).  A line jscan refuses still
	 * goes out, as before, with none of them.
	 */
	if (jscan_object(line, len, 64, &js) == 0) {
		memcpy(m->u.event.ts, js.ts, sizeof m->u.event.ts);
		memcpy(m->u.event.thread_ts, js.thread_ts,
		    sizeof m->u.event.thread_ts);
		m->u.event.backfilled = js.backfilled;
	}
	hub_events(&m, 1);
	return hub_last;
}

/*
 * The slackd.gap for the leader's events run:first to run:last, which this
 * standby did not get; the why is logged the first time (log).
 */
static struct json_object *
hub_gap_standby(const char *run, uint64_t first, uint64_t last, int log)
{
	char a[REPLAY_CURSOR_MAX], b[REPLAY_CURSOR_MAX];
	struct json_object *o;
	char *why;

	replay_cursor(a, run, first);
	replay_cursor(b, run, last);
	xasprintf(&why,
	    "this standby did not get the leader's events %s to %s from NATS (its link to NATS dropped, or it read too slowly); they are in the stream",
	    a, b);
	if (log)
		log_warnx("%s", why);
	o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string(PROTOCOL_GAP));
	json_object_object_add(
	    o, "reason", json_object_new_string(HUB_GAP_STANDBY));
	json_object_object_add(o, "why", json_object_new_string(why));
	json_object_object_add(
	    o, "missed", json_object_new_int64((int64_t)(last - first + 1)));
	json_object_object_add(o, "first", json_object_new_string(a));
	json_object_object_add(o, "last", json_object_new_string(b));
	free(why);
	return o;
}

/*
 * Replaying: the event at index idx follows numbers of its run this
 * standby never got?  Then the slackd.gap that says so, else NULL.
 */
struct json_object *
hub_hole(uint64_t idx)
{
	const struct hub_seg *s, *p;
	uint64_t before;

	if ((s = hub_seg_of(idx)) == NULL || s->from != idx || s == hub_segs)
		return NULL;
	p = s - 1;
	before = (uint64_t)((int64_t)idx - 1 + p->off);
	if (strcmp(p->run, s->run) != 0 ||
	    (uint64_t)((int64_t)idx + s->off) <= before + 1)
		return NULL;
	return hub_gap_standby(
	    s->run, before + 1, (uint64_t)((int64_t)idx + s->off) - 1, 0);
}

/*
 * A standby: an event the leader numbered (run, seq), from the stream.
 * It keeps the leader's number; one this slackd has already had (or
 * numbered itself, as the leader it was) is dropped, and numbers skipped in the
 * leader's run (events this slackd did not get from NATS) are a slackd.gap to
 * the clients, which says where they are.  Returns the index, or 0 if it was
 * dropped or refused.
 */
uint64_t
hub_inject_as(const char *line, size_t len, const char *type,
    const char *channel, const char *run, uint64_t seq)
{
	const struct hub_seg *s = hub_seg_now();
	uint64_t now = (uint64_t)((int64_t)hub_last + s->off);
	struct json_object *o;

	u_int k;

	if (seq == 0)
		return 0;
	if (strcmp(s->run, run) == 0 && seq <= now)
		return 0;
	/* Ours, published late (NATS was away when this slackd led). */
	for (k = 0; k < hub_nsegs; k++) {
		if (hub_segs[k].own && strcmp(hub_segs[k].run, run) == 0)
			return 0;
	}
	if (strcmp(s->run, run) == 0 && seq > now + 1) {
		o = hub_gap_standby(run, now + 1, seq - 1, 1);
		hub_broadcast_json(o);
		json_object_put(o);
	}
	if (strcmp(s->run, run) != 0 || seq != now + 1)
		hub_renumber(run, seq);
	return hub_inject(line, len, type, channel);
}

/* A daemon message for everyone (slackd.state). */
void
hub_broadcast_json(struct json_object *o)
{
	struct client *c;
	const char *s;
	size_t len;

	s = json_object_to_json_string_length(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	for (c = client_first(); c != NULL; c = client_next(c))
		client_send(c, s, len);
}
