/*
 * Web API calls over HTTPS, on the upstream thread: one libwebsockets HTTP
 * client connection per call, the token in the Authorization header, an
 * optional body (form or JSON), a deadline, the answer collected under a
 * cap.  rtm.connect and apps.connections.open (with the app-level token)
 * go through here, and so do the calls the main thread
 * asks for (names, chat.postMessage, slackd.api), which wait in a queue
 * that keeps each method within Slack's rate-limit tier and honours
 * Retry-After.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netdb.h>

#include <libwebsockets.h>

#include "upstream.h"

#define WEBCALL_MAX_BODY   (16 * 1024 * 1024) /* a page of users.list */
#define WEBCALL_CHUNK      4096
#define WEBCALL_ATTEMPTS   4     /* tries before a queued call fails */
#define WEBCALL_RATE_WAIT  60000 /* ms, a 429 without Retry-After */
#define WEBCALL_RATE_TRIES 10    /* 429s in a row before a call fails */

static void webcall_cancel(struct webcall *);

struct webcall {
	TAILQ_ENTRY(webcall) entry;
	struct webcall_env *env;
	uint64_t id;
	char *method;
	char *ctype;
	char *body;
	size_t body_len;
	size_t body_off;
	webcall_cb cb;
	void *arg;

	struct lws *wsi;
	int running;
	int status;
	int64_t retry_after;
	char *resp;
	size_t resp_len;
	char *error;
	char *scopes; /* X-OAuth-Scopes, NULL if Slack sent none */
	int attempts;
	int rate_limited; /* 429s so far */
	int sent;         /* the request may have reached Slack */
	int app;          /* Authorization: the app-level token */
	int64_t not_before;
	lws_sorted_usec_list_t sul_deadline;
};

/*
 * Slack's rate-limit tiers, per method (calls per minute, burst).  Slack
 * tolerates bursts, and paging through a list is one: the first 20 pages
 * of users.list go at once, then one every 3 s (tier 2), and a 429 says
 * when Slack would rather wait.
 */
struct webcall_tier {
	const char *method;
	double per_minute;
	double burst;
};
/* clang-format off */
static const struct webcall_tier webcall_tiers[] = {
	{ "conversations.list",	20,	20 },
	{ "users.list",		20,	20 },
	{ "conversations.open",	50,	10 },
	{ "conversations.info",	50,	10 },
	{ "users.info",		100,	20 },
	{ "chat.postMessage",	300,	20 }, /* and 1/s per channel: outbox */
	{ NULL,			50,	10 }, /* any other: tier 3 */
};
/* clang-format on */

struct webcall_method {
	char name[64];
	const struct webcall_tier *tier;
	struct ratelimit_bucket bucket;
	int64_t blocked_until; /* after a 429 */
};

struct webcall_queue {
	struct webcall_env *env;
	TAILQ_HEAD(, webcall) waiting;
	TAILQ_HEAD(, webcall) active;
	u_int running;
	u_int max_running;
	struct webcall_method *methods;
	size_t nmethods;
	lws_sorted_usec_list_t sul;
	webcall_cb done;
	void *done_arg;
};

struct webcall *
webcall_new(const char *method, const char *ctype, const char *body, size_t len,
    webcall_cb cb, void *arg)
{
	struct webcall *w;

	w = xcalloc(1, sizeof *w);
	w->method = xstrdup(method);
	if (body != NULL) {
		w->ctype = xstrdup(ctype);
		w->body = xmemdup(body, len);
		w->body_len = len;
	}
	w->retry_after = -1;
	w->cb = cb;
	w->arg = arg;
	return w;
}

/* Authorize with the app-level token (apps.connections.open). */
void
webcall_use_app_token(struct webcall *w)
{
	w->app = 1;
}

void
webcall_free(struct webcall *w)
{
	if (w == NULL)
		return;
	webcall_cancel(w);
	free(w->method);
	free(w->ctype);
	free(w->body);
	free(w->resp);
	free(w->error);
	free(w->scopes);
	free(w);
}

uint64_t
webcall_id(const struct webcall *w)
{
	return w->id;
}

