/*
 * Outbound requests from clients to Slack.
 *
 * Each request gets an odd upstream id (the upstream thread's pings are
 * even) and moves through
 *
 *   QUEUED --(connected, channel bucket has a token)--> HANDED
 *   HANDED --(upstream wrote it)--> WRITTEN --(Slack's reply)--> answered
 *   HANDED --(connection gone before writing)--> QUEUED again
 *   WRITTEN --(connection lost / ack_timeout)--> "not confirmed"
 *
 * so nothing is lost silently and nothing is resent silently: a request is
 * sent again only if it never reached the wire.  Every request with an id
 * gets exactly one reply.  The queue is bounded (queue_max) and a request
 * waits at most queue_timeout; each channel has a token bucket (send_rate,
 * send_burst) because Slack allows about one message per second per
 * channel.  Requests whose client has gone are still sent (a request is a
 * command, like a mail handed to smtpd); only the reply is dropped.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "slackd.h"

enum outbox_state { OUTBOX_QUEUED, OUTBOX_HANDED, OUTBOX_WRITTEN };

struct outbox_req {
	TAILQ_ENTRY(outbox_req) entry;  /* queue or inflight */
	TAILQ_ENTRY(outbox_req) centry; /* client's reqs */
	struct client *client;
	struct json_object *client_id; /* owned, NULL if none */
	int64_t id;
	enum outbox_state state;
	enum request_kind kind;
	char channel[PROTOCOL_MAX_CHANNEL + 1];
	char *frame;
	size_t len;
	int64_t queued_at;
	int64_t written_at;
	uint64_t session;
};
TAILQ_HEAD(outbox_list, outbox_req);

static struct outbox_list outbox_queue = TAILQ_HEAD_INITIALIZER(outbox_queue);
static struct outbox_list outbox_sent = TAILQ_HEAD_INITIALIZER(outbox_sent);
static u_int outbox_nqueue;
static u_int outbox_nsent;
static int64_t outbox_next_id = 1;
static struct ratelimit *outbox_rl;
static struct event *outbox_timer;
static int64_t outbox_rate_at = -1; /* when a held-back request may go */

static void outbox_arm(void);

u_int
outbox_queued(void)
{
	return outbox_nqueue;
}

