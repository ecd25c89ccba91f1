/*
 * slackd.conf: "key = value" lines, "#" comments (whole line, or after
 * whitespace), values optionally in double quotes.  Every problem is
 * reported with its file and line, and all of them are reported at once.
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

enum config_type {
	CONFIG_STRING,
	CONFIG_MODE,
	CONFIG_DURATION,
	CONFIG_SIZE,
	CONFIG_INT,
	CONFIG_RATE,
	CONFIG_LOGLEVEL,
	CONFIG_BOOL,
};

struct config_key {
	const char *name;
	enum config_type type;
	size_t offset;
	double min; /* durations in ms, sizes in bytes */
	double max;
	const char *hint;
};

#define OFF(f) offsetof(struct config, f)
#define SEC    1000.0
static const struct config_key config_keys[] = {
	{ "socket", CONFIG_STRING, OFF(socket_path), 0, 0, "a path" },
	{ "socket_mode", CONFIG_MODE, OFF(socket_mode), 0, 0777,
	    "an octal mode such as 0660" },
	{ "socket_group", CONFIG_STRING, OFF(socket_group), 0, 0,
	    "a group name or number" },
	{ "allow_users", CONFIG_STRING, OFF(allow_users), 0, 0,
	    "user names or numbers" },
	{ "allow_groups", CONFIG_STRING, OFF(allow_groups), 0, 0,
	    "group names or numbers" },
	{ "api_url", CONFIG_STRING, OFF(api_url), 0, 0, "a URL" },
	{ "ca_file", CONFIG_STRING, OFF(ca_file), 0, 0, "a path" },
	{ "token_file", CONFIG_STRING, OFF(token_file), 0, 0, "a path" },
	{ "team_state", CONFIG_BOOL, OFF(team_state), 0, 0, "yes or no" },
	{ "state_dir", CONFIG_STRING, OFF(state_dir), 0, 0, "a directory" },
	{ "names_max_age", CONFIG_DURATION, OFF(names_max_age), 0,
	    30 * 86400 * SEC, NULL },
	{ "api_allow", CONFIG_STRING, OFF(api_allow), 0, 0,
	    "Web API method names, a trailing * matching any" },
	{ "log_level", CONFIG_LOGLEVEL, OFF(log_level), 0, 0,
	    "error, warning, info or debug" },
	{ "ping_interval", CONFIG_DURATION, OFF(ping_interval), 0.1 * SEC,
	    3600 * SEC, NULL },
	{ "pong_timeout", CONFIG_DURATION, OFF(pong_timeout), 0.1 * SEC,
	    600 * SEC, NULL },
	{ "hello_timeout", CONFIG_DURATION, OFF(hello_timeout), 0.1 * SEC,
	    600 * SEC, NULL },
	{ "connect_timeout", CONFIG_DURATION, OFF(connect_timeout), 0.1 * SEC,
	    600 * SEC, NULL },
	{ "reconnect_min", CONFIG_DURATION, OFF(reconnect_min), 0.01 * SEC,
	    3600 * SEC, NULL },
	{ "reconnect_max", CONFIG_DURATION, OFF(reconnect_max), 0.01 * SEC,
	    86400 * SEC, NULL },
	{ "reconnect_reset", CONFIG_DURATION, OFF(reconnect_reset), 0,
	    86400 * SEC, NULL },
	{ "rtm_connect_burst", CONFIG_INT, OFF(rtm_connect_burst), 1, 100,
	    NULL },
	{ "rtm_connect_interval", CONFIG_DURATION, OFF(rtm_connect_interval), 0,
	    3600 * SEC, NULL },
	{ "queue_max", CONFIG_INT, OFF(queue_max), 1, 1000000, NULL },
	{ "queue_timeout", CONFIG_DURATION, OFF(queue_timeout), 0, 86400 * SEC,
	    NULL },
	{ "ack_timeout", CONFIG_DURATION, OFF(ack_timeout), 0.1 * SEC,
	    3600 * SEC, NULL },
	{ "send_rate", CONFIG_RATE, OFF(send_rate), 0.001, 1000, NULL },
	{ "send_burst", CONFIG_INT, OFF(send_burst), 1, 1000, NULL },
	{ "max_line", CONFIG_SIZE, OFF(max_line), 1024, 16 * 1048576.0, NULL },
	{ "max_event", CONFIG_SIZE, OFF(max_event), 16384, 256 * 1048576.0,
	    NULL },
	{ "client_buffer_soft", CONFIG_SIZE, OFF(client_buffer_soft), 16384,
	    1024 * 1048576.0, NULL },
	{ "client_buffer_soft_time", CONFIG_DURATION,
	    OFF(client_buffer_soft_time), 0, 3600 * SEC, NULL },
	{ "client_buffer_limit", CONFIG_SIZE, OFF(client_buffer_limit), 65536,
	    1024 * 1048576.0, NULL },
};
#undef OFF

struct config_parser {
	struct config *conf;
	const char *name;
	u_int line;
	u_int seen[nitems(config_keys)];
	char *errors;
	size_t errlen;
	int nerrors;
};

