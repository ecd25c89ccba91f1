/*
 * One pass over a frame from Slack: prove it is exactly one well-formed
 * JSON object (RFC 8259, strict UTF-8, bounded nesting) and pick out the
 * few top-level fields the daemon routes on -- "type", "channel",
 * "reply_to", "ok" -- and those backfill.c follows messages by -- "ts",
 * "thread_ts", whether "slackd_backfill" is there -- without building any
 * objects.  Most frames are only forwarded, so this is all the work they
 * cost (doc/design.md, "The path of one event").  Only members of the
 * top-level object count; their names and string values are decoded
 * ("t\u0073" is "ts"); a string value that does not fit its field, or
 * holds U+0000, is picked as "".
 *
 * jscan_members() does the same pass and also says where the values of
 * chosen members are (the first of each name), in the top-level object or
 * in the object value of another chosen member, and may take the picks
 * from such an object instead of the top level: Socket Mode finds the
 * envelope's id and payload, and the picks of payload.event, while it
 * validates the frame, so an envelope is walked once.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "slackd.h"

#define JSCAN_NONE (-2) /* an object no chosen member is in */

struct jscan_state {
	const unsigned char *p;
	const unsigned char *end;
	const unsigned char *start;
	int max_depth;
	struct jscan *out;
	struct jscan_want *want; /* jscan_members(): the members chosen */
	size_t nwant;
	int picks; /* whose members are picked: JSCAN_TOP or a want */
	int enter; /* what the object about to be scanned is: JSCAN_NONE */
};

static int jscan_value(struct jscan_state *, int);

/* Bytes that stand for themselves in a string: ASCII but ", \ and controls. */
static const unsigned char jscan_plain[256] = {
	[0x20] = 1,
	[0x21] = 1,
	[0x23 ... 0x5b] = 1,
	[0x5d ... 0x7f] = 1,
};

#define JSCAN_ONES  0x0101010101010101ULL
#define JSCAN_HIGHS 0x8080808080808080ULL

/*
 * Past the plain bytes (jscan_plain) from p: eight at a time while they
 * are all plain (none has its high bit, none is below 0x20, none is '"'
 * or '\\': a byte-wise test of the word), then one at a time.
 */
static const unsigned char *
jscan_plain_run(const unsigned char *p, const unsigned char *end)
{
	uint64_t v, q, b;

	while (end - p >= 8) {
		memcpy(&v, p, 8);
		q = v ^ (JSCAN_ONES * '"');
		b = v ^ (JSCAN_ONES * '\\');
		if (((v | ((v - JSCAN_ONES * 0x20) & ~v) |
		         ((q - JSCAN_ONES) & ~q) | ((b - JSCAN_ONES) & ~b)) &
		        JSCAN_HIGHS) != 0)
			break;
		p += 8;
	}
	while (p < end && jscan_plain[*p])
		p++;
	return p;
}

static int
jscan_fail(struct jscan_state *s, const char *why)
{
	if (s->out->error == NULL) {
		s->out->error = why;
		s->out->error_at = (size_t)(s->p - s->start);
	}
	return -1;
}

