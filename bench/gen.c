/*
 * bench/gen: a fast fake Slack for the benchmarks (make bench).
 *
 * Independent of libwebsockets: raw sockets and epoll, OpenSSL only for
 * the SHA-1 and base64 of the WebSocket handshake.  One port serves both
 *
 *   GET|POST /api/rtm.connect   -> {"ok":true,"url":"ws://127.0.0.1:P/rtm",…}
 *   POST /api/apps.connections.open -> {"ok":true,"url":"ws://…/sm"}
 *   GET|POST /api/auth.test     -> who we are (Socket Mode asks it first)
 *   GET /TAG + Upgrade          -> a WebSocket; TAG names the connection
 *                                  (slackd gets "rtm" or "sm", floors use
 *                                  others)
 *
 * and every WebSocket gets {"type":"hello"} first (a Socket Mode hello for
 * "sm").  On "sm" connections every event goes out inside an events_api
 * envelope with its own envelope_id and event_id (counted across jobs, so
 * that slackd's de-duplication never drops one), the event itself the same
 * bytes as on "rtm"; slackd's acks are counted.  App-level pings are
 * answered with pongs, {"id":N,"type":"message",…} at once with
 * {"ok":true,"reply_to":N,"ts":…}, WebSocket PINGs with PONGs.
 *
 * Commands, one per line on stdin; each gets one JSON line on stdout
 * (a job's line comes when it has finished):
 *
 *   burst TAG N SIZE        N events of SIZE bytes as fast as possible, to
 *                           every open WebSocket tagged TAG
 *   rate TAG R SECONDS SIZE a steady R events/s for SECONDS
 *   stat                    connections and counters
 *   quit
 *
 * Events are {"type":"message","channel":"C1","seq":S,"t":NS,"text":"xx…"}
 * padded to SIZE bytes; seq counts from 1 in each job, t is CLOCK_MONOTONIC
 * in ns when the event was put into the socket's write buffer.
 *
 *   gen --sink ws://127.0.0.1:P/TAG N   a null consumer: does the handshake,
 *                           counts N frames after hello without looking at
 *                           them, prints their timing (the ceiling check)
 */
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bench.h"

#define WS_GUID     "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define FILL_TARGET (256 * 1024) /* bytes of events per write */
#define READ_CHUNK  (64 * 1024)
#define MAX_IN      (4 * 1024 * 1024)
#define MAX_SIZE    (1024 * 1024)
#define TAG_MAX     32

#define EV_PRE "{\"type\":\"message\",\"channel\":\"C1\",\"seq\":"
#define EV_MID ",\"t\":"
#define EV_TXT ",\"text\":\""
#define EV_END "\"}"
#define EV_FIXED                                                               \
	(sizeof EV_PRE - 1 + sizeof EV_MID - 1 + sizeof EV_TXT - 1 +           \
	    sizeof EV_END - 1)
#define SM_PRE "{\"envelope_id\":\"e"
#define SM_MID                                                                 \
	"\",\"type\":\"events_api\",\"accepts_response_payload\":false,"       \
	"\"retry_attempt\":0,\"retry_reason\":\"\",\"payload\":{\"type\":"     \
	"\"event_callback\",\"team_id\":\"T0\",\"event_id\":\"Ev"
#define SM_EV  "\",\"event\":"
#define SM_END "}}"
#define SM_ROOM                                                                \
	(sizeof SM_PRE + sizeof SM_MID + sizeof SM_EV + sizeof SM_END + 48)

enum kind { K_LISTEN, K_STDIN, K_CONN, K_TIMER };

struct handle {
	enum kind kind;
	struct conn *conn;
};

struct conn {
	struct handle h;  /* K_CONN */
	struct handle th; /* K_TIMER: the rate job's timerfd */
	struct conn *next;
	int fd;
	int tfd;
	unsigned id;
	int ws;
	int closing; /* close once out is written */
	int dead;
	int want_out;
	char tag[TAG_MAX];

	char *in;
	size_t inlen, incap;
	char *out;
	size_t olen, ooff, ocap;

	int in_job;
	uint64_t job_n, job_sent; /* events of the current job */
	size_t job_size;
	int job_rate; /* 0: burst */
	double rate;
	int64_t rate_t0;
	int64_t late_max, late_sum;
	int64_t t_done;

	uint64_t pings, wspings, msgs, other, acks, bytes_out;
	int sm; /* a Socket Mode connection: envelopes */
};

