/*
 * slackd: one persistent Slack connection, shared over a Unix socket.
 *
 * The main thread's header, a block per file that owns it (as tmux.h).
 * Two threads (doc/design.md):
 *
 *   main      libevent: listener, clients, fan-out, outbox, signals
 *   upstream  libwebsockets: rtm.connect, the RTM WebSocket, pings, backoff
 *
 * They share nothing but two mailboxes (mailbox.c, declared here because
 * both sides use it); every message owns its bytes.  The upstream side's
 * own header is upstream.h; the pure pieces both sides use (util, log,
 * config, jscan, webapi, …) are declared here.
 */
#ifndef SLACKD_H
#define SLACKD_H

#include <sys/types.h>
#include <sys/queue.h>

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

struct event_base;
struct bufferevent;
struct json_object;

/* Exit statuses (documented in slackd(8)). */
#define SLACKD_EXIT_OK      0
#define SLACKD_EXIT_FAILURE 1  /* runtime failure: socket in use, bind, … */
#define SLACKD_EXIT_USAGE   64 /* EX_USAGE: bad command line */
#define SLACKD_EXIT_CONFIG  78 /* EX_CONFIG: bad config, no token, auth */

/* glibc's sys/queue.h lacks the _SAFE iterators. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                             \
	for ((var) = TAILQ_FIRST((head));                                      \
	     (var) && ((tvar) = TAILQ_NEXT((var), field), 1); (var) = (tvar))
#endif

#ifndef nitems
#define nitems(a) (sizeof(a) / sizeof((a)[0]))
#endif

/* util.c */
void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
int xasprintf(char **, const char *, ...) __attribute__((format(printf, 2, 3)));
void *xmemdup(const void *, size_t);
int64_t util_now_ms(void);
int64_t util_now_us(void);
double util_wall(void);
void util_wipe(void *, size_t);
uint64_t util_random64(void);

/* log.c */
#define LOG_LEVEL_ERR     0
#define LOG_LEVEL_WARNING 1
#define LOG_LEVEL_INFO    2
#define LOG_LEVEL_DEBUG   3
void log_init(int, int);
void log_set_level(int);
void log_set_secret(const char *);
void log_set_secret2(const char *);
void log_scrub(char *, size_t);
void log_errx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void fatal(const char *, ...)
    __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void fatalx(const char *, ...)
    __attribute__((format(printf, 1, 2)));
int log_level_parse(const char *);

/* config.c */
struct config_ids {
	size_t n;
	unsigned *ids;
};
struct config {
	char *socket_path;
	unsigned socket_mode;
	char *socket_group; /* name or number, NULL: the daemon's group */
	long socket_gid;    /* resolved, -1 if none */
	char *allow_users;  /* names or numbers, NULL: no user check */
	char *allow_groups;
	struct config_ids allowed_uids; /* resolved */
	struct config_ids allowed_gids;
	char *api_url;
	char *ca_file;
	char *token_file;
	char *upstream;       /* auto, rtm or socket */
	char *app_token_file; /* Socket Mode's xapp- token */
	int connections;      /* Socket Mode connections held */
	int64_t ack_wait;     /* for a client's slackd.ack */
	int log_level;

	int64_t ping_interval; /* all durations in milliseconds */
	int64_t pong_timeout;
	int64_t hello_timeout;
	int64_t connect_timeout;
	int64_t reconnect_min;
	int64_t reconnect_max;
	int64_t reconnect_reset;
	int rtm_connect_burst;
	int64_t rtm_connect_interval;

	int queue_max;
	int64_t queue_timeout;
	int64_t ack_timeout;
	double send_rate;
	int send_burst;

	size_t max_line;
	size_t max_event;
	size_t client_buffer_limit;
	size_t client_buffer_soft;
	int64_t client_buffer_soft_time;

	int team_state;        /* load names at connect */
	char *state_dir;       /* names.json; NULL: nowhere */
	int64_t names_max_age; /* a saved cache older than this is reloaded */
	char *api_allow;       /* methods slackd.api may call */

