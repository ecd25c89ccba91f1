/*
 * The upstream thread and its connection manager: everything that talks
 * to Slack, on libwebsockets' own poll loop (Debian's lws cannot run on
 * libevent: doc/design.md, "Two threads").  What any Slack WebSocket
 * upstream needs lives here; what one protocol means by its frames lives
 * in its own file (upstream_rtm.c), behind struct upstream_proto.
 *
 * One connection cycle, each session a struct upstream_conn:
 *
 *   WAITING --timer--> API (connect method) --ok--> SOCKET (wss upgrade)
 *      ^                 |                              |
 *      |              failure                       established
 *      |                 v                              v
 *      +----backoff---- end <----closed---- LIVE <--hello-- HELLO
 *
 * Once LIVE the protocol's keepalive goes out every ping_interval; no
 * answer within pong_timeout means the connection is dead and it is
 * dropped at once.  Failures back off exponentially with full jitter
 * (backoff.c); connect calls also pass a token bucket sized to Slack's
 * tier 1, charged only for calls Slack answered (upstream_charge), and a
 * Retry-After from Slack is final: that long, no longer.  Permanent auth
 * errors stop it.  Events go to the main thread in batches (one lock and
 * one wake-up per read from Slack); when the main thread falls behind,
 * reading from Slack pauses.
 *
 * The main thread talks to us only through the inbox (woken with
 * lws_cancel_service(), the one lws call that is safe from another thread);
 * we answer through its mailbox.  Invariants: up->conns lists every
 * session, oldest first; a session's lws wsi points back at it through its
 * opaque user data, cleared before the session is freed, so a late lws
 * callback never sees freed memory; every MAILBOX_SEND taken is answered
 * with WRITTEN or RETURNED, every MAILBOX_API_CALL with an API_RESULT.
 *
 * Several sessions.  `want` is how many sessions to hold: RTM one, Socket
 * Mode `connections`.  Each session ends and is replaced on its own; only
 * one connect call is in flight at a time (a session going live, ending or
 * failing asks for the next), and all of them pass the same token bucket.
 * Liveness is per session: the protocol's keepalive (an RTM ping frame, or
 * a WebSocket PING for Socket Mode) must be answered within pong_timeout;
 * as a backstop, judged only between keepalives so that the pong rule
 * speaks first, a session from which nothing at all arrived for twice
 * ping_interval plus pong_timeout is dead too.  While reading is paused
 * (the main thread is behind) neither counts, since an answer may be
 * waiting unread.  A close
 * handshake gets UPSTREAM_CLOSE_WAIT.
 * Frames a protocol originates (Socket Mode's acks) are written on their
 * session ahead of anything else.
 *
 * Make-before-break.  When Slack asks a live session to go (RTM goodbye),
 * it is retired, not closed: a replacement is made while it keeps
 * forwarding.  Once the replacement has said hello the two overlap and
 * Slack sends the same events on both; overlap.c decides which copy goes
 * out, which waits and when the old session is closed, so that clients
 * get every event once and in order.  If no replacement can be made in
 * time, the old session ends as it would have and the usual reconnect
 * follows.  A protocol with no_overlap (Socket Mode, which de-duplicates
 * by event id itself) skips the overlap: the retired session is closed as
 * soon as its replacement said hello.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "upstream.h"

#define UPSTREAM_CLOSE_WAIT 1000  /* ms for a close handshake */
#define UPSTREAM_RATE_WAIT  60000 /* 429 without Retry-After */
#define UPSTREAM_TX_MAX     (PROTOCOL_RTM_MAX_FRAME + 256)
#define UPSTREAM_OWN_CHUNK  32768             /* bytes of acks per write */
#define UPSTREAM_BACKLOG    (4 * 1024 * 1024) /* event bytes not yet taken */
#define UPSTREAM_BATCH      512  /* events posted to the main thread at once */
#define UPSTREAM_REPLY_WAIT 2000 /* ms a replaced session stays for replies */

enum upstream_phase {
	UPSTREAM_PHASE_WAITING, /* timer to the next attempt */
	UPSTREAM_PHASE_CONN,    /* a session is being made or is up */
	UPSTREAM_PHASE_FAILED,  /* permanent error, idle until stopped */
	UPSTREAM_PHASE_DONE,    /* stopped: leave the loop */
};

struct upstream {
	struct upstream_params *p;
	const struct upstream_proto *proto;
	struct webapi_url api;
	struct lws_context *ctx;
	pthread_t thread;

	struct mailbox inbox; /* main -> upstream */
	struct mailbox *out;  /* upstream -> main */

	pthread_mutex_t lock; /* alive, started */
	pthread_cond_t cond;
	int alive;   /* ctx exists: lws_cancel_service() is safe */
	int started; /* 1 ok, -1 failed */
	char *start_error;

	enum upstream_phase phase;
	int stopping;
	uint64_t session; /* the last session numbered */
	struct backoff backoff;
	struct ratelimit_bucket connect_bucket; /* calls Slack answered */
	int slack_waited; /* we waited Slack's Retry-After: no bucket wait */
	TAILQ_HEAD(upstream_conns, upstream_conn) conns; /* oldest first */
	int want;                                        /* sessions to hold */
	/*
	 * nats_ha: another slackd leads (or none does yet), so no session
	 * is made; upstream_attempt() does nothing while it is set.  The
	 * main thread sets and clears it with MAILBOX_LEAD (nats.c decides).
	 * Everything else (Web API calls, the inbox) works as ever.
	 */
	int standby;
	int live;                   /* sessions that said hello */
	uint64_t rate_limited;      /* Slack's app_rate_limited events */
	struct webcall *ident_call; /* auth.test, for proto->identify */
	char *ident_team;           /* its answer, as JSON objects */
	char *ident_self;
	char *ident_team_name; /* for logs */
	char *ident_self_name;
	struct upstream_handover *ho; /* two sessions overlapping */

	/* the Web API */
	struct webcall_env env;
	struct webcall_queue *calls; /* the main thread's calls */

	int rx_paused;             /* main is behind: not reading Slack */
	struct mailbox_list batch; /* events not posted yet */
	size_t batch_n;
	size_t batch_bytes;
	unsigned char tx[LWS_PRE + UPSTREAM_TX_MAX];
	unsigned char mask[1024]; /* masking keys for acks, from lws */
	size_t mask_left;         /* of them not used yet */

	lws_sorted_usec_list_t sul_attempt;
};

/* Two sessions overlapping: new's events wait in held. */
struct upstream_handover {
	struct upstream *up;
	struct upstream_conn *old; /* NULL once it ended */
	struct upstream_conn *new; /* NULL once it ended */
	struct overlap o;
	struct mailbox_msg **held;
	uint64_t *hashes;
	size_t nheld;
	size_t held_cap;
	lws_sorted_usec_list_t sul;
};

static void upstream_attempt(lws_sorted_usec_list_t *);
static void upstream_lead(struct upstream *, int);
static void upstream_ping(lws_sorted_usec_list_t *);
static void upstream_switch(struct upstream *);
static void upstream_handover(struct upstream_conn *);
static void upstream_handover_attach(
    struct upstream_conn *, struct upstream_conn *);
static void upstream_handover_free(struct upstream *);
static void upstream_handover_gone(struct upstream *, struct upstream_conn *);
static int upstream_overlap(struct upstream *, struct upstream_conn *,
    const struct jscan *, const char *, size_t);
