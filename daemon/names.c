/*
 * The names cache: conversations and users, id <-> name, so that clients
 * may send to "welcome-test", "#general", "@alice" or U024BE7LH.
 *
 * Filled from conversations.list and users.list, a page (cursor) at a
 * time through the upstream thread's rate-limited call queue: lazily, the
 * first time a name is looked up, or at connect with team_state = yes.
 * A lookup that has to wait for a load waits; events keep flowing
 * meanwhile.  RTM events keep it fresh (renames, new channels, new and
 * changed users, new DMs): names.c is a consumer of the hub's events
 * (hub_consume()).  With a state directory it is saved to names.json and
 * read back at start, so a restart does not reload a 30,000-user
 * workspace.  A name that is not found in a cache that may be
 * stale triggers one reload (at most once a minute) before the lookup
 * fails.
 *
 * The callback rule, for every function of the main thread that starts
 * something and takes a callback for its outcome (names_resolve() here,
 * api_call() in api.c): it never calls that callback before it returns.
 * When the outcome is known at once, the callback is deferred to the
 * event loop (event_active() or a zero timeout), so the caller always has
 * its handle first and the callback always runs from the loop, never
 * inside the caller's own call.
 */
#include "config.h"

#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "slackd.h"

#define NAMES_PAGE         "1000" /* entries per page */
#define NAMES_RETRY_MISS   60000  /* ms between reloads caused by misses */
#define NAMES_SAVE_DELAY   30     /* s after a change before saving */
#define NAMES_FILE         "names.json"
#define NAMES_FILE_VERSION 1

enum names_state { NAMES_EMPTY, NAMES_LOADING, NAMES_LOADED };

struct names_conv {
	char *id;
	char *name; /* NULL for DMs */
	char *user; /* a DM's user */
	int kind;   /* NAMES_PUBLIC, … */
	int archived;
};
enum { NAMES_PUBLIC, NAMES_PRIVATE, NAMES_IM, NAMES_MPIM };
static const char *names_kinds[] = { "public", "private", "im", "mpim" };

struct names_user {
	char *id;
	char *name;
	char *real_name;
	char *display_name;
	int deleted;
	int bot;
};

/* One of the two lists: its maps, and the load that refills them. */
struct names_list {
	const char *what; /* "channels", "users" */
	const char *method;
	enum names_state state;
	struct map *by_id;      /* id -> struct */
	struct map *by_name;    /* lower-case name -> struct (borrowed) */
	struct map *next_by_id; /* being loaded */
	char *cursor;
	uint64_t call;
	int pages;
	int64_t started;
	int64_t loaded_at; /* monotonic ms of the last complete load */
	int from_disk;     /* what we have came from names.json */
	int64_t last_miss_load;
	double loaded_wall; /* when the last complete load was, wall clock */
	char *error;
	int64_t failed_at; /* the last load failed then (monotonic ms) */
};

struct names_wait {
	TAILQ_ENTRY(names_wait) entry;
	char *target;
	names_cb cb;
	void *arg;
	struct event *start; /* the first try, from the loop */
	int started;
	uint64_t call; /* conversations.open in flight */
};

static struct names_list names_convs = { .what = "channels",
	.method = "conversations.list" };
static struct names_list names_users = { .what = "users",
	.method = "users.list" };
static struct map *names_im_by_user; /* user id -> DM id (owned) */
static TAILQ_HEAD(, names_wait) names_waiting = TAILQ_HEAD_INITIALIZER(
    names_waiting);
static char *names_team; /* team id the cache belongs to */
static struct event *names_save_ev;
static int names_dirty;

static void names_try(struct names_wait *);
static void names_save_later(void);

static void
names_conv_free(void *p)
{
	struct names_conv *c = p;

	free(c->id);
	free(c->name);
	free(c->user);
	free(c);
}

static void
names_user_free(void *p)
{
	struct names_user *u = p;

	free(u->id);
	free(u->name);
	free(u->real_name);
	free(u->display_name);
	free(u);
}