	size_t replay_bytes; /* the replay ring (replay.c), 0: none */
	int64_t replay_age;

	char *backfill;          /* off, seen or all (backfill.c) */
	char *backfill_channels; /* names or IDs, NULL: none */
	int64_t backfill_window;
	int backfill_max;
	int64_t drain_timeout; /* SIGTERM: for queued messages */

	char *nats_url; /* NULL: no NATS at all */
	char *nats_creds_file;
	char *nats_nkey_file;
	char *nats_user;
	char *nats_password_file;
	char *nats_ca_file;
	char *nats_prefix; /* NULL: slack.<team_id> */
	char *nats_stream; /* NULL: SLACK_<team_id> */
	int64_t nats_max_age;
	size_t nats_max_bytes;
	size_t nats_backlog; /* unacknowledged events kept, bytes */
	int nats_ha;         /* one leader among several slackd */
	int64_t ha_lease;    /* ms: the leader's lease */
};
enum config_type {
	CONFIG_STRING,
	CONFIG_GROUP,  /* a group name or number, resolved to a gid (long) */
	CONFIG_USERS,  /* user names or numbers, resolved to config_ids */
	CONFIG_GROUPS, /* group names or numbers, resolved to config_ids */
	CONFIG_MODE,
	CONFIG_DURATION, /* int64_t milliseconds */
	CONFIG_SIZE,     /* size_t bytes */
	CONFIG_INT,
	CONFIG_RATE, /* double */
	CONFIG_LOGLEVEL,
	CONFIG_BOOL,
};
#define CONFIG_RESTART   0x1 /* a reload does not apply it: warn */
#define CONFIG_SOCKET    0x2 /* makes the socket; unused if systemd passes one */
#define CONFIG_RECONNECT 0x4 /* a change reconnects to Slack */
struct config_option {
	const char *name;
	enum config_type type;
	size_t offset;          /* of the value in struct config */
	size_t resolved;        /* GROUP, USERS, GROUPS: of the ids */
	const char *def_string; /* default of a string, or NULL */
	double def;             /* default of a number (ms, bytes) */
	double min;
	double max;
	int flags;
	const char *hint;           /* what a value looks like, for errors */
	const char *const *choices; /* STRING: the only values, NULL-ended */
};
extern const struct config_option config_options[]; /* ends with NULL name */
void config_init(struct config *);
void config_free(struct config *);
struct config *config_dup(const struct config *);
const struct config_option *config_find(const char *);
int config_differs(
    const struct config *, const struct config *, const struct config_option *);
int config_changed(const struct config *, const struct config *, int);
int config_parse(struct config *, const char *, const char *, size_t, char **);
int config_load(struct config *, const char *, int, char **);
int config_check(const struct config *, char **);
int config_allowed(const struct config *, uid_t, const gid_t *, size_t);
int config_api_allowed(const struct config *, const char *);
int config_parse_duration(const char *, int64_t *);
int config_parse_size(const char *, size_t *);
int config_nats_subject_ok(const char *);

/* token.c */
#define TOKEN_ENV      "SLACK_API_TOKEN" /* also the source's name */
#define TOKEN_APP_ENV  "SLACK_APP_TOKEN"
#define TOKEN_APP_CRED "slack-app-token"
char *token_load(const struct config *, const char **, char **);
char *token_app_load(const struct config *, const char **, char **);
int token_env_only(const struct config *, int);
char *token_secret_dup(const char *);
char *token_read_secret(const char *, const char *, size_t, char **);
void token_secret_free(char *);

