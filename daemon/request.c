/*
 * One request line from a local client: parse it strictly (RFC 8259,
 * valid UTF-8, bounded nesting), check every field the daemon uses, and
 * say precisely what is wrong otherwise.  Pure: no I/O, no daemon state.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "slackd.h"

static int request_fail(struct request_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
request_fail(struct request_error *e, int code, const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return -1;
}

void
request_free(struct request *r)
{
	json_object_put(r->obj);
	memset(r, 0, sizeof *r);
}

/*
 * A string member.  Returns 1 if present and a string without NUL bytes,
 * 0 if absent, -1 (with e set) if present but unusable.
 */
static int
request_string(struct json_object *o, const char *key, const char **out,
    struct request_error *e)
{
	struct json_object *v;
	const char *s;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return request_fail(
		    e, PROTOCOL_E_BAD_REQUEST, "\"%s\" must be a string", key);
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v))
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    "\"%s\" contains a NUL character", key);
	*out = s;
	return 1;
}

/* Printable text of the line from byte at, for an error message. */
static const char *
request_excerpt(const char *line, size_t len, size_t at, char *out)
{
	size_t i, o = 0;

	for (i = at; i < len && o < 20; i++)
		out[o++] = line[i] >= ' ' && line[i] < 0x7f && line[i] != '"'
		    ? line[i]
		    : '?';
	out[o] = '\0';
	return out;
}

/*
 * Where a message may go: a conversation ID (C…, G…, D…), a user ID (U…,
 * W…: their DM), a channel name with or without '#', or @user.  Names are
 * checked for shape only; names.c finds out whether they exist.
 */
int
request_check_target(const char *s, char *why, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	if (*p == '#' || *p == '@')
		p++;
	if (*p == '\0' || n > PROTOCOL_MAX_TARGET)
		goto bad;
	for (; *p != '\0'; p++) {
		if (*p <= ' ' || *p == 0x7f || *p == '#' || *p == '@' ||
		    *p == ',' || *p == '"' || *p == '\\')
			goto bad;
	}
	return 0;
bad:
	snprintf(why, len,
	    "\"channel\" must be a conversation ID such as C024BE91L, a channel name such as general or #general, or @user or a user ID (got \"%.80s\")",
	    s);
	return -1;
}

static int
request_thread_ts(const char *ts)
{
	const char *p = ts;

	if (!isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p++ != '.' || !isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p))
		p++;
	return *p == '\0' && p - ts <= 32 ? 0 : -1;
}

static int
request_bool(
    struct json_object *o, const char *key, int *out, struct request_error *e)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    "\"%s\" must be true or false", key);
	*out = json_object_get_boolean(v) ? 1 : 0;
	return 1;
}

/* thread_ts, if given, must look like a message timestamp. */
static int
request_check_thread_ts(const struct request *r, struct request_error *e)
{
	if (r->thread_ts != NULL && request_thread_ts(r->thread_ts) != 0)
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    "\"thread_ts\" must be a message timestamp such as \"1700000000.000100\"");
	return 0;
}

/* reply_broadcast (1) makes sense only in a thread. */
static int
request_check_broadcast(const struct request *r, struct request_error *e)
{
	if (r->reply_broadcast == 1 && r->thread_ts == NULL)
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    "\"reply_broadcast\" needs a \"thread_ts\"");
	return 0;
}

/* message and typing: RTM frames. */
static int
request_message(struct request *r, struct request_error *e)
{
	int typing = r->kind == REQUEST_TYPING;
	char why[200];
	int rc;

	if ((rc = request_string(r->obj, "channel", &r->channel, e)) < 0)
		return -1;
	if (rc == 0)
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    "%s needs a \"channel\"", typing ? "typing" : "message");
	if (request_check_target(r->channel, why, sizeof why) != 0)
		return request_fail(e, PROTOCOL_E_BAD_REQUEST, "%s", why);
	if (request_string(r->obj, "thread_ts", &r->thread_ts, e) < 0 ||
	    request_check_thread_ts(r, e) != 0)
		return -1;
	if (typing)
		return 0;
	if ((rc = request_string(r->obj, "text", &r->text, e)) < 0)
		return -1;
	if (rc == 0 || *r->text == '\0')
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    "message needs a non-empty \"text\"");
	if (request_bool(r->obj, "reply_broadcast", &r->reply_broadcast, e) <
	        0 ||
	    request_bool(r->obj, "queued_notice", &r->queued_notice, e) < 0 ||
	    request_check_broadcast(r, e) != 0)
		return -1;
	return 0;
}

