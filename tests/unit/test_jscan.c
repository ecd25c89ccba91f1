/*
 * Unit tests for daemon/jscan.c: the one-pass validator and field picker
 * for frames from Slack, jscan_compact(), and a randomized differential
 * check against json-c's strict tokener.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "slackd.h"
#include "tap.h"

#define DEPTH 16

static int
scan_len(const char *s, size_t len, struct jscan *js)
{
	return jscan_object(s, len, DEPTH, js);
}

static int
scan(const char *s, struct jscan *js)
{
	return scan_len(s, strlen(s), js);
}

/* Print s as a TAP diagnostic with non-printable bytes escaped. */
static void
diag_bytes(const char *what, const char *s, size_t len)
{
	size_t i;

	printf("#   %s: \"", what);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	printf("\" (%zu bytes)\n", len);
}

static void
accepts(const char *s, const char *name)
{
	struct jscan js;

	if (!ok(scan(s, &js) == 0 && js.error == NULL, "accepts %s", name)) {
		diag_bytes("input", s, strlen(s));
		printf("#   error \"%s\" at %zu\n", js.error ? js.error : "",
		    js.error_at);
	}
}

/* Refused, and (when why is not NULL) for that reason. */
static void
refuses(const char *s, const char *why, const char *name)
{
	struct jscan js;
	int rc = scan(s, &js);

	if (!ok(rc == -1 && js.error != NULL && js.error_at <= strlen(s) &&
	            (why == NULL || strcmp(js.error, why) == 0),
	        "refuses %s", name)) {
		diag_bytes("input", s, strlen(s));
		printf("#   rc %d, error \"%s\" at %zu\n", rc,
		    js.error ? js.error : "(none)", js.error_at);
	}
}

static void
test_valid(void)
{
	struct jscan js;

	accepts("{}", "{}");
	accepts(" \t\r\n{ \t\r\n} \t\r\n", "{} with all four kinds of space");
	accepts("{\"a\":1}", "one member");
	accepts("{\"a\":[1,-2.5e+3,true,false,null,\"s\",{},[]],\"b\":{\"c\":"
	        "{\"d\":[[]]}}}",
	    "every kind of value");
	accepts("{\"\":\"\"}", "empty key and value");
	accepts("{\"a\":1,\"a\":2}", "a duplicate key");
	accepts("{\"k\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\"}",
	    "every escape");
	accepts("{\"k\":\"\x7f\"}", "DEL in a string");
	accepts("{\"k\":\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80"
	        "\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"}",
	    "UTF-8 at every length boundary");
	accepts("{\"k\":[0,-0,1,-1,10,1.5,-1.5,0.0,1e5,1E5,1e+5,1e-5,0e0,"
	        "1.25E-07,123456789012345678901234567890,1e999]}",
	    "numbers");

	ok(scan("{\"type\":\"message\",\"channel\":\"C024BE91L\","
	        "\"reply_to\":42,\"ok\":true,\"text\":\"hi\"}",
	       &js) == 0,
	    "a typical event parses");
	is_str(js.type, "message", "type");
	is_str(js.channel, "C024BE91L", "channel");
	ok(js.has_reply_to == 1 && js.reply_to == 42, "reply_to 42");
	ok(js.has_ok == 1 && js.ok == 1, "ok true");
	ok(js.spaces == 0 && js.error == NULL, "no spaces, no error");

	ok(scan("{\"ok\":false}", &js) == 0 && js.has_ok && js.ok == 0,
	    "ok false");
	ok(scan("{\"ok\":1}", &js) == 0 && js.has_ok == 0, "ok 1 is no ok");
	ok(scan("{\"ok\":\"true\"}", &js) == 0 && js.has_ok == 0,
	    "ok \"true\" is no ok");
	ok(scan("{\"ok\":null}", &js) == 0 && js.has_ok == 0,
	    "ok null is no ok");
	ok(scan("{\"x\":1}", &js) == 0 && js.type[0] == '\0' &&
	        js.channel[0] == '\0' && !js.has_reply_to && !js.has_ok,
	    "no routed fields: all empty");
	ok(scan("{\"type\":5,\"channel\":{\"id\":\"C1\"}}", &js) == 0 &&
	        js.type[0] == '\0' && js.channel[0] == '\0',
	    "non-string type and channel are empty");
	ok(scan("{\"type\":\"a\",\"type\":\"bb\"}", &js) == 0 &&
	        strcmp(js.type, "bb") == 0,
	    "the last duplicate type wins");
	ok(scan("{\"type\":\"longer\",\"type\":\"x\"}", &js) == 0 &&
	        strcmp(js.type, "x") == 0,
	    "a shorter later type is terminated");
	ok(scan("{\"type\":\"\"}", &js) == 0 && js.type[0] == '\0',
	    "empty type");
	ok(scan("{\"types\":\"a\",\"typ\":\"b\",\"Type\":\"c\"}", &js) == 0 &&
	        js.type[0] == '\0',
	    "only the exact key \"type\" counts");
	ok(scan("{\"a\":{\"type\":\"x\",\"channel\":\"C1\",\"reply_to\":1,"
	        "\"ok\":true},\"b\":[{\"type\":\"y\"}]}",
	       &js) == 0 &&
	        js.type[0] == '\0' && js.channel[0] == '\0' &&
	        !js.has_reply_to && !js.has_ok,
	    "nested routed keys are ignored");
	ok(scan("{\"a\":{\"type\":\"inner\"},\"type\":\"outer\"}", &js) == 0 &&
	        strcmp(js.type, "outer") == 0,
	    "top-level type after a nested one");
}

static void
test_escapes(void)
{
	char in[256], want[JSCAN_FIELD + 8];
	struct jscan js;

	ok(scan("{\"type\":\"mes\\u0073age\"}", &js) == 0 &&
	        strcmp(js.type, "message") == 0,
	    "\\u0073 decodes in a value");
	ok(scan("{\"channel\":\"\\u0043\\u0030\\u0031\"}", &js) == 0 &&
	        strcmp(js.channel, "C01") == 0,
	    "all-escaped channel");
	ok(scan("{\"type\":\"a\\\"b\\\\c\\/d\\n\\t\"}", &js) == 0 &&
	        strcmp(js.type, "a\"b\\c/d\n\t") == 0,
	    "simple escapes decode");
	ok(scan("{\"type\":\"\\u00e9\\u20AC\"}", &js) == 0 &&
	        strcmp(js.type, "\xc3\xa9\xe2\x82\xac") == 0,
	    "\\u escapes become UTF-8 (2 and 3 bytes)");
	ok(scan("{\"type\":\"\\ud83d\\ude00\"}", &js) == 0 &&
	        strcmp(js.type, "\xf0\x9f\x98\x80") == 0,
	    "a surrogate pair becomes one 4-byte character");
	ok(scan("{\"type\":\"\\uDBFF\\uDFFF\"}", &js) == 0 &&
	        strcmp(js.type, "\xf4\x8f\xbf\xbf") == 0,
	    "the highest surrogate pair (upper-case hex)");
	ok(scan("{\"type\":\"\xc3\xa9t\xc3\xa9\"}", &js) == 0 &&
	        strcmp(js.type, "\xc3\xa9t\xc3\xa9") == 0,
	    "raw UTF-8 is kept");
	ok(scan("{\"type\":\"a\\u0000b\"}", &js) == 0 && js.type[0] == '\0',
	    "a value with \\u0000 is not captured");

	/*
	 * Regression test for a fixed bug: member names are compared raw, so an
	 * escaped key such as "t\u0079pe" (which is the key "type" in JSON) is
	 * not recognised and the frame routes as having no type.
	 */
	ok(scan("{\"t\\u0079pe\":\"message\",\"ch\\u0061nnel\":\"C1\"}", &js) ==
	            0 &&
	        strcmp(js.type, "message") == 0 &&
	        strcmp(js.channel, "C1") == 0,
	    "escaped keys \"t\\u0079pe\"/\"ch\\u0061nnel\" are type/channel");

	/* Capture limits: JSCAN_FIELD - 1 bytes fit, one more does not. */
	memset(want, 'x', JSCAN_FIELD - 1);
	want[JSCAN_FIELD - 1] = '\0';
	snprintf(in, sizeof in, "{\"type\":\"%s\"}", want);
	ok(scan(in, &js) == 0 && strcmp(js.type, want) == 0,
	    "a %d-byte type is kept", JSCAN_FIELD - 1);
	snprintf(in, sizeof in, "{\"type\":\"%sx\",\"channel\":\"%sx\"}", want,
	    want);
	ok(scan(in, &js) == 0 && js.type[0] == '\0' && js.channel[0] == '\0',
	    "a %d-byte type or channel becomes \"\"", JSCAN_FIELD);
	want[JSCAN_FIELD - 3] = '\0'; /* 61 bytes + a 2-byte character */
	snprintf(in, sizeof in, "{\"type\":\"%s\xc3\xa9\"}", want);
	ok(scan(in, &js) == 0 && strlen(js.type) == JSCAN_FIELD - 1,
	    "61 bytes + a 2-byte character fit");
	snprintf(in, sizeof in, "{\"type\":\"%sx\xc3\xa9\"}", want);
	ok(scan(in, &js) == 0 && js.type[0] == '\0',
	    "62 bytes + a 2-byte character do not");
	snprintf(in, sizeof in, "{\"type\":\"%sx\\u00e9\"}", want);
	ok(scan(in, &js) == 0 && js.type[0] == '\0',
	    "62 bytes + an escaped 2-byte character do not");
	snprintf(in, sizeof in, "{\"type\":\"%s\\u00e9\"}", want);
	ok(scan(in, &js) == 0 && strlen(js.type) == JSCAN_FIELD - 1,
	    "61 bytes + an escaped 2-byte character fit");
	memset(in, 0, sizeof in);
	strcpy(in, "{\"type\":\"");
	memset(in + 9, 'y', 150);
	strcat(in, "\",\"channel\":\"C1\"}");
	ok(scan(in, &js) == 0 && js.type[0] == '\0' &&
	        strcmp(js.channel, "C1") == 0,
	    "a very long type; channel still "
	    "captured");
}

