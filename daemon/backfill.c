/*
 * Backfill: after an unplanned gap in the connection to Slack (a drop, a
 * stall, a make-before-break that failed, a daemon restart), recover the
 * messages Slack sent meanwhile from conversations.history (and thread
 * replies from conversations.replies) and deliver them like live events,
 * each marked "slackd_backfill":true.
 *
 * What it knows comes through a hub consumer: for every message seen, the
 * last ts per channel and per thread, and when it came (the wall clock),
 * kept in the state directory as backfill.json (a temporary file, then
 * rename) so that a restart backfills too.  A planned goodbye handled by
 * make-before-break never leaves "connected", so it causes no backfill.
 *
 * On connected after a gap, one job per channel (and active thread)
 * backfill_plan.c picks is queued, starting after the last ts seen and
 * ending at the moment of the reconnection; the jobs run one call at a
 * time through api_call(), whose upstream side keeps each method within
 * its rate tier and honours Retry-After.  A job's messages go out oldest
 * first once all its pages are in, minus those a client already got live
 * (channel and ts seen since the run began).  A job that hits
 * backfill_max, or that Slack refuses, ends with a slackd.gap saying what
 * was not recovered; when the last job is done, one slackd.gap sums up the
 * gap and says that events other than messages cannot be recovered.  A
 * job whose call got no answer at all stays queued for the next
 * connection, keeping its start.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "slackd.h"

#define BACKFILL_FILE         "backfill.json"
#define BACKFILL_FILE_VERSION 1
#define BACKFILL_FILE_MAX     (64 * 1048576)
#define BACKFILL_SAVE_DELAY   5      /* s after a change before saving */
#define BACKFILL_SEEN_MAX     200000 /* live messages remembered in a run */
#define BACKFILL_THREADS_MAX  10000  /* threads remembered */
#define BACKFILL_RETRIES      3      /* calls without an answer, per job */
#define BACKFILL_RETRY_WAIT   2      /* s between them */
#define BACKFILL_TS           32
#define BACKFILL_NOT_MESSAGES                                                  \
	"events other than messages (edits, deletions, reactions, joins, renames, ...) sent during the gap cannot be recovered"

/* The last message seen in a channel or a thread. */
struct backfill_mark {
	char ts[BACKFILL_TS];
	double at; /* wall clock when it came */
};

/* One channel's history, or one thread, to recover. */
struct backfill_job {
	TAILQ_ENTRY(backfill_job) entry;
	char channel[JSCAN_FIELD];
	char thread[BACKFILL_TS]; /* "": the channel's history */
	char from[BACKFILL_TS];   /* exclusive */
	char *cursor;
	struct json_object *msgs; /* as Slack gave them, all pages */
	u_int have;
	u_int failures;
	uint64_t call;
};
TAILQ_HEAD(backfill_jobs, backfill_job);

static struct backfill_jobs backfill_jobs =
    TAILQ_HEAD_INITIALIZER(backfill_jobs);
static struct map *backfill_chans;   /* channel -> mark */
static struct map *backfill_threads; /* "channel thread_ts" -> mark */
static struct backfill_plan_seen *backfill_seen;
static struct backfill_plan_seen *backfill_given; /* messages recovered */
static char *backfill_team; /* the workspace the marks are from */
static int backfill_connected;
static double backfill_gap_from; /* wall clock; 0: no gap to fill */
static char *backfill_gap_why;
static const char *backfill_gap_reason = "disconnected"; /* or "restart" */
static char backfill_latest[BACKFILL_TS]; /* the run's end (exclusive) */
static char backfill_from[BACKFILL_TS];   /* the gap's start, as a ts */
static int backfill_running;              /* a run's summary is due */
static u_int backfill_recovered;          /* messages, this run */
static u_int backfill_lost;               /* jobs that ended short */
static struct event *backfill_save_ev;
static struct event *backfill_retry_ev;
static int backfill_dirty;

static void backfill_next(void);
static void backfill_save_later(void);

/* ---- what flows by ------------------------------------------------------ */