struct job {
	int active;
	int rate;
	int pending; /* connections still sending */
	int conns;
	uint64_t n;
	size_t size;
	double r, secs;
	char tag[TAG_MAX];
	int64_t t0, t1;
	uint64_t bytes0;
	int64_t late_max, late_sum;
};

static int ep;
static int lfd;
static unsigned short port;
static struct conn *conns;
static unsigned next_id;
static struct job job;
static uint64_t n_http, n_rtm_connect, n_ws_opened, n_ts, n_sm_open, n_env;
static char pad[MAX_SIZE];
static struct handle h_listen = { K_LISTEN, NULL };
static struct handle h_stdin = { K_STDIN, NULL };

static void
die(const char *what)
{
	fprintf(stderr, "gen: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n)) == NULL) {
		fprintf(stderr, "gen: out of memory\n");
		exit(1);
	}
	return p;
}

static int
u64toa(char *buf, uint64_t v)
{
	char tmp[24];
	int n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

static void
ep_set(struct conn *c)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN | (c->want_out ? EPOLLOUT : 0);
	ev.data.ptr = &c->h;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == -1)
		die("epoll_ctl");
}

/* Room for n more bytes at the end of c->out. */
static char *
out_room(struct conn *c, size_t n)
{
	if (c->ooff > 0 && c->ocap - c->olen < n) {
		memmove(c->out, c->out + c->ooff, c->olen - c->ooff);
		c->olen -= c->ooff;
		c->ooff = 0;
	}
	if (c->ocap - c->olen < n) {
		c->ocap = c->olen + n + FILL_TARGET;
		c->out = xrealloc(c->out, c->ocap);
	}
	return c->out + c->olen;
}

static void
out_add(struct conn *c, const void *p, size_t n)
{
	memcpy(out_room(c, n), p, n);
	c->olen += n;
}

/* A server frame: never masked. */
static void
ws_frame(struct conn *c, int opcode, const void *p, size_t n)
{
	unsigned char h[10];
	size_t hl;

	h[0] = (unsigned char)(0x80 | opcode);
	if (n < 126) {
		h[1] = (unsigned char)n;
		hl = 2;
	} else if (n < 65536) {
		h[1] = 126;
		h[2] = (unsigned char)(n >> 8);
		h[3] = (unsigned char)n;
		hl = 4;
	} else {
		int i;

		h[1] = 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
		hl = 10;
	}
	out_add(c, h, hl);
	out_add(c, p, n);
}

/* One event, header included, at p (room for size + 64). */
static size_t
ev_format(unsigned char *p, uint64_t seq, int64_t t, size_t size, int sm)
{
	char sb[24], tb[24], eb[24];
	int sl = u64toa(sb, seq), tl = u64toa(tb, (uint64_t)t), el = 0;
	size_t fixed = EV_FIXED + (size_t)sl + (size_t)tl, padn, plen, hl;
	size_t wrap = 0;
	unsigned char *q;

	if (sm) {
		el = u64toa(eb, ++n_env);
		wrap = sizeof SM_PRE - 1 + sizeof SM_MID - 1 + sizeof SM_EV -
		    1 + sizeof SM_END - 1 + 2 * (size_t)el;
	}
	padn = size > fixed ? size - fixed : 0;
	plen = fixed + padn + wrap;
	p[0] = 0x81;
	if (plen < 126) {
		p[1] = (unsigned char)plen;
		hl = 2;
	} else if (plen < 65536) {
		p[1] = 126;
		p[2] = (unsigned char)(plen >> 8);
		p[3] = (unsigned char)plen;
		hl = 4;
	} else {
		int i;

		p[1] = 127;
		for (i = 0; i < 8; i++)
			p[2 + i] =
			    (unsigned char)((uint64_t)plen >> (56 - 8 * i));
		hl = 10;
	}
	q = p + hl;
	if (sm) {
		memcpy(q, SM_PRE, sizeof SM_PRE - 1);
		q += sizeof SM_PRE - 1;
		memcpy(q, eb, (size_t)el);
		q += el;
		memcpy(q, SM_MID, sizeof SM_MID - 1);
		q += sizeof SM_MID - 1;
		memcpy(q, eb, (size_t)el);
		q += el;
		memcpy(q, SM_EV, sizeof SM_EV - 1);
		q += sizeof SM_EV - 1;
	}
	memcpy(q, EV_PRE, sizeof EV_PRE - 1);
	q += sizeof EV_PRE - 1;
	memcpy(q, sb, (size_t)sl);
	q += sl;
	memcpy(q, EV_MID, sizeof EV_MID - 1);
	q += sizeof EV_MID - 1;
	memcpy(q, tb, (size_t)tl);
	q += tl;
	memcpy(q, EV_TXT, sizeof EV_TXT - 1);
	q += sizeof EV_TXT - 1;
	memcpy(q, pad, padn);
	q += padn;
	memcpy(q, EV_END, sizeof EV_END - 1);
	q += sizeof EV_END - 1;
	if (sm) {
		memcpy(q, SM_END, sizeof SM_END - 1);
		q += sizeof SM_END - 1;
	}
	return (size_t)(q - p);
}

