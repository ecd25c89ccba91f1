/*
 * Requests from clients that need Slack: messages and typing over RTM,
 * chat.postMessage (slackd.post), other Web API calls (slackd.api), and
 * the names lists (slackd.names).
 *
 * An RTM request gets an odd upstream id (the upstream thread's pings are
 * even) and moves through
 *
 *   RESOLVING --(target resolved to a conversation id)--> QUEUED
 *   QUEUED --(connected, channel bucket has a token)--> HANDED
 *   HANDED --(upstream wrote it)--> WRITTEN --(Slack's reply)--> answered
 *   HANDED --(connection gone before writing)--> QUEUED again
 *   WRITTEN --(connection lost / ack_timeout)--> "not confirmed"
 *
 * so nothing is lost silently and nothing is resent silently: a request is
 * sent again only if it never reached the wire.  A post goes RESOLVING ->
 * QUEUED -> CALLING (chat.postMessage) -> answered; a slackd.api call is
 * CALLING from the start, and a slackd.names request is LISTING until its
 * list is loaded.  Every request with an id gets exactly one reply.  The
 * queue is bounded (queue_max) and a request waits at most queue_timeout;
 * each channel has a token bucket (send_rate, send_burst), shared by
 * messages and posts, because Slack allows about one message per second
 * per channel.  Messages whose client has gone are still sent (a request
 * is a command, like a mail handed to smtpd); only the reply is dropped.
 * Asked to stop, slackd first lets the messages and posts still queued or
 * unacknowledged go, for up to drain_timeout (outbox_drain()).
 *
 * Under Socket Mode nothing is sent over the WebSocket: a message is a
 * post (chat.postMessage with the bot token: same queue, rate limit and
 * names resolution) whose reply has RTM's shape, {"ok":true,"reply_to":N,
 * "ts":…,"text":…}, and typing is refused (Slack apps have no typing
 * indicators).  Like any Web API write, a post that may have reached
 * Slack is never repeated.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "slackd.h"

enum outbox_state {
	OUTBOX_RESOLVING, /* waiting for names.c */
	OUTBOX_QUEUED,
	OUTBOX_HANDED,  /* with the upstream thread */
	OUTBOX_WRITTEN, /* on the wire, waiting for the ack */
	OUTBOX_CALLING, /* a Web API call in flight */
	OUTBOX_LISTING, /* slackd.names waiting for a load */
};

struct outbox_req {
	TAILQ_ENTRY(outbox_req) entry; /* queue, sent or calls */
	struct client *client;         /* NULL once it has gone */
	struct json_object *client_id; /* owned, NULL if none */
	struct request r;              /* r.obj owned */
	int64_t id;
	enum outbox_state state;
	char channel[PROTOCOL_MAX_TARGET + 1];
	struct names_wait *resolving;
	uint64_t call;
	char *frame;
	size_t len;
	int64_t queued_at;
	int64_t written_at;
	uint64_t session;
};
TAILQ_HEAD(outbox_list, outbox_req);

static struct outbox_list outbox_queue = TAILQ_HEAD_INITIALIZER(outbox_queue);
static struct outbox_list outbox_sent = TAILQ_HEAD_INITIALIZER(outbox_sent);
static struct outbox_list outbox_calls = TAILQ_HEAD_INITIALIZER(outbox_calls);
static u_int outbox_nqueue;          /* RESOLVING, QUEUED, HANDED */
static u_int outbox_nsent;           /* WRITTEN */
static u_int outbox_ncalls;          /* CALLING, LISTING */
static uint64_t outbox_count_sent;   /* messages and posts Slack took */
static uint64_t outbox_count_failed; /* and those that failed */
static int64_t outbox_next_id = 1;
static struct ratelimit *outbox_rl;
static struct event *outbox_timer;
static int64_t outbox_rate_at = -1;   /* when a held-back request may go */
static struct event *outbox_drain_ev; /* shutting down: drain_timeout */
static void (*outbox_drained)(void);  /* … then call this */

static void outbox_arm(void);
static void outbox_run(void);
static void outbox_drain_check(void);

void
outbox_stats(struct outbox_stats *st)
{
	st->queued = outbox_nqueue;
	st->inflight = outbox_nsent + outbox_ncalls;
	st->sent = outbox_count_sent;
	st->failed = outbox_count_failed;
}