/* jscan.c: one pass over an upstream frame, without building objects. */
#define JSCAN_FIELD    64
#define JSCAN_TS       32 /* a Slack ts ("1700000000.000100") and room */
#define JSCAN_TOO_DEEP "nested too deeply"
struct jscan {
	char type[JSCAN_FIELD];    /* top-level "type", "" if none */
	char channel[JSCAN_FIELD]; /* top-level "channel" if a string */
	char ts[JSCAN_TS];         /* top-level "ts" if a string that fits */
	char thread_ts[JSCAN_TS];  /* top-level "thread_ts", the same way */
	int backfilled;            /* a top-level "slackd_backfill" member */
	int has_reply_to;
	int64_t reply_to;
	int has_ok;
	int ok;
	int spaces; /* whitespace outside strings: jscan_compact() */
	size_t error_at;
	const char *error;
};
int jscan_object(const char *, size_t, int, struct jscan *);
#define JSCAN_TOP (-1) /* the top-level object, for jscan_members() */
struct jscan_want {
	const char *name; /* a member's name */
	int in;           /* of the top-level object, or of want[in]'s value */
	const char *at;   /* out: its value, NULL if none; len bytes */
	size_t len;
};
int jscan_members(const char *, size_t, int, struct jscan_want *, size_t, int,
    struct jscan *);
size_t jscan_compact(char *, size_t);

/* seen.c: ids seen in a sliding window (pure). */
#define SEEN_KEY_MAX 70 /* bytes of an id remembered at most */
struct seen;
struct seen *seen_new(size_t, int64_t);
void seen_free(struct seen *);
size_t seen_count(const struct seen *);
int seen_check(struct seen *, const char *, size_t, int64_t);

/* backoff.c */
struct backoff {
	int64_t min;
	int64_t max;
	unsigned failures;
	uint64_t rng;
};
void backoff_init(struct backoff *, int64_t, int64_t, uint64_t);
int64_t backoff_next(struct backoff *);
void backoff_reset(struct backoff *);
int64_t backoff_ceiling(const struct backoff *);

/*
 * replay.c: the replay ring and cursors (pure).  A cursor is
 * "<run>:<n>"; an event on the ring is what the hub numbered.
 */
#define REPLAY_RUN_LEN     8         /* characters of a run id */
#define REPLAY_CURSOR_MAX  32        /* "<run>:<n>" and its NUL */
#define REPLAY_PREFIX_MAX  48        /* {"slackd_seq":"<run>:<n>", */
#define REPLAY_GAP_EXPIRED "expired" /* older than the ring holds */
#define REPLAY_GAP_RESTART "restart" /* from another run of slackd */
struct replay_event {
	uint64_t seq;
	int64_t mono;     /* util_now_ms() when numbered: for the age limit */
	double wall;      /* util_wall() then: for slackd.gap */
	const char *type; /* "" if none */
	const char *channel; /* "" if none */
	const char *line;    /* Slack's bytes, "\n" included, no seq */
	size_t len;
	void *chunk; /* the ring's: where its copy is */
};
struct replay_gap {
	const char *reason; /* REPLAY_GAP_*, NULL: no gap */
	int64_t missed;     /* events missed, -1 if unknown */
	uint64_t first;     /* this run's first and last missed, 0 if none */
	uint64_t last;
	double to; /* when the last missed one arrived, 0 if unknown */
};
struct replay;
struct replay *replay_new(void);
void replay_free(struct replay *);
void replay_limits(struct replay *, size_t, int64_t);
void replay_expire(struct replay *, int64_t);
void replay_add(struct replay *, const struct replay_event *, int64_t);
uint64_t replay_oldest(const struct replay *);
uint64_t replay_newest(const struct replay *);
size_t replay_count(const struct replay *);
size_t replay_bytes(const struct replay *);
const struct replay_event *replay_get(const struct replay *, uint64_t);
int replay_walk(const struct replay *, uint64_t,
    int (*)(const struct replay_event *, void *), void *);
void replay_run_new(char *, uint64_t);
int replay_cursor_parse(const char *, char *, uint64_t *);
const char *replay_cursor(char *, const char *, uint64_t);
size_t replay_prefix(char *, const char *, uint64_t, const char *);
int replay_plan(const struct replay *, const char *, uint64_t, const char *,
    uint64_t, uint64_t *, struct replay_gap *);