/* The picks backfill.c follows messages by: ts, thread_ts, slackd_backfill. */
static void
test_picks(void)
{
	char in[256], want[JSCAN_TS + 8];
	struct jscan js;

	ok(scan("{\"type\":\"message\",\"channel\":\"C1\",\"user\":\"U1\","
	        "\"text\":\"hi\",\"ts\":\"1700000000.000200\","
	        "\"thread_ts\":\"1700000000.000100\",\"slackd_backfill\":true}",
	       &js) == 0,
	    "a backfilled thread reply parses");
	is_str(js.ts, "1700000000.000200", "ts");
	is_str(js.thread_ts, "1700000000.000100", "thread_ts");
	ok(js.backfilled == 1, "slackd_backfill is seen");
	is_str(js.type, "message", "type still picked next to them");
	is_str(js.channel, "C1", "channel still picked next to them");

	ok(scan("{\"type\":\"message\",\"channel\":\"C1\",\"text\":\"x\"}",
	       &js) == 0 &&
	        js.ts[0] == '\0' && js.thread_ts[0] == '\0' && !js.backfilled,
	    "absent: ts and thread_ts \"\", not backfilled");
	ok(scan("{\"slackd_backfill\":false}", &js) == 0 && js.backfilled == 1,
	    "slackd_backfill counts whatever its value (false)");
	ok(scan("{\"slackd_backfill\":null}", &js) == 0 && js.backfilled == 1,
	    "slackd_backfill counts whatever its value (null)");
	ok(scan("{\"slackd_backfill\":{\"a\":[1]},\"ts\":\"1.2\"}", &js) == 0 &&
	        js.backfilled == 1 && strcmp(js.ts, "1.2") == 0,
	    "slackd_backfill with an object value; ts after it");
	ok(scan("{\"message\":{\"ts\":\"1.1\",\"thread_ts\":\"1.0\","
	        "\"slackd_backfill\":true},\"a\":[{\"ts\":\"2.2\"}]}",
	       &js) == 0 &&
	        js.ts[0] == '\0' && js.thread_ts[0] == '\0' && !js.backfilled,
	    "nested ts, thread_ts and slackd_backfill are ignored");
	ok(scan("{\"message\":{\"ts\":\"1.1\"},\"ts\":\"3.3\"}", &js) == 0 &&
	        strcmp(js.ts, "3.3") == 0,
	    "the top-level ts after a nested one (message_changed)");
	ok(scan("{\"ts\":1700000000.0002,\"thread_ts\":[\"1.1\"]}", &js) == 0 &&
	        js.ts[0] == '\0' && js.thread_ts[0] == '\0',
	    "a number ts and an array thread_ts are \"\"");
	ok(scan("{\"ts\":null,\"thread_ts\":true}", &js) == 0 &&
	        js.ts[0] == '\0' && js.thread_ts[0] == '\0',
	    "null and true are \"\"");
	ok(scan("{\"ts\":\"1.1\",\"ts\":5}", &js) == 0 && js.ts[0] == '\0',
	    "the last duplicate wins, even when not a string (as json-c)");
	ok(scan("{\"type\":\"message\",\"type\":5}", &js) == 0 &&
	        js.type[0] == '\0',
	    "so does a type that is not a string");
	ok(scan("{\"ts\":\"1.10\",\"ts\":\"1.2\"}", &js) == 0 &&
	        strcmp(js.ts, "1.2") == 0,
	    "a shorter later ts is terminated");
	ok(scan("{\"tss\":\"1\",\"t\":\"2\",\"thread\":\"3\",\"slackd\":1,"
	        "\"slackd_backfilled\":1,\"TS\":\"4\"}",
	       &js) == 0 &&
	        js.ts[0] == '\0' && js.thread_ts[0] == '\0' && !js.backfilled,
	    "only the exact keys count");
	ok(scan("{\"t\\u0073\":\"1.1\",\"thread\\u005fts\":\"1.0\","
	        "\"slackd_\\u0062ackfill\":1}",
	       &js) == 0 &&
	        strcmp(js.ts, "1.1") == 0 && strcmp(js.thread_ts, "1.0") == 0 &&
	        js.backfilled == 1,
	    "escaped keys are decoded, as for type");

	/*
	 * A ts never has escapes, but JSON allows them: an escaped value is
	 * decoded (as json-c, which backfill.c used to parse with, did), so
	 * it is the ts it spells; one escaping U+0000 is "".
	 */
	ok(scan("{\"ts\":\"1700000000.00010\\u0030\"}", &js) == 0 &&
	        strcmp(js.ts, "1700000000.000100") == 0,
	    "an escaped digit in ts is decoded");
	ok(scan("{\"thread_ts\":\"1\\/2\"}", &js) == 0 &&
	        strcmp(js.thread_ts, "1/2") == 0,
	    "an escaped slash in thread_ts is decoded");
	ok(scan("{\"ts\":\"1\\u00002\"}", &js) == 0 && js.ts[0] == '\0',
	    "a ts with \\u0000 is \"\"");

	/* JSCAN_TS - 1 bytes fit, one more does not; the frame is fine. */
	memset(want, '9', JSCAN_TS - 1);
	want[JSCAN_TS - 1] = '\0';
	snprintf(
	    in, sizeof in, "{\"ts\":\"%s\",\"thread_ts\":\"%s\"}", want, want);
	ok(scan(in, &js) == 0 && strcmp(js.ts, want) == 0 &&
	        strcmp(js.thread_ts, want) == 0,
	    "a %d-byte ts and thread_ts are kept", JSCAN_TS - 1);
	snprintf(in, sizeof in,
	    "{\"ts\":\"%s9\",\"thread_ts\":\"%s9\",\"type\":\"message\"}", want,
	    want);
	ok(scan(in, &js) == 0 && js.error == NULL && js.ts[0] == '\0' &&
	        js.thread_ts[0] == '\0' && strcmp(js.type, "message") == 0,
	    "a %d-byte ts or thread_ts becomes \"\", the frame is accepted",
	    JSCAN_TS);
	snprintf(in, sizeof in, "{\"ts\":\"%s\\u0039\"}", want);
	ok(scan(in, &js) == 0 && js.ts[0] == '\0',
	    "%d bytes with the last one escaped become \"\"", JSCAN_TS);
	want[JSCAN_TS - 3] = '\0';
	snprintf(in, sizeof in, "{\"ts\":\"%s\xc3\xa9\"}", want);
	ok(scan(in, &js) == 0 && strlen(js.ts) == JSCAN_TS - 1,
	    "%d bytes + a 2-byte character fit a ts", JSCAN_TS - 3);

	/* Broken JSON is refused as before, wherever the pick is. */
	refuses("{\"ts\":\"1.1}", "unterminated string", "an unterminated ts");
	refuses("{\"ts\":\"1\\q\"}", "bad escape", "a bad escape in ts");
	refuses("{\"slackd_backfill\":}", "unexpected character",
	    "slackd_backfill without a value");
	refuses("{\"thread_ts\":\"\xff\"}", "invalid UTF-8",
	    "invalid UTF-8 in thread_ts");
}

