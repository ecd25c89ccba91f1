/*
 * libFuzzer target: what the Web API answers and the URLs it gives.
 * webapi_parse_connect() on the body; the same bytes as an api_url, as a
 * WebSocket URL and as a Retry-After value.
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
	struct webapi_connect c;
	struct webapi_url u;
	char *err = NULL, *s;
	int64_t ms;
	int ws;

	if (webapi_parse_connect((const char *)data, size, &c, &err) == 0) {
		assert(
		    c.ok ? c.url != NULL && c.team != NULL : c.error != NULL);
		webapi_connect_free(&c);
	} else {
		assert(err != NULL);
		free(err);
	}
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	for (ws = 0; ws < 2; ws++) {
		err = NULL;
		if (webapi_parse_url(s, ws, &u, &err) == 0) {
			assert(u.host != NULL && u.path[0] == '/');
			assert(u.port > 0 && u.port < 65536);
			assert(u.tls || webapi_is_loopback(u.host));
			webapi_url_free(&u);
		} else {
			assert(err != NULL);
			free(err);
		}
	}
	if (webapi_retry_after(s, &ms) == 0)
		assert(ms >= 0 && ms <= 3600 * 1000);
	free(s);
	return 0;
}
