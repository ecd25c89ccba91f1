/*
 * slackd.conf: "key = value" lines, "#" comments (whole line, or after
 * whitespace), values optionally in double quotes.  Every problem is
 * reported with its file and line, and all of them are reported at once.
 *
 * config_options[] is the one list of keys: each row gives a key's type,
 * its field in struct config, its default, its range and how a reload
 * treats it.  Names of users and groups are resolved to ids when a file is
 * loaded, so a struct config in use never needs a lookup.
 *
 * Written by hand rather than with libinih: Debian's libinih (r55) cuts
 * lines at 200 bytes without a word, joins indented lines onto the previous
 * key, knows only ";" as an inline comment (so "key = 5 # note" keeps the
 * note in the value) and does not give its handler line numbers.
 */
#include "config.h"

#include <ctype.h>
#include <grp.h>
#include <pwd.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slackd.h"

#define CONFIG_MAX_FILE (1024 * 1024)

static const char *const config_backfill_modes[] = { "off", "seen", "all",
	NULL };

#define OFF(f) offsetof(struct config, f)
#define SEC    1000.0
#define MIB    1048576.0

/*
 * Every key of slackd.conf, one row each: parsing, range checks, defaults,
 * config_dup(), config_free() and the reload rule (flags) all come from
 * here.  A new key is a field in struct config, a row here, and its entry
 * in slackd.conf(5) and conf/slackd.conf (test_config checks all three).
 * Durations are in milliseconds, sizes in bytes.
 */
