/*
 * slackd --doctor: the online self-check.  Before the service starts, it
 * tells a person what will happen: which token source wins, what Slack
 * says of the token (auth.test), whether RTM accepts it (rtm.connect,
 * whose WebSocket URL is never opened) -- or, with an app-level token and
 * upstream not rtm, whether Socket Mode accepts that one
 * (apps.connections.open, likewise) --, whether the granted scopes cover
 * names, DMs and posting, and what the socket and the state directory
 * will be like.
 *
 * One line per check on standard output, "ok", "warning" or "FAILED" with
 * what to do, then a summary.  It runs on the main thread with a
 * libwebsockets context of its own (TLS settings as upstream.c's), one
 * Web API call at a time, served until that call is over; no thread, no
 * libevent.  The token is never printed: every line is scrubbed of it.
 *
 * Exit status: 0 when everything slackd needs works (warnings allowed),
 * 78 when a check found a problem with the token or the configuration,
 * else 69 when Slack could not be reached.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libwebsockets.h>

#include "slackd.h"
#include "upstream.h"

#ifndef SLACKD_CONF
#define SLACKD_CONF "/etc/slackd/slackd.conf"
#endif

#define DOCTOR_ENV  "SLACK_API_TOKEN"
#define DOCTOR_CRED "slack-token"

enum doctor_level {
	DOCTOR_OK,
	DOCTOR_WARN,
	DOCTOR_FAIL,        /* token or configuration: exit 78 */
	DOCTOR_UNAVAILABLE, /* Slack not reached: exit 69 */
};

struct doctor {
	const struct config *conf;
	struct webapi_url api;
	struct upstream_params *p; /* for webcall.c: the token, timeouts */
	struct webcall_env env;
	struct lws_context *ctx;
	int done;
	u_int warnings;
	u_int failed;      /* token or configuration problems */
	u_int unavailable; /* Slack not reached */
	int bot;           /* auth.test gave a bot_id */
	char *scopes;      /* X-OAuth-Scopes of auth.test */
};

/*
 * What slackd calls Slack for, and the scopes that takes.  A scope may
 * also be granted by a broader one: the classic bot scope "bot" covers
 * all of them, and the older chat:write:bot and chat:write:user count as
 * chat:write.
 */
struct doctor_need {
	const char *what; /* "names", "DMs", "posting" */
	const char *scope;
	const char *also; /* an older name of the same grant, or NULL */
};
/* clang-format off */
static const struct doctor_need doctor_needs[] = {
	{ "names",	"channels:read",	NULL },
	{ "names",	"groups:read",		NULL },
	{ "names",	"im:read",		NULL },
	{ "names",	"mpim:read",		NULL },
	{ "names",	"users:read",		NULL },
	{ "DMs",	"im:write",		NULL },
	{ "posting",	"chat:write",		"chat:write:bot" },
	{ "posting",	"chat:write",		"chat:write:user" },
};
static const char *const doctor_uses[] = { "names", "DMs", "posting" };
static const char *const doctor_use_how[] = {
	"channel and user names (#name, @user, slackd.names)",
	"sending to @user (conversations.open)",
	"slackd.post (slackctl send --blocks, --attachments, --unfurl)",
};
/* clang-format on */

/*
 * What Slack's errors mean for the person starting slackd.  Those not
 * listed are shown as Slack gives them.
 */
struct doctor_why {
	const char *error;
	const char *meaning;
};
/* clang-format off */
static const struct doctor_why doctor_whys[] = {
	{ "invalid_auth", "Slack does not know this token: check that the token source holds the whole token, as the app's OAuth & Permissions page shows it" },
	{ "not_authed", "no token reached Slack" },
	{ "account_inactive", "the token's user or bot was deactivated: reinstall the app or use another token" },
	{ "token_revoked", "the token was revoked: reinstall the app and use the new token" },
	{ "token_expired", "the token expired (token rotation is on): slackd cannot refresh tokens; turn rotation off and reinstall the app" },
	{ "not_allowed_token_type", "this token belongs to a Slack app created after classic apps ended on 2024-06-04, or is not a bot or user token; RTM needs the bot token (xoxb-) of a classic app: use one if the workspace has one, or run Socket Mode, which works with new apps: set app_token_file to the app's app-level token (xapp-) (see slackd(8), SOCKET MODE)" },
	{ "legacy_custom_bots_deprecated", "this is the token of a legacy custom bot integration, and those stopped working on 2025-03-31: use the bot token (xoxb-) of a classic app instead, or a new Slack app through Socket Mode (app_token_file; see slackd(8), SOCKET MODE)" },
	{ "missing_scope", "the token lacks the scope this call needs: RTM needs a classic app's bot token with the \"bot\" scope" },
	{ "team_disabled", "the workspace was disabled" },
	{ "ratelimited", "Slack asks to slow down: try again in a minute" },
};
/* clang-format on */

