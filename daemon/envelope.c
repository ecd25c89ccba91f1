/*
 * Socket Mode envelopes that accept a response payload (slash commands,
 * interactive payloads), on the main thread.  The upstream thread forwards
 * such an envelope to the clients and tells us its id (MAILBOX_ENVELOPE);
 * from then on a client may answer with {"type":"slackd.ack",
 * "envelope_id":…,"payload":{…}} for ack_wait.  The first answer goes into
 * Slack's ack and gets {"ok":true,"reply_to":N}; with none by ack_wait we
 * ack with no payload.  Either way the upstream thread is told once
 * (MAILBOX_ACK), and the id is remembered as answered for a while so that
 * a later slackd.ack gets an error that says what happened.
 *
 * Invariant: every envelope in envelope_map is either pending (its timer
 * armed) or answered (its timer armed for ENVELOPE_KEEP, to forget it).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "slackd.h"

#define ENVELOPE_KEEP        600   /* s an answered envelope is remembered */
#define ENVELOPE_MAX_PAYLOAD 16000 /* bytes of a response payload */

struct envelope {
	char id[JSCAN_FIELD];
	int answered; /* 1 by a client, 2 by ack_wait */
	struct event *timer;
};

static struct map *envelope_map;

static void
envelope_free(void *p)
{
	struct envelope *env = p;

	event_free(env->timer);
	free(env);
}

/* Tell the upstream thread to ack (payload NULL: without one). */
static void
envelope_ack(struct envelope *env, struct json_object *payload)
{
	struct mailbox_msg *m;
	const char *s;

	if (!slackd_upstream_running())
		return;
	m = mailbox_msg_new(MAILBOX_ACK);
	snprintf(
	    m->u.ack.envelope_id, sizeof m->u.ack.envelope_id, "%s", env->id);
	if (payload != NULL) {
		s = json_object_to_json_string_ext(payload,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		m->len = strlen(s);
		m->data = xmemdup(s, m->len + 1);
	}
	slackd_to_upstream(m);
}

static void
envelope_arm(struct envelope *env, int64_t ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(env->timer, &tv);
}

static void
envelope_timer(evutil_socket_t fd, short what, void *arg)
{
	struct envelope *env = arg;

	if (env->answered) { /* kept long enough */
		map_del(envelope_map, env->id);
		envelope_free(env);
		return;
	}
	log_info(
	    "envelope %s: no slackd.ack within %.1f s; acknowledged without a payload",
	    env->id, (double)slackd_conf->ack_wait / 1000);
	env->answered = 2;
	envelope_ack(env, NULL);
	envelope_arm(env, ENVELOPE_KEEP * 1000);
	(void)fd;
	(void)what;
}

/* The upstream thread forwarded envelope id: wait for an answer. */
void
envelope_arrived(const char *id)
{
	struct envelope *env;

	if (envelope_map == NULL)
		envelope_map = map_new();
	if (map_get(envelope_map, id) != NULL)
		return;
	env = xcalloc(1, sizeof *env);
	snprintf(env->id, sizeof env->id, "%s", id);
	env->timer = evtimer_new(slackd_base, envelope_timer, env);
	map_put(envelope_map, env->id, env);
	envelope_arm(env, slackd_conf->ack_wait);
}

/* A client's slackd.ack. */
void
envelope_answer(struct client *c, struct request *r)
{
	struct envelope *env;
	struct json_object *o;
	size_t len;

	env =
	    envelope_map != NULL ? map_get(envelope_map, r->envelope_id) : NULL;
	if (env == NULL) {
		client_error(c, r->id, PROTOCOL_E_NOT_FOUND,
		    "no envelope %s waits for an answer (only slash commands and interactive payloads that accept a response payload do, for ack_wait after they arrive)",
		    r->envelope_id);
		return;
	}
	if (env->answered) {
		client_error(c, r->id, PROTOCOL_E_TIMEOUT,
		    env->answered == 1
		        ? "envelope %s was already answered by another slackd.ack"
		        : "envelope %s was already acknowledged without a payload: no slackd.ack came within ack_wait",
		    r->envelope_id);
		return;
	}
	if (r->payload != NULL &&
	    (len = strlen(json_object_to_json_string_ext(r->payload,
	         JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE))) >
	        ENVELOPE_MAX_PAYLOAD) {
		client_error(c, r->id, PROTOCOL_E_TOO_LONG,
		    "the payload is %zu bytes as JSON; an acknowledgement carries at most %d: send a shorter one (the envelope still waits)",
		    len, ENVELOPE_MAX_PAYLOAD);
		return;
	}
	env->answered = 1;
	envelope_ack(env, r->payload);
	envelope_arm(env, ENVELOPE_KEEP * 1000);
	if (r->id != NULL) {
		o = json_object_new_object();
		json_object_object_add(o, "ok", json_object_new_boolean(1));
		json_object_object_add(o, "reply_to", json_object_get(r->id));
		client_send_json(c, o);
		json_object_put(o);
	}
}

void
envelope_shutdown(void)
{
	map_free(envelope_map, envelope_free);
	envelope_map = NULL;
}
