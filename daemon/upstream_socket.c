/*
 * Slack's Socket Mode, on sessions the connection manager (upstream.c)
 * makes: apps.connections.open with the app-level token gives a fresh
 * wss:// URL for every session, the first frame must be hello (with
 * num_connections, connection_info.app_id and debug_info), the keepalive
 * is a WebSocket PING, and nothing is sent but acks (messages go out with
 * chat.postMessage, on the main thread).  Since apps.connections.open does
 * not say who we are, the manager asks auth.test (bot token) once first.
 * The manager holds `connections`
 * sessions at once; Slack hands each envelope to one of them and retries
 * one that was not acknowledged, possibly on another.
 *
 * Envelopes:
 *   events_api      acked at once ({"envelope_id":…}), then payload.event
 *                   goes to the clients byte for byte (found by the one
 *                   pass that validates the frame, jscan_members(), never
 *                   re-serialised): the same event RTM would have sent.  A
 * payload without an event (app_rate_limited) goes out whole. slash_commands,
 * interactive forwarded as {"type":"slackd.slash_command"|
 *                   "slackd.interactive","envelope_id":…,
 *                   "accepts_response_payload":…,"payload":{…}}.  One that
 *                   accepts a response payload is acked when the main
 *                   thread says so (MAILBOX_ACK: a client's slackd.ack, or
 *                   none by ack_wait), on the session it came from if that
 *                   is still up, else on any live one; others at once.
 *
 * De-duplication: every envelope id and every payload.event_id seen in the
 * last SOCKET_DEDUP_MS (10 minutes, at most SOCKET_DEDUP_MAX of them) is
 * remembered (seen.c: no allocation per id); a repeat (a retry after a lost
 * ack, or a copy on a second connection) is acked again but not forwarded.
 *
 * disconnect: warning and refresh_requested retire the session (the
 * manager makes the replacement, then closes this one), as does any reason
 * Slack has not documented (logged); link_disabled (Socket Mode switched
 * off for the app) is fatal; too_many_websockets closes the session first,
 * then the manager reconnects with backoff.
 *
 * All of this runs on the upstream thread; the state below is its own.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "upstream.h"

#define SOCKET_MAX_DEPTH 64
#define SOCKET_DEDUP_MS  (10 * 60 * 1000)
#define SOCKET_DEDUP_MAX 200000 /* beyond Slack's 30,000 events an hour */

/* An envelope waiting for the main thread's word (MAILBOX_ACK). */
struct socket_pending {
	uint64_t session;
};

static struct seen *socket_seen;       /* "e:" envelope ids, "v:" event ids */
static struct map *socket_pending_map; /* envelope id -> socket_pending */

/* ---- the members of a frame --------------------------------------------- */

/*
 * What Socket Mode reads of a frame, found while jscan_members() validates
 * it: one pass over the envelope, whose picks are payload.event's.
 */
enum socket_member {
	SOCKET_ENVELOPE_ID,
	SOCKET_TYPE,
	SOCKET_PAYLOAD,
	SOCKET_ACCEPTS,
	SOCKET_REASON,
	SOCKET_EVENT,    /* payload.event */
	SOCKET_EVENT_ID, /* payload.event_id */
	SOCKET_MEMBERS
};
static const struct jscan_want socket_members[SOCKET_MEMBERS] = {
	[SOCKET_ENVELOPE_ID] = { "envelope_id", JSCAN_TOP, NULL, 0 },
	[SOCKET_TYPE] = { "type", JSCAN_TOP, NULL, 0 },
	[SOCKET_PAYLOAD] = { "payload", JSCAN_TOP, NULL, 0 },
	[SOCKET_ACCEPTS] = { "accepts_response_payload", JSCAN_TOP, NULL, 0 },
	[SOCKET_REASON] = { "reason", JSCAN_TOP, NULL, 0 },
	[SOCKET_EVENT] = { "event", SOCKET_PAYLOAD, NULL, 0 },
	[SOCKET_EVENT_ID] = { "event_id", SOCKET_PAYLOAD, NULL, 0 },
};

struct socket_frame {
	struct jscan_want m[SOCKET_MEMBERS];
	struct jscan ev;        /* payload.event's picks */
	char type[JSCAN_FIELD]; /* the frame's type, decoded; "" if none */
};

/*
 * A member's value as Slack sent it, into buf: a string's bytes between
 * its quotes (escapes as they are), another value's bytes.  0 if it is
 * there and fits (ids are short).
 */
static int
upstream_socket_field(const struct jscan_want *w, char *buf, size_t size)
{
	const char *v = w->at;
	size_t len = w->len;

	if (v == NULL)
		return -1;
	if (*v == '"') {
		v++;
		len -= 2;
	}
	if (len >= size)
		return -1;
	memcpy(buf, v, len);
	buf[len] = '\0';
	return 0;
}

