/*
 * slackctl: the command-line client of slackd.
 *
 *   slackctl [-s socket] send [-bp] [-t thread_ts] [-w secs] [--blocks file]
 *       [--attachments file] [--unfurl|--no-unfurl] channel [text…]
 *   slackctl [-s socket] listen [-an] [-t type]… [-c channel]… [-f format]
 *       [--since cursor] [--resume file]
 *   slackctl [-s socket] channels [--json]
 *   slackctl [-s socket] users [--json]
 *   slackctl [-s socket] status [--json]
 *   slackctl help [command]
 *
 * Each command is one row of slackctl_cmds: its name, usage, help,
 * options and handler; main() parses the options of the row
 * (slackctl_args: options anywhere, "--" ends them, -h and -s for every
 * command) and runs the handler, so a new command is a new row and a
 * function.  A command speaks the local protocol (protocol.h): it reads
 * slackd.hello, sends its requests and waits for the replies that carry
 * their ids.  Every message slackctl prints is one format string, so that
 * it can be grepped.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "protocol.h"
#include "slackctl_nats.h"

/* Exit statuses (slackctl(1)). */
#define SLACKCTL_OK          0
#define SLACKCTL_FAILED      1 /* Slack or slackd refused the request */
#define SLACKCTL_USAGE       2
#define SLACKCTL_UNREACHABLE 3           /* cannot connect to slackd */
#define SLACKCTL_LOST        4           /* connection lost or timed out */
#define SLACKCTL_QUEUED      EX_TEMPFAIL /* 75: send gave up, slackd has it */

#define SLACKCTL_SEND_WAIT 30 /* s: send's default -w */

#define SLACKCTL_MAX_STDIN (1024 * 1024)

struct slackctl_conn {
	int fd;
	const char *path;
	char *buf;
	size_t len;
	size_t cap;
	int eof;
	char state[32];   /* of the connection to Slack, as slackd said */
	char reason[256]; /* why, if slackd said */
	char seq[64];     /* hello's cursor of the newest event */
	struct slackctl_nats *nats; /* --nats: lines over NATS, fd is -1 */
};

/*
 * A command's parsed command line: the values of each option (by its
 * short letter; long-only options have a letter of their own too) and
 * the operands, in order.
 */
struct slackctl_opt {
	int n;
	char **v;
	int last; /* when it was last given: the later of two wins */
};
struct slackctl_args {
	const struct slackctl_cmd *cmd;
	struct slackctl_opt opt[128];
	int given; /* options so far */
	int argc;
	char **argv;
};

/* One command: a row of slackctl_cmds. */
struct slackctl_cmd {
	const char *name;
	const char *usage;   /* what follows the name in a usage line */
	const char *summary; /* what it does, for slackctl --help */
	const char *help;    /* its options, for slackctl COMMAND --help */
	const char *optstring;
	const struct option *longopts;
	int max_args; /* operands; -1: no limit */
	int (*exec)(struct slackctl_args *);
};

static const char *slackctl_socket;
/* --nats URL and its companions (or $SLACKD_NATS, $SLACKD_NATS_PREFIX, …) */
static const char *slackctl_nats_url;
static const char *slackctl_nats_prefix;
static const char *slackctl_nats_creds;
static const char *slackctl_nats_ca;

