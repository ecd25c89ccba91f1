/*
 * The upstream thread: everything that talks to Slack, on libwebsockets'
 * own poll loop (Debian's lws cannot run on libevent, see DESIGN.md §1).
 *
 * One connection cycle:
 *
 *   WAITING --timer--> API (GET rtm.connect) --ok--> SOCKET (wss upgrade)
 *      ^                 |                              |
 *      |              failure                       established
 *      |                 v                              v
 *      +----backoff---- end <----closed---- LIVE <--hello-- HELLO
 *
 * Slack's app-level ping goes out every ping_interval once LIVE; no pong
 * within pong_timeout means the connection is dead and it is dropped at
 * once.  Failures back off exponentially with full jitter (backoff.c), at
 * least Retry-After on rate limits, and rtm.connect calls also pass a
 * token bucket sized to Slack's tier 1.  Permanent auth errors stop it.
 *
 * The main thread talks to us only through the inbox (woken with
 * lws_cancel_service(), the one lws call that is safe from another thread);
 * we answer through its mailbox.  Message ids we put on the wire are even
 * (pings); the main thread's are odd.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "slackd.h"

#define UPSTREAM_CLOSE_WAIT 2000  /* ms for a close handshake */
#define UPSTREAM_RATE_WAIT  60000 /* 429 without Retry-After */
#define UPSTREAM_MAX_DEPTH  64
#define UPSTREAM_TX_MAX     (PROTOCOL_RTM_MAX_FRAME + 256)
#define UPSTREAM_BACKLOG    (4 * 1024 * 1024) /* event bytes not yet taken */
#define UPSTREAM_BATCH      512 /* events posted to the main thread at once */

enum upstream_phase {
	PHASE_WAITING, /* timer to the next attempt */
	PHASE_API,     /* rtm.connect in flight */
	PHASE_SOCKET,  /* WebSocket connecting */
	PHASE_HELLO,   /* waiting for hello */
	PHASE_LIVE,
	PHASE_CLOSING, /* close handshake under way */
	PHASE_FAILED,  /* permanent error, idle until stopped */
	PHASE_DONE,    /* stopped: leave the loop */
};

struct upstream {
	struct upstream_params p;
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
	enum upstream_state reported;
	int stopping;
	uint64_t session;
	struct backoff backoff;
	struct ratelimit_bucket connect_bucket;

	/* the Web API */
	struct webcall_env env;
	struct webcall *connect_call; /* rtm.connect in flight */
	struct webcall_queue *calls;  /* the main thread's calls */

	/* the RTM WebSocket */
	struct webapi_connect rtm;
	struct webapi_url ws;
	struct lws *wsi;
	int64_t live_at;
	char *rx;
	size_t rx_len;
	int rx_over;
	int rx_binary;
	struct mailbox_list writes;
	unsigned char tx[LWS_PRE + UPSTREAM_TX_MAX];
	int close_code;
	int peer_close_code;
	char *end_reason;
	int end_prompt; /* reconnect without backoff */
	int64_t ping_id;
	int64_t ping_sent;    /* ms, 0 when no ping is outstanding */
	int64_t ping_sent_us; /* for the round trip */
	int ping_unwritten;
	int rx_paused; /* the main thread is behind: not reading Slack */
	struct mailbox_list batch; /* events not posted yet */
	size_t batch_n;
	size_t batch_bytes;

	lws_sorted_usec_list_t sul_attempt;
	lws_sorted_usec_list_t sul_deadline;
	lws_sorted_usec_list_t sul_ping;
	lws_sorted_usec_list_t sul_pong;
};

