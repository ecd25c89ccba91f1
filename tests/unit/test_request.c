/*
 * Unit tests for daemon/request.c: parsing and checking one request line
 * from a local client, and the RTM frame built from it; plus a fuzz-style
 * loop over random and mutated lines.
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
parse_len(
    const char *line, size_t len, struct request *r, struct request_error *e)
{
	return request_parse(line, len, r, e);
}

static int
parse(const char *line, struct request *r, struct request_error *e)
{
	return parse_len(line, strlen(line), r, e);
}

static int
contains(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

/* s with control and non-ASCII bytes escaped, for a one-line TAP name. */
static const char *
printable(const char *s, size_t len)
{
	static char buf[4][512];
	static int which;
	char *out = buf[which++ % 4];
	size_t i, o = 0;

	for (i = 0; i < len && o + 8 < sizeof buf[0]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	if (i < len)
		o += (size_t)snprintf(out + o, 4, "...");
	out[o] = '\0';
	return out;
}

enum idmode { NO_ID, INT_ID, ANY_ID };

/*
 * The line (len bytes) fails with code, a message containing sub (if not
 * NULL) and, per idmode, no e.id, an integer e.id equal to id, or any e.id.
 */
static void
fails_len(const char *line, size_t len, int code, const char *sub,
    enum idmode idmode, int64_t id, const char *name)
{
	struct request r;
	struct request_error e;
	int rc, good, idgood;

	rc = parse_len(line, len, &r, &e);
	switch (idmode) {
	case NO_ID:
		idgood = e.id == NULL;
		break;
	case INT_ID:
		idgood = e.id != NULL &&
		    json_object_is_type(e.id, json_type_int) &&
		    json_object_get_int64(e.id) == id;
		break;
	default:
		idgood = e.id != NULL;
		break;
	}
	good = rc == -1 && e.code == code && e.msg[0] != '\0' && idgood &&
	    (sub == NULL || contains(e.msg, sub));
	ok(good, "%s: %s (%d)", name, protocol_error_name(code), code);
	if (!good) {
		printf("#   line: %s\n", printable(line, len));
		printf("#   rc %d code %d (%s) id %s msg \"%s\"\n", rc, e.code,
		    protocol_error_name(e.code),
		    e.id ? json_object_to_json_string(e.id) : "none", e.msg);
	}
	request_free(&r);
}

static void
fails(const char *line, int code, const char *sub, enum idmode idmode,
    int64_t id, const char *name)
{
	fails_len(line, strlen(line), code, sub, idmode, id, name);
}

/* The line parses; r is left for the caller to inspect and free. */
static int
parses(const char *line, struct request *r, const char *name)
{
	struct request_error e;
	int rc;

	rc = parse(line, r, &e);
	if (!ok(rc == 0, "parses: %s", name))
		printf("#   line: %s\n#   code %d msg \"%s\"\n",
		    printable(line, strlen(line)), e.code, e.msg);
	return rc;
}

static void
test_valid(void)
{
	struct request r;
	char line[512];
	int rc;

	rc = parses("{\"id\":1,\"type\":\"message\",\"channel\":\"C024BE91L\","
	            "\"text\":\"hello\"}",
	    &r, "message");
	ok(rc == 0 && r.kind == REQUEST_MESSAGE, "kind message");
	ok(r.id != NULL && json_object_get_int64(r.id) == 1, "id 1");
	is_str(r.channel, "C024BE91L", "channel");
	is_str(r.text, "hello", "text");
	ok(r.thread_ts == NULL && r.reply_broadcast == 0,
	    "no thread_ts, no reply_broadcast");
	ok(r.obj != NULL && json_object_is_type(r.obj, json_type_object),
	    "obj is the parsed line");
	request_free(&r);
	ok(r.obj == NULL && r.id == NULL && r.channel == NULL,
	    "request_free clears the request");

	rc =
	    parses("{\"id\":2,\"type\":\"message\",\"channel\":\"G1\","
	           "\"text\":\"in thread\",\"thread_ts\":\"1700000000.000100\","
	           "\"reply_broadcast\":true}",
	        &r, "threaded broadcast message");
	is_str(r.thread_ts, "1700000000.000100", "thread_ts");
	is_int(r.reply_broadcast, 1, "reply_broadcast true");
	request_free(&r);

	rc = parses("{\"type\":\"message\",\"channel\":\"D12\",\"text\":\"x\","
	            "\"reply_broadcast\":false}",
	    &r, "reply_broadcast false without thread_ts");
	ok(rc == 0 && r.reply_broadcast == 0 && r.id == NULL,
	    "reply_broadcast 0, no id");
	request_free(&r);

	rc = parses("{\"type\":\"message\",\"channel\":\"C1\",\"text\":\"x\","
	            "\"reply_broadcast\":null,\"thread_ts\":null,\"id\":null}",
	    &r, "null optional members");
	ok(rc == 0 && r.reply_broadcast == 0 && r.thread_ts == NULL &&
	        r.id == NULL,
	    "null members count as absent");
	request_free(&r);

	rc = parses("{\"id\":-5,\"type\":\"message\",\"channel\":\"C1\","
	            "\"text\":\"x\",\"extra\":{\"a\":[1,2,{\"b\":null}]}}",
	    &r, "negative id and unknown members");
	ok(rc == 0 && json_object_get_int64(r.id) == -5, "id -5");
	request_free(&r);

	rc = parses(
	    "{\"id\":9007199254740993,\"type\":\"ping\"}", &r, "a large id");
	ok(rc == 0 && json_object_get_int64(r.id) == 9007199254740993LL,
	    "a large id is exact");
	request_free(&r);

	memset(line, 0, sizeof line);
	strcpy(line, "{\"type\":\"message\",\"text\":\"x\",\"channel\":\"C");
	memset(line + strlen(line), '9', PROTOCOL_MAX_CHANNEL - 1);
	strcat(line, "\"}");
	rc = parses(line, &r, "a channel of PROTOCOL_MAX_CHANNEL bytes");
	ok(rc == 0 && strlen(r.channel) == PROTOCOL_MAX_CHANNEL,
	    "the longest channel");
	request_free(&r);

	rc = parses(
	    "{\"id\":3,\"type\":\"typing\",\"channel\":\"C1\"}", &r, "typing");
	ok(rc == 0 && r.kind == REQUEST_TYPING && r.text == NULL &&
	        strcmp(r.channel, "C1") == 0,
	    "kind typing, channel, no text");
	request_free(&r);

	rc = parses("{\"type\":\"typing\",\"channel\":\"C1\",\"thread_ts\":"
	            "\"1.2\",\"text\":5,\"reply_broadcast\":\"x\"}",
	    &r, "typing ignores text and reply_broadcast");
	ok(rc == 0 && r.thread_ts != NULL && strcmp(r.thread_ts, "1.2") == 0,
	    "typing keeps thread_ts");
	request_free(&r);

	rc = parses("{\"id\":4,\"type\":\"ping\"}", &r, "ping");
	ok(rc == 0 && r.kind == REQUEST_PING, "kind ping");
	request_free(&r);
	rc = parses("{\"type\":\"ping\",\"channel\":\"not checked\",\"x\":[]}",
	    &r, "ping with other members");
	ok(rc == 0 && r.kind == REQUEST_PING && r.id == NULL, "ping, no id");
	request_free(&r);

	rc = parses(
	    "{\"id\":5,\"type\":\"slackd.subscribe\",\"types\":"
	    "[\"message\",\"reaction_added\"],\"channels\":[\"C1\",\"D2\"]}",
	    &r, "subscribe with both lists");
	ok(rc == 0 && r.kind == REQUEST_SUBSCRIBE, "kind subscribe");
	ok(r.types != NULL && json_object_array_length(r.types) == 2 &&
	        strcmp(json_object_get_string(
	                   json_object_array_get_idx(r.types, 1)),
	            "reaction_added") == 0,
	    "types array");
	ok(r.channels != NULL && json_object_array_length(r.channels) == 2,
	    "channels array");
	request_free(&r);

	rc = parses(
	    "{\"type\":\"slackd.subscribe\"}", &r, "subscribe without lists");
	ok(rc == 0 && r.types == NULL && r.channels == NULL,
	    "no lists -> NULL (everything)");
	request_free(&r);
	rc = parses("{\"type\":\"slackd.subscribe\",\"types\":[],\"channels\":"
	            "null}",
	    &r, "subscribe with an empty list and a null");
	ok(rc == 0 && r.types != NULL &&
	        json_object_array_length(r.types) == 0 && r.channels == NULL,
	    "[] is an empty filter, null is none");
	request_free(&r);

	rc = parses("{\"id\":6,\"type\":\"slackd.status\"}", &r, "status");
	ok(rc == 0 && r.kind == REQUEST_STATUS, "kind status");
	request_free(&r);

	rc = parses("  {\"type\":\"ping\"}  \t\r\n", &r,
	    "whitespace around the object");
	request_free(&r);
}

static void
test_bad_json(void)
{
	static const char nul_after[] = "{\"type\":\"ping\"}\0";
	static const char nul_inside[] = "{\"type\":\"pi\0ng\"}";

	fails("hello", PROTOCOL_E_BAD_JSON, "not valid JSON", NO_ID, 0,
	    "not JSON");
	fails("", PROTOCOL_E_BAD_JSON, "not valid JSON", NO_ID, 0,
	    "an empty line");
	fails("   ", PROTOCOL_E_BAD_JSON, NULL, NO_ID, 0, "only spaces");
	fails("{", PROTOCOL_E_BAD_JSON, "ends inside a value", NO_ID, 0,
	    "a lone brace");
	fails("{\"id\":7,\"type\":\"ping\"", PROTOCOL_E_BAD_JSON,
	    "ends inside a value", NO_ID, 0, "truncated (no e.id)");
	fails("{\"id\":7,\"type\":\"ping\"} x", PROTOCOL_E_BAD_JSON, NULL,
	    NO_ID, 0, "trailing garbage");
	fails("{\"type\":\"ping\"}{}", PROTOCOL_E_BAD_JSON, NULL, NO_ID, 0,
	    "two objects");
	fails("{\"type\":\"ping\"}\x0b", PROTOCOL_E_BAD_JSON, NULL, NO_ID, 0,
	    "a vertical tab after the object");
	fails_len(nul_after, sizeof nul_after - 1, PROTOCOL_E_BAD_JSON, NULL,
	    NO_ID, 0, "a NUL byte after the object");
	fails_len(nul_inside, sizeof nul_inside - 1, PROTOCOL_E_BAD_JSON, NULL,
	    NO_ID, 0, "a NUL byte inside a string");
	fails("{'type':'ping'}", PROTOCOL_E_BAD_JSON, NULL, NO_ID, 0,
	    "single quotes");
	fails("{\"type\":'ping'}", PROTOCOL_E_BAD_JSON, NULL, NO_ID, 0,
	    "a single-quoted value");
	fails("{type:\"ping\"}", PROTOCOL_E_BAD_JSON, NULL, NO_ID, 0,
	    "a bare key");
	fails("{\"type\":\"ping\",}", PROTOCOL_E_BAD_JSON, NULL, NO_ID, 0,
	    "a trailing comma");
	fails("{\"type\":\"ping\" /* c */}", PROTOCOL_E_BAD_JSON, NULL, NO_ID,
	    0, "a comment");
	fails("{\"type\":\"ping\",\"x\":01}", PROTOCOL_E_BAD_JSON, NULL, NO_ID,
	    0, "a leading zero");
	fails("{\"type\":\"ping\",\"x\":\"\\q\"}", PROTOCOL_E_BAD_JSON, NULL,
	    NO_ID, 0, "a bad escape");
	fails("{\"type\":\"ping\",\"x\":True}", PROTOCOL_E_BAD_JSON, NULL,
	    NO_ID, 0, "True");
	fails("{\"type\":\"ping\"} oops", PROTOCOL_E_BAD_JSON, "(\"oops\")",
	    NO_ID, 0, "the message quotes the text where parsing stopped");
	fails("{\"type\":\"ping\",\"x\":\"\\q\"}", PROTOCOL_E_BAD_JSON,
	    "(\"q?}\")", NO_ID, 0, "quotes in the excerpt are replaced");
#if SIZE_MAX > 0x7fffffffUL
	/* The length is checked before the line is read. */
	fails_len("{}", (size_t)INT32_MAX + 1, PROTOCOL_E_LINE_TOO_LONG, NULL,
	    NO_ID, 0, "a line over INT32_MAX bytes");
#endif
}

static void
test_not_object(void)
{
	fails("[1,2]", PROTOCOL_E_NOT_OBJECT, "JSON object", NO_ID, 0,
	    "an array");
	fails("[]", PROTOCOL_E_NOT_OBJECT, NULL, NO_ID, 0, "an empty array");
	fails("[{\"id\":1,\"type\":\"ping\"}]", PROTOCOL_E_NOT_OBJECT, NULL,
	    NO_ID, 0, "a request inside an array");
	fails("\"ping\"", PROTOCOL_E_NOT_OBJECT, NULL, NO_ID, 0, "a string");
	fails("42 ", PROTOCOL_E_NOT_OBJECT, NULL, NO_ID, 0,
	    "a number followed by a space");
	fails("42", PROTOCOL_E_NOT_OBJECT, NULL, NO_ID, 0, "a number");
	fails("-1.5e3", PROTOCOL_E_NOT_OBJECT, NULL, NO_ID, 0,
	    "a negative float");
	fails("true", PROTOCOL_E_NOT_OBJECT, NULL, NO_ID, 0, "true");
	fails("false", PROTOCOL_E_NOT_OBJECT, NULL, NO_ID, 0, "false");
	/*
	 * Regression test for a fixed bug: json-c represents a JSON null as a
	 * NULL object, and request_parse() takes r->obj == NULL to mean a parse
	 * error: "null" gives PROTOCOL_E_BAD_JSON "not valid JSON: the line
	 * ends inside a value" (the stale jerr from the first
	 * json_tokener_parse_ex()) and "null " gives PROTOCOL_E_BAD_JSON "not
	 * valid JSON: success at byte 5".  Both are valid JSON that is not an
	 * object: PROTOCOL_E_NOT_OBJECT.
	 */
	fails("null", PROTOCOL_E_NOT_OBJECT, NULL, NO_ID, 0, "null");
	fails("null ", PROTOCOL_E_NOT_OBJECT, NULL, NO_ID, 0,
	    "null followed by a space");
}

/* {"type":"ping","x":[[...]]}: depth containers counting the object. */
static char *
nested(int depth, const char *leaf)
{
	size_t cap = (size_t)depth * 2 + strlen(leaf) + 32;
	char *s = xmalloc(cap), *p = s;
	int i;

	p += sprintf(p, "{\"type\":\"ping\",\"x\":");
	for (i = 1; i < depth; i++)
		*p++ = '[';
	p += sprintf(p, "%s", leaf);
	for (i = 1; i < depth; i++)
		*p++ = ']';
	*p++ = '}';
	*p = '\0';
	return s;
}

static void
test_depth(void)
{
	struct request r;
	struct request_error e;
	char *s;
	int rc;

	s = nested(8, "1");
	rc = parse(s, &r, &e);
	ok(rc == 0, "nesting of 8 is fine");
	request_free(&r);
	free(s);

	s = nested(PROTOCOL_MAX_DEPTH, "");
	rc = parse(s, &r, &e);
	ok(rc == 0, "nesting of PROTOCOL_MAX_DEPTH (%d) empty arrays is fine",
	    PROTOCOL_MAX_DEPTH);
	request_free(&r);
	free(s);

	/*
	 * Regression test for a fixed bug:
	 * json_tokener_new_ex(PROTOCOL_MAX_DEPTH) counts the innermost scalar
	 * as a level too, so 16 nested containers holding a value are refused
	 * with "nested more than 16 levels deep" while 16 holding nothing are
	 * accepted.  The depth limit is off by one
	 * (json_tokener_new_ex(PROTOCOL_MAX_DEPTH + 1) would match the
	 * message and jscan_object()'s counting).
	 */
	s = nested(PROTOCOL_MAX_DEPTH, "1");
	rc = parse(s, &r, &e);
	ok(rc == 0, "nesting of PROTOCOL_MAX_DEPTH (%d) around a value is fine",
	    PROTOCOL_MAX_DEPTH);
	if (rc != 0)
		printf("#   %s\n", e.msg);
	request_free(&r);
	free(s);

	s = nested(PROTOCOL_MAX_DEPTH + 1, "");
	fails(s, PROTOCOL_E_BAD_JSON, "nested more than", NO_ID, 0,
	    "nesting of PROTOCOL_MAX_DEPTH + 1 empty arrays");
	free(s);
	s = nested(PROTOCOL_MAX_DEPTH + 1, "1");
	fails(s, PROTOCOL_E_BAD_JSON, "nested more than 16 levels", NO_ID, 0,
	    "nesting of PROTOCOL_MAX_DEPTH + 1 around a value");
	free(s);
	s = nested(5000, "");
	fails(s, PROTOCOL_E_BAD_JSON, "nested", NO_ID, 0, "nesting of 5000");
	free(s);
}

static void
test_utf8(void)
{
#define MSG(t)                                                                 \
	"{\"id\":1,\"type\":\"message\",\"channel\":\"C1\",\"text\":\"" t "\"" \
	"}"
	static const char *caught[] = { MSG("\x80"), MSG("\xbf"), MSG("\xff"),
		MSG("\xfe"), MSG("\xc3"), MSG("\xe2\x82"),
		MSG("\xf8\x88\x80\x80"
		    "\x80"),
		"{\"id\":1,\"type\":\"message\",\"channel\":\"C\xc3\","
		"\"text\":\"x\"}" };
	static const char *invalid[] = { MSG("\xc0\xaf"), MSG("\xc1\xbf"),
		MSG("\xe0\x80\xaf"), MSG("\xed\xa0\x80"), MSG("\xed\xbf\xbf"),
		MSG("\xf0\x80\x80\xaf"), MSG("\xf4\x90\x80\x80"),
		MSG("\xf5\x80\x80\x80") };
	static const char *controls[] = { MSG("a\tb"),
		MSG("a\x01"
		    "b"),
		MSG("\x1f") };
	static const char *numbers[] = {
		"{\"type\":\"ping\",\"x\":NaN}",
		"{\"type\":\"ping\",\"x\":Infinity}",
		"{\"type\":\"ping\",\"x\":-Infinity}",
		"{\"type\":\"ping\",\"x\":00}",
		"{\"type\":\"ping\",\"x\":-01}",
		"{\"type\":\"ping\",\"x\":1.}",
	};
	struct request r;
	struct request_error e;
	size_t i, accepted;
	char name[64];

	for (i = 0; i < nitems(caught); i++) {
		snprintf(name, sizeof name, "invalid UTF-8 #%zu", i + 1);
		fails(caught[i], PROTOCOL_E_BAD_JSON, NULL, NO_ID, 0, name);
	}
	(void)parses(MSG("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
	                 "\xf4\x8f\xbf\xbf"),
	    &r, "valid UTF-8 up to U+10FFFF");
	request_free(&r);

	/*
	 * Regression test for a fixed bug: json-c 0.16's
	 * JSON_TOKENER_VALIDATE_UTF8 checks only the lead/continuation byte
	 * structure, so request_parse() accepts overlong forms (C0 AF),
	 * UTF-8-encoded surrogates (ED A0 80), code points above U+10FFFF (F4
	 * 90 80 80) and lead bytes F5..F7, and request_frame() then copies
	 * those bytes into the RTM frame: a local client can make the daemon
	 * send invalid UTF-8 in a WebSocket text frame to Slack (which must
	 * fail the connection, RFC 6455 §8.1). The same json-c "strict" mode
	 * also accepts raw control characters in strings, NaN/Infinity and
	 * numbers like 00, -01 and 1.  Checking the line with
	 * jscan_object(line, len, PROTOCOL_MAX_DEPTH, ...) before json-c would
	 * make the parse as strict as documented.
	 */
	for (i = 0, accepted = 0; i < nitems(invalid); i++) {
		if (parse(invalid[i], &r, &e) == 0) {
			accepted++;
			printf("#   accepted: %s\n",
			    printable(invalid[i], strlen(invalid[i])));
		}
		request_free(&r);
	}
	is_int(accepted, 0,
	    "overlong, surrogate and out-of-range UTF-8 is "
	    "refused");
	for (i = 0, accepted = 0; i < nitems(controls); i++) {
		if (parse(controls[i], &r, &e) == 0) {
			accepted++;
			printf("#   accepted: %s\n",
			    printable(controls[i], strlen(controls[i])));
		}
		request_free(&r);
	}
	is_int(accepted, 0, "raw control characters in strings are refused");
	for (i = 0, accepted = 0; i < nitems(numbers); i++) {
		if (parse(numbers[i], &r, &e) == 0) {
			accepted++;
			printf("#   accepted: %s\n", numbers[i]);
		}
		request_free(&r);
	}
	is_int(accepted, 0, "NaN, Infinity and malformed numbers are refused");
#undef MSG
}

static void
test_fields(void)
{
	static const char *bad_ts[] = { "1700000000", "1700000000.", ".000100",
		"abc", "1700000000.000100x", "1.2.3", "", " 1.2", "1.2 ",
		"-1.2", "1,2", "123456789012345678901.12345678901" };
	char line[1024], name[96];
	size_t i;
	int n;

	fails("{\"id\":5,\"type\":\"message\",\"channel\":\"C1\",\"text\":"
	      "\"a\\u0000b\"}",
	    PROTOCOL_E_BAD_REQUEST, "\"text\" contains a NUL", INT_ID, 5,
	    "\\u0000 in text");
	fails("{\"id\":5,\"type\":\"message\",\"channel\":\"C1\\u0000\","
	      "\"text\":\"x\"}",
	    PROTOCOL_E_BAD_REQUEST, "\"channel\" contains a NUL", INT_ID, 5,
	    "\\u0000 in channel");
	fails("{\"id\":5,\"type\":\"message\",\"channel\":\"C1\",\"text\":"
	      "\"x\",\"thread_ts\":\"1.2\\u0000\"}",
	    PROTOCOL_E_BAD_REQUEST, "NUL", INT_ID, 5, "\\u0000 in thread_ts");
	fails("{\"id\":5,\"type\":\"ping\\u0000x\"}", PROTOCOL_E_BAD_REQUEST,
	    "\"type\" contains a NUL", INT_ID, 5, "\\u0000 in type");

	fails("{\"id\":6,\"type\":\"bogus\"}", PROTOCOL_E_UNKNOWN_TYPE,
	    "unknown type \"bogus\"", INT_ID, 6, "an unknown type");
	/* The list comes from request.c's table; slackd.debug is not in it. */
	fails("{\"id\":6,\"type\":\"bogus\"}", PROTOCOL_E_UNKNOWN_TYPE,
	    "unknown type \"bogus\" (slackd handles message, typing, ping, " PROTOCOL_SUBSCRIBE
	    ", " PROTOCOL_STATUS ", " PROTOCOL_POST ", " PROTOCOL_API
	    ", " PROTOCOL_NAMES ", " PROTOCOL_ACK ")",
	    INT_ID, 6,
	    "the unknown-type error lists the types clients may send");
	fails("{\"id\":7,\"type\":\"slackd.ack\"}", PROTOCOL_E_BAD_REQUEST,
	    "needs the \"envelope_id\"", INT_ID, 7, "slackd.ack without an id");
	fails("{\"id\":7,\"type\":\"slackd.ack\",\"envelope_id\":\"e\","
	      "\"payload\":[1]}",
	    PROTOCOL_E_BAD_REQUEST, "\"payload\" must be an object", INT_ID, 7,
	    "slackd.ack with a payload that is not an object");
	{
		struct request r;
		struct request_error e;

		parse("{\"type\":\"bogus\"}", &r, &e);
		ok(strstr(e.msg, PROTOCOL_DEBUG) == NULL,
		    "the test hook type is not advertised");
		request_free(&r);
	}
	fails("{\"type\":\"Message\"}", PROTOCOL_E_UNKNOWN_TYPE, "\"Message\"",
	    NO_ID, 0, "types are case-sensitive");
	fails("{\"id\":6,\"type\":\"\"}", PROTOCOL_E_UNKNOWN_TYPE,
	    "unknown type \"\"", INT_ID, 6, "an empty type");
	snprintf(line, sizeof line, "{\"id\":6,\"type\":\"%0200d\"}", 7);
	fails(line, PROTOCOL_E_UNKNOWN_TYPE, "unknown type", INT_ID, 6,
	    "a 200-byte type (message truncated)");
	fails("{\"id\":7}", PROTOCOL_E_BAD_REQUEST, "no \"type\"", INT_ID, 7,
	    "missing type");
	fails("{\"id\":7,\"type\":null}", PROTOCOL_E_BAD_REQUEST, "no \"type\"",
	    INT_ID, 7, "null type");
	fails("{}", PROTOCOL_E_BAD_REQUEST, "no \"type\"", NO_ID, 0,
	    "an empty object");
	fails("{\"id\":8,\"type\":5}", PROTOCOL_E_BAD_REQUEST,
	    "\"type\" must be a string", INT_ID, 8, "a number type");
	fails("{\"id\":8,\"type\":[\"ping\"]}", PROTOCOL_E_BAD_REQUEST,
	    "\"type\" must be a string", INT_ID, 8, "an array type");

	fails("{\"id\":\"9\",\"type\":\"ping\"}", PROTOCOL_E_BAD_REQUEST,
	    "\"id\" must be an integer", ANY_ID, 0, "a string id");
	fails("{\"id\":1.5,\"type\":\"ping\"}", PROTOCOL_E_BAD_REQUEST,
	    "\"id\" must be an integer", ANY_ID, 0, "a float id");
	fails("{\"id\":1.0,\"type\":\"ping\"}", PROTOCOL_E_BAD_REQUEST,
	    "\"id\" must be an integer", ANY_ID, 0, "id 1.0");
	fails("{\"id\":1e3,\"type\":\"ping\"}", PROTOCOL_E_BAD_REQUEST,
	    "\"id\" must be an integer", ANY_ID, 0, "id 1e3");
	fails("{\"id\":true,\"type\":\"ping\"}", PROTOCOL_E_BAD_REQUEST,
	    "\"id\" must be an integer", ANY_ID, 0, "id true");
	fails("{\"id\":{},\"type\":\"ping\"}", PROTOCOL_E_BAD_REQUEST,
	    "\"id\" must be an integer", ANY_ID, 0, "id {}");
	fails("{\"id\":\"9\"}", PROTOCOL_E_BAD_REQUEST, "\"id\"", ANY_ID, 0,
	    "a bad id is reported before a missing type");

	fails("{\"id\":10,\"type\":\"message\",\"text\":\"x\"}",
	    PROTOCOL_E_BAD_REQUEST, "message needs a \"channel\"", INT_ID, 10,
	    "message without channel");
	fails("{\"id\":10,\"type\":\"typing\"}", PROTOCOL_E_BAD_REQUEST,
	    "typing needs a \"channel\"", INT_ID, 10, "typing without channel");
	fails(
	    "{\"id\":10,\"type\":\"message\",\"channel\":null,\"text\":\"x\"}",
	    PROTOCOL_E_BAD_REQUEST, "needs a \"channel\"", INT_ID, 10,
	    "null channel");
	fails("{\"id\":11,\"type\":\"message\",\"channel\":5,\"text\":\"x\"}",
	    PROTOCOL_E_BAD_REQUEST, "\"channel\" must be a string", INT_ID, 11,
	    "a number channel");
	/* Targets: IDs, names with or without '#', @users, user IDs. */
	{
		struct request r;
		int rc;
		static const char *good[] = { "general", "#general",
			"welcome-test", "@alice", "U024BE91L", "W0123",
			"c024be91l", "Cabc", "C12-3", "C\xc3\x89",
			"caf\xc3\xa9", "a.b_c" };
		static const char *bad[] = { "", "#", "@", "a b", "gen,eral",
			"#a#b", "@a@b", "tab\there", "q\"uote" };
		size_t k;

		for (k = 0; k < nitems(good); k++) {
			snprintf(line, sizeof line,
			    "{\"id\":12,\"type\":"
			    "\"message\",\"channel\":\"%s\",\"text\":\"x\"}",
			    good[k]);
			rc = parses(line, &r, "a target");
			ok(rc == 0 && strcmp(r.channel, good[k]) == 0,
			    "target \"%s\" is accepted as is", good[k]);
			request_free(&r);
		}
		for (k = 0; k < nitems(bad); k++) {
			snprintf(line, sizeof line,
			    "{\"id\":12,\"type\":"
			    "\"message\",\"channel\":\"%s\",\"text\":\"x\"}",
			    bad[k]);
			if (strchr(bad[k], '\t') != NULL ||
			    strchr(bad[k], '"') != NULL)
				continue; /* not valid JSON as written */
			fails(line, PROTOCOL_E_BAD_REQUEST,
			    "a channel name such as general", INT_ID, 12,
			    "a bad target");
		}
	}
	n = snprintf(line, sizeof line,
	    "{\"id\":12,\"type\":\"message\","
	    "\"text\":\"x\",\"channel\":\"#");
	memset(line + n, 'a', PROTOCOL_MAX_TARGET);
	snprintf(line + n + PROTOCOL_MAX_TARGET,
	    sizeof line - (size_t)n - PROTOCOL_MAX_TARGET, "\"}");
	fails(line, PROTOCOL_E_BAD_REQUEST, "a channel name", INT_ID, 12,
	    "a target over PROTOCOL_MAX_TARGET bytes");

	fails("{\"id\":13,\"type\":\"message\",\"channel\":\"C1\"}",
	    PROTOCOL_E_BAD_REQUEST, "message needs a non-empty \"text\"",
	    INT_ID, 13, "missing text");
	fails(
	    "{\"id\":13,\"type\":\"message\",\"channel\":\"C1\",\"text\":\"\"}",
	    PROTOCOL_E_BAD_REQUEST, "non-empty \"text\"", INT_ID, 13,
	    "empty text");
	fails("{\"id\":13,\"type\":\"message\",\"channel\":\"C1\",\"text\":"
	      "null}",
	    PROTOCOL_E_BAD_REQUEST, "non-empty \"text\"", INT_ID, 13,
	    "null text");
	fails("{\"id\":14,\"type\":\"message\",\"channel\":\"C1\",\"text\":5}",
	    PROTOCOL_E_BAD_REQUEST, "\"text\" must be a string", INT_ID, 14,
	    "a number text");
	fails("{\"id\":14,\"type\":\"message\",\"channel\":\"C1\",\"text\":"
	      "[\"x\"]}",
	    PROTOCOL_E_BAD_REQUEST, "\"text\" must be a string", INT_ID, 14,
	    "an array text");

	for (i = 0; i < nitems(bad_ts); i++) {
		snprintf(line, sizeof line,
		    "{\"id\":15,\"type\":\"message\","
		    "\"channel\":\"C1\",\"text\":\"x\",\"thread_ts\":\"%s\"}",
		    bad_ts[i]);
		snprintf(name, sizeof name, "thread_ts \"%s\"", bad_ts[i]);
		fails(line, PROTOCOL_E_BAD_REQUEST,
		    "\"thread_ts\" must be a "
		    "message timestamp",
		    INT_ID, 15, name);
	}
	fails("{\"id\":15,\"type\":\"typing\",\"channel\":\"C1\",\"thread_ts\":"
	      "\"x\"}",
	    PROTOCOL_E_BAD_REQUEST, "thread_ts", INT_ID, 15,
	    "typing checks thread_ts too");
	fails("{\"id\":16,\"type\":\"message\",\"channel\":\"C1\",\"text\":"
	      "\"x\",\"thread_ts\":1700000000.0001}",
	    PROTOCOL_E_BAD_REQUEST, "\"thread_ts\" must be a string", INT_ID,
	    16, "a number thread_ts");

	fails("{\"id\":17,\"type\":\"message\",\"channel\":\"C1\",\"text\":"
	      "\"x\",\"thread_ts\":\"1.2\",\"reply_broadcast\":\"yes\"}",
	    PROTOCOL_E_BAD_REQUEST, "\"reply_broadcast\" must be true or false",
	    INT_ID, 17, "reply_broadcast \"yes\"");
	fails("{\"id\":17,\"type\":\"message\",\"channel\":\"C1\",\"text\":"
	      "\"x\",\"thread_ts\":\"1.2\",\"reply_broadcast\":1}",
	    PROTOCOL_E_BAD_REQUEST, "true or false", INT_ID, 17,
	    "reply_broadcast 1");
	fails("{\"id\":18,\"type\":\"message\",\"channel\":\"C1\",\"text\":"
	      "\"x\",\"reply_broadcast\":true}",
	    PROTOCOL_E_BAD_REQUEST, "\"reply_broadcast\" needs a \"thread_ts\"",
	    INT_ID, 18, "reply_broadcast without thread_ts");
}

/* A subscribe line whose key has n entries "e0", "e1", ... */
static char *
subscribe_n(const char *key, int n)
{
	size_t cap = (size_t)n * 10 + 64, o;
	char *s = xmalloc(cap);
	int i;

	o = (size_t)snprintf(s, cap,
	    "{\"id\":20,\"type\":\"slackd.subscribe\","
	    "\"%s\":[",
	    key);
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(
		    s + o, cap - o, "%s\"e%d\"", i ? "," : "", i);
	snprintf(s + o, cap - o, "]}");
	return s;
}

static void
test_subscribe(void)
{
	struct request r;
	char line[512], name[64];
	char *s;
	int rc;

	fails("{\"id\":20,\"type\":\"slackd.subscribe\",\"types\":\"message\"}",
	    PROTOCOL_E_BAD_REQUEST, "\"types\" must be an array of strings",
	    INT_ID, 20, "types not an array");
	fails("{\"id\":20,\"type\":\"slackd.subscribe\",\"channels\":{}}",
	    PROTOCOL_E_BAD_REQUEST, "\"channels\" must be an array", INT_ID, 20,
	    "channels not an array");
	fails("{\"id\":20,\"type\":\"slackd.subscribe\",\"types\":[\"a\"],"
	      "\"channels\":5}",
	    PROTOCOL_E_BAD_REQUEST, "\"channels\"", INT_ID, 20,
	    "good types, bad channels");
	fails("{\"id\":20,\"type\":\"slackd.subscribe\",\"types\":[1]}",
	    PROTOCOL_E_BAD_REQUEST,
	    "\"types\" entries must be strings of 1 to "
	    "63 bytes",
	    INT_ID, 20, "a number entry");
	fails(
	    "{\"id\":20,\"type\":\"slackd.subscribe\",\"types\":[\"a\",null]}",
	    PROTOCOL_E_BAD_REQUEST, "entries must be strings", INT_ID, 20,
	    "a null entry");
	fails(
	    "{\"id\":20,\"type\":\"slackd.subscribe\",\"channels\":[[\"C1\"]]}",
	    PROTOCOL_E_BAD_REQUEST, "\"channels\" entries", INT_ID, 20,
	    "a nested array entry");
	fails("{\"id\":20,\"type\":\"slackd.subscribe\",\"types\":[\"\"]}",
	    PROTOCOL_E_BAD_REQUEST, "entries must be strings", INT_ID, 20,
	    "an empty entry");
	fails("{\"id\":20,\"type\":\"slackd.subscribe\",\"types\":[\"a\\u0000"
	      "b\"]}",
	    PROTOCOL_E_BAD_REQUEST, "entries must be strings", INT_ID, 20,
	    "an entry with \\u0000");

	snprintf(line, sizeof line,
	    "{\"type\":\"slackd.subscribe\",\"types\":"
	    "[\"%0*d\"]}",
	    JSCAN_FIELD - 1, 0);
	rc = parses(line, &r, "an entry of JSCAN_FIELD - 1 bytes");
	request_free(&r);
	snprintf(line, sizeof line,
	    "{\"id\":20,\"type\":\"slackd.subscribe\","
	    "\"types\":[\"%0*d\"]}",
	    JSCAN_FIELD, 0);
	fails(line, PROTOCOL_E_BAD_REQUEST, "entries must be strings", INT_ID,
	    20, "an entry of JSCAN_FIELD bytes");

	s = subscribe_n("types", PROTOCOL_MAX_FILTERS);
	snprintf(name, sizeof name, "%d types", PROTOCOL_MAX_FILTERS);
	rc = parses(s, &r, name);
	ok(rc == 0 && r.types != NULL &&
	        (int)json_object_array_length(r.types) == PROTOCOL_MAX_FILTERS,
	    "PROTOCOL_MAX_FILTERS entries are kept");
	request_free(&r);
	free(s);
	s = subscribe_n("channels", PROTOCOL_MAX_FILTERS + 1);
	snprintf(name, sizeof name, "%d entries", PROTOCOL_MAX_FILTERS + 1);
	fails(s, PROTOCOL_E_BAD_REQUEST,
	    "\"channels\" has 257 entries, at most "
	    "256 are allowed",
	    INT_ID, 20, name);
	free(s);
	s = subscribe_n("types", 5000);
	fails(s, PROTOCOL_E_BAD_REQUEST, "5000 entries", INT_ID, 20,
	    "5000 entries");
	free(s);
}

/* Parse a line and build its frame with the given Slack-side id. */
static char *
frame_of(const char *line, int64_t id, size_t *len, struct request *r)
{
	struct request_error e;

	*len = 0;
	if (parse(line, r, &e) != 0) {
		printf("#   parse failed: %s\n", e.msg);
		return NULL;
	}
	return request_frame(r, r->channel, id, len);
}

static const char *
member_string(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static void
test_frame(void)
{
	struct request r;
	struct json_object *o, *v;
	struct jscan js;
	char *f;
	size_t len;

	f = frame_of("{\"id\":1,\"type\":\"message\",\"channel\":\"C024BE91L\","
	             "\"text\":\"hi\",\"extra\":[1,2]}",
	    42, &len, &r);
	is_str(f,
	    "{\"id\":42,\"type\":\"message\",\"channel\":\"C024BE91L\","
	    "\"text\":\"hi\"}",
	    "a message frame, exactly");
	ok(f != NULL && len == strlen(f), "*len is the frame's length");
	ok(f != NULL && jscan_object(f, len, PROTOCOL_MAX_DEPTH, &js) == 0 &&
	        js.spaces == 0 && strcmp(js.type, "message") == 0,
	    "the frame is compact, strict JSON (jscan)");
	ok(f != NULL && strstr(f, "thread_ts") == NULL &&
	        strstr(f, "reply_broadcast") == NULL,
	    "no thread_ts or reply_broadcast when not given");
	free(f);
	request_free(&r);

	f = frame_of(
	    "{\"type\":\"message\",\"channel\":\"C1\",\"text\":\"say "
	    "\\\"hi\\\"\\nC:\\\\dir/sub\\t\\u00e9 \\ud83d\\ude00 \\u0001\\u001f"
	    "</script>\",\"thread_ts\":\"1700000000.000100\","
	    "\"reply_broadcast\":true}",
	    7, &len, &r);
	ok(f != NULL, "a frame with escapes");
	if (f == NULL) {
		request_free(&r);
		return;
	}
	ok(strstr(f,
	       "\"text\":\"say \\\"hi\\\"\\nC:\\\\dir/sub\\t\xc3\xa9 "
	       "\xf0\x9f\x98\x80 \\u0001\\u001f</script>\"") != NULL,
	    "quotes, newline, backslash, tab and controls escaped; '/' and "
	    "UTF-8 not");
	if (strstr(f, "say") == NULL || strstr(f, "\\/") != NULL)
		printf("#   frame: %s\n", printable(f, len));
	ok(strstr(f, "\\/") == NULL, "'/' is not escaped (NOSLASHESCAPE)");
	ok(strchr(f, '\n') == NULL, "the frame is one line");
	ok(jscan_object(f, len, PROTOCOL_MAX_DEPTH, &js) == 0 && !js.spaces,
	    "the escaped frame is compact, strict JSON");
	o = json_tokener_parse(f);
	ok(o != NULL, "json-c parses the frame");
	ok(json_object_object_get_ex(o, "id", &v) &&
	        json_object_is_type(v, json_type_int) &&
	        json_object_get_int64(v) == 7,
	    "the frame has the given id");
	is_str(member_string(o, "type"), "message", "re-parsed type");
	is_str(member_string(o, "channel"), "C1", "re-parsed channel");
	is_str(member_string(o, "text"), r.text,
	    "re-parsed text is the request's text, byte for byte");
	is_str(member_string(o, "thread_ts"), "1700000000.000100",
	    "re-parsed thread_ts");
	ok(json_object_object_get_ex(o, "reply_broadcast", &v) &&
	        json_object_is_type(v, json_type_boolean) &&
	        json_object_get_boolean(v),
	    "re-parsed reply_broadcast true");
	is_int(json_object_object_length(o), 6, "and nothing else");
	json_object_put(o);
	free(f);
	request_free(&r);

	f = frame_of("{\"type\":\"message\",\"channel\":\"C1\",\"text\":\"x\","
	             "\"thread_ts\":\"1.2\",\"reply_broadcast\":false}",
	    3, &len, &r);
	ok(f != NULL && strstr(f, "\"thread_ts\":\"1.2\"") != NULL &&
	        strstr(f, "reply_broadcast") == NULL,
	    "reply_broadcast false is omitted, thread_ts kept");
	free(f);
	request_free(&r);

	f = frame_of(
	    "{\"id\":5,\"type\":\"typing\",\"channel\":\"D1\",\"text\":"
	    "\"ignored\"}",
	    9, &len, &r);
	is_str(f, "{\"id\":9,\"type\":\"typing\",\"channel\":\"D1\"}",
	    "a typing frame has no text");
	free(f);
	request_free(&r);

	f = frame_of("{\"type\":\"typing\",\"channel\":\"D1\",\"thread_ts\":"
	             "\"1.2\"}",
	    0, &len, &r);
	is_str(f,
	    "{\"id\":0,\"type\":\"typing\",\"channel\":\"D1\","
	    "\"thread_ts\":\"1.2\"}",
	    "a typing frame in a thread, id 0");
	free(f);
	request_free(&r);

	f = frame_of("{\"type\":\"message\",\"channel\":\"C1\",\"text\":\"x\"}",
	    INT64_MAX, &len, &r);
	ok(f != NULL && strncmp(f, "{\"id\":9223372036854775807,", 26) == 0,
	    "the largest id");
	free(f);
	request_free(&r);
}

/* ---- fuzz-style loop ---------------------------------------------------- */

static uint64_t rng_state = 0x0ddba11cafe5eedULL;

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

static size_t
mutate(char *s, size_t len, size_t cap)
{
	static const char alphabet[] = "{}[]\",:\\u0123456789.-eE tfnl"
	                               "CGDidtypemsagchnl_x";
	unsigned k, m = rnd_n(4) + 1;
	size_t pos;

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
				s[pos] = alphabet[rnd_n(sizeof alphabet - 1)];
				len++;
			}
			break;
		case 2:
			if (len > 0)
				s[pos] = rnd_n(8) == 0
				    ? (char)rnd_n(256)
				    : alphabet[rnd_n(sizeof alphabet - 1)];
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
test_fuzz(void)
{
	static const char *seeds[] = {
		"{\"id\":1,\"type\":\"message\",\"channel\":\"C024BE91L\","
		"\"text\":\"hello \\u00e9\"}",
		"{\"id\":2,\"type\":\"message\",\"channel\":\"G1\",\"text\":"
		"\"x\",\"thread_ts\":\"1700000000.000100\","
		"\"reply_broadcast\":true}",
		"{\"id\":3,\"type\":\"typing\",\"channel\":\"D1\"}",
		"{\"id\":4,\"type\":\"ping\"}",
		"{\"id\":5,\"type\":\"slackd.subscribe\",\"types\":["
		"\"message\"],"
		"\"channels\":[\"C1\"]}",
		"{\"type\":\"slackd.status\"}",
	};
	struct request r;
	struct request_error e;
	struct json_object *o;
	char buf[512], why[200], *f;
	size_t i, j, len, flen, bad = 0, zero = 0, frames = 0;
	int rc;

	for (i = 0; i < 6000; i++) {
		if (i % 3 == 0) {
			len = rnd_n(80);
			for (j = 0; j < len; j++)
				buf[j] = (char)rnd_n(256);
			buf[len] = '\0';
		} else {
			snprintf(
			    buf, sizeof buf, "%s", seeds[rnd_n(nitems(seeds))]);
			len = mutate(buf, strlen(buf), sizeof buf);
		}
		rc = parse_len(buf, len, &r, &e);
		if (rc == 0) {
			zero++;
			if (r.obj == NULL || r.kind >= REQUEST_NKINDS)
				bad++;
			else if (r.kind == REQUEST_MESSAGE ||
			    r.kind == REQUEST_TYPING) {
				if (r.channel == NULL ||
				    request_check_target(
				        r.channel, why, sizeof why) != 0 ||
				    (r.kind == REQUEST_MESSAGE &&
				        (r.text == NULL || *r.text == '\0')))
					bad++;
				f = request_frame(
				    &r, r.channel, (int64_t)i, &flen);
				frames++;
				o = json_tokener_parse(f);
				if (flen != strlen(f) || o == NULL ||
				    !json_object_is_type(o, json_type_object))
					bad++;
				json_object_put(o);
				free(f);
			}
		} else if (rc != -1 || e.msg[0] == '\0' ||
		    memchr(e.msg, '\0', sizeof e.msg) == NULL ||
		    e.code < PROTOCOL_E_BAD_JSON ||
		    e.code > PROTOCOL_E_SLACK_API ||
		    (e.id != NULL && r.obj == NULL))
			bad++;
		if (rc != 0 && rc != -1)
			bad++;
		request_free(&r);
	}
	is_int(bad, 0,
	    "6000 random/mutated lines: rc 0 with a usable "
	    "request or -1 with a code and message");
	ok(zero > 100 && frames > 50,
	    "some mutated lines still parse (%zu, "
	    "%zu frames)",
	    zero, frames);
}

int
main(void)
{
	test_valid();
	test_bad_json();
	test_not_object();
	test_depth();
	test_utf8();
	test_fields();
	test_subscribe();
	test_frame();
	test_fuzz();
	return tap_done();
}
