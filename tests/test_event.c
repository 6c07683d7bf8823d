/*
 * test_event.c — the event wire codec (event/event.c): round trips of every
 * event type at edge sizes, every decode rejection, and decoding random
 * bytes and mutated encodings without reading outside the input (each
 * decode gets a heap buffer of exactly its length, so ASan sees any
 * overread).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event/event.h"

static const uint8_t ID64[64] = "0123456789abcdef0123456789abcdef"
				"0123456789abcdef0123456789abcdef";

/* A deterministic PRNG (xorshift64*) so failures reproduce. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/* Encode ev into a fresh buffer of exactly its size. */
static uint8_t *encode_new(const ckr_event *ev, size_t *len)
{
	size_t n = ckr_event_size(ev);
	assert_true(n > 0);
	uint8_t *buf = malloc(n);
	assert_non_null(buf);
	assert_int_equal(ckr_event_encode(ev, buf, n), n);
	*len = n;
	return buf;
}

/* buf[0..len) in a heap block of exactly len bytes (ASan flags any read
 * past it). */
static uint8_t *exact_copy(const uint8_t *buf, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	if (len)
		memcpy(copy, buf, len);
	return copy;
}

static int decode_exact(const uint8_t *buf, size_t len)
{
	ckr_event ev;
	uint8_t *copy = exact_copy(buf, len);
	int rc = ckr_event_decode(copy, len, &ev);
	free(copy);
	return rc;
}

static ckr_event base_event(ckr_event_type type, size_t id_len)
{
	ckr_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = type;
	ev.incarnation = 1;
	ev.seq = 7;
	ev.id = ID64;
	ev.id_len = id_len;
	return ev;
}

static ckr_event begin_event(size_t id_len, const char *label, size_t label_len,
			     const uint8_t *meta, size_t meta_len)
{
	ckr_event ev = base_event(CKR_EV_BEGIN, id_len);
	ev.seq = 0;
	ev.u.begin.kind = CKR_KIND_MULTI_PHASE;
	ev.u.begin.owner_pid = 4194303;
	ev.u.begin.owner_start = UINT64_MAX;
	ev.u.begin.label = label;
	ev.u.begin.label_len = label_len;
	ev.u.begin.meta = meta;
	ev.u.begin.meta_len = meta_len;
	return ev;
}

static void assert_span(const void *a, const void *b, size_t alen, size_t blen)
{
	assert_int_equal(alen, blen);
	if (alen)
		assert_memory_equal(a, b, alen);
}

static void assert_same_body(const ckr_event *out, const ckr_event *in)
{
	switch (in->type) {
	case CKR_EV_BEGIN:
		assert_int_equal(out->u.begin.kind, in->u.begin.kind);
		assert_int_equal(out->u.begin.owner_pid, in->u.begin.owner_pid);
		assert_true(out->u.begin.owner_start == in->u.begin.owner_start);
		assert_span(out->u.begin.label, in->u.begin.label,
			    out->u.begin.label_len, in->u.begin.label_len);
		assert_span(out->u.begin.meta, in->u.begin.meta,
			    out->u.begin.meta_len, in->u.begin.meta_len);
		break;
	case CKR_EV_MESSAGE:
		assert_span(out->u.message.data, in->u.message.data,
			    out->u.message.len, in->u.message.len);
		break;
	case CKR_EV_PHASE:
		assert_int_equal(out->u.phase.index, in->u.phase.index);
		assert_span(out->u.phase.name, in->u.phase.name,
			    out->u.phase.name_len, in->u.phase.name_len);
		assert_span(out->u.phase.data, in->u.phase.data,
			    out->u.phase.len, in->u.phase.len);
		break;
	case CKR_EV_COMPLETE:
		break;
	case CKR_EV_FAIL:
		assert_span(out->u.fail.error, in->u.fail.error, out->u.fail.len,
			    in->u.fail.len);
		break;
	}
}

/* Encode, decode from an exact-size buffer, compare field by field. */
static void round_trip(const ckr_event *in)
{
	size_t len;
	uint8_t *buf = encode_new(in, &len);
	ckr_event out;

	assert_int_equal(ckr_event_decode(buf, len, &out), 0);
	assert_int_equal(out.type, in->type);
	assert_int_equal(out.incarnation, in->incarnation);
	assert_true(out.seq == in->seq);
	assert_span(out.id, in->id, out.id_len, in->id_len);
	assert_same_body(&out, in);
	free(buf);
}

