/*
 * upstream.h: the upstream thread's side of slackd, everything that talks
 * to Slack on libwebsockets' own loop (doc/design.md, "Two threads").
 *
 * Included by the upstream files (upstream.c, upstream_rtm.c, webcall.c,
 * lwslog.c, frame.c) and by slackd.c, the one main-thread file that starts,
 * feeds and joins the thread.  The main thread may call only
 * upstream_params_new/free(), upstream_start(), upstream_post() and
 * upstream_join(); everything else here runs on the upstream thread,
 * except in slackd --doctor (doctor.c), which makes Web API calls with
 * webcall.c on the main thread and starts no upstream thread.
 */
#ifndef UPSTREAM_H
#define UPSTREAM_H

#include <libwebsockets.h>

#include "slackd.h"

/* upstream.c: the thread and the connection manager. */
struct upstream_params {
	struct config *conf; /* a copy of its own (config_dup) */
	char *token;         /* a secret: token_secret_dup/free */
	char *app_token;     /* Socket Mode's, likewise; NULL: RTM */
	int lws_log_level;
};
struct upstream;
struct upstream_params *upstream_params_new(
    const struct config *, const char *, const char *, int);
void upstream_params_free(struct upstream_params *);
struct upstream *upstream_start(
    struct upstream_params *, struct mailbox *, char **);
void upstream_post(struct upstream *, struct mailbox_msg *);
void upstream_join(struct upstream *);

/*
 * One WebSocket session with Slack, from its connect call (rtm.connect,
 * apps.connections.open) to its close.  The manager owns it (there may be
 * several at once: a session being replaced and its replacement, or the
 * connections Socket Mode holds); a protocol (upstream_rtm.c,
 * upstream_socket.c) reads its frames and keeps its own per-session state
 * in `proto`.
 */
enum upstream_conn_phase {
	UPSTREAM_CONN_API,     /* the connect method in flight */
	UPSTREAM_CONN_SOCKET,  /* WebSocket connecting */
	UPSTREAM_CONN_HELLO,   /* waiting for hello */
	UPSTREAM_CONN_LIVE,    /* events flow */
	UPSTREAM_CONN_CLOSING, /* close handshake under way */
};
struct upstream_conn {
	TAILQ_ENTRY(upstream_conn) entry;
	struct upstream *up;
	enum upstream_conn_phase phase;
	int retiring; /* Slack asked it to go: a replacement is on its way */
	int silenced; /* replaced: what it still sends is not forwarded */
	uint64_t session; /* numbered when the WebSocket is up */
	struct webcall *connect_call;
	struct webapi_connect connect; /* the connect method's answer */
	struct webapi_url ws;
	struct lws *wsi;
	int64_t live_at;  /* ms, since hello; 0 before */
	int64_t wrote_at; /* ms, a client's frame last written */

	char *rx; /* the frame being received */
	size_t rx_len;
	int rx_over;
	int rx_binary;
	struct mailbox_list writes; /* MAILBOX_SEND frames to write */
	/* The protocol's frames (acks), framed and masked: written first. */
	unsigned char *own;
	size_t own_len;
	size_t own_cap;
	int64_t last_rx;  /* ms, anything from Slack */
	double since;     /* wall clock, at hello */
	char host[64];    /* Slack's name for the server, or "" */
	char app_id[32];  /* the app Slack says it serves, or "" */
	int64_t lifetime; /* s Slack expects it to last, or 0 */

	int close_code;
	int peer_close_code;
	char *end_reason;
	int end_prompt; /* Slack asked us to go: reconnect without backoff */

	int64_t ping_sent;    /* ms, 0 when no keepalive is outstanding */
	int64_t ping_sent_us; /* for the round trip */
	int ping_unwritten;
	char ping_frame[64]; /* the protocol's keepalive, to write */
	size_t ping_len;     /* 0: a WebSocket PING */

	lws_sorted_usec_list_t sul_deadline; /* connect, hello, close */
	lws_sorted_usec_list_t sul_ping;
	lws_sorted_usec_list_t sul_pong;

	union {
		struct {
			int64_t ping_id; /* even: ours; odd: clients' */
		} rtm;
	} proto;
};

/* What makes one upstream protocol (RTM, Socket Mode). */
struct upstream_proto {
	const char *name;           /* for logs and status */
	const char *connect_method; /* Web API method giving the wss:// URL */
	int app_token;              /* the connect call uses the app token */
	int identify;    /* the connect call says not who we are: auth.test */
	int connections; /* hold conf->connections sessions, not one */
	/*
	 * Make-before-break without overlap: a retired session is closed
	 * as soon as a replacement said hello (the protocol de-duplicates).
	 */
	int no_overlap;
	/* One whole text frame of a session in HELLO or LIVE. */
	void (*frame)(struct upstream_conn *, char *, size_t);
	/* Compose the next keepalive in buf; its length, 0: WebSocket PING. */
	size_t (*ping)(struct upstream_conn *, char *, size_t);
	/* MAILBOX_ACK from the main thread (taken), or NULL. */
	void (*ack)(struct upstream *, struct mailbox_msg *);
	/* The thread ends: free the protocol's state, or NULL. */
	void (*done)(void);
};
extern const struct upstream_proto upstream_rtm;
extern const struct upstream_proto upstream_socket;