static char *
names_lower(const char *s)
{
	char *l = xstrdup(s), *p;

	for (p = l; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return l;
}

static int
names_bool(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o != NULL && json_object_object_get_ex(o, key, &v) &&
	    json_object_get_boolean(v);
}

static char *
names_dup(const char *s)
{
	return s != NULL && *s != '\0' ? xstrdup(s) : NULL;
}

/* ---- filling the maps ------------------------------------------------- */

static void
names_index(struct names_list *l, const char *name, void *item)
{
	char *lower;

	if (name == NULL)
		return;
	lower = names_lower(name);
	/* The first of equal names wins; a later load replaces all. */
	if (map_get(l->by_name, lower) == NULL)
		map_put(l->by_name, lower, item);
	free(lower);
}

static void
names_put_conv(struct map *by_id, struct json_object *o)
{
	struct names_conv *c;
	const char *id = protocol_json_str(o, "id");

	if (id == NULL)
		return;
	c = xcalloc(1, sizeof *c);
	c->id = xstrdup(id);
	c->name = names_dup(protocol_json_str(o, "name"));
	c->user = names_dup(protocol_json_str(o, "user"));
	if (names_bool(o, "is_im"))
		c->kind = NAMES_IM;
	else if (names_bool(o, "is_mpim"))
		c->kind = NAMES_MPIM;
	else if (names_bool(o, "is_private") || names_bool(o, "is_group"))
		c->kind = NAMES_PRIVATE;
	else
		c->kind = NAMES_PUBLIC;
	c->archived = names_bool(o, "is_archived");
	if ((c = map_put(by_id, c->id, c)) != NULL)
		names_conv_free(c);
}

static void
names_put_user(struct map *by_id, struct json_object *o)
{
	struct names_user *u;
	struct json_object *profile = NULL;
	const char *id = protocol_json_str(o, "id");

	if (id == NULL)
		return;
	json_object_object_get_ex(o, "profile", &profile);
	u = xcalloc(1, sizeof *u);
	u->id = xstrdup(id);
	u->name = names_dup(protocol_json_str(o, "name"));
	u->real_name = names_dup(protocol_json_str(o, "real_name"));
	if (u->real_name == NULL)
		u->real_name =
		    names_dup(protocol_json_str(profile, "real_name"));
	u->display_name = names_dup(protocol_json_str(profile, "display_name"));
	if (u->display_name == NULL)
		u->display_name =
		    names_dup(protocol_json_str(o, "display_name"));
	u->deleted = names_bool(o, "deleted");
	u->bot = names_bool(o, "is_bot");
	if ((u = map_put(by_id, u->id, u)) != NULL)
		names_user_free(u);
}

static int
names_reindex_one(const char *key, void *value, void *arg)
{
	struct names_list *l = arg;

	if (l == &names_convs) {
		struct names_conv *c = value;

		if (c->kind == NAMES_IM && c->user != NULL)
			free(
			    map_put(names_im_by_user, c->user, xstrdup(c->id)));
		else if (!c->archived)
			names_index(l, c->name, c);
	} else {
		struct names_user *u = value;

		if (!u->deleted)
			names_index(l, u->name, u);
	}
	return 0;
}

/* Rebuild the name indexes of l (and the DM index) from by_id. */
static void
names_reindex(struct names_list *l)
{
	map_free(l->by_name, NULL);
	l->by_name = map_new();
	if (l == &names_convs) {
		map_free(names_im_by_user, free);
		names_im_by_user = map_new();
	}
	map_foreach(l->by_id, names_reindex_one, l);
}

static void
names_replace(struct names_list *l, struct map *by_id)
{
	map_free(
	    l->by_id, l == &names_convs ? names_conv_free : names_user_free);
	l->by_id = by_id;
	names_reindex(l);
}

/* ---- loading ---------------------------------------------------------- */

static void names_page(struct names_list *);

static void
names_loaded(struct names_list *l, const char *error)
{
	struct names_wait *w, *next;

	l->state = l->by_id != NULL ? NAMES_LOADED : NAMES_EMPTY;
	free(l->error);
	l->error = error != NULL ? xstrdup(error) : NULL;
	if (error == NULL) {
		names_replace(l, l->next_by_id);
		l->next_by_id = NULL;
		l->state = NAMES_LOADED;
		l->loaded_at = util_now_ms();
		l->loaded_wall = util_wall();
		l->from_disk = 0;
		log_info("names: loaded %zu %s in %d pages, %.1f s",
		    map_count(l->by_id), l->what, l->pages,
		    (double)(l->loaded_at - l->started) / 1000);
		names_dirty = 1;
		names_save_later();
	} else {
		map_free(l->next_by_id,
		    l == &names_convs ? names_conv_free : names_user_free);
		l->next_by_id = NULL;
		l->failed_at = util_now_ms();
		log_warnx("names: could not load the %s: %s", l->what, error);
	}
	free(l->cursor);
	l->cursor = NULL;
	l->call = 0;
	/* Whoever waited tries again: found, not found, or the error. */
	TAILQ_FOREACH_SAFE(w, &names_waiting, entry, next) {
		if (w->started && w->call == 0)
			names_try(w);
	}
	slackd_names_loaded();
}

static void
names_page_done(void *arg, const struct api_result *r)
{
	struct names_list *l = arg;
	struct json_object *items, *meta, *item;
	const char *cursor;
	char why[300];
	size_t i, n;

	l->call = 0;
	if (r->error != NULL || !r->ok) {
		snprintf(why, sizeof why, "%s: %s", l->method,
		    r->error != NULL ? r->error : r->slack_error);
		names_loaded(l, why);
		return;
	}
	if (!json_object_object_get_ex(
	        r->obj, l == &names_convs ? "channels" : "members", &items) ||
	    !json_object_is_type(items, json_type_array)) {
		snprintf(
		    why, sizeof why, "%s: answer without a list", l->method);
		names_loaded(l, why);
		return;
	}
	n = json_object_array_length(items);
	for (i = 0; i < n; i++) {
		item = json_object_array_get_idx(items, i);
		if (l == &names_convs)
			names_put_conv(l->next_by_id, item);
		else
			names_put_user(l->next_by_id, item);
	}
	l->pages++;
	free(l->cursor);
	l->cursor = NULL;
	if (json_object_object_get_ex(r->obj, "response_metadata", &meta) &&
	    (cursor = protocol_json_str(meta, "next_cursor")) != NULL &&
	    *cursor != '\0') {
		l->cursor = xstrdup(cursor);
		names_page(l);
		return;
	}
	names_loaded(l, NULL);
}

static void
names_page(struct names_list *l)
{
	char *body = NULL;
	size_t len = 0;

	webapi_form_add(&body, &len, "limit", NAMES_PAGE);
	if (l == &names_convs) {
		webapi_form_add(&body, &len, "types",
		    "public_channel,private_channel,mpim,im");
		webapi_form_add(&body, &len, "exclude_archived", "false");
	}
	if (l->cursor != NULL)
		webapi_form_add(&body, &len, "cursor", l->cursor);
	l->call = api_call(l->method, body, len, 0, names_page_done, l);
	free(body);
}

static void
names_load(struct names_list *l)
{
	if (l->state == NAMES_LOADING)
		return;
	l->state = NAMES_LOADING; /* old maps, if any, serve meanwhile */
	l->pages = 0;
	l->started = util_now_ms();
	l->next_by_id = map_new();
	log_info("names: loading the %s", l->what);
	names_page(l);
}

static int
names_loading(const struct names_list *l)
{
	return l->state == NAMES_LOADING;
}

/* ---- lookups ---------------------------------------------------------- */

/*
 * Is s an id starting with one of first?  2: surely (it has digits, or it
 * is Slackbot's); 1: it could be ("GENERAL" is more likely a name, so a
 * name goes first); 0: no.
 */
static int
names_is_id(const char *s, const char *first)
{
	const char *p;
	int digits = 0;

	if (strchr(first, s[0]) == NULL || s[1] == '\0')
		return 0;
	for (p = s + 1; *p != '\0'; p++) {
		if (isdigit((unsigned char)*p))
			digits++;
		else if (!isupper((unsigned char)*p))
			return 0;
	}
	return digits > 0 || strcmp(s, "USLACKBOT") == 0 ? 2 : 1;
}

/* Free w, off the waiting list already. */
static void
names_wait_free(struct names_wait *w)
{
	event_free(w->start);
	free(w->target);
	free(w);
}

static void
names_done(struct names_wait *w, const char *id, int code, const char *error)
{
	TAILQ_REMOVE(&names_waiting, w, entry);
	w->cb(w->arg, id, code, error);
	names_wait_free(w);
}

static void
names_opened(void *arg, const struct api_result *r)
{
	struct names_wait *w = arg;
	struct json_object *ch;
	const char *id;
	char why[300];

	w->call = 0;
	if (r->error != NULL || !r->ok ||
	    !json_object_object_get_ex(r->obj, "channel", &ch) ||
	    (id = protocol_json_str(ch, "id")) == NULL) {
		snprintf(why, sizeof why,
		    "cannot open a direct message with %s: %s", w->target,
		    r->error != NULL             ? r->error
		        : r->slack_error != NULL ? r->slack_error
		                                 : "no channel");
		names_done(w, NULL,
		    r->slack_error != NULL &&
		            strcmp(r->slack_error, "user_not_found") == 0
		        ? PROTOCOL_E_NOT_FOUND
		        : PROTOCOL_E_SLACK_API,
		    why);
		return;
	}
	/* Remember it, list of conversations loaded or not. */
	if (names_convs.by_id != NULL) {
		struct names_conv *c = xcalloc(1, sizeof *c);

		c->id = xstrdup(id);
		c->user = xstrdup(w->target);
		c->kind = NAMES_IM;
		if ((c = map_put(names_convs.by_id, c->id, c)) != NULL)
			names_conv_free(c);
		names_reindex(&names_convs);
	} else {
		if (names_im_by_user == NULL)
			names_im_by_user = map_new();
		free(map_put(names_im_by_user, w->target, xstrdup(id)));
	}
	names_done(w, id, 0, NULL);
}

/* The DM with user id: known, or opened with conversations.open. */
static void
names_dm(struct names_wait *w, const char *user)
{
	const char *dm =
	    names_im_by_user != NULL ? map_get(names_im_by_user, user) : NULL;
	char *body = NULL;
	size_t len = 0;

	if (dm != NULL) {
		names_done(w, dm, 0, NULL);
		return;
	}
	if (w->target != user) { /* user may be w->target itself */
		free(w->target);
		w->target = xstrdup(user);
	}
	webapi_form_add(&body, &len, "users", w->target);
	w->call = api_call("conversations.open", body, len, 0, names_opened, w);
	free(body);
}

/*
 * Look name up in l.  Returns the item, or NULL with *wait set when the
 * lookup has to wait for a (re)load, or NULL with *wait 0: not there.
 */
static void *
names_find(struct names_list *l, const char *name, int *wait)
{
	char *lower = names_lower(name);
	void *item = NULL;
	int64_t now = util_now_ms();

	*wait = 0;
	if (l->by_name != NULL)
		item = map_get(l->by_name, lower);
	free(lower);
	if (item != NULL)
		return item;
	if (names_loading(l)) {
		*wait = 1;
		return NULL;
	}
	/* A load just failed: answer with that error rather than retry. */
	if (l->error != NULL && now - l->failed_at < NAMES_RETRY_MISS)
		return NULL;
	/* Never loaded, or possibly stale: (re)load once, then decide. */
	if (l->state == NAMES_EMPTY ||
	    ((l->from_disk || now - l->loaded_at > NAMES_RETRY_MISS) &&
	        now - l->last_miss_load > NAMES_RETRY_MISS)) {
		if (l->state != NAMES_EMPTY)
			l->last_miss_load = now;
		names_load(l);
		*wait = 1;
	}
	return NULL;
}

static void
names_try(struct names_wait *w)
{
	struct names_user *u;
	struct names_conv *c;
	const char *t = w->target;
	char why[300];
	int wait;

	if (*t == '@' || names_is_id(t, "UW") == 2) {
		if (*t != '@') {
			names_dm(w, t);
			return;
		}
		if ((u = names_find(&names_users, t + 1, &wait)) != NULL)
			names_dm(w, u->id);
		else if (!wait) {
			snprintf(why, sizeof why,
			    "no user named %s among the %zu users slackd knows%s%s",
			    t,
			    names_users.by_id != NULL
			        ? map_count(names_users.by_id)
			        : 0,
			    names_users.error != NULL ? "; loading failed: "
			                              : "",
			    names_users.error != NULL ? names_users.error : "");
			names_done(w, NULL,
			    names_users.error != NULL ? PROTOCOL_E_SLACK_API
			                              : PROTOCOL_E_NOT_FOUND,
			    why);
		}
		return;
	}
	if ((c = names_find(&names_convs, *t == '#' ? t + 1 : t, &wait)) !=
	    NULL)
		names_done(w, c->id, 0, NULL);
	else if (!wait && names_is_id(t, "CGD"))
		names_done(w, t, 0, NULL); /* not a name: an id after all */
	else if (!wait && names_is_id(t, "UW"))
		names_dm(w, t);
	else if (!wait) {
		snprintf(why, sizeof why,
		    "no channel named %s among the %zu conversations slackd can see%s%s",
		    t,
		    names_convs.by_id != NULL ? map_count(names_convs.by_id)
		                              : 0,
		    names_convs.error != NULL ? "; loading failed: " : "",
		    names_convs.error != NULL ? names_convs.error : "");
		names_done(w, NULL,
		    names_convs.error != NULL ? PROTOCOL_E_SLACK_API
		                              : PROTOCOL_E_NOT_FOUND,
		    why);
	}
}

/* The first try of a lookup, from the loop (the callback rule). */
static void
names_start_cb(evutil_socket_t fd, short events, void *arg)
{
	struct names_wait *w = arg;

	w->started = 1;
	if (names_is_id(w->target, "CGD") == 2)
		names_done(w, w->target, 0, NULL);
	else
		names_try(w);
}

/*
 * Resolve a conversation target to a conversation id: an id as is, a
 * name with or without '#', '@name' or a user id (their DM).
 * cb(arg, id, 0, NULL) or cb(arg, NULL, PROTOCOL_E_..., why) runs once it
 * is known, from the loop: never before this returns, even when the answer
 * is known at once.  Returns a handle for names_cancel(), valid until cb
 * has run.
 */
struct names_wait *
names_resolve(const char *target, names_cb cb, void *arg)
{
	struct names_wait *w;

	w = xcalloc(1, sizeof *w);
	w->target = xstrdup(target);
	w->cb = cb;
	w->arg = arg;
	if ((w->start = event_new(slackd_base, -1, 0, names_start_cb, w)) ==
	    NULL)
		fatalx("event_new");
	TAILQ_INSERT_TAIL(&names_waiting, w, entry);
	event_active(w->start, EV_TIMEOUT, 0);
	return w;
}

/* The caller no longer wants the answer. */
void
names_cancel(struct names_wait *w)
{
	if (w == NULL)
		return;
	if (w->call != 0)
		api_forget(w->call);
	TAILQ_REMOVE(&names_waiting, w, entry);
	names_wait_free(w);
}

/* team_state = yes: load both lists now.  Returns 1 if loading. */
int
names_preload(void)
{
	int64_t now = util_now_ms();

	/* What names.json gave is good enough while it is young. */
	if (names_convs.state != NAMES_LOADED ||
	    now - names_convs.loaded_at > slackd_conf->names_max_age)
		names_load(&names_convs);
	if (names_users.state != NAMES_LOADED ||
	    now - names_users.loaded_at > slackd_conf->names_max_age)
		names_load(&names_users);
	return names_loading(&names_convs) || names_loading(&names_users);
}

int
names_busy(void)
{
	return names_loading(&names_convs) || names_loading(&names_users);
}

/* ---- what clients may ask for (slackd.names) ---------------------------- */

/* Add the string member key to o, unless s is NULL. */
static void
names_put(struct json_object *o, const char *key, const char *s)
{
	if (s != NULL)
		json_object_object_add(o, key, json_object_new_string(s));
}

/*
 * One conversation or user as JSON: for clients (slackd.names), or for
 * names.json, in the shape Slack's lists have so that it reads back the
 * same way.
 */
static struct json_object *
names_conv_obj(const struct names_conv *c, int file)
{
	static const char *file_kinds[] = { "is_channel", "is_private", "is_im",
		"is_mpim" };
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(c->id));
	names_put(o, "name", c->name);
	names_put(o, "user", c->user);
	if (file)
		json_object_object_add(
		    o, file_kinds[c->kind], json_object_new_boolean(1));
	else
		json_object_object_add(
		    o, "kind", json_object_new_string(names_kinds[c->kind]));
	if (c->archived)
		json_object_object_add(o, file ? "is_archived" : "archived",
		    json_object_new_boolean(1));
	return o;
}