const struct config_option config_options[] = {
	{ .name = "socket",
	    .type = CONFIG_STRING,
	    .offset = OFF(socket_path),
	    .flags = CONFIG_RESTART | CONFIG_SOCKET,
	    .hint = "a path" },
	{ .name = "socket_mode",
	    .type = CONFIG_MODE,
	    .offset = OFF(socket_mode),
	    .def = 0660,
	    .max = 0777,
	    .flags = CONFIG_RESTART | CONFIG_SOCKET,
	    .hint = "an octal mode such as 0660" },
	{ .name = "socket_group",
	    .type = CONFIG_GROUP,
	    .offset = OFF(socket_group),
	    .resolved = OFF(socket_gid),
	    .flags = CONFIG_RESTART | CONFIG_SOCKET,
	    .hint = "a group name or number" },
	{ .name = "allow_users",
	    .type = CONFIG_USERS,
	    .offset = OFF(allow_users),
	    .resolved = OFF(allowed_uids),
	    .hint = "user names or numbers" },
	{ .name = "allow_groups",
	    .type = CONFIG_GROUPS,
	    .offset = OFF(allow_groups),
	    .resolved = OFF(allowed_gids),
	    .hint = "group names or numbers" },
	{ .name = "api_url",
	    .type = CONFIG_STRING,
	    .offset = OFF(api_url),
	    .def_string = "https://slack.com/api/",
	    .flags = CONFIG_RECONNECT,
	    .hint = "a URL" },
	{ .name = "ca_file",
	    .type = CONFIG_STRING,
	    .offset = OFF(ca_file),
	    .flags = CONFIG_RESTART,
	    .hint = "a path" },
	{ .name = "token_file",
	    .type = CONFIG_STRING,
	    .offset = OFF(token_file),
	    .hint = "a path" },
	{ .name = "upstream",
	    .type = CONFIG_STRING,
	    .offset = OFF(upstream),
	    .def_string = "auto",
	    .flags = CONFIG_RESTART,
	    .hint = "auto, rtm or socket" },
	{ .name = "app_token_file",
	    .type = CONFIG_STRING,
	    .offset = OFF(app_token_file),
	    .hint = "a path" },
	{ .name = "connections",
	    .type = CONFIG_INT,
	    .offset = OFF(connections),
	    .def = 2,
	    .min = 1,
	    .max = 4,
	    .flags = CONFIG_RESTART },
	{ .name = "ack_wait",
	    .type = CONFIG_DURATION,
	    .offset = OFF(ack_wait),
	    .def = 2 * SEC,
	    .min = 0.01 * SEC,
	    .max = 2.5 * SEC },
	{ .name = "team_state",
	    .type = CONFIG_BOOL,
	    .offset = OFF(team_state),
	    .hint = "yes or no" },
	{ .name = "state_dir",
	    .type = CONFIG_STRING,
	    .offset = OFF(state_dir),
	    .hint = "a directory" },
	{ .name = "names_max_age",
	    .type = CONFIG_DURATION,
	    .offset = OFF(names_max_age),
	    .def = 86400 * SEC,
	    .max = 30 * 86400 * SEC },
	{ .name = "api_allow",
	    .type = CONFIG_STRING,
	    .offset = OFF(api_allow),
	    .def_string = "conversations.* users.* chat.postMessage",
	    .hint = "Web API method names, a trailing * matching any" },
	{ .name = "backfill",
	    .type = CONFIG_STRING,
	    .offset = OFF(backfill),
	    .def_string = "seen",
	    .choices = config_backfill_modes,
	    .hint = "off, seen or all" },
	{ .name = "backfill_channels",
	    .type = CONFIG_STRING,
	    .offset = OFF(backfill_channels),
	    .hint = "channel names or IDs" },
	{ .name = "backfill_window",
	    .type = CONFIG_DURATION,
	    .offset = OFF(backfill_window),
	    .def = 86400 * SEC,
	    .max = 30 * 86400 * SEC },
	{ .name = "backfill_max",
	    .type = CONFIG_INT,
	    .offset = OFF(backfill_max),
	    .def = 1000,
	    .min = 1,
	    .max = 100000 },
	{ .name = "log_level",
	    .type = CONFIG_LOGLEVEL,
	    .offset = OFF(log_level),
	    .def = LOG_LEVEL_INFO,
	    .hint = "error, warning, info or debug" },
	{ .name = "ping_interval",
	    .type = CONFIG_DURATION,
	    .offset = OFF(ping_interval),
	    .def = 10 * SEC,
	    .min = 0.1 * SEC,
	    .max = 3600 * SEC },
	{ .name = "pong_timeout",
	    .type = CONFIG_DURATION,
	    .offset = OFF(pong_timeout),
	    .def = 5 * SEC,
	    .min = 0.1 * SEC,
	    .max = 600 * SEC },
	{ .name = "hello_timeout",
	    .type = CONFIG_DURATION,
	    .offset = OFF(hello_timeout),
	    .def = 10 * SEC,
	    .min = 0.1 * SEC,
	    .max = 600 * SEC },
	{ .name = "connect_timeout",
	    .type = CONFIG_DURATION,
	    .offset = OFF(connect_timeout),
	    .def = 15 * SEC,
	    .min = 0.1 * SEC,
	    .max = 600 * SEC },
	{ .name = "reconnect_min",
	    .type = CONFIG_DURATION,
	    .offset = OFF(reconnect_min),
	    .def = 1 * SEC,
	    .min = 0.01 * SEC,
	    .max = 3600 * SEC },
	{ .name = "reconnect_max",
	    .type = CONFIG_DURATION,
	    .offset = OFF(reconnect_max),
	    .def = 120 * SEC,
	    .min = 0.01 * SEC,
	    .max = 86400 * SEC },
	{ .name = "reconnect_reset",
	    .type = CONFIG_DURATION,
	    .offset = OFF(reconnect_reset),
	    .def = 60 * SEC,
	    .max = 86400 * SEC },
	{ .name = "rtm_connect_burst",
	    .type = CONFIG_INT,
	    .offset = OFF(rtm_connect_burst),
	    .def = 4,
	    .min = 1,
	    .max = 100 },
	{ .name = "rtm_connect_interval",
	    .type = CONFIG_DURATION,
	    .offset = OFF(rtm_connect_interval),
	    .def = 60 * SEC,
	    .max = 3600 * SEC },
	{ .name = "queue_max",
	    .type = CONFIG_INT,
	    .offset = OFF(queue_max),
	    .def = 1000,
	    .min = 1,
	    .max = 1000000 },
	{ .name = "queue_timeout",
	    .type = CONFIG_DURATION,
	    .offset = OFF(queue_timeout),
	    .def = 600 * SEC,
	    .max = 86400 * SEC },
	{ .name = "ack_timeout",
	    .type = CONFIG_DURATION,
	    .offset = OFF(ack_timeout),
	    .def = 30 * SEC,
	    .min = 0.1 * SEC,
	    .max = 3600 * SEC },
	{ .name = "drain_timeout",
	    .type = CONFIG_DURATION,
	    .offset = OFF(drain_timeout),
	    .def = 5 * SEC,
	    .max = 600 * SEC },
	{ .name = "send_rate",
	    .type = CONFIG_RATE,
	    .offset = OFF(send_rate),
	    .def = 1.0,
	    .min = 0.001,
	    .max = 1000 },
	{ .name = "send_burst",
	    .type = CONFIG_INT,
	    .offset = OFF(send_burst),
	    .def = 3,
	    .min = 1,
	    .max = 1000 },
	{ .name = "max_line",
	    .type = CONFIG_SIZE,
	    .offset = OFF(max_line),
	    .def = PROTOCOL_MAX_LINE,
	    .min = 1024,
	    .max = 16 * MIB },
	{ .name = "max_event",
	    .type = CONFIG_SIZE,
	    .offset = OFF(max_event),
	    .def = 1 * MIB,
	    .min = 16384,
	    .max = 256 * MIB },
	{ .name = "client_buffer_soft",
	    .type = CONFIG_SIZE,
	    .offset = OFF(client_buffer_soft),
	    .def = 1 * MIB,
	    .min = 16384,
	    .max = 1024 * MIB },
	{ .name = "client_buffer_soft_time",
	    .type = CONFIG_DURATION,
	    .offset = OFF(client_buffer_soft_time),
	    .def = 30 * SEC,
	    .max = 3600 * SEC },
	{ .name = "client_buffer_limit",
	    .type = CONFIG_SIZE,
	    .offset = OFF(client_buffer_limit),
	    .def = 8 * MIB,
	    .min = 65536,
	    .max = 1024 * MIB },
	{ .name = "replay_bytes",
	    .type = CONFIG_SIZE,
	    .offset = OFF(replay_bytes),
	    .def = 16 * MIB,
	    .max = 4096 * MIB },
	{ .name = "replay_age",
	    .type = CONFIG_DURATION,
	    .offset = OFF(replay_age),
	    .def = 3600 * SEC,
	    .min = 1 * SEC,
	    .max = 7 * 86400 * SEC },
	{ .name = "nats_url",
	    .type = CONFIG_STRING,
	    .offset = OFF(nats_url),
	    .flags = CONFIG_RESTART,
	    .hint = "nats:// or tls:// URLs, separated by commas" },
	{ .name = "nats_creds_file",
	    .type = CONFIG_STRING,
	    .offset = OFF(nats_creds_file),
	    .flags = CONFIG_RESTART,
	    .hint = "a path" },
	{ .name = "nats_nkey_file",
	    .type = CONFIG_STRING,
	    .offset = OFF(nats_nkey_file),
	    .flags = CONFIG_RESTART,
	    .hint = "a path" },
	{ .name = "nats_user",
	    .type = CONFIG_STRING,
	    .offset = OFF(nats_user),
	    .flags = CONFIG_RESTART,
	    .hint = "a user name" },
	{ .name = "nats_password_file",
	    .type = CONFIG_STRING,
	    .offset = OFF(nats_password_file),
	    .flags = CONFIG_RESTART,
	    .hint = "a path" },
	{ .name = "nats_ca_file",
	    .type = CONFIG_STRING,
	    .offset = OFF(nats_ca_file),
	    .flags = CONFIG_RESTART,
	    .hint = "a path" },
	{ .name = "nats_prefix",
	    .type = CONFIG_STRING,
	    .offset = OFF(nats_prefix),
	    .flags = CONFIG_RESTART,
	    .hint = "a NATS subject without wildcards" },
	{ .name = "nats_stream",
	    .type = CONFIG_STRING,
	    .offset = OFF(nats_stream),
	    .flags = CONFIG_RESTART,
	    .hint = "a JetStream stream name" },
	{ .name = "nats_max_age",
	    .type = CONFIG_DURATION,
	    .offset = OFF(nats_max_age),
	    .def = 7 * 86400 * SEC,
	    .min = 60 * SEC,
	    .max = 3650 * 86400 * SEC,
	    .flags = CONFIG_RESTART },
	{ .name = "nats_max_bytes",
	    .type = CONFIG_SIZE,
	    .offset = OFF(nats_max_bytes),
	    .def = 1024 * MIB,
	    .min = 1 * MIB,
	    .max = 1024 * 1024 * MIB,
	    .flags = CONFIG_RESTART },
	{ .name = "nats_backlog",
	    .type = CONFIG_SIZE,
	    .offset = OFF(nats_backlog),
	    .def = 64 * MIB,
	    .min = 16384,
	    .max = 4096 * MIB,
	    .flags = CONFIG_RESTART },
	{ .name = "nats_ha",
	    .type = CONFIG_BOOL,
	    .offset = OFF(nats_ha),
	    .flags = CONFIG_RESTART,
	    .hint = "yes or no" },
	{ .name = "ha_lease",
	    .type = CONFIG_DURATION,
	    .offset = OFF(ha_lease),
	    .def = 10 * SEC,
	    .min = 1 * SEC,
	    .max = 300 * SEC,
	    .flags = CONFIG_RESTART },
	{ .name = NULL },
};
#undef OFF