static void doctor_line(struct doctor *, enum doctor_level, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* Print one check's line, scrubbed of the token; count it. */
static void
doctor_line(struct doctor *d, enum doctor_level level, const char *fmt, ...)
{
	static const char *const tags[] = { "ok", "warning", "FAILED",
		"FAILED" };
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	log_scrub(line, sizeof line);
	printf("%-7s %s\n", tags[level], line);
	fflush(stdout);
	if (level == DOCTOR_WARN)
		d->warnings++;
	else if (level == DOCTOR_FAIL)
		d->failed++;
	else if (level == DOCTOR_UNAVAILABLE)
		d->unavailable++;
}

static const char *
doctor_meaning(const char *error)
{
	size_t i;

	for (i = 0; i < nitems(doctor_whys); i++) {
		if (strcmp(doctor_whys[i].error, error) == 0)
			return doctor_whys[i].meaning;
	}
	return NULL;
}

/* ---- the token ---------------------------------------------------------- */

/* The credential file systemd gave, or NULL. */
static char *
doctor_credential(void)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char *path;

	if (dir == NULL || *dir == '\0')
		return NULL;
	xasprintf(&path, "%s/%s", dir, DOCTOR_CRED);
	if (access(path, F_OK) == 0)
		return path;
	free(path);
	return NULL;
}

/*
 * Which source wins (token.c decides: the first that exists), and which
 * are there but unused.  Returns the token or NULL.
 */
static char *
doctor_token(struct doctor *d)
{
	const char *env = getenv(DOCTOR_ENV), *source;
	char *cred = doctor_credential(), *token, *err = NULL, unused[256];
	int has_env = env != NULL && *env != '\0';

	unused[0] = '\0';
	if (cred != NULL && d->conf->token_file != NULL)
		snprintf(unused, sizeof unused, "token_file %s",
		    d->conf->token_file);
	if (has_env && (cred != NULL || d->conf->token_file != NULL))
		snprintf(unused + strlen(unused),
		    sizeof unused - strlen(unused), "%s%s",
		    *unused != '\0' ? " and " : "", DOCTOR_ENV);
	token = token_load(d->conf, &source, &err);
	if (token == NULL) {
		doctor_line(d, DOCTOR_FAIL, "token: %s%s%s%s", err,
		    *unused != '\0' ? " (" : "", unused,
		    *unused != '\0'
		        ? " also set, not used: the first source that exists wins)"
		        : "");
		free(err);
		free(cred);
		return NULL;
	}
	log_set_secret(token);
	if (strcmp(source, "token_file") == 0)
		doctor_line(d, DOCTOR_OK, "token: from token_file %s%s%s%s",
		    d->conf->token_file, *unused != '\0' ? " (" : "", unused,
		    *unused != '\0' ? " also set, not used)" : "");
	else if (cred != NULL)
		doctor_line(d, DOCTOR_OK, "token: from %s (%s)%s%s%s", source,
		    cred, *unused != '\0' ? " (" : "", unused,
		    *unused != '\0' ? " also set, not used)" : "");
	else
		doctor_line(d, DOCTOR_OK, "token: from %s", source);
	free(cred);
	return token;
}

