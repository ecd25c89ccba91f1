/*
 * libFuzzer target: a configuration file.  config_parse() never crashes,
 * and reports every error with its file name.
 */
#include "config.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "slackd.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config conf;
	char *errors = NULL;
	int n;

	config_init(&conf);
	n = config_parse(&conf, "fuzz.conf", (const char *)data, size, &errors);
	assert((n == 0) == (errors == NULL));
	if (errors != NULL)
		assert(strncmp(errors, "fuzz.conf:", 10) == 0);
	free(errors);
	config_free(&conf);
	return 0;
}
