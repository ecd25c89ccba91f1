/*
 * Fan-out.  Events from Slack arrive in batches (one read's worth); each
 * event was serialised once by Slack and checked once by the upstream
 * thread.  For a batch, the lines of all its events are laid end to end in
 * one block that every client without a filter shares by reference (one
 * libevent chain per client per batch, freed when the last client has
 * written it); a client with a filter gets copies of the lines it wants.
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

/* What the hub reads of one event: the only place that knows the message. */
struct hub_event {
	const char *type;    /* "" if none */
	const char *channel; /* "" if none */
	const char *line;    /* "\n" included */
	size_t len;
};

static inline void
hub_event(const struct mailbox_msg *m, struct hub_event *e)
{
	e->type = m->u.event.type;
	e->channel = m->u.event.channel;
	e->line = m->data;
	e->len = m->len;
}

/*
 * Consumers inside the daemon (names.c keeps its cache fresh this way):
 * each is called as fn(type, line, len) for every event, before the
 * clients get the batch, on the main thread.  The bytes are the hub's: a
 * consumer copies what it keeps, and ignores quickly the types it does not
 * care about.
 */
static hub_consumer hub_consumers[HUB_CONSUMERS];
static u_int hub_nconsumers;
static uint64_t hub_nreceived; /* events since start */

uint64_t
hub_received(void)
{
	return hub_nreceived;
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

/* The events of the batch that c wants, copied. */
static void
hub_copy(struct client *c, struct mailbox_msg **ev, size_t n, int64_t now)
{
	struct hub_event e;
	size_t i;

	for (i = 0; i < n; i++) {
		hub_event(ev[i], &e);
		if (!client_wants(c, e.type, e.channel))
			continue;
		if (!client_room(c, e.len, now) ||
		    client_queue(c, e.line, e.len) != 0)
			return;
	}
}

/* The batch's lines end to end; the one reference is the hub's own. */
static struct hub_block *
hub_block(struct mailbox_msg **ev, size_t n, size_t len)
{
	struct hub_block *b;
	struct hub_event e;
	size_t i;

	b = xmalloc(sizeof *b + len);
	b->refs = 1;
	b->len = 0;
	for (i = 0; i < n; i++) {
		hub_event(ev[i], &e);
		memcpy(b->data + b->len, e.line, e.len);
		b->len += e.len;
	}
	return b;
}

/*
 * Deliver a batch of events (each m->data is a line, "\n" included);
 * takes them.
 */
void
hub_events(struct mailbox_msg **ev, size_t n)
{
	struct hub_block *b = NULL;
	struct hub_event e;
	struct client *c;
	size_t i, len = 0;
	int64_t now = util_now_ms();
	u_int k;

	hub_nreceived += n;
	for (i = 0; i < n; i++) {
		hub_event(ev[i], &e);
		for (k = 0; k < hub_nconsumers; k++)
			hub_consumers[k](e.type, e.line, e.len);
		len += e.len;
	}
	for (c = client_first(); c != NULL; c = client_next(c)) {
		/* Copy a small batch to a client that keeps up, until a
		 * lagging one has made the block: then everyone shares it. */
		if (client_filtered(c) ||
		    (b == NULL && len < HUB_SHARE_MIN &&
		        client_output(c) < HUB_SHARE_BEHIND)) {
			hub_copy(c, ev, n, now);
			continue;
		}
		if (b == NULL)
			b = hub_block(ev, n, len);
		if (!client_room(c, b->len, now))
			continue;
		b->refs++;
		if (client_queue_ref(c, b->data, b->len, hub_release, b) != 0)
			b->refs--;
	}
	if (b != NULL)
		hub_release(NULL, 0, b);
	for (i = 0; i < n; i++)
		mailbox_msg_free(ev[i]);
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