static void outbox_timer_cb(evutil_socket_t, short, void *);

void
outbox_init(const struct config *conf)
{
	outbox_rl = ratelimit_new(conf->send_rate, conf->send_burst);
	outbox_timer = evtimer_new(slackd_base, outbox_timer_cb, NULL);
}

void
outbox_reconfigure(const struct config *conf)
{
	ratelimit_set(outbox_rl, conf->send_rate, conf->send_burst);
	outbox_arm(); /* ack_timeout or queue_timeout may be shorter now */
}

static struct outbox_list *
outbox_list_of(const struct outbox_req *req, u_int **count)
{
	switch (req->state) {
	case OUTBOX_WRITTEN:
		*count = &outbox_nsent;
		return &outbox_sent;
	case OUTBOX_CALLING:
	case OUTBOX_LISTING:
		*count = &outbox_ncalls;
		return &outbox_calls;
	default:
		*count = &outbox_nqueue;
		return &outbox_queue;
	}
}

static void
outbox_link(struct outbox_req *req, enum outbox_state state)
{
	struct outbox_list *list;
	u_int *count;

	req->state = state;
	list = outbox_list_of(req, &count);
	TAILQ_INSERT_TAIL(list, req, entry);
	(*count)++;
}

static void
outbox_unlink(struct outbox_req *req)
{
	struct outbox_list *list;
	u_int *count;

	list = outbox_list_of(req, &count);
	TAILQ_REMOVE(list, req, entry);
	(*count)--;
}

/* Move req to another state (and list, if that changes). */
static void
outbox_move(struct outbox_req *req, enum outbox_state state)
{
	outbox_unlink(req);
	outbox_link(req, state);
}

static void
outbox_free(struct outbox_req *req)
{
	names_cancel(req->resolving);
	if (req->call != 0)
		api_forget(req->call);
	json_object_put(req->client_id);
	json_object_put(req->r.obj);
	free(req->frame);
	free(req);
	if (outbox_drained != NULL)
		outbox_drain_check();
}

/* Goes out with chat.postMessage (slackd.post; message under Socket Mode). */
static int
outbox_is_post(const struct outbox_req *req)
{
	return req->r.kind == REQUEST_POST ||
	    (req->r.kind == REQUEST_MESSAGE && status_now.socket_mode);
}

static int
outbox_is_message(const struct outbox_req *req)
{
	return req->r.kind == REQUEST_MESSAGE || req->r.kind == REQUEST_POST;
}