static void
add_event(struct conn *c, int64_t t)
{
	unsigned char *p =
	    (unsigned char *)out_room(c, c->job_size + 64 + SM_ROOM);

	c->olen += ev_format(p, ++c->job_sent, t, c->job_size, c->sm);
}

/* Burst: fill the output with up to FILL_TARGET bytes of events. */
static void
burst_fill(struct conn *c)
{
	int64_t t = bench_now_ns();

	while (c->job_sent < c->job_n && c->olen - c->ooff < FILL_TARGET)
		add_event(c, t);
}

static void conn_close(struct conn *);

static void
job_conn_done(struct conn *c)
{
	c->in_job = 0;
	c->t_done = bench_now_ns();
	if (c->t_done > job.t1)
		job.t1 = c->t_done;
	if (c->late_max > job.late_max)
		job.late_max = c->late_max;
	job.late_sum += c->late_sum;
	if (--job.pending > 0)
		return;
	job.active = 0;
	if (job.rate)
		printf("{\"cmd\":\"rate\",\"tag\":\"%s\",\"conns\":%d,"
		       "\"n\":%" PRIu64 ",\"size\":%zu,\"rate\":%g,"
		       "\"t0\":%" PRId64 ",\"t1\":%" PRId64 ","
		       "\"late_max_us\":%.1f,\"late_mean_us\":%.2f}\n",
		    job.tag, job.conns, job.n, job.size, job.r, job.t0, job.t1,
		    (double)job.late_max / 1e3,
		    job.n ? (double)job.late_sum / 1e3 /
		            (double)(job.n * (uint64_t)job.conns)
		          : 0.0);
	else
		printf("{\"cmd\":\"burst\",\"tag\":\"%s\",\"conns\":%d,"
		       "\"n\":%" PRIu64 ",\"size\":%zu,"
		       "\"t0\":%" PRId64 ",\"t1\":%" PRId64 "}\n",
		    job.tag, job.conns, job.n, job.size, job.t0, job.t1);
	fflush(stdout);
}

/* Write what we can; keep bursting while the socket takes it. */
static void
pump(struct conn *c)
{
	ssize_t n;

	for (;;) {
		if (c->ooff == c->olen) {
			c->ooff = c->olen = 0;
			if (c->in_job && !c->job_rate && c->job_sent < c->job_n)
				burst_fill(c);
			else
				break;
		}
		n = write(c->fd, c->out + c->ooff, c->olen - c->ooff);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				if (!c->want_out) {
					c->want_out = 1;
					ep_set(c);
				}
				return;
			}
			conn_close(c);
			return;
		}
		c->ooff += (size_t)n;
		c->bytes_out += (uint64_t)n;
	}
	if (c->want_out) {
		c->want_out = 0;
		ep_set(c);
	}
	if (c->in_job && c->job_sent == c->job_n)
		job_conn_done(c);
	if (c->closing)
		conn_close(c);
}

static void
conn_close(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	if (c->in_job)
		job_conn_done(c);
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->tfd >= 0) {
		close(c->tfd);
		c->tfd = -1;
	}
}

static void
reap(void)
{
	struct conn **pp = &conns, *c;

	while ((c = *pp) != NULL) {
		if (c->dead) {
			*pp = c->next;
			free(c->in);
			free(c->out);
			free(c);
		} else
			pp = &c->next;
	}
}

/* ---- the HTTP side ------------------------------------------------------ */

static void
http_reply(struct conn *c, const char *status, const char *body)
{
	char head[512];
	int n;

	n = snprintf(head, sizeof head,
	    "HTTP/1.1 %s\r\n"
	    "Content-Type: application/json; charset=utf-8\r\n"
	    "Content-Length: %zu\r\n"
	    "Connection: close\r\n\r\n",
	    status, strlen(body));
	out_add(c, head, (size_t)n);
	out_add(c, body, strlen(body));
	c->closing = 1;
}