/* The frame's type as jscan picks it: decoded, "" if not a string that fits. */
static void
upstream_socket_type(const struct jscan_want *w, char *type)
{
	struct jscan js;
	char *obj;
	int n;

	type[0] = '\0';
	if (w->at == NULL || *w->at != '"')
		return;
	if (memchr(w->at, '\\', w->len) == NULL) {
		if (upstream_socket_field(w, type, JSCAN_FIELD) != 0)
			type[0] = '\0';
		return;
	}
	n = xasprintf(&obj, "{\"type\":%.*s}", (int)w->len, w->at);
	if (jscan_object(obj, (size_t)n, 1, &js) == 0)
		memcpy(type, js.type, JSCAN_FIELD);
	free(obj);
}

/*
 * Prove buf[0..*len) one JSON object and find its members, compacting it
 * first if it has spaces (the event is forwarded as one line).  0 if so.
 */
static int
upstream_socket_scan(
    struct upstream_conn *conn, char *buf, size_t *len, struct socket_frame *f)
{
	memcpy(f->m, socket_members, sizeof f->m);
	if (jscan_members(buf, *len, SOCKET_MAX_DEPTH, f->m, SOCKET_MEMBERS,
	        SOCKET_EVENT, &f->ev) != 0) {
		upstream_dropped(conn,
		    "dropped a frame that is not a JSON object (%s at byte %zu of %zu)",
		    f->ev.error, f->ev.error_at, *len);
		return -1;
	}
	if (f->ev.spaces) {
		*len = jscan_compact(buf, *len);
		buf[*len] = '\0';
		if (jscan_members(buf, *len, SOCKET_MAX_DEPTH, f->m,
		        SOCKET_MEMBERS, SOCKET_EVENT, &f->ev) != 0) {
			upstream_dropped(conn,
			    "dropped a frame that is not a JSON object once compacted");
			return -1;
		}
	}
	upstream_socket_type(&f->m[SOCKET_TYPE], f->type);
	return 0;
}

/* ---- de-duplication ------------------------------------------------------ */

/* Seen before (in the window)?  Either way it is remembered now. */
static int
upstream_socket_seen(char prefix, const char *id, int64_t now)
{
	char key[2 + JSCAN_FIELD];
	size_t len = strlen(id);

	if (socket_seen == NULL)
		socket_seen = seen_new(SOCKET_DEDUP_MAX, SOCKET_DEDUP_MS);
	key[0] = prefix;
	key[1] = ':';
	memcpy(key + 2, id, len);
	return seen_check(socket_seen, key, len + 2, now);
}

static void
upstream_socket_pending_free(void *p)
{
	free(p);
}

static void
upstream_socket_done(void)
{
	seen_free(socket_seen);
	socket_seen = NULL;
	map_free(socket_pending_map, upstream_socket_pending_free);
	socket_pending_map = NULL;
}

/* ---- acks ---------------------------------------------------------------- */

/* {"envelope_id":"…"} plus "payload" when given, on conn. */
static void
upstream_socket_ack(struct upstream_conn *conn, const char *id,
    const char *payload, size_t plen)
{
	static const char pre[] = "{\"envelope_id\":\"";
	char plain[sizeof pre + JSCAN_FIELD + 2], *frame;
	size_t idlen = strlen(id);
	int n;

	if ((payload == NULL || plen == 0) && idlen < JSCAN_FIELD) {
		/* The common case: no allocation. */
		memcpy(plain, pre, sizeof pre - 1);
		memcpy(plain + sizeof pre - 1, id, idlen);
		memcpy(plain + sizeof pre - 1 + idlen, "\"}", 2);
		upstream_conn_write(conn, plain, sizeof pre - 1 + idlen + 2);
		return;
	}
	if (payload != NULL && plen > 0)
		n = xasprintf(&frame,
		    "{\"envelope_id\":\"%s\",\"payload\":%.*s}", id, (int)plen,
		    payload);
	else
		n = xasprintf(&frame, "{\"envelope_id\":\"%s\"}", id);
	if (upstream_conn_write(conn, frame, (size_t)n) != 0 &&
	    payload != NULL && plen > 0) {
		log_warnx(
		    "upstream: the response payload for envelope %s does not fit in a frame; acknowledged without it",
		    id);
		upstream_socket_ack(conn, id, NULL, 0);
	}
	free(frame);
}

