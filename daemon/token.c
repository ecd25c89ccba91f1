/*
 * Where the Slack tokens come from, and how they are kept.
 *
 * Two tokens, each from its own sources, first match wins:
 *
 *   bot token (xoxb-, every Web API call; RTM's connect call)
 *     1. $CREDENTIALS_DIRECTORY/slack-token   (systemd LoadCredential=)
 *     2. token_file from the config
 *     3. $SLACK_API_TOKEN
 *   app-level token (xapp-, Socket Mode's apps.connections.open; optional)
 *     1. $CREDENTIALS_DIRECTORY/slack-app-token
 *     2. app_token_file from the config
 *     3. $SLACK_APP_TOKEN
 *
 * Both variables are wiped and removed from our environment once read.
 * An app-level token credential that holds only whitespace counts as
 * none: the shipped units give that default (SetCredential=) so that they
 * start without the file (systemd 252 fails a unit whose LoadCredential=
 * file is missing, unless SetCredential= names a default).
 * A token file must be a regular file owned by us or root that group and
 * others cannot access.  A token lives in its own locked page excluded
 * from core dumps, and is wiped when freed.  It never appears in argv,
 * logs or errors: messages name the source, never the value.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slackd.h"

#define TOKEN_MAX  512
#define TOKEN_PAGE 4096
#define TOKEN_CRED "slack-token"

/* One token's sources. */
struct token_kind {
	const char *what; /* for messages */
	const char *cred; /* credential name */
	const char *env;
	size_t file; /* offset of its file setting in struct config */
};
static const struct token_kind token_kinds[] = {
	{ "Slack token", TOKEN_CRED, TOKEN_ENV,
	    offsetof(struct config, token_file) },
	{ "Slack app-level token", TOKEN_APP_CRED, TOKEN_APP_ENV,
	    offsetof(struct config, app_token_file) },
};

static const char *
token_file_of(const struct token_kind *k, const struct config *conf)
{
	return *(char *const *)((const char *)conf + k->file);
}

extern char **environ;

/* A copy of s in a page of its own: locked, not dumped, wiped on free. */
char *
token_secret_dup(const char *s)
{
	size_t len = strlen(s);
	char *p;

	if (len >= TOKEN_PAGE)
		fatalx("secret too long");
	p = mmap(NULL, TOKEN_PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fatal("mmap");
	(void)madvise(p, TOKEN_PAGE, MADV_DONTDUMP);
	(void)mlock(p, TOKEN_PAGE);
	memcpy(p, s, len + 1);
	return p;
}

void
token_secret_free(char *p)
{
	if (p == NULL)
		return;
	util_wipe(p, TOKEN_PAGE);
	munlock(p, TOKEN_PAGE);
	munmap(p, TOKEN_PAGE);
}

/* Printable ASCII without spaces, 1 to 512 bytes. */
static int
token_valid(const char *t)
{
	size_t n;

	for (n = 0; t[n] != '\0'; n++) {
		if (!isgraph((unsigned char)t[n]))
			return 0;
	}
	return n > 0 && n <= TOKEN_MAX;
}

/*
 * Read a secret from a file only its owner (us, or root) may read: at
 * most max bytes, trailing white space removed, possibly empty.  Returns
 * it (free with token_secret_free) or NULL with *err; what names the file
 * in the messages ("token file", "nats_creds_file").
 */
char *
token_read_secret(const char *what, const char *path, size_t max, char **err)
{
	char *buf, *secret;
	struct stat sb;
	ssize_t n;
	size_t len = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		xasprintf(
		    err, "cannot open %s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		xasprintf(err, "%s %s is not a regular file", what, path);
		close(fd);
		return NULL;
	}
	if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
		xasprintf(err,
		    "%s %s is accessible by group or others (mode %04o); refusing it: chmod 600 %s",
		    what, path, (unsigned)(sb.st_mode & 07777), path);
		close(fd);
		return NULL;
	}
	if (sb.st_uid != geteuid() && sb.st_uid != 0) {
		xasprintf(err,
		    "%s %s is owned by uid %u, not by us (uid %u) or root; refusing it",
		    what, path, (unsigned)sb.st_uid, (unsigned)geteuid());
		close(fd);
		return NULL;
	}
	buf = xmalloc(max + 1);
	while (len < max) {
		n = read(fd, buf + len, max - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	while (len > 0 && isspace((unsigned char)buf[len - 1]))
		buf[--len] = '\0';
	secret = token_secret_dup(buf);
	util_wipe(buf, max + 1);
	free(buf);
	return secret;
}

static char *
token_from_file(const char *path, char **err)
{
	char *tok;

	if ((tok = token_read_secret(
	         "token file", path, TOKEN_MAX + 63, err)) == NULL)
		return NULL;
	if (!token_valid(tok)) {
		token_secret_free(tok);
		xasprintf(err,
		    "token file %s does not hold a token (expected one line of at most %d printable characters)",
		    path, TOKEN_MAX);
		return NULL;
	}
	return tok;
}

/*
 * Wipe $SLACK_API_TOKEN's value in place (it also shows in
 * /proc/PID/environ) and remove it, whether or not it is the token used.
 */
static void
token_forget_env(const char *name)
{
	size_t klen = strlen(name);
	char **e;

	for (e = environ; *e != NULL; e++) {
		if (strncmp(*e, name, klen) == 0 && (*e)[klen] == '=')
			util_wipe(*e + klen + 1, strlen(*e + klen + 1));
	}
	unsetenv(name);
}

static char *
token_from_env(const char *name, char **err)
{
	char *v;

	if ((v = getenv(name)) == NULL || *v == '\0')
		return NULL;
	if (!token_valid(v)) {
		xasprintf(err,
		    "%s does not hold a token (expected at most %d printable characters without spaces)",
		    name, TOKEN_MAX);
		return NULL;
	}
	return token_secret_dup(v);
}

/* The credential file, if systemd gave one; else NULL. */
static char *
token_credential(const char *name)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	struct stat sb;
	char *path;

	if (dir == NULL || *dir == '\0')
		return NULL;
	xasprintf(&path, "%s/%s", dir, name);
	if (stat(path, &sb) == 0)
		return path;
	free(path);
	return NULL;
}

/* Does the file at path hold nothing but whitespace? */
static int
token_blank(const char *path)
{
	char buf[64];
	ssize_t n, i;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1)
		return 0;
	n = read(fd, buf, sizeof buf);
	close(fd);
	if (n < 0 || n == (ssize_t)sizeof buf)
		return 0;
	for (i = 0; i < n; i++) {
		if (!isspace((unsigned char)buf[i]))
			return 0;
	}
	return 1;
}