static uint8_t *pattern(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + 3);
	return p;
}

/* ---- round trips ---- */

static void test_begin_round_trip_edges(void **state)
{
	(void)state;
	char label[CKR_LABEL_MAX];
	uint8_t *meta = pattern(70000);
	memset(label, 'L', sizeof label);

	ckr_event ev = begin_event(1, NULL, 0, NULL, 0);
	round_trip(&ev);
	ev = begin_event(CKR_RUN_ID_MAX, label, CKR_LABEL_MAX, meta, 70000);
	round_trip(&ev);
	ev.u.begin.kind = CKR_KIND_SINGLE_LOOP;
	ev.incarnation = UINT32_MAX;
	round_trip(&ev);
	free(meta);
}

static void test_begin_size_is_exact(void **state)
{
	(void)state;
	ckr_event ev = begin_event(5, "v1", 2, (const uint8_t *)"abc", 3);
	assert_int_equal(ckr_event_size(&ev), CKR_EVENT_HEADER + 5 + 20 + 2 + 3);
}

static void test_message_round_trip_edges(void **state)
{
	(void)state;
	uint8_t *data = pattern(100000);
	ckr_event ev = base_event(CKR_EV_MESSAGE, 1);
	ev.u.message.data = data;
	const size_t sizes[] = { 0, 1, 7, 8, 4096, 100000 };

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		ev.u.message.len = sizes[i];
		ev.seq = UINT64_MAX - i;
		round_trip(&ev);
	}
	ev.id_len = CKR_RUN_ID_MAX;
	round_trip(&ev);
	free(data);
}

static void test_phase_round_trip_edges(void **state)
{
	(void)state;
	uint8_t *data = pattern(5000);
	char *name = malloc(UINT16_MAX);
	assert_non_null(name);
	memset(name, 'n', UINT16_MAX);
	ckr_event ev = base_event(CKR_EV_PHASE, 64);

	ev.u.phase.index = UINT32_MAX;
	round_trip(&ev); /* empty name, empty output */
	ev.u.phase.name = name;
	ev.u.phase.name_len = UINT16_MAX;
	ev.u.phase.data = data;
	ev.u.phase.len = 5000;
	round_trip(&ev);
	ev.u.phase.name_len = 1;
	ev.u.phase.len = 1;
	round_trip(&ev);
	free(name);
	free(data);
}

static void test_complete_round_trip(void **state)
{
	(void)state;
	ckr_event ev = base_event(CKR_EV_COMPLETE, 1);
	assert_int_equal(ckr_event_size(&ev), CKR_EVENT_HEADER + 1);
	round_trip(&ev);
	ev.id_len = CKR_RUN_ID_MAX;
	round_trip(&ev);
}

static void test_fail_round_trip_edges(void **state)
{
	(void)state;
	ckr_event ev = base_event(CKR_EV_FAIL, 36);
	round_trip(&ev);
	ev.u.fail.error = "model error: context length exceeded";
	ev.u.fail.len = strlen(ev.u.fail.error);
	round_trip(&ev);
}

/* ---- encode refusals ---- */

static void test_size_refuses_bad_id_length(void **state)
{
	(void)state;
	ckr_event ev = base_event(CKR_EV_COMPLETE, 0);
	assert_int_equal(ckr_event_size(&ev), 0);
	ev.id_len = CKR_RUN_ID_MAX + 1;
	assert_int_equal(ckr_event_size(&ev), 0);
	ev.id_len = 3;
	ev.id = NULL;
	assert_int_equal(ckr_event_size(&ev), 0);
}

static void test_size_refuses_long_label_and_name(void **state)
{
	(void)state;
	static char big[UINT16_MAX + 1];
	ckr_event ev = begin_event(4, big, CKR_LABEL_MAX + 1, NULL, 0);
	assert_int_equal(ckr_event_size(&ev), 0);

	ev = base_event(CKR_EV_PHASE, 4);
	ev.u.phase.name = big;
	ev.u.phase.name_len = UINT16_MAX + 1;
	assert_int_equal(ckr_event_size(&ev), 0);
}

