/*
 * slackd: main(), startup and shutdown, signals, and the main thread's
 * side of the mailbox from upstream.
 *
 * Startup: configuration and tokens (errors exit 78), the upstream
 * protocol (Socket Mode when an app-level token is found and upstream is
 * auto or socket, RTM otherwise), the local socket
 * (errors exit 1), then -- detached unless -d -- libevent, the upstream
 * thread and the accept loop.  Shutdown on SIGTERM/SIGINT: stop accepting,
 * give queued messages drain_timeout to be sent and acknowledged, ask
 * upstream to close the WebSocket (1000), wait for it, answer every
 * pending request, let clients read what they were sent, remove the
 * socket, exit 0.
 */
#include "config.h"

#include <sys/eventfd.h>
#include <sys/poll.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <json-c/json.h>
#include <libwebsockets.h>

#include "slackd.h"
#include "upstream.h"

#ifndef SLACKD_CONF
#define SLACKD_CONF "/etc/slackd/slackd.conf"
#endif

#define SLACKD_WAIT        5 /* s a detaching parent waits for Slack */
#define SLACKD_WAIT_MAX    3600
#define SLACKD_STOP_WAIT   10  /* s for the upstream thread to finish */
#define SLACKD_FLUSH_WAIT  1   /* s for clients to read their last lines */
#define SLACKD_SLICE       256 /* messages handled per loop turn */
#define SLACKD_SLICE_BYTES (128 * 1024) /* … or this many bytes */

struct event_base *slackd_base;
struct config *slackd_conf;
static struct upstream *slackd_upstream;
int slackd_stopping;

int slackd_test_hooks;
/* Read by the upstream thread too: set before it starts, never after. */
int slackd_test_break_first;

static const char *slackd_conffile;
static const char *slackd_sockopt;
static int slackd_verbose;
static int slackd_check_only; /* -n */
static int slackd_foreground; /* -d */
static char *slackd_token;
static int slackd_token_from_env;
static char *slackd_app_token; /* Socket Mode's; NULL under RTM */
static int slackd_app_token_from_env;
static int slackd_listener_adopted;
static struct mailbox slackd_mailbox;
static struct mailbox_list slackd_pending = STAILQ_HEAD_INITIALIZER(
    slackd_pending); /* taken from the mailbox, not handled yet */
static struct event *slackd_more_ev;
static int slackd_efd = -1;
static struct event *slackd_efd_ev;
static struct event *slackd_ev_term, *slackd_ev_int, *slackd_ev_hup;
static struct event *slackd_ev_deadline;
static int slackd_exit = SLACKD_EXIT_OK;
static int slackd_ready_fd = -1;
static int slackd_wait = SLACKD_WAIT; /* -w */
static int slackd_doctor;             /* --doctor */

static void slackd_shutdown(int);
static void slackd_fatal(const char *);

