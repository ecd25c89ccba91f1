/*
 * natslogin: logging in to NATS with a signed nonce (a creds file's JWT
 * and seed, or an NKey seed), shared by slackd and slackctl.
 */
#ifndef SLACKD_NATSLOGIN_H
#define SLACKD_NATSLOGIN_H

#include <nats/nats.h>

/* The error text of a signature libnats would not send (natslogin.c). */
#define NATSLOGIN_UNSENDABLE                                                   \
	"the signature of this server nonce begins with a zero byte, which libnats 3.4 would leave out of CONNECT; connecting again for another nonce"

int natslogin_creds_parse(char *, char **, char **);
natsStatus natslogin_sign(
    const char *, const char *, unsigned char **, int *, char **);
natsStatus natslogin_creds(natsOptions *, const char *);
natsStatus natslogin_connect(natsConnection **, natsOptions *);
unsigned long natslogin_unsendable(void);

#endif