/* {"a":[[...]]} or {"a":{"a":...}}: depth containers counting the top. */
static char *
nested(int depth, int objects, const char *leaf)
{
	size_t cap = (size_t)depth * 8 + strlen(leaf) + 16;
	char *s = xmalloc(cap), *p = s;
	int i;

	*p++ = '{';
	for (i = 1; i < depth; i++) {
		if (objects || i == 1) {
			memcpy(p, "\"a\":", 4);
			p += 4;
		}
		*p++ = objects ? '{' : '[';
	}
	if (*leaf != '\0') {
		if (objects || depth == 1) {
			memcpy(p, "\"a\":", 4);
			p += 4;
		}
		p += sprintf(p, "%s", leaf);
	}
	for (i = 1; i < depth; i++)
		*p++ = objects ? '}' : ']';
	*p++ = '}';
	*p = '\0';
	return s;
}

static void
test_depth(void)
{
	struct jscan js;
	char *s;
	int objects, leaf;

	for (objects = 0; objects <= 1; objects++) {
		for (leaf = 0; leaf <= 1; leaf++) {
			s = nested(DEPTH, objects, leaf ? "1" : "");
			ok(jscan_object(s, strlen(s), DEPTH, &js) == 0,
			    "nesting of exactly %d %s%s is fine", DEPTH,
			    objects ? "objects" : "arrays",
			    leaf ? " around a number" : "");
			free(s);
			s = nested(DEPTH + 1, objects, leaf ? "1" : "");
			ok(jscan_object(s, strlen(s), DEPTH, &js) == -1 &&
			        js.error != NULL &&
			        strcmp(js.error, "nested too deeply") == 0,
			    "nesting of %d %s%s is refused", DEPTH + 1,
			    objects ? "objects" : "arrays",
			    leaf ? " around a number" : "");
			free(s);
		}
	}
	s = nested(1000, 0, "");
	ok(jscan_object(s, strlen(s), DEPTH, &js) == -1,
	    "nesting of 1000 is refused (no stack overflow)");
	free(s);
	ok(jscan_object("{\"a\":1}", 7, 1, &js) == 0,
	    "max_depth 1: a flat object is fine");
	ok(jscan_object("{\"a\":[]}", 8, 1, &js) == -1,
	    "max_depth 1: one nested array is refused");
	ok(jscan_object("{\"type\":[[1]]}", 14, 3, &js) == 0 &&
	        jscan_object("{\"type\":[[1]]}", 14, 2, &js) == -1,
	    "a routed key's value counts depth the same way");
	ok(jscan_object("{\"ok\":{\"a\":{}}}", 15, 3, &js) == 0 &&
	        jscan_object("{\"ok\":{\"a\":{}}}", 15, 2, &js) == -1,
	    "depth under \"ok\" too");
	ok(jscan_object("{\"a\":[{\"b\":[{}]}]}", 18, 5, &js) == 0 &&
	        jscan_object("{\"a\":[{\"b\":[{}]}]}", 18, 4, &js) == -1,
	    "mixed objects and arrays");
}

static void
test_refused(void)
{
	static const struct {
		const char *in, *why, *name;
	} cases[] = {
		{ "[]", "not a JSON object", "an array" },
		{ "[{}]", "not a JSON object", "an object in an array" },
		{ "\"{}\"", "not a JSON object", "a string" },
		{ "1", "not a JSON object", "a number" },
		{ "true", "not a JSON object", "true" },
		{ "null", "not a JSON object", "null" },
		{ "", "not a JSON object", "empty input" },
		{ "  \n", "not a JSON object", "only spaces" },
		{ "{}x", "trailing data after the object", "trailing x" },
		{ "{} {}", "trailing data after the object", "two objects" },
		{ "{},", "trailing data after the object", "trailing comma" },
		{ "{}}", "trailing data after the object", "extra brace" },
		{ "{}\x0b", "trailing data after the object",
		    "vertical tab is not JSON space" },
		{ "\x0c{}", "not a JSON object",
		    "form feed is not JSON space" },
		{ "{\"a\"}", "expected ':'", "member without value" },
		{ "{\"a\":}", "unexpected character", "missing value" },
		{ "{\"a\" 1}", "expected ':'", "missing colon" },
		{ "{a:1}", "expected a member name", "bare key" },
		{ "{'a':1}", "expected a member name", "single-quoted key" },
		{ "{\"a\":'x'}", "unexpected character",
		    "single-quoted value" },
		{ "{1:1}", "expected a member name", "number key" },
		{ "{\"a\":1,}", "expected a member name", "trailing comma" },
		{ "{,}", "expected a member name", "lone comma" },
		{ "{\"a\":1 \"b\":2}", "expected ',' or '}'", "missing comma" },
		{ "{\"a\":[1,]}", "unexpected character",
		    "array trailing comma" },
		{ "{\"a\":[,1]}", "unexpected character",
		    "array leading comma" },
		{ "{\"a\":[1 2]}", "expected ',' or ']'",
		    "array missing comma" },
		{ "{\"a\":[}", "unexpected character", "mismatched brackets" },
		{ "{\"a\":{]}", "expected a member name", "mismatched braces" },
		{ "{\"a\":tru}", "unexpected character", "tru" },
		{ "{\"a\":True}", "unexpected character", "True" },
		{ "{\"a\":nul}", "unexpected character", "nul" },
		{ "{\"a\":NULL}", "unexpected character", "NULL" },
		{ "{\"a\":falsey}", "expected ',' or '}'", "falsey" },
		{ "{\"a\":undefined}", "unexpected character", "undefined" },
		{ "{\"a\":NaN}", "unexpected character", "NaN" },
		{ "{\"a\":Infinity}", "unexpected character", "Infinity" },
		{ "{\"a\":-Infinity}", "bad number", "-Infinity" },
		{ "{\"a\":01}", "expected ',' or '}'", "leading zero 01" },
		{ "{\"a\":-01}", "expected ',' or '}'", "leading zero -01" },
		{ "{\"a\":00}", "expected ',' or '}'", "leading zero 00" },
		{ "{\"a\":1.}", "bad number", "1." },
		{ "{\"a\":1.e5}", "bad number", "1.e5" },
		{ "{\"a\":-}", "bad number", "-" },
		{ "{\"a\":-a}", "bad number", "-a" },
		{ "{\"a\":--1}", "bad number", "--1" },
		{ "{\"a\":.5}", "unexpected character", ".5" },
		{ "{\"a\":-.5}", "bad number", "-.5" },
		{ "{\"a\":+1}", "unexpected character", "+1" },
		{ "{\"a\":1e}", "bad number", "1e" },
		{ "{\"a\":1e+}", "bad number", "1e+" },
		{ "{\"a\":1E-}", "bad number", "1E-" },
		{ "{\"a\":1.5.5}", "expected ',' or '}'", "1.5.5" },
		{ "{\"a\":0x10}", "expected ',' or '}'", "hex" },
		{ "{\"a\":1_000}", "expected ',' or '}'", "1_000" },
		{ "{\"reply_to\":01}", "expected ',' or '}'", "reply_to 01" },
		{ "{\"reply_to\":-}", "bad number", "reply_to -" },
		{ "{\"a\":\"\x01\"}", "control character in string",
		    "raw 0x01" },
		{ "{\"a\":\"\x1f\"}", "control character in string",
		    "raw 0x1f" },
		{ "{\"a\":\"\t\"}", "control character in string", "raw tab" },
		{ "{\"a\":\"x\ny\"}", "control character in string",
		    "raw newline" },
		{ "{\"a\x0d\":1}", "control character in string",
		    "raw CR in a key" },
		{ "{\"a\":\"\\x41\"}", "bad escape", "\\x" },
		{ "{\"a\":\"\\a\"}", "bad escape", "\\a" },
		{ "{\"a\":\"\\'\"}", "bad escape", "\\'" },
		{ "{\"a\":\"\\U0041\"}", "bad escape", "\\U" },
		{ "{\"a\":\"\\0\"}", "bad escape", "\\0" },
		{ "{\"a\":\"\\u12\"}", "bad \\u escape", "short \\u" },
		{ "{\"a\":\"\\u12G4\"}", "bad \\u escape", "non-hex \\u" },
		{ "{\"a\":\"\\u-123\"}", "bad \\u escape", "\\u-123" },
		{ "{\"type\":\"\\ud800\"}", "lone surrogate", "lone high" },
		{ "{\"type\":\"\\udc00\"}", "lone surrogate", "lone low" },
		{ "{\"a\":\"\\uDFFF\"}", "lone surrogate", "lone low (DFFF)" },
		{ "{\"a\":\"\\ud800\\u0041\"}", "lone surrogate",
		    "high then not-low" },
		{ "{\"a\":\"\\ud800\\ud800\"}", "lone surrogate",
		    "high then high" },
		{ "{\"a\":\"\\ud800x\"}", "lone surrogate", "high then text" },
		{ "{\"a\":\"\\ud800\\n\"}", "lone surrogate", "high then \\n" },
		{ "{\"a\":\"\\udc00\\ud800\"}", "lone surrogate",
		    "pair in the wrong order" },
		{ "{\"a\":\"\xc0\xaf\"}", "invalid UTF-8", "overlong C0 AF" },
		{ "{\"a\":\"\xc1\xbf\"}", "invalid UTF-8", "overlong C1 BF" },
		{ "{\"a\":\"\xe0\x80\xaf\"}", "invalid UTF-8",
		    "overlong E0 80 AF" },
		{ "{\"a\":\"\xe0\x9f\xbf\"}", "invalid UTF-8",
		    "overlong E0 9F BF" },
		{ "{\"a\":\"\xf0\x80\x80\xaf\"}", "invalid UTF-8",
		    "overlong F0 80 80 AF" },
		{ "{\"a\":\"\xf0\x8f\xbf\xbf\"}", "invalid UTF-8",
		    "overlong F0 8F BF BF" },
		{ "{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8",
		    "UTF-8-encoded high surrogate" },
		{ "{\"a\":\"\xed\xbf\xbf\"}", "invalid UTF-8",
		    "UTF-8-encoded low surrogate" },
		{ "{\"a\":\"\xed\xa0\xbd\xed\xb8\x80\"}", "invalid UTF-8",
		    "CESU-8 surrogate pair" },
		{ "{\"a\":\"\xf4\x90\x80\x80\"}", "invalid UTF-8", "U+110000" },
		{ "{\"a\":\"\xf5\x80\x80\x80\"}", "invalid UTF-8", "lead F5" },
		{ "{\"a\":\"\xf7\xbf\xbf\xbf\"}", "invalid UTF-8", "lead F7" },
		{ "{\"a\":\"\xf8\x88\x80\x80\x80\"}", "invalid UTF-8",
		    "lead F8" },
		{ "{\"a\":\"\xfe\"}", "invalid UTF-8", "FE" },
		{ "{\"a\":\"\xff\"}", "invalid UTF-8", "FF" },
		{ "{\"a\":\"\x80\"}", "invalid UTF-8", "lone continuation 80" },
		{ "{\"a\":\"\xbf\"}", "invalid UTF-8", "lone continuation BF" },
		{ "{\"a\":\"\xc3\"}", "invalid UTF-8", "truncated 2-byte" },
		{ "{\"a\":\"\xe2\x82\"}", "invalid UTF-8", "truncated 3-byte" },
		{ "{\"a\":\"\xf0\x9f\x98\"}", "invalid UTF-8",
		    "truncated 4-byte" },
		{ "{\"a\":\"\xc3x\"}", "invalid UTF-8",
		    "2-byte lead then ASCII" },
		{ "{\"a\":\"\xe2\x82x\"}", "invalid UTF-8",
		    "3-byte lead, 1 continuation, ASCII" },
		{ "{\"\xc3\":1}", "invalid UTF-8", "invalid UTF-8 in a key" },
		{ "{\"type\":\"\xff\"}", "invalid UTF-8",
		    "invalid UTF-8 in a routed value" },
		{ "{\"a\":1,\xc3\xa9:1}", "expected a member name",
		    "UTF-8 outside strings" },
		{ "{\"a\":\"x}", "unterminated string", "unterminated string" },
		{ "{\"a\":\"x\\\"}", "unterminated string",
		    "escaped quote does not end a string" },
	};
	size_t i;

	for (i = 0; i < nitems(cases); i++)
		refuses(cases[i].in, cases[i].why, cases[i].name);
}

