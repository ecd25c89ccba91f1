/*
 * The local socket: created safely (a live daemon on the path is never
 * displaced, a stale socket is replaced, anything that is not a socket is
 * left alone), accepted from with libevent, removed at exit, and with it
 * the directory made for it, if slackd made it and nothing else is in it.  When
 * file descriptors run out, accepting pauses for a moment instead of spinning.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <systemd/sd-daemon.h>

#include "slackd.h"

#define LISTENER_BACKLOG  512
#define LISTENER_PAUSE_MS 1000

static struct evconnlistener *listener;
static struct event *listener_resume;
static char *listener_path;
static dev_t listener_dev;
static ino_t listener_ino;
static char *listener_dir; /* the socket's directory, if we made it */
static dev_t listener_dir_dev;
static ino_t listener_dir_ino;

static int listener_fail(char **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
listener_fail(char **err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) < 0)
		fatal("vasprintf");
	va_end(ap);
	return -1;
}

/* Is a daemon answering on path?  1 yes, 0 stale, -1 cannot tell. */
static int
listener_probe(const struct sockaddr_un *sun)
{
	int fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
	if (rc == 0)
		rc = 1;
	else if (errno == ECONNREFUSED)
		rc = 0;
	else
		rc = -1;
	close(fd);
	return rc;
}

/* Remember the directory we made, to remove it at exit if it is empty. */
static void
listener_made_dir(const char *dir)
{
	struct stat sb;

	free(listener_dir);
	listener_dir = NULL;
	if (stat(dir, &sb) == 0) {
		listener_dir = xstrdup(dir);
		listener_dir_dev = sb.st_dev;
		listener_dir_ino = sb.st_ino;
	}
}

static int
listener_mkdir(const char *path, char **err)
{
	char *copy, *dir;
	struct stat sb;
	int rc = 0;

	copy = xstrdup(path);
	dir = dirname(copy);
	if (stat(dir, &sb) == -1) {
		if (errno != ENOENT || mkdir(dir, 0755) == -1)
			rc = listener_fail(err,
			    "cannot create the socket directory %s: %s", dir,
			    strerror(errno));
		else {
			log_info("created %s", dir);
			listener_made_dir(dir);
		}
	} else if (!S_ISDIR(sb.st_mode))
		rc = listener_fail(err, "%s is not a directory", dir);
	free(copy);
	return rc;
}

/*
 * Create, bind and listen on the socket at path with the given mode.
 * Returns the fd, or -1 with *err set.  The path appears only once the
 * socket listens.
 */
int
listener_open(const char *path, unsigned mode, long gid, char **err)
{
	struct sockaddr_un sun;
	char tmp[sizeof sun.sun_path];
	struct stat sb;
	mode_t old;
	int fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		return listener_fail(err,
		    "socket path %s is longer than %zu bytes", path,
		    sizeof sun.sun_path - 1);
	strcpy(sun.sun_path, path);

	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode))
			return listener_fail(err,
			    "%s exists and is not a socket; refusing to replace it",
			    path);
		switch (listener_probe(&sun)) {
		case 1:
			return listener_fail(err,
			    "another slackd is already listening on %s", path);
		case 0:
			if (unlink(path) == -1)
				return listener_fail(err,
				    "cannot remove the stale socket %s: %s",
				    path, strerror(errno));
			log_info("removed stale socket %s", path);
			break;
		default:
			return listener_fail(err,
			    "cannot check whether %s is in use: %s", path,
			    strerror(errno));
		}
	} else if (errno != ENOENT)
		return listener_fail(err, "%s: %s", path, strerror(errno));
	else if (listener_mkdir(path, err) != 0)
		return -1;

	/*
	 * Made under a name of its own and renamed into place once it
	 * listens, so that a client that sees the path can connect (when
	 * the longer name does not fit, at the path itself).
	 */
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.%ld", path, (long)getpid()) <
	    sizeof tmp)
		strcpy(sun.sun_path, tmp);
	else
		strcpy(tmp, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return listener_fail(err, "socket: %s", strerror(errno));
	old = umask(0177); /* no window where others may connect */
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		umask(old);
		close(fd);
		return listener_fail(
		    err, "cannot bind %s: %s", path, strerror(errno));
	}
	umask(old);
	if (gid >= 0 && chown(tmp, (uid_t)-1, (gid_t)gid) == -1) {
		listener_fail(err, "cannot give %s to group %ld: %s", path, gid,
		    strerror(errno));
		unlink(tmp);
		close(fd);
		return -1;
	}
	if (chmod(tmp, (mode_t)mode) == -1 ||
	    listen(fd, LISTENER_BACKLOG) == -1 ||
	    (strcmp(tmp, path) != 0 && rename(tmp, path) == -1) ||
	    stat(path, &sb) == -1) {
		listener_fail(
		    err, "cannot set up %s: %s", path, strerror(errno));
		unlink(tmp);
		close(fd);
		return -1;
	}
	free(listener_path);
	listener_path = xstrdup(path);
	listener_dev = sb.st_dev;
	listener_ino = sb.st_ino;
	return fd;
}