#define CONFIG_NOPTIONS (nitems(config_options) - 1)

struct config_parser {
	struct config *conf;
	const char *name;
	u_int line;
	u_int seen[CONFIG_NOPTIONS];
	char *errors;
	size_t errlen;
	int nerrors;
};

static void config_error(struct config_parser *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static int config_resolve(struct config *, char **);

/* The field a row describes, in conf. */
static void *
config_field(const struct config *conf, const struct config_option *o)
{
	return (char *)conf + o->offset;
}

static int
config_is_string(const struct config_option *o)
{
	switch (o->type) {
	case CONFIG_STRING:
	case CONFIG_GROUP:
	case CONFIG_USERS:
	case CONFIG_GROUPS:
		return 1;
	default:
		return 0;
	}
}

/* The defaults, from the table. */
void
config_init(struct config *conf)
{
	const struct config_option *o;
	void *f;

	memset(conf, 0, sizeof *conf);
	for (o = config_options; o->name != NULL; o++) {
		f = config_field(conf, o);
		switch (o->type) {
		case CONFIG_STRING:
		case CONFIG_USERS:
		case CONFIG_GROUPS:
			if (o->def_string != NULL)
				*(char **)f = xstrdup(o->def_string);
			break;
		case CONFIG_GROUP:
			*(long *)((char *)conf + o->resolved) = -1;
			break;
		case CONFIG_MODE:
			*(unsigned *)f = (unsigned)o->def;
			break;
		case CONFIG_DURATION:
			*(int64_t *)f = (int64_t)o->def;
			break;
		case CONFIG_SIZE:
			*(size_t *)f = (size_t)o->def;
			break;
		case CONFIG_INT:
		case CONFIG_LOGLEVEL:
		case CONFIG_BOOL:
			*(int *)f = (int)o->def;
			break;
		case CONFIG_RATE:
			*(double *)f = o->def;
			break;
		}
	}
}

void
config_free(struct config *conf)
{
	const struct config_option *o;
	struct config_ids *ids;

	for (o = config_options; o->name != NULL; o++) {
		if (config_is_string(o))
			free(*(char **)config_field(conf, o));
		if (o->type == CONFIG_USERS || o->type == CONFIG_GROUPS) {
			ids = (void *)((char *)conf + o->resolved);
			free(ids->ids);
		}
	}
	memset(conf, 0, sizeof *conf);
}

/*
 * A deep copy: every string and resolved id list is the copy's own, to
 * free with config_free() and free().
 */
struct config *
config_dup(const struct config *conf)
{
	const struct config_option *o;
	const struct config_ids *from;
	struct config_ids *to;
	struct config *copy;
	char **s;

	copy = xmalloc(sizeof *copy);
	memcpy(copy, conf, sizeof *copy);
	for (o = config_options; o->name != NULL; o++) {
		if (config_is_string(o)) {
			s = config_field(copy, o);
			if (*s != NULL)
				*s = xstrdup(*s);
		}
		if (o->type == CONFIG_USERS || o->type == CONFIG_GROUPS) {
			from = (const void *)((const char *)conf + o->resolved);
			to = (void *)((char *)copy + o->resolved);
			to->ids = from->n == 0
			    ? NULL
			    : xmemdup(from->ids, from->n * sizeof *from->ids);
		}
	}
	return copy;
}

static int
config_same_string(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * Does the setting o differ between a and b?  A group compares by its
 * number, so "users" and "100" are the same group.
 */
int
config_differs(const struct config *a, const struct config *b,
    const struct config_option *o)
{
	const void *fa = config_field(a, o), *fb = config_field(b, o);

	switch (o->type) {
	case CONFIG_GROUP:
		return *(const long *)((const char *)a + o->resolved) !=
		    *(const long *)((const char *)b + o->resolved);
	case CONFIG_STRING:
	case CONFIG_USERS:
	case CONFIG_GROUPS:
		return !config_same_string(
		    *(char *const *)fa, *(char *const *)fb);
	case CONFIG_MODE:
		return *(const unsigned *)fa != *(const unsigned *)fb;
	case CONFIG_DURATION:
		return *(const int64_t *)fa != *(const int64_t *)fb;
	case CONFIG_SIZE:
		return *(const size_t *)fa != *(const size_t *)fb;
	case CONFIG_INT:
	case CONFIG_LOGLEVEL:
	case CONFIG_BOOL:
		return *(const int *)fa != *(const int *)fb;
	case CONFIG_RATE:
		return *(const double *)fa != *(const double *)fb;
	}
	return 1;
}

/* Does any setting with all of flags differ between a and b? */
int
config_changed(const struct config *a, const struct config *b, int flags)
{
	const struct config_option *o;

	for (o = config_options; o->name != NULL; o++) {
		if ((o->flags & flags) == flags && config_differs(a, b, o))
			return 1;
	}
	return 0;
}

/* The row for a key, or NULL. */
const struct config_option *
config_find(const char *name)
{
	const struct config_option *o;

	for (o = config_options; o->name != NULL; o++) {
		if (strcmp(o->name, name) == 0)
			return o;
	}
	return NULL;
}

static void
config_error(struct config_parser *p, const char *fmt, ...)
{
	char *msg, *line;
	va_list ap;
	int n;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		fatal("vasprintf");
	va_end(ap);
	if (p->line > 0)
		n = xasprintf(&line, "%s:%u: %s", p->name, p->line, msg);
	else
		n = xasprintf(&line, "%s: %s", p->name, msg);
	free(msg);
	p->errors = xrealloc(p->errors, p->errlen + (size_t)n + 2);
	if (p->errlen > 0)
		p->errors[p->errlen++] = '\n';
	memcpy(p->errors + p->errlen, line, (size_t)n + 1);
	p->errlen += (size_t)n;
	p->nerrors++;
	free(line);
}

/* A number with an optional unit: ms, s, m, h, d.  Plain numbers are seconds.
 */
int
config_parse_duration(const char *s, int64_t *ms)
{
	char *end;
	double v, mult = 1000;

	/* Plain decimal only: no sign, no spaces, no hex, no exponent. */
	if (!isdigit((unsigned char)*s) && *s != '.')
		return -1;
	for (end = (char *)s; isdigit((unsigned char)*end) || *end == '.';)
		end++;
	if (*end == 'e' || *end == 'E' || *end == 'x' || *end == 'X')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno != 0 || !isfinite(v) || v < 0)
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mult = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		mult = 3600 * 1000;
	else if (strcmp(end, "d") == 0)
		mult = 86400 * 1000;
	else
		return -1;
	if (v * mult > 1e15)
		return -1;
	*ms = (int64_t)llround(v * mult);
	return 0;
}

/* A byte count with an optional binary suffix: K, M, G (or KiB, …). */
int
config_parse_size(const char *s, size_t *bytes)
{
	char *end;
	unsigned long long v, mult;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end == '\0' || strcasecmp(end, "b") == 0)
		mult = 1;
	else if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kib") == 0)
		mult = 1ULL << 10;
	else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mib") == 0)
		mult = 1ULL << 20;
	else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gib") == 0)
		mult = 1ULL << 30;
	else
		return -1;
	if (v > (SIZE_MAX / 2) / mult)
		return -1;
	*bytes = (size_t)(v * mult);
	return 0;
}