/* map.c: strings to pointers. */
struct map;
struct map *map_new(void);
void map_free(struct map *, void (*)(void *));
size_t map_count(const struct map *);
void *map_get(const struct map *, const char *);
void *map_put(struct map *, const char *, void *);
void *map_del(struct map *, const char *);
void map_foreach(struct map *, int (*)(const char *, void *, void *), void *);

/* ratelimit.c */
struct ratelimit_bucket {
	double tokens;
	int64_t stamp;
};
int ratelimit_bucket_take(
    struct ratelimit_bucket *, double, double, int64_t, int64_t *);
int ratelimit_bucket_ready(
    struct ratelimit_bucket *, double, double, int64_t, int64_t *);
void ratelimit_bucket_charge(
    struct ratelimit_bucket *, double, double, int64_t);
struct ratelimit;
struct ratelimit *ratelimit_new(double, double);
void ratelimit_free(struct ratelimit *);
void ratelimit_set(struct ratelimit *, double, double);
int ratelimit_take(struct ratelimit *, const char *, int64_t, int64_t *);
size_t ratelimit_size(const struct ratelimit *);

/* webapi.c: pure parsers for what the Web API and URLs give us. */
struct webapi_url {
	int tls;
	char *host;
	int port;
	char *path; /* always starts with '/' */
};
int webapi_parse_url(const char *, int, struct webapi_url *, char **);
void webapi_url_free(struct webapi_url *);
int webapi_is_loopback(const char *);
struct webapi_connect {
	int ok;
	char *error; /* Slack's "error" when !ok */
	char *url;
	char *team;      /* compact JSON object */
	char *self;      /* compact JSON object */
	char *team_name; /* for logs and STATUS= */
	char *self_name;
};
int webapi_parse_connect(
    const char *, size_t, struct webapi_connect *, char **);
void webapi_connect_free(struct webapi_connect *);
int webapi_permanent_error(const char *);
const char *webapi_error_advice(const char *);
int webapi_retry_after(const char *, int64_t *);
void webapi_form_add(char **, size_t *, const char *, const char *);

/*
 * mailbox.c: the two queues between the threads.  One named payload per
 * message type, as in imsg: the type says which member of u is set; data
 * and len are the bytes a message carries (counted for backpressure).
 */
