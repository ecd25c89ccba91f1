/*
 * Local client sessions: one bufferevent each, JSON lines in and out.
 *
 * Input is bounded: at most max_line bytes are buffered; a longer line is
 * answered with an error and the rest of it is skipped as it arrives.  A
 * client that sends requests faster than it reads the replies is paused
 * until its output drains.  A client is never freed inside its own
 * callback: client_kill() marks it and the reaper frees it afterwards.
 *
 * struct client is this file's alone.  The hub fans events out through the
 * functions at the end (which clients take output, what each wants, room
 * under the buffer limits, queueing); client.c counts the clients it
 * accepted, dropped and refused for slackd.status (client_stats()).
 *
 * A client that subscribes "since" a cursor is caught up from the hub's
 * replay ring, a slice at a time as it reads (client_catch_up()); until
 * it has every event numbered so far the hub leaves it out of the
 * fan-out, and from then on it is live like any other.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "slackd.h"

#define CLIENT_PAUSE_AT  (256 * 1024) /* stop reading above this output */
#define CLIENT_RESUME_AT (64 * 1024)
#define CLIENT_MAX_WRITE (256 * 1024) /* bytes per write(2), at most */
#define CLIENT_LINGER    5 /* s a dropped client has to read its error */

#define CLIENT_DEAD     0x1   /* free at the next reap */
#define CLIENT_DISCARD  0x2   /* skipping the rest of an overlong line */
#define CLIENT_PAUSED   0x4   /* reading stopped until output drains */
#define CLIENT_FLUSHING 0x8   /* close once output is written */
#define CLIENT_EOF      0x10  /* peer shut down its sending side */
#define CLIENT_DROPPED  0x20  /* too slow: nothing more, then closed */
#define CLIENT_PUSH     0x40  /* on the list of output to write */
#define CLIENT_WRITING  0x80  /* a backlog: the bufferevent writes it */
#define CLIENT_SEQ      0x100 /* events carry "slackd_seq" */
#define CLIENT_CATCHUP  0x200 /* replaying from the ring, not live yet */

#define CLIENT_CATCHUP_AT (64 * 1024) /* replay while output is below */
/* (or half client_buffer_soft: a live event must still fit after it) */

struct client {
	TAILQ_ENTRY(client) entry;
	TAILQ_ENTRY(client) push_entry;
	uint64_t id;
	int fd;
	struct bufferevent *bev;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int flags;

	int all_types; /* subscription: no filter on type */
	char **types;
	size_t ntypes;
	int all_channels;
	char **channels;
	size_t nchannels;

	int64_t soft_since; /* over client_buffer_soft since, or 0 */
	uint64_t next;      /* CLIENT_CATCHUP: the next seq to replay */

	/* A virtual client (client_virtual()): no socket, lines to sink. */
	void (*sink)(void *, const char *, size_t);
	void *sink_arg;
};
TAILQ_HEAD(client_list, client);

static struct client_list client_all = TAILQ_HEAD_INITIALIZER(client_all);
static struct event *client_reaper;
/* Clients with new output, written once the current callbacks are done. */
static struct client_list client_pushq = TAILQ_HEAD_INITIALIZER(client_pushq);
static struct event *client_pusher;
static uint64_t client_next_id;
static u_int client_live;
static uint64_t client_ntotal;   /* accepted */
static uint64_t client_ndropped; /* as too slow */
static uint64_t client_nrefused; /* by the listener */

static void client_read_cb(struct bufferevent *, void *);
static void client_push_later(struct client *);

u_int
client_count(void)
{
	return client_live;
}

/* The listener turned a client away (allow_users, allow_groups). */
void
client_refused(void)
{
	client_nrefused++;
}

void
client_stats(struct client_stats *st)
{
	st->total = client_ntotal;
	st->dropped = client_ndropped;
	st->refused = client_nrefused;
}