int
webcall_status(const struct webcall *w)
{
	return w->status;
}

int64_t
webcall_retry_after(const struct webcall *w)
{
	return w->retry_after;
}

const char *
webcall_body(const struct webcall *w, size_t *len)
{
	*len = w->resp_len;
	return w->resp != NULL ? w->resp : "";
}

/* NULL if an answer came, else why not. */
const char *
webcall_error(const struct webcall *w)
{
	return w->error;
}

/* The scopes the token was granted (X-OAuth-Scopes), or NULL if none came. */
const char *
webcall_scopes(const struct webcall *w)
{
	return w->scopes;
}

/* Take the answer's bytes (NUL-terminated); the call keeps none. */
char *
webcall_take_body(struct webcall *w, size_t *len)
{
	char *b = w->resp != NULL ? w->resp : xstrdup("");

	*len = w->resp_len;
	w->resp = NULL;
	w->resp_len = 0;
	return b;
}

/* Drop the connection, if any, without calling back. */
static void
webcall_cancel(struct webcall *w)
{
	if (w->running)
		lws_sul_cancel(&w->sul_deadline);
	if (w->wsi != NULL) {
		lws_set_opaque_user_data(w->wsi, NULL);
		lws_set_timeout(
		    w->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		w->wsi = NULL;
	}
	w->running = 0;
}

static void
webcall_finish(struct webcall *w, const char *error)
{
	if (!w->running)
		return;
	webcall_cancel(w);
	free(w->error);
	w->error = error != NULL ? xstrdup(error) : NULL;
	w->cb(w, w->arg);
}

static void
webcall_deadline(lws_sorted_usec_list_t *sul)
{
	struct webcall *w = lws_container_of(sul, struct webcall, sul_deadline);
	char why[64];

	snprintf(why, sizeof why, "no answer within %.1f s",
	    (double)(*w->env->p)->conf->connect_timeout / 1000);
	webcall_finish(w, why);
}

/*
 * Open the connection.  Returns 0, or -1 (the callback has then been
 * called with the reason: a host that does not resolve, …).
 */
int
webcall_start(struct webcall_env *env, struct webcall *w)
{
	struct lws_client_connect_info i;
	struct addrinfo hints, *res = NULL;
	char *path, why[300], service[16];
	int rc;

	w->env = env;
	w->status = 0;
	w->retry_after = -1;
	w->body_off = 0;
	w->sent = 0;
	free(w->resp);
	w->resp = NULL;
	w->resp_len = 0;
	free(w->error);
	w->error = NULL;
	free(w->scopes);
	w->scopes = NULL;
	w->running = 1;
	xasprintf(&path, "%s%s", env->api->path, w->method);
	memset(&i, 0, sizeof i);
	i.context = env->ctx;
	i.address = env->api->host;
	i.host = env->api->host;
	i.port = env->api->port;
	i.path = path;
	i.method = w->body != NULL ? "POST" : "GET";
	i.ssl_connection = env->api->tls ? LCCSCF_USE_SSL : 0;
	i.alpn = "http/1.1";
	i.local_protocol_name = "slackd-http";
	i.pwsi = &w->wsi;
	i.opaque_user_data = w;
	lws_sul_schedule(env->ctx, 0, &w->sul_deadline, webcall_deadline,
	    (lws_usec_t)(*env->p)->conf->connect_timeout * 1000);
	log_debug("upstream: calling %s", w->method);
	lwslog_clear();
	if (lws_client_connect_via_info(&i) != NULL) {
		free(path);
		return 0;
	}
	free(path);
	w->wsi = NULL;
	/*
	 * lws says only "failed" in its log.  The usual reason is a name
	 * that does not resolve: find out, so that the reason says so.
	 */
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	snprintf(service, sizeof service, "%d", env->api->port);
	if ((rc = getaddrinfo(env->api->host, service, &hints, &res)) != 0)
		snprintf(why, sizeof why, "cannot resolve %s: %s",
		    env->api->host, gai_strerror(rc));
	else if (*lwslog_last() != '\0')
		snprintf(why, sizeof why, "cannot connect to port %d (%s)",
		    env->api->port, lwslog_last());
	else
		snprintf(why, sizeof why, "cannot connect to port %d",
		    env->api->port);
	if (res != NULL)
		freeaddrinfo(res);
	webcall_finish(w, why);
	return -1;
}

static int
webcall_headers(struct webcall *w, struct lws *wsi, void *in, size_t len)
{
	unsigned char **p = in, *end = *p + len;
	char auth[600], clen[32];
	int n, rc = 0;

	n = snprintf(auth, sizeof auth, "Bearer %s",
	    w->app && (*w->env->p)->app_token != NULL ? (*w->env->p)->app_token
	                                              : (*w->env->p)->token);
	if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
	        (unsigned char *)auth, n, p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_USER_AGENT,
	        (const unsigned char *)"slackd/" PACKAGE_VERSION,
	        (int)strlen("slackd/" PACKAGE_VERSION), p, end))
		rc = -1;
	util_wipe(auth, sizeof auth);
	if (rc != 0 || w->body == NULL)
		return rc;
	n = snprintf(clen, sizeof clen, "%zu", w->body_len);
	if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
	        (unsigned char *)w->ctype, (int)strlen(w->ctype), p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
	        (unsigned char *)clen, n, p, end))
		return -1;
	if (w->body_len == 0)
		return 0; /* nothing to write: the request is complete */
	lws_client_http_body_pending(wsi, 1);
	lws_callback_on_writable(wsi);
	return 0;
}