static struct json_object *
names_user_obj(const struct names_user *u, int file)
{
	struct json_object *o = json_object_new_object(), *p;

	json_object_object_add(o, "id", json_object_new_string(u->id));
	names_put(o, "name", u->name);
	names_put(o, "real_name", u->real_name);
	if (!file)
		names_put(o, "display_name", u->display_name);
	else if (u->display_name != NULL) {
		p = json_object_new_object();
		names_put(p, "display_name", u->display_name);
		json_object_object_add(o, "profile", p);
	}
	if (u->deleted)
		json_object_object_add(
		    o, "deleted", json_object_new_boolean(1));
	if (u->bot)
		json_object_object_add(o, "is_bot", json_object_new_boolean(1));
	return o;
}

/* map_foreach() into an array: for clients or for names.json. */
struct names_dump {
	struct json_object *a;
	int file;
};

static int
names_conv_dump(const char *key, void *value, void *arg)
{
	struct names_dump *d = arg;

	json_object_array_add(d->a, names_conv_obj(value, d->file));
	return 0;
}

static int
names_user_dump(const char *key, void *value, void *arg)
{
	struct names_dump *d = arg;

	json_object_array_add(d->a, names_user_obj(value, d->file));
	return 0;
}

/* Every entry of l as an array of JSON objects. */
static struct json_object *
names_dump(struct names_list *l, int file)
{
	struct names_dump d = { json_object_new_array(), file };

	if (l->by_id != NULL)
		map_foreach(l->by_id,
		    l == &names_users ? names_user_dump : names_conv_dump, &d);
	return d.a;
}