struct upstream_params;
enum mailbox_type {
	/* upstream -> main */
	MAILBOX_STATE,        /* u.state; data = {"team":…,"self":…} */
	MAILBOX_EVENT,        /* u.event; data = frame + "\n" */
	MAILBOX_REPLY,        /* u.frame.id; data = Slack's reply */
	MAILBOX_WRITTEN,      /* u.frame: written to the wire in session */
	MAILBOX_RETURNED,     /* u.frame.id: not written, connection gone */
	MAILBOX_SESSION_DOWN, /* u.down: session ended; unacked ids lost */
	MAILBOX_PONG,         /* u.pong */
	MAILBOX_DROPPED,      /* u.dropped: an unusable frame from Slack */
	MAILBOX_FATAL,        /* u.fatal: permanent error */
	MAILBOX_STOPPED,      /* upstream thread is about to exit */
	MAILBOX_PROBE_ACK,    /* answer to MAILBOX_PROBE */
	MAILBOX_API_RESULT,   /* u.result; data = body */
	MAILBOX_ENVELOPE,     /* u.ack: waits for a client's slackd.ack */
	MAILBOX_CONNS,        /* data = JSON array: Socket Mode connections */
	/* main -> upstream */
	MAILBOX_SEND, /* u.frame.id; data = frame */
	MAILBOX_STOP,
	MAILBOX_PROBE,    /* are you alive? (watchdog) */
	MAILBOX_CONFIG,   /* u.config: new settings (owned) */
	MAILBOX_WEDGE,    /* test hook: hang the upstream thread */
	MAILBOX_LEAD,     /* u.lead: nats_ha, connect to Slack or stand by */
	MAILBOX_API_CALL, /* u.call; data = body */
	MAILBOX_ACK,      /* u.ack; data = the response payload, or NULL */
};
enum upstream_state {
	UPSTREAM_CONNECTING,
	UPSTREAM_CONNECTED,
	UPSTREAM_RECONNECTING,
	UPSTREAM_FAILED,
	UPSTREAM_STOPPING,
};
struct mailbox_state {
	enum upstream_state state;
	uint64_t session;
	int64_t retry_in; /* ms, when reconnecting */
	char *reason;     /* or NULL */
};
struct mailbox_event {
	uint64_t session;
	char type[JSCAN_FIELD];    /* Slack's "type", "" if none */
	char channel[JSCAN_FIELD]; /* top-level "channel", "" if none */
	char ts[JSCAN_TS];         /* top-level "ts", "" if none */
	char thread_ts[JSCAN_TS];  /* top-level "thread_ts", "" if none */
	int backfilled;            /* has "slackd_backfill" (jscan.c) */
};
struct mailbox_frame {
	int64_t id; /* the upstream id of a client's request */
	uint64_t session;
};
struct mailbox_down {
	uint64_t session;
	char *reason;
};
struct mailbox_pong {
	int64_t rtt_us;
};
struct mailbox_dropped {
	char *why;
};
struct mailbox_fatal {
	char *error; /* Slack's error code, e.g. invalid_auth */
};
struct mailbox_call {
	uint64_t call; /* api.c's id */
	char *method;
	int json; /* data is JSON, else form-encoded */
};
struct mailbox_result {
	uint64_t call;
	int http_status;
	char *error; /* no usable answer: why; else data is the body */
};
struct mailbox_config {
	struct upstream_params *params;
};
struct mailbox_ack {
	char envelope_id[JSCAN_FIELD]; /* Socket Mode's envelope */
};
struct mailbox_lead {
	int lead; /* 1: lead (connect to Slack); 0: stand by */
};
struct mailbox_msg {
	STAILQ_ENTRY(mailbox_msg) entry;
	enum mailbox_type type;
	char *data; /* the bytes it carries, or NULL */
	size_t len;
	union {
		struct mailbox_state state;
		struct mailbox_event event;
		struct mailbox_frame frame;
		struct mailbox_down down;
		struct mailbox_pong pong;
		struct mailbox_dropped dropped;
		struct mailbox_fatal fatal;
		struct mailbox_call call;
		struct mailbox_result result;
		struct mailbox_config config;
		struct mailbox_ack ack;
		struct mailbox_lead lead;
	} u;
	char inline_data[]; /* data, for mailbox_msg_new_data() */
};
STAILQ_HEAD(mailbox_list, mailbox_msg);
struct mailbox {
	pthread_mutex_t lock;
	struct mailbox_list queue;
	void (*wake)(void *); /* it was empty: wake the reader */
	void *wake_arg;
	size_t bytes; /* payload bytes waiting */
	size_t limit; /* above this the writer should hold back */
	int full;
	void (*unfull)(void *); /* it was full and was emptied */
	void *unfull_arg;
};
void mailbox_init(struct mailbox *, void (*)(void *), void *);
void mailbox_set_limit(struct mailbox *, size_t, void (*)(void *), void *);
int mailbox_full(struct mailbox *);
void mailbox_destroy(struct mailbox *);
struct mailbox_msg *mailbox_msg_new(enum mailbox_type);
struct mailbox_msg *mailbox_msg_new_data(enum mailbox_type, size_t);
char *mailbox_msg_text(const struct mailbox_msg *);
void mailbox_msg_drop_data(struct mailbox_msg *);
void mailbox_msg_free(struct mailbox_msg *);
int mailbox_post(struct mailbox *, struct mailbox_msg *);
int mailbox_post_list(struct mailbox *, struct mailbox_list *, size_t);
void mailbox_take(struct mailbox *, struct mailbox_list *);

