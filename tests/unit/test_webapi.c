/*
 * Unit tests for daemon/webapi.c: URL splitting, loopback detection, the
 * rtm.connect answer, permanent errors and Retry-After, plus a fuzz-style
 * loop over random and mutated inputs.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "slackd.h"
#include "tap.h"

static int
contains(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

/* s with control and non-ASCII bytes escaped, for a one-line TAP name. */
static const char *
printable(const char *s)
{
	static char buf[4][256];
	static int which;
	char *out = buf[which++ % 4];
	size_t o = 0;

	for (; *s != '\0' && o + 5 < sizeof buf[0]; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

struct url_case {
	const char *url;
	int websocket;
	int rc;
	int tls;
	const char *host;
	int port;
	const char *path;
	const char *err; /* substring of the error, for rc -1 */
};

static const struct url_case url_cases[] = {
	{ "https://slack.com/api/", 0, 0, 1, "slack.com", 443, "/api/", NULL },
	{ "https://slack.com", 0, 0, 1, "slack.com", 443, "/", NULL },
	{ "https://slack.com/", 0, 0, 1, "slack.com", 443, "/", NULL },
	{ "HTTPS://Slack.COM/x", 0, 0, 1, "Slack.COM", 443, "/x", NULL },
	{ "https://slack.com:8443/api/", 0, 0, 1, "slack.com", 8443, "/api/",
	    NULL },
	{ "https://h:1/", 0, 0, 1, "h", 1, "/", NULL },
	{ "https://h:65535", 0, 0, 1, "h", 65535, "/", NULL },
	{ "https://h:0/", 0, -1, 0, NULL, 0, NULL, "bad port" },
	{ "https://h:65536/", 0, -1, 0, NULL, 0, NULL, "bad port" },
	{ "https://h:abc/", 0, -1, 0, NULL, 0, NULL, "bad port" },
	{ "https://h:/", 0, -1, 0, NULL, 0, NULL, "bad port" },
	{ "https://h:", 0, -1, 0, NULL, 0, NULL, "bad port" },
	{ "https://h:-1/", 0, -1, 0, NULL, 0, NULL, "bad port" },
	{ "https://h:80x/", 0, -1, 0, NULL, 0, NULL, "bad port" },
	{ "https://h:99999999999999999999/", 0, -1, 0, NULL, 0, NULL,
	    "bad port" },
	{ "https://[::1]:8080/x", 0, 0, 1, "::1", 8080, "/x", NULL },
	{ "https://[::1]", 0, 0, 1, "::1", 443, "/", NULL },
	{ "https://[2001:db8::1]:443/a?b", 0, 0, 1, "2001:db8::1", 443, "/a?b",
	    NULL },
	{ "https://[::1/", 0, -1, 0, NULL, 0, NULL, "unterminated [" },
	{ "https://[::1]x/", 0, -1, 0, NULL, 0, NULL, "bad path" },
	{ "https://[]/", 0, -1, 0, NULL, 0, NULL, "no host" },
	{ "https://user@host/", 0, -1, 0, NULL, 0, NULL, "user name" },
	{ "https://user:pw@host/", 0, -1, 0, NULL, 0, NULL, NULL },
	{ "https://@host/", 0, -1, 0, NULL, 0, NULL, NULL },
	{ "http://localhost@evil.com/", 0, -1, 0, NULL, 0, NULL, "user name" },
	{ "https://[::1]@evil.com/", 0, -1, 0, NULL, 0, NULL, "user name" },
	{ "http://localhost/", 0, 0, 0, "localhost", 80, "/", NULL },
	{ "http://LocalHost:3000/api/", 0, 0, 0, "LocalHost", 3000, "/api/",
	    NULL },
	{ "http://127.0.0.1/", 0, 0, 0, "127.0.0.1", 80, "/", NULL },
	{ "http://127.0.0.1:8080/api/", 0, 0, 0, "127.0.0.1", 8080, "/api/",
	    NULL },
	{ "http://127.9.8.7/", 0, 0, 0, "127.9.8.7", 80, "/", NULL },
	{ "http://[::1]:9/", 0, 0, 0, "::1", 9, "/", NULL },
	{ "http://example.com/", 0, -1, 0, NULL, 0, NULL,
	    "http:// is only allowed to a loopback host" },
	{ "http://128.0.0.1/", 0, -1, 0, NULL, 0, NULL, "loopback" },
	{ "http://126.255.255.255/", 0, -1, 0, NULL, 0, NULL, "loopback" },
	{ "http://127.0.0.1.evil.com/", 0, -1, 0, NULL, 0, NULL, "loopback" },
	{ "http://localhost.evil.com/", 0, -1, 0, NULL, 0, NULL, "loopback" },
	{ "http://[::2]/", 0, -1, 0, NULL, 0, NULL, "loopback" },
	{ "wss://wss-primary.slack.com/link/?ticket=abc&app=x", 1, 0, 1,
	    "wss-primary.slack.com", 443, "/link/?ticket=abc&app=x", NULL },
	{ "WSS://h:8443/ws", 1, 0, 1, "h", 8443, "/ws", NULL },
	{ "ws://127.0.0.1:9000/ws", 1, 0, 0, "127.0.0.1", 9000, "/ws", NULL },
	{ "ws://localhost", 1, 0, 0, "localhost", 80, "/", NULL },
	{ "ws://example.com/", 1, -1, 0, NULL, 0, NULL,
	    "ws:// is only allowed to a loopback host" },
	{ "https://slack.com/", 1, -1, 0, NULL, 0, NULL,
	    "does not start with wss://" },
	{ "wss://slack.com/", 0, -1, 0, NULL, 0, NULL,
	    "does not start with https://" },
	{ "https://h/api?x=1&y=2", 0, 0, 1, "h", 443, "/api?x=1&y=2", NULL },
	{ "https://h?x", 0, 0, 1, "h", 443, "/?x", NULL },
	{ "https://h:8443?x=1", 0, 0, 1, "h", 8443, "/?x=1", NULL },
	{ "https://h/a%20b", 0, 0, 1, "h", 443, "/a%20b", NULL },
	{ "slack.com/api", 0, -1, 0, NULL, 0, NULL,
	    "does not start with https://" },
	{ "", 0, -1, 0, NULL, 0, NULL, "does not start with" },
	{ "https:/h/", 0, -1, 0, NULL, 0, NULL, "does not start with" },
	{ "//h/", 0, -1, 0, NULL, 0, NULL, "does not start with" },
	{ " https://h/", 0, -1, 0, NULL, 0, NULL, "does not start with" },
	{ "https:///api", 0, -1, 0, NULL, 0, NULL, "no host" },
	{ "https://", 0, -1, 0, NULL, 0, NULL, "no host" },
	{ "https://:443/", 0, -1, 0, NULL, 0, NULL, "no host" },
	{ "https://?x", 0, -1, 0, NULL, 0, NULL, "no host" },
	{ "https://h/a b", 0, -1, 0, NULL, 0, NULL, "bad character" },
	{ "https://h/a\tb", 0, -1, 0, NULL, 0, NULL, "bad character" },
	{ "https://h/a\x7f", 0, -1, 0, NULL, 0, NULL, "bad character" },
	{ "https://h/\xc3\xa9", 0, -1, 0, NULL, 0, NULL, "bad character" },
	{ "https://h/#frag", 0, -1, 0, NULL, 0, NULL, "bad character" },
	{ "https://h#frag", 0, -1, 0, NULL, 0, NULL, "bad path" },
	{ "https://ho st/", 0, -1, 0, NULL, 0, NULL, "bad host" },
	{ "https://h%41/", 0, -1, 0, NULL, 0, NULL, "bad host" },
	{ "https://h\\evil/", 0, -1, 0, NULL, 0, NULL, "bad host" },
};

static void
test_parse_url(void)
{
	struct webapi_url u;
	char *err;
	size_t i;
	int rc, good;

	for (i = 0; i < nitems(url_cases); i++) {
		const struct url_case *c = &url_cases[i];

		err = NULL;
		rc = webapi_parse_url(c->url, c->websocket, &u, &err);
		if (c->rc == 0)
			good = rc == 0 && err == NULL && u.tls == c->tls &&
			    u.host != NULL && strcmp(u.host, c->host) == 0 &&
			    u.port == c->port && u.path != NULL &&
			    strcmp(u.path, c->path) == 0;
		else
			good = rc == -1 && err != NULL && *err != '\0' &&
			    u.host == NULL && u.path == NULL &&
			    (c->err == NULL || contains(err, c->err));
		ok(good, "%s(\"%s\") %s", c->websocket ? "ws " : "",
		    printable(c->url), c->rc == 0 ? "parses" : "is refused");
		if (!good)
			printf(
			    "#   rc %d tls %d host \"%s\" port %d path \"%s\" "
			    "err \"%s\"\n",
			    rc, u.tls, u.host ? u.host : "", u.port,
			    u.path ? u.path : "", err ? err : "");
		free(err);
		webapi_url_free(&u);
	}

	err = NULL;
	rc = webapi_parse_url("https://h/", 0, &u, &err);
	webapi_url_free(&u);
	ok(rc == 0 && u.host == NULL && u.path == NULL,
	    "webapi_url_free clears the structure");
	free(err);

	err = NULL;
	rc = webapi_parse_url("http://example.com/x", 0, &u, &err);
	ok(rc == -1 && contains(err, "\"http://example.com/x\""),
	    "the error quotes the URL");
	free(err);
	webapi_url_free(&u);

	/*
	 * Regression test for a fixed bug: the port is read with strtol(),
	 * which skips leading white space and accepts a sign, so
	 * "https://slack.com: 443/" and "https://slack.com:+443/" are accepted
	 * as port 443.  A URL port is only digits (RFC 3986 §3.2.3), and the
	 * path check shows spaces are meant to be refused.
	 */
	err = NULL;
	rc = webapi_parse_url("https://slack.com: 443/", 0, &u, &err);
	ok(rc == -1, "a space before the port is refused");
	free(err);
	webapi_url_free(&u);
	err = NULL;
	rc = webapi_parse_url("https://slack.com:+443/", 0, &u, &err);
	ok(rc == -1, "a sign before the port is refused");
	free(err);
	webapi_url_free(&u);
}

static void
test_loopback(void)
{
	static const char *yes[] = { "localhost", "LOCALHOST", "LocalHost",
		"127.0.0.1", "127.0.0.0", "127.255.255.255", "127.1.2.3", "::1",
		"0:0:0:0:0:0:0:1", "0000::0001" };
	static const char *no[] = { "", "localhost.", "localhost.evil.com",
		"evil-localhost", "128.0.0.1", "126.255.255.255", "0.0.0.0",
		"10.0.0.1", "1.127.0.0", "::", "::2", "[::1]", "127.0.0.1 ",
		"127.0.0.256", "slack.com", "127.0.0.1.nip.io" };
	size_t i;

	for (i = 0; i < nitems(yes); i++)
		ok(webapi_is_loopback(yes[i]) == 1, "\"%s\" is loopback",
		    yes[i]);
	for (i = 0; i < nitems(no); i++)
		ok(webapi_is_loopback(no[i]) == 0, "\"%s\" is not loopback",
		    no[i]);
}

static int
connect_parse(const char *body, struct webapi_connect *c, char **err)
{
	*err = NULL;
	return webapi_parse_connect(body, strlen(body), c, err);
}

static void
test_connect_ok(void)
{
	static const char full[] =
	    "{\"ok\":true,\"url\":\"wss://wss-primary."
	    "slack.com/link/?ticket=t1\",\"team\":{\"id\":\"T1\",\"name\":"
	    "\"Acme\",\"domain\":\"acme\"},\"self\":{\"id\":\"U1\",\"name\":"
	    "\"bot\"}}";
	struct webapi_connect c;
	struct json_object *o;
	char *err;
	int rc;

	rc = connect_parse(full, &c, &err);
	ok(rc == 0 && err == NULL, "a full rtm.connect answer parses");
	ok(c.ok == 1 && c.error == NULL, "ok, no error");
	is_str(c.url, "wss://wss-primary.slack.com/link/?ticket=t1", "url");
	is_str(c.team, "{\"id\":\"T1\",\"name\":\"Acme\",\"domain\":\"acme\"}",
	    "team as compact JSON");
	is_str(
	    c.self, "{\"id\":\"U1\",\"name\":\"bot\"}", "self as compact JSON");
	is_str(c.team_name, "Acme", "team_name from team.name");
	is_str(c.self_name, "bot", "self_name from self.name");
	webapi_connect_free(&c);
	ok(c.url == NULL && c.team == NULL && c.team_name == NULL,
	    "webapi_connect_free clears the structure");
	free(err);

	rc = connect_parse(
	    " {\n \"ok\" : true , \"url\" : \"wss://x/\" ,\n"
	    " \"team\" : { \"id\" : \"T1\" , \"name\" : \"A/B \\u00e9\" } ,"
	    " \"self\" : { \"id\" : \"U1\" } }",
	    &c, &err);
	ok(rc == 0, "a spaced answer parses");
	is_str(c.team, "{\"id\":\"T1\",\"name\":\"A/B \xc3\xa9\"}",
	    "team is compacted, without escaping '/' or UTF-8");
	is_str(c.team_name, "A/B \xc3\xa9", "team_name is the decoded name");
	is_str(c.self_name, "U1", "self_name falls back to self.id");
	o = json_tokener_parse(c.self);
	ok(o != NULL && json_object_is_type(o, json_type_object),
	    "self is a JSON object");
	json_object_put(o);
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"ok\":true,\"url\":\"wss://x/\",\"team\":{\"id\":"
	                   "\"T9\"}}",
	    &c, &err);
	ok(rc == 0 && c.team_name != NULL && strcmp(c.team_name, "T9") == 0,
	    "team_name falls back to team.id");
	is_str(c.self, "{}", "self missing -> \"{}\"");
	is_str(c.self_name, "(unknown user)", "self missing -> unknown user");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"ok\":true,\"url\":\"wss://x/\"}", &c, &err);
	ok(rc == 0, "only ok and url");
	is_str(c.team, "{}", "team missing -> \"{}\"");
	is_str(c.team_name, "(unknown team)", "team missing -> unknown team");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"ok\":true,\"url\":\"wss://x/\",\"team\":\"T1\","
	                   "\"self\":[1],\"extra\":{\"deep\":[[[]]]}}",
	    &c, &err);
	ok(rc == 0 && strcmp(c.team, "{}") == 0 && strcmp(c.self, "{}") == 0,
	    "team/self that are not objects -> \"{}\"");
	ok(c.team_name != NULL && strcmp(c.team_name, "(unknown team)") == 0,
	    "and their names unknown");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse(
	    "{\"ok\":true,\"url\":\"wss://x/\",\"team\":{\"name\":"
	    "5,\"id\":\"T2\"}}",
	    &c, &err);
	ok(rc == 0 && strcmp(c.team_name, "T2") == 0,
	    "a non-string team.name falls back to team.id");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse(
	    "{\"ok\":true,\"url\":\"wss://x/\"}  \r\n\t ", &c, &err);
	ok(rc == 0 && c.url != NULL, "trailing whitespace is allowed");
	webapi_connect_free(&c);
	free(err);
}

