/*
 * NATS: every event slackd forwards is also published to a JetStream
 * stream, and requests in the local socket's JSON are answered on
 * <prefix>.request (slackd.conf(5), NATS).  Without nats_url nothing here
 * runs and libnats is never called.
 *
 * Threads.  The connection's socket lives on the main thread's libevent
 * loop (cnats's libevent adapter), but cnats still has threads of its own
 * (reconnection, timers, delivery of publish acks and of subscribed
 * messages).  Their callbacks only queue a note under nats_lock and wake
 * the main thread, which does everything else, as with the upstream
 * thread's mailbox.  The calls that wait for a server's answer
 * (connecting, looking the stream up or adding it) run on a setup thread
 * of their own: on the main thread they would wait for a reply that only
 * the main loop can read.
 *
 * Events.  Each event becomes an entry at the tail of nats_queue, in hub
 * order, and stays there until JetStream acknowledges it.  Entries are
 * handed to js_PublishMsgAsync oldest first, at most NATS_WINDOW at a
 * time; the rest wait.  When the connection drops, or a
 * publish is not acknowledged in time, every entry goes back to waiting
 * and is published again, in order, once NATS is back: Nats-Msg-Id (the
 * event's identity, nats_msgid()) lets JetStream drop what it already had,
 * within the stream's duplicate window.  The queue holds at most nats_backlog
 * bytes; past that the oldest events are dropped and one gap entry at the head
 * says which sequence numbers were lost, published as a slackd.gap record.
 * Local clients never wait for any of this: the hub hands an event over
 * and goes on.
 *
 * Giving up.  cnats drops a server that refuses the credentials twice,
 * and with the last one the connection: before the first NATS_NOTE_READY
 * the setup thread starts over itself (nats_closed()), after it the main
 * thread does (nats_restart_cb()), both every NATS_CLOSED_WAIT, reading
 * the options and secrets again.
 *
 * Requests.  Each NATS request is run by a client of its own without a
 * socket (client_virtual()): the first line that client is sent, notices
 * such as slackd.queued aside, is the reply.  A request without an id is given
 * one, and the reply_to it brings back is removed again, so the reply is what a
 * local client would get; only a reply is needed even where a local client
 * would get none.
 *
 * Standby and takeover (nats_ha).  Several slackd share a KV bucket
 * (SLACKD_HA_<stream>) whose MaxAge is ha_lease (nats-server 2.9 has no
 * per-key TTL).  The one whose kvStore_Create of the key "leader" worked
 * leads: it renews the key every third of ha_lease with kvStore_Update on
 * the revision it holds (compare-and-set), and a renewal that does not
 * work before three quarters of the lease are gone, counted from when the
 * last good renewal was sent, makes it stand down (fencing: the lease on
 * the server lasts at least ha_lease from that moment, so it is off Slack
 * before another can take the key).  The others try the create every
 * quarter of the lease, so they lead within ha_lease and a quarter of the
 * leader's last renewal; a clean stop deletes the key at once.  All of
 * this runs on the setup thread, which stays in nats_ha_loop(): each KV
 * call waits for the server.  The lease has a connection of its own,
 * made again by that thread whenever it cannot be made or cnats closes
 * it (a leader stands down first).  The main thread is told NATS_NOTE_LEAD or
 * NATS_NOTE_FOLLOW and tells the upstream thread (MAILBOX_LEAD).  Only
 * the leader subscribes to <prefix>.request and publishes events.  A
 * standby reads <prefix>.event.> from the stream (an ordered consumer,
 * nats_follow()) and fans out what it reads to its local clients under
 * the leader's cursors (hub_inject_as()), so backfill.c learns where the
 * stream is and recovers the gap after a takeover; and it forwards its local
 * clients' requests for Slack to <prefix>.request with a Slackd-Request-Id
 * header.  A forward is published again only when NATS says no one
 * listens (no leader at that moment: no one has it); without an answer it
 * is answered not_confirmed, never sent again.  The leader answers a
 * Slackd-Request-Id it has seen with the reply it gave, or not at all
 * while that is still running.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>
#include <nats/nats.h>
#include <openssl/sha.h>

/* The adapter is a header of function definitions without prototypes. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wshadow"
#include <nats/adapters/libevent.h>
#pragma GCC diagnostic pop

#include "natslogin.h"
#include "slackd.h"

/* How a notice line starts (outbox.c builds it with "type" first). */
#define NATS_NOTICE "{\"type\":\"" PROTOCOL_QUEUED "\""

#define NATS_WINDOW      256   /* publishes waiting for their ack, at most */
#define NATS_ACK_WAIT    5000  /* ms before a publish counts as lost */
#define NATS_JS_WAIT     5000  /* ms for a JetStream API call */
#define NATS_RETRY_WAIT  1000  /* ms between attempts to set up */
#define NATS_CLOSED_WAIT 10000 /* ms: a new connection after cnats gave up */
#define NATS_SECRET_MAX  4000
#define NATS_SIGN_QUIET  2000 /* ms: see nats_setup_why() */
#define NATS_HA_KEY      "leader"
#define NATS_HA_RETRY    250  /* ms: a forward no one listened to */
#define NATS_SEEN_MAX    1024 /* Slackd-Request-Ids remembered */
#define NATS_SEEN_AGE    600  /* s */

enum nats_state {
	NATS_OFF,        /* no nats_url */
	NATS_WAIT_TEAM,  /* the subjects need the team id */
	NATS_CONNECTING, /* the setup thread is at work */
	NATS_CONNECTED,
	NATS_DISCONNECTED,
};
static const char *nats_state_names[] = {
	[NATS_OFF] = "off",
	[NATS_WAIT_TEAM] = "waiting for the Slack workspace",
	[NATS_CONNECTING] = "connecting",
	[NATS_CONNECTED] = "connected",
	[NATS_DISCONNECTED] = "disconnected",
};

/* An event (or a gap record) waiting for JetStream's ack. */
struct nats_entry {
	TAILQ_ENTRY(nats_entry) entry;
	uint64_t seq; /* Slackd-Seq "<run>:<seq>"; 0 for a gap */
	char run[REPLAY_RUN_LEN + 1];
	int pending;  /* handed to js_PublishMsgAsync, no ack yet */
	int tried;    /* handed over at least once */
	char *suffix; /* the subject after the prefix */
	char *data;   /* the line, "\n" included */
	size_t len;
	char msgid[112]; /* Nats-Msg-Id */
	uint64_t first;  /* gap: the events lost, first_run:first to … */
	uint64_t last;
	char first_run[REPLAY_RUN_LEN + 1];
	uint64_t events;
};
TAILQ_HEAD(nats_list, nats_entry);

/* What a cnats thread tells the main thread. */
enum nats_note_type {
	NATS_NOTE_UP,      /* connected or reconnected */
	NATS_NOTE_DOWN,    /* disconnected */
	NATS_NOTE_CLOSED,  /* closed for good; ok: nats_gen then */
	NATS_NOTE_READY,   /* the stream is there, requests subscribed */
	NATS_NOTE_ERROR,   /* text: what went wrong */
	NATS_NOTE_ACK,     /* text: the Nats-Msg-Id; ok or error */
	NATS_NOTE_REQUEST, /* text: the reply subject; data: the request */
	NATS_NOTE_LEAD,    /* nats_ha: the lease is ours */
	NATS_NOTE_FOLLOW,  /* nats_ha: not ours (any more); text: why */
	NATS_NOTE_LEADER,  /* nats_ha: text: who holds the lease, or NULL */
	NATS_NOTE_STREAM,  /* standby: text: the subject; data: an event;
	                      key: its Slackd-Seq */
	NATS_NOTE_ANSWER,  /* text: our inbox subject; data: the leader's
	                      reply; ok 0: no one listened */
};
struct nats_note {
	STAILQ_ENTRY(nats_note) entry;
	enum nats_note_type type;
	int ok; /* ACK: 1, or 2 for a duplicate; 0: data says why not */
	char *text;
	char *data;
	size_t len;
	char *key; /* Slackd-Request-Id or Slackd-Seq, or NULL */
};
STAILQ_HEAD(nats_notes, nats_note);

/* A local client's request forwarded to the leader (a standby's). */
struct nats_fwd {
	TAILQ_ENTRY(nats_fwd) entry;
	uint64_t n; /* <inbox>.<n> */
	struct client *client;
	struct json_object *id; /* the request's, or NULL */
	char *line;
	size_t len;
	int sent; /* published and not refused as unheard */
	int64_t deadline;
	struct event *ev;
};
TAILQ_HEAD(nats_fwds, nats_fwd);

/* A Slackd-Request-Id the leader has seen, and its reply once given. */
struct nats_seen {
	TAILQ_ENTRY(nats_seen) entry;
	char *key;
	char *reply; /* NULL while running */
	size_t len;
	double at;
};
TAILQ_HEAD(nats_seens, nats_seen);

/* A request from NATS being answered. */
struct nats_req {
	TAILQ_ENTRY(nats_req) entry;
	struct client *client; /* virtual: no socket */
	char *reply;           /* the subject to answer on */
	int added_id;          /* the id is ours: take reply_to out again */
	int done;
	struct nats_seen *seen; /* its Slackd-Request-Id, or NULL */
};
TAILQ_HEAD(nats_reqs, nats_req);

static enum nats_state nats_state = NATS_OFF;
static char *nats_prefix;
static char *nats_stream;
static natsOptions *nats_opts;
static natsOptions *nats_ha_opts; /* nats_ha: the lease's own connection */
/*
 * The setup thread makes these; the main thread uses them once it has
 * read NATS_NOTE_READY (nats_ready), except nats_shutdown(), which closes
 * nats_nc under nats_lock to end the thread's waits.
 */
static natsConnection *nats_nc;
static jsCtx *nats_js;
static natsSubscription *nats_sub;
/*
 * nats_nkey_file's seed, in a locked page, under nats_seed_lock: cnats
 * signs with it on the main thread or its own while the setup thread
 * reads the file again (nats_probe()).
 */
