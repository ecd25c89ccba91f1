/*
 * bench/floor_lws: the floor of "receive an RTM event" (make bench).
 *
 * A bare libwebsockets client, in the style of lws' minimal-ws-client: it
 * connects to the generator's WebSocket URL, counts the messages it
 * receives (LWS_CALLBACK_CLIENT_RECEIVE, whole messages), looks at none of
 * them and answers nothing.  The same protocol rx_buffer_size as slackd.
 *
 *   floor_lws ws://127.0.0.1:PORT/TAG N
 *
 * prints {"ready":true,"rss_kb":…} once the generator's hello is in, and
 * after N more messages one JSON line: CPU time since the hello
 * (CLOCK_PROCESS_CPUTIME_ID), getrusage totals, VmRSS at ready, VmHWM.
 */
#define _GNU_SOURCE
#include <sys/resource.h>

#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#include "bench.h"
#include "floor.h"

static struct lws_context *ctx;
static struct lws *wsi_rtm;
static uint64_t want, count;
static int hello, done, failed;
static int64_t t_first, t_last;
static double cpu0;
static long rss_ready;

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		fprintf(stderr, "floor_lws: connection error: %s\n",
		    in != NULL ? (const char *)in : "?");
		failed = 1;
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (!lws_is_final_fragment(wsi) ||
		    lws_remaining_packet_payload(wsi) != 0)
			break;
		if (!hello) {
			hello = 1;
			rss_ready = bench_status_kb("VmRSS");
			printf("{\"ready\":true,\"rss_kb\":%ld}\n", rss_ready);
			fflush(stdout);
			cpu0 = bench_cpu_us();
			break;
		}
		if (++count == 1)
			t_first = bench_now_ns();
		if (count == want) {
			t_last = bench_now_ns();
			done = 1;
		}
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (!done) {
			fprintf(stderr,
			    "floor_lws: closed after %" PRIu64 " messages\n",
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

int
main(int argc, char **argv)
{
	struct rusage ru;
	double cpu;

	if (argc != 3 || floor_url(argv[1]) != 0) {
		fprintf(stderr, "usage: floor_lws ws://HOST:PORT/PATH N\n");
		return 64;
	}
	want = strtoull(argv[2], NULL, 10);
	signal(SIGPIPE, SIG_IGN);
	if ((ctx = floor_connect("floor_lws", protocols, &wsi_rtm)) == NULL)
		return 1;
	while (!done && !failed) {
		if (lws_service(ctx, 0) < 0)
			break;
	}
	cpu = bench_cpu_us() - cpu0;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"events\":%" PRIu64 ",\"t_first\":%" PRId64
	       ",\"t_last\":%" PRId64 ",\"cpu_us\":%.1f,"
	       "\"ru_utime_us\":%ld,\"ru_stime_us\":%ld,"
	       "\"rss_ready_kb\":%ld,\"vmhwm_kb\":%ld,\"ok\":%s}\n",
	    count, t_first, t_last, cpu, bench_tv_us(&ru.ru_utime),
	    bench_tv_us(&ru.ru_stime), rss_ready, bench_status_kb("VmHWM"),
	    done ? "true" : "false");
	fflush(stdout);
	lws_context_destroy(ctx);
	return done ? 0 : 1;
}