static void
ws_accept(struct conn *c, const char *key, const char *proto, const char *path)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char buf[256], acc[64], head[512];
	const char *hello = "{\"type\":\"hello\"}";
	size_t i;
	int n;

	snprintf(buf, sizeof buf, "%s%s", key, WS_GUID);
	EVP_Digest(buf, strlen(buf), md, &mdlen, EVP_sha1(), NULL);
	EVP_EncodeBlock((unsigned char *)acc, md, (int)mdlen);
	n = snprintf(head, sizeof head,
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n",
	    acc);
	if (proto != NULL && *proto != '\0') {
		char first[64];

		snprintf(first, sizeof first, "%.*s", (int)strcspn(proto, ", "),
		    proto);
		n += snprintf(head + n, sizeof head - (size_t)n,
		    "Sec-WebSocket-Protocol: %s\r\n", first);
	}
	n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
	out_add(c, head, (size_t)n);
	while (*path == '/')
		path++;
	for (i = 0; i < TAG_MAX - 1 && path[i] != '\0' && path[i] != '?' &&
	     path[i] != '/';
	     i++)
		c->tag[i] = path[i];
	c->tag[i] = '\0';
	c->ws = 1;
	n_ws_opened++;
	if (strcmp(c->tag, "sm") == 0) {
		c->sm = 1;
		hello = "{\"type\":\"hello\",\"num_connections\":1,"
		        "\"connection_info\":{\"app_id\":\"A0BENCH\"},"
		        "\"debug_info\":{\"host\":\"applink-bench\","
		        "\"approximate_connection_time\":18060}}";
	}
	ws_frame(c, 1, hello, strlen(hello));
}

/* A complete request head is in c->in[0..end); returns bytes used or 0. */
static size_t
http_request(struct conn *c, size_t end)
{
	char *head = c->in, *line, *save, *p;
	char method[16] = "", path[256] = "", key[128] = "", proto[128] = "";
	int upgrade = 0;
	size_t clen = 0;

	head[end - 2] = '\0'; /* the blank line's \r\n */
	line = strtok_r(head, "\r\n", &save);
	if (line == NULL || sscanf(line, "%15s %255s", method, path) != 2) {
		http_reply(c, "400 Bad Request", "{\"ok\":false}");
		return end;
	}
	while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
		if ((p = strchr(line, ':')) == NULL)
			continue;
		*p++ = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (strcasecmp(line, "Upgrade") == 0 &&
		    strcasecmp(p, "websocket") == 0)
			upgrade = 1;
		else if (strcasecmp(line, "Sec-WebSocket-Key") == 0)
			snprintf(key, sizeof key, "%s", p);
		else if (strcasecmp(line, "Sec-WebSocket-Protocol") == 0)
			snprintf(proto, sizeof proto, "%s", p);
		else if (strcasecmp(line, "Content-Length") == 0)
			clen = (size_t)strtoul(p, NULL, 10);
	}
	if (c->inlen < end + clen)
		return 0; /* the body is not all here yet */
	n_http++;
	if (upgrade && *key != '\0') {
		ws_accept(c, key, proto, path);
		return end + clen;
	}
	if (strstr(path, "rtm.connect") != NULL) {
		char body[512];

		n_rtm_connect++;
		snprintf(body, sizeof body,
		    "{\"ok\":true,\"url\":\"ws://127.0.0.1:%u/rtm\","
		    "\"team\":{\"id\":\"T0\",\"name\":\"Bench\","
		    "\"domain\":\"bench\"},"
		    "\"self\":{\"id\":\"U0\",\"name\":\"bench\"}}",
		    port);
		http_reply(c, "200 OK", body);
	} else if (strstr(path, "apps.connections.open") != NULL) {
		char body[256];

		n_sm_open++;
		snprintf(body, sizeof body,
		    "{\"ok\":true,\"url\":\"ws://127.0.0.1:%u/sm\"}", port);
		http_reply(c, "200 OK", body);
	} else if (strstr(path, "auth.test") != NULL)
		http_reply(c, "200 OK",
		    "{\"ok\":true,\"url\":\"https://bench.slack.com/\","
		    "\"team\":\"Bench\",\"user\":\"bench\","
		    "\"team_id\":\"T0\",\"user_id\":\"U0\"}");
	else if (strncmp(path, "/api/", 5) == 0)
		http_reply(
		    c, "200 OK", "{\"ok\":false,\"error\":\"unknown_method\"}");
	else
		http_reply(c, "404 Not Found", "{\"ok\":false}");
	return end + clen;
}

