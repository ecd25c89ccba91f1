/*
 * Slack's Real Time Messaging protocol, on a session the connection
 * manager (upstream.c) made: rtm.connect gives the wss:// URL, the first
 * frame must be hello, the keepalive is Slack's app-level
 * {"id":N,"type":"ping"} answered by a pong with reply_to N, and Slack
 * acknowledges a client's message with reply_to its id.
 *
 * Every frame is classified by frame_classify() (frame.c, pure and
 * fuzzed); this file only acts on the decision.  Ids: the pings we put on
 * the wire are even, the main thread's request ids odd, so a reply_to
 * says whose it is.  Events after which Slack closes the connection
 * (goodbye, error, team_migration_started) are forwarded, then the
 * session is replaced at once, without backoff: after goodbye the
 * replacement is made first and the two overlap (upstream.c,
 * "Make-before-break"); after the others, Slack is done with the session.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "upstream.h"

static void
upstream_rtm_frame(struct upstream_conn *conn, char *buf, size_t len)
{
	struct mailbox_msg *m;
	struct frame f;

	frame_classify(buf, len, conn->phase == UPSTREAM_CONN_HELLO,
	    conn->ping_sent != 0 ? conn->proto.rtm.ping_id : 0, &f);
	if (conn->phase == UPSTREAM_CONN_CLOSING && f.action != FRAME_REPLY)
		return; /* closing: only Slack's answers to our requests count
		         */
	switch (f.action) {
	case FRAME_DROP:
		upstream_dropped(conn,
		    "dropped a frame that is not a JSON object (%s at byte %zu of %zu)",
		    f.why, f.js.error_at, len);
		return;
	case FRAME_NOT_HELLO:
		upstream_conn_lost(conn, 1,
		    "first frame from Slack was \"%.40s\", not hello",
		    f.js.type);
		return;
	case FRAME_HELLO:
		upstream_live(conn);
		break; /* and forward it */
	case FRAME_PONG:
		upstream_pong(conn);
		return;
	case FRAME_STALE:
		return;
	case FRAME_REPLY:
		m = mailbox_msg_new(MAILBOX_REPLY);
		m->u.frame.id = f.js.reply_to;
		m->data = xmemdup(buf, f.len);
		m->len = f.len;
		upstream_tell(conn->up, m);
		return;
	case FRAME_EVENT:
	case FRAME_LAST:
		break;
	}
	upstream_event(conn, &f.js, buf, f.len);
	if (f.action != FRAME_LAST)
		return;
	conn->end_prompt = 1;
	if (strcmp(f.js.type, "goodbye") == 0)
		upstream_conn_retire(conn, "Slack said goodbye");
	else
		upstream_conn_lost(
		    conn, 1, "Slack sent \"%s\": %.200s", f.js.type, buf);
}

/* The next app-level ping, with the next even id. */
static size_t
upstream_rtm_ping(struct upstream_conn *conn, char *buf, size_t room)
{
	int n;

	conn->proto.rtm.ping_id += 2;
	n = snprintf(buf, room, "{\"id\":%lld,\"type\":\"ping\"}",
	    (long long)conn->proto.rtm.ping_id);
	return n > 0 && (size_t)n < room ? (size_t)n : 0;
}

const struct upstream_proto upstream_rtm = {
	.name = "rtm",
	.connect_method = "rtm.connect",
	.frame = upstream_rtm_frame,
	.ping = upstream_rtm_ping,
};