static void upstream_attempt(lws_sorted_usec_list_t *);
static void upstream_wake(void *);
static void upstream_why_not(struct upstream *, const char *, int);
static void upstream_params_clear(struct upstream_params *);
static int upstream_api(struct upstream *, char **);
static void upstream_session_lost(struct upstream *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static void upstream_retry(struct upstream *, int64_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

const char *
upstream_state_name(enum upstream_state s)
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
upstream_behind(struct upstream *up, int full)
{
	if (full && !up->rx_paused && up->wsi != NULL) {
		up->rx_paused = 1;
		lws_rx_flow_control(up->wsi, 0);
		log_debug("upstream: the main thread is behind; not reading "
		          "from Slack until it catches up");
	}
}

/*
 * Events go to the main thread in batches: one lock and one wake-up for
 * all the events of one read from Slack, not one per event.
 */
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
static void
upstream_tell(struct upstream *up, struct mailbox_msg *m)
{
	upstream_flush(up);
	if (m->text != NULL)
		log_scrub(m->text, strlen(m->text) + 1);
	upstream_behind(up, mailbox_post(up->out, m));
}

static void
upstream_state(struct upstream *up, enum upstream_state st, int64_t retry_in,
    const char *reason)
{
	struct mailbox_msg *m;

	m = mailbox_msg_new(MAILBOX_STATE);
	m->state = st;
	m->session = up->session;
	m->retry_in = retry_in;
	if (reason != NULL)
		m->text = xstrdup(reason);
	if (st == UPSTREAM_CONNECTED) {
		m->len = (size_t)xasprintf(&m->data,
		    "{\"team\":%s,\"self\":%s}", up->rtm.team, up->rtm.self);
	}
	up->reported = st;
	upstream_tell(up, m);
}

/* Hand a frame the main thread asked us to send back to it, unwritten. */
static void
upstream_return(struct upstream *up, struct mailbox_msg *m)
{
	m->type = MAILBOX_RETURNED;
	free(m->data);
	m->data = NULL;
	m->len = 0;
	upstream_tell(up, m);
}

static void
upstream_finish(struct upstream *up)
{
	up->phase = PHASE_DONE;
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
		upstream_finish(up);
		return;
	}
	up->phase = PHASE_WAITING;
	log_warnx("upstream: %s; reconnecting in %.1f s", reason,
	    (double)delay / 1000);
	upstream_state(up, UPSTREAM_RECONNECTING, delay, reason);
	upstream_timer(up, &up->sul_attempt, delay, upstream_attempt);
}

static void
upstream_backoff(struct upstream *up, int64_t at_least, const char *reason)
{
	int64_t delay = backoff_next(&up->backoff);

	if (delay < at_least)
		delay = at_least;
	upstream_retry(up, delay, "%s", reason);
}

static void
upstream_fatal(struct upstream *up, const char *error)
{
	struct mailbox_msg *m;
	char *reason;

	up->phase = PHASE_FAILED;
	xasprintf(&reason, "authentication failed: %s", error);
	log_warnx(
	    "upstream: Slack refused the token (%s); not retrying", error);
	upstream_state(up, UPSTREAM_FAILED, 0, reason);
	m = mailbox_msg_new(MAILBOX_FATAL);
	m->text = reason;
	upstream_tell(up, m);
}

/* ---- rtm.connect ------------------------------------------------------ */

static void upstream_ws_connect(struct upstream *);

/* rtm.connect is over, one way or the other: decide what happens next. */
static void
upstream_connected_api(struct webcall *w, void *arg)
{
	struct upstream *up = arg;
	struct webapi_connect c;
	char *err = NULL, reason[512];
	const char *body;
	int64_t wait;
	size_t len;
	int http = webcall_status(w);

	up->connect_call = NULL;
	wait = webcall_retry_after(w);
	if (wait < 0)
		wait = UPSTREAM_RATE_WAIT;
	body = webcall_body(w, &len);
	if (webcall_error(w) != NULL)
		snprintf(reason, sizeof reason, "rtm.connect to %s failed: %s",
		    up->api.host, webcall_error(w));
	else if (http == 429) {
		snprintf(reason, sizeof reason,
		    "rtm.connect rate limited "
		    "(HTTP 429, Retry-After %.0f s)",
		    (double)wait / 1000);
		webcall_free(w);
		upstream_backoff(up, wait, reason);
		return;
	} else if (webapi_parse_connect(body, len, &c, &err) != 0) {
		snprintf(reason, sizeof reason,
		    "rtm.connect answered HTTP %d: "
		    "%s",
		    http, err);
		free(err);
	} else if (!c.ok) {
		if (webapi_permanent_error(c.error))
			upstream_fatal(up, c.error);
		else if (strcmp(c.error, "ratelimited") == 0) {
			snprintf(reason, sizeof reason,
			    "rtm.connect: "
			    "ratelimited (Retry-After %.0f s)",
			    (double)wait / 1000);
			upstream_backoff(up, wait, reason);
		} else {
			snprintf(reason, sizeof reason, "rtm.connect: %.200s",
			    c.error);
			upstream_backoff(up, 0, reason);
		}
		webapi_connect_free(&c);
		webcall_free(w);
		return;
	} else {
		webcall_free(w);
		webapi_connect_free(&up->rtm);
		up->rtm = c;
		webapi_url_free(&up->ws);
		if (webapi_parse_url(up->rtm.url, 1, &up->ws, &err) != 0) {
			snprintf(reason, sizeof reason,
			    "rtm.connect gave a "
			    "bad WebSocket URL: %s",
			    err);
			free(err);
			upstream_backoff(up, 0, reason);
			return;
		}
		upstream_ws_connect(up);
		return;
	}
	webcall_free(w);
	upstream_backoff(up, 0, reason);
}

static void
upstream_attempt(lws_sorted_usec_list_t *sul)
{
	struct upstream *up =
	    lws_container_of(sul, struct upstream, sul_attempt);
	int64_t wait;

	if (up->stopping)
		return;
	if (!ratelimit_bucket_take(&up->connect_bucket,
	        up->p.rtm_connect_interval > 0
	            ? 1000.0 / (double)up->p.rtm_connect_interval
	            : 1e9,
	        up->p.rtm_connect_burst, util_now_ms(), &wait)) {
		upstream_retry(up, wait,
		    "holding back rtm.connect to stay "
		    "within Slack's rate limit");
		return;
	}
	up->phase = PHASE_API;
	upstream_state(up, UPSTREAM_CONNECTING, 0, NULL);
	up->connect_call = webcall_new(
	    "rtm.connect", NULL, NULL, 0, upstream_connected_api, up);
	webcall_start(&up->env, up->connect_call); /* calls back on failure */
}

/*
 * lws_client_connect_via_info() failed at once for the WebSocket: find
 * out whether the name resolves, so that the log and status say why.
 */
static void
upstream_why_not(struct upstream *up, const char *host, int port)
{
	struct addrinfo hints, *res = NULL;
	char reason[512], service[16];
	int rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	snprintf(service, sizeof service, "%d", port);
	if ((rc = getaddrinfo(host, service, &hints, &res)) != 0)
		snprintf(reason, sizeof reason,
		    "the WebSocket to %s failed: "
		    "cannot resolve %s: %s",
		    host, host, gai_strerror(rc));
	else
		snprintf(reason, sizeof reason,
		    "the WebSocket to %s failed: "
		    "cannot connect to port %d%s%s%s",
		    host, port, *log_lws_last() != '\0' ? " (" : "",
		    log_lws_last(), *log_lws_last() != '\0' ? ")" : "");
	if (res != NULL)
		freeaddrinfo(res);
	upstream_backoff(up, 0, reason);
}

/* ---- Web API calls for the main thread ----------------------------------- */

/* A queued call is over: its answer, or why there is none, to main. */
static void
upstream_api_done(struct webcall *w, void *arg)
{
	struct upstream *up = arg;
	struct mailbox_msg *m;

	m = mailbox_msg_new(MAILBOX_API_RESULT);
	m->id = (int64_t)webcall_id(w);
	m->status = webcall_status(w);
	if (webcall_error(w) != NULL)
		m->text = xstrdup(webcall_error(w));
	else
		m->data = webcall_take_body(w, &m->len);
	webcall_free(w);
	upstream_tell(up, m);
}

static void
upstream_api_call(struct upstream *up, struct mailbox_msg *m)
{
	struct webcall *w;

	w = webcall_new(m->text,
	    m->status ? "application/json; charset=utf-8"
	              : "application/x-www-form-urlencoded",
	    m->data, m->len, NULL, NULL);
	webcall_q_add(up->calls, w, (uint64_t)m->id);
	mailbox_msg_free(m);
}

/* A call that will not be made: it still gets its answer. */
static void
upstream_api_refuse(struct upstream *up, struct mailbox_msg *m, const char *why)
{
	m->type = MAILBOX_API_RESULT;
	free(m->data);
	m->data = NULL;
	m->len = 0;
	free(m->text);
	m->text = xstrdup(why);
	m->status = 0;
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
		m->id = (int64_t)webcall_id(w);
		m->text = xstrdup(why);
		webcall_free(w);
		upstream_tell(up, m);
	}
}

