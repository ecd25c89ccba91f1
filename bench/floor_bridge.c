/*
 * bench/floor_bridge: the floor of "receive an RTM event and fan it out"
 * (make bench).
 *
 * Single-threaded and minimal: a libwebsockets client (same rx_buffer_size
 * as slackd) and a Unix listening socket.  It accepts K clients first,
 * greets each with one {"type":"slackd.hello",…} line (so that
 * bench/reader treats it like slackd), connects to the generator, and
 * appends every message received after the generator's hello, plus "\n",
 * to one shared batch.  Each time lws_service() returns, the batch is
 * written to every client with plain blocking write()s.  No parsing, no
 * per-client copies, no slow-reader protection: the floor.
 *
 *   floor_bridge ws://127.0.0.1:PORT/TAG SOCKET K N
 *
 * prints {"listening":…}, then {"ready":true,"rss_kb":…} once all K
 * clients are in and the generator's hello has arrived, and after N
 * messages are forwarded one JSON line of statistics.
 */
#define _GNU_SOURCE
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "bench.h"
#include "floor.h"

static struct lws_context *ctx;
static struct lws *wsi_rtm;
static uint64_t want, count;
static int hello, done, failed;
static int64_t t_first, t_last;
static double cpu0;
static int *fds, nfds;
static char *batch;
static size_t blen, bcap;

static void
batch_add(const void *p, size_t n)
{
	if (bcap - blen < n) {
		bcap = (blen + n) * 2;
		if ((batch = realloc(batch, bcap)) == NULL) {
			fprintf(stderr, "floor_bridge: out of memory\n");
			exit(1);
		}
	}
	memcpy(batch + blen, p, n);
	blen += n;
}

static void
write_all(int fd, const char *p, size_t n)
{
	ssize_t k;

	while (n > 0) {
		k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			fprintf(stderr, "floor_bridge: write: %s\n",
			    strerror(errno));
			exit(1);
		}
		p += k;
		n -= (size_t)k;
	}
}

static void
flush_batch(void)
{
	int i;

	if (blen == 0)
		return;
	for (i = 0; i < nfds; i++)
		write_all(fds[i], batch, blen);
	blen = 0;
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	int last;

	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		fprintf(stderr, "floor_bridge: connection error: %s\n",
		    in != NULL ? (const char *)in : "?");
		failed = 1;
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		last = lws_is_final_fragment(wsi) &&
		    lws_remaining_packet_payload(wsi) == 0;
		if (!hello) {
			if (last) {
				hello = 1;
				printf("{\"ready\":true,\"rss_kb\":%ld}\n",
				    bench_status_kb("VmRSS"));
				fflush(stdout);
				cpu0 = bench_cpu_us();
			}
			break;
		}
		if (done)
			break;
		batch_add(in, len);
		if (!last)
			break;
		batch_add("\n", 1);
		if (++count == 1)
			t_first = bench_now_ns();
		if (count == want)
			done = 1;
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (!done) {
			fprintf(stderr,
			    "floor_bridge: closed after %" PRIu64 " messages\n",
			    count);
			failed = 1;
		}
		wsi_rtm = NULL;
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
	{ "floor", callback, 0, 65536, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static int
listen_unix(const char *sock)
{
	struct sockaddr_un sa;
	int fd;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
	unlink(sock);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(fd, 1024) < 0)
		return -1;
	return fd;
}

int
main(int argc, char **argv)
{
	const char *hello_line = "{\"type\":\"slackd.hello\",\"floor\":true}\n";
	struct rusage ru;
	int lfd, i, k;
	double cpu;

	if (argc != 5 || floor_url(argv[1]) != 0 || (k = atoi(argv[3])) < 1) {
		fprintf(stderr,
		    "usage: floor_bridge ws://HOST:PORT/PATH SOCKET K N\n");
		return 64;
	}
	want = strtoull(argv[4], NULL, 10);
	signal(SIGPIPE, SIG_IGN);

	if ((lfd = listen_unix(argv[2])) < 0) {
		fprintf(
		    stderr, "floor_bridge: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	printf("{\"listening\":\"%s\"}\n", argv[2]);
	fflush(stdout);
	if ((fds = calloc((size_t)k, sizeof *fds)) == NULL)
		return 1;
	for (nfds = 0; nfds < k; nfds++) {
		while (
		    (fds[nfds] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			if (errno != EINTR) {
				fprintf(stderr, "floor_bridge: accept: %s\n",
				    strerror(errno));
				return 1;
			}
		}
		write_all(fds[nfds], hello_line, strlen(hello_line));
	}
	close(lfd);
	unlink(argv[2]);

	if ((ctx = floor_connect("floor_bridge", protocols, &wsi_rtm)) == NULL)
		return 1;
	while (!done && !failed) {
		if (lws_service(ctx, 0) < 0)
			break;
		flush_batch();
	}
	flush_batch();
	t_last = bench_now_ns();
	cpu = bench_cpu_us() - cpu0;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"events\":%" PRIu64 ",\"clients\":%d,\"t_first\":%" PRId64
	       ",\"t_last\":%" PRId64 ",\"cpu_us\":%.1f,"
	       "\"ru_utime_us\":%ld,\"ru_stime_us\":%ld,"
	       "\"vmhwm_kb\":%ld,\"ok\":%s}\n",
	    count, nfds, t_first, t_last, cpu, bench_tv_us(&ru.ru_utime),
	    bench_tv_us(&ru.ru_stime), bench_status_kb("VmHWM"),
	    done ? "true" : "false");
	fflush(stdout);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	lws_context_destroy(ctx);
	return done ? 0 : 1;
}
