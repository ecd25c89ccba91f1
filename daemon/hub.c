/*
 * Fan-out.  Events from Slack arrive in batches (one read's worth); each
 * event was serialised once by Slack and checked once by the upstream
 * thread.  Every event is numbered here (its seq: 1, 2, … in this run,
 * whose id hub_run() makes at start), shown to the consumers, fanned out,
 * then copied to the replay ring (replay.c), which lets it go when it ages
 * out; a client catching up from a cursor reads the ring instead of the
 * fan-out until it has caught up (client.c), so it sees no gap and no
 * duplicate.  Daemon messages (slackd.state, …) are not numbered.
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

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "slackd.h"

#define HUB_SHARE_MIN    4096  /* blocks this big are always shared */
#define HUB_SHARE_BEHIND 16384 /* and any to a client this far behind */
#define HUB_CONSUMERS    4     /* at most this many consumers */

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
	uint64_t first; /* seq of ev[0] */
	size_t len;     /* of the plain lines */
	struct hub_block *b;
	int b_shared;
	struct hub_block *sb;
	int sb_shared;
	size_t *off; /* n + 1 offsets into sb */
};

static inline void
hub_event(const struct mailbox_msg *m, uint64_t seq, struct hub_event *e)
{
	e->type = m->u.event.type;
	e->channel = m->u.event.channel;
	e->line = m->data;
	e->len = m->len;
	e->seq = seq;
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
static uint64_t hub_last; /* the newest seq given out, 0: none yet */
static char hub_runid[REPLAY_RUN_LEN + 1];
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

/* The sequence number of the newest event, 0 before the first. */
uint64_t
hub_seq(void)
{
	return hub_last;
}

/* This run's id: random, made at the first use after start. */
const char *
hub_run(void)
{
	if (hub_runid[0] == '\0')
		replay_run_new(hub_runid, util_random64());
	return hub_runid;
}

/* The cursor of the newest event ("<run>:0" before the first). */
const char *
hub_cursor(char *buf)
{
	return replay_cursor(buf, hub_run(), hub_last);
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
		b->len += replay_prefix(
		    b->data + b->len, hub_runid, hb->first + i, m->data);
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

	hub_run();
	hub_busy = 1;
	memset(&hb, 0, sizeof hb);
	hb.ev = ev;
	hb.n = n;
	hb.first = hub_last + 1;
	hub_last += n;
	for (i = 0; i < n; i++) {
		hub_event(ev[i], hb.first + i, &e);
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
	hub_events(&m, 1);
	return hub_last;
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
