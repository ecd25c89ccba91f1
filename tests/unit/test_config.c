/*
 * Unit tests for daemon/config.c: defaults, the "key = value" parser,
 * error reporting, durations and sizes, and config_load() on real files.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slackd.h"
#include "tap.h"

#define NAME "t.conf"

static void diag(const char *, ...) __attribute__((format(printf, 1, 2)));

/* A TAP comment line. */
static void
diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* config_init + config_parse of len bytes of text under the name "t.conf". */
static int
parse_len(struct config *c, const char *text, size_t len, char **err)
{
	config_init(c);
	*err = NULL;
	return config_parse(c, NAME, text, len, err);
}

static int
parse(struct config *c, const char *text, char **err)
{
	return parse_len(c, text, strlen(text), err);
}

static int
contains(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

/* Number of '\n'-separated lines in s (0 for NULL). */
static int
count_lines(const char *s)
{
	int n = 1;

	if (s == NULL || *s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (*s == '\n')
			n++;
	}
	return n;
}

/* Is line (exactly, up to a '\n' or the end) one of the lines of s? */
static int
has_line(const char *s, const char *line)
{
	size_t n = strlen(line);
	const char *p;

	for (p = s; p != NULL && *p != '\0';) {
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return 1;
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return 0;
}

/* Is there a line of s that starts with prefix? */
static int
has_line_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	const char *p;

	for (p = s; p != NULL && *p != '\0';) {
		if (strncmp(p, prefix, n) == 0)
			return 1;
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return 0;
}

static void
test_defaults(void)
{
	struct config c;
	char *err = NULL;

	config_init(&c);
	ok(c.socket_path == NULL, "default socket is unset");
	is_int(c.socket_mode, 0660, "default socket_mode 0660");
	is_str(c.api_url, "https://slack.com/api/", "default api_url");
	ok(c.ca_file == NULL, "default ca_file is unset");
	ok(c.token_file == NULL, "default token_file is unset");
	is_int(c.log_level, LOG_LEVEL_INFO, "default log_level info");
	is_int(c.ping_interval, 10000, "default ping_interval 10s");
	is_int(c.pong_timeout, 5000, "default pong_timeout 5s");
	is_int(c.hello_timeout, 10000, "default hello_timeout 10s");
	is_int(c.connect_timeout, 15000, "default connect_timeout 15s");
	is_int(c.reconnect_min, 1000, "default reconnect_min 1s");
	is_int(c.reconnect_max, 120000, "default reconnect_max 120s");
	is_int(c.reconnect_reset, 60000, "default reconnect_reset 60s");
	is_int(c.rtm_connect_burst, 4, "default rtm_connect_burst 4");
	is_int(
	    c.rtm_connect_interval, 60000, "default rtm_connect_interval 60s");
	is_int(c.queue_max, 1000, "default queue_max 1000");
	is_int(c.queue_timeout, 600000, "default queue_timeout 600s");
	is_int(c.ack_timeout, 30000, "default ack_timeout 30s");
	ok(c.send_rate == 1.0, "default send_rate 1.0");
	is_int(c.send_burst, 3, "default send_burst 3");
	is_int(c.max_line, 65536, "default max_line 64 KiB");
	is_int(c.max_line, PROTOCOL_MAX_LINE,
	    "default max_line is PROTOCOL_MAX_LINE");
	is_int(c.max_event, 1048576, "default max_event 1 MiB");
	is_int(c.client_buffer_limit, 8 * 1048576,
	    "default client_buffer_limit 8 MiB");
	is_int(config_check(&c, &err), 0, "defaults pass config_check");
	ok(err == NULL, "config_check sets no error for the defaults");
	free(err);
	config_free(&c);
	ok(c.api_url == NULL && c.socket_mode == 0 && c.ping_interval == 0,
	    "config_free clears the structure");
}

static void
test_every_key(void)
{
	static const char text[] = "socket = /run/test/slackd.sock\n"
	                           "socket_mode = 0600\n"
	                           "api_url = https://example.com:8443/api/\n"
	                           "ca_file = /etc/ssl/ca.pem\n"
	                           "token_file = /etc/slackd/token\n"
	                           "log_level = debug\n"
	                           "ping_interval = 20\n"
	                           "pong_timeout = 500ms\n"
	                           "hello_timeout = 2m\n"
	                           "connect_timeout = 1.5s\n"
	                           "reconnect_min = 2s\n"
	                           "reconnect_max = 1h\n"
	                           "reconnect_reset = 0\n"
	                           "rtm_connect_burst = 10\n"
	                           "rtm_connect_interval = 30s\n"
	                           "queue_max = 1\n"
	                           "queue_timeout = 1h\n"
	                           "ack_timeout = 45s\n"
	                           "send_rate = 0.5\n"
	                           "send_burst = 7\n"
	                           "max_line = 64K\n"
	                           "max_event = 8M\n"
	                           "client_buffer_limit = 1G\n";
	struct config c;
	char *err;
	int n;

	n = parse(&c, text, &err);
	is_int(n, 0, "every key: no errors");
	ok(err == NULL, "every key: no error text");
	if (err != NULL)
		printf("# %s\n", err);
	is_str(c.socket_path, "/run/test/slackd.sock", "socket");
	is_int(c.socket_mode, 0600, "socket_mode 0600");
	is_str(c.api_url, "https://example.com:8443/api/", "api_url");
	is_str(c.ca_file, "/etc/ssl/ca.pem", "ca_file");
	is_str(c.token_file, "/etc/slackd/token", "token_file");
	is_int(c.log_level, LOG_LEVEL_DEBUG, "log_level debug");
	is_int(c.ping_interval, 20000, "ping_interval 20 (plain seconds)");
	is_int(c.pong_timeout, 500, "pong_timeout 500ms");
	is_int(c.hello_timeout, 120000, "hello_timeout 2m");
	is_int(c.connect_timeout, 1500, "connect_timeout 1.5s");
	is_int(c.reconnect_min, 2000, "reconnect_min 2s");
	is_int(c.reconnect_max, 3600000, "reconnect_max 1h");
	is_int(c.reconnect_reset, 0, "reconnect_reset 0");
	is_int(c.rtm_connect_burst, 10, "rtm_connect_burst 10");
	is_int(c.rtm_connect_interval, 30000, "rtm_connect_interval 30s");
	is_int(c.queue_max, 1, "queue_max 1");
	is_int(c.queue_timeout, 3600000, "queue_timeout 1h");
	is_int(c.ack_timeout, 45000, "ack_timeout 45s");
	ok(c.send_rate == 0.5, "send_rate 0.5");
	is_int(c.send_burst, 7, "send_burst 7");
	is_int(c.max_line, 65536, "max_line 64K");
	is_int(c.max_event, 8388608, "max_event 8M");
	is_int(c.client_buffer_limit, 1073741824, "client_buffer_limit 1G");
	free(err);
	config_free(&c);

	/* A later config_parse over the same struct replaces strings. */
	config_init(&c);
	err = NULL;
	n = config_parse(&c, NAME, "socket = /a\n", 12, &err);
	n += config_parse(&c, NAME, "socket = /b\n", 12, &err);
	is_int(n, 0, "two parses over one config: no errors");
	is_str(c.socket_path, "/b", "the second parse replaces the string");
	free(err);
	config_free(&c);
}

struct value_case {
	const char *line;
	int errors;
	long long want; /* when errors == 0 */
};

static void
test_durations(void)
{
	static const struct value_case cases[] = {
		{ "ping_interval = 10", 0, 10000 },
		{ "ping_interval = 500ms", 0, 500 },
		{ "ping_interval = 2m", 0, 120000 },
		{ "ping_interval = 1min", 0, 60000 },
		{ "ping_interval = 1.5s", 0, 1500 },
		{ "ping_interval = 1h", 0, 3600000 },
		{ "ping_interval = 100ms", 0, 100 },     /* the minimum */
		{ "ping_interval = 3600s", 0, 3600000 }, /* the maximum */
		{ "ping_interval = 99ms", 1, 0 },        /* below the minimum */
		{ "ping_interval = 0", 1, 0 },
		{ "ping_interval = 3601", 1, 0 }, /* above the maximum */
		{ "ping_interval = 2h", 1, 0 },
		{ "ping_interval = 10x", 1, 0 }, /* wrong unit */
		{ "ping_interval = 10 s", 1, 0 },
		{ "ping_interval = 10sec", 1, 0 },
		{ "ping_interval = 10MS", 1, 0 },
		{ "ping_interval = -5", 1, 0 }, /* negative */
		{ "ping_interval = -0", 1, 0 },
		{ "ping_interval = abc", 1, 0 }, /* garbage */
		{ "ping_interval = inf", 1, 0 },
		{ "ping_interval = nan", 1, 0 },
		{ "ping_interval = ms", 1, 0 },
		{ "ping_interval =", 1, 0 },     /* empty */
		{ "reconnect_reset = 0", 0, 0 }, /* 0 allowed here */
		{ "reconnect_max = 24h", 0, 86400000 },
		{ "reconnect_max = 25h", 1, 0 },
		{ "reconnect_min = 10ms", 0, 10 },
		{ "reconnect_min = 9ms", 1, 0 },
	};
	struct config c;
	size_t i;
	char *err;
	int n;
	long long got;

	for (i = 0; i < nitems(cases); i++) {
		n = parse(&c, cases[i].line, &err);
		if (cases[i].errors == 0) {
			if (strncmp(cases[i].line, "reconnect_reset", 15) == 0)
				got = c.reconnect_reset;
			else if (strncmp(cases[i].line, "reconnect_max", 13) ==
			    0)
				got = c.reconnect_max;
			else if (strncmp(cases[i].line, "reconnect_min", 13) ==
			    0)
				got = c.reconnect_min;
			else
				got = c.ping_interval;
			ok(n == 0 && got == cases[i].want, "\"%s\" -> %lld ms",
			    cases[i].line, cases[i].want);
			if (n != 0 || got != cases[i].want)
				printf("#   got %d errors (%s), value %lld\n",
				    n, err ? err : "", got);
		} else {
			ok(n == 1 &&
			        has_line_prefix(err,
			            NAME ":1: bad value "
			                 "for "),
			    "\"%s\" is refused", cases[i].line);
			if (n != 1)
				printf("#   got %d errors (%s)\n", n,
				    err ? err : "");
		}
		free(err);
		config_free(&c);
	}
	n = parse(&c, "ping_interval = 2x\n", &err);
	ok(contains(err, "expected a duration from 0.1s to 3600s"),
	    "a bad duration's message says what is expected");
	ok(c.ping_interval == 10000, "a refused value leaves the default");
	free(err);
	config_free(&c);
}

static void
test_sizes(void)
{
	static const struct value_case cases[] = {
		{ "max_line = 64K", 0, 65536 },
		{ "max_line = 64k", 0, 65536 },
		{ "max_line = 64KiB", 0, 65536 },
		{ "max_line = 1024", 0, 1024 },
		{ "max_line = 1024b", 0, 1024 },
		{ "max_line = 16M", 0, 16777216 },
		{ "max_line = 1023", 1, 0 }, /* below the minimum */
		{ "max_line = 17M", 1, 0 },  /* above the maximum */
		{ "max_line = 1G", 1, 0 },
		{ "max_line = 1.5K", 1, 0 },
		{ "max_line = -1", 1, 0 },
		{ "max_line = 8MB", 1, 0 }, /* wrong unit */
		{ "max_line = 8 M", 1, 0 },
		{ "max_line = lots", 1, 0 },
		{ "max_event = 8M", 0, 8388608 },
		{ "max_event = 256M", 0, 268435456 },
		{ "max_event = 257M", 1, 0 },
		{ "client_buffer_limit = 1G", 0, 1073741824 },
		{ "client_buffer_limit = 1gib", 0, 1073741824 },
		{ "client_buffer_limit = 2G", 1, 0 },
		{ "client_buffer_limit = 64K", 0, 65536 },
		{ "client_buffer_limit = 63K", 1, 0 },
	};
	struct config c;
	size_t i;
	char *err;
	int n;
	long long got;

	for (i = 0; i < nitems(cases); i++) {
		n = parse(&c, cases[i].line, &err);
		if (strncmp(cases[i].line, "max_line", 8) == 0)
			got = (long long)c.max_line;
		else if (strncmp(cases[i].line, "client_", 7) == 0)
			got = (long long)c.client_buffer_limit;
		else
			got = (long long)c.max_event;
		if (cases[i].errors == 0)
			ok(n == 0 && got == cases[i].want,
			    "\"%s\" -> %lld bytes", cases[i].line,
			    cases[i].want);
		else
			ok(n == 1 &&
			        has_line_prefix(err,
			            NAME ":1: bad value "
			                 "for "),
			    "\"%s\" is refused", cases[i].line);
		free(err);
		config_free(&c);
	}
}

static void
test_other_values(void)
{
	static const struct {
		const char *value;
		int level;
	} levels[] = {
		{ "error", LOG_LEVEL_ERR },
		{ "err", LOG_LEVEL_ERR },
		{ "warning", LOG_LEVEL_WARNING },
		{ "warn", LOG_LEVEL_WARNING },
		{ "info", LOG_LEVEL_INFO },
		{ "debug", LOG_LEVEL_DEBUG },
		{ "DEBUG", LOG_LEVEL_DEBUG },
		{ "verbose", -1 },
		{ "3", -1 },
	};
	static const struct value_case modes[] = {
		{ "socket_mode = 0660", 0, 0660 },
		{ "socket_mode = 600", 0, 0600 },
		{ "socket_mode = 0777", 0, 0777 },
		{ "socket_mode = 0", 0, 0 },
		{ "socket_mode = 1000", 1, 0 },
		{ "socket_mode = 0789", 1, 0 },
		{ "socket_mode = -1", 1, 0 },
		{ "socket_mode = rw-rw----", 1, 0 },
		{ "socket_mode = 0x1b6", 1, 0 },
	};
	static const struct value_case ints[] = {
		{ "rtm_connect_burst = 1", 0, 1 },
		{ "rtm_connect_burst = 100", 0, 100 },
		{ "rtm_connect_burst = 0", 1, 0 },
		{ "rtm_connect_burst = 101", 1, 0 },
		{ "rtm_connect_burst = 5x", 1, 0 },
		{ "rtm_connect_burst = 1.5", 1, 0 },
		{ "rtm_connect_burst = 99999999999999999999", 1, 0 },
		{ "queue_max = 1", 0, 1 },
		{ "queue_max = 0", 1, 0 },
		{ "queue_max = 1000000", 0, 1000000 },
		{ "queue_max = 1000001", 1, 0 },
		{ "send_burst = 1000", 0, 1000 },
		{ "send_burst = 1001", 1, 0 },
	};
	static const struct {
		const char *line;
		int errors;
		double want;
	} rates[] = {
		{ "send_rate = 0.001", 0, 0.001 },
		{ "send_rate = 1000", 0, 1000 },
		{ "send_rate = 2.5", 0, 2.5 },
		{ "send_rate = 0", 1, 0 },
		{ "send_rate = 1001", 1, 0 },
		{ "send_rate = -1", 1, 0 },
		{ "send_rate = inf", 1, 0 },
		{ "send_rate = nan", 1, 0 },
		{ "send_rate = 1/s", 1, 0 },
	};
	struct config c;
	char line[64], *err;
	size_t i;
	int n;

	for (i = 0; i < nitems(levels); i++) {
		snprintf(
		    line, sizeof line, "log_level = %s\n", levels[i].value);
		n = parse(&c, line, &err);
		if (levels[i].level >= 0)
			ok(n == 0 && c.log_level == levels[i].level,
			    "log_level %s -> %d", levels[i].value,
			    levels[i].level);
		else
			ok(n == 1 &&
			        contains(err,
			            "error, warning, info or "
			            "debug"),
			    "log_level %s is refused", levels[i].value);
		free(err);
		config_free(&c);
	}
	for (i = 0; i < nitems(modes); i++) {
		n = parse(&c, modes[i].line, &err);
		if (modes[i].errors == 0)
			ok(n == 0 && c.socket_mode == (unsigned)modes[i].want,
			    "\"%s\" -> 0%llo", modes[i].line, modes[i].want);
		else
			ok(n == 1 && contains(err, "octal mode"),
			    "\"%s\" is refused", modes[i].line);
		free(err);
		config_free(&c);
	}
	for (i = 0; i < nitems(ints); i++) {
		n = parse(&c, ints[i].line, &err);
		if (ints[i].errors == 0) {
			long long got = ints[i].line[0] == 'r'
			    ? c.rtm_connect_burst
			    : ints[i].line[0] == 'q' ? c.queue_max
			                             : c.send_burst;
			ok(n == 0 && got == ints[i].want, "\"%s\" -> %lld",
			    ints[i].line, ints[i].want);
		} else
			ok(n == 1 && contains(err, "a whole number from"),
			    "\"%s\" is refused", ints[i].line);
		free(err);
		config_free(&c);
	}
	for (i = 0; i < nitems(rates); i++) {
		n = parse(&c, rates[i].line, &err);
		if (rates[i].errors == 0)
			ok(n == 0 && c.send_rate == rates[i].want,
			    "\"%s\" -> %g", rates[i].line, rates[i].want);
		else
			ok(n == 1 &&
			        contains(err,
			            "a number from 0.001 to "
			            "1000"),
			    "\"%s\" is refused", rates[i].line);
		free(err);
		config_free(&c);
	}
	/* Strings must not be empty. */
	n = parse(&c, "socket =\n", &err);
	ok(n == 1 &&
	        has_line(err,
	            NAME ":1: bad value for socket: \"\" "
	                 "(expected a path)"),
	    "an empty string value is refused");
	free(err);
	config_free(&c);
	n = parse(&c, "ca_file = \"\"\n", &err);
	ok(n == 1 &&
	        has_line_prefix(err,
	            NAME ":1: bad value for ca_file: "
	                 "\"\""),
	    "an empty quoted string value is refused");
	free(err);
	config_free(&c);
}

static void
test_comments(void)
{
	struct config c;
	char *err;
	int n;

	n = parse(&c,
	    "# a whole-line comment\n"
	    "   # an indented comment\n"
	    "\t#socket = /commented/out\n"
	    "socket = /run/a.sock # a trailing note\n"
	    "ca_file = /etc/ca.pem\t# after a tab\n"
	    "token_file = /etc/tok#en\n"
	    "log_level = warning#no-space-so-not-a-comment\n",
	    &err);
	is_int(n, 1, "comments: only the log_level line is an error");
	is_str(c.socket_path, "/run/a.sock", "trailing \" # note\" is dropped");
	is_str(c.ca_file, "/etc/ca.pem", "trailing \"\\t# note\" is dropped");
	is_str(c.token_file, "/etc/tok#en",
	    "'#' without whitespace before it is kept in the value");
	ok(has_line_prefix(err,
	       NAME ":7: bad value for log_level: "
	            "\"warning#no-space-so-not-a-comment\""),
	    "'#' inside a value is part of it (and so is reported)");
	free(err);
	config_free(&c);

	n = parse(&c,
	    "socket = \"/run/a # b.sock\"\n"
	    "ca_file = \"x \\\"q\\\" \\\\ y\" # comment after a quote\n"
	    "token_file = \"#x\"#c\n"
	    "api_url = \"https://example.com/a b?c\"\n",
	    &err);
	/* The api_url has a space, which config_check then refuses. */
	is_int(n, 1, "quoted values parse; only config_check complains");
	is_str(c.socket_path, "/run/a # b.sock",
	    "'#' inside quotes is part of the value");
	is_str(c.ca_file, "x \"q\" \\ y", "\\\" and \\\\ in quotes unescape");
	is_str(c.token_file, "#x", "a comment right after the closing quote");
	is_str(
	    c.api_url, "https://example.com/a b?c", "quotes keep inner spaces");
	free(err);
	config_free(&c);

	n = parse(&c, "socket = \"a\\nb\\\"\"\n", &err);
	ok(n == 0 && c.socket_path != NULL &&
	        strcmp(c.socket_path, "a\\nb\"") == 0,
	    "other backslashes in quotes are kept literally");
	free(err);
	config_free(&c);

	n = parse(&c, "socket = \"/a\" b\n", &err);
	ok(n == 1 &&
	        has_line(err,
	            NAME ":1: unexpected text after quoted "
	                 "value"),
	    "text after a quoted value is an error");
	free(err);
	config_free(&c);

	/* A '#' right after "= " starts a comment: the value is empty. */
	n = parse(&c, "socket = # note\n", &err);
	ok(n == 1 &&
	        has_line_prefix(err,
	            NAME ":1: bad value for socket: "
	                 "\"\""),
	    "\"socket = # note\" is an empty value, not \"# note\"");
	if (c.socket_path != NULL)
		printf("#   socket_path = \"%s\"\n", c.socket_path);
	free(err);
	config_free(&c);
}

static void
test_layout(void)
{
	static const char nul[] = "socket = /a\nsocket_mode = 06\00060\n"
	                          "log_level = debug\n";
	struct config c;
	char *err;
	int n;

	n = parse(&c,
	    "socket = /run/a.sock\r\nlog_level = debug\r\n"
	    "socket_mode = 0600\r\n\r\n# c\r\nping_interval = 5\r\n",
	    &err);
	is_int(n, 0, "CRLF: no errors");
	is_str(c.socket_path, "/run/a.sock", "CRLF: no \\r in a string value");
	is_int(c.log_level, LOG_LEVEL_DEBUG, "CRLF: log_level parses");
	is_int(c.socket_mode, 0600, "CRLF: socket_mode parses");
	is_int(c.ping_interval, 5000, "CRLF: line after a blank CRLF line");
	free(err);
	config_free(&c);

	n = parse(&c,
	    "\n\n   \n\t\t\n  \t socket = /x\n\n\tlog_level=error\n"
	    "   ping_interval\t=\t7\n",
	    &err);
	is_int(n, 0, "blank lines and indentation: no errors");
	is_str(c.socket_path, "/x", "indented key");
	is_int(c.log_level, LOG_LEVEL_ERR, "key=value without spaces");
	is_int(c.ping_interval, 7000, "tabs around '='");
	free(err);
	config_free(&c);

	n = parse(&c, "socket = /a\nsocket_mode = 0640", &err);
	ok(n == 0 && c.socket_mode == 0640, "the last line needs no newline");
	free(err);
	config_free(&c);

	n = parse(&c, "log_level = debug\r", &err);
	ok(n == 0 && c.log_level == LOG_LEVEL_DEBUG,
	    "a last line ending in a bare \\r");
	free(err);
	config_free(&c);

	n = parse_len(&c, "", 0, &err);
	ok(n == 0 && err == NULL, "an empty file is fine");
	free(err);
	config_free(&c);

	/* Only the given length counts, not a NUL after it. */
	n = parse_len(&c, "socket = /abc\nbogus", 13, &err);
	ok(n == 0 && c.socket_path != NULL &&
	        strcmp(c.socket_path, "/abc") == 0,
	    "config_parse reads exactly len bytes");
	free(err);
	config_free(&c);

	n = parse_len(&c, nul, sizeof nul - 1, &err);
	is_int(n, 1, "a NUL byte is one error");
	ok(has_line(err, NAME ":2: NUL byte in line"),
	    "the NUL byte is reported with its line");
	ok(c.log_level == LOG_LEVEL_DEBUG && c.socket_path != NULL,
	    "lines around the NUL byte are still parsed");
	free(err);
	config_free(&c);
}

static void
test_errors(void)
{
	static const char text[] =
	    "# line 1\n"
	    "sockets = /a\n"       /* 2: unknown key */
	    "socket /a\n"          /* 3: missing '=' */
	    "ping_interval = 2x\n" /* 4: bad value */
	    "socket = /first\n"    /* 5: fine */
	    "\n"
	    "socket = /second\n"          /* 7: duplicate */
	    "ca_file = \"/unterminated\n" /* 8: unterminated quote */
	    "queue_max = -1\n"            /* 9: out of range */
	    "= 5\n"                       /* 10: no key */
	    "max_line = 1T\n"             /* 11: wrong unit */
	    "log_level = debug\n"         /* 12: fine */
	    "send_rate = 1e999\n"         /* 13: bad */
	    "rtm_connect_burst = 4 5\n"   /* 14: garbage */
	    "token_file = /a\000b\n"      /* 15: NUL byte */
	    "send_burst = 5";             /* 16: fine, no newline */
	struct config c;
	char *err;
	int n;

	n = parse_len(&c, text, sizeof text - 1, &err);
	is_int(n, 11, "all 11 errors are counted at once");
	is_int(count_lines(err), 11, "the error text has one line per error");
	ok(has_line(
	       err, NAME ":2: unknown key \"sockets\" (did you mean socket?)"),
	    "unknown key, with name:line");
	ok(has_line(err, NAME ":3: expected \"key = value\""),
	    "missing '=', with name:line");
	ok(has_line(err,
	       NAME
	       ":4: bad value for ping_interval: \"2x\" "
	       "(expected a duration from 0.1s to 3600s (such as 10, 500ms, "
	       "2m))"),
	    "bad duration, with name:line and the expectation");
	ok(has_line(err, NAME ":7: \"socket\" is already set on line 5"),
	    "duplicate key names the first line");
	ok(has_line(err, NAME ":8: unterminated quoted value"),
	    "unterminated quote");
	ok(has_line(err,
	       NAME ":9: bad value for queue_max: \"-1\" "
	            "(expected a whole number from 1 to 1000000)"),
	    "negative number out of range");
	ok(has_line(err, NAME ":10: expected \"key = value\""),
	    "a line without a key");
	ok(has_line(err,
	       NAME ":11: bad value for max_line: \"1T\" "
	            "(expected a size from 1024 to 16777216 bytes (such as "
	            "64K, 8M))"),
	    "size with a wrong unit");
	ok(has_line_prefix(err, NAME ":13: bad value for send_rate: "),
	    "rate overflow");
	ok(has_line_prefix(err,
	       NAME ":14: bad value for rtm_connect_burst: "
	            "\"4 5\""),
	    "garbage after a number");
	ok(has_line(err, NAME ":15: NUL byte in line"), "a NUL byte");
	ok(!has_line_prefix(err, NAME ":5:") &&
	        !has_line_prefix(err, NAME ":12:") &&
	        !has_line_prefix(err, NAME ":16:"),
	    "good lines are not reported");
	is_int(c.send_burst, 5, "the line after the NUL byte is parsed");
	is_str(c.socket_path, "/first", "a duplicate does not override");
	is_int(c.log_level, LOG_LEVEL_DEBUG,
	    "good lines apply even when others fail");
	free(err);
	config_free(&c);

	/* A duplicate of a line whose value was refused still counts. */
	n = parse(&c,
	    "ping_interval = 1\nping_interval = 2x\n"
	    "ping_interval = 3\n",
	    &err);
	ok(n == 2 &&
	        has_line(err,
	            NAME ":3: \"ping_interval\" is already "
	                 "set on line 1"),
	    "every duplicate names the first line");
	free(err);
	config_free(&c);

	n = parse(&c, "Socket = /a\n", &err);
	ok(n == 1 &&
	        has_line(err,
	            NAME ":1: unknown key \"Socket\" (did you mean socket?)"),
	    "keys are case-sensitive");
	free(err);
	config_free(&c);

	n = parse(&c, "\xef\xbb\xbfsocket = /a\n", &err);
	ok(n == 1 && has_line_prefix(err, NAME ":1: "),
	    "a byte-order mark is an error, not silently part of a key");
	free(err);
	config_free(&c);
}

static void
test_cross_checks(void)
{
	struct config c;
	char *err;
	int n;

	n = parse(&c, "reconnect_min = 10m\nreconnect_max = 5m\n", &err);
	is_int(n, 1, "reconnect_min > reconnect_max is an error");
	ok(contains(err,
	       "reconnect_min (600s) is larger than reconnect_max "
	       "(300s)"),
	    "the message names both keys and values");
	/* Cross-check errors carry the file name, without a line. */
	ok(err != NULL && strncmp(err, NAME ": ", strlen(NAME ": ")) == 0,
	    "the cross-check error starts with \"" NAME ": \"");
	if (err != NULL)
		printf("#   got \"%s\"\n", err);
	free(err);
	config_free(&c);

	n = parse(&c, "reconnect_min = 5m\nreconnect_max = 5m\n", &err);
	ok(n == 0, "reconnect_min == reconnect_max is fine");
	free(err);
	config_free(&c);

	n = parse(&c, "reconnect_min = 30m\n", &err);
	ok(n == 1 &&
	        contains(err,
	            "reconnect_min (1.8e+03s) is larger than "
	            "reconnect_max (120s)"),
	    "cross check against a default");
	free(err);
	config_free(&c);

	n = parse(&c, "api_url = http://example.com/api/\n", &err);
	ok(n == 1 && contains(err, "api_url: ") && contains(err, "loopback"),
	    "http:// to a non-loopback host is refused");
	free(err);
	config_free(&c);

	n = parse(&c, "api_url = http://127.0.0.1:8080/api/\n", &err);
	ok(n == 0 && err == NULL, "http://127.0.0.1:8080/api/ is accepted");
	is_str(c.api_url, "http://127.0.0.1:8080/api/", "and stored as given");
	free(err);
	config_free(&c);

	n = parse(&c, "api_url = http://localhost/api/\n", &err);
	ok(n == 0, "http://localhost/api/ is accepted");
	free(err);
	config_free(&c);

	n = parse(&c, "api_url = ftp://slack.com/\n", &err);
	ok(n == 1 && contains(err, "api_url: ") &&
	        contains(err, "does not start with https://"),
	    "a non-http scheme is refused");
	free(err);
	config_free(&c);

	config_init(&c);
	c.reconnect_min = 5000;
	c.reconnect_max = 4000;
	err = NULL;
	ok(config_check(&c, &err) == -1 && contains(err, "reconnect_min"),
	    "config_check directly: min > max");
	free(err);
	config_free(&c);
}

static void
test_parse_duration(void)
{
	static const struct {
		const char *s;
		int rc;
		int64_t ms;
	} cases[] = {
		{ "10", 0, 10000 },
		{ "500ms", 0, 500 },
		{ "2m", 0, 120000 },
		{ "2min", 0, 120000 },
		{ "1.5s", 0, 1500 },
		{ "1h", 0, 3600000 },
		{ "0", 0, 0 },
		{ "0ms", 0, 0 },
		{ "2.5ms", 0, 3 },
		/* Plain decimals only: exponents, hex, signs are refused. */
		{ "0.25", 0, 250 },
		{ "1e3ms", -1, 0 },
		{ "1e12", -1, 0 },
		{ "0x10", -1, 0 },
		{ " 5", -1, 0 },
		{ "+5", -1, 0 },
		{ "1000000000000", 0,
		    1000000000000000LL }, /* the 1e15 ms cap */
		{ "1000000000001", -1, 0 },
		{ "1e15", -1, 0 },
		{ "277777778h", -1, 0 }, /* > 1e15 ms */
		{ "1e400", -1, 0 },
		{ "inf", -1, 0 },
		{ "nan", -1, 0 },
		{ "-1", -1, 0 },
		{ "-0.5s", -1, 0 },
		{ "", -1, 0 },
		{ "s", -1, 0 },
		{ "ms", -1, 0 },
		{ "10x", -1, 0 },
		{ "5 s", -1, 0 },
		{ "5s ", -1, 0 },
		{ "1d", 0, 86400000 },
		{ "1dd", -1, 0 },
		{ "5S", -1, 0 },
		{ "1hh", -1, 0 },
	};
	size_t i;
	int64_t ms;
	int rc;

	for (i = 0; i < nitems(cases); i++) {
		ms = -7;
		rc = config_parse_duration(cases[i].s, &ms);
		if (cases[i].rc == 0)
			ok(rc == 0 && ms == cases[i].ms,
			    "config_parse_duration(\"%s\") = %lld", cases[i].s,
			    (long long)cases[i].ms);
		else
			ok(rc == -1, "config_parse_duration(\"%s\") fails",
			    cases[i].s);
		if ((rc != cases[i].rc) || (rc == 0 && ms != cases[i].ms))
			printf("#   got rc %d, %lld\n", rc, (long long)ms);
	}
}

static void
test_parse_size(void)
{
	static const struct {
		const char *s;
		int rc;
		unsigned long long bytes;
	} cases[] = {
		{ "0", 0, 0 },
		{ "1", 0, 1 },
		{ "1b", 0, 1 },
		{ "1B", 0, 1 },
		{ "64K", 0, 65536 },
		{ "64k", 0, 65536 },
		{ "64KiB", 0, 65536 },
		{ "64kib", 0, 65536 },
		{ "8M", 0, 8388608 },
		{ "8MiB", 0, 8388608 },
		{ "1G", 0, 1073741824 },
		{ "3g", 0, 3221225472ULL },
		{ "007", 0, 7 },
		{ "1KB", -1, 0 },
		{ "1Ki", -1, 0 },
		{ "1T", -1, 0 },
		{ "", -1, 0 },
		{ "K", -1, 0 },
		{ " 1", -1, 0 },
		{ "1 ", -1, 0 },
		{ "-1", -1, 0 },
		{ "+1", -1, 0 },
		{ "1.5K", -1, 0 },
		{ "0x10", -1, 0 },
		{ "1e3", -1, 0 },
#if SIZE_MAX > 0xffffffffUL
		{ "8589934591G", 0, 9223372035781033984ULL },
		{ "18446744073709551615", -1, 0 }, /* > SIZE_MAX / 2 */
		{ "18446744073709551616", -1, 0 }, /* > ULLONG_MAX */
		{ "17179869184G", -1, 0 },         /* 2^64 */
		{ "99999999999999999999999G", -1, 0 },
#endif
	};
	size_t i, bytes;
	int rc;

	for (i = 0; i < nitems(cases); i++) {
		bytes = 7;
		rc = config_parse_size(cases[i].s, &bytes);
		if (cases[i].rc == 0)
			ok(rc == 0 && bytes == cases[i].bytes,
			    "config_parse_size(\"%s\") = %llu", cases[i].s,
			    cases[i].bytes);
		else
			ok(rc == -1, "config_parse_size(\"%s\") fails",
			    cases[i].s);
		if (rc != cases[i].rc || (rc == 0 && bytes != cases[i].bytes))
			printf("#   got rc %d, %zu\n", rc, bytes);
	}
#if SIZE_MAX > 0xffffffffUL
	/*
	 * Regression test for a fixed bug: config_parse_size() multiplies in
	 * double precision, so above 2^53 it returns a different number than it
	 * was given, and its
	 * "> SIZE_MAX / 2" overflow guard (also a double comparison) lets
	 * 2^63 and numbers that round to it through: "9007199254740993"
	 * gives 9007199254740992, "9223372036854775807" (SIZE_MAX / 2) gives
	 * 9223372036854775808, and "9223372036854775808" (> SIZE_MAX / 2)
	 * is accepted.  Correct: the exact value, or -1.
	 */
	bytes = 7;
	rc = config_parse_size("9007199254740993", &bytes);
	ok(rc == -1 || bytes == 9007199254740993ULL,
	    "config_parse_size(\"9007199254740993\") is exact or refused");
	if (rc == 0 && bytes != 9007199254740993ULL)
		printf("#   got %zu\n", bytes);
	bytes = 7;
	rc = config_parse_size("9223372036854775807", &bytes);
	ok(rc == -1 || bytes == 9223372036854775807ULL,
	    "config_parse_size(\"9223372036854775807\") is exact or refused");
	if (rc == 0 && bytes != 9223372036854775807ULL)
		printf("#   got %zu\n", bytes);
	bytes = 7;
	rc = config_parse_size("9223372036854775808", &bytes);
	ok(rc == -1,
	    "config_parse_size(\"9223372036854775808\") "
	    "(> SIZE_MAX / 2) is refused");
	if (rc == 0)
		printf("#   got %zu\n", bytes);
#endif
}

/* Write data to a new temporary file; returns its (malloc'd) path. */
static char *
temp_file(const char *data)
{
	size_t len = strlen(data);
	char *path = xstrdup("/tmp/test_config.XXXXXX");
	int fd;

	if ((fd = mkstemp(path)) == -1) {
		printf("# mkstemp: %s\n", strerror(errno));
		free(path);
		return NULL;
	}
	if (write(fd, data, len) != (ssize_t)len)
		printf("# write: %s\n", strerror(errno));
	close(fd);
	return path;
}

static void
test_load(void)
{
	struct config c;
	char *path, *err, dir[] = "/tmp/test_config.dir.XXXXXX", line[512];
	int n, fd;

	/* A name that certainly does not exist. */
	path = temp_file("");
	ok(path != NULL, "made a temporary file");
	if (path == NULL)
		return;
	unlink(path);

	config_init(&c);
	n = config_load(&c, path, 0, &err);
	ok(n == 0 && err == NULL, "a missing optional file is fine");
	is_str(c.api_url, "https://slack.com/api/", "and leaves the defaults");
	free(err);
	config_free(&c);

	config_init(&c);
	n = config_load(&c, path, 1, &err);
	ok(n == 1 && contains(err, path) &&
	        contains(err, "No such file or directory"),
	    "a missing required file is an error naming it");
	free(err);
	config_free(&c);

	/* Even without a file, the command line's values are checked. */
	config_init(&c);
	c.reconnect_min = 10000;
	c.reconnect_max = 1000;
	n = config_load(&c, path, 0, &err);
	ok(n == 1 && contains(err, "reconnect_min"),
	    "a missing optional file still runs the cross checks");
	free(err);
	config_free(&c);
	free(path);

	ok(mkdtemp(dir) != NULL, "made a temporary directory");
	config_init(&c);
	n = config_load(&c, dir, 1, &err);
	ok(n == 1 && contains(err, dir) && contains(err, "is a directory"),
	    "a directory is refused (required)");
	free(err);
	config_free(&c);
	config_init(&c);
	n = config_load(&c, dir, 0, &err);
	ok(n == 1 && contains(err, "is a directory"),
	    "a directory is refused (optional)");
	free(err);
	config_free(&c);
	rmdir(dir);

	path = temp_file("socket = /run/x.sock\nlog_level = debug\n"
	                 "ping_interval = 3\n");
	if (path != NULL) {
		config_init(&c);
		n = config_load(&c, path, 1, &err);
		ok(n == 0 && err == NULL, "a good file loads");
		is_str(c.socket_path, "/run/x.sock", "socket from the file");
		is_int(c.ping_interval, 3000, "ping_interval from the file");
		is_int(c.log_level, LOG_LEVEL_DEBUG, "log_level from the file");
		free(err);
		config_free(&c);
		unlink(path);
		free(path);
	}

	path = temp_file("socket = /a\nbogus = 1\nsocket_mode = 9\n");
	if (path != NULL) {
		config_init(&c);
		n = config_load(&c, path, 1, &err);
		is_int(n, 2, "a bad file: both errors counted");
		snprintf(
		    line, sizeof line, "%s:2: unknown key \"bogus\"", path);
		ok(has_line(err, line),
		    "errors carry the file's path and line");
		snprintf(
		    line, sizeof line, "%s:3: bad value for socket_mode", path);
		ok(has_line_prefix(err, line), "second error with path:line");
		free(err);
		config_free(&c);
		unlink(path);
		free(path);
	}

	path = temp_file("");
	if (path != NULL) {
		config_init(&c);
		n = config_load(&c, path, 1, &err);
		ok(n == 0 && err == NULL, "an empty file loads");
		free(err);
		config_free(&c);

		/* Just over the 1 MiB limit. */
		if ((fd = open(path, O_WRONLY)) != -1) {
			ok(ftruncate(fd, 1024 * 1024 + 1) == 0,
			    "grew the file past 1 MiB");
			close(fd);
		}
		config_init(&c);
		n = config_load(&c, path, 1, &err);
		ok(n == 1 && contains(err, "larger than 1 MiB"),
		    "a file over 1 MiB is refused");
		free(err);
		config_free(&c);
		unlink(path);
		free(path);
	}
}

/* The keys of the names cache, the Web API and access control. */
static void
test_newer_keys(void)
{
	struct config c;
	char *err = NULL;
	int n;

	config_init(&c);
	is_int(c.team_state, 0, "team_state defaults to no");
	ok(c.state_dir == NULL, "state_dir defaults to none");
	is_int(c.names_max_age, 86400 * 1000, "names_max_age defaults to 1 d");
	ok(config_api_allowed(&c, "conversations.list") &&
	        config_api_allowed(&c, "users.info") &&
	        config_api_allowed(&c, "chat.postMessage"),
	    "api_allow: conversations.*, users.*, chat.postMessage by default");
	ok(!config_api_allowed(&c, "chat.delete") &&
	        !config_api_allowed(&c, "admin.users.remove") &&
	        !config_api_allowed(&c, "conversations"),
	    "api_allow: nothing else by default");
	is_int(c.client_buffer_soft, 1048576, "client_buffer_soft 1M");
	is_int(c.client_buffer_soft_time, 30000, "client_buffer_soft_time 30s");
	config_free(&c); /* parse() starts from config_init() */
	n = parse(&c,
	    "team_state = yes\nstate_dir = /var/lib/slackd\n"
	    "names_max_age = 2h\napi_allow = auth.test, team.*\n"
	    "allow_users = root 0\nallow_groups = 0\n"
	    "socket_group = 0\nclient_buffer_soft = 64K\n"
	    "client_buffer_soft_time = 0\n",
	    &err);
	is_int(n, 0, "the newer keys parse");
	is_int(c.team_state, 1, "team_state = yes");
	is_str(c.state_dir, "/var/lib/slackd", "state_dir");
	is_int(c.names_max_age, 7200 * 1000, "names_max_age = 2h");
	ok(config_api_allowed(&c, "auth.test") &&
	        config_api_allowed(&c, "team.info") &&
	        !config_api_allowed(&c, "users.info"),
	    "api_allow replaces the default, with a trailing *");
	is_int(c.allowed_uids.n, 2, "allow_users: two entries");
	is_int(c.socket_gid, 0, "socket_group = 0");
	ok(config_allowed(&c, 0, NULL, 0), "root is always allowed");
	free(err);
	config_free(&c);

	n = parse(&c, "allow_users = 4242\n", &err);
	ok(n == 0 && !config_allowed(&c, 4242 + 1, NULL, 0) &&
	        config_allowed(&c, 4242, NULL, 0),
	    "allow_users by number");
	{
		gid_t g[2] = { 7, 4343 };

		config_free(&c);
		free(err);
		n = parse(&c, "allow_groups = 4343\n", &err);
		ok(n == 0 && config_allowed(&c, 5000, g, 2) &&
		        !config_allowed(&c, 5000, g, 1),
		    "allow_groups matches a supplementary group");
	}
	free(err);
	config_free(&c);

	n = parse(
	    &c, "team_state = maybe\nallow_users = no-such-user-x\n", &err);
	ok(n == 1 && contains(err, "bad value for team_state"),
	    "team_state wants yes or no");
	free(err);
	config_free(&c);
	n = parse(&c, "allow_users = no-such-user-x\n", &err);
	ok(n == 1 && contains(err, "there is no user \"no-such-user-x\""),
	    "an unknown user is an error");
	free(err);
	config_free(&c);
}

/* config_dup: a deep copy, every string and id list its own. */
static void
test_dup(void)
{
	static const char text[] = "socket = /run/t/s.sock\n"
	                           "allow_users = 0, 1\n"
	                           "allow_groups = 0\n"
	                           "socket_group = 0\n"
	                           "token_file = /etc/t/token\n"
	                           "ping_interval = 3\n"
	                           "send_rate = 2.5\n"
	                           "max_event = 2M\n";
	const struct config_option *o;
	struct config c, *d;
	char *err = NULL;
	int differ = 0;

	is_int(parse(&c, text, &err), 0, "config_dup: the input parses");
	free(err);
	d = config_dup(&c);
	for (o = config_options; o->name != NULL; o++) {
		if (config_differs(&c, d, o)) {
			differ = 1;
			diag("config_dup: %s differs", o->name);
		}
	}
	ok(!differ, "config_dup: no key differs from the original");
	ok(d->socket_path != c.socket_path && d->api_url != c.api_url &&
	        d->token_file != c.token_file && d->api_allow != c.api_allow,
	    "config_dup: strings are copies, not shared");
	ok(d->allowed_uids.ids != c.allowed_uids.ids &&
	        d->allowed_uids.n == 2 && d->allowed_uids.ids[1] == 1 &&
	        d->allowed_gids.ids != c.allowed_gids.ids &&
	        d->allowed_gids.n == 1,
	    "config_dup: resolved id lists are copies");
	is_int(d->socket_gid, 0, "config_dup: the resolved gid is kept");
	is_int(d->ping_interval, 3000, "config_dup: numbers are kept");
	ok(d->send_rate == 2.5, "config_dup: rates are kept");
	config_free(&c); /* the copy must not need the original */
	is_str(d->socket_path, "/run/t/s.sock",
	    "config_dup: the copy outlives the original");
	is_str(d->api_allow, "conversations.* users.* chat.postMessage",
	    "config_dup: defaults are copied too");
	config_free(d);
	free(d);

	config_init(&c);
	d = config_dup(&c);
	ok(d->allowed_uids.ids == NULL && d->socket_path == NULL &&
	        d->socket_gid == -1,
	    "config_dup of the defaults: empty stays empty");
	config_free(d);
	free(d);
	config_free(&c);
}

/* config_differs, and the flags the reload rule reads. */
static void
test_differs(void)
{
	const struct config_option *o;
	struct config a, b;
	char *err = NULL;

	config_init(&a);
	parse(&b, "socket_group = 0\nsend_rate = 2\n", &err);
	free(err);
	o = config_find("socket_group");
	ok(o != NULL && config_differs(&a, &b, o),
	    "config_differs: a group set differs from none");
	ok(!config_differs(&a, &b, config_find("ping_interval")),
	    "config_differs: an unchanged duration");
	ok(config_differs(&a, &b, config_find("send_rate")),
	    "config_differs: a changed rate");
	ok(config_changed(&a, &b, CONFIG_RESTART | CONFIG_SOCKET),
	    "config_changed: a socket key changed");
	ok(!config_changed(&a, &b, CONFIG_RECONNECT),
	    "config_changed: no key that reconnects changed");
	ok(!config_changed(&a, &a, 0), "config_changed: a config and itself");
	config_free(&a);
	parse(&a, "socket_group = root\n", &err);
	free(err);
	ok(!config_differs(&a, &b, o),
	    "config_differs: a group compares by number (root is 0)");
	config_free(&a);
	config_free(&b);

	ok(config_find("ping_intervall") == NULL, "config_find: no such key");
	ok((config_find("socket")->flags & CONFIG_RESTART) &&
	        (config_find("socket_mode")->flags & CONFIG_SOCKET) &&
	        (config_find("ca_file")->flags & CONFIG_RESTART) &&
	        !(config_find("ca_file")->flags & CONFIG_SOCKET),
	    "restart-only keys: socket, socket_mode, ca_file");
	ok(config_find("api_url")->flags & CONFIG_RECONNECT,
	    "api_url reconnects on change");
	ok(!(config_find("allow_users")->flags & CONFIG_RESTART) &&
	        !(config_find("queue_max")->flags & CONFIG_RESTART),
	    "allow_users and queue_max apply on reload");
}

/* Read a file of the source tree ($TESTS_SRCDIR/../rel). */
static char *
read_source(const char *rel)
{
	const char *dir = getenv("TESTS_SRCDIR");
	char path[4096], *buf;
	FILE *f;
	long n;

	if (dir == NULL)
		dir = "tests";
	snprintf(path, sizeof path, "%s/../%s", dir, rel);
	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = xmalloc((size_t)n + 1);
	buf[fread(buf, 1, (size_t)n, f)] = '\0';
	fclose(f);
	return buf;
}

/*
 * The keys a document lists: lines that start with prefix followed by a
 * key and " =".  Calls check(key) for each; returns how many.
 */
static int
doc_keys(const char *doc, const char *prefix, const char *what)
{
	const char *p, *k, *e;
	char key[64];
	size_t n = strlen(prefix);
	int count = 0;

	for (p = doc; p != NULL && *p != '\0';) {
		if (strncmp(p, prefix, n) == 0) {
			k = p + n;
			for (e = k; (*e >= 'a' && *e <= 'z') || *e == '_'; e++)
				;
			if (e > k && strncmp(e, " =", 2) == 0 &&
			    (size_t)(e - k) < sizeof key) {
				memcpy(key, k, (size_t)(e - k));
				key[e - k] = '\0';
				count++;
				if (!ok(config_find(key) != NULL,
				        "%s: \"%s\" is a key slackd knows",
				        what, key))
					diag("remove it from %s or add it to "
					     "config_options[]",
					    what);
			}
		}
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return count;
}

/* Does doc have a line that starts with prefix, key, " ="? */
static int
doc_has_key(const char *doc, const char *prefix, const char *key)
{
	char *want;
	const char *p;
	int found = 0;

	xasprintf(&want, "%s%s =", prefix, key);
	for (p = doc; !found && p != NULL && *p != '\0';) {
		found = strncmp(p, want, strlen(want)) == 0;
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	free(want);
	return found;
}

/*
 * slackd.conf(5) and conf/slackd.conf list exactly the keys of
 * config_options[]: a key added without its documentation fails here.
 */
static void
test_documented(void)
{
	static const struct {
		const char *rel, *prefix, *prefix2;
	} docs[] = {
		{ "man/slackd.conf.5.in", ".It Ic ", NULL },
		{ "conf/slackd.conf", "#", "" },
	};
	const struct config_option *o;
	char *doc;
	u_int i, nkeys = 0;
	int n;

	for (o = config_options; o->name != NULL; o++)
		nkeys++;
	for (i = 0; i < nitems(docs); i++) {
		if (!ok((doc = read_source(docs[i].rel)) != NULL,
		        "%s is readable (TESTS_SRCDIR)", docs[i].rel))
			continue;
		n = doc_keys(doc, docs[i].prefix, docs[i].rel);
		if (docs[i].prefix2 != NULL)
			n += doc_keys(doc, docs[i].prefix2, docs[i].rel);
		for (o = config_options; o->name != NULL; o++) {
			ok(doc_has_key(doc, docs[i].prefix, o->name) ||
			        (docs[i].prefix2 != NULL &&
			            doc_has_key(doc, docs[i].prefix2, o->name)),
			    "%s documents %s", docs[i].rel, o->name);
		}
		is_int(n, nkeys, "each key appears once");
		free(doc);
	}
}

/* Typos get the nearest key; any readable file is a configuration. */
static void
test_friendly(void)
{
	struct config c;
	char *err = NULL;
	int n, p[2];

	n = parse(
	    &c, "ping_intervall = 5\nreconect_max = 1\nfrobnicate = 1\n", &err);
	is_int(n, 3, "three unknown keys");
	ok(has_line(err,
	       NAME
	       ":1: unknown key \"ping_intervall\" (did you mean ping_interval?)"),
	    "a typo gets the nearest key");
	ok(has_line(err,
	       NAME
	       ":2: unknown key \"reconect_max\" (did you mean reconnect_max?)"),
	    "a missing letter gets the nearest key");
	ok(has_line(err, NAME ":3: unknown key \"frobnicate\""),
	    "nothing near: no suggestion");
	free(err);
	config_free(&c);
	n = parse(&c, "pign_interval = 5\n", &err);
	ok(n == 1 && contains(err, "did you mean ping_interval?"),
	    "two letters swapped get the nearest key");
	free(err);
	config_free(&c);

	config_init(&c);
	n = config_load(&c, "/dev/null", 1, &err);
	ok(n == 0 && err == NULL, "/dev/null is an empty configuration");
	is_int(c.ping_interval, 10000, "/dev/null: the defaults");
	free(err);
	config_free(&c);

	if (ok(pipe(p) == 0, "made a pipe")) {
		char path[64];

		(void)!write(p[1], "ping_interval = 7\n", 18);
		close(p[1]);
		snprintf(path, sizeof path, "/dev/fd/%d", p[0]);
		config_init(&c);
		n = config_load(&c, path, 1, &err);
		ok(n == 0 && c.ping_interval == 7000,
		    "a pipe is read once to its end");
		free(err);
		config_free(&c);
		close(p[0]);
	}
}

static void
test_nats_checks(void)
{
	static const struct {
		const char *text;
		int n;
		const char *msg;
		const char *what;
	} cases[] = {
		{ "nats_url = nats://127.0.0.1:4222\n", 0, NULL,
		    "one nats:// URL" },
		{ "nats_url = nats://a:4222, tls://b:4222 ,nats://c\n", 0, NULL,
		    "several URLs, nats:// and tls://" },
		{ "nats_url = http://a:4222\n", 1,
		    "nats_url: \"http://a:4222\" is not a nats://host[:port]",
		    "an http:// URL is refused" },
		{ "nats_url = nats://\n", 1, "is not a nats://host",
		    "a URL without a host is refused" },
		{ "nats_url = ,\n", 1, "nats_url: no URL given",
		    "nothing but commas is refused" },
		{ "nats_url = nats://a\nnats_user = u\n", 1,
		    "nats_user and nats_password_file go together",
		    "a user without a password file" },
		{ "nats_url = nats://a\nnats_password_file = /p\n", 1,
		    "nats_user and nats_password_file go together",
		    "a password file without a user" },
		{ "nats_url = nats://a\nnats_user = u\nnats_password_file = /p\n"
		  "nats_creds_file = /c\n",
		    1, "are different ways to log in to NATS: set one of them",
		    "two ways to log in" },
		{ "nats_url = nats://a\nnats_prefix = slack.*\n", 1,
		    "nats_prefix \"slack.*\" is not a NATS subject",
		    "a wildcard in nats_prefix" },
		{ "nats_url = nats://a\nnats_prefix = slack..x\n", 1,
		    "is not a NATS subject", "an empty token in nats_prefix" },
		{ "nats_url = nats://a\nnats_prefix = a.b.c\n", 0, NULL,
		    "a prefix of three tokens" },
		{ "nats_url = nats://a\nnats_stream = A.B\n", 1,
		    "nats_stream \"A.B\" is not a JetStream stream name",
		    "a dot in nats_stream" },
		{ "nats_url = nats://a\nnats_stream = SLACK_T1\n", 0, NULL,
		    "a stream name" },
		{ "nats_prefix = slack.*\n", 0, NULL,
		    "without nats_url the NATS keys are not checked" },
		{ "nats_ha = yes\n", 1, "nats_ha = yes needs nats_url",
		    "nats_ha without nats_url" },
		{ "nats_url = nats://a\nnats_ha = yes\nnats_prefix = s.T\n", 1,
		    "nats_ha = yes needs nats_prefix and nats_stream set",
		    "nats_ha without nats_stream" },
		{ "nats_url = nats://a\nnats_ha = yes\nnats_prefix = s.T\n"
		  "nats_stream = S_T\nha_lease = 2s\n",
		    0, NULL, "nats_ha with its names" },
	};
	struct config c;
	char *err;
	size_t i;
	int n;

	for (i = 0; i < nitems(cases); i++) {
		n = parse(&c, cases[i].text, &err);
		if (cases[i].n == 0)
			ok(n == 0 && err == NULL, "nats: %s", cases[i].what);
		else
			ok(n == cases[i].n && contains(err, cases[i].msg),
			    "nats: %s", cases[i].what);
		if (err != NULL)
			printf("#   got \"%s\"\n", err);
		free(err);
		config_free(&c);
	}
	n = parse(&c, "", &err);
	ok(n == 0 && c.nats_url == NULL && c.nats_max_age == 7 * 86400000LL &&
	        c.nats_max_bytes == 1024UL * 1024 * 1024 &&
	        c.nats_backlog == 64UL * 1024 * 1024,
	    "nats defaults: no URL, 7 days, 1 GiB, a 64 MiB backlog");
	free(err);
	config_free(&c);
}

int
main(void)
{
	test_friendly();
	test_dup();
	test_differs();
	test_documented();
	test_newer_keys();
	test_defaults();
	test_every_key();
	test_durations();
	test_sizes();
	test_other_values();
	test_comments();
	test_layout();
	test_errors();
	test_cross_checks();
	test_nats_checks();
	test_parse_duration();
	test_parse_size();
	test_load();
	return tap_done();
}