static char *nats_seed;
static pthread_mutex_t nats_seed_lock = PTHREAD_MUTEX_INITIALIZER;
static char *nats_creds;       /* nats_creds_file, kept for natslogin */
static char nats_refusal[320]; /* setup thread: the server's last refusal */

static pthread_t nats_setup_thread;
static int nats_setup_running;
static pthread_mutex_t nats_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t nats_cond = PTHREAD_COND_INITIALIZER;
static int nats_stop;                 /* under nats_lock */
static struct nats_notes nats_inbox = /* under nats_lock */
    STAILQ_HEAD_INITIALIZER(nats_inbox);
static struct event *nats_wake_ev;
static struct event *nats_reap_ev;
static struct event *nats_retry_ev;
static struct event *nats_restart_ev;
static u_int nats_gen;   /* main thread: nats_start() calls so far */
static int nats_holding; /* nats_retry_ev armed: no publishing until then */

static struct nats_list nats_queue = TAILQ_HEAD_INITIALIZER(nats_queue);
/*
 * Where nats_pump() goes on: the first entry not handed over (NULL: past
 * the tail), while nats_cursor_ok; else it starts from the head.
 */
static struct nats_entry *nats_cursor;
static int nats_cursor_ok;
static size_t nats_bytes; /* in nats_queue */
static u_int nats_entries;
static u_int nats_inflight;
static int nats_ready;          /* the stream is known to be there */
static uint64_t nats_published; /* acknowledged */
static uint64_t nats_duplicates;
static uint64_t nats_gaps;
static uint64_t nats_lost;
static uint64_t nats_requests;
static char *nats_last_error;
static double nats_last_error_at;
static struct nats_reqs nats_reqs = TAILQ_HEAD_INITIALIZER(nats_reqs);

/* nats_ha */
static char nats_me[300];     /* the lease's value: host and pid */
static int nats_leading;      /* main thread: we lead */
static char *nats_leader_now; /* main thread: who leads, NULL: unknown */
static double nats_stream_at; /* main: the last event read from the stream */
static struct nats_fwds nats_fwds = TAILQ_HEAD_INITIALIZER(nats_fwds);
static uint64_t nats_fwd_next;
static uint64_t nats_forwarded;
static struct nats_seens nats_seens = TAILQ_HEAD_INITIALIZER(nats_seens);
static u_int nats_nseen;
static char *nats_inbox_subject;        /* <inbox>: the setup thread makes it */
static natsSubscription *nats_evsub;    /* setup thread's */
static natsSubscription *nats_inboxsub; /* setup thread's */
static int nats_ha_holds; /* under nats_lock: the thread holds the lease */

static void nats_start(void);
static void nats_notes(int);
static const char *nats_words(const char *);
static int nats_options(const struct config *, int, natsOptions **, char **);
static void nats_hold(void);
static int nats_seen(const char *, const char *, struct nats_seen **);

/* ---- notes from cnats's threads --------------------------------------- */

/*
 * A note for the main thread (a cnats thread's callback, or the setup
 * thread): text, data (len bytes) and key are copied.  After shutdown
 * (nats_wake_ev gone) a late callback's note is dropped.
 */
static void
nats_post_key(enum nats_note_type type, int ok, const char *text,
    const char *data, size_t len, const char *key)
{
	struct nats_note *n;

	n = xcalloc(1, sizeof *n);
	n->type = type;
	n->ok = ok;
	n->text = text != NULL ? xstrdup(text) : NULL;
	if (data != NULL) {
		n->data = xmalloc(len + 1);
		memcpy(n->data, data, len);
		n->data[len] = '\0';
		n->len = len;
	}
	n->key = key != NULL && *key != '\0' ? xstrdup(key) : NULL;
	pthread_mutex_lock(&nats_lock);
	if (nats_wake_ev == NULL) {
		pthread_mutex_unlock(&nats_lock);
		free(n->text);
		free(n->data);
		free(n->key);
		free(n);
		return;
	}
	STAILQ_INSERT_TAIL(&nats_inbox, n, entry);
	event_active(nats_wake_ev, EV_READ, 0);
	pthread_mutex_unlock(&nats_lock);
}

static void
nats_post(enum nats_note_type type, int ok, const char *text, const char *data,
    size_t len)
{
	nats_post_key(type, ok, text, data, len, NULL);
}

static void
nats_post_error(const char *what, natsStatus s)
{
	char buf[512];

	snprintf(buf, sizeof buf, "%s: %s", what, natsStatus_GetText(s));
	nats_post(NATS_NOTE_ERROR, 0, buf, NULL, 0);
}

static void
nats_up_cb(natsConnection *nc, void *arg)
{
	pthread_mutex_lock(&nats_lock);
	pthread_cond_broadcast(&nats_cond);
	pthread_mutex_unlock(&nats_lock);
	nats_post(NATS_NOTE_UP, 1, NULL, NULL, 0);
}

static void
nats_down_cb(natsConnection *nc, void *arg)
{
	nats_post(NATS_NOTE_DOWN, 0, NULL, NULL, 0);
}

/* cnats gave the connection up (arg: nats_gen when it was made). */
static void
nats_closed_cb(natsConnection *nc, void *arg)
{
	nats_post(NATS_NOTE_CLOSED, (int)(uintptr_t)arg, NULL, NULL, 0);
}

static void
nats_error_cb(
    natsConnection *nc, natsSubscription *sub, natsStatus s, void *arg)
{
	const char *txt = NULL;

	if (natsConnection_GetLastError(nc, &txt) != NATS_OK && txt != NULL &&
	    *txt != '\0')
		nats_post(NATS_NOTE_ERROR, 0, txt, NULL, 0);
	else
		nats_post_error("the server says", s);
}

static void
nats_ack_cb(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *arg)
{
	const char *id = NULL;
	char buf[512];

	if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK)
		id = NULL;
	if (pa != NULL)
		nats_post(NATS_NOTE_ACK, pa->Duplicate ? 2 : 1, id, NULL, 0);
	else {
		snprintf(buf, sizeof buf, "publish not acknowledged: %s%s%s",
		    natsStatus_GetText(pae != NULL ? pae->Err : NATS_ERR),
		    pae != NULL && pae->ErrText != NULL ? ": " : "",
		    pae != NULL && pae->ErrText != NULL ? pae->ErrText : "");
		nats_post(NATS_NOTE_ACK, 0, id, buf, strlen(buf));
	}
	natsMsg_Destroy(msg);
}

static void
nats_request_cb(
    natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
	const char *reply = natsMsg_GetReply(msg), *key = NULL;

	if (natsMsgHeader_Get(msg, "Slackd-Request-Id", &key) != NATS_OK)
		key = NULL;
	if (reply != NULL && *reply != '\0')
		nats_post_key(NATS_NOTE_REQUEST, 1, reply, natsMsg_GetData(msg),
		    (size_t)natsMsg_GetDataLength(msg), key);
	natsMsg_Destroy(msg);
}

/* A standby: an event the leader published. */
static void
nats_stream_cb(
    natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
	const char *seq = NULL;

	if (natsMsgHeader_Get(msg, "Slackd-Seq", &seq) != NATS_OK)
		seq = NULL;
	nats_post_key(NATS_NOTE_STREAM, 1, natsMsg_GetSubject(msg),
	    natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), seq);
	natsMsg_Destroy(msg);
}

/* The leader's answer to a forwarded request, or NATS's "no one". */
static void
nats_answer_cb(
    natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
	nats_post(NATS_NOTE_ANSWER, natsMsg_IsNoResponders(msg) ? 0 : 1,
	    natsMsg_GetSubject(msg), natsMsg_GetData(msg),
	    (size_t)natsMsg_GetDataLength(msg));
	natsMsg_Destroy(msg);
}

/* nats_nkey_file: sign the server's nonce with the seed. */
static natsStatus
nats_sign_cb(
    char **err, unsigned char **sig, int *siglen, const char *nonce, void *arg)
{
	natsStatus s;

	pthread_mutex_lock(&nats_seed_lock);
	s = natslogin_sign(nats_seed, nonce, sig, siglen, err);
	pthread_mutex_unlock(&nats_seed_lock);
	return s;
}

/* ---- setting up, on a thread of its own ------------------------------- */

static int
nats_stopping(void)
{
	int stop;

	pthread_mutex_lock(&nats_lock);
	stop = nats_stop;
	pthread_mutex_unlock(&nats_lock);
	return stop;
}

/* Wait ms, or less if told to stop or that the connection is up. */
static void
nats_nap(int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&nats_lock);
	if (!nats_stop)
		pthread_cond_timedwait(&nats_cond, &nats_lock, &ts);
	pthread_mutex_unlock(&nats_lock);
}

/* The stream: used as it is if there is one, else made. */
static natsStatus
nats_ensure_stream(void)
{
	jsStreamInfo *si = NULL;
	jsStreamConfig cfg;
	jsErrCode jerr = 0;
	const char *subjects[1];
	char *subject, buf[512];
	natsStatus s;

	s = js_GetStreamInfo(&si, nats_js, nats_stream, NULL, &jerr);
	if (s == NATS_OK) {
		jsStreamInfo_Destroy(si);
		return NATS_OK;
	}
	if (s != NATS_NOT_FOUND) {
		nats_post_error("looking up the stream", s);
		return s;
	}
	xasprintf(&subject, "%s.event.>", nats_prefix);
	subjects[0] = subject;
	jsStreamConfig_Init(&cfg);
	cfg.Name = nats_stream;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	cfg.MaxAge = slackd_conf->nats_max_age * 1000000;
	cfg.MaxBytes = (int64_t)slackd_conf->nats_max_bytes;
	s = js_AddStream(&si, nats_js, &cfg, NULL, &jerr);
	free(subject);
	if (s != NATS_OK) {
		snprintf(buf, sizeof buf, "creating the stream %s: %s (%s)",
		    nats_stream, natsStatus_GetText(s),
		    nats_GetLastError(NULL) != NULL ? nats_GetLastError(NULL)
		                                    : "no detail");
		nats_post(NATS_NOTE_ERROR, 0, buf, NULL, 0);
		return s;
	}
	jsStreamInfo_Destroy(si);
	log_info("NATS: created the stream %s for %s.event.>", nats_stream,
	    nats_prefix);
	return NATS_OK;
}