static void
test_connect_refused(void)
{
	struct webapi_connect c;
	char *err, body[2048];
	int rc;

	rc = connect_parse(
	    "{\"ok\":false,\"error\":\"invalid_auth\"}", &c, &err);
	ok(rc == 0 && c.ok == 0, "ok:false parses (rc 0, ok 0)");
	is_str(c.error, "invalid_auth", "and gives Slack's error");
	ok(c.url == NULL && c.team == NULL, "no url or team when refused");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"ok\":false}", &c, &err);
	ok(rc == 0 && c.ok == 0, "ok:false without error parses");
	is_str(c.error, "unknown_error", "error defaults to unknown_error");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"ok\":false,\"error\":{\"x\":1}}", &c, &err);
	ok(rc == 0 && c.error != NULL && strcmp(c.error, "unknown_error") == 0,
	    "a non-string error is unknown_error");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("<html><body><h1>502 Bad Gateway</h1></body>"
	                   "</html>\r\n",
	    &c, &err);
	ok(rc == -1 && contains(err, "not a JSON object") &&
	        contains(err, "<h1>502 Bad Gateway</h1>"),
	    "an HTML page: -1 with an excerpt");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("Service Unavailable", &c, &err);
	ok(rc == -1 && contains(err, "\"Service Unavailable\""),
	    "plain text: -1 with the text");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("", &c, &err);
	ok(rc == -1 && err != NULL && contains(err, "not a JSON object"),
	    "an empty body: -1");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("\x01\x02\n\n<b>x</b>\t\ty", &c, &err);
	ok(rc == -1 && contains(err, "<b>x</b> y") &&
	        strchr(err, '\n') == NULL && strchr(err, '\x01') == NULL,
	    "control characters in the excerpt become single spaces");
	webapi_connect_free(&c);
	free(err);

	memset(body, 'A', sizeof body - 1);
	body[sizeof body - 1] = '\0';
	rc = connect_parse(body, &c, &err);
	ok(rc == -1 && err != NULL && strlen(err) < 200,
	    "a long body's excerpt is bounded");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("[{\"ok\":true,\"url\":\"wss://x/\"}]", &c, &err);
	ok(rc == -1 && contains(err, "not a JSON object"),
	    "an array at the top level");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("null", &c, &err);
	ok(rc == -1 && err != NULL, "null at the top level");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("\"ok\"", &c, &err);
	ok(rc == -1 && err != NULL, "a string at the top level");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"url\":\"wss://x/\"}", &c, &err);
	ok(rc == -1 && contains(err, "\"ok\""), "missing ok: -1");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"ok\":\"true\",\"url\":\"wss://x/\"}", &c, &err);
	ok(rc == -1 && contains(err, "boolean"), "ok as a string: -1");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"ok\":1,\"url\":\"wss://x/\"}", &c, &err);
	ok(rc == -1 && err != NULL, "ok as a number: -1");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"ok\":true}", &c, &err);
	ok(rc == -1 && contains(err, "\"url\""), "ok:true without url: -1");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"ok\":true,\"url\":5}", &c, &err);
	ok(rc == -1 && contains(err, "\"url\""), "a non-string url: -1");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"ok\":true,\"url\":\"wss://x/\"} x", &c, &err);
	ok(rc == -1 && err != NULL, "trailing garbage: -1");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"ok\":true,\"url\":\"wss://x/\"}{}", &c, &err);
	ok(rc == -1 && err != NULL, "two objects: -1");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"ok\":true,\"url\":\"wss://x/\",}", &c, &err);
	ok(rc == -1 && err != NULL, "a trailing comma: -1 (strict)");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{'ok':true,'url':'wss://x/'}", &c, &err);
	ok(rc == -1 && err != NULL, "single quotes: -1 (strict)");
	webapi_connect_free(&c);
	free(err);

	rc = connect_parse("{\"ok\":true,\"url\":\"wss://\x80/\"}", &c, &err);
	ok(rc == -1 && err != NULL, "invalid UTF-8: -1");
	webapi_connect_free(&c);
	free(err);
}

