/*
 * Fan-out.  An event from Slack is one buffer, serialised once by Slack
 * and checked once by the upstream thread; it goes to every client whose
 * subscription matches: appended to its output (small events) or shared by
 * reference and freed when the last client has written it (large ones).  Slow
 * readers are bounded like Redis' client-output-buffer-limit: a hard limit
 * (client_buffer_limit) and a soft one held for a time (client_buffer_soft for
 * client_buffer_soft_time); a client over either is dropped, so one
 * stuck reader can neither hold up the others nor grow the daemon.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <json-c/json.h>

#include "slackd.h"

#define HUB_SHARE_MIN 4096 /* events this big are shared, not copied */

static void
hub_release(const void *data, size_t len, void *arg)
{
	struct mailbox_msg *m = arg;

	if (--m->refs == 0)
		mailbox_msg_free(m);
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

/*
 * Append the event to c's output.  libevent gives every reference a chain
 * of its own of at least 1 KiB, so small events are cheaper copied into
 * the chains already there; large ones are shared by reference.
 */
static int
hub_add(struct client *c, struct mailbox_msg *m)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (m->len < HUB_SHARE_MIN)
		return evbuffer_add(out, m->data, m->len);
	m->refs++;
	if (evbuffer_add_reference(out, m->data, m->len, hub_release, m) != 0) {
		m->refs--;
		return -1;
	}
	return 0;
}

/*
 * May c take len more bytes?  Over client_buffer_limit it is dropped at
 * once; over client_buffer_soft for client_buffer_soft_time too.
 */
static int
hub_room(struct client *c, size_t len, int64_t now)
{
	const struct config *conf = slackd_conf;
	size_t out = client_output(c) + len, soft;

	/* A soft limit above the hard one is the hard one. */
	soft = conf->client_buffer_soft < conf->client_buffer_limit
	    ? conf->client_buffer_soft
	    : conf->client_buffer_limit;
	if (out > conf->client_buffer_limit) {
		client_drop(c,
		    "%zu bytes unread would pass client_buffer_limit "
		    "(%zu)",
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
		    "more than client_buffer_soft (%zu bytes) unread "
		    "for %.0f s",
		    soft, (double)conf->client_buffer_soft_time / 1000);
		return 0;
	}
	return 1;
}

/* Deliver one event (m->data is the line, "\n" included); takes m. */
void
hub_event(struct mailbox_msg *m)
{
	struct client *c;
	int64_t now = util_now_ms();

	status.events++;
	TAILQ_FOREACH(c, &clients, entry) {
		if ((c->flags & (CLIENT_DEAD | CLIENT_FLUSHING)) ||
		    !hub_match(c, m) || !hub_room(c, m->len, now))
			continue;
		if (hub_add(c, m) != 0) {
			client_kill(c, "cannot queue output");
			continue;
		}
		c->events++;
	}
	hub_release(NULL, 0, m);
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