/* ---- the RTM WebSocket ------------------------------------------------ */

static void
upstream_ws_deadline(lws_sorted_usec_list_t *sul)
{
	struct upstream *up =
	    lws_container_of(sul, struct upstream, sul_deadline);

	switch (up->phase) {
	case PHASE_SOCKET:
		upstream_session_lost(up, 0,
		    "WebSocket connection to %s not "
		    "established within %.1f s",
		    up->ws.host, (double)up->p.connect_timeout / 1000);
		break;
	case PHASE_HELLO:
		upstream_session_lost(up, 0,
		    "no hello from Slack within "
		    "%.1f s",
		    (double)up->p.hello_timeout / 1000);
		break;
	case PHASE_CLOSING:
		upstream_session_lost(up, 0, "%s",
		    up->end_reason != NULL ? up->end_reason
		                           : "close handshake timed out");
		break;
	default:
		break;
	}
}

static void
upstream_ws_connect(struct upstream *up)
{
	struct lws_client_connect_info i;

	up->phase = PHASE_SOCKET;
	up->peer_close_code = 0;
	up->close_code = 0;
	up->end_prompt = 0;
	free(up->end_reason);
	up->end_reason = NULL;
	log_debug("upstream: opening the RTM WebSocket to %s:%d", up->ws.host,
	    up->ws.port);

	memset(&i, 0, sizeof i);
	i.context = up->ctx;
	i.address = up->ws.host;
	i.host = up->ws.host;
	i.port = up->ws.port;
	i.path = up->ws.path;
	i.ssl_connection = up->ws.tls ? LCCSCF_USE_SSL : 0;
	i.local_protocol_name = "slackd-rtm";
	i.pwsi = &up->wsi;
	i.opaque_user_data = up;
	upstream_timer(
	    up, &up->sul_deadline, up->p.connect_timeout, upstream_ws_deadline);
	if (lws_client_connect_via_info(&i) == NULL) {
		up->wsi = NULL;
		lws_sul_cancel(&up->sul_deadline);
		upstream_why_not(up, up->ws.host, up->ws.port);
	}
}