/* What a protocol calls back into the manager. */
void upstream_tell(struct upstream *, struct mailbox_msg *);
void upstream_live(struct upstream_conn *);
void upstream_pong(struct upstream_conn *);
void upstream_event(
    struct upstream_conn *, const struct jscan *, const char *, size_t);
void upstream_dropped(struct upstream_conn *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
void upstream_conn_lost(struct upstream_conn *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
void upstream_conn_retire(struct upstream_conn *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
int upstream_conn_write(struct upstream_conn *, const char *, size_t);
struct upstream_conn *upstream_conn_live(struct upstream *, uint64_t);
void upstream_fatal(struct upstream *, const char *);
void upstream_rate_limited(struct upstream *);

/* frame.c: what one RTM frame from Slack means (pure; fuzzed). */
enum frame_action {
	FRAME_DROP,      /* not one JSON object: why says what is wrong */
	FRAME_HELLO,     /* the hello a new session waits for */
	FRAME_NOT_HELLO, /* something else came first */
	FRAME_PONG,      /* the answer to the outstanding ping */
	FRAME_STALE,     /* an answer to an older ping */
	FRAME_REPLY,     /* Slack's reply to a client's request */
	FRAME_EVENT,     /* an event for the clients */
	FRAME_LAST,      /* an event after which Slack closes: reconnect */
};
struct frame {
	enum frame_action action;
	size_t len;
	const char *why;
	struct jscan js;
};
void frame_classify(char *, size_t, int, int64_t, struct frame *);
#define FRAME_WS_HEAD 14 /* a client frame's header at most: 2 + 8 + mask */
size_t frame_ws_client(
    unsigned char *, const char *, size_t, const unsigned char[4]);

/* overlap.c: make-before-break, which copy of an event goes out (pure). */
#define OVERLAP_MAX   5000 /* ms two sessions overlap at most */
#define OVERLAP_QUIET 500  /* ms old is silent while new has events: switch */
enum overlap_mode {
	OVERLAP_BOTH,     /* both open: forward old, hold new */
	OVERLAP_SWITCHED, /* old closing: drop new's repeats of old's */
	OVERLAP_NEW_GONE, /* new died first: drop old's repeats of new's */
	OVERLAP_DONE,
};
enum overlap_verdict {
	OVERLAP_FORWARD,
	OVERLAP_HOLD,
	OVERLAP_DROP,
	OVERLAP_FORWARD_SWITCH, /* forward it, then switch */
	OVERLAP_DROP_SWITCH,    /* drop it, then switch */
};
struct overlap {
	enum overlap_mode mode;
	struct map *forwarded; /* hashes of what old forwarded */
	struct map *held;      /* hashes of what new holds */
	size_t nheld;
	int64_t started;  /* ms */
	int64_t old_last; /* ms, old's last event */
};
uint64_t overlap_hash(const char *, size_t);
void overlap_init(struct overlap *, int64_t);
void overlap_free(struct overlap *);
enum overlap_verdict overlap_old(struct overlap *, uint64_t, int64_t);
enum overlap_verdict overlap_new(struct overlap *, uint64_t, int64_t);
int overlap_release(const struct overlap *, uint64_t);
void overlap_switched(struct overlap *);
void overlap_new_gone(struct overlap *, int64_t);
int64_t overlap_due(const struct overlap *, int64_t);

/* webcall.c: Web API calls over HTTPS. */
struct webcall;
struct webcall_queue;
struct webcall_env {
	struct lws_context *ctx;
	struct webapi_url *api;           /* where: api_url, parsed */
	struct upstream_params *const *p; /* the tokens, connect_timeout */
};
typedef void (*webcall_cb)(struct webcall *, void *);
struct webcall *webcall_new(
    const char *, const char *, const char *, size_t, webcall_cb, void *);
void webcall_use_app_token(struct webcall *);
void webcall_free(struct webcall *);
int webcall_start(struct webcall_env *, struct webcall *);
uint64_t webcall_id(const struct webcall *);
int webcall_status(const struct webcall *);
int64_t webcall_retry_after(const struct webcall *);
const char *webcall_body(const struct webcall *, size_t *);
char *webcall_take_body(struct webcall *, size_t *);
const char *webcall_error(const struct webcall *);
struct webcall_queue *webcall_q_new(struct webcall_env *, webcall_cb, void *);
void webcall_q_add(struct webcall_queue *, struct webcall *, uint64_t);
struct webcall *webcall_q_pop(struct webcall_queue *);
void webcall_q_free(struct webcall_queue *);
extern const struct lws_protocols webcall_protocol;

/* webcall.c, for doctor.c: the scopes granted (X-OAuth-Scopes), or NULL. */
const char *webcall_scopes(const struct webcall *);

/* lwslog.c: libwebsockets' log lines, into ours. */
void lwslog_emit(int, const char *);
const char *lwslog_last(void);
void lwslog_clear(void);

#endif