/* While not connected: why not, once per new reason. */
static void
nats_setup_why(void)
{
	static char last[320];
	static unsigned long unsendable;
	static int64_t quiet_until;
	const char *txt = NULL;
	char buf[320], said[256];
	natsStatus s;

	if (nats_nc == NULL ||
	    (s = natsConnection_GetLastError(nats_nc, &txt)) == NATS_OK)
		return;
	/* cnats's buffer: its threads may write it meanwhile (once seen "") */
	snprintf(said, sizeof said, "%s", txt != NULL ? txt : "");
	if (natslogin_unsendable() != unsendable) {
		/* natslogin refused a nonce: cnats tries again soon */
		unsendable = natslogin_unsendable();
		quiet_until = util_now_ms() + NATS_SIGN_QUIET;
	}
	if (util_now_ms() < quiet_until)
		return;
	txt = nats_words(said);
	/* What the server said, before cnats says only "no server". */
	if (s != NATS_NO_SERVER && txt != NULL && *txt != '\0')
		snprintf(nats_refusal, sizeof nats_refusal, "%s", txt);
	else if (*nats_refusal != '\0')
		return; /* nats_closed() says it */
	snprintf(buf, sizeof buf, "cannot connect: %s",
	    txt != NULL && *txt != '\0' ? txt : natsStatus_GetText(s));
	if (strcmp(buf, last) == 0)
		return;
	snprintf(last, sizeof last, "%s", buf);
	nats_post(NATS_NOTE_ERROR, 0, buf, NULL, 0);
}

static void
nats_subscribe_requests(void)
{
	char *subject;
	natsStatus s;

	xasprintf(&subject, "%s.request", nats_prefix);
	s = natsConnection_QueueSubscribe(
	    &nats_sub, nats_nc, subject, "slackd", nats_request_cb, NULL);
	free(subject);
	if (s != NATS_OK)
		nats_post_error("subscribing to requests", s);
}

/* ---- nats_ha: the lease, on the setup thread -------------------------- */

static int64_t
nats_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The bucket: made if missing (MaxAge ha_lease), else used as it is. */
static kvStore *
nats_ha_bucket(natsConnection *nc, jsCtx *js)
{
	kvStore *kv = NULL;
	kvConfig cfg;
	char bucket[256], *p;
	natsStatus s;

	snprintf(bucket, sizeof bucket, "SLACKD_HA_%s", nats_stream);
	for (p = bucket; *p != '\0'; p++) {
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			*p = '_';
	}
	while (!nats_stopping() &&
	    natsConnection_Status(nc) != NATS_CONN_STATUS_CLOSED) {
		if (js_KeyValue(&kv, js, bucket) == NATS_OK)
			return kv;
		kvConfig_Init(&cfg);
		cfg.Bucket = bucket;
		cfg.History = 1;
		cfg.TTL = slackd_conf->ha_lease * 1000000; /* ns */
		cfg.StorageType = js_FileStorage;
		if ((s = js_CreateKeyValue(&kv, js, &cfg)) == NATS_OK)
			return kv;
		nats_post_error("making the nats_ha bucket", s);
		nats_nap(NATS_RETRY_WAIT);
	}
	return NULL;
}

/* Who holds the lease now (a standby's view), for slackd.state. */
static void
nats_ha_who(kvStore *kv, char *last, size_t size)
{
	kvEntry *e = NULL;
	const char *v = NULL;
	natsStatus s;

	s = kvStore_Get(&e, kv, NATS_HA_KEY);
	if (s == NATS_OK)
		v = kvEntry_ValueString(e);
	else if (s != NATS_NOT_FOUND) {
		kvEntry_Destroy(e);
		return; /* cannot tell */
	}
	if (v == NULL)
		v = "";
	if (strcmp(v, last) != 0) {
		snprintf(last, size, "%s", v);
		nats_post(NATS_NOTE_LEADER, 1, *v != '\0' ? v : NULL, NULL, 0);
	}
	kvEntry_Destroy(e);
}

static void
nats_ha_holding(int holds)
{
	pthread_mutex_lock(&nats_lock);
	nats_ha_holds = holds;
	pthread_mutex_unlock(&nats_lock);
}

/* Stand down: off Slack first, then give up the request subject. */
static void
nats_ha_follow(const char *why)
{
	nats_ha_holding(0);
	nats_post(NATS_NOTE_FOLLOW, 1, why, NULL, 0);
	natsSubscription_Unsubscribe(nats_sub);
	natsSubscription_Destroy(nats_sub);
	nats_sub = NULL;
}

/*
 * A standby reads the events from the stream with an ordered consumer,
 * from the next one published on: after a drop of its link to NATS cnats
 * makes the consumer again from the last one read, so none is missed
 * (and no number skipped, hub_inject_as()) while the stream has them.
 */
static natsStatus
nats_follow(const char *subject)
{
	jsSubOptions so;
	jsErrCode jerr = 0;

	jsSubOptions_Init(&so);
	so.Stream = nats_stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverNew;
	return js_Subscribe(&nats_evsub, nats_js, subject, nats_stream_cb, NULL,
	    NULL, &so, &jerr);
}

/*
 * The lease's connection: its own, on cnats's threads (the main loop may
 * be busy, or at a clean stop waiting for this thread to release the
 * lease).  Made here until it works, not by cnats's retry on a failed
 * first connection: libnats 3.4.1 closes such a connection for good when
 * its first attempt fails in the signature handler (natslogin.c).
 */
static natsConnection *
nats_ha_connect(void)
{
	natsConnection *nc = NULL;
	natsStatus s;

	while (!nats_stopping()) {
		if ((s = natslogin_connect(&nc, nats_ha_opts)) == NATS_OK)
			return nc;
		nats_post_error("connecting for nats_ha", s);
		nats_nap(NATS_RETRY_WAIT);
	}
	return NULL;
}

/*
 * Hold the lease on kv until slackd stops or the connection is closed
 * for good: try to take it while another holds it, renew it while we do,
 * stand down when a renewal is overdue.  *lead and *rev persist.
 */
static void
nats_ha_lease(
    natsConnection *nc, kvStore *kv, int64_t wait, int *lead, uint64_t *rev)
{
	kvEntry *e;
	char who[300] = "", why[512];
	int64_t lease = slackd_conf->ha_lease, now, sent, last_ok = nats_ms();
	uint64_t r;
	natsStatus s;

	while (!nats_stopping()) {
		if (natsConnection_Status(nc) == NATS_CONN_STATUS_CLOSED) {
			if (*lead) {
				*lead = 0;
				nats_ha_follow(
				    "the lease's connection to NATS was closed");
			}
			return;
		}
		now = nats_ms();
		if (*lead && now - last_ok + wait >= lease * 3 / 4) {
			snprintf(why, sizeof why,
			    "the lease was not renewed for %.1f s: standing down before it runs out",
			    (double)(now - last_ok) / 1000);
			*lead = 0;
			nats_ha_follow(why);
			*who = '\0';
			continue;
		}
		if (*lead && now - last_ok < lease / 3) {
			nats_nap(last_ok + lease / 3 - now);
			continue;
		}
		sent = nats_ms();
		if (*lead) {
			s = kvStore_UpdateString(
			    &r, kv, NATS_HA_KEY, nats_me, *rev);
			if (s == NATS_OK) {
				*rev = r;
				last_ok = sent;
				continue;
			}
			/* Taken by another (we were too late)? */
			e = NULL;
			if (kvStore_Get(&e, kv, NATS_HA_KEY) == NATS_OK &&
			    kvEntry_Revision(e) != *rev) {
				*lead = 0;
				nats_ha_follow(
				    "another slackd holds the lease");
			}
			kvEntry_Destroy(e);
			nats_nap(100);
			continue;
		}
		s = kvStore_CreateString(&r, kv, NATS_HA_KEY, nats_me);
		if (s == NATS_OK) {
			*rev = r;
			last_ok = sent;
			*lead = 1;
			nats_ha_holding(1);
			nats_subscribe_requests();
			nats_post(NATS_NOTE_LEAD, 1, NULL, NULL, 0);
			continue;
		}
		nats_ha_who(kv, who, sizeof who);
		nats_nap(lease / 4);
	}
}

/*
 * The lease, until slackd stops: a connection and the bucket, the
 * stream's events followed (once), the lease held; a connection cnats
 * closes for good is made again.
 */
static void
nats_ha_loop(void)
{
	natsConnection *nc;
	jsCtx *js = NULL;
	jsOptions jo;
	kvStore *kv;
	char subject[512];
	int64_t lease = slackd_conf->ha_lease;
	uint64_t rev = 0;
	int lead = 0, following = 0;
	natsStatus s;

	jsOptions_Init(&jo);
	jo.Wait = lease / 5 > 2000 ? 2000 : lease / 5 > 100 ? lease / 5 : 100;
	while ((nc = nats_ha_connect()) != NULL) {
		kv = NULL;
		if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK)
			nats_post_error("JetStream", s);
		else
			kv = nats_ha_bucket(nc, js);
		if (kv != NULL && !following) {
			snprintf(
			    subject, sizeof subject, "%s.event.>", nats_prefix);
			s = nats_follow(subject);
			if (s == NATS_OK)
				s = natsConnection_Subscribe(&nats_inboxsub,
				    nats_nc, nats_inbox_subject, nats_answer_cb,
				    NULL);
			if (s != NATS_OK)
				nats_post_error("subscribing for nats_ha", s);
			following = 1;
		}
		if (kv != NULL)
			nats_ha_lease(nc, kv, jo.Wait, &lead, &rev);
		if (lead) { /* a clean stop: the next may lead at once */
			if ((s = kvStore_Delete(kv, NATS_HA_KEY)) != NATS_OK)
				nats_post_error("releasing the lease", s);
			nats_ha_holding(0);
			lead = 0;
		}
		kvStore_Destroy(kv);
		jsCtx_Destroy(js);
		js = NULL;
		natsConnection_Close(nc);
		natsConnection_Destroy(nc);
		if (!nats_stopping())
			nats_nap(NATS_RETRY_WAIT);
	}
}