static const struct option slackd_options[] = {
	{ "config", required_argument, NULL, 'f' },
	{ "socket", required_argument, NULL, 's' },
	{ "check", no_argument, NULL, 'n' },
	{ "doctor", no_argument, NULL, 'D' },
	{ "foreground", no_argument, NULL, 'd' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "wait", required_argument, NULL, 'w' },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void
slackd_usage(FILE *f)
{
	fprintf(f,
	    "usage: slackd [-dnv] [-f file] [-s socket] [-w seconds]\n"
	    "\n"
	    "Keep a Slack connection (RTM or Socket Mode) and share it over a\n"
	    "local socket.\n"
	    "\n"
	    "  -d, --foreground    stay in the foreground, log to stderr\n"
	    "  -f, --config FILE   configuration file (default %s)\n"
	    "  -n, --check         check the configuration and find the token,\n"
	    "                      offline (Slack is not asked), and exit\n"
	    "      --doctor        ask Slack about the token, check scopes and socket, exit\n"
	    "  -s, --socket PATH   local socket (overrides \"socket\")\n"
	    "  -v, --verbose       log more (repeat for libwebsockets "
	    "notices)\n"
	    "  -w, --wait SECONDS  detaching, wait this long (default %d) for\n"
	    "                      Slack's first answer before returning\n"
	    "      --version       print the version and exit\n"
	    "  -h, --help          print this help and exit\n"
	    "\n"
	    "The token comes from $CREDENTIALS_DIRECTORY/slack-token, the\n"
	    "token_file setting or $SLACK_API_TOKEN, never from the command\n"
	    "line; Socket Mode's app-level token from\n"
	    "$CREDENTIALS_DIRECTORY/slack-app-token, app_token_file or\n"
	    "$SLACK_APP_TOKEN.  Exit status: 0 stopped, 1 runtime failure, 64 usage,\n"
	    "78 bad configuration or token refused by Slack.  See slackd(8).\n",
	    SLACKD_CONF, SLACKD_WAIT);
}

typedef void (*slackd_logfn)(const char *, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * --version.  libwebsockets' version string ends with "-" and its git
 * describe, which a release build leaves empty ("4.1.6-"): no dangling dash.
 */
static void
slackd_version(void)
{
	const char *v = lws_get_library_version();
	size_t n = strlen(v);

	while (n > 0 && (v[n - 1] == '-' || v[n - 1] == ' '))
		n--;
	printf("slackd %s (protocol %d, libwebsockets %.*s)\n", PACKAGE_VERSION,
	    SLACKD_PROTOCOL, (int)n, v);
}

/*
 * Log each line of a (malloc'd) error list with log (log_errx when they
 * end the program, log_warnx when they do not), and free it.
 */
static void
slackd_errors(slackd_logfn log, char *errors)
{
	char *line, *p = errors;

	while ((line = strsep(&p, "\n")) != NULL) {
		if (*line != '\0')
			log("%s", line);
	}
	free(errors);
}

/* ---- the mailbox from upstream ------------------------------------------- */

/* Called on the upstream thread: wake the main loop. */
static void
slackd_wake(void *arg)
{
	uint64_t one = 1;

	(void)!write(slackd_efd, &one, sizeof one);
}

static void
slackd_state(struct mailbox_msg *m)
{
	struct json_object *o;

	status_update(m);
	if (m->u.state.state == UPSTREAM_CONNECTED)
		slackd_ready_report(SLACKD_EXIT_OK, NULL);
	else if (m->u.state.state == UPSTREAM_RECONNECTING)
		slackd_ready_report(SLACKD_READY_TRYING, m->u.state.reason);
	if (m->u.state.state == UPSTREAM_CONNECTED) {
		if (status_now.team_id != NULL) {
			names_team_is(status_now.team_id);
			nats_team(status_now.team_id);
		}
		/* team_state = yes: not "connected" before the names are in. */
		status_now.loading = slackd_conf->team_state && names_preload();
	}
	notify_state();
	o = status_state();
	hub_broadcast_json(o);
	json_object_put(o);
	backfill_state(m->u.state.state, m->u.state.reason);
	if (m->u.state.state == UPSTREAM_CONNECTED)
		outbox_connected();
}

/* A names list finished loading (or failed to). */
void
slackd_names_loaded(void)
{
	struct json_object *o;

	outbox_names_ready();
	if (!status_now.loading || names_busy())
		return;
	status_now.loading = 0;
	notify_state();
	o = status_state();
	hub_broadcast_json(o);
	json_object_put(o);
}

static void
slackd_deadline_cb(evutil_socket_t fd, short events, void *arg)
{
	if (slackd_upstream != NULL) {
		log_errx(
		    "the upstream thread did not stop within %d s; exiting anyway",
		    SLACKD_STOP_WAIT);
		listener_unlink();
		_exit(slackd_exit);
	}
	event_base_loopexit(slackd_base, NULL);
}

static void
slackd_stopped(void)
{
	struct timeval tv = { SLACKD_FLUSH_WAIT, 0 };

	upstream_join(slackd_upstream);
	slackd_upstream = NULL;
	if (!slackd_stopping) {
		log_errx("the upstream thread stopped unexpectedly");
		slackd_shutdown(SLACKD_EXIT_FAILURE);
	}
	outbox_shutdown();
	nats_shutdown();
	names_shutdown();
	backfill_shutdown();
	api_shutdown();
	evtimer_add(slackd_ev_deadline, &tv);
	client_flush_all();
}

void
slackd_clients_gone(void)
{
	if (slackd_stopping && slackd_upstream == NULL)
		event_base_loopexit(slackd_base, NULL);
}

/* Is there an upstream thread to post to? */
int
slackd_upstream_running(void)
{
	return slackd_upstream != NULL;
}

/* Post m to the upstream thread (which must be running). */
void
slackd_to_upstream(struct mailbox_msg *m)
{
	upstream_post(slackd_upstream, m);
}

static void
slackd_dispatch(struct mailbox_msg *m)
{
	switch (m->type) {
	case MAILBOX_EVENT:
		if (!backfill_had(&m->u.event)) {
			hub_events(&m, 1); /* takes m */
			return;
		}
		break;
	case MAILBOX_STATE:
		slackd_state(m);
		break;
	case MAILBOX_REPLY:
		outbox_reply(m->u.frame.id, m->data, m->len);
		break;
	case MAILBOX_WRITTEN:
		outbox_written(m->u.frame.id, m->u.frame.session);
		break;
	case MAILBOX_RETURNED:
		outbox_returned(m->u.frame.id);
		break;
	case MAILBOX_SESSION_DOWN:
		outbox_session_down(m->u.down.session, m->u.down.reason);
		break;
	case MAILBOX_PONG:
	case MAILBOX_DROPPED:
	case MAILBOX_CONNS:
		status_update(m);
		break;
	case MAILBOX_ENVELOPE:
		envelope_arrived(m->u.ack.envelope_id);
		break;
	case MAILBOX_FATAL:
		slackd_fatal(m->u.fatal.error);
		break;
	case MAILBOX_STOPPED:
		slackd_stopped();
		break;
	case MAILBOX_PROBE_ACK:
		notify_probe_back();
		break;
	case MAILBOX_API_RESULT:
		api_result(m);
		break;
	default:
		log_warnx("unexpected mailbox message %d", m->type);
		break;
	}
	mailbox_msg_free(m);
}

/*
 * What came from upstream is handled a slice at a time, the loop running
 * in between: clients' output is written out as it is produced instead of
 * piling up (one batch times every client) first.  The mailbox is emptied
 * only once the last take is done, so that backpressure still holds.
 */
static void
slackd_mailbox_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mailbox_msg *m, *events[SLACKD_SLICE];
	uint64_t n;
	size_t bytes = 0;
	u_int count = 0;

	if (STAILQ_EMPTY(&slackd_pending)) {
		/* Clear the wake-up before taking, so no post is missed. */
		(void)!read(slackd_efd, &n, sizeof n);
		mailbox_take(&slackd_mailbox, &slackd_pending);
	}
	while ((m = STAILQ_FIRST(&slackd_pending)) != NULL &&
	    count < SLACKD_SLICE && bytes < SLACKD_SLICE_BYTES) {
		STAILQ_REMOVE_HEAD(&slackd_pending, entry);
		bytes += m->len;
		if (m->type == MAILBOX_EVENT) {
			if (backfill_had(&m->u.event))
				mailbox_msg_free(m);
			else
				events[count++] = m; /* delivered together */
			continue;
		}
		if (count > 0)
			hub_events(events, count);
		count = 0;
		slackd_dispatch(m);
	}
	if (count > 0)
		hub_events(events, count);
	if (!STAILQ_EMPTY(&slackd_pending))
		event_active(slackd_more_ev, EV_TIMEOUT, 0);
}

/* ---- signals and shutdown --------------------------------------------- */

/*
 * Slack refused the token for good (reason: "authentication failed:
 * ERROR"): say what the error means, tell a waiting parent, and stop.
 */
static void
slackd_fatal(const char *error)
{
	const char *advice = webapi_error_advice(error);
	char *why;

	xasprintf(&why, "authentication failed: %s; %s", error,
	    advice != NULL ? advice : "check the token");
	log_errx(
	    "fatal: %s (slackd exits with status %d)", why, SLACKD_EXIT_CONFIG);
	slackd_ready_report(SLACKD_EXIT_CONFIG, why);
	free(why);
	slackd_shutdown(SLACKD_EXIT_CONFIG);
}

/* Ask the upstream thread to close the connection and stop. */
static void
slackd_stop_upstream(void)
{
	struct timeval tv = { SLACKD_STOP_WAIT, 0 };

	if (slackd_upstream != NULL)
		slackd_to_upstream(mailbox_msg_new(MAILBOX_STOP));
	evtimer_add(slackd_ev_deadline, &tv);
}

/*
 * Stop.  Asked to (SIGTERM, SIGINT) while connected, messages still
 * queued first get drain_timeout to be sent and acknowledged
 * (outbox_drain()); while not connected they are answered at once.
 */
static void
slackd_shutdown(int code)
{
	if (code != SLACKD_EXIT_OK)
		slackd_exit = code;
	if (slackd_stopping)
		return;
	slackd_stopping = 1;
	log_info("shutting down");
	notify_stopping();
	listener_stop();
	if (code == SLACKD_EXIT_OK && slackd_upstream != NULL &&
	    status_now.state == UPSTREAM_CONNECTED &&
	    outbox_drain(slackd_conf->drain_timeout, slackd_stop_upstream))
		return;
	slackd_stop_upstream();
}

static void slackd_reload(void);

static void
slackd_signal_cb(evutil_socket_t sig, short events, void *arg)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_info("received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		slackd_shutdown(SLACKD_EXIT_OK);
		break;
	case SIGHUP:
		if (!slackd_stopping)
			slackd_reload();
		break;
	}
}