static int
request_list(struct json_object *o, const char *key, struct json_object **out,
    struct request_error *e)
{
	struct json_object *v, *item;
	size_t i, n;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    "\"%s\" must be an array of strings", key);
	n = json_object_array_length(v);
	if (n > PROTOCOL_MAX_FILTERS)
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    "\"%s\" has %zu entries, at most %d are allowed", key, n,
		    PROTOCOL_MAX_FILTERS);
	for (i = 0; i < n; i++) {
		item = json_object_array_get_idx(v, i);
		if (!json_object_is_type(item, json_type_string) ||
		    json_object_get_string_len(item) == 0 ||
		    json_object_get_string_len(item) >= JSCAN_FIELD ||
		    strlen(json_object_get_string(item)) !=
		        (size_t)json_object_get_string_len(item))
			return request_fail(e, PROTOCOL_E_BAD_REQUEST,
			    "\"%s\" entries must be strings of 1 to %d bytes",
			    key, JSCAN_FIELD - 1);
	}
	*out = v;
	return 0;
}

static int
request_array(struct json_object *o, const char *key, struct json_object **out,
    struct request_error *e)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    "\"%s\" must be an array (Slack's %s)", key, key);
	*out = v;
	return 1;
}

/* slackd.post: a chat.postMessage, with blocks and attachments. */
static int
request_post(struct request *r, struct request_error *e)
{
	char why[300];
	int rc;

	r->unfurl_links = r->unfurl_media = -1; /* not given */
	if ((rc = request_string(r->obj, "channel", &r->channel, e)) < 0)
		return -1;
	if (rc == 0)
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    PROTOCOL_POST " needs a \"channel\"");
	if (request_check_target(r->channel, why, sizeof why) != 0)
		return request_fail(e, PROTOCOL_E_BAD_REQUEST, "%s", why);
	if (request_string(r->obj, "text", &r->text, e) < 0 ||
	    request_string(r->obj, "thread_ts", &r->thread_ts, e) < 0 ||
	    request_array(r->obj, "blocks", &r->blocks, e) < 0 ||
	    request_array(r->obj, "attachments", &r->attachments, e) < 0 ||
	    request_bool(r->obj, "reply_broadcast", &r->reply_broadcast, e) <
	        0 ||
	    request_bool(r->obj, "unfurl_links", &r->unfurl_links, e) < 0 ||
	    request_bool(r->obj, "unfurl_media", &r->unfurl_media, e) < 0 ||
	    request_bool(r->obj, "queued_notice", &r->queued_notice, e) < 0)
		return -1;
	if ((r->text == NULL || *r->text == '\0') && r->blocks == NULL &&
	    r->attachments == NULL)
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    PROTOCOL_POST
		    " needs a \"text\", \"blocks\" or \"attachments\"");
	if (request_check_thread_ts(r, e) != 0 ||
	    request_check_broadcast(r, e) != 0)
		return -1;
	return 0;
}

/* slackd.api: any Web API method (the allow-list is checked later). */
static int
request_api(struct request *r, struct request_error *e)
{
	struct json_object *v;
	const char *p;
	int rc;

	if ((rc = request_string(r->obj, "method", &r->method, e)) < 0)
		return -1;
	if (rc == 0)
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    PROTOCOL_API
		    " needs a \"method\" such as \"conversations.info\"");
	for (p = r->method; *p != '\0'; p++) {
		if (!isalnum((unsigned char)*p) && *p != '.')
			break;
	}
	if (*p != '\0' || !isalpha((unsigned char)*r->method) ||
	    p - r->method > 64)
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    "\"method\" must be a Web API method name such as \"users.info\"");
	if (json_object_object_get_ex(r->obj, "params", &v) && v != NULL) {
		if (!json_object_is_type(v, json_type_object))
			return request_fail(e, PROTOCOL_E_BAD_REQUEST,
			    "\"params\" must be an object");
		r->params = v;
	}
	return 0;
}