/* nats_nc and nats_js: a connection (cnats goes on trying by itself). */
static natsStatus
nats_connect(void)
{
	natsConnection *nc = NULL;
	jsOptions jo;
	natsStatus s;

	s = natsConnection_Connect(&nc, nats_opts);
	if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
		nats_post_error("connecting", s);
		return s;
	}
	pthread_mutex_lock(&nats_lock); /* for nats_shutdown() */
	nats_nc = nc;
	pthread_mutex_unlock(&nats_lock);
	jsOptions_Init(&jo);
	jo.Wait = NATS_JS_WAIT;
	jo.PublishAsync.AckHandler = nats_ack_cb;
	jo.PublishAsync.MaxPending = 1000000; /* never stall: NATS_WINDOW */
	if ((s = natsConnection_JetStream(&nats_js, nats_nc, &jo)) != NATS_OK)
		nats_post_error("JetStream", s);
	return s;
}

/* An error text without where in cnats it was made ("(conn.c:1905): "). */
static const char *
nats_words(const char *txt)
{
	const char *p;

	if (txt != NULL && *txt == '(' && (p = strstr(txt, "): ")) != NULL)
		return p + 3;
	return txt;
}

/*
 * One connection without cnats's retries, to learn what the server says
 * (into nats_refusal).  0 if it was taken.
 */
static int
nats_probe(void)
{
	natsConnection *nc = NULL;
	natsOptions *o;
	const char *txt;
	natsStatus s, st;
	char *err = NULL;

	if (nats_options(slackd_conf, 0, &o, &err) != 0) {
		snprintf(nats_refusal, sizeof nats_refusal, "%s", err);
		free(err);
		return -1;
	}
	/* nats_options(…, 0, …) asks cnats for no retry of a first connect */
	s = natsOptions_SetMaxReconnect(o, 0);
	if (s == NATS_OK)
		s = natslogin_connect(&nc, o);
	if (s != NATS_OK) {
		txt = nats_words(nats_GetLastError(&st));
		snprintf(nats_refusal, sizeof nats_refusal, "%s",
		    txt != NULL && *txt != '\0' ? txt : natsStatus_GetText(s));
	}
	natsConnection_Destroy(nc);
	natsOptions_Destroy(o);
	return s == NATS_OK ? 0 : -1;
}

/*
 * cnats gave up: a server that refuses the credentials twice is dropped
 * from its list, and with it the connection.  Say so, and start over in
 * NATS_CLOSED_WAIT with a new connection, in case the server is mended
 * meanwhile (before NATS_NOTE_READY the main thread uses neither).
 */
static void
nats_closed(void)
{
	static char last[640];
	natsConnection *nc;
	char buf[640];

	/* cnats no longer says why: ask the server ourselves. */
	if (*nats_refusal != '\0' || nats_probe() != 0) {
		snprintf(buf, sizeof buf,
		    "cannot connect: NATS refused slackd (%s) and libnats stopped trying; connecting again in %d s (check nats_user and nats_password_file, nats_creds_file or nats_nkey_file, and the server's users)",
		    *nats_refusal != '\0' ? nats_refusal : "it gave no reason",
		    NATS_CLOSED_WAIT / 1000);
		if (strcmp(buf, last) != 0) /* once, not every time */
			nats_post(NATS_NOTE_ERROR, 0, buf, NULL, 0);
		snprintf(last, sizeof last, "%s", buf);
		nats_nap(NATS_CLOSED_WAIT);
		if (nats_stopping())
			return;
	}
	jsCtx_Destroy(nats_js);
	nats_js = NULL;
	pthread_mutex_lock(&nats_lock);
	nc = nats_nc;
	nats_nc = NULL;
	pthread_mutex_unlock(&nats_lock);
	natsConnection_Destroy(nc);
	if (nats_connect() != NATS_OK)
		nats_nap(NATS_CLOSED_WAIT);
}

/*
 * Connect, then make sure of the stream and subscribe to requests, trying
 * again until it works or slackd stops.
 */
static void *
nats_setup(void *arg)
{
	natsConnStatus st;

	if (nats_connect() != NATS_OK)
		return NULL;
	while (!nats_stopping()) {
		st = nats_nc != NULL ? natsConnection_Status(nats_nc)
		                     : NATS_CONN_STATUS_CLOSED;
		if (st == NATS_CONN_STATUS_CLOSED) {
			nats_setup_why();
			nats_closed();
			continue;
		}
		if (st != NATS_CONN_STATUS_CONNECTED) {
			/* Often: a refusal is seen only until cnats gives up.
			 */
			nats_setup_why();
			nats_nap(100);
			continue;
		}
		if (nats_ensure_stream() == NATS_OK)
			break;
		nats_nap(NATS_RETRY_WAIT);
	}
	if (nats_stopping())
		return NULL;
	if (slackd_conf->nats_ha) {
		nats_post(NATS_NOTE_READY, 1, NULL, NULL, 0);
		nats_ha_loop();
		return NULL;
	}
	nats_subscribe_requests();
	nats_post(NATS_NOTE_READY, 1, NULL, NULL, 0);
	return NULL;
}

/* ---- credentials ------------------------------------------------------ */

/*
 * A secret file, checked as token_file is: a regular file owned by us or
 * root that group and others cannot access.  Returns its contents (in a
 * locked page, trailing white space removed) or NULL with *err set.
 */
static char *
nats_secret_file(const char *key, const char *path, char **err)
{
	char *secret;

	if ((secret = token_read_secret(key, path, NATS_SECRET_MAX, err)) ==
	    NULL)
		return NULL;
	if (*secret == '\0') {
		token_secret_free(secret);
		xasprintf(err, "%s %s is empty", key, path);
		return NULL;
	}
	return secret;
}

/* The seed and public key from an nk -gen user -pubout file. */
static int
nats_nkey(const char *path, char **pub, char **err)
{
	char *all, *p, *line, *seed = NULL;

	*pub = NULL;
	if ((all = nats_secret_file("nats_nkey_file", path, err)) == NULL)
		return -1;
	for (p = all; (line = strsep(&p, "\r\n")) != NULL;) {
		line += strspn(line, " \t");
		line[strcspn(line, " \t")] = '\0';
		if (line[0] == 'S' && line[1] == 'U' && seed == NULL)
			seed = line;
		else if (line[0] == 'U' && *pub == NULL)
			*pub = xstrdup(line);
	}
	if (seed == NULL || *pub == NULL) {
		xasprintf(err,
		    "nats_nkey_file %s must hold a user seed (SU...) and its public key (U...) on lines of their own, as \"nk -gen user -pubout\" writes them",
		    path);
		free(*pub);
		*pub = NULL;
		token_secret_free(all);
		return -1;
	}
	pthread_mutex_lock(&nats_seed_lock); /* read once per connection */
	token_secret_free(nats_seed);
	nats_seed = token_secret_dup(seed);
	pthread_mutex_unlock(&nats_seed_lock);
	token_secret_free(all);
	return 0;
}

/*
 * Check the NATS settings that need the file system (the secret files,
 * the CA file) before anything starts.  Returns 0, or -1 with *err set.
 */