static void test_size_refuses_lengths_over_4gib(void **state)
{
	(void)state;
	static const uint8_t byte;
	ckr_event ev = base_event(CKR_EV_MESSAGE, 4);
	ev.u.message.data = &byte;
	ev.u.message.len = (size_t)UINT32_MAX + 1;
	assert_int_equal(ckr_event_size(&ev), 0);
	ev = base_event(CKR_EV_FAIL, 4);
	ev.u.fail.error = "x";
	ev.u.fail.len = (size_t)UINT32_MAX + 1;
	assert_int_equal(ckr_event_size(&ev), 0);
}

static void test_size_refuses_what_decode_rejects(void **state)
{
	(void)state;
	ckr_event ev = base_event(CKR_EV_COMPLETE, 4);
	ev.incarnation = 0;
	assert_int_equal(ckr_event_size(&ev), 0);
	ev = base_event((ckr_event_type)6, 4);
	assert_int_equal(ckr_event_size(&ev), 0);
	ev = begin_event(4, NULL, 0, NULL, 0);
	ev.u.begin.kind = (ckr_kind)3;
	assert_int_equal(ckr_event_size(&ev), 0);
	ev = base_event(CKR_EV_MESSAGE, 4);
	ev.u.message.len = 5; /* data NULL */
	assert_int_equal(ckr_event_size(&ev), 0);
}

static void test_encode_refuses_small_buffer_and_writes_nothing(void **state)
{
	(void)state;
	uint8_t buf[64];
	ckr_event ev = base_event(CKR_EV_FAIL, 8);
	ev.u.fail.error = "boom";
	ev.u.fail.len = 4;
	size_t n = ckr_event_size(&ev);

	memset(buf, 0xAA, sizeof buf);
	assert_int_equal(ckr_event_encode(&ev, buf, n - 1), 0);
	for (size_t i = 0; i < sizeof buf; i++)
		assert_int_equal(buf[i], 0xAA);
	assert_int_equal(ckr_event_encode(&ev, NULL, 1000), 0);
	assert_int_equal(ckr_event_encode(&ev, buf, n), n);
}

/* ---- decode rejections ---- */

/* One valid encoding of each type, with non-empty variable parts. */
static uint8_t *sample(ckr_event_type type, size_t *len)
{
	static const uint8_t meta[] = { 1, 2, 3, 4, 5 };
	ckr_event ev = base_event(type, 3);
	switch (type) {
	case CKR_EV_BEGIN:
		ev = begin_event(3, "label", 5, meta, sizeof meta);
		break;
	case CKR_EV_MESSAGE:
		ev.u.message.data = meta;
		ev.u.message.len = sizeof meta;
		break;
	case CKR_EV_PHASE:
		ev.u.phase.name = "plan";
		ev.u.phase.name_len = 4;
		ev.u.phase.data = meta;
		ev.u.phase.len = sizeof meta;
		break;
	case CKR_EV_COMPLETE:
		break;
	case CKR_EV_FAIL:
		ev.u.fail.error = "err";
		ev.u.fail.len = 3;
		break;
	}
	return encode_new(&ev, len);
}

static void test_decode_rejects_every_truncation(void **state)
{
	(void)state;
	for (int t = CKR_EV_BEGIN; t <= CKR_EV_FAIL; t++) {
		size_t len;
		uint8_t *buf = sample((ckr_event_type)t, &len);
		for (size_t cut = 0; cut < len; cut++)
			assert_int_equal(decode_exact(buf, cut), CKR_ECORRUPT);
		assert_int_equal(decode_exact(buf, len), 0);
		free(buf);
	}
}

static void test_decode_rejects_trailing_bytes(void **state)
{
	(void)state;
	for (int t = CKR_EV_BEGIN; t <= CKR_EV_FAIL; t++) {
		size_t len;
		uint8_t *buf = sample((ckr_event_type)t, &len);
		uint8_t *longer = calloc(1, len + 8);
		assert_non_null(longer);
		memcpy(longer, buf, len);
		for (size_t extra = 1; extra <= 8; extra++)
			assert_int_equal(decode_exact(longer, len + extra), CKR_ECORRUPT);
		free(longer);
		free(buf);
	}
}

