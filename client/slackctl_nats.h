/* slackctl over NATS (slackctl_nats.c). */
#ifndef SLACKCTL_NATS_H
#define SLACKCTL_NATS_H

#include <stddef.h>

#define SLACKCTL_NATS_TIMEOUT 1 /* slackctl_nats_line()'s *status */
#define SLACKCTL_NATS_NORESP  2
#define SLACKCTL_NATS_CLOSED  3
#define SLACKCTL_NATS_DENIED  4

struct slackctl_nats;
struct slackctl_nats *slackctl_nats_open(
    const char *, const char *, const char *, const char *, char **);
int slackctl_nats_request(struct slackctl_nats *, const char *, size_t);
int slackctl_nats_follow(struct slackctl_nats *, const char *, char **);
char *slackctl_nats_line(struct slackctl_nats *, int, int *);
void slackctl_nats_close(struct slackctl_nats *);
char *slackctl_nats_public_url(const char *);

#endif
