/* Unit tests: map.c (strings to pointers) and the form encoding. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slackd.h"
#include "tap.h"

static int
drop_odd(const char *key, void *value, void *arg)
{
	int *seen = arg;

	(*seen)++;
	return ((intptr_t)value & 1) != 0;
}

static void
test_map(void)
{
	struct map *m = map_new();
	char key[32];
	intptr_t i, bad = 0;
	int seen = 0;

	ok(map_count(m) == 0 && map_get(m, "x") == NULL, "a new map is empty");
	ok(map_put(m, "a", (void *)1) == NULL, "put returns NULL when new");
	ok(map_put(m, "a", (void *)2) == (void *)1,
	    "put returns the old value");
	is_int((intptr_t)map_get(m, "a"), 2, "get finds the new value");
	is_int(map_count(m), 1, "replacing does not count twice");
	ok(map_del(m, "a") == (void *)2 && map_get(m, "a") == NULL,
	    "del returns the value and removes it");
	ok(map_del(m, "a") == NULL, "del of a missing key is NULL");
	for (i = 1; i <= 20000; i++) {
		snprintf(key, sizeof key, "key-%ld", (long)i);
		map_put(m, key, (void *)i);
	}
	is_int(map_count(m), 20000, "20,000 keys (the table grew)");
	for (i = 1; i <= 20000; i++) {
		snprintf(key, sizeof key, "key-%ld", (long)i);
		if (map_get(m, key) != (void *)i)
			bad++;
	}
	is_int(bad, 0, "every key finds its value after growing");
	map_foreach(m, drop_odd, &seen);
	is_int(seen, 20000, "foreach visits every entry");
	is_int(map_count(m), 10000, "foreach removes what fn says");
	ok(map_get(m, "key-2") == (void *)2 && map_get(m, "key-3") == NULL,
	    "the right ones are gone");
	ok(map_put(m, "", (void *)5) == NULL && map_get(m, "") == (void *)5,
	    "the empty key is a key");
	map_free(m, NULL);
}

static void
test_form(void)
{
	char *body = NULL;
	size_t len = 0;

	webapi_form_add(&body, &len, "channel", "C024BE91L");
	is_str(body, "channel=C024BE91L", "a plain pair");
	webapi_form_add(&body, &len, "text", "a b&c=d/é~");
	is_str(body, "channel=C024BE91L&text=a%20b%26c%3Dd%2F%C3%A9~",
	    "pairs are joined with & and percent-encoded");
	is_int(len, strlen(body), "len follows");
	webapi_form_add(&body, &len, "cursor", "dXNlcjoxMDAw+/=");
	ok(strstr(body, "cursor=dXNlcjoxMDAw%2B%2F%3D") != NULL,
	    "base64 cursors keep their + / =");
	free(body);
}

int
main(void)
{
	test_map();
	test_form();
	return tap_done();
}