static void
test_connect_truncated(void)
{
	static const char full[] =
	    "{\"ok\":true,\"url\":\"wss://x/link\","
	    "\"team\":{\"id\":\"T1\",\"name\":\"Acme\"},\"self\":{\"id\":"
	    "\"U1\",\"name\":\"bot\"}}";
	struct webapi_connect c;
	char *err;
	size_t len, bad = 0;
	int rc;

	for (len = 0; len < sizeof full - 1; len++) {
		err = NULL;
		rc = webapi_parse_connect(full, len, &c, &err);
		if (rc != -1 || err == NULL ||
		    !contains(err,
		        "not a JSON "
		        "object")) {
			if (bad++ < 3)
				printf("#   prefix of %zu: rc %d\n", len, rc);
		}
		webapi_connect_free(&c);
		free(err);
	}
	ok(bad == 0, "each of the %zu truncations is -1 with a message",
	    sizeof full - 1);
	err = NULL;
	rc = webapi_parse_connect(full, sizeof full - 1, &c, &err);
	ok(rc == 0 && c.ok, "the untruncated answer parses");
	webapi_connect_free(&c);
	free(err);
}

static void
test_permanent_errors(void)
{
	static const char *permanent[] = { "invalid_auth", "not_authed",
		"account_inactive", "token_revoked", "not_allowed_token_type",
		"team_disabled", "user_removed_from_team",
		"legacy_custom_bots_deprecated" };
	static const char *transient[] = { "ratelimited", "internal_error",
		"migration_in_progress", "fatal_error", "request_timeout",
		"unknown_error", "", "INVALID_AUTH", "invalid_auth ",
		"invalid_auth_x", "invalid" };
	size_t i;

	for (i = 0; i < nitems(permanent); i++)
		is_int(webapi_permanent_error(permanent[i]), 1, permanent[i]);
	for (i = 0; i < nitems(transient); i++)
		ok(webapi_permanent_error(transient[i]) == 0,
		    "\"%s\" is not permanent", printable(transient[i]));
	for (i = 0; i < nitems(permanent); i++)
		ok(webapi_error_advice(permanent[i]) != NULL,
		    "%s has an explanation", permanent[i]);
	ok(strstr(webapi_error_advice(
	              "authentication failed: not_allowed_token_type"),
	       "classic") != NULL,
	    "the explanation is found after \"authentication failed: \"");
	ok(webapi_error_advice("authentication failed: ratelimited") == NULL,
	    "no explanation for a transient error");
}