static void
test_nul_and_positions(void)
{
	static const char nul_str[] = "{\"a\":\"x\0y\"}";
	static const char nul_out[] = "{\"a\":1}\0";
	static const char nul_in[] = "{\"a\":\0}";
	struct jscan js;

	ok(scan_len(nul_str, sizeof nul_str - 1, &js) == -1 &&
	        js.error != NULL &&
	        strcmp(js.error, "control character in string") == 0,
	    "a NUL byte in a string is refused");
	ok(scan_len(nul_out, sizeof nul_out - 1, &js) == -1,
	    "a NUL byte after the object is refused");
	ok(scan_len(nul_in, sizeof nul_in - 1, &js) == -1,
	    "a NUL byte as a value is refused");
	ok(scan("{\"a\":x}", &js) == -1 && js.error_at == 5,
	    "error_at points at the bad character");
	ok(scan("{\"a\":1}  x", &js) == -1 && js.error_at == 9,
	    "error_at points at trailing data");
	ok(scan("{\"a\":\"\xc3\xa9\xff\"}", &js) == -1 && js.error_at == 8,
	    "error_at points at the invalid UTF-8 byte");
	ok(scan_len("{\"a\":1}", 7, &js) == 0 && js.error == NULL &&
	        js.error_at == 0,
	    "success leaves error NULL");
	/* Bytes after len are not looked at. */
	ok(scan_len("{\"a\":1}garbage", 7, &js) == 0,
	    "only len bytes are scanned");
	ok(scan_len("{\"a\":\"xy\"}", 8, &js) == -1,
	    "a len ending inside a string is refused");
}

static void
test_truncation(void)
{
	static const char full[] =
	    "{\"type\":\"message\",\"channel\":\"C1\","
	    "\"text\":\"h\\u00e9llo \\ud83d\\ude00 \xc3\xa9\xe2\x82\xac\","
	    " \"n\" : [1,-2.5e3,true,false,null,{},[]],\"o\":{\"a\":\"b\"},"
	    "\"ok\":true,\"reply_to\":7}";
	struct jscan js;
	size_t len, bad = 0;

	ok(scan_len(full, sizeof full - 1, &js) == 0,
	    "the whole object is accepted");
	for (len = 0; len < sizeof full - 1; len++) {
		if (scan_len(full, len, &js) != -1 || js.error == NULL ||
		    js.error_at > len) {
			if (bad++ < 5)
				diag_bytes("accepted prefix", full, len);
		}
	}
	ok(bad == 0, "each of the %zu proper prefixes is refused",
	    sizeof full - 1);
}

/* Leave a recognisable pattern in the stack below the caller's frame. */
static void __attribute__((noinline)) dirty_stack(void)
{
	volatile unsigned char junk[8192];
	size_t i;

	for (i = 0; i < sizeof junk; i++)
		junk[i] = 0xa5;
}

static void
test_reply_to(void)
{
	struct jscan js;

	ok(scan("{\"reply_to\":-5}", &js) == 0 && js.has_reply_to &&
	        js.reply_to == -5,
	    "reply_to -5");
	ok(scan("{\"reply_to\":0}", &js) == 0 && js.has_reply_to &&
	        js.reply_to == 0,
	    "reply_to 0");
	ok(scan("{\"reply_to\":-0}", &js) == 0 && js.has_reply_to &&
	        js.reply_to == 0,
	    "reply_to -0");
	ok(scan("{\"reply_to\":123456789012345678}", &js) == 0 &&
	        js.has_reply_to && js.reply_to == 123456789012345678LL,
	    "an 18-digit reply_to is kept");
	ok(scan("{\"reply_to\":-12345678901234567}", &js) == 0 &&
	        js.has_reply_to && js.reply_to == -12345678901234567LL,
	    "a negative 17-digit reply_to is kept");
	ok(scan("{\"reply_to\":1234567890123456789}", &js) == 0 &&
	        js.has_reply_to == 0,
	    "a 19-digit reply_to is not an id");
	ok(scan("{\"reply_to\":99999999999999999999999999}", &js) == 0 &&
	        js.has_reply_to == 0,
	    "a huge reply_to is not an id");
	ok(scan("{\"reply_to\":1.5}", &js) == 0 && js.has_reply_to == 0,
	    "fractional reply_to is not an id");
	ok(scan("{\"reply_to\":1.0}", &js) == 0 && js.has_reply_to == 0,
	    "reply_to 1.0 is not an id");
	ok(scan("{\"reply_to\":1e2}", &js) == 0 && js.has_reply_to == 0,
	    "reply_to 1e2 is not an id");
	ok(scan("{\"reply_to\":\"5\"}", &js) == 0 && js.has_reply_to == 0,
	    "a string reply_to is not an id");
	ok(scan("{\"reply_to\":null}", &js) == 0 && js.has_reply_to == 0,
	    "a null reply_to is not an id");
	ok(scan("{\"reply_to\":5,\"reply_to\":2.5}", &js) == 0 &&
	        js.has_reply_to == 0,
	    "a later non-integer reply_to wins");

	/*
	 * Regression test for a fixed bug: for a non-integer reply_to (1.5,
	 * 1e2, 19+ digits), jscan_member() copies its uninitialised local "v"
	 * into out->reply_to (jscan_number() returns before storing *intval),
	 * so reply_to holds stack garbage instead of the 0 that
	 * jscan_object()'s memset promised.  Fill the stack first so the
	 * garbage is visible (valgrind also reports it).
	 */
	dirty_stack();
	ok(scan("{\"reply_to\":2.5}", &js) == 0 && js.has_reply_to == 0 &&
	        js.reply_to == 0,
	    "reply_to is 0 when has_reply_to is 0");
	if (js.reply_to != 0)
		printf("#   reply_to = %lld\n", (long long)js.reply_to);
}