static int
config_parse_int(const char *s, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0)
		return -1;
	return 0;
}

static void
config_describe(const struct config_option *k, char *buf, size_t len)
{
	switch (k->type) {
	case CONFIG_DURATION:
		snprintf(buf, len,
		    "a duration from %gs to %gs (such as 10, 500ms, 2m)",
		    k->min / SEC, k->max / SEC);
		break;
	case CONFIG_SIZE:
		snprintf(buf, len,
		    "a size from %.0f to %.0f bytes (such as 64K, 8M)", k->min,
		    k->max);
		break;
	case CONFIG_INT:
		snprintf(buf, len, "a whole number from %.0f to %.0f", k->min,
		    k->max);
		break;
	case CONFIG_RATE:
		snprintf(buf, len, "a number from %g to %g", k->min, k->max);
		break;
	default:
		snprintf(buf, len, "%s", k->hint);
		break;
	}
}

/* Is value one of the row's choices (any value if it has none)? */
static int
config_choice(const struct config_option *k, const char *value)
{
	const char *const *c;

	if (k->choices == NULL)
		return 1;
	for (c = k->choices; *c != NULL; c++) {
		if (strcmp(*c, value) == 0)
			return 1;
	}
	return 0;
}

static int
config_set(
    struct config_parser *p, const struct config_option *k, const char *value)
{
	void *field = (char *)p->conf + k->offset;
	int64_t ms;
	size_t size;
	long long n;
	double d;
	char *end;
	int level;

