/*
 * bench/reader: benchmark clients of slackd's Unix socket (make bench).
 *
 * One process holds many connections (epoll) and costs little per line:
 * lines starting with {"type":"slackd. are the daemon's own and skipped,
 * every line with "seq": is an event, counted per connection and checked
 * for order (seq must go 1, 2, 3, … in each connection).  With -l the
 * latency of each line is its "t" (the generator's CLOCK_MONOTONIC at
 * send) subtracted from this process's CLOCK_MONOTONIC right after the
 * read() that brought it, kept in a 1 µs histogram.
 *
 *   reader -s SOCK [-c CONNS] -n EVENTS [-l] [-t SECONDS]
 *       connect, wait for every slackd.hello, print {"ready":CONNS}, then
 *       read until every connection has seen seq EVENTS (or the timeout)
 *       and print one JSON line of statistics
 *   reader -s SOCK -c CONNS -i
 *       idle: connect, print ready, hold the connections until stdin closes
 *   reader -s SOCK -S N | -P N [-t SECONDS]
 *       outbound: N messages on channels C0…C(N-1), -S one at a time
 *       (round trip of each), -P all written without waiting (pipelined)
 */
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BUFSZ      (1024 * 1024)
#define HIST_US    1000000 /* 1 µs buckets up to 1 s */
#define HELLO      "{\"type\":\"slackd.hello"
#define DAEMON_MSG "{\"type\":\"slackd."

struct conn {
	int fd;
	int hello;
	int done;
	char *left; /* an incomplete line from the last read */
	size_t llen, lcap;
	uint64_t events, lost, reordered, last_seq;
};

static const char *sock_path;
static struct conn *cs;
static int nconns = 1;
static uint64_t expect;
static int lat_on;
static double timeout_s = 60;
static char *rbuf;
static int64_t now_read; /* CLOCK_MONOTONIC after the current read() */
static uint32_t *hist;
static uint64_t hist_over, lat_n;
static int64_t lat_max, lat_min = INT64_MAX;
static uint64_t other_lines, daemon_lines, bytes_in;
static int64_t t_first, t_last;
static int done_conns, hellos;

static void
die(const char *what)
{
	fprintf(stderr, "reader: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n)) == NULL) {
		fprintf(stderr, "reader: out of memory\n");
		exit(1);
	}
	return p;
}

static int
connect_one(void)
{
	struct sockaddr_un sa;
	int fd;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		die("socket");
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	while (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (errno == EINTR)
			continue;
		die("connect");
	}
	return fd;
}

