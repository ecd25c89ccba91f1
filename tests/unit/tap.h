/*
 * A minimal TAP producer for the unit tests: ok(cond, name...) prints one
 * "ok N - name" / "not ok N - name" line; tap_done() prints the plan and
 * returns the exit status.
 */
#ifndef TAP_H
#define TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static int tap_ok(int, const char *, int, const char *, ...)
    __attribute__((format(printf, 4, 5), unused));

static int
tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(a, b, name)                                                     \
	do {                                                                   \
		long long tap_a = (long long)(a), tap_b = (long long)(b);      \
		if (!ok(tap_a == tap_b, "%s", name))                           \
			printf("#   got %lld, expected %lld\n", tap_a, tap_b); \
	} while (0)
#define is_str(a, b, name)                                                     \
	do {                                                                   \
		const char *tap_a = (a), *tap_b = (b);                         \
		int tap_same = (tap_a == NULL && tap_b == NULL) ||             \
		    (tap_a != NULL && tap_b != NULL &&                         \
		        strcmp(tap_a, tap_b) == 0);                            \
		if (!ok(tap_same, "%s", name))                                 \
			printf("#   got \"%s\", expected \"%s\"\n",            \
			    tap_a ? tap_a : "(null)",                          \
			    tap_b ? tap_b : "(null)");                         \
	} while (0)

static int __attribute__((unused)) tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