	switch (k->type) {
	case CONFIG_STRING:
	case CONFIG_GROUP:
	case CONFIG_USERS:
	case CONFIG_GROUPS:
		if (*value == '\0' || !config_choice(k, value))
			return -1;
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 0;
	case CONFIG_MODE:
		errno = 0;
		n = strtoll(value, &end, 8);
		if (*value == '\0' || *end != '\0' || errno != 0 || n < 0 ||
		    n > (long long)k->max)
			return -1;
		*(unsigned *)field = (unsigned)n;
		return 0;
	case CONFIG_DURATION:
		if (config_parse_duration(value, &ms) != 0 ||
		    (double)ms < k->min || (double)ms > k->max)
			return -1;
		*(int64_t *)field = ms;
		return 0;
	case CONFIG_SIZE:
		if (config_parse_size(value, &size) != 0 ||
		    (double)size < k->min || (double)size > k->max)
			return -1;
		*(size_t *)field = size;
		return 0;
	case CONFIG_INT:
		if (config_parse_int(value, &n) != 0 || n < (long long)k->min ||
		    n > (long long)k->max)
			return -1;
		*(int *)field = (int)n;
		return 0;
	case CONFIG_RATE:
		errno = 0;
		d = strtod(value, &end);
		if (end == value || *end != '\0' || errno != 0 ||
		    !isfinite(d) || d < k->min || d > k->max)
			return -1;
		*(double *)field = d;
		return 0;
	case CONFIG_LOGLEVEL:
		if ((level = log_level_parse(value)) < 0)
			return -1;
		*(int *)field = level;
		return 0;
	case CONFIG_BOOL:
		if (strcasecmp(value, "yes") == 0 ||
		    strcasecmp(value, "true") == 0 ||
		    strcasecmp(value, "on") == 0 || strcmp(value, "1") == 0)
			*(int *)field = 1;
		else if (strcasecmp(value, "no") == 0 ||
		    strcasecmp(value, "false") == 0 ||
		    strcasecmp(value, "off") == 0 || strcmp(value, "0") == 0)
			*(int *)field = 0;
		else
			return -1;
		return 0;
	}
	return -1;
}

/*
 * Split one line (NUL-terminated, no newline) into key and value.  Returns
 * 1 for a setting, 0 for a blank or comment line, -1 on a syntax error.
 */
