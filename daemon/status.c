/*
 * What the main thread knows about the upstream connection, kept from the
 * upstream thread's state messages, and the JSON built from it: the
 * slackd.hello a client gets first, slackd.state on changes, and the
 * slackd.status reply.  All say which upstream runs ("rtm" or "socket");
 * under Socket Mode hello and status add the app id and the connections
 * (status lists each: state, connected since, host, approximate lifetime)
 * and status counts Slack's app_rate_limited events.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "slackd.h"

struct status status_now;
static int status_ever_connected;

void
status_init(void)
{
	int socket_mode = status_now.socket_mode;

	memset(&status_now, 0, sizeof status_now);
	status_now.socket_mode = socket_mode;
	status_ever_connected = 0;
	status_now.state = UPSTREAM_CONNECTING;
	status_now.started = util_wall();
}

void
status_free(void)
{
	free(status_now.reason);
	free(status_now.team);
	free(status_now.self);
	free(status_now.team_name);
	free(status_now.self_name);
	free(status_now.team_id);
	free(status_now.last_dropped);
	free(status_now.conns);
	memset(&status_now, 0, sizeof status_now);
}

static char *
status_name(struct json_object *o, const char *fallback)
{
	struct json_object *v;

	if (o != NULL && json_object_object_get_ex(o, "name", &v) &&
	    json_object_is_type(v, json_type_string))
		return xstrdup(json_object_get_string(v));
	if (o != NULL && json_object_object_get_ex(o, "id", &v) &&
	    json_object_is_type(v, json_type_string))
		return xstrdup(json_object_get_string(v));
	return xstrdup(fallback);
}

static void
status_connected(const char *data)
{
	struct json_object *o, *team = NULL, *self = NULL, *id;

	free(status_now.team);
	free(status_now.self);
	free(status_now.team_name);
	free(status_now.self_name);
	status_now.team = status_now.self = NULL;
	if ((o = json_tokener_parse(data)) != NULL) {
		if (json_object_object_get_ex(o, "team", &team))
			status_now.team =
			    xstrdup(json_object_to_json_string_ext(
			        team, JSON_C_TO_STRING_PLAIN));
		if (json_object_object_get_ex(o, "self", &self))
			status_now.self =
			    xstrdup(json_object_to_json_string_ext(
			        self, JSON_C_TO_STRING_PLAIN));
	}
	free(status_now.team_id);
	status_now.team_id =
	    team != NULL && json_object_object_get_ex(team, "id", &id)
	    ? xstrdup(json_object_get_string(id))
	    : NULL;
	status_now.team_name = status_name(team, "(unknown team)");
	status_now.self_name = status_name(self, "(unknown user)");
	json_object_put(o);
	if (status_ever_connected)
		status_now.reconnects++;
	status_ever_connected = 1;
	status_now.connected_since = util_wall();
}

/* A MAILBOX_STATE, PONG, DROPPED or CONNS from upstream. */
void
status_update(struct mailbox_msg *m)
{
	const struct mailbox_state *st = &m->u.state;

	if (m->type == MAILBOX_PONG) {
		status_now.rtt_us = m->u.pong.rtt_us;
		return;
	}
	if (m->type == MAILBOX_CONNS) {
		free(status_now.conns);
		status_now.conns = xstrdup(m->data);
		return;
	}
	if (m->type == MAILBOX_DROPPED) {
		status_now.events_dropped++;
		free(status_now.last_dropped);
		status_now.last_dropped =
		    xstrdup(m->u.dropped.why != NULL ? m->u.dropped.why : "?");
		status_now.last_dropped_at = util_wall();
		return;
	}
	status_now.state = st->state;
	status_now.session = st->session;
	free(status_now.reason);
	status_now.reason = st->reason != NULL ? xstrdup(st->reason) : NULL;
	status_now.retry_at = st->state == UPSTREAM_RECONNECTING
	    ? util_now_ms() + st->retry_in
	    : 0;
	if (st->state == UPSTREAM_CONNECTED && m->data != NULL)
		status_connected(m->data);
}

static struct json_object *
status_raw(const char *json)
{
	if (json == NULL)
		return NULL;
	return json_tokener_parse(json);
}

/* The protocol's word for an upstream state. */
static const char *
status_word(enum upstream_state s)
{
	switch (s) {
	case UPSTREAM_CONNECTING:
		return PROTOCOL_STATE_CONNECTING;
	case UPSTREAM_CONNECTED:
		return PROTOCOL_STATE_CONNECTED;
	case UPSTREAM_RECONNECTING:
		return PROTOCOL_STATE_RECONNECTING;
	case UPSTREAM_FAILED:
		return PROTOCOL_STATE_FAILED;
	case UPSTREAM_STOPPING:
		return PROTOCOL_STATE_STOPPING;
	}
	return "unknown";
}

/* Connected but still loading the names is "loading" to clients. */
static const char *
status_state_name(void)
{
	if (nats_standby())
		return PROTOCOL_STATE_STANDBY;
	if (status_now.state == UPSTREAM_CONNECTED && status_now.loading)
		return PROTOCOL_STATE_LOADING;
	return status_word(status_now.state);
}

static void
status_add_count(struct json_object *o, const char *key, uint64_t n)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)n));
}