/* An array of what the cache knows of channels (users 0) or users. */
struct json_object *
names_list_json(int users)
{
	return names_dump(users ? &names_users : &names_convs, 0);
}

/* Is the list loaded (0), loading (1), or did loading fail (-1)? */
int
names_list_state(int users, const char **error)
{
	struct names_list *l = users ? &names_users : &names_convs;

	*error = l->error;
	if (l->state == NAMES_LOADED)
		return 0;
	if (l->state == NAMES_LOADING)
		return 1;
	if (l->error != NULL && util_now_ms() - l->failed_at < NAMES_RETRY_MISS)
		return -1;
	names_load(l);
	return 1;
}

/* ---- RTM events that change names ---------------------------------------- */

static void
names_event_conv(struct json_object *o, const char *type)
{
	struct json_object *ch;
	struct names_conv *c;
	const char *id;

	if (names_convs.by_id == NULL)
		return;
	if (json_object_object_get_ex(o, "channel", &ch) &&
	    json_object_is_type(ch, json_type_object)) {
		/* channel_created, channel_rename, group_rename, im_created */
		if (strcmp(type, "im_created") == 0) {
			json_object_object_add(
			    ch, "is_im", json_object_new_boolean(1));
			if (protocol_json_str(ch, "user") == NULL &&
			    protocol_json_str(o, "user") != NULL)
				json_object_object_add(ch, "user",
				    json_object_new_string(
				        protocol_json_str(o, "user")));
		} else if (strncmp(type, "group_", 6) == 0)
			json_object_object_add(
			    ch, "is_private", json_object_new_boolean(1));
		if ((id = protocol_json_str(ch, "id")) != NULL &&
		    (c = map_get(names_convs.by_id, id)) != NULL &&
		    protocol_json_str(ch, "name") == NULL && c->name != NULL)
			json_object_object_add(
			    ch, "name", json_object_new_string(c->name));
		names_put_conv(names_convs.by_id, ch);
	} else if ((id = protocol_json_str(o, "channel")) != NULL) {
		/* channel_archive, group_unarchive, …: the id only */
		if ((c = map_get(names_convs.by_id, id)) != NULL) {
			if (strstr(type, "unarchive") != NULL)
				c->archived = 0;
			else if (strstr(type, "archive") != NULL)
				c->archived = 1;
		}
	}
	names_reindex(&names_convs);
}

