/*
 * Pure parsers for what comes back from the Web API and for the URLs the
 * daemon connects to.  No I/O here, so each is unit tested and fuzzed.
 */
#include "config.h"

#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "slackd.h"

#define WEBAPI_MAX_DEPTH 32

/*
 * Loopback hosts, written literally: "localhost", 127.0.0.0/8, ::1.  Plain
 * http:// and ws:// are accepted only for these (tests, local proxies).
 */
int
webapi_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

void
webapi_url_free(struct webapi_url *u)
{
	free(u->host);
	free(u->path);
	memset(u, 0, sizeof *u);
}

static int
webapi_url_fail(
    struct webapi_url *u, char **err, const char *why, const char *url)
{
	webapi_url_free(u);
	xasprintf(err, "%s in URL \"%.200s\"", why, url);
	return -1;
}

/*
 * Split an http(s) URL (websocket 0) or ws(s) URL (websocket 1) into
 * tls/host/port/path.  Returns 0, or -1 with *err set.
 */
int
webapi_parse_url(
    const char *url, int websocket, struct webapi_url *u, char **err)
{
	const char *p = url, *h, *he, *c, *start;
	struct in6_addr a6;
	const char *secure = websocket ? "wss://" : "https://";
	const char *plain = websocket ? "ws://" : "http://";
	char *end;
	long port;

	memset(u, 0, sizeof *u);
	if (strncasecmp(p, secure, strlen(secure)) == 0) {
		u->tls = 1;
		p += strlen(secure);
	} else if (strncasecmp(p, plain, strlen(plain)) == 0)
		p += strlen(plain);
	else {
		xasprintf(
		    err, "URL \"%.200s\" does not start with %s", url, secure);
		return -1;
	}
	start = p;
	if (*p == '[') {
		h = p + 1;
		if ((he = strchr(h, ']')) == NULL)
			return webapi_url_fail(u, err, "unterminated [", url);
		c = he + 1;
	} else {
		h = p;
		he = h + strcspn(h, ":/?#@");
		c = he;
	}
	if (*c == '@' || memchr(h, '@', (size_t)(he - h)) != NULL)
		return webapi_url_fail(u, err, "user name not allowed", url);
	if (he == h)
		return webapi_url_fail(u, err, "no host", url);
	for (p = h; p < he; p++) {
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' &&
		    *p != ':' && *p != '_')
			return webapi_url_fail(u, err, "bad host", url);
	}
	u->host = xstrndup(h, (size_t)(he - h));
	p = start;
	u->port = u->tls ? 443 : 80;
	if (*p == '[' && inet_pton(AF_INET6, u->host, &a6) != 1)
		return webapi_url_fail(u, err, "bad IPv6 address", url);
	if (*c == ':') {
		if (!isdigit((unsigned char)c[1]))
			return webapi_url_fail(u, err, "bad port", url);
		errno = 0;
		port = strtol(c + 1, &end, 10);
		if (end == c + 1 || errno != 0 || port < 1 || port > 65535 ||
		    (*end != '\0' && *end != '/' && *end != '?'))
			return webapi_url_fail(u, err, "bad port", url);
		u->port = (int)port;
		c = end;
	}
	if (*c == '\0')
		u->path = xstrdup("/");
	else if (*c == '/')
		u->path = xstrdup(c);
	else if (*c == '?')
		xasprintf(&u->path, "/%s", c);
	else
		return webapi_url_fail(u, err, "bad path", url);
	for (p = u->path; *p != '\0'; p++) {
		if (*p <= ' ' || *p == 0x7f || *p == '#')
			return webapi_url_fail(u, err, "bad character", url);
	}
	if (!u->tls && !webapi_is_loopback(u->host))
		return webapi_url_fail(u, err,
		    websocket ? "ws:// is only allowed to a loopback host"
		              : "http:// is only allowed to a loopback host",
		    url);
	return 0;
}

void
webapi_connect_free(struct webapi_connect *c)
{
	free(c->error);
	free(c->url);
	free(c->team);
	free(c->self);
	free(c->team_name);
	free(c->self_name);
	memset(c, 0, sizeof *c);
}