static struct backfill_mark *
backfill_mark(struct map *m, const char *key, const char *ts, double at)
{
	struct backfill_mark *k;

	if ((k = map_get(m, key)) == NULL) {
		k = xcalloc(1, sizeof *k);
		map_put(m, key, k);
	}
	if (backfill_plan_ts_cmp(ts, k->ts) > 0) {
		snprintf(k->ts, sizeof k->ts, "%s", ts);
		k->at = at;
		backfill_dirty = 1;
	}
	return k;
}

static void
backfill_thread_key(
    const char *channel, const char *thread, char *key, size_t len)
{
	snprintf(key, len, "%s %s", channel, thread);
}

/*
 * The hub consumer: every message seen (live or recovered) moves its
 * channel's and thread's mark; while a run is on, live ones are
 * remembered so that history does not bring them again.  It runs for
 * every event, so it parses nothing: channel, ts, thread_ts and the
 * "slackd_backfill" mark are what jscan.c picked from the top level.
 */
static void
backfill_event(const struct hub_event *e)
{
	const char *channel = e->channel, *ts = e->ts, *thread = e->thread_ts;
	char key[JSCAN_FIELD + BACKFILL_TS + 1];
	double now;

	if (strcmp(e->type, "message") != 0)
		return;
	if (*channel == '\0' || !backfill_plan_ts_valid(ts))
		return;
	now = util_wall();
	backfill_mark(backfill_chans, channel, ts, now);
	if (*thread != '\0' && strcmp(thread, ts) != 0 &&
	    backfill_plan_ts_valid(thread)) {
		backfill_thread_key(channel, thread, key, sizeof key);
		if (map_get(backfill_threads, key) != NULL ||
		    map_count(backfill_threads) < BACKFILL_THREADS_MAX)
			backfill_mark(backfill_threads, key, ts, now);
	}
	if (!e->backfilled && !TAILQ_EMPTY(&backfill_jobs))
		backfill_plan_seen_add(backfill_seen, channel, ts);
	if (backfill_dirty)
		backfill_save_later();
}

/* ---- what clients are told ---------------------------------------------- */

/* A slackd.gap: reason is a word for programs, why a sentence. */
static struct json_object *
backfill_gap_new(const char *reason, const char *why)
{
	struct json_object *o;

	o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string(PROTOCOL_GAP));
	json_object_object_add(o, "reason", json_object_new_string(reason));
	json_object_object_add(o, "why", json_object_new_string(why));
	return o;
}

static void
backfill_tell(struct json_object *o)
{
	hub_broadcast_json(o);
	json_object_put(o);
}

/* A job ends short: what was not recovered, and why. */
static void
backfill_job_gap(const struct backfill_job *job, const char *reason,
    const char *from, const char *to, const char *why)
{
	struct json_object *o;

	backfill_lost++;
	log_info("backfill: %s%s%s: %s", job->channel,
	    job->thread[0] != '\0' ? " thread " : "", job->thread, why);
	o = backfill_gap_new(reason, why);
	json_object_object_add(
	    o, "channel", json_object_new_string(job->channel));
	if (job->thread[0] != '\0')
		json_object_object_add(
		    o, "thread_ts", json_object_new_string(job->thread));
	json_object_object_add(o, "from", json_object_new_string(from));
	json_object_object_add(o, "to", json_object_new_string(to));
	json_object_object_add(
	    o, "recovered", json_object_new_int64(job->have));
	backfill_tell(o);
}

/* The run is over: sum it up. */
static void
backfill_summary(void)
{
	struct json_object *o;
	const char *mode = slackd_conf->backfill;

	backfill_running = 0;
	log_info("backfill: %u message%s recovered after the gap (%s)",
	    backfill_recovered, backfill_recovered == 1 ? "" : "s",
	    backfill_gap_why != NULL ? backfill_gap_why : "gap");
	o = backfill_gap_new(backfill_gap_reason,
	    backfill_gap_why != NULL ? backfill_gap_why : "gap");
	json_object_object_add(
	    o, "from", json_object_new_string(backfill_from));
	json_object_object_add(
	    o, "to", json_object_new_string(backfill_latest));
	json_object_object_add(o, "backfill", json_object_new_string(mode));
	json_object_object_add(
	    o, "recovered", json_object_new_int64(backfill_recovered));
	json_object_object_add(
	    o, "incomplete", json_object_new_int64(backfill_lost));
	json_object_object_add(o, "not_recovered",
	    json_object_new_string(backfill_plan_mode(mode) == BACKFILL_PLAN_OFF
	            ? "backfill is off: nothing Slack sent during the gap was recovered"
	            : BACKFILL_NOT_MESSAGES));
	backfill_tell(o);
	backfill_recovered = backfill_lost = 0;
}

