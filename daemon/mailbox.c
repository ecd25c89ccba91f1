/*
 * The two mailboxes between the threads: a list under a mutex.  Posting to
 * an empty mailbox wakes its reader; the reader takes everything at once,
 * so a burst of events costs one wake-up and one lock round trip.
 *
 * A mailbox may have a limit on the payload bytes waiting in it: past it,
 * mailbox_post() tells the writer to hold back (the upstream thread stops
 * reading from Slack), and emptying it calls unfull() so that the writer
 * resumes.  Backpressure, not unbounded buffering.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "upstream.h"

void
mailbox_init(struct mailbox *mb, void (*wake)(void *), void *arg)
{
	pthread_mutex_init(&mb->lock, NULL);
	STAILQ_INIT(&mb->queue);
	mb->wake = wake;
	mb->wake_arg = arg;
}

void
mailbox_destroy(struct mailbox *mb)
{
	struct mailbox_list list;
	struct mailbox_msg *m;

	mailbox_take(mb, &list);
	while ((m = STAILQ_FIRST(&list)) != NULL) {
		STAILQ_REMOVE_HEAD(&list, entry);
		mailbox_msg_free(m);
	}
	pthread_mutex_destroy(&mb->lock);
}

struct mailbox_msg *
mailbox_msg_new(enum mailbox_type type)
{
	struct mailbox_msg *m;

	m = xcalloc(1, sizeof *m);
	m->type = type;
	return m;
}

/* A message carrying len bytes of data in the same allocation. */
struct mailbox_msg *
mailbox_msg_new_data(enum mailbox_type type, size_t len)
{
	struct mailbox_msg *m;

	m = xmalloc(sizeof *m + len);
	memset(m, 0, sizeof *m);
	m->type = type;
	m->data = m->inline_data;
	m->len = len;
	return m;
}

/* The one string a message owns besides its data (NULL if none). */
static char **
mailbox_msg_textp(struct mailbox_msg *m)
{
	switch (m->type) {
	case MAILBOX_STATE:
		return &m->u.state.reason;
	case MAILBOX_SESSION_DOWN:
		return &m->u.down.reason;
	case MAILBOX_DROPPED:
		return &m->u.dropped.why;
	case MAILBOX_FATAL:
		return &m->u.fatal.error;
	case MAILBOX_API_CALL:
		return &m->u.call.method;
	case MAILBOX_API_RESULT:
		return &m->u.result.error;
	default:
		return NULL;
	}
}

/* That string, for the upstream thread to scrub before posting. */
char *
mailbox_msg_text(const struct mailbox_msg *m)
{
	char **p = mailbox_msg_textp((struct mailbox_msg *)m);

	return p != NULL ? *p : NULL;
}

/* Free the message's data (it is being handed back without it). */
void
mailbox_msg_drop_data(struct mailbox_msg *m)
{
	if (m->data != m->inline_data)
		free(m->data);
	m->data = NULL;
	m->len = 0;
}

void
mailbox_msg_free(struct mailbox_msg *m)
{
	char **text;

	if (m == NULL)
		return;
	if ((text = mailbox_msg_textp(m)) != NULL)
		free(*text);
	if (m->type == MAILBOX_CONFIG)
		upstream_params_free(m->u.config.params);
	mailbox_msg_drop_data(m);
	free(m);
}

void
mailbox_set_limit(
    struct mailbox *mb, size_t limit, void (*unfull)(void *), void *arg)
{
	pthread_mutex_lock(&mb->lock);
	mb->limit = limit;
	mb->unfull = unfull;
	mb->unfull_arg = arg;
	pthread_mutex_unlock(&mb->lock);
}

/*
 * Post a list of messages (bytes: their payload) in one go; the list is
 * left empty.  Returns 1 if the mailbox is now over its limit.
 */
int
mailbox_post_list(struct mailbox *mb, struct mailbox_list *list, size_t bytes)
{
	int was_empty, full;

	pthread_mutex_lock(&mb->lock);
	was_empty = STAILQ_EMPTY(&mb->queue);
	STAILQ_CONCAT(&mb->queue, list);
	mb->bytes += bytes;
	if (mb->limit != 0 && mb->bytes > mb->limit)
		mb->full = 1;
	full = mb->full;
	pthread_mutex_unlock(&mb->lock);
	if (was_empty && mb->wake != NULL)
		mb->wake(mb->wake_arg);
	return full;
}

/* Post m; returns 1 if the mailbox is now over its limit. */
int
mailbox_post(struct mailbox *mb, struct mailbox_msg *m)
{
	struct mailbox_list one;

	STAILQ_INIT(&one);
	STAILQ_INSERT_TAIL(&one, m, entry);
	return mailbox_post_list(mb, &one, m->len);
}

int
mailbox_full(struct mailbox *mb)
{
	int full;

	pthread_mutex_lock(&mb->lock);
	full = mb->full;
	pthread_mutex_unlock(&mb->lock);
	return full;
}

/* Move everything in the mailbox to list (which is initialised here). */
void
mailbox_take(struct mailbox *mb, struct mailbox_list *list)
{
	void (*unfull)(void *) = NULL;
	void *arg = NULL;

	STAILQ_INIT(list);
	pthread_mutex_lock(&mb->lock);
	STAILQ_CONCAT(list, &mb->queue);
	mb->bytes = 0;
	if (mb->full) {
		mb->full = 0;
		unfull = mb->unfull;
		arg = mb->unfull_arg;
	}
	pthread_mutex_unlock(&mb->lock);
	if (unfull != NULL)
		unfull(arg);
}