/* Decode sample(type) with byte `off` replaced by `val`. */
static int decode_patched(ckr_event_type type, size_t off, uint8_t val)
{
	size_t len;
	uint8_t *buf = sample(type, &len);
	assert_true(off < len);
	buf[off] = val;
	int rc = decode_exact(buf, len);
	free(buf);
	return rc;
}

static void test_decode_rejects_bad_version(void **state)
{
	(void)state;
	assert_int_equal(decode_patched(CKR_EV_MESSAGE, 0, 0), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_MESSAGE, 0, 3), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_MESSAGE, 0, 255), CKR_ECORRUPT);
	/* The header's reserved u32 must be 0. */
	assert_int_equal(decode_patched(CKR_EV_MESSAGE, 28, 1), CKR_ECORRUPT);
}

/* The message fast path writes exactly what the general encoder writes. */
static void test_message_fast_path_matches_encode(void **state)
{
	(void)state;
	static uint8_t data[300];
	static const char id64[] = "0123456789012345678901234567890123456789"
				   "012345678901234567890123";
	const char *ids[] = { "a", "run-42", id64 };
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	for (size_t k = 0; k < 3; k++) {
		size_t id_len = strlen(ids[k]);
		ckr_event_prefix p;
		ckr_event_prefix_init(&p, 7, 0xfeedbeefcafe1234u, 513,
				      (const uint8_t *)ids[k], id_len);
		for (size_t len = 0; len < sizeof data; len += 37) {
			ckr_event ev = { .type = CKR_EV_MESSAGE, .incarnation = 7,
					 .seq = 0x0102030405060708u + len,
					 .writer = 0xfeedbeefcafe1234u, .slot = 513,
					 .id = (const uint8_t *)ids[k], .id_len = id_len };
			ev.u.message.data = data;
			ev.u.message.len = len;
			uint8_t a[512], b[512];
			size_t n = ckr_event_encode(&ev, a, sizeof a);
			assert_int_equal(ckr_event_message_size(&p, len), n);
			memset(b, 0xee, sizeof b);
			ckr_event_put_message(&p, ev.seq, data, len, b);
			assert_memory_equal(a, b, n);
			assert_int_equal(b[n], 0xee); /* nothing past its end */
		}
	}
}

/* A version-1 row (what a schema-1 store kept): 16-byte header, no writer. */
static void test_decode_reads_version_1(void **state)
{
	(void)state;
	uint8_t v1[16 + 3 + 4 + 2] = { 1, CKR_EV_MESSAGE, 3, 0, 2, 0, 0, 0, 7 };
	memcpy(v1 + 16, "abc", 3);
	v1[19] = 2; /* message len */
	memcpy(v1 + 23, "hi", 2);
	ckr_event ev;
	assert_int_equal(ckr_event_decode(v1, sizeof v1, &ev), 0);
	assert_int_equal(ev.version, 1);
	assert_int_equal(ev.type, CKR_EV_MESSAGE);
	assert_int_equal(ev.incarnation, 2);
	assert_int_equal(ev.seq, 7);
	assert_int_equal(ev.writer, 0);
	assert_int_equal(ev.id_len, 3);
	assert_memory_equal(ev.u.message.data, "hi", 2);
	/* Version 2 carries writer and slot. */
	ckr_event e2 = { .type = CKR_EV_MESSAGE, .incarnation = 1, .seq = 4,
			 .writer = 0x1122334455667788u, .slot = 9,
			 .id = (const uint8_t *)"abc", .id_len = 3 };
	e2.u.message.data = (const uint8_t *)"hi";
	e2.u.message.len = 2;
	uint8_t buf[64];
	size_t n = ckr_event_encode(&e2, buf, sizeof buf);
	assert_int_equal(n, CKR_EVENT_HEADER + 3 + 4 + 2);
	assert_int_equal(ckr_event_decode(buf, n, &ev), 0);
	assert_int_equal(ev.version, 2);
	assert_true(ev.writer == 0x1122334455667788u);
	assert_int_equal(ev.slot, 9);
}