/* ---- jobs --------------------------------------------------------------- */

static struct backfill_job *
backfill_job_find(const char *channel, const char *thread)
{
	struct backfill_job *job;

	TAILQ_FOREACH(job, &backfill_jobs, entry) {
		if (strcmp(job->channel, channel) == 0 &&
		    strcmp(job->thread, thread) == 0)
			return job;
	}
	return NULL;
}

/* Queue a job, or move an existing one's start earlier. */
static void
backfill_job_add(const char *channel, const char *thread, const char *from)
{
	struct backfill_job *job;

	if ((job = backfill_job_find(channel, thread)) != NULL) {
		if (job->call == 0 && job->cursor == NULL)
			backfill_plan_from(job->from, sizeof job->from, from);
		return;
	}
	job = xcalloc(1, sizeof *job);
	snprintf(job->channel, sizeof job->channel, "%s", channel);
	snprintf(job->thread, sizeof job->thread, "%s", thread);
	snprintf(job->from, sizeof job->from, "%s", from);
	TAILQ_INSERT_TAIL(&backfill_jobs, job, entry);
}

static void
backfill_job_free(struct backfill_job *job)
{
	TAILQ_REMOVE(&backfill_jobs, job, entry);
	if (job->call != 0)
		api_forget(job->call);
	json_object_put(job->msgs);
	free(job->cursor);
	free(job);
}