static int
config_split(struct config_parser *p, char *line, char **key, char **value)
{
	char *s, *e, *out;

	s = line;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0' || *s == '#')
		return 0;
	*key = s;
	while (isalnum((unsigned char)*s) || *s == '_')
		s++;
	e = s;
	while (*s == ' ' || *s == '\t')
		s++;
	if (e == *key || *s != '=') {
		config_error(p, "expected \"key = value\"");
		return -1;
	}
	*e = '\0';
	s++;
	while (*s == ' ' || *s == '\t')
		s++;
	*value = s;
	if (*s == '"') {
		out = *value;
		for (s++; *s != '"'; s++) {
			if (*s == '\0') {
				config_error(p, "unterminated quoted value");
				return -1;
			}
			if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
				s++;
			*out++ = *s;
		}
		*out = '\0';
		s++;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s != '\0' && *s != '#') {
			config_error(p, "unexpected text after quoted value");
			return -1;
		}
		return 1;
	}
	/* Unquoted: a '#' first or after whitespace starts a comment. */
	for (e = s; *e != '\0'; e++) {
		if (*e == '#' &&
		    (e == *value || isspace((unsigned char)e[-1]))) {
			*e = '\0';
			break;
		}
	}
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return 1;
}

/* Edits (insert, delete, replace, swap two) from a to b, at most 9. */
static u_int
config_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	u_int d[32][32], best;

	if (la >= 32 || lb >= 32)
		return 9;
	for (i = 0; i <= la; i++)
		d[i][0] = (u_int)i;
	for (j = 0; j <= lb; j++)
		d[0][j] = (u_int)j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb] > 9 ? 9 : d[la][lb];
}

/* The key a typo most likely meant, or NULL if none is close. */
static const char *
config_nearest(const char *key)
{
	const struct config_option *o;
	const char *best = NULL;
	u_int d, bestd = 3; /* at most two edits */
	char lower[64];
	size_t i;

	for (i = 0; key[i] != '\0' && i < sizeof lower - 1; i++)
		lower[i] = (char)tolower((unsigned char)key[i]);
	lower[i] = '\0';
	for (o = config_options; o->name != NULL; o++) {
		if ((d = config_distance(lower, o->name)) < bestd) {
			bestd = d;
			best = o->name;
		}
	}
	return best;
}

static void
config_line(struct config_parser *p, char *line)
{
	const struct config_option *k;
	const char *near;
	char *key, *value, want[128];
	u_int i;

	if (config_split(p, line, &key, &value) != 1)
		return;
	if ((k = config_find(key)) == NULL) {
		if ((near = config_nearest(key)) != NULL)
			config_error(p, "unknown key \"%s\" (did you mean %s?)",
			    key, near);
		else
			config_error(p, "unknown key \"%s\"", key);
		return;
	}
	i = (u_int)(k - config_options);
	if (p->seen[i] != 0) {
		config_error(
		    p, "\"%s\" is already set on line %u", key, p->seen[i]);
		return;
	}
	p->seen[i] = p->line;
	if (config_set(p, k, value) != 0) {
		config_describe(k, want, sizeof want);
		config_error(p, "bad value for %s: \"%s\" (expected %s)", key,
		    value, want);
	}
}

/*
 * Parse a whole file's contents into conf (which holds the defaults, or
 * the command line's values).  Returns the number of errors; *errors gets
 * them, one per line, when there are any.
 */
int
config_parse(struct config *conf, const char *name, const char *buf, size_t len,
    char **errors)
{
	struct config_parser p;
	const char *s = buf, *end = buf + len, *nl;
	char *line, *check = NULL;
	size_t n;

	memset(&p, 0, sizeof p);
	p.conf = conf;
	p.name = name;
	while (s < end) {
		p.line++;
		nl = memchr(s, '\n', (size_t)(end - s));
		n = (nl != NULL ? nl : end) - s;
		if (memchr(s, '\0', n) != NULL)
			config_error(&p, "NUL byte in line");
		else {
			line = xmemdup(s, n);
			if (n > 0 && line[n - 1] == '\r')
				line[n - 1] = '\0';
			config_line(&p, line);
			free(line);
		}
		s += n + 1;
	}
	p.line = 0;
	if (p.nerrors == 0 &&
	    (config_check(conf, &check) != 0 ||
	        config_resolve(conf, &check) != 0)) {
		config_error(&p, "%s", check);
		free(check);
	}
	*errors = p.errors;
	return p.nerrors;
}

/* Relations between keys, checked after the whole file is read. */
/* A subject to publish to: dot-separated tokens, no wildcard, no space. */
int
config_nats_subject_ok(const char *s)
{
	const char *t;

	if (*s == '\0' || *s == '.' || s[strlen(s) - 1] == '.' ||
	    strstr(s, "..") != NULL)
		return 0;
	for (t = s; *t != '\0'; t++) {
		if (*t == '*' || *t == '>' || !isgraph((unsigned char)*t))
			return 0;
	}
	return 1;
}