/* An event's bytes (not NUL-terminated) as an object. */
static struct json_object *
names_parse(const char *data, size_t len)
{
	struct json_tokener *tok;
	struct json_object *o;

	if ((tok = json_tokener_new()) == NULL)
		fatalx("json_tokener_new");
	o = json_tokener_parse_ex(tok, data, (int)len);
	json_tokener_free(tok);
	return o;
}

/*
 * The hub's consumer (names_init() registers it): an event that changes
 * names (the upstream thread only checked it; its bytes are parsed here).
 * Every event comes by here, so unknown types are ignored cheaply.
 */
static void
names_event(const struct hub_event *e)
{
	const char *type = e->type;
	static const char *conv_types[] = { "channel_created", "channel_rename",
		"channel_deleted", "channel_archive", "channel_unarchive",
		"group_joined", "group_rename", "group_deleted",
		"group_archive", "group_unarchive", "im_created" };
	struct json_object *o, *user;
	struct names_conv *c;
	const char *id;
	size_t i;
	int conv = 0;

	/* Leave the uninteresting ones fast. */
	if (strchr("cgitu", type[0]) == NULL || type[0] == '\0')
		return;
	for (i = 0; i < nitems(conv_types); i++) {
		if (strcmp(type, conv_types[i]) == 0)
			conv = 1;
	}
	if (!conv && strcmp(type, "team_join") != 0 &&
	    strcmp(type, "user_change") != 0)
		return;
	if ((o = names_parse(e->line, e->len)) == NULL)
		return;
	if (conv &&
	    (strcmp(type, "channel_deleted") == 0 ||
	        strcmp(type, "group_deleted") == 0)) {
		if (names_convs.by_id != NULL &&
		    (id = protocol_json_str(o, "channel")) != NULL &&
		    (c = map_del(names_convs.by_id, id)) != NULL) {
			names_conv_free(c);
			names_reindex(&names_convs);
		}
	} else if (conv)
		names_event_conv(o, type);
	else if (names_users.by_id != NULL &&
	    json_object_object_get_ex(o, "user", &user) &&
	    json_object_is_type(user, json_type_object)) {
		names_put_user(names_users.by_id, user);
		names_reindex(&names_users);
	}
	json_object_put(o);
	names_dirty = 1;
	names_save_later();
}