static void test_decode_rejects_bad_type(void **state)
{
	(void)state;
	assert_int_equal(decode_patched(CKR_EV_COMPLETE, 1, 0), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_COMPLETE, 1, 6), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_COMPLETE, 1, 255), CKR_ECORRUPT);
}

static void test_decode_rejects_bad_kind(void **state)
{
	(void)state;
	size_t kind_off = CKR_EVENT_HEADER + 3;
	assert_int_equal(decode_patched(CKR_EV_BEGIN, kind_off, 0), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_BEGIN, kind_off, 3), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_BEGIN, kind_off, 1), 0);
}

static void test_decode_rejects_id_len_0_and_65(void **state)
{
	(void)state;
	ckr_event ev = base_event(CKR_EV_COMPLETE, CKR_RUN_ID_MAX);
	size_t len;
	uint8_t *buf = encode_new(&ev, &len);
	uint8_t *big = calloc(1, len + 1);
	assert_non_null(big);
	memcpy(big, buf, len);

	big[2] = 0;
	assert_int_equal(decode_exact(big, len), CKR_ECORRUPT);
	big[2] = CKR_RUN_ID_MAX + 1; /* 65 bytes of id really follow */
	assert_int_equal(decode_exact(big, len + 1), CKR_ECORRUPT);
	big[2] = CKR_RUN_ID_MAX;
	assert_int_equal(decode_exact(big, len), 0);
	free(big);
	free(buf);
}

static void test_decode_rejects_incarnation_0(void **state)
{
	(void)state;
	size_t len;
	uint8_t *buf = sample(CKR_EV_MESSAGE, &len);
	memset(buf + 4, 0, 4);
	assert_int_equal(decode_exact(buf, len), CKR_ECORRUPT);
	free(buf);
}

static void test_decode_rejects_nonzero_flags_and_reserved(void **state)
{
	(void)state;
	size_t body = CKR_EVENT_HEADER + 3;
	assert_int_equal(decode_patched(CKR_EV_COMPLETE, 3, 1), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_BEGIN, body + 2, 1), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_PHASE, body + 7, 1), CKR_ECORRUPT);
}

static void test_decode_rejects_lengths_past_the_end(void **state)
{
	(void)state;
	size_t body = CKR_EVENT_HEADER + 3;
	/* label_len, meta_len, message len, name_len, phase len, fail len */
	assert_int_equal(decode_patched(CKR_EV_BEGIN, body + 1, 200), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_BEGIN, body + 19, 0xFF), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_MESSAGE, body + 3, 0x80), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_PHASE, body + 5, 0x10), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_PHASE, body + 11, 0xFF), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_FAIL, body + 0, 4), CKR_ECORRUPT);
	assert_int_equal(decode_patched(CKR_EV_FAIL, body + 0, 2), CKR_ECORRUPT);
}

static void test_decode_rejects_null_arguments(void **state)
{
	(void)state;
	ckr_event ev;
	size_t len;
	uint8_t *buf = sample(CKR_EV_COMPLETE, &len);
	assert_int_equal(ckr_event_decode(NULL, len, &ev), CKR_ECORRUPT);
	assert_int_equal(ckr_event_decode(buf, len, NULL), CKR_ECORRUPT);
	free(buf);
}

static void test_decode_failure_leaves_event_untouched(void **state)
{
	(void)state;
	ckr_event ev, before;
	size_t len;
	uint8_t *buf = sample(CKR_EV_BEGIN, &len);
	memset(&ev, 0x5A, sizeof ev);
	before = ev;
	assert_int_equal(ckr_event_decode(buf, len - 1, &ev), CKR_ECORRUPT);
	assert_memory_equal(&ev, &before, sizeof ev);
	free(buf);
}

/* ---- hostile input ---- */

/* Whatever decodes must re-encode to the very same bytes (one encoding
 * per event), and nothing may crash or read outside the input. */
static void check_hostile(const uint8_t *buf, size_t len)
{
	ckr_event ev;
	uint8_t *copy = exact_copy(buf, len);
	int rc = ckr_event_decode(copy, len, &ev);
	if (rc == 0) {
		uint8_t *again = malloc(len);
		assert_non_null(again);
		assert_int_equal(ckr_event_encode(&ev, again, len), len);
		assert_memory_equal(again, copy, len);
		free(again);
	} else {
		assert_int_equal(rc, CKR_ECORRUPT);
	}
	free(copy);
}