/* Say why, in one line of the protocol, and hang up. */
static void
listener_refuse(int fd, const struct ucred *cred)
{
	char line[512];
	int n;

	n = snprintf(line, sizeof line,
	    "{\"type\":\"" PROTOCOL_ERROR
	    "\",\"error\":{\"code\":%d,\"name\":\"%s\",\"msg\":\"uid %lu is not allowed to use slackd (see allow_users and allow_groups)\"}}\n",
	    PROTOCOL_E_ACCESS_DENIED,
	    protocol_error_name(PROTOCOL_E_ACCESS_DENIED),
	    (unsigned long)cred->uid);
	if (n > 0 && (size_t)n < sizeof line)
		(void)!write(fd, line, (size_t)n);
	close(fd);
	client_refused();
	log_warnx(
	    "refused a client: uid %lu, gid %lu, pid %ld is not in allow_users or allow_groups",
	    (unsigned long)cred->uid, (unsigned long)cred->gid,
	    (long)cred->pid);
}

/*
 * The listening socket systemd passes (socket activation): the only one,
 * or the one named "api".  Returns its fd, -2 when there is none, -1 with
 * *err when what was passed is unusable.  systemd owns the socket file.
 */
int
listener_adopt(char **err)
{
	char **names = NULL;
	int i, n, fd = -1;

	if ((n = sd_listen_fds_with_names(1, &names)) < 0)
		return listener_fail(
		    err, "socket activation: %s", strerror(-n));
	if (n == 0)
		return -2;
	for (i = 0; i < n; i++) {
		if (fd == -1 &&
		    (n == 1 || (names != NULL && strcmp(names[i], "api") == 0)))
			fd = SD_LISTEN_FDS_START + i;
		else
			close(SD_LISTEN_FDS_START + i);
	}
	for (i = 0; names != NULL && names[i] != NULL; i++)
		free(names[i]);
	free(names);
	if (fd == -1)
		return listener_fail(err,
		    "systemd passed %d sockets and none is named \"api\" (FileDescriptorName=api)",
		    n);
	if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
		close(fd);
		return listener_fail(err,
		    "the socket systemd passed is not a listening Unix stream socket");
	}
	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    evutil_make_socket_closeonexec(fd) == -1) {
		close(fd);
		return listener_fail(
		    err, "socket activation: %s", strerror(errno));
	}
	free(listener_path);
	listener_path = NULL;
	return fd;
}

/*
 * The peer's groups: primary and supplementary (SO_PEERGROUPS), into a
 * malloc'd array.
 */
static size_t
listener_groups(int fd, gid_t primary, gid_t **out)
{
	socklen_t len = 64 * sizeof(gid_t);
	gid_t *g = NULL;

	for (;;) {
		g = xrealloc(g, sizeof(gid_t) + len);
		g[0] = primary;
#ifdef SO_PEERGROUPS
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g + 1, &len) == 0)
			break;
		if (errno == ERANGE && len > 0)
			continue; /* len now says how much is needed */
#endif
		len = 0;
		break;
	}
	*out = g;
	return 1 + len / sizeof(gid_t);
}

static void
listener_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	gid_t *groups;
	size_t ngroups;
	int ok;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("SO_PEERCRED");
		close(fd);
		return;
	}
	ngroups = listener_groups(fd, cred.gid, &groups);
	ok = config_allowed(slackd_conf, cred.uid, groups, ngroups);
	free(groups);
	if (!ok) {
		listener_refuse(fd, &cred);
		return;
	}
	client_accept(fd, cred.uid, cred.gid, cred.pid);
}

static void
listener_resume_cb(evutil_socket_t fd, short events, void *arg)
{
	if (listener != NULL && !slackd_stopping) {
		log_info("accepting clients again");
		evconnlistener_enable(listener);
	}
}

static void
listener_error_cb(struct evconnlistener *l, void *arg)
{
	struct timeval tv = { LISTENER_PAUSE_MS / 1000,
		(LISTENER_PAUSE_MS % 1000) * 1000 };
	int e = EVUTIL_SOCKET_ERROR();

	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		log_warnx(
		    "cannot accept clients: %s (%u connected); pausing for %d ms",
		    strerror(e), client_count(), LISTENER_PAUSE_MS);
		evconnlistener_disable(listener);
		evtimer_add(listener_resume, &tv);
		return;
	}
	if (e != EINTR && e != EAGAIN && e != ECONNABORTED)
		log_warnx("accept: %s", strerror(e));
}

void
listener_start(struct event_base *base, int fd)
{
	listener = evconnlistener_new(base, listener_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (listener == NULL)
		fatalx("evconnlistener_new");
	evconnlistener_set_error_cb(listener, listener_error_cb);
	listener_resume = evtimer_new(base, listener_resume_cb, NULL);
}

/* Stop accepting and close the listening socket (the file stays). */
void
listener_stop(void)
{
	if (listener != NULL) {
		evconnlistener_free(listener);
		listener = NULL;
	}
	if (listener_resume != NULL) {
		event_free(listener_resume);
		listener_resume = NULL;
	}
}

/*
 * Remove the socket file, if it is still the one we created, and the
 * directory we made for it, if it is still that one and now empty.
 */
void
listener_unlink(void)
{
	struct stat sb;

	if (listener_path != NULL && lstat(listener_path, &sb) == 0 &&
	    sb.st_dev == listener_dev && sb.st_ino == listener_ino)
		unlink(listener_path);
	free(listener_path);
	listener_path = NULL;
	if (listener_dir != NULL && lstat(listener_dir, &sb) == 0 &&
	    S_ISDIR(sb.st_mode) && sb.st_dev == listener_dir_dev &&
	    sb.st_ino == listener_dir_ino) {
		if (rmdir(listener_dir) == 0)
			log_info("removed %s", listener_dir);
		else if (errno != ENOTEMPTY && errno != EEXIST)
			log_warn("cannot remove %s", listener_dir);
	}
	free(listener_dir);
	listener_dir = NULL;
}