/* ---- startup ---------------------------------------------------------- */

/*
 * The parent of a detaching daemon: read the child's report from fd (at
 * most slackd_wait seconds) and return the status to exit with.
 */
static int
slackd_wait_child(pid_t pid, int fd)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	int64_t deadline = util_now_ms() + (int64_t)slackd_wait * 1000, left;
	char buf[1024], *why = NULL;
	size_t len = 0;
	ssize_t n;
	int code, wstatus;

	for (;;) {
		left = deadline - util_now_ms();
		if (left < 0)
			left = 0;
		if (slackd_wait == 0)
			left = -1; /* only until the socket is served */
		if ((n = poll(&pfd, 1, (int)left)) == -1 && errno == EINTR)
			continue;
		if (n == 0) {
			fprintf(stderr,
			    "slackd: no answer from Slack within %d s; slackd keeps trying in the background (pid %ld; see the log)\n",
			    slackd_wait, (long)pid);
			return SLACKD_EXIT_OK;
		}
		if ((n = read(fd, buf + len, sizeof buf - 1 - len)) == -1 &&
		    errno == EINTR)
			continue;
		if (n <= 0 || (len += (size_t)n) == sizeof buf - 1)
			break;
	}
	buf[len] = '\0';
	if (len == 0) { /* the child died before it could say */
		if (waitpid(pid, &wstatus, 0) == pid && WIFEXITED(wstatus))
			return WEXITSTATUS(wstatus);
		return SLACKD_EXIT_FAILURE;
	}
	code = (int)strtol(buf, &why, 10);
	if (*why == ' ')
		why++;
	if (code == SLACKD_READY_TRYING) {
		fprintf(stderr,
		    "slackd: cannot reach Slack yet (%s); slackd keeps trying in the background (pid %ld)\n",
		    why, (long)pid);
		return SLACKD_EXIT_OK;
	}
	if (*why != '\0')
		fprintf(stderr, "slackd: %s\n", why);
	return code;
}