static void test_decode_survives_random_bytes(void **state)
{
	(void)state;
	uint64_t seed = 0x9E3779B97F4A7C15u;
	uint8_t buf[256];

	for (int iter = 0; iter < 200000; iter++) {
		size_t len = rnd(&seed) % sizeof buf;
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rnd(&seed);
		if (len > 4 && (iter & 1)) { /* plausible header half the time */
			buf[0] = CKR_EVENT_VERSION;
			buf[1] = (uint8_t)(1 + rnd(&seed) % 5);
			buf[2] = (uint8_t)(1 + rnd(&seed) % 8);
			buf[3] = 0;
		}
		check_hostile(buf, len);
	}
}

static void test_decode_survives_mutated_encodings(void **state)
{
	(void)state;
	uint64_t seed = 42;
	for (int t = CKR_EV_BEGIN; t <= CKR_EV_FAIL; t++) {
		size_t len;
		uint8_t *valid = sample((ckr_event_type)t, &len);
		uint8_t *buf = malloc(len + 16);
		assert_non_null(buf);
		for (int iter = 0; iter < 20000; iter++) {
			memcpy(buf, valid, len);
			memset(buf + len, (int)rnd(&seed), 16);
			for (int flips = 1 + (int)(rnd(&seed) % 3); flips > 0; flips--)
				buf[rnd(&seed) % len] ^= (uint8_t)(1u << (rnd(&seed) % 8));
			size_t n = len - 8 + rnd(&seed) % 17; /* len-8 .. len+8 */
			check_hostile(buf, n);
		}
		free(buf);
		free(valid);
	}
}

static void test_type_names(void **state)
{
	(void)state;
	assert_string_equal(ckr_event_type_name(CKR_EV_BEGIN), "begin");
	assert_string_equal(ckr_event_type_name(CKR_EV_MESSAGE), "message");
	assert_string_equal(ckr_event_type_name(CKR_EV_PHASE), "phase");
	assert_string_equal(ckr_event_type_name(CKR_EV_COMPLETE), "complete");
	assert_string_equal(ckr_event_type_name(CKR_EV_FAIL), "fail");
	assert_string_equal(ckr_event_type_name(0), "unknown");
	assert_string_equal(ckr_event_type_name(99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_begin_round_trip_edges),
		cmocka_unit_test(test_begin_size_is_exact),
		cmocka_unit_test(test_message_round_trip_edges),
		cmocka_unit_test(test_phase_round_trip_edges),
		cmocka_unit_test(test_complete_round_trip),
		cmocka_unit_test(test_fail_round_trip_edges),
		cmocka_unit_test(test_size_refuses_bad_id_length),
		cmocka_unit_test(test_size_refuses_long_label_and_name),
		cmocka_unit_test(test_size_refuses_lengths_over_4gib),
		cmocka_unit_test(test_size_refuses_what_decode_rejects),
		cmocka_unit_test(test_encode_refuses_small_buffer_and_writes_nothing),
		cmocka_unit_test(test_decode_rejects_every_truncation),
		cmocka_unit_test(test_decode_rejects_trailing_bytes),
		cmocka_unit_test(test_decode_rejects_bad_version),
		cmocka_unit_test(test_decode_reads_version_1),
		cmocka_unit_test(test_message_fast_path_matches_encode),
		cmocka_unit_test(test_decode_rejects_bad_type),
		cmocka_unit_test(test_decode_rejects_bad_kind),
		cmocka_unit_test(test_decode_rejects_id_len_0_and_65),
		cmocka_unit_test(test_decode_rejects_incarnation_0),
		cmocka_unit_test(test_decode_rejects_nonzero_flags_and_reserved),
		cmocka_unit_test(test_decode_rejects_lengths_past_the_end),
		cmocka_unit_test(test_decode_rejects_null_arguments),
		cmocka_unit_test(test_decode_failure_leaves_event_untouched),
		cmocka_unit_test(test_decode_survives_random_bytes),
		cmocka_unit_test(test_decode_survives_mutated_encodings),
		cmocka_unit_test(test_type_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