static void
test_retry_after(void)
{
	static const struct {
		const char *v;
		int rc;
		int64_t ms;
	} cases[] = {
		{ "3", 0, 3000 },
		{ " 10 ", 0, 10000 },
		{ "1.5", 0, 1500 },
		{ "0", 0, 0 },
		{ "\t7\r\n", 0, 7000 },
		{ "3600", 0, 3600000 },
		{ "3601", 0, 3600000 },
		{ "99999999", 0, 3600000 },
		{ "99999999999999999999", 0, 3600000 },
		{ "abc", -1, 0 },
		{ "-1", -1, 0 },
		{ "", -1, 0 },
		{ " ", -1, 0 },
		{ "+5", -1, 0 },
		{ "5s", -1, 0 },
		{ "5 5", -1, 0 },
		{ ".5", -1, 0 },
		{ "nan", -1, 0 },
		{ "inf", -1, 0 },
		{ "Wed, 21 Oct 2015 07:28:00 GMT", -1, 0 },
		{ "21 Oct 2015 07:28:00 GMT", -1, 0 },
	};
	char big[420];
	size_t i;
	int64_t ms;
	int rc;

	for (i = 0; i < nitems(cases); i++) {
		ms = -7;
		rc = webapi_retry_after(cases[i].v, &ms);
		if (cases[i].rc == 0)
			ok(rc == 0 && ms == cases[i].ms,
			    "Retry-After \"%s\" -> %lld ms",
			    printable(cases[i].v), (long long)cases[i].ms);
		else
			ok(rc == -1, "Retry-After \"%s\" -> -1",
			    printable(cases[i].v));
		if (rc != cases[i].rc || (rc == 0 && ms != cases[i].ms))
			printf("#   got rc %d, %lld\n", rc, (long long)ms);
	}

	/*
	 * Regression test for a fixed bug: a delay-seconds value too large for
	 * a double ("1" followed by 400 zeros) makes strtod() set ERANGE and
	 * webapi_retry_after() returns -1 instead of clamping to the 3600 s
	 * maximum as it does for any smaller huge value.
	 */
	memset(big, '0', sizeof big - 1);
	big[0] = '1';
	big[sizeof big - 1] = '\0';
	ms = -7;
	rc = webapi_retry_after(big, &ms);
	ok(rc == 0 && ms == 3600000, "a 420-digit Retry-After clamps to 1 h");
	if (rc != 0 || ms != 3600000)
		printf("#   got rc %d, %lld\n", rc, (long long)ms);
}