/*
 * Go to the background.  The parent waits, at most slackd_wait seconds,
 * for the child's first answer from Slack (slackd_ready_report) and exits
 * with the status that answer calls for, saying why on stderr; if the
 * child dies first, it exits with the child's status_now.  So a refused token
 * is never hidden behind an exit status of 0.
 */
static void
slackd_detach(void)
{
	pid_t pid;
	int fd, p[2];

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal("pipe");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid > 0) {
		close(p[1]);
		_exit(slackd_wait_child(pid, p[0]));
	}
	close(p[0]);
	slackd_ready_fd = p[1];
	if (setsid() == -1)
		fatal("setsid");
	if (chdir("/") == -1)
		fatal("chdir");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

/*
 * The child's first answer from Slack, for a waiting parent (a no-op
 * once told, and without one): code is the status for the parent to exit
 * with (SLACKD_EXIT_OK when connected, SLACKD_EXIT_CONFIG when Slack
 * refused the token), or SLACKD_READY_TRYING when Slack could not be
 * reached yet; why says what happened.
 */
void
slackd_ready_report(int code, const char *why)
{
	char buf[1024];
	int n;

	if (slackd_ready_fd == -1)
		return;
	n = snprintf(buf, sizeof buf, "%d %s", code, why != NULL ? why : "");
	if (n >= (int)sizeof buf)
		n = sizeof buf - 1;
	(void)!write(slackd_ready_fd, buf, (size_t)n); /* atomic: < PIPE_BUF */
	close(slackd_ready_fd);
	slackd_ready_fd = -1;
}

/* Serving on the socket: with -w 0 that is all a parent waits for. */
static void
slackd_ready(void)
{
	if (slackd_wait == 0)
		slackd_ready_report(SLACKD_EXIT_OK, NULL);
}