u_int
outbox_inflight(void)
{
	return outbox_nsent;
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

static void
outbox_free(struct outbox_req *req)
{
	if (req->client != NULL)
		TAILQ_REMOVE(&req->client->reqs, req, centry);
	json_object_put(req->client_id);
	free(req->frame);
	free(req);
}

static void
outbox_unlink(struct outbox_req *req)
{
	if (req->state == OUTBOX_WRITTEN) {
		TAILQ_REMOVE(&outbox_sent, req, entry);
		outbox_nsent--;
	} else {
		TAILQ_REMOVE(&outbox_queue, req, entry);
		outbox_nqueue--;
	}
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
	if (req->kind == REQUEST_MESSAGE) {
		status.failed++;
		log_info("message %lld to %s failed: %s", (long long)req->id,
		    req->channel, msg);
	}
	if (req->client != NULL)
		client_error(req->client, req->client_id, code, "%s", msg);
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

static void
outbox_hand(struct outbox_req *req)
{
	struct mailbox_msg *m;

	req->state = OUTBOX_HANDED;
	m = mailbox_msg_new(MAILBOX_SEND);
	m->id = req->id;
	m->data = xmemdup(req->frame, req->len);
	m->len = req->len;
	upstream_post(slackd_upstream, m);
}

/* Hand over whatever may go now; arm the timer for what has to wait. */
static void
outbox_run(void)
{
	struct outbox_req *req;
	int64_t now = util_now_ms(), wait, next = -1;

	outbox_rate_at = -1;
	if (status.state != UPSTREAM_CONNECTED || slackd_upstream == NULL ||
	    slackd_stopping) {
		outbox_arm();
		return;
	}
	TAILQ_FOREACH(req, &outbox_queue, entry) {
		if (req->state != OUTBOX_QUEUED)
			continue;
		if (req->kind == REQUEST_MESSAGE &&
		    !ratelimit_take(outbox_rl, req->channel, now, &wait)) {
			if (next < 0 || wait < next)
				next = wait;
			continue;
		}
		outbox_hand(req);
	}
	if (next >= 0)
		outbox_rate_at = now + next;
	outbox_arm();
}

/*
 * One timer covers three deadlines: the next rate-limit token for a held
 * back request, the oldest written request's ack_timeout and the oldest
 * queued request's queue_timeout.
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
			if (req->state != OUTBOX_QUEUED)
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
		    "not confirmed: "
		    "Slack did not acknowledge the message within %.0f s; it "
		    "may or may not have been posted",
		    (double)slackd_conf->ack_timeout / 1000);
	if (slackd_conf->queue_timeout <= 0)
		return;
	TAILQ_FOREACH_SAFE(req, &outbox_queue, entry, next) {
		if (req->state == OUTBOX_QUEUED &&
		    now - req->queued_at >= slackd_conf->queue_timeout)
			outbox_fail(req, PROTOCOL_E_TIMEOUT,
			    "not sent: could "
			    "not reach Slack within %.0f s (queue_timeout); "
			    "last problem: %s",
			    (double)slackd_conf->queue_timeout / 1000,
			    status.reason != NULL ? status.reason : "none");
	}
}

static void
outbox_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	outbox_expire();
	outbox_run();
}

/*
 * A message or typing request from client c.  Answers errors itself;
 * otherwise the reply comes when Slack answers.
 */
int
outbox_submit(struct client *c, const struct request *r)
{
	struct outbox_req *req;
	char *frame;
	size_t len;
	int64_t id;

	if (status.state == UPSTREAM_FAILED) {
		client_error(c, r->id, PROTOCOL_E_UPSTREAM_FAILED,
		    "not sent: "
		    "%s",
		    status.reason != NULL ? status.reason
		                          : "Slack refused slackd");
		return -1;
	}
	if (r->kind == REQUEST_TYPING && status.state != UPSTREAM_CONNECTED) {
		client_error(c, r->id, PROTOCOL_E_NOT_CONNECTED,
		    "not connected "
		    "to Slack; typing indicators are not queued");
		return -1;
	}
	if (r->kind == REQUEST_MESSAGE &&
	    outbox_nqueue + outbox_nsent >= (u_int)slackd_conf->queue_max) {
		client_error(c, r->id, PROTOCOL_E_QUEUE_FULL,
		    "not sent: the "
		    "outbound queue is full (%u requests waiting, queue_max "
		    "%d); retry later",
		    outbox_nqueue + outbox_nsent, slackd_conf->queue_max);
		return -1;
	}
	id = outbox_next_id;
	frame = request_frame(r, id, &len);
	if (len > PROTOCOL_RTM_MAX_FRAME) {
		client_error(c, r->id, PROTOCOL_E_TOO_LONG,
		    "message too long: "
		    "it makes a %zu-byte RTM frame and Slack allows at most %d "
		    "bytes (the text is %zu bytes; JSON escaping adds the "
		    "rest)",
		    len, PROTOCOL_RTM_MAX_FRAME,
		    r->text != NULL ? strlen(r->text) : 0);
		free(frame);
		return -1;
	}
	outbox_next_id += 2;

	req = xcalloc(1, sizeof *req);
	req->client = c;
	req->client_id = r->id != NULL ? json_object_get(r->id) : NULL;
	req->id = id;
	req->kind = r->kind;
	snprintf(req->channel, sizeof req->channel, "%s", r->channel);
	req->frame = frame;
	req->len = len;
	req->queued_at = util_now_ms();
	req->state = OUTBOX_QUEUED;
	TAILQ_INSERT_TAIL(&outbox_queue, req, entry);
	TAILQ_INSERT_TAIL(&c->reqs, req, centry);
	outbox_nqueue++;
	outbox_run();
	return 0;
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

	if (req->client != NULL && req->client_id != NULL) {
		o = json_object_new_object();
		json_object_object_add(o, "ok", json_object_new_boolean(1));
		json_object_object_add(
		    o, "reply_to", json_object_get(req->client_id));
		client_send_json(req->client, o);
		json_object_put(o);
	}
	outbox_free(req);
}

void
outbox_written(int64_t id, uint64_t session)
{
	struct outbox_req *req;

	if ((req = outbox_find(&outbox_queue, id)) == NULL ||
	    req->state != OUTBOX_HANDED)
		return;
	TAILQ_REMOVE(&outbox_queue, req, entry);
	outbox_nqueue--;
	free(req->frame);
	req->frame = NULL;
	if (req->kind == REQUEST_TYPING) {
		outbox_typing_done(req); /* Slack does not answer typing */
		return;
	}
	req->state = OUTBOX_WRITTEN;
	req->session = session;
	req->written_at = util_now_ms();
	TAILQ_INSERT_TAIL(&outbox_sent, req, entry);
	outbox_nsent++;
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
	if (req->kind == REQUEST_TYPING) {
		outbox_fail(req, PROTOCOL_E_NOT_CONNECTED,
		    "not sent: the "
		    "connection to Slack was lost; typing indicators are not "
		    "queued");
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
		log_debug("reply to %lld from Slack matches no request (after "
		          "ack_timeout?)",
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
		status.sent++;
		if (json_object_object_get_ex(o, "ts", &ts))
			log_debug("message %lld to %s posted, ts %s",
			    (long long)id, req->channel,
			    json_object_get_string(ts));
	} else {
		status.failed++;
		log_info("message %lld to %s refused by Slack: %s",
		    (long long)id, req->channel, data);
	}
	json_object_object_del(o, "reply_to");
	if (req->client != NULL && req->client_id != NULL) {
		json_object_object_add(
		    o, "reply_to", json_object_get(req->client_id));
		client_send_json(req->client, o);
	} else if (req->client != NULL && !json_object_get_boolean(ok)) {
		/* No id to reply to: Slack's refusal still reaches the client.
		 */
		json_object_object_add(
		    o, "type", json_object_new_string(PROTOCOL_ERROR));
		json_object_object_add(
		    o, "channel", json_object_new_string(req->channel));
		client_send_json(req->client, o);
	}
	json_object_put(o);
	outbox_unlink(req);
	outbox_free(req);
	if (TAILQ_EMPTY(&outbox_sent))
		outbox_arm();
}

/* The session those requests were written in is gone; so is their ack. */
void
outbox_session_down(uint64_t session, const char *reason)
{
	struct outbox_req *req, *next;

	TAILQ_FOREACH_SAFE(req, &outbox_sent, entry, next) {
		if (req->session == session)
			outbox_fail(req, PROTOCOL_E_NOT_CONFIRMED,
			    "not "
			    "confirmed: the connection to Slack was lost (%s) "
			    "after the message was sent; it may or may not "
			    "have been posted",
			    reason);
	}
}

/* c is going away: its requests stay, their replies go nowhere. */
void
outbox_detach(struct client *c)
{
	struct outbox_req *req;

	while ((req = TAILQ_FIRST(&c->reqs)) != NULL) {
		TAILQ_REMOVE(&c->reqs, req, centry);
		req->client = NULL;
	}
}

/* The upstream thread has stopped: everything left gets its answer. */
void
outbox_shutdown(void)
{
	struct outbox_req *req;

	while ((req = TAILQ_FIRST(&outbox_sent)) != NULL)
		outbox_fail(req, PROTOCOL_E_NOT_CONFIRMED,
		    "not confirmed: "
		    "slackd shut down before Slack acknowledged the message");
	while ((req = TAILQ_FIRST(&outbox_queue)) != NULL)
		outbox_fail(req, PROTOCOL_E_SHUTTING_DOWN,
		    "not sent: slackd "
		    "is shutting down");
	if (outbox_timer != NULL) {
		event_free(outbox_timer);
		outbox_timer = NULL;
	}
	ratelimit_free(outbox_rl);
	outbox_rl = NULL;
}