/* doctor.c: slackd --doctor, the online self-check. */
#define SLACKD_EXIT_UNAVAILABLE 69 /* EX_UNAVAILABLE: Slack unreachable */
int doctor_run(const struct config *, const char *, int);

/* listener.c */
int listener_open(const char *, unsigned, long, char **);
int listener_adopt(char **);
void listener_start(struct event_base *, int);
void listener_stop(void);
void listener_unlink(void);

/* client.c: local client sessions; struct client is private to it. */
struct client;
void client_accept(int, uid_t, gid_t, pid_t);
void client_send(struct client *, const char *, size_t);
void client_send_json(struct client *, struct json_object *);
void client_error(struct client *, struct json_object *, int, const char *, ...)
    __attribute__((format(printf, 4, 5)));
void client_flush_all(void);
void client_reconfigure(void);
void client_free_all(void);
u_int client_count(void);
void client_refused(void);
struct client_stats {
	uint64_t total;   /* accepted since start */
	uint64_t dropped; /* as too slow */
	uint64_t refused; /* by allow_users / allow_groups */
};
void client_stats(struct client_stats *);
struct client *client_first(void);
struct client *client_next(struct client *);
size_t client_output(struct client *);
#define CLIENT_MODE_FILTERED 0x1 /* by type or channel */
#define CLIENT_MODE_SEQ      0x2 /* wants "slackd_seq" on events */
#define CLIENT_MODE_CATCHUP  0x4 /* replaying from the ring: not live yet */
int client_mode(const struct client *);
int client_wants(const struct client *, const char *, const char *);
int client_room(struct client *, size_t, int64_t);
int client_queue(struct client *, const char *, size_t);
int client_queue_ref(struct client *, const char *, size_t,
    void (*)(const void *, size_t, void *), void *);
/* A client without a socket (NATS requests): lines go to a function. */
struct client *client_virtual(void (*)(void *, const char *, size_t), void *);
void client_virtual_request(struct client *, const char *, size_t);
void client_virtual_free(struct client *);

/*
 * request.c: parsing and checking one request line.  A new request type is
 * a kind here, a row in request.c's request_types (its name and parser)
 * and one in client.c's client_handlers (what the daemon does with it).
 */
enum request_kind {
	REQUEST_MESSAGE,
	REQUEST_TYPING,
	REQUEST_PING,
	REQUEST_SUBSCRIBE,
	REQUEST_STATUS,
	REQUEST_DEBUG,
	REQUEST_POST,
	REQUEST_API,
	REQUEST_NAMES,
	REQUEST_ACK,
	REQUEST_NKINDS /* not a kind: how many there are */
};
struct request {
	enum request_kind kind;
	struct json_object *obj; /* the whole parsed line (owned) */
	struct json_object *id;  /* borrowed from obj, NULL if none */
	const char *channel;
	const char *text;
	const char *thread_ts;
	int reply_broadcast;
	int queued_notice;            /* message, post: 1 = say when queued */
	struct json_object *types;    /* subscribe: array or NULL */
	struct json_object *channels; /* subscribe: array or NULL */
	struct json_object *blocks;   /* post */
	struct json_object *attachments;
	int unfurl_links; /* post: -1 not given */
	int unfurl_media;
	const char *method; /* api */
	struct json_object *params;
	int users;                   /* names: users, else channels */
	int seq;                     /* subscribe: "seq":true (or "since") */
	const char *since;           /* subscribe: a checked cursor, or NULL */
	const char *envelope_id;     /* ack */
	struct json_object *payload; /* ack: object or NULL */
};
struct request_error {
	int code;
	char msg[256];
	struct json_object *id; /* borrowed, when the line had one */
};
int request_parse(
    const char *, size_t, struct request *, struct request_error *);