static void
jscan_ws(struct jscan_state *s)
{
	while (s->p < s->end &&
	    (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) {
		s->out->spaces = 1;
		s->p++;
	}
}

/* Length of the UTF-8 sequence at p (validated), or 0 if invalid. */
static size_t
jscan_utf8(const unsigned char *p, const unsigned char *end)
{
	size_t n, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07;
	} else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static int
jscan_hex4(const unsigned char *p, uint32_t *v)
{
	int i;

	*v = 0;
	for (i = 0; i < 4; i++) {
		*v <<= 4;
		if (p[i] >= '0' && p[i] <= '9')
			*v |= (uint32_t)(p[i] - '0');
		else if (p[i] >= 'a' && p[i] <= 'f')
			*v |= (uint32_t)(p[i] - 'a' + 10);
		else if (p[i] >= 'A' && p[i] <= 'F')
			*v |= (uint32_t)(p[i] - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

/* Append code point cp to a capture buffer of size cap; drop the capture if
 * it won't fit. */
static void
jscan_put(char *buf, size_t cap, size_t *len, int *over, uint32_t cp)
{
	unsigned char tmp[4];
	size_t n;

	if (cp < 0x80) {
		tmp[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		tmp[0] = (unsigned char)(0xc0 | (cp >> 6));
		tmp[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		tmp[0] = (unsigned char)(0xe0 | (cp >> 12));
		tmp[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		tmp[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		tmp[0] = (unsigned char)(0xf0 | (cp >> 18));
		tmp[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		tmp[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		tmp[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	if (cp == 0 || *len + n >= cap) {
		*over = 1;
		return;
	}
	memcpy(buf + *len, tmp, n);
	*len += n;
}

/*
 * A string at s->p (which is '"').  If buf is not NULL, its decoded value
 * is stored there (cap bytes), or "" if it does not fit.
 */
static int
jscan_string(struct jscan_state *s, char *buf, size_t cap)
{
	const unsigned char *run;
	size_t n, len = 0;
	uint32_t cp, lo;
	int over = 0;

	s->p++;
	for (;;) {
		/* The common case: a run of plain ASCII, copied at once. */
		run = s->p;
		s->p = jscan_plain_run(s->p, s->end);
		if (buf != NULL && s->p > run) {
			n = (size_t)(s->p - run);
			if (len + n >= cap)
				over = 1;
			else {
				memcpy(buf + len, run, n);
				len += n;
			}
		}
		if (s->p >= s->end)
			return jscan_fail(s, "unterminated string");
		if (*s->p == '"') {
			s->p++;
			break;
		}
		if (*s->p < 0x20)
			return jscan_fail(s, "control character in string");
		if (*s->p == '\\') {
			if (s->end - s->p < 2)
				return jscan_fail(s, "unterminated escape");
			switch (s->p[1]) {
			case '"':
			case '\\':
			case '/':
				cp = s->p[1];
				break;
			case 'b':
				cp = '\b';
				break;
			case 'f':
				cp = '\f';
				break;
			case 'n':
				cp = '\n';
				break;
			case 'r':
				cp = '\r';
				break;
			case 't':
				cp = '\t';
				break;
			case 'u':
				if (s->end - s->p < 6 ||
				    jscan_hex4(s->p + 2, &cp))
					return jscan_fail(s, "bad \\u escape");
				if (cp >= 0xdc00 && cp <= 0xdfff)
					return jscan_fail(s, "lone surrogate");
				if (cp >= 0xd800 && cp <= 0xdbff) {
					if (s->end - s->p < 12 ||
					    s->p[6] != '\\' || s->p[7] != 'u' ||
					    jscan_hex4(s->p + 8, &lo) ||
					    lo < 0xdc00 || lo > 0xdfff)
						return jscan_fail(
						    s, "lone surrogate");
					cp = 0x10000 + ((cp - 0xd800) << 10) +
					    (lo - 0xdc00);
					s->p += 6;
				}
				s->p += 4;
				break;
			default:
				return jscan_fail(s, "bad escape");
			}
			s->p += 2;
			if (buf != NULL)
				jscan_put(buf, cap, &len, &over, cp);
			continue;
		}
		if ((n = jscan_utf8(s->p, s->end)) == 0)
			return jscan_fail(s, "invalid UTF-8");
		if (buf != NULL) {
			if (len + n >= cap)
				over = 1;
			else {
				memcpy(buf + len, s->p, n);
				len += n;
			}
		}
		s->p += n;
	}
	if (buf != NULL)
		buf[over ? 0 : len] = '\0';
	return 0;
}

static int
jscan_digits(struct jscan_state *s)
{
	const unsigned char *start = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > start ? 0 : -1;
}

/* A number; if intval is not NULL and it is a small integer, store it. */
static int
jscan_number(struct jscan_state *s, int64_t *intval, int *isint)
{
	const unsigned char *start = s->p;
	int neg = 0, integral = 1;
	uint64_t v = 0;
	const unsigned char *q;

	if (*s->p == '-') {
		neg = 1;
		s->p++;
	}
	if (s->p >= s->end)
		return jscan_fail(s, "bad number");
	if (*s->p == '0')
		s->p++;
	else if (jscan_digits(s) != 0)
		return jscan_fail(s, "bad number");
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		integral = 0;
		if (jscan_digits(s) != 0)
			return jscan_fail(s, "bad number");
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		integral = 0;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (jscan_digits(s) != 0)
			return jscan_fail(s, "bad number");
	}
	if (intval == NULL)
		return 0;
	*isint = 0;
	if (!integral || s->p - start - neg > 18)
		return 0;
	for (q = start + neg; q < s->p; q++)
		v = v * 10 + (uint64_t)(*q - '0');
	*intval = neg ? -(int64_t)v : (int64_t)v;
	*isint = 1;
	return 0;
}

static int
jscan_literal(struct jscan_state *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return jscan_fail(s, "unexpected character");
	s->p += n;
	return 0;
}

enum jscan_key {
	JSCAN_OTHER,
	JSCAN_TYPE,
	JSCAN_CHANNEL,
	JSCAN_TS_KEY,
	JSCAN_THREAD_TS,
	JSCAN_BACKFILL,
	JSCAN_REPLY_TO,
	JSCAN_OK
};

/*
 * Which top-level name k is.  Every top-level member comes by here, so
 * the first byte chooses and the compares are against literals (which
 * the compiler inlines).
 */
static enum jscan_key
jscan_which(const char *k)
{
	switch (k[0]) {
	case 't':
		if (strcmp(k, "type") == 0)
			return JSCAN_TYPE;
		if (strcmp(k, "ts") == 0)
			return JSCAN_TS_KEY;
		if (strcmp(k, "thread_ts") == 0)
			return JSCAN_THREAD_TS;
		break;
	case 'c':
		if (strcmp(k, "channel") == 0)
			return JSCAN_CHANNEL;
		break;
	case 's':
		if (strcmp(k, "slackd_backfill") == 0)
			return JSCAN_BACKFILL;
		break;
	case 'r':
		if (strcmp(k, "reply_to") == 0)
			return JSCAN_REPLY_TO;
		break;
	case 'o':
		if (strcmp(k, "ok") == 0)
			return JSCAN_OK;
		break;
	}
	return JSCAN_OTHER;
}

/* A string member: its value into buf (cap bytes), or "" if not a string. */
static int
jscan_pick(struct jscan_state *s, char *buf, size_t cap, int depth)
{
	if (*s->p == '"')
		return jscan_string(s, buf, cap);
	buf[0] = '\0';
	return jscan_value(s, depth);
}

/* The value (at depth) of a member we route on. */
static int
jscan_member(struct jscan_state *s, enum jscan_key key, int depth)
{
	struct jscan *o = s->out;
	int64_t v = 0;
	int isint = 0;

	switch (key) {
	case JSCAN_TYPE:
		return jscan_pick(s, o->type, sizeof o->type, depth);
	case JSCAN_CHANNEL:
		return jscan_pick(s, o->channel, sizeof o->channel, depth);
	case JSCAN_TS_KEY:
		return jscan_pick(s, o->ts, sizeof o->ts, depth);
	case JSCAN_THREAD_TS:
		return jscan_pick(s, o->thread_ts, sizeof o->thread_ts, depth);
	case JSCAN_BACKFILL:
		o->backfilled = 1;
		break;
	case JSCAN_REPLY_TO:
		if (*s->p != '-' && (*s->p < '0' || *s->p > '9'))
			break;
		if (jscan_number(s, &v, &isint) != 0)
			return -1;
		o->has_reply_to = isint;
		o->reply_to = v;
		return 0;
	case JSCAN_OK:
		if (*s->p == 't' || *s->p == 'f') {
			o->has_ok = 1;
			o->ok = *s->p == 't';
		}
		break;
	case JSCAN_OTHER:
		break;
	}
	return jscan_value(s, depth);
}

/* The chosen member named k in the object that is want self, or -1. */
static int
jscan_wanted(const struct jscan_state *s, int self, const char *k)
{
	size_t i;

	for (i = 0; i < s->nwant; i++) {
		if (s->want[i].in == self && s->want[i].at == NULL &&
		    s->want[i].name[0] == k[0] &&
		    strcmp(s->want[i].name, k) == 0)
			return (int)i;
	}
	return -1;
}

static int
jscan_object_body(struct jscan_state *s, int depth)
{
	char key[JSCAN_FIELD];
	enum jscan_key which;
	const unsigned char *at;
	int self = s->enter, picking, w = -1;

	s->enter = JSCAN_NONE;
	picking = self == s->picks;
	key[0] = '\0'; /* read only when picking, but compilers may look */
	s->p++; /* '{' */
	jscan_ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return 0;
	}
	for (;;) {
		if (s->p >= s->end || *s->p != '"')
			return jscan_fail(s, "expected a member name");
		/* Names that count are decoded: "t\u0079pe" is "type". */
		if (jscan_string(s,
		        picking || (self != JSCAN_NONE && s->nwant > 0) ? key
		                                                        : NULL,
		        sizeof key) != 0)
			return -1;
		which = picking ? jscan_which(key) : JSCAN_OTHER;
		if (self != JSCAN_NONE && s->nwant > 0)
			w = jscan_wanted(s, self, key);
		jscan_ws(s);
		if (s->p >= s->end || *s->p != ':')
			return jscan_fail(s, "expected ':'");
		s->p++;
		jscan_ws(s);
		if (s->p >= s->end)
			return jscan_fail(s, "truncated");
		at = s->p;
		if (w >= 0 && *s->p == '{')
			s->enter = w;
		if (which != JSCAN_OTHER) {
			if (jscan_member(s, which, depth + 1) != 0)
				return -1;
		} else if (jscan_value(s, depth + 1) != 0)
			return -1;
		s->enter = JSCAN_NONE;
		if (w >= 0) {
			s->want[w].at = (const char *)at;
			s->want[w].len = (size_t)(s->p - at);
			w = -1;
		}
		jscan_ws(s);
		if (s->p >= s->end)
			return jscan_fail(s, "truncated object");
		if (*s->p == '}') {
			s->p++;
			return 0;
		}
		if (*s->p != ',')
			return jscan_fail(s, "expected ',' or '}'");
		s->p++;
		jscan_ws(s);
	}
}

static int
jscan_array_body(struct jscan_state *s, int depth)
{
	s->p++; /* '[' */
	jscan_ws(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return 0;
	}
	for (;;) {
		if (jscan_value(s, depth + 1) != 0)
			return -1;
		jscan_ws(s);
		if (s->p >= s->end)
			return jscan_fail(s, "truncated array");
		if (*s->p == ']') {
			s->p++;
			return 0;
		}
		if (*s->p != ',')
			return jscan_fail(s, "expected ',' or ']'");
		s->p++;
		jscan_ws(s);
	}
}

/* A value at nesting depth (the top-level object is depth 1). */
static int
jscan_value(struct jscan_state *s, int depth)
{
	if (s->p >= s->end)
		return jscan_fail(s, "truncated");
	switch (*s->p) {
	case '{':
	case '[':
		if (depth > s->max_depth)
			return jscan_fail(s, JSCAN_TOO_DEEP);
		if (*s->p == '{')
			return jscan_object_body(s, depth);
		return jscan_array_body(s, depth);
	case '"':
		return jscan_string(s, NULL, 0);
	case 't':
		return jscan_literal(s, "true");
	case 'f':
		return jscan_literal(s, "false");
	case 'n':
		return jscan_literal(s, "null");
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return jscan_number(s, NULL, NULL);
		return jscan_fail(s, "unexpected character");
	}
}

/*
 * Returns 0 if buf holds exactly one JSON object, -1 (with why) if not.
 * want[0..nwant) are the members whose values are wanted: each names the
 * member (as decoded) and says which object it is a member of (in:
 * JSCAN_TOP, or the index of an earlier want whose value is that object);
 * its at and len are set to its value's bytes (a string's quotes
 * included), or at to NULL if there is none.  The picks (type, channel,
 * ...) are taken from the object picks says (JSCAN_TOP, or a want's), and
 * are all empty if that member is not there or not an object.  When the
 * object is refused, only out->error and out->error_at mean anything.
 */
int
jscan_members(const char *buf, size_t len, int max_depth,
    struct jscan_want *want, size_t nwant, int picks, struct jscan *out)
{
	struct jscan_state s;
	size_t i;

	memset(out, 0, sizeof *out);
	for (i = 0; i < nwant; i++) {
		want[i].at = NULL;
		want[i].len = 0;
	}
	s.start = s.p = (const unsigned char *)buf;
	s.end = s.p + len;
	s.max_depth = max_depth;
	s.out = out;
	s.want = want;
	s.nwant = nwant;
	s.picks = picks;
	s.enter = JSCAN_TOP;
	jscan_ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return jscan_fail(&s, "not a JSON object");
	if (jscan_object_body(&s, 1) != 0)
		return -1;
	jscan_ws(&s);
	if (s.p != s.end)
		return jscan_fail(&s, "trailing data after the object");
	return 0;
}

int
jscan_object(const char *buf, size_t len, int max_depth, struct jscan *out)
{
	return jscan_members(buf, len, max_depth, NULL, 0, JSCAN_TOP, out);
}

/*
 * Remove whitespace outside strings in place (for a frame jscan_object()
 * accepted with spaces set); returns the new length.  A forwarded event
 * must be one line.
 */
size_t
jscan_compact(char *buf, size_t len)
{
	size_t i, o = 0;
	int instr = 0, esc = 0;
	char c;

	for (i = 0; i < len; i++) {
		c = buf[i];
		if (instr) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				instr = 0;
		} else if (c == '"')
			instr = 1;
		else if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			continue;
		buf[o++] = c;
	}
	return o;
}