static int
request_names(struct request *r, struct request_error *e)
{
	const char *kind;
	int rc;

	if ((rc = request_string(r->obj, "kind", &kind, e)) < 0)
		return -1;
	if (rc == 0 ||
	    (strcmp(kind, "channels") != 0 && strcmp(kind, "users") != 0))
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    PROTOCOL_NAMES
		    " needs \"kind\": \"channels\" or \"users\"");
	r->users = strcmp(kind, "users") == 0;
	return 0;
}

/* slackd.ack: a Socket Mode envelope's id and, optionally, its payload. */
static int
request_ack(struct request *r, struct request_error *e)
{
	struct json_object *v;
	int rc;

	if ((rc = request_string(r->obj, "envelope_id", &r->envelope_id, e)) <
	    0)
		return -1;
	if (rc == 0 || *r->envelope_id == '\0' ||
	    strlen(r->envelope_id) >= JSCAN_FIELD ||
	    strpbrk(r->envelope_id, "\"\\") != NULL)
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    PROTOCOL_ACK
		    " needs the \"envelope_id\" of the slackd.slash_command or slackd.interactive it answers");
	if (json_object_object_get_ex(r->obj, "payload", &v) && v != NULL) {
		if (!json_object_is_type(v, json_type_object))
			return request_fail(e, PROTOCOL_E_BAD_REQUEST,
			    "\"payload\" must be an object");
		r->payload = v;
	}
	return 0;
}

/*
 * slackd.subscribe: "types" and "channels", each a list or absent; "seq"
 * (sequence numbers on events) and "since" (a cursor to replay from,
 * which implies "seq").
 */
static int
request_subscribe(struct request *r, struct request_error *e)
{
	char run[REPLAY_RUN_LEN + 1];
	uint64_t n;

	if (request_list(r->obj, "types", &r->types, e) != 0 ||
	    request_list(r->obj, "channels", &r->channels, e) != 0 ||
	    request_bool(r->obj, "seq", &r->seq, e) < 0 ||
	    request_string(r->obj, "since", &r->since, e) < 0)
		return -1;
	if (r->since != NULL && replay_cursor_parse(r->since, run, &n) != 0)
		return request_fail(e, PROTOCOL_E_BAD_REQUEST,
		    "\"since\" must be a cursor \"RUN:N\" as in \"slackd_seq\" (got \"%.40s\")",
		    r->since);
	if (r->since != NULL)
		r->seq = 1;
	return 0;
}

/*
 * The request types, a row each: the "type" a client sends, the kind the
 * daemon knows it by (client.c's handler table is indexed by kind), and
 * the parser that checks its members (NULL: it has none).  A hidden type
 * is not listed in the unknown-type error.
 */
static const struct request_type {
	const char *name;
	enum request_kind kind;
	int (*parse)(struct request *, struct request_error *);
	int hidden;
} request_types[] = {
	{ "message", REQUEST_MESSAGE, request_message, 0 },
	{ "typing", REQUEST_TYPING, request_message, 0 },
	{ "ping", REQUEST_PING, NULL, 0 },
	{ PROTOCOL_SUBSCRIBE, REQUEST_SUBSCRIBE, request_subscribe, 0 },
	{ PROTOCOL_STATUS, REQUEST_STATUS, NULL, 0 },
	{ PROTOCOL_POST, REQUEST_POST, request_post, 0 },
	{ PROTOCOL_API, REQUEST_API, request_api, 0 },
	{ PROTOCOL_NAMES, REQUEST_NAMES, request_names, 0 },
	{ PROTOCOL_ACK, REQUEST_ACK, request_ack, 0 },
	/* Honoured only with test hooks on (client.c). */
	{ PROTOCOL_DEBUG, REQUEST_DEBUG, NULL, 1 },
};

