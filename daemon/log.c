/*
 * The one way slackd logs: log_errx, log_warn (with errno), log_warnx,
 * log_info, log_debug, fatal/fatalx.  Safe from both threads: each line is
 * formatted into a local buffer and written with one write(2) or syslog(3).
 *
 * Destinations:
 *   stderr, journald attached  "<3>message" (priority prefix, no timestamp:
 *                              journald adds its own)
 *   stderr otherwise           "2026-12-01 07:30:00.123 warning: message"
 *   syslog                     when running detached
 *
 * Every line is scrubbed of the Slack token before it leaves: whatever a
 * library or an error message does, the secret never reaches a log.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "slackd.h"

#define LOG_LINE_MAX 2048

static int log_to_stderr = 1;
static int log_journal;
static atomic_int log_level = LOG_LEVEL_INFO;

static pthread_mutex_t log_secret_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_secrets[2]; /* the bot token, the app-level token */

static const char *log_names[] = { "error", "warning", "info", "debug" };
static const int log_priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO,
	LOG_DEBUG };

static void log_vlog(int, int, const char *, va_list)
    __attribute__((format(printf, 3, 0)));

/* Is stderr the journal stream systemd gave us ($JOURNAL_STREAM=dev:ino)? */
static int
log_stderr_is_journal(void)
{
	const char *js;
	unsigned long long dev, ino;
	struct stat sb;

	if ((js = getenv("JOURNAL_STREAM")) == NULL)
		return 0;
	if (sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &sb) == -1)
		return 0;
	return (unsigned long long)sb.st_dev == dev &&
	    (unsigned long long)sb.st_ino == ino;
}

void
log_init(int to_stderr, int level)
{
	log_to_stderr = to_stderr;
	log_journal = to_stderr && log_stderr_is_journal();
	log_set_level(level);
	if (!to_stderr)
		openlog("slackd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(int level)
{
	if (level < LOG_LEVEL_ERR)
		level = LOG_LEVEL_ERR;
	if (level > LOG_LEVEL_DEBUG)
		level = LOG_LEVEL_DEBUG;
	atomic_store(&log_level, level);
}

int
log_level_parse(const char *s)
{
	u_int i;

	for (i = 0; i < nitems(log_names); i++) {
		if (strcasecmp(s, log_names[i]) == 0)
			return (int)i;
	}
	if (strcasecmp(s, "warn") == 0)
		return LOG_LEVEL_WARNING;
	if (strcasecmp(s, "err") == 0)
		return LOG_LEVEL_ERR;
	return -1;
}

static void
log_secret_put(int i, const char *secret)
{
	pthread_mutex_lock(&log_secret_lock);
	token_secret_free(log_secrets[i]);
	log_secrets[i] = NULL;
	if (secret != NULL && *secret != '\0')
		log_secrets[i] = token_secret_dup(secret);
	pthread_mutex_unlock(&log_secret_lock);
}

/* Remember the secret to scrub from every line (NULL to forget it). */
void
log_set_secret(const char *secret)
{
	log_secret_put(0, secret);
}

/* The second secret (the app-level token), likewise. */
void
log_set_secret2(const char *secret)
{
	log_secret_put(1, secret);
}

/*
 * Replace the secret in line (a string in a buffer of size bytes) with
 * "[token]".  Used on every log line and on every text that leaves the
 * daemon from upstream (reasons in slackd.state, status, errors).
 */
static void
log_scrub_one(char *line, size_t size, const char *secret)
{
	char *p;
	const char *mask = "[token]";
	size_t mlen = strlen(mask), tail, slen = strlen(secret);

	while ((p = strstr(line, secret)) != NULL) {
		tail = strlen(p + slen) + 1;
		if (mlen > slen && (size_t)(p - line) + mlen + tail > size)
			break;
		memmove(p + mlen, p + slen, tail);
		memcpy(p, mask, mlen);
	}
	/* Also catch a secret cut off at the end of a truncated line. */
	if ((p = strstr(line, secret)) != NULL)
		*p = '\0';
}

void
log_scrub(char *line, size_t size)
{
	u_int i;

	pthread_mutex_lock(&log_secret_lock);
	for (i = 0; i < nitems(log_secrets); i++) {
		if (log_secrets[i] != NULL)
			log_scrub_one(line, size, log_secrets[i]);
	}
	pthread_mutex_unlock(&log_secret_lock);
}

static void
log_emit(int level, const char *msg)
{
	char line[LOG_LINE_MAX + 64], stamp[32];
	struct timespec ts;
	struct tm tm;
	int n;

	if (!log_to_stderr) {
		syslog(log_priorities[level], "%s", msg);
		return;
	}
	if (log_journal)
		n = snprintf(
		    line, sizeof line, "<%d>%s\n", log_priorities[level], msg);
	else {
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
		n = snprintf(line, sizeof line, "%s.%03ld %s: %s\n", stamp,
		    ts.tv_nsec / 1000000, log_names[level], msg);
	}
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line)
		n = sizeof line - 1;
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

static void
log_vlog(int level, int with_errno, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX];
	int saved = errno, n;

	if (level > atomic_load(&log_level))
		return;
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	if (n >= 0 && with_errno && (size_t)n < sizeof msg)
		snprintf(
		    msg + n, sizeof msg - (size_t)n, ": %s", strerror(saved));
	log_scrub(msg, sizeof msg);
	log_emit(level, msg);
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_LEVEL_WARNING, 1, fmt, ap);
	va_end(ap);
}

/* An error slackd stops for, on its own way out (not exit at once). */
void
log_errx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_LEVEL_ERR, 0, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_LEVEL_WARNING, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_LEVEL_INFO, 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_LEVEL_DEBUG, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_LEVEL_ERR, 1, fmt, ap);
	va_end(ap);
	exit(SLACKD_EXIT_FAILURE);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_LEVEL_ERR, 0, fmt, ap);
	va_end(ap);
	exit(SLACKD_EXIT_FAILURE);
}
