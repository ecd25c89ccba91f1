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
 * is dropped, so one stuck reader can neither hold up the others nor grow
 * the daemon.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <json-c/json.h>

#include "slackd.h"

#define HUB_SHARE_MIN    4096  /* blocks this big are always shared */
#define HUB_SHARE_BEHIND 16384 /* and any to a client this far behind */

/* The lines of a batch of events, end to end, shared by clients. */
struct hub_block {
	u_int refs;
	size_t len;
	char data[];
};

static void
hub_release(const void *data, size_t len, void *arg)
{
	struct hub_block *b = arg;

	if (--b->refs == 0)
		free(b);
}

static int
hub_listed(char **list, size_t n, const char *s)
{
	size_t i;

	if (*s == '\0')
		return 0;
	for (i = 0; i < n; i++) {
		if (strcmp(list[i], s) == 0)
			return 1;
	}
	return 0;
}

static int
hub_match(const struct client *c, const struct mailbox_msg *m)
{
	if (!c->all_types && !hub_listed(c->types, c->ntypes, m->etype))
		return 0;
	if (!c->all_channels &&
	    !hub_listed(c->channels, c->nchannels, m->channel))
		return 0;
	return 1;
}

/* A soft limit above the hard one is the hard one. */
size_t
hub_soft_limit(void)
{
	const struct config *conf = slackd_conf;

	return conf->client_buffer_soft < conf->client_buffer_limit
	    ? conf->client_buffer_soft
	    : conf->client_buffer_limit;
}

/*
 * May c take len more bytes?  Over client_buffer_limit it is dropped at
 * once; over client_buffer_soft for client_buffer_soft_time too.
 */
static int
hub_room(struct client *c, size_t len, int64_t now)
{
	const struct config *conf = slackd_conf;
	size_t out = client_output(c) + len, soft = hub_soft_limit();

	if (out > conf->client_buffer_limit) {
		client_drop(c,
		    "%zu bytes unread would pass client_buffer_limit (%zu)",
		    out, conf->client_buffer_limit);
		return 0;
	}
	if (out <= soft) {
		c->soft_since = 0;
		return 1;
	}
	if (c->soft_since == 0)
		c->soft_since = now;
	else if (now - c->soft_since >= conf->client_buffer_soft_time) {
		client_drop(c,
		    "more than client_buffer_soft (%zu bytes) unread for %.0f s",
		    soft, (double)conf->client_buffer_soft_time / 1000);
		return 0;
	}
	return 1;
}

static int
hub_filtered(const struct client *c)
{
	return !c->all_types || !c->all_channels;
}

/* The events of the batch that c wants, copied. */
static void
hub_copy(struct client *c, struct mailbox_msg **ev, size_t n, int64_t now)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t i;

	for (i = 0; i < n; i++) {
		if (!hub_match(c, ev[i]))
			continue;
		if (!hub_room(c, ev[i]->len, now))
			return;
		if (evbuffer_add(out, ev[i]->data, ev[i]->len) != 0) {
			client_kill(c, "cannot queue output");
			return;
		}
		c->events++;
		client_push_later(c);
	}
}

/* The batch's lines end to end; the one reference is the hub's own. */
static struct hub_block *
hub_block(struct mailbox_msg **ev, size_t n, size_t len)
{
	struct hub_block *b;
	size_t i;

	b = xmalloc(sizeof *b + len);
	b->refs = 1;
	b->len = 0;
	for (i = 0; i < n; i++) {
		memcpy(b->data + b->len, ev[i]->data, ev[i]->len);
		b->len += ev[i]->len;
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
	struct client *c;
	size_t i, len = 0;
	int64_t now = util_now_ms();

	status.events += n;
	for (i = 0; i < n; i++) {
		names_event(ev[i]->etype, ev[i]->data, ev[i]->len);
		len += ev[i]->len;
	}
	TAILQ_FOREACH(c, &clients, entry) {
		if (c->flags & (CLIENT_DEAD | CLIENT_FLUSHING))
			continue;
		/* Copy a small batch to a client that keeps up, until a
		 * lagging one has made the block: then everyone shares it. */
		if (hub_filtered(c) ||
		    (b == NULL && len < HUB_SHARE_MIN &&
		        client_output(c) < HUB_SHARE_BEHIND)) {
			hub_copy(c, ev, n, now);
			continue;
		}
		if (b == NULL)
			b = hub_block(ev, n, len);
		if (!hub_room(c, b->len, now))
			continue;
		b->refs++;
		if (evbuffer_add_reference(bufferevent_get_output(c->bev),
		        b->data, b->len, hub_release, b) != 0) {
			b->refs--;
			client_kill(c, "cannot queue output");
			continue;
		}
		c->events += n;
		client_push_later(c);
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
	TAILQ_FOREACH(c, &clients, entry) {
		if (!(c->flags & (CLIENT_DEAD | CLIENT_FLUSHING)))
			client_send(c, s, len);
	}
}

static void
hub_list_free(char ***list, size_t *n)
{
	size_t i;

	for (i = 0; i < *n; i++)
		free((*list)[i]);
	free(*list);
	*list = NULL;
	*n = 0;
}

static void
hub_list_set(struct json_object *a, int *all, char ***list, size_t *n)
{
	size_t i;

	hub_list_free(list, n);
	if (a == NULL) {
		*all = 1;
		return;
	}
	*all = 0;
	*n = json_object_array_length(a);
	*list = xcalloc(*n, sizeof **list);
	for (i = 0; i < *n; i++)
		(*list)[i] = xstrdup(
		    json_object_get_string(json_object_array_get_idx(a, i)));
}

/*
 * Replace c's subscription: "types" and "channels" each either absent (no
 * filter) or a list (an empty list matches nothing).
 */
int
hub_subscribe(struct client *c, const struct request *r, char *why, size_t len)
{
	hub_list_set(r->types, &c->all_types, &c->types, &c->ntypes);
	hub_list_set(
	    r->channels, &c->all_channels, &c->channels, &c->nchannels);
	return 0;
}
