/*
 * slackctl over NATS (--nats URL, or $SLACKD_NATS): the same commands on
 * a host without slackd of its own.
 *
 * A request goes to <prefix>.request with a reply inbox, and slackd
 * answers with the line a local client would get; listen follows the
 * event stream with an ordered JetStream consumer on <prefix>.event.>
 * (from now, or --since a stream sequence or a time).  Both arrive on
 * cnats's threads and are queued here as lines; slackctl reads them in
 * order with slackctl_nats_line(), as it reads lines from the socket.
 */
#include "config.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "natslogin.h"
#include "slackctl_nats.h"

struct slackctl_nats_line {
	struct slackctl_nats_line *next;
	int status; /* 0, or SLACKCTL_NATS_NORESP / _DENIED (text: why) */
	char *text;
};

struct slackctl_nats {
	natsConnection *nc;
	natsOptions *opts;
	natsSubscription *inbox_sub;
	natsSubscription *events;
	jsCtx *js;
	char *inbox;
	char *prefix;
	char *url;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct slackctl_nats_line *head, *tail;
	int closed;
};

static void
slackctl_nats_push(
    struct slackctl_nats *n, const char *data, int len, int status)
{
	struct slackctl_nats_line *l;

	if ((l = calloc(1, sizeof *l)) == NULL ||
	    (l->text = malloc((size_t)len + 1)) == NULL)
		abort();
	memcpy(l->text, data, (size_t)len);
	l->text[len] = '\0';
	/* One line each: the stream's events end with a newline. */
	while (
	    len > 0 && (l->text[len - 1] == '\n' || l->text[len - 1] == '\r'))
		l->text[--len] = '\0';
	l->status = status;
	pthread_mutex_lock(&n->lock);
	if (n->tail != NULL)
		n->tail->next = l;
	else
		n->head = l;
	n->tail = l;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

/* A reply, or an event from the stream (cnats's delivery threads). */
static void
slackctl_nats_msg_cb(
    natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
	slackctl_nats_push(arg, natsMsg_GetData(msg),
	    natsMsg_GetDataLength(msg),
	    natsMsg_IsNoResponders(msg) ? SLACKCTL_NATS_NORESP : 0);
	natsMsg_Destroy(msg);
}

/* The server refused something (a permission): a line that says so. */
static void
slackctl_nats_error_cb(
    natsConnection *nc, natsSubscription *sub, natsStatus s, void *arg)
{
	const char *txt = NULL;

	if (natsConnection_GetLastError(nc, &txt) == NATS_OK || txt == NULL ||
	    *txt == '\0')
		txt = natsStatus_GetText(s);
	slackctl_nats_push(arg, txt, (int)strlen(txt), SLACKCTL_NATS_DENIED);
}

static void
slackctl_nats_closed_cb(natsConnection *nc, void *arg)
{
	struct slackctl_nats *n = arg;

	pthread_mutex_lock(&n->lock);
	n->closed = 1;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

/* cnats's last error without its "(file.c:123): " prefix. */
static const char *
slackctl_nats_why(natsStatus s)
{
	const char *txt = nats_GetLastError(NULL), *p;

	if (txt != NULL && *txt == '(' && (p = strstr(txt, "): ")) != NULL)
		txt = p + 3;
	return txt != NULL && *txt != '\0' ? txt : natsStatus_GetText(s);
}

/*
 * The URL as it may be shown: the user and password in
 * nats://alice:secret@host:4222 are shown as three stars.
 */
char *
slackctl_nats_public_url(const char *url)
{
	const char *host = strstr(url, "://"), *at = NULL, *p, *end;
	char *out;

	if (host == NULL)
		return strdup(url);
	host += 3;
	end = host + strcspn(host, "/,");
	for (p = host; p < end; p++) {
		if (*p == '@')
			at = p; /* the last @ before the host */
	}
	if (at == NULL)
		return strdup(url);
	if (asprintf(&out, "%.*s***%s", (int)(host - url), url, at) == -1)
		abort();
	return out;
}

static char *
slackctl_nats_err(const char *what, natsStatus s)
{
	char *e;

	if (asprintf(&e, "%s: %s", what, natsStatus_GetText(s)) == -1)
		abort();
	return e;
}

struct slackctl_nats *
slackctl_nats_open(const char *url, const char *prefix, const char *creds,
    const char *ca, char **err)
{
	struct slackctl_nats *n;
	natsStatus s;

	if ((n = calloc(1, sizeof *n)) == NULL)
		abort();
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	n->prefix = strdup(prefix);
	n->url = slackctl_nats_public_url(url);
	s = natsOptions_Create(&n->opts);
	if (s == NATS_OK)
		s = natsOptions_SetURL(n->opts, url);
	if (s == NATS_OK)
		s = natsOptions_SetName(n->opts, "slackctl");
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(
		    n->opts, slackctl_nats_closed_cb, n);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(
		    n->opts, slackctl_nats_error_cb, n);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(n->opts, 5);
	if (s == NATS_OK && strncmp(url, "tls://", 6) == 0)
		s = natsOptions_SetSecure(n->opts, true);
	if (s == NATS_OK && ca != NULL)
		s = natsOptions_LoadCATrustedCertificates(n->opts, ca);
	if (s == NATS_OK && creds != NULL)
		s = natslogin_creds(n->opts, creds);
	if (s != NATS_OK) {
		*err = slackctl_nats_err("NATS options", s);
		slackctl_nats_close(n);
		return NULL;
	}
	if ((s = natslogin_connect(&n->nc, n->opts)) != NATS_OK) {
		if (asprintf(err, "cannot connect to NATS at %s: %s", n->url,
		        slackctl_nats_why(s)) == -1)
			abort();
		slackctl_nats_close(n);
		return NULL;
	}
	natsInbox_Create((natsInbox **)&n->inbox);
	s = natsConnection_Subscribe(
	    &n->inbox_sub, n->nc, n->inbox, slackctl_nats_msg_cb, n);
	if (s == NATS_OK) /* the server has our inbox before we ask */
		s = natsConnection_Flush(n->nc);
	if (s != NATS_OK) {
		*err = slackctl_nats_err("NATS", s);
		slackctl_nats_close(n);
		return NULL;
	}
	return n;
}

/* Send a request line (its reply comes through slackctl_nats_line()). */
int
slackctl_nats_request(struct slackctl_nats *n, const char *line, size_t len)
{
	char *subject;
	natsStatus s;

	if (asprintf(&subject, "%s.request", n->prefix) == -1)
		abort();
	s = natsConnection_PublishRequest(
	    n->nc, subject, n->inbox, line, (int)len);
	if (s == NATS_OK)
		s = natsConnection_Flush(n->nc);
	free(subject);
	return s == NATS_OK ? 0 : -1;
}

/*
 * --since: a stream sequence (digits), a time (YYYY-MM-DDTHH:MM:SSZ, UTC)
 * or an age (a number and s, m, h or d: that long ago).
 */
static int
slackctl_nats_since(const char *since, jsConsumerConfig *cc)
{
	struct tm tm;
	char *end;
	double v, mult;
	const char *p;

	for (p = since; isdigit((unsigned char)*p); p++)
		;
	if (*p == '\0' && p != since) {
		cc->DeliverPolicy = js_DeliverByStartSequence;
		cc->OptStartSeq = strtoull(since, NULL, 10);
		return cc->OptStartSeq > 0 ? 0 : -1;
	}
	memset(&tm, 0, sizeof tm);
	end = strptime(since, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end != NULL && (*end == '\0' || strcmp(end, "Z") == 0)) {
		cc->DeliverPolicy = js_DeliverByStartTime;
		cc->OptStartTime = (int64_t)timegm(&tm) * 1000000000LL;
		return 0;
	}
	v = strtod(since, &end);
	if (end == since || v < 0)
		return -1;
	if (strcmp(end, "s") == 0)
		mult = 1;
	else if (strcmp(end, "m") == 0)
		mult = 60;
	else if (strcmp(end, "h") == 0)
		mult = 3600;
	else if (strcmp(end, "d") == 0)
		mult = 86400;
	else
		return -1;
	cc->DeliverPolicy = js_DeliverByStartTime;
	cc->OptStartTime =
	    ((int64_t)time(NULL) - (int64_t)(v * mult)) * 1000000000LL;
	return 0;
}

/* Follow the events: an ordered consumer on <prefix>.event.>. */
int
slackctl_nats_follow(struct slackctl_nats *n, const char *since, char **err)
{
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus s;
	char *subject;

	jsSubOptions_Init(&so);
	so.Ordered = true;
	if (since != NULL && slackctl_nats_since(since, &so.Config) != 0) {
		if (asprintf(err,
		        "--since %s: not a stream sequence (a number from 1), a time (2026-01-31T12:00:00Z) or an age (30m, 2h, 1d)",
		        since) == -1)
			abort();
		return -1;
	}
	if ((s = natsConnection_JetStream(&n->js, n->nc, NULL)) != NATS_OK) {
		*err = slackctl_nats_err("JetStream", s);
		return -1;
	}
	if (asprintf(&subject, "%s.event.>", n->prefix) == -1)
		abort();
	s = js_Subscribe(&n->events, n->js, subject, slackctl_nats_msg_cb, n,
	    NULL, &so, &jerr);
	if (s != NATS_OK) {
		if (asprintf(err, "following %s: %s", subject,
		        slackctl_nats_why(s)) == -1)
			abort();
		free(subject);
		return -1;
	}
	free(subject);
	return 0;
}

/*
 * The next line (a reply or an event; the caller frees it), or NULL with
 * *status SLACKCTL_NATS_TIMEOUT after timeout_ms (-1: no limit),
 * SLACKCTL_NATS_NORESP if no slackd answers requests, SLACKCTL_NATS_CLOSED
 * if the connection is gone; with SLACKCTL_NATS_DENIED the line is the
 * server's error (such as a permissions violation).
 */
char *
slackctl_nats_line(struct slackctl_nats *n, int timeout_ms, int *status)
{
	struct slackctl_nats_line *l;
	struct timespec ts;
	char *text;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (timeout_ms > 0) {
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
	}
	*status = 0;
	pthread_mutex_lock(&n->lock);
	while (n->head == NULL && !n->closed && rc == 0) {
		if (timeout_ms < 0)
			pthread_cond_wait(&n->cond, &n->lock);
		else
			rc = pthread_cond_timedwait(&n->cond, &n->lock, &ts);
	}
	if ((l = n->head) != NULL) {
		n->head = l->next;
		if (n->head == NULL)
			n->tail = NULL;
	}
	if (l == NULL)
		*status =
		    n->closed ? SLACKCTL_NATS_CLOSED : SLACKCTL_NATS_TIMEOUT;
	pthread_mutex_unlock(&n->lock);
	if (l == NULL)
		return NULL;
	text = l->text;
	if (l->status == SLACKCTL_NATS_NORESP) {
		free(text);
		text = NULL;
	}
	*status = l->status;
	free(l);
	return text;
}

void
slackctl_nats_close(struct slackctl_nats *n)
{
	struct slackctl_nats_line *l;

	if (n == NULL)
		return;
	natsSubscription_Destroy(n->events);
	natsSubscription_Destroy(n->inbox_sub);
	jsCtx_Destroy(n->js);
	if (n->nc != NULL)
		natsConnection_Close(n->nc);
	natsConnection_Destroy(n->nc);
	natsOptions_Destroy(n->opts);
	/* The closed callback may still be due: wait for cnats's threads. */
	nats_CloseAndWait(2000);
	natsInbox_Destroy((natsInbox *)n->inbox);
	while ((l = n->head) != NULL) {
		n->head = l->next;
		free(l->text);
		free(l);
	}
	free(n->prefix);
	free(n->url);
	pthread_mutex_destroy(&n->lock);
	pthread_cond_destroy(&n->cond);
	free(n);
}