/* ---- fuzz-style loop ---------------------------------------------------- */

static uint64_t rng_state = 0xfeedface0badf00dULL;

static uint64_t
rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned
rnd_n(unsigned n)
{
	return (unsigned)(rnd() % n);
}

/* Mutate s (NUL-terminated, in a buffer of cap bytes) a few times. */
static size_t
mutate(char *s, size_t len, size_t cap, const char *alphabet)
{
	unsigned k, m = rnd_n(4) + 1;
	size_t pos, alen = strlen(alphabet);

	for (k = 0; k < m; k++) {
		pos = len ? rnd_n((unsigned)len) : 0;
		switch (rnd_n(4)) {
		case 0:
			if (len > 0) {
				memmove(s + pos, s + pos + 1, len - pos);
				len--;
			}
			break;
		case 1:
			if (len + 1 < cap) {
				memmove(s + pos + 1, s + pos, len - pos + 1);
				s[pos] = alphabet[rnd_n((unsigned)alen)];
				len++;
			}
			break;
		case 2:
			if (len > 0)
				s[pos] = rnd_n(8) == 0
				    ? (char)rnd_n(256)
				    : alphabet[rnd_n((unsigned)alen)];
			break;
		default:
			len = pos;
			break;
		}
		s[len] = '\0';
	}
	return len;
}