/* The main thread's word on an envelope: ack it now. */
static void
upstream_socket_main_ack(struct upstream *up, struct mailbox_msg *m)
{
	struct socket_pending *p;
	struct upstream_conn *conn;

	if (socket_pending_map == NULL ||
	    (p = map_del(socket_pending_map, m->u.ack.envelope_id)) == NULL) {
		mailbox_msg_free(m);
		return;
	}
	conn = upstream_conn_live(up, p->session);
	free(p);
	if (conn != NULL)
		upstream_socket_ack(
		    conn, m->u.ack.envelope_id, m->data, m->len);
	else
		log_info(
		    "upstream: no live Socket Mode connection to acknowledge envelope %s on; Slack will send it again",
		    m->u.ack.envelope_id);
	mailbox_msg_free(m);
}

/* ---- frames -------------------------------------------------------------- */

static void
upstream_socket_hello(struct upstream_conn *conn, char *buf, size_t len)
{
	struct json_object *o, *v, *info;

	if ((o = json_tokener_parse(buf)) != NULL) {
		if (json_object_object_get_ex(o, "debug_info", &info)) {
			if (json_object_object_get_ex(info, "host", &v) &&
			    json_object_is_type(v, json_type_string))
				snprintf(conn->host, sizeof conn->host, "%s",
				    json_object_get_string(v));
			if (json_object_object_get_ex(
			        info, "approximate_connection_time", &v))
				conn->lifetime = json_object_get_int64(v);
		}
		if (json_object_object_get_ex(o, "connection_info", &info) &&
		    json_object_object_get_ex(info, "app_id", &v) &&
		    json_object_is_type(v, json_type_string))
			snprintf(conn->app_id, sizeof conn->app_id, "%s",
			    json_object_get_string(v));
		if (json_object_object_get_ex(o, "num_connections", &v))
			log_debug(
			    "upstream: Socket Mode hello on %s: %d connections open",
			    conn->host[0] != '\0' ? conn->host : "?",
			    json_object_get_int(v));
		json_object_put(o);
	}
	upstream_live(conn);
	(void)len;
}

static void
upstream_socket_disconnect(
    struct upstream_conn *conn, const struct socket_frame *f)
{
	char reason[JSCAN_FIELD];

	if (upstream_socket_field(
	        &f->m[SOCKET_REASON], reason, sizeof reason) != 0)
		snprintf(reason, sizeof reason, "(none)");
	if (strcmp(reason, "link_disabled") == 0) {
		log_warnx(
		    "upstream: Slack says Socket Mode is switched off for this app (disconnect: link_disabled)");
		upstream_fatal(conn->up, "link_disabled");
		return;
	}
	if (strcmp(reason, "too_many_websockets") == 0) {
		upstream_conn_lost(conn, 1,
		    "Slack refused the connection: too many WebSocket connections for this app (too_many_websockets)");
		return;
	}
	if (strcmp(reason, "warning") != 0 &&
	    strcmp(reason, "refresh_requested") != 0)
		log_warnx(
		    "upstream: Slack sent disconnect with an undocumented reason \"%s\"; treating it as a refresh",
		    reason);
	upstream_conn_retire(
	    conn, "Slack asked for a new connection (%s)", reason);
}

/*
 * Forward the event of an events_api envelope (its picks are f->ev), or
 * the whole payload if it has none.
 */
static void
upstream_socket_event(struct upstream_conn *conn, const struct socket_frame *f)
{
	const struct jscan_want *ev = &f->m[SOCKET_EVENT];
	const struct jscan_want *pl = &f->m[SOCKET_PAYLOAD];
	const struct jscan *js = &f->ev;
	struct jscan whole;

	if (ev->at == NULL || *ev->at != '{') {
		/* app_rate_limited and the like */
		if (jscan_object(pl->at, pl->len, SOCKET_MAX_DEPTH, &whole) !=
		    0) {
			upstream_dropped(
			    conn, "dropped an event that is not a JSON object");
			return;
		}
		js = &whole;
		ev = pl;
	}
	if (strcmp(js->type, "app_rate_limited") == 0) {
		log_warnx(
		    "upstream: Slack says the app is over its event rate limit (app_rate_limited)");
		upstream_rate_limited(conn->up);
	}
	upstream_event(conn, js, ev->at, ev->len);
}