/* One recovered message to the clients, unless they have it. */
static void
backfill_deliver(const struct backfill_job *job, struct json_object *m)
{
	const char *ts = protocol_json_str(m, "ts"), *s;
	char *line;
	size_t len;

	if (ts == NULL || !json_object_is_type(m, json_type_object) ||
	    backfill_plan_seen_has(backfill_seen, job->channel, ts))
		return;
	if (job->thread[0] != '\0' && strcmp(ts, job->thread) == 0)
		return; /* the parent, which conversations.replies repeats */
	if (backfill_plan_ts_cmp(ts, job->from) <= 0)
		return;
	json_object_object_add(
	    m, "channel", json_object_new_string(job->channel));
	json_object_object_add(
	    m, "slackd_backfill", json_object_new_boolean(1));
	s = json_object_to_json_string_length(
	    m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	line = xmalloc(len + 1);
	memcpy(line, s, len);
	line[len] = '\n';
	hub_inject(line, len + 1, "message", job->channel);
	free(line);
	backfill_plan_seen_add(backfill_given, job->channel, ts);
	backfill_recovered++;
}

/*
 * A live message that was recovered already?  Slack sends late what it
 * was not told had arrived (a Socket Mode envelope whose ack was lost
 * with its connection is retried on the next, after the gap was
 * backfilled): the clients have it, so it is not forwarded again.  Called
 * for every event before the hub numbers it; quick when nothing was
 * recovered.
 */
int
backfill_had(const struct mailbox_event *ev)
{
	if (backfill_given == NULL ||
	    backfill_plan_seen_count(backfill_given) == 0 ||
	    ev->ts[0] == '\0' || strcmp(ev->type, "message") != 0 ||
	    !backfill_plan_seen_has(backfill_given, ev->channel, ev->ts))
		return 0;
	log_info(
	    "backfill: message %s in %s came again from Slack after it was recovered: not forwarded twice",
	    ev->ts, ev->channel);
	return 1;
}

/*
 * A channel's history is in: a thread whose replies came after the start
 * gets a job of its own (from the later of the start and the last reply
 * seen in it).
 */
static void
backfill_job_threads(const struct backfill_job *job, struct json_object *m)
{
	const char *ts = protocol_json_str(m, "ts");
	const char *thread = protocol_json_str(m, "thread_ts");
	const char *latest = protocol_json_str(m, "latest_reply");
	const struct backfill_mark *mark;
	char key[JSCAN_FIELD + BACKFILL_TS + 1];
	const char *from = job->from;

	if (ts == NULL || thread == NULL || latest == NULL ||
	    strcmp(ts, thread) != 0 || !backfill_plan_ts_valid(ts) ||
	    backfill_plan_ts_cmp(latest, job->from) <= 0)
		return;
	backfill_thread_key(job->channel, ts, key, sizeof key);
	if ((mark = map_get(backfill_threads, key)) != NULL &&
	    backfill_plan_ts_cmp(mark->ts, from) > 0)
		from = mark->ts;
	if (backfill_plan_ts_cmp(latest, from) > 0)
		backfill_job_add(job->channel, ts, from);
}

/* All of a job's pages are in (capped: the cap stopped it). */
static void
backfill_job_done(struct backfill_job *job, int capped)
{
	struct json_object *m;
	const char *edge;
	size_t i,
	    n = job->msgs != NULL ? json_object_array_length(job->msgs) : 0;
	char why[160];

	if (job->thread[0] == '\0') {
		/* History comes newest first: deliver from the end. */
		for (i = n; i > 0; i--) {
			m = json_object_array_get_idx(job->msgs, i - 1);
			backfill_job_threads(job, m);
			backfill_deliver(job, m);
		}
	} else {
		for (i = 0; i < n; i++)
			backfill_deliver(
			    job, json_object_array_get_idx(job->msgs, i));
	}
	if (capped) {
		snprintf(why, sizeof why,
		    "more than backfill_max (%d) messages were sent during the gap; those between \"from\" and \"to\" were not recovered",
		    slackd_conf->backfill_max);
		/* History keeps the newest, a thread its oldest replies. */
		m = n > 0 ? json_object_array_get_idx(job->msgs, n - 1) : NULL;
		edge = m != NULL ? protocol_json_str(m, "ts") : NULL;
		if (job->thread[0] == '\0')
			backfill_job_gap(job, "backfill_max", job->from,
			    edge != NULL ? edge : backfill_latest, why);
		else
			backfill_job_gap(job, "backfill_max",
			    edge != NULL ? edge : job->from, backfill_latest,
			    why);
	}
	backfill_job_free(job);
}

static void
backfill_retry_cb(evutil_socket_t fd, short events, void *arg)
{
	backfill_next();
}

/* The answer to one page. */
static void
backfill_page(void *arg, const struct api_result *r)
{
	struct backfill_job *job = arg;
	struct json_object *msgs, *v, *meta;
	const char *cursor = NULL;
	struct timeval tv = { BACKFILL_RETRY_WAIT, 0 };
	char why[300];
	int more = 0;
	size_t i, n;

	job->call = 0;
	if (r->error != NULL) {
		if (slackd_stopping)
			return;
		log_info("backfill: %s: no answer from Slack (%s)",
		    job->channel, r->error);
		if (++job->failures < BACKFILL_RETRIES) {
			/* Again shortly, or at the next connection. */
			evtimer_add(backfill_retry_ev, &tv);
			return;
		}
		snprintf(why, sizeof why,
		    "%s got no answer from Slack (%s); the messages of the gap were not recovered",
		    job->thread[0] != '\0' ? "conversations.replies"
		                           : "conversations.history",
		    r->error);
		backfill_job_gap(
		    job, "no_answer", job->from, backfill_latest, why);
		backfill_job_free(job);
		backfill_next();
		return;
	}
	if (!r->ok) {
		snprintf(why, sizeof why,
		    "%s failed: %s; the messages of the gap were not recovered",
		    job->thread[0] != '\0' ? "conversations.replies"
		                           : "conversations.history",
		    r->slack_error);
		backfill_job_gap(
		    job, "refused", job->from, backfill_latest, why);
		backfill_job_free(job);
		backfill_next();
		return;
	}
	job->failures = 0;
	if (job->msgs == NULL)
		job->msgs = json_object_new_array();
	if (json_object_object_get_ex(r->obj, "messages", &msgs) &&
	    json_object_is_type(msgs, json_type_array)) {
		n = json_object_array_length(msgs);
		for (i = 0; i < n; i++) {
			v = json_object_array_get_idx(msgs, i);
			if (job->thread[0] != '\0' &&
			    protocol_json_str(v, "ts") != NULL &&
			    strcmp(protocol_json_str(v, "ts"), job->thread) ==
			        0)
				continue;
			if (job->have >= (u_int)slackd_conf->backfill_max) {
				more = 1; /* Slack gave more than asked */
				break;
			}
			json_object_array_add(job->msgs, json_object_get(v));
			job->have++;
		}
	}
	if (json_object_object_get_ex(r->obj, "response_metadata", &meta))
		cursor = protocol_json_str(meta, "next_cursor");
	if (json_object_object_get_ex(r->obj, "has_more", &v) &&
	    json_object_get_boolean(v) && cursor != NULL && *cursor != '\0')
		more = 1;
	switch (backfill_plan_after(
	    job->have, (u_int)slackd_conf->backfill_max, more)) {
	case BACKFILL_PLAN_NEXT:
		free(job->cursor);
		job->cursor = xstrdup(cursor);
		break;
	case BACKFILL_PLAN_CAPPED:
		backfill_job_done(job, 1);
		break;
	default:
		backfill_job_done(job, 0);
		break;
	}
	backfill_next();
}

/* Ask for the next page of the first job, if nothing is in flight. */
static void
backfill_next(void)
{
	struct backfill_job *job;
	char *body = NULL, limit[16];
	size_t len = 0;
	u_int n;

	if (slackd_stopping || !backfill_connected)
		return;
	if ((job = TAILQ_FIRST(&backfill_jobs)) == NULL) {
		if (backfill_running)
			backfill_summary();
		backfill_plan_seen_clear(backfill_seen);
		return;
	}
	if (job->call != 0 || evtimer_pending(backfill_retry_ev, NULL))
		return;
	n = backfill_plan_limit(job->have, (u_int)slackd_conf->backfill_max);
	snprintf(limit, sizeof limit, "%u", n);
	webapi_form_add(&body, &len, "channel", job->channel);
	if (job->thread[0] != '\0')
		webapi_form_add(&body, &len, "ts", job->thread);
	webapi_form_add(&body, &len, "oldest", job->from);
	webapi_form_add(&body, &len, "latest", backfill_latest);
	webapi_form_add(&body, &len, "inclusive", "false");
	webapi_form_add(&body, &len, "limit", limit);
	if (job->cursor != NULL)
		webapi_form_add(&body, &len, "cursor", job->cursor);
	job->call = api_call(job->thread[0] != '\0' ? "conversations.replies"
	                                            : "conversations.history",
	    body, len, 0, backfill_page, job);
	free(body);
}

/* ---- a run -------------------------------------------------------------- */

struct backfill_pick {
	int mode;
	double now;
	int threads;
};

static int
backfill_named(const char *channel)
{
	char *copy, *p, *word;
	int found = 0;

	if (slackd_conf->backfill_channels == NULL)
		return 0;
	copy = p = xstrdup(slackd_conf->backfill_channels);
	while (!found && (word = strsep(&p, ", \t")) != NULL)
		found = strcmp(word, channel) == 0;
	free(copy);
	return found;
}

static int
backfill_pick_one(const char *key, void *value, void *arg)
{
	const struct backfill_pick *p = arg;
	const struct backfill_mark *k = value;
	char channel[JSCAN_FIELD];
	size_t n;

	if (!p->threads) {
		if (backfill_plan_pick(p->mode, k->at, p->now,
		        slackd_conf->backfill_window, backfill_named(key)))
			backfill_job_add(key, "", k->ts);
		return 0;
	}
	/* A thread: "channel thread_ts"; active within the window. */
	n = strcspn(key, " ");
	if (n >= sizeof channel || key[n] == '\0')
		return 0;
	memcpy(channel, key, n);
	channel[n] = '\0';
	if (backfill_plan_pick(
	        p->mode == BACKFILL_PLAN_OFF ? p->mode : BACKFILL_PLAN_SEEN,
	        k->at, p->now, slackd_conf->backfill_window, 0))
		backfill_job_add(channel, key + n + 1, k->ts);
	return 0;
}

/* A channel named in backfill_channels is known: fetch it. */
static void
backfill_resolved(void *arg, const char *channel, int code, const char *error)
{
	const struct backfill_mark *k;

	if (slackd_stopping || !backfill_connected)
		return; /* names_shutdown() answers every wait */
	if (error != NULL) {
		log_warnx("backfill_channels: %s", error);
		return;
	}
	k = map_get(backfill_chans, channel);
	backfill_job_add(channel, "", k != NULL ? k->ts : backfill_from);
	backfill_next();
}

/* A conversation ID (C…, G…, D…) rather than a name? */
static int
backfill_is_id(const char *s)
{
	size_t n = strlen(s);

	return n >= 3 && n < JSCAN_FIELD && strchr("CGD", *s) != NULL &&
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == n;
}

/* The channels named in backfill_channels that no mark covers. */
static void
backfill_named_jobs(void)
{
	char *copy, *p, *word;

	if (slackd_conf->backfill_channels == NULL)
		return;
	copy = p = xstrdup(slackd_conf->backfill_channels);
	while ((word = strsep(&p, ", \t")) != NULL) {
		if (*word == '\0' || map_get(backfill_chans, word) != NULL)
			continue;
		if (backfill_is_id(word))
			backfill_job_add(word, "", backfill_from);
		else /* the answer comes to backfill_resolved() */
			(void)names_resolve(word, backfill_resolved, NULL);
	}
	free(copy);
}

/* Connected after a gap: queue what to recover and start. */
static void
backfill_run(void)
{
	struct backfill_pick p;

	p.mode = backfill_plan_mode(slackd_conf->backfill);
	p.now = util_wall();
	backfill_plan_wall_ts(p.now, backfill_latest, sizeof backfill_latest);
	/* A gap within a run that is not over extends that run's gap. */
	if (!backfill_running)
		backfill_plan_wall_ts(
		    backfill_gap_from, backfill_from, sizeof backfill_from);
	backfill_gap_from = 0;
	backfill_running = 1;
	if (p.mode == BACKFILL_PLAN_OFF) {
		backfill_summary();
		return;
	}
	if (TAILQ_EMPTY(&backfill_jobs))
		backfill_plan_seen_clear(backfill_seen);
	p.threads = 0;
	map_foreach(backfill_chans, backfill_pick_one, &p);
	p.threads = 1;
	map_foreach(backfill_threads, backfill_pick_one, &p);
	backfill_named_jobs();
	log_info("backfill: recovering what Slack sent since %s (%s)",
	    backfill_from, backfill_gap_why != NULL ? backfill_gap_why : "gap");
	backfill_next();
}

/* A different workspace than the saved marks'?  Forget them. */
static void
backfill_team_is(const char *team)
{
	if (team == NULL)
		return;
	if (backfill_team != NULL && strcmp(backfill_team, team) != 0) {
		log_info(
		    "backfill: the saved positions are from workspace %s, not %s; not used",
		    backfill_team, team);
		map_free(backfill_chans, free);
		map_free(backfill_threads, free);
		backfill_chans = map_new();
		backfill_threads = map_new();
		backfill_gap_from = 0;
	}
	free(backfill_team);
	backfill_team = xstrdup(team);
}

/*
 * slackd.state changes (from slackd_state()): leaving "connected" starts
 * a gap, coming back to it after one starts a run.
 */
void
backfill_state(enum upstream_state state, const char *reason)
{
	if (state != UPSTREAM_CONNECTED) {
		if (!backfill_connected)
			return;
		backfill_connected = 0;
		backfill_gap_from = util_wall();
		free(backfill_gap_why);
		backfill_gap_reason = "disconnected";
		xasprintf(&backfill_gap_why,
		    "the connection to Slack was lost%s%s",
		    reason != NULL ? ": " : "", reason != NULL ? reason : "");
		return;
	}
	if (backfill_connected)
		return;
	backfill_connected = 1;
	backfill_team_is(status_now.team_id);
	if (backfill_gap_from > 0)
		backfill_run();
	else
		backfill_next(); /* jobs left from an earlier run */
}

/*
 * nats_ha: this slackd is about to lead after another did, until about
 * since (wall seconds).  What Slack sent after that is recovered once
 * connected, as after a gap of its own.
 */
void
backfill_takeover(double since)
{
	if (backfill_gap_from == 0 || since < backfill_gap_from)
		backfill_gap_from = since;
	backfill_gap_reason = "takeover";
	free(backfill_gap_why);
	backfill_gap_why =
	    xstrdup("this slackd took over from another that led until then");
}

/* ---- backfill.json ------------------------------------------------------ */

static char *
backfill_path(void)
{
	char *path;

	if (slackd_conf->state_dir == NULL)
		return NULL;
	xasprintf(&path, "%s/%s", slackd_conf->state_dir, BACKFILL_FILE);
	return path;
}

static int
backfill_dump_one(const char *key, void *value, void *arg)
{
	const struct backfill_mark *k = value;
	struct json_object *o;

	o = json_object_new_object();
	json_object_object_add(o, "ts", json_object_new_string(k->ts));
	json_object_object_add(o, "at", json_object_new_double(k->at));
	json_object_object_add(arg, key, o);
	return 0;
}

/* Threads quiet for longer than backfill_window are forgotten. */
static int
backfill_prune(const char *key, void *value, void *arg)
{
	struct backfill_mark *k = value;

	if (!backfill_plan_pick(BACKFILL_PLAN_SEEN, k->at, *(double *)arg,
	        slackd_conf->backfill_window, 0)) {
		free(k);
		return 1;
	}
	return 0;
}

static int
backfill_write(const char *path, const char *s, size_t len)
{
	ssize_t n;
	int fd, saved;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) ==
	    -1)
		return -1;
	if ((n = write(fd, s, len)) != (ssize_t)len || fsync(fd) == -1) {
		saved = n >= 0 && n != (ssize_t)len ? ENOSPC : errno;
		close(fd);
		unlink(path);
		errno = saved;
		return -1;
	}
	if (close(fd) == -1) {
		saved = errno;
		unlink(path);
		errno = saved;
		return -1;
	}
	return 0;
}

