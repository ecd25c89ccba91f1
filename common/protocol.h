/*
 * slackd local protocol, shared by slackd and slackctl.
 *
 * A stream Unix socket; every message in either direction is one UTF-8 JSON
 * object on one line terminated by "\n".  The daemon speaks first with a
 * slackd.hello line.  Slack events are forwarded unchanged; messages the
 * daemon itself originates have types in the "slackd." namespace.  A client
 * speaks RTM to the daemon as if it were Slack (message, typing, ping) and
 * gets Slack's reply shapes back carrying its own id:
 *
 *   {"ok":true,"reply_to":7,"ts":"…","text":"…"}
 *   {"ok":false,"reply_to":7,"error":{"code":N,"name":"…","msg":"…"}}
 *
 * Every request that carries an "id" gets exactly one reply.  Requests
 * without an id get no success reply; their errors arrive as
 * {"type":"slackd.error","error":{…}}.
 *
 * Bump SLACKD_PROTOCOL on any incompatible change.  See slackd(8).
 */
#ifndef SLACKD_PROTOCOL_H
#define SLACKD_PROTOCOL_H

#include <stddef.h>

#define SLACKD_PROTOCOL 1

/* Message types the daemon sends or accepts. */
#define PROTOCOL_HELLO     "slackd.hello"
#define PROTOCOL_STATE     "slackd.state"
#define PROTOCOL_ERROR     "slackd.error"
#define PROTOCOL_STATUS    "slackd.status"
#define PROTOCOL_SUBSCRIBE "slackd.subscribe"
#define PROTOCOL_DEBUG     "slackd.debug" /* test hooks (SLACKD_TEST_HOOKS=1) */
#define PROTOCOL_POST      "slackd.post"  /* chat.postMessage: blocks, … */
#define PROTOCOL_API       "slackd.api"   /* another Web API method */
#define PROTOCOL_NAMES     "slackd.names" /* the channels or users known */
#define PROTOCOL_QUEUED    "slackd.queued" /* notice: in slackd's queue */
#define PROTOCOL_GAP       "slackd.gap"   /* events a replay cannot give */
#define PROTOCOL_SEQ       "slackd_seq"   /* an event's cursor, if asked */
#define PROTOCOL_ACK       "slackd.ack"   /* answer a Socket Mode envelope */
#define PROTOCOL_SLASH_COMMAND "slackd.slash_command" /* Socket Mode */
#define PROTOCOL_INTERACTIVE   "slackd.interactive"   /* Socket Mode */

/* Upstream connection states, as they appear in hello/state/status. */
#define PROTOCOL_STATE_CONNECTING   "connecting"
#define PROTOCOL_STATE_CONNECTED    "connected"
#define PROTOCOL_STATE_LOADING      "loading" /* names, team_state = yes */
#define PROTOCOL_STATE_RECONNECTING "reconnecting"
#define PROTOCOL_STATE_FAILED       "failed"
#define PROTOCOL_STATE_STOPPING     "stopping"
#define PROTOCOL_STATE_STANDBY      "standby" /* nats_ha: another leads */

/* Limits. */
#define PROTOCOL_RTM_MAX_FRAME 16384 /* Slack drops RTM frames above 16 KB */
#define PROTOCOL_MAX_LINE      65536 /* default longest request line */
#define PROTOCOL_MAX_DEPTH     16    /* deepest JSON nesting in a request */
#define PROTOCOL_MAX_CHANNEL   64    /* longest conversation id */
#define PROTOCOL_MAX_TARGET    96    /* longest name or @name */
#define PROTOCOL_MAX_FILTERS   256   /* entries in a subscribe list */

/*
 * The daemon's own error codes (Slack's own codes are small numbers, so
 * these start at 1001).  Each also has a stable name for scripts.
 */
enum protocol_error {
	PROTOCOL_E_BAD_JSON = 1001, /* line is not valid JSON */
	PROTOCOL_E_NOT_OBJECT,      /* valid JSON, but not an object */
	PROTOCOL_E_BAD_REQUEST,     /* missing or ill-typed field */
	PROTOCOL_E_UNKNOWN_TYPE,    /* type the daemon does not handle */
	PROTOCOL_E_TOO_LONG,        /* message over Slack's frame limit */
	PROTOCOL_E_LINE_TOO_LONG,   /* request line over max_line */
	PROTOCOL_E_QUEUE_FULL,      /* outbound queue is full */
	PROTOCOL_E_NOT_CONFIRMED,   /* written, connection lost before ack */
	PROTOCOL_E_NOT_CONNECTED,   /* needs a live connection (typing) */
	PROTOCOL_E_TIMEOUT,         /* queued longer than queue_timeout */
	PROTOCOL_E_SHUTTING_DOWN,   /* daemon is stopping */
	PROTOCOL_E_UPSTREAM_FAILED, /* Slack refused the daemon for good */
	PROTOCOL_E_SLOW_CONSUMER,   /* client read too slowly, dropped */
	PROTOCOL_E_ACCESS_DENIED,   /* peer not in allow_users/groups */
	PROTOCOL_E_NOT_FOUND,       /* no channel or user by that name */
	PROTOCOL_E_NOT_ALLOWED,     /* Web API method not in api_allow */
	PROTOCOL_E_SLACK_API,       /* the Web API said ok:false */
};

#define PROTOCOL_SYSTEM_SOCKET "/run/slackd/slackd.sock"

struct json_object;

const char *protocol_error_name(int);
const char *protocol_json_str(struct json_object *, const char *);
int protocol_default_socket(char *, size_t);
int protocol_client_socket(char *, size_t);

#endif