static void config_error(struct config_parser *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

void
config_init(struct config *conf)
{
	memset(conf, 0, sizeof *conf);
	conf->socket_mode = 0660;
	conf->socket_gid = -1;
	conf->api_url = xstrdup("https://slack.com/api/");
	conf->log_level = LOG_LEVEL_INFO;
	conf->ping_interval = 10 * 1000;
	conf->pong_timeout = 5 * 1000;
	conf->hello_timeout = 10 * 1000;
	conf->connect_timeout = 15 * 1000;
	conf->reconnect_min = 1 * 1000;
	conf->reconnect_max = 120 * 1000;
	conf->reconnect_reset = 60 * 1000;
	conf->rtm_connect_burst = 4;
	conf->rtm_connect_interval = 60 * 1000;
	conf->queue_max = 1000;
	conf->queue_timeout = 600 * 1000;
	conf->ack_timeout = 30 * 1000;
	conf->send_rate = 1.0;
	conf->send_burst = 3;
	conf->max_line = PROTOCOL_MAX_LINE;
	conf->max_event = 1048576;
	conf->client_buffer_limit = 8 * 1048576;
	conf->client_buffer_soft = 1048576;
	conf->client_buffer_soft_time = 30 * 1000;
	conf->names_max_age = 86400 * 1000;
	conf->api_allow = xstrdup("conversations.* users.* chat.postMessage");
}

void
config_free(struct config *conf)
{
	free(conf->socket_path);
	free(conf->socket_group);
	free(conf->allow_users);
	free(conf->allow_groups);
	free(conf->allowed_uids.ids);
	free(conf->allowed_gids.ids);
	free(conf->state_dir);
	free(conf->api_allow);
	free(conf->api_url);
	free(conf->ca_file);
	free(conf->token_file);
	memset(conf, 0, sizeof *conf);
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

/* A number with an optional unit: ms, s, m, h.  Plain numbers are seconds. */
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
config_describe(const struct config_key *k, char *buf, size_t len)
{
	switch (k->type) {
	case CONFIG_DURATION:
		snprintf(buf, len,
		    "a duration from %gs to %gs (such as 10, "
		    "500ms, 2m)",
		    k->min / SEC, k->max / SEC);
		break;
	case CONFIG_SIZE:
		snprintf(buf, len,
		    "a size from %.0f to %.0f bytes (such as "
		    "64K, 8M)",
		    k->min, k->max);
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

static int
config_set(
    struct config_parser *p, const struct config_key *k, const char *value)
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
		if (*value == '\0')
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

static void
config_line(struct config_parser *p, char *line)
{
	const struct config_key *k = NULL;
	char *key, *value, want[128];
	u_int i;

	if (config_split(p, line, &key, &value) != 1)
		return;
	for (i = 0; i < nitems(config_keys); i++) {
		if (strcmp(config_keys[i].name, key) == 0) {
			k = &config_keys[i];
			break;
		}
	}
	if (k == NULL) {
		config_error(p, "unknown key \"%s\"", key);
		return;
	}
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
int
config_check(const struct config *conf, char **errors)
{
	struct webapi_url url;
	char *err = NULL;

	if (conf->reconnect_min > conf->reconnect_max) {
		xasprintf(errors,
		    "reconnect_min (%.3gs) is larger than "
		    "reconnect_max (%.3gs)",
		    conf->reconnect_min / SEC, conf->reconnect_max / SEC);
		return -1;
	}
	if (webapi_parse_url(conf->api_url, 0, &url, &err) != 0) {
		xasprintf(errors, "api_url: %s", err);
		free(err);
		return -1;
	}
	webapi_url_free(&url);
	return 0;
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
int
config_resolve(struct config *conf, char **err)
{
	conf->socket_gid = -1;
	if (conf->socket_group != NULL &&
	    (conf->socket_gid = config_id(conf->socket_group, 1)) < 0) {
		xasprintf(err, "socket_group: there is no group \"%s\"",
		    conf->socket_group);
		return -1;
	}
	if (config_ids("allow_users", conf->allow_users, 0, &conf->allowed_uids,
	        err) != 0 ||
	    config_ids("allow_groups", conf->allow_groups, 1,
	        &conf->allowed_gids, err) != 0)
		return -1;
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
 * (given with -f); the default path may be absent.
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
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT && !required)
			return config_check(conf, errors) == 0 &&
			        config_resolve(conf, errors) == 0
			    ? 0
			    : 1;
		xasprintf(errors, "%s: %s", path, strerror(errno));
		return 1;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    sb.st_size > CONFIG_MAX_FILE) {
		xasprintf(
		    errors, "%s: not a regular file of at most 1 MiB", path);
		close(fd);
		return 1;
	}
	buf = xmalloc((size_t)sb.st_size + 1);
	while (len < (size_t)sb.st_size) {
		n = read(fd, buf + len, (size_t)sb.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	nerr = config_parse(conf, path, buf, len, errors);
	free(buf);
	return nerr;
}

/* TEMPORARY (lead's branch): replaced by the table-driven config_dup. */
static char *
config_strdup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

struct config *
config_dup(const struct config *from)
{
	struct config *to = xmalloc(sizeof *to);

	*to = *from;
	to->socket_path = config_strdup(from->socket_path);
	to->socket_group = config_strdup(from->socket_group);
	to->allow_users = config_strdup(from->allow_users);
	to->allow_groups = config_strdup(from->allow_groups);
	to->allowed_uids.ids = from->allowed_uids.n ? xmemdup(from->allowed_uids.ids, from->allowed_uids.n * sizeof(unsigned)) : NULL;
	to->allowed_gids.ids = from->allowed_gids.n ? xmemdup(from->allowed_gids.ids, from->allowed_gids.n * sizeof(unsigned)) : NULL;
	to->state_dir = config_strdup(from->state_dir);
	to->api_allow = config_strdup(from->api_allow);
	to->api_url = config_strdup(from->api_url);
	to->ca_file = config_strdup(from->ca_file);
	to->token_file = config_strdup(from->token_file);
	return to;
}
