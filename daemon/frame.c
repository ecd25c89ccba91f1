/*
 * What to do with one complete frame from Slack: the upstream thread's
 * decisions, as a pure function of the bytes and of two facts about the
 * session (still waiting for hello? which ping is outstanding?).  No I/O,
 * so it is unit tested and fuzzed on its own.
 */
#include "config.h"

#include <string.h>

#include "upstream.h"

#define FRAME_MAX_DEPTH 64

/* Events after which Slack closes the connection: reconnect promptly. */
static int
frame_ends_session(const char *type)
{
	return strcmp(type, "goodbye") == 0 || strcmp(type, "error") == 0 ||
	    strcmp(type, "team_migration_started") == 0;
}

/*
 * Classify buf[0..len) (a text frame; buf has room for a NUL at len).
 * Whitespace outside strings is removed in place, so f->len may be
 * shorter than len; buf[f->len] is then '\0'.  ping_id is the id of the
 * outstanding ping, or 0 when none is.
 */
void
frame_classify(
    char *buf, size_t len, int want_hello, int64_t ping_id, struct frame *f)
{
	struct jscan *js = &f->js;

	f->len = len;
	f->why = NULL;
	if (jscan_object(buf, len, FRAME_MAX_DEPTH, js) != 0) {
		f->action = FRAME_DROP;
		f->why = js->error;
		return;
	}
	if (js->spaces) {
		f->len = jscan_compact(buf, len);
		buf[f->len] = '\0';
	}
	if (want_hello) {
		f->action = strcmp(js->type, "hello") == 0 ? FRAME_HELLO
		                                           : FRAME_NOT_HELLO;
		return;
	}
	if (js->has_reply_to &&
	    (js->type[0] == '\0' || strcmp(js->type, "pong") == 0)) {
		/* Even ids are our pings, odd ones the clients' requests. */
		if (js->reply_to % 2 != 0)
			f->action = FRAME_REPLY;
		else if (ping_id != 0 && js->reply_to == ping_id)
			f->action = FRAME_PONG;
		else
			f->action = FRAME_STALE;
		return;
	}
	f->action = frame_ends_session(js->type) ? FRAME_LAST : FRAME_EVENT;
}

/*
 * One WebSocket text frame as a client sends it (RFC 6455, section 5.2):
 * FIN and opcode 1, the payload length (7, 16 or 64 bits), the masking
 * key and the payload masked with it, into out, which has room for
 * FRAME_WS_HEAD + len bytes.  Returns the frame's length.  Socket Mode's
 * acks are framed here so that many go out in one write (lws frames,
 * masks and sends each lws_write on its own).
 */
size_t
frame_ws_client(unsigned char *out, const char *payload, size_t len,
    const unsigned char mask[4])
{
	size_t n = 0, i;
	int shift;

	out[n++] = 0x81;
	if (len < 126)
		out[n++] = (unsigned char)(0x80 | len);
	else if (len <= 0xffff) {
		out[n++] = 0x80 | 126;
		out[n++] = (unsigned char)(len >> 8);
		out[n++] = (unsigned char)len;
	} else {
		out[n++] = 0x80 | 127;
		for (shift = 56; shift >= 0; shift -= 8)
			out[n++] = (unsigned char)((uint64_t)len >> shift);
	}
	memcpy(out + n, mask, 4);
	n += 4;
	for (i = 0; i < len; i++)
		out[n + i] = (unsigned char)payload[i] ^ mask[i & 3];
	return n + len;
}