/* What the upstream thread runs with: its own copy of the settings. */
static struct upstream_params *
slackd_params(const struct config *conf, const char *token)
{
	/* Never lws INFO or DEBUG: they dump headers. */
	return upstream_params_new(conf, token, slackd_app_token,
	    LLL_ERR | LLL_WARN | (slackd_verbose >= 2 ? LLL_NOTICE : 0));
}

static void
slackd_events(void)
{
	if (evthread_use_pthreads() != 0)
		fatalx("evthread_use_pthreads");
	if ((slackd_base = event_base_new()) == NULL)
		fatalx("event_base_new");
	slackd_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (slackd_efd == -1)
		fatal("eventfd");
	mailbox_init(&slackd_mailbox, slackd_wake, NULL);
	slackd_efd_ev = event_new(slackd_base, slackd_efd, EV_READ | EV_PERSIST,
	    slackd_mailbox_cb, NULL);
	slackd_more_ev = event_new(slackd_base, -1, 0, slackd_mailbox_cb, NULL);
	event_add(slackd_efd_ev, NULL);
	slackd_ev_term =
	    evsignal_new(slackd_base, SIGTERM, slackd_signal_cb, NULL);
	slackd_ev_int =
	    evsignal_new(slackd_base, SIGINT, slackd_signal_cb, NULL);
	slackd_ev_hup =
	    evsignal_new(slackd_base, SIGHUP, slackd_signal_cb, NULL);
	event_add(slackd_ev_term, NULL);
	event_add(slackd_ev_int, NULL);
	event_add(slackd_ev_hup, NULL);
	slackd_ev_deadline = evtimer_new(slackd_base, slackd_deadline_cb, NULL);
}

static void
slackd_cleanup(void)
{
	struct mailbox_msg *m;

	if (slackd_base != NULL) {
		envelope_shutdown();
		client_free_all();
		hub_free();
		status_free();
		notify_free();
		event_free(slackd_ev_deadline);
		event_free(slackd_ev_term);
		event_free(slackd_ev_int);
		event_free(slackd_ev_hup);
		event_free(slackd_efd_ev);
		event_free(slackd_more_ev);
		while ((m = STAILQ_FIRST(&slackd_pending)) != NULL) {
			STAILQ_REMOVE_HEAD(&slackd_pending, entry);
			mailbox_msg_free(m);
		}
		mailbox_destroy(&slackd_mailbox);
		close(slackd_efd);
		event_base_free(slackd_base);
		libevent_global_shutdown();
	}
	listener_unlink();
	log_set_secret(NULL);
	log_set_secret2(NULL);
	token_secret_free(slackd_token);
	token_secret_free(slackd_app_token);
	config_free(slackd_conf);
	free(slackd_conf);
}

/*
 * Read the configuration the command line names, with its overrides.
 * Returns the number of errors, logged with log.
 */
static int
slackd_load(struct config *conf, slackd_logfn log)
{
	char *errors = NULL, defsock[256];
	const char *state;
	int n;

	config_init(conf);
	if ((n = config_load(conf,
	         slackd_conffile != NULL ? slackd_conffile : SLACKD_CONF,
	         slackd_conffile != NULL, &errors)) != 0) {
		slackd_errors(log, errors);
		return n;
	}
	if (slackd_sockopt != NULL) {
		free(conf->socket_path);
		conf->socket_path = xstrdup(slackd_sockopt);
	}
	if (conf->socket_path == NULL &&
	    protocol_default_socket(defsock, sizeof defsock) == 0)
		conf->socket_path = xstrdup(defsock);
	/* systemd's StateDirectory=, unless the configuration says. */
	if (conf->state_dir == NULL &&
	    (state = getenv("STATE_DIRECTORY")) != NULL && *state == '/')
		conf->state_dir = xstrndup(state, strcspn(state, ":"));
	if (conf->ca_file != NULL && access(conf->ca_file, R_OK) == -1) {
		log("ca_file %s: %s", conf->ca_file, strerror(errno));
		return 1;
	}
	return 0;
}

/*
 * The keys a reload cannot apply (CONFIG_RESTART), each with a warning
 * when it changed: the socket's keys as one, and only when slackd made
 * the socket itself.
 */