static int
request_unknown(const char *type, struct request_error *e)
{
	char list[256];
	size_t i, n = 0;

	list[0] = '\0';
	for (i = 0; i < nitems(request_types) && n < sizeof list; i++) {
		if (!request_types[i].hidden)
			n += (size_t)snprintf(list + n, sizeof list - n, "%s%s",
			    n > 0 ? ", " : "", request_types[i].name);
	}
	return request_fail(e, PROTOCOL_E_UNKNOWN_TYPE,
	    "unknown type \"%.64s\" (slackd handles %s)", type, list);
}

static int
request_dispatch(struct request *r, const char *type, struct request_error *e)
{
	const struct request_type *t;
	size_t i;

	for (i = 0; i < nitems(request_types); i++) {
		t = &request_types[i];
		if (strcmp(type, t->name) == 0) {
			r->kind = t->kind;
			return t->parse != NULL ? t->parse(r, e) : 0;
		}
	}
	return request_unknown(type, e);
}

static int
request_too_deep(struct request_error *e)
{
	return request_fail(e, PROTOCOL_E_BAD_JSON,
	    "not valid JSON: nested more than %d levels deep",
	    PROTOCOL_MAX_DEPTH);
}

static int
request_not_object(struct request_error *e)
{
	return request_fail(e, PROTOCOL_E_NOT_OBJECT,
	    "a request must be a JSON object such as {\"id\":1,\"type\":\"ping\"}");
}

/*
 * json-c's parse of the line into r->obj.  Returns 0, or -1 with e filled
 * if the line is not one JSON value (r->obj may still be set).
 */
