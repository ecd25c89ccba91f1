/*
 * libFuzzer target: the upstream frame handler, frame bytes in, decision
 * out (frame_classify, as the upstream thread calls it).  The first byte
 * chooses whether a hello is awaited and which ping is outstanding.
 * Anything forwarded to clients is one JSON object on one line, and
 * scanning it again picks the same fields (type, channel, ts, thread_ts,
 * slackd_backfill): compacting changed nothing they depend on.  The same
 * bytes go through jscan_members() as Socket Mode calls it (an envelope's
 * members and payload.event's picks): it must give jscan_object()'s
 * verdict, values that are whole JSON values inside the frame, and the
 * picks scanning payload.event alone gives.
 */
#include "config.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

enum { W_ID, W_TYPE, W_PAYLOAD, W_EVENT, W_EVENT_ID, W_N };

static void
fuzz_members(const char *buf, size_t len)
{
	struct jscan_want w[W_N] = {
		[W_ID] = { "envelope_id", JSCAN_TOP, NULL, 0 },
		[W_TYPE] = { "type", JSCAN_TOP, NULL, 0 },
		[W_PAYLOAD] = { "payload", JSCAN_TOP, NULL, 0 },
		[W_EVENT] = { "event", W_PAYLOAD, NULL, 0 },
		[W_EVENT_ID] = { "event_id", W_PAYLOAD, NULL, 0 },
	};
	struct jscan js, plain, ev, one;
	char *copy;
	size_t i;
	int rc;

	rc = jscan_members(buf, len, 64, w, W_N, W_EVENT, &js);
	assert(rc == jscan_object(buf, len, 64, &plain));
	if (rc != 0) {
		assert(strcmp(js.error, plain.error) == 0 &&
		    js.error_at == plain.error_at);
		return;
	}
	assert(js.spaces == plain.spaces);
	for (i = 0; i < W_N; i++) {
		if (w[i].at == NULL)
			continue;
		assert(w[i].at >= buf && w[i].at + w[i].len <= buf + len);
		assert(w[i].len > 0);
		/* A whole value: as the member of an object, it scans. */
		copy = malloc(w[i].len + 6);
		memcpy(copy, "{\"v\":", 5);
		memcpy(copy + 5, w[i].at, w[i].len);
		copy[w[i].len + 5] = '}';
		assert(jscan_object(copy, w[i].len + 6, 65, &one) == 0);
		free(copy);
	}
	assert(w[W_EVENT].at == NULL || w[W_PAYLOAD].at != NULL);
	memset(&ev, 0, sizeof ev);
	if (w[W_EVENT].at != NULL && w[W_EVENT].at[0] == '{')
		assert(
		    jscan_object(w[W_EVENT].at, w[W_EVENT].len, 64, &ev) == 0);
	ev.spaces = js.spaces;
	assert(memcmp(&ev, &js, sizeof ev) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame f;
	struct jscan again;
	char *buf;
	int want_hello;
	int64_t ping;

	if (size < 1)
		return 0;
	want_hello = data[0] & 1;
	ping = (data[0] >> 1) * 2; /* even, or 0: no ping outstanding */
	buf = malloc(size); /* size - 1 bytes of frame and a NUL, as in rx */
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	fuzz_members(buf, size - 1);
	frame_classify(buf, size - 1, want_hello, ping, &f);
	assert(f.len <= size - 1);
	assert(memchr(f.js.ts, '\0', sizeof f.js.ts) != NULL);
	assert(memchr(f.js.thread_ts, '\0', sizeof f.js.thread_ts) != NULL);
	switch (f.action) {
	case FRAME_DROP:
		assert(f.why != NULL);
		break;
	case FRAME_PONG:
		assert(f.js.reply_to == ping && ping != 0);
		/* FALLTHROUGH */
	case FRAME_STALE:
	case FRAME_REPLY:
		assert(!want_hello && f.js.has_reply_to);
		/* FALLTHROUGH */
	default:
		assert(buf[f.len] == '\0');
		assert(memchr(buf, '\n', f.len) == NULL);
		assert(jscan_object(buf, f.len, 64, &again) == 0);
		assert(again.spaces == 0);
		assert(strcmp(again.type, f.js.type) == 0);
		assert(strcmp(again.channel, f.js.channel) == 0);
		assert(strcmp(again.ts, f.js.ts) == 0);
		assert(strcmp(again.thread_ts, f.js.thread_ts) == 0);
		assert(again.backfilled == f.js.backfilled);
		break;
	}
	if (f.action == FRAME_HELLO || f.action == FRAME_NOT_HELLO)
		assert(want_hello);
	free(buf);
	return 0;
}
