/*
 * What the main thread knows about the upstream connection, kept from the
 * upstream thread's state messages, and the JSON built from it: the
 * slackd.hello a client gets first, slackd.state on changes, and the
 * slackd.status reply.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "slackd.h"

struct status status;
static int status_ever_connected;

void
status_init(void)
{
	memset(&status, 0, sizeof status);
	status_ever_connected = 0;
	status.state = UPSTREAM_CONNECTING;
	status.started = util_wall();
}

void
status_free(void)
{
	free(status.reason);
	free(status.team);
	free(status.self);
	free(status.team_name);
	free(status.self_name);
	free(status.team_id);
	free(status.last_dropped);
	memset(&status, 0, sizeof status);
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

	free(status.team);
	free(status.self);
	free(status.team_name);
	free(status.self_name);
	status.team = status.self = NULL;
	if ((o = json_tokener_parse(data)) != NULL) {
		if (json_object_object_get_ex(o, "team", &team))
			status.team = xstrdup(json_object_to_json_string_ext(
			    team, JSON_C_TO_STRING_PLAIN));
		if (json_object_object_get_ex(o, "self", &self))
			status.self = xstrdup(json_object_to_json_string_ext(
			    self, JSON_C_TO_STRING_PLAIN));
	}
	free(status.team_id);
	status.team_id =
	    team != NULL && json_object_object_get_ex(team, "id", &id)
	    ? xstrdup(json_object_get_string(id))
	    : NULL;
	status.team_name = status_name(team, "(unknown team)");
	status.self_name = status_name(self, "(unknown user)");
	json_object_put(o);
	if (status_ever_connected)
		status.reconnects++;
	status_ever_connected = 1;
	status.connected_since = util_wall();
	status.connected_mono = util_now_ms();
}

/* A MAILBOX_STATE, MAILBOX_PONG or MAILBOX_DROPPED from upstream. */
void
status_update(struct mailbox_msg *m)
{
	if (m->type == MAILBOX_PONG) {
		status.rtt_us = m->id;
		return;
	}
	if (m->type == MAILBOX_DROPPED) {
		status.events_dropped++;
		free(status.last_dropped);
		status.last_dropped = xstrdup(m->text != NULL ? m->text : "?");
		status.last_dropped_at = util_wall();
		return;
	}
	status.state = m->state;
	status.session = m->session;
	free(status.reason);
	status.reason = m->text != NULL ? xstrdup(m->text) : NULL;
	status.retry_at =
	    m->state == UPSTREAM_RECONNECTING ? util_now_ms() + m->retry_in : 0;
	if (m->state == UPSTREAM_CONNECTED && m->data != NULL)
		status_connected(m->data);
	else if (m->state != UPSTREAM_CONNECTED)
		status.connected_mono = 0;
}

static struct json_object *
status_raw(const char *json)
{
	if (json == NULL)
		return NULL;
	return json_tokener_parse(json);
}

/* Connected but still loading the names is "loading" to clients. */
static const char *
status_state_name(void)
{
	if (status.state == UPSTREAM_CONNECTED && status.loading)
		return PROTOCOL_STATE_LOADING;
	return upstream_state_name(status.state);
}

static void
status_common(struct json_object *o)
{
	int64_t in;

	json_object_object_add(
	    o, "state", json_object_new_string(status_state_name()));
	if (status.reason != NULL)
		json_object_object_add(
		    o, "reason", json_object_new_string(status.reason));
	if (status.state == UPSTREAM_RECONNECTING) {
		in = status.retry_at - util_now_ms();
		json_object_object_add(o, "retry_in",
		    json_object_new_double(in > 0 ? (double)in / 1000 : 0));
	}
	json_object_object_add(o, "team", status_raw(status.team));
	json_object_object_add(o, "self", status_raw(status.self));
}

struct json_object *
status_hello(void)
{
	struct json_object *o;

	o = json_object_new_object();
	json_object_object_add(
	    o, "type", json_object_new_string(PROTOCOL_HELLO));
	json_object_object_add(
	    o, "protocol", json_object_new_int(SLACKD_PROTOCOL));
	json_object_object_add(
	    o, "version", json_object_new_string(PACKAGE_VERSION));
	status_common(o);
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
	json_object_object_add(
	    o, "session", json_object_new_int64((int64_t)status.session));
	return o;
}

struct json_object *
status_full(void)
{
	struct json_object *o, *d;

	o = json_object_new_object();
	json_object_object_add(
	    o, "version", json_object_new_string(PACKAGE_VERSION));
	json_object_object_add(
	    o, "protocol", json_object_new_int(SLACKD_PROTOCOL));
	json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(
	    o, "started", json_object_new_double(status.started));
	status_common(o);
	json_object_object_add(
	    o, "session", json_object_new_int64((int64_t)status.session));
	json_object_object_add(o, "connected_since",
	    status.state == UPSTREAM_CONNECTED
	        ? json_object_new_double(status.connected_since)
	        : NULL);
	json_object_object_add(
	    o, "reconnects", json_object_new_int64((int64_t)status.reconnects));
	json_object_object_add(o, "last_pong_rtt_ms",
	    status.rtt_us > 0
	        ? json_object_new_double((double)status.rtt_us / 1000)
	        : NULL);
	json_object_object_add(
	    o, "clients", json_object_new_int64(client_count()));
	json_object_object_add(o, "clients_total",
	    json_object_new_int64((int64_t)status.clients_total));
	json_object_object_add(o, "clients_dropped",
	    json_object_new_int64((int64_t)status.clients_dropped));
	json_object_object_add(o, "clients_refused",
	    json_object_new_int64((int64_t)status.clients_refused));
	json_object_object_add(
	    o, "queued", json_object_new_int64(outbox_queued()));
	json_object_object_add(
	    o, "in_flight", json_object_new_int64(outbox_inflight()));
	json_object_object_add(o, "events_received",
	    json_object_new_int64((int64_t)status.events));
	json_object_object_add(o, "events_dropped",
	    json_object_new_int64((int64_t)status.events_dropped));
	if (status.last_dropped != NULL) {
		d = json_object_new_object();
		json_object_object_add(
		    d, "at", json_object_new_double(status.last_dropped_at));
		json_object_object_add(
		    d, "why", json_object_new_string(status.last_dropped));
		json_object_object_add(o, "last_dropped", d);
	}
	json_object_object_add(
	    o, "messages_sent", json_object_new_int64((int64_t)status.sent));
	json_object_object_add(o, "messages_failed",
	    json_object_new_int64((int64_t)status.failed));
	return o;
}
