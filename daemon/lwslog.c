/*
 * libwebsockets' log lines, into slackd's log (upstream thread only: lws
 * formats every line in one static buffer, so only its own thread may
 * log through it).  Its levels map onto ours and its lines are prefixed
 * "lws:".  The last error line is kept: lws's connection errors are
 * generic ("connect SSL err 1"), the reason is only in its log, and the
 * upstream files quote it when they say why a connection failed.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "upstream.h"

static char lwslog_error[512];

const char *
lwslog_last(void)
{
	return lwslog_error;
}

/* Before a connection attempt: what lws says next is about it. */
void
lwslog_clear(void)
{
	lwslog_error[0] = '\0';
}

/* The emitter given to lws_set_log_level(). */
void
lwslog_emit(int lll, const char *line)
{
	char buf[1024];
	size_t len;

	snprintf(buf, sizeof buf, "lws: %s", line);
	len = strlen(buf);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	log_scrub(buf, sizeof buf);
	if (lll & (LLL_ERR | LLL_WARN)) {
		len = strlen(buf + 5);
		if (len >= sizeof lwslog_error)
			len = sizeof lwslog_error - 1;
		memcpy(lwslog_error, buf + 5, len);
		lwslog_error[len] = '\0';
	}
	if (lll & LLL_ERR)
		log_warnx("%s", buf); /* lws "errors" are per connection */
	else if (lll & (LLL_WARN | LLL_USER | LLL_NOTICE))
		log_info("%s", buf);
	else
		log_debug("%s", buf);
}