int
nats_check(const struct config *conf, char **err)
{
	char *secret, *pub = NULL, *jwt, *seed;

	if (conf->nats_url == NULL)
		return 0;
	if (conf->nats_creds_file != NULL) {
		if ((secret = nats_secret_file("nats_creds_file",
		         conf->nats_creds_file, err)) == NULL)
			return -1;
		if (natslogin_creds_parse(secret, &jwt, &seed) != 0) {
			xasprintf(err,
			    "nats_creds_file %s holds no user JWT and seed (as \"nsc generate creds\" writes them)",
			    conf->nats_creds_file);
			token_secret_free(secret);
			return -1;
		}
		token_secret_free(secret);
	}
	if (conf->nats_password_file != NULL) {
		if ((secret = nats_secret_file("nats_password_file",
		         conf->nats_password_file, err)) == NULL)
			return -1;
		token_secret_free(secret);
	}
	if (conf->nats_nkey_file != NULL) {
		if (nats_nkey(conf->nats_nkey_file, &pub, err) != 0)
			return -1;
		free(pub);
		token_secret_free(nats_seed);
		nats_seed = NULL;
	}
	if (conf->nats_ca_file != NULL &&
	    access(conf->nats_ca_file, R_OK) == -1) {
		xasprintf(err, "nats_ca_file %s: %s", conf->nats_ca_file,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The connection's options from the configuration: on the main loop
 * (loop), or with cnats's own threads for the lease (nats_ha_loop()).
 */
static int
nats_options(const struct config *conf, int loop, natsOptions **out, char **err)
{
	const char *servers[64];
	char *urls, *p, *u, *secret, *pub;
	natsOptions *o;
	natsStatus s;
	int n = 0, tls = 0;

	if (natsOptions_Create(&o) != NATS_OK)
		fatalx("natsOptions_Create");
	urls = p = xstrdup(conf->nats_url);
	while ((u = strsep(&p, ",")) != NULL && n < (int)nitems(servers)) {
		u += strspn(u, " \t");
		u[strcspn(u, " \t")] = '\0';
		if (*u == '\0')
			continue;
		if (strncmp(u, "tls://", 6) == 0)
			tls = 1;
		servers[n++] = u;
	}
	s = natsOptions_SetServers(o, servers, n);
	free(urls);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, "slackd");
	if (s == NATS_OK && loop)
		s = natsOptions_SetEventLoop(o, slackd_base,
		    natsLibevent_Attach, natsLibevent_Read, natsLibevent_Write,
		    natsLibevent_Detach);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 500);
	if (s == NATS_OK && loop) /* nats_ha_connect() retries the other */
		s = natsOptions_SetRetryOnFailedConnect(
		    o, true, nats_up_cb, NULL);
	if (s == NATS_OK && loop)
		s = natsOptions_SetReconnectedCB(o, nats_up_cb, NULL);
	if (s == NATS_OK && loop)
		s = natsOptions_SetDisconnectedCB(o, nats_down_cb, NULL);
	if (s == NATS_OK && loop)
		s = natsOptions_SetClosedCB(
		    o, nats_closed_cb, (void *)(uintptr_t)nats_gen);
	if (s == NATS_OK && loop)
		s = natsOptions_SetErrorHandler(o, nats_error_cb, NULL);
	if (s == NATS_OK && tls)
		s = natsOptions_SetSecure(o, true);
	if (s == NATS_OK && conf->nats_ca_file != NULL)
		s = natsOptions_LoadCATrustedCertificates(
		    o, conf->nats_ca_file);
	if (s == NATS_OK && conf->nats_creds_file != NULL) {
		if (nats_creds == NULL) /* a restart setting: never changes */
			nats_creds = xstrdup(conf->nats_creds_file);
		s = natslogin_creds(o, nats_creds);
	}
	if (s == NATS_OK && conf->nats_user != NULL) {
		secret = nats_secret_file(
		    "nats_password_file", conf->nats_password_file, err);
		if (secret == NULL) {
			natsOptions_Destroy(o);
			return -1;
		}
		s = natsOptions_SetUserInfo(o, conf->nats_user, secret);
		token_secret_free(secret);
	}
	if (s == NATS_OK && conf->nats_nkey_file != NULL) {
		if (nats_nkey(conf->nats_nkey_file, &pub, err) != 0) {
			natsOptions_Destroy(o);
			return -1;
		}
		s = natsOptions_SetNKey(o, pub, nats_sign_cb, NULL);
		free(pub);
	}
	if (s != NATS_OK) {
		xasprintf(err, "NATS options: %s", natsStatus_GetText(s));
		natsOptions_Destroy(o);
		return -1;
	}
	*out = o;
	return 0;
}

/* ---- events to JetStream ---------------------------------------------- */

static void nats_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Keep (and log) the latest thing that went wrong, for slackctl status. */
static void
nats_error(const char *fmt, ...)
{
	va_list ap;
	char *why;

	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) == -1)
		fatal("vasprintf");
	va_end(ap);
	if (nats_last_error == NULL || strcmp(nats_last_error, why) != 0)
		log_warnx("NATS: %s", why);
	free(nats_last_error);
	nats_last_error = why;
	nats_last_error_at = util_wall();
}

/* Make s usable as one subject token: no dot, space, * or >. */
static void
nats_token(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '.' || *s == '*' || *s == '>' ||
		    !isgraph((unsigned char)*s))
			*s = '_';
	}
}

static void
nats_entry_free(struct nats_entry *e)
{
	free(e->suffix);
	free(e->data);
	free(e);
}

static size_t
nats_entry_size(const struct nats_entry *e)
{
	return sizeof *e + e->len + strlen(e->suffix);
}

static void
nats_remove(struct nats_entry *e)
{
	if (e == nats_cursor)
		nats_cursor = TAILQ_NEXT(e, entry);
	if (e->pending)
		nats_inflight--;
	TAILQ_REMOVE(&nats_queue, e, entry);
	nats_bytes -= nats_entry_size(e);
	nats_entries--;
	nats_entry_free(e);
}

/* Everything goes back to waiting: published again from the oldest. */
static void
nats_rewind(void)
{
	struct nats_entry *e;

	TAILQ_FOREACH(e, &nats_queue, entry)
		e->pending = 0;
	nats_inflight = 0;
	nats_cursor_ok = 0;
}

/*
 * Over nats_backlog: drop the oldest events; the gap entry at the head
 * (one not published yet, else a new one) says which were lost.
 */
static void
nats_trim(void)
{
	struct nats_entry *e, *g;
	int logged = 0;

	while (nats_bytes > slackd_conf->nats_backlog) {
		TAILQ_FOREACH(e, &nats_queue, entry) {
			if (e->seq != 0)
				break;
		}
		if (e == NULL)
			return;
		if (!logged++)
			nats_error(
			    "nats_backlog (%zu bytes) is full: dropping the oldest events JetStream has not acknowledged (a slackd.gap record says which)",
			    slackd_conf->nats_backlog);
		g = TAILQ_FIRST(&nats_queue);
		if (g->seq != 0 || g->tried) {
			g = xcalloc(1, sizeof *g);
			g->suffix = xstrdup("event.slackd_gap");
			g->first = e->seq;
			memcpy(g->first_run, e->run, sizeof g->first_run);
			TAILQ_INSERT_HEAD(&nats_queue, g, entry);
			nats_cursor_ok = 0;
			nats_bytes += nats_entry_size(g);
			nats_entries++;
			nats_gaps++;
		}
		g->last = e->seq;
		memcpy(g->run, e->run, sizeof g->run);
		g->events++;
		nats_lost++;
		nats_remove(e);
	}
}

/* A gap's record, made when it is first published (its range is final). */
static void
nats_gap_record(struct nats_entry *g)
{
	char cur[REPLAY_CURSOR_MAX];
	struct json_object *o;
	const char *s;
	size_t len;

	o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string("slackd.gap"));
	json_object_object_add(
	    o, "first_seq", json_object_new_int64((int64_t)g->first));
	json_object_object_add(
	    o, "last_seq", json_object_new_int64((int64_t)g->last));
	json_object_object_add(o, "first",
	    json_object_new_string(replay_cursor(cur, g->first_run, g->first)));
	json_object_object_add(o, "last",
	    json_object_new_string(replay_cursor(cur, g->run, g->last)));
	json_object_object_add(
	    o, "events", json_object_new_int64((int64_t)g->events));
	json_object_object_add(
	    o, "missed", json_object_new_int64((int64_t)g->events));
	/* As every slackd.gap: a reason word, and why for a person. */
	json_object_object_add(
	    o, "reason", json_object_new_string("nats_backlog"));
	json_object_object_add(o, "why",
	    json_object_new_string(
	        "nats_backlog was full while JetStream did not acknowledge these events; they may or may not be in the stream"));
	s = json_object_to_json_string_length(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	nats_bytes -= nats_entry_size(g);
	free(g->data);
	g->data = xmalloc(len + 2);
	memcpy(g->data, s, len);
	g->data[len] = '\n';
	g->data[len + 1] = '\0';
	g->len = len + 1;
	nats_bytes += nats_entry_size(g);
	snprintf(g->msgid, sizeof g->msgid, "slackd.gap-%s-%llu-%s-%llu",
	    g->first_run, (unsigned long long)g->first, g->run,
	    (unsigned long long)g->last);
	json_object_put(o);
}

/* Hand e to cnats.  -1: it did not take it (the error is kept). */
static int
nats_publish(struct nats_entry *e)
{
	natsMsg *m = NULL;
	jsPubOptions po;
	natsStatus s;
	char *subject, seq[REPLAY_CURSOR_MAX];

	if (e->seq == 0 && !e->tried)
		nats_gap_record(e);
	xasprintf(&subject, "%s.%s", nats_prefix, e->suffix);
	s = natsMsg_Create(&m, subject, NULL, e->data, (int)e->len);
	free(subject);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", e->msgid);
	if (s == NATS_OK && e->seq != 0)
		s = natsMsgHeader_Set(
		    m, "Slackd-Seq", replay_cursor(seq, e->run, e->seq));
	jsPubOptions_Init(&po);
	po.MaxWait = NATS_ACK_WAIT;
	if (s == NATS_OK)
		s = js_PublishMsgAsync(nats_js, &m, &po);
	natsMsg_Destroy(m);
	if (s != NATS_OK) {
		nats_error("publishing: %s", natsStatus_GetText(s));
		return -1;
	}
	e->pending = e->tried = 1;
	nats_inflight++;
	return 0;
}

/* Publish what waits, oldest first, while the window has room. */
static void
nats_pump(void)
{
	struct nats_entry *e;

	if (nats_state != NATS_CONNECTED || !nats_ready || nats_holding)
		return;
	/*
	 * cnats knows of a drop (read on this loop) before its note comes:
	 * what is published meanwhile it holds and sends when it reconnects,
	 * ahead of the older events published again then (out of order).
	 */
	if (natsConnection_Status(nats_nc) != NATS_CONN_STATUS_CONNECTED)
		return;
	e = nats_cursor_ok ? nats_cursor : TAILQ_FIRST(&nats_queue);
	for (; e != NULL; e = TAILQ_NEXT(e, entry)) {
		if (nats_inflight >= NATS_WINDOW)
			break;
		if (!e->pending && nats_publish(e) != 0) {
			nats_hold();
			break;
		}
	}
	nats_cursor = e;
	nats_cursor_ok = 1;
}

static void
nats_retry_cb(evutil_socket_t fd, short events, void *arg)
{
	nats_holding = 0;
	nats_pump();
}

/* Something failed: publish again in NATS_RETRY_WAIT, not at once. */
static void
nats_hold(void)
{
	struct timeval tv = { NATS_RETRY_WAIT / 1000,
		(NATS_RETRY_WAIT % 1000) * 1000 };

	if (nats_holding)
		return;
	nats_holding = 1;
	evtimer_add(nats_retry_ev, &tv);
}

static void
nats_acked(const char *id, int ok, int duplicate, const char *why)
{
	struct nats_entry *e;

	TAILQ_FOREACH(e, &nats_queue, entry) {
		if (id != NULL && strcmp(e->msgid, id) == 0)
			break;
	}
	if (e == NULL)
		return; /* a late answer to an earlier try */
	if (!ok) {
		/* Try again from the oldest, in order, after a while. */
		nats_error("%s", why);
		nats_rewind();
		nats_hold();
		return;
	}
	nats_published++;
	if (duplicate)
		nats_duplicates++;
	nats_remove(e);
}