/* What the token's prefix says it is. */
static void
doctor_kind(struct doctor *d, const char *token)
{
	/* clang-format off */
	static const struct {
		const char *prefix;
		enum doctor_level level;
		const char *kind;
	} kinds[] = {
		{ "xoxb-", DOCTOR_OK, "a bot token (xoxb-)" },
		{ "xoxp-", DOCTOR_OK, "a user token (xoxp-): slackd acts as that user" },
		{ "xapp-", DOCTOR_FAIL, "an app-level token (xapp-), which is for Socket Mode: it belongs in app_token_file (or the slack-app-token credential); the token here must be the app's bot token (xoxb-)" },
		{ "xoxe.", DOCTOR_WARN, "a rotating token (xoxe.): it expires within 12 hours and slackd cannot refresh it; turn token rotation off and reinstall the app" },
		{ "xoxe-", DOCTOR_FAIL, "a refresh token (xoxe-), not an access token: use the app's bot token (xoxb-)" },
		{ "xoxa-", DOCTOR_WARN, "a workspace app token (xoxa-), a kind Slack retired" },
	};
	/* clang-format on */
	size_t i;

	for (i = 0; i < nitems(kinds); i++) {
		if (strncmp(token, kinds[i].prefix, strlen(kinds[i].prefix)) ==
		    0) {
			doctor_line(
			    d, kinds[i].level, "token kind: %s", kinds[i].kind);
			return;
		}
	}
	doctor_line(d, DOCTOR_WARN,
	    "token kind: unknown (it does not start with xoxb- or xoxp-); Slack's answer below says whether it works");
}

/* ---- Web API calls ------------------------------------------------------ */

static void
doctor_called(struct webcall *w, void *arg)
{
	struct doctor *d = arg;

	d->done = 1;
}

/* Make one call and serve the context until it is over. */
static struct webcall *
doctor_call(struct doctor *d, const char *method)
{
	struct webcall *w;

	w = webcall_new(method, NULL, NULL, 0, doctor_called, d);
	d->done = 0;
	webcall_start(&d->env, w); /* calls back on failure */
	while (!d->done) {
		if (lws_service(d->ctx, 0) < 0)
			break;
	}
	return w;
}

/*
 * Slack's JSON answer to w, or NULL with the reason in why (then Slack
 * was not reached, or did not answer properly: 69).
 */
static struct json_object *
doctor_answer(struct webcall *w, char *why, size_t size)
{
	struct json_object *o, *ok;
	const char *body;
	size_t len;

	if (webcall_error(w) != NULL) {
		snprintf(why, size, "%s", webcall_error(w));
		return NULL;
	}
	body = webcall_body(w, &len);
	o = json_tokener_parse(body);
	if (o == NULL || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "ok", &ok)) {
		json_object_put(o);
		if (webcall_status(w) == 429)
			snprintf(why, size,
			    "rate limited (HTTP 429): try again in a minute");
		else
			snprintf(why, size,
			    "HTTP %d without a Slack answer%s%.80s%s",
			    webcall_status(w), len > 0 ? " (" : "", body,
			    len > 0 ? ")" : "");
		return NULL;
	}
	return o;
}

static const char *
doctor_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/*
 * A call Slack refused: a token problem (78), unless Slack is only busy
 * (ratelimited, fatal_error, …: 69).
 */
static void
doctor_refused(
    struct doctor *d, const char *method, const char *error, int http)
{
	const char *meaning = doctor_meaning(error);
	enum doctor_level level = DOCTOR_FAIL;

	if (strcmp(error, "ratelimited") == 0 ||
	    strcmp(error, "fatal_error") == 0 ||
	    strcmp(error, "internal_error") == 0 || http >= 500)
		level = DOCTOR_UNAVAILABLE;
	if (meaning != NULL)
		doctor_line(d, level, "%s: Slack says \"%s\": %s", method,
		    error, meaning);
	else
		doctor_line(
		    d, level, "%s: Slack says \"%.100s\"", method, error);
}

/* auth.test: who the token is.  Returns 1 if Slack accepted it. */
static int
doctor_auth(struct doctor *d)
{
	struct webcall *w;
	struct json_object *o, *ok;
	const char *error, *bot;
	char why[300];
	int accepted = 0;

	w = doctor_call(d, "auth.test");
	if ((o = doctor_answer(w, why, sizeof why)) == NULL) {
		doctor_line(d, DOCTOR_UNAVAILABLE,
		    "auth.test: cannot reach Slack at %s: %s; check the network (DNS, firewall), api_url and ca_file",
		    d->conf->api_url, why);
		webcall_free(w);
		return -1;
	}
	json_object_object_get_ex(o, "ok", &ok);
	if (!json_object_get_boolean(ok)) {
		error = doctor_str(o, "error");
		doctor_refused(d, "auth.test", error != NULL ? error : "?",
		    webcall_status(w));
	} else {
		accepted = 1;
		bot = doctor_str(o, "bot_id");
		d->bot = bot != NULL && *bot != '\0';
		doctor_line(d, DOCTOR_OK,
		    "auth.test: team \"%s\" (%s), user \"%s\" (%s), %s token%s%s",
		    doctor_str(o, "team") ? doctor_str(o, "team") : "?",
		    doctor_str(o, "team_id") ? doctor_str(o, "team_id") : "?",
		    doctor_str(o, "user") ? doctor_str(o, "user") : "?",
		    doctor_str(o, "user_id") ? doctor_str(o, "user_id") : "?",
		    d->bot ? "a bot" : "a user", d->bot ? ", bot " : "",
		    d->bot ? bot : "");
		if (webcall_scopes(w) != NULL)
			d->scopes = xstrdup(webcall_scopes(w));
	}
	json_object_put(o);
	webcall_free(w);
	return accepted;
}