static void
fuzz_url(void)
{
	static const char *seeds[] = { "https://slack.com/api/",
		"https://[::1]:8080/x?y", "http://127.0.0.1:8080/api/",
		"wss://wss-primary.slack.com/link/?ticket=abc",
		"ws://localhost:9/ws", "https://u@h:1/" };
	static const char alphabet[] = "htpsw:/[]@?#.-_0123456789:%+ \t"
	                               "lcaoLH1";
	struct webapi_url u;
	char buf[256], *err;
	size_t i, len, bad = 0, accepted = 0;
	int rc, websocket;

	for (i = 0; i < 4000; i++) {
		if (i % 4 == 0) {
			len = rnd_n(40);
			for (size_t j = 0; j < len; j++)
				buf[j] = (char)(rnd_n(255) + 1);
			buf[len] = '\0';
		} else {
			snprintf(
			    buf, sizeof buf, "%s", seeds[rnd_n(nitems(seeds))]);
			len = mutate(buf, strlen(buf), sizeof buf, alphabet);
		}
		websocket = (int)rnd_n(2);
		err = NULL;
		rc = webapi_parse_url(buf, websocket, &u, &err);
		if (rc == 0) {
			accepted++;
			if (err != NULL || u.host == NULL || *u.host == '\0' ||
			    u.path == NULL || u.path[0] != '/' || u.port < 1 ||
			    u.port > 65535 ||
			    strpbrk(u.path, " #\t\r\n") != NULL ||
			    (!u.tls && !webapi_is_loopback(u.host)))
				bad++;
		} else if (rc != -1 || err == NULL || *err == '\0' ||
		    u.host != NULL || u.path != NULL)
			bad++;
		free(err);
		webapi_url_free(&u);
	}
	is_int(bad, 0,
	    "4000 random/mutated URLs: rc 0 with a sane result or "
	    "-1 with a message");
	ok(accepted > 100, "some mutated URLs are still accepted (%zu)",
	    accepted);
}

