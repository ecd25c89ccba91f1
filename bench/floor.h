/*
 * What the two floors (bench/floor_lws, bench/floor_bridge) share: one
 * libwebsockets client connection set up exactly as slackd sets up its
 * own, so that the floors and the daemon read from Slack the same way.
 */
#ifndef SLACKD_BENCH_FLOOR_H
#define SLACKD_BENCH_FLOOR_H

#include <stdio.h>
#include <string.h>

#include <libwebsockets.h>

static char floor_host[128], floor_path[256];
static int floor_port;

/* Take url (ws://HOST:PORT/PATH) apart for floor_connect(); -1 if not. */
static inline int
floor_url(const char *url)
{
	return sscanf(url, "ws://%127[^:]:%d%255s", floor_host, &floor_port,
	           floor_path) == 3
	    ? 0
	    : -1;
}

/*
 * Connect to the URL floor_url() took with the protocol protocols[0];
 * the connection lands in *pwsi.  NULL (after saying why) on failure.
 */
static inline struct lws_context *
floor_connect(
    const char *prog, const struct lws_protocols *protocols, struct lws **pwsi)
{
	struct lws_context_creation_info info;
	struct lws_client_connect_info ci;
	struct lws_context *ctx;

	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
	memset(&info, 0, sizeof info);
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.fd_limit_per_thread = 32; /* as slackd */
	info.pt_serv_buf_size = 65536; /* as slackd: 64 KiB reads */
	if ((ctx = lws_create_context(&info)) == NULL) {
		fprintf(stderr, "%s: lws_create_context failed\n", prog);
		return NULL;
	}
	memset(&ci, 0, sizeof ci);
	ci.context = ctx;
	ci.address = floor_host;
	ci.host = floor_host;
	ci.origin = floor_host;
	ci.port = floor_port;
	ci.path = floor_path;
	ci.local_protocol_name = protocols[0].name;
	ci.pwsi = pwsi;
	if (lws_client_connect_via_info(&ci) == NULL) {
		fprintf(stderr, "%s: cannot connect\n", prog);
		lws_context_destroy(ctx);
		return NULL;
	}
	return ctx;
}

#endif