/* A JetStream stream name: printable, no dot, wildcard or slash. */
static int
config_nats_stream_ok(const char *s)
{
	const char *t;

	if (*s == '\0' || strlen(s) > 255)
		return 0;
	for (t = s; *t != '\0'; t++) {
		if (strchr(".*>/\\", *t) != NULL || !isgraph((unsigned char)*t))
			return 0;
	}
	return 1;
}

/* nats_url: nats:// or tls:// URLs with a host, separated by commas. */
static int
config_check_nats_url(const char *urls, char **errors)
{
	char *copy, *p, *u;
	int n = 0, rc = 0;

	copy = p = xstrdup(urls);
	while (rc == 0 && (u = strsep(&p, ",")) != NULL) {
		u += strspn(u, " \t");
		u[strcspn(u, " \t")] = '\0';
		if (*u == '\0')
			continue;
		n++;
		if ((strncmp(u, "nats://", 7) != 0 &&
		        strncmp(u, "tls://", 6) != 0) ||
		    strchr(u, ':')[3] == '\0' || strchr(u, ':')[3] == ':') {
			xasprintf(errors,
			    "nats_url: \"%s\" is not a nats://host[:port] or tls://host[:port] URL",
			    u);
			rc = -1;
		}
	}
	free(copy);
	if (rc == 0 && n == 0) {
		xasprintf(errors, "nats_url: no URL given");
		rc = -1;
	}
	return rc;
}

/* The NATS keys together: one way to log in, names NATS accepts. */
static int
config_check_nats(const struct config *conf, char **errors)
{
	int ways;

	if (conf->nats_url == NULL && conf->nats_ha) {
		xasprintf(errors, "nats_ha = yes needs nats_url");
		return -1;
	}
	if (conf->nats_url == NULL)
		return 0;
	if (config_check_nats_url(conf->nats_url, errors) != 0)
		return -1;
	ways = (conf->nats_creds_file != NULL) +
	    (conf->nats_nkey_file != NULL) + (conf->nats_user != NULL);
	if (ways > 1) {
		xasprintf(errors,
		    "nats_creds_file, nats_nkey_file and nats_user are different ways to log in to NATS: set one of them");
		return -1;
	}
	if ((conf->nats_user != NULL) != (conf->nats_password_file != NULL)) {
		xasprintf(errors,
		    "nats_user and nats_password_file go together: set both or neither");
		return -1;
	}
	if (conf->nats_prefix != NULL &&
	    !config_nats_subject_ok(conf->nats_prefix)) {
		xasprintf(errors,
		    "nats_prefix \"%s\" is not a NATS subject (dot-separated tokens without spaces, * or >)",
		    conf->nats_prefix);
		return -1;
	}
	if (conf->nats_stream != NULL &&
	    !config_nats_stream_ok(conf->nats_stream)) {
		xasprintf(errors,
		    "nats_stream \"%s\" is not a JetStream stream name (no spaces, dots, *, > or slashes)",
		    conf->nats_stream);
		return -1;
	}
	/* A standby never asks Slack which workspace it serves. */
	if (conf->nats_ha &&
	    (conf->nats_prefix == NULL || conf->nats_stream == NULL)) {
		xasprintf(errors,
		    "nats_ha = yes needs nats_prefix and nats_stream set (a standby does not connect to Slack to learn the team id)");
		return -1;
	}
	return 0;
}

int
config_check(const struct config *conf, char **errors)
{
	struct webapi_url url;
	char *err = NULL;

	if (conf->reconnect_min > conf->reconnect_max) {
		xasprintf(errors,
		    "reconnect_min (%.3gs) is larger than reconnect_max (%.3gs)",
		    conf->reconnect_min / SEC, conf->reconnect_max / SEC);
		return -1;
	}
	if (webapi_parse_url(conf->api_url, 0, &url, &err) != 0) {
		xasprintf(errors, "api_url: %s", err);
		free(err);
		return -1;
	}
	webapi_url_free(&url);
	if (strcmp(conf->upstream, "auto") != 0 &&
	    strcmp(conf->upstream, "rtm") != 0 &&
	    strcmp(conf->upstream, "socket") != 0) {
		xasprintf(errors, "upstream: \"%s\" is not auto, rtm or socket",
		    conf->upstream);
		return -1;
	}
	return config_check_nats(conf, errors);
}

/* Is a Web API method in api_allow ("users.*" matches users.info)? */
int
config_api_allowed(const struct config *conf, const char *method)
{
	char *copy, *p, *word;
	size_t n;
	int ok = 0;

	if (conf->api_allow == NULL)
		return 0;
	copy = p = xstrdup(conf->api_allow);
	while (!ok && (word = strsep(&p, ", \t")) != NULL) {
		n = strlen(word);
		if (n == 0)
			continue;
		if (word[n - 1] == '*')
			ok = strncmp(method, word, n - 1) == 0;
		else
			ok = strcmp(method, word) == 0;
	}
	free(copy);
	return ok;
}

