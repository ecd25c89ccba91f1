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
 *                   goes to the clients byte for byte (found by a scan of
 *                   the frame, never re-serialised): the same event RTM
 *                   would have sent.  A payload without an event
 *                   (app_rate_limited) goes out whole.
 *   slash_commands, interactive
 *                   forwarded as {"type":"slackd.slash_command"|
 *                   "slackd.interactive","envelope_id":…,
 *                   "accepts_response_payload":…,"payload":{…}}.  One that
 *                   accepts a response payload is acked when the main
 *                   thread says so (MAILBOX_ACK: a client's slackd.ack, or
 *                   none by ack_wait), on the session it came from if that
 *                   is still up, else on any live one; others at once.
 *
 * De-duplication: every envelope id and every payload.event_id seen in the
 * last SOCKET_DEDUP_MS (10 minutes, at most SOCKET_DEDUP_MAX of them) is
 * remembered; a repeat (a retry after a lost ack, or a copy on a second
 * connection) is acked again but not forwarded.
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

/* An id seen, in order of arrival. */
struct socket_seen {
	TAILQ_ENTRY(socket_seen) entry;
	int64_t at;
	char key[]; /* "e:" envelope id, "v:" event id */
};
TAILQ_HEAD(socket_seen_list, socket_seen);

/* An envelope waiting for the main thread's word (MAILBOX_ACK). */
struct socket_pending {
	uint64_t session;
};

static struct map *socket_seen_map;
static struct socket_seen_list socket_seen_fifo =
    TAILQ_HEAD_INITIALIZER(socket_seen_fifo);
static size_t socket_nseen;
static struct map *socket_pending_map; /* envelope id -> socket_pending */

/* ---- scanning a frame already proven well-formed (jscan) ----------------- */

static const char *
upstream_socket_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Past the string starting at p (at its opening quote). */
static const char *
upstream_socket_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return end;
}