static void
test_spaces_compact(void)
{
	static const char in[] =
	    "{ \"a b\" : \"c \\\" d\" ,\n\t\"e\":[ 1 , 2 ]"
	    ",\"type\" : \"x y\", \"q\":\"\\\\\" , \"reply_to\" :\r\n5 }";
	static const char want[] =
	    "{\"a b\":\"c \\\" d\",\"e\":[1,2],"
	    "\"type\":\"x y\",\"q\":\"\\\\\",\"reply_to\":5}";
	struct jscan js, js2;
	char buf[sizeof in];
	size_t n;

	ok(scan("{}", &js) == 0 && js.spaces == 0, "{}: spaces 0");
	ok(scan(" {}", &js) == 0 && js.spaces == 1, "leading space: spaces 1");
	ok(scan("{}\n", &js) == 0 && js.spaces == 1,
	    "trailing newline: spaces 1");
	ok(scan("{\"a\" :1}", &js) == 0 && js.spaces == 1,
	    "space before ':': spaces 1");
	ok(scan("{\"a\":[1,\t2]}", &js) == 0 && js.spaces == 1,
	    "tab in an array: spaces 1");
	ok(scan("{\"a\":\"x y\\n\"}", &js) == 0 && js.spaces == 0,
	    "spaces inside strings do not count");

	memcpy(buf, in, sizeof in);
	ok(scan_len(buf, sizeof in - 1, &js) == 0 && js.spaces == 1,
	    "the spaced object is accepted with spaces set");
	n = jscan_compact(buf, sizeof in - 1);
	is_int(n, sizeof want - 1, "jscan_compact returns the new length");
	buf[n] = '\0';
	is_str(buf, want, "jscan_compact removes spaces outside strings only");
	ok(scan_len(buf, n, &js2) == 0 && js2.spaces == 0,
	    "the compacted object re-scans without spaces");
	ok(strcmp(js.type, js2.type) == 0 && strcmp(js.type, "x y") == 0 &&
	        js.has_reply_to == js2.has_reply_to && js2.reply_to == 5,
	    "and with the same fields");
	n = jscan_compact(buf, n);
	is_str(buf, want, "compacting a compact object changes nothing");
	is_int(jscan_compact(buf, 0), 0, "jscan_compact of nothing is 0");
}

/* ---- randomized checks ------------------------------------------------ */

static uint64_t rng_state = 0x5eed5eed12345678ULL;

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

struct buf {
	char *p;
	size_t len, cap;
};