/* Write backfill.json (a temporary file, then rename). */
static void
backfill_save(void)
{
	struct json_object *o, *chans, *threads;
	char *path, *tmp;
	const char *s;
	double now = util_wall();
	size_t len;

	backfill_dirty = 0;
	if ((path = backfill_path()) == NULL)
		return;
	map_foreach(backfill_threads, backfill_prune, &now);
	o = json_object_new_object();
	json_object_object_add(
	    o, "version", json_object_new_int(BACKFILL_FILE_VERSION));
	if (backfill_team != NULL)
		json_object_object_add(
		    o, "team", json_object_new_string(backfill_team));
	json_object_object_add(o, "saved", json_object_new_double(now));
	chans = json_object_new_object();
	threads = json_object_new_object();
	map_foreach(backfill_chans, backfill_dump_one, chans);
	map_foreach(backfill_threads, backfill_dump_one, threads);
	json_object_object_add(o, "channels", chans);
	json_object_object_add(o, "threads", threads);
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	xasprintf(&tmp, "%s.tmp", path);
	if (backfill_write(tmp, s, len) == -1)
		log_warn("backfill: cannot save %s", path);
	else if (rename(tmp, path) == -1) {
		log_warn("backfill: cannot save %s", path);
		unlink(tmp);
	}
	json_object_put(o);
	free(tmp);
	free(path);
}