static int
request_tokenise(
    const char *line, size_t len, struct request *r, struct request_error *e)
{
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	char excerpt[24];
	size_t end;

	/* json-c counts the innermost value as a level of its own. */
	if ((tok = json_tokener_new_ex(PROTOCOL_MAX_DEPTH + 1)) == NULL)
		fatalx("json_tokener_new_ex");
	json_tokener_set_flags(
	    tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	r->obj = json_tokener_parse_ex(tok, line, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (r->obj == NULL && jerr == json_tokener_continue) {
		/* A bare number only ends at a NUL; give it one. */
		r->obj = json_tokener_parse_ex(tok, "", 1);
		if (json_tokener_get_error(tok) == json_tokener_success) {
			jerr = json_tokener_success;
			end = len;
		}
	}
	json_tokener_free(tok);
	if (r->obj == NULL) {
		if (jerr == json_tokener_success) /* null */
			return request_not_object(e);
		if (jerr == json_tokener_continue)
			return request_fail(e, PROTOCOL_E_BAD_JSON,
			    "not valid JSON: the line ends inside a value");
		if (jerr == json_tokener_error_depth)
			return request_too_deep(e);
		return request_fail(e, PROTOCOL_E_BAD_JSON,
		    "not valid JSON: %s at byte %zu (\"%.20s\")",
		    json_tokener_error_desc(jerr), end,
		    request_excerpt(line, len, end, excerpt));
	}
	while (end < len && isspace((unsigned char)line[end]))
		end++;
	if (end != len)
		return request_fail(e, PROTOCOL_E_BAD_JSON,
		    "not valid JSON: unexpected text after the value at byte %zu",
		    end);
	return 0;
}

/*
 * The line as a JSON object in r->obj, checked exactly.  json-c's strict
 * mode still lets through overlong and surrogate UTF-8, raw control
 * characters, NaN and numbers such as 01; none of that may reach Slack.
 * jscan is exact.
 */
static int
request_json(
    const char *line, size_t len, struct request *r, struct request_error *e)
{
	struct jscan js;

	if (request_tokenise(line, len, r, e) != 0)
		return -1;
	if (!json_object_is_type(r->obj, json_type_object))
		return request_not_object(e);
	if (jscan_object(line, len, PROTOCOL_MAX_DEPTH, &js) == 0)
		return 0;
	if (strcmp(js.error, JSCAN_TOO_DEEP) == 0)
		return request_too_deep(e);
	return request_fail(e, PROTOCOL_E_BAD_JSON,
	    "not valid JSON: %s at byte %zu", js.error, js.error_at);
}

/*
 * Parse one line (without its newline).  Returns 0 with r filled, or -1
 * with e filled.  Either way the caller calls request_free(r) once it is
 * done with r and e (e->id points into r->obj).
 */
int
request_parse(
    const char *line, size_t len, struct request *r, struct request_error *e)
{
	struct json_object *type;
	const char *t;

	memset(r, 0, sizeof *r);
	memset(e, 0, sizeof *e);
	if (len > INT32_MAX)
		return request_fail(
		    e, PROTOCOL_E_LINE_TOO_LONG, "request too long");
	if (request_json(line, len, r, e) != 0)
		return -1;
	if (json_object_object_get_ex(r->obj, "id", &r->id) && r->id != NULL) {
		e->id = r->id;
		if (!json_object_is_type(r->id, json_type_int))
			return request_fail(e, PROTOCOL_E_BAD_REQUEST,
			    "\"id\" must be an integer");
	} else
		r->id = NULL;
	if (!json_object_object_get_ex(r->obj, "type", &type) || type == NULL)
		return request_fail(
		    e, PROTOCOL_E_BAD_REQUEST, "request has no \"type\"");
	if (request_string(r->obj, "type", &t, e) < 0)
		return -1;
	return request_dispatch(r, t, e);
}

static char *
request_serialise(struct json_object *o, size_t *len)
{
	const char *s;
	char *out;

	s = json_object_to_json_string_length(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, len);
	out = xmemdup(s, *len);
	json_object_put(o);
	return out;
}

/* The thread members an RTM message and chat.postMessage share. */
static void
request_add_thread(struct json_object *o, const struct request *r)
{
	if (r->thread_ts != NULL)
		json_object_object_add(
		    o, "thread_ts", json_object_new_string(r->thread_ts));
	if (r->reply_broadcast == 1)
		json_object_object_add(
		    o, "reply_broadcast", json_object_new_boolean(1));
}

/*
 * The RTM frame for a message or typing request: the Slack-side id, the
 * conversation id the target resolved to.
 */
char *
request_frame(
    const struct request *r, const char *channel, int64_t id, size_t *len)
{
	struct json_object *o;

	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_int64(id));
	json_object_object_add(o, "type",
	    json_object_new_string(
	        r->kind == REQUEST_TYPING ? "typing" : "message"));
	json_object_object_add(o, "channel", json_object_new_string(channel));
	if (r->kind == REQUEST_MESSAGE)
		json_object_object_add(
		    o, "text", json_object_new_string(r->text));
	request_add_thread(o, r);
	return request_serialise(o, len);
}

/* The JSON body of chat.postMessage for a slackd.post request. */
char *
request_post_body(const struct request *r, const char *channel, size_t *len)
{
	struct json_object *o;

	o = json_object_new_object();
	json_object_object_add(o, "channel", json_object_new_string(channel));
	if (r->text != NULL)
		json_object_object_add(
		    o, "text", json_object_new_string(r->text));
	if (r->blocks != NULL)
		json_object_object_add(o, "blocks", json_object_get(r->blocks));
	if (r->attachments != NULL)
		json_object_object_add(
		    o, "attachments", json_object_get(r->attachments));
	request_add_thread(o, r);
	if (r->unfurl_links >= 0)
		json_object_object_add(o, "unfurl_links",
		    json_object_new_boolean(r->unfurl_links));
	if (r->unfurl_media >= 0)
		json_object_object_add(o, "unfurl_media",
		    json_object_new_boolean(r->unfurl_media));
	return request_serialise(o, len);
}

/*
 * The form body of a slackd.api call: each parameter as Slack expects it,
 * strings as they are, anything else as JSON.
 */
char *
request_api_body(const struct request *r, size_t *len)
{
	char *body = xstrdup("");

	*len = 0;
	if (r->params == NULL)
		return body;
	json_object_object_foreach(r->params, key, val)
	{
		if (val == NULL) /* null: leave the parameter out */
			continue;
		if (json_object_is_type(val, json_type_string))
			webapi_form_add(
			    &body, len, key, json_object_get_string(val));
		else
			webapi_form_add(&body, len, key,
			    json_object_to_json_string_ext(val,
			        JSON_C_TO_STRING_PLAIN |
			            JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	return body;
}