/* rtm.connect: would RTM take this token?  (The URL is not opened.) */
static void
doctor_rtm(struct doctor *d)
{
	struct webcall *w;
	struct webapi_connect c;
	char *err = NULL;
	const char *body;
	size_t len;

	w = doctor_call(d, "rtm.connect");
	body = webcall_body(w, &len);
	if (webcall_error(w) != NULL)
		doctor_line(d, DOCTOR_UNAVAILABLE,
		    "rtm.connect: cannot reach Slack: %s", webcall_error(w));
	else if (webapi_parse_connect(body, len, &c, &err) != 0) {
		doctor_line(d, DOCTOR_UNAVAILABLE,
		    "rtm.connect: HTTP %d without a usable answer: %s",
		    webcall_status(w), err);
		free(err);
	} else {
		if (c.ok)
			doctor_line(d, DOCTOR_OK,
			    "rtm.connect: RTM accepts this token (Slack gave a WebSocket URL; not opened)");
		else
			doctor_refused(
			    d, "rtm.connect", c.error, webcall_status(w));
		webapi_connect_free(&c);
	}
	webcall_free(w);
}

/* apps.connections.open: would Socket Mode take the app-level token? */
static void
doctor_socket_mode(struct doctor *d)
{
	struct webcall *w;
	struct webapi_connect c;
	char *err = NULL;
	const char *body;
	size_t len;

	w = webcall_new("apps.connections.open",
	    "application/x-www-form-urlencoded", "", 0, doctor_called, d);
	webcall_use_app_token(w);
	d->done = 0;
	webcall_start(&d->env, w); /* calls back on failure */
	while (!d->done) {
		if (lws_service(d->ctx, 0) < 0)
			break;
	}
	body = webcall_body(w, &len);
	if (webcall_error(w) != NULL)
		doctor_line(d, DOCTOR_UNAVAILABLE,
		    "apps.connections.open: cannot reach Slack: %s",
		    webcall_error(w));
	else if (webapi_parse_connect(body, len, &c, &err) != 0) {
		doctor_line(d, DOCTOR_UNAVAILABLE,
		    "apps.connections.open: HTTP %d without a usable answer: %s",
		    webcall_status(w), err);
		free(err);
	} else {
		if (c.ok)
			doctor_line(d, DOCTOR_OK,
			    "apps.connections.open: Socket Mode accepts the app-level token (Slack gave a WebSocket URL; not opened)");
		else
			doctor_refused(d, "apps.connections.open", c.error,
			    webcall_status(w));
		webapi_connect_free(&c);
	}
	webcall_free(w);
}

/* ---- scopes ------------------------------------------------------------- */

static int
doctor_has_scope(const char *scopes, const char *scope)
{
	const char *p = scopes;
	size_t n = strlen(scope), len;

	while (*p != '\0') {
		p += strspn(p, ", ");
		len = strcspn(p, ", ");
		if (len == n && strncmp(p, scope, n) == 0)
			return 1;
		p += len;
	}
	return 0;
}

/* Does the token have this need's scope?  1 yes, 0 no. */
static int
doctor_granted(const char *scopes, const char *scope)
{
	size_t i;

	if (doctor_has_scope(scopes, scope))
		return 1;
	for (i = 0; i < nitems(doctor_needs); i++) {
		if (strcmp(doctor_needs[i].scope, scope) == 0 &&
		    doctor_needs[i].also != NULL &&
		    doctor_has_scope(scopes, doctor_needs[i].also))
			return 1;
	}
	return 0;
}