/* ---- names.json ------------------------------------------------------- */

static char *
names_path(void)
{
	char *path;

	if (slackd_conf->state_dir == NULL)
		return NULL;
	xasprintf(&path, "%s/%s", slackd_conf->state_dir, NAMES_FILE);
	return path;
}

/*
 * Write len bytes of s to a new file at path and sync them.  Returns 0, or
 * -1 with errno set, the descriptor closed and the file removed.
 */
static int
names_write(const char *path, const char *s, size_t len)
{
	ssize_t n;
	int fd, saved;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	if ((n = write(fd, s, len)) != (ssize_t)len || fsync(fd) == -1) {
		saved = n >= 0 && n != (ssize_t)len ? ENOSPC : errno;
		close(fd);
		goto fail;
	}
	if (close(fd) == 0)
		return 0;
	saved = errno;
fail:
	unlink(path);
	errno = saved;
	return -1;
}

/* Write names.json (atomically: a temporary file, then rename). */
static void
names_save(void)
{
	struct json_object *o;
	char *path, *tmp;
	const char *s;
	size_t len;

	names_dirty = 0;
	if ((path = names_path()) == NULL || names_team == NULL) {
		free(path);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(
	    o, "version", json_object_new_int(NAMES_FILE_VERSION));
	json_object_object_add(o, "team", json_object_new_string(names_team));
	json_object_object_add(o, "saved", json_object_new_double(util_wall()));
	if (names_convs.by_id != NULL) {
		json_object_object_add(
		    o, "channels", names_dump(&names_convs, 1));
		json_object_object_add(o, "channels_loaded",
		    json_object_new_double(names_convs.loaded_wall));
	}
	if (names_users.by_id != NULL) {
		json_object_object_add(o, "users", names_dump(&names_users, 1));
		json_object_object_add(o, "users_loaded",
		    json_object_new_double(names_users.loaded_wall));
	}
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	xasprintf(&tmp, "%s.tmp", path);
	if (names_write(tmp, s, len) == -1)
		log_warn("names: cannot save %s", path);
	else if (rename(tmp, path) == -1) {
		log_warn("names: cannot save %s", path);
		unlink(tmp);
	} else
		log_debug("names: saved %s", path);
	json_object_put(o);
	free(tmp);
	free(path);
}

/* Save now rather than later (a test hook). */
void
names_save_now(void)
{
	names_save();
}

static void
names_save_cb(evutil_socket_t fd, short events, void *arg)
{
	if (names_dirty)
		names_save();
}

static void
names_save_later(void)
{
	struct timeval tv = { NAMES_SAVE_DELAY, 0 };

	if (slackd_conf->state_dir == NULL || names_save_ev == NULL ||
	    evtimer_pending(names_save_ev, NULL))
		return;
	evtimer_add(names_save_ev, &tv);
}

/*
 * When was this list last loaded from Slack?  Files from before the
 * per-list times only have "saved", which is no older than that.
 */
static double
names_loaded_wall(struct json_object *o, const char *key, double saved)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, key, &v) &&
	    (json_object_is_type(v, json_type_double) ||
	        json_object_is_type(v, json_type_int)))
		return json_object_get_double(v);
	return saved;
}

