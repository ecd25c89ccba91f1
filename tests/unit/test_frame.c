/* Unit tests: frame.c's WebSocket client frames (Socket Mode's acks). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream.h"
#include "tap.h"

/* RFC 6455, section 5.7: a masked text frame holding "Hello". */
static void
test_rfc_example(void)
{
	static const unsigned char want[] = { 0x81, 0x85, 0x37, 0xfa, 0x21,
		0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	unsigned char out[FRAME_WS_HEAD + 5];
	size_t n;

	n = frame_ws_client(out, "Hello", 5, mask);
	is_int(n, sizeof want, "the RFC's example has its length");
	ok(n == sizeof want && memcmp(out, want, n) == 0,
	    "the RFC's example, byte for byte");
}

/* Read one client frame back: its payload unmasked into text. */
static int
test_decode(const unsigned char *f, size_t n, char *text, size_t *len)
{
	size_t i, h = 2;
	uint64_t l;

	if (n < 2 || f[0] != 0x81 || (f[1] & 0x80) == 0)
		return -1;
	l = f[1] & 0x7f;
	if (l == 126) {
		l = ((uint64_t)f[2] << 8) | f[3];
		h = 4;
	} else if (l == 127) {
		for (l = 0, i = 2; i < 10; i++)
			l = (l << 8) | f[i];
		h = 10;
	}
	if (n != h + 4 + l)
		return -1;
	for (i = 0; i < l; i++)
		text[i] = (char)(f[h + 4 + i] ^ f[h + (i & 3)]);
	*len = l;
	return (int)h;
}

static void
test_lengths(void)
{
	static const size_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536,
		70000 };
	static const int heads[] = { 2, 2, 2, 4, 4, 4, 10, 10 };
	static const unsigned char mask[4] = { 0xa5, 0x00, 0xff, 0x3c };
	unsigned char *out;
	char *in, *back;
	size_t i, j, n, len;

	for (i = 0; i < nitems(lens); i++) {
		in = malloc(lens[i] + 1);
		back = malloc(lens[i] + 1);
		out = malloc(FRAME_WS_HEAD + lens[i]);
		for (j = 0; j < lens[i]; j++)
			in[j] = (char)('a' + j % 26);
		n = frame_ws_client(out, in, lens[i], mask);
		is_int(n, heads[i] + 4 + lens[i], "frame length");
		is_int(test_decode(out, n, back, &len), heads[i],
		    "header of the shortest form");
		ok(len == lens[i] && memcmp(in, back, len) == 0,
		    "%zu bytes unmask to the payload", lens[i]);
		ok(lens[i] < 4 || memcmp(out + n - lens[i], in, 4) != 0,
		    "%zu bytes: the payload is masked", lens[i]);
		free(in);
		free(back);
		free(out);
	}
}

/* Frames laid end to end read back one after another. */
static void
test_back_to_back(void)
{
	static const char *acks[] = { "{\"envelope_id\":\"a\"}",
		"{\"envelope_id\":\"b-2\"}", "" };
	unsigned char buf[256], mask[4] = { 1, 2, 3, 4 };
	char back[64];
	size_t i, off = 0, len;
	int h, good = 1;

	for (i = 0; i < nitems(acks); i++) {
		mask[0] = (unsigned char)i;
		off +=
		    frame_ws_client(buf + off, acks[i], strlen(acks[i]), mask);
	}
	off = 0;
	for (i = 0; i < nitems(acks); i++) {
		size_t n = 2 + 4 + (buf[off + 1] & 0x7f);

		h = test_decode(buf + off, n, back, &len);
		if (h != 2 || len != strlen(acks[i]) ||
		    memcmp(back, acks[i], len) != 0)
			good = 0;
		off += n;
	}
	ok(good, "acks end to end read back in order");
}

int
main(void)
{
	test_rfc_example();
	test_lengths();
	test_back_to_back();
	return tap_done();
}
