/*
 * Pieces of the local protocol shared by slackd and slackctl.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "protocol.h"

static const char *protocol_error_names[] = {
	"bad_json",
	"not_object",
	"bad_request",
	"unknown_type",
	"too_long",
	"line_too_long",
	"queue_full",
	"not_confirmed",
	"not_connected",
	"timeout",
	"shutting_down",
	"upstream_failed",
	"slow_consumer",
	"access_denied",
	"not_found",
	"not_allowed",
	"slack_api",
};

const char *
protocol_error_name(int code)
{
	size_t i;

	if (code < PROTOCOL_E_BAD_JSON)
		return "slack_error";
	i = (size_t)(code - PROTOCOL_E_BAD_JSON);
	if (i >= sizeof protocol_error_names / sizeof protocol_error_names[0])
		return "unknown";
	return protocol_error_names[i];
}

/* The string member key of o, or NULL (no o, no such member, not a string). */
const char *
protocol_json_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/*
 * The socket path used when neither the config nor -s names one:
 * /run/slackd/slackd.sock for root, $XDG_RUNTIME_DIR/slackd.sock otherwise.
 * Returns -1 when there is no sensible default (no XDG_RUNTIME_DIR).
 */
int
protocol_default_socket(char *buf, size_t len)
{
	const char *dir;
	int n;

	if (geteuid() == 0)
		n = snprintf(buf, len, "%s", PROTOCOL_SYSTEM_SOCKET);
	else {
		dir = getenv("XDG_RUNTIME_DIR");
		if (dir == NULL || *dir != '/')
			return -1;
		n = snprintf(buf, len, "%s/slackd.sock", dir);
	}
	if (n < 0 || (size_t)n >= len)
		return -1;
	return 0;
}

/*
 * The socket a client uses when told none: the daemon's default for this
 * user if that exists, else the system daemon's (/run/slackd/slackd.sock,
 * where the systemd units put it), else the default to report in errors.
 */
/* Does a daemon answer on path? */
static int
protocol_alive(const char *path)
{
	struct sockaddr_un sun;
	int fd, ok;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		return 0;
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	ok = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
	close(fd);
	return ok;
}

int
protocol_client_socket(char *buf, size_t len)
{
	struct stat sb;

	if (protocol_default_socket(buf, len) == 0 && stat(buf, &sb) == 0 &&
	    (protocol_alive(buf) || stat(PROTOCOL_SYSTEM_SOCKET, &sb) == -1))
		return 0;
	if (stat(PROTOCOL_SYSTEM_SOCKET, &sb) == 0 ||
	    protocol_default_socket(buf, len) != 0) {
		if (snprintf(buf, len, "%s", PROTOCOL_SYSTEM_SOCKET) >=
		    (int)len)
			return -1;
	}
	return 0;
}