static void
names_restore_list(struct names_list *l, struct json_object *a, double when)
{
	size_t i, n;
	double age = util_wall() - when;

	if (a == NULL || !json_object_is_type(a, json_type_array))
		return;
	l->next_by_id = map_new();
	n = json_object_array_length(a);
	for (i = 0; i < n; i++) {
		if (l == &names_convs)
			names_put_conv(
			    l->next_by_id, json_object_array_get_idx(a, i));
		else
			names_put_user(
			    l->next_by_id, json_object_array_get_idx(a, i));
	}
	names_replace(l, l->next_by_id);
	l->next_by_id = NULL;
	l->state = NAMES_LOADED;
	l->from_disk = 1;
	if (age < 0)
		age = 0;
	l->loaded_wall = when;
	l->loaded_at = util_now_ms() - (int64_t)(age * 1000);
	log_info("names: %zu %s from the state directory (%.0f s old)",
	    map_count(l->by_id), l->what, age);
}

/* At start: read names.json, if there is one. */
void
names_init(void)
{
	struct json_object *o = NULL, *v, *saved;
	char *path, *buf = NULL;
	struct stat sb;
	ssize_t n;
	int fd = -1;
	double when;

	names_save_ev = evtimer_new(slackd_base, names_save_cb, NULL);
	hub_consume(names_event);
	if ((path = names_path()) == NULL)
		return;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno != ENOENT)
			log_warn("names: %s", path);
		goto out;
	}
	if (fstat(fd, &sb) == -1 || sb.st_size > 256 * 1048576)
		goto out;
	buf = xmalloc((size_t)sb.st_size + 1);
	if ((n = read(fd, buf, (size_t)sb.st_size)) != sb.st_size)
		goto out;
	buf[n] = '\0';
	if ((o = json_tokener_parse(buf)) == NULL ||
	    !json_object_object_get_ex(o, "version", &v) ||
	    json_object_get_int(v) != NAMES_FILE_VERSION ||
	    protocol_json_str(o, "team") == NULL ||
	    !json_object_object_get_ex(o, "saved", &saved)) {
		log_warnx(
		    "names: ignoring %s: not a names cache this slackd wrote",
		    path);
		goto out;
	}
	when = json_object_get_double(saved);
	names_team = xstrdup(protocol_json_str(o, "team"));
	if (json_object_object_get_ex(o, "channels", &v))
		names_restore_list(&names_convs, v,
		    names_loaded_wall(o, "channels_loaded", when));
	if (json_object_object_get_ex(o, "users", &v))
		names_restore_list(&names_users, v,
		    names_loaded_wall(o, "users_loaded", when));