/* Answer req with an error (if its client is still there) and drop it. */
static void outbox_fail(struct outbox_req *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
outbox_fail(struct outbox_req *req, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (outbox_is_message(req)) {
		outbox_count_failed++;
		log_info("message %lld to %s failed: %s", (long long)req->id,
		    req->channel[0] != '\0' ? req->channel : req->r.channel,
		    msg);
	}
	if (req->client != NULL)
		client_error(req->client, req->client_id, code, "%s", msg);
	outbox_unlink(req);
	outbox_free(req);
}

/* Answer req with o (taken), given the client's id, and drop it. */
static void
outbox_answer(struct outbox_req *req, struct json_object *o)
{
	struct json_object *ok;

	if (req->client != NULL) {
		if (req->client_id != NULL)
			json_object_object_add(
			    o, "reply_to", json_object_get(req->client_id));
		if (req->client_id != NULL ||
		    !json_object_object_get_ex(o, "ok", &ok) ||
		    !json_object_get_boolean(ok))
			client_send_json(req->client, o);
	}
	json_object_put(o);
	outbox_unlink(req);
	outbox_free(req);
}

static struct outbox_req *
outbox_find(struct outbox_list *list, int64_t id)
{
	struct outbox_req *req;

	TAILQ_FOREACH(req, list, entry) {
		if (req->id == id)
			return req;
	}
	return NULL;
}

/* ---- chat.postMessage ------------------------------------------------- */

static void
outbox_posted(void *arg, const struct api_result *r)
{
	struct outbox_req *req = arg;
	struct json_object *o, *v;

	req->call = 0;
	if (r->error != NULL) {
		outbox_fail(req, PROTOCOL_E_NOT_CONFIRMED,
		    "not confirmed: chat.postMessage got no answer (%s); the message may or may not have been posted",
		    r->error);
		return;
	}
	if (!r->ok) {
		outbox_fail(req, PROTOCOL_E_SLACK_API, "%s", r->slack_error);
		return;
	}
	outbox_count_sent++;
	o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	if (json_object_object_get_ex(r->obj, "ts", &v))
		json_object_object_add(o, "ts", json_object_get(v));
	if (req->r.kind == REQUEST_MESSAGE) { /* RTM's reply shape */
		json_object_object_add(o, "text",
		    json_object_new_string(
		        req->r.text != NULL ? req->r.text : ""));
		log_debug("message %lld to %s posted", (long long)req->id,
		    req->channel);
		outbox_answer(req, o);
		return;
	}
	json_object_object_add(
	    o, "channel", json_object_new_string(req->channel));
	if (json_object_object_get_ex(r->obj, "message", &v))
		json_object_object_add(o, "message", json_object_get(v));
	log_debug(
	    "message %lld to %s posted", (long long)req->id, req->channel);
	outbox_answer(req, o);
}

static void
outbox_post(struct outbox_req *req)
{
	char *body;
	size_t len;

	outbox_move(req, OUTBOX_CALLING);
	body = request_post_body(&req->r, req->channel, &len);
	req->call =
	    api_call("chat.postMessage", body, len, 1, outbox_posted, req);
	free(body);
}

/* ---- sending ---------------------------------------------------------- */

static void
outbox_hand(struct outbox_req *req)
{
	struct mailbox_msg *m;

	req->state = OUTBOX_HANDED;
	m = mailbox_msg_new(MAILBOX_SEND);
	m->u.frame.id = req->id;
	m->data = xmemdup(req->frame, req->len);
	m->len = req->len;
	slackd_to_upstream(m);
}

/*
 * nats_ha, standing by: what has not gone to Slack goes to the leader
 * instead (nats_forward(), which answers the client), here and not from
 * the leader it was.  A request already handed to the upstream thread
 * comes back (outbox_returned()) unless it was written, and goes the same
 * way; one written is answered as before, never sent twice.
 */
static void
outbox_to_leader(void)
{
	struct outbox_req *req, *next;
	const char *line;
	size_t len;

	TAILQ_FOREACH_SAFE(req, &outbox_queue, entry, next) {
		if (req->state != OUTBOX_RESOLVING &&
		    req->state != OUTBOX_QUEUED)
			continue;
		line = json_object_to_json_string_length(req->r.obj,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
		    &len);
		if (!nats_forward(req->client, &req->r, line, len))
			continue;
		if (req->id != 0)
			log_info(
			    "message %lld to %s: this slackd stands by, forwarded to the leader",
			    (long long)req->id, req->r.channel);
		outbox_unlink(req);
		outbox_free(req);
	}
}

/* nats_ha: this slackd leads or stands by now. */
void
outbox_lead(int lead)
{
	if (!lead)
		outbox_to_leader();
	else
		outbox_run();
}

/* Hand over whatever may go now; arm the timer for what has to wait. */
static void
outbox_run(void)
{
	struct outbox_req *req, *next;
	int64_t now = util_now_ms(), wait, soonest = -1;
	int connected =
	    status_now.state == UPSTREAM_CONNECTED && slackd_upstream_running();

	if (nats_standby()) {
		outbox_to_leader();
		outbox_arm();
		return;
	}
	outbox_rate_at = -1;
	TAILQ_FOREACH_SAFE(req, &outbox_queue, entry, next) {
		if (req->state != OUTBOX_QUEUED ||
		    (slackd_stopping && outbox_drained == NULL))
			continue;
		if (!outbox_is_post(req) && !connected)
			continue;
		if (req->r.kind != REQUEST_TYPING &&
		    !ratelimit_take(outbox_rl, req->channel, now, &wait)) {
			if (soonest < 0 || wait < soonest)
				soonest = wait;
			continue;
		}
		if (outbox_is_post(req))
			outbox_post(req);
		else
			outbox_hand(req);
	}
	if (soonest >= 0)
		outbox_rate_at = now + soonest;
	outbox_arm();
}

/*
 * One timer covers three deadlines: the next rate-limit token for a held
 * back request, the oldest written request's ack_timeout and the oldest
 * waiting request's queue_timeout.
 */
static void
outbox_arm(void)
{
	struct outbox_req *req;
	int64_t now = util_now_ms(), next = INT64_MAX, t;
	struct timeval tv;

	if (outbox_rate_at >= 0)
		next = outbox_rate_at - now;
	if ((req = TAILQ_FIRST(&outbox_sent)) != NULL) {
		t = req->written_at + slackd_conf->ack_timeout - now;
		if (t < next)
			next = t;
	}
	if (slackd_conf->queue_timeout > 0) {
		TAILQ_FOREACH(req, &outbox_queue, entry) {
			if (req->state == OUTBOX_HANDED)
				continue;
			t = req->queued_at + slackd_conf->queue_timeout - now;
			if (t < next)
				next = t;
			break;
		}
	}
	if (next == INT64_MAX) {
		evtimer_del(outbox_timer);
		return;
	}
	if (next < 0)
		next = 0;
	tv.tv_sec = next / 1000;
	tv.tv_usec = (next % 1000) * 1000;
	evtimer_add(outbox_timer, &tv);
}

static void
outbox_expire(void)
{
	struct outbox_req *req, *next;
	int64_t now = util_now_ms();

	while ((req = TAILQ_FIRST(&outbox_sent)) != NULL &&
	    now - req->written_at >= slackd_conf->ack_timeout)
		outbox_fail(req, PROTOCOL_E_NOT_CONFIRMED,
		    "not confirmed: Slack did not acknowledge the message within %.0f s; it may or may not have been posted",
		    (double)slackd_conf->ack_timeout / 1000);
	if (slackd_conf->queue_timeout <= 0)
		return;
	TAILQ_FOREACH_SAFE(req, &outbox_queue, entry, next) {
		if (req->state != OUTBOX_HANDED &&
		    now - req->queued_at >= slackd_conf->queue_timeout)
			outbox_fail(req, PROTOCOL_E_TIMEOUT,
			    "not sent: could not %s within %.0f s (queue_timeout); last problem: %s",
			    req->state == OUTBOX_RESOLVING
			        ? "find where it goes"
			        : "reach Slack",
			    (double)slackd_conf->queue_timeout / 1000,
			    status_now.reason != NULL ? status_now.reason
			                              : "none");
	}
}

static void
outbox_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	outbox_expire();
	outbox_run();
}