/*
 * The session is over, for whatever reason: give back what was not
 * written, tell the main thread, and plan the next attempt.
 */
static void
upstream_session_end(struct upstream *up, const char *reason)
{
	struct mailbox_msg *m;
	int64_t up_for = 0;
	int was_live = up->live_at != 0;

	lws_sul_cancel(&up->sul_deadline);
	lws_sul_cancel(&up->sul_ping);
	lws_sul_cancel(&up->sul_pong);
	up->wsi = NULL;
	free(up->rx);
	up->rx = NULL;
	up->rx_len = 0;
	up->ping_sent = 0;
	up->ping_unwritten = 0;
	up->rx_paused = 0;
	while ((m = STAILQ_FIRST(&up->writes)) != NULL) {
		STAILQ_REMOVE_HEAD(&up->writes, entry);
		upstream_return(up, m);
	}
	if (was_live) {
		up_for = util_now_ms() - up->live_at;
		up->live_at = 0;
		m = mailbox_msg_new(MAILBOX_SESSION_DOWN);
		m->session = up->session;
		m->text = xstrdup(reason);
		upstream_tell(up, m);
		if (up_for >= up->p.reconnect_reset)
			backoff_reset(&up->backoff);
	}
	if (up->stopping) {
		log_info("upstream: connection closed");
		upstream_finish(up);
		return;
	}
	if (up->end_prompt &&
	    backoff_ceiling(&up->backoff) <= up->p.reconnect_min)
		upstream_retry(up, 0, "%s", reason);
	else
		upstream_backoff(up, 0, reason);
}

/*
 * Give up on this session.  graceful: send a Close and wait a moment for
 * Slack's; otherwise drop the socket at once (it is presumed dead).
 */