/* ---- the WebSocket side --------------------------------------------------
 */

/* The value of a top-level-ish "key": number, or -1. */
static long long
json_int(const char *s, size_t n, const char *key)
{
	const char *p = memmem(s, n, key, strlen(key)), *e = s + n;

	if (p == NULL)
		return -1;
	p += strlen(key);
	while (p < e && (*p == ' ' || *p == ':'))
		p++;
	if (p >= e || !isdigit((unsigned char)*p))
		return -1;
	return strtoll(p, NULL, 10);
}

/* The raw (still escaped) string value of "key", or NULL. */
static const char *
json_str(const char *s, size_t n, const char *key, size_t *len)
{
	const char *p = memmem(s, n, key, strlen(key)), *e = s + n, *q;

	if (p == NULL)
		return NULL;
	p += strlen(key);
	while (p < e && (*p == ' ' || *p == ':'))
		p++;
	if (p >= e || *p != '"')
		return NULL;
	for (q = ++p; q < e && *q != '"'; q++) {
		if (*q == '\\')
			q++;
	}
	if (q >= e)
		return NULL;
	*len = (size_t)(q - p);
	return p;
}

static void
ws_text(struct conn *c, const char *s, size_t n)
{
	const char *type, *text;
	size_t tlen = 0, xlen = 0;
	long long id = json_int(s, n, "\"id\"");
	char *buf;
	size_t cap;
	int k;

	type = json_str(s, n, "\"type\"", &tlen);
	if (type != NULL && tlen == 4 && memcmp(type, "ping", 4) == 0) {
		char b[96];

		c->pings++;
		if (id < 0)
			return;
		k = snprintf(
		    b, sizeof b, "{\"type\":\"pong\",\"reply_to\":%lld}", id);
		ws_frame(c, 1, b, (size_t)k);
		return;
	}
	if (type != NULL && tlen == 7 && memcmp(type, "message", 7) == 0) {
		c->msgs++;
		if (id < 0)
			return;
		text = json_str(s, n, "\"text\"", &xlen);
		if (text == NULL)
			xlen = 0;
		cap = xlen + 128;
		buf = xrealloc(NULL, cap);
		n_ts++;
		k = snprintf(buf, cap,
		    "{\"ok\":true,\"reply_to\":%lld,"
		    "\"ts\":\"%" PRIu64 ".%06" PRIu64 "\",\"text\":\"%.*s\"}",
		    id, 1700000000 + n_ts / 1000000, n_ts % 1000000, (int)xlen,
		    text != NULL ? text : "");
		ws_frame(c, 1, buf, (size_t)k);
		free(buf);
		return;
	}
	if (c->sm && json_str(s, n, "\"envelope_id\"", &tlen) != NULL) {
		c->acks++;
		return;
	}
	c->other++;
	if (id >= 0) {
		char b[96];

		k = snprintf(
		    b, sizeof b, "{\"ok\":true,\"reply_to\":%lld}", id);
		ws_frame(c, 1, b, (size_t)k);
	}
}

/* Parse client frames (masked) from c->in; returns bytes used. */
static size_t
ws_input(struct conn *c)
{
	unsigned char *p = (unsigned char *)c->in;
	size_t off = 0, hl, plen, i;

	while (c->inlen - off >= 2 && !c->closing) {
		unsigned char *f = p + off, *mask = NULL, *pl;
		int opcode = f[0] & 0x0f, masked = f[1] & 0x80;
		size_t avail = c->inlen - off;

		plen = f[1] & 0x7f;
		hl = 2;
		if (plen == 126) {
			if (avail < 4)
				break;
			plen = ((size_t)f[2] << 8) | f[3];
			hl = 4;
		} else if (plen == 127) {
			if (avail < 10)
				break;
			plen = 0;
			for (i = 0; i < 8; i++)
				plen = (plen << 8) | f[2 + i];
			hl = 10;
		}
		if (masked) {
			mask = f + hl;
			hl += 4;
		}
		if (plen > MAX_IN) {
			conn_close(c);
			return c->inlen;
		}
		if (avail < hl + plen)
			break;
		pl = f + hl;
		if (mask != NULL) {
			for (i = 0; i < plen; i++)
				pl[i] ^= mask[i & 3];
		}
		switch (opcode) {
		case 0x0:
		case 0x1:
			ws_text(c, (const char *)pl, plen);
			break;
		case 0x8: /* close: echo the code, then close */
			ws_frame(c, 0x8, pl, plen >= 2 ? 2 : 0);
			c->closing = 1;
			break;
		case 0x9:
			c->wspings++;
			ws_frame(c, 0xa, pl, plen);
			break;
		default:
			break;
		}
		off += hl + plen;
	}
	return off;
}