/* One line per use (names, DMs, posting): its scopes, or the missing. */
static void
doctor_scopes(struct doctor *d)
{
	char have[256], missing[256];
	const char *how = d->bot ? "Bot Token Scopes" : "User Token Scopes";
	size_t i, u;

	if (d->scopes == NULL) {
		doctor_line(d, DOCTOR_WARN,
		    "scopes: Slack did not say which scopes the token has (no X-OAuth-Scopes header); names, DMs and posting are not checked");
		return;
	}
	if (doctor_has_scope(d->scopes, "bot")) {
		doctor_line(d, DOCTOR_OK,
		    "scopes: \"bot\", a classic app's bot scope: it covers names, DMs and posting");
		return;
	}
	for (u = 0; u < nitems(doctor_uses); u++) {
		have[0] = missing[0] = '\0';
		for (i = 0; i < nitems(doctor_needs); i++) {
			if (strcmp(doctor_needs[i].what, doctor_uses[u]) != 0 ||
			    (i > 0 &&
			        strcmp(doctor_needs[i - 1].scope,
			            doctor_needs[i].scope) == 0))
				continue; /* one line per scope */
			if (doctor_granted(d->scopes, doctor_needs[i].scope))
				snprintf(have + strlen(have),
				    sizeof have - strlen(have), "%s%s",
				    *have != '\0' ? ", " : "",
				    doctor_needs[i].scope);
			else
				snprintf(missing + strlen(missing),
				    sizeof missing - strlen(missing), "%s%s",
				    *missing != '\0' ? ", " : "",
				    doctor_needs[i].scope);
		}
		if (*missing == '\0')
			doctor_line(d, DOCTOR_OK, "scopes for %s: %s",
			    doctor_uses[u], have);
		else
			doctor_line(d, DOCTOR_FAIL,
			    "scopes for %s: missing %s, so %s will not work: add %s under the app's OAuth & Permissions, %s, reinstall the app and use the new token (a classic app keeps RTM only with classic scopes)",
			    doctor_uses[u], missing, doctor_use_how[u],
			    strchr(missing, ',') != NULL ? "them" : "it", how);
	}
}

/* ---- the socket and the state directory ---------------------------------- */