static void upstream_wake(void *);
static void upstream_conns(struct upstream *);
static int upstream_api(struct upstream *, char **);
static void upstream_retry(struct upstream *, int64_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
upstream_timer(
    struct upstream *up, lws_sorted_usec_list_t *sul, int64_t ms, sul_cb_t cb)
{
	if (ms < 0)
		ms = 0;
	lws_sul_schedule(up->ctx, 0, sul, cb, (lws_usec_t)ms * 1000);
}

/*
 * When the main thread falls behind, stop reading from Slack until it
 * catches up (the kernel and Slack then hold the backlog, not our memory).
 */
static void
upstream_flow(struct upstream *up, int on)
{
	struct upstream_conn *conn;

	TAILQ_FOREACH(conn, &up->conns, entry) {
		if (conn->wsi != NULL)
			lws_rx_flow_control(conn->wsi, on);
		if (on && conn->last_rx != 0)
			conn->last_rx = util_now_ms(); /* silence counts anew */
	}
}

static void
upstream_behind(struct upstream *up, int full)
{
	if (full && !up->rx_paused) {
		up->rx_paused = 1;
		upstream_flow(up, 0);
		log_debug(
		    "upstream: the main thread is behind; not reading from Slack until it catches up");
	}
}

/* Post the batched events: one lock and one wake-up for all of them. */
static void
upstream_flush(struct upstream *up)
{
	if (up->batch_n == 0)
		return;
	upstream_behind(
	    up, mailbox_post_list(up->out, &up->batch, up->batch_bytes));
	up->batch_n = 0;
	up->batch_bytes = 0;
}

/*
 * To the main thread, after the events before it.  Texts may quote
 * Slack's answers: scrub them.
 */
void
upstream_tell(struct upstream *up, struct mailbox_msg *m)
{
	char *text;

	upstream_flush(up);
	if ((text = mailbox_msg_text(m)) != NULL)
		log_scrub(text, strlen(text) + 1);
	upstream_behind(up, mailbox_post(up->out, m));
}

static void
upstream_state(struct upstream *up, enum upstream_state st, int64_t retry_in,
    const char *reason)
{
	struct upstream_conn *c = TAILQ_LAST(&up->conns, upstream_conns);
	struct mailbox_msg *m;

	m = mailbox_msg_new(MAILBOX_STATE);
	m->u.state.state = st;
	m->u.state.session = up->session;
	m->u.state.retry_in = retry_in;
	if (reason != NULL)
		m->u.state.reason = xstrdup(reason);
	if (st == UPSTREAM_CONNECTED && up->ident_team != NULL) {
		m->len =
		    (size_t)xasprintf(&m->data, "{\"team\":%s,\"self\":%s}",
		        up->ident_team, up->ident_self);
	} else if (st == UPSTREAM_CONNECTED && c != NULL) {
		m->len =
		    (size_t)xasprintf(&m->data, "{\"team\":%s,\"self\":%s}",
		        c->connect.team, c->connect.self);
	}
	upstream_tell(up, m);
}

/* Hand a frame the main thread asked us to send back to it, unwritten. */
static void
upstream_return(struct upstream *up, struct mailbox_msg *m)
{
	m->type = MAILBOX_RETURNED;
	mailbox_msg_drop_data(m);
	upstream_tell(up, m);
}

static void
upstream_finish(struct upstream *up)
{
	up->phase = UPSTREAM_PHASE_DONE;
	lws_cancel_service(up->ctx); /* leave lws_service() */
}

/* ---- scheduling attempts ------------------------------------------------ */

/*
 * Wait delay ms (at least) and try again.  The reason is what the user
 * sees in logs, status and slackd.state.
 */
static void
upstream_retry(struct upstream *up, int64_t delay, const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	if (up->stopping) {
		if (TAILQ_EMPTY(&up->conns))
			upstream_finish(up);
		return;
	}
	if (up->live > 0)
		log_info("upstream: %s; next session in %.1f s", reason,
		    (double)delay / 1000);
	else {
		up->phase = UPSTREAM_PHASE_WAITING;
		log_warnx("upstream: %s; reconnecting in %.1f s", reason,
		    (double)delay / 1000);
		upstream_state(up, UPSTREAM_RECONNECTING, delay, reason);
	}
	upstream_timer(up, &up->sul_attempt, delay, upstream_attempt);
}

/* Sessions being made or held, not counting those on their way out. */
static int
upstream_active(struct upstream *up)
{
	struct upstream_conn *conn;
	int n = 0;

	TAILQ_FOREACH(conn, &up->conns, entry) {
		if (!conn->retiring && conn->phase != UPSTREAM_CONN_CLOSING)
			n++;
	}
	return n;
}

/*
 * A session ended or could not be made: if fewer are held than wanted,
 * make another, at once when Slack asked for it (prompt) and we are not
 * backing off, else after the next backoff step (at least at_least ms).
 */
static void
upstream_again(
    struct upstream *up, int64_t at_least, int prompt, const char *reason)
{
	int64_t delay;

	if (up->stopping) {
		if (TAILQ_EMPTY(&up->conns))
			upstream_finish(up);
		return;
	}
	if (up->phase == UPSTREAM_PHASE_FAILED)
		return;
	if (upstream_active(up) >= up->want) {
		if (up->live == 0) /* the replacement is not there yet */
			upstream_state(up, UPSTREAM_RECONNECTING, 0, reason);
		return;
	}
	if (prompt && at_least == 0 &&
	    backoff_ceiling(&up->backoff) <= up->p->conf->reconnect_min)
		delay = 0;
	else if ((delay = backoff_next(&up->backoff)) < at_least)
		delay = at_least;
	upstream_retry(up, delay, "%s", reason);
}

void
upstream_fatal(struct upstream *up, const char *error)
{
	struct upstream_conn *conn, *next;
	struct mailbox_msg *m;
	char *reason;

	up->phase = UPSTREAM_PHASE_FAILED;
	xasprintf(&reason, "authentication failed: %s", error);
	log_warnx(
	    "upstream: Slack refused the token (%s); not retrying", error);
	TAILQ_FOREACH_SAFE(conn, &up->conns, entry, next)
		upstream_conn_lost(conn, 1, "%s", reason);
	upstream_state(up, UPSTREAM_FAILED, 0, reason);
	free(reason);
	m = mailbox_msg_new(MAILBOX_FATAL);
	m->u.fatal.error = xstrdup(error);
	upstream_tell(up, m);
}

/*
 * The sessions as the main thread shows them (slackctl status), when a
 * protocol holds several: {"app_id":…,"connections":[…]}, posted whenever
 * one changes.
 */
static void
upstream_conns(struct upstream *up)
{
	static const char *names[] = { "connecting", "connecting", "hello",
		"live", "closing" };
	struct upstream_conn *conn;
	struct mailbox_msg *m;
	struct json_object *top, *a, *o;
	const char *text, *app_id = NULL;

	if (!up->proto->connections || up->stopping)
		return;
	top = json_object_new_object();
	a = json_object_new_array();
	TAILQ_FOREACH(conn, &up->conns, entry) {
		if (conn->app_id[0] != '\0')
			app_id = conn->app_id;
		o = json_object_new_object();
		json_object_object_add(o, "session",
		    json_object_new_int64((int64_t)conn->session));
		json_object_object_add(o, "state",
		    json_object_new_string(
		        conn->retiring && conn->phase == UPSTREAM_CONN_LIVE
		            ? "retiring"
		            : names[conn->phase]));
		if (conn->since != 0)
			json_object_object_add(o, "connected_since",
			    json_object_new_double(conn->since));
		if (conn->host[0] != '\0')
			json_object_object_add(
			    o, "host", json_object_new_string(conn->host));
		if (conn->lifetime > 0)
			json_object_object_add(o, "approximate_lifetime",
			    json_object_new_int64(conn->lifetime));
		json_object_array_add(a, o);
	}
	if (app_id != NULL)
		json_object_object_add(
		    top, "app_id", json_object_new_string(app_id));
	json_object_object_add(top, "connections", a);
	json_object_object_add(top, "app_rate_limited",
	    json_object_new_int64((int64_t)up->rate_limited));
	text = json_object_to_json_string_ext(top, JSON_C_TO_STRING_PLAIN);
	m = mailbox_msg_new(MAILBOX_CONNS);
	m->len = strlen(text);
	m->data = xmemdup(text, m->len + 1);
	json_object_put(top);
	upstream_tell(up, m);
}

/* Four bytes of masking key for a frame of our own, from lws's source. */
static void
upstream_mask(struct upstream *up, unsigned char *mask)
{
	uint64_t v;
	size_t got;

	if (up->mask_left < 4) {
		got = lws_get_random(up->ctx, up->mask, sizeof up->mask);
		for (; got < sizeof up->mask; got += sizeof v) {
			v = util_random64();
			memcpy(up->mask + got, &v,
			    sizeof up->mask - got < sizeof v
			        ? sizeof up->mask - got
			        : sizeof v);
		}
		up->mask_left = sizeof up->mask;
	}
	memcpy(mask, up->mask + sizeof up->mask - up->mask_left, 4);
	up->mask_left -= 4;
}

/*
 * A frame of the protocol's own (an ack): framed and masked here, after
 * the others not written yet, all written at once before anything else.
 * -1 if it cannot be: too long, or the session is not up.
 */
int
upstream_conn_write(struct upstream_conn *conn, const char *data, size_t len)
{
	unsigned char mask[4];

	if (conn->wsi == NULL || len > UPSTREAM_TX_MAX ||
	    (conn->phase != UPSTREAM_CONN_LIVE &&
	        conn->phase != UPSTREAM_CONN_HELLO))
		return -1;
	if (conn->own_cap - conn->own_len < FRAME_WS_HEAD + len) {
		conn->own_cap = conn->own_len + FRAME_WS_HEAD + len;
		if (conn->own_cap < UPSTREAM_OWN_CHUNK)
			conn->own_cap = UPSTREAM_OWN_CHUNK;
		else
			conn->own_cap *= 2;
		conn->own = xrealloc(conn->own, conn->own_cap);
	}
	upstream_mask(conn->up, mask);
	conn->own_len +=
	    frame_ws_client(conn->own + conn->own_len, data, len, mask);
	lws_callback_on_writable(conn->wsi);
	return 0;
}

/* Live session number session, else the newest live one, or NULL. */
struct upstream_conn *
upstream_conn_live(struct upstream *up, uint64_t session)
{
	struct upstream_conn *conn, *any = NULL;

	TAILQ_FOREACH(conn, &up->conns, entry) {
		if (conn->phase != UPSTREAM_CONN_LIVE)
			continue;
		if (conn->session == session)
			return conn;
		any = conn;
	}
	return any;
}

/* Slack said the app is over its event rate limit: count it, show it. */
void
upstream_rate_limited(struct upstream *up)
{
	up->rate_limited++;
	upstream_conns(up);
}

/* ---- sessions ---------------------------------------------------------- */

static struct upstream_conn *
upstream_conn_new(struct upstream *up)
{
	struct upstream_conn *conn;

	conn = xcalloc(1, sizeof *conn);
	conn->up = up;
	conn->phase = UPSTREAM_CONN_API;
	STAILQ_INIT(&conn->writes);
	TAILQ_INSERT_TAIL(&up->conns, conn, entry);
	return conn;
}

/*
 * Forget a session: no timer, no lws callback and no connect call refers
 * to it any more.  Its unwritten frames must have been given back.
 */
static void
upstream_conn_free(struct upstream_conn *conn)
{
	free(conn->own);
	TAILQ_REMOVE(&conn->up->conns, conn, entry);
	lws_sul_cancel(&conn->sul_deadline);
	lws_sul_cancel(&conn->sul_ping);
	lws_sul_cancel(&conn->sul_pong);
	if (conn->wsi != NULL)
		lws_set_opaque_user_data(conn->wsi, NULL);
	webcall_free(conn->connect_call);
	webapi_connect_free(&conn->connect);
	webapi_url_free(&conn->ws);
	free(conn->rx);
	free(conn->end_reason);
	free(conn);
}

/* A session that ended before its WebSocket: back off and try again. */
static void
upstream_conn_failed(
    struct upstream_conn *conn, int64_t at_least, const char *reason)
{
	struct upstream *up = conn->up;

	upstream_conn_free(conn);
	upstream_again(up, at_least, 0, reason);
}

/* Tier 1: connect calls per second the bucket allows. */
static double
upstream_rate(struct upstream *up)
{
	int64_t interval = up->p->conf->rtm_connect_interval;

	return interval > 0 ? 1000.0 / (double)interval : 1e9;
}

/*
 * A connect call Slack answered (with JSON, or a 429) counts against its
 * rate limit; one that never reached Slack's API (refused, TLS, a portal's
 * HTML, a proxy's 502) does not: backoff alone paces those.
 */
static void
upstream_charge(struct upstream *up)
{
	ratelimit_bucket_charge(&up->connect_bucket, upstream_rate(up),
	    up->p->conf->rtm_connect_burst, util_now_ms());
}

static void upstream_ws_connect(struct upstream_conn *);

/* The connect method is over, one way or the other: what next. */
static void
upstream_connect_done(struct webcall *w, void *arg)
{
	struct upstream_conn *conn = arg;
	struct upstream *up = conn->up;
	const char *method = up->proto->connect_method;
	struct webapi_connect c;
	char *err = NULL, reason[512];
	const char *body;
	int64_t wait, slack_wait = webcall_retry_after(w);
	size_t len;
	int http = webcall_status(w), answered = 0, limited = 0;

	conn->connect_call = NULL;
	wait = slack_wait >= 0 ? slack_wait : UPSTREAM_RATE_WAIT;
	body = webcall_body(w, &len);
	if (webcall_error(w) != NULL) {
		snprintf(reason, sizeof reason, "%s to %s failed: %s", method,
		    up->api.host, webcall_error(w));
	} else if (http == 429) {
		answered = limited = 1;
		snprintf(reason, sizeof reason,
		    "%s rate limited (HTTP 429, Retry-After %.0f s)", method,
		    (double)wait / 1000);
	} else if (webapi_parse_connect(body, len, &c, &err) != 0) {
		snprintf(reason, sizeof reason, "%s answered HTTP %d: %s",
		    method, http, err);
		free(err);
	} else if (!c.ok) {
		answered = 1;
		if (webapi_permanent_error(c.error)) {
			webcall_free(w);
			upstream_conn_free(conn);
			upstream_fatal(up, c.error);
			webapi_connect_free(&c);
			return;
		}
		if (strcmp(c.error, "ratelimited") == 0) {
			limited = 1;
			snprintf(reason, sizeof reason,
			    "%s: ratelimited (Retry-After %.0f s)", method,
			    (double)wait / 1000);
		} else
			snprintf(reason, sizeof reason, "%s: %.200s", method,
			    c.error);
		webapi_connect_free(&c);
	} else {
		upstream_charge(up);
		webcall_free(w);
		conn->connect = c;
		if (webapi_parse_url(c.url, 1, &conn->ws, &err) != 0) {
			snprintf(reason, sizeof reason,
			    "%s gave a bad WebSocket URL: %s", method, err);
			free(err);
			upstream_conn_failed(conn, 0, reason);
			return;
		}
		upstream_ws_connect(conn);
		return;
	}
	webcall_free(w);
	if (answered)
		upstream_charge(up);
	if (limited && slack_wait >= 0) {
		/* Slack's word on when to call again is final. */
		up->slack_waited = 1;
		upstream_conn_free(conn);
		upstream_retry(up, slack_wait, "%s", reason);
		return;
	}
	upstream_conn_failed(conn, limited ? wait : 0, reason);
}

/*
 * auth.test's answer (a protocol whose connect call does not say who we
 * are): the team and the bot user, in rtm.connect's shapes.
 */
static void
upstream_ident_done(struct webcall *w, void *arg)
{
	struct upstream *up = arg;
	struct json_object *o, *team, *self, *v;
	const char *body, *name, *url;
	char reason[512], domain[64] = "";
	size_t len;
	int64_t wait = webcall_retry_after(w);
	int http = webcall_status(w);

	up->ident_call = NULL;
	body = webcall_body(w, &len);
	o = webcall_error(w) == NULL && body != NULL ? json_tokener_parse(body)
	                                             : NULL;
	if (o == NULL || !json_object_object_get_ex(o, "ok", &v)) {
		snprintf(reason, sizeof reason, "auth.test failed: %s",
		    webcall_error(w) != NULL ? webcall_error(w)
		                             : "the answer is not JSON");
		json_object_put(o);
		webcall_free(w);
		upstream_again(
		    up, http == 429 && wait > 0 ? wait : 0, 0, reason);
		return;
	}
	if (!json_object_get_boolean(v)) {
		name = json_object_object_get_ex(o, "error", &v)
		    ? json_object_get_string(v)
		    : "unknown_error";
		snprintf(reason, sizeof reason, "%s", name);
		json_object_put(o);
		webcall_free(w);
		if (webapi_permanent_error(reason))
			upstream_fatal(up, reason);
		else
			upstream_again(up, 0, 0, "auth.test failed");
		return;
	}
	team = json_object_new_object();
	self = json_object_new_object();
	if (json_object_object_get_ex(o, "team_id", &v))
		json_object_object_add(team, "id", json_object_get(v));
	if (json_object_object_get_ex(o, "team", &v)) {
		json_object_object_add(team, "name", json_object_get(v));
		free(up->ident_team_name);
		up->ident_team_name = xstrdup(json_object_get_string(v));
	}
	if (json_object_object_get_ex(o, "url", &v) &&
	    (url = json_object_get_string(v)) != NULL &&
	    sscanf(url, "https://%63[^.]", domain) == 1)
		json_object_object_add(
		    team, "domain", json_object_new_string(domain));
	if (json_object_object_get_ex(o, "user_id", &v))
		json_object_object_add(self, "id", json_object_get(v));
	if (json_object_object_get_ex(o, "user", &v)) {
		json_object_object_add(self, "name", json_object_get(v));
		free(up->ident_self_name);
		up->ident_self_name = xstrdup(json_object_get_string(v));
	}
	up->ident_team = xstrdup(
	    json_object_to_json_string_ext(team, JSON_C_TO_STRING_PLAIN));
	up->ident_self = xstrdup(
	    json_object_to_json_string_ext(self, JSON_C_TO_STRING_PLAIN));
	json_object_put(team);
	json_object_put(self);
	json_object_put(o);
	webcall_free(w);
	upstream_timer(up, &up->sul_attempt, 0, upstream_attempt);
}

static void
upstream_attempt(lws_sorted_usec_list_t *sul)
{
	struct upstream *up =
	    lws_container_of(sul, struct upstream, sul_attempt);
	struct upstream_conn *conn;
	int64_t wait;

	if (up->stopping || up->phase == UPSTREAM_PHASE_FAILED || up->standby ||
	    upstream_active(up) >= up->want)
		return;
	TAILQ_FOREACH(conn, &up->conns, entry) {
		if (conn->phase == UPSTREAM_CONN_API)
			return; /* one connect call at a time */
	}
	if (up->proto->identify && up->ident_team == NULL) {
		if (up->ident_call != NULL)
			return;
		if (up->live == 0)
			upstream_state(up, UPSTREAM_CONNECTING, 0, NULL);
		up->ident_call = webcall_new(
		    "auth.test", NULL, NULL, 0, upstream_ident_done, up);
		/* It calls back at once on failure. */
		webcall_start(&up->env, up->ident_call);
		return;
	}
	if (!up->slack_waited &&
	    !ratelimit_bucket_ready(&up->connect_bucket, upstream_rate(up),
	        up->p->conf->rtm_connect_burst, util_now_ms(), &wait)) {
		upstream_retry(up, wait,
		    "holding back %s to stay within Slack's rate limit",
		    up->proto->connect_method);
		return;
	}
	up->slack_waited = 0;
	up->phase = UPSTREAM_PHASE_CONN;
	conn = upstream_conn_new(up);
	if (up->live == 0)
		upstream_state(up, UPSTREAM_CONNECTING, 0, NULL);
	if (up->proto->app_token) /* a POST, as apps.connections.open wants */
		conn->connect_call = webcall_new(up->proto->connect_method,
		    "application/x-www-form-urlencoded", "", 0,
		    upstream_connect_done, conn);
	else
		conn->connect_call = webcall_new(up->proto->connect_method,
		    NULL, NULL, 0, upstream_connect_done, conn);
	if (up->proto->app_token)
		webcall_use_app_token(conn->connect_call);
	/* It calls back at once on failure: conn may be gone after this. */
	webcall_start(&up->env, conn->connect_call);
}

/*
 * lws_client_connect_via_info() failed at once for the WebSocket: find
 * out whether the name resolves, so that the log and status say why.
 */
static void
upstream_why_not(struct upstream_conn *conn)
{
	struct addrinfo hints, *res = NULL;
	const char *host = conn->ws.host, *last = lwslog_last();
	char reason[512], service[16];
	int rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	snprintf(service, sizeof service, "%d", conn->ws.port);
	if ((rc = getaddrinfo(host, service, &hints, &res)) != 0)
		snprintf(reason, sizeof reason,
		    "the WebSocket to %s failed: cannot resolve %s: %s", host,
		    host, gai_strerror(rc));
	else
		snprintf(reason, sizeof reason,
		    "the WebSocket to %s failed: cannot connect to port %d%s%s%s",
		    host, conn->ws.port, *last != '\0' ? " (" : "", last,
		    *last != '\0' ? ")" : "");
	if (res != NULL)
		freeaddrinfo(res);
	upstream_conn_failed(conn, 0, reason);
}

/* ---- Web API calls for the main thread ----------------------------------- */

/* A queued call is over: its answer, or why there is none, to main. */
static void
upstream_api_done(struct webcall *w, void *arg)
{
	struct upstream *up = arg;
	struct mailbox_msg *m;

	m = mailbox_msg_new(MAILBOX_API_RESULT);
	m->u.result.call = webcall_id(w);
	m->u.result.http_status = webcall_status(w);
	if (webcall_error(w) != NULL)
		m->u.result.error = xstrdup(webcall_error(w));
	else
		m->data = webcall_take_body(w, &m->len);
	webcall_free(w);
	upstream_tell(up, m);
}

static void
upstream_api_call(struct upstream *up, struct mailbox_msg *m)
{
	struct webcall *w;

	w = webcall_new(m->u.call.method,
	    m->u.call.json ? "application/json; charset=utf-8"
	                   : "application/x-www-form-urlencoded",
	    m->data, m->len, NULL, NULL);
	webcall_q_add(up->calls, w, m->u.call.call);
	mailbox_msg_free(m);
}

/* A call that will not be made: it still gets its answer. */
static void
upstream_api_refuse(struct upstream *up, struct mailbox_msg *m, const char *why)
{
	uint64_t call = m->u.call.call;

	mailbox_msg_free(m);
	m = mailbox_msg_new(MAILBOX_API_RESULT);
	m->u.result.call = call;
	m->u.result.error = xstrdup(why);
	upstream_tell(up, m);
}

/* Calls that will not be made now: each still gets its answer. */
static void
upstream_api_flush(struct upstream *up, const char *why)
{
	struct mailbox_msg *m;
	struct webcall *w;

	while ((w = webcall_q_pop(up->calls)) != NULL) {
		m = mailbox_msg_new(MAILBOX_API_RESULT);
		m->u.result.call = webcall_id(w);
		m->u.result.error = xstrdup(why);
		webcall_free(w);
		upstream_tell(up, m);
	}
}

/* ---- the WebSocket ---------------------------------------------------- */

static void
upstream_ws_deadline(lws_sorted_usec_list_t *sul)
{
	struct upstream_conn *conn =
	    lws_container_of(sul, struct upstream_conn, sul_deadline);
	const struct config *cf = conn->up->p->conf;

	switch (conn->phase) {
	case UPSTREAM_CONN_SOCKET:
		upstream_conn_lost(conn, 0,
		    "WebSocket connection to %s not established within %.1f s",
		    conn->ws.host, (double)cf->connect_timeout / 1000);
		break;
	case UPSTREAM_CONN_HELLO:
		upstream_conn_lost(conn, 0, "no hello from Slack within %.1f s",
		    (double)cf->hello_timeout / 1000);
		break;
	case UPSTREAM_CONN_LIVE: /* retired: replaced, or no replacement */
		upstream_conn_lost(conn, 1, "%s; %s",
		    conn->end_reason != NULL ? conn->end_reason : "retired",
		    conn->silenced ? "replaced"
		                   : "no replacement session in time");
		break;
	case UPSTREAM_CONN_CLOSING:
		upstream_conn_lost(conn, 0, "%s",
		    conn->end_reason != NULL ? conn->end_reason
		                             : "close handshake timed out");
		break;
	default:
		break;
	}
}

static void
upstream_ws_connect(struct upstream_conn *conn)
{
	struct upstream *up = conn->up;
	struct lws_client_connect_info i;

	conn->phase = UPSTREAM_CONN_SOCKET;
	log_debug("upstream: opening the %s WebSocket to %s:%d",
	    up->proto->name, conn->ws.host, conn->ws.port);

	memset(&i, 0, sizeof i);
	i.context = up->ctx;
	i.address = conn->ws.host;
	i.host = conn->ws.host;
	i.port = conn->ws.port;
	i.path = conn->ws.path;
	i.ssl_connection = conn->ws.tls ? LCCSCF_USE_SSL : 0;
	i.local_protocol_name = "slackd-ws";
	i.pwsi = &conn->wsi;
	i.opaque_user_data = conn;
	upstream_timer(up, &conn->sul_deadline, up->p->conf->connect_timeout,
	    upstream_ws_deadline);
	if (lws_client_connect_via_info(&i) == NULL) {
		conn->wsi = NULL;
		upstream_why_not(conn);
	}
}

/*
 * The session is over, for whatever reason: give back what was not
 * written, tell the main thread, and plan the next attempt.
 */
static void
upstream_session_end(struct upstream_conn *conn, const char *reason)
{
	struct upstream *up = conn->up;
	struct mailbox_msg *m;
	int prompt = conn->end_prompt;

	conn->wsi = NULL;
	if (up->ho != NULL && (conn == up->ho->old || conn == up->ho->new))
		upstream_handover_gone(up, conn);
	while ((m = STAILQ_FIRST(&conn->writes)) != NULL) {
		STAILQ_REMOVE_HEAD(&conn->writes, entry);
		upstream_return(up, m);
	}
	if (conn->live_at != 0) {
		up->live--;
		m = mailbox_msg_new(MAILBOX_SESSION_DOWN);
		m->u.down.session = conn->session;
		m->u.down.reason = xstrdup(reason);
		upstream_tell(up, m);
		if (util_now_ms() - conn->live_at >=
		    up->p->conf->reconnect_reset)
			backoff_reset(&up->backoff);
	}
	if (!conn->retiring || up->live == 0)
		log_info("upstream: session %llu ended: %s",
		    (unsigned long long)conn->session, reason);
	upstream_conn_free(conn);
	upstream_conns(up);
	if (TAILQ_EMPTY(&up->conns))
		up->rx_paused = 0;
	if (up->stopping && TAILQ_EMPTY(&up->conns))
		log_info("upstream: connection closed");
	upstream_again(up, 0, prompt, reason);
}

/*
 * Give up on this session.  graceful: send a Close and wait a moment for
 * Slack's; otherwise drop the socket at once (it is presumed dead).
 */
void
upstream_conn_lost(
    struct upstream_conn *conn, int graceful, const char *fmt, ...)
{
	struct upstream *up = conn->up;
	char reason[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	if (conn->wsi == NULL) {
		upstream_session_end(conn, reason);
		return;
	}
	if (graceful &&
	    (conn->phase == UPSTREAM_CONN_LIVE ||
	        conn->phase == UPSTREAM_CONN_HELLO)) {
		free(conn->end_reason);
		conn->end_reason = xstrdup(reason);
		conn->phase = UPSTREAM_CONN_CLOSING;
		conn->close_code = LWS_CLOSE_STATUS_NORMAL;
		lws_callback_on_writable(conn->wsi);
		upstream_timer(up, &conn->sul_deadline, UPSTREAM_CLOSE_WAIT,
		    upstream_ws_deadline);
		return;
	}
	/* Kill it now; its CLIENT_CLOSED callback finds no session. */
	lws_set_opaque_user_data(conn->wsi, NULL);
	lws_set_timeout(conn->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	lws_cancel_service(up->ctx);
	upstream_session_end(conn, reason);
}

static void
upstream_pong_deadline(lws_sorted_usec_list_t *sul)
{
	struct upstream_conn *conn =
	    lws_container_of(sul, struct upstream_conn, sul_pong);

	if (conn->phase != UPSTREAM_CONN_LIVE || conn->ping_sent == 0)
		return;
	if (conn->up->rx_paused) { /* not reading: the answer may be there */
		upstream_timer(conn->up, &conn->sul_pong,
		    conn->up->p->conf->pong_timeout, upstream_pong_deadline);
		return;
	}
	upstream_conn_lost(conn, 0, "no pong from Slack within %.1f s",
	    (double)conn->up->p->conf->pong_timeout / 1000);
}

static void
upstream_ping(lws_sorted_usec_list_t *sul)
{
	struct upstream_conn *conn =
	    lws_container_of(sul, struct upstream_conn, sul_ping);
	struct upstream *up = conn->up;

	if (conn->phase != UPSTREAM_CONN_LIVE)
		return;
	upstream_timer(
	    up, &conn->sul_ping, up->p->conf->ping_interval, upstream_ping);
	if (conn->last_rx != 0 && !up->rx_paused && conn->ping_sent == 0 &&
	    util_now_ms() - conn->last_rx >
	        2 * up->p->conf->ping_interval + up->p->conf->pong_timeout) {
		upstream_conn_lost(conn, 0, "nothing from Slack for %.1f s",
		    (double)(util_now_ms() - conn->last_rx) / 1000);
		return;
	}
	if (conn->ping_sent != 0)
		return; /* still waiting for the last answer: its deadline
		           stands */
	conn->ping_len =
	    up->proto->ping(conn, conn->ping_frame, sizeof conn->ping_frame);
	conn->ping_sent = util_now_ms();
	conn->ping_sent_us = util_now_us();
	conn->ping_unwritten = 1;
	lws_callback_on_writable(conn->wsi);
	/* The deadline counts from now, written or not: a stuck socket is dead.
	 */
	upstream_timer(up, &conn->sul_pong, up->p->conf->pong_timeout,
	    upstream_pong_deadline);
}

/* The protocol saw its hello: the session is live. */
void
upstream_live(struct upstream_conn *conn)
{
	struct upstream *up = conn->up;
	struct upstream_conn *old;

	conn->phase = UPSTREAM_CONN_LIVE;
	conn->live_at = util_now_ms();
	conn->since = util_wall();
	lws_sul_cancel(&conn->sul_deadline);
	if (up->live++ == 0) {
		log_info("upstream: connected to %s as %s (session %llu)",
		    up->ident_team_name != NULL ? up->ident_team_name
		                                : conn->connect.team_name,
		    up->ident_self_name != NULL ? up->ident_self_name
		                                : conn->connect.self_name,
		    (unsigned long long)conn->session);
		upstream_state(up, UPSTREAM_CONNECTED, 0, NULL);
	}
	upstream_timer(
	    up, &conn->sul_ping, up->p->conf->ping_interval, upstream_ping);
	TAILQ_FOREACH(old, &up->conns, entry) {
		if (old != conn && old->retiring &&
		    old->phase == UPSTREAM_CONN_LIVE) {
			if (!up->proto->no_overlap) {
				upstream_handover_attach(old, conn);
				break;
			}
			log_info("upstream: session %llu replaces session %llu",
			    (unsigned long long)conn->session,
			    (unsigned long long)old->session);
			upstream_conn_lost(old, 1, "%s; replaced",
			    old->end_reason != NULL ? old->end_reason
			                            : "retired");
			break;
		}
	}
	upstream_conns(up);
	if (upstream_active(up) < up->want) /* the others, one at a time */
		upstream_again(up, 0, 1, "making the next connection");
}

/* The protocol saw the answer to the outstanding keepalive. */
void
upstream_pong(struct upstream_conn *conn)
{
	struct mailbox_msg *m;

	m = mailbox_msg_new(MAILBOX_PONG);
	m->u.pong.rtt_us = util_now_us() - conn->ping_sent_us;
	if (m->u.pong.rtt_us < 1)
		m->u.pong.rtt_us = 1;
	conn->ping_sent = 0;
	lws_sul_cancel(&conn->sul_pong);
	upstream_tell(conn->up, m);
}

/* An event for the clients: data[0..len) is one compact JSON object. */
/* The message for an event: data[0..len) is one compact JSON object. */
static struct mailbox_msg *
upstream_event_msg(struct upstream_conn *conn, const struct jscan *js,
    const char *data, size_t len)
{
	struct mailbox_msg *m;

	m = mailbox_msg_new_data(MAILBOX_EVENT, len + 1);
	m->u.event.session = conn->session;
	memcpy(m->data, data, len);
	m->data[len] = '\n';
	memcpy(m->u.event.type, js->type, sizeof m->u.event.type);
	memcpy(m->u.event.channel, js->channel, sizeof m->u.event.channel);
	memcpy(m->u.event.ts, js->ts, sizeof m->u.event.ts);
	memcpy(
	    m->u.event.thread_ts, js->thread_ts, sizeof m->u.event.thread_ts);
	m->u.event.backfilled = js->backfilled;
	return m;
}

static void
upstream_batch(struct upstream *up, struct mailbox_msg *m)
{
	STAILQ_INSERT_TAIL(&up->batch, m, entry);
	up->batch_n++;
	up->batch_bytes += m->len;
	if (up->batch_n >= UPSTREAM_BATCH ||
	    up->batch_bytes >= UPSTREAM_BACKLOG / 8)
		upstream_flush(up);
}

/* An event for the clients: data[0..len) is one compact JSON object. */
void
upstream_event(struct upstream_conn *conn, const struct jscan *js,
    const char *data, size_t len)
{
	struct upstream *up = conn->up;

	if (conn->silenced)
		return;
	if (up->ho != NULL && upstream_overlap(up, conn, js, data, len))
		return;
	upstream_batch(up, upstream_event_msg(conn, js, data, len));
}

/* ---- make-before-break (the decisions are overlap.c's) ------------------ */

static void
upstream_handover_due(lws_sorted_usec_list_t *sul)
{
	struct upstream_handover *ho =
	    lws_container_of(sul, struct upstream_handover, sul);
	struct upstream *up = ho->up;
	int64_t wait = overlap_due(&ho->o, util_now_ms());

	if (wait > 0)
		upstream_timer(up, &ho->sul, wait, upstream_handover_due);
	else if (ho->o.mode == OVERLAP_BOTH)
		upstream_switch(up);
	else
		upstream_handover_free(up);
}

static void
upstream_handover_timer(struct upstream *up)
{
	struct upstream_handover *ho = up->ho;

	upstream_timer(up, &ho->sul, overlap_due(&ho->o, util_now_ms()),
	    upstream_handover_due);
}

/* new said hello while old, retired, still forwards: overlap them. */
static void
upstream_handover(struct upstream_conn *old)
{
	struct upstream *up = old->up;
	struct upstream_handover *ho;

	upstream_handover_free(up);
	ho = xcalloc(1, sizeof *ho);
	ho->up = up;
	ho->old = old;
	overlap_init(&ho->o, util_now_ms());
	up->ho = ho;
}

/* The replacement said hello: from now on the two overlap. */
static void
upstream_handover_attach(struct upstream_conn *old, struct upstream_conn *new)
{
	struct upstream *up = old->up;
	struct upstream_handover *ho = up->ho;

	if (ho == NULL || ho->old != old || ho->new != NULL ||
	    ho->o.mode != OVERLAP_BOTH) {
		upstream_handover(old); /* what old forwarded is not known */
		ho = up->ho;
	}
	ho->new = new;
	ho->o.started = ho->o.old_last = util_now_ms();
	lws_sul_cancel(&old->sul_deadline);
	upstream_handover_timer(up);
	log_info(
	    "upstream: session %llu replaces session %llu; overlapping until their events meet",
	    (unsigned long long)new->session, (unsigned long long)old->session);
}

static void
upstream_handover_free(struct upstream *up)
{
	struct upstream_handover *ho = up->ho;
	size_t i;

	if (ho == NULL)
		return;
	up->ho = NULL;
	lws_sul_cancel(&ho->sul);
	for (i = 0; i < ho->nheld; i++)
		mailbox_msg_free(ho->held[i]);
	free(ho->held);
	free(ho->hashes);
	overlap_free(&ho->o);
	free(ho);
}

/* Let out the held events old did not forward, in order. */
static void
upstream_release(struct upstream *up)
{
	struct upstream_handover *ho = up->ho;
	size_t i;

	for (i = 0; i < ho->nheld; i++) {
		if (overlap_release(&ho->o, ho->hashes[i]))
			upstream_batch(up, ho->held[i]);
		else
			mailbox_msg_free(ho->held[i]);
	}
	ho->nheld = 0;
}

/*
 * The streams met (or old went quiet, or time ran out, or old ended):
 * new's held events go out, old is closed.
 */
static void
upstream_switch(struct upstream *up)
{
	struct upstream_handover *ho = up->ho;
	struct upstream_conn *old = ho->old;

	upstream_release(up);
	overlap_switched(&ho->o);
	log_debug("upstream: session %llu took over",
	    (unsigned long long)ho->new->session);
	if (ho->o.mode == OVERLAP_DONE)
		upstream_handover_free(up);
	else
		upstream_handover_timer(up);
	if (old != NULL && old->wsi != NULL &&
	    old->phase == UPSTREAM_CONN_LIVE) {
		int64_t wait =
		    old->wrote_at + UPSTREAM_REPLY_WAIT - util_now_ms();

		old->silenced = 1;
		if (old->wrote_at != 0 && wait > 0) /* Slack's replies first */
			upstream_timer(
			    up, &old->sul_deadline, wait, upstream_ws_deadline);
		else
			upstream_conn_lost(old, 1, "%s; replaced",
			    old->end_reason != NULL ? old->end_reason
			                            : "retired");
	}
}

/* One of the overlapping sessions ended. */
static void
upstream_handover_gone(struct upstream *up, struct upstream_conn *conn)
{
	struct upstream_handover *ho = up->ho;

	if (conn == ho->new && ho->o.mode == OVERLAP_BOTH) {
		upstream_release(up); /* old's copies will be dropped */
		overlap_new_gone(&ho->o, util_now_ms());
		ho->new = NULL;
	} else if (conn == ho->old && ho->new != NULL &&
	    ho->o.mode == OVERLAP_BOTH) {
		ho->old = NULL;
		upstream_switch(up);
		return;
	} else if (conn == ho->old && ho->o.mode == OVERLAP_SWITCHED) {
		ho->old = NULL;
		return;
	} else {
		upstream_handover_free(up);
		return;
	}
	if (ho->o.mode == OVERLAP_DONE)
		upstream_handover_free(up);
	else
		upstream_handover_timer(up);
}

/*
 * An event while two sessions overlap.  Returns 1 if it was taken care of
 * here (held, dropped, or forwarded before a switch), 0 if it is to be
 * forwarded as usual.
 */
static int
upstream_overlap(struct upstream *up, struct upstream_conn *conn,
    const struct jscan *js, const char *data, size_t len)
{
	struct upstream_handover *ho = up->ho;
	uint64_t h = overlap_hash(data, len);
	int64_t now = util_now_ms();
	enum overlap_verdict v;

	if (conn == ho->old)
		v = overlap_old(&ho->o, h, now);
	else if (conn == ho->new &&conn != NULL)
		v = overlap_new(&ho->o, h, now);
	else
		return 0;
	switch (v) {
	case OVERLAP_FORWARD:
		if (ho->o.mode == OVERLAP_DONE)
			upstream_handover_free(up);
		return 0;
	case OVERLAP_HOLD:
		if (ho->nheld == ho->held_cap) {
			ho->held_cap = ho->held_cap ? ho->held_cap * 2 : 64;
			ho->held =
			    xrealloc(ho->held, ho->held_cap * sizeof *ho->held);
			ho->hashes = xrealloc(
			    ho->hashes, ho->held_cap * sizeof *ho->hashes);
		}
		ho->hashes[ho->nheld] = h;
		ho->held[ho->nheld++] = upstream_event_msg(conn, js, data, len);
		if (ho->nheld == 1)
			upstream_handover_timer(up); /* the quiet rule */
		return 1;
	case OVERLAP_DROP:
		return 1;
	case OVERLAP_FORWARD_SWITCH:
		upstream_batch(up, upstream_event_msg(conn, js, data, len));
		upstream_switch(up);
		return 1;
	case OVERLAP_DROP_SWITCH:
		upstream_switch(up);
		return 1;
	}
	return 0;
}

/*
 * Slack asked this session to go (RTM goodbye): keep it until a
 * replacement has said hello, if one can be made in time.
 */
void
upstream_conn_retire(struct upstream_conn *conn, const char *fmt, ...)
{
	struct upstream *up = conn->up;
	const struct config *cf = up->p->conf;
	char reason[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	conn->end_prompt = 1;
	/* The test hook SLACKD_TEST_BREAK_BEFORE_MAKE: the old behaviour. */
	if (conn->phase != UPSTREAM_CONN_LIVE || conn->retiring ||
	    up->stopping || slackd_test_break_first) {
		upstream_conn_lost(conn, 1, "%s", reason);
		return;
	}
	conn->retiring = 1;
	free(conn->end_reason);
	conn->end_reason = xstrdup(reason);
	log_info(
	    "upstream: %s; making the next session before closing this one",
	    reason);
	if (!up->proto->no_overlap)
		upstream_handover(conn); /* what it forwards is noted */
	upstream_conns(up);
	upstream_timer(up, &conn->sul_deadline,
	    cf->connect_timeout * 2 + cf->hello_timeout, upstream_ws_deadline);
	upstream_again(up, 0, 1, reason);
}

/* An unusable frame: skip it, keep the session, say so. */
void
upstream_dropped(struct upstream_conn *conn, const char *fmt, ...)
{
	struct mailbox_msg *m;
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	log_warnx("upstream: %s", why);
	m = mailbox_msg_new(MAILBOX_DROPPED);
	m->u.dropped.why = xstrdup(why);
	upstream_tell(conn->up, m);
}

/* One complete frame from Slack, in conn->rx. */
static void
upstream_frame(struct upstream_conn *conn)
{
	if (conn->rx_over) {
		upstream_dropped(conn,
		    "dropped an event larger than max_event (%zu bytes)",
		    conn->up->p->conf->max_event);
		return;
	}
	if (conn->rx_binary) {
		upstream_dropped(
		    conn, "ignored a binary frame of %zu bytes", conn->rx_len);
		return;
	}
	if (conn->phase != UPSTREAM_CONN_HELLO &&
	    conn->phase != UPSTREAM_CONN_LIVE &&
	    conn->phase != UPSTREAM_CONN_CLOSING)
		return;
	/* A closing session's frames still answer requests (proto). */
	conn->up->proto->frame(conn, conn->rx, conn->rx_len);
}

static int
upstream_receive(
    struct upstream_conn *conn, struct lws *wsi, const void *in, size_t len)
{
	size_t max = conn->up->p->conf->max_event;

	conn->last_rx = util_now_ms();
	if (lws_is_first_fragment(wsi)) {
		conn->rx_len = 0;
		conn->rx_over = 0;
		conn->rx_binary = lws_frame_is_binary(wsi);
	}
	if (!conn->rx_over) {
		if (conn->rx_len + len > max) {
			conn->rx_over = 1;
			free(conn->rx);
			conn->rx = NULL;
			conn->rx_len = 0;
		} else {
			conn->rx = xrealloc(conn->rx, conn->rx_len + len + 1);
			memcpy(conn->rx + conn->rx_len, in, len);
			conn->rx_len += len;
			conn->rx[conn->rx_len] = '\0';
		}
	}
	if (!lws_is_final_fragment(wsi) ||
	    lws_remaining_packet_payload(wsi) != 0)
		return 0;
	upstream_frame(conn);
	if (lws_get_opaque_user_data(wsi) != conn)
		return 0; /* the frame ended the session: conn is gone */
	if (conn->rx != NULL && conn->rx_len > 65536) {
		free(conn->rx);
		conn->rx = NULL;
	}
	conn->rx_len = 0;
	return 0;
}

/*
 * The protocol's frames, in one write of up to UPSTREAM_OWN_CHUNK bytes
 * (lws keeps what the socket does not take and sends it before calling
 * back again).  The rest waits for the next callback.
 */
static int
upstream_write_own(struct upstream_conn *conn, struct lws *wsi)
{
	size_t n = conn->own_len;

	if (n > UPSTREAM_OWN_CHUNK)
		n = UPSTREAM_OWN_CHUNK;
	if (lws_write(wsi, conn->own, n, LWS_WRITE_RAW) < (int)n)
		return -1;
	conn->own_len -= n;
	if (conn->own_len > 0) {
		memmove(conn->own, conn->own + n, conn->own_len);
		lws_callback_on_writable(wsi);
	} else if (conn->own_cap > 4 * UPSTREAM_OWN_CHUNK) {
		free(conn->own);
		conn->own = NULL;
		conn->own_cap = 0;
	}
	return 0;
}

static int
upstream_writeable(struct upstream_conn *conn, struct lws *wsi)
{
	struct upstream *up = conn->up;
	struct mailbox_msg *m;
	unsigned char *p = up->tx + LWS_PRE;
	size_t len;
	int wrote = 0;

	if (conn->phase == UPSTREAM_CONN_CLOSING) {
		const char *why = "slackd closing";

		lws_close_reason(wsi, (enum lws_close_status)conn->close_code,
		    (unsigned char *)why, strlen(why));
		return -1;
	}
	if (conn->phase != UPSTREAM_CONN_LIVE &&
	    conn->phase != UPSTREAM_CONN_HELLO)
		return 0;
	if (conn->own_len > 0) {
		if (upstream_write_own(conn, wsi) != 0)
			return -1;
		wrote = 1;
	}
	if (conn->phase != UPSTREAM_CONN_LIVE ||
	    (!conn->ping_unwritten && STAILQ_EMPTY(&conn->writes)))
		return 0;
	/* Another write in this callback only if lws says it may. */
	if (wrote && (conn->own_len > 0 || lws_send_pipe_choked(wsi))) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (conn->ping_unwritten && conn->ping_len == 0) {
		conn->ping_unwritten = 0;
		memcpy(p, "slackd", 6);
		if (lws_write(wsi, p, 6, LWS_WRITE_PING) < 6)
			return -1;
	} else if (conn->ping_unwritten) {
		conn->ping_unwritten = 0;
		memcpy(p, conn->ping_frame, conn->ping_len);
		if (lws_write(wsi, p, conn->ping_len, LWS_WRITE_TEXT) <
		    (int)conn->ping_len)
			return -1;
	} else if ((m = STAILQ_FIRST(&conn->writes)) != NULL) {
		STAILQ_REMOVE_HEAD(&conn->writes, entry);
		if (m->len > UPSTREAM_TX_MAX) {
			upstream_return(up, m); /* cannot happen: checked */
			return 0;
		}
		memcpy(p, m->data, m->len);
		len = m->len;
		mailbox_msg_drop_data(m);
		m->type = MAILBOX_WRITTEN;
		m->u.frame.session = conn->session;
		conn->wrote_at = util_now_ms();
		if (lws_write(wsi, p, len, LWS_WRITE_TEXT) < (int)len) {
			upstream_tell(up, m);
			return -1;
		}
		upstream_tell(up, m);
	}
	if (conn->ping_unwritten || !STAILQ_EMPTY(&conn->writes))
		lws_callback_on_writable(wsi);
	return 0;
}

static void
upstream_peer_close(struct upstream_conn *conn, const void *in, size_t len)
{
	const unsigned char *p = in;

	if (len >= 2)
		conn->peer_close_code = (p[0] << 8) | p[1];
}

static void
upstream_closed(struct upstream_conn *conn, const char *why)
{
	char reason[512];

	if (conn->end_reason != NULL)
		snprintf(reason, sizeof reason, "%s", conn->end_reason);
	else if (conn->peer_close_code != 0)
		snprintf(reason, sizeof reason,
		    "Slack closed the connection (code %d)",
		    conn->peer_close_code);
	else
		snprintf(reason, sizeof reason, "%s", why);
	upstream_session_end(conn, reason);
}

static void upstream_drain(struct upstream *);

static int
upstream_ws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct upstream_conn *conn;
	struct upstream *up;
	char why[512];

	if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
		if ((up = lws_context_user(lws_get_context(wsi))) != NULL)
			upstream_drain(up);
		return 0; /* never non-zero here */
	}
	conn = lws_get_opaque_user_data(wsi);
	if (conn == NULL || wsi != conn->wsi)
		return lws_callback_http_dummy(wsi, reason, user, in, len);

	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		snprintf(why, sizeof why,
		    "WebSocket connection to %s failed: %s", conn->ws.host,
		    in != NULL ? (const char *)in : "error");
		lws_set_opaque_user_data(wsi, NULL);
		conn->wsi = NULL;
		upstream_session_end(conn, why);
		return 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		conn->session = ++conn->up->session;
		conn->phase = UPSTREAM_CONN_HELLO;
		upstream_timer(conn->up, &conn->sul_deadline,
		    conn->up->p->conf->hello_timeout, upstream_ws_deadline);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return upstream_receive(conn, wsi, in, len);
	case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
		conn->last_rx = util_now_ms();
		if (conn->ping_sent != 0 && conn->ping_len == 0)
			upstream_pong(conn);
		return 0;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return upstream_writeable(conn, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		upstream_peer_close(conn, in, len);
		return 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
		/* lws still calls other protocols for this wsi: forget conn. */
		lws_set_opaque_user_data(wsi, NULL);
		conn->wsi = NULL;
		upstream_closed(conn, "connection to Slack lost");
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- the inbox -------------------------------------------------------- */

static void
upstream_stop(struct upstream *up)
{
	struct upstream_conn *conn, *next;

	if (up->stopping)
		return;
	up->stopping = 1;
	upstream_state(up, UPSTREAM_STOPPING, 0, NULL);
	webcall_free(up->ident_call);
	up->ident_call = NULL;
	lws_sul_cancel(&up->sul_attempt);
	upstream_api_flush(up, "slackd is stopping");
	TAILQ_FOREACH_SAFE(conn, &up->conns, entry, next) {
		switch (conn->phase) {
		case UPSTREAM_CONN_API:
			upstream_conn_free(conn);
			break;
		case UPSTREAM_CONN_SOCKET:
			upstream_conn_lost(conn, 0, "slackd is stopping");
			break;
		case UPSTREAM_CONN_HELLO:
		case UPSTREAM_CONN_LIVE:
			upstream_conn_lost(conn, 1, "slackd is stopping");
			break;
		case UPSTREAM_CONN_CLOSING:
			break;
		}
	}
	if (TAILQ_EMPTY(&up->conns))
		upstream_finish(up);
}

/*
 * New settings (SIGHUP).  Timings apply from the next timer on; a new
 * token or api_url needs a new session, so reconnect at once.  ca_file is
 * fixed for the context's life (the main thread says so).
 */
static void
upstream_reconfigure(struct upstream *up, struct upstream_params *np)
{
	struct upstream_conn *conn, *next;
	int again;
	char *err = NULL;

	again = strcmp(np->conf->api_url, up->p->conf->api_url) != 0 ||
	    strcmp(np->token, up->p->token) != 0 ||
	    (np->app_token != NULL && up->p->app_token != NULL &&
	        strcmp(np->app_token, up->p->app_token) != 0);
	upstream_params_free(up->p);
	up->p = np;
	up->backoff.min = np->conf->reconnect_min;
	up->backoff.max = np->conf->reconnect_max;
	if (upstream_api(up, &err) != 0) { /* cannot happen: checked */
		log_warnx("upstream: %s", err);
		free(err);
	}
	TAILQ_FOREACH(conn, &up->conns, entry) {
		if (conn->phase == UPSTREAM_CONN_LIVE && conn->ping_sent == 0)
			upstream_timer(up, &conn->sul_ping,
			    np->conf->ping_interval,
			    upstream_ping); /* the new interval, from now */
	}
	if (!again || up->stopping || up->phase == UPSTREAM_PHASE_FAILED)
		return;
	log_info("upstream: a token or api_url changed; reconnecting");
	backoff_reset(&up->backoff);
	TAILQ_FOREACH_SAFE(conn, &up->conns, entry, next) {
		if (conn->phase == UPSTREAM_CONN_API) {
			upstream_conn_free(conn);
			continue;
		}
		if (conn->phase == UPSTREAM_CONN_CLOSING)
			continue;
		conn->end_prompt = 1;
		upstream_conn_lost(conn, conn->phase != UPSTREAM_CONN_SOCKET,
		    "the configuration changed");
	}
	if (TAILQ_EMPTY(&up->conns))
		upstream_retry(up, 0, "the configuration changed");
}

static void
upstream_send(struct upstream *up, struct mailbox_msg *m)
{
	struct upstream_conn *conn, *to = NULL;

	TAILQ_FOREACH(conn, &up->conns, entry) {
		if (conn->phase == UPSTREAM_CONN_LIVE && !conn->retiring)
			to = conn; /* the newest */
	}
	if (to == NULL || up->stopping) {
		upstream_return(up, m);
		return;
	}
	STAILQ_INSERT_TAIL(&to->writes, m, entry);
	lws_callback_on_writable(to->wsi);
}

static void
upstream_drain(struct upstream *up)
{
	struct mailbox_list list;
	struct mailbox_msg *m;

	if (up->rx_paused && !mailbox_full(up->out)) {
		up->rx_paused = 0;
		upstream_flow(up, 1);
	}

	mailbox_take(&up->inbox, &list);
	while ((m = STAILQ_FIRST(&list)) != NULL) {
		STAILQ_REMOVE_HEAD(&list, entry);
		switch (m->type) {
		case MAILBOX_SEND:
			upstream_send(up, m);
			break;
		case MAILBOX_STOP:
			upstream_stop(up);
			mailbox_msg_free(m);
			break;
		case MAILBOX_API_CALL:
			if (up->stopping)
				upstream_api_refuse(
				    up, m, "slackd is stopping");
			else
				upstream_api_call(up, m);
			break;
		case MAILBOX_PROBE:
			m->type = MAILBOX_PROBE_ACK;
			upstream_tell(up, m);
			break;
		case MAILBOX_CONFIG:
			upstream_reconfigure(up, m->u.config.params);
			m->u.config.params = NULL;
			mailbox_msg_free(m);
			break;
		case MAILBOX_ACK:
			if (up->proto->ack != NULL && !up->stopping)
				up->proto->ack(up, m);
			else
				mailbox_msg_free(m);
			break;
		case MAILBOX_LEAD:
			upstream_lead(up, m->u.lead.lead);
			mailbox_msg_free(m);
			break;
		case MAILBOX_WEDGE:
			mailbox_msg_free(m);
			for (;;) /* test hook: the watchdog must notice */
				sleep(3600);
		default:
			log_warnx("upstream: unexpected message %d", m->type);
			mailbox_msg_free(m);
			break;
		}
	}
}

/*
 * MAILBOX_LEAD (nats_ha): lead (connect to Slack) or stand by.  Standing
 * down drops every session at once, without the closing handshake: the
 * lease is running out and another slackd may connect any moment.
 */
static void
upstream_lead(struct upstream *up, int lead)
{
	struct upstream_conn *conn, *next;

	if (up->stopping || lead == !up->standby)
		return;
	up->standby = !lead;
	if (lead) {
		log_info("upstream: leading: connecting to Slack");
		backoff_reset(&up->backoff);
		upstream_timer(up, &up->sul_attempt, 0, upstream_attempt);
		return;
	}
	log_info("upstream: standing by: closing the Slack connection");
	lws_sul_cancel(&up->sul_attempt);
	TAILQ_FOREACH_SAFE(conn, &up->conns, entry, next) {
		if (conn->phase == UPSTREAM_CONN_API)
			upstream_conn_free(conn);
		else
			upstream_conn_lost(conn, 0, "standing by");
	}
	if (up->live == 0)
		upstream_state(up, UPSTREAM_RECONNECTING, 0, "standing by");
}

/* ---- the thread ------------------------------------------------------- */

static struct lws_protocols upstream_protocols[] = {
	{ NULL, NULL, 0, 0, 0, NULL, 0 }, /* webcall_protocol, at start */
	{ "slackd-ws", upstream_ws_cb, 0, 65536, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void
upstream_wake(void *arg)
{
	struct upstream *up = arg;

	pthread_mutex_lock(&up->lock);
	if (up->alive)
		lws_cancel_service(up->ctx);
	pthread_mutex_unlock(&up->lock);
}

static void
upstream_started(struct upstream *up, int ok, const char *error)
{
	pthread_mutex_lock(&up->lock);
	up->started = ok ? 1 : -1;
	up->alive = ok;
	if (error != NULL)
		up->start_error = xstrdup(error);
	pthread_cond_signal(&up->cond);
	pthread_mutex_unlock(&up->lock);
}

static int
upstream_context(struct upstream *up)
{
	const struct config *cf = up->p->conf;
	struct lws_context_creation_info info;

	memset(&info, 0, sizeof info);
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	if (cf->ca_file != NULL) {
		info.client_ssl_ca_filepath = cf->ca_file;
		info.options |= LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
	}
	info.port = CONTEXT_PORT_NO_LISTEN;
	upstream_protocols[0] = webcall_protocol;
	info.protocols = upstream_protocols;
	info.user = up;
	info.max_http_header_data = 16384;
	/* Reads from Slack are this big (default 4 KiB): fewer, larger. */
	info.pt_serv_buf_size = 65536;
	info.fd_limit_per_thread = 32;
	info.timeout_secs = (unsigned)(cf->connect_timeout / 1000 + 5);
	info.connect_timeout_secs =
	    (unsigned)((cf->connect_timeout + 999) / 1000);
	if ((up->ctx = lws_create_context(&info)) == NULL)
		return -1;
	up->env.ctx = up->ctx;
	up->env.api = &up->api;
	up->env.p = &up->p;
	up->calls = webcall_q_new(&up->env, upstream_api_done, up);
	return 0;
}

/* The loop is over: nothing more goes out, give back whatever is queued. */
static void
upstream_wind_down(struct upstream *up)
{
	struct upstream_conn *conn;
	struct mailbox_msg *m;
	struct mailbox_list list;

	pthread_mutex_lock(&up->lock);
	up->alive = 0;
	pthread_mutex_unlock(&up->lock);
	mailbox_take(&up->inbox, &list);
	webcall_free(up->ident_call);
	up->ident_call = NULL;
	upstream_handover_free(up);
	while ((conn = TAILQ_FIRST(&up->conns)) != NULL) {
		STAILQ_CONCAT(&list, &conn->writes);
		upstream_conn_free(conn);
	}
	while ((m = STAILQ_FIRST(&list)) != NULL) {
		STAILQ_REMOVE_HEAD(&list, entry);
		if (m->type == MAILBOX_SEND)
			upstream_return(up, m);
		else if (m->type == MAILBOX_API_CALL)
			upstream_api_refuse(up, m, "slackd is stopping");
		else
			mailbox_msg_free(m);
	}
	upstream_api_flush(up, "slackd is stopping");
	if (up->proto->done != NULL)
		up->proto->done();
	lws_context_destroy(up->ctx);
	up->ctx = NULL;
	webcall_q_free(up->calls);
	up->calls = NULL;
	upstream_tell(up, mailbox_msg_new(MAILBOX_STOPPED));
}

static void *
upstream_main(void *arg)
{
	struct upstream *up = arg;

	if (upstream_context(up) != 0) {
		upstream_started(up, 0,
		    "cannot create the libwebsockets context (see the log above)");
		return NULL;
	}
	upstream_started(up, 1, NULL);
	if (!up->standby)
		upstream_timer(up, &up->sul_attempt, 0, upstream_attempt);
	while (up->phase != UPSTREAM_PHASE_DONE) {
		if (lws_service(up->ctx, 0) < 0)
			break;
		upstream_flush(up); /* what this round of reads brought */
	}
	upstream_wind_down(up);
	return NULL;
}

/* The settings the thread runs with, copied: the thread owns them. */
struct upstream_params *
upstream_params_new(const struct config *conf, const char *token,
    const char *app_token, int lll)
{
	struct upstream_params *p;

	p = xcalloc(1, sizeof *p);
	p->conf = config_dup(conf);
	p->token = token_secret_dup(token);
	if (app_token != NULL)
		p->app_token = token_secret_dup(app_token);
	p->lws_log_level = lll;
	return p;
}

void
upstream_params_free(struct upstream_params *p)
{
	if (p == NULL)
		return;
	config_free(p->conf);
	free(p->conf);
	token_secret_free(p->token);
	token_secret_free(p->app_token);
	free(p);
}

static void
upstream_free(struct upstream *up)
{
	free(up->ident_team);
	free(up->ident_self);
	free(up->ident_team_name);
	free(up->ident_self_name);
	upstream_params_free(up->p);
	webapi_url_free(&up->api);
	free(up->start_error);
	mailbox_destroy(&up->inbox);
	pthread_mutex_destroy(&up->lock);
	pthread_cond_destroy(&up->cond);
	free(up);
}

/* Parse api_url into up->api; method names are appended to its path. */
static int
upstream_api(struct upstream *up, char **err)
{
	char *path;

	webapi_url_free(&up->api);
	if (webapi_parse_url(up->p->conf->api_url, 0, &up->api, err) != 0)
		return -1;
	if (up->api.path[strlen(up->api.path) - 1] != '/') {
		xasprintf(&path, "%s/", up->api.path);
		free(up->api.path);
		up->api.path = path;
	}
	return 0;
}

/*
 * Start the upstream thread, which takes p over.  Returns NULL with *err
 * if it cannot run.  Must be called before any other thread exists that
 * could take our signals.
 */
struct upstream *
upstream_start(struct upstream_params *p, struct mailbox *out, char **err)
{
	struct upstream *up;
	sigset_t all, old;
	int rc;

	up = xcalloc(1, sizeof *up);
	up->p = p;
	up->proto = p->app_token != NULL ? &upstream_socket : &upstream_rtm;
	up->want = up->proto->connections ? p->conf->connections : 1;
	up->standby = p->conf->nats_ha; /* until nats.c says to lead */
	up->out = out;
	TAILQ_INIT(&up->conns);
	STAILQ_INIT(&up->batch);
	pthread_mutex_init(&up->lock, NULL);
	pthread_cond_init(&up->cond, NULL);
	mailbox_init(&up->inbox, upstream_wake, up);
	backoff_init(&up->backoff, p->conf->reconnect_min,
	    p->conf->reconnect_max, util_random64());
	if (upstream_api(up, err) != 0) {
		upstream_free(up);
		return NULL;
	}
	lws_set_log_level(p->lws_log_level, lwslog_emit);

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&up->thread, NULL, upstream_main, up);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		xasprintf(
		    err, "cannot start the upstream thread: %s", strerror(rc));
		upstream_free(up);
		return NULL;
	}
	pthread_mutex_lock(&up->lock);
	while (up->started == 0)
		pthread_cond_wait(&up->cond, &up->lock);
	pthread_mutex_unlock(&up->lock);
	if (up->started < 0) {
		*err = xstrdup(up->start_error);
		pthread_join(up->thread, NULL);
		upstream_free(up);
		return NULL;
	}
	mailbox_set_limit(out, UPSTREAM_BACKLOG, upstream_wake, up);
	return up;
}

void
upstream_post(struct upstream *up, struct mailbox_msg *m)
{
	mailbox_post(&up->inbox, m);
}

/* After MAILBOX_STOPPED: wait for the thread and free everything. */
void
upstream_join(struct upstream *up)
{
	mailbox_set_limit(up->out, 0, NULL, NULL);
	pthread_join(up->thread, NULL);
	upstream_free(up);
}
