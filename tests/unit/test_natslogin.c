/*
 * Unit tests: natslogin.c, finding a creds file's JWT and seed, and
 * refusing a nonce signature libnats 3.4 would leave out of CONNECT.
 *
 * The seed is the NKey of the 32 bytes 0..31; the signatures were made
 * with another Ed25519 implementation (python3-cryptography): "nonce-155"
 * signs to 00ca89..., "nonce-0" to c61954....
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natslogin.h"
#include "tap.h"

#define SEED "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y"
#define JWT  "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJVQUJDIn0.c2ln"

/* Parse a copy of text; "" for what is not found. */
static int
parse(const char *text, char *jwt, char *seed)
{
	char *copy = strdup(text), *j, *s;
	int r;

	r = natslogin_creds_parse(copy, &j, &s);
	snprintf(jwt, 256, "%s", j != NULL ? j : "");
	snprintf(seed, 256, "%s", s != NULL ? s : "");
	free(copy);
	return r;
}

static void
test_parse(void)
{
	char jwt[256], seed[256];

	is_int(parse("-----BEGIN NATS USER JWT-----\n" JWT "\n"
	             "------END NATS USER JWT------\n\n"
	             "************************* IMPORTANT "
	             "*************************\n"
	             "NKEY Seed printed below can be used to sign and "
	             "prove identity.\n\n"
	             "-----BEGIN USER NKEY SEED-----\n" SEED "\n"
	             "------END USER NKEY SEED------\n\n"
	             "*****************************************************"
	             "********\n",
	           jwt, seed),
	    0, "nsc's creds file");
	is_str(jwt, JWT, "... its JWT");
	is_str(seed, SEED, "... its seed");

	is_int(parse("  -----BEGIN NATS USER JWT-----\r\n\r\n " JWT " \r\n"
	             "------END NATS USER JWT------\r\n"
	             "-----BEGIN USER NKEY SEED-----\r\n\t" SEED "\r\n"
	             "------END USER NKEY SEED------",
	           jwt, seed),
	    0, "CRLF, blank lines and indentation");
	is_str(jwt, JWT, "... its JWT, trimmed");
	is_str(seed, SEED, "... its seed, trimmed");

	is_int(parse(JWT "\n\n" SEED "\n", jwt, seed), 0,
	    "undecorated: a JWT and a seed line");
	is_str(jwt, JWT, "... the JWT is the first line");
	is_str(seed, SEED, "... the seed the line beginning SU");

	is_int(parse("-----BEGIN NATS USER JWT-----\n" JWT "\n"
	             "------END NATS USER JWT------\n",
	           jwt, seed),
	    -1, "a JWT without a seed: refused");
	is_int(parse("-----BEGIN NATS USER JWT-----\n" JWT "\n"
	             "------END NATS USER JWT------\n\n" SEED "\n",
	           jwt, seed),
	    0, "a decorated JWT and a bare seed line");
	is_str(jwt, JWT, "... its JWT");
	is_str(seed, SEED, "... its seed");
	is_int(parse(SEED "\n", jwt, seed), -1,
	    "a seed alone (an NKey file given as creds): refused");
	is_int(parse("", jwt, seed), -1, "an empty file: refused");
	is_int(parse("-----BEGIN NATS USER JWT-----\n" JWT "\nmore\n"
	             "------END NATS USER JWT------\n"
	             "-----BEGIN USER NKEY SEED-----\n" SEED "\n"
	             "------END USER NKEY SEED------\n",
	           jwt, seed),
	    -1, "two lines inside a decoration are not an item");
}

static void
test_sign(void)
{
	unsigned char *sig = (unsigned char *)"x";
	unsigned long before = natslogin_unsendable();
	char *err = NULL;
	int len = -1;

	is_int(natslogin_sign(SEED, "nonce-0", &sig, &len, &err), NATS_OK,
	    "a signature is made");
	is_int(len, 64, "... of 64 bytes");
	ok(sig != NULL && sig[0] == 0xc6 && sig[1] == 0x19 && sig[63] == 0x0e,
	    "... the one another implementation makes");
	ok(err == NULL, "... and no error text");
	is_int(natslogin_unsendable(), before, "... and nothing counted");
	free(sig);

	is_int(natslogin_sign(SEED, "nonce-155", &sig, &len, &err), NATS_ERR,
	    "a signature beginning with a zero byte is refused");
	ok(sig == NULL && len == 0, "... none is handed to libnats");
	is_str(err, NATSLOGIN_UNSENDABLE, "... and the reason given");
	is_int(natslogin_unsendable(), before + 1, "... and counted");
	free(err);
	err = NULL;

	ok(natslogin_sign("SUnotaseed", "nonce-0", &sig, &len, &err) != NATS_OK,
	    "a malformed seed is an error");
	is_int(natslogin_unsendable(), before + 1, "... not counted");
	free(err);
}

int
main(void)
{
	test_parse();
	if (nats_Open(-1) != NATS_OK) /* as a connection would have */
		return 1;
	test_sign();
	nats_Close();
	return tap_done();
}