static char *
webapi_compact(struct json_object *o)
{
	return xstrdup(json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static char *
webapi_member_string(struct json_object *o, const char *key)
{
	const char *s = protocol_json_str(o, key);

	return s != NULL ? xstrdup(s) : NULL;
}

/* Printable ASCII from the start of a body, for an error message. */
static void
webapi_excerpt(const char *body, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 1 < outlen; i++) {
		if (body[i] >= ' ' && body[i] < 0x7f)
			out[o++] = body[i];
		else if (o > 0 && out[o - 1] != ' ')
			out[o++] = ' ';
	}
	out[o] = '\0';
}

/*
 * Parse the body of rtm.connect.  Returns 0 with c filled (c->ok says
 * whether Slack accepted), or -1 with *err when the body is not the JSON
 * object Slack sends.
 */
int
webapi_parse_connect(
    const char *body, size_t len, struct webapi_connect *c, char **err)
{
	struct json_tokener *tok;
	struct json_object *o, *v, *team = NULL, *self = NULL;
	char excerpt[81];
	size_t end;

	memset(c, 0, sizeof *c);
	tok = json_tokener_new_ex(WEBAPI_MAX_DEPTH);
	if (tok == NULL)
		fatalx("json_tokener_new_ex");
	json_tokener_set_flags(
	    tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = len > INT32_MAX ? NULL : json_tokener_parse_ex(tok, body, (int)len);
	end = o != NULL ? json_tokener_get_parse_end(tok) : 0;
	while (end < len && isspace((unsigned char)body[end]))
		end++;
	if (o == NULL || end != len ||
	    !json_object_is_type(o, json_type_object)) {
		json_tokener_free(tok);
		json_object_put(o);
		webapi_excerpt(body, len, excerpt, sizeof excerpt);
		xasprintf(err, "answer is not a JSON object: \"%s\"", excerpt);
		return -1;
	}
	json_tokener_free(tok);
	if (!json_object_object_get_ex(o, "ok", &v) ||
	    !json_object_is_type(v, json_type_boolean)) {
		json_object_put(o);
		xasprintf(err, "answer has no boolean \"ok\"");
		return -1;
	}
	c->ok = json_object_get_boolean(v);
	if (!c->ok) {
		if ((c->error = webapi_member_string(o, "error")) == NULL)
			c->error = xstrdup("unknown_error");
		json_object_put(o);
		return 0;
	}
	if ((c->url = webapi_member_string(o, "url")) == NULL) {
		json_object_put(o);
		xasprintf(err, "answer has no \"url\"");
		return -1;
	}
	if (json_object_object_get_ex(o, "team", &team) &&
	    json_object_is_type(team, json_type_object))
		c->team = webapi_compact(team);
	else {
		team = NULL;
		c->team = xstrdup("{}");
	}
	if (json_object_object_get_ex(o, "self", &self) &&
	    json_object_is_type(self, json_type_object))
		c->self = webapi_compact(self);
	else {
		self = NULL;
		c->self = xstrdup("{}");
	}
	if ((c->team_name = webapi_member_string(team, "name")) == NULL &&
	    (c->team_name = webapi_member_string(team, "id")) == NULL)
		c->team_name = xstrdup("(unknown team)");
	if ((c->self_name = webapi_member_string(self, "name")) == NULL &&
	    (c->self_name = webapi_member_string(self, "id")) == NULL)
		c->self_name = xstrdup("(unknown user)");
	json_object_put(o);
	return 0;
}

/*
 * Errors of rtm.connect that no amount of retrying fixes (the token is
 * wrong, revoked, of the wrong kind, or its user or team is gone), each
 * with what it means for the person who runs slackd.
 */
static const struct webapi_error {
	const char *name;
	const char *advice;
} webapi_permanent[] = {
	{ "invalid_auth", "the token is not valid: check the token" },
	{ "not_authed", "no token reached Slack: check the token" },
	{ "account_inactive", "the token's user or bot has been deactivated" },
	{ "token_revoked",
	    "the token has been revoked: install the app again or make a new token" },
	{ "token_expired", "the token has expired: make a new token" },
	{ "not_allowed_token_type",
	    "this token belongs to a Slack app created after classic apps ended on 2024-06-04, and RTM accepts only a classic app's token: such an app works through Socket Mode, so give slackd its app-level token (xapp-..., scope connections:write) with app_token_file or the systemd credential slack-app-token, next to its bot token (conf/slack-app-manifest.json makes a suitable app; see slackd(8), SOCKET MODE). If Socket Mode already runs, the app-level token must be the xapp- one and token_file the xoxb- bot token: check they are not swapped" },
	{ "legacy_custom_bots_deprecated",
	    "legacy custom bots stopped working on 2025-03-31: create a Slack app (conf/slack-app-manifest.json) and run Socket Mode with its app-level token (app_token_file), or use a classic Slack app's bot token (see slackd(8), SOCKET MODE)" },
	{ "link_disabled",
	    "Socket Mode is switched off for this Slack app: turn it on in the app's settings (Socket Mode), or run RTM with a classic app's bot token (upstream = rtm)" },
	{ "team_disabled", "the workspace has been disabled" },
	{ "user_removed_from_team",
	    "the token's user has been removed from the workspace" },
	{ "missing_scope",
	    "the token lacks a scope rtm.connect needs (a classic app's bot token has it)" },
	{ "no_permission",
	    "the workspace does not let this token use rtm.connect" },
	{ "ekm_access_denied",
	    "the workspace's Enterprise Key Management denied access" },
	{ "org_login_required",
	    "the workspace is being migrated to an Enterprise organization: try again once it is done" },
};

static const struct webapi_error *
webapi_error_find(const char *error)
{
	u_int i;

	for (i = 0; i < nitems(webapi_permanent); i++) {
		if (strcmp(error, webapi_permanent[i].name) == 0)
			return &webapi_permanent[i];
	}
	return NULL;
}

int
webapi_permanent_error(const char *error)
{
	return webapi_error_find(error) != NULL;
}

/*
 * What a permanent error means, for a message such as "authentication
 * failed: invalid_auth" (the error is its last word); NULL if none.
 */
const char *
webapi_error_advice(const char *text)
{
	const struct webapi_error *e;
	const char *word;

	if ((e = webapi_error_find(text)) != NULL)
		return e->advice;
	if ((word = strrchr(text, ' ')) != NULL &&
	    (e = webapi_error_find(word + 1)) != NULL)
		return e->advice;
	return NULL;
}

/*
 * Retry-After as delta-seconds, digits with an optional fraction (HTTP
 * dates are not used by Slack).  Clamped to an hour.
 */
int
webapi_retry_after(const char *value, int64_t *ms)
{
	const char *p = value;
	int64_t secs = 0, frac = 0, scale = 1;

	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (secs < 3600)
			secs = secs * 10 + (*p - '0');
	}
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++) {
			if (scale < 1000) {
				frac = frac * 10 + (*p - '0');
				scale *= 10;
			}
		}
	}
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '\0')
		return -1;
	if (secs >= 3600) {
		*ms = 3600 * 1000;
		return 0;
	}
	*ms = secs * 1000 + frac * 1000 / scale;
	return 0;
}

/* Append key=value to a form body, both percent-encoded. */
void
webapi_form_add(char **body, size_t *len, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *parts[2] = { key, value }, *p;
	size_t need = strlen(key) * 3 + strlen(value) * 3 + 3, i;
	char *o;

	*body = xrealloc(*body, *len + need + 1);
	o = *body + *len;
	if (*len > 0)
		*o++ = '&';
	for (i = 0; i < 2; i++) {
		for (p = parts[i]; *p != '\0'; p++) {
			unsigned char ch = (unsigned char)*p;

			if ((ch >= 'a' && ch <= 'z') ||
			    (ch >= 'A' && ch <= 'Z') ||
			    (ch >= '0' && ch <= '9') || ch == '-' ||
			    ch == '_' || ch == '.' || ch == '~')
				*o++ = (char)ch;
			else {
				*o++ = '%';
				*o++ = hex[ch >> 4];
				*o++ = hex[ch & 15];
			}
		}
		if (i == 0)
			*o++ = '=';
	}
	*o = '\0';
	*len = (size_t)(o - *body);
}
