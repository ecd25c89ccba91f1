/*
 * natslogin: logging in to NATS with a signed nonce, for slackd and
 * slackctl.
 *
 * nats-server sends a nonce in its INFO; a client with an NKey or a creds
 * file (a user JWT and its seed) signs it with Ed25519 and sends the
 * base64 of the signature as CONNECT's "sig".  libnats 3.4.1 (Debian 12's)
 * base64-encodes with a function that takes input beginning with a zero
 * byte for empty: for 1 nonce in 256 it sends CONNECT without "sig", the
 * server answers "Authorization Violation", and libnats counts that
 * against the server (two in a row and it gives the server up).  libnats
 * 3.8 fixed the function; the signature handlers here work around it on
 * every version: natslogin_sign() refuses such a signature itself, so
 * that connection attempt ends before CONNECT is sent and the next one
 * (a new nonce) logs in: cnats's own retry where it has one (slackd's
 * main connection), natslogin_connect() where not.
 *
 * natslogin_creds() replaces libnats's own creds-file handlers with ones
 * that read the file at each connection, as libnats does (a rotated file
 * is used on the next connection), and parse it as natslogin_creds_parse()
 * does.  The path handed to it must outlive every connection made with the
 * options.  Seeds are wiped from memory once used.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "natslogin.h"

#define NATSLOGIN_MAX   (64 * 1024) /* a creds file larger is not one */
#define NATSLOGIN_TRIES 4           /* nonces natslogin_connect() tries */

static atomic_ulong natslogin_refused;

/*
 * Wipe a secret so that the compiler cannot drop the stores (util_wipe()'s
 * way; slackctl links no daemon code).
 */
static void
natslogin_wipe(void *p, size_t n)
{
#ifdef HAVE_EXPLICIT_BZERO
	explicit_bzero(p, n);
#else
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
#endif
}