void request_free(struct request *);
char *request_frame(const struct request *, const char *, int64_t, size_t *);
char *request_post_body(const struct request *, const char *, size_t *);
char *request_api_body(const struct request *, size_t *);
int request_check_target(const char *, char *, size_t);

/*
 * hub.c: fan-out of events and daemon messages.  Every event forwarded is
 * numbered (an index, 1, 2, … in this process, shown as a cursor
 * "<run>:<n>") and kept on the replay ring.
 */
struct hub_event {
	const char *type;      /* "" if none */
	const char *channel;   /* "" if none */
	const char *ts;        /* top-level "ts", "" if none */
	const char *thread_ts; /* top-level "thread_ts", "" if none */
	const char *line;      /* Slack's bytes, "\n" included */
	size_t len;
	const char *run; /* its cursor: "<run>:<seq>" */
	uint64_t seq;
	int backfilled; /* has a top-level "slackd_backfill" */
};
typedef void (*hub_consumer)(const struct hub_event *);
void hub_consume(hub_consumer);
void hub_unconsume(hub_consumer);
void hub_events(struct mailbox_msg **, size_t);
uint64_t hub_inject(const char *, size_t, const char *, const char *);
uint64_t hub_inject_as(const char *, size_t, const char *, const char *,
    const char *, uint64_t);
uint64_t hub_received(void);
uint64_t hub_seq(void);
const char *hub_run(void);
void hub_run_new(void);
const char *hub_cursor(char *);
const char *hub_label(char *, uint64_t);
size_t hub_prefix(char *, uint64_t, const char *);
int hub_plan(const char *, uint64_t, uint64_t *, struct replay_gap *);
struct json_object *hub_hole(uint64_t);
struct replay *hub_replay(void);
void hub_free(void);
void hub_broadcast_json(struct json_object *);

/* outbox.c: outbound requests, rate limits, id mapping. */
void outbox_init(const struct config *);
void outbox_reconfigure(const struct config *);
void outbox_submit(struct client *, const struct request *);
void outbox_connected(void);
void outbox_lead(int);
void outbox_names_ready(void);
void outbox_written(int64_t, uint64_t);
void outbox_returned(int64_t);
void outbox_reply(int64_t, const char *, size_t);
void outbox_session_down(uint64_t, const char *);
void outbox_detach(struct client *);
int outbox_drain(int64_t, void (*)(void));
void outbox_shutdown(void);
struct outbox_stats {
	u_int queued;    /* waiting to be sent */
	u_int inflight;  /* sent, waiting for the answer */
	uint64_t sent;   /* messages and posts Slack took */
	uint64_t failed; /* messages and posts that failed */
};
void outbox_stats(struct outbox_stats *);

/*
 * status.c: the daemon's view of upstream, and the JSON that shows it
 * with the counters of the modules that own them (client_stats(),
 * hub_received(), outbox_stats()).
 */
struct status {
	enum upstream_state state;
	uint64_t session;
	char *reason;
	int64_t retry_at; /* monotonic ms, when reconnecting */
	char *team;       /* JSON, from rtm.connect */
	char *self;
	char *team_name;
	char *self_name;
	char *team_id;
	int loading;            /* names (team_state = yes) */
	double connected_since; /* wall clock */
	uint64_t reconnects;
	int64_t rtt_us;
	uint64_t events_dropped;
	char *last_dropped; /* why, for status */
	double last_dropped_at;
	double started;
	int socket_mode; /* the upstream is Socket Mode, not RTM */
	char *conns;     /* Socket Mode: {"app_id":…,"connections":[…]} */
	uint64_t app_rate_limited; /* Socket Mode: app_rate_limited events */
};
extern struct status status_now;
void status_init(void);
void status_update(struct mailbox_msg *);
struct json_object *status_hello(void);
struct json_object *status_state(void);
struct json_object *status_full(void);
void status_free(void);

/* envelope.c: Socket Mode envelopes waiting for a client's slackd.ack. */
void envelope_arrived(const char *);
void envelope_answer(struct client *, struct request *);
void envelope_shutdown(void);