out:
	json_object_put(o);
	if (fd != -1)
		close(fd);
	free(buf);
	free(path);
}

static void
names_clear(struct names_list *l)
{
	map_free(
	    l->by_id, l == &names_convs ? names_conv_free : names_user_free);
	map_free(l->by_name, NULL);
	l->by_id = l->by_name = NULL;
	l->state = NAMES_EMPTY;
	l->from_disk = 0;
}

/* Connected to team id: a cache of another team is no use. */
void
names_team_is(const char *team)
{
	if (names_team != NULL && strcmp(names_team, team) == 0)
		return;
	if (names_team != NULL) {
		log_info(
		    "names: the cache was for team %s, this is %s; dropping it",
		    names_team, team);
		if (names_convs.state != NAMES_LOADING)
			names_clear(&names_convs);
		if (names_users.state != NAMES_LOADING)
			names_clear(&names_users);
		map_free(names_im_by_user, free);
		names_im_by_user = NULL;
	}
	free(names_team);
	names_team = xstrdup(team);
}

/* Lookups still waiting fail (shutdown); the cache is saved if changed. */
void
names_shutdown(void)
{
	struct names_wait *w;

	hub_unconsume(names_event);
	while ((w = TAILQ_FIRST(&names_waiting)) != NULL) {
		if (w->call != 0)
			api_forget(w->call);
		w->call = 0;
		names_done(
		    w, NULL, PROTOCOL_E_SHUTTING_DOWN, "slackd is stopping");
	}
	if (names_convs.call != 0)
		api_forget(names_convs.call);
	if (names_users.call != 0)
		api_forget(names_users.call);
	map_free(names_convs.next_by_id, names_conv_free);
	map_free(names_users.next_by_id, names_user_free);
	names_convs.next_by_id = names_users.next_by_id = NULL;
	if (names_dirty)
		names_save();
	if (names_save_ev != NULL) {
		event_free(names_save_ev);
		names_save_ev = NULL;
	}
	names_clear(&names_convs);
	names_clear(&names_users);
	map_free(names_im_by_user, free);
	names_im_by_user = NULL;
	free(names_convs.cursor);
	free(names_users.cursor);
	free(names_convs.error);
	free(names_users.error);
	names_convs.cursor = names_users.cursor = NULL;
	names_convs.error = names_users.error = NULL;
	free(names_team);
	names_team = NULL;
}
