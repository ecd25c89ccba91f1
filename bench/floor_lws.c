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

static struct lws_context *ctx;
static struct lws *wsi_rtm;
static char host[128], path[256];
static int port;
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
	struct lws_context_creation_info info;
	struct lws_client_connect_info ci;
	struct rusage ru;
	double cpu;

	if (argc != 3 ||
	    sscanf(argv[1], "ws://%127[^:]:%d%255s", host, &port, path) != 3) {
		fprintf(stderr, "usage: floor_lws ws://HOST:PORT/PATH N\n");
		return 64;
	}
	want = strtoull(argv[2], NULL, 10);
	signal(SIGPIPE, SIG_IGN);
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

	memset(&info, 0, sizeof info);
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.fd_limit_per_thread = 32; /* as slackd */
	info.pt_serv_buf_size = 65536; /* as slackd: 64 KiB reads */
	if ((ctx = lws_create_context(&info)) == NULL) {
		fprintf(stderr, "floor_lws: lws_create_context failed\n");
		return 1;
	}
	memset(&ci, 0, sizeof ci);
	ci.context = ctx;
	ci.address = host;
	ci.host = host;
	ci.origin = host;
	ci.port = port;
	ci.path = path;
	ci.local_protocol_name = "floor";
	ci.pwsi = &wsi_rtm;
	if (lws_client_connect_via_info(&ci) == NULL) {
		fprintf(stderr, "floor_lws: cannot connect\n");
		return 1;
	}
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
	    count, t_first, t_last, cpu,
	    (long)ru.ru_utime.tv_sec * 1000000 + (long)ru.ru_utime.tv_usec,
	    (long)ru.ru_stime.tv_sec * 1000000 + (long)ru.ru_stime.tv_usec,
	    rss_ready, bench_status_kb("VmHWM"), done ? "true" : "false");
	fflush(stdout);
	lws_context_destroy(ctx);
	return done ? 0 : 1;
}