/* The target of req is known: build its frame and queue it. */
static void
outbox_resolved(void *arg, const char *channel, int code, const char *error)
{
	struct outbox_req *req = arg;

	req->resolving = NULL;
	if (error != NULL) {
		outbox_fail(req, code, "not sent: %s", error);
		return;
	}
	snprintf(req->channel, sizeof req->channel, "%s", channel);
	if (!outbox_is_post(req)) {
		req->frame =
		    request_frame(&req->r, req->channel, req->id, &req->len);
		if (req->len > PROTOCOL_RTM_MAX_FRAME) {
			outbox_fail(req, PROTOCOL_E_TOO_LONG,
			    "message too long: it makes a %zu-byte RTM frame and Slack allows at most %d bytes (the text is %zu bytes; JSON escaping adds the rest); slackd.post sends longer ones",
			    req->len, PROTOCOL_RTM_MAX_FRAME,
			    req->r.text != NULL ? strlen(req->r.text) : 0);
			return;
		}
	}
	req->state = OUTBOX_QUEUED;
	outbox_run();
}

static struct outbox_req *
outbox_new(struct client *c, const struct request *r)
{
	struct outbox_req *req;

	req = xcalloc(1, sizeof *req);
	req->client = c;
	req->client_id = r->id != NULL ? json_object_get(r->id) : NULL;
	req->r = *r;
	json_object_get(req->r.obj); /* the fields point into it */
	req->queued_at = util_now_ms();
	return req;
}

/* ---- slackd.api and slackd.names ----------------------------------------- */

static void
outbox_called(void *arg, const struct api_result *r)
{
	struct outbox_req *req = arg;
	struct json_object *o;

	req->call = 0;
	if (r->error != NULL) {
		outbox_fail(req, PROTOCOL_E_NOT_CONFIRMED,
		    "%s got no answer (%s); if it changes anything, it may or may not have",
		    req->r.method, r->error);
		return;
	}
	/* Slack's answer as it is, with the client's id and our type. */
	o = json_object_get(r->obj);
	json_object_object_del(o, "reply_to");
	json_object_object_add(o, "type", json_object_new_string(PROTOCOL_API));
	if (!r->ok && req->client_id == NULL)
		json_object_object_add(
		    o, "type", json_object_new_string(PROTOCOL_ERROR));
	outbox_answer(req, o);
}

