/*
 * libFuzzer target: one request line from a local client.  Whatever the
 * bytes, request_parse() answers 0 or -1 with a code and a message, and a
 * frame built from an accepted message is one strict JSON object on one
 * line, within what jscan accepts.
 */
#include "config.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "slackd.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct request r;
	struct request_error e;
	struct jscan js;
	char *frame;
	size_t len;

	if (request_parse((const char *)data, size, &r, &e) != 0) {
		assert(e.code > 1000 && e.msg[0] != '\0');
		request_free(&r);
		return 0;
	}
	if (r.kind == REQUEST_MESSAGE || r.kind == REQUEST_TYPING) {
		frame = request_frame(&r, r.channel, 12345, &len);
		assert(memchr(frame, '\n', len) == NULL);
		assert(jscan_object(frame, len, 64, &js) == 0);
		assert(js.spaces == 0);
		assert(strcmp(js.channel, r.channel) == 0 ||
		    strlen(r.channel) >= JSCAN_FIELD);
		free(frame);
	}
	request_free(&r);
	return 0;
}