static void
backfill_save_cb(evutil_socket_t fd, short events, void *arg)
{
	if (backfill_dirty)
		backfill_save();
}

static void
backfill_save_later(void)
{
	struct timeval tv = { BACKFILL_SAVE_DELAY, 0 };

	if (slackd_conf->state_dir == NULL || backfill_save_ev == NULL ||
	    evtimer_pending(backfill_save_ev, NULL))
		return;
	evtimer_add(backfill_save_ev, &tv);
}

static void
backfill_load_marks(struct json_object *from, struct map *into)
{
	struct json_object *ts, *at;

	if (from == NULL || !json_object_is_type(from, json_type_object))
		return;
	json_object_object_foreach(from, key, v)
	{
		if (!json_object_object_get_ex(v, "ts", &ts) ||
		    !json_object_object_get_ex(v, "at", &at) ||
		    !backfill_plan_ts_valid(json_object_get_string(ts)) ||
		    strlen(key) >= JSCAN_FIELD + BACKFILL_TS)
			continue;
		backfill_mark(into, key, json_object_get_string(ts),
		    json_object_get_double(at));
	}
}

/*
 * At startup: the marks of the last run.  The gap then runs from when
 * they were saved, and the first connection fills it.
 */
static void
backfill_load(void)
{
	struct json_object *o = NULL, *v, *chans = NULL, *threads = NULL;
	struct stat sb;
	char *path, *buf = NULL;
	ssize_t n;
	int fd;

	if ((path = backfill_path()) == NULL)
		return;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno != ENOENT)
			log_warn("backfill: cannot read %s", path);
		free(path);
		return;
	}
	if (fstat(fd, &sb) == -1 || sb.st_size > BACKFILL_FILE_MAX)
		goto bad;
	buf = xmalloc((size_t)sb.st_size + 1);
	if ((n = read(fd, buf, (size_t)sb.st_size)) != sb.st_size)
		goto bad;
	buf[n] = '\0';
	if ((o = json_tokener_parse(buf)) == NULL ||
	    !json_object_object_get_ex(o, "version", &v) ||
	    json_object_get_int(v) != BACKFILL_FILE_VERSION ||
	    !json_object_object_get_ex(o, "saved", &v))
		goto bad;
	backfill_gap_from = json_object_get_double(v);
	if (json_object_object_get_ex(o, "team", &v))
		backfill_team = xstrdup(json_object_get_string(v));
	json_object_object_get_ex(o, "channels", &chans);
	json_object_object_get_ex(o, "threads", &threads);
	backfill_load_marks(chans, backfill_chans);
	backfill_load_marks(threads, backfill_threads);
	backfill_dirty = 0;
	backfill_gap_why = xstrdup("slackd was not running");
	backfill_gap_reason = "restart";
	log_info("backfill: %zu channel%s and %zu thread%s from %s",
	    map_count(backfill_chans),
	    map_count(backfill_chans) == 1 ? "" : "s",
	    map_count(backfill_threads),
	    map_count(backfill_threads) == 1 ? "" : "s", path);
	goto out;