/*
 * An event's identity, its Nats-Msg-Id: for a message, its channel and
 * ts (Slack's own identity of a message, so a recovered copy, marked
 * slackd_backfill, is the same message as the live one); for anything
 * else a SHA-256 of its bytes (two events with the same bytes are one).
 */
static void
nats_msgid(const struct hub_event *ev, char *id, size_t size)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	size_t i;

	if (strcmp(ev->type, "message") == 0 && *ev->channel != '\0' &&
	    *ev->ts != '\0' &&
	    (size_t)snprintf(id, size, "message:%s:%s", ev->channel, ev->ts) <
	        size)
		return;
	SHA256((const unsigned char *)ev->line, ev->len, md);
	for (i = 0; i < sizeof md && 2 * i + 2 < size; i++)
		snprintf(id + 2 * i, 3, "%02x", md[i]);
}

/*
 * The hub's consumer: every event, on the main thread, before the
 * clients get it.  Copies the line and returns.
 */
static void
nats_event(const struct hub_event *ev)
{
	const char *line = ev->line;
	size_t len = ev->len;
	struct nats_entry *e;
	char t[JSCAN_FIELD], c[JSCAN_FIELD];

	if (slackd_conf->nats_ha && !nats_leading)
		return; /* the leader publishes; this came from the stream */
	snprintf(t, sizeof t, "%s", *ev->type != '\0' ? ev->type : "_");
	snprintf(c, sizeof c, "%s", ev->channel != NULL ? ev->channel : "");
	nats_token(t);
	nats_token(c);
	e = xcalloc(1, sizeof *e);
	e->seq = ev->seq; /* as local clients see it */
	snprintf(e->run, sizeof e->run, "%s", ev->run);
	if (*c != '\0')
		xasprintf(&e->suffix, "event.%s.%s", t, c);
	else
		xasprintf(&e->suffix, "event.%s", t);
	e->data = xmemdup(line, len);
	e->len = len;
	nats_msgid(ev, e->msgid, sizeof e->msgid);
	TAILQ_INSERT_TAIL(&nats_queue, e, entry);
	if (nats_cursor_ok && nats_cursor == NULL)
		nats_cursor = e;
	nats_bytes += nats_entry_size(e);
	nats_entries++;
	nats_trim();
	nats_pump();
}

/* ---- requests --------------------------------------------------------- */

static void
nats_req_free(struct nats_req *r)
{
	TAILQ_REMOVE(&nats_reqs, r, entry);
	client_virtual_free(r->client);
	free(r->reply);
	free(r);
}

static void
nats_reap_cb(evutil_socket_t fd, short events, void *arg)
{
	struct nats_req *r, *next;

	TAILQ_FOREACH_SAFE(r, &nats_reqs, entry, next) {
		if (r->done)
			nats_req_free(r);
	}
}

/* The first line the request's client is sent: the reply. */
static void
nats_reply(void *arg, const char *line, size_t len)
{
	struct nats_req *r = arg;
	struct json_object *o = NULL;
	natsStatus s;

	if (r->done)
		return;
	/* A notice before the reply (slackd.queued) is not the answer. */
	if (len > sizeof NATS_NOTICE - 1 &&
	    memcmp(line, NATS_NOTICE, sizeof NATS_NOTICE - 1) == 0)
		return;
	r->done = 1;
	event_active(nats_reap_ev, EV_TIMEOUT, 0);
	if (r->added_id && (o = json_tokener_parse(line)) != NULL &&
	    json_object_is_type(o, json_type_object)) {
		json_object_object_del(o, "reply_to");
		line = json_object_to_json_string_length(o,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
		    &len);
	}
	if (r->seen != NULL) {
		r->seen->reply = xmemdup(line, len);
		r->seen->len = len;
	}
	if (nats_nc != NULL &&
	    (s = natsConnection_Publish(nats_nc, r->reply, line, (int)len)) !=
	        NATS_OK)
		nats_error("answering a request: %s", natsStatus_GetText(s));
	json_object_put(o);
}

/* A request from NATS: run it as a local client's. */
static void
nats_request(const char *reply, const char *data, size_t len, const char *key)
{
	struct json_object *o, *id;
	struct nats_req *r;
	struct nats_seen *seen = NULL;
	const char *line = data;

	if (key != NULL && nats_seen(key, reply, &seen))
		return;
	nats_requests++;
	r = xcalloc(1, sizeof *r);
	r->seen = seen;
	r->reply = xstrdup(reply);
	r->client = client_virtual(nats_reply, r);
	TAILQ_INSERT_TAIL(&nats_reqs, r, entry);
	if (len > slackd_conf->max_line) {
		client_error(r->client, NULL, PROTOCOL_E_LINE_TOO_LONG,
		    "request of %zu bytes is longer than %zu (max_line)", len,
		    slackd_conf->max_line);
		return;
	}
	o = json_tokener_parse(data);
	if (o != NULL && json_object_is_type(o, json_type_object) &&
	    !json_object_object_get_ex(o, "id", &id)) {
		json_object_object_add(o, "id", json_object_new_int(1));
		r->added_id = 1;
		line = json_object_to_json_string_length(o,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
		    &len);
	}
	client_virtual_request(r->client, line, len);
	json_object_put(o);
}

/* ---- nats_ha: the main thread's side ---------------------------------- */

/* A standby: not leading, so Slack's requests go to the leader. */
int
nats_standby(void)
{
	return nats_state != NATS_OFF && slackd_conf->nats_ha && !nats_leading;
}

/* Who leads, as the lease says ("host pid N"), or NULL. */
const char *
nats_leader(void)
{
	if (nats_state == NATS_OFF || !slackd_conf->nats_ha)
		return NULL;
	return nats_leading ? nats_me : nats_leader_now;
}

static void
nats_ha_state(void)
{
	struct json_object *o;

	o = status_state();
	hub_broadcast_json(o);
	json_object_put(o);
}

static void
nats_lead(int lead, const char *why)
{
	struct mailbox_msg *m;

	if (lead == nats_leading)
		return;
	nats_leading = lead;
	if (lead) {
		log_info(
		    "NATS: this slackd leads (nats_ha): connecting to Slack");
		/* Its events are numbered in a run of its own. */
		hub_run_new();
		/* From the last event the stream brought (or a lease ago). */
		backfill_takeover(nats_stream_at > 0
		        ? nats_stream_at
		        : util_wall() - 2.0 * slackd_conf->ha_lease / 1000);
	} else
		log_warnx("NATS: standing by (nats_ha): %s", why);
	if (slackd_upstream_running()) {
		m = mailbox_msg_new(MAILBOX_LEAD);
		m->u.lead.lead = lead;
		slackd_to_upstream(m);
	}
	outbox_lead(lead);
	nats_ha_state();
}

static void
nats_seen_free(struct nats_seen *n)
{
	struct nats_req *r;

	TAILQ_FOREACH(r, &nats_reqs, entry) {
		if (r->seen == n)
			r->seen = NULL;
	}
	TAILQ_REMOVE(&nats_seens, n, entry);
	nats_nseen--;
	free(n->key);
	free(n->reply);
	free(n);
}

/*
 * A request with a Slackd-Request-Id: 1 if it was seen (the reply it got
 * is given again, or none while it runs), else 0 and it is remembered.
 */
static int
nats_seen(const char *key, const char *reply, struct nats_seen **out)
{
	struct nats_seen *n;
	double now = util_wall();
	natsStatus s;

	*out = NULL;
	while ((n = TAILQ_FIRST(&nats_seens)) != NULL &&
	    (nats_nseen > NATS_SEEN_MAX || now - n->at > NATS_SEEN_AGE))
		nats_seen_free(n);
	TAILQ_FOREACH(n, &nats_seens, entry) {
		if (strcmp(n->key, key) != 0)
			continue;
		log_info("NATS: request %s seen before: %s", key,
		    n->reply != NULL ? "its reply is given again"
		                     : "still running, not run again");
		if (n->reply != NULL && nats_nc != NULL &&
		    (s = natsConnection_Publish(
		         nats_nc, reply, n->reply, (int)n->len)) != NATS_OK)
			nats_error(
			    "answering a request: %s", natsStatus_GetText(s));
		return 1;
	}
	n = xcalloc(1, sizeof *n);
	n->key = xstrdup(key);
	n->at = now;
	TAILQ_INSERT_TAIL(&nats_seens, n, entry);
	nats_nseen++;
	*out = n;
	return 0;
}

static void
nats_fwd_free(struct nats_fwd *f)
{
	TAILQ_REMOVE(&nats_fwds, f, entry);
	event_free(f->ev);
	json_object_put(f->id);
	free(f->line);
	free(f);
}

/* Publish f to the leader; it answers on <inbox>.<n>. */
static void
nats_fwd_send(struct nats_fwd *f)
{
	natsMsg *m = NULL;
	natsStatus s;
	char *subject, reply[512], key[400];

	if (nats_nc == NULL || !nats_ready || nats_inbox_subject == NULL)
		return; /* the timer tries again */
	xasprintf(&subject, "%s.request", nats_prefix);
	snprintf(reply, sizeof reply, "%.*s%llu",
	    (int)strlen(nats_inbox_subject) - 1, nats_inbox_subject,
	    (unsigned long long)f->n);
	snprintf(key, sizeof key, "%s %llu", nats_me, (unsigned long long)f->n);
	s = natsMsg_Create(&m, subject, reply, f->line, (int)f->len);
	free(subject);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Slackd-Request-Id", key);
	if (s == NATS_OK)
		s = natsConnection_PublishMsg(nats_nc, m);
	natsMsg_Destroy(m);
	if (s != NATS_OK)
		nats_error("forwarding a request to the leader: %s",
		    natsStatus_GetText(s));
	else
		f->sent = 1;
}