static void
slackd_reload_warn(const struct config *old, const struct config *conf)
{
	const int sock = CONFIG_RESTART | CONFIG_SOCKET;
	const struct config_option *o;
	char *keys = NULL, *s;
	u_int n = 0, i = 0;

	for (o = config_options; o->name != NULL; o++) {
		if ((o->flags & sock) == sock)
			n++;
	}
	for (o = config_options; o->name != NULL; o++) {
		if ((o->flags & sock) != sock)
			continue;
		xasprintf(&s, "%s%s%s", keys != NULL ? keys : "",
		    i == 0 ? "" : (i == n - 1 ? " and " : ", "), o->name);
		free(keys);
		keys = s;
		i++;
	}
	if (config_changed(old, conf, sock) && !slackd_listener_adopted)
		log_warnx(
		    "reload: %s take effect only when slackd restarts", keys);
	free(keys);
	for (o = config_options; o->name != NULL; o++) {
		if ((o->flags & sock) == CONFIG_RESTART &&
		    config_differs(old, conf, o))
			log_warnx(
			    "reload: %s takes effect only when slackd restarts",
			    o->name);
	}
}

/*
 * Under Socket Mode, a reload reads the app-level token again (the
 * protocol itself changes only with a restart).  0 if it is usable.
 */
static int
slackd_reload_app(const struct config *conf)
{
	const char *source;
	char *app, *errors = NULL;

	if (slackd_app_token == NULL)
		return 0;
	app = token_app_load(conf, &source, &errors);
	if (app == NULL && errors == NULL && slackd_app_token_from_env &&
	    token_env_only(conf, 1))
		return 0; /* the variable was wiped: keep the token */
	if (app == NULL) {
		if (errors != NULL)
			slackd_errors(log_warnx, errors);
		else
			log_warnx(
			    "no app-level token any more, and Socket Mode needs one (a restart switches to RTM)");
		log_warnx(
		    "reload failed: no usable app-level token; keeping the configuration in force");
		return -1;
	}
	log_set_secret2(app);
	token_secret_free(slackd_app_token);
	slackd_app_token = app;
	slackd_app_token_from_env = strcmp(source, TOKEN_APP_ENV) == 0;
	return 0;
}

/*
 * SIGHUP: read the configuration again and apply it without dropping
 * clients or (unless the token or api_url changed) the Slack connection.
 * A configuration with errors is refused whole; the old one stays.
 */
static void
slackd_reload(void)
{
	struct config *conf, *old = slackd_conf;
	struct mailbox_msg *m;
	const char *source;
	char *token = NULL, *errors = NULL;

	log_info("SIGHUP: reloading the configuration");
	notify_reloading();
	conf = xcalloc(1, sizeof *conf);
	if (slackd_load(conf, log_warnx) != 0) {
		log_warnx(
		    "reload failed: the configuration above has errors; keeping the one in force");
		goto fail;
	}
	token = token_load(conf, &source, &errors);
	if (token == NULL && slackd_token_from_env && token_env_only(conf, 0)) {
		/* Still no other source; the variable was wiped: keep it. */
		free(errors);
		token = token_secret_dup(slackd_token);
		source = TOKEN_ENV;
	} else if (token == NULL) {
		slackd_errors(log_warnx, errors);
		log_warnx(
		    "reload failed: no usable token; keeping the configuration in force");
		goto fail;
	}
	if (slackd_reload_app(conf) != 0)
		goto fail;
	slackd_reload_warn(old, conf);

	log_set_level(conf->log_level + slackd_verbose);
	log_set_secret(token);
	slackd_conf = conf;
	outbox_reconfigure(conf);
	client_reconfigure();
	if (slackd_upstream != NULL) {
		m = mailbox_msg_new(MAILBOX_CONFIG);
		m->u.config.params = slackd_params(conf, token);
		slackd_to_upstream(m);
	}
	token_secret_free(slackd_token);
	slackd_token = token;
	slackd_token_from_env = strcmp(source, TOKEN_ENV) == 0;
	config_free(old);
	free(old);
	log_info("configuration reloaded");
	notify_ready();
	return;
fail:
	config_free(conf);
	free(conf);
	notify_ready();
}

/* -w SECONDS: a whole number from 0 to SLACKD_WAIT_MAX. */
static int
slackd_parse_wait(const char *arg)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || errno != 0 || v < 0 ||
	    v > SLACKD_WAIT_MAX) {
		fprintf(stderr,
		    "slackd: -w wants a number of seconds from 0 to %d, not \"%s\"\n",
		    SLACKD_WAIT_MAX, arg);
		slackd_usage(stderr);
		return -1;
	}
	slackd_wait = (int)v;
	return 0;
}