static void
outbox_api(struct outbox_req *req)
{
	char *body;
	size_t len;

	outbox_link(req, OUTBOX_CALLING);
	body = request_api_body(&req->r, &len);
	req->call = api_call(req->r.method, body, len, 0, outbox_called, req);
	free(body);
}

/* Answer a slackd.names request if its list is there (or failed). */
static void
outbox_names(struct outbox_req *req)
{
	struct json_object *o;
	const char *error;
	int users = req->r.users;

	switch (names_list_state(users, &error)) {
	case 1:
		/* Loading: slackd_names_loaded() calls outbox_names_ready(). */
		return;
	case -1:
		outbox_fail(req, PROTOCOL_E_UPSTREAM_FAILED,
		    "cannot load the %s from Slack: %s",
		    users ? "users" : "channels", error);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(
	    o, "type", json_object_new_string(PROTOCOL_NAMES));
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(
	    o, "kind", json_object_new_string(users ? "users" : "channels"));
	json_object_object_add(
	    o, users ? "users" : "channels", names_list_json(users));
	outbox_answer(req, o);
}

/* A names list finished loading: answer whoever waited for it. */
void
outbox_names_ready(void)
{
	struct outbox_req *req, *next;

	TAILQ_FOREACH_SAFE(req, &outbox_calls, entry, next) {
		if (req->state == OUTBOX_LISTING)
			outbox_names(req);
	}
}

/*
 * "queued_notice": tell the client its message is in the queue, under the
 * number slackd's log uses for it ("message 17 to C1 posted"), so that a
 * client that stops waiting can say what it left behind.  A notice, not a
 * reply: the reply still comes, once.
 */
static void
outbox_queued(struct client *c, const struct request *r, int64_t id)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(
	    o, "type", json_object_new_string(PROTOCOL_QUEUED));
	if (r->id != NULL)
		json_object_object_add(o, "request", json_object_get(r->id));
	json_object_object_add(o, "message", json_object_new_int64(id));
	client_send_json(c, o);
	json_object_put(o);
}

/*
 * A request from client c that needs Slack or its names.  Answers errors
 * itself; otherwise the reply comes when Slack answers.
 */
void
outbox_submit(struct client *c, const struct request *r)
{
	struct outbox_req *req;

	if (r->kind == REQUEST_API &&
	    !config_api_allowed(slackd_conf, r->method)) {
		client_error(c, r->id, PROTOCOL_E_NOT_ALLOWED,
		    "%s is not in api_allow (%s)", r->method,
		    slackd_conf->api_allow != NULL ? slackd_conf->api_allow
		                                   : "nothing is allowed");
		return;
	}
	if (status_now.state == UPSTREAM_FAILED) {
		client_error(c, r->id, PROTOCOL_E_UPSTREAM_FAILED,
		    "not sent: %s",
		    status_now.reason != NULL ? status_now.reason
		                              : "Slack refused slackd");
		return;
	}
	if (r->kind == REQUEST_TYPING && status_now.socket_mode) {
		client_error(c, r->id, PROTOCOL_E_BAD_REQUEST,
		    "typing indicators do not exist for Slack apps: slackd runs Socket Mode (upstream = socket), where Slack has no way to send them");
		return;
	}
	if (r->kind == REQUEST_TYPING &&
	    status_now.state != UPSTREAM_CONNECTED) {
		client_error(c, r->id, PROTOCOL_E_NOT_CONNECTED,
		    "not connected to Slack; typing indicators are not queued");
		return;
	}
	if ((r->kind == REQUEST_MESSAGE || r->kind == REQUEST_POST) &&
	    outbox_nqueue + outbox_nsent + outbox_ncalls >=
	        (u_int)slackd_conf->queue_max) {
		client_error(c, r->id, PROTOCOL_E_QUEUE_FULL,
		    "not sent: the outbound queue is full (%u requests waiting, queue_max %d); retry later",
		    outbox_nqueue + outbox_nsent + outbox_ncalls,
		    slackd_conf->queue_max);
		return;
	}
	req = outbox_new(c, r);
	switch (r->kind) {
	case REQUEST_API:
		outbox_api(req);
		return;
	case REQUEST_NAMES:
		outbox_link(req, OUTBOX_LISTING);
		outbox_names(req);
		return;
	default:
		break;
	}
	req->id = outbox_next_id;
	outbox_next_id += 2;
	if (r->queued_notice == 1)
		outbox_queued(c, r, req->id);
	outbox_link(req, OUTBOX_RESOLVING);
	/* outbox_resolved() runs later, from the loop. */
	req->resolving = names_resolve(r->channel, outbox_resolved, req);
	outbox_arm(); /* queue_timeout covers the wait */
}