size_t
client_output(struct client *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* Throw away the output not written yet. */
static size_t
client_discard_output(struct client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct evbuffer *keep;
	struct evbuffer_ptr eol;
	size_t before = evbuffer_get_length(out), n = 0;

	/*
	 * The first line may be half written to the socket already: keep it
	 * whole, so the client's stream stays one JSON object per line.
	 */
	eol = evbuffer_search(out, "\n", 1, NULL);
	if (eol.pos >= 0)
		n = (size_t)eol.pos + 1;
	evbuffer_unfreeze(out, 1); /* bufferevents keep its start frozen */
	keep = evbuffer_new();
	if (keep != NULL && n > 0)
		evbuffer_remove_buffer(out, keep, n);
	evbuffer_drain(out, evbuffer_get_length(out));
	if (keep != NULL) {
		evbuffer_add_buffer(out, keep);
		evbuffer_free(keep);
	}
	evbuffer_freeze(out, 1);
	return before - evbuffer_get_length(out);
}

static void client_list_free(char ***, size_t *);
static size_t client_soft_limit(void);

static void
client_free(struct client *c)
{
	outbox_detach(c);
	nats_detach(c);
	TAILQ_REMOVE(&client_all, c, entry);
	if (c->flags & CLIENT_PUSH)
		TAILQ_REMOVE(&client_pushq, c, push_entry);
	bufferevent_free(c->bev);
	client_list_free(&c->types, &c->ntypes);
	client_list_free(&c->channels, &c->nchannels);
	free(c);
}

static void
client_reap_cb(evutil_socket_t fd, short events, void *arg)
{
	struct client *c, *next;

	TAILQ_FOREACH_SAFE(c, &client_all, entry, next) {
		if (c->flags & CLIENT_DEAD)
			client_free(c);
	}
	if (slackd_stopping && TAILQ_EMPTY(&client_all))
		slackd_clients_gone();
}

static void client_kill(struct client *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* Mark c for freeing; it gets nothing more and is freed by the reaper. */
static void
client_kill(struct client *c, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	if (c->flags & CLIENT_DEAD)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	c->flags |= CLIENT_DEAD;
	client_live--;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	log_debug("client %llu (pid %ld, uid %lu): %s",
	    (unsigned long long)c->id, (long)c->pid, (unsigned long)c->uid,
	    why);
	event_active(client_reaper, EV_TIMEOUT, 0);
}

static void client_drop(struct client *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * c reads too slowly.  Throw away what it has not read, tell it why (if
 * it ever reads again), and close once that is written or after a few
 * seconds.  Its messages are still sent (their replies go nowhere); what
 * it asked only for itself is dropped (outbox_detach()).
 */
static void
client_drop(struct client *c, const char *fmt, ...)
{
	struct timeval tv = { CLIENT_LINGER, 0 };
	char why[256];
	va_list ap;

	if (c->flags & (CLIENT_DEAD | CLIENT_DROPPED))
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	client_ndropped++;
	log_warnx(
	    "client %llu (pid %ld, uid %lu) dropped as too slow: %s; %zu bytes it had not read thrown away",
	    (unsigned long long)c->id, (long)c->pid, (unsigned long)c->uid, why,
	    client_discard_output(c));
	client_error(
	    c, NULL, PROTOCOL_E_SLOW_CONSUMER, "disconnected: %s", why);
	outbox_detach(c);
	c->flags |= CLIENT_DROPPED | CLIENT_FLUSHING;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(c->bev, NULL, &tv);
}

void
client_send(struct client *c, const char *line, size_t len)
{
	struct evbuffer *out;

	if (c->sink != NULL) {
		c->sink(c->sink_arg, line, len);
		return;
	}
	if (c->flags & (CLIENT_DEAD | CLIENT_DROPPED))
		return;
	out = bufferevent_get_output(c->bev);
	evbuffer_add(out, line, len);
	if (len == 0 || line[len - 1] != '\n')
		evbuffer_add(out, "\n", 1);
	client_push_later(c);
}

/*
 * Output is written straight from the loop: one write(2) per client per
 * batch, without asking epoll first.  Only what the socket does not take
 * at once goes to the bufferevent, whose write event then runs until the
 * backlog is gone (CLIENT_WRITING).  A write event armed and disarmed for
 * every event would cost two epoll_ctl(2) calls per client per event.
 */
static void
client_push_later(struct client *c)
{
	if (c->flags & (CLIENT_DEAD | CLIENT_PUSH | CLIENT_WRITING))
		return;
	c->flags |= CLIENT_PUSH;
	if (TAILQ_EMPTY(&client_pushq))
		event_active(client_pusher, EV_TIMEOUT, 0);
	TAILQ_INSERT_TAIL(&client_pushq, c, push_entry);
}

static void client_wrote(struct client *);

static void
client_push(struct client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	int n;

	if (c->flags & (CLIENT_DEAD | CLIENT_WRITING))
		return;
	if (evbuffer_get_length(out) > 0) {
		evbuffer_unfreeze(
		    out, 1); /* bufferevents keep its start frozen */
		n = evbuffer_write_atmost(out, c->fd, CLIENT_MAX_WRITE);
		evbuffer_freeze(out, 1);
		if (n == -1 && errno != EAGAIN && errno != EINTR) {
			client_kill(c, "cannot write: %s", strerror(errno));
			return;
		}
		if (evbuffer_get_length(out) > 0) {
			c->flags |= CLIENT_WRITING;
			bufferevent_enable(c->bev, EV_WRITE);
			return;
		}
	}
	client_wrote(c);
}

static void
client_push_cb(evutil_socket_t fd, short events, void *arg)
{
	struct client *c;

	while ((c = TAILQ_FIRST(&client_pushq)) != NULL) {
		TAILQ_REMOVE(&client_pushq, c, push_entry);
		c->flags &= ~CLIENT_PUSH;
		client_push(c);
	}
}

void
client_send_json(struct client *c, struct json_object *o)
{
	const char *s;
	size_t len;

	s = json_object_to_json_string_length(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	client_send(c, s, len);
}

/*
 * Send an error in Slack's shape: as the reply to id if there is one,
 * else as a slackd.error message.
 */
void
client_error(
    struct client *c, struct json_object *id, int code, const char *fmt, ...)
{
	struct json_object *o, *e;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	e = json_object_new_object();
	json_object_object_add(e, "code", json_object_new_int(code));
	json_object_object_add(
	    e, "name", json_object_new_string(protocol_error_name(code)));
	json_object_object_add(e, "msg", json_object_new_string(msg));
	o = json_object_new_object();
	if (id != NULL) {
		json_object_object_add(o, "ok", json_object_new_boolean(0));
		json_object_object_add(o, "reply_to", json_object_get(id));
	} else
		json_object_object_add(
		    o, "type", json_object_new_string(PROTOCOL_ERROR));
	json_object_object_add(o, "error", e);
	client_send_json(c, o);
	json_object_put(o);
	log_debug(
	    "client %llu: error %d: %s", (unsigned long long)c->id, code, msg);
}

/* Answer a request the daemon handles itself: ok, the type, reply_to. */
static struct json_object *
client_reply(struct request *r, const char *type)
{
	struct json_object *o;

	o = json_object_new_object();
	if (type != NULL)
		json_object_object_add(o, "type", json_object_new_string(type));
	if (r->id != NULL)
		json_object_object_add(o, "reply_to", json_object_get(r->id));
	return o;
}

/* The reply {"type":type,"reply_to":id,"ok":true}. */
static void
client_reply_ok(struct client *c, struct request *r, const char *type)
{
	struct json_object *o;

	o = client_reply(r, type);
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	client_send_json(c, o);
	json_object_put(o);
}

static void
client_ping(struct client *c, struct request *r)
{
	struct json_object *o;

	o = client_reply(r, "pong");
	json_object_object_foreach(r->obj, key, val)
	{
		if (strcmp(key, "id") != 0 && strcmp(key, "type") != 0)
			json_object_object_add(o, key, json_object_get(val));
	}
	client_send_json(c, o);
	json_object_put(o);
}

static void
client_status(struct client *c, struct request *r)
{
	struct json_object *o;

	o = status_full();
	json_object_object_add(
	    o, "type", json_object_new_string(PROTOCOL_STATUS));
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	if (r->id != NULL)
		json_object_object_add(o, "reply_to", json_object_get(r->id));
	client_send_json(c, o);
	json_object_put(o);
}

static void
client_list_free(char ***list, size_t *n)
{
	size_t i;

	for (i = 0; i < *n; i++)
		free((*list)[i]);
	free(*list);
	*list = NULL;
	*n = 0;
}

/* A filter from a subscribe request: a (checked) list, or NULL: all. */
static void
client_list_set(struct json_object *a, int *all, char ***list, size_t *n)
{
	size_t i;

	client_list_free(list, n);
	if (a == NULL) {
		*all = 1;
		return;
	}
	*all = 0;
	*n = json_object_array_length(a);
	*list = xcalloc(*n, sizeof **list);
	for (i = 0; i < *n; i++)
		(*list)[i] = xstrdup(
		    json_object_get_string(json_object_array_get_idx(a, i)));
}

/*
 * Tell c what it cannot get back: {"type":"slackd.gap","reason":…,
 * "since":…,"missed":N or null,"first":…,"last":…,"to":T}.
 */
static void
client_gap(struct client *c, const char *since, const struct replay_gap *g)
{
	char cur[REPLAY_CURSOR_MAX];
	struct json_object *o;

	o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string(PROTOCOL_GAP));
	json_object_object_add(o, "reason", json_object_new_string(g->reason));
	json_object_object_add(o, "since", json_object_new_string(since));
	json_object_object_add(o, "missed",
	    g->missed >= 0 ? json_object_new_int64(g->missed) : NULL);
	if (g->first != 0 && hub_label(cur, g->first) != NULL) {
		json_object_object_add(o, "first", json_object_new_string(cur));
		json_object_object_add(
		    o, "last", json_object_new_string(hub_label(cur, g->last)));
	}
	json_object_object_add(
	    o, "to", g->to > 0 ? json_object_new_double(g->to) : NULL);
	if (strcmp(g->reason, REPLAY_GAP_RESTART) == 0)
		json_object_object_add(
		    o, "started", json_object_new_double(status_now.started));
	client_send_json(c, o);
	json_object_put(o);
	log_info(
	    "client %llu (pid %ld) resumed from %s: %s, %lld events missed",
	    (unsigned long long)c->id, (long)c->pid, since, g->reason,
	    (long long)g->missed);
}

/*
 * Replay to c from the ring, c->next on, while its output is small; the
 * rest when it has written that (client_wrote()).  Once it has every
 * event numbered so far it is live: the hub fans out to it from the next
 * batch, so nothing is missed or sent twice.  An event that left the ring
 * before c got to it is a gap.
 */
static void
client_catch_up(struct client *c)
{
	const struct replay_event *e;
	char prefix[REPLAY_PREFIX_MAX], since[REPLAY_CURSOR_MAX];
	struct json_object *o;
	struct replay_gap gap;
	size_t plen;

	size_t at = client_soft_limit() / 2;

	if (at > CLIENT_CATCHUP_AT)
		at = CLIENT_CATCHUP_AT;
	while ((c->flags & CLIENT_CATCHUP) &&
	    !(c->flags & (CLIENT_DEAD | CLIENT_DROPPED | CLIENT_FLUSHING)) &&
	    client_output(c) < at) {
		if (c->next > hub_seq()) {
			c->flags &= ~CLIENT_CATCHUP;
			log_debug("client %llu: caught up at %s",
			    (unsigned long long)c->id, hub_cursor(since));
			break;
		}
		if ((e = replay_get(hub_replay(), c->next)) == NULL) {
			if (hub_label(since, c->next - 1) == NULL)
				snprintf(since, sizeof since, "?");
			(void)replay_plan(hub_replay(), "", hub_seq(), "",
			    c->next - 1, &c->next, &gap);
			if (gap.reason != NULL)
				client_gap(c, since, &gap);
			continue;
		}
		if ((o = hub_hole(c->next)) != NULL) {
			client_send_json(c, o);
			json_object_put(o);
		}
		c->next++;
		if (!client_wants(c, e->type, e->channel))
			continue;
		/* (0: numbered in a segment hub.c no longer keeps) */
		if ((plen = hub_prefix(prefix, e->seq, e->line)) == 0)
			continue;
		if (client_queue(c, prefix, plen) != 0 ||
		    client_queue(c, e->line + 1, e->len - 1) != 0)
			return;
	}
}

/*
 * Replace c's subscription: "types" and "channels" each either absent (no
 * filter) or a list (an empty list matches nothing).
 */
static void
client_subscribe(struct client *c, struct request *r)
{
	char run[REPLAY_RUN_LEN + 1], cur[REPLAY_CURSOR_MAX];
	uint64_t n = 0, next = 0;
	struct replay_gap gap;

	if (r->since != NULL) {
		if (replay_cursor_parse(r->since, run, &n) != 0)
			fatalx("subscribe: an unchecked cursor");
		replay_expire(hub_replay(), util_now_ms());
		if (hub_plan(run, n, &next, &gap) != 0) {
			client_error(c, r->id, PROTOCOL_E_BAD_REQUEST,
			    "cursor \"%s\" is ahead of slackd (its newest event is %s)",
			    r->since, hub_cursor(cur));
			return;
		}
	}
	client_list_set(r->types, &c->all_types, &c->types, &c->ntypes);
	client_list_set(
	    r->channels, &c->all_channels, &c->channels, &c->nchannels);
	c->flags &= ~(CLIENT_SEQ | CLIENT_CATCHUP);
	if (r->seq)
		c->flags |= CLIENT_SEQ;
	client_reply_ok(c, r, PROTOCOL_SUBSCRIBE);
	if (r->since == NULL)
		return;
	if (gap.reason != NULL)
		client_gap(c, r->since, &gap);
	c->next = next;
	c->flags |= CLIENT_CATCHUP;
	log_debug("client %llu: replaying from index %llu",
	    (unsigned long long)c->id, (unsigned long long)next);
	client_catch_up(c);
}

/* The inject test hook: o goes out as an event (hub_inject()). */
static void
client_debug_inject(struct client *c, struct request *r, struct json_object *o)
{
	char cur[REPLAY_CURSOR_MAX];
	struct json_object *reply;
	const char *line;
	uint64_t seq;
	size_t len;

	line = json_object_to_json_string_length(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	seq = hub_inject(line, len, protocol_json_str(o, "type"),
	    protocol_json_str(o, "channel"));
	if (seq == 0) {
		client_error(c, r->id, PROTOCOL_E_BAD_REQUEST,
		    "inject: the event's type or channel is too long");
		return;
	}
	reply = client_reply(r, PROTOCOL_DEBUG);
	json_object_object_add(reply, "ok", json_object_new_boolean(1));
	json_object_object_add(
	    reply, PROTOCOL_SEQ, json_object_new_string(hub_label(cur, seq)));
	client_send_json(c, reply);
	json_object_put(reply);
}

/*
 * Test hooks, only with SLACKD_TEST_HOOKS=1 in the environment at start:
 * {"type":"slackd.debug","wedge":"upstream"} hangs the upstream thread
 * (to prove the watchdog notices); {"type":"slackd.debug","sleep":S}
 * stalls the main thread S seconds (to prove the backpressure);
 * {"type":"slackd.debug","save":"names"} writes names.json now;
 * {"type":"slackd.debug","inject":{…}} sends {…} out as an event.
 */
static void
client_debug(struct client *c, struct request *r)
{
	struct json_object *v;

	if (!slackd_test_hooks) {
		client_error(c, r->id, PROTOCOL_E_UNKNOWN_TYPE,
		    "unknown type \"" PROTOCOL_DEBUG "\" (test hooks are off)");
		return;
	}
	if (json_object_object_get_ex(r->obj, "wedge", &v) &&
	    strcmp(json_object_get_string(v), "upstream") == 0 &&
	    slackd_upstream_running()) {
		log_warnx("test hook: wedging the upstream thread");
		slackd_to_upstream(mailbox_msg_new(MAILBOX_WEDGE));
	}
	if (json_object_object_get_ex(r->obj, "sleep", &v) &&
	    json_object_get_double(v) > 0 && json_object_get_double(v) <= 10) {
		log_warnx("test hook: the main thread sleeps %.1f s",
		    json_object_get_double(v));
		usleep((useconds_t)(json_object_get_double(v) * 1e6));
	}
	if (json_object_object_get_ex(r->obj, "save", &v) &&
	    strcmp(json_object_get_string(v), "names") == 0)
		names_save_now();
	if (json_object_object_get_ex(r->obj, "inject", &v) &&
	    json_object_is_type(v, json_type_object)) {
		client_debug_inject(c, r, v);
		return;
	}
	client_reply_ok(c, r, PROTOCOL_DEBUG);
}

/* A request for Slack (or its names): the outbox answers it. */
static void
client_outbox(struct client *c, struct request *r)
{
	if (slackd_stopping)
		client_error(c, r->id, PROTOCOL_E_SHUTTING_DOWN,
		    "slackd is shutting down; not sent");
	else
		outbox_submit(c, r);
}

/* What the daemon does with each kind of request (see request.c). */
static void (*const client_handlers[REQUEST_NKINDS])(
    struct client *, struct request *) = {
	[REQUEST_MESSAGE] = client_outbox,
	[REQUEST_TYPING] = client_outbox,
	[REQUEST_PING] = client_ping,
	[REQUEST_SUBSCRIBE] = client_subscribe,
	[REQUEST_STATUS] = client_status,
	[REQUEST_DEBUG] = client_debug,
	[REQUEST_POST] = client_outbox,
	[REQUEST_API] = client_outbox,
	[REQUEST_NAMES] = client_outbox,
	[REQUEST_ACK] = envelope_answer,
};

static void
client_request(struct client *c, const char *line, size_t len)
{
	struct request r;
	struct request_error e;

	if (request_parse(line, len, &r, &e) != 0)
		client_error(c, e.id, e.code, "%s", e.msg);
	else if (nats_forward(c, &r, line, len))
		; /* a standby (nats_ha): the leader runs it */
	else if (client_handlers[r.kind] == NULL)
		fatalx("request kind %d has no handler", r.kind);
	else
		client_handlers[r.kind](c, &r);
	request_free(&r);
}

/*
 * Skip input up to and including the next newline.  Returns 1 once the
 * newline has been found, 0 if everything buffered was dropped.
 */
static int
client_discard(struct evbuffer *in)
{
	struct evbuffer_ptr eol;

	eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (eol.pos == -1) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return 0;
	}
	evbuffer_drain(in, (size_t)eol.pos + 1);
	return 1;
}

static void
client_lines(struct client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_ptr eol;
	size_t max = slackd_conf->max_line, len;
	char *line;

	while (!(c->flags & (CLIENT_DEAD | CLIENT_PAUSED))) {
		if (c->flags & CLIENT_DISCARD) {
			if (!client_discard(in))
				return;
			c->flags &= ~CLIENT_DISCARD;
			continue;
		}
		eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
		if (eol.pos == -1) {
			len = evbuffer_get_length(in);
			if (len > 0 && len <= max && (c->flags & CLIENT_EOF)) {
				/* A last line without its newline. */
				line =
				    (char *)evbuffer_pullup(in, (ssize_t)len);
				client_request(c, line, len);
				evbuffer_drain(in, len);
				return;
			}
			if (len <= max)
				return;
			client_error(c, NULL, PROTOCOL_E_LINE_TOO_LONG,
			    "request line longer than %zu bytes (max_line); the rest of it is discarded",
			    max);
			c->flags |= CLIENT_DISCARD;
			continue;
		}
		len = (size_t)eol.pos;
		if (len > max) {
			client_error(c, NULL, PROTOCOL_E_LINE_TOO_LONG,
			    "request line of %zu bytes is longer than %zu (max_line)",
			    len, max);
			evbuffer_drain(in, len + 1);
			continue;
		}
		line = (char *)evbuffer_pullup(in, (ssize_t)len + 1);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len > 0)
			client_request(c, line, len);
		evbuffer_drain(in, (size_t)eol.pos + 1);
		if (client_output(c) > CLIENT_PAUSE_AT) {
			c->flags |= CLIENT_PAUSED;
			bufferevent_disable(c->bev, EV_READ);
		}
	}
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	client_lines(arg);
}

/* A soft limit above the hard one is the hard one. */
static size_t
client_soft_limit(void)
{
	const struct config *conf = slackd_conf;

	return conf->client_buffer_soft < conf->client_buffer_limit
	    ? conf->client_buffer_soft
	    : conf->client_buffer_limit;
}

/* Output was written: close, lift limits, read again, as it allows. */
static void
client_wrote(struct client *c)
{
	if ((c->flags & CLIENT_FLUSHING) && client_output(c) == 0) {
		client_kill(c, "output flushed, closing");
		return;
	}
	if (c->flags & CLIENT_CATCHUP)
		client_catch_up(c);
	if (client_output(c) <= client_soft_limit())
		c->soft_since = 0;
	if ((c->flags & CLIENT_PAUSED) &&
	    client_output(c) <= CLIENT_RESUME_AT) {
		c->flags &= ~CLIENT_PAUSED;
		if (!(c->flags & CLIENT_EOF))
			bufferevent_enable(c->bev, EV_READ);
		client_lines(c);
	}
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	/* The backlog is gone: back to writing from the loop. */
	if ((c->flags & CLIENT_WRITING) && client_output(c) == 0) {
		c->flags &= ~CLIENT_WRITING;
		bufferevent_disable(c->bev, EV_WRITE);
	}
	client_wrote(c);
}

/*
 * End of input.  A last line without a newline still counts.  A peer that
 * has closed its socket is gone; one that only shut down its sending side
 * (socat with stdin at EOF) still gets its replies and events.
 */
static void
client_eof(struct client *c)
{
	struct pollfd pfd = { c->fd, POLLOUT, 0 };

	c->flags |= CLIENT_EOF;
	bufferevent_disable(c->bev, EV_READ);
	client_lines(c);
	if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR)))
		client_kill(c, "disconnected");
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	if (what & BEV_EVENT_TIMEOUT)
		client_kill(c, "did not read its last lines in time");
	else if (what & BEV_EVENT_EOF)
		client_eof(c);
	else if (what & BEV_EVENT_ERROR)
		client_kill(
		    c, "connection error: %s", strerror(EVUTIL_SOCKET_ERROR()));
}

