/*
 * The two mailboxes between the threads: a list under a mutex.  Posting to
 * an empty mailbox wakes its reader; the reader takes everything at once,
 * so a burst of events costs one wake-up and one lock round trip.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "slackd.h"

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
	m->refs = 1;
	return m;
}

void
mailbox_msg_free(struct mailbox_msg *m)
{
	if (m == NULL)
		return;
	free(m->text);
	free(m->data);
	upstream_params_free(m->params);
	free(m);
}

void
mailbox_post(struct mailbox *mb, struct mailbox_msg *m)
{
	int was_empty;

	pthread_mutex_lock(&mb->lock);
	was_empty = STAILQ_EMPTY(&mb->queue);
	STAILQ_INSERT_TAIL(&mb->queue, m, entry);
	pthread_mutex_unlock(&mb->lock);
	if (was_empty && mb->wake != NULL)
		mb->wake(mb->wake_arg);
}

/* Move everything in the mailbox to list (which is initialised here). */
void
mailbox_take(struct mailbox *mb, struct mailbox_list *list)
{
	STAILQ_INIT(list);
	pthread_mutex_lock(&mb->lock);
	STAILQ_CONCAT(list, &mb->queue);
	pthread_mutex_unlock(&mb->lock);
}
