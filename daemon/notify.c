/*
 * Telling the service manager what we do (sd_notify): READY=1 once the
 * socket accepts, STATUS= lines about the Slack connection, RELOADING=1,
 * STOPPING=1, and WATCHDOG=1 from the main loop.
 *
 * The watchdog is only fed while the upstream thread proves it is alive:
 * each tick sends it a probe through its mailbox, and the next tick feeds
 * the watchdog only if the probe came back.  A wedged upstream thread thus
 * gets the service restarted even though the main loop is fine.
 *
 * Without $NOTIFY_SOCKET every call is a no-op: nothing requires systemd.
 */
#include "config.h"

#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "slackd.h"

static struct event *notify_watchdog;
static uint64_t notify_watchdog_usec;
static int notify_probe_out; /* a probe has not come back yet */
static char notify_last_status[256];

static void notify_send(const char *, ...)
    __attribute__((format(printf, 1, 2)));

static void
notify_send(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if ((rc = sd_notify(0, buf)) < 0)
		log_debug("sd_notify: %s", strerror(-rc));
}

static void
notify_watchdog_cb(evutil_socket_t fd, short events, void *arg)
{
	if (!notify_probe_out)
		notify_send("WATCHDOG=1");
	else
		log_warnx(
		    "watchdog: the upstream thread has not answered for %.1f s; not telling systemd we are alive",
		    (double)notify_watchdog_usec / 2e6);
	if (slackd_upstream_running()) {
		notify_probe_out = 1;
		slackd_to_upstream(mailbox_msg_new(MAILBOX_PROBE));
	}
}

/* The upstream thread answered a probe. */
void
notify_probe_back(void)
{
	notify_probe_out = 0;
}

/* Before any thread exists: is there a watchdog to feed? */
void
notify_init(struct event_base *base)
{
	struct timeval tv;
	uint64_t usec;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return;
	notify_watchdog_usec = usec;
	tv.tv_sec = (time_t)(usec / 2 / 1000000);
	tv.tv_usec = (suseconds_t)(usec / 2 % 1000000);
	notify_watchdog =
	    event_new(base, -1, EV_PERSIST, notify_watchdog_cb, NULL);
	event_add(notify_watchdog, &tv);
	log_info("watchdog: telling systemd every %.1f s", usec / 2e6);
}

void
notify_free(void)
{
	if (notify_watchdog != NULL) {
		event_free(notify_watchdog);
		notify_watchdog = NULL;
	}
}

void
notify_ready(void)
{
	notify_send("READY=1\nSTATUS=%s",
	    notify_last_status[0] != '\0' ? notify_last_status
	                                  : "accepting clients");
}

void
notify_reloading(void)
{
	notify_send(
	    "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration",
	    (unsigned long long)util_now_us());
}

void
notify_stopping(void)
{
	notify_send("STOPPING=1\nSTATUS=stopping");
}

/* What the Slack connection is doing, in words, for systemctl status. */
void
notify_state(void)
{
	int64_t in;

	switch (status_now.state) {
	case UPSTREAM_CONNECTING:
		snprintf(notify_last_status, sizeof notify_last_status,
		    "connecting to Slack");
		break;
	case UPSTREAM_CONNECTED:
		snprintf(notify_last_status, sizeof notify_last_status,
		    "%s to %s as %s",
		    status_now.loading
		        ? "loading the team's channels and users, connected"
		        : "connected",
		    status_now.team_name, status_now.self_name);
		break;
	case UPSTREAM_RECONNECTING:
		in = status_now.retry_at - util_now_ms();
		snprintf(notify_last_status, sizeof notify_last_status,
		    "reconnecting in %.0f s after %s",
		    in > 0 ? (double)in / 1000 : 0.0,
		    status_now.reason != NULL ? status_now.reason
		                              : "a failure");
		break;
	case UPSTREAM_FAILED:
		snprintf(notify_last_status, sizeof notify_last_status, "%s",
		    status_now.reason != NULL ? status_now.reason : "failed");
		break;
	case UPSTREAM_STOPPING:
		snprintf(
		    notify_last_status, sizeof notify_last_status, "stopping");
		break;
	}
	notify_send("STATUS=%s", notify_last_status);
}