static void
conn_read(struct conn *c)
{
	size_t used;
	ssize_t n;
	char *end;

	for (;;) {
		if (c->incap - c->inlen < READ_CHUNK) {
			c->incap = c->inlen + READ_CHUNK * 2;
			c->in = xrealloc(c->in, c->incap + 1);
		}
		n = read(c->fd, c->in + c->inlen, c->incap - c->inlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->inlen += (size_t)n;
		if ((size_t)n < READ_CHUNK)
			break;
	}
	for (;;) {
		if (c->ws)
			used = ws_input(c);
		else {
			c->in[c->inlen] = '\0';
			if ((end = memmem(c->in, c->inlen, "\r\n\r\n", 4)) ==
			    NULL) {
				if (c->inlen > 65536)
					conn_close(c);
				break;
			}
			used = http_request(c, (size_t)(end - c->in) + 4);
		}
		if (c->dead)
			return;
		if (used == 0)
			break;
		memmove(c->in, c->in + used, c->inlen - used);
		c->inlen -= used;
		if (!c->ws || c->closing)
			break;
	}
	if (c->inlen > MAX_IN)
		conn_close(c);
	else
		pump(c);
}

static void
conn_accept(void)
{
	struct epoll_event ev;
	struct conn *c;
	int fd, one = 1;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
	    0) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c = calloc(1, sizeof *c);
		if (c == NULL)
			die("calloc");
		c->h.kind = K_CONN;
		c->h.conn = c;
		c->th.kind = K_TIMER;
		c->th.conn = c;
		c->fd = fd;
		c->tfd = -1;
		c->id = ++next_id;
		c->next = conns;
		conns = c;
		memset(&ev, 0, sizeof ev);
		ev.events = EPOLLIN;
		ev.data.ptr = &c->h;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
			die("epoll_ctl");
	}
}

/* ---- jobs --------------------------------------------------------------- */

static void
rate_tick(struct conn *c)
{
	uint64_t exp, due;
	int64_t now = bench_now_ns(), sched;

	(void)!read(c->tfd, &exp, sizeof exp);
	if (!c->in_job || c->dead)
		return;
	due = (uint64_t)((double)(now - c->rate_t0) * c->rate / 1e9) + 1;
	if (due > c->job_n)
		due = c->job_n;
	while (c->job_sent < due) {
		sched =
		    c->rate_t0 + (int64_t)((double)c->job_sent * 1e9 / c->rate);
		now = bench_now_ns();
		if (now - sched > c->late_max)
			c->late_max = now - sched;
		c->late_sum += now - sched > 0 ? now - sched : 0;
		add_event(c, now);
	}
	if (c->job_sent == c->job_n) {
		struct itimerspec off;

		memset(&off, 0, sizeof off);
		timerfd_settime(c->tfd, 0, &off, NULL);
	}
	pump(c);
}

static void
job_start(
    int rate, const char *tag, uint64_t n, size_t size, double r, double secs)
{
	struct conn *c;
	int64_t t0 = bench_now_ns();

	memset(&job, 0, sizeof job);
	job.rate = rate;
	job.n = n;
	job.size = size;
	job.r = r;
	job.secs = secs;
	job.t0 = t0;
	job.t1 = t0;
	snprintf(job.tag, sizeof job.tag, "%s", tag);
	for (c = conns; c != NULL; c = c->next) {
		if (c->dead || !c->ws || c->closing || strcmp(c->tag, tag) != 0)
			continue;
		c->in_job = 1;
		c->job_n = n;
		c->job_sent = 0;
		c->job_size = size;
		c->job_rate = rate;
		c->late_max = c->late_sum = 0;
		job.conns++;
	}
	if (job.conns == 0) {
		printf("{\"cmd\":\"%s\",\"error\":\"no open WebSocket tagged "
		       "%s\"}\n",
		    rate ? "rate" : "burst", tag);
		fflush(stdout);
		return;
	}
	job.active = 1;
	job.pending = job.conns;
	for (c = conns; c != NULL; c = c->next) {
		if (!c->in_job)
			continue;
		if (!rate) {
			pump(c);
			continue;
		}
		{
			struct itimerspec its;
			struct epoll_event ev;
			long period = (long)(1e9 / r);

			if (period < 50000)
				period = 50000;
			if (c->tfd < 0) {
				c->tfd = timerfd_create(CLOCK_MONOTONIC,
				    TFD_NONBLOCK | TFD_CLOEXEC);
				if (c->tfd < 0)
					die("timerfd_create");
				memset(&ev, 0, sizeof ev);
				ev.events = EPOLLIN;
				ev.data.ptr = &c->th;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, c->tfd, &ev) ==
				    -1)
					die("epoll_ctl");
			}
			c->rate = r;
			c->rate_t0 = t0;
			memset(&its, 0, sizeof its);
			its.it_value.tv_nsec = 1;
			its.it_interval.tv_sec = period / 1000000000;
			its.it_interval.tv_nsec = period % 1000000000;
			timerfd_settime(c->tfd, 0, &its, NULL);
		}
	}
}