/* A slash command or an interactive payload, for the clients. */
static void
upstream_socket_request(struct upstream_conn *conn, const char *kind,
    const char *id, const char *payload, size_t plen, int accepts)
{
	struct socket_pending *p;
	struct mailbox_msg *m;
	struct jscan js;
	char *frame;
	int n;

	if (accepts) {
		if (socket_pending_map == NULL)
			socket_pending_map = map_new();
		p = xcalloc(1, sizeof *p);
		p->session = conn->session;
		free(map_put(socket_pending_map, id, p));
		m = mailbox_msg_new(MAILBOX_ENVELOPE);
		snprintf(m->u.ack.envelope_id, sizeof m->u.ack.envelope_id,
		    "%s", id);
		upstream_tell(conn->up, m);
	} else
		upstream_socket_ack(conn, id, NULL, 0);
	n = xasprintf(&frame,
	    "{\"type\":\"%s\",\"envelope_id\":\"%s\",\"accepts_response_payload\":%s,\"payload\":%.*s}",
	    kind, id, accepts ? "true" : "false", (int)plen, payload);
	if (jscan_object(frame, (size_t)n, SOCKET_MAX_DEPTH, &js) == 0)
		upstream_event(conn, &js, frame, (size_t)n);
	free(frame);
}

static void
upstream_socket_envelope(
    struct upstream_conn *conn, const struct socket_frame *f)
{
	const struct jscan_want *pl = &f->m[SOCKET_PAYLOAD];
	const struct jscan_want *acc = &f->m[SOCKET_ACCEPTS];
	char id[JSCAN_FIELD], event_id[JSCAN_FIELD];
	int accepts = 0, dup;
	int64_t now;

	if (upstream_socket_field(&f->m[SOCKET_ENVELOPE_ID], id, sizeof id) !=
	        0 ||
	    strchr(id, '\\') != NULL) {
		upstream_dropped(
		    conn, "dropped an envelope without a usable envelope_id");
		return;
	}
	if (pl->at == NULL || *pl->at != '{') {
		upstream_socket_ack(conn, id, NULL, 0);
		upstream_dropped(conn,
		    "dropped an envelope without a payload (%s)", f->type);
		return;
	}
	if (acc->at != NULL && acc->len == 4 && memcmp(acc->at, "true", 4) == 0)
		accepts = 1;
	now = util_now_ms();
	dup = upstream_socket_seen('e', id, now);
	if (strcmp(f->type, "events_api") == 0) {
		upstream_socket_ack(conn, id, NULL, 0);
		if (upstream_socket_field(&f->m[SOCKET_EVENT_ID], event_id,
		        sizeof event_id) == 0 &&
		    upstream_socket_seen('v', event_id, now))
			dup = 1;
		if (!dup)
			upstream_socket_event(conn, f);
		return;
	}
	if (strcmp(f->type, "slash_commands") == 0 ||
	    strcmp(f->type, "interactive") == 0) {
		if (dup) { /* a retry: acked when its first copy is */
			if (socket_pending_map == NULL ||
			    map_get(socket_pending_map, id) == NULL)
				upstream_socket_ack(conn, id, NULL, 0);
			return;
		}
		upstream_socket_request(conn,
		    f->type[0] == 's' ? PROTOCOL_SLASH_COMMAND
		                      : PROTOCOL_INTERACTIVE,
		    id, pl->at, pl->len, accepts);
		return;
	}
	upstream_socket_ack(conn, id, NULL, 0);
	if (!dup)
		log_info(
		    "upstream: acknowledged an envelope of unknown type \"%s\"; not forwarded",
		    f->type);
}

static void
upstream_socket_frame(struct upstream_conn *conn, char *buf, size_t len)
{
	struct socket_frame f;

	if (upstream_socket_scan(conn, buf, &len, &f) != 0)
		return;
	if (conn->phase == UPSTREAM_CONN_HELLO) {
		if (strcmp(f.type, "hello") == 0)
			upstream_socket_hello(conn, buf, len);
		else
			upstream_conn_lost(conn, 1,
			    "first frame from Slack was \"%.40s\", not hello",
			    f.type);
		return;
	}
	if (strcmp(f.type, "disconnect") == 0) {
		upstream_socket_disconnect(conn, &f);
		return;
	}
	if (f.m[SOCKET_ENVELOPE_ID].at != NULL) {
		upstream_socket_envelope(conn, &f);
		return;
	}
	if (strcmp(f.type, "hello") == 0)
		return;
	upstream_dropped(
	    conn, "ignored a frame of type \"%.40s\" from Slack", f.type);
}

/* The keepalive is a WebSocket PING. */
static size_t
upstream_socket_ping(struct upstream_conn *conn, char *buf, size_t room)
{
	(void)conn;
	(void)buf;
	(void)room;
	return 0;
}

const struct upstream_proto upstream_socket = {
	.name = "socket",
	.connect_method = "apps.connections.open",
	.app_token = 1,
	.identify = 1,
	.connections = 1,
	.no_overlap = 1,
	.frame = upstream_socket_frame,
	.ping = upstream_socket_ping,
	.ack = upstream_socket_main_ack,
	.done = upstream_socket_done,
};