static void
put(struct buf *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void
gen_ws(struct buf *b, int spaces)
{
	unsigned n;

	if (!spaces || rnd_n(3) != 0)
		return;
	for (n = rnd_n(3) + 1; n > 0; n--)
		put(b, &" \t\n\r"[rnd_n(4)], 1);
}

static void
gen_string(struct buf *b)
{
	static const char *pieces[] = {
		"a",
		"b",
		"Z",
		"0",
		" ",
		"type",
		"C1",
		"\\\"",
		"\\\\",
		"\\/",
		"\\b",
		"\\f",
		"\\n",
		"\\r",
		"\\t",
		"\\u0041",
		"\\u00e9",
		"\\u20AC",
		"\\uffff",
		"\\u0000",
		"\\ud83d\\ude00",
		"\\uDBFF\\uDFFF",
		"\xc3\xa9",
		"\xe2\x82\xac",
		"\xf0\x9f\x98\x80",
		"\x7f",
		"{",
		"}",
		"[",
		":",
		",",
	};
	unsigned n;

	put(b, "\"", 1);
	for (n = rnd_n(6); n > 0; n--)
		puts_(b, pieces[rnd_n(nitems(pieces))]);
	put(b, "\"", 1);
}

static void
gen_number(struct buf *b)
{
	char tmp[64];
	unsigned n;

	if (rnd_n(3) == 0)
		put(b, "-", 1);
	if (rnd_n(4) == 0)
		put(b, "0", 1);
	else {
		snprintf(tmp, sizeof tmp, "%u", rnd_n(9) + 1);
		puts_(b, tmp);
		for (n = rnd_n(4); n > 0; n--)
			put(b, &"0123456789"[rnd_n(10)], 1);
	}
	if (rnd_n(3) == 0) {
		put(b, ".", 1);
		for (n = rnd_n(3) + 1; n > 0; n--)
			put(b, &"0123456789"[rnd_n(10)], 1);
	}
	if (rnd_n(4) == 0) {
		put(b, &"eE"[rnd_n(2)], 1);
		if (rnd_n(2))
			put(b, &"+-"[rnd_n(2)], 1);
		for (n = rnd_n(2) + 1; n > 0; n--)
			put(b, &"0123456789"[rnd_n(10)], 1);
	}
}

static void gen_value(struct buf *, int, int);

static void
gen_object(struct buf *b, int depth, int spaces)
{
	static const char *keys[] = { "\"type\"", "\"channel\"", "\"reply_to\"",
		"\"ok\"", "\"ts\"", "\"thread_ts\"", "\"slackd_backfill\"" };
	unsigned n, i;

	put(b, "{", 1);
	gen_ws(b, spaces);
	n = rnd_n(4);
	for (i = 0; i < n; i++) {
		if (i > 0) {
			put(b, ",", 1);
			gen_ws(b, spaces);
		}
		if (rnd_n(3) == 0)
			puts_(b, keys[rnd_n(nitems(keys))]);
		else
			gen_string(b);
		gen_ws(b, spaces);
		put(b, ":", 1);
		gen_ws(b, spaces);
		gen_value(b, depth + 1, spaces);
		gen_ws(b, spaces);
	}
	put(b, "}", 1);
}

static void
gen_value(struct buf *b, int depth, int spaces)
{
	unsigned n, i, pick = rnd_n(depth < 4 ? 10 : 7);

	switch (pick) {
	case 0:
	case 1:
		gen_string(b);
		break;
	case 2:
	case 3:
		gen_number(b);
		break;
	case 4:
		puts_(b, "true");
		break;
	case 5:
		puts_(b, "false");
		break;
	case 6:
		puts_(b, "null");
		break;
	case 7:
	case 8:
		gen_object(b, depth, spaces);
		break;
	default:
		put(b, "[", 1);
		gen_ws(b, spaces);
		n = rnd_n(4);
		for (i = 0; i < n; i++) {
			if (i > 0) {
				put(b, ",", 1);
				gen_ws(b, spaces);
			}
			gen_value(b, depth + 1, spaces);
			gen_ws(b, spaces);
		}
		put(b, "]", 1);
		break;
	}
}

static void
mutate(struct buf *b)
{
	static const char *inserts[] = {
		"{",
		"}",
		"[",
		"]",
		",",
		":",
		"\"",
		"\\",
		"u",
		"0",
		"-",
		".",
		"e",
		"E",
		"+",
		" ",
		"\t",
		"\n",
		"x",
		"t",
		"n",
		"f",
		"\x01",
		"\x1f",
		"\x7f",
		"\x80",
		"\xbf",
		"\xc0",
		"\xc1",
		"\xc3",
		"\xe0",
		"\xed",
		"\xf0",
		"\xf4",
		"\xf5",
		"\xff",
		"\\ud800",
		"\\udc00",
		"\\u",
		"\\x",
		"01",
		"1.",
		"00",
		"-0",
		".5",
		"NaN",
		"Infinity",
		"\xed\xa0\x80",
		"\xc0\xaf",
		"\xf4\x90\x80\x80",
		"\xe0\x80\x80",
		"\xc3\xa9",
		"true",
		"nul",
		"\"\"",
		"1e",
		"{}",
		"[]",
	};
	const char *ins;
	size_t pos, n, from;
	char *tmp;

	pos = b->len ? rnd_n((unsigned)b->len + 1) : 0;
	switch (rnd_n(6)) {
	case 0: /* delete a byte */
		if (pos < b->len) {
			memmove(b->p + pos, b->p + pos + 1, b->len - pos - 1);
			b->p[--b->len] = '\0';
		}
		break;
	case 1: /* insert */
	case 2:
		ins = inserts[rnd_n(nitems(inserts))];
		n = strlen(ins);
		put(b, ins, n); /* grow, then shift into place */
		memmove(b->p + pos + n, b->p + pos, b->len - n - pos);
		memcpy(b->p + pos, ins, n);
		break;
	case 3: /* replace a byte */
		if (pos < b->len)
			b->p[pos] = inserts[rnd_n(nitems(inserts))][0];
		break;
	case 4: /* duplicate a slice */
		if (b->len > 0) {
			from = rnd_n((unsigned)b->len);
			n = rnd_n((unsigned)(b->len - from)) + 1;
			tmp = xmemdup(b->p + from, n);
			put(b, tmp, n);
			memmove(b->p + pos + n, b->p + pos, b->len - n - pos);
			memcpy(b->p + pos, tmp, n);
			free(tmp);
		}
		break;
	default: /* truncate */
		b->len = pos;
		b->p[pos] = '\0';
		break;
	}
}

/* Length of a valid UTF-8 sequence at s (RFC 3629), 0 if invalid. */
static size_t
utf8_strict(const unsigned char *s, size_t left)
{
	size_t n, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (left < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* What json-c 0.16's JSON_TOKENER_VALIDATE_UTF8 accepts: structure only. */
static size_t
utf8_jsonc(const unsigned char *s, size_t left)
{
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		n = 2;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4;
	else
		return 0;
	if (left < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	}
	return n;
}

/* An RFC 8259 number, exactly. */
static int
strict_number(const char *s, size_t len)
{
	size_t i = 0;

	if (i < len && s[i] == '-')
		i++;
	if (i < len && s[i] == '0')
		i++;
	else if (i < len && s[i] >= '1' && s[i] <= '9') {
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	} else
		return 0;
	if (i < len && s[i] == '.') {
		if (++i >= len || s[i] < '0' || s[i] > '9')
			return 0;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= len || s[i] < '0' || s[i] > '9')
			return 0;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	return i == len;
}

/* json-c's verdict: exactly one object, all of len consumed. */
static int
jsonc_object(const char *s, size_t len)
{
	struct json_tokener *tok;
	struct json_object *o;
	int good;

	tok = json_tokener_new_ex(128);
	json_tokener_set_flags(
	    tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, s, (int)len);
	good = o != NULL && json_object_is_type(o, json_type_object) &&
	    json_tokener_get_parse_end(tok) == len;
	json_object_put(o);
	json_tokener_free(tok);
	return good;
}

static int
jsonc_number(const char *s, size_t len)
{
	char tmp[128];
	struct json_tokener *tok;
	struct json_object *o;
	int good;

	if (len + 2 > sizeof tmp)
		return 0;
	snprintf(tmp, sizeof tmp, "[%.*s]", (int)len, s);
	tok = json_tokener_new_ex(8);
	json_tokener_set_flags(
	    tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, tmp, (int)len + 2);
	good = o != NULL;
	json_object_put(o);
	json_tokener_free(tok);
	return good;
}

/*
 * The systematic leniencies of json-c 0.16 in STRICT|VALIDATE_UTF8 mode,
 * found by reading json_tokener.c and confirmed by this test: inputs using
 * them are excluded from the comparison because json-c, not jscan, is wrong
 * about them (RFC 8259 / RFC 3629):
 *  - raw control characters U+0001..U+001F inside strings are accepted;
 *  - \u escapes of surrogates that do not form a pair are replaced by
 *    U+FFFD instead of being refused;
 *  - VALIDATE_UTF8 only checks lead/continuation structure, so overlong
 *    forms, UTF-8-encoded surrogates, code points above U+10FFFF and lead
 *    bytes F5..F7 pass;
 *  - NaN, Infinity and -Infinity are accepted even in strict mode;
 *  - numbers such as "1.", "1.e5", "-.5", "00", "-01" are accepted.
 * Returns the class, or NULL if json-c's verdict should equal jscan's.
 */
static const char *
jsonc_lenient(const char *buf, size_t len)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t i = 0, j, n;

	while (i < len) {
		if (s[i] == '"') {
			for (i++; i < len && s[i] != '"';) {
				if (s[i] == '\\') {
					if (i + 3 < len && s[i + 1] == 'u' &&
					    (s[i + 2] == 'd' ||
					        s[i + 2] == 'D') &&
					    strchr("89abcdefABCDEF",
					        s[i + 3]) != NULL)
						return "surrogate \\u escape";
					i += 2;
					continue;
				}
				if (s[i] != 0 && s[i] < 0x20)
					return "control character in a string";
				if (s[i] >= 0x80) {
					n = utf8_strict(s + i, len - i);
					if (n == 0 &&
					    utf8_jsonc(s + i, len - i))
						return "UTF-8 json-c does not "
						       "check";
					i += n ? n : 1;
					continue;
				}
				i++;
			}
			i++;
			continue;
		}
		if (len - i >= 3 && memcmp(s + i, "NaN", 3) == 0)
			return "NaN";
		if (len - i >= 8 && memcmp(s + i, "Infinity", 8) == 0)
			return "Infinity";
		if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
			for (j = i; j < len && s[j] != '\0' &&
			     strchr("0123456789+-.eE", s[j]) != NULL;
			     j++)
				;
			if (!strict_number(buf + i, j - i) &&
			    jsonc_number(buf + i, j - i))
				return "number json-c accepts";
			i = j;
			continue;
		}
		i++;
	}
	return NULL;
}

static void
test_differential(void)
{
	struct buf b = { NULL, 0, 0 };
	struct jscan js;
	unsigned iter, m, nmut;
	int jr, jc;
	size_t accepted = 0, refused = 0, excluded = 0, disagree = 0, k;
	size_t nclasses = 0;
	struct {
		const char *why;
		size_t n;
	} classes[8];
	const char *why;
	static const char *lenient[] = {
		"{\"a\":\"\x01\"}",
		"{\"a\":\"\\ud800\"}",
		"{\"a\":\"\xc0\xaf\"}",
		"{\"a\":\"\xed\xa0\x80\"}",
		"{\"a\":\"\xf4\x90\x80\x80\"}",
		"{\"a\":NaN}",
		"{\"a\":-Infinity}",
		"{\"a\":1.}",
		"{\"a\":00}",
		"{\"a\":-01}",
		"{\"a\":-.5}",
	};

	/* The classifier knows each leniency; jscan refuses them all. */
	for (k = 0; k < nitems(lenient); k++) {
		jr = jscan_object(lenient[k], strlen(lenient[k]), 64, &js);
		jc = jsonc_object(lenient[k], strlen(lenient[k]));
		ok(jr == -1 &&
		        jsonc_lenient(lenient[k], strlen(lenient[k])) != NULL,
		    "jscan refuses a json-c leniency (%s), json-c %s",
		    jsonc_lenient(lenient[k], strlen(lenient[k])),
		    jc ? "accepts it" : "refuses it too");
	}
	/* And it does not excuse ordinary mistakes. */
	ok(jsonc_lenient("{\"a\":01}", 8) == NULL &&
	        jsonc_lenient("{\"a\":\"\\x\"}", 10) == NULL &&
	        jsonc_lenient("{\"a\":\"\xff\"}", 9) == NULL &&
	        jsonc_lenient("{\"a\":1e}", 8) == NULL,
	    "the classifier does not excuse plain errors");

	for (iter = 0; iter < 5000; iter++) {
		b.len = 0;
		if (rnd_n(10) == 0)
			gen_value(&b, 1, 1);
		else
			gen_object(&b, 1, 1);
		nmut = rnd_n(4);
		for (m = 0; m < nmut; m++)
			mutate(&b);
		jr = jscan_object(b.p, b.len, 64, &js) == 0;
		jc = jsonc_object(b.p, b.len);
		if (jr == jc) {
			if (jr)
				accepted++;
			else
				refused++;
			continue;
		}
		/* Only json-c's leniency is excused, never jscan's. */
		if (!jr && (why = jsonc_lenient(b.p, b.len)) != NULL) {
			excluded++;
			for (k = 0; k < nclasses && classes[k].why != why; k++)
				;
			if (k == nclasses && nclasses < nitems(classes)) {
				classes[k].why = why;
				classes[k].n = 0;
				nclasses++;
			}
			if (k < nclasses)
				classes[k].n++;
			continue;
		}
		if (disagree++ < 20) {
			printf("# jscan %s, json-c %s%s%s:\n",
			    jr ? "accepts" : "refuses",
			    jc ? "accepts" : "refuses",
			    jr ? "" : " -- jscan says ", jr ? "" : js.error);
			diag_bytes("input", b.p, b.len);
		}
	}
	printf("# differential: %zu both accept, %zu both refuse, %zu "
	       "excluded (json-c leniency)\n",
	    accepted, refused, excluded);
	for (k = 0; k < nclasses; k++)
		printf(
		    "#   excluded: %zu x %s\n", classes[k].n, classes[k].why);
	is_int(disagree, 0,
	    "jscan and json-c agree on every random input "
	    "outside json-c's known leniencies");
	ok(accepted >= 1000 && refused >= 1000,
	    "the random inputs exercise both verdicts");
	ok(excluded < 500, "few inputs are excluded");
	free(b.p);
}

/* What jscan should have picked for key, as json-c sees o: "" unless a
 * string without U+0000 that fits cap. */
static int
pick_as_jsonc(struct json_object *o, const char *key, const char *got,
    size_t cap, size_t *picked)
{
	struct json_object *v;
	const char *s;
	size_t len;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return got[0] == '\0';
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (len >= cap || memchr(s, '\0', len) != NULL)
		return got[0] == '\0';
	if (len > 0)
		(*picked)++;
	return strcmp(s, got) == 0;
}

static int
picks_as_jsonc(struct json_object *o, const struct jscan *js, size_t *picked)
{
	int backfilled = json_object_object_get_ex(o, "slackd_backfill", NULL);

	*picked += backfilled;
	return pick_as_jsonc(o, "type", js->type, JSCAN_FIELD, picked) &&
	    pick_as_jsonc(o, "channel", js->channel, JSCAN_FIELD, picked) &&
	    pick_as_jsonc(o, "ts", js->ts, JSCAN_TS, picked) &&
	    pick_as_jsonc(o, "thread_ts", js->thread_ts, JSCAN_TS, picked) &&
	    backfilled == js->backfilled;
}

/* Grammar-valid objects: always accepted; compacting keeps them equal. */
static void
test_random_valid(void)
{
	struct buf b = { NULL, 0, 0 };
	struct jscan a, c;
	struct json_object *o1, *o2;
	unsigned iter;
	size_t n, refused = 0, diff = 0, unequal = 0, spaced = 0, wrong = 0;
	size_t picked = 0;

	for (iter = 0; iter < 2000; iter++) {
		b.len = 0;
		gen_object(&b, 1, 1);
		if (jscan_object(b.p, b.len, 64, &a) != 0) {
			if (refused++ < 5) {
				printf("# refused (%s):\n", a.error);
				diag_bytes("input", b.p, b.len);
			}
			continue;
		}
		spaced += a.spaces;
		o1 = json_tokener_parse(b.p);
		n = jscan_compact(b.p, b.len);
		b.len = n;
		b.p[n] = '\0';
		if (jscan_object(b.p, n, 64, &c) != 0 || c.spaces ||
		    strcmp(a.type, c.type) != 0 ||
		    strcmp(a.channel, c.channel) != 0 ||
		    a.has_reply_to != c.has_reply_to ||
		    (a.has_reply_to && a.reply_to != c.reply_to) ||
		    a.has_ok != c.has_ok || a.ok != c.ok ||
		    strcmp(a.ts, c.ts) != 0 ||
		    strcmp(a.thread_ts, c.thread_ts) != 0 ||
		    a.backfilled != c.backfilled) {
			if (diff++ < 5)
				diag_bytes("compacted", b.p, b.len);
		}
		o2 = json_tokener_parse(b.p);
		if (o1 == NULL || o2 == NULL || !json_object_equal(o1, o2))
			unequal++;
		if (o1 != NULL && !picks_as_jsonc(o1, &a, &picked)) {
			if (wrong++ < 5)
				diag_bytes("picked wrong", b.p, b.len);
		}
		json_object_put(o1);
		json_object_put(o2);
	}
	is_int(refused, 0, "every grammar-valid random object is accepted");
	is_int(diff, 0, "compacted objects re-scan with identical fields");
	is_int(unequal, 0, "compacted objects are equal JSON (json-c)");
	is_int(wrong, 0,
	    "type, channel, ts, thread_ts and slackd_backfill are what json-c finds at the top level");
	ok(picked > 100, "many random objects had something to pick (%zu)",
	    picked);
	ok(spaced > 500, "most random objects had spaces to remove");
	free(b.p);
}

/* A want's value as a string, for comparing ("(none)" when absent). */
static const char *
want_str(const struct jscan_want *w, char *buf, size_t size)
{
	if (w->at == NULL)
		return "(none)";
	snprintf(buf, size, "%.*s", (int)w->len, w->at);
	return buf;
}

enum { W_ID, W_TYPE, W_PAYLOAD, W_EVENT, W_EVENT_ID, W_MISSING, W_N };
static const struct jscan_want members_want[W_N] = {
	[W_ID] = { "envelope_id", JSCAN_TOP, NULL, 0 },
	[W_TYPE] = { "type", JSCAN_TOP, NULL, 0 },
	[W_PAYLOAD] = { "payload", JSCAN_TOP, NULL, 0 },
	[W_EVENT] = { "event", W_PAYLOAD, NULL, 0 },
	[W_EVENT_ID] = { "event_id", W_PAYLOAD, NULL, 0 },
	[W_MISSING] = { "missing", JSCAN_TOP, NULL, 0 },
};

static void
test_members(void)
{
	struct jscan_want w[W_N];
	struct jscan js, ev;
	char tmp[256];
	const char *env = "{\"envelope_id\":\"e-1\\\"x\",\"type\":"
	                  "\"events_api\",\"payload\":{\"type\":"
	                  "\"event_callback\",\"event_id\":\"Ev1\",\"event\":"
	                  "{\"type\":\"message\",\"channel\":\"C1\",\"ts\":"
	                  "\"1.2\",\"thread_ts\":\"1.1\",\"event\":{\"a\":"
	                  "1},\"slackd_backfill\":1}},\"event\":\"top\"}";
	const char *spaced =
	    " { \"type\" : \"hello\" , \"payload\" :\n"
	    "{ \"event\" : [ 1 , 2 ] } , \"envelope_id\":1.5e3 "
	    "}\t";

	memcpy(w, members_want, sizeof w);
	ok(jscan_members(env, strlen(env), DEPTH, w, W_N, W_EVENT, &js) == 0,
	    "members: an envelope is accepted");
	is_str(want_str(&w[W_ID], tmp, sizeof tmp), "\"e-1\\\"x\"",
	    "members: a string's bytes, quotes and escapes as sent");
	is_str(want_str(&w[W_TYPE], tmp, sizeof tmp), "\"events_api\"",
	    "members: the top-level type, not the payload's or the event's");
	ok(w[W_PAYLOAD].at != NULL && w[W_PAYLOAD].at[0] == '{' &&
	        w[W_PAYLOAD].at[w[W_PAYLOAD].len - 1] == '}' &&
	        w[W_PAYLOAD].at[w[W_PAYLOAD].len] == ',',
	    "members: an object value, braces included");
	is_str(want_str(&w[W_EVENT_ID], tmp, sizeof tmp), "\"Ev1\"",
	    "members: a member of a chosen member's object");
	ok(w[W_EVENT].at != NULL &&
	        strncmp(w[W_EVENT].at, "{\"type\":\"message\"", 17) == 0 &&
	        w[W_EVENT].at[w[W_EVENT].len] == '}',
	    "members: payload.event, not the top-level or inner \"event\"");
	ok(w[W_MISSING].at == NULL && w[W_MISSING].len == 0,
	    "members: an absent member has no value");
	is_str(js.type, "message", "members: picks from payload.event: type");
	is_str(js.channel, "C1", "members: channel");
	is_str(js.ts, "1.2", "members: ts");
	is_str(js.thread_ts, "1.1", "members: thread_ts");
	ok(js.backfilled, "members: slackd_backfill");
	ok(jscan_object(w[W_EVENT].at, w[W_EVENT].len, DEPTH, &ev) == 0 &&
	        memcmp(&ev, &js, sizeof ev) == 0,
	    "members: the picks are what scanning the event alone gives");

	memcpy(w, members_want, sizeof w);
	ok(jscan_members(env, strlen(env), DEPTH, w, W_N, JSCAN_TOP, &js) ==
	            0 &&
	        strcmp(js.type, "events_api") == 0 && js.channel[0] == '\0' &&
	        !js.backfilled,
	    "members: picks from the top level");
	ok(jscan_members(env, strlen(env), DEPTH, w, W_N, W_MISSING, &js) ==
	            0 &&
	        js.type[0] == '\0' && w[W_EVENT].at != NULL,
	    "members: no picks from an absent member, members still found");
	ok(jscan_members(env, strlen(env), DEPTH, w, W_N, W_ID, &js) == 0 &&
	        js.type[0] == '\0',
	    "members: no picks from a member that is not an object");

	memcpy(w, members_want, sizeof w);
	ok(jscan_members(spaced, strlen(spaced), DEPTH, w, W_N, W_EVENT, &js) ==
	            0 &&
	        js.spaces,
	    "members: spaces are allowed and reported");
	is_str(want_str(&w[W_TYPE], tmp, sizeof tmp), "\"hello\"",
	    "members: a value starts after the spaces");
	is_str(want_str(&w[W_EVENT], tmp, sizeof tmp), "[ 1 , 2 ]",
	    "members: an array value, spaces inside kept, none after");
	is_str(want_str(&w[W_ID], tmp, sizeof tmp), "1.5e3",
	    "members: a number value");
	ok(js.type[0] == '\0', "members: an array gives no picks");

	memcpy(w, members_want, sizeof w);
	ok(jscan_members("{\"t\\u0079pe\":1,\"type\":2,\"payload\":{"
	                 "\"\\u0065vent\":{\"type\":\"x\"}}}",
	       strlen("{\"t\\u0079pe\":1,\"type\":2,\"payload\":{"
	              "\"\\u0065vent\":{\"type\":\"x\"}}}"),
	       DEPTH, w, W_N, W_EVENT, &js) == 0,
	    "members: escaped names");
	is_str(want_str(&w[W_TYPE], tmp, sizeof tmp), "1",
	    "members: names are decoded, and the first of a name counts");
	is_str(js.type, "x", "members: picks under an escaped name");

	memcpy(w, members_want, sizeof w);
	ok(jscan_members("{\"payload\":{\"event\":{\"a\":[[[[1]]]]}}}", 37, 5,
	       w, W_N, W_EVENT, &js) == -1 &&
	        strcmp(js.error, JSCAN_TOO_DEEP) == 0,
	    "members: the depth limit counts from the top, picks or not");
	ok(jscan_members("{\"payload\":{\"event\":{\"a\":[[[1]]]}}}", 35, 6, w,
	       W_N, W_EVENT, &js) == 0,
	    "members: ... and allows what it allows");
	ok(jscan_members(
	       "{\"type\":\"x\",}", 13, DEPTH, w, W_N, JSCAN_TOP, &js) == -1 &&
	        js.error != NULL,
	    "members: a refused object is refused");
}

/* Random envelopes: what jscan_members finds is what json-c finds. */
static void
gen_envelope(struct buf *b)
{
	static const char *top[] = { "envelope_id", "type", "payload", "x",
		"accepts_response_payload" };
	static const char *inner[] = { "event", "event_id", "type", "y" };
	unsigned i, j, n, order[5], t;
	char tmp[64];

	for (i = 0; i < 5; i++)
		order[i] = i;
	for (i = 4; i > 0; i--) {
		j = rnd_n(i + 1);
		t = order[i], order[i] = order[j], order[j] = t;
	}
	put(b, "{", 1);
	gen_ws(b, 1);
	n = rnd_n(6);
	for (i = 0; i < n; i++) {
		if (i > 0)
			puts_(b, ",");
		snprintf(tmp, sizeof tmp, "\"%s\":", top[order[i]]);
		puts_(b, tmp);
		gen_ws(b, 1);
		if (strcmp(top[order[i]], "payload") == 0 && rnd_n(5) != 0) {
			puts_(b, "{");
			for (j = 0; j < 4; j++) {
				if (rnd_n(3) == 0)
					continue;
				if (b->p[b->len - 1] != '{')
					puts_(b, ",");
				snprintf(tmp, sizeof tmp, "\"%s\":", inner[j]);
				puts_(b, tmp);
				if (j == 0 && rnd_n(5) != 0)
					gen_object(b, 3, 1);
				else
					gen_value(b, 3, 1);
			}
			puts_(b, "}");
		} else
			gen_value(b, 2, 1);
		gen_ws(b, 1);
	}
	put(b, "}", 1);
}

/* Whether json-c has a value at path (one or two names): into *v. */
static int
jsonc_at(
    struct json_object *o, const char *a, const char *b, struct json_object **v)
{
	*v = NULL;
	if (o == NULL || !json_object_object_get_ex(o, a, v))
		return 0;
	if (b == NULL)
		return 1;
	if (!json_object_is_type(*v, json_type_object))
		return 0;
	return json_object_object_get_ex(*v, b, v);
}

static void
test_members_random(void)
{
	static const char *paths[W_N][2] = { [W_ID] = { "envelope_id", NULL },
		[W_TYPE] = { "type", NULL },
		[W_PAYLOAD] = { "payload", NULL },
		[W_EVENT] = { "payload", "event" },
		[W_EVENT_ID] = { "payload", "event_id" },
		[W_MISSING] = { "missing", NULL } };
	struct buf b = { NULL, 0, 0 };
	struct jscan_want w[W_N];
	struct jscan js, plain, ev;
	struct json_object *o, *want, *got;
	unsigned iter, k, nmut;
	size_t wrong = 0, found = 0, verdicts = 0, refused = 0, badpicks = 0;
	int rc, rp, has;
	char *tmp;

	for (iter = 0; iter < 3000; iter++) {
		b.len = 0;
		gen_envelope(&b);
		nmut = iter % 3 == 0 ? rnd_n(3) + 1 : 0;
		for (k = 0; k < nmut; k++)
			mutate(&b);
		memcpy(w, members_want, sizeof w);
		rc = jscan_members(b.p, b.len, 64, w, W_N, W_EVENT, &js);
		rp = jscan_object(b.p, b.len, 64, &plain);
		if (rc != rp ||
		    (rc != 0 &&
		        (strcmp(js.error, plain.error) != 0 ||
		            js.error_at != plain.error_at)) ||
		    (rc == 0 && js.spaces != plain.spaces)) {
			if (verdicts++ < 5)
				diag_bytes("verdict differs", b.p, b.len);
			continue;
		}
		if (rc != 0) {
			refused++;
			continue;
		}
		o = json_tokener_parse(b.p);
		for (k = 0; k < W_N; k++) {
			has = jsonc_at(o, paths[k][0], paths[k][1], &want);
			got = NULL;
			if (w[k].at != NULL) {
				tmp = xstrndup(w[k].at, w[k].len);
				got = json_tokener_parse(tmp);
				free(tmp);
			}
			if (has != (w[k].at != NULL) ||
			    (has && !json_object_equal(want, got))) {
				if (wrong++ < 5) {
					printf("# member %s\n", w[k].name);
					diag_bytes("found wrong", b.p, b.len);
				}
			}
			found += w[k].at != NULL;
			json_object_put(got);
		}
		memset(&ev, 0, sizeof ev);
		if (w[W_EVENT].at != NULL && w[W_EVENT].at[0] == '{')
			jscan_object(w[W_EVENT].at, w[W_EVENT].len, 64, &ev);
		ev.spaces = js.spaces;
		if (memcmp(&ev, &js, sizeof ev) != 0 && badpicks++ < 5)
			diag_bytes("picks differ", b.p, b.len);
		json_object_put(o);
	}
	is_int(verdicts, 0,
	    "members: the verdict (and error) is jscan_object's on random envelopes");
	is_int(wrong, 0, "members: every value found is json-c's, none missed");
	is_int(badpicks, 0,
	    "members: picks from payload.event are the event's own");
	ok(found > 3000 && refused > 200,
	    "members: random envelopes exercise it (%zu found, %zu refused)",
	    found, refused);
	free(b.p);
}

int
main(void)
{
	test_valid();
	test_escapes();
	test_picks();
	test_depth();
	test_refused();
	test_nul_and_positions();
	test_truncation();
	test_reply_to();
	test_spaces_compact();
	test_differential();
	test_random_valid();
	test_members();
	test_members_random();
	return tap_done();
}
