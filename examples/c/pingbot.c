/*
 * pingbot.c: answer every message "ping" with "pong" in the same thread,
 * through slackd's socket.  One file, poll(2) and json-c; see README.md.
 *
 *   cc -o pingbot pingbot.c $(pkg-config --cflags --libs json-c)
 *   ./pingbot [SOCKET]
 *
 * SOCKET defaults to $SLACKD_SOCKET, else /run/slackd/slackd.sock.  Runs
 * until slackd closes the connection.  Lines from slackd are collected in
 * one buffer and handled whole; requests are small and written whole.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

static int pingbot_fd;
static long pingbot_next_id = 1;

static const char *
pingbot_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Send one request (it gets the next id) and free it. */
static void
pingbot_send(struct json_object *req)
{
	const char *s;
	size_t len, off = 0;
	ssize_t n;

	json_object_object_add(
	    req, "id", json_object_new_int64(pingbot_next_id++));
	s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	len = strlen(s);
	while (off <= len) {
		/* The request, then its newline. */
		n = off < len ? write(pingbot_fd, s + off, len - off)
		              : write(pingbot_fd, "\n", 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			perror("pingbot: write");
			exit(1);
		}
		off += (size_t)n;
	}
	json_object_put(req);
}

/* One line from slackd. */
static void
pingbot_line(const char *line)
{
	struct json_object *o, *req, *err, *msg;
	const char *type, *text, *thread;

	if ((o = json_tokener_parse(line)) == NULL) {
		fprintf(stderr, "pingbot: not JSON: %s\n", line);
		return;
	}
	type = pingbot_str(o, "type");
	text = pingbot_str(o, "text");
	if (type != NULL && strcmp(type, "message") == 0 && text != NULL &&
	    strcmp(text, "ping") == 0 && pingbot_str(o, "subtype") == NULL &&
	    pingbot_str(o, "channel") != NULL) {
		/* In the thread the ping is in, else the one it starts. */
		thread = pingbot_str(o, "thread_ts");
		if (thread == NULL)
			thread = pingbot_str(o, "ts");
		req = json_object_new_object();
		json_object_object_add(
		    req, "type", json_object_new_string("message"));
		json_object_object_add(req, "channel",
		    json_object_new_string(pingbot_str(o, "channel")));
		json_object_object_add(
		    req, "text", json_object_new_string("pong"));
		if (thread != NULL)
			json_object_object_add(
			    req, "thread_ts", json_object_new_string(thread));
		pingbot_send(req);
	} else if (json_object_object_get_ex(o, "reply_to", NULL) &&
	    json_object_object_get_ex(o, "error", &err)) {
		msg = NULL;
		json_object_object_get_ex(err, "msg", &msg);
		fprintf(stderr, "pingbot: request %s failed: %s\n",
		    json_object_get_string(
		        json_object_object_get(o, "reply_to")),
		    json_object_get_string(msg != NULL ? msg : err));
	}
	json_object_put(o);
}

int
main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pollfd pfd;
	struct json_object *sub, *types;
	const char *path;
	char *buf = NULL, *start, *nl;
	size_t len = 0, cap = 0;
	ssize_t n;

	signal(SIGPIPE, SIG_IGN); /* a closed socket is a write error */
	path = argc > 1 ? argv[1] : getenv("SLACKD_SOCKET");
	if (path == NULL || *path == '\0')
		path = "/run/slackd/slackd.sock";
	if (strlen(path) >= sizeof sa.sun_path) {
		fprintf(stderr, "pingbot: socket path too long: %s\n", path);
		return 1;
	}
	strcpy(sa.sun_path, path);
	if ((pingbot_fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    connect(pingbot_fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		fprintf(stderr, "pingbot: cannot connect to %s: %s\n", path,
		    strerror(errno));
		return 1;
	}

	/* Only message events from now on (replies always come). */
	sub = json_object_new_object();
	types = json_object_new_array();
	json_object_array_add(types, json_object_new_string("message"));
	json_object_object_add(
	    sub, "type", json_object_new_string("slackd.subscribe"));
	json_object_object_add(sub, "types", types);
	pingbot_send(sub);

	pfd.fd = pingbot_fd;
	pfd.events = POLLIN;
	for (;;) {
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("pingbot: poll");
			return 1;
		}
		if (cap - len < 65536) {
			cap = cap * 2 + 65536;
			if ((buf = realloc(buf, cap)) == NULL) {
				perror("pingbot: realloc");
				return 1;
			}
		}
		n = read(pingbot_fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("pingbot: read");
			return 1;
		}
		if (n == 0)
			break; /* slackd closed the connection */
		len += (size_t)n;
		buf[len] = '\0';
		start = buf;
		while ((nl = strchr(start, '\n')) != NULL) {
			*nl = '\0';
			pingbot_line(start);
			start = nl + 1;
		}
		len -= (size_t)(start - buf);
		memmove(buf, start, len);
	}
	free(buf);
	close(pingbot_fd);
	return 0;
}
