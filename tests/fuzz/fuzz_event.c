/*
 * fuzz_event.c — libFuzzer target: ckr_event_decode() on arbitrary bytes
 * (the flusher decodes every ring record with it; docs/DESIGN.md §8: the segment is
 * untrusted input).
 *
 * Properties: decode never reads outside [buf, buf+len) (the input is copied
 * to an allocation of exactly len bytes, so ASan sees it); on success every
 * pointer of the event lies inside the input, ckr_event_size() is exactly len,
 * and ckr_event_encode() reproduces the input byte for byte (one event, one
 * encoding); encoding into a buffer one byte short writes nothing and
 * returns 0. A version 1 input (a row a schema-1 store kept) decodes with
 * writer 0 and slot 0 and re-encodes as version 2: its size is the input's
 * plus the header's growth, and the version 2 encoding decodes to the same
 * event.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "fuzz_event: property failed: %s\n", #cond); \
			abort();                                              \
		}                                                             \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n);

static bool inside(const void *p, size_t len, const uint8_t *buf, size_t n)
{
	const uint8_t *q = p;
	if (len == 0)
		return true;
	return q >= buf && q <= buf + n && len <= (size_t)(buf + n - q);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return 0;
	memcpy(buf, in, n);
	ckr_event ev;
	memset(&ev, 0xa5, sizeof ev);
	if (ckr_event_decode(buf, n, &ev) != 0) {
		free(buf);
		return 0;
	}
	CHECK(inside(ev.id, ev.id_len, buf, n));
	CHECK(ev.id_len >= 1 && ev.id_len <= CKR_RUN_ID_MAX && ev.incarnation >= 1);
	switch (ev.type) {
	case CKR_EV_BEGIN:
		CHECK(inside(ev.u.begin.label, ev.u.begin.label_len, buf, n));
		CHECK(inside(ev.u.begin.meta, ev.u.begin.meta_len, buf, n));
		CHECK(ev.u.begin.kind == CKR_KIND_SINGLE_LOOP ||
		      ev.u.begin.kind == CKR_KIND_MULTI_PHASE);
		break;
	case CKR_EV_MESSAGE:
		CHECK(inside(ev.u.message.data, ev.u.message.len, buf, n));
		break;
	case CKR_EV_PHASE:
		CHECK(inside(ev.u.phase.name, ev.u.phase.name_len, buf, n));
		CHECK(inside(ev.u.phase.data, ev.u.phase.len, buf, n));
		break;
	case CKR_EV_FAIL:
		CHECK(inside(ev.u.fail.error, ev.u.fail.len, buf, n));
		break;
	case CKR_EV_COMPLETE:
		break;
	default:
		CHECK(!"decoded an unknown type");
	}
	CHECK(strcmp(ckr_event_type_name(ev.type), "unknown") != 0);
	CHECK(ev.version == CKR_EVENT_VERSION || ev.version == CKR_EVENT_VERSION_1);
	size_t want = n;
	if (ev.version == CKR_EVENT_VERSION_1) {
		CHECK(ev.writer == 0 && ev.slot == 0);
		want = n + (CKR_EVENT_HEADER - CKR_EVENT_HEADER_1);
	}
	size_t size = ckr_event_size(&ev);
	CHECK(size == want);
	uint8_t *out = malloc(size + 1);
	CHECK(out != NULL);
	memset(out, 0x5a, size + 1);
	CHECK(ckr_event_encode(&ev, out, size - 1) == 0);
	for (size_t i = 0; i < size + 1; i++)
		CHECK(out[i] == 0x5a); /* nothing written when it does not fit */
	CHECK(ckr_event_encode(&ev, out, size) == size);
	CHECK(out[size] == 0x5a);
	if (ev.version == CKR_EVENT_VERSION) {
		CHECK(memcmp(out, buf, n) == 0);
	} else {
		ckr_event again;
		CHECK(ckr_event_decode(out, size, &again) == 0);
		CHECK(again.version == CKR_EVENT_VERSION && again.type == ev.type &&
		      again.incarnation == ev.incarnation && again.seq == ev.seq &&
		      again.writer == 0 && again.slot == 0 && again.id_len == ev.id_len &&
		      memcmp(again.id, ev.id, ev.id_len) == 0);
		/* the body follows the id in both versions: the same bytes */
		CHECK(memcmp(out + CKR_EVENT_HEADER, buf + CKR_EVENT_HEADER_1,
			     n - CKR_EVENT_HEADER_1) == 0);
	}
	free(out);
	free(buf);
	return 0;
}