static void
upstream_session_lost(struct upstream *up, int graceful, const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	if (up->wsi == NULL) {
		upstream_session_end(up, reason);
		return;
	}
	if (graceful && up->phase != PHASE_CLOSING &&
	    (up->phase == PHASE_LIVE || up->phase == PHASE_HELLO)) {
		free(up->end_reason);
		up->end_reason = xstrdup(reason);
		up->phase = PHASE_CLOSING;
		up->close_code = LWS_CLOSE_STATUS_NORMAL;
		lws_callback_on_writable(up->wsi);
		upstream_timer(up, &up->sul_deadline, UPSTREAM_CLOSE_WAIT,
		    upstream_ws_deadline);
		return;
	}
	/* Kill it now; the CLIENT_CLOSED callback is ignored. */
	lws_set_opaque_user_data(up->wsi, NULL);
	lws_set_timeout(up->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	lws_cancel_service(up->ctx);
	upstream_session_end(up, reason);
}

static void
upstream_pong_deadline(lws_sorted_usec_list_t *sul)
{
	struct upstream *up = lws_container_of(sul, struct upstream, sul_pong);

	if (up->phase != PHASE_LIVE || up->ping_sent == 0)
		return;
	upstream_session_lost(up, 0, "no pong from Slack within %.1f s",
	    (double)up->p.pong_timeout / 1000);
}

static void
upstream_ping(lws_sorted_usec_list_t *sul)
{
	struct upstream *up = lws_container_of(sul, struct upstream, sul_ping);

	if (up->phase != PHASE_LIVE)
		return;
	upstream_timer(up, &up->sul_ping, up->p.ping_interval, upstream_ping);
	if (up->ping_sent != 0)
		return; /* still waiting for the last pong: its deadline stands
		         */
	up->ping_id += 2;
	up->ping_sent = util_now_ms();
	up->ping_sent_us = util_now_us();
	up->ping_unwritten = 1;
	lws_callback_on_writable(up->wsi);
	/* The deadline counts from now, written or not: a stuck socket is dead.
	 */
	upstream_timer(
	    up, &up->sul_pong, up->p.pong_timeout, upstream_pong_deadline);
}

static void
upstream_live(struct upstream *up)
{
	up->phase = PHASE_LIVE;
	up->live_at = util_now_ms();
	lws_sul_cancel(&up->sul_deadline);
	log_info("upstream: connected to %s as %s (session %llu)",
	    up->rtm.team_name, up->rtm.self_name,
	    (unsigned long long)up->session);
	upstream_state(up, UPSTREAM_CONNECTED, 0, NULL);
	upstream_timer(up, &up->sul_ping, up->p.ping_interval, upstream_ping);
}

static void
upstream_pong(struct upstream *up)
{
	struct mailbox_msg *m;

	m = mailbox_msg_new(MAILBOX_PONG);
	m->id = util_now_us() - up->ping_sent_us;
	if (m->id < 1)
		m->id = 1;
	up->ping_sent = 0;
	lws_sul_cancel(&up->sul_pong);
	upstream_tell(up, m);
}

static void
upstream_event(struct upstream *up, const struct jscan *js, size_t len)
{
	struct mailbox_msg *m;

	m = mailbox_msg_new_data(MAILBOX_EVENT, len + 1);
	m->session = up->session;
	memcpy(m->data, up->rx, len);
	m->data[len] = '\n';
	memcpy(m->etype, js->type, sizeof m->etype);
	memcpy(m->channel, js->channel, sizeof m->channel);
	STAILQ_INSERT_TAIL(&up->batch, m, entry);
	up->batch_n++;
	up->batch_bytes += m->len;
	if (up->batch_n >= UPSTREAM_BATCH ||
	    up->batch_bytes >= UPSTREAM_BACKLOG / 8)
		upstream_flush(up);
}

static void upstream_dropped(struct upstream *up, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* An unusable frame: skip it, keep the session, say so. */
static void
upstream_dropped(struct upstream *up, const char *fmt, ...)
{
	struct mailbox_msg *m;
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	log_warnx("upstream: %s", why);
	m = mailbox_msg_new(MAILBOX_DROPPED);
	m->text = xstrdup(why);
	upstream_tell(up, m);
}

/* One complete frame from Slack, in up->rx. */
static void
upstream_frame(struct upstream *up)
{
	struct mailbox_msg *m;
	struct frame f;

	if (up->rx_over) {
		upstream_dropped(up,
		    "dropped an event larger than max_event "
		    "(%zu bytes)",
		    up->p.max_event);
		return;
	}
	if (up->rx_binary) {
		upstream_dropped(
		    up, "ignored a binary frame of %zu bytes", up->rx_len);
		return;
	}
	if (up->phase != PHASE_HELLO && up->phase != PHASE_LIVE)
		return;
	frame_classify(up->rx, up->rx_len, up->phase == PHASE_HELLO,
	    up->ping_sent != 0 ? up->ping_id : 0, &f);
	switch (f.action) {
	case FRAME_DROP:
		upstream_dropped(up,
		    "dropped a frame that is not a JSON "
		    "object (%s at byte %zu of %zu)",
		    f.why, f.js.error_at, up->rx_len);
		return;
	case FRAME_NOT_HELLO:
		upstream_session_lost(up, 1,
		    "first frame from Slack was "
		    "\"%.40s\", not hello",
		    f.js.type);
		return;
	case FRAME_HELLO:
		upstream_live(up);
		break; /* and forward it */
	case FRAME_PONG:
		upstream_pong(up);
		return;
	case FRAME_STALE:
		return;
	case FRAME_REPLY:
		m = mailbox_msg_new(MAILBOX_REPLY);
		m->id = f.js.reply_to;
		m->data = xmemdup(up->rx, f.len);
		m->len = f.len;
		upstream_tell(up, m);
		return;
	case FRAME_EVENT:
	case FRAME_LAST:
		break;
	}
	upstream_event(up, &f.js, f.len);
	if (f.action == FRAME_LAST) {
		up->end_prompt = 1;
		if (strcmp(f.js.type, "goodbye") == 0)
			upstream_session_lost(up, 1, "Slack said goodbye");
		else
			upstream_session_lost(up, 1,
			    "Slack sent \"%s\": %.200s", f.js.type, up->rx);
	}
}

static int
upstream_receive(
    struct upstream *up, struct lws *wsi, const void *in, size_t len)
{
	if (lws_is_first_fragment(wsi)) {
		up->rx_len = 0;
		up->rx_over = 0;
		up->rx_binary = lws_frame_is_binary(wsi);
	}
	if (!up->rx_over) {
		if (up->rx_len + len > up->p.max_event) {
			up->rx_over = 1;
			free(up->rx);
			up->rx = NULL;
			up->rx_len = 0;
		} else {
			up->rx = xrealloc(up->rx, up->rx_len + len + 1);
			memcpy(up->rx + up->rx_len, in, len);
			up->rx_len += len;
			up->rx[up->rx_len] = '\0';
		}
	}
	if (lws_is_final_fragment(wsi) &&
	    lws_remaining_packet_payload(wsi) == 0) {
		upstream_frame(up);
		if (up->rx != NULL && up->rx_len > 65536) {
			free(up->rx);
			up->rx = NULL;
		}
		up->rx_len = 0;
	}
	return 0;
}

static int
upstream_writeable(struct upstream *up, struct lws *wsi)
{
	struct mailbox_msg *m;
	unsigned char *p = up->tx + LWS_PRE;
	size_t len;

	if (up->phase == PHASE_CLOSING) {
		const char *why = "slackd closing";

		lws_close_reason(wsi, (enum lws_close_status)up->close_code,
		    (unsigned char *)why, strlen(why));
		return -1;
	}
	if (up->phase != PHASE_LIVE)
		return 0;
	if (up->ping_unwritten) {
		len = (size_t)snprintf((char *)p, UPSTREAM_TX_MAX,
		    "{\"id\":%lld,\"type\":\"ping\"}", (long long)up->ping_id);
		up->ping_unwritten = 0;
		if (lws_write(wsi, p, len, LWS_WRITE_TEXT) < (int)len)
			return -1;
	} else if ((m = STAILQ_FIRST(&up->writes)) != NULL) {
		STAILQ_REMOVE_HEAD(&up->writes, entry);
		if (m->len > UPSTREAM_TX_MAX) {
			upstream_return(up, m); /* cannot happen: checked */
			return 0;
		}
		memcpy(p, m->data, m->len);
		len = m->len;
		free(m->data);
		m->data = NULL;
		m->len = 0;
		m->type = MAILBOX_WRITTEN;
		m->session = up->session;
		if (lws_write(wsi, p, len, LWS_WRITE_TEXT) < (int)len) {
			upstream_tell(up, m);
			return -1;
		}
		upstream_tell(up, m);
	}
	if (up->ping_unwritten || !STAILQ_EMPTY(&up->writes))
		lws_callback_on_writable(wsi);
	return 0;
}

static void
upstream_peer_close(struct upstream *up, const void *in, size_t len)
{
	const unsigned char *p = in;

	if (len >= 2)
		up->peer_close_code = (p[0] << 8) | p[1];
}

static void
upstream_closed(struct upstream *up, const char *why)
{
	char reason[512];

	if (up->end_reason != NULL)
		snprintf(reason, sizeof reason, "%s", up->end_reason);
	else if (up->peer_close_code != 0)
		snprintf(reason, sizeof reason,
		    "Slack closed the connection "
		    "(code %d)",
		    up->peer_close_code);
	else
		snprintf(reason, sizeof reason, "%s", why);
	upstream_session_end(up, reason);
}

static void upstream_drain(struct upstream *);

static int
upstream_rtm_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct upstream *up;
	char why[512];

	if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
		if ((up = lws_context_user(lws_get_context(wsi))) != NULL)
			upstream_drain(up);
		return 0; /* never non-zero here */
	}
	up = lws_get_opaque_user_data(wsi);
	if (up == NULL || wsi != up->wsi)
		return lws_callback_http_dummy(wsi, reason, user, in, len);

	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		snprintf(why, sizeof why,
		    "WebSocket connection to %s failed: "
		    "%s",
		    up->ws.host, in != NULL ? (const char *)in : "error");
		up->wsi = NULL;
		upstream_session_end(up, why);
		return 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		up->session++;
		up->phase = PHASE_HELLO;
		upstream_timer(up, &up->sul_deadline, up->p.hello_timeout,
		    upstream_ws_deadline);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return upstream_receive(up, wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return upstream_writeable(up, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		upstream_peer_close(up, in, len);
		return 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
		up->wsi = NULL;
		upstream_closed(up, "connection to Slack lost");
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
	if (up->stopping)
		return;
	up->stopping = 1;
	upstream_state(up, UPSTREAM_STOPPING, 0, NULL);
	lws_sul_cancel(&up->sul_attempt);
	upstream_api_flush(up, "slackd is stopping");
	switch (up->phase) {
	case PHASE_API:
		webcall_free(up->connect_call);
		up->connect_call = NULL;
		upstream_finish(up);
		break;
	case PHASE_SOCKET:
		upstream_session_lost(up, 0, "slackd is stopping");
		break;
	case PHASE_HELLO:
	case PHASE_LIVE:
		upstream_session_lost(up, 1, "slackd is stopping");
		break;
	case PHASE_CLOSING:
		break;
	default:
		upstream_finish(up);
		break;
	}
}

/*
 * New settings (SIGHUP).  Timings apply from the next timer on; a new
 * token or api_url needs a new session, so reconnect at once.
 */
static void
upstream_reconfigure(struct upstream *up, struct upstream_params *np)
{
	int again;
	char *err = NULL;

	again = strcmp(np->api_url, up->p.api_url) != 0 ||
	    strcmp(np->token, up->p.token) != 0;
	free(np->ca_file); /* fixed for the context's life */
	np->ca_file = up->p.ca_file;
	up->p.ca_file = NULL;
	upstream_params_clear(&up->p);
	up->p = *np;
	memset(np, 0, sizeof *np);
	up->backoff.min = up->p.reconnect_min;
	up->backoff.max = up->p.reconnect_max;
	if (upstream_api(up, &err) != 0) { /* cannot happen: checked */
		log_warnx("upstream: %s", err);
		free(err);
	}
	if (up->phase == PHASE_LIVE && up->ping_sent == 0)
		upstream_timer(up, &up->sul_ping, up->p.ping_interval,
		    upstream_ping); /* the new interval, from now */
	if (!again || up->stopping || up->phase == PHASE_FAILED)
		return;
	log_info("upstream: token or api_url changed; reconnecting");
	switch (up->phase) {
	case PHASE_HELLO:
	case PHASE_LIVE:
		up->end_prompt = 2;
		upstream_session_lost(up, 1, "the configuration changed");
		break;
	case PHASE_SOCKET:
		up->end_prompt = 2;
		upstream_session_lost(up, 0, "the configuration changed");
		break;
	case PHASE_API:
		webcall_free(up->connect_call);
		up->connect_call = NULL;
		/* FALLTHROUGH */
	case PHASE_WAITING:
		backoff_reset(&up->backoff);
		upstream_retry(up, 0, "the configuration changed");
		break;
	default:
		break;
	}
}

static void
upstream_drain(struct upstream *up)
{
	struct mailbox_list list;
	struct mailbox_msg *m;

	if (up->rx_paused && !mailbox_full(up->out)) {
		up->rx_paused = 0;
		if (up->wsi != NULL)
			lws_rx_flow_control(up->wsi, 1);
	}

	mailbox_take(&up->inbox, &list);
	while ((m = STAILQ_FIRST(&list)) != NULL) {
		STAILQ_REMOVE_HEAD(&list, entry);
		switch (m->type) {
		case MAILBOX_SEND:
			if (up->phase != PHASE_LIVE || up->stopping) {
				upstream_return(up, m);
				break;
			}
			STAILQ_INSERT_TAIL(&up->writes, m, entry);
			lws_callback_on_writable(up->wsi);
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
			upstream_reconfigure(up, m->params);
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

/* ---- the thread ------------------------------------------------------- */

static struct lws_protocols upstream_protocols[] = {
	{ NULL, NULL, 0, 0, 0, NULL, 0 }, /* webcall_protocol, at start */
	{ "slackd-rtm", upstream_rtm_cb, 0, 65536, 0, NULL, 0 },
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

static void *
upstream_main(void *arg)
{
	struct upstream *up = arg;
	struct lws_context_creation_info info;
	struct mailbox_msg *m;
	struct mailbox_list list;

	memset(&info, 0, sizeof info);
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	if (up->p.ca_file != NULL) {
		info.client_ssl_ca_filepath = up->p.ca_file;
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
	info.timeout_secs = (unsigned)(up->p.connect_timeout / 1000 + 5);
	info.connect_timeout_secs =
	    (unsigned)((up->p.connect_timeout + 999) / 1000);
	if ((up->ctx = lws_create_context(&info)) == NULL) {
		upstream_started(up, 0,
		    "cannot create the libwebsockets "
		    "context (see the log above)");
		return NULL;
	}
	up->env.ctx = up->ctx;
	up->env.api = &up->api;
	up->env.p = &up->p;
	up->calls = webcall_q_new(&up->env, upstream_api_done, up);
	upstream_started(up, 1, NULL);

	upstream_timer(up, &up->sul_attempt, 0, upstream_attempt);
	while (up->phase != PHASE_DONE) {
		if (lws_service(up->ctx, 0) < 0)
			break;
		upstream_flush(up); /* what this round of reads brought */
	}

	/* Nothing more goes out: give back whatever is still queued. */
	pthread_mutex_lock(&up->lock);
	up->alive = 0;
	pthread_mutex_unlock(&up->lock);
	mailbox_take(&up->inbox, &list);
	STAILQ_CONCAT(&list, &up->writes);
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
	webcall_free(up->connect_call);
	up->connect_call = NULL;
	lws_context_destroy(up->ctx);
	up->ctx = NULL;
	webcall_q_free(up->calls);
	up->calls = NULL;
	upstream_tell(up, mailbox_msg_new(MAILBOX_STOPPED));
	return NULL;
}

static void
upstream_params_copy(
    struct upstream_params *to, const struct upstream_params *from)
{
	*to = *from;
	to->api_url = xstrdup(from->api_url);
	to->ca_file = from->ca_file != NULL ? xstrdup(from->ca_file) : NULL;
	to->token = token_secret_dup(from->token);
}

static void
upstream_params_clear(struct upstream_params *p)
{
	free(p->api_url);
	free(p->ca_file);
	token_secret_free(p->token);
	memset(p, 0, sizeof *p);
}

/* A copy for MAILBOX_CONFIG; the upstream thread takes it over. */
struct upstream_params *
upstream_params_dup(const struct upstream_params *p)
{
	struct upstream_params *copy;

	copy = xcalloc(1, sizeof *copy);
	upstream_params_copy(copy, p);
	return copy;
}

void
upstream_params_free(struct upstream_params *p)
{
	if (p == NULL)
		return;
	upstream_params_clear(p);
	free(p);
}

static void
upstream_free(struct upstream *up)
{
	upstream_params_clear(&up->p);
	webapi_url_free(&up->api);
	webapi_url_free(&up->ws);
	webapi_connect_free(&up->rtm);
	free(up->rx);
	free(up->end_reason);
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
	if (webapi_parse_url(up->p.api_url, 0, &up->api, err) != 0)
		return -1;
	if (up->api.path[strlen(up->api.path) - 1] != '/') {
		xasprintf(&path, "%s/", up->api.path);
		free(up->api.path);
		up->api.path = path;
	}
	return 0;
}

/*
 * Start the upstream thread.  Returns NULL with *err if it cannot run.
 * Must be called before any other thread exists that could take our
 * signals, and after the lws log level is set.
 */
struct upstream *
upstream_start(const struct upstream_params *p, struct mailbox *out, char **err)
{
	struct upstream *up;
	sigset_t all, old;
	int rc;

	up = xcalloc(1, sizeof *up);
	upstream_params_copy(&up->p, p);
	up->out = out;
	up->ping_id = 0;
	up->reported = UPSTREAM_CONNECTING;
	STAILQ_INIT(&up->writes);
	STAILQ_INIT(&up->batch);
	pthread_mutex_init(&up->lock, NULL);
	pthread_cond_init(&up->cond, NULL);
	mailbox_init(&up->inbox, upstream_wake, up);
	backoff_init(
	    &up->backoff, p->reconnect_min, p->reconnect_max, util_random64());
	if (upstream_api(up, err) != 0) {
		upstream_free(up);
		return NULL;
	}
	lws_set_log_level(p->lws_log_level, log_lws);

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
	if (up->started > 0)
		mailbox_set_limit(out, UPSTREAM_BACKLOG, upstream_wake, up);
	if (up->started < 0) {
		*err = xstrdup(up->start_error);
		pthread_join(up->thread, NULL);
		upstream_free(up);
		return NULL;
	}
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