static void
stat_print(void)
{
	struct conn *c;
	const char *sep = "";

	printf("{\"cmd\":\"stat\",\"port\":%u,\"http\":%" PRIu64
	       ",\"rtm_connect\":%" PRIu64 ",\"sm_open\":%" PRIu64
	       ",\"ws_opened\":%" PRIu64 ",\"conns\":[",
	    port, n_http, n_rtm_connect, n_sm_open, n_ws_opened);
	for (c = conns; c != NULL; c = c->next) {
		if (c->dead)
			continue;
		printf(
		    "%s{\"id\":%u,\"ws\":%d,\"tag\":\"%s\",\"pings\":%" PRIu64
		    ",\"wspings\":%" PRIu64 ",\"msgs\":%" PRIu64
		    ",\"other\":%" PRIu64 ",\"acks\":%" PRIu64
		    ",\"bytes_out\":%" PRIu64 "}",
		    sep, c->id, c->ws, c->tag, c->pings, c->wspings, c->msgs,
		    c->other, c->acks, c->bytes_out);
		sep = ",";
	}
	printf("]}\n");
	fflush(stdout);
}

static void
command(char *line)
{
	char tag[TAG_MAX + 1];
	unsigned long long n;
	double r, secs;
	size_t size;

	if (job.active && strncmp(line, "stat", 4) != 0 &&
	    strncmp(line, "quit", 4) != 0) {
		printf("{\"cmd\":\"?\",\"error\":\"a job is running\"}\n");
		fflush(stdout);
		return;
	}
	if (sscanf(line, "burst %32s %llu %zu", tag, &n, &size) == 3) {
		if (size > MAX_SIZE - 64)
			size = MAX_SIZE - 64;
		job_start(0, tag, n, size, 0, 0);
	} else if (sscanf(line, "rate %32s %lf %lf %zu", tag, &r, &secs,
	               &size) == 4 &&
	    r > 0 && secs > 0) {
		if (size > MAX_SIZE - 64)
			size = MAX_SIZE - 64;
		job_start(1, tag, (uint64_t)(r * secs + 0.5), size, r, secs);
	} else if (strncmp(line, "stat", 4) == 0)
		stat_print();
	else if (strncmp(line, "quit", 4) == 0)
		exit(0);
	else {
		printf("{\"cmd\":\"?\",\"error\":\"unknown command\"}\n");
		fflush(stdout);
	}
}

static void
stdin_read(void)
{
	static char buf[4096];
	static size_t len;
	char *nl;
	ssize_t n;

	n = read(0, buf + len, sizeof buf - 1 - len);
	if (n <= 0)
		exit(0);
	len += (size_t)n;
	buf[len] = '\0';
	while ((nl = memchr(buf, '\n', len)) != NULL) {
		*nl = '\0';
		command(buf);
		len -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, len);
	}
	if (len == sizeof buf - 1)
		len = 0;
}

/* ---- the null consumer (--sink) ------------------------------------------
 */