/* f's timer: publish again (no one listened) or give up. */
static void
nats_fwd_cb(evutil_socket_t fd, short events, void *arg)
{
	struct nats_fwd *f = arg;
	struct timeval tv = { 0, NATS_HA_RETRY * 1000 };

	struct nats_fwd *g;

	if (util_now_ms() < f->deadline) {
		/* All that no one heard, in the order they came. */
		TAILQ_FOREACH(g, &nats_fwds, entry) {
			if (!g->sent)
				nats_fwd_send(g);
		}
		evtimer_add(f->ev, &tv);
		return;
	}
	if (f->client == NULL)
		; /* its client has gone: no one to tell */
	else if (f->sent)
		client_error(f->client, f->id, PROTOCOL_E_NOT_CONFIRMED,
		    "forwarded to the leading slackd over NATS, no answer within %.0f s: it may or may not have been sent, and is not sent again",
		    (double)(slackd_conf->ack_timeout + slackd_conf->ha_lease +
		        10000) /
		        1000);
	else
		client_error(f->client, f->id, PROTOCOL_E_NOT_CONNECTED,
		    "no slackd leads (nats_ha): not sent");
	nats_fwd_free(f);
}

/*
 * A standby: a local client's request for Slack goes to the leader (c
 * NULL: one whose client has gone, outbox.c's; the answer goes to no one).
 * Returns 1 if it was taken (the answer comes later), 0 to run it here.
 */
int
nats_forward(
    struct client *c, const struct request *r, const char *line, size_t len)
{
	struct nats_fwd *f;
	struct timeval tv = { 0, NATS_HA_RETRY * 1000 };

	if (!nats_standby())
		return 0;
	switch (r->kind) {
	case REQUEST_MESSAGE:
	case REQUEST_TYPING:
	case REQUEST_POST:
	case REQUEST_API:
	case REQUEST_ACK:
		break;
	default:
		return 0;
	}
	f = xcalloc(1, sizeof *f);
	f->n = ++nats_fwd_next;
	f->client = c;
	f->id = r->id != NULL ? json_object_get(r->id) : NULL;
	f->line = xmemdup(line, len);
	f->len = len;
	f->deadline = util_now_ms() + slackd_conf->ack_timeout +
	    slackd_conf->ha_lease + 10000;
	f->ev = evtimer_new(slackd_base, nats_fwd_cb, f);
	TAILQ_INSERT_TAIL(&nats_fwds, f, entry);
	nats_forwarded++;
	nats_fwd_send(f);
	evtimer_add(f->ev, &tv);
	return 1;
}

/* The leader answered f (ok), or NATS said no one listens (!ok). */
static void
nats_answered(const char *subject, int ok, const char *data, size_t len)
{
	struct nats_fwd *f;
	const char *dot = strrchr(subject, '.');
	uint64_t n;

	if (dot == NULL)
		return;
	n = strtoull(dot + 1, NULL, 10);
	TAILQ_FOREACH(f, &nats_fwds, entry) {
		if (f->n == n)
			break;
	}
	if (f == NULL)
		return;
	if (!ok) { /* no leader this moment: no one has it */
		f->sent = 0;
		return;
	}
	if (f->id != NULL && f->client != NULL)
		client_send(f->client, data, len);
	nats_fwd_free(f);
}

/* c is going away: its forwarded requests are answered to no one. */
void
nats_detach(struct client *c)
{
	struct nats_fwd *f, *next;

	TAILQ_FOREACH_SAFE(f, &nats_fwds, entry, next) {
		if (f->client == c)
			nats_fwd_free(f);
	}
}

/*
 * A standby: an event from the leader, to the local clients, under the
 * leader's number (seq, its Slackd-Seq "<run>:<n>").
 */
static void
nats_streamed(
    const char *subject, const char *data, size_t len, const char *seq)
{
	char type[JSCAN_FIELD] = "", channel[JSCAN_FIELD] = "";
	char run[REPLAY_RUN_LEN + 1];
	uint64_t n;
	const char *p, *dot;
	size_t plen = strlen(nats_prefix);

	if (!nats_standby() || len == 0)
		return;
	if (strncmp(subject, nats_prefix, plen) != 0 ||
	    strncmp(subject + plen, ".event.", 7) != 0)
		return;
	p = subject + plen + 7;
	dot = strchr(p, '.');
	snprintf(type, sizeof type, "%.*s",
	    (int)(dot != NULL ? (size_t)(dot - p) : strlen(p)), p);
	if (dot != NULL)
		snprintf(channel, sizeof channel, "%s", dot + 1);
	if (strcmp(type, "slackd_gap") == 0)
		return; /* the leader's own trouble with NATS */
	nats_stream_at = util_wall();
	if (data[len - 1] == '\n')
		len--;
	if (seq != NULL && replay_cursor_parse(seq, run, &n) == 0)
		hub_inject_as(
		    data, len, type, *channel != '\0' ? channel : NULL, run, n);
	else /* not published by a slackd that numbers them so */
		hub_inject(data, len, type, *channel != '\0' ? channel : NULL);
}

/* ---- the main thread's side ------------------------------------------- */

/*
 * Stop the setup thread (it lets the lease go if it holds it, if NATS
 * answers within 2 s) and let go of the connection and what hangs on it.
 * What waits in nats_queue stays, to be published again.
 */