static void slackctl_die(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void
slackctl_die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("slackctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void *
slackctl_alloc(void *p, size_t n)
{
	if ((p = realloc(p, n)) == NULL)
		slackctl_die(SLACKCTL_FAILED, "out of memory");
	return p;
}

static char *
slackctl_strdup(const char *s)
{
	return strcpy(slackctl_alloc(NULL, strlen(s) + 1), s);
}

/* ---- the command line --------------------------------------------------- */

static int
slackctl_flag(const struct slackctl_args *a, int ch)
{
	return a->opt[ch].n > 0;
}

/* The option's value (the last one given), or NULL. */
static const char *
slackctl_value(const struct slackctl_args *a, int ch)
{
	return a->opt[ch].n > 0 ? a->opt[ch].v[a->opt[ch].n - 1] : NULL;
}

static void
slackctl_args_add(struct slackctl_args *a, int ch, char *value)
{
	struct slackctl_opt *o = &a->opt[ch];

	o->v = slackctl_alloc(o->v, (size_t)(o->n + 1) * sizeof *o->v);
	o->v[o->n++] = value;
	o->last = ++a->given;
}

static void
slackctl_args_free(struct slackctl_args *a)
{
	size_t i;

	for (i = 0; i < sizeof a->opt / sizeof a->opt[0]; i++)
		free(a->opt[i].v);
	free(a->argv);
}

/* ---- the connection ----------------------------------------------------- */

static const char *
slackctl_path(void)
{
	static char def[256];
	const char *env;

	if (slackctl_socket != NULL)
		return slackctl_socket;
	if ((env = getenv("SLACKD_SOCKET")) != NULL && *env != '\0')
		return env;
	if (protocol_client_socket(def, sizeof def) != 0)
		slackctl_die(
		    SLACKCTL_USAGE, "no socket: use -s or set SLACKD_SOCKET");
	return def;
}

/* --nats: the same conversation, over NATS (slackctl_nats.c). */
static void
slackctl_connect_nats(struct slackctl_conn *c)
{
	char *err = NULL;

	if (slackctl_nats_prefix == NULL)
		slackctl_die(SLACKCTL_USAGE,
		    "--nats needs --nats-prefix (or SLACKD_NATS_PREFIX): slackd's nats_prefix, slack.TEAM_ID unless its configuration says otherwise");
	c->fd = -1;
	c->path = slackctl_nats_public_url(slackctl_nats_url);
	c->nats = slackctl_nats_open(slackctl_nats_url, slackctl_nats_prefix,
	    slackctl_nats_creds, slackctl_nats_ca, &err);
	if (c->nats == NULL)
		slackctl_die(SLACKCTL_UNREACHABLE, "%s", err);
}

static void
slackctl_connect(struct slackctl_conn *c)
{
	struct sockaddr_un sun;

	memset(c, 0, sizeof *c);
	if (slackctl_nats_url != NULL) {
		slackctl_connect_nats(c);
		return;
	}
	c->path = slackctl_path();
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(c->path) >= sizeof sun.sun_path)
		slackctl_die(
		    SLACKCTL_USAGE, "socket path too long: %s", c->path);
	strcpy(sun.sun_path, c->path);
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		slackctl_die(
		    SLACKCTL_UNREACHABLE, "socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof sun) == 0)
		return;
	switch (errno) {
	case ENOENT:
	case ECONNREFUSED:
		slackctl_die(SLACKCTL_UNREACHABLE,
		    "slackd is not running (nothing listens on %s)", c->path);
	case EACCES:
	case EPERM:
		slackctl_die(SLACKCTL_UNREACHABLE,
		    "permission denied on %s: ask for access to slackd's socket (its group)",
		    c->path);
	default:
		slackctl_die(SLACKCTL_UNREACHABLE, "cannot connect to %s: %s",
		    c->path, strerror(errno));
	}
}

static void
slackctl_write(struct slackctl_conn *c, struct json_object *o)
{
	const char *s;
	size_t len, off = 0;
	ssize_t n;
	char *line;

	s = json_object_to_json_string_length(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (c->nats != NULL) {
		if (slackctl_nats_request(c->nats, s, len) != 0)
			slackctl_die(SLACKCTL_LOST,
			    "lost the connection to NATS at %s", c->path);
		return;
	}
	line = slackctl_alloc(NULL, len + 1);
	memcpy(line, s, len);
	line[len++] = '\n';
	while (off < len) {
		n = write(c->fd, line + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			slackctl_die(SLACKCTL_LOST,
			    "lost the connection to slackd: %s",
			    strerror(errno));
		off += (size_t)n;
	}
	free(line);
}

/* slackctl_line() over NATS. */
static char *
slackctl_line_nats(struct slackctl_conn *c, int timeout_ms, int *timed_out)
{
	char *line;
	int status;

	line = slackctl_nats_line(c->nats, timeout_ms, &status);
	if (status == SLACKCTL_NATS_DENIED)
		slackctl_die(
		    SLACKCTL_FAILED, "NATS at %s refused: %s", c->path, line);
	if (line != NULL)
		return line;
	if (status == SLACKCTL_NATS_NORESP)
		slackctl_die(SLACKCTL_UNREACHABLE,
		    "no slackd answers on %s.request at %s (is nats_url set there, and is that its nats_prefix?)",
		    slackctl_nats_prefix, c->path);
	if (status == SLACKCTL_NATS_TIMEOUT)
		*timed_out = 1;
	return NULL;
}

/*
 * The next line from slackd (NUL-terminated, owned by c until the next
 * call), or NULL at end of file or after timeout_ms (-1: no limit).
 */
static char *
slackctl_line(struct slackctl_conn *c, int timeout_ms, int *timed_out)
{
	struct pollfd pfd;
	char *nl, *line;
	ssize_t n;
	size_t used;
	int rc;

	*timed_out = 0;
	if (c->nats != NULL)
		return slackctl_line_nats(c, timeout_ms, timed_out);
	for (;;) {
		if (c->len > 0 && (nl = memchr(c->buf, '\n', c->len)) != NULL) {
			used = (size_t)(nl - c->buf) + 1;
			line = slackctl_alloc(NULL, used);
			memcpy(line, c->buf, used - 1);
			line[used - 1] = '\0';
			memmove(c->buf, c->buf + used, c->len - used);
			c->len -= used;
			return line;
		}
		if (c->eof)
			return NULL;
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		rc = poll(&pfd, 1, timeout_ms);
		if (rc == -1 && errno == EINTR)
			continue;
		if (rc == 0) {
			*timed_out = 1;
			return NULL;
		}
		if (c->cap - c->len < 65536) {
			c->cap = c->cap * 2 + 65536;
			c->buf = slackctl_alloc(c->buf, c->cap);
		}
		n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			c->eof = 1;
		else
			c->len += (size_t)n;
	}
}

static struct json_object *
slackctl_parse(const char *line)
{
	struct json_object *o;

	o = json_tokener_parse(line);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int
slackctl_is_type(struct json_object *o, const char *type)
{
	const char *t = protocol_json_str(o, "type");

	return t != NULL && strcmp(t, type) == 0;
}

/* Remember what hello or a slackd.state says of the connection to Slack. */
static void
slackctl_track_state(struct slackctl_conn *c, struct json_object *o)
{
	const char *state = protocol_json_str(o, "state");
	const char *reason = protocol_json_str(o, "reason");

	if (state == NULL)
		return;
	snprintf(c->state, sizeof c->state, "%s", state);
	snprintf(
	    c->reason, sizeof c->reason, "%s", reason != NULL ? reason : "");
}

/* Read and check slackd.hello. */
static void
slackctl_hello(struct slackctl_conn *c)
{
	struct json_object *o, *v;
	char *line;
	int to, proto;

	if (c->nats != NULL) {
		/* No greeting over NATS: a status request stands for it. */
		o = json_object_new_object();
		json_object_object_add(
		    o, "type", json_object_new_string(PROTOCOL_STATUS));
		slackctl_write(c, o);
		json_object_put(o);
	}
	if ((line = slackctl_line(c, 10000, &to)) == NULL)
		slackctl_die(to ? SLACKCTL_LOST : SLACKCTL_UNREACHABLE,
		    "%s: no greeting from slackd%s", c->path,
		    to ? " within 10 s" : " (connection closed)");
	o = slackctl_parse(line);
	if (o != NULL && slackctl_is_type(o, PROTOCOL_ERROR) &&
	    json_object_object_get_ex(o, "error", &v)) {
		char msg[512];
		const char *m = protocol_json_str(v, "msg");

		/* Freed first: nothing left for a leak checker at exit. */
		snprintf(msg, sizeof msg, "%s", m != NULL ? m : "refused");
		json_object_put(o);
		free(line);
		slackctl_die(
		    SLACKCTL_UNREACHABLE, "slackd refused us: %s", msg);
	}
	if (o == NULL ||
	    !slackctl_is_type(
	        o, c->nats != NULL ? PROTOCOL_STATUS : PROTOCOL_HELLO))
		slackctl_die(SLACKCTL_UNREACHABLE,
		    "%s does not look like slackd (first line: %.80s)", c->path,
		    line);
	proto = json_object_object_get_ex(o, "protocol", &v)
	    ? json_object_get_int(v)
	    : 0;
	if (proto != SLACKD_PROTOCOL)
		slackctl_die(SLACKCTL_UNREACHABLE,
		    "slackd speaks protocol %d, this slackctl speaks %d", proto,
		    SLACKD_PROTOCOL);
	slackctl_track_state(c, o);
	snprintf(c->seq, sizeof c->seq, "%s",
	    protocol_json_str(o, "seq") != NULL ? protocol_json_str(o, "seq")
	                                        : "");
	json_object_put(o);
	free(line);
}

/*
 * Wait for the reply to id; returns it (parsed), or NULL after timeout_ms
 * (-1: no limit); exits if the connection ends.  Other lines that arrive
 * meanwhile go to other(line, o, arg) if given.
 */
static struct json_object *
slackctl_await(struct slackctl_conn *c, int id, int timeout_ms, char **raw,
    void (*other)(const char *, struct json_object *, void *), void *arg)
{
	struct json_object *o, *v;
	char *line;
	int64_t deadline = -1, left;
	struct timespec ts;
	int to;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (timeout_ms >= 0)
		deadline =
		    ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 + timeout_ms;
	for (;;) {
		left = -1;
		if (deadline >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			left = deadline -
			    (ts.tv_sec * 1000LL + ts.tv_nsec / 1000000);
			if (left < 0)
				left = 0;
		}
		if ((line = slackctl_line(c, (int)left, &to)) == NULL) {
			if (to)
				return NULL;
			slackctl_die(SLACKCTL_LOST,
			    "slackd closed the connection before answering");
		}
		o = slackctl_parse(line);
		if (o != NULL && json_object_object_get_ex(o, "reply_to", &v) &&
		    json_object_is_type(v, json_type_int) &&
		    json_object_get_int(v) == id) {
			if (raw != NULL)
				*raw = line;
			else
				free(line);
			return o;
		}
		if (o != NULL && slackctl_is_type(o, PROTOCOL_STATE))
			slackctl_track_state(c, o);
		if (other != NULL)
			other(line, o, arg);
		json_object_put(o);
		free(line);
	}
}

/* The reply to id (parsed); exits if none comes within timeout_ms. */
static struct json_object *
slackctl_reply(struct slackctl_conn *c, int id, int timeout_ms, char **raw,
    void (*other)(const char *, struct json_object *, void *), void *arg)
{
	struct json_object *o;

	if ((o = slackctl_await(c, id, timeout_ms, raw, other, arg)) == NULL)
		slackctl_die(SLACKCTL_LOST,
		    "no answer from slackd within %.1f s (the request may still be sent)",
		    timeout_ms / 1000.0);
	return o;
}

/* Print Slack's or slackd's error from a reply, and exit. */
static void
slackctl_refused(struct json_object *o, const char *what)
{
	struct json_object *e, *v;
	const char *msg = NULL, *name = NULL;
	int code = 0;

	if (json_object_object_get_ex(o, "error", &e)) {
		if (json_object_is_type(e, json_type_string))
			msg = json_object_get_string(e);
		else {
			msg = protocol_json_str(e, "msg");
			name = protocol_json_str(e, "name");
			if (json_object_object_get_ex(e, "code", &v))
				code = json_object_get_int(v);
		}
	}
	if (code >= PROTOCOL_E_BAD_JSON)
		slackctl_die(SLACKCTL_FAILED, "%s: %s [slackd: %s]", what,
		    msg != NULL ? msg : "error", name != NULL ? name : "?");
	slackctl_die(SLACKCTL_FAILED, "%s: Slack said: %s (code %d)", what,
	    msg != NULL ? msg : "error", code);
}

/* ---- send -------------------------------------------------------------- */

static char *
slackctl_join(int argc, char **argv)
{
	size_t len = 0;
	char *s;
	int i;

	for (i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	s = slackctl_alloc(NULL, len + 1);
	*s = '\0';
	for (i = 0; i < argc; i++) {
		if (i > 0)
			strcat(s, " ");
		strcat(s, argv[i]);
	}
	return s;
}

/* The contents of path ("-": standard input), at most 1 MiB. */
static char *
slackctl_file(const char *path)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;
	const char *what = strcmp(path, "-") == 0 ? "standard input" : path;

	if (strcmp(path, "-") == 0)
		fd = STDIN_FILENO;
	else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		slackctl_die(SLACKCTL_USAGE, "cannot open %s: %s", path,
		    strerror(errno));
	for (;;) {
		if (cap - len < 4096) {
			cap = cap * 2 + 4096;
			buf = slackctl_alloc(buf, cap + 1);
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			slackctl_die(SLACKCTL_FAILED, "reading %s: %s", what,
			    strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > SLACKCTL_MAX_STDIN)
			slackctl_die(SLACKCTL_USAGE,
			    "%s is longer than %d bytes", what,
			    SLACKCTL_MAX_STDIN);
	}
	if (fd != STDIN_FILENO)
		close(fd);
	buf[len] = '\0';
	return buf;
}

/* The text to send from standard input, without its final newlines. */
static char *
slackctl_stdin(void)
{
	char *buf = slackctl_file("-");
	size_t len = strlen(buf);

	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	return buf;
}

/*
 * Blocks or attachments from a file: a JSON array, or an object holding
 * one under key (what Slack's Block Kit Builder exports).
 */
static struct json_object *
slackctl_json_array(const char *path, const char *key)
{
	struct json_object *o, *v;
	char *text = slackctl_file(path);

	o = json_tokener_parse(text);
	free(text);
	if (o != NULL && json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_array)) {
		json_object_get(v);
		json_object_put(o);
		o = v;
	}
	if (o == NULL || !json_object_is_type(o, json_type_array))
		slackctl_die(SLACKCTL_USAGE,
		    "%s does not hold a JSON array of %s (or an object with \"%s\")",
		    path, key, key);
	return o;
}

/* What send was asked to post. */
struct slackctl_message {
	const char *channel;
	const char *thread;
	char *text;
	struct json_object *blocks;
	struct json_object *attachments;
	int broadcast;
	int unfurl;      /* -1: Slack decides */
	int post;        /* chat.postMessage rather than RTM */
	int wait_ms;     /* -1: no limit */
	char queued[32]; /* slackd's number for it (slackd.queued), or "" */
};

/* slackd.queued for our request: remember slackd's number for it. */
static void
slackctl_send_notice(const char *line, struct json_object *o, void *arg)
{
	struct slackctl_message *m = arg;
	struct json_object *v;

	(void)line;
	if (o == NULL || !slackctl_is_type(o, PROTOCOL_QUEUED) ||
	    !json_object_object_get_ex(o, "request", &v) ||
	    json_object_get_int(v) != 1 ||
	    !json_object_object_get_ex(o, "message", &v))
		return;
	snprintf(m->queued, sizeof m->queued, "%lld",
	    (long long)json_object_get_int64(v));
}

/*
 * No answer within -w: slackd keeps the message (it is a command, like a
 * mail handed to an MTA) and sends it once it can, without us.
 */
static void
slackctl_send_queued(struct slackctl_conn *c, struct slackctl_message *m)
{
	double secs = m->wait_ms / 1000.0;
	char as[64] = "";

	if (m->queued[0] != '\0')
		snprintf(as, sizeof as, " as message %s", m->queued);
	if (strcmp(c->state, PROTOCOL_STATE_RECONNECTING) == 0 ||
	    strcmp(c->state, PROTOCOL_STATE_CONNECTING) == 0)
		slackctl_die(SLACKCTL_QUEUED,
		    "send: Slack is not reachable (slackd is %s%s%s) and did not answer within %g s: the message to %s is queued in slackd%s and will be sent when Slack is back",
		    c->state, c->reason[0] != '\0' ? ": " : "", c->reason, secs,
		    m->channel, as);
	slackctl_die(SLACKCTL_QUEUED,
	    "send: no answer from Slack within %g s: the message to %s is still in slackd%s (queued, or sent and waiting for Slack's acknowledgement), which does not withdraw it",
	    secs, m->channel, as);
}

/* Slack or slackd refused the message: say why, and exit. */
static void
slackctl_send_refused(struct json_object *rep)
{
	struct json_object *e, *v;
	const char *msg, *cut;

	if (!json_object_object_get_ex(rep, "error", &e) ||
	    !json_object_object_get_ex(e, "code", &v) ||
	    json_object_get_int(v) != PROTOCOL_E_TOO_LONG ||
	    (msg = protocol_json_str(e, "msg")) == NULL)
		slackctl_refused(rep, "send");
	/* slackd names its request type; we name our option. */
	cut = strstr(msg, "; " PROTOCOL_POST);
	slackctl_die(SLACKCTL_FAILED,
	    "send: %.*s; slackctl send --post sends longer texts (with chat.postMessage) [slackd: too_long]",
	    (int)(cut != NULL ? (size_t)(cut - msg) : strlen(msg)), msg);
}

/* The options of send, checked. */
static void
slackctl_send_options(struct slackctl_args *a, struct slackctl_message *m)
{
	const char *blocks = slackctl_value(a, 'B');
	const char *attach = slackctl_value(a, 'A');
	const char *w = slackctl_value(a, 'w');
	double wait = SLACKCTL_SEND_WAIT;
	char *end;

	if (a->argc < 1)
		slackctl_die(SLACKCTL_USAGE,
		    "send: which channel? (usage: slackctl send CHANNEL [TEXT...])");
	memset(m, 0, sizeof *m);
	m->channel = a->argv[0];
	m->thread = slackctl_value(a, 't');
	m->broadcast = slackctl_flag(a, 'b');
	m->unfurl = -1;
	if (slackctl_flag(a, 'U') || slackctl_flag(a, 'N'))
		m->unfurl = a->opt['U'].last > a->opt['N'].last;
	if (w != NULL) {
		wait = strtod(w, &end);
		if (*w == '\0' || *end != '\0' || !(wait >= 0) ||
		    wait > INT_MAX / 1000)
			slackctl_die(SLACKCTL_USAGE, "-w wants seconds");
	}
	m->wait_ms = wait == 0 ? -1 : (int)(wait * 1000);
	if (m->broadcast && m->thread == NULL)
		slackctl_die(SLACKCTL_USAGE, "send: -b needs -t thread_ts");
	if (blocks != NULL && attach != NULL && strcmp(blocks, "-") == 0 &&
	    strcmp(attach, "-") == 0)
		slackctl_die(SLACKCTL_USAGE,
		    "send: only one of --blocks and --attachments can read standard input");
	m->post = slackctl_flag(a, 'p') || blocks != NULL || attach != NULL ||
	    m->unfurl >= 0;
	if (blocks != NULL)
		m->blocks = slackctl_json_array(blocks, "blocks");
	if (attach != NULL)
		m->attachments = slackctl_json_array(attach, "attachments");
}

/* The text: the operands after the channel, or standard input. */
static void
slackctl_send_text(struct slackctl_args *a, struct slackctl_message *m)
{
	/* With blocks or attachments, text (the fallback) is only from argv. */
	if (a->argc > 1)
		m->text = slackctl_join(a->argc - 1, a->argv + 1);
	else if (m->blocks != NULL || m->attachments != NULL)
		m->text = slackctl_join(0, NULL);
	else
		m->text = slackctl_stdin();
	if (m->text[0] == '\0' && m->blocks == NULL && m->attachments == NULL)
		slackctl_die(SLACKCTL_USAGE, "send: nothing to send");
}

/* Plain text goes over RTM; anything richer with chat.postMessage. */
static struct json_object *
slackctl_send_request(struct slackctl_message *m)
{
	struct json_object *req = json_object_new_object();

	json_object_object_add(req, "id", json_object_new_int(1));
	json_object_object_add(req, "type",
	    json_object_new_string(m->post ? PROTOCOL_POST : "message"));
	json_object_object_add(
	    req, "queued_notice", json_object_new_boolean(1));
	json_object_object_add(
	    req, "channel", json_object_new_string(m->channel));
	if (m->text[0] != '\0')
		json_object_object_add(
		    req, "text", json_object_new_string(m->text));
	if (m->thread != NULL)
		json_object_object_add(
		    req, "thread_ts", json_object_new_string(m->thread));
	if (m->broadcast)
		json_object_object_add(
		    req, "reply_broadcast", json_object_new_boolean(1));
	if (m->blocks != NULL)
		json_object_object_add(req, "blocks", m->blocks);
	if (m->attachments != NULL)
		json_object_object_add(req, "attachments", m->attachments);
	m->blocks = m->attachments = NULL; /* req owns them */
	if (m->unfurl >= 0) {
		json_object_object_add(
		    req, "unfurl_links", json_object_new_boolean(m->unfurl));
		json_object_object_add(
		    req, "unfurl_media", json_object_new_boolean(m->unfurl));
	}
	return req;
}

/* Ask for no events: only our reply will come. */
static void
slackctl_send_quiet(struct slackctl_conn *c)
{
	struct json_object *sub = json_object_new_object();

	json_object_object_add(
	    sub, "type", json_object_new_string(PROTOCOL_SUBSCRIBE));
	json_object_object_add(sub, "types", json_object_new_array());
	slackctl_write(c, sub);
	json_object_put(sub);
}

static int
slackctl_send(struct slackctl_args *a)
{
	static struct slackctl_conn c; /* static: reachable at exit */
	struct slackctl_message m;
	struct json_object *req, *rep, *v;

	slackctl_send_options(a, &m);
	slackctl_send_text(a, &m);
	slackctl_connect(&c);
	slackctl_hello(&c);
	slackctl_send_quiet(&c);
	req = slackctl_send_request(&m);
	slackctl_write(&c, req);
	json_object_put(req);
	free(m.text);

	if ((rep = slackctl_await(
	         &c, 1, m.wait_ms, NULL, slackctl_send_notice, &m)) == NULL)
		slackctl_send_queued(&c, &m);
	if (!json_object_object_get_ex(rep, "ok", &v) ||
	    !json_object_get_boolean(v))
		slackctl_send_refused(rep);
	printf("%s\n",
	    protocol_json_str(rep, "ts") != NULL ? protocol_json_str(rep, "ts")
	                                         : "");
	json_object_put(rep);
	close(c.fd);
	free(c.buf);
	return SLACKCTL_OK;
}

/* ---- channels, users -------------------------------------------------- */

/*
 * slackd.names: the list of channels (users 0) or users; exits on error.
 * Events that come meanwhile go to other(line, o, arg), if given.
 */
static struct json_object *
slackctl_names(struct slackctl_conn *c, int users,
    void (*other)(const char *, struct json_object *, void *), void *arg)
{
	struct json_object *req, *rep, *list, *v;
	static int id = 100;

	req = json_object_new_object();
	json_object_object_add(req, "id", json_object_new_int(++id));
	json_object_object_add(
	    req, "type", json_object_new_string(PROTOCOL_NAMES));
	json_object_object_add(
	    req, "kind", json_object_new_string(users ? "users" : "channels"));
	slackctl_write(c, req);
	json_object_put(req);
	rep = slackctl_reply(c, id, 300 * 1000, NULL, other, arg);
	if (!json_object_object_get_ex(rep, "ok", &v) ||
	    !json_object_get_boolean(v))
		slackctl_refused(rep, users ? "users" : "channels");
	if (!json_object_object_get_ex(
	        rep, users ? "users" : "channels", &list) ||
	    !json_object_is_type(list, json_type_array))
		slackctl_die(SLACKCTL_FAILED, "slackd sent no list");
	json_object_get(list);
	json_object_put(rep);
	return list;
}

static const char *slackctl_sort_key;

static int
slackctl_by_key(const void *a, const void *b)
{
	const char *x = protocol_json_str(
	    *(struct json_object *const *)a, slackctl_sort_key);
	const char *y = protocol_json_str(
	    *(struct json_object *const *)b, slackctl_sort_key);

	if (x == NULL || y == NULL)
		return (x == NULL) - (y == NULL);
	return strcmp(x, y);
}

static void
slackctl_list_print(struct json_object *o, int users)
{
	const char *name = protocol_json_str(o, "name");
	const char *id = protocol_json_str(o, "id");
	const char *real, *kind, *user;

	if (users) {
		real = protocol_json_str(o, "real_name");
		printf("%-12s @%-24s %s%s\n", id, name != NULL ? name : "?",
		    real != NULL ? real : "",
		    json_object_object_get_ex(o, "deleted", NULL)
		        ? " (deactivated)"
		        : "");
		return;
	}
	kind = protocol_json_str(o, "kind");
	user = protocol_json_str(o, "user");
	if (kind != NULL && strcmp(kind, "im") == 0)
		printf("%-12s @%-24s direct message\n", id,
		    user != NULL ? user : "?");
	else
		printf("%-12s #%-24s %s%s\n", id, name != NULL ? name : "?",
		    kind != NULL ? kind : "",
		    json_object_object_get_ex(o, "archived", NULL)
		        ? ", archived"
		        : "");
}

static int
slackctl_list(struct slackctl_args *a, int users)
{
	static struct slackctl_conn c; /* static: reachable at exit */
	struct json_object *list;
	size_t i, n;

	slackctl_connect(&c);
	slackctl_hello(&c);
	list = slackctl_names(&c, users, NULL, NULL);
	if (slackctl_flag(a, 'j')) {
		printf("%s\n",
		    json_object_to_json_string_ext(list,
		        JSON_C_TO_STRING_PLAIN |
		            JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(list);
		return SLACKCTL_OK;
	}
	slackctl_sort_key = "name";
	json_object_array_sort(list, slackctl_by_key);
	n = json_object_array_length(list);
	for (i = 0; i < n; i++)
		slackctl_list_print(json_object_array_get_idx(list, i), users);
	json_object_put(list);
	close(c.fd);
	free(c.buf);
	return SLACKCTL_OK;
}

static int
slackctl_channels(struct slackctl_args *a)
{
	return slackctl_list(a, 0);
}

static int
slackctl_users(struct slackctl_args *a)
{
	return slackctl_list(a, 1);
}

/* ---- listen ------------------------------------------------------------ */

static void
slackctl_tell_state(struct json_object *o)
{
	struct json_object *v;
	const char *state = protocol_json_str(o, "state");
	const char *reason = protocol_json_str(o, "reason");

	if (state == NULL)
		return;
	if (strcmp(state, PROTOCOL_STATE_RECONNECTING) == 0 &&
	    json_object_object_get_ex(o, "retry_in", &v))
		fprintf(stderr,
		    "slackctl: slackd is reconnecting in %.1f s (%s)\n",
		    json_object_get_double(v),
		    reason != NULL ? reason : "connection lost");
	else if (strcmp(state, PROTOCOL_STATE_CONNECTED) == 0)
		fprintf(stderr, "slackctl: slackd is connected to Slack\n");
	else if (strcmp(state, PROTOCOL_STATE_FAILED) == 0)
		fprintf(stderr, "slackctl: slackd gave up: %s\n",
		    reason != NULL ? reason : "failed");
}

struct slackctl_names {
	struct json_object *channels; /* id -> "#name" or "@user" */
	struct json_object *users;    /* id -> "@name" */
	struct json_object *lists[2]; /* slackd.names: channels, users */
};

/* What listen prints, and how. */
struct slackctl_filter {
	struct json_object *types;
	struct json_object *channels;
	struct slackctl_names names;
	int named;          /* --names */
	int textual;        /* --format text */
	int all;            /* --all: slackd's own messages too */
	const char *since;  /* --since, or the --resume file's cursor */
	const char *resume; /* --resume: where the cursor is kept */
	char *tmp;          /* resume's temporary file */
	char cursor[72];    /* the cursor being saved, "\n" included */
	int pending;        /* tmp holds cursor, not renamed yet */
};

static void slackctl_print_event(
    const char *, struct json_object *, struct slackctl_filter *);

static int
slackctl_listed(struct json_object *list, const char *s)
{
	size_t i;

	if (list == NULL)
		return 1;
	if (s == NULL)
		return 0;
	for (i = 0; i < json_object_array_length(list); i++) {
		if (strcmp(json_object_get_string(
		               json_object_array_get_idx(list, i)),
		        s) == 0)
			return 1;
	}
	return 0;
}

/*
 * An event that came before slackd applied our subscription: print it if
 * the subscription would have let it through.
 */
static void
slackctl_early(const char *line, struct json_object *o, void *arg)
{
	struct slackctl_filter *f = arg;
	const char *t = protocol_json_str(o, "type");

	if (o == NULL || (t != NULL && strncmp(t, "slackd.", 7) == 0))
		return;
	if (slackctl_listed(f->types, t) &&
	    slackctl_listed(f->channels, protocol_json_str(o, "channel")))
		slackctl_print_event(line, o, f);
}

/* ---- names for listen --names / --format text ------------------------- */

static void
slackctl_names_add(struct json_object *map, const char *id, const char *prefix,
    const char *name)
{
	char buf[512];

	if (id == NULL || name == NULL)
		return;
	snprintf(buf, sizeof buf, "%s%s", prefix, name);
	json_object_object_add(map, id, json_object_new_string(buf));
}

/* The list of channels (users 0) or users, asked of slackd once. */
static struct json_object *
slackctl_names_list(struct slackctl_conn *c, struct slackctl_names *n,
    int users, void (*other)(const char *, struct json_object *, void *),
    void *arg)
{
	if (n->lists[users] == NULL)
		n->lists[users] = slackctl_names(c, users, other, arg);
	return n->lists[users];
}

/* ---- channels for listen -c ------------------------------------------- */

/*
 * Is s an ID starting with one of first?  2: surely (it has digits, or it
 * is Slackbot's); 1: it could be ("GENERAL" is more likely a name); 0: no.
 * The daemon's rule (names.c), so that listen -c reads a channel as send
 * does.
 */
static int
slackctl_is_id(const char *s, const char *first)
{
	const char *p;
	int digits = 0;

	if (s[0] == '\0' || strchr(first, s[0]) == NULL || s[1] == '\0')
		return 0;
	for (p = s + 1; *p != '\0'; p++) {
		if (*p >= '0' && *p <= '9')
			digits++;
		else if (*p < 'A' || *p > 'Z')
			return 0;
	}
	return digits > 0 || strcmp(s, "USLACKBOT") == 0 ? 2 : 1;
}

/*
 * The ID of the entry of list named name (any case), or NULL.  As in the
 * daemon, archived conversations, DMs and deactivated users have no name.
 */
static const char *
slackctl_named(struct json_object *list, const char *name)
{
	struct json_object *o;
	const char *n;
	size_t i;

	for (i = 0; i < json_object_array_length(list); i++) {
		o = json_object_array_get_idx(list, i);
		if ((n = protocol_json_str(o, "name")) != NULL &&
		    strcasecmp(n, name) == 0 &&
		    !json_object_object_get_ex(o, "archived", NULL) &&
		    !json_object_object_get_ex(o, "deleted", NULL))
			return protocol_json_str(o, "id");
	}
	return NULL;
}

/* Open the DM with user through slackd (conversations.open). */
static char *
slackctl_open_dm(struct slackctl_conn *c, const char *target, const char *user)
{
	struct json_object *req, *params, *rep, *e = NULL, *ch;
	static int id = 200;
	const char *dm, *why;
	char *s;

	req = json_object_new_object();
	json_object_object_add(req, "id", json_object_new_int(++id));
	json_object_object_add(
	    req, "type", json_object_new_string(PROTOCOL_API));
	json_object_object_add(
	    req, "method", json_object_new_string("conversations.open"));
	params = json_object_new_object();
	json_object_object_add(params, "users", json_object_new_string(user));
	json_object_object_add(req, "params", params);
	slackctl_write(c, req);
	json_object_put(req);
	rep = slackctl_reply(c, id, 300 * 1000, NULL, NULL, NULL);
	if (json_object_object_get_ex(rep, "channel", &ch) &&
	    (dm = protocol_json_str(ch, "id")) != NULL) {
		s = slackctl_strdup(dm);
		json_object_put(rep);
		return s;
	}
	json_object_object_get_ex(rep, "error", &e);
	why = json_object_is_type(e, json_type_string)
	    ? json_object_get_string(e)
	    : protocol_json_str(e, "msg");
	slackctl_die(SLACKCTL_FAILED,
	    "listen: cannot open the direct message with %s: %s", target,
	    why != NULL ? why : "no channel in slackd's answer");
}

/* The DM with the user of target (@name or a user ID). */
static char *
slackctl_dm(
    struct slackctl_conn *c, struct slackctl_names *n, const char *target)
{
	struct json_object *list, *o;
	const char *user = target, *u;
	size_t i;

	if (*target == '@') {
		list = slackctl_names_list(c, n, 1, NULL, NULL);
		if ((user = slackctl_named(list, target + 1)) == NULL)
			slackctl_die(SLACKCTL_FAILED,
			    "listen: no user named %s among the %zu users slackd knows",
			    target, json_object_array_length(list));
	}
	list = slackctl_names_list(c, n, 0, NULL, NULL);
	for (i = 0; i < json_object_array_length(list); i++) {
		o = json_object_array_get_idx(list, i);
		if ((u = protocol_json_str(o, "user")) != NULL &&
		    strcmp(u, user) == 0 && protocol_json_str(o, "id") != NULL)
			return slackctl_strdup(protocol_json_str(o, "id"));
	}
	return slackctl_open_dm(c, target, user);
}

/* A channel for listen -c, as the daemon reads a target: its ID. */
static char *
slackctl_resolve(
    struct slackctl_conn *c, struct slackctl_names *n, const char *target)
{
	struct json_object *list;
	const char *id;

	if (slackctl_is_id(target, "CGD") == 2)
		return slackctl_strdup(target);
	if (*target == '@' || slackctl_is_id(target, "UW") == 2)
		return slackctl_dm(c, n, target);
	list = slackctl_names_list(c, n, 0, NULL, NULL);
	if ((id = slackctl_named(list, *target == '#' ? target + 1 : target)) !=
	    NULL)
		return slackctl_strdup(id);
	if (slackctl_is_id(target, "CGD"))
		return slackctl_strdup(target);
	if (slackctl_is_id(target, "UW"))
		return slackctl_dm(c, n, target);
	slackctl_die(SLACKCTL_FAILED,
	    "listen: no channel named %s among the %zu conversations slackd can see (-c takes an ID, a name, #name, @user or a user ID)",
	    target, json_object_array_length(list));
}

/*
 * listen -c takes what send takes: replace names with IDs, which is what
 * slackd.subscribe compares.  Meanwhile no events are wanted.
 */
static void
slackctl_listen_resolve(struct slackctl_conn *c, struct slackctl_filter *f)
{
	struct json_object *ids, *sub;
	const char *target;
	char *id;
	size_t i, n = json_object_array_length(f->channels);

	for (i = 0; i < n; i++) {
		target = json_object_get_string(
		    json_object_array_get_idx(f->channels, i));
		if (slackctl_is_id(target, "CGD") != 2)
			break;
	}
	if (i == n)
		return; /* IDs only: nothing to ask */
	sub = json_object_new_object();
	json_object_object_add(
	    sub, "type", json_object_new_string(PROTOCOL_SUBSCRIBE));
	json_object_object_add(sub, "types", json_object_new_array());
	slackctl_write(c, sub);
	json_object_put(sub);
	ids = json_object_new_array();
	for (i = 0; i < n; i++) {
		id = slackctl_resolve(c, &f->names,
		    json_object_get_string(
		        json_object_array_get_idx(f->channels, i)));
		json_object_array_add(ids, json_object_new_string(id));
		free(id);
	}
	json_object_put(f->channels);
	f->channels = ids;
}

static void
slackctl_names_load(struct slackctl_conn *c, struct slackctl_names *n,
    void (*other)(const char *, struct json_object *, void *), void *arg)
{
	struct json_object *list, *o;
	const char *name;
	size_t i;

	n->channels = json_object_new_object();
	n->users = json_object_new_object();
	list = slackctl_names_list(c, n, 1, other, arg);
	for (i = 0; i < json_object_array_length(list); i++) {
		o = json_object_array_get_idx(list, i);
		slackctl_names_add(n->users, protocol_json_str(o, "id"), "@",
		    protocol_json_str(o, "name"));
	}
	list = slackctl_names_list(c, n, 0, other, arg);
	for (i = 0; i < json_object_array_length(list); i++) {
		o = json_object_array_get_idx(list, i);
		if ((name = protocol_json_str(o, "name")) != NULL)
			slackctl_names_add(
			    n->channels, protocol_json_str(o, "id"), "#", name);
		else if (protocol_json_str(o, "user") != NULL &&
		    json_object_object_get_ex(
		        n->users, protocol_json_str(o, "user"), NULL))
			slackctl_names_add(n->channels,
			    protocol_json_str(o, "id"), "",
			    protocol_json_str(
			        n->users, protocol_json_str(o, "user")));
	}
}

/* Keep the names up to date from the events that change them. */
static void
slackctl_names_track(struct slackctl_names *n, struct json_object *ev)
{
	struct json_object *o;

	if (json_object_object_get_ex(ev, "channel", &o) &&
	    json_object_is_type(o, json_type_object))
		slackctl_names_add(n->channels, protocol_json_str(o, "id"), "#",
		    protocol_json_str(o, "name"));
	if (json_object_object_get_ex(ev, "user", &o) &&
	    json_object_is_type(o, json_type_object))
		slackctl_names_add(n->users, protocol_json_str(o, "id"), "@",
		    protocol_json_str(o, "name"));
}

static const char *
slackctl_name_of(struct json_object *map, const char *id)
{
	const char *name = id != NULL ? protocol_json_str(map, id) : NULL;

	return name != NULL ? name : id;
}

/* "channel" and "user" IDs replaced with #names and @names. */
static void
slackctl_print_named(struct json_object *ev, struct slackctl_names *n)
{
	const char *ch = protocol_json_str(ev, "channel");
	const char *user = protocol_json_str(ev, "user");

	if (ch != NULL)
		json_object_object_add(ev, "channel",
		    json_object_new_string(slackctl_name_of(n->channels, ch)));
	if (user != NULL)
		json_object_object_add(ev, "user",
		    json_object_new_string(slackctl_name_of(n->users, user)));
	puts(json_object_to_json_string_ext(
	    ev, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* "07:31:02 #general @alice: the text" */
static void
slackctl_print_text(struct json_object *ev, struct slackctl_names *n)
{
	const char *type = protocol_json_str(ev, "type");
	const char *ch = protocol_json_str(ev, "channel");
	const char *user = protocol_json_str(ev, "user");
	const char *text = protocol_json_str(ev, "text");
	const char *ts = protocol_json_str(ev, "ts");
	char when[16];
	time_t t = ts != NULL ? (time_t)strtoll(ts, NULL, 10) : time(NULL);

	strftime(when, sizeof when, "%H:%M:%S", localtime(&t));
	printf("%s", when);
	if (type != NULL && strcmp(type, "message") != 0)
		printf(" [%s]", type);
	if (ch != NULL)
		printf(" %s", slackctl_name_of(n->channels, ch));
	if (user != NULL)
		printf(" %s", slackctl_name_of(n->users, user));
	if (text != NULL)
		printf(": %s", text);
	putchar('\n');
}

/* ---- listen --resume: the cursor kept in a file ----------------------- */

/* A cursor as slackd writes them: RUN:N. */
static int
slackctl_cursor_ok(const char *s)
{
	const char *colon = strchr(s, ':'), *p;

	if (colon == NULL || colon == s || colon - s > 16 || colon[1] == '\0')
		return 0;
	for (p = s; p < colon; p++) {
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return 0;
	}
	for (p = colon + 1; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return 0;
	}
	return strlen(colon + 1) <= 20;
}

/* The cursor kept in path, or NULL if there is none yet. */
static char *
slackctl_resume_read(const char *path)
{
	char buf[128];
	size_t n;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		if (errno == ENOENT)
			return NULL;
		slackctl_die(SLACKCTL_USAGE, "listen: cannot read %s: %s", path,
		    strerror(errno));
	}
	n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (n == 0)
		return NULL;
	if (!slackctl_cursor_ok(buf))
		slackctl_die(SLACKCTL_USAGE,
		    "listen: %s does not hold a cursor (RUN:N, as listen --resume writes it)",
		    path);
	return slackctl_strdup(buf);
}

/*
 * Keeping the cursor: before an event is printed its cursor is written to
 * a temporary file, which replaces the file once the event is out
 * (rename(2) is atomic: the file always holds a whole cursor, the last
 * event printed, whenever slackctl dies).
 */
static void
slackctl_resume_prepare(struct slackctl_filter *f, const char *cursor)
{
	size_t len;
	int fd;

	snprintf(f->cursor, sizeof f->cursor, "%s\n", cursor);
	len = strlen(f->cursor);
	fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1 || write(fd, f->cursor, len) != (ssize_t)len)
		slackctl_die(SLACKCTL_FAILED, "listen: cannot write %s: %s",
		    f->tmp, strerror(errno));
	close(fd);
	f->pending = 1;
}

static void
slackctl_resume_commit(struct slackctl_filter *f)
{
	if (!f->pending)
		return;
	if (rename(f->tmp, f->resume) == -1)
		slackctl_die(SLACKCTL_FAILED,
		    "listen: cannot rename %s to %s: %s", f->tmp, f->resume,
		    strerror(errno));
	f->pending = 0;
}

/* An event's cursor (its "slackd_seq"), copied into buf, or NULL. */
static const char *
slackctl_event_cursor(
    const char *line, struct json_object *o, char *buf, size_t size)
{
	static const char head[] = "{\"" PROTOCOL_SEQ "\":\"";
	const char *s = NULL, *end;

	if (o != NULL)
		s = protocol_json_str(o, PROTOCOL_SEQ);
	else if (line != NULL && strncmp(line, head, sizeof head - 1) == 0 &&
	    (end = strchr(line + sizeof head - 1, '"')) != NULL &&
	    (size_t)(end - line) - (sizeof head - 1) < size) {
		memcpy(buf, line + sizeof head - 1,
		    (size_t)(end - line) - (sizeof head - 1));
		buf[(size_t)(end - line) - (sizeof head - 1)] = '\0';
		return buf;
	}
	if (s == NULL || strlen(s) >= size)
		return NULL;
	return strcpy(buf, s);
}

static void slackctl_print_plain(
    const char *, struct json_object *, struct slackctl_filter *);

/* One event as listen prints it; o is line parsed, or NULL if not yet. */
static void
slackctl_print_event(
    const char *line, struct json_object *o, struct slackctl_filter *f)
{
	char cur[64];
	const char *cursor = NULL;

	if (f->resume != NULL)
		cursor = slackctl_event_cursor(line, o, cur, sizeof cur);
	if (cursor != NULL)
		slackctl_resume_prepare(f, cursor);
	slackctl_print_plain(line, o, f);
	fflush(stdout);
	if (cursor != NULL && !ferror(stdout))
		slackctl_resume_commit(f);
}

static void
slackctl_print_plain(
    const char *line, struct json_object *o, struct slackctl_filter *f)
{
	struct json_object *parsed = NULL;

	if (!f->named && !f->textual) {
		puts(line);
		return;
	}
	if (o == NULL && (o = parsed = slackctl_parse(line)) == NULL)
		return;
	slackctl_names_track(&f->names, o);
	if (f->textual)
		slackctl_print_text(o, &f->names);
	else
		slackctl_print_named(o, &f->names);
	json_object_put(parsed);
}

/*
 * An event before slackd applied a subscription "since" a cursor: it
 * comes again in the replay, numbered; drop this copy.
 */
static void
slackctl_ignore(const char *line, struct json_object *o, void *arg)
{
}

/* Before the names are known: keep what the subscription lets through. */
static void
slackctl_hold(const char *line, struct json_object *o, void *arg)
{
	struct json_object *held = arg;
	const char *t = protocol_json_str(o, "type");

	if (o != NULL && (t == NULL || strncmp(t, "slackd.", 7) != 0))
		json_object_array_add(held, json_object_get(o));
}

static void
slackctl_subscribe(struct slackctl_conn *c, int id, struct json_object *types,
    struct json_object *channels, const char *since,
    void (*early)(const char *, struct json_object *, void *), void *arg)
{
	struct json_object *sub, *o;

	sub = json_object_new_object();
	json_object_object_add(sub, "id", json_object_new_int(id));
	json_object_object_add(
	    sub, "type", json_object_new_string(PROTOCOL_SUBSCRIBE));
	if (since != NULL)
		json_object_object_add(
		    sub, "since", json_object_new_string(since));
	if (types != NULL)
		json_object_object_add(sub, "types", json_object_get(types));
	if (channels != NULL)
		json_object_object_add(
		    sub, "channels", json_object_get(channels));
	slackctl_write(c, sub);
	json_object_put(sub);
	o = slackctl_reply(c, id, 10000, NULL, early, arg);
	if (json_object_object_get_ex(o, "error", NULL))
		slackctl_refused(o, "listen");
	json_object_put(o);
}

/*
 * With --names, the names load first, which can take a while in a large
 * workspace: the events that come meanwhile are kept here (not left to
 * pile up in slackd) and printed, with names, once the names are known.
 */
static void
slackctl_listen_names(struct slackctl_conn *c, struct slackctl_filter *f)
{
	struct json_object *held = json_object_new_array();
	struct json_object *o;
	size_t i;

	if (f->types != NULL || f->channels != NULL || f->since != NULL)
		slackctl_subscribe(c, 1, f->types, f->channels, f->since,
		    f->since != NULL ? slackctl_ignore : slackctl_hold, held);
	slackctl_names_load(c, &f->names, slackctl_hold, held);
	for (i = 0; i < json_object_array_length(held); i++) {
		o = json_object_array_get_idx(held, i);
		if (slackctl_listed(f->types, protocol_json_str(o, "type")) &&
		    slackctl_listed(
		        f->channels, protocol_json_str(o, "channel")))
			slackctl_print_event(NULL, o, f);
	}
	json_object_put(held);
}

/* slackd.gap: what a resume cannot give back. */
static void
slackctl_tell_gap(struct json_object *o)
{
	const char *reason = protocol_json_str(o, "reason");
	const char *since = protocol_json_str(o, "since");
	const char *why = protocol_json_str(o, "why");
	struct json_object *v;

	if (reason != NULL && strcmp(reason, "restart") == 0 && since != NULL)
		fprintf(stderr,
		    "slackctl: slackd has restarted since %s: the events after it are lost; continuing with the events of its new run\n",
		    since);
	else if (reason != NULL && strcmp(reason, "expired") == 0)
		fprintf(stderr,
		    "slackctl: slackd no longer holds %lld events after %s (replay_bytes, replay_age); continuing with the oldest it has\n",
		    json_object_object_get_ex(o, "missed", &v)
		        ? (long long)json_object_get_int64(v)
		        : -1LL,
		    since != NULL ? since : "the cursor");
	else /* backfill's and the NATS publisher's say why themselves */
		fprintf(stderr, "slackctl: slackd.gap (%s): %s\n",
		    reason != NULL ? reason : "?",
		    why != NULL ? why : "events were lost");
}

/* A slackd.* message: tell about states and errors.  Returns 1: stopping. */
static double slackctl_num(struct json_object *, const char *);

static int
slackctl_listen_own(const char *line, struct json_object *o, int all)
{
	const char *t = protocol_json_str(o, "type"), *st;
	struct json_object *e;
	int stopping = 0;

	if (strcmp(t, PROTOCOL_ERROR) == 0 &&
	    json_object_object_get_ex(o, "error", &e))
		fprintf(stderr, "slackctl: slackd: %s\n",
		    protocol_json_str(e, "msg") != NULL
		        ? protocol_json_str(e, "msg")
		        : line);
	if (strcmp(t, PROTOCOL_GAP) == 0)
		slackctl_tell_gap(o);
	if (strcmp(t, PROTOCOL_STATE) == 0) {
		slackctl_tell_state(o);
		st = protocol_json_str(o, "state");
		stopping =
		    st != NULL && strcmp(st, PROTOCOL_STATE_STOPPING) == 0;
	}
	if (all)
		puts(line);
	return stopping;
}

/* The options of listen, into f. */
static void
slackctl_listen_options(struct slackctl_args *a, struct slackctl_filter *f)
{
	const char *format = slackctl_value(a, 'f');
	int i;

	f->all = slackctl_flag(a, 'a');
	f->named = slackctl_flag(a, 'n');
	f->since = slackctl_value(a, 'S');
	if (f->since != NULL && slackctl_nats_url == NULL &&
	    !slackctl_cursor_ok(f->since))
		slackctl_die(SLACKCTL_USAGE,
		    "listen: --since takes a cursor RUN:N, the \"slackd_seq\" of an event (got \"%s\")",
		    f->since);
	if ((f->resume = slackctl_value(a, 'R')) != NULL) {
		if (*f->resume == '\0')
			slackctl_die(
			    SLACKCTL_USAGE, "listen: --resume needs a file");
		if (asprintf(&f->tmp, "%s.tmp", f->resume) == -1)
			slackctl_die(SLACKCTL_FAILED, "out of memory");
		if (f->since == NULL)
			f->since = slackctl_resume_read(f->resume);
	}
	if (format != NULL && strcmp(format, "text") == 0)
		f->textual = 1;
	else if (format != NULL && strcmp(format, "json") != 0)
		slackctl_die(
		    SLACKCTL_USAGE, "listen: --format is json or text");
	for (i = 0; i < a->opt['t'].n; i++) {
		if (f->types == NULL)
			f->types = json_object_new_array();
		json_object_array_add(
		    f->types, json_object_new_string(a->opt['t'].v[i]));
	}
	for (i = 0; i < a->opt['c'].n; i++) {
		if (f->channels == NULL)
			f->channels = json_object_new_array();
		json_object_array_add(
		    f->channels, json_object_new_string(a->opt['c'].v[i]));
	}
}

/* --nats: follow the stream (the filters apply here, not in slackd). */
static void
slackctl_listen_follow(struct slackctl_conn *c, const char *since)
{
	char *err = NULL;

	if (slackctl_nats_follow(c->nats, since, &err) != 0)
		slackctl_die(SLACKCTL_FAILED, "listen: %s", err);
}

/* Over NATS, an event from the stream passes listen's filters here. */
static int
slackctl_listen_wanted(struct slackctl_conn *c, const char *line,
    struct json_object **o, struct slackctl_filter *f)
{
	if (c->nats == NULL || (f->types == NULL && f->channels == NULL))
		return 1;
	if (*o == NULL && (*o = slackctl_parse(line)) == NULL)
		return 0;
	return slackctl_listed(f->types, protocol_json_str(*o, "type")) &&
	    slackctl_listed(f->channels, protocol_json_str(*o, "channel"));
}

/* Print events until the connection ends; returns 1 if slackd stopped. */
static int
slackctl_listen_loop(struct slackctl_conn *c, struct slackctl_filter *f)
{
	struct json_object *o;
	const char *t;
	char *line;
	int to, stopping = 0;

	while ((line = slackctl_line(c, -1, &to)) != NULL) {
		o = NULL;
		/* slackd's own messages start with their type. */
		if (strncmp(line, "{\"type\":\"slackd.", 16) == 0)
			o = slackctl_parse(line);
		t = protocol_json_str(o, "type");
		if (t != NULL && strncmp(t, "slackd.", 7) == 0)
			stopping |= slackctl_listen_own(line, o, f->all);
		else if (slackctl_listen_wanted(c, line, &o, f))
			slackctl_print_event(line, o, f);
		json_object_put(o);
		free(line);
		if (ferror(stdout))
			break; /* our reader went away: so do we */
	}
	return stopping;
}

static int
slackctl_listen(struct slackctl_args *a)
{
	static struct slackctl_conn c;        /* static: reachable at exit */
	static struct slackctl_filter filter; /* likewise */
	int stopping;

	slackctl_listen_options(a, &filter);
	if (filter.resume != NULL && slackctl_nats_url != NULL)
		slackctl_die(SLACKCTL_USAGE,
		    "listen: --resume keeps slackd's cursors, which NATS does not carry: with --nats, use --since WHEN (a stream sequence number, a time or an age)");
	setvbuf(stdout, NULL, _IOLBF, 0);
	slackctl_connect(&c);
	/* Over NATS, reading the stream needs no request (nor its permission).
	 */
	if (c.nats == NULL || filter.named || filter.textual)
		slackctl_hello(&c);
	if (c.nats != NULL) {
		/* --since is the stream's WHEN there, not a slackd cursor. */
		slackctl_listen_follow(&c, filter.since);
		filter.since = NULL;
	}
	/* A first --resume starts from now, numbered. */
	if (filter.resume != NULL && filter.since == NULL && c.seq[0] != '\0')
		filter.since = c.seq;
	if (filter.channels != NULL)
		slackctl_listen_resolve(&c, &filter);
	if (filter.named || filter.textual)
		slackctl_listen_names(&c, &filter);
	else if (filter.types != NULL || filter.channels != NULL ||
	    filter.since != NULL)
		slackctl_subscribe(&c, 1, filter.types, filter.channels,
		    filter.since,
		    filter.since != NULL ? slackctl_ignore : slackctl_early,
		    &filter);
	stopping = slackctl_listen_loop(&c, &filter);
	json_object_put(filter.types);
	json_object_put(filter.channels);
	json_object_put(filter.names.channels);
	json_object_put(filter.names.users);
	json_object_put(filter.names.lists[0]);
	json_object_put(filter.names.lists[1]);
	if (ferror(stdout))
		return SLACKCTL_OK;
	if (stopping) {
		fprintf(stderr, "slackctl: slackd stopped\n");
		return SLACKCTL_OK;
	}
	fprintf(stderr, "slackctl: lost the connection to slackd\n");
	return SLACKCTL_LOST;
}

/* ---- status ------------------------------------------------------------ */

static double
slackctl_num(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return -1;
	return json_object_get_double(v);
}

static void
slackctl_duration(double secs, char *buf, size_t len)
{
	long s = (long)secs;

	if (s >= 86400)
		snprintf(buf, len, "%ldd %ldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, len, "%ldh %ldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, len, "%ldm %lds", s / 60, s % 60);
	else
		snprintf(buf, len, "%lds", s);
}

static void
slackctl_who(struct json_object *o, const char *key, char *buf, size_t len)
{
	struct json_object *v;
	const char *name, *id;

	if (!json_object_object_get_ex(o, key, &v) || v == NULL) {
		snprintf(buf, len, "?");
		return;
	}
	name = protocol_json_str(v, "name");
	id = protocol_json_str(v, "id");
	snprintf(buf, len, "%s (%s)", name != NULL ? name : "?",
	    id != NULL ? id : "?");
}

/* Socket Mode: the app and each connection Slack holds for it. */
static void
slackctl_print_socket(struct json_object *o)
{
	struct json_object *a, *c;
	const char *host, *app = protocol_json_str(o, "app_id");
	char when[64], age[64], life[64];
	double since, now = (double)time(NULL);
	size_t i;
	time_t t;

	printf("upstream:   Socket Mode, app %s, %.0f app_rate_limited\n",
	    app != NULL ? app : "?", slackctl_num(o, "app_rate_limited"));
	if (!json_object_object_get_ex(o, "connections", &a) ||
	    !json_object_is_type(a, json_type_array))
		return;
	for (i = 0; i < json_object_array_length(a); i++) {
		c = json_object_array_get_idx(a, i);
		host = protocol_json_str(c, "host");
		printf("  session %.0f: %s", slackctl_num(c, "session"),
		    protocol_json_str(c, "state"));
		if ((since = slackctl_num(c, "connected_since")) > 0) {
			t = (time_t)since;
			strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S",
			    localtime(&t));
			slackctl_duration(now - since, age, sizeof age);
			printf(" since %s (%s)", when, age);
		}
		if (host != NULL)
			printf(" on %s", host);
		if (slackctl_num(c, "approximate_lifetime") > 0) {
			slackctl_duration(
			    slackctl_num(c, "approximate_lifetime"), life,
			    sizeof life);
			printf(", lifetime about %s", life);
		}
		printf("\n");
	}
}

/* The NATS link (nats_url), from slackd.status's "nats". */
static void
slackctl_print_nats(struct json_object *n)
{
	const char *server = protocol_json_str(n, "server");
	const char *err = protocol_json_str(n, "last_error");
	char when[64];
	time_t t;

	printf("nats:       %s%s%s, stream %s\n", protocol_json_str(n, "state"),
	    server != NULL ? " to " : "", server != NULL ? server : "",
	    protocol_json_str(n, "stream") != NULL
	        ? protocol_json_str(n, "stream")
	        : "(not yet known)");
	printf(
	    "            %.0f published, %.0f pending acks, %.0f kept (%.0f bytes), %.0f gaps (%.0f events lost), %.0f requests\n",
	    slackctl_num(n, "published"), slackctl_num(n, "pending_acks"),
	    slackctl_num(n, "backlog"), slackctl_num(n, "backlog_bytes"),
	    slackctl_num(n, "gaps"), slackctl_num(n, "events_lost"),
	    slackctl_num(n, "requests"));
	if (err != NULL) {
		t = (time_t)slackctl_num(n, "last_error_at");
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&t));
		printf("            last error %s: %s\n", when, err);
	}
}

static void
slackctl_print_status(struct json_object *o)
{
	struct json_object *d;
	char team[256], self[256], age[64], when[64];
	const char *state = protocol_json_str(o, "state");
	const char *reason = protocol_json_str(o, "reason");
	double since, rtt, now = (double)time(NULL);
	time_t t;

	slackctl_duration(now - slackctl_num(o, "started"), age, sizeof age);
	printf("slackd %s (pid %.0f), up %s\n", protocol_json_str(o, "version"),
	    slackctl_num(o, "pid"), age);
	if (state == NULL)
		state = "unknown";
	if (strcmp(state, PROTOCOL_STATE_CONNECTED) == 0) {
		slackctl_who(o, "team", team, sizeof team);
		slackctl_who(o, "self", self, sizeof self);
		since = slackctl_num(o, "connected_since");
		t = (time_t)since;
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&t));
		slackctl_duration(now - since, age, sizeof age);
		printf("state:      connected to %s as %s\n", team, self);
		printf("            since %s (%s), session %.0f\n", when, age,
		    slackctl_num(o, "session"));
	} else if (strcmp(state, PROTOCOL_STATE_STANDBY) == 0)
		printf("state:      standby (nats_ha), the leader: %s\n",
		    protocol_json_str(o, "leader") != NULL
		        ? protocol_json_str(o, "leader")
		        : "no slackd leads at the moment");
	else if (strcmp(state, PROTOCOL_STATE_RECONNECTING) == 0)
		printf("state:      reconnecting in %.1f s: %s\n",
		    slackctl_num(o, "retry_in"),
		    reason != NULL ? reason : "connection lost");
	else
		printf("state:      %s%s%s\n", state,
		    reason != NULL ? ": " : "", reason != NULL ? reason : "");
	printf("reconnects: %.0f\n", slackctl_num(o, "reconnects"));
	if ((rtt = slackctl_num(o, "last_pong_rtt_ms")) >= 0)
		printf("last pong:  %.1f ms\n", rtt);
	printf(
	    "clients:    %.0f connected, %.0f since start, %.0f dropped as too slow\n",
	    slackctl_num(o, "clients"), slackctl_num(o, "clients_total"),
	    slackctl_num(o, "clients_dropped"));
	printf(
	    "outbound:   %.0f queued, %.0f in flight, %.0f sent, %.0f failed\n",
	    slackctl_num(o, "queued"), slackctl_num(o, "in_flight"),
	    slackctl_num(o, "messages_sent"),
	    slackctl_num(o, "messages_failed"));
	printf("events:     %.0f received, %.0f dropped as unusable\n",
	    slackctl_num(o, "events_received"),
	    slackctl_num(o, "events_dropped"));
	if (json_object_object_get_ex(o, "last_dropped", &d) && d != NULL) {
		t = (time_t)slackctl_num(d, "at");
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&t));
		printf("            last dropped %s: %s\n", when,
		    protocol_json_str(d, "why"));
	}
	if (protocol_json_str(o, "upstream") != NULL &&
	    strcmp(protocol_json_str(o, "upstream"), "socket") == 0)
		slackctl_print_socket(o);
	if (json_object_object_get_ex(o, "nats", &d) && d != NULL)
		slackctl_print_nats(d);
}

static int
slackctl_status(struct slackctl_args *a)
{
	static struct slackctl_conn c; /* static: reachable at exit */
	struct json_object *req, *rep;
	char *raw;

	slackctl_connect(&c);
	slackctl_hello(&c);
	req = json_object_new_object();
	json_object_object_add(req, "id", json_object_new_int(1));
	json_object_object_add(
	    req, "type", json_object_new_string(PROTOCOL_STATUS));
	slackctl_write(&c, req);
	json_object_put(req);
	rep = slackctl_reply(&c, 1, 10000, &raw, NULL, NULL);
	if (slackctl_flag(a, 'j'))
		printf("%s\n", raw);
	else
		slackctl_print_status(rep);
	free(raw);
	json_object_put(rep);
	close(c.fd);
	free(c.buf);
	return SLACKCTL_OK;
}

/* ---- the commands ------------------------------------------------------ */

static int slackctl_help(struct slackctl_args *);

static const struct option slackctl_send_longopts[] = {
	{ "thread", required_argument, NULL, 't' },
	{ "broadcast", no_argument, NULL, 'b' },
	{ "wait", required_argument, NULL, 'w' },
	{ "post", no_argument, NULL, 'p' },
	{ "blocks", required_argument, NULL, 'B' },
	{ "attachments", required_argument, NULL, 'A' },
	{ "unfurl", no_argument, NULL, 'U' },
	{ "no-unfurl", no_argument, NULL, 'N' },
	{ "help", no_argument, NULL, 'h' }, /* every command */
	{ "socket", required_argument, NULL, 's' },
	{ NULL, 0, NULL, 0 },
};

static const struct option slackctl_listen_longopts[] = {
	{ "type", required_argument, NULL, 't' },
	{ "channel", required_argument, NULL, 'c' },
	{ "all", no_argument, NULL, 'a' },
	{ "names", no_argument, NULL, 'n' },
	{ "format", required_argument, NULL, 'f' },
	{ "since", required_argument, NULL, 'S' },
	{ "resume", required_argument, NULL, 'R' },
	{ "help", no_argument, NULL, 'h' }, /* every command */
	{ "socket", required_argument, NULL, 's' },
	{ NULL, 0, NULL, 0 },
};

static const struct option slackctl_json_longopts[] = {
	{ "json", no_argument, NULL, 'j' },
	{ "help", no_argument, NULL, 'h' }, /* every command */
	{ "socket", required_argument, NULL, 's' },
	{ NULL, 0, NULL, 0 },
};

static const struct option slackctl_common_longopts[] = {
	{ "help", no_argument, NULL, 'h' }, /* every command */
	{ "socket", required_argument, NULL, 's' },
	{ NULL, 0, NULL, 0 },
};

static const struct slackctl_cmd slackctl_cmds[] = {
	{
	    .name = "send",
	    .usage =
	        "[-bp] [-t thread_ts] [-w secs] [--blocks FILE]\n"
	        "       [--attachments FILE] [--unfurl|--no-unfurl] CHANNEL [TEXT...]",
	    .summary =
	        "post TEXT (or standard input) to CHANNEL: an ID, a name\n"
	        "(general, #general), @user or a user ID (their DM); wait\n"
	        "for Slack's acknowledgement and print its ts",
	    .help =
	        "  -t, --thread TS        reply in the thread of the message TS\n"
	        "  -b, --broadcast        with -t, also show the reply in the channel\n"
	        "  -w, --wait SECS        wait at most SECS seconds for Slack's answer\n"
	        "                         (default 30; 0: as long as slackd keeps the\n"
	        "                         message), then exit 75: the message stays\n"
	        "                         queued in slackd, which sends it when it can\n"
	        "  -p, --post             post with chat.postMessage instead of RTM,\n"
	        "                         which also takes texts over 16 KB\n"
	        "      --blocks FILE      post these Block Kit blocks (a JSON file, -\n"
	        "                         for standard input); TEXT is the fallback\n"
	        "      --attachments FILE post these attachments, likewise\n"
	        "      --unfurl, --no-unfurl\n"
	        "                         ask Slack to unfurl links and media, or not\n"
	        "  (--blocks, --attachments and --unfurl imply --post)\n",
	    .optstring = "bpt:w:",
	    .longopts = slackctl_send_longopts,
	    .max_args = -1,
	    .exec = slackctl_send,
	},
	{
	    .name = "listen",
	    .usage = "[-an] [-t type]... [-c channel]... [-f json|text]\n"
	             "       [--since CURSOR] [--resume FILE]",
	    .summary = "print events as JSON lines until interrupted",
	    .help =
	        "  -t, --type TYPE        only events of this type (repeatable)\n"
	        "  -c, --channel CHANNEL  only events in this channel (repeatable):\n"
	        "                         an ID, a name (general, #general), @user or\n"
	        "                         a user ID (their DM)\n"
	        "  -a, --all              also print slackd's own messages\n"
	        "                         (slackd.state, ...)\n"
	        "  -n, --names            #channel and @user names instead of IDs\n"
	        "  -f, --format FORMAT    json (the default), or text: one line\n"
	        "                         \"time #channel @user: text\" an event\n"
	        "      --since CURSOR     first the events after CURSOR (an event's\n"
	        "                         \"slackd_seq\") that slackd still holds; with\n"
	        "                         --nats: from the stream's sequence number,\n"
	        "                         a time (2026-01-31T12:00:00Z) or an age\n"
	        "                         (30m, 2h, 1d) instead of from now\n"
	        "      --resume FILE      continue after the cursor kept in FILE, and\n"
	        "                         keep there the cursor of each event printed\n"
	        "                         (a first run starts from now)\n",
	    .optstring = "ac:f:nt:",
	    .longopts = slackctl_listen_longopts,
	    .max_args = 0,
	    .exec = slackctl_listen,
	},
	{
	    .name = "channels",
	    .usage = "[--json]",
	    .summary = "list the conversations slackd knows",
	    .help = "  -j, --json             the list as one line of JSON\n",
	    .optstring = "j",
	    .longopts = slackctl_json_longopts,
	    .max_args = 0,
	    .exec = slackctl_channels,
	},
	{
	    .name = "users",
	    .usage = "[--json]",
	    .summary = "list the users slackd knows",
	    .help = "  -j, --json             the list as one line of JSON\n",
	    .optstring = "j",
	    .longopts = slackctl_json_longopts,
	    .max_args = 0,
	    .exec = slackctl_users,
	},
	{
	    .name = "status",
	    .usage = "[--json]",
	    .summary = "show the state of slackd and its Slack connection",
	    .help =
	        "  -j, --json             slackd's status reply, one line of JSON\n",
	    .optstring = "j",
	    .longopts = slackctl_json_longopts,
	    .max_args = 0,
	    .exec = slackctl_status,
	},
	{
	    .name = "help",
	    .usage = "[COMMAND]",
	    .summary = "show the usage of COMMAND, or this summary",
	    .help = "",
	    .optstring = "",
	    .longopts = slackctl_common_longopts,
	    .max_args = 1,
	    .exec = slackctl_help,
	},
};

#define SLACKCTL_NCMDS (sizeof slackctl_cmds / sizeof slackctl_cmds[0])

/* Print text, each line after the first indented by indent spaces. */
static void
slackctl_indented(FILE *f, const char *text, int indent)
{
	const char *nl;

	while ((nl = strchr(text, '\n')) != NULL) {
		fprintf(f, "%.*s\n%*s", (int)(nl - text), text, indent, "");
		text = nl + 1;
	}
	fprintf(f, "%s\n", text);
}

/* slackctl --help: every command. */
static void
slackctl_usage(FILE *f)
{
	const struct slackctl_cmd *cmd;

	fprintf(f,
	    "usage: slackctl [-s socket | --nats URL --nats-prefix P] command [options] [--] [operands]\n\ncommands:\n");
	for (cmd = slackctl_cmds; cmd < slackctl_cmds + SLACKCTL_NCMDS; cmd++) {
		fprintf(f, "  %s ", cmd->name);
		slackctl_indented(f, cmd->usage, 0);
		fprintf(f, "        ");
		slackctl_indented(f, cmd->summary, 8);
	}
	fprintf(f,
	    "\n"
	    "Options may come anywhere after the command; \"--\" ends them.\n"
	    "\"slackctl COMMAND --help\" shows the options of COMMAND.\n"
	    "\n"
	    "  -s, --socket PATH   slackd's socket (default $SLACKD_SOCKET, else\n"
	    "                      $XDG_RUNTIME_DIR/slackd.sock if it exists\n"
	    "                      and you are not root, else\n"
	    "                      /run/slackd/slackd.sock)\n"
	    "  --nats URL          talk to slackd over NATS instead (default\n"
	    "                      $SLACKD_NATS): nats://host:port or tls://...\n"
	    "  --nats-prefix P     slackd's nats_prefix, slack.TEAM_ID by default\n"
	    "                      ($SLACKD_NATS_PREFIX; needed with --nats)\n"
	    "  --nats-creds FILE   NATS credentials file ($SLACKD_NATS_CREDS)\n"
	    "  --nats-ca FILE      CA certificates for tls:// ($SLACKD_NATS_CA)\n"
	    "  -h, --help          print this help; --version the version\n"
	    "\n"
	    "exit status: 0 ok, 1 refused by Slack or slackd, 2 usage,\n"
	    "3 slackd not reachable, 4 connection lost or timed out,\n"
	    "75 send gave up waiting (the message stays queued in slackd)\n");
}

/* The usage line of cmd. */
static void
slackctl_cmd_usage(FILE *f, const struct slackctl_cmd *cmd)
{
	fprintf(f, "usage: slackctl [-s socket] %s ", cmd->name);
	slackctl_indented(f, cmd->usage, 0);
}

/* slackctl COMMAND --help, slackctl help COMMAND. */
static void
slackctl_cmd_help(FILE *f, const struct slackctl_cmd *cmd)
{
	slackctl_cmd_usage(f, cmd);
	fprintf(f, "\n");
	slackctl_indented(f, cmd->summary, 0);
	fprintf(f, "\n%s", cmd->help);
	fprintf(f,
	    "  -s, --socket PATH      slackd's socket (see slackctl --help)\n"
	    "  -h, --help             show this help\n"
	    "\n"
	    "Options may come anywhere after the command; \"--\" ends them:\n"
	    "  slackctl send C024BE91L -- -w is text\n");
}

static const struct slackctl_cmd *
slackctl_find(const char *name)
{
	const struct slackctl_cmd *cmd;

	for (cmd = slackctl_cmds; cmd < slackctl_cmds + SLACKCTL_NCMDS; cmd++) {
		if (strcmp(cmd->name, name) == 0)
			return cmd;
	}
	return NULL;
}

static int
slackctl_help(struct slackctl_args *a)
{
	const struct slackctl_cmd *cmd;

	if (a->argc == 0) {
		slackctl_usage(stdout);
		return SLACKCTL_OK;
	}
	if ((cmd = slackctl_find(a->argv[0])) == NULL) {
		fprintf(stderr,
		    "slackctl: help: no command \"%s\" (commands: send, listen, channels, users, status, help)\n",
		    a->argv[0]);
		return SLACKCTL_USAGE;
	}
	slackctl_cmd_help(stdout, cmd);
	return SLACKCTL_OK;
}

/* A usage error in cmd's command line: say what, and show its usage. */
static int slackctl_bad_usage(const struct slackctl_cmd *cmd, const char *fmt,
    ...) __attribute__((format(printf, 2, 3)));

static int
slackctl_bad_usage(const struct slackctl_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "slackctl: %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	slackctl_cmd_usage(stderr, cmd);
	fprintf(stderr, "(slackctl %s --help shows its options)\n", cmd->name);
	return -1;
}

/* What getopt stopped at: "--bogus", "-x". */
static const char *
slackctl_bad_option(char **argv, char *buf, size_t len)
{
	const char *arg = argv[optind - 1];

	if (optopt != 0 && strncmp(arg, "--", 2) != 0) {
		snprintf(buf, len, "-%c", optopt);
		return buf;
	}
	snprintf(buf, len, "%.*s", (int)strcspn(arg, "="), arg);
	return buf;
}

/*
 * Parse the command's options and operands (argv[0] is its name) into a.
 * Options may come anywhere; "--" ends them.  Returns 0, or -1 after a
 * usage error was printed.
 */
static int
slackctl_parse_args(const struct slackctl_cmd *cmd, int argc, char **argv,
    struct slackctl_args *a)
{
	char optstring[64], bad[64];
	int ch;

	memset(a, 0, sizeof *a);
	a->cmd = cmd;
	a->argv = slackctl_alloc(NULL, (size_t)argc * sizeof *a->argv);
	/* "-": operands come back as 1, in order; ":": we say what is wrong. */
	snprintf(optstring, sizeof optstring, "-:%shs:", cmd->optstring);
	optind = 0; /* reinitialise getopt */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, optstring, cmd->longopts, NULL)) !=
	    -1) {
		if (ch == 1)
			a->argv[a->argc++] = optarg;
		else if (ch == '?')
			return slackctl_bad_usage(cmd, "unknown option %s%s",
			    slackctl_bad_option(argv, bad, sizeof bad),
			    cmd->max_args != 0
			        ? " (an operand that starts with - goes after --)"
			        : "");
		else if (ch == ':')
			return slackctl_bad_usage(cmd, "%s needs a value",
			    slackctl_bad_option(argv, bad, sizeof bad));
		else if (ch > 0 && ch < 128)
			slackctl_args_add(a, ch, optarg);
	}
	while (optind < argc) /* after "--" */
		a->argv[a->argc++] = argv[optind++];
	if (slackctl_flag(a, 'h'))
		return 0;
	if (cmd->max_args >= 0 && a->argc > cmd->max_args)
		return slackctl_bad_usage(
		    cmd, "unexpected argument %s", a->argv[cmd->max_args]);
	return 0;
}