static int
sink(const char *url, uint64_t want)
{
	char host[64], path[256], req[512], *buf;
	unsigned p = 0;
	struct sockaddr_in sa;
	struct timespec c0, c1;
	uint64_t frames = 0, bytes = 0;
	int64_t t_first = 0, t_last = 0;
	size_t have = 0, off, need_skip = 0, cap = 1 << 20;
	int fd, got_head = 0, seen_hello = 0, one = 1;
	ssize_t n;

	if (sscanf(url, "ws://%63[^:]:%u%255s", host, &p, path) != 3) {
		fprintf(stderr, "gen: --sink wants ws://HOST:PORT/PATH\n");
		return 64;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		die("socket");
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)p);
	inet_pton(AF_INET, host, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	n = snprintf(req, sizeof req,
	    "GET %s HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: "
	    "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
	    path, host, p);
	if (write(fd, req, (size_t)n) != n)
		die("write");
	if ((buf = malloc(cap)) == NULL)
		die("malloc");
	while (frames < want) {
		n = read(fd, buf + have, cap - have);
		if (n <= 0) {
			fprintf(stderr,
			    "gen: sink: connection closed after "
			    "%" PRIu64 " frames\n",
			    frames);
			return 1;
		}
		have += (size_t)n;
		bytes += (uint64_t)n;
		off = 0;
		if (!got_head) {
			char *e = memmem(buf, have, "\r\n\r\n", 4);

			if (e == NULL)
				continue;
			if (strncmp(buf, "HTTP/1.1 101", 12) != 0) {
				fprintf(stderr, "gen: sink: no 101\n");
				return 1;
			}
			got_head = 1;
			off = (size_t)(e - buf) + 4;
		}
		if (need_skip > 0) {
			size_t k = need_skip < have ? need_skip : have;

			need_skip -= k;
			off = k;
		}
		while (need_skip == 0 && have - off >= 2) {
			unsigned char *f = (unsigned char *)buf + off;
			size_t plen = f[1] & 0x7f, hl = 2, i;

			if (plen == 126) {
				if (have - off < 4)
					break;
				plen = ((size_t)f[2] << 8) | f[3];
				hl = 4;
			} else if (plen == 127) {
				if (have - off < 10)
					break;
				for (plen = 0, i = 0; i < 8; i++)
					plen = (plen << 8) | f[2 + i];
				hl = 10;
			}
			if (!seen_hello) {
				seen_hello = 1;
				printf("{\"ready\":true}\n");
				fflush(stdout);
				clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
			} else {
				if (frames == 0)
					t_first = bench_now_ns();
				frames++;
			}
			if (have - off >= hl + plen)
				off += hl + plen;
			else {
				need_skip = hl + plen - (have - off);
				off = have;
			}
		}
		memmove(buf, buf + off, have - off);
		have -= off;
	}
	t_last = bench_now_ns();
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	printf("{\"frames\":%" PRIu64 ",\"bytes\":%" PRIu64
	       ",\"t_first\":%" PRId64 ",\"t_last\":%" PRId64
	       ",\"cpu_us\":%.1f}\n",
	    frames, bytes, t_first, t_last,
	    (double)(c1.tv_sec - c0.tv_sec) * 1e6 +
	        (double)(c1.tv_nsec - c0.tv_nsec) / 1e3);
	fflush(stdout);
	free(buf);
	close(fd);
	return 0;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	struct epoll_event ev, evs[64];
	int one = 1, i, n, want_port = 0;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "--sink") == 0)
		return sink(argv[2], strtoull(argv[3], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "-p") == 0)
		want_port = atoi(argv[2]);
	else if (argc != 1) {
		fprintf(stderr, "usage: gen [-p PORT] | gen --sink URL N\n");
		return 64;
	}
	memset(pad, 'x', sizeof pad);

	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((unsigned short)want_port);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(lfd, 128) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
		die("listen");
	port = ntohs(sa.sin_port);

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1");
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = &h_listen;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.ptr = &h_stdin;
	epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);

	printf("{\"port\":%u,\"pid\":%ld}\n", port, (long)getpid());
	fflush(stdout);
	for (;;) {
		n = epoll_wait(ep, evs, (int)(sizeof evs / sizeof evs[0]), -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (i = 0; i < n; i++) {
			struct handle *h = evs[i].data.ptr;
			struct conn *c = h->conn;

			switch (h->kind) {
			case K_LISTEN:
				conn_accept();
				break;
			case K_STDIN:
				stdin_read();
				break;
			case K_TIMER:
				if (!c->dead)
					rate_tick(c);
				break;
			case K_CONN:
				if (c->dead)
					break;
				if (evs[i].events &
				    (EPOLLIN | EPOLLHUP | EPOLLERR))
					conn_read(c);
				if (!c->dead && (evs[i].events & EPOLLOUT))
					pump(c);
				break;
			}
		}
		reap();
	}
}
