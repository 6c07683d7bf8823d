/*
 * fuzz_record.c — libFuzzer target: the consumer side of a lane
 * (ckr_lane_read, ring/PROTOCOL.md C1..C5) on a lane whose data region and
 * head/tail words come from the fuzzer (layout in fuzz_common.h).
 *
 * From head it reads record after record, with writers_gone true and false
 * as the flags say, until EMPTY/WAIT or 4096 reads. It must never crash,
 * never read outside the lane (the data and control words are separate
 * allocations, so ASan sees it), never write to the lane, and what it
 * returns must be self-consistent:
 *   RECORD     payload_len <= max_record, the record is align8(16 + len)
 *              bytes and lies in one lap; the payload goes through
 *              ckr_event_decode as the flusher does;
 *   CORRUPT    raw_len <= the buffer, progress;
 *   ABANDONED  progress, and never past the tail;
 *   every step moves forward by at most two laps (a pad + a record).
 *
 * KNOWN BUGS (docs/BAD_INPUT.md, reported, not fixed yet). Unless
 * CKR_TEST_KNOWN_BUGS=1, the harness steps around them so the rest can be
 * fuzzed: it rounds head and tail down to multiples of 8, and it does not
 * check the tail property. With CKR_TEST_KNOWN_BUGS=1 it finds, in seconds:
 *   B1 an unaligned head or tail makes ckr_lane_read() load a seal that
 *      straddles the lane end (SEGV on the guard page);
 *   B2 a DATA/PAD seal valid for its lap at or past the tail is read as a
 *      record: property "a RECORD or CORRUPT read never ends past the tail
 *      while the tail is within a lap of the read position".
 * CKR_FUZZ_KNOWN=B1 (or B2) with CKR_TEST_KNOWN_BUGS=1 looks for that one only.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"
#include "tests/fuzz/fuzz_common.h"

static int known_bugs = -1, known_b1, known_b2;

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "fuzz_record: property failed: %s: ", #cond); \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
			abort();                                              \
		}                                                             \
	} while (0)

static inline uint64_t align8(uint64_t v)
{
	return (v + 7) & ~UINT64_C(7);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
	if (known_bugs < 0) {
		const char *e = getenv("CKR_TEST_KNOWN_BUGS");
		const char *only = getenv("CKR_FUZZ_KNOWN"); /* e.g. "B1": just that one */
		known_bugs = e && strcmp(e, "1") == 0;
		known_b1 = known_bugs && (!only || strstr(only, "B1"));
		known_b2 = known_bugs && (!only || strstr(only, "B2"));
	}
	if (n < FUZZ_REC_HDR)
		return 0;
	uint8_t flags = in[0];
	unsigned k = (flags >> 2) & 3;
	uint64_t cap = UINT64_C(4096) << (k == 3 ? 0 : k);
	fuzz_lane fl;
	if (fuzz_lane_new(&fl, cap))
		return 0;
	ckr_lane *l = &fl.lane;
	uint64_t head = fuzz_le(in + 1, 8), traw = fuzz_le(in + 9, 8);
	uint64_t tail = (flags & 16) ? traw : head + traw % (2 * cap);
	if (!known_b1) { /* B1: see the top of the file */
		head &= ~UINT64_C(7);
		tail &= ~UINT64_C(7);
	}
	size_t dn = n - FUZZ_REC_HDR < cap ? n - FUZZ_REC_HDR : cap;
	memcpy(fl.data, in + FUZZ_REC_HDR, dn);
	atomic_store(&fl.ctl->head, head);
	atomic_store(&fl.ctl->tail, tail);
	uint8_t *before = malloc(cap);
	size_t bcap = (size_t)l->max_record + CKR_REC_HEADER;
	uint8_t *buf = malloc(bcap);
	if (!before || !buf)
		goto out;
	memcpy(before, fl.data, cap);

	uint64_t pos = head;
	for (int i = 0; i < 4096; i++) {
		bool gone = (i & 1) ? (flags & 2) : (flags & 1);
		ckr_lane_record rec;
		ckr_lane_read(l, pos, gone, buf, bcap, &rec);
		CHECK(rec.pos - pos <= cap, "pos %llu -> record at %llu",
		      (unsigned long long)pos, (unsigned long long)rec.pos);
		if (rec.status == CKR_READ_EMPTY || rec.status == CKR_READ_WAIT)
			break;
		/* modulo 2^64, as lane.c compares positions */
		CHECK(rec.next - rec.pos - 1 < 2 * cap && rec.next - pos <= 2 * cap,
		      "status %d pos %llu record %llu next %llu", rec.status,
		      (unsigned long long)pos, (unsigned long long)rec.pos,
		      (unsigned long long)rec.next);
		bool near = tail - pos <= cap;
		switch (rec.status) {
		case CKR_READ_RECORD: {
			CHECK(rec.payload_len <= l->max_record, "payload_len %u",
			      rec.payload_len);
			CHECK(rec.next - rec.pos == align8(CKR_REC_HEADER + rec.payload_len),
			      "length %llu for payload %u",
			      (unsigned long long)(rec.next - rec.pos), rec.payload_len);
			CHECK((rec.pos & l->mask) + (rec.next - rec.pos) <= cap,
			      "record crosses the lane end");
			ckr_event ev;
			if (ckr_event_decode(buf, rec.payload_len, &ev) == 0)
				CHECK(ev.id_len >= 1 && ev.id_len <= CKR_RUN_ID_MAX, "id_len");
			break;
		}
		case CKR_READ_CORRUPT:
			CHECK(rec.raw_len <= bcap && rec.raw_len >= 8, "raw_len %u",
			      rec.raw_len);
			CHECK(rec.reason != NULL, "no reason");
			break;
		case CKR_READ_ABANDONED:
			CHECK(gone, "abandoned while writers live");
			CHECK(!near || tail - rec.next <= cap, "abandoned skip past the tail");
			break;
		default:
			CHECK(0, "unknown status %d", rec.status);
		}
		if (known_b2 && near && /* B2 */
		    (rec.status == CKR_READ_RECORD || rec.status == CKR_READ_CORRUPT))
			CHECK(tail - rec.next <= cap, "record [%llu,%llu) read past tail %llu",
			      (unsigned long long)rec.pos, (unsigned long long)rec.next,
			      (unsigned long long)tail);
		pos = rec.next;
	}
	CHECK(memcmp(before, fl.data, cap) == 0, "the reader wrote to the lane");
	CHECK(atomic_load(&fl.ctl->head) == head && atomic_load(&fl.ctl->tail) == tail,
	      "the reader moved head/tail");
out:
	free(before);
	free(buf);
	fuzz_lane_free(&fl);
	return 0;
}