/* Past the value starting at p. */
static const char *
upstream_socket_skip(const char *p, const char *end)
{
	int depth = 0;

	if (p >= end)
		return end;
	if (*p == '"')
		return upstream_socket_string(p, end);
	if (*p != '{' && *p != '[') {
		while (p < end && *p != ',' && *p != '}' && *p != ']' &&
		    *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
			p++;
		return p;
	}
	for (; p < end; p++) {
		if (*p == '"') {
			p = upstream_socket_string(p, end) - 1;
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if ((*p == '}' || *p == ']') && --depth == 0)
			return p + 1;
	}
	return end;
}

/*
 * The value of member key of the object at obj[0..len): its bytes in
 * *v[0..*vlen) (a string's without the quotes).  0 if found.
 */
static int
upstream_socket_member(
    const char *obj, size_t len, const char *key, const char **v, size_t *vlen)
{
	const char *p = obj, *end = obj + len, *k, *val;
	size_t klen = strlen(key);

	p = upstream_socket_ws(p, end);
	if (p >= end || *p != '{')
		return -1;
	p++;
	for (;;) {
		p = upstream_socket_ws(p, end);
		if (p >= end || *p != '"')
			return -1;
		k = p + 1;
		p = upstream_socket_string(p, end);
		if ((size_t)(p - 1 - k) == klen && memcmp(k, key, klen) == 0) {
			p = upstream_socket_ws(p, end);
			p = upstream_socket_ws(p + 1, end); /* the colon */
			val = p;
			p = upstream_socket_skip(p, end);
			if (*val == '"') {
				*v = val + 1;
				*vlen = (size_t)(p - val - 2);
			} else {
				*v = val;
				*vlen = (size_t)(p - val);
			}
			return 0;
		}
		p = upstream_socket_ws(p, end);
		p = upstream_socket_ws(p + 1, end);
		p = upstream_socket_skip(p, end);
		p = upstream_socket_ws(p, end);
		if (p >= end || *p != ',')
			return -1;
		p++;
	}
}

/* A short string member into buf (truncated: ids are short); 0 if found. */
static int
upstream_socket_field(
    const char *obj, size_t len, const char *key, char *buf, size_t size)
{
	const char *v;
	size_t vlen;

	if (upstream_socket_member(obj, len, key, &v, &vlen) != 0 ||
	    vlen >= size)
		return -1;
	memcpy(buf, v, vlen);
	buf[vlen] = '\0';
	return 0;
}

/* ---- de-duplication ------------------------------------------------------ */

static void
upstream_socket_expire(int64_t now)
{
	struct socket_seen *s;

	while ((s = TAILQ_FIRST(&socket_seen_fifo)) != NULL &&
	    (now - s->at > SOCKET_DEDUP_MS ||
	        socket_nseen > SOCKET_DEDUP_MAX)) {
		TAILQ_REMOVE(&socket_seen_fifo, s, entry);
		map_del(socket_seen_map, s->key);
		socket_nseen--;
		free(s);
	}
}

/* Seen before (in the window)?  Either way it is remembered now. */
static int
upstream_socket_seen(char prefix, const char *id)
{
	struct socket_seen *s;
	size_t len = strlen(id);
	int64_t now = util_now_ms();

	if (socket_seen_map == NULL)
		socket_seen_map = map_new();
	upstream_socket_expire(now);
	s = xmalloc(sizeof *s + len + 3);
	s->key[0] = prefix;
	s->key[1] = ':';
	memcpy(s->key + 2, id, len + 1);
	if (map_get(socket_seen_map, s->key) != NULL) {
		free(s);
		return 1;
	}
	s->at = now;
	map_put(socket_seen_map, s->key, s);
	TAILQ_INSERT_TAIL(&socket_seen_fifo, s, entry);
	socket_nseen++;
	return 0;
}

static void
upstream_socket_pending_free(void *p)
{
	free(p);
}

static void
upstream_socket_done(void)
{
	struct socket_seen *s;

	while ((s = TAILQ_FIRST(&socket_seen_fifo)) != NULL) {
		TAILQ_REMOVE(&socket_seen_fifo, s, entry);
		free(s);
	}
	socket_nseen = 0;
	map_free(socket_seen_map, NULL);
	socket_seen_map = NULL;
	map_free(socket_pending_map, upstream_socket_pending_free);
	socket_pending_map = NULL;
}

/* ---- acks ---------------------------------------------------------------- */

/* {"envelope_id":"…"} plus "payload" when given, on conn. */
static void
upstream_socket_ack(struct upstream_conn *conn, const char *id,
    const char *payload, size_t plen)
{
	char *frame;
	int n;

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
upstream_socket_disconnect(struct upstream_conn *conn, char *buf, size_t len)
{
	char reason[JSCAN_FIELD];

	if (upstream_socket_field(buf, len, "reason", reason, sizeof reason) !=
	    0)
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

/* Forward the event (or the whole payload) of an events_api envelope. */
static void
upstream_socket_event(
    struct upstream_conn *conn, const char *payload, size_t plen)
{
	const char *ev;
	size_t evlen;
	struct jscan js;

	if (upstream_socket_member(payload, plen, "event", &ev, &evlen) != 0 ||
	    *ev != '{') {
		ev = payload; /* app_rate_limited and the like */
		evlen = plen;
	}
	if (jscan_object(ev, evlen, SOCKET_MAX_DEPTH, &js) != 0) {
		upstream_dropped(
		    conn, "dropped an event that is not a JSON object");
		return;
	}
	if (strcmp(js.type, "app_rate_limited") == 0) {
		log_warnx(
		    "upstream: Slack says the app is over its event rate limit (app_rate_limited)");
		upstream_rate_limited(conn->up);
	}
	upstream_event(conn, &js, ev, evlen);
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
upstream_socket_envelope(struct upstream_conn *conn, const char *buf,
    size_t len, const struct jscan *top)
{
	char id[JSCAN_FIELD], event_id[JSCAN_FIELD];
	const char *payload, *v;
	size_t plen, vlen;
	int accepts = 0, dup;

	if (upstream_socket_field(buf, len, "envelope_id", id, sizeof id) !=
	        0 ||
	    strchr(id, '\\') != NULL) {
		upstream_dropped(
		    conn, "dropped an envelope without a usable envelope_id");
		return;
	}
	if (upstream_socket_member(buf, len, "payload", &payload, &plen) != 0 ||
	    *payload != '{') {
		upstream_socket_ack(conn, id, NULL, 0);
		upstream_dropped(conn,
		    "dropped an envelope without a payload (%s)", top->type);
		return;
	}
	if (upstream_socket_member(
	        buf, len, "accepts_response_payload", &v, &vlen) == 0 &&
	    vlen == 4 && memcmp(v, "true", 4) == 0)
		accepts = 1;
	dup = upstream_socket_seen('e', id);
	if (strcmp(top->type, "events_api") == 0) {
		upstream_socket_ack(conn, id, NULL, 0);
		if (upstream_socket_field(payload, plen, "event_id", event_id,
		        sizeof event_id) == 0 &&
		    upstream_socket_seen('v', event_id))
			dup = 1;
		if (!dup)
			upstream_socket_event(conn, payload, plen);
		return;
	}
	if (strcmp(top->type, "slash_commands") == 0 ||
	    strcmp(top->type, "interactive") == 0) {
		if (dup) { /* a retry: acked when its first copy is */
			if (socket_pending_map == NULL ||
			    map_get(socket_pending_map, id) == NULL)
				upstream_socket_ack(conn, id, NULL, 0);
			return;
		}
		upstream_socket_request(conn,
		    top->type[0] == 's' ? PROTOCOL_SLASH_COMMAND
		                        : PROTOCOL_INTERACTIVE,
		    id, payload, plen, accepts);
		return;
	}
	upstream_socket_ack(conn, id, NULL, 0);
	if (!dup)
		log_info(
		    "upstream: acknowledged an envelope of unknown type \"%s\"; not forwarded",
		    top->type);
}

static void
upstream_socket_frame(struct upstream_conn *conn, char *buf, size_t len)
{
	struct jscan js;
	const char *v;
	size_t vlen;

	if (jscan_object(buf, len, SOCKET_MAX_DEPTH, &js) != 0) {
		upstream_dropped(conn,
		    "dropped a frame that is not a JSON object (%s at byte %zu of %zu)",
		    js.error, js.error_at, len);
		return;
	}
	if (js.spaces) {
		len = jscan_compact(buf, len);
		buf[len] = '\0';
	}
	if (conn->phase == UPSTREAM_CONN_HELLO) {
		if (strcmp(js.type, "hello") == 0)
			upstream_socket_hello(conn, buf, len);
		else
			upstream_conn_lost(conn, 1,
			    "first frame from Slack was \"%.40s\", not hello",
			    js.type);
		return;
	}
	if (strcmp(js.type, "disconnect") == 0) {
		upstream_socket_disconnect(conn, buf, len);
		return;
	}
	if (upstream_socket_member(buf, len, "envelope_id", &v, &vlen) == 0) {
		upstream_socket_envelope(conn, buf, len, &js);
		return;
	}
	if (strcmp(js.type, "hello") == 0)
		return;
	upstream_dropped(
	    conn, "ignored a frame of type \"%.40s\" from Slack", js.type);
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