static void
status_common(struct json_object *o)
{
	int64_t in;

	json_object_object_add(
	    o, "state", json_object_new_string(status_state_name()));
	if (status_now.reason != NULL)
		json_object_object_add(
		    o, "reason", json_object_new_string(status_now.reason));
	if (status_now.state == UPSTREAM_RECONNECTING) {
		in = status_now.retry_at - util_now_ms();
		json_object_object_add(o, "retry_in",
		    json_object_new_double(in > 0 ? (double)in / 1000 : 0));
	}
	if (nats_leader() != NULL || nats_standby())
		json_object_object_add(o, "leader",
		    nats_leader() != NULL
		        ? json_object_new_string(nats_leader())
		        : NULL);
	json_object_object_add(o, "team", status_raw(status_now.team));
	json_object_object_add(o, "self", status_raw(status_now.self));
	json_object_object_add(o, "upstream",
	    json_object_new_string(status_now.socket_mode ? "socket" : "rtm"));
}

/* Socket Mode: the app id and the connections (all: 1; else how many). */
static void
status_socket(struct json_object *o, int all)
{
	struct json_object *c, *v;

	if (!status_now.socket_mode || status_now.conns == NULL ||
	    (c = json_tokener_parse(status_now.conns)) == NULL)
		return;
	if (all && json_object_object_get_ex(c, "app_rate_limited", &v))
		status_now.app_rate_limited =
		    (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(c, "app_id", &v))
		json_object_object_add(o, "app_id", json_object_get(v));
	if (json_object_object_get_ex(c, "connections", &v))
		json_object_object_add(o, "connections",
		    all ? json_object_get(v)
		        : json_object_new_int(
		              (int)json_object_array_length(v)));
	json_object_put(c);
}

struct json_object *
status_hello(void)
{
	char cur[REPLAY_CURSOR_MAX];
	struct json_object *o;

	o = json_object_new_object();
	json_object_object_add(
	    o, "type", json_object_new_string(PROTOCOL_HELLO));
	json_object_object_add(
	    o, "protocol", json_object_new_int(SLACKD_PROTOCOL));
	json_object_object_add(
	    o, "version", json_object_new_string(PACKAGE_VERSION));
	status_common(o);
	/* The cursor of the newest event: subscribe "since" it to resume. */
	json_object_object_add(
	    o, "seq", json_object_new_string(hub_cursor(cur)));
	status_socket(o, 0);
	return o;
}

struct json_object *
status_state(void)
{
	struct json_object *o;

	o = json_object_new_object();
	json_object_object_add(
	    o, "type", json_object_new_string(PROTOCOL_STATE));
	status_common(o);
	status_add_count(o, "session", status_now.session);
	return o;
}

/* "seq": the newest event's cursor; "replay": what the ring holds. */
static void
status_replay(struct json_object *o)
{
	char cur[REPLAY_CURSOR_MAX];
	struct json_object *r;
	uint64_t oldest = replay_oldest(hub_replay());

	json_object_object_add(
	    o, "seq", json_object_new_string(hub_cursor(cur)));
	r = json_object_new_object();
	status_add_count(r, "events", replay_count(hub_replay()));
	status_add_count(r, "bytes", replay_bytes(hub_replay()));
	json_object_object_add(r, "oldest",
	    oldest != 0 && hub_label(cur, oldest) != NULL
	        ? json_object_new_string(cur)
	        : NULL);
	json_object_object_add(o, "replay", r);
}

struct json_object *
status_full(void)
{
	struct json_object *o, *d;
	struct client_stats cs;
	struct outbox_stats os;

	client_stats(&cs);
	outbox_stats(&os);
	o = json_object_new_object();
	json_object_object_add(
	    o, "version", json_object_new_string(PACKAGE_VERSION));
	json_object_object_add(
	    o, "protocol", json_object_new_int(SLACKD_PROTOCOL));
	json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(
	    o, "started", json_object_new_double(status_now.started));
	status_common(o);
	status_add_count(o, "session", status_now.session);
	json_object_object_add(o, "connected_since",
	    status_now.state == UPSTREAM_CONNECTED
	        ? json_object_new_double(status_now.connected_since)
	        : NULL);
	status_add_count(o, "reconnects", status_now.reconnects);
	json_object_object_add(o, "last_pong_rtt_ms",
	    status_now.rtt_us > 0
	        ? json_object_new_double((double)status_now.rtt_us / 1000)
	        : NULL);
	status_add_count(o, "clients", client_count());
	status_add_count(o, "clients_total", cs.total);
	status_add_count(o, "clients_dropped", cs.dropped);
	status_add_count(o, "clients_refused", cs.refused);
	status_add_count(o, "queued", os.queued);
	status_add_count(o, "in_flight", os.inflight);
	status_add_count(o, "events_received", hub_received());
	status_replay(o);
	status_add_count(o, "events_dropped", status_now.events_dropped);
	if (status_now.last_dropped != NULL) {
		d = json_object_new_object();
		json_object_object_add(d, "at",
		    json_object_new_double(status_now.last_dropped_at));
		json_object_object_add(
		    d, "why", json_object_new_string(status_now.last_dropped));
		json_object_object_add(o, "last_dropped", d);
	}
	status_add_count(o, "messages_sent", os.sent);
	status_add_count(o, "messages_failed", os.failed);
	status_socket(o, 1);
	if (status_now.socket_mode)
		status_add_count(
		    o, "app_rate_limited", status_now.app_rate_limited);
	if ((d = nats_status()) != NULL)
		json_object_object_add(o, "nats", d);
	return o;
}