/* A user or group, by name or number; -1 if there is no such thing. */
static long
config_id(const char *s, int group)
{
	struct passwd pw, *pwp;
	struct group gr, *grp;
	char buf[4096], *end;
	unsigned long v;

	if (isdigit((unsigned char)*s)) {
		errno = 0;
		v = strtoul(s, &end, 10);
		if (*end != '\0' || errno != 0 || v >= UINT32_MAX)
			return -1;
		return (long)v;
	}
	if (group) {
		if (getgrnam_r(s, &gr, buf, sizeof buf, &grp) != 0 ||
		    grp == NULL)
			return -1;
		return (long)grp->gr_gid;
	}
	if (getpwnam_r(s, &pw, buf, sizeof buf, &pwp) != 0 || pwp == NULL)
		return -1;
	return (long)pwp->pw_uid;
}

/* "alice, bob 1001" into ids; -1 with *err naming what does not exist. */
static int
config_ids(const char *key, const char *list, int group, struct config_ids *out,
    char **err)
{
	char *copy, *p, *word;
	long id;

	free(out->ids);
	out->ids = NULL;
	out->n = 0;
	if (list == NULL)
		return 0;
	copy = p = xstrdup(list);
	while ((word = strsep(&p, ", \t")) != NULL) {
		if (*word == '\0')
			continue;
		if ((id = config_id(word, group)) < 0) {
			xasprintf(err, "%s: there is no %s \"%s\"", key,
			    group ? "group" : "user", word);
			free(copy);
			return -1;
		}
		out->ids = xrealloc(out->ids, (out->n + 1) * sizeof *out->ids);
		out->ids[out->n++] = (unsigned)id;
	}
	free(copy);
	return 0;
}

/* Turn user and group names into ids. */
static int
config_resolve(struct config *conf, char **err)
{
	const struct config_option *o;
	const char *value;
	long *gid;

	for (o = config_options; o->name != NULL; o++) {
		value = *(char **)config_field(conf, o);
		switch (o->type) {
		case CONFIG_GROUP:
			gid = (long *)((char *)conf + o->resolved);
			*gid = -1;
			if (value != NULL && (*gid = config_id(value, 1)) < 0) {
				xasprintf(err, "%s: there is no group \"%s\"",
				    o->name, value);
				return -1;
			}
			break;
		case CONFIG_USERS:
		case CONFIG_GROUPS:
			if (config_ids(o->name, value, o->type == CONFIG_GROUPS,
			        (void *)((char *)conf + o->resolved), err) != 0)
				return -1;
			break;
		default:
			break;
		}
	}
	return 0;
}

static int
config_listed(const struct config_ids *l, unsigned id)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (l->ids[i] == id)
			return 1;
	}
	return 0;
}

/*
 * May a peer with this uid and these groups use the socket?  Without
 * allow_users and allow_groups, anyone the socket's mode lets in may;
 * root and the daemon's own user always may.
 */
int
config_allowed(
    const struct config *conf, uid_t uid, const gid_t *gids, size_t ngids)
{
	size_t i;

	if (conf->allow_users == NULL && conf->allow_groups == NULL)
		return 1;
	if (uid == 0 || uid == geteuid() ||
	    config_listed(&conf->allowed_uids, uid))
		return 1;
	for (i = 0; i < ngids; i++) {
		if (config_listed(&conf->allowed_gids, gids[i]))
			return 1;
	}
	return 0;
}

/*
 * Read and parse path.  A missing file is an error only when required
 * (given with -f); the default path may be absent.  Any readable file will
 * do, read once to its end: /dev/null or a pipe is an empty configuration.
 */
int
config_load(struct config *conf, const char *path, int required, char **errors)
{
	struct stat sb;
	char *buf;
	ssize_t n;
	size_t len = 0;
	int fd, nerr;

	*errors = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		if (errno == ENOENT && !required)
			return config_check(conf, errors) == 0 &&
			        config_resolve(conf, errors) == 0
			    ? 0
			    : 1;
		xasprintf(errors, "%s: %s", path, strerror(errno));
		return 1;
	}
	if (fstat(fd, &sb) == -1 || S_ISDIR(sb.st_mode)) {
		xasprintf(errors, "%s: is a directory, not a file", path);
		close(fd);
		return 1;
	}
	buf = xmalloc(CONFIG_MAX_FILE + 1);
	while (len <= CONFIG_MAX_FILE) {
		n = read(fd, buf + len, CONFIG_MAX_FILE + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			xasprintf(errors, "%s: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return 1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len > CONFIG_MAX_FILE) {
		xasprintf(errors,
		    "%s: larger than 1 MiB; a configuration file is at most 1 MiB",
		    path);
		free(buf);
		return 1;
	}
	nerr = config_parse(conf, path, buf, len, errors);
	free(buf);
	return nerr;
}