/* $SLACKD_NATS and its companions; the command line overrides them. */
static void
slackctl_nats_env(void)
{
	static const struct {
		const char *name;
		const char **value;
	} vars[] = {
		{ "SLACKD_NATS", &slackctl_nats_url },
		{ "SLACKD_NATS_PREFIX", &slackctl_nats_prefix },
		{ "SLACKD_NATS_CREDS", &slackctl_nats_creds },
		{ "SLACKD_NATS_CA", &slackctl_nats_ca },
	};
	const char *v;
	size_t i;

	for (i = 0; i < sizeof vars / sizeof vars[0]; i++) {
		if ((v = getenv(vars[i].name)) != NULL && *v != '\0')
			*vars[i].value = v;
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "nats", required_argument, NULL, 'N' },
		{ "nats-prefix", required_argument, NULL, 'P' },
		{ "nats-creds", required_argument, NULL, 'C' },
		{ "nats-ca", required_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 },
	};
	static struct slackctl_args a; /* static: reachable at exit */
	const struct slackctl_cmd *cmd;
	int ch, rc;

	signal(SIGPIPE, SIG_IGN);
	slackctl_nats_env();
	while ((ch = getopt_long(argc, argv, "+hs:", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			slackctl_socket = optarg;
			break;
		case 'N':
			slackctl_nats_url = *optarg != '\0' ? optarg : NULL;
			break;
		case 'P':
			slackctl_nats_prefix = optarg;
			break;
		case 'C':
			slackctl_nats_creds = optarg;
			break;
		case 'A':
			slackctl_nats_ca = optarg;
			break;
		case 'h':
			slackctl_usage(stdout);
			return SLACKCTL_OK;
		case 'V':
			printf("slackctl %s (protocol %d)\n", PACKAGE_VERSION,
			    SLACKD_PROTOCOL);
			return SLACKCTL_OK;
		default:
			slackctl_usage(stderr);
			return SLACKCTL_USAGE;
		}
	}
	if (optind >= argc) {
		slackctl_usage(stderr);
		return SLACKCTL_USAGE;
	}
	if ((cmd = slackctl_find(argv[optind])) == NULL) {
		fprintf(
		    stderr, "slackctl: unknown command \"%s\"\n", argv[optind]);
		slackctl_usage(stderr);
		return SLACKCTL_USAGE;
	}
	if (slackctl_parse_args(cmd, argc - optind, argv + optind, &a) != 0)
		return SLACKCTL_USAGE;
	if (slackctl_flag(&a, 'h')) {
		slackctl_cmd_help(stdout, cmd);
		return SLACKCTL_OK;
	}
	if (slackctl_flag(&a, 's'))
		slackctl_socket = slackctl_value(&a, 's');
	rc = cmd->exec(&a);
	slackctl_args_free(&a);
	return rc;
}