bad:
	log_warnx(
	    "backfill: %s is not a backfill file of this version; ignored",
	    path);
out:
	json_object_put(o);
	close(fd);
	free(buf);
	free(path);
}

/* ---- life ---------------------------------------------------------------- */

void
backfill_init(void)
{
	backfill_chans = map_new();
	backfill_threads = map_new();
	backfill_seen = backfill_plan_seen_new(BACKFILL_SEEN_MAX);
	backfill_given = backfill_plan_seen_new(BACKFILL_SEEN_MAX);
	backfill_save_ev = evtimer_new(slackd_base, backfill_save_cb, NULL);
	backfill_retry_ev = evtimer_new(slackd_base, backfill_retry_cb, NULL);
	backfill_load();
	hub_consume(backfill_event);
}

/* Shutdown: save the marks, drop the jobs (calls are forgotten). */
void
backfill_shutdown(void)
{
	struct backfill_job *job;

	if (backfill_chans == NULL)
		return;
	hub_unconsume(backfill_event);
	backfill_save();
	while ((job = TAILQ_FIRST(&backfill_jobs)) != NULL)
		backfill_job_free(job);
	event_free(backfill_save_ev);
	event_free(backfill_retry_ev);
	map_free(backfill_chans, free);
	map_free(backfill_threads, free);
	backfill_plan_seen_free(backfill_seen);
	backfill_plan_seen_free(backfill_given);
	free(backfill_team);
	free(backfill_gap_why);
	backfill_chans = backfill_threads = NULL;
	backfill_seen = backfill_given = NULL;
	backfill_team = backfill_gap_why = NULL;
}