/*
 * The command line, into slackd_conffile and the others.  Returns -1 to
 * go on, or the status to exit with (--help, --version, usage errors).
 */
static int
slackd_getopt(int argc, char **argv)
{
	int ch;

	while ((ch = getopt_long(
	            argc, argv, "df:hns:vw:", slackd_options, NULL)) != -1) {
		switch (ch) {
		case 'd':
			slackd_foreground = 1;
			break;
		case 'f':
			slackd_conffile = optarg;
			break;
		case 'n':
			slackd_check_only = 1;
			break;
		case 'D':
			slackd_doctor = 1;
			break;
		case 's':
			slackd_sockopt = optarg;
			break;
		case 'v':
			slackd_verbose++;
			break;
		case 'w':
			if (slackd_parse_wait(optarg) != 0)
				return SLACKD_EXIT_USAGE;
			break;
		case 'V':
			slackd_version();
			return SLACKD_EXIT_OK;
		case 'h':
			slackd_usage(stdout);
			return SLACKD_EXIT_OK;
		default:
			slackd_usage(stderr);
			return SLACKD_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr,
		    "slackd: unexpected argument \"%s\" (the token never goes on the command line)\n",
		    argv[optind]);
		slackd_usage(stderr);
		return SLACKD_EXIT_USAGE;
	}
	return -1;
}

/* The configuration or the token is unusable: exit 78, with -n saying so. */
static int
slackd_failed(int nerrors)
{
	if (slackd_check_only)
		log_errx(
		    "configuration check failed: %d error%s (exit status %d)",
		    nerrors, nerrors == 1 ? "" : "s", SLACKD_EXIT_CONFIG);
	return SLACKD_EXIT_CONFIG;
}

/*
 * The app-level token and so the upstream protocol: Socket Mode when
 * upstream is socket, or auto and the token is there.  Returns -1 to go
 * on, or the status to exit with.
 */
static int
slackd_setup_app(void)
{
	const char *source, *want = slackd_conf->upstream;
	char *errors = NULL;

	slackd_app_token = token_app_load(slackd_conf, &source, &errors);
	if (slackd_app_token == NULL && errors != NULL &&
	    strcmp(want, "rtm") != 0) {
		slackd_errors(log_errx, errors);
		return slackd_failed(1);
	}
	free(errors);
	if (slackd_app_token != NULL && strcmp(want, "rtm") == 0) {
		log_info(
		    "upstream = rtm: not using the app-level token from %s",
		    source);
		token_secret_free(slackd_app_token);
		slackd_app_token = NULL;
	}
	if (slackd_app_token == NULL && strcmp(want, "socket") == 0) {
		log_errx(
		    "upstream = socket needs the app's app-level token (xapp-…, scope connections:write): set app_token_file, provide the systemd credential \"%s\", or set %s",
		    TOKEN_APP_CRED, TOKEN_APP_ENV);
		return slackd_failed(1);
	}
	if (slackd_app_token != NULL) {
		slackd_app_token_from_env = strcmp(source, TOKEN_APP_ENV) == 0;
		log_set_secret2(slackd_app_token);
		status_now.socket_mode = 1;
		log_info(
		    "upstream: Socket Mode, app-level token from %s", source);
	}
	return -1;
}

/*
 * The configuration and the token.  Returns -1 to go on (*source names
 * where the token came from), or the status to exit with.
 */
static int
slackd_setup(const char **source)
{
	char *errors = NULL;
	int n;

	slackd_conf = xcalloc(1, sizeof *slackd_conf);
	if ((n = slackd_load(slackd_conf, log_errx)) != 0)
		return slackd_failed(n);
	log_set_level(slackd_conf->log_level + slackd_verbose);
	slackd_test_hooks = getenv("SLACKD_TEST_HOOKS") != NULL &&
	    strcmp(getenv("SLACKD_TEST_HOOKS"), "1") == 0;
	slackd_test_break_first = slackd_test_hooks &&
	    getenv("SLACKD_TEST_BREAK_BEFORE_MAKE") != NULL &&
	    strcmp(getenv("SLACKD_TEST_BREAK_BEFORE_MAKE"), "1") == 0;
	if (slackd_test_break_first)
		log_warnx(
		    "test hook: a session Slack says goodbye on is closed at once (break-before-make)");
	if (slackd_doctor) /* the online check loads the token itself */
		return doctor_run(slackd_conf, slackd_conffile, slackd_verbose);

	if (nats_check(slackd_conf, &errors) != 0) {
		slackd_errors(log_errx, errors);
		return slackd_failed(1);
	}
	slackd_token = token_load(slackd_conf, source, &errors);
	if (slackd_token == NULL) {
		slackd_errors(log_errx, errors);
		return slackd_failed(1);
	}
	slackd_token_from_env = strcmp(*source, TOKEN_ENV) == 0;
	log_set_secret(slackd_token);
	return slackd_setup_app();
}