/* Would token_load() (app: token_app_load()) look only at the variable? */
int
token_env_only(const struct config *conf, int app)
{
	const struct token_kind *k = &token_kinds[app ? 1 : 0];
	char *cred;

	if (token_file_of(k, conf) != NULL)
		return 0;
	if ((cred = token_credential(k->cred)) != NULL) {
		if (app && token_blank(cred)) {
			free(cred);
			return 1;
		}
		free(cred);
		return 0;
	}
	return 1;
}

/* NULL with *err NULL: no source has one. */
static char *
token_find(const struct token_kind *k, const struct config *conf,
    const char **source, char **err)
{
	const char *file = token_file_of(k, conf);
	char *path, *tok;

	*err = NULL;
	*source = NULL;
	if ((path = token_credential(k->cred)) != NULL &&
	    k != &token_kinds[0] && token_blank(path)) {
		free(path); /* the units' empty default: none */
		path = NULL;
	} else if (path != NULL) {
		tok = token_from_file(path, err);
		free(path);
		*source = k == &token_kinds[0]
		    ? "systemd credential " TOKEN_CRED
		    : "systemd credential " TOKEN_APP_CRED;
		return tok;
	}
	if (file != NULL) {
		*source =
		    k == &token_kinds[0] ? "token_file" : "app_token_file";
		return token_from_file(file, err);
	}
	if ((tok = token_from_env(k->env, err)) != NULL || *err != NULL) {
		*source = k->env;
		return tok;
	}
	return NULL;
}

/*
 * Find the bot token.  Returns it (free with token_secret_free) and names
 * its source in *source, or returns NULL with *err set.  $SLACK_API_TOKEN
 * is gone from the environment afterwards either way.
 */
char *
token_load(const struct config *conf, const char **source, char **err)
{
	char *tok;

	tok = token_find(&token_kinds[0], conf, source, err);
	token_forget_env(TOKEN_ENV);
	if (tok == NULL && *err == NULL)
		xasprintf(err,
		    "no Slack token: set token_file in the configuration, provide the systemd credential \"%s\", or set %s",
		    TOKEN_CRED, TOKEN_ENV);
	return tok;
}

/*
 * Find the app-level token (Socket Mode), which is optional: NULL with
 * *err NULL when none is configured, NULL with *err set when the one
 * configured is unusable.  $SLACK_APP_TOKEN is gone afterwards.
 */
char *
token_app_load(const struct config *conf, const char **source, char **err)
{
	char *tok;

	tok = token_find(&token_kinds[1], conf, source, err);
	token_forget_env(TOKEN_APP_ENV);
	return tok;
}
