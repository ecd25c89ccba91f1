/*
 * The local socket: created safely (a live daemon on the path is never
 * displaced, a stale socket is replaced, anything that is not a socket is
 * left alone), accepted from with libevent, removed at exit.  When file
 * descriptors run out, accepting pauses for a moment instead of spinning.
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

#include "slackd.h"

#define LISTENER_BACKLOG  512
#define LISTENER_PAUSE_MS 1000

static struct evconnlistener *listener;
static struct event *listener_resume;
static char *listener_path;
static dev_t listener_dev;
static ino_t listener_ino;

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
			    "cannot create the socket "
			    "directory %s: %s",
			    dir, strerror(errno));
		else
			log_info("created %s", dir);
	} else if (!S_ISDIR(sb.st_mode))
		rc = listener_fail(err, "%s is not a directory", dir);
	free(copy);
	return rc;
}

/*
 * Create, bind and listen on the socket at path with the given mode.
 * Returns the fd, or -1 with *err set.
 */
int
listener_open(const char *path, unsigned mode, char **err)
{
	struct sockaddr_un sun;
	struct stat sb;
	mode_t old;
	int fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		return listener_fail(err,
		    "socket path %s is longer than %zu "
		    "bytes",
		    path, sizeof sun.sun_path - 1);
	strcpy(sun.sun_path, path);

	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode))
			return listener_fail(err,
			    "%s exists and is not a "
			    "socket; refusing to replace it",
			    path);
		switch (listener_probe(&sun)) {
		case 1:
			return listener_fail(err,
			    "another slackd is already "
			    "listening on %s",
			    path);
		case 0:
			if (unlink(path) == -1)
				return listener_fail(err,
				    "cannot remove the "
				    "stale socket %s: %s",
				    path, strerror(errno));
			log_info("removed stale socket %s", path);
			break;
		default:
			return listener_fail(err,
			    "cannot check whether %s is "
			    "in use: %s",
			    path, strerror(errno));
		}
	} else if (errno != ENOENT)
		return listener_fail(err, "%s: %s", path, strerror(errno));
	else if (listener_mkdir(path, err) != 0)
		return -1;

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
	if (chmod(path, (mode_t)mode) == -1 ||
	    listen(fd, LISTENER_BACKLOG) == -1 || stat(path, &sb) == -1) {
		listener_fail(
		    err, "cannot set up %s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return -1;
	}
	free(listener_path);
	listener_path = xstrdup(path);
	listener_dev = sb.st_dev;
	listener_ino = sb.st_ino;
	return fd;
}

static void
listener_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("SO_PEERCRED");
		close(fd);
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
		log_warnx("cannot accept clients: %s (%u connected); pausing "
		          "for %d ms",
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

/* Remove the socket file, if it is still the one we created. */
void
listener_unlink(void)
{
	struct stat sb;

	if (listener_path == NULL)
		return;
	if (lstat(listener_path, &sb) == 0 && sb.st_dev == listener_dev &&
	    sb.st_ino == listener_ino)
		unlink(listener_path);
	free(listener_path);
	listener_path = NULL;
}