/* api.c: Web API calls from the main thread. */
struct api_result {
	int ok;                  /* Slack's "ok" */
	const char *slack_error; /* Slack's "error" when not ok */
	const char *error;       /* no usable answer: why */
	int status;              /* HTTP status */
	struct json_object *obj; /* the whole answer (borrowed) */
};
typedef void (*api_cb)(void *, const struct api_result *);
uint64_t api_call(const char *, const char *, size_t, int, api_cb, void *);
void api_forget(uint64_t);
void api_result(struct mailbox_msg *);
void api_shutdown(void);

/* names.c: the names cache (conversations and users). */
/* cb(arg, id, 0, NULL) or cb(arg, NULL, PROTOCOL_E_..., why) */
typedef void (*names_cb)(void *, const char *, int, const char *);
struct names_wait;
void names_init(void);
void names_shutdown(void);
struct names_wait *names_resolve(const char *, names_cb, void *);
void names_cancel(struct names_wait *);
int names_preload(void);
int names_busy(void);
struct json_object *names_list_json(int);
int names_list_state(int, const char **);
void names_team_is(const char *);
void names_save_now(void);

/* backfill.c: recover the messages of a gap in the connection. */
void backfill_init(void);
void backfill_state(enum upstream_state, const char *);
void backfill_takeover(double);
int backfill_had(const struct mailbox_event *);
void backfill_shutdown(void);

/* backfill_plan.c: backfill's decisions (pure). */
#define BACKFILL_PLAN_OFF    0
#define BACKFILL_PLAN_SEEN   1
#define BACKFILL_PLAN_ALL    2
#define BACKFILL_PLAN_PAGE   200 /* messages asked for per page */
#define BACKFILL_PLAN_NEXT   0
#define BACKFILL_PLAN_DONE   1
#define BACKFILL_PLAN_CAPPED 2
int backfill_plan_ts_cmp(const char *, const char *);
int backfill_plan_ts_valid(const char *);
void backfill_plan_wall_ts(double, char *, size_t);
void backfill_plan_from(char *, size_t, const char *);
int backfill_plan_mode(const char *);
int backfill_plan_pick(int, double, double, int64_t, int);
u_int backfill_plan_limit(u_int, u_int);
int backfill_plan_after(u_int, u_int, int);
struct backfill_plan_seen;
struct backfill_plan_seen *backfill_plan_seen_new(size_t);
void backfill_plan_seen_free(struct backfill_plan_seen *);
void backfill_plan_seen_add(
    struct backfill_plan_seen *, const char *, const char *);
int backfill_plan_seen_has(
    const struct backfill_plan_seen *, const char *, const char *);
size_t backfill_plan_seen_count(const struct backfill_plan_seen *);
void backfill_plan_seen_clear(struct backfill_plan_seen *);

/* notify.c: sd_notify(3), the watchdog. */
void notify_init(struct event_base *);
void notify_free(void);
void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
void notify_state(void);
void notify_probe_back(void);

/* nats.c: events to JetStream, requests over NATS (nats_url). */
int nats_check(const struct config *, char **);
void nats_init(void);
void nats_team(const char *);
struct json_object *nats_status(void);
int nats_standby(void);
const char *nats_leader(void);
int nats_forward(struct client *, const struct request *, const char *, size_t);
void nats_detach(struct client *);
void nats_shutdown(void);

/* slackd.c */
extern struct event_base *slackd_base;
extern struct config *slackd_conf;
extern int slackd_stopping;
extern int slackd_test_hooks;
extern int slackd_test_break_first;
#define SLACKD_READY_TRYING (-1) /* slackd_ready_report: Slack not reached */
void slackd_ready_report(int, const char *);
void slackd_clients_gone(void);
int slackd_upstream_running(void);
void slackd_to_upstream(struct mailbox_msg *);
void slackd_names_loaded(void);

#endif
