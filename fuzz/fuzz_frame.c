/*
 * libFuzzer target: the upstream frame handler, frame bytes in, decision
 * out (frame_classify, as the upstream thread calls it).  The first byte
 * chooses whether a hello is awaited and which ping is outstanding.
 * Anything forwarded to clients is one JSON object on one line, and
 * scanning it again picks the same fields (type, channel, ts, thread_ts,
 * slackd_backfill): compacting changed nothing they depend on.
 */
#include "config.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

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