/* Is something listening on path?  1 yes, 0 no (stale), -1 cannot tell. */
static int
doctor_probe(const char *path)
{
	struct sockaddr_un sun;
	int fd, rc, saved;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	rc = rc == 0 ? 1 : errno == ECONNREFUSED ? 0 : -1;
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* Who the socket's mode, socket_group and allow_* let in, as words. */
static void
doctor_who(struct doctor *d, char *buf, size_t size)
{
	const struct config *c = d->conf;
	struct passwd *pw = getpwuid(geteuid());
	struct group *gr;
	char group[128];
	unsigned m = c->socket_mode;

	if (c->socket_gid >= 0 && (gr = getgrgid((gid_t)c->socket_gid)))
		snprintf(group, sizeof group, "group %s", gr->gr_name);
	else if (c->socket_gid >= 0)
		snprintf(group, sizeof group, "group %ld", c->socket_gid);
	else
		snprintf(group, sizeof group,
		    "the primary group of the user slackd runs as");
	if (m & 0002)
		snprintf(buf, size, "mode %04o lets in every local user", m);
	else if (m & 0020)
		snprintf(buf, size,
		    "mode %04o lets in the user slackd runs as (now %s) and %s",
		    m, pw != NULL ? pw->pw_name : "?", group);
	else
		snprintf(buf, size,
		    "mode %04o lets in only the user slackd runs as (now %s) and root",
		    m, pw != NULL ? pw->pw_name : "?");
	if (c->allow_users != NULL || c->allow_groups != NULL)
		snprintf(buf + strlen(buf), size - strlen(buf),
		    "; of those, only root, that user%s%s%s%s may use it (allow_users, allow_groups)",
		    c->allow_users != NULL ? ", users " : "",
		    c->allow_users != NULL ? c->allow_users : "",
		    c->allow_groups != NULL ? ", members of groups " : "",
		    c->allow_groups != NULL ? c->allow_groups : "");
	else
		snprintf(buf + strlen(buf), size - strlen(buf),
		    " (no allow_users or allow_groups narrows that)");
}

static void
doctor_socket(struct doctor *d)
{
	const char *path = d->conf->socket_path;
	struct sockaddr_un sun;
	struct stat sb;
	char who[512], *copy, *dir;

	if (path == NULL) {
		doctor_line(d, DOCTOR_WARN,
		    "socket: none configured: slackd needs socket activation (slackd.socket), \"socket\" in the configuration or -s");
		return;
	}
	if (strlen(path) >= sizeof sun.sun_path) {
		doctor_line(d, DOCTOR_FAIL,
		    "socket: %s is longer than %zu bytes: choose a shorter \"socket\"",
		    path, sizeof sun.sun_path - 1);
		return;
	}
	doctor_who(d, who, sizeof who);
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			doctor_line(d, DOCTOR_FAIL,
			    "socket: %s exists and is not a socket; slackd will not replace it: remove it or choose another \"socket\"",
			    path);
			return;
		}
		switch (doctor_probe(path)) {
		case 1:
			doctor_line(d, DOCTOR_WARN,
			    "socket: %s: something already listens on it (a running slackd, or systemd's slackd.socket), so a second slackd on this path would not start; who may connect: %s",
			    path, who);
			return;
		case 0:
			doctor_line(d, DOCTOR_OK,
			    "socket: %s (a stale socket, replaced at start); who may connect: %s",
			    path, who);
			return;
		default:
			doctor_line(d, DOCTOR_WARN,
			    "socket: %s: cannot tell whether it is in use (%s): slackd would refuse to start; who may connect: %s",
			    path, strerror(errno), who);
			return;
		}
	}
	copy = xstrdup(path);
	dir = dirname(copy);
	if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
		doctor_line(
		    d, DOCTOR_FAIL, "socket: %s is not a directory", dir);
	else if (stat(dir, &sb) == 0 && access(dir, W_OK | X_OK) != 0)
		doctor_line(d, DOCTOR_WARN,
		    "socket: %s: you (uid %u) cannot create it in %s; fine only if slackd runs as a user who can; who may connect: %s",
		    path, (unsigned)geteuid(), dir, who);
	else if (stat(dir, &sb) == 0)
		doctor_line(
		    d, DOCTOR_OK, "socket: %s; who may connect: %s", path, who);
	else
		doctor_line(d, DOCTOR_OK,
		    "socket: %s (its directory %s is created at start); who may connect: %s",
		    path, dir, who);
	free(copy);
}

static void
doctor_state_dir(struct doctor *d)
{
	const char *dir = d->conf->state_dir;
	struct stat sb;

	if (dir == NULL)
		doctor_line(d, DOCTOR_OK,
		    "state directory: none (no state_dir, no $STATE_DIRECTORY from systemd): the names cache is loaded from Slack at each start");
	else if (stat(dir, &sb) == -1)
		doctor_line(d, DOCTOR_WARN,
		    "state directory: %s: %s: create it (systemd's StateDirectory= does), or the names cache is not saved",
		    dir, strerror(errno));
	else if (!S_ISDIR(sb.st_mode))
		doctor_line(d, DOCTOR_WARN,
		    "state directory: %s is not a directory: the names cache is not saved",
		    dir);
	else if (access(dir, W_OK | X_OK) != 0)
		doctor_line(d, DOCTOR_WARN,
		    "state directory: %s is not writable by you (uid %u): fine only if slackd runs as a user who may write there",
		    dir, (unsigned)geteuid());
	else
		doctor_line(
		    d, DOCTOR_OK, "state directory: %s (writable)", dir);
}

/* ---- the whole check ---------------------------------------------------- */

static const struct lws_protocols *
doctor_protocols(void)
{
	static struct lws_protocols p[2];

	p[0] = webcall_protocol;
	return p;
}