void
client_accept(int fd, uid_t uid, gid_t gid, pid_t pid)
{
	struct client *c;
	struct json_object *hello;

	if (client_reaper == NULL) {
		client_reaper =
		    event_new(slackd_base, -1, 0, client_reap_cb, NULL);
		client_pusher =
		    event_new(slackd_base, -1, 0, client_push_cb, NULL);
	}
	c = xcalloc(1, sizeof *c);
	c->id = ++client_next_id;
	c->fd = fd;
	c->uid = uid;
	c->gid = gid;
	c->pid = pid;
	c->all_types = c->all_channels = 1;
	c->bev = bufferevent_socket_new(slackd_base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		fatalx("bufferevent_socket_new");
	bufferevent_setcb(
	    c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	/* Never buffer more than one line's worth of input. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, slackd_conf->max_line + 2);
	bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_RESUME_AT, 0);
	/* libevent writes at most 16 KiB a call unless told otherwise. */
	bufferevent_set_max_single_write(c->bev, CLIENT_MAX_WRITE);
	/* libevent starts a bufferevent writing; client_push() decides. */
	bufferevent_disable(c->bev, EV_WRITE);
	bufferevent_enable(c->bev, EV_READ);
	TAILQ_INSERT_TAIL(&client_all, c, entry);
	client_live++;
	client_ntotal++;
	log_debug("client %llu connected (pid %ld, uid %lu, gid %lu)",
	    (unsigned long long)c->id, (long)pid, (unsigned long)uid,
	    (unsigned long)gid);

	hello = status_hello();
	client_send_json(c, hello);
	json_object_put(hello);
}

/* After a reload: a new max_line applies to connected clients too. */
void
client_reconfigure(void)
{
	struct client *c;

	TAILQ_FOREACH(c, &client_all, entry) {
		if (!(c->flags & CLIENT_DEAD))
			bufferevent_setwatermark(
			    c->bev, EV_READ, 0, slackd_conf->max_line + 2);
	}
}

/* Shutdown: let every client read what it has been sent, then close. */
void
client_flush_all(void)
{
	struct client *c;

	TAILQ_FOREACH(c, &client_all, entry) {
		if (c->flags & CLIENT_DEAD)
			continue;
		c->flags |= CLIENT_FLUSHING;
		bufferevent_disable(c->bev, EV_READ);
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		if (client_output(c) == 0)
			client_kill(c, "closed at shutdown");
	}
	if (client_reaper != NULL)
		event_active(client_reaper, EV_TIMEOUT, 0);
	else if (TAILQ_EMPTY(&client_all))
		slackd_clients_gone();
}

void
client_free_all(void)
{
	struct client *c;

	while ((c = TAILQ_FIRST(&client_all)) != NULL)
		client_free(c);
	if (client_reaper != NULL) {
		event_free(client_reaper);
		event_free(client_pusher);
		client_reaper = client_pusher = NULL;
	}
}

/* ---- clients without a socket ------------------------------------------ */

/*
 * A client for requests that come another way (NATS, nats.c): every line
 * it is sent goes to sink(arg, line, len).  It is on no list, so it gets
 * no events and is not counted; the caller frees it.
 */
struct client *
client_virtual(void (*sink)(void *, const char *, size_t), void *arg)
{
	struct client *c;

	c = xcalloc(1, sizeof *c);
	c->id = ++client_next_id;
	c->fd = -1;
	c->all_types = c->all_channels = 1;
	c->sink = sink;
	c->sink_arg = arg;
	return c;
}

void
client_virtual_request(struct client *c, const char *line, size_t len)
{
	client_request(c, line, len);
}

void
client_virtual_free(struct client *c)
{
	outbox_detach(c);
	nats_detach(c);
	client_list_free(&c->types, &c->ntypes);
	client_list_free(&c->channels, &c->nchannels);
	free(c);
}

/* ---- what the hub uses to fan events out ------------------------------ */

/* c or the first client after it that still takes output. */
static struct client *
client_open_from(struct client *c)
{
	while (c != NULL && (c->flags & (CLIENT_DEAD | CLIENT_FLUSHING)))
		c = TAILQ_NEXT(c, entry);
	return c;
}

/*
 * The clients that take output, in order: client_first(), then
 * client_next() until NULL.  A client dropped or killed meanwhile stays
 * on the list until the reaper runs, so client_next() of it still works.
 */
struct client *
client_first(void)
{
	return client_open_from(TAILQ_FIRST(&client_all));
}

struct client *
client_next(struct client *c)
{
	return client_open_from(TAILQ_NEXT(c, entry));
}

/*
 * How c takes events: CLIENT_MODE_FILTERED (by type or channel),
 * CLIENT_MODE_SEQ (with "slackd_seq"), CLIENT_MODE_CATCHUP (it reads the
 * replay ring until it has caught up: not from the fan-out).
 */
int
client_mode(const struct client *c)
{
	int mode = 0;

	if (!c->all_types || !c->all_channels)
		mode |= CLIENT_MODE_FILTERED;
	if (c->flags & CLIENT_SEQ)
		mode |= CLIENT_MODE_SEQ;
	if (c->flags & CLIENT_CATCHUP)
		mode |= CLIENT_MODE_CATCHUP;
	return mode;
}

static int
client_listed(char **list, size_t n, const char *s)
{
	size_t i;

	if (*s == '\0')
		return 0;
	for (i = 0; i < n; i++) {
		if (strcmp(list[i], s) == 0)
			return 1;
	}
	return 0;
}

/* Does c want an event of this type in this channel ("" if none)? */
int
client_wants(const struct client *c, const char *type, const char *channel)
{
	if (!c->all_types && !client_listed(c->types, c->ntypes, type))
		return 0;
	if (!c->all_channels &&
	    !client_listed(c->channels, c->nchannels, channel))
		return 0;
	return 1;
}

/*
 * May c take len more bytes?  Over client_buffer_limit it is dropped at
 * once; over client_buffer_soft for client_buffer_soft_time too.
 */
int
client_room(struct client *c, size_t len, int64_t now)
{
	const struct config *conf = slackd_conf;
	size_t out = client_output(c) + len, soft = client_soft_limit();

	if (out > conf->client_buffer_limit) {
		client_drop(c,
		    "%zu bytes unread would pass client_buffer_limit (%zu)",
		    out, conf->client_buffer_limit);
		return 0;
	}
	if (out <= soft) {
		c->soft_since = 0;
		return 1;
	}
	if (c->soft_since == 0)
		c->soft_since = now;
	else if (now - c->soft_since >= conf->client_buffer_soft_time) {
		client_drop(c,
		    "more than client_buffer_soft (%zu bytes) unread for %.0f s",
		    soft, (double)conf->client_buffer_soft_time / 1000);
		return 0;
	}
	return 1;
}

/* Queue a copy of len bytes for c.  -1: c could not take them and is gone. */
int
client_queue(struct client *c, const char *data, size_t len)
{
	if (evbuffer_add(bufferevent_get_output(c->bev), data, len) != 0) {
		client_kill(c, "cannot queue output");
		return -1;
	}
	client_push_later(c);
	return 0;
}

/*
 * Queue len bytes for c by reference: release(data, len, arg) runs once
 * they are written or thrown away.  -1: c could not take them (release
 * does not run) and is gone.
 */
int
client_queue_ref(struct client *c, const char *data, size_t len,
    void (*release)(const void *, size_t, void *), void *arg)
{
	if (evbuffer_add_reference(
	        bufferevent_get_output(c->bev), data, len, release, arg) != 0) {
		client_kill(c, "cannot queue output");
		return -1;
	}
	client_push_later(c);
	return 0;
}