static uint64_t
parse_u64(const char *p, const char *e)
{
	uint64_t v = 0;

	while (p < e && *p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	return v;
}

static void
lat_sample(int64_t d)
{
	if (d < 0)
		d = 0;
	if (d > lat_max)
		lat_max = d;
	if (d < lat_min)
		lat_min = d;
	lat_n++;
	if (d / 1000 < HIST_US)
		hist[d / 1000]++;
	else
		hist_over++;
}

static void
event_line(struct conn *c, const char *line, size_t len)
{
	const char *p, *e = line + len;
	uint64_t seq;

	if (len >= sizeof DAEMON_MSG - 1 &&
	    memcmp(line, DAEMON_MSG, sizeof DAEMON_MSG - 1) == 0) {
		daemon_lines++;
		if (!c->hello && len >= sizeof HELLO - 1 &&
		    memcmp(line, HELLO, sizeof HELLO - 1) == 0) {
			c->hello = 1;
			hellos++;
		}
		return;
	}
	if ((p = memmem(line, len, "\"seq\":", 6)) == NULL) {
		other_lines++;
		return;
	}
	seq = parse_u64(p + 6, e);
	if (t_first == 0)
		t_first = now_read;
	c->events++;
	if (seq == c->last_seq + 1)
		c->last_seq = seq;
	else if (seq > c->last_seq) {
		c->lost += seq - c->last_seq - 1;
		c->last_seq = seq;
	} else
		c->reordered++;
	if (lat_on && (p = memmem(p, (size_t)(e - p), "\"t\":", 4)) != NULL)
		lat_sample(now_read - (int64_t)parse_u64(p + 4, e));
	if (!c->done && expect > 0 && c->last_seq >= expect) {
		c->done = 1;
		done_conns++;
		t_last = now_read;
	}
}

/* One read on c; returns 0 at EOF. */
static int
conn_read(struct conn *c)
{
	char *p, *e, *nl;
	ssize_t n;

	if (c->llen > 0)
		memcpy(rbuf, c->left, c->llen);
	do
		n = read(c->fd, rbuf + c->llen, BUFSZ - c->llen);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 1;
	if (n <= 0)
		return 0;
	now_read = bench_now_ns();
	bytes_in += (uint64_t)n;
	p = rbuf;
	e = rbuf + c->llen + n;
	while ((nl = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		event_line(c, p, (size_t)(nl - p));
		p = nl + 1;
	}
	c->llen = (size_t)(e - p);
	if (c->llen > 0) {
		if (c->llen == BUFSZ) {
			fprintf(stderr, "reader: line longer than %d\n", BUFSZ);
			exit(1);
		}
		if (c->lcap < c->llen) {
			c->lcap = c->llen + 4096;
			c->left = xrealloc(c->left, c->lcap);
		}
		memcpy(c->left, p, c->llen);
	}
	return 1;
}

static double
hist_pct(double q)
{
	uint64_t want = (uint64_t)(q * (double)lat_n), acc = 0;
	int i;

	if (lat_n == 0)
		return 0;
	if (want >= lat_n)
		want = lat_n - 1;
	for (i = 0; i < HIST_US; i++) {
		acc += hist[i];
		if (acc > want)
			return (double)i + 0.5;
	}
	return (double)lat_max / 1e3;
}

static void
print_events(int timed_out, double cpu0)
{
	uint64_t events = 0, lost = 0, reord = 0;
	int i;

	for (i = 0; i < nconns; i++) {
		struct conn *c = &cs[i];

		events += c->events;
		reord += c->reordered;
		lost += c->lost;
		if (c->last_seq < expect)
			lost += expect - c->last_seq;
	}
	printf("{\"mode\":\"events\",\"conns\":%d,\"expected\":%" PRIu64
	       ",\"done_conns\":%d,\"events\":%" PRIu64 ",\"lost\":%" PRIu64
	       ",\"reordered\":%" PRIu64 ",\"other_lines\":%" PRIu64
	       ",\"daemon_lines\":%" PRIu64 ",\"bytes\":%" PRIu64
	       ",\"t_first\":%" PRId64 ",\"t_last\":%" PRId64
	       ",\"timeout\":%s,\"cpu_us\":%.0f",
	    nconns, expect, done_conns, events, lost, reord, other_lines,
	    daemon_lines, bytes_in, t_first, t_last,
	    timed_out ? "true" : "false", bench_cpu_us() - cpu0);
	if (lat_on) {
		const char *sep = "";

		printf(",\"lat\":{\"n\":%" PRIu64 ",\"min_us\":%.1f,"
		       "\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
		       "\"over_1s\":%" PRIu64 ",\"hist\":[",
		    lat_n, lat_n ? (double)lat_min / 1e3 : 0.0, hist_pct(0.50),
		    hist_pct(0.99), (double)lat_max / 1e3, hist_over);
		for (i = 0; i < HIST_US; i++) {
			if (hist[i] == 0)
				continue;
			printf("%s[%d,%" PRIu32 "]", sep, i, hist[i]);
			sep = ",";
		}
		printf("]}");
	}
	printf("}\n");
	fflush(stdout);
}

static void
ep_add(int ep, int fd, void *ptr, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = ptr;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
		die("epoll_ctl");
}

/* Events and idle modes. */
static int
run_readers(int idle)
{
	struct epoll_event evs[256];
	int ep, i, n, ready = 0, timed_out = 0, stdin_open = 1;
	int64_t deadline = bench_now_ns() + (int64_t)(timeout_s * 1e9);
	double cpu0 = 0;
	static char stdin_tag;

	cs = calloc((size_t)nconns, sizeof *cs);
	if (cs == NULL)
		die("calloc");
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1");
	for (i = 0; i < nconns; i++) {
		cs[i].fd = connect_one();
		fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
		ep_add(ep, cs[i].fd, &cs[i], EPOLLIN);
	}
	if (idle)
		ep_add(ep, 0, &stdin_tag, EPOLLIN);
	for (;;) {
		if (!ready && hellos == nconns) {
			ready = 1;
			printf("{\"ready\":%d}\n", nconns);
			fflush(stdout);
			cpu0 = bench_cpu_us();
			deadline = bench_now_ns() + (int64_t)(timeout_s * 1e9);
		}
		if (!idle && ready && done_conns == nconns)
			break;
		if (idle && ready && !stdin_open)
			break;
		n = epoll_wait(ep, evs, 256, idle ? -1 : 100);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (evs[i].data.ptr == &stdin_tag) {
				char b[256];

				if (read(0, b, sizeof b) <= 0) {
					stdin_open = 0;
					epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
				}
				continue;
			}
			if (!conn_read(c)) {
				if (!c->done)
					fprintf(stderr,
					    "reader: connection %d closed "
					    "early\n",
					    (int)(c - cs));
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				if (!c->hello) {
					c->hello = 1;
					hellos++;
				}
				if (!c->done) {
					c->done = 1;
					done_conns++;
				}
			}
		}
		if (!idle && bench_now_ns() > deadline) {
			timed_out = 1;
			break;
		}
	}
	if (idle)
		printf(
		    "{\"mode\":\"idle\",\"conns\":%d,\"daemon_lines\":%" PRIu64
		    ",\"other_lines\":%" PRIu64 "}\n",
		    nconns, daemon_lines, other_lines);
	else
		print_events(timed_out, cpu0);
	fflush(stdout);
	return timed_out ? 2 : 0;
}

/* ---- outbound ------------------------------------------------------------
 */

struct sender {
	int fd;
	char *left;
	size_t llen;
	uint64_t ok, err, replies;
	char first_err[512];
	int64_t *sent_at; /* per id */
	int64_t *rtt;
	uint64_t nrtt;
	int64_t last_reply;
};

static void
reply_line(struct sender *s, const char *line, size_t len, uint64_t n)
{
	const char *p = memmem(line, len, "\"reply_to\":", 11);
	uint64_t id;

	if (p == NULL)
		return; /* hello, state lines */
	id = parse_u64(p + 11, line + len);
	if (id < 1 || id > n)
		return;
	s->replies++;
	s->last_reply = now_read;
	if (memmem(line, len, "\"ok\":true", 9) != NULL)
		s->ok++;
	else {
		s->err++;
		if (s->first_err[0] == '\0')
			snprintf(s->first_err, sizeof s->first_err, "%.*s",
			    (int)(len < 400 ? len : 400), line);
	}
	if (s->sent_at[id - 1] != 0)
		s->rtt[s->nrtt++] = now_read - s->sent_at[id - 1];
}

/* Read what is there; returns 0 at EOF. */
static int
sender_read(struct sender *s, uint64_t n)
{
	char *p, *e, *nl;
	ssize_t k;

	if (s->llen > 0)
		memcpy(rbuf, s->left, s->llen);
	do
		k = read(s->fd, rbuf + s->llen, BUFSZ - s->llen);
	while (k < 0 && errno == EINTR);
	if (k < 0 && errno == EAGAIN)
		return 1;
	if (k <= 0)
		return 0;
	now_read = bench_now_ns();
	p = rbuf;
	e = rbuf + s->llen + k;
	while ((nl = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		reply_line(s, p, (size_t)(nl - p), n);
		p = nl + 1;
	}
	s->llen = (size_t)(e - p);
	memcpy(s->left, p, s->llen);
	return 1;
}

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void
json_escaped(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

static int
run_sender(uint64_t n, int pipelined)
{
	struct sender s;
	char *reqs, hello[8192];
	size_t *off, total = 0, written = 0, hl = 0;
	uint64_t i, next_done = 0;
	int64_t t0, t1, deadline;
	int timed_out = 0, eof = 0;
	const char *sub = "{\"type\":\"slackd.subscribe\",\"types\":[]}\n";
	ssize_t k;

	memset(&s, 0, sizeof s);
	s.fd = connect_one();
	{
		struct timeval tv = { 1, 0 };

		setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	}
	s.left = malloc(BUFSZ);
	s.sent_at = calloc(n, sizeof *s.sent_at);
	s.rtt = calloc(n, sizeof *s.rtt);
	off = calloc(n + 1, sizeof *off);
	reqs = malloc(n * 96 + 1);
	if (s.left == NULL || s.sent_at == NULL || s.rtt == NULL ||
	    off == NULL || reqs == NULL)
		die("malloc");
	/* The hello first; then no events, only replies. */
	while (memchr(hello, '\n', hl) == NULL) {
		k = read(s.fd, hello + hl, sizeof hello - hl);
		if (k <= 0)
			die("reading the hello");
		hl += (size_t)k;
	}
	if (write(s.fd, sub, strlen(sub)) != (ssize_t)strlen(sub))
		die("write");
	for (i = 0; i < n; i++) {
		off[i] = total;
		total += (size_t)sprintf(reqs + total,
		    "{\"id\":%" PRIu64 ",\"type\":\"message\",\"channel\":"
		    "\"C%" PRIu64 "\",\"text\":\"bench %" PRIu64 "\"}\n",
		    i + 1, i, i);
	}
	off[n] = total;
	printf("{\"ready\":1}\n");
	fflush(stdout);
	deadline = bench_now_ns() + (int64_t)(timeout_s * 1e9);
	t0 = bench_now_ns();
	if (!pipelined) {
		for (i = 0; i < n && !eof; i++) {
			size_t len = off[i + 1] - off[i];

			s.sent_at[i] = bench_now_ns();
			if (write(s.fd, reqs + off[i], len) != (ssize_t)len)
				die("write");
			while (s.replies < i + 1) {
				if (!sender_read(&s, n)) {
					eof = 1;
					break;
				}
				if (bench_now_ns() > deadline) {
					timed_out = 1;
					break;
				}
			}
			if (timed_out)
				break;
		}
	} else {
		struct epoll_event ev, evs[4];
		int ep = epoll_create1(EPOLL_CLOEXEC), m, j;

		fcntl(s.fd, F_SETFL, O_NONBLOCK);
		memset(&ev, 0, sizeof ev);
		ev.events = EPOLLIN | EPOLLOUT;
		ev.data.fd = s.fd;
		epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
		while (s.replies < n && !eof) {
			m = epoll_wait(ep, evs, 4, 100);
			for (j = 0; j < m; j++) {
				if ((evs[j].events & EPOLLOUT) &&
				    written < total) {
					k = write(s.fd, reqs + written,
					    total - written);
					if (k > 0) {
						int64_t now = bench_now_ns();

						written += (size_t)k;
						while (next_done < n &&
						    off[next_done + 1] <=
						        written)
							s.sent_at[next_done++] =
							    now;
					}
					if (written == total) {
						ev.events = EPOLLIN;
						epoll_ctl(ep, EPOLL_CTL_MOD,
						    s.fd, &ev);
					}
				}
				if ((evs[j].events & (EPOLLIN | EPOLLHUP)) &&
				    !sender_read(&s, n))
					eof = 1;
			}
			if (bench_now_ns() > deadline) {
				timed_out = 1;
				break;
			}
		}
		close(ep);
	}
	t1 = s.last_reply;
	qsort(s.rtt, s.nrtt, sizeof *s.rtt, cmp64);
	printf("{\"mode\":\"%s\",\"n\":%" PRIu64 ",\"replies\":%" PRIu64
	       ",\"ok\":%" PRIu64 ",\"errors\":%" PRIu64
	       ",\"timeout\":%s,\"eof\":%s,\"t0\":%" PRId64 ",\"t1\":%" PRId64
	       ",\"elapsed_s\":%.6f,\"per_s\":%.1f",
	    pipelined ? "pipelined" : "sequential", n, s.replies, s.ok, s.err,
	    timed_out ? "true" : "false", eof ? "true" : "false", t0, t1,
	    (double)(t1 - t0) / 1e9,
	    t1 > t0 ? (double)s.replies * 1e9 / (double)(t1 - t0) : 0.0);
	if (s.nrtt > 0) {
		double sum = 0;

		for (i = 0; i < s.nrtt; i++)
			sum += (double)s.rtt[i];
		printf(",\"rtt_us\":{\"n\":%" PRIu64
		       ",\"min\":%.1f,\"p50\":%.1f,"
		       "\"p99\":%.1f,\"max\":%.1f,\"mean\":%.1f}",
		    s.nrtt, (double)s.rtt[0] / 1e3,
		    (double)s.rtt[s.nrtt / 2] / 1e3,
		    (double)s.rtt[(uint64_t)((double)s.nrtt * 0.99)] / 1e3,
		    (double)s.rtt[s.nrtt - 1] / 1e3,
		    sum / (double)s.nrtt / 1e3);
	}
	if (s.first_err[0] != '\0') {
		printf(",\"first_error\":");
		json_escaped(s.first_err);
	}
	printf("}\n");
	fflush(stdout);
	close(s.fd);
	free(s.left);
	free(s.sent_at);
	free(s.rtt);
	free(off);
	free(reqs);
	return timed_out || eof || s.err > 0 ? 2 : 0;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: reader -s SOCK [-c CONNS] -n EVENTS [-l] [-t SECONDS]\n"
	    "       reader -s SOCK -c CONNS -i\n"
	    "       reader -s SOCK -S N | -P N [-t SECONDS]\n");
	exit(64);
}

int
main(int argc, char **argv)
{
	int ch, idle = 0, pipelined = 0;
	uint64_t send_n = 0;

	signal(SIGPIPE, SIG_IGN);
	while ((ch = getopt(argc, argv, "s:c:n:lt:iS:P:")) != -1) {
		switch (ch) {
		case 's':
			sock_path = optarg;
			break;
		case 'c':
			nconns = atoi(optarg);
			break;
		case 'n':
			expect = strtoull(optarg, NULL, 10);
			break;
		case 'l':
			lat_on = 1;
			break;
		case 't':
			timeout_s = atof(optarg);
			break;
		case 'i':
			idle = 1;
			break;
		case 'S':
			send_n = strtoull(optarg, NULL, 10);
			break;
		case 'P':
			send_n = strtoull(optarg, NULL, 10);
			pipelined = 1;
			break;
		default:
			usage();
		}
	}
	if (sock_path == NULL || nconns < 1 ||
	    (!idle && send_n == 0 && expect == 0))
		usage();
	if ((rbuf = malloc(BUFSZ)) == NULL)
		die("malloc");
	if (lat_on && (hist = calloc(HIST_US, sizeof *hist)) == NULL)
		die("calloc");
	if (send_n > 0)
		return run_sender(send_n, pipelined);
	return run_readers(idle);
}