/* A context like the upstream thread's: same TLS and CA settings. */
static int
doctor_context(struct doctor *d)
{
	struct lws_context_creation_info info;
	char *err = NULL, *path;

	if (webapi_parse_url(d->conf->api_url, 0, &d->api, &err) != 0) {
		doctor_line(d, DOCTOR_FAIL, "api_url: %s", err);
		free(err);
		return -1;
	}
	if (d->api.path[strlen(d->api.path) - 1] != '/') {
		xasprintf(&path, "%s/", d->api.path);
		free(d->api.path);
		d->api.path = path;
	}
	memset(&info, 0, sizeof info);
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	if (d->conf->ca_file != NULL) {
		info.client_ssl_ca_filepath = d->conf->ca_file;
		info.options |= LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
	}
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = doctor_protocols();
	info.max_http_header_data = 16384;
	info.timeout_secs = (unsigned)(d->conf->connect_timeout / 1000 + 5);
	info.connect_timeout_secs =
	    (unsigned)((d->conf->connect_timeout + 999) / 1000);
	if ((d->ctx = lws_create_context(&info)) == NULL) {
		doctor_line(d, DOCTOR_FAIL,
		    "cannot create the libwebsockets context: check ca_file (run with -v for the reason)");
		return -1;
	}
	d->env.ctx = d->ctx;
	d->env.api = &d->api;
	d->env.p = &d->p;
	return 0;
}

/* The online checks: only with a token and a context. */
static void
doctor_slack(struct doctor *d, const char *token, const char *app, int verbose)
{
	/* Never lws INFO or DEBUG: they dump headers. */
	d->p = upstream_params_new(d->conf, token, app,
	    LLL_ERR | LLL_WARN | (verbose >= 2 ? LLL_NOTICE : 0));
	lws_set_log_level(d->p->lws_log_level, lwslog_emit);
	if (doctor_context(d) != 0) {
		upstream_params_free(d->p);
		return;
	}
	if (doctor_auth(d) == 1) {
		if (app != NULL)
			doctor_socket_mode(d);
		else
			doctor_rtm(d);
		doctor_scopes(d);
	}
	lws_context_destroy(d->ctx);
	upstream_params_free(d->p);
}

/*
 * Run every check against conf (read from conffile, NULL for the default)
 * and print the report.  Loads the token itself, to see which sources are
 * there before token_load() removes $SLACK_API_TOKEN.  Returns the exit
 * status.
 */
int
doctor_run(const struct config *conf, const char *conffile, int verbose)
{
	struct doctor d;
	char *token, *app = NULL, *err = NULL;
	const char *source;

	memset(&d, 0, sizeof d);
	d.conf = conf;
	/* Problems are reported in the lines below, not logged as well. */
	log_set_level(LOG_LEVEL_ERR + verbose);
	if (conffile == NULL)
		conffile = SLACKD_CONF;
	printf("slackd %s --doctor: configuration %s%s, api_url %s\n",
	    PACKAGE_VERSION, conffile,
	    access(conffile, F_OK) == 0 ? "" : " (absent: built-in defaults)",
	    conf->api_url);
	if ((token = doctor_token(&d)) != NULL) {
		doctor_kind(&d, token);
		if (strcmp(conf->upstream, "rtm") != 0 &&
		    (app = token_app_load(conf, &source, &err)) != NULL) {
			log_set_secret2(app);
			doctor_line(&d, DOCTOR_OK,
			    "app-level token: from %s, so slackd runs Socket Mode",
			    source);
		} else if (err != NULL) {
			doctor_line(
			    &d, DOCTOR_FAIL, "app-level token: %s", err);
			free(err);
		} else if (strcmp(conf->upstream, "socket") == 0)
			doctor_line(&d, DOCTOR_FAIL,
			    "app-level token: none, and upstream = socket needs one (app_token_file, the credential slack-app-token or SLACK_APP_TOKEN)");
		doctor_slack(&d, token, app, verbose);
	}
	doctor_socket(&d);
	doctor_state_dir(&d);

	if (d.failed == 0 && d.unavailable == 0)
		printf("everything slackd needs works (%u warning%s)\n",
		    d.warnings, d.warnings == 1 ? "" : "s");
	else
		printf("%u check%s FAILED, %u warning%s: slackd would %s\n",
		    d.failed + d.unavailable,
		    d.failed + d.unavailable == 1 ? "" : "s", d.warnings,
		    d.warnings == 1 ? "" : "s",
		    d.failed > 0 ? "not work as configured (exit 78)"
		                 : "keep trying to reach Slack (exit 69)");
	log_set_secret(NULL);
	log_set_secret2(NULL);
	token_secret_free(token);
	token_secret_free(app);
	free(d.scopes);
	webapi_url_free(&d.api);
	if (d.failed > 0)
		return SLACKD_EXIT_CONFIG;
	return d.unavailable > 0 ? SLACKD_EXIT_UNAVAILABLE : SLACKD_EXIT_OK;
}