static void
nats_stop_setup(void)
{
	natsConnection *nc;
	struct timespec ts;
	int holds;

	pthread_mutex_lock(&nats_lock);
	nats_stop = 1;
	pthread_cond_broadcast(&nats_cond);
	nc = nats_nc; /* the thread frees one only before NATS_NOTE_READY */
	holds = nats_ha_holds;
	pthread_mutex_unlock(&nats_lock);
	if (holds && nats_setup_running) {
		/* The thread releases the lease, if NATS answers in time. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 2;
		if (pthread_timedjoin_np(nats_setup_thread, NULL, &ts) == 0)
			nats_setup_running = 0;
	}
	if (nc != NULL)
		natsConnection_Close(nc);
	if (nats_setup_running)
		pthread_join(nats_setup_thread, NULL);
	nats_setup_running = 0;
	natsSubscription_Destroy(nats_sub);
	natsSubscription_Destroy(nats_evsub);
	natsSubscription_Destroy(nats_inboxsub);
	jsCtx_Destroy(nats_js);
	natsConnection_Destroy(nats_nc);
	natsOptions_Destroy(nats_opts);
	natsOptions_Destroy(nats_ha_opts);
	nats_sub = nats_evsub = nats_inboxsub = NULL;
	nats_js = NULL;
	nats_nc = NULL;
	nats_opts = nats_ha_opts = NULL;
	nats_ready = 0;
	nats_rewind();
	pthread_mutex_lock(&nats_lock);
	nats_stop = 0;
	nats_ha_holds = 0;
	pthread_mutex_unlock(&nats_lock);
}

/*
 * cnats gave up the connection after it was made (a server that refused
 * the credentials twice while reconnecting: they were changed, or a JWT
 * expired): start over, with the options and the secrets read again, so
 * that mended credentials are taken without a restart.  A leader stands
 * by meanwhile.  Events wait in nats_queue.
 */
static void
nats_restart_cb(evutil_socket_t fd, short events, void *arg)
{
	if (nats_leading)
		nats_lead(
		    0, "the connection to NATS was given up: starting over");
	nats_stop_setup();
	nats_notes(0); /* what the old connection's threads said last */
	nats_start();
}

/*
 * The URL of the server connected to, as it may be shown: a user and a
 * password in nats_url (nats://user:password@host) become three stars.
 */
static int
nats_server(char *url, size_t len)
{
	char *host, *at = NULL, *p;

	if (natsConnection_GetConnectedUrl(nats_nc, url, len) != NATS_OK)
		return -1;
	if ((host = strstr(url, "://")) == NULL)
		return 0;
	host += 3;
	for (p = host; *p != '\0' && *p != '/'; p++) {
		if (*p == '@')
			at = p;
	}
	if (at != NULL && strlen(url) + 3 >= len)
		snprintf(url, len, "(a URL with a password, too long to show)");
	else if (at != NULL) {
		memmove(host + 3, at, strlen(at) + 1);
		memcpy(host, "***", 3);
	}
	return 0;
}

static void
nats_note(struct nats_note *n)
{
	struct timeval closed_tv = { NATS_CLOSED_WAIT / 1000, 0 };
	char url[256];

	switch (n->type) {
	case NATS_NOTE_UP:
		/* The first time, NATS_NOTE_READY says it. */
		if (nats_ready && nats_server(url, sizeof url) == 0)
			log_info("NATS: connected to %s", url);
		nats_state = NATS_CONNECTED;
		nats_rewind();
		nats_pump();
		break;
	case NATS_NOTE_CLOSED:
		/* Before NATS_NOTE_READY the setup thread starts over. */
		if (!nats_ready || (u_int)n->ok != nats_gen)
			break;
		nats_error(
		    "libnats gave the connection up (%s); starting over in %d s, the credentials read again",
		    nats_last_error != NULL ? nats_last_error
		                            : "no reason given",
		    NATS_CLOSED_WAIT / 1000);
		nats_state = NATS_DISCONNECTED;
		nats_rewind();
		evtimer_add(nats_restart_ev, &closed_tv);
		break;
	case NATS_NOTE_DOWN:
		if (nats_state == NATS_CONNECTED)
			nats_error(
			    "disconnected; %u events kept until it is back",
			    nats_entries);
		nats_state = NATS_DISCONNECTED;
		nats_rewind();
		break;
	case NATS_NOTE_READY:
		nats_ready = 1;
		if (natsConnection_Status(nats_nc) ==
		    NATS_CONN_STATUS_CONNECTED)
			nats_state = NATS_CONNECTED;
		if (nats_server(url, sizeof url) != 0)
			snprintf(url, sizeof url, "NATS");
		log_info(
		    "NATS: connected to %s; publishing to the stream %s as %s.event.>, requests on %s.request",
		    url, nats_stream, nats_prefix, nats_prefix);
		nats_pump();
		break;
	case NATS_NOTE_ERROR:
		nats_error("%s", n->text);
		break;
	case NATS_NOTE_ACK:
		nats_acked(n->text, n->ok != 0, n->ok == 2, n->data);
		nats_pump();
		break;
	case NATS_NOTE_REQUEST:
		nats_request(n->text, n->data, n->len, n->key);
		break;
	case NATS_NOTE_LEAD:
		nats_lead(1, NULL);
		break;
	case NATS_NOTE_FOLLOW:
		nats_lead(0, n->text);
		break;
	case NATS_NOTE_LEADER:
		free(nats_leader_now);
		nats_leader_now = n->text != NULL ? xstrdup(n->text) : NULL;
		if (nats_leading)
			break;
		if (n->text != NULL) {
			log_info(
			    "NATS: standing by (nats_ha): %s leads", n->text);
			/* A detaching standby's parent need not wait more. */
			slackd_ready_report(SLACKD_EXIT_OK, NULL);
		}
		nats_ha_state();
		break;
	case NATS_NOTE_STREAM:
		nats_streamed(n->text, n->data, n->len, n->key);
		break;
	case NATS_NOTE_ANSWER:
		nats_answered(n->text, n->ok, n->data, n->len);
		break;
	}
}

/* Take the notes the threads left; run them unless stopping. */
static void
nats_notes(int run)
{
	struct nats_notes notes = STAILQ_HEAD_INITIALIZER(notes);
	struct nats_note *n;

	pthread_mutex_lock(&nats_lock);
	STAILQ_CONCAT(&notes, &nats_inbox);
	pthread_mutex_unlock(&nats_lock);
	while ((n = STAILQ_FIRST(&notes)) != NULL) {
		STAILQ_REMOVE_HEAD(&notes, entry);
		if (run)
			nats_note(n);
		free(n->text);
		free(n->data);
		free(n->key);
		free(n);
	}
}

static void
nats_wake_cb(evutil_socket_t fd, short events, void *arg)
{
	nats_notes(1);
}

/* Connect, now that the subjects and the stream are known. */
static void
nats_start(void)
{
	char *err = NULL;

	nats_gen++; /* the closed callback's tag for this connection */
	if (nats_options(slackd_conf, 1, &nats_opts, &err) != 0 ||
	    (slackd_conf->nats_ha &&
	        nats_options(slackd_conf, 0, &nats_ha_opts, &err) != 0)) {
		nats_error("%s", err);
		free(err);
		nats_state = NATS_DISCONNECTED;
		return;
	}
	if (slackd_conf->nats_ha && nats_inbox_subject == NULL) {
		natsInbox *inbox = NULL;
		char host[256];

		if (natsInbox_Create(&inbox) != NATS_OK)
			fatalx("natsInbox_Create");
		xasprintf(&nats_inbox_subject, "%s.*", (char *)inbox);
		natsInbox_Destroy(inbox);
		if (gethostname(host, sizeof host) == -1)
			snprintf(host, sizeof host, "?");
		host[sizeof host - 1] = '\0';
		snprintf(nats_me, sizeof nats_me, "%s pid %ld", host,
		    (long)getpid());
	}
	nats_state = NATS_CONNECTING;
	if (pthread_create(&nats_setup_thread, NULL, nats_setup, NULL) != 0)
		fatal("pthread_create");
	nats_setup_running = 1;
}

/*
 * Start with the configuration: events are kept from now on.  The
 * connection is made at once if the subjects and the stream are named,
 * else when Slack says which workspace this is (nats_team()).
 */
void
nats_init(void)
{
	if (slackd_conf->nats_url == NULL)
		return;
	/* slackd already runs libevent with pthreads (natsLibevent_Init). */
	nats_wake_ev =
	    event_new(slackd_base, -1, EV_PERSIST, nats_wake_cb, NULL);
	nats_reap_ev = event_new(slackd_base, -1, 0, nats_reap_cb, NULL);
	nats_retry_ev = evtimer_new(slackd_base, nats_retry_cb, NULL);
	nats_restart_ev = evtimer_new(slackd_base, nats_restart_cb, NULL);
	hub_consume(nats_event);
	nats_state = NATS_WAIT_TEAM;
	if (slackd_conf->nats_prefix != NULL &&
	    slackd_conf->nats_stream != NULL) {
		nats_prefix = xstrdup(slackd_conf->nats_prefix);
		nats_stream = xstrdup(slackd_conf->nats_stream);
		nats_start();
	}
}

/* Slack said which workspace the token is for. */
void
nats_team(const char *team_id)
{
	char t[JSCAN_FIELD];

	if (nats_state != NATS_WAIT_TEAM || team_id == NULL)
		return;
	snprintf(t, sizeof t, "%s", team_id);
	nats_token(t);
	if (slackd_conf->nats_prefix != NULL)
		nats_prefix = xstrdup(slackd_conf->nats_prefix);
	else
		xasprintf(&nats_prefix, "slack.%s", t);
	if (slackd_conf->nats_stream != NULL)
		nats_stream = xstrdup(slackd_conf->nats_stream);
	else
		xasprintf(&nats_stream, "SLACK_%s", t);
	nats_start();
}

/* The NATS link for slackd.status, or NULL without nats_url. */
struct json_object *
nats_status(void)
{
	struct json_object *o;
	char url[256];

	if (nats_state == NATS_OFF)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(
	    o, "state", json_object_new_string(nats_state_names[nats_state]));
	if (nats_state == NATS_CONNECTED && nats_ready &&
	    nats_server(url, sizeof url) == 0)
		json_object_object_add(
		    o, "server", json_object_new_string(url));
	else
		json_object_object_add(o, "server", NULL);
	json_object_object_add(o, "prefix",
	    nats_prefix != NULL ? json_object_new_string(nats_prefix) : NULL);
	json_object_object_add(o, "stream",
	    nats_stream != NULL ? json_object_new_string(nats_stream) : NULL);
	json_object_object_add(
	    o, "published", json_object_new_int64((int64_t)nats_published));
	json_object_object_add(
	    o, "duplicates", json_object_new_int64((int64_t)nats_duplicates));
	json_object_object_add(
	    o, "pending_acks", json_object_new_int64(nats_inflight));
	json_object_object_add(
	    o, "backlog", json_object_new_int64(nats_entries));
	json_object_object_add(
	    o, "backlog_bytes", json_object_new_int64((int64_t)nats_bytes));
	json_object_object_add(
	    o, "gaps", json_object_new_int64((int64_t)nats_gaps));
	json_object_object_add(
	    o, "events_lost", json_object_new_int64((int64_t)nats_lost));
	json_object_object_add(
	    o, "requests", json_object_new_int64((int64_t)nats_requests));
	if (slackd_conf->nats_ha) {
		json_object_object_add(
		    o, "ha_leading", json_object_new_boolean(nats_leading));
		json_object_object_add(o, "ha_leader",
		    nats_leader() != NULL
		        ? json_object_new_string(nats_leader())
		        : NULL);
		json_object_object_add(o, "ha_forwarded",
		    json_object_new_int64((int64_t)nats_forwarded));
	}
	json_object_object_add(o, "last_error",
	    nats_last_error != NULL ? json_object_new_string(nats_last_error)
	                            : NULL);
	json_object_object_add(o, "last_error_at",
	    nats_last_error != NULL ? json_object_new_double(nats_last_error_at)
	                            : NULL);
	return o;
}

/*
 * Stop: close the connection (events not acknowledged yet are lost with
 * the process) and free what is ours.
 */
void
nats_shutdown(void)
{
	struct nats_entry *e;
	struct nats_req *r;
	struct event *ev;

	if (nats_state == NATS_OFF)
		return;
	hub_unconsume(nats_event);
	nats_stop_setup();
	if (nats_entries > 0)
		log_warnx(
		    "NATS: %u event%s not acknowledged by JetStream at shutdown",
		    nats_entries, nats_entries == 1 ? "" : "s");
	/*
	 * Not nats_Close(): after a tls:// connection it cleans up OpenSSL's
	 * state, which libwebsockets and OPENSSL_cleanup() at exit still use
	 * (a crash at exit).  Its threads and memory go with the process.
	 */
	nats_notes(0); /* what the threads said last */
	while ((r = TAILQ_FIRST(&nats_reqs)) != NULL)
		nats_req_free(r);
	while (!TAILQ_EMPTY(&nats_fwds)) {
		if (TAILQ_FIRST(&nats_fwds)->client != NULL)
			client_error(TAILQ_FIRST(&nats_fwds)->client,
			    TAILQ_FIRST(&nats_fwds)->id,
			    PROTOCOL_E_SHUTTING_DOWN, "slackd is stopping");
		nats_fwd_free(TAILQ_FIRST(&nats_fwds));
	}
	while (!TAILQ_EMPTY(&nats_seens))
		nats_seen_free(TAILQ_FIRST(&nats_seens));
	free(nats_inbox_subject);
	free(nats_leader_now);
	nats_inbox_subject = nats_leader_now = NULL;
	nats_leading = 0;
	while ((e = TAILQ_FIRST(&nats_queue)) != NULL)
		nats_remove(e);
	pthread_mutex_lock(&nats_lock);
	ev = nats_wake_ev; /* late callbacks post nothing now */
	nats_wake_ev = NULL;
	pthread_mutex_unlock(&nats_lock);
	event_free(ev);
	nats_notes(0); /* any posted since */
	event_free(nats_reap_ev);
	event_free(nats_retry_ev);
	event_free(nats_restart_ev);
	nats_holding = 0;
	token_secret_free(nats_seed);
	nats_seed = NULL;
	free(nats_creds);
	nats_creds = NULL;
	free(nats_prefix);
	free(nats_stream);
	free(nats_last_error);
	nats_prefix = nats_stream = nats_last_error = NULL;
	nats_state = NATS_OFF;
}