static int
webcall_write_body(struct webcall *w, struct lws *wsi)
{
	unsigned char buf[LWS_PRE + WEBCALL_CHUNK];
	size_t n = w->body_len - w->body_off;
	int last;

	if (n > WEBCALL_CHUNK)
		n = WEBCALL_CHUNK;
	last = w->body_off + n == w->body_len;
	memcpy(buf + LWS_PRE, w->body + w->body_off, n);
	if (lws_write(wsi, buf + LWS_PRE, n,
	        last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
		return -1;
	w->body_off += n;
	if (last)
		lws_client_http_body_pending(wsi, 0);
	else
		lws_callback_on_writable(wsi);
	return 0;
}

/* Keep X-OAuth-Scopes: slackd --doctor compares it with what we need. */
static void
webcall_header_scopes(struct webcall *w, struct lws *wsi)
{
	static const char name[] = "x-oauth-scopes:";
	int n;

	n = lws_hdr_custom_length(wsi, name, (int)strlen(name));
	if (n < 0)
		return;
	w->scopes = xmalloc((size_t)n + 1);
	if (lws_hdr_custom_copy(
	        wsi, w->scopes, n + 1, name, (int)strlen(name)) < 0) {
		free(w->scopes);
		w->scopes = NULL;
	}
}

static void
webcall_established(struct webcall *w, struct lws *wsi)
{
	char buf[64];
	int64_t ms;

	w->status = (int)lws_http_client_http_response(wsi);
	if (lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_RETRY_AFTER) >
	        0 &&
	    webapi_retry_after(buf, &ms) == 0)
		w->retry_after = ms;
	webcall_header_scopes(w, wsi);
}

static int
webcall_collect(struct webcall *w, const void *in, size_t len)
{
	if (w->resp_len + len > WEBCALL_MAX_BODY)
		return -1;
	w->resp = xrealloc(w->resp, w->resp_len + len + 1);
	memcpy(w->resp + w->resp_len, in, len);
	w->resp_len += len;
	w->resp[w->resp_len] = '\0';
	return 0;
}

/*
 * The connection is ending (lws closes it): unbind it from w, so that the
 * callbacks still to come for it find nothing, w being freed by then.
 */
static void
webcall_detach(struct webcall *w, struct lws *wsi)
{
	lws_set_opaque_user_data(wsi, NULL);
	w->wsi = NULL;
}

static int
webcall_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct webcall *w = lws_get_opaque_user_data(wsi);
	char buf[LWS_PRE + 4096], *px, why[300];
	const char *detail;
	int lenx;

	if (w == NULL || wsi != w->wsi)
		return lws_callback_http_dummy(wsi, reason, user, in, len);

	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		w->sent = 1; /* from here on, Slack may act on it */
		return webcall_headers(w, wsi, in, len);
	case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
		if (w->body == NULL || w->body_off >= w->body_len)
			return 0;
		return webcall_write_body(w, wsi);
	case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
		webcall_established(w, wsi);
		return 0;
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP:
		px = buf + LWS_PRE;
		lenx = (int)(sizeof buf - LWS_PRE);
		if (lws_http_client_read(wsi, &px, &lenx) < 0)
			return -1;
		return 0;
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
		if (webcall_collect(w, in, len) != 0) {
			webcall_detach(w, wsi);
			webcall_finish(w, "answer larger than 16 MiB");
			return -1;
		}
		return 0;
	case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
		webcall_detach(w, wsi); /* lws closes it */
		webcall_finish(w, NULL);
		return 0;
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		webcall_detach(w, wsi);
		webcall_finish(
		    w, "connection closed before the answer was complete");
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		webcall_detach(w, wsi);
		detail = lwslog_last();
		if (in != NULL && strstr(in, "SSL") != NULL && *detail != '\0')
			snprintf(why, sizeof why, "%s (%s)", (const char *)in,
			    detail);
		else
			snprintf(why, sizeof why, "%s",
			    in != NULL ? (const char *)in
			               : "connection failed");
		webcall_finish(w, why);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols webcall_protocol = { "slackd-http", webcall_lws_cb,
	0, 0, 0, NULL, 0 };

/* ---- the queue of calls the main thread asked for ------------------------ */

static struct webcall_method *
webcall_q_method(struct webcall_queue *q, const char *name)
{
	struct webcall_method *m;
	const struct webcall_tier *t;
	size_t i;

	for (i = 0; i < q->nmethods; i++) {
		if (strcmp(q->methods[i].name, name) == 0)
			return &q->methods[i];
	}
	for (t = webcall_tiers; t->method != NULL; t++) {
		if (strcmp(t->method, name) == 0)
			break;
	}
	q->methods = xrealloc(q->methods, (q->nmethods + 1) * sizeof *m);
	m = &q->methods[q->nmethods++];
	memset(m, 0, sizeof *m);
	snprintf(m->name, sizeof m->name, "%s", name);
	m->tier = t;
	return m;
}

static void webcall_q_run(struct webcall_queue *);

static void
webcall_q_timer(lws_sorted_usec_list_t *sul)
{
	webcall_q_run(lws_container_of(sul, struct webcall_queue, sul));
}

/*
 * May a call be made twice?  Reads may; a call that changes something
 * (chat.postMessage, most of what slackd.api passes on) must not be
 * repeated once Slack may have acted on it: its caller hears that it may
 * or may not have happened instead.
 */
static int
webcall_idempotent(const char *method)
{
	static const char *const reads[] = { "list", "info", "history",
		"replies", "members", "get", "lookup", "test", "open", "search",
		NULL };
	const char *verb = strrchr(method, '.');
	size_t i;

	verb = verb != NULL ? verb + 1 : method;
	for (i = 0; reads[i] != NULL; i++) {
		if (strncmp(verb, reads[i], strlen(reads[i])) == 0)
			return 1;
	}
	return 0;
}

/* Is the answer one to try again later?  Then how long to wait. */
static int64_t
webcall_q_again(struct webcall *w, int *rate)
{
	size_t len;
	const char *body = webcall_body(w, &len);
	int again = !w->sent || webcall_idempotent(w->method);

	*rate = 0;
	if (w->error != NULL)
		return again ? 1000LL << (w->attempts > 4 ? 4 : w->attempts)
		             : -1;
	/* Slack did not do it: it says so, and when to come back. */
	if (w->status == 429 ||
	    (w->status == 200 &&
	        strstr(body, "\"error\":\"ratelimited\"") != NULL)) {
		if (++w->rate_limited > WEBCALL_RATE_TRIES)
			return -1;
		*rate = 1;
		return w->retry_after >= 0 ? w->retry_after : WEBCALL_RATE_WAIT;
	}
	if (w->status >= 500 && again)
		return 1000LL << (w->attempts > 4 ? 4 : w->attempts);
	return -1;
}

static void
webcall_q_done(struct webcall *w, void *arg)
{
	struct webcall_queue *q = arg;
	struct webcall_method *m = webcall_q_method(q, w->method);
	int64_t wait;
	int rate;

	q->running--;
	TAILQ_REMOVE(&q->active, w, entry);
	wait = webcall_q_again(w, &rate);
	/* Run the queue again from the loop, not from inside this call. */
	lws_sul_schedule(q->env->ctx, 0, &q->sul, webcall_q_timer, 1);
	if (wait >= 0 && (rate || ++w->attempts < WEBCALL_ATTEMPTS)) {
		/* Rate limited, or a transient failure: wait, then again. */
		if (rate) {
			m->blocked_until = util_now_ms() + wait;
			log_info("upstream: %s rate limited; waiting %.1f s",
			    w->method, (double)wait / 1000);
		} else
			w->not_before = util_now_ms() + wait;
		TAILQ_INSERT_HEAD(&q->waiting, w, entry);
	} else
		q->done(w, q->done_arg);
}

/* Start what the tiers allow; wake up when the next one may go. */
static void
webcall_q_run(struct webcall_queue *q)
{
	struct webcall *w, *next;
	struct webcall_method *m;
	int64_t now = util_now_ms(), wait, soonest = -1;

	TAILQ_FOREACH_SAFE(w, &q->waiting, entry, next) {
		if (q->running >= q->max_running)
			break;
		m = webcall_q_method(q, w->method);
		wait = 0;
		if (m->blocked_until > now)
			wait = m->blocked_until - now;
		else if (w->not_before > now)
			wait = w->not_before - now;
		else
			(void)ratelimit_bucket_take(&m->bucket,
			    m->tier->per_minute / 60.0, m->tier->burst, now,
			    &wait);
		if (wait > 0) {
			log_debug("upstream: %s waits %lld ms (tokens %.2f)",
			    w->method, (long long)wait, m->bucket.tokens);
			if (soonest < 0 || wait < soonest)
				soonest = wait;
			continue;
		}
		TAILQ_REMOVE(&q->waiting, w, entry);
		TAILQ_INSERT_TAIL(&q->active, w, entry);
		q->running++;
		webcall_start(q->env, w); /* on failure, done is called */
	}
	if (soonest >= 0)
		lws_sul_schedule(q->env->ctx, 0, &q->sul, webcall_q_timer,
		    (lws_usec_t)soonest * 1000);
}

struct webcall_queue *
webcall_q_new(struct webcall_env *env, webcall_cb done, void *arg)
{
	struct webcall_queue *q;

	q = xcalloc(1, sizeof *q);
	q->env = env;
	q->max_running = 3;
	q->done = done;
	q->done_arg = arg;
	TAILQ_INIT(&q->waiting);
	TAILQ_INIT(&q->active);
	return q;
}

/* Queue a call for the main thread; done() gets it when it is over. */
void
webcall_q_add(struct webcall_queue *q, struct webcall *w, uint64_t id)
{
	w->id = id;
	w->cb = webcall_q_done;
	w->arg = q;
	w->attempts = 0;
	w->rate_limited = 0;
	w->not_before = 0;
	TAILQ_INSERT_TAIL(&q->waiting, w, entry);
	webcall_q_run(q);
}

/*
 * The next call that will not be made after all (stopping): waiting ones,
 * then running ones (whose connection is dropped).  The caller answers it.
 */
struct webcall *
webcall_q_pop(struct webcall_queue *q)
{
	struct webcall *w;

	if ((w = TAILQ_FIRST(&q->waiting)) != NULL)
		TAILQ_REMOVE(&q->waiting, w, entry);
	else if ((w = TAILQ_FIRST(&q->active)) != NULL) {
		TAILQ_REMOVE(&q->active, w, entry);
		q->running--;
		webcall_cancel(w);
	}
	return w;
}

void
webcall_q_free(struct webcall_queue *q)
{
	if (q == NULL)
		return;
	lws_sul_cancel(&q->sul);
	free(q->methods);
	free(q);
}