static void
fuzz_connect(void)
{
	static const char *seeds[] = {
		"{\"ok\":true,\"url\":\"wss://x/\",\"team\":{\"id\":\"T1\","
		"\"name\":\"A\"},\"self\":{\"id\":\"U1\",\"name\":\"b\"}}",
		"{\"ok\":false,\"error\":\"invalid_auth\"}",
		"{\"ok\":true,\"url\":\"wss://x/\"}",
		"<html>502</html>",
	};
	static const char alphabet[] = "{}[]\",:okturefalsn \\0123456789.-e";
	struct webapi_connect c;
	struct json_object *o;
	char buf[512], *err;
	size_t i, j, len, bad = 0, zero = 0;
	int rc;

	for (i = 0; i < 4000; i++) {
		if (i % 4 == 0) {
			len = rnd_n(64);
			for (j = 0; j < len; j++)
				buf[j] = (char)rnd_n(256);
			buf[len] = '\0';
		} else {
			snprintf(
			    buf, sizeof buf, "%s", seeds[rnd_n(nitems(seeds))]);
			len = mutate(buf, strlen(buf), sizeof buf, alphabet);
		}
		err = NULL;
		rc = webapi_parse_connect(buf, len, &c, &err);
		if (rc == 0) {
			zero++;
			if (err != NULL)
				bad++;
			else if (c.ok) {
				if (c.url == NULL || c.team == NULL ||
				    c.self == NULL || c.team_name == NULL ||
				    c.self_name == NULL)
					bad++;
				else {
					o = json_tokener_parse(c.team);
					if (!json_object_is_type(
					        o, json_type_object))
						bad++;
					json_object_put(o);
				}
			} else if (c.error == NULL || *c.error == '\0')
				bad++;
		} else if (rc != -1 || err == NULL || *err == '\0')
			bad++;
		free(err);
		webapi_connect_free(&c);
	}
	is_int(bad, 0,
	    "4000 random/mutated bodies: rc 0 with fields or -1 "
	    "with a message");
	ok(zero > 100, "some mutated bodies still parse (%zu)", zero);
}

int
main(void)
{
	test_parse_url();
	test_loopback();
	test_connect_ok();
	test_connect_refused();
	test_connect_truncated();
	test_permanent_errors();
	test_retry_after();
	fuzz_url();
	fuzz_connect();
	return tap_done();
}