/* Connected (again): send what waited. */
void
outbox_connected(void)
{
	outbox_run();
}

static void
outbox_typing_done(struct outbox_req *req)
{
	struct json_object *o;

	o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	outbox_answer(req, o);
}

void
outbox_written(int64_t id, uint64_t session)
{
	struct outbox_req *req;

	if ((req = outbox_find(&outbox_queue, id)) == NULL ||
	    req->state != OUTBOX_HANDED)
		return;
	free(req->frame);
	req->frame = NULL;
	if (req->r.kind == REQUEST_TYPING) {
		outbox_typing_done(req); /* Slack does not answer typing */
		return;
	}
	outbox_move(req, OUTBOX_WRITTEN);
	req->session = session;
	req->written_at = util_now_ms();
	if (outbox_nsent == 1)
		outbox_arm();
}

/* Upstream could not write it: back in line, in its old place. */
void
outbox_returned(int64_t id)
{
	struct outbox_req *req;

	if ((req = outbox_find(&outbox_queue, id)) == NULL ||
	    req->state != OUTBOX_HANDED)
		return;
	if (req->r.kind == REQUEST_TYPING) {
		outbox_fail(req, PROTOCOL_E_NOT_CONNECTED,
		    "not sent: the connection to Slack was lost; typing indicators are not queued");
		return;
	}
	req->state = OUTBOX_QUEUED;
	outbox_run();
}

/* Slack's reply to one of ours: pass it on with the client's id. */
void
outbox_reply(int64_t id, const char *data, size_t len)
{
	struct outbox_req *req;
	struct json_object *o, *ok, *ts;

	if ((req = outbox_find(&outbox_sent, id)) == NULL) {
		log_debug(
		    "reply to %lld from Slack matches no request (after ack_timeout?)",
		    (long long)id);
		return;
	}
	o = json_tokener_parse(data); /* jscan checked it */
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return;
	}
	if (json_object_object_get_ex(o, "ok", &ok) &&
	    json_object_get_boolean(ok)) {
		outbox_count_sent++;
		if (json_object_object_get_ex(o, "ts", &ts))
			log_debug("message %lld to %s posted, ts %s",
			    (long long)id, req->channel,
			    json_object_get_string(ts));
	} else {
		outbox_count_failed++;
		log_info("message %lld to %s refused by Slack: %s",
		    (long long)id, req->channel, data);
	}
	json_object_object_del(o, "reply_to");
	if (req->client_id == NULL && !json_object_get_boolean(ok)) {
		/* No id to reply to: Slack's refusal still reaches the client.
		 */
		json_object_object_add(
		    o, "type", json_object_new_string(PROTOCOL_ERROR));
		json_object_object_add(
		    o, "channel", json_object_new_string(req->channel));
	}
	outbox_answer(req, o);
	if (TAILQ_EMPTY(&outbox_sent))
		outbox_arm();
	(void)len;
}

/* The session those requests were written in is gone; so is their ack. */
void
outbox_session_down(uint64_t session, const char *reason)
{
	struct outbox_req *req, *next;

	TAILQ_FOREACH_SAFE(req, &outbox_sent, entry, next) {
		if (req->session == session)
			outbox_fail(req, PROTOCOL_E_NOT_CONFIRMED,
			    "not confirmed: the connection to Slack was lost (%s) after the message was sent; it may or may not have been posted",
			    reason);
	}
}