static char *
natslogin_trim(char *s)
{
	char *e;

	s += strspn(s, " \t\r");
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* A decoration line: at least three dashes, text, at least three more. */
static int
natslogin_is_header(const char *s)
{
	size_t n = strlen(s);

	return n >= 6 && strncmp(s, "---", 3) == 0 &&
	    strcmp(s + n - 3, "---") == 0;
}

/*
 * Find the user JWT and seed in a creds file's text (changed in place;
 * *jwt and *seed point into it).  The file is what nsc writes: the JWT
 * between a pair of decoration lines, then the seed between another pair,
 * blank lines and notes around them.  Otherwise, as libnats takes it: the
 * JWT the first decorated item or else the first line, the seed the
 * first line that begins with "SU".  Returns 0, or -1 if either is
 * missing.
 */
int
natslogin_creds_parse(char *text, char **jwt, char **seed)
{
	char *items[2] = { NULL, NULL }, *value = NULL, *loose = NULL;
	char *p, *line, *all;
	int n = 0, open = 0;

	*jwt = *seed = NULL;
	all = natslogin_trim(text);
	if (strstr(all, "---") == NULL) {
		for (p = all; *p != '\0'; p += strcspn(p, "\n"), p += *p != 0) {
			line = p + strspn(p, " \t");
			if (line[0] == 'S' && line[1] == 'U') {
				*seed = line;
				break;
			}
		}
		if (*seed == NULL || *all == '\0')
			return -1;
		if (*seed == all) /* a seed only: no JWT */
			return -1;
		(*seed)[strcspn(*seed, " \t\r\n")] = '\0';
		all[strcspn(all, "\n")] = '\0'; /* the JWT is one line */
		*jwt = natslogin_trim(all);
		return 0;
	}
	for (p = text; (line = strsep(&p, "\n")) != NULL && n < 2;) {
		line = natslogin_trim(line);
		if (*line == '\0')
			continue;
		if (natslogin_is_header(line)) {
			if (open && value != NULL)
				items[n++] = value;
			open = !(open && value != NULL);
			value = NULL;
		} else if (open && value == NULL)
			value = line;
		else
			open = 0; /* a second line: not an item */
		if (loose == NULL && line[0] == 'S' && line[1] == 'U')
			loose = line;
	}
	if (items[1] == NULL && items[0] != NULL && loose != NULL &&
	    loose != items[0])
		items[1] = loose; /* a decorated JWT, a bare seed line */
	if (items[0] == NULL || items[1] == NULL)
		return -1;
	*jwt = items[0];
	*seed = items[1];
	return 0;
}

/*
 * Sign nonce with seed as the server expects; the signature (64 bytes,
 * malloc'd, as libnats frees it) in *sig.  A signature libnats would not
 * send is refused with NATSLOGIN_UNSENDABLE in *err (malloc'd) and
 * counted (natslogin_unsendable()).
 */
natsStatus
natslogin_sign(const char *seed, const char *nonce, unsigned char **sig,
    int *siglen, char **err)
{
	natsStatus s;

	*sig = NULL;
	*siglen = 0;
	if ((s = nats_Sign(seed, nonce, sig, siglen)) != NATS_OK)
		return s;
	if (*siglen > 0 && (*sig)[0] != 0)
		return NATS_OK;
	natslogin_wipe(*sig, (size_t)*siglen);
	free(*sig);
	*sig = NULL;
	*siglen = 0;
	atomic_fetch_add(&natslogin_refused, 1);
	if (err != NULL)
		*err = strdup(NATSLOGIN_UNSENDABLE);
	return NATS_ERR;
}

/* How many signatures natslogin_sign() refused so far. */
unsigned long
natslogin_unsendable(void)
{
	return atomic_load(&natslogin_refused);
}

/* The creds file's text, or NULL with *err set (malloc'd). */
static char *
natslogin_read(const char *path, char **err)
{
	char *buf;
	ssize_t n;
	size_t len = 0;
	int fd, e;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		e = errno;
		if (asprintf(err, "creds file %s: %s", path, strerror(e)) == -1)
			*err = NULL;
		return NULL;
	}
	if ((buf = malloc(NATSLOGIN_MAX + 1)) == NULL)
		abort();
	while (len < NATSLOGIN_MAX &&
	    (n = read(fd, buf + len, NATSLOGIN_MAX - len)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			e = errno;
			close(fd);
			natslogin_wipe(buf, len);
			free(buf);
			if (asprintf(err, "creds file %s: %s", path,
			        strerror(e)) == -1)
				*err = NULL;
			return NULL;
		}
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

/* The text, parsed; NULL with *err set if it is not a creds file. */
static char *
natslogin_load(const char *path, char **jwt, char **seed, char **err)
{
	char *text;

	if ((text = natslogin_read(path, err)) == NULL)
		return NULL;
	if (natslogin_creds_parse(text, jwt, seed) == 0)
		return text;
	natslogin_wipe(text, NATSLOGIN_MAX);
	free(text);
	if (asprintf(err,
	        "creds file %s holds no user JWT and seed (as \"nsc generate creds\" writes them)",
	        path) == -1)
		*err = NULL;
	return NULL;
}

static natsStatus
natslogin_jwt_cb(char **jwt, char **err, void *arg)
{
	char *text, *j, *seed;

	if ((text = natslogin_load(arg, &j, &seed, err)) == NULL)
		return NATS_ERR;
	*jwt = strdup(j);
	natslogin_wipe(text, NATSLOGIN_MAX);
	free(text);
	return *jwt != NULL ? NATS_OK : NATS_NO_MEMORY;
}

static natsStatus
natslogin_sig_cb(
    char **err, unsigned char **sig, int *siglen, const char *nonce, void *arg)
{
	char *text, *jwt, *seed;
	natsStatus s;

	if ((text = natslogin_load(arg, &jwt, &seed, err)) == NULL)
		return NATS_ERR;
	s = natslogin_sign(seed, nonce, sig, siglen, err);
	natslogin_wipe(text, NATSLOGIN_MAX);
	free(text);
	return s;
}

/* Log in with the creds file at path (see the top of this file). */
natsStatus
natslogin_creds(natsOptions *o, const char *path)
{
	return natsOptions_SetUserCredentialsCallbacks(
	    o, natslogin_jwt_cb, (void *)path, natslogin_sig_cb, (void *)path);
}

/*
 * natsConnection_Connect(), made again while what failed was
 * natslogin_sign() refusing a nonce (NATSLOGIN_TRIES at most), for a
 * connection without cnats's retry of a failed first connection.
 */
natsStatus
natslogin_connect(natsConnection **nc, natsOptions *o)
{
	unsigned long refused;
	natsStatus s = NATS_ERR;
	int tries;

	for (tries = 0; tries < NATSLOGIN_TRIES; tries++) {
		refused = natslogin_unsendable();
		s = natsConnection_Connect(nc, o);
		if (s == NATS_OK || natslogin_unsendable() == refused)
			break;
	}
	return s;
}