/* -n: say what was found, and that Slack was not asked; exit. */
static int
slackd_check(const char *source)
{
	printf(
	    "configuration OK: token from %s, upstream %s, socket %s, api_url %s\n"
	    "offline check: the token was not tried with Slack (slackd --doctor tries it)\n",
	    source, slackd_app_token != NULL ? "socket (Socket Mode)" : "rtm",
	    slackd_conf->socket_path != NULL
	        ? slackd_conf->socket_path
	        : "(none: needs socket activation, \"socket\" or -s)",
	    slackd_conf->api_url);
	slackd_cleanup();
	return SLACKD_EXIT_OK;
}

/*
 * The listening socket: systemd's, or one made at the configured path.
 * Returns -1 to go on with *fd set, or the status to exit with.
 */
static int
slackd_socket(int *fd)
{
	char *errors = NULL;

	if ((*fd = listener_adopt(&errors)) == -1) {
		slackd_errors(log_errx, errors);
		return SLACKD_EXIT_FAILURE;
	}
	slackd_listener_adopted = *fd >= 0;
	if (*fd == -2 && slackd_conf->socket_path == NULL) {
		log_errx(
		    "no socket path: set \"socket\" or -s (or XDG_RUNTIME_DIR, or use socket activation)");
		slackd_cleanup();
		return SLACKD_EXIT_CONFIG;
	}
	if (*fd == -2 &&
	    (*fd = listener_open(slackd_conf->socket_path,
	         slackd_conf->socket_mode, slackd_conf->socket_gid, &errors)) ==
	        -1) {
		slackd_errors(log_errx, errors);
		listener_unlink(); /* the directory, if it was made */
		return SLACKD_EXIT_FAILURE;
	}
	return -1;
}

/*
 * Start the main loop's parts and the upstream thread, serve until
 * stopped, and return the exit status_now.
 */
static int
slackd_run(int fd)
{
	char *errors = NULL;

	slackd_events();
	status_init();
	outbox_init(slackd_conf);
	names_init();
	backfill_init();
	nats_init();
	notify_init(slackd_base);
	slackd_upstream = upstream_start(
	    slackd_params(slackd_conf, slackd_token), &slackd_mailbox, &errors);
	if (slackd_upstream == NULL) {
		slackd_ready_report(SLACKD_EXIT_FAILURE, errors);
		slackd_errors(log_errx, errors);
		listener_unlink();
		return SLACKD_EXIT_FAILURE;
	}
	listener_start(slackd_base, fd);
	notify_ready();
	slackd_ready();

	event_base_dispatch(slackd_base);

	if (slackd_upstream != NULL) {
		log_errx("main loop ended with the upstream thread running");
		_exit(slackd_exit);
	}
	log_info("stopped");
	slackd_cleanup();
	return slackd_exit;
}

int
main(int argc, char **argv)
{
	const char *source;
	int rc, fd;

	if ((rc = slackd_getopt(argc, argv)) != -1)
		return rc;
	log_init(1, LOG_LEVEL_INFO);
	if ((rc = slackd_setup(&source)) != -1)
		return rc;
	if (slackd_check_only)
		return slackd_check(source);
	signal(SIGPIPE, SIG_IGN);
	if ((rc = slackd_socket(&fd)) != -1)
		return rc;
	if (!slackd_foreground) {
		slackd_detach();
		log_init(0, slackd_conf->log_level + slackd_verbose);
	}
	log_info(
	    "slackd %s starting: upstream %s, socket %s, token from %s, api_url %s",
	    PACKAGE_VERSION, slackd_app_token != NULL ? "socket" : "rtm",
	    slackd_listener_adopted ? "from systemd" : slackd_conf->socket_path,
	    source, slackd_conf->api_url);
	return slackd_run(fd);
}
