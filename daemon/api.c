/*
 * The main thread's side of Web API calls: a call gets an id, goes to
 * the upstream thread (which queues it within Slack's rate limits and
 * retries rate-limited and transient failures), and its result comes back
 * through the mailbox to the callback that asked for it.
 *
 * The callback rule, for every function of the main thread that starts
 * something and takes a callback for its outcome (api_call() here,
 * names_resolve() in names.c): it never calls that callback before it returns.
 * When the outcome is known at once, the callback is deferred to the
 * event loop (event_active() or a zero timeout), so the caller always has
 * its handle first and the callback always runs from the loop, never
 * inside the caller's own call.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "slackd.h"

struct api_call {
	TAILQ_ENTRY(api_call) entry;
	uint64_t id;
	api_cb cb;
	void *arg;
};
static TAILQ_HEAD(, api_call) api_calls = TAILQ_HEAD_INITIALIZER(api_calls);
static uint64_t api_next_id = 1;

static void api_fail(uint64_t, const char *);

static void
api_stopped(evutil_socket_t fd, short events, void *arg)
{
	api_fail((uint64_t)(uintptr_t)arg, "slackd is stopping");
}

/*
 * Call method with a form-encoded (json 0) or JSON body.  Returns the
 * call's id; cb(arg, result) runs when it is over, never before this
 * returns.
 */
uint64_t
api_call(const char *method, const char *body, size_t len, int json, api_cb cb,
    void *arg)
{
	struct api_call *c;
	struct mailbox_msg *m;

	c = xcalloc(1, sizeof *c);
	c->id = api_next_id++;
	c->cb = cb;
	c->arg = arg;
	TAILQ_INSERT_TAIL(&api_calls, c, entry);
	if (!slackd_upstream_running()) {
		/* Never call back from inside api_call(): later, from the loop.
		 */
		event_base_once(slackd_base, -1, EV_TIMEOUT, api_stopped,
		    (void *)(uintptr_t)c->id, NULL);
		return c->id;
	}
	m = mailbox_msg_new(MAILBOX_API_CALL);
	m->u.call.call = c->id;
	m->u.call.method = xstrdup(method);
	m->u.call.json = json;
	m->data = xmemdup(body != NULL ? body : "", len);
	m->len = len;
	slackd_to_upstream(m);
	return c->id;
}

/* Forget a call: its result, when it comes, goes nowhere. */
void
api_forget(uint64_t id)
{
	struct api_call *c;

	TAILQ_FOREACH(c, &api_calls, entry) {
		if (c->id == id) {
			TAILQ_REMOVE(&api_calls, c, entry);
			free(c);
			return;
		}
	}
}

static void
api_deliver(uint64_t id, const struct api_result *r)
{
	struct api_call *c;

	TAILQ_FOREACH(c, &api_calls, entry) {
		if (c->id == id)
			break;
	}
	if (c == NULL)
		return;
	TAILQ_REMOVE(&api_calls, c, entry);
	c->cb(c->arg, r);
	free(c);
}

/* A call that ends without an answer from Slack. */
static void
api_fail(uint64_t id, const char *why)
{
	struct api_result r;

	memset(&r, 0, sizeof r);
	r.error = why;
	api_deliver(id, &r);
}

/*
 * MAILBOX_API_RESULT.  The body is parsed here, once: r.obj is Slack's
 * answer (borrowed for the callback), r.slack_error its "error" when not
 * ok, r.error set when there is no usable answer at all.
 */
void
api_result(struct mailbox_msg *m)
{
	struct api_result r;
	struct json_object *ok, *err;
	char why[300];

	memset(&r, 0, sizeof r);
	r.status = m->u.result.http_status;
	if (m->u.result.error != NULL)
		r.error = m->u.result.error;
	else if ((r.obj = json_tokener_parse(m->data)) == NULL ||
	    !json_object_is_type(r.obj, json_type_object) ||
	    !json_object_object_get_ex(r.obj, "ok", &ok)) {
		snprintf(why, sizeof why,
		    "Slack answered HTTP %d with something that is not a Web API answer",
		    m->u.result.http_status);
		r.error = why;
	} else {
		r.ok = json_object_get_boolean(ok);
		if (!r.ok && json_object_object_get_ex(r.obj, "error", &err))
			r.slack_error = json_object_get_string(err);
		else if (!r.ok)
			r.slack_error = "unknown_error";
	}
	api_deliver(m->u.result.call, &r);
	json_object_put(r.obj);
}

/* Shutdown: every call still open is over. */
void
api_shutdown(void)
{
	struct api_call *c;

	while ((c = TAILQ_FIRST(&api_calls)) != NULL)
		api_fail(c->id, "slackd is stopping");
}