static void
outbox_detach_list(struct outbox_list *list, struct client *c)
{
	struct outbox_req *req, *next;

	TAILQ_FOREACH_SAFE(req, list, entry, next) {
		if (req->client != c)
			continue;
		req->client = NULL;
		if (req->r.kind == REQUEST_API ||
		    req->r.kind == REQUEST_NAMES) {
			outbox_unlink(req);
			outbox_free(req);
		}
	}
}

/*
 * c is going away: its messages stay, their replies go nowhere; what it
 * asked only for itself (names, other Web API calls) is dropped.
 */
void
outbox_detach(struct client *c)
{
	outbox_detach_list(&outbox_queue, c);
	outbox_detach_list(&outbox_sent, c);
	outbox_detach_list(&outbox_calls, c);
}

/* ---- draining at shutdown ------------------------------------------------ */

/* Messages and posts not answered yet. */
static u_int
outbox_undelivered(void)
{
	struct outbox_list *lists[] = { &outbox_queue, &outbox_sent,
		&outbox_calls };
	struct outbox_req *req;
	u_int i, n = 0;

	for (i = 0; i < nitems(lists); i++) {
		TAILQ_FOREACH(req, lists[i], entry)
			n += outbox_is_message(req);
	}
	return n;
}

/* A request was answered while draining: was it the last? */
static void
outbox_drain_check(void)
{
	struct timeval tv = { 0, 0 };

	if (outbox_undelivered() == 0)
		evtimer_add(outbox_drain_ev, &tv); /* from the loop, not here */
}

static void
outbox_drain_cb(evutil_socket_t fd, short events, void *arg)
{
	void (*done)(void) = outbox_drained;
	u_int left = outbox_undelivered();

	if (left > 0)
		log_warnx(
		    "drain_timeout: %u message%s still not sent or not acknowledged; they are answered as slackd stops",
		    left, left == 1 ? "" : "s");
	else
		log_info("every queued message was sent and answered");
	outbox_drained = NULL;
	event_free(outbox_drain_ev);
	outbox_drain_ev = NULL;
	done();
}

/*
 * Shutting down (slackd_stopping is set): give the messages and posts
 * still queued or waiting for their ack up to timeout ms to be sent and
 * answered; then, or once none is left, done() runs from the loop.
 * Returns 0 (done() is not called) when there is nothing to wait for.
 */
int
outbox_drain(int64_t timeout, void (*done)(void))
{
	struct timeval tv;
	u_int n = outbox_undelivered();

	if (timeout <= 0 || n == 0 || outbox_drained != NULL)
		return 0;
	log_info(
	    "waiting up to %.1f s (drain_timeout) for %u message%s to be sent and acknowledged",
	    (double)timeout / 1000, n, n == 1 ? "" : "s");
	outbox_drained = done;
	outbox_drain_ev = evtimer_new(slackd_base, outbox_drain_cb, NULL);
	tv.tv_sec = timeout / 1000;
	tv.tv_usec = (timeout % 1000) * 1000;
	evtimer_add(outbox_drain_ev, &tv);
	outbox_run();
	return 1;
}

/* The upstream thread has stopped: everything left gets its answer. */
void
outbox_shutdown(void)
{
	struct outbox_req *req;

	while ((req = TAILQ_FIRST(&outbox_sent)) != NULL)
		outbox_fail(req, PROTOCOL_E_NOT_CONFIRMED,
		    "not confirmed: slackd shut down before Slack acknowledged the message");
	while ((req = TAILQ_FIRST(&outbox_calls)) != NULL)
		outbox_fail(req,
		    req->state == OUTBOX_CALLING ? PROTOCOL_E_NOT_CONFIRMED
		                                 : PROTOCOL_E_SHUTTING_DOWN,
		    req->state == OUTBOX_CALLING
		        ? "not confirmed: slackd shut down before Slack answered"
		        : "slackd is shutting down");
	while ((req = TAILQ_FIRST(&outbox_queue)) != NULL)
		outbox_fail(req, PROTOCOL_E_SHUTTING_DOWN,
		    "not sent: slackd is shutting down");
	if (outbox_drain_ev != NULL) {
		event_free(outbox_drain_ev);
		outbox_drain_ev = NULL;
	}
	outbox_drained = NULL;
	if (outbox_timer != NULL) {
		event_free(outbox_timer);
		outbox_timer = NULL;
	}
	ratelimit_free(outbox_rl);
	outbox_rl = NULL;
}
